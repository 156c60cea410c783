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
    """Under a simulated model nothing leaves the machine: an auxiliary request to another
    host fails the test, not sent; one to this machine (the suite's own local server) or
    answered in the process (httpx's MockTransport) goes as its client sends it."""
    write(pytester)
    pytester.makepyfile(
        """
        import httpx2
        import openai

        def test_elsewhere():
            client = openai.OpenAI(base_url="https://api.example.invalid/v1")
            client.embeddings.create(model="ada-002", input="hi")

        def test_on_this_machine():
            answer = openai.OpenAI().embeddings.create(model="ada-002", input="hi")
            assert answer.data[0].embedding == [1.0, 0.0]

        def test_mocked():
            def handler(request):
                return httpx2.Response(200, json={"object": "list", "model": "m", "data": [
                    {"object": "embedding", "index": 0, "embedding": [0.5]}],
                    "usage": {"prompt_tokens": 1, "total_tokens": 1}})
            mocked = openai.OpenAI(
                base_url="https://api.example.invalid/v1",
                http_client=httpx2.Client(transport=httpx2.MockTransport(handler)),
            )
            assert mocked.embeddings.create(model="ada-002", input="hi").data[0].embedding == [0.5]

        def test_routed():
            answer = openai.OpenAI().embeddings.create(model="text-embedding-3-small", input="hi")
            assert answer.data[0].embedding
        """
    )
    if sdks.http_library(sdks.OPENAI) == "httpx":  # openai 1.x and 2.x take httpx clients
        path = (
            pytester.path
            / "test_a_simulated_model_refuses_an_auxiliary_request_that_would_leave.py"
        )
        path.write_text(path.read_text().replace("httpx2", "httpx"))
    result = pytester.runpytest_subprocess("--models=sim-a", "--llm-report=r.json")
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*sim-a is simulated, so no request leaves this machine: an openai.OpenAI sent "
            "POST /embeddings to https://api.example.invalid (model ada-002) with its own "
            "key; it was not sent. Route its model id to a configured model*"
        ]
    )
    assert [r["path"] for r in provider.requests] == ["/v1/embeddings"]
    report = json.loads((pytester.path / "r.json").read_text())
    host = provider.url.split("//")[1].split("/")[0]
    assert report["auxiliary"]["embedder"]["requests"] == 1
    assert report["auxiliary"][f"ada-002 @ {host}"]["requests"] == 1
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
    recorded = pytester.runpytest_subprocess("--models=sim-a", "--llm-record=all")
    recorded.assert_outcomes(passed=1)
    recorded.stdout.fnmatch_lines(["--llm-record=all: 2 requests sent and recorded"])
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
    replay.stdout.fnmatch_lines(["--llm-record=replay: 2 requests replayed, none sent"])
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
            "llm-matrix: -x (--maxfail=1) counts failures across all 2 models: the first "
            "failure of any "
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


def real_model(pytester, url: str, ini: str = 'usefixtures = ["llm_sdks"]') -> None:
    """A project whose model under test is a real (OpenAI-compatible) one at ``url``."""
    write(
        pytester,
        config=f"""
        [tool.llm-matrix.models.real]
        provider = "openai-compatible"
        model = "real-model"
        base_url = "{url}"
        api_key_env = "REAL_KEY"
        """,
        ini=ini,
    )


