"""Decorators that hand secrets to application code.

The wrapped function reads the secret on every call (a cache hit, so cheap), so
it always sees the current version rather than one frozen at decoration time.

Each decorator's logic is written once, as a *plan*: a generator that yields
the steps of one call -- a cache read, the decorated function's own call -- and
receives their outcomes. Two small drivers run plans: one calls each step in
place (for ``def`` functions), the other awaits it without blocking the event
loop (for ``async def`` functions: an ``AsyncSecretCache`` is awaited, a
``SecretCache`` read runs in a worker thread). So a sync and an async function
decorated the same way behave the same way by construction.

What the frames of a call hold matters too: error trackers render the local
variables of every frame in a traceback. A plan's frames hold the arguments the
function receives and nothing more -- not the whole JSON document its
keyword arguments were picked from, not the ``SecretValue`` a version id was read
from -- and a decode error is returned by the step that found it and raised by
the plan, after the step's frame (which saw the value) has gone.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
from collections.abc import Callable, Generator, Mapping
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, Protocol, TypeVar, overload

from .cache import SecretCache, default_cache
from .errors import SecretCacheError, SecretDecodeError, describe_target
from .value import SecretValue

if TYPE_CHECKING:
    from .aio import AsyncSecretCache

__all__ = ["inject_secret_json", "inject_secret_string", "refresh_on_error"]

log = logging.getLogger("secretcache")

P = ParamSpec("P")
R = TypeVar("R")
S = TypeVar("S")
T_co = TypeVar("T_co", covariant=True)

_METHOD_FIRST_PARAMETERS = ("self", "cls")


class InjectFirst(Protocol[T_co]):
    """What ``inject_secret_string`` (and ``inject_secret_json`` without keys) returns.

    A function loses its first parameter; a method (first parameter ``self`` or
    ``cls``) keeps it and loses the second. Type checkers pick the form the same way
    the decorator does at run time, as far as types can tell: a first parameter
    that cannot take the injected value is taken for ``self``.
    """

    @overload
    def __call__(self, func: Callable[Concatenate[T_co, P], R]) -> Callable[P, R]: ...

    @overload
    def __call__(
        self, func: Callable[Concatenate[S, T_co, P], R]
    ) -> Callable[Concatenate[S, P], R]: ...


# --------------------------------------------------------------------- plans and drivers


class _Caught:
    """An exception a step was told to catch, handed to the plan as an outcome."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


class _Step:
    """One thing a plan needs done; ``catch``: exceptions handed back as ``_Caught``."""

    __slots__ = ("args", "catch", "kwargs")

    def __init__(
        self,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        catch: type[BaseException] | tuple[type[BaseException], ...] = (),
    ) -> None:
        self.args = args
        self.kwargs = kwargs
        self.catch = catch

    def run(self) -> Any:
        raise NotImplementedError

    async def run_async(self) -> Any:
        raise NotImplementedError


class _Read(_Step):
    """A cache method call whose result ``finish`` turns into what the plan needs.

    ``finish`` is given the cache's answer and returns the part the plan uses
    (a string, some JSON fields, a version id) or an error to raise; it never
    raises itself, so no frame that saw the whole value is in a traceback.
    """

    __slots__ = ("cache", "finish", "method")

    def __init__(
        self,
        cache: Any,
        method: str,
        args: tuple[Any, ...],
        finish: Callable[[Any], Any],
        kwargs: dict[str, Any] | None = None,
        catch: type[BaseException] | tuple[type[BaseException], ...] = (),
    ) -> None:
        super().__init__(args, kwargs or {}, catch)
        self.cache = cache
        self.method = method
        self.finish = finish

    def run(self) -> Any:
        return self.finish(getattr(self.cache, self.method)(*self.args, **self.kwargs))

    async def run_async(self) -> Any:
        if not _is_async_cache(self.cache):
            # A blocking cache: a fresh cached value is used at once (``peek`` never
            # fetches); anything else runs in a worker thread, so the loop keeps running.
            peek = getattr(self.cache, "peek", None)
            if self.method == "get_secret" and callable(peek):
                fresh = peek(*self.args, **self.kwargs)
                if fresh is not None:
                    return self.finish(fresh)
            return await asyncio.to_thread(self.run)
        return self.finish(await getattr(self.cache, self.method)(*self.args, **self.kwargs))


