"""Binding at request time, its edges: outside model tests nothing is bound and nothing of a
test's binding is left; offline means offline (replay, simulated models); auxiliary requests
go where their client sends them, counted apart, or are recorded and replayed with the
test's own recordings; a test's own key is its own business; -x with several models says
what it does; the route narrowed to some folders; an SDK release outside the supported
range stops the run with its name."""

from __future__ import annotations

import json
import textwrap

import pytest

from pytest_llm_matrix.adoption import sdks

from .provider import Provider

openai = pytest.importorskip("openai")

CONFIG = """
[tool.llm-matrix.models.sim-a]
provider = "simulator"

[tool.llm-matrix.models.sim-b]
provider = "simulator"

[tool.llm-matrix.models.embedder]
provider = "simulator"

[tool.llm-matrix.auxiliary]
routes = { "text-embedding-3-small" = "embedder" }
"""


@pytest.fixture
def provider(monkeypatch):
    """A stand-in for api.openai.com, where the suite's clients are built to go."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-the-projects-own-key-0000")
    monkeypatch.delenv("TEST_MODELS", raising=False)
    with Provider() as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.url)
        yield server


def write(pytester, config: str = CONFIG, ini: str = 'usefixtures = ["llm_sdks"]') -> None:
    pytester.makefile(
        ".toml",
        pyproject=textwrap.dedent(config)
        + f'\n[tool.pytest.ini_options]\nasyncio_default_fixture_loop_scope = "function"\n{ini}\n',
    )


@pytest.mark.sdk
def test_outside_model_tests_clients_are_left_alone_and_nothing_survives(pytester, provider):
    write(pytester, ini="")
    pytester.makepyfile(
        app="""
        import openai

        CLIENT = openai.OpenAI()  # cached for the session

        def ask():
            answer = CLIENT.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
            return answer.choices[0].message.content
        """,
        test_app="""
        import httpx, openai, pytest

        import app

        ORIGINALS = (
            openai._base_client.BaseClient.__dict__["_build_request"],
            openai.OpenAI.__dict__["__init__"],
            httpx.Client.__dict__["send"],
        )

        @pytest.mark.usefixtures("llm_sdks")
        def test_bound():
            assert "sim-a" in app.ask()

        def test_plain_after():
            assert app.ask() == "from the real provider"
            assert (
                openai._base_client.BaseClient.__dict__["_build_request"],
                openai.OpenAI.__dict__["__init__"],
                httpx.Client.__dict__["send"],
            ) == ORIGINALS
        """,
    )
    result = pytester.runpytest_subprocess("--models=sim-a", "-p", "no:randomly")
    result.assert_outcomes(passed=2)
    # only the plain test's request went where the client was built to send it, with the
    # client's own key; the bound one went to sim-a without it
    assert [(r["path"], r["authorization"]) for r in provider.requests] == [
        ("/v1/chat/completions", "Bearer sk-the-projects-own-key-0000")
    ]


@pytest.mark.sdk
def test_an_sdk_first_imported_during_a_test_is_bound_in_that_test(pytester, provider):
    """An installed SDK is wrapped when the suite imports it, not before (an unused one is
    never imported): the test that imports it first is bound like every other."""
    write(pytester)
    pytester.makepyfile(
        """
        import sys

        def test_first():
            assert "openai" not in sys.modules and "anthropic" not in sys.modules
            import openai

            answer = openai.OpenAI().chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
            assert "sim-a" in answer.choices[0].message.content

        def test_later():
            assert "anthropic" not in sys.modules
        """
    )
    result = pytester.runpytest_subprocess(
        "--models=sim-a", "-p", "no:randomly", "-p", "no:anyio", "-p", "no:asyncio"
    )
    result.assert_outcomes(passed=2)
    assert provider.requests == []


@pytest.mark.sdk
def test_replay_refuses_a_module_client_built_before_the_first_test(pytester, provider):
    """openai's module-level client, built at import with the project's real key: under
    --llm-record=replay its requests are answered from recordings or refused, never sent."""
    write(pytester)
    pytester.makeconftest(
        """
        import openai

        openai.chat.completions  # builds openai's module-level client now, before any test
        """
    )
    pytester.makepyfile(
        """
        import openai

        def test_chat():
            openai.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "hi"}])

        def test_embeddings():
            openai.embeddings.create(model="ada-002", input="hi")
        """
    )
    result = pytester.runpytest_subprocess("--models=sim-a", "--llm-record=replay")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines_random(
        [
            "*no recording of this request to sim-a (POST /v1/chat/completions): *",
            f"*no recording of this request to {provider.url.removesuffix('/v1')} (openai's "
            "module-level client), not sent (POST /v1/embeddings)*",
        ]
    )
    assert provider.requests == []


@pytest.mark.sdk
def test_a_simulated_model_refuses_an_auxiliary_request_that_would_leave(pytester, provider):
    write(pytester)
    pytester.makepyfile(
        """
        import openai

        def test_unrouted():
            openai.OpenAI().embeddings.create(model="ada-002", input="hi")

        def test_routed():
            answer = openai.OpenAI().embeddings.create(model="text-embedding-3-small", input="hi")
            assert answer.data[0].embedding
        """
    )
    result = pytester.runpytest_subprocess("--models=sim-a", "--llm-report=r.json")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*sim-a is simulated, so no request leaves this machine: an openai.OpenAI sent "
            f"POST /embeddings to {provider.url.removesuffix('/v1')} (model ada-002) with its "
            "own key; it was not sent. Route its model id to a configured model*"
        ]
    )
    assert provider.requests == []
    report = json.loads((pytester.path / "r.json").read_text())
    assert report["auxiliary"]["embedder"]["requests"] == 1
    assert report["models"]["sim-a"]["requests"] == 0


@pytest.mark.sdk
def test_an_auxiliary_request_goes_where_its_client_sends_it_counted_apart(
    pytester, provider, simulator
):
    """With a real (here: OpenAI-compatible) model under test, an auxiliary request that is
    not routed goes where its client sends it, with its own key, in a row of its own."""
    sim = simulator({"models": {"real-model": {}}})
    write(
        pytester,
        config=f"""
        [tool.llm-matrix.models.real]
        provider = "openai-compatible"
        model = "real-model"
        base_url = "{sim.url}/v1"
        """,
    )
    pytester.makepyfile(
        """
        import openai

        def test_both():
            client = openai.OpenAI()
            client.embeddings.create(model="text-embedding-3-small", input="hi")
            answer = client.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
            assert "real-model" in answer.choices[0].message.content
        """
    )
    result = pytester.runpytest_subprocess("--models=real", "--llm-report=r.json")
    result.assert_outcomes(passed=1)
    assert [(r["path"], r["authorization"]) for r in provider.requests] == [
        ("/v1/embeddings", "Bearer sk-the-projects-own-key-0000")
    ]
    assert json.loads(provider.requests[0]["body"])["model"] == "text-embedding-3-small"
    report = json.loads((pytester.path / "r.json").read_text())
    host = provider.url.split("//")[1].split("/")[0]
    row = report["auxiliary"][f"text-embedding-3-small @ {host}"]
    assert (row["kind"], row["requests"], row["input_tokens"]) == ("direct", 1, 1)
    assert report["models"]["real"]["requests"] == 1
    result.stdout.fnmatch_lines([f"  text-embedding-3-small @ {host}: 1 request, 1 tokens in*"])


@pytest.mark.sdk
def test_auxiliary_requests_are_recorded_and_replayed_with_the_tests_own(pytester, monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    write(pytester)
    pytester.makepyfile(
        """
        import openai

        def test_both():
            client = openai.OpenAI()
            vector = client.embeddings.create(model="text-embedding-3-small", input="hi")
            answer = client.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
            assert vector.data[0].embedding and answer.choices[0].message.content
        """
    )
    pytester.runpytest_subprocess("--models=sim-a", "--llm-record=all").assert_outcomes(passed=1)
    (path,) = (pytester.path / "llm_cassettes/sim-a").glob("*/test_both.json")
    recording = json.loads(path.read_text())
    assert [i["request"]["path"] for i in recording["interactions"]] == [
        "/v1/embeddings",
        "/v1/chat/completions",
    ]
    replay = pytester.runpytest_subprocess(
        "--models=sim-a", "--llm-record=replay", "--llm-report=r.json"
    )
    replay.assert_outcomes(passed=1)
    report = json.loads((pytester.path / "r.json").read_text())
    assert report["models"]["sim-a"]["replayed"] == 1
    assert report["auxiliary"]["embedder"]["replayed"] == 1
    assert report["auxiliary"]["embedder"]["requests"] == 0


def test_a_tests_own_key_is_its_own_business(pytester, monkeypatch):
    """A 401 for a request that carried another key than the model's goes back to the test;
    the model stays available. The model's own key refused still takes it out."""
    monkeypatch.setenv("SIM_KEY", "sk-test-6c1d0e9f7a")
    write(
        pytester,
        config="""
        [tool.llm-matrix.models.keyed]
        provider = "simulator"
        api_key_env = "SIM_KEY"
        simulate = { api_key = "sk-test-6c1d0e9f7a" }
        """,
        ini="",
    )
    pytester.makepyfile(
        """
        def test_1_wrong_key(llm_http_client):
            answer = llm_http_client.post(
                "/chat/completions", headers={"authorization": "Bearer sk-wrong"},
                json={"model": "keyed", "messages": [{"role": "user", "content": "hi"}]})
            assert answer.status_code == 401

        def test_2_then(llm):
            assert llm.complete("hi")
        """
    )
    result = pytester.runpytest("--models=keyed", "-p", "no:randomly", "--llm-report=r.json")
    result.assert_outcomes(passed=2)
    assert (
        json.loads((pytester.path / "r.json").read_text())["models"]["keyed"]["unavailable"] is None
    )
    monkeypatch.setenv("SIM_KEY", "sk-test-00000000")  # the model's own key, refused
    refused = pytester.runpytest("--models=keyed", "-p", "no:randomly")
    refused.assert_outcomes(passed=1, failed=1)
    refused.stdout.fnmatch_lines(["*keyed is unavailable: HTTP 401*"])


