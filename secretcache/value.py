"""``SecretValue``: one fetched version of a secret, immutable and safe to print."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from .errors import SecretDecodeError, describe_target

__all__ = ["SecretValue"]

UNPARSED: Any = object()


class SecretValue:
    """An immutable record of one version of a secret.

    ``repr()`` and ``str()`` show the name, version and stages only, so a value
    can be logged or appear in a traceback's locals without exposing the secret.
    The JSON form is parsed at most once per fetched version and handed out as a
    read-only mapping, so callers can share it without copying.
    """

    __slots__ = (
        "_json",
        "arn",
        "created_date",
        "name",
        "secret_binary",
        "secret_string",
        "version_id",
        "version_stages",
    )

    name: str
    arn: str | None
    version_id: str
    version_stages: tuple[str, ...]
    secret_string: str | None
    secret_binary: bytes | None
    created_date: datetime | None
    _json: Any

    def __init__(
        self,
        *,
        name: str,
        arn: str | None,
        version_id: str,
        version_stages: tuple[str, ...] = (),
        secret_string: str | None = None,
        secret_binary: bytes | None = None,
        created_date: datetime | None = None,
    ) -> None:
        set_ = object.__setattr__
        set_(self, "name", name)
        set_(self, "arn", arn)
        set_(self, "version_id", version_id)
        set_(self, "version_stages", tuple(version_stages))
        set_(self, "secret_string", secret_string)
        set_(self, "secret_binary", secret_binary)
        set_(self, "created_date", created_date)
        set_(self, "_json", UNPARSED)

    @classmethod
    def from_response(
        cls, response: Mapping[str, Any], *, requested_id: str | None = None
    ) -> SecretValue:
        """Build from a ``GetSecretValue`` (or ``BatchGetSecretValue`` item) response.

        Small on purpose, since thousands may be cached: the name reuses the id the
        caller asked with when they are equal, stage tuples are shared, and the
        creation date is kept in UTC rather than with the per-response local-time
        zone object botocore attaches (about 450 bytes each).
        """
        binary = response.get("SecretBinary")
        name = response.get("Name") or ""
        if name == requested_id:
            name = requested_id
        created = response.get("CreatedDate")
        if isinstance(created, datetime) and created.tzinfo is not None:
            created = created.astimezone(UTC)
        return cls(
            name=name,
            arn=response.get("ARN"),
            version_id=response.get("VersionId") or "",
            version_stages=_shared_stages(response.get("VersionStages") or ()),
            secret_string=response.get("SecretString"),
            secret_binary=bytes(binary) if binary is not None else None,
            created_date=created,
        )

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"SecretValue is immutable (cannot set {name!r})")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"SecretValue is immutable (cannot delete {name!r})")

    def __repr__(self) -> str:
        kind = "binary" if self.secret_binary is not None else "string"
        return (
            f"SecretValue(name={self.name!r}, version_id={self.version_id!r}, "
            f"version_stages={self.version_stages!r}, kind={kind!r})"
        )

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SecretValue):
            return NotImplemented
        return (
            self.arn == other.arn
            and self.name == other.name
            and self.version_id == other.version_id
            and self.secret_string == other.secret_string
            and self.secret_binary == other.secret_binary
        )

    def __hash__(self) -> int:
        return hash((self.arn, self.name, self.version_id))

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("SecretValue cannot be pickled: it would write the secret somewhere")

    def json(self) -> Mapping[str, Any]:
        """The value parsed as a JSON object, read-only; parsed once and then shared."""
        parsed = self._json
        if parsed is UNPARSED:
            parsed = self._parse_json(self.name, None, self.version_id)
        return parsed  # type: ignore[no-any-return]

    def _parse_json(
        self, secret_id: str, version_stage: str | None, version_id: str | None
    ) -> Mapping[str, Any]:
        """Parse once; errors name the entry that was asked for, never the content."""
        parsed = self._json
        if parsed is not UNPARSED:
            return parsed  # type: ignore[no-any-return]
        target = describe_target(secret_id, version_stage, version_id)
        text = self.secret_string
        if text is None:
            raise SecretDecodeError(
                f"secret {target} holds binary data, not a JSON string",
                secret_id=secret_id,
                version_stage=version_stage,
                version_id=version_id,
            )
        cause: json.JSONDecodeError | None = None
        try:
            loaded = json.loads(text)
        except ValueError as exc:
            # The JSON error's message quotes the offending text: keep only its position.
            cause = _scrubbed_json_error(exc)
        if cause is not None:
            # Raised outside the ``except`` block: otherwise the original error, whose
            # ``.doc`` is the whole secret, would ride along as ``__context__``.
            raise SecretDecodeError(
                f"secret {target} is not valid JSON (line {cause.lineno}, column {cause.colno})",
                secret_id=secret_id,
                version_stage=version_stage,
                version_id=version_id,
            ) from cause
        if not isinstance(loaded, dict):
            raise SecretDecodeError(
                f"secret {target} is JSON but not an object (got {type(loaded).__name__})",
                secret_id=secret_id,
                version_stage=version_stage,
                version_id=version_id,
            )
        parsed = MappingProxyType(loaded)
        object.__setattr__(self, "_json", parsed)
        return parsed


_STAGE_TUPLES: dict[tuple[str, ...], tuple[str, ...]] = {}
_STAGE_TUPLES_MAX = 256


def _shared_stages(labels: Any) -> tuple[str, ...]:
    """One tuple object per distinct set of stage labels (there are only a few)."""
    stages = tuple(sys.intern(label) for label in labels)
    shared = _STAGE_TUPLES.get(stages)
    if shared is None:
        if len(_STAGE_TUPLES) < _STAGE_TUPLES_MAX:
            _STAGE_TUPLES[stages] = stages
        shared = stages
    return shared


def _scrubbed_json_error(exc: ValueError) -> json.JSONDecodeError:
    """The same JSON error, minus ``.doc`` (which holds the whole secret)."""
    msg = getattr(exc, "msg", "invalid JSON")
    line, col, pos = (getattr(exc, a, 0) for a in ("lineno", "colno", "pos"))
    scrubbed = json.JSONDecodeError(msg, "", 0)
    scrubbed.args = (f"{msg}: line {line} column {col} (char {pos})",)
    scrubbed.lineno, scrubbed.colno, scrubbed.pos = line, col, pos
    return scrubbed
