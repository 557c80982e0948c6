"""Metrics through OpenTelemetry: what a platform team needs to see of its caches.

This module is the only one that imports OpenTelemetry, and only its API package
(the ``secretcache[otel]`` extra): which SDK, exporter and backend receive the
figures is the application's choice, never the library's.

Why the instruments are *observable*: the cache hit is the product's hot path (a
``dict.get`` and a clock comparison), and a synchronous counter there would cost
more than the hit itself. The engine already keeps exact counters for
``stats()``; the instruments read them when the SDK collects, so turning metrics
on changes nothing on the hit path. Only the slow path reports as it happens:
each fetch's latency (through ``Engine.observers``) and each request sent to AWS
(through the client's botocore events, counted only when this cache sent it).

Attributes are bounded on purpose: ``cache`` (the name given to
:func:`instrument`), ``operation`` and ``outcome`` (an AWS error code or an
exception class name). Secret ids appear only with ``include_secret_ids=True``,
because a fleet with many secrets would otherwise multiply every series. Values
never appear anywhere.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

try:
    from opentelemetry import metrics as _otel
    from opentelemetry.metrics import CallbackOptions, Histogram, Meter, MeterProvider, Observation
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    raise ImportError(
        "secretcache.metrics needs the OpenTelemetry API package; "
        "install it with: pip install 'secretcache[otel]'"
    ) from exc

from . import __version__
from . import cache as _cache

__all__ = ["Instrumentation", "ListenerInstrumentation", "instrument", "instrument_listener"]

log = logging.getLogger("secretcache")

METER_NAME = "secretcache"

COUNTERS: tuple[tuple[str, str, str, str], ...] = (
    ("secretcache.hits", "hits", "{read}", "Reads answered from the cache"),
    ("secretcache.misses", "misses", "{read}", "Reads that found no value and fetched one"),
    ("secretcache.refreshes", "refreshes", "{fetch}", "Fetches of a value already held"),
    (
        "secretcache.stale_values_served",
        "stale_served",
        "{read}",
        "Reads answered with the previous value (refresh failed, backing off or in flight)",
    ),
    ("secretcache.errors", "errors", "{fetch}", "Fetches that failed"),
    ("secretcache.failovers", "failovers", "{fetch}", "Fetches a failover region answered"),
)
"""(metric name, ``CacheStats`` field, unit, description) of each counter read from stats()."""

API_CALLS = "secretcache.api_calls"
ENTRIES = "secretcache.entries"
OLDEST_VALUE_AGE = "secretcache.oldest_value_age"
FETCH_DURATION = "secretcache.fetch.duration"
EVENTS_RECEIVED = "secretcache.events.received"
EVENTS_HANDLED = "secretcache.events.handled"

FETCH_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0)
"""Seconds: a fetch takes milliseconds when healthy and up to the client timeouts when not."""

Attributes = dict[str, str]


def instrument(
    cache: Any,
    *,
    name: str = "default",
    meter_provider: MeterProvider | None = None,
    include_secret_ids: bool = False,
) -> Instrumentation:
    """Report ``cache``'s counters, fetch latency and API calls as OpenTelemetry metrics.

    ``cache`` is a ``SecretCache``, an ``AsyncSecretCache`` or a ``ParameterCache``.
    ``name`` becomes the ``cache`` attribute of every data point, to tell caches
    apart. ``meter_provider``: where the metrics go (default: the global provider,
    so configure it first). ``include_secret_ids``: add a ``secret_id`` attribute
    to fetch latency and value age -- one series per secret, mind the cardinality.

    Returns an :class:`Instrumentation`; ``close()`` it to stop reporting.
    """
    engine = getattr(cache, "_engine", None)
    if not isinstance(engine, _cache.Engine):
        raise TypeError(
            "instrument() takes a SecretCache, AsyncSecretCache or ParameterCache, "
            f"not {type(cache).__name__}"
        )
    if not isinstance(name, str) or not name:
        raise ValueError("name must be a non-empty string")
    group = _group_for(meter_provider)
    instrumentation = Instrumentation(engine, group, name, include_secret_ids=include_secret_ids)
    group.add_cache(instrumentation)
    instrumentation.start()
    return instrumentation


def instrument_listener(
    listener: Any, *, name: str = "default", meter_provider: MeterProvider | None = None
) -> ListenerInstrumentation:
    """Report a ``RotationListener``'s counters: events received and how each was handled.

    Any object whose ``stats()`` has ``received``, ``applied``, ``ignored`` and
    ``malformed`` (as attributes or keys) will do.
    """
    if not callable(getattr(listener, "stats", None)):
        raise TypeError(
            f"instrument_listener() takes an object with stats(), not {type(listener).__name__}"
        )
    group = _group_for(meter_provider)
    instrumentation = ListenerInstrumentation(listener, group, name)
    group.add_listener(instrumentation)
    return instrumentation


# ----------------------------------------------------------------- one cache


class Instrumentation:
    """One cache reported through one meter provider, until :meth:`close`.

    Holds the cache's engine weakly: a cache that is dropped simply stops being
    reported. ``per_operation`` tells whether API calls are counted per operation
    and outcome (a botocore client) or only in total (a client without botocore's
    event hooks, such as ``secretcache.testing.FakeSecretsManager``).
    """

    def __init__(
        self, engine: _cache.Engine, group: _Group, name: str, *, include_secret_ids: bool
    ) -> None:
        self._engine_ref = weakref.ref(engine)
        self._group = group
        self.attributes: Attributes = {"cache": name}
        self.include_secret_ids = include_secret_ids
        self.per_operation = False
        self._closed = False
        self._lock = threading.Lock()
        self._calls: dict[tuple[str, str], int] = {}
        self._hooks: list[tuple[Any, str, Callable[..., None], str]] = []
        self._wrapped: list[tuple[Any, Callable[[Any], None]]] = []

    @property
    def engine(self) -> _cache.Engine | None:
        return self._engine_ref()

    def start(self) -> None:
        engine = self.engine
        if engine is None:  # pragma: no cover - the caller holds the cache
            return
        engine.observers.append(self._on_fetch)
        for caller in _callers(engine.source):
            self._watch_caller(caller)

    def close(self) -> None:
        """Stop reporting this cache and take every hook off its engine and clients."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            hooks, self._hooks = self._hooks, []
            wrapped, self._wrapped = self._wrapped, []
        self._group.remove(self)
        engine = self.engine
        if engine is not None:
            with contextlib.suppress(ValueError):
                engine.observers.remove(self._on_fetch)
        for events, event, handler, unique_id in hooks:
            try:
                events.unregister(event, handler, unique_id=unique_id)
            except Exception:  # pragma: no cover - a foreign client's event system
                log.debug("could not unregister a metrics hook", exc_info=True)
        for caller, wrapper in wrapped:
            if vars(caller).get("_watch_sends") is wrapper:
                del caller._watch_sends
            # else: another instrumentation wrapped it since; ours stays, inert (closed)

    def __enter__(self) -> Instrumentation:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<Instrumentation cache={self.attributes['cache']!r} {state}>"

    # ------------------------------------------------------- what it reports

    def counters(self) -> Mapping[str, int]:
        """The engine's counters now (empty once the cache is gone)."""
        engine = self.engine
        if engine is None or self._closed:
            return {}
        stats = engine.stats()
        return {field: getattr(stats, field, 0) for _, field, _, _ in COUNTERS} | {
            "api_calls": stats.api_calls,
            "size": stats.size,
        }

    def api_calls(self) -> Iterator[tuple[Attributes, int]]:
        """Requests this cache sent, by operation and outcome where the client tells."""
        if not self.per_operation:
            total = self.counters().get("api_calls")
            if total is not None:
                yield self.attributes, total
            return
        with self._lock:
            calls = list(self._calls.items())
        for (operation, outcome), count in calls:
            yield {**self.attributes, "operation": operation, "outcome": outcome}, count

    def value_ages(self) -> Iterator[tuple[Attributes, float]]:
        """Seconds since the oldest value in use was fetched (per secret id if opted in)."""
        engine = self.engine
        if engine is None or self._closed:
            return
        now = _cache.monotonic()
        oldest: dict[str, float] = {}
        for entry in list(engine.entries.values()):
            age = value_age(entry, now, engine.config)
            if age is None:
                continue
            key = entry.secret_id if self.include_secret_ids else ""
            if age > oldest.get(key, -math.inf):
                oldest[key] = age
        for secret_id, age in oldest.items():
            if self.include_secret_ids:
                yield {**self.attributes, "secret_id": secret_id}, age
            else:
                yield self.attributes, age

    # -------------------------------------------------------- slow-path hooks

    def _on_fetch(self, secret_id: str, outcome: str, seconds: float) -> None:
        if self._closed:
            return
        attributes = {**self.attributes, "outcome": outcome}
        if self.include_secret_ids:
            attributes["secret_id"] = secret_id
        self._group.fetch_duration.record(seconds, attributes)

    def _watch_caller(self, caller: Any) -> None:
        """Count the requests of one caller (the part of a source that owns a client).

        A client that exists is hooked now; one the library creates later (on the
        first fetch, or again in a forked child) is hooked as it is created.
        """
        client = vars(caller).get("_client")
        if client is not None:
            if self._hook_client(caller, client):
                self.per_operation = True
            return
        original = getattr(caller, "_watch_sends", None)
        if not callable(original):
            return

        def watch_sends(created: Any, *, _original: Callable[[Any], None] = original) -> None:
            _original(created)
            if not self._closed:
                self._hook_client(caller, created)

        caller._watch_sends = watch_sends
        with self._lock:
            self._wrapped.append((caller, watch_sends))
        self.per_operation = True  # the library's own client is a botocore client

    def _hook_client(self, caller: Any, client: Any) -> bool:
        events = getattr(getattr(client, "meta", None), "events", None)
        register = getattr(events, "register", None)
        if not callable(register) or not hasattr(caller, "_sending"):
            return False
        # response-received fires once per HTTP attempt (retries included), answered
        # or failed, like the engine's own api_calls counter at before-send.
        event = "response-received"
        unique_id = f"secretcache.metrics:{id(self)}:{id(caller)}:{id(client)}"

        def on_response(**kwargs: Any) -> None:
            self._on_response(caller, **kwargs)

        register(event, on_response, unique_id=unique_id)
        with self._lock:
            self._hooks.append((events, event, on_response, unique_id))
        return True

    def _on_response(self, caller: Any, **kwargs: Any) -> None:
        # Runs inside botocore's request path: it must never raise, or a metrics
        # problem would turn into a failed fetch.
        try:
            if self._closed or not getattr(caller._sending, "active", False):
                return  # a request someone else made on a shared client
            operation = str(kwargs.get("event_name", "")).rsplit(".", 1)[-1] or "unknown"
            key = (operation, _outcome(kwargs))
            with self._lock:
                self._calls[key] = self._calls.get(key, 0) + 1
        except Exception:  # pragma: no cover - defensive
            log.debug("metrics: could not count a request", exc_info=True)