def test_x_with_several_models_says_what_it_stops(pytester, write_config):
    write_config()
    pytester.makepyfile("def test_x(llm_model): pass")
    for args, said in (
        (["-x", "--models=sim-fast,sim-weak"], True),
        (["--maxfail=2", "--models=sim-fast,sim-weak"], True),
        (["-x", "--maxfail=0", "--models=sim-fast,sim-weak"], False),
        (["-x", "--models=sim-fast"], False),
    ):
        result = pytester.runpytest(*args)
        lines = [line for line in result.outlines if "counts failures across" in line]
        assert bool(lines) is said, (args, lines)
    result = pytester.runpytest("-x", "--models=sim-fast,sim-weak")
    result.stdout.fnmatch_lines(
        [
            "llm-matrix: -x counts failures across all 2 models: the first failure of any "
            "model stops every model's tests; add --maxfail=0 to run the whole matrix"
        ]
    )


def test_the_route_narrowed_to_some_folders(pytester, monkeypatch):
    """ini llm_sdks_paths, an autouse fixture in a folder's conftest.py, a module's
    pytestmark: only those tests become model tests; the others run once."""
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("TEST_MODELS", raising=False)
    write(pytester, ini='llm_sdks_paths = ["tests/llm", "tests/other/test_*_llm.py"]')
    for folder in ("tests/llm", "tests/plain", "tests/other", "tests/own"):
        (pytester.path / folder).mkdir(parents=True)
    body = "def test_it():\n    pass\n"
    (pytester.path / "tests/llm/test_a.py").write_text(body)
    (pytester.path / "tests/plain/test_b.py").write_text(body)
    (pytester.path / "tests/other/test_c_llm.py").write_text(body)
    (pytester.path / "tests/other/test_d.py").write_text(body)
    (pytester.path / "tests/own/conftest.py").write_text(
        "import pytest\n\n@pytest.fixture(autouse=True)\ndef _bound(llm_sdks):\n    pass\n"
    )
    (pytester.path / "tests/own/test_e.py").write_text(body)
    (pytester.path / "tests/plain/test_f.py").write_text(
        "import pytest\n\npytestmark = pytest.mark.usefixtures('llm_sdks')\n\n" + body
    )
    result = pytester.runpytest("--models=sim-a,sim-b", "--collect-only", "-q")
    ids = sorted(line for line in result.outlines if "::" in line)
    assert ids == [
        "tests/llm/test_a.py::test_it[sim-a]",
        "tests/llm/test_a.py::test_it[sim-b]",
        "tests/other/test_c_llm.py::test_it[sim-a]",
        "tests/other/test_c_llm.py::test_it[sim-b]",
        "tests/other/test_d.py::test_it",
        "tests/own/test_e.py::test_it[sim-a]",
        "tests/own/test_e.py::test_it[sim-b]",
        "tests/plain/test_b.py::test_it",
        "tests/plain/test_f.py::test_it[sim-a]",
        "tests/plain/test_f.py::test_it[sim-b]",
    ]


