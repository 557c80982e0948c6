"""The rotation-aware login every database adapter shares.

A driver module says only two things: how to open a connection from keyword
arguments, and how to recognise "the server rejected this password". Everything
about Secrets Manager -- which label to try next, when a label is worth
re-reading, what to remember, how to fail without leaking a password -- is here,
once. ``docs/rotation.md`` walks through the timeline this code is built for.

Why a rejected login is trusted as evidence: a password that fails at time *t*
tells us something the cache cannot know -- the database changed after the
cache last looked. So a label whose cached copy was read *before* the failing
attempt began is re-read, even inside ``min_refresh_interval``; a copy read
*after* it began is already newer than the evidence and is used as is (this is
also how concurrent failures share one refresh). The rate limit takes over only
once a login has failed with every label -- a password no rotation explains --
so a broken credential costs a handful of calls per ``min_refresh_interval``,
not one per connection attempt.

Concurrent connects rejected at the same moment do not each work through the
labels: one does (per secret and cache), the others wait and then use the
credential it found, so a rotation costs the same few calls for one worker or
fifty.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import math
import os
import threading
import weakref
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from .. import cache as _cache_module
from ..cache import SecretCache, default_cache
from ..errors import SecretCacheError, SecretDecodeError, SecretNotFoundError, describe_target
from ..value import SecretValue

__all__ = ["Credential", "Driver", "rotating_connect"]

log = logging.getLogger("secretcache")

C = TypeVar("C")

CURRENT, PENDING, PREVIOUS = "AWSCURRENT", "AWSPENDING", "AWSPREVIOUS"
REDACTED = "<redacted>"
_CREDENTIAL_FIELDS = frozenset({"user", "username", "password", "passwd", "password1"})


def _now() -> float:
    # The cache's clock, so tests that move the cache's time move ours too.
    return _cache_module.monotonic()


@dataclass(frozen=True, slots=True)
class Credential:
    """One version's login: who, with what, and where the secret says the server is.

    ``repr`` leaves the password out, so a credential in a traceback's locals or
    a debugger's variable view does not show it.
    """

    username: str
    password: str
    host: str | None
    port: int | None
    dbname: str | None
    stage: str
    version_id: str

    def __repr__(self) -> str:
        return (
            f"Credential(username={self.username!r}, host={self.host!r}, port={self.port!r}, "
            f"dbname={self.dbname!r}, stage={self.stage!r}, version_id={self.version_id!r})"
        )

    def fingerprint(self) -> bytes:
        """Identity of the login, to skip trying the same thing twice under two labels."""
        parts = (self.username, self.password, self.host or "", str(self.port), self.dbname or "")
        return hashlib.sha256("\0".join(parts).encode("utf-8", "surrogatepass")).digest()

    @classmethod
    def from_value(cls, secret_id: str, stage: str, value: SecretValue) -> Credential:
        """Read the RDS-style JSON; errors name the missing key, never a value."""
        data = value._parse_json(secret_id, stage, None)
        target = f"{describe_target(secret_id, stage, None)} version {value.version_id}"
        for key in ("username", "password"):
            if key not in data:
                raise SecretDecodeError(
                    f"secret {target} has no {key!r} key; a database secret needs "
                    "'username' and 'password' (and optionally host, port, dbname)",
                    secret_id=secret_id,
                    version_stage=stage,
                    version_id=value.version_id,
                )
            if not isinstance(data[key], str):
                raise SecretDecodeError(
                    f"secret {target}: {key!r} must be a string, not {type(data[key]).__name__}",
                    secret_id=secret_id,
                    version_stage=stage,
                    version_id=value.version_id,
                )
        port = data.get("port")
        if port is not None and port != "":
            try:
                port = int(port)
            except (TypeError, ValueError):
                raise SecretDecodeError(
                    f"secret {target}: 'port' is not a number",
                    secret_id=secret_id,
                    version_stage=stage,
                    version_id=value.version_id,
                ) from None
        else:
            port = None
        host, dbname = data.get("host"), data.get("dbname")
        return cls(
            username=data["username"],
            password=data["password"],
            host=str(host) if host not in (None, "") else None,
            port=port,
            dbname=str(dbname) if dbname not in (None, "") else None,
            stage=stage,
            version_id=value.version_id,
        )


class Driver(ABC, Generic[C]):
    """What one database driver contributes: opening, and recognising a rejected login."""

    name: str = "driver"
    host_key = "host"
    port_key = "port"
    dbname_key = "dbname"
    dbname_aliases: tuple[str, ...] = ()

    error_types: tuple[type[BaseException], ...] = ()
    """The driver's exception classes: these are scrubbed before they leave us."""

    @abstractmethod
    def open(self, args: Sequence[Any], params: dict[str, Any]) -> C:
        """Connect with keyword arguments (the password is one of them, never in a DSN)."""

    @abstractmethod
    def is_auth_failure(self, exc: BaseException) -> bool:
        """True only when the server rejected the credential itself."""

    def params(self, credential: Credential, overrides: Mapping[str, Any]) -> dict[str, Any]:
        """Connect keywords: the secret's location, the caller's overrides on top."""
        for key in overrides:
            if key in _CREDENTIAL_FIELDS:
                raise TypeError(
                    f"{key!r} cannot be passed: the username and password come from the secret"
                )
        params: dict[str, Any] = {}
        if credential.host is not None:
            params[self.host_key] = credential.host
        if credential.port is not None:
            params[self.port_key] = credential.port
        overridden_db = any(k in overrides for k in (self.dbname_key, *self.dbname_aliases))
        if credential.dbname is not None and not overridden_db:
            params[self.dbname_key] = credential.dbname
        params.update(overrides)
        params["user"] = credential.username
        params["password"] = credential.password
        return params

    def sanitize(self, exc: BaseException, passwords: Sequence[str]) -> BaseException:
        """A copy of ``exc`` without anything that holds a password.

        The copy keeps the class and the arguments (with any tried password
        masked) and drops driver attachments such as psycopg's ``pgconn``, the
        original traceback (whose frames hold the connect keywords) and the
        context chain.
        """
        args = tuple(_mask(arg, passwords) for arg in exc.args)
        try:
            clean = type(exc)(*args)
        except Exception:
            clean = RuntimeError(*args)
        for note in getattr(exc, "__notes__", ()):
            clean.add_note(str(_mask(note, passwords)))
        return clean