def _outcome(kwargs: Mapping[str, Any]) -> str:
    """``ok``, the AWS error code, the HTTP status, or the exception's class name.

    Reads only the response's metadata and error code: a successful reply's body
    holds the secret and is never looked at.
    """
    exception = kwargs.get("exception")
    if exception is not None:
        return type(exception).__name__
    parsed = kwargs.get("parsed_response")
    if not isinstance(parsed, Mapping):
        return "unknown"
    metadata = parsed.get("ResponseMetadata")
    status = metadata.get("HTTPStatusCode") if isinstance(metadata, Mapping) else None
    if not isinstance(status, int) or status < 300:
        return "ok"
    error = parsed.get("Error")
    code = error.get("Code") if isinstance(error, Mapping) else None
    return str(code) if code else str(status)


def value_age(entry: Any, now: float, config: Any) -> float | None:
    """Seconds since the value ``entry`` serves was fetched; ``None`` if it serves none.

    Refreshes are driven by reads, so an entry nobody has read since it expired
    is left out: its next read refreshes it first, and counting it would make an
    idle secret (read once at start-up) look like a failing one. What remains is
    every fresh value and every value read past its expiry -- the ones a failing
    refresh keeps serving.

    ``fetched_at`` marks the end of the entry's last fetch, failed or not; after a
    failed refresh the value served is older than that. Its fetch time is then
    bounded by its expiry: stored at most ``ttl * (1 - jitter)`` before it, so the
    age reported is never more than the real one (exact with ``jitter=0``).
    """
    if entry.value is None:
        return None
    expires_at = float(entry.expires_at)
    if now >= expires_at and entry.last_used < expires_at:
        return None  # expired and idle: not being served
    stored: float | None = getattr(entry, "stored_at", None)
    if stored is None:
        stored = float(entry.fetched_at)
        if entry.error is not None and math.isfinite(expires_at):
            stored = min(stored, expires_at - config.ttl * (1.0 - config.jitter))
    if not math.isfinite(stored):
        return None
    return max(0.0, now - stored)


