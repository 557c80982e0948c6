"""How every source talks to AWS: one retrying, counting caller per client.

Secrets Manager and Parameter Store are reached the same way: a boto3 client
(the caller's, or one the library creates with bounded timeouts and botocore's
retries off), retries of throttling and transient faults with tenacity (or the
client's own retries -- never both, so attempts never multiply), every request
counted where botocore sends it, and every failure translated into a typed
:mod:`secretcache.errors` exception whose cause is the botocore error. A reply
that cannot be read leaves as a typed error holding nothing of the reply.

botocore, boto3 and tenacity are imported lazily so ``import secretcache``
stays cheap (Lambda cold starts pay for every import).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

from ..errors import (
    SecretAccessDeniedError,
    SecretCacheError,
    SecretConfigurationError,
    SecretNotFoundError,
    SecretUnavailableError,
    describe_target,
)

__all__ = ["CONNECT_TIMEOUT", "READ_TIMEOUT", "Caller", "error_code", "is_transient", "translate"]

log = logging.getLogger("secretcache")

CONNECT_TIMEOUT = 2.0
READ_TIMEOUT = 3.0
"""Timeouts of the client the library creates itself (a client you pass keeps yours).

With ``retry_attempts=3`` the one caller doing a fetch against an endpoint that
never answers waits at most about 3 x 3 s plus < 2 s of backoff; readers that
hold a cached value never wait on it at all.
"""

FETCH_DEADLINE = 15.0
"""No new attempt is started once one fetch has spent this many seconds."""

_NOT_FOUND_CODES = frozenset(
    {"ResourceNotFoundException", "ParameterNotFound", "ParameterVersionNotFound"}
)
_DENIED_CODES = frozenset(
    {
        "AccessDeniedException",
        "AccessDenied",
        "DecryptionFailure",
        "KMSAccessDeniedException",
        "KMSDisabledException",
        "KMSInvalidStateException",
        "KMSNotFoundException",
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "ExpiredTokenException",
        "InvalidClientTokenId",
        "InvalidKeyId",
    }
)
_TRANSIENT_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "ProvisionedThroughputExceededException",
        "InternalServiceError",
        "InternalServiceErrorException",
        "InternalServerError",
        "InternalFailure",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)


def error_code(exc: BaseException) -> str | None:
    """The AWS error code of a botocore ``ClientError``, else ``None``."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        return str(code) if code else None
    return None


def _http_status(exc: BaseException) -> int:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if isinstance(status, int):
            return status
    return 0


def is_transient(exc: BaseException) -> bool:
    """Throttling, 5xx and network faults: worth another attempt within one fetch."""
    from botocore import exceptions as bce
    from botocore.parsers import ResponseParserError

    if isinstance(exc, bce.ClientError):
        return error_code(exc) in _TRANSIENT_CODES or _http_status(exc) >= 500
    return isinstance(exc, bce.HTTPClientError | bce.ConnectionError | ResponseParserError)


def translate(
    exc: BaseException,
    secret_id: str,
    version_stage: str | None,
    version_id: str | None,
    *,
    attempts: int = 1,
    noun: str = "secret",
) -> SecretCacheError:
    """Map a botocore failure to the typed error the caller sees (message has no value)."""
    from botocore import exceptions as bce

    target = f"{noun} " + describe_target(secret_id, version_stage, version_id)
    where = {"secret_id": secret_id, "version_stage": version_stage, "version_id": version_id}
    code = error_code(exc)
    if code in _NOT_FOUND_CODES:
        return SecretNotFoundError(f"{target} was not found ({code})", **where)
    if code == "InvalidRequestException":
        # Reads of a deleted or deletion-scheduled secret are refused this way.
        return SecretNotFoundError(
            f"{target} cannot be read: it is deleted or scheduled for deletion ({code})",
            **where,
        )
    if code in ("InvalidParameterException", "ValidationException", "InvalidKeyId") and (
        code != "InvalidKeyId"
    ):
        return SecretNotFoundError(
            f"{target} was not found: the service rejected the id or label ({code})",
            **where,
        )
    if code in _DENIED_CODES or (code not in _TRANSIENT_CODES and _http_status(exc) == 403):
        return SecretAccessDeniedError(f"reading {target} was denied ({code})", **where)
    if isinstance(exc, bce.ParamValidationError):
        # botocore refuses before sending: an id or label no secret can have.
        report = str(exc.kwargs.get("report", "")).replace("\n", "; ")
        return SecretNotFoundError(
            f"{target} was not found: the request was refused before sending ({report})",
            **where,
        )
    if isinstance(exc, bce.NoCredentialsError | bce.PartialCredentialsError):
        return SecretAccessDeniedError(
            f"reading {target} failed: no AWS credentials were found", **where
        )
    if isinstance(exc, bce.NoRegionError | bce.ProfileNotFound):
        what = "no AWS region is configured" if isinstance(exc, bce.NoRegionError) else str(exc)
        return SecretConfigurationError(
            f"reading {target} failed: {what} (a configuration problem, not an outage)", **where
        )
    reason = code or type(exc).__name__
    tries = f" after {attempts} attempts" if attempts > 1 else ""
    return SecretUnavailableError(f"{target} is unavailable: {reason}{tries}", **where)


