"""Merging the JSON reports of a suite split into jobs: the same per-model figures as the
run that was not split; the command line; reports that cannot be merged."""

from __future__ import annotations

import fnmatch
import json
import math
import os
import re
import shutil
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
    full = json.loads((pytester.path / "full.json").read_text())
    merged = json.loads((pytester.path / "merged.json").read_text())
    # test_one.py::test_answer[3] fails on sim-a: the merged run failed, as the unsplit one
    assert done.returncode == merged["exit_status"] == full["exit_status"] == 1, done.stderr
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
    # sim-a's failure is a model test's: a gate may forgive it (see report.gates)
    assert merged["failures"] == full["failures"] == {"plain": 0, "stopped": False}
    assert "sim-a " in done.stdout
    assert "test_one.py::test_answer[3]: sim-a" in done.stdout
    assert "| `sim-a` |" in summary.read_text()
    assert "- `test_one.py::test_answer[sim-a-3]`" in summary.read_text()  # not "- `sim-a`"
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
    pytester.runpytest("--models=sim-a", "test_three.py", "-k", "run1", "--llm-report=c.json")
    pytester.runpytest("--models=sim-a", "test_three.py", "-k", "not run1", "--llm-report=d.json")
    judged = merge_cli(pytester.path, "c.json", "d.json")
    assert judged.returncode == 2
    assert "was judged in both c.json and d.json" in judged.stderr


def test_a_run_in_two_reports_is_refused(project):
    """Each run of a repeated test runs in one job: a run in two reports (jobs that ran it
    both, a job run again) would be counted twice, its time, spend and outcome."""
    pytester = project
    pytester.runpytest(
        "--models=sim-a", "test_three.py", "-k", "run1 or run2", "--llm-report=c.json"
    )
    pytester.runpytest(
        "--models=sim-a", "test_three.py", "-k", "run2 or run3", "--llm-report=d.json"
    )
    done = merge_cli(pytester.path, "c.json", "d.json")
    assert done.returncode == 2
    assert done.stderr == (
        "error: test_three.py::test_again[sim-a] on sim-a: run 2 is in both c.json and d.json: "
        "each run of a repeated test runs in one job (a report given twice, or a job run "
        "again?)\n"
    )


def test_a_run_given_twice_is_refused_though_judged_once():
    """The same runs in two reports, one of them without the verdict (a job's report
    written before its last run, say): refused, not merged into runs 1, 1, 2, 2."""
    from pytest_llm_matrix.report.merge import MergeError, merge

    runs = [{"index": 1, "outcome": "passed"}, {"index": 2, "outcome": "passed"}]
    verdict = {"passed": 2, "runs": 2, "needed": 2, "planned": 2, "decided_by": 2}
    judged = _entry("sim-a", False, repeat=2, runs=runs, verdict=verdict)
    one = _report("sim-a", [judged], 2, 2)
    one["models"]["sim-a"]["outcomes"] |= {"passed": 1, "skipped": 1}
    unjudged = _report("sim-a", [_entry("sim-a", False, repeat=2, runs=runs[1:])], 1, 1)
    unjudged["models"]["sim-a"]["outcomes"] |= {"passed": 0, "skipped": 1}
    first = _report("sim-a", [_entry("sim-a", False, repeat=2, runs=runs[:1])], 1, 1)
    first["models"]["sim-a"]["outcomes"] |= {"passed": 0, "skipped": 1}
    with pytest.raises(MergeError) as error:
        merge([("a.json", first), ("b.json", one), ("c.json", unjudged)])
    assert str(error.value).startswith(
        "t.py::test_x[sim-a] on sim-a: run 1 is in both a.json and b.json: "
    )
    with pytest.raises(MergeError, match=r": run 2 is in both b\.json and c\.json: "):
        merge([("b.json", one), ("c.json", unjudged)])
    # one report may hold a run twice (its result and a later teardown error of it)
    again = [*runs, {"index": 2, "outcome": "error"}]
    teardown = _report("sim-a", [_entry("sim-a", False, repeat=2, runs=again)], 0, 1)
    teardown["models"]["sim-a"]["outcomes"] |= {"passed": 0, "skipped": 3}
    teardown["models"]["sim-a"] |= {"runs_passed": 2, "runs_judged": 3}
    assert [r["index"] for r in merge([("a.json", teardown)])["tests"][0]["runs"]] == [1, 2, 2]
    # a test in a report's tests twice
    twice = _report("sim-a", [_entry("sim-a", False)] * 2, 2, 2)
    with pytest.raises(MergeError, match=r"^a\.json: t\.py::test_x\[sim-a\] on sim-a is in its "):
        merge([("a.json", twice)])


def test_merge_exits_with_the_merged_reports_exit_status(project):
    """0 when every part passed; else the merged report's exit status (a part's failures
    fail the merge's step too); 2 when the reports cannot be merged."""
    pytester = project
    pytester.runpytest("--models=sim-b", "test_one.py", "--llm-report=one.json")
    pytester.runpytest("--models=sim-b", "test_two.py", "--llm-report=two.json")
    passed = merge_cli(pytester.path, "one.json", "two.json", "--llm-report", "m.json")
    assert passed.returncode == 0, passed.stderr
    assert json.loads((pytester.path / "m.json").read_text())["exit_status"] == 0
    pytester.runpytest("--models=sim-a", "test_one.py", "--llm-report=failed.json")
    failed = merge_cli(pytester.path, "failed.json", "two.json", "--llm-report", "m.json")
    assert failed.returncode == 1, failed.stderr
    assert json.loads((pytester.path / "m.json").read_text())["exit_status"] == 1


def test_reports_that_cannot_be_read_are_named(project):
    (project.path / "bad.json").write_text('{"version": 7}')
    done = merge_cli(project.path, "bad.json", "missing.json")
    assert done.returncode == 2
    assert "error: bad.json is a report of version 7; this plugin reads version 1" in done.stderr
    missing = merge_cli(project.path, "missing.json")
    assert missing.returncode == 2
    assert missing.stderr == "error: the report missing.json does not exist\n"
    usage = merge_cli(project.path)
    assert usage.returncode == 2
    assert "REPORT.json" in usage.stderr


