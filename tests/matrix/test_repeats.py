"""Repeats: N runs per test and model, one verdict each, early stop, the Wilson interval."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET

import jsonschema
import pytest

from pytest_llm_matrix.matrix.repeats import (
    Tally,
    group_of,
    passes_needed,
    status_of,
)
from pytest_llm_matrix.report.stats import wilson_interval

from ..conftest import outcome_counts, schema


def assert_verdicts(result: pytest.RunResult, **expected: int) -> None:
    """The test-and-model results (pytest's passed, failed, errors, deselected), whatever
    the number of runs: the runs that did not settle an outcome are counted as skipped."""
    counts = outcome_counts(result)
    counts["errors"] = counts.get("errors", 0) + counts.pop("error", 0)  # "1 error"
    for word in ("passed", "failed", "errors", "deselected"):
        assert counts.get(word, 0) == expected.get(word, 0), (word, counts, expected)


# -- pure logic ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("passed", "runs", "low", "high"),
    [
        # Newcombe (1998), "Two-sided confidence intervals for the single proportion",
        # Table I, method 3 (Wilson score, no continuity correction).
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0, 0.1611),
        (1, 29, 0.0061, 0.1718),
        # and the textbook 5 of 10, symmetric around one half
        (5, 10, 0.2366, 0.7634),
        (10, 10, 0.7225, 1.0),
    ],
)
def test_wilson_interval_matches_known_values(passed, runs, low, high):
    got = wilson_interval(passed, runs)
    assert got == pytest.approx((low, high), abs=5e-5)


def test_wilson_interval_without_runs_is_everything():
    assert wilson_interval(0, 0) == (0.0, 1.0)


@pytest.mark.parametrize(
    ("runs", "rate", "need"),
    [(5, 0.0, 0), (5, 1.0, 5), (1, 0.5, 1), (1, 0.0, 0), (1, 1.0, 1), (10, 0.7, 7), (5, 0.8, 4)],
)
def test_passes_needed(runs, rate, need):
    assert passes_needed(runs, rate) == need
    assert need == 0 or (need / runs >= rate - 1e-12 and (need - 1) / runs < rate)


def play(planned: int, rate: float, outcomes: list[str]) -> tuple[Tally, int | None]:
    """Feed runs in order; return the tally and the run that settled it."""
    tally = Tally(planned, rate)
    settled_by = None
    for index, outcome in enumerate(outcomes, start=1):
        if tally.add(index, outcome, "boom" if outcome == "failed" else None):
            assert settled_by is None, "only one run may settle a test"
            settled_by = index
    return tally, settled_by


@pytest.mark.parametrize(
    ("planned", "rate", "outcomes", "verdict", "settled_by"),
    [
        # p = 1: the first failure settles it; all N must pass otherwise
        (3, 1.0, ["passed", "failed", "passed"], "failed", 2),
        (3, 1.0, ["passed", "passed", "passed"], "passed", 3),
        # p = 0: the first run that reaches a verdict settles it, even a failure
        (3, 0.0, ["failed", "failed", "failed"], "passed", 1),
        (3, 0.0, ["passed"], "passed", 1),
        # N = 1
        (1, 1.0, ["failed"], "failed", 1),
        (1, 1.0, ["passed"], "passed", 1),
        (1, 0.5, ["failed"], "failed", 1),
        (1, 0.0, ["failed"], "passed", 1),
        # in between: settled as soon as the other runs cannot change it
        (5, 0.6, ["passed", "passed", "passed", "failed", "failed"], "passed", 3),
        (5, 0.6, ["failed", "failed", "failed", "passed", "passed"], "failed", 3),
        (5, 0.6, ["passed", "failed", "passed", "failed", "passed"], "passed", 5),
        (4, 0.5, ["failed", "passed", "failed", "passed"], "passed", 4),
        # errors, skips and xfails settle at once
        (5, 0.6, ["passed", "error"], "error", 2),
        (5, 0.6, ["skipped"], "skipped", 1),
        (5, 0.6, ["xfailed"], "xfailed", 1),
    ],
)
def test_tally_settles_at_the_right_run(planned, rate, outcomes, verdict, settled_by):
    tally, by = play(planned, rate, outcomes)
    assert (tally.verdict, by) == (verdict, settled_by)


def test_runs_after_the_verdict_change_nothing():
    tally, _ = play(3, 1.0, ["failed", "passed", "passed"])
    assert (tally.verdict, tally.passed, tally.failed) == ("failed", 0, 1)


def test_explain_names_model_counts_and_failures():
    tally, _ = play(5, 0.8, ["passed", "failed", "failed"])
    text = tally.explain("sim-weak")
    assert text.splitlines() == [
        "sim-weak: 1 of 3 runs passed; needs 4 of 5 (min_pass_rate 80%): failed, "
        "so the other 2 runs were not needed",
        "run 2 failed: boom",
        "run 3 failed: boom",
    ]


def test_tally_survives_json():
    tally, _ = play(5, 0.6, ["passed", "failed"])
    assert Tally.from_json(tally.to_json()) == tally


@pytest.mark.parametrize(
    ("nodeid", "run_id", "group"),
    [
        ("t.py::test_x[m-run2of5]", "run2of5", "t.py::test_x[m]"),
        ("t.py::test_x[m-a-run2of5]", "run2of5", "t.py::test_x[m-a]"),
        ("t.py::test_x[m-run2of5-late]", "run2of5", "t.py::test_x[m-late]"),
        ("t.py::test_x[m]", "run2of5", "t.py::test_x[m]"),
    ],
)
def test_group_of(nodeid, run_id, group):
    assert group_of(nodeid, run_id) == group


def test_status_counts_the_verdict_and_skips_the_other_runs():
    base = {"index": 2, "planned": 5, "passed": 3, "runs": 3, "need": 3}
    # the other runs count as skipped, for every reporter
    assert status_of({**base, "role": "run", "outcome": "passed"})[0] == "skipped"
    assert status_of({**base, "role": "run", "outcome": "failed"})[0] == "skipped"
    assert status_of({**base, "role": "stopped", "outcome": "skipped"})[0] == "skipped"
    category, letter, word = status_of(
        {**base, "role": "verdict", "outcome": "passed", "verdict": "passed"}
    )
    assert (category, letter) == ("passed", ".")
    assert word[0] == "PASSED 3/3, needs 3/5"
    failed = status_of({**base, "role": "verdict", "outcome": "failed", "verdict": "failed"})
    assert failed[:2] == ("failed", "F")


# -- real sessions -------------------------------------------------------------------------

#: Each test talks to the simulator; whether a run passes is decided by the run's id, so the
#: expected verdicts are exact whatever the order or the worker.
SUITE = """
import pytest

@pytest.mark.llm(repeat=5, min_pass_rate=0.6)
def test_capital(llm):
    assert llm.complete("capital of France?") == "Paris"   # sim-weak answers Lyon

@pytest.mark.llm(repeat=4, min_pass_rate=0.5)
def test_half(llm, request):
    llm.complete("hello")
    assert not re.search(r"run[23]of", request.node.name)  # runs 2 and 3 fail: 2/4 pass

@pytest.mark.llm(repeat=3)
def test_strict(llm, request):
    llm.complete("hello")
    assert "run1of" not in request.node.name  # needs 3/3: run 1 fails it

def test_plain(llm):
    assert llm.complete("hello") == "ok"
""".replace("import pytest", "import re\nimport pytest")


@pytest.mark.parametrize("workers", [["-n", "0"], ["-n", "3"]], ids=["n0", "n3"])
def test_one_result_per_test_and_model(pytester, write_config, workers):
    write_config()
    pytester.makepyfile(SUITE)
    result = pytester.runpytest_subprocess(
        "--models=sims", "--llm-report=report.json", "-p", "no:randomly", "-rA",
        "--junitxml=junit.xml", *workers
    )  # fmt: skip
    # 4 tests x 2 models = 8 results, whatever the number of runs; the other runs skipped
    counts = outcome_counts(result)
    assert {k: counts.get(k) for k in ("passed", "failed")} == {"passed": 5, "failed": 3}
    assert set(counts) <= {"passed", "failed", "skipped"}, counts
    report = json.loads((pytester.path / "report.json").read_text())
    jsonschema.validate(report, schema())
    outcomes = {(t["test"].split("::")[1], t["model"]): t["outcome"] for t in report["tests"]}
    assert outcomes == {
        ("test_capital", "sim-fast"): "passed",
        ("test_capital", "sim-weak"): "failed",
        ("test_half", "sim-fast"): "passed",
        ("test_half", "sim-weak"): "passed",
        ("test_strict", "sim-fast"): "failed",
        ("test_strict", "sim-weak"): "failed",
        ("test_plain", "sim-fast"): "passed",
        ("test_plain", "sim-weak"): "passed",
    }
    totals = {
        k: sum(m["outcomes"][k] for m in report["models"].values())
        for k in ("passed", "failed", "skipped")
    }
    assert totals == {k: counts.get(k, 0) for k in ("passed", "failed", "skipped")}
    # JUnit: one testcase per run; its passes and failures are the terminal's, one per test
    # and model, and the same ones
    suite = ET.parse(pytester.path / "junit.xml").getroot().find("testsuite")
    junit: dict[str, list[str]] = {"passed": [], "failed": [], "skipped": []}
    for case in suite.iter("testcase"):
        kind = next((c.tag for c in case if c.tag in ("failure", "error", "skipped")), "passed")
        junit[{"failure": "failed", "error": "failed"}.get(kind, kind)].append(case.get("name"))
    assert {k: len(v) for k, v in junit.items()} == {
        k: counts.get(k, 0) for k in ("passed", "failed", "skipped")
    }
    terminal_failed = sorted(
        line.split("::")[1].split(" ")[0] for line in result.outlines if line.startswith("FAILED ")
    )
    assert sorted(junit["failed"]) == terminal_failed
    # the short summary: the other runs fold under SKIPPED, saying what each did
    result.stdout.fnmatch_lines(
        ["SKIPPED [[]1[]] *: sim-*: run */* passed, judged with the other runs"]
    )
    assert not [line for line in result.outlines if line.startswith(("RUN ", "('"))]
    half = next(
        t for t in report["tests"] if "test_half" in t["nodeid"] and t["model"] == "sim-fast"
    )
    assert half["nodeid"].endswith("test_half[sim-fast]")
    assert half["repeat"] == 4
    assert half["min_pass_rate"] == 0.5
    assert sorted(r["index"] for r in half["runs"]) == [1, 2, 3, 4]
    assert half["verdict"]["passed"] == 2
    assert half["verdict"]["needed"] == 2
    weak = report["models"]["sim-weak"]
    assert weak["pass_rate_interval"] is not None
    low, high = weak["pass_rate_interval"]
    assert low <= weak["pass_rate"] <= high
    assert weak["pass_rate"] == weak["runs_passed"] / weak["runs_judged"]
    # k/N is visible in the terminal: the verdict's word and the failure split
    result.stdout.fnmatch_lines(["*FAILED 0/3, needs 3/5*test_capital?sim-weak-run?of5*"])
    result.stdout.fnmatch_lines(["  *::test_capital[[]sim-weak-run?of5[]] (0/3 runs passed)"])
    pasted = next(
        line.split()[0] for line in result.outlines if "::test_capital[sim-weak-run" in line
    )
    again = pytester.runpytest_subprocess(pasted, "--models=sims", "-p", "no:randomly")
    assert_verdicts(again, failed=1)  # the id of the run that settled it: a real id
    assert re.search(r"sim-weak\s+2\s+2\s+.*\d+\.\d% \(\d+-\d+\)", result.stdout.str())


def test_n0_and_n3_agree_on_repeats(pytester, write_config):
    write_config()
    pytester.makepyfile(SUITE)

    def numbers(*workers: str) -> dict:
        pytester.runpytest_subprocess(
            "--models=sims", "--llm-report=r.json", "-p", "no:randomly", *workers
        )
        report = json.loads((pytester.path / "r.json").read_text())
        tests = {(t["nodeid"], t["outcome"]) for t in report["tests"]}
        models = {n: m["outcomes"] for n, m in report["models"].items()}
        return {"tests": tests, "models": models}

    assert numbers("-n", "0") == numbers("-n", "3")


def sim_requests(report: dict) -> dict[str, int]:
    return {name: m["requests"] for name, m in report["models"].items()}


def test_early_stop_saves_calls(pytester, write_config):
    write_config()
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.llm(repeat=10, min_pass_rate=0.8)
        def test_capital(llm):
            assert llm.complete("capital of France?") == "Paris"
        """
    )
    result = pytester.runpytest("--models=sims", "--llm-report=r.json", "-v", "-rs")
    report = json.loads((pytester.path / "r.json").read_text())
    # a run not needed is skipped at the test, not at the plugin's line that skips it
    result.stdout.fnmatch_lines(
        ["SKIPPED [[]*[]] test_early_stop_saves_calls.py:*: sim-*: run * settled it*"]
    )
    skips = [line for line in result.outlines if "SKIPPED" in line]
    assert not [line for line in skips if "pytest_llm_matrix" in line], skips
    # needs 8 of 10: sim-fast settles after 8 passes, sim-weak after 3 failures
    assert sim_requests(report) == {"sim-fast": 8, "sim-weak": 3}
    assert_verdicts(result, passed=1, failed=1)
    result.stdout.fnmatch_lines(["*test_capital?sim-fast-run9of10? NOT NEEDED*"])
    weak = next(t for t in report["tests"] if t["model"] == "sim-weak")
    assert [r["outcome"] for r in weak["runs"]] == ["failed"] * 3 + ["not needed"] * 7


