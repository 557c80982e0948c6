"""Each way Secrets Manager can fail, against moto's server: what the caller sees, what it costs.

For every fault: a cold read raises the typed error of API.md section 3 (naming
the secret and stage, botocore's error as ``__cause__``); a cached value keeps
being served; the number of API calls over a long simulated outage stays under
the bound the error backoff gives; and the cache recovers by itself.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError
from moto.server import ThreadedMotoServer

from secretcache import (
    SecretAccessDeniedError,
    SecretCacheError,
    SecretNotFoundError,
    SecretUnavailableError,
)

from .conftest import FAULT_TABLE, Rig
from .faults import FakeClock, free_port, max_fetches

TTL = 60.0
BACKOFF_MAX = 30.0
ATTEMPTS = 3
MAX_STALE = 600.0
WINDOW = 300.0  # simulated seconds of fault
STEP = 0.05  # a read every 50 ms (simulated) by one busy reader per entry

CONFIG: dict[str, Any] = {
    "ttl": TTL,
    "jitter": 0.0,
    "retry_attempts": ATTEMPTS,
    "error_backoff_max": BACKOFF_MAX,
    "max_stale": MAX_STALE,
    # These tests check the engine's call-rate bounds on a fake clock: the reader that
    # refreshes waits for its refresh, so every attempt happens inside the window it
    # is counted in. Bounded waits are tested in test_silent_endpoint.py.
    "max_refresh_wait": math.inf,
}

# fault -> (error a cold read gets, type of its __cause__, retried within one fetch?)
INJECTED: dict[str, tuple[type[SecretCacheError], type[BaseException], bool]] = {
    "throttling": (SecretUnavailableError, ClientError, True),
    "http-500": (SecretUnavailableError, ClientError, True),
    "http-503-html": (SecretUnavailableError, ClientError, True),
    "connection-refused": (SecretUnavailableError, EndpointConnectionError, True),
    "read-timeout": (SecretUnavailableError, ReadTimeoutError, True),
    "access-denied": (SecretAccessDeniedError, ClientError, False),
    "kms-decryption-failure": (SecretAccessDeniedError, ClientError, False),
}


def check_error(
    exc: BaseException,
    kind: type[SecretCacheError],
    secret_id: str,
    label: str,
    cause: type[BaseException],
) -> None:
    assert isinstance(exc, kind), f"expected {kind.__name__}, got {type(exc).__name__}"
    assert secret_id in str(exc) and label in str(exc), f"error does not name its target: {exc}"
    assert exc.secret_id == secret_id  # type: ignore[attr-defined]
    assert label in (exc.version_stage, exc.version_id)  # type: ignore[attr-defined]
    assert isinstance(exc.__cause__, cause), f"cause is {type(exc.__cause__).__name__}"


def fault_window(
    rig: Rig, read_warm: Any, read_cold: Any, seconds: float = WINDOW
) -> tuple[int, int, set[str]]:
    """Read both entries every STEP for ``seconds``; returns (reads, errors, error kinds)."""
    reads = errors = 0
    kinds: set[str] = set()
    end = rig.clock.now + seconds
    while rig.clock.now < end:
        read_warm()
        try:
            read_cold()
        except SecretCacheError as exc:
            errors += 1
            kinds.add(type(exc).__name__)
        reads += 2
        rig.clock.advance(STEP)
    return reads, errors, kinds


@pytest.mark.parametrize("fault", list(INJECTED))
def test_injected_fault(rig: Rig, fault: str) -> None:
    kind, cause, transient = INJECTED[fault]
    per_fetch = ATTEMPTS if transient else 1
    warm_id, v1 = rig.secret("fault/warm")
    cold_id, cold_value = rig.secret("fault/cold")
    cache, faults = rig.cache(**CONFIG)
    assert cache.get_secret_string(warm_id) == v1, "warm read returned the wrong value"

    faults.set(fault)
    faults.reset_counts()
    with pytest.raises(SecretCacheError) as info:
        cache.get_secret_string(cold_id)
    check_error(info.value, kind, cold_id, "AWSCURRENT", cause)
    assert faults.sent == per_fetch, f"{faults.sent} attempts for one cold read"
    with pytest.raises(kind):  # read again at once: the failure is remembered, no call
        cache.get_secret_string(cold_id)
    assert faults.sent == per_fetch

    rig.sm.put_secret_value(SecretId=warm_id, SecretString=f"{warm_id}|v2")
    rig.clock.advance(TTL + 1)
    faults.reset_counts()

    def read_warm() -> None:
        assert cache.get_secret_string(warm_id) == v1, "stale value not served during the fault"

    reads, errors, kinds = fault_window(rig, read_warm, lambda: cache.get_secret_string(cold_id))
    calls = faults.sent
    bound = 2 * per_fetch * max_fetches(WINDOW, BACKOFF_MAX)
    assert calls <= bound, f"{calls} API calls in {WINDOW}s of fault (bound {bound})"
    assert calls >= 2, "no refresh was attempted during the fault"
    assert errors == reads // 2 and kinds == {kind.__name__}
    assert cache.stats().stale_served > 0

    faults.clear()
    rig.clock.advance(BACKOFF_MAX)
    assert cache.get_secret_string(warm_id) == f"{warm_id}|v2", "did not recover"
    assert cache.get_secret_string(cold_id) == cold_value, "cold entry did not recover"
    FAULT_TABLE.append(
        {
            "fault": fault,
            "cold read raises": f"{kind.__name__} (cause {cause.__name__})",
            "cached entry": "stale value served",
            "API calls / s of fault": f"{calls / WINDOW:.3f} ({calls} in {WINDOW:.0f} s, "
            f"{reads} reads; bound {bound})",
            "recovers": "yes",
        }
    )


def test_slow_api_blocks_only_the_refresher(rig: Rig) -> None:
    """One call takes 1 s: the reader refreshing waits for it, every other reader does not."""
    secret_id, v1 = rig.secret("fault/slow")
    cache, faults = rig.cache(**CONFIG)
    assert cache.get_secret_string(secret_id) == v1
    rig.sm.put_secret_value(SecretId=secret_id, SecretString=f"{secret_id}|v2")
    rig.clock.advance(TTL + 1)
    entered = threading.Event()

    def slow(request: Any) -> None:
        entered.set()
        time.sleep(1.0)
        return None

    faults.set(slow)
    faults.reset_counts()
    result: list[str] = []
    refresher = threading.Thread(target=lambda: result.append(cache.get_secret_string(secret_id)))
    started = time.perf_counter()
    refresher.start()
    assert entered.wait(5)
    waits = []
    for _ in range(20):
        t0 = time.perf_counter()
        assert cache.get_secret_string(secret_id) == v1, "reader did not get the previous value"
        waits.append(time.perf_counter() - t0)
    refresher.join(10)
    refresher_wait = time.perf_counter() - started
    assert result == [f"{secret_id}|v2"], "refresher did not get the new value"
    assert max(waits) < 0.5, f"a reader waited {max(waits):.3f}s behind the slow call"
    assert refresher_wait >= 1.0
    assert faults.sent == 1
    FAULT_TABLE.append(
        {
            "fault": "slow API (1 s per call)",
            "cold read raises": "nothing (waits ~1 s, gets the value)",
            "cached entry": f"refresher waits {refresher_wait:.1f} s; other readers "
            f"{max(waits) * 1000:.1f} ms max, previous value",
            "API calls / s of fault": "1 call for the whole refresh",
            "recovers": "yes",
        }
    )


def test_server_stopped_and_started_again(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    """moto itself goes away (connection refused) mid-run and comes back on the same port."""
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
        warm_id, v1 = rig.secret("outage/warm")
        cold_id, cold_value = rig.secret("outage/cold")
        cache, faults = rig.cache(**CONFIG)
        assert cache.get_secret_string(warm_id) == v1
        server.stop()

        rig.sm.put_secret_value(SecretId=warm_id, SecretString=f"{warm_id}|v2")  # other server
        rig.clock.advance(TTL + 1)
        faults.reset_counts()
        with pytest.raises(SecretUnavailableError) as info:
            cache.get_secret_string(cold_id)
        check_error(
            info.value, SecretUnavailableError, cold_id, "AWSCURRENT", EndpointConnectionError
        )

        def read_warm() -> None:
            assert cache.get_secret_string(warm_id) == v1, "stale value not served"

        reads, _, _ = fault_window(rig, read_warm, lambda: cache.get_secret_string(cold_id))
        calls = faults.sent
        bound = 2 * ATTEMPTS * max_fetches(WINDOW + 1, BACKOFF_MAX)
        assert calls <= bound, f"{calls} calls while the server was down (bound {bound})"

        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        server.start()
        rig.clock.advance(BACKOFF_MAX)
        assert cache.get_secret_string(warm_id) == f"{warm_id}|v2", "no recovery after restart"
        assert cache.get_secret_string(cold_id) == cold_value
        FAULT_TABLE.append(
            {
                "fault": "moto server stopped mid-run, restarted on the same port",
                "cold read raises": "SecretUnavailableError (cause EndpointConnectionError)",
                "cached entry": "stale value served",
                "API calls / s of fault": f"{calls / WINDOW:.3f} ({calls} in {WINDOW:.0f} s, "
                f"{reads} reads; bound {bound})",
                "recovers": "yes (new version seen after restart)",
            }
        )
    finally:
        server.stop()


def _stale_then_error(
    rig: Rig, cache: Any, faults: Any, read: Any, kind: type[SecretCacheError]
) -> tuple[int, int]:
    """Past its TTL the old value is served until max_stale runs out, then ``kind``."""
    faults.reset_counts()
    served = 0
    end = rig.clock.now + MAX_STALE - 5
    while rig.clock.now < end:
        read()
        served += 1
        rig.clock.advance(1.0)
    rig.clock.advance(TTL + 5)
    with pytest.raises(kind):
        read()
    return served, faults.sent


def test_secret_scheduled_for_deletion_then_restored(rig: Rig, clock: FakeClock) -> None:
    secret_id, v1 = rig.secret("gone/scheduled")
    cache, faults = rig.cache(**CONFIG)
    assert cache.get_secret_string(secret_id) == v1
    rig.sm.delete_secret(SecretId=secret_id, RecoveryWindowInDays=7)
    clock.advance(TTL + 1)

    def read() -> None:
        assert cache.get_secret_string(secret_id) == v1, "stale value not served"

    served, calls = _stale_then_error(rig, cache, faults, read, SecretNotFoundError)
    with pytest.raises(SecretNotFoundError) as info:
        cache.get_secret_string(secret_id)
    check_error(info.value, SecretNotFoundError, secret_id, "AWSCURRENT", ClientError)
    assert "deleted or scheduled for deletion" in str(info.value)
    bound = max_fetches(MAX_STALE + TTL + 5, BACKOFF_MAX)
    assert calls <= bound
    other = SecretNotFoundError  # a cold reader of a deleted secret gets the same error
    with pytest.raises(other):
        cache.refresh(f"{secret_id}-never-existed")

    rig.sm.restore_secret(SecretId=secret_id)
    clock.advance(BACKOFF_MAX)
    assert cache.get_secret_string(secret_id) == v1, "did not recover after restore"
    FAULT_TABLE.append(
        {
            "fault": "secret scheduled for deletion (InvalidRequestException)",
            "cold read raises": "SecretNotFoundError (cause ClientError)",
            "cached entry": f"stale value for max_stale ({served} reads), then SecretNotFoundError",
            "API calls / s of fault": f"{calls / (MAX_STALE + TTL):.3f} ({calls} in "
            f"{MAX_STALE + TTL:.0f} s; bound {bound})",
            "recovers": "yes (after restore_secret)",
        }
    )


def test_secret_deleted_for_good(rig: Rig, clock: FakeClock) -> None:
    secret_id, v1 = rig.secret("gone/forever")
    cache, faults = rig.cache(**CONFIG)
    assert cache.get_secret_string(secret_id) == v1
    rig.sm.delete_secret(SecretId=secret_id, ForceDeleteWithoutRecovery=True)
    clock.advance(TTL + 1)

    def read() -> None:
        assert cache.get_secret_string(secret_id) == v1, "stale value not served"

    _served, calls = _stale_then_error(rig, cache, faults, read, SecretNotFoundError)
    bound = max_fetches(MAX_STALE + TTL + 5, BACKOFF_MAX)
    assert calls <= bound
    with pytest.raises(KeyError):  # SecretNotFoundError is a KeyError too
        cache.get_secret_string(secret_id)
    rig.sm.create_secret(Name=secret_id, SecretString=f"{secret_id}|new")
    clock.advance(BACKOFF_MAX)
    assert cache.get_secret_string(secret_id) == f"{secret_id}|new", "no recovery"
    FAULT_TABLE.append(
        {
            "fault": "secret deleted (ResourceNotFoundException)",
            "cold read raises": "SecretNotFoundError (cause ClientError)",
            "cached entry": "stale value for max_stale, then SecretNotFoundError",
            "API calls / s of fault": f"{calls / (MAX_STALE + TTL):.3f} ({calls} in "
            f"{MAX_STALE + TTL:.0f} s; bound {bound})",
            "recovers": "yes (secret re-created)",
        }
    )


def test_stage_removed_then_put_back(rig: Rig, clock: FakeClock) -> None:
    secret_id, _ = rig.secret("gone/stage")
    rig.sm.put_secret_value(
        SecretId=secret_id, SecretString=f"{secret_id}|blue", VersionStages=["BLUE"]
    )
    version = rig.sm.get_secret_value(SecretId=secret_id, VersionStage="BLUE")["VersionId"]
    cache, faults = rig.cache(**CONFIG)
    assert cache.get_secret_string(secret_id, "BLUE") == f"{secret_id}|blue"
    rig.sm.update_secret_version_stage(
        SecretId=secret_id, VersionStage="BLUE", RemoveFromVersionId=version
    )
    faults.reset_counts()
    clock.advance(2)  # past min_refresh_interval
    with pytest.raises(SecretNotFoundError) as info:
        cache.refresh(secret_id, "BLUE")
    check_error(info.value, SecretNotFoundError, secret_id, "BLUE", ClientError)
    clock.advance(TTL + 1)

    def read() -> None:
        assert cache.get_secret_string(secret_id, "BLUE") == f"{secret_id}|blue", "no stale"

    _served, calls = _stale_then_error(rig, cache, faults, read, SecretNotFoundError)
    assert calls <= max_fetches(MAX_STALE + TTL + 5, BACKOFF_MAX)
    rig.sm.update_secret_version_stage(
        SecretId=secret_id, VersionStage="BLUE", MoveToVersionId=version
    )
    clock.advance(BACKOFF_MAX)
    assert cache.get_secret_string(secret_id, "BLUE") == f"{secret_id}|blue", "no recovery"
    FAULT_TABLE.append(
        {
            "fault": "stage label removed",
            "cold read raises": "SecretNotFoundError naming the stage",
            "cached entry": "stale value for max_stale, then SecretNotFoundError",
            "API calls / s of fault": f"{calls / (MAX_STALE + TTL):.3f} ({calls} in "
            f"{MAX_STALE + TTL:.0f} s)",
            "recovers": "yes (label put back)",
        }
    )


def test_version_id_that_vanished(rig: Rig, clock: FakeClock) -> None:
    """A pinned version keeps being served from the cache; a cold read of it is NotFound."""
    secret_id, v1 = rig.secret("gone/version")
    version = rig.sm.get_secret_value(SecretId=secret_id, VersionStage="AWSCURRENT")["VersionId"]
    cache, faults = rig.cache(**CONFIG)
    assert cache.get_secret_string(secret_id, version_id=version) == v1
    rig.sm.delete_secret(SecretId=secret_id, ForceDeleteWithoutRecovery=True)
    rig.sm.create_secret(Name=secret_id, SecretString=f"{secret_id}|reborn")
    faults.reset_counts()
    for _ in range(100):  # content of a version never changes: no call, ever
        clock.advance(MAX_STALE)
        assert cache.get_secret_string(secret_id, version_id=version) == v1, "pinned lost"
    assert faults.sent == 0
    other, _ = rig.secret("gone/version-cold")
    with pytest.raises(SecretNotFoundError) as info:
        cache.get_secret_string(other, version_id=version)
    check_error(info.value, SecretNotFoundError, other, version, ClientError)
    with pytest.raises(SecretNotFoundError):
        cache.refresh(secret_id, version_id=version)
    assert faults.sent == 2
    FAULT_TABLE.append(
        {
            "fault": "version id vanished",
            "cold read raises": "SecretNotFoundError naming the version id",
            "cached entry": "the pinned version keeps being served (immutable)",
            "API calls / s of fault": "0 for cached reads; 1 per cold read or refresh()",
            "recovers": "n/a (a version cannot come back)",
        }
    )


def test_prefetch_during_outage_backs_off(rig: Rig) -> None:
    """A Lambda-style prefetch loop while the service is down must not call per prefetch."""
    ids = [rig.secret("outage/prefetch")[0] for _ in range(5)]
    warm = ids[:3]
    cache, faults = rig.cache(**CONFIG)
    cache.prefetch(*warm)
    faults.set("http-500")
    rig.clock.advance(TTL + 1)
    faults.reset_counts()
    prefetches = 0
    window = 120.0
    end = rig.clock.now + window
    while rig.clock.now < end:
        with pytest.raises(SecretUnavailableError):  # the two cold ids cannot be loaded
            cache.prefetch(*ids)
        for secret_id in warm:
            assert cache.get_secret_string(secret_id), "stale value not served"
        prefetches += 1
        rig.clock.advance(1.0)
    calls = faults.sent
    # each entry backs off on its own; a batch call is made only for entries due a retry
    bound = ATTEMPTS * (len(ids) + 1) * max_fetches(window, BACKOFF_MAX)
    assert calls <= bound, f"{calls} calls for {prefetches} prefetches during an outage"
    faults.clear()
    rig.clock.advance(BACKOFF_MAX)
    cache.prefetch(*ids)
    for secret_id in ids:
        assert cache.get_secret_string(secret_id) == f"{secret_id}|v1", "did not recover"
    FAULT_TABLE.append(
        {
            "fault": "prefetch() in a loop during a 5xx outage (5 ids, 3 cached)",
            "cold read raises": "SecretUnavailableError (first failure, after all ids tried)",
            "cached entry": "stale values served",
            "API calls / s of fault": f"{calls / window:.3f} ({calls} in {window:.0f} s, "
            f"{prefetches} prefetches; bound {bound})",
            "recovers": "yes",
        }
    )
