"""Per-process queues subscribed to the rotation topic, and cleaning up orphans (moto server)."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from moto.core.authorization import enable_iam_authentication

from secretcache import CacheConfig, SecretCache
from secretcache.fanout import (
    TAG_CREATED,
    TAG_HEARTBEAT,
    TAG_OWNER,
    TAG_SUBSCRIPTION,
    TAG_TOPIC,
    ProcessQueue,
    TopicListener,
    cleanup_orphans,
)
from tests.conftest import MotoServer
from tests.test_events import eventually, label_event, parameter_event

REGION = "us-east-1"


def client(server: MotoServer, service: str) -> Any:
    return boto3.session.Session().client(
        service,
        region_name=REGION,
        endpoint_url=server.endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}),
    )


class Topic:
    def __init__(self, server: MotoServer) -> None:
        self.sqs = client(server, "sqs")
        self.sns = client(server, "sns")
        self.arn: str = self.sns.create_topic(Name=f"rotations-{uuid.uuid4().hex[:6]}")["TopicArn"]

    def publish(self, event: dict[str, Any]) -> None:
        self.sns.publish(TopicArn=self.arn, Message=json.dumps(event))

    def subscriptions(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.sns.list_subscriptions_by_topic(TopicArn=self.arn)[
            "Subscriptions"
        ]
        return found

    def queues(self, prefix: str = "secretcache-events-") -> list[str]:
        urls: list[str] = self.sqs.list_queues(QueueNamePrefix=prefix).get("QueueUrls") or []
        return urls

    def receive(self, url: str) -> list[str]:
        reply = self.sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1, MaxNumberOfMessages=10)
        return [m["Body"] for m in reply.get("Messages") or []]

    def queue(self, **options: Any) -> ProcessQueue:
        options.setdefault("heartbeat_seconds", 0)
        return ProcessQueue(self.arn, sqs_client=self.sqs, sns_client=self.sns, **options)


@pytest.fixture
def topic(moto_server: MotoServer) -> Topic:
    return Topic(moto_server)


def test_a_process_queue_is_tagged_subscribed_and_removed(topic: Topic) -> None:
    with topic.queue() as queue:
        url = queue.url
        assert url is not None and queue.arn is not None
        assert url.rsplit("/", 1)[1].startswith("secretcache-events-")
        tags = topic.sqs.list_queue_tags(QueueUrl=url)["Tags"]
        assert tags[TAG_OWNER] == f"{socket.gethostname()}:{os.getpid()}"
        assert tags[TAG_CREATED] == tags[TAG_HEARTBEAT]
        assert tags[TAG_TOPIC] == topic.arn
        assert tags[TAG_SUBSCRIPTION] == queue.subscription_arn
        policy = json.loads(
            topic.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["Policy"])["Attributes"][
                "Policy"
            ]
        )
        (statement,) = policy["Statement"]
        assert statement["Principal"] == {"Service": "sns.amazonaws.com"}
        assert statement["Action"] == "sqs:SendMessage"
        assert statement["Resource"] == queue.arn
        assert statement["Condition"] == {"ArnEquals": {"aws:SourceArn": topic.arn}}
        (subscription,) = topic.subscriptions()
        assert subscription["Endpoint"] == queue.arn
        attributes = topic.sns.get_subscription_attributes(SubscriptionArn=queue.subscription_arn)[
            "Attributes"
        ]
        assert attributes["RawMessageDelivery"] == "false"
        topic.publish({"hello": "world"})
        (message,) = topic.receive(url)
        assert json.loads(json.loads(message)["Message"]) == {"hello": "world"}  # SNS envelope
    assert topic.queues() == []
    assert topic.subscriptions() == []
    assert queue.url is None and queue.delete()  # deleting twice is harmless


def test_raw_delivery_and_a_body_filter(topic: Topic) -> None:
    with topic.queue(raw_delivery=True, filter_policy={"source": ["aws.secretsmanager"]}) as q:
        assert q.url is not None
        topic.publish(parameter_event("/app/x"))
        arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-AbCdEf"
        topic.publish(label_event("prod/db", arn, "v2"))
        (message,) = topic.receive(q.url)
        assert json.loads(message)["detail"]["name"] == "prod/db"  # the event itself


def test_a_failed_setup_leaves_nothing_behind(topic: Topic) -> None:
    missing = topic.arn + "-missing"
    queue = ProcessQueue(missing, sqs_client=topic.sqs, sns_client=topic.sns, heartbeat_seconds=0)
    with pytest.raises(Exception, match=r"NotFound|not found|does not exist"):
        queue.create()
    assert topic.queues() == []
    assert queue.url is None


def test_the_heartbeat_is_renewed(topic: Topic) -> None:
    with topic.queue(heartbeat_seconds=0.2) as queue:
        assert queue.url is not None
        url = queue.url
        created = topic.sqs.list_queue_tags(QueueUrl=url)["Tags"][TAG_CREATED]

        def renewed() -> bool:
            return bool(topic.sqs.list_queue_tags(QueueUrl=url)["Tags"][TAG_HEARTBEAT] > created)

        eventually(renewed, 10, "a renewed heartbeat")


@pytest.mark.parametrize("raw_delivery", [False, True], ids=["envelope", "raw"])
def test_topic_listener_serves_a_rotation_and_cleans_up(
    topic: Topic, moto_server: MotoServer, raw_delivery: bool
) -> None:
    sm = moto_server.client()
    created = sm.create_secret(Name="prod/hmac-key", SecretString="k1")
    cache = SecretCache(sm, config=CacheConfig(ttl=3600, max_refresh_wait=0))
    assert cache.get_secret_string("prod/hmac-key") == "k1"
    with TopicListener(
        cache,
        topic.arn,
        sqs_client=topic.sqs,
        sns_client=topic.sns,
        wait_time_seconds=1,
        raw_delivery=raw_delivery,
        heartbeat_seconds=0,
    ) as listener:
        assert listener.queue_url in topic.queues()
        version = sm.put_secret_value(SecretId="prod/hmac-key", SecretString="k2")["VersionId"]
        topic.publish(label_event("prod/hmac-key", created["ARN"], version))
        eventually(lambda: cache.get_secret_string("prod/hmac-key") == "k2", what="k2 served")
        assert listener.stats().applied == 1
    assert topic.queues() == []
    assert topic.subscriptions() == []
    assert cache.stats().api_calls == 2


def _tagged_queue(topic: Topic, owner: str, beat: str, *, subscribe: bool = True) -> str:
    url: str = topic.sqs.create_queue(
        QueueName=f"secretcache-events-test-{uuid.uuid4().hex[:8]}",
        tags={TAG_OWNER: owner, TAG_CREATED: beat, TAG_HEARTBEAT: beat},
    )["QueueUrl"]
    if subscribe:
        arn = topic.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        subscription = topic.sns.subscribe(
            TopicArn=topic.arn, Protocol="sqs", Endpoint=arn, ReturnSubscriptionArn=True
        )["SubscriptionArn"]
        topic.sqs.tag_queue(QueueUrl=url, Tags={TAG_SUBSCRIPTION: subscription})
    return url


def _stamp(seconds_ago: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - seconds_ago))


def test_cleanup_removes_only_orphans(topic: Topic) -> None:
    host = socket.gethostname()
    dead_pid = subprocess.Popen([sys.executable, "-c", "pass"])
    dead_pid.wait()
    with topic.queue() as alive:
        dead_here = _tagged_queue(topic, f"{host}:{dead_pid.pid}", _stamp(10))
        stale_elsewhere = _tagged_queue(topic, "other-host:42", _stamp(7200))
        fresh_elsewhere = _tagged_queue(topic, "other-host:43", _stamp(10))
        not_ours: str = topic.sqs.create_queue(QueueName="secretcache-events-someone-elses")[
            "QueueUrl"
        ]
        assert len(topic.subscriptions()) == 4

        options: dict[str, Any] = {"sqs_client": topic.sqs, "sns_client": topic.sns}
        would = cleanup_orphans(dry_run=True, **options)
        assert sorted(would) == sorted([dead_here, stale_elsewhere])
        assert len(topic.queues()) == 5
        removed = cleanup_orphans(**options)
        assert sorted(removed) == sorted([dead_here, stale_elsewhere])
        assert sorted(topic.queues()) == sorted([alive.url, fresh_elsewhere, not_ours])
        assert {s["Endpoint"].rsplit(":", 1)[1] for s in topic.subscriptions()} == {
            str(alive.url).rsplit("/", 1)[1],
            fresh_elsewhere.rsplit("/", 1)[1],
        }
        # Without the pid check only the heartbeat counts; a short stale_after catches more.
        assert cleanup_orphans(check_local_pids=False, stale_after=1e9, **options) == []
        later = time.time() + 3600
        assert sorted(cleanup_orphans(now=later, dry_run=True, **options)) == sorted(
            [str(alive.url), fresh_elsewhere]
        )


def test_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="topic_arn"):
        ProcessQueue("not-an-arn")
    with pytest.raises(ValueError, match="prefix"):
        ProcessQueue("arn:aws:sns:us-east-1:1:t", prefix="bad prefix!")
    with pytest.raises(ValueError, match="retention_seconds"):
        ProcessQueue("arn:aws:sns:us-east-1:1:t", retention_seconds=10)


# ------------------------------------------------ the documented IAM policies

DOC = Path(__file__).resolve().parent.parent / "docs" / "events.md"
JSON_BLOCK = re.compile(r"```json\n(?P<body>.*?)```", re.S)


def documented_policies() -> tuple[dict[str, Any], dict[str, Any]]:
    """(run time, queue setup and cleanup): the two policies of docs/events.md's IAM section."""
    section = DOC.read_text().split("## IAM", 1)[1].split("\n## ", 1)[0]
    runtime, setup = (json.loads(m["body"]) for m in JSON_BLOCK.finditer(section))
    return runtime, setup


