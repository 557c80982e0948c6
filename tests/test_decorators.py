"""inject_secret_string / inject_secret_json hand current values to application code."""

from __future__ import annotations

import json
from typing import Any

import pytest

import secretcache
import secretcache.cache as cache_module
from secretcache import SecretCache, SecretDecodeError, inject_secret_json, inject_secret_string


@pytest.fixture
def cache(sm: Any) -> SecretCache:
    sm.create_secret(Name="api", SecretString="key-1")
    sm.create_secret(Name="db", SecretString=json.dumps({"username": "u", "password": "p-1"}))
    return SecretCache(sm, config=secretcache.CacheConfig(min_refresh_interval=0))


def test_string_injected_first(cache: SecretCache) -> None:
    @inject_secret_string("api", cache=cache)
    def call(key: str, payload: str) -> str:
        return f"{key}:{payload}"

    assert call("body") == "key-1:body"
    assert call.__name__ == "call"


def test_string_injected_after_self(cache: SecretCache) -> None:
    class Client:
        prefix = "c"

        @inject_secret_string("api", cache=cache)
        def call(self, key: str, payload: str) -> str:
            return f"{self.prefix}:{key}:{payload}"

    assert Client().call("body") == "c:key-1:body"


def test_each_call_sees_the_current_version(cache: SecretCache, sm: Any) -> None:
    @inject_secret_string("api", cache=cache)
    def current(key: str) -> str:
        return key

    assert current() == "key-1"
    sm.put_secret_value(SecretId="api", SecretString="key-2")
    cache.refresh("api")
    assert current() == "key-2"


def test_json_fields_as_keyword_arguments(cache: SecretCache) -> None:
    @inject_secret_json("db", cache=cache, user="username", pwd="password")
    def connect(host: str, *, user: str, pwd: str) -> tuple[str, str, str]:
        return host, user, pwd

    assert connect("h") == ("h", "u", "p-1")


def test_missing_json_key_names_the_key_not_the_value(cache: SecretCache) -> None:
    @inject_secret_json("db", cache=cache, token="token")
    def use(*, token: str) -> str:
        return token

    with pytest.raises(SecretDecodeError, match=r"'db' \(stage AWSCURRENT\).*'token'") as err:
        use()
    assert err.value.secret_id == "db" and err.value.version_stage == "AWSCURRENT"
    assert "p-1" not in str(err.value) and "p-1" not in repr(err.value.args)


def test_default_cache_is_used_when_none_is_given(sm: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    sm.create_secret(Name="api", SecretString="from-default")
    monkeypatch.setattr(cache_module, "_default", None)

    @inject_secret_string("api")
    def read(key: str) -> str:
        return key

    assert read() == "from-default"
    assert secretcache.default_cache() is secretcache.default_cache()
    assert secretcache.default_cache().stats().api_calls == 1
