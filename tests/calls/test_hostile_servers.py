"""Servers that misbehave on purpose never hang a run, crash it with a traceback, or bend
its numbers: absurd waits, streams that are not streams, crashes mid-test."""

from __future__ import annotations

import email.utils
import http.server
import json
import threading
import time
import xml.etree.ElementTree as ET

import pytest

from pytest_llm_matrix.calls.context import Journal
from pytest_llm_matrix.simulator import SimulatorConfigError, parse_config

from ..conftest import SPEND_RECORDER, read_spend

WORKERS = pytest.mark.parametrize("workers", [["-n", "0"], ["-n", "2"]], ids=["n0", "n2"])


def project(pytester, write_config, sim, models: str) -> None:
    write_config(models.replace("{url}", sim.url))
    pytester.makeconftest(SPEND_RECORDER)


ONE_MODEL = """
[tool.llm-matrix.models.m]
provider = "simulator"
base_url = "{url}/v1"
"""

TWO_TESTS = """
import time

def test_first(llm):
    assert llm.complete("hi")

def test_second(llm):
    started = time.monotonic()
    assert llm.complete("hi")
    print("took", time.monotonic() - started)
"""


FAR_FUTURE = email.utils.formatdate(time.time() + 10 * 365 * 86400, usegmt=True)


def two_tests_after_a_429(pytester, write_config, simulator, workers, retry_after):
    """Two tests of one model whose first request gets a 429 with this Retry-After, run with
    --llm-max-wait=1; the run, and the simulator."""
    sim = simulator(
        {"models": {"m": {"faults": [{"kind": "429", "first": 1, "retry_after": retry_after}]}}}
    )
    project(pytester, write_config, sim, ONE_MODEL)
    pytester.makepyfile(TWO_TESTS)
    started = time.monotonic()
    result = pytester.runpytest_subprocess("-p", "no:randomly", "--llm-max-wait=1", *workers)
    assert time.monotonic() - started < 30
    assert "Traceback" not in result.stdout.str()
    return result, sim


@WORKERS
@pytest.mark.parametrize("retry_after", [3600, "1e308", FAR_FUTURE], ids=["3600", "1e308", "date"])
def test_a_refused_retry_after_never_makes_anyone_wait_longer_than_max_wait(
    pytester, write_config, simulator, workers, retry_after
):
    result, sim = two_tests_after_a_429(pytester, write_config, simulator, workers, retry_after)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*rate-limited by m: gave up after 1 attempt; retry-after * exceeds the longest wait "
            "allowed (1s, --llm-max-wait)*"
        ]
    )
    # the other test waited out a cooldown of at most --llm-max-wait, not the server's word
    durations = [float(line.split()[-1]) for line in result.outlines if line.startswith("took")]
    assert all(d < 3 for d in durations)
    assert sim.stats()["statuses"] == {"429": 1, "200": 1}


@WORKERS
@pytest.mark.parametrize("retry_after", ["inf", "nan", "-5", "soon"])
def test_a_retry_after_that_is_no_number_is_ignored(
    pytester, write_config, simulator, workers, retry_after
):
    result, _ = two_tests_after_a_429(pytester, write_config, simulator, workers, retry_after)
    result.assert_outcomes(passed=2)  # retried after the usual backoff
    spend = read_spend(pytester)
    assert spend["test_first[m]"]["retries"] + spend["test_second[m]"]["retries"] == 1


NOT_STREAM_MODELS = """
[tool.llm-matrix.models.o]
provider = "simulator"
base_url = "{url}/v1"
[tool.llm-matrix.models.a]
provider = "simulator"
api = "anthropic"
base_url = "{url}"
"""

STREAMING_PATHS = """
import asyncio

def test_llm_stream(llm):
    assert list(llm.stream("hi"))

def test_llm_astream(llm):
    async def pieces():
        return [piece async for piece in llm.astream("hi")]
    assert asyncio.run(pieces())

def test_openai_sdk_stream(openai_client, llm_model):
    stream = openai_client.chat.completions.create(
        model=llm_model.model, messages=[{"role": "user", "content": "hi"}], stream=True)
    assert list(stream)

def test_anthropic_sdk_stream(anthropic_client, llm_model):
    with anthropic_client.messages.stream(
        model=llm_model.model, max_tokens=20, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        assert stream.get_final_text()

def test_plain_answer(llm):
    assert llm.complete("hi") == "ok"
"""


