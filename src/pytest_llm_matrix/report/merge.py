"""One report from many: the JSON reports of the jobs a suite was split into (a job per
model, or pytest-split shards), merged into the report of one run.

Counts, tokens, requests, costs and test time add up; pass rates and their intervals are
computed again from the runs; the failed-everywhere and failed-on-some lists again from the
tests. Two reports may not both hold a test on a model, unless they hold runs of a repeated
test, each run in one of them, and at most one of them its verdict (runs split between jobs
are judged once only when the jobs share their records); no report may be given twice. A
model's latency percentiles are exact when one report holds it; across reports they are the
shards' values weighted by their requests (an estimate: the samples are not in the
reports). Wall time is the longest shard's; the exit status the highest, unless the merge
judges the run with gates of its own (:func:`apply_gates`).

Every field a merge reads is checked by type first (:func:`check`), then each model's
figures against the report's own tests (:func:`check_figures`): a report edited, cut short
or written by something else is refused naming the file and the field.
"""

from __future__ import annotations

import datetime
import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from pytest_llm_matrix.calls.context import SPEND_COUNTERS
from pytest_llm_matrix.report import auxiliary
from pytest_llm_matrix.report.baseline import (
    COUNT,
    LIST,
    MISSING,
    NUMBER_OR_NULL,
    OBJECT,
    REPORT_VERSION,
    STRING,
    BaselineError,
    FieldError,
    Kind,
    check_report,
    counter_kind,
    is_count,
    is_number,
    member,
    read,
)
from pytest_llm_matrix.report.cost import SOURCES, sources_of
from pytest_llm_matrix.report.gates import Gates
from pytest_llm_matrix.report.stats import (
    JUDGED,
    OUTCOMES,
    ModelStats,
    failure_split,
    wilson_interval,
)


class MergeError(Exception):
    """Reports that cannot be merged; the message says which and why."""


_SEVERITY = {"passed": 0, "xfailed": 1, "xpassed": 1, "skipped": 2, "failed": 3, "error": 4}
_PERCENTILES = ("latency_p50", "latency_p95", "ttft_p50")


def merge(reports: Sequence[tuple[str, Mapping[str, Any]]]) -> dict[str, Any]:
    """The report of the run the ``(name, report)`` pairs were parts of."""
    if not reports:
        raise MergeError("no report to merge")
    _once_each(reports)
    for name, report in reports:
        try:
            check(report)
        except FieldError as error:
            raise MergeError(f"{name}: {error}") from None
    order: list[str] = []
    parts: dict[str, list[Mapping[str, Any]]] = {}
    for _, report in reports:
        for name in [*report.get("selection", {}).get("models", []), *report["models"]]:
            if name not in order and name in report["models"]:
                order.append(name)
        for name, model in report["models"].items():
            parts.setdefault(name, []).append(model)
    models = {name: _model(parts[name]) for name in order}
    tests = _tests(reports)
    free = _model_free(tests, models)
    outcomes: dict[str, dict[str, str]] = {}
    for test in tests:
        if test.get("model_free") is not True:
            outcomes.setdefault(test["test"], {})[test["model"]] = test["outcome"]
    everywhere, some = failure_split(outcomes)
    first = reports[0][1]
    spent = [r["spent_usd"] for _, r in reports if r.get("spent_usd") is not None]
    return {
        "version": REPORT_VERSION,
        "plugin_version": first.get("plugin_version", ""),
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "exit_status": max(r.get("exit_status", 0) for _, r in reports),
        **_failures(reports),
        "selection": {
            "models": order,
            "selected_by": f"merged from {len(reports)} reports: "
            + ", ".join(name for name, _ in reports),
        },
        "min_pass_rate": first.get("min_pass_rate"),
        "max_cost_usd": first.get("max_cost_usd"),
        "spent_usd": sum(spent) if spent else None,
        "models": models,
        "tests": tests,
        "model_free": sorted(free),
        "auxiliary": auxiliary.merged([report for _, report in reports]),
        "judges": auxiliary.merged([report for _, report in reports], "judges"),
        "transcripts": _transcripts([report for _, report in reports]),
        "failed_everywhere": everywhere,
        "failed_on_some": {t: ms for t, ms in some.items()},
        "environment": dict(first.get("environment", {})),
        "baseline": None,
        "recording": None,
    }


