"""Checked by mypy in test_decorator_types.py, never run: what type checkers see.

A call marked ``# type: ignore[...]`` must be rejected (mypy runs with
``--warn-unused-ignores``, so an accepted wrong call fails the test); every
other call must be accepted.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, assert_type

from secretcache import SecretCache, inject_secret_json, inject_secret_string, refresh_on_error
from secretcache.aws_lambda import with_secrets

cache = SecretCache()


@inject_secret_string("prod/api-key", cache=cache)
def call_api(api_key: str, payload: bytes, *, retries: int = 3) -> int:
    return len(api_key) + len(payload) + retries


assert_type(call_api(b"body"), int)
call_api(b"body", retries=1)
call_api("text")  # type: ignore[arg-type]
call_api(b"body", retries="many")  # type: ignore[arg-type]
call_api(b"body", b"extra")  # type: ignore[call-arg, arg-type]
call_api()  # type: ignore[call-arg]


@inject_secret_string("prod/api-key", cache=cache)  # type: ignore[arg-type]
def wrong_type(api_key: int) -> None:
    pass


@inject_secret_string("prod/api-key", cache=cache)
async def call_api_async(api_key: str, payload: bytes) -> int:
    return len(api_key) + len(payload)


async def use_async() -> None:
    assert_type(await call_api_async(b"body"), int)
    await call_api_async(1)  # type: ignore[arg-type]


class Client:
    @inject_secret_string("prod/api-key", cache=cache)
    def send(self, api_key: str, payload: bytes) -> int:
        return len(api_key) + len(payload)

    @inject_secret_json("prod/db", cache=cache)
    def connect(self, db: Mapping[str, Any], timeout: float) -> str:
        return str(db["host"]) + str(timeout)


assert_type(Client().send(b"body"), int)
Client().send("text")  # type: ignore[arg-type]
assert_type(Client().connect(3.0), str)
Client().connect()  # type: ignore[call-arg]


@inject_secret_json("prod/db", cache=cache)
def whole(db: Mapping[str, Any], name: str) -> str:
    return str(db[name])


assert_type(whole("host"), str)
whole(1)  # type: ignore[arg-type]


@inject_secret_json("prod/db", cache=cache, user="username", pwd="password")
def login(host: str, *, user: str, pwd: str) -> bool:
    return bool(host and user and pwd)


assert_type(login("db.example"), bool)


class Rejected(Exception):
    pass


@refresh_on_error("prod/api-key", Rejected, cache=cache)
def fetch(url: str, timeout: float = 1.0) -> bytes:
    return url.encode()


assert_type(fetch("https://example.com", timeout=2.0), bytes)
fetch(1)  # type: ignore[arg-type]


@with_secrets(cache=cache, db="prod/db", api_key="prod/api-key")
def handler(event: dict[str, Any], context: object, *, db: Mapping[str, Any], api_key: str) -> int:
    return len(event) + len(db) + len(api_key)


assert_type(handler({}, None), int)
handler({}, None, api_key="override-in-a-test")
handler({})  # type: ignore[call-arg]
handler([], None)  # type: ignore[arg-type]
