"""Type checkers see the decorated signatures: mypy run on decorated.py.

decorated.py marks each call that must be rejected with ``# type: ignore[...]``.
Run as it is with ``--warn-unused-ignores``, mypy fails if any of those calls is
accepted or any other call is rejected. Run again with the markers removed, it
must report an error on exactly the marked lines -- so the first run cannot pass
because mypy checked nothing.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

mypy_api = pytest.importorskip("mypy.api")

HERE = Path(__file__).parent
SNIPPET = HERE / "decorated.py"
IGNORE = re.compile(r"\s*# type: ignore\[[a-z][a-z, -]*\]")


def run_mypy(path: Path, cache_dir: Path) -> tuple[str, int]:
    out, err, status = mypy_api.run(
        [
            "--strict",
            "--warn-unused-ignores",
            "--no-error-summary",
            "--show-error-codes",
            "--cache-dir",
            str(cache_dir),
            str(path),
        ]
    )
    return out + err, status


def test_right_calls_pass_and_wrong_calls_are_rejected(tmp_path: Path) -> None:
    output, status = run_mypy(SNIPPET, tmp_path / "cache")
    assert status == 0, output


def test_each_marked_call_is_an_error_without_its_marker(tmp_path: Path) -> None:
    lines = SNIPPET.read_text(encoding="utf-8").splitlines()
    marked = {n for n, line in enumerate(lines, start=1) if IGNORE.search(line)}
    assert len(marked) >= 10, "the snippet lost its wrong calls"
    bare = tmp_path / "decorated_bare.py"
    bare.write_text("\n".join(IGNORE.sub("", line) for line in lines) + "\n", encoding="utf-8")
    output, status = run_mypy(bare, tmp_path / "cache")
    assert status == 1
    flagged = {int(n) for n in re.findall(rf"{re.escape(bare.name)}:(\d+): error", output)}
    assert flagged == marked, output
