"""Reading secrets: kinds, stages, versions, one GetSecretValue per fetch."""

from __future__ import annotations

import json
from typing import Any

import pytest

from secretcache import (
    CacheConfig,
    SecretCache,
    SecretDecodeError,
    SecretNotFoundError,
    SecretValue,
)
from tests.helpers import CallLog

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
