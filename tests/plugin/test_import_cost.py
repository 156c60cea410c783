"""The entry-point plugin loads in every pytest run: it must not pull in heavy libraries."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("httpx", "httpx2", "genai_prices", "openai", "anthropic", "filelock")


def test_importing_the_plugin_is_cheap():
    code = (
        "import sys, pytest_llm_matrix.plugin\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_a_session_without_model_tests_imports_no_http_client(pytester, write_config):
    write_config()  # simulator models selected: the simulator starts, but no client is built
    pytester.makepyfile(
        f"""
        import sys

        def test_nothing_heavy_loaded():
            assert [m for m in {HEAVY!r} if m in sys.modules] == []
        """
    )
    result = pytester.runpytest_subprocess("--models=all", "-p", "no:anyio", "-p", "no:asyncio")
    result.assert_outcomes(passed=1)
