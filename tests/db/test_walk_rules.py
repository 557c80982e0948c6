"""The label walk's rules, driven by hand: requests out, outcomes in, no I/O.

The walk is a generator of requests (``Get``, ``Read``, ``Connect``, ``AwaitWalk``);
these tests play the runner's part, so each rule of the rotation-aware connect
can be checked step by step, deterministically -- including the orderings that
failed logins under slow connects (issue 9, item 3) and that real servers
produce only by chance.
"""

from __future__ import annotations

import json
from collections.abc import Generator
from typing import Any

import psycopg
import pytest

from secretcache.db._walk import (
    CURRENT,
    PENDING,
    PREVIOUS,
    AwaitWalk,
    Connect,
    Connected,
    Failed,
    Get,
    Opened,
    Read,
    Refused,
    SecretState,
    Walk,
)
from secretcache.errors import SecretNotFoundError
from secretcache.value import SecretValue

Steps = Generator[Any, Any, Any]


def version(vid: str, password: str | None = None) -> SecretValue:
    document = {"username": "app", "password": password or f"pw-{vid}", "host": "h"}
    return SecretValue(name="db", arn=None, version_id=vid, secret_string=json.dumps(document))


def rejected() -> Refused:
    return Refused(psycopg.OperationalError('password authentication failed for user "app"'), True)


def not_found(stage: str) -> SecretNotFoundError:
    return SecretNotFoundError(f"no {stage}", secret_id="db", version_stage=stage)


def start(state: SecretState, current: SecretValue) -> tuple[Steps, Any]:
    steps = Walk("db", state, min_refresh_interval=5.0).steps()
    request = next(steps)
    assert request == Get(CURRENT)
    return steps, steps.send(current)


def finish(steps: Steps, outcome: Any) -> Any:
    with pytest.raises(StopIteration) as done:
        steps.send(outcome)
    return done.value.value


def login(request: Any) -> str:
    assert isinstance(request, Connect), request
    return request.credential.version_id


def test_single_user_window_reads_current_then_pending_then_remembers() -> None:
    state = SecretState()
    steps, request = start(state, version("v1"))
    assert login(request) == "v1"
    request = steps.send(rejected())
    assert isinstance(request, Read) and request.stage == CURRENT
    assert request.unless_newer_than == "v1"
    request = steps.send(version("v1"))  # unchanged: the rotation is not finished
    assert isinstance(request, Read) and request.stage == PENDING
    assert login(steps.send(version("v2"))) == "v2"
    assert isinstance(finish(steps, Opened("conn")), Connected)
    assert state.working is not None and state.working.value.version_id == "v2"

    # The next connect tries the remembered credential first: one login, no read.
    steps, request = start(state, version("v1"))
    assert login(request) == "v2"
    assert isinstance(finish(steps, Opened("conn")), Connected)


def test_every_read_counts_only_fetches_begun_after_the_latest_rejection() -> None:
    """The evidence is dated when a rejection is *observed*, and each rejection renews it.

    The first release dated it by when the connect's *first* rejected attempt
    *began*: a label fetched during a slow handshake (before setSecret), or
    before a later rejection, was trusted, and every label could fail.
    """
    from secretcache import cache as cache_module

    state = SecretState()
    steps, request = start(state, version("v1"))
    begun = cache_module.monotonic()
    assert login(request) == "v1"
    observed = cache_module.monotonic()
    request = steps.send(rejected())
    assert isinstance(request, Read) and request.fetched_since >= observed > begun
    assert request.min_interval == 0.0  # the rate limit does not apply to a rotation
    request = steps.send(version("v2"))  # AWSCURRENT moved: try it
    assert login(request) == "v2"
    second = cache_module.monotonic()
    request = steps.send(rejected())  # ...and it is rejected too (another rotation)
    assert isinstance(request, Read) and request.stage == PENDING
    assert request.fetched_since >= second
    steps.close()


def test_finish_between_the_reads_looks_at_current_once_more() -> None:
    state = SecretState()
    steps, request = start(state, version("v1"))
    request = steps.send(rejected())
    request = steps.send(version("v1"))  # AWSCURRENT read just before finishSecret
    assert isinstance(request, Read) and request.stage == PENDING
    request = steps.send(not_found(PENDING))  # ...AWSPENDING just after: gone
    assert isinstance(request, Read) and request.stage == PREVIOUS
    request = steps.send(version("v0"))
    assert login(request) == "v0"
    request = steps.send(rejected())
    assert isinstance(request, Read) and request.stage == CURRENT
    assert login(steps.send(version("v2"))) == "v2"
    assert isinstance(finish(steps, Opened("conn")), Connected)


