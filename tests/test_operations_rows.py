"""docs/operations.md, tried for real: every troubleshooting row and every IAM policy.

Each row of the troubleshooting table is reproduced here, in table order, and the
test asserts the text the row tells users to look for. Where moto cannot produce
a fault (KMS, throttling, access denied in AWS's own shape) it is injected at
``before-send`` as the service would answer; network faults are real sockets
(``TcpProxy``); IAM policies run under moto's IAM enforcement, which checks the
actions (moto matches every request against ``Resource: "*"``, so resource ARNs
are widened to ``*`` here: what is tried is that the actions named are the ones
each feature needs).
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.core.authorization import enable_iam_authentication
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

import secretcache.cache
from secretcache import (
    CacheConfig,
    ParameterCache,
    SecretAccessDeniedError,
    SecretCache,
    SecretCacheError,
    SecretConfigurationError,
    SecretDecodeError,
    SecretNotFoundError,
    SecretUnavailableError,
)
from secretcache.metrics import instrument
from tests.conftest import NO_BOTOCORE_RETRIES, REGION
from tests.helpers import FakeClock, FaultInjector
from tests.reliability.faults import TcpProxy, free_port

PAGE = Path(__file__).resolve().parent.parent / "docs" / "operations.md"
CANARY = f"CANARY-{uuid.uuid4()}"

ROWS: tuple[tuple[str, str], ...] = (
    ("no region", "no AWS region is configured"),
    ("no credentials", "no AWS credentials were found"),
    ("access denied", "was denied (AccessDeniedException)"),
    ("kms", "was denied (DecryptionFailure)"),
    ("not found", "was not found (ResourceNotFoundException)"),
    ("deleted", "it is deleted or scheduled for deletion"),
    ("binary as string", "holds binary data; use get_secret_binary()"),
    ("not json", "is not valid JSON"),
    ("silent endpoint", "is unavailable: ReadTimeoutError"),
    ("refused", "is unavailable: EndpointConnectionError"),
    ("throttled", "ThrottlingException after 3 attempts"),
    ("stale served", "serving the cached version"),
    ("past max_stale", "longer than `max_stale`"),
    ("error backoff", "error_backoff_max"),
    ("min_refresh_interval", "less than `min_refresh_interval` ago"),
    ("ttl", "still served with its old value"),
    ("batch fallback", 'api_calls{operation="BatchGetSecretValue"}'),
    ("parameter not found", "was not found (ParameterNotFound)"),
)
"""(row, text the row tells users to look for), in the table's order."""

SNIPPET = dict(ROWS)


def table_rows() -> list[str]:
    text = PAGE.read_text()
    section = text.split("## Troubleshooting", 1)[1]
    lines = [line for line in section.splitlines() if line.startswith("| ")]
    return lines[1:]  # without the header (the separator starts with "|-")


def test_every_table_row_is_tried_here_in_order() -> None:
    rows = table_rows()
    assert len(rows) == len(ROWS), "a row was added to or removed from the table: test it here"
    for (name, snippet), row in zip(ROWS, rows, strict=True):
        assert snippet in row, f"row {name!r}: the table no longer says {snippet!r}"


def says(exc: BaseException, row: str) -> None:
    snippet = SNIPPET[row]
    assert snippet in str(exc), f"row {row!r}: the error does not say {snippet!r}: {exc}"


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock(1000.0)
    monkeypatch.setattr(secretcache.cache, "monotonic", fake)
    return fake


def exact(**overrides: Any) -> CacheConfig:
    """Deterministic timing: no jitter, refreshes on the reading thread."""
    settings: dict[str, Any] = {"ttl": 100.0, "jitter": 0.0, "max_refresh_wait": math.inf}
    return CacheConfig(**(settings | overrides))


