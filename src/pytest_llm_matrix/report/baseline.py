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

import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Final

import pytest

from pytest_llm_matrix.calls.context import SPEND_COUNTERS
from pytest_llm_matrix.report.stats import wilson_interval

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


def parse(text: str, where: str) -> dict[str, Any]:
    """A report read back from JSON text, checked enough to be compared."""
    try:
        document = json.loads(text, parse_constant=_no_constant)
    except (ValueError, RecursionError) as error:
        reason = "nested too deeply" if isinstance(error, RecursionError) else str(error)
        raise BaselineError(f"{where} is not a JSON report ({reason})") from None
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
    problem = _shape_problem(document)
    if problem is not None:
        raise BaselineError(f"{where} is not a report this plugin wrote: {problem}")
    return document


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number JSON allows")


def read(path: Path) -> dict[str, Any]:
    """A report file: a regular file (not a pipe or a device), at most MAX_BYTES."""
    try:
        if path.is_dir():
            raise BaselineError(f"{path} is a folder, not a JSON report")
        if not path.exists():
            raise BaselineError(f"{path} does not exist")
        if not path.is_file():
            raise BaselineError(f"{path} is not a regular file")
        if (size := path.stat().st_size) > MAX_BYTES:
            raise BaselineError(f"{path} is {size:,} bytes; a report is at most {MAX_BYTES:,}")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise BaselineError(f"{path} cannot be read ({error})") from None
    return parse(text, str(path))


#: The largest report read back (one of tens of thousands of tests is a few MB).
MAX_BYTES: Final = 256 * 2**20


def _count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10**12


def _seconds_or_usd(value: object) -> bool:
    return value is None or (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and 0 <= value < 1e12
    )


#: A model's figures read from a baseline or merged: finite numbers from 0, or null.
NUMBERS: Final = (
    "cost_usd",
    "replayed_cost_usd",
    "latency_p50",
    "latency_p95",
    "ttft_p50",
    "wall_seconds",
    "test_seconds",
)


def _shape_problem(document: Mapping[str, Any]) -> str | None:
    models = document.get("models")
    if not isinstance(models, dict):
        return "no 'models' object"
    for name, model in models.items():
        if not isinstance(model, dict):
            return f"model {name!r} is not an object"
        passed, judged = model.get("runs_passed"), model.get("runs_judged")
        if not (isinstance(passed, int) and isinstance(judged, int)) or not (
            _count(passed) and _count(judged) and passed <= judged
        ):
            return f"model {name!r}: runs_passed and runs_judged must be counts, passed <= judged"
        for key in NUMBERS:
            if not _seconds_or_usd(model.get(key)):
                return f"model {name!r}: {key} must be a number or null"
        counts = [model.get(k, 0) for k in SPEND_COUNTERS]
        outcomes = model.get("outcomes", {})
        if not isinstance(outcomes, dict):
            return f"model {name!r}: outcomes must be an object"
        if not all(_count(value) for value in [*counts, *outcomes.values()]):
            return f"model {name!r}: outcomes and request and token counts must be counts"
    tests = document.get("tests")
    if not isinstance(tests, list):
        return "no 'tests' list"
    for test in tests:
        if not isinstance(test, dict) or not all(
            isinstance(test.get(key), str) for key in ("nodeid", "test", "model", "outcome")
        ):
            return "a test without its nodeid, test, model and outcome"
    return None


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
        "created": base.get("created") if isinstance(base.get("created"), str) else None,
        "plugin_version": base.get("plugin_version")
        if isinstance(base.get("plugin_version"), str)
        else None,
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
