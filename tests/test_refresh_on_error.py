"""refresh_on_error against a real HTTP API on 127.0.0.1 that accepts only the current key.

The server looks the key up in Secrets Manager (moto's server) on every
request, as a service sharing the secret would, so a rotation makes the key a
client cached stale the moment it happens.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

import secretcache.cache as cache_module
from secretcache import CacheConfig, SecretCache, SecretUnavailableError, refresh_on_error

SECRET = "prod/partner-api-key"


def new_key() -> str:
    return f"CANARY-{uuid.uuid4()}"


class ApiServer:
    """An HTTP API that answers 200 to the current ``AWSCURRENT`` key and 401 otherwise."""

    def __init__(self, lookup: Callable[[], str]) -> None:
        self.statuses: list[int] = []  # what it answered, in order (never the keys)
        self.mode = "normal"  # "normal" | "revoked" (rejects every key) | "broken" (500)
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if outer.mode == "broken":
                    status = 500
                elif outer.mode == "revoked":
                    status = 401
                else:
                    status = 200 if self.headers.get("X-Api-Key") == lookup() else 401
                outer.statuses.append(status)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/orders"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


class Rejected(Exception):
    """The API said the key is not (or no longer) valid."""


_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def call_api(url: str, cache: SecretCache) -> int:
    """GET with the cached key; 401/403 become ``Rejected``, other failures stay HTTPError.

    The key is read here, not passed in, so a failing test's traceback (which
    shows arguments) cannot print it.
    """
    request = urllib.request.Request(url, headers={"X-Api-Key": cache.get_secret_string(SECRET)})
    try:
        with _opener.open(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403):
            raise Rejected(f"the API rejected the key (HTTP {exc.code})") from None
        raise


@pytest.fixture
def admin(moto_server: Any) -> Any:
    """The operator's client: creates and rotates the secret."""
    client = moto_server.client()
    client.create_secret(Name=SECRET, SecretString=new_key())
    return client


@pytest.fixture
def api(moto_server: Any, admin: Any) -> Iterator[ApiServer]:
    lookup_client = moto_server.client()

    def current_key() -> str:
        response = lookup_client.get_secret_value(SecretId=SECRET, VersionStage="AWSCURRENT")
        return str(response["SecretString"])

    server = ApiServer(current_key)
    yield server
    server.stop()


@pytest.fixture
def cache(moto_server: Any) -> SecretCache:
    # Default config: min_refresh_interval is 1 s, as in production.
    return SecretCache(moto_server.client())


def rotate(client: Any) -> str:
    """createSecret + finishSecret of a rotation; returns the new version id."""
    current = client.get_secret_value(SecretId=SECRET, VersionStage="AWSCURRENT")["VersionId"]
    token = str(uuid.uuid4())
    client.put_secret_value(
        SecretId=SECRET,
        ClientRequestToken=token,
        SecretString=new_key(),
        VersionStages=["AWSPENDING"],
    )
    client.update_secret_version_stage(
        SecretId=SECRET,
        VersionStage="AWSCURRENT",
        MoveToVersionId=token,
        RemoveFromVersionId=current,
    )
    return token


def make_caller(cache: SecretCache, api: ApiServer) -> Callable[[], int]:
    @refresh_on_error(SECRET, Rejected, cache=cache)
    def list_orders() -> int:
        return call_api(api.url, cache)

    return list_orders


def test_rotation_between_calls_costs_one_refresh(
    cache: SecretCache, api: ApiServer, admin: Any
) -> None:
    list_orders = make_caller(cache, api)
    assert list_orders() == 200
    before = cache.stats()

    new_version = rotate(admin)  # right after the first fetch: inside min_refresh_interval
    assert list_orders() == 200

    after = cache.stats()
    assert api.statuses == [200, 401, 200]
    assert after.refreshes - before.refreshes == 1
    assert after.api_calls - before.api_calls == 1
    assert cache.get_secret(SECRET).version_id == new_version

    assert list_orders() == 200  # and the next call goes straight through
    assert api.statuses[-1] == 200 and len(api.statuses) == 4
    assert cache.stats().api_calls == after.api_calls


