"""A canary in every secret, and every public surface driven until it would sing.

Each secret value below contains a canary, in three spellings: plain ASCII
(``CANARY-<uuid>``), *wide* (Latin-1, non-Latin-1, CJK and an emoji: the
characters an ``UnicodeEncodeError`` quotes) and *surrogate* (lone surrogates,
which survive JSON transport and break every strict encoder). With every logger at
DEBUG (caplog plus a root handler), the tests drive reads, every error path, the
decorators (sync and async), the Lambda helper, the compat layer, the CLI and the
database adapters, and look for each canary in:

- every exception raised, rendered as an error tracker renders it by
  ``tests.leakcheck.find_leaks``: the traceback with the local variables of every
  frame (``capture_locals=True``) through the whole cause/context chain, its pickle,
  args, attributes and notes;
- every log record written in the test's thread or by a ``secretcache`` logger
  (message, args, exception text);
- the repr/str of every library object touched, and stdout/stderr.

Records of moto's own server threads (the stand-in for AWS) are not the client's
and are not checked; neither are the test's own setup calls, which write the
canary on purpose. Failure messages never print a found value: they name where the
canary was. The number of exceptions rendered with locals is reported at the end
of the run (``pytest_terminal_summary`` in this directory's conftest).
"""

from __future__ import annotations

import asyncio
import base64
import importlib
import io
import json
import logging
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
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
from tests.caught import raised
from tests.leakcheck import find_leaks

from .faults import Faults

CANARY = f"CANARY-{uuid.uuid4().hex}"
CANARIES = {
    "ascii": CANARY,
    "wide": f"CANARY-\u00e9\u20ac\u0142\u4e2d\U0001f511-{uuid.uuid4().hex}",
    "surrogate": f"CANARY-\udc80\ud800-{uuid.uuid4().hex}",
}
KINDS = list(CANARIES)
RENDERED: list[int] = [0]
"""Exceptions this module rendered with locals (read by the conftest's summary)."""


def _needles() -> list[str]:
    """Every canary, its uuid tail, each non-ASCII character alone, and the encodings."""
    found: list[str] = []
    for canary in CANARIES.values():
        found += [canary, canary[-32:]]
        found += [char for char in canary if ord(char) > 127]
    found += [json.dumps(canary)[1:-1] for canary in CANARIES.values()]  # JSON-escaped
    raw = CANARY.encode()
    found += [raw.hex(), base64.b64encode(raw).decode()]
    return found


NEEDLES = _needles()
_FORMS = [
    form
    for needle in NEEDLES
    for form in (
        needle,
        ascii(needle)[1:-1],
        needle.encode("utf-8", "surrogatepass").decode("latin-1"),
    )
]


def leaks(text: str) -> bool:
    return any(form in text for form in _FORMS)


def secrets_of(kind: str) -> dict[str, str]:
    """The string secrets of one canary kind (stored as written: raw characters)."""
    canary = CANARIES[kind]
    doc = {"username": "app", "password": f"pw-{canary}", "host": "127.0.0.1", "port": 9}
    return {
        f"canary/{kind}/string": f"s3cr3t-{canary}",
        f"canary/{kind}/json": json.dumps(doc, ensure_ascii=False),
        f"canary/{kind}/bad-json": f'{{"password": "{canary}", oops',
        f"canary/{kind}/array": json.dumps([canary, "x"], ensure_ascii=False),
        f"canary/{kind}/scalar": json.dumps(canary, ensure_ascii=False),
        f"canary/{kind}/deep": '{"p": "' + canary + '", "a": ' + "[" * 3000 + "]" * 3000 + "}",
        f"canary/{kind}/no-user": json.dumps({"password": f"pw-{canary}"}, ensure_ascii=False),
    }


SECRETS: dict[str, str | bytes] = {
    "canary/binary": b"\x00\x01" + CANARY.encode() + CANARIES["wide"].encode(),
}
for _kind in KINDS:
    SECRETS.update(secrets_of(_kind))