@pytest.mark.parametrize(
    ("marker", "requests", "outcomes"),
    [
        # p = 0: any result passes, so one run decides (on each model)
        ("repeat=3, min_pass_rate=0", 2, {"passed": 2}),
        # p = 1: sim-weak's first failure settles it; sim-fast needs all 3
        ("repeat=3, min_pass_rate=1", 4, {"passed": 1, "failed": 1}),
        # N = 1 at p = 1 is a plain test: no run ids
        ("repeat=1", 2, {"passed": 1, "failed": 1}),
        # N = 1 at p = 0 passes whatever happens
        ("repeat=1, min_pass_rate=0", 2, {"passed": 2}),
    ],
)
def test_boundaries(pytester, write_config, marker, requests, outcomes):
    write_config()
    pytester.makepyfile(
        f"""
        import pytest

        @pytest.mark.llm({marker})
        def test_capital(llm):
            assert llm.complete("capital of France?") == "Paris"
        """
    )
    result = pytester.runpytest("--models=sims", "--llm-report=r.json", "-v")
    report = json.loads((pytester.path / "r.json").read_text())
    assert sum(sim_requests(report).values()) == requests
    assert_verdicts(result, **outcomes)
    if marker == "repeat=1":
        result.stdout.fnmatch_lines(["*test_capital?sim-fast? PASSED*"])
    if marker.endswith("min_pass_rate=0"):
        assert result.ret == 0


