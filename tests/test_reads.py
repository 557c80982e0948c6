"""Reading secrets: kinds, stages, versions, one GetSecretValue per fetch."""

from __future__ import annotations

import json
import operator
import sys
import uuid
from typing import Any

import pytest

from secretcache import (
    CacheConfig,
    SecretCache,
    SecretDecodeError,
    SecretNotFoundError,
    SecretValue,
)
from tests.caught import raised
from tests.helpers import CallLog
from tests.leakcheck import find_leaks

DB = {"username": "app", "password": "hunter2-not-real"}


@pytest.fixture
def secrets(sm: Any) -> Any:
    sm.create_secret(Name="app/db", SecretString=json.dumps(DB))
    sm.create_secret(Name="app/blob", SecretBinary=b"\x00\xffdata")
    sm.create_secret(Name="app/text", SecretString="plain text")
    return sm


def test_string_binary_and_json_reads(secrets: Any) -> None:
    cache = SecretCache(secrets)
    assert cache.get_secret_string("app/text") == "plain text"
    assert cache.get_secret_binary("app/blob") == b"\x00\xffdata"
    assert dict(cache.get_secret_json("app/db")) == DB


def test_first_read_is_one_get_secret_value_naming_the_stage(secrets: Any) -> None:
    log = CallLog(secrets)
    cache = SecretCache(secrets)
    cache.get_secret_string("app/text")
    cache.get_secret_string("app/text")
    assert log.by_operation() == {"GetSecretValue": 1}
    assert log.calls[0][1] == {"SecretId": "app/text", "VersionStage": "AWSCURRENT"}
    assert cache.stats().api_calls == 1


def test_json_is_read_only_and_parsed_once_per_version(secrets: Any) -> None:
    cache = SecretCache(secrets)
    first = cache.get_secret_json("app/db")
    assert cache.get_secret_json("app/db") is first
    with pytest.raises(TypeError):
        first["password"] = "changed"  # type: ignore[index]
    assert cache.get_secret("app/db").json() is first


def test_secret_value_record(secrets: Any) -> None:
    cache = SecretCache(secrets)
    value = cache.get_secret("app/text")
    assert isinstance(value, SecretValue)
    assert value.name == "app/text"
    assert value.arn and value.arn.startswith("arn:aws:secretsmanager:")
    assert value.version_stages == ("AWSCURRENT",)
    assert value.secret_string == "plain text" and value.secret_binary is None
    assert value.created_date is not None
    with pytest.raises(AttributeError):
        value.secret_string = "x"  # type: ignore[misc]
    for text in (repr(value), str(value)):
        assert "plain text" not in text
        assert "app/text" in text and value.version_id in text


def test_stage_pinning_and_version_ids(secrets: Any) -> None:
    old = secrets.get_secret_value(SecretId="app/text")["VersionId"]
    new = secrets.put_secret_value(SecretId="app/text", SecretString="rotated")["VersionId"]
    cache = SecretCache(secrets)
    assert cache.get_secret_string("app/text") == "rotated"
    assert cache.get_secret_string("app/text", "AWSCURRENT") == "rotated"
    assert cache.get_secret_string("app/text", "AWSPREVIOUS") == "plain text"
    assert cache.get_secret_string("app/text", version_id=old) == "plain text"
    assert cache.get_secret("app/text", version_id=new).version_stages == ("AWSCURRENT",)
    # None and the default stage are one entry; every other pair is its own.
    assert cache.stats().size == 4


def test_custom_default_stage(secrets: Any) -> None:
    secrets.put_secret_value(SecretId="app/text", SecretString="next", VersionStages=["AWSPENDING"])
    cache = SecretCache(secrets, config=CacheConfig(default_version_stage="AWSPENDING"))
    assert cache.get_secret_string("app/text") == "next"


