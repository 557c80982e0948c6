"""``FakeSecretsManager``: an in-memory stand-in for a boto3 ``secretsmanager`` client.

It answers the operations secretcache and typical rotation code use with the
shapes, stage-label moves and errors of the real service, validates parameters
with botocore's own validator, and raises botocore's own exception classes, so
code under test takes exactly the paths it takes in production. Only botocore is
needed (for the service model and the exception classes): no boto3, no network.

Values are kept XOR-masked (``_Sealed``). The fake is a local variable (``self``)
in every frame of every error it raises, and error trackers that render frame
locals walk objects' attributes; masking keeps plaintext out of that walk.
"""

from __future__ import annotations

import functools
import json
import os
import random
import string
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Final

__all__ = [
    "ACCOUNT_ID",
    "IMPLEMENTED_OPERATIONS",
    "REGION",
    "ROTATION_STEPS",
    "FakeSecretsManager",
    "Rotation",
]

ACCOUNT_ID: Final = "123456789012"
REGION: Final = "us-east-1"

CURRENT: Final = "AWSCURRENT"
PREVIOUS: Final = "AWSPREVIOUS"
PENDING: Final = "AWSPENDING"

ROTATION_STEPS: Final = ("createSecret", "setSecret", "testSecret", "finishSecret")
"""The four steps of a rotation, spelt as AWS passes them to a rotation function."""

IMPLEMENTED_OPERATIONS: Final = (
    "BatchGetSecretValue",
    "CreateSecret",
    "DeleteSecret",
    "DescribeSecret",
    "GetSecretValue",
    "PutSecretValue",
    "UpdateSecretVersionStage",
)

BATCH_LIMIT: Final = 20
"""``BatchGetSecretValue`` takes at most this many ids (botocore does not check it)."""

UNAVAILABLE: Final = "unavailable"
TIMEOUT: Final = "timeout"

_NOT_FOUND = "Secrets Manager can't find the specified secret."
_MARKED_DELETED = (
    "You can't perform this operation on the secret because it was marked for deletion."
)
_FAULT_MESSAGES: Final[Mapping[str, str]] = {
    "ResourceNotFoundException": _NOT_FOUND,
    "AccessDeniedException": (
        "User: arn:aws:sts::{account}:assumed-role/test/fake is not authorized to perform: "
        "secretsmanager:{operation} on resource: {secret} because no identity-based policy "
        "allows the secretsmanager:{operation} action"
    ),
    "DecryptionFailure": (
        "Secrets Manager can't decrypt the protected secret text using the provided KMS key."
    ),
    "ThrottlingException": "Rate exceeded",
    "InternalServiceError": "An error occurred on the server side.",
    "InvalidRequestException": _MARKED_DELETED,
    "InvalidParameterException": "The parameter name or value is invalid.",
    "ServiceUnavailable": "Service Unavailable",
}
_FAULT_STATUS: Final[Mapping[str, int]] = {
    "InternalServiceError": 500,
    "InternalFailure": 500,
    "ServiceUnavailable": 503,
    "ServiceUnavailableException": 503,
}
_PER_SECRET_CODES: Final = frozenset(
    {
        "ResourceNotFoundException",
        "AccessDeniedException",
        "DecryptionFailure",
        "InvalidRequestException",
        "InvalidParameterException",
        "KMSAccessDeniedException",
        "KMSDisabledException",
        "KMSInvalidStateException",
        "KMSNotFoundException",
    }
)
"""Answers ``BatchGetSecretValue`` reports per secret, in ``Errors``; other faults fail the call."""

RotationHook = Callable[["Rotation"], object]


# ------------------------------------------------------------------ botocore bits


@functools.cache
def _service_model() -> Any:
    from botocore.loaders import create_loader
    from botocore.model import ServiceModel

    data = create_loader().load_service_model("secretsmanager", "service-2")
    return ServiceModel(data, service_name="secretsmanager")


@functools.cache
def _exceptions() -> Any:
    from botocore.errorfactory import ClientExceptionsFactory

    return ClientExceptionsFactory().create_client_exceptions(_service_model())


@functools.cache
def _method_names() -> Mapping[str, str]:
    """snake_case method name -> operation name, for every operation of the real client."""
    from botocore import xform_name

    return {xform_name(op): op for op in _service_model().operation_names}


def _validate(operation: str, params: Mapping[str, Any]) -> None:
    """The client-side check the real client makes before sending anything."""
    from botocore.validate import validate_parameters

    validate_parameters(dict(params), _service_model().operation_model(operation).input_shape)


def _now() -> datetime:
    """The service's timestamps have millisecond precision."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def _metadata(status: int = 200) -> dict[str, Any]:
    request_id = str(uuid.uuid4())
    return {
        "RequestId": request_id,
        "HTTPStatusCode": status,
        "HTTPHeaders": {
            "x-amzn-requestid": request_id,
            "content-type": "application/x-amz-json-1.1",
            "date": datetime.now(UTC).strftime("%a, %d %b %Y %H:%M:%S GMT"),
        },
        "RetryAttempts": 0,
    }


class _ServiceError(Exception):
    """An answer of the fake service; becomes botocore's ClientError at the client edge."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(code)
        self.code = code
        self.message = message
        self.status = status


