"""The model registry: where it is found, what it accepts, and its errors."""

from __future__ import annotations

import pytest

from pytest_llm_matrix.config.registry import parse_registry

from ..conftest import collected

MODEL_TEST = "def test_m(llm_model):\n    pass\n"


@pytest.fixture
def run_with(pytester: pytest.Pytester, write_config):
    def run(config: str, *args: str) -> pytest.RunResult:
        write_config(config)
        pytester.makepyfile(MODEL_TEST)
        return pytester.runpytest(*args)

    return run


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        (
            '[tool.llm-matrix.models.m]\nprovider = "openai"\ntimout = 3',
            "*pyproject.toml: model 'm': unknown field 'timout' (did you mean 'timeout'?)*",
        ),
        (
            '[tool.llm-matrix.models.m]\nprovider = "openai"\ntimeout = "fast"',
            "*pyproject.toml: model 'm': field 'timeout': expected a number of seconds from 0.1 to"
            " 604,800 (a week), got 'fast'",
        ),
        (
            '[tool.llm-matrix.models.m]\nprovider = "opnai"',
            "*model 'm': field 'provider': expected one of openai, anthropic, openai-compatible,"
            " azure-openai, simulator; got 'opnai'*",
        ),
        (
            '[tool.llm-matrix.models.m]\nprovider = "openai"\ntimeout = 0',
            "*model 'm': field 'timeout': expected a number of seconds from 0.1 to 604,800*, got 0",
        ),
        (
            '[tool.llm-matrix.models.m]\nprovider = "openai"\ntimeout = -5',
            "*model 'm': field 'timeout': expected a number of seconds from 0.1 *, got -5",
        ),
        (
            '[tool.llm-matrix.models.m]\nprovider = "openai"\nmax_concurrency = 0',
            "*model 'm': field 'max_concurrency': expected a whole number from 1 to 10,000, got 0",
        ),
        (
            '[tool.llm-matrix.models.m]\nprovider = "openai"\nmax_concurrency = 2.5',
            "*model 'm': field 'max_concurrency': expected a whole number from 1 *, got 2.5",
        ),
        (
            '[tool.llm-matrix.models.m]\nprovider = "openai"\nrequired = "yes"',
            "*model 'm': field 'required': expected true or false*",
        ),
        ('[tool.llm-matrix.models.m]\nmodel = "x"', "*model 'm': field 'provider' is required*"),
        (
            '[tool.llm-matrix.models.m]\nprovider = "openai-compatible"',
            "*provider 'openai-compatible' needs a 'base_url'*",
        ),
        (
            '[tool.llm-matrix.models.m]\nprovider = "openai"\nsimulate = { latency = 1 }',
            "*field 'simulate' only applies to provider 'simulator'*",
        ),
        (
            '[tool.llm-matrix]\ngroups = { g = ["m", "nope"] }\n'
            '[tool.llm-matrix.models.m]\nprovider = "openai"',
            "*group 'g' names unknown model 'nope'*known models: m*",
        ),
        (
            "[tool.llm-matrix]\nmax_concurency = 3\n",
            "*unknown setting 'max_concurency' (did you mean 'max_concurrency'?)*",
        ),
        (
            "[tool.llm-matrix]\nmax_concurrency = -1\n"
            '[tool.llm-matrix.models.m]\nprovider = "openai"',
            "*setting 'max_concurrency': expected a whole number from 1 to 10,000, got -1",
        ),
    ],
    ids=[
        "unknown-field",
        "wrong-type",
        "unknown-provider",
        "zero-timeout",
        "negative-timeout",
        "zero-concurrency",
        "float-concurrency",
        "bool-type",
        "no-provider",
        "compat-no-url",
        "simulate-not-sim",
        "group-unknown",
        "unknown-top",
        "negative-global",
    ],
)
def test_bad_config_is_a_usage_error(run_with, table, expected):
    result = run_with(table)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {expected}"])
    assert "Traceback" not in result.stderr.str()