def _callers(source: Any) -> list[Any]:
    """The parts of a source that send requests: each has a client and a ``_sending`` flag.

    A source may be one caller, hold one (``caller``), or be made of sources
    (``primary`` and ``failovers``, for replica regions).
    """
    found: list[Any] = []

    def visit(part: Any, depth: int) -> None:
        if part is None or depth > 4 or any(part is seen for seen in found):
            return
        if hasattr(part, "_sending"):
            found.append(part)
            return
        visit(getattr(part, "caller", None), depth + 1)
        visit(getattr(part, "primary", None), depth + 1)
        for failover in getattr(part, "failovers", None) or ():
            visit(failover, depth + 1)

    visit(source, 0)
    return found


# ------------------------------------------------------------ a listener


class ListenerInstrumentation:
    """One rotation-event listener reported through one meter provider, until :meth:`close`."""

    def __init__(self, listener: Any, group: _Group, name: str) -> None:
        try:
            self._listener: Callable[[], Any] = weakref.ref(listener)
        except TypeError:  # an object that cannot be weakly referenced
            self._listener = lambda: listener
        self._group = group
        self.attributes: Attributes = {"cache": name}
        self._closed = False

    def counts(self) -> Mapping[str, int]:
        listener = self._listener()
        if listener is None or self._closed:
            return {}
        stats = listener.stats()
        found: dict[str, int] = {}
        for field in ("received", "applied", "ignored", "malformed"):
            value = stats.get(field) if isinstance(stats, Mapping) else getattr(stats, field, None)
            if isinstance(value, int):
                found[field] = value
        return found

    def close(self) -> None:
        self._closed = True
        self._group.remove(self)

    def __enter__(self) -> ListenerInstrumentation:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


