"""``python -m benchmarks.fleet [--quick]``: a fleet of real caches on a simulated clock.

Every process is a real :class:`~secretcache.SecretCache` (the real engine: TTL
with jitter, coalescing, retries, error backoff, prefetch and its batch
fallback, the real :class:`~secretcache.events.RotationListener`), reading
through a simulated Secrets Manager that enforces the account quotas --
``GetSecretValue`` 10,000/s, ``BatchGetSecretValue`` 100/s -- by answering
``ThrottlingException`` beyond them, and counts every call. Time is simulated:
``secretcache.cache.monotonic`` is replaced by the simulation's clock (as the
tests do), sleeps between retries advance it, and each event of the simulation
runs at its own instant, so an hour of a thousand processes takes seconds.

Answers, as tables (printed, written to docs/fleet.md) and a chart
(docs/benchmarks/fleet.png):

- steady state: API calls per hour for H processes x S secrets at TTL T, and the bill;
- a rotation: calls per second, and how long until every process serves the new
  version -- TTL only, with database logins failing (single-user rotation), with push;
- a mass cold start (1,000 environments x 5 secrets): peak calls/s per API,
  throttled calls, time until all are warm -- batch only vs batch with fallback.

The assumptions are listed in docs/fleet.md; ``benchmarks/fleet_check.py``
compares the simulator with a real run of 20 caches against moto's server.
"""

from __future__ import annotations

import argparse
import contextlib
import heapq
import itertools
import json
import logging
import math
import random
import statistics
import sys
import threading
import time
import types
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import secretcache.cache as engine_module
import secretcache.events as events_module
from secretcache import CacheConfig, SecretCache, SecretCacheError
from secretcache.events import RotationListener
from secretcache.value import SecretValue

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "docs" / "benchmarks"
DOC = ROOT / "docs" / "fleet.md"

GET, BATCH = "GetSecretValue", "BatchGetSecretValue"
QUOTAS = {GET: 10_000.0, BATCH: 100.0}
"""Requests per second per account and region (AWS documentation; batch is not adjustable)."""
PRICE_PER_10K = 0.05
"""US dollars per 10,000 API calls (Secrets Manager's published price)."""
HOURS_PER_MONTH = 730
FETCH_LATENCY = 0.03
"""Seconds one call takes (assumed; moto on loopback answers in 5-15 ms)."""
PUSH_DELAY = (0.3, 1.5)
"""Seconds from a label moving to a process receiving the event: EventBridge -> SNS -> SQS
-> an SQS long poll that returns as soon as a message arrives (assumed uniform)."""
READ_RATE = 1.0
"""Reads per second per process and secret (Poisson): the first read after expiry refreshes."""
CONNECT_INTERVAL = 60.0
"""Mean seconds between new database connections of one process (Poisson)."""
JITTER = 0.1


# ------------------------------------------------------------- time and quotas


class SimClock:
    """The simulation's clock; ``offset`` is time spent inside the event running now.

    A fetch that sleeps between retries, or waits for an answer, moves ``offset``
    forward; the next event starts again from its own scheduled time.
    """

    def __init__(self) -> None:
        self.now = 0.0
        self.offset = 0.0

    def __call__(self) -> float:
        return self.now + self.offset

    def spend(self, seconds: float) -> None:
        self.offset += seconds


class _SleepOnClock:
    """Stands in for the ``time`` module tenacity sleeps with: a sleep advances the clock."""

    def __init__(self, clock: SimClock) -> None:
        self._clock = clock

    def sleep(self, seconds: float) -> None:
        self._clock.spend(seconds)


def throttling(operation: str) -> Exception:
    """The error the service answers beyond a quota (what botocore raises for it)."""
    from botocore.exceptions import ClientError

    return ClientError(
        {
            "Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"},
            "ResponseMetadata": {"HTTPStatusCode": 400},
        },
        operation,
    )


