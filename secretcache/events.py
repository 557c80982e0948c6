"""Rotation events pushed to every process: SQS messages in, background refreshes out.

A cache alone learns of a rotation when its TTL runs out, or when a login fails
and the database adapters walk the labels. Secrets that never fail visibly -- an
HMAC key, a token signing key -- stay stale for the whole TTL. AWS already emits
an event when a label moves; EventBridge (and SNS for fan-out) bring it to an SQS
queue, and :class:`RotationListener` turns each message into background refreshes
of the entries it concerns. Event payloads are triggers only: values always come
from the service, so a forged, stale or duplicated event can cost a call but can
never put a wrong value in the cache.

What an event means for an entry (documented in docs/events.md):

- a label moved to version X: the entry for that label refreshes unless it
  already holds X; when the label is ``AWSCURRENT``, the ``AWSPREVIOUS`` entry
  refreshes too (the service moved it to the former current version), unless it
  already holds the version the ``AWSCURRENT`` entry held;
- a new version with labels (``PutSecretValue``): as a move of each label;
- ``RotationSucceeded``: ``AWSCURRENT``, ``AWSPREVIOUS`` and ``AWSPENDING``;
- ``DeleteSecret`` / ``RestoreSecret``: every entry of the secret;
- ``RotateSecret`` starts a rotation whose own calls announce the changes, and a
  failed call (``errorCode``) changed nothing: neither costs a call;
- an entry pinned to a version id never refreshes: its content cannot change.

Ordering: an event strictly older (by its ``time``) than one already applied to
an entry is skipped, and a fetch that was already in flight when the event
arrived is checked again once it ends, since it may have read the old version.
"""

from __future__ import annotations

import collections
import json
import logging
import math
import random
import re
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from . import cache as _cache
from .background import Task, wait_async
from .errors import SecretUnavailableError

__all__ = [
    "APPLIED",
    "IGNORED",
    "MALFORMED",
    "Change",
    "ListenerStats",
    "MalformedEventError",
    "RotationListener",
    "changes_in",
    "decode_body",
]

log = logging.getLogger("secretcache.events")

APPLIED: Literal["applied"] = "applied"
IGNORED: Literal["ignored"] = "ignored"
MALFORMED: Literal["malformed"] = "malformed"
Outcome = Literal["applied", "ignored", "malformed"]

CURRENT, PREVIOUS, PENDING = "AWSCURRENT", "AWSPREVIOUS", "AWSPENDING"
LATEST, PATH, PATH_RECURSIVE = "$LATEST", "$PATH", "$PATH_RECURSIVE"
"""The stage-slot sentinels of Parameter Store entries (plain name, get_by_path)."""
REFERENCE_PREFIX = "/aws/reference/secretsmanager/"
"""Parameter Store names that read a Secrets Manager secret."""

_LABEL_EVENT = "Secret Label Updated"
_API_CALL = "AWS API Call via CloudTrail"
_SERVICE_EVENT = "AWS Service Event via CloudTrail"
_PARAMETER_CHANGE = "Parameter Store Change"
_SM_EVENT_SOURCE = "secretsmanager.amazonaws.com"

_MAX_TEXT = 2048  # the service's own limit for names and ARNs; longer is not an id
_SEEN_EVENTS = 4096  # event ids remembered to drop duplicates
_NEWEST_PER_ENTRY = 8192  # entries whose newest applied event time is remembered
_RETRY_DELAYS = (1.0, 2.0, 4.0, 8.0, 16.0)
"""Seconds before re-trying an event's refresh that failed because the service was unavailable."""
_SUFFIX = re.compile(r"-[A-Za-z0-9]{6}$")  # the random suffix the service appends to ARNs


# ------------------------------------------------------------------ parsing


