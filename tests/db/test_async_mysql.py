"""aiomysql on the real MariaDB: rotation-aware async connects, rotations under load, errors.

Every operation opens a new connection (``secretcache.db.aiomysql.connect``) and
runs ``SELECT 1``, from 8 or 32 tasks on one loop while the password rotates --
single-user and alternating-users, directly and through a proxy that makes
every handshake slow. Zero failed operations; the API calls per rotation stay
within the bound of the sync adapters.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import aiomysql
import pymysql
import pytest

from secretcache import AsyncSecretCache, SecretCache
from secretcache._demo.mariadb import MariaDBServer
from secretcache._demo.rotation import Strategy, new_password
from secretcache.db import aiomysql as sc_aiomysql
from secretcache.db import pymysql as sc_pymysql

from . import test_leaks_db
from .async_workers import (
    ASYNC_LOGGERS,
    PAUSE,
    ROTATIONS,
    SLOW_GAP,
    SLOW_PAUSE,
    STRATEGIES,
    AsyncCases,
    check_rotation,
    provoke_async,
)
from .conftest import DbSecret
from .slowproxy import slow_proxy
from .stress import run_stress_async
from .test_leaks_db import (
    ALPHABETS,
    NON_LATIN1,
    Canaries,
    canaries,  # noqa: F401 - the fixture
    put,
    secret_of,
)

pytestmark = pytest.mark.db


def select_one(setup: DbSecret, cache: Any, **kwargs: Any) -> Callable[[], Any]:
    async def op() -> None:
        conn = await sc_aiomysql.connect(setup.secret_id, cache=cache, connect_timeout=10, **kwargs)
        try:
            async with conn.cursor() as cursor:
                await cursor.execute("SELECT 1")
                assert await cursor.fetchone() == (1,)
        finally:
            conn.close()

    return op


# ----------------------------------------------------------------- rotations


@pytest.mark.parametrize("tasks", [8, pytest.param(32, marks=pytest.mark.slow)])
@pytest.mark.parametrize("strategy", STRATEGIES, ids=lambda s: s.value)
def test_aiomysql_connect_per_operation_survives_rotations(
    make_db_secret: Callable[..., DbSecret], strategy: Strategy, tasks: int
) -> None:
    setup = make_db_secret("mariadb")

    async def scenario() -> Any:
        cache = setup.async_cache()
        return await run_stress_async(
            select_one(setup, cache),
            setup.rotator(strategy, pause=PAUSE),
            cache,
            workers=tasks,
            rotations=ROTATIONS,
        )

    result = asyncio.run(scenario())
    check_rotation(f"aiomysql x{tasks}", "mariadb", strategy, result, tasks)


@pytest.mark.slow
@pytest.mark.parametrize("strategy", STRATEGIES, ids=lambda s: s.value)
def test_aiomysql_slow_handshakes_32_tasks_no_failed_login(
    make_db_secret: Callable[..., DbSecret], mariadb: MariaDBServer, strategy: Strategy
) -> None:
    tasks = 32
    with slow_proxy(mariadb.host, mariadb.port) as proxy:
        setup = make_db_secret("mariadb", extra={"host": proxy.host, "port": proxy.port})

        async def scenario() -> Any:
            cache = setup.async_cache()
            return await run_stress_async(
                select_one(setup, cache),
                setup.rotator(strategy, pause=SLOW_PAUSE),
                cache,
                workers=tasks,
                rotations=ROTATIONS,
                gap=SLOW_GAP,
            )

        result = asyncio.run(scenario())
    check_rotation(f"aiomysql slow x{tasks}", "mariadb", strategy, result, tasks)


# ------------------------------------------------------------ the connect itself


def test_connect_returns_an_aiomysql_connection_and_honours_every_database_spelling(
    make_db_secret: Callable[..., DbSecret], mariadb: MariaDBServer
) -> None:
    setup = make_db_secret("mariadb")
    other = f"o{uuid.uuid4().hex[:10]}"
    mariadb.create_database(other)
    mariadb.grant_all(other, setup.username)

    async def scenario() -> list[Any]:
        cache = setup.async_cache()
        seen = []
        for spelling in ({}, {"db": other}, {"database": other}, {"dbname": other}):
            conn = await sc_aiomysql.connect(setup.secret_id, cache=cache, **spelling)
            try:
                assert isinstance(conn, aiomysql.Connection)
                async with conn.cursor() as cursor:
                    await cursor.execute("SELECT DATABASE(), CURRENT_USER()")
                    database, user = await cursor.fetchone()
                assert user.split("@")[0] == setup.username
                seen.append(database)
            finally:
                conn.close()
        return seen

    assert asyncio.run(scenario()) == [setup.dbname, other, other, other]


def test_a_blocking_cache_is_accepted_and_the_default_cache_is_used_for_none(
    make_db_secret: Callable[..., DbSecret], monkeypatch: pytest.MonkeyPatch
) -> None:
    import secretcache.aio

    setup = make_db_secret("mariadb")
    blocking = SecretCache(client=setup.moto.client())
    default = AsyncSecretCache(client=setup.moto.client())
    monkeypatch.setattr(secretcache.aio, "_default_async", default)

    async def scenario() -> None:
        await select_one(setup, blocking)()
        await select_one(setup, None)()

    asyncio.run(scenario())
    assert blocking.stats().api_calls == 1
    assert default.stats().api_calls == 1


def test_refuses_credentials_as_keywords_and_a_cache_of_another_kind(
    make_db_secret: Callable[..., DbSecret],
) -> None:
    setup = make_db_secret("mariadb")
    cache = setup.async_cache()
    for keyword in ("user", "password", "passwd"):
        with pytest.raises(TypeError, match=keyword):
            asyncio.run(sc_aiomysql.connect(setup.secret_id, cache=cache, **{keyword: "x"}))
    with pytest.raises(TypeError, match="cache"):
        asyncio.run(sc_aiomysql.connect(setup.secret_id, cache=object()))  # type: ignore[arg-type]
    assert cache.stats().api_calls == 0


def test_a_password_no_label_fixes_raises_1045_and_a_dead_server_reads_nothing_again(
    make_db_secret: Callable[..., DbSecret],
) -> None:
    setup = make_db_secret("mariadb")
    setup.db.set_password(setup.username, new_password())  # no label knows this one

    async def rejected() -> tuple[BaseException, int]:
        cache = setup.async_cache()
        with pytest.raises(pymysql.err.OperationalError) as caught:
            await sc_aiomysql.connect(setup.secret_id, cache=cache, connect_timeout=5)
        return caught.value, cache.stats().api_calls

    error, calls = asyncio.run(rejected())
    assert error.args[0] == sc_aiomysql.ACCESS_DENIED
    assert sc_aiomysql.is_auth_failure(error)
    # The same walk as the blocking adapter's, so the same reads.
    blocking = SecretCache(client=setup.moto.client())
    with pytest.raises(pymysql.err.OperationalError):
        sc_pymysql.connect(setup.secret_id, cache=blocking, connect_timeout=5)
    assert calls == blocking.stats().api_calls

    async def refused() -> tuple[BaseException, int]:
        cache = setup.async_cache()
        closed = _closed_port()
        with pytest.raises(pymysql.err.OperationalError) as caught:
            await sc_aiomysql.connect(setup.secret_id, cache=cache, port=closed, connect_timeout=5)
        return caught.value, cache.stats().api_calls

    error, calls = asyncio.run(refused())
    assert error.args[0] == 2003  # CR_CONN_HOST_ERROR: not an authentication failure
    assert not sc_aiomysql.is_auth_failure(error)
    assert calls == 1  # the secret was read once and not refreshed


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_rejected_awscurrent_then_awspending_logs_in_inside_the_rotation_window(
    make_db_secret: Callable[..., DbSecret],
) -> None:
    """setSecret has run, finishSecret has not: AWSPENDING is what the server accepts."""
    setup = make_db_secret("mariadb")
    rotator = setup.rotator(Strategy.SINGLE_USER)

    async def scenario() -> int:
        cache = setup.async_cache()
        await select_one(setup, cache)()
        rotator.create_secret()
        rotator.set_secret()
        before = cache.stats().api_calls
        await asyncio.gather(*(select_one(setup, cache)() for _ in range(8)))
        return cache.stats().api_calls - before

    assert asyncio.run(scenario()) == 2  # AWSCURRENT re-read + AWSPENDING, for all eight
    rotator.test_secret()
    rotator.finish_secret()


# ------------------------------------------------------------------ leaks


@pytest.fixture(autouse=True)
def _drivers_logs_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(test_leaks_db, "LOGGERS", ASYNC_LOGGERS)


def test_rejected_login_with_any_alphabet_leaks_nothing(
    make_db_secret: Callable[..., DbSecret],
    canaries: Canaries,  # noqa: F811
) -> None:
    """Every label holds a canary the server does not accept, in each alphabet.

    aiomysql encodes the password as latin-1: outside it, a ``UnicodeEncodeError``
    whose ``object`` would be the password.
    """
    setup = make_db_secret("mariadb")
    setup.db.set_password(setup.username, new_password())  # no label knows this one
    cases = AsyncCases(setup, canaries)
    for alphabet in ALPHABETS:
        put(setup, json.dumps(secret_of(setup, password=canaries.new(alphabet))))
        put(setup, json.dumps(secret_of(setup, password=canaries.new(alphabet))), "AWSPENDING")
        put(setup, json.dumps(secret_of(setup, password=canaries.new(alphabet))))
        error = provoke_async(select_one(setup, cases.cache()))
        expected: type[BaseException] = pymysql.err.OperationalError
        if alphabet in NON_LATIN1:
            expected = UnicodeEncodeError
        cases.expect(alphabet, error, expected)
        if expected is pymysql.err.OperationalError and not sc_aiomysql.is_auth_failure(error):
            cases.failures.append(f"{alphabet}: not a 1045")
    cases.done()


def test_mistyped_keyword_leaks_nothing(
    make_db_secret: Callable[..., DbSecret],
    canaries: Canaries,  # noqa: F811
) -> None:
    setup = make_db_secret("mariadb", password=canaries.new())
    error = provoke_async(select_one(setup, setup.async_cache(), timeout=3))
    leaks = canaries.leaks(error)
    assert not leaks, f"a canary is reachable from the error: {leaks}"
    assert isinstance(error, TypeError) and "timeout" in str(error)


def test_error_after_login_leaks_nothing_and_leaves_no_session(
    make_db_secret: Callable[..., DbSecret],
    canaries: Canaries,  # noqa: F811
    mariadb: MariaDBServer,
) -> None:
    """``init_command`` runs after the login; its failure must not strand the connection."""
    setup = make_db_secret("mariadb", password=canaries.new())
    error = provoke_async(
        select_one(setup, setup.async_cache(), init_command="SELECT * FROM no_such_table")
    )
    leaks = canaries.leaks(error)
    assert not leaks, f"a canary is reachable from the error: {leaks}"
    assert isinstance(error, pymysql.err.ProgrammingError), type(error).__name__
    assert _sessions_of(mariadb, setup.username) == 0, "the connection that logged in is open"


def _sessions_of(server: MariaDBServer, user: str) -> int:
    """Sessions of ``user``, once those that are closing have gone (bounded wait, no timing)."""
    deadline = time.monotonic() + 20
    while True:
        conn = server.admin_connect()
        try:
            with conn.cursor() as cursor:
                cursor.execute(
                    "SELECT COUNT(*) FROM information_schema.processlist WHERE user = %s", (user,)
                )
                count = int(cursor.fetchone()[0])
        finally:
            conn.close()
        if count == 0 or time.monotonic() > deadline:
            return count
        time.sleep(0.1)