def as_moto_checks_it(policy: dict[str, Any]) -> dict[str, Any]:
    """Resources widened to ``*`` (moto's account and region differ from the example's);
    ``sqs:DeleteMessage`` also grants ``DeleteMessageBatch`` on AWS, moto checks it by name."""
    statements = []
    for statement in policy["Statement"]:
        actions = statement["Action"]
        actions = [actions] if isinstance(actions, str) else list(actions)
        if "sqs:DeleteMessage" in actions:
            actions.append("sqs:DeleteMessageBatch")
        statements.append({**statement, "Action": actions, "Resource": "*"})
    return {**policy, "Statement": statements}


def user_with(*policies: dict[str, Any]) -> dict[str, str]:
    iam = boto3.client("iam", region_name=REGION)
    name = f"app-{uuid.uuid4().hex[:8]}"
    iam.create_user(UserName=name)
    for number, policy in enumerate(policies):
        iam.put_user_policy(
            UserName=name,
            PolicyName=f"p{number}",
            PolicyDocument=json.dumps(as_moto_checks_it(policy)),
        )
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return {
        "aws_access_key_id": key["AccessKeyId"],
        "aws_secret_access_key": key["SecretAccessKey"],
    }


def client_as(service: str, keys: dict[str, str]) -> Any:
    session = boto3.session.Session(aws_session_token=None, **keys)
    return session.client(
        service,
        region_name=REGION,
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}),
    )