class MalformedEventError(ValueError):
    """A message that is not an event this module can read; says why, never what."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Change:
    """What one event says happened to one secret or parameter -- a trigger, never a value.

    ``ids``: the names and ARNs the event gives for it. ``moves``: the labels
    that moved and the version each moved to (``None`` when unknown); ``None``
    means any label may have changed. ``service``: ``"secretsmanager"`` or
    ``"ssm"``. ``operation``: Parameter Store's (``Create``, ``Update``, ...).
    ``time``: the event's time (POSIX seconds) when it has one; ``event_id``:
    EventBridge's id, to recognise a duplicate delivery.
    """

    service: Literal["secretsmanager", "ssm"]
    ids: tuple[str, ...]
    service_arns: tuple[str, ...] = ()
    moves: tuple[tuple[str, str | None], ...] | None = None
    operation: str | None = None
    time: float | None = None
    event_id: str | None = None
    what: str = ""


def decode_body(body: str | bytes) -> Mapping[str, Any]:
    """The EventBridge event in an SQS message body: raw, or inside an SNS envelope."""
    event = _load_object(body, "the body")
    if event.get("Type") == "Notification" and "TopicArn" in event:
        message = event.get("Message")
        if not isinstance(message, str):
            raise MalformedEventError("an SNS envelope without a Message string")
        event = _load_object(message, "the SNS message")
    return event


_UNREADABLE = object()


def _load_object(text: str | bytes, what: str) -> Mapping[str, Any]:
    try:
        loaded = json.loads(text)
    except (ValueError, TypeError, RecursionError):
        loaded = _UNREADABLE
    if loaded is _UNREADABLE:
        # Raised outside the handler: a JSON error keeps the whole document (``.doc``),
        # and would otherwise ride along as this error's context.
        raise MalformedEventError(f"{what} is not JSON")
    if not isinstance(loaded, dict):
        raise MalformedEventError(f"{what} is JSON but not an object")
    return loaded


def changes_in(event: Mapping[str, Any]) -> list[Change]:
    """The changes an EventBridge event announces; ``[]`` when it is about nothing cached here.

    Raises :class:`MalformedEventError` for something that is not an event at all,
    or an event of a known kind that lacks what identifies its secret.
    """
    kind = event.get("detail-type")
    source = event.get("source")
    if not isinstance(kind, str) or not isinstance(source, str):
        if event.get("Type") == "SubscriptionConfirmation":
            return []  # SNS asking a cross-account queue to confirm: not a change
        raise MalformedEventError("not an EventBridge event (no detail-type or source)")
    detail = event.get("detail")
    when = _event_time(event.get("time"))
    event_id = _text(event.get("id"))
    if source == "aws.secretsmanager" and kind == _LABEL_EVENT:
        return _label_event(_detail(detail), event, when, event_id)
    if kind in (_API_CALL, _SERVICE_EVENT):
        detail = _detail(detail)
        if detail.get("eventSource") != _SM_EVENT_SOURCE:
            return []
        if kind == _API_CALL:
            return _api_call(detail, when, event_id)
        return _service_event(detail, when, event_id)
    if source == "aws.ssm" and kind == _PARAMETER_CHANGE:
        detail = _detail(detail)
        name = _text(detail.get("name"))
        if name is None:
            raise MalformedEventError("a Parameter Store Change without a parameter name")
        operation = _text(detail.get("operation"))
        return [Change("ssm", (name,), operation=operation, time=when, event_id=event_id)]
    return []


def _detail(detail: Any) -> Mapping[str, Any]:
    if not isinstance(detail, dict):
        raise MalformedEventError("an event without a detail object")
    return detail


def _label_event(
    detail: Mapping[str, Any], event: Mapping[str, Any], when: float | None, event_id: str | None
) -> list[Change]:
    label = _text(detail.get("labelUpdated"))
    arns = tuple(a for a in _texts(event.get("resources")) if a.startswith("arn:"))
    name = _text(detail.get("name"))
    ids = (*arns, name) if name else arns
    if label is None or not ids:
        raise MalformedEventError("a Secret Label Updated event without a label or a secret")
    version = _text(detail.get("versionId"))
    return [
        Change(
            "secretsmanager",
            ids,
            service_arns=arns,
            moves=((label, version),),
            time=when,
            event_id=event_id,
            what=_LABEL_EVENT,
        )
    ]


def _api_call(detail: Mapping[str, Any], when: float | None, event_id: str | None) -> list[Change]:
    name = detail.get("eventName")
    if detail.get("errorCode") or name in (None, "RotateSecret"):
        return []  # a refused call changed nothing; a rotation announces its own steps
    request = detail.get("requestParameters")
    request = request if isinstance(request, dict) else {}
    response = detail.get("responseElements")
    response = response if isinstance(response, dict) else {}
    service_arns = tuple(
        a for a in (_text(response.get("arn")), _text(response.get("aRN"))) if a is not None
    )
    ids = tuple(
        dict.fromkeys(
            i
            for i in (_text(request.get("secretId")), *service_arns, _text(response.get("name")))
            if i is not None
        )
    )
    moves: tuple[tuple[str, str | None], ...] | None
    if name == "PutSecretValue":
        version = _text(response.get("versionId")) or _text(request.get("clientRequestToken"))
        stages = _texts(request.get("versionStages")) or _texts(response.get("versionStages"))
        moves = tuple((stage, version) for stage in stages or (CURRENT,))
    elif name == "UpdateSecretVersionStage":
        label = _text(request.get("versionStage"))
        if label is None:
            raise MalformedEventError("an UpdateSecretVersionStage event without a versionStage")
        moves = ((label, _text(request.get("moveToVersionId"))),)
    elif name == "UpdateSecret":
        version = _text(response.get("versionId"))
        new_value = "secretString" in request or "secretBinary" in request
        if version is None and not new_value:
            return []  # description or key change: no new version, nothing to read
        moves = ((CURRENT, version),)
    elif name in ("DeleteSecret", "RestoreSecret"):
        moves = None
    else:
        return []
    if not ids:
        raise MalformedEventError(f"a {name} event that names no secret")
    return [
        Change(
            "secretsmanager",
            ids,
            service_arns=service_arns,
            moves=moves,
            time=when,
            event_id=event_id,
            what=str(name),
        )
    ]


def _service_event(
    detail: Mapping[str, Any], when: float | None, event_id: str | None
) -> list[Change]:
    if detail.get("eventName") != "RotationSucceeded":
        return []  # RotationStarted / RotationFailed: no label has moved
    extra = detail.get("additionalEventData")
    arn = _text(extra.get("SecretId")) if isinstance(extra, dict) else None
    if arn is None:
        raise MalformedEventError("a RotationSucceeded event without additionalEventData.SecretId")
    return [
        Change(
            "secretsmanager",
            (arn,),
            service_arns=(arn,) if arn.startswith("arn:") else (),
            moves=((CURRENT, None), (PENDING, None)),
            time=when,
            event_id=event_id,
            what="RotationSucceeded",
        )
    ]


def _text(value: Any) -> str | None:
    if isinstance(value, str) and 0 < len(value) <= _MAX_TEXT:
        return value
    return None


def _texts(value: Any) -> tuple[str, ...]:
    if isinstance(value, list):
        return tuple(t for t in (_text(v) for v in value) if t is not None)
    return ()


def _event_time(value: Any) -> float | None:
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        return None


def _names_in_arn(arn: str) -> tuple[str, ...]:
    """The secret name inside a service-made ARN (``...:secret:NAME-AbCdEf``).

    Matching by name as well finds an entry read from a replica region (whose ARN
    differs in the region only) when the primary region announces the rotation.
    """
    parts = arn.split(":", 6)
    if len(parts) != 7 or parts[2] != "secretsmanager" or parts[5] != "secret":
        return ()
    resource = parts[6]
    if _SUFFIX.search(resource) and len(resource) > 7:
        return (resource[:-7],)
    return ()


# ------------------------------------------------------------------ the listener


@dataclass(frozen=True, slots=True)
class ListenerStats:
    """A snapshot of one listener's counters.

    ``received``: messages handled; each ends as one of ``applied`` (it started a
    refresh, or joined one that will serve it), ``ignored`` (well-formed but cost
    nothing: not cached, version already held, a duplicate or older event, not
    about a secret) or ``malformed`` (not an event; deleted and logged by message
    id). ``refreshes``: background fetches the events started. ``poll_errors``:
    failed SQS calls (each followed by a back-off). ``running``: the poll loop is alive.
    """

    received: int = 0
    applied: int = 0
    ignored: int = 0
    malformed: int = 0
    refreshes: int = 0
    poll_errors: int = 0
    running: bool = False


class RotationListener:
    """Long-polls an SQS queue of rotation events and refreshes the cache entries they concern.

    ``cache``: a ``SecretCache``, ``AsyncSecretCache`` or ``ParameterCache``.
    ``queue_url``: this process's own queue (SQS hands each message to one
    consumer, so every process needs its own: see :mod:`secretcache.fanout`).
    ``sqs_client``: a boto3 ``sqs`` client, created on first need when ``None``.
    ``wait_time_seconds``: the long poll (0-20); :meth:`stop` returns within it plus 1 s.
    ``max_backoff``: cap, in seconds, of the growing pause after failed SQS calls.
    ``visibility_timeout``: seconds a received message stays hidden from the next
    poll. Handling takes milliseconds, but a poll whose connection dies may already
    have taken messages off the queue: they come back after this long (the queue's
    default is 30 s). A message seen twice is recognised by its event id.

    The listener never raises into the application and never stops by itself.
    """

    def __init__(
        self,
        cache: Any,
        queue_url: str,
        *,
        sqs_client: Any | None = None,
        wait_time_seconds: int = 20,
        max_backoff: float = 30.0,
        visibility_timeout: int = 10,
    ) -> None:
        engine = getattr(cache, "_engine", None)
        if not callable(getattr(engine, "find_entries", None)) or not callable(
            getattr(engine, "refresh_soon", None)
        ):
            raise TypeError(
                "cache must be a SecretCache, AsyncSecretCache or ParameterCache, "
                f"not {type(cache).__name__}"
            )
        if not isinstance(queue_url, str) or not queue_url.strip():
            raise ValueError("queue_url must be the URL of an SQS queue")
        if (
            isinstance(wait_time_seconds, bool)
            or not isinstance(wait_time_seconds, int)
            or not 0 <= wait_time_seconds <= 20
        ):
            raise ValueError(
                f"wait_time_seconds must be an int from 0 to 20 (SQS long poll), "
                f"got {wait_time_seconds!r}"
            )
        if not isinstance(max_backoff, int | float) or not 0 < max_backoff < math.inf:
            raise ValueError(f"max_backoff must be a positive number, got {max_backoff!r}")
        if (
            isinstance(visibility_timeout, bool)
            or not isinstance(visibility_timeout, int)
            or not 1 <= visibility_timeout <= 43200
        ):
            raise ValueError(
                f"visibility_timeout must be an int from 1 to 43200, got {visibility_timeout!r}"
            )
        self.visibility_timeout = visibility_timeout
        self.cache = cache
        self.queue_url = queue_url
        self.wait_time_seconds = wait_time_seconds
        self.max_backoff = float(max_backoff)
        self._engine: Any = engine
        self._parameters = callable(getattr(cache, "get_by_path", None))
        self._client = sqs_client
        self._client_lock = threading.Lock()
        self._lock = threading.Lock()  # counters, memories, retries
        self._quiet = threading.Condition(self._lock)  # notified when no refresh is in progress
        self._busy = 0
        self._received = self._applied = self._ignored = self._malformed = 0
        self._refreshes = self._poll_errors = 0
        self._seen: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._newest: collections.OrderedDict[Any, float] = collections.OrderedDict()
        self._retries: list[tuple[float, Any, str | None, int]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._done: Task[None] | None = None

    # ------------------------------------------------------------- lifecycle

    def start(self) -> None:
        """Start polling on a daemon thread (no-op if already running)."""
        self._launch()

    def stop(self) -> bool:
        """Stop polling; returns within ``wait_time_seconds + 1`` s, True if the loop ended.

        A poll in progress is not cut short: its messages are still handled and deleted.
        Called on an event loop's thread it does not wait at all (the loop must not
        block): ``await listener.run()`` returns once the poll in progress ends.
        """
        self._stop.set()
        thread = self._thread
        if thread is None:
            return True
        if thread is not threading.current_thread() and not _on_event_loop():
            thread.join(self.wait_time_seconds + 1.0)
        return not thread.is_alive()

    async def run(self) -> None:
        """Poll until :meth:`stop` is called or this coroutine's task is cancelled.

        The blocking SQS calls run on the listener's own daemon thread, never on
        the event loop.
        """
        done = self._launch()
        try:
            await wait_async(done, None)
        except BaseException:  # cancelled: the loop thread ends within one poll
            self._stop.set()
            raise

    def __enter__(self) -> RotationListener:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _launch(self) -> Task[None]:
        with self._lock:
            thread, done = self._thread, self._done
            if (
                thread is not None
                and thread.is_alive()
                and done is not None
                and not self._stop.is_set()
            ):
                return done
            # (A loop still finishing a poll after stop() ends by itself: it has its own Event.)
            self._stop = threading.Event()
            done = self._done = Task()
            thread = self._thread = threading.Thread(
                target=self._loop, args=(self._stop, done), name="secretcache-events", daemon=True
            )
            thread.start()
            return done

    @property
    def running(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive() and not self._stop.is_set()

    def stats(self) -> ListenerStats:
        """A consistent snapshot of the counters."""
        with self._lock:
            return ListenerStats(
                received=self._received,
                applied=self._applied,
                ignored=self._ignored,
                malformed=self._malformed,
                refreshes=self._refreshes,
                poll_errors=self._poll_errors,
                running=self.running,
            )

    def __repr__(self) -> str:
        return f"<RotationListener queue={self.queue_url!r} running={self.running}>"

    # ----------------------------------------------------------------- polling

    @property
    def client(self) -> Any:
        """The SQS client in use, created on first need when none was given."""
        client = self._client
        if client is None:
            with self._client_lock:
                if self._client is None:
                    self._client = _default_sqs_client(self.queue_url, self.wait_time_seconds)
                client = self._client
        return client

    def _loop(self, stop: threading.Event, done: Task[None]) -> None:
        failures = 0
        try:
            while not stop.is_set():
                self._run_due_retries()
                try:
                    self._poll_once(stop)
                except Exception as exc:
                    if stop.is_set():  # stopping (its queue may be gone already): not a fault
                        log.debug("the last poll ended with %s while stopping", _describe(exc))
                        break
                    failures += 1
                    with self._lock:
                        self._poll_errors += 1
                    delay = min(self.max_backoff, 2.0 ** (failures - 1)) * random.uniform(0.5, 1)
                    log.warning(
                        "polling the rotation-event queue failed (%s); retrying in %.1f s",
                        _describe(exc),
                        delay,
                    )
                    del exc  # its traceback holds the client's frames; nothing to keep
                    stop.wait(delay)
                    continue
                if failures:
                    log.info(
                        "polling the rotation-event queue recovered after %d failures", failures
                    )
                    failures = 0
        except BaseException:  # pragma: no cover - never let the thread die noisily
            log.exception("the rotation-event listener stopped unexpectedly")
        finally:
            try:
                done.finish(None, None)
            except Exception:  # a waiter's event loop may be closed already
                log.debug("could not notify a waiter that the listener stopped")

    def _poll_once(self, stop: threading.Event) -> None:
        client = self.client
        response = client.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=self._next_wait(),
            VisibilityTimeout=self.visibility_timeout,
        )
        messages = response.get("Messages") or []
        if not messages:
            return
        handled: list[dict[str, str]] = []
        for number, message in enumerate(messages):
            message_id = str(message.get("MessageId") or "?")
            self.handle_message(message.get("Body") or "", message_id)
            handle = message.get("ReceiptHandle")
            if isinstance(handle, str):
                handled.append({"Id": str(number), "ReceiptHandle": handle})
        if handled:
            reply = client.delete_message_batch(QueueUrl=self.queue_url, Entries=handled)
            failed = reply.get("Failed") or []
            if failed:
                log.warning(
                    "%d handled event messages could not be deleted; they will come back",
                    len(failed),
                )

    def _next_wait(self) -> int:
        """The long poll, shortened so a scheduled retry is not kept waiting."""
        wait = self.wait_time_seconds
        with self._lock:
            if self._retries:
                due = min(r[0] for r in self._retries)
                wait = min(wait, max(0, math.ceil(due - time.monotonic())))
        return wait

    # ---------------------------------------------------------------- handling

    def handle_message(self, body: str | bytes, message_id: str = "-") -> Outcome:
        """Apply one message's event to the cache; never raises.

        Public for consumers that receive the events some other way (an SQS-triggered
        Lambda function, say). Returns ``"applied"``, ``"ignored"`` or ``"malformed"``.
        """
        received_at = _cache.monotonic()
        with self._lock:
            self._received += 1
        try:
            changes = changes_in(decode_body(body))
        except MalformedEventError as exc:
            return self._malformed_message(message_id, exc.reason)
        except Exception as exc:  # defensive: one odd message must not stop the loop
            return self._malformed_message(message_id, f"unreadable ({type(exc).__name__})")
        if not changes:
            return self._finish(message_id, IGNORED, "not about a secret or parameter")
        event_id = changes[0].event_id
        if event_id is not None and self._seen_before(event_id):
            return self._finish(message_id, IGNORED, "a duplicate delivery")
        refreshed = 0
        for change in changes:
            try:
                refreshed += self._apply(change, received_at)
            except Exception as exc:  # pragma: no cover - a bug here must not stop the loop
                log.error("applying event message %s failed (%s)", message_id, type(exc).__name__)
        if refreshed:
            return self._finish(message_id, APPLIED, f"{refreshed} entries refreshing")
        return self._finish(message_id, IGNORED, "nothing cached needs it")

    def _malformed_message(self, message_id: str, reason: str) -> Outcome:
        with self._lock:
            self._malformed += 1
        log.warning("discarded event message %s: %s", message_id, reason)
        return MALFORMED

    def _finish(self, message_id: str, outcome: Outcome, why: str) -> Outcome:
        with self._lock:
            if outcome == APPLIED:
                self._applied += 1
            else:
                self._ignored += 1
        log.debug("event message %s %s: %s", message_id, outcome, why)
        return outcome

    def _seen_before(self, event_id: str) -> bool:
        with self._lock:
            if event_id in self._seen:
                return True
            self._seen[event_id] = None
            if len(self._seen) > _SEEN_EVENTS:
                self._seen.popitem(last=False)
            return False

    def _apply(self, change: Change, received_at: float) -> int:
        """Start the refreshes one change calls for; returns how many entries it concerns."""
        if change.service == "ssm":
            plan = self._parameter_plan(change) if self._parameters else []
        elif self._parameters:
            plan = self._reference_plan(change)
        else:
            plan = self._secret_plan(change)
        return sum(self._refresh(entry, unless, change, received_at) for entry, unless in plan)

    def _secret_plan(self, change: Change) -> list[tuple[Any, str | None]]:
        """Entries a change concerns, each with the version that satisfies it."""
        return _label_plan(self._matching(change), change.moves, lambda e: e.version_stage)

    def _matching(self, change: Change) -> list[Any]:
        names = [n for arn in change.service_arns for n in _names_in_arn(arn)]
        found: dict[int, Any] = {}
        for identifier in dict.fromkeys((*change.ids, *names)):
            for entry in self._engine.find_entries(identifier):
                found.setdefault(id(entry), entry)
        return list(found.values())

    def _parameter_plan(self, change: Change) -> list[tuple[Any, str | None]]:
        """Parameter Store entries a change concerns: the name's entries and paths above it."""
        name = change.ids[0]
        operation = change.operation
        plan: list[tuple[Any, str | None]] = []
        for entry in list(self._engine.entries.values()):
            if entry.version_id is not None or entry.value is None:
                continue
            stage = entry.version_stage
            if stage in (PATH, PATH_RECURSIVE):
                if operation != "LabelParameterVersion" and _under_path(
                    name, entry.secret_id, recursive=stage == PATH_RECURSIVE
                ):
                    plan.append((entry, None))
                continue
            if entry.secret_id != name and entry.value.name != name:
                continue
            if stage in (LATEST, None):
                if operation != "LabelParameterVersion":  # a label moving changes no latest value
                    plan.append((entry, None))
            elif operation not in ("Create", "Update"):  # a new version moves no label
                plan.append((entry, None))
        return plan

    def _reference_plan(self, change: Change) -> list[tuple[Any, str | None]]:
        """``/aws/reference/secretsmanager/...`` parameters reading the secret of a change.

        The plain reference reads ``AWSCURRENT``; ``...:LABEL`` reads that label.
        """
        names = {i for i in change.ids if not i.startswith("arn:")}
        names.update(n for arn in change.service_arns for n in _names_in_arn(arn))
        arns = {i for i in change.ids if i.startswith("arn:")}
        found: list[Any] = []
        for entry in list(self._engine.entries.values()):
            secret_id = entry.secret_id
            if not secret_id.startswith(REFERENCE_PREFIX) or entry.value is None:
                continue
            reference = secret_id[len(REFERENCE_PREFIX) :]
            if reference in names or reference in arns or entry.value.arn in arns:
                found.append(entry)
        return _label_plan(
            found,
            change.moves,
            lambda e: CURRENT if e.version_stage in (LATEST, None) else e.version_stage,
        )

    def _refresh(self, entry: Any, unless: str | None, change: Change, received_at: float) -> int:
        """Refresh one entry for one change, unless a newer event's refresh already covers it."""
        when = change.time
        key = entry.key
        with self._lock:
            newest = self._newest.get(key)
            if when is not None and newest is not None and when < newest:
                return 0  # an older event arriving late: the newer one's refresh covers it
            if when is not None:
                self._newest[key] = when if newest is None else max(newest, when)
                self._newest.move_to_end(key)
                if len(self._newest) > _NEWEST_PER_ENTRY:
                    self._newest.popitem(last=False)
        task = self._engine.refresh_soon(entry, unless_version=unless)
        if task is None:
            return 0
        if task.started_at < received_at:
            # A fetch begun before this event arrived may have read the old version:
            # look again when it ends (free if it brought the announced version).
            self._track(task, lambda: self._again(entry, unless, 0))
        else:
            with self._lock:
                self._refreshes += 1
            self._track(task, lambda: self._settled(entry, task, unless, 0))
        return 1

    def _track(self, task: Task[Any], then: Callable[[], None]) -> None:
        """Run ``then`` when ``task`` ends, counting it as work in progress until then."""
        with self._lock:
            self._busy += 1

        def done() -> None:
            try:
                then()
            except Exception:  # pragma: no cover - runs on a worker: log, never raise there
                log.exception("handling the end of an event's refresh failed")
            finally:
                with self._lock:
                    self._busy -= 1
                    if self._busy == 0:
                        self._quiet.notify_all()

        task.add_done_callback(done)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until the refreshes events started have ended; True if they have.

        For consumers that must not return before the cache holds the new values
        (an SQS-triggered Lambda function is frozen as soon as its handler returns).
        Retries scheduled after an outage are not waited for.
        """
        with self._quiet:
            return self._quiet.wait_for(lambda: self._busy == 0, timeout)

    def _again(self, entry: Any, unless: str | None, attempt: int) -> None:
        task = self._engine.refresh_soon(entry, unless_version=unless)
        if task is not None:
            with self._lock:
                self._refreshes += 1
            self._track(task, lambda: self._settled(entry, task, unless, attempt))

    def _settled(self, entry: Any, task: Task[Any], unless: str | None, attempt: int) -> None:
        """After an event's refresh: schedule another try if the service was unavailable."""
        _, error = task.outcome()
        if not isinstance(error, SecretUnavailableError):
            return
        if attempt >= len(_RETRY_DELAYS) or self._stop.is_set():
            log.warning(
                "refreshing %s for a rotation event failed %d times; the TTL will catch up",
                entry.target,
                attempt + 1,
            )
            return
        due = time.monotonic() + _RETRY_DELAYS[attempt] * random.uniform(0.5, 1.0)
        with self._lock:
            self._retries.append((due, entry, unless, attempt + 1))

    def _run_due_retries(self) -> None:
        now = time.monotonic()
        with self._lock:
            due = [r for r in self._retries if r[0] <= now]
            self._retries = [r for r in self._retries if r[0] > now]
        for _, entry, unless, attempt in due:
            self._again(entry, unless, attempt)


