"""``ParameterCache``: SSM Parameter Store through the same engine as ``SecretCache``.

Only the source differs (:mod:`secretcache.sources.parameterstore`); entries,
TTL, coalescing, stale-while-refresh, backoff, eviction and statistics are the
engine's. A parameter's ``Version`` plays the part of the version id (for
``on_change``, for instance). A ``name:3`` entry is immutable and never
refreshed; ``name`` and ``name:label`` entries follow the TTL; a path read with
:meth:`ParameterCache.get_by_path` is one entry holding every page.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .cache import Door, Engine, check_client, check_config, monotonic
from .config import CacheConfig
from .errors import SecretCacheError
from .sources.parameterstore import (
    LATEST,
    PATH,
    PATH_RECURSIVE,
    ParameterStoreSource,
    split_selector,
)
from .value import SecretValue

__all__ = ["ParameterCache"]


class ParameterCache(Door):
    """An in-process cache of Parameter Store parameters; safe to share between threads.

    ``ParameterCache()`` makes no network call; an ``ssm`` client is created on the
    first fetch when none is given. SecureString values arrive decrypted.
    """

    def __init__(self, client: Any | None = None, *, config: CacheConfig | None = None) -> None:
        check_client(client, "get_parameter", "ssm")
        config = check_config(config)
        engine = Engine(None, config, default_stage=LATEST)
        engine.source = ParameterStoreSource(
            client, retry_attempts=config.retry_attempts, count_call=engine.count_call
        )
        self._open(engine)

    # ------------------------------------------------------------------ reads

    def get(self, name: str) -> str:
        """The parameter's value (``name``, ``name:version`` or ``name:label``)."""
        entry = self._current.get(name) if isinstance(name, str) else None
        if entry is not None:
            now = monotonic()
            if now < entry.expires_at:
                entry.last_used = now
                self._engine.hits += 1
                return entry.value.secret_string  # type: ignore[union-attr,return-value]
        entry = None  # the slow path may raise: this frame keeps no entry
        return self._read(name).secret_string or ""

    def get_json(self, name: str) -> Mapping[str, Any]:
        """The value parsed as a JSON object: read-only, parsed once per version."""
        value = self._read(name)
        base, label, version = split_selector(name)
        parsed = value._json_or_error(base, label or (None if version else LATEST), version)
        del value  # raised below from a frame that no longer holds the value
        if isinstance(parsed, SecretCacheError):
            raise parsed
        return parsed

    def get_by_path(self, path: str, *, recursive: bool = False) -> Mapping[str, str]:
        """Every parameter under ``path`` (all pages, one entry): read-only name -> value."""
        engine = self._engine
        kind = PATH_RECURSIVE if recursive else PATH
        value = engine.read_blocking(engine.entry(path, kind, None))
        if isinstance(value, SecretCacheError):
            raise value
        parsed = value._json_or_error(path, kind, None)
        del value
        if isinstance(parsed, SecretCacheError):
            raise parsed
        return parsed

    def _read(self, name: str) -> SecretValue:
        engine = self._engine
        if not isinstance(name, str):
            raise TypeError(f"a parameter name must be a str, not {type(name).__name__}")
        base, label, version = split_selector(name)
        outcome = engine.read_blocking(engine.entry(base, label, version))
        if isinstance(outcome, SecretCacheError):
            raise outcome
        return outcome

    # ---------------------------------------------------------------- control

    def prefetch(self, *names: str) -> None:
        """Warm several parameters: one ``GetParameters`` per 10 plain names.

        Names with a selector are read one by one. Every name is attempted; the
        first failure is raised at the end, after the others were cached.
        """
        plain = [n for n in names if isinstance(n, str) and split_selector(n)[0] == n]
        first_error: SecretCacheError | None = None
        try:
            self._engine.prefetch(tuple(plain))
        except SecretCacheError as exc:
            first_error = exc
        for name in names:
            if name in plain:
                continue
            try:
                self._read(name)
            except SecretCacheError as exc:
                first_error = first_error or exc
        if first_error is not None:
            raise first_error

    def refresh(self, name: str) -> SecretValue:
        """Fetch now, bypassing the TTL; coalesced and rate-limited like ``SecretCache``."""
        base, label, version = split_selector(name)
        engine = self._engine
        outcome = engine.refresh_blocking(
            engine.entry(base, label, version), min_interval=self._config.min_refresh_interval
        )
        if isinstance(outcome, SecretCacheError):
            raise outcome
        return outcome

    def invalidate(self, name: str | None = None) -> None:
        """Forget one parameter (every selector and path entry of that name), or everything."""
        self._engine.invalidate(None if name is None else split_selector(name)[0])