READ_SECRETS = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": "*"}],
}


def test_the_documented_policies_are_enough_and_needed(aws: None) -> None:
    runtime, setup = documented_policies()
    sns_admin = boto3.client("sns", region_name=REGION)
    sm_admin = boto3.client("secretsmanager", region_name=REGION)
    topic_arn = sns_admin.create_topic(Name="secretcache-events")["TopicArn"]
    created = sm_admin.create_secret(Name="prod/hmac-key", SecretString="k1")
    app = user_with(runtime, setup, READ_SECRETS)
    consumer_only = user_with(runtime)
    untagged = json.loads(json.dumps(setup))
    for statement in untagged["Statement"]:
        if isinstance(statement["Action"], list) and "sqs:TagQueue" in statement["Action"]:
            statement["Action"].remove("sqs:TagQueue")
    cannot_tag = user_with(runtime, untagged)
    polls: list[int] = []
    with enable_iam_authentication():  # set-up, first read and polls: as the app's user
        cache = SecretCache(client_as("secretsmanager", app), config=CacheConfig(ttl=3600))
        assert cache.get_secret_string("prod/hmac-key") == "k1"
        sqs, sns = client_as("sqs", app), client_as("sns", app)
        sqs.meta.events.register("after-call.sqs.ReceiveMessage", lambda **_: polls.append(1))
        listener = TopicListener(
            cache, topic_arn, sqs_client=sqs, sns_client=sns, wait_time_seconds=0
        ).start()
        eventually(lambda: len(polls) >= 2, what="polls allowed by the policy")
        assert listener.stats().poll_errors == 0
    # The rotation and its announcement are not the app's doing (admin credentials).
    version = sm_admin.put_secret_value(SecretId="prod/hmac-key", SecretString="k2")
    event = label_event("prod/hmac-key", created["ARN"], version["VersionId"])
    polled_before = len(polls)
    sns_admin.publish(TopicArn=topic_arn, Message=json.dumps(event))
    with enable_iam_authentication():  # receive, delete, refresh, then clean up: as the app
        eventually(lambda: cache.get_secret_string("prod/hmac-key") == "k2", what="k2")
        assert len(polls) > polled_before
        assert listener.stats().poll_errors == 0
        assert cleanup_orphans(sqs_client=sqs, sns_client=sns, dry_run=True) == []
        listener.stop()
        assert sqs.list_queues(QueueNamePrefix="secretcache-events-").get("QueueUrls") is None
        for keys, missing in ((consumer_only, "sqs:CreateQueue"), (cannot_tag, "sqs:TagQueue")):
            sqs = client_as("sqs", keys)
            with pytest.raises(Exception, match=f"not authorized to perform: {missing}"):
                ProcessQueue(
                    topic_arn,
                    sqs_client=sqs,
                    sns_client=client_as("sns", keys),
                    heartbeat_seconds=0,
                ).create()
        assert sqs.list_queues(QueueNamePrefix="secretcache-events-").get("QueueUrls") is None
