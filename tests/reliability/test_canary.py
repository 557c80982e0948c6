"""A canary in every secret, and every public surface driven until it would sing.

Each secret value below contains ``CANARY-<uuid>``. With every logger at DEBUG
(caplog plus a root handler), the tests drive reads, every error path, the
decorators, the Lambda helper, the compat layer, the CLI and the database
adapters, and then look for the canary in: every log record written in the
test's thread or by a ``secretcache`` logger (message, args, exception text),
every exception raised (its whole cause/context chain, args, repr, str and the
reprs of its attributes), the repr/str of every library object touched, and
stdout/stderr. Records of moto's own server threads (the stand-in for AWS) are
not the client's and are not checked; neither are the test's own setup calls,
which write the canary on purpose.

Failure messages never print a found value: they name where the canary was.
"""

from __future__ import annotations

import base64
import importlib
import json
import logging
import threading
import traceback
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from secretcache import (
    CacheConfig,
    SecretCache,
    SecretCacheError,
    SecretDecodeError,
    SecretNotFoundError,
    inject_secret_json,
    inject_secret_string,
    refresh_on_error,
)

from .faults import Faults

CANARY = f"CANARY-{uuid.uuid4().hex}"
CANARY_FORMS = (CANARY, CANARY.encode().hex(), base64.b64encode(CANARY.encode()).decode())

DOC = {"username": "app", "password": f"pw-{CANARY}", "host": "127.0.0.1", "port": 9}
SECRETS: dict[str, str | bytes] = {
    "canary/string": f"s3cr3t-{CANARY}",
    "canary/json": json.dumps(DOC),
    "canary/bad-json": f'{{"password": "{CANARY}", oops',
    "canary/array": json.dumps([CANARY, "x"]),
    "canary/binary": b"\x00\x01" + CANARY.encode(),
    "canary/no-user": json.dumps({"password": f"pw-{CANARY}", "host": "127.0.0.1"}),
}


def leaks(text: str) -> bool:
    return any(form in text for form in CANARY_FORMS)


def exception_texts(exc: BaseException | None, seen: set[int] | None = None) -> Iterator[str]:
    """Every text an exception can show: chain, args, repr, str, attributes, traceback."""
    seen = set() if seen is None else seen
    if exc is None or id(exc) in seen:
        return
    seen.add(id(exc))
    yield repr(exc)
    yield str(exc)
    yield repr(exc.args)
    for name, value in getattr(exc, "__dict__", {}).items():
        yield f"{name}={value!r}"
    for name in ("pgconn", "pgresult", "diag", "response", "kwargs", "doc"):
        value = getattr(exc, name, None)
        if value is not None:
            yield f"{name}={value!r}"
            password = getattr(value, "password", None)
            if password is not None:
                yield repr(password)
    yield "".join(traceback.format_exception(exc))
    yield from exception_texts(exc.__cause__, seen)
    yield from exception_texts(exc.__context__, seen)


