"""``CacheStats``: counters that tell how a cache is earning its keep."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CacheStats"]


@dataclass(frozen=True, slots=True)
class CacheStats:
    """A snapshot of one cache's counters.

    ``api_calls`` counts every attempt sent to Secrets Manager, retries included,
    so it is the number to compare with a bill or a throttling quota. ``hits`` is
    counted without a lock on the hot path and may undercount slightly when many
    threads read at once. ``stale_served`` counts reads answered with the previous
    value because its refresh failed, was backing off, or was still in flight.
    ``failovers`` counts fetches that a failover region answered.
    """

    hits: int = 0
    misses: int = 0
    refreshes: int = 0
    api_calls: int = 0
    errors: int = 0
    stale_served: int = 0
    size: int = 0
    failovers: int = 0
