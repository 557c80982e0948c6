"""No password reachable from any error a database adapter raises (issue 10).

Every error provoked here -- on the real servers, through every adapter -- is
rendered the way error trackers render it (traceback with local variables,
pickle, chain, args, attributes, notes) by ``tests.leakcheck.find_leaks``, and so
is every log record written meanwhile, SQLAlchemy's pool DEBUG records included.
The passwords are canaries: non-ASCII (latin-1, non-latin-1, CJK, emoji), a lone
surrogate, a NUL byte. Failure messages name where a canary was found, never
the canary.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import hashlib
import json
import logging
import pickle
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pymysql
import pytest
import sqlalchemy
from sqlalchemy import pool as sa_pool
from sqlalchemy import text

from secretcache import SecretCache, SecretDecodeError
from secretcache._demo.rotation import new_password
from secretcache.db import psycopg as sc_psycopg
from secretcache.db import pymysql as sc_pymysql
from secretcache.db import sqlalchemy as sc_sqlalchemy
from secretcache.db._connect import Credential
from secretcache.value import SecretValue
from tests.leakcheck import find_leaks

from .conftest import DbSecret

pytestmark = pytest.mark.db

URLS = {"postgres": "postgresql+psycopg://", "mariadb": "mysql+pymysql://"}
ADAPTERS = [
    ("psycopg", "postgres"),
    ("pymysql", "mariadb"),
    ("sqlalchemy", "postgres"),
    ("sqlalchemy", "mariadb"),
]
ADAPTER_IDS = [f"{a}-{k}" for a, k in ADAPTERS]
POOLS: dict[str, Any] = {
    "QueuePool": None,  # SQLAlchemy's default
    "NullPool": sa_pool.NullPool,
    "StaticPool": sa_pool.StaticPool,
    "SingletonThreadPool": sa_pool.SingletonThreadPool,
    "AssertionPool": sa_pool.AssertionPool,
}

ALPHABETS = {
    "ascii": "%:?#&+;@/",
    "latin1": "é-ü",
    "euro": "€",
    "polish": "ł",
    "cjk": "秘密の鍵",
    "emoji": "🔑",
}
NON_LATIN1 = {"euro", "polish", "cjk", "emoji"}


class Canaries:
    """Passwords to look for, each with a unique token; repr never shows them."""

    def __init__(self) -> None:
        self.needles: list[str] = []
        self.records: list[logging.LogRecord] = []  # what the libraries logged meanwhile

    def new(self, alphabet: str = "ascii") -> str:
        token = uuid.uuid4().hex
        password = f"CANARY-{token}-{ALPHABETS.get(alphabet, alphabet)}"
        self.needles += [password, token]
        return password

    def __repr__(self) -> str:
        return f"<{len(self.needles) // 2} canaries>"

    def leaks(self, exc: BaseException) -> list[str]:
        return find_leaks(exc, self.needles)

    def log_leaks(self, records: list[logging.LogRecord]) -> list[str]:
        found: list[str] = []
        for record in records:
            where = f"log record {record.name}:{record.levelname}"
            args = record.args if isinstance(record.args, tuple) else (record.args,)
            for arg in args:
                if isinstance(arg, BaseException):
                    found += [f"{where} arg: {w}" for w in self.leaks(arg)]
            if record.exc_info and record.exc_info[1] is not None:
                found += [f"{where} exc_info: {w}" for w in self.leaks(record.exc_info[1])]
            texts = [record.getMessage(), repr(record.args), str(record.msg)]
            if any(n in t for n in self.needles for t in texts):
                found.append(where)
        return found


LOGGERS = ("secretcache", "sqlalchemy")
"""The loggers a database connect writes to (botocore's are the cache's concern)."""


class _Keep(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def canaries() -> Iterator[Canaries]:
    """Canaries, and a check that no DEBUG record of the libraries involved holds one.

    The records go to a handler of our own and do not propagate, so pytest never
    prints them (a leaked canary would otherwise be in the failure report).
    """
    keep = _Keep()
    saved = []
    for name in LOGGERS:
        logger = logging.getLogger(name)
        saved.append((logger, logger.level, logger.propagate))
        logger.setLevel(logging.DEBUG)
        logger.propagate = False
        logger.addHandler(keep)
    found = Canaries()
    found.records = keep.records
    try:
        yield found
    finally:
        for logger, level, propagate in saved:
            logger.removeHandler(keep)
            logger.setLevel(level)
            logger.propagate = propagate
    leaks = found.log_leaks(keep.records)
    assert not leaks, f"a canary is reachable from log records: {leaks}"


def provoke(action: Callable[[], Any]) -> BaseException:
    """The exception ``action`` raises (the test fails, naming only classes, if none)."""
    try:
        action()
    except BaseException as exc:
        return exc
    raise AssertionError("no exception was raised")


def check(canaries: Canaries, exc: BaseException, expected: type[BaseException]) -> None:
    leaks = canaries.leaks(exc)
    assert not leaks, f"a canary is reachable from the {type(exc).__name__}: {leaks}"
    assert isinstance(exc, expected), f"expected {expected.__name__}, got {type(exc).__name__}"


def connect_once(
    adapter: str, kind: str, setup: DbSecret, cache: SecretCache, poolclass: Any = None, **kw: Any
) -> None:
    """One login + SELECT 1 through the adapter (any error propagates)."""
    if adapter == "psycopg":
        with sc_psycopg.connect(setup.secret_id, cache=cache, connect_timeout=5, **kw) as conn:
            conn.execute("SELECT 1").fetchone()
        return
    if adapter == "pymysql":
        conn = sc_pymysql.connect(setup.secret_id, cache=cache, connect_timeout=5, **kw)
        conn.close()
        return
    extra: dict[str, Any] = {} if poolclass is None else {"poolclass": poolclass}
    engine = sc_sqlalchemy.create_engine(
        setup.secret_id, URLS[kind], cache=cache, connect_args={"connect_timeout": 5, **kw}, **extra
    )
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1")).scalar()
    finally:
        engine.dispose()


def secret_of(setup: DbSecret, **changes: Any) -> dict[str, Any]:
    """The test secret's document (as make_db_secret wrote it), with ``changes``."""
    document: dict[str, Any] = {
        "host": setup.db.host,
        "port": setup.db.port,
        "username": setup.username,
        "dbname": setup.dbname,
    }
    document.update(changes)
    return document


