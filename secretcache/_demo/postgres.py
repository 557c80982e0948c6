"""A throwaway PostgreSQL cluster on 127.0.0.1, for the demo and the rotation tests.

``initdb`` into a temp dir, password (scram-sha-256) authentication for every
connection, a free port, its own socket directory; stopped by pid and removed
afterwards. PostgreSQL refuses to run as root, so when we are root the cluster
is created and run as the ``postgres`` OS user.

The helpers shared with the MariaDB launcher (free ports, stopping by pid) live
here too, so the two launchers stay small.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Self

__all__ = [
    "DatabaseUnavailableError",
    "ManagedProcess",
    "PostgresServer",
    "find_postgres_bin",
    "free_port",
    "start_postgres",
]

SUPERUSER = "postgres"


class DatabaseUnavailableError(RuntimeError):
    """The server binaries are missing or the server would not start."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def log_tail(path: Path, lines: int = 15) -> str:
    """The end of a server log, to explain a failed start."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


class ManagedProcess:
    """A server process we started: stopped by its pid, its temp dir removed.

    ``stop`` is idempotent and also registered with ``atexit``, so an interrupted
    demo or test session does not leave a server running.
    """

    def __init__(
        self,
        process: subprocess.Popen[bytes],
        workdir: Path,
        name: str,
        *,
        stop_signal: signal.Signals = signal.SIGTERM,
    ) -> None:
        self.process = process
        self.workdir = workdir
        self.name = name
        self.stop_signal = stop_signal
        self._stopped = False
        atexit.register(self.stop)

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 15.0) -> None:
        """``stop_signal`` to the server's pid (a clean, quick shutdown), SIGKILL if it lingers.

        The signal must be the server's shutdown that does not wait for clients
        to leave: a client still connected would otherwise hold the stop for the
        whole ``timeout``.
        """
        if self._stopped:
            return
        self._stopped = True
        atexit.unregister(self.stop)
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, self.stop_signal)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def wait_until(self, ready: Callable[[], bool], *, timeout: float, log: Path) -> None:
        """Poll ``ready()`` until it is true; fail early (and clean up) if the server died."""
        deadline = time.monotonic() + timeout
        while True:
            if not self.alive():
                self.stop()
                raise DatabaseUnavailableError(
                    f"{self.name} exited during start-up (status {self.process.returncode}):\n"
                    + log_tail(log)
                )
            if ready():
                return
            if time.monotonic() > deadline:
                self.stop()
                raise DatabaseUnavailableError(
                    f"{self.name} did not become ready within {timeout:.0f} s:\n" + log_tail(log)
                )
            time.sleep(0.05)


def run_setup(args: list[str], workdir: Path, *, timeout: float, **options: Any) -> None:
    """Run a one-off setup command (initdb, mariadb-install-db) in ``workdir``.

    On failure the work dir is removed and the error carries the tail of the
    command's own output, which is where the reason is.
    """
    try:
        subprocess.run(
            args, check=True, capture_output=True, cwd=workdir, timeout=timeout, **options
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        output = getattr(exc, "stderr", b"") or b""
        shutil.rmtree(workdir, ignore_errors=True)
        name = Path(args[0]).name
        raise DatabaseUnavailableError(
            f"{name} failed: {output.decode(errors='replace')[-800:]}"
        ) from exc


def find_postgres_bin() -> Path | None:
    """The directory holding ``initdb`` and ``postgres`` (newest version), or None."""
    configured = os.environ.get("SECRETCACHE_PG_BIN")
    candidates = [configured] if configured else []
    candidates += sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: int(p.split("/")[-2]) if p.split("/")[-2].isdigit() else 0,
        reverse=True,
    )
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(str(Path(initdb).parent))
    for candidate in candidates:
        path = Path(candidate)
        if (path / "initdb").is_file() and (path / "postgres").is_file():
            return path
    return None


class LocalServer:
    """A database server this process started on 127.0.0.1, stopped by its pid."""

    def __init__(self, proc: ManagedProcess, port: int) -> None:
        self._proc = proc
        self.host = "127.0.0.1"
        self.port = port

    @property
    def pid(self) -> int:
        return self._proc.pid

    def alive(self) -> bool:
        return self._proc.alive()

    def stop(self) -> None:
        self._proc.stop()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} 127.0.0.1:{self.port} pid={self.pid}>"


class PostgresServer(LocalServer):
    """A running throwaway cluster; ``admin_*`` helpers act as its superuser."""

    def __init__(self, proc: ManagedProcess, port: int, superuser_password: str) -> None:
        super().__init__(proc, port)
        self.superuser = SUPERUSER
        self._superuser_password = superuser_password

    def admin_connect(self, dbname: str = "postgres") -> Any:
        """A psycopg connection as the superuser, autocommit on."""
        import psycopg

        return psycopg.connect(
            host=self.host,
            port=self.port,
            user=self.superuser,
            password=self._superuser_password,
            dbname=dbname,
            autocommit=True,
            connect_timeout=10,
        )

    def login(self, secret: Mapping[str, Any]) -> None:
        """Log in with an RDS-style credential and run ``SELECT 1`` (a rotation's testSecret)."""
        import psycopg

        with psycopg.connect(
            host=self.host,
            port=self.port,
            user=secret["username"],
            password=secret["password"],
            dbname=secret["dbname"],
            connect_timeout=5,
        ) as conn:
            conn.execute("SELECT 1").fetchone()

    def admin_execute(self, statement: Any) -> None:
        with self.admin_connect() as conn:
            conn.execute(statement)

    def create_role(self, name: str, password: str) -> None:
        from psycopg import sql

        self.admin_execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(name), sql.Literal(password)
            )
        )

    def set_password(self, name: str, password: str) -> None:
        """``ALTER ROLE ... PASSWORD``: what a rotation's setSecret step does."""
        from psycopg import sql

        self.admin_execute(
            sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(name), sql.Literal(password))
        )

    def create_database(self, name: str, owner: str) -> None:
        from psycopg import sql

        self.admin_execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(name), sql.Identifier(owner)
            )
        )

    def grant_all(self, dbname: str, role: str) -> None:
        from psycopg import sql

        self.admin_execute(
            sql.SQL("GRANT ALL ON DATABASE {} TO {}").format(
                sql.Identifier(dbname), sql.Identifier(role)
            )
        )


