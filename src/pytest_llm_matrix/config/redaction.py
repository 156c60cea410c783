"""Keep API keys out of everything that leaves the process.

Keys are not redacted where messages are built - a server that echoes a key can do so
through paths nobody listed (an SDK's exception, an assertion on a body, captured output,
a local variable shown by ``-l``) - but where text leaves: every test and collection report
before any reporter sees it (in the process that made it, so also in xdist workers), and
every file and summary line the plugin writes.

What counts as a key: every value a configured model's ``api_key_env``, or one of the variables
the official SDKs read a key from (:data:`SDK_KEY_ENVS`: a suite's own client, say for
embeddings, sends that key to servers that may echo it), has had in the session (read at start
and whenever text is checked: a test may set or delete one), in the forms it can take in text:
as is, stripped, lower- and upper-cased, escaped as Python or JSON writes strings, and
percent-encoded (as URLs do, and with every character but letters and digits). A text that
holds the start of such a form (its first :data:`MIN_LENGTH` characters; for a key with a
kind, ``sk-proj-`` or ``sk-ant-api03-``, which every key of the kind shares, its kind and
:data:`AFTER_KIND` characters of its secret) loses it and as much of the rest of the form as
follows, and likewise for its last :data:`MIN_LENGTH` characters, so a key cut short (a body
trimmed to 200 characters) or cut in the middle (pytest shortens long values so) goes too.
Values shorter than :data:`MIN_LENGTH` are placeholders (``EMPTY``, ``ollama``), not secrets,
and are left alone: redacting them would garble every message that happens to contain the word.
"""

from __future__ import annotations

import json
import os
import re
import urllib.parse
import warnings
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Final

import pytest

#: Characters of a key (or of its start) that make a match.
MIN_LENGTH: Final = 8
MASK: Final = "***"
#: The variables the official SDKs take a key from when none is given.
SDK_KEY_ENVS: Final = (
    "OPENAI_API_KEY",
    "OPENAI_ADMIN_KEY",
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "AZURE_OPENAI_API_KEY",
    "AZURE_OPENAI_AD_TOKEN",
)


def forms_of(value: str) -> set[str]:
    """The spellings of a key that a message can hold."""
    forms: set[str] = set()
    for key in {value, value.strip()}:
        forms.update(
            {
                key,
                key.lower(),
                key.upper(),
                repr(key)[1:-1],
                json.dumps(key)[1:-1],
                json.dumps(key, ensure_ascii=False)[1:-1],
                urllib.parse.quote(key, safe=""),
                # every character but letters and digits encoded ("-" as %2D)
                "".join(
                    c if c.isascii() and c.isalnum() else "".join(f"%{b:02X}" for b in c.encode())
                    for c in key
                ),
            }
        )
    return {form for form in forms if len(form) >= MIN_LENGTH}


#: A key's kind, the same in every key of that kind (``sk-proj-``, ``sk-ant-api03-``,
#: ``sk-or-v1-``, ``gsk_``, ``hf_``), written as is or percent-encoded: not a secret.
_KIND: Final = re.compile(r"(?:[A-Za-z][A-Za-z0-9]{0,5}(?:[-_]|%2[Dd]|%5[Ff])){1,3}")


#: Characters of a key's secret part after its kind that make a match with its start.
AFTER_KIND: Final = 4


def head_length(form: str) -> int:
    """How many of a form's first characters make a match: the key's kind and AFTER_KIND
    characters after it (a text holding ``sk-proj-`` holds no secret: a test's fake key
    ``sk-proj-invalid`` is not masked, so what is masked, in recordings too, does not change
    with the keys set), at least MIN_LENGTH; MIN_LENGTH when the key has no kind."""
    kind = _KIND.match(form)
    if kind is not None and kind.end() <= 16 and len(form) - kind.end() >= 2 * MIN_LENGTH:
        return max(MIN_LENGTH, kind.end() + AFTER_KIND)
    return MIN_LENGTH


def key_spans(text: str, form: str) -> Iterator[tuple[int, int]]:
    """Where ``text`` holds ``form``, its start (see :func:`head_length`) or its end (its
    last MIN_LENGTH characters): a key cut short, or cut in the middle as pytest shortens
    long values."""
    length = head_length(form)
    head, tail = form[:length], form[-MIN_LENGTH:]
    start = text.find(head)
    while start >= 0:
        end = start + length
        while end < len(text) and end - start < len(form) and text[end] == form[end - start]:
            end += 1
        yield start, end
        start = text.find(head, start + 1)
    end = text.find(tail)
    while end >= 0:
        start, inside = end, len(form) - MIN_LENGTH
        while start > 0 and inside > 0 and text[start - 1] == form[inside - 1]:
            start, inside = start - 1, inside - 1
        yield start, end + MIN_LENGTH
        end = text.find(tail, end + 1)