class Quotas:
    """Per-API request quotas in fixed one-second windows, and every call counted.

    AWS enforces quotas with token buckets; one-second windows are the simple
    stand-in (stated in docs/fleet.md). ``clock`` is simulated or ``time.monotonic``.
    """

    def __init__(self, clock: Callable[[], float], limits: dict[str, float]) -> None:
        self.clock = clock
        self.limits = limits
        self.admitted: Counter[tuple[str, int]] = Counter()
        self.throttled: Counter[tuple[str, int]] = Counter()
        self._lock = threading.Lock()
        self.origin = clock()

    def admit(self, operation: str) -> None:
        window = math.floor(self.clock() - self.origin)
        with self._lock:
            if self.admitted[(operation, window)] >= self.limits.get(operation, math.inf):
                self.throttled[(operation, window)] += 1
                raise throttling(operation)
            self.admitted[(operation, window)] += 1

    def total(self, operation: str, *, throttled: bool = False, since: float = -math.inf) -> int:
        counts = self.throttled if throttled else self.admitted
        return sum(n for (op, w), n in counts.items() if op == operation and w >= since)

    def peak(self, operation: str, *, since: float = -math.inf) -> int:
        """Most requests (admitted or throttled) sent to one API in one second."""
        windows: Counter[int] = Counter()
        for counts in (self.admitted, self.throttled):
            for (op, w), n in counts.items():
                if op == operation and w >= since:
                    windows[w] += n
        return max(windows.values(), default=0)

    def series(self, operation: str, until: int) -> list[int]:
        """Requests per second (admitted + throttled) from the origin to ``until``."""
        return [
            self.admitted[(operation, w)] + self.throttled[(operation, w)] for w in range(until)
        ]


# ------------------------------------------------------------------ the service


class SimService:
    """A stand-in for a ``secretsmanager`` client: versions, labels, quotas, a call latency."""

    ACCOUNT, REGION = "123456789012", "us-east-1"

    def __init__(self, clock: SimClock, quotas: Quotas, latency: float = FETCH_LATENCY) -> None:
        self.clock = clock
        self.quotas = quotas
        self.latency = latency
        self.versions: dict[str, list[str]] = {}
        self._suffix: dict[str, str] = {}

    def create(self, name: str) -> None:
        self.versions[name] = [uuid.uuid4().hex]
        self._suffix[name] = uuid.uuid4().hex[:6]

    def arn(self, name: str) -> str:
        prefix = f"arn:aws:secretsmanager:{self.REGION}:{self.ACCOUNT}:secret"
        return f"{prefix}:{name}-{self._suffix[name]}"

    def rotate(self, name: str) -> str:
        version = uuid.uuid4().hex
        self.versions[name].append(version)
        return version

    def current(self, name: str) -> str:
        return self.versions[name][-1]

    def _name(self, secret_id: str) -> str:
        if secret_id in self.versions:
            return secret_id
        for name in self.versions:
            if secret_id == self.arn(name):
                return name
        raise KeyError(secret_id)

    def _record(self, name: str, version: str) -> dict[str, Any]:
        versions = self.versions[name]
        stages = ["AWSCURRENT"] if version == versions[-1] else []
        if len(versions) > 1 and version == versions[-2]:
            stages = ["AWSPREVIOUS"]
        return {
            "ARN": self.arn(name),
            "Name": name,
            "VersionId": version,
            "SecretString": f"value of {name} at {version[:8]}",
            "VersionStages": stages,
        }

    def get_secret_value(
        self, *, SecretId: str, VersionStage: str | None = None, VersionId: str | None = None
    ) -> dict[str, Any]:
        self.quotas.admit(GET)
        self.clock.spend(self.latency)
        name = self._name(SecretId)
        if VersionId is None:
            index = -2 if VersionStage == "AWSPREVIOUS" else -1
            VersionId = self.versions[name][index]
        return self._record(name, VersionId)

    def batch_get_secret_value(self, *, SecretIdList: list[str], **_: Any) -> dict[str, Any]:
        self.quotas.admit(BATCH)
        self.clock.spend(self.latency)
        names = [self._name(i) for i in SecretIdList]
        return {"SecretValues": [self._record(n, self.current(n)) for n in names], "Errors": []}


# ---------------------------------------------------------------- the simulation


