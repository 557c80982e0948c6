"""The rotation-aware connect, one rule at a time, on the real servers.

Wrong passwords, a server that is down, concurrent failures, the window
between setSecret and finishSecret, a rate limit that must not hide a finished
rotation, and secrets that are not database secrets.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import traceback
import uuid
from collections.abc import Callable, Iterable
from typing import Any

import psycopg
import pymysql
import pytest
import sqlalchemy
from sqlalchemy import text
from sqlalchemy.pool import NullPool

from secretcache import SecretCache, SecretDecodeError
from secretcache._demo.postgres import free_port
from secretcache._demo.rotation import Strategy, new_password
from secretcache.db import psycopg as sc_psycopg
from secretcache.db import pymysql as sc_pymysql
from secretcache.db import sqlalchemy as sc_sqlalchemy
from secretcache.db._connect import rotating_connect

from .conftest import DbSecret

pytestmark = pytest.mark.db

URLS = {"postgres": "postgresql+psycopg://", "mariadb": "mysql+pymysql://"}
ADAPTERS = [
    ("psycopg", "postgres"),
    ("pymysql", "mariadb"),
    ("sqlalchemy", "postgres"),
    ("sqlalchemy", "mariadb"),
]


def canary() -> str:
    return f"CANARY-{uuid.uuid4().hex}%:?#&+;@/"


def open_and_check(adapter: str, kind: str, setup: DbSecret, cache: SecretCache, **kw: Any) -> None:
    """One login + SELECT 1 through the named adapter."""
    if adapter == "psycopg":
        with sc_psycopg.connect(setup.secret_id, cache=cache, connect_timeout=5, **kw) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    elif adapter == "pymysql":
        conn = sc_pymysql.connect(setup.secret_id, cache=cache, connect_timeout=5, **kw)
        try:
            with conn.cursor() as cursor:
                cursor.execute("SELECT 1")
        finally:
            conn.close()
    else:
        engine = sc_sqlalchemy.create_engine(
            setup.secret_id,
            URLS[kind],
            cache=cache,
            poolclass=NullPool,
            connect_args={"connect_timeout": 5, **kw},
        )
        try:
            with engine.connect() as conn:
                assert conn.execute(text("SELECT 1")).scalar() == 1
        finally:
            engine.dispose()


def driver_error(adapter: str, kind: str) -> type[BaseException]:
    if adapter == "sqlalchemy":
        return sqlalchemy.exc.OperationalError
    return psycopg.OperationalError if kind == "postgres" else pymysql.err.OperationalError


def chain(exc: BaseException) -> list[BaseException]:
    """The error, its causes and contexts, and SQLAlchemy's wrapped ``orig``."""
    found: list[BaseException] = []
    stack: list[BaseException | None] = [exc]
    while stack:
        item = stack.pop()
        if item is None or any(item is seen for seen in found):
            continue
        found.append(item)
        stack += [item.__cause__, item.__context__, getattr(item, "orig", None)]
    return found


def raised_by(expected: type[BaseException], action: Callable[[], Any]) -> BaseException:
    """Like pytest.raises, but a wrong outcome is reported by class name only.

    An unexpected exception might hold a password; pytest would print it.
    """
    caught: BaseException | None = None
    try:
        action()
    except BaseException as exc:
        caught = exc
    name = type(caught).__name__ if caught is not None else "nothing"
    ok = isinstance(caught, expected)
    assert ok, f"expected {expected.__name__}, got {name}"
    assert caught is not None
    return caught


class Canaries(tuple[str, ...]):
    """Passwords to look for; its repr hides them (pytest prints function arguments)."""

    def __repr__(self) -> str:
        return f"<{len(self)} canary passwords>"


def assert_no_password(exc: BaseException, passwords: Iterable[str]) -> None:
    """Every string form of the error and its chain is free of the passwords (and of pgconn)."""
    _check_no_password(exc, Canaries(passwords))


def _check_no_password(exc: BaseException, passwords: Canaries) -> None:
    texts = ["".join(traceback.format_exception(exc))]
    for item in chain(exc):
        kept = getattr(item, "pgconn", None) is not None
        assert not kept, "a psycopg pgconn (holding a password) was kept"
        texts += [repr(item), str(item), repr(item.args), repr(getattr(item, "__notes__", []))]
        texts.append(repr({k: v for k, v in vars(item).items() if k != "__traceback__"}))
    for password in passwords:
        leaked = any(password in t for t in texts)
        assert not leaked, "a password appears in the error"


