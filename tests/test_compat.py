"""secretcache.compat side by side with aws-secretsmanager-caching 1.2.0.

Every scenario in the first part runs against both libraries (the ``impl``
fixture) and asserts the same observable result; the second part pins down
what compat does better (API calls, no sleeping) and the differences the
migration guide documents.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import aws_secretsmanager_caching as original
import aws_secretsmanager_caching.cache.items as original_items
import boto3
import pytest
from aws_secretsmanager_caching.cache.secret_cache_hook import (
    SecretCacheHook as OriginalHook,
)
from botocore.exceptions import ClientError

import secretcache.cache as cache_module
import secretcache.compat as compat
from secretcache import CacheConfig
from tests.caught import raised
from tests.helpers import CallLog, FaultInjector, error_response
from tests.leakcheck import find_leaks

REGION = "us-east-1"


@dataclass
class Impl:
    name: str
    SecretCache: Any
    SecretCacheConfig: Any
    InjectSecretString: Any
    InjectKeywordedSecretString: Any
    SecretCacheHook: Any


ORIGINAL = Impl(
    "original",
    original.SecretCache,
    original.SecretCacheConfig,
    original.InjectSecretString,
    original.InjectKeywordedSecretString,
    OriginalHook,
)
COMPAT = Impl(
    "compat",
    compat.SecretCache,
    compat.SecretCacheConfig,
    compat.InjectSecretString,
    compat.InjectKeywordedSecretString,
    compat.SecretCacheHook,
)


@pytest.fixture(params=[ORIGINAL, COMPAT], ids=lambda impl: impl.name)
def impl(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Impl:
    # The original sleeps 2.5-5 s in refresh_secret_now; take the sleep out of its module only.
    monkeypatch.setattr(original_items, "time", SimpleNamespace(sleep=lambda seconds: None))
    return request.param  # type: ignore[no-any-return]


def fp(value: object) -> str | None:
    """A fingerprint, so a failing comparison never prints a secret value."""
    if value is None:
        return None
    data = value if isinstance(value, bytes) else str(value).encode()
    return hashlib.sha256(data).hexdigest()[:12]


API_KEY = f"CANARY-{uuid.uuid4()}"
BLOB = b"\x00\x01CANARY" + uuid.uuid4().bytes
DB = {"username": "app", "password": f"CANARY-{uuid.uuid4()}", "port": 5432}


@pytest.fixture
def admin(sm: Any) -> Any:
    sm.create_secret(Name="api", SecretString=API_KEY)
    sm.create_secret(Name="blob", SecretBinary=BLOB)
    sm.create_secret(Name="db", SecretString=json.dumps(DB))
    sm.create_secret(Name="text", SecretString="not json at all")
    return sm


@pytest.fixture
def reader(admin: Any) -> Any:
    """The application's own client (calls on it are the ones counted)."""
    return boto3.client("secretsmanager", region_name=REGION)


def rotate(client: Any, name: str, value: str) -> str:
    current = client.get_secret_value(SecretId=name, VersionStage="AWSCURRENT")["VersionId"]
    token = str(uuid.uuid4())
    client.put_secret_value(
        SecretId=name, ClientRequestToken=token, SecretString=value, VersionStages=["AWSPENDING"]
    )
    client.update_secret_version_stage(
        SecretId=name, VersionStage="AWSCURRENT", MoveToVersionId=token, RemoveFromVersionId=current
    )
    return token


# ------------------------------------------------------------------ same results


def test_config_options_and_defaults_are_the_same(impl: Impl) -> None:
    config = impl.SecretCacheConfig()
    assert impl.SecretCacheConfig.OPTION_DEFAULTS == ORIGINAL.SecretCacheConfig.OPTION_DEFAULTS
    for option, default in ORIGINAL.SecretCacheConfig.OPTION_DEFAULTS.items():
        assert getattr(config, option) == default, option
    custom = impl.SecretCacheConfig(secret_refresh_interval=60, max_cache_size=5)
    assert (custom.secret_refresh_interval, custom.max_cache_size) == (60, 5)
    with pytest.raises(TypeError):
        impl.SecretCacheConfig(refresh_interval=60)