class _Call(_Step):
    """The decorated function's own call (awaited when it is a coroutine function)."""

    __slots__ = ("func",)

    def __init__(
        self,
        func: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        catch: type[BaseException] | tuple[type[BaseException], ...] = (),
    ) -> None:
        super().__init__(args, kwargs, catch)
        self.func = func

    def run(self) -> Any:
        return self.func(*self.args, **self.kwargs)

    async def run_async(self) -> Any:
        return await self.func(*self.args, **self.kwargs)


Plan = Generator[_Step, Any, Any]


def _outcome(step: _Step) -> Any:
    try:
        return step.run()
    except step.catch as exc:
        return _Caught(exc)


async def _outcome_async(step: _Step) -> Any:
    try:
        return await step.run_async()
    except step.catch as exc:
        return _Caught(exc)


def _drive(plan: Plan) -> Any:
    """Run a plan's steps in place; what the plan returns is the call's result."""
    step = next(plan)
    while True:
        outcome = _outcome(step)
        try:
            step = plan.send(outcome)
        except StopIteration as done:
            return done.value


async def _drive_async(plan: Plan) -> Any:
    """Run a plan's steps without blocking the event loop."""
    step = next(plan)
    while True:
        outcome = await _outcome_async(step)
        try:
            step = plan.send(outcome)
        except StopIteration as done:
            return done.value


def _wrap(func: Callable[..., Any], plan: Callable[..., Plan], removed: set[str]) -> Any:
    """A function like ``func`` (``async def`` if it is one) that runs ``plan`` per call.

    ``inspect.signature`` of the result is ``func``'s without the ``removed``
    (injected) parameters, so frameworks that dispatch on signatures see only
    what a caller passes.
    """
    if inspect.iscoroutinefunction(func):

        @functools.wraps(func)
        async def wrapper_async(*args: Any, **kwargs: Any) -> Any:
            return await _drive_async(plan(args, kwargs))

        wrapper: Any = wrapper_async
    else:

        @functools.wraps(func)
        def wrapper_sync(*args: Any, **kwargs: Any) -> Any:
            return _drive(plan(args, kwargs))

        wrapper = wrapper_sync
    signature = _signature(func)
    if signature is not None:
        wrapper.__signature__ = signature.replace(
            parameters=[p for name, p in signature.parameters.items() if name not in removed]
        )
    return wrapper


def _signature(func: Callable[..., Any]) -> inspect.Signature | None:
    try:
        return inspect.signature(func)
    except (TypeError, ValueError):  # builtins and other callables without one
        return None


