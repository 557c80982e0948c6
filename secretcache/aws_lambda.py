"""Secrets for AWS Lambda handlers, fetched during the init phase.

Lambda bills and times the init phase separately from invocations, and runs
it with a full CPU, so the place to pay for fetching secrets is module import.
``with_secrets`` does that in as few calls as the service allows (one
``BatchGetSecretValue`` per 20 secrets) and leaves each invocation with a cache
hit per secret: no API call until the TTL runs out.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from .cache import SecretCache, default_cache
from .errors import SecretDecodeError
from .value import SecretValue

__all__ = ["with_secrets"]

R = TypeVar("R")


def with_secrets(
    *, cache: SecretCache | None = None, **secrets: str
) -> Callable[[Callable[..., R]], Callable[..., R]]:
    """Fetch the named secrets now and pass them to every call as keyword arguments.

    ``@with_secrets(db="prod/db", api_key="prod/api-key")`` reads both secrets
    while the handler module is imported, then calls the handler as
    ``handler(event, context, db=..., api_key=...)``. A secret holding a JSON
    object arrives as a read-only mapping, any other string as ``str``, a binary
    secret as ``bytes``. The values are the cache's current ones, so a rotation
    shows up once the cache's TTL has passed.

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
    plan = tuple(secrets.items())

    def decorate(func: Callable[..., R]) -> Callable[..., R]:
        # name -> (the SecretValue last seen, what was derived from it). Rebuilt only
        # when the cache hands out a different SecretValue, i.e. after a refresh.
        derived: dict[str, tuple[SecretValue, object]] = {}

        @functools.wraps(func)
        def handler(*args: Any, **kwargs: Any) -> R:
            for name, secret_id in plan:
                if name in kwargs:
                    continue
                value = active.get_secret(secret_id)
                seen = derived.get(name)
                if seen is None or seen[0] is not value:
                    seen = (value, _as_argument(value))
                    derived[name] = seen
                kwargs[name] = seen[1]
            return func(*args, **kwargs)

        return handler

    return decorate


def _as_argument(value: SecretValue) -> object:
    """bytes for binary, a read-only mapping for a JSON object, else the string."""
    if value.secret_binary is not None:
        return value.secret_binary
    text = value.secret_string or ""
    if not text.lstrip().startswith("{"):
        return text  # not a JSON object: skip the parse attempt entirely
    try:
        return value.json()
    except SecretDecodeError:
        return text
