"""Record and replay: the answers of real models, kept in files, given back without network.

Every request of the ``llm`` client, of the httpx/httpx2 clients and of the official SDK
clients passes one :class:`~pytest_llm_matrix.calls.exchange.Exchange`; that is where a
request is looked up in, or added to, the recordings of its test and model (a *tape*).

- ``replay``: a request must match a recording; nothing is sent, no key is needed.
- ``new``: what matches is replayed; what does not is sent and recorded.
- ``all``: everything is sent; the tests that ran get their recordings rewritten.
- ``prune``: ``replay``, then the recordings no test of the run used are deleted.

A request matches by method, path (with its query) and canonical JSON body (key order
ignored, the configured volatile fields left out); identical requests of a test replay in
the order they were recorded. A recording keeps what the test saw: the final answer (after
any retries), its latency and time to first token, a stream as its events, and a failure
the model's answers made (retries exhausted on its 429s or 5xx) as that failure; not a
connection error or a timeout (no answer), nor a refused key. A stream the test stops reading
early is read to its end first; one the server cuts short is not recorded (a warning says so).
No header is kept (no ``authorization``, no ``x-api-key``), and every configured
model's key is masked in every file written. An SDK's auxiliary requests (see
:mod:`pytest_llm_matrix.adoption.binding`) are kept with their test's, or, sent by a fixture
the tests of every model share, in that fixture's own file (:data:`SHARED`); a multipart
body matches without its boundary, a binary answer is kept as base64, and a transport error
a watched request met is kept and raised again.

One file per test and model (a repeated test: per run), written when the test ends,
atomically (a new file moved over the old one): an xdist worker runs the whole of a test
and model, so two workers never write one file. Layout, beside each test module::

    llm_cassettes/<model alias>/<module name>/<test name>.json

or, with ``--llm-cassettes DIR``, ``DIR/<model alias>/<module path>/<test name>.json``; a
module outside the rootdir (pytest names it relative to an argument, or not at all) has its
folder ``outside-rootdir#<hash>`` where the rootdir's modules have theirs. Each name is the
exact, lower-case text of what it names (``::`` written ``.``), or, where that would not be
unique compared without letter case, or would show a key: readable text, ``#``, and a hash
of the exact text (see :func:`_name`). A recording kept under the name an earlier version
gave it is still read, until the test is recorded again.

Whatever a run finds at a recording's path is read as :mod:`~pytest_llm_matrix.config.jsonfile`
reads files (a regular file, of bounded size and depth); prune deletes only files that are
recordings of the model whose folder holds them, and only folders left empty.
"""

from __future__ import annotations

import base64
import collections
import contextlib
import dataclasses
import hashlib
import json
import os
import re
import shlex
import tempfile
import warnings
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any, Final
from urllib.parse import quote

import pytest

from pytest_llm_matrix.calls import context
from pytest_llm_matrix.config.jsonfile import JSONFileError, read_json
from pytest_llm_matrix.config.models import base_id
from pytest_llm_matrix.config.options import OFFLINE_MODES
from pytest_llm_matrix.config.redaction import MASK, key_spans
from pytest_llm_matrix.config.registry import DEFAULT_RECORD_IGNORE

VERSION: Final = 1
FOLDER: Final = "llm_cassettes"
#: The largest recording read back: far above any real one (a cap against a file that
#: never ends, not a budget).
MAX_BYTES: Final = 64 * 1024 * 1024
#: Characters a name shows as they are, with ASCII letters and digits (and ``_.-~``, which
#: :func:`urllib.parse.quote` never escapes); every other one is percent-escaped, ``%`` too.
_SAFE_NAME: Final = "[]()-_.,=+@ "
_LONGEST_NAME: Final = 150
#: Ends the readable part of a name that is not the exact text of what it names; a hash of
#: that text follows. No plain name holds it: escaping writes it ``%23``.
HASHED: Final = "#"
_DIGEST: Final = 16  # hex digits of a name's hash (64 bits)
#: The readable part of the folder of a module outside the rootdir.
OUTSIDE: Final = "outside-rootdir"
_ESCAPE: Final = re.compile("%[0-9A-F]{2}")
_UPPER: Final = re.compile("[A-Z]")


class RecordingError(Exception):
    """A recording file that cannot be read: its message names the file and the fix."""


class RecordingWarning(pytest.PytestWarning):
    """An answer that could not be recorded: a replay of its test will miss it."""


def not_recorded(model: str, why: str) -> None:
    warnings.warn(
        RecordingWarning(f"{model}: {why}; a replay of this test will miss it"), stacklevel=2
    )


