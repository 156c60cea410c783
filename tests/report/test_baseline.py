"""Baselines: real sessions compared with an earlier run's report (a file, or the last run
kept in pytest's cache); the regression gate; the interval behind both."""

from __future__ import annotations

import json

import jsonschema
import pytest

from pytest_llm_matrix.report.baseline import newcombe_interval

from ..conftest import schema

#: Newcombe RG. Interval estimation for the difference between independent proportions:
#: comparison of eleven methods. Statistics in Medicine 1998;17:873-890, Table II, method 10
#: (the hybrid score interval, from Wilson's intervals without continuity correction):
#: (passed, runs, baseline passed, baseline runs) -> the published 95% limits.
NEWCOMBE_1998: dict[tuple[int, int, int, int], tuple[float, float]] = {
    (56, 70, 48, 80): (0.0524, 0.3339),
    (9, 10, 3, 10): (0.1705, 0.8090),
    (6, 7, 2, 7): (0.0582, 0.8062),
    (5, 56, 0, 29): (-0.0381, 0.1926),
    (0, 10, 0, 20): (-0.1611, 0.2775),
    (0, 10, 0, 10): (-0.2775, 0.2775),
    (10, 10, 0, 20): (0.6791, 1.0),
    (10, 10, 0, 10): (0.6075, 1.0),
}


@pytest.mark.parametrize(("counts", "published"), NEWCOMBE_1998.items())
def test_the_interval_matches_newcombes_published_values(counts, published):
    low, high = newcombe_interval(*counts)
    assert (round(low, 4), round(high, 4)) == published


def test_the_interval_of_a_run_without_runs_is_unknown():
    assert newcombe_interval(0, 0, 5, 10) is None
    assert newcombe_interval(5, 10, 0, 0) is None


#: 20 tests on one model (plus a second, optional model); which of them the model gets
#: wrong is the simulator's `wrong` list, written per run.
PROJECT = """
[tool.pytest.ini_options]
asyncio_default_fixture_loop_scope = "function"

[tool.llm-matrix.simulator]
default_reply = "ok"

[tool.llm-matrix.models.sim-main]
provider = "simulator"
simulate = {{ wrong = {wrong}, wrong_reply = "no" }}

[tool.llm-matrix.models.sim-extra]
provider = "simulator"
required = false
simulate = {{ wrong = {wrong}, wrong_reply = "no" }}
"""

SUITE = """
import pytest

@pytest.mark.parametrize("n", range(20))
def test_answer(llm, n):
    assert llm.complete(f"question {n:02d}") == "ok"
"""


@pytest.fixture
def project(pytester, monkeypatch):
    monkeypatch.delenv("TEST_MODELS", raising=False)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    pytester.makepyfile(test_suite=SUITE)

    def wrong(*questions: int) -> None:
        """The questions both models now get wrong."""
        patterns = json.dumps([f"question {n:02d}$" for n in questions])
        pytester.makefile(".toml", pyproject=PROJECT.format(wrong=patterns))

    return wrong


def test_a_significant_drop_is_flagged_and_fails_the_gate(pytester, project):
    project()  # the baseline: 20/20
    pytester.runpytest("--models=all", "--llm-report=base.json").assert_outcomes(passed=40)
    project(*range(10))  # now 10/20
    args = ["--models=all", "--llm-baseline=base.json", "--llm-report=now.json"]
    result = pytester.runpytest(*args, "--llm-fail-on-regression")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "*sim-main *50.0% *-50.0pp (-70..-24) worse*",
            "against the baseline: base.json, *",
            "sim-main: 100.0% -> 50.0%, -50.0pp (-70..-24) worse",
            "  now failing (passed in the baseline): 10",
            "    test_suite.py::test_answer[[]sim-main-0[]]",
            "    test_suite.py::test_answer[[]sim-main-9[]]",
            "--llm-fail-on-regression: sim-main's pass rate fell from 100.0% to 50.0%: "
            "-50.0pp (-70..-24) worse (95% interval of the change below 0)",
        ]
    )
    # the optional model is as much worse, but does not fail the run
    assert "sim-extra's pass rate fell" not in result.stdout.str()
    report = json.loads((pytester.path / "now.json").read_text())
    jsonschema.validate(report, schema())
    main = report["baseline"]["models"]["sim-main"]
    assert main["runs"] == [10, 20]
    assert main["baseline_runs"] == [20, 20]
    assert main["change"] == "worse"
    assert main["interval"][1] < 0
    assert len(main["now_failing"]) == 10
    assert report["baseline"]["regressions"] == ["sim-main"]
    # without the gate the drop is shown, and the run fails only for sim-main's own
    # failures: no regression is said
    shown = pytester.runpytest(*args)
    assert shown.ret == pytest.ExitCode.TESTS_FAILED
    assert "--llm-fail-on-regression" not in shown.stdout.str()