@pytest.mark.timeout(60)
def test_reports_are_read_by_the_hardened_reader(project):
    """Whatever is at a report's path, merge ends promptly with exit 2 naming it: the
    plugin's one JSON reader (regular files only, a size and a depth cap, strict UTF-8)."""
    pytester = project
    pytester.runpytest("--models=sim-b", "test_one.py", "--llm-report=good.json")
    good = json.loads((pytester.path / "good.json").read_text())
    good["tests"][0]["deep"] = json.loads("[" * 300 + "]" * 300)  # json's own limit is ~1000
    (pytester.path / "deep.json").write_text(json.dumps(good))
    os.mkfifo(pytester.path / "fifo.json")
    (pytester.path / "zero.json").symlink_to("/dev/zero")
    (pytester.path / "latin1.json").write_bytes(b'{"version": 1, "x": "caf\xe9"}')
    for name, said in [
        ("deep.json", "error: the report deep.json is nested more than 200 levels deep"),
        ("fifo.json", "error: the report fifo.json is not a regular file (a FIFO)"),
        ("zero.json", "error: the report zero.json is not a regular file (a device)"),
        ("latin1.json", "error: the report latin1.json is not UTF-8 text (byte "),
        (".", "error: the report . is a folder, not a file"),
    ]:
        done = merge_cli(pytester.path, "good.json", name)
        assert done.returncode == 2, (name, done.stderr)
        assert done.stderr.startswith(said), (name, done.stderr)
        assert "Traceback" not in done.stderr


def test_the_same_report_twice_is_refused(project):
    """Given twice (the same path, or a copy), a report's counts would be added twice."""
    pytester = project
    pytester.runpytest("--models=sim-b", "test_one.py", "--llm-report=one.json")
    shutil.copy(pytester.path / "one.json", pytester.path / "copy.json")
    twice = merge_cli(pytester.path, "one.json", "one.json")
    assert twice.returncode == 2
    assert twice.stderr == "error: one.json is given twice: each report is merged once\n"
    copy = merge_cli(pytester.path, "one.json", "./copy.json")
    assert copy.returncode == 2
    assert copy.stderr == (
        "error: one.json and ./copy.json hold the same report: each report is merged once\n"
    )
    # a report without tests: no test of it is in both, so nothing else would notice
    report = json.loads((pytester.path / "one.json").read_text())
    report["tests"] = []
    (pytester.path / "empty.json").write_text(json.dumps(report))
    (pytester.path / "same.json").write_text(json.dumps(report, indent=2))
    empty = merge_cli(pytester.path, "empty.json", "same.json")
    assert empty.returncode == 2
    assert "error: empty.json and same.json hold the same report" in empty.stderr


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
    from pytest_llm_matrix.report.merge import MergeError, merge

    for runs, said in [
        ("abc", "tests[0].runs is 'abc', expected a list"),
        ([{}], "tests[0].runs[0].index is missing, expected a whole number from 1"),
        ([{"index": 1, "outcome": 5}], "tests[0].runs[0].outcome is 5, expected one of"),
        (None, "tests[0].runs is None, expected a list"),
    ]:
        one = _report("sim-a", [_entry("sim-a", True, repeat=3, runs=runs)], 0, 0)
        two = _report("sim-b", [_entry("sim-b", False)], 1, 1)
        with pytest.raises(MergeError) as error:
            merge([("a.json", one), ("b.json", two)])
        assert str(error.value).startswith(f"a.json: {said}"), runs


def _full(model: str) -> dict:
    """A report with every field a merge reads: a plain and a repeated test, an auxiliary
    row, the run's settings and environment."""
    # test_x passed; test_r's run 1 passed (counted skipped), run 2 failed and carries the
    # verdict, a pass: 2 passes, 1 skip, 2 of 3 runs passed, 3 requests
    report = _report(model, [_entry(model, False)], 2, 3)
    report["models"][model]["outcomes"]["skipped"] = 1
    report["models"][model] |= {
        "provider": "simulator", "model": model, "required": True, "requests": 3,
        "cost_usd": 0.5, "latency_p50": 0.1, "pass_rate_interval": [0.3, 0.95],
        "unavailable": None,
    }  # fmt: skip
    report["tests"].append(
        _entry(
            model, False, "test_r", repeat=3, min_pass_rate=0.5, message="assert 'no' == 'ok'",
            runs=[{"index": 1, "outcome": "passed"}, {"index": 2, "outcome": "failed"}],
            verdict={"passed": 2, "runs": 3, "needed": 2, "planned": 3, "decided_by": 3},
            spend={"requests": 3, "latencies": [0.1, 0.2], "ttft": []},
        )
    )  # fmt: skip
    return report | {
        "version": 1, "plugin_version": "0.1.0", "created": f"2026-01-01T00:00:00 {model}",
        "exit_status": 0, "min_pass_rate": None, "max_cost_usd": 5, "spent_usd": 0.5,
        "environment": {"python": "3.11.7"},
        "auxiliary": {"judge": {"kind": "routed", "model": "m", "sent_as": "m", "requests": 2,
                                "input_tokens": 5, "latency_p50": None, "cost_usd": 0.01}},
    }  # fmt: skip


