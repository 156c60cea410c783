"""The HTTP layer, end to end: real pytest sessions, real workers, the real simulator."""

from __future__ import annotations

import json
import textwrap
import time

import pytest

from ..conftest import SPEND_RECORDER, read_spend

WORKERS = pytest.mark.parametrize("workers", [["-n", "0"], ["-n", "3"]], ids=["n0", "n3"])


def add_ini(pytester, lines: str) -> None:
    """Add ``lines`` to the project's ``[tool.pytest.ini_options]`` (its last table)."""
    path = pytester.path / "pyproject.toml"
    path.write_text(path.read_text().rstrip("\n") + "\n" + lines)


def project(pytester, write_config, sim, models: str, extra: str = "") -> None:
    """A project whose simulator models point at ``sim`` (started by the test)."""
    write_config(models.replace("{url}", sim.url) + extra)
    pytester.makeconftest(SPEND_RECORDER)


@WORKERS
def test_429_twice_then_200_is_retried_after_retry_after(
    pytester, write_config, simulator, workers
):
    sim = simulator(
        {
            "models": {
                "flaky": {"faults": [{"kind": "429", "first": 2, "retry_after": 1}]},
            }
        }
    )
    project(
        pytester,
        write_config,
        sim,
        '[tool.llm-matrix.models.flaky]\nprovider = "simulator"\nbase_url = "{url}/v1"\n',
    )
    pytester.makepyfile("def test_answer(llm):\n    assert llm.complete('hi')\n")
    started = time.monotonic()
    result = pytester.runpytest_subprocess(*workers)
    elapsed = time.monotonic() - started
    result.assert_outcomes(passed=1)
    spend = read_spend(pytester)["test_answer[flaky]"]
    assert (spend["requests"], spend["attempts"], spend["retries"]) == (1, 3, 2)
    assert spend["rate_limited"] == 2
    assert elapsed >= 2.0
    assert sim.stats()["statuses"] == {"429": 2, "200": 1}


CAPPED = """
[tool.llm-matrix]
max_concurrency = 3
[tool.llm-matrix.models.slow-a]
provider = "simulator"
base_url = "{url}/v1"
[tool.llm-matrix.models.slow-b]
provider = "simulator"
base_url = "{url}/v1"
max_concurrency = 2
"""

MANY_REQUESTS = """
import pytest

@pytest.mark.parametrize("n", range(30))
def test_request(llm, n):
    assert llm.complete(f"request {n}") == "ok"
"""


def test_global_cap_holds_across_six_workers(pytester, write_config, simulator):
    latency = {"latency": 0.1}
    sim = simulator({"default_reply": "ok", "models": {"slow-a": latency, "slow-b": latency}})
    project(pytester, write_config, sim, CAPPED)
    pytester.makepyfile(MANY_REQUESTS)
    result = pytester.runpytest_subprocess("-n", "6", "--models=all")
    result.assert_outcomes(passed=60)
    stats = sim.stats()
    assert sum(stats["requests"].values()) == 60
    assert stats["max_in_flight"] == 3  # never more, and the cap is used, not serialized
    assert stats["max_in_flight_by_model"]["slow-b"] <= 2


@WORKERS
def test_per_model_cap(pytester, write_config, simulator, workers):
    sim = simulator({"default_reply": "ok", "models": {"slow-b": {"latency": 0.1}}})
    project(pytester, write_config, sim, CAPPED.replace("max_concurrency = 3", ""))
    pytester.makepyfile(MANY_REQUESTS)
    result = pytester.runpytest_subprocess(*workers, "--models=slow-b")
    result.assert_outcomes(passed=30)
    expected = 2 if workers[-1] != "0" else 1  # one process runs one test at a time
    assert sim.stats()["max_in_flight_by_model"]["slow-b"] == expected