def mask(text: str, forms: Iterable[str]) -> str:
    """``text`` with every form, and every start or end of one at least MIN_LENGTH long,
    masked. Matches are found in the original text, for all forms at once, so a shorter
    form's match cannot hide part of a longer one's."""
    spans = sorted(span for form in forms for span in key_spans(text, form))
    if not spans:
        return text
    pieces: list[str] = []
    done = 0
    for start, end in spans:
        if start >= done:
            pieces += [text[done:start], MASK]
        done = max(done, end)  # a match overlapping the last one extends its mask
    pieces.append(text[done:])
    return "".join(pieces)


class Redactor:
    """The keys of the configured models, and what to do with text that holds one.

    Every value a key variable has had since the session began counts: a test may set a
    key with ``monkeypatch`` and its teardown report, made after the variable was restored,
    still carries the test's output.
    """

    def __init__(self, key_envs: Iterable[str]) -> None:
        self.key_envs = tuple(sorted(set(key_envs)))
        self._values: tuple[str | None, ...] = ()
        self._seen: set[str] = set()  # every key value met so far
        self._forms: frozenset[str] = frozenset()
        self._pieces: tuple[str, ...] = ()  # the starts and ends that make a match
        self._refresh()  # the values at start: a test may delete them

    @property
    def forms(self) -> frozenset[str]:
        """The forms of every key value met so far."""
        self._refresh()
        return self._forms

    def _refresh(self) -> None:
        """Take in the key values set now (the forms are recomputed only for a new one)."""
        values = tuple(os.environ.get(name) for name in self.key_envs)
        if values != self._values:
            self._values = values
            new = {value for value in values if value} - self._seen
            if new:
                self._seen |= new
                forms = set(self._forms)
                for value in new:
                    forms |= forms_of(value)
                self._forms = frozenset(forms)
                ends = {f[: head_length(f)] for f in forms} | {f[-MIN_LENGTH:] for f in forms}
                self._pieces = tuple(ends)

    def holds_key(self, text: str) -> bool:
        forms = self.forms
        return bool(forms) and any(piece in text for piece in self._pieces)

    def text(self, text: str) -> str:
        return self._text_now(text) if self.forms else text

    def data(self, value: Any) -> Any:
        """Data with every string redacted: lists, tuples and dicts (keys too) are rebuilt;
        any other value that shows a key when written out (bytes, a named tuple, an object
        a test recorded as a property) becomes its redacted text. The key variables are
        read once per call (a report holds thousands of strings), and data is returned as
        it is while no key is known."""
        if not self.forms or not self._may_hold_key(value):
            return value
        return self._data(value)

    def _may_hold_key(self, value: Any) -> bool:
        """Whether a piece of a key may show in ``value``: one look in C at the whole of it
        written out as JSON, instead of one look per string. A piece shows unchanged in JSON
        text exactly when it shows in a string of the data, unless JSON or ``repr`` would
        escape one of its characters: then (and for data that is not plain JSON data) the
        answer is yes, and every string is looked at."""
        if not all(_PLAIN_PIECE.fullmatch(piece) for piece in self._pieces):
            return True
        try:
            written = json.dumps(value, ensure_ascii=False, default=_not_plain)
        except Exception:  # a value JSON cannot write as it is, a cycle: look at every string
            return True
        # JSON writes a subclass of dict, list or tuple by its items, but its text (what the
        # look string by string redacts) may show more: only plain data takes the short way
        return not _plain(value) or any(piece in written for piece in self._pieces)

    def _data(self, value: Any) -> Any:
        if isinstance(value, str):
            return self._text_now(value)
        if type(value) in (list, tuple):
            return type(value)(self._data(item) for item in value)
        if type(value) is dict:
            return {self._data(key): self._data(item) for key, item in value.items()}
        if value is None or isinstance(value, bool | int | float):
            return value
        shown = str(value)
        redacted = self._text_now(shown)
        return redacted if redacted is not shown else value

    def _text_now(self, text: str) -> str:
        """``text`` redacted with the forms known now (no new read of the variables)."""
        if any(piece in text for piece in self._pieces):
            return mask(text, self._forms)
        return text


