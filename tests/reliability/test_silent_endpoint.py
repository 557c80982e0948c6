"""An endpoint that accepts connections and never answers: nobody holding a value waits.

The worst network fault: no error arrives, only silence. Readers that have a
value get it at once while one caller does the refresh; that caller waits at
most the documented bound -- read timeout x attempts plus a little backoff --
with the library's own client (connect 2 s / read 3 s, no botocore retries) or
with a client the user configured (whose settings the library leaves alone).
The bounds asserted are deliberately generous: this checks behaviour, not speed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ReadTimeoutError

from secretcache import SecretUnavailableError
from secretcache.source import CONNECT_TIMEOUT, READ_TIMEOUT

from .conftest import FAULT_TABLE, Rig
from .faults import TcpProxy

TTL = 60.0


@pytest.fixture
def proxy(moto_server: Any) -> Iterator[TcpProxy]:
    port = int(moto_server.endpoint.rsplit(":", 1)[1])
    proxy = TcpProxy(port)
    yield proxy
    proxy.close()


def _wait_for_accept(proxy: TcpProxy, before: int) -> None:
    deadline = time.monotonic() + 5
    while proxy.accepted <= before and time.monotonic() < deadline:
        time.sleep(0.005)
    assert proxy.accepted > before, "the refresher never reached the silent endpoint"


def _silent_refresh(
    rig: Rig, proxy: TcpProxy, cache: Any, faults: Any, secret_id: str, value: str
) -> tuple[float, float]:
    """Expire the entry, silence the endpoint, refresh in a thread while others read."""
    assert cache.get_secret_string(secret_id) == value
    proxy.silence()
    rig.clock.advance(TTL + 1)
    faults.reset_counts()
    before = proxy.accepted
    outcome: list[Any] = []

    def refresher() -> None:
        started = time.perf_counter()
        try:
            outcome.append(cache.get_secret_string(secret_id))
        except Exception as exc:  # pragma: no cover - reported below
            outcome.append(exc)
        outcome.append(time.perf_counter() - started)

    thread = threading.Thread(target=refresher)
    thread.start()
    _wait_for_accept(proxy, before)
    slowest = 0.0
    for _ in range(50):
        t0 = time.perf_counter()
        assert cache.get_secret_string(secret_id) == value, "reader did not get the cached value"
        slowest = max(slowest, time.perf_counter() - t0)
    thread.join(30)
    assert not thread.is_alive(), "the refresher never came back"
    assert outcome[0] == value, "the refresher did not fall back to the cached value"
    return outcome[1], slowest


def test_default_client_bounded_wait(rig: Rig, proxy: TcpProxy) -> None:
    rig.monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
    attempts = 1  # keeps the test at one read timeout; the bound scales with it
    cache, faults = rig.cache(ttl=TTL, jitter=0.0, retry_attempts=attempts)
    config = cache.client.meta.config
    assert (config.connect_timeout, config.read_timeout) == (CONNECT_TIMEOUT, READ_TIMEOUT)
    assert config.retries.get("total_max_attempts") == 1, "botocore retries are not off"
    secret_id, value = rig.secret("silent/default")
    cold_id, _ = rig.secret("silent/default-cold")

    waited, slowest = _silent_refresh(rig, proxy, cache, faults, secret_id, value)
    bound = attempts * READ_TIMEOUT + 2.0  # + tenacity backoff and scheduling slack
    assert waited <= bound, f"refresher waited {waited:.1f}s (bound {bound:.1f}s)"
    assert waited >= READ_TIMEOUT * 0.9, "the read timeout did not apply"
    assert slowest < 0.5, f"a reader holding a value waited {slowest:.3f}s"
    assert faults.sent == attempts

    started = time.perf_counter()
    with pytest.raises(SecretUnavailableError) as info:
        cache.get_secret_string(cold_id)
    cold_wait = time.perf_counter() - started
    assert isinstance(info.value.__cause__, ReadTimeoutError)
    assert cold_id in str(info.value) and "AWSCURRENT" in str(info.value)
    assert cold_wait <= bound

    # the failure is remembered: the next readers neither wait nor call
    faults.reset_counts()
    t0 = time.perf_counter()
    assert cache.get_secret_string(secret_id) == value
    with pytest.raises(SecretUnavailableError):
        cache.get_secret_string(cold_id)
    assert time.perf_counter() - t0 < 0.5 and faults.sent == 0

    proxy.up("forward")
    rig.clock.advance(301)
    assert cache.get_secret_string(cold_id)  # recovers once the endpoint answers again
    FAULT_TABLE.append(
        {
            "fault": "silent endpoint, library's default client",
            "cold read raises": f"SecretUnavailableError (cause ReadTimeoutError) "
            f"after {cold_wait:.1f} s",
            "cached entry": f"refresher waited {waited:.1f} s (bound {bound:.0f} s); "
            f"other readers {slowest * 1000:.1f} ms max",
            "API calls / s of fault": f"{attempts} attempt per fetch, then error backoff",
            "recovers": "yes",
        }
    )


def test_user_client_keeps_its_config(rig: Rig, proxy: TcpProxy) -> None:
    from botocore.config import Config

    client_config = Config(
        connect_timeout=0.5, read_timeout=0.5, retries={"total_max_attempts": 2, "mode": "standard"}
    )
    import boto3

    client = boto3.session.Session().client(
        "secretsmanager", endpoint_url=proxy.endpoint, config=client_config
    )
    attempts = 2
    cache, faults = rig.cache(client, ttl=TTL, jitter=0.0, retry_attempts=attempts)
    assert cache.client is client
    secret_id, value = rig.secret("silent/user")

    waited, slowest = _silent_refresh(rig, proxy, cache, faults, secret_id, value)
    assert (client.meta.config.read_timeout, client.meta.config.connect_timeout) == (0.5, 0.5)
    sends = attempts * 2  # our attempts x botocore's own
    bound = sends * 0.5 + 3.0  # + both layers' backoff and slack
    assert waited <= bound, f"refresher waited {waited:.1f}s (bound {bound:.1f}s)"
    assert slowest < 0.5, f"a reader holding a value waited {slowest:.3f}s"
    assert faults.sent == sends, f"{faults.sent} requests sent"
    FAULT_TABLE.append(
        {
            "fault": "silent endpoint, user's client (read 0.5 s, 2 botocore attempts)",
            "cold read raises": "SecretUnavailableError (cause ReadTimeoutError)",
            "cached entry": f"refresher waited {waited:.1f} s (bound {bound:.0f} s); "
            f"other readers {slowest * 1000:.1f} ms max",
            "API calls / s of fault": f"{sends} requests per fetch, then error backoff",
            "recovers": "yes",
        }
    )
