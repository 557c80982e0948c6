"""Drop-in replacements for the classes of ``aws-secretsmanager-caching`` 1.2.0.

Migrating is one import::

    from secretcache.compat import SecretCache, SecretCacheConfig, InjectSecretString

Constructor arguments, option names and defaults, method names, return values
(``None`` where the original returns ``None``) and the exception types callers
see (botocore's ``ClientError`` and friends) follow that library, so code that
catches its errors keeps working. Underneath is secretcache's engine: one
``GetSecretValue`` per fetch (the original adds a ``DescribeSecret``), no lock
or copy on a cache hit, and ``refresh_secret_now`` that does not sleep.

How ``SecretCacheConfig`` maps onto :class:`secretcache.CacheConfig`:

=================================  ============================================
``max_cache_size``                 ``max_size`` (entries are secret + stage pairs)
``secret_refresh_interval``        ``ttl``, with ``jitter=0.5``: the original
                                   draws each refresh time from ``[ttl/2, ttl]``
``default_version_stage``          ``default_version_stage``
``exception_retry_delay_max``      ``error_backoff_max``
``exception_retry_delay_base``     accepted; the engine's backoff starts at 1 s
``exception_retry_growth_factor``  accepted; the engine's backoff doubles
``secret_cache_hook``              applied here, around the engine (see below)
(none)                             ``max_stale=inf``: like the original, the
                                   last good value is served for as long as
                                   refreshes keep failing
=================================  ============================================
"""

from __future__ import annotations

import copy
import functools
import math
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, TypeVar

from . import cache as _engine_module
from .cache import SecretCache as _EngineCache
from .config import CacheConfig
from .errors import SecretCacheError, SecretDecodeError, SecretNotFoundError
from .source import error_code
from .value import JSONProblem, SecretValue, load_json_object

__all__ = [
    "InjectKeywordedSecretString",
    "InjectSecretString",
    "SecretCache",
    "SecretCacheConfig",
    "SecretCacheHook",
]

R = TypeVar("R")

_MAX_STAGES_PER_SECRET = 20  # the service allows 20 staging labels per secret


class SecretCacheHook:
    """Transforms what the cache keeps: ``put`` when a value is stored, ``get`` on each read.

    Subclass it and override both methods (hooks written for the original
    library's class work unchanged: any object with ``put`` and ``get`` does).

    The hook receives a ``GetSecretValue``-shaped dict (``ARN``, ``Name``,
    ``VersionId``, ``VersionStages``, ``CreatedDate`` and ``SecretString`` or
    ``SecretBinary``; no ``ResponseMetadata``) and whatever ``get`` returns is
    what the read returns from. Note that secretcache's engine keeps its own copy
    of the value underneath, so a hook that encrypts does not keep the plaintext
    out of this process's memory (the original library's hook does).
    """

    def put(self, obj: Any) -> Any:
        """What to keep for ``obj`` (a response dict)."""
        raise NotImplementedError(f"{type(self).__name__} must implement put()")

    def get(self, cached_obj: Any) -> Any:
        """The response dict back from what ``put`` returned."""
        raise NotImplementedError(f"{type(self).__name__} must implement get()")


class SecretCacheConfig:
    """The original's options, names and defaults; unknown options raise ``TypeError``.

    Each option is also an attribute. :meth:`to_cache_config` translates them
    for secretcache's engine.
    """

    OPTION_DEFAULTS: ClassVar[dict[str, Any]] = {
        "max_cache_size": 1024,
        "exception_retry_delay_base": 1,
        "exception_retry_growth_factor": 2,
        "exception_retry_delay_max": 3600,
        "default_version_stage": "AWSCURRENT",
        "secret_refresh_interval": 3600,
        "secret_cache_hook": None,
    }

    max_cache_size: int
    exception_retry_delay_base: float
    exception_retry_growth_factor: float
    exception_retry_delay_max: float
    default_version_stage: str
    secret_refresh_interval: float
    secret_cache_hook: Any

    def __init__(self, **kwargs: Any) -> None:
        for key in kwargs:
            if key not in self.OPTION_DEFAULTS:
                raise TypeError(f"SecretCacheConfig got an unexpected keyword argument {key!r}")
        for key, default in self.OPTION_DEFAULTS.items():
            setattr(self, key, kwargs.get(key, default))

    def to_cache_config(self) -> CacheConfig:
        """The equivalent :class:`secretcache.CacheConfig` (see the module docstring)."""
        return CacheConfig(
            ttl=float(self.secret_refresh_interval),
            jitter=0.5,
            max_size=int(self.max_cache_size),
            default_version_stage=self.default_version_stage,
            error_backoff_max=float(self.exception_retry_delay_max),
            max_stale=math.inf,
        )

    def __repr__(self) -> str:
        options = ", ".join(f"{key}={getattr(self, key)!r}" for key in self.OPTION_DEFAULTS)
        return f"SecretCacheConfig({options})"