def test_cli_repeat_applies_everywhere_and_the_marker_wins(pytester, write_config):
    write_config()
    pytester.makepyfile(
        """
        import pytest

        def test_any(llm):
            llm.complete("hello")

        @pytest.mark.llm(repeat=2)
        def test_marked(llm):
            llm.complete("hello")
        """
    )
    result = pytester.runpytest("--llm-repeat", "3", "--collect-only", "-q")
    ids = [line.split("::")[1] for line in result.outlines if "::" in line]
    assert ids == [
        "test_any[sim-fast-run1of3]",
        "test_any[sim-fast-run2of3]",
        "test_any[sim-fast-run3of3]",
        "test_marked[sim-fast-run1of2]",
        "test_marked[sim-fast-run2of2]",
    ]


def test_ini_repeat_and_pass_rate(pytester, write_config):
    write_config()
    pytester.makepyfile(
        """
        def test_half(llm, request):
            llm.complete("hello")
            assert "run1of" not in request.node.name and "run2of" not in request.node.name
        """
    )
    result = pytester.runpytest("-o", "llm_repeat=4", "-o", "llm_repeat_pass_rate=50%", "-v")
    assert_verdicts(result, passed=1)
    result.stdout.fnmatch_lines(["*PASSED 2/4, needs 2/4*"])


