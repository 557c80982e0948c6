"""The command line: ``get`` against moto's server through AWS_ENDPOINT_URL, ``demo``, errors."""

from __future__ import annotations

import base64
import codecs
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import uuid
from types import SimpleNamespace
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
    for word in ("get", "exec", "demo", "examples", "exit status"):
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


# ----------------------------------------------- output encodings (issue 10: the CLI leak)

WIDE = f"pw-\u00e9\u20ac\u0142\u4e2d\U0001f511-CANARY-{uuid.uuid4().hex}"
# One character no 8-bit code page here has: an encoding error quotes it, and its position.
LONE = f"pw-CANARY-{uuid.uuid4().hex}-\u0142-x"


def no_part_of(secret: str, text: str) -> bool:
    """True if ``text`` shows no character, escape or run of ``secret`` beyond plain ASCII."""
    if secret in text or secret[-32:] in text:
        return False
    for char in set(secret):
        if ord(char) < 128:
            continue
        forms = (char, ascii(char)[1:-1], f"\\u{ord(char):04x}", f"\\x{ord(char):02x}")
        if any(form in text for form in forms):
            return False
    return True


@pytest.mark.parametrize("encoding", ["ascii", "latin-1", "cp1252"])
def test_an_output_that_cannot_show_the_value_is_a_clean_error(
    deployed: Any, moto_server: Any, encoding: str
) -> None:
    deployed.create_secret(Name="prod/wide", SecretString=WIDE)
    deployed.create_secret(Name="prod/lone", SecretString=LONE)
    deployed.create_secret(Name="prod/wide-json", SecretString=json.dumps({"pw": WIDE}))
    deployed.create_secret(Name="prod/lone-json", SecretString=json.dumps({"pw": LONE}))
    env = dict(os.environ, AWS_ENDPOINT_URL=moto_server.endpoint, PYTHONIOENCODING=encoding)
    for argv in (
        ["prod/lone"],
        ["prod/lone-json", "--json-key", "pw"],
        ["prod/wide"],
        ["prod/wide-json", "--json-key", "pw"],
    ):
        result = subprocess.run(
            [sys.executable, "-m", "secretcache", "get", *argv],
            capture_output=True,
            timeout=60,
            env=env,
            check=False,
        )
        err = result.stderr.decode("utf-8", "replace")
        assert no_part_of(WIDE, err) and no_part_of(LONE, err), "part of the secret on stderr"
        assert result.returncode == 1, err
        assert result.stdout == b""
        assert_clean_error(err, argv[0])
        assert "encoding" in err and codecs.lookup(encoding).name in err


def test_a_utf8_output_gets_the_exact_value(deployed: Any, moto_server: Any) -> None:
    deployed.create_secret(Name="prod/wide", SecretString=WIDE)
    env = dict(os.environ, AWS_ENDPOINT_URL=moto_server.endpoint, PYTHONIOENCODING="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "secretcache", "get", "prod/wide"],
        capture_output=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert result.returncode == 0
    assert digest(result.stdout) == digest((WIDE + "\n").encode()), "not the exact value"


def test_nested_json_key_prints_as_json(deployed: Any, capsys: pytest.CaptureFixture[str]) -> None:
    deployed.create_secret(
        Name="prod/nested", SecretString=json.dumps({"tls": {"verify": True, "pins": ["a"]}})
    )
    code, out, err = run(["get", "prod/nested", "--json-key", "tls"], capsys)
    assert (code, err) == (0, "")
    assert json.loads(out) == {"verify": True, "pins": ["a"]}


# ------------------------------------------ where to read from, and configuration errors


@pytest.fixture
def aws_files(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Empty AWS config files of the test's own, and no instance metadata service."""
    config, credentials = tmp_path / "config", tmp_path / "credentials"
    config.write_text("")
    credentials.write_text("")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return SimpleNamespace(config=config, credentials=credentials)


def test_endpoint_url_and_region_options(
    moto_server: Any, capsys: pytest.CaptureFixture[str], aws_files: Any
) -> None:
    admin = moto_server.client()
    admin.create_secret(Name="prod/api-key", SecretString=API_KEY)
    endpoint = ["--endpoint-url", moto_server.endpoint]
    code, out, _ = run(["get", "prod/api-key", *endpoint], capsys)
    assert code == 0 and digest(out) == digest(API_KEY + "\n")
    code, _, err = run(["get", "prod/api-key", *endpoint, "--region", "eu-west-1"], capsys)
    assert code == 3, err  # the secret lives in us-east-1: the region was used
    code, out, _ = run(["get", "prod/api-key", *endpoint, "--region", "us-east-1"], capsys)
    assert code == 0 and digest(out) == digest(API_KEY + "\n")


def test_profile_option(
    moto_server: Any,
    capsys: pytest.CaptureFixture[str],
    aws_files: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    admin = moto_server.client()
    admin.create_secret(Name="prod/api-key", SecretString=API_KEY)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name)
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    aws_files.config.write_text("[profile ops]\nregion = us-east-1\n")
    aws_files.credentials.write_text(
        "[ops]\naws_access_key_id = testing\naws_secret_access_key = testing\n"
    )
    endpoint = ["--endpoint-url", moto_server.endpoint]
    code, out, err = run(["get", "prod/api-key", *endpoint, "--profile", "ops"], capsys)
    assert code == 0, err
    assert digest(out) == digest(API_KEY + "\n")
    code, out, err = run(["get", "prod/api-key", *endpoint, "--profile", "nope"], capsys)
    assert (code, out) == (7, "")
    assert_clean_error(err, "prod/api-key")
    assert "nope" in err and "profile" in err


def test_no_region_is_a_configuration_error_not_an_outage(
    capsys: pytest.CaptureFixture[str], aws_files: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.delenv("AWS_REGION", raising=False)
    code, out, err = run(["get", "prod/api-key"], capsys)
    assert (code, out) == (7, "")
    assert_clean_error(err, "prod/api-key")
    assert "region" in err


def test_no_credentials_is_a_configuration_error(
    moto_server: Any,
    capsys: pytest.CaptureFixture[str],
    aws_files: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name)
    code, out, err = run(["get", "prod/api-key", "--endpoint-url", moto_server.endpoint], capsys)
    assert (code, out) == (7, "")
    assert_clean_error(err, "prod/api-key")
    assert "credentials" in err


def test_a_bad_endpoint_url_is_a_configuration_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["get", "prod/api-key", "--endpoint-url", "not a url"], capsys)
    assert (code, out) == (7, "")
    assert_clean_error(err, "prod/api-key")


def test_demo_without_moto_names_the_demo_extra(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def missing() -> int:
        raise ModuleNotFoundError("No module named 'moto'", name="moto")

    monkeypatch.setattr(demo_package, "run", missing)
    assert main(["demo"]) == 1
    err = capsys.readouterr().err
    assert "secretcache[demo]" in err and "[dev]" not in err
