"""The messages quoted in docs/troubleshooting.md are the plugin's own: each block is read
with :func:`tests.snippets.snippet` and compared with the output of real pytest sessions
(configs written here, the real simulator) by :func:`tests.snippets.assert_shows`, each
line of a block a message of its own.

Usage and collection errors stop before any test runs, so those sessions run in-process
(as tests/plugin/test_bad_input.py does); sessions whose tests fail on a timeout run in a
subprocess (pytest-timeout's signal, as tests/calls/test_transport.py does).
"""

from __future__ import annotations

import json
import socket
import sys
import textwrap
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from pytest_llm_matrix.adoption import sdks
from tests.snippets import assert_shows, snippet

#: Options of every inner run: no plugin that reorders the tests.
QUIET = ("-p", "no:randomly")
PYTEST_INI = '\n[tool.pytest.ini_options]\nasyncio_default_fixture_loop_scope = "function"\n'
MODEL_TEST = "def test_m(llm_model):\n    pass\n"


def lines(result: pytest.RunResult) -> list[str]:
    return result.outlines + result.errlines


def write(pytester: pytest.Pytester, pyproject: str, ini: str = "") -> None:
    """pyproject.toml: ``pyproject`` (the llm-matrix config), then pytest's settings."""
    (pytester.path / "pyproject.toml").write_text(textwrap.dedent(pyproject) + PYTEST_INI + ini)