def _mask(value: Any, passwords: Sequence[str]) -> Any:
    if isinstance(value, str):
        for password in passwords:
            if password and password in value:
                value = value.replace(password, REDACTED)
        return value
    if isinstance(value, bytes):
        for password in passwords:
            raw = password.encode("utf-8", "surrogatepass")
            if raw and raw in value:
                value = value.replace(raw, REDACTED.encode())
        return value
    if value is None or isinstance(value, int | float | bool):
        return value
    text = str(value)
    if any(p and p in text for p in passwords):
        return REDACTED
    return value


@dataclass(frozen=True, slots=True)
class _Worked:
    """A credential that logged in while the cached AWSCURRENT (``current_seen``) did not."""

    value: SecretValue
    stage: str
    current_seen: str


class _SecretState:
    """What connects to one secret have learnt, shared by every connect through one cache."""

    __slots__ = ("all_failed_at", "resolving", "working")

    def __init__(self) -> None:
        self.working: _Worked | None = None
        self.all_failed_at = -math.inf  # last time every label was rejected
        self.resolving = threading.Lock()  # held while one connect works through the labels


_states: weakref.WeakKeyDictionary[SecretCache, dict[str, _SecretState]] = (
    weakref.WeakKeyDictionary()
)
_states_lock = threading.Lock()


def _reinit_after_fork() -> None:
    """A forked child must not inherit a lock some parent thread was holding."""
    global _states_lock
    _states_lock = threading.Lock()
    for per_cache in list(_states.values()):
        for state in per_cache.values():
            state.resolving = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reinit_after_fork)


def _state_for(cache: SecretCache, secret_id: str) -> _SecretState:
    with _states_lock:
        per_cache = _states.get(cache)
        if per_cache is None:
            per_cache = _states[cache] = {}
        state = per_cache.get(secret_id)
        if state is None:
            state = per_cache[secret_id] = _SecretState()
        return state


