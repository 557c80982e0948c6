"""How secrets are kept: entries, TTL, coalescing, stale-while-refresh, eviction.

Two parts live here. :class:`Engine` holds the entries and makes every decision
about them -- serve, wait, fetch, back off, evict -- without caring how a caller
waits. :class:`SecretCache` is the blocking front door over it; the asyncio front
door (:mod:`secretcache.aio`) drives the same engine with awaits.

The cache hit is the product's hot path. A read does one ``dict.get`` and one
clock comparison in the front door, and returns: no lock, no copy. Everything
else happens on the slow path, where the engine hands the caller either a value
or a *fetch in flight* (a :class:`~secretcache.background.Task`) to wait on for a
bounded time. Entry locks are held only for bookkeeping, never across a network
call, so a reader that holds a usable value never waits on the network for
longer than ``max_refresh_wait``.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import random
import threading
import time
import weakref
from collections.abc import Callable, Hashable, Mapping
from typing import Any

from .background import Task, submit
from .config import CacheConfig
from .errors import SecretCacheError, SecretDecodeError, describe_target
from .sources.failover import FailoverSource
from .sources.secretsmanager import SecretsManagerSource
from .stats import CacheStats
from .value import UNPARSED, SecretValue

__all__ = ["Engine", "SecretCache", "configure_default", "default_cache"]

log = logging.getLogger("secretcache")

monotonic = time.monotonic  # module-level so tests can move time without sleeping

_ERROR_BACKOFF_BASE = 1.0
"""First delay after a failed fetch; doubles per consecutive failure up to error_backoff_max."""

_NEVER = -math.inf

_MAX_ID_LENGTH = 2048  # the service's own limit for names and ARNs
_MAX_LABEL_LENGTH = 256

EntryKey = tuple[Hashable, ...]
FetchObserver = Callable[[str, str, float], None]
"""``observer(secret_id, outcome, seconds)``: outcome is ``"ok"`` or the error's class name."""


class _Entry:
    """One (secret, stage-or-version) pair and everything known about it.

    Attributes are read without a lock on the hot path; they are written only
    under ``lock`` (held for bookkeeping, never across a fetch), and every write
    leaves a consistent pair: a new ``value`` is stored before the ``expires_at``
    that makes it fresh.
    """

    __slots__ = (
        "attempted_at",
        "error",
        "expires_at",
        "failures",
        "fetched_at",
        "flight",
        "key",
        "last_used",
        "lock",
        "retry_at",
        "secret_id",
        "stored_at",
        "value",
        "version_id",
        "version_stage",
    )

    def __init__(
        self, key: EntryKey, secret_id: str, version_stage: str | None, version_id: str | None
    ) -> None:
        self.key = key
        self.secret_id = secret_id
        self.version_stage = version_stage
        self.version_id = version_id
        self.value: SecretValue | None = None
        self.expires_at = _NEVER  # fresh while monotonic() < expires_at
        self.attempted_at = _NEVER  # start of the last fetch; ``error`` says how it ended
        self.fetched_at = _NEVER  # end of the last fetch: the forced-refresh window starts here
        self.stored_at = _NEVER  # when ``value`` was stored (its age, for metrics)
        self.flight: Task[SecretValue] | None = None  # the fetch in progress, if any
        self.last_used = monotonic()
        self.error: SecretCacheError | None = None
        self.failures = 0
        self.retry_at = _NEVER  # no fetch attempt before this (error backoff)
        self.lock = threading.Lock()

    @property
    def target(self) -> str:
        return describe_target(self.secret_id, self.version_stage, self.version_id)

    def __repr__(self) -> str:
        version = self.value.version_id if self.value is not None else None
        return f"<entry {self.target} version={version}>"


class Wait:
    """What a caller on the slow path waits for: a fetch in flight, for a bounded time.

    ``timeout`` is ``None`` for "until it is done"; ``fallback`` is the value to
    serve if it is not done by then (``None``: the caller has nothing usable);
    ``run_here`` tells a blocking caller that it started the fetch and should
    perform it on its own thread; ``again`` that the fetch it waits for began too
    early to count, so the caller must plan once more after it.
    """

    __slots__ = ("again", "entry", "fallback", "run_here", "task", "timeout")

    def __init__(
        self,
        entry: _Entry,
        task: Task[SecretValue],
        *,
        timeout: float | None = None,
        fallback: SecretValue | None = None,
        run_here: bool = False,
        again: bool = False,
    ) -> None:
        self.entry = entry
        self.task = task
        self.timeout = timeout
        self.fallback = fallback
        self.run_here = run_here
        self.again = again


Plan = SecretValue | Wait | SecretCacheError
"""What the slow path decided: serve this, wait for that, or fail with this error.

Errors are returned, not raised, so the door raises them from a frame of its
own that holds no entry or value (an error tracker renders every frame's locals).
"""

