"""Async workers connect non-stop while the password rotates: zero failed operations.

Every asyncio adapter of PostgreSQL -- ``asyncpg.connect``, an asyncpg pool
(``max_queries`` makes it open a new connection every few checkouts),
``psycopg.AsyncConnection``, psycopg_pool's ``AsyncConnectionPool`` (and the
blocking ``ConnectionPool`` with threads; both with a ``max_lifetime`` of a
fraction of a second) -- with 8 and 32 concurrent tasks, under both rotation
strategies, with fast handshakes and behind the delaying proxy. The API calls of
all workers together stay within the bound of the blocking adapters.

Also here: cancelling a connect in flight raises ``CancelledError`` (holding no
password) and leaves no session open, and a walk it owned is handed on.
"""

from __future__ import annotations

import asyncio
import gc
import json
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg
import psycopg
import pytest

from secretcache import AsyncSecretCache, SecretCache
from secretcache._demo.postgres import PostgresServer
from secretcache._demo.rotation import Strategy, new_password
from secretcache.db import asyncpg as sc_asyncpg
from secretcache.db import psycopg as sc_psycopg
from secretcache.db._walk import state_for
from tests.leakcheck import find_leaks

from .conftest import DbSecret
from .slowproxy import slow_proxy
from .stress import StressResult, record, run_stress, run_stress_async

pytestmark = pytest.mark.db

ROTATIONS = 2
"""Two, so the second meets what the first left (AWSPREVIOUS, a remembered credential);
3 x 28 cases would outgrow the file's time budget on two cores."""
PAUSE, GAP = 0.4, 0.25
"""Seconds between setSecret and finishSecret, and of calm around the rotations: those
of test_rotation_workers."""
SLOW_PAUSE, SLOW_GAP = 0.6, 0.4
"""Behind the delaying proxy: those of test_rotation_slow_connects. Rotations must be
further apart than one label walk lasts (three handshakes of up to 0.5 s, on a loop
shared with 31 other tasks): a walk whose last login is judged after the *next*
setSecret fails, and so do the connects that waited for it (see the report of
issue 11). Real rotations are hours apart."""
MAX_API_CALLS_PER_ROTATION = 4
"""The bound of the blocking adapters under many workers (test_rotation_slow_connects):
two calls per rotation as a rule, one or two more when a walk straddles two steps;
a connect that re-read the labels for itself would add one per task (8 or 32)."""

STRATEGIES = [Strategy.SINGLE_USER, Strategy.ALTERNATING_USERS]
ASYNC_ADAPTERS = ["asyncpg", "asyncpg-pool", "psycopg-async", "psycopg-async-pool"]
ADAPTERS = [*ASYNC_ADAPTERS, "psycopg-pool"]
"""``psycopg-pool`` is the blocking ConnectionPool with threads; its logins are the
blocking psycopg connect, which test_rotation_slow_connects already puts behind the
proxy, so it is not repeated there."""

Operation = Callable[[], Awaitable[None]]

PSYCOPG_POOL: dict[str, Any] = {
    "min_size": 2,
    "max_size": 4,
    "max_lifetime": 0.2,  # a connection is replaced (a new login) every 0.2 s or so
    "kwargs": {"connect_timeout": 20},
}
Timing = tuple[float, float]  # (pause, gap)


@dataclass
class Probe:
    """One SELECT 1, and what a pool did meanwhile (connections opened, attempts failed)."""

    op: Operation
    opened: Callable[[], int] = lambda: -1
    pool_errors: Callable[[], int] = lambda: 0


# ------------------------------------------------------------------ operations


