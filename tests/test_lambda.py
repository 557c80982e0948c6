"""with_secrets, in a simulated Lambda: import the handler module (init), then invoke it.

The handler module is written to a temporary directory and imported the way
the Lambda runtime imports it; API calls are counted on the client through
botocore's event hooks.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import json
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest

import secretcache.cache as cache_module
from secretcache import (
    CacheConfig,
    SecretCache,
    SecretDecodeError,
    SecretNotFoundError,
    default_cache,
)
from secretcache.aws_lambda import with_secrets
from tests.caught import raised
from tests.helpers import CallLog
from tests.leakcheck import find_leaks

TTL = 300.0

FIVE = {
    "db": "prod/db",
    "api_key": "prod/api-key",
    "signing_key": "prod/signing-key",
    "queue": "prod/queue",
    "webhook": "prod/webhook-token",
}


def digest(value: object) -> str:
    """Compare values through this, so a failing assertion never prints a secret."""
    if isinstance(value, Mapping):
        value = json.dumps(dict(value), sort_keys=True)
    data = value if isinstance(value, bytes) else str(value).encode()
    return hashlib.sha256(data).hexdigest()[:16]


@pytest.fixture
def secrets(sm: Any) -> dict[str, Any]:
    """Five secrets of the three kinds a handler meets; returns what each holds."""
    held: dict[str, Any] = {
        "prod/db": {"username": "app", "password": f"CANARY-{uuid.uuid4()}", "port": 5432},
        "prod/api-key": f"CANARY-{uuid.uuid4()}",
        "prod/signing-key": b"\x00\x01CANARY" + uuid.uuid4().bytes,
        "prod/queue": {"url": "https://sqs.example/q", "token": f"CANARY-{uuid.uuid4()}"},
        "prod/webhook-token": "{not json, just a token that starts with a brace",
    }
    for name, value in held.items():
        if isinstance(value, bytes):
            sm.create_secret(Name=name, SecretBinary=value)
        elif isinstance(value, dict):
            sm.create_secret(Name=name, SecretString=json.dumps(value))
        else:
            sm.create_secret(Name=name, SecretString=value)
    return held


@pytest.fixture
def lambda_cache(sm: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[SecretCache, CallLog]]:
    """A fresh process-wide default cache (what a handler gets), with its calls counted."""
    monkeypatch.setattr(cache_module, "_default", None)
    cache = default_cache()
    assert cache.stats().api_calls == 0
    calls = CallLog(cache.client)
    yield cache, calls


HANDLER = """
from secretcache.aws_lambda import with_secrets

INVOCATIONS = []

@with_secrets({kwargs})
def handler(event, context, **secrets):
    INVOCATIONS.append(sorted(secrets))
    return secrets