Outcome = SecretValue | SecretCacheError


class Engine:
    """The keeping logic behind every front door: decisions, never blocking waits.

    Each slow-path method returns either the value to serve or a :class:`Wait`;
    the front door waits in its own way (a thread blocks, a coroutine awaits) and
    hands the outcome back to :meth:`settle`. The one exception is
    :meth:`run_here`, which a blocking caller uses to perform a fetch it started.
    """

    def __init__(
        self, source: Any, config: CacheConfig, *, default_stage: str | None = None
    ) -> None:
        self.config = config
        self.stage = default_stage if default_stage is not None else config.default_version_stage
        self.entries: dict[EntryKey, _Entry] = {}
        # The same default-stage entries again, keyed by the bare id: the most common
        # read then needs no key tuple (and no tuple hash) at all.
        self.current: dict[str, _Entry] = {}
        self._lock = threading.Lock()  # guards inserting and removing entries
        self.source = source
        self.hits = 0  # incremented lock-free on the hot path (approximate under contention)
        self._counter_lock = threading.Lock()
        self._misses = 0
        self._refreshes = 0
        self._api_calls = 0
        self._errors = 0
        self._stale_served = 0
        self._failovers = 0
        self.observers: list[FetchObserver] = []
        """Told about every fetch as it ends: metrics hang here, off the hit path."""
        _live_engines.add(self)

    # ------------------------------------------------------------- entries

    def effective_stage(self, version_stage: str | None, version_id: str | None) -> str | None:
        if version_id is not None:
            return None
        return self.stage if version_stage is None else version_stage

    def entry(self, secret_id: str, version_stage: str | None, version_id: str | None) -> _Entry:
        """The entry for this request, created (and the LRU one evicted) if needed."""
        _check_id(secret_id)
        if version_id is not None:
            if version_stage is not None:
                raise ValueError(
                    f"give either version_stage or version_id for secret {secret_id!r}, not both"
                )
            _check_label("version_id", version_id)
            key: EntryKey = (secret_id, None, version_id)
        else:
            if version_stage is None:
                version_stage = self.stage
            _check_label("version_stage", version_stage)
            key = (secret_id, version_stage)
        entry = self.entries.get(key)
        if entry is not None:
            return entry
        with self._lock:
            entry = self.entries.get(key)
            if entry is None:
                if len(self.entries) >= self.config.max_size:
                    self._evict_locked()
                entry = _Entry(key, secret_id, version_stage, version_id)
                self.entries[key] = entry
                if version_stage == self.stage:
                    self.current[secret_id] = entry
            return entry

    def _evict_locked(self) -> None:
        """Drop the least recently used entries until one slot is free.

        A linear scan of ``last_used`` stamps, run only when a new entry must be
        inserted into a full cache: it keeps the hit path free of any recency
        bookkeeping beyond one attribute store (see docs/design.md).
        """
        while len(self.entries) >= self.config.max_size:
            victim = min(self.entries.values(), key=_last_used)
            del self.entries[victim.key]
            if self.current.get(victim.secret_id) is victim:
                del self.current[victim.secret_id]
            log.debug("evicted %s (least recently used)", victim.target)

    def invalidate(self, secret_id: str | None = None) -> None:
        with self._lock:
            if secret_id is None:
                self.entries.clear()
                self.current.clear()
                return
            for key in [k for k in self.entries if k[0] == secret_id]:
                del self.entries[key]
            self.current.pop(secret_id, None)

    # ------------------------------------------------------------ decisions

    def plan_read(self, entry: _Entry, *, blocking: bool) -> Plan:
        """A read that missed the hot path: serve, or wait (boundedly) for a fetch.

        ``blocking``: the caller is a thread that may perform a fetch itself when
        it is going to wait for the answer anyway (no thread hop for a cold miss).
        """
        now = monotonic()
        entry.last_used = now
        value = entry.value
        if value is not None and now < entry.expires_at:
            self.hits += 1
            return value
        if value is None:
            return self._plan_first_load(entry, now, blocking)
        if now < entry.retry_at:
            return self._serve_stale(entry, value, now, entry.error)  # backing off
        usable = now < entry.expires_at + self.config.max_stale
        with entry.lock:
            current = entry.value
            if current is not None and monotonic() < entry.expires_at:
                return current  # refreshed by someone else a moment ago
            task = entry.flight
            if task is None:
                self._count("_refreshes")
                budget = self.config.max_refresh_wait if usable else math.inf
                inline = blocking and budget == math.inf
                task = self._start_locked(entry, inline=inline)
                return Wait(
                    entry,
                    task,
                    timeout=None if budget == math.inf else budget,
                    fallback=value if usable else None,
                    run_here=inline,
                )
        if usable:  # someone else is refreshing: the previous value, at once
            self._count("_stale_served")
            return value
        return Wait(entry, task)  # too stale to serve: wait for the refresher's answer

    def _plan_first_load(self, entry: _Entry, now: float, blocking: bool) -> Plan:
        """No value yet: one caller fetches, concurrent callers wait for its answer."""
        self._count("_misses")
        with entry.lock:
            value = entry.value
            if value is not None:
                return value  # loaded while we waited for the lock
            error = entry.error
            if error is None or now >= entry.retry_at:
                task = entry.flight
                if task is not None:
                    return Wait(entry, task)
                return Wait(entry, self._start_locked(entry, inline=blocking), run_here=blocking)
        return error.copy()  # negative cache: no call per read

    def plan_refresh(
        self,
        entry: _Entry,
        *,
        min_interval: float,
        unless_newer_than: str | None = None,
        fetched_since: float | None = None,
        blocking: bool,
    ) -> Plan:
        """A forced refresh: join a fetch in flight, or start one unless rate-limited.

        ``min_interval`` is counted from the *end* of the entry's last fetch: a
        burst of refreshes around a slow fetch shares it instead of repeating it.
        ``fetched_since``: a cached copy (or a fetch in flight) counts only if its
        fetch began at or after this time -- evidence such as a rejected password
        is newer than anything read before it.
        """
        asked_at = monotonic()
        entry.last_used = asked_at
        with entry.lock:
            task = entry.flight
            if task is not None:
                early = fetched_since is not None and task.started_at < fetched_since
                return Wait(entry, task, again=early)
            value, error = entry.value, entry.error
            recent = asked_at - entry.fetched_at < min_interval or (
                fetched_since is not None and entry.attempted_at >= fetched_since
            )
            if value is not None:
                if unless_newer_than is not None and value.version_id != unless_newer_than:
                    return value
                if recent:
                    return value
            elif error is not None and recent:
                return error.copy()
            self._count("_misses" if value is None else "_refreshes")
            task = self._start_locked(entry, inline=blocking)
        return Wait(entry, task, run_here=blocking)

    def settle(self, wait: Wait, done: bool) -> Outcome:
        """What the caller gets once its wait is over (done, or out of patience)."""
        if not done:
            fallback = wait.fallback
            if fallback is None:  # pragma: no cover - only bounded waits have a fallback
                raise AssertionError("a wait without a fallback ended early")
            self._count("_stale_served")
            return fallback
        value, error = wait.task.outcome()
        if error is None:
            return value  # type: ignore[return-value]
        if wait.fallback is not None and isinstance(error, SecretCacheError):
            return self._serve_stale(wait.entry, wait.fallback, monotonic(), error)
        if isinstance(error, SecretCacheError):
            return error.copy()
        raise error  # a defect, not a failure of the service: let it be seen

    def _serve_stale(
        self, entry: _Entry, stale: SecretValue, now: float, error: SecretCacheError | None
    ) -> Outcome:
        """The last good value while within ``max_stale`` of its expiry, else the error."""
        if now < entry.expires_at + self.config.max_stale or error is None:
            self._count("_stale_served")
            return stale
        return error.copy()

    # -------------------------------------------------------------- fetches

    def _start_locked(self, entry: _Entry, *, inline: bool) -> Task[SecretValue]:
        """A new fetch of ``entry`` (its lock held): inline by the caller, or on a worker."""
        now = monotonic()
        task: Task[SecretValue] = Task(started_at=now)
        entry.flight = task
        entry.attempted_at = now
        if not inline:
            submit(task, lambda: self._fetch(entry, task))
        return task

    def run_here(self, wait: Wait) -> None:
        """Perform, on the calling thread, the fetch this caller started."""
        entry, task = wait.entry, wait.task
        task.run(lambda: self._fetch(entry, task))

    def _fetch(self, entry: _Entry, task: Task[SecretValue]) -> SecretValue:
        """One fetch into ``entry``: the network call outside every lock, then the bookkeeping."""
        previous = entry.value
        started = time.perf_counter()
        try:
            value: SecretValue = self.source.get(
                entry.secret_id, entry.version_stage, entry.version_id
            )
        except SecretCacheError as exc:
            with entry.lock:
                self._record_failure_locked(entry, exc)
                if entry.flight is task:
                    entry.flight = None
            self._observe(entry, type(exc).__name__, started)
            raise
        except BaseException:
            with entry.lock:
                entry.fetched_at = monotonic()
                if entry.flight is task:
                    entry.flight = None
            raise
        self._observe(entry, "ok", started)
        return self._landed(entry, task, previous, value)

    def _landed(
        self,
        entry: _Entry,
        task: Task[SecretValue],
        previous: SecretValue | None,
        value: SecretValue,
    ) -> SecretValue:
        """Store what a fetch (single or batched) brought, end the flight, report a change."""
        with entry.lock:
            self._store_locked(entry, value)
            if entry.flight is task:
                entry.flight = None
        log.debug("fetched secret %s: version %s", entry.target, value.version_id)
        self._report_change(entry, previous, value)
        return value

    def _observe(self, entry: _Entry, outcome: str, started: float) -> None:
        if not self.observers:
            return
        seconds = time.perf_counter() - started
        for observer in list(self.observers):
            try:
                observer(entry.secret_id, outcome, seconds)
            except Exception:
                log.exception("a fetch observer failed")

    def _record_failure_locked(self, entry: _Entry, exc: SecretCacheError) -> None:
        entry.failures += 1
        entry.error = exc
        entry.fetched_at = now = monotonic()
        delay = min(
            self.config.error_backoff_max, _ERROR_BACKOFF_BASE * 2.0 ** (entry.failures - 1)
        )
        entry.retry_at = now + delay * random.uniform(0.5, 1.0)
        self._count("_errors")
        if entry.value is not None:
            log.warning(
                "refreshing secret %s failed (%s); serving the cached version %s",
                entry.target,
                type(exc).__name__,
                entry.value.version_id,
            )
        else:
            log.info("reading secret %s failed (%s)", entry.target, type(exc).__name__)

    def _store_locked(self, entry: _Entry, value: SecretValue) -> None:
        now = monotonic()
        config = self.config
        entry.value = value  # the value first: a reader that sees the new expiry sees it too
        entry.error = None
        entry.failures = 0
        entry.retry_at = _NEVER
        entry.fetched_at = entry.stored_at = now
        if entry.version_id is not None:
            entry.expires_at = math.inf  # a version's content never changes
        else:
            entry.expires_at = now + config.ttl * (1.0 - config.jitter * random.random())

    def _report_change(
        self, entry: _Entry, previous: SecretValue | None, fresh: SecretValue
    ) -> None:
        """Call ``on_change`` (outside every lock, so it may use the cache freely)."""
        callback = self.config.on_change
        if callback is None or previous is None or previous.version_id == fresh.version_id:
            return
        old, new = previous.version_id, fresh.version_id
        label = entry.version_id if entry.version_id is not None else entry.version_stage
        try:
            callback(entry.secret_id, label or "", old, new)
        except Exception:
            log.exception("on_change callback failed for secret %s", entry.target)

    # ------------------------------------------------------- pushed changes

    def find_entries(self, identifier: str) -> list[_Entry]:
        """Entries a pushed event about ``identifier`` concerns: a name, a full or partial ARN.

        Names match exactly (the id asked with, or the name the service returned);
        a full ARN matches the ARN of the value held; a partial ARN (no random
        six-character suffix) matches the held ARN it prefixes, up to that suffix.
        """
        found: list[_Entry] = []
        is_arn = identifier.startswith("arn:")
        for entry in list(self.entries.values()):
            value = entry.value
            if entry.secret_id == identifier or (
                value is not None
                and (
                    value.name == identifier
                    or value.arn == identifier
                    or (is_arn and value.arn and _partial_arn_matches(identifier, value.arn))
                )
            ):
                found.append(entry)
        return found

    def refresh_soon(
        self, entry: _Entry, *, unless_version: str | None = None
    ) -> Task[SecretValue] | None:
        """Refresh ``entry`` in the background now, bypassing TTL and rate limit; coalesced.

        For pushed events: readers keep the old value until the new one is stored.
        Returns the fetch (one already in flight is shared), or ``None`` when no
        call is needed: the entry was never loaded, or already holds
        ``unless_version``.
        """
        with entry.lock:
            if entry.flight is not None:
                return entry.flight
            value = entry.value
            if value is None or entry.version_id is not None:
                return None  # nothing loaded, or an immutable version pin
            if unless_version is not None and value.version_id == unless_version:
                return None
            self._count("_refreshes")
            return self._start_locked(entry, inline=False)

    # --------------------------------------------------- blocking operations

    def read_blocking(self, entry: _Entry) -> Outcome:
        """The slow path for a thread: plan, perhaps fetch here, wait, settle."""
        plan = self.plan_read(entry, blocking=True)
        if not isinstance(plan, Wait):
            return plan
        if plan.run_here:
            self.run_here(plan)
        return self.settle(plan, plan.task.wait(plan.timeout))

    def refresh_blocking(self, entry: _Entry, **how: Any) -> Outcome:
        while True:
            plan = self.plan_refresh(entry, blocking=True, **how)
            if not isinstance(plan, Wait):
                return plan
            if plan.run_here:
                self.run_here(plan)
            plan.task.wait()
            if not plan.again:
                return self.settle(plan, True)

    def prefetch(self, secret_ids: tuple[str, ...]) -> None:
        """Warm the default stage of several secrets; batched where the service allows.

        ``BatchGetSecretValue`` serves only ``AWSCURRENT``: with another default
        stage every id is read on its own (still coalesced with other readers).
        Ids the batch could not serve are read one by one. Every id is attempted;
        the first failure is raised at the end, after the others were cached.
        """
        stage = self.stage
        batch_stage, batch_limit = self.source.batch_stage, self.source.batch_limit
        mine: list[tuple[_Entry, Task[SecretValue]]] = []  # fetches this call owns
        others: list[_Entry] = []  # read the ordinary way (joining any fetch in flight)
        seen: set[str] = set()
        for secret_id in secret_ids:
            _check_id(secret_id)
            if secret_id in seen:
                continue
            seen.add(secret_id)
            entry = self.entry(secret_id, stage, None)
            now = monotonic()
            if now < entry.expires_at:
                continue
            if stage != batch_stage or now < entry.retry_at:
                others.append(entry)  # backing off: the stale value or the remembered error
                continue
            with entry.lock:
                if entry.flight is None and not monotonic() < entry.expires_at:
                    # The batch's fetch of this entry is an ordinary flight: readers and
                    # other prefetches arriving meanwhile join it instead of asking again.
                    # (Warming is not a read: it counts as neither a miss nor a refresh.)
                    mine.append((entry, self._start_locked(entry, inline=True)))
                    continue
            others.append(entry)
        for start in range(0, len(mine), batch_limit):
            self._fetch_batch(mine[start : start + batch_limit])
        first_error: SecretCacheError | None = None
        for _entry, task in mine:
            _, error = task.outcome()
            if isinstance(error, SecretCacheError) and first_error is None:
                first_error = error.copy()
        for entry in others:
            outcome = self.read_blocking(entry)
            if isinstance(outcome, SecretCacheError) and first_error is None:
                first_error = outcome
            del outcome
        del mine, others
        if first_error is not None:
            raise first_error

    def _fetch_batch(self, chunk: list[tuple[_Entry, Task[SecretValue]]]) -> None:
        """One batch call for the chunk's flights; what it could not serve is fetched singly."""
        ids = [entry.secret_id for entry, _ in chunk]
        found = self.source.batch_get(ids) if len(chunk) > 1 else {}
        for entry, task in chunk:
            value = found.get(entry.secret_id)
            previous = entry.value
            if value is None:
                task.run(functools.partial(self._fetch, entry, task))
            else:
                task.run(functools.partial(self._landed, entry, task, previous, value))

    # --------------------------------------------------------------- counters

    def _count(self, counter: str) -> None:
        with self._counter_lock:
            setattr(self, counter, getattr(self, counter) + 1)

    def count_call(self) -> None:
        with self._counter_lock:
            self._api_calls += 1

    def count_failover(self) -> None:
        with self._counter_lock:
            self._failovers += 1

    def stats(self) -> CacheStats:
        """A consistent snapshot of the counters."""
        with self._counter_lock:
            return CacheStats(
                hits=self.hits,
                misses=self._misses,
                refreshes=self._refreshes,
                api_calls=self._api_calls,
                errors=self._errors,
                stale_served=self._stale_served,
                size=len(self.entries),
                failovers=self._failovers,
            )

    def kind_error(
        self,
        secret_id: str,
        version_stage: str | None,
        version_id: str | None,
        held: str,
        asked: str,
    ) -> SecretDecodeError:
        stage = self.effective_stage(version_stage, version_id)
        return SecretDecodeError(
            f"secret {describe_target(secret_id, stage, version_id)} holds {held} data; "
            f"use get_secret_{held}() instead of get_secret_{asked}()",
            secret_id=secret_id,
            version_stage=stage,
            version_id=version_id,
        )

    def after_fork_in_child(self) -> None:
        """A forked child gets fresh locks, no fetch in flight and no inherited connections."""
        self._lock = threading.Lock()
        self._counter_lock = threading.Lock()
        for entry in list(self.entries.values()):
            entry.lock = threading.Lock()
            entry.flight = None  # its worker thread does not exist here
        after_fork = getattr(self.source, "after_fork", None)
        if callable(after_fork):
            after_fork()


