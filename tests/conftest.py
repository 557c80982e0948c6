"""Shared fixtures: fake AWS credentials, in-process moto, and moto's server on 127.0.0.1."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from moto import mock_aws
from moto.server import ThreadedMotoServer

from secretcache._demo.mariadb import MariaDBServer, start_mariadb
from secretcache._demo.postgres import DatabaseUnavailableError, PostgresServer, start_postgres
from tests.hypothesis_profiles import load as load_hypothesis_profiles

load_hypothesis_profiles()  # every property test, wherever it lives, runs under the chosen profile

REGION = "us-east-1"
NO_BOTOCORE_RETRIES = Config(retries={"total_max_attempts": 1, "mode": "standard"})


@pytest.fixture(autouse=True)
def _moto_iam_off_between_tests() -> Iterator[None]:
    """moto's IAM simulation is one process-wide switch: each test starts and ends with it off.

    (``enable_iam_authentication`` restores what it found; a listener thread still
    polling when one test's block ends must not leave the next test authenticated.)
    """
    from moto import settings as moto_settings
    from moto.core.authorization import ActionAuthenticatorMixin

    yield
    moto_settings.INITIAL_NO_AUTH_ACTION_COUNT = float("inf")
    ActionAuthenticatorMixin.request_count = 0


@pytest.fixture(autouse=True)
def _fake_aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may ever reach real AWS: fake credentials, a fixed region, no profile."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)


@pytest.fixture
def aws() -> Iterator[None]:
    """In-process moto for plain unit tests."""
    with mock_aws():
        yield


@pytest.fixture
def sm(aws: None) -> Any:
    """A secretsmanager client on in-process moto.

    botocore's own retries are off, as in the client the library creates, so the
    engine's retry policy is what tests see; tests of a caller's client that
    retries by itself build one explicitly.
    """
    return boto3.client("secretsmanager", region_name=REGION, config=NO_BOTOCORE_RETRIES)


class MotoServer:
    """moto's HTTP server on 127.0.0.1, for anything concurrent or end-to-end."""

    def __init__(self) -> None:
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"

    def client(self, **config: Any) -> Any:
        """A new client of its own (boto3 clients are per test, never shared).

        botocore's retries are off unless ``retries=`` is given (see the ``sm`` fixture).
        """
        config.setdefault("retries", {"total_max_attempts": 1, "mode": "standard"})
        return boto3.session.Session().client(
            "secretsmanager",
            region_name=REGION,
            endpoint_url=self.endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=Config(**config),
        )

    def reset(self) -> None:
        import requests

        requests.post(f"{self.endpoint}/moto-api/reset", timeout=5)

    def stop(self) -> None:
        self._server.stop()


@pytest.fixture(scope="session")
def moto_server_session() -> Iterator[MotoServer]:
    server = MotoServer()
    yield server
    server.stop()


@pytest.fixture
def moto_server(moto_server_session: MotoServer) -> Iterator[MotoServer]:
    """The shared server, emptied before each test."""
    moto_server_session.reset()
    yield moto_server_session


@pytest.fixture(autouse=True, scope="session")
def _loopback_only() -> None:
    os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")


# Real database servers (session-scoped, 127.0.0.1, temp dirs, stopped by pid). A
# missing server binary fails the tests instead of skipping them: `make test`
# installs both servers, so a skip would only hide a broken setup.


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    try:
        server = start_postgres()
    except DatabaseUnavailableError as exc:
        pytest.fail(f"PostgreSQL is needed for the database tests: {exc}", pytrace=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def mariadb() -> Iterator[MariaDBServer]:
    try:
        server = start_mariadb()
    except DatabaseUnavailableError as exc:
        pytest.fail(f"MariaDB is needed for the database tests: {exc}", pytrace=False)
    try:
        yield server
    finally:
        server.stop()
