"""One reader for every JSON file the plugin reads back: recordings, baselines, reports to
merge, caches.

Whatever is at the path, reading it ends promptly with the document or a
:class:`JSONFileError` that names the file and what is wrong with it: only a regular file is
read (a FIFO would block the reader, a device never ends; a symlink is followed, then the
file it names is checked), at most ``max_bytes`` of it (checked before reading and while
reading: a file that grows is cut off, never read whole), as strict UTF-8, as JSON without
``NaN`` or ``Infinity``, nested at most ``max_depth`` deep (the code that walks a document
recurses; a document nested deeper is refused, not a ``RecursionError``).
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import Final

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
    return parse_json(data, where, max_depth)


def parse_json(data: bytes | str, where: str, max_depth: int = MAX_DEPTH) -> object:
    """JSON text (bytes: strict UTF-8) as a document, checked as :func:`read_json` checks a
    file's content; errors name ``where``."""
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
        document = json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        raise JSONFileError(f"{where} is nested more than {max_depth} levels deep") from None
    except ValueError as error:
        raise JSONFileError(f"{where} is not JSON ({error})") from None
    if _deeper_than(document, max_depth):
        raise JSONFileError(f"{where} is nested more than {max_depth} levels deep")
    if _SURROGATE_ESCAPE.search(text) and (lone := _lone_surrogate(document)) is not None:
        raise JSONFileError(
            f"{where} is not text: it holds \\u{ord(lone):04x}, half of a character "
            "that no text can hold alone"
        )
    return document


#: An escaped UTF-16 surrogate: in a pair it is a character; alone, ``json`` decodes it to
#: a string that cannot be written back as UTF-8 (checked only when the text holds one).
_SURROGATE_ESCAPE: Final = re.compile(r"\\u[dD][89a-fA-F]")


def _lone_surrogate(document: object) -> str | None:
    """The first lone surrogate in a string (or key) of ``document``, if any."""
    stack = [document]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            stack.extend(value.keys())
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
        elif isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as error:
                return value[error.start]
    return None


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
    """Whether ``document`` nests deeper than ``limit`` (without recursing)."""
    stack: list[tuple[object, int]] = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children: Iterable[object] = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


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
