"""The measurements themselves; each returns plain data, keyed by peer name.

Phases that need time to pass (a TTL to expire) run every peer in lockstep, so
one sleep serves them all. Secret values are compared, never printed.
"""

from __future__ import annotations

import gc
import os
import statistics
import subprocess
import sys
import threading
import time
import timeit
import tracemalloc
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from .infra import FAKE_ENV, SwitchableProxy, admin_client
from .peers import API_PEERS, Peer

SMALL_SECRET_LENGTH = 32


def new_value() -> str:
    """A small secret value, different every time (a rotation changes it)."""
    return uuid.uuid4().hex[:SMALL_SECRET_LENGTH]


@dataclass(frozen=True)
class Settings:
    quick: bool
    hit_repeats: int
    hit_seconds: float  # per repeat
    throughput_seconds: float
    ttl: int
    memory_secrets: int
    import_repeats: int
    outage_cap: float
    silent_window: float = 30.0  # how long the silent-endpoint readers keep reading
    lag_seconds: float = 2.0  # how long the event-loop ticker watches a silent fetch

    @classmethod
    def for_mode(cls, quick: bool) -> Settings:
        if quick:
            return cls(True, 5, 0.02, 0.3, 2, 200, 3, 11.0, 8.0, 1.0)
        return cls(False, 9, 0.1, 1.0, 2, 2000, 7, 20.0, 30.0, 2.0)