#: (the field's path in b.json, its value there, what the message says of it)
WRONG_FIELDS = [
    (["selection"], [], "selection is [], expected an object"),
    (["selection", "models"], "sim-b", "selection.models is 'sim-b', expected a list of strings"),
    (["selection", "models"], [{}], "selection.models is [{}], expected a list of strings"),
    (["exit_status"], "bad", "exit_status is 'bad', expected a whole number from 0 to 255"),
    (["exit_status"], True, "exit_status is True, expected a whole number from 0 to 255"),
    (["exit_status"], -1, "exit_status is -1, expected a whole number from 0 to 255"),
    (["failures"], [], "failures is [], expected an object"),
    (["failures"], {"stopped": False}, "failures.plain is missing, expected a whole number"),
    (["failures"], {"plain": 0}, "failures.stopped is missing, expected true or false"),
    (["environment"], "x", "environment is 'x', expected an object of strings"),
    (["environment"], {"python": 3}, "environment is {'python': 3}, expected an object of strings"),
    (["plugin_version"], 1, "plugin_version is 1, expected a string"),
    (["spent_usd"], [1], "spent_usd is [1], expected a number from 0 to 1e12, or null"),
    (["spent_usd"], True, "spent_usd is True, expected a number from 0 to 1e12, or null"),
    (["max_cost_usd"], -1, "max_cost_usd is -1, expected a number from 0 to 1e12, or null"),
    (["min_pass_rate"], 2, "min_pass_rate is 2, expected a number from 0 to 1, or null"),
    (["models"], [], "models is [], expected an object"),
    (["models", "sim-b"], 5, "models['sim-b'] is 5, expected an object"),
    (["models", "sim-b", "runs_passed"], "3",
     "models['sim-b'].runs_passed is '3', expected a whole number from 0 to 1e12"),
    (["models", "sim-b", "runs_judged"], 1,
     "models['sim-b'].runs_passed is 2, more than runs_judged (1)"),
    (["models", "sim-b", "outcomes"], [], "models['sim-b'].outcomes is [], expected an object"),
    (["models", "sim-b", "outcomes", "passed"], 1.5,
     "models['sim-b'].outcomes.passed is 1.5, expected a whole number from 0 to 1e12"),
    (["models", "sim-b", "requests"], True,
     "models['sim-b'].requests is True, expected a whole number from 0 to 1e12"),
    (["models", "sim-b", "cost_usd"], "0.5",
     "models['sim-b'].cost_usd is '0.5', expected a number from 0 to 1e12, or null"),
    (["models", "sim-b", "latency_p50"], math.inf,
     "models['sim-b'].latency_p50 is inf, expected a number from 0 to 1e12, or null"),
    (["models", "sim-b", "required"], "yes",
     "models['sim-b'].required is 'yes', expected true or false"),
    (["models", "sim-b", "provider"], 5, "models['sim-b'].provider is 5, expected a string"),
    (["models", "sim-b", "unavailable"], 5,
     "models['sim-b'].unavailable is 5, expected a string or null"),
    (["models", "sim-b", "pass_rate_interval"], "x",
     "models['sim-b'].pass_rate_interval is 'x', expected null or two numbers from 0 to 1"),
    (["models", "sim-b", "pass_rate_interval"], [0.5],
     "models['sim-b'].pass_rate_interval is [0.5], expected null or two numbers from 0 to 1"),
    (["tests"], "abc", "tests is 'abc', expected a list"),
    (["tests", 1], 5, "tests[1] is 5, expected an object"),
    (["tests", 0, "nodeid"], None, "tests[0].nodeid is None, expected a string"),
    (["tests", 0, "outcome"], "weird",
     "tests[0].outcome is 'weird', expected one of passed, failed, error, skipped, xfailed, "
     "xpassed"),
    (["tests", 0, "duration"], "slow", "tests[0].duration is 'slow', expected a number from 0"),
    (["tests", 0, "duration"], -1.0, "tests[0].duration is -1.0, expected a number from 0"),
    (["tests", 0, "duration"], False, "tests[0].duration is False, expected a number from 0"),
    (["tests", 0, "duration"], math.nan, "tests[0].duration is nan, expected a number from 0"),
    (["tests", 0, "cost_usd"], {}, "tests[0].cost_usd is {}, expected a number from 0"),
    (["tests", 0, "message"], 5, "tests[0].message is 5, expected a string"),
    (["tests", 0, "model_free"], "yes", "tests[0].model_free is 'yes', expected true"),
    (["tests", 0, "spend"], [1], "tests[0].spend is [1], expected an object"),
    (["tests", 0, "spend", "requests"], -1,
     "tests[0].spend.requests is -1, expected a whole number from 0 to 1e12"),
    (["tests", 0, "spend", "latencies"], "x",
     "tests[0].spend.latencies is 'x', expected a list of numbers from 0 to 1e12"),
    (["tests", 0, "spend", "ttft"], [True],
     "tests[0].spend.ttft is [True], expected a list of numbers from 0 to 1e12"),
    (["tests", 0, "spend", "new_counter"], "7",
     "tests[0].spend.new_counter is '7', expected a whole number from 0 to 1e12 or a list of "
     "numbers"),
    (["tests", 1, "runs"], "abc", "tests[1].runs is 'abc', expected a list"),
    (["tests", 1, "runs", 0], 5, "tests[1].runs[0] is 5, expected an object"),
    (["tests", 1, "runs", 0, "index"], "1",
     "tests[1].runs[0].index is '1', expected a whole number from 1 to 1e12"),
    (["tests", 1, "runs", 1, "outcome"], 5,
     "tests[1].runs[1].outcome is 5, expected one of passed, failed, error, skipped, xfailed, "
     "xpassed, not needed"),
    (["tests", 1, "verdict"], "x", "tests[1].verdict is 'x', expected an object"),
    (["tests", 1, "verdict", "passed"], "2",
     "tests[1].verdict.passed is '2', expected a whole number from 0 to 1e12"),
    (["tests", 1, "repeat"], 0, "tests[1].repeat is 0, expected a whole number from 1 to 1e12"),
    (["tests", 1, "repeat"], 1, "tests[1].runs[1].index is 2, more than the test's repeat (1)"),
    (["tests", 1, "runs", 0, "index"], 4,
     "tests[1].runs[0].index is 4, more than the test's repeat (3)"),
    (["tests", 1, "min_pass_rate"], 2,
     "tests[1].min_pass_rate is 2, expected a number from 0 to 1"),
    (["auxiliary"], [], "auxiliary is [], expected an object"),
    (["auxiliary", "judge"], 5, "auxiliary['judge'] is 5, expected an object"),
    (["auxiliary", "judge", "requests"], "x",
     "auxiliary['judge'].requests is 'x', expected a whole number from 0 to 1e12"),
    (["auxiliary", "judge", "kind"], 5, "auxiliary['judge'].kind is 5, expected a string"),
    (["auxiliary", "judge", "cost_usd"], -1,
     "auxiliary['judge'].cost_usd is -1, expected a number from 0 to 1e12, or null"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("path", "value", "said"),
    WRONG_FIELDS,
    ids=[f"{'.'.join(map(str, path))}={value!r}" for path, value, _ in WRONG_FIELDS],
)
def test_a_field_of_the_wrong_type_is_named(path, value, said):
    """Every field a merge reads is checked by type before it is used: a report that is
    wrong is refused naming the file and the field, never merged into a traceback."""
    from pytest_llm_matrix.report.merge import MergeError, merge

    good = [("a.json", _full("sim-a")), ("b.json", _full("sim-b"))]
    merge(good)  # the reports as written are merged
    *holders, last = path
    report = _full("sim-b")
    holder = report
    for step in holders:
        holder = holder[step]
    holder[last] = value
    with pytest.raises(MergeError) as error:
        merge([good[0], ("b.json", report)])
    assert str(error.value).startswith(f"b.json: {said}")


def test_a_report_twice_is_refused_even_without_tests():
    """Nothing else would notice: no test of it is in both, its counts would be added."""
    from pytest_llm_matrix.report.merge import MergeError, merge

    one = _report("sim-a", [], 3, 4)
    with pytest.raises(MergeError, match=r"^a\.json and b\.json hold the same report"):
        merge([("a.json", one), ("b.json", json.loads(json.dumps(one)))])
    with pytest.raises(MergeError, match=r"^a\.json is given twice"):
        merge([("a.json", one), ("a.json", one)])


def test_a_counter_that_is_a_count_in_one_report_and_a_list_in_another_is_refused():
    """The runs of a repeated test split between two jobs: their spends are added up, each
    counter as what it is; a report is not changed by merging it."""
    from pytest_llm_matrix.report.merge import MergeError, merge

    first = {"repeat": 2, "runs": [{"index": 1, "outcome": "passed"}]}
    second = {"repeat": 2, "runs": [{"index": 2, "outcome": "passed"}]}
    one = _report("sim-a", [_entry("sim-a", False, **first, spend={"new": 1})], 1, 1)
    two = _report("sim-a", [_entry("sim-a", False, **second, spend={"new": [1]})], 1, 1)
    three = _report("sim-a", [_entry("sim-a", False, **second, spend={"new": 2})], 1, 1)
    for report in (one, two, three):  # no verdict yet: the passed runs count as skipped
        report["models"]["sim-a"]["outcomes"] |= {"passed": 0, "skipped": 1}
    merged = merge([("a.json", one), ("c.json", three)])
    assert merged["tests"][0]["spend"] == {"new": 3}
    assert one["tests"][0]["spend"] == {"new": 1}
    with pytest.raises(MergeError) as error:
        merge([("a.json", one), ("b.json", two)])
    assert str(error.value) == (
        "t.py::test_x[sim-a] on sim-a: spend.new is a count in one of a.json and b.json, a "
        "list in the other"
    )


def test_text_from_the_reports_is_shown_and_written_plainly(project, monkeypatch):
    """Test ids are the files': an escape sequence is shown, not run; a lone surrogate (a
    JSON escape no UTF-8 can hold) is written escaped, not a traceback."""
    pytester = project
    pytester.runpytest("--models=sim-a", "test_one.py", "--llm-report=one.json")
    report = json.loads((pytester.path / "one.json").read_text())
    failed = next(t for t in report["tests"] if t["outcome"] == "failed")
    failed["test"] = "t\x1b[31mred\ud800"
    failed["nodeid"] = "t\x1b[31mred\ud800[sim-a]"
    (pytester.path / "odd.json").write_text(json.dumps(report))
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(pytester.path / "summary.md"))
    done = merge_cli(pytester.path, "odd.json", "--html", "odd.html")
    assert done.returncode == 1, done.stderr
    assert "  t\\x1b[31mred\\ud800: sim-a" in done.stdout
    assert "\x1b" not in done.stdout
    assert "red\\ud800" in (pytester.path / "odd.html").read_text()
    assert "red\\ud800" in (pytester.path / "summary.md").read_text()
    # a step summary that cannot be written: an error, exit 2
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(pytester.path))
    unwritten = merge_cli(pytester.path, "odd.json")
    assert unwritten.returncode == 2
    assert unwritten.stderr == f"error: could not write {pytester.path}: not a regular file\n"