"""


def import_handler(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **named: str) -> ModuleType:
    """Write a handler module and import it, as the Lambda runtime does at init."""
    name = f"handler_{uuid.uuid4().hex}"
    kwargs = ", ".join(f"{key}={value!r}" for key, value in named.items())
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(HANDLER.format(kwargs=kwargs)))
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        return importlib.import_module(name)
    finally:
        sys.modules.pop(name, None)


def test_cold_start_with_five_secrets_is_one_batch_call(
    secrets: dict[str, Any],
    lambda_cache: tuple[SecretCache, CallLog],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cache, calls = lambda_cache
    module = import_handler(tmp_path, monkeypatch, **FIVE)
    assert calls.by_operation() == {"BatchGetSecretValue": 1}
    assert cache.stats().api_calls == 1
    assert module.INVOCATIONS == []  # init fetched; nothing invoked yet

    received = module.handler({"n": 0}, None)
    assert sorted(received) == sorted(FIVE)
    for name, secret_id in FIVE.items():
        expected = secrets[secret_id]
        if isinstance(expected, dict):
            assert isinstance(received[name], Mapping), name
            with pytest.raises(TypeError):
                received[name]["password"] = "x"  # read-only
        else:
            assert type(received[name]) is type(expected), name
        assert digest(received[name]) == digest(expected), f"{name}: wrong value"
    assert calls.count() == 1


def test_hundred_warm_invocations_make_no_call(
    secrets: dict[str, Any],
    lambda_cache: tuple[SecretCache, CallLog],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cache, calls = lambda_cache
    module = import_handler(tmp_path, monkeypatch, **FIVE)
    cold = calls.count()
    hits = cache.stats().hits
    first = module.handler({}, None)
    for n in range(99):
        again = module.handler({"n": n}, None)
        assert all(again[name] is first[name] for name in FIVE), "values re-derived per call"
    assert calls.count() - cold == 0
    assert cache.stats().hits - hits == 100 * len(FIVE)
    assert len(module.INVOCATIONS) == 100


def test_after_ttl_expiry_each_secret_is_refreshed_once(
    secrets: dict[str, Any],
    sm: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reader = boto3.client("secretsmanager", region_name="us-east-1")  # not the admin's
    cache = SecretCache(reader, config=CacheConfig(ttl=TTL, jitter=0.0))
    calls = CallLog(reader)
    monkeypatch.setattr(cache_module, "_default", cache)
    module = import_handler(tmp_path, monkeypatch, **FIVE)
    for _ in range(10):
        module.handler({}, None)
    assert calls.by_operation() == {"BatchGetSecretValue": 1}

    new_key = f"CANARY-{uuid.uuid4()}"
    sm.put_secret_value(SecretId="prod/api-key", SecretString=new_key)  # rotated meanwhile
    still = module.handler({}, None)
    assert digest(still["api_key"]) == digest(secrets["prod/api-key"]), "refreshed before TTL"

    start = cache_module.monotonic()
    monkeypatch.setattr(cache_module, "monotonic", lambda: start + TTL + 1.0)
    fresh = module.handler({}, None)
    assert calls.by_operation() == {"BatchGetSecretValue": 1, "GetSecretValue": len(FIVE)}
    assert digest(fresh["api_key"]) == digest(new_key), "the rotated key was not passed"
    assert digest(fresh["db"]) == digest(secrets["prod/db"])

    for _ in range(100):
        module.handler({}, None)
    assert calls.count() == 1 + len(FIVE), "warm again: no further calls"


def test_more_than_twenty_secrets_take_one_batch_call_per_twenty(
    sm: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    named = {}
    for i in range(25):
        sm.create_secret(Name=f"app/s{i}", SecretString=f"value-{i}")
        named[f"s{i}"] = f"app/s{i}"
    cache = SecretCache(sm)
    calls = CallLog(sm)
    monkeypatch.setattr(cache_module, "_default", cache)
    module = import_handler(tmp_path, monkeypatch, **named)
    assert calls.by_operation() == {"BatchGetSecretValue": 2}
    received = module.handler({}, None)
    assert received["s24"] == "value-24"
    assert calls.count() == 2


def test_explicit_cache_and_shared_secret_ids(secrets: dict[str, Any], sm: Any) -> None:
    cache = SecretCache(sm)
    calls = CallLog(sm)

    @with_secrets(cache=cache, key="prod/api-key", same_key="prod/api-key", db="prod/db")
    def handler(event: Any, context: Any, *, key: str, same_key: str, db: Mapping[str, Any]) -> str:
        shared = key is same_key
        assert shared, "one secret id, two different values"
        return str(db["username"])

    assert calls.by_operation() == {"BatchGetSecretValue": 1}
    assert calls.calls[0][1]["SecretIdList"] == ["prod/api-key", "prod/db"]
    assert handler({}, None) == "app"
    assert handler.__name__ == "handler"
    assert calls.count() == 1


def test_a_caller_supplied_keyword_wins(secrets: dict[str, Any], sm: Any) -> None:
    cache = SecretCache(sm)

    @with_secrets(cache=cache, api_key="prod/api-key")
    def handler(event: Any, context: Any, *, api_key: str) -> str:
        return api_key

    assert handler({}, None, api_key="injected-by-a-test") == "injected-by-a-test"


def test_string_shapes(sm: Any) -> None:
    shapes = {
        "list": "[1, 2, 3]",
        "number": "42",
        "quoted": '"just a string"',
        "broken": '{"unterminated": ',
        "spaced": '  {"k": "v"}',
    }
    for name, text in shapes.items():
        sm.create_secret(Name=f"shape/{name}", SecretString=text)
    cache = SecretCache(sm)

    @with_secrets(cache=cache, **{name: f"shape/{name}" for name in shapes})
    def handler(event: Any, context: Any, **values: Any) -> dict[str, Any]:
        return values

    got = handler({}, None)
    for name in ("list", "number", "quoted", "broken"):
        assert got[name] == shapes[name], name
    assert dict(got["spaced"]) == {"k": "v"}


def test_a_missing_secret_fails_the_init_naming_it(
    secrets: dict[str, Any], sm: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = SecretCache(sm)
    monkeypatch.setattr(cache_module, "_default", cache)
    with pytest.raises(SecretNotFoundError) as caught:
        import_handler(tmp_path, monkeypatch, db="prod/db", gone="prod/does-not-exist")
    assert caught.value.secret_id == "prod/does-not-exist"
    assert "prod/does-not-exist" in str(caught.value)
    assert cache.stats().size >= 1  # the readable one was cached all the same


def test_bad_arguments() -> None:
    with pytest.raises(TypeError):
        with_secrets()
    with pytest.raises(TypeError):
        with_secrets(db=123)  # type: ignore[arg-type]


def run_python(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    return result.stdout.strip()


def test_importing_secretcache_does_not_import_boto3() -> None:
    """Lambda pays for every import at cold start; boto3 waits until the first fetch."""
    code = (
        "import sys, secretcache, secretcache.aws_lambda, secretcache.compat; "
        "print(sorted(m for m in ('boto3', 'botocore') if m in sys.modules))"
    )
    assert run_python(code) == "[]"
    # ...and a fetch does import it (so the check above can fail).
    code = (
        "import sys, secretcache; c = secretcache.SecretCache(); c.client; "
        "print(sorted(m for m in ('boto3', 'botocore') if m in sys.modules))"
    )
    assert run_python(code) == "['boto3', 'botocore']"


# ------------------------------------------------ signatures and annotations (issue 9.8)


def test_signature_leaves_out_the_injected_keywords(secrets: dict[str, Any], sm: Any) -> None:
    cache = SecretCache(sm)

    @with_secrets(cache=cache, db="prod/db", api_key="prod/api-key")
    def handler(event: Any, context: Any, *, db: Mapping[str, Any], api_key: str) -> str:
        return str(db["username"])

    assert list(inspect.signature(handler).parameters) == ["event", "context"]
    assert handler({}, None) == "app"


@pytest.mark.parametrize(
    "annotation",
    [
        "Mapping[str, Any]",
        "dict[str, Any]",
        "dict",
        "MutableMapping[str, str]",
        "Optional[Mapping]",
    ],
)
def test_a_mapping_parameter_given_a_non_object_fails_the_init(
    secrets: dict[str, Any], sm: Any, annotation: str
) -> None:
    """A handler asking for a mapping never gets a str: the init fails, naming the secret."""
    cache = SecretCache(sm)
    namespace: dict[str, Any] = {}
    source = textwrap.dedent(
        f"""
        from collections.abc import Mapping, MutableMapping
        from typing import Any, Optional

        def handler(event: Any, context: Any, *, token: {annotation}) -> Any:
            return token
        """
    )
    exec(compile(source, "<handler>", "exec"), namespace)
    decorate = with_secrets(cache=cache, token="prod/webhook-token")
    secrets.clear()  # this frame is in the traceback too
    error = raised(lambda: decorate(namespace["handler"]))
    assert isinstance(error, SecretDecodeError)
    assert error.secret_id == "prod/webhook-token"
    assert "prod/webhook-token" in str(error) and "'token', annotated as a mapping" in str(error)
    assert not find_leaks(error, ["{not json", "starts with a brace"])
    with pytest.raises(SecretDecodeError, match="prod/signing-key"):
        with_secrets(cache=cache, token="prod/signing-key")(namespace["handler"])
    # the same annotation with a JSON object is fine
    assert with_secrets(cache=cache, token="prod/db")(namespace["handler"])({}, None)["port"]


def test_unresolvable_string_annotations_are_read_as_written(
    secrets: dict[str, Any], sm: Any
) -> None:
    cache = SecretCache(sm)

    def handler(event: Any, context: Any, *, token: Any) -> Any:
        return token

    handler.__annotations__["token"] = "ImportedOnlyForTypeChecking | Mapping[str, str]"
    assert with_secrets(cache=cache, token="prod/webhook-token")(handler)({}, None)
    handler.__annotations__["token"] = "typing.Mapping[str, str] | None"
    with pytest.raises(SecretDecodeError):
        with_secrets(cache=cache, token="prod/webhook-token")(handler)


def test_handler_frames_hold_only_what_the_handler_receives(
    secrets: dict[str, Any], sm: Any
) -> None:
    cache = SecretCache(sm)

    @with_secrets(cache=cache, api_key="prod/api-key", db="prod/db", queue="prod/queue")
    def handler(event: Any, context: Any, *, api_key: str, db: Any, queue: Any) -> None:
        raise RuntimeError("the handler's own failure")

    not_received = [secrets["prod/db"]["password"], secrets["prod/queue"]["token"]]
    secrets.clear()  # this frame is in the traceback too: keep only the needles
    assert isinstance(raised(lambda: handler({}, None)), RuntimeError)  # every secret resolved
    leaks = find_leaks(raised(lambda: handler({}, None, db={}, queue={})), not_received)
    # The handler's own frame holds api_key (it received it); no frame holds the others.
    assert not leaks, f"a secret the handler did not receive is reachable via {leaks}"


def test_nested_json_reaches_the_handler_read_only(sm: Any) -> None:
    sm.create_secret(Name="nested", SecretString=json.dumps({"tls": {"pins": ["a"]}}))
    cache = SecretCache(sm)

    @with_secrets(cache=cache, cfg="nested")
    def handler(event: Any, context: Any, *, cfg: Mapping[str, Any]) -> Mapping[str, Any]:
        return cfg

    cfg = handler({}, None)
    assert cfg == {"tls": {"pins": ["a"]}}
    with pytest.raises(TypeError):
        cfg["tls"]["pins"] = []  # type: ignore[index]
    with pytest.raises(AttributeError):
        cfg["tls"]["pins"].append("b")
    assert handler({}, None) == {"tls": {"pins": ["a"]}}
