"""README.md's database example, run for real against the session's PostgreSQL.

tests/test_docs_examples.py runs the README's other blocks under moto; the
database block is marked skip there (it logs in) and runs here, with the
documented ``prod/db`` secret on moto's server pointing at a real server.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

import secretcache.cache
from secretcache._demo.postgres import PostgresServer
from secretcache._demo.rotation import new_password
from tests.conftest import MotoServer
from tests.test_docs_examples import python_blocks, run_blocks

README = Path(__file__).resolve().parent.parent / "README.md"


@pytest.mark.db
def test_the_readme_database_example_logs_in(
    postgres: PostgresServer, moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    user, password = f"readme_{uuid.uuid4().hex[:8]}", new_password()
    postgres.create_role(user, password)
    postgres.create_database(user, user)
    client = moto_server.client()
    client.create_secret(Name="prod/api-key", SecretString="example-api-key")
    document = {"username": user, "password": password, "host": postgres.host}
    document.update(port=postgres.port, dbname=user, engine="postgres")
    client.create_secret(Name="prod/db", SecretString=json.dumps(document))
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.endpoint)
    monkeypatch.setattr(secretcache.cache, "_default", None)

    blocks = python_blocks(README.read_text(), include_skipped=True)
    assert len(blocks) > len(python_blocks(README.read_text())), "no database block to run"
    namespace = run_blocks(README, blocks)
    conn, engine = namespace["conn"], namespace["engine"]
    try:
        with conn.cursor() as cursor:  # type: ignore[attr-defined]
            cursor.execute("select current_user")
            assert cursor.fetchone()[0] == user
        with engine.connect() as connection:  # type: ignore[attr-defined]
            assert connection.exec_driver_sql("select 1").scalar() == 1
    finally:
        conn.close()  # type: ignore[attr-defined]
        engine.dispose()  # type: ignore[attr-defined]
