"""pytest's cache as the plugin reads and writes it: whatever sits at a key's path cannot
stall a run or send a write elsewhere. Real sessions."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

SUITE = "import pytest\n\n@pytest.mark.parametrize('n', range(3))\ndef test_a(llm, n):\n    pass\n"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
@pytest.mark.parametrize("key", ["durations", "test-costs", "model-tests"])
def test_a_fifo_at_a_key_neither_stalls_nor_breaks_a_run(pytester, write_config, key):
    write_config()
    pytester.makepyfile(SUITE)
    pytester.runpytest_subprocess("--models=sim-fast").assert_outcomes(passed=3)
    path = pytester.path / ".pytest_cache/v/llm-matrix" / key
    path.unlink(missing_ok=True)
    os.mkfifo(path)
    result = pytester.runpytest_subprocess("--models=sim-fast", timeout=120)
    result.assert_outcomes(passed=3)
    assert not path.is_file()  # still the FIFO: not written through


def test_a_symlink_at_a_key_is_not_written_through(pytester, write_config, tmp_path):
    write_config()
    pytester.makepyfile(SUITE)
    pytester.runpytest_subprocess("--models=sim-fast").assert_outcomes(passed=3)
    elsewhere = tmp_path / "precious.json"
    elsewhere.write_text('{"kept": true}')
    path = pytester.path / ".pytest_cache/v/llm-matrix/durations"
    path.unlink()
    path.symlink_to(elsewhere)
    pytester.runpytest_subprocess("--models=sim-fast").assert_outcomes(passed=3)
    assert json.loads(elsewhere.read_text()) == {"kept": True}


def test_an_oversized_value_is_not_read(pytester, write_config):
    write_config()
    pytester.makepyfile(SUITE)
    path = pytester.path / ".pytest_cache/v/llm-matrix/durations"
    path.parent.mkdir(parents=True)
    with path.open("w") as fh:  # 65 MB of one JSON string: over the cap, never read whole
        fh.write('{"x": "')
        fh.write("a" * (65 * 2**20))
        fh.write('"}')
    result = pytester.runpytest_subprocess("--models=sim-fast", "-n", "2")
    result.assert_outcomes(passed=3)
    assert path.stat().st_size < 2**20  # rewritten with this run's durations


def test_a_lone_surrogate_in_a_message_is_written_escaped_everywhere(
    pytester, write_config, monkeypatch
):
    """A reply's JSON escape ``\\ud800`` in a failure message: no UTF-8 can hold it. Every
    file gets its escape, and the plugin reads back what it wrote (it crashed at the end)."""
    write_config()
    pytester.makepyfile("def test_a(llm):\n    assert llm.complete('hi') == 'lone \\ud800 half'\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(pytester.path / "summary.md"))
    args = ["--models=sim-fast", "--llm-report=r.json", "--llm-html=r.html"]
    first = pytester.runpytest_subprocess(*args)
    assert first.ret == 1
    assert "Traceback" not in first.stdout.str() + first.stderr.str()
    assert "\\ud800" in (pytester.path / "r.json").read_text()
    again = pytester.runpytest_subprocess(*args, "--llm-baseline=last")
    assert again.ret == 1, again.stderr.str()
    merged = subprocess.run(
        [sys.executable, "-m", "pytest_llm_matrix", "merge", "r.json"],
        cwd=pytester.path,
        capture_output=True,
        text=True,
    )
    assert merged.returncode == 1, merged.stderr


def test_a_cached_duration_no_float_can_hold_is_left_out(pytester, write_config):
    """A 400-digit duration ended a -n 2 run with an INTERNALERROR (OverflowError)."""
    value = "1" * 400
    write_config()
    pytester.makepyfile(SUITE)
    path = pytester.path / ".pytest_cache/v/llm-matrix/durations"
    path.parent.mkdir(parents=True)
    path.write_text(f'{{"test_cachefile.py::test_a[sim-fast-0]": {value}}}')
    result = pytester.runpytest_subprocess("--models=sim-fast", "-n", "2")
    result.assert_outcomes(passed=3)
