"""TTL, jitter, version pins, stale-while-error and the error backoff, on a fake clock."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from botocore.exceptions import ClientError

import secretcache.cache as cache_module
from secretcache import (
    CacheConfig,
    SecretCache,
    SecretNotFoundError,
    SecretUnavailableError,
)
from tests.async_front import both_fronts
from tests.helpers import CallLog, FakeClock, FaultInjector

front = both_fronts(__name__)  # every test here runs against SecretCache and AsyncSecretCache


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(cache_module, "monotonic", fake)
    return fake


@pytest.fixture
def secret(sm: Any) -> Any:
    sm.create_secret(Name="svc/key", SecretString="v1")
    return sm


def rotate(sm: Any, value: str) -> str:
    return str(sm.put_secret_value(SecretId="svc/key", SecretString=value)["VersionId"])


def test_fresh_within_ttl_then_refreshed_after(secret: Any, clock: FakeClock) -> None:
    log = CallLog(secret)
    cache = SecretCache(secret, config=CacheConfig(ttl=100, jitter=0))
    assert cache.get_secret_string("svc/key") == "v1"
    rotate(secret, "v2")
    clock.advance(99)
    assert cache.get_secret_string("svc/key") == "v1"
    assert log.count("GetSecretValue") == 1
    clock.advance(2)
    assert cache.get_secret_string("svc/key") == "v2"  # a lone reader sees the rotation
    assert log.count("GetSecretValue") == 2
    stats = cache.stats()
    assert (stats.misses, stats.refreshes, stats.api_calls) == (1, 1, 2)


def test_unchanged_refresh_costs_one_call(secret: Any, clock: FakeClock) -> None:
    log = CallLog(secret)
    cache = SecretCache(secret, config=CacheConfig(ttl=10, jitter=0))
    for _ in range(5):
        cache.get_secret_string("svc/key")
        clock.advance(11)
    assert log.count("GetSecretValue") == 5


def test_jitter_spreads_expiry_within_bounds(sm: Any, clock: FakeClock) -> None:
    cache = SecretCache(sm, config=CacheConfig(ttl=1000, jitter=0.2))
    lifetimes = []
    for i in range(40):
        sm.create_secret(Name=f"s{i}", SecretString="x")
        cache.get_secret_string(f"s{i}")
        entry = cache._entries[(f"s{i}", "AWSCURRENT")]
        lifetimes.append(entry.expires_at - clock.now)
    assert all(800 <= life <= 1000 for life in lifetimes)
    assert len(set(lifetimes)) > 30  # not in lockstep


def test_version_id_entries_are_never_refetched(secret: Any, clock: FakeClock) -> None:
    version = secret.get_secret_value(SecretId="svc/key")["VersionId"]
    log = CallLog(secret)
    cache = SecretCache(secret, config=CacheConfig(ttl=1))
    cache.get_secret_string("svc/key", version_id=version)
    clock.advance(10**7)
    assert cache.get_secret_string("svc/key", version_id=version) == "v1"
    assert log.count("GetSecretValue") == 1


def test_failed_refresh_serves_last_good_value_until_max_stale(
    secret: Any, clock: FakeClock
) -> None:
    faults = FaultInjector(secret)
    cache = SecretCache(secret, config=CacheConfig(ttl=10, jitter=0, max_stale=100))
    assert cache.get_secret_string("svc/key") == "v1"
    faults.inject("InternalServiceError", times=None, status=500)
    clock.advance(11)
    assert cache.get_secret_string("svc/key") == "v1"
    assert cache.stats().stale_served == 1
    clock.advance(95)  # 106 s past the fetch: still within ttl + max_stale
    assert cache.get_secret_string("svc/key") == "v1"
    clock.advance(10)
    with pytest.raises(SecretUnavailableError, match=r"'svc/key' \(stage AWSCURRENT\)") as err:
        cache.get_secret_string("svc/key")
    assert isinstance(err.value.__cause__, ClientError)
    faults.clear()
    clock.advance(400)  # past any backoff: the cache recovers by itself
    assert cache.get_secret_string("svc/key") == "v1"


def test_failing_secret_read_in_a_loop_backs_off(sm: Any, clock: FakeClock) -> None:
    log = CallLog(sm)
    cache = SecretCache(sm, config=CacheConfig(error_backoff_max=60))
    for _ in range(1000):
        with pytest.raises(SecretNotFoundError):
            cache.get_secret_string("missing")
    assert log.count("GetSecretValue") == 1
    # Attempts spread out: each gap at least as long as half the previous doubling.
    attempt_times = []
    for _ in range(2000):
        before = log.count()
        with pytest.raises(SecretNotFoundError):
            cache.get_secret_string("missing")
        if log.count() > before:
            attempt_times.append(clock.now)
        clock.advance(0.25)
    gaps = [b - a for a, b in itertools.pairwise(attempt_times)]
    assert len(attempt_times) < 30  # 500 s of reads, not 2000 calls
    assert max(gaps) <= 60.5
    assert gaps[-1] > gaps[0]
    sm.create_secret(Name="missing", SecretString="now here")
    clock.advance(61)
    assert cache.get_secret_string("missing") == "now here"


def test_backoff_after_failed_refresh_limits_calls(secret: Any, clock: FakeClock) -> None:
    faults = FaultInjector(secret)
    cache = SecretCache(secret, config=CacheConfig(ttl=10, jitter=0, retry_attempts=1))
    cache.get_secret_string("svc/key")
    faults.inject("AccessDeniedException", times=None)
    clock.advance(11)
    for _ in range(100):
        assert cache.get_secret_string("svc/key") == "v1"
    assert faults.seen == 2  # the first load, then one failed refresh
