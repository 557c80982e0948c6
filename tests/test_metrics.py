"""secretcache.metrics: exact counts of a scripted scenario, read through the real SDK.

The OpenTelemetry SDK's ``InMemoryMetricReader`` collects what an exporter would
send; the scenario runs against in-process moto with faults injected at
``before-send`` and a fake clock, with ``max_refresh_wait=inf`` so every refresh
happens on the reading thread and the counts are exact.
"""

from __future__ import annotations

import asyncio
import json
import math
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader

import secretcache.cache
import secretcache.metrics
from secretcache import (
    AsyncSecretCache,
    CacheConfig,
    ParameterCache,
    SecretCache,
    SecretNotFoundError,
)
from secretcache.metrics import instrument, instrument_listener
from secretcache.testing import FakeSecretsManager
from tests.conftest import NO_BOTOCORE_RETRIES, REGION
from tests.helpers import FakeClock, FaultInjector

ROOT = Path(__file__).resolve().parent.parent
CANARY = f"CANARY-{uuid.uuid4()}"
"""Module-level: no test frame holds its own copy of a value."""

Points = dict[str, list[tuple[dict[str, Any], Any]]]


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock(1000.0)
    monkeypatch.setattr(secretcache.cache, "monotonic", fake)
    return fake


@pytest.fixture
def reader() -> InMemoryMetricReader:
    return InMemoryMetricReader()


@pytest.fixture
def provider(reader: InMemoryMetricReader) -> Iterator[MeterProvider]:
    provider = MeterProvider(metric_readers=[reader])
    yield provider
    provider.shutdown()


def collect(reader: InMemoryMetricReader) -> Points:
    """{metric name: [(attributes, value)]}; a histogram point's value is its count."""
    found: Points = {}
    data = reader.get_metrics_data()
    for resource in data.resource_metrics if data is not None else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    value = point.count if isinstance(point, HistogramDataPoint) else point.value
                    found.setdefault(metric.name, []).append((dict(point.attributes), value))
    return found


def by(points: Points, name: str, *keys: str) -> dict[tuple[Any, ...], Any]:
    """One metric's values keyed by the given attributes."""
    return {tuple(attrs.get(k) for k in keys): value for attrs, value in points.get(name, [])}


def config(**overrides: Any) -> CacheConfig:
    settings: dict[str, Any] = {"ttl": 100.0, "jitter": 0.0, "max_refresh_wait": math.inf}
    return CacheConfig(**(settings | overrides))


def create_secrets(sm: Any) -> None:
    sm.create_secret(Name="app/a", SecretString=f"{CANARY}-a")
    sm.create_secret(Name="app/b", SecretString=json.dumps({"password": f"{CANARY}-b"}))
    sm.create_secret(Name="app/c", SecretString=f"{CANARY}-c")
    sm.create_secret(Name="app/d", SecretString=f"{CANARY}-d")


def scripted_scenario(
    cache: SecretCache, sm: Any, clock: FakeClock, during_outage: Callable[[], None] = lambda: None
) -> None:
    """The scenario whose exact counts the tests below assert."""
    faults = FaultInjector(sm)
    cache.get_secret_string("app/a")  # miss: GetSecretValue ok
    for _ in range(3):
        cache.get_secret_string("app/a")  # 3 hits
    cache.get_secret_json("app/b")  # miss: GetSecretValue ok
    cache.get_secret_json("app/b")  # hit
    with pytest.raises(SecretNotFoundError):
        cache.get_secret_string("app/missing")  # miss: ResourceNotFoundException, error
    cache.prefetch("app/c", "app/d")  # one BatchGetSecretValue
    cache.get_secret_string("app/c")  # hit
    # The application's own calls on the same client are not the cache's.
    sm.get_secret_value(SecretId="app/a")
    sm.list_secrets()
    clock.advance(150)  # everything is past its TTL
    faults.inject("InternalServiceError", times=None, status=500)
    cache.get_secret_string("app/a")  # refresh: 3 attempts fail, stale value served
    cache.get_secret_string("app/a")  # backing off: stale value, no call
    during_outage()
    faults.clear()
    clock.advance(2)  # past the error backoff (at most 1 s after a first failure)
    cache.get_secret_string("app/a")  # refresh: GetSecretValue ok


