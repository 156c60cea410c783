"""One reader for every JSON file the plugin reads back: recordings, baselines, reports to
merge, caches.

Whatever is at the path, reading it ends promptly with the document or a
:class:`JSONFileError` that names the file and what is wrong with it: only a regular file is
read (a FIFO would block the reader, a device never ends; a symlink is followed, then the
file it names is checked), at most ``max_bytes`` of it (checked before reading and while
reading: a file that grows is cut off, never read whole), as strict UTF-8, as JSON without
``NaN`` or ``Infinity`` (unless asked), nested at most ``max_depth`` deep (the code that
walks a document recurses; a document nested deeper is refused, not a ``RecursionError``),
and, when asked (``unique_keys``), with no key twice in one object (JSON allows it and
Python keeps the last: a report with a model twice would be read as one of them).
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

#: Deep enough for every document the plugin writes (recordings of nested JSON bodies
#: included), shallow enough for any code walking it recursively.
MAX_DEPTH: Final = 200
_CHUNK: Final = 1 << 20


class JSONFileError(Exception):
    """A JSON file that cannot be used; the message names the file and the cause."""


def read_json(
    path: Path | str,
    *,
    what: str,
    max_bytes: int,
    max_depth: int = MAX_DEPTH,
    constants: bool = False,
    unique_keys: bool = False,
) -> object:
    """The JSON document in the file at ``path`` (``what`` names it in errors: "the
    recording", "the baseline"). ``FileNotFoundError`` propagates for a caller to whom a
    missing file means something (none recorded yet); every other problem is a
    :class:`JSONFileError`."""
    where = f"{what} {path}"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise
    except IsADirectoryError:
        raise JSONFileError(f"{where} is a folder, not a file") from None
    except OSError as error:
        raise JSONFileError(f"{where} cannot be opened ({error.strerror or error})") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise JSONFileError(f"{where} is a folder, not a file")
        if not stat.S_ISREG(info.st_mode):
            raise JSONFileError(f"{where} is not a regular file ({_kind(info.st_mode)})")
        if info.st_size > max_bytes:
            raise JSONFileError(
                f"{where} is {info.st_size:,} bytes; at most {max_bytes:,} are read"
            )
        data = _read_capped(fd, max_bytes, where)
    except OSError as error:
        raise JSONFileError(f"{where} cannot be read ({error.strerror or error})") from None
    finally:
        os.close(fd)
    return parse_json(data, where, max_depth, constants=constants, unique_keys=unique_keys)


def parse_json(
    data: bytes | str,
    where: str,
    max_depth: int = MAX_DEPTH,
    *,
    constants: bool = False,
    unique_keys: bool = False,
) -> object:
    """JSON text (bytes: strict UTF-8) as a document, checked as :func:`read_json` checks a
    file's content; errors name ``where``. ``constants``: ``NaN`` and ``Infinity`` are read
    (as Python's ``json`` writes them: pytest's cache may hold them), for a reader that
    checks every number it uses. ``unique_keys``: an object with a key twice is refused
    (for a reader that adds up what it reads: the key's first value would be lost)."""
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as error:
            raise JSONFileError(
                f"{where} is not UTF-8 text (byte {error.start:,}: {error.reason})"
            ) from None
    else:
        text = data
    try:
        document = json.loads(
            text,
            parse_constant=None if constants else _no_constant,
            object_pairs_hook=_unique if unique_keys else None,
        )
    except _KeyTwice as twice:
        raise JSONFileError(
            f"{where} has the key {_shown_key(twice.key)} twice in one object; a key is "
            "given once (JSON readers keep one of its values and lose the other)"
        ) from None
    except RecursionError:
        raise JSONFileError(f"{where} is nested more than {max_depth} levels deep") from None
    except ValueError as error:
        raise JSONFileError(f"{where} is not JSON ({error})") from None
    if _deeper_than(document, max_depth):
        raise JSONFileError(f"{where} is nested more than {max_depth} levels deep")
    return document


def writable(document: object) -> object:
    """``document`` with every lone UTF-16 surrogate in its strings (a JSON escape that no
    UTF-8 can hold: a reply or a message may carry one) written as its escape, ``\\ud800``,
    so that it can be written as UTF-8 text. The document itself when it holds none."""
    if isinstance(document, str):
        try:
            document.encode("utf-8")
        except UnicodeEncodeError:
            return document.encode("utf-8", "backslashreplace").decode("utf-8")
        return document
    if isinstance(document, dict):
        return {writable(key): writable(value) for key, value in document.items()}
    if isinstance(document, list | tuple):
        return [writable(value) for value in document]
    return document


def _read_capped(fd: int, max_bytes: int, where: str) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        try:
            chunk = os.read(fd, min(_CHUNK, max_bytes + 1 - size))
        except BlockingIOError:  # a regular file never blocks; whatever this is, do not wait
            raise JSONFileError(f"{where} is not a regular file") from None
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)
        if size > max_bytes:
            raise JSONFileError(f"{where} is more than {max_bytes:,} bytes; it is not read")


def _deeper_than(document: object, limit: int) -> bool:
    """Whether ``document`` nests deeper than ``limit``, without recursing, in memory that
    grows with the depth only (one iterator per open level)."""
    if not isinstance(document, dict | list):
        return False
    stack: list[Iterator[object]] = [_children(document)]
    while stack:
        child = next(stack[-1], _END)
        if child is _END:
            stack.pop()
        elif isinstance(child, dict | list):
            if len(stack) >= limit:
                return True
            stack.append(_children(child))
    return False


_END: Final = object()


def _children(value: dict[Any, Any] | list[Any]) -> Iterator[object]:
    return iter(value.values()) if isinstance(value, dict) else iter(value)


class _KeyTwice(Exception):
    """An object with ``key`` twice (see :func:`_unique`)."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object's members as a dict, refusing a key given twice."""
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise _KeyTwice(key)
        found[key] = value
    return found


def _shown_key(key: str) -> str:
    """A key read from a file, briefly: its repr, cut short (it may be megabytes)."""
    text = repr(key)
    return text if len(text) <= 60 else f"{text[:48]}...{text[-8:]}"


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number JSON allows")


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a plain file"