class SecretCache:
    """``aws_secretsmanager_caching.SecretCache`` with secretcache's engine underneath.

    ``get_secret_string`` / ``get_secret_binary`` return ``None`` when the secret
    holds the other kind of value or no version carries the stage, and raise the
    botocore exception (``ClientError``, ``EndpointConnectionError``, ...) when
    the read fails, as the original does.
    """

    def __init__(self, config: SecretCacheConfig | None = None, client: Any = None) -> None:
        # The original deep-copies its config (hook included), so later changes to
        # the caller's object do not reach the cache; keep that.
        self._config = copy.deepcopy(config if config is not None else SecretCacheConfig())
        self._engine = _EngineCache(client, config=self._config.to_cache_config())
        self._stage: str = self._engine.config.default_version_stage
        self._hook: Any = self._config.secret_cache_hook
        # (secret_id, stage) -> (the SecretValue put through the hook, what put returned)
        self._hooked: dict[tuple[str, str], _Hooked] = {}
        # Labels other than the default read per secret, so refresh_secret_now can
        # renew them all (the original re-reads the secret's whole stage map).
        self._stages: dict[str, set[str]] = {}
        # (secret_id, stage) -> when refresh_secret_now last asked the service
        self._forced_at: dict[tuple[str, str], float] = {}

    @property
    def engine(self) -> _EngineCache:
        """The secretcache cache doing the work (for ``stats()``, ``prefetch()``...)."""
        return self._engine

    def get_secret_string(self, secret_id: str, version_stage: str | None = None) -> str | None:
        """The string value, or ``None`` (binary secret, or no version has the stage)."""
        if self._hook is None:
            value = self._read(secret_id, version_stage)
            return None if value is None else value.secret_string
        response = self._through_hook(secret_id, version_stage)
        return None if not response else response.get("SecretString")

    def get_secret_binary(self, secret_id: str, version_stage: str | None = None) -> bytes | None:
        """The binary value, or ``None`` (string secret, or no version has the stage)."""
        if self._hook is None:
            value = self._read(secret_id, version_stage)
            return None if value is None else value.secret_binary
        response = self._through_hook(secret_id, version_stage)
        return None if not response else response.get("SecretBinary")

    def refresh_secret_now(self, secret_id: str) -> bool:
        """Re-read the secret's default stage and every other stage read through this cache.

        ``True`` if that worked; failures are reported by the return value, not
        raised, as in the original. No sleep (the original waits 2.5-5 s first):
        concurrent calls share one API call, and each (secret, stage) is asked
        for at most once per ``min_refresh_interval`` (1 s) by this method --
        the first call always goes to the service, however recently the value
        was fetched, because its caller has usually just seen it rejected.
        """
        interval = self._engine.config.min_refresh_interval
        ok = True
        for stage in (self._stage, *sorted(self._stages.get(secret_id, ()))):
            key = (secret_id, stage)
            now = _engine_module.monotonic()
            last = self._forced_at.get(key)
            due = last is None or now - last >= interval
            if due:
                if key not in self._forced_at:
                    _bounded(self._forced_at, self._engine.config.max_size)
                self._forced_at[key] = now
            try:
                self._engine.force_refresh(secret_id, stage, min_interval=0.0 if due else interval)
            except SecretCacheError as exc:
                if not self._stage_missing(exc, secret_id, stage):
                    ok = False
            except (TypeError, ValueError):  # an id the service would refuse: False, as there
                return False
        return ok

    def __repr__(self) -> str:
        return f"<compat.SecretCache engine={self._engine!r}>"

    # ------------------------------------------------------------ internals

    def _note_stage(self, secret_id: str, stage: str) -> None:
        known = self._stages.get(secret_id)
        if known is None:
            _bounded(self._stages, self._engine.config.max_size)
            known = self._stages[secret_id] = set()
        if stage not in known and len(known) < _MAX_STAGES_PER_SECRET:
            known.add(stage)

    def _read(self, secret_id: str, version_stage: str | None) -> SecretValue | None:
        """The engine's record, ``None`` for a missing stage; raises what the original would.

        An argument the engine refuses before any call (an empty id, say) raises
        botocore's ``ParamValidationError``, as the original's first call does.
        """
        if version_stage and version_stage != self._stage:
            self._note_stage(secret_id, version_stage)
        try:
            # None, not the default stage's name: the engine's fastest lookup.
            return self._engine.get_secret(secret_id, version_stage or None)
        except SecretCacheError as exc:
            self._handle_failure(exc, secret_id, version_stage or self._stage)
            return None
        except (TypeError, ValueError) as exc:
            raise _invalid_request(exc, secret_id, version_stage) from None

    def _through_hook(self, secret_id: str, version_stage: str | None) -> Any:
        value = self._read(secret_id, version_stage)
        if value is None:
            return None
        stage = version_stage or self._stage
        key = (secret_id, stage)
        kept = self._hooked.get(key)
        if kept is None or kept.value is not value:
            if kept is None:
                _bounded(self._hooked, self._engine.config.max_size)
            kept = _Hooked(value, self._hook.put(_as_response(value)))
            self._hooked[key] = kept
        return copy.deepcopy(self._hook.get(kept.stored))

    def _handle_failure(self, exc: SecretCacheError, secret_id: str, stage: str) -> None:
        """Return (meaning: answer ``None``) for a missing stage; raise what the original would."""
        if self._stage_missing(exc, secret_id, stage):
            return
        raise _original_error(exc)

    def _stage_missing(self, exc: SecretCacheError, secret_id: str, stage: str) -> bool:
        """Whether the secret exists but no version carries ``stage``.

        The original learns this from ``DescribeSecret``; here it is read from the
        ``ResourceNotFoundException`` itself (the service's message names the
        staging label), or, where the message does not say (moto), from whether
        ``AWSCURRENT`` of the same secret can be read -- a ``GetSecretValue`` that
        is cached like any other read.
        """
        if not isinstance(exc, SecretNotFoundError):
            return False
        cause = exc.__cause__
        if cause is None or error_code(cause) != "ResourceNotFoundException":
            return False
        message = str(getattr(cause, "response", {}).get("Error", {}).get("Message", ""))
        if "staging label" in message.lower():
            return True
        if stage == "AWSCURRENT":
            return False
        try:
            self._engine.get_secret(secret_id, "AWSCURRENT")
        except SecretCacheError:
            return False
        return True