def _client_error(code: str, message: str, status: int, operation: str) -> Exception:
    """What botocore raises for an error answer: the modelled class, else ``ClientError``."""
    response = {"Error": {"Code": code, "Message": message}, "ResponseMetadata": _metadata(status)}
    error_class = _exceptions().from_code(code)
    return error_class(response, operation)  # type: ignore[no-any-return]


# ------------------------------------------------------------------ sealed values


class _Sealed:
    """One secret value, XOR-masked with a pad of its own length; unmasked only to answer."""

    __slots__ = ("_binary", "_masked", "_pad")

    def __init__(self, data: bytes, *, binary: bool) -> None:
        pad = os.urandom(len(data))
        masked = int.from_bytes(data, "big") ^ int.from_bytes(pad, "big")
        self._binary = binary
        self._pad = pad
        self._masked = masked.to_bytes(len(data), "big")

    @classmethod
    def of(cls, value: str | bytes) -> _Sealed:
        if isinstance(value, str):
            return cls(value.encode("utf-8", "surrogatepass"), binary=False)
        return cls(bytes(value), binary=True)

    @property
    def binary(self) -> bool:
        return self._binary

    def _plain(self) -> bytes:
        value = int.from_bytes(self._masked, "big") ^ int.from_bytes(self._pad, "big")
        return value.to_bytes(len(self._pad), "big")

    def reveal(self) -> str | bytes:
        data = self._plain()
        return data if self._binary else data.decode("utf-8", "surrogatepass")

    def same_as(self, other: _Sealed) -> bool:
        return self._binary == other._binary and self._plain() == other._plain()

    def __repr__(self) -> str:
        return f"<sealed {'binary' if self._binary else 'string'}>"

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("a sealed secret cannot be pickled")


def _seal_user_value(value: object) -> _Sealed:
    """``put``/``rotate`` input: str, bytes, or an object stored as its JSON text.

    A refused value is dropped from this frame before the error is raised, so the
    error's traceback does not carry it (callers do the same with their own frames).
    """
    data, error = _as_data(value)
    del value
    if error is not None:
        raise error
    assert data is not None
    return _Sealed.of(data)


def _as_data(value: object) -> tuple[str | bytes | None, Exception | None]:
    """The value as stored, or the error to raise; raises nothing itself."""
    if isinstance(value, str | bytes | bytearray | memoryview):
        data: str | bytes = value if isinstance(value, str) else bytes(value)
    elif value is None:
        return None, TypeError("a secret value cannot be None (give a str, bytes or JSON object)")
    else:
        try:
            data = json.dumps(value)
        except (TypeError, ValueError) as exc:
            # json's own message names the offending type only, never the content.
            reason = str(exc) if isinstance(exc, TypeError) else type(exc).__name__
            return None, TypeError(f"the secret value is not JSON-serialisable: {reason}")
    if len(data) == 0:
        return None, ValueError("a secret value cannot be empty (the service requires 1 character)")
    return data, None


def _take_payload(operation: str, params: dict[str, Any]) -> tuple[_Sealed | None, bool]:
    """Remove SecretString/SecretBinary from ``params`` (sealed), then validate the rest.

    Validation sees a stand-in of the same length, so a too-short value is refused
    exactly as botocore refuses it, without the value reaching any error or frame.
    Returns the sealed value (``None`` if there is none) and whether both kinds were
    given, which the service refuses.
    """
    text = params.pop("SecretString", None)
    blob = params.pop("SecretBinary", None)
    sealed: _Sealed | None = None
    shadow = dict(params)
    if text is not None:
        shadow["SecretString"] = "x" * len(text) if isinstance(text, str) else None
    if blob is not None:
        if isinstance(blob, str):
            blob = blob.encode("utf-8")
        elif hasattr(blob, "read"):
            blob = blob.read()
        shadow["SecretBinary"] = b"x" * len(blob) if isinstance(blob, bytes | bytearray) else None
    if isinstance(text, str) and text and blob is None:
        sealed = _Sealed.of(text)
    elif isinstance(blob, bytes | bytearray) and blob and text is None:
        sealed = _Sealed.of(bytes(blob))
    both = text is not None and blob is not None
    del text, blob
    _validate(operation, shadow)
    return sealed, both


def _refuse_both(both: bool) -> None:
    if both:
        raise _ServiceError(
            "InvalidParameterException",
            "You can't specify both SecretString and SecretBinary in the same request.",
        )


# ------------------------------------------------------------------ the store


class _Version:
    __slots__ = ("created", "sealed", "stages", "version_id")

    def __init__(self, version_id: str, sealed: _Sealed) -> None:
        self.version_id = version_id
        self.sealed = sealed
        self.stages: list[str] = []
        self.created = _now()

    def __repr__(self) -> str:
        return f"_Version({self.version_id!r}, stages={self.stages!r})"


