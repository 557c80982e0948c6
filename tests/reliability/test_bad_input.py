"""Bad input gets a clear typed error naming what is wrong -- and nothing else happens.

"Nothing else" is checked each time: no API call where the input can be judged
locally, at most one where only the service can judge it (no retries, and no
new call on the next read of the same bad thing), and the cache still serves
everything else as before.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
from typing import Any

import pytest

from secretcache import (
    CacheConfig,
    SecretCache,
    SecretCacheError,
    SecretDecodeError,
    SecretNotFoundError,
)

from .conftest import Rig


def digest(data: str | bytes) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return hashlib.sha256(raw).hexdigest()


@pytest.fixture
def world(rig: Rig) -> tuple[Rig, SecretCache, Any, str, str]:
    good_id, good = rig.secret("bad/good")
    cache, faults = rig.cache(ttl=60, jitter=0.0)
    assert cache.get_secret_string(good_id) == good
    faults.reset_counts()
    return rig, cache, faults, good_id, good


def still_healthy(cache: SecretCache, good_id: str, good: str) -> None:
    """The good entry is untouched: a hit, same value, no call."""
    before = cache.stats().api_calls
    assert cache.get_secret_string(good_id) == good, "good entry corrupted"
    assert cache.stats().api_calls == before


LOCAL_REJECTS: list[tuple[str, dict[str, Any], type[Exception], str]] = [
    ("", {}, ValueError, "empty"),
    ("   ", {}, ValueError, "empty"),
    ("x" * 2049, {}, ValueError, "2049"),
    ("ok", {"version_stage": "AWSCURRENT", "version_id": "a" * 32}, ValueError, "not both"),
    ("ok", {"version_stage": ""}, ValueError, "version_stage"),
    ("ok", {"version_stage": "S" * 257}, ValueError, "version_stage"),
    ("ok", {"version_id": ""}, ValueError, "version_id"),
    ("ok", {"version_stage": 7}, TypeError, "version_stage"),
]


@pytest.mark.parametrize(("secret_id", "kwargs", "kind", "names"), LOCAL_REJECTS)
@pytest.mark.parametrize(
    "method", ["get_secret_string", "get_secret_binary", "get_secret_json", "get_secret", "refresh"]
)
def test_rejected_locally(
    world: tuple[Rig, SecretCache, Any, str, str],
    method: str,
    secret_id: str,
    kwargs: dict[str, Any],
    kind: type[Exception],
    names: str,
) -> None:
    _, cache, faults, good_id, good = world
    size = cache.stats().size
    with pytest.raises(kind) as info:
        getattr(cache, method)(secret_id, **kwargs)
    assert names in str(info.value), f"error does not say what is wrong: {info.value}"
    assert faults.sent == 0, "bad input reached the service"
    assert cache.stats().size == size, "bad input left an entry behind"
    still_healthy(cache, good_id, good)


@pytest.mark.parametrize("secret_id", [None, 123, b"bytes-id", ("tuple",), ["list"]])
def test_non_string_ids(world: tuple[Rig, SecretCache, Any, str, str], secret_id: Any) -> None:
    _, cache, faults, good_id, good = world
    for method in ("get_secret_string", "get_secret_json", "get_secret", "refresh", "prefetch"):
        with pytest.raises(TypeError) as info:
            getattr(cache, method)(secret_id)
        assert "secret_id" in str(info.value)
    assert faults.sent == 0
    still_healthy(cache, good_id, good)


def test_too_short_version_id_is_named(world: tuple[Rig, SecretCache, Any, str, str]) -> None:
    """botocore rejects a version id the service could never have issued; say so, once."""
    _, cache, faults, good_id, good = world
    for _ in range(5):
        with pytest.raises(SecretNotFoundError) as info:
            cache.get_secret_string(good_id, version_id="abc")
        assert "VersionId" in str(info.value) and "abc" in str(info.value), str(info.value)
    assert cache.stats().api_calls <= 1 + 1, "bad version id retried"
    assert faults.sent == 0
    still_healthy(cache, good_id, good)


def test_unknown_ids_and_labels_cost_one_call(
    world: tuple[Rig, SecretCache, Any, str, str],
) -> None:
    _rig, cache, faults, good_id, good = world
    cases: list[tuple[str, dict[str, Any]]] = [
        ("bad/does-not-exist", {}),
        ("秘密/ключ/🔑", {}),
        (good_id, {"version_stage": "NO-SUCH-LABEL"}),
        (good_id, {"version_id": "0" * 32}),
        ("arn:aws:secretsmanager:us-east-1:123456789012:secret:nope-AbCdEf", {}),
    ]
    for secret_id, kwargs in cases:
        faults.reset_counts()
        for _ in range(10):
            with pytest.raises(SecretCacheError) as info:
                cache.get_secret_string(secret_id, **kwargs)
            assert isinstance(info.value, SecretNotFoundError), type(info.value).__name__
            assert secret_id in str(info.value)
            label = kwargs.get("version_stage") or kwargs.get("version_id") or "AWSCURRENT"
            assert label in str(info.value)
        assert faults.sent == 1, f"{faults.sent} calls for 10 reads of {secret_id!r}"
    still_healthy(cache, good_id, good)


def test_arns_full_and_partial(world: tuple[Rig, SecretCache, Any, str, str]) -> None:
    rig, cache, _faults, good_id, good = world
    arn = rig.sm.describe_secret(SecretId=good_id)["ARN"]
    assert cache.get_secret_string(arn) == good, "full ARN read failed"
    partial = arn.rsplit("-", 1)[0]  # without the service's random suffix
    try:
        assert cache.get_secret_string(partial) == good, "partial ARN read the wrong value"
    except SecretNotFoundError as exc:  # moto may not resolve partial ARNs; AWS does
        assert partial in str(exc)
    value = cache.get_secret(arn)
    assert value.name == good_id and value.arn == arn


def test_json_that_is_not_an_object(rig: Rig) -> None:
    cache, faults = rig.cache(ttl=60)
    cases = {
        "not json at all {": "not valid JSON",
        json.dumps([1, 2, 3]): "not an object (got list)",
        json.dumps("a string"): "not an object (got str)",
        "": "not valid JSON",
        "null": "not an object (got NoneType)",
    }
    for text, expected in cases.items():
        name = f"bad/json/{digest(text)[:8]}"
        if text:
            rig.sm.create_secret(Name=name, SecretString=text)
        else:
            rig.sm.create_secret(Name=name, SecretBinary=b"\x00")
            expected = "binary"
        faults.reset_counts()
        for _ in range(5):
            with pytest.raises(SecretDecodeError) as info:
                cache.get_secret_json(name)
            assert expected in str(info.value), str(info.value)
            assert name in str(info.value)
        assert faults.sent == 1, "a bad JSON value was fetched again"
        if text:  # the entry itself is fine for what it is
            assert cache.get_secret_string(name) == text, "entry corrupted by a JSON failure"


def test_string_versus_binary(rig: Rig) -> None:
    cache, faults = rig.cache(ttl=60)
    text_id, text = rig.secret("bad/kind-text")
    blob = os.urandom(32)
    blob_id, _ = rig.secret("bad/kind-blob", blob)
    with pytest.raises(SecretDecodeError, match="get_secret_string"):
        cache.get_secret_binary(text_id)
    with pytest.raises(SecretDecodeError, match="get_secret_binary"):
        cache.get_secret_string(blob_id)
    with pytest.raises(SecretDecodeError, match="binary"):
        cache.get_secret_json(blob_id)
    assert cache.get_secret_string(text_id) == text
    assert digest(cache.get_secret_binary(blob_id)) == digest(blob), "binary mismatch"
    assert faults.sent == 2, "kind errors caused refetches"


def test_huge_values(rig: Rig) -> None:
    """64 KiB, the service's maximum, as a string, as JSON and as binary."""
    cache, faults = rig.cache(ttl=60)
    text = "x" * (64 * 1024)
    document = json.dumps({"username": "u", "blob": "y" * (64 * 1024 - 40)})
    blob = os.urandom(64 * 1024)
    text_id, _ = rig.secret("bad/huge-text", text)
    json_id, _ = rig.secret("bad/huge-json", document)
    blob_id, _ = rig.secret("bad/huge-blob", blob)
    assert digest(cache.get_secret_string(text_id)) == digest(text), "64 KiB string mismatch"
    assert cache.get_secret_json(json_id)["username"] == "u"
    assert cache.get_secret_json(json_id) is cache.get_secret_json(json_id), "parsed twice"
    assert digest(cache.get_secret_binary(blob_id)) == digest(blob), "64 KiB binary mismatch"
    assert "x" * 100 not in repr(cache.get_secret(text_id))
    assert faults.sent == 3