@pytest.mark.sdk
def test_a_bound_request_carries_none_of_the_clients_own_credentials(pytester, monkeypatch):
    """Only the APIs' own headers and query parameters go on to the model under test:
    a gateway's key in a default header, a proxy's credentials, a key in the query stay
    with the client (and out of the recordings)."""
    monkeypatch.setenv("REAL_KEY", "sk-test-of-the-model-7f3a")
    with Provider() as model_server:
        real_model(pytester, model_server.url)
        pytester.makepyfile(
            f"""
            import {sdks.http_library(sdks.OPENAI)} as http
            import openai

            def test_chat():
                client = openai.OpenAI(
                    api_key="sk-the-clients-own-5e1b",
                    default_headers={{"Helicone-Auth": "Bearer sk-helicone-9c2d",
                                     "x-portkey-api-key": "pk-secret-4a4a",
                                     "Proxy-Authorization": "Basic c2VjcmV0"}},
                    default_query={{"key": "query-secret-77e0"}},
                    http_client=http.Client(headers={{"X-Gateway-Key": "gw-secret-31f9"}}),
                )
                answer = client.chat.completions.create(
                    model="gpt-4o", messages=[{{"role": "user", "content": "hi"}}])
                assert answer.choices[0].message.content == "from the real provider"
            """
        )
        result = pytester.runpytest_subprocess("--models=real", "--llm-record=all")
        result.assert_outcomes(passed=1)
    # the key check's listing, with the model's key alone and with no key (this server
    # answers both: its listing proves nothing), and the chat request
    listings = [
        (r["path"], r["authorization"]) for r in model_server.requests if r["method"] == "GET"
    ]
    assert listings == [("/v1/models", "Bearer sk-test-of-the-model-7f3a"), ("/v1/models", None)]
    (sent,) = [r for r in model_server.requests if r["method"] == "POST"]
    assert sent["path"] == "/v1/chat/completions"
    assert sent["authorization"] == "Bearer sk-test-of-the-model-7f3a"
    assert json.loads(sent["body"])["model"] == "real-model"
    text = json.dumps(sent) + "".join(
        path.read_text() for path in pytester.path.rglob("llm_cassettes/**/*.json")
    )
    for secret in ("5e1b", "9c2d", "4a4a", "c2VjcmV0", "77e0", "31f9"):
        assert secret not in text, secret


@pytest.mark.sdk
def test_an_auxiliary_request_keeps_its_clients_transport_auth_hooks_and_errors(
    pytester, provider, simulator, monkeypatch
):
    """Sent where its client sends it, through the client's own HTTP client: its auth flow
    and event hooks run; its connection errors come to the client (which turned retries
    off) as the client's own, once."""
    sim = simulator({"models": {"real-model": {}}})
    real_model(pytester, f"{sim.url}/v1")
    monkeypatch.setenv("REAL_KEY", "sk-test-of-the-model-7f3a")
    http = sdks.http_library(sdks.OPENAI)
    pytester.makepyfile(
        f"""
        import {http} as http
        import openai

        class Signed(http.Auth):
            def auth_flow(self, request):
                request.headers["x-signed"] = "yes"
                yield request

        def hook(request):
            request.headers["x-hooked"] = "yes"

        def test_hooks_and_auth():
            client = openai.OpenAI(http_client=http.Client(
                auth=Signed(), event_hooks={{"request": [hook]}}))
            client.embeddings.create(model="text-embedding-3-small", input="hi")

        def test_unreachable():
            client = openai.OpenAI(base_url="http://127.0.0.1:1/v1", max_retries=0)
            try:
                client.embeddings.create(model="text-embedding-3-small", input="hi")
            except openai.APIConnectionError:
                return
            raise AssertionError("no connection error")
        """
    )
    result = pytester.runpytest_subprocess(
        "--models=real", "--llm-report=r.json", "-p", "no:randomly"
    )
    result.assert_outcomes(passed=2)
    (sent,) = provider.requests
    assert (sent["headers"].get("x-signed"), sent["headers"].get("x-hooked")) == ("yes", "yes")
    rows = json.loads((pytester.path / "r.json").read_text())["auxiliary"]
    assert rows["text-embedding-3-small @ 127.0.0.1:1"]["attempts"] == 1


def test_a_client_given_a_placeholder_key_refuses_outside_model_tests(pytester, provider):
    """openai refuses to build a client without a key; in a model test it gets a
    placeholder (its requests carry the model's key), and outside one it refuses to send,
    as it would have refused to be built: the placeholder never leaves."""
    pytester.monkeypatch = None  # (the provider fixture set the environment)
    import os

    os.environ.pop("OPENAI_API_KEY", None)
    write(pytester, ini='llm_sdks_paths = ["test_llm.py"]')
    pytester.makepyfile(
        app="""
        import functools
        import openai

        @functools.cache
        def client():
            return openai.OpenAI()
        """,
        test_llm="""
        import app

        def test_model():
            answer = app.client().chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
            assert "sim-a" in answer.choices[0].message.content
        """,
        test_unit="""
        import openai
        import pytest

        import app

        def test_after():
            with pytest.raises(openai.OpenAIError, match="OPENAI_API_KEY"):
                app.client().chat.completions.create(
                    model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
        """,
    )
    result = pytester.runpytest_subprocess("--models=sim-a", "-p", "no:randomly", "-n", "1")
    result.assert_outcomes(passed=2)
    assert provider.requests == []