def readable_encodings(request: Any) -> None:
    """Recording: ask for an encoding this process can read back (gzip, deflate, none),
    not brotli or zstd, which a stream would be recorded in only if their libraries are
    installed."""
    accepted = request.headers.get("accept-encoding", "")
    if any(name in accepted for name in ("br", "zstd")):
        request.headers["accept-encoding"] = "gzip, deflate"


@dataclasses.dataclass
class Recorder:
    """The session's record/replay settings, in every process that runs tests."""

    mode: str
    rootdir: Path
    base: Path | None = None  # --llm-cassettes; None: llm_cassettes/ beside each module
    ignore: tuple[str, ...] = DEFAULT_RECORD_IGNORE
    #: takes every configured key out of data (its strings, keys included): the files and
    #: the requests matched against them go through it
    mask: Callable[[Any], Any] = lambda data: data
    #: the folder pytest runs from, for the command a miss suggests
    invocation: Path | None = None
    #: the spellings of every key to keep out of the files (a stream's are looked for across
    #: its events); None: no key is known
    keys: Callable[[], Collection[str]] | None = None

    @property
    def offline(self) -> bool:
        return self.mode in OFFLINE_MODES

    def hide(self, text: str) -> str:
        """``text`` with every key masked."""
        hidden = self.mask(text)
        return hidden if isinstance(hidden, str) else text

    def key_forms(self) -> Collection[str]:
        return self.keys() if self.keys is not None else ()

    def path_for(self, nodeid: str, alias: str) -> Path:
        """Where the recordings of test ``nodeid`` on model ``alias`` are written."""
        return cassette_path(nodeid, alias, self.rootdir, self.base, self.hide)

    def paths_for(self, nodeid: str, alias: str) -> list[Path]:
        """Where they are read from, in order: their path, then the path an earlier version
        of the plugin gave them, if another."""
        path = self.path_for(nodeid, alias)
        legacy = _legacy_path(nodeid, alias, self.rootdir, self.base)
        return [path] if legacy is None or legacy == path else [path, legacy]

    def read_path(self, nodeid: str, alias: str) -> Path:
        """The file a replay of the test reads (its path if nothing is there yet)."""
        paths = self.paths_for(nodeid, alias)
        return next((path for path in paths if _present(path)), paths[0])

    def module_folder(self, module: str, alias: str) -> Path:
        return module_folder(module, alias, self.rootdir, self.base, self.hide)

    def shown(self, path: Path) -> str:
        """``path`` as the user thinks of it: relative to the rootdir where it can be."""
        with contextlib.suppress(ValueError):
            return str(path.relative_to(self.rootdir))
        return str(path)


def configure(recorder: Recorder | None) -> None:
    context.set_recorder(recorder)


def active() -> Recorder | None:
    """The session's recorder (None: live). It lives in :mod:`.context`, with the rest of
    the process's state, which loads with the plugin: this module may load later."""
    found: Recorder | None = context.recorder()
    return found


# --- where a test's recordings live --------------------------------------------------


def split_nodeid(nodeid: str, alias: str) -> tuple[str, str]:
    """(module path, test name without the model): ``tests/test_x.py::C::test_y[a-b]`` on
    model ``a`` is ``("tests/test_x.py", "C::test_y[b]")``."""
    module, _, rest = base_id(nodeid, alias).partition("::")
    return module, rest


def _unchanged(text: str) -> str:
    return text


def _escaped(text: str) -> str:
    """``text`` percent-escaped but for ASCII letters, digits and :data:`_SAFE_NAME`, and a
    leading dot (no hidden files): :func:`urllib.parse.unquote` gives ``text`` back."""
    escaped = quote(text, safe=_SAFE_NAME, errors="surrogatepass")
    return "%2E" + escaped[1:] if escaped.startswith(".") else escaped


def _name(exact: str, shown: str, plain: bool, hide: Callable[[str], str]) -> str:
    """The file or folder name of ``exact``, which ``shown`` renders.

    ``shown`` escaped is the name when it is *plain*: ``plain`` (``exact`` can be told back
    from ``shown``), no upper-case letter (two plain names then differ however a file system
    compares letter case: an escape's hex digits are always upper-case), not empty, at most
    :data:`_LONGEST_NAME` long, not ending in ``.json`` (a folder beside recordings) and
    holding no key. Otherwise it is a readable part (``shown`` with its keys masked, cut
    short), :data:`HASHED` and a hash of ``exact``: unlike any plain name, and unlike any other
    hashed name unless 64-bit hashes collide.
    """
    text = _escaped(shown)
    if (
        plain
        and 0 < len(text) <= _LONGEST_NAME
        and not _UPPER.search(_ESCAPE.sub("", text))
        and not text.endswith(".json")
        and hide(shown) == shown
        and hide(text) == text
    ):
        return text
    readable = re.sub("%[0-9A-F]?$", "", _escaped(hide(shown))[:_LONGEST_NAME])
    if hide(readable) != readable:  # a key in a spelling that escaping makes
        readable = ""
    digest = hashlib.sha256(exact.encode("utf-8", "surrogatepass")).hexdigest()[:_DIGEST]
    return f"{readable}{HASHED}{digest}"


