"""``CacheConfig``: every tunable of the cache, validated once at construction."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, fields

__all__ = ["CacheConfig", "ChangeCallback"]

ChangeCallback = Callable[[str, str, "str | None", str], None]
"""``on_change(secret_id, version_stage_or_id, old_version_id, new_version_id)``."""


@dataclass(frozen=True, slots=True)
class CacheConfig:
    """How long values stay fresh, how many are kept, and how failures are handled.

    Frozen so one config can be shared by many caches without surprises; bad
    values fail here, naming the field, rather than deep inside a refresh.
    """

    ttl: float = 3600.0
    jitter: float = 0.1
    max_size: int = 1024
    default_version_stage: str = "AWSCURRENT"
    max_stale: float = 86400.0
    min_refresh_interval: float = 1.0
    retry_attempts: int = 3
    error_backoff_max: float = 300.0
    on_change: ChangeCallback | None = None
    max_refresh_wait: float = 0.1
    failover_regions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in (
            "ttl",
            "max_stale",
            "min_refresh_interval",
            "error_backoff_max",
            "max_refresh_wait",
        ):
            _require_number(name, getattr(self, name), minimum=0.0)
        _require_number("jitter", self.jitter, minimum=0.0, maximum=1.0)
        _require_int("max_size", self.max_size, minimum=1)
        _require_int("retry_attempts", self.retry_attempts, minimum=1)
        stage = self.default_version_stage
        if not isinstance(stage, str) or not stage or len(stage) > 256:
            raise ValueError("CacheConfig.default_version_stage must be a non-empty label")
        regions = self.failover_regions
        if isinstance(regions, str) or not isinstance(regions, tuple | list):
            raise TypeError("CacheConfig.failover_regions must be a tuple of region names")
        if not all(isinstance(r, str) and r for r in regions):
            raise ValueError("CacheConfig.failover_regions must hold non-empty region names")
        object.__setattr__(self, "failover_regions", tuple(regions))
        if self.on_change is not None and not callable(self.on_change):
            raise TypeError("CacheConfig.on_change must be callable or None")

    def __repr__(self) -> str:
        parts = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in fields(self))
        return f"CacheConfig({parts})"


def _require_number(name: str, value: object, *, minimum: float, maximum: float = math.inf) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"CacheConfig.{name} must be a number, not {type(value).__name__}")
    if math.isnan(value) or not minimum <= value <= maximum:
        bound = f"between {minimum} and {maximum}" if maximum != math.inf else f">= {minimum}"
        raise ValueError(f"CacheConfig.{name} must be {bound}, got {value!r}")


def _require_int(name: str, value: object, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"CacheConfig.{name} must be an int, not {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"CacheConfig.{name} must be >= {minimum}, got {value!r}")