class Simulation:
    """Discrete events on a :class:`SimClock`, each run at its own time."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.clock = SimClock()
        self.rng = random.Random(seed)
        self._events: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()

    def at(self, when: float, action: Callable[[], None]) -> None:
        heapq.heappush(self._events, (when, next(self._seq), action))

    def run(self, until: float = math.inf, stop: Callable[[], bool] | None = None) -> None:
        events, clock = self._events, self.clock
        while events and events[0][0] <= until:
            when, _, action = heapq.heappop(events)
            clock.now = max(clock.now, when)
            clock.offset = 0.0
            action()
            if stop is not None and stop():
                return

    @contextlib.contextmanager
    def patched(self) -> Iterator[None]:
        """The engine, tenacity and the listener all read this simulation's clock."""
        import tenacity.nap

        saved = (engine_module.monotonic, tenacity.nap.time, events_module.time)
        logger = logging.getLogger("secretcache")
        level = logger.level
        engine_module.monotonic = self.clock
        tenacity.nap.time = _SleepOnClock(self.clock)  # type: ignore[assignment]
        events_module.time = types.SimpleNamespace(monotonic=self.clock)  # type: ignore[assignment]
        logger.setLevel(logging.CRITICAL)  # throttling storms would log a warning per fetch
        random.seed(self.seed)  # the engine's jitter and backoff, tenacity's waits
        try:
            yield
        finally:
            engine_module.monotonic, tenacity.nap.time, events_module.time = saved  # type: ignore[assignment]
            logger.setLevel(level)


def _config(ttl: float, **extra: Any) -> CacheConfig:
    # A reader that finds its entry expired fetches inline (no background thread),
    # so each simulated read is one deterministic step.
    return CacheConfig(ttl=ttl, jitter=JITTER, max_refresh_wait=math.inf, **extra)


def _expiry(cache: SecretCache, name: str) -> float:
    return float(cache._engine.current[name].expires_at)


def _reader(sim: Simulation, cache: SecretCache, name: str, rate: float) -> Callable[[], None]:
    """Reads ``name`` now, then again at the first read after the entry expires."""

    def read() -> None:
        with contextlib.suppress(SecretCacheError):
            cache.get_secret_string(name)
        sim.at(_expiry(cache, name) + sim.rng.expovariate(rate), read)

    return read


# ----------------------------------------------------------------- steady state


def steady_state(
    hosts: int, secrets: int, ttl: float, *, seed: int = 1, periods: int = 2
) -> dict[str, Any]:
    """Calls per hour once the fleet has run for a TTL (processes started at random)."""
    sim = Simulation(seed)
    service = SimService(sim.clock, Quotas(sim.clock, QUOTAS))
    names = [f"app/secret-{i}" for i in range(secrets)]
    for name in names:
        service.create(name)
    with sim.patched():
        config = _config(ttl)
        for _ in range(hosts):
            cache = SecretCache(service, config=config)
            start = sim.rng.uniform(0, ttl)
            for name in names:
                sim.at(start, _reader(sim, cache, name, READ_RATE))
        sim.run(until=periods * ttl)
    measured = service.quotas.total(GET, since=ttl)
    per_hour = measured * 3600 / ((periods - 1) * ttl)
    formula = hosts * secrets * 3600 / (ttl * (1 - JITTER / 2) + 1 / READ_RATE + FETCH_LATENCY)
    return {
        "hosts": hosts,
        "secrets": secrets,
        "ttl": ttl,
        "calls_per_hour": round(per_hour),
        "formula_per_hour": round(formula),
        "peak_per_second": service.quotas.peak(GET, since=ttl),
        "usd_per_month": per_hour * HOURS_PER_MONTH * PRICE_PER_10K / 10_000,
        "throttled": service.quotas.total(GET, throttled=True),
    }


def ttl_calls(
    hosts: int,
    secrets: int,
    ttl: float,
    duration: float,
    *,
    read_rate: float,
    latency: float,
    seed: int = 4,
) -> int:
    """Calls a fleet started all at once makes in ``duration`` seconds (loads included)."""
    sim = Simulation(seed)
    service = SimService(sim.clock, Quotas(sim.clock, QUOTAS), latency)
    names = [f"app/secret-{i}" for i in range(secrets)]
    for name in names:
        service.create(name)
    with sim.patched():
        config = _config(ttl)
        for _ in range(hosts):
            cache = SecretCache(service, config=config)
            for name in names:
                sim.at(sim.rng.expovariate(read_rate), _reader(sim, cache, name, read_rate))
        sim.run(until=duration)
    return service.quotas.total(GET)


# --------------------------------------------------------------------- rotation