def test_repeat_with_parametrize_keeps_ids_in_order(pytester, write_config):
    write_config()
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.parametrize("q", ["a", "b"])
        @pytest.mark.llm(repeat=2)
        def test_q(llm, q):
            llm.complete(q)
        """
    )
    result = pytester.runpytest("--models=sims", "-v", "--llm-report=r.json")
    assert_verdicts(result, passed=4)
    report = json.loads((pytester.path / "r.json").read_text())
    assert sorted(t["test"].split("::")[1] for t in report["tests"]) == [
        "test_q[a]",
        "test_q[a]",
        "test_q[b]",
        "test_q[b]",
    ]
    result.stdout.fnmatch_lines(["*test_q?sim-weak-b-run2of2? PASSED 2/2, needs 2/2*"])


@pytest.mark.parametrize(
    ("marker", "message"),
    [
        ("repeat=0", "repeat=...): expected a whole number from 1 to 1,000, got 0"),
        ("repeat='3'", "repeat=...): expected a whole number from 1 to 1,000, got '3'"),
        (
            "repeat=10**12",
            "repeat=...): expected a whole number from 1 to 1,000, got 1000000000000",
        ),
        ("min_pass_rate=2", "min_pass_rate=...): expected a share from 0 to 1 *got 2 (did you*"),
        ("min_pass_rate='most'", "(min_pass_rate=...): expected a share from 0 to 1*, got 'most'"),
        ("min_pass_rate='150%'", "(min_pass_rate=...): expected a share * to 100% *got '150%'"),
        ("repeats=3", "unexpected arguments ?'repeats'?; use keywords: models, exclude, repeat, *"),
    ],
)
def test_bad_marker_arguments_are_collection_errors(pytester, write_config, marker, message):
    write_config()
    pytester.makepyfile(
        f"""
        import pytest

        @pytest.mark.llm({marker})
        def test_x(llm_model):
            pass
        """
    )
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines([f"*{message}*"])
    assert "Traceback" not in result.stdout.str()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--llm-repeat", "0"], "--llm-repeat: expected a whole number from 1 to 1,000, got '0'"),
        (["--llm-repeat", "two"], "--llm-repeat: expected a whole number from 1 to *, got 'two'"),
        (["--llm-repeat", "1001"], "--llm-repeat: expected a whole * to 1,000, got '1001'"),
        (["--llm-repeat-pass-rate", "1.5%x"], "--llm-repeat-pass-rate: expected a share from 0*"),
    ],
)
def test_bad_options_are_usage_errors(pytester, write_config, args, message):
    write_config()
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{message}*"])


def test_a_failed_run_does_not_stop_x_or_count_as_junit_failure(pytester, write_config):
    write_config()
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.llm(repeat=3, min_pass_rate=0.6)
        def test_a(llm, request):
            llm.complete("hello")
            assert "run1of" not in request.node.name   # 2 of 3 pass

        def test_b(llm):
            llm.complete("hello")
        """
    )
    result = pytester.runpytest("-x", "--junitxml=junit.xml")
    assert_verdicts(result, passed=2)
    assert result.ret == 0
    root = ET.parse(pytester.path / "junit.xml").getroot()
    suite = root if root.tag == "testsuite" else root[0]
    assert suite.get("failures") == "0"
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    first = cases["test_a[sim-fast-run1of3]"]
    assert first.find("skipped").get("type") == "pytest.skip"
    assert "run 1/3 failed, judged with the other runs" in first.find("skipped").get("message")
    props = {p.get("name"): p.get("value") for p in first.iter("property")}
    assert props["llm_run"] == "1/3"
    assert props["llm_model"] == "sim-fast"
    assert int(props["llm_requests"]) == 1