@asynccontextmanager
async def async_operation(
    adapter: str, setup: DbSecret, cache: AsyncSecretCache | SecretCache
) -> AsyncIterator[Probe]:
    """The operation of ``adapter``; pools are closed on exit."""
    secret_id = setup.secret_id
    if adapter == "asyncpg":

        async def op() -> None:
            conn = await sc_asyncpg.connect(secret_id, cache=cache, timeout=20)
            try:
                assert await conn.fetchval("SELECT 1") == 1
            finally:
                await conn.close()

        yield Probe(op)
    elif adapter == "asyncpg-pool":
        # A connection is replaced after 3 queries (the reset on release counts as
        # one): the acquiring task itself opens the new one, so a failed login
        # would be that task's failure.
        opened = 0

        async def count(_: Any) -> None:
            nonlocal opened
            opened += 1

        pool = await sc_asyncpg.create_pool(
            secret_id, cache=cache, min_size=1, max_size=4, max_queries=3, init=count, timeout=20
        )

        async def pooled() -> None:
            async with pool.acquire() as conn:
                assert await conn.fetchval("SELECT 1") == 1

        try:
            yield Probe(pooled, opened=lambda: opened)
        finally:
            await pool.close()
    elif adapter == "psycopg-async":

        async def op_psycopg() -> None:
            conn = await sc_psycopg.connect_async(secret_id, cache=cache, connect_timeout=20)
            try:
                cursor = await conn.execute("SELECT 1")
                assert await cursor.fetchone() == (1,)
            finally:
                await conn.close()

        yield Probe(op_psycopg)
    elif adapter == "psycopg-async-pool":
        async with sc_psycopg.async_connection_pool(
            secret_id, cache=cache, **PSYCOPG_POOL
        ) as async_pool:

            async def from_pool() -> None:
                async with async_pool.connection() as conn:
                    cursor = await conn.execute("SELECT 1")
                    assert await cursor.fetchone() == (1,)

            yield Probe(
                from_pool,
                opened=lambda: async_pool.get_stats().get("connections_num", 0),
                pool_errors=lambda: async_pool.get_stats().get("connections_errors", 0),
            )
    else:  # pragma: no cover
        raise ValueError(adapter)


def pooled_threads(
    setup: DbSecret, cache: SecretCache, workers: int, strategy: Strategy, timing: Timing
) -> tuple[StressResult, dict[str, int]]:
    """The blocking ``ConnectionPool``: ``workers`` threads checking out, ``max_lifetime`` short."""
    with sc_psycopg.connection_pool(setup.secret_id, cache=cache, **PSYCOPG_POOL) as pool:

        def op() -> None:
            with pool.connection() as conn:
                assert conn.execute("SELECT 1").fetchone() == (1,)

        result = run_stress(
            op,
            setup.rotator(strategy, pause=timing[0]),
            cache,
            workers=workers,
            rotations=ROTATIONS,
            gap=timing[1],
        )
        stats = pool.get_stats()
    return result, stats


def stress(
    adapter: str, setup: DbSecret, strategy: Strategy, workers: int, timing: Timing
) -> tuple[StressResult, int, int]:
    """Run the workers: (the result, connections a pool opened, its failed attempts)."""
    if adapter == "psycopg-pool":
        result, stats = pooled_threads(setup, setup.cache(), workers, strategy, timing)
        return result, stats.get("connections_num", 0), stats.get("connections_errors", 0)

    async def scenario() -> tuple[StressResult, int, int]:
        cache = setup.async_cache()
        async with async_operation(adapter, setup, cache) as probe:
            result = await run_stress_async(
                probe.op,
                setup.rotator(strategy, pause=timing[0]),
                cache,
                workers=workers,
                rotations=ROTATIONS,
                gap=timing[1],
            )
            return result, probe.opened(), probe.pool_errors()

    return asyncio.run(scenario())


def check(
    name: str, strategy: Strategy, workers: int, result: StressResult, opened: int, errors: int
) -> None:
    record(name, "postgres", strategy.value, result)
    summary = f"{result.summary()} pool_opened={opened} pool_connect_errors={errors}"
    assert result.rotations == ROTATIONS, summary
    assert result.ops > workers, summary
    assert result.failed == 0, summary
    assert errors == 0, summary
    assert result.api_calls <= MAX_API_CALLS_PER_ROTATION * ROTATIONS, summary
    if opened >= 0:  # a pool: it kept opening connections through the rotations
        assert opened > 2 * ROTATIONS, summary


# ----------------------------------------------------------------- the workers


@pytest.mark.parametrize("workers", [8, 32])
@pytest.mark.parametrize("strategy", STRATEGIES, ids=lambda s: s.value)
@pytest.mark.parametrize("adapter", ADAPTERS)
def test_async_workers_survive_rotations(
    make_db_secret: Callable[..., DbSecret], adapter: str, strategy: Strategy, workers: int
) -> None:
    setup = make_db_secret("postgres")
    result, opened, errors = stress(adapter, setup, strategy, workers, (PAUSE, GAP))
    check(f"{adapter} x{workers}", strategy, workers, result, opened, errors)


