"""What the asyncio database tests share: rotation settings, and leak checks that
include the async drivers' logs. The rotation workers are ``stress.run_stress_async``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from secretcache._demo.rotation import Strategy

from .stress import StressResult, record
from .test_leaks_db import LOGGERS, Canaries, _Keep
from .test_rotation_slow_connects import MAX_API_CALLS_PER_ROTATION
from .test_rotation_slow_connects import PAUSE as SLOW_PAUSE
from .test_rotation_workers import PAUSE

__all__ = [
    "ASYNC_LOGGERS",
    "MAX_API_CALLS",
    "PAUSE",
    "ROTATIONS",
    "SLOW_GAP",
    "SLOW_PAUSE",
    "STRATEGIES",
    "check_rotation",
    "leak_watch",
    "provoke_async",
]

STRATEGIES = [Strategy.SINGLE_USER, Strategy.ALTERNATING_USERS]
ROTATIONS = 2
"""Two, so the second meets what the first left (AWSPREVIOUS, a remembered credential;
with alternating users, the first user's password changing); a third repeats the
second, and 30 runs of three would outgrow the files' time budget on two cores."""
SLOW_GAP = 0.4
"""Seconds of calm around rotations behind the slow proxy, as in test_rotation_slow_connects."""
MAX_API_CALLS = MAX_API_CALLS_PER_ROTATION * ROTATIONS
"""GetSecretValue calls of all tasks over the run: the blocking adapters' bound under many
workers. Two per rotation as a rule; 32 tasks make PostgreSQL handshakes slow enough on
two cores for a walk to straddle two steps (one or two more). A connect that re-read
the labels for itself would add one per task."""


def check_rotation(
    adapter: str, kind: str, strategy: Strategy, result: StressResult, tasks: int
) -> None:
    """Record the figures; then every rotation done, tasks busy, 0 failed, calls bounded."""
    record(adapter, kind, strategy.value, result)
    assert result.rotations == ROTATIONS, result.summary()
    assert result.ops > tasks, result.summary()
    assert result.failed == 0, result.summary()
    assert result.api_calls <= MAX_API_CALLS, result.summary()


ASYNC_LOGGERS = (*LOGGERS, "aiomysql", "asyncpg", "psycopg", "asyncio")
"""Loggers an async connect can write to: the library's, SQLAlchemy's, the drivers', asyncio's."""


@contextlib.contextmanager
def leak_watch() -> Iterator[Canaries]:
    """Canaries, and afterwards a check that no DEBUG record of ``ASYNC_LOGGERS`` holds one.

    As ``test_leaks_db.canaries``, for the async drivers' loggers too: records go
    to a handler of our own and do not propagate, so pytest never prints them.
    """
    keep = _Keep()
    saved = []
    for name in ASYNC_LOGGERS:
        logger = logging.getLogger(name)
        saved.append((logger, logger.level, logger.propagate))
        logger.setLevel(logging.DEBUG)
        logger.propagate = False
        logger.addHandler(keep)
    found = Canaries()
    found.records = keep.records
    try:
        yield found
    finally:
        for logger, level, propagate in saved:
            logger.removeHandler(keep)
            logger.setLevel(level)
            logger.propagate = propagate
    leaks = found.log_leaks(keep.records)
    assert not leaks, f"a canary is reachable from log records: {leaks}"


def provoke_async(action: Callable[[], Awaitable[Any]]) -> BaseException:
    """The exception the coroutine raises (the test fails, naming only classes, if none)."""

    async def run() -> BaseException:
        try:
            await action()
        except BaseException as exc:
            return exc
        raise AssertionError("no exception was raised")

    return asyncio.run(run())