def test_stage_and_version_id_together_is_rejected(secrets: Any) -> None:
    cache = SecretCache(secrets)
    with pytest.raises(ValueError, match="not both"):
        cache.get_secret_string("app/text", "AWSCURRENT", version_id="abc")


def test_kind_mismatch_is_a_decode_error_naming_secret_and_stage(secrets: Any) -> None:
    cache = SecretCache(secrets)
    with pytest.raises(SecretDecodeError, match=r"'app/blob' \(stage AWSCURRENT\)"):
        cache.get_secret_string("app/blob")
    with pytest.raises(SecretDecodeError, match="holds string data"):
        cache.get_secret_binary("app/text")
    with pytest.raises(SecretDecodeError, match="not valid JSON"):
        cache.get_secret_json("app/text")


def test_json_that_is_not_an_object(sm: Any) -> None:
    sm.create_secret(Name="list", SecretString="[1, 2]")
    cache = SecretCache(sm)
    with pytest.raises(SecretDecodeError, match="not an object"):
        cache.get_secret_json("list")
    assert cache.get_secret_string("list") == "[1, 2]"  # the entry is not harmed


def test_missing_secret_stage_and_version(secrets: Any) -> None:
    cache = SecretCache(secrets)
    with pytest.raises(SecretNotFoundError, match="'nope'") as missing:
        cache.get_secret_string("nope")
    assert isinstance(missing.value, KeyError)
    assert missing.value.secret_id == "nope" and missing.value.version_stage == "AWSCURRENT"
    assert type(missing.value.__cause__).__name__ == "ResourceNotFoundException"
    with pytest.raises(SecretNotFoundError, match="stage AWSPENDING"):
        cache.get_secret_string("app/text", "AWSPENDING")
    with pytest.raises(SecretNotFoundError, match="version 00000000"):
        cache.get_secret_string("app/text", version_id="00000000-0000-0000-0000-000000000000")


def test_bad_arguments_are_typed_errors(secrets: Any) -> None:
    cache = SecretCache(secrets)
    with pytest.raises(ValueError, match="empty"):
        cache.get_secret_string("")
    with pytest.raises(ValueError, match="2048"):
        cache.get_secret_string("x" * 3000)
    with pytest.raises(TypeError, match="secret_id must be a str"):
        cache.get_secret_string(["a"])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="version_stage"):
        cache.get_secret_string("app/text", "")
    assert cache.stats().api_calls == 0


def test_construction_makes_no_call_and_default_client_is_lazy(aws: None) -> None:
    cache = SecretCache()
    assert cache.stats().api_calls == 0
    assert cache._source._client is None
    with pytest.raises(SecretNotFoundError):
        cache.get_secret_string("absent")
    assert cache._source._client is not None


# ------------------------------------------------ parsed JSON, read-only all the way down

NESTED = {
    "username": "app",
    "tls": {"verify": True, "ca": {"path": "/etc/ca.pem", "pins": ["a", "b"]}},
    "hosts": ["db1", {"name": "db2", "ports": [5432, 5433]}, [["deep"]]],
    "empty": {},
    "none": [],
}


def test_nested_json_is_read_only_and_compares_equal_to_what_was_parsed(sm: Any) -> None:
    sm.create_secret(Name="nested", SecretString=json.dumps(NESTED))
    cache = SecretCache(sm)
    first = cache.get_secret_json("nested")
    assert dict(first) == NESTED and first == NESTED
    assert first["tls"] == NESTED["tls"] and first["hosts"] == NESTED["hosts"]
    assert NESTED["hosts"] == first["hosts"] and not operator.ne(first["hosts"], NESTED["hosts"])
    assert first["hosts"][2] == [["deep"]] and first["none"] == [] and first["empty"] == {}
    assert first["hosts"] != ["db1"] and first["hosts"] != "db1"
    with pytest.raises(TypeError):
        first["tls"]["verify"] = False  # type: ignore[index]
    with pytest.raises(TypeError):
        first["tls"]["ca"]["path"] = "/tmp/evil.pem"  # type: ignore[index]
    with pytest.raises(AttributeError):
        first["hosts"].append("evil")
    with pytest.raises(AttributeError):
        first["tls"]["ca"]["pins"].append("evil")
    with pytest.raises(TypeError):
        first["hosts"][1]["ports"][0] = 1  # type: ignore[index]
    with pytest.raises(AttributeError):
        first["hosts"][1].update(name="evil")
    again = cache.get_secret_json("nested")
    assert again is first, "parsed more than once for one version"
    assert again == NESTED, "a caller changed what the next caller gets"
    # every surface hands out the same frozen value
    assert cache.get_secret("nested").json() is first