@pytest.mark.parametrize(
    ("alias", "said"),
    [
        (
            "modèle-a",
            r"invalid alias 'modèle-a': 'è' is not ASCII, which pytest escapes in test ids "
            r"(test_x[mod\xe8le-a])",
        ),
        (
            "win\\path",
            r"invalid alias 'win\\path': '\\' is a backslash, which pytest escapes in test ids "
            r"(test_x[win\\path])",
        ),
    ],
    ids=["non-ascii", "backslash"],
)
def test_an_alias_pytest_would_escape_in_test_ids_is_refused(
    pytester: pytest.Pytester, write_config, alias, said
):
    """pytest writes non-ASCII characters and backslashes escaped in test ids, so a test's
    results could not be matched to its model (failed on every model, the HTML grid): such
    an alias is a usage error, in the config and from the hook alike."""
    toml_key = alias.replace("\\", "\\\\")
    write_config(f'[tool.llm-matrix.models."{toml_key}"]\nprovider = "simulator"\n')
    pytester.makepyfile(MODEL_TEST)
    result = pytester.runpytest("--models=all")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = result.stderr.str()
    assert f"pyproject.toml: model: {said}" in errors
    assert "use printable ASCII characters" in errors
    assert "Traceback" not in errors

    write_config("")
    model = {alias: {"provider": "simulator"}}
    pytester.makeconftest(f"def pytest_llm_matrix_models(config):\n    return {model!r}\n")
    hooked = pytester.runpytest("--models=all")
    assert hooked.ret == pytest.ExitCode.USAGE_ERROR
    assert f"pytest_llm_matrix_models hook: model: {said}" in hooked.stderr.str()


def test_the_total_rows_name_is_no_alias(pytester: pytest.Pytester, write_config):
    """A model called ``total`` showed as a second total row, bold as the real one."""
    write_config('[tool.llm-matrix.models.total]\nprovider = "simulator"\n')
    pytester.makepyfile(MODEL_TEST)
    result = pytester.runpytest("--models=all")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*pyproject.toml: model: invalid alias 'total': 'total' is reserved for the summary's*"]
    )


def test_toml_syntax_error_names_file_and_line(pytester: pytest.Pytester, write_config):
    write_config("")
    pytester.makefile(".toml", **{"llm-matrix": "[models.m]\ntags = []\nprovider = openai\n"})
    pytester.makepyfile(MODEL_TEST)
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: *llm-matrix.toml: invalid TOML: *(at line 3, column 12)"])


def test_config_error_does_not_break_help(run_with):
    result = run_with('[tool.llm-matrix.models.m]\nprovider = "nope"', "--help")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*--models=SELECTION*"])


def test_llm_matrix_toml_beside_the_pytest_config(pytester: pytest.Pytester, write_config):
    write_config("")
    pytester.makefile(".toml", **{"llm-matrix": '[models.alpha]\nprovider = "simulator"\n'})
    pytester.makepyfile(MODEL_TEST)
    result = pytester.runpytest("--collect-only", "-q")
    assert collected(result) == ["test_m[alpha]"]


def test_llm_config_option(pytester: pytest.Pytester, write_config):
    write_config("")
    pytester.mkdir("conf")
    pytester.path.joinpath("conf", "models.toml").write_text(
        '[models.beta]\nprovider = "simulator"\n'
    )
    pytester.makepyfile(MODEL_TEST)
    result = pytester.runpytest("--collect-only", "-q", "--llm-config", "conf/models.toml")
    assert collected(result) == ["test_m[beta]"]
    missing = pytester.runpytest("--llm-config", "conf/nope.toml")
    assert missing.ret == pytest.ExitCode.USAGE_ERROR
    missing.stderr.fnmatch_lines(["ERROR: --llm-config: no such file: *nope.toml"])


def test_models_registered_by_a_conftest_hook(pytester: pytest.Pytester, write_config):
    write_config('[tool.llm-matrix.models.from-toml]\nprovider = "simulator"\n')
    pytester.makeconftest(
        """
        from pytest_llm_matrix import Model

        def pytest_llm_matrix_models(config):
            return {"from-hook": {"provider": "simulator", "tags": ["hooked"]}}
        """
    )
    pytester.makepyfile(MODEL_TEST)
    result = pytester.runpytest("--collect-only", "-q", "--models=all")
    assert collected(result) == ["test_m[from-toml]", "test_m[from-hook]"]
    tagged = pytester.runpytest("--collect-only", "-q", "--models=hooked")
    assert collected(tagged) == ["test_m[from-hook]"]