# The ASCII kind under the names the first version of this suite used.
SECRETS.update(
    {
        "canary/string": SECRETS["canary/ascii/string"],
        "canary/json": SECRETS["canary/ascii/json"],
        "canary/bad-json": SECRETS["canary/ascii/bad-json"],
        "canary/array": SECRETS["canary/ascii/array"],
        "canary/no-user": SECRETS["canary/ascii/no-user"],
    }
)


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
        """Render ``exc`` with locals, pickle, chain and attributes; note where a canary is."""
        self.exceptions += 1
        RENDERED[0] += 1
        for place in find_leaks(exc, NEEDLES):
            self.found.append(f"exception {type(exc).__name__} from {where}: {place}")

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

    def raises(
        self, kind: type[BaseException] | tuple[type[BaseException], ...], fn: Callable[[], Any]
    ) -> BaseException:
        """Call ``fn``, expect ``kind``, inspect the exception; returns it."""
        error = raised(fn)
        name = getattr(fn, "__name__", "call")
        if not isinstance(error, kind):
            raise AssertionError(f"expected {kind} from {name}, got {type(error).__name__}")
        self.exception(error, name)
        return error


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
    """The detectors themselves: a leak in a log record, an exception or its locals is caught."""
    logging.getLogger("secretcache.selftest").debug("value %s", CANARY)
    try:
        try:
            raise ValueError(CANARY)
        except ValueError:
            raise RuntimeError("wrapped") from None
    except RuntimeError as exc:
        watch.exception(exc, "selftest")

    # A frame outside tests/ (leakcheck skips the test suite's own frames, which
    # create the canaries): a library function holding a value when it raises.
    library: dict[str, Any] = {}
    source = "def holds(value):\n    raise RuntimeError('clean message')\n"
    exec(compile(source, "/usr/lib/python3/site-packages/somelib.py", "exec"), library)
    holds = library["holds"]

    for canary in CANARIES.values():
        watch.exception(raised(lambda c=canary: holds(c[-40:])), "locals")
    watch.objects_of(type("Leaky", (), {"__repr__": lambda self: CANARY})())
    kinds = {entry.split(":")[0] for entry in watch.found}
    assert kinds == {
        "log record secretcache.selftest",
        "exception RuntimeError from selftest",  # through the suppressed context
        "exception RuntimeError from locals",
        "repr/str of a Leaky",
    }, kinds
    assert sum("from locals" in entry for entry in watch.found) >= len(CANARIES)
    watch.found.clear()


def test_reads_and_objects(watch: Watch) -> None:
    changes: list[tuple[Any, ...]] = []
    cache = make_cache(
        min_refresh_interval=0.0, on_change=lambda *args: changes.append(args), ttl=600
    )
    for kind in KINDS:
        text = cache.get_secret_string(f"canary/{kind}/string")
        assert text == SECRETS[f"canary/{kind}/string"], f"wrong {kind} value read"
        document = cache.get_secret_json(f"canary/{kind}/json")
        assert document["password"] == f"pw-{CANARIES[kind]}", f"wrong {kind} JSON value"
    assert cache.get_secret_binary("canary/binary") == SECRETS["canary/binary"], "wrong binary"
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


@pytest.mark.parametrize("kind", KINDS)
def test_error_paths(watch: Watch, kind: str) -> None:
    cache = make_cache(ttl=600, retry_attempts=2, min_refresh_interval=0.0)
    faults = Faults(cache.client)
    w = watch
    for shape in ("bad-json", "array", "scalar", "deep", "string"):
        name = f"canary/{kind}/{shape}"
        for _ in range(2):  # cold, then with the record cached
            w.raises(SecretDecodeError, lambda n=name: cache.get_secret_json(n))
        w.raises(SecretDecodeError, lambda n=name: cache.get_secret(n).json())
        w.raises(SecretDecodeError, lambda n=name: cache.get_secret_binary(n))
    w.raises(SecretDecodeError, lambda: cache.get_secret_json("canary/binary"))
    w.raises(SecretDecodeError, lambda: cache.get_secret_string("canary/binary"))
    w.raises(SecretNotFoundError, lambda: cache.get_secret_string("canary/none"))
    string = f"canary/{kind}/string"
    w.raises(SecretNotFoundError, lambda: cache.get_secret_string(string, "NOPE"))
    w.raises(SecretNotFoundError, lambda: cache.get_secret_string(string, version_id="x" * 32))
    w.raises(ValueError, lambda: cache.get_secret(string, "S", version_id="v" * 32))
    w.raises(ValueError, lambda: cache.get_secret_string(""))
    w.raises(TypeError, lambda: cache.get_secret_string(None))  # type: ignore[arg-type]
    value = cache.get_secret(f"canary/{kind}/json")
    for fault in ("throttling", "http-500", "access-denied", "kms-decryption-failure"):
        faults.set(fault)
        cache.invalidate(string)
        w.raises(SecretCacheError, lambda: cache.get_secret_string(string))
        w.raises(SecretCacheError, lambda: cache.refresh(f"canary/{kind}/json"))
        faults.clear()
    # a failing refresh of a cached value logs a warning and serves it
    cache2 = make_cache(ttl=0.0, max_stale=600)
    faults2 = Faults(cache2.client)
    assert cache2.get_secret_json(f"canary/{kind}/json")["username"] == "app"
    faults2.set("http-500")
    assert cache2.get_secret_json(f"canary/{kind}/json")["username"] == "app"
    faults2.set("read-timeout")
    watch.raises(SecretCacheError, lambda: cache2.get_secret_string(string))
    watch.objects_of(cache, cache2, value, cache2.stats())


