"""Which models run: --models > TEST_MODELS > the config's default, and the syntax."""

from __future__ import annotations

import pytest

from pytest_llm_matrix.config.registry import Registry, check_registry, parse_registry
from pytest_llm_matrix.config.selection import resolve

from ..conftest import collected

MODEL_TEST = "def test_m(llm_model):\n    pass\n"


@pytest.fixture
def registry() -> Registry:
    reg = parse_registry(
        {
            "groups": {"oss": ["qwen3-32b", "gpt-oss-120b"]},
            "models": {
                "gpt-4o-mini": {"provider": "openai", "tags": ["cheap"]},
                "gpt-4o": {"provider": "openai"},
                "claude-haiku": {"provider": "anthropic", "tags": ["cheap"]},
                "qwen3-32b": {"provider": "openai-compatible", "base_url": "http://x/v1"},
                "gpt-oss-120b": {
                    "provider": "openai-compatible",
                    "base_url": "http://x/v1",
                    "tags": ["cheap"],
                },
            },
        },
        "cfg",
    )
    check_registry(reg)
    return reg


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("all", ["gpt-4o-mini", "gpt-4o", "claude-haiku", "qwen3-32b", "gpt-oss-120b"]),
        ("gpt-4o", ["gpt-4o"]),
        ("claude-haiku, gpt-4o-mini", ["gpt-4o-mini", "claude-haiku"]),
        ("oss", ["qwen3-32b", "gpt-oss-120b"]),
        ("cheap", ["gpt-4o-mini", "claude-haiku", "gpt-oss-120b"]),
        ("all,-gpt-4o", ["gpt-4o-mini", "claude-haiku", "qwen3-32b", "gpt-oss-120b"]),
        ("-oss", ["gpt-4o-mini", "gpt-4o", "claude-haiku"]),
        ("cheap,-oss", ["gpt-4o-mini", "claude-haiku"]),
        (" gpt-4o , gpt-4o,,gpt-4o ", ["gpt-4o"]),
        ("oss,-gpt-oss-120b,gpt-oss-120b", ["qwen3-32b", "gpt-oss-120b"]),
    ],
)
def test_selection_syntax(registry, expression, expected):
    assert list(resolve(expression, registry, "--models")) == expected


def test_unknown_name_suggests_and_lists(registry):
    with pytest.raises(pytest.UsageError) as info:
        resolve("all,-gpt4o", registry, "--models")
    message = str(info.value)
    assert "--models: unknown model, group or tag 'gpt4o'. Did you mean 'gpt-4o'?" in message
    assert "models: gpt-4o-mini, gpt-4o, claude-haiku, qwen3-32b, gpt-oss-120b" in message
    assert "groups: oss" in message
    assert "tags:   cheap" in message


@pytest.mark.parametrize("expression", ["all,-all", "oss,-qwen3-32b,-gpt-oss-120b", " , "])
def test_empty_selection(registry, expression):
    with pytest.raises(pytest.UsageError, match=r"selects no model|selection is empty"):
        resolve(expression, registry, "TEST_MODELS")


def test_group_may_not_shadow_a_model():
    reg = parse_registry({"groups": {"m": ["m"]}, "models": {"m": {"provider": "openai"}}}, "cfg")
    with pytest.raises(pytest.UsageError, match="group 'm' has the name of a model"):
        check_registry(reg)


CONFIG = """
[tool.llm-matrix]
default = ["alpha"]
groups = { pair = ["alpha", "beta"] }
[tool.llm-matrix.models.alpha]
provider = "simulator"
[tool.llm-matrix.models.beta]
provider = "simulator"
tags = ["t"]
[tool.llm-matrix.models.gamma]
provider = "simulator"
tags = ["t"]
"""


@pytest.mark.parametrize(
    ("cli", "env", "expected"),
    [
        (None, None, ["alpha"]),
        (None, "beta", ["beta"]),
        ("gamma", "beta", ["gamma"]),
        ("pair", None, ["alpha", "beta"]),
        ("t", None, ["beta", "gamma"]),
        ("all,-pair", "alpha", ["gamma"]),
        (None, "  ", ["alpha"]),
    ],
)
def test_precedence(pytester, write_config, monkeypatch, cli, env, expected):
    write_config(CONFIG)
    pytester.makepyfile(MODEL_TEST)
    if env is not None:
        monkeypatch.setenv("TEST_MODELS", env)
    args = ["--collect-only", "-q"] + ([f"--models={cli}"] if cli is not None else [])
    result = pytester.runpytest(*args)
    assert collected(result) == [f"test_m[{name}]" for name in expected]


