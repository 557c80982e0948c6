"""The entry state machine against a model written from the contract (API.md sections 1-2).

A hypothesis ``RuleBasedStateMachine`` reads, refreshes, invalidates, moves a
fake clock, rotates versions and breaks the (scripted) service in random
orders, and after every step compares what the cache answered -- which version,
which error, how many API calls -- and its size with a small model:

- fresh: within the TTL a read is served from memory, no call;
- stale: past the TTL one call is made; if it fails, the last value is served
  until ``max_stale`` past expiry, then the error is raised;
- failing: after a failure no call is made before the backoff delay
  (1 s doubling per consecutive failure, capped by ``error_backoff_max``);
  a cold entry re-raises its remembered error meanwhile;
- evicted: beyond ``max_size`` entries the least recently used is dropped,
  and the next read of it is a cold load.

The service is a tiny scripted client (this tests the state machine, not AWS);
randomness (TTL jitter, backoff spread) is pinned to its upper bound so the
model can be exact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

import secretcache.cache
from secretcache import (
    CacheConfig,
    SecretAccessDeniedError,
    SecretCache,
    SecretCacheError,
    SecretNotFoundError,
    SecretUnavailableError,
)
from tests.hypothesis_profiles import examples

TTL, MAX_STALE, MIN_REFRESH, BACKOFF_MAX, MAX_SIZE = 10.0, 30.0, 1.0, 8.0, 2
STAGES = ("AWSCURRENT", "AWSPREVIOUS", "BLUE")
FAILURES: dict[str, tuple[str, type[SecretCacheError]]] = {
    "throttled": ("ThrottlingException", SecretUnavailableError),
    "denied": ("AccessDeniedException", SecretAccessDeniedError),
    "missing": ("ResourceNotFoundException", SecretNotFoundError),
}


class ScriptedClient:
    """Answers GetSecretValue from a version counter per stage, or fails as told."""

    def __init__(self) -> None:
        self.versions = dict.fromkeys(STAGES, 1)
        self.failure: str | None = None
        self.calls = 0

    def get_secret_value(self, **params: Any) -> dict[str, Any]:
        self.calls += 1
        if self.failure is not None:
            code = FAILURES[self.failure][0]
            raise ClientError(
                {"Error": {"Code": code, "Message": "scripted"}, "ResponseMetadata": {}},
                "GetSecretValue",
            )
        stage = params["VersionStage"]
        version = f"{stage}-{self.versions[stage]}"
        return {
            "Name": params["SecretId"],
            "ARN": f"arn:aws:secretsmanager:us-east-1:1:secret:{params['SecretId']}",
            "VersionId": version,
            "VersionStages": [stage],
            "SecretString": version,
        }


class UpperBound:
    """Stands in for the engine's ``random``: jitter 0, backoff at its full delay."""

    @staticmethod
    def random() -> float:
        return 0.0

    @staticmethod
    def uniform(a: float, b: float) -> float:
        return b


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class ModelEntry:
    last_used: float
    value: str | None = None
    expires: float = -math.inf
    attempted: float = -math.inf
    failures: int = 0
    retry_at: float = -math.inf
    error: type[SecretCacheError] | None = None


Outcome = tuple[str, str | type[SecretCacheError]]


class CacheModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.clock = Clock()
        self._saved = (secretcache.cache.monotonic, secretcache.cache.random)
        secretcache.cache.monotonic = self.clock  # type: ignore[assignment]
        secretcache.cache.random = UpperBound  # type: ignore[assignment]
        self.client = ScriptedClient()
        self.cache = SecretCache(
            self.client,
            config=CacheConfig(
                ttl=TTL,
                max_stale=MAX_STALE,
                min_refresh_interval=MIN_REFRESH,
                error_backoff_max=BACKOFF_MAX,
                max_size=MAX_SIZE,
                retry_attempts=1,
            ),
        )
        self.model: dict[str, ModelEntry] = {}

    def teardown(self) -> None:
        secretcache.cache.monotonic, secretcache.cache.random = self._saved  # type: ignore[assignment]

    # ----------------------------------------------------------- the model

    def _tick(self) -> float:
        self.clock.now += 0.001  # distinct use stamps, so "least recent" is never a tie
        return self.clock.now

    def _model_entry(self, stage: str, now: float) -> ModelEntry:
        entry = self.model.get(stage)
        if entry is None:
            if len(self.model) >= MAX_SIZE:
                victim = min(self.model, key=lambda s: self.model[s].last_used)
                del self.model[victim]
            entry = self.model[stage] = ModelEntry(last_used=now)
        return entry

    def _fetch(self, entry: ModelEntry, stage: str, now: float) -> Outcome:
        entry.attempted = now
        if self.client.failure is not None:
            entry.failures += 1
            entry.error = FAILURES[self.client.failure][1]
            entry.retry_at = now + min(BACKOFF_MAX, 2.0 ** (entry.failures - 1))
            return ("error", entry.error)
        entry.value = f"{stage}-{self.client.versions[stage]}"
        entry.expires = now + TTL
        entry.failures, entry.error, entry.retry_at = 0, None, -math.inf
        return ("value", entry.value)

    def _stale_or_error(self, entry: ModelEntry, now: float) -> Outcome:
        if now < entry.expires + MAX_STALE:
            return ("value", entry.value or "")
        assert entry.error is not None
        return ("error", entry.error)

    def _model_read(self, stage: str, now: float) -> Outcome:
        entry = self._model_entry(stage, now)
        entry.last_used = now
        if entry.value is not None and now < entry.expires:
            return ("value", entry.value)
        if entry.value is None:
            if entry.error is not None and now < entry.retry_at:
                return ("error", entry.error)
            return self._fetch(entry, stage, now)
        if now < entry.retry_at:
            return self._stale_or_error(entry, now)
        outcome = self._fetch(entry, stage, now)
        return outcome if outcome[0] == "value" else self._stale_or_error(entry, now)

    def _model_refresh(self, stage: str, now: float) -> Outcome:
        entry = self._model_entry(stage, now)
        entry.last_used = now  # a forced refresh is a use too: it must not be evicted first
        if now - entry.attempted < MIN_REFRESH:
            if entry.value is not None:
                return ("value", entry.value)
            if entry.error is not None:
                return ("error", entry.error)
        return self._fetch(entry, stage, now)

    # ----------------------------------------------------------- the rules

    def _compare(self, expected: Outcome, call: Any, calls_before: int, calls: int) -> None:
        try:
            got: Outcome = ("value", call())
        except SecretCacheError as exc:
            got = ("error", type(exc))
        assert got == expected, f"cache answered {got}, model says {expected}"
        made = self.client.calls - calls_before
        assert made == calls, f"{made} API calls, model says {calls}"

    @rule(seconds=st.sampled_from([0.25, 0.5, 1.0, 1.5, 3.0, 5.0, 9.0, 11.0, 25.0, 45.0]))
    def wait(self, seconds: float) -> None:
        self.clock.now += seconds

    @rule(stage=st.sampled_from(STAGES))
    def rotate(self, stage: str) -> None:
        self.client.versions[stage] += 1

    @rule(failure=st.sampled_from([None, None, *FAILURES]))
    def service(self, failure: str | None) -> None:
        self.client.failure = failure

    @rule(stage=st.sampled_from(STAGES), how=st.sampled_from(["string", "record"]))
    def read(self, stage: str, how: str) -> None:
        now = self._tick()
        attempted_before = self.model.get(stage, ModelEntry(0.0)).attempted
        expected = self._model_read(stage, now)
        calls = int(self.model[stage].attempted != attempted_before)
        before = self.client.calls
        if how == "string":
            self._compare(expected, lambda: self.cache.get_secret_string("s", stage), before, calls)
        else:
            self._compare(
                expected, lambda: self.cache.get_secret("s", stage).secret_string, before, calls
            )

    @rule(stage=st.sampled_from(STAGES))
    def refresh(self, stage: str) -> None:
        now = self._tick()
        attempted_before = self.model.get(stage, ModelEntry(0.0)).attempted
        expected = self._model_refresh(stage, now)
        calls = int(self.model[stage].attempted != attempted_before)
        before = self.client.calls
        self._compare(expected, lambda: self.cache.refresh("s", stage).secret_string, before, calls)

    @rule()
    def invalidate(self) -> None:
        self._tick()
        self.cache.invalidate("s")
        self.model.clear()

    @invariant()
    def same_size(self) -> None:
        assert self.cache.stats().size == len(self.model) <= MAX_SIZE


CacheModel.TestCase.settings = settings(
    max_examples=examples(400), stateful_step_count=80, deadline=None, print_blob=True
)
TestCacheModel = CacheModel.TestCase
