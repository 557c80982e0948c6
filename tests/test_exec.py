"""``secretcache exec``: real child processes against moto's server.

The child is a small Python script that reports which variables it got and a
hash of each value, never the values; the tests compare hashes. Failure messages
say where a canary was found, never the canary.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.core.authorization import enable_iam_authentication

import secretcache.cli as cli
from secretcache.testing import FakeSecretsManager

REGION = "us-east-1"
CONTAINERS_PAGE = Path(__file__).resolve().parent.parent / "docs" / "containers.md"
CANARY_KEY = f"CANARY-{uuid.uuid4()}-é€😀"
CANARY_PASSWORD = f"CANARY-{uuid.uuid4()}-пароль-密码"
CANARY_SSM = f"CANARY-{uuid.uuid4()}-ssm-ü"
DB = {
    "username": "app",
    "password": CANARY_PASSWORD,
    "port": 5432,
    "enabled": True,
    "nothing": None,
    "options": {"hosts": ["a", "b"], "retry": {"max": 3, "note": "é"}},
}
BLOB = b"\x00\x01CANARY-" + uuid.uuid4().bytes
CANARIES = ("CANARY", CANARY_KEY, CANARY_PASSWORD, CANARY_SSM)

REPORT = """\
import hashlib, json, os, sys
report = {}
for name in sys.argv[1:]:
    value = os.environb.get(name.encode())
    report[name] = None if value is None else hashlib.sha256(value).hexdigest()
print(json.dumps(report))
"""
"""The child: which of the named variables it got, and the sha256 of each (UTF-8 bytes)."""


def sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def leaks(*outputs: str) -> list[str]:
    """Which outputs hold a canary (by position), never the canary itself."""
    return [f"output {i}" for i, text in enumerate(outputs) if any(c in text for c in CANARIES)]


def ssm_client(moto_server: Any, service: str = "ssm") -> Any:
    return boto3.session.Session().client(
        service,
        region_name=REGION,
        endpoint_url=moto_server.endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture
def stocked(moto_server: Any) -> Any:
    """Secrets and parameters on moto's server (SecureString under a KMS key of its own)."""
    admin = moto_server.client()
    admin.create_secret(Name="prod/api-key", SecretString=CANARY_KEY)
    admin.create_secret(Name="prod/db", SecretString=json.dumps(DB))
    admin.create_secret(Name="prod/blob", SecretBinary=BLOB)
    admin.create_secret(Name="prod/nul", SecretString=json.dumps({"pw": "CANARY\x00tail"}))
    key_id = ssm_client(moto_server, "kms").create_key()["KeyMetadata"]["KeyId"]
    ssm = ssm_client(moto_server)
    ssm.put_parameter(Name="/app/db/host", Value="db.internal", Type="String")
    ssm.put_parameter(Name="/app/db/password", Value=CANARY_SSM, Type="SecureString", KeyId=key_id)
    ssm.put_parameter(Name="/app/config", Value=json.dumps({"pool": 8}), Type="String")
    return admin


def exec_argv(moto_server: Any, *specs: str, command: list[str] | None = None) -> list[str]:
    argv = ["exec", "--endpoint-url", moto_server.endpoint, "--region", REGION]
    for spec in specs:
        argv += ["--env", spec]
    return [*argv, "--", *(command if command is not None else [sys.executable, "-c", REPORT])]