class _Secret:
    __slots__ = (
        "arn",
        "created",
        "deleted_at",
        "deletion_date",
        "description",
        "last_changed",
        "name",
        "versions",
    )

    def __init__(self, name: str, arn: str, description: str | None) -> None:
        self.name = name
        self.arn = arn
        self.description = description
        self.created = self.last_changed = _now()
        self.deleted_at: datetime | None = None
        self.deletion_date: datetime | None = None
        self.versions: dict[str, _Version] = {}

    def __repr__(self) -> str:
        return f"_Secret({self.name!r}, versions={len(self.versions)})"

    def holder(self, label: str) -> _Version | None:
        for version in self.versions.values():
            if label in version.stages:
                return version
        return None

    def attach(self, label: str, version: _Version) -> None:
        """A label is on at most one version: attaching moves it."""
        for other in self.versions.values():
            if other is not version and label in other.stages:
                other.stages.remove(label)
        if label not in version.stages:
            version.stages.append(label)

    def make_current(self, version: _Version) -> None:
        """Move AWSCURRENT; the version it left gets AWSPREVIOUS, as the service does."""
        old = self.holder(CURRENT)
        self.attach(CURRENT, version)
        if old is not None and old is not version:
            self.attach(PREVIOUS, old)

    def label(self, version: _Version, labels: list[str]) -> None:
        for label in labels:
            if label == CURRENT:
                self.make_current(version)
            else:
                self.attach(label, version)
        self.last_changed = _now()


@dataclass
class _Fault:
    code: str
    secret_id: str | None
    operation: str | None
    remaining: int | None
    status: int


# ------------------------------------------------------------------ the client