@pytest.mark.parametrize("kind", KINDS)
def test_decorators(watch: Watch, kind: str) -> None:
    cache = make_cache(min_refresh_interval=0.0)
    seen: list[int] = []

    @inject_secret_string(f"canary/{kind}/string", cache=cache)
    def use(key: str) -> int:
        return len(key)

    @inject_secret_json(f"canary/{kind}/json", cache=cache, user="username", pwd="password")
    def connect(user: str, pwd: str) -> str:
        return user

    @inject_secret_json(f"canary/{kind}/json", cache=cache, user="username", missing="nope")
    def broken(user: str, missing: str) -> None:
        raise AssertionError("unreachable")

    @inject_secret_json(f"canary/{kind}/json", cache=cache, user="username")
    def fails(user: str) -> None:
        raise RuntimeError("the function's own failure, after the password was read")

    @inject_secret_string("canary/binary", cache=cache)
    def binary(key: str) -> None:
        raise AssertionError("unreachable")

    class Rejected(Exception):
        pass

    @refresh_on_error(f"canary/{kind}/string", Rejected, cache=cache)
    def call_api() -> None:
        seen.append(1)
        raise Rejected("401 from the far side")

    assert use() == len(SECRETS[f"canary/{kind}/string"])
    assert connect() == "app"
    watch.raises(SecretDecodeError, broken)
    watch.raises(RuntimeError, fails)
    watch.raises(SecretDecodeError, binary)
    for shape in ("bad-json", "array", "deep"):

        @inject_secret_json(f"canary/{kind}/{shape}", cache=cache, pwd="password")
        def bad(pwd: str) -> None:
            raise AssertionError("unreachable")

        @inject_secret_json(f"canary/{kind}/{shape}", cache=cache)
        def whole(document: Any) -> None:
            raise AssertionError("unreachable")

        watch.raises(SecretDecodeError, bad)
        watch.raises(SecretDecodeError, whole)
    watch.raises(Rejected, call_api)
    assert seen == [1]
    watch.objects_of(use, connect, call_api)


@pytest.mark.parametrize("kind", KINDS)
def test_async_decorators(watch: Watch, kind: str) -> None:
    aio = importlib.import_module("secretcache.aio")
    sync_cache = make_cache(min_refresh_interval=0.0)
    async_cache = aio.AsyncSecretCache(config=CacheConfig(min_refresh_interval=0.0))

    class Rejected(Exception):
        pass

    for cache in (sync_cache, async_cache):

        @inject_secret_json(f"canary/{kind}/json", cache=cache, user="username", missing="nope")
        async def broken(user: str, missing: str) -> None:
            raise AssertionError("unreachable")

        @inject_secret_json(f"canary/{kind}/bad-json", cache=cache)
        async def bad(document: Any) -> None:
            raise AssertionError("unreachable")

        @inject_secret_json(f"canary/{kind}/json", cache=cache, user="username")
        async def fails(user: str) -> None:
            raise RuntimeError("the function's own failure")

        @refresh_on_error(f"canary/{kind}/string", Rejected, cache=cache)
        async def call_api() -> None:
            raise Rejected("401 from the far side")

        for func, error in (
            (broken, SecretDecodeError),
            (bad, SecretDecodeError),
            (fails, RuntimeError),
            (call_api, Rejected),
        ):
            watch.raises(error, lambda f=func: asyncio.run(f()))
        watch.objects_of(cache, cache.stats())


