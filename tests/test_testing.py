"""secretcache.testing: FakeSecretsManager through SecretCache, its faults, calls and fixtures.

What moto can check is checked against moto in test_fake_vs_moto.py; this file
covers the test-side helpers (put, rotate, rotation steps, fail, calls), the
engine's view of the fake, the fixtures as a user enables them, and the places
where the fake follows AWS and moto does not.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import textwrap
import threading
import uuid
from collections import Counter
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import (
    ClientError,
    EndpointConnectionError,
    ParamValidationError,
    ReadTimeoutError,
)

import secretcache
from secretcache import (
    CacheConfig,
    SecretAccessDeniedError,
    SecretCache,
    SecretCacheError,
    SecretNotFoundError,
    SecretUnavailableError,
)
from secretcache.testing import ROTATION_STEPS, FakeSecretsManager, Rotation
from tests.leakcheck import find_leaks

pytest_plugins = ["secretcache.testing"]  # the fixtures, enabled as a user's conftest would

ROOT = Path(__file__).resolve().parent.parent
ARN_RE = re.compile(r"^arn:aws:secretsmanager:us-east-1:123456789012:secret:app/db-[A-Za-z0-9]{6}$")
CANARY = f"CANARY-{uuid.uuid4()}"
"""Module-level on purpose: a test function's frame (part of every traceback caught
in it) then holds no local copy of it."""


def fresh_cache(fake: FakeSecretsManager, **config: Any) -> SecretCache:
    defaults: dict[str, Any] = {
        "jitter": 0.0,
        "min_refresh_interval": 0.0,
        "error_backoff_max": 0.0,
    }
    return SecretCache(client=fake, config=CacheConfig(**(defaults | config)))


# ------------------------------------------------------------------ reads


def test_values_of_every_kind_through_the_cache(
    fake_secrets: FakeSecretsManager, secret_cache: SecretCache
) -> None:
    version = fake_secrets.put("app/db", {"user": "app", "port": 5432})
    fake_secrets.put("app/key", "text-key")
    fake_secrets.put("app/cert", b"\x00\x01binary")
    assert dict(secret_cache.get_secret_json("app/db")) == {"user": "app", "port": 5432}
    assert secret_cache.get_secret_string("app/key") == "text-key"
    assert secret_cache.get_secret_binary("app/cert") == b"\x00\x01binary"
    value = secret_cache.get_secret("app/db")
    assert value.name == "app/db"
    assert value.arn is not None and ARN_RE.match(value.arn)
    assert value.arn == fake_secrets.arn("app/db")
    assert value.version_id == version
    assert value.version_stages == ("AWSCURRENT",)
    assert value.created_date is not None and value.created_date.tzinfo is not None
    assert value.created_date.utcoffset() == UTC.utcoffset(None)


def test_constructor_seeds_secrets_and_region() -> None:
    fake = FakeSecretsManager(
        {"a": "1", "b": {"k": 2}}, region_name="eu-west-1", account_id="1" * 12
    )
    cache = fresh_cache(fake)
    assert cache.get_secret_string("a") == "1"
    assert cache.get_secret_json("b")["k"] == 2
    assert fake.arn("a").startswith("arn:aws:secretsmanager:eu-west-1:111111111111:secret:a-")
    assert fake.meta.region_name == "eu-west-1"


def test_names_full_and_partial_arns_are_one_secret() -> None:
    fake = FakeSecretsManager({"app/db": "v1"})
    cache = fresh_cache(fake)
    arn = fake.arn("app/db")
    for secret_id in ("app/db", arn, arn[:-7]):
        assert cache.get_secret_string(secret_id) == "v1"
    with pytest.raises(SecretNotFoundError):
        cache.get_secret_string(arn[:-1] + ("x" if arn[-1] != "x" else "y"))


def test_stages_and_versions() -> None:
    fake = FakeSecretsManager()
    v1 = fake.put("svc", "one")
    v2 = fake.put("svc", "two")
    v3 = fake.put("svc", "three")
    cache = fresh_cache(fake)
    assert cache.get_secret_string("svc") == "three"
    assert cache.get_secret_string("svc", "AWSPREVIOUS") == "two"
    assert cache.get_secret_string("svc", version_id=v1) == "one"
    assert fake.versions("svc") == {v1: (), v2: ("AWSPREVIOUS",), v3: ("AWSCURRENT",)}
    with pytest.raises(SecretNotFoundError):
        cache.get_secret_string("svc", "AWSPENDING")
    with pytest.raises(SecretNotFoundError):
        cache.get_secret_string("svc", version_id="0" * 32)
    fake.update_secret_version_stage(SecretId="svc", VersionStage="blue", MoveToVersionId=v1)
    assert cache.get_secret_string("svc", "blue") == "one"
    assert fake.value("svc", "blue") == "one"


def test_put_makes_one_current_even_after_a_rotation() -> None:
    """On AWS a label is on one version only (moto's put here leaves two AWSCURRENT)."""
    fake = FakeSecretsManager({"s": "one"})
    fake.rotate("s", "two")
    fake.put("s", "three")
    stages = [label for labels in fake.versions("s").values() for label in labels]
    assert sorted(stages) == ["AWSCURRENT", "AWSPREVIOUS"]
    assert fake.value("s", "AWSPREVIOUS") == "two"


# ------------------------------------------------------------------ rotation


def test_rotation_then_refresh_sees_the_new_version() -> None:
    changes: list[tuple[Any, ...]] = []
    fake = FakeSecretsManager()
    old = fake.put("app/db", {"password": "old"})
    cache = fresh_cache(fake, on_change=lambda *args: changes.append(args))
    assert cache.get_secret_json("app/db")["password"] == "old"
    new = fake.rotate("app/db", {"password": "new"})
    assert cache.get_secret_json("app/db")["password"] == "old"  # fresh within its TTL
    assert fake.calls["GetSecretValue"] == 1
    assert cache.refresh("app/db").version_id == new
    assert cache.get_secret_json("app/db")["password"] == "new"
    assert cache.get_secret_json("app/db", "AWSPREVIOUS")["password"] == "old"
    assert changes == [("app/db", "AWSCURRENT", old, new)]
    assert fake.versions("app/db") == {old: ("AWSPREVIOUS",), new: ("AWSCURRENT",)}


def test_rotation_window_between_set_secret_and_finish_secret() -> None:
    fake = FakeSecretsManager({"app/db": "old"})
    cache = fresh_cache(fake)
    seen: list[tuple[str, tuple[str, ...]]] = []

    def hook(rotation: Rotation) -> None:
        seen.append((rotation.completed[-1] if rotation.completed else "", rotation.completed))

    with fake.rotation("app/db", "new", set_secret=hook, test_secret=hook) as rotation:
        assert rotation.completed == ()
        rotation.set_secret()  # runs createSecret first
        assert rotation.completed == ("createSecret", "setSecret")
        assert cache.refresh("app/db").secret_string == "old"
        pending = cache.refresh("app/db", "AWSPENDING")
        assert pending.secret_string == "new" and pending.version_id == rotation.token
        assert not rotation.finished
    assert rotation.completed == ROTATION_STEPS
    assert rotation.finished
    # the hooks ran after their own step had done its part (before it is recorded)
    assert seen == [
        ("createSecret", ("createSecret",)),
        ("setSecret", ("createSecret", "setSecret")),
    ]
    assert cache.refresh("app/db").secret_string == "new"
    assert cache.refresh("app/db", "AWSPREVIOUS").secret_string == "old"
    with pytest.raises(SecretNotFoundError):
        cache.refresh("app/db", "AWSPENDING")


def test_rotation_steps_one_at_a_time() -> None:
    fake = FakeSecretsManager({"s": "old"})
    rotation = fake.rotation("s", "new", token="t" * 36)
    steps = rotation.steps()
    assert next(steps) == "createSecret"
    assert fake.versions("s")["t" * 36] == ("AWSPENDING",)
    assert [*steps] == ["setSecret", "testSecret", "finishSecret"]
    assert fake.value("s") == "new"
    with pytest.raises(RuntimeError, match="already run"):
        rotation.finish_secret()
    assert rotation.run() == "t" * 36  # a finished rotation has nothing left to run


def test_a_failed_rotation_leaves_pending_and_current_alone() -> None:
    fake = FakeSecretsManager({"s": "old", "t": "old"})

    def refuse(rotation: Rotation) -> None:
        raise ConnectionRefusedError("the test database refused the new password")

    with pytest.raises(ConnectionRefusedError):
        fake.rotate("s", "new", test_secret=refuse)
    assert fake.value("s") == "old"
    assert fake.value("s", "AWSPENDING") == "new"
    with pytest.raises(ZeroDivisionError), fake.rotation("t", "new") as rotation:
        rotation.set_secret()
        1 / 0  # noqa: B018 - the block fails: the rotation must not be finished
    assert rotation.completed == ("createSecret", "setSecret")
    assert fake.value("t") == "old"
    assert fake.value("t", "AWSPENDING") == "new"


def test_no_new_rotation_while_one_is_pending() -> None:
    """AWS refuses RotateSecret while AWSPENDING is on a version other than AWSCURRENT's."""
    fake = FakeSecretsManager({"s": "old"})
    stalled = fake.rotation("s", "new")
    stalled.create_secret()
    with pytest.raises(RuntimeError, match="still in progress"):
        fake.rotate("s", "newer")
    fake.update_secret_version_stage(
        SecretId="s", VersionStage="AWSPENDING", RemoveFromVersionId=stalled.token
    )
    fake.rotate("s", "newer")
    assert fake.value("s") == "newer"
    assert fake.value("s", "AWSPREVIOUS") == "old"


def test_a_hook_cannot_run_steps_of_its_own_rotation() -> None:
    fake = FakeSecretsManager({"s": "old"})
    with pytest.raises(RuntimeError, match="inside a hook"):
        fake.rotate("s", "new", set_secret=lambda rotation: rotation.finish_secret())


def test_test_step_notices_a_moved_pending_label() -> None:
    fake = FakeSecretsManager({"s": "old"})
    rotation = fake.rotation("s", "new")
    rotation.set_secret()
    fake.put_secret_value(SecretId="s", SecretString="other", VersionStages=["AWSPENDING"])
    with pytest.raises(RuntimeError, match="AWSPENDING no longer points"):
        rotation.test_secret()


def test_rotation_needs_an_existing_current_version() -> None:
    fake = FakeSecretsManager()
    with pytest.raises(KeyError):
        fake.rotate("nope", "x")
    fake.create_secret(Name="empty")
    with pytest.raises(KeyError, match="no AWSCURRENT"):
        fake.rotate("empty", "x")


# ------------------------------------------------------------------ faults

FAULTS = [
    ("ResourceNotFoundException", SecretNotFoundError, 400),
    ("InvalidRequestException", SecretNotFoundError, 400),
    ("InvalidParameterException", SecretNotFoundError, 400),
    ("AccessDeniedException", SecretAccessDeniedError, 400),
    ("DecryptionFailure", SecretAccessDeniedError, 400),
    ("KMSAccessDeniedException", SecretAccessDeniedError, 400),
    ("ThrottlingException", SecretUnavailableError, 400),
    ("InternalServiceError", SecretUnavailableError, 500),
    ("ServiceUnavailable", SecretUnavailableError, 503),
]


@pytest.mark.parametrize(("code", "error", "status"), FAULTS, ids=[c for c, _, _ in FAULTS])
def test_every_fault_code_maps_to_its_typed_error(
    code: str, error: type[SecretCacheError], status: int
) -> None:
    fake = FakeSecretsManager({"svc": "v"})
    fake.fail(code)
    cache = fresh_cache(fake, retry_attempts=2)
    with pytest.raises(error) as caught:
        cache.get_secret_string("svc", "AWSPREVIOUS")
    assert caught.value.secret_id == "svc" and caught.value.version_stage == "AWSPREVIOUS"
    assert code in str(caught.value)
    cause = caught.value.__cause__
    assert isinstance(cause, ClientError)
    assert cause.operation_name == "GetSecretValue"
    assert cause.response["Error"]["Code"] == code
    assert cause.response["Error"]["Message"]
    assert cause.response["ResponseMetadata"]["HTTPStatusCode"] == status
    retried = error is SecretUnavailableError
    assert fake.calls == Counter({"GetSecretValue": 2 if retried else 1})


def test_modelled_errors_are_botocores_own_classes() -> None:
    fake = FakeSecretsManager()
    with pytest.raises(fake.exceptions.ResourceNotFoundException) as caught:
        fake.get_secret_value(SecretId="missing")
    assert type(caught.value).__name__ == "ResourceNotFoundException"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400  # moto says 404
    fake.fail("DecryptionFailure")
    with pytest.raises(fake.exceptions.DecryptionFailure):
        fake.get_secret_value(SecretId="missing")


@pytest.mark.parametrize(
    ("code", "cause"), [("unavailable", EndpointConnectionError), ("timeout", ReadTimeoutError)]
)
def test_network_faults(code: str, cause: type[Exception]) -> None:
    fake = FakeSecretsManager({"svc": "v"})
    fake.fail(code)
    cache = fresh_cache(fake, retry_attempts=3)
    with pytest.raises(SecretUnavailableError) as caught:
        cache.get_secret_string("svc")
    assert type(caught.value.__cause__) is cause
    assert "3 attempts" in str(caught.value)
    assert fake.calls["GetSecretValue"] == 3


def test_a_few_throttles_are_absorbed_by_the_retries() -> None:
    fake = FakeSecretsManager({"svc": "v"})
    fake.fail("ThrottlingException", times=2)
    cache = fresh_cache(fake, retry_attempts=3)
    assert cache.get_secret_string("svc") == "v"
    assert fake.calls["GetSecretValue"] == 3
    assert cache.stats().api_calls == 3


def test_faults_last_until_cleared_and_serve_the_cached_value() -> None:
    fake = FakeSecretsManager({"svc": "v"})
    cache = fresh_cache(fake, retry_attempts=1)
    assert cache.get_secret_string("svc") == "v"
    fake.fail("unavailable")
    for _ in range(3):
        with pytest.raises(SecretUnavailableError):
            cache.refresh("svc")
        assert cache.get_secret_string("svc") == "v"  # still fresh: served from the cache
    fake.clear_faults()
    assert cache.refresh("svc").secret_string == "v"


def test_a_fault_for_one_secret_matches_it_by_name_or_arn() -> None:
    fake = FakeSecretsManager({"a": "1", "b": "2"})
    fake.fail("AccessDeniedException", secret_id="a")
    cache = fresh_cache(fake)
    with pytest.raises(SecretAccessDeniedError):
        cache.get_secret_string(fake.arn("a"))
    with pytest.raises(SecretAccessDeniedError):
        cache.get_secret_string("a")
    assert cache.get_secret_string("b") == "2"
    fake.clear_faults()
    fake.fail("AccessDeniedException", secret_id=fake.arn("b")[:-7], times=1)
    with pytest.raises(ClientError, match="AccessDeniedException"):
        fake.get_secret_value(SecretId="b")  # the fault named b by its partial ARN
    assert fake.get_secret_value(SecretId="b")["SecretString"] == "2"  # times=1: used up


def test_faults_fire_in_the_order_they_were_added() -> None:
    fake = FakeSecretsManager({"svc": "v"})
    fake.fail("ThrottlingException", times=1)
    fake.fail("AccessDeniedException", times=1)
    codes = []
    for _ in range(3):
        try:
            fake.get_secret_value(SecretId="svc")
            codes.append("ok")
        except ClientError as exc:
            codes.append(exc.response["Error"]["Code"])
    assert codes == ["ThrottlingException", "AccessDeniedException", "ok"]


def test_status_override_and_unknown_codes() -> None:
    fake = FakeSecretsManager({"svc": "v"})
    fake.fail("SomethingNewException", status=502, times=1)
    with pytest.raises(ClientError) as caught:
        fake.get_secret_value(SecretId="svc")
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 502
    assert caught.value.response["Error"]["Code"] == "SomethingNewException"


@pytest.mark.parametrize(
    "kwargs",
    [{"code": ""}, {"code": "ThrottlingException", "times": 0}, {"code": "X", "operation": "Nope"}],
)
def test_fail_refuses_nonsense(kwargs: dict[str, Any]) -> None:
    code = kwargs.pop("code")
    with pytest.raises(ValueError):
        FakeSecretsManager().fail(code, **kwargs)


# ------------------------------------------------------------------ batch and calls


def test_prefetch_is_one_batch_call_then_hits() -> None:
    fake = FakeSecretsManager({f"s{i}": f"v{i}" for i in range(25)})
    cache = fresh_cache(fake)
    cache.prefetch(*(f"s{i}" for i in range(25)))
    assert fake.calls == Counter({"BatchGetSecretValue": 2})  # 20 + 5
    assert [cache.get_secret_string(f"s{i}") for i in range(25)] == [f"v{i}" for i in range(25)]
    assert fake.calls == Counter({"BatchGetSecretValue": 2})
    assert cache.stats().hits == 25


def test_prefetch_fetches_what_the_batch_could_not_serve() -> None:
    fake = FakeSecretsManager({"a": "1", "b": "2"})
    fake.fail("DecryptionFailure", secret_id="b", operation="BatchGetSecretValue")
    cache = fresh_cache(fake)
    with pytest.raises(SecretNotFoundError):
        cache.prefetch("a", "b", "missing")
    # b's batch error and the unknown id are each asked for once more, singly
    assert fake.calls == Counter({"BatchGetSecretValue": 1, "GetSecretValue": 2})
    assert cache.get_secret_string("b") == "2"
    assert fake.calls["GetSecretValue"] == 2


def test_prefetch_falls_back_when_the_batch_call_is_denied() -> None:
    fake = FakeSecretsManager({"a": "1", "b": "2"})
    fake.fail("AccessDeniedException", operation="BatchGetSecretValue")
    fake.fail("ThrottlingException", operation="BatchGetSecretValue", secret_id="zzz")
    cache = fresh_cache(fake)
    cache.prefetch("a", "b")
    assert fake.calls == Counter({"BatchGetSecretValue": 1, "GetSecretValue": 2})


def test_batch_answers_per_secret_errors_and_fails_whole_on_throttling() -> None:
    fake = FakeSecretsManager({"a": "1", "b": "2"})
    fake.fail("DecryptionFailure", secret_id="b", times=1)
    answer = fake.batch_get_secret_value(SecretIdList=["a", "b", "c"])
    assert [v["Name"] for v in answer["SecretValues"]] == ["a"]
    assert [(e["SecretId"], e["ErrorCode"]) for e in answer["Errors"]] == [
        ("b", "DecryptionFailure"),
        ("c", "ResourceNotFoundException"),
    ]
    fake.fail("ThrottlingException", secret_id="b", times=1)
    with pytest.raises(ClientError, match="ThrottlingException"):
        fake.batch_get_secret_value(SecretIdList=["a", "b"])
    assert fake.batch_get_secret_value(SecretIdList=["a", "b"])["Errors"] == []


def test_calls_count_requests_not_helpers_nor_refused_parameters() -> None:
    fake = FakeSecretsManager({"s": "v"})
    fake.put("s", "w")
    fake.rotate("s", "x")
    fake.value("s")
    fake.versions("s")
    assert fake.calls == Counter()
    with pytest.raises(ParamValidationError):
        fake.get_secret_value(SecretId="s", VersionId="short")  # refused before "sending"
    with pytest.raises(ParamValidationError):
        fake.get_secret_value(Secret="s")
    assert fake.calls == Counter()
    fake.fail("ThrottlingException", times=1)
    with pytest.raises(ClientError):
        fake.get_secret_value(SecretId="s")
    fake.get_secret_value(SecretId="s")
    fake.describe_secret(SecretId="s")
    fake.create_secret(Name="t", SecretString="x")
    fake.put_secret_value(SecretId="t", SecretString="y")
    assert fake.calls == Counter(
        {"GetSecretValue": 2, "DescribeSecret": 1, "CreateSecret": 1, "PutSecretValue": 1}
    )


# ------------------------------------------------------------------ AWS, where moto differs


def test_aws_behaviour_moto_does_not_have() -> None:
    fake = FakeSecretsManager({"s": "v"})

    def code_of(operation: str, **params: Any) -> str:
        with pytest.raises(ClientError) as caught:
            getattr(fake, operation)(**params)
        return str(caught.value.response["Error"]["Code"])

    assert code_of("put_secret_value", SecretId="s", SecretString="a", SecretBinary=b"b") == (
        "InvalidParameterException"
    )
    many = [f"s{i}" for i in range(21)]
    assert code_of("batch_get_secret_value", SecretIdList=many) == "InvalidParameterException"
    assert code_of("batch_get_secret_value", SecretIdList=["s"], NextToken="x") == (
        "InvalidNextTokenException"
    )
    with pytest.raises(NotImplementedError):
        fake.batch_get_secret_value(Filters=[{"Key": "name", "Values": ["s"]}])
    fake.delete_secret(SecretId="s")
    assert code_of("put_secret_value", SecretId="s", SecretString="a") == "InvalidRequestException"
    assert code_of("create_secret", Name="s", SecretString="a") == "InvalidRequestException"
    assert code_of("update_secret_version_stage", SecretId="s", VersionStage="x") == (
        "InvalidRequestException"
    )
    with pytest.raises(ValueError, match="scheduled for deletion"):
        fake.put("s", "again")


def test_deleted_secrets_through_the_cache() -> None:
    fake = FakeSecretsManager({"s": "v", "t": "w"})
    fake.delete("s")
    fake.delete("t", force=True)
    cache = fresh_cache(fake)
    with pytest.raises(SecretNotFoundError, match="deleted or scheduled for deletion"):
        cache.get_secret_string("s")
    with pytest.raises(SecretNotFoundError, match="ResourceNotFoundException"):
        cache.get_secret_string("t")


def test_it_behaves_like_a_client_object() -> None:
    fake = FakeSecretsManager()
    with pytest.raises(AttributeError, match="RotateSecret is not implemented"):
        fake.rotate_secret(SecretId="s")
    assert not hasattr(fake, "list_secrets")
    assert not hasattr(fake, "no_such_thing")
    assert getattr(fake, "_endpoint", None) is None
    with pytest.raises(TypeError):
        fake.get_secret_value("s")
    assert fake.meta.method_to_api_mapping["get_secret_value"] == "GetSecretValue"
    assert fake.meta.service_model.service_name == "secretsmanager"
    fake.close()
    with pytest.raises(TypeError):
        import pickle

        pickle.dumps(fake)


@pytest.mark.parametrize(
    ("value", "error"),
    [(None, TypeError), ("", ValueError), (b"", ValueError), ({"when": object()}, TypeError)],
)
def test_put_refuses_values_the_service_would_not_store(
    value: object, error: type[Exception]
) -> None:
    fake = FakeSecretsManager()
    with pytest.raises(error):
        fake.put("s", value)
    with pytest.raises(KeyError):
        fake.put("arn:aws:secretsmanager:us-east-1:123456789012:secret:nope-abcdef", "v")


# ------------------------------------------------------------------ threads


def test_concurrent_writers_and_readers_keep_labels_consistent() -> None:
    fake = FakeSecretsManager({"s": "w0-0"})
    cache = fresh_cache(fake)
    seen: list[tuple[str, str, tuple[str, ...]]] = []
    seen_lock = threading.Lock()
    start = threading.Barrier(8)
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        start.wait()
        for i in range(50):
            if n == 0 and i % 10 == 9:  # one rotator: AWS allows one rotation at a time
                fake.rotate("s", f"w{n}-{i}")
            else:
                fake.put("s", f"w{n}-{i}")

    def reader() -> None:
        start.wait()
        for _ in range(100):
            answer = fake.get_secret_value(SecretId="s", VersionStage="AWSCURRENT")
            cache.refresh("s")
            with seen_lock:
                seen.append(
                    (answer["VersionId"], answer["SecretString"], tuple(answer["VersionStages"]))
                )

    def guarded(target: Any, *args: Any) -> None:
        try:
            target(*args)
        except BaseException as exc:  # surfaced below, after the join
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(writer, n)) for n in range(4)]
    threads += [threading.Thread(target=guarded, args=(reader,)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(seen) == 400
    for version_id, text, stages in seen:
        assert "AWSCURRENT" in stages
        assert fake.value("s", version_id=version_id) == text
    labels = Counter(label for labels in fake.versions("s").values() for label in labels)
    assert labels == Counter({"AWSCURRENT": 1, "AWSPREVIOUS": 1})
    assert len(fake.versions("s")) == 1 + 4 * 50
    # 400 direct reads, plus the cache's refreshes (concurrent ones are coalesced)
    assert 401 <= fake.calls["GetSecretValue"] <= 800


# ------------------------------------------------------------------ no leaks


def _error_of(action: Any) -> BaseException:
    try:
        action()
    except BaseException as exc:
        return exc
    raise AssertionError("expected an error")


def test_the_fakes_own_errors_and_reprs_carry_no_value() -> None:
    fake = FakeSecretsManager({"json": {"password": CANARY}, "text": CANARY})
    fake.put("bin", CANARY.encode())
    rotation = fake.rotation("text", "pending-" + CANARY)
    rotation.set_secret()
    surfaces = {"fake": repr(fake), "rotation": repr(rotation), "meta": repr(fake.meta)}
    assert [name for name, text in surfaces.items() if CANARY in text] == []

    failures: dict[str, BaseException] = {}
    for code, _, _ in FAULTS:
        fake.fail(code, times=1)
        failures[code] = _error_of(lambda: fake.get_secret_value(SecretId="json"))
    fake.fail("unavailable", times=1)
    failures["unavailable"] = _error_of(lambda: fake.get_secret_value(SecretId="text"))
    failures["unknown stage"] = _error_of(
        lambda: fake.get_secret_value(SecretId="text", VersionStage="blue")
    )
    failures["token reuse"] = _error_of(
        lambda: fake.put_secret_value(
            SecretId="text", SecretString=CANARY + "x", ClientRequestToken=rotation.token
        )
    )
    failures["both kinds"] = _error_of(
        lambda: fake.put_secret_value(SecretId="text", SecretString=CANARY, SecretBinary=b"x")
    )
    failures["bad parameter"] = _error_of(
        lambda: fake.put_secret_value(SecretId="text", SecretString=CANARY, Stages=["x"])
    )
    failures["unserialisable"] = _error_of(
        lambda: fake.put("x", {"password": CANARY, "bad": {1, 2}})
    )
    failures["refused seed"] = _error_of(lambda: FakeSecretsManager({"a": CANARY, "b": None}))
    failures["deleted"] = _error_of(lambda: (fake.delete("bin"), fake.put("bin", CANARY)))

    def refuse(rotation: Rotation) -> None:
        raise ConnectionRefusedError("refused")

    failures["rotation hook"] = _error_of(
        lambda: fake.rotate("json", {"password": CANARY + "2"}, test_secret=refuse)
    )
    leaks = {
        where: found for where, exc in failures.items() if (found := find_leaks(exc, [CANARY]))
    }
    assert leaks == {}, "a secret value is reachable from these errors (see where)"


def test_through_the_cache_the_fake_exposes_no_more_than_a_real_client(sm: Any) -> None:
    """Whatever the engine's own frames hold, the fake adds nothing to a real client's errors."""
    from tests.reliability.faults import Faults, aws_error

    fake = FakeSecretsManager()
    sm_faults = Faults(sm)
    for client in (fake, sm):
        client.create_secret(Name="json", SecretString=json.dumps({"password": CANARY}))
        client.create_secret(Name="text", SecretString=CANARY)
        client.create_secret(Name="bin", SecretBinary=CANARY.encode())

    def scenario(client: Any, inject: Any) -> dict[str, list[str]]:
        cache = fresh_cache(client, retry_attempts=1)
        cache.get_secret_string("text")
        failures: dict[str, BaseException] = {}
        for code, status in [
            ("ResourceNotFoundException", 400),
            ("DecryptionFailure", 400),
            ("InternalServiceError", 500),
        ]:
            inject(code, status)
            failures[f"cold {code}"] = _error_of(
                lambda: fresh_cache(client, retry_attempts=1).get_secret_string("json")
            )
            failures[f"refresh {code}"] = _error_of(lambda: cache.refresh("text"))
            inject(None, 0)
        failures["unknown stage"] = _error_of(lambda: cache.get_secret_string("text", "blue"))
        failures["binary as text"] = _error_of(lambda: cache.get_secret_string("bin"))
        return {where: find_leaks(exc, [CANARY]) for where, exc in failures.items()}

    def inject_fake(code: str | None, status: int) -> None:
        fake.clear_faults()
        if code is not None:
            fake.fail(code)

    def inject_moto(code: str | None, status: int) -> None:
        sm_faults.set(None if code is None else (lambda _request: aws_error(status, code)))

    on_fake, on_moto = scenario(fake, inject_fake), scenario(sm, inject_moto)
    extra = {
        where: sorted(set(found) - set(on_moto[where]))
        for where, found in on_fake.items()
        if set(found) - set(on_moto[where])
    }
    assert extra == {}, "the fake makes a secret value reachable where a real client does not"


# ------------------------------------------------------------------ fixtures and imports


def test_fixture_cache_is_configured_for_tests(
    fake_secrets: FakeSecretsManager, secret_cache: SecretCache, secret_cache_config: CacheConfig
) -> None:
    assert secret_cache.config is secret_cache_config
    fake_secrets.put("s", "v1")
    assert secret_cache.get_secret_string("s") == "v1"
    fake_secrets.rotate("s", "v2")
    assert secret_cache.refresh("s").secret_string == "v2"  # no min_refresh_interval wait
    fake_secrets.fail("AccessDeniedException", times=1)
    with pytest.raises(SecretAccessDeniedError):
        secret_cache.get_secret_string("other")
    fake_secrets.put("other", "x")
    assert secret_cache.get_secret_string("other") == "x"  # no back-off after the failure


def _docs_files() -> dict[str, str]:
    """The conftest/test files docs/testing.md shows (blocks starting with ``# <file>.py``)."""
    from tests.test_docs_examples import python_blocks

    files: dict[str, str] = {}
    for _, code in python_blocks((ROOT / "docs" / "testing.md").read_text(), include_skipped=True):
        first = code.splitlines()[0]
        match = re.fullmatch(r"# ((?:conftest|test_\w+)\.py)", first.strip())
        if match:
            files[match.group(1)] = files.get(match.group(1), "") + code + "\n"
    return files


def run_pytest(tmp_path: Path, files: dict[str, str]) -> subprocess.CompletedProcess[str]:
    for name, code in files.items():
        (tmp_path / name).write_text(code)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-W",
            "error",
            str(tmp_path),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_documented_pytest_setup_runs_as_a_user_would(tmp_path: Path) -> None:
    files = _docs_files()
    assert "conftest.py" in files and len(files) >= 2
    result = run_pytest(tmp_path, files)
    summary = result.stdout.strip().splitlines()[-1:]
    assert result.returncode == 0, f"docs/testing.md's pytest example failed: {summary}"
    assert re.search(r"\b\d+ passed\b", result.stdout) and "failed" not in result.stdout


def test_fixtures_can_be_overridden_and_imports_do_not_warn(tmp_path: Path) -> None:
    conftest = textwrap.dedent(
        """
        import pytest
        from secretcache import CacheConfig
        from secretcache.testing import FakeSecretsManager

        pytest_plugins = ["secretcache.testing"]

        @pytest.fixture
        def secret_cache_config():
            return CacheConfig(ttl=5.0, min_refresh_interval=0.0)
        """
    )
    test = textwrap.dedent(
        """
        def test_config(secret_cache, fake_secrets):
            assert secret_cache.config.ttl == 5.0
            fake_secrets.put("k", "v")
            assert secret_cache.get_secret_string("k") == "v"
        """
    )
    result = run_pytest(tmp_path, {"conftest.py": conftest, "test_it.py": test})
    assert result.returncode == 0, result.stdout[-2000:]
    assert "1 passed" in result.stdout


def test_importing_needs_neither_pytest_nor_boto3() -> None:
    code = textwrap.dedent(
        """
        import sys
        sys.modules["pytest"] = None
        sys.modules["boto3"] = None
        import secretcache.testing as testing
        from secretcache import SecretCache
        assert not hasattr(testing, "fake_secrets")
        fake = testing.FakeSecretsManager({"k": "v"})
        fake.fail("unavailable", times=1)
        assert SecretCache(client=fake).get_secret_string("k") == "v"
        print("ok", sorted(fake.calls.items()))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "ok [('GetSecretValue', 2)]"


def test_async_cache_reads_the_fake() -> None:
    async_cache_class = getattr(secretcache, "AsyncSecretCache", None)
    if async_cache_class is None:
        pytest.skip("AsyncSecretCache is not in this tree yet")
    fake = FakeSecretsManager({"s": json.dumps({"k": "v"})})

    async def main() -> tuple[str, str]:
        cache = async_cache_class(client=fake, config=CacheConfig(min_refresh_interval=0.0))
        first = (await cache.get_secret_json("s"))["k"]
        fake.rotate("s", {"k": "w"})
        await cache.refresh("s")
        return first, (await cache.get_secret_json("s"))["k"]

    assert asyncio.run(main()) == ("v", "w")
