"""The label walk: which credential a rotation-aware connect tries, and what it learns.

Everything about Secrets Manager that a database login needs is decided here,
once, without doing any I/O. :meth:`Walk.steps` is a generator that *yields
requests* -- :class:`Get` a label from the cache, :class:`Read` (force-refresh)
one, :class:`Connect` with a credential, :class:`AwaitWalk` until another
connect's walk is over -- and is *sent the outcomes*. It returns a
:class:`Connected` or :class:`Failed` result and never raises. A runner performs
the requests: :func:`secretcache.db._connect.run_blocking` with blocking calls
today, an asyncio runner with awaits later; the rules below are shared by both.
``docs/rotation.md`` walks through the timeline this is built for.

**A rejected login is evidence, dated when the rejection was observed.** The
server checked the password at some moment of the attempt, and setSecret ran
before that moment; only when the rejection is *observed* is that moment
certainly past. A label's cached copy counts after a rejection only if its
fetch *began* after the rejection was observed; an older copy is re-read, even
inside ``min_refresh_interval``. (Dating the evidence by when the attempt
*began* -- the first release's rule -- trusts copies read during a slow
handshake, possibly before setSecret; and keeping the date of a connect's
*first* rejection trusts copies that a later rejection has already refuted.
Both failed logins on MariaDB under slow connects, issue 9.) The rate limit
takes over only once a login has failed with every label -- a password no
rotation explains -- so a broken credential costs a handful of calls per
``min_refresh_interval``, not one per connection attempt.

**One walk at a time per secret.** A connect whose cached credentials are
rejected either walks the labels or, if another connect is already doing so,
waits for that walk to end -- without holding anything -- and then tries what it
found (one login, no API call). Only if that is rejected too does it walk itself,
with its own, newer evidence. So a rotation costs the same couple of calls for
one worker or fifty, and a slow walk never holds other workers' logins.

**What is remembered.** A credential that logs in while the cached AWSCURRENT
does not is remembered with that AWSCURRENT version; connects that see the same
AWSCURRENT try it first. Memory changes only on the word of a login that began
after its last change: a slow login that started before a walk found the new
credential must not overwrite (or erase) what the walk learnt.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import logging
import math
import os
import threading
import weakref
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from typing import Any, Generic, NoReturn, TypeAlias, TypeVar

from .. import cache as _cache_module
from ..errors import SecretCacheError, SecretDecodeError, SecretNotFoundError, describe_target
from ..value import SecretValue
from ._scrub import detach

__all__ = [
    "CURRENT",
    "PENDING",
    "PREVIOUS",
    "AwaitWalk",
    "Connect",
    "Connected",
    "Credential",
    "Failed",
    "Get",
    "Opened",
    "Read",
    "Refused",
    "Request",
    "Walk",
    "WalkResult",
]

log = logging.getLogger("secretcache")

C = TypeVar("C")

CURRENT, PENDING, PREVIOUS = "AWSCURRENT", "AWSPENDING", "AWSPREVIOUS"


def _now() -> float:
    # The cache's clock, so that our evidence times and its fetch times compare.
    return _cache_module.monotonic()


# --------------------------------------------------------------------- credentials

_fingerprint_key = os.urandom(32)


def _new_fingerprint_key() -> None:
    global _fingerprint_key
    _fingerprint_key = os.urandom(32)


class Credential:
    """One version's login: who, with what, and where the secret says the server is.

    ``repr`` leaves the password out. A credential cannot be pickled, copied or
    turned into a dict (it is not a dataclass), so it does not end up written
    somewhere by a serialiser or a cache of someone else's.
    """

    __slots__ = ("dbname", "host", "password", "port", "stage", "username", "version_id")

    username: str
    password: str
    host: str | None
    port: int | None
    dbname: str | None
    stage: str
    version_id: str

    def __init__(
        self,
        *,
        username: str,
        password: str,
        host: str | None,
        port: int | None,
        dbname: str | None,
        stage: str,
        version_id: str,
    ) -> None:
        set_ = object.__setattr__
        set_(self, "username", username)
        set_(self, "password", password)
        set_(self, "host", host)
        set_(self, "port", port)
        set_(self, "dbname", dbname)
        set_(self, "stage", stage)
        set_(self, "version_id", version_id)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Credential is immutable (cannot set {name!r})")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"Credential is immutable (cannot delete {name!r})")

    def __repr__(self) -> str:
        return (
            f"Credential(username={self.username!r}, host={self.host!r}, port={self.port!r}, "
            f"dbname={self.dbname!r}, stage={self.stage!r}, version_id={self.version_id!r})"
        )

    def __reduce_ex__(self, protocol: Any) -> NoReturn:
        del self  # raised from a frame that does not hold the credential
        raise TypeError("a Credential cannot be pickled or copied: it holds a password")

    def __reduce__(self) -> NoReturn:
        del self
        raise TypeError("a Credential cannot be pickled or copied: it holds a password")

    def fingerprint(self) -> bytes:
        """Identity of the login, to skip trying the same thing twice under two labels.

        A keyed hash (the key is random per process): a fingerprint seen in memory
        or a dump cannot be checked against guessed passwords.
        """
        parts = (self.username, self.password, self.host or "", str(self.port), self.dbname or "")
        message = "\0".join(parts).encode("utf-8", "surrogatepass")
        return hmac.new(_fingerprint_key, message, hashlib.sha256).digest()

    @classmethod
    def from_value(cls, secret_id: str, stage: str, value: SecretValue) -> Credential:
        """Read the RDS-style JSON; errors name the key at fault, never a value.

        The error is raised from this frame, which by then holds neither the
        value nor the parsed mapping.
        """
        built = cls.build(secret_id, stage, value)
        del value
        if isinstance(built, SecretDecodeError):
            raise built
        return built

    @classmethod
    def build(
        cls, secret_id: str, stage: str, value: SecretValue
    ) -> Credential | SecretDecodeError:
        """``from_value`` that returns the error (without a traceback) instead of raising it."""
        version_id = value.version_id
        try:
            data = value._parse_json(secret_id, stage, None)
        except SecretDecodeError as exc:
            return _detached(exc)
        fields = _fields(data)
        del data, value
        if isinstance(fields, str):
            target = f"{describe_target(secret_id, stage, None)} version {version_id}"
            return SecretDecodeError(
                f"secret {target}: {fields}",
                secret_id=secret_id,
                version_stage=stage,
                version_id=version_id,
            )
        username, password, host, port, dbname = fields
        return cls(
            username=username,
            password=password,
            host=host,
            port=port,
            dbname=dbname,
            stage=stage,
            version_id=version_id,
        )


def _detached(exc: SecretDecodeError) -> SecretDecodeError:
    detach(exc)
    return exc


_Fields: TypeAlias = tuple[str, str, str | None, int | None, str | None]


def _fields(data: Mapping[str, Any]) -> _Fields | str:
    """The login fields, or what is wrong with them (naming keys and types, never values).

    Never raises: it holds the whole secret, so it must not be in a traceback.
    """
    try:
        texts: list[str] = []
        for key in ("username", "password"):
            if key not in data:
                return (
                    f"no {key!r} key; a database secret needs 'username' and 'password' "
                    "(and optionally host, port, dbname)"
                )
            item = data[key]
            if not isinstance(item, str):
                return f"{key!r} must be a string, not {type(item).__name__}"
            if "\0" in item:
                # libpq would cut the password at the NUL and log in with the rest.
                return f"{key!r} contains a NUL character, which database drivers cannot send"
            if any("\ud800" <= ch <= "\udfff" for ch in item):
                return f"{key!r} contains a lone surrogate (it is not valid Unicode text)"
            texts.append(item)
        port = _port(data.get("port"))
        if isinstance(port, str):
            return port
        host, dbname = data.get("host"), data.get("dbname")
        return (
            texts[0],
            texts[1],
            str(host) if host not in (None, "") else None,
            port,
            str(dbname) if dbname not in (None, "") else None,
        )
    except Exception as exc:  # a Mapping that misbehaves
        return f"the secret could not be read as a database secret ({type(exc).__name__})"


def _port(port: Any) -> int | str | None:
    if port is None or port == "":
        return None
    if isinstance(port, bool):
        return "'port' is not a number (got bool)"
    if isinstance(port, float) and not (math.isfinite(port) and port.is_integer()):
        return "'port' is not a whole number"
    try:
        number = int(port)
    except (TypeError, ValueError, OverflowError):
        return "'port' is not a number"
    if not 0 < number < 65536:
        return "'port' is not between 1 and 65535"
    return number


# ------------------------------------------------------------- requests, outcomes


@dataclass(frozen=True, slots=True)
class Get:
    """The cached value of a label (``cache.get_secret``); answered with a value or an error."""

    stage: str


@dataclass(frozen=True, slots=True)
class Read:
    """Force-refresh a label (``cache.force_refresh``); answered with a value or an error.

    ``fetched_since``: a cached copy counts only if its fetch began at or after
    this time; ``min_interval``: the rate limit (0 unless every label failed lately).
    """

    stage: str
    min_interval: float
    fetched_since: float
    unless_newer_than: str | None = None


@dataclass(frozen=True, slots=True, repr=False)
class Connect:
    """Open a connection with this credential; answered with :class:`Opened` or :class:`Refused`."""

    credential: Credential

    def __repr__(self) -> str:
        return f"Connect({self.credential!r})"


@dataclass(frozen=True, slots=True)
class AwaitWalk:
    """Wait until another connect's walk is over; answered with ``None``."""

    walk: WalkInProgress


