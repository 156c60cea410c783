"""pytest's cache as the plugin reads and writes it: whatever sits at a key's path cannot
stall a run or send a write elsewhere. Real sessions."""

from __future__ import annotations

import json
import os

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