def put(setup: DbSecret, secret_string: str, stage: str = "AWSCURRENT") -> None:
    """Store a raw SecretString under a label (AWSCURRENT moves the old one to AWSPREVIOUS).

    One client per test: creating a boto3 client costs more than the call.
    """
    client = getattr(setup, "_writer", None)
    if client is None:
        client = setup.moto.client()
        setup._writer = client  # type: ignore[attr-defined]
    if stage == "AWSCURRENT":
        client.put_secret_value(SecretId=setup.secret_id, SecretString=secret_string)
    else:
        client.put_secret_value(
            SecretId=setup.secret_id,
            ClientRequestToken=str(uuid.uuid4()),
            SecretString=secret_string,
            VersionStages=[stage],
        )


def login_error(adapter: str, kind: str) -> type[BaseException]:
    if adapter == "sqlalchemy":
        return sqlalchemy.exc.OperationalError
    return psycopg.OperationalError if kind == "postgres" else pymysql.err.OperationalError


# ------------------------------------------------------- passwords of every kind


class Cases:
    """Several cases on one database secret, each with a fresh cache; failures named by case.

    Creating a database, its users and a boto3 client costs more than the case
    itself, so the cases of one adapter share them.
    """

    def __init__(self, setup: DbSecret, canaries: Canaries) -> None:
        self.setup = setup
        self.canaries = canaries
        self.client = setup.moto.client()
        self.failures: list[str] = []

    def cache(self) -> SecretCache:
        return SecretCache(client=self.client)

    def expect(self, case: str, error: BaseException, expected: type[BaseException]) -> None:
        leaks = self.canaries.leaks(error)
        if leaks:
            self.failures.append(f"{case}: a canary is reachable from the error: {leaks}")
        if not isinstance(error, expected):
            got = type(error).__name__
            self.failures.append(f"{case}: expected {expected.__name__}, got {got}")

    def done(self) -> None:
        assert not self.failures, "\n".join(self.failures)


@pytest.mark.parametrize(("adapter", "kind"), ADAPTERS, ids=ADAPTER_IDS)
def test_rejected_login_with_any_alphabet_leaks_nothing(
    make_db_secret: Callable[..., DbSecret], canaries: Canaries, adapter: str, kind: str
) -> None:
    """Every label holds a canary the server does not accept, in each alphabet.

    PyMySQL cannot encode a password outside latin-1: its ``UnicodeEncodeError``
    used to carry the whole password in ``.object`` and ``args``.
    """
    setup = make_db_secret(kind)
    setup.db.set_password(setup.username, new_password())  # no label knows this one
    cases = Cases(setup, canaries)
    for alphabet in ALPHABETS:
        put(setup, json.dumps(secret_of(setup, password=canaries.new(alphabet))))
        put(setup, json.dumps(secret_of(setup, password=canaries.new(alphabet))), "AWSPENDING")
        put(setup, json.dumps(secret_of(setup, password=canaries.new(alphabet))))
        error = provoke(lambda: connect_once(adapter, kind, setup, cases.cache()))
        expected: type[BaseException] = login_error(adapter, kind)
        if kind == "mariadb" and alphabet in NON_LATIN1:
            expected = UnicodeEncodeError
        cases.expect(alphabet, error, expected)
    cases.done()