#: Key pieces whose characters JSON text and ``repr`` show as they are.
_PLAIN_PIECE: Final = re.compile(r"[^\"'\\\x00-\x1f\x7f-\xa0\u2028\u2029]+")


def _not_plain(value: object) -> object:
    raise TypeError(f"not plain JSON data: {type(value).__name__}")


_LEAVES: Final = frozenset({str, int, float, bool, type(None)})


def _plain(value: object) -> bool:
    """Whether ``value`` is plain JSON data, built of dicts with string keys, lists, tuples,
    strings, numbers, booleans and None - those exact types, no subclass. (It has no cycle:
    JSON wrote it.)"""
    todo = [value]
    while todo:
        item = todo.pop()
        kind = type(item)
        if kind is dict:
            for key, inner in item.items():  # type: ignore[attr-defined]
                if type(key) is not str:
                    return False
                todo.append(inner)
        elif kind is list or kind is tuple:
            todo.extend(item)  # type: ignore[arg-type]
        elif kind not in _LEAVES:
            return False
    return True


#: The report fields that hold text from the test (never the ids: xdist maps reports by them).
_TEXT_FIELDS: Final = ("longrepr", "sections", "user_properties", "wasxfail")


class ReportRedaction:
    """Redacts every report before a reporter (terminal, JUnit, pytest-xdist's channel to the
    controller, other plugins) sees it: first thing when the report is logged.

    Model tests' reports are also redacted as soon as they are made (see
    :class:`pytest_llm_matrix.tracking.TestTracker`), so the plugin's own uses of them (a
    repeated test's failure notes, shared between workers) see them redacted too.
    """

    def __init__(self, config: pytest.Config, redactor: Redactor) -> None:
        self.config = config
        self.redactor = redactor

    def report(self, report: pytest.TestReport | pytest.CollectReport) -> None:
        """Redact ``report`` in place (a cheap look first: most reports hold no text)."""
        if not (
            report.longrepr is not None
            or report.sections
            or getattr(report, "user_properties", None)
            or getattr(report, "wasxfail", None)
        ):
            return
        if not self.redactor.forms or not self._holds_key(report):
            return
        # The report's own serialization (what xdist sends) turns its longrepr into plain
        # data; rebuilding from the redacted data keeps the longrepr's types for display.
        hook = self.config.hook
        data = hook.pytest_report_to_serializable(config=self.config, report=report)
        for name in _TEXT_FIELDS:
            if name in data:
                data[name] = self.redactor.data(data[name])
        clean = hook.pytest_report_from_serializable(config=self.config, data=data)
        for name in _TEXT_FIELDS:
            if hasattr(clean, name):
                setattr(report, name, getattr(clean, name))

    def _holds_key(self, report: pytest.TestReport | pytest.CollectReport) -> bool:
        holds: Callable[[str], bool] = self.redactor.holds_key
        if report.longrepr is not None and holds(report.longreprtext):
            return True
        if any(holds(title) or holds(content) for title, content in report.sections):
            return True
        if holds(str(getattr(report, "wasxfail", ""))):
            return True
        return any(holds(repr(prop)) for prop in getattr(report, "user_properties", ()))

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.report(report)

    @pytest.hookimpl(tryfirst=True)
    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        self.report(report)

    @pytest.hookimpl(tryfirst=True)
    def pytest_warning_recorded(self, warning_message: warnings.WarningMessage) -> None:
        """A warning (say, an unhandled error in a thread the test started, quoting an
        echoed key) is shown in the warnings summary, or sent to the controller: redacted
        before the terminal or xdist turn it into text."""
        message = warning_message.message
        text = str(message)
        if not self.redactor.holds_key(text):
            return
        category = type(message) if isinstance(message, Warning) else UserWarning
        try:
            warning_message.message = category(self.redactor.text(text))
        except Exception:  # a warning class with a signature of its own
            warning_message.message = UserWarning(self.redactor.text(text))


REDACTOR_KEY: Final = pytest.StashKey[Redactor]()
PLUGIN_NAME: Final = "llm_matrix.redaction"


def redactor(config: pytest.Config) -> Redactor:
    """The session's redactor (one that knows no key when the plugin is not configured)."""
    return config.stash.get(REDACTOR_KEY, None) or Redactor(())


def redact_report(config: pytest.Config, report: pytest.TestReport) -> None:
    """Redact a report now, if the session has keys to hide."""
    plugin = config.pluginmanager.get_plugin(PLUGIN_NAME)
    if isinstance(plugin, ReportRedaction):
        plugin.report(report)
