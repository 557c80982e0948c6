"""inject_secret_string / inject_secret_json hand current values to application code."""

from __future__ import annotations

import asyncio
import inspect
import json
import threading
import uuid
from collections.abc import Mapping
from typing import Any

import pytest

import secretcache
import secretcache.cache as cache_module
from secretcache import (
    AsyncSecretCache,
    SecretCache,
    SecretDecodeError,
    inject_secret_json,
    inject_secret_string,
    refresh_on_error,
)
from tests.caught import raised
from tests.leakcheck import find_leaks


@pytest.fixture
def cache(sm: Any) -> SecretCache:
    sm.create_secret(Name="api", SecretString="key-1")
    sm.create_secret(Name="db", SecretString=json.dumps({"username": "u", "password": "p-1"}))
    return SecretCache(sm, config=secretcache.CacheConfig(min_refresh_interval=0))


def test_string_injected_first(cache: SecretCache) -> None:
    @inject_secret_string("api", cache=cache)
    def call(key: str, payload: str) -> str:
        return f"{key}:{payload}"

    assert call("body") == "key-1:body"
    assert call.__name__ == "call"


def test_string_injected_after_self(cache: SecretCache) -> None:
    class Client:
        prefix = "c"

        @inject_secret_string("api", cache=cache)
        def call(self, key: str, payload: str) -> str:
            return f"{self.prefix}:{key}:{payload}"

    assert Client().call("body") == "c:key-1:body"


def test_each_call_sees_the_current_version(cache: SecretCache, sm: Any) -> None:
    @inject_secret_string("api", cache=cache)
    def current(key: str) -> str:
        return key

    assert current() == "key-1"
    sm.put_secret_value(SecretId="api", SecretString="key-2")
    cache.refresh("api")
    assert current() == "key-2"


def test_json_fields_as_keyword_arguments(cache: SecretCache) -> None:
    @inject_secret_json("db", cache=cache, user="username", pwd="password")
    def connect(host: str, *, user: str, pwd: str) -> tuple[str, str, str]:
        return host, user, pwd

    assert connect("h") == ("h", "u", "p-1")


def test_missing_json_key_names_the_key_not_the_value(cache: SecretCache) -> None:
    @inject_secret_json("db", cache=cache, token="token")
    def use(*, token: str) -> str:
        return token

    with pytest.raises(SecretDecodeError, match=r"'db' \(stage AWSCURRENT\).*'token'") as err:
        use()
    assert err.value.secret_id == "db" and err.value.version_stage == "AWSCURRENT"
    assert "p-1" not in str(err.value) and "p-1" not in repr(err.value.args)