def test_hook_model_with_a_bad_field(pytester: pytest.Pytester, write_config):
    write_config("")
    pytester.makeconftest(
        """
        def pytest_llm_matrix_models(config):
            return {"x": {"provider": "simulator", "temperature": 0}}
        """
    )
    pytester.makepyfile(MODEL_TEST)
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: pytest_llm_matrix_models hook: model 'x': unknown field 'temperature'*"]
    )


def test_hook_model_clashing_with_the_config(pytester: pytest.Pytester, write_config):
    write_config('[tool.llm-matrix.models.dup]\nprovider = "simulator"\n')
    pytester.makeconftest(
        """
        def pytest_llm_matrix_models(config):
            return {"dup": {"provider": "simulator"}}
        """
    )
    pytester.makepyfile(MODEL_TEST)
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*model 'dup' is already defined in pyproject.toml*"])


def test_defaults_filled_in():
    registry = parse_registry(
        {
            "models": {
                "claude": {"provider": "anthropic"},
                "gpt": {"provider": "openai", "model": "gpt-4o"},
            }
        },
        "cfg",
    )
    claude, gpt = registry.models["claude"], registry.models["gpt"]
    assert (claude.model, claude.api, claude.base_url) == (
        "claude",
        "anthropic",
        "https://api.anthropic.com",
    )
    assert (gpt.model, gpt.api, gpt.base_url) == ("gpt-4o", "openai", "https://api.openai.com/v1")
    assert claude.required is True
    assert "key" not in repr(claude).lower().replace("api_key_env", "")


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        (
            '[tool.llm-matrix.auxiliary]\nroutes = { "gpt-4o" = "judg" }\n'
            '[tool.llm-matrix.models.judge]\nprovider = "simulator"',
            "*auxiliary route 'gpt-4o' names unknown model 'judg' (did you mean 'judge'?); "
            "known models: judge",
        ),
        (
            "[tool.llm-matrix.auxiliary]\nmodels = 5\n",
            "*setting 'auxiliary': expected a list of model ids, got 5",
        ),
        (
            '[tool.llm-matrix.auxiliary]\nmodels = ["ok", ""]\n',
            "*setting 'auxiliary': expected a non-empty string, got ''",
        ),
        (
            '[tool.llm-matrix.auxiliary]\nroute = { "a" = "b" }\n',
            "*setting 'auxiliary': unknown field 'route' (did you mean 'routes'?); valid "
            "fields: models, routes",
        ),
        (
            '[tool.llm-matrix.auxiliary]\nroutes = ["a"]\n',
            "*setting 'auxiliary': 'routes': expected a table of model id = alias, got [[]'a'[]]",
        ),
        (
            '[tool.llm-matrix.auxiliary]\nroutes = { "a" = 3 }\n',
            "*setting 'auxiliary': 'routes': 'a': alias must be a string, got 3",
        ),
        (
            '[tool.llm-matrix]\nauxiliary = "gpt-4o"\n',
            "*setting 'auxiliary': expected a table with 'models' and 'routes', got 'gpt-4o'",
        ),
    ],
    ids=["unknown-alias", "models-type", "empty-id", "unknown-field", "routes-list", "alias-int",
         "not-a-table"],
)  # fmt: skip
def test_bad_auxiliary_config_is_a_usage_error(run_with, table, expected):
    result = run_with(table)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {expected}"])
    assert "Traceback" not in result.stderr.str()


def test_auxiliary_ids_and_routes():
    registry = parse_registry(
        {
            "auxiliary": {"models": ["gpt-4o", "ada"], "routes": {"emb": "m", "gpt-4o": "m"}},
            "models": {"m": {"provider": "simulator"}},
        },
        "x",
    )
    assert registry.auxiliary == ("gpt-4o", "ada", "emb")
    assert registry.routes == {"emb": "m", "gpt-4o": "m"}
    again = type(registry).from_dict(registry.to_dict())
    assert (again.auxiliary, again.routes) == (registry.auxiliary, registry.routes)