class FakeSecretsManager:
    """An in-memory Secrets Manager client for tests: ``SecretCache(client=fake)``.

    Test-side helpers (not counted in :attr:`calls`): :meth:`put`, :meth:`rotate`,
    :meth:`rotation`, :meth:`delete`, :meth:`fail`, :meth:`clear_faults`,
    :meth:`value`, :meth:`versions`.

    Client operations (counted in :attr:`calls` under their AWS names, validated
    like botocore validates them, failing like the service fails):
    ``get_secret_value``, ``batch_get_secret_value``, ``describe_secret``,
    ``create_secret``, ``put_secret_value``, ``update_secret_version_stage``,
    ``delete_secret``. Other operations of the real client raise
    ``AttributeError``. All methods are thread-safe.
    """

    def __init__(
        self,
        secrets: Mapping[str, object] | None = None,
        *,
        region_name: str = REGION,
        account_id: str = ACCOUNT_ID,
    ) -> None:
        self._lock = threading.RLock()
        self._secrets: dict[str, _Secret] = {}
        self._by_arn: dict[str, _Secret] = {}
        self._faults: list[_Fault] = []
        self._region = region_name
        self._account = account_id
        self._arn_prefix = f"arn:aws:secretsmanager:{region_name}:{account_id}:secret:"
        self._random = random.Random()
        self.calls: Counter[str] = Counter()
        """Requests received, by AWS operation name (``GetSecretValue``, ...)."""
        self.meta = _Meta(region_name)
        try:
            for secret_id, value in (secrets or {}).items():
                self.put(secret_id, value)
        finally:
            secrets = value = None  # a refused value must not stay in this frame

    def __repr__(self) -> str:
        with self._lock:
            return (
                f"FakeSecretsManager(region_name={self._region!r}, "
                f"secrets={len(self._secrets)}, faults={len(self._faults)})"
            )

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("FakeSecretsManager cannot be pickled: it holds secrets")

    def __getattr__(self, name: str) -> Any:
        # Only reached for names the class does not define.
        if not name.startswith("_"):
            operation = _method_names().get(name)
            if operation is not None:
                raise AttributeError(
                    f"{type(self).__name__!r} object has no attribute {name!r}: the real "
                    f"client's {operation} is not implemented by the fake (it implements "
                    f"{', '.join(IMPLEMENTED_OPERATIONS)})"
                )
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    @property
    def exceptions(self) -> Any:
        """botocore's exception classes for this service, as ``client.exceptions``."""
        return _exceptions()

    def close(self) -> None:
        """Nothing to close (a real client closes its connections here)."""

    # -------------------------------------------------------------- test helpers

    def put(self, secret_id: str, value: object, *, version_id: str | None = None) -> str:
        """Store ``value`` as the new ``AWSCURRENT`` version; returns its version id.

        ``str`` becomes ``SecretString``, ``bytes`` ``SecretBinary``, anything else
        its JSON text. The secret is created if needed; the previous
        ``AWSCURRENT`` version becomes ``AWSPREVIOUS``.
        """
        try:
            sealed = _seal_user_value(value)
        finally:
            del value  # an error raised below must not carry the value in this frame
        with self._lock:
            secret = self._find(secret_id)
            if secret is None:
                if not secret_id or secret_id.startswith("arn:"):
                    raise KeyError(f"no secret {secret_id!r} in this FakeSecretsManager")
                secret = self._create(secret_id, None)
            self._check_writable(secret)
            version = self._add_version(secret, version_id or str(uuid.uuid4()), sealed)
            secret.label(version, [CURRENT])
            return version.version_id

    def rotation(
        self,
        secret_id: str,
        value: object,
        *,
        set_secret: RotationHook | None = None,
        test_secret: RotationHook | None = None,
        token: str | None = None,
    ) -> Rotation:
        """A rotation to walk step by step (nothing happens until a step is run).

        ``with fake.rotation(...) as r:`` runs the steps not yet run when the block
        ends without an exception; a block that raises leaves the rotation where it
        stopped, as a failed rotation leaves ``AWSPENDING`` behind.
        """
        try:
            sealed = _seal_user_value(value)
        finally:
            del value
        return Rotation(
            self,
            secret_id,
            sealed,
            token=token or str(uuid.uuid4()),
            set_secret=set_secret,
            test_secret=test_secret,
        )

    def rotate(
        self,
        secret_id: str,
        value: object,
        *,
        set_secret: RotationHook | None = None,
        test_secret: RotationHook | None = None,
        token: str | None = None,
    ) -> str:
        """Run the four rotation steps; returns the new ``AWSCURRENT`` version id."""
        try:
            rotation = self.rotation(
                secret_id, value, set_secret=set_secret, test_secret=test_secret, token=token
            )
        finally:
            del value
        return rotation.run()

    def delete(self, secret_id: str, *, force: bool = False) -> None:
        """Schedule the secret for deletion (reads answer ``InvalidRequestException``),
        or with ``force`` remove it (reads answer ``ResourceNotFoundException``)."""
        with self._lock:
            secret = self._require(secret_id)
            if force:
                self._forget(secret)
            else:
                secret.deleted_at = _now()
                secret.deletion_date = secret.deleted_at + timedelta(days=30)

    def value(
        self, secret_id: str, version_stage: str | None = None, *, version_id: str | None = None
    ) -> str | bytes:
        """The stored value of a stage (default ``AWSCURRENT``) or version; not a request."""
        with self._lock:
            secret = self._require(secret_id)
            if version_id is not None:
                version = secret.versions.get(version_id)
            else:
                version = secret.holder(version_stage or CURRENT)
            if version is None:
                wanted = version_id or version_stage or CURRENT
                raise KeyError(f"secret {secret_id!r} has no version {wanted!r}")
            return version.sealed.reveal()

    def versions(self, secret_id: str) -> dict[str, tuple[str, ...]]:
        """Version id -> its stage labels, oldest first (``VersionIdsToStages``)."""
        with self._lock:
            secret = self._require(secret_id)
            return {vid: tuple(v.stages) for vid, v in secret.versions.items()}

    def arn(self, secret_id: str) -> str:
        """The full ARN the fake gave this secret."""
        with self._lock:
            return self._require(secret_id).arn

    def fail(
        self,
        code: str,
        *,
        secret_id: str | None = None,
        times: int | None = None,
        operation: str | None = None,
        status: int | None = None,
    ) -> None:
        """Make matching requests fail as the service (or the network) would.

        ``code`` is an AWS error code, raised as botocore's ``ClientError`` (its
        modelled subclass where botocore has one) with that code, the service's
        message and HTTP status (500 for ``InternalServiceError``, 503 for
        ``ServiceUnavailable``, else 400; ``status`` overrides); or
        ``"unavailable"`` (``EndpointConnectionError``) or ``"timeout"``
        (``ReadTimeoutError``). ``secret_id`` limits it to requests naming that
        secret (by name or ARN); ``operation`` (e.g. ``"BatchGetSecretValue"``) to
        one operation; ``times`` to that many requests (``None``: until
        :meth:`clear_faults`). Faults are checked in the order they were added.
        In ``BatchGetSecretValue``, a per-secret answer (not found, denied,
        decryption failure, ...) for one id goes into ``Errors`` as the service
        reports it; throttling, 5xx and network faults fail the whole call.
        """
        if not isinstance(code, str) or not code:
            raise ValueError("fail() needs an AWS error code, 'unavailable' or 'timeout'")
        if times is not None and (isinstance(times, bool) or times < 1):
            raise ValueError(f"fail(times=...) must be None or at least 1, got {times!r}")
        if operation is not None and operation not in IMPLEMENTED_OPERATIONS:
            raise ValueError(
                f"fail(operation={operation!r}): not an operation of the fake "
                f"({', '.join(IMPLEMENTED_OPERATIONS)})"
            )
        resolved = status if status is not None else _FAULT_STATUS.get(code, 400)
        with self._lock:
            self._faults.append(_Fault(code, secret_id, operation, times, resolved))

    def clear_faults(self) -> None:
        """Remove every injected fault."""
        with self._lock:
            self._faults.clear()

    # -------------------------------------------------------------- client operations

    def get_secret_value(self, **params: Any) -> dict[str, Any]:
        """``GetSecretValue``: one version, by stage (default ``AWSCURRENT``) or id."""
        with self._request("GetSecretValue", params) as request:
            stage, version_id = params.get("VersionStage"), params.get("VersionId")
            return self._get_one(request.ids[0], version_id, stage)

    def batch_get_secret_value(self, **params: Any) -> dict[str, Any]:
        """``BatchGetSecretValue`` for ``SecretIdList`` (``AWSCURRENT`` only; no paging)."""
        with self._request("BatchGetSecretValue", params, per_secret=True) as request:
            ids = request.ids
            if params.get("Filters") is not None:
                if params.get("SecretIdList") is not None:
                    raise _ServiceError(
                        "InvalidParameterException",
                        "Either 'SecretIdList' or 'Filters' must be provided, but not both.",
                    )
                raise NotImplementedError(
                    "FakeSecretsManager.batch_get_secret_value supports SecretIdList only"
                )
            if not ids:
                raise _ServiceError(
                    "InvalidParameterException",
                    "Either 'SecretIdList' or 'Filters' must be provided, but not both.",
                )
            if len(ids) > BATCH_LIMIT:
                raise _ServiceError(
                    "InvalidParameterException",
                    f"SecretIdList can hold at most {BATCH_LIMIT} secret ids.",
                )
            if params.get("NextToken") is not None:
                raise _ServiceError("InvalidNextTokenException", "The NextToken value is invalid.")
            values: list[dict[str, Any]] = []
            errors: list[dict[str, Any]] = []
            for secret_id in ids:
                fault = request.secret_errors.get(secret_id)
                if fault is not None:
                    errors.append(
                        {"SecretId": secret_id, "ErrorCode": fault[0], "Message": fault[1]}
                    )
                    continue
                try:
                    item = self._get_one(secret_id, None, CURRENT)
                except _ServiceError as exc:
                    errors.append(
                        {"SecretId": secret_id, "ErrorCode": exc.code, "Message": exc.message}
                    )
                    continue
                del item["ResponseMetadata"]
                values.append(item)
            return {"SecretValues": values, "Errors": errors, "ResponseMetadata": _metadata()}

    def describe_secret(self, **params: Any) -> dict[str, Any]:
        """``DescribeSecret``: name, ARN, dates and ``VersionIdsToStages``; never values."""
        with self._request("DescribeSecret", params) as request:
            ids = request.ids
            secret = self._lookup(ids[0], readable=False)
            answer: dict[str, Any] = {"ARN": secret.arn, "Name": secret.name}
            if secret.description is not None:
                answer["Description"] = secret.description
            answer["LastChangedDate"] = secret.last_changed
            if secret.deleted_at is not None:
                answer["DeletedDate"] = secret.deleted_at
            if secret.versions:
                answer["VersionIdsToStages"] = {
                    vid: list(v.stages) for vid, v in secret.versions.items()
                }
            answer["CreatedDate"] = secret.created
            answer["ResponseMetadata"] = _metadata()
            return answer

    def create_secret(self, **params: Any) -> dict[str, Any]:
        """``CreateSecret``, with or without a first value (which gets ``AWSCURRENT``)."""
        sealed, both = _take_payload("CreateSecret", params)
        with self._request("CreateSecret", params, validated=True):
            _refuse_both(both)
            name: str = params["Name"]
            existing = self._secrets.get(name)
            if existing is not None:
                if existing.deleted_at is not None:
                    raise _ServiceError(
                        "InvalidRequestException",
                        "You can't create this secret because a secret with this name is "
                        "already scheduled for deletion.",
                    )
                raise _ServiceError(
                    "ResourceExistsException",
                    f"The operation failed because the secret {name} already exists.",
                )
            secret = self._create(name, params.get("Description"))
            answer: dict[str, Any] = {"ARN": secret.arn, "Name": secret.name}
            if sealed is not None:
                token = params.get("ClientRequestToken") or str(uuid.uuid4())
                version = self._add_version(secret, token, sealed)
                secret.label(version, [CURRENT])
                answer["VersionId"] = version.version_id
            answer["ResponseMetadata"] = _metadata()
            return answer

    def put_secret_value(self, **params: Any) -> dict[str, Any]:
        """``PutSecretValue``: a new version with ``VersionStages`` (default ``AWSCURRENT``)."""
        sealed, both = _take_payload("PutSecretValue", params)
        with self._request("PutSecretValue", params, validated=True) as request:
            ids = request.ids
            secret = self._lookup(ids[0], readable=False)
            self._check_writable(secret, service=True)
            _refuse_both(both)
            if sealed is None:
                raise _ServiceError(
                    "InvalidRequestException",
                    "You must provide either SecretString or SecretBinary.",
                )
            stages = list(params.get("VersionStages") or [CURRENT])
            token = params.get("ClientRequestToken") or str(uuid.uuid4())
            version = secret.versions.get(token)
            if version is not None:
                if not version.sealed.same_as(sealed):
                    raise _ServiceError(
                        "ResourceExistsException",
                        f"You can't use ClientRequestToken {token} because that value is "
                        f"already in use for a version of secret {secret.arn}.",
                    )
            else:
                version = self._add_version(secret, token, sealed)
                secret.label(version, stages)
            return {
                "ARN": secret.arn,
                "Name": secret.name,
                "VersionId": version.version_id,
                "VersionStages": list(version.stages),
                "ResponseMetadata": _metadata(),
            }

    def update_secret_version_stage(self, **params: Any) -> dict[str, Any]:
        """``UpdateSecretVersionStage``: move or remove one label (rotation's finishSecret)."""
        with self._request("UpdateSecretVersionStage", params) as request:
            ids = request.ids
            secret = self._lookup(ids[0], readable=False)
            self._check_writable(secret, service=True)
            label: str = params["VersionStage"]
            move_to = params.get("MoveToVersionId")
            remove_from = params.get("RemoveFromVersionId")
            for version_id in (move_to, remove_from):
                if version_id is not None and version_id not in secret.versions:
                    raise _ServiceError(
                        "InvalidParameterException", f"Not a valid version: {version_id}"
                    )
            holder = secret.holder(label)
            if remove_from is not None and (holder is None or holder.version_id != remove_from):
                raise _ServiceError(
                    "InvalidParameterException",
                    f"Version stage {label} not found in version {remove_from}",
                )
            if move_to is not None:
                if holder is not None and holder.version_id != move_to and remove_from is None:
                    raise _ServiceError(
                        "InvalidParameterException",
                        f"The parameter RemoveFromVersionId can't be empty. Staging label "
                        f"{label} is currently attached to version {holder.version_id}, so "
                        f"you must explicitly reference that version in RemoveFromVersionId.",
                    )
                secret.label(secret.versions[move_to], [label])
            elif holder is not None:
                holder.stages.remove(label)
                secret.last_changed = _now()
            return {"ARN": secret.arn, "Name": secret.name, "ResponseMetadata": _metadata()}

    def delete_secret(self, **params: Any) -> dict[str, Any]:
        """``DeleteSecret``: schedule deletion (default 30 days) or, when forced, delete now."""
        with self._request("DeleteSecret", params) as request:
            ids = request.ids
            secret = self._lookup(ids[0], readable=False)
            force = bool(params.get("ForceDeleteWithoutRecovery"))
            window = params.get("RecoveryWindowInDays")
            if force and window is not None:
                raise _ServiceError(
                    "InvalidParameterException",
                    "You can't use ForceDeleteWithoutRecovery in conjunction with "
                    "RecoveryWindowInDays.",
                )
            if window is not None and not 7 <= window <= 30:
                raise _ServiceError(
                    "InvalidParameterException",
                    "The RecoveryWindowInDays value must be between 7 and 30 days (inclusive).",
                )
            now = _now()
            if force:
                self._forget(secret)
                deletion = now
            else:
                if secret.deleted_at is None:
                    secret.deleted_at = now
                    secret.deletion_date = now + timedelta(days=window or 30)
                deletion = secret.deletion_date or now
            return {
                "ARN": secret.arn,
                "Name": secret.name,
                "DeletionDate": deletion,
                "ResponseMetadata": _metadata(),
            }

    # -------------------------------------------------------------- internals

    def _request(
        self,
        operation: str,
        params: dict[str, Any],
        *,
        per_secret: bool = False,
        validated: bool = False,
    ) -> _RequestScope:
        if not validated:
            _validate(operation, params)
        return _RequestScope(self, operation, params, per_secret)

    def _ids_in(self, params: Mapping[str, Any]) -> list[str]:
        if "SecretIdList" in params:
            return list(params["SecretIdList"] or ())
        if "Name" in params:
            return [params["Name"]]
        return [params["SecretId"]] if "SecretId" in params else []

    def _same_secret(self, wanted: str, requested: str) -> bool:
        if wanted == requested:
            return True
        a, b = self._find(wanted), self._find(requested)
        return a is not None and a is b

    def _take_fault(
        self, operation: str, ids: list[str], per_secret: bool
    ) -> tuple[_Fault | None, dict[str, tuple[str, str]]]:
        """The first fault that fails this request, consuming one of its ``times``.

        In a batch call, per-secret faults do not fail the call: they are returned
        as ``{secret_id: (code, message)}`` for the answer's ``Errors``.
        """
        secret_errors: dict[str, tuple[str, str]] = {}
        for fault in list(self._faults):
            if fault.operation is not None and fault.operation != operation:
                continue
            matched = (
                ids
                if fault.secret_id is None
                else [i for i in ids if self._same_secret(fault.secret_id, i)]
            )
            if fault.secret_id is not None and not matched:
                continue
            if per_secret and fault.code in _PER_SECRET_CODES:
                new = [i for i in matched if i not in secret_errors]
                if new:
                    for secret_id in new:
                        message = self._fault_message(fault.code, operation, secret_id)
                        secret_errors[secret_id] = (fault.code, message)
                    self._consume(fault)
                continue
            self._consume(fault)
            return fault, {}
        return None, secret_errors

    def _consume(self, fault: _Fault) -> None:
        if fault.remaining is not None:
            fault.remaining -= 1
            if fault.remaining <= 0:
                self._faults.remove(fault)

    def _fault_message(self, code: str, operation: str, secret_id: str | None) -> str:
        template = _FAULT_MESSAGES.get(code)
        if template is None:
            return f"{code} (injected by FakeSecretsManager.fail)"
        return template.format(account=self._account, operation=operation, secret=secret_id)

    def _fault_error(self, fault: _Fault, operation: str, ids: list[str]) -> Exception:
        from botocore.exceptions import EndpointConnectionError, ReadTimeoutError

        if fault.code == UNAVAILABLE:
            return EndpointConnectionError(endpoint_url=self.meta.endpoint_url)
        if fault.code == TIMEOUT:
            return ReadTimeoutError(endpoint_url=self.meta.endpoint_url)
        message = self._fault_message(fault.code, operation, ids[0] if ids else "*")
        return _client_error(fault.code, message, fault.status, operation)

    def _find(self, secret_id: str) -> _Secret | None:
        """By name, full ARN, or partial ARN (the ARN without its 6-character suffix)."""
        secret = self._secrets.get(secret_id)
        if secret is None and secret_id.startswith("arn:"):
            secret = self._by_arn.get(secret_id)
            if secret is None and secret_id.startswith(self._arn_prefix):
                secret = self._secrets.get(secret_id[len(self._arn_prefix) :])
        return secret

    def _require(self, secret_id: str) -> _Secret:
        """Test helpers: a plain ``KeyError`` (these are not requests to the service)."""
        secret = self._find(secret_id)
        if secret is None:
            raise KeyError(f"no secret {secret_id!r} in this FakeSecretsManager")
        return secret

    def _lookup(self, secret_id: str, *, readable: bool) -> _Secret:
        secret = self._find(secret_id)
        if secret is None:
            raise _ServiceError("ResourceNotFoundException", _NOT_FOUND)
        if readable and secret.deleted_at is not None:
            raise _ServiceError("InvalidRequestException", _MARKED_DELETED)
        return secret

    def _check_writable(self, secret: _Secret, *, service: bool = False) -> None:
        if secret.deleted_at is None:
            return
        if service:
            raise _ServiceError("InvalidRequestException", _MARKED_DELETED)
        raise ValueError(f"secret {secret.name!r} is scheduled for deletion")

    def _get_one(
        self, secret_id: str, version_id: str | None, version_stage: str | None
    ) -> dict[str, Any]:
        secret = self._lookup(secret_id, readable=True)
        if version_id is not None:
            version = secret.versions.get(version_id)
            if version is None:
                raise _ServiceError(
                    "ResourceNotFoundException",
                    f"Secrets Manager can't find the specified secret value for VersionId: "
                    f"{version_id}",
                )
            if version_stage is not None and version_stage not in version.stages:
                raise _ServiceError(
                    "InvalidRequestException",
                    "You provided a VersionStage that is not associated to the provided VersionId.",
                )
        else:
            stage = version_stage or CURRENT
            found = secret.holder(stage)
            if found is None:
                raise _ServiceError(
                    "ResourceNotFoundException",
                    f"Secrets Manager can't find the specified secret value for staging "
                    f"label: {stage}",
                )
            version = found
        answer: dict[str, Any] = {
            "ARN": secret.arn,
            "Name": secret.name,
            "VersionId": version.version_id,
        }
        key = "SecretBinary" if version.sealed.binary else "SecretString"
        answer[key] = version.sealed.reveal()
        answer["VersionStages"] = list(version.stages)
        answer["CreatedDate"] = version.created
        answer["ResponseMetadata"] = _metadata()
        return answer

    def _create(self, name: str, description: str | None) -> _Secret:
        suffix = "".join(self._random.choices(string.ascii_letters + string.digits, k=6))
        secret = _Secret(name, f"{self._arn_prefix}{name}-{suffix}", description)
        self._secrets[name] = secret
        self._by_arn[secret.arn] = secret
        return secret

    def _forget(self, secret: _Secret) -> None:
        self._secrets.pop(secret.name, None)
        self._by_arn.pop(secret.arn, None)

    def _add_version(self, secret: _Secret, version_id: str, sealed: _Sealed) -> _Version:
        if version_id in secret.versions:
            raise ValueError(f"secret {secret.name!r} already has a version {version_id!r}")
        version = _Version(version_id, sealed)
        secret.versions[version_id] = version
        secret.last_changed = version.created
        return version

    # -------------------------------------------------------------- rotation steps

    def _rotation_create(self, secret_id: str, token: str, sealed: _Sealed) -> None:
        with self._lock:
            secret = self._require(secret_id)
            self._check_writable(secret)
            if secret.holder(CURRENT) is None:
                raise KeyError(f"secret {secret_id!r} has no AWSCURRENT version to rotate")
            existing = secret.versions.get(token)
            if existing is not None:
                if PENDING not in existing.stages:
                    raise ValueError(f"version {token!r} of {secret_id!r} exists already")
                return  # createSecret is retried by AWS with the same token: nothing to do
            pending = secret.holder(PENDING)
            if pending is not None and CURRENT not in pending.stages:
                # AWS: RotateSecret refuses while AWSPENDING is on a version other than
                # AWSCURRENT's, taking it for a rotation still in progress.
                raise RuntimeError(
                    f"a rotation of {secret_id!r} is still in progress (AWSPENDING is on "
                    f"version {pending.version_id!r}); finish it, or remove the label with "
                    f"update_secret_version_stage, before starting another"
                )
            secret.label(self._add_version(secret, token, sealed), [PENDING])

    def _rotation_check(self, secret_id: str, token: str) -> None:
        with self._lock:
            secret = self._require(secret_id)
            version = secret.versions.get(token)
            if version is None or PENDING not in version.stages:
                raise RuntimeError(
                    f"rotation of {secret_id!r}: AWSPENDING no longer points at version {token!r}"
                )

    def _rotation_finish(self, secret_id: str, token: str) -> None:
        with self._lock:
            secret = self._require(secret_id)
            self._check_writable(secret)
            version = secret.versions.get(token)
            if version is None:
                raise RuntimeError(f"rotation of {secret_id!r}: version {token!r} is gone")
            if CURRENT not in version.stages:
                secret.make_current(version)
            if PENDING in version.stages:
                version.stages.remove(PENDING)
            secret.last_changed = _now()


