"""The command line: ``get`` against moto's server through AWS_ENDPOINT_URL, ``demo``, errors."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import uuid
from typing import Any

import pytest

import secretcache._demo as demo_package
from secretcache._demo import secrets_story
from secretcache.cli import main

API_KEY = f"CANARY-{uuid.uuid4()}"
DB = {"username": "app", "password": f"CANARY-{uuid.uuid4()}", "port": 5432}
BLOB = b"\x00\x01CANARY-" + uuid.uuid4().bytes


@pytest.fixture
def deployed(moto_server: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Secrets on moto's server, and the environment pointing boto3 at it."""
    admin = moto_server.client()
    admin.create_secret(Name="prod/api-key", SecretString=API_KEY)
    admin.create_secret(Name="prod/db", SecretString=json.dumps(DB))
    admin.create_secret(Name="prod/blob", SecretBinary=BLOB)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.endpoint)
    return admin


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def digest(text: str | bytes) -> str:
    """Compare through this: pytest prints both sides of a failed ``==``."""
    return hashlib.sha256(text if isinstance(text, bytes) else text.encode()).hexdigest()[:16]


def assert_clean_error(err: str, secret_id: str) -> None:
    """One line, naming the secret, no traceback, no value."""
    leaked = "CANARY" in err
    assert not leaked, "a secret value leaked into an error"  # checked first: nothing printed
    lines = err.strip().splitlines()
    assert len(lines) == 1, f"expected one line, got {len(lines)}"
    assert secret_id in lines[0]
    assert "Traceback" not in err


def test_get_prints_the_current_value(deployed: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["get", "prod/api-key"], capsys)
    assert code == 0
    assert digest(out) == digest(API_KEY + "\n"), "wrong value printed"
    assert err == ""


def test_get_stage_and_version(deployed: Any, capsys: pytest.CaptureFixture[str]) -> None:
    old_version = deployed.get_secret_value(SecretId="prod/api-key", VersionStage="AWSCURRENT")[
        "VersionId"
    ]
    new_key = f"CANARY-{uuid.uuid4()}"
    deployed.put_secret_value(SecretId="prod/api-key", SecretString=new_key)
    current = run(["get", "prod/api-key"], capsys)[1]
    assert digest(current) == digest(new_key + "\n"), "not the current value"
    previous = run(["get", "prod/api-key", "--stage", "AWSPREVIOUS"], capsys)[1]
    assert digest(previous) == digest(API_KEY + "\n"), "not the previous value"
    code, out, _ = run(["get", "prod/api-key", "--version-id", old_version], capsys)
    assert code == 0
    assert digest(out) == digest(API_KEY + "\n"), "not that version's value"


def test_get_json_key_and_binary(deployed: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["get", "prod/db", "--json-key", "username"], capsys) == (0, "app\n", "")
    assert run(["get", "prod/db", "--json-key", "port"], capsys) == (0, "5432\n", "")
    code, out, _ = run(["get", "prod/blob"], capsys)
    assert code == 0
    assert digest(base64.b64decode(out.strip())) == digest(BLOB), "binary not printed as base64"


@pytest.mark.parametrize(
    ("argv", "secret_id", "expected_code", "mentions"),
    [
        (["get", "prod/missing"], "prod/missing", 3, "not found"),
        (["get", "prod/api-key", "--stage", "AWSPENDING"], "prod/api-key", 3, "AWSPENDING"),
        (["get", "prod/db", "--json-key", "pwd"], "prod/db", 5, "'pwd'"),
        (["get", "prod/api-key", "--json-key", "x"], "prod/api-key", 5, "JSON"),
        (["get", "prod/blob", "--json-key", "x"], "prod/blob", 5, "binary"),
        (["get", "prod/api-key", "--version-id", "v" * 32], "prod/api-key", 3, "v" * 32),
    ],
)
def test_errors_are_one_clean_line(
    deployed: Any,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    secret_id: str,
    expected_code: int,
    mentions: str,
) -> None:
    code, out, err = run(argv, capsys)
    assert code == expected_code
    assert out == ""
    assert_clean_error(err, secret_id)
    assert mentions in err


def test_unreachable_service(capsys: pytest.CaptureFixture[str], monkeypatch: Any) -> None:
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    code, out, err = run(["get", "prod/api-key"], capsys)
    assert code == 6
    assert out == ""
    assert_clean_error(err, "prod/api-key")


def test_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "get" in capsys.readouterr().err
    with pytest.raises(SystemExit) as caught:
        main(["get", "x", "--stage", "A", "--version-id", "B"])
    assert caught.value.code == 2
    assert "not allowed" in capsys.readouterr().err
    code, _, err = run(["get", "   "], capsys)
    assert code == 2
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_help_in_a_subprocess() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "secretcache", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0
    for word in ("get", "demo", "examples", "exit status"):
        assert word in result.stdout
    result = subprocess.run(
        [sys.executable, "-m", "secretcache", "get", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0
    assert "--json-key" in result.stdout and "--version-id" in result.stdout


def test_error_in_a_subprocess(deployed: Any, moto_server: Any) -> None:
    env = dict(os.environ, AWS_ENDPOINT_URL=moto_server.endpoint)
    result = subprocess.run(
        [sys.executable, "-m", "secretcache", "get", "prod/missing"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert result.returncode == 3
    assert result.stdout == ""
    assert_clean_error(result.stderr, "prod/missing")


def test_secrets_story(monkeypatch: pytest.MonkeyPatch) -> None:
    canary = f"CANARY-{uuid.uuid4()}"
    monkeypatch.setattr(secrets_story.secrets, "token_urlsafe", lambda n=None: canary)
    out = io.StringIO()
    secrets_story.run(out)
    text = out.getvalue()
    leaked = canary in text
    assert not leaked, "the story printed a secret value"
    reads = int(re.search(r"reads served: (\d+)", text).group(1))  # type: ignore[union-attr]
    calls = int(re.search(r"^  API calls:\s+(\d+)", text, re.M).group(1))  # type: ignore[union-attr]
    assert calls == 3
    assert reads > 100 + calls  # the story makes at least 100 reads after the rotation
    seen = re.search(r"new version seen ([\d.]+) s and (\d+) reads after", text)
    assert seen is not None
    assert 0.0 < float(seen.group(1)) < secrets_story.GIVE_UP_AFTER
    assert "on_change reported" in text


def test_demo_command_runs_the_stories(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    told: list[str] = []

    def tell(out: Any) -> None:  # the story itself is tested above; this is the wiring
        told.append("story 1")
        out.write("story 1 told\n")

    monkeypatch.setattr(demo_package, "STORIES", ("secretcache._demo.secrets_story",))
    monkeypatch.setattr(secrets_story, "run", tell)
    assert main(["demo"]) == 0
    assert told == ["story 1"]
    assert "story 1 told" in capsys.readouterr().out


def test_demo_failure_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(demo_package, "STORIES", ("secretcache._demo.no_such_story",))
    assert main(["demo"]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
