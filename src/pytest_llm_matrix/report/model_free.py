"""Model-free tests: model tests that never reached a model.

Adopting a suite with ``usefixtures = llm_sdks`` makes every test a model test, run once per
model, though most tests of a real suite never call one. A test that ``llm_sdks`` made a
model test and none of whose runs, on any model, sent a request to the model under test
(not even one refused before it went) says nothing about the models: it is left out of
each model's outcomes and pass rate, its failures count as plain failures (no optional
model or pass-rate gate forgives them), and the summary says once how many there were. A
test that asks for a model itself (``llm``, ``llm_model``) always counts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any

import pytest

from pytest_llm_matrix.calls.context import BUDGET_ATTR, REACHED_ATTR
from pytest_llm_matrix.report.render import pasteable
from pytest_llm_matrix.report.stats import JUDGED, ModelStats


class Adopted:
    """The controller's account of the tests ``llm_sdks`` made model tests (their reports
    say whether they reached a model): what each added to its model's row, to take it off
    again if the test turns out model-free. Other tests cost nothing here."""

    def __init__(self) -> None:
        self.parts: dict[str, ModelStats] = {}  # by test record: its outcomes, time, runs
        self.failed: dict[str, dict[str, int]] = {}  # by test record: failures, by kind
        self.reached: set[str] = set()
        self.budget_skipped: set[str] = set()
        self.free: set[str] | None = None  # known once the tests are over

    def note(
        self, key: str, report: pytest.TestReport, kind: str, category: str
    ) -> ModelStats | None:
        """One report of test record ``key``: the part it adds to (None: not adopted)."""
        reached = getattr(report, REACHED_ATTR, None)
        if reached is None:
            return None
        part = self.parts.setdefault(key, ModelStats())
        part.add(category, report.duration, None, None)
        if report.failed:
            failed = self.failed.setdefault(key, {})
            failed[kind] = failed.get(kind, 0) + 1
        if reached is True:
            self.reached.add(key)
        if getattr(report, BUDGET_ATTR, False):
            self.budget_skipped.add(key)
        return part

    def set_aside(
        self,
        tests: Mapping[str, dict[str, Any]],
        stats: Mapping[str, ModelStats],
        failures: MutableMapping[str, int],
        unavailable: Mapping[str, str],
    ) -> None:
        """The model-free tests leave their rows (``stats``), their failures become plain
        ones (``failures``), and their records say so."""
        self.free = free = model_free(
            {
                "test": tests[key]["test"],
                "outcome": tests[key]["outcome"],
                "reached": key in self.reached,
                "ran": tests[key]["outcome"] != "skipped"
                or (tests[key]["model"] not in unavailable and key not in self.budget_skipped),
            }
            for key in self.parts
        )
        for key, part in self.parts.items():
            test = tests[key]
            if test["test"] not in free:
                continue
            test["model_free"] = True
            stats[test["model"]].remove(part)
            for kind, count in self.failed.get(key, {}).items():
                failures[kind] -= count
                failures["plain"] += count


def model_free(records: Iterable[Mapping[str, Any]]) -> set[str]:
    """The tests (ids without the model) whose records all say they reached no model, among
    those that ran on some model: any outcome but a skip the plugin made for the model (its
    key missing, the model found unavailable, the budget spent)."""
    reached: dict[str, bool] = {}
    ran: set[str] = set()
    for record in records:
        test = record["test"]
        reached[test] = reached.get(test, False) or bool(record.get("reached"))
        if record.get("ran", record["outcome"] in JUDGED):
            ran.add(test)
    return {test for test in ran if not reached[test]}


def lines(records: Iterable[Mapping[str, Any]], free: set[str]) -> list[str]:
    """What the summary says of them: how many, the hint, and those that failed (once each,
    by the id of one of their runs, to paste back into pytest)."""
    if not free:
        return []
    runs = [record for record in records if record.get("model_free")]
    tests = "1 test" if len(free) == 1 else f"{len(free)} tests"
    said = [
        f"model-free: {tests} sent no request to the model under test on any model "
        f"({len(runs)} run{'s' * (len(runs) != 1)}, not in the rows above); narrow llm_sdks to "
        "the tests that call a model: ini llm_sdks_paths, or an autouse fixture in their "
        "folder's conftest.py"
    ]
    failed: dict[str, list[str]] = {}
    for record in runs:
        if record["outcome"] in ("failed", "error"):
            failed.setdefault(record["test"], []).append(record["nodeid"])
    if failed:
        said.append("model-free tests failed (whatever the model; they fail the run):")
        for ids in failed.values():
            more = len(ids) - 1
            also = f" (and on {more} more model{'s' * (more != 1)})" if more else ""
            said.append(f"  {pasteable(ids[0])}{also}")
    return said