def auth_errors(exc: BaseException) -> int:
    from secretcache.db.psycopg import is_auth_failure as pg_auth
    from secretcache.db.pymysql import is_auth_failure as my_auth

    return sum(1 for item in chain(exc) if pg_auth(item) or my_auth(item))


# ------------------------------------------------------------ wrong password


@pytest.mark.parametrize(("adapter", "kind"), ADAPTERS)
def test_wrong_password_no_label_fixes_raises_the_driver_error_without_passwords(
    make_db_secret: Callable[..., DbSecret], adapter: str, kind: str
) -> None:
    first = canary()
    setup = make_db_secret(kind, password=first)
    setup.db.set_password(setup.username, new_password())  # no label knows this one
    second, pending = canary(), canary()
    setup.put_current({**_secret(setup), "password": second})  # first is now AWSPREVIOUS
    setup.moto.client().put_secret_value(
        SecretId=setup.secret_id,
        ClientRequestToken=str(uuid.uuid4()),
        SecretString=json.dumps({**_secret(setup), "password": pending}),
        VersionStages=["AWSPENDING"],
    )
    cache = setup.cache()

    error = raised_by(
        driver_error(adapter, kind), lambda: open_and_check(adapter, kind, setup, cache)
    )

    assert_no_password(error, [first, second, pending])
    assert auth_errors(error) == 3  # AWSCURRENT, AWSPENDING, AWSPREVIOUS: all rejected
    calls = cache.stats().api_calls
    assert calls <= 5, f"{calls} API calls for one failed login"

    # Again at once: the rate limit now holds (a password no rotation explains).
    again = raised_by(
        driver_error(adapter, kind), lambda: open_and_check(adapter, kind, setup, cache)
    )
    assert_no_password(again, [first, second, pending])
    assert cache.stats().api_calls == calls, "a repeated wrong login called the service again"


def _secret(setup: DbSecret) -> dict[str, Any]:
    value = setup.moto.client().get_secret_value(
        SecretId=setup.secret_id, VersionStage="AWSCURRENT"
    )
    loaded: dict[str, Any] = json.loads(value["SecretString"])
    return loaded


# ------------------------------------------------------------ server down


@pytest.mark.parametrize(("adapter", "kind"), ADAPTERS)
def test_server_down_raises_at_once_and_does_not_refresh(
    make_db_secret: Callable[..., DbSecret], adapter: str, kind: str
) -> None:
    password = canary()
    setup = make_db_secret(kind, password=password)
    cache = setup.cache()
    error = raised_by(
        driver_error(adapter, kind),
        lambda: open_and_check(adapter, kind, setup, cache, port=free_port()),  # nobody listens
    )
    assert_no_password(error, [password])
    assert auth_errors(error) == 0
    stats = cache.stats()
    assert (stats.api_calls, stats.refreshes) == (1, 0), stats  # the first read only


# ------------------------------------------------------------ concurrency


def _parallel(count: int, action: Callable[[], None]) -> list[str]:
    """Run ``action`` in ``count`` threads released together; error kinds of failures."""
    barrier = threading.Barrier(count)
    errors: list[str] = []

    def run() -> None:
        barrier.wait()
        try:
            action()
        except Exception as exc:
            errors.append(type(exc).__name__)

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return errors


@pytest.mark.parametrize(("adapter", "kind"), ADAPTERS[:2])
def test_concurrent_connects_after_a_rotation_share_one_refresh(
    make_db_secret: Callable[..., DbSecret], adapter: str, kind: str
) -> None:
    setup = make_db_secret(kind)
    cache = setup.cache()
    open_and_check(adapter, kind, setup, cache)  # AWSCURRENT cached
    setup.rotator(Strategy.SINGLE_USER).rotate()  # the cached password is now rejected
    before = cache.stats().api_calls

    errors = _parallel(8, lambda: open_and_check(adapter, kind, setup, cache))

    assert errors == []
    assert cache.stats().api_calls - before == 1  # one AWSCURRENT re-read for all eight


