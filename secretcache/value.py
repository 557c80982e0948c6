"""``SecretValue``: one fetched version of a secret, immutable and safe to print."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from .errors import SecretDecodeError, describe_target

__all__ = ["JSONArray", "SecretValue", "freeze_json", "load_json_object"]

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
        """The value parsed as a JSON object, read-only all the way down; parsed once."""
        parsed = self._json
        if parsed is UNPARSED:
            parsed = self._json_or_error(self.name, None, self.version_id)
            del self  # see _parse_json
            if isinstance(parsed, SecretDecodeError):
                raise parsed
        return parsed  # type: ignore[no-any-return]

    def _parse_json(
        self, secret_id: str, version_stage: str | None, version_id: str | None
    ) -> Mapping[str, Any]:
        """Parse once; errors name the entry that was asked for, never the content."""
        parsed = self._json_or_error(secret_id, version_stage, version_id)
        # The error is raised from a frame that no longer holds the record: an error
        # tracker rendering every frame's locals (and their attributes) would find
        # the secret in ``self.secret_string``.
        del self
        if isinstance(parsed, SecretDecodeError):
            raise parsed
        return parsed

    def _json_or_error(
        self, secret_id: str, version_stage: str | None, version_id: str | None
    ) -> Mapping[str, Any] | SecretDecodeError:
        """The parsed mapping, or the error to raise -- returned, not raised.

        For callers that hold secrets in their own locals: they can drop them
        before raising, so no frame of the traceback keeps the value.
        """
        parsed = self._json
        if parsed is not UNPARSED:
            return parsed  # type: ignore[no-any-return]
        if self.secret_string is None:
            return _decode_error(
                "holds binary data, not a JSON string", None, secret_id, version_stage, version_id
            )
        loaded = load_json_object(self.secret_string)
        if isinstance(loaded, JSONProblem):
            return loaded.error(secret_id, version_stage, version_id)
        object.__setattr__(self, "_json", loaded)
        return loaded


class JSONArray(tuple[Any, ...]):
    """A JSON array handed out read-only: a tuple that compares equal to the list it was.

    ``parsed["hosts"] == ["a", "b"]`` holds as it did before the value was frozen,
    so code written against ``json.loads`` keeps comparing the same way.
    """

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        if isinstance(other, list):
            other = tuple(other)
        return tuple.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    __hash__ = tuple.__hash__


class JSONProblem:
    """Why a text is not a JSON object, described without any of its content."""

    __slots__ = ("cause", "is_json", "reason")

    def __init__(
        self, reason: str, cause: BaseException | None = None, *, is_json: bool = False
    ) -> None:
        self.reason = reason
        self.cause = cause
        self.is_json = is_json  # valid JSON, only not an object

    def error(
        self, secret_id: str, version_stage: str | None, version_id: str | None
    ) -> SecretDecodeError:
        return _decode_error(self.reason, self.cause, secret_id, version_stage, version_id)


def load_json_object(text: str) -> Mapping[str, Any] | JSONProblem:
    """``text`` parsed as a JSON object, frozen all the way down; or why it is not one.

    Never raises: parse failures (including a document nested past the
    recursion limit, which ``json`` reports as ``RecursionError``) come back as
    a :class:`JSONProblem`, so the caller raises from a frame that does not hold
    the text, and no exception that saw the text survives this call.
    """
    problem: JSONProblem | None = None
    try:
        loaded = json.loads(text)
    except json.JSONDecodeError as exc:
        # The JSON error's message quotes the offending text: keep only its position.
        problem = JSONProblem(
            f"is not valid JSON (line {exc.lineno}, column {exc.colno})", _scrubbed_json_error(exc)
        )
    except RecursionError:
        problem = JSONProblem("is not usable JSON (nested too deeply to parse)")
    except ValueError:  # e.g. an integer past sys.get_int_max_str_digits()
        problem = JSONProblem("is not usable JSON (a number too long to convert)")
    if problem is not None:
        return problem
    if not isinstance(loaded, dict):
        return JSONProblem(f"is JSON but not an object (got {type(loaded).__name__})", is_json=True)
    return freeze_json(loaded)  # type: ignore[no-any-return]


def freeze_json(root: Any) -> Any:
    """Every dict of a parsed document made a read-only mapping, every list a JSONArray.

    Bottom-up with an explicit stack rather than recursion: a document may nest
    as deeply as the parser allowed, which leaves no headroom for a recursive walk.
    """
    if not isinstance(root, dict | list):
        return root
    # Each frame: [container is a dict, iterator over its children, frozen children, key in parent]
    stack: list[list[Any]] = [[isinstance(root, dict), _children(root), [], None]]
    while True:
        frame = stack[-1]
        is_dict, children, done = frame[0], frame[1], frame[2]
        for child in children:
            value = child[1] if is_dict else child
            if isinstance(value, dict | list):
                stack.append(
                    [isinstance(value, dict), _children(value), [], child[0] if is_dict else None]
                )
                break
            done.append(child)
        else:
            stack.pop()
            frozen: Any = MappingProxyType(dict(done)) if is_dict else JSONArray(done)
            if not stack:
                return frozen
            parent = stack[-1]
            parent[2].append((frame[3], frozen) if parent[0] else frozen)


def _children(container: dict[str, Any] | list[Any]) -> Iterator[Any]:
    return iter(container.items()) if isinstance(container, dict) else iter(container)


def _decode_error(
    reason: str,
    cause: BaseException | None,
    secret_id: str,
    version_stage: str | None,
    version_id: str | None,
) -> SecretDecodeError:
    error = SecretDecodeError(
        f"secret {describe_target(secret_id, version_stage, version_id)} {reason}",
        secret_id=secret_id,
        version_stage=version_stage,
        version_id=version_id,
    )
    error.__cause__ = cause
    return error


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
