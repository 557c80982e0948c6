"""PyMySQL connections (MySQL, MariaDB) whose credentials follow Secrets Manager rotations.

```python
from secretcache.db import pymysql as sc_pymysql

conn = sc_pymysql.connect("prod/mysql", connect_timeout=5)
```

Keyword arguments are PyMySQL's (``host``, ``port``, ``database`` -- or ``db``
or ``dbname`` -- override the secret's; anything else passes through).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pymysql

from ..cache import SecretCache
from ._connect import Credential, Driver, rotating_connect

__all__ = ["ACCESS_DENIED", "PyMySQLDriver", "connect", "connection_factory", "is_auth_failure"]

ACCESS_DENIED = 1045
"""ER_ACCESS_DENIED_ERROR: the server refused the user/password pair."""


def is_auth_failure(exc: BaseException) -> bool:
    """The one place that decides whether MySQL/MariaDB rejected the credential."""
    return (
        isinstance(exc, pymysql.err.OperationalError)
        and bool(exc.args)
        and exc.args[0] == ACCESS_DENIED
    )


class PyMySQLDriver(Driver[Any]):
    """PyMySQL's part of the rotation-aware connect."""

    name = "pymysql"
    dbname_key = "database"
    dbname_aliases = ("db", "dbname")
    connection_types = (pymysql.connections.Connection,)

    def __init__(self, connect: Callable[..., Any] | None = None) -> None:
        self._connect = connect if connect is not None else pymysql.connect

    def params(self, credential: Credential, overrides: Mapping[str, Any]) -> dict[str, Any]:
        if "dbname" in overrides:  # accept the secret's spelling too
            overrides = dict(overrides)
            overrides["database"] = overrides.pop("dbname")
        return super().params(credential, overrides)

    def open(self, args: Sequence[Any], params: dict[str, Any]) -> Any:
        return self._connect(*args, **params)

    def is_auth_failure(self, exc: BaseException) -> bool:
        return is_auth_failure(exc)


_DRIVER = PyMySQLDriver()


def connect(secret_id: str, *, cache: SecretCache | None = None, **kwargs: Any) -> Any:
    """A new ``pymysql.connections.Connection`` with the secret's current credential.

    A login no label fixes raises PyMySQL's ``OperationalError`` (1045) with
    the other attempts chained and no password in it.
    """
    return rotating_connect(_DRIVER, secret_id, cache=cache, overrides=kwargs)


def connection_factory(
    secret_id: str, *, cache: SecretCache | None = None, **kwargs: Any
) -> Callable[[], Any]:
    """A zero-argument callable doing :func:`connect` -- for pools that take a factory."""

    def new_connection() -> Any:
        return rotating_connect(_DRIVER, secret_id, cache=cache, overrides=kwargs)

    new_connection.__qualname__ = new_connection.__name__ = (
        f"pymysql_connection_factory[{secret_id}]"
    )
    return new_connection
