"""What the asyncio database tests share: rotation settings and checks, and leak cases
on an ``AsyncSecretCache``. The rotation workers are ``stress.run_stress_async``."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from secretcache import AsyncSecretCache
from secretcache._demo.rotation import Strategy

from .stress import StressResult, record
from .test_leaks_db import LOGGERS, Cases
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
    "AsyncCases",
    "check_rotation",
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


ASYNC_LOGGERS = (*LOGGERS, "aiomysql", "asyncpg", "psycopg")
"""What ``test_leaks_db.canaries`` watches in these tests: the library's and SQLAlchemy's
loggers, and the async drivers'. A module sets it with an autouse fixture (autouse
fixtures start first), ``monkeypatch.setattr(test_leaks_db, "LOGGERS", ASYNC_LOGGERS)``."""


class AsyncCases(Cases):
    """``test_leaks_db.Cases`` with an ``AsyncSecretCache`` per case, and SQLAlchemy's
    wrapper attributes looked at one by one (``find_leaks`` renders them too; a failure
    here says which)."""

    def cache(self) -> AsyncSecretCache:  # type: ignore[override]
        return AsyncSecretCache(client=self.client)

    def expect(self, case: str, error: BaseException, expected: type[BaseException]) -> None:
        super().expect(case, error, expected)
        for name in ("orig", "params", "statement", "__cause__", "__context__"):
            shown = repr(getattr(error, name, None))
            if any(needle in shown for needle in self.canaries.needles):
                self.failures.append(f"{case}: a canary is in the error's {name}")


def provoke_async(action: Callable[[], Awaitable[Any]]) -> BaseException:
    """The exception the coroutine raises (the test fails, naming only classes, if none)."""

    async def run() -> BaseException:
        try:
            await action()
        except BaseException as exc:
            return exc
        raise AssertionError("no exception was raised")

    return asyncio.run(run())
