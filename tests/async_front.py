"""Run the sync cache's contract tests against ``AsyncSecretCache`` too, without copying them.

``AsyncBacked`` looks like ``SecretCache`` to a test -- same constructor, same
methods, called synchronously -- but every read goes through ``AsyncSecretCache``
awaited on an event loop of its own (one per cache, on a thread). A test module
opts in with :func:`both_fronts`, which reruns each of its tests with
``SecretCache`` replaced by this class.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from secretcache import AsyncSecretCache


class AsyncBacked:
    """``SecretCache``'s interface, answered by an ``AsyncSecretCache`` on its own loop."""

    def __init__(self, client: Any | None = None, **kwargs: Any) -> None:
        self._async = AsyncSecretCache(client, **kwargs)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()

    def _run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=120)

    def get_secret_string(self, *args: Any, **kwargs: Any) -> Any:
        return self._run(self._async.get_secret_string(*args, **kwargs))

    def get_secret_binary(self, *args: Any, **kwargs: Any) -> Any:
        return self._run(self._async.get_secret_binary(*args, **kwargs))

    def get_secret_json(self, *args: Any, **kwargs: Any) -> Any:
        return self._run(self._async.get_secret_json(*args, **kwargs))

    def get_secret(self, *args: Any, **kwargs: Any) -> Any:
        return self._run(self._async.get_secret(*args, **kwargs))

    def refresh(self, *args: Any, **kwargs: Any) -> Any:
        return self._run(self._async.refresh(*args, **kwargs))

    def force_refresh(self, *args: Any, **kwargs: Any) -> Any:
        return self._run(self._async.force_refresh(*args, **kwargs))

    def prefetch(self, *args: Any) -> Any:
        return self._run(self._async.prefetch(*args))

    def __getattr__(self, name: str) -> Any:  # stats, invalidate, config, client, _entries...
        return getattr(self._async, name)

    def __del__(self) -> None:
        loop = getattr(self, "_loop", None)
        if loop is not None and loop.is_running():
            loop.call_soon_threadsafe(loop.stop)


def both_fronts(module_name: str) -> Any:
    """An autouse fixture running every test of ``module_name`` with each door."""

    @pytest.fixture(autouse=True, params=["sync", "async"])
    def front(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
        if request.param == "async":
            monkeypatch.setattr(sys.modules[module_name], "SecretCache", AsyncBacked)
        yield request.param

    return front
