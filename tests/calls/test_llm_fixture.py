"""The ``llm`` fixture against the real simulator over loopback HTTP, both wire formats."""

from __future__ import annotations

import json

import pytest

CONFIG = """
[tool.llm-matrix.models.sim-openai]
provider = "simulator"
params = { temperature = 0 }

[tool.llm-matrix.models.sim-anthropic]
provider = "simulator"
api = "anthropic"
params = { max_tokens = 64 }

[tool.llm-matrix.models.sim-cut]
provider = "simulator"
simulate = { faults = [{ kind = "truncate", every = 1 }] }

[tool.llm-matrix.models.sim-locked]
provider = "simulator"
api_key_env = "LLM_MATRIX_TEST_SIM_KEY"
simulate = { api_key = "right-key" }

[tool.llm-matrix.simulator]
default_reply = "default from {model}"
rules = [
  { match = "(?i)capital of france", reply = "Paris" },
  { match = "(?i)tell a story", reply = "Once upon a time there was a test that passed." },
]
"""


@pytest.fixture
def project(pytester: pytest.Pytester, write_config):
    write_config(CONFIG)
    return pytester


def test_complete_chat_and_stream_in_both_formats(project):
    project.makepyfile(
        """
        import pytest

        pytestmark = pytest.mark.llm(models=["sim-openai", "sim-anthropic"])

        def test_complete(llm):
            assert llm.complete("What is the capital of France?") == "Paris"

        def test_default_reply(llm, llm_model):
            assert llm.complete("Hello") == f"default from {llm_model.model}"

        def test_chat_reports_usage(llm):
            result = llm.chat(
                [{"role": "system", "content": "Be brief."},
                 {"role": "user", "content": "capital of france?"}]
            )
            assert result.text == "Paris"
            assert str(result) == "Paris"
            assert result.usage.input_tokens > 0
            assert result.usage.output_tokens > 0
            assert result.finish_reason in ("stop", "end_turn")

        def test_stream(llm):
            pieces = list(llm.stream("Tell a story", system="You are terse."))
            assert len(pieces) > 1
            assert "".join(pieces) == "Once upon a time there was a test that passed."

        @pytest.mark.asyncio
        async def test_async(llm):
            assert await llm.acomplete("capital of France") == "Paris"
            result = await llm.achat("capital of France")
            assert result.usage.output_tokens > 0
            pieces = [p async for p in llm.astream("tell a story")]
            assert "".join(pieces).startswith("Once upon a time")
        """
    )
    result = project.runpytest("--models=all", "-v")
    result.assert_outcomes(passed=10)


def test_params_are_sent_and_calls_override_them(project):
    project.makepyfile(
        """
        def test_params(llm):
            llm.complete("hi", max_tokens=3)
            assert llm.last.raw["usage"]["completion_tokens"] <= 3
            assert llm.last.finish_reason == "length"
        """
    )
    project.runpytest("--models=sim-openai").assert_outcomes(passed=1)


def test_cut_stream_fails_with_the_model_name(project):
    project.makepyfile(
        """
        def test_cut(llm):
            list(llm.stream("Tell a story"))
        """
    )
    result = project.runpytest("--models=sim-cut")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["stream from sim-cut ended before completion"])


def test_wrong_key_is_a_clear_failure_without_the_key(project, monkeypatch):
    monkeypatch.setenv("LLM_MATRIX_TEST_SIM_KEY", "sk-wrong-secret-value")
    project.makepyfile(
        """
        def test_locked(llm):
            llm.complete("hi")
        """
    )
    result = project.runpytest("--models=sim-locked")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["sim-locked is unavailable: HTTP 401 invalid_api_key: *; its remaining tests are skipped"]
    )
    assert "sk-wrong-secret-value" not in result.stdout.str()


def test_right_key_passes(project, monkeypatch):
    monkeypatch.setenv("LLM_MATRIX_TEST_SIM_KEY", "right-key")
    project.makepyfile("def test_locked(llm):\n    assert llm.complete('hi')\n")
    project.runpytest("--models=sim-locked").assert_outcomes(passed=1)


def test_unreachable_server_names_the_model(pytester, write_config):
    write_config(
        '[tool.llm-matrix.models.gone]\nprovider = "openai-compatible"\n'
        'base_url = "http://127.0.0.1:9/v1"\ntimeout = 2\n'
    )
    pytester.makepyfile("def test_gone(llm):\n    llm.complete('hi')\n")
    result = pytester.runpytest("--llm-max-attempts=2")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["gone: ConnectError: *: gave up after 2 attempts"])