def _injected_position(func: Callable[..., Any]) -> tuple[int, str | None]:
    """Where a positional value goes: 1 after ``self``/``cls`` (a method), else 0.

    Decided once, from the function itself, so that ``inspect.signature`` and the
    call agree. Returns the position and the name of the parameter it fills.
    """
    signature = _signature(func)
    if signature is None:
        return 0, None
    positional = [
        p.name
        for p in signature.parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    if positional and positional[0] in _METHOD_FIRST_PARAMETERS:
        return 1, positional[1] if len(positional) > 1 else None
    return 0, positional[0] if positional else None


_ASYNC_CACHE_TYPES: dict[type, bool] = {}


def _is_async_cache(cache: Any) -> bool:
    """Whether the cache's reads are coroutines (an ``AsyncSecretCache``)."""
    kind = type(cache)
    known = _ASYNC_CACHE_TYPES.get(kind)
    if known is None:
        known = _ASYNC_CACHE_TYPES[kind] = inspect.iscoroutinefunction(
            getattr(kind, "get_secret", None)
        )
    return known


def _resolve(cache: Any) -> Any:
    return cache if cache is not None else default_cache()


def _check_pairing(cache: Any, func: Callable[..., Any], decorator: str) -> None:
    """An ``AsyncSecretCache`` can only be awaited: refuse it for a ``def`` function."""
    if cache is not None and _is_async_cache(cache) and not inspect.iscoroutinefunction(func):
        raise TypeError(
            f"{decorator}: {getattr(func, '__qualname__', func)!r} is not an async function, "
            "so it cannot read from an AsyncSecretCache; pass a SecretCache instead"
        )


def _effective_stage(cache: Any, version_stage: str | None) -> str:
    """The stage a read really uses, for error messages (the default when none was given)."""
    if version_stage is not None:
        return version_stage
    config = _resolve(cache).config
    return str(config.default_version_stage)


def _decode_error(secret_id: str, stage: str, reason: str) -> SecretDecodeError:
    return SecretDecodeError(
        f"secret {describe_target(secret_id, stage, None)} {reason}",
        secret_id=secret_id,
        version_stage=stage,
    )


def _with_unwrapped(
    func: Any, decorate: Callable[[Callable[..., Any], bool], Callable[..., Any]]
) -> Any:
    """Apply to the function inside a ``staticmethod``/``classmethod`` and wrap it again."""
    if isinstance(func, staticmethod):
        return staticmethod(decorate(func.__func__, False))
    if isinstance(func, classmethod):
        return classmethod(decorate(func.__func__, True))
    return None


# ------------------------------------------------------------------------ decorators


def _inject_first(
    decorator: str,
    cache: Any,
    func: Any,
    read: Callable[[Any], _Read],
    as_method: bool | None = None,
) -> Any:
    """Shared by the positional decorators: the value read goes first (after ``self``)."""
    rewrapped = _with_unwrapped(
        func, lambda inner, method: _inject_first(decorator, cache, inner, read, method)
    )
    if rewrapped is not None:
        return rewrapped
    _check_pairing(cache, func, decorator)
    position, name = _injected_position(func)
    if as_method is not None:
        position = 1 if as_method else 0
        name = _positional_name(func, position)

    def plan(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Plan:
        active = _resolve(cache)
        value = yield read(active)
        if isinstance(value, SecretCacheError):
            raise value
        return (yield _Call(func, (*args[:position], value, *args[position:]), kwargs))

    return _wrap(func, plan, {name} if name else set())


def _positional_name(func: Callable[..., Any], position: int) -> str | None:
    signature = _signature(func)
    if signature is None:
        return None
    names = [
        p.name
        for p in signature.parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    return names[position] if len(names) > position else None


def inject_secret_string(
    secret_id: str,
    *,
    cache: SecretCache | AsyncSecretCache | None = None,
    version_stage: str | None = None,
) -> InjectFirst[str]:
    """Pass the secret's string value as the first positional argument (after ``self``).

    Works on ``def`` and ``async def`` functions alike; an ``async def`` one stays a
    coroutine function and never blocks the event loop on a fetch.
    """

    def finish(value: SecretValue) -> str | SecretDecodeError:
        text = value.secret_string
        if text is None:
            return _decode_error(
                secret_id,
                _effective_stage(cache, version_stage),
                "holds binary data; inject_secret_string needs a string secret",
            )
        return text

    def read(active: Any) -> _Read:
        return _Read(active, "get_secret", (secret_id, version_stage), finish)

    def decorate(func: Any) -> Any:
        return _inject_first("inject_secret_string", cache, func, read)

    return decorate


@overload
def inject_secret_json(
    secret_id: str,
    *,
    cache: SecretCache | AsyncSecretCache | None = None,
    version_stage: str | None = None,
) -> InjectFirst[Mapping[str, Any]]: ...


@overload
def inject_secret_json(
    secret_id: str,
    *,
    cache: SecretCache | AsyncSecretCache | None = None,
    version_stage: str | None = None,
    **mapping: str,
) -> Callable[[Callable[..., R]], Callable[..., R]]: ...


def inject_secret_json(
    secret_id: str,
    *,
    cache: SecretCache | AsyncSecretCache | None = None,
    version_stage: str | None = None,
    **mapping: str,
) -> Any:
    """Pass JSON fields as keyword arguments: ``parameter="json_key"``.

    With no mapping, the whole read-only mapping is passed as the first
    positional argument instead. A missing key raises ``SecretDecodeError``
    naming the key (never the value). Works on ``async def`` functions too.
    """
    for parameter, key in mapping.items():
        if not isinstance(key, str):
            raise TypeError(
                f"inject_secret_json({parameter}=...) needs a JSON key string, "
                f"not {type(key).__name__}"
            )

    def finish(value: SecretValue) -> Any:
        stage = _effective_stage(cache, version_stage)
        document = value._json_or_error(secret_id, stage, None)
        if isinstance(document, SecretDecodeError) or not mapping:
            return document
        picked: dict[str, Any] = {}
        for parameter, key in mapping.items():
            if key not in document:
                return _decode_error(
                    secret_id, stage, f"has no JSON key {key!r} (wanted for {parameter!r})"
                )
            picked[parameter] = document[key]
        return picked

    def read(active: Any) -> _Read:
        return _Read(active, "get_secret", (secret_id, version_stage), finish)

    def decorate(func: Any) -> Any:
        if not mapping:
            return _inject_first("inject_secret_json", cache, func, read)
        rewrapped = _with_unwrapped(func, lambda inner, _: decorate(inner))
        if rewrapped is not None:
            return rewrapped
        _check_pairing(cache, func, "inject_secret_json")
        _check_keywords(func, mapping)

        def plan(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Plan:
            active = _resolve(cache)
            picked = yield read(active)
            if isinstance(picked, SecretCacheError):
                raise picked
            return (yield _Call(func, args, {**picked, **kwargs}))

        return _wrap(func, plan, set(mapping))

    return decorate


def _check_keywords(func: Callable[..., Any], mapping: Mapping[str, str]) -> None:
    """A mapping naming a parameter the function does not have fails now, not per call."""
    signature = _signature(func)
    if signature is None:
        return
    parameters = signature.parameters
    if any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
        return
    for parameter in mapping:
        found = parameters.get(parameter)
        if found is None or found.kind is found.POSITIONAL_ONLY:
            raise TypeError(
                f"inject_secret_json: {getattr(func, '__qualname__', func)!r} has no keyword "
                f"parameter {parameter!r}"
            )


def refresh_on_error(
    secret_id: str,
    exceptions: type[BaseException] | tuple[type[BaseException], ...],
    *,
    cache: SecretCache | AsyncSecretCache | None = None,
    version_stage: str | None = None,
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Retry once with a refreshed secret when ``func`` fails in a way rotation explains.

    For code that *uses* a secret (an HTTP API key, say) and learns it is stale
    only when the far side rejects it: on one of ``exceptions`` the secret is
    force-refreshed (coalesced; the first failure with a version is checked at
    once, repeated ones are held to ``min_refresh_interval``) and the call is
    repeated once if the version changed; otherwise -- or if the refresh itself
    fails -- the original error stands. ``async def`` functions stay coroutine
    functions, and their refresh does not block the event loop.
    """

    def decorate(func: Callable[P, R]) -> Callable[P, R]:
        _check_pairing(cache, func, "refresh_on_error")
        # The version whose failure was last checked without waiting. The first failure
        # with a version bypasses min_refresh_interval (a rotation may have landed just
        # after that version was fetched); repeated failures with it are rate-limited,
        # so a key that is simply wrong does not cost an API call per call.
        checked: list[str | None] = [None]

        def plan(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Plan:
            active = _resolve(cache)
            used = yield _Read(active, "get_secret", (secret_id, version_stage), _version_id)
            first = yield _Call(func, args, kwargs, catch=exceptions)
            if not isinstance(first, _Caught):
                return first
            interval = 0.0 if checked[0] != used else active.config.min_refresh_interval
            checked[0] = used
            fresh = yield _Read(
                active,
                "force_refresh",
                (secret_id, version_stage),
                _version_id,
                {"min_interval": interval, "unless_newer_than": used},
                catch=SecretCacheError,
            )
            if isinstance(fresh, _Caught):  # the caller's own error is the one to see
                log.warning(
                    "refresh_on_error: could not re-read secret %s (%s)",
                    describe_target(secret_id, _effective_stage(active, version_stage), None),
                    type(fresh.error).__name__,
                )
            if isinstance(fresh, _Caught) or fresh == used:
                raise first.error
            return (yield _Call(func, args, kwargs))

        wrapped: Callable[P, R] = _wrap(func, plan, set())
        return wrapped

    return decorate


def _version_id(value: SecretValue) -> str:
    return value.version_id
