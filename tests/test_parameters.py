"""ParameterCache against moto's Parameter Store: types, selectors, paths, batching, errors.

The engine is the one ``SecretCache`` uses; these tests check what the Parameter
Store source adds -- selectors, SecureString decryption, paths of many pages,
``GetParameters`` batches, the Secrets Manager reference path -- and that its
errors are the same typed errors, naming the parameter and never its value.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import boto3
import pytest
from botocore.config import Config

from secretcache import (
    CacheConfig,
    ParameterCache,
    SecretAccessDeniedError,
    SecretCache,
    SecretDecodeError,
    SecretNotFoundError,
    SecretUnavailableError,
)
from secretcache.sources.parameterstore import split_selector
from tests.conftest import REGION
from tests.leakcheck import find_leaks

CANARY = "CANARY-ssm-ł€-77"
NO_RETRIES = Config(retries={"total_max_attempts": 1, "mode": "standard"})


class SsmCalls:
    """Counts the operations one ssm client sends."""

    def __init__(self, client: Any) -> None:
        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()
        client.meta.events.register("before-send.ssm", self._seen)

    def _seen(self, model: Any = None, **kwargs: Any) -> None:
        request = kwargs.get("request")
        target = request.headers.get("X-Amz-Target", b"") if request is not None else b""
        name = target.decode() if isinstance(target, bytes) else str(target)
        with self._lock:
            self.calls[name.rsplit(".", 1)[-1]] += 1


@pytest.fixture
def ssm(aws: None) -> Any:
    client = boto3.client("ssm", region_name=REGION, config=NO_RETRIES)
    kms = boto3.client("kms", region_name=REGION)
    key = kms.create_key(Description="params")["KeyMetadata"]["KeyId"]
    client.put_parameter(Name="/app/db/host", Value="db.internal", Type="String")
    client.put_parameter(Name="/app/hosts", Value="a,b,c", Type="StringList")
    client.put_parameter(
        Name="/app/db/password", Value=f"pw-{CANARY}", Type="SecureString", KeyId=key
    )
    client.put_parameter(
        Name="/app/db/password",
        Value=f"pw2-{CANARY}",
        Type="SecureString",
        KeyId=key,
        Overwrite=True,
    )
    client.label_parameter_version(Name="/app/db/password", ParameterVersion=1, Labels=["old"])
    client.put_parameter(Name="/app/flags", Value='{"beta": true, "tiers": [1, 2]}', Type="String")
    client.put_parameter(Name="/app/not-json", Value=f"{CANARY}", Type="String")
    return client


def test_selector_parsing() -> None:
    assert split_selector("/a/b") == ("/a/b", None, None)
    assert split_selector("/a/b:3") == ("/a/b", None, "3")
    assert split_selector("/a/b:prod") == ("/a/b", "prod", None)
    assert split_selector("plain") == ("plain", None, None)
    arn = "arn:aws:ssm:us-east-1:123456789012:parameter/a/b"
    assert split_selector(arn) == (arn, None, None)
    assert split_selector(arn + ":2") == (arn, None, "2")


def test_types_versions_labels_and_json(ssm: Any) -> None:
    params = ParameterCache(ssm)
    assert params.get("/app/db/host") == "db.internal"
    assert params.get("/app/hosts") == "a,b,c"  # StringList as Parameter Store returns it
    assert params.get("/app/db/password") == f"pw2-{CANARY}"  # SecureString, decrypted
    assert params.get("/app/db/password:1") == f"pw-{CANARY}"
    assert params.get("/app/db/password:old") == f"pw-{CANARY}"
    flags = params.get_json("/app/flags")
    assert flags == {"beta": True, "tiers": [1, 2]}
    with pytest.raises(TypeError):
        flags["beta"] = False  # type: ignore[index]
    before = params.stats().api_calls
    assert params.get("/app/db/host") == "db.internal"
    assert params.get("/app/db/password:1") == f"pw-{CANARY}"
    assert params.stats().api_calls == before  # hits
    assert "entries=" in repr(params) and CANARY not in repr(params)


def test_version_id_and_on_change(ssm: Any) -> None:
    changes: list[tuple[str, str, str | None, str]] = []
    params = ParameterCache(
        ssm,
        config=CacheConfig(min_refresh_interval=0, on_change=lambda *a: changes.append(a)),
    )
    params.get("/app/db/host")
    ssm.put_parameter(Name="/app/db/host", Value="db2.internal", Type="String", Overwrite=True)
    assert params.refresh("/app/db/host").version_id == "2"
    assert params.get("/app/db/host") == "db2.internal"
    assert changes == [("/app/db/host", "$LATEST", "1", "2")]


def test_path_follows_every_page_in_one_entry(ssm: Any) -> None:
    for i in range(23):
        ssm.put_parameter(Name=f"/many/p{i:02d}", Value=f"v{i}", Type="String")
    ssm.put_parameter(Name="/many/deeper/x", Value="deep", Type="String")
    calls = SsmCalls(ssm)
    params = ParameterCache(ssm)
    flat = params.get_by_path("/many/")
    assert len(flat) == 23 and flat["/many/p07"] == "v7"
    assert calls.calls["GetParametersByPath"] == 3  # 10 per page
    deep = params.get_by_path("/many/", recursive=True)
    assert deep["/many/deeper/x"] == "deep" and len(deep) == 24
    calls.calls.clear()
    assert params.get_by_path("/many/") is flat  # one cached entry, no call
    assert not calls.calls
    with pytest.raises(TypeError):
        flat["/many/p00"] = "x"  # type: ignore[index]


def test_prefetch_batches_ten_names_per_call(ssm: Any) -> None:
    names = [f"/batch/p{i}" for i in range(25)]
    for name in names:
        ssm.put_parameter(Name=name, Value=name.upper(), Type="String")
    calls = SsmCalls(ssm)
    params = ParameterCache(ssm)
    params.prefetch(*names, "/app/db/password:1")
    assert calls.calls == {"GetParameters": 3, "GetParameter": 1}
    assert [params.get(n) for n in names] == [n.upper() for n in names]
    assert params.stats().api_calls == 4


def test_concurrent_misses_coalesce(ssm: Any) -> None:
    calls = SsmCalls(ssm)
    params = ParameterCache(ssm)
    barrier = threading.Barrier(16)
    results: list[str] = []

    def read() -> None:
        barrier.wait()
        results.append(params.get("/app/db/host"))

    threads = [threading.Thread(target=read) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == ["db.internal"] * 16
    assert calls.calls["GetParameter"] == 1


def test_errors_are_typed_name_the_parameter_and_hold_no_value(ssm: Any) -> None:
    params = ParameterCache(ssm)
    with pytest.raises(SecretNotFoundError, match="'/app/missing'") as missing:
        params.get("/app/missing")
    assert "parameter" in str(missing.value)
    with pytest.raises(SecretNotFoundError, match="version 9"):
        params.get("/app/db/password:9")
    with pytest.raises(SecretNotFoundError):
        params.get("/app/db/password:nolabel")
    with pytest.raises(SecretDecodeError) as bad_json:
        params.get_json("/app/not-json")
    assert find_leaks(bad_json.value, [CANARY]) == []
    with pytest.raises(TypeError, match="ssm"):
        ParameterCache(boto3.client("secretsmanager", region_name=REGION))
    with pytest.raises(TypeError, match="config="):
        ParameterCache(CacheConfig())  # type: ignore[arg-type]
    for error in (missing.value,):
        assert find_leaks(error, [CANARY]) == []


def test_denied_and_unavailable(ssm: Any) -> None:
    from tests.reliability.faults import aws_error

    def deny(**_: Any) -> Any:
        return aws_error(400, "AccessDeniedException", "not allowed")

    ssm.meta.events.register("before-send.ssm.GetParameter", deny)
    with pytest.raises(SecretAccessDeniedError, match="'/app/db/host'"):
        ParameterCache(ssm).get("/app/db/host")
    ssm.meta.events.unregister("before-send.ssm.GetParameter", deny)

    def down(**_: Any) -> Any:
        return aws_error(500, "InternalServerError", "down")

    ssm.meta.events.register("before-send.ssm.GetParameter", down)
    params = ParameterCache(ssm, config=CacheConfig(retry_attempts=2))
    with pytest.raises(SecretUnavailableError, match="2 attempts"):
        params.get("/app/db/host")
    assert params.stats().api_calls == 2


def test_secrets_manager_reference_path(ssm: Any) -> None:
    sm = boto3.client("secretsmanager", region_name=REGION)
    sm.create_secret(Name="prod/db", SecretString=f'{{"password": "{CANARY}"}}')
    version = sm.get_secret_value(SecretId="prod/db")["VersionId"]
    params = ParameterCache(ssm)
    value = params.get("/aws/reference/secretsmanager/prod/db")
    assert CANARY in value
    assert params.get_json("/aws/reference/secretsmanager/prod/db")["password"] == CANARY
    record = params.refresh("/aws/reference/secretsmanager/prod/db")
    assert record.version_id == version, "the secret's version id, from SourceResult"


def test_same_engine_as_secret_cache(ssm: Any) -> None:
    """One engine, two sources: the keeping logic is literally the same class."""
    assert type(ParameterCache(ssm)._engine) is type(SecretCache()._engine)