def rotation(
    hosts: int, ttl: float, mode: str, *, seed: int = 2, connect_interval: float = CONNECT_INTERVAL
) -> dict[str, Any]:
    """One secret rotated at ``t = ttl``; how long until each process serves the new version.

    ``mode``: ``"ttl"`` (nothing but the TTL), ``"db"`` (a single-user database
    rotation: a process's next connection is rejected, the adapter refreshes),
    ``"push"`` (the rotation event reaches every process's listener).
    """
    sim = Simulation(seed)
    service = SimService(sim.clock, Quotas(sim.clock, QUOTAS))
    name = "app/db"
    service.create(name)
    rotated_at = ttl
    learned: dict[int, float] = {}
    failed_logins = [0]
    new_version = [""]

    def on_change(index: int) -> Callable[[str, str, str | None, str | None], None]:
        def changed(_id: str, _stage: str, _old: str | None, new: str | None) -> None:
            if new == new_version[0] and index not in learned:
                learned[index] = sim.clock() - rotated_at

        return changed

    with sim.patched():
        caches = []
        for index in range(hosts):
            cache = SecretCache(service, config=_config(ttl, on_change=on_change(index)))
            caches.append(cache)
            sim.at(sim.rng.uniform(0, ttl), _reader(sim, cache, name, READ_RATE))

        def rotate() -> None:
            new_version[0] = service.rotate(name)

        sim.at(rotated_at, rotate)
        for index, cache in enumerate(caches):
            if mode == "db":
                sim.at(
                    rotated_at + sim.rng.expovariate(1 / connect_interval),
                    _connect(cache, name, service, failed_logins),
                )
            elif mode == "push":
                listener = RotationListener(cache, f"sim://queue/{index}")
                delay = sim.rng.uniform(*PUSH_DELAY)
                sim.at(rotated_at + delay, _deliver(sim, listener, service, name))
            elif mode != "ttl":
                raise ValueError(mode)
        sim.run(until=rotated_at + 3 * ttl, stop=lambda: len(learned) == hosts)
    times = sorted(learned.values())
    window = math.floor(rotated_at)
    return {
        "hosts": hosts,
        "ttl": ttl,
        "mode": mode,
        "median_s": statistics.median(times),
        "worst_s": times[-1],
        "all_learned": len(times) == hosts,
        "peak_per_second": service.quotas.peak(GET, since=window),
        "calls": service.quotas.total(GET, since=window),
        "throttled": service.quotas.total(GET, throttled=True, since=window),
        "failed_logins": failed_logins[0],
        "curve": times,
    }


def _connect(
    cache: SecretCache, name: str, service: SimService, failed: list[int]
) -> Callable[[], None]:
    def connect() -> None:
        held = cache.get_secret(name)
        if held.version_id == service.current(name):
            return  # the TTL already brought the new password
        failed[0] += 1  # rejected: the adapter refreshes and logs in again
        cache.force_refresh(
            name,
            min_interval=cache.config.min_refresh_interval,
            unless_newer_than=held.version_id,
        )

    return connect


def label_event(service: SimService, name: str) -> str:
    """The ``Secret Label Updated`` event AWS sends when AWSCURRENT moves."""
    return json.dumps(
        {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "Secret Label Updated",
            "source": "aws.secretsmanager",
            "account": service.ACCOUNT,
            "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": service.REGION,
            "resources": [service.arn(name)],
            "detail": {
                "name": name,
                "labelUpdated": "AWSCURRENT",
                "versionId": service.current(name),
            },
        }
    )


def _deliver(
    sim: Simulation, listener: RotationListener, service: SimService, name: str
) -> Callable[[], None]:
    def deliver() -> None:
        listener.handle_message(label_event(service, name))
        listener.wait_idle()
        _schedule_retries(sim, listener)

    return deliver


def _schedule_retries(sim: Simulation, listener: RotationListener) -> None:
    """The listener's own retries after a failed refresh, run when its loop would run them."""
    pending = listener._retries
    if pending:
        due = min(r[0] for r in pending)

        def retry() -> None:
            listener._run_due_retries()
            listener.wait_idle()
            _schedule_retries(sim, listener)

        sim.at(max(due, sim.clock()), retry)


# ------------------------------------------------------------------- cold start


class BatchThrottled(Exception):
    """The batch-only alternative gives up this attempt; the environment tries again later."""


