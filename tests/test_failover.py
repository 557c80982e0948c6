"""Replica regions: unavailability moves on to the next region, any answer is final.

moto's server on 127.0.0.1 plays both regions (a secret with a replica in
us-west-2). The primary is made unavailable for real: its client goes through a
TCP proxy that refuses connections or never answers, or it is failed at the HTTP
layer (5xx, throttling). The figures each case sees are collected into the
failover table (printed with ``-s``; reported in the issue note).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config

from secretcache import (
    AsyncSecretCache,
    CacheConfig,
    SecretAccessDeniedError,
    SecretCache,
    SecretNotFoundError,
    SecretUnavailableError,
)
from tests.conftest import MotoServer
from tests.helpers import CallLog, FaultInjector
from tests.leakcheck import find_leaks
from tests.reliability.faults import TcpProxy

CANARY = "CANARY-failover-ø"
TABLE: list[str] = []


def regional(endpoint: str, region: str, **config: Any) -> Any:
    config.setdefault("retries", {"total_max_attempts": 1, "mode": "standard"})
    return boto3.session.Session().client(
        "secretsmanager",
        region_name=region,
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(**config),
    )


@pytest.fixture
def world(moto_server: MotoServer) -> Iterator[dict[str, Any]]:
    port = int(moto_server.endpoint.rsplit(":", 1)[1])
    proxy = TcpProxy(port)
    setup = regional(moto_server.endpoint, "us-east-1")
    name = f"replicated/{time.monotonic_ns()}"
    setup.create_secret(
        Name=name, SecretString=f"v1-{CANARY}", AddReplicaRegions=[{"Region": "us-west-2"}]
    )
    primary = regional(proxy.endpoint, "us-east-1", connect_timeout=0.5, read_timeout=0.5)
    replica = regional(moto_server.endpoint, "us-west-2")
    yield {"proxy": proxy, "setup": setup, "name": name, "primary": primary, "replica": replica}
    proxy.close()


def _read(world: dict[str, Any], **config: Any) -> tuple[SecretCache, CallLog, CallLog]:
    cache = SecretCache(
        world["primary"], config=CacheConfig(**config), failover_clients=[world["replica"]]
    )
    return cache, CallLog(world["primary"]), CallLog(world["replica"])


@pytest.mark.parametrize("fault", ["refused", "silent", "http-500", "throttled"])
def test_unavailable_primary_fails_over_and_the_next_fetch_tries_it_first(
    world: dict[str, Any], fault: str
) -> None:
    cache, primary_log, replica_log = _read(world, retry_attempts=2, min_refresh_interval=0)
    name = world["name"]
    proxy: TcpProxy = world["proxy"]
    injector = None
    if fault == "refused":
        proxy.down()
    elif fault == "silent":
        proxy.silence()
    else:
        code, status = (
            ("InternalServiceError", 500)
            if fault == "http-500"
            else (
                "ThrottlingException",
                400,
            )
        )
        injector = FaultInjector(world["primary"])
        injector.inject(code, times=None, status=status)
    started = time.perf_counter()
    value = cache.get_secret(name)
    took = time.perf_counter() - started
    assert value.secret_string == f"v1-{CANARY}"
    assert ":us-west-2:" in (value.arn or ""), "served by the replica"
    stats = cache.stats()
    assert stats.failovers == 1
    assert primary_log.count() == 2 and replica_log.count() == 1
    TABLE.append(
        f"| primary {fault} | value from us-west-2 | primary {primary_log.count()} "
        f"(2 attempts), replica {replica_log.count()} | {took:.2f} s |"
    )
    # The next fetch starts with the primary again: once it is back, it answers.
    proxy.up("forward")
    if injector is not None:
        injector.clear()
    world["setup"].put_secret_value(SecretId=name, SecretString=f"v2-{CANARY}")
    fresh = cache.refresh(name)
    assert ":us-east-1:" in (fresh.arn or "") and fresh.secret_string == f"v2-{CANARY}"
    assert cache.stats().failovers == 1


@pytest.mark.parametrize(
    ("code", "error"),
    [
        ("ResourceNotFoundException", SecretNotFoundError),
        ("AccessDeniedException", SecretAccessDeniedError),
        ("DecryptionFailure", SecretAccessDeniedError),
        ("InvalidRequestException", SecretNotFoundError),
    ],
)
def test_an_answer_from_the_primary_is_final(
    world: dict[str, Any], code: str, error: type[Exception]
) -> None:
    cache, _, replica_log = _read(world)
    FaultInjector(world["primary"]).inject(code, times=None)
    with pytest.raises(error) as info:
        cache.get_secret_string(world["name"])
    assert replica_log.count() == 0, "an answer must not trigger failover"
    assert cache.stats().failovers == 0
    assert world["name"] in str(info.value)
    TABLE.append(f"| primary answers {code} | {error.__name__} | primary 1, replica 0 | - |")


def test_every_region_unavailable_is_one_typed_error(world: dict[str, Any]) -> None:
    world["proxy"].down()
    FaultInjector(world["replica"]).inject("InternalServiceError", times=None, status=500)
    cache, primary_log, replica_log = _read(world, retry_attempts=1)
    with pytest.raises(SecretUnavailableError) as info:
        cache.get_secret_string(world["name"])
    assert world["name"] in str(info.value) and "AWSCURRENT" in str(info.value)
    assert find_leaks(info.value, [CANARY]) == []
    assert (primary_log.count(), replica_log.count()) == (1, 1)
    assert cache.stats().failovers == 0
    TABLE.append(
        "| every region unavailable | SecretUnavailableError (the primary's) | "
        "primary 1, replica 1 | - |"
    )


def test_replica_answer_ends_the_failover_even_when_it_is_an_error(
    world: dict[str, Any],
) -> None:
    world["proxy"].down()
    FaultInjector(world["replica"]).inject("AccessDeniedException", times=None)
    cache, _, replica_log = _read(world)
    with pytest.raises(SecretAccessDeniedError):
        cache.get_secret_string(world["name"])
    assert replica_log.count() == 1


def test_failover_regions_from_config_use_the_default_session(
    world: dict[str, Any], monkeypatch: pytest.MonkeyPatch, moto_server: MotoServer
) -> None:
    """``CacheConfig.failover_regions``: one client per region from boto3's default session."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.endpoint)
    cache = SecretCache(
        world["primary"], config=CacheConfig(failover_regions=("us-west-2",), retry_attempts=1)
    )
    world["proxy"].down()
    value = cache.get_secret(world["name"])
    assert ":us-west-2:" in (value.arn or "")
    assert cache.stats().failovers == 1


