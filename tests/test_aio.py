"""AsyncSecretCache: the same engine as SecretCache, awaited without blocking the loop.

Against moto's server on 127.0.0.1 (fetches run on worker threads, so the
in-process mock would do too, but a real socket is what an application has).
Each test runs its own event loop with ``asyncio.run``.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from typing import Any

import pytest

from secretcache import (
    AsyncSecretCache,
    CacheConfig,
    SecretCache,
    SecretDecodeError,
    SecretNotFoundError,
    SecretUnavailableError,
)
from secretcache.cache import Engine
from tests.conftest import MotoServer
from tests.helpers import CallLog, FaultInjector


@pytest.fixture
def client(moto_server: MotoServer) -> Any:
    client = moto_server.client()
    client.create_secret(Name="app/key", SecretString="v1")
    client.create_secret(Name="app/db", SecretString='{"username": "u", "tls": {"verify": true}}')
    client.create_secret(Name="app/bin", SecretBinary=b"\x00\x01")
    return client


def test_reads_errors_and_the_shared_engine(client: Any) -> None:
    async def main() -> None:
        cache = AsyncSecretCache(client, config=CacheConfig(ttl=600))
        assert isinstance(cache._engine, Engine)
        assert await cache.get_secret_string("app/key") == "v1"
        assert (await cache.get_secret_json("app/db"))["tls"]["verify"] is True
        assert await cache.get_secret_binary("app/bin") == b"\x00\x01"
        assert (await cache.get_secret("app/key")).version_stages == ("AWSCURRENT",)
        with pytest.raises(SecretNotFoundError, match=r"'app/none' \(stage AWSCURRENT\)"):
            await cache.get_secret_string("app/none")
        with pytest.raises(SecretDecodeError):
            await cache.get_secret_string("app/bin")
        stats = cache.stats()
        assert (stats.misses, stats.api_calls, stats.size) == (4, 4, 4)
        cache.invalidate("app/key")
        assert cache.stats().size == 3
        assert "entries=3" in repr(cache)

    asyncio.run(main())


def test_a_hit_completes_without_yielding(client: Any) -> None:
    """The coroutine of a hit finishes on its first step: no task, no thread hop, no await."""

    async def warm() -> AsyncSecretCache:
        cache = AsyncSecretCache(client)
        await cache.get_secret_string("app/key")
        await cache.get_secret_json("app/db")
        await cache.get_secret("app/key")
        return cache

    cache = asyncio.run(warm())
    for coroutine in (
        cache.get_secret_string("app/key"),
        cache.get_secret_json("app/db"),
        cache.get_secret("app/key"),
    ):
        with pytest.raises(StopIteration) as done:
            coroutine.send(None)
        assert done.value.value is not None


def test_concurrent_awaiters_share_one_fetch_and_the_loop_keeps_running(client: Any) -> None:
    log = CallLog(client)
    release = threading.Event()
    FaultInjector(client).before_each(lambda: release.wait(10))

    async def main() -> None:
        cache = AsyncSecretCache(client)
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while not release.is_set():
                ticks += 1
                await asyncio.sleep(0.005)

        readers = [asyncio.create_task(cache.get_secret_string("app/key")) for _ in range(32)]
        tick_task = asyncio.create_task(ticker())
        await asyncio.sleep(0.3)
        assert ticks >= 10, "the event loop was blocked while the fetch waited"
        release.set()
        assert await asyncio.gather(*readers) == ["v1"] * 32
        await tick_task

    asyncio.run(main())
    assert log.count("GetSecretValue") == 1


def test_cancelling_an_awaiter_neither_cancels_the_fetch_nor_poisons_the_entry(
    client: Any,
) -> None:
    log = CallLog(client)
    release = threading.Event()
    FaultInjector(client).before_each(lambda: release.wait(10))

    async def main() -> None:
        cache = AsyncSecretCache(client)
        first = asyncio.create_task(cache.get_secret_string("app/key"))
        second = asyncio.create_task(cache.get_secret_string("app/key"))
        await asyncio.sleep(0.1)
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        release.set()
        assert await second == "v1"
        assert await cache.get_secret_string("app/key") == "v1"

    asyncio.run(main())
    assert log.count("GetSecretValue") == 1


def test_past_ttl_waits_at_most_max_refresh_wait_then_serves_the_previous_value(
    client: Any,
) -> None:
    release = threading.Event()
    faults = FaultInjector(client)

    async def main() -> None:
        cache = AsyncSecretCache(client, config=CacheConfig(ttl=0.2, jitter=0.0))
        assert await cache.get_secret_string("app/key") == "v1"
        client.put_secret_value(SecretId="app/key", SecretString="v2")
        faults.before_each(lambda: release.wait(10))
        await asyncio.sleep(0.25)
        started = time.perf_counter()
        assert await cache.get_secret_string("app/key") == "v1"
        assert time.perf_counter() - started < 1.0
        assert cache.stats().stale_served == 1
        release.set()
        for _ in range(500):
            if await cache.get_secret_string("app/key") == "v2":
                break
            await asyncio.sleep(0.01)
        assert await cache.get_secret_string("app/key") == "v2"

    asyncio.run(main())


def test_lone_awaiter_sees_a_rotation_after_the_ttl(client: Any) -> None:
    async def main() -> None:
        config = CacheConfig(ttl=0.2, jitter=0.0, max_refresh_wait=math.inf)
        cache = AsyncSecretCache(client, config=config)
        assert await cache.get_secret_string("app/key") == "v1"
        client.put_secret_value(SecretId="app/key", SecretString="v2")
        await asyncio.sleep(0.25)
        assert await cache.get_secret_string("app/key") == "v2"

    asyncio.run(main())


def test_refresh_prefetch_and_the_failure_paths(client: Any) -> None:
    client.create_secret(Name="app/other", SecretString="o1")
    log = CallLog(client)

    async def main() -> None:
        cache = AsyncSecretCache(client, config=CacheConfig(min_refresh_interval=0))
        await cache.prefetch("app/key", "app/other")
        assert log.by_operation() == {"BatchGetSecretValue": 1}
        client.put_secret_value(SecretId="app/key", SecretString="v2")
        results = await asyncio.gather(*(cache.refresh("app/key") for _ in range(8)))
        assert {r.secret_string for r in results} == {"v2"}
        with pytest.raises(SecretNotFoundError):
            await cache.prefetch("app/ghost")
        faults = FaultInjector(client)
        faults.inject("InternalServiceError", times=None, status=500)
        with pytest.raises(SecretUnavailableError):
            await cache.get_secret_string("app/cold")

    asyncio.run(main())
    assert log.by_operation()["GetSecretValue"] <= 2 + 3 + 1


def test_sync_and_async_caches_agree_on_semantics(client: Any) -> None:
    """One engine: the same config gives the same counters for the same reads."""
    sync_cache = SecretCache(client)
    for _ in range(3):
        sync_cache.get_secret_string("app/key")

    async def main() -> None:
        cache = AsyncSecretCache(client)
        for _ in range(3):
            await cache.get_secret_string("app/key")
        assert cache.stats() == sync_cache.stats()

    asyncio.run(main())


def test_the_loop_keeps_ticking_while_a_fetch_hangs_on_a_silent_endpoint(
    moto_server: MotoServer,
) -> None:
    """A cold read against an endpoint that never answers: other coroutines keep running.

    The largest gap between ticks is reported, and asserted only against what a
    blocked loop would show (the 3 s read timeout): this is behaviour, not speed.
    """
    from tests.reliability.faults import TcpProxy

    port = int(moto_server.endpoint.rsplit(":", 1)[1])
    proxy = TcpProxy(port)
    try:
        proxy.silence()
        client = boto3_client_at(proxy.endpoint)

        async def main() -> float:
            cache = AsyncSecretCache(client, config=CacheConfig(retry_attempts=1))
            gaps: list[float] = []
            done = asyncio.Event()

            async def ticker() -> None:
                last = time.perf_counter()
                while not done.is_set():
                    await asyncio.sleep(0.005)
                    now = time.perf_counter()
                    gaps.append(now - last)
                    last = now

            tick_task = asyncio.create_task(ticker())
            with pytest.raises(SecretUnavailableError):
                await cache.get_secret_string("app/key")
            done.set()
            await tick_task
            return max(gaps)

        largest = asyncio.run(main())
    finally:
        proxy.close()
    print(f"\nlargest gap between ticks during a silent fetch: {largest * 1000:.1f} ms")
    assert largest < 1.0, f"the loop stalled for {largest:.2f} s"


def boto3_client_at(endpoint: str) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.session.Session().client(
        "secretsmanager",
        region_name="us-east-1",
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(read_timeout=2, connect_timeout=1, retries={"total_max_attempts": 1}),
    )


def test_a_hundred_awaiters_of_a_missing_entry_make_one_call(client: Any) -> None:
    log = CallLog(client)

    async def main() -> list[BaseException | str]:
        cache = AsyncSecretCache(client)
        return await asyncio.gather(
            *(cache.get_secret_string("app/absent") for _ in range(100)), return_exceptions=True
        )

    outcomes = asyncio.run(main())
    assert all(isinstance(o, SecretNotFoundError) for o in outcomes)
    assert log.count("GetSecretValue") == 1


def test_a_waiter_in_a_later_loop_is_woken_after_an_earlier_loop_closed(
    moto_server: MotoServer,
) -> None:
    """``asyncio.run`` per request (or per Lambda invocation): loops come and go.

    A reader that stopped waiting (stale value after max_refresh_wait) left its loop,
    and that loop closed, while the refresh was still in flight. A waiter in a new
    loop joining the same refresh must still be woken when it ends.
    """
    from tests.reliability.faults import TcpProxy

    setup = moto_server.client()
    setup.create_secret(Name="loops/key", SecretString="v1")
    port = int(moto_server.endpoint.rsplit(":", 1)[1])
    proxy = TcpProxy(port)
    try:
        cache = AsyncSecretCache(
            boto3_client_at(proxy.endpoint), config=CacheConfig(ttl=0.3, jitter=0.0)
        )
        assert asyncio.run(cache.get_secret_string("loops/key")) == "v1"
        time.sleep(0.35)
        proxy.silence()
        assert asyncio.run(cache.get_secret_string("loops/key")) == "v1"  # stale; loop closes

        async def forced() -> str:
            task = asyncio.ensure_future(cache.refresh("loops/key"))
            await asyncio.sleep(0.2)
            proxy.down()  # the refresh in flight now ends (a read timeout at the latest)
            try:
                await asyncio.wait_for(task, 15)
            except SecretUnavailableError:
                return "woken with the error"
            return "woken with a value"

        assert asyncio.run(forced()).startswith("woken")
    finally:
        proxy.close()
