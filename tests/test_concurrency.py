"""Many threads, one API call: coalesced misses, stale-while-refresh, coalesced refresh.

These run against moto's server on 127.0.0.1 with a client of their own, so the
threads really wait on HTTP, not on an in-process mock.
"""

from __future__ import annotations

import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

import secretcache.cache as cache_module
from secretcache import CacheConfig, SecretCache
from tests.async_front import both_fronts
from tests.conftest import MotoServer
from tests.helpers import CallLog, FaultInjector

front = both_fronts(__name__)  # every test here runs against SecretCache and AsyncSecretCache

THREADS = 32


@pytest.fixture
def client(moto_server: MotoServer) -> Any:
    client = moto_server.client()
    client.create_secret(Name="shared", SecretString="v1")
    return client


def run_together(count: int, func: Any) -> list[Any]:
    """Start ``count`` calls of ``func`` as close to the same instant as threads allow."""
    barrier = threading.Barrier(count)

    def task() -> Any:
        barrier.wait()
        return func()

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(lambda _: task(), range(count)))


def test_concurrent_misses_share_one_call(client: Any) -> None:
    log = CallLog(client)
    faults = FaultInjector(client)
    faults.before_each(lambda: time.sleep(0.2))  # keep the first fetch in flight
    cache = SecretCache(client)
    results = run_together(THREADS, lambda: cache.get_secret_string("shared"))
    assert results == ["v1"] * THREADS
    assert log.count("GetSecretValue") == 1
    assert cache.stats().api_calls == 1


@pytest.mark.parametrize("max_refresh_wait", [math.inf, 0.1])
def test_past_expiry_one_caller_refreshes_others_get_previous_value(
    client: Any, monkeypatch: pytest.MonkeyPatch, max_refresh_wait: float
) -> None:
    now = [1000.0]
    monkeypatch.setattr(cache_module, "monotonic", lambda: now[0])
    cache = SecretCache(
        client, config=CacheConfig(ttl=60, jitter=0, max_refresh_wait=max_refresh_wait)
    )
    assert cache.get_secret_string("shared") == "v1"
    client.put_secret_value(SecretId="shared", SecretString="v2")
    now[0] += 61

    release = threading.Event()
    entered = threading.Event()
    faults = FaultInjector(client)

    def hold() -> None:
        entered.set()
        assert release.wait(10), "the test never released the refresh"

    faults.before_each(hold)
    refresher = ThreadPoolExecutor(max_workers=1)
    refreshed = refresher.submit(cache.get_secret_string, "shared")
    assert entered.wait(5)
    # While the refresh is stuck on the network, every other reader returns at once.
    others = run_together(16, lambda: cache.get_secret_string("shared"))
    assert others == ["v1"] * 16
    assert faults.seen == 1
    if max_refresh_wait == math.inf:
        release.set()
        assert refreshed.result(timeout=10) == "v2"  # the refreshing caller waited for it
    else:
        # The refreshing caller gave up after max_refresh_wait: previous value, and the
        # refresh goes on in the background.
        assert refreshed.result(timeout=10) == "v1"
        release.set()
        entry = cache._entries[("shared", "AWSCURRENT")]
        deadline = time.monotonic() + 10
        while entry.flight is not None and time.monotonic() < deadline:
            time.sleep(0.005)
    refresher.shutdown()
    assert cache.get_secret_string("shared") == "v2"
    assert faults.seen == 1
    assert cache.stats().stale_served == 16 + (max_refresh_wait != math.inf)


def test_concurrent_forced_refreshes_are_coalesced(client: Any) -> None:
    cache = SecretCache(client, config=CacheConfig(min_refresh_interval=0))
    cache.get_secret_string("shared")
    client.put_secret_value(SecretId="shared", SecretString="v2")
    log = CallLog(client)
    faults = FaultInjector(client)
    faults.before_each(lambda: time.sleep(0.3))
    values = run_together(8, lambda: cache.refresh("shared"))
    assert {v.secret_string for v in values} == {"v2"}
    assert log.count("GetSecretValue") == 1  # one fetch for the whole crowd


def test_refreshes_arriving_during_a_slow_fetch_share_it(client: Any) -> None:
    """Issue 9.2: the fetch (0.4 s) outlasts min_refresh_interval (0.3 s); 16 staggered callers.

    Callers that arrive while the fetch is in flight share it, and the rate-limit
    window counts from the *end* of that fetch, so the stragglers do not fetch again.
    """
    cache = SecretCache(client, config=CacheConfig(min_refresh_interval=0.3))
    cache.get_secret_string("shared")
    client.put_secret_value(SecretId="shared", SecretString="v2")
    time.sleep(0.35)  # the first load is out of the rate-limit window
    log = CallLog(client)
    FaultInjector(client).before_each(lambda: time.sleep(0.4))
    barrier = threading.Barrier(16)

    def staggered(i: int) -> Any:
        barrier.wait()
        time.sleep(0.02 * i)  # arrivals spread over 0.3 s of the 0.4 s fetch
        return cache.refresh("shared")

    with ThreadPoolExecutor(max_workers=16) as pool:
        values = list(pool.map(staggered, range(16)))
    assert {v.secret_string for v in values} == {"v2"}
    assert log.count("GetSecretValue") == 1, f"{log.count('GetSecretValue')} calls, not 1"


def test_refresh_is_rate_limited_and_never_sleeps(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_sleep(seconds: float) -> None:
        raise AssertionError(f"refresh slept for {seconds} s")

    cache = SecretCache(client, config=CacheConfig(min_refresh_interval=5))
    cache.get_secret_string("shared")
    client.put_secret_value(SecretId="shared", SecretString="v2")
    log = CallLog(client)
    monkeypatch.setattr(time, "sleep", no_sleep)
    assert cache.refresh("shared").secret_string == "v1"  # within the interval: no call
    assert log.count("GetSecretValue") == 0
    now = time.monotonic()
    monkeypatch.setattr(cache_module, "monotonic", lambda: now + 6)
    assert cache.refresh("shared").secret_string == "v2"
    assert log.count("GetSecretValue") == 1


def test_concurrent_prefetches_share_their_batches(moto_server: MotoServer) -> None:
    """32 threads prefetching the same 50 secrets: the batches are fetched once, not 32 times.

    Each batched fetch is an ordinary flight of its entry, so a second prefetch (or a
    reader) arriving while it is in flight joins it instead of asking again.
    """
    client = moto_server.client()
    names = [f"prefetch/{i:02d}" for i in range(50)]
    for name in names:
        client.create_secret(Name=name, SecretString=f"value of {name}")
    log = CallLog(client)
    FaultInjector(client, "BatchGetSecretValue").before_each(lambda: time.sleep(0.2))
    cache = SecretCache(client)
    run_together(32, lambda: cache.prefetch(*names))
    calls = log.by_operation()
    assert calls["BatchGetSecretValue"] == 3, calls  # 20 + 20 + 10
    assert calls["GetSecretValue"] <= 2, calls  # only an id left over between chunks
    assert [cache.get_secret_string(n) for n in names] == [f"value of {n}" for n in names]