def test_threads_in_one_test_share_the_caps(pytester, write_config, simulator):
    sim = simulator({"default_reply": "ok", "models": {"slow-a": {"latency": 0.1}}})
    project(pytester, write_config, sim, CAPPED)
    pytester.makepyfile(
        """
        from concurrent.futures import ThreadPoolExecutor

        def test_fan_out(llm_model):
            from pytest_llm_matrix.calls.transport import http_client

            def one(n):
                with http_client(llm_model) as client:
                    response = client.post("/chat/completions", json={
                        "model": llm_model.model,
                        "messages": [{"role": "user", "content": f"hi {n}"}]})
                    return response.status_code

            with ThreadPoolExecutor(8) as pool:
                assert set(pool.map(one, range(24))) == {200}
        """
    )
    result = pytester.runpytest_subprocess("--models=slow-a")
    result.assert_outcomes(passed=1)
    assert sim.stats()["max_in_flight"] == 3


def test_a_killed_worker_leaves_full_capacity(pytester, write_config, simulator):
    sim = simulator(
        {"default_reply": "ok", "models": {"slow-a": {"latency": 0.05, "tokens_per_second": 20}}}
    )
    project(
        pytester, write_config, sim, CAPPED.replace("max_concurrency = 3", "max_concurrency = 2")
    )
    pytester.makepyfile(
        """
        import os, signal
        import pytest

        def test_dies_holding_every_slot(llm_http_client, llm_model):
            body = {"model": llm_model.model, "stream": True,
                    "messages": [{"role": "user", "content": "tell me a long story"}]}
            # Two open streams hold both slots until closed; the worker dies first.
            first = llm_http_client.stream("POST", "/chat/completions", json=body).__enter__()
            second = llm_http_client.stream("POST", "/chat/completions", json=body).__enter__()
            assert first.status_code == second.status_code == 200
            os.kill(os.getpid(), signal.SIGKILL)

        @pytest.mark.parametrize("n", range(12))
        def test_after(llm, n):
            assert llm.complete(f"hi {n}") == "ok"
        """
    )
    result = pytester.runpytest_subprocess(
        "-n", "3", "--models=slow-a", "--llm-timeout=20", "-p", "no:randomly"
    )
    result.assert_outcomes(passed=12, failed=1)
    result.stdout.fnmatch_lines(["*worker*crashed*"])


@WORKERS
def test_retry_after_beyond_the_budget_fails_fast(pytester, write_config, simulator, workers):
    sim = simulator(
        {"models": {"busy": {"faults": [{"kind": "429", "every": 1, "retry_after": 30}]}}}
    )
    project(
        pytester,
        write_config,
        sim,
        '[tool.llm-matrix.models.busy]\nprovider = "simulator"\nbase_url = "{url}/v1"\n'
        "timeout = 12\n",
    )
    pytester.makepyfile("def test_answer(llm):\n    llm.complete('hi')\n")
    started = time.monotonic()
    result = pytester.runpytest_subprocess(*workers)
    assert time.monotonic() - started < 10
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "rate-limited by busy: gave up after 1 attempt; retry-after 30s exceeds the "
            "1?s left of this test's 12s timeout (the model's timeout)"
        ]
    )
    assert sim.stats()["requests"] == {"busy": 1}


def test_waits_never_outlive_the_timeout(pytester, write_config, simulator):
    sim = simulator(
        {"models": {"busy": {"faults": [{"kind": "429", "every": 1, "retry_after": 1}]}}}
    )
    project(
        pytester,
        write_config,
        sim,
        '[tool.llm-matrix.models.busy]\nprovider = "simulator"\nbase_url = "{url}/v1"\n'
        "timeout = 2.5\n",
        extra="",
    )
    pytester.makepyfile("def test_answer(llm):\n    llm.complete('hi')\n")
    result = pytester.runpytest_subprocess("--llm-max-attempts=10", "--durations=1", "-vv")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            # 3 attempts on a quiet machine; a loaded one may fit only 2 in the 2.5 s
            "rate-limited by busy: gave up after * attempts; retry-after 1s exceeds the *s left of "
            "this test's 2.5s timeout (the model's timeout)"
        ]
    )
    durations = [line for line in result.outlines if "call" in line and "test_answer" in line]
    assert float(durations[0].split("s")[0]) < 2.5 + 1.0