@pytest.mark.sdk
def test_a_generation_call_from_a_fixture_shared_by_every_model_fails(pytester, monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-x")
    write(pytester)
    pytester.makepyfile(
        """
        import openai
        import pytest

        CLIENT = openai.OpenAI()

        @pytest.fixture(scope="module")
        def summary():
            return CLIENT.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "summarize"}])

        @pytest.fixture(scope="module")
        def vectors():  # auxiliary work shared by every model: fine
            return CLIENT.embeddings.create(model="text-embedding-3-small", input="a")

        def test_summary(summary):
            pass

        def test_vectors(vectors):
            assert vectors.data
        """
    )
    alone = pytester.runpytest("--models=sim-a", "-p", "no:randomly")
    alone.assert_outcomes(passed=2)  # one model: nothing shared between models
    result = pytester.runpytest("--models=sim-a,sim-b", "-p", "no:randomly")
    result.assert_outcomes(passed=2, errors=2)
    result.stdout.fnmatch_lines(
        [
            "*sim-a: the module-scoped fixture 'summary' sent POST /chat/completions through an "
            "openai.OpenAI: its value is shared by the tests of every model, which would all "
            "get sim-a's answer. Make it function-scoped, or keep its results per model*"
        ]
    )


def test_model_free_is_for_tests_only_llm_sdks_made_model_tests(pytester, monkeypatch):
    """A test that asks for a model itself counts, request or not; a model-free test is
    left out of the rows whatever its outcome (a skip, an xfail); a skip the plugin made for
    the model (its key missing) is no sign of a model-free test."""
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("UNSET_KEY_FOR_TEST", raising=False)
    write(
        pytester,
        config="""
        [tool.llm-matrix.models.sim-a]
        provider = "simulator"

        [tool.llm-matrix.models.keyless]
        provider = "openai"
        api_key_env = "UNSET_KEY_FOR_TEST"
        """,
    )
    pytester.makepyfile(
        """
        import pytest

        def test_asks_for_the_model(llm_model):
            assert llm_model.name

        def test_asks_for_llm(llm):
            pass

        @pytest.mark.skip(reason="not today")
        def test_skipped():
            pass

        @pytest.mark.xfail(reason="known")
        def test_xfailed():
            assert False

        def test_plain():
            pass
        """
    )
    result = pytester.runpytest("--models=sim-a,keyless", "--llm-report=r.json")
    report = json.loads((pytester.path / "r.json").read_text())
    assert report["model_free"] == [
        "test_model_free_is_for_tests_only_llm_sdks_made_model_tests.py::test_plain",
        "test_model_free_is_for_tests_only_llm_sdks_made_model_tests.py::test_skipped",
        "test_model_free_is_for_tests_only_llm_sdks_made_model_tests.py::test_xfailed",
    ]
    row = report["models"]["sim-a"]["outcomes"]
    assert (row["passed"], row["skipped"], row["xfailed"]) == (2, 0, 0)
    assert report["models"]["keyless"]["outcomes"]["skipped"] == 2  # its key is missing
    assert result.ret == pytest.ExitCode.OK


def test_unittest_tests_and_doctests_run_once_unbound(pytester, monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    write(pytester)
    pytester.makepyfile(
        '''
        import unittest

        def double(x):
            """
            >>> double(2)
            4
            """
            return 2 * x

        class TestCase(unittest.TestCase):
            def test_it(self):
                self.assertEqual(double(1), 2)

        def test_plain():
            assert double(3) == 6
        '''
    )
    result = pytester.runpytest("--models=sim-a,sim-b", "--doctest-modules", "-v")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines_random(
        [
            "*::TestCase::test_it PASSED*",
            "*::test_unittest_tests_and_doctests_run_once_unbound.double PASSED*",
            "*::test_plain[[]sim-a[]] PASSED*",
            "*::test_plain[[]sim-b[]] PASSED*",
        ]
    )


def test_a_wrapper_someone_puts_on_send_stays(pytester, monkeypatch):
    """An instrumentation library wrapping the HTTP client's send during a model test (as
    sentry does) keeps its wrapper: the plugin's own passes everything through outside a
    binding and is never taken off from under another."""
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    write(pytester)
    http = sdks.http_library(sdks.OPENAI)
    pytester.makeconftest(
        f"""
        import {http} as http
        import pytest

        SENT = []

        @pytest.fixture(scope="session", autouse=True)
        def instrument():
            original = http.Client.send

            def send(self, request, **kwargs):
                SENT.append(request.url.path)
                return original(self, request, **kwargs)

            http.Client.send = send
        """
    )
    pytester.makepyfile(
        """
        import openai
        import conftest

        def test_1():
            openai.OpenAI(api_key="x").chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "hi"}])

        def test_2():
            openai.OpenAI(api_key="x").chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
            assert len(conftest.SENT) >= 2
        """
    )
    result = pytester.runpytest_subprocess("--models=sim-a", "-p", "no:randomly")
    result.assert_outcomes(passed=2)


@pytest.mark.sdk
def test_an_absolute_url_is_auxiliary_and_not_sent_in_a_replay(pytester, provider):
    write(pytester)
    http = sdks.http_library(sdks.OPENAI)
    pytester.makepyfile(
        f"""
        import {http} as http
        import openai

        def test_absolute():
            openai.OpenAI().post(  # a URL of its own, not under the client's base URL
                "http://127.0.0.1:9/v1/chat/completions", cast_to=http.Response,
                body={{"model": "gpt-4o", "messages": []}})
        """
    )
    result = pytester.runpytest_subprocess("--models=sim-a", "--llm-record=replay")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*no recording of this request to http://127.0.0.1:9 (an openai.OpenAI), not sent*"]
    )
    assert provider.requests == []


@pytest.mark.parametrize(
    ("paths", "expected"),
    [
        ('["test/llm"]', "ERROR: ini llm_sdks_paths: test/llm does not exist (in *)"),
        ('["tests/*_e3e.py"]', "ERROR: ini llm_sdks_paths: tests/*_e3e.py matches no file*"),
    ],
)
def test_llm_sdks_paths_that_name_nothing_are_usage_errors(pytester, paths, expected):
    write(pytester, ini=f"llm_sdks_paths = {paths}")
    (pytester.path / "tests").mkdir()
    (pytester.path / "tests/test_a_e2e.py").write_text("def test_x():\n    pass\n")
    result = pytester.runpytest("--models=sim-a")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([expected])


def test_a_cloud_provider_client_is_not_bound(pytester, monkeypatch):
    """openai's provider= clients (Bedrock, ...) sign for their cloud: they are not pointed
    at the model under test, nor broken (no placeholder key where they need none); under a
    simulated model their calls would leave the machine and are refused."""
    openai_sdk = pytest.importorskip("openai")
    if not hasattr(openai_sdk, "providers"):
        pytest.skip("this openai release has no provider= clients")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    write(pytester)
    pytester.makepyfile(
        """
        import openai

        def test_bedrock():
            client = openai.OpenAI(provider=openai.providers.bedrock(region="us-east-1",
                                                                       api_key="x"))
            client.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
        """
    )
    result = pytester.runpytest("--models=sim-a")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*sim-a is simulated, so no request leaves this machine: an openai.OpenAI sent "
         "POST /chat/completions to https://bedrock-* (model gpt-4o)*"]
    )  # fmt: skip


