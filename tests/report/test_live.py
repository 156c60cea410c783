"""Live per-model progress: drawn in a real terminal (a pty), absent everywhere else."""

from __future__ import annotations

import re

import pytest

from pytest_llm_matrix.report.live import progress_lines

from ..conftest import run_in_terminal

SUITE = """
import time
import pytest

@pytest.mark.parametrize("i", range(8))
def test_answer(llm, i):
    time.sleep(0.25)
    assert llm.complete("capital of France?") == "Paris"
"""

#: The block writes through TerminalReporter.write_raw, which pytest 9 added; before it,
#: the live progress stays off.
needs_write_raw = pytest.mark.skipif(
    not hasattr(getattr(pytest, "TerminalReporter", None), "write_raw"),
    reason="pytest < 9: no live progress",
)

CURSOR_UP = re.compile(r"\x1b\[(\d+)A")
BLOCK_LINE = re.compile(r"(sim-\w+)\s+(\d+)/(\d+) done\s+(\d+) failed\s+cost (\S+)")


def test_progress_lines():
    lines = progress_lines(
        [("sim-fast", 3, 12, 0, "$0.0012"), ("sim-weak", 12, 12, 2, "n/a"), ("b", 12, 12, 0, "-")],
        100,
    )
    assert lines == [
        ("sim-fast   3/12 done  0 failed  cost $0.0012", {}),
        ("sim-weak  12/12 done  2 failed  cost n/a", {"red": True}),
        ("b         12/12 done  0 failed  cost -", {"green": True}),
    ]
    narrow = progress_lines([("sim-fast", 3, 12, 0, "$0.0012")], 12)
    assert narrow == [("sim-fast", {})]  # never wider than the terminal - 1


@needs_write_raw
def test_live_block_in_a_terminal_with_xdist(pytester, write_config):
    write_config()
    pytester.makepyfile(SUITE)
    out, _ = run_in_terminal(
        ["--models=sims", "-p", "no:sugar", "-n", "2", "-p", "no:randomly"], pytester.path
    )
    assert re.search(r"8 failed, 8 passed", out), out
    states = [m.groups() for m in BLOCK_LINE.finditer(out)]
    assert states, out
    # drawn while the run was going: some model short of its total at the time
    assert any(int(done) < int(total) for _, done, total, _, _ in states)
    assert {name for name, *_ in states} == {"sim-fast", "sim-weak"}
    assert all(total == "8" for _, _, total, _, _ in states)
    # failures show as they happen; sim-weak answers Lyon
    weak = [s for s in states if s[0] == "sim-weak"]
    assert max(int(s[3]) for s in weak) >= 1
    assert all(int(s[3]) == 0 for s in states if s[0] == "sim-fast")
    # in place: after each block the cursor goes back up over its two lines
    assert set(CURSOR_UP.findall(out)) == {"2"}
    # and the block is cleared before pytest's summary
    last_block = out.rfind(" done ")
    assert out.rfind("\x1b[0J") > last_block
    assert out.find("llm-matrix: 2 models", last_block) > out.rfind("\x1b[0J")


@needs_write_raw
def test_live_block_without_xdist(pytester, write_config):
    write_config()
    pytester.makepyfile(SUITE)
    out, _ = run_in_terminal(
        ["--models=sims", "-p", "no:sugar", "-p", "no:randomly"], pytester.path
    )
    assert "8 failed, 8 passed" in out
    assert any(int(d) < int(t) for _, d, t, _, _ in (m.groups() for m in BLOCK_LINE.finditer(out)))


@pytest.mark.parametrize(
    "args", [["-q"], ["--llm-progress=off"], ["-o", "llm_progress=off"], ["-s", "-n", "0"]]
)
def test_no_live_block_when_asked_or_quiet(pytester, write_config, args):
    write_config()
    pytester.makepyfile(SUITE)
    out, _ = run_in_terminal(
        ["--models=sims", "-p", "no:sugar", "-p", "no:randomly", *args], pytester.path
    )
    assert "8 failed, 8 passed" in out
    assert not BLOCK_LINE.search(out)
    assert not CURSOR_UP.search(out)


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["plain", "n2"])
def test_not_a_terminal_stays_clean(pytester, write_config, workers, monkeypatch):
    monkeypatch.delenv("PY_COLORS", raising=False)
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    write_config()
    pytester.makepyfile(SUITE)
    result = pytester.runpytest_subprocess("--models=sims", "-p", "no:randomly", *workers)
    result.assert_outcomes(passed=8, failed=8)
    text = result.stdout.str() + result.stderr.str()
    assert "\x1b" not in text
    assert not BLOCK_LINE.search(text)


def test_bad_progress_value(pytester, write_config):
    write_config()
    result = pytester.runpytest("-o", "llm_progress=sometimes")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    # pytest 9.2 checks the choice itself (a Literal ini type); older pytest leaves it to us
    result.stderr.fnmatch_lines(
        [
            "*ini llm_progress: *expects one of 'auto' | 'off', got 'sometimes'*"
            if pytest.version_tuple >= (9, 2)
            else "*ini llm_progress: expected one of auto, off, got 'sometimes'*"
        ]
    )
