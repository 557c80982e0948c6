"""aiomysql connections (MySQL, MariaDB) for asyncio, following Secrets Manager rotations.

```python
from secretcache.db import aiomysql as sc_aiomysql

conn = await sc_aiomysql.connect("prod/mysql", connect_timeout=5)
```

Keyword arguments are aiomysql's (``host``, ``port`` and ``db`` -- or
``database`` or ``dbname`` -- override the secret's; anything else passes
through). aiomysql speaks the protocol with PyMySQL's packets and errors, so a
rejected login is PyMySQL's ``OperationalError`` 1045, recognised by the same
check as for :mod:`secretcache.db.pymysql`, and a password outside latin-1 is a
``UnicodeEncodeError`` (scrubbed) just as there.

Why aiomysql and not asyncmy: aiomysql is pure Python on top of PyMySQL, so it
installs on a new CPython the day it is released, while asyncmy is compiled and
its wheels for each new CPython have come 10-15 months late; aiomysql also lives
in the aio-libs organisation rather than one person's account. The release
history behind this is in docs/databases-async.md.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import aiomysql

from ._connect import AnyCache, Credential, Driver, async_cache_for, rotating_connect_async
from .pymysql import ACCESS_DENIED, is_auth_failure

__all__ = ["ACCESS_DENIED", "AiomysqlDriver", "connect", "is_auth_failure"]


class AiomysqlDriver(Driver[Any]):
    """aiomysql's part of the rotation-aware connect (asyncio only).

    ``connect`` is the coroutine function that opens a connection from keyword
    arguments: ``aiomysql.connect`` by default; SQLAlchemy's engine passes the
    one its pool calls.
    """

    name = "aiomysql"
    dbname_key = "db"
    dbname_aliases = ("database", "dbname")
    connection_types = (aiomysql.Connection,)

    def __init__(self, connect: Callable[..., Any] | None = None) -> None:
        self._connect = connect if connect is not None else aiomysql.connect

    def params(self, credential: Credential, overrides: Mapping[str, Any]) -> dict[str, Any]:
        # aiomysql.connect takes ``db`` only; PyMySQL's ``database`` is accepted too (the
        # secret's ``dbname`` is handled by Driver.params).
        if "database" in overrides:
            overrides = dict(overrides)
            overrides["db"] = overrides.pop("database")
        return super().params(credential, overrides)

    def open(self, args: Sequence[Any], params: dict[str, Any]) -> Any:
        raise NotImplementedError("aiomysql is asyncio only: use open_async")

    async def open_async(self, args: Sequence[Any], params: dict[str, Any]) -> Any:
        return await self._connect(*args, **params)

    def is_auth_failure(self, exc: BaseException) -> bool:
        return is_auth_failure(exc)


_DRIVER = AiomysqlDriver()


async def connect(
    secret_id: str, *, cache: AnyCache | None = None, **kwargs: Any
) -> aiomysql.Connection:
    """A new ``aiomysql.Connection`` with the secret's current credential.

    ``cache`` is an ``AsyncSecretCache`` (``None``: the process-wide default),
    or a ``SecretCache``, whose reads then run in a worker thread. A login no
    label fixes raises PyMySQL's ``OperationalError`` (1045) with the other
    attempts chained and no password in it.
    """
    return await rotating_connect_async(
        _DRIVER, secret_id, cache=async_cache_for(cache), overrides=kwargs
    )