BAD_CONFIGS: list[tuple[dict[str, Any], type[Exception], str]] = [
    ({"ttl": -1}, ValueError, "ttl"),
    ({"ttl": float("nan")}, ValueError, "ttl"),
    ({"ttl": "60"}, TypeError, "ttl"),
    ({"ttl": True}, TypeError, "ttl"),
    ({"jitter": 1.5}, ValueError, "jitter"),
    ({"jitter": -0.1}, ValueError, "jitter"),
    ({"max_size": 0}, ValueError, "max_size"),
    ({"max_size": 2.5}, TypeError, "max_size"),
    ({"max_stale": -5}, ValueError, "max_stale"),
    ({"min_refresh_interval": -1}, ValueError, "min_refresh_interval"),
    ({"retry_attempts": 0}, ValueError, "retry_attempts"),
    ({"retry_attempts": 1.0}, TypeError, "retry_attempts"),
    ({"error_backoff_max": -1}, ValueError, "error_backoff_max"),
    ({"default_version_stage": ""}, ValueError, "default_version_stage"),
    ({"default_version_stage": None}, ValueError, "default_version_stage"),
    ({"on_change": "not callable"}, TypeError, "on_change"),
    ({"no_such_field": 1}, TypeError, "no_such_field"),
]


@pytest.mark.parametrize(("kwargs", "kind", "field"), BAD_CONFIGS)
def test_invalid_config(kwargs: dict[str, Any], kind: type[Exception], field: str) -> None:
    with pytest.raises(kind) as info:
        CacheConfig(**kwargs)
    assert field in str(info.value), f"error does not name {field}: {info.value}"