@dataclass
class _Request:
    ids: list[str]
    secret_errors: dict[str, tuple[str, str]]


class _RequestScope:
    """One request: count it, apply faults, turn the fake's answers into botocore errors."""

    def __init__(
        self, fake: FakeSecretsManager, operation: str, params: Mapping[str, Any], per_secret: bool
    ) -> None:
        self._fake = fake
        self._operation = operation
        self._ids = fake._ids_in(params)
        self._per_secret = per_secret

    def __enter__(self) -> _Request:
        fake = self._fake
        fake._lock.acquire()
        try:
            fake.calls[self._operation] += 1
            fault, secret_errors = fake._take_fault(self._operation, self._ids, self._per_secret)
            if fault is not None:
                raise fake._fault_error(fault, self._operation, self._ids)
        except BaseException:
            fake._lock.release()
            raise
        return _Request(self._ids, secret_errors)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._fake._lock.release()
        if isinstance(exc, _ServiceError):
            error = _client_error(exc.code, exc.message, exc.status, self._operation)
            # Not chained: the caller sees what botocore would raise, and nothing more.
            raise error from None


class _Meta:
    """The parts of ``client.meta`` that make sense without an endpoint (no event hooks)."""

    def __init__(self, region_name: str) -> None:
        self.region_name = region_name
        self.partition = "aws"
        self.endpoint_url = f"https://secretsmanager.{region_name}.amazonaws.com"

    @property
    def service_model(self) -> Any:
        return _service_model()

    @property
    def method_to_api_mapping(self) -> dict[str, str]:
        return dict(_method_names())


