"""Real PostgreSQL and MariaDB servers for the rotation tests, plus per-test secrets.

The servers are session-scoped (started once, on 127.0.0.1, free ports, temp
dirs) and stopped by pid at the end, also when a test fails. A missing server
binary fails the tests with an explanation instead of skipping them: `make
test` installs both servers, so a skip would only hide a broken setup.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from secretcache import AsyncSecretCache, CacheConfig, SecretCache
from secretcache._demo.mariadb import MariaDBServer
from secretcache._demo.postgres import PostgresServer
from secretcache._demo.rotation import Rotator, Strategy, new_password

FIGURES: list[dict[str, Any]] = []
"""Per-test rotation figures, printed in the terminal summary (no -s needed)."""


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not FIGURES:
        return
    write = terminalreporter.write_line
    terminalreporter.section("database rotation figures")
    write(
        f"{'adapter':<22}{'db':<10}{'strategy':<19}{'rotations':>9}{'ops':>7}"
        f"{'failed':>8}{'api calls':>11}{'per rotation':>14}"
    )
    for row in FIGURES:
        write(
            f"{row['adapter']:<22}{row['db']:<10}{row['strategy']:<19}{row['rotations']:>9}"
            f"{row['ops']:>7}{row['failed']:>8}{row['api_calls']:>11}"
            f"{row['api_calls'] / max(1, row['rotations']):>14.2f}"
        )


@dataclass
class Database:
    """One server seen through what a rotation needs: users, passwords, a login check."""

    kind: str  # "postgres" | "mariadb"
    server: PostgresServer | MariaDBServer

    @property
    def host(self) -> str:
        return self.server.host

    @property
    def port(self) -> int:
        return self.server.port

    def create_user(self, name: str, password: str, dbname: str) -> None:
        if isinstance(self.server, PostgresServer):
            self.server.create_role(name, password)
            self.server.grant_all(dbname, name)
        else:
            self.server.create_user(name, password)
            self.server.grant_all(dbname, name)

    def create_database(self, dbname: str, owner: str, password: str) -> None:
        if isinstance(self.server, PostgresServer):
            self.server.create_role(owner, password)
            self.server.create_database(dbname, owner)
        else:
            self.server.create_database(dbname)
            self.server.create_user(owner, password)
            self.server.grant_all(dbname, owner)

    def set_password(self, name: str, password: str) -> None:
        self.server.set_password(name, password)

    def login(self, secret: Mapping[str, Any]) -> None:
        """testSecret: log in with a credential and run SELECT 1."""
        self.server.login(secret)


@dataclass
class DbSecret:
    """A database with its own users and a Secrets Manager secret describing them."""

    db: Database
    moto: Any
    secret_id: str
    username: str
    dbname: str
    caches: list[SecretCache] = field(default_factory=list)

    def cache(self, **config: Any) -> SecretCache:
        """An application cache with a client of its own on moto's server."""
        cache = SecretCache(client=self.moto.client(), config=CacheConfig(**config))
        self.caches.append(cache)
        return cache

    def async_cache(self, **config: Any) -> AsyncSecretCache:
        """:meth:`cache` for the asyncio adapters."""
        return AsyncSecretCache(client=self.moto.client(), config=CacheConfig(**config))

    def sessions(self, *, settle: float = 20.0) -> int:
        """Open sessions of this secret's users, once closing ones have gone (PostgreSQL).

        A backend leaves ``pg_stat_activity`` a moment after its client closed; a
        connection left open stays. Waiting up to ``settle`` seconds for the
        count to reach 0 tells the two apart without timing anything.
        """
        server = self.db.server
        if not isinstance(server, PostgresServer):
            raise TypeError("sessions() reads pg_stat_activity: PostgreSQL only")
        deadline = time.monotonic() + settle
        users = [self.username, self.username + "_clone"]
        while True:
            with server.admin_connect() as admin:
                row = admin.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE usename = ANY(%s)", (users,)
                ).fetchone()
            count = int(row[0]) if row is not None else 0
            if count == 0 or time.monotonic() > deadline:
                return count
            time.sleep(0.1)

    def rotator(self, strategy: Strategy, *, pause: float = 0.0, **kwargs: Any) -> Rotator:
        return Rotator(
            self.moto.client(),
            self.secret_id,
            strategy=strategy,
            set_password=self.db.set_password,
            test_login=self.db.login,
            pause=pause,
            **kwargs,
        )

    def put_current(self, secret: Mapping[str, Any]) -> str:
        """Make ``secret`` the AWSCURRENT version directly (not a rotation)."""
        client = self.moto.client()
        response = client.put_secret_value(SecretId=self.secret_id, SecretString=json.dumps(secret))
        return str(response["VersionId"])


@pytest.fixture
def make_db_secret(moto_server: Any, request: pytest.FixtureRequest) -> Callable[..., DbSecret]:
    """make_db_secret(kind, password=None, extra=None) -> a fresh user, database and secret.

    Both users of the alternating strategy (``u`` and ``u_clone``) are created,
    so any test can rotate either way.
    """

    def make(
        kind: str, *, password: str | None = None, extra: Mapping[str, Any] | None = None
    ) -> DbSecret:
        if kind not in ("postgres", "mariadb"):
            raise ValueError(kind)
        server: PostgresServer | MariaDBServer = request.getfixturevalue(kind)
        db = Database(kind, server)
        suffix = uuid.uuid4().hex[:10]
        username, dbname = f"u{suffix}", f"d{suffix}"
        first_password = password or new_password()
        db.create_database(dbname, username, first_password)
        db.create_user(username + "_clone", new_password(), dbname)
        secret = {
            "engine": "postgres" if kind == "postgres" else "mariadb",
            "host": db.host,
            "port": db.port,
            "username": username,
            "password": first_password,
            "dbname": dbname,
            **(extra or {}),
        }
        secret_id = f"test/{kind}/{suffix}"
        client = moto_server.client()
        client.create_secret(Name=secret_id, SecretString=json.dumps(secret))
        return DbSecret(db, moto_server, secret_id, username, dbname)

    return make