def test_a_hanging_model_fails_with_its_timeout(pytester, write_config, simulator):
    sim = simulator({"models": {"stuck": {"faults": [{"kind": "hang", "every": 1}]}}})
    project(
        pytester,
        write_config,
        sim,
        '[tool.llm-matrix.models.stuck]\nprovider = "simulator"\nbase_url = "{url}/v1"\n'
        "timeout = 1.5\n",
    )
    pytester.makepyfile("def test_answer(llm):\n    llm.complete('hi')\n")
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["stuck: ReadTimeout: *: no answer within this test's 1.5s timeout (the model's timeout)"]
    )


@WORKERS
@pytest.mark.parametrize(
    ("check", "listing"),
    [("on", True), ("off", True), ("on", False)],
    ids=["checked", "not-checked", "no-listing"],
)
def test_a_wrong_key_costs_one_request_at_most(
    pytester, write_config, simulator, workers, monkeypatch, check, listing
):
    """Found by the key check: no chat request at all. Without a check, or from a server
    without a listing: one request in all, through the first-request gate."""
    sim = simulator(
        {"list_models": listing, "models": {"locked": {"api_key": "right", "latency": 0.2}}}
    )
    monkeypatch.setenv("LOCKED_TEST_KEY", "sk-wrong-and-secret")
    project(
        pytester,
        write_config,
        sim,
        '[tool.llm-matrix.models.locked]\nprovider = "simulator"\nbase_url = "{url}/v1"\n'
        'api_key_env = "LOCKED_TEST_KEY"\n',
    )
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.parametrize("n", range(20))
        def test_answer(llm, n):
            llm.complete("hi")
        """
    )
    result = pytester.runpytest_subprocess(*workers, "-rs", f"--llm-check-keys={check}")
    if check == "on" and listing:
        result.assert_outcomes(errors=1, skipped=19)  # its first test errs, before its call
        assert sim.stats()["requests"] == {}
        result.stdout.fnmatch_lines(
            [
                "llm-matrix: locked is unavailable: HTTP 401 invalid_api_key: *; its tests are "
                "skipped, the first fails",
                "locked is unavailable: HTTP 401 invalid_api_key: * (key check); its remaining "
                "tests are skipped",
                "locked: unavailable: HTTP 401 invalid_api_key: *",
            ]
        )
    else:
        result.assert_outcomes(failed=1, skipped=19)
        assert sim.stats()["requests"] == {"locked": 1}
        result.stdout.fnmatch_lines(
            [
                "locked is unavailable: HTTP 401 invalid_api_key: *; its remaining tests are "
                "skipped",
                "locked: unavailable: HTTP 401 invalid_api_key: *",
            ]
        )
        assert "(key check)" not in result.stdout.str()
    if not listing:
        result.stdout.fnmatch_lines(
            ["llm-matrix: locked: key not checked (HTTP 404 *); its first request checks it"]
        )
    assert "sk-wrong-and-secret" not in result.stdout.str() + result.stderr.str()


SDK_MODELS = """
[tool.llm-matrix.models.sim-openai]
provider = "simulator"
base_url = "{url}/v1"
[tool.llm-matrix.models.sim-anthropic]
provider = "simulator"
api = "anthropic"
base_url = "{url}"
"""


@WORKERS
def test_usage_and_first_token_through_the_sdks(pytester, write_config, simulator, workers):
    sim = simulator(
        {
            "default_reply": "one two three four five six seven eight",
            "models": {
                "sim-openai": {"tokens_per_second": 50},
                "sim-anthropic": {"tokens_per_second": 50},
            },
        }
    )
    project(pytester, write_config, sim, SDK_MODELS)
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.llm(models=["sim-openai"])
        def test_openai_stream(openai_client, llm_model):
            stream = openai_client.chat.completions.create(
                model=llm_model.model, stream=True, stream_options={"include_usage": True},
                messages=[{"role": "user", "content": "count"}])
            assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)

        @pytest.mark.llm(models=["sim-openai"])
        def test_openai_plain(openai_client, llm_model):
            r = openai_client.chat.completions.create(
                model=llm_model.model, messages=[{"role": "user", "content": "count"}])
            assert r.usage.completion_tokens > 0

        @pytest.mark.llm(models=["sim-openai"])
        def test_openai_responses_stream(openai_client, llm_model):
            with openai_client.responses.stream(model=llm_model.model, input="count") as s:
                assert s.get_final_response().usage.output_tokens > 0

        @pytest.mark.llm(models=["sim-anthropic"])
        def test_anthropic_stream(anthropic_client, llm_model):
            with anthropic_client.messages.stream(
                model=llm_model.model, max_tokens=64,
                messages=[{"role": "user", "content": "count"}]) as stream:
                assert stream.get_final_text()

        @pytest.mark.llm(models=["sim-anthropic"])
        @pytest.mark.asyncio
        async def test_anthropic_async(async_anthropic_client, llm_model):
            m = await async_anthropic_client.messages.create(
                model=llm_model.model, max_tokens=64,
                messages=[{"role": "user", "content": "count"}])
            assert m.usage.output_tokens > 0

        def test_wrong_sdk_is_skipped(anthropic_client):
            pass
        """
    )
    result = pytester.runpytest_subprocess(*workers, "--models=all", "-rs")
    result.assert_outcomes(passed=6, skipped=1)
    result.stdout.fnmatch_lines(["SKIPPED * sim-openai speaks the openai API, not anthropic's*"])
    spend = read_spend(pytester)
    reply_tokens = spend["test_openai_plain[sim-openai]"]["output_tokens"]
    assert reply_tokens == 10  # the simulator counts ceil(len(text) / 4)
    assert spend["test_openai_plain[sim-openai]"]["ttft"] == []
    assert spend["test_anthropic_async[sim-anthropic]"]["output_tokens"] == reply_tokens
    for name in (
        "test_openai_stream[sim-openai]",
        "test_openai_responses_stream[sim-openai]",
        "test_anthropic_stream[sim-anthropic]",
    ):
        assert spend[name]["input_tokens"] > 0, name
        assert spend[name]["output_tokens"] == reply_tokens, name
        assert len(spend[name]["ttft"]) == 1, name
        assert 0 < spend[name]["ttft"][0] < spend[name]["latencies"][0], name