@pytest.mark.slow
@pytest.mark.parametrize("strategy", STRATEGIES, ids=lambda s: s.value)
@pytest.mark.parametrize("adapter", ASYNC_ADAPTERS)
def test_async_workers_with_slow_handshakes_survive_rotations(
    make_db_secret: Callable[..., DbSecret],
    postgres: PostgresServer,
    adapter: str,
    strategy: Strategy,
) -> None:
    """Every handshake held 50-250 ms twice: logins begin before setSecret, are judged after."""
    workers = 32
    with slow_proxy(postgres.host, postgres.port) as proxy:
        setup = make_db_secret("postgres", extra={"host": proxy.host, "port": proxy.port})
        result, opened, errors = stress(adapter, setup, strategy, workers, (SLOW_PAUSE, SLOW_GAP))
    check(f"{adapter} slow x{workers}", strategy, workers, result, opened, errors)


def test_an_async_adapter_reads_through_a_blocking_cache_without_blocking_the_loop(
    make_db_secret: Callable[..., DbSecret],
) -> None:
    """``cache=`` a ``SecretCache``: misses and refreshes in a thread, one walk shared."""
    setup = make_db_secret("postgres")
    cache = setup.cache()

    async def scenario() -> StressResult:
        async with async_operation("asyncpg", setup, cache) as probe:
            return await run_stress_async(
                probe.op,
                setup.rotator(Strategy.SINGLE_USER, pause=PAUSE),
                cache,
                workers=8,
                rotations=ROTATIONS,
                gap=GAP,
            )

    result = asyncio.run(scenario())
    check("asyncpg SecretCache x8", Strategy.SINGLE_USER, 8, result, -1, 0)


# ---------------------------------------------------------------- cancellation


def _current_document(setup: DbSecret) -> dict[str, Any]:
    client = setup.moto.client()
    reply = client.get_secret_value(SecretId=setup.secret_id, VersionStage="AWSCURRENT")
    document: dict[str, Any] = json.loads(reply["SecretString"])
    return document


async def _connect(adapter: str, setup: DbSecret, cache: AsyncSecretCache) -> Any:
    if adapter == "asyncpg":
        return await sc_asyncpg.connect(setup.secret_id, cache=cache, timeout=30)
    return await sc_psycopg.connect_async(setup.secret_id, cache=cache, connect_timeout=30)


async def _close(connection: Any) -> None:
    await connection.close()


async def _until(condition: Callable[[], bool]) -> None:
    """Let the loop run until ``condition`` holds (bounded: a stuck test fails, not hangs)."""
    for _ in range(3000):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the condition was never met")


@pytest.mark.parametrize("how", ["cancel", "asyncio.timeout"])
@pytest.mark.parametrize("adapter", ["asyncpg", "psycopg"])
def test_interrupting_a_connect_mid_handshake_leaves_nothing_open(
    make_db_secret: Callable[..., DbSecret], postgres: PostgresServer, adapter: str, how: str
) -> None:
    """The proxy holds the handshake; the task is cancelled, by hand or by a deadline.

    Cancelled, the connect raises a fresh ``CancelledError`` (no note, no chain: it is
    not a failed login). ``asyncio.timeout`` recognises its own cancellation by the
    class, so a deadline still ends in ``TimeoutError``.
    """
    with slow_proxy(postgres.host, postgres.port, delay=(1.0, 1.0)) as proxy:
        setup = make_db_secret("postgres", extra={"host": proxy.host, "port": proxy.port})
        password = _current_document(setup)["password"]

        async def scenario() -> BaseException:
            cache = setup.async_cache()
            await cache.get_secret(setup.secret_id)  # cached: the interruption hits the handshake
            try:
                if how == "cancel":
                    task = asyncio.create_task(_connect(adapter, setup, cache))
                    await _until(lambda: proxy.connections >= 1)
                    task.cancel()
                    connection = await task
                else:
                    async with asyncio.timeout(0.5):
                        connection = await _connect(adapter, setup, cache)
            except BaseException as exc:
                return exc
            await _close(connection)
            raise AssertionError("the interrupted connect returned a connection")

        error = asyncio.run(scenario())
    expected = asyncio.CancelledError if how == "cancel" else TimeoutError
    assert isinstance(error, expected), type(error).__name__
    if how == "cancel":
        assert error.__cause__ is None and not getattr(error, "__notes__", None)
    leaks = find_leaks(error, [password])
    assert not leaks, f"the password is reachable from the {type(error).__name__}: {leaks}"
    assert setup.sessions() == 0, "the interrupted connect left a session open"


