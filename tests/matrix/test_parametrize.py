"""Each test that needs a model runs once per selected model; other tests run once."""

from __future__ import annotations

import pytest

from ..conftest import collected

# Models with their own base_url: no simulator is started and no request is made.
CONFIG = """
[tool.llm-matrix]
groups = { local = ["llama-3.1:8b", "qwen.v2-7b"] }
[tool.llm-matrix.models.gpt-4o-mini]
provider = "openai-compatible"
base_url = "http://127.0.0.1:9/v1"
tags = ["cheap"]
params = { temperature = 0 }
[tool.llm-matrix.models."llama-3.1:8b"]
provider = "openai-compatible"
base_url = "http://127.0.0.1:9/v1"
model = "llama3.1:8b-instruct"
[tool.llm-matrix.models."qwen.v2-7b"]
provider = "openai-compatible"
base_url = "http://127.0.0.1:9/v1"
tags = ["cheap"]
"""
ALL = ["gpt-4o-mini", "llama-3.1:8b", "qwen.v2-7b"]


@pytest.fixture
def suite(pytester: pytest.Pytester, write_config):
    write_config(CONFIG)

    def make(source: str) -> None:
        pytester.makepyfile(test_suite=source)

    return make


def test_ids_and_composition(pytester, suite):
    suite(
        """
        import pytest

        def test_plain():
            pass

        def test_model(llm_model):
            pass

        @pytest.mark.parametrize("n", [1, 2])
        def test_both(llm_model, n):
            pass

        @pytest.fixture
        def uses_model(llm_model):
            return llm_model.name

        def test_indirect(uses_model):
            pass

        class TestGroup:
            def test_method(self, llm_model):
                pass
        """
    )
    result = pytester.runpytest("--collect-only", "-q", "--models=all")
    names = collected(result)
    assert names.count("test_plain") == 1
    assert [n for n in names if n.startswith("test_model")] == [f"test_model[{m}]" for m in ALL]
    assert [n for n in names if n.startswith("test_both")] == [
        f"test_both[{m}-{n}]" for m in ALL for n in (1, 2)
    ]
    assert [n for n in names if n.startswith("test_indirect")] == [
        f"test_indirect[{m}]" for m in ALL
    ]
    assert [n for n in names if "test_method" in n] == [f"TestGroup::test_method[{m}]" for m in ALL]


def test_fixture_is_the_model_spec(pytester, suite):
    suite(
        """
        def test_spec(llm_model):
            assert llm_model.provider == "openai-compatible"
            assert llm_model.base_url == "http://127.0.0.1:9/v1"
            if llm_model.name == "llama-3.1:8b":
                assert llm_model.model == "llama3.1:8b-instruct"
            else:
                assert llm_model.model == llm_model.name
            if llm_model.name == "gpt-4o-mini":
                assert llm_model.params == {"temperature": 0}
            assert str(llm_model) == llm_model.name
        """
    )
    pytester.runpytest("--models=all").assert_outcomes(passed=3)


def test_async_tests_are_parametrized(pytester, suite):
    suite(
        """
        import pytest

        @pytest.mark.asyncio
        async def test_async(llm_model):
            assert llm_model.name
        """
    )
    result = pytester.runpytest("--models=cheap", "-v")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        ["*test_async?gpt-4o-mini? PASSED*", "*test_async?qwen.v2-7b? PASSED*"]
    )


def test_marker_narrows_function_class_and_module(pytester, suite):
    suite(
        """
        import pytest

        pytestmark = pytest.mark.llm(exclude=["qwen.v2-7b"])

        @pytest.mark.llm(models=["gpt-4o-mini", "qwen.v2-7b"])
        def test_only_gpt(llm_model):
            pass

        @pytest.mark.llm(models="local")
        class TestLocal:
            def test_group(self, llm_model):
                pass

            @pytest.mark.llm(models=["cheap"])
            def test_nothing_left(self, llm_model):
                pass
        """
    )
    result = pytester.runpytest("--collect-only", "-q", "--models=all")
    assert collected(result) == [  # grouped: no model first, then model by model
        "TestLocal::test_nothing_left[no-model]",
        "test_only_gpt[gpt-4o-mini]",
        "TestLocal::test_group[llama-3.1:8b]",
    ]
    run = pytester.runpytest("--models=all", "-rs")
    run.assert_outcomes(passed=2, skipped=1)
    run.stdout.fnmatch_lines(["SKIPPED * no selected model is allowed by @pytest.mark.llm*"])


def test_marker_intersects_with_the_selection(pytester, suite):
    suite(
        """
        import pytest

        @pytest.mark.llm(models=["gpt-4o-mini", "qwen.v2-7b"])
        def test_m(llm_model):
            pass
        """
    )
    result = pytester.runpytest("--collect-only", "-q", "--models=qwen.v2-7b,llama-3.1:8b")
    assert collected(result) == ["test_m[qwen.v2-7b]"]


