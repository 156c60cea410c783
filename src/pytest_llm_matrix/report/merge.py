"""One report from many: the JSON reports of the jobs a suite was split into (a job per
model, or pytest-split shards), merged into the report of one run.

Counts, tokens, requests, costs and test time add up; pass rates and their intervals are
computed again from the runs; the failed-everywhere and failed-on-some lists again from the
tests. Two reports may not both hold a test on a model, unless they hold runs of a repeated
test and at most one of them its verdict (runs split between jobs are judged once only when
the jobs share their records). A model's latency percentiles are exact when one report
holds it; across reports they are the shards' values weighted by their requests (an
estimate: the samples are not in the reports). Wall time is the longest shard's.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pytest_llm_matrix.calls.context import SPEND_COUNTERS
from pytest_llm_matrix.report import auxiliary
from pytest_llm_matrix.report.baseline import REPORT_VERSION, BaselineError, read
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
    spent = [r["spent_usd"] for _, r in reports if isinstance(r.get("spent_usd"), int | float)]
    return {
        "version": REPORT_VERSION,
        "plugin_version": first.get("plugin_version", ""),
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "exit_status": max(int(r.get("exit_status", 0) or 0) for _, r in reports),
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
        "failed_everywhere": everywhere,
        "failed_on_some": {t: ms for t, ms in some.items()},
        "environment": dict(first.get("environment") or {}),
        "baseline": None,
        "recording": None,
    }


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
        if model is None or test["outcome"] not in OUTCOMES:
            continue
        found = test.get("runs")
        runs: list[Any] = found if isinstance(found, list) else []
        outcomes = [
            run["outcome"]
            for run in runs
            if isinstance(run, dict) and run.get("outcome") in OUTCOMES
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
    counts = {k: sum(int(p.get("outcomes", {}).get(k, 0)) for p in parts) for k in OUTCOMES}
    passed = sum(int(p["runs_passed"]) for p in parts)
    judged = sum(int(p["runs_judged"]) for p in parts)
    repeated = any(p.get("pass_rate_interval") for p in parts)
    spend = {k: sum(int(p.get(k, 0) or 0) for p in parts) for k in SPEND_COUNTERS}
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
            (p["wall_seconds"] for p in parts if isinstance(p.get("wall_seconds"), int | float)),
            default=None,
        ),
        "test_seconds": round(sum(float(p.get("test_seconds", 0) or 0) for p in parts), 6),
        **spend,
        "cost_usd": _sum([p.get("cost_usd", 0.0) for p in parts]),
        "replayed_cost_usd": _sum([p.get("replayed_cost_usd", 0.0) for p in parts]),
        "unavailable": next((p["unavailable"] for p in parts if p.get("unavailable")), None),
    }
    for key in _PERCENTILES:
        merged[key] = _weighted(parts, key)
    return merged


def _weighted(parts: Sequence[Mapping[str, Any]], key: str) -> float | None:
    known = [
        (float(p[key]), int(p.get("requests", 0) or 0) + int(p.get("replayed", 0) or 0))
        for p in parts
        if isinstance(p.get(key), int | float)
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
    for name, report in reports:
        for test in report["tests"]:
            key = (test["nodeid"], test["model"])
            if key not in merged:
                merged[key] = dict(test)
                where[key] = name
                continue
            mine = merged[key]
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
                if "message" in test:
                    mine["message"] = test["message"]
            for counter, value in (test.get("spend") or {}).items():
                spend = mine.setdefault("spend", {})
                if isinstance(value, list):
                    spend[counter] = [*spend.get(counter, []), *value]
                elif isinstance(value, int):
                    spend[counter] = spend.get(counter, 0) + value
    return list(merged.values())


def stats_of(model: Mapping[str, Any]) -> ModelStats:
    """A merged model's figures, for the terminal table and Markdown."""
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
        replayed_cost=float(model.get("replayed_cost_usd") or 0.0),
        replayed_unpriced=model.get("replayed_cost_usd") is None and replayed > 0,
        runs_passed=int(model["runs_passed"]),
        runs_judged=int(model["runs_judged"]),
        repeated=model.get("pass_rate_interval") is not None,
        known_percentiles={key: model.get(key) for key in _PERCENTILES},
    )


def read_all(paths: Sequence[str]) -> list[tuple[str, dict[str, Any]]]:
    """The reports at ``paths``, each checked as a baseline is."""
    found = []
    for path in paths:
        try:
            found.append((path, read(Path(path))))
        except BaselineError as error:
            raise MergeError(str(error)) from None
    return found
