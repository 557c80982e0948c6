"""One SQS queue per process, subscribed to the SNS topic that fans rotation events out.

SQS hands each message to one consumer, so N processes polling one queue would
each see about 1/N of the rotations. The topology that reaches every process is
EventBridge rule -> SNS topic -> a queue per process (docs/events.md). This
module creates that per-process queue: named after the host and pid, tagged
with its owner, its creation time and a heartbeat, with a policy letting only
the topic send to it, subscribed to the topic; and removes both on stop. A
process killed before it could clean up leaves an orphan that
:func:`cleanup_orphans` finds by its tags (a stale heartbeat, or a dead pid on
this host) and removes.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from .events import ListenerStats, RotationListener

__all__ = [
    "DEFAULT_PREFIX",
    "ProcessQueue",
    "TopicListener",
    "cleanup_orphans",
]

log = logging.getLogger("secretcache.events")

DEFAULT_PREFIX = "secretcache-events-"
"""Queue names start with this; docs/operations.md's IAM policies grant `secretcache-events-*`."""
TAG_OWNER = "secretcache:owner"  # "<host>:<pid>"
TAG_CREATED = "secretcache:created-at"  # ISO 8601, UTC
TAG_HEARTBEAT = "secretcache:heartbeat"  # ISO 8601, UTC; refreshed while the process lives
TAG_TOPIC = "secretcache:topic"
TAG_SUBSCRIPTION = "secretcache:subscription"

_NAME_CHARS = re.compile(r"[^A-Za-z0-9_-]+")
_MAX_QUEUE_NAME = 80