def run_exec(argv: list[str], *names: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``python -m secretcache <argv> <names>`` in a child process (names go to the command)."""
    return subprocess.run(
        [sys.executable, "-m", "secretcache", *argv, *names],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
        env={**os.environ, **env},
        check=False,
    )


def marker_command(path: Path) -> list[str]:
    """A command that leaves a file behind if it ever starts."""
    return [sys.executable, "-c", f"open({str(path)!r}, 'w').close()"]


# ----------------------------------------------------------------- the happy path


def test_the_command_gets_every_variable(stocked: Any, moto_server: Any) -> None:
    arn = stocked.describe_secret(SecretId="prod/db")["ARN"]
    specs = [
        "API_KEY=prod/api-key",
        f"BY_ARN={arn}#password",
        "REFERENCE=ssm:/aws/reference/secretsmanager/prod/api-key",
        "DB_PASSWORD=prod/db#password",
        "DB_USER=prod/db#username",
        "DB_PORT=prod/db#port",
        "DB_ENABLED=prod/db#enabled",
        "DB_NOTHING=prod/db#nothing",
        "DB_OPTIONS=prod/db#options",
        "DB_HOST=ssm:/app/db/host",
        "SSM_PASSWORD=ssm:/app/db/password",
        "POOL=ssm:/app/config#pool",
        "SSM_VERSION=ssm:/app/db/host:1",
    ]
    names = [spec.partition("=")[0] for spec in specs]
    result = run_exec(exec_argv(moto_server, *specs), *names, "INHERITED", INHERITED="kept")
    assert not leaks(result.stdout, result.stderr), "a value reached exec's output"
    assert (result.returncode, result.stderr) == (0, "")
    got = json.loads(result.stdout)
    expected = {
        "API_KEY": CANARY_KEY,
        "BY_ARN": CANARY_PASSWORD,
        "REFERENCE": CANARY_KEY,
        "DB_PASSWORD": CANARY_PASSWORD,
        "DB_USER": "app",
        "DB_PORT": "5432",
        "DB_ENABLED": "true",
        "DB_NOTHING": "null",
        "DB_OPTIONS": '{"hosts":["a","b"],"retry":{"max":3,"note":"é"}}',
        "DB_HOST": "db.internal",
        "SSM_PASSWORD": CANARY_SSM,
        "POOL": "8",
        "SSM_VERSION": "db.internal",
        "INHERITED": "kept",
    }
    assert got == {name: sha(value) for name, value in expected.items()}


@pytest.mark.parametrize("status", [0, 3, 42])
def test_the_exit_status_is_the_commands(stocked: Any, moto_server: Any, status: int) -> None:
    script = f"import sys; print('ran'); sys.exit({status})"
    argv = exec_argv(moto_server, "API_KEY=prod/api-key", command=[sys.executable, "-c", script])
    result = run_exec(argv)
    assert (result.returncode, result.stdout, result.stderr) == (status, "ran\n", "")


SIGNALLED = """\
import os, signal, sys
def on_term(signum, frame):
    print("got SIGTERM", flush=True)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)
signal.signal(signal.SIGTERM, on_term)
print(os.getpid(), flush=True)
while True:
    signal.pause()