#: Tests of every kind a run counts: a skip, an xfail and an xpass, errors at setup and at
#: teardown (a pass and an error for one test), repeated tests stopped early, judged by a
#: failing run, erroring at teardown, skipped; subtests on pytest 9.
KINDS = """
import pytest

def test_skip(llm):
    pytest.skip("not today")

@pytest.mark.xfail(reason="known")
def test_xfail(llm):
    assert llm.complete("q3") == "ok"

@pytest.mark.xfail(reason="lucky")
def test_xpass(llm):
    assert llm.complete("q1") == "ok"

@pytest.fixture
def broken_teardown():
    yield
    raise RuntimeError("teardown broke")

@pytest.fixture
def broken_setup():
    raise RuntimeError("setup broke")

def test_teardown_error(llm, broken_teardown):
    assert llm.complete("q1") == "ok"

def test_setup_error(llm, broken_setup):
    pass

def test_no_model():
    pass

@pytest.mark.llm(repeat=4, min_pass_rate=0.5)
def test_stop_early(llm):
    assert llm.complete("early") == "ok"

@pytest.mark.llm(repeat=3, min_pass_rate=0.3)
def test_repeated_teardown(llm, broken_teardown):
    assert llm.complete("x q3") == "ok"

@pytest.mark.llm(repeat=2)
def test_repeated_skip(llm):
    pytest.skip("skip every run")
"""