Request: TypeAlias = Get | Read | Connect | AwaitWalk


@dataclass(frozen=True, slots=True)
class Opened(Generic[C]):
    connection: C


@dataclass(frozen=True, slots=True)
class Refused:
    """A connect that failed; ``error`` is already a scrubbed copy with no traceback."""

    error: BaseException
    rejected: bool  # the server refused the credential (vs. down, timeout, bad argument...)


@dataclass(frozen=True, slots=True)
class Connected(Generic[C]):
    connection: C


@dataclass(frozen=True, slots=True)
class Failed:
    """The error to raise: scrubbed, detached, with the other attempts chained and noted."""

    error: BaseException


WalkResult: TypeAlias = Connected[Any] | Failed


# ------------------------------------------------------------ per-secret memory


@dataclass(frozen=True, slots=True)
class _Worked:
    """A credential that logged in while the cached AWSCURRENT (``current_seen``) did not."""

    value: SecretValue
    stage: str
    current_seen: str


class WalkInProgress:
    """One connect working through the labels; others wait for it to end.

    Waiting is abstracted as a callback (:meth:`when_over`) so a thread can block
    on an event and a coroutine can await a future; nothing is held across the
    wait by either side.
    """

    __slots__ = ("_callbacks", "_lock", "evidence_at", "exhausted", "over")

    def __init__(self, evidence_at: float) -> None:
        self.evidence_at = evidence_at  # the walker's evidence when it began
        self.over = False
        self.exhausted = False  # it ended with every label rejected
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[], None]] = []

    def when_over(self, callback: Callable[[], None]) -> bool:
        """Call ``callback`` (from the walker's thread) when the walk ends; False if it has."""
        with self._lock:
            if self.over:
                return False
            self._callbacks.append(callback)
            return True

    def end(self, *, exhausted: bool) -> None:
        with self._lock:
            self.exhausted = exhausted
            self.over = True
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            try:
                callback()
            except Exception:  # pragma: no cover - e.g. a closed event loop
                log.debug("secretcache: a waiter of a label walk could not be woken")

    def wait_blocking(self) -> None:
        done = threading.Event()
        if self.when_over(done.set):
            done.wait()

    async def wait_async(self) -> None:
        """Await the end of the walk without blocking the loop (the walker may be a thread)."""
        loop = asyncio.get_running_loop()
        over: asyncio.Future[None] = loop.create_future()

        def wake() -> None:
            loop.call_soon_threadsafe(_resolve, over)

        if self.when_over(wake):
            await over

    def __repr__(self) -> str:
        return f"<walk {'over' if self.over else 'in progress'}>"


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():  # the waiter may have been cancelled meanwhile
        future.set_result(None)


