"""prefetch, invalidate, LRU eviction, stats and on_change."""

from __future__ import annotations

from typing import Any

import pytest

from secretcache import CacheConfig, SecretCache, SecretNotFoundError
from tests.async_front import both_fronts
from tests.helpers import CallLog, FaultInjector

front = both_fronts(__name__)  # every test here runs against SecretCache and AsyncSecretCache


def make(sm: Any, count: int, prefix: str = "s") -> list[str]:
    names = [f"{prefix}{i}" for i in range(count)]
    for name in names:
        sm.create_secret(Name=name, SecretString=f"value of {name}")
    return names


def test_prefetch_uses_one_batch_call_per_twenty(sm: Any) -> None:
    names = make(sm, 25)
    log = CallLog(sm)
    cache = SecretCache(sm)
    cache.prefetch(*names)
    assert log.by_operation() == {"BatchGetSecretValue": 2}
    assert [cache.get_secret_string(n) for n in names] == [f"value of {n}" for n in names]
    assert log.count() == 2
    assert cache.stats().api_calls == 2
    cache.prefetch(*names)  # already fresh: nothing to do
    assert log.count() == 2


def test_prefetch_falls_back_when_batch_is_denied(sm: Any) -> None:
    names = make(sm, 3)
    FaultInjector(sm, "BatchGetSecretValue").inject("AccessDeniedException", times=None)
    log = CallLog(sm)
    cache = SecretCache(sm)
    cache.prefetch(*names)
    assert log.by_operation() == {"BatchGetSecretValue": 1, "GetSecretValue": 3}
    assert cache.get_secret_string("s1") == "value of s1"


def test_prefetch_caches_the_rest_then_raises_for_a_missing_one(sm: Any) -> None:
    names = make(sm, 2)
    cache = SecretCache(sm)
    with pytest.raises(SecretNotFoundError, match="'ghost'"):
        cache.prefetch(names[0], "ghost", names[1])
    log = CallLog(sm)
    assert cache.get_secret_string(names[1]) == "value of s1"
    assert log.count() == 0


def test_invalidate_one_secret_or_all(sm: Any) -> None:
    make(sm, 2)
    cache = SecretCache(sm)
    cache.get_secret_string("s0")
    cache.get_secret_string("s0", "AWSCURRENT")
    cache.get_secret("s0", version_id=cache.get_secret("s0").version_id)
    cache.get_secret_string("s1")
    assert cache.stats().size == 3
    cache.invalidate("s0")
    assert cache.stats().size == 1
    cache.invalidate()
    assert cache.stats().size == 0


def test_least_recently_used_entry_is_evicted(sm: Any) -> None:
    make(sm, 4)
    cache = SecretCache(sm, config=CacheConfig(max_size=3))
    for name in ("s0", "s1", "s2"):
        cache.get_secret_string(name)
    cache.get_secret_string("s0")  # s1 is now the least recently used
    cache.get_secret_string("s3")
    assert cache.stats().size == 3
    log = CallLog(sm)
    cache.get_secret_string("s0")
    cache.get_secret_string("s2")
    assert log.count() == 0
    cache.get_secret_string("s1")
    assert log.count() == 1
    assert cache.stats().size == 3


def test_stats_and_on_change(sm: Any) -> None:
    sm.create_secret(Name="k", SecretString="one")
    changes: list[tuple[str, str, str | None, str]] = []
    cache = SecretCache(
        sm,
        config=CacheConfig(min_refresh_interval=0, on_change=lambda *a: changes.append(a)),
    )
    first = cache.get_secret("k")
    cache.get_secret_string("k")
    cache.refresh("k")  # same version: no change reported
    new = sm.put_secret_value(SecretId="k", SecretString="two")["VersionId"]
    cache.refresh("k")
    assert changes == [("k", "AWSCURRENT", first.version_id, new)]
    stats = cache.stats()
    assert (stats.hits, stats.misses, stats.refreshes, stats.api_calls) == (1, 1, 2, 3)
    assert (stats.errors, stats.stale_served, stats.size) == (0, 0, 1)


def test_a_failing_on_change_callback_does_not_break_reads(sm: Any) -> None:
    sm.create_secret(Name="k", SecretString="one")

    def broken(*_: Any) -> None:
        raise RuntimeError("callback bug")

    cache = SecretCache(sm, config=CacheConfig(min_refresh_interval=0, on_change=broken))
    cache.get_secret_string("k")
    sm.put_secret_value(SecretId="k", SecretString="two")
    assert cache.refresh("k").secret_string == "two"


@pytest.mark.parametrize("stage", ["AWSPREVIOUS", "AWSCURRENT"])
def test_prefetch_warms_the_configured_default_stage(sm: Any, stage: str) -> None:
    """Issue 9.6: prefetch (and so with_secrets) warms the stage reads will ask for."""
    names = make(sm, 3, prefix=f"{stage}-")
    for name in names:
        sm.put_secret_value(SecretId=name, SecretString=f"new value of {name}")
    log = CallLog(sm)
    cache = SecretCache(sm, config=CacheConfig(default_version_stage=stage))
    cache.prefetch(*names)
    warmed = log.count()
    expected = "value of" if stage == "AWSPREVIOUS" else "new value of"
    assert [cache.get_secret_string(n) for n in names] == [f"{expected} {n}" for n in names]
    assert log.count() == warmed, "a read after prefetch cost another call"
    assert warmed == (3 if stage == "AWSPREVIOUS" else 1)


def test_throttled_batch_degrades_to_single_reads_without_retrying_it(sm: Any) -> None:
    """BatchGetSecretValue has its own 100/s quota: throttled once, the ids are read singly."""
    names = make(sm, 4)
    FaultInjector(sm, "BatchGetSecretValue").inject("ThrottlingException", times=None)
    log = CallLog(sm)
    cache = SecretCache(sm, config=CacheConfig(retry_attempts=3))
    cache.prefetch(*names)
    assert log.by_operation() == {"BatchGetSecretValue": 1, "GetSecretValue": 4}
    assert cache.stats().api_calls == 5