SUBTESTS = """
def test_subtests(llm, subtests):
    for i in range(3):
        with subtests.test(i=i):
            assert llm.complete(f"q{i + 2}") == "ok"
"""


def test_reports_of_every_kind_merge_as_written(project):
    """Each model's figures are checked against its tests before a merge: the reports real
    runs write pass, whatever their tests did, split by model or file, with xdist, stopped
    by the budget, and a merged report merges again."""
    pytester = project
    kinds = KINDS + (SUBTESTS if int(pytest.__version__.split(".")[0]) >= 9 else "")
    pytester.makepyfile(test_kinds=kinds)
    for args in (
        ["--models=all"],
        ["--models=sim-a"],
        ["--models=sim-b"],
        ["--models=all", "test_one.py", "test_two.py"],
        ["--models=all", "test_three.py", "test_kinds.py"],
        ["--models=all", "--llm-max-cost=0.00003"],
    ):
        name = "-".join(a.strip("-").split("=")[-1].split(".")[0] for a in args)
        pytester.runpytest("-p", "no:randomly", *args, f"--llm-report={name}.json")
    pytester.runpytest_subprocess(
        "-p", "no:randomly", "--models=all", "-n", "2", "--llm-report=n2.json"
    )
    budget = json.loads((pytester.path / "all-0.json").read_text())
    assert budget["spent_usd"] >= 0.00003  # the budget stopped it
    assert budget["models"]["sim-b"]["outcomes"]["skipped"] > 10
    for reports in (
        ["all.json"], ["sim-a.json", "sim-b.json"], ["all-test_one-test_two.json",
        "all-test_three-test_kinds.json"], ["n2.json"], ["all-0.json"],
    ):  # fmt: skip
        done = merge_cli(pytester.path, *reports, "--llm-report", "merged.json")
        assert (done.returncode, done.stderr) == (1, ""), reports
        merged = json.loads((pytester.path / "merged.json").read_text())
        again = merge_cli(pytester.path, "merged.json")
        assert (again.returncode, again.stderr) == (1, ""), reports
    full = json.loads((pytester.path / "all.json").read_text())
    by_model = merge_cli(pytester.path, "sim-a.json", "sim-b.json", "--llm-report", "m.json")
    merged = json.loads((pytester.path / "m.json").read_text())
    assert by_model.returncode == 1
    for name in ("sim-a", "sim-b"):
        for figure in FIGURES:
            assert merged["models"][name][figure] == full["models"][name][figure], (name, figure)


#: (a field of sim-a's figures, a value its tests cannot have made, what is said)
BAD_FIGURES = [
    ("outcomes.passed", 1000, "outcomes.passed is 1000, but its tests hold at most 4: the "
     "passes of plain tests (3, as runs_passed says) and one per repeated test's verdict"),
    ("outcomes.passed", 3, "outcomes.passed is 3, but its tests hold at least 4: "),
    ("runs_passed", 8, "runs_passed is 8, but its tests hold at most 7: a plain test's passed "
     "run and a repeated test's passed runs"),
    ("runs_passed", 2, "runs_passed is 2, but its tests hold at least 3: "),
    ("runs_judged", 6, "runs_judged is 6, but its tests hold at least 7: the passed runs (6, "
     "as runs_passed says) and 1 failed or errored"),
    ("outcomes.failed", 0, "outcomes.failed is 0, but 1 of its tests ended failed"),
    ("requests", 8, "requests is 8, but its tests' spend.requests adds up to 7"),
    ("input_tokens", 0, "input_tokens is 0, but its tests' spend.input_tokens adds up to "),
]  # fmt: skip


def test_figures_its_tests_cannot_have_made_are_refused(project):
    """A model's figures are added up across reports as they are: each is checked against
    the report's own tests first (an edited count, a report with its tests cut)."""
    from pytest_llm_matrix.report.merge import MergeError, merge

    pytester = project
    pytester.runpytest("--models=sim-a", "test_one.py", "test_three.py", "--llm-report=a.json")
    written = json.loads((pytester.path / "a.json").read_text())
    model = written["models"]["sim-a"]
    # test_one: q0-q2 passed, q3 failed; test_three: 3 runs passed, its verdict a pass
    assert model["outcomes"] | {"skipped": 2} == model["outcomes"]
    assert (model["outcomes"]["passed"], model["runs_passed"], model["runs_judged"]) == (4, 6, 7)
    merge([("a.json", written)])
    for field, value, said in BAD_FIGURES:
        report = json.loads(json.dumps(written))
        *holders, last = field.split(".")
        holder = report["models"]["sim-a"]
        for step in holders:
            holder = holder[step]
        holder[last] = value
        if field == "runs_passed":
            report["models"]["sim-a"]["runs_judged"] = max(value, 7)
        with pytest.raises(MergeError) as error:
            merge([("a.json", report)])
        assert str(error.value).startswith(f"a.json: models['sim-a'].{said}"), field
    # the hostile cases, by the command: a count edited, a copy with its tests cut
    inflated = json.loads(json.dumps(written))
    inflated["models"]["sim-a"]["outcomes"]["passed"] = 1000
    (pytester.path / "inflated.json").write_text(json.dumps(inflated))
    done = merge_cli(pytester.path, "inflated.json")
    assert done.returncode == 2
    assert done.stderr.startswith(
        "error: inflated.json: models['sim-a'].outcomes.passed is 1000, but its tests hold at "
        "most 4: "
    )
    cut = dict(written, tests=[], created="another time")
    (pytester.path / "cut.json").write_text(json.dumps(cut))
    done = merge_cli(pytester.path, "a.json", "cut.json")
    assert (done.returncode, done.stderr) == (
        2,
        "error: cut.json: models['sim-a'].requests is 7, but its tests' spend.requests adds "
        "up to 0\n",
    )