def test_a_pytester_run_inside_a_bound_test_gives_the_binding_back(pytester, monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-x")
    write(pytester)
    pytester.makepyfile(
        """
        import openai

        pytest_plugins = ["pytester"]
        INNER = open(__file__.replace(".py", ".toml")).read()

        def ask():
            return openai.OpenAI().chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
            ).choices[0].message.content

        def test_outer(pytester):
            assert "sim-a" in ask()
            pytester.makefile(".toml", pyproject=INNER)
            pytester.makepyfile("import openai\\n\\ndef test_inner():\\n"
                                "    openai.OpenAI().models\\n")
            pytester.runpytest("--models=sim-b").assert_outcomes(passed=1)
            assert "sim-a" in ask()
        """
    )
    config = (pytester.path / "pyproject.toml").read_text()
    (
        pytester.path / "test_a_pytester_run_inside_a_bound_test_gives_the_binding_back.toml"
    ).write_text(config)
    result = pytester.runpytest_subprocess(
        "--models=sim-a", "-p", "no:randomly", "--llm-report=r.json"
    )
    result.assert_outcomes(passed=1)
    report = json.loads((pytester.path / "r.json").read_text())
    assert report["model_free"] == []
    assert report["models"]["sim-a"]["requests"] == 2


@pytest.mark.sdk
def test_a_call_that_names_the_models_own_id_goes_there_too(pytester, monkeypatch):
    """Nothing to rewrite: the request goes as rebuilt (its Host the model's), whether it
    names the model under test's id or a routed alias's."""
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-x")
    write(
        pytester,
        config="""
        [tool.llm-matrix.models.sim-a]
        provider = "simulator"

        [tool.llm-matrix.models.embedder]
        provider = "simulator"
        model = "text-embedding-3-small"

        [tool.llm-matrix.auxiliary]
        routes = { "text-embedding-3-small" = "embedder" }
        """,
    )
    pytester.makepyfile(
        """
        import openai

        def test_own_ids():
            client = openai.OpenAI(max_retries=0)
            answer = client.chat.completions.create(
                model="sim-a", messages=[{"role": "user", "content": "hi"}])
            assert "sim-a" in answer.choices[0].message.content
            vector = client.embeddings.create(model="text-embedding-3-small", input="a")
            assert vector.data[0].embedding
        """
    )
    pytester.runpytest_subprocess("--models=sim-a").assert_outcomes(passed=1)


@pytest.mark.sdk
def test_auxiliary_files_audio_and_errors_replay_as_they_were(pytester, provider):
    """Recorded and replayed offline: a multipart upload (its boundary is new every time),
    a binary answer (every byte value), and a transport error the code falls back on."""
    write(pytester)
    pytester.makepyfile(
        """
        import openai

        def test_aux():
            client = openai.OpenAI(max_retries=0)
            client.files.create(file=("a.txt", b"hello world"), purpose="assistants")
            speech = client.audio.speech.create(model="tts-1", voice="alloy", input="hi")
            assert speech.content == bytes(range(256)) * 4
            down = openai.OpenAI(base_url="http://127.0.0.1:9/v1", max_retries=0)
            try:
                down.embeddings.create(model="local", input="hi")
            except openai.APIConnectionError:
                pass
            else:
                raise AssertionError("no connection error")
        """
    )
    recorded = pytester.runpytest_subprocess("--models=sim-a", "--llm-record=all")
    recorded.assert_outcomes(passed=1)
    recorded.stdout.fnmatch_lines(["--llm-record=all: 3 requests sent and recorded"])
    sent = len(provider.requests)
    replay = pytester.runpytest_subprocess("--models=sim-a", "--llm-record=replay")
    replay.assert_outcomes(passed=1)
    replay.stdout.fnmatch_lines(["--llm-record=replay: 3 requests replayed, none sent"])
    assert len(provider.requests) == sent == 2


@pytest.mark.sdk
def test_a_shared_fixtures_auxiliary_recordings_are_found_by_any_test(pytester, provider):
    write(pytester)
    pytester.makeconftest(
        """
        import openai
        import pytest

        @pytest.fixture(scope="session")
        def index():
            return openai.OpenAI().embeddings.create(model="ada-002", input="corpus")
        """
    )
    pytester.makepyfile(
        """
        def test_a(index):
            assert index.data

        def test_b(index):
            assert index.data
        """
    )
    pytester.runpytest_subprocess("--models=sim-a", "--llm-record=all").assert_outcomes(passed=2)
    assert (pytester.path / "llm_cassettes/_shared-fixtures/conftest/index.json").is_file()
    only_b = pytester.runpytest_subprocess("--models=sim-a", "--llm-record=replay", "-k", "test_b")
    only_b.assert_outcomes(passed=1)
    assert len(provider.requests) == 1  # the recording run's, once


def test_a_pytester_run_that_imports_an_sdk_first_leaves_it_bound_after(pytester, monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-x")
    write(
        pytester,
        ini='llm_sdks_paths = ["test_a_pytester_run_that_imports_an_sdk_first_*.py"]',
    )
    pytester.makepyfile(
        """
        pytest_plugins = ["pytester"]

        def test_1_inline(pytester):
            pytester.makepyfile("import openai\\n\\ndef test_x():\\n    pass\\n")
            pytester.runpytest_inprocess("-p", "no:llm_matrix").assert_outcomes(passed=1)

        def test_2_bound():
            import openai

            answer = openai.OpenAI().chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
            assert "sim-a" in answer.choices[0].message.content
        """
    )
    result = pytester.runpytest_subprocess("--models=sim-a", "-p", "no:randomly")
    result.assert_outcomes(passed=2)


def test_a_unittest_test_that_asks_for_llm_says_it_cannot(pytester, monkeypatch):
    write(pytester, ini="")
    pytester.makepyfile(
        """
        import unittest
        import pytest

        class TestCase(unittest.TestCase):
            @pytest.fixture(autouse=True)
            def _llm(self, llm):
                self.llm = llm

            def test_it(self):
                pass
        """
    )
    result = pytester.runpytest("--models=sim-a")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*llm_model has no model; it is parametrized per model*"])
