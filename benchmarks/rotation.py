"""Failed connects and API calls across database rotations, per approach.

Reuses the database work's harness: a throwaway PostgreSQL
(``secretcache._demo.postgres``) and the four-step rotation driver
(``secretcache._demo.rotation``), single-user strategy, held between setSecret and
finishSecret -- the window in which the old password is already rejected while
``AWSCURRENT`` still names it. Every approach connects in its own thread, in a
loop, through the *same* rotations, each with its own client and call counter.

Each peer gets the recovery its documentation suggests: on a rejected login,
force a refresh of the secret and try once more. boto3 without a cache fetches
on every connect. secretcache uses its psycopg adapter.
"""

from __future__ import annotations

import importlib.util
import json
import threading
import time
from collections.abc import Callable
from typing import Any

from .infra import admin_client
from .peers import API_PEERS, Peer

HARNESS = ("secretcache._demo.rotation", "secretcache._demo.postgres", "secretcache.db.psycopg")
SECRET_ID = "bench/db/postgres"
USER = "bench_app"


def _not_measured(reason: str) -> dict[str, Any]:
    return {"status": "not measured in this run", "reason": reason, "approaches": {}}


def db_rotation(endpoint: str, quick: bool) -> dict[str, Any]:
    missing = [name for name in HARNESS if importlib.util.find_spec(name) is None]
    if missing:
        return _not_measured("harness missing: " + ", ".join(missing))
    from secretcache._demo.postgres import DatabaseUnavailableError, start_postgres

    try:
        server = start_postgres()
    except DatabaseUnavailableError as exc:
        return _not_measured(f"PostgreSQL could not start ({type(exc).__name__})")
    try:
        return _measure(server, endpoint, quick)
    finally:
        server.stop()


def _measure(server: Any, endpoint: str, quick: bool) -> dict[str, Any]:
    import psycopg

    from secretcache._demo.rotation import Rotator, Strategy, new_password

    password = new_password()
    server.create_role(USER, password)
    server.create_database(USER, USER)
    secret = {
        "username": USER,
        "password": password,
        "host": server.host,
        "port": server.port,
        "dbname": USER,
        "engine": "postgres",
    }
    admin = admin_client(endpoint)
    admin.create_secret(Name=SECRET_ID, SecretString=json.dumps(secret))

    rotations = 3 if quick else 6
    pause = 0.5
    rotator = Rotator(
        admin,
        SECRET_ID,
        strategy=Strategy.SINGLE_USER,
        set_password=server.set_password,
        pause=pause,
    )
    peers = {cls.name: cls(endpoint, ttl=3600) for cls in API_PEERS}
    connectors = {name: _connector(peer, psycopg) for name, peer in peers.items()}
    for name, connect in connectors.items():
        connect()  # warm: the first read is not part of the rotation figures
        peers[name].calls.take()

    stop = threading.Event()
    tallies = {name: {"connects": 0, "failed": 0} for name in connectors}

    def loop(name: str, connect: Callable[[], None]) -> None:
        while not stop.is_set():
            try:
                connect()
            except psycopg.OperationalError:
                tallies[name]["failed"] += 1
            tallies[name]["connects"] += 1
            stop.wait(0.05)

    threads = [
        threading.Thread(target=loop, args=(name, connect), daemon=True)
        for name, connect in connectors.items()
    ]
    for thread in threads:
        thread.start()
    rotator.rotate_repeatedly(rotations, every=1.0)
    time.sleep(1.0)  # connects after the last finishSecret count too
    stop.set()
    for thread in threads:
        thread.join(timeout=30)
    approaches = {
        name: {
            "failed_logins": f"{tally['failed']} of {tally['connects']}",
            "failed": tally["failed"],
            "connects": tally["connects"],
            "api_calls": sum(peers[name].calls.take().values()),
        }
        for name, tally in tallies.items()
    }
    return {
        "status": "measured",
        "reason": (
            f"{rotations} single-user rotations, {pause} s between setSecret and "
            "finishSecret; a connect every 50 ms per approach"
        ),
        "approaches": approaches,
    }


def _connector(peer: Peer, psycopg: Any) -> Callable[[], None]:
    """One connect-and-close the way an application using ``peer`` would write it."""
    if peer.name == "secretcache":
        from secretcache.db import psycopg as sc_psycopg

        cache = peer.cache  # type: ignore[attr-defined]

        def connect_secretcache() -> None:
            sc_psycopg.connect(SECRET_ID, cache=cache, connect_timeout=5).close()

        return connect_secretcache

    def login(secret: dict[str, Any]) -> None:
        psycopg.connect(
            host=secret["host"],
            port=secret["port"],
            dbname=secret["dbname"],
            user=secret["username"],
            password=secret["password"],
            connect_timeout=5,
        ).close()

    def connect_with_retry() -> None:
        try:
            login(json.loads(peer.read(SECRET_ID)))
        except psycopg.OperationalError:
            login(json.loads(peer.force_refresh(SECRET_ID)))

    def connect_uncached() -> None:
        login(json.loads(peer.read(SECRET_ID)))

    return connect_uncached if not peer.caches else connect_with_retry
