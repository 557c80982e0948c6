"""Decorators that hand secrets to application code.

The wrapped function reads the secret on every call (a cache hit, so cheap), so
it always sees the current version rather than one frozen at decoration time.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping
from typing import Any, ParamSpec, TypeVar

from .cache import SecretCache, default_cache
from .errors import SecretCacheError, SecretDecodeError, describe_target

__all__ = ["inject_secret_json", "inject_secret_string", "refresh_on_error"]

log = logging.getLogger("secretcache")

P = ParamSpec("P")
R = TypeVar("R")


class _Prepend:
    """Calls ``func`` with one extra leading argument produced per call.

    A descriptor, so on a method the extra argument lands right after ``self``.
    """

    def __init__(self, func: Callable[..., Any], produce: Callable[[], Any]) -> None:
        functools.update_wrapper(self, func)
        self._func = func
        self._produce = produce

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._func(self._produce(), *args, **kwargs)

    def __get__(self, instance: object, owner: type | None = None) -> Any:
        if instance is None:
            return self
        func, produce = self._func, self._produce

        @functools.wraps(func)
        def bound(*args: Any, **kwargs: Any) -> Any:
            return func(instance, produce(), *args, **kwargs)

        return bound


def _effective_stage(cache: SecretCache | None, version_stage: str | None) -> str:
    """The stage a read really uses, for error messages (the default when none was given)."""
    if version_stage is not None:
        return version_stage
    return (cache or default_cache()).config.default_version_stage


def inject_secret_string(
    secret_id: str, *, cache: SecretCache | None = None, version_stage: str | None = None
) -> Callable[[Callable[..., R]], Callable[..., R]]:
    """Pass the secret's string value as the first positional argument (after ``self``)."""

    def decorate(func: Callable[..., R]) -> Callable[..., R]:
        def produce() -> str:
            return (cache or default_cache()).get_secret_string(secret_id, version_stage)

        return _Prepend(func, produce)

    return decorate


def inject_secret_json(
    secret_id: str,
    *,
    cache: SecretCache | None = None,
    version_stage: str | None = None,
    **mapping: str,
) -> Callable[[Callable[..., R]], Callable[..., R]]:
    """Pass JSON fields as keyword arguments: ``parameter="json_key"``.

    With no mapping, the whole read-only mapping is passed as the first
    positional argument instead. A missing key raises ``SecretDecodeError``
    naming the key (never the value).
    """

    def decorate(func: Callable[..., R]) -> Callable[..., R]:
        def read() -> Mapping[str, Any]:
            return (cache or default_cache()).get_secret_json(secret_id, version_stage)

        if not mapping:
            return _Prepend(func, read)

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> R:
            document = read()
            for parameter, key in mapping.items():
                try:
                    kwargs[parameter] = document[key]
                except KeyError:
                    stage = _effective_stage(cache, version_stage)
                    target = describe_target(secret_id, stage, None)
                    raise SecretDecodeError(
                        f"secret {target} has no JSON key {key!r} (wanted for {parameter!r})",
                        secret_id=secret_id,
                        version_stage=stage,
                    ) from None
            return func(*args, **kwargs)

        return wrapper

    return decorate


def refresh_on_error(
    secret_id: str,
    exceptions: type[BaseException] | tuple[type[BaseException], ...],
    *,
    cache: SecretCache | None = None,
    version_stage: str | None = None,
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Retry once with a refreshed secret when ``func`` fails in a way rotation explains.

    For code that *uses* a secret (an HTTP API key, say) and learns it is stale
    only when the far side rejects it: on one of ``exceptions`` the secret is
    force-refreshed (coalesced; the first failure with a version is checked at
    once, repeated ones are held to ``min_refresh_interval``) and the call is
    repeated once if the version changed; otherwise -- or if the refresh itself
    fails -- the original error stands.
    """

    def decorate(func: Callable[P, R]) -> Callable[P, R]:
        # The version whose failure was last checked without waiting. The first failure
        # with a version bypasses min_refresh_interval (a rotation may have landed just
        # after that version was fetched); repeated failures with it are rate-limited,
        # so a key that is simply wrong does not cost an API call per call.
        checked: list[str | None] = [None]

        def newer_version(active: SecretCache, used: str) -> bool:
            interval = 0.0 if checked[0] != used else active.config.min_refresh_interval
            checked[0] = used
            try:
                fresh = active.force_refresh(
                    secret_id, version_stage, min_interval=interval, unless_newer_than=used
                )
            except SecretCacheError as exc:  # the caller's own error is the one to see
                log.warning(
                    "refresh_on_error: could not re-read secret %s (%s)",
                    describe_target(secret_id, _effective_stage(active, version_stage), None),
                    type(exc).__name__,
                )
                return False
            return fresh.version_id != used

        @functools.wraps(func)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            active = cache or default_cache()
            used = active.get_secret(secret_id, version_stage).version_id
            try:
                return func(*args, **kwargs)
            except exceptions:
                if not newer_version(active, used):
                    raise
            return func(*args, **kwargs)

        return wrapper

    return decorate