def _label_plan(
    entries: list[Any],
    moves: tuple[tuple[str, str | None], ...] | None,
    stage_of: Callable[[Any], str | None],
) -> list[tuple[Any, str | None]]:
    """Which entries label moves concern, each with the version that satisfies it (or None).

    ``moves`` None: any label may have changed. ``stage_of``: the Secrets Manager
    label an entry reads.
    """
    if moves is None:
        return [(e, None) for e in entries if e.version_id is None and e.value is not None]
    current_held = {
        e.value.version_id for e in entries if stage_of(e) == CURRENT and e.value is not None
    }
    plan: list[tuple[Any, str | None]] = []
    for entry in entries:
        if entry.version_id is not None or entry.value is None:
            continue  # pinned versions never change; never-loaded entries have nothing stale
        stage = stage_of(entry)
        wanted: list[str | None] = []
        for label, version in moves:
            if stage == label:
                wanted.append(version)
            elif label == CURRENT and stage == PREVIOUS:
                # The service gave AWSPREVIOUS to the version AWSCURRENT left. Known
                # only when the event names the new version and one AWSCURRENT entry
                # still holds the version it replaced.
                former = current_held - {version} if version is not None else set()
                wanted.append(next(iter(former)) if len(former) == 1 else None)
        if not wanted:
            continue
        held = entry.value.version_id
        if all(v is not None and v == held for v in wanted):
            continue  # already holds what the event announces: no call
        plan.append((entry, wanted[0] if len(wanted) == 1 else None))
    return plan