def test_marker_speaks_the_selection_syntax(pytester, suite):
    suite(
        """
        import pytest

        @pytest.mark.llm(models="all,-gpt-4o-mini")
        def test_all_but(llm_model):
            pass

        @pytest.mark.llm(models=["-local"])
        def test_not_local(llm_model):
            pass
        """
    )
    everything = pytester.runpytest("--collect-only", "-q", "--models=all")
    names = collected(everything)
    assert "test_all_but[gpt-4o-mini]" not in names
    assert "test_all_but[qwen.v2-7b]" in names
    assert "test_not_local[gpt-4o-mini]" in names
    assert not any(n.startswith("test_not_local[qwen") for n in names)


@pytest.mark.parametrize(
    ("marker", "message"),
    [
        (
            'pytest.mark.llm(models=["gpt-40-mini"])',
            "*unknown model, group or tag 'gpt-40-mini'. Did you mean 'gpt-4o-mini'?*",
        ),
        ('pytest.mark.llm("gpt-4o-mini")', "*unexpected arguments*use keywords: models, exclude*"),
        ("pytest.mark.llm(models=[1])", "*expected a list of model names, got [[]1]*"),
    ],
)
def test_bad_marker_is_a_collection_error(pytester, suite, marker, message):
    suite(f"import pytest\n\n@{marker}\ndef test_m(llm_model):\n    pass\n")
    result = pytester.runpytest("--models=all")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines([message])
    assert "Traceback" not in result.stdout.str()


def test_keyword_selection_by_alias(pytester, suite):
    suite("def test_m(llm_model):\n    pass\n\ndef test_plain():\n    pass\n")
    result = pytester.runpytest("--models=all", "-k", "llama-3.1:8b or qwen.v2-7b", "-v")
    result.assert_outcomes(passed=2, deselected=2)


def test_model_tests_without_config_fail_clearly(pytester, write_config):
    write_config("")
    pytester.makepyfile("def test_m(llm_model):\n    pass\n\ndef test_plain():\n    pass\n")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*test_m uses llm_model, but no models are configured.*"])


@pytest.mark.parametrize(
    "name", ["llm_matrix", "llm-matrix", "pytest-llm-matrix", "pytest_llm_matrix"]
)
def test_plugin_can_be_disabled_by_any_name_a_user_sees(pytester, suite, name):
    """The entry point's name, the ``plugins:`` line's, the package's: each switches the
    plugin off entirely (no options, fixtures, markers, header)."""
    suite("def test_plain():\n    pass\n\ndef test_model(llm):\n    pass\n")
    result = pytester.runpytest("-p", f"no:{name}", "--models=all")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*unrecognized arguments: --models=all*"])
    result = pytester.runpytest("-p", f"no:{name}", "-rA")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*fixture 'llm' not found*"])
    result.stdout.no_fnmatch_line("llm-matrix:*")
    assert "llm(" not in pytester.runpytest("-p", f"no:{name}", "--markers").stdout.str()
    on = pytester.runpytest("--markers")
    assert "@pytest.mark.llm(" in on.stdout.str()


def test_header_shows_selection(pytester, suite, monkeypatch):
    suite("def test_plain():\n    pass\n")
    monkeypatch.setenv("TEST_MODELS", "local")
    result = pytester.runpytest()
    result.stdout.fnmatch_lines(
        [
            "llm-matrix: 2 of 3 models (from TEST_MODELS): llama-3.1:8b, qwen.v2-7b",
            "llm-matrix: config: pyproject.toml",
        ]
    )


def test_workers_run_the_controllers_selection(pytester, write_config):
    """Workers never resolve the selection themselves: they get the controller's."""
    write_config("")
    pytester.makeconftest(
        """
        def pytest_llm_matrix_models(config):
            where = "worker" if hasattr(config, "workerinput") else "controller"
            return {f"seen-by-{where}": {"provider": "simulator"}}
        """
    )
    pytester.makepyfile("def test_m(llm_model):\n    assert llm_model.name\n")
    result = pytester.runpytest_subprocess("-n", "2", "-v")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*PASSED*test_m?seen-by-controller?*"])


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["n0", "n2"])
def test_two_model_tests_with_one_id_stop_the_run(pytester, write_config, workers):
    """Models ``a`` and ``a-b`` with parameters ``b-c`` and ``c``: pytest gives both tests
    the id ``[a-b-c]``; one result was lost from the report. A usage error instead."""
    write_config(
        '[tool.llm-matrix.models.a]\nprovider = "simulator"\n'
        '[tool.llm-matrix.models.a-b]\nprovider = "simulator"\n'
    )
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.parametrize("x", ["b-c", "c"])
        def test_p(llm, x):
            pass
        """
    )
    result = pytester.runpytest_subprocess("--models=all", "-p", "no:cacheprovider", *workers)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    output = result.stdout.str() + result.stderr.str()
    assert "two model tests have the id 'test_two_model_tests_with_one_id_stop" in output
    assert "::test_p[a-b-c]': pytest joins a model's alias" in output
    assert "INTERNALERROR" not in output
    assert "Traceback" not in output