def test_cut_stream_through_the_sdk(pytester, write_config, simulator):
    sim = simulator(
        {
            "models": {
                "sim-openai": {"faults": [{"kind": "truncate", "every": 1}]},
                "sim-anthropic": {"faults": [{"kind": "truncate", "every": 1}]},
            }
        }
    )
    project(pytester, write_config, sim, SDK_MODELS)
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.llm(models=["sim-openai"])
        def test_openai(openai_client, llm_model):
            for _ in openai_client.chat.completions.create(
                    model=llm_model.model, stream=True,
                    messages=[{"role": "user", "content": "count"}]):
                pass

        @pytest.mark.llm(models=["sim-anthropic"])
        def test_anthropic(anthropic_client, llm_model):
            with anthropic_client.messages.stream(
                model=llm_model.model, max_tokens=64,
                messages=[{"role": "user", "content": "count"}]) as stream:
                stream.get_final_text()
        """
    )
    result = pytester.runpytest_subprocess("--models=all")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        [
            "stream from sim-openai ended before completion",
            "stream from sim-anthropic ended before completion",
        ],
        consecutive=False,
    )


def test_httpx_twins_and_wrapping_a_users_client(pytester, write_config, simulator):
    sim = simulator(
        {"default_reply": "ok", "models": {"m": {"faults": [{"kind": "503", "first": 1}]}}}
    )
    project(
        pytester,
        write_config,
        sim,
        '[tool.llm-matrix.models.m]\nprovider = "simulator"\nbase_url = "{url}/v1"\n',
    )
    pytester.makepyfile(
        textwrap.dedent(
            """
            import httpx, httpx2
            import pytest
            from pytest_llm_matrix import llm_transport, wrap_client

            BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}

            def test_httpx(llm_httpx_client):
                assert isinstance(llm_httpx_client, httpx.Client)
                r = llm_httpx_client.post("/chat/completions", json=BODY)
                assert r.json()["choices"][0]["message"]["content"] == "ok"

            @pytest.mark.asyncio
            async def test_async_httpx2(llm_async_http_client):
                async with llm_async_http_client as client:
                    r = await client.post("/chat/completions", json=BODY)
                assert r.status_code == 200

            def test_users_client(llm_model):
                client = wrap_client(llm_model, httpx2.Client(base_url=llm_model.base_url))
                assert client.post("/chat/completions", json=BODY).status_code == 200

            def test_users_transport(llm_model):
                transport = llm_transport(llm_model, httpx.HTTPTransport())
                with httpx.Client(base_url=llm_model.base_url, transport=transport) as c:
                    assert c.post("/chat/completions", json=BODY).status_code == 200
            """
        )
    )
    pytester.makeconftest(SPEND_RECORDER)
    result = pytester.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(passed=4)
    spend = read_spend(pytester)
    assert spend["test_httpx[m]"]["retries"] == 1  # the first request got a 503
    assert all(s["requests"] == 1 for s in spend.values())


@pytest.mark.parametrize(
    ("knobs", "model_id", "cause", "outcomes", "sent"),
    [
        (
            {"faults": [{"kind": "429", "every": 1, "quota": True}]},
            "gone",
            "HTTP 429 insufficient_quota*",
            {"failed": 1, "skipped": 4},
            1,
        ),
        ({}, "no-such-model", "HTTP 404 model_not_found*", {"failed": 1, "skipped": 4}, 1),
        # found by the key check: no request, the first test errs before its call
        ({"api_key": "right"}, "gone", "HTTP 401 invalid_api_key*", {"errors": 1, "skipped": 4}, 0),
    ],
    ids=["quota", "unknown-model", "wrong-key"],
)
def test_unavailable_triggers(
    pytester, write_config, simulator, monkeypatch, knobs, model_id, cause, outcomes, sent
):
    sim = simulator({"models": {"gone": knobs}})
    monkeypatch.setenv("GONE_TEST_KEY", "sk-test-secret-1234")
    project(
        pytester,
        write_config,
        sim,
        '[tool.llm-matrix.models.gone]\nprovider = "simulator"\nbase_url = "{url}/v1"\n'
        f'model = "{model_id}"\napi_key_env = "GONE_TEST_KEY"\n',
    )
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.parametrize("n", range(5))
        def test_answer(openai_client, llm_model, n):
            openai_client.chat.completions.create(
                model=llm_model.model, messages=[{"role": "user", "content": "hi"}])
        """
    )
    result = pytester.runpytest_subprocess("-l", "--tb=long", "-rs")
    result.assert_outcomes(**outcomes)
    result.stdout.fnmatch_lines([f"gone: unavailable: {cause}"])
    assert sum(sim.stats()["requests"].values()) == sent
    assert "sk-test-secret-1234" not in result.stdout.str() + result.stderr.str()