def test_scripted_scenario_exact_counts(
    sm: Any, clock: FakeClock, provider: MeterProvider, reader: InMemoryMetricReader
) -> None:
    create_secrets(sm)
    cache = SecretCache(sm, config=config())
    instrument(cache, name="payments", meter_provider=provider)
    outage: Points = {}
    scripted_scenario(cache, sm, clock, lambda: outage.update(collect(reader)))
    points = collect(reader)

    counts = {
        name: by(points, name, "cache")[("payments",)]
        for name in (
            "secretcache.hits",
            "secretcache.misses",
            "secretcache.refreshes",
            "secretcache.stale_values_served",
            "secretcache.errors",
            "secretcache.failovers",
            "secretcache.entries",
            "secretcache.oldest_value_age",
        )
    }
    assert counts == {
        "secretcache.hits": 5,
        "secretcache.misses": 3,
        "secretcache.refreshes": 2,
        "secretcache.stale_values_served": 2,
        "secretcache.errors": 2,
        "secretcache.failovers": 0,
        "secretcache.entries": 5,  # a, b, missing (remembered error), c, d
        # a was just refreshed; b, c and d expired unread (their next read refreshes them)
        "secretcache.oldest_value_age": 0.0,
    }
    # During the outage a was served at t=1150 from its fetch at t=1000.
    assert by(outage, "secretcache.oldest_value_age", "cache") == {("payments",): 150.0}
    assert by(outage, "secretcache.stale_values_served", "cache") == {("payments",): 2}
    assert by(points, "secretcache.api_calls", "cache", "operation", "outcome") == {
        ("payments", "GetSecretValue", "ok"): 3,
        ("payments", "GetSecretValue", "ResourceNotFoundException"): 1,
        ("payments", "GetSecretValue", "InternalServiceError"): 3,  # every attempt
        ("payments", "BatchGetSecretValue", "ok"): 1,
    }
    assert by(points, "secretcache.fetch.duration", "outcome") == {
        ("ok",): 3,
        ("SecretNotFoundError",): 1,
        ("SecretUnavailableError",): 1,
    }
    # The per-operation counts agree with the engine's own count of attempts.
    assert cache.stats().api_calls == 8
    # No secret id unless asked for.
    assert all("secret_id" not in attrs for series in points.values() for attrs, _ in series)


def test_no_data_point_carries_a_secret_value(
    sm: Any, clock: FakeClock, provider: MeterProvider, reader: InMemoryMetricReader
) -> None:
    create_secrets(sm)
    cache = SecretCache(sm, config=config())
    instrument(cache, meter_provider=provider, include_secret_ids=True)
    scripted_scenario(cache, sm, clock)
    data = reader.get_metrics_data()
    assert data is not None
    where: list[str] = []
    seen_ids: set[str] = set()
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for label, text in (
                    ("name", metric.name),
                    ("description", metric.description),
                    ("unit", metric.unit),
                ):
                    if "CANARY" in str(text):
                        where.append(f"{label} of a metric")
                for index, point in enumerate(metric.data.data_points):
                    seen_ids.update(str(v) for k, v in point.attributes.items() if k == "secret_id")
                    for key, value in point.attributes.items():
                        if "CANARY" in str(key) or "CANARY" in str(value):
                            where.append(f"{metric.name} point {index} attribute {key!r}")
                    if "CANARY" in repr(point):
                        where.append(f"{metric.name} point {index}")
    assert where == [], f"a secret value reached exported metrics at: {where}"
    # Opting in adds the ids (and only ids) to latency and age.
    assert {"app/a", "app/b", "app/missing"} <= seen_ids


