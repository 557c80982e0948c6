"""Which driver errors count as a rejected login (the one place per driver), without servers."""

from __future__ import annotations

import psycopg
import psycopg.errors
import pymysql
import pytest

from secretcache import SecretDecodeError
from secretcache.db import psycopg as sc_psycopg
from secretcache.db import pymysql as sc_pymysql
from secretcache.db._connect import Credential
from secretcache.value import SecretValue

PG_REJECTED = (
    'connection failed: connection to server at "127.0.0.1", port 5432 failed: '
    'FATAL:  password authentication failed for user "app"'
)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (psycopg.OperationalError(PG_REJECTED), True),
        (psycopg.errors.InvalidPassword("x"), True),  # SQLSTATE 28P01
        (psycopg.errors.InvalidAuthorizationSpecification("x"), True),  # 28000
        (
            psycopg.OperationalError(
                'connection to server at "127.0.0.1", port 1 failed: Connection refused'
            ),
            False,
        ),
        (psycopg.OperationalError('FATAL:  database "nope" does not exist'), False),
        (psycopg.errors.TooManyConnections('password authentication failed for user "'), False),
        (psycopg.InterfaceError(PG_REJECTED), False),
        (ValueError(PG_REJECTED), False),
    ],
)
def test_psycopg_rejections(error: BaseException, expected: bool) -> None:
    assert sc_psycopg.is_auth_failure(error) is expected


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (pymysql.err.OperationalError(1045, "Access denied for user 'app'@'127.0.0.1'"), True),
        (pymysql.err.OperationalError(2003, "Can't connect to MySQL server"), False),
        (pymysql.err.OperationalError(1049, "Unknown database 'x'"), False),
        (pymysql.err.InternalError(1045, "odd"), False),
        (pymysql.err.OperationalError(), False),
    ],
)
def test_pymysql_rejections(error: BaseException, expected: bool) -> None:
    assert sc_pymysql.is_auth_failure(error) is expected


def test_scrubbed_copy_keeps_class_and_sqlstate_and_masks_passwords() -> None:
    driver = sc_psycopg.PsycopgDriver()
    original = psycopg.errors.InvalidPassword("login with CANARY-pw failed")
    clean = driver.sanitize(original, ["CANARY-pw"])
    assert type(clean) is psycopg.errors.InvalidPassword
    assert getattr(clean, "sqlstate", None) == "28P01"
    assert "CANARY-pw" not in str(clean)
    assert clean.pgconn is None  # type: ignore[attr-defined]


def _value(text: str) -> SecretValue:
    return SecretValue(name="db", arn=None, version_id="v1", secret_string=text)


def test_credential_reads_rds_json_and_hides_the_password_in_repr() -> None:
    credential = Credential.from_value(
        "db",
        "AWSCURRENT",
        _value('{"username": "app", "password": "CANARY-x", "host": "h", "port": "5432"}'),
    )
    assert (credential.username, credential.host, credential.port) == ("app", "h", 5432)
    assert credential.dbname is None
    assert "CANARY" not in repr(credential)


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ('{"password": "CANARY-x"}', "'username'"),
        ('{"username": "app", "pass": "CANARY-x"}', "'password'"),
        ('{"username": "app", "password": 12345}', "'password'"),
        ('{"username": "app", "password": "CANARY-x", "port": "CANARY-port"}', "'port'"),
    ],
)
def test_credential_errors_name_the_key_not_the_value(text: str, named: str) -> None:
    caught: BaseException | None = None
    try:
        Credential.from_value("db", "AWSCURRENT", _value(text))
    except SecretDecodeError as exc:
        caught = exc
    assert caught is not None
    message = str(caught)
    leaked = "CANARY" in message or "CANARY" in repr(caught) or "12345" in message
    assert not leaked, "a value appears in the error"
    assert named in message
