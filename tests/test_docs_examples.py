"""Every ```python block in docs/*.md and the README runs, so no example can rot.

Per page, the blocks run in order in one namespace, inside moto's ``mock_aws``
with the secrets the documentation talks about already created. A block whose
fence is preceded by ``<!-- docs-test: skip -->`` needs something moto cannot be
(a real database, a Lambda runtime) and is skipped.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

import secretcache.cache

DOCS = Path(__file__).resolve().parent.parent / "docs"
SKIP_MARK = "<!-- docs-test: skip -->"
FENCE = re.compile(
    r"^(?P<indent>[ \t]*)```(?P<info>[^\n`]*)\n(?P<body>.*?)^(?P=indent)```[ \t]*$", re.M | re.S
)

DB_SECRET = {
    "username": "app",
    "password": "example-password",
    "host": "127.0.0.1",
    "port": 5432,
    "dbname": "app",
}


def python_blocks(text: str, *, include_skipped: bool = False) -> list[tuple[int, str]]:
    """(line number, code) of each runnable ```python block, in page order.

    ``include_skipped`` also returns the blocks marked as needing more than moto
    (the database tests run those against real servers).
    """
    blocks = []
    for match in FENCE.finditer(text):
        language = match.group("info").strip().split(" ")[0].lower()
        if language not in {"python", "py"}:
            continue
        before = text[: match.start()].rstrip().splitlines()
        if before and before[-1].strip() == SKIP_MARK and not include_skipped:
            continue
        indent = len(match.group("indent"))
        body = "\n".join(line[indent:] for line in match.group("body").splitlines())
        blocks.append((text.count("\n", 0, match.start()) + 1, body))
    return blocks


def pages() -> list[Path]:
    """Pages with at least one runnable block (the others have nothing to execute)."""
    candidates = [*sorted(DOCS.glob("*.md")), DOCS.parent / "README.md"]
    return [page for page in candidates if python_blocks(page.read_text())]


def test_the_documentation_has_runnable_examples() -> None:
    assert len(pages()) >= 8, "most guide pages are expected to carry runnable examples"


def test_the_block_finder_sees_fences_and_skip_marks() -> None:
    sample = (
        "x\n```python\na = 1\n```\n\n<!-- docs-test: skip -->\n```python\nb = 2\n```\n"
        "```console\n$ ls\n```\n    ```python\n    c = 3\n    ```\n"
    )
    found = [code for _, code in python_blocks(sample)]
    assert found == ["a = 1", "c = 3"]


def _create_documented_secrets() -> None:
    client = boto3.client("secretsmanager", region_name="us-east-1")
    client.create_secret(Name="prod/api-key", SecretString="example-api-key")
    client.create_secret(Name="prod/db", SecretString=json.dumps(DB_SECRET))
    client.create_secret(Name="prod/mysql", SecretString=json.dumps({**DB_SECRET, "port": 3306}))
    client.create_secret(Name="prod/binary", SecretBinary=b"\x00\x01binary")


@pytest.mark.parametrize("page", pages(), ids=lambda p: p.name)
def test_examples_on_page_run(page: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = python_blocks(page.read_text())
    # Examples that use the process-wide default cache must not see another page's state.
    monkeypatch.setattr(secretcache.cache, "_default", None)
    with mock_aws():
        _create_documented_secrets()
        run_blocks(page, blocks)


def run_blocks(page: Path, blocks: list[tuple[int, str]]) -> dict[str, object]:
    """Execute a page's blocks in order in one namespace; fail naming page and line."""
    namespace: dict[str, object] = {"__name__": f"docs_{page.stem.replace('-', '_')}"}
    for line, code in blocks:
        compiled = compile(code, f"{page.name}:{line}", "exec")
        try:
            exec(compiled, namespace)
        except Exception as exc:
            # The exception type and where it happened only: values stay out of reports.
            where = failing_line(exc, compiled.co_filename, line)
            pytest.fail(f"{page.name}, line {where}: {type(exc).__name__}", pytrace=False)
    return namespace


def failing_line(exc: BaseException, filename: str, fence_line: int) -> int:
    """The page line of the deepest frame of the example that raised."""
    found = fence_line
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == filename:
            found = fence_line + tb.tb_lineno
        tb = tb.tb_next
    return found