def _file_name(name: str, hide: Callable[[str], str] = _unchanged) -> str:
    """The file name of a test's recordings: its name, ``::`` written ``.`` (plain only
    where the name has no dot before its parameters: then the dots give the ``::`` back)."""
    head, bracket, params = name.partition("[")
    shown = head.replace("::", ".") + bracket + params
    return _name(name, shown, "." not in head, hide) + ".json"


def _folder_name(name: str, hide: Callable[[str], str] = _unchanged) -> str:
    """The folder name of a model alias, or of a folder of modules."""
    return _name(name, name, True, hide)


def _module_name(file_name: str, hide: Callable[[str], str] = _unchanged) -> str:
    """The folder name of a test module: its file name without ``.py`` (with another
    suffix, the whole file name, hashed: ``x.txt`` and ``x.txt.py`` differ)."""
    python = file_name.endswith(".py")
    return _name(file_name, file_name[:-3] if python else file_name, python, hide)


def _inside(module: str) -> tuple[str, ...] | None:
    """The parts of a module path inside the rootdir (None: pytest named it relative to
    something else, or not at all)."""
    path = PurePosixPath(module)
    if path.is_absolute() or not path.parts or ".." in path.parts:
        return None
    return path.parts


def module_folder(
    module: str,
    alias: str,
    rootdir: Path,
    base: Path | None,
    hide: Callable[[str], str] = _unchanged,
) -> Path:
    """The folder of the recordings of the tests of ``module`` on model ``alias``."""
    model = _folder_name(alias, hide)
    parts = _inside(module)
    if parts is None:
        root = rootdir / FOLDER / model if base is None else base / model
        return root / _name(module, OUTSIDE, False, hide)
    *folders, file_name = parts
    if base is not None:
        return base.joinpath(
            model, *(_folder_name(part, hide) for part in folders), _module_name(file_name, hide)
        )
    return rootdir.joinpath(*folders, FOLDER, model, _module_name(file_name, hide))


def cassette_path(
    nodeid: str,
    alias: str,
    rootdir: Path,
    base: Path | None,
    hide: Callable[[str], str] = _unchanged,
) -> Path:
    """The file of the recordings of test ``nodeid`` on model ``alias`` (``hide`` masks the
    keys in a text: a name that holds one is hashed)."""
    module, name = split_nodeid(nodeid, alias)
    return module_folder(module, alias, rootdir, base, hide) / _file_name(name, hide)


def _legacy_path(nodeid: str, alias: str, rootdir: Path, base: Path | None) -> Path | None:
    """Where earlier versions of the plugin wrote the recordings (None: nowhere they could):
    ``::`` and ``.`` alike, letter case kept, keys kept."""
    module, name = split_nodeid(nodeid, alias)
    folder = _legacy_folder(module, alias, rootdir, base)
    if folder is None:
        return None
    safe = quote(name.replace("::", "."), safe=_SAFE_NAME)
    if safe.startswith("."):
        safe = "%2E" + safe[1:]
    if len(safe) > _LONGEST_NAME:
        digest = hashlib.sha256(name.replace("::", ".").encode()).hexdigest()[:12]
        safe = f"{safe[:_LONGEST_NAME]}-{digest}"
    return folder / f"{safe}.json"


def _legacy_model(alias: str) -> str:
    model = quote(alias, safe="")
    return model.replace(".", "%2E") if set(model) == {"."} else model


def _legacy_folder(module: str, alias: str, rootdir: Path, base: Path | None) -> Path | None:
    try:
        parts = [p if p != ".." else "%2E%2E" for p in Path(module).with_suffix("").parts]
    except ValueError:  # a module outside the rootdir: it had no place
        return None
    model = _legacy_model(alias)
    if base is not None:
        return base.joinpath(model, *parts)
    folder = rootdir.joinpath(*parts[:-1]) if parts else rootdir
    return folder / FOLDER / model / (parts[-1] if parts else "tests")


