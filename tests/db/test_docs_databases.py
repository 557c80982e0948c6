"""docs/databases.md and databases-async.md, every example included, against real servers.

The page's examples that moto alone cannot run (they log in) are marked skip for
tests/test_docs_examples.py; here they run for real: the documented secrets
``prod/db`` and ``prod/mysql`` point at the session's servers, and the default
client reaches moto's server through ``AWS_ENDPOINT_URL``, as a deployment
would reach the real service.
"""

from __future__ import annotations

import inspect
import json
import uuid
from pathlib import Path

import pytest

import secretcache.cache
from secretcache._demo.mariadb import MariaDBServer
from secretcache._demo.postgres import PostgresServer
from secretcache._demo.rotation import new_password
from tests.conftest import MotoServer
from tests.test_docs_examples import DOCS, python_blocks, run_blocks


@pytest.mark.parametrize(("page_name", "minimum"), [("databases.md", 4), ("databases-async.md", 2)])
def test_every_database_example_runs(
    page_name: str,
    minimum: int,
    postgres: PostgresServer,
    mariadb: MariaDBServer,
    moto_server: MotoServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    suffix = uuid.uuid4().hex[:8]
    pg_user, my_user = f"docs_pg_{suffix}", f"docs_my_{suffix}"
    pg_password, my_password = new_password(), new_password()
    postgres.create_role(pg_user, pg_password)
    postgres.create_database(pg_user, pg_user)
    if page_name == "databases.md":  # its "override the database" example
        postgres.create_database("reports", pg_user)
    mariadb.create_user(my_user, my_password)
    mariadb.create_database(my_user)
    mariadb.grant_all(my_user, my_user)

    client = moto_server.client()
    for name, server, user, password in (
        ("prod/db", postgres, pg_user, pg_password),
        ("prod/mysql", mariadb, my_user, my_password),
    ):
        document = {"username": user, "password": password, "host": server.host}
        document.update(port=server.port, dbname=user)
        client.create_secret(Name=name, SecretString=json.dumps(document))
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.endpoint)
    monkeypatch.setattr(secretcache.cache, "_default", None)

    page: Path = DOCS / page_name
    blocks = python_blocks(page.read_text(), include_skipped=True)
    assert len(blocks) >= minimum, f"{page_name} lost its examples"
    namespace = run_blocks(page, blocks)
    for name in ("conn", "engine", "mysql_engine"):
        closer = getattr(namespace.get(name), "close", None) or getattr(
            namespace.get(name), "dispose", None
        )
        if callable(closer) and not inspect.iscoroutinefunction(closer):
            closer()
