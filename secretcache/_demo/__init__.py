"""``python -m secretcache demo``: self-contained stories that show what the cache does.

Each story is a module with ``run(out: TextIO) -> None`` that starts what it needs
on 127.0.0.1 (moto's server, a throwaway PostgreSQL cluster), tells its story,
and cleans up. Nothing here needs an AWS account or any network beyond loopback.
"""

from __future__ import annotations

import importlib
import sys
from typing import TextIO

STORIES = (
    "secretcache._demo.secrets_story",  # the cache around a rotating secret
    "secretcache._demo.db_story",  # database logins across rotations
)


def run(out: TextIO | None = None) -> int:
    """Run every story in order; the exit status of the demo."""
    stream = out or sys.stdout
    for name in STORIES:
        story = importlib.import_module(name)
        story.run(stream)
    return 0
