"""Work that outlives the caller who asked for it: shared results and daemon workers.

A fetch is a :class:`Task`: whoever starts it and whoever arrives while it is in
flight wait on the same object -- a blocking thread with :meth:`Task.wait`, a
coroutine with :func:`wait_async` -- and each decides for itself how long it is
willing to wait. The task itself is never cancelled by a waiter giving up.

Tasks that must not run on the caller's thread (a TTL refresh the reader will not
wait for, every fetch of the asyncio front door) run on a small pool of daemon
threads, started on demand and retired when idle. Why not
``concurrent.futures.ThreadPoolExecutor``: its workers are joined at interpreter
exit, so one fetch stuck on a silent endpoint would hold the process open for
the whole network deadline; and its threads are not replaced after ``fork()``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    import asyncio

__all__ = ["Task", "submit", "wait_async"]

log = logging.getLogger("secretcache")

T = TypeVar("T")

MAX_WORKERS = 8
"""Refreshes are rare (one per entry per TTL) and mostly wait on the network."""

IDLE_SECONDS = 30.0
"""A worker with nothing to do for this long exits; the pool shrinks to zero when idle."""


class Task(Generic[T]):
    """One unit of work whose outcome any number of waiters share."""

    __slots__ = ("_callbacks", "_done", "_error", "_lock", "_value", "started_at")

    def __init__(self, started_at: float = 0.0) -> None:
        self.started_at = started_at
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._value: T | None = None
        self._error: BaseException | None = None
        self._callbacks: list[Callable[[], None]] = []

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the task is done or ``timeout`` seconds passed; True if done."""
        return self._done.wait(timeout)

    def outcome(self) -> tuple[T | None, BaseException | None]:
        """(value, error) of a finished task; exactly one of them is set."""
        return self._value, self._error

    def run(self, work: Callable[[], T]) -> None:
        """Do the work here and publish its outcome to every waiter."""
        try:
            value = work()
        except BaseException as exc:  # published, not lost: waiters re-raise a copy
            self.finish(None, exc)
        else:
            self.finish(value, None)

    def finish(self, value: T | None, error: BaseException | None) -> None:
        with self._lock:
            self._value, self._error = value, error
            self._done.set()
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            try:
                callback()
            except Exception:  # one waiter's failure must not leave the others asleep
                log.debug("a waiter's wake-up failed", exc_info=True)

    def add_done_callback(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` (on the finishing thread) when done, or now if already done."""
        with self._lock:
            if not self._done.is_set():
                self._callbacks.append(callback)
                return
        callback()

    def remove_done_callback(self, callback: Callable[[], None]) -> None:
        """Forget a waiter that stopped waiting (its event loop may be gone by the end)."""
        with self._lock:
            if callback in self._callbacks:
                self._callbacks.remove(callback)

    def __repr__(self) -> str:
        return f"<Task done={self.done}>"


async def wait_async(task: Task[Any], timeout: float | None) -> bool:
    """Await ``task`` for at most ``timeout`` seconds without blocking the loop.

    Cancelling the awaiting coroutine cancels only its wait: the task goes on
    for everyone else.
    """
    if task.done:
        return True
    import asyncio  # only asyncio applications pay for importing it

    loop = asyncio.get_running_loop()
    future: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not future.done():
            future.set_result(None)

    def wake_soon() -> None:
        # A closed loop raises RuntimeError: nobody there is waiting any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(wake)

    task.add_done_callback(wake_soon)
    try:
        await asyncio.wait((future,), timeout=timeout)
    finally:
        # Gave up (timeout), cancelled, or woken: either way this waiter is done with it.
        task.remove_done_callback(wake_soon)
        if not future.done():
            future.cancel()
    return task.done


class _Pool:
    """Daemon worker threads fed from one queue."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._workers = 0
        self._idle = 0

    def submit(self, job: Callable[[], None]) -> None:
        self._queue.put(job)
        with self._lock:
            if self._idle > 0 or self._workers >= MAX_WORKERS:
                return
            self._workers += 1
        thread = threading.Thread(target=self._work, name="secretcache-refresh", daemon=True)
        thread.start()

    def _work(self) -> None:
        while True:
            with self._lock:
                self._idle += 1
            try:
                job = self._queue.get(timeout=IDLE_SECONDS)
            except queue.Empty:
                with self._lock:
                    self._idle -= 1
                    self._workers -= 1
                return
            with self._lock:
                self._idle -= 1
            try:
                job()
            except BaseException:  # pragma: no cover - Task.run publishes every outcome
                log.exception("secretcache background job failed")


_pool = _Pool()


def submit(task: Task[T], work: Callable[[], T]) -> None:
    """Run ``work`` for ``task`` on a daemon worker."""
    _pool.submit(lambda: task.run(work))


def _reinit_after_fork() -> None:
    """The parent's workers do not exist in a child: start with an empty pool."""
    global _pool
    _pool = _Pool()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reinit_after_fork)