def test_one_more_failure_is_not_flagged(pytester, project):
    project()
    pytester.runpytest("--models=sim-main", "--llm-report=base.json").assert_outcomes(passed=20)
    project(7)  # 19/20
    result = pytester.runpytest(
        "--models=sim-main", "--llm-baseline=base.json", "--llm-fail-on-regression",
        "--llm-min-pass-rate=0.9",  # the one failure alone does not fail the run either
    )  # fmt: skip
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(
        [
            "sim-main: 100.0% -> 95.0%, -5.0pp (-*..+*)",
            "  now failing (passed in the baseline): 1",
            "    test_suite.py::test_answer[[]sim-main-7[]]",
            "--llm-fail-on-regression: no required model is significantly worse",
        ]
    )


def test_tests_that_flip_appear_or_go_and_models_in_one_run_only_are_named(pytester, project):
    project(3)
    pytester.runpytest("--models=all", "--llm-report=base.json")
    project(5)
    pytester.makepyfile(
        test_suite=SUITE.replace("range(20)", "range(1, 21)")  # 0 removed, 20 added
    )
    result = pytester.runpytest("--models=sim-main", "--llm-baseline=base.json")
    result.stdout.fnmatch_lines(
        [
            "sim-main: 95.0% -> 95.0%, +0.0pp (*)",
            "  now failing (passed in the baseline): 1",
            "    test_suite.py::test_answer[[]sim-main-5[]]",
            "  now passing (failed in the baseline): 1",
            "    test_suite.py::test_answer[[]sim-main-3[]]",
            "  added: 1",
            "    test_suite.py::test_answer[[]sim-main-20[]]",
            "  removed: 1",
            "    test_suite.py::test_answer[[]sim-main-0[]]",
            "only in the baseline: sim-extra",
        ]
    )


def test_last_compares_with_the_previous_run_of_the_same_selection(pytester, project):
    project()
    first = pytester.runpytest("--models=sim-main", "--llm-baseline=last")
    assert first.ret == pytest.ExitCode.USAGE_ERROR
    first.stderr.fnmatch_lines(
        ["*--llm-baseline=last: no earlier complete run of this selection (sim-main; the same *"]
    )
    pytester.runpytest("--models=sim-main").assert_outcomes(passed=20)
    pytester.runpytest("--models=all").assert_outcomes(passed=40)  # another selection
    project(*range(12))
    result = pytester.runpytest(
        "--models=sim-main", "--llm-baseline=last", "--llm-fail-on-regression"
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "against the baseline: the last run of this selection (pytest's cache), *",
            "sim-main: 100.0% -> 40.0%, -60.0pp * worse",
        ]
    )
    # the run just made is the next one's baseline
    again = pytester.runpytest("--models=sim-main", "--llm-baseline=last")
    assert "sim-main: 40.0% -> 40.0%" not in again.stdout.str()  # nothing changed: not listed
    assert "against the baseline: the last run" in again.stdout.str()


