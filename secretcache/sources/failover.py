"""Replica regions: a source made of sources, trying the next only when one is unavailable.

Secrets Manager replicates a secret to other regions; rotation runs in the
primary and propagates. When the primary cannot be reached -- connection errors,
timeouts, 5xx, throttling that outlasted its retries, all of which the sources
report as ``SecretUnavailableError`` -- the same fetch is tried against each
replica in order. Any *answer* (not found, access denied, a KMS failure, an
invalid request) is final: a region that answered knows something, and asking
another region would only hide it. Every fetch starts with the primary again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from ..errors import SecretUnavailableError
from ..value import SecretValue
from .calls import answered

__all__ = ["FailoverSource"]

log = logging.getLogger("secretcache")


class FailoverSource:
    """The primary source, then each failover source, for every fetch."""

    def __init__(
        self, primary: Any, failovers: Sequence[Any], *, on_failover: Callable[[], None]
    ) -> None:
        self.primary = primary
        self.failovers = tuple(failovers)
        self.batch_limit: int = primary.batch_limit
        self.batch_stage: str = primary.batch_stage
        self._on_failover = on_failover

    @property
    def client(self) -> Any:
        return self.primary.client

    def after_fork(self) -> None:
        for source in (self.primary, *self.failovers):
            source.after_fork()

    def get(self, key_id: str, stage: str | None, version_id: str | None) -> SecretValue:
        try:
            value: SecretValue = self.primary.get(key_id, stage, version_id)
            return value
        except SecretUnavailableError as unavailable:
            if answered(unavailable):
                raise  # an unknown 4xx is still an answer
            first = unavailable
        for number, source in enumerate(self.failovers, start=1):
            try:
                value = source.get(key_id, stage, version_id)
            except SecretUnavailableError as unavailable:
                if answered(unavailable):
                    raise
                log.info("failover region %d of %d is unavailable too", number, len(self.failovers))
                continue
            log.warning(
                "primary region unavailable (%s); served by failover region %d",
                first.message,
                number,
            )
            self._on_failover()
            return value
        raise first

    def batch_get(self, ids: Any) -> dict[str, SecretValue]:
        """The primary's batch only: what it cannot serve is fetched singly, with failover."""
        found: dict[str, SecretValue] = self.primary.batch_get(ids)
        return found