@pytest.mark.parametrize("prefix", ["", "llm_provider-"], ids=["direct", "litellm"])
def test_a_429_cools_every_worker_down(pytester, write_config, simulator, prefix):
    """Direct, and behind a gateway that passes the hint on under its prefix (LiteLLM)."""
    fault = {"kind": "429", "first": 1, "match": "victim", "retry_after": 2}
    sim = simulator(
        {
            "default_reply": "ok",
            "models": {"m": {"faults": [{**fault, "header_prefix": prefix}]}},
        }
    )
    project(
        pytester,
        write_config,
        sim,
        '[tool.llm-matrix.models.m]\nprovider = "simulator"\nbase_url = "{url}/v1"\n',
    )
    pytester.makepyfile(
        """
        import time
        import pytest

        def test_victim(llm):
            assert llm.complete("victim") == "ok"

        @pytest.mark.parametrize("n", range(3))
        def test_later(llm, n):
            time.sleep(0.5)  # the victim's 429 has happened by now, on another worker
            started = time.monotonic()
            assert llm.complete(f"later {n}") == "ok"
            assert time.monotonic() - started > 1.0  # waited out the shared cooldown
        """
    )
    # one test per worker, so the victim's 429 lands while the others are about to start
    result = pytester.runpytest_subprocess("-n", "4", "--llm-dist=load", "-p", "no:randomly")
    result.assert_outcomes(passed=4)
    assert sim.stats()["statuses"] == {"429": 1, "200": 4}