class Watch(logging.Handler):
    """Collects the text of every relevant log record and everything else to inspect."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.thread = threading.get_ident()
        self.quiet = False
        self.found: list[str] = []
        self.records = 0
        self.exceptions = 0
        self.objects = 0
        self._formatter = logging.Formatter()

    def emit(self, record: logging.LogRecord) -> None:
        if self.quiet and record.thread == self.thread:
            return  # the test's own setup, writing canaries on purpose
        if record.thread != self.thread and not record.name.startswith("secretcache"):
            return  # moto's server threads: the fake AWS, not the client process
        self.records += 1
        try:
            message = record.getMessage()
        except Exception:
            message = str(record.msg)
        parts = [message, repr(record.args), str(record.msg)]
        if record.exc_info:
            parts.append(self._formatter.formatException(record.exc_info))
        if record.stack_info:
            parts.append(record.stack_info)
        if any(leaks(part) for part in parts):
            self.found.append(f"log record {record.name}:{record.levelname} {record.msg!r:.80}")

    def exception(self, exc: BaseException, where: str) -> None:
        self.exceptions += 1
        for text in exception_texts(exc):
            if leaks(text):
                self.found.append(f"exception {type(exc).__name__} from {where}")
                return

    def objects_of(self, *objects: Any) -> None:
        for obj in objects:
            self.objects += 1
            if leaks(repr(obj)) or leaks(str(obj)):
                self.found.append(f"repr/str of a {type(obj).__name__}")

    @contextmanager
    def setup(self) -> Iterator[None]:
        self.quiet = True
        try:
            yield
        finally:
            self.quiet = False

    def raises(self, kind: type[BaseException] | tuple[type[BaseException], ...], fn: Any) -> Any:
        """Call ``fn``, expect ``kind``, inspect the exception; returns it."""
        try:
            fn()
        except kind as exc:
            self.exception(exc, getattr(fn, "__name__", "call"))
            return exc
        raise AssertionError(f"expected {kind} from {getattr(fn, '__name__', 'call')}")


@pytest.fixture
def watch(
    moto_server: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> Iterator[Watch]:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.endpoint)
    caplog.set_level(logging.DEBUG)  # first: caplog restores the root level it saw last
    watch = Watch()
    root = logging.getLogger()
    levels = {name: logging.getLogger(name).level for name in list(logging.root.manager.loggerDict)}
    old_root = root.level
    root.addHandler(watch)
    root.setLevel(logging.DEBUG)
    for name in levels:
        logging.getLogger(name).setLevel(logging.DEBUG)
    sm = moto_server.client()
    with watch.setup():
        for name, value in SECRETS.items():
            if isinstance(value, bytes):
                sm.create_secret(Name=name, SecretBinary=value)
            else:
                sm.create_secret(Name=name, SecretString=value)
    watch.sm = sm  # type: ignore[attr-defined]
    try:
        yield watch
    finally:
        root.removeHandler(watch)
        root.setLevel(old_root)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
    for record in caplog.records:  # caplog's own copy, same rules as the handler
        if record.thread == watch.thread or record.name.startswith("secretcache"):
            text = record.getMessage() + repr(record.args)
            if record.exc_info:
                text += logging.Formatter().formatException(record.exc_info)
            assert not leaks(text), f"canary in a caplog record of {record.name}"
    out, err = capsys.readouterr()
    assert not leaks(out), "canary on stdout"
    assert not leaks(err), "canary on stderr"
    assert not watch.found, f"canary found in: {watch.found}"
    assert watch.records > 0, "no log record was seen: the watch is not working"


def make_cache(**config: Any) -> SecretCache:
    return SecretCache(config=CacheConfig(**config))


def test_watch_can_fail(watch: Watch) -> None:
    """The detectors themselves: a leak in a log record or an exception is caught."""
    logging.getLogger("secretcache.selftest").debug("value %s", CANARY)
    try:
        try:
            raise ValueError(CANARY)
        except ValueError:
            raise RuntimeError("wrapped") from None
    except RuntimeError as exc:
        watch.exception(exc, "selftest")
    watch.objects_of(type("Leaky", (), {"__repr__": lambda self: CANARY})())
    assert len(watch.found) == 3, watch.found
    watch.found.clear()


def test_reads_and_objects(watch: Watch) -> None:
    changes: list[tuple[Any, ...]] = []
    cache = make_cache(
        min_refresh_interval=0.0, on_change=lambda *args: changes.append(args), ttl=600
    )
    text = cache.get_secret_string("canary/string")
    assert text == SECRETS["canary/string"], "wrong value read"
    assert cache.get_secret_binary("canary/binary") == SECRETS["canary/binary"], "wrong binary"
    document = cache.get_secret_json("canary/json")
    assert document["password"] == DOC["password"], "wrong JSON value"
    value = cache.get_secret("canary/json")
    cache.prefetch("canary/string", "canary/json", "canary/binary", "canary/array")
    with watch.setup():
        watch.sm.put_secret_value(  # type: ignore[attr-defined]
            SecretId="canary/string", SecretString=f"rotated-{CANARY}"
        )
    fresh = cache.refresh("canary/string")
    assert fresh.secret_string == f"rotated-{CANARY}", "refresh did not see the rotation"
    assert changes, "on_change was not called"
    for args in changes:
        assert not leaks(repr(args)), "canary passed to on_change"
    cache.invalidate("canary/json")
    cache.get_secret("canary/json", "AWSCURRENT")
    watch.objects_of(cache, cache.config, cache.stats(), value, fresh, *cache._entries.values())
    cache.invalidate()


def test_error_paths(watch: Watch) -> None:
    cache = make_cache(ttl=600, retry_attempts=2, min_refresh_interval=0.0)
    faults = Faults(cache.client)
    w = watch
    w.raises(SecretDecodeError, lambda: cache.get_secret_json("canary/bad-json"))
    w.raises(SecretDecodeError, lambda: cache.get_secret_json("canary/array"))
    w.raises(SecretDecodeError, lambda: cache.get_secret_json("canary/binary"))
    w.raises(SecretDecodeError, lambda: cache.get_secret_string("canary/binary"))
    w.raises(SecretDecodeError, lambda: cache.get_secret_binary("canary/string"))
    w.raises(SecretNotFoundError, lambda: cache.get_secret_string("canary/none"))
    w.raises(SecretNotFoundError, lambda: cache.get_secret_string("canary/string", "NOPE"))
    w.raises(SecretNotFoundError, lambda: cache.get_secret_string("canary/string", version_id="x"))
    w.raises(ValueError, lambda: cache.get_secret("canary/string", "S", version_id="v" * 32))
    w.raises(ValueError, lambda: cache.get_secret_string(""))
    w.raises(TypeError, lambda: cache.get_secret_string(None))  # type: ignore[arg-type]
    value = cache.get_secret("canary/json")
    for fault in ("throttling", "http-500", "access-denied", "kms-decryption-failure"):
        faults.set(fault)
        cache.invalidate("canary/string")
        w.raises(SecretCacheError, lambda: cache.get_secret_string("canary/string"))
        w.raises(SecretCacheError, lambda: cache.refresh("canary/json"))
        faults.clear()
    # a failing refresh of a cached value logs a warning and serves it
    cache2 = make_cache(ttl=0.0, max_stale=600)
    faults2 = Faults(cache2.client)
    assert cache2.get_secret_json("canary/json")["username"] == "app"
    faults2.set("http-500")
    assert cache2.get_secret_json("canary/json")["username"] == "app"
    faults2.set("read-timeout")
    watch.raises(SecretCacheError, lambda: cache2.get_secret_string("canary/string"))
    watch.objects_of(cache, cache2, value, cache2.stats())


def test_decorators(watch: Watch) -> None:
    cache = make_cache(min_refresh_interval=0.0)
    seen: list[int] = []

    @inject_secret_string("canary/string", cache=cache)
    def use(key: str) -> int:
        return len(key)

    @inject_secret_json("canary/json", cache=cache, user="username", pwd="password")
    def connect(user: str, pwd: str) -> str:
        return user

    @inject_secret_json("canary/json", cache=cache, missing="no-such-key")
    def broken(missing: str) -> None:
        raise AssertionError("unreachable")

    @inject_secret_json("canary/bad-json", cache=cache, pwd="password")
    def bad(pwd: str) -> None:
        raise AssertionError("unreachable")

    class Rejected(Exception):
        pass

    @refresh_on_error("canary/string", Rejected, cache=cache)
    def call_api() -> None:
        seen.append(1)
        raise Rejected("401 from the far side")

    assert use() == len(SECRETS["canary/string"])
    assert connect() == "app"
    watch.raises(SecretDecodeError, broken)
    watch.raises(SecretDecodeError, bad)
    watch.raises(Rejected, call_api)
    assert seen == [1]
    watch.objects_of(use, connect, call_api)


def test_lambda(watch: Watch) -> None:
    aws_lambda = importlib.import_module("secretcache.aws_lambda")
    cache = make_cache()
    received: dict[str, Any] = {}

    @aws_lambda.with_secrets(
        cache=cache, db="canary/json", key="canary/string", raw="canary/binary"
    )
    def handler(event: Any, context: Any, *, db: Any, key: str, raw: bytes) -> dict[str, int]:
        received.update(db=db, key=key, raw=raw)
        return {"status": 200}

    assert handler({}, None) == {"status": 200}
    assert received["db"]["password"] == DOC["password"], "wrong JSON passed to the handler"
    assert received["key"] == SECRETS["canary/string"]
    watch.raises(SecretCacheError, lambda: aws_lambda.with_secrets(cache=cache, a="canary/missing"))

    def bad_json_handler() -> None:
        @aws_lambda.with_secrets(cache=cache, x="canary/bad-json", y="canary/array")
        def h(event: Any, context: Any, *, x: Any, y: Any) -> None:
            raise RuntimeError("handler failed")

        h({}, None)

    watch.raises(Exception, bad_json_handler)
    watch.objects_of(handler, cache, cache.stats())


def test_compat(watch: Watch) -> None:
    compat = importlib.import_module("secretcache.compat")
    import boto3

    client = boto3.session.Session().client("secretsmanager")
    cache = compat.SecretCache(config=compat.SecretCacheConfig(), client=client)
    assert cache.get_secret_string("canary/string") == SECRETS["canary/string"]
    assert cache.get_secret_binary("canary/binary") == SECRETS["canary/binary"]
    assert cache.refresh_secret_now("canary/string") is True

    @compat.InjectSecretString("canary/string", cache)
    def use(key: str) -> int:
        return len(key)

    @compat.InjectKeywordedSecretString("canary/json", cache, user="username", pwd="password")
    def connect(user: str, pwd: str) -> str:
        return user

    @compat.InjectKeywordedSecretString("canary/json", cache, x="no-such-key")
    def missing(x: str) -> None:
        raise AssertionError("unreachable")

    assert use() == len(SECRETS["canary/string"])
    assert connect() == "app"
    watch.raises(Exception, missing)
    watch.raises(Exception, lambda: cache.get_secret_string("canary/none"))

    class Hook(compat.SecretCacheHook):  # type: ignore[misc]
        def put(self, obj: Any) -> Any:
            return obj

        def get(self, cached_obj: Any) -> Any:
            return cached_obj

    hooked = compat.SecretCache(
        config=compat.SecretCacheConfig(secret_cache_hook=Hook()), client=client
    )
    assert hooked.get_secret_string("canary/string") == SECRETS["canary/string"]
    watch.objects_of(cache, hooked, compat.SecretCacheConfig(), use, connect)


def test_compat_keyworded_bad_json(watch: Watch) -> None:
    compat = importlib.import_module("secretcache.compat")
    cache = compat.SecretCache(client=make_cache().client)

    @compat.InjectKeywordedSecretString("canary/bad-json", cache, x="password")
    def bad(x: str) -> None:
        raise AssertionError("unreachable")

    exc = watch.raises(RuntimeError, bad)
    found = list(watch.found)
    watch.found.clear()  # reported here, not again by the fixture
    assert not found, f"canary in {found} (context {type(exc.__context__).__name__})"


@pytest.mark.parametrize(
    "argv",
    [
        ["get", "canary/json", "--json-key", "no-such-key"],
        ["get", "canary/bad-json", "--json-key", "password"],
        ["get", "canary/array", "--json-key", "password"],
        ["get", "canary/binary", "--json-key", "password"],
        ["get", "canary/none"],
        ["get", "canary/string", "--stage", "NOPE"],
        ["get", "canary/string", "--version-id", "short"],
        ["get", "canary/string", "--version-id", "0" * 32],
        ["get", ""],
    ],
)
def test_cli_error_paths(watch: Watch, argv: list[str]) -> None:
    cli = importlib.import_module("secretcache.__main__")
    code = cli.main(argv)
    assert code != 0, "an error path exited 0"


def test_cli_when_the_service_fails(watch: Watch, monkeypatch: pytest.MonkeyPatch) -> None:
    cli = importlib.import_module("secretcache.__main__")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    assert cli.main(["get", "canary/string"]) != 0


# ----------------------------------------------------------- database adapters


def _db_secret(watch: Watch, name: str, host: str, port: int, user: str, dbname: str) -> None:
    wrong = {
        "username": user,
        "password": f"wrong-{CANARY}",
        "host": host,
        "port": port,
        "dbname": dbname,
    }
    with watch.setup():
        watch.sm.create_secret(Name=name, SecretString=json.dumps(wrong))  # type: ignore[attr-defined]
        watch.sm.put_secret_value(  # type: ignore[attr-defined]
            SecretId=name,
            SecretString=json.dumps({**wrong, "password": f"pending-{CANARY}"}),
            VersionStages=["AWSPENDING"],
        )


@pytest.mark.db
def test_postgres_wrong_password(watch: Watch, postgres: Any) -> None:
    sc_psycopg = importlib.import_module("secretcache.db.psycopg")
    sc_sqlalchemy = importlib.import_module("secretcache.db.sqlalchemy")
    import psycopg

    user = f"canary{uuid.uuid4().hex[:8]}"
    postgres.create_role(user, "the-right-one")
    postgres.create_database(user, user)
    _db_secret(watch, f"canary/pg/{user}", postgres.host, postgres.port, user, user)
    cache = make_cache()
    exc = watch.raises(
        psycopg.OperationalError,
        lambda: sc_psycopg.connect(f"canary/pg/{user}", cache=cache, connect_timeout=5),
    )
    assert getattr(exc, "pgconn", None) is None or not leaks(repr(exc.pgconn.password))
    factory = sc_psycopg.connection_factory(f"canary/pg/{user}", cache=cache, connect_timeout=5)
    watch.raises(psycopg.OperationalError, factory)
    engine = sc_sqlalchemy.create_engine(f"canary/pg/{user}", "postgresql+psycopg://", cache=cache)
    try:
        watch.raises(Exception, engine.connect)
        watch.objects_of(engine, engine.url, engine.pool)
    finally:
        engine.dispose()
    watch.raises(SecretDecodeError, lambda: sc_psycopg.connect("canary/no-user", cache=cache))


@pytest.mark.db
def test_mysql_wrong_password(watch: Watch, mariadb: Any) -> None:
    sc_pymysql = importlib.import_module("secretcache.db.pymysql")
    sc_sqlalchemy = importlib.import_module("secretcache.db.sqlalchemy")
    import pymysql

    user = f"canary{uuid.uuid4().hex[:8]}"
    mariadb.create_database(user)
    mariadb.create_user(user, "the-right-one")
    mariadb.grant_all(user, user)
    _db_secret(watch, f"canary/my/{user}", mariadb.host, mariadb.port, user, user)
    cache = make_cache()
    watch.raises(
        pymysql.err.OperationalError,
        lambda: sc_pymysql.connect(f"canary/my/{user}", cache=cache, connect_timeout=5),
    )
    factory = sc_pymysql.connection_factory(f"canary/my/{user}", cache=cache)
    watch.raises(pymysql.err.OperationalError, factory)
    engine = sc_sqlalchemy.create_engine(f"canary/my/{user}", "mysql+pymysql://", cache=cache)
    try:
        watch.raises(Exception, engine.connect)
        watch.objects_of(engine, engine.url, engine.pool)
    finally:
        engine.dispose()
    watch.raises(SecretDecodeError, lambda: sc_pymysql.connect("canary/no-user", cache=cache))
