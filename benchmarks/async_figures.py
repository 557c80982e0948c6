"""``AsyncSecretCache`` figures: the hit, many awaiters of one miss, and event-loop lag.

No other Python secrets cache is async, so these have no peers; they are compared
with secretcache's own sync hit and with the dict floor, measured in the same
phase, in alternating rounds, so drift on a shared machine falls on all alike.

- **Hit**: ``await cache.get_secret_string(key)`` in a loop inside one coroutine
  run by an event loop, and the same coroutine driven by a single ``send(None)``
  with no loop at all (a hit never yields, so one step finishes it).
- **100 awaiters of one cold entry**: ``asyncio.gather`` of 100 reads of a secret
  the cache has never seen: API calls (one is the target) and wall time.
- **Event-loop lag**: a ticker task sleeps 5 ms at a time and records the largest
  gap between its ticks, while a cold read awaits an endpoint that answers late
  (a proxy holding every answer) or never (the ticker watches for a while, then
  the read is cancelled). An idle loop's largest gap is measured as a baseline.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

from . import measure
from .infra import CallCounter, SwitchableProxy, endpoint_env

TICK = 0.005
SLOW_ANSWER = 0.5
"""Seconds the slow proxy holds each answer."""


def _async_cache(endpoint: str, **config: Any) -> tuple[Any, CallCounter]:
    from secretcache import AsyncSecretCache, CacheConfig

    with endpoint_env(endpoint):
        cache = AsyncSecretCache(config=CacheConfig(**config))
        client = cache.client  # created now, while the endpoint is set
    calls = CallCounter()
    calls.attach(client)
    return cache, calls


def fetches_settled(cache: Any) -> bool:
    """No fetch of ``cache`` is in flight.

    A coroutine that stopped waiting for a fetch leaves a wake-up registered on it,
    which the fetch delivers to that coroutine's loop when it ends, from a worker
    thread; on a loop closed by then, that delivery raises and is logged (and, in
    the library as it stands, skips the wake-ups registered after it). So every
    loop here stays open until the fetches it waited on have ended.
    """
    return all(entry.flight is None for entry in list(cache._engine.entries.values()))


def close_when_settled(loop: asyncio.AbstractEventLoop, cache: Any, timeout: float = 15.0) -> None:
    deadline = time.perf_counter() + timeout
    while not fetches_settled(cache) and time.perf_counter() < deadline:
        time.sleep(0.05)
    loop.run_until_complete(asyncio.sleep(0))  # deliver the wake-ups those fetches queued
    loop.close()


def _time_awaited(
    read: Callable[[str], Awaitable[str]], key: str, loop: asyncio.AbstractEventLoop, seconds: float
) -> float:
    """Seconds per ``await read(key)`` in a loop, like ``measure.time_hit`` (one repeat)."""
    scope: dict[str, Any] = {"read": read, "key": key}
    # Globals, as timeit uses, so the loop overhead matches the sync figure's.
    exec("async def _run(n):\n    for _ in range(n):\n        await read(key)\n", scope)
    run = scope["_run"]
    number = 1
    while True:
        start = time.perf_counter()
        loop.run_until_complete(run(number))
        elapsed = time.perf_counter() - start
        if elapsed >= 0.005:
            break
        number *= 4
    number = max(1, int(number * seconds / elapsed))
    start = time.perf_counter()
    loop.run_until_complete(run(number))
    return (time.perf_counter() - start) / number


_SEND_ONCE = """\
c = read(key)
try:
    c.send(None)
except StopIteration:
    pass