# ------------------------------------------------- instruments per provider


class _Group:
    """The instruments of one meter provider and everything reported through them.

    Instruments are created once per provider: the SDK hands back the existing
    instrument for a name it has seen and ignores the new callbacks, so a second
    cache must join the first one's callbacks rather than register its own.
    Data points with equal attributes (two caches given the same name) are added
    up, never overwritten.
    """

    def __init__(self, meter: Meter) -> None:
        self._lock = threading.Lock()
        self._caches: list[Instrumentation] = []
        self._listeners: list[ListenerInstrumentation] = []
        for metric, field, unit, description in COUNTERS:
            meter.create_observable_counter(
                metric, callbacks=[self._stats_callback(field)], unit=unit, description=description
            )
        meter.create_observable_counter(
            API_CALLS,
            callbacks=[self._api_calls],
            unit="{request}",
            description="Requests sent to AWS (every attempt), by operation and outcome",
        )
        meter.create_observable_gauge(
            ENTRIES,
            callbacks=[self._stats_callback("size")],
            unit="{entry}",
            description="Entries held by the cache",
        )
        meter.create_observable_gauge(
            OLDEST_VALUE_AGE,
            callbacks=[self._oldest],
            unit="s",
            description="Seconds since the oldest value in use was fetched "
            "(values expired and not read since are left out)",
        )
        self.fetch_duration: Histogram = _histogram(meter)
        meter.create_observable_counter(
            EVENTS_RECEIVED,
            callbacks=[self._events_received],
            unit="{event}",
            description="Rotation events the listener received",
        )
        meter.create_observable_counter(
            EVENTS_HANDLED,
            callbacks=[self._events_handled],
            unit="{event}",
            description="Rotation events by result: applied, ignored or malformed",
        )

    def add_cache(self, member: Instrumentation) -> None:
        engine = member.engine
        with self._lock:
            if any(other.engine is engine for other in self._caches):
                raise ValueError(
                    "this cache is already instrumented with this meter provider; "
                    "close() the earlier Instrumentation first"
                )
            self._caches.append(member)

    def add_listener(self, member: ListenerInstrumentation) -> None:
        with self._lock:
            self._listeners.append(member)

    def remove(self, member: object) -> None:
        with self._lock:
            self._caches = [m for m in self._caches if m is not member]
            self._listeners = [m for m in self._listeners if m is not member]

    def _members(self) -> list[Instrumentation]:
        with self._lock:
            members = list(self._caches)
        gone = [m for m in members if m.engine is None]
        for member in gone:
            member.close()
        return [m for m in members if m.engine is not None]

    # Callbacks run on the SDK's collection thread. A cache whose report fails is
    # logged and skipped, never allowed to hide the others.

    def _gather(
        self, report: Callable[[Instrumentation], Iterable[tuple[Attributes, float]]]
    ) -> list[tuple[Attributes, float]]:
        pairs: list[tuple[Attributes, float]] = []
        for member in self._members():
            try:
                pairs.extend(report(member))
            except Exception:
                log.exception("metrics: reading cache %r failed", member.attributes["cache"])
        return pairs

    def _stats_callback(self, field: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def report(member: Instrumentation) -> list[tuple[Attributes, float]]:
            counters = member.counters()
            return [(member.attributes, counters[field])] if field in counters else []

        def callback(_: CallbackOptions) -> Iterable[Observation]:
            return _added(self._gather(report))

        return callback

    def _api_calls(self, _: CallbackOptions) -> Iterable[Observation]:
        return _added(self._gather(lambda member: list(member.api_calls())))

    def _oldest(self, _: CallbackOptions) -> Iterable[Observation]:
        oldest: dict[tuple[tuple[str, str], ...], float] = {}
        for attributes, age in self._gather(lambda member: list(member.value_ages())):
            key = tuple(sorted(attributes.items()))
            oldest[key] = max(age, oldest.get(key, -math.inf))
        return [Observation(age, dict(key)) for key, age in oldest.items()]

    def _listener_counts(self) -> list[tuple[Attributes, Mapping[str, int]]]:
        with self._lock:
            listeners = list(self._listeners)
        found: list[tuple[Attributes, Mapping[str, int]]] = []
        for member in listeners:
            try:
                found.append((member.attributes, member.counts()))
            except Exception:
                log.exception("metrics: reading listener %r failed", member.attributes["cache"])
        return found

    def _events_received(self, _: CallbackOptions) -> Iterable[Observation]:
        return _added(
            (attributes, counts["received"])
            for attributes, counts in self._listener_counts()
            if "received" in counts
        )

    def _events_handled(self, _: CallbackOptions) -> Iterable[Observation]:
        return _added(
            ({**attributes, "result": result}, counts[result])
            for attributes, counts in self._listener_counts()
            for result in ("applied", "ignored", "malformed")
            if result in counts
        )


def _added(pairs: Iterable[tuple[Attributes, float]]) -> list[Observation]:
    """One observation per attribute set, equal sets added up."""
    totals: dict[tuple[tuple[str, str], ...], float] = {}
    for attributes, value in pairs:
        key = tuple(sorted(attributes.items()))
        totals[key] = totals.get(key, 0) + value
    return [Observation(value, dict(key)) for key, value in totals.items()]


def _histogram(meter: Meter) -> Histogram:
    description = "Seconds one fetch took (retries included), by outcome"
    try:
        return meter.create_histogram(
            FETCH_DURATION,
            unit="s",
            description=description,
            explicit_bucket_boundaries_advisory=FETCH_BUCKETS,
        )
    except TypeError:  # pragma: no cover - OpenTelemetry API before 1.23 has no advisory
        return meter.create_histogram(FETCH_DURATION, unit="s", description=description)


_groups: dict[object, _Group] = {}
"""Keyed by the provider object itself (or ``"global"``), which keeps it alive: providers
live as long as the application anyway."""
_groups_lock = threading.Lock()


def _group_for(meter_provider: MeterProvider | None) -> _Group:
    """The instruments for ``meter_provider`` (the global one if ``None``), created once.

    The global provider is one group whenever it is asked for: instruments made
    before the application sets it are proxies that follow it once set, and a
    second set of instruments on the real meter would be ignored by the SDK.
    """
    if meter_provider is None or meter_provider is _otel.get_meter_provider():
        return _group("global", lambda: _otel.get_meter(METER_NAME, __version__))
    provider = meter_provider
    return _group(provider, lambda: provider.get_meter(METER_NAME, __version__))


def _group(key: object, meter: Callable[[], Meter]) -> _Group:
    with _groups_lock:
        group = _groups.get(key)
        if group is None:
            group = _groups[key] = _Group(meter())
        return group
