"""Database connections that keep working while Secrets Manager rotates the password.

One adapter module per driver -- :mod:`secretcache.db.psycopg`,
:mod:`secretcache.db.pymysql`, :mod:`secretcache.db.sqlalchemy` -- all sharing
the rotation-aware login in :mod:`secretcache.db._connect`. The drivers are
optional extras, so this package imports none of them: only the adapter module
you import pulls its driver in.
"""

from __future__ import annotations

__all__: list[str] = []
