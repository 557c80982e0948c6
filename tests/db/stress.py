"""Workers that keep logging in while a rotator rotates: the harness of the rotation tests.

Failures are recorded as error kinds (class and driver code), never as
messages, so a failing test cannot print a password even if the code under
test leaked one into an error.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from secretcache import SecretCache
from secretcache._demo.rotation import Rotator
from secretcache.cache import Door

from .conftest import FIGURES


def error_kind(exc: BaseException) -> str:
    code = getattr(exc, "sqlstate", None) or (exc.args[0] if exc.args else None)
    if not isinstance(code, int | str) or (isinstance(code, str) and len(code) > 8):
        code = None
    return f"{type(exc).__module__}.{type(exc).__name__}({code})"


@dataclass
class StressResult:
    ops: int = 0
    failed: int = 0
    kinds: Counter[str] = field(default_factory=Counter)
    api_calls: int = 0
    rotations: int = 0

    def summary(self) -> str:
        """Safe to print: counts and error kinds only."""
        return (
            f"ops={self.ops} failed={self.failed} kinds={dict(self.kinds)} "
            f"api_calls={self.api_calls} rotations={self.rotations}"
        )


def run_stress(
    operation: Callable[[], Any],
    rotator: Rotator,
    cache: SecretCache,
    *,
    workers: int = 4,
    rotations: int = 3,
    gap: float = 0.25,
) -> StressResult:
    """``workers`` threads run ``operation`` in a loop while ``rotations`` rotations happen.

    The operation runs once first (warming the cache, as a running application
    would be); API calls are counted from then on, so they are the rotation's cost.
    """
    operation()
    baseline = cache.stats().api_calls
    stop = threading.Event()
    lock = threading.Lock()
    result = StressResult()

    def work() -> None:
        ops = failed = 0
        kinds: Counter[str] = Counter()
        while not stop.is_set():
            try:
                operation()
            except Exception as exc:
                failed += 1
                kinds[error_kind(exc)] += 1
            ops += 1
        with lock:
            result.ops += ops
            result.failed += failed
            result.kinds.update(kinds)

    threads = [threading.Thread(target=work, daemon=True) for _ in range(workers)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(gap)
        done = rotator.rotate_repeatedly(rotations, every=gap)
        time.sleep(gap)  # logins after the last finishSecret count too
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    result.rotations = len(done)
    result.api_calls = cache.stats().api_calls - baseline
    return result


async def run_stress_async(
    operation: Callable[[], Awaitable[Any]],
    rotator: Rotator,
    cache: Door,
    *,
    workers: int = 4,
    rotations: int = 3,
    gap: float = 0.25,
) -> StressResult:
    """:func:`run_stress` for asyncio: ``workers`` tasks on the running loop.

    The rotator is blocking (boto3, the database's admin connection), so it runs
    in a thread; the tasks keep the loop busy meanwhile. ``cache`` is the one the
    operation reads through (an ``AsyncSecretCache`` or a ``SecretCache``).
    """
    await operation()
    baseline = cache.stats().api_calls
    stop = asyncio.Event()
    result = StressResult()

    async def work() -> None:
        while not stop.is_set():
            try:
                await operation()
            except Exception as exc:
                result.failed += 1
                result.kinds[error_kind(exc)] += 1
            result.ops += 1

    tasks = [asyncio.create_task(work()) for _ in range(workers)]
    try:
        await asyncio.sleep(gap)
        done = await asyncio.to_thread(rotator.rotate_repeatedly, rotations, every=gap)
        await asyncio.sleep(gap)  # logins after the last finishSecret count too
    finally:
        stop.set()
        _, stuck = await asyncio.wait(tasks, timeout=30)
        for task in stuck:  # pragma: no cover - reported by the counts, not hidden
            task.cancel()
            result.failed += 1
            result.kinds["stuck task"] += 1
    result.rotations = len(done)
    result.api_calls = cache.stats().api_calls - baseline
    return result


def record(adapter: str, db: str, strategy: str, result: StressResult) -> None:
    FIGURES.append(
        {
            "adapter": adapter,
            "db": db,
            "strategy": strategy,
            "rotations": result.rotations,
            "ops": result.ops,
            "failed": result.failed,
            "api_calls": result.api_calls,
        }
    )
