"""The fleet simulator against a real run: 20 caches (threads) on moto's server.

Two measurements, each made for real and then predicted by :mod:`benchmarks.fleet`
with the same parameters:

- TTL refreshes: 20 caches read 3 secrets (TTL 2 s, jitter 0.1, Poisson reads
  20/s per secret) for a few seconds; the GetSecretValue calls are counted.
- A cold start with the quotas scaled down (BatchGetSecretValue 4/s,
  GetSecretValue 200/s -- 20 environments against 4 batch calls/s is the same
  squeeze as 1,000 against 100/s): 20 caches start together and prefetch 5
  secrets, batch only vs batch with fallback. The quotas are enforced by the
  same :class:`~benchmarks.fleet.Quotas` in front of real moto clients, on the
  real clock.

``python -m benchmarks.fleet_check`` prints the comparison; ``benchmarks.fleet``
runs it too, so the published tables always carry their anchor.
"""

from __future__ import annotations

import math
import random
import statistics
import sys
import threading
import time
from typing import Any

from secretcache import CacheConfig, SecretCache, SecretCacheError

from .fleet import (
    BATCH,
    GET,
    JITTER,
    BatchOnlySource,
    BatchThrottled,
    Quotas,
    _retry_wait,
    cold_start,
    ttl_calls,
)
from .infra import MotoProcess, admin_client, use_fake_aws_env

HOSTS = 20
SECRETS = 3
TTL = 2.0
READ_RATE = 20.0
COLD_SECRETS = 5
SCALED = {BATCH: 4.0, GET: 200.0}


def _client(endpoint: str) -> Any:
    import boto3
    from botocore.config import Config

    session: Any = boto3.session.Session()
    return session.client(
        "secretsmanager",
        endpoint_url=endpoint,
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}),
    )


class QuotaGate:
    """A real client behind the simulator's quota windows (on the real clock)."""

    def __init__(self, client: Any, quotas: Quotas) -> None:
        self._client = client
        self._quotas = quotas

    def get_secret_value(self, **params: Any) -> Any:
        self._quotas.admit(GET)
        return self._client.get_secret_value(**params)

    def batch_get_secret_value(self, **params: Any) -> Any:
        self._quotas.admit(BATCH)
        return self._client.batch_get_secret_value(**params)


def _together(workers: list[threading.Thread]) -> None:
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


def real_ttl_calls(clients: list[Any], names: list[str], duration: float) -> tuple[int, float]:
    """(GetSecretValue calls, mean seconds per fetch) of 20 caches reading for ``duration``."""
    caches = [
        SecretCache(client, config=CacheConfig(ttl=TTL, jitter=JITTER, max_refresh_wait=math.inf))
        for client in clients
    ]
    fetch_times: list[float] = []
    for cache in caches:
        cache._engine.observers.append(lambda _id, _outcome, seconds: fetch_times.append(seconds))
    start = threading.Barrier(HOSTS)

    def reader(cache: SecretCache, rng: random.Random) -> None:
        start.wait()
        deadline = time.monotonic() + duration
        # One timeline per secret, each with Poisson reads, as in the simulator.
        due = {name: time.monotonic() + rng.expovariate(READ_RATE) for name in names}
        while True:
            name = min(due, key=due.__getitem__)
            wait = due[name] - time.monotonic()
            if due[name] > deadline:
                return
            if wait > 0:
                time.sleep(wait)
            cache.get_secret_string(name)
            due[name] = time.monotonic() + rng.expovariate(READ_RATE)

    _together(
        [
            threading.Thread(target=reader, args=(cache, random.Random(i)))
            for i, cache in enumerate(caches)
        ]
    )
    return sum(c.stats().api_calls for c in caches), statistics.mean(fetch_times)