def check_client(client: Any, needs: str, kind: str) -> None:
    """Refuse at construction what cannot be a client, saying what to pass instead."""
    if client is None:
        return
    if isinstance(client, CacheConfig):
        raise TypeError(
            "the first argument of the cache is the AWS client; pass the configuration "
            "by keyword: SecretCache(config=CacheConfig(...)) "
            "(or SecretCache(client, config=CacheConfig(...)))"
        )
    if not callable(getattr(client, needs, None)):
        raise TypeError(
            f"client must be a boto3 {kind!r} client (or a stand-in with {needs}()), "
            f"not {type(client).__name__}; pass config=CacheConfig(...) by keyword"
        )


def secrets_manager_engine(
    client: Any | None, config: CacheConfig | None, failover_clients: Any = ()
) -> Engine:
    """The engine behind ``SecretCache`` and ``AsyncSecretCache``: checked arguments, one source.

    With failover regions (``failover_clients``, else ``config.failover_regions``)
    the source is a :class:`FailoverSource` over one Secrets Manager source per region.
    """
    check_client(client, "get_secret_value", "secretsmanager")
    config = check_config(config)
    failover_clients = tuple(failover_clients or ())
    for extra in failover_clients:
        if extra is None:
            raise TypeError("failover_clients must be secretsmanager clients, not None")
        check_client(extra, "get_secret_value", "secretsmanager")
    engine = Engine(None, config)

    def source(client: Any | None, region: str | None = None) -> SecretsManagerSource:
        return SecretsManagerSource(
            client,
            retry_attempts=config.retry_attempts,
            count_call=engine.count_call,
            region=region,
        )

    primary = source(client)
    replicas = [source(c) for c in failover_clients] or [
        source(None, region) for region in config.failover_regions
    ]
    engine.source = (
        FailoverSource(primary, replicas, on_failover=engine.count_failover)
        if replicas
        else primary
    )
    return engine


