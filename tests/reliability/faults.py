"""Fault injection for the reliability suite: HTTP-level faults, a TCP proxy, a fake clock.

Faults are injected below the client's request signing, at botocore's
``before-send`` event, so everything above it -- parsing, error mapping, the
library's retries and backoff -- runs exactly as it would against a failing
service. Where a fault must be real (a refused or silent TCP endpoint, a server
that stops and comes back), :class:`TcpProxy` sits between the client and moto.
"""

from __future__ import annotations

import json
import math
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

from botocore.awsrequest import AWSResponse
from botocore.exceptions import EndpointConnectionError, ReadTimeoutError

# ------------------------------------------------------------------ clock


class FakeClock:
    """Replaces ``secretcache.cache.monotonic``: TTLs and backoff pass without sleeping."""

    def __init__(self, start: float = 10_000.0) -> None:
        self.now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds


# ------------------------------------------------------------ HTTP faults


class _Body:
    """The ``raw`` object botocore reads an ``AWSResponse`` body from."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._data


def aws_error(status: int, code: str, message: str = "injected fault") -> AWSResponse:
    """An answer shaped like Secrets Manager's JSON-protocol error responses."""
    body = json.dumps({"__type": code, "message": message}).encode()
    headers = {
        "x-amzn-RequestId": "00000000-0000-0000-0000-000000000000",
        "Content-Type": "application/x-amz-json-1.1",
        "Content-Length": str(len(body)),
    }
    return AWSResponse("http://127.0.0.1/", status, headers, _Body(body))


def html_error(status: int) -> AWSResponse:
    """A load balancer's bare HTML error page (no AWS error code at all)."""
    body = f"<html><body><b>Http/1.1 {status}</b></body></html>".encode()
    return AWSResponse("http://127.0.0.1/", status, {"Content-Type": "text/html"}, _Body(body))


FaultAction = Callable[[Any], AWSResponse | None]


def _raise(exc_factory: Callable[[], Exception]) -> FaultAction:
    def action(request: Any) -> AWSResponse | None:
        raise exc_factory()

    return action


def _answer(factory: Callable[[], AWSResponse]) -> FaultAction:
    def action(request: Any) -> AWSResponse | None:
        return factory()

    return action


def _sleep(seconds: float) -> FaultAction:
    def action(request: Any) -> AWSResponse | None:
        time.sleep(seconds)
        return None  # then the request really goes out

    return action


FAULTS: dict[str, FaultAction] = {
    "throttling": _answer(lambda: aws_error(400, "ThrottlingException", "Rate exceeded")),
    "http-500": _answer(lambda: aws_error(500, "InternalServiceError")),
    "http-503-html": _answer(lambda: html_error(503)),
    "connection-refused": _raise(
        lambda: EndpointConnectionError(endpoint_url="http://127.0.0.1:9/")
    ),
    "read-timeout": _raise(lambda: ReadTimeoutError(endpoint_url="http://127.0.0.1:9/")),
    "access-denied": _answer(
        lambda: aws_error(400, "AccessDeniedException", "not authorized to GetSecretValue")
    ),
    "kms-decryption-failure": _answer(
        lambda: aws_error(400, "DecryptionFailure", "KMS could not decrypt the secret")
    ),
}
"""Every injectable fault, by name."""


def request_secret_ids(request: Any) -> list[str]:
    """The secret ids a signed request is about (``SecretId`` or ``SecretIdList``)."""
    try:
        body = json.loads(request.body or b"{}")
    except ValueError:
        return []
    if "SecretId" in body:
        return [body["SecretId"]]
    return list(body.get("SecretIdList") or ())


