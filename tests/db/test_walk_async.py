"""The same label walk driven by awaits: the shape the asyncio adapters build on.

``run_async`` performs the walk's requests with ``AsyncSecretCache`` and an
asyncio driver (here psycopg's ``AsyncConnection``, through a test-local
``Driver``); no rule is repeated for it. Connects go through the slow proxy so
that several are in flight at once and one walk is shared while the loop runs.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import psycopg
import pytest

from secretcache import AsyncSecretCache
from secretcache._demo.postgres import PostgresServer
from secretcache._demo.rotation import Strategy, new_password
from secretcache.db._connect import rotating_connect_async
from secretcache.db.psycopg import PsycopgDriver
from tests.leakcheck import find_leaks

from .conftest import DbSecret
from .slowproxy import slow_proxy

pytestmark = pytest.mark.db


class AsyncPsycopg(PsycopgDriver):
    async def open_async(self, args: Sequence[Any], params: dict[str, Any]) -> Any:
        return await psycopg.AsyncConnection.connect(*args, **params)


def test_async_connects_in_the_window_share_one_walk_and_the_loop_keeps_running(
    make_db_secret: Callable[..., DbSecret], postgres: PostgresServer
) -> None:
    with slow_proxy(postgres.host, postgres.port) as proxy:
        setup = make_db_secret("postgres", extra={"host": proxy.host, "port": proxy.port})
        rotator = setup.rotator(Strategy.SINGLE_USER)

        async def scenario() -> tuple[list[str], int, int]:
            cache = AsyncSecretCache(client=setup.moto.client())
            driver = AsyncPsycopg()

            async def one() -> None:
                conn = await rotating_connect_async(
                    driver, setup.secret_id, cache=cache, overrides={"connect_timeout": 10}
                )
                try:
                    await conn.execute("SELECT 1")
                finally:
                    await conn.close()

            await one()  # AWSCURRENT cached
            rotator.create_secret()
            rotator.set_secret()  # the cached password is rejected from now on
            before = cache.stats().api_calls
            ticks, running = 0, True

            async def ticker() -> None:
                nonlocal ticks
                while running:
                    await asyncio.sleep(0.005)
                    ticks += 1

            beat = asyncio.create_task(ticker())
            outcomes = await asyncio.gather(*(one() for _ in range(8)), return_exceptions=True)
            running = False
            await beat
            errors = [type(o).__name__ for o in outcomes if isinstance(o, BaseException)]
            return errors, cache.stats().api_calls - before, ticks

        errors, calls, ticks = asyncio.run(scenario())
        rotator.test_secret()
        rotator.finish_secret()
    assert errors == []
    assert calls == 2  # one AWSCURRENT re-read, one AWSPENDING read, for all eight
    assert ticks > 0


def test_async_rejected_login_is_scrubbed_like_the_blocking_one(
    make_db_secret: Callable[..., DbSecret],
) -> None:
    setup = make_db_secret("postgres")
    setup.db.set_password(setup.username, new_password())
    canary = f"CANARY-{uuid.uuid4().hex}-€"
    client = setup.moto.client()
    document = json.loads(
        client.get_secret_value(SecretId=setup.secret_id, VersionStage="AWSCURRENT")["SecretString"]
    )
    client.put_secret_value(
        SecretId=setup.secret_id, SecretString=json.dumps({**document, "password": canary})
    )

    async def attempt() -> BaseException:
        cache = AsyncSecretCache(client=setup.moto.client())
        try:
            await rotating_connect_async(AsyncPsycopg(), setup.secret_id, cache=cache)
        except BaseException as exc:
            return exc
        raise AssertionError("the login did not fail")

    error = asyncio.run(attempt())
    assert isinstance(error, psycopg.OperationalError), type(error).__name__
    leaks = find_leaks(error, [canary])
    assert not leaks, f"a canary is reachable from the error: {leaks}"
