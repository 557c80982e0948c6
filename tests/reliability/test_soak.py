"""A bounded soak: 16 threads, 50 secrets, rotations and faults, invariants checked throughout.

Workers mix reads of two labels, ``get_secret``, ``refresh``, ``invalidate`` and
``prefetch`` against moto's server while one thread rotates secrets and another
cycles the service through healthy, flaky (every other request of a thread
fails: throttling, 5xx, refused connections) and down (every request fails).

Invariants:
- every value returned was, at some moment, a real version of that secret
  under that label (a log of every value ever written per secret and label is
  kept; a value is logged before it is written);
- no exception escapes a read while the cache holds a value for it (all within
  ``max_stale``): a read may fail only as a cold load during a fault;
- API calls stay under a bound computed from the configuration and the
  operations performed;
- ``stats().size`` never exceeds ``max_size`` (sampled continuously).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import Counter
from typing import Any

from secretcache import CacheConfig, SecretCache, SecretUnavailableError

from .faults import Faults

DURATION = 12.0
THREADS = 16
SECRETS = 50
LABELS = ("AWSCURRENT", "AWSPREVIOUS")
CONFIG = CacheConfig(
    ttl=1.0,
    jitter=0.5,
    max_size=64,
    min_refresh_interval=0.2,
    retry_attempts=3,
    error_backoff_max=1.0,
    max_stale=3600.0,
)
FLAKY = ("throttling", "http-500", "connection-refused")


class Ledger:
    """Every value ever written per (secret, label); written before the service has it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.allowed: dict[tuple[str, str], set[str]] = {}
        self.current: dict[str, str] = {}

    def will_write(self, secret_id: str, value: str) -> None:
        with self.lock:
            previous = self.current.get(secret_id)
            self.allowed.setdefault((secret_id, "AWSCURRENT"), set()).add(value)
            if previous is not None:
                self.allowed.setdefault((secret_id, "AWSPREVIOUS"), set()).add(previous)
            self.current[secret_id] = value

    def ok(self, secret_id: str, label: str, value: str | None) -> bool:
        with self.lock:
            return value in self.allowed.get((secret_id, label), ())


