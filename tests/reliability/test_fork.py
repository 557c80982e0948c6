"""A cache used in a parent, then in os.fork()ed children (gunicorn's pre-fork model).

Children must not share the parent's HTTP connections (two processes writing to
one socket interleave requests and read each other's answers) nor inherit its
locks in a held state (a lock held by a parent thread at fork time is never
released in the child, whose copy of that thread does not exist). Results come
back through a pipe; a child that hangs is killed by pid after a deadline.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

import secretcache.cache
from secretcache import CacheConfig, SecretCache

from .conftest import Rig

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")

CHILD_DEADLINE = 30.0


def pooled_ports(client: Any) -> set[int]:
    """Local ports of the connections kept in the client's urllib3 pools."""
    manager = client._endpoint.http_session._manager
    ports: set[int] = set()
    for key in list(manager.pools.keys()):
        pool = manager.pools.get(key)
        for conn in list(getattr(getattr(pool, "pool", None), "queue", ())):
            sock = getattr(conn, "sock", None)
            if sock is not None:
                with contextlib.suppress(OSError):
                    ports.add(sock.getsockname()[1])
    return ports


def plant_connection(client: Any) -> int:
    """Leave one open keep-alive connection in the client's pool; returns its local port.

    moto's server closes every connection after answering, so a real keep-alive
    socket is put in the pool by hand: exactly what a child must not pick up.
    """
    manager = client._endpoint.http_session._manager
    pool = manager.connection_from_url(client.meta.endpoint_url)
    conn = pool._get_conn()
    conn.connect()
    port = int(conn.sock.getsockname()[1])
    pool._put_conn(conn)
    assert port in pooled_ports(client)
    return port


def in_child(work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run ``work`` in a forked child; return what it reported (or its failure)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never return into pytest
        os.close(read_end)
        code = 0
        try:
            report = work()
        except BaseException as exc:
            report = {"failed": f"{type(exc).__name__}: {exc}"}
            code = 1
        try:
            os.write(write_end, json.dumps(report).encode())
        finally:
            os._exit(code)
    os.close(write_end)
    chunks: list[bytes] = []
    try:
        while True:
            ready, _, _ = select.select([read_end], [], [], CHILD_DEADLINE)
            if not ready:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                raise AssertionError("the child hung (deadlock?) and was killed")
            chunk = os.read(read_end, 65536)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(read_end)
    _, status = os.waitpid(pid, 0)
    report: dict[str, Any] = json.loads(b"".join(chunks) or b"{}")
    assert "failed" not in report, f"child failed: {report.get('failed')}"
    assert os.waitstatus_to_exitcode(status) == 0
    return report


def child_work(cache: SecretCache, secret_id: str, parent_client_id: int) -> dict[str, Any]:
    owned_reset = cache._source._client is None
    inherited = sorted(pooled_ports(cache.client))  # before any request of the child
    value = cache.get_secret_string(secret_id)
    fresh = cache.refresh(secret_id).secret_string
    other = cache.get_secret_string(secret_id + "-other")  # a new entry: cache._lock works
    return {
        "owned_reset": owned_reset,
        "same_client": id(cache.client) == parent_client_id,
        "inherited_ports": inherited,
        "value_ok": value is not None,
        "fresh_ok": fresh == f"{secret_id}|v2",
        "other_ok": other == f"{secret_id}-other|v1",
        "default_cache_ok": secretcache.default_cache() is secretcache.default_cache(),
    }


def _two_secrets(rig: Rig) -> str:
    secret_id, _ = rig.secret("fork/a")
    rig.sm.create_secret(Name=secret_id + "-other", SecretString=f"{secret_id}-other|v1")
    return secret_id


@pytest.mark.parametrize("client_kind", ["library-default", "user-passed"])
def test_children_get_their_own_connections(
    moto_server: Any, monkeypatch: pytest.MonkeyPatch, client_kind: str
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.endpoint)
    rig = Rig(moto_server, secretcache.cache.monotonic, monkeypatch)  # type: ignore[arg-type]
    secret_id = _two_secrets(rig)
    client = moto_server.client() if client_kind == "user-passed" else None
    cache = SecretCache(client, config=CacheConfig(min_refresh_interval=0.0))
    assert cache.get_secret_string(secret_id) == f"{secret_id}|v1"
    planted = plant_connection(cache.client)
    rig.sm.put_secret_value(SecretId=secret_id, SecretString=f"{secret_id}|v2")

    parent_client = id(cache.client)
    reports = [in_child(lambda: child_work(cache, secret_id, parent_client)) for _ in range(3)]
    for report in reports:
        assert report["value_ok"] and report["fresh_ok"] and report["other_ok"], report
        assert report["default_cache_ok"]
        assert planted not in report["inherited_ports"], "a child kept the parent's socket"
        if client_kind == "library-default":
            assert report["owned_reset"] and not report["same_client"], report
        else:
            assert report["same_client"], "the user's client was replaced"
    # the parent's own socket was not disturbed by the children closing their copies
    assert planted in pooled_ports(cache.client)
    assert cache.refresh(secret_id).secret_string == f"{secret_id}|v2"


@pytest.mark.parametrize("how", ["forced-refresh-thread", "background-ttl-refresh"])
def test_fork_while_a_fetch_is_in_flight(
    moto_server: Any, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """A parent fetch is in flight (a caller's thread, or a background worker) at the fork.

    The child must start clean: no fetch in flight it would wait on forever (its
    worker thread does not exist there), no held lock, and it refreshes by itself.
    """
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.endpoint)
    rig = Rig(moto_server, secretcache.cache.monotonic, monkeypatch)  # type: ignore[arg-type]
    secret_id = _two_secrets(rig)
    ttl = 0.5 if how == "background-ttl-refresh" else 3600.0
    cache = SecretCache(
        config=CacheConfig(min_refresh_interval=0.0, ttl=ttl, jitter=0.0, max_refresh_wait=0.0)
    )
    assert cache.get_secret_string(secret_id) == f"{secret_id}|v1"
    rig.sm.put_secret_value(SecretId=secret_id, SecretString=f"{secret_id}|v2")
    parent = os.getpid()
    inside, release = threading.Event(), threading.Event()

    def hold(**_: Any) -> None:
        if os.getpid() == parent:
            inside.set()
            release.wait(20)

    cache.client.meta.events.register("before-send.secrets-manager.*", hold)
    refresher: threading.Thread | None = None
    if how == "forced-refresh-thread":
        refresher = threading.Thread(target=lambda: cache.refresh(secret_id))
        refresher.start()
    else:
        time.sleep(ttl + 0.1)
        assert cache.get_secret_string(secret_id) == f"{secret_id}|v1"  # served, not waited
    try:
        assert inside.wait(10), "the parent's refresh never started"
        entry = next(e for e in cache._entries.values() if e.secret_id == secret_id)
        assert entry.flight is not None, "no fetch in flight: the test proves nothing"

        parent_client = id(cache.client)

        def work() -> dict[str, Any]:
            clean = entry.flight is None and not entry.lock.locked()
            report = child_work(cache, secret_id, parent_client)
            report["clean"] = clean
            return report

        report = in_child(work)
    finally:
        release.set()
        if refresher is not None:
            refresher.join(20)
    assert report["clean"], "the child inherited a fetch in flight or a held lock"
    assert report["fresh_ok"] and report["other_ok"], report
    deadline = time.monotonic() + 10
    while entry.flight is not None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert cache.get_secret_string(secret_id) == f"{secret_id}|v2"