@pytest.mark.parametrize(
    ("content", "said"),
    [
        (None, "*--llm-baseline: the baseline */missing.json does not exist*"),
        ("{not json", "*--llm-baseline: the baseline *bad.json is not JSON (Expecting property "
         "name*"),
        ('{"version": 2, "plugin_version": "9.0"}', "*is a report of version 2 (written by "
         "pytest-llm-matrix 9.0); this plugin reads version 1*"),
        ("[]", "*bad.json is not a JSON report (expected an object)*"),
        ('{"version": 1, "models": {}, "tests": [{}]}',
         "*bad.json: tests[0].nodeid is missing, expected a string"),
        ('{"version": 1, "models": {"m": {"runs_passed": 5, "runs_judged": 2}}, "tests": []}',
         "*bad.json: models['m'].runs_passed is 5, more than runs_judged (2)"),
        ('{"version": 1, "models": {"m": {"runs_passed": 1, "runs_judged": 2, '
         '"cost_usd": "1e999"}}, "tests": []}',
         "*bad.json: models['m'].cost_usd is '1e999', expected a number from 0 to 1e12, or null"),
    ],
)  # fmt: skip
def test_an_unusable_baseline_is_a_usage_error_naming_it(pytester, project, content, said):
    project()
    path = pytester.path / ("missing.json" if content is None else "bad.json")
    if content is not None:
        path.write_text(content)
    result = pytester.runpytest("--models=sim-main", f"--llm-baseline={path.name}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([said.replace("[", "[[]")])  # "[" is literal here


def test_the_gate_needs_a_baseline_and_a_folder_is_not_one(pytester, project):
    project()
    alone = pytester.runpytest("--models=sim-main", "--llm-fail-on-regression")
    assert alone.ret == pytest.ExitCode.USAGE_ERROR
    alone.stderr.fnmatch_lines(["*--llm-fail-on-regression compares with a baseline: give*"])
    folder = pytester.runpytest("--models=sim-main", "--llm-baseline=.")
    folder.stderr.fnmatch_lines(["*--llm-baseline: the baseline * is a folder, not a file"])
    nocache = pytester.runpytest(
        "--models=sim-main", "--llm-baseline=last", "-p", "no:cacheprovider"
    )
    nocache.stderr.fnmatch_lines(
        ["*--llm-baseline=last reads pytest's cache, which -p no:cacheprovider*"]
    )


def test_the_comparison_goes_to_the_github_summary_and_the_report_hook(
    pytester, project, monkeypatch
):
    project()
    pytester.runpytest("--models=sim-main", "--llm-report=base.json")
    project(1, 2)
    summary = pytester.path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    pytester.makeconftest(
        """
        import json

        def pytest_llm_matrix_report(config, report):
            with open("hooked.json", "w") as fh:
                json.dump(report["baseline"], fh)
        """
    )
    pytester.runpytest("--models=sim-main", "--llm-baseline=base.json")
    text = summary.read_text()
    assert "| vs baseline |" in text
    assert "sim-main: 100.0% -> 90.0%" in text
    hooked = json.loads((pytester.path / "hooked.json").read_text())
    assert hooked["models"]["sim-main"]["now_failing"] == [
        "test_suite.py::test_answer[sim-main-1]",
        "test_suite.py::test_answer[sim-main-2]",
    ]


#: A baseline that is valid but for one field (a test, a model and the run's header).
VALID = (
    '{{"version": 1, "plugin_version": "0.1.0", "created": {created}, "models": {{"m": '
    '{{"runs_passed": {passed}, "runs_judged": 2, "cost_usd": {cost}, "requests": {requests}, '
    '"outcomes": {{"passed": {outcome_count}}}}}}}, "tests": [{{"nodeid": "t.py::t[m]", '
    '"test": "t.py::t", "model": {model}, "outcome": {outcome}}}]}}'
)
FIELDS = {
    "created": '"2026-01-01"', "passed": "1", "cost": "0.5", "requests": "2",
    "outcome_count": "1", "model": '"m"', "outcome": '"passed"',
}  # fmt: skip


def valid(**wrong: str) -> str:
    return VALID.format(**(FIELDS | wrong))


@pytest.mark.parametrize(
    ("content", "said"),
    [
        ("[" * 100_000 + "]" * 100_000, "*hostile.json is nested more than 200 levels deep"),
        ('{"version": 1, "models": {"m": {"runs_passed": 1, "runs_judged": 1, "cost_usd": NaN}}}',
         "*hostile.json is not JSON (NaN is not a number JSON allows)*"),
        ('{"version": true}', "*is a report of version True*"),
        (b'{"version": 1, "created": "caf\xe9"}', "*hostile.json is not UTF-8 text (byte *"),
        (valid(cost="-1"),
         "*hostile.json: models['m'].cost_usd is -1, expected a number from 0 to 1e12, or null"),
        (valid(cost="1e999"),
         "*hostile.json: models['m'].cost_usd is inf, expected a number from 0 to 1e12, or null"),
        (valid(outcome_count="true"), "*hostile.json: models['m'].outcomes.passed is True, "
         "expected a whole number from 0 to 1e12"),
        (valid(requests='"2"'),
         "*hostile.json: models['m'].requests is '2', expected a whole number from 0 to 1e12"),
        (valid(passed="1.0"),
         "*hostile.json: models['m'].runs_passed is 1.0, expected a whole number from 0 to 1e12"),
        (valid(created="5"), "*hostile.json: created is 5, expected a string"),
        (valid(model="5"), "*hostile.json: tests[0].model is 5, expected a string"),
        (valid(outcome='"weird"'), "*hostile.json: tests[0].outcome is 'weird', expected one of "
         "passed, failed, error, skipped, xfailed, xpassed"),
        ('{"version": 1, "models": {"m": []}, "tests": []}',
         "*hostile.json: models['m'] is [], expected an object"),
        ('{"version": 1, "models": {}, "tests": {}}',
         "*hostile.json: tests is {}, expected a list"),
        ('{"version": 1, "tests": []}', "*hostile.json: models is missing, expected an object"),
    ],
)  # fmt: skip
def test_hostile_baselines_are_usage_errors(pytester, project, content, said):
    project()
    path = pytester.path / "hostile.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    result = pytester.runpytest("--models=sim-main", "--llm-baseline=hostile.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([said.replace("[", "[[]")])  # "[" is literal here


def test_a_pipe_is_not_read(pytester, project):
    import os

    project()
    os.mkfifo(pytester.path / "pipe.json")
    result = pytester.runpytest("--models=sim-main", "--llm-baseline=pipe.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*the baseline *pipe.json is not a regular file (a FIFO)"])


def test_the_valid_baseline_of_the_hostile_cases_is_read(pytester, project):
    """The hostile cases above differ from this one in one field each."""
    project()
    (pytester.path / "valid.json").write_text(valid())
    result = pytester.runpytest("--models=sim-main", "--llm-baseline=valid.json")
    assert result.ret == pytest.ExitCode.OK, result.stderr.str()
    result.stdout.fnmatch_lines(
        ["against the baseline: valid.json, 2026-01-01", "only in the baseline: m"]
    )


def test_a_narrowed_or_stopped_run_does_not_become_the_last_baseline(pytester, project):
    project()
    pytester.runpytest("--models=sim-main").assert_outcomes(passed=20)
    project(*range(10))
    pytester.runpytest("--models=sim-main", "-x")  # stops at the first failure
    pytester.runpytest("--models=sim-main", "-k", "answer and 1")
    gated = pytester.runpytest(
        "--models=sim-main", "--llm-baseline=last", "--llm-fail-on-regression"
    )
    assert gated.ret == pytest.ExitCode.TESTS_FAILED
    gated.stdout.fnmatch_lines(["sim-main: 100.0% -> 50.0%, -50.0pp (-70..-24) worse"])
    # a run of some test paths has its own last run
    only = pytester.runpytest("--models=sim-main", "--llm-baseline=last", "test_suite.py")
    assert only.ret == pytest.ExitCode.USAGE_ERROR


def test_a_required_model_that_did_not_run_fails_the_gate(pytester, project, monkeypatch):
    project()
    pytester.runpytest("--models=sim-main", "--llm-report=base.json").assert_outcomes(passed=20)
    pytester.makeconftest(
        """
        import pytest

        @pytest.fixture(autouse=True)
        def _off(request):
            pytest.skip("switched off")
        """
    )
    result = pytester.runpytest(
        "--models=sim-main", "--llm-baseline=base.json", "--llm-fail-on-regression"
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "sim-main: 100.0% -> -, no run judged in this run",
            "--llm-fail-on-regression: sim-main had no run judged in this run (20 in the "
            "baseline): it is not shown to be no worse",
        ]
    )


def test_the_html_report_may_not_overwrite_the_json_one(pytester, project):
    project()
    for other in ("--llm-report=same.json", "--llm-baseline=same.json"):
        result = pytester.runpytest("--models=sim-main", "--llm-html=same.json", other)
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        result.stderr.fnmatch_lines(["*--llm-html and --llm-* name the same file*"])


def test_text_from_a_baseline_is_shown_plainly(pytester, project):
    project()
    pytester.runpytest("--models=sim-main", "--llm-report=base.json")
    base = json.loads((pytester.path / "base.json").read_text())
    base["created"] = "\x1b[31mRED\x1b[0m\nforged line"
    (pytester.path / "base.json").write_text(json.dumps(base))
    project(3)
    result = pytester.runpytest("--models=sim-main", "--llm-baseline=base.json")
    out = result.stdout.str()
    assert "\x1b[31m" not in out
    assert "\nforged line" not in out
    assert "against the baseline: base.json, \\x1b[31mRED\\x1b[0m\\nforged line" in out
