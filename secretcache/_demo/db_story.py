"""Story 2: database logins while Secrets Manager rotates the password.

A throwaway PostgreSQL cluster and moto's Secrets Manager run on 127.0.0.1.
Workers open a new connection, run ``SELECT 1`` and close it, non-stop, while
the password is rotated a few times with the single-user strategy (the
password changes at setSecret, ``AWSCURRENT`` moves only at finishSecret).
First the application reads the secret once at start-up, as many do; then it
connects through :mod:`secretcache.db.psycopg`. The two tallies are printed
side by side. No password is ever printed.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

from . import rotation
from .local_aws import local_client, local_secrets_manager
from .postgres import DatabaseUnavailableError, PostgresServer, find_postgres_bin, start_postgres

__all__ = ["Tally", "run"]

WORKERS = 4
ROTATIONS = 3
PAUSE = 0.5  # seconds between setSecret and finishSecret (minutes are seen in the field)
GAP = 0.5  # seconds of calm before, between and after the rotations

NAIVE_LABEL = "read once at start-up (boto3)"
SECRETCACHE_LABEL = "secretcache.db.psycopg"


@dataclass
class Tally:
    label: str
    ok: int = 0
    failed: int = 0
    api_calls: int = 0


def run(out: TextIO) -> None:
    """Tell the story on ``out``; starts and stops its own servers, or says why it cannot."""
    if find_postgres_bin() is None:
        out.write(
            "Story 2 (database logins across rotations) skipped: PostgreSQL server binaries "
            "were not found (apt-get install postgresql; or set SECRETCACHE_PG_BIN)\n"
        )
        return
    try:
        import psycopg  # noqa: F401
    except ImportError:
        out.write(
            "Story 2 (database logins across rotations) skipped: psycopg is not installed "
            "(pip install 'secretcache[psycopg]')\n"
        )
        return
    with local_secrets_manager() as endpoint:
        try:
            server = start_postgres()
        except DatabaseUnavailableError as exc:
            first_line = str(exc).splitlines()[0]
            out.write(f"Story 2 (database logins across rotations) skipped: {first_line}\n")
            return
        try:
            _story(server, endpoint, out)
        finally:
            server.stop()


def _count_calls(client: Any) -> Callable[[], int]:
    """Count every request the client sends (botocore's own event hook)."""
    calls = [0]
    lock = threading.Lock()

    def count(**_: Any) -> None:
        with lock:
            calls[0] += 1

    client.meta.events.register("before-send.secrets-manager.*", count)
    return lambda: calls[0]


def _hammer(operation: Callable[[], None], rotator: rotation.Rotator, tally: Tally) -> None:
    """WORKERS threads run ``operation`` non-stop while ROTATIONS rotations happen."""
    stop = threading.Event()
    lock = threading.Lock()

    def work() -> None:
        ok = failed = 0
        while not stop.is_set():
            try:
                operation()
                ok += 1
            except Exception:
                failed += 1
                time.sleep(0.002)  # a failing app retries quickly, not in a hot loop
        with lock:
            tally.ok += ok
            tally.failed += failed

    threads = [threading.Thread(target=work, daemon=True) for _ in range(WORKERS)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(GAP)
        rotator.rotate_repeatedly(ROTATIONS, every=GAP)
        time.sleep(GAP)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)


def _story(server: PostgresServer, endpoint: str, out: TextIO) -> None:

    from secretcache import SecretCache
    from secretcache.db import psycopg as sc_psycopg

    def say(text: str = "") -> None:
        out.write(text + "\n")
        out.flush()

    suffix = uuid.uuid4().hex[:6]
    user, dbname, secret_id = f"orders_{suffix}", f"orders_{suffix}", f"demo/orders-db-{suffix}"
    password = rotation.new_password()
    server.create_role(user, password)
    server.create_database(dbname, user)
    first = {
        "engine": "postgres",
        "host": server.host,
        "port": server.port,
        "username": user,
        "dbname": dbname,
        "password": password,
    }
    local_client(endpoint).create_secret(Name=secret_id, SecretString=json.dumps(first))

    def rotator() -> rotation.Rotator:
        return rotation.Rotator(
            local_client(endpoint),
            secret_id,
            strategy=rotation.Strategy.SINGLE_USER,
            set_password=server.set_password,
            test_login=server.login,
            pause=PAUSE,
        )

    say("Story 2 -- database logins while the password rotates")
    say(
        f"PostgreSQL (throwaway cluster) on 127.0.0.1:{server.port}, "
        f"moto's Secrets Manager on {endpoint}"
    )
    say(
        f"{WORKERS} workers open a new connection, run SELECT 1 and close it, non-stop, while "
        f"the password is rotated {ROTATIONS} times;"
    )
    say(
        f"each rotation changes the password at setSecret and moves AWSCURRENT at finishSecret, "
        f"{PAUSE:g} s later."
    )
    say()

    # 1. The usual application: read the secret once, keep the password for the process.
    naive = Tally(NAIVE_LABEL)
    client = local_client(endpoint)
    naive_calls = _count_calls(client)
    kept = json.loads(
        client.get_secret_value(SecretId=secret_id, VersionStage="AWSCURRENT")["SecretString"]
    )

    def naive_login() -> None:
        server.login(kept)  # the password kept since start-up, never re-read

    say(f"  running: {NAIVE_LABEL} ...")
    _hammer(naive_login, rotator(), naive)
    naive.api_calls = naive_calls()

    # 2. The same application connecting through secretcache.
    cached = Tally(SECRETCACHE_LABEL)
    cache = SecretCache(client=local_client(endpoint))

    def cached_login() -> None:
        with sc_psycopg.connect(secret_id, cache=cache, connect_timeout=5) as conn:
            conn.execute("SELECT 1")

    say(f"  running: {SECRETCACHE_LABEL} ...")
    _hammer(cached_login, rotator(), cached)
    cached.api_calls = cache.stats().api_calls

    say()
    say(f"  {'':<32}{'logins ok':>10}{'failed':>9}{'Secrets Manager calls':>24}")
    for tally in (naive, cached):
        say(f"  {tally.label:<32}{tally.ok:>10}{tally.failed:>9}{tally.api_calls:>24}")
    say()
    say("  Read once: every login fails from the first setSecret on -- the kept password is gone.")
    say(
        "  secretcache: a rejected login re-reads AWSCURRENT and tries AWSPENDING, so logins "
        "keep working"
    )
    say("  inside the window and after it, for a handful of API calls per rotation.")
    say()