@pytest.fixture
def no_aws_config(monkeypatch: pytest.MonkeyPatch) -> None:
    """No config or credentials file, no metadata service, and an endpoint nothing listens on."""
    for name in ("AWS_PROFILE", "AWS_REGION", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    for name in ("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")


# ---------------------------------------------------------------- the rows


def test_no_region(no_aws_config: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    with pytest.raises(SecretConfigurationError) as caught:
        SecretCache().get_secret_string("prod/db")
    says(caught.value, "no region")


def test_no_credentials(no_aws_config: None, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name)
    with pytest.raises(SecretAccessDeniedError) as caught:
        SecretCache().get_secret_string("prod/db")
    says(caught.value, "no credentials")


def test_access_denied(sm: Any) -> None:
    sm.create_secret(Name="prod/db", SecretString=CANARY)
    FaultInjector(sm).inject("AccessDeniedException")
    with pytest.raises(SecretAccessDeniedError) as caught:
        SecretCache(sm).get_secret_string("prod/db")
    says(caught.value, "access denied")


def test_kms_decryption_failure(sm: Any) -> None:
    sm.create_secret(Name="prod/db", SecretString=CANARY)
    FaultInjector(sm).inject("DecryptionFailure")
    with pytest.raises(SecretAccessDeniedError) as caught:
        SecretCache(sm).get_secret_string("prod/db")
    says(caught.value, "kms")


def test_not_found_misspelt_name_or_wrong_stage(sm: Any) -> None:
    sm.create_secret(Name="prod/db", SecretString=CANARY)
    with pytest.raises(SecretNotFoundError) as caught:
        SecretCache(sm).get_secret_string("prod/bd")
    says(caught.value, "not found")
    typo = SecretCache(sm, config=CacheConfig(default_version_stage="AWSCURENT"))
    with pytest.raises(SecretNotFoundError) as caught:
        typo.get_secret_string("prod/db")
    says(caught.value, "not found")
    assert "(stage AWSCURENT)" in str(caught.value)  # the message shows the stage asked for


def test_deleted_secret(sm: Any) -> None:
    sm.create_secret(Name="prod/old", SecretString=CANARY)
    sm.delete_secret(SecretId="prod/old", RecoveryWindowInDays=7)
    with pytest.raises(SecretNotFoundError) as caught:
        SecretCache(sm).get_secret_string("prod/old")
    says(caught.value, "deleted")


def test_binary_read_as_string(sm: Any) -> None:
    sm.create_secret(Name="prod/cert", SecretBinary=b"\x00\x01" + CANARY.encode())
    with pytest.raises(SecretDecodeError) as caught:
        SecretCache(sm).get_secret_string("prod/cert")
    says(caught.value, "binary as string")


def test_not_json(sm: Any) -> None:
    sm.create_secret(Name="prod/token", SecretString=CANARY)
    with pytest.raises(SecretDecodeError) as caught:
        SecretCache(sm).get_secret_json("prod/token")
    says(caught.value, "not json")
    assert CANARY not in str(caught.value)


@pytest.fixture
def proxy(moto_server: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[TcpProxy]:
    """moto's server behind a proxy that can go silent or down; the cache's own client uses it."""
    proxy = TcpProxy(int(moto_server.endpoint.rsplit(":", 1)[1]))
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
    yield proxy
    proxy.close()


def test_silent_endpoint(proxy: TcpProxy) -> None:
    proxy.silence()
    cache = SecretCache(config=CacheConfig(retry_attempts=1))  # one read timeout, not three
    with pytest.raises(SecretUnavailableError) as caught:
        cache.get_secret_string("prod/db")
    says(caught.value, "silent endpoint")


def test_nothing_listens_at_the_endpoint(proxy: TcpProxy) -> None:
    proxy.down()
    with pytest.raises(SecretUnavailableError) as caught:
        SecretCache().get_secret_string("prod/db")
    says(caught.value, "refused")


def test_throttled(sm: Any) -> None:
    sm.create_secret(Name="prod/db", SecretString=CANARY)
    FaultInjector(sm).inject("ThrottlingException", times=None)
    with pytest.raises(SecretUnavailableError) as caught:
        SecretCache(sm).get_secret_string("prod/db")
    says(caught.value, "throttled")


def test_stale_value_served_with_a_warning(
    sm: Any, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    sm.create_secret(Name="prod/db", SecretString=CANARY)
    cache = SecretCache(sm, config=exact())
    cache.get_secret_string("prod/db")
    clock.advance(150)
    FaultInjector(sm).inject("InternalServiceError", times=None, status=500)
    with caplog.at_level(logging.WARNING, logger="secretcache"):
        assert cache.get_secret_string("prod/db") == CANARY
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(SNIPPET["stale served"] in message for message in warnings), warnings
    assert not any(CANARY in message for message in warnings), "a value reached the log"
    assert cache.stats().stale_served == 1


def test_outage_longer_than_max_stale(sm: Any, clock: FakeClock) -> None:
    sm.create_secret(Name="prod/db", SecretString=CANARY)
    cache = SecretCache(sm, config=exact(max_stale=50.0))
    cache.get_secret_string("prod/db")  # t=1000, fresh until 1100
    faults = FaultInjector(sm)
    faults.inject("InternalServiceError", times=None, status=500)
    clock.advance(120)  # t=1120: within max_stale of expiry
    assert cache.get_secret_string("prod/db") == CANARY
    clock.advance(40)  # t=1160: past 1100 + 50
    with pytest.raises(SecretUnavailableError):
        cache.get_secret_string("prod/db")


def test_error_backoff_remembers_a_failure(sm: Any, clock: FakeClock) -> None:
    cache = SecretCache(sm, config=exact())
    with pytest.raises(SecretNotFoundError):
        cache.get_secret_string("prod/new")
    sm.create_secret(Name="prod/new", SecretString=CANARY)
    calls = cache.stats().api_calls
    with pytest.raises(SecretNotFoundError):
        cache.get_secret_string("prod/new")  # the remembered failure, no call
    assert cache.stats().api_calls == calls
    cache.invalidate("prod/new")
    assert cache.get_secret_string("prod/new") == CANARY


def test_refresh_within_min_refresh_interval(sm: Any, clock: FakeClock) -> None:
    sm.create_secret(Name="prod/db", SecretString=f"{CANARY}-1")
    cache = SecretCache(sm, config=exact())
    first = cache.get_secret("prod/db").version_id
    sm.put_secret_value(SecretId="prod/db", SecretString=f"{CANARY}-2")
    clock.advance(0.5)
    assert cache.refresh("prod/db").version_id == first  # no call made
    clock.advance(1.0)  # past min_refresh_interval (1 s)
    assert cache.refresh("prod/db").version_id != first


def test_rotated_secret_served_until_the_ttl(sm: Any, clock: FakeClock) -> None:
    sm.create_secret(Name="prod/db", SecretString=f"{CANARY}-1")
    cache = SecretCache(sm, config=exact())
    cache.get_secret_string("prod/db")
    sm.put_secret_value(SecretId="prod/db", SecretString=f"{CANARY}-2")
    assert cache.get_secret_string("prod/db") == f"{CANARY}-1"
    clock.advance(101)
    assert cache.get_secret_string("prod/db") == f"{CANARY}-2"


@pytest.mark.parametrize("fault", ["AccessDeniedException", "ThrottlingException"])
def test_batch_fallback_shows_in_api_calls(sm: Any, clock: FakeClock, fault: str) -> None:
    for name in ("prod/a", "prod/b"):
        sm.create_secret(Name=name, SecretString=f"{CANARY}-{name}")
    FaultInjector(sm, "BatchGetSecretValue").inject(fault)
    cache = SecretCache(sm, config=exact())
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    instrument(cache, meter_provider=provider)
    cache.prefetch("prod/a", "prod/b")
    assert cache.get_secret_string("prod/b") == f"{CANARY}-prod/b"  # a hit: it was warmed
    assert api_calls(reader) == {
        ("BatchGetSecretValue", fault): 1,  # not retried: its quota is 100/s
        ("GetSecretValue", "ok"): 2,
    }
    provider.shutdown()


def test_parameter_not_found(aws: None) -> None:
    ssm = boto3.client("ssm", region_name=REGION, config=NO_BOTOCORE_RETRIES)
    ssm.put_parameter(Name="/app/db/host", Value="db.internal", Type="String")
    with pytest.raises(SecretNotFoundError) as caught:
        ParameterCache(ssm).get("/app/db/hots")
    says(caught.value, "parameter not found")


def api_calls(reader: InMemoryMetricReader) -> dict[tuple[str, str], int]:
    found: dict[tuple[str, str], int] = {}
    data = reader.get_metrics_data()
    for resource in data.resource_metrics if data is not None else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name == "secretcache.api_calls":
                    for point in metric.data.data_points:
                        attrs = point.attributes
                        key = (str(attrs["operation"]), str(attrs["outcome"]))
                        found[key] = int(point.value)
    return found


# ------------------------------------------------------------ IAM policies

POLICY_BLOCK = re.compile(
    r"<!-- iam-policy: (?P<name>[\w-]+) -->\s*```json\n(?P<body>.*?)```", re.S
)


def documented_policies() -> dict[str, dict[str, Any]]:
    return {
        match["name"]: json.loads(match["body"])
        for match in POLICY_BLOCK.finditer(PAGE.read_text())
    }


def test_the_page_documents_a_policy_per_feature() -> None:
    policies = documented_policies()
    assert set(policies) == {"read", "batch", "kms", "ssm", "events", "events-setup"}
    actions = {
        name: {
            action
            for statement in policy["Statement"]
            for action in ([statement["Action"]] if isinstance(statement["Action"], str) else [])
            + (statement["Action"] if isinstance(statement["Action"], list) else [])
        }
        for name, policy in policies.items()
    }
    assert actions["read"] == {"secretsmanager:GetSecretValue"}
    assert actions["batch"] == {
        "secretsmanager:GetSecretValue",
        "secretsmanager:BatchGetSecretValue",
    }
    assert actions["kms"] == {"kms:Decrypt"}
    assert actions["ssm"] == {"ssm:GetParameter", "ssm:GetParameters", "ssm:GetParametersByPath"}
    assert actions["events"] == {"sqs:ReceiveMessage", "sqs:DeleteMessage"}
    assert actions["events-setup"] == {
        "sqs:CreateQueue",
        "sqs:GetQueueAttributes",
        "sqs:SetQueueAttributes",
        "sqs:TagQueue",
        "sqs:ListQueueTags",
        "sqs:ListQueues",
        "sqs:DeleteQueue",
        "sns:Subscribe",
        "sns:Unsubscribe",
    }
    every = {a for names in actions.values() for a in names}
    assert not {"secretsmanager:DescribeSecret", "secretsmanager:ListSecrets"} & every


MOTO_BATCH_ACTIONS = {"sqs:DeleteMessage": "sqs:DeleteMessageBatch"}
"""On AWS, ``sqs:DeleteMessage`` also grants ``DeleteMessageBatch`` (SQS has no separate
permission for batch actions); moto checks the batch action by its own name."""


def widened(policy: dict[str, Any]) -> str:
    """The policy as moto can check it: resources widened to ``*``, no conditions."""
    statements = []
    for statement in policy["Statement"]:
        actions = statement["Action"]
        actions = [actions] if isinstance(actions, str) else list(actions)
        actions += [MOTO_BATCH_ACTIONS[a] for a in actions if a in MOTO_BATCH_ACTIONS]
        statement = {**statement, "Action": actions, "Resource": "*"}
        statement.pop("Condition", None)
        statements.append(statement)
    return json.dumps({**policy, "Statement": statements})


def user_with(policy_names: tuple[str, ...]) -> dict[str, str]:
    """An IAM user holding the documented policies; returns its keys."""
    iam = boto3.client("iam", region_name=REGION)
    name = f"app-{uuid.uuid4().hex[:8]}"
    iam.create_user(UserName=name)
    policies = documented_policies()
    for policy in policy_names:
        iam.put_user_policy(
            UserName=name, PolicyName=policy, PolicyDocument=widened(policies[policy])
        )
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return {
        "aws_access_key_id": key["AccessKeyId"],
        "aws_secret_access_key": key["SecretAccessKey"],
    }


def client_as(service: str, keys: dict[str, str]) -> Any:
    session = boto3.session.Session(aws_session_token=None, **keys)
    return session.client(service, region_name=REGION, config=NO_BOTOCORE_RETRIES)


@pytest.fixture
def secrets(aws: None) -> None:
    admin = boto3.client("secretsmanager", region_name=REGION)
    for name in ("prod/a", "prod/b"):
        admin.create_secret(Name=name, SecretString=f"{CANARY}-{name}")


def test_read_policy_reads_and_prefetch_falls_back(secrets: None) -> None:
    keys = user_with(("read",))
    with enable_iam_authentication():
        cache = SecretCache(client_as("secretsmanager", keys))
        reader = InMemoryMetricReader()
        instrument(cache, meter_provider=MeterProvider(metric_readers=[reader]))
        cache.prefetch("prod/a", "prod/b")
        assert cache.get_secret_string("prod/a") == f"{CANARY}-prod/a"
        calls = api_calls(reader)
    batch = {outcome: n for (op, outcome), n in calls.items() if op == "BatchGetSecretValue"}
    assert sum(batch.values()) == 1 and "ok" not in batch  # denied, then one by one
    assert calls[("GetSecretValue", "ok")] == 2


def test_batch_policy_prefetches_in_one_call(secrets: None) -> None:
    keys = user_with(("batch",))
    with enable_iam_authentication():
        cache = SecretCache(client_as("secretsmanager", keys))
        reader = InMemoryMetricReader()
        instrument(cache, meter_provider=MeterProvider(metric_readers=[reader]))
        cache.prefetch("prod/a", "prod/b")
        assert cache.get_secret_string("prod/b") == f"{CANARY}-prod/b"
        assert api_calls(reader) == {("BatchGetSecretValue", "ok"): 1}


def test_without_the_read_policy_reads_are_refused(secrets: None) -> None:
    keys = user_with(("ssm",))
    with enable_iam_authentication(), pytest.raises(SecretCacheError) as caught:
        SecretCache(client_as("secretsmanager", keys)).get_secret_string("prod/a")
    assert "not authorized to perform: secretsmanager:GetSecretValue" in str(caught.value.__cause__)


def test_ssm_policy_serves_parameter_cache(aws: None) -> None:
    admin = boto3.client("ssm", region_name=REGION)
    admin.put_parameter(Name="/app/db/host", Value="db.internal", Type="String")
    admin.put_parameter(Name="/app/db/port", Value="5432", Type="String")
    admin.put_parameter(Name="/app/db/password", Value=CANARY, Type="SecureString")
    keys = user_with(("ssm",))
    with enable_iam_authentication():
        params = ParameterCache(client_as("ssm", keys))
        assert params.get("/app/db/password") == CANARY  # GetParameter
        params.prefetch("/app/db/host", "/app/db/port")  # GetParameters
        assert set(params.get_by_path("/app/db")) == {  # GetParametersByPath
            "/app/db/host",
            "/app/db/port",
            "/app/db/password",
        }
    denied = user_with(("read",))
    with enable_iam_authentication(), pytest.raises(SecretCacheError) as caught:
        ParameterCache(client_as("ssm", denied)).get("/app/db/host")
    assert "not authorized to perform: ssm:GetParameter" in str(caught.value.__cause__)


def test_events_policies_set_up_a_queue_then_receive_and_delete(aws: None) -> None:
    """A per-process queue subscribed to the topic, then what a RotationListener does with it."""
    topic_arn = boto3.client("sns", region_name=REGION).create_topic(Name="secretcache-events")[
        "TopicArn"
    ]
    setup, listener = user_with(("events-setup",)), user_with(("events",))
    with enable_iam_authentication():
        sqs = client_as("sqs", setup)
        queue_url = sqs.create_queue(QueueName="secretcache-events-web-1")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        sqs.set_queue_attributes(
            QueueUrl=queue_url, Attributes={"Policy": json.dumps(_queue_policy(queue_arn))}
        )
        sns = client_as("sns", setup)
        subscription = sns.subscribe(
            TopicArn=topic_arn,
            Protocol="sqs",
            Endpoint=queue_arn,
            Attributes={"RawMessageDelivery": "true"},
        )["SubscriptionArn"]
    event = json.dumps({"detail-type": "Secret Label Updated", "detail": {"name": "prod/a"}})
    boto3.client("sns", region_name=REGION).publish(TopicArn=topic_arn, Message=event)
    with enable_iam_authentication():
        consumer = client_as("sqs", listener)
        messages = consumer.receive_message(QueueUrl=queue_url, WaitTimeSeconds=0)["Messages"]
        assert json.loads(messages[0]["Body"]) == json.loads(event)
        consumer.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": "0", "ReceiptHandle": messages[0]["ReceiptHandle"]}],
        )
        with pytest.raises(Exception, match="not authorized to perform: sqs:CreateQueue"):
            consumer.create_queue(QueueName="secretcache-events-web-2")
        sns.unsubscribe(SubscriptionArn=subscription)
        sqs.delete_queue(QueueUrl=queue_url)


def _queue_policy(queue_arn: str) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "sns.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": queue_arn,
            }
        ],
    }
