"""How secrets are kept: entries, TTL, coalescing, stale-while-refresh, eviction.

The cache hit is the product's hot path. A read builds its key, does one
``dict.get`` and one clock comparison, and returns: no lock, no copy, no
allocation beyond the key tuple. Everything else -- the first load, a TTL
refresh, a failure, eviction -- happens on the slow path, under a per-entry
lock that is taken only by the one caller doing the network call.
"""

from __future__ import annotations

import logging
import math
import os
import random
import threading
import time
import weakref
from collections.abc import Hashable, Mapping
from typing import Any

from .config import CacheConfig
from .errors import SecretCacheError, SecretDecodeError, describe_target
from .source import BATCH_LIMIT, SecretSource
from .stats import CacheStats
from .value import UNPARSED, SecretValue

__all__ = ["SecretCache", "default_cache"]

log = logging.getLogger("secretcache")

monotonic = time.monotonic  # module-level so tests can move time without sleeping

_ERROR_BACKOFF_BASE = 1.0
"""First delay after a failed fetch; doubles per consecutive failure up to error_backoff_max."""

_NEVER = -math.inf

_MAX_ID_LENGTH = 2048  # the service's own limit for names and ARNs
_MAX_LABEL_LENGTH = 256

EntryKey = tuple[Hashable, ...]