@pytest.mark.parametrize(("adapter", "kind"), ADAPTERS[:2])
def test_concurrent_connects_inside_the_window_then_remembered(
    make_db_secret: Callable[..., DbSecret], adapter: str, kind: str
) -> None:
    setup = make_db_secret(kind)
    cache = setup.cache()
    open_and_check(adapter, kind, setup, cache)
    rotator = setup.rotator(Strategy.SINGLE_USER)
    rotator.create_secret()
    rotator.set_secret()  # AWSCURRENT's password is rejected from now on
    before = cache.stats().api_calls

    assert _parallel(8, lambda: open_and_check(adapter, kind, setup, cache)) == []
    # One AWSCURRENT re-read and one AWSPENDING read; the other connects wait for
    # that answer and use the credential it found.
    assert cache.stats().api_calls - before == 2

    before = cache.stats().api_calls
    assert _parallel(8, lambda: open_and_check(adapter, kind, setup, cache)) == []
    rotator.finish_secret()
    assert _parallel(8, lambda: open_and_check(adapter, kind, setup, cache)) == []
    assert cache.stats().api_calls == before  # the working credential was remembered


def test_remembered_credential_is_tried_first(make_db_secret: Callable[..., DbSecret]) -> None:
    """After a login with AWSPENDING, the next connect makes one login attempt, no API call."""
    setup = make_db_secret("postgres")
    cache = setup.cache()
    attempts: list[str] = []

    def counting_connect(*args: Any, **kwargs: Any) -> Any:
        attempts.append("login")
        return psycopg.connect(*args, **kwargs)

    driver = sc_psycopg.PsycopgDriver(counting_connect)
    rotating_connect(driver, setup.secret_id, cache=cache).close()
    rotator = setup.rotator(Strategy.SINGLE_USER)
    rotator.create_secret()
    rotator.set_secret()

    attempts.clear()
    rotating_connect(driver, setup.secret_id, cache=cache).close()
    assert len(attempts) == 2  # AWSCURRENT (rejected), then AWSPENDING

    attempts.clear()
    before = cache.stats().api_calls
    rotating_connect(driver, setup.secret_id, cache=cache).close()
    assert len(attempts) == 1
    assert cache.stats().api_calls == before


# ------------------------------------------------- rate limit vs finished rotation


@pytest.mark.parametrize(("adapter", "kind"), ADAPTERS[:2])
def test_min_refresh_interval_never_hides_a_finished_rotation(
    make_db_secret: Callable[..., DbSecret], adapter: str, kind: str
) -> None:
    """AWSCURRENT was read moments ago, then a whole rotation ran: the login still works.

    A plain rate limit would keep the just-read (now rejected) version; the
    rejection is newer than the read, so the library re-reads regardless.
    """
    setup = make_db_secret(kind)
    cache = setup.cache(min_refresh_interval=300.0)
    open_and_check(adapter, kind, setup, cache)
    cache.refresh(setup.secret_id)  # a refresh within the interval: no call, value kept
    setup.rotator(Strategy.SINGLE_USER).rotate()  # create, set, test, finish; AWSPENDING dropped
    before = cache.stats().api_calls

    open_and_check(adapter, kind, setup, cache)
    assert cache.stats().api_calls - before == 1


def test_stale_missing_awspending_does_not_block_the_window(
    make_db_secret: Callable[..., DbSecret],
) -> None:
    """AWSPENDING was looked up (and absent) before the rotation started: it is read again."""
    setup = make_db_secret("postgres")
    cache = setup.cache(min_refresh_interval=300.0)
    open_and_check("psycopg", "postgres", setup, cache)
    with pytest.raises(KeyError):
        cache.get_secret(setup.secret_id, "AWSPENDING")  # negatively cached now
    rotator = setup.rotator(Strategy.SINGLE_USER)
    rotator.create_secret()
    rotator.set_secret()
    open_and_check("psycopg", "postgres", setup, cache)


def test_finish_between_reading_awscurrent_and_awspending(
    make_db_secret: Callable[..., DbSecret],
) -> None:
    """finishSecret lands right after our AWSCURRENT re-read and drops AWSPENDING.

    AWSPENDING is then gone and AWSPREVIOUS is the rejected password: only a
    second look at AWSCURRENT finds the new one.
    """
    setup = make_db_secret("postgres")
    client = setup.moto.client()
    cache = SecretCache(client=client)
    open_and_check("psycopg", "postgres", setup, cache)
    rotator = setup.rotator(Strategy.SINGLE_USER)
    rotator.create_secret()
    rotator.set_secret()
    armed = threading.Event()
    armed.set()
    stages: list[str] = []

    def params(params: dict[str, Any], **_: Any) -> None:
        stages.append(str(params.get("VersionStage")))

    def after_call(**_: Any) -> None:
        if armed.is_set():
            armed.clear()
            rotator.finish_secret()  # the rotation's own client, another connection

    client.meta.events.register("provide-client-params.secrets-manager.GetSecretValue", params)
    client.meta.events.register("after-call.secrets-manager.GetSecretValue", after_call)

    open_and_check("psycopg", "postgres", setup, cache)
    assert stages == ["AWSCURRENT", "AWSPENDING", "AWSPREVIOUS", "AWSCURRENT"]