def test_a_failing_verdict_carries_every_run_and_fails_the_run(pytester, write_config):
    write_config()
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.llm(repeat=4, min_pass_rate=0.75)
        def test_a(llm, request):
            llm.complete("hello")
            assert "run1of" not in request.node.name and "run2of" not in request.node.name
        """
    )
    result = pytester.runpytest("--junitxml=junit.xml")
    assert_verdicts(result, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*- llm-matrix repeats -*",
            "sim-fast: 0 of 2 runs passed; needs 3 of 4 (min_pass_rate 75%): failed, "
            "so the other 2 runs were not needed",
            "run 1 failed: AssertionError: assert ('run1of' not in *run1of4*",
            "run 2 failed: AssertionError: assert ('run1of' not in *run2of4*",
        ]
    )
    suite = ET.parse(pytester.path / "junit.xml").getroot()[0]
    assert suite.get("failures") == "1"


def test_deselected_runs_shrink_the_plan(pytester, write_config):
    write_config()
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.llm(repeat=3)
        def test_a(llm, request):
            llm.complete("hello")
        """
    )
    result = pytester.runpytest("-k", "run2of3", "-v")
    assert_verdicts(result, passed=1, deselected=2)
    result.stdout.fnmatch_lines(["*test_a?sim-fast-run2of3? PASSED 1/1, needs 1/1*"])