class _Entry:
    """One (secret, stage-or-version) pair and everything known about it.

    Attributes are read without a lock on the hot path; they are written only by
    the thread holding ``lock``, and every write leaves a consistent pair: a new
    ``value`` is stored before the ``expires_at`` that makes it fresh.
    """

    __slots__ = (
        "attempted_at",
        "error",
        "expires_at",
        "failures",
        "key",
        "last_used",
        "lock",
        "retry_at",
        "secret_id",
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
        self.last_used = monotonic()
        self.error: SecretCacheError | None = None
        self.failures = 0
        self.retry_at = _NEVER  # no fetch attempt before this (error backoff)
        self.lock = threading.Lock()

    @property
    def target(self) -> str:
        return describe_target(self.secret_id, self.version_stage, self.version_id)

    def raise_error(self) -> None:
        """Re-raise the last failure as a fresh exception (same type, message and cause)."""
        error = self.error
        if error is None:  # pragma: no cover - callers check first
            return
        raise error.copy() from error.__cause__

    def __repr__(self) -> str:
        version = self.value.version_id if self.value is not None else None
        return f"<entry {self.target} version={version}>"


class SecretCache:
    """An in-process cache of Secrets Manager secrets; safe to share between threads.

    ``SecretCache()`` makes no network call; a client is created on the first
    fetch when none is given. See ``CacheConfig`` for freshness and failure policy.
    """

    def __init__(self, client: Any | None = None, *, config: CacheConfig | None = None) -> None:
        if config is None:
            config = CacheConfig()
        elif not isinstance(config, CacheConfig):
            raise TypeError(f"config must be a CacheConfig, not {type(config).__name__}")
        self._config = config
        self._stage = config.default_version_stage
        self._entries: dict[EntryKey, _Entry] = {}
        # The same default-stage entries again, keyed by the bare id: the most common
        # read then needs no key tuple (and no tuple hash) at all.
        self._current: dict[str, _Entry] = {}
        self._lock = threading.Lock()  # guards inserting and removing entries
        self._source = SecretSource(
            client, retry_attempts=config.retry_attempts, count_call=self._count_call
        )
        self._hits = 0  # incremented lock-free on the hot path (approximate under contention)
        self._counter_lock = threading.Lock()
        self._misses = 0
        self._refreshes = 0
        self._api_calls = 0
        self._errors = 0
        self._stale_served = 0
        _live_caches.add(self)

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
                self._hits += 1
                text = entry.value.secret_string  # type: ignore[union-attr]
                if text is not None:
                    return text
        value = self._read(secret_id, version_stage, version_id)
        if value.secret_string is None:
            raise self._kind_error(secret_id, version_stage, version_id, "binary", "string")
        return value.secret_string

    def get_secret_binary(
        self, secret_id: str, version_stage: str | None = None, *, version_id: str | None = None
    ) -> bytes:
        """The secret's binary value (``SecretDecodeError`` if it is a string)."""
        value = self.get_secret(secret_id, version_stage, version_id=version_id)
        if value.secret_binary is None:
            raise self._kind_error(secret_id, version_stage, version_id, "string", "binary")
        return value.secret_binary

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
                self._hits += 1
                value = entry.value
                parsed = value._json  # type: ignore[union-attr]
                if parsed is not UNPARSED:
                    return parsed  # type: ignore[no-any-return]
        if value is None:
            value = self._read(secret_id, version_stage, version_id)
        return value._parse_json(
            secret_id, self._effective_stage(version_stage, version_id), version_id
        )

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
                self._hits += 1
                return entry.value  # type: ignore[return-value]
        return self._read(secret_id, version_stage, version_id)

    # ---------------------------------------------------------------- control

    def refresh(
        self, secret_id: str, version_stage: str | None = None, *, version_id: str | None = None
    ) -> SecretValue:
        """Fetch now, bypassing the TTL; coalesced and rate-limited, never sleeps.

        Concurrent callers share one API call. Within ``min_refresh_interval`` of
        the entry's last fetch the cached value is returned without a call.
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
    ) -> SecretValue:
        """``refresh`` with an explicit rate limit, for the library's own consumers.

        ``unless_newer_than``: the version id the caller found wanting (a rejected
        password, say). If the entry already holds a different version, it is
        returned without a call -- another caller has refreshed since.
        """
        entry = self._entry(secret_id, version_stage, version_id)
        asked_at = entry.last_used = monotonic()
        with entry.lock:
            value = entry.value
            if entry.attempted_at >= asked_at:
                # Someone fetched while we waited for the lock: share their answer.
                if entry.error is None and value is not None:
                    return value
                entry.raise_error()
            if value is not None:
                if unless_newer_than is not None and value.version_id != unless_newer_than:
                    return value
                if monotonic() - entry.attempted_at < min_interval:
                    return value
            elif entry.error is not None and monotonic() - entry.attempted_at < min_interval:
                entry.raise_error()
            with self._counter_lock:
                if value is None:
                    self._misses += 1
                else:
                    self._refreshes += 1
            fresh = self._fetch_locked(entry)
        self._report_change(entry, value, fresh)
        return fresh

    def invalidate(self, secret_id: str | None = None) -> None:
        """Forget one secret (every stage and version of it), or everything."""
        with self._lock:
            if secret_id is None:
                self._entries.clear()
                self._current.clear()
                return
            for key in [k for k in self._entries if k[0] == secret_id]:
                del self._entries[key]
            self._current.pop(secret_id, None)

    def prefetch(self, *secret_ids: str) -> None:
        """Warm ``AWSCURRENT`` of several secrets: one ``BatchGetSecretValue`` per 20.

        Ids the batch call could not serve (it is denied, unavailable, or the id
        is unknown) are fetched one by one. Every id is attempted; the first
        failure is raised at the end, after the others have been cached.
        """
        wanted: list[str] = []
        backing_off: list[str] = []  # failed lately: answered from the cache, never batched
        for secret_id in secret_ids:
            _check_id(secret_id)
            key = (secret_id, "AWSCURRENT")
            entry = self._entries.get(key)
            if secret_id in wanted or secret_id in backing_off:
                continue
            if entry is None or not monotonic() < entry.expires_at:
                if entry is not None and monotonic() < entry.retry_at:
                    backing_off.append(secret_id)
                else:
                    wanted.append(secret_id)
        first_error: SecretCacheError | None = None
        for secret_id in backing_off:
            try:
                self._read(secret_id, "AWSCURRENT", None)  # stale value or the remembered error
            except SecretCacheError as exc:
                first_error = first_error or exc
        for start in range(0, len(wanted), BATCH_LIMIT):
            chunk = wanted[start : start + BATCH_LIMIT]
            found = self._source.batch_get(chunk) if len(chunk) > 1 else {}
            for secret_id in chunk:
                try:
                    value = found.get(secret_id)
                    if value is None:
                        self._read(secret_id, "AWSCURRENT", None)
                    else:
                        self._store_prefetched(secret_id, value)
                except SecretCacheError as exc:
                    first_error = first_error or exc
        if first_error is not None:
            raise first_error

    def stats(self) -> CacheStats:
        """A consistent snapshot of the counters."""
        with self._counter_lock:
            return CacheStats(
                hits=self._hits,
                misses=self._misses,
                refreshes=self._refreshes,
                api_calls=self._api_calls,
                errors=self._errors,
                stale_served=self._stale_served,
                size=len(self._entries),
            )

    @property
    def config(self) -> CacheConfig:
        return self._config

    @property
    def client(self) -> Any:
        """The Secrets Manager client (created now if the cache was built without one)."""
        return self._source.client

    def __repr__(self) -> str:
        return f"<SecretCache entries={len(self._entries)} ttl={self._config.ttl}>"

    # -------------------------------------------------------------- slow path

    def _effective_stage(self, version_stage: str | None, version_id: str | None) -> str | None:
        if version_id is not None:
            return None
        return self._stage if version_stage is None else version_stage

    def _entry(self, secret_id: str, version_stage: str | None, version_id: str | None) -> _Entry:
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
                version_stage = self._stage
            _check_label("version_stage", version_stage)
            key = (secret_id, version_stage)
        entry = self._entries.get(key)
        if entry is not None:
            return entry
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                if len(self._entries) >= self._config.max_size:
                    self._evict_locked()
                entry = _Entry(key, secret_id, version_stage, version_id)
                self._entries[key] = entry
                if version_stage == self._stage:
                    self._current[secret_id] = entry
            return entry

    def _evict_locked(self) -> None:
        """Drop the least recently used entries until one slot is free.

        A linear scan of ``last_used`` stamps, run only when a new entry must be
        inserted into a full cache: it keeps the hit path free of any recency
        bookkeeping beyond one attribute store (see docs/design.md).
        """
        while len(self._entries) >= self._config.max_size:
            victim = min(self._entries.values(), key=_last_used)
            del self._entries[victim.key]
            if self._current.get(victim.secret_id) is victim:
                del self._current[victim.secret_id]
            log.debug("evicted %s (least recently used)", victim.target)

    def _read(
        self, secret_id: str, version_stage: str | None, version_id: str | None
    ) -> SecretValue:
        """Everything that is not a fresh hit: first load, TTL refresh, failures."""
        entry = self._entry(secret_id, version_stage, version_id)
        now = monotonic()
        entry.last_used = now
        value = entry.value
        if value is not None and now < entry.expires_at:
            self._hits += 1
            return value
        if value is None:
            return self._first_load(entry)
        return self._refresh_expired(entry, value, now)

    def _first_load(self, entry: _Entry) -> SecretValue:
        """No value yet: one caller fetches, concurrent callers wait for its answer."""
        with self._counter_lock:
            self._misses += 1
        with entry.lock:
            value = entry.value
            if value is not None:
                return value  # loaded while we waited
            if entry.error is not None and monotonic() < entry.retry_at:
                entry.raise_error()  # negative cache: no call per read of a failing secret
            return self._fetch_locked(entry)

    def _refresh_expired(self, entry: _Entry, stale: SecretValue, now: float) -> SecretValue:
        """Past its TTL: exactly one caller refreshes, the others get the old value at once."""
        if now < entry.retry_at:
            return self._serve_stale(entry, stale, now)  # backing off after a failure
        if not entry.lock.acquire(blocking=False):
            if now < entry.expires_at + self._config.max_stale:
                self._count_stale()
                return stale
            with entry.lock:  # too stale to serve: wait for the refresher's answer
                if entry.value is not None and monotonic() < entry.expires_at:
                    return entry.value
                return self._serve_stale(entry, stale, monotonic())
        try:
            current = entry.value
            if current is not None and monotonic() < entry.expires_at:
                return current  # refreshed by someone else a moment ago
            with self._counter_lock:
                self._refreshes += 1
            try:
                fresh = self._fetch_locked(entry)
            except SecretCacheError:
                return self._serve_stale(entry, stale, monotonic())
        finally:
            entry.lock.release()
        self._report_change(entry, stale, fresh)
        return fresh

    def _serve_stale(self, entry: _Entry, stale: SecretValue, now: float) -> SecretValue:
        """The last good value while within ``max_stale`` of its expiry, else the error."""
        if now < entry.expires_at + self._config.max_stale:
            self._count_stale()
            return stale
        if entry.error is not None:
            entry.raise_error()
        return stale  # pragma: no cover - expiry without an error means a refresh is due

    def _fetch_locked(self, entry: _Entry) -> SecretValue:
        """One fetch into ``entry``; the caller holds ``entry.lock``."""
        entry.attempted_at = monotonic()
        try:
            value = self._source.get(entry.secret_id, entry.version_stage, entry.version_id)
        except SecretCacheError as exc:
            self._record_failure(entry, exc)
            raise
        self._store_locked(entry, value)
        log.debug("fetched secret %s: version %s", entry.target, value.version_id)
        return value

    def _record_failure(self, entry: _Entry, exc: SecretCacheError) -> None:
        entry.failures += 1
        entry.error = exc
        delay = min(
            self._config.error_backoff_max, _ERROR_BACKOFF_BASE * 2.0 ** (entry.failures - 1)
        )
        entry.retry_at = monotonic() + delay * random.uniform(0.5, 1.0)
        with self._counter_lock:
            self._errors += 1
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
        config = self._config
        entry.value = value  # the value first: a reader that sees the new expiry sees it too
        entry.error = None
        entry.failures = 0
        entry.retry_at = _NEVER
        if entry.version_id is not None:
            entry.expires_at = math.inf  # a version's content never changes
        else:
            entry.expires_at = now + config.ttl * (1.0 - config.jitter * random.random())

    def _store_prefetched(self, secret_id: str, value: SecretValue) -> None:
        entry = self._entry(secret_id, "AWSCURRENT", None)
        with entry.lock:
            previous = entry.value
            entry.attempted_at = monotonic()
            self._store_locked(entry, value)
        self._report_change(entry, previous, value)

    def _report_change(
        self, entry: _Entry, previous: SecretValue | None, fresh: SecretValue
    ) -> None:
        """Call ``on_change`` (outside every lock, so it may use the cache freely)."""
        callback = self._config.on_change
        if callback is None or previous is None or previous.version_id == fresh.version_id:
            return
        old, new = previous.version_id, fresh.version_id
        label = entry.version_id if entry.version_id is not None else entry.version_stage
        try:
            callback(entry.secret_id, label or "", old, new)
        except Exception:
            log.exception("on_change callback failed for secret %s", entry.target)

    def _kind_error(
        self,
        secret_id: str,
        version_stage: str | None,
        version_id: str | None,
        held: str,
        asked: str,
    ) -> SecretDecodeError:
        stage = self._effective_stage(version_stage, version_id)
        return SecretDecodeError(
            f"secret {describe_target(secret_id, stage, version_id)} holds {held} data; "
            f"use get_secret_{held}() instead of get_secret_{asked}()",
            secret_id=secret_id,
            version_stage=stage,
            version_id=version_id,
        )

    def _count_call(self) -> None:
        with self._counter_lock:
            self._api_calls += 1

    def _count_stale(self) -> None:
        with self._counter_lock:
            self._stale_served += 1

    def _after_fork_in_child(self) -> None:
        """A forked child gets fresh locks and no inherited HTTP connections."""
        self._lock = threading.Lock()
        self._counter_lock = threading.Lock()
        for entry in list(self._entries.values()):
            entry.lock = threading.Lock()
        self._source.after_fork()


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

_live_caches: weakref.WeakSet[SecretCache] = weakref.WeakSet()
_default: SecretCache | None = None
_default_lock = threading.Lock()


def default_cache() -> SecretCache:
    """The process-wide cache used when a decorator or adapter is given none."""
    cache = _default
    if cache is None:
        with _default_lock:
            cache = _default
            if cache is None:
                cache = _set_default(SecretCache())
    return cache


def _set_default(cache: SecretCache) -> SecretCache:
    global _default
    _default = cache
    return cache


def _reinit_after_fork() -> None:
    global _default_lock
    _default_lock = threading.Lock()
    for cache in list(_live_caches):
        cache._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reinit_after_fork)