class EvictionCounter(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.evictions = 0

    def emit(self, record: logging.LogRecord) -> None:
        if str(record.msg).startswith("evicted"):
            self.evictions += 1


def test_soak(moto_server: Any, monkeypatch: Any) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.endpoint)
    sm = moto_server.client()
    ledger = Ledger()
    ids = [f"soak/{n:02d}" for n in range(SECRETS)]
    versions = Counter[str]()
    for secret_id in ids:  # two versions each, so AWSPREVIOUS exists from the start
        ledger.will_write(secret_id, f"{secret_id}|0")
        sm.create_secret(Name=secret_id, SecretString=f"{secret_id}|0")
        ledger.will_write(secret_id, f"{secret_id}|1")
        sm.put_secret_value(SecretId=secret_id, SecretString=f"{secret_id}|1")
        versions[secret_id] = 1

    cache = SecretCache(config=CONFIG)
    faults = Faults(cache.client)
    counter = EvictionCounter()
    lib_log = logging.getLogger("secretcache")
    old_level = lib_log.level
    lib_log.setLevel(logging.DEBUG)
    lib_log.addHandler(counter)

    stop = threading.Event()
    lock = threading.Lock()
    violations: list[str] = []
    ops = Counter[str]()
    refreshes_per_key = Counter[tuple[str, str]]()
    max_size_seen = [0]
    phases = Counter[str]()

    def violation(text: str) -> None:
        with lock:
            if len(violations) < 20:
                violations.append(text)

    def check_value(secret_id: str, label: str, value: str | None) -> None:
        if not ledger.ok(secret_id, label, value):
            violation(f"{secret_id} {label}: a value that was never under that label")

    def read(rng: random.Random, local: Counter[str]) -> None:
        secret_id = rng.choice(ids)
        label = "AWSPREVIOUS" if rng.random() < 0.15 else "AWSCURRENT"
        key = (secret_id, label)
        before = cache._entries.get(key)
        had_value = before is not None and before.value is not None
        try:
            if rng.random() < 0.5:
                value: str | None = cache.get_secret_string(secret_id, label)
            else:
                value = cache.get_secret(secret_id, label).secret_string
        except SecretUnavailableError:
            if had_value and cache._entries.get(key) is before:
                violation(f"{secret_id} {label}: error escaped although a value was cached")
            local["cold failure"] += 1
            return
        except Exception as exc:
            violation(f"{secret_id} {label}: unexpected {type(exc).__name__}")
            return
        check_value(secret_id, label, value)
        local["read"] += 1

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        local = Counter[str]()
        refreshed = Counter[tuple[str, str]]()
        while not stop.is_set():
            roll = rng.random()
            try:
                if roll < 0.85:
                    read(rng, local)
                elif roll < 0.93:
                    secret_id = rng.choice(ids)
                    refreshed[(secret_id, "AWSCURRENT")] += 1
                    local["refresh"] += 1
                    try:
                        fresh = cache.refresh(secret_id)
                    except SecretUnavailableError:
                        local["refresh failed (fault)"] += 1
                    else:
                        check_value(secret_id, "AWSCURRENT", fresh.secret_string)
                elif roll < 0.97:
                    local["invalidate"] += 1
                    cache.invalidate(rng.choice(ids))
                else:
                    local["prefetch"] += 1
                    try:
                        cache.prefetch(*rng.sample(ids, 5))
                    except SecretUnavailableError:
                        local["prefetch failed (fault)"] += 1
            except Exception as exc:
                violation(f"unexpected {type(exc).__name__} escaped: {exc}")
            size = cache.stats().size
            if size > CONFIG.max_size:
                violation(f"size {size} > max_size")
        with lock:
            ops.update(local)
            refreshes_per_key.update(refreshed)

    def rotator() -> None:
        rng = random.Random(99)
        while not stop.is_set():
            secret_id = rng.choice(ids)
            versions[secret_id] += 1
            value = f"{secret_id}|{versions[secret_id]}"
            ledger.will_write(secret_id, value)
            sm.put_secret_value(SecretId=secret_id, SecretString=value)
            with lock:
                ops["rotation"] += 1
            time.sleep(0.01)

    def chaos() -> None:
        rng = random.Random(7)
        while not stop.is_set():
            phase = rng.choice(["healthy", "healthy", "flaky", "down"])
            phases[phase] += 1
            if phase == "healthy":
                faults.clear()
            elif phase == "flaky":
                faults.set(rng.choice(FLAKY), every=2)
            else:
                faults.set("http-500")
            stop.wait(0.4 if phase == "down" else 0.8)
        faults.clear()

    def monitor() -> None:
        while not stop.is_set():
            max_size_seen[0] = max(max_size_seen[0], len(cache._entries))
            time.sleep(0.005)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(THREADS)]
    threads += [threading.Thread(target=f) for f in (rotator, chaos, monitor)]
    started = time.monotonic()
    try:
        for thread in threads:
            thread.start()
        time.sleep(DURATION)
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
        lib_log.removeHandler(counter)
        lib_log.setLevel(old_level)
    elapsed = time.monotonic() - started

    stats = cache.stats()
    keys = SECRETS * len(LABELS)
    ttl_min = CONFIG.ttl * (1 - CONFIG.jitter)
    backoff_min = 0.5  # first error delay is 1 s x U(0.5, 1)
    per_key = 1 + elapsed / ttl_min + elapsed / backoff_min
    forced = sum(
        min(n, elapsed / CONFIG.min_refresh_interval + 1) for n in refreshes_per_key.values()
    )
    fetches = keys * per_key + forced + counter.evictions + 2 * ops["invalidate"]
    bound = CONFIG.retry_attempts * (fetches + ops["prefetch"])
    reads = ops["read"] + ops["cold failure"]
    figures = (
        f"soak: {elapsed:.1f}s, {sum(ops.values())} operations {dict(ops)}, phases {dict(phases)}, "
        f"API calls {stats.api_calls} (HTTP requests {faults.sent}, bound {bound:.0f}), "
        f"evictions {counter.evictions}, max size {max_size_seen[0]}/{CONFIG.max_size}, "
        f"stats {stats}"
    )
    print(figures)
    assert not violations, f"invariants broken: {violations}"
    assert not any(t.is_alive() for t in threads), "a thread is stuck"
    assert ops["read"] > 1000 and ops["rotation"] > 50, f"the soak did too little: {figures}"
    assert phases["down"] and phases["flaky"], "no fault phase happened"
    assert counter.evictions > 0, "max_size never bit: eviction untested"
    assert stats.api_calls <= bound, figures
    assert stats.api_calls < reads, "more API calls than reads: the cache is not caching"
    assert max_size_seen[0] <= CONFIG.max_size and stats.size <= CONFIG.max_size
