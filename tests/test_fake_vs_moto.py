"""The fake is proven faithful, not assumed: one scenario, run on FakeSecretsManager and on moto.

Each scenario is written once against the client API and run on both backends;
its transcript (every answer's fields, with version ids, ARNs and dates reduced
to what must agree; every error's class, code and operation) must be equal. The
same goes for what :class:`~secretcache.SecretCache` makes of them: values,
stages, and the typed error with its message.

Where moto and AWS part ways the fake follows AWS, and the scenarios leave that
out (each difference is pinned by a test of the fake alone in test_testing.py):
- moto answers ``ResourceNotFoundException`` with HTTP 404; AWS (and the fake) with 400;
- moto lets ``PutSecretValue`` add a version to a secret scheduled for deletion, and
  ``CreateSecret`` reuse its name with ``ResourceExistsException``; AWS refuses both
  with ``InvalidRequestException``;
- moto accepts ``SecretString`` and ``SecretBinary`` together, and more than 20 ids in
  ``BatchGetSecretValue``; AWS (and the fake) answer ``InvalidParameterException``;
- moto's ``PutSecretValue`` after an ``UpdateSecretVersionStage`` moved ``AWSCURRENT``
  takes the label from the version that *used* to be current, leaving two versions
  labelled ``AWSCURRENT``; on AWS (and the fake) a label is on one version only;
- messages: moto's "can't find the specified secret" for an unknown stage; the fake
  names the label, as AWS does.
"""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Callable
from datetime import datetime
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from secretcache import (
    CacheConfig,
    SecretAccessDeniedError,
    SecretCache,
    SecretCacheError,
    SecretNotFoundError,
    SecretUnavailableError,
)
from secretcache.testing import FakeSecretsManager
from tests.reliability.faults import Faults, aws_error

ARN_RE = re.compile(
    r"^arn:aws:secretsmanager:us-east-1:123456789012:secret:(?P<name>.+)-[A-Za-z0-9]{6}$"
)
TOKEN = "rotation-token-0000000000000000000001"
TOKEN_2 = "rotation-token-0000000000000000000002"


