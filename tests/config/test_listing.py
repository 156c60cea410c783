"""--llm-models: the configured models, groups, tags, judge and selection, then exit 0
without a session (as ``pytest --markers``): no test, no xdist worker, never a key."""

from __future__ import annotations

import pytest

from pytest_llm_matrix.config.listing import COLUMNS, table

from ..conftest import BASIC_CONFIG

#: BASIC_CONFIG with a judge, an optional keyed model and a secret header.
CONFIG = BASIC_CONFIG.replace(
    'default = ["sim-fast"]', 'default = ["sim-fast"]\njudge = "claude"'
) + (
    """
[tool.llm-matrix.models.claude]
provider = "anthropic"
model = "claude-haiku-4-5"
api_key_env = "LLM_MATRIX_TEST_LISTED_KEY"
required = false
headers = { x-team = { env = "LLM_MATRIX_TEST_LISTED_HEADER" } }
"""
)
SECRET = "sk-listed-0123456789abcdef"

#: A test that leaves a trace if it runs, and a conftest that leaves one if a session (or
#: an xdist worker) starts.
TRACED = """
from pathlib import Path

def test_m(llm_model):
    Path("test-ran").touch()
"""
CONFTEST = """
from pathlib import Path

def pytest_configure(config):
    if hasattr(config, "workerinput"):
        Path("worker-started").touch()

def pytest_sessionstart(session):
    Path("session-started").touch()
"""


@pytest.fixture
def project(pytester: pytest.Pytester, write_config, monkeypatch: pytest.MonkeyPatch):
    write_config(CONFIG)
    pytester.makepyfile(TRACED)
    pytester.makeconftest(CONFTEST)
    monkeypatch.setenv("LLM_MATRIX_TEST_LISTED_KEY", SECRET)
    monkeypatch.delenv("LLM_MATRIX_TEST_LISTED_HEADER", raising=False)
    return pytester


def nothing_ran(pytester: pytest.Pytester) -> bool:
    return not any(
        pytester.path.joinpath(name).exists()
        for name in ("test-ran", "session-started", "worker-started")
    )


def test_lists_models_groups_tags_judge_default_and_selection(project: pytest.Pytester):
    result = project.runpytest("--llm-models")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(
        [
            "llm-matrix: 4 models (pyproject.toml)",
            "model * provider * model id * api * tags * required * simulated * keys",
            "sim-fast * simulator * sim-fast * openai * fast,cheap * yes * yes * -",
            "sim-weak * simulator * sim-weak * openai * cheap * yes * yes * -",
            "gpt-4o.mini-2 * openai * gpt-4o-mini * openai * hosted * yes * no "
            "* LLM_MATRIX_TEST_UNSET_KEY not set",
            "claude * anthropic * claude-haiku-4-5 * anthropic * - * no * no "
            "* LLM_MATRIX_TEST_LISTED_KEY set, LLM_MATRIX_TEST_LISTED_HEADER not set",
            "groups:",
            "  sims: sim-fast, sim-weak",
            "tags:",
            "  fast: sim-fast",
            "  cheap: sim-fast, sim-weak",
            "  hosted: gpt-4o.mini-2",
            "judge: claude (from 'judge' in pyproject.toml; not in 'all')",
            "default: sim-fast",
            "selected now: 1 of 4 models (from 'default' in pyproject.toml): sim-fast",
        ]
    )
    assert SECRET not in result.stdout.str() + result.stderr.str()
    assert "passed" not in result.stdout.str()
    assert nothing_ran(project)