@pytest.mark.parametrize("kind", ["postgres", "mariadb"])
def test_sqlalchemy_every_pool_mode_and_its_debug_log_leak_nothing(
    make_db_secret: Callable[..., DbSecret], canaries: Canaries, kind: str
) -> None:
    setup = make_db_secret(kind)
    setup.db.set_password(setup.username, new_password())
    cases = Cases(setup, canaries)
    for alphabet in ("ascii", "euro"):
        put(setup, json.dumps(secret_of(setup, password=canaries.new(alphabet))))
        for pool, poolclass in POOLS.items():
            logged = len(canaries.records)
            error = provoke(
                functools.partial(
                    connect_once, "sqlalchemy", kind, setup, cases.cache(), poolclass=poolclass
                )
            )
            expected: type[BaseException] = sqlalchemy.exc.OperationalError
            if kind == "mariadb" and alphabet == "euro":
                expected = UnicodeEncodeError
            case = f"{pool}, {alphabet}"
            cases.expect(case, error, expected)
            pool_errors = [
                r
                for r in canaries.records[logged:]
                if r.getMessage().startswith("Error on connect")
            ]
            if not pool_errors:
                cases.failures.append(f"{case}: the pool logged no failed connect to check")
    cases.done()


# --------------------------------------------------------- passwords no driver sends


@pytest.mark.parametrize(("adapter", "kind"), ADAPTERS, ids=ADAPTER_IDS)
def test_password_with_nul_or_lone_surrogate_is_refused_by_name(
    make_db_secret: Callable[..., DbSecret], canaries: Canaries, adapter: str, kind: str
) -> None:
    setup = make_db_secret(kind)
    cases = Cases(setup, canaries)
    for bad, tail in (("NUL", "\0tail"), ("lone surrogate", "\ud800")):
        put(setup, json.dumps(secret_of(setup, password=canaries.new() + tail)))
        error = provoke(lambda: connect_once(adapter, kind, setup, cases.cache()))
        cases.expect(bad, error, SecretDecodeError)
        if isinstance(error, SecretDecodeError):
            named = error.secret_id == setup.secret_id and error.version_stage == "AWSCURRENT"
            if not (named and "'password'" in str(error)):
                cases.failures.append(f"{bad}: the error does not name the secret, stage and key")
    cases.done()


def test_psycopg_does_not_log_in_with_a_password_cut_at_nul(
    make_db_secret: Callable[..., DbSecret], canaries: Canaries
) -> None:
    """libpq cuts the password at NUL; the cut password must not be what logs in."""
    setup = make_db_secret("postgres")
    head = canaries.new()
    setup.db.set_password(setup.username, head)
    put(setup, json.dumps(secret_of(setup, password=head + "\0" + canaries.new())))

    error = provoke(lambda: connect_once("psycopg", "postgres", setup, setup.cache()))

    check(canaries, error, SecretDecodeError)


# --------------------------------------------------------------- secrets that are not


MALFORMED = {
    "no username": lambda pw: json.dumps({"password": pw, "host": "127.0.0.1"}),
    "password not a string": lambda pw: json.dumps({"username": "u", "password": [pw]}),
    "port not a number": lambda pw: json.dumps({"username": "u", "password": pw, "port": pw}),
    "port 1e400": lambda pw: '{"username": "u", "password": "' + pw + '", "port": 1e400}',
    "not JSON": lambda pw: '{"username": "u", "password": "' + pw + '"',
    "JSON list": lambda pw: json.dumps(["u", pw]),
}


@pytest.mark.parametrize(("adapter", "kind"), ADAPTERS, ids=ADAPTER_IDS)
def test_malformed_awscurrent_raises_decode_error_holding_nothing(
    make_db_secret: Callable[..., DbSecret], canaries: Canaries, adapter: str, kind: str
) -> None:
    setup = make_db_secret(kind)
    cases = Cases(setup, canaries)
    for shape, document in MALFORMED.items():
        put(setup, document(canaries.new()))
        error = provoke(lambda: connect_once(adapter, kind, setup, cases.cache()))
        cases.expect(shape, error, SecretDecodeError)
    cases.done()