@pytest.mark.parametrize(
    ("body", "content_type"),
    [("json", "application/json"), ("html", "text/html"), ("garbage", "application/octet")],
)
def test_a_stream_answered_without_sse_fails_naming_the_model(
    pytester, write_config, simulator, body, content_type
):
    fault = {"faults": [{"kind": "not_stream", "every": 1, "body": body}]}
    sim = simulator({"default_reply": "ok", "models": {"o": fault, "a": fault}})
    project(pytester, write_config, sim, NOT_STREAM_MODELS)
    pytester.makepyfile(STREAMING_PATHS)
    result = pytester.runpytest_subprocess("--models=all", "-p", "no:randomly")
    # every streaming path fails on both models (the SDK of the other API skips), the plain
    # answer passes: the fault only touches streams
    result.assert_outcomes(passed=2, failed=6, skipped=2)
    for model, tests in {
        "o": ("llm_stream", "llm_astream", "openai_sdk_stream"),
        "a": ("llm_stream", "llm_astream", "anthropic_sdk_stream"),
    }.items():
        for test in tests:
            result.stdout.fnmatch_lines(
                [
                    f"*_ test_{test}[[]{model}] _*",
                    f"{model}: asked for a stream, but the answer is not an event stream "
                    f"(HTTP 200, {content_type}*",
                ]
            )
    assert "Traceback" not in result.stdout.str()
    spend = read_spend(pytester)
    assert spend["test_llm_stream[o]"]["requests"] == 1  # one request, not retried


def test_requests_refused_before_they_are_sent_are_not_counted(pytester, write_config, simulator):
    # The first test gets a 429 asking for 5 s, more than its 2 s timeout leaves: it fails,
    # and the model cools down; the second test's request is refused before it goes out.
    sim = simulator({"models": {"m": {"faults": [{"kind": "429", "first": 1, "retry_after": 5}]}}})
    project(pytester, write_config, sim, ONE_MODEL + "timeout = 2\n")
    pytester.makepyfile(TWO_TESTS)
    result = pytester.runpytest_subprocess("-p", "no:randomly", "--llm-report=report.json")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["rate-limited by m: gave up; a 5s wait exceeds the * left of *"])
    report = json.loads((pytester.path / "report.json").read_text())
    assert sim.stats()["requests"] == {"m": 1}
    assert (report["models"]["m"]["requests"], report["models"]["m"]["attempts"]) == (1, 1)
    assert "test_second[m]" not in read_spend(pytester)


CRASHING = """
import os

def test_crash(llm):
    llm.complete("one")
    llm.complete("two")
    os._exit(1)
"""


def test_a_crashed_tests_requests_are_kept(pytester, write_config, simulator):
    sim = simulator({"default_reply": "ok"})
    project(pytester, write_config, sim, ONE_MODEL)
    pytester.makepyfile(CRASHING)
    result = pytester.runpytest_subprocess(
        "-n", "2", "--llm-report=report.json", "--junitxml=junit.xml"
    )
    result.assert_outcomes(failed=1)
    row = json.loads((pytester.path / "report.json").read_text())["models"]["m"]
    assert sim.stats()["requests"] == {"m": 2}
    assert (row["requests"], row["attempts"]) == (2, 2)
    assert row["input_tokens"] > 0
    assert row["output_tokens"] > 0
    assert 0 <= row["wall_seconds"] < 600  # not measured from 1970
    case = ET.parse(pytester.path / "junit.xml").find(".//testcase")
    properties = {p.get("name"): p.get("value") for p in case.iter("property")}
    assert properties["llm_model"] == "m"
    assert properties["llm_requests"] == "2"
    assert int(properties["llm_input_tokens"]) == row["input_tokens"]


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ({"kind": "not_stream", "every": 1, "body": "xml"}, "body: must be one of json, html"),
        ({"kind": "500", "every": 1, "body": "json"}, "body: only applies to kind 'not_stream'"),
        ({"kind": "429", "every": 1, "retry_after": ""}, "retry_after: must be printable"),
        ({"kind": "429", "every": 1, "retry_after": "a\nb"}, "retry_after: must be printable"),
    ],
)
def test_bad_fault_options_are_refused(fault, message):
    with pytest.raises(SimulatorConfigError, match=message):
        parse_config({"models": {"m": {"faults": [fault]}}}, source="sim.toml")


def test_the_journal_keeps_only_the_last_entry_of_the_running_test(tmp_path):
    path = str(tmp_path / "spend-gw0.json")
    journal = Journal(path)
    journal.write("t.py::test_a[m]", {"attempts": 3, "latencies": [0.1, 0.2, 0.3]})
    journal.write("t.py::test_b[m]", {"attempts": 1})  # shorter: padded over the longer one
    journal.close()
    assert Journal.read(path, "t.py::test_b[m]") == {"attempts": 1}
    assert Journal.read(path, "t.py::test_a[m]") is None  # another test's
    Journal(path).write("t.py::test_b[m]", {"attempts": 0})
    assert Journal.read(path, "t.py::test_b[m]") is None  # nothing spent since the report
    (tmp_path / "torn.json").write_bytes(b'{"nodeid": "t.py::test_b[m]", "sp')
    assert Journal.read(str(tmp_path / "torn.json"), "t.py::test_b[m]") is None
    assert Journal.read(str(tmp_path / "missing.json"), "t.py::test_b[m]") is None


