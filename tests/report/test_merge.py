"""Merging the JSON reports of a suite split into jobs: the same per-model figures as the
run that was not split; the command line; reports that cannot be merged."""

from __future__ import annotations

import json
import subprocess
import sys

import jsonschema
import pytest

from ..conftest import schema

PROJECT = """
[tool.pytest.ini_options]
asyncio_default_fixture_loop_scope = "function"

[tool.llm-matrix.simulator]
default_reply = "ok"

[tool.llm-matrix.models.sim-a]
provider = "simulator"
input_price = 1.0
output_price = 2.0
simulate = { wrong = ["q3$"], wrong_reply = "no" }

[tool.llm-matrix.models.sim-b]
provider = "simulator"
input_price = 0.5
output_price = 1.0
"""

SHARD = """
import pytest

@pytest.mark.parametrize("n", range({start}, {stop}))
def test_answer(llm, n):
    assert llm.complete(f"q{{n}}") == "ok"
"""

REPEATED = """
import pytest

@pytest.mark.llm(repeat=3)
def test_again(llm):
    assert llm.complete("again") == "ok"
"""

FIGURES = (
    "outcomes", "runs_passed", "runs_judged", "requests", "input_tokens", "output_tokens",
    "pass_rate", "pass_rate_interval",
)  # fmt: skip


def merge_cli(cwd, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest_llm_matrix", "merge", *args],
        cwd=cwd, capture_output=True, text=True, check=False,
    )  # fmt: skip


@pytest.fixture
def project(pytester, monkeypatch):
    monkeypatch.delenv("TEST_MODELS", raising=False)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    pytester.makefile(".toml", pyproject=PROJECT)
    pytester.makepyfile(
        test_one=SHARD.format(start=0, stop=4),
        test_two=SHARD.format(start=4, stop=7),
        test_three=REPEATED,
    )
    return pytester


def test_three_shards_merge_into_the_unsplit_run(project, monkeypatch):
    pytester = project
    pytester.runpytest("--models=all", "--llm-report=full.json")
    for name in ("one", "two", "three"):
        pytester.runpytest("--models=all", f"test_{name}.py", f"--llm-report=shard-{name}.json")
    summary = pytester.path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    done = merge_cli(
        pytester.path, "shard-one.json", "shard-two.json", "shard-three.json",
        "--llm-report", "merged.json", "--html", "merged.html",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    full = json.loads((pytester.path / "full.json").read_text())
    merged = json.loads((pytester.path / "merged.json").read_text())
    jsonschema.validate(merged, schema())
    assert list(merged["models"]) == ["sim-a", "sim-b"]
    for name in ("sim-a", "sim-b"):
        for figure in FIGURES:
            assert merged["models"][name][figure] == full["models"][name][figure], (name, figure)
        assert merged["models"][name]["cost_usd"] == pytest.approx(full["models"][name]["cost_usd"])
    assert sorted(t["nodeid"] for t in merged["tests"]) == sorted(
        t["nodeid"] for t in full["tests"]
    )
    assert merged["failed_on_some"] == full["failed_on_some"]
    assert "sim-a " in done.stdout
    assert "test_one.py::test_answer[3]: sim-a" in done.stdout
    assert "| `sim-a` |" in summary.read_text()
    assert "test_one.py::test_answer[3]" in (pytester.path / "merged.html").read_text()


def test_the_same_test_in_two_reports_is_refused(project):
    pytester = project
    pytester.runpytest("--models=all", "test_one.py", "--llm-report=a.json")
    pytester.runpytest("--models=sim-a", "test_one.py", "--llm-report=b.json")
    done = merge_cli(pytester.path, "a.json", "b.json")
    assert done.returncode == 2
    assert (
        "error: test_one.py::test_answer[sim-a-0] on sim-a is in both a.json and b.json: a test "
        "runs in one job" in done.stderr
    )
    # runs of a repeated test judged in two jobs that did not share their records
    pytester.runpytest("--models=sim-a", "test_three.py", "--llm-report=c.json")
    pytester.runpytest("--models=sim-a", "test_three.py", "--llm-report=d.json")
    judged = merge_cli(pytester.path, "c.json", "d.json")
    assert judged.returncode == 2
    assert "was judged in both c.json and d.json" in judged.stderr


def test_reports_that_cannot_be_read_are_named(project):
    (project.path / "bad.json").write_text('{"version": 7}')
    done = merge_cli(project.path, "bad.json", "missing.json")
    assert done.returncode == 2
    assert "error: bad.json is a report of version 7; this plugin reads version 1" in done.stderr
    usage = merge_cli(project.path)
    assert usage.returncode == 2
    assert "REPORT.json" in usage.stderr


def _report(model: str, tests: list[dict], passed: int, judged: int) -> dict:
    outcomes = dict.fromkeys(("passed", "failed", "error", "skipped", "xfailed", "xpassed"), 0)
    outcomes["passed"] = passed
    return {
        "selection": {"models": [model]},
        "models": {model: {"outcomes": outcomes, "runs_passed": passed, "runs_judged": judged}},
        "tests": tests,
    }


def _entry(model: str, free: bool, name: str = "test_x", **extra) -> dict:
    """A test entry of a report, on ``model``, marked model-free or not."""
    entry = {
        "nodeid": f"t.py::{name}[{model}]",
        "test": f"t.py::{name}",
        "model": model,
        "outcome": "passed",
        "duration": 0.1,
        "cost_usd": 0.0,
        "spend": {},
        **extra,
    }
    return entry | ({"model_free": True} if free else {})


def test_a_test_model_free_in_one_job_but_not_another_is_counted_again():
    """Jobs split by model: the job of sim-a saw test_x reach no model, the job of sim-b saw
    it reach one; merged, test_x is no model-free test, and sim-a's row counts it."""
    from pytest_llm_matrix.report.merge import merge

    one = _report("sim-a", [_entry("sim-a", True), _entry("sim-a", True, "test_y")], 0, 0)
    two = _report("sim-b", [_entry("sim-b", False), _entry("sim-b", True, "test_y")], 1, 1)
    merged = merge([("a.json", one), ("b.json", two)])
    assert merged["model_free"] == ["t.py::test_y"]
    assert merged["models"]["sim-a"]["outcomes"]["passed"] == 1
    assert (merged["models"]["sim-a"]["runs_judged"], merged["models"]["sim-a"]["pass_rate"]) == (
        1,
        1.0,
    )
    assert [t.get("model_free") for t in merged["tests"]] == [None, True, None, True]


def test_a_tampered_model_free_test_gives_no_traceback():
    from pytest_llm_matrix.report.merge import merge

    for runs in ("abc", [{}], [{"outcome": 5}], None):
        one = _report("sim-a", [_entry("sim-a", True, runs=runs)], 0, 0)
        two = _report("sim-b", [_entry("sim-b", False)], 1, 1)
        merged = merge([("a.json", one), ("b.json", two)])
        assert merged["models"]["sim-a"]["runs_judged"] == 1, runs