def _as_postgres_user() -> tuple[int, int] | None:
    """(uid, gid) to run the server as when we are root, else None (run as ourselves)."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam("postgres")
    except KeyError as exc:
        raise DatabaseUnavailableError(
            "running as root and there is no 'postgres' OS user to run PostgreSQL as"
        ) from exc
    return entry.pw_uid, entry.pw_gid


def _ready(pidfile: Path) -> bool:
    """The postmaster writes 'ready' as the 8th line of postmaster.pid once it accepts logins."""
    try:
        lines = pidfile.read_text().splitlines()
    except OSError:
        return False
    return len(lines) >= 8 and lines[7].strip() == "ready"


def start_postgres(*, timeout: float = 60.0) -> PostgresServer:
    """initdb + start a cluster on 127.0.0.1 with a free port; raises DatabaseUnavailableError."""
    bindir = find_postgres_bin()
    if bindir is None:
        raise DatabaseUnavailableError(
            "PostgreSQL server binaries (initdb, postgres) were not found "
            "(looked in /usr/lib/postgresql/*/bin and PATH; set SECRETCACHE_PG_BIN)"
        )
    owner = _as_postgres_user()
    workdir = Path(tempfile.mkdtemp(prefix="secretcache-pg-"))
    data, sockdir, log = workdir / "data", workdir / "sock", workdir / "server.log"
    sockdir.mkdir()
    pwfile = workdir / "pwfile"
    superuser_password = secrets.token_hex(16)
    pwfile.write_text(superuser_password + "\n")
    if owner is not None:
        for path in (workdir, sockdir, pwfile):
            os.chown(path, *owner)
    run_as: dict[str, Any] = {"user": owner[0], "group": owner[1]} if owner else {}
    run_setup(
        [
            str(bindir / "initdb"),
            "-D",
            str(data),
            "-U",
            SUPERUSER,
            "--pwfile",
            str(pwfile),
            "--auth-local=scram-sha-256",
            "--auth-host=scram-sha-256",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
            "--no-instructions",
        ],
        workdir,
        timeout=timeout,
        **run_as,
    )
    pwfile.unlink()
    port = free_port()
    with open(log, "wb") as log_file:
        process = subprocess.Popen(
            [
                str(bindir / "postgres"),
                "-D",
                str(data),
                "-p",
                str(port),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                f"unix_socket_directories={sockdir}",
                "-c",
                "lc_messages=C",
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=200",
                "-c",
                "password_encryption=scram-sha-256",
            ],
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            cwd=workdir,
            start_new_session=True,
            **run_as,
        )
    # SIGTERM is PostgreSQL's "smart" shutdown, which waits for every client to
    # disconnect; SIGINT ("fast") ends their sessions and stops at once.
    proc = ManagedProcess(process, workdir, "PostgreSQL", stop_signal=signal.SIGINT)
    proc.wait_until(lambda: _ready(data / "postmaster.pid"), timeout=timeout, log=log)
    return PostgresServer(proc, port, superuser_password)


@contextlib.contextmanager
def running_postgres(*, timeout: float = 60.0) -> Iterator[PostgresServer]:
    server = start_postgres(timeout=timeout)
    try:
        yield server
    finally:
        server.stop()
