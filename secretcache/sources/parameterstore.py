"""Parameter Store as a source: ``GetParameter``, ``GetParameters``, ``GetParametersByPath``.

A key is a parameter name plus what selects it: the latest version (the stage
slot holds :data:`LATEST`), a label (``name:label``), a version (``name:3``, the
version-id slot), or a whole path (:data:`PATH` / :data:`PATH_RECURSIVE`, fetched
page after page into one value). Values are always read ``WithDecryption``: a
SecureString arrives decrypted, a String is unaffected, and the
``/aws/reference/secretsmanager/`` path requires it.

The account's Parameter Store read quota is 40 requests/s by default, shared by
every reader in the region, which is why the engine's coalescing and the batch of
10 names per ``GetParameters`` matter more here than for Secrets Manager.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from ..value import SecretValue
from .calls import (
    Caller,
    CallerSource,
    UnreadableResponseError,
    error_code,
    is_answer,
    translate,
    unreadable,
)

__all__ = [
    "BATCH_LIMIT",
    "LATEST",
    "PATH",
    "PATH_RECURSIVE",
    "ParameterStoreSource",
    "split_selector",
]

log = logging.getLogger("secretcache")

BATCH_LIMIT = 10
"""``GetParameters`` accepts at most this many names per call."""

LATEST = "$LATEST"
PATH = "$PATH"
PATH_RECURSIVE = "$PATH_RECURSIVE"
# Labels may hold only letters, digits, '.', '-' and '_': none of these can clash.

REFERENCE_PREFIX = "/aws/reference/secretsmanager/"


def split_selector(name: str) -> tuple[str, str | None, str | None]:
    """``(name, label, version)`` of ``name``, ``name:label`` or ``name:3``.

    Only the last path segment may carry a selector, so an ARN's colons are left alone.
    """
    head, slash, last = name.rpartition("/")
    if ":" not in last:
        return name, None, None
    base, _, selector = last.rpartition(":")
    plain = f"{head}{slash}{base}"
    if not base or not selector:
        return name, None, None
    if selector.isdigit():
        return plain, None, selector
    return plain, selector, None


class ParameterStoreSource(CallerSource):
    """Fetches parameters through one ``ssm`` client."""

    batch_limit = BATCH_LIMIT
    batch_stage = LATEST

    def __init__(
        self,
        client: Any | None,
        *,
        retry_attempts: int,
        count_call: Callable[[], None],
        region: str | None = None,
    ) -> None:
        self.caller = Caller(
            client,
            retry_attempts=retry_attempts,
            count_call=count_call,
            service="ssm",
            operations=("GetParameter", "GetParameters", "GetParametersByPath"),
            region=region,
        )

    def get(self, name: str, stage: str | None, version_id: str | None) -> SecretValue:
        """One parameter (or one whole path); typed errors that name it, never its value."""
        tally = [0]
        try:
            return self._read_value(name, stage, version_id, tally)
        except Exception as exc:
            if not is_answer(exc):
                raise
            raise translate(
                exc, name, stage, version_id, attempts=tally[0], noun="parameter"
            ) from exc

    def _read_value(
        self, name: str, stage: str | None, version_id: str | None, tally: list[int]
    ) -> SecretValue:
        failure: Exception | None = None
        response: dict[str, Any] | None = None
        operation = "GetParameter"
        try:
            if stage in (PATH, PATH_RECURSIVE):
                operation = "GetParametersByPath"
                return self._read_path(name, stage == PATH_RECURSIVE, tally)
            selector = version_id if version_id is not None else stage
            full = name if selector in (None, LATEST) else f"{name}:{selector}"
            response = self.caller.call("get_parameter", tally, Name=full, WithDecryption=True)
            return _value_of(response.get("Parameter"), requested=name, stage=stage)
        except Exception as exc:
            if is_answer(exc):
                raise
            failure = unreadable(
                exc, name, stage, version_id, operation=operation, noun="parameter"
            )
            del exc
        response = None  # the reply holds the value: not kept in this frame's locals
        raise failure

    def _read_path(self, path: str, recursive: bool, tally: list[int]) -> SecretValue:
        """Every page of a path, as one value: a JSON object of name -> value."""
        values: dict[str, str] = {}
        versions: list[str] = []
        params: dict[str, Any] = {"Path": path, "Recursive": recursive, "WithDecryption": True}
        while True:
            page = self.caller.call("get_parameters_by_path", tally, **params)
            for item in page.get("Parameters") or ():
                values[item["Name"]] = item["Value"]
                versions.append(f"{item['Name']}\0{item.get('Version')}")
            token = page.get("NextToken")
            if not token:
                break
            params["NextToken"] = token
        # The version of a path is the set of its parameters' versions: any change
        # (a new parameter, a new version, a deletion) gives a new one.
        digest = hashlib.sha256("\n".join(sorted(versions)).encode()).hexdigest()[:32]
        return SecretValue(
            name=path,
            arn=None,
            version_id=digest,
            version_stages=(),
            secret_string=json.dumps(values, ensure_ascii=False),
        )

    def batch_get(self, names: Sequence[str]) -> dict[str, SecretValue]:
        """``GetParameters`` for up to 10 plain names; what it could not serve is absent."""
        if not names:
            return {}
        try:
            response = self.caller.call(
                "get_parameters", [0], Names=list(names), WithDecryption=True
            )
        except Exception as exc:
            log.debug(
                "GetParameters failed (%s); reading one by one",
                error_code(exc) or type(exc).__name__,
            )
            return {}
        found: dict[str, SecretValue] = {}
        for item in response.get("Parameters") or ():
            try:
                value = _value_of(item, requested=None)
            except Exception:  # unreadable item: fetched singly, with a typed error
                continue
            if value.name in names:
                found[value.name] = value
        return found


def _value_of(parameter: Any, *, requested: str | None, stage: str | None = None) -> SecretValue:
    """A ``SecretValue`` from one parameter record; its ``Version`` is the version id."""
    if not isinstance(parameter, dict) or not isinstance(parameter.get("Value"), str):
        raise UnreadableResponseError("the reply holds no parameter value")
    name = parameter.get("Name") or ""
    if name == requested:
        name = requested
    version = str(parameter.get("Version") or "")
    stages: tuple[str, ...] = ()
    source = parameter.get("SourceResult")
    if isinstance(source, str) and (requested or name).startswith(REFERENCE_PREFIX):
        wanted = "AWSCURRENT" if stage in (None, LATEST) else stage
        version, stages = _reference_version(source, version, wanted)
    created = parameter.get("LastModifiedDate")
    if isinstance(created, datetime) and created.tzinfo is not None:
        created = created.astimezone(UTC)
    return SecretValue(
        name=name,
        arn=parameter.get("ARN"),
        version_id=version,
        version_stages=stages,
        secret_string=parameter["Value"],
        created_date=created if isinstance(created, datetime) else None,
    )


def _reference_version(
    source: str, fallback: str, wanted_stage: str
) -> tuple[str, tuple[str, ...]]:
    """The Secrets Manager version id and stages of a reference parameter.

    ``SourceResult`` is the source's own answer: a ``GetSecretValue`` result
    (``VersionId``, ``VersionStages`` -- and the secret, of which nothing is kept)
    or a description mapping version ids to stages, where the version carrying
    the stage asked for is the one read.
    """
    try:
        answer = json.loads(source)
    except ValueError:
        return fallback, ()
    if not isinstance(answer, dict):
        return fallback, ()
    version, stages = answer.get("VersionId"), answer.get("VersionStages")
    if not isinstance(version, str):
        mapping = answer.get("VersionIdsToStages") or answer.get("SecretVersionsToStages")
        version, stages = None, None
        if isinstance(mapping, dict):
            for candidate, labels in mapping.items():
                if isinstance(labels, list) and wanted_stage in labels:
                    version, stages = candidate, labels
    del answer
    if not isinstance(version, str):
        return fallback, ()
    labels = tuple(s for s in stages if isinstance(s, str)) if isinstance(stages, list) else ()
    return version, labels