def test_an_sdk_release_outside_the_supported_range_stops_the_run(pytester, monkeypatch):
    monkeypatch.setattr(sdks, "installed", lambda sdk: "1.40.0" if sdk is sdks.OPENAI else None)
    write(pytester)
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest("--models=sim-a")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: llm_sdks: openai 1.40.0 is not supported by pytest-llm-matrix (supported: "
            "openai>=1.55.3,<4): pip install 'openai>=1.55.3,<4' (or uninstall it, if the "
            "suite does not use it)"
        ]
    )


def test_a_model_free_failure_fails_the_run_whatever_the_models(pytester, monkeypatch):
    """Failures of model-free tests are no model's: an optional model or a pass-rate gate
    does not forgive them, and they are listed once, apart from the models'."""
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("TEST_MODELS", raising=False)
    write(
        pytester,
        config="""
        [tool.llm-matrix.models.sim-a]
        provider = "simulator"
        required = false
        simulate = { wrong = ["(?i)capital"], wrong_reply = "Lyon" }

        [tool.llm-matrix.models.sim-b]
        provider = "simulator"
        required = false
        """,
    )
    pytester.makepyfile(
        """
        import openai

        def test_capital():
            answer = openai.OpenAI(api_key="x").chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "capital of France?"}])
            assert "Lyon" not in answer.choices[0].message.content

        def test_broken_helper():
            assert {}.get("x") == 1
        """
    )
    for extra in ([], ["--llm-min-pass-rate=0.1"]):
        result = pytester.runpytest(
            "--models=sim-a,sim-b", "-p", "no:randomly", "--llm-report=r.json", *extra
        )
        result.assert_outcomes(passed=1, failed=3)
        assert result.ret == pytest.ExitCode.TESTS_FAILED, extra
        result.stdout.fnmatch_lines(
            [
                "model-free: 1 test sent no request to the model under test on any model (2 runs*",
                "model-free tests failed (whatever the model; they fail the run):",
                "  test_a_model_free_failure_fails_the_run_whatever_the_models.py::"
                "test_broken_helper[[]sim-a[]] (and on 1 more model)",
            ]
        )
        report = json.loads((pytester.path / "r.json").read_text())
        assert report["models"]["sim-a"]["outcomes"]["failed"] == 1  # test_capital only
        assert report["models"]["sim-b"]["outcomes"]["failed"] == 0
        assert report["failed_on_some"] == {
            "test_a_model_free_failure_fails_the_run_whatever_the_models.py::test_capital": [
                "sim-a"
            ]
        }
    # the optional model's own failure alone is forgiven, as before
    pytester.makepyfile(
        test_a_model_free_failure_fails_the_run_whatever_the_models="""
        import openai

        def test_capital():
            answer = openai.OpenAI(api_key="x").chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "capital of France?"}])
            assert "Lyon" not in answer.choices[0].message.content
        """
    )
    result = pytester.runpytest("--models=sim-a,sim-b")
    assert result.ret == pytest.ExitCode.OK


def test_a_route_to_a_model_without_its_key_says_so(pytester, monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("JUDGE_KEY", raising=False)
    write(
        pytester,
        config="""
        [tool.llm-matrix.models.sim-a]
        provider = "simulator"

        [tool.llm-matrix.models.judge]
        provider = "openai"
        api_key_env = "JUDGE_KEY"

        [tool.llm-matrix.auxiliary]
        routes = { "gpt-4o" = "judge" }
        """,
    )
    pytester.makepyfile(
        """
        import openai

        def test_grade():
            openai.OpenAI(api_key="x").chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "grade"}])
        """
    )
    result = pytester.runpytest("--models=sim-a")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*auxiliary route 'gpt-4o' -> judge: JUDGE_KEY is not set*"])
