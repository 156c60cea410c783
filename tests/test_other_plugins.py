"""Counts that other plugins cannot bend: the per-model results are read from the reports
themselves, so a plugin that answers ``pytest_report_teststatus`` its own way (pytest-sugar
gives setup and teardown reports a letter too) changes neither the table, nor the JSON
report, nor the gate's verdict."""

from __future__ import annotations

import json
import re

import pytest

from .conftest import run_in_terminal

SUITE = """
import pytest

@pytest.fixture
def broken_teardown():
    yield
    raise RuntimeError("teardown")

@pytest.mark.parametrize("question", ["capital of France?", "hi", "a", "b"])
def test_answer(llm, question):
    assert llm.complete(question) in ("Paris", "ok")

def test_teardown_error(llm, broken_teardown):
    assert llm.complete("hi") == "ok"

def test_skipped(llm_model):
    pytest.skip("not today")

@pytest.mark.xfail(reason="known")
def test_xfail(llm_model):
    assert False
"""

#: Per model: passed, failed, errors, skipped, xfailed (sim-weak answers the capital wrong).
EXPECTED = {"sim-fast": (5, 0, 1, 1, 1), "sim-weak": (4, 1, 1, 1, 1)}
ROW = re.compile(r"^(sim-\w+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s", re.M)


def table_counts(output: str) -> dict[str, tuple[int, ...]]:
    return {name: tuple(map(int, counts)) for name, *counts in ROW.findall(output)}


def json_counts(path) -> dict[str, tuple[int, ...]]:
    models = json.loads(path.read_text())["models"]
    keys = ("passed", "failed", "error", "skipped", "xfailed")
    return {name: tuple(m["outcomes"][k] for k in keys) for name, m in models.items()}


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["plain", "n2"])
@pytest.mark.parametrize("sugar", [True, False], ids=["sugar", "no-sugar"])
def test_pytest_sugar_changes_no_count_and_no_verdict(pytester, write_config, workers, sugar):
    pytest.importorskip("pytest_sugar")
    write_config()
    pytester.makepyfile(SUITE)
    args = [
        "--models=sims",
        "--llm-report=report.json",
        "-p",
        "no:randomly",
        "-p",
        "no:cacheprovider",
    ]
    # sim-weak passes 4 of 6 judged results (66.7%), sim-fast 5 of 6 (83.3%): below 75%,
    # sim-weak fails the gate; counting setup and teardown reports would lift it over.
    output, status = run_in_terminal(
        [*args, "--llm-min-pass-rate=75%", *workers, *([] if sugar else ["-p", "no:sugar"])],
        pytester.path,
    )
    if sugar:
        assert "Results (" in output  # pytest-sugar's own summary: it really ran
    assert table_counts(output) == EXPECTED, output
    assert json_counts(pytester.path / "report.json") == EXPECTED
    assert "--llm-min-pass-rate 75%: below it: sim-weak 66.7%" in output
    assert status == 1


CRASHING = """
import os

def test_crash(llm):
    llm.complete("one")
    os._exit(1)

def test_fine(llm):
    assert llm.complete("hi") == "ok"
"""


def test_a_crash_under_the_model_scheduler_with_rerunfailures_installed(pytester, write_config):
    pytest.importorskip("pytest_rerunfailures")
    write_config()
    pytester.makepyfile(CRASHING)
    # rerunfailures' crash hook reads the scheduler's config, as xdist's schedulers have it
    result = pytester.runpytest_subprocess("--models=sim-fast", "-n", "2", "-p", "no:randomly")
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        ["*crashed while running*test_crash[[]sim-fast]' (model sim-fast)*"]
    )


@pytest.mark.parametrize(
    ("marker", "args"),
    [
        ("@pytest.mark.llm(repeat=3)", ["--reruns=1"]),
        ("@pytest.mark.llm(repeat=3)\n@pytest.mark.flaky(reruns=2)", []),
    ],
    ids=["--reruns", "flaky-mark"],
)
def test_repeats_and_reruns_are_one_or_the_other(pytester, write_config, marker, args):
    pytest.importorskip("pytest_rerunfailures")
    write_config()
    pytester.makepyfile(f"import pytest\n\n{marker}\ndef test_r(llm):\n    pass\n")
    result = pytester.runpytest_subprocess("--models=sim-fast", *args)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(
        ["*test_r: a repeated test (repeat=3) cannot also be rerun by pytest-rerunfailures*"]
    )
