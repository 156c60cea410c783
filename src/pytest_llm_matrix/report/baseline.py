"""This run against a baseline: another run's JSON report (``--llm-baseline=PATH``), or the
last run's of the same selection, kept in pytest's cache (``--llm-baseline=last``).

Pass rates of LLM tests are noisy, so a change is judged by its 95% interval: Newcombe's
hybrid score interval for the difference of two independent proportions (method 10 of
Newcombe 1998, built on each rate's Wilson interval). A change whose interval lies below 0
is a regression; ``--llm-fail-on-regression`` fails the run on a required model's. Pure
data in, plain data out: the comparison is a section of the JSON report, and the terminal,
Markdown and HTML outputs are written from it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Final

import pytest

from pytest_llm_matrix.calls.context import SPEND_COUNTERS
from pytest_llm_matrix.config.jsonfile import JSONFileError, read_json
from pytest_llm_matrix.report.stats import OUTCOMES, wilson_interval

#: The JSON report's schema version: the one written, and the only one read back (reports
#: of other plugin versions with this version are read).
REPORT_VERSION: Final = 1
#: pytest's cache key of the last run's report, per selection (see last_report_key).
LAST_REPORT_CACHE: Final = "llm-matrix/last-report"
FAILED: Final = ("failed", "error")


#: The baseline's report and where it came from, in the controller's ``config.stash``.
BASELINE_KEY: Final = pytest.StashKey[tuple[dict[str, Any], str]]()


class BaselineError(Exception):
    """A baseline that cannot be used; the message names it and says what to do."""


def last_report_key(selection: Iterable[str], paths: Iterable[str]) -> str:
    """The cache key of the last report of a selection: its models (in any order) and the
    test paths given (a run of some modules is no baseline for a run of all)."""
    given = json.dumps([sorted(selection), sorted(paths)])
    return f"{LAST_REPORT_CACHE}/{hashlib.sha256(given.encode()).hexdigest()[:16]}"


def newcombe_interval(
    passed: int, runs: int, base_passed: int, base_runs: int
) -> tuple[float, float] | None:
    """The 95% interval of ``passed/runs - base_passed/base_runs`` (Newcombe's method 10);
    None when either side has no runs."""
    if runs <= 0 or base_runs <= 0:
        return None
    p1, p2 = passed / runs, base_passed / base_runs
    low1, high1 = wilson_interval(passed, runs)
    low2, high2 = wilson_interval(base_passed, base_runs)
    difference = p1 - p2
    low = difference - math.sqrt((p1 - low1) ** 2 + (high2 - p2) ** 2)
    high = difference + math.sqrt((high1 - p1) ** 2 + (p2 - low2) ** 2)
    return max(-1.0, low), min(1.0, high)


# --- reading a baseline ---------------------------------------------------------------

#: The largest report read back (one of tens of thousands of tests is a few MB).
MAX_BYTES: Final = 256 * 2**20


def read(path: Path, what: str = "the baseline") -> dict[str, Any]:
    """The report in the file at ``path``: read by the plugin's one JSON reader (a regular
    file of at most MAX_BYTES, strict UTF-8, not nested too deeply, no key twice in an
    object: a model given twice would be read as one of them), then :func:`checked`.
    ``what`` names the file in errors: "the baseline", "the report"."""
    try:
        document = read_json(path, what=what, max_bytes=MAX_BYTES, unique_keys=True)
    except FileNotFoundError:
        raise BaselineError(f"{what} {path} does not exist") from None
    except JSONFileError as error:
        raise BaselineError(str(error)) from None
    return checked(document, str(path))


def checked(document: object, where: str) -> dict[str, Any]:
    """A report read back, checked enough to be compared: its version, then every field a
    comparison reads, by type (``where`` names it in errors)."""
    if not isinstance(document, dict):
        raise BaselineError(f"{where} is not a JSON report (expected an object)")
    version = document.get("version")
    if type(version) is not int or version != REPORT_VERSION:
        written = document.get("plugin_version")
        by = f" (written by pytest-llm-matrix {written})" if isinstance(written, str) else ""
        raise BaselineError(
            f"{where} is a report of version {version!r}{by}; this plugin reads version "
            f"{REPORT_VERSION}: write the baseline again with this version's --llm-report"
        )
    try:
        check_report(document)
    except FieldError as error:
        raise BaselineError(f"{where}: {error}") from None
    return document


# --- the fields of a report, by type --------------------------------------------------


class FieldError(Exception):
    """A field of a report that cannot be used: the message names the field, what it
    holds and what it should (``tests[3].duration is 'slow', expected a number ...``)."""


#: What a field holds when the report does not have it.
MISSING: Final = object()


def shown(value: object) -> str:
    """A value read from a file, briefly: its repr, cut short (it may be megabytes)."""
    if value is MISSING:
        return "missing"
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:48]}...{text[-8:]}"


def member(field: str, name: str, named: bool = False) -> str:
    """The path of a member of ``field``: ``spend.requests``, ``tests`` (of the document
    itself); a ``named`` member (a model, a destination) or a key that is no identifier in
    brackets: ``models['gpt-4o']``, ``environment['python 3']``."""
    if named or not name.isidentifier():
        return f"{field}[{shown(name)}]"
    return f"{field}.{name}" if field else name


@dataclasses.dataclass(frozen=True)
class Kind:
    """What a field must hold: the values ``accepts`` takes, ``said`` in errors."""

    accepts: Callable[[object], bool]
    said: str

    def check(self, value: object, field: str) -> None:
        if not self.accepts(value):
            raise FieldError(f"{field} is {shown(value)}, expected {self.said}")

    def check_in(self, holder: Mapping[str, Any], name: str, field: str) -> None:
        """``holder[name]``, where ``holder`` is at ``field``, when it is there (a reader
        of an absent field has a default for it)."""
        if name in holder:
            self.check(holder[name], member(field, name))


#: The largest count, number of seconds or USD read back: sums stay exact and print.
LARGEST: Final = 10**12


def is_number(value: object, low: float = 0, high: float = LARGEST) -> bool:
    """A finite JSON number from ``low`` to ``high`` (true and false are no numbers)."""
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and low <= value <= high
    )


def is_count(value: object, low: int = 0, high: int = LARGEST) -> bool:
    """A whole JSON number from ``low`` to ``high`` (not 1.0, not true)."""
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


OBJECT: Final = Kind(lambda v: isinstance(v, dict), "an object")
LIST: Final = Kind(lambda v: isinstance(v, list), "a list")
STRING: Final = Kind(lambda v: isinstance(v, str), "a string")
COUNT: Final = Kind(is_count, "a whole number from 0 to 1e12")
#: A cost counted in billionths of a dollar (``reported_cost_nanousd``): up to $1e12.
NANO_COUNT: Final = Kind(lambda v: is_count(v, high=10**21), "a whole number from 0 to 1e21")


def counter_kind(key: str) -> Kind:
    """How a spend counter is checked: a count, or a cost in billionths of a dollar."""
    return NANO_COUNT if key.endswith("_nanousd") else COUNT


NUMBER_OR_NULL: Final = Kind(
    lambda v: v is None or is_number(v), "a number from 0 to 1e12, or null"
)
OUTCOME: Final = Kind(
    lambda v: isinstance(v, str) and v in OUTCOMES, "one of " + ", ".join(OUTCOMES)
)

#: A model's figures: finite numbers from 0, or null.
NUMBERS: Final = (
    "cost_usd",
    "replayed_cost_usd",
    "latency_p50",
    "latency_p95",
    "ttft_p50",
    "wall_seconds",
    "test_seconds",
)


def check_report(document: Mapping[str, Any]) -> None:
    """Every field a comparison reads, by type (a merge reads more: see
    :func:`pytest_llm_matrix.report.merge.check`); a :class:`FieldError` names the first
    that is wrong."""
    for name in ("plugin_version", "created"):
        STRING.check_in(document, name, "")
    models = document.get("models", MISSING)
    OBJECT.check(models, "models")
    for name, model in models.items():
        field = member("models", name, named=True)
        OBJECT.check(model, field)
        for count in ("runs_passed", "runs_judged"):
            COUNT.check(model.get(count, MISSING), f"{field}.{count}")
        if model["runs_passed"] > model["runs_judged"]:
            raise FieldError(
                f"{field}.runs_passed is {model['runs_passed']}, more than runs_judged "
                f"({model['runs_judged']})"
            )
        for number in NUMBERS:
            NUMBER_OR_NULL.check_in(model, number, field)
        for count in SPEND_COUNTERS:
            counter_kind(count).check_in(model, count, field)
        OBJECT.check_in(model, "outcomes", field)
        for outcome, value in model.get("outcomes", {}).items():
            COUNT.check(value, member(f"{field}.outcomes", outcome))
    tests = document.get("tests", MISSING)
    LIST.check(tests, "tests")
    for index, test in enumerate(tests):
        field = f"tests[{index}]"
        OBJECT.check(test, field)
        for name in ("nodeid", "test", "model"):
            STRING.check(test.get(name, MISSING), f"{field}.{name}")
        OUTCOME.check(test.get("outcome", MISSING), f"{field}.outcome")


# --- the comparison -------------------------------------------------------------------


def compare(current: Mapping[str, Any], base: Mapping[str, Any], source: str) -> dict[str, Any]:
    """The ``baseline`` section of the JSON report: per model, the pass rates and the change
    with its interval, cost and latency changes, and the tests that changed."""
    now_tests = _outcomes(current)
    base_tests = _outcomes(base)
    models: dict[str, Any] = {}
    for name, model in current["models"].items():
        before = base["models"].get(name)
        if before is None:
            continue
        runs = (model["runs_passed"], model["runs_judged"])
        base_runs = (before["runs_passed"], before["runs_judged"])
        interval = newcombe_interval(*runs, *base_runs)
        rate = runs[0] / runs[1] if runs[1] else None
        base_rate = base_runs[0] / base_runs[1] if base_runs[1] else None
        change = None
        if interval is not None:
            change = "worse" if interval[1] < 0 else "better" if interval[0] > 0 else "same"
        elif base_runs[1] and not runs[1]:
            change = "not run"  # judged in the baseline, not now: not shown to be no worse
        mine = now_tests.get(name, {})
        theirs = base_tests.get(name, {})
        models[name] = {
            "pass_rate": rate,
            "baseline_pass_rate": base_rate,
            "runs": list(runs),
            "baseline_runs": list(base_runs),
            "difference": None if rate is None or base_rate is None else rate - base_rate,
            "interval": None if interval is None else list(interval),
            "change": change,
            "cost_change_usd": _minus(answers_cost(model), answers_cost(before)),
            "latency_p50_change": _minus(model.get("latency_p50"), before.get("latency_p50")),
            "now_failing": sorted(
                mine[t][0]
                for t in mine.keys() & theirs.keys()
                if mine[t][1] in FAILED and theirs[t][1] == "passed"
            ),
            "now_passing": sorted(
                mine[t][0]
                for t in mine.keys() & theirs.keys()
                if mine[t][1] == "passed" and theirs[t][1] in FAILED
            ),
            "added": sorted(mine[t][0] for t in mine.keys() - theirs.keys()),
            "removed": sorted(theirs[t][0] for t in theirs.keys() - mine.keys()),
        }
    return {
        "source": source,
        "created": base.get("created"),  # a string or absent: see check_report
        "plugin_version": base.get("plugin_version"),
        "models": models,
        "only_in_baseline": [name for name in base["models"] if name not in current["models"]],
        "only_in_this_run": [name for name in current["models"] if name not in base["models"]],
        "regressions": [
            name
            for name, change in models.items()
            if change["change"] in ("worse", "not run")
            and current["models"][name].get("required", True)
        ],
    }


def _outcomes(report: Mapping[str, Any]) -> dict[str, dict[str, tuple[str, str]]]:
    """model -> test (its id without the model) -> (its node id, its outcome)."""
    found: dict[str, dict[str, tuple[str, str]]] = {}
    for test in report["tests"]:
        found.setdefault(test["model"], {})[test["test"]] = (test["nodeid"], test["outcome"])
    return found


def answers_cost(model: Mapping[str, Any]) -> float | None:
    """What a model's answers in a run cost: spent live, plus what the replayed ones cost
    when recorded (so a replayed run and a live one compare); None when not known."""
    total = 0.0
    for key in ("cost_usd", "replayed_cost_usd"):
        value = model.get(key, 0.0)
        if value is None:
            return None
        if isinstance(value, int | float):
            total += float(value)
    return total


def _minus(now: object, before: object) -> float | None:
    if isinstance(now, int | float) and isinstance(before, int | float):
        return float(now) - float(before)
    return None
