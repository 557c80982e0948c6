"""Many threads, one API call: coalesced misses, stale-while-refresh, coalesced refresh.

These run against moto's server on 127.0.0.1 with a client of their own, so the
threads really wait on HTTP, not on an in-process mock.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

import secretcache.cache as cache_module
from secretcache import CacheConfig, SecretCache
from tests.conftest import MotoServer
from tests.helpers import CallLog, FaultInjector

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


def test_past_expiry_one_caller_refreshes_others_get_previous_value(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [1000.0]
    monkeypatch.setattr(cache_module, "monotonic", lambda: now[0])
    cache = SecretCache(client, config=CacheConfig(ttl=60, jitter=0))
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
    release.set()
    assert refreshed.result(timeout=10) == "v2"  # the refreshing caller gets the fresh value
    refresher.shutdown()
    assert cache.get_secret_string("shared") == "v2"
    assert cache.stats().stale_served == 16


def test_concurrent_forced_refreshes_are_coalesced(client: Any) -> None:
    cache = SecretCache(client, config=CacheConfig(min_refresh_interval=0))
    cache.get_secret_string("shared")
    client.put_secret_value(SecretId="shared", SecretString="v2")
    log = CallLog(client)
    faults = FaultInjector(client)
    faults.before_each(lambda: time.sleep(0.3))
    values = run_together(8, lambda: cache.refresh("shared"))
    assert {v.secret_string for v in values} == {"v2"}
    # One fetch for the whole crowd; at most one more by a thread that arrived late.
    assert log.count("GetSecretValue") <= 2


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