def test_a_key_twice_in_a_report_is_refused(project):
    """JSON allows a key twice in an object, and Python keeps the last: a model twice in
    ``models`` would be merged as one of them."""
    pytester = project
    pytester.runpytest("--models=sim-b", "test_one.py", "--llm-report=one.json")
    text = (pytester.path / "one.json").read_text()
    twice = text.replace('"models": {', '"models": {"sim-b": {"runs_passed": 0}, ', 1)
    (pytester.path / "twice.json").write_text(twice)
    done = merge_cli(pytester.path, "twice.json")
    assert done.returncode == 2
    assert done.stderr.startswith(
        "error: the report twice.json has the key 'sim-b' twice in one object; "
    )
    assert "Traceback" not in done.stderr


def test_runs_without_their_repeat_are_refused():
    from pytest_llm_matrix.report.merge import MergeError, merge

    runs = [{"index": 1, "outcome": "passed"}]
    report = _report("sim-a", [_entry("sim-a", False, runs=runs)], 1, 1)
    with pytest.raises(MergeError, match=r"^a\.json: tests\[0\]\.repeat is missing, expected a"):
        merge([("a.json", report)])


@pytest.mark.skipif(sys.platform == "win32", reason="a pipe closed early is a POSIX matter")
def test_a_reader_that_stops_early_gets_no_traceback(project):
    """``merge ... | head -1``: the reader closes the pipe; the merge still writes its files
    and exits with the run's status (1 here: a test failed), with nothing on stderr."""
    pytester = project
    pytester.runpytest("--models=sim-a", "test_one.py", "--llm-report=one.json")
    read, write = os.pipe()
    os.close(read)  # a reader that has gone before the first line
    try:
        done = subprocess.run(
            [sys.executable, "-m", "pytest_llm_matrix", "merge", "one.json",
             "--llm-report", "merged.json"],
            cwd=pytester.path, stdout=write, stderr=subprocess.PIPE, text=True, check=False,
        )  # fmt: skip
    finally:
        os.close(write)
    assert (done.returncode, done.stderr) == (1, "")
    assert json.loads((pytester.path / "merged.json").read_text())["exit_status"] == 1


@pytest.mark.timeout(60)
def test_an_output_that_is_a_fifo_is_refused_not_waited_on(project):
    """merge writes its outputs as the session does: a FIFO would block it forever."""
    pytester = project
    pytester.runpytest("--models=sim-a", "test_one.py", "--llm-report=one.json")
    os.mkfifo(pytester.path / "out.html")
    done = merge_cli(pytester.path, "one.json", "--html", "out.html")
    assert done.returncode == 2
    assert done.stderr == "error: could not write out.html: not a regular file\n"


# --- gates on the merged run ----------------------------------------------------------

#: How the suite is split into two jobs: each job's arguments, and whether the jobs are
#: given the gate options too (as an ini file gives them to every run), not only the merge.
SPLITS = {
    "by-model": ([["--models=sim-a"], ["--models=sim-b"]], False),
    "by-file": (
        [["--models=all", "test_one.py"], ["--models=all", "test_two.py", "test_three.py"]],
        True,
    ),
}

#: The lines a run's gates and its baseline add to the summary.
GATE_LINE = re.compile(
    r"--llm-(min-pass-rate|fail-on-regression) |against the baseline: |sim-[ab]: .* -> "
    r"|  (now failing|now passing|added|removed)|    test_|only in "
)


def gate_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if GATE_LINE.match(line)]


def whole_and_merged(pytester, split: str, options: list[str]):
    """The suite run whole, and run as two jobs whose reports are merged, both with the
    gate ``options``: (the whole run, the merge, the whole run's report, the merged one)."""
    jobs, gated = SPLITS[split]
    whole = pytester.runpytest("--models=all", *options, "--llm-report=whole.json")
    for index, args in enumerate(jobs):
        pytester.runpytest(*args, *(options if gated else []), f"--llm-report=job{index}.json")
    merged = merge_cli(
        pytester.path, "job0.json", "job1.json", *options, "--llm-report", "merged.json"
    )
    reports = [json.loads((pytester.path / f"{n}.json").read_text()) for n in ("whole", "merged")]
    for report in reports:
        jsonschema.validate(report, schema())
    return whole, merged, *reports


def assert_judged_alike(whole, merged, whole_report, merged_report, status: int) -> None:
    """The merge exits as the run that was not split, says the same of its gates and
    baseline, and its report carries the same gate and comparison."""
    assert merged.stderr == ""
    assert whole.ret == whole_report["exit_status"] == status
    assert merged.returncode == merged_report["exit_status"] == status, merged.stdout
    said = gate_lines(whole.stdout.str())
    assert said, whole.stdout.str()
    assert gate_lines(merged.stdout) == said
    assert merged_report["min_pass_rate"] == whole_report["min_pass_rate"]
    if whole_report["baseline"] is None:
        assert merged_report["baseline"] is None
        return
    estimated = ("cost_change_usd", "latency_p50_change")  # merged: sums, weighted p50s
    for report in (whole_report, merged_report):
        for change in report["baseline"]["models"].values():
            for key in estimated:
                del change[key]
    assert merged_report["baseline"] == whole_report["baseline"]