class _Hooked:
    """A value and what the hook's ``put`` made of it (often the response, secret included).

    What ``put`` returned is kept behind a function rather than in an attribute,
    and the ``repr`` shows neither: a compat cache is in the locals of every frame
    an error passes through on its way out, and error trackers that print locals
    (some walking their attributes) would otherwise print the stored responses.
    """

    __slots__ = ("_stored", "value")

    def __init__(self, value: SecretValue, stored: Any) -> None:
        self.value = value
        self._stored: Callable[[], Any] = lambda: stored

    @property
    def stored(self) -> Any:
        return self._stored()

    def __repr__(self) -> str:
        return f"<hooked {self.value!r}>"


def _bounded(table: dict[Any, Any], limit: int) -> None:
    """Make room for one more key: drop the oldest inserted ones beyond ``limit``."""
    while len(table) >= limit:
        try:
            oldest = next(iter(table))
        except (StopIteration, RuntimeError):  # emptied or resized by another thread
            return
        table.pop(oldest, None)


def _original_error(exc: SecretCacheError) -> BaseException:
    """The botocore exception behind ``exc`` (a fresh copy), else ``exc`` itself."""
    cause = exc.__cause__
    if cause is None:
        return exc
    from botocore.exceptions import BotoCoreError, ClientError

    if isinstance(cause, ClientError):
        fresh: BaseException = type(cause)(cause.response, cause.operation_name)
    elif isinstance(cause, BotoCoreError):
        try:
            fresh = type(cause)(**getattr(cause, "kwargs", {}))
        except Exception:
            fresh = cause.with_traceback(None)
    else:
        return exc
    fresh.__cause__ = exc  # keeps secretcache's account (secret id, stage) in the chain
    return fresh