def _present(path: Path) -> bool:
    return path.exists() or path.is_symlink()


def unused(
    recorder: Recorder, ran: Iterable[tuple[str, str]], aliases: Iterable[str]
) -> list[Path]:
    """The recordings of ``aliases`` that none of the tests that ran (node id, alias) reads:
    those of a collected module that no test of it reads, and those of a module that no
    longer exists. A module that exists but was not collected (a path not given), or one
    outside the rootdir, is left alone; so is every file that is not a recording of the
    model whose folder holds it."""
    ran = list(ran)
    expected = {recorder.read_path(nodeid, alias) for nodeid, alias in ran}
    modules = {split_nodeid(nodeid, alias)[0] for nodeid, alias in ran}
    found: list[Path] = []
    for alias in aliases:
        known = {recorder.module_folder(module, alias) for module in modules}
        for module in modules:
            legacy = _legacy_folder(module, alias, recorder.rootdir, recorder.base)
            if legacy is not None:
                known.add(legacy)
        for folder, names, place in _module_folders(recorder, alias, modules):
            if folder in known:
                gone = False
            elif _source_exists(recorder, names, place) is not False:
                continue  # not collected this time, or not known: nothing is known of its tests
            else:
                gone = True
            found += [
                path
                for path in sorted(folder.glob("*.json"))
                if path.is_file() and (gone or path not in expected) and _recording_of(path, alias)
            ]
    return found


def _module_folders(
    recorder: Recorder, alias: str, modules: set[str]
) -> Iterator[tuple[Path, tuple[str, ...], Path]]:
    """(folder, its names below the model's folder, the folder its module's names start
    from) of every module folder of ``alias``, under its name and the name an earlier
    version gave it."""
    models = dict.fromkeys([_folder_name(alias, recorder.hide), _legacy_model(alias)])
    if recorder.base is not None:
        for model in models:
            root = recorder.base / model
            if root.is_dir():
                folders = {path.parent for path in root.rglob("*.json") if path.parent != root}
                for folder in sorted(folders):
                    yield folder, folder.relative_to(root).parts, recorder.rootdir
        return
    places = set()
    for module in modules:
        parts = _inside(module)
        places.add(recorder.rootdir.joinpath(*parts[:-1]) if parts else recorder.rootdir)
    for place in sorted(places):
        for model in models:
            root = place / FOLDER / model
            if root.is_dir():
                for stem in sorted(p for p in root.iterdir() if p.is_dir()):
                    yield stem, (stem.name,), place


def _source_exists(recorder: Recorder, names: tuple[str, ...], folder: Path) -> bool | None:
    """Whether the module whose folder's ``names`` are still exists (below ``folder``): some
    file's name gives them, as now or as before (None: a module outside the rootdir, which
    cannot be told)."""
    if len(names) == 1 and names[0].startswith(OUTSIDE + HASHED):
        return None
    *folders, stem = names
    for name in folders:
        match = _entry(folder, name, lambda n: {_folder_name(n, recorder.hide), n})
        if match is None:
            return False
        folder = match
    module = _entry(folder, stem, lambda n: {_module_name(n, recorder.hide), PurePosixPath(n).stem})
    return module is not None and module.is_file()


def _entry(folder: Path, name: str, names: Callable[[str], set[str]]) -> Path | None:
    """The entry of ``folder`` whose ``names`` hold ``name``."""
    try:
        return next((entry for entry in folder.iterdir() if name in names(entry.name)), None)
    except OSError:
        return None


def _recording_of(path: Path, alias: str) -> bool:
    """Whether the file at ``path`` is a recording this plugin wrote of model ``alias``:
    prune deletes nothing else (the cassettes folder may be a folder of the user's)."""
    try:
        document = read_json(path, what="the recording", max_bytes=MAX_BYTES)
    except (OSError, JSONFileError):
        return False
    return (
        isinstance(document, dict)
        and document.get("version") == VERSION
        and document.get("model") == alias
        and isinstance(document.get("test"), str)
        and isinstance(document.get("interactions"), list)
    )


def delete(paths: Iterable[Path], recorder: Recorder) -> tuple[list[Path], list[str]]:
    """Delete recordings, and the folders they leave empty (up to the cassettes folder):
    (what was deleted, what could not be and why)."""
    deleted: list[Path] = []
    problems: list[str] = []
    for path in paths:
        try:
            path.unlink()
        except FileNotFoundError:
            continue
        except OSError as error:
            problems.append(f"{recorder.shown(path)}: {error.strerror or error}")
            continue
        deleted.append(path)
        folder = path.parent
        while folder.name != FOLDER and folder != recorder.base and folder != recorder.rootdir:
            try:
                folder.rmdir()
            except OSError:
                break
            folder = folder.parent
    return deleted, problems


