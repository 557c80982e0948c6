"""The opt-in pytest fixtures (imported by :mod:`secretcache.testing` when pytest is installed)."""

from __future__ import annotations

import pytest

from ..cache import SecretCache
from ..config import CacheConfig
from .client import FakeSecretsManager

__all__ = ["fake_secrets", "secret_cache", "secret_cache_config"]


@pytest.fixture
def fake_secrets() -> FakeSecretsManager:
    """An empty :class:`FakeSecretsManager`, new for each test."""
    return FakeSecretsManager()


@pytest.fixture
def secret_cache_config() -> CacheConfig:
    """The configuration of :func:`secret_cache`; override this fixture to change it.

    Production defaults, except where they would make a test depend on the clock:
    no TTL jitter, no floor between forced refreshes (so ``refresh()`` right after
    ``fake.rotate()`` asks the fake again), and no back-off after a failed fetch
    (so the read after a one-off injected fault asks the fake again).
    """
    return CacheConfig(jitter=0.0, min_refresh_interval=0.0, error_backoff_max=0.0)


@pytest.fixture
def secret_cache(fake_secrets: FakeSecretsManager, secret_cache_config: CacheConfig) -> SecretCache:
    """A :class:`~secretcache.SecretCache` reading from :func:`fake_secrets`."""
    return SecretCache(client=fake_secrets, config=secret_cache_config)
