"""The per-model summary: the same numbers with and without xdist."""

from __future__ import annotations

import pytest

SUITE = """
import pytest

def test_capital(llm):
    assert llm.complete("What is the capital of France?") == "Paris"

@pytest.mark.parametrize("n", range(3))
def test_default(llm, n):
    assert llm.complete(f"hello {n}") == "ok"

def test_skipped(llm_model):
    pytest.skip("not today")

@pytest.mark.xfail(reason="known")
def test_xfail(llm_model):
    assert False

def test_no_model():
    pass

@pytest.fixture
def broken(llm_model):
    raise RuntimeError("setup broke")

def test_error(broken):
    pass
"""


def table(result: pytest.RunResult) -> dict[str, list[str]]:
    lines = result.outlines
    start = next(
        i
        for i, line in enumerate(lines)
        if "llm-matrix:" in line and "models" in line and line.startswith("=")
    )
    rows = {}
    for line in lines[start + 2 :]:
        cells = line.split()
        if not cells or line.startswith(("=", "_")) or cells[0].endswith(":"):
            break
        header = lines[start + 1].split()
        outcomes = header.index("pass") - 1  # the columns between "model" and "pass rate"
        rows[cells[0]] = cells[1 : 2 + outcomes]  # the outcomes and the pass rate
    return rows


def test_counts_per_model(pytester, write_config, xdist_args):
    write_config()
    pytester.makepyfile(SUITE)
    result = pytester.runpytest_subprocess("--models=sims,hosted", *xdist_args)
    # 7 model tests x 3 models (the hosted one skipped: no key) + 1 test without a model
    result.assert_outcomes(passed=8, failed=1, skipped=9, xfailed=2, errors=2)
    rows = table(result)
    # passed failed error skipped xfailed pass-rate
    assert rows["sim-fast"] == ["4", "0", "1", "1", "1", "80.0%"]
    assert rows["sim-weak"] == ["3", "1", "1", "1", "1", "60.0%"]
    assert rows["gpt-4o.mini-2"] == ["0", "0", "0", "7", "0", "-"]
    assert rows["total"] == ["7", "1", "2", "9", "2", "70.0%"]
    result.stdout.fnmatch_lines(
        ["gpt-4o.mini-2: unavailable: LLM_MATRIX_TEST_UNSET_KEY is not set"]
    )


def test_non_model_tests_run_once(pytester, write_config, xdist_args):
    write_config()
    pytester.makepyfile("def test_a():\n    pass\n\ndef test_m(llm_model):\n    pass\n")
    result = pytester.runpytest_subprocess("--models=sims", "-v", *xdist_args)
    result.assert_outcomes(passed=3)
    assert sum("test_a" in line and "PASSED" in line for line in result.outlines) == 1


def test_optional_model_failures_do_not_fail_the_run(pytester, write_config):
    write_config(
        """
        [tool.llm-matrix.models.main]
        provider = "simulator"
        [tool.llm-matrix.models.candidate]
        provider = "simulator"
        required = false
        """
    )
    pytester.makepyfile(
        """
        def test_m(llm_model):
            assert llm_model.name == "main"
        """
    )
    result = pytester.runpytest("--models=all")
    result.assert_outcomes(passed=1, failed=1)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["optional models (required = false) failed: candidate;*"])

    pytester.makepyfile(
        """
        def test_m(llm_model):
            assert llm_model.name == "candidate"
        """
    )
    required_failed = pytester.runpytest("--models=all")
    assert required_failed.ret == pytest.ExitCode.TESTS_FAILED


def test_one_simulator_serves_every_worker(pytester, write_config, monkeypatch):
    write_config()
    record = pytester.path / "seen.txt"
    monkeypatch.setenv("SEEN_FILE", str(record))
    pytester.makepyfile(
        """
        import os
        import pytest

        @pytest.mark.parametrize("n", range(6))
        def test_url(llm, llm_model, n):
            assert llm.complete("hi") == "ok"
            with open(os.environ["SEEN_FILE"], "a") as fh:
                fh.write(f"{os.environ['PYTEST_XDIST_WORKER']} {llm_model.base_url}\\n")
        """
    )
    result = pytester.runpytest_subprocess("--models=sims", "-n", "2", "-p", "no:randomly")
    result.assert_outcomes(passed=12)
    seen = [line.split() for line in record.read_text().splitlines()]
    assert {worker for worker, _ in seen} == {"gw0", "gw1"}
    assert len({url for _, url in seen}) == 1
