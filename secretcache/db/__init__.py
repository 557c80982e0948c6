"""Database connections that keep working while Secrets Manager rotates the password.

One adapter module per driver -- :mod:`secretcache.db.psycopg` (blocking, asyncio
and pools), :mod:`secretcache.db.pymysql`, :mod:`secretcache.db.asyncpg`,
:mod:`secretcache.db.aiomysql`, :mod:`secretcache.db.sqlalchemy` (``create_engine``
and ``create_async_engine``) -- all sharing
one rotation-aware login: the label walk (:mod:`secretcache.db._walk`, the
decisions, no I/O), performed by the runners of :mod:`secretcache.db._connect`
(blocking and asyncio), with errors made safe by :mod:`secretcache.db._scrub`.
The drivers are optional extras, so this package imports none of them: only the
adapter module you import pulls its driver in.
"""

from __future__ import annotations

__all__: list[str] = []