def test_oldest_value_age_counts_from_the_fetch_that_stored_the_value(
    sm: Any, clock: FakeClock, provider: MeterProvider, reader: InMemoryMetricReader
) -> None:
    """A failed refresh moves the entry's fetched_at; the value served is as old as before.

    An entry expired and idle is left out: the next read refreshes it first.
    """
    sm.create_secret(Name="app/only", SecretString=f"{CANARY}-only")
    cache = SecretCache(sm, config=config())
    instrument(cache, meter_provider=provider, include_secret_ids=True)
    cache.get_secret_string("app/only")
    clock.advance(40)
    assert by(collect(reader), "secretcache.oldest_value_age", "secret_id") == {("app/only",): 40}
    clock.advance(110)  # t=1150: expired, not read since: not counted as served
    assert by(collect(reader), "secretcache.oldest_value_age", "secret_id") == {}
    FaultInjector(sm).inject("InternalServiceError", times=None, status=500)
    cache.get_secret_string("app/only")  # the refresh fails at t=1150: stale value served
    clock.advance(5)
    assert by(collect(reader), "secretcache.oldest_value_age", "secret_id") == {("app/only",): 155}


def test_requests_of_a_library_created_client_are_counted_per_operation(
    aws: None, clock: FakeClock, provider: MeterProvider, reader: InMemoryMetricReader
) -> None:
    """The cache creates its client on first fetch, after instrument(): still counted."""
    boto3.client("secretsmanager", region_name=REGION).create_secret(
        Name="app/lazy", SecretString=CANARY
    )
    cache = SecretCache(config=config())
    instrumentation = instrument(cache, meter_provider=provider)
    assert cache._engine.source.caller._client is None  # not created by instrument()
    cache.get_secret_string("app/lazy")
    with pytest.raises(SecretNotFoundError):
        cache.prefetch("app/x", "app/y")  # both unknown: batch answers errors, then singly
    assert instrumentation.per_operation
    calls = by(collect(reader), "secretcache.api_calls", "operation", "outcome")
    assert calls == {
        ("GetSecretValue", "ok"): 1,
        ("BatchGetSecretValue", "ok"): 1,
        ("GetSecretValue", "ResourceNotFoundException"): 2,
    }
    assert sum(calls.values()) == cache.stats().api_calls


def test_failover_region_answers_are_counted(
    aws: None, clock: FakeClock, provider: MeterProvider, reader: InMemoryMetricReader
) -> None:
    primary = boto3.client("secretsmanager", region_name=REGION, config=NO_BOTOCORE_RETRIES)
    replica = boto3.client("secretsmanager", region_name="us-west-2", config=NO_BOTOCORE_RETRIES)
    for client in (primary, replica):
        client.create_secret(Name="app/replicated", SecretString=CANARY)
    FaultInjector(primary).inject("InternalServiceError", times=None, status=500)
    cache = SecretCache(primary, config=config(retry_attempts=1), failover_clients=[replica])
    instrument(cache, meter_provider=provider)
    cache.get_secret_string("app/replicated")
    points = collect(reader)
    assert by(points, "secretcache.failovers", "cache") == {("default",): 1}
    assert by(points, "secretcache.api_calls", "operation", "outcome") == {
        ("GetSecretValue", "InternalServiceError"): 1,  # the primary
        ("GetSecretValue", "ok"): 1,  # the replica
    }


def test_a_client_without_botocore_events_reports_the_total_only(
    clock: FakeClock, provider: MeterProvider, reader: InMemoryMetricReader
) -> None:
    fake = FakeSecretsManager()
    fake.put("app/fake", CANARY)
    cache = SecretCache(fake, config=config())
    instrumentation = instrument(cache, meter_provider=provider)
    cache.get_secret_string("app/fake")
    cache.get_secret_string("app/fake")
    assert not instrumentation.per_operation
    points = collect(reader)
    assert points["secretcache.api_calls"] == [({"cache": "default"}, 1)]
    assert by(points, "secretcache.hits", "cache") == {("default",): 1}


def test_async_cache(
    sm: Any, clock: FakeClock, provider: MeterProvider, reader: InMemoryMetricReader
) -> None:
    create_secrets(sm)
    cache = AsyncSecretCache(sm, config=config())
    instrument(cache, name="async", meter_provider=provider)

    async def reads() -> None:
        for _ in range(4):
            await cache.get_secret_string("app/a")

    asyncio.run(reads())
    points = collect(reader)
    assert by(points, "secretcache.hits", "cache") == {("async",): 3}
    assert by(points, "secretcache.misses", "cache") == {("async",): 1}
    assert by(points, "secretcache.api_calls", "operation", "outcome") == {
        ("GetSecretValue", "ok"): 1
    }