#: (the gate options, the exit status of the run not split with them, a line it says)
GATES = [
    # sim-a passes 9 of its 10 runs (test_one.py's q3 fails), sim-b all
    (["--llm-min-pass-rate=0.8"], 0, "--llm-min-pass-rate 80%: every required model meets it"),
    (["--llm-min-pass-rate=95%"], 1, "--llm-min-pass-rate 95%: below it: sim-a 90.0%"),
    (["--llm-baseline=base.json"], 1, "against the baseline: base.json, *"),  # no gate
    (
        ["--llm-min-pass-rate=0.8", "--llm-baseline=base.json", "--llm-fail-on-regression"],
        0,
        "--llm-fail-on-regression: no required model is significantly worse",
    ),
]


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize(
    ("options", "status", "line"), GATES, ids=[" ".join(options) for options, _, _ in GATES]
)
def test_the_merged_run_is_judged_as_the_run_that_was_not_split(
    project, split, options, status, line
):
    """A job's pass rates are a part of the run's: by file, test_one.py's job passes 3 of 4
    on sim-a and fails its own 80% gate, the run passes 9 of 10 and meets it."""
    pytester = project
    pytester.runpytest("--models=all", "--llm-report=base.json")  # the same run, before
    whole, merged, whole_report, merged_report = whole_and_merged(pytester, split, options)
    assert_judged_alike(whole, merged, whole_report, merged_report, status)
    whole.stdout.fnmatch_lines([line])
    assert any(fnmatch.fnmatch(said, line) for said in merged.stdout.splitlines())
    if split == "by-file" and options == ["--llm-min-pass-rate=0.8"]:
        job = json.loads((pytester.path / "job0.json").read_text())
        assert job["exit_status"] == 1  # its own gate: sim-a 75.0%
    # merged again, with the same gates: the same verdict
    again = merge_cli(pytester.path, "merged.json", *options)
    assert (again.returncode, again.stderr) == (status, "")


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize("fail_on_regression", [False, True])
def test_a_regression_fails_the_merged_run_as_the_run_that_was_not_split(
    project, split, fail_on_regression, monkeypatch
):
    pytester = project
    pytester.runpytest("--models=all", "--llm-report=base.json")  # sim-a 9 of 10 runs
    pytester.makefile(".toml", pyproject=PROJECT.replace('"q3$"', r"'q\d$'"))  # now 3 of 10
    options = ["--llm-min-pass-rate=0.2", "--llm-baseline=base.json"]
    options += ["--llm-fail-on-regression"] if fail_on_regression else []
    whole, merged, whole_report, merged_report = whole_and_merged(pytester, split, options)
    # the gate is met (30% of sim-a's runs pass): only the regression fails the run
    assert_judged_alike(whole, merged, whole_report, merged_report, int(fail_on_regression))
    assert merged_report["baseline"]["regressions"] == ["sim-a"]
    expected = ["sim-a: 90.0% -> 30.0%, -60.0pp (*..*) worse"]
    if fail_on_regression:
        expected.append(
            "--llm-fail-on-regression: sim-a's pass rate fell from 90.0% to 30.0%: -60.0pp "
            "(*..*) worse (95% interval of the change below 0)"
        )
    whole.stdout.fnmatch_lines(expected)
    for pattern in expected:
        assert any(fnmatch.fnmatch(said, pattern) for said in merged.stdout.splitlines())
    assert "-60.0pp" in merged.stdout.splitlines()[2]  # sim-a's row: its vs baseline column
    # the HTML report and the step summary show the comparison too
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(pytester.path / "summary.md"))
    merge_cli(pytester.path, "job0.json", "job1.json", *options, "--html", "merged.html")
    assert "<h2>Against the baseline</h2>" in (pytester.path / "merged.html").read_text()
    assert "\nsim-a: 90.0% -> 30.0%, -60.0pp" in (pytester.path / "summary.md").read_text()


#: What no gate forgives, in a job and in the run not split alike: a test without a model
#: that fails, -x stopping at sim-a's failure, the budget reached (the rest skipped).
UNFORGIVEN = {
    "plain": ([], {"plain": 1, "stopped": False}),
    "-x": (["-x"], {"plain": 0, "stopped": True}),
    "budget": (["--llm-max-cost=0.00001"], {"plain": 0, "stopped": False}),
}


@pytest.mark.parametrize("cause", UNFORGIVEN)
def test_what_no_gate_forgives_fails_the_merged_run_as_the_run(project, cause):
    pytester = project
    options, failures = UNFORGIVEN[cause]
    if cause == "plain":
        pytester.makepyfile(test_plain="def test_plain():\n    assert False\n")
    gate = "--llm-min-pass-rate=0.5"  # met by every model, in each job and in the run
    whole = pytester.runpytest("--models=all", gate, *options, "--llm-report=whole.json")
    for model in ("sim-a", "sim-b"):
        pytester.runpytest(f"--models={model}", gate, *options, f"--llm-report={model}.json")
    merged = merge_cli(pytester.path, "sim-a.json", "sim-b.json", gate, "--llm-report", "m.json")
    assert (merged.returncode, merged.stderr) == (whole.ret, "") == (1, "")
    assert "--llm-min-pass-rate 50%: every required model meets it" in merged.stdout
    report = json.loads((pytester.path / "whole.json").read_text())
    assert report["failures"] == failures
    merged_report = json.loads((pytester.path / "m.json").read_text())
    if cause == "plain":  # each job ran the test without a model
        assert merged_report["failures"] == {"plain": 2, "stopped": False}
    elif cause == "budget":
        assert merged_report["failures"] == failures
        assert report["spent_usd"] >= report["max_cost_usd"]
        assert merged_report["models"]["sim-b"]["outcomes"]["skipped"] > 0
    else:
        assert merged_report["failures"] == failures
    # the jobs without it: their failures are forgiven by the gate, as the run's
    pytester.path.joinpath("test_plain.py").unlink(missing_ok=True)
    for model in ("sim-a", "sim-b"):
        pytester.runpytest(f"--models={model}", f"--llm-report={model}.json")
    passed = merge_cli(pytester.path, "sim-a.json", "sim-b.json", gate)
    assert (passed.returncode, passed.stderr) == (0, "")