def test_the_selection_of_models_or_test_models_and_its_missing_keys(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("TEST_MODELS", "cheap")
    from_env = project.runpytest("--llm-models")
    from_env.stdout.fnmatch_lines(
        ["selected now: 2 of 4 models (from TEST_MODELS, over 'default'): sim-fast, sim-weak"]
    )
    monkeypatch.setenv("LLM_MATRIX_TEST_LISTED_HEADER", " ")
    result = project.runpytest("--llm-models", "--models=all,-sims", "--llm-judge=sim-weak")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(
        [
            "claude * LLM_MATRIX_TEST_LISTED_KEY set, LLM_MATRIX_TEST_LISTED_HEADER blank",
            "judge: sim-weak (from --llm-judge; not in 'all')",
            "selected now: 2 of 4 models (from --models, over TEST_MODELS and 'default'): "
            "gpt-4o.mini-2, claude",
            "  gpt-4o.mini-2 would be skipped: LLM_MATRIX_TEST_UNSET_KEY is not set",
            "  claude would be skipped: LLM_MATRIX_TEST_LISTED_HEADER is blank",
        ]
    )
    assert SECRET not in result.stdout.str()
    assert nothing_ran(project)


def test_with_and_without_xdist_no_worker_starts(project: pytest.Pytester, xdist_args):
    # -n 2 in a subprocess: where workers would start, they would be real processes
    run = project.runpytest_subprocess if "2" in xdist_args else project.runpytest
    result = run("--llm-models", *xdist_args)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["selected now: 1 of 4 models *: sim-fast"])
    assert "worker" not in result.stdout.str()
    assert nothing_ran(project)


def test_models_of_a_conftest_hook_are_listed(pytester: pytest.Pytester, write_config):
    write_config("")
    pytester.makeconftest(
        """
        def pytest_llm_matrix_models(config):
            return {"from-hook": {"provider": "simulator", "tags": ["hooked"]}}
        """
    )
    result = pytester.runpytest("--llm-models")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(
        [
            "llm-matrix: 1 model (no llm-matrix config found: from the "
            "pytest_llm_matrix_models hook)",
            "from-hook * simulator * from-hook * openai * hooked * yes * yes * -",
            "  hooked: from-hook",
            "default: not set (a run without --models or TEST_MODELS selects 'all')",
        ]
    )


@pytest.mark.parametrize(
    ("table", "where"),
    [
        ("", "(no llm-matrix config found)"),
        ("[tool.llm-matrix]\nmax_concurrency = 2", "in pyproject.toml"),
    ],
    ids=["no-config", "no-models"],
)
def test_without_models_it_says_how_to_add_one(
    pytester: pytest.Pytester, write_config, table, where
):
    write_config(table)
    pytester.makepyfile(TRACED)
    result = pytester.runpytest("--llm-models")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(
        [
            f"llm-matrix: no models configured {where}: add "
            "[[]tool.llm-matrix.models.<alias>] to pyproject.toml, write an llm-matrix.toml "
            "beside your pytest config, or pass --llm-config PATH"
        ]
    )
    assert not pytester.path.joinpath("test-ran").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--models=sim-fst"],
            "ERROR: --models: unknown model, group or tag 'sim-fst'. Did you mean 'sim-fast'?",
        ),
        (["--llm-judge=nope"], "ERROR: --llm-judge: 'nope' is not a configured model*"),
    ],
)
def test_a_bad_selection_or_judge_is_the_usual_usage_error(project: pytest.Pytester, args, message):
    result = project.runpytest("--llm-models", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
    assert nothing_ran(project)


def test_selecting_with_no_model_configured_is_a_usage_error(
    pytester: pytest.Pytester, write_config
):
    write_config("")
    result = pytester.runpytest("--llm-models", "--models=sim-fast")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --models selects models, but none are configured: *"])


def test_help_wins_and_describes_it(project: pytest.Pytester):
    result = project.runpytest("--llm-models", "--help")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["*--llm-models*list the configured models*"])
    assert "selected now" not in result.stdout.str()


def test_table_columns_are_as_wide_as_their_widest_cell():
    rows = [["a-long-alias", "openai", "m", "openai", "-", "yes", "no", "-"]]
    header, row = table(rows)
    assert header.startswith("model         provider")
    assert row == "a-long-alias  openai    m         openai  -     yes       no         -"
    assert len(COLUMNS) == len(rows[0])