class RedactSecretPayloads(logging.Filter):
    """Blanks botocore's DEBUG dump of a request or response that carries a secret.

    botocore logs every request and response body at DEBUG, so turning on debug
    logging would otherwise print each ``GetSecretValue`` answer in full. Only
    records holding ``SecretString``/``SecretBinary`` are touched; everything
    else in botocore's log is left alone.
    """

    _MARKERS = ("SecretString", "SecretBinary", "Value")

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        for arg in args:
            # Runs only for records that pass the level check, i.e. with DEBUG on.
            if isinstance(arg, bytes | bytearray):
                text = arg.decode("utf-8", "replace")
            else:
                text = arg if isinstance(arg, str) else repr(arg)
            if any(marker in text for marker in self._MARKERS):
                record.msg = "<botocore debug record withheld by secretcache: it holds a secret>"
                record.args = ()
                break
        return True


_redaction_installed = False


def install_log_redaction() -> None:
    """Attach :class:`RedactSecretPayloads` to botocore's body-logging loggers, once."""
    global _redaction_installed
    if not _redaction_installed:
        _redaction_installed = True
        for name in ("botocore.parsers", "botocore.endpoint"):
            logging.getLogger(name).addFilter(RedactSecretPayloads())


def create_default_client(service: str = "secretsmanager", region: str | None = None) -> Any:
    """A client with bounded timeouts and no hidden botocore retries.

    Retries are ours (tenacity, counted in ``stats().api_calls``), so botocore's
    own are turned off; a fresh ``Session`` keeps creation thread-safe.
    """
    import boto3
    from botocore.config import Config

    config = Config(
        connect_timeout=CONNECT_TIMEOUT,
        read_timeout=READ_TIMEOUT,
        retries={"total_max_attempts": 1, "mode": "standard"},
        user_agent_extra="secretcache",
    )
    session: Any = boto3.session.Session()
    return session.client(service, region_name=region, config=config)