def check_config(config: CacheConfig | None) -> CacheConfig:
    if config is None:
        return CacheConfig()
    if not isinstance(config, CacheConfig):
        raise TypeError(f"config must be a CacheConfig, not {type(config).__name__}")
    return config


class Door:
    """What every front door shares: an engine, and the plain (non-waiting) controls.

    The doors differ only in their hit paths (repeated in each on purpose: a shared
    helper would cost a call per hit) and in how they wait for a fetch.
    """

    _engine: Engine
    _config: CacheConfig

    def _open(self, engine: Engine) -> None:
        self._engine = engine
        self._config = engine.config
        self._entries = engine.entries
        self._current = engine.current

    def invalidate(self, secret_id: str | None = None) -> None:
        """Forget one secret (every stage and version of it), or everything."""
        self._engine.invalidate(secret_id)

    def stats(self) -> CacheStats:
        """A consistent snapshot of the counters."""
        return self._engine.stats()

    @property
    def config(self) -> CacheConfig:
        return self._config

    @property
    def client(self) -> Any:
        """The AWS client (created now if the cache was built without one)."""
        return self._engine.source.client

    def __repr__(self) -> str:
        return f"<{type(self).__name__} entries={len(self._entries)} ttl={self._config.ttl}>"

    def peek(
        self, secret_id: str, version_stage: str | None = None, *, version_id: str | None = None
    ) -> SecretValue | None:
        """The cached value if it is fresh, else ``None``: never fetches, never waits.

        For code that must not block (an ``async def`` function reading through a
        blocking cache): a fresh value is used at once, anything else goes to a thread.
        """
        try:
            entry = (
                self._current.get(secret_id)
                if version_stage is None and version_id is None
                else self._entries.get(
                    (secret_id, version_stage)
                    if version_id is None
                    else (secret_id, version_stage, version_id)
                )
            )
        except TypeError:
            return None
        if entry is None:
            return None
        value = entry.value
        now = monotonic()
        if value is None or not now < entry.expires_at:
            return None
        entry.last_used = now
        self._engine.hits += 1
        return value

    # What the readers do with a record the slow path brought. Failures are returned,
    # and the reader raises them from a frame that never held the record: an error
    # tracker renders every frame's locals, and the record holds the secret.

    def _text(
        self, value: SecretValue, secret_id: str, stage: str | None, version_id: str | None
    ) -> str | SecretCacheError:
        text = value.secret_string
        if text is None:
            return self._engine.kind_error(secret_id, stage, version_id, "binary", "string")
        return text

    def _binary(
        self, value: SecretValue, secret_id: str, stage: str | None, version_id: str | None
    ) -> bytes | SecretCacheError:
        data = value.secret_binary
        if data is None:
            return self._engine.kind_error(secret_id, stage, version_id, "string", "binary")
        return data

    def _parsed(
        self, value: SecretValue, secret_id: str, stage: str | None, version_id: str | None
    ) -> Mapping[str, Any] | SecretCacheError:
        return value._json_or_error(
            secret_id, self._engine.effective_stage(stage, version_id), version_id
        )


