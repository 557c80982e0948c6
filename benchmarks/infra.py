"""The moving parts every measurement shares: moto's server, a switchable proxy, call counters.

moto runs in a child process so its CPU time is not charged to the library being
measured. The proxy sits between a peer and moto only in the outage measurements,
where the service has to vanish (connections refused) or hang (connections accepted,
never answered) after the peer has cached a value.
"""

from __future__ import annotations

import contextlib
import math
import os
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

REGION = "us-east-1"

FAKE_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_EC2_METADATA_DISABLED": "true",
    "NO_PROXY": "127.0.0.1,localhost",
}


def use_fake_aws_env() -> None:
    """Point every AWS client this process creates at fake credentials: no real AWS, ever."""
    os.environ.update(FAKE_ENV)
    for name in (
        "AWS_PROFILE",
        "AWS_ENDPOINT_URL",
        "AWS_CONFIG_FILE",
        "AWS_SHARED_CREDENTIALS_FILE",
    ):
        os.environ.pop(name, None)
    os.environ["AWS_CONFIG_FILE"] = os.devnull
    os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull


_env_lock = threading.Lock()


@contextlib.contextmanager
def endpoint_env(endpoint: str) -> Iterator[None]:
    """Let a library build its *own default* client, aimed at ``endpoint``.

    Peers are measured with the client they create when given none, so their
    default timeouts and retry policies are part of what is measured.
    """
    with _env_lock:
        os.environ["AWS_ENDPOINT_URL"] = endpoint
        try:
            yield
        finally:
            os.environ.pop("AWS_ENDPOINT_URL", None)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"nothing listens on 127.0.0.1:{port}") from None
            time.sleep(0.05)


class MotoProcess:
    """``python -m moto.server`` on 127.0.0.1 in a child process, stopped by its pid."""

    def __init__(self) -> None:
        self.port = free_port()
        self._process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, **FAKE_ENV},
        )
        self.pid = self._process.pid
        wait_for_port(self.port)
        self.endpoint = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()


def admin_client(endpoint: str, service: str = "secretsmanager") -> Any:
    """The benchmark's own client, used to create and rotate secrets (never counted)."""
    import boto3

    return boto3.session.Session().client(service, region_name=REGION, endpoint_url=endpoint)


class CallCounter:
    """Counts every HTTP attempt a client sends, per operation (retries included)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._sent_at: list[float] = []

    def attach(self, client: Any) -> None:
        client.meta.events.register("before-send", self._on_send)

    def _on_send(self, event_name: str = "", **_: Any) -> None:
        operation = event_name.rsplit(".", 1)[-1]
        now = time.perf_counter()
        with self._lock:
            self._counts[operation] += 1
            self._sent_at.append(now)
        # returning None lets botocore send the request as usual

    def peak_per_second(self) -> int:
        """The most attempts sent within any one second since the last ``take()``.

        What a per-second quota (Parameter Store's 40 reads/s) would have seen.
        """
        with self._lock:
            stamps = sorted(self._sent_at)
        peak = 0
        first = 0
        for last, stamp in enumerate(stamps):
            while stamp - stamps[first] >= 1.0:
                first += 1
            peak = max(peak, last - first + 1)
        return peak

    def take(self) -> dict[str, int]:
        """The counts since the last ``take()``, and start again from zero."""
        with self._lock:
            counts = dict(self._counts)
            self._counts.clear()
            self._sent_at.clear()
        return counts


_SAME_ANSWER = 0.02
"""Chunks forwarded within this many seconds of each other belong to one answer."""


class SwitchableProxy:
    """A TCP forwarder on 127.0.0.1 whose upstream can fail in three ways.

    ``refuse()`` closes the listening socket and every connection: new connects are
    refused, as when the endpoint is down. ``hang()`` keeps accepting connections but
    never answers on them: the failure that only a read timeout ends. ``slow(s)``
    keeps forwarding, but holds every answer for ``s`` seconds first.
    """

    def __init__(self, upstream_port: int) -> None:
        self._upstream_port = upstream_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self.port: int = self._listener.getsockname()[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._mode = "forward"
        self._delay = 0.0
        self._lock = threading.Lock()
        self._clients: list[socket.socket] = []
        self._upstreams: list[socket.socket] = []
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()

    def _accept_loop(self) -> None:
        while not self._stopped.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self._clients.append(conn)
                mode = self._mode
            if mode == "forward":
                threading.Thread(target=self._forward, args=(conn,), daemon=True).start()
            # in "hang" mode the connection is simply held open and never read

    def _forward(self, conn: socket.socket) -> None:
        try:
            upstream = socket.create_connection(("127.0.0.1", self._upstream_port))
        except OSError:
            conn.close()
            return
        with self._lock:
            self._upstreams.append(upstream)
        threading.Thread(target=self._pipe, args=(upstream, conn, True), daemon=True).start()
        self._pipe(conn, upstream, False)

    def _pipe(self, source: socket.socket, sink: socket.socket, to_client: bool) -> None:
        last_sent = -math.inf
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                # Held once per answer: the chunks that follow its first arrive together.
                if to_client and self._delay and time.monotonic() - last_sent > _SAME_ANSWER:
                    time.sleep(self._delay)
                sink.sendall(data)
                last_sent = time.monotonic()
        except OSError:
            pass
        if to_client and self._mode != "forward":
            return  # hanging: the client must not learn that the upstream went away
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def slow(self, delay: float) -> None:
        """Answer every request, ``delay`` seconds late (0 restores plain forwarding)."""
        self._delay = delay

    def hang(self) -> None:
        with self._lock:
            self._mode = "hang"
            upstreams, self._upstreams = self._upstreams, []
        for sock in upstreams:
            with contextlib.suppress(OSError):
                sock.close()

    def refuse(self) -> None:
        with self._lock:
            self._mode = "refuse"
        self.close()

    def close(self) -> None:
        self._stopped.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        self._thread.join(timeout=2)
        with self._lock:
            socks, self._clients, self._upstreams = self._clients + self._upstreams, [], []
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.close()