def test_string_and_binary_reads(impl: Impl, reader: Any) -> None:
    cache = impl.SecretCache(client=reader)
    assert fp(cache.get_secret_string("api")) == fp(API_KEY)
    assert fp(cache.get_secret_binary("blob")) == fp(BLOB)
    assert cache.get_secret_binary("api") is None  # the other kind reads as None
    assert cache.get_secret_string("blob") is None
    assert fp(cache.get_secret_string("api", "AWSCURRENT")) == fp(API_KEY)
    assert fp(cache.get_secret_string("api", "")) == fp(API_KEY)  # falsy stage: the default


def test_positional_constructor_arguments(impl: Impl, reader: Any) -> None:
    cache = impl.SecretCache(impl.SecretCacheConfig(), reader)
    assert fp(cache.get_secret_string("api")) == fp(API_KEY)


def test_reads_are_cached(impl: Impl, reader: Any) -> None:
    cache = impl.SecretCache(client=reader)
    cache.get_secret_string("api")
    calls = CallLog(reader)
    for _ in range(20):
        cache.get_secret_string("api")
    assert calls.count() == 0


def test_stage_pinning_across_a_rotation(impl: Impl, reader: Any, admin: Any) -> None:
    new = f"CANARY-{uuid.uuid4()}"
    rotate(admin, "api", new)
    cache = impl.SecretCache(client=reader)
    assert fp(cache.get_secret_string("api")) == fp(new)
    assert fp(cache.get_secret_string("api", "AWSCURRENT")) == fp(new)
    assert fp(cache.get_secret_string("api", "AWSPREVIOUS")) == fp(API_KEY)


def test_default_version_stage_option(impl: Impl, reader: Any, admin: Any) -> None:
    rotate(admin, "api", f"CANARY-{uuid.uuid4()}")
    cache = impl.SecretCache(
        config=impl.SecretCacheConfig(default_version_stage="AWSPREVIOUS"), client=reader
    )
    assert fp(cache.get_secret_string("api")) == fp(API_KEY)


def test_missing_stage_reads_as_none(impl: Impl, reader: Any) -> None:
    cache = impl.SecretCache(client=reader)
    assert cache.get_secret_string("api", "AWSPENDING") is None
    assert cache.get_secret_binary("blob", "NO-SUCH-LABEL") is None
    assert cache.get_secret_string("api", "AWSPENDING") is None  # and again, from the cache


@pytest.mark.parametrize("method", ["get_secret_string", "get_secret_binary"])
def test_missing_secret_raises_the_same_botocore_error(
    impl: Impl, reader: Any, method: str
) -> None:
    cache = impl.SecretCache(client=reader)
    for _ in range(2):  # the first read and the remembered failure
        with pytest.raises(ClientError) as caught:
            getattr(cache, method)("does-not-exist")
        assert type(caught.value).__name__ == "ResourceNotFoundException"
        assert caught.value.response["Error"]["Code"] == "ResourceNotFoundException"
        assert caught.value.operation_name in ("DescribeSecret", "GetSecretValue")
        # ...and it is the modeled exception class callers catch
        assert isinstance(caught.value, reader.exceptions.ResourceNotFoundException)


def test_deleted_secret_raises_the_same_botocore_error(impl: Impl, reader: Any, admin: Any) -> None:
    admin.delete_secret(SecretId="api")
    cache = impl.SecretCache(client=reader)
    with pytest.raises(reader.exceptions.InvalidRequestException):
        cache.get_secret_string("api")


def test_access_denied_raises_client_error(impl: Impl, reader: Any) -> None:
    faults = FaultInjector(reader, operation="*")
    faults.inject("AccessDeniedException", times=None)
    cache = impl.SecretCache(client=reader)
    with pytest.raises(ClientError) as caught:
        cache.get_secret_string("api")
    assert caught.value.response["Error"]["Code"] == "AccessDeniedException"