def test_parameter_cache(
    aws: None, clock: FakeClock, provider: MeterProvider, reader: InMemoryMetricReader
) -> None:
    ssm = boto3.client("ssm", region_name=REGION, config=NO_BOTOCORE_RETRIES)
    ssm.put_parameter(Name="/app/host", Value="db.internal", Type="String")
    ssm.put_parameter(Name="/app/port", Value="5432", Type="String")
    ssm.put_parameter(Name="/app/password", Value=CANARY, Type="SecureString")
    params = ParameterCache(ssm, config=config())
    instrument(params, name="params", meter_provider=provider)
    params.get("/app/host")
    params.get("/app/host")
    params.prefetch("/app/password", "/app/port")
    with pytest.raises(SecretNotFoundError):
        params.get("/app/missing")
    points = collect(reader)
    assert by(points, "secretcache.api_calls", "cache", "operation", "outcome") == {
        ("params", "GetParameter", "ok"): 1,
        ("params", "GetParameters", "ok"): 1,
        ("params", "GetParameter", "ParameterNotFound"): 1,
    }
    assert by(points, "secretcache.hits", "cache") == {("params",): 1}
    assert by(points, "secretcache.misses", "cache") == {("params",): 2}


def test_caches_are_told_apart_by_name_and_equal_names_add_up(
    sm: Any, clock: FakeClock, provider: MeterProvider, reader: InMemoryMetricReader
) -> None:
    create_secrets(sm)
    caches = [SecretCache(sm, config=config()) for _ in range(3)]
    for cache, name in zip(caches, ("payments", "orders", "orders"), strict=True):
        instrument(cache, name=name, meter_provider=provider)
    for cache in caches:
        cache.get_secret_string("app/a")
        cache.get_secret_string("app/a")
    points = collect(reader)
    assert by(points, "secretcache.hits", "cache") == {("payments",): 1, ("orders",): 2}
    assert by(points, "secretcache.api_calls", "cache", "operation") == {
        ("payments", "GetSecretValue"): 1,
        ("orders", "GetSecretValue"): 2,
    }


def test_one_cache_is_instrumented_once_per_provider(sm: Any, provider: MeterProvider) -> None:
    cache = SecretCache(sm)
    first = instrument(cache, meter_provider=provider)
    with pytest.raises(ValueError, match="already instrumented"):
        instrument(cache, meter_provider=provider)
    first.close()
    instrument(cache, meter_provider=provider).close()


def test_close_takes_every_hook_off(
    sm: Any, clock: FakeClock, provider: MeterProvider, reader: InMemoryMetricReader
) -> None:
    create_secrets(sm)
    cache = SecretCache(sm, config=config())
    observers = list(cache._engine.observers)
    with instrument(cache, meter_provider=provider) as instrumentation:
        cache.get_secret_string("app/a")
    assert cache._engine.observers == observers
    cache.get_secret_string("app/b")
    assert instrumentation._calls == {("GetSecretValue", "ok"): 1}  # the second was not seen
    points = collect(reader)
    assert "secretcache.hits" not in points or points["secretcache.hits"] == []


def test_a_lazily_wrapped_caller_is_restored_on_close(aws: None, provider: MeterProvider) -> None:
    cache = SecretCache()
    caller = cache._engine.source.caller
    instrumentation = instrument(cache, meter_provider=provider)
    assert "_watch_sends" in vars(caller)
    instrumentation.close()
    assert "_watch_sends" not in vars(caller)