def _on_event_loop() -> bool:
    asyncio = sys.modules.get("asyncio")  # not imported: certainly no loop is running
    if asyncio is None:
        return False
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _under_path(name: str, path: str, *, recursive: bool) -> bool:
    """Whether ``GetParametersByPath(path)`` returns parameter ``name``."""
    if not name.startswith("/"):
        name = "/" + name
    prefix = path if path.endswith("/") else path + "/"
    if not name.startswith(prefix) or name == prefix:
        return False
    return recursive or "/" not in name[len(prefix) :]


def _describe(exc: BaseException) -> str:
    """An SQS failure named by its code or class only (messages can be long; codes suffice)."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        if code:
            return str(code)
    return type(exc).__name__


_QUEUE_HOST = re.compile(r"^https://sqs\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?/")


def _default_sqs_client(queue_url: str, wait_time_seconds: int) -> Any:
    """An SQS client whose read timeout outlasts the long poll, in the queue's own region.

    botocore's retries are off: the listener backs off by itself and must not sit
    in a hidden retry loop when it is asked to stop.
    """
    import boto3
    from botocore.config import Config

    match = _QUEUE_HOST.match(queue_url)
    config = Config(
        connect_timeout=2.0,
        read_timeout=wait_time_seconds + 2.0,
        retries={"total_max_attempts": 1, "mode": "standard"},
        user_agent_extra="secretcache",
    )
    region = match.group(1) if match else None
    return boto3.session.Session().client("sqs", region_name=region, config=config)
