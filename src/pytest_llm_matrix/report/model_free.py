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

from collections.abc import Iterable, Mapping
from typing import Any

from pytest_llm_matrix.report.render import pasteable
from pytest_llm_matrix.report.stats import JUDGED


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
