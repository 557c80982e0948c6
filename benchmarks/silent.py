"""Reads past the TTL while the endpoint accepts connections and never answers.

The fault that no error announces: a blackholed VPC endpoint, a dead NAT, a
security group that drops. Every peer caches a value through a proxy, the TTL
passes, the proxy goes silent, and then each peer is read from its own thread, a
read every 30 ms, for the whole window. What is recorded per peer: the first
read's time and outcome, the worst read's time (a read still blocked when the
window ends counts as the time it has waited so far, shown as "≥"), the median,
how many reads were answered and with what, and the API attempts the peer's client
sent meanwhile.

``AsyncSecretCache`` is read the same way, awaited from its own event loop: it is
not a peer (no other secrets cache is async), so its figures go to the async table.
"""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from .async_figures import close_when_settled
from .infra import CallCounter, SwitchableProxy, endpoint_env
from .measure import Secrets, Settings
from .peers import API_PEERS, Peer

INTERVAL = 0.03
"""Pause between one reader's reads."""

ASYNC_KEY = "secretcache_async"


@dataclass
class _Reader:
    """One reader's log: finished reads, and the start of the read still in progress."""

    expected: str
    lock: threading.Lock = field(default_factory=threading.Lock)
    reads: list[tuple[float, str]] = field(default_factory=list)
    pending_since: float | None = None

    def begin(self) -> float:
        start = time.perf_counter()
        with self.lock:
            self.pending_since = start
        return start

    def end(self, start: float, outcome: str) -> None:
        elapsed = time.perf_counter() - start
        with self.lock:
            self.pending_since = None
            self.reads.append((elapsed, outcome))

    def outcome(self, value: str) -> str:
        return "cached value" if value == self.expected else "wrong value"

    def snapshot(self, now: float) -> dict[str, Any]:
        with self.lock:
            reads = list(self.reads)
            pending = self.pending_since
        blocked = None if pending is None else now - pending
        times = [seconds for seconds, _ in reads]
        if reads:
            first_seconds, first_outcome = reads[0]
            first = {"outcome": first_outcome, "seconds": first_seconds, "capped": False}
        else:
            first = {"outcome": "still blocked", "seconds": blocked or 0.0, "capped": True}
        worst_done = max(times, default=0.0)
        if blocked is not None and blocked > worst_done:
            worst = {"seconds": blocked, "capped": True}
        else:
            worst = {"seconds": worst_done, "capped": False}
        return {
            "first": first,
            "worst": worst,
            "median_seconds": statistics.median(times) if times else None,
            "reads": len(reads),
            "outcomes": dict(Counter(outcome for _, outcome in reads)),
            "still_blocked": blocked is not None,
        }


def _read_loop(reader: _Reader, read: Callable[[], str], end: float) -> None:
    while time.perf_counter() < end:
        start = reader.begin()
        try:
            outcome = reader.outcome(read())
        except Exception as exc:  # which error each library raises is part of the result
            outcome = f"raises {type(exc).__name__}"
        reader.end(start, outcome)
        time.sleep(INTERVAL)


def _async_read_loop(
    reader: _Reader,
    cache: Any,
    read: Callable[[], Awaitable[str]],
    end: float,
    release: threading.Event,
) -> None:
    async def reading() -> None:
        while time.perf_counter() < end:
            start = reader.begin()
            try:
                outcome = reader.outcome(await read())
            except Exception as exc:
                outcome = f"raises {type(exc).__name__}"
            reader.end(start, outcome)
            await asyncio.sleep(INTERVAL)

    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(reading())
    finally:
        release.wait(timeout=60)  # the endpoint is gone: the refresh in flight ends soon
        close_when_settled(loop, cache)


def silent_endpoint(
    secrets: Secrets, moto_port: int, settings: Settings
) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Per-peer figures for the peer table, and the async door's for the async table."""
    from secretcache import AsyncSecretCache, CacheConfig

    proxy = SwitchableProxy(moto_port)
    peers: dict[str, Peer] = {}
    readers: dict[str, _Reader] = {}
    for cls in API_PEERS:
        name = f"bench/silent/{cls.name}"
        readers[cls.name] = _Reader(secrets.create(name))
        peer = cls(proxy.endpoint, ttl=settings.ttl)
        if peer.read(name) != secrets.values[name]:
            raise RuntimeError(f"{cls.label} returned the wrong value")
        peers[cls.name] = peer

    async_name = "bench/silent/async"
    readers[ASYNC_KEY] = _Reader(secrets.create(async_name))
    with endpoint_env(proxy.endpoint):
        async_cache = AsyncSecretCache(config=CacheConfig(ttl=float(settings.ttl)))
        async_client = async_cache.client  # created now, while the endpoint is set
    async_calls = CallCounter()
    async_calls.attach(async_client)
    if asyncio.run(async_cache.get_secret_string(async_name)) != secrets.values[async_name]:
        raise RuntimeError("AsyncSecretCache returned the wrong value")

    time.sleep(settings.ttl + 0.3)
    for peer in peers.values():
        peer.calls.take()
    async_calls.take()
    stale_before = peers["secretcache"].cache.stats().stale_served  # type: ignore[attr-defined]
    proxy.hang()

    end = time.perf_counter() + settings.silent_window
    threads = []
    for key, peer in peers.items():
        name = f"bench/silent/{key}"
        threads.append(
            threading.Thread(
                target=_read_loop,
                args=(readers[key], lambda p=peer, n=name: p.read(n), end),
                daemon=True,
            )
        )
    release = threading.Event()
    async_thread = threading.Thread(
        target=_async_read_loop,
        args=(
            readers[ASYNC_KEY],
            async_cache,
            lambda: async_cache.get_secret_string(async_name),
            end,
            release,
        ),
        daemon=True,
    )
    threads.append(async_thread)
    for thread in threads:
        thread.start()
    time.sleep(max(0.0, end - time.perf_counter()))
    for thread in threads:  # a read in flight at the deadline may finish; blocked ones do not
        thread.join(timeout=max(0.0, end + 0.5 - time.perf_counter()))
    now = time.perf_counter()
    snapshots = {key: reader.snapshot(now) for key, reader in readers.items()}
    calls = {key: peer.calls.take() for key, peer in peers.items()}
    calls[ASYNC_KEY] = async_calls.take()
    stale_served = (
        peers["secretcache"].cache.stats().stale_served  # type: ignore[attr-defined]
        - stale_before
    )
    proxy.close()  # blocked readers now fail and, past the deadline, stop
    release.set()
    async_thread.join(timeout=20)

    results: dict[str, dict[str, Any]] = {}
    for key in (*peers, ASYNC_KEY):
        figures = {f"silent_{k}": v for k, v in snapshots[key].items()}
        figures["silent_calls"] = calls[key]
        figures["silent_window"] = settings.silent_window
        results[key] = figures
    results["secretcache"]["silent_stale_served"] = stale_served
    async_figures = results.pop(ASYNC_KEY)
    return results, async_figures