def test_workers_never_load_the_price_data(pytester, write_config, simulator):
    sim = simulator({"default_reply": "ok"})
    project(
        pytester,
        write_config,
        sim,
        '[tool.llm-matrix.models.gpt-4o-mini]\nprovider = "simulator"\nbase_url = "{url}/v1"\n'
        'price_as = "gpt-4o-mini"\n',
    )
    pytester.makepyfile(
        """
        import sys

        def test_request(llm):
            assert llm.complete("hi") == "ok"
            assert "genai_prices" not in sys.modules
        """
    )
    result = pytester.runpytest_subprocess("-n", "2")
    result.assert_outcomes(passed=1)
    # ... while the controller priced its tokens (genai-prices lists gpt-4o-mini)
    result.stdout.fnmatch_lines(["gpt-4o-mini *$0.0*"])


def test_sdk_fixture_without_the_sdk_is_skipped(pytester, write_config, simulator):
    sim = simulator({})
    project(
        pytester,
        write_config,
        sim,
        '[tool.llm-matrix.models.m]\nprovider = "simulator"\nbase_url = "{url}/v1"\n',
    )
    pytester.makeconftest(SPEND_RECORDER + "\nimport sys\nsys.modules['openai'] = None\n")
    pytester.makepyfile("def test_sdk(openai_client):\n    pass\n")
    result = pytester.runpytest_subprocess("-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(
        ["SKIPPED * the openai SDK is not installed (pip install 'pytest-llm-matrix[[]openai]'*"]
    )
    # --llm-strict (the pre-commit hook's): what would be skipped fails, naming the fix
    strict = pytester.runpytest_subprocess("--llm-strict")
    strict.assert_outcomes(errors=1)  # in a fixture: an error, as pytest counts it
    assert strict.ret == pytest.ExitCode.TESTS_FAILED
    strict.stdout.fnmatch_lines(
        [
            "*m: the openai SDK is not installed (pip install 'pytest-llm-matrix[[]openai]'; "
            "in a pre-commit hook, add it to additional_dependencies); --llm-strict fails what "
            "would be skipped"
        ]
    )


@pytest.mark.parametrize(
    ("args", "ini", "env", "marked", "expected"),
    [
        ((), "", "", False, "quick: timed out after 1s (the model's timeout)"),
        ((), "", "", True, "quick: timed out after 0.5s (a timeout mark)"),
        (("--timeout=0.5",), "", "", False, "quick: timed out after 0.5s (--timeout)"),
        (("--timeout=0.5",), "", "", True, "quick: timed out after 0.5s (a timeout mark)"),
        # files and the environment are defaults: the model's own timeout refines them
        ((), 'timeout = "0.5"\n', "", False, "quick: timed out after 1s (the model's timeout)"),
        (
            (),
            'addopts = "--timeout=0.5"\n',
            "",
            False,
            "quick: timed out after 1s (the model's timeout)",
        ),
        ((), "", "0.5", False, "quick: timed out after 1s (the model's timeout)"),
    ],
    ids=["model", "mark", "typed-timeout", "mark-beats-typed", "ini", "addopts", "env"],
)
def test_which_timeout_a_model_test_gets(
    pytester, write_config, simulator, monkeypatch, args, ini, env, marked, expected
):
    """The precedence docs/http-layer.md documents (Timeouts), and the failure naming where
    it came from."""
    sim = simulator({})
    project(
        pytester,
        write_config,
        sim,
        '[tool.llm-matrix.models.quick]\nprovider = "simulator"\nbase_url = "{url}/v1"\n'
        "timeout = 1\n",
    )
    if ini:
        add_ini(pytester, ini)
    if env:
        monkeypatch.setenv("PYTEST_TIMEOUT", env)
    mark = "@pytest.mark.timeout(0.5)\n" if marked else ""
    pytester.makepyfile(
        f"import time\nimport pytest\n\n{mark}def test_slow(llm_model):\n    time.sleep(3)\n"
    )
    result = pytester.runpytest_subprocess(*args)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([f"E * {expected}"])