class SecretState:
    """What connects to one secret have learnt, shared by every connect through one cache."""

    __slots__ = ("all_failed_at", "learned", "lock", "walk", "working")

    def __init__(self) -> None:
        self.working: _Worked | None = None
        self.learned = 0  # bumped whenever ``working`` changes
        self.all_failed_at = -math.inf  # last time every label was rejected
        self.walk: WalkInProgress | None = None
        self.lock = threading.Lock()  # held for bookkeeping only, never across I/O

    def claim(self, evidence_at: float) -> tuple[WalkInProgress, bool]:
        """The walk in progress and False, or a new one that the caller owns and True."""
        with self.lock:
            walk = self.walk
            if walk is not None:
                return walk, False
            walk = self.walk = WalkInProgress(evidence_at)
            return walk, True

    def release(self, walk: WalkInProgress, *, exhausted: bool) -> None:
        with self.lock:
            if self.walk is walk:
                self.walk = None
        walk.end(exhausted=exhausted)

    def remember(
        self, secret_id: str, stage: str, value: SecretValue, current_seen: str, learned: int
    ) -> None:
        """A login with ``value`` worked; ``learned`` is ``self.learned`` when it began."""
        with self.lock:
            self.all_failed_at = -math.inf
            if self.learned != learned:
                return  # something was learnt while this login was under way: it is newer
            known = self.working
            if value.version_id == current_seen:
                if known is not None:
                    self.working = None
                    self.learned += 1
                return
            if (
                known is not None
                and known.value.version_id == value.version_id
                and known.current_seen == current_seen
            ):
                return
            self.working = _Worked(value, stage, current_seen)
            self.learned += 1
        if known is None or known.value.version_id != value.version_id:
            log.info(
                "secret %s: logged in with %s (version %s) while AWSCURRENT is version %s",
                describe_target(secret_id, CURRENT, None),
                stage,
                value.version_id,
                current_seen,
            )

    def all_failed(self) -> None:
        with self.lock:
            self.all_failed_at = _now()
            if self.working is not None:
                self.working = None
                self.learned += 1


