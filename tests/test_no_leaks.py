"""The engine never puts a secret value in a log record, an exception or a repr."""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

import pytest

import secretcache.cache as cache_module
from secretcache import CacheConfig, SecretCache, SecretCacheError
from tests.helpers import FakeClock, FaultInjector

CANARY = f"CANARY-{uuid.uuid4()}"


def chain(exc: BaseException | None) -> list[BaseException]:
    seen: list[BaseException] = []
    while exc is not None and exc not in seen:
        seen.append(exc)
        exc = exc.__cause__ or exc.__context__
    return seen


def leaks(text: str) -> bool:
    return CANARY in text or CANARY[7:20] in text


def test_every_engine_surface_is_clean(
    sm: Any, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock()
    monkeypatch.setattr(cache_module, "monotonic", clock)
    sm.create_secret(Name="json", SecretString=json.dumps({"password": CANARY}))
    sm.create_secret(Name="broken", SecretString="{" + CANARY)
    sm.create_secret(Name="array", SecretString=json.dumps([CANARY]))
    sm.create_secret(Name="text", SecretString=CANARY)
    faults = FaultInjector(sm)
    cache = SecretCache(sm, config=CacheConfig(ttl=10, jitter=0, max_stale=5, retry_attempts=1))
    caplog.set_level(logging.DEBUG)  # after the test's own CreateSecret calls

    texts: list[str] = []
    errors: list[BaseException] = []
    cache.get_secret_json("json")
    value = cache.get_secret("text")
    texts += [repr(value), str(value), repr(cache), repr(cache.stats()), repr(cache.config)]
    texts += [repr(e) for e in cache._entries.values()]
    attempts = [
        lambda: cache.get_secret_json("broken"),
        lambda: cache.get_secret_json("array"),
        lambda: cache.get_secret_binary("text"),
        lambda: cache.get_secret_string("missing"),
    ]
    for attempt in attempts:
        with pytest.raises(SecretCacheError) as err:
            attempt()
        errors.append(err.value)
    faults.inject("InternalServiceError", times=None, status=500)
    clock.advance(12)
    assert cache.get_secret_string("text") == CANARY, "stale value expected"
    clock.advance(10)
    with pytest.raises(SecretCacheError) as err:
        cache.get_secret_string("text")
    errors.append(err.value)

    for exc in errors:
        for link in chain(exc):
            texts += [str(link), repr(link), repr(link.args)]
            texts += [repr(v) for v in vars(link).values()]
    texts += [r.getMessage() for r in caplog.records]
    texts += [caplog.text]
    dirty = [i for i, text in enumerate(texts) if leaks(text)]
    assert not dirty, f"canary found in {len(dirty)} surfaces (indices {dirty})"