# ------------------------------------------------------------------ rotations


class Rotation:
    """One rotation of a fake secret, walked the way AWS calls a rotation function.

    Each step method runs the steps before it that have not run yet, then itself:
    ``createSecret`` stores the new value as ``AWSPENDING`` (version id = ``token``),
    refusing, as AWS does, while another version than ``AWSCURRENT``'s is pending;
    ``setSecret`` calls your ``set_secret`` hook (change the test database here);
    ``testSecret`` checks ``AWSPENDING`` is still this version, then calls your
    ``test_secret`` hook; ``finishSecret`` moves ``AWSCURRENT`` to the new version
    (the old one becomes ``AWSPREVIOUS``) and removes ``AWSPENDING``. Between
    ``set_secret()`` and ``finish_secret()`` is the window in which a database
    already wants the new password while ``AWSCURRENT`` is still the old one.
    """

    def __init__(
        self,
        fake: FakeSecretsManager,
        secret_id: str,
        sealed: _Sealed,
        *,
        token: str,
        set_secret: RotationHook | None,
        test_secret: RotationHook | None,
    ) -> None:
        self.secret_id = secret_id
        self.token = token
        """The ``ClientRequestToken``, which is also the new version's id."""
        self._fake = fake
        self._sealed = sealed
        self._hooks = {"setSecret": set_secret, "testSecret": test_secret}
        self._done: list[str] = []
        self._step_lock = threading.RLock()
        self._running = False

    def __repr__(self) -> str:
        return (
            f"Rotation(secret_id={self.secret_id!r}, token={self.token!r}, "
            f"completed={tuple(self._done)!r})"
        )

    @property
    def completed(self) -> tuple[str, ...]:
        """The steps run so far, in order."""
        return tuple(self._done)

    @property
    def finished(self) -> bool:
        return "finishSecret" in self._done

    def create_secret(self) -> None:
        self._advance("createSecret")

    def set_secret(self) -> None:
        self._advance("setSecret")

    def test_secret(self) -> None:
        self._advance("testSecret")

    def finish_secret(self) -> None:
        self._advance("finishSecret")

    def run(self) -> str:
        """Every remaining step; returns the new ``AWSCURRENT`` version id."""
        if not self.finished:
            self._advance("finishSecret")
        return self.token

    def steps(self) -> Iterator[str]:
        """Run the remaining steps one at a time, yielding each step's name once it has run."""
        for step in ROTATION_STEPS:
            if step not in self._done:
                self._advance(step)
                yield step

    def __enter__(self) -> Rotation:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.run()

    def _advance(self, target: str) -> None:
        with self._step_lock:
            if self._running:
                # Re-entered from a hook on this thread: a plain Lock would deadlock here.
                raise RuntimeError(f"rotation step {target} cannot be run from inside a hook")
            if target in self._done:
                raise RuntimeError(f"rotation step {target} has already run")
            self._running = True
            try:
                for step in ROTATION_STEPS[: ROTATION_STEPS.index(target) + 1]:
                    if step not in self._done:
                        self._run_step(step)
                        self._done.append(step)
            finally:
                self._running = False

    def _run_step(self, step: str) -> None:
        fake = self._fake
        if step == "createSecret":
            fake._rotation_create(self.secret_id, self.token, self._sealed)
        elif step == "testSecret":
            fake._rotation_check(self.secret_id, self.token)
        elif step == "finishSecret":
            fake._rotation_finish(self.secret_id, self.token)
        hook = self._hooks.get(step)
        if hook is not None:
            hook(self)  # outside the fake's lock: a hook may read the fake or wait on others
