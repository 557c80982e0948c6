"""Small tools the engine tests share: counting API calls and injecting faults.

Both work through botocore's event hooks on one client, so the code under test
runs exactly as it would against the real service.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

from botocore.awsrequest import AWSResponse


class CallLog:
    """Records every operation a client sends, with the parameters it sent."""

    def __init__(self, client: Any) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()
        client.meta.events.register("provide-client-params.secrets-manager.*", self._record)

    def _record(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        with self._lock:
            self.calls.append((model.name, dict(params)))

    def count(self, operation: str | None = None) -> int:
        with self._lock:
            return sum(1 for name, _ in self.calls if operation is None or name == operation)

    def by_operation(self) -> Counter[str]:
        with self._lock:
            return Counter(name for name, _ in self.calls)


def error_response(code: str, status: int = 400) -> tuple[AWSResponse, dict[str, Any]]:
    """What botocore would have parsed from an error answer of the service."""
    http = AWSResponse("http://127.0.0.1/", status, {}, None)  # type: ignore[arg-type]
    parsed = {
        "Error": {"Code": code, "Message": f"injected {code}"},
        "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": {}},
    }
    return http, parsed


class FaultInjector:
    """Makes the next calls of one operation fail the way the service would.

    ``inject(code, times)`` answers the next ``times`` calls with that error code
    (``times=None``: until cleared); ``delay(seconds)`` slows calls down;
    ``gate`` (a threading.Event) holds calls until it is set.
    """

    def __init__(self, client: Any, operation: str = "GetSecretValue") -> None:
        self._lock = threading.Lock()
        self._code: str | None = None
        self._status = 400
        self._remaining: int | None = 0
        self._hook: Callable[[], None] | None = None
        self.seen = 0
        # At before-send, where a real endpoint would answer: the engine's call counting
        # and a retrying client's own retries see injected answers as real ones.
        client.meta.events.register(f"before-send.secrets-manager.{operation}", self._before)

    def inject(self, code: str, times: int | None = 1, status: int = 400) -> None:
        with self._lock:
            self._code, self._remaining, self._status = code, times, status

    def clear(self) -> None:
        with self._lock:
            self._code, self._remaining, self._hook = None, 0, None

    def before_each(self, hook: Callable[[], None] | None) -> None:
        """Run ``hook`` (e.g. a sleep or an Event wait) before each call reaches the server."""
        with self._lock:
            self._hook = hook

    def _before(self, **_: Any) -> AWSResponse | None:
        with self._lock:
            self.seen += 1
            hook = self._hook
            fail = self._code is not None and (self._remaining is None or self._remaining > 0)
            if fail and self._remaining is not None:
                self._remaining -= 1
            code, status = self._code, self._status
        if hook is not None:
            hook()
        if fail and code is not None:
            from tests.reliability.faults import aws_error

            return aws_error(status, code, f"injected {code}")
        return None


class FakeClock:
    """Stands in for ``secretcache.cache.monotonic`` so TTLs pass without sleeping."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
