"""Workers connect continuously while the password rotates: zero failed logins, few API calls.

Every adapter on every database it applies to, under both rotation strategies,
with a pause between setSecret and finishSecret (the window in which a client
that only knows AWSCURRENT fails).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.pool import NullPool

from secretcache import SecretCache
from secretcache._demo.rotation import Strategy
from secretcache.db import psycopg as sc_psycopg
from secretcache.db import pymysql as sc_pymysql
from secretcache.db import sqlalchemy as sc_sqlalchemy

from .conftest import DbSecret
from .stress import record, run_stress

pytestmark = pytest.mark.db

WORKERS = 4
ROTATIONS = 3
PAUSE = 0.4  # seconds between setSecret and finishSecret

MAX_API_CALLS = 2 * ROTATIONS + 1
"""Bound on GetSecretValue calls for all workers over all rotations.

A single-user rotation needs one AWSCURRENT re-read and one AWSPENDING read; an
alternating-users rotation at most one AWSCURRENT re-read. Concurrent workers
wait for the one connect that works it out, so worker count does not add calls.
The spare one allows a transient retry of the local HTTP call.
"""

URLS = {"postgres": "postgresql+psycopg://", "mariadb": "mysql+pymysql://"}
STRATEGIES = [Strategy.SINGLE_USER, Strategy.ALTERNATING_USERS]


def psycopg_op(setup: DbSecret, cache: SecretCache) -> Callable[[], None]:
    def op() -> None:
        with sc_psycopg.connect(setup.secret_id, cache=cache, connect_timeout=5) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)

    return op


def pymysql_op(setup: DbSecret, cache: SecretCache) -> Callable[[], None]:
    def op() -> None:
        conn = sc_pymysql.connect(setup.secret_id, cache=cache, connect_timeout=5)
        try:
            with conn.cursor() as cursor:
                cursor.execute("SELECT 1")
                assert cursor.fetchone() == (1,)
        finally:
            conn.close()

    return op


def engine_op(engine: Any) -> Callable[[], None]:
    def op() -> None:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT 1")).scalar() == 1

    return op


def check(adapter: str, kind: str, strategy: Strategy, result: Any) -> None:
    record(adapter, kind, strategy.value, result)
    assert result.rotations == ROTATIONS, result.summary()
    assert result.ops > 0, result.summary()
    assert result.failed == 0, result.summary()
    assert result.api_calls <= MAX_API_CALLS, result.summary()


@pytest.mark.parametrize("strategy", STRATEGIES, ids=lambda s: s.value)
@pytest.mark.parametrize(
    ("adapter", "kind"),
    [
        ("psycopg", "postgres"),
        ("pymysql", "mariadb"),
        ("sqlalchemy", "postgres"),
        ("sqlalchemy", "mariadb"),
    ],
)
def test_new_connection_per_operation_survives_rotations(
    make_db_secret: Callable[..., DbSecret], adapter: str, kind: str, strategy: Strategy
) -> None:
    setup = make_db_secret(kind)
    cache = setup.cache()
    engine = None
    if adapter == "psycopg":
        op = psycopg_op(setup, cache)
    elif adapter == "pymysql":
        op = pymysql_op(setup, cache)
    else:
        engine = sc_sqlalchemy.create_engine(
            setup.secret_id, URLS[kind], cache=cache, poolclass=NullPool
        )
        op = engine_op(engine)
    try:
        result = run_stress(
            op, setup.rotator(strategy, pause=PAUSE), cache, workers=WORKERS, rotations=ROTATIONS
        )
    finally:
        if engine is not None:
            engine.dispose()
    check(adapter, kind, strategy, result)


@pytest.mark.parametrize("strategy", STRATEGIES, ids=lambda s: s.value)
@pytest.mark.parametrize("kind", ["postgres", "mariadb"])
def test_pooled_engine_with_pre_ping_and_recycle_survives_rotations(
    make_db_secret: Callable[..., DbSecret], kind: str, strategy: Strategy
) -> None:
    setup = make_db_secret(kind)
    cache = setup.cache()
    engine = sc_sqlalchemy.create_engine(
        setup.secret_id,
        URLS[kind],
        cache=cache,
        pool_pre_ping=True,
        pool_recycle=0.2,
        pool_size=2,
        max_overflow=2,
        connect_args={"connect_timeout": 5},
    )
    connects = 0

    from sqlalchemy import event

    @event.listens_for(engine, "connect")
    def count(*_: Any) -> None:
        nonlocal connects
        connects += 1

    try:
        result = run_stress(
            engine_op(engine),
            setup.rotator(strategy, pause=PAUSE),
            cache,
            workers=WORKERS,
            rotations=ROTATIONS,
        )
    finally:
        engine.dispose()
    check("sqlalchemy-pooled", kind, strategy, result)
    # pool_recycle and overflow made the pool open new logins throughout the rotations.
    assert connects > 2 * ROTATIONS, f"only {connects} new connections were opened"
