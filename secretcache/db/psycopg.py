"""psycopg 3 connections and pools whose credentials follow Secrets Manager rotations.

```python
from secretcache.db import psycopg as sc_psycopg

conn = sc_psycopg.connect("prod/pg", connect_timeout=5)
conn = await sc_psycopg.connect_async("prod/pg", cache=async_cache)
with sc_psycopg.connection_pool("prod/pg", max_size=10) as pool: ...
async with sc_psycopg.async_connection_pool("prod/pg", cache=async_cache) as pool: ...
```

Keyword arguments are psycopg's (``host``, ``port``, ``dbname`` override the
secret's; anything else passes through). The password reaches libpq as its own
keyword, never spliced into a conninfo string.

The pools are psycopg_pool's own, given a ``connection_class`` whose
``connect`` is the rotation-aware connect: every connection the pool opens
(filling up, replacing one past ``max_lifetime``, after a failed ``check``) logs
in with the credential that works at that moment. psycopg_pool is an optional
extra (``secretcache[psycopg-pool]``), imported only by the pool functions.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import psycopg
import psycopg.conninfo

from ..cache import SecretCache
from ._connect import AnyCache, Driver, async_cache_for, rotating_connect, rotating_connect_async

if TYPE_CHECKING:
    import psycopg_pool

__all__ = [
    "PsycopgDriver",
    "RotatingAsyncConnection",
    "RotatingConnection",
    "async_connection_pool",
    "connect",
    "connect_async",
    "connection_factory",
    "connection_pool",
    "is_auth_failure",
]

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


async def connect_async(
    secret_id: str, *, cache: AnyCache | None = None, **kwargs: Any
) -> psycopg.AsyncConnection[Any]:
    """A new ``psycopg.AsyncConnection`` logged in with the secret's current credential.

    ``cache`` is an ``AsyncSecretCache`` (``None``: the process-wide default),
    or a ``SecretCache``, whose misses then run in a worker thread. Errors are
    those of :func:`connect`.
    """
    connection: psycopg.AsyncConnection[Any] = await rotating_connect_async(
        _DRIVER, secret_id, cache=async_cache_for(cache), overrides=kwargs
    )
    return connection


# ------------------------------------------------------------------- psycopg_pool


def _conninfo_args(conninfo: str) -> tuple[str, ...]:
    return (conninfo,) if conninfo else ()


class RotatingConnection(psycopg.Connection[Any]):
    """A ``psycopg.Connection`` whose ``connect`` logs in with a secret.

    :func:`connection_pool` makes a subclass per pool, naming the secret and
    the cache; psycopg_pool then calls ``connect`` for every new connection.
    """

    secret_id: ClassVar[str]
    secret_cache: ClassVar[SecretCache | None] = None

    @classmethod
    def connect(cls, conninfo: str = "", **kwargs: Any) -> Any:
        # ``super().connect`` is the next class's own ``connect``, bound to this
        # class, so the connection is an instance of the pool's connection class.
        driver = PsycopgDriver(super().connect)
        return rotating_connect(
            driver,
            cls.secret_id,
            cache=cls.secret_cache,
            args=_conninfo_args(conninfo),
            overrides=kwargs,
        )


class RotatingAsyncConnection(psycopg.AsyncConnection[Any]):
    """:class:`RotatingConnection` for ``AsyncConnectionPool``."""

    secret_id: ClassVar[str]
    secret_cache: ClassVar[AnyCache | None] = None

    @classmethod
    async def connect(cls, conninfo: str = "", **kwargs: Any) -> Any:
        driver = PsycopgDriver(async_connect=super().connect)
        return await rotating_connect_async(
            driver,
            cls.secret_id,
            cache=async_cache_for(cls.secret_cache),
            args=_conninfo_args(conninfo),
            overrides=kwargs,
        )


def _connection_class(
    rotating: type[Any], given: type[Any] | None, secret_id: str, cache: Any
) -> type[Any]:
    """A subclass of ``rotating`` (and of the caller's connection class, if any)."""
    bases: tuple[type[Any], ...] = (rotating,)
    if given is not None and not issubclass(rotating, given):
        if not issubclass(given, rotating.__mro__[1]):
            raise TypeError(
                f"connection_class must be a subclass of {rotating.__mro__[1].__name__}, "
                f"not {given.__name__}"
            )
        bases = (rotating, given)
    name = f"{(given or rotating).__name__}[{secret_id}]"
    return type(name, bases, {"secret_id": secret_id, "secret_cache": cache})


def _pool_kwargs(secret_id: str, pool_kwargs: dict[str, Any]) -> None:
    """Refuse what would bypass the secret; pools are opened by the caller."""
    connect_kwargs = pool_kwargs.get("kwargs")
    if isinstance(connect_kwargs, dict):
        _DRIVER.check_overrides(connect_kwargs)
    conninfo = pool_kwargs.get("conninfo", "")
    if isinstance(conninfo, str) and conninfo:
        # Checked by key, never quoting the conninfo: it may hold a password.
        keys: set[str] | None = None
        with contextlib.suppress(psycopg.ProgrammingError):
            keys = set(psycopg.conninfo.conninfo_to_dict(conninfo))
        if keys is None:  # raised outside the handler: no chain quoting the conninfo
            raise ValueError("the conninfo could not be parsed")
        if keys & {"user", "password"}:
            raise ValueError(
                "the conninfo must not name a user or password: they come from the secret "
                f"{secret_id!r}"
            )
    # psycopg_pool's documented way: open explicitly or as a context manager.
    pool_kwargs.setdefault("open", False)


def connection_pool(
    secret_id: str, *, cache: SecretCache | None = None, **pool_kwargs: Any
) -> psycopg_pool.ConnectionPool[Any]:
    """A ``psycopg_pool.ConnectionPool`` whose every new connection logs in with the secret.

    ``pool_kwargs`` go to ``ConnectionPool`` (``min_size``, ``max_size``,
    ``max_lifetime``, ``kwargs`` for the connect keywords, ``configure``...).
    Unless ``open=`` is given the pool is returned closed: open it with
    ``with pool:`` or ``pool.open()``, as psycopg_pool recommends.
    """
    import psycopg_pool

    _pool_kwargs(secret_id, pool_kwargs)
    connection_class = _connection_class(
        RotatingConnection, pool_kwargs.pop("connection_class", None), secret_id, cache
    )
    return psycopg_pool.ConnectionPool(connection_class=connection_class, **pool_kwargs)


def async_connection_pool(
    secret_id: str, *, cache: AnyCache | None = None, **pool_kwargs: Any
) -> psycopg_pool.AsyncConnectionPool[Any]:
    """A ``psycopg_pool.AsyncConnectionPool`` whose every new connection logs in with the secret.

    ``cache`` is an ``AsyncSecretCache`` (``None``: the process-wide default),
    or a ``SecretCache`` (misses in a worker thread). Open the pool with
    ``async with pool:`` or ``await pool.open()``.
    """
    import psycopg_pool

    if cache is not None:
        async_cache_for(cache)  # a wrong type fails here, not in the pool's worker
    _pool_kwargs(secret_id, pool_kwargs)
    connection_class = _connection_class(
        RotatingAsyncConnection, pool_kwargs.pop("connection_class", None), secret_id, cache
    )
    return psycopg_pool.AsyncConnectionPool(connection_class=connection_class, **pool_kwargs)