"""


@pytest.mark.skipif(not hasattr(signal, "pause"), reason="POSIX signals")
def test_the_command_is_the_process_and_gets_its_signals(stocked: Any, moto_server: Any) -> None:
    argv = exec_argv(moto_server, "API_KEY=prod/api-key", command=[sys.executable, "-c", SIGNALLED])
    child = subprocess.Popen(
        [sys.executable, "-m", "secretcache", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        ready = child.stdout.readline()  # written by the command once it runs
        assert ready.strip() == str(child.pid), "the command is not the process exec started as"
        child.send_signal(signal.SIGTERM)
        out, err = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGTERM
    assert out == "got SIGTERM\n" and err == ""


def ignored_signals(status_text: str) -> int:
    line = next(line for line in status_text.splitlines() if line.startswith("SigIgn:"))
    return int(line.split()[1], 16)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="Linux /proc")
def test_the_command_does_not_inherit_pythons_ignored_signals(
    stocked: Any, moto_server: Any
) -> None:
    # Python ignores SIGPIPE and SIGXFSZ; an ignored signal survives execve, so a
    # command would get EPIPE instead of dying quietly under `| head`.
    argv = exec_argv(moto_server, "API_KEY=prod/api-key", command=["cat", "/proc/self/status"])
    result = run_exec(argv)
    assert result.returncode == 0, result.stderr
    mask = ignored_signals(result.stdout)
    for number in (signal.SIGPIPE, signal.SIGXFSZ):
        assert not mask & (1 << (number - 1)), f"signal {number} is ignored in the command"


# ------------------------------------------------------------ failures start nothing


def test_a_missing_secret_starts_nothing(stocked: Any, moto_server: Any, tmp_path: Path) -> None:
    marker = tmp_path / "started"
    specs = ("API_KEY=prod/api-key", "DB_PASSWORD=prod/db#password", "GONE=prod/missing")
    result = run_exec(exec_argv(moto_server, *specs, command=marker_command(marker)))
    assert not leaks(result.stdout, result.stderr), "a value reached exec's output"
    get = run_exec(["get", "--endpoint-url", moto_server.endpoint, "prod/missing"])
    assert result.returncode == get.returncode == cli.EXIT_NOT_FOUND
    assert not marker.exists(), "the command ran although a secret was missing"
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and "GONE" in lines[0] and "'prod/missing'" in lines[0]
    assert "Traceback" not in result.stderr


def test_a_missing_json_key_names_the_secret_and_the_key(
    stocked: Any, moto_server: Any, tmp_path: Path
) -> None:
    marker = tmp_path / "started"
    specs = ("DB_PASSWORD=prod/db#pasword", "API_KEY=prod/api-key")
    result = run_exec(exec_argv(moto_server, *specs, command=marker_command(marker)))
    assert not leaks(result.stdout, result.stderr), "a value reached exec's output"
    assert result.returncode == cli.EXIT_DECODE
    assert not marker.exists()
    assert "'prod/db'" in result.stderr and "'pasword'" in result.stderr
    assert "DB_PASSWORD" in result.stderr and len(result.stderr.splitlines()) == 1


def test_every_failure_is_named_and_the_first_sets_the_status(
    stocked: Any, moto_server: Any, tmp_path: Path
) -> None:
    marker = tmp_path / "started"
    specs = ("A=prod/db#nope", "B=ssm:/app/missing", "C=prod/blob", "D=prod/api-key")
    result = run_exec(exec_argv(moto_server, *specs, command=marker_command(marker)))
    assert not leaks(result.stdout, result.stderr), "a value reached exec's output"
    assert result.returncode == cli.EXIT_DECODE and not marker.exists()
    lines = result.stderr.splitlines()
    assert [line.split(":")[3].strip() for line in lines] == ["A", "B", "C"]
    assert "'/app/missing'" in lines[1] and "not found" in lines[1]


def test_a_binary_secret_is_refused(stocked: Any, moto_server: Any, tmp_path: Path) -> None:
    marker = tmp_path / "started"
    result = run_exec(exec_argv(moto_server, "BLOB=prod/blob", command=marker_command(marker)))
    assert not leaks(result.stdout, result.stderr), "a value reached exec's output"
    assert result.returncode == cli.EXIT_DECODE and not marker.exists()
    assert "'prod/blob'" in result.stderr and "binary" in result.stderr


def test_a_nul_character_is_refused(stocked: Any, moto_server: Any, tmp_path: Path) -> None:
    marker = tmp_path / "started"
    result = run_exec(exec_argv(moto_server, "PW=prod/nul#pw", command=marker_command(marker)))
    assert not leaks(result.stdout, result.stderr), "a value reached exec's output"
    assert result.returncode == cli.EXIT_ERROR and not marker.exists()
    assert "'prod/nul'" in result.stderr and "'pw'" in result.stderr and "NUL" in result.stderr


def test_a_stage_applies_to_secrets_only(stocked: Any, moto_server: Any) -> None:
    pending = f"CANARY-{uuid.uuid4()}-pending"
    stocked.put_secret_value(
        SecretId="prod/api-key",
        SecretString=pending,
        VersionStages=["AWSPENDING"],
        ClientRequestToken=str(uuid.uuid4()),
    )
    argv = exec_argv(moto_server, "API_KEY=prod/api-key", "DB_HOST=ssm:/app/db/host")
    argv[1:1] = ["--stage", "AWSPENDING"]
    result = run_exec(argv, "API_KEY", "DB_HOST")
    assert not leaks(result.stdout, result.stderr), "a value reached exec's output"
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"API_KEY": sha(pending), "DB_HOST": sha("db.internal")}
    argv = exec_argv(moto_server, "DB_PASSWORD=prod/db#password")
    argv[1:1] = ["--stage", "AWSPENDING"]
    result = run_exec(argv)
    assert result.returncode == cli.EXIT_NOT_FOUND
    assert "'prod/db' (stage AWSPENDING)" in result.stderr


def test_a_command_that_is_not_there_is_127(stocked: Any, moto_server: Any, tmp_path: Path) -> None:
    missing = f"no-such-command-{uuid.uuid4().hex}"
    result = run_exec(exec_argv(moto_server, "API_KEY=prod/api-key", command=[missing, "-x"]))
    assert not leaks(result.stdout, result.stderr), "a value reached exec's output"
    assert result.returncode == 127
    assert missing in result.stderr and "not found" in result.stderr
    not_executable = tmp_path / "script"
    not_executable.write_text("#!/bin/sh\nexit 0\n")
    result = run_exec(exec_argv(moto_server, "API_KEY=prod/api-key", command=[str(not_executable)]))
    assert result.returncode == 126 and "cannot run" in result.stderr


# ----------------------------------------------------------- in process (no real exec)


class Replaced(BaseException):
    """Raised by the stand-in for ``os.execvpe``: the process would be gone by now."""

    def __init__(self, program: str, args: list[str], env: dict[str, str]) -> None:
        super().__init__("execvpe")
        self.program, self.argv, self.env = program, args, env


@pytest.fixture
def no_exec(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """``os.execvpe`` records instead of replacing pytest; signal dispositions restored."""

    def execvpe(program: str, args: list[str], env: dict[str, str]) -> None:
        raise Replaced(program, list(args), dict(env))

    monkeypatch.setattr(os, "execvpe", execvpe)
    saved = {number: signal.getsignal(number) for number in (signal.SIGPIPE, signal.SIGXFSZ)}
    yield
    for number, handler in saved.items():
        signal.signal(number, handler)


def count_calls(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Every API call of the clients exec makes, by operation (a botocore event hook)."""
    calls: Counter[str] = Counter()
    make_client = cli._client

    def counted(*args: Any, **kwargs: Any) -> Any:
        client = make_client(*args, **kwargs)

        def before_call(model: Any, **_: Any) -> None:
            calls[model.name] += 1

        client.meta.events.register("before-call", before_call)
        return client

    monkeypatch.setattr(cli, "_client", counted)
    return calls