_states: weakref.WeakKeyDictionary[Any, dict[str, SecretState]] = weakref.WeakKeyDictionary()
_states_lock = threading.Lock()


def state_for(cache: Any, secret_id: str) -> SecretState:
    """The state of ``secret_id`` as seen through ``cache`` (any weak-referenceable cache)."""
    with _states_lock:
        per_cache = _states.get(cache)
        if per_cache is None:
            per_cache = _states[cache] = {}
        state = per_cache.get(secret_id)
        if state is None:
            state = per_cache[secret_id] = SecretState()
        return state


def _reinit_after_fork() -> None:
    """A forked child inherits no thread: no lock may be held, no walk be in progress."""
    global _states_lock
    _states_lock = threading.Lock()
    _new_fingerprint_key()
    for per_cache in list(_states.values()):
        for state in per_cache.values():
            state.lock = threading.Lock()
            state.walk = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reinit_after_fork)


# -------------------------------------------------------------------- the walk


class _Abort(Exception):
    """Internal: stop the walk with ``error`` (caught inside the generator)."""

    def __init__(self, error: BaseException) -> None:
        super().__init__()
        self.error = error


Steps: TypeAlias = Generator[Request, Any, WalkResult]


class Walk:
    """One rotation-aware connect: its attempts so far and what they taught it.

    Drive :meth:`steps` with a runner. API.md section 6 lists the rules; the
    module docstring says why they are what they are.
    """

    def __init__(self, secret_id: str, state: SecretState, *, min_refresh_interval: float) -> None:
        self.secret_id = secret_id
        self.state = state
        self.floor = min_refresh_interval
        self.current: SecretValue | None = None
        self.tried_versions: set[str] = set()
        self.tried_logins: set[bytes] = set()
        self.rejected: list[BaseException] = []  # scrubbed auth errors, in order
        self.lookups: list[BaseException] = []  # label reads that failed, bad fallback secrets
        self.notes: list[str] = []
        self.evidence_at: float | None = None  # when the latest rejection was observed
        self._claimed: WalkInProgress | None = None
        self._exhausted = False

    def __repr__(self) -> str:
        return f"<Walk {self.secret_id!r} tried={len(self.tried_versions)}>"

    # ---------------------------------------------------------------- the plan

    def steps(self) -> Steps:
        """The whole connect, as requests; returns the result, never raises."""
        try:
            return (yield from self._plan())
        except _Abort as stop:
            return Failed(self._chained(stop.error))
        finally:
            if self._claimed is not None:
                self.state.release(self._claimed, exhausted=self._exhausted)
                self._claimed = None

    def _plan(self) -> Steps:
        self.current = yield from self._get_current()
        while True:
            # Everything the shared state suggests, cheapest first: logins, no calls.
            while (candidate := self._next_candidate()) is not None:
                result = yield from self._attempt(*candidate)
                if result is not None:
                    return result
            evidence = self.evidence_at if self.evidence_at is not None else _now()
            walk, mine = self.state.claim(evidence)
            if mine:
                self._claimed = walk
                return (yield from self._labels())
            # Another connect is walking: wait for it, then try what it found.
            yield AwaitWalk(walk)
            self.current = yield from self._get_current()
            if self._next_candidate() is None and walk.exhausted and walk.evidence_at >= evidence:
                # It tried every label, with evidence at least as new as ours.
                self.notes.append(
                    "secretcache: another connect tried every label after this rejection"
                )
                return self._failure()

    def _next_candidate(self) -> tuple[str, SecretValue] | None:
        current = self.current
        assert current is not None
        working = self.state.working
        options: list[tuple[str, SecretValue]] = []
        applies = working is not None and working.current_seen == current.version_id
        if working is not None and applies:
            options.append((working.stage, working.value))
        options.append((CURRENT, current))
        if working is not None and not applies and self.rejected:
            options.append((working.stage, working.value))
        for stage, value in options:
            if value.version_id not in self.tried_versions:
                return stage, value
        return None

    def _labels(self) -> Steps:
        """Steps 2 and 3 of API.md section 6, then the failure of step 4 (one walker at a time)."""
        current = self.current
        assert current is not None
        refreshed = yield from self._read(CURRENT, unless_newer_than=current.version_id)
        if refreshed is not None:
            if refreshed.version_id != current.version_id:
                self.current = current = refreshed
            result = yield from self._attempt(CURRENT, refreshed)
            if result is not None:
                return result
        for stage in (PENDING, PREVIOUS):
            value = yield from self._read(stage)
            if value is None:
                continue
            result = yield from self._attempt(stage, value, fallback=True)
            if result is not None:
                return result
        # finishSecret may have moved AWSCURRENT (and dropped AWSPENDING) between our
        # read of AWSCURRENT and our read of AWSPENDING: look once more, with a read
        # that begins after those.
        last = yield from self._read(
            CURRENT, unless_newer_than=current.version_id, not_before=_now()
        )
        if last is not None:
            result = yield from self._attempt(CURRENT, last)
            if result is not None:
                return result
        self.state.all_failed()
        self._exhausted = True
        return self._failure()

    # ------------------------------------------------------------- one attempt

    def _attempt(
        self, stage: str, value: SecretValue, *, fallback: bool = False
    ) -> Generator[Request, Any, WalkResult | None]:
        """Log in with one version; None if the server rejected it (or it was tried)."""
        if value.version_id in self.tried_versions:
            return None
        self.tried_versions.add(value.version_id)
        what = f"{stage} (version {value.version_id})"
        credential = Credential.build(self.secret_id, stage, value)
        if isinstance(credential, SecretDecodeError):
            if fallback:
                # A malformed fallback version must not hide the real problem (the
                # rejected login): note it and go on.
                self.lookups.append(credential)
                self.notes.append(f"secretcache: {stage} is not a usable database secret")
                return None
            for note in self.notes:
                credential.add_note(note)
            return Failed(credential)
        fingerprint = credential.fingerprint()
        if fingerprint in self.tried_logins:
            return None
        self.tried_logins.add(fingerprint)
        learned = self.state.learned
        outcome = yield Connect(credential)
        del credential
        if isinstance(outcome, Opened):
            current = self.current
            assert current is not None
            self.state.remember(self.secret_id, stage, value, current.version_id, learned)
            return Connected(outcome.connection)
        assert isinstance(outcome, Refused)
        if not outcome.rejected:
            # Server down, timeout, bad argument...: no label can help.
            self.notes.append(f"secretcache: connecting with {what} failed (not a login error)")
            return Failed(self._chained(outcome.error))
        self.evidence_at = _now()
        log.info(
            "database rejected the login of secret %s with %s",
            describe_target(self.secret_id, stage, None),
            what,
        )
        self.notes.append(f"secretcache: the server rejected {what}")
        self.rejected.append(outcome.error)
        return None

    def _get_current(self) -> Generator[Request, Any, SecretValue]:
        outcome = yield Get(CURRENT)
        if isinstance(outcome, SecretValue):
            return outcome
        raise _Abort(outcome)

    def _read(
        self, stage: str, *, unless_newer_than: str | None = None, not_before: float | None = None
    ) -> Generator[Request, Any, SecretValue | None]:
        """The label's value, re-read unless the cached copy was fetched after the evidence."""
        since = self.evidence_at if self.evidence_at is not None else _now()
        if not_before is not None:
            since = max(since, not_before)
        recently_all_failed = _now() - self.state.all_failed_at < self.floor
        outcome = yield Read(
            stage,
            min_interval=self.floor if recently_all_failed else 0.0,
            fetched_since=since,
            unless_newer_than=unless_newer_than,
        )
        if isinstance(outcome, SecretValue):
            return outcome
        if isinstance(outcome, SecretNotFoundError):
            return None  # the label is not on any version right now
        if isinstance(outcome, SecretCacheError):
            self.lookups.append(outcome)
            self.notes.append(f"secretcache: could not read {stage}: {type(outcome).__name__}")
            return None
        raise _Abort(outcome)  # not the cache's own error (interrupted, a bug): stop here

    # ----------------------------------------------------------------- failure

    def _chained(self, error: BaseException) -> BaseException:
        """``error`` with the earlier rejections (and label-read failures) as its causes."""
        unique: list[BaseException] = []
        for candidate in (error, *self.rejected, *self.lookups):
            if all(candidate is not e for e in unique):
                unique.append(candidate)
        for outer, inner in itertools.pairwise(unique):
            outer.__cause__ = inner
            outer.__suppress_context__ = True
        unique[-1].__suppress_context__ = True
        existing = set(getattr(error, "__notes__", None) or ())
        for note in self.notes:
            if note not in existing:
                error.add_note(note)
        return detach(error)

    def _failure(self) -> Failed:
        first = self.rejected[0]
        self.notes.append(
            f"secretcache: no label of secret {self.secret_id!r} was accepted "
            f"({len(self.rejected)} login(s) tried)"
        )
        return Failed(self._chained(first))
