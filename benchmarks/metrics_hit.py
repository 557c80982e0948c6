"""``python -m benchmarks.metrics_hit [--quick]``: the hit time with metrics off and on.

Two caches read the same secret from moto's server (in a child process); one of
them is instrumented (:func:`secretcache.metrics.instrument`) with the
OpenTelemetry SDK's ``MeterProvider`` and an in-memory reader. The instruments
are observable -- they read ``stats()`` when the SDK collects -- so a hit should
cost the same either way; this measures that it does. The two are timed in
alternation so that drift on a shared machine falls on both alike.

:func:`measure` returns figures keyed like the other measurements
(``{"secretcache": {"hit_ns_metrics_off": ..., "hit_ns_metrics_on": ...}}``),
ready for the main benchmark table.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from typing import Any

from . import measure
from .infra import MotoProcess, endpoint_env, use_fake_aws_env

SECRET_ID = "bench/metrics-hit"


def measure_hits(secrets: measure.Secrets, settings: measure.Settings) -> dict[str, dict[str, Any]]:
    """Median ns per ``get_secret_string`` hit, metrics off and on, and the ratio."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from secretcache import CacheConfig, SecretCache
    from secretcache.metrics import instrument

    secrets.create(SECRET_ID)
    with endpoint_env(secrets.endpoint):
        off = SecretCache(config=CacheConfig(ttl=3600.0))
        on = SecretCache(config=CacheConfig(ttl=3600.0))
        off.client, on.client  # noqa: B018 - created now, while the endpoint is set
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    instrumentation = instrument(on, name="bench", meter_provider=provider)
    for cache in (off, on):
        if cache.get_secret_string(SECRET_ID) != secrets.values[SECRET_ID]:
            raise RuntimeError("the cache returned the wrong value")
    statement = "read(key)"
    rounds = 3 if settings.quick else 5
    times: dict[str, list[float]] = {"off": [], "on": []}
    for _ in range(rounds):
        for label, cache in (("off", off), ("on", on)):
            namespace = {"read": cache.get_secret_string, "key": SECRET_ID}
            times[label].append(measure.time_hit(statement, namespace, settings))
    hits_seen = _hits_reported(reader)
    instrumentation.close()
    provider.shutdown()
    if hits_seen < 1:
        raise RuntimeError("the instrumented cache reported no hits")
    off_ns = statistics.median(times["off"]) * 1e9
    on_ns = statistics.median(times["on"]) * 1e9
    return {
        "secretcache": {
            "hit_ns_metrics_off": off_ns,
            "hit_ns_metrics_on": on_ns,
            "metrics_hit_ratio": on_ns / off_ns,
            "metrics_hits_reported": hits_seen,
        }
    }


def _hits_reported(reader: Any) -> int:
    data = reader.get_metrics_data()
    for resource in data.resource_metrics if data is not None else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name == "secretcache.hits":
                    return int(sum(point.value for point in metric.data.data_points))
    return 0


def table(figures: dict[str, Any]) -> str:
    return "\n".join(
        [
            "| `get_secret_string` hit (median) | time |",
            "|---|---|",
            f"| metrics off | {figures['hit_ns_metrics_off']:,.0f} ns |",
            f"| metrics on (OpenTelemetry SDK, in-memory reader) "
            f"| {figures['hit_ns_metrics_on']:,.0f} ns |",
            f"| on ÷ off | x{figures['metrics_hit_ratio']:.2f} |",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.metrics_hit", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    args = parser.parse_args(argv)
    use_fake_aws_env()
    settings = measure.Settings.for_mode(args.quick)
    server = MotoProcess()
    try:
        figures = measure_hits(measure.Secrets(server.endpoint), settings)["secretcache"]
    finally:
        server.stop()
    print(table(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