# ------------------------------------------------------------ arguments & secrets


@pytest.mark.parametrize(("adapter", "kind"), ADAPTERS[:2])
def test_secret_without_password_key_raises_decode_error_naming_the_key(
    make_db_secret: Callable[..., DbSecret], adapter: str, kind: str
) -> None:
    setup = make_db_secret(kind)
    hidden = canary()
    setup.put_current({"username": setup.username, "pasword": hidden, "host": "127.0.0.1"})
    cache = setup.cache()
    error = raised_by(SecretDecodeError, lambda: open_and_check(adapter, kind, setup, cache))
    assert_no_password(error, [hidden])
    assert "'password'" in str(error)
    assert isinstance(error, SecretDecodeError) and error.secret_id == setup.secret_id


def test_keyword_arguments_override_the_secret_location(
    make_db_secret: Callable[..., DbSecret],
) -> None:
    pg = make_db_secret("postgres")
    with sc_psycopg.connect(pg.secret_id, cache=pg.cache(), dbname="postgres") as conn:
        assert conn.execute("SELECT current_database()").fetchone() == ("postgres",)
    my = make_db_secret("mariadb")
    conn = sc_pymysql.connect(my.secret_id, cache=my.cache(), dbname="information_schema")
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT DATABASE()")
            assert cursor.fetchone() == ("information_schema",)
    finally:
        conn.close()


def test_credentials_cannot_be_passed_as_arguments(make_db_secret: Callable[..., DbSecret]) -> None:
    setup = make_db_secret("postgres")
    with pytest.raises(TypeError, match="come from the secret"):
        sc_psycopg.connect(setup.secret_id, cache=setup.cache(), password="x")
    hidden = canary()
    error = raised_by(
        ValueError,
        lambda: sc_sqlalchemy.create_engine(
            setup.secret_id, f"postgresql+psycopg://u:{hidden}@h/db"
        ),
    )
    assert_no_password(error, [hidden])
    assert "must not contain a password" in str(error)


@pytest.mark.parametrize("kind", ["postgres", "mariadb"])
def test_connection_factory_as_a_sqlalchemy_creator(
    make_db_secret: Callable[..., DbSecret], kind: str
) -> None:
    setup = make_db_secret(kind)
    cache = setup.cache()
    module = sc_psycopg if kind == "postgres" else sc_pymysql
    factory = module.connection_factory(setup.secret_id, cache=cache, connect_timeout=5)
    url = "postgresql+psycopg://" if kind == "postgres" else "mysql+pymysql://"
    engine = sqlalchemy.create_engine(url, creator=factory, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT 1")).scalar() == 1
        setup.rotator(Strategy.SINGLE_USER).rotate()
        with engine.connect() as conn:
            assert conn.execute(text("SELECT 1")).scalar() == 1
    finally:
        engine.dispose()


def test_importing_the_package_imports_no_driver() -> None:
    code = (
        "import sys, secretcache, secretcache.db\n"
        "loaded = [m for m in ('psycopg', 'pymysql', 'sqlalchemy') if m in sys.modules]\n"
        "print(','.join(loaded))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_malformed_awspending_does_not_hide_the_rejected_login(
    make_db_secret: Callable[..., DbSecret],
) -> None:
    password = canary()
    setup = make_db_secret("postgres", password=password)
    setup.db.set_password(setup.username, new_password())  # the secret's password is now wrong
    setup.moto.client().put_secret_value(
        SecretId=setup.secret_id,
        ClientRequestToken=str(uuid.uuid4()),
        SecretString=json.dumps({"username": setup.username}),  # no password
        VersionStages=["AWSPENDING"],
    )
    error = raised_by(
        psycopg.OperationalError,
        lambda: open_and_check("psycopg", "postgres", setup, setup.cache()),
    )
    assert_no_password(error, [password])
    assert any(isinstance(item, SecretDecodeError) for item in chain(error))