def test_runs_spread_across_workers(pytester, write_config):
    write_config()
    pytester.makepyfile(
        """
        import os, time
        import pytest

        @pytest.mark.llm(repeat=8)
        def test_a(llm):
            llm.complete("hello")
            time.sleep(0.3)
            with open("workers.txt", "a") as f:
                f.write(os.environ["PYTEST_XDIST_WORKER"] + "\\n")
        """
    )
    result = pytester.runpytest_subprocess("-n", "2", "-p", "no:randomly")
    assert_verdicts(result, passed=1)
    workers = (pytester.path / "workers.txt").read_text().split()
    assert len(workers) == 8
    assert set(workers) == {"gw0", "gw1"}


@pytest.mark.skipif(not hasattr(pytest, "Subtests"), reason="pytest < 9: no built-in subtests")
def test_subtests_are_parts_of_a_run_not_runs(pytester, write_config):
    write_config()
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.llm(repeat=3, min_pass_rate=0.6)
        def test_s(llm, subtests):
            llm.complete("hello")
            for i in range(2):
                with subtests.test(i=i):
                    pass
            assert False, "the test itself fails"
        """
    )
    result = pytester.runpytest("-v")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*FAILED 0/2, needs 2/3*"])
    assert outcome_counts(result)["failed"] == 1
    assert "passed" not in outcome_counts(result)


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["plain", "n2"])
def test_a_teardown_error_counts_once_per_test_and_model(pytester, write_config, workers):
    write_config()
    pytester.makepyfile(
        """
        import pytest

        @pytest.fixture
        def bad_teardown():
            yield
            raise RuntimeError("boom")

        @pytest.mark.llm(repeat=3)
        def test_t(llm, bad_teardown):
            llm.complete("hello")
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:randomly", *workers)
    assert_verdicts(result, passed=1, errors=1)  # as the same test without repeats


def test_a_crashed_run_is_one_of_the_runs(pytester, write_config):
    write_config()
    pytester.makepyfile(
        """
        import os
        import pytest

        @pytest.mark.llm(repeat=3, min_pass_rate=0.5)
        def test_c(llm, request):
            llm.complete("hello")
            if "run1of" in request.node.name:
                os._exit(1)
        """
    )
    result = pytester.runpytest_subprocess("-n", "2", "-p", "no:randomly", "--llm-report=r.json")
    counts = outcome_counts(result)
    judged = sum(counts.get(k, 0) for k in ("passed", "failed", "error", "errors"))
    assert judged == 1, result.stdout.str()
    report = json.loads((pytester.path / "r.json").read_text())
    assert [t["nodeid"] for t in report["tests"]] == [
        "test_a_crashed_run_is_one_of_the_runs.py::test_c[sim-fast]"
    ]
    assert report["failed_on_some"] in (
        {},
        {"test_a_crashed_run_is_one_of_the_runs.py::test_c": ["sim-fast"]},
    )
    # the crash settles the test as an error; its note is the crash, not xdist's worker line
    result.stdout.fnmatch_lines(["run 1 failed: worker 'gw*' crashed while running *"])
    assert "run 1 failed: [gw" not in result.stdout.str()