class Caller:
    """Calls one service through one client; knows nothing about caching.

    ``count_call`` is told about every request that leaves for the endpoint,
    counted where botocore sends it (``before-send``), so botocore's own retries
    in a caller's client are counted too. Retries are either ours (the client the
    library creates has botocore's turned off) or the client's (a caller's client
    keeps its own retry policy, and ours stands down): never both, so attempts
    never multiply. See docs/configuration.md.
    """

    def __init__(
        self,
        client: Any | None,
        *,
        retry_attempts: int,
        count_call: Callable[[], None],
        service: str = "secretsmanager",
        operations: tuple[str, ...] = ("GetSecretValue", "BatchGetSecretValue"),
        region: str | None = None,
    ) -> None:
        self._client = client
        self._service = service
        self._operations = operations
        self._region = region
        self._owns_client = client is None
        install_log_redaction()
        self._client_lock = threading.Lock()
        self._retry_attempts = retry_attempts
        self._count_call = count_call
        self._sending = threading.local()  # set while this source has a call in progress
        self._counts_sends = False
        if client is not None:
            self._watch_sends(client)
            if _client_retries(client):
                self._retry_attempts = 1

    def _watch_sends(self, client: Any) -> None:
        events = getattr(getattr(client, "meta", None), "events", None)
        register_first = getattr(events, "register_first", None)
        if callable(register_first):
            # Per operation: botocore calls handlers of the most specific event name
            # first, and a fault or stub registered there must not hide a send from us.
            event_service = getattr(getattr(client.meta, "service_model", None), "service_id", None)
            name = str(event_service or self._service).lower().replace(" ", "-")
            for operation in self._operations:
                register_first(f"before-send.{name}.{operation}", self._on_send)
            self._counts_sends = True

    def _on_send(self, **_: Any) -> None:
        # Only requests this source made: a client shared with application code
        # (or a test creating secrets) sends others on the same event.
        if getattr(self._sending, "active", False):
            self._count_call()

    @property
    def client(self) -> Any:
        """The client in use, created on first need when none was given."""
        client = self._client
        if client is None:
            with self._client_lock:
                if self._client is None:
                    created = create_default_client(self._service, self._region)
                    self._watch_sends(created)
                    self._client = created
                client = self._client
        return client

    def after_fork(self) -> None:
        """In a forked child: never reuse the parent's sockets or its lock."""
        self._client_lock = threading.Lock()
        if self._owns_client:
            self._client = None
            return
        session = getattr(getattr(self._client, "_endpoint", None), "http_session", None)
        close = getattr(session, "close", None)
        if callable(close):
            try:
                close()
            except Exception:  # pragma: no cover - best effort on foreign clients
                log.debug("could not drop the inherited HTTP connections", exc_info=True)

    def _attempts(self, attempts: int) -> Iterator[Any]:
        # Imported here, like botocore: a Lambda cold start pays only for what it uses.
        from tenacity import (
            Retrying,
            retry_if_exception,
            stop_after_attempt,
            stop_after_delay,
            wait_random_exponential,
        )

        return iter(
            Retrying(
                stop=stop_after_attempt(attempts) | stop_after_delay(FETCH_DEADLINE),
                wait=wait_random_exponential(multiplier=0.05, max=2.0),
                retry=retry_if_exception(is_transient),
                reraise=True,
            )
        )

    def call(
        self, operation: str, tally: list[int], *, retry: bool = True, **params: Any
    ) -> dict[str, Any]:
        """One logical call with retries; ``tally[0]`` counts the attempts made."""
        client = self.client
        sending = self._sending
        for attempt in self._attempts(self._retry_attempts if retry else 1):
            with attempt:
                tally[0] += 1
                if not self._counts_sends:
                    self._count_call()
                sending.active = True
                try:
                    response: dict[str, Any] = getattr(client, operation)(**params)
                finally:
                    sending.active = False
                return response
        raise AssertionError("unreachable: tenacity either returns or re-raises")


def is_aws_failure(exc: BaseException) -> bool:
    from botocore import exceptions as bce

    return isinstance(exc, bce.BotoCoreError | bce.ClientError)


def is_answer(exc: BaseException) -> bool:
    """A botocore failure that holds no response body: an error answer or a network fault."""
    from botocore.parsers import ResponseParserError

    return is_aws_failure(exc) and not isinstance(exc, ResponseParserError)


class UnreadableResponseError(Exception):
    """Stands in for whatever failed while reading a reply, without the reply itself."""


def unreadable(
    exc: BaseException,
    secret_id: str,
    version_stage: str | None,
    version_id: str | None,
    *,
    operation: str = "GetSecretValue",
    noun: str = "secret",
) -> SecretUnavailableError:
    """A typed error for a reply that could not be read, holding nothing of the reply."""
    kind = type(exc).__name__
    target = describe_target(secret_id, version_stage, version_id)
    cause = UnreadableResponseError(f"{kind} while reading the reply to {operation}")
    error = SecretUnavailableError(
        f"{noun} {target} is unavailable: the service sent a reply that could not be read ({kind})",
        secret_id=secret_id,
        version_stage=version_stage,
        version_id=version_id,
    )
    error.__cause__ = cause
    error.__suppress_context__ = True
    return error


def _client_retries(client: Any) -> bool:
    """Whether a caller's client retries by itself (botocore's default does).

    Only an explicit ``retries={"total_max_attempts": 1}`` (or ``max_attempts: 0``)
    turns botocore's retries off; a stand-in without botocore's ``meta`` retries nothing.
    """
    config = getattr(getattr(client, "meta", None), "config", None)
    if config is None:
        return False
    retries = getattr(config, "retries", None) or {}
    return not (retries.get("total_max_attempts") == 1 or retries.get("max_attempts") == 0)


class CallerSource:
    """What a source that reaches AWS through a :class:`Caller` shares."""

    caller: Caller

    @property
    def client(self) -> Any:
        return self.caller.client

    def after_fork(self) -> None:
        self.caller.after_fork()


def answered(error: BaseException) -> bool:
    """Whether a failure is the service's *answer* (a 4xx it chose to send), not an outage.

    Failover uses it: a region that answered knows something, so asking another
    region would only hide it -- even for a code this library does not know.
    """
    from botocore import exceptions as bce

    cause = error.__cause__
    return isinstance(cause, bce.ClientError) and not is_transient(cause)