def test_every_label_rejected_fails_and_then_rate_limits() -> None:
    state = SecretState()
    steps, request = start(state, version("v1"))
    request = steps.send(rejected())
    request = steps.send(version("v1"))
    assert login(steps.send(version("v2"))) == "v2"  # AWSPENDING
    request = steps.send(rejected())
    assert login(steps.send(version("v0"))) == "v0"  # AWSPREVIOUS
    request = steps.send(rejected())
    assert isinstance(request, Read) and request.stage == CURRENT
    result = finish(steps, version("v1"))
    assert isinstance(result, Failed)
    assert isinstance(result.error, psycopg.OperationalError)
    assert result.error.__traceback__ is None

    steps, request = start(state, version("v1"))
    request = steps.send(rejected())
    assert isinstance(request, Read) and request.min_interval == 5.0  # now rate-limited
    steps.close()


def test_waiters_wait_without_holding_anything_then_try_what_the_walk_found() -> None:
    state = SecretState()
    walker, request = start(state, version("v1"))
    walker.send(rejected())  # the walker now reads AWSCURRENT, holding the walk

    waiter, request = start(state, version("v1"))
    request = waiter.send(rejected())
    assert isinstance(request, AwaitWalk)  # not a read: the walk is shared
    assert state.lock.acquire(blocking=False)  # nothing is held while it waits
    state.lock.release()

    assert isinstance(walker.send(version("v1")), Read)  # -> AWSPENDING
    assert login(walker.send(version("v2"))) == "v2"
    assert isinstance(finish(walker, Opened("conn")), Connected)
    assert request.walk.over

    request = waiter.send(None)  # the walk is over
    assert request == Get(CURRENT)
    assert login(waiter.send(version("v1"))) == "v2"  # what the walk found, no read
    assert isinstance(finish(waiter, Opened("conn")), Connected)


def test_a_waiter_rejected_again_walks_itself_with_its_newer_evidence() -> None:
    state = SecretState()
    walker, _ = start(state, version("v1"))
    walker.send(rejected())
    waiter, _ = start(state, version("v1"))
    request = waiter.send(rejected())
    assert isinstance(request, AwaitWalk)
    walker.send(version("v1"))
    walker.send(version("v2"))
    finish(walker, Opened("conn"))

    request = waiter.send(None)
    assert login(waiter.send(version("v1"))) == "v2"
    request = waiter.send(rejected())  # the next rotation's setSecret came in between
    assert isinstance(request, Read) and request.stage == CURRENT  # its own walk now
    waiter.close()
    assert state.walk is None  # closing a walker releases the walk


def test_a_slow_login_that_began_before_the_walk_does_not_erase_what_it_found() -> None:
    """A login with the old AWSCURRENT completes (the server checked it before setSecret)
    after a walk found AWSPENDING; the first release then forgot AWSPENDING."""
    state = SecretState()
    slow, request = start(state, version("v1"))
    assert login(request) == "v1"  # under way...

    walker, request = start(state, version("v1"))
    walker.send(rejected())
    walker.send(version("v1"))
    walker.send(version("v2"))
    finish(walker, Opened("conn"))
    assert state.working is not None and state.working.value.version_id == "v2"

    assert isinstance(finish(slow, Opened("conn")), Connected)  # ...and it worked
    assert state.working is not None and state.working.value.version_id == "v2"


def test_a_malformed_current_is_the_error_a_malformed_fallback_is_noted() -> None:
    state = SecretState()
    broken = SecretValue(name="db", arn=None, version_id="v9", secret_string="{")
    steps = Walk("db", state, min_refresh_interval=5.0).steps()
    next(steps)
    result = finish(steps, broken)
    assert isinstance(result, Failed) and type(result.error).__name__ == "SecretDecodeError"

    steps, request = start(state, version("v1"))
    steps.send(rejected())
    request = steps.send(version("v1"))
    request = steps.send(broken)  # AWSPENDING is not a database secret: go on
    assert isinstance(request, Read) and request.stage == PREVIOUS
    steps.close()
