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
import uuid
from collections.abc import Callable
from typing import Any

import asyncpg
import psycopg
import psycopg_pool
import pytest

from secretcache import AsyncSecretCache, SecretDecodeError
from secretcache._demo.rotation import new_password
from secretcache.db import asyncpg as sc_asyncpg
from secretcache.db import psycopg as sc_psycopg

from . import test_leaks_db
from .conftest import DbSecret
from .test_leaks_db import (
    ALPHABETS,
    MALFORMED,
    Canaries,
    Cases,
    _chain,
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
CURRENT, PENDING = "AWSCURRENT", "AWSPENDING"


@pytest.fixture(autouse=True)
def _drivers_logs_too(monkeypatch: pytest.MonkeyPatch) -> None:
    """``canaries`` also watches the drivers' loggers (``psycopg`` covers psycopg_pool's).

    That fixture reads ``LOGGERS`` when it starts; this one, autouse, starts first.
    """
    monkeypatch.setattr(test_leaks_db, "LOGGERS", (*test_leaks_db.LOGGERS, "asyncpg", "psycopg"))


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


Case = tuple[str, list[tuple[str, str]], type[BaseException]]
"""(name, the SecretStrings to store under their labels first, the error expected)."""


def run_cases(
    adapter: str,
    setup: DbSecret,
    canaries: Canaries,  # noqa: F811
    cases: list[Case],
    *,
    chained: type[BaseException] | None = None,
) -> None:
    """Each case on a fresh cache; failures named by case, never quoting a canary."""
    checker = AsyncCases(setup, canaries)
    for name, documents, expected in cases:
        for document, stage in documents:
            put(setup, document, stage)
        error = provoke(lambda: connect_once(adapter, setup, checker.cache()))
        checker.expect(name, error, expected)
        if chained is not None and not any(isinstance(i, chained) for i in _chain(error)):
            checker.failures.append(f"{name}: no {chained.__name__} is chained")
    checker.done()


def document(setup: DbSecret, password: str, **changes: Any) -> str:
    return json.dumps(secret_of(setup, password=password, **changes))


# ------------------------------------------------------- passwords of every kind


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_rejected_login_with_any_alphabet_leaks_nothing(
    make_db_secret: Callable[..., DbSecret],
    canaries: Canaries,  # noqa: F811
    adapter: str,
) -> None:
    """Every label holds a canary the server does not accept, in each alphabet."""
    setup = make_db_secret("postgres")
    setup.db.set_password(setup.username, new_password())  # no label knows this one
    new = canaries.new
    cases: list[Case] = [
        (
            alphabet,
            [
                (document(setup, new(alphabet)), CURRENT),
                (document(setup, new(alphabet)), PENDING),
                (document(setup, new(alphabet)), CURRENT),  # the first becomes AWSPREVIOUS
            ],
            LOGIN_ERRORS[adapter],
        )
        for alphabet in ALPHABETS
    ]
    run_cases(adapter, setup, canaries, cases)


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_unusable_or_malformed_awscurrent_raises_decode_error_holding_nothing(
    make_db_secret: Callable[..., DbSecret],
    canaries: Canaries,  # noqa: F811
    adapter: str,
) -> None:
    """A password with NUL or a lone surrogate, and every malformed shape."""
    setup = make_db_secret("postgres")
    cases: list[Case] = [
        (bad, [(document(setup, canaries.new() + tail), CURRENT)], SecretDecodeError)
        for bad, tail in (("NUL", "\0tail"), ("lone surrogate", "\ud800"))
    ]
    cases += [
        (shape, [(malformed(canaries.new()), CURRENT)], SecretDecodeError)
        for shape, malformed in MALFORMED.items()
    ]
    run_cases(adapter, setup, canaries, cases)


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_wrong_awscurrent_and_malformed_awspending_chain_holds_nothing(
    make_db_secret: Callable[..., DbSecret],
    canaries: Canaries,  # noqa: F811
    adapter: str,
) -> None:
    setup = make_db_secret("postgres")
    setup.db.set_password(setup.username, new_password())
    cases: list[Case] = [
        (
            shape,
            [
                (document(setup, canaries.new("euro")), CURRENT),
                (MALFORMED[shape](canaries.new()), PENDING),
            ],
            LOGIN_ERRORS[adapter],
        )
        for shape in ("not JSON", "no username", "port 1e400")
    ]
    run_cases(adapter, setup, canaries, cases, chained=SecretDecodeError)


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
    records = canaries.records
    logged = [r for r in records if r.name == "psycopg.pool" and "error connecting" in r.msg]
    assert logged, "the pool logged no failed connect to check"