def _invalid_request(
    exc: TypeError | ValueError, secret_id: object, version_stage: object
) -> BaseException:
    """botocore's ``ParamValidationError`` for what its validator refuses, else ``exc``."""
    from botocore.exceptions import ParamValidationError
    from botocore.validate import ParamValidator

    params: dict[str, object] = {"SecretId": secret_id}
    if version_stage:
        params["VersionStage"] = version_stage
    shape = _get_secret_value_shape()
    report = ParamValidator().validate(params, shape)
    if report.has_errors():
        return ParamValidationError(report=report.generate_report())
    return exc


@functools.cache
def _get_secret_value_shape() -> Any:
    """``GetSecretValue``'s input shape from botocore's bundled model (no client, no region)."""
    import botocore.session

    model = botocore.session.get_session().get_service_model("secretsmanager")
    return model.operation_model("GetSecretValue").input_shape


def _as_response(value: SecretValue) -> dict[str, Any]:
    """A ``GetSecretValue``-shaped dict of ``value`` for a ``SecretCacheHook``."""
    response: dict[str, Any] = {
        "ARN": value.arn,
        "Name": value.name,
        "VersionId": value.version_id,
        "VersionStages": list(value.version_stages),
        "CreatedDate": value.created_date,
    }
    if value.secret_binary is not None:
        response["SecretBinary"] = value.secret_binary
    else:
        response["SecretString"] = value.secret_string
    return response


class InjectSecretString:
    """Decorator: pass the secret's string as the first argument (after ``self`` on methods).

    ``self`` is recognised the way the original does it: the first argument's
    class has an attribute named like the function.
    """

    def __init__(self, secret_id: str, cache: Any) -> None:
        self.cache = cache
        self.secret_id = secret_id

    def __call__(self, func: Callable[..., R]) -> Callable[..., R]:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> R:
            secret = self.cache.get_secret_string(secret_id=self.secret_id)
            if args and hasattr(type(args[0]), func.__name__):
                return func(args[0], secret, *args[1:], **kwargs)
            return func(secret, *args, **kwargs)

        return wrapper


class InjectKeywordedSecretString:
    """Decorator: pass fields of a JSON secret as keyword arguments, ``param="json_key"``.

    As in the original, a value that is not valid JSON or lacks a key raises
    ``RuntimeError`` (naming the key, never the value).
    """

    def __init__(self, secret_id: str, cache: Any, **kwargs: str) -> None:
        self.cache = cache
        self.kwarg_map = kwargs
        self.secret_id = secret_id

    def __call__(self, func: Callable[..., R]) -> Callable[..., R]:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> R:
            resolved = self._resolve()
            if isinstance(resolved, BaseException):
                raise resolved
            return func(*args, **resolved, **kwargs)

        return wrapper

    def _resolve(self) -> dict[str, Any] | BaseException:
        """The keyword arguments, or the error to raise.

        Returned rather than raised: this frame holds the whole document, and an
        error tracker shows the locals of every frame an error passes through.
        The values are the read-only ones ``SecretCache.get_secret_json`` hands
        out (nested objects and arrays included).
        """
        document = self._document()
        if isinstance(document, BaseException):
            return document
        resolved: dict[str, Any] = {}
        for parameter, key in self.kwarg_map.items():
            if not isinstance(document, Mapping) or key not in document:
                return RuntimeError(f"secret {self.secret_id!r} has no JSON key {key!r}")
            resolved[parameter] = document[key]
        return resolved

    def _document(self) -> Any:
        """The parsed secret (frozen), or the error to raise; never raises with the text."""
        cache = self.cache
        text: Any = None
        if isinstance(cache, SecretCache) and cache._hook is None:
            value = cache._read(self.secret_id, None)
            if value is not None:
                # Parsed once per fetched version by the engine instead of on every call.
                parsed = value._json_or_error(self.secret_id, cache._stage, None)
                if not isinstance(parsed, SecretDecodeError):
                    return parsed
                text = value.secret_string
        else:
            text = cache.get_secret_string(secret_id=self.secret_id)
        if not isinstance(text, str):
            # What json.loads says about it in the original (a binary secret, a missing stage).
            return TypeError(
                f"the JSON object must be str, bytes or bytearray, not {type(text).__name__}"
            )
        loaded = load_json_object(text)
        if isinstance(loaded, JSONProblem) and not loaded.is_json:
            return RuntimeError(f"secret {self.secret_id!r} is not valid JSON")
        return loaded
