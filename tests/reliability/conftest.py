"""Fixtures of the reliability suite: a cache on moto's server with a fault switch and a clock."""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

import secretcache.cache
from secretcache import CacheConfig, SecretCache
from tests.hypothesis_profiles import load as load_hypothesis_profile

from .faults import FakeClock, Faults

HYPOTHESIS_PROFILE = load_hypothesis_profile()  # before the test modules create their settings

FAULT_TABLE: list[dict[str, str]] = []
"""Rows ``fault -> caller saw -> API calls/second``, filled by test_faults.py."""


@dataclass
class Rig:
    """One test's world: moto's server, a setup client, a fake clock, caches with fault hooks."""

    server: Any
    clock: FakeClock
    monkeypatch: pytest.MonkeyPatch
    sm: Any = None
    faults: dict[int, Faults] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.sm = self.server.client()

    def cache(self, client: Any | None = None, **config: Any) -> tuple[SecretCache, Faults]:
        """A cache on the library's own default client (``AWS_ENDPOINT_URL``) unless given one."""
        cache = SecretCache(client, config=CacheConfig(**config))
        faults = Faults(cache.client)
        self.faults[id(cache)] = faults
        return cache, faults

    def secret(self, prefix: str, value: str | bytes = "") -> tuple[str, str]:
        """Create a secret with a unique name; returns (name, value)."""
        name = f"{prefix}/{uuid.uuid4().hex[:8]}"
        text = value or f"{name}|v1"
        if isinstance(text, bytes):
            self.sm.create_secret(Name=name, SecretBinary=text)
        else:
            self.sm.create_secret(Name=name, SecretString=text)
        return name, text if isinstance(text, str) else ""


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(secretcache.cache, "monotonic", fake)
    return fake


@pytest.fixture
def rig(moto_server: Any, clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> Iterator[Rig]:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.endpoint)
    yield Rig(moto_server, clock, monkeypatch)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Write the fault table where ``SECRETCACHE_FAULT_TABLE`` points (for the report)."""
    path = os.environ.get("SECRETCACHE_FAULT_TABLE")
    if not path or not FAULT_TABLE:
        return
    columns = list(FAULT_TABLE[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(row[c] for c in columns) + " |" for row in FAULT_TABLE]
    with open(path, "w", encoding="utf-8") as out:
        out.write("\n".join(lines) + "\n")


def pytest_report_header(config: pytest.Config) -> str:
    return f"hypothesis profile: {HYPOTHESIS_PROFILE}"


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """How many errors were rendered with their traceback locals (issue 10's figure)."""
    from tests import leakcheck

    canary = 0
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None) or ""
        if path.endswith(os.path.join("reliability", "test_canary.py")):
            canary = max(canary, getattr(module, "RENDERED", [0])[0])
    if leakcheck.RENDERED[0]:
        terminalreporter.write_line(
            f"leak checks: {canary} errors rendered with locals by the canary suite, "
            f"{leakcheck.RENDERED[0]} by find_leaks in this run"
        )