def test_timeouts_of_models_without_their_own_name_their_source(
    pytester, write_config, simulator, monkeypatch
):
    sim = simulator({})
    project(
        pytester,
        write_config,
        sim,
        '[tool.llm-matrix.models.plain]\nprovider = "simulator"\nbase_url = "{url}/v1"\n',
    )
    pytester.makepyfile("import time\n\ndef test_slow(llm_model):\n    time.sleep(3)\n")
    result = pytester.runpytest_subprocess("--llm-timeout=1")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["E * plain: timed out after 1s (--llm-timeout)"])
    add_ini(pytester, 'timeout = "0.5"\n')
    result = pytester.runpytest_subprocess()
    result.stdout.fnmatch_lines(["E * plain: timed out after 0.5s (ini timeout)"])
    result = pytester.runpytest_subprocess("-o", "llm_timeout=1")
    result.stdout.fnmatch_lines(["E * plain: timed out after 1s (ini llm_timeout)"])
    monkeypatch.setenv("PYTEST_TIMEOUT", "0.7")
    result = pytester.runpytest_subprocess()
    result.stdout.fnmatch_lines(["E * plain: timed out after 0.7s (PYTEST_TIMEOUT)"])


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["n0", "n2"])
def test_a_tests_own_mistake_never_disables_the_model(pytester, write_config, simulator, workers):
    """An unknown endpoint, or a hard-coded model id, fails that test and names the cause
    (the id is never sent); the model under test stays available for the next tests."""
    sim = simulator({"default_reply": "ok", "models": {"sim-model-id": {}}})
    project(
        pytester,
        write_config,
        sim,
        '[tool.llm-matrix.models.m]\nprovider = "simulator"\nbase_url = "{url}/v1"\n'
        'model = "sim-model-id"\n',
    )
    pytester.makepyfile(
        """
        def test_1_unknown_endpoint(llm_http_client):
            response = llm_http_client.post("/embeddingz", json={"model": "sim-model-id"})
            assert response.status_code == 200, response.text

        def test_2_hard_coded_model_id(openai_client):
            openai_client.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "hi"}])

        def test_3_still_available(llm):
            assert llm.complete("hi") == "ok"
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:randomly", *workers)
    result.assert_outcomes(failed=2, passed=1)
    result.stdout.fnmatch_lines(
        [
            "*Invalid URL (POST /v1/embeddingz)*",
            "*test sent model 'gpt-4o' to m, whose model id is 'sim-model-id'; use "
            "llm_model.model, or --llm-rewrite-model to send every request to the model under "
            "test",
        ],
        consecutive=False,
    )
    assert "is unavailable" not in result.stdout.str()
    # the unknown endpoint reached no model; the hard-coded id was never sent
    assert sim.stats()["requests"] == {"sim-model-id": 1}
    # with --llm-rewrite-model, the hard-coded id goes to the model under test
    rewritten = pytester.runpytest_subprocess(
        "-p", "no:randomly", "--llm-rewrite-model", "-k", "hard_coded or still", *workers
    )
    rewritten.assert_outcomes(passed=2)
    assert sim.stats()["requests"] == {"sim-model-id": 3}


def test_embeddings_through_the_plugin_are_counted_per_model(pytester, write_config):
    """An embeddings request from a model test goes through the same layer as chat: its
    tokens show in the model's row, and the built-in simulator answers it."""
    write_config()
    pytester.makepyfile(
        """
        def test_embed(openai_client, llm_model):
            result = openai_client.embeddings.create(model=llm_model.model, input=["a b c d"])
            assert len(result.data[0].embedding) == 16
        """
    )
    result = pytester.runpytest_subprocess("--models=sims", "-v", "--llm-report=r.json")
    result.assert_outcomes(passed=2)
    models = json.loads((pytester.path / "r.json").read_text())["models"]
    assert {name: (m["requests"], m["input_tokens"]) for name, m in models.items()} == {
        "sim-fast": (1, 2),  # 7 characters: 2 of the simulator's 4-character tokens
        "sim-weak": (1, 2),
    }