def run_in_process(argv: list[str], capsys: pytest.CaptureFixture[str]) -> Replaced | int:
    try:
        code = cli.main(argv)
    except Replaced as replaced:
        return replaced
    return code


def test_many_secrets_are_read_in_batches(
    moto_server: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    no_exec: None,
) -> None:
    admin, ssm = moto_server.client(), ssm_client(moto_server)
    secrets = {f"S{i}": f"CANARY-{uuid.uuid4()}-{i}-ä" for i in range(25)}
    for name, value in secrets.items():
        admin.create_secret(Name=f"prod/many/{name}", SecretString=value)
    parameters = {f"P{i}": f"CANARY-{uuid.uuid4()}-{i}" for i in range(12)}
    for name, value in parameters.items():
        ssm.put_parameter(Name=f"/app/many/{name}", Value=value, Type="String")
    calls = count_calls(monkeypatch)
    caplog.set_level(logging.DEBUG, logger="secretcache")
    specs = [f"{name}=prod/many/{name}" for name in secrets]
    specs += [f"{name}=ssm:/app/many/{name}" for name in parameters]
    outcome = run_in_process(exec_argv(moto_server, *specs, command=["true", "x"]), capsys)
    captured = capsys.readouterr()
    assert not leaks(captured.out, captured.err, caplog.text), "a value reached output or logs"
    assert isinstance(outcome, Replaced), captured.err
    assert (outcome.program, outcome.argv) == ("true", ["true", "x"])
    assert calls == {"BatchGetSecretValue": 2, "GetParameters": 2}  # 20 + 5, 10 + 2
    wanted = {**secrets, **parameters}
    got = {name: sha(outcome.env[name]) for name in wanted}
    assert got == {name: sha(value) for name, value in wanted.items()}
    assert outcome.env["PATH"] == os.environ["PATH"]  # the rest of the environment is kept


def test_a_stage_reads_secrets_one_by_one(
    moto_server: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    no_exec: None,
) -> None:
    admin = moto_server.client()
    for i in range(3):
        admin.create_secret(Name=f"prod/s{i}", SecretString=f"old{i}")
        admin.put_secret_value(SecretId=f"prod/s{i}", SecretString=f"new{i}")
    calls = count_calls(monkeypatch)
    argv = exec_argv(moto_server, *(f"S{i}=prod/s{i}" for i in range(3)), command=["true"])
    argv[1:1] = ["--stage", "AWSPREVIOUS"]
    outcome = run_in_process(argv, capsys)
    assert isinstance(outcome, Replaced), capsys.readouterr().err
    assert calls == {"GetSecretValue": 3}  # the batch call serves AWSCURRENT only
    assert [outcome.env[f"S{i}"] for i in range(3)] == ["old0", "old1", "old2"]


def test_failures_are_logged_and_reported_without_values(
    stocked: Any,
    moto_server: Any,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    no_exec: None,
) -> None:
    caplog.set_level(logging.DEBUG, logger="secretcache")
    specs = (
        "API_KEY=prod/api-key",
        "KEYED=prod/api-key#x",  # not JSON: the decode error must not quote it
        "PW=prod/db#missing",
        "NUL=prod/nul#pw",
        "SSM=ssm:/app/db/password#x",
        "GONE=prod/gone",
    )
    outcome = run_in_process(exec_argv(moto_server, *specs), capsys)
    captured = capsys.readouterr()
    records = "\n".join(f"{r.getMessage()} {r.args!r} {r.exc_info!r}" for r in caplog.records)
    assert not leaks(captured.out, captured.err, caplog.text, records), "a value leaked"
    assert outcome == cli.EXIT_DECODE
    named = [line.split(":")[3].strip() for line in captured.err.splitlines()]
    assert named == ["KEYED", "PW", "NUL", "SSM", "GONE"]