def test_cancelling_the_connect_that_walks_hands_the_walk_on(
    make_db_secret: Callable[..., DbSecret], postgres: PostgresServer
) -> None:
    """A rotation's window: the walker is cancelled while trying AWSPENDING; the others
    (waiting for its walk) neither hang nor fail, and nothing is left open. (The walk
    and its runner are the same for every driver: asyncpg stands for them.)"""
    adapter = "asyncpg"
    with slow_proxy(postgres.host, postgres.port, delay=(0.5, 0.5)) as proxy:
        setup = make_db_secret("postgres", extra={"host": proxy.host, "port": proxy.port})
        rotator = setup.rotator(Strategy.SINGLE_USER)

        async def scenario() -> tuple[BaseException | None, list[str]]:
            cache = setup.async_cache()
            await _close(await _connect(adapter, setup, cache))  # AWSCURRENT cached
            await asyncio.to_thread(rotator.create_secret)
            await asyncio.to_thread(rotator.set_secret)  # the cached password is rejected now
            state = state_for(cache, setup.secret_id)
            walker = asyncio.create_task(_connect(adapter, setup, cache))
            await _until(lambda: state.walk is not None)  # it was rejected and walks
            waiters = [asyncio.create_task(_connect(adapter, setup, cache)) for _ in range(4)]
            await _until(lambda: proxy.connections >= 7)  # waiters rejected; AWSPENDING tried
            walker.cancel()
            outcomes = await asyncio.gather(walker, *waiters, return_exceptions=True)
            cancelled = outcomes[0] if isinstance(outcomes[0], BaseException) else None
            if not isinstance(outcomes[0], BaseException):
                await _close(outcomes[0])
            kinds = []
            for outcome in outcomes[1:]:
                if isinstance(outcome, BaseException):
                    kinds.append(type(outcome).__name__)
                else:
                    await _close(outcome)
            return cancelled, kinds

        cancelled, kinds = asyncio.run(scenario())
        rotator.test_secret()
        rotator.finish_secret()
    assert isinstance(cancelled, asyncio.CancelledError), type(cancelled).__name__
    assert cancelled.__cause__ is None, "the cancellation was dressed as a failed login"
    assert kinds == [], kinds
    assert setup.sessions() == 0, "a session was left open"


def test_a_failure_after_an_async_login_closes_the_connection(
    make_db_secret: Callable[..., DbSecret],
) -> None:
    """psycopg logs in, then applies ``context=``: the stranded AsyncConnection is closed
    by awaiting its ``close`` -- not left to the garbage collector with a warning."""
    setup = make_db_secret("postgres")

    async def scenario() -> BaseException:
        cache = setup.async_cache()
        try:
            await sc_psycopg.connect_async(setup.secret_id, cache=cache, context=42)
        except BaseException as exc:
            return exc
        raise AssertionError("connect_async(context=42) succeeded")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        error = asyncio.run(scenario())
        del error
        gc.collect()
    assert setup.sessions() == 0, "the connection that logged in was left open"
    # Only the two that tell of a close not awaited (a boto3 socket collected late
    # is none of this test's business).
    unawaited = [
        f"{w.category.__name__}: {w.message}"
        for w in caught
        if "never awaited" in str(w.message) or "AsyncConnection" in str(w.message)
    ]
    assert not unawaited, unawaited