def test_rotation_after_a_while_also_refreshes_once(
    cache: SecretCache, api: ApiServer, admin: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    list_orders = make_caller(cache, api)
    assert list_orders() == 200
    now = cache_module.monotonic()
    monkeypatch.setattr(cache_module, "monotonic", lambda: now + 60.0)  # well inside the TTL
    rotate(admin)
    before = cache.stats()
    assert list_orders() == 200
    assert cache.stats().api_calls - before.api_calls == 1
    assert api.statuses == [200, 401, 200]


def test_failure_not_explained_by_rotation_is_raised_without_retry(
    cache: SecretCache, api: ApiServer
) -> None:
    list_orders = make_caller(cache, api)
    assert list_orders() == 200
    api.mode = "revoked"  # the key was revoked on the API side; the secret did not change
    before = cache.stats()

    with pytest.raises(Rejected):
        list_orders()
    assert api.statuses == [200, 401], "the call must not be repeated"
    assert cache.stats().api_calls - before.api_calls == 1  # one look: is there a newer key?

    # A caller looping on a key that is simply wrong does not hammer the service:
    # further refreshes are held to min_refresh_interval.
    for _ in range(5):
        with pytest.raises(Rejected):
            list_orders()
    assert api.statuses == [200] + [401] * 6
    assert cache.stats().api_calls - before.api_calls == 1


def test_exceptions_not_listed_pass_through_without_refresh(
    cache: SecretCache, api: ApiServer
) -> None:
    list_orders = make_caller(cache, api)
    assert list_orders() == 200
    api.mode = "broken"
    before = cache.stats()
    with pytest.raises(urllib.error.HTTPError) as caught:
        list_orders()
    assert caught.value.code == 500
    assert cache.stats().api_calls == before.api_calls
    assert api.statuses == [200, 500]


def test_retry_happens_once_even_if_the_new_key_fails_too(
    cache: SecretCache, api: ApiServer, admin: Any
) -> None:
    list_orders = make_caller(cache, api)
    assert list_orders() == 200
    rotate(admin)
    api.mode = "revoked"
    with pytest.raises(Rejected):
        list_orders()
    assert api.statuses == [200, 401, 401], "exactly one retry with the refreshed key"


def test_when_the_refresh_itself_fails_the_original_error_stands(
    moto_server: Any, api: ApiServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = SecretCache(moto_server.client(), config=CacheConfig(retry_attempts=1))
    list_orders = make_caller(cache, api)
    assert list_orders() == 200
    api.mode = "revoked"
    now = cache_module.monotonic()
    monkeypatch.setattr(cache_module, "monotonic", lambda: now + 60.0)  # no rate limit in play
    before = cache.stats()

    from botocore.exceptions import EndpointConnectionError

    attempts: list[int] = []

    def unreachable(**_: Any) -> None:
        attempts.append(1)
        raise EndpointConnectionError(endpoint_url=moto_server.endpoint)

    cache.client.meta.events.register("before-send.secrets-manager.GetSecretValue", unreachable)
    with pytest.raises(Rejected) as caught:
        list_orders()
    assert not isinstance(caught.value, SecretUnavailableError)
    assert api.statuses == [200, 401]
    assert attempts, "the refresh was not attempted"
    assert cache.stats().errors > before.errors


def test_concurrent_failures_share_one_refresh(
    cache: SecretCache, api: ApiServer, admin: Any
) -> None:
    list_orders = make_caller(cache, api)
    assert list_orders() == 200
    rotate(admin)
    before = cache.stats()
    results: list[int] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def worker() -> None:
        barrier.wait()
        try:
            results.append(list_orders())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors, [type(e).__name__ for e in errors]
    assert results == [200] * 8
    # Threads that failed with the old key share refreshes; how many rounds happen
    # depends on scheduling, but never one per failure.
    assert 1 <= cache.stats().api_calls - before.api_calls <= 2


# ------------------------------------------------------------------ async functions


def test_async_function_rotation_costs_one_refresh(
    cache: SecretCache, api: ApiServer, admin: Any
) -> None:
    @refresh_on_error(SECRET, Rejected, cache=cache)
    async def list_orders(page: int = 1) -> int:
        await asyncio.sleep(0)
        return await asyncio.to_thread(call_api, api.url, cache)

    assert inspect.iscoroutinefunction(list_orders)
    assert list(inspect.signature(list_orders).parameters) == ["page"]

    async def story() -> list[int]:
        first = await list_orders()
        rotate(admin)
        return [first, await list_orders(page=2), await list_orders()]

    before = cache.stats()
    assert asyncio.run(story()) == [200, 200, 200]
    assert api.statuses == [200, 401, 200, 200]
    assert cache.stats().refreshes - before.refreshes == 1


def test_async_function_failure_not_explained_by_rotation_stands(
    cache: SecretCache, api: ApiServer
) -> None:
    @refresh_on_error(SECRET, Rejected, cache=cache)
    async def list_orders() -> int:
        return await asyncio.to_thread(call_api, api.url, cache)

    assert asyncio.run(list_orders()) == 200
    api.mode = "revoked"
    with pytest.raises(Rejected):
        asyncio.run(list_orders())
    assert api.statuses == [200, 401], "the call must not be repeated"
