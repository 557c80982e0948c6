"""SQLAlchemy's asyncio engine through the rotation-aware connect, on the real servers.

``create_async_engine`` for ``postgresql+asyncpg``, ``postgresql+psycopg`` (async)
and ``mysql+aiomysql``: rotations under 8 and 32 tasks (a new connection per
operation, or a pool with a short recycle), slow handshakes, the engine keeping
what the dialect derives from the URL, and errors -- every one rendered with
``tests.leakcheck.find_leaks``, and SQLAlchemy's pool log records checked too.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from typing import Any

import pymysql
import pytest
import sqlalchemy
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import AsyncAdaptedQueuePool, NullPool, StaticPool

import secretcache.aio
from secretcache import AsyncSecretCache, SecretCache
from secretcache._demo.rotation import Strategy, new_password
from secretcache.db import sqlalchemy as sc_sqlalchemy
from secretcache.testing import FakeSecretsManager

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

DIALECTS = {
    "asyncpg": ("postgres", "postgresql+asyncpg://"),
    "psycopg": ("postgres", "postgresql+psycopg://"),
    "aiomysql": ("mariadb", "mysql+aiomysql://"),
}
TIMEOUTS = {  # each driver's connect-timeout keyword
    "asyncpg": {"timeout": 10},
    "psycopg": {"connect_timeout": 10},
    "aiomysql": {"connect_timeout": 10},
}


def engine_for(
    driver: str,
    setup: DbSecret,
    cache: Any,
    *,
    connect_args: dict[str, Any] | None = None,
    **kw: Any,
) -> AsyncEngine:
    _, url = DIALECTS[driver]
    args = {**TIMEOUTS[driver], **(connect_args or {})}
    return sc_sqlalchemy.create_async_engine(
        setup.secret_id, url, cache=cache, connect_args=args, **kw
    )


def select_one(engine: AsyncEngine) -> Callable[[], Any]:
    async def op() -> None:
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT 1"))).scalar() == 1

    return op


# ------------------------------------------------------------------ rotations


@pytest.mark.parametrize("tasks", [8, pytest.param(32, marks=pytest.mark.slow)])
@pytest.mark.parametrize("strategy", STRATEGIES, ids=lambda s: s.value)
@pytest.mark.parametrize("driver", list(DIALECTS))
def test_new_connection_per_operation_survives_rotations(
    make_db_secret: Callable[..., DbSecret], driver: str, strategy: Strategy, tasks: int
) -> None:
    kind, _ = DIALECTS[driver]
    setup = make_db_secret(kind)

    async def scenario() -> Any:
        cache = setup.async_cache()
        engine = engine_for(driver, setup, cache, poolclass=NullPool)
        try:
            return await run_stress_async(
                select_one(engine),
                setup.rotator(strategy, pause=PAUSE),
                cache,
                workers=tasks,
                rotations=ROTATIONS,
            )
        finally:
            await engine.dispose()

    result = asyncio.run(scenario())
    check_rotation(f"sa+{driver} x{tasks}", kind, strategy, result, tasks)


@pytest.mark.slow
@pytest.mark.parametrize("strategy", STRATEGIES, ids=lambda s: s.value)
@pytest.mark.parametrize("driver", list(DIALECTS))
def test_pool_with_short_recycle_survives_rotations(
    make_db_secret: Callable[..., DbSecret], driver: str, strategy: Strategy
) -> None:
    """Checked-out connections are recycled every 0.2 s and overflow comes and goes."""
    kind, _ = DIALECTS[driver]
    setup = make_db_secret(kind)
    tasks = 8
    connects = 0

    async def scenario() -> Any:
        nonlocal connects
        cache = setup.async_cache()
        engine = engine_for(
            driver, setup, cache, pool_recycle=0.2, pool_pre_ping=True, pool_size=2, max_overflow=4
        )

        @event.listens_for(engine.sync_engine, "connect")
        def count(*_: Any) -> None:
            nonlocal connects
            connects += 1

        try:
            return await run_stress_async(
                select_one(engine),
                setup.rotator(strategy, pause=PAUSE),
                cache,
                workers=tasks,
                rotations=ROTATIONS,
            )
        finally:
            await engine.dispose()

    result = asyncio.run(scenario())
    check_rotation(f"sa+{driver} pool x{tasks}", kind, strategy, result, tasks)
    # pool_recycle and overflow made the pool open new logins throughout the rotations.
    assert connects > 2 * ROTATIONS, f"only {connects} new connections were opened"


@pytest.mark.slow
@pytest.mark.parametrize("strategy", STRATEGIES, ids=lambda s: s.value)
@pytest.mark.parametrize("driver", list(DIALECTS))
def test_slow_handshakes_32_tasks_no_failed_login(
    make_db_secret: Callable[..., DbSecret],
    request: pytest.FixtureRequest,
    driver: str,
    strategy: Strategy,
) -> None:
    kind, _ = DIALECTS[driver]
    server: Any = request.getfixturevalue(kind)
    tasks = 32
    with slow_proxy(server.host, server.port) as proxy:
        setup = make_db_secret(kind, extra={"host": proxy.host, "port": proxy.port})

        async def scenario() -> Any:
            cache = setup.async_cache()
            engine = engine_for(driver, setup, cache, poolclass=NullPool)
            try:
                return await run_stress_async(
                    select_one(engine),
                    setup.rotator(strategy, pause=SLOW_PAUSE),
                    cache,
                    workers=tasks,
                    rotations=ROTATIONS,
                    gap=SLOW_GAP,
                )
            finally:
                await engine.dispose()

        result = asyncio.run(scenario())
    check_rotation(f"sa+{driver} slow x{tasks}", kind, strategy, result, tasks)


# ------------------------------------------------------------- the engine itself


@pytest.mark.parametrize("driver", list(DIALECTS))
def test_engine_logs_in_as_the_secret_and_keeps_the_urls_database_and_connect_args(
    make_db_secret: Callable[..., DbSecret], request: pytest.FixtureRequest, driver: str
) -> None:
    kind, url = DIALECTS[driver]
    setup = make_db_secret(kind)
    other = f"o{uuid.uuid4().hex[:10]}"
    server: Any = request.getfixturevalue(kind)
    if kind == "postgres":
        server.create_database(other, setup.username)
        query = "SELECT current_user, current_database()"
    else:
        server.create_database(other)
        server.grant_all(other, setup.username)
        query = "SELECT SUBSTRING_INDEX(CURRENT_USER(), '@', 1), DATABASE()"

    async def scenario() -> list[tuple[Any, ...]]:
        cache = setup.async_cache()
        rows = []
        for target in (url, f"{url}/{other}"):
            engine = sc_sqlalchemy.create_async_engine(
                setup.secret_id, target, cache=cache, connect_args=TIMEOUTS[driver]
            )
            try:
                async with engine.connect() as conn:
                    rows.append(tuple((await conn.execute(text(query))).one()))
            finally:
                await engine.dispose()
        return rows

    assert asyncio.run(scenario()) == [(setup.username, setup.dbname), (setup.username, other)]


def test_mysql_engine_keeps_the_dialects_found_rows_flag(
    make_db_secret: Callable[..., DbSecret],
) -> None:
    """The dialect asks for CLIENT.FOUND_ROWS (``rowcount`` counts matched rows, which
    the ORM's version checks rely on). ``async_creator=`` would drop it; the engine's
    connect keeps what the dialect derives from the URL."""
    setup = make_db_secret("mariadb")

    async def scenario() -> int:
        engine = engine_for("aiomysql", setup, setup.async_cache())
        try:
            async with engine.begin() as conn:
                await conn.execute(text("CREATE TABLE t (id INT PRIMARY KEY, v INT)"))
                await conn.execute(text("INSERT INTO t VALUES (1, 5)"))
                unchanged = await conn.execute(text("UPDATE t SET v = 5 WHERE id = 1"))
                return int(unchanged.rowcount)
        finally:
            await engine.dispose()

    assert asyncio.run(scenario()) == 1


@pytest.mark.parametrize("driver", list(DIALECTS))
def test_window_connects_share_one_walk(
    make_db_secret: Callable[..., DbSecret], driver: str
) -> None:
    """setSecret ran, finishSecret not yet: 8 concurrent checkouts cost two reads in all."""
    kind, _ = DIALECTS[driver]
    setup = make_db_secret(kind)
    rotator = setup.rotator(Strategy.SINGLE_USER)

    async def scenario() -> int:
        cache = setup.async_cache()
        engine = engine_for(driver, setup, cache, poolclass=NullPool)
        try:
            await select_one(engine)()
            rotator.create_secret()
            rotator.set_secret()
            before = cache.stats().api_calls
            await asyncio.gather(*(select_one(engine)() for _ in range(8)))
            return cache.stats().api_calls - before
        finally:
            await engine.dispose()

    assert asyncio.run(scenario()) == 2  # AWSCURRENT re-read + AWSPENDING
    rotator.test_secret()
    rotator.finish_secret()


@pytest.mark.parametrize("driver", list(DIALECTS))
def test_a_server_that_is_not_there_is_raised_at_once_without_a_refresh(
    make_db_secret: Callable[..., DbSecret], driver: str
) -> None:
    """Not a rejected login: SQLAlchemy's error for it, after the one read of AWSCURRENT."""
    kind, url = DIALECTS[driver]
    setup = make_db_secret(kind)
    closed = _closed_port()

    async def scenario() -> tuple[BaseException, int]:
        cache = setup.async_cache()
        engine = sc_sqlalchemy.create_async_engine(
            setup.secret_id, f"{url}127.0.0.1:{closed}", cache=cache, connect_args=TIMEOUTS[driver]
        )
        try:
            with pytest.raises(Exception) as caught:
                await select_one(engine)()
        finally:
            await engine.dispose()
        return caught.value, cache.stats().api_calls

    error, calls = asyncio.run(scenario())
    assert calls == 1  # AWSCURRENT, read once, not refreshed
    if driver == "asyncpg":  # asyncpg raises the OS error itself; SQLAlchemy passes it on
        assert isinstance(error, OSError), type(error).__name__
    else:
        assert isinstance(error, sqlalchemy.exc.OperationalError), type(error).__name__
        assert not _is_auth_failure(driver, error)


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_default_cache_is_looked_up_at_the_first_connect_and_a_blocking_one_is_accepted(
    make_db_secret: Callable[..., DbSecret], monkeypatch: pytest.MonkeyPatch
) -> None:
    setup = make_db_secret("postgres")
    monkeypatch.setattr(secretcache.aio, "_default_async", None)
    by_default = sc_sqlalchemy.create_async_engine(setup.secret_id, "postgresql+asyncpg://")
    default = AsyncSecretCache(client=setup.moto.client())
    monkeypatch.setattr(secretcache.aio, "_default_async", default)  # after creation
    blocking = SecretCache(client=setup.moto.client())
    with_blocking = sc_sqlalchemy.create_async_engine(
        setup.secret_id, "postgresql+asyncpg://", cache=blocking
    )

    async def scenario() -> None:
        for engine in (by_default, with_blocking):
            try:
                await select_one(engine)()
            finally:
                await engine.dispose()

    asyncio.run(scenario())
    assert default.stats().api_calls == 1
    assert blocking.stats().api_calls == 1


def test_refuses_what_would_bypass_or_replace_the_secret() -> None:
    cache = AsyncSecretCache(client=FakeSecretsManager())
    url = "postgresql+asyncpg://"
    for bad_url in ("postgresql+asyncpg://app:pw@db/app", "postgresql+asyncpg://app@db/app"):
        with pytest.raises(ValueError, match="URL"):
            sc_sqlalchemy.create_async_engine("s", bad_url, cache=cache)
    for bypass in ("creator", "async_creator"):
        with pytest.raises(TypeError, match=bypass):
            sc_sqlalchemy.create_async_engine("s", url, cache=cache, **{bypass: lambda: None})
    for key in ("user", "password"):
        with pytest.raises(TypeError, match=key):
            sc_sqlalchemy.create_async_engine("s", url, cache=cache, connect_args={key: "x"})
    with pytest.raises(TypeError, match="cache"):
        sc_sqlalchemy.create_async_engine("s", url, cache=object())  # type: ignore[arg-type]
    for other in ("mysql+asyncmy://", "mysql://", "mysql+pymysql://", "sqlite+aiosqlite://"):
        with pytest.raises(ValueError, match="asyncpg, psycopg, aiomysql"):
            sc_sqlalchemy.create_async_engine("s", other, cache=cache)
    # psycopg is SQLAlchemy 2.1's default PostgreSQL driver; psycopg_async names its async mode.
    for accepted in ("postgresql://", "postgresql+psycopg_async://"):
        sc_sqlalchemy.create_async_engine("s", accepted, cache=cache)  # connects only when used
    assert cache.stats().api_calls == 0


# ------------------------------------------------------------------ leaks


@pytest.fixture(autouse=True)
def _drivers_logs_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(test_leaks_db, "LOGGERS", ASYNC_LOGGERS)


def login_error(driver: str) -> type[BaseException]:
    """What SQLAlchemy raises for a rejected login: asyncpg's is a plain DBAPIError."""
    return sqlalchemy.exc.DBAPIError if driver == "asyncpg" else sqlalchemy.exc.OperationalError


def connect_once(driver: str, setup: DbSecret, cache: Any, poolclass: Any = None, **kw: Any) -> Any:
    extra: dict[str, Any] = {} if poolclass is None else {"poolclass": poolclass}

    async def attempt() -> None:
        engine = engine_for(driver, setup, cache, connect_args=kw, **extra)
        try:
            await select_one(engine)()
        finally:
            await engine.dispose()

    return attempt


LEAK_ALPHABETS = {
    # Each rendering of an error from SQLAlchemy's psycopg adapter walks psycopg's whole
    # namespace (the adapter copies it): seconds per error. The latin-1 boundary that
    # matters for MySQL does not exist for libpq, so psycopg gets ASCII here and a
    # non-latin-1 password in the pool-mode test below.
    "asyncpg": tuple(ALPHABETS),
    "psycopg": ("ascii",),
    "aiomysql": tuple(ALPHABETS),
}


@pytest.mark.parametrize("driver", list(DIALECTS))
def test_rejected_login_with_any_alphabet_leaks_nothing(
    make_db_secret: Callable[..., DbSecret],
    canaries: Canaries,  # noqa: F811
    driver: str,
) -> None:
    """Every label holds a canary the server does not accept, in each alphabet.

    aiomysql, like PyMySQL, cannot encode a password outside latin-1: a
    ``UnicodeEncodeError`` whose ``object`` would be the password.
    """
    kind, _ = DIALECTS[driver]
    setup = make_db_secret(kind)
    setup.db.set_password(setup.username, new_password())  # no label knows this one
    cases = AsyncCases(setup, canaries)
    for alphabet in LEAK_ALPHABETS[driver]:
        put(setup, json.dumps(secret_of(setup, password=canaries.new(alphabet))))
        put(setup, json.dumps(secret_of(setup, password=canaries.new(alphabet))), "AWSPENDING")
        put(setup, json.dumps(secret_of(setup, password=canaries.new(alphabet))))
        error = provoke_async(connect_once(driver, setup, cases.cache()))
        expected = login_error(driver)
        if kind == "mariadb" and alphabet in NON_LATIN1:
            expected = UnicodeEncodeError
        cases.expect(alphabet, error, expected)
        if expected is not UnicodeEncodeError and not _is_auth_failure(driver, error):
            cases.failures.append(f"{alphabet}: the wrapped driver error is not a rejected login")
    cases.done()


def _is_auth_failure(driver: str, error: BaseException) -> bool:
    """The driver error inside SQLAlchemy's, as the driver module recognises it."""
    orig = getattr(error, "orig", None)
    if driver == "asyncpg":
        from secretcache.db import asyncpg as sc_asyncpg

        return orig is not None and sc_asyncpg.is_auth_failure(orig.__cause__)
    if driver == "psycopg":
        from secretcache.db import psycopg as sc_psycopg

        return orig is not None and sc_psycopg.is_auth_failure(orig)
    return isinstance(orig, pymysql.err.OperationalError) and orig.args[0] == 1045


POOLS: dict[str, Any] = {
    "AsyncAdaptedQueuePool": AsyncAdaptedQueuePool,
    "NullPool": NullPool,
    "StaticPool": StaticPool,
}
POOL_CASES = {  # (alphabets, pools) per driver; psycopg's are costly to render (see above)
    "asyncpg": (("ascii", "cjk"), tuple(POOLS)),
    "psycopg": (("cjk",), ("AsyncAdaptedQueuePool", "NullPool")),
    "aiomysql": (("ascii", "cjk"), tuple(POOLS)),
}


@pytest.mark.parametrize("driver", list(DIALECTS))
def test_every_pool_mode_and_its_debug_log_leak_nothing(
    make_db_secret: Callable[..., DbSecret],
    canaries: Canaries,  # noqa: F811
    driver: str,
) -> None:
    kind, _ = DIALECTS[driver]
    setup = make_db_secret(kind)
    setup.db.set_password(setup.username, new_password())
    cases = AsyncCases(setup, canaries)
    alphabets, pools = POOL_CASES[driver]
    for alphabet in alphabets:
        put(setup, json.dumps(secret_of(setup, password=canaries.new(alphabet))))
        for pool in pools:
            poolclass = POOLS[pool]
            logged = len(canaries.records)
            error = provoke_async(connect_once(driver, setup, cases.cache(), poolclass=poolclass))
            expected = login_error(driver)
            if kind == "mariadb" and alphabet in NON_LATIN1:
                expected = UnicodeEncodeError
            case = f"{pool}, {alphabet}"
            cases.expect(case, error, expected)
            pool_errors = [
                r
                for r in canaries.records[logged:]
                if r.getMessage().startswith("Error on connect")
            ]
            if not pool_errors:
                cases.failures.append(f"{case}: the pool logged no failed connect to check")
    cases.done()


WRONG_KEYWORD = {
    # asyncpg.connect and aiomysql.connect raise TypeError; libpq: "invalid connection option".
    "asyncpg": ("connect_timeout", TypeError),
    "psycopg": ("timeout", sqlalchemy.exc.ProgrammingError),
    "aiomysql": ("timeout", TypeError),
}


@pytest.mark.parametrize("driver", list(DIALECTS))
def test_mistyped_keyword_leaks_nothing(
    make_db_secret: Callable[..., DbSecret],
    canaries: Canaries,  # noqa: F811
    driver: str,
) -> None:
    """The password is right here: only the driver's frames could hold it."""
    kind, _ = DIALECTS[driver]
    setup = make_db_secret(kind, password=canaries.new())
    keyword, expected = WRONG_KEYWORD[driver]
    cases = AsyncCases(setup, canaries)
    error = provoke_async(connect_once(driver, setup, cases.cache(), **{keyword: 3}))
    cases.expect(f"{keyword}=", error, expected)
    cases.done()
    assert keyword in str(error)


@pytest.mark.parametrize("driver", list(DIALECTS))
def test_secret_that_is_not_json_raises_decode_error_holding_nothing(
    make_db_secret: Callable[..., DbSecret],
    canaries: Canaries,  # noqa: F811
    driver: str,
) -> None:
    from secretcache import SecretDecodeError

    kind, _ = DIALECTS[driver]
    setup = make_db_secret(kind)
    put(setup, '{"username": "u", "password": "' + canaries.new() + '"')
    cases = AsyncCases(setup, canaries)
    error = provoke_async(connect_once(driver, setup, cases.cache()))
    cases.expect("not JSON", error, SecretDecodeError)
    cases.done()
