"""A 200 reply the client cannot read: a typed error that holds nothing of the reply.

Issue 10.4: a misbehaving endpoint (or proxy) answered 200 with a body botocore
could not parse -- an invalid ``CreatedDate``, a ``SecretBinary`` that is not
base64, JSON nested past the recursion limit, a truncated body -- and the
untyped error escaped with botocore parser frames holding the raw body (the
secret) in their locals. Each case must now be ``SecretUnavailableError`` naming
the secret and stage, with no part of the body anywhere an error tracker looks.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse

from secretcache import CacheConfig, SecretCache, SecretCacheError, SecretUnavailableError
from tests.leakcheck import find_leaks
from tests.reliability.faults import _Body

CANARY = "CANARY-ž€-8d1f"


def _reply(body: bytes) -> AWSResponse:
    headers = {
        "x-amzn-RequestId": "00000000-0000-0000-0000-000000000000",
        "Content-Type": "application/x-amz-json-1.1",
        "Content-Length": str(len(body)),
    }
    return AWSResponse("http://127.0.0.1/", 200, headers, _Body(body))


def _document(**fields: Any) -> dict[str, Any]:
    base = {
        "ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:svc/key-abcdef",
        "Name": "svc/key",
        "VersionId": "v-1",
        "VersionStages": ["AWSCURRENT"],
        "CreatedDate": 1700000000.0,
        "SecretString": f"password={CANARY}",
    }
    base.update(fields)
    return base


MALFORMED: dict[str, bytes] = {
    "invalid CreatedDate": json.dumps(_document(CreatedDate=f"not a date {CANARY}")).encode(),
    "SecretBinary not base64": json.dumps(
        _document(SecretString=None, SecretBinary=f"!!{CANARY}!!")
    ).encode(),
    "nested past the recursion limit": (
        b'{"SecretString": "' + CANARY.encode() + b'", "x": ' + b"[" * 100_000 + b"]" * 100_000
    )
    + b"}",
    "truncated body": json.dumps(_document()).encode()[:-7],
    "not JSON at all": f"<html>{CANARY}</html>".encode(),
    "VersionStages not a list": json.dumps(_document(VersionStages=7)).encode(),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_unreadable_reply_is_typed_and_holds_nothing_of_it(sm: Any, case: str) -> None:
    sm.create_secret(Name="svc/key", SecretString="unused")
    body = MALFORMED[case]

    def answer(**_: Any) -> AWSResponse:
        return _reply(body)

    sm.meta.events.register("before-send.secrets-manager.GetSecretValue", answer)
    cache = SecretCache(sm, config=CacheConfig(retry_attempts=2))
    with pytest.raises(SecretUnavailableError) as info:
        cache.get_secret_string("svc/key")
    error = info.value
    assert error.secret_id == "svc/key" and error.version_stage == "AWSCURRENT"
    assert "could not be read" in str(error) or "unavailable" in str(error)
    assert find_leaks(error, [CANARY]) == [], f"{case}: canary reachable"


@pytest.mark.parametrize("front", ["sync", "async"])
def test_kind_errors_leave_no_value_in_the_raising_frames(sm: Any, front: str) -> None:
    """String asked of a binary secret and binary of a string one: the frames hold neither."""
    import asyncio

    from secretcache import AsyncSecretCache, SecretDecodeError

    sm.create_secret(Name="kind/bin", SecretBinary=CANARY.encode())
    sm.create_secret(Name="kind/str", SecretString=CANARY)
    sm.create_secret(Name="kind/json", SecretString=f'["{CANARY}"]')
    sync_cache, async_cache = SecretCache(sm), AsyncSecretCache(sm)
    reads: list[tuple[str, str]] = [
        ("get_secret_string", "kind/bin"),
        ("get_secret_binary", "kind/str"),
        ("get_secret_json", "kind/json"),
    ]
    for _ in range(2):  # cold, then cached
        for method, secret_id in reads:
            with pytest.raises(SecretDecodeError) as info:
                if front == "sync":
                    getattr(sync_cache, method)(secret_id)
                else:
                    asyncio.run(getattr(async_cache, method)(secret_id))
            assert find_leaks(info.value, [CANARY]) == [], f"{method}({secret_id})"


@pytest.mark.parametrize("front", ["sync", "async"])
def test_failed_refresh_and_stale_errors_hold_no_cached_value(sm: Any, front: str) -> None:
    """A failing refresh() and a read past max_stale: the engine's frames keep no value.

    Found by the fake's author: the secret was reachable through the locals of the
    refresh loop (``entry``, ``plan``) and of ``settle`` when a refresh failed.
    """
    import asyncio

    from secretcache import AsyncSecretCache
    from tests.helpers import FaultInjector

    sm.create_secret(Name="stale/key", SecretString=CANARY)
    config = CacheConfig(ttl=0.01, jitter=0.0, max_stale=0.0, min_refresh_interval=0)
    sync_cache, async_cache = SecretCache(sm, config=config), AsyncSecretCache(sm, config=config)

    def call(method: str) -> Any:
        if front == "sync":
            return getattr(sync_cache, method)("stale/key")
        return asyncio.run(getattr(async_cache, method)("stale/key"))

    assert call("get_secret_string") == CANARY
    FaultInjector(sm).inject("AccessDeniedException", times=None)
    for method in ("refresh", "get_secret_string", "get_secret", "get_secret_json"):
        with pytest.raises(SecretCacheError) as info:
            call(method)
        assert find_leaks(info.value, [CANARY]) == [], method