def test_a_wrong_cache_type_and_credential_keywords_are_refused_before_any_read() -> None:
    async def scenario() -> list[str]:
        refused: list[str] = []
        for attempt in (
            lambda: sc_asyncpg.connect("s", cache=object()),  # type: ignore[arg-type]
            lambda: sc_asyncpg.connect("s", cache=AsyncSecretCache(), user="x"),
            lambda: sc_asyncpg.create_pool("s", cache=AsyncSecretCache(), password="x"),
            lambda: sc_psycopg.connect_async("s", cache=AsyncSecretCache(), password="x"),
        ):
            try:
                await attempt()
            except TypeError:
                refused.append("TypeError")
        return refused

    assert asyncio.run(scenario()) == ["TypeError"] * 4
    with pytest.raises(TypeError):
        sc_psycopg.connection_pool("s", kwargs={"password": "x"})
    with pytest.raises(ValueError, match="user or password"):
        sc_psycopg.connection_pool("s", conninfo="host=h user=u")


def test_rejected_login_raises_the_drivers_error(
    make_db_secret: Callable[..., DbSecret],
) -> None:
    """No label works: asyncpg's InvalidPasswordError, psycopg's OperationalError."""
    setup = make_db_secret("postgres")
    setup.db.set_password(setup.username, new_password())

    async def scenario() -> list[BaseException]:
        errors: list[BaseException] = []
        for adapter in ("asyncpg", "psycopg"):
            try:
                await _connect(adapter, setup, setup.async_cache())
            except Exception as exc:
                errors.append(exc)
        return errors

    pg_error, psycopg_error = asyncio.run(scenario())
    assert isinstance(pg_error, asyncpg.InvalidPasswordError), type(pg_error).__name__
    assert pg_error.sqlstate == "28P01"
    assert isinstance(psycopg_error, psycopg.OperationalError), type(psycopg_error).__name__


def test_pools_do_not_open_themselves() -> None:
    """psycopg_pool's documented way: ``with``/``async with`` or ``open()`` (no warning)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert sc_psycopg.connection_pool("s", cache=SecretCache()).closed

        async def make() -> bool:
            pool = sc_psycopg.async_connection_pool("s", cache=AsyncSecretCache())
            return bool(pool.closed)

        assert asyncio.run(make())


def test_asyncpg_counts_sqlstate_class_28_as_a_rejected_login_and_nothing_else() -> None:
    assert sc_asyncpg.is_auth_failure(asyncpg.InvalidPasswordError("x"))
    assert sc_asyncpg.is_auth_failure(asyncpg.InvalidAuthorizationSpecificationError("x"))
    assert not sc_asyncpg.is_auth_failure(asyncpg.InvalidCatalogNameError("x"))
    assert not sc_asyncpg.is_auth_failure(ConnectionRefusedError(111, "refused"))
    assert not sc_asyncpg.is_auth_failure(TimeoutError())


def test_failures_that_are_not_a_rejected_login_are_raised_at_once(
    make_db_secret: Callable[..., DbSecret],
) -> None:
    """An unknown database, a closed port: the driver's error, no label re-read."""
    setup = make_db_secret("postgres")

    async def scenario() -> list[tuple[str, int]]:
        seen = []
        for adapter, options in (
            ("asyncpg", {"dbname": "no_such_db"}),  # the secret's spelling, as database=
            ("asyncpg", {"port": 1}),
            ("psycopg", {"dbname": "no_such_db"}),
            ("psycopg", {"port": 1}),
        ):
            cache = setup.async_cache()
            try:
                if adapter == "asyncpg":
                    await sc_asyncpg.connect(setup.secret_id, cache=cache, timeout=5, **options)
                else:
                    await sc_psycopg.connect_async(
                        setup.secret_id, cache=cache, connect_timeout=5, **options
                    )
            except Exception as exc:
                seen.append((type(exc).__name__, cache.stats().api_calls))
        return seen

    seen = asyncio.run(scenario())
    assert [calls for _, calls in seen] == [1, 1, 1, 1], seen
    assert seen[0][0] == "InvalidCatalogNameError" and seen[1][0] in {
        "ConnectionRefusedError",
        "OSError",
    }, seen
    assert seen[2][0] == seen[3][0] == "OperationalError", seen
    with pytest.raises(TypeError, match="connect="):
        asyncio.run(sc_asyncpg.create_pool("s", cache=AsyncSecretCache(), connect=object()))
