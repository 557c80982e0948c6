"""Throttling and transient faults are retried; definitive answers map to typed errors."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from secretcache import (
    CacheConfig,
    SecretAccessDeniedError,
    SecretCache,
    SecretCacheError,
    SecretNotFoundError,
    SecretUnavailableError,
)
from tests.async_front import both_fronts
from tests.helpers import FaultInjector

front = both_fronts(__name__)  # every test here runs against SecretCache and AsyncSecretCache


@pytest.fixture
def secret(sm: Any) -> Any:
    sm.create_secret(Name="svc/key", SecretString="value-1")
    return sm


def test_throttling_is_retried_within_one_fetch(secret: Any) -> None:
    faults = FaultInjector(secret)
    faults.inject("ThrottlingException", times=2)
    cache = SecretCache(secret, config=CacheConfig(retry_attempts=3))
    assert cache.get_secret_string("svc/key") == "value-1"
    assert cache.stats().api_calls == 3
    assert cache.stats().errors == 0


@pytest.mark.parametrize(
    ("code", "status"),
    [("ThrottlingException", 400), ("InternalServiceError", 500), ("ServiceUnavailable", 503)],
)
def test_persistent_transient_fault_is_unavailable_with_the_real_cause(
    secret: Any, code: str, status: int
) -> None:
    faults = FaultInjector(secret)
    faults.inject(code, times=None, status=status)
    cache = SecretCache(secret, config=CacheConfig(retry_attempts=3))
    with pytest.raises(SecretUnavailableError) as err:
        cache.get_secret_string("svc/key")
    assert "'svc/key' (stage AWSCURRENT)" in str(err.value)
    assert code in str(err.value) and "3 attempts" in str(err.value)
    assert isinstance(err.value.__cause__, ClientError)  # not tenacity's RetryError
    assert cache.stats().api_calls == 3


@pytest.mark.parametrize(
    ("code", "error"),
    [
        ("AccessDeniedException", SecretAccessDeniedError),
        ("DecryptionFailure", SecretAccessDeniedError),
        ("ResourceNotFoundException", SecretNotFoundError),
        ("InvalidRequestException", SecretNotFoundError),
    ],
)
def test_definitive_errors_are_not_retried(
    secret: Any, code: str, error: type[SecretCacheError]
) -> None:
    faults = FaultInjector(secret)
    faults.inject(code, times=None)
    cache = SecretCache(secret, config=CacheConfig(retry_attempts=3))
    with pytest.raises(error) as err:
        cache.get_secret_string("svc/key", "AWSPREVIOUS")
    assert err.value.secret_id == "svc/key" and err.value.version_stage == "AWSPREVIOUS"
    assert code in str(err.value)
    assert cache.stats().api_calls == 1


def test_deleted_secret_is_not_found(secret: Any) -> None:
    secret.delete_secret(SecretId="svc/key", RecoveryWindowInDays=7)
    with pytest.raises(SecretNotFoundError, match="deleted or scheduled for deletion"):
        SecretCache(secret).get_secret_string("svc/key")


def test_errors_pickle_and_copy_cleanly(secret: Any) -> None:
    import pickle

    with pytest.raises(SecretNotFoundError) as err:
        SecretCache(secret).get_secret_string("absent")
    clone = pickle.loads(pickle.dumps(err.value))
    assert type(clone) is SecretNotFoundError and str(clone) == str(err.value)
    assert clone.secret_id == "absent"


def test_a_retrying_client_is_not_retried_again_and_every_send_is_counted(aws: None) -> None:
    """Issue 9.7: a caller's client with botocore's retries (the default): attempts do not
    multiply, and ``api_calls`` equals the requests that reached the endpoint."""
    import boto3
    from botocore.config import Config

    client = boto3.client(
        "secretsmanager",
        region_name="us-east-1",
        config=Config(retries={"mode": "standard", "total_max_attempts": 3}),
    )
    client.create_secret(Name="svc/key", SecretString="value-1")
    faults = FaultInjector(client)
    faults.inject("InternalServiceError", times=None, status=500)
    cache = SecretCache(client, config=CacheConfig(retry_attempts=3, min_refresh_interval=0))
    with pytest.raises(SecretUnavailableError) as err:
        cache.get_secret_string("svc/key")
    assert faults.seen == 3, f"{faults.seen} requests: botocore's 3, not 3 x 3"
    assert cache.stats().api_calls == faults.seen
    assert isinstance(err.value.__cause__, ClientError)
    faults.clear()
    client.put_secret_value(SecretId="svc/key", SecretString="value-2")  # the app's own call
    assert cache.refresh("svc/key").secret_string == "value-2"
    assert cache.stats().api_calls == 4, "the application's own request was counted"


def test_a_client_without_botocore_retries_gets_the_cache_retries(sm: Any) -> None:
    sm.create_secret(Name="svc/key", SecretString="value-1")
    faults = FaultInjector(sm)
    faults.inject("ThrottlingException", times=2)
    cache = SecretCache(sm, config=CacheConfig(retry_attempts=3))
    assert cache.get_secret_string("svc/key") == "value-1"
    assert faults.seen == 3 and cache.stats().api_calls == 3