def fake_client(fake: FakeSecretsManager) -> Any:
    def make(*_: Any, **__: Any) -> Any:
        return fake

    return make


@pytest.mark.parametrize(
    "fault",
    ["ResourceNotFoundException", "AccessDeniedException", "DecryptionFailure", "unavailable"],
)
def test_exit_statuses_are_those_of_get(
    fault: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    no_exec: None,
) -> None:
    fake = FakeSecretsManager()
    fake.put("prod/api-key", CANARY_KEY)
    fake.fail(fault, secret_id="prod/api-key")
    monkeypatch.setattr(cli, "_client", fake_client(fake))
    get_status = cli.main(["get", "prod/api-key"])
    exec_status = run_in_process(["exec", "--env", "K=prod/api-key", "--", "true"], capsys)
    captured = capsys.readouterr()
    assert not leaks(captured.out, captured.err), "a value reached the output"
    assert exec_status == get_status
    assert exec_status in {cli.EXIT_NOT_FOUND, cli.EXIT_DENIED, cli.EXIT_UNAVAILABLE}


def test_an_unencodable_value_is_refused(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], no_exec: None
) -> None:
    fake = FakeSecretsManager()
    fake.put("prod/odd", "CANARY-\ud800-lone")
    monkeypatch.setattr(cli, "_client", fake_client(fake))
    outcome = run_in_process(["exec", "--env", "ODD=prod/odd", "--", "true"], capsys)
    captured = capsys.readouterr()
    assert not leaks(captured.out, captured.err), "a value reached the output"
    assert outcome == cli.EXIT_ERROR
    assert "ODD" in captured.err and "'prod/odd'" in captured.err


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["exec", "--env", "A=prod/a", "true"], "after --"),
        (["exec", "--env", "A=prod/a", "java", "-jar", "app.jar"], "after --"),
        (["exec", "--env", "A=prod/a", "--"], "no command"),
        (["exec", "--", "true"], "at least one --env"),
        (["exec", "--env", "1A=prod/a", "--", "true"], "'1A' is not a valid"),
        (["exec", "--env", "A-B=prod/a", "--", "true"], "'A-B' is not a valid"),
        (["exec", "--env", "A", "--", "true"], "NAME=SECRET_ID"),
        (["exec", "--env", "A=", "--", "true"], "no secret id"),
        (["exec", "--env", "A=ssm:", "--", "true"], "no parameter name"),
        (["exec", "--env", "A=prod/a#", "--", "true"], "no JSON key"),
        (["exec", "--env", "A=prod/a", "--env", "A=prod/b", "--", "true"], "A is given twice"),
        (["exec", "--stage", "", "--env", "A=prod/a", "--", "true"], "--stage"),
    ],
)
def test_usage_errors(
    argv: list[str], says: str, capsys: pytest.CaptureFixture[str], no_exec: None
) -> None:
    outcome = run_in_process(argv, capsys)
    err = capsys.readouterr().err
    assert outcome == cli.EXIT_USAGE
    assert says in err and len(err.splitlines()) == 1


def test_no_region_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], no_exec: None
) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    outcome = run_in_process(["exec", "--env", "A=prod/a", "--", "true"], capsys)
    err = capsys.readouterr().err
    assert outcome == cli.EXIT_CONFIG
    assert "region" in err and "'prod/a'" in err


def test_help_says_values_do_not_rotate() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "secretcache", "exec", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    assert "Environment variables do not rotate" in text
    assert "BatchGetSecretValue" in text and "127 COMMAND not found" in text


# ------------------------------------------------- the documented IAM policy, enforced


def documented_policy() -> dict[str, Any]:
    text = CONTAINERS_PAGE.read_text()
    body = text.split("<!-- exec-iam-policy -->", 1)[1].split("```json\n", 1)[1].split("```")[0]
    policy: dict[str, Any] = json.loads(body)
    return policy


