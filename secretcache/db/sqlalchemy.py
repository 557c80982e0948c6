"""SQLAlchemy engines whose pooled connections log in through the rotation-aware connect.

```python
from secretcache.db import sqlalchemy as sc_sqlalchemy

engine = sc_sqlalchemy.create_engine("prod/pg", "postgresql+psycopg://", pool_pre_ping=True)
```

The URL names the dialect and driver (and, if you like, host, port and
database, which then override the secret's); it carries no credentials. Every
time the pool opens a new DBAPI connection -- the first checkout, after
``pool_recycle``, after ``pool_pre_ping`` finds a dead one -- the engine's
``do_connect`` event runs the same login as the plain adapters, so each new
connection gets the credential that works at that moment. Connections already
in the pool are untouched: a rotation does not end existing sessions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy
from sqlalchemy import event
from sqlalchemy.engine import URL, Dialect, Engine, make_url

from ..cache import SecretCache
from ._connect import Driver, rotating_connect

__all__ = ["SUPPORTED_DRIVERS", "create_engine"]

SUPPORTED_DRIVERS = ("psycopg", "pymysql")


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


def create_engine(
    secret_id: str, url: str | URL, *, cache: SecretCache | None = None, **engine_kwargs: Any
) -> Engine:
    """A normal SQLAlchemy ``Engine`` whose new connections use the secret's credential.

    ``engine_kwargs`` go to ``sqlalchemy.create_engine`` unchanged
    (``pool_pre_ping``, ``pool_recycle``, ``connect_args``...), except
    ``creator``, which would bypass the secret.
    """
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
    if "creator" in engine_kwargs:
        raise TypeError("creator= cannot be combined with create_engine(secret_id, ...)")
    engine = sqlalchemy.create_engine(parsed, **engine_kwargs)
    event.listen(
        engine, "do_connect", _RotatingConnect(secret_id, cache, _driver_for(engine.dialect))
    )
    return engine
