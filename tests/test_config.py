"""CacheConfig rejects bad values at construction, naming the field."""

from __future__ import annotations

import math
from typing import Any

import pytest

from secretcache import CacheConfig, SecretCache


def test_defaults_match_the_contract() -> None:
    config = CacheConfig()
    assert (config.ttl, config.jitter, config.max_size) == (3600.0, 0.1, 1024)
    assert config.default_version_stage == "AWSCURRENT"
    assert (config.max_stale, config.min_refresh_interval) == (86400.0, 1.0)
    assert (config.retry_attempts, config.error_backoff_max, config.on_change) == (3, 300.0, None)


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("ttl", -1, ValueError),
        ("ttl", float("nan"), ValueError),
        ("ttl", "60", TypeError),
        ("jitter", 1.5, ValueError),
        ("max_size", 0, ValueError),
        ("max_size", 2.5, TypeError),
        ("max_stale", -0.1, ValueError),
        ("min_refresh_interval", -1, ValueError),
        ("retry_attempts", 0, ValueError),
        ("error_backoff_max", -5, ValueError),
        ("default_version_stage", "", ValueError),
        ("on_change", 42, TypeError),
    ],
)
def test_bad_values_name_the_field(field: str, value: Any, error: type[Exception]) -> None:
    with pytest.raises(error, match=field):
        CacheConfig(**{field: value})


def test_unknown_field_and_immutability() -> None:
    with pytest.raises(TypeError, match="colour"):
        CacheConfig(colour="blue")  # type: ignore[call-arg]
    config = CacheConfig()
    with pytest.raises(AttributeError):
        config.ttl = 5  # type: ignore[misc]


def test_cache_wants_a_config_object() -> None:
    with pytest.raises(TypeError, match="CacheConfig"):
        SecretCache(config={"ttl": 5})  # type: ignore[arg-type]


def test_a_config_given_as_the_client_is_refused_with_advice() -> None:
    """Issue 9.4: ``SecretCache(CacheConfig(ttl=5))`` used to take the config as the client."""
    with pytest.raises(TypeError, match=r"config=CacheConfig"):
        SecretCache(CacheConfig(ttl=5))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="secretsmanager"):
        SecretCache(object())
    with pytest.raises(TypeError, match="secretsmanager"):
        SecretCache("us-east-1")


def test_max_refresh_wait_accepts_zero_and_infinity() -> None:
    assert CacheConfig().max_refresh_wait == 0.1
    assert CacheConfig(max_refresh_wait=0).max_refresh_wait == 0
    assert CacheConfig(max_refresh_wait=math.inf).max_refresh_wait == math.inf
    with pytest.raises(ValueError, match="max_refresh_wait"):
        CacheConfig(max_refresh_wait=-1)