def moto_checkable(policy: dict[str, Any], *, drop: tuple[str, ...] = ()) -> str:
    """Resources widened to ``*``, conditions dropped (moto checks actions), ``drop`` left out."""
    statements = []
    for statement in policy["Statement"]:
        actions = statement["Action"]
        actions = [a for a in ([actions] if isinstance(actions, str) else actions) if a not in drop]
        if actions:
            statement = {**statement, "Action": actions, "Resource": "*"}
            statement.pop("Condition", None)
            statements.append(statement)
    return json.dumps({**policy, "Statement": statements})


def act_as_user_with(policy: str, monkeypatch: pytest.MonkeyPatch) -> None:
    iam = boto3.client("iam", region_name=REGION)
    name = f"exec-{uuid.uuid4().hex[:8]}"
    iam.create_user(UserName=name)
    iam.put_user_policy(UserName=name, PolicyName="exec", PolicyDocument=policy)
    key = iam.create_access_key(UserName=name)["AccessKey"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
    monkeypatch.delenv("AWS_SESSION_TOKEN")


@pytest.fixture
def stocked_in_process(aws: None) -> None:
    admin = boto3.client("secretsmanager", region_name=REGION)
    admin.create_secret(Name="prod/api-key", SecretString=CANARY_KEY)
    admin.create_secret(Name="prod/db", SecretString=json.dumps(DB))
    key_id = boto3.client("kms", region_name=REGION).create_key()["KeyMetadata"]["KeyId"]
    ssm = boto3.client("ssm", region_name=REGION)
    ssm.put_parameter(Name="/app/db/password", Value=CANARY_SSM, Type="SecureString", KeyId=key_id)
    ssm.put_parameter(Name="/app/db/host", Value="db.internal", Type="String")


EXEC_ALL = [
    "exec",
    *("--env", "API_KEY=prod/api-key", "--env", "DB_PASSWORD=prod/db#password"),
    *("--env", "SSM_PASSWORD=ssm:/app/db/password", "--env", "DB_HOST=ssm:/app/db/host"),
    *("--", "true"),
]


def test_the_documented_policy_is_enough(
    stocked_in_process: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    no_exec: None,
) -> None:
    act_as_user_with(moto_checkable(documented_policy()), monkeypatch)
    calls = count_calls(monkeypatch)
    with enable_iam_authentication():
        outcome = run_in_process(EXEC_ALL, capsys)
    assert isinstance(outcome, Replaced), capsys.readouterr().err
    assert calls == {"BatchGetSecretValue": 1, "GetParameters": 1}
    expected = {"API_KEY": CANARY_KEY, "DB_PASSWORD": CANARY_PASSWORD, "SSM_PASSWORD": CANARY_SSM}
    got = {name: sha(outcome.env[name]) for name in expected}
    assert got == {name: sha(value) for name, value in expected.items()}


@pytest.mark.parametrize(
    ("drop", "expected_calls"),
    [
        (
            "secretsmanager:BatchGetSecretValue",
            {"BatchGetSecretValue": 1, "GetSecretValue": 2, "GetParameters": 1},
        ),
        ("ssm:GetParameters", {"BatchGetSecretValue": 1, "GetParameters": 1, "GetParameter": 2}),
    ],
)
def test_without_a_batch_permission_each_entry_is_read_alone(
    drop: str,
    expected_calls: dict[str, int],
    stocked_in_process: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    no_exec: None,
) -> None:
    act_as_user_with(moto_checkable(documented_policy(), drop=(drop,)), monkeypatch)
    calls = count_calls(monkeypatch)
    with enable_iam_authentication():
        outcome = run_in_process(EXEC_ALL, capsys)
    assert isinstance(outcome, Replaced), capsys.readouterr().err
    assert calls == expected_calls


@pytest.mark.parametrize(
    ("drop", "denied"),
    [
        (("secretsmanager:GetSecretValue", "secretsmanager:BatchGetSecretValue"), "API_KEY"),
        (("ssm:GetParameter", "ssm:GetParameters"), "SSM_PASSWORD"),
    ],
)
def test_without_a_read_permission_nothing_starts(
    drop: tuple[str, ...],
    denied: str,
    stocked_in_process: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    no_exec: None,
) -> None:
    act_as_user_with(moto_checkable(documented_policy(), drop=drop), monkeypatch)
    with enable_iam_authentication():
        outcome = run_in_process(EXEC_ALL, capsys)
    captured = capsys.readouterr()
    assert not leaks(captured.out, captured.err), "a value reached the output"
    assert outcome == cli.EXIT_DENIED
    assert f"exec: {denied}: " in captured.err and "Traceback" not in captured.err
