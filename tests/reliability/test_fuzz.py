"""Hypothesis throws random ids, labels and values at the public API (moto's server).

Whatever comes in, the answer is the right value or one of the documented
errors (a ``SecretCacheError``, or ``ValueError``/``TypeError`` for arguments
judged before any call) -- never another exception, never the secret in an
error, never more than one fetch's worth of calls, and never damage to what
the cache already holds.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import itertools
import json
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from secretcache import CacheConfig, SecretCache, SecretCacheError, SecretDecodeError
from tests.hypothesis_profiles import examples

from .faults import Faults

CANARY = f"CANARY-{uuid.uuid4().hex}"
GOOD_ID = f"fuzz/good-{uuid.uuid4().hex[:6]}"
GOOD = f"good-{CANARY}"
ATTEMPTS = 2
_names = itertools.count()

FUZZ = settings(
    max_examples=examples(60),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
SECRET_VALUE_MAX = (
    65536  # bytes, SecretString and SecretBinary alike (botocore checks only the minimum)
)


@pytest.fixture(scope="module")
def world(moto_server_session: Any) -> tuple[Any, SecretCache, Faults]:
    sm = moto_server_session.client()
    sm.create_secret(Name=GOOD_ID, SecretString=GOOD)
    cache = SecretCache(
        moto_server_session.client(retries={"total_max_attempts": 1}),
        config=CacheConfig(retry_attempts=ATTEMPTS, min_refresh_interval=0.0),
    )
    faults = Faults(cache.client)
    assert cache.get_secret_string(GOOD_ID) == GOOD, "setup read failed"
    return sm, cache, faults


def digest(data: str | bytes | None) -> str:
    raw = data.encode() if isinstance(data, str) else (data or b"")
    return hashlib.sha256(raw).hexdigest()


ids = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=8).map(
        lambda s: "fuzz/" + s
    ),
    st.just(GOOD_ID),
    st.just("x" * 2049),
    st.sampled_from(
        [
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:fuzz",
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:fuzz-AbCdEf",
            " ",
            "\x00",
            "../../etc/passwd",
            "%s%s%n",
        ]
    ),
    st.sampled_from([None, 1, b"bytes", 1.5]),
)
labels = st.one_of(
    st.none(),
    st.sampled_from(["AWSCURRENT", "AWSPREVIOUS", "AWSPENDING"]),
    st.text(max_size=20),
    st.just("L" * 300),
    st.sampled_from([3, b"AWSCURRENT"]),
)
methods = st.sampled_from(
    ["get_secret_string", "get_secret_binary", "get_secret_json", "get_secret", "refresh"]
)


@FUZZ
@given(secret_id=ids, stage=labels, version_id=labels, method=methods)
def test_random_requests(
    world: tuple[Any, SecretCache, Faults],
    secret_id: Any,
    stage: Any,
    version_id: Any,
    method: str,
) -> None:
    _, cache, faults = world
    faults.reset_counts()
    try:
        getattr(cache, method)(secret_id, stage, version_id=version_id)
    except SecretCacheError as exc:
        assert CANARY not in repr(exc) and CANARY not in str(exc.__cause__), "canary in error"
    except (ValueError, TypeError) as exc:
        assert not isinstance(exc, SecretCacheError)
        assert faults.sent == 0, "an argument error after a call"
    assert faults.sent <= ATTEMPTS, f"{faults.sent} requests for one call"
    assert cache.get_secret_string(GOOD_ID) == GOOD, "the good entry was damaged"


@FUZZ
@given(secret_ids=st.lists(ids, max_size=25))
def test_random_prefetch_and_invalidate(
    world: tuple[Any, SecretCache, Faults], secret_ids: list[Any]
) -> None:
    _, cache, faults = world
    faults.reset_counts()
    with contextlib.suppress(SecretCacheError, ValueError, TypeError):
        cache.prefetch(*secret_ids)
    distinct = len({s for s in secret_ids if isinstance(s, str)})
    assert faults.sent <= ATTEMPTS * (distinct + 2), f"{faults.sent} requests for a prefetch"
    for secret_id in secret_ids[:3]:
        with contextlib.suppress(TypeError):
            cache.invalidate(secret_id)
    assert cache.get_secret_string(GOOD_ID) == GOOD, "the good entry was damaged"


# Values CreateSecret accepts: a SecretString or SecretBinary of 1 to 65536 bytes. A
# JSON document is always stored as its JSON text (never as a bare Python string,
# which may be empty -- the service refuses that, and the test would fail at random).
values = st.one_of(
    st.text(min_size=1, max_size=200).map(lambda s: s + CANARY),
    st.binary(min_size=1, max_size=200).map(lambda b: b + CANARY.encode()),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=10),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
        max_leaves=8,
    ).map(lambda doc: json.dumps({"k": doc, "c": CANARY} if isinstance(doc, dict) else doc)),
)


@settings(max_examples=examples(300), deadline=None)
@given(value=values)
def test_random_values_are_ones_the_service_accepts(value: str | bytes) -> None:
    """The strategy below feeds CreateSecret: it must never draw what the service refuses."""
    from botocore.validate import ParamValidator

    field = "SecretBinary" if isinstance(value, bytes) else "SecretString"
    params = {"Name": "fuzz/value", field: value}
    report = ParamValidator().validate(params, _create_secret_shape())
    assert not report.has_errors(), report.generate_report()
    size = len(value if isinstance(value, bytes) else value.encode("utf-8"))
    assert 1 <= size <= SECRET_VALUE_MAX, f"{size} bytes"


@functools.cache
def _create_secret_shape() -> Any:
    import botocore.session

    model = botocore.session.get_session().get_service_model("secretsmanager")
    return model.operation_model("CreateSecret").input_shape


@FUZZ
@given(value=values)
def test_random_values_round_trip(world: tuple[Any, SecretCache, Faults], value: Any) -> None:
    sm, cache, _ = world
    name = f"fuzz/value-{next(_names)}"
    if isinstance(value, bytes):
        sm.create_secret(Name=name, SecretBinary=value)
    else:
        text = value
        sm.create_secret(Name=name, SecretString=text)
    record = cache.get_secret(name)
    assert CANARY not in repr(record) and CANARY not in str(record), "canary in repr"
    if isinstance(value, bytes):
        assert digest(cache.get_secret_binary(name)) == digest(value), "binary mismatch"
        with pytest.raises(SecretDecodeError):
            cache.get_secret_string(name)
        return
    assert digest(cache.get_secret_string(name)) == digest(text), "string mismatch"
    try:
        expected: Any = json.loads(text)
    except ValueError:
        expected = None
    if isinstance(expected, dict):
        assert dict(cache.get_secret_json(name)) == expected, "JSON mismatch"
    else:
        with pytest.raises(SecretDecodeError) as info:
            cache.get_secret_json(name)
        seen: BaseException | None = info.value
        while seen is not None:  # the whole chain, not only the message
            assert CANARY not in repr(seen) and CANARY not in str(getattr(seen, "doc", ""))
            seen = seen.__cause__ or seen.__context__