def test_config_of_wrong_type() -> None:
    with pytest.raises(TypeError, match="CacheConfig"):
        SecretCache(config={"ttl": 5})  # type: ignore[arg-type]


DB_ADAPTERS = ["secretcache.db.psycopg", "secretcache.db.pymysql"]


@pytest.mark.parametrize("module_name", DB_ADAPTERS)
@pytest.mark.parametrize("missing", ["username", "password"])
def test_db_secret_without_credentials(rig: Rig, module_name: str, missing: str) -> None:
    """An RDS secret lacking a credential field is a SecretDecodeError naming the field."""
    module = importlib.import_module(module_name)
    document = {"username": "app", "password": "pw-CANARY-db", "host": "127.0.0.1", "port": 9}
    del document[missing]
    name = f"bad/db/{missing}"
    rig.sm.create_secret(Name=name, SecretString=json.dumps(document))
    cache, faults = rig.cache(ttl=60)
    for _ in range(3):
        with pytest.raises(SecretCacheError) as info:
            module.connect(name, cache=cache)
        assert isinstance(info.value, SecretDecodeError), type(info.value).__name__
        assert missing in str(info.value) and name in str(info.value), str(info.value)
        assert "pw-CANARY-db" not in repr(info.value)
    assert faults.sent <= 4, f"{faults.sent} calls for a secret that can never work"