def _transcripts(reports: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The reports' transcript settings: the widest cut, the tests whose none kept."""
    found = [r["transcripts"] for r in reports if isinstance(r.get("transcripts"), dict)]
    return {
        "chars": max((int(t.get("chars") or 0) for t in found), default=0),
        "budget_mb": sum(int(t.get("budget_mb") or 0) for t in found),
        "dropped_tests": sum(int(t.get("dropped_tests") or 0) for t in found),
    }


def apply_gates(
    merged: dict[str, Any], reports: Sequence[tuple[str, Mapping[str, Any]]], gates: Gates
) -> dict[str, float | None]:
    """The run of ``merged`` (the :func:`merge` of ``reports``) judged by ``gates`` as the
    run that was not split would have been: its exit status, gate and comparison with the
    baseline set in ``merged``; the required models below the gate returned.

    Each job judged its own model tests, by its own gate or by none: with a gate, the
    merged run's pass rates are judged instead, and of the jobs' verdicts only what no
    gate forgives stays (:func:`_unforgiven`). A job interrupted (exit status 2 and
    above) still makes the merged run's status its own."""
    models = merged["models"]
    rates = {name: model["pass_rate"] for name, model in models.items()}
    optional = {name for name, model in models.items() if not model["required"]}
    below = gates.below(rates, optional)
    status: int = merged["exit_status"]
    if gates.min_pass_rate is not None:
        merged["min_pass_rate"] = gates.min_pass_rate
        if status <= 1:
            plain = sum(_unforgiven(report) for _, report in reports)
            # required models' failures are the gate's to judge: none counted by number
            status = 0 if gates.forgiven(plain, 0, below) else 1
    merged["baseline"] = gates.compare(merged)
    merged["exit_status"] = gates.status(status, below, merged["baseline"])
    return below


def _failures(reports: Sequence[tuple[str, Mapping[str, Any]]]) -> dict[str, Any]:
    """The merged report's ``failures``, the reports' added up; none (not known) when a
    report does not say (see :func:`_unforgiven`)."""
    known = [report["failures"] for _, report in reports if "failures" in report]
    if len(known) < len(reports):
        return {}
    plain = sum(failures["plain"] for failures in known)
    return {"failures": {"plain": plain, "stopped": any(f["stopped"] for f in known)}}


def _unforgiven(report: Mapping[str, Any]) -> int:
    """A job's failures no gate forgives, as its report says (``failures``): those of tests
    without a model, a stop at a failure (-x), the budget reached (it skipped tests). A
    report that does not say (hand-written, or older) keeps its own verdict: a failed job
    counts as one such failure."""
    failures = report.get("failures")
    if failures is None:
        return int(report.get("exit_status", 0) != 0)
    spent, budget = report.get("spent_usd"), report.get("max_cost_usd")
    reached = spent is not None and budget is not None and spent >= budget
    return int(failures["plain"]) + bool(failures["stopped"]) + reached


def _model_free(tests: list[dict[str, Any]], models: dict[str, Any]) -> set[str]:
    """The tests model-free in every report. A test one job found model-free (it reached
    no model there) but another did not (it reached one) is counted again in its model's
    outcomes and pass rate, as the jobs' single run would have counted it."""
    reached = {t["test"] for t in tests if t.get("model_free") is not True}
    free = set()
    for test in tests:
        if test.get("model_free") is not True:
            continue
        if test["test"] not in reached:
            free.add(test["test"])
            continue
        del test["model_free"]
        model = models.get(test["model"])
        if model is None:
            continue
        outcomes = [
            run["outcome"] for run in test.get("runs", []) if run["outcome"] in OUTCOMES
        ] or [test["outcome"]]
        model["outcomes"][test["outcome"]] = model["outcomes"].get(test["outcome"], 0) + 1
        for outcome in outcomes:
            if outcome in JUDGED:
                model["runs_judged"] += 1
                model["runs_passed"] += outcome == "passed"
        judged, passed = model["runs_judged"], model["runs_passed"]
        model["pass_rate"] = passed / judged if judged else None
        if model.get("pass_rate_interval") is not None and judged:
            model["pass_rate_interval"] = list(wilson_interval(passed, judged))
    return free


def _sum(values: Sequence[Any]) -> float | None:
    """The sum of costs, None when one is unknown."""
    if any(v is None for v in values):
        return None
    return float(sum(v for v in values if isinstance(v, int | float)))


def _model(parts: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    first = parts[0]
    counts = {k: sum(p.get("outcomes", {}).get(k, 0) for p in parts) for k in OUTCOMES}
    passed = sum(p["runs_passed"] for p in parts)
    judged = sum(p["runs_judged"] for p in parts)
    repeated = any(p.get("pass_rate_interval") for p in parts)
    spend = {k: sum(p.get(k, 0) for p in parts) for k in SPEND_COUNTERS}
    merged: dict[str, Any] = {
        "provider": first.get("provider"),
        "model": first.get("model"),
        "required": all(p.get("required", True) for p in parts),
        "outcomes": counts,
        "pass_rate": passed / judged if judged else None,
        "runs_passed": passed,
        "runs_judged": judged,
        "pass_rate_interval": list(wilson_interval(passed, judged))
        if repeated and judged
        else None,
        "wall_seconds": max(
            (p["wall_seconds"] for p in parts if p.get("wall_seconds") is not None),
            default=None,
        ),
        "test_seconds": round(sum(float(p.get("test_seconds") or 0) for p in parts), 6),
        **spend,
        "cost_usd": _sum([p.get("cost_usd", 0.0) for p in parts]),
        "price_sources": sources_of(parts),
        "replayed_cost_usd": _sum([p.get("replayed_cost_usd", 0.0) for p in parts]),
        "unavailable": next((p["unavailable"] for p in parts if p.get("unavailable")), None),
    }
    for key in _PERCENTILES:
        merged[key] = _weighted(parts, key)
    return merged


def _weighted(parts: Sequence[Mapping[str, Any]], key: str) -> float | None:
    known: list[tuple[float, int]] = [
        (float(p[key]), p.get("requests", 0) + p.get("replayed", 0))
        for p in parts
        if p.get(key) is not None
    ]
    if not known:
        return None
    if len(known) == 1:
        return known[0][0]
    total = sum(weight for _, weight in known)
    if total == 0:
        return sum(value for value, _ in known) / len(known)
    return sum(value * weight for value, weight in known) / total


def _tests(reports: Sequence[tuple[str, Mapping[str, Any]]]) -> list[dict[str, Any]]:
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    where: dict[tuple[str, str], str] = {}
    #: a repeated test's run indexes, each with the report that holds it
    indexes: dict[tuple[str, str], dict[int, str]] = {}
    for name, report in reports:
        for test in report["tests"]:
            key = (test["nodeid"], test["model"])
            if "runs" in test:
                _runs_once(test, name, indexes.setdefault(key, {}))
            if key not in merged:
                merged[key] = dict(test, spend=dict(test.get("spend", {})))
                where[key] = name
                continue
            mine = merged[key]
            if where[key] == name:
                raise MergeError(
                    f"{name}: {test['nodeid']} on {test['model']} is in its tests twice"
                )
            if "runs" not in mine or "runs" not in test:
                raise MergeError(
                    f"{test['nodeid']} on {test['model']} is in both {where[key]} and {name}: "
                    "a test runs in one job (only a repeated test's runs may be split)"
                )
            if "verdict" in mine and "verdict" in test:
                raise MergeError(
                    f"{test['nodeid']} on {test['model']} was judged in both {where[key]} and "
                    f"{name}: its runs were split between jobs that did not share their "
                    "records"
                )
            mine["runs"] = sorted([*mine["runs"], *test["runs"]], key=lambda r: r["index"])
            mine["duration"] = mine.get("duration", 0.0) + test.get("duration", 0.0)
            mine["cost_usd"] = _sum([mine.get("cost_usd", 0.0), test.get("cost_usd", 0.0)])
            if "verdict" in test:
                mine["verdict"] = test["verdict"]
                mine["outcome"] = test["outcome"]
                for text in ("message", "failure"):
                    if text in test:
                        mine[text] = test[text]
            for listed in ("transcript", "verdicts"):  # a repeated test's runs, by index
                if listed in test:
                    both = [*mine.get(listed, []), *test[listed]]
                    mine[listed] = sorted(both, key=lambda entry: entry.get("run", 0))
            if "transcript_more" in test:
                mine["transcript_more"] = mine.get("transcript_more", 0) + test["transcript_more"]
            spend = mine["spend"]
            for counter, value in test.get("spend", {}).items():
                before = spend.get(counter, [] if isinstance(value, list) else 0)
                if isinstance(before, list) != isinstance(value, list):
                    raise MergeError(
                        f"{test['nodeid']} on {test['model']}: spend.{counter} is a count in "
                        f"one of {where[key]} and {name}, a list in the other"
                    )
                spend[counter] = [*before, *value] if isinstance(value, list) else before + value
    return list(merged.values())


def _runs_once(test: Mapping[str, Any], name: str, seen: dict[int, str]) -> None:
    """A repeated test's runs in report ``name``: none of them in another report too (its
    outcome, time and spend would be counted twice). ``seen``: the runs of the test in the
    reports before, by index, with the report holding each. One report may hold a run
    twice: its result and a later teardown error of it."""
    mine = {run["index"] for run in test["runs"]}
    for index in sorted(mine):
        other = seen.get(index, name)
        if other != name:
            raise MergeError(
                f"{test['nodeid']} on {test['model']}: run {index} is in both {other} and "
                f"{name}: each run of a repeated test runs in one job (a report given twice, "
                "or a job run again?)"
            )
        seen[index] = name


def stats_of(model: Mapping[str, Any], change: Mapping[str, Any] | None = None) -> ModelStats:
    """A merged model's figures, for the terminal table and Markdown; ``change``: its
    change against the baseline (see :func:`.baseline.compare`)."""
    tokens = int(model.get("input_tokens", 0) or 0) + int(model.get("output_tokens", 0) or 0)
    replayed = int(model.get("replayed_input_tokens", 0) or 0) + int(
        model.get("replayed_output_tokens", 0) or 0
    )
    wall = model.get("wall_seconds")
    return ModelStats(
        counts={k: int(model["outcomes"].get(k, 0)) for k in OUTCOMES},
        duration=float(model.get("test_seconds", 0.0) or 0.0),
        start=0.0 if isinstance(wall, int | float) else None,
        stop=float(wall) if isinstance(wall, int | float) else None,
        spend={k: int(model.get(k, 0) or 0) for k in SPEND_COUNTERS},
        cost=float(model["cost_usd"] or 0.0),
        unpriced=model.get("cost_usd") is None and tokens > 0,
        sources=set(model.get("price_sources") or ()),
        replayed_cost=float(model.get("replayed_cost_usd") or 0.0),
        replayed_unpriced=model.get("replayed_cost_usd") is None and replayed > 0,
        runs_passed=int(model["runs_passed"]),
        runs_judged=int(model["runs_judged"]),
        repeated=model.get("pass_rate_interval") is not None,
        known_percentiles={key: model.get(key) for key in _PERCENTILES},
        change=change,
    )


def read_all(paths: Sequence[str]) -> list[tuple[str, dict[str, Any]]]:
    """The reports at ``paths``, read as a baseline is (see :func:`.baseline.read`)."""
    found = []
    for path in paths:
        try:
            found.append((path, read(Path(path), what="the report")))
        except BaselineError as error:
            raise MergeError(str(error)) from None
    return found


def _once_each(reports: Sequence[tuple[str, Mapping[str, Any]]]) -> None:
    """No report twice, by name or by content (a copy, another path to the same file): its
    counts would be added twice, and a report without tests has no test in both reports
    to tell."""
    seen: dict[str, str] = {}
    for name, report in reports:
        if name in seen.values():
            raise MergeError(f"{name} is given twice: each report is merged once")
        text = json.dumps(report, sort_keys=True, default=repr)
        digest = hashlib.sha256(text.encode()).hexdigest()  # ASCII: json.dumps escapes
        if digest in seen:
            raise MergeError(
                f"{seen[digest]} and {name} hold the same report: each report is merged once"
            )
        seen[digest] = name


# --- the fields a merge reads, by type --------------------------------------------------


def _numbers(value: object) -> bool:
    return isinstance(value, list) and all(is_number(v) for v in value)


EXIT_STATUS: Final = Kind(lambda v: is_count(v, high=255), "a whole number from 0 to 255")
ENVIRONMENT: Final = Kind(
    lambda v: isinstance(v, dict) and all(isinstance(x, str) for x in v.values()),
    "an object of strings",
)
NAMES: Final = Kind(
    lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v), "a list of strings"
)
STRING_OR_NULL: Final = Kind(lambda v: v is None or isinstance(v, str), "a string or null")
BOOLEAN: Final = Kind(lambda v: isinstance(v, bool), "true or false")
TRUE: Final = Kind(lambda v: v is True, "true")
NUMBER: Final = Kind(is_number, "a number from 0 to 1e12")
SHARE: Final = Kind(lambda v: is_number(v, high=1), "a number from 0 to 1")
SHARE_OR_NULL: Final = Kind(
    lambda v: v is None or is_number(v, high=1), "a number from 0 to 1, or null"
)
INTERVAL: Final = Kind(
    lambda v: (
        v is None or (isinstance(v, list) and len(v) == 2 and all(is_number(x, high=1) for x in v))
    ),
    "null or two numbers from 0 to 1",
)
FROM_ONE: Final = Kind(lambda v: is_count(v, low=1), "a whole number from 1 to 1e12")
SAMPLES: Final = Kind(_numbers, "a list of numbers from 0 to 1e12")
COUNT_OR_NUMBERS: Final = Kind(
    lambda v: is_count(v) or _numbers(v), "a whole number from 0 to 1e12 or a list of numbers"
)
PRICE_SOURCES: Final = Kind(
    lambda v: isinstance(v, list) and all(isinstance(s, str) and s in SOURCES for s in v),
    "a list of " + ", ".join(SOURCES),
)
RUN_OUTCOME: Final = Kind(
    lambda v: isinstance(v, str) and v in (*OUTCOMES, "not needed"),
    "one of " + ", ".join((*OUTCOMES, "not needed")),
)
VERDICT: Final = ("passed", "runs", "needed", "planned", "decided_by")


def check(report: Mapping[str, Any]) -> None:
    """Every field a merge reads, by type (those a comparison reads, see
    :func:`.baseline.check_report`, and more); a :class:`.baseline.FieldError` names the
    first that is wrong. A field a merge defaults may be absent."""
    check_report(report)
    EXIT_STATUS.check_in(report, "exit_status", "")
    OBJECT.check_in(report, "failures", "")
    if "failures" in report:  # both or neither: a report that does not say is judged apart
        COUNT.check(report["failures"].get("plain", MISSING), "failures.plain")
        BOOLEAN.check(report["failures"].get("stopped", MISSING), "failures.stopped")
    OBJECT.check_in(report, "selection", "")
    NAMES.check_in(report.get("selection", {}), "models", "selection")
    ENVIRONMENT.check_in(report, "environment", "")
    SHARE_OR_NULL.check_in(report, "min_pass_rate", "")
    for name in ("max_cost_usd", "spent_usd"):
        NUMBER_OR_NULL.check_in(report, name, "")
    OBJECT.check_in(report, "transcripts", "")
    for name in ("chars", "budget_mb", "dropped_tests"):
        COUNT.check_in(report.get("transcripts", {}), name, "transcripts")
    for name, model in report["models"].items():
        field = member("models", name, named=True)
        for text in ("provider", "model"):
            STRING.check_in(model, text, field)
        BOOLEAN.check_in(model, "required", field)
        STRING_OR_NULL.check_in(model, "unavailable", field)
        INTERVAL.check_in(model, "pass_rate_interval", field)
        PRICE_SOURCES.check_in(model, "price_sources", field)
    for index, test in enumerate(report["tests"]):
        _check_test(test, f"tests[{index}]")
    check_figures(report)
    for section in ("auxiliary", "judges"):
        _check_rows(report, section)


def _check_rows(report: Mapping[str, Any], section: str) -> None:
    """The rows of ``auxiliary`` or ``judges``: what each is, and what it spent."""
    OBJECT.check_in(report, section, "")
    for name, row in report.get(section, {}).items():
        field = member(section, name, named=True)
        OBJECT.check(row, field)
        for key in row:
            if key in ("kind", "model", "sent_as"):
                STRING.check_in(row, key, field)
            elif key in ("latency_p50", "cost_usd", "replayed_cost_usd"):
                NUMBER_OR_NULL.check_in(row, key, field)
            elif key == "price_sources":
                PRICE_SOURCES.check_in(row, key, field)
            else:
                counter_kind(key).check_in(row, key, field)


def _check_test(test: Mapping[str, Any], field: str) -> None:
    """A test's fields besides those :func:`.baseline.check_report` checks."""
    NUMBER.check_in(test, "duration", field)
    NUMBER_OR_NULL.check_in(test, "cost_usd", field)
    STRING.check_in(test, "message", field)
    STRING.check_in(test, "failure", field)
    COUNT.check_in(test, "transcript_more", field)
    for listed in ("transcript", "verdicts"):
        LIST.check_in(test, listed, field)
        for index, entry in enumerate(test.get(listed, [])):
            OBJECT.check(entry, f"{field}.{listed}[{index}]")
            FROM_ONE.check_in(entry, "run", f"{field}.{listed}[{index}]")
    TRUE.check_in(test, "model_free", field)
    FROM_ONE.check_in(test, "repeat", field)
    SHARE.check_in(test, "min_pass_rate", field)
    OBJECT.check_in(test, "spend", field)
    for key, value in test.get("spend", {}).items():
        where = member(f"{field}.spend", key)
        if key in SPEND_COUNTERS:
            counter_kind(key).check(value, where)
        elif key in ("latencies", "ttft"):
            SAMPLES.check(value, where)
        else:  # a counter of another version: added up like the others
            COUNT_OR_NUMBERS.check(value, where)
    LIST.check_in(test, "runs", field)
    if "runs" in test:  # the runs of a test repeated that many times
        FROM_ONE.check(test.get("repeat", MISSING), f"{field}.repeat")
    for index, run in enumerate(test.get("runs", [])):
        OBJECT.check(run, f"{field}.runs[{index}]")
        FROM_ONE.check(run.get("index", MISSING), f"{field}.runs[{index}].index")
        if run["index"] > test["repeat"]:
            raise FieldError(
                f"{field}.runs[{index}].index is {run['index']}, more than the test's repeat "
                f"({test['repeat']})"
            )
        RUN_OUTCOME.check(run.get("outcome", MISSING), f"{field}.runs[{index}].outcome")
    OBJECT.check_in(test, "verdict", field)
    if "verdict" in test:
        for key in VERDICT:
            COUNT.check(test["verdict"].get(key, MISSING), f"{field}.verdict.{key}")


# --- each model's figures against the report's own tests --------------------------------


def check_figures(report: Mapping[str, Any]) -> None:
    """Each model's figures as its tests in the report can have made them (a report with
    its tests cut, or counts edited, would be merged into counts no run had); a
    :class:`.baseline.FieldError` names the first that cannot be, with both numbers. Fields
    checked by type first (:func:`check`).

    How a run makes the figures (see :mod:`.summary`): every report of a test on a model
    adds to its outcomes by pytest's count, so a test adds at least one to the outcome it
    ends with, and more when it has several results (a passed call and a teardown error,
    failed subtests); a repeated test's runs count as skipped but the one that carries its
    verdict. A plain test's passed call is one passed run; a repeated test's passed runs are
    those of its ``runs``. Tests found model-free are in neither. A model's spend counters
    are its tests' summed, model-free ones too. So checked: the spend counters exactly;
    passed runs and passes (at most one per test) from both sides; runs not passed and
    every other outcome from below (subtests and teardown errors add to them unseen)."""
    tests: dict[str, list[Mapping[str, Any]]] = {}
    for test in report["tests"]:
        tests.setdefault(test["model"], []).append(test)
    for name, model in report["models"].items():
        field = member("models", name, named=True)
        mine = tests.get(name, [])
        for counter in SPEND_COUNTERS:
            spent = sum(test.get("spend", {}).get(counter, 0) for test in mine)
            if model.get(counter, 0) != spent:
                raise FieldError(
                    f"{field}.{counter} is {model.get(counter, 0)}, but its tests' "
                    f"spend.{counter} adds up to {spent}"
                )
        counted = [test for test in mine if test.get("model_free") is not True]
        plain = [test for test in counted if "runs" not in test]
        repeated = [test for test in counted if "runs" in test]
        runs = [run["outcome"] for test in repeated for run in test["runs"]]
        passed_runs = runs.count("passed")
        _within(
            f"{field}.runs_passed",
            model["runs_passed"],
            passed_runs,
            passed_runs + len(plain),
            "a plain test's passed run and a repeated test's passed runs",
        )
        plain_passed = model["runs_passed"] - passed_runs  # a plain test's pass is one run
        judged = [test for test in repeated if "verdict" in test]
        verdicts = [test for test in judged if test["outcome"] == "passed"]
        outcomes = model.get("outcomes", {})
        _within(
            f"{field}.outcomes.passed",
            outcomes.get("passed", 0),
            plain_passed + len(verdicts),
            plain_passed + len(judged),
            f"the passes of plain tests ({plain_passed}, as runs_passed says) and one per "
            "repeated test's verdict",
        )
        not_passed = sum(test["outcome"] in ("failed", "error") for test in plain)
        not_passed += sum(outcome in ("failed", "error") for outcome in runs)
        _within(
            f"{field}.runs_judged",
            model["runs_judged"],
            model["runs_passed"] + not_passed,
            None,
            f"the passed runs ({model['runs_passed']}, as runs_passed says) and "
            f"{not_passed} failed or errored",
        )
        for outcome in OUTCOMES[1:]:
            ended = sum(test["outcome"] == outcome for test in counted)
            if outcomes.get(outcome, 0) < ended:  # each counted once at least
                raise FieldError(
                    f"{member(f'{field}.outcomes', outcome)} is {outcomes.get(outcome, 0)}, "
                    f"but {ended} of its tests ended {outcome}"
                )


def _within(field: str, value: int, low: int, high: int | None, what: str) -> None:
    if value < low:
        raise FieldError(f"{field} is {value}, but its tests hold at least {low}: {what}")
    if high is not None and value > high:
        raise FieldError(f"{field} is {value}, but its tests hold at most {high}: {what}")