def test_tests_share_a_process_pool_of_connections_but_not_with_a_forked_child(project):
    """A test does not pay a new connection per test; a forked child gets its own."""
    project.makepyfile(
        """
        import json, os
        import pytest

        @pytest.mark.parametrize("n", range(3))
        def test_pooled(llm, llm_http_client, n):
            assert llm.complete("hi")
            assert llm_http_client.post("/chat/completions", json={
                "model": llm.model.model, "messages": [{"role": "user", "content": "hi"}],
            }).status_code == 200
            pools = {id(llm.http._transport.inner), id(llm_http_client._transport.inner)}
            with open("pools.txt", "a") as fh:
                fh.write(json.dumps(sorted(pools)) + "\\n")

        def test_forked_child(llm):
            assert llm.complete("hi")
            parent = id(llm.http._transport.inner)
            llm.close()
            reader, writer = os.pipe()
            pid = os.fork()
            if pid == 0:  # the child's requests do not touch its parent's sockets
                ok = llm.complete("hi") and id(llm.http._transport.inner) != parent
                os.write(writer, b"1" if ok else b"0")
                os._exit(0)
            os.waitpid(pid, 0)
            assert os.read(reader, 1) == b"1"
            assert llm.complete("hi")
        """
    )
    result = project.runpytest_subprocess("-p", "no:randomly", "--models=sim-openai")
    result.assert_outcomes(passed=4)
    rows = (project.path / "pools.txt").read_text().splitlines()
    assert len(rows) == 3
    assert len(set(rows)) == 1  # one pool, for every test
    assert len(json.loads(rows[0])) == 1  # the llm client and the httpx2 client share it


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["n0", "n2"])
def test_the_readme_pattern_shares_work_per_model_across_a_module(
    pytester, write_config, simulator, workers
):
    """The recipe for module-wide work in docs/writing-tests.md: a module-scoped dict keyed
    by alias, filled from a function-scoped fixture. Each model's work is done once per
    module (per worker); a module-scoped fixture using ``llm`` directly is pytest's
    ScopeMismatch."""
    sim = simulator({"default_reply": "short"})
    write_config(
        "".join(
            f'[tool.llm-matrix.models.{alias}]\nprovider = "simulator"\nbase_url = "{sim.url}/v1"\n'
            for alias in ("a", "b")
        )
    )
    pytester.makepyfile(
        test_shared="""
        import pytest

        DOCS = ["one", "two", "three"]

        @pytest.fixture(scope="module")
        def summaries_by_model():
            return {}

        @pytest.fixture
        def summaries(summaries_by_model, llm_model, llm):
            if llm_model.name not in summaries_by_model:
                summaries_by_model[llm_model.name] = [
                    llm.complete(f"Summarize: {doc} {llm_model.name}") for doc in DOCS
                ]
            return summaries_by_model[llm_model.name]

        @pytest.mark.parametrize("n", range(4))
        def test_summaries_are_short(summaries, n):
            assert summaries == ["short"] * 3
        """,
        test_mismatch="""
        import pytest

        @pytest.fixture(scope="module")
        def shared(llm):
            return llm

        def test_uses_shared(shared):
            pass
        """,
    )
    result = pytester.runpytest_subprocess("--models=all", "-p", "no:randomly", *workers)
    result.assert_outcomes(passed=8, errors=2)
    result.stdout.fnmatch_lines(["*ScopeMismatch*function scoped fixture llm*"])
    requests = sim.stats()["requests"]
    if not workers:
        assert requests == {"a": 3, "b": 3}, requests
    else:  # once per model and worker that ran some of its tests
        assert set(requests) == {"a", "b"}
        assert all(n in (3, 6) for n in requests.values()), requests


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["n0", "n2"])
def test_code_under_test_can_tell_its_model(pytester, write_config, workers, monkeypatch):
    """LLM_MATRIX_MODEL and pytest_llm_matrix.current_model() name the model under test for
    the length of a model test, and only then: a plain test sees what was there before."""
    monkeypatch.setenv("LLM_MATRIX_MODEL", "from-the-shell")
    write_config()
    pytester.makepyfile(
        labeller="""
        import os
        import pytest_llm_matrix

        def label():
            return os.environ.get("LLM_MATRIX_MODEL"), pytest_llm_matrix.current_model()
        """,
        test_labels="""
        from labeller import label

        def test_model(llm_model):
            assert label() == (llm_model.name, llm_model.name)

        def test_plain():
            assert label() == ("from-the-shell", None)
        """,
    )
    pytester.makeconftest(
        """
        import os

        def pytest_sessionfinish(session):  # after every test: the variable is restored
            with open(f"env-{os.getpid()}.txt", "w") as fh:
                fh.write(os.environ.get("LLM_MATRIX_MODEL", "<unset>"))
        """
    )
    result = pytester.runpytest_subprocess("--models=sims", "-p", "no:randomly", *workers)
    result.assert_outcomes(passed=3)
    seen = {p.read_text() for p in pytester.path.glob("env-*.txt")}
    assert seen == {"from-the-shell"}