class Secrets:
    """The benchmark's own view of moto: creates and rotates secrets, remembers values."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self._client = admin_client(endpoint)
        self.values: dict[str, str] = {}

    def create(self, name: str) -> str:
        value = new_value()
        self._client.create_secret(Name=name, SecretString=value)
        self.values[name] = value
        return value

    def create_many(self, names: list[str], threads: int = 4) -> None:
        chunks = [names[i::threads] for i in range(threads)]

        def work(chunk: list[str]) -> None:
            client = admin_client(self.endpoint)
            for name in chunk:
                value = new_value()
                client.create_secret(Name=name, SecretString=value)
                self.values[name] = value

        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(work, chunks))

    def rotate(self, name: str) -> str:
        """A new AWSCURRENT version (the old one becomes AWSPREVIOUS)."""
        value = new_value()
        self._client.put_secret_value(SecretId=name, SecretString=value)
        self.values[name] = value
        return value


# ------------------------------------------------------------------ hit path


def time_hit(stmt: str, namespace: dict[str, Any], settings: Settings) -> float:
    """Median seconds per read over ``hit_repeats`` repeats of a calibrated loop."""
    timer = timeit.Timer(stmt, globals=namespace)
    number = 1
    while True:
        elapsed = timer.timeit(number)
        if elapsed >= 0.005:
            break
        number *= 4
    number = max(1, int(number * settings.hit_seconds / elapsed))
    runs = timer.repeat(repeat=settings.hit_repeats, number=number)
    return statistics.median(runs) / number


def threaded_throughput(
    stmt: str, namespace: dict[str, Any], per_read: float, settings: Settings, threads: int = 8
) -> float:
    """Reads per second with ``threads`` threads reading the same cached secret."""
    scope = dict(namespace)
    exec(f"def _loop(n):\n    for _ in range(n):\n        {stmt}\n", scope)
    loop: Callable[[int], None] = scope["_loop"]
    chunk = max(1, int(0.002 / per_read))
    counts = [0] * threads
    barrier = threading.Barrier(threads + 1)
    deadline = [0.0]

    def worker(index: int) -> None:
        barrier.wait()
        done = 0
        while time.perf_counter() < deadline[0]:
            loop(chunk)
            done += chunk
        counts[index] = done

    workers = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for worker_thread in workers:
        worker_thread.start()
    start = time.perf_counter()
    deadline[0] = start + settings.throughput_seconds
    barrier.wait()
    for worker_thread in workers:
        worker_thread.join()
    return sum(counts) / (time.perf_counter() - start)


def hits(
    peers: Iterable[type[Peer]], secrets: Secrets, settings: Settings
) -> dict[str, dict[str, Any]]:
    """First-read calls, hit time, and 8-thread throughput, per peer."""
    results: dict[str, dict[str, Any]] = {}
    for cls in peers:
        name = f"bench/hit/{cls.name}"
        secrets.create(name)
        peer = cls(secrets.endpoint, ttl=3600)
        if peer.read(name) != secrets.values[name]:
            raise RuntimeError(f"{cls.label} returned the wrong value")
        first = peer.calls.take()
        stmt, namespace = peer.hit(name)
        per_read = time_hit(stmt, namespace, settings)
        rate = threaded_throughput(stmt, namespace, per_read, settings)
        results[cls.name] = {
            "first_read_calls": first,
            "hit_ns": per_read * 1e9,
            "threads8_reads_per_s": rate,
            "hit_calls": sum(peer.calls.take().values()),
        }
    return results


# ----------------------------------------------------------- concurrent misses


def concurrent_misses(secrets: Secrets, threads: int = 32) -> dict[str, dict[str, Any]]:
    """API calls when ``threads`` threads read one uncached secret at the same moment."""
    results: dict[str, dict[str, Any]] = {}
    for cls in API_PEERS:
        name = f"bench/miss32/{cls.name}"
        expected = secrets.create(name)
        peer = cls(secrets.endpoint, ttl=3600)
        barrier = threading.Barrier(threads)
        outcomes: list[bool] = []

        def reader(
            peer: Peer = peer,
            name: str = name,
            expected: str = expected,
            barrier: threading.Barrier = barrier,
            outcomes: list[bool] = outcomes,
        ) -> None:
            barrier.wait()
            outcomes.append(peer.read(name) == expected)

        workers = [threading.Thread(target=reader) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        results[cls.name] = {
            "miss32_calls": peer.calls.take(),
            "miss32_all_correct": len(outcomes) == threads and all(outcomes),
        }
    return results


# ------------------------------------------------------ TTL and forced refresh


def refreshes(secrets: Secrets, settings: Settings) -> dict[str, dict[str, Any]]:
    """Calls per TTL refresh (unchanged, rotated), then a forced refresh after rotation.

    All peers share the sleeps. The forced-refresh peers are warmed at the start,
    so by the time they are asked to refresh, their last fetch is seconds old (a
    refresh right after a fetch is legitimately rate-limited by some libraries).
    """
    ttl = settings.ttl
    ttl_peers: dict[str, Peer] = {}
    forced_peers: dict[str, Peer] = {}
    results: dict[str, dict[str, Any]] = {cls.name: {} for cls in API_PEERS}
    for cls in API_PEERS:
        for kind, store in (("ttl", ttl_peers), ("forced", forced_peers)):
            name = f"bench/{kind}/{cls.name}"
            secrets.create(name)
            peer = cls(secrets.endpoint, ttl=ttl if kind == "ttl" else 3600)
            peer.read(name)
            peer.calls.take()
            store[cls.name] = peer

    time.sleep(ttl + 0.3)
    for key, peer in ttl_peers.items():
        name = f"bench/ttl/{key}"
        peer.read(name)
        results[key]["refresh_unchanged_calls"] = peer.calls.take()
        secrets.rotate(name)
    time.sleep(ttl + 0.3)
    for key, peer in ttl_peers.items():
        name = f"bench/ttl/{key}"
        seen = peer.read(name) == secrets.values[name]
        results[key]["refresh_rotated_calls"] = peer.calls.take()
        results[key]["refresh_rotated_seen"] = seen

    for key, peer in forced_peers.items():
        name = f"bench/forced/{key}"
        secrets.rotate(name)
        start = time.perf_counter()
        value = peer.force_refresh(name)
        elapsed = time.perf_counter() - start
        results[key]["forced"] = {
            "seconds": elapsed,
            "calls": peer.calls.take(),
            "saw_new": value == secrets.values[name],
        }
    return results


# --------------------------------------------------------------------- outage


def outages(
    secrets: Secrets,
    moto_port: int,
    settings: Settings,
    while_waiting: Callable[[], Any] | None = None,
) -> tuple[dict[str, dict[str, Any]], Any]:
    """What a read past the TTL does when the service is down or hangs.

    Each peer is warmed through a proxy, the TTL passes, then the proxy either
    refuses connections or accepts them and never answers. Two readers per peer:
    the first finds the entry expired, the second arrives 0.25 s later, while the
    first may still be waiting. Reads still blocked at ``outage_cap`` are reported
    as such and abandoned (daemon threads).

    ``while_waiting`` runs once the readers have started, while they sit blocked on
    sockets: a measurement that counts (rather than times) can use the wait. What
    it returns is returned alongside the outage results.
    """
    proxies = {"refused": SwitchableProxy(moto_port), "hangs": SwitchableProxy(moto_port)}
    peers: dict[tuple[str, str], Peer] = {}
    for flavour, proxy in proxies.items():
        for cls in API_PEERS:
            name = f"bench/outage-{flavour}/{cls.name}"
            secrets.create(name)
            peer = cls(proxy.endpoint, ttl=settings.ttl)
            peer.read(name)
            peers[(flavour, cls.name)] = peer
    time.sleep(settings.ttl + 0.3)
    proxies["refused"].refuse()
    proxies["hangs"].hang()

    outcomes: dict[tuple[str, str, int], dict[str, Any]] = {}
    lock = threading.Lock()

    def reader(flavour: str, key: str, index: int) -> None:
        peer = peers[(flavour, key)]
        name = f"bench/outage-{flavour}/{key}"
        start = time.perf_counter()
        try:
            value = peer.read(name)
            outcome = "cached value" if value == secrets.values[name] else "wrong value"
        except Exception as exc:  # the point is to see which error each library raises
            outcome = f"raises {type(exc).__name__}"
        elapsed = time.perf_counter() - start
        with lock:
            outcomes[(flavour, key, index)] = {"outcome": outcome, "seconds": elapsed}

    started = time.perf_counter()
    threads: list[threading.Thread] = []
    for index, delay in enumerate((0.0, 0.25)):
        if delay:
            time.sleep(delay)
        for flavour, key in peers:
            thread = threading.Thread(target=reader, args=(flavour, key, index), daemon=True)
            thread.start()
            threads.append(thread)
    waited_for = while_waiting() if while_waiting is not None else None
    for thread in threads:
        thread.join(timeout=max(0.0, started + settings.outage_cap - time.perf_counter()))
    cap_hit = time.perf_counter() - started
    with lock:
        snapshot = dict(outcomes)
    for proxy in proxies.values():
        proxy.close()

    results: dict[str, dict[str, Any]] = {cls.name: {} for cls in API_PEERS}
    for flavour, key in peers:
        readers = []
        for index in (0, 1):
            found = snapshot.get((flavour, key, index))
            if found is None:
                waited = cap_hit - 0.25 * index
                found = {"outcome": "still blocked", "seconds": waited, "capped": True}
            readers.append(found)
        results[key][f"outage_{flavour}"] = readers
    return results, waited_for


# ---------------------------------------------------------------------- memory


def retained_memory(
    peers: Iterable[type[Peer]], secrets: Secrets, settings: Settings
) -> dict[str, dict[str, Any]]:
    """Bytes still allocated per cached secret, from caching ``memory_secrets`` of them.

    The figure is a slope: memory after all secrets minus memory after the first
    tenth, divided by the secrets in between, all inside one tracing session. The
    first tenth absorbs one-off allocations (client endpoint, parser and method
    caches that fill up and then only replace their entries), which would otherwise
    be charged to the secrets.
    """
    count = settings.memory_secrets
    names = [f"bench/mem/{i:05d}" for i in range(count)]
    secrets.create_many(names)
    warm = max(1, count // 10)
    results: dict[str, dict[str, Any]] = {}
    for cls in peers:
        peer = cls(secrets.endpoint, ttl=3600, max_size=count * 2)
        gc.collect()
        tracemalloc.start()
        for name in names[:warm]:
            peer.read(name)
        gc.collect()
        before, _peak = tracemalloc.get_traced_memory()
        for name in names[warm:]:
            peer.read(name)
        gc.collect()
        after, _peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        correct = all(peer.read(name) == secrets.values[name] for name in names[-50:])
        results[cls.name] = {
            "bytes_per_secret": (after - before) / (count - warm),
            "memory_secrets": count,
            "memory_values_correct": correct,
        }
        del peer
        gc.collect()
    return results


# ----------------------------------------------------------------- import time

IMPORTS: dict[str, tuple[str, str]] = {
    # name: (import statement, what makes the library ready to call the service)
    "secretcache": ("import secretcache", "secretcache.SecretCache().client"),
    "aws_caching": (
        "import aws_secretsmanager_caching",
        "aws_secretsmanager_caching.SecretCache()",
    ),
    "powertools": (
        "from aws_lambda_powertools.utilities.parameters import SecretsProvider",
        "SecretsProvider()",
    ),
    "ssm_cache": ("import ssm_cache", "ssm_cache.SecretsManagerParameter('x')._get_ssm_client()"),
    "boto3": ("import boto3", "boto3.client('secretsmanager')"),
}

_IMPORT_SCRIPT = """\
import time
t0 = time.perf_counter()
{statement}
t1 = time.perf_counter()
{ready}
t2 = time.perf_counter()
print(t1 - t0, t2 - t0)
"""


def import_times(settings: Settings) -> dict[str, dict[str, Any]]:
    """``import`` time, and import plus a ready client, each in a fresh interpreter."""
    env = {**os.environ, **FAKE_ENV, "AWS_ENDPOINT_URL": "http://127.0.0.1:9"}
    samples: dict[str, list[tuple[float, float]]] = {key: [] for key in IMPORTS}
    for _ in range(settings.import_repeats):
        for key, (statement, ready) in IMPORTS.items():
            script = _IMPORT_SCRIPT.format(statement=statement, ready=ready)
            out = subprocess.run(
                [sys.executable, "-c", script],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            ).stdout.split()
            samples[key].append((float(out[0]), float(out[1])))
    return {
        key: {
            "import_ms": statistics.median(s[0] for s in runs) * 1e3,
            "ready_ms": statistics.median(s[1] for s in runs) * 1e3,
        }
        for key, runs in samples.items()
    }
