"""Every process sees every rotation: listener processes, each with its own queue on one topic.

Real parts: moto's server (Secrets Manager, SNS, SQS), separate Python processes
each running a ``SecretCache`` and a ``TopicListener`` that creates its own queue
and subscription. The test rotates secrets through the API and publishes the
event AWS would send (moto's Secrets Manager emits none), then waits until every
process serves the new version. How long that took is recorded for the issue
note, never asserted (machines are noisy); what is asserted is that each process
got every rotation with exactly one fetch each, and that junk, foreign,
duplicate and out-of-order events changed nothing and cost nothing.
"""

from __future__ import annotations

import json
import os
import queue
import statistics
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import MotoServer
from tests.test_events import envelope, label_event
from tests.test_fanout import Topic

PROCESSES = 3
ROTATIONS = 4
LATENCIES: list[float] = []
"""Seconds from publishing an event to a process serving the new version (for the note)."""

CHILD = r"""
import json, os, sys, threading, time
import boto3
from botocore.config import Config
from secretcache import CacheConfig, SecretCache
from secretcache.fanout import TopicListener

def client(service):
    return boto3.session.Session().client(
        service, region_name="us-east-1", endpoint_url=os.environ["ENDPOINT"],
        aws_access_key_id="testing", aws_secret_access_key="testing",
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}))

names = json.loads(os.environ["NAMES"])
cache = SecretCache(client("secretsmanager"), config=CacheConfig(ttl=3600, max_refresh_wait=0))
seen = {name: cache.get_secret(name).version_id for name in names}
listener = TopicListener(
    cache, os.environ["TOPIC"], sqs_client=client("sqs"), sns_client=client("sns"),
    wait_time_seconds=1, raw_delivery=os.environ["RAW"] == "1", heartbeat_seconds=0)
listener.start()
print(json.dumps({"ready": listener.queue_url}), flush=True)
stop = threading.Event()

def watch():
    # What the application sees: a read every few milliseconds, noting each new version.
    while not stop.is_set():
        for name in names:
            version = cache.get_secret(name).version_id
            if version != seen[name]:
                seen[name] = version
                print(json.dumps({"seen": name, "version": version, "at": time.time()}), flush=True)
        time.sleep(0.002)

watcher = threading.Thread(target=watch, daemon=True)
watcher.start()
for line in sys.stdin:
    if line.strip() == "quit":
        break
    if line.strip() == "stats":
        print(json.dumps({"received": listener.stats().received}), flush=True)
stop.set()
watcher.join()
stopped = listener.stop()
stats = listener.stats()
print(json.dumps({
    "stopped": stopped,
    "received": stats.received, "applied": stats.applied,
    "ignored": stats.ignored, "malformed": stats.malformed,
    "api_calls": cache.stats().api_calls, "versions": seen,
}), flush=True)
"""


class Child:
    """One listener process; its stdout lines arrive as JSON objects on a queue."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self._log = log.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-c", CHILD],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            env=env,
        )
        self.lines: queue.Queue[dict[str, Any]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(json.loads(line))

    def next(self, timeout: float = 30.0) -> dict[str, Any]:
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            pytest.fail("a listener process went silent (see its log)", pytrace=False)

    def received(self) -> int:
        assert self.process.stdin is not None
        self.process.stdin.write("stats\n")
        self.process.stdin.flush()
        while True:
            line = self.next()
            if "received" in line:
                return int(line["received"])

    def quit(self) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write("quit\n")
        self.process.stdin.flush()
        while True:
            line = self.next()
            if "stopped" in line:
                return line

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()  # only our own child, by its Popen handle
        self.process.wait(10)
        self._log.close()


@pytest.fixture
def children(moto_server: MotoServer, tmp_path: Path) -> Any:
    started: list[Child] = []

    def start(topic: str, names: list[str]) -> list[Child]:
        for number in range(PROCESSES):
            env = {
                **os.environ,
                "ENDPOINT": moto_server.endpoint,
                "TOPIC": topic,
                "NAMES": json.dumps(names),
                "RAW": "1" if number == PROCESSES - 1 else "0",  # both deliveries at once
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_DEFAULT_REGION": "us-east-1",
                "NO_PROXY": "127.0.0.1,localhost",
            }
            started.append(Child(env, tmp_path / f"child-{number}.log"))
        return started

    yield start
    for child in started:
        child.close()


def test_every_process_serves_every_rotation(moto_server: MotoServer, children: Any) -> None:
    sm = moto_server.client()
    topic = Topic(moto_server)
    names = [f"prod/hmac-{uuid.uuid4().hex[:6]}", f"prod/signing-{uuid.uuid4().hex[:6]}"]
    arns = {n: sm.create_secret(Name=n, SecretString=f"{n}|v1")["ARN"] for n in names}
    procs = children(topic.arn, names)
    for child in procs:
        assert "ready" in child.next(60)
    assert len(topic.subscriptions()) == PROCESSES

    last_event: dict[str, Any] = {}
    previous: dict[str, str] = {}
    for number in range(ROTATIONS):
        name = names[number % len(names)]
        previous[name] = sm.get_secret_value(SecretId=name, VersionStage="AWSCURRENT")["VersionId"]
        version = sm.put_secret_value(SecretId=name, SecretString=f"{name}|v{number + 2}")[
            "VersionId"
        ]
        last_event = label_event(name, arns[name], version)
        published = time.time()
        topic.publish(last_event)
        for child in procs:
            line = child.next()
            assert (line["seen"], line["version"]) == (name, version)
            LATENCIES.append(line["at"] - published)

    # Junk, a foreign event, the last event again, and an older event arriving late.
    name = last_event["detail"]["name"]
    topic.sns.publish(TopicArn=topic.arn, Message="definitely not an event")
    topic.publish(envelope(source="aws.ec2", detail={"state": "stopped"}, **{"detail-type": "EC2"}))
    topic.publish(last_event)
    late = label_event(
        name,
        arns[name],
        previous[name],
        when=datetime.now(UTC) - timedelta(minutes=5),
    )
    topic.publish(late)
    # A last rotation, so every process has drained what came before it.
    final_name = names[0] if name != names[0] else names[1]
    final = sm.put_secret_value(SecretId=final_name, SecretString="final")["VersionId"]
    published = time.time()
    topic.publish(label_event(final_name, arns[final_name], final))
    current = {
        n: sm.get_secret_value(SecretId=n, VersionStage="AWSCURRENT")["VersionId"] for n in names
    }
    for child in procs:
        line = child.next()
        assert (line["seen"], line["version"]) == (final_name, final)
        LATENCIES.append(line["at"] - published)

    deadline = time.monotonic() + 30
    for child in procs:  # SQS does not promise order: wait until all nine are handled
        while child.received() < ROTATIONS + 5:
            assert time.monotonic() < deadline, "a process never handled every message"
            time.sleep(0.05)
    for child in procs:
        summary = child.quit()
        assert summary["versions"] == current  # nothing went back to an older version
        assert summary["api_calls"] == len(names) + ROTATIONS + 1  # one fetch per rotation
        assert (summary["applied"], summary["malformed"]) == (ROTATIONS + 1, 1)
        assert summary["ignored"] == 3  # foreign, duplicate, late
        assert summary["received"] == ROTATIONS + 5
    assert topic.subscriptions() == []
    assert topic.queues() == []
    LATENCIES.sort()
    print(
        f"\ntime to new version with push over {len(LATENCIES)} (process, rotation) pairs: "
        f"median {statistics.median(LATENCIES) * 1000:.0f} ms, "
        f"worst {LATENCIES[-1] * 1000:.0f} ms (wait_time_seconds=1)"
    )
