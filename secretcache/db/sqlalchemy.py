"""SQLAlchemy engines whose pooled connections log in through the rotation-aware connect.

```python
from secretcache.db import sqlalchemy as sc_sqlalchemy

engine = sc_sqlalchemy.create_engine("prod/pg", "postgresql+psycopg://", pool_pre_ping=True)
aengine = sc_sqlalchemy.create_async_engine("prod/pg", "postgresql+asyncpg://")
```

The URL names the dialect and driver (and, if you like, host, port and
database, which then override the secret's); it carries no credentials. Every
time the pool opens a new DBAPI connection -- the first checkout, after
``pool_recycle``, after ``pool_pre_ping`` finds a dead one -- the engine's
``do_connect`` event runs the same login as the plain adapters, so each new
connection gets the credential that works at that moment. Connections already
in the pool are untouched: a rotation does not end existing sessions.

The asyncio engine (:func:`create_async_engine`) uses the same event: its
listener hands the dialect's DBAPI adapter a coroutine that performs the
rotation-aware connect with the asyncio runner, so the pool still applies
everything the dialect derives from the URL and ``connect_args`` (MySQL's
``client_flag``, psycopg's adapters ``context``, asyncpg's statement-cache
settings) -- which ``async_creator=`` alone would drop.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy
from sqlalchemy import event
from sqlalchemy.engine import URL, Dialect, Engine, make_url

from ..cache import SecretCache
from ._connect import AnyCache, Driver, async_cache_for, rotating_connect, rotating_connect_async

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["SUPPORTED_ASYNC_DRIVERS", "SUPPORTED_DRIVERS", "create_async_engine", "create_engine"]

SUPPORTED_DRIVERS = ("psycopg", "pymysql")
SUPPORTED_ASYNC_DRIVERS = ("asyncpg", "psycopg", "aiomysql")


def _driver_for(dialect: Dialect) -> Driver[Any]:
    connect: Callable[..., Any] = dialect.loaded_dbapi.connect
    if dialect.driver == "psycopg":
        from .psycopg import PsycopgDriver

        return PsycopgDriver(connect)
    if dialect.driver == "pymysql":
        from .pymysql import PyMySQLDriver

        return PyMySQLDriver(connect)
    raise ValueError(
        f"secretcache.db.sqlalchemy supports the drivers {', '.join(SUPPORTED_DRIVERS)}; "
        f"the URL selects {dialect.name}+{dialect.driver}"
    )


class _RotatingConnect:
    """The ``do_connect`` listener: SQLAlchemy's connect arguments plus the secret's login."""

    def __init__(self, secret_id: str, cache: SecretCache | None, driver: Driver[Any]) -> None:
        self.secret_id = secret_id
        self.cache = cache
        self.driver = driver

    def __call__(
        self, dialect: Dialect, conn_rec: Any, cargs: Sequence[Any], cparams: dict[str, Any]
    ) -> Any:
        return rotating_connect(
            self.driver, self.secret_id, cache=self.cache, args=cargs, overrides=cparams
        )

    def __repr__(self) -> str:
        return f"<secretcache do_connect for secret {self.secret_id!r} via {self.driver.name}>"


def _checked_url(secret_id: str, url: str | URL) -> URL:
    parsed = make_url(url)
    if parsed.password is not None:
        raise ValueError(
            "the URL must not contain a password: the credential comes from the secret "
            f"{secret_id!r}"
        )
    if parsed.username:
        raise ValueError(
            "leave the username out of the URL: it comes from the secret "
            f"{secret_id!r} (alternating-users rotation changes it)"
        )
    return parsed


def create_engine(
    secret_id: str, url: str | URL, *, cache: SecretCache | None = None, **engine_kwargs: Any
) -> Engine:
    """A normal SQLAlchemy ``Engine`` whose new connections use the secret's credential.

    ``engine_kwargs`` go to ``sqlalchemy.create_engine`` unchanged
    (``pool_pre_ping``, ``pool_recycle``, ``connect_args``...), except
    ``creator``, which would bypass the secret.
    """
    parsed = _checked_url(secret_id, url)
    if "creator" in engine_kwargs:
        raise TypeError("creator= cannot be combined with create_engine(secret_id, ...)")
    engine = sqlalchemy.create_engine(parsed, **engine_kwargs)
    event.listen(
        engine, "do_connect", _RotatingConnect(secret_id, cache, _driver_for(engine.dialect))
    )
    return engine


# ------------------------------------------------------------------ asyncio


_ASYNC_DRIVER_NAMES = {
    "asyncpg": "asyncpg",
    "psycopg": "psycopg",
    "psycopg_async": "psycopg",
    "aiomysql": "aiomysql",
}
"""URL driver names (``postgresql+psycopg_async`` is psycopg's async mode by name)."""


def _async_driver_for(url: URL) -> Driver[Any]:
    """The driver for the URL's ``+driver``, checked before SQLAlchemy imports anything."""
    chosen = _ASYNC_DRIVER_NAMES.get(url.get_driver_name())
    if chosen == "asyncpg":
        from .asyncpg import AsyncpgDriver

        return AsyncpgDriver()
    if chosen == "psycopg":
        from .psycopg import PsycopgDriver

        return PsycopgDriver()
    if chosen == "aiomysql":
        from .aiomysql import AiomysqlDriver

        return AiomysqlDriver()
    raise ValueError(
        "secretcache.db.sqlalchemy.create_async_engine supports the drivers "
        f"{', '.join(SUPPORTED_ASYNC_DRIVERS)}; the URL selects "
        f"{url.get_backend_name()}+{url.get_driver_name()}"
    )


class _RotatingAsyncConnect:
    """The async engine's ``do_connect`` listener.

    SQLAlchemy's asyncio dialects open connections through a DBAPI adapter whose
    ``connect`` awaits the driver's coroutine inside the pool's greenlet; that
    adapter takes the coroutine function to call as ``async_creator_fn`` (what
    ``create_async_engine(async_creator=...)`` uses too). Passing :meth:`open`
    there keeps the dialect's own translation of the URL and ``connect_args``
    (``cparams``) and replaces only the login.
    """

    def __init__(self, secret_id: str, cache: AnyCache | None, driver: Driver[Any]) -> None:
        self.secret_id = secret_id
        self.cache = cache
        self.driver = driver

    def __call__(
        self, dialect: Dialect, conn_rec: Any, cargs: Sequence[Any], cparams: dict[str, Any]
    ) -> Any:
        return dialect.loaded_dbapi.connect(*cargs, async_creator_fn=self.open, **cparams)

    async def open(self, *args: Any, **kwargs: Any) -> Any:
        """The driver connection, logged in with the credential that works now."""
        return await rotating_connect_async(
            self.driver,
            self.secret_id,
            cache=async_cache_for(self.cache),
            args=args,
            overrides=kwargs,
        )

    def __repr__(self) -> str:
        return (
            f"<secretcache async do_connect for secret {self.secret_id!r} via {self.driver.name}>"
        )


def create_async_engine(
    secret_id: str,
    url: str | URL,
    *,
    cache: AnyCache | None = None,
    **engine_kwargs: Any,
) -> AsyncEngine:
    """A normal SQLAlchemy ``AsyncEngine`` whose new connections use the secret's credential.

    Drivers: ``postgresql+asyncpg``, ``postgresql+psycopg`` (its async mode) and
    ``mysql+aiomysql``. ``engine_kwargs`` go to
    ``sqlalchemy.ext.asyncio.create_async_engine`` unchanged (``poolclass``,
    ``pool_recycle``, ``pool_pre_ping``, ``connect_args``...), except
    ``creator`` and ``async_creator``, which would bypass the secret.
    ``cache`` is an ``AsyncSecretCache``, or a ``SecretCache`` whose misses then
    run in a worker thread; ``None`` means :func:`secretcache.aio.default_async_cache`,
    looked up at the first connect.
    """
    from sqlalchemy.ext import asyncio as sa_asyncio

    parsed = _checked_url(secret_id, url)
    for bypass in ("creator", "async_creator"):
        if bypass in engine_kwargs:
            raise TypeError(
                f"{bypass}= cannot be combined with create_async_engine(secret_id, ...)"
            )
    if cache is not None:
        async_cache_for(cache)  # a wrong type fails here, not at the first checkout
    driver = _async_driver_for(parsed)
    driver.check_overrides(engine_kwargs.get("connect_args") or {})
    engine = sa_asyncio.create_async_engine(parsed, **engine_kwargs)
    event.listen(engine.sync_engine, "do_connect", _RotatingAsyncConnect(secret_id, cache, driver))
    return engine