def _now_text(now: float | None = None) -> str:
    moment = datetime.fromtimestamp(time.time() if now is None else now, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


def _host() -> str:
    return socket.gethostname()[:100] or "unknown-host"


def _code(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        if code:
            return str(code)
    return type(exc).__name__


def _is_gone(exc: BaseException) -> bool:
    return _code(exc) in {
        "AWS.SimpleQueueService.NonExistentQueue",
        "QueueDoesNotExist",
        "NotFound",
        "NotFoundException",
        "ResourceNotFoundException",
        "InvalidParameter",  # SNS: an unsubscribed or malformed subscription ARN
    }


def _client(service: str) -> Any:
    import boto3

    session: Any = boto3.session.Session()  # one per client: creation is not thread-safe
    return session.client(service)


def _queue_policy(queue_arn: str, topic_arn: str) -> str:
    """Only this topic may send to the queue (SNS signs as sns.amazonaws.com)."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "secretcache-topic-to-queue",
                    "Effect": "Allow",
                    "Principal": {"Service": "sns.amazonaws.com"},
                    "Action": "sqs:SendMessage",
                    "Resource": queue_arn,
                    "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}},
                }
            ],
        }
    )


class ProcessQueue:
    """This process's own queue, subscribed to ``topic_arn``; a context manager.

    ``raw_delivery``: ``False`` (default) wraps each event in SNS's envelope,
    ``True`` delivers the event itself; :class:`~secretcache.events.RotationListener`
    reads both. ``filter_policy``: an SNS filter on the message body, e.g.
    ``{"detail": {"name": ["prod/db"]}}``, so the queue receives only what this
    process caches. ``heartbeat_seconds``: how often the heartbeat tag is renewed
    (0: never) -- :func:`cleanup_orphans` treats a queue whose heartbeat is older
    than its ``stale_after`` as abandoned. ``attributes``: extra SQS queue
    attributes (``KmsMasterKeyId``, ...).
    """

    def __init__(
        self,
        topic_arn: str,
        *,
        sqs_client: Any | None = None,
        sns_client: Any | None = None,
        raw_delivery: bool = False,
        filter_policy: Mapping[str, Any] | None = None,
        prefix: str = DEFAULT_PREFIX,
        retention_seconds: int = 3600,
        heartbeat_seconds: float = 300.0,
        attributes: Mapping[str, str] | None = None,
    ) -> None:
        if not isinstance(topic_arn, str) or not topic_arn.startswith("arn:"):
            raise ValueError("topic_arn must be the ARN of an SNS topic")
        if not prefix or _NAME_CHARS.search(prefix) or len(prefix) > 40:
            raise ValueError("prefix must be 1-40 letters, digits, '-' or '_'")
        if not 60 <= retention_seconds <= 1_209_600:
            raise ValueError("retention_seconds must be from 60 to 1209600 (SQS's limits)")
        if heartbeat_seconds < 0:
            raise ValueError("heartbeat_seconds must not be negative")
        self.topic_arn = topic_arn
        self.raw_delivery = raw_delivery
        self.filter_policy = dict(filter_policy) if filter_policy is not None else None
        self.prefix = prefix
        self.retention_seconds = retention_seconds
        self.heartbeat_seconds = heartbeat_seconds
        self.attributes = dict(attributes or {})
        self._sqs = sqs_client
        self._sns = sns_client
        self.url: str | None = None
        self.arn: str | None = None
        self.subscription_arn: str | None = None
        self.owner = f"{_host()}:{os.getpid()}"
        self._lock = threading.Lock()
        self._stop_heartbeat = threading.Event()
        self._heartbeat: threading.Thread | None = None

    @property
    def sqs(self) -> Any:
        if self._sqs is None:
            self._sqs = _client("sqs")
        return self._sqs

    @property
    def sns(self) -> Any:
        if self._sns is None:
            self._sns = _client("sns")
        return self._sns

    def queue_name(self) -> str:
        host = _NAME_CHARS.sub("-", _host()).strip("-")[:30] or "host"
        name = f"{self.prefix}{host}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        return name[:_MAX_QUEUE_NAME]

    def create(self) -> ProcessQueue:
        """Create the queue and the subscription (once); undoes what it did if a step fails."""
        with self._lock:
            if self.url is not None:
                return self
            now = _now_text()
            try:
                self._create(now)
            except BaseException:
                self._remove()
                raise
            atexit.register(self.delete)
        if self.heartbeat_seconds > 0:
            self._stop_heartbeat = threading.Event()  # a previous beat thread keeps its own
            self._heartbeat = threading.Thread(
                target=self._beat, name="secretcache-queue-heartbeat", daemon=True
            )
            self._heartbeat.start()
        log.info("created event queue %s subscribed to %s", self.url, self.topic_arn)
        return self

    def _create(self, now: str) -> None:
        attributes = {"MessageRetentionPeriod": str(self.retention_seconds), **self.attributes}
        tags = {
            TAG_OWNER: self.owner,
            TAG_CREATED: now,
            TAG_HEARTBEAT: now,
            TAG_TOPIC: self.topic_arn[:256],
        }
        self.url = self.sqs.create_queue(
            QueueName=self.queue_name(), Attributes=attributes, tags=tags
        )["QueueUrl"]
        self.arn = self.sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        self.sqs.set_queue_attributes(
            QueueUrl=self.url,
            Attributes={"Policy": _queue_policy(str(self.arn), self.topic_arn)},
        )
        subscription: dict[str, str] = {
            "RawMessageDelivery": "true" if self.raw_delivery else "false"
        }
        if self.filter_policy is not None:
            subscription["FilterPolicyScope"] = "MessageBody"
            subscription["FilterPolicy"] = json.dumps(self.filter_policy)
        self.subscription_arn = self.sns.subscribe(
            TopicArn=self.topic_arn,
            Protocol="sqs",
            Endpoint=self.arn,
            Attributes=subscription,
            ReturnSubscriptionArn=True,
        )["SubscriptionArn"]
        if self.subscription_arn and len(self.subscription_arn) <= 256:
            self.sqs.tag_queue(QueueUrl=self.url, Tags={TAG_SUBSCRIPTION: self.subscription_arn})

    def heartbeat(self) -> None:
        """Renew the heartbeat tag: this queue's process is alive."""
        url = self.url
        if url is not None:
            self.sqs.tag_queue(QueueUrl=url, Tags={TAG_HEARTBEAT: _now_text()})

    def _beat(self) -> None:
        stop = self._stop_heartbeat
        while not stop.wait(self.heartbeat_seconds):
            try:
                self.heartbeat()
            except Exception as exc:
                log.warning("renewing the event queue's heartbeat failed (%s)", _code(exc))

    def delete(self) -> bool:
        """Unsubscribe and delete the queue; True if nothing is left behind. Never raises."""
        self._stop_heartbeat.set()
        with self._lock:
            if self.url is None and self.subscription_arn is None:
                return True
            atexit.unregister(self.delete)
            ok = self._remove()
        if ok:
            log.info("removed this process's event queue and its subscription")
        return ok

    def _remove(self) -> bool:
        ok = True
        if self.subscription_arn:
            try:
                self.sns.unsubscribe(SubscriptionArn=self.subscription_arn)
            except Exception as exc:
                if not _is_gone(exc):
                    ok = False
                    log.warning("unsubscribing the event queue failed (%s)", _code(exc))
        if self.url:
            try:
                self.sqs.delete_queue(QueueUrl=self.url)
            except Exception as exc:
                if not _is_gone(exc):
                    ok = False
                    log.warning("deleting the event queue failed (%s)", _code(exc))
        if ok:
            self.url = self.arn = self.subscription_arn = None
        return ok

    def __enter__(self) -> ProcessQueue:
        return self.create()

    def __exit__(self, *exc_info: object) -> None:
        self.delete()

    def __repr__(self) -> str:
        return f"<ProcessQueue {self.url or '(not created)'} topic={self.topic_arn}>"


class TopicListener:
    """A :class:`ProcessQueue` and a :class:`RotationListener` on it, started and removed together.

    ``with TopicListener(cache, topic_arn):`` -- every process gets every rotation
    event published to the topic, and leaves no queue behind when it stops.
    """

    def __init__(
        self,
        cache: Any,
        topic_arn: str,
        *,
        sqs_client: Any | None = None,
        sns_client: Any | None = None,
        wait_time_seconds: int = 20,
        raw_delivery: bool = False,
        filter_policy: Mapping[str, Any] | None = None,
        prefix: str = DEFAULT_PREFIX,
        heartbeat_seconds: float = 300.0,
    ) -> None:
        self.queue = ProcessQueue(
            topic_arn,
            sqs_client=sqs_client,
            sns_client=sns_client,
            raw_delivery=raw_delivery,
            filter_policy=filter_policy,
            prefix=prefix,
            heartbeat_seconds=heartbeat_seconds,
        )
        self._cache = cache
        self._wait = wait_time_seconds
        self._sqs_client = sqs_client
        self.listener: RotationListener | None = None

    def _listener(self) -> RotationListener:
        url = str(self.queue.url)
        listener = self.listener
        if listener is None or listener.queue_url != url:  # first start, or a new queue
            listener = self.listener = RotationListener(
                self._cache,
                url,
                sqs_client=self._sqs_client or self.queue.sqs,
                wait_time_seconds=self._wait,
            )
        return listener

    def start(self) -> TopicListener:
        """Create the queue and subscription, then start polling."""
        self.queue.create()
        try:
            self._listener().start()
        except BaseException:
            self.queue.delete()
            raise
        return self

    async def run(self) -> None:
        """``await`` form for asyncio; the queue is removed when it returns or is cancelled."""
        import asyncio

        await asyncio.to_thread(self.queue.create)
        try:
            await self._listener().run()
        finally:
            await asyncio.shield(asyncio.to_thread(self.queue.delete))

    def stop(self) -> bool:
        """Stop polling, then unsubscribe and delete the queue; True if both went cleanly."""
        stopped = self.listener.stop() if self.listener is not None else True
        return self.queue.delete() and stopped

    def stats(self) -> ListenerStats:
        return self.listener.stats() if self.listener is not None else ListenerStats()

    @property
    def queue_url(self) -> str | None:
        return self.queue.url

    def __enter__(self) -> TopicListener:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<TopicListener queue={self.queue.url!r} topic={self.queue.topic_arn!r}>"


def cleanup_orphans(
    *,
    sqs_client: Any | None = None,
    sns_client: Any | None = None,
    prefix: str = DEFAULT_PREFIX,
    stale_after: float = 3600.0,
    check_local_pids: bool = True,
    dry_run: bool = False,
    now: float | None = None,
) -> list[str]:
    """Remove queues (and their subscriptions) left behind by processes that died.

    A queue is an orphan when it carries this module's owner tag and either its
    heartbeat is older than ``stale_after`` seconds, or (``check_local_pids``) its
    owner ran on this host under a pid that no longer exists. Queues without the
    owner tag are never touched. Returns the URLs removed (or, with ``dry_run``,
    that would be). Run it from a scheduled job, or at process start.
    """
    sqs = sqs_client if sqs_client is not None else _client("sqs")
    sns = sns_client
    moment = time.time() if now is None else now
    host = _host()
    removed: list[str] = []
    for url in _queue_urls(sqs, prefix):
        try:
            tags = sqs.list_queue_tags(QueueUrl=url).get("Tags") or {}
        except Exception as exc:
            if not _is_gone(exc):
                log.warning("could not read the tags of an event queue (%s)", _code(exc))
            continue
        owner = tags.get(TAG_OWNER)
        if not owner:
            continue  # not one of ours
        beat = _parse_time(tags.get(TAG_HEARTBEAT)) or _parse_time(tags.get(TAG_CREATED))
        stale = beat is None or moment - beat > stale_after
        dead = check_local_pids and _dead_here(owner, host)
        if not (stale or dead):
            continue
        removed.append(url)
        if dry_run:
            continue
        subscription = tags.get(TAG_SUBSCRIPTION)
        if subscription:
            if sns is None:
                sns = _client("sns")
            try:
                sns.unsubscribe(SubscriptionArn=subscription)
            except Exception as exc:
                if not _is_gone(exc):
                    log.warning("could not unsubscribe an orphaned queue (%s)", _code(exc))
        try:
            sqs.delete_queue(QueueUrl=url)
        except Exception as exc:
            if not _is_gone(exc):
                log.warning("could not delete an orphaned event queue (%s)", _code(exc))
                removed.remove(url)
    if removed:
        log.info("%s %d orphaned event queues", "found" if dry_run else "removed", len(removed))
    return removed


def _queue_urls(sqs: Any, prefix: str) -> list[str]:
    urls: list[str] = []
    params: dict[str, Any] = {"QueueNamePrefix": prefix, "MaxResults": 1000}
    while True:
        page = sqs.list_queues(**params)
        urls.extend(page.get("QueueUrls") or ())
        token = page.get("NextToken")
        if not token:
            return urls
        params["NextToken"] = token


def _dead_here(owner: str, host: str) -> bool:
    """Whether the owner tag names a process of this host that no longer runs."""
    owner_host, _, pid_text = owner.rpartition(":")
    if owner_host != host or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, owned by someone else
        return False
    return False