def test_default_cache_is_used_when_none_is_given(sm: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    sm.create_secret(Name="api", SecretString="from-default")
    monkeypatch.setattr(cache_module, "_default", None)

    @inject_secret_string("api")
    def read(key: str) -> str:
        return key

    assert read() == "from-default"
    assert secretcache.default_cache() is secretcache.default_cache()
    assert secretcache.default_cache().stats().api_calls == 1


# ------------------------------------------------------------- signatures (issue 9.8)


def test_signature_leaves_out_the_injected_parameters(cache: SecretCache) -> None:
    @inject_secret_string("api", cache=cache)
    def call(key: str, payload: str, *, timeout: float = 1.0) -> str:
        return key

    @inject_secret_json("db", cache=cache, user="username", pwd="password")
    def connect(host: str, *, user: str, pwd: str, port: int = 5432) -> str:
        return user

    @inject_secret_json("db", cache=cache)
    def whole(db: Mapping[str, Any], name: str) -> Any:
        return db[name]

    class Client:
        @inject_secret_string("api", cache=cache)
        def send(self, key: str, payload: str) -> str:
            return key + payload

        @staticmethod
        @inject_secret_string("api", cache=cache)
        def static(key: str, payload: str) -> str:
            return key + payload

        @classmethod
        @inject_secret_string("api", cache=cache)
        def klass(cls, key: str, payload: str) -> str:
            return cls.__name__ + key + payload

        @inject_secret_string("api", cache=cache)
        @staticmethod
        def static_under(key: str, payload: str) -> str:
            return key + payload

        @inject_secret_string("api", cache=cache)
        @classmethod
        def klass_under(cls, key: str, payload: str) -> str:
            return cls.__name__ + key + payload

    assert names(call) == ["payload", "timeout"]
    assert names(connect) == ["host", "port"]
    assert names(whole) == ["name"]
    assert names(Client.send) == ["self", "payload"]
    assert names(Client().send) == ["payload"]
    for method in (Client.static, Client().static, Client.static_under):
        assert names(method) == ["payload"]
    assert names(Client.klass) == names(Client.klass_under) == ["payload"]
    assert call("body") == "key-1"
    assert connect("h") == "u"
    assert whole("password") == "p-1"
    assert Client().send("+b") == "key-1+b"
    assert Client.static("+b") == Client().static("+b") == "key-1+b"
    assert Client.static_under("+b") == "key-1+b"
    assert Client.klass("+b") == Client().klass("+b") == "Clientkey-1+b"
    assert Client.klass_under("+b") == Client().klass_under("+b") == "Clientkey-1+b"
    assert call.__wrapped__.__name__ == "call"  # type: ignore[attr-defined]


def test_a_mapping_naming_no_parameter_fails_at_decoration(cache: SecretCache) -> None:
    with pytest.raises(TypeError, match="'pwdd'"):

        @inject_secret_json("db", cache=cache, pwdd="password")
        def connect(*, pwd: str) -> None: ...

    @inject_secret_json("db", cache=cache, anything="password")
    def flexible(**options: Any) -> Any:
        return options["anything"]

    assert flexible() == "p-1"


def test_binary_secret_for_a_string_is_a_decode_error(cache: SecretCache, sm: Any) -> None:
    sm.create_secret(Name="blob", SecretBinary=b"\x00\x01")

    @inject_secret_string("blob", cache=cache)
    def use(key: str) -> str:
        return key

    with pytest.raises(SecretDecodeError, match=r"'blob' \(stage AWSCURRENT\) holds binary"):
        use()


# ------------------------------------------------------------ async functions (API §9)


def test_async_functions_stay_coroutine_functions(cache: SecretCache) -> None:
    @inject_secret_string("api", cache=cache)
    async def call(key: str, payload: str) -> str:
        await asyncio.sleep(0)
        return f"{key}:{payload}"

    @inject_secret_json("db", cache=cache, user="username")
    async def connect(host: str, *, user: str) -> str:
        return f"{user}@{host}"

    @inject_secret_json("db", cache=cache)
    async def whole(db: Mapping[str, Any]) -> str:
        return str(db["password"])

    class Client:
        @inject_secret_string("api", cache=cache)
        async def send(self, key: str, payload: str) -> str:
            return key + payload

    for func in (call, connect, whole, Client.send, Client().send):
        assert inspect.iscoroutinefunction(func), func
    assert names(call) == ["payload"]
    assert names(connect) == ["host"]
    assert names(Client().send) == ["payload"]

    async def main() -> list[str]:
        return [await call("x"), await connect("h"), await whole(), await Client().send("+")]

    assert asyncio.run(main()) == ["key-1:x", "u@h", "p-1", "key-1+"]


def test_async_function_with_a_sync_cache_reads_off_the_event_loop(
    cache: SecretCache, sm: Any
) -> None:
    """A blocking cache is read in a worker thread: the loop keeps running meanwhile."""
    loop_threads: set[int] = set()
    read_threads: set[int] = set()
    real = cache.get_secret

    def observed(*args: Any, **kwargs: Any) -> Any:
        read_threads.add(threading.get_ident())
        return real(*args, **kwargs)

    cache.get_secret = observed  # type: ignore[method-assign]

    @inject_secret_string("api", cache=cache)
    async def call(key: str) -> str:
        loop_threads.add(threading.get_ident())
        return key

    assert asyncio.run(call()) == "key-1"
    assert read_threads and loop_threads and not read_threads & loop_threads


def test_async_errors_are_the_same_errors(cache: SecretCache) -> None:
    @inject_secret_json("db", cache=cache, token="token")
    async def use(*, token: str) -> str:
        return token

    @inject_secret_string("nope", cache=cache)
    async def missing(key: str) -> str:
        return key

    with pytest.raises(SecretDecodeError, match="'token'"):
        asyncio.run(use())
    with pytest.raises(secretcache.SecretNotFoundError, match="'nope'"):
        asyncio.run(missing())


def test_a_sync_function_cannot_take_an_async_cache() -> None:
    class FakeAsyncCache:  # the shape of AsyncSecretCache: coroutine reads
        async def get_secret(self, *args: Any) -> Any:
            raise AssertionError("never read")

    with pytest.raises(TypeError, match="not an async function"):

        @inject_secret_string("api", cache=FakeAsyncCache())  # type: ignore[arg-type]
        def use(key: str) -> str:
            return key


# -------------------------------------------- frames hold what the function receives


def test_wrapper_frames_hold_no_other_secret(sm: Any) -> None:
    canary = f"CANARY-\u00e9\u20ac-{uuid.uuid4().hex}"
    sm.create_secret(
        Name="doc",
        SecretString=json.dumps({"username": "u", "password": canary, "other": canary}),
    )
    cache = SecretCache(sm)

    @inject_secret_json("doc", cache=cache, user="username")
    def fails(*, user: str) -> None:
        raise RuntimeError("the function's own failure")

    @inject_secret_json("doc", cache=cache, user="username", missing="no-such-key")
    def missing(*, user: str, missing: str) -> None:
        raise AssertionError("unreachable")

    for call, kind in ((fails, RuntimeError), (missing, SecretDecodeError)):
        error = raised(call)
        assert isinstance(error, kind)
        leaks = find_leaks(error, [canary])
        assert not leaks, f"a secret the function does not receive is reachable via {leaks}"


def names(func: Any) -> list[str]:
    return list(inspect.signature(func).parameters)


# ------------------------------------------------------- with an AsyncSecretCache (API §9)


def test_async_cache_with_every_decorator(sm: Any) -> None:
    sm.create_secret(Name="api", SecretString="key-1")
    sm.create_secret(Name="db", SecretString=json.dumps({"username": "u", "tls": {"pins": ["a"]}}))
    cache = AsyncSecretCache(sm, config=secretcache.CacheConfig(min_refresh_interval=0))
    attempts: list[str] = []

    class Rejected(Exception):
        pass

    @inject_secret_string("api", cache=cache)
    async def call(key: str, payload: str) -> str:
        return f"{key}:{payload}"

    @inject_secret_json("db", cache=cache, user="username", tls="tls")
    async def connect(*, user: str, tls: Any) -> Any:
        return user, tls

    @refresh_on_error("api", Rejected, cache=cache)
    async def use() -> str:
        key = await cache.get_secret_string("api")
        attempts.append(key)
        if key != "key-2":
            raise Rejected("401")
        return key

    async def story() -> None:
        assert await call("x") == "key-1:x"
        user, tls = await connect()
        assert user == "u" and tls == {"pins": ["a"]}
        with pytest.raises(AttributeError):
            tls["pins"].append("b")
        sm.put_secret_value(SecretId="api", SecretString="key-2")
        assert await use() == "key-2"  # rejected with key-1, refreshed, retried once
        assert await call("y") == "key-2:y"

    for func in (call, connect, use):
        assert inspect.iscoroutinefunction(func)
    asyncio.run(story())
    assert attempts == ["key-1", "key-2"]


@pytest.mark.parametrize("kind", ["SecretCache", "AsyncSecretCache"])
def test_a_fetch_never_blocks_the_event_loop(sm: Any, kind: str) -> None:
    """The fetch can finish only if the loop keeps running while it waits: a handshake."""
    sm.create_secret(Name="api", SecretString="key-1")
    loop_ran = threading.Event()

    def wait_for_the_loop(**_: Any) -> None:
        assert loop_ran.wait(30), "the event loop was blocked during the fetch"

    sm.meta.events.register("before-send.secrets-manager.GetSecretValue", wait_for_the_loop)
    cache: Any = SecretCache(sm) if kind == "SecretCache" else AsyncSecretCache(sm)

    @inject_secret_string("api", cache=cache)
    async def call(key: str) -> str:
        return key

    async def meanwhile() -> None:
        await asyncio.sleep(0)
        loop_ran.set()

    async def story() -> list[Any]:
        return list(await asyncio.gather(call(), meanwhile()))

    assert asyncio.run(story()) == ["key-1", None]


def test_async_function_with_a_sync_cache_hits_without_a_thread(
    sm: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fresh value is taken with ``peek`` (no fetch, no wait); only misses go to a thread."""
    import asyncio

    sm.create_secret(Name="svc/peek", SecretString="v1")
    cache = SecretCache(sm)
    hops: list[object] = []
    real_to_thread = asyncio.to_thread

    async def counting_to_thread(func: Any, *args: Any, **kwargs: Any) -> Any:
        hops.append(func)
        return await real_to_thread(func, *args, **kwargs)

    monkeypatch.setattr(asyncio, "to_thread", counting_to_thread)

    @inject_secret_string("svc/peek", cache=cache)
    async def use(key: str) -> str:
        return key

    async def main() -> list[str]:
        return [await use() for _ in range(5)]

    assert asyncio.run(main()) == ["v1"] * 5
    assert len(hops) == 1, "only the first (cold) read needed a thread"
    assert cache.peek("svc/peek") is not None and cache.peek("svc/none") is None
