"""No password reachable from any error an asyncio database adapter raises.

The approach of ``test_leaks_db`` (whose canaries, cases and secret helpers are
used here) for ``asyncpg.connect``, asyncpg's pool, ``psycopg.AsyncConnection``
and psycopg_pool's ``AsyncConnectionPool``: every error is rendered with
``tests.leakcheck.find_leaks`` (traceback with locals, pickle, chain, args,
attributes, notes), and every log record of the library and the drivers'
pools is searched. Failure messages name where a canary was found, never the
canary.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import asyncpg
import psycopg
import psycopg_pool
import pytest

from secretcache import AsyncSecretCache, SecretDecodeError
from secretcache._demo.rotation import new_password
from secretcache.db import asyncpg as sc_asyncpg
from secretcache.db import psycopg as sc_psycopg

from .conftest import DbSecret
from .test_leaks_db import (
    ALPHABETS,
    MALFORMED,
    Canaries,
    Cases,
    _chain,
    _Keep,
    canaries,  # noqa: F401 - the fixture
    check,
    provoke,
    put,
    secret_of,
)

pytestmark = pytest.mark.db

ADAPTERS = ["asyncpg", "asyncpg-pool", "psycopg-async"]
LOGIN_ERRORS: dict[str, type[BaseException]] = {
    "asyncpg": asyncpg.InvalidPasswordError,
    "asyncpg-pool": asyncpg.InvalidPasswordError,
    "psycopg-async": psycopg.OperationalError,
}
DRIVER_LOGGERS = ("psycopg", "psycopg.pool", "asyncpg")


@pytest.fixture
def driver_logs(canaries: Canaries) -> Iterator[list[logging.LogRecord]]:  # noqa: F811
    """What the drivers and psycopg_pool log meanwhile (DEBUG and up), checked for canaries.

    ``canaries`` checks the library's own loggers; these do not propagate either,
    so pytest never prints them.
    """
    keep = _Keep()
    saved = []
    for name in DRIVER_LOGGERS:
        logger = logging.getLogger(name)
        saved.append((logger, logger.level, logger.propagate))
        logger.setLevel(logging.DEBUG)
        logger.propagate = False
        logger.addHandler(keep)
    try:
        yield keep.records
    finally:
        for logger, level, propagate in saved:
            logger.removeHandler(keep)
            logger.setLevel(level)
            logger.propagate = propagate
    leaks = canaries.log_leaks(keep.records)
    assert not leaks, f"a canary is reachable from the drivers' log records: {leaks}"


class AsyncCases(Cases):
    """``Cases`` whose fresh cache per case is an ``AsyncSecretCache``."""

    def cache(self) -> AsyncSecretCache:  # type: ignore[override]
        return AsyncSecretCache(client=self.client)


async def _connect_once(adapter: str, setup: DbSecret, cache: AsyncSecretCache, **kw: Any) -> None:
    if adapter == "asyncpg":
        conn = await sc_asyncpg.connect(setup.secret_id, cache=cache, timeout=5, **kw)
        await conn.close()
    elif adapter == "asyncpg-pool":
        pool = await sc_asyncpg.create_pool(
            setup.secret_id, cache=cache, min_size=1, max_size=1, timeout=5, **kw
        )
        await pool.close()
    else:
        aconn = await sc_psycopg.connect_async(
            setup.secret_id, cache=cache, connect_timeout=5, **kw
        )
        await aconn.close()


def connect_once(adapter: str, setup: DbSecret, cache: AsyncSecretCache, **kw: Any) -> None:
    """One login through the adapter on a loop of its own (any error propagates)."""
    asyncio.run(_connect_once(adapter, setup, cache, **kw))


# ------------------------------------------------------- passwords of every kind


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_rejected_login_with_any_alphabet_leaks_nothing(
    make_db_secret: Callable[..., DbSecret],
    canaries: Canaries,  # noqa: F811
    driver_logs: list[logging.LogRecord],
    adapter: str,
) -> None:
    """Every label holds a canary the server does not accept, in each alphabet."""
    setup = make_db_secret("postgres")
    setup.db.set_password(setup.username, new_password())  # no label knows this one
    cases = AsyncCases(setup, canaries)
    for alphabet in ALPHABETS:
        put(setup, json.dumps(secret_of(setup, password=canaries.new(alphabet))))
        put(setup, json.dumps(secret_of(setup, password=canaries.new(alphabet))), "AWSPENDING")
        put(setup, json.dumps(secret_of(setup, password=canaries.new(alphabet))))
        error = provoke(lambda: connect_once(adapter, setup, cases.cache()))
        cases.expect(alphabet, error, LOGIN_ERRORS[adapter])
    cases.done()


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_password_with_nul_or_lone_surrogate_is_refused_by_name(
    make_db_secret: Callable[..., DbSecret],
    canaries: Canaries,  # noqa: F811
    adapter: str,
) -> None:
    setup = make_db_secret("postgres")
    cases = AsyncCases(setup, canaries)
    for bad, tail in (("NUL", "\0tail"), ("lone surrogate", "\ud800")):
        put(setup, json.dumps(secret_of(setup, password=canaries.new() + tail)))
        error = provoke(lambda: connect_once(adapter, setup, cases.cache()))
        cases.expect(bad, error, SecretDecodeError)
    cases.done()


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_malformed_awscurrent_raises_decode_error_holding_nothing(
    make_db_secret: Callable[..., DbSecret],
    canaries: Canaries,  # noqa: F811
    adapter: str,
) -> None:
    setup = make_db_secret("postgres")
    cases = AsyncCases(setup, canaries)
    for shape, document in MALFORMED.items():
        put(setup, document(canaries.new()))
        error = provoke(lambda: connect_once(adapter, setup, cases.cache()))
        cases.expect(shape, error, SecretDecodeError)
    cases.done()


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_wrong_awscurrent_and_malformed_awspending_chain_holds_nothing(
    make_db_secret: Callable[..., DbSecret],
    canaries: Canaries,  # noqa: F811
    adapter: str,
) -> None:
    setup = make_db_secret("postgres")
    setup.db.set_password(setup.username, new_password())
    cases = AsyncCases(setup, canaries)
    for shape in ("not JSON", "no username", "port 1e400"):
        put(setup, json.dumps(secret_of(setup, password=canaries.new("euro"))))
        put(setup, MALFORMED[shape](canaries.new()), "AWSPENDING")
        error = provoke(lambda: connect_once(adapter, setup, cases.cache()))
        cases.expect(shape, error, LOGIN_ERRORS[adapter])
        if not any(isinstance(item, SecretDecodeError) for item in _chain(error)):
            cases.failures.append(f"{shape}: the AWSPENDING decode error is not chained")
    cases.done()


# ---------------------------------------------------- foreign errors while connecting


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_mistyped_keyword_leaks_nothing(
    make_db_secret: Callable[..., DbSecret],
    canaries: Canaries,  # noqa: F811
    adapter: str,
) -> None:
    setup = make_db_secret("postgres", password=canaries.new("cjk"))
    if adapter == "psycopg-async":
        keyword, expected = "timeout", psycopg.ProgrammingError  # libpq: invalid option
    else:
        keyword, expected = "connect_timeout", TypeError  # asyncpg: unexpected keyword
    cache = AsyncSecretCache(client=setup.moto.client())
    error = provoke(lambda: connect_once(adapter, setup, cache, **{keyword: 3}))
    check(canaries, error, expected)
    assert keyword in str(error)


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_missing_tls_file_leaks_nothing(
    make_db_secret: Callable[..., DbSecret],
    canaries: Canaries,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    adapter: str,
) -> None:
    setup = make_db_secret("postgres", password=canaries.new("emoji"))
    missing = f"/nonexistent-{uuid.uuid4().hex}/ca.pem"
    options: dict[str, Any]
    if adapter == "psycopg-async":
        options = {"sslmode": "verify-ca", "sslrootcert": missing}
        expected: type[BaseException] = psycopg.OperationalError
    else:
        monkeypatch.setenv("PGSSLROOTCERT", missing)  # asyncpg reads libpq's variable
        options = {"ssl": "verify-ca"}
        expected = FileNotFoundError
    cache = AsyncSecretCache(client=setup.moto.client())
    error = provoke(lambda: connect_once(adapter, setup, cache, **options))
    check(canaries, error, expected)


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_unencodable_dbname_leaks_nothing(
    make_db_secret: Callable[..., DbSecret],
    canaries: Canaries,  # noqa: F811
    adapter: str,
) -> None:
    """libpq's ``UnicodeEncodeError.object`` is then the whole conninfo, password included;
    asyncpg fails inside its protocol with the connect keywords in its frames."""
    setup = make_db_secret("postgres")
    password = canaries.new()
    setup.db.set_password(setup.username, password)
    put(setup, json.dumps(secret_of(setup, password=password, dbname="db\ud800")))
    cache = AsyncSecretCache(client=setup.moto.client())
    error = provoke(lambda: connect_once(adapter, setup, cache))
    check(canaries, error, BaseException)


def test_error_after_a_successful_async_login_closes_it_and_leaks_nothing(
    make_db_secret: Callable[..., DbSecret],
    canaries: Canaries,  # noqa: F811
) -> None:
    """psycopg logs in, then applies ``context=``: the AttributeError strands the connection."""
    setup = make_db_secret("postgres", password=canaries.new("latin1"))
    cache = AsyncSecretCache(client=setup.moto.client())
    error = provoke(lambda: connect_once("psycopg-async", setup, cache, context=42))
    check(canaries, error, AttributeError)
    assert setup.sessions() == 0, "the connection that logged in was left open"


# ------------------------------------------------------------------ psycopg_pool


def test_async_pool_logs_rejected_logins_without_the_password(
    make_db_secret: Callable[..., DbSecret],
    canaries: Canaries,  # noqa: F811
    driver_logs: list[logging.LogRecord],
) -> None:
    """psycopg_pool logs each failed connect (``error connecting in ...: <error>``) and
    gives up with ``PoolTimeout``: neither holds a canary."""
    setup = make_db_secret("postgres")
    setup.db.set_password(setup.username, new_password())
    put(setup, json.dumps(secret_of(setup, password=canaries.new("euro"))))
    put(setup, MALFORMED["not JSON"](canaries.new()), "AWSPENDING")

    async def scenario() -> BaseException:
        cache = AsyncSecretCache(client=setup.moto.client())
        async with sc_psycopg.async_connection_pool(
            setup.secret_id, cache=cache, min_size=1, kwargs={"connect_timeout": 5}
        ) as pool:
            try:
                await pool.wait(timeout=1.0)
            except BaseException as exc:
                return exc
        raise AssertionError("the pool filled up with a rejected password")

    error = asyncio.run(scenario())
    check(canaries, error, psycopg_pool.PoolTimeout)
    logged = [r for r in driver_logs if r.name == "psycopg.pool" and "error connecting" in r.msg]
    assert logged, "the pool logged no failed connect to check"