def test_a_journal_whose_folder_is_gone_gives_up_quietly(tmp_path):
    journal = Journal(str(tmp_path / "gone" / "spend-gw0.json"))
    journal.write("t.py::test_a[m]", {"attempts": 1})  # no error: crash recovery is a bonus
    journal.close()
    assert not (tmp_path / "gone").exists()


class _Trickle(http.server.BaseHTTPRequestHandler):
    """Promises a JSON body and sends it one byte every 0.1 s: every read gets a byte in
    time, so per-read timeouts never fire."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):
        pass

    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length") or 0))
        body = b'{"choices": [{"message": {"content": "' + b"x" * 200 + b'"}}]}'
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        for byte in body:
            self.wfile.write(bytes([byte]))
            self.wfile.flush()
            time.sleep(0.1)


@pytest.mark.parametrize("call", ["llm.complete('hi')", "asyncio.run(llm.acomplete('hi'))"])
def test_a_body_that_trickles_in_is_bounded_by_the_model_timeout(pytester, write_config, call):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Trickle)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        write_config(
            '[tool.llm-matrix.models.slow]\nprovider = "openai-compatible"\n'
            f'base_url = "http://127.0.0.1:{server.server_port}/v1"\ntimeout = 1\n'
        )
        pytester.makepyfile(f"import asyncio\n\ndef test_slow(llm):\n    {call}\n")
        started = time.monotonic()
        # without pytest-timeout, only the request's own timeout can end it
        result = pytester.runpytest_subprocess("-p", "no:timeout", "--llm-max-attempts=1")
        assert time.monotonic() - started < 20
    finally:
        server.shutdown()
        server.server_close()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*slow: ReadTimeout: the answer did not arrive in full within 1s: "
            "gave up after 1 attempt*"
        ]
    )


ONE_TEST = """
import time

def test_once(llm):
    started = time.monotonic()
    assert llm.complete("hi")
    with open("took.txt", "w") as fh:
        fh.write(str(time.monotonic() - started))
"""


@WORKERS
def test_a_gateways_copy_of_the_providers_retry_after_is_waited_out(
    pytester, write_config, simulator, workers
):
    """A gateway in front of the provider (LiteLLM's proxy) passes its Retry-After on only
    as ``llm_provider-retry-after``: the retry waits as long as it says, not a backoff."""
    sim = simulator(
        {
            "models": {
                "m": {
                    "faults": [
                        {
                            "kind": "429",
                            "first": 1,
                            "retry_after": 2,
                            "header_prefix": "llm_provider-",
                        }
                    ]
                }
            }
        }
    )
    project(pytester, write_config, sim, ONE_MODEL)
    pytester.makepyfile(ONE_TEST)
    result = pytester.runpytest_subprocess("-p", "no:randomly", *workers)
    result.assert_outcomes(passed=1)
    assert float((pytester.path / "took.txt").read_text()) >= 2.0
    assert sim.stats()["statuses"] == {"429": 1, "200": 1}


class _Gateway(http.server.BaseHTTPRequestHandler):
    """A gateway that does not know the alias asked for, as LiteLLM's proxy answers it (its
    exact body and headers, read from its source and seen from a running 1.106)."""

    protocol_version = "HTTP/1.1"
    posts: list[str] = []
    shape = "litellm"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        size = int(self.headers.get("content-length") or 0)
        alias = json.loads(self.rfile.read(size)).get("model")
        self.posts.append(self.path)
        if self.shape == "openrouter":  # its error shape: a numeric code, no type
            body = json.dumps(
                {"error": {"code": 400, "message": f"{alias} is not a valid model ID"}}
            )
            self.send_response(400)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body.encode())
            return
        message = (
            f"/chat/completions: Invalid model name passed in model={alias}. Call `/v1/models` "
            "to view available models for your key."
        )
        body = json.dumps(
            {"error": {"message": message, "type": "invalid_request_error", "param": None,
                       "code": "400", "provider_specific_fields": {"error": message}}}
        ).encode()  # fmt: skip
        self.send_response(400)
        self.send_header("content-type", "application/json")
        self.send_header("x-litellm-call-id", "3f1c2b7e-0000-4000-8000-000000000001")
        self.send_header("x-litellm-response-cost", "0")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(params=["litellm", "openrouter"])
def gateway(request):
    handler = type("Handler", (_Gateway,), {"posts": [], "shape": request.param})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler.posts
    server.shutdown()
    server.server_close()


@WORKERS
def test_an_alias_the_gateway_does_not_know_is_unavailable_after_one_request(
    pytester, write_config, gateway, workers, monkeypatch, request
):
    """A gateway's key (here one it does not list models for) sends one request first."""
    url, posts = gateway
    monkeypatch.setenv("GATEWAY_TEST_KEY", "sk-gateway-0123456789")
    write_config(
        f"""
[tool.llm-matrix.models.gw-nope]
provider = "openai-compatible"
model = "gw-nope"
base_url = "{url}/v1"
api_key_env = "GATEWAY_TEST_KEY"
"""
    )
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.parametrize("n", range(4))
        def test_answer(llm, n):
            assert llm.complete("hi")
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:randomly", *workers)
    result.assert_outcomes(failed=1, skipped=3)
    output = result.stdout.str()
    if "openrouter" in request.node.callspec.id:
        assert "gw-nope is not a valid model ID" in output
    else:
        assert "Invalid model name passed in model=gw-nope" in output
        # the gateway's name for the request, to find it in its logs
        assert "(request id 3f1c2b7e-0000-4000-8000-000000000001)" in output
    assert "HTTP 400 400" not in output
    assert "HTTP 400: 400" not in output
    assert len(posts) == 1


