"""Many workers, slow handshakes, rotations: still zero failed logins (issue 9, item 3).

Every operation opens a new connection through a proxy that holds each
handshake for 100-500 ms (``slowproxy``), so logins routinely begin before
setSecret and are judged after it, and many workers are rejected while one of
them is already walking the labels. On MariaDB this used to fail a few logins
per run in the window of the second and later rotations.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from secretcache import SecretCache
from secretcache._demo.rotation import Strategy
from secretcache.db import psycopg as sc_psycopg
from secretcache.db import pymysql as sc_pymysql

from .conftest import DbSecret
from .slowproxy import slow_proxy
from .stress import record, run_stress

pytestmark = [pytest.mark.db, pytest.mark.slow]

ROTATIONS = 3
PAUSE = 0.6  # seconds between setSecret and finishSecret
GAP = 0.4  # seconds of calm before, between and after the rotations
MAX_API_CALLS_PER_ROTATION = 4
"""GetSecretValue calls per rotation, for all workers together.

A single-user rotation takes two (AWSCURRENT re-read, AWSPENDING read), as with
fast connects; orderings that straddle two steps (finishSecret between two reads,
a walk that begins as the next setSecret lands) can add one or two. A connect
that re-read the labels for itself would add one per worker: 16 or 32.
"""

STRATEGIES = [Strategy.SINGLE_USER, Strategy.ALTERNATING_USERS]


def operation(kind: str, setup: DbSecret, cache: SecretCache) -> Callable[[], None]:
    if kind == "postgres":

        def pg() -> None:
            with sc_psycopg.connect(setup.secret_id, cache=cache, connect_timeout=10) as conn:
                assert conn.execute("SELECT 1").fetchone() == (1,)

        return pg

    def my() -> None:
        conn = sc_pymysql.connect(setup.secret_id, cache=cache, connect_timeout=10)
        try:
            with conn.cursor() as cursor:
                cursor.execute("SELECT 1")
                assert cursor.fetchone() == (1,)
        finally:
            conn.close()

    return my


@pytest.mark.parametrize("workers", [16, 32])
@pytest.mark.parametrize("strategy", STRATEGIES, ids=lambda s: s.value)
@pytest.mark.parametrize("kind", ["postgres", "mariadb"])
def test_slow_handshakes_many_workers_no_failed_login(
    make_db_secret: Callable[..., DbSecret],
    request: pytest.FixtureRequest,
    kind: str,
    strategy: Strategy,
    workers: int,
) -> None:
    server: Any = request.getfixturevalue(kind)
    with slow_proxy(server.host, server.port) as proxy:
        setup = make_db_secret(kind, extra={"host": proxy.host, "port": proxy.port})
        cache = setup.cache()
        result = run_stress(
            operation(kind, setup, cache),
            setup.rotator(strategy, pause=PAUSE),
            cache,
            workers=workers,
            rotations=ROTATIONS,
            gap=GAP,
        )
    adapter = ("psycopg" if kind == "postgres" else "pymysql") + f" slow x{workers}"
    record(adapter, kind, strategy.value, result)
    assert result.rotations == ROTATIONS, result.summary()
    assert result.ops > workers, result.summary()
    assert result.failed == 0, result.summary()
    assert result.api_calls <= MAX_API_CALLS_PER_ROTATION * ROTATIONS, result.summary()
