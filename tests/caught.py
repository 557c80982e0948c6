"""Catching an exception to inspect it, from a frame that holds nothing of the secret."""

from __future__ import annotations

from collections.abc import Callable


def raised(fn: Callable[[], object]) -> BaseException:
    """What ``fn`` raises; the catching frame's only local is ``fn``."""
    try:
        fn()
    except BaseException as exc:
        return exc
    raise AssertionError("nothing was raised")
