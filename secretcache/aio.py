"""``AsyncSecretCache``: the asyncio front door over the same engine as ``SecretCache``.

Nothing here decides anything about freshness, coalescing or failures: the
:class:`~secretcache.cache.Engine` does, exactly as for threads. This module
only waits differently. A hit is answered without yielding to the event loop
(no task, no thread hop); every fetch runs on the engine's daemon workers and is
awaited without blocking the loop, for at most as long as the engine says --
``max_refresh_wait`` for a caller that holds a usable value, until the answer for
one that does not. Cancelling an awaiting coroutine cancels only its wait: the
fetch goes on for the others and the entry stays usable.

Why worker threads rather than aiobotocore: boto3 in a thread needs no new
dependency, keeps the caller's boto3 client usable as is, and works with
moto's in-process mock; aiobotocore pins botocore to a narrow window. The
measurement is in docs/design.md.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from . import cache as _cache
from .background import Task, submit, wait_async
from .cache import Door, Engine, Wait, secrets_manager_engine
from .config import CacheConfig
from .errors import SecretCacheError
from .value import UNPARSED, SecretValue

__all__ = ["AsyncSecretCache", "default_async_cache"]


async def settle_async(engine: Engine, plan: _cache.Plan) -> SecretValue:
    """Await one slow-path plan of ``engine``; the value served, or the error raised."""
    if isinstance(plan, Wait):
        plan = engine.settle(plan, await wait_async(plan.task, plan.timeout))
    if isinstance(plan, SecretCacheError):
        raise plan
    return plan


class AsyncSecretCache(Door):
    """An in-process cache of Secrets Manager secrets for asyncio applications.

    Same configuration, errors and semantics as :class:`~secretcache.SecretCache`;
    ``client`` is the same (synchronous) boto3 client, used from worker threads.
    """

    def __init__(
        self,
        client: Any | None = None,
        *,
        config: CacheConfig | None = None,
        failover_clients: Any = (),
    ) -> None:
        self._open(secrets_manager_engine(client, config, failover_clients))

    # ------------------------------------------------------------------ reads
    # The hit check is repeated in each reader on purpose, as in SecretCache: a
    # shared helper would cost a call on every hit.

    async def get_secret_string(
        self, secret_id: str, version_stage: str | None = None, *, version_id: str | None = None
    ) -> str:
        """The secret's string value (``SecretDecodeError`` if it is binary)."""
        try:
            entry = (
                self._current.get(secret_id)
                if version_stage is None and version_id is None
                else self._entries.get(
                    (secret_id, version_stage)
                    if version_id is None
                    else (secret_id, version_stage, version_id)
                )
            )
        except TypeError:
            entry = None
        if entry is not None:
            now = _cache.monotonic()
            if now < entry.expires_at:
                entry.last_used = now
                self._engine.hits += 1
                text = entry.value.secret_string  # type: ignore[union-attr]
                if text is not None:
                    return text
        entry = None  # the slow path may raise: this frame keeps no entry (nor its value)
        text = self._text(
            await self._read(secret_id, version_stage, version_id),
            secret_id,
            version_stage,
            version_id,
        )
        if isinstance(text, SecretCacheError):
            raise text
        return text

    async def get_secret_binary(
        self, secret_id: str, version_stage: str | None = None, *, version_id: str | None = None
    ) -> bytes:
        """The secret's binary value (``SecretDecodeError`` if it is a string)."""
        data = self._binary(
            await self.get_secret(secret_id, version_stage, version_id=version_id),
            secret_id,
            version_stage,
            version_id,
        )
        if isinstance(data, SecretCacheError):
            raise data
        return data

    async def get_secret_json(
        self, secret_id: str, version_stage: str | None = None, *, version_id: str | None = None
    ) -> Mapping[str, Any]:
        """The value parsed as a JSON object: read-only, parsed once per fetched version."""
        try:
            entry = (
                self._current.get(secret_id)
                if version_stage is None and version_id is None
                else self._entries.get(
                    (secret_id, version_stage)
                    if version_id is None
                    else (secret_id, version_stage, version_id)
                )
            )
        except TypeError:
            entry = None
        value = None
        if entry is not None:
            now = _cache.monotonic()
            if now < entry.expires_at:
                entry.last_used = now
                self._engine.hits += 1
                value = entry.value
                parsed = value._json  # type: ignore[union-attr]
                if parsed is not UNPARSED:
                    return parsed  # type: ignore[no-any-return]
        entry = None
        parsed = self._parsed(
            value if value is not None else await self._read(secret_id, version_stage, version_id),
            secret_id,
            version_stage,
            version_id,
        )
        value = None  # raised below from a frame that no longer holds the record
        if isinstance(parsed, SecretCacheError):
            raise parsed
        return parsed

    async def get_secret(
        self, secret_id: str, version_stage: str | None = None, *, version_id: str | None = None
    ) -> SecretValue:
        """The whole ``SecretValue`` record (string or binary, ids, stages, date)."""
        try:
            entry = (
                self._current.get(secret_id)
                if version_stage is None and version_id is None
                else self._entries.get(
                    (secret_id, version_stage)
                    if version_id is None
                    else (secret_id, version_stage, version_id)
                )
            )
        except TypeError:
            entry = None
        if entry is not None:
            now = _cache.monotonic()
            if now < entry.expires_at:
                entry.last_used = now
                self._engine.hits += 1
                return entry.value  # type: ignore[return-value]
        entry = None
        return await self._read(secret_id, version_stage, version_id)

    async def _read(
        self, secret_id: str, version_stage: str | None, version_id: str | None
    ) -> SecretValue:
        engine = self._engine
        return await settle_async(
            engine,
            engine.plan_read(engine.entry(secret_id, version_stage, version_id), blocking=False),
        )

    # ---------------------------------------------------------------- control

    async def refresh(
        self, secret_id: str, version_stage: str | None = None, *, version_id: str | None = None
    ) -> SecretValue:
        """Fetch now, bypassing the TTL; coalesced and rate-limited as ``SecretCache.refresh``."""
        return await self.force_refresh(
            secret_id,
            version_stage,
            version_id=version_id,
            min_interval=self._config.min_refresh_interval,
        )

    async def force_refresh(
        self,
        secret_id: str,
        version_stage: str | None = None,
        *,
        version_id: str | None = None,
        min_interval: float,
        unless_newer_than: str | None = None,
        fetched_since: float | None = None,
    ) -> SecretValue:
        """``refresh`` with an explicit policy (see ``SecretCache.force_refresh``)."""
        engine = self._engine
        outcome = await self._refreshed(
            engine.entry(secret_id, version_stage, version_id),
            min_interval=min_interval,
            unless_newer_than=unless_newer_than,
            fetched_since=fetched_since,
        )
        if isinstance(outcome, SecretCacheError):
            raise outcome  # from a frame holding no entry
        return outcome

    async def _refreshed(self, entry: Any, **how: Any) -> _cache.Outcome:
        """``Engine.refresh_blocking``'s loop, awaiting instead of blocking."""
        engine = self._engine
        while True:
            plan = engine.plan_refresh(entry, blocking=False, **how)
            if not isinstance(plan, Wait):
                return plan
            await wait_async(plan.task, None)
            if not plan.again:
                return engine.settle(plan, True)

    async def prefetch(self, *secret_ids: str) -> None:
        """Warm the default stage of several secrets, batched, off the event loop."""
        engine = self._engine
        task: Task[None] = Task()
        submit(task, lambda: engine.prefetch(secret_ids))
        await wait_async(task, None)
        _, error = task.outcome()
        if isinstance(error, SecretCacheError):
            raise error.copy() from error.__cause__
        if error is not None:
            raise error


_default_async: AsyncSecretCache | None = None
_default_async_lock = threading.Lock()


def default_async_cache() -> AsyncSecretCache:
    """The process-wide ``AsyncSecretCache``: what async adapters use when given no cache.

    Configured like :func:`secretcache.default_cache` (the ``SECRETCACHE_*``
    environment, read on first use).
    """
    global _default_async
    cache = _default_async
    if cache is None:
        with _default_async_lock:
            cache = _default_async
            if cache is None:
                cache = _default_async = AsyncSecretCache(config=_cache.config_from_environment())
    return cache