class Faults:
    """Counts every request one client sends and, when told to, makes them fail.

    ``sent`` counts HTTP attempts that reached the send stage (each retry
    counts), which is what a service's throttling quota sees. ``only`` limits
    the fault to requests about some secret ids; ``every`` makes only every
    n-th request of a thread fail (a flaky rather than a dead service).
    """

    def __init__(self, client: Any) -> None:
        self._lock = threading.Lock()
        self._action: FaultAction | None = None
        self._only: frozenset[str] | None = None
        self._every = 1
        self._local = threading.local()
        self.sent = 0
        self.injected = 0
        self.by_operation: dict[str, int] = {}
        client.meta.events.register("before-send.secrets-manager.*", self._before_send)

    def set(
        self,
        fault: str | FaultAction | None,
        *,
        only: set[str] | frozenset[str] | None = None,
        every: int = 1,
    ) -> None:
        with self._lock:
            self._action = FAULTS[fault] if isinstance(fault, str) else fault
            self._only = frozenset(only) if only is not None else None
            self._every = every

    def clear(self) -> None:
        self.set(None)

    def reset_counts(self) -> None:
        with self._lock:
            self.sent = self.injected = 0
            self.by_operation = {}

    @property
    def injected_here(self) -> int:
        """Faults injected into requests made by the calling thread."""
        return int(getattr(self._local, "injected", 0))

    def _before_send(self, request: Any, **kwargs: Any) -> AWSResponse | None:
        operation = str(kwargs.get("event_name", "")).rsplit(".", 1)[-1]
        with self._lock:
            self.sent += 1
            self.by_operation[operation] = self.by_operation.get(operation, 0) + 1
            action, only, every = self._action, self._only, self._every
        if action is None:
            return None
        if only is not None and not only.intersection(request_secret_ids(request)):
            return None
        seq = getattr(self._local, "seq", 0) + 1
        self._local.seq = seq
        if seq % every:
            return None
        with self._lock:
            self.injected += 1
        self._local.injected = self.injected_here + 1
        return action(request)


# --------------------------------------------------------------- TCP proxy


class TcpProxy:
    """A loopback TCP proxy whose upstream can be cut, silenced or restored.

    Modes: ``"forward"`` relays to the target; ``"slow"`` relays, but holds each
    answer back for ``delay`` seconds; ``"silent"`` accepts connections
    and never answers (the worst case: a black-holed endpoint); ``"down"`` closes
    the listening socket and every open connection, so new connects are refused,
    until ``up()`` listens again on the same port.
    """

    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self._target = (target_host, target_port)
        self.mode = "forward"
        self.delay = 0.0
        self.accepted = 0
        self._lock = threading.Lock()
        self._conns: list[socket.socket] = []
        self._closed = False
        self._listener: socket.socket | None = None
        self.port = 0
        self._listen()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _listen(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.listen(64)
        self.port = sock.getsockname()[1]
        self._listener = sock
        threading.Thread(target=self._accept_loop, args=(sock,), daemon=True).start()

    def _accept_loop(self, listener: socket.socket) -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with self._lock:
                if self._listener is not listener:
                    conn.close()
                    return
                self.accepted += 1
                self._conns.append(conn)
                mode = self.mode
            if mode in ("forward", "slow"):
                threading.Thread(target=self._relay, args=(conn,), daemon=True).start()
            # "silent": keep the socket open and never read or answer

    def _relay(self, conn: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self._target, timeout=5)
        except OSError:
            conn.close()
            return
        upstream.settimeout(None)
        with self._lock:
            self._conns.append(upstream)
        pair = {conn: upstream, upstream: conn}
        try:
            while True:
                readable, _, _ = select.select(list(pair), [], [], 0.5)
                if self._closed:
                    return
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    if sock is upstream and self.mode == "slow":
                        time.sleep(self.delay)
                    pair[sock].sendall(data)
        except (OSError, ValueError):  # a socket closed under us by down()/close()
            return
        finally:
            for sock in pair:
                sock.close()

    def _drop_connections(self) -> None:
        with self._lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            with suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()

    def down(self) -> None:
        """Stop listening and cut every connection: new connects are refused."""
        with self._lock:
            listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        self._drop_connections()

    def up(self, mode: str = "forward") -> None:
        self.mode = mode
        if self._listener is None:
            self._listen()

    def silence(self) -> None:
        """From now on, accept and never answer (existing connections are cut)."""
        self.mode = "silent"
        self._drop_connections()

    def close(self) -> None:
        self._closed = True
        self.down()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ------------------------------------------------------------------ bounds


def max_fetches(duration: float, backoff_max: float, *, base: float = 1.0) -> int:
    """Most fetch attempts one failing entry may start in ``duration`` seconds.

    The engine waits ``min(backoff_max, base * 2**(n-1)) * U(0.5, 1)`` after the
    n-th consecutive failure, so the shortest possible waits give the bound.
    """
    fetches, elapsed, n = 1, 0.0, 1
    while True:
        wait = min(backoff_max, base * 2.0 ** (n - 1)) * 0.5
        if wait <= 0:
            return math.inf  # type: ignore[return-value]
        elapsed += wait
        if elapsed > duration:
            return fetches
        fetches += 1
        n += 1


@contextmanager
def elapsed() -> Iterator[list[float]]:
    """``with elapsed() as t: ...`` then ``t[0]`` is the wall time the block took."""
    box = [0.0]
    start = time.perf_counter()
    try:
        yield box
    finally:
        box[0] = time.perf_counter() - start