class SecretCache(Door):
    """An in-process cache of Secrets Manager secrets; safe to share between threads.

    ``SecretCache()`` makes no network call; a client is created on the first
    fetch when none is given. See ``CacheConfig`` for freshness and failure policy.
    """

    def __init__(
        self,
        client: Any | None = None,
        *,
        config: CacheConfig | None = None,
        failover_clients: Any = (),
    ) -> None:
        self._open(secrets_manager_engine(client, config, failover_clients))

    @property
    def _source(self) -> Any:
        """The Secrets Manager source of the primary region (its ``caller`` holds the client)."""
        source = self._engine.source
        return source.primary.caller if isinstance(source, FailoverSource) else source.caller

    # ------------------------------------------------------------------ reads
    # The string, JSON and record readers repeat the same few lines of hit check on
    # purpose: a shared helper would add a Python call to every hit. (Binary reads,
    # the rare kind, simply go through get_secret.)

    def get_secret_string(
        self, secret_id: str, version_stage: str | None = None, *, version_id: str | None = None
    ) -> str:
        """The secret's string value (``SecretDecodeError`` if it is binary)."""
        try:
            entry = (
                self._current.get(secret_id)
                if version_stage is None and version_id is None
                else self._entries.get(
                    (secret_id, version_stage)
                    if version_id is None
                    else (secret_id, version_stage, version_id)
                )
            )
        except TypeError:  # unhashable id: let the slow path explain
            entry = None
        if entry is not None:
            now = monotonic()
            if now < entry.expires_at:
                entry.last_used = now
                self._engine.hits += 1
                text = entry.value.secret_string  # type: ignore[union-attr]
                if text is not None:
                    return text
        entry = None  # the slow path may raise: this frame keeps no entry (nor its value)
        text = self._text(
            self._read(secret_id, version_stage, version_id), secret_id, version_stage, version_id
        )
        if isinstance(text, SecretCacheError):
            raise text
        return text

    def get_secret_binary(
        self, secret_id: str, version_stage: str | None = None, *, version_id: str | None = None
    ) -> bytes:
        """The secret's binary value (``SecretDecodeError`` if it is a string)."""
        data = self._binary(
            self.get_secret(secret_id, version_stage, version_id=version_id),
            secret_id,
            version_stage,
            version_id,
        )
        if isinstance(data, SecretCacheError):
            raise data
        return data

    def get_secret_json(
        self, secret_id: str, version_stage: str | None = None, *, version_id: str | None = None
    ) -> Mapping[str, Any]:
        """The value parsed as a JSON object: read-only, parsed once per fetched version."""
        try:
            entry = (
                self._current.get(secret_id)
                if version_stage is None and version_id is None
                else self._entries.get(
                    (secret_id, version_stage)
                    if version_id is None
                    else (secret_id, version_stage, version_id)
                )
            )
        except TypeError:
            entry = None
        value = None
        if entry is not None:
            now = monotonic()
            if now < entry.expires_at:
                entry.last_used = now
                self._engine.hits += 1
                value = entry.value
                parsed = value._json  # type: ignore[union-attr]
                if parsed is not UNPARSED:
                    return parsed  # type: ignore[no-any-return]
        entry = None
        parsed = self._parsed(
            value if value is not None else self._read(secret_id, version_stage, version_id),
            secret_id,
            version_stage,
            version_id,
        )
        value = None  # raised below from a frame that no longer holds the record
        if isinstance(parsed, SecretCacheError):
            raise parsed
        return parsed

    def get_secret(
        self, secret_id: str, version_stage: str | None = None, *, version_id: str | None = None
    ) -> SecretValue:
        """The whole ``SecretValue`` record (string or binary, ids, stages, date)."""
        try:
            entry = (
                self._current.get(secret_id)
                if version_stage is None and version_id is None
                else self._entries.get(
                    (secret_id, version_stage)
                    if version_id is None
                    else (secret_id, version_stage, version_id)
                )
            )
        except TypeError:
            entry = None
        if entry is not None:
            now = monotonic()
            if now < entry.expires_at:
                entry.last_used = now
                self._engine.hits += 1
                return entry.value  # type: ignore[return-value]
        entry = None
        return self._read(secret_id, version_stage, version_id)

    def _read(
        self, secret_id: str, version_stage: str | None, version_id: str | None
    ) -> SecretValue:
        engine = self._engine
        outcome = engine.read_blocking(engine.entry(secret_id, version_stage, version_id))
        if isinstance(outcome, SecretCacheError):
            raise outcome
        return outcome

    # ---------------------------------------------------------------- control

    def refresh(
        self, secret_id: str, version_stage: str | None = None, *, version_id: str | None = None
    ) -> SecretValue:
        """Fetch now, bypassing the TTL; coalesced and rate-limited, never sleeps.

        Callers arriving while a fetch of the entry is in flight share it. Within
        ``min_refresh_interval`` of the end of the entry's last fetch the cached
        value is returned without a call.
        """
        return self.force_refresh(
            secret_id,
            version_stage,
            version_id=version_id,
            min_interval=self._config.min_refresh_interval,
        )

    def force_refresh(
        self,
        secret_id: str,
        version_stage: str | None = None,
        *,
        version_id: str | None = None,
        min_interval: float,
        unless_newer_than: str | None = None,
        fetched_since: float | None = None,
    ) -> SecretValue:
        """``refresh`` with an explicit policy, for the library's own consumers.

        ``unless_newer_than``: the version id the caller found wanting (a rejected
        password, say). If the entry already holds a different version, it is
        returned without a call -- another caller has refreshed since.
        ``fetched_since``: a cached copy counts only if its fetch began at or
        after this time on the cache's clock (see ``Engine.plan_refresh``).
        """
        engine = self._engine
        outcome = engine.refresh_blocking(
            engine.entry(secret_id, version_stage, version_id),
            min_interval=min_interval,
            unless_newer_than=unless_newer_than,
            fetched_since=fetched_since,
        )
        if isinstance(outcome, SecretCacheError):
            raise outcome
        return outcome

    def prefetch(self, *secret_ids: str) -> None:
        """Warm the default stage of several secrets: one ``BatchGetSecretValue`` per 20.

        Ids the batch call could not serve (it is denied, throttled, unavailable,
        or the id is unknown) are fetched one by one. Every id is attempted; the
        first failure is raised at the end, after the others have been cached.
        """
        self._engine.prefetch(secret_ids)


