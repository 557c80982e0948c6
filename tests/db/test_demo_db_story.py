"""The demo's database story: both tallies printed, none of the rotated passwords."""

from __future__ import annotations

import io
import re
import uuid

import pytest

from secretcache._demo import db_story, rotation

pytestmark = pytest.mark.db


def test_db_story_shows_naive_failures_and_none_through_secretcache(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    issued: list[str] = []
    real = rotation.new_password

    def canary_password(length: int = 32) -> str:
        password = f"CANARY{uuid.uuid4().hex[:8]}" + real(length)
        issued.append(password)
        return password

    monkeypatch.setattr(rotation, "new_password", canary_password)
    out = io.StringIO()

    db_story.run(out)

    text = out.getvalue()
    leaked = any(password in text for password in issued)
    assert not leaked, "a password was printed"
    assert "skipped" not in text, text
    rows = {
        label: tuple(int(n) for n in re.findall(r"\d+", text.split(label, 2)[2].splitlines()[0]))
        for label in (db_story.NAIVE_LABEL, db_story.SECRETCACHE_LABEL)
    }
    _naive_ok, naive_failed, naive_calls = rows[db_story.NAIVE_LABEL]
    ok, failed, calls = rows[db_story.SECRETCACHE_LABEL]
    assert naive_calls == 1
    assert naive_failed > 0  # the window (and everything after it) breaks a read-once app
    assert ok > 0
    assert failed == 0
    assert 1 <= calls <= 1 + 6 * db_story.ROTATIONS
    assert len(issued) >= 1 + 2 * db_story.ROTATIONS  # the canaries were really used