# --- requests and answers as data -------------------------------------------------------


def _without(data: dict[str, Any], ignore: Iterable[str]) -> dict[str, Any]:
    """``data`` without the ignored fields (``a.b``: field ``b`` of the object ``a``); the
    caller's body is never changed."""
    for dotted in ignore:
        data = _drop(data, dotted.split("."))
    return data


def _drop(data: dict[str, Any], path: list[str]) -> dict[str, Any]:
    head, rest = path[0], path[1:]
    if head not in data:
        return data
    if not rest:
        return {k: v for k, v in data.items() if k != head}
    inner = data[head]
    if not isinstance(inner, dict):
        return data
    return {**data, head: _drop(inner, rest)}


def request_entry(request: Any, ignore: Iterable[str]) -> dict[str, Any]:
    """What identifies ``request`` (an httpx/httpx2 request whose body was read)."""
    path = request.url.raw_path.decode("ascii", "replace")
    entry: dict[str, Any] = {"method": request.method, "path": path}
    content = request.content
    if not content:
        return entry
    boundary = _BOUNDARY.search(request.headers.get("content-type", ""))
    if boundary is not None:  # a multipart body: its boundary is new in every request
        content = content.replace(boundary.group(1).encode(), b"BOUNDARY")
    try:
        data = json.loads(content)
    except ValueError:
        data = None
    if isinstance(data, dict):
        entry["json"] = _without(data, ignore)
    else:
        entry["text"] = content.decode("utf-8", "replace")
    return entry