def _partial_arn_matches(partial: str, full: str) -> bool:
    """``arn:...:secret:name`` names ``arn:...:secret:name-AbCdEf`` (the service's suffix)."""
    return full.startswith(partial) and len(full) == len(partial) + 7 and full[-7] == "-"


def _last_used(entry: _Entry) -> float:
    return entry.last_used


def _check_id(secret_id: object) -> None:
    if not isinstance(secret_id, str):
        raise TypeError(f"secret_id must be a str, not {type(secret_id).__name__}")
    if not secret_id or not secret_id.strip():
        raise ValueError("secret_id must not be empty")
    if len(secret_id) > _MAX_ID_LENGTH:
        raise ValueError(
            f"secret_id is {len(secret_id)} characters long; the service allows {_MAX_ID_LENGTH}"
        )


def _check_label(name: str, label: object) -> None:
    if not isinstance(label, str):
        raise TypeError(f"{name} must be a str, not {type(label).__name__}")
    if not label or len(label) > _MAX_LABEL_LENGTH:
        raise ValueError(f"{name} must be 1 to {_MAX_LABEL_LENGTH} characters, got {len(label)}")


# ----------------------------------------------------------- process-wide state

_live_engines: weakref.WeakSet[Engine] = weakref.WeakSet()
_default: SecretCache | None = None
_default_lock = threading.Lock()