def test_inject_secret_string_function_and_method(impl: Impl, reader: Any) -> None:
    cache = impl.SecretCache(client=reader)

    @impl.InjectSecretString("api", cache)
    def call(key: str, payload: str, *, flag: bool = False) -> tuple[str | None, str, bool]:
        return fp(key), payload, flag

    assert call("body", flag=True) == (fp(API_KEY), "body", True)
    assert call.__name__ == "call"

    class Client:
        @impl.InjectSecretString("api", cache)
        def send(self, key: str, payload: str) -> tuple[str, str | None, str]:
            return type(self).__name__, fp(key), payload

    assert Client().send("body") == ("Client", fp(API_KEY), "body")


def test_inject_keyworded_secret_string(impl: Impl, reader: Any) -> None:
    cache = impl.SecretCache(client=reader)

    @impl.InjectKeywordedSecretString("db", cache, user="username", pwd="password")
    def connect(host: str, *, user: str, pwd: str, port: int = 1) -> tuple[str, str, Any, int]:
        return host, user, fp(pwd), port

    assert connect("h", port=2) == ("h", "app", fp(DB["password"]), 2)
    assert connect("h") == ("h", "app", fp(DB["password"]), 1)

    with pytest.raises(TypeError):
        connect("h", user="twice")  # injected and passed: Python's own error, in both

    @impl.InjectKeywordedSecretString("db", cache, missing="no-such-key")
    def needs_missing(*, missing: str) -> str:
        return missing

    with pytest.raises(RuntimeError) as caught:
        needs_missing()
    leaked = DB["password"] in str(caught.value)
    assert not leaked, "the error quotes the secret"
    assert "no-such-key" in str(caught.value)

    @impl.InjectKeywordedSecretString("text", cache, value="k")
    def needs_json(*, value: str) -> str:
        return value

    with pytest.raises(RuntimeError):
        needs_json()

    @impl.InjectKeywordedSecretString("blob", cache, value="k")
    def from_binary(*, value: str) -> str:
        return value

    with pytest.raises(TypeError):  # json.loads(None) in the original
        from_binary()


def test_keyworded_decorator_sees_a_rotation_after_refresh(
    impl: Impl, reader: Any, admin: Any
) -> None:
    cache = impl.SecretCache(client=reader)

    @impl.InjectKeywordedSecretString("db", cache, pwd="password")
    def password(*, pwd: str) -> str | None:
        return fp(pwd)

    assert password() == fp(DB["password"])
    new = dict(DB, password=f"CANARY-{uuid.uuid4()}")
    rotate(admin, "db", json.dumps(new))
    assert cache.refresh_secret_now("db") is True
    assert password() == fp(new["password"])


class Reverser:
    """A hook that keeps the value reversed, the way an encrypting hook would."""

    def put(self, obj: dict[str, Any]) -> dict[str, Any]:
        kept = dict(obj)
        if "SecretString" in kept:
            kept["SecretString"] = kept["SecretString"][::-1]
        if "SecretBinary" in kept:
            kept["SecretBinary"] = kept["SecretBinary"][::-1]
        return {"sealed": kept}

    def get(self, cached: dict[str, Any]) -> dict[str, Any]:
        obj = dict(cached["sealed"])
        if "SecretString" in obj:
            obj["SecretString"] = obj["SecretString"][::-1]
        if "SecretBinary" in obj:
            obj["SecretBinary"] = obj["SecretBinary"][::-1]
        return obj


class Marker:
    """A hook whose get changes what the reader sees (proves get's answer is used)."""

    def put(self, obj: dict[str, Any]) -> dict[str, Any]:
        return dict(obj)

    def get(self, cached: dict[str, Any]) -> dict[str, Any]:
        obj = dict(cached)
        if "SecretString" in obj:
            obj["SecretString"] = "marked:" + obj["SecretString"]
        return obj


