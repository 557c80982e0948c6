"""Secrets for AWS Lambda handlers, fetched during the init phase.

Lambda bills and times the init phase separately from invocations, and runs
it with a full CPU, so the place to pay for fetching secrets is module import.
``with_secrets`` does that in as few calls as the service allows (one
``BatchGetSecretValue`` per 20 secrets) and leaves each invocation with a cache
hit per secret: no API call until the TTL runs out.
"""

from __future__ import annotations

import collections.abc
import functools
import inspect
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, Concatenate, Protocol, TypeVar

from .cache import SecretCache, default_cache
from .errors import SecretDecodeError
from .value import SecretValue

__all__ = ["LambdaHandler", "with_secrets"]

E = TypeVar("E")
C = TypeVar("C")
R = TypeVar("R")
E_contra = TypeVar("E_contra", contravariant=True)
C_contra = TypeVar("C_contra", contravariant=True)
R_co = TypeVar("R_co", covariant=True)


class LambdaHandler(Protocol[E_contra, C_contra, R_co]):
    """A handler after ``with_secrets``: called with ``(event, context)``.

    Keyword arguments a caller passes (a unit test, say) replace the secrets of
    the same name.
    """

    def __call__(self, event: E_contra, context: C_contra, /, **overrides: Any) -> R_co: ...


# What a secret is passed as, decided once per version.
_BINARY, _JSON, _TEXT = "binary", "json", "text"

# Annotation names that ask for a mapping when annotations are unresolvable strings.
_MAPPING_NAMES = frozenset(
    {"Mapping", "MutableMapping", "dict", "Dict", "MappingProxyType", "OrderedDict"}
)


def with_secrets(
    *, cache: SecretCache | None = None, **secrets: str
) -> Callable[[Callable[Concatenate[E, C, ...], R]], LambdaHandler[E, C, R]]:
    """Fetch the named secrets now and pass them to every call as keyword arguments.

    ``@with_secrets(db="prod/db", api_key="prod/api-key")`` reads both secrets
    while the handler module is imported, then calls the handler as
    ``handler(event, context, db=..., api_key=...)``. A secret holding a JSON
    object arrives as a read-only mapping, any other string as ``str``, a binary
    secret as ``bytes``. The values are the cache's current ones, so a rotation
    shows up once the cache's TTL has passed.

    A handler parameter annotated as a mapping (``Mapping``, ``dict``, ...) gets
    a mapping or nothing: a secret that is not a JSON object fails the init with
    ``SecretDecodeError`` naming it, rather than reaching the handler as ``str``.

    A secret that cannot be read at import time raises there, naming the secret:
    Lambda reports it as an init error instead of failing every invocation later.
    A keyword argument passed explicitly by the caller wins over the secret (handy
    in unit tests of the handler).
    """
    for name, secret_id in secrets.items():
        if not isinstance(secret_id, str):
            raise TypeError(
                f"with_secrets({name}=...) needs a secret id string, not {type(secret_id).__name__}"
            )
    if not secrets:
        raise TypeError("with_secrets() needs at least one name=secret_id argument")
    active = cache if cache is not None else default_cache()
    active.prefetch(*dict.fromkeys(secrets.values()))

    def decorate(func: Callable[Concatenate[E, C, ...], R]) -> LambdaHandler[E, C, R]:
        needs_mapping = _mapping_parameters(func, secrets)
        plan = tuple(
            (name, secret_id, name in needs_mapping) for name, secret_id in secrets.items()
        )
        # name -> (version id, how that version is passed): decided once per version,
        # so a string that merely starts with "{" is not re-parsed on every call. Holds
        # no value: this table is reachable from every invocation's frames.
        kinds: dict[str, tuple[str, str]] = {}

        def arguments(given: dict[str, Any]) -> dict[str, Any]:
            """The handler's keyword arguments: the caller's, then the secrets."""
            resolved = dict(given)
            for name, secret_id, mapping in plan:
                if name in resolved:
                    continue
                argument = _argument(active, name, secret_id, mapping, kinds)
                if isinstance(argument, SecretDecodeError):
                    resolved.clear()  # raised from a frame that holds no secret
                    raise argument
                resolved[name] = argument
            return resolved

        arguments({})  # the init check: every secret readable and of the kind asked for

        @functools.wraps(func)
        def handler(*args: Any, **kwargs: Any) -> R:
            return func(*args, **arguments(kwargs))

        signature = _signature(func)
        if signature is not None:
            handler.__signature__ = signature.replace(  # type: ignore[attr-defined]
                parameters=[p for n, p in signature.parameters.items() if n not in secrets]
            )
        return handler

    return decorate


def _argument(
    cache: SecretCache,
    name: str,
    secret_id: str,
    mapping: bool,
    kinds: dict[str, tuple[str, str]],
) -> Any:
    """One secret as the handler takes it, or the ``SecretDecodeError`` to raise.

    Returns the error rather than raising it: this frame holds the secret.
    """
    value = cache.get_secret(secret_id)
    known = kinds.get(name)
    if known is None or known[0] != value.version_id:
        kind = _kind(value, name, secret_id, cache.config.default_version_stage, mapping)
        if isinstance(kind, SecretDecodeError):
            return kind
        known = kinds[name] = (value.version_id, kind)
    if known[1] == _BINARY:
        return value.secret_binary
    if known[1] == _JSON:
        return value.json()
    return value.secret_string


def _kind(value: SecretValue, name: str, secret_id: str, stage: str, mapping: bool) -> Any:
    """How ``value`` is passed: bytes, a read-only mapping, or the string; or an error."""
    if not mapping:
        if value.secret_binary is not None:
            return _BINARY
        if not (value.secret_string or "").lstrip().startswith("{"):
            return _TEXT  # not a JSON object: skip the parse attempt entirely
    parsed = value._json_or_error(secret_id, stage, None)
    if not isinstance(parsed, SecretDecodeError):
        return _JSON
    if not mapping:
        return _TEXT
    error = SecretDecodeError(
        f"{parsed.message}; with_secrets passes it to {name!r}, annotated as a mapping",
        secret_id=secret_id,
        version_stage=stage,
    )
    error.__cause__ = parsed.__cause__
    return error


def _signature(func: Callable[..., Any]) -> inspect.Signature | None:
    try:
        return inspect.signature(func)
    except (TypeError, ValueError):
        return None


def _mapping_parameters(func: Callable[..., Any], secrets: Mapping[str, str]) -> set[str]:
    """The injected parameters whose annotation asks for a mapping."""
    try:
        hints: dict[str, Any] = typing.get_type_hints(func)
    except Exception:  # names only importable for type checkers: read the strings
        hints = dict(getattr(func, "__annotations__", {}) or {})
    return {name for name in secrets if name in hints and _asks_for_mapping(hints[name])}


def _asks_for_mapping(annotation: Any) -> bool:
    """``Mapping[...]``, ``dict``, a ``TypedDict``..., or an optional one of those."""
    if isinstance(annotation, str):
        parts = [part.strip() for part in annotation.split("|")]
        if len(parts) == 1 and parts[0].startswith("Optional["):
            parts = [parts[0][len("Optional[") : -1]]
        named = [part.split("[", 1)[0].rsplit(".", 1)[-1] for part in parts if part != "None"]
        return bool(named) and all(name in _MAPPING_NAMES for name in named)
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:
        members = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        return bool(members) and all(_asks_for_mapping(arg) for arg in members)
    if typing.is_typeddict(annotation):
        return True
    target = origin if origin is not None else annotation
    return isinstance(target, type) and issubclass(target, collections.abc.Mapping)