class BatchOnlySource:
    """The engine's source with ``batch_get`` that never falls back to ``GetSecretValue``."""

    def __init__(self, inner: Any, service: Any) -> None:
        self._inner = inner
        self._service = service

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def batch_get(self, secret_ids: list[str]) -> dict[str, SecretValue]:
        from botocore.exceptions import ClientError

        try:
            reply = self._service.batch_get_secret_value(SecretIdList=list(secret_ids))
        except ClientError as exc:
            raise BatchThrottled() from exc
        found: dict[str, SecretValue] = {}
        for item in reply.get("SecretValues") or ():
            value = SecretValue.from_response(item)
            for wanted in secret_ids:
                if wanted in (value.name, value.arn):
                    found[wanted] = value
        return found


def _retry_wait(attempt: int, rng: random.Random) -> float:
    """The library's retry wait (tenacity's random exponential, 50 ms doubling, at most 2 s)."""
    return rng.uniform(0, min(2.0, 0.05 * 2**attempt))


def cold_start(
    envs: int,
    secrets: int,
    mode: str,
    *,
    seed: int = 3,
    burst: float = 1.0,
    limits: dict[str, float] | None = None,
    latency: float = FETCH_LATENCY,
) -> dict[str, Any]:
    """``envs`` environments start within ``burst`` seconds and each prefetch ``secrets``.

    ``mode``: ``"fallback"`` (the engine: one batch call, per-secret reads if it is
    throttled) or ``"batch-only"`` (the batch call retried until it succeeds).
    """
    sim = Simulation(seed)
    quotas = Quotas(sim.clock, limits or QUOTAS)
    service = SimService(sim.clock, quotas, latency)
    names = [f"app/secret-{i}" for i in range(secrets)]
    for name in names:
        service.create(name)
    warm: dict[int, float] = {}
    arrivals: dict[int, float] = {}

    with sim.patched():
        config = _config(3600.0)

        def start(index: int) -> Callable[[], None]:
            def arrive() -> None:
                arrivals[index] = sim.clock()
                cache = SecretCache(service, config=config)
                if mode == "batch-only":
                    cache._engine.source = BatchOnlySource(cache._engine.source, service)
                elif mode != "fallback":
                    raise ValueError(mode)
                attempt(index, cache, 0)()

            return arrive

        def attempt(index: int, cache: SecretCache, tries: int) -> Callable[[], None]:
            def go() -> None:
                try:
                    cache.prefetch(*names)
                except BatchThrottled:
                    sim.at(
                        sim.clock() + _retry_wait(tries, sim.rng), attempt(index, cache, tries + 1)
                    )
                    return
                except SecretCacheError:
                    pass
                entries = cache._engine.current
                missing = [e for n in names if (e := entries.get(n)) is None or e.value is None]
                if not missing:
                    warm[index] = sim.clock()
                    return
                # Backing off as the engine does after a failed fetch, then prefetch again.
                due = min(e.retry_at for e in missing if e is not None)
                sim.at(max(due, sim.clock() + 0.001), attempt(index, cache, tries + 1))

            return go

        for index in range(envs):
            sim.at(sim.rng.uniform(0, burst), start(index))
        sim.run()
    waits = sorted(warm[i] - arrivals[i] for i in warm)
    last = max(warm.values())
    seconds = math.ceil(last) + 1
    return {
        "envs": envs,
        "secrets": secrets,
        "mode": mode,
        "burst": burst,
        "peak_batch_per_second": quotas.peak(BATCH),
        "peak_get_per_second": quotas.peak(GET),
        "batch_calls": quotas.total(BATCH) + quotas.total(BATCH, throttled=True),
        "get_calls": quotas.total(GET) + quotas.total(GET, throttled=True),
        "throttled_batch": quotas.total(BATCH, throttled=True),
        "throttled_get": quotas.total(GET, throttled=True),
        "all_warm_s": last,
        "median_wait_s": statistics.median(waits),
        "worst_wait_s": waits[-1],
        "series": {BATCH: quotas.series(BATCH, seconds), GET: quotas.series(GET, seconds)},
    }


# ----------------------------------------------------------------------- tables


def _n(value: float) -> str:
    return f"{value:,.0f}"


def _s(seconds: float) -> str:
    if seconds < 10:
        return f"{seconds:.2f} s"
    if seconds < 600:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min"