def key_of(entry: Mapping[str, Any]) -> str:
    """The canonical text two requests match on."""
    return json.dumps(entry, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def body_entry(status: int, content_type: str, body: bytes) -> dict[str, Any]:
    """A plain (not streamed) answer, as data: JSON where it is JSON, text where it is
    UTF-8, base64 otherwise (audio, files)."""
    entry: dict[str, Any] = {"status": status, "content_type": content_type}
    try:
        entry["json"] = json.loads(body)
    except ValueError:
        try:
            entry["text"] = body.decode("utf-8")
        except UnicodeDecodeError:
            entry["base64"] = base64.b64encode(body).decode("ascii")
    return entry


#: A multipart content type's boundary.
_BOUNDARY: Final = re.compile(r"boundary=\"?([^\";]+)")


def stream_entry(status: int, content_type: str, body: bytes) -> dict[str, Any]:
    """A streamed answer, as its server-sent events: ``{"event": name, "data": ...}``, the
    data as JSON where it is JSON (a block with comments or other fields: ``{"raw": text}``)."""
    text = body.decode("utf-8", "replace").replace("\r\n", "\n")
    events = [_event(block) for block in text.split("\n\n") if block.strip()]
    return {"status": status, "content_type": content_type, "events": events}


def _event(block: str) -> dict[str, Any]:
    event: dict[str, Any] = {}
    data: list[str] = []
    for line in block.split("\n"):
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "data":
            data.append(value)
        elif field == "event" and "event" not in event:
            event["event"] = value
        else:
            return {"raw": block}
    if data:
        joined = "\n".join(data)
        try:
            parsed = json.loads(joined)
        except ValueError:
            parsed = None
        event["data"] = parsed if isinstance(parsed, dict | list) else joined
    return event


def _event_text(event: Mapping[str, Any]) -> str:
    if "raw" in event:
        return f"{event['raw']}\n\n"
    lines = [f"event: {event['event']}"] if "event" in event else []
    data = event.get("data")
    if data is not None:
        text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
        lines += [f"data: {line}" for line in text.split("\n")]
    return "\n".join(lines) + "\n\n"


def _stream_masked(entry: dict[str, Any], forms: Collection[str]) -> dict[str, Any]:
    """An interaction whose streamed answer has every key masked that its events hold
    between them (the rest of the file is masked string by string)."""
    answer = entry.get("response")
    if not forms or not isinstance(answer, dict) or not isinstance(answer.get("events"), list):
        return entry
    events = mask_events(answer["events"], forms)
    return (
        entry if events is answer["events"] else {**entry, "response": {**answer, "events": events}}
    )


def mask_events(events: list[Any], forms: Collection[str]) -> list[Any]:
    """``events`` with every key in ``forms`` masked, looked for in the joined text of each
    field: the pieces of one field (an answer's text, a tool call's arguments) in event order,
    so a key streamed a few characters per event is found; the characters of it each event
    holds become :data:`~pytest_llm_matrix.config.redaction.MASK`. The events themselves
    when none holds a key."""
    fields: dict[tuple[Any, ...], list[tuple[int, tuple[Any, ...], str]]] = {}
    for number, event in enumerate(events):
        for where, field, text in _event_texts(event):
            fields.setdefault(field, []).append((number, where, text))
    changed: dict[int, list[tuple[tuple[Any, ...], str]]] = {}
    for pieces in fields.values():
        joined = "".join(text for _, _, text in pieces)
        spans = _merged(span for form in forms for span in key_spans(joined, form))
        if not spans:
            continue
        offset = 0
        for number, where, text in pieces:
            end = offset + len(text)
            inside = [(max(a, offset) - offset, min(b, end) - offset) for a, b in spans]
            masked = _masked(text, [(a, b) for a, b in inside if a < b])
            if masked != text:
                changed.setdefault(number, []).append((where, masked))
            offset = end
    if not changed:
        return events
    result = list(events)
    for number, texts in changed.items():
        for where, text in texts:
            result[number] = _put(result[number], where, text)
    return result


def _event_texts(event: Any) -> Iterator[tuple[tuple[Any, ...], tuple[Any, ...], str]]:
    """(where, field, text) of every text of a recorded event: its place in the event, and
    the field it is a piece of, the same in every event of a stream (the event's name, then
    the path to the text, with any index the objects on it name: a choice's, a block's)."""
    if not isinstance(event, dict):
        return
    stack: list[tuple[tuple[Any, ...], tuple[Any, ...], Any]] = [
        ((name,), (event.get("event"), name), event[name])
        for name in ("raw", "data")
        if name in event
    ]
    while stack:
        where, field, value = stack.pop()
        if isinstance(value, str):
            yield where, field, value
        elif isinstance(value, dict):
            indices = tuple(
                (key, index)
                for key, index in value.items()
                if (key == "index" or str(key).endswith("_index")) and isinstance(index, int)
            )
            stack += [((*where, k), (*field, *indices, k), v) for k, v in value.items()]
        elif isinstance(value, list):
            stack += [((*where, i), (*field, i), v) for i, v in enumerate(value)]


def _merged(spans: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _masked(text: str, spans: list[tuple[int, int]]) -> str:
    """``text`` with each of its (sorted, disjoint) spans replaced by the mask."""
    pieces: list[str] = []
    done = 0
    for start, end in spans:
        pieces += [text[done:start], MASK]
        done = end
    return "".join([*pieces, text[done:]])


def _put(value: Any, where: tuple[Any, ...], text: str) -> Any:
    """A copy of ``value`` with ``text`` at ``where`` (its containers on the way copied)."""
    if not where:
        return text
    head, rest = where[0], where[1:]
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[head] = _put(value[head], rest, text)
    return copy


def answer_bytes(answer: Mapping[str, Any]) -> bytes:
    if "events" in answer:
        return "".join(_event_text(event) for event in answer["events"]).encode()
    if "json" in answer:
        return json.dumps(answer["json"], ensure_ascii=False).encode()
    if "base64" in answer:
        return base64.b64decode(answer["base64"])
    return str(answer.get("text", "")).encode()


def replayed_response(http: Any, answer: Mapping[str, Any], request: Any) -> Any:
    """A response of ``http`` (httpx2 or httpx) carrying a recorded answer (a content type
    that is not ASCII, as a server may send, given as the UTF-8 its client decoded)."""
    text: str = answer["content_type"]
    kind = text if text.isascii() else text.encode("utf-8", "replace")
    return http.Response(
        answer["status"],
        headers={"content-type": kind, "x-llm-matrix": "replayed"},
        content=answer_bytes(answer),
        request=request,
    )


# --- a test's recordings ---------------------------------------------------------------


#: The folder, in place of a model's, of the recordings of fixtures that the tests of every
#: model share (their auxiliary requests: an index embedded once for the session).
SHARED: Final = "_shared-fixtures"


def tape_for(ctx: Any, alias: str, shared: str | None = None) -> Tape | None:
    """The running test's recordings on model ``alias`` (None: not recording, or no test);
    or, with ``shared`` (``path/conftest.py::fixture``), that shared fixture's recordings,
    which whatever test sets the fixture up finds."""
    recorder = active()
    if recorder is None or ctx is None or ctx.nodeid is None:
        return None
    nodeid, folder = (shared, SHARED) if shared is not None else (ctx.nodeid, alias)
    tape: Tape | None = ctx.tapes.get((nodeid, folder))
    if tape is None:
        tape = Tape(recorder, nodeid, folder, test=(ctx.nodeid, ctx.model or alias))
        ctx.tapes[nodeid, folder] = tape
    return tape


def restart(ctx: Any) -> None:
    """A test (re)starting: its recordings are read afresh (a rerun of a failed test by
    pytest-rerunfailures must not replay, or record twice, what the failed run did)."""
    if ctx is not None:
        ctx.tapes.clear()


def flush(ctx: Any) -> None:
    """Write what the test recorded (at its teardown)."""
    if ctx is not None:
        for tape in ctx.tapes.values():
            tape.flush()


class Tape:
    """The recordings of one test (one run of a repeated test) on one model."""

    def __init__(
        self, recorder: Recorder, nodeid: str, alias: str, test: tuple[str, str] | None = None
    ) -> None:
        self.recorder = recorder
        self.nodeid = nodeid
        self.alias = alias
        #: the test (node id, model) whose run records this tape, for the command a miss says
        self.test = test or (nodeid, alias)
        paths = recorder.paths_for(nodeid, alias)
        self.path = paths[0]
        #: the file read: the path, or the one an earlier version gave it (None: none there)
        self.source: Path | None = None
        self.entries: list[dict[str, Any]] = []
        #: key -> the indices of its entries not yet replayed, in recorded order
        self.unused: dict[str, collections.deque[int]] = {}
        self.changed = False
        self.problem: str | None = None  # why the file could not be read
        if recorder.mode != "all":
            try:
                for path in paths:
                    entries = _read(path)
                    if entries is not None:
                        self.entries, self.source = entries, path
                        break
            except RecordingError as error:
                self.problem = str(error)
            for index, entry in enumerate(self.entries):
                self.unused.setdefault(entry["key"], collections.deque()).append(index)

    def take(self, key: str) -> dict[str, Any] | None:
        """The first unused recording matching ``key``, now used."""
        __tracebackhide__ = True
        if self.problem is not None:
            pytest.fail(f"{self.alias}: {self.problem}", pytrace=False)
        waiting = self.unused.get(key)
        return self.entries[waiting.popleft()] if waiting else None

    def add(self, entry: dict[str, Any]) -> None:
        self.entries.append(entry)
        self.changed = True

    def miss(self, request: Mapping[str, Any], destination: str | None = None) -> str:
        """Why ``request`` (to ``destination``: an auxiliary request's, kept with the test's
        recordings; None: to this model) found no recording, and how to record it."""
        where = self.recorder.shown(self.source or self.path)
        if self.source is None:
            found = f"{where} does not exist"
        else:
            found = f"none in {where} matches"
            hint = _difference(request, [e["request"] for e in self.entries])
            if hint:
                found += f" ({hint})"
        recorder = self.recorder
        nodeid, model = self.test
        words = ["pytest", "--llm-record=new", f"--models={model}"]
        if recorder.base is not None:
            words.append(f"--llm-cassettes={recorder.base}")
        command = shlex.join([*words, nodeid])
        if recorder.invocation is not None and recorder.invocation != recorder.rootdir:
            command = f"cd {shlex.quote(str(recorder.rootdir))} && {command}"
        to = self.alias if destination is None else f"{destination}, not sent"
        return (
            f"no recording of this request to {to} ({request['method']} "
            f"{request['path']}): {found}; run {command} to record it"
        )

    def flush(self) -> None:
        """Write the recordings if this test added any (atomically: a crash leaves the old
        file or the new one, never half of one); a file that cannot be written fails the
        running test's teardown."""
        if not self.changed:
            return
        forms = self.recorder.key_forms()
        document = {
            "version": VERSION,
            "test": self.nodeid,
            "model": self.alias,
            "interactions": [
                _stream_masked({k: v for k, v in entry.items() if k != "key"}, forms)
                for entry in self.entries
            ],
        }
        document = self.recorder.mask(document)
        text = json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        try:
            write_atomically(self.path, text)
        except OSError as error:  # the test's teardown fails, saying which file and why
            where = self.recorder.shown(self.path)
            reason = error.strerror or str(error)
            pytest.fail(f"{self.alias}: could not write the recording {where}: {reason}", False)
        self.changed = False


def write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=".", suffix=".tmp", dir=path.parent)
    try:
        try:  # the mode the file had, else what a new file gets (mkstemp's is 0600)
            mode = path.stat().st_mode & 0o777
        except OSError:
            mode = 0o666 & ~_UMASK
        os.chmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def _read(path: Path) -> list[dict[str, Any]] | None:
    """The interactions of a recording file, each with its key (None: there is no file)."""
    fix = "re-record it with --llm-record=all, or delete it"
    try:
        document = read_json(path, what="the recording", max_bytes=MAX_BYTES)
    except FileNotFoundError:
        return None
    except JSONFileError as error:
        raise RecordingError(f"{error}; {fix}") from None
    if not isinstance(document, dict) or document.get("version") != VERSION:
        version = document.get("version") if isinstance(document, dict) else None
        raise RecordingError(
            f"the recording {path} has version {version!r}; this plugin reads version "
            f"{VERSION}; {fix}"
        )
    interactions = document.get("interactions")
    if not isinstance(interactions, list):
        raise RecordingError(f"the recording {path} has no 'interactions' list; {fix}")
    entries = []
    for number, item in enumerate(interactions, 1):
        problem = _entry_problem(item)
        if problem is not None:
            raise RecordingError(f"the recording {path}, interaction {number}: {problem}; {fix}")
        entries.append({**item, "key": key_of(item["request"])})
    return entries


def _entry_problem(item: object) -> str | None:
    if not isinstance(item, dict):
        return "expected an object"
    request = item.get("request")
    if not isinstance(request, dict) or not all(
        isinstance(request.get(k), str) for k in ("method", "path")
    ):
        return "'request' needs a 'method' and a 'path'"
    if "failure" in item:
        return None if isinstance(item["failure"], str) else "'failure' must be text"
    if "error" in item:
        error = item["error"]
        if not isinstance(error, dict) or not all(
            isinstance(error.get(k), str) for k in ("type", "message")
        ):
            return "'error' must have a 'type' and a 'message'"
        return None
    answer = item.get("response")
    if not isinstance(answer, dict):
        return "expected a 'response' or a 'failure'"
    status = answer.get("status")
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        return "'response.status' must be an HTTP status (100-599)"
    if not isinstance(answer.get("content_type"), str):
        return "'response.content_type' must be text"
    events = answer.get("events")
    if events is not None and not (
        isinstance(events, list) and all(_event_problem(e) is None for e in events)
    ):
        bad = next(e for e in events if _event_problem(e)) if isinstance(events, list) else events
        return f"'response.events': {_event_problem(bad) or 'expected a list of events'}"
    if "text" in answer and not isinstance(answer["text"], str):
        return "'response.text' must be text"
    if "base64" in answer:
        try:
            if not isinstance(answer["base64"], str):
                raise ValueError
            base64.b64decode(answer["base64"], validate=True)
        except ValueError:
            return "'response.base64' must be base64 text"
    for name in ("latency", "ttft"):
        value = item.get(name)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1e6
        ):
            return f"'{name}' must be a number of seconds"
    return None