@pytest.mark.parametrize("shape", list(MALFORMED))
def test_credential_from_value_raises_from_a_frame_holding_nothing(
    canaries: Canaries, shape: str
) -> None:
    value = SecretValue(
        name="db", arn=None, version_id="v1", secret_string=MALFORMED[shape](canaries.new())
    )
    error = provoke(lambda: Credential.from_value("db", "AWSCURRENT", value))
    check(canaries, error, SecretDecodeError)


@pytest.mark.parametrize(("adapter", "kind"), ADAPTERS, ids=ADAPTER_IDS)
def test_wrong_awscurrent_and_malformed_awspending_chain_holds_nothing(
    make_db_secret: Callable[..., DbSecret], canaries: Canaries, adapter: str, kind: str
) -> None:
    """The final login error chains the AWSPENDING SecretDecodeError: no password in its frames."""
    setup = make_db_secret(kind)
    setup.db.set_password(setup.username, new_password())
    cases = Cases(setup, canaries)
    for shape in ("not JSON", "no username", "port 1e400"):
        put(setup, json.dumps(secret_of(setup, password=canaries.new())))
        put(setup, MALFORMED[shape](canaries.new()), "AWSPENDING")
        error = provoke(lambda: connect_once(adapter, kind, setup, cases.cache()))
        cases.expect(shape, error, login_error(adapter, kind))
        if not any(isinstance(item, SecretDecodeError) for item in _chain(error)):
            cases.failures.append(f"{shape}: the AWSPENDING decode error is not chained")
    cases.done()


def _chain(error: BaseException) -> list[BaseException]:
    pending: list[BaseException | None] = [error]
    seen: list[BaseException] = []
    while pending:
        item = pending.pop()
        if item is None or any(item is s for s in seen):
            continue
        seen.append(item)
        pending += [item.__cause__, item.__context__, getattr(item, "orig", None)]
    return seen


# ---------------------------------------------------- foreign errors while connecting


@pytest.mark.parametrize(("adapter", "kind"), ADAPTERS, ids=ADAPTER_IDS)
def test_mistyped_keyword_leaks_nothing(
    make_db_secret: Callable[..., DbSecret], canaries: Canaries, adapter: str, kind: str
) -> None:
    setup = make_db_secret(kind, password=canaries.new())
    error = provoke(lambda: connect_once(adapter, kind, setup, setup.cache(), timeout=3))
    # PyMySQL: TypeError (unexpected keyword); libpq: "invalid connection option".
    expected: type[BaseException] = TypeError if kind == "mariadb" else psycopg.ProgrammingError
    if adapter == "sqlalchemy" and kind == "postgres":
        expected = sqlalchemy.exc.ProgrammingError
    check(canaries, error, expected)
    assert "timeout" in str(error)


@pytest.mark.parametrize(("adapter", "kind"), ADAPTERS, ids=ADAPTER_IDS)
def test_missing_tls_file_leaks_nothing(
    make_db_secret: Callable[..., DbSecret], canaries: Canaries, adapter: str, kind: str
) -> None:
    setup = make_db_secret(kind, password=canaries.new())
    missing = f"/nonexistent-{uuid.uuid4().hex}/ca.pem"
    if kind == "mariadb":
        options: dict[str, Any] = {"ssl_ca": missing}
        expected: type[BaseException] = FileNotFoundError
    else:
        options = {"sslmode": "verify-ca", "sslrootcert": missing}
        expected = psycopg.OperationalError
    if adapter == "sqlalchemy" and kind == "postgres":
        expected = sqlalchemy.exc.OperationalError
    error = provoke(lambda: connect_once(adapter, kind, setup, setup.cache(), **options))
    check(canaries, error, expected)


def _sessions_of(setup: DbSecret) -> int:
    """Sessions of the test user, once those that are closing have gone (bounded wait).

    A backend leaves ``pg_stat_activity`` a moment after its client closed; a
    connection left open stays for as long as the error is held, so waiting up to
    a generous bound tells the two apart without timing anything.
    """
    deadline = time.monotonic() + 20
    while True:
        with setup.db.server.admin_connect() as admin:  # type: ignore[union-attr]
            row = admin.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE usename = %s", (setup.username,)
            ).fetchone()
        count = int(row[0])
        if count == 0 or time.monotonic() > deadline:
            return count
        time.sleep(0.1)


@pytest.mark.parametrize("adapter", ["psycopg", "sqlalchemy"])
def test_error_after_a_successful_psycopg_login_closes_it_and_leaks_nothing(
    make_db_secret: Callable[..., DbSecret], canaries: Canaries, adapter: str
) -> None:
    """psycopg logs in, then applies ``context=``: an AttributeError strands the connection."""
    setup = make_db_secret("postgres", password=canaries.new())
    error = provoke(lambda: connect_once(adapter, "postgres", setup, setup.cache(), context=42))
    check(canaries, error, AttributeError)
    assert _sessions_of(setup) == 0, "the connection that logged in was left open"