"""


def hits(secrets: measure.Secrets, settings: measure.Settings) -> dict[str, float]:
    """Median ns per hit: the async door awaited and sent once, the sync door, a dict."""
    from secretcache import CacheConfig, SecretCache

    name = "bench/async/hit"
    expected = secrets.create(name)
    async_cache, _ = _async_cache(secrets.endpoint, ttl=3600.0)
    with endpoint_env(secrets.endpoint):
        sync_cache = SecretCache(config=CacheConfig(ttl=3600.0))
        sync_cache.client  # noqa: B018 - created now, while the endpoint is set
    floor = {name: expected}
    loop = asyncio.new_event_loop()
    try:
        if loop.run_until_complete(async_cache.get_secret_string(name)) != expected:
            raise RuntimeError("AsyncSecretCache returned the wrong value")
        if sync_cache.get_secret_string(name) != expected:
            raise RuntimeError("SecretCache returned the wrong value")
        coroutine = async_cache.get_secret_string(name)
        try:
            coroutine.send(None)
        except StopIteration as done:
            if done.value != expected:
                raise RuntimeError("the sent coroutine returned the wrong value") from None
        else:  # pragma: no cover - the contract says a hit never yields
            coroutine.close()
            raise RuntimeError("an async hit yielded to the event loop")
        rounds = 3 if settings.quick else 5
        times: dict[str, list[float]] = {"sync": [], "awaited": [], "sent": [], "dict": []}
        statement = "read(key)"
        for _ in range(rounds):
            times["sync"].append(
                measure.time_hit(
                    statement, {"read": sync_cache.get_secret_string, "key": name}, settings
                )
            )
            times["awaited"].append(
                statistics.median(
                    _time_awaited(async_cache.get_secret_string, name, loop, settings.hit_seconds)
                    for _ in range(settings.hit_repeats)
                )
            )
            times["sent"].append(
                measure.time_hit(
                    _SEND_ONCE, {"read": async_cache.get_secret_string, "key": name}, settings
                )
            )
            times["dict"].append(
                measure.time_hit(statement, {"read": floor.__getitem__, "key": name}, settings)
            )
    finally:
        loop.close()
    ns = {kind: statistics.median(values) * 1e9 for kind, values in times.items()}
    return {
        "sync_hit_ns": ns["sync"],
        "async_hit_ns": ns["awaited"],
        "async_send_hit_ns": ns["sent"],
        "dict_hit_ns": ns["dict"],
        "async_over_sync": ns["awaited"] / ns["sync"],
        "async_send_over_sync": ns["sent"] / ns["sync"],
    }


def awaiters(secrets: measure.Secrets, count: int = 100) -> dict[str, Any]:
    """``count`` coroutines await one entry the cache has never loaded."""
    name = "bench/async/awaiters"
    expected = secrets.create(name)
    cache, calls = _async_cache(secrets.endpoint, ttl=3600.0)

    async def main() -> tuple[list[str], float]:
        start = time.perf_counter()
        values = await asyncio.gather(*(cache.get_secret_string(name) for _ in range(count)))
        return values, time.perf_counter() - start

    values, seconds = asyncio.run(main())
    return {
        "awaiters": count,
        "awaiters_calls": calls.take(),
        "awaiters_seconds": seconds,
        "awaiters_all_correct": values == [expected] * count,
    }


async def _ticking(during: Callable[[], Awaitable[Any]]) -> tuple[float, Any]:
    """Largest gap between ticks of a 5 ms ticker while ``during()`` runs, and its result."""
    stop = asyncio.Event()
    largest = 0.0

    async def ticker() -> None:
        nonlocal largest
        last = time.perf_counter()
        while not stop.is_set():
            await asyncio.sleep(TICK)
            now = time.perf_counter()
            largest = max(largest, now - last)
            last = now

    ticks = asyncio.create_task(ticker())
    await asyncio.sleep(TICK * 4)  # the ticker is running before the work starts
    try:
        result = await during()
    finally:
        stop.set()
        await ticks
    return largest, result


def loop_lag(
    secrets: measure.Secrets, moto_port: int, settings: measure.Settings
) -> dict[str, Any]:
    """The ticker's largest gap: idle, during a slow cold read, during a silent one."""
    slow_name, silent_name = "bench/async/slow", "bench/async/silent"
    slow_value = secrets.create(slow_name)
    secrets.create(silent_name)
    slow_proxy, silent_proxy = SwitchableProxy(moto_port), SwitchableProxy(moto_port)
    slow_cache, _ = _async_cache(slow_proxy.endpoint, ttl=3600.0)
    silent_cache, _ = _async_cache(silent_proxy.endpoint, ttl=3600.0)
    slow_proxy.slow(SLOW_ANSWER)
    silent_proxy.hang()
    try:

        async def idle() -> None:
            await asyncio.sleep(settings.lag_seconds / 2)

        async def slow_read() -> tuple[bool, float]:
            start = time.perf_counter()
            value = await slow_cache.get_secret_string(slow_name)
            return value == slow_value, time.perf_counter() - start

        async def silent_read() -> None:
            read = asyncio.ensure_future(silent_cache.get_secret_string(silent_name))
            done, _ = await asyncio.wait((read,), timeout=settings.lag_seconds)
            if done:
                raise RuntimeError("a silent endpoint answered")
            read.cancel()  # cancels this wait only; the fetch goes on on its worker
            with contextlib.suppress(asyncio.CancelledError):
                await read

        idle_gap, _ = asyncio.run(_ticking(idle))
        slow_gap, (slow_correct, slow_seconds) = asyncio.run(_ticking(slow_read))
        loop = asyncio.new_event_loop()
        silent_gap, _ = loop.run_until_complete(_ticking(silent_read))
    finally:
        slow_proxy.close()
        silent_proxy.close()  # the silent fetch now fails, and its loop can close
    close_when_settled(loop, silent_cache)
    return {
        "lag_tick_s": TICK,
        "lag_idle_s": idle_gap,
        "lag_slow_s": slow_gap,
        "lag_slow_answer_s": SLOW_ANSWER,
        "lag_slow_read_s": slow_seconds,
        "lag_slow_correct": slow_correct,
        "lag_silent_s": silent_gap,
        "lag_silent_watch_s": settings.lag_seconds,
    }


def async_figures(
    secrets: measure.Secrets, moto_port: int, settings: measure.Settings
) -> dict[str, Any]:
    return {
        **hits(secrets, settings),
        **awaiters(secrets),
        **loop_lag(secrets, moto_port, settings),
    }