class _Login(Generic[C]):
    """One rotation-aware connect: the attempts made so far and what they taught us."""

    def __init__(
        self,
        driver: Driver[C],
        secret_id: str,
        cache: SecretCache,
        args: Sequence[Any],
        overrides: Mapping[str, Any],
    ) -> None:
        self.driver = driver
        self.secret_id = secret_id
        self.cache = cache
        self.args = args
        self.overrides = overrides
        self.state = _state_for(cache, secret_id)
        self.tried_versions: set[str] = set()
        self.tried_logins: set[bytes] = set()
        self.passwords: list[str] = []
        self.rejected: list[BaseException] = []  # scrubbed auth errors, in order
        self.lookups: list[SecretCacheError] = []  # label reads that failed on the AWS side
        self.notes: list[str] = []
        self.first_rejected_at: float | None = None

    # ---------------------------------------------------------------- the plan

    def run(self) -> C:
        current = self.cache.get_secret(self.secret_id, CURRENT)
        remembered = self.state.working
        if (
            remembered is not None
            and remembered.current_seen == current.version_id
            and remembered.value.version_id != current.version_id
        ):
            conn = self.attempt(remembered.stage, remembered.value)
            if conn is not None:
                return conn
        conn = self.attempt(CURRENT, current)
        if conn is not None:
            return conn
        return self.fall_back(current)

    def fall_back(self, current: SecretValue) -> C:
        """Steps 2 and 3 of API.md section 6, then the failure of step 4.

        One connect per secret works this out at a time: the others wait, then
        use the credential it found (one login, no API call) instead of each
        re-reading labels because their own rejection came a moment later.
        """
        conn = self.try_remembered()
        if conn is not None:
            return conn
        with self.state.resolving:
            return self.resolve(current)

    def resolve(self, current: SecretValue) -> C:
        since = self.first_rejected_at if self.first_rejected_at is not None else _now()
        conn = self.try_remembered()
        if conn is not None:
            return conn
        refreshed = self.refresh(CURRENT, since, unless_newer_than=current.version_id)
        if refreshed is not None:
            conn = self.attempt(CURRENT, refreshed)
            if conn is not None:
                return conn
            current = refreshed
        checked_current_at = _now()
        conn = self.try_remembered()
        if conn is not None:
            return conn
        for stage in (PENDING, PREVIOUS):
            value = self.refresh(stage, since)
            if value is None:
                continue
            try:
                conn = self.attempt(stage, value)
            except SecretDecodeError as exc:
                # A malformed fallback version must not hide the real problem (the
                # rejected login): note it and go on.
                self.lookups.append(exc)
                self.notes.append(f"secretcache: {stage} is not a usable database secret")
                continue
            if conn is not None:
                return conn
        # finishSecret may have moved AWSCURRENT (and dropped AWSPENDING) between our
        # read of AWSCURRENT and our read of AWSPENDING: look once more before giving up.
        last = self.refresh(CURRENT, checked_current_at, unless_newer_than=current.version_id)
        if last is not None:
            conn = self.attempt(CURRENT, last)
            if conn is not None:
                return conn
        self.state.all_failed_at = _now()
        self.state.working = None
        raise self.failure()

    # ------------------------------------------------------------- one attempt

    def attempt(self, stage: str, value: SecretValue) -> C | None:
        """Log in with one version; None if the server rejected it (or it was tried)."""
        if value.version_id in self.tried_versions:
            return None
        self.tried_versions.add(value.version_id)
        credential = Credential.from_value(self.secret_id, stage, value)
        fingerprint = credential.fingerprint()
        if fingerprint in self.tried_logins:
            return None
        self.tried_logins.add(fingerprint)
        self.passwords.append(credential.password)
        params = self.driver.params(credential, self.overrides)
        started = _now()
        outcome: C | BaseException
        rejected = False
        try:
            outcome = self.driver.open(self.args, params)
        except self.driver.error_types as exc:
            # Scrub inside the handler, keep nothing of the original: it (and its
            # traceback's frames) hold the password we just tried.
            outcome = self.driver.sanitize(exc, self.passwords)
            rejected = self.driver.is_auth_failure(exc)
            del exc
        finally:
            del params
        if not isinstance(outcome, BaseException):
            self.remember(stage, value)
            return outcome
        what = f"{stage} (version {value.version_id})"
        if not rejected:
            # Server down, timeout, bad database name...: no label can help.
            self.notes.append(f"secretcache: connecting with {what} failed (not a login error)")
            raise self.chained(outcome)
        log.info(
            "database rejected the login of secret %s with %s",
            describe_target(self.secret_id, stage, None),
            what,
        )
        self.notes.append(f"secretcache: the server rejected {what}")
        self.rejected.append(outcome)
        if self.first_rejected_at is None:
            self.first_rejected_at = started
        return None

    def try_remembered(self) -> C | None:
        """Another connect may have found the working credential meanwhile: use it."""
        remembered = self.state.working
        if remembered is None or remembered.value.version_id in self.tried_versions:
            return None
        return self.attempt(remembered.stage, remembered.value)

    def refresh(
        self, stage: str, since: float, *, unless_newer_than: str | None = None
    ) -> SecretValue | None:
        """The label's value, re-read only if our cached copy predates ``since``.

        ``since`` is when the evidence against the cached copy appeared (a
        rejected login began); see the module docstring. After a login that
        every label failed, ``min_refresh_interval`` applies instead.
        """
        floor = self.cache.config.min_refresh_interval
        now = _now()
        recently_all_failed = now - self.state.all_failed_at < floor
        min_interval = floor if recently_all_failed else max(0.0, now - since)
        try:
            return self.cache.force_refresh(
                self.secret_id,
                stage,
                min_interval=min_interval,
                unless_newer_than=unless_newer_than,
            )
        except SecretNotFoundError:
            return None  # the label is not on any version right now
        except SecretCacheError as exc:
            self.lookups.append(exc)
            self.notes.append(f"secretcache: could not read {stage}: {type(exc).__name__}")
            return None

    def remember(self, stage: str, value: SecretValue) -> None:
        state = self.state
        state.all_failed_at = -math.inf
        try:
            current_seen = self.cache.get_secret(self.secret_id, CURRENT).version_id
        except SecretCacheError:
            return
        if value.version_id == current_seen:
            if state.working is not None:
                state.working = None
            return
        known = state.working
        if known is None or known.value.version_id != value.version_id:
            log.info(
                "secret %s: logged in with %s (version %s) while AWSCURRENT is version %s",
                describe_target(self.secret_id, CURRENT, None),
                stage,
                value.version_id,
                current_seen,
            )
        if known is None or known.value is not value or known.current_seen != current_seen:
            state.working = _Worked(value, stage, current_seen)

    # ----------------------------------------------------------------- failure

    def chained(self, error: BaseException) -> BaseException:
        """``error`` with the earlier rejections (and label-read failures) as its causes."""
        unique: list[BaseException] = []
        for candidate in (error, *self.rejected, *self.lookups):
            if all(candidate is not e for e in unique):
                unique.append(candidate)
        for outer, inner in itertools.pairwise(unique):
            outer.__cause__ = inner
        unique[-1].__cause__ = None
        unique[-1].__suppress_context__ = True
        for note in self.notes:
            error.add_note(note)
        return error

    def failure(self) -> BaseException:
        first = self.rejected[0]
        self.notes.append(
            f"secretcache: no label of secret {self.secret_id!r} was accepted "
            f"({len(self.rejected)} login(s) tried)"
        )
        return self.chained(first)


def rotating_connect(
    driver: Driver[C],
    secret_id: str,
    *,
    cache: SecretCache | None = None,
    args: Sequence[Any] = (),
    overrides: Mapping[str, Any] | None = None,
) -> C:
    """Open a connection with the secret's credential, surviving a rotation in progress.

    Raises the driver's own error: at once for anything but a rejected login,
    and after AWSCURRENT (refreshed), AWSPENDING and AWSPREVIOUS were all
    rejected otherwise. The raised error, its chain and its notes hold no
    password.
    """
    login = _Login(
        driver,
        secret_id,
        cache if cache is not None else default_cache(),
        args,
        overrides or {},
    )
    try:
        return login.run()
    finally:
        login.passwords.clear()