# ---------------------------------------------------------------- the Credential


def _credential(canaries: Canaries) -> Credential:
    value = SecretValue(
        name="db",
        arn=None,
        version_id="v1",
        secret_string=json.dumps({"username": "app", "password": canaries.new(), "port": 5432}),
    )
    return Credential.from_value("db", "AWSCURRENT", value)


def test_credential_cannot_be_pickled_copied_or_turned_into_a_dict(canaries: Canaries) -> None:
    credential = _credential(canaries)
    check(canaries, provoke(lambda: pickle.dumps(credential)), TypeError)
    # copy and asdict raise from their own frames, which hold the object they were
    # given (the caller's): only that they refuse is ours to check.
    for action in (
        lambda: copy.copy(credential),
        lambda: copy.deepcopy(credential),
        lambda: dataclasses.asdict(credential),  # type: ignore[call-overload]
    ):
        assert isinstance(provoke(action), TypeError)
    assert not dataclasses.is_dataclass(credential)
    assert not any(n in repr(credential) for n in canaries.needles)


def test_fingerprint_is_a_keyed_hash_with_a_key_per_process(canaries: Canaries) -> None:
    credential = _credential(canaries)
    parts = (credential.username, credential.password, "", "5432", "")
    unsalted = hashlib.sha256("\0".join(parts).encode()).digest()
    assert credential.fingerprint() not in (unsalted, hashlib.sha256(b"").digest())
    assert credential.fingerprint() == credential.fingerprint()
    code = (
        "import json, sys\n"
        "from secretcache.db._connect import Credential\n"
        "from secretcache.value import SecretValue\n"
        "v = SecretValue(name='db', arn=None, version_id='v1', secret_string=sys.stdin.read())\n"
        "print(Credential.from_value('db', 'AWSCURRENT', v).fingerprint().hex())\n"
    )
    document = json.dumps({"username": "app", "password": credential.password, "port": 5432})
    other = subprocess.run(
        [sys.executable, "-c", code], input=document, capture_output=True, text=True, check=True
    )
    assert other.stdout.strip() != credential.fingerprint().hex()


@pytest.mark.parametrize(("adapter", "kind"), ADAPTERS, ids=ADAPTER_IDS)
def test_unencodable_dbname_leaks_nothing(
    make_db_secret: Callable[..., DbSecret], canaries: Canaries, adapter: str, kind: str
) -> None:
    """A field other than the password that the driver cannot encode: libpq's
    ``UnicodeEncodeError.object`` is then the whole connection string, password included."""
    setup = make_db_secret(kind)
    password = canaries.new()
    setup.db.set_password(setup.username, password)
    put(setup, json.dumps(secret_of(setup, password=password, dbname="db\ud800")))
    error = provoke(lambda: connect_once(adapter, kind, setup, setup.cache()))
    check(canaries, error, BaseException)


# ------------------------------------------------------------------- the scrubber


class Picky(Exception):
    """An exception whose constructor does not take its own ``args`` back."""

    def __init__(self, code: int, *, detail: str) -> None:
        super().__init__(code, detail)


def test_scrubbed_copies_mask_every_spelling_and_drop_attachments(canaries: Canaries) -> None:
    from secretcache.db._scrub import Mask, scrubbed_copy

    password = canaries.new("euro") + "'\\"
    mask = Mask([password])
    originals: list[BaseException] = [
        UnicodeEncodeError("latin-1", password, 7, 8, "ordinal not in range(256)"),
        UnicodeEncodeError("utf-8", f"host=h password='{password}'", 0, 1, "surrogates"),
        UnicodeDecodeError("utf-8", password.encode(), 0, 1, "invalid start byte"),
        ValueError(f"bad conninfo: password='{password.replace(chr(39), chr(92) + chr(39))}'"),
        ValueError(repr(password)),
        ValueError(password.encode()),
        ValueError(password.encode("unicode_escape").decode()),
        FileNotFoundError(2, "No such file", f"/tmp/{password}"),
        Picky(3, detail=f"with {password}"),
    ]
    for original in originals:
        original.add_note(f"note quoting {password}")
        clean = scrubbed_copy(original, mask)
        assert type(clean) is type(original)
        assert clean.__traceback__ is None and clean.__cause__ is None
        leaks = canaries.leaks(clean)
        assert not leaks, f"{type(original).__name__}: {leaks}"
