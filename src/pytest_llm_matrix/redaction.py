"""Keep API keys out of everything that leaves the process.

Keys are not redacted where messages are built - a server that echoes a key can do so
through paths nobody listed (an SDK's exception, an assertion on a body, captured output,
a local variable shown by ``-l``) - but where text leaves: every test and collection report
before any reporter sees it (in the process that made it, so also in xdist workers), and
every file and summary line the plugin writes.

What counts as a key: the value of every configured model's ``api_key_env``, read when the
text is checked (a test may set it), in the forms it can take in text: as is, stripped,
escaped as Python or JSON writes strings, and percent-encoded. A text that holds the first
:data:`MIN_LENGTH` characters of such a form loses them and as much of the rest of the form
as follows, and likewise for its last characters, so a key cut short (a body trimmed to 200
characters) or cut in the middle (pytest shortens long values so) goes too. Values shorter
than :data:`MIN_LENGTH` are placeholders (``EMPTY``, ``ollama``), not secrets, and are left
alone: redacting them would garble every message that happens to contain the word.
"""

from __future__ import annotations

import json
import os
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Final

import pytest

#: Characters of a key (or of its start) that make a match.
MIN_LENGTH: Final = 8
MASK: Final = "***"


def forms_of(value: str) -> set[str]:
    """The spellings of a key that a message can hold."""
    forms: set[str] = set()
    for key in {value, value.strip()}:
        forms.update(
            {
                key,
                repr(key)[1:-1],
                json.dumps(key)[1:-1],
                json.dumps(key, ensure_ascii=False)[1:-1],
                urllib.parse.quote(key, safe=""),
            }
        )
    return {form for form in forms if len(form) >= MIN_LENGTH}


def _spans(text: str, form: str) -> Iterator[tuple[int, int]]:
    """Where ``text`` holds ``form``, its start or its end (at least MIN_LENGTH characters:
    a key cut short, or cut in the middle as pytest shortens long values)."""
    head, tail = form[:MIN_LENGTH], form[-MIN_LENGTH:]
    start = text.find(head)
    while start >= 0:
        end = start + MIN_LENGTH
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
    spans = sorted(span for form in forms for span in _spans(text, form))
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
    """The keys of the configured models, and what to do with text that holds one."""

    def __init__(self, key_envs: Iterable[str]) -> None:
        self.key_envs = tuple(sorted(set(key_envs)))
        self._values: tuple[str | None, ...] = ()
        self._forms: frozenset[str] = frozenset()
        self._pieces: tuple[str, ...] = ()  # the starts and ends that make a match

    @property
    def forms(self) -> frozenset[str]:
        """The forms of the keys set right now (recomputed only when a value changed)."""
        values = tuple(os.environ.get(name) for name in self.key_envs)
        if values != self._values:
            forms: set[str] = set()
            for value in values:
                if value:
                    forms |= forms_of(value)
            self._values, self._forms = values, frozenset(forms)
            ends = {form[:MIN_LENGTH] for form in forms} | {form[-MIN_LENGTH:] for form in forms}
            self._pieces = tuple(ends)
        return self._forms

    def holds_key(self, text: str) -> bool:
        forms = self.forms
        return bool(forms) and any(piece in text for piece in self._pieces)

    def text(self, text: str) -> str:
        return mask(text, self.forms) if self.holds_key(text) else text

    def data(self, value: Any) -> Any:
        """Plain data (as JSON holds it) with every string redacted."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list | tuple):
            return type(value)(self.data(item) for item in value)
        if isinstance(value, dict):
            return {key: self.data(item) for key, item in value.items()}
        return value


#: The report fields that hold text from the test (never the ids: xdist maps reports by them).
_TEXT_FIELDS: Final = ("longrepr", "sections", "user_properties", "wasxfail")


class ReportRedaction:
    """Redacts every report before a reporter (terminal, JUnit, pytest-xdist's channel to the
    controller, other plugins) sees it: first thing when the report is logged.

    Model tests' reports are also redacted as soon as they are made (see
    :class:`.tracking.TestTracker`), so the plugin's own uses of them (a repeated test's
    failure notes, shared between workers) see them redacted too.
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