def default_cache() -> SecretCache:
    """The process-wide cache used when a decorator or adapter is given none.

    Unless :func:`configure_default` set one, it is created on first use from the
    environment (``SECRETCACHE_TTL``, ``SECRETCACHE_MAX_STALE``,
    ``SECRETCACHE_DEFAULT_VERSION_STAGE``): Lambda's way of configuring.
    """
    cache = _default
    if cache is None:
        with _default_lock:
            cache = _default
            if cache is None:
                cache = _set_default(SecretCache(config=config_from_environment()))
    return cache


def configure_default(
    client: Any | None = None, *, config: CacheConfig | None = None
) -> SecretCache:
    """Replace (and return) the process-wide default cache.

    With no arguments: a fresh cache configured from the environment, as on first use.
    """
    if config is None:
        config = config_from_environment()
    cache = SecretCache(client, config=config)
    with _default_lock:
        return _set_default(cache)


ENVIRONMENT = {
    "SECRETCACHE_TTL": "ttl",
    "SECRETCACHE_MAX_STALE": "max_stale",
    "SECRETCACHE_DEFAULT_VERSION_STAGE": "default_version_stage",
}


def config_from_environment() -> CacheConfig:
    """A ``CacheConfig`` from ``SECRETCACHE_*`` variables; a bad one raises naming it."""
    settings: dict[str, Any] = {}
    for variable, field in ENVIRONMENT.items():
        raw = os.environ.get(variable)
        if raw is None or raw.strip() == "":
            continue
        if field == "default_version_stage":
            settings[field] = raw.strip()
            continue
        try:
            number = float(raw)
        except ValueError:
            raise ValueError(f"{variable} must be a number of seconds, got {raw!r}") from None
        settings[field] = number
    try:
        return CacheConfig(**settings)
    except (TypeError, ValueError) as exc:
        names = ", ".join(v for v, f in ENVIRONMENT.items() if f in settings)
        raise ValueError(f"bad secretcache setting in the environment ({names}): {exc}") from None


def _set_default(cache: SecretCache) -> SecretCache:
    global _default
    _default = cache
    return cache


def _reinit_after_fork() -> None:
    global _default_lock
    _default_lock = threading.Lock()
    for engine in list(_live_engines):
        engine.after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reinit_after_fork)