@pytest.mark.parametrize("kind", KINDS)
def test_lambda(watch: Watch, kind: str) -> None:
    aws_lambda = importlib.import_module("secretcache.aws_lambda")
    cache = make_cache()
    received: dict[str, Any] = {}

    @aws_lambda.with_secrets(
        cache=cache, db=f"canary/{kind}/json", key=f"canary/{kind}/string", raw="canary/binary"
    )
    def handler(event: Any, context: Any, *, db: Any, key: str, raw: bytes) -> dict[str, int]:
        received.update(db=db, key=key, raw=raw)
        return {"status": 200}

    @aws_lambda.with_secrets(cache=cache, db=f"canary/{kind}/json", key=f"canary/{kind}/string")
    def failing(event: Any, context: Any, *, db: Any, key: str) -> None:
        raise RuntimeError("the handler's own failure")

    assert handler({}, None) == {"status": 200}
    assert received["db"]["password"] == f"pw-{CANARIES[kind]}", "wrong JSON passed"
    assert received["key"] == SECRETS[f"canary/{kind}/string"]
    received.clear()
    # The handler's own frame holds what it received; a test override keeps the
    # secrets out of it, so any canary found is one the wrapper kept.
    watch.raises(RuntimeError, lambda: failing({}, None, db={}, key=""))
    watch.raises(SecretCacheError, lambda: aws_lambda.with_secrets(cache=cache, a="canary/missing"))

    def typed(event: Any, context: Any, *, token: dict[str, Any]) -> None:
        raise AssertionError("unreachable")

    for shape in ("string", "bad-json", "array", "deep"):
        decorate = aws_lambda.with_secrets(cache=cache, token=f"canary/{kind}/{shape}")
        watch.raises(SecretDecodeError, lambda d=decorate: d(typed))
    watch.objects_of(handler, cache, cache.stats())


@pytest.mark.parametrize("kind", KINDS)
def test_compat(watch: Watch, kind: str) -> None:
    compat = importlib.import_module("secretcache.compat")
    import boto3
    from botocore.exceptions import ParamValidationError

    client = boto3.session.Session().client("secretsmanager")
    string = f"canary/{kind}/string"

    class Hook(compat.SecretCacheHook):  # type: ignore[misc]
        def put(self, obj: Any) -> Any:
            return obj

        def get(self, cached_obj: Any) -> Any:
            return cached_obj

    plain = compat.SecretCache(config=compat.SecretCacheConfig(), client=client)
    hooked = compat.SecretCache(
        config=compat.SecretCacheConfig(secret_cache_hook=Hook()), client=client
    )
    for cache in (plain, hooked):
        assert cache.get_secret_string(string) == SECRETS[string]
        assert cache.get_secret_binary("canary/binary") == SECRETS["canary/binary"]
        assert cache.refresh_secret_now(string) is True

        @compat.InjectSecretString(string, cache)
        def use(key: str) -> int:
            return len(key)

        @compat.InjectKeywordedSecretString(f"canary/{kind}/json", cache, user="username")
        def connect(user: str) -> str:
            return user

        @compat.InjectKeywordedSecretString(f"canary/{kind}/json", cache, u="username", x="nope")
        def missing(u: str, x: str) -> None:
            raise AssertionError("unreachable")

        assert use() == len(SECRETS[string])
        assert connect() == "app"
        watch.raises(RuntimeError, missing)
        for shape in ("bad-json", "array", "deep"):

            @compat.InjectKeywordedSecretString(f"canary/{kind}/{shape}", cache, x="password")
            def bad(x: str) -> None:
                raise AssertionError("unreachable")

            watch.raises((RuntimeError, TypeError), bad)
        watch.raises(Exception, lambda c=cache: c.get_secret_string("canary/none"))
        watch.raises(ParamValidationError, lambda c=cache: c.get_secret_string(""))
        watch.objects_of(cache, use, connect)
    watch.objects_of(compat.SecretCacheConfig())


@pytest.mark.parametrize(
    "argv",
    [
        ["get", "canary/json", "--json-key", "no-such-key"],
        ["get", "canary/bad-json", "--json-key", "password"],
        ["get", "canary/array", "--json-key", "password"],
        ["get", "canary/binary", "--json-key", "password"],
        ["get", "canary/wide/deep", "--json-key", "p"],
        ["get", "canary/surrogate/bad-json", "--json-key", "password"],
        ["get", "canary/none"],
        ["get", "canary/string", "--stage", "NOPE"],
        ["get", "canary/string", "--version-id", "short"],
        ["get", "canary/string", "--version-id", "0" * 32],
        ["get", "canary/string", "--profile", "no-such-profile"],
        ["get", "canary/string", "--endpoint-url", "not a url"],
        ["get", ""],
    ],
)
def test_cli_error_paths(watch: Watch, argv: list[str]) -> None:
    cli = importlib.import_module("secretcache.__main__")
    code = cli.main(argv)
    assert code != 0, "an error path exited 0"


