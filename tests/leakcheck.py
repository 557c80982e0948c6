"""Everything an error tracker could show of an exception, as text to search for canaries.

The rule the library keeps (issue 10): no secret is reachable from an exception that
leaves it -- not its message, args, attributes, notes, pickle, its cause/context
chain, nor the local variables of any frame in the traceback of any exception in
that chain. Sentry, loguru's ``diagnose=True``, rich's ``show_locals`` and
``traceback.TracebackException(capture_locals=True)`` all render those locals.

``reachable_texts(exc)`` yields each of those texts; ``find_leaks(exc, needles)``
names where a needle was found, without ever printing the needle.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import traceback
from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import Any

RENDERED = [0]
"""How many exceptions have been rendered with locals in this process (for the issue note)."""


def _chain(exc: BaseException | None) -> Iterator[BaseException]:
    seen: set[int] = set()
    stack = [exc]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        stack.append(current.__cause__)
        stack.append(current.__context__)
        for inner in getattr(current, "exceptions", ()) or ():  # ExceptionGroup
            if isinstance(inner, BaseException):
                stack.append(inner)


def _frames(tb: TracebackType | None) -> Iterator[Any]:
    while tb is not None:
        yield tb.tb_frame
        tb = tb.tb_next


def _shallow(value: Any, depth: int = 0) -> Iterator[str]:
    """repr() plus the items of containers and the attributes of plain objects.

    A repr can hide what an attribute holds (that is what a redacting ``__repr__``
    does); an error tracker that serialises objects field by field would still see it.
    """
    with contextlib.suppress(Exception):  # a broken repr is not a leak
        text = repr(value)
        yield text
    if depth >= 3:
        return
    items: Iterable[Any] = ()
    if isinstance(value, dict):
        items = [*value.keys(), *value.values()]
    elif isinstance(value, list | tuple | set | frozenset):
        items = list(value)
    elif isinstance(value, str | bytes | int | float | bool | type(None)):
        return
    else:
        attrs: list[Any] = []
        slots = [s for k in type(value).__mro__ for s in getattr(k, "__slots__", ())]
        for name in slots:
            if isinstance(name, str):
                with contextlib.suppress(Exception):
                    attrs.append(object.__getattribute__(value, name))
        attrs.extend(getattr(value, "__dict__", {}).values())
        items = attrs
    for item in items:
        if isinstance(item, str | bytes):
            yield repr(item)
            yield item if isinstance(item, str) else item.decode("utf-8", "replace")
        else:
            yield from _shallow(item, depth + 1)


_TESTS_DIR = os.path.dirname(os.path.abspath(__file__))


def _is_test_frame(filename: str) -> bool:
    """Frames of the test suite itself hold canaries on purpose (they create them)."""
    return os.path.abspath(filename).startswith(_TESTS_DIR + os.sep)


def _without_test_locals(rendered: traceback.TracebackException) -> None:
    seen: set[int] = set()
    stack = [rendered]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        for frame in current.stack:
            if _is_test_frame(frame.filename):
                frame.locals = None
        stack.extend(t for t in (current.__cause__, current.__context__) if t is not None)
        stack.extend(getattr(current, "exceptions", None) or ())


def reachable_texts(exc: BaseException) -> Iterator[tuple[str, str]]:
    """(where, text) for everything reachable from ``exc`` (test frames' locals excepted)."""
    RENDERED[0] += 1
    rendered = traceback.TracebackException.from_exception(exc, capture_locals=True)
    _without_test_locals(rendered)
    yield "traceback with locals", "".join(rendered.format())
    pickled = None
    with contextlib.suppress(Exception):  # unpicklable is fine: nothing is written
        pickled = pickle.dumps(exc).decode("latin-1")
    if pickled is not None:
        yield "pickle", pickled
    for i, link in enumerate(_chain(exc)):
        where = f"chain[{i}] {type(link).__name__}"
        yield where + " repr", repr(link)
        yield where + " str", str(link)
        for arg in link.args:
            for text in _shallow(arg):
                yield where + " args", text
        for name, value in getattr(link, "__dict__", {}).items():
            for text in _shallow(value):
                yield f"{where} attribute {name}", text
        for name in ("object", "pgconn", "pgresult", "diag", "response", "kwargs", "doc"):
            value = getattr(link, name, None)
            if value is not None:
                for text in _shallow(value):
                    yield f"{where} .{name}", text
        for note in getattr(link, "__notes__", ()) or ():
            yield where + " note", str(note)
        for frame in _frames(link.__traceback__):
            code = frame.f_code
            if _is_test_frame(code.co_filename):
                continue
            for name, value in frame.f_locals.items():
                for text in _shallow(value):
                    yield f"{where} local {name} in {code.co_name}", text


def find_leaks(exc: BaseException, needles: Iterable[str | bytes]) -> list[str]:
    """Where any needle (a canary, a password) is reachable from ``exc``; [] if nowhere."""
    forms: list[str] = []
    for needle in needles:
        if isinstance(needle, bytes):
            forms.append(needle.decode("latin-1"))
            continue
        if needle:
            forms.append(needle)
            forms.append(needle.encode("utf-8", "surrogatepass").decode("latin-1"))
            forms.append(repr(needle)[1:-1])
            forms.append(needle.encode("unicode_escape").decode("ascii"))
    found: list[str] = []
    for where, text in reachable_texts(exc):
        if any(form and form in text for form in forms) and where not in found:
            found.append(where)
    return found
