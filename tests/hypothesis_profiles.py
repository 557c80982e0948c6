"""Hypothesis profiles: fixed under ``make test``, random exploration under ``make fuzz``.

``ci`` (the default): derandomized -- every run draws the same examples, so a
red ``make test`` is a real failure, reproducible on any machine -- with no
deadline (a loaded machine must not fail a test for being slow) and the
reproduction blob printed on failure.

``explore``: random seeds, ten times the examples, the example database kept in
``.hypothesis/`` so a failure found once is replayed first next time.

Selected with ``HYPOTHESIS_PROFILE``; loaded by tests/reliability/conftest.py
(and by any conftest that imports :func:`load`) before the test modules are
imported, because a test's ``settings(...)`` inherits from the profile loaded
when it is created.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

PROFILES = ("ci", "explore")
EXPLORE_FACTOR = 10

for _name in PROFILES:
    settings.register_profile(
        _name,
        derandomize=_name == "ci",
        deadline=None,
        print_blob=True,
        suppress_health_check=[HealthCheck.too_slow],
    )


def active() -> str:
    """The profile asked for (``ci`` unless ``HYPOTHESIS_PROFILE`` says otherwise)."""
    name = os.environ.get("HYPOTHESIS_PROFILE", "ci")
    if name not in PROFILES:
        raise ValueError(f"HYPOTHESIS_PROFILE={name!r}: expected one of {', '.join(PROFILES)}")
    return name


def load() -> str:
    """Load the active profile; returns its name."""
    name = active()
    settings.load_profile(name)
    return name


def examples(budget: int) -> int:
    """A test's example budget under the active profile (its own figure under ``ci``)."""
    return budget * EXPLORE_FACTOR if active() == "explore" else budget