class Transcript:
    """Runs client calls and records normalised outcomes, comparable across backends."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.entries: list[tuple[str, Any]] = []
        self._aliases: dict[str, str] = {}

    def call(self, label: str, operation: str, **params: Any) -> dict[str, Any] | None:
        try:
            response: dict[str, Any] = getattr(self.client, operation)(**params)
        except ClientError as exc:
            error = exc.response["Error"]
            self.entries.append(
                (label, ("error", type(exc).__name__, error["Code"], exc.operation_name))
            )
            assert sorted(exc.response) == ["Error", "ResponseMetadata"], label
            assert isinstance(error.get("Message"), str) and error["Message"], label
            return None
        except BotoCoreError as exc:
            self.entries.append((label, ("error", type(exc).__name__, str(exc))))
            return None
        metadata = response.get("ResponseMetadata", {})
        assert metadata.get("HTTPStatusCode") == 200, label
        self.entries.append((label, self._norm(response)))
        return response

    def record(self, label: str, value: Any) -> None:
        self.entries.append((label, self._norm(value)))

    def alias(self, version_id: str) -> str:
        return self._aliases.setdefault(version_id, f"v{len(self._aliases) + 1}")

    def _norm(self, value: Any, key: str | None = None) -> Any:
        if isinstance(value, dict):
            return {
                k: self._norm(v, k)
                for k, v in sorted(value.items())
                if k != "ResponseMetadata"
                if k != "VersionIdsToStages"
            } | (
                {
                    "VersionIdsToStages": {
                        self.alias(vid): sorted(stages)
                        for vid, stages in value["VersionIdsToStages"].items()
                    }
                }
                if "VersionIdsToStages" in value
                else {}
            )
        if isinstance(value, list):
            items = [self._norm(v) for v in value]
            return sorted(items) if key == "VersionStages" else items
        if isinstance(value, datetime):
            assert value.tzinfo is not None, key
            return "<aware datetime>"
        if key == "Message" and isinstance(value, str) and value:
            return "<message>"  # wording differs between moto and AWS; the code is compared
        if key == "VersionId" and isinstance(value, str):
            return self.alias(value)
        if key == "ARN" and isinstance(value, str):
            match = ARN_RE.match(value)
            assert match is not None, f"not an ARN of this account and region: {key}"
            return f"<ARN of {match['name']}>"
        return value


def run_both(sm: Any, scenario: Callable[[Transcript], None]) -> None:
    fake, moto = Transcript(FakeSecretsManager()), Transcript(sm)
    scenario(fake)
    scenario(moto)
    assert [label for label, _ in fake.entries] == [label for label, _ in moto.entries]
    for (label, got), (_, expected) in zip(fake.entries, moto.entries, strict=True):
        assert got == expected, f"the fake and moto differ at step {label!r}"


# ------------------------------------------------------------------ client API


def test_reads_by_name_arn_and_partial_arn(sm: Any) -> None:
    def scenario(t: Transcript) -> None:
        created = t.call("create", "create_secret", Name="app/db", SecretString='{"user": "a"}')
        assert created is not None
        arn = created["ARN"]
        t.call("create binary", "create_secret", Name="app/bin", SecretBinary=b"\x00\x01")
        t.call("create empty", "create_secret", Name="app/empty", Description="no value yet")
        t.call("by name", "get_secret_value", SecretId="app/db", VersionStage="AWSCURRENT")
        t.call("no stage given", "get_secret_value", SecretId="app/db")
        t.call("by ARN", "get_secret_value", SecretId=arn, VersionStage="AWSCURRENT")
        t.call("by partial ARN", "get_secret_value", SecretId=arn[:-7])
        t.call("binary", "get_secret_value", SecretId="app/bin", VersionStage="AWSCURRENT")
        t.call("empty", "get_secret_value", SecretId="app/empty", VersionStage="AWSCURRENT")
        t.call("describe empty", "describe_secret", SecretId="app/empty")
        t.call("unknown", "get_secret_value", SecretId="nope", VersionStage="AWSCURRENT")
        t.call(
            "unknown ARN", "get_secret_value", SecretId=arn[:-1] + ("Z" if arn[-1] != "Z" else "Y")
        )
        t.call("other region", "get_secret_value", SecretId=arn.replace("us-east-1", "eu-west-1"))
        t.call("duplicate", "create_secret", Name="app/db", SecretString="x")

    run_both(sm, scenario)


def test_put_moves_current_and_previous(sm: Any) -> None:
    def scenario(t: Transcript) -> None:
        t.call("create", "create_secret", Name="svc", SecretString="one")
        for n, value in enumerate(["two", "three"], start=2):
            t.call(f"put {n}", "put_secret_value", SecretId="svc", SecretString=value)
            for stage in ("AWSCURRENT", "AWSPREVIOUS"):
                t.call(
                    f"{stage} after put {n}", "get_secret_value", SecretId="svc", VersionStage=stage
                )
            t.call(f"describe after put {n}", "describe_secret", SecretId="svc")
        first = t.call("first version by id", "describe_secret", SecretId="svc")
        assert first is not None
        oldest = next(iter(first["VersionIdsToStages"]))
        t.call("unlabelled version", "get_secret_value", SecretId="svc", VersionId=oldest)
        t.call(
            "id and stage agree",
            "get_secret_value",
            SecretId="svc",
            VersionId=oldest,
            VersionStage="AWSCURRENT",
        )
        t.call("unknown stage", "get_secret_value", SecretId="svc", VersionStage="blue")
        t.call("unknown version", "get_secret_value", SecretId="svc", VersionId="0" * 32)
        t.call("short version id", "get_secret_value", SecretId="svc", VersionId="abc")
        t.call("unknown parameter", "get_secret_value", SecretId="svc", Stage="AWSCURRENT")
        t.call("positional-free empty id", "get_secret_value", SecretId="")
        t.call("no value", "put_secret_value", SecretId="svc")
        t.call("unknown secret", "put_secret_value", SecretId="nope", SecretString="x")

    run_both(sm, scenario)


def test_idempotent_tokens(sm: Any) -> None:
    def scenario(t: Transcript) -> None:
        t.call("create", "create_secret", Name="svc", SecretString="one", ClientRequestToken=TOKEN)
        t.call(
            "same token same value",
            "put_secret_value",
            SecretId="svc",
            SecretString="one",
            ClientRequestToken=TOKEN,
        )
        t.call(
            "same token new value",
            "put_secret_value",
            SecretId="svc",
            SecretString="two",
            ClientRequestToken=TOKEN,
        )
        t.call("describe", "describe_secret", SecretId="svc")

    run_both(sm, scenario)


def rotate_by_api(t: Transcript, name: str, value: str, token: str) -> None:
    """The four steps as a rotation function makes them (plus the service dropping AWSPENDING)."""
    current = t.call(
        f"{token}: read current", "get_secret_value", SecretId=name, VersionStage="AWSCURRENT"
    )
    assert current is not None
    t.call(
        f"{token}: createSecret",
        "put_secret_value",
        SecretId=name,
        SecretString=value,
        ClientRequestToken=token,
        VersionStages=["AWSPENDING"],
    )
    for stage in ("AWSCURRENT", "AWSPENDING", "AWSPREVIOUS"):
        t.call(f"{token}: window {stage}", "get_secret_value", SecretId=name, VersionStage=stage)
    t.call(f"{token}: window describe", "describe_secret", SecretId=name)
    t.call(
        f"{token}: finish without RemoveFromVersionId",
        "update_secret_version_stage",
        SecretId=name,
        VersionStage="AWSCURRENT",
        MoveToVersionId=token,
    )
    t.call(
        f"{token}: finishSecret",
        "update_secret_version_stage",
        SecretId=name,
        VersionStage="AWSCURRENT",
        MoveToVersionId=token,
        RemoveFromVersionId=current["VersionId"],
    )
    t.call(
        f"{token}: drop AWSPENDING",
        "update_secret_version_stage",
        SecretId=name,
        VersionStage="AWSPENDING",
        RemoveFromVersionId=token,
    )
    for stage in ("AWSCURRENT", "AWSPENDING", "AWSPREVIOUS"):
        t.call(f"{token}: after {stage}", "get_secret_value", SecretId=name, VersionStage=stage)
    t.call(f"{token}: after describe", "describe_secret", SecretId=name)


def test_rotation_steps_through_the_api(sm: Any) -> None:
    def scenario(t: Transcript) -> None:
        t.call("create", "create_secret", Name="db", SecretString=json.dumps({"password": "p0"}))
        rotate_by_api(t, "db", json.dumps({"password": "p1"}), TOKEN)
        rotate_by_api(t, "db", json.dumps({"password": "p2"}), TOKEN_2)
        t.call(
            "wrong RemoveFromVersionId",
            "update_secret_version_stage",
            SecretId="db",
            VersionStage="AWSCURRENT",
            MoveToVersionId=TOKEN,
            RemoveFromVersionId=TOKEN,
        )
        t.call(
            "unknown version",
            "update_secret_version_stage",
            SecretId="db",
            VersionStage="blue",
            MoveToVersionId="f" * 32,
        )
        t.call(
            "custom label",
            "update_secret_version_stage",
            SecretId="db",
            VersionStage="blue",
            MoveToVersionId=TOKEN,
        )
        t.call("read custom label", "get_secret_value", SecretId="db", VersionStage="blue")
        t.call(
            "custom label moves",
            "update_secret_version_stage",
            SecretId="db",
            VersionStage="blue",
            MoveToVersionId=TOKEN_2,
            RemoveFromVersionId=TOKEN,
        )
        t.call("describe", "describe_secret", SecretId="db")

    run_both(sm, scenario)


def test_batch_get(sm: Any) -> None:
    def scenario(t: Transcript) -> None:
        created = t.call("create a", "create_secret", Name="a", SecretString="A")
        assert created is not None
        t.call("create b", "create_secret", Name="b", SecretBinary=b"B")
        t.call("put a", "put_secret_value", SecretId="a", SecretString="A2")
        t.call(
            "pending a",
            "put_secret_value",
            SecretId="a",
            SecretString="A3",
            VersionStages=["AWSPENDING"],
        )
        t.call(
            "batch", "batch_get_secret_value", SecretIdList=["a", "missing", "b", created["ARN"]]
        )
        t.call("batch of unknowns", "batch_get_secret_value", SecretIdList=["x", "y"])
        t.call("batch without errors", "batch_get_secret_value", SecretIdList=["b", "a"])
        t.call("empty batch", "batch_get_secret_value", SecretIdList=[])
        t.call(
            "both lists and filters",
            "batch_get_secret_value",
            SecretIdList=["a"],
            Filters=[{"Key": "name", "Values": ["a"]}],
        )

    run_both(sm, scenario)


def test_deletion(sm: Any) -> None:
    def scenario(t: Transcript) -> None:
        t.call("create", "create_secret", Name="old", SecretString="x")
        t.call("create other", "create_secret", Name="gone", SecretString="y")
        t.call("bad window", "delete_secret", SecretId="old", RecoveryWindowInDays=3)
        t.call(
            "window and force",
            "delete_secret",
            SecretId="old",
            RecoveryWindowInDays=7,
            ForceDeleteWithoutRecovery=True,
        )
        t.call("schedule", "delete_secret", SecretId="old", RecoveryWindowInDays=7)
        t.call("read scheduled", "get_secret_value", SecretId="old", VersionStage="AWSCURRENT")
        t.call("describe scheduled", "describe_secret", SecretId="old")
        t.call("batch with scheduled", "batch_get_secret_value", SecretIdList=["old"])
        t.call("force", "delete_secret", SecretId="gone", ForceDeleteWithoutRecovery=True)
        t.call("read forced", "get_secret_value", SecretId="gone", VersionStage="AWSCURRENT")
        t.call("describe forced", "describe_secret", SecretId="gone")

    run_both(sm, scenario)


# ------------------------------------------------------------------ helpers vs the API


def test_put_and_rotate_helpers_do_what_the_api_calls_do(sm: Any) -> None:
    """fake.put / fake.rotate leave the labels and values the equivalent AWS calls leave."""
    fake = FakeSecretsManager()

    def state(client: Any, t: Transcript, label: str) -> None:
        t.call(f"{label} describe", "describe_secret", SecretId="s")
        for stage in ("AWSCURRENT", "AWSPREVIOUS", "AWSPENDING"):
            t.call(f"{label} {stage}", "get_secret_value", SecretId="s", VersionStage=stage)

    on_fake, on_moto = Transcript(fake), Transcript(sm)
    fake.put("s", "one")
    sm.create_secret(Name="s", SecretString="one")
    state(fake, on_fake, "created")
    state(sm, on_moto, "created")
    fake.put("s", {"k": "two"})
    sm.put_secret_value(SecretId="s", SecretString=json.dumps({"k": "two"}))
    state(fake, on_fake, "put")
    state(sm, on_moto, "put")
    fake.put("s", b"three")
    sm.put_secret_value(SecretId="s", SecretBinary=b"three")
    state(fake, on_fake, "binary")
    state(sm, on_moto, "binary")
    fake.rotate("s", "four", token=TOKEN)
    scratch = Transcript(sm)  # the API rotation's own steps are compared elsewhere
    rotate_by_api(scratch, "s", "four", TOKEN)
    state(fake, on_fake, "rotated")
    state(sm, on_moto, "rotated")
    assert on_fake.entries == on_moto.entries


# ------------------------------------------------------------------ through SecretCache


def cache_outcomes(client: Any, reads: list[tuple[str, str | None, str | None]]) -> list[Any]:
    cache = SecretCache(client=client, config=CacheConfig(retry_attempts=1))
    outcomes: list[Any] = []
    for secret_id, stage, version_id in reads:
        try:
            value = cache.get_secret(secret_id, stage, version_id=version_id)
        except SecretCacheError as exc:
            outcomes.append((type(exc).__name__, str(exc), type(exc.__cause__).__name__))
        else:
            outcomes.append(
                (value.secret_string, value.secret_binary, sorted(value.version_stages))
            )
    return outcomes


def test_cache_reads_and_typed_errors_agree(sm: Any) -> None:
    fake = FakeSecretsManager()
    for client in (fake, sm):
        client.create_secret(Name="app", SecretString="v1")
        client.put_secret_value(SecretId="app", SecretString="v2")
        client.create_secret(Name="bin", SecretBinary=b"\x01")
        client.create_secret(Name="bye", SecretString="x")
        client.delete_secret(SecretId="bye", RecoveryWindowInDays=7)
        client.create_secret(Name="nothing")
    reads: list[tuple[str, str | None, str | None]] = [
        ("app", None, None),
        ("app", "AWSPREVIOUS", None),
        ("app", "AWSPENDING", None),
        ("app", "blue", None),
        ("bin", None, None),
        ("missing", None, None),
        ("bye", None, None),
        ("nothing", None, None),
        ("app", None, "0" * 32),
        ("app", None, "short"),
    ]
    got, expected = cache_outcomes(fake, reads), cache_outcomes(sm, reads)
    for read, mine, theirs in zip(reads, got, expected, strict=True):
        assert mine == theirs, f"SecretCache over the fake and over moto differ for {read[:2]}"


INJECTED = [
    ("ResourceNotFoundException", 400, SecretNotFoundError),
    ("InvalidRequestException", 400, SecretNotFoundError),
    ("InvalidParameterException", 400, SecretNotFoundError),
    ("AccessDeniedException", 400, SecretAccessDeniedError),
    ("DecryptionFailure", 400, SecretAccessDeniedError),
    ("ThrottlingException", 400, SecretUnavailableError),
    ("InternalServiceError", 500, SecretUnavailableError),
]


@pytest.mark.parametrize(("code", "status", "error"), INJECTED, ids=[c for c, _, _ in INJECTED])
def test_injected_faults_reach_the_cache_as_from_the_service(
    sm: Any, code: str, status: int, error: type[SecretCacheError]
) -> None:
    """fake.fail(code) and the service answering code (botocore parses a real JSON error body)."""
    sm.create_secret(Name="svc", SecretString="v")
    Faults(sm).set(lambda request: aws_error(status, code, "injected"))
    fake = FakeSecretsManager({"svc": "v"})
    fake.fail(code)

    def outcome(client: Any) -> tuple[Any, ...]:
        cache = SecretCache(client=client, config=CacheConfig(retry_attempts=2))
        with pytest.raises(error) as caught:
            cache.get_secret_string("svc")
        cause = caught.value.__cause__
        assert isinstance(cause, ClientError)
        return (
            str(caught.value),
            type(cause).__name__,
            cause.response["Error"]["Code"],
            cause.response["ResponseMetadata"]["HTTPStatusCode"],
            cause.operation_name,
            cache.stats().api_calls,
        )

    assert outcome(fake) == outcome(sm)


def test_unavailable_is_a_real_connection_error(sm: Any) -> None:
    """fake.fail("unavailable") and a client whose endpoint refuses connections."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    dead = boto3.session.Session().client(
        "secretsmanager",
        region_name="us-east-1",
        endpoint_url=f"http://127.0.0.1:{port}",
        config=Config(retries={"total_max_attempts": 1}, connect_timeout=2),
    )
    fake = FakeSecretsManager({"svc": "v"})
    fake.fail("unavailable")

    def outcome(client: Any) -> tuple[str, str]:
        cache = SecretCache(client=client, config=CacheConfig(retry_attempts=1))
        with pytest.raises(SecretUnavailableError) as caught:
            cache.get_secret_string("svc")
        return str(caught.value), type(caught.value.__cause__).__name__

    assert outcome(fake) == outcome(dead)
