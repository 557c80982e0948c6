"""The rotation-aware login every database adapter shares: drivers, and the blocking runner.

A driver module says only two things: how to open a connection from keyword
arguments, and how to recognise "the server rejected this password". Which
label to try next, when a label is worth re-reading and what to remember is
decided by the label walk (:mod:`secretcache.db._walk`), written once as a
generator of requests. This module performs those requests with blocking calls
(:func:`run_blocking`); an asyncio runner performs the same requests with
awaits.

The runner is also where secrets meet errors, so it keeps one rule: an
exception that leaves :func:`rotating_connect` is a scrubbed copy, built inside
the handler that caught the original (which is then dropped), raised from a
frame that holds no password, no credential and no secret value.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeAlias, TypeVar

from ..cache import SecretCache, default_cache
from ..value import SecretValue
from ._scrub import REDACTED, Mask, detach, frames, scrubbed_copy
from ._walk import (
    AwaitWalk,
    Connect,
    Connected,
    Credential,
    Failed,
    Get,
    Opened,
    Read,
    Refused,
    Request,
    Walk,
    WalkResult,
    state_for,
)

__all__ = [
    "REDACTED",
    "AnyCache",
    "Credential",
    "Driver",
    "async_cache_for",
    "rotating_connect",
    "rotating_connect_async",
    "run_async",
    "run_blocking",
]

C = TypeVar("C")

if TYPE_CHECKING:
    from ..aio import AsyncSecretCache

AnyCache: TypeAlias = "SecretCache | AsyncSecretCache"
"""What the asyncio adapters accept as ``cache=``."""

_CREDENTIAL_FIELDS = frozenset({"user", "username", "password", "passwd", "password1"})


class Driver(ABC, Generic[C]):
    """What one database driver contributes: opening, and recognising a rejected login."""

    name: str = "driver"
    host_key = "host"
    port_key = "port"
    dbname_key = "dbname"
    dbname_aliases: tuple[str, ...] = ()

    connection_types: tuple[type[Any], ...] = ()
    """Connection classes to close if an error strands one (it logged in, then failed)."""

    @abstractmethod
    def open(self, args: Sequence[Any], params: dict[str, Any]) -> C:
        """Connect with keyword arguments (the password is one of them, never in a DSN)."""

    @abstractmethod
    def is_auth_failure(self, exc: BaseException) -> bool:
        """True only when the server rejected the credential itself."""

    async def open_async(self, args: Sequence[Any], params: dict[str, Any]) -> C:
        """``open`` for an asyncio driver; drivers that have one override this."""
        raise NotImplementedError(f"{self.name} has no asyncio connect")

    def check_overrides(self, overrides: Mapping[str, Any]) -> None:
        """Refuse caller keywords that would replace the secret's credential.

        Checked before any secret is read, so the error comes from a frame with
        nothing secret in it.
        """
        for key in overrides:
            if key in _CREDENTIAL_FIELDS:
                raise TypeError(
                    f"{key!r} cannot be passed: the username and password come from the secret"
                )

    def params(self, credential: Credential, overrides: Mapping[str, Any]) -> dict[str, Any]:
        """Connect keywords: the secret's location, the caller's overrides on top.

        ``dbname=`` (the secret's spelling) is accepted for a driver whose keyword
        is another one (``database`` for PyMySQL and asyncpg).
        """
        self.check_overrides(overrides)
        if self.dbname_key != "dbname" and "dbname" in overrides:
            overrides = dict(overrides)
            overrides[self.dbname_key] = overrides.pop("dbname")
        params: dict[str, Any] = {}
        if credential.host is not None:
            params[self.host_key] = credential.host
        if credential.port is not None:
            params[self.port_key] = credential.port
        overridden_db = any(k in overrides for k in (self.dbname_key, *self.dbname_aliases))
        if credential.dbname is not None and not overridden_db:
            params[self.dbname_key] = credential.dbname
        params.update(overrides)
        params["user"] = credential.username
        params["password"] = credential.password
        return params

    def sanitize(self, exc: BaseException, passwords: Sequence[str]) -> BaseException:
        """A copy of ``exc`` without anything that holds a password.

        The copy keeps the class and the arguments (with any tried password
        masked, in any encoding) and drops everything else: driver attachments
        such as psycopg's ``pgconn``, ``UnicodeError.object``, the original
        traceback (whose frames hold the connect keywords) and the chain.
        """
        return scrubbed_copy(exc, Mask(passwords))

    def refused(
        self,
        exc: BaseException,
        password: str,
        closing: list[Awaitable[Any]] | None = None,
    ) -> Refused:
        """What the walk is told about a failed connect: a scrubbed copy and its kind.

        Closes that must be awaited (asyncio connections a failure stranded) are
        appended to ``closing``; the asyncio runner awaits them once the original
        error is gone from its frame.
        """
        rejected = False
        try:
            rejected = self.is_auth_failure(exc)
            clean = self.sanitize(exc, [password])
        except Exception:  # pragma: no cover - a scrubber bug must not leak the original
            clean = RuntimeError(f"connecting failed with {type(exc).__name__} (details withheld)")
        pending = self.close_stranded(exc)
        if closing is not None:
            closing.extend(pending)
        else:  # pragma: no cover - a blocking runner never strands an asyncio connection
            for item in pending:
                if inspect.iscoroutine(item):
                    item.close()
        return Refused(clean, rejected)

    def close_stranded(self, exc: BaseException) -> list[Awaitable[Any]]:
        """Close connections that a failure left open inside the driver's frames.

        psycopg, for one, logs in and then applies ``context=``/``cursor_factory=``;
        if that fails, the open connection is only reachable from the traceback.
        Returns the closes still to be awaited (an asyncio connection's ``close``).
        """
        pending: list[Awaitable[Any]] = []
        if not self.connection_types:
            return pending
        seen: set[int] = set()
        for frame in frames(exc.__traceback__):
            for value in list(frame.f_locals.values()):
                if isinstance(value, self.connection_types) and id(value) not in seen:
                    seen.add(id(value))
                    try:
                        closing = self.close_connection(value)
                    except Exception:
                        continue
                    if closing is not None and inspect.isawaitable(closing):
                        pending.append(closing)
        return pending

    def close_connection(self, connection: Any) -> Awaitable[Any] | None:
        """Close one stranded connection; an awaitable if closing it must be awaited."""
        result: Awaitable[Any] | None = connection.close()
        return result


# ------------------------------------------------------------------ the runner


def rotating_connect(
    driver: Driver[C],
    secret_id: str,
    *,
    cache: SecretCache | None = None,
    args: Sequence[Any] = (),
    overrides: Mapping[str, Any] | None = None,
) -> C:
    """Open a connection with the secret's credential, surviving a rotation in progress.

    Raises the driver's own error: at once for anything but a rejected login,
    and after AWSCURRENT (refreshed), AWSPENDING and AWSPREVIOUS were all
    rejected otherwise. Whatever is raised -- the driver's error, a foreign one
    (a wrong keyword, a missing TLS file, a password the driver cannot encode),
    a ``SecretDecodeError`` -- is a scrubbed copy raised from here, a frame that
    holds no password; its chain and notes hold none either.
    """
    given = dict(overrides or {})
    driver.check_overrides(given)
    result = run_blocking(
        driver, cache if cache is not None else default_cache(), secret_id, args, given
    )
    if isinstance(result, Connected):
        connection: C = result.connection
        return connection
    error = result.error
    del result
    raise error


def run_blocking(
    driver: Driver[C],
    cache: SecretCache,
    secret_id: str,
    args: Sequence[Any],
    overrides: Mapping[str, Any],
) -> WalkResult:
    """Drive one :class:`~secretcache.db._walk.Walk` with blocking calls; never raises."""
    walk = Walk(
        secret_id,
        state_for(cache, secret_id),
        min_refresh_interval=cache.config.min_refresh_interval,
    )
    steps = walk.steps()
    try:
        request: Request = next(steps)
        while True:
            outcome = _perform(request, driver, cache, secret_id, args, overrides)
            del request
            request = steps.send(outcome)
    except StopIteration as done:
        result: WalkResult = done.value
        return result
    except BaseException as exc:  # interrupted, or a bug: still nothing secret may escape
        return Failed(detach(scrubbed_copy(exc, Mask(()))))
    finally:
        steps.close()


def _perform(
    request: Request,
    driver: Driver[Any],
    cache: SecretCache,
    secret_id: str,
    args: Sequence[Any],
    overrides: Mapping[str, Any],
) -> Any:
    if isinstance(request, Connect):
        return _open(driver, args, overrides, request)
    if isinstance(request, Read):
        return _read(cache, secret_id, request)
    if isinstance(request, Get):
        return _get(cache, secret_id, request.stage)
    if isinstance(request, AwaitWalk):
        request.walk.wait_blocking()
        return None
    raise TypeError(f"unknown request {type(request).__name__}")  # pragma: no cover


def _open(
    driver: Driver[C], args: Sequence[Any], overrides: Mapping[str, Any], request: Connect
) -> Opened[C] | Refused:
    """One login. Any failure is scrubbed in the handler; the original goes no further."""
    password = request.credential.password
    try:
        return Opened(driver.open(args, driver.params(request.credential, overrides)))
    except BaseException as exc:
        return driver.refused(exc, password)


# ------------------------------------------------------------ the asyncio runner


async def rotating_connect_async(
    driver: Driver[C],
    secret_id: str,
    *,
    cache: AnyCache | None = None,
    args: Sequence[Any] = (),
    overrides: Mapping[str, Any] | None = None,
) -> C:
    """:func:`rotating_connect` for asyncio: the same walk, awaited; never blocks the loop.

    ``cache`` is an ``AsyncSecretCache`` (``None``: the process-wide one), or a
    ``SecretCache`` whose misses and refreshes are then run in a worker thread
    (its fresh hits are taken at once).
    Cancelled, it raises ``CancelledError`` -- a fresh one, from this frame --
    once the walk is over and any connection the driver had opened is closed.
    """
    given = dict(overrides or {})
    driver.check_overrides(given)
    result = await run_async(driver, async_cache_for(cache), secret_id, args, given)
    if isinstance(result, Connected):
        connection: C = result.connection
        return connection
    error = result.error
    del result
    raise error


class _Interrupted(Exception):
    """Internal: a connect was cancelled (or interrupted); carries a clean copy to raise."""

    def __init__(self, error: BaseException) -> None:
        super().__init__()
        self.error = error


async def run_async(
    driver: Driver[C],
    cache: AnyCache,
    secret_id: str,
    args: Sequence[Any],
    overrides: Mapping[str, Any],
) -> WalkResult:
    """Drive one walk with awaits (``AsyncSecretCache``, ``Driver.open_async``); never raises.

    It shares the per-secret state of :func:`run_blocking` (one walk at a time,
    what worked) for connects through the same cache object; waiting for another
    connect's walk awaits a future, so the loop keeps running.

    A cancellation (or ``KeyboardInterrupt``/``SystemExit``) is not an outcome
    the walk reasons about: the walk is closed (so a walk it owned is handed
    on), and the result is a fresh exception of the same class, with no chain
    and no notes, which the caller raises.
    """
    walk = Walk(
        secret_id,
        state_for(cache, secret_id),
        min_refresh_interval=cache.config.min_refresh_interval,
    )
    steps = walk.steps()
    interrupted: BaseException | None = None
    try:
        request: Request = next(steps)
        while True:
            outcome: Any
            if isinstance(request, Connect):
                outcome = await _open_async(driver, args, overrides, request)
            elif isinstance(request, Read):
                outcome = await _read_async(cache, secret_id, request)
            elif isinstance(request, Get):
                outcome = await _get_async(cache, secret_id, request.stage)
            else:
                await request.walk.wait_async()
                outcome = None
            del request
            request = steps.send(outcome)
    except StopIteration as done:
        result: WalkResult = done.value
        return result
    except _Interrupted as stop:
        interrupted = stop.error
    except (asyncio.CancelledError, KeyboardInterrupt, SystemExit) as exc:
        interrupted = detach(scrubbed_copy(exc, Mask(())))
    except BaseException as exc:  # a bug: still nothing secret may escape
        return Failed(detach(scrubbed_copy(exc, Mask(()))))
    finally:
        steps.close()
    return Failed(interrupted)


def _interrupted(exc: BaseException) -> _Interrupted | None:
    if isinstance(exc, asyncio.CancelledError | KeyboardInterrupt | SystemExit):
        return _Interrupted(detach(scrubbed_copy(exc, Mask(()))))
    return None


async def _open_async(
    driver: Driver[C], args: Sequence[Any], overrides: Mapping[str, Any], request: Connect
) -> Opened[C] | Refused:
    """One login, awaited. The original error is dropped before anything else is awaited.

    A connection the failure stranded is closed (its ``close`` awaited) before the
    outcome -- or the cancellation -- goes on.
    """
    password = request.credential.password
    closing: list[Awaitable[Any]] = []
    try:
        return Opened(await driver.open_async(args, driver.params(request.credential, overrides)))
    except BaseException as exc:
        outcome = driver.refused(exc, password, closing)
        stop = _interrupted(exc)
    del password, request
    for pending in closing:
        with contextlib.suppress(Exception):
            await pending
    del closing
    if stop is not None:
        raise stop
    return outcome


async def _get_async(cache: AnyCache, secret_id: str, stage: str) -> SecretValue | BaseException:
    try:
        if isinstance(cache, SecretCache):
            value = cache.peek(secret_id, stage)
            if value is not None:
                return value
            return await asyncio.to_thread(cache.get_secret, secret_id, stage)
        return await cache.get_secret(secret_id, stage)
    except BaseException as exc:
        stop = _interrupted(exc)
        if stop is not None:
            raise stop from None
        return detach(exc)


async def _read_async(
    cache: AnyCache, secret_id: str, request: Read
) -> SecretValue | BaseException:
    try:
        if isinstance(cache, SecretCache):
            return await asyncio.to_thread(
                cache.force_refresh,
                secret_id,
                request.stage,
                min_interval=request.min_interval,
                unless_newer_than=request.unless_newer_than,
                fetched_since=request.fetched_since,
            )
        return await cache.force_refresh(
            secret_id,
            request.stage,
            min_interval=request.min_interval,
            unless_newer_than=request.unless_newer_than,
            fetched_since=request.fetched_since,
        )
    except BaseException as exc:
        stop = _interrupted(exc)
        if stop is not None:
            raise stop from None
        return detach(exc)


def async_cache_for(cache: AnyCache | None) -> AnyCache:
    """``cache``, or the process-wide ``AsyncSecretCache`` for ``None``."""
    if cache is None:
        from ..aio import default_async_cache

        return default_async_cache()
    from ..aio import AsyncSecretCache

    if not isinstance(cache, SecretCache | AsyncSecretCache):
        raise TypeError(
            f"cache must be an AsyncSecretCache or a SecretCache, not {type(cache).__name__}"
        )
    return cache


# ------------------------------------------------------------ blocking requests


def _get(cache: SecretCache, secret_id: str, stage: str) -> SecretValue | BaseException:
    try:
        return cache.get_secret(secret_id, stage)
    except BaseException as exc:
        return detach(exc)


def _read(cache: SecretCache, secret_id: str, request: Read) -> SecretValue | BaseException:
    try:
        return cache.force_refresh(
            secret_id,
            request.stage,
            min_interval=request.min_interval,
            unless_newer_than=request.unless_newer_than,
            fetched_since=request.fetched_since,
        )
    except BaseException as exc:
        return detach(exc)