def usage_error(pytester: pytest.Pytester, pyproject: str, *args: str, ini: str = "") -> list[str]:
    """The output of an in-process session that must stop with a usage error (exit 4)."""
    write(pytester, pyproject, ini)
    result = pytester.runpytest(*QUIET, *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR, lines(result)
    return result.errlines


@pytest.fixture(autouse=True)
def _environment(monkeypatch):
    for name in ("TEST_MODELS", "OPENAI_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_API_KEY"):
        monkeypatch.delenv(name, raising=False)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- the run stops before any test (exit 4) -----------------------------------------

MINI = """
[tool.llm-matrix.models.gpt-4o-mini]
provider = "openai"
api_key_env = "OPENAI_API_KEY"
"""
SIMS = """
[tool.llm-matrix.models.sim-fast]
provider = "simulator"
[tool.llm-matrix.models.sim-slow]
provider = "simulator"
"""


def test_a_mistake_in_the_config(pytester):
    pytester.makepyfile(MODEL_TEST)
    output = [
        *usage_error(pytester, MINI + "timout = 60\n"),
        *usage_error(pytester, MINI + "timeout = nan\n"),
        *usage_error(pytester, '[tool.llm-matrix]\ndefaults = ["gpt-4o-mini"]\n' + MINI),
        *usage_error(pytester, '[tool.llm-matrix.models.local]\nprovider = "openai-compatible"\n'),
    ]
    assert_shows(snippet("trouble-config"), output, apart=True)


def test_a_value_out_of_range(pytester):
    pytester.makepyfile(MODEL_TEST)
    output = [
        *usage_error(pytester, SIMS, "--llm-timeout=inf"),
        *usage_error(pytester, SIMS, ini='llm_repeat = "5000"\n'),
        *usage_error(pytester, SIMS, "--llm-min-pass-rate=80"),
    ]
    assert_shows(snippet("trouble-range"), output, apart=True)


def test_a_name_that_is_no_model(pytester):
    pytester.makepyfile(MODEL_TEST)
    output = [
        *usage_error(pytester, SIMS, "--models=sim-fats"),
        *usage_error(pytester, SIMS, "--models=-sim-fast,-sim-slow"),
        *usage_error(pytester, "", "--models=sim-fast"),
    ]
    assert_shows(snippet("trouble-selection"), output, apart=True)


def test_a_missing_key_in_strict_mode(pytester):
    pytester.makepyfile(MODEL_TEST)
    output = usage_error(pytester, MINI, "--llm-strict", "--models=gpt-4o-mini")
    assert_shows(snippet("trouble-strict"), output, apart=True)


def test_a_key_that_cannot_go_in_a_header(pytester, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-abc\ndef-0123456789")
    pytester.makepyfile(MODEL_TEST)
    output = usage_error(pytester, MINI, "--models=gpt-4o-mini")
    assert_shows(snippet("trouble-key-header"), output, apart=True)
    assert "0123456789" not in "\n".join(output)


def test_price_as_names_no_listed_model(pytester):
    pytester.makepyfile(MODEL_TEST)
    gateway = """
    [tool.llm-matrix.models.gw-sonnet]
    provider = "openai-compatible"
    base_url = "http://127.0.0.1:9/v1"
    price_as = "claude-sonet-4"
    """
    output = usage_error(pytester, gateway, "--models=gw-sonnet")
    assert_shows(snippet("trouble-price-as"), output, apart=True)


def test_two_model_tests_with_one_id(pytester):
    pytester.makepyfile(
        test_x="""
        import pytest

        @pytest.mark.parametrize("p", ["b-c", "c"])
        def test_y(llm, p):
            pass
        """
    )
    models = '[tool.llm-matrix.models.a]\nprovider = "simulator"\n'
    models += '[tool.llm-matrix.models.a-b]\nprovider = "simulator"\n'
    output = usage_error(pytester, models, "--models=all")
    assert_shows(snippet("trouble-duplicate-id"), output, apart=True)


def test_an_sdk_release_the_binding_does_not_support(pytester, monkeypatch):
    # openai 0.28.1 cannot be installed beside the suite's own openai: the check is told
    # that it is the release installed (as tests/adoption/test_binding.py does)
    monkeypatch.setattr(sdks, "installed", lambda sdk: "0.28.1" if sdk is sdks.OPENAI else None)
    pytester.makepyfile("def test_x():\n    pass\n")
    output = usage_error(pytester, SIMS, "--models=sim-fast", ini='usefixtures = ["llm_sdks"]\n')
    assert_shows(snippet("trouble-sdk-release"), output, apart=True)


def test_a_report_baseline_or_coordinator_that_cannot_be_used(pytester, monkeypatch, tmp_path):
    pytester.makepyfile(MODEL_TEST)
    folder = tmp_path / "out"
    folder.mkdir()
    port = free_port()
    output = [
        *usage_error(pytester, SIMS, f"--llm-report={folder}"),
        *usage_error(pytester, SIMS, "--llm-html=report.json", "--llm-report=report.json"),
        *usage_error(pytester, SIMS, "--llm-baseline=last"),
        *usage_error(pytester, SIMS, "--llm-fail-on-regression"),
    ]
    with monkeypatch.context() as without_redis:  # as if it were not installed
        without_redis.setitem(sys.modules, "redis", None)
        output += usage_error(pytester, SIMS, "--llm-coordinator=redis://redis-host:6379/0")
    output += usage_error(pytester, SIMS, f"--llm-coordinator=redis://127.0.0.1:{port}/0")
    # the doc's folders are the test's temporary ones, its Redis host a closed port here
    substitutions = {
        str(folder): "/tmp/out",
        str(pytester.path): "/repo",
        f"127.0.0.1:{port}": "redis-host:6379",
    }
    assert_shows(snippet("trouble-outputs"), output, substitutions, apart=True)


def test_ini_llm_sdks_paths_matches_nothing(pytester):
    pytester.makepyfile(MODEL_TEST)
    output = [
        *usage_error(pytester, SIMS, ini='llm_sdks_paths = ["tests/lm"]\n'),
        *usage_error(pytester, SIMS, ini='llm_sdks_paths = ["tests/*_llm.py"]\n'),
    ]
    # the doc's project is at /repo
    assert_shows(snippet("trouble-sdks-paths"), output, {str(pytester.path): "/repo"}, apart=True)


def test_the_simulators_config(pytester):
    pytester.makepyfile(MODEL_TEST)
    knobs = SIMS + "[tool.llm-matrix.simulator.models.sim-fast]\nlatency = 1\n"
    twins = """
    [tool.llm-matrix.models.a]
    provider = "simulator"
    model = "sim"
    [tool.llm-matrix.models.b]
    provider = "simulator"
    model = "sim"
    simulate = { latency = 0.5 }
    """
    output = [*usage_error(pytester, knobs), *usage_error(pytester, twins, "--models=all")]
    assert_shows(snippet("trouble-simulator"), output, apart=True)


# --- a collection error (exit 2) -------------------------------------------------------


def collection_error(pytester: pytest.Pytester, pyproject: str, *args: str) -> list[str]:
    write(pytester, pyproject)
    result = pytester.runpytest(*QUIET, *args)
    assert result.ret == pytest.ExitCode.INTERRUPTED, lines(result)
    return lines(result)


def test_a_collection_error(pytester):
    marked = "import pytest\n\n@pytest.mark.llm({})\ndef test_x(llm_model):\n    pass\n"
    gpt4 = '[tool.llm-matrix.models.gpt-4]\nprovider = "simulator"\n'
    pytester.makepyfile(test_a="def test_x(llm_model):\n    pass\n")
    output = collection_error(pytester, "")
    (pytester.path / "test_a.py").unlink()
    tests = pytester.mkdir("tests")
    cases = [
        ('model="gpt-4"', ()),
        ('models=["gpt4"]', ()),
        ("repeat=5", ("--reruns=2",)),
    ]
    for arguments, args in cases:
        (tests / "test_a.py").write_text(marked.format(arguments))
        output += collection_error(pytester, gpt4, *args)
    assert_shows(snippet("trouble-collection"), output, apart=True)


# --- a test fails with a message from the plugin ----------------------------------------


def failures(pytester: pytest.Pytester, *args: str, subprocess: bool = False) -> list[str]:
    """The output of a session whose tests fail (exit 1)."""
    run = pytester.runpytest_subprocess if subprocess else pytester.runpytest
    result = run(*QUIET, *args)
    assert result.ret == pytest.ExitCode.TESTS_FAILED, lines(result)
    return lines(result)


TIMEOUTS = """
[tool.llm-matrix.models.gpt-4o-mini]
provider = "simulator"
timeout = 1
simulate = { faults = [
    { kind = "429", every = 1, match = "busy", retry_after_ms = 10 },
    { kind = "429", every = 1, match = "far", retry_after = 120 },
] }

[tool.llm-matrix.models.stuck]
provider = "simulator"
timeout = 1
simulate = { faults = [{ kind = "hang", every = 1 }] }
"""

TIMEOUT_TESTS = """
import time

import pytest

@pytest.mark.llm(models=["gpt-4o-mini"])
def test_busy(llm):
    llm.complete("busy")

@pytest.mark.llm(models=["gpt-4o-mini"])
def test_far(llm):
    llm.complete("far")

@pytest.mark.llm(models=["stuck"])
def test_stuck(llm):
    llm.complete("hi")

@pytest.mark.llm(models=["gpt-4o-mini"])
def test_slow(llm_model):
    time.sleep(3)
"""


def test_rate_limits_retries_and_timeouts(pytester):
    documented = snippet("trouble-rate-limits")
    first, deadline, *rest = documented.splitlines()
    write(pytester, TIMEOUTS)
    pytester.makepyfile(TIMEOUT_TESTS)
    output = failures(pytester, "--models=all", "--llm-max-wait=60", subprocess=True)
    # the doc's model has a 60 s timeout; these tests, 1 s, so as not to wait a minute
    # (and pytest shows a failure with a traceback after its "E Failed: ")
    shown = {
        "this test's 1s timeout": "this test's 60s timeout",
        "after 1s": "after 60s",
        "E Failed: ": "",
    }
    assert_shows("\n".join([first, *rest]), output, shown, apart=True)
    # a retry-after beyond what is left of the test's time: a model of 12 s, whose third
    # answer asks for 30 s
    write(
        pytester,
        """
        [tool.llm-matrix.models.gpt-4o-mini]
        provider = "simulator"
        timeout = 12
        simulate = { faults = [
            { kind = "429", first = 2, retry_after_ms = 10 },
            { kind = "429", every = 1, retry_after = 30 },
        ] }
        """,
    )
    pytester.makepyfile("def test_deadline(llm):\n    llm.complete('hi')\n")
    assert_shows(deadline, failures(pytester, "--llm-max-wait=60"), apart=True)


class _Provider(BaseHTTPRequestHandler):
    """OpenAI's answers to a parameter the model does not take and to a wrong key."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # no listing of models: the key check says nothing
        self._send(404, {"error": {"message": "Not found", "type": "invalid_request_error"}})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        if "max_tokens" in body:
            message = (
                "Unsupported parameter: 'max_tokens' is not supported with this model. "
                "Use 'max_completion_tokens' instead."
            )
            error = {"message": message, "type": "invalid_request_error", "param": "max_tokens"}
            self._send(400, {"error": error | {"code": "unsupported_parameter"}})
        else:
            key = self.headers["authorization"].removeprefix("Bearer ")
            message = (
                f"Incorrect API key provided: {key}. You can find your API key at "
                "https://platform.openai.com/account/api-keys."
            )
            error = {"message": message, "type": "invalid_request_error", "param": None}
            self._send(401, {"error": error | {"code": "invalid_api_key"}})

    def _send(self, status: int, answer: dict) -> None:
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def provider() -> Iterator[str]:
    """A stand-in for api.openai.com on loopback, answering as above; its URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Provider)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_a_models_error_answer(pytester, monkeypatch, provider):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-wrong-0123456789")
    write(
        pytester,
        f"""
        [tool.llm-matrix.models.gpt-4o-mini]
        provider = "openai-compatible"
        base_url = "{provider}"
        api_key_env = "OPENAI_API_KEY"
        """,
    )
    pytester.makepyfile(
        """
        def test_params(llm):
            llm.complete("hi", max_tokens=5)

        def test_key(llm):
            llm.complete("hi")

        def test_after(llm):
            llm.complete("hi")
        """
    )
    output = failures(pytester, "-rs")
    # pytest shows the exception with its module, after its "E"
    shown = {"E pytest_llm_matrix.calls.client.LLMError: ": "LLMError: "}
    assert_shows(snippet("trouble-error-answer"), output, shown, apart=True)
    assert "0123456789" not in "\n".join(output)


def test_streams(pytester):
    write(
        pytester,
        """
        [tool.llm-matrix.models.gpt-4o-mini]
        provider = "simulator"
        simulate = { faults = [
            { kind = "truncate", every = 1, match = "cut" },
            { kind = "not_stream", every = 1, match = "json", body = "json" },
        ] }
        """,
    )
    pytester.makepyfile(
        """
        def test_cut(llm):
            list(llm.stream("cut"))

        def test_json(llm):
            list(llm.stream("json"))
        """
    )
    assert_shows(snippet("trouble-streams"), failures(pytester), apart=True)


BOT = """
def test_refund(openai_client, llm_model):
    openai_client.chat.completions.create(model=llm_model.model, messages=[
        {"role": "system", "content": "You are a support bot."},
        {"role": "user", "content": "PROMPT"},
    ])
"""


#: A client kept from a test and used after the tests, when no test is running.
AFTER_THE_TESTS = """
import pytest

KEPT = []

@pytest.fixture
def kept(llm):
    KEPT.append(llm)

@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session):
    try:
        if KEPT:
            KEPT[0].complete("hi")
    except pytest.fail.Exception as failure:
        print(f"\\n{failure}")
"""


def test_record_and_replay(pytester):
    write(pytester, '[tool.llm-matrix.models.gpt-4o-mini]\nprovider = "simulator"\n')
    tests = pytester.mkdir("tests")
    (tests / "conftest.py").write_text(AFTER_THE_TESTS)
    (tests / "test_keep.py").write_text("def test_keep(kept):\n    pass\n")
    bot = tests / "test_bot.py"
    bot.write_text(BOT.replace("PROMPT", "I want my money back"))
    pytester.runpytest(*QUIET, "--llm-record=new", "tests/test_bot.py").assert_outcomes(passed=1)
    bot.write_text(BOT.replace("PROMPT", "I want a refund"))
    output = failures(pytester, "--llm-record=replay")
    # a file where the recording's folder would be
    folder = tests / "llm_cassettes/gpt-4o-mini/test_bot"
    for recording in folder.iterdir():
        recording.unlink()
    folder.rmdir()
    folder.write_text("")
    output += failures(pytester, "--llm-record=all", "tests/test_bot.py")
    assert_shows(snippet("trouble-replay"), output, apart=True)


JUDGE = """
[tool.llm-matrix.models.gpt-4o-mini]
provider = "simulator"

[tool.llm-matrix.models.gpt-4o]
provider = "simulator"
simulate = { rules = [{ system = "grade", reply = "Sure! I think it passes." }] }
"""


def test_the_judge(pytester):
    pytester.makepyfile(
        """
        def test_graded(llm, llm_judge):
            llm_judge.grade(llm.complete("capital of France?"), "The answer names Paris.")
        """
    )
    write(pytester, JUDGE)
    unjudged = pytester.runpytest(*QUIET, "--models=gpt-4o-mini")
    unjudged.assert_outcomes(errors=1)
    output = lines(unjudged) + failures(pytester, "--models=gpt-4o-mini", "--llm-judge=gpt-4o")
    assert_shows(snippet("trouble-judge"), output, apart=True)


def test_fixtures_and_scopes(pytester):
    write(
        pytester,
        SIMS.replace("sim-fast", "sim-a").replace("sim-slow", "sim-b"),
        ini='usefixtures = ["llm_sdks"]\n',
    )
    pytester.makepyfile(
        test_scope="""
        import pytest

        @pytest.fixture(scope="module")
        def shared(llm_model):
            return llm_model

        def test_uses_shared(shared):
            pass
        """,
        test_summaries="""
        import openai
        import pytest

        @pytest.fixture(scope="module")
        def summaries():
            return openai.OpenAI().chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "summarize"}])

        def test_summaries(summaries):
            pass
        """,
    )
    tests = pytester.mkdir("tests")
    (tests / "test_x.py").write_text("def test_y(llm_snapshot):\n    pass\n")
    output = failures(pytester, "--models=all")
    output += failures(pytester, "--models=sim-a", "-p", "no:syrupy", "tests")
    assert_shows(snippet("trouble-scopes"), output, apart=True)


def test_suites_whose_sdk_clients_are_bound(pytester, monkeypatch):
    write(
        pytester,
        """
        [tool.llm-matrix.models.sim-a]
        provider = "simulator"
        api = "anthropic"

        [tool.llm-matrix.models.judge]
        provider = "openai"
        api_key_env = "OPENAI_API_KEY"

        [tool.llm-matrix.auxiliary]
        routes = { "gpt-4o" = "judge" }
        """,
        ini='usefixtures = ["llm_sdks"]\n',
    )
    pytester.makepyfile(
        """
        import openai

        def test_chat():
            openai.OpenAI(api_key="x").chat.completions.create(
                model="claude", messages=[{"role": "user", "content": "hi"}])

        def test_embeddings():
            openai.OpenAI(api_key="x").embeddings.create(
                model="text-embedding-3-small", input="hi")

        def test_grade():
            openai.OpenAI(api_key="x").chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "grade"}])
        """
    )
    output = failures(pytester, "--models=sim-a")
    assert_shows(snippet("trouble-bound"), output, apart=True)


def test_a_crashed_worker(pytester):
    write(pytester, '[tool.llm-matrix.models.gpt-4o]\nprovider = "simulator"\n')
    pytester.makepyfile(test_x="import os\n\ndef test_y(llm):\n    os._exit(1)\n")
    output = failures(pytester, "-n", "1", subprocess=True)
    assert_shows(snippet("trouble-crash"), output, {"'gw0'": "'gw2'"}, apart=True)


def test_a_hard_coded_model_id(pytester):
    config = '[tool.llm-matrix.models.sim-mini]\nprovider = "simulator"\n'
    write(pytester, config)
    pytester.makepyfile(
        """
        def test_x(openai_client):
            openai_client.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
        """
    )
    result = pytester.runpytest(*QUIET)
    result.assert_outcomes(failed=1)
    assert_shows(snippet("trouble-model-id"), lines(result), apart=True)
