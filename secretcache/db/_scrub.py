"""Copies of exceptions that can leave the library: no password anywhere in them.

An exception raised while a driver opens a connection is dangerous in three ways:
its arguments and attributes may quote the password (``UnicodeEncodeError.object``
is the whole password when PyMySQL cannot encode it as latin-1, or the whole
connection string for libpq), driver attachments may hold it (psycopg's
``pgconn.password``), and its traceback's frames hold the connect keywords as
local variables, which error trackers render. The only safe thing to raise is a
*new* exception of the same class, built from masked arguments, never raised
before (so it has no traceback), with no context -- and the original dropped.

Masking looks for the password in every spelling a driver or a ``repr`` might
produce (UTF-8 and latin-1 bytes, backslash escapes, libpq quoting, URL
quoting). A copy that still contains one of them after masking is replaced by
a copy with no message at all: losing a message is acceptable, leaking is not.
"""

from __future__ import annotations

import contextlib
import urllib.parse
from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import Any

__all__ = ["REDACTED", "Mask", "detach", "scrubbed_copy"]

REDACTED = "<redacted>"

WINDOW = 8
"""A copy in which this many consecutive characters of a password survive masking
(a spelling nobody foresaw) loses its message altogether."""


class Mask:
    """The passwords to hide, in every form a message might quote them."""

    __slots__ = ("_bytes", "_texts", "_windows")

    def __init__(self, passwords: Iterable[str]) -> None:
        texts: set[str] = set()
        raw: set[bytes] = set()
        windows: set[str] = set()
        for password in passwords:
            if not password:
                continue
            texts.update(_text_forms(password))
            raw.update(_byte_forms(password))
            width = min(WINDOW, len(password))
            windows.update(password[i : i + width] for i in range(len(password) - width + 1))
        # Longest first, so a form containing a shorter one is replaced whole.
        self._texts = sorted((t for t in texts if t), key=len, reverse=True)
        self._bytes = sorted((b for b in raw if b), key=len, reverse=True)
        self._windows = windows

    def __repr__(self) -> str:
        return f"<Mask of {len(self._texts)} forms>"

    def __reduce__(self) -> tuple[Any, ...]:
        raise TypeError("a Mask cannot be pickled: it holds passwords")

    def text(self, value: str) -> str:
        for form in self._texts:
            if form in value:
                value = value.replace(form, REDACTED)
        return value

    def data(self, value: bytes) -> bytes:
        for form in self._bytes:
            if form in value:
                value = value.replace(form, REDACTED.encode())
        return value

    def found_in(self, text: str) -> bool:
        """A password in any known spelling, or any ``WINDOW`` characters of one, in ``text``."""
        if any(form in text for form in self._texts):
            return True
        windows = self._windows
        for width in {len(window) for window in windows}:
            if any(text[i : i + width] in windows for i in range(len(text) - width + 1)):
                return True
        return False

    def value(self, value: Any) -> Any:
        """``value`` with passwords masked; anything but plain data becomes its masked text."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, bytes | bytearray):
            return self.data(bytes(value))
        if value is None or isinstance(value, bool | int | float):
            return value
        try:
            text = str(value)
        except Exception:
            return REDACTED
        return REDACTED if self.found_in(text) else value


def _text_forms(password: str) -> Iterator[str]:
    yield password
    yield repr(password)[1:-1]
    yield password.encode("unicode_escape").decode("ascii")
    yield password.replace("\\", "\\\\").replace("'", "\\'")  # libpq conninfo quoting
    for quote in (urllib.parse.quote, urllib.parse.quote_plus):
        with contextlib.suppress(UnicodeError):
            quoted = quote(password, safe="")
            yield quoted
    for raw in _byte_forms(password):
        yield raw.decode("latin-1")
        yield repr(raw)[2:-1]


def _byte_forms(password: str) -> Iterator[bytes]:
    forms: list[bytes] = [password.encode("utf-8", "surrogatepass")]
    with contextlib.suppress(UnicodeError):
        forms.append(password.encode("latin-1"))
    yield from forms


def scrubbed_copy(exc: BaseException, mask: Mask) -> BaseException:
    """A new exception of ``exc``'s class carrying only its masked arguments and notes.

    Attributes (psycopg's ``pgconn``, ``UnicodeError.object``...), the traceback
    and the cause/context chain of ``exc`` are not carried over.
    """
    clean = _copy(exc, mask)
    for note in getattr(exc, "__notes__", None) or ():
        clean.add_note(mask.text(str(note)))
    if _still_leaks(clean, mask):
        clean = _bare(
            type(exc), (f"{type(exc).__name__} (message withheld: it quoted a password)",)
        )
    return clean


def _copy(exc: BaseException, mask: Mask) -> BaseException:
    if isinstance(exc, UnicodeEncodeError):
        # ``object`` is what could not be encoded: the password, or a connection
        # string holding it. Nothing of it is kept (not even the position).
        return UnicodeEncodeError(exc.encoding, REDACTED, 0, len(REDACTED), mask.text(exc.reason))
    if isinstance(exc, UnicodeDecodeError):
        raw = REDACTED.encode()
        return UnicodeDecodeError(exc.encoding, raw, 0, len(raw), mask.text(exc.reason))
    if isinstance(exc, UnicodeTranslateError):
        return UnicodeTranslateError(REDACTED, 0, len(REDACTED), mask.text(exc.reason))
    args = tuple(mask.value(arg) for arg in exc.args)
    clean = _bare(type(exc), args)
    if isinstance(exc, OSError) and isinstance(clean, OSError):
        # OSError keeps the file names outside ``args``.
        for name in ("filename", "filename2"):
            value = getattr(exc, name, None)
            if value is not None:
                with contextlib.suppress(Exception):  # a subclass that forbids it
                    setattr(clean, name, mask.value(value))
    return clean


def _bare(cls: type[BaseException], args: tuple[Any, ...]) -> BaseException:
    """An instance of ``cls`` with ``args``, even if its constructor wants something else."""
    try:
        return cls(*args)
    except Exception:
        pass
    try:
        clean = cls.__new__(cls)
        clean.args = args
        return clean
    except Exception:
        return RuntimeError(*args)


def _still_leaks(clean: BaseException, mask: Mask) -> bool:
    try:
        texts = [repr(clean), str(clean), repr(clean.args), *map(str, clean.args)]
        texts += [str(note) for note in getattr(clean, "__notes__", None) or ()]
        texts += [repr(v) for v in getattr(clean, "__dict__", {}).values()]
    except Exception:
        return True
    return any(mask.found_in(text) for text in texts)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        item = pending.pop()
        if item is None or id(item) in seen:
            continue
        seen.add(id(item))
        yield item
        pending += [item.__cause__, item.__context__]


def detach(exc: BaseException) -> BaseException:
    """``exc`` and every exception chained to it, without their tracebacks.

    For errors that pass *through* the label walk (a label that could not be
    read, a secret that is not a database secret): their frames -- the cache's,
    the JSON parser's, the walk's own -- may hold secret values as locals. The
    messages, classes and chain stay; where they were raised is lost on purpose.
    """
    for item in _chain(exc):
        item.__traceback__ = None
    return exc


def frames(tb: TracebackType | None) -> Iterator[Any]:
    while tb is not None:
        yield tb.tb_frame
        tb = tb.tb_next