def test_secret_cache_hook(impl: Impl, reader: Any) -> None:
    hook_base = impl.SecretCacheHook

    class Sealing(Reverser, hook_base):  # type: ignore[misc, valid-type]
        pass

    cache = impl.SecretCache(
        config=impl.SecretCacheConfig(secret_cache_hook=Sealing()), client=reader
    )
    assert fp(cache.get_secret_string("api")) == fp(API_KEY)
    assert fp(cache.get_secret_binary("blob")) == fp(BLOB)
    assert cache.get_secret_string("api", "AWSPENDING") is None

    marked = impl.SecretCache(
        config=impl.SecretCacheConfig(secret_cache_hook=Marker()), client=reader
    )
    assert fp(marked.get_secret_string("api")) == fp("marked:" + API_KEY)
    assert fp(marked.get_secret_string("api")) == fp("marked:" + API_KEY)


def test_hooks_written_for_the_original_work_with_compat(reader: Any) -> None:
    class Sealing(Reverser, OriginalHook):
        pass

    cache = compat.SecretCache(
        config=compat.SecretCacheConfig(secret_cache_hook=Sealing()), client=reader
    )
    assert fp(cache.get_secret_string("api")) == fp(API_KEY)


def test_refresh_secret_now(impl: Impl, reader: Any, admin: Any) -> None:
    cache = impl.SecretCache(client=reader)
    assert fp(cache.get_secret_string("api")) == fp(API_KEY)
    new = f"CANARY-{uuid.uuid4()}"
    rotate(admin, "api", new)
    assert fp(cache.get_secret_string("api")) == fp(API_KEY)  # cached until the refresh
    assert cache.refresh_secret_now("api") is True
    assert fp(cache.get_secret_string("api")) == fp(new)
    assert fp(cache.get_secret_string("api", "AWSPREVIOUS")) == fp(API_KEY)
    assert cache.refresh_secret_now("never-read-before") is False  # does not exist
    assert cache.refresh_secret_now("blob") is True  # never read, exists


def test_refresh_failure_is_reported_not_raised(impl: Impl, reader: Any) -> None:
    cache = impl.SecretCache(client=reader)
    cache.get_secret_string("api")
    faults = FaultInjector(reader, operation="*")
    faults.inject("AccessDeniedException", times=None)
    assert cache.refresh_secret_now("api") is False
    faults.clear()
    assert fp(cache.get_secret_string("api")) == fp(API_KEY)  # the last good value stays


# ------------------------------------------------------------ compat's own engine


def test_compat_first_read_is_one_call_original_two(reader: Any) -> None:
    calls = CallLog(reader)
    original.SecretCache(client=reader).get_secret_string("api")
    assert calls.by_operation() == {"DescribeSecret": 1, "GetSecretValue": 1}

    calls = CallLog(boto3_reader := boto3.client("secretsmanager", region_name=REGION))
    cache = compat.SecretCache(client=boto3_reader)
    cache.get_secret_string("api")
    assert calls.by_operation() == {"GetSecretValue": 1}
    assert calls.calls[0][1] == {"SecretId": "api", "VersionStage": "AWSCURRENT"}
    cache.get_secret_string("api", "AWSPREVIOUS")  # a missing stage: still no DescribeSecret
    assert calls.count("DescribeSecret") == 0
    assert cache.engine.stats().api_calls == calls.count()