def test_async_cache_fails_over_too(world: dict[str, Any]) -> None:
    world["proxy"].down()

    async def main() -> str:
        cache = AsyncSecretCache(
            world["primary"],
            config=CacheConfig(retry_attempts=1),
            failover_clients=[world["replica"]],
        )
        text = await cache.get_secret_string(world["name"])
        assert cache.stats().failovers == 1
        return text

    assert asyncio.run(main()) == f"v1-{CANARY}"


def test_failover_clients_are_checked() -> None:
    with pytest.raises(TypeError, match="failover_clients"):
        SecretCache(failover_clients=[None])
    with pytest.raises(TypeError, match="secretsmanager"):
        SecretCache(failover_clients=[object()])


def test_print_failover_table() -> None:
    """The rows collected above, for the issue note (run with -s)."""
    if TABLE:
        print("\n| fault | caller saw | calls to each region | time to answer |")
        print("|---|---|---|---|")
        print("\n".join(TABLE))


def test_an_unknown_4xx_answer_is_final_too(world: dict[str, Any]) -> None:
    """A code this library does not know, with a 4xx status, is still the region's answer."""
    cache, _, replica_log = _read(world)
    FaultInjector(world["primary"]).inject("SomethingNewException", times=None, status=409)
    with pytest.raises(SecretUnavailableError):
        cache.get_secret_string(world["name"])
    assert replica_log.count() == 0


def test_a_bare_403_is_access_denied(world: dict[str, Any]) -> None:
    cache, _, replica_log = _read(world)
    FaultInjector(world["primary"]).inject("", times=None, status=403)
    with pytest.raises(SecretAccessDeniedError):
        cache.get_secret_string(world["name"])
    assert replica_log.count() == 0