def real_cold_start(clients: list[Any], names: list[str], mode: str) -> dict[str, Any]:
    """20 caches start together and prefetch; quotas scaled down, enforced on the real clock."""
    quotas = Quotas(time.monotonic, SCALED)
    gates = [QuotaGate(client, quotas) for client in clients]
    warm: list[float] = []
    lock = threading.Lock()
    start = threading.Barrier(HOSTS)

    def environment(gate: QuotaGate, seed: int) -> None:
        rng = random.Random(seed)
        cache = SecretCache(gate, config=CacheConfig(ttl=3600, max_refresh_wait=math.inf))
        if mode == "batch-only":
            cache._engine.source = BatchOnlySource(cache._engine.source, gate)
        start.wait()
        tries = 0
        while True:
            try:
                cache.prefetch(*names)
            except BatchThrottled:
                time.sleep(_retry_wait(tries, rng))
                tries += 1
                continue
            except SecretCacheError:
                pass
            entries = cache._engine.current
            missing = [e for n in names if (e := entries.get(n)) is None or e.value is None]
            if not missing:
                with lock:
                    warm.append(time.monotonic() - quotas.origin)
                return
            due = min(e.retry_at for e in missing if e is not None)
            time.sleep(max(0.001, due - time.monotonic()))
            tries += 1

    quotas.origin = time.monotonic()
    _together(
        [threading.Thread(target=environment, args=(gate, i)) for i, gate in enumerate(gates)]
    )
    return {
        "batch_calls": quotas.total(BATCH) + quotas.total(BATCH, throttled=True),
        "throttled_batch": quotas.total(BATCH, throttled=True),
        "get_calls": quotas.total(GET) + quotas.total(GET, throttled=True),
        "throttled_get": quotas.total(GET, throttled=True),
        "all_warm_s": max(warm),
    }


def compare(quick: bool) -> dict[str, Any]:
    """Real measurements and the simulator's predictions, side by side."""
    use_fake_aws_env()
    duration = 4.0 if quick else 15.0
    server = MotoProcess()
    try:
        admin = admin_client(server.endpoint)
        names = [f"anchor/secret-{i}" for i in range(max(SECRETS, COLD_SECRETS))]
        for name in names:
            admin.create_secret(Name=name, SecretString=f"{name}|v1")
        clients = [_client(server.endpoint) for _ in range(HOSTS)]
        real_calls, latency = real_ttl_calls(clients, names[:SECRETS], duration)
        real_cold = {
            mode: real_cold_start(clients, names[:COLD_SECRETS], mode)
            for mode in ("batch-only", "fallback")
        }
    finally:
        server.stop()
    predicted_calls = ttl_calls(HOSTS, SECRETS, TTL, duration, read_rate=READ_RATE, latency=latency)
    predicted_cold = {
        mode: cold_start(
            HOSTS, COLD_SECRETS, mode, burst=0.01, limits=SCALED, latency=latency, seed=5
        )
        for mode in ("batch-only", "fallback")
    }
    rows: list[dict[str, Any]] = [
        {
            "what": f"GetSecretValue calls, {HOSTS} caches x {SECRETS} secrets, TTL {TTL:.0f} s, "
            f"{duration:.0f} s",
            "real": real_calls,
            "simulated": predicted_calls,
        }
    ]
    for mode in ("batch-only", "fallback"):
        real, sim = real_cold[mode], predicted_cold[mode]
        for key, label in (
            ("batch_calls", "BatchGetSecretValue calls"),
            ("throttled_batch", "throttled batch calls"),
            ("get_calls", "GetSecretValue calls"),
            ("all_warm_s", "all warm after (s)"),
        ):
            rows.append(
                {
                    "what": f"cold start, {mode}: {label}",
                    "real": round(real[key], 2),
                    "simulated": round(sim[key], 2),
                }
            )
    return {"fetch_latency_s": latency, "rows": rows}


def anchor_table(data: dict[str, Any]) -> str:
    lines = [
        "| measurement | real (moto, 20 threads) | simulator | difference |",
        "|---|---:|---:|---:|",
    ]
    for row in data["rows"]:
        real, sim = row["real"], row["simulated"]
        diff = f"{(sim - real) / real:+.0%}" if real else ("0" if sim == real else "n/a")
        lines.append(f"| {row['what']} | {real:,} | {sim:,} | {diff} |")
    lines.append("")
    lines.append(
        f"Mean fetch against moto in the real run: {data['fetch_latency_s'] * 1000:.1f} ms "
        "(the simulator used the same)."
    )
    return "\n".join(lines)


def main() -> int:
    print(anchor_table(compare(quick="--quick" in sys.argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