def test_compat_refresh_secret_now_does_not_sleep(
    reader: Any, admin: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = compat.SecretCache(client=reader)
    cache.get_secret_string("api")

    def no_sleeping(seconds: float) -> None:
        raise AssertionError(f"refresh_secret_now slept {seconds} s")

    monkeypatch.setattr(time, "sleep", no_sleeping)
    calls = CallLog(reader)
    assert cache.refresh_secret_now("api") is True
    assert calls.count("GetSecretValue") == 1
    # A caller looping on it is held to min_refresh_interval for the same version.
    for _ in range(5):
        assert cache.refresh_secret_now("api") is True
    assert calls.count() == 1


def test_compat_refresh_secret_now_covers_every_cached_stage(reader: Any, admin: Any) -> None:
    cache = compat.SecretCache(client=reader)
    cache.get_secret_string("api")
    assert cache.get_secret_string("api", "AWSPENDING") is None
    token = str(uuid.uuid4())
    pending = f"CANARY-{uuid.uuid4()}"
    admin.put_secret_value(
        SecretId="api", ClientRequestToken=token, SecretString=pending, VersionStages=["AWSPENDING"]
    )
    assert cache.refresh_secret_now("api") is True
    assert fp(cache.get_secret_string("api", "AWSPENDING")) == fp(pending)
    assert fp(cache.get_secret_string("api")) == fp(API_KEY)


def test_compat_config_mapping() -> None:
    config = compat.SecretCacheConfig(
        max_cache_size=10,
        secret_refresh_interval=120,
        exception_retry_delay_max=30,
        default_version_stage="BLUE",
    ).to_cache_config()
    assert isinstance(config, CacheConfig)
    assert (config.max_size, config.ttl, config.jitter) == (10, 120.0, 0.5)
    assert (config.error_backoff_max, config.default_version_stage) == (30.0, "BLUE")
    assert config.max_stale == float("inf")
    defaults = compat.SecretCacheConfig().to_cache_config()
    assert (defaults.ttl, defaults.max_size, defaults.error_backoff_max) == (3600.0, 1024, 3600.0)


def test_compat_deep_copies_its_config(reader: Any) -> None:
    config = compat.SecretCacheConfig()
    cache = compat.SecretCache(config=config, client=reader)
    config.default_version_stage = "AWSPREVIOUS"  # too late: the original ignores it too
    assert fp(cache.get_secret_string("api")) == fp(API_KEY)


def test_compat_serves_the_last_value_while_refreshes_fail(
    reader: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = compat.SecretCache(
        config=compat.SecretCacheConfig(secret_refresh_interval=60), client=reader
    )
    cache.get_secret_string("api")
    faults = FaultInjector(reader)
    faults.inject("InternalServiceError", status=500, times=None)
    start = cache_module.monotonic()
    monkeypatch.setattr(cache_module, "monotonic", lambda: start + 7 * 86400.0)  # a week later
    assert fp(cache.get_secret_string("api")) == fp(API_KEY)


def test_compat_ttl_refresh_sees_a_rotation(
    reader: Any, admin: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = compat.SecretCache(
        config=compat.SecretCacheConfig(secret_refresh_interval=60), client=reader
    )
    cache.get_secret_string("api")
    new = f"CANARY-{uuid.uuid4()}"
    rotate(admin, "api", new)
    start = cache_module.monotonic()
    monkeypatch.setattr(cache_module, "monotonic", lambda: start + 61.0)
    assert fp(cache.get_secret_string("api")) == fp(new)


def test_known_difference_empty_secret_under_moto(reader: Any, admin: Any) -> None:
    """A secret with no version at all: the original answers None from DescribeSecret.

    Without DescribeSecret, compat tells "no such stage" from "no such secret" by
    the service's message (AWS names the staging label) or by reading
    AWSCURRENT; moto's message names neither, so under moto compat raises here.
    """
    admin.create_secret(Name="empty")
    assert original.SecretCache(client=reader).get_secret_string("empty") is None
    with pytest.raises(reader.exceptions.ResourceNotFoundException):
        compat.SecretCache(client=reader).get_secret_string("empty")


def test_staging_label_message_means_none(reader: Any) -> None:
    """AWS's own wording for a missing stage is recognised without a second call."""

    def not_found(**_: Any) -> Any:
        http, parsed = error_response("ResourceNotFoundException")
        parsed["Error"]["Message"] = (
            "Secrets Manager can't find the specified secret value for staging label: X"
        )
        return http, parsed

    reader.meta.events.register("before-call.secrets-manager.GetSecretValue", not_found)
    cache = compat.SecretCache(client=reader)
    calls = CallLog(reader)
    assert cache.get_secret_string("api", "X") is None
    assert calls.count() == 1


def test_errors_carry_no_secret_value(reader: Any) -> None:
    cache = compat.SecretCache(client=reader)

    @compat.InjectKeywordedSecretString("db", cache, missing="nope")
    def f(*, missing: str) -> str:
        return missing

    with pytest.raises(RuntimeError) as caught:
        f()
    seen = repr(caught.value) + str(caught.value) + repr(caught.value.__cause__)
    leaked = "CANARY" in seen or "CANARY" in repr(cache) + repr(compat.SecretCacheConfig())
    assert not leaked, "a secret value leaked"


# ------------------------------------------------ argument errors and frames (issues 9.9, 10)


@pytest.mark.parametrize("secret_id", ["", None])
def test_an_id_the_service_refuses_raises_param_validation_error(
    impl: Impl, reader: Any, secret_id: Any
) -> None:
    from botocore.exceptions import ParamValidationError

    cache = impl.SecretCache(client=reader)
    calls = CallLog(reader)
    for read in (cache.get_secret_string, cache.get_secret_binary):
        with pytest.raises(ParamValidationError, match="SecretId") as caught:
            read(secret_id)
        assert "Parameter validation failed" in str(caught.value)
    assert cache.refresh_secret_now(secret_id) is False
    assert calls.count() == 0 or impl is ORIGINAL


def test_an_id_refused_by_the_validator_reads_the_same_in_both(reader: Any) -> None:
    from botocore.exceptions import ParamValidationError

    messages = []
    for impl in (ORIGINAL, COMPAT):
        with pytest.raises(ParamValidationError) as caught:
            impl.SecretCache(client=reader).get_secret_string("")
        messages.append(str(caught.value))
    assert messages[0] == messages[1]


CANARY = f"CANARY-\u00e9\u0142\u4e2d-{uuid.uuid4().hex}"


@pytest.mark.parametrize("hooked", [False, True], ids=["engine", "hook"])
def test_keyworded_errors_keep_no_part_of_the_document_in_any_frame(
    reader: Any, admin: Any, hooked: bool
) -> None:
    received = f"received-{uuid.uuid4().hex}"
    admin.create_secret(
        Name="canary/doc",
        SecretString=json.dumps({"password": received, "other": CANARY}, ensure_ascii=False),
    )
    admin.create_secret(Name="canary/bad", SecretString='{"password": "' + CANARY + '", oops')
    admin.create_secret(Name="canary/array", SecretString=json.dumps([CANARY], ensure_ascii=False))

    class Hook(compat.SecretCacheHook):  # type: ignore[misc]
        def put(self, obj: Any) -> Any:
            return obj

        def get(self, cached_obj: Any) -> Any:
            return cached_obj

    config = compat.SecretCacheConfig(secret_cache_hook=Hook() if hooked else None)
    cache = compat.SecretCache(config=config, client=reader)

    @compat.InjectKeywordedSecretString("canary/doc", cache, x="password", y="missing")
    def missing(x: str, y: str) -> None: ...

    @compat.InjectKeywordedSecretString("canary/bad", cache, x="password")
    def bad(x: str) -> None: ...

    @compat.InjectKeywordedSecretString("canary/array", cache, x="password")
    def array(x: str) -> None: ...

    @compat.InjectKeywordedSecretString("canary/doc", cache, x="password")
    def fails(x: str) -> None:
        raise ValueError("the function's own failure")

    for call in (missing, bad, array):
        error = raised(call)
        assert isinstance(error, RuntimeError), type(error)
        leaks = find_leaks(error, [CANARY])
        assert not leaks, f"{call.__name__}: the secret is reachable via {leaks}"
    leaks = find_leaks(raised(fails), [CANARY])
    assert not leaks, f"a value the function does not receive is reachable via {leaks}"


def test_keyworded_values_are_read_only(reader: Any, admin: Any) -> None:
    admin.create_secret(Name="nested", SecretString=json.dumps({"tls": {"pins": ["a"]}}))
    cache = compat.SecretCache(client=reader)

    @compat.InjectKeywordedSecretString("nested", cache, tls="tls")
    def use(tls: Any) -> Any:
        return tls

    tls = use()
    assert tls == {"pins": ["a"]}
    with pytest.raises(TypeError):
        tls["pins"] = []
    with pytest.raises(AttributeError):
        tls["pins"].append("b")
    assert use() == {"pins": ["a"]}
