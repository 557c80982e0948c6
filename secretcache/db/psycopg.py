"""psycopg 3 connections whose credentials follow Secrets Manager rotations.

```python
from secretcache.db import psycopg as sc_psycopg

conn = sc_psycopg.connect("prod/pg", connect_timeout=5)
```

Keyword arguments are psycopg's (``host``, ``port``, ``dbname`` override the
secret's; anything else passes through). The password reaches libpq as its own
keyword, never spliced into a conninfo string.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import psycopg

from ..cache import SecretCache
from ._connect import Driver, rotating_connect

__all__ = ["PsycopgDriver", "connect", "connection_factory", "is_auth_failure"]

_AUTH_SQLSTATES = frozenset({"28P01", "28000"})
# libpq reports a failed login as text only (no SQLSTATE); this is the server's
# message for a wrong password or unknown role under md5/scram authentication.
_AUTH_MESSAGE = re.compile(r'\bpassword authentication failed for user "')


def is_auth_failure(exc: BaseException) -> bool:
    """The one place that decides whether PostgreSQL rejected the credential."""
    if not isinstance(exc, psycopg.OperationalError):
        return False
    sqlstate = getattr(exc, "sqlstate", None)
    if sqlstate:
        return sqlstate in _AUTH_SQLSTATES
    return _AUTH_MESSAGE.search(str(exc)) is not None


class PsycopgDriver(Driver[Any]):
    """psycopg's part of the rotation-aware connect: ``Connection`` and ``AsyncConnection``."""

    name = "psycopg"
    connection_types = (psycopg.Connection, psycopg.AsyncConnection)

    def __init__(
        self,
        connect: Callable[..., Any] | None = None,
        *,
        async_connect: Callable[..., Awaitable[Any]] | None = None,
    ) -> None:
        self._connect = connect if connect is not None else psycopg.connect
        self._async_connect = (
            async_connect if async_connect is not None else psycopg.AsyncConnection.connect
        )

    def open(self, args: Sequence[Any], params: dict[str, Any]) -> Any:
        return self._connect(*args, **params)

    async def open_async(self, args: Sequence[Any], params: dict[str, Any]) -> Any:
        return await self._async_connect(*args, **params)

    def is_auth_failure(self, exc: BaseException) -> bool:
        return is_auth_failure(exc)

    def sanitize(self, exc: BaseException, passwords: Sequence[str]) -> BaseException:
        # The copy is built without ``pgconn``: psycopg keeps the failed libpq
        # connection there, and its ``password`` is the one just tried.
        clean = super().sanitize(exc, passwords)
        sqlstate = getattr(exc, "sqlstate", None)
        if sqlstate and isinstance(clean, psycopg.Error):
            clean.sqlstate = sqlstate
        return clean


_DRIVER = PsycopgDriver()


def connect(
    secret_id: str, *, cache: SecretCache | None = None, **kwargs: Any
) -> psycopg.Connection[Any]:
    """A new ``psycopg.Connection`` logged in with the secret's current credential.

    During a rotation the credential that works is found as described in
    ``docs/rotation.md``; a login no label fixes raises psycopg's
    ``OperationalError`` with the other attempts chained and no password in it.
    """
    return rotating_connect(_DRIVER, secret_id, cache=cache, overrides=kwargs)


def connection_factory(
    secret_id: str, *, cache: SecretCache | None = None, **kwargs: Any
) -> Callable[[], psycopg.Connection[Any]]:
    """A zero-argument callable doing :func:`connect` -- for pools that take a factory."""

    def new_connection() -> psycopg.Connection[Any]:
        return rotating_connect(_DRIVER, secret_id, cache=cache, overrides=kwargs)

    new_connection.__qualname__ = new_connection.__name__ = (
        f"psycopg_connection_factory[{secret_id}]"
    )
    return new_connection