def test_a_report_that_does_not_say_what_failed_keeps_its_verdict():
    """A failed job's report without ``failures`` (hand-written, or older): whether its
    failures were all model tests' is not known, so a gate does not forgive them."""
    from pytest_llm_matrix.report.gates import Gates
    from pytest_llm_matrix.report.merge import apply_gates, merge

    report = _report("sim-a", [_entry("sim-a", False, outcome="failed")], 0, 1)
    report["models"]["sim-a"]["outcomes"]["failed"] = 1
    report["exit_status"] = 1
    gate = Gates(min_pass_rate=0.0)  # met: 0 of 1 runs passed
    merged = merge([("a.json", report)])
    assert "failures" not in merged
    assert (apply_gates(merged, [("a.json", report)], gate), merged["exit_status"]) == ({}, 1)
    said = dict(report, failures={"plain": 0, "stopped": False})
    merged = merge([("a.json", said)])
    assert (apply_gates(merged, [("a.json", said)], gate), merged["exit_status"]) == ({}, 0)
    assert merged["min_pass_rate"] == 0.0
    merged = merge([("a.json", said)])
    assert apply_gates(merged, [("a.json", said)], Gates(min_pass_rate=0.5)) == {"sim-a": 0.0}
    assert merged["exit_status"] == 1


@pytest.mark.parametrize("rate", ["2", "abc", "150%", "-0.2", ""])
def test_a_bad_rate_is_refused_in_pytests_words(project, rate):
    pytester = project
    pytester.runpytest("--models=sim-b", "test_two.py", "--llm-report=one.json")
    usage = pytester.runpytest("--models=sim-b", f"--llm-min-pass-rate={rate}")
    assert usage.ret == pytest.ExitCode.USAGE_ERROR
    [said] = [line for line in usage.stderr.lines if line.startswith("ERROR: ")]
    done = merge_cli(
        pytester.path, "one.json", f"--llm-min-pass-rate={rate}", "--llm-report", "m.json"
    )
    assert (done.returncode, done.stderr) == (2, f"error: {said.removeprefix('ERROR: ')}\n")
    assert said.startswith("ERROR: --llm-min-pass-rate: expected a share from 0 to 1 (0.8) ")
    assert not (pytester.path / "m.json").exists()


#: (a baseline file's name and content, or None: no file)
BAD_BASELINE_FILES = {
    "missing.json": None,
    "array.json": "[]",
    "v7.json": '{"version": 7, "plugin_version": "9.0"}',
    "odd.json": '{"version": 1, "models": {"m": {"runs_passed": 5, "runs_judged": 2}}, '
    '"tests": []}',
    "twice.json": '{"version": 1, "models": {}, "models": {}, "tests": []}',
    "reports": "a folder",
}


@pytest.mark.parametrize("name", BAD_BASELINE_FILES)
def test_a_bad_baseline_is_refused_as_pytest_refuses_it(project, name):
    """Read by the same reader, with the same checks and messages as a pytest run's
    --llm-baseline; named as given (pytest names the absolute path)."""
    pytester = project
    pytester.runpytest("--models=sim-b", "test_two.py", "--llm-report=one.json")
    content = BAD_BASELINE_FILES[name]
    if name == "reports":
        (pytester.path / name).mkdir()
    elif content is not None:
        (pytester.path / name).write_text(content)
    usage = pytester.runpytest("--models=sim-b", f"--llm-baseline={name}")
    assert usage.ret == pytest.ExitCode.USAGE_ERROR
    [said] = [line for line in usage.stderr.lines if line.startswith("ERROR: ")]
    said = said.removeprefix("ERROR: ").replace(f"{pytester.path}/", "")
    done = merge_cli(pytester.path, "one.json", f"--llm-baseline={name}", "--llm-report", "m.json")
    assert (done.returncode, done.stderr) == (2, f"error: {said}\n")
    assert said.startswith("--llm-baseline: ")
    assert name in said
    assert not (pytester.path / "m.json").exists()


#: (merge's options, what it says)
BAD_GATE_OPTIONS = [
    (["--llm-baseline="], "--llm-baseline: expected the path of a JSON report, got ''"),
    (["--llm-baseline=last"], "--llm-baseline: 'last' is the last run of a selection in "
     "pytest's cache, which merge does not read: give the path of a JSON report of "
     "--llm-report"),
    (["--llm-fail-on-regression"], "--llm-fail-on-regression compares with a baseline: give "
     "--llm-baseline=PATH (a JSON report of --llm-report)"),
    (["--llm-fail-on-regression", "--llm-min-pass-rate=0.5"], "--llm-fail-on-regression "
     "compares with a baseline: "),
    (["--llm-baseline=one.json", "--html=./one.json"], "--html and --llm-baseline name the "
     "same file (./one.json): the HTML report would overwrite the JSON one; give it another "
     "name"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("options", "said"), BAD_GATE_OPTIONS, ids=[" ".join(o) for o, _ in BAD_GATE_OPTIONS]
)
def test_gate_options_merge_cannot_use_are_named(project, options, said):
    pytester = project
    pytester.runpytest("--models=sim-b", "test_two.py", "--llm-report=one.json")
    before = (pytester.path / "one.json").read_text()
    done = merge_cli(pytester.path, "one.json", *options, "--llm-report", "m.json")
    assert done.returncode == 2
    assert done.stderr.startswith(f"error: {said}"), done.stderr
    assert len(done.stderr.splitlines()) == 1
    assert (pytester.path / "one.json").read_text() == before
    assert not (pytester.path / "m.json").exists()


def test_jobs_run_with_xdist_are_judged_alike(project):
    """A job's ``failures`` as xdist's controller counts them: jobs run with ``-n 2``,
    merged with the gate, exit as the run not split, without and with a failed test
    without a model."""
    pytester = project
    gate = "--llm-min-pass-rate=0.8"
    for plain, status in ((False, 0), (True, 1)):
        if plain:
            pytester.makepyfile(test_plain="def test_plain():\n    assert False\n")
        whole = pytester.runpytest("--models=all", gate)
        for model in ("sim-a", "sim-b"):
            pytester.runpytest_subprocess(
                f"--models={model}", "-n", "2", gate, f"--llm-report={model}.json"
            )
        merged = merge_cli(pytester.path, "sim-a.json", "sim-b.json", gate)
        assert (merged.returncode, merged.stderr) == (whole.ret, "") == (status, ""), plain
        job = json.loads((pytester.path / "sim-b.json").read_text())
        assert job["failures"] == {"plain": int(plain), "stopped": False}