def steady_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| processes | secrets each | TTL | calls/hour (simulated) | calls/hour (formula) "
        "| peak calls/s | $/month |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {_n(r['hosts'])} | {r['secrets']} | {_s(r['ttl'])} | {_n(r['calls_per_hour'])} "
            f"| {_n(r['formula_per_hour'])} | {r['peak_per_second']} | {r['usd_per_month']:,.2f} |"
        )
    return "\n".join(lines)


MODE_NAMES = {"ttl": "TTL only", "db": "DB login failures", "push": "push (events)"}


def rotation_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| processes | TTL | how they learn | median time to new version | worst | peak calls/s "
        "| calls | throttled | failed logins |",
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        logins = _n(r["failed_logins"]) if r["mode"] == "db" else "-"
        worst = _s(r["worst_s"]) + ("" if r["all_learned"] else " (not all)")
        lines.append(
            f"| {_n(r['hosts'])} | {_s(r['ttl'])} | {MODE_NAMES[r['mode']]} | {_s(r['median_s'])} "
            f"| {worst} | {_n(r['peak_per_second'])} | {_n(r['calls'])} | {_n(r['throttled'])} "
            f"| {logins} |"
        )
    return "\n".join(lines)


def cold_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| environments x secrets | start spread | prefetch | peak Batch/s | peak Get/s "
        "| throttled Batch | throttled Get | all warm after | median wait |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {_n(r['envs'])} x {r['secrets']} | {_s(r['burst'])} | {r['mode']} "
            f"| {_n(r['peak_batch_per_second'])} | {_n(r['peak_get_per_second'])} "
            f"| {_n(r['throttled_batch'])} | {_n(r['throttled_get'])} "
            f"| {_s(r['all_warm_s'])} | {_s(r['median_wait_s'])} |"
        )
    return "\n".join(lines)


# ------------------------------------------------------------------------ chart