def _event_problem(event: object) -> str | None:
    if not isinstance(event, dict):
        return f"expected an event object, got {type(event).__name__}"
    if "raw" in event:
        return None if isinstance(event["raw"], str) else "'raw' must be text"
    if not isinstance(event.get("event", ""), str):
        return "'event' must be text"
    if set(event) - {"event", "data"}:
        return f"unknown fields {sorted(set(event) - {'event', 'data'})}"
    return None


def _difference(request: Mapping[str, Any], recorded: list[Mapping[str, Any]]) -> str:
    """Where ``request`` first differs from the recorded request most like it."""
    same_path = [
        r for r in recorded if (r["method"], r["path"]) == (request["method"], request["path"])
    ]
    if not same_path:
        return f"{len(recorded)} recorded, none to {request['path']}" if recorded else ""
    where = min(
        (_first_difference(request.get("json"), r.get("json"), "body") for r in same_path), key=len
    )
    return f"the body differs at {where}" if where else "the same request was already replayed"


def _first_difference(a: Any, b: Any, at: str) -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if a.get(key, _MISSING) != b.get(key, _MISSING):
                return _first_difference(a.get(key), b.get(key), f"{at}.{key}")
        return ""
    if isinstance(a, list) and isinstance(b, list):
        for index, (x, y) in enumerate(zip(a, b, strict=False)):
            if x != y:
                return _first_difference(x, y, f"{at}[{index}]")
        return f"{at} (length {len(a)}, recorded {len(b)})" if len(a) != len(b) else ""
    return at if a != b else ""


_MISSING: Final = object()


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


#: The process's umask, read once (reading it means setting it for a moment).
_UMASK: Final = _umask()
