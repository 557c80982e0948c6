"""A throwaway MariaDB server on 127.0.0.1, for the rotation tests.

``mariadb-install-db`` into a temp dir, then ``mariadbd`` with its own socket,
a free port and ``--bind-address=127.0.0.1``; stopped by pid and removed
afterwards. An ``--init-file`` creates an administrator reachable over TCP, so
no client binary and no unix-socket authentication is needed.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from .postgres import (
    DatabaseUnavailableError,
    LocalServer,
    ManagedProcess,
    free_port,
    run_setup,
)

__all__ = ["MariaDBServer", "find_mariadb", "start_mariadb"]

ADMIN = "sc_admin"
INSTALL_HINT = "install it with: apt-get install -y mariadb-server (`make test` does this)"


def find_mariadb() -> tuple[Path, Path] | None:
    """(mariadbd, mariadb-install-db), or None when the server is not installed."""
    server = shutil.which("mariadbd") or (
        "/usr/sbin/mariadbd" if Path("/usr/sbin/mariadbd").is_file() else None
    )
    install = shutil.which("mariadb-install-db") or (
        "/usr/bin/mariadb-install-db" if Path("/usr/bin/mariadb-install-db").is_file() else None
    )
    if server is None or install is None:
        return None
    return Path(server), Path(install)


class MariaDBServer(LocalServer):
    """A running throwaway server; ``admin_*`` helpers act as its administrator."""

    def __init__(self, proc: ManagedProcess, port: int, admin_password: str) -> None:
        super().__init__(proc, port)
        self.admin = ADMIN
        self._admin_password = admin_password

    def admin_connect(self) -> Any:
        import pymysql

        return pymysql.connect(
            host=self.host,
            port=self.port,
            user=self.admin,
            password=self._admin_password,
            autocommit=True,
            connect_timeout=10,
        )

    def login(self, secret: Mapping[str, Any]) -> None:
        """Log in with an RDS-style credential and run ``SELECT 1`` (a rotation's testSecret)."""
        import pymysql

        conn = pymysql.connect(
            host=self.host,
            port=self.port,
            user=secret["username"],
            password=secret["password"],
            database=secret["dbname"],
            connect_timeout=5,
        )
        try:
            with conn.cursor() as cursor:
                cursor.execute("SELECT 1")
        finally:
            conn.close()

    def admin_execute(self, statement: str, args: tuple[Any, ...] = ()) -> None:
        conn = self.admin_connect()
        try:
            with conn.cursor() as cursor:
                cursor.execute(statement, args)
        finally:
            conn.close()

    def create_user(self, name: str, password: str) -> None:
        self.admin_execute("CREATE USER %s@'%%' IDENTIFIED BY %s", (name, password))

    def set_password(self, name: str, password: str) -> None:
        """``ALTER USER ... IDENTIFIED BY``: what a rotation's setSecret step does."""
        self.admin_execute("ALTER USER %s@'%%' IDENTIFIED BY %s", (name, password))

    def create_database(self, name: str) -> None:
        self.admin_execute(f"CREATE DATABASE `{_ident(name)}`")

    def grant_all(self, dbname: str, user: str) -> None:
        self.admin_execute(f"GRANT ALL ON `{_ident(dbname)}`.* TO %s@'%%'", (user,))


def _ident(name: str) -> str:
    if not name.replace("_", "").isalnum():
        raise ValueError(f"unsupported identifier {name!r}")
    return name


def _can_login(server: MariaDBServer) -> bool:
    try:
        server.admin_connect().close()
    except Exception:
        return False
    return True


def start_mariadb(*, timeout: float = 90.0) -> MariaDBServer:
    """Install a data dir and start mariadbd on 127.0.0.1; raises DatabaseUnavailableError."""
    found = find_mariadb()
    if found is None:
        raise DatabaseUnavailableError(
            f"MariaDB server (mariadbd) is not installed; {INSTALL_HINT}"
        )
    mariadbd, install_db = found
    workdir = Path(tempfile.mkdtemp(prefix="secretcache-mariadb-"))
    data, log = workdir / "data", workdir / "server.log"
    run_setup(
        [
            str(install_db),
            "--no-defaults",
            f"--datadir={data}",
            "--user=root",
            "--skip-test-db",
            "--auth-root-authentication-method=socket",
        ],
        workdir,
        timeout=timeout,
    )
    admin_password = secrets.token_hex(16)
    init = workdir / "init.sql"
    init.write_text(
        f"CREATE USER IF NOT EXISTS '{ADMIN}'@'127.0.0.1' IDENTIFIED BY '{admin_password}';\n"
        f"GRANT ALL PRIVILEGES ON *.* TO '{ADMIN}'@'127.0.0.1' WITH GRANT OPTION;\n"
    )
    port = free_port()
    with open(log, "wb") as log_file:
        process = subprocess.Popen(
            [
                str(mariadbd),
                "--no-defaults",
                f"--datadir={data}",
                f"--socket={workdir / 'mysqld.sock'}",
                f"--pid-file={workdir / 'mysqld.pid'}",
                f"--port={port}",
                "--bind-address=127.0.0.1",
                "--user=root",
                "--skip-name-resolve",
                "--skip-log-bin",
                f"--init-file={init}",
                "--max-connections=300",
                "--max-connect-errors=1000000",
                "--innodb-buffer-pool-size=32M",
                "--innodb-log-file-size=16M",
                "--innodb-flush-log-at-trx-commit=0",
                f"--log-error={log}",
            ],
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            cwd=workdir,
            start_new_session=True,
        )
    proc = ManagedProcess(process, workdir, "MariaDB")
    server = MariaDBServer(proc, port, admin_password)
    proc.wait_until(lambda: _can_login(server), timeout=timeout, log=log)
    init.unlink(missing_ok=True)
    return server


@contextlib.contextmanager
def running_mariadb(*, timeout: float = 90.0) -> Iterator[MariaDBServer]:
    server = start_mariadb(timeout=timeout)
    try:
        yield server
    finally:
        server.stop()