def test_a_timeout_after_429s_says_what_the_earlier_attempts_got(pytester, write_config, simulator):
    """The attempt that timed out is not all there was: the 429 before it is named."""
    sim = simulator(
        {
            "models": {
                "m": {
                    "faults": [
                        {"kind": "429", "first": 1, "retry_after_ms": 50},
                        {"kind": "hang", "every": 1, "hang": 30},
                    ]
                }
            }
        }
    )
    project(pytester, write_config, sim, ONE_MODEL + "timeout = 2\n")
    pytester.makepyfile("def test_once(llm):\n    assert llm.complete('hi')\n")
    result = pytester.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*m: ReadTimeout: * (after HTTP 429): no answer within*"])


MASTER = "sk-master-0123456789"


class _NoDatabase(http.server.BaseHTTPRequestHandler):
    """LiteLLM's proxy without a database: its master key works, any other key gets a 400
    ``no_db_connection`` (its exact body)."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _answer(self, status: int, data: object) -> None:
        body = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _refused(self) -> bool:
        if self.headers.get("authorization") == f"Bearer {MASTER}":
            return False
        self._answer(
            400,
            {"error": {"message": "No connected db.", "type": "no_db_connection",
                       "param": None, "code": "400"}},
        )  # fmt: skip
        return True

    def do_GET(self) -> None:
        if not self._refused():
            self._answer(200, {"object": "list", "data": [{"id": "gw", "object": "model"}]})

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        if not self._refused():
            self._answer(
                200,
                {"id": "c1", "object": "chat.completion", "model": "gw",
                 "choices": [{"index": 0, "finish_reason": "stop",
                              "message": {"role": "assistant", "content": "ok"}}],
                 "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}},
            )  # fmt: skip


def test_a_tests_own_key_refused_by_a_gateway_is_its_own_business(
    pytester, write_config, monkeypatch
):
    """A gateway's refusal of a key the test sent itself goes back to the test; the model
    stays available. The model's own key refused takes it out."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NoDatabase)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("GW_KEY", MASTER)
        write_config(
            f"""
[tool.llm-matrix.models.gw]
provider = "openai-compatible"
base_url = "http://127.0.0.1:{server.server_address[1]}/v1"
api_key_env = "GW_KEY"
"""
        )
        pytester.makepyfile(
            """
            def test_1_own_key(llm_http_client):
                answer = llm_http_client.post(
                    "/chat/completions", headers={"authorization": "Bearer sk-mine-000000"},
                    json={"model": "gw", "messages": [{"role": "user", "content": "hi"}]})
                assert answer.status_code == 400

            def test_2_then(llm):
                assert llm.complete("hi") == "ok"
            """
        )
        result = pytester.runpytest_subprocess("-p", "no:randomly")
        result.assert_outcomes(passed=2)
        monkeypatch.setenv("GW_KEY", "sk-not-the-master-0000")  # the model's own key refused
        refused = pytester.runpytest_subprocess("-p", "no:randomly")
        refused.assert_outcomes(errors=1, skipped=1)
        refused.stdout.fnmatch_lines(["*gw*no_db_connection: No connected db.*"])
    finally:
        server.shutdown()
        server.server_close()
