"""asyncpg connections and pools whose credentials follow Secrets Manager rotations.

```python
from secretcache.db import asyncpg as sc_asyncpg

conn = await sc_asyncpg.connect("prod/pg", cache=cache, timeout=5)
pool = await sc_asyncpg.create_pool("prod/pg", cache=cache, max_size=10)
```

Keyword arguments are asyncpg's (``host``, ``port``, ``database`` -- or
``dbname`` -- override the secret's; anything else passes through). The
password reaches asyncpg as its own keyword, never spliced into a DSN.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import asyncpg

from ._connect import AnyCache, Driver, async_cache_for, rotating_connect_async

__all__ = ["AsyncpgDriver", "connect", "create_pool", "is_auth_failure"]

_AUTH_CLASS = "28"
"""SQLSTATE class 28, invalid authorization specification: 28P01 for a wrong
password, and 28000, which a server that requires TLS can answer for one too."""


def is_auth_failure(exc: BaseException) -> bool:
    """The one place that decides whether PostgreSQL rejected the credential (asyncpg)."""
    if not isinstance(exc, asyncpg.PostgresError):
        return False
    sqlstate = getattr(exc, "sqlstate", None)
    return isinstance(sqlstate, str) and sqlstate.startswith(_AUTH_CLASS)


class AsyncpgDriver(Driver[Any]):
    """asyncpg's part of the rotation-aware connect (asyncio only)."""

    name = "asyncpg"
    dbname_key = "database"
    dbname_aliases = ("dbname",)
    connection_types = (asyncpg.Connection,)

    def __init__(self, connect: Callable[..., Awaitable[Any]] | None = None) -> None:
        self._connect = connect if connect is not None else asyncpg.connect

    def open(self, args: Sequence[Any], params: dict[str, Any]) -> Any:
        raise TypeError("asyncpg is an asyncio driver: use `await connect(...)`")

    async def open_async(self, args: Sequence[Any], params: dict[str, Any]) -> Any:
        return await self._connect(*args, **params)

    def is_auth_failure(self, exc: BaseException) -> bool:
        return is_auth_failure(exc)

    def close_connection(self, connection: Any) -> None:
        # ``terminate`` closes the socket at once; ``close`` would need an await
        # (and a round trip) for a connection nobody will use.
        connection.terminate()


_DRIVER = AsyncpgDriver()


async def connect(secret_id: str, *, cache: AnyCache | None = None, **kwargs: Any) -> Any:
    """A new ``asyncpg.Connection`` logged in with the secret's current credential.

    ``cache`` is an ``AsyncSecretCache`` (``None``: the process-wide default),
    or a ``SecretCache``, whose reads then run in a worker thread. A login no
    label fixes raises asyncpg's ``InvalidPasswordError`` (or another class-28
    error) with the other attempts chained and no password in it.
    """
    return await rotating_connect_async(
        _DRIVER, secret_id, cache=async_cache_for(cache), overrides=kwargs
    )


async def create_pool(secret_id: str, *, cache: AnyCache | None = None, **kwargs: Any) -> Any:
    """An initialised ``asyncpg.Pool`` whose every new connection logs in with the secret.

    ``kwargs`` go to ``asyncpg.create_pool`` (``min_size``, ``max_size``,
    ``max_inactive_connection_lifetime``, ``init``, ``setup``, and connect
    keywords such as ``timeout`` or ``ssl``), except ``connect``, which would
    bypass the secret. The pool calls the rotation-aware connect for each
    connection it opens, so the username may change between connections
    (alternating-users rotation) -- a ``password=`` callable could not do that.
    """
    if "connect" in kwargs:
        raise TypeError("connect= cannot be combined with create_pool(secret_id, ...)")
    _DRIVER.check_overrides(kwargs)
    resolved = async_cache_for(cache)

    async def rotating(*args: Any, **params: Any) -> Any:
        return await rotating_connect_async(
            _DRIVER, secret_id, cache=resolved, args=args, overrides=params
        )

    rotating.__qualname__ = rotating.__name__ = f"asyncpg_rotating_connect[{secret_id}]"
    return await asyncpg.create_pool(connect=rotating, **kwargs)