@pytest.mark.parametrize("kind", ["wide", "surrogate"])
@pytest.mark.parametrize("encoding", ["ascii", "latin-1"])
def test_cli_output_that_cannot_show_the_value(
    watch: Watch, monkeypatch: pytest.MonkeyPatch, kind: str, encoding: str
) -> None:
    """In process: stdout with a narrow encoding; the value must not come out in pieces."""
    cli = importlib.import_module("secretcache.__main__")
    buffer = io.BytesIO()
    narrow = io.TextIOWrapper(buffer, encoding=encoding, errors="strict")
    monkeypatch.setattr(sys, "stdout", narrow)
    for argv in (
        ["get", f"canary/{kind}/string"],
        ["get", f"canary/{kind}/json", "--json-key", "password"],
    ):
        assert cli.main(argv) == 1
        narrow.flush()
        assert buffer.getvalue() == b"", "something was written to the narrow stdout"


def test_cli_when_the_service_fails(watch: Watch, monkeypatch: pytest.MonkeyPatch) -> None:
    cli = importlib.import_module("secretcache.__main__")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    assert cli.main(["get", "canary/string"]) != 0


# ----------------------------------------------------------- database adapters


def _db_secret(
    watch: Watch, name: str, host: str, port: int, user: str, dbname: str, kind: str
) -> None:
    canary = CANARIES[kind]
    wrong = {
        "username": user,
        "password": f"wrong-{canary}",
        "host": host,
        "port": port,
        "dbname": dbname,
    }
    with watch.setup():
        watch.sm.create_secret(  # type: ignore[attr-defined]
            Name=name, SecretString=json.dumps(wrong, ensure_ascii=False)
        )
        watch.sm.put_secret_value(  # type: ignore[attr-defined]
            SecretId=name,
            SecretString=json.dumps({**wrong, "password": f"pending-{canary}"}, ensure_ascii=False),
            VersionStages=["AWSPENDING"],
        )


@pytest.mark.db
@pytest.mark.parametrize("kind", KINDS)
def test_postgres_wrong_password(watch: Watch, postgres: Any, kind: str) -> None:
    sc_psycopg = importlib.import_module("secretcache.db.psycopg")
    sc_sqlalchemy = importlib.import_module("secretcache.db.sqlalchemy")

    user = f"canary{uuid.uuid4().hex[:8]}"
    postgres.create_role(user, "the-right-one")
    postgres.create_database(user, user)
    name = f"canary/pg/{user}"
    _db_secret(watch, name, postgres.host, postgres.port, user, user, kind)
    cache = make_cache()
    watch.raises(Exception, lambda: sc_psycopg.connect(name, cache=cache, connect_timeout=5))
    factory = sc_psycopg.connection_factory(name, cache=cache, connect_timeout=5)
    watch.raises(Exception, factory)
    engine = sc_sqlalchemy.create_engine(name, "postgresql+psycopg://", cache=cache)
    try:
        watch.raises(Exception, engine.connect)
        watch.objects_of(engine, engine.url, engine.pool)
    finally:
        engine.dispose()
    no_user = f"canary/{kind}/no-user"
    watch.raises(SecretDecodeError, lambda: sc_psycopg.connect(no_user, cache=cache))


@pytest.mark.db
@pytest.mark.parametrize("kind", KINDS)
def test_mysql_wrong_password(watch: Watch, mariadb: Any, kind: str) -> None:
    sc_pymysql = importlib.import_module("secretcache.db.pymysql")
    sc_sqlalchemy = importlib.import_module("secretcache.db.sqlalchemy")

    user = f"canary{uuid.uuid4().hex[:8]}"
    mariadb.create_database(user)
    mariadb.create_user(user, "the-right-one")
    mariadb.grant_all(user, user)
    name = f"canary/my/{user}"
    _db_secret(watch, name, mariadb.host, mariadb.port, user, user, kind)
    cache = make_cache()
    watch.raises(Exception, lambda: sc_pymysql.connect(name, cache=cache, connect_timeout=5))
    factory = sc_pymysql.connection_factory(name, cache=cache)
    watch.raises(Exception, factory)
    engine = sc_sqlalchemy.create_engine(name, "mysql+pymysql://", cache=cache)
    try:
        watch.raises(Exception, engine.connect)
        watch.objects_of(engine, engine.url, engine.pool)
    finally:
        engine.dispose()
    no_user = f"canary/{kind}/no-user"
    watch.raises(SecretDecodeError, lambda: sc_pymysql.connect(no_user, cache=cache))