def test_a_new_version_is_parsed_again(sm: Any) -> None:
    sm.create_secret(Name="nested", SecretString=json.dumps(NESTED))
    cache = SecretCache(sm, config=CacheConfig(min_refresh_interval=0))
    first = cache.get_secret_json("nested")
    sm.put_secret_value(SecretId="nested", SecretString=json.dumps({"tls": {"verify": False}}))
    cache.refresh("nested")
    second = cache.get_secret_json("nested")
    assert second is not first and second["tls"]["verify"] is False
    assert first["tls"]["verify"] is True, "the old version's mapping changed"


def test_json_nested_past_the_recursion_limit_is_a_decode_error(sm: Any) -> None:
    depth = sys.getrecursionlimit() + 100
    sm.create_secret(Name="deep", SecretString='{"a": ' + "[" * depth + "]" * depth + "}")
    cache = SecretCache(sm)
    with pytest.raises(SecretDecodeError, match=r"'deep' \(stage AWSCURRENT\).*nested too deeply"):
        cache.get_secret_json("deep")
    depth = sys.getrecursionlimit() - 60  # parses, and is frozen without recursion
    sm.create_secret(Name="deep-ok", SecretString='{"a": ' + "[" * depth + "]" * depth + "}")
    parsed = cache.get_secret_json("deep-ok")
    inner = parsed["a"]
    for _ in range(depth - 1):
        assert isinstance(inner, tuple) and len(inner) == 1
        inner = inner[0]
    assert inner == []


CANARY = f"CANARY-\u00e9\u20ac\u0142\u4e2d\U0001f511-{uuid.uuid4().hex}"
MALFORMED = {
    "bad-json": f'{{"password": "{CANARY}", oops',
    "json-array": json.dumps([CANARY, {"password": CANARY}], ensure_ascii=False),
    "json-string": json.dumps(CANARY),
    "json-number-too-long": '{"password": "' + CANARY + '", "n": ' + "7" * 5000 + "}",
    "deep-json": '{"p": "' + CANARY + '", "a": ' + "[" * 3000 + "]" * 3000 + "}",
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_decode_errors_keep_no_part_of_the_secret_in_any_frame(sm: Any, name: str) -> None:
    sm.create_secret(Name=name, SecretString=MALFORMED[name])
    cache = SecretCache(sm)
    error = raised(lambda: cache.get_secret(name).json())
    assert isinstance(error, SecretDecodeError)
    assert error.secret_id == name
    leaks = find_leaks(error, [CANARY, CANARY[:12], CANARY[-12:]])
    assert not leaks, f"secret reachable from the decode error through {leaks}"


@pytest.mark.parametrize("name", ["bad-json", "json-array"])
def test_get_secret_json_decode_errors_keep_no_part_of_the_secret(sm: Any, name: str) -> None:
    sm.create_secret(Name=name, SecretString=MALFORMED[name])
    cache = SecretCache(sm)
    for _ in range(2):  # cold, then with the record cached
        error = raised(lambda: cache.get_secret_json(name))
        assert isinstance(error, SecretDecodeError)
        leaks = find_leaks(error, [CANARY, CANARY[:12], CANARY[-12:]])
        assert not leaks, f"secret reachable from the decode error through {leaks}"