def test_no_default_means_all(pytester, write_config):
    write_config(CONFIG.replace('default = ["alpha"]', ""))
    pytester.makepyfile(MODEL_TEST)
    result = pytester.runpytest("--collect-only", "-q")
    assert collected(result) == ["test_m[alpha]", "test_m[beta]", "test_m[gamma]"]


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (
            ["--models=gamm"],
            None,
            "ERROR: --models: unknown model, group or tag 'gamm'. Did you mean 'gamma'?",
        ),
        ([], "alpha,zeta", "ERROR: TEST_MODELS: unknown model, group or tag 'zeta'.*"),
        (
            ["--models=pair,-alpha,-beta"],
            None,
            "ERROR: --models='pair,-alpha,-beta' selects no "
            "model; known models: alpha, beta, gamma",
        ),
    ],
)
def test_selection_errors_exit_4(pytester, write_config, monkeypatch, args, env, message):
    write_config(CONFIG)
    pytester.makepyfile(MODEL_TEST)
    if env is not None:
        monkeypatch.setenv("TEST_MODELS", env)
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message.replace("[", "[[]")])
    assert "Traceback" not in result.stderr.str()


def test_models_without_any_config(pytester, write_config):
    write_config("")
    pytester.makepyfile(MODEL_TEST)
    result = pytester.runpytest("--models=gpt-4o")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --models selects models, but none are configured*"])


def test_missing_key_skips_with_reason(pytester, write_config):
    write_config()
    pytester.makepyfile(MODEL_TEST)
    result = pytester.runpytest("--models=hosted", "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["SKIPPED * gpt-4o.mini-2: LLM_MATRIX_TEST_UNSET_KEY is not set"])


def test_a_blank_key_is_said_to_be_blank(pytester, write_config, monkeypatch):
    write_config()
    monkeypatch.setenv("LLM_MATRIX_TEST_UNSET_KEY", "   \n")
    pytester.makepyfile(MODEL_TEST)
    result = pytester.runpytest("--models=hosted", "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["SKIPPED * gpt-4o.mini-2: LLM_MATRIX_TEST_UNSET_KEY is blank"])


def test_missing_key_with_strict_is_an_error(pytester, write_config):
    write_config()
    pytester.makepyfile(MODEL_TEST)
    result = pytester.runpytest("--models=all", "--llm-strict", "--collect-only")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: --llm-strict: selected models cannot run: gpt-4o.mini-2: "
            "LLM_MATRIX_TEST_UNSET_KEY is not set*"
        ]
    )


def test_key_present_runs(pytester, write_config, monkeypatch):
    write_config()
    monkeypatch.setenv("LLM_MATRIX_TEST_UNSET_KEY", "sk-test-secret")
    pytester.makepyfile(
        "def test_m(llm_model):\n    assert llm_model.api_key_env == 'LLM_MATRIX_TEST_UNSET_KEY'\n"
    )
    result = pytester.runpytest("--models=hosted", "--llm-strict")
    result.assert_outcomes(passed=1)
    assert "sk-test-secret" not in result.stdout.str()


def test_settings_survive_the_trip_to_a_worker():
    import dataclasses
    import json

    from pytest_llm_matrix.config.options import Settings

    registry = parse_registry(
        {
            "models": {
                "a": {"provider": "openai", "api_key_env": "K"},
                "b": {"provider": "simulator"},
            }
        },
        "test",
    )
    settings = Settings(
        registry=registry,
        selected=("a", "b"),
        selected_by="--models",
        unavailable={"a": "K is not set"},
        max_concurrency=3,
        min_pass_rate=0.8,
        repeat=5,
        repeat_pass_rate=0.6,
        progress="off",
        max_cost=2.5,
        rates={"a": (1e-6, 2e-6, 5e-7), "b": None},
    )
    wire = json.loads(json.dumps(settings.to_wire()))  # plain builtins only
    assert Settings.from_wire(wire) == settings
    assert {f.name for f in dataclasses.fields(Settings)} == set(wire)