def write_chart(data: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    steady = data["steady"]
    ax = axes[0]
    for hosts in sorted({r["hosts"] for r in steady}):
        for secrets in sorted({r["secrets"] for r in steady}):
            rows = sorted(
                (r for r in steady if r["hosts"] == hosts and r["secrets"] == secrets),
                key=lambda r: r["ttl"],
            )
            if rows:
                ax.plot(
                    [r["ttl"] for r in rows],
                    [r["calls_per_hour"] for r in rows],
                    marker="o",
                    label=f"{hosts:,} x {secrets}",
                )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ttls = sorted({r["ttl"] for r in steady})
    ax.set_xticks(ttls, [f"{t:.0f}" for t in ttls])
    ax.minorticks_off()
    ax.set_xlabel("TTL (s)")
    ax.set_ylabel("GetSecretValue calls per hour")
    ax.set_title("Steady state (processes x secrets)")
    ax.legend(fontsize=8)

    ax = axes[1]
    for r in data["rotation_curves"]:
        times = r["curve"]
        ax.step(
            [max(t, 0.01) for t in times],
            [(i + 1) / r["hosts"] for i in range(len(times))],
            where="post",
            label=f"{MODE_NAMES[r['mode']]}",
        )
    ax.set_xscale("log")
    ax.set_xlabel("seconds after the rotation")
    ax.set_ylabel("share of processes serving the new version")
    first = data["rotation_curves"][0]
    ax.set_title(f"A rotation ({first['hosts']:,} processes, TTL {first['ttl']:.0f} s)")
    ax.legend(fontsize=8)

    ax = axes[2]
    for r in data["cold_curves"]:
        for operation, style in ((BATCH, "-"), (GET, "--")):
            series = r["series"][operation]
            if any(series):
                ax.step(
                    range(len(series) + 1),
                    [*series, 0],
                    style,
                    where="post",
                    label=f"{r['mode']}: {operation}",
                )
    ax.axhline(
        QUOTAS[BATCH], color="grey", linewidth=0.8, linestyle=":", label="BatchGetSecretValue quota"
    )
    ax.set_yscale("symlog", linthresh=1)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("seconds after the first start")
    ax.set_ylabel("requests per second (admitted + throttled)")
    first = data["cold_curves"][0]
    ax.set_title(f"Cold start ({first['envs']:,} environments x {first['secrets']} secrets)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


# -------------------------------------------------------------------------- run


@dataclass
class Plan:
    steady: list[tuple[int, int, float]]
    rotation: list[tuple[int, float, str]]
    cold: list[tuple[int, int, float]]

    @classmethod
    def for_mode(cls, quick: bool) -> Plan:
        modes = ("ttl", "db", "push")
        if quick:
            return cls(
                steady=[
                    (h, s, t) for h, s in ((100, 5), (100, 20), (1_000, 5)) for t in (300.0, 3600.0)
                ],
                rotation=[(1_000, 3600.0, m) for m in modes]
                + [(1_000, 300.0, "ttl"), (5_000, 3600.0, "push")],
                cold=[(1_000, 5, 1.0), (1_000, 5, 10.0)],
            )
        return cls(
            steady=[
                (h, s, t)
                for h in (100, 1_000, 5_000)
                for s in (5, 20)
                for t in (300.0, 900.0, 3600.0)
            ],
            rotation=[(h, t, m) for h in (1_000, 10_000) for t in (3600.0, 300.0) for m in modes]
            + [(20_000, 3600.0, "push")],
            cold=[(1_000, 5, 1.0), (1_000, 5, 10.0), (3_000, 5, 1.0)],
        )


def run(quick: bool, *, anchor: bool = True, update_docs: bool = True) -> dict[str, Any]:
    plan = Plan.for_mode(quick)
    started = time.perf_counter()
    timings: dict[str, float] = {}

    def phase(name: str, action: Callable[[], Any]) -> Any:
        print(f"… {name}", file=sys.stderr, flush=True)
        begun = time.perf_counter()
        value = action()
        timings[name] = round(time.perf_counter() - begun, 1)
        return value

    steady = phase("steady state", lambda: [steady_state(h, s, t) for h, s, t in plan.steady])
    rotations = phase(
        "rotations",
        lambda: [rotation(h, t, m) for h, t, m in plan.rotation],
    )
    cold = phase(
        "cold starts",
        lambda: [
            cold_start(e, s, m, burst=b)
            for e, s, b in plan.cold
            for m in ("batch-only", "fallback")
        ],
    )
    data: dict[str, Any] = {
        "mode": "quick" if quick else "full",
        "assumptions": {
            "quotas_per_second": QUOTAS,
            "price_per_10k_calls_usd": PRICE_PER_10K,
            "fetch_latency_s": FETCH_LATENCY,
            "push_delay_s": PUSH_DELAY,
            "reads_per_second": READ_RATE,
            "connect_interval_s": CONNECT_INTERVAL,
            "jitter": JITTER,
        },
        "steady": steady,
        "rotation": [{k: v for k, v in r.items() if k != "curve"} for r in rotations],
        "rotation_curves": [r for r in rotations if r["hosts"] == 1_000 and r["ttl"] == 3600.0],
        "cold": [{k: v for k, v in r.items() if k != "series"} for r in cold],
        "cold_curves": [r for r in cold if r["envs"] == 1_000 and r["burst"] == 1.0],
    }
    tables = {
        "steady": steady_table(steady),
        "rotation": rotation_table(rotations),
        "cold": cold_table(cold),
    }
    if anchor:
        from .fleet_check import anchor_table, compare

        data["anchor"] = phase("anchor: 20 real caches against moto", lambda: compare(quick))
        tables["anchor"] = anchor_table(data["anchor"])
    data["phase_seconds"] = timings
    for title, table in tables.items():
        print(f"\n{title}\n{table}")
    write_chart(data, OUTPUT / "fleet.png")
    (OUTPUT / "fleet.json").write_text(
        json.dumps(
            {k: v for k, v in data.items() if k not in ("rotation_curves", "cold_curves")},
            indent=2,
        )
        + "\n"
    )
    if update_docs:
        from .report import replace_block

        command = "python -m benchmarks.fleet" + (" --quick" if quick else "")
        for marker, table in tables.items():
            replace_block(DOC, f"fleet-{marker}", table)
        replace_block(DOC, "fleet-command", f"Generated by `{command}`.")
    total = time.perf_counter() - started
    print(f"\nwrote {OUTPUT / 'fleet.png'} and fleet.json in {total:.0f} s", file=sys.stderr)
    return data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fleet", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a smaller grid (under a minute)")
    parser.add_argument("--no-anchor", action="store_true", help="skip the real run against moto")
    parser.add_argument("--no-docs", action="store_true", help="do not rewrite docs/fleet.md")
    args = parser.parse_args(argv)
    run(args.quick, anchor=not args.no_anchor, update_docs=not args.no_docs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