def test_a_failing_metrics_hook_never_fails_a_fetch(
    sm: Any,
    clock: FakeClock,
    provider: MeterProvider,
    reader: InMemoryMetricReader,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    create_secrets(sm)
    cache = SecretCache(sm, config=config())
    instrument(cache, meter_provider=provider)

    def broken(_: Any) -> str:
        raise RuntimeError("metrics bug")

    monkeypatch.setattr(secretcache.metrics, "_outcome", broken)
    assert cache.get_secret_string("app/a") == f"{CANARY}-a"


def test_the_hit_path_is_not_touched(sm: Any, provider: MeterProvider) -> None:
    create_secrets(sm)
    cache = SecretCache(sm)
    before = {name: getattr(SecretCache, name) for name in ("get_secret_string", "get_secret")}
    instrument(cache, meter_provider=provider)
    assert {name: getattr(SecretCache, name) for name in before} == before
    assert not {"get_secret_string", "get_secret", "get_secret_json"} & set(vars(cache))
    assert type(cache._engine.hits) is int


class _ListenerStats:
    def __init__(self, received: int, applied: int, ignored: int, malformed: int) -> None:
        self.received, self.applied = received, applied
        self.ignored, self.malformed = ignored, malformed


class _StandInListener:
    """What instrument_listener relies on of a RotationListener: stats() and its fields."""

    def __init__(self) -> None:
        self.counts = _ListenerStats(0, 0, 0, 0)

    def stats(self) -> _ListenerStats:
        return self.counts


def test_listener_events(provider: MeterProvider, reader: InMemoryMetricReader) -> None:
    listener = _StandInListener()
    instrumentation = instrument_listener(listener, name="payments", meter_provider=provider)
    listener.counts = _ListenerStats(received=7, applied=3, ignored=2, malformed=2)
    points = collect(reader)
    assert by(points, "secretcache.events.received", "cache") == {("payments",): 7}
    assert by(points, "secretcache.events.handled", "result") == {
        ("applied",): 3,
        ("ignored",): 2,
        ("malformed",): 2,
    }
    instrumentation.close()
    with pytest.raises(TypeError):
        instrument_listener(object(), meter_provider=provider)


def test_instrument_refuses_what_is_not_a_cache(provider: MeterProvider) -> None:
    with pytest.raises(TypeError, match="SecretCache"):
        instrument(object(), meter_provider=provider)


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )


def test_import_secretcache_imports_no_opentelemetry() -> None:
    result = _run(
        """
        import sys
        import secretcache, secretcache.aio, secretcache.decorators, secretcache.aws_lambda
        from secretcache.testing import FakeSecretsManager
        fake = FakeSecretsManager()
        fake.put("app/x", "v")
        cache = secretcache.SecretCache(fake)
        cache.get_secret_string("app/x")
        cache.get_secret_string("app/x")
        loaded = sorted(m for m in sys.modules if m.split(".")[0] == "opentelemetry")
        print("LOADED", loaded)
        """
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "LOADED []" in result.stdout


def test_global_provider_set_between_two_instrumentations() -> None:
    """Instruments made before the global provider is set follow it; later caches join them."""
    result = _run(
        """
        from opentelemetry import metrics
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from secretcache import SecretCache
        from secretcache.metrics import instrument
        from secretcache.testing import FakeSecretsManager

        fake = FakeSecretsManager()
        fake.put("app/x", "v")
        early, late = SecretCache(fake), SecretCache(fake)
        instrument(early, name="early")  # the global provider is still a proxy
        reader = InMemoryMetricReader()
        metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
        instrument(late, name="late")
        for cache in (early, late):
            cache.get_secret_string("app/x")
            cache.get_secret_string("app/x")
        hits = {}
        for resource in reader.get_metrics_data().resource_metrics:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == "secretcache.hits":
                        for point in metric.data.data_points:
                            hits[point.attributes["cache"]] = point.value
        print("HITS", sorted(hits.items()))
        """
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "HITS [('early', 1), ('late', 1)]" in result.stdout


def test_without_the_extra_the_import_error_names_it() -> None:
    result = _run(
        """
        import sys
        sys.modules["opentelemetry"] = None  # as if opentelemetry-api were not installed
        import secretcache
        try:
            import secretcache.metrics
        except ImportError as exc:
            print("ERROR", exc)
        """
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "secretcache[otel]" in result.stdout
