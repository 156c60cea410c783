"""Transcripts: what each request of a model test sent and got, in the JSON report (and, when
asked, JUnit), from real sessions whose clients (``llm``, the SDKs, a bound client, streams)
talk to the simulator over loopback; capped, redacted, replayed."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from pytest_llm_matrix.calls import transcript

WORKERS = pytest.mark.parametrize("workers", [["-n", "0"], ["-n", "2"]], ids=["n0", "n2"])

CONFIG = """
[tool.llm-matrix.models.sim-a]
provider = "simulator"

[tool.llm-matrix.models.sim-b]
provider = "simulator"
simulate = { wrong = ["(?i)capital"], wrong_reply = "Lyon, I think." }

[tool.llm-matrix.simulator]
default_reply = "ok"
rules = [
  { match = "(?i)capital of France", reply = "Paris is the capital of France." },
  { match = "(?i)order A-1", tool = "order_status", tool_calls = [
    { name = "order_status", arguments = { order_id = "A-1" } },
  ] },
]
"""

TESTS = """
import asyncio

def test_chat(llm):
    assert llm.complete("What is the capital of France?", system="Be brief.")

def test_stream(llm):
    text = "".join(llm.stream("What is the capital of France? Streamed."))
    assert llm.last.text == text and llm.last.usage.output_tokens > 0
    assert llm.last.finish_reason == "stop"

def test_astream(llm):
    async def read():
        return "".join([piece async for piece in llm.astream("capital of France, async")])
    text = asyncio.run(read())
    assert llm.last.text == text and llm.last.usage.input_tokens > 0

def test_openai_sdk(openai_client, llm_model):
    tools = [{"type": "function", "function": {"name": "order_status", "parameters": {
        "type": "object", "properties": {"order_id": {"type": "string"}}}}}]
    response = openai_client.chat.completions.create(
        model=llm_model.model, tools=tools,
        messages=[{"role": "user", "content": "Where is order A-1?"}])
    assert response.choices[0].message.tool_calls

def test_responses(openai_client, llm_model):
    response = openai_client.responses.create(
        model=llm_model.model, instructions="Be brief.", input="capital of France?")
    assert response.output_text
"""


def run(pytester: pytest.Pytester, *args: str) -> tuple[pytest.RunResult, dict]:
    result = pytester.runpytest_subprocess("-p", "no:randomly", "--llm-report=r.json", *args)
    return result, json.loads((pytester.path / "r.json").read_text())


def entry(report: dict, test: str, model: str) -> dict:
    found = [t for t in report["tests"] if t["test"].endswith(f"::{test}") and t["model"] == model]
    assert len(found) == 1, [t["nodeid"] for t in report["tests"]]
    return found[0]


@WORKERS
def test_every_client_s_requests_are_in_the_transcript(pytester, write_config, workers):
    write_config(CONFIG)
    pytester.makepyfile(TESTS)
    result, report = run(pytester, "--models=all", *workers)
    result.assert_outcomes(passed=10)
    chat = entry(report, "test_chat", "sim-a")["transcript"]
    assert chat == [
        {
            "model": "sim-a",
            "role": "model",
            "api": "chat",
            "input": [
                {"role": "system", "text": "Be brief."},
                {"role": "user", "text": "What is the capital of France?"},
            ],
            "answer": "Paris is the capital of France.",
            "status": 200,
            "stream": False,
            "replayed": False,
            "input_tokens": chat[0]["input_tokens"],
            "output_tokens": chat[0]["output_tokens"],
            "latency_s": chat[0]["latency_s"],
        }
    ]
    assert chat[0]["input_tokens"] > 0
    assert chat[0]["output_tokens"] > 0
    assert 0 < chat[0]["latency_s"] < 30
    assert entry(report, "test_chat", "sim-b")["transcript"][0]["answer"] == "Lyon, I think."
    for name in ("test_stream", "test_astream"):
        (streamed,) = entry(report, name, "sim-a")["transcript"]
        assert streamed["stream"] is True
        assert streamed["answer"] == "Paris is the capital of France."
        assert streamed["output_tokens"] > 0
    (call,) = entry(report, "test_openai_sdk", "sim-a")["transcript"]
    assert json.loads(call["answer"]) == [
        {"name": "order_status", "arguments": {"order_id": "A-1"}}
    ]
    (responses,) = entry(report, "test_responses", "sim-b")["transcript"]
    assert responses["api"] == "responses"
    assert responses["input"] == [
        {"role": "system", "text": "Be brief."},
        {"role": "user", "text": "capital of France?"},
    ]
    assert responses["answer"] == "Lyon, I think."
    assert report["transcripts"] == {
        "chars": transcript.chars(),
        "budget_mb": 20,
        "dropped_tests": 0,
    }
    # the collection's order, whatever order the workers reported in
    names = [t["test"].split("::")[-1] for t in report["tests"] if t["model"] == "sim-a"]
    assert names == [
        "test_chat",
        "test_stream",
        "test_astream",
        "test_openai_sdk",
        "test_responses",
    ]


def test_the_anthropic_sdk_s_requests_are_in_the_transcript(pytester, write_config):
    write_config(
        CONFIG
        + """
[tool.llm-matrix.models.sim-c]
provider = "simulator"
api = "anthropic"
"""
    )
    pytester.makepyfile(
        """
def test_anthropic(anthropic_client, llm_model):
    with anthropic_client.messages.stream(
        model=llm_model.model, max_tokens=64, system="Be brief.",
        messages=[{"role": "user", "content": "capital of France?"}],
    ) as stream:
        text = "".join(stream.text_stream)
    assert text
    message = anthropic_client.messages.create(
        model=llm_model.model, max_tokens=64,
        messages=[{"role": "user", "content": [{"type": "text", "text": "capital of France?"}]}],
    )
    assert message.content
"""
    )
    result, report = run(pytester, "--models=sim-c")
    result.assert_outcomes(passed=1)
    streamed, whole = entry(report, "test_anthropic", "sim-c")["transcript"]
    assert streamed["api"] == "messages"
    assert streamed["stream"] is True
    assert streamed["input"] == [
        {"role": "system", "text": "Be brief."},
        {"role": "user", "text": "capital of France?"},
    ]
    assert streamed["answer"] == "Paris is the capital of France."
    assert streamed["output_tokens"] > 0
    assert whole["stream"] is False
    assert whole["input"] == [{"role": "user", "text": "capital of France?"}]
    assert whole["answer"] == "Paris is the capital of France."


def test_a_bound_cached_client_and_a_failing_request(pytester, write_config):
    """A client the code under test built once, at import (bound by llm_sdks), and a request
    that fails after its retries: both in the transcript, the failure said."""
    write_config(
        CONFIG
        + """
[tool.llm-matrix.models.sim-down]
provider = "simulator"
simulate = { faults = [{ kind = "500", every = 1 }] }
"""
    )
    pytester.makepyfile(
        app="""
import openai
CLIENT = openai.OpenAI(api_key="sk-app", base_url="http://127.0.0.1:9/v1")

def ask(question):
    reply = CLIENT.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": question}])
    return reply.choices[0].message.content
"""
    )
    pytester.makepyfile(
        test_app="""
import app

def test_app(llm_sdks):
    assert "Paris" in app.ask("What is the capital of France?")
"""
    )
    result, report = run(
        pytester, "--models=sim-a,sim-down", "--llm-max-attempts=2", "--llm-rewrite-model"
    )
    result.assert_outcomes(passed=1, failed=1)
    (bound,) = entry(report, "test_app", "sim-a")["transcript"]
    assert bound["answer"] == "Paris is the capital of France."
    assert bound["input"] == [{"role": "user", "text": "What is the capital of France?"}]
    (failed,) = entry(report, "test_app", "sim-down")["transcript"]
    assert failed["status"] == 500
    assert failed["answer"].startswith("failed: sim-down: HTTP 500")
    assert "gave up after 2 attempts" in failed["answer"]
    assert "sim-down" in entry(report, "test_app", "sim-down")["failure"]


def test_texts_are_cut_and_long_conversations_keep_their_last_messages(pytester, write_config):
    write_config(CONFIG)
    pytester.makepyfile(
        """
def test_long(llm):
    history = [{"role": "user", "content": f"message {i} " + "x" * 200} for i in range(25)]
    llm.chat(history)
    for _ in range(55):
        llm.complete("again")
"""
    )
    result, report = run(pytester, "--models=sim-a", "--llm-transcript-chars=50")
    result.assert_outcomes(passed=1)
    test = entry(report, "test_long", "sim-a")
    assert len(test["transcript"]) == transcript.MAX_EXCHANGES
    assert test["transcript_more"] == 56 - transcript.MAX_EXCHANGES
    messages = test["transcript"][0]["input"]
    assert messages[0] == {"role": "note", "text": "[5 earlier messages not kept]"}
    assert len(messages) == 1 + transcript.MAX_MESSAGES
    assert messages[1]["text"] == "message 5 " + "x" * 40 + "\n[... 160 more characters not kept]"


def test_no_transcripts_with_zero_chars(pytester, write_config):
    write_config(CONFIG)
    pytester.makepyfile("def test_one(llm):\n    llm.complete('hi')\n")
    result, report = run(pytester, "--models=sim-a", "--llm-transcript-chars=0")
    result.assert_outcomes(passed=1)
    assert "transcript" not in report["tests"][0]


def test_the_report_s_budget_drops_the_transcripts_past_it(pytester, write_config):
    """Past the budget, a failing test's transcript takes the place of the last passed
    test's; a passing test's is dropped."""
    long = "y" * 300_000
    write_config(CONFIG.replace('default_reply = "ok"', f'default_reply = "{long}"'))
    pytester.makepyfile(
        """
import pytest

@pytest.mark.parametrize("n", range(6))
def test_big(llm, n):
    assert len(llm.complete(f"tell me {n}")) == 300_000
    assert n not in (4, 5)
"""
    )
    result, report = run(
        pytester,
        "--models=sim-a",
        "--llm-transcript-chars=1000000",
        "--llm-transcript-budget=1",
        "-p",
        "no:xdist",
    )
    result.assert_outcomes(passed=4, failed=2)
    kept = {t["test"].split("[")[-1].rstrip("]"): "transcript" in t for t in report["tests"]}
    # 3 x 300 KB fit in a megabyte: 0, 1, 2; 3 does not; 4 and 5 fail and take 2's and 1's place
    assert kept == {"0": True, "1": False, "2": False, "3": False, "4": True, "5": True}
    assert report["transcripts"]["dropped_tests"] == 3
    for test in report["tests"]:
        if "transcript" in test:
            assert test["transcript"][0]["answer"] == "y" * 300_000
            assert "transcript_more" not in test
        else:
            assert test["transcript_more"] == 1


def test_a_key_in_a_prompt_or_an_answer_is_masked_everywhere(pytester, write_config, monkeypatch):
    secret = "sk-transcript-0123456789abcdefSECRET"
    monkeypatch.setenv("TRANSCRIPT_TEST_KEY", secret)
    write_config(
        f"""
[tool.llm-matrix.models.keyed]
provider = "simulator"
api_key_env = "TRANSCRIPT_TEST_KEY"
simulate = {{ api_key = "{secret}" }}

[tool.llm-matrix.simulator]
rules = [{{ match = "echo", reply = "your key is {secret}, split: {secret[:10]} {secret[10:]}" }}]
"""
    )
    pytester.makepyfile(
        """
import os

def test_echo(llm):
    llm.complete("echo " + os.environ["TRANSCRIPT_TEST_KEY"])
    "".join(llm.stream("echo streamed " + os.environ["TRANSCRIPT_TEST_KEY"]))
    assert False, "failed with " + os.environ["TRANSCRIPT_TEST_KEY"]
"""
    )
    result, report = run(
        pytester,
        "--models=keyed",
        "--llm-html=r.html",
        "--junitxml=j.xml",
        "--llm-junit-transcripts",
    )
    result.assert_outcomes(failed=1)
    test = entry(report, "test_echo", "keyed")
    assert len(test["transcript"]) == 2
    assert all("*" in e["answer"] and "*" in e["input"][0]["text"] for e in test["transcript"])
    for name in ("r.json", "r.html", "j.xml"):
        assert secret not in (pytester.path / name).read_text(), name
    assert secret not in result.stdout.str()


def test_junit_properties_only_when_asked(pytester, write_config):
    write_config(CONFIG)
    pytester.makepyfile("def test_one(llm):\n    llm.complete('capital of France')\n")
    for asked in ([], ["--llm-junit-transcripts"]):
        result, _ = run(pytester, "--models=sim-a", "--junitxml=j.xml", *asked)
        result.assert_outcomes(passed=1)
        case = ET.parse(pytester.path / "j.xml").getroot().find(".//testcase")
        assert case is not None
        properties = {p.get("name"): p.get("value") for p in case.iter("property")}
        if asked:
            (kept,) = json.loads(properties["llm_transcript"])
            assert kept["answer"] == "Paris is the capital of France."
        else:
            assert "llm_transcript" not in properties
            assert properties["llm_model"] == "sim-a"


def test_a_replayed_run_shows_the_recorded_answers(pytester, write_config):
    write_config(CONFIG)
    pytester.makepyfile(TESTS)
    result, recorded = run(pytester, "--models=all", "--llm-record=new")
    result.assert_outcomes(passed=10)
    result, replayed = run(pytester, "--models=all", "--llm-record=replay")
    result.assert_outcomes(passed=10)
    for was, now in zip(recorded["tests"], replayed["tests"], strict=True):
        assert was["nodeid"] == now["nodeid"]
        assert [e["answer"] for e in was["transcript"]] == [e["answer"] for e in now["transcript"]]
        assert [e["input"] for e in was["transcript"]] == [e["input"] for e in now["transcript"]]
        assert all(e["replayed"] for e in now["transcript"])
        assert not any(e["replayed"] for e in was["transcript"])


def test_a_repeated_test_s_runs_each_have_their_transcript(pytester, write_config):
    write_config(CONFIG)
    pytester.makepyfile(
        """
def test_rep(llm):
    llm.complete("capital of France")
"""
    )
    result, report = run(pytester, "--models=sim-a", "--llm-repeat=3")
    result.assert_outcomes(passed=1, skipped=2)
    (test,) = report["tests"]
    assert [e["run"] for e in test["transcript"]] == [1, 2, 3]


@pytest.mark.parametrize(
    ("api", "raw", "answer"),
    [
        (
            "chat",
            'data: {"choices":[{"index":0,"delta":{"content":"Hel"}}]}\n\n'
            'data: {"choices":[{"index":0,"delta":{"content":"lo"}}]}\n\ndata: [DONE]\n\n',
            "Hello",
        ),
        (
            "chat",
            'data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":'
            '{"name":"f","arguments":"{\\"a\\""}}]}}]}\n\n'
            'data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":'
            '{"arguments":": 1}"}}]}}]}\n\n',
            '[{"name": "f", "arguments": {"a": 1}}]',
        ),
        (
            "messages",
            'event: content_block_start\ndata: {"type":"content_block_start","index":0,'
            '"content_block":{"type":"thinking","thinking":""}}\n\n'
            'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
            '"delta":{"type":"thinking_delta","thinking":"hmm"}}\n\n'
            'event: content_block_start\ndata: {"type":"content_block_start","index":1,'
            '"content_block":{"type":"text","text":""}}\n\n'
            'event: content_block_delta\ndata: {"type":"content_block_delta","index":1,'
            '"delta":{"type":"text_delta","text":"Hi"}}\n\n',
            "\nHi",
        ),
        ("chat", "data: {not json}\n\ndata: [DONE]\n\n", ""),
        ("chat", 'data: {"error": {"message": "overloaded"}}\n\n', "error: overloaded"),
        (
            "chat",
            'data: {"choices":[{"delta":{"content":"start "}}]}\n\n'
            'data: {"error": {"message": "boom"}}\n\n',
            "start \nerror: boom",
        ),
        (
            "chat",
            'data: {"error": null, "choices":[{"delta":{"content":"Hello"}}]}\n\n',
            "Hello",
        ),
        (
            "messages",
            'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
            '"delta":{"type":"text_delta","text":"Hel"}}\n\n'
            'event: error\ndata: {"type":"error","error":{"type":"overloaded_error",'
            '"message":"Overloaded"}}\n\n',
            "Hel\nerror: Overloaded",
        ),
        (
            "responses",
            'event: response.failed\ndata: {"type":"response.failed","response":{"output":[],'
            '"error":{"code":"server_error","message":"The model failed"}}}\n\n',
            "error: The model failed",
        ),
        ("responses", 'event: response.incomplete\ndata: {"response": 7}\n\n', ""),
        ("chat", 'data: {"choices":[{"delta":{"tool_calls": 5}}]}\n\n', ""),
        ("chat", 'data: {"choices":[{"delta":{"tool_calls": [true]}}]}\n\n', ""),
    ],
    ids=[
        "chat",
        "tool-call",
        "anthropic-thinking",
        "garbage",
        "error",
        "error-after-text",
        "error-null",
        "anthropic-error-event",
        "responses-failed",
        "response-not-an-object",
        "tool-calls-a-number",
        "tool-call-not-an-object",
    ],
)
def test_stream_answers(api, raw, answer):
    assert transcript.stream_answer(api, raw.encode()) == answer


@pytest.mark.parametrize(
    ("body", "shown"),
    [
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "text", "text": "a"},
                            {"type": "image_url", "image_url": {}},
                        ],
                    }
                ]
            },
            [{"role": "user", "text": "a\n[image_url]"}],
        ),
        ({"input": ["one", "two"], "model": "e"}, [{"role": "input", "text": '["one", "two"]'}]),
        ({"messages": "nonsense"}, []),
        (None, []),
    ],
    ids=["parts", "embeddings", "nonsense", "no-body"],
)
def test_inputs(body, shown):
    assert transcript.input_of("chat" if body and "messages" in body else "other", body) == shown


def test_answers_of_whole_bodies():
    assert transcript.answer_of(
        "chat", {"choices": [{"message": {"content": "a"}}, {"message": {"content": "b"}}]}
    ) == ("[choice 0] a\n[choice 1] b")
    assert (
        transcript.answer_of(
            "messages",
            {"type": "message", "content": [{"type": "tool_use", "name": "f", "input": {"x": 1}}]},
        )
        == '{"name": "f", "input": {"x": 1}}'
    )
    assert transcript.answer_of("other", {"data": [{"embedding": [0.1]}]}) == "[1 result]"
    assert transcript.answer_of("chat", {"error": {"message": "no"}}) == "error: no"
    assert transcript.answer_of("chat", [1]) == "[1]"


def test_nesting_past_the_parser_or_the_stack_is_said_not_raised():
    deep = {"messages": [{"role": "user", "content": []}]}
    blocks = deep["messages"][0]["content"]
    for _ in range(5000):
        inner: list = []
        blocks.append({"type": "tool_result", "content": inner})
        blocks = inner
    assert transcript.input_of("chat", deep) == [
        {"role": "note", "text": "[messages nested too deep to show]"}
    ]
    nested: list = []
    for _ in range(5000):
        nested = [nested]
    assert transcript.answer_of("other", {"result": nested}) == "[not JSON text]"
    raw = "data: " + "[" * 100_000 + "]" * 100_000 + "\n\n"
    assert transcript.stream_answer("chat", raw.encode()) == ""
    arguments = "[" * 100_000 + "]" * 100_000  # the arguments' text: JSON too deep to parse
    call = {"index": 0, "function": {"name": "f", "arguments": arguments}}
    event = {"choices": [{"index": 0, "delta": {"tool_calls": [call]}}]}
    shown = transcript.stream_answer("chat", f"data: {json.dumps(event)}\n\n".encode())
    assert shown.startswith('[{"name": "f", "arguments": "[[[')


def test_bytes_that_are_no_json_are_cut_as_text():
    assert transcript.text_of(b"plain", 100) == "plain"
    assert transcript.text_of("é".encode() * 300, 100) == "é" * 100 + (
        "\n[... 400 more bytes not kept]"
    )
    assert transcript.text_of(b"\xff" * 10, 100) == "\ufffd" * 10


def test_a_stream_left_open_and_a_stream_left_early(pytester, write_config):
    """A stream its test never reads is in the transcript, said cut; ``llm.last`` is None
    after a stream left before its end, not the answer before it."""
    write_config(CONFIG)
    pytester.makepyfile(
        """
def test_abandoned(llm_http_client, llm_model):
    body = {"model": llm_model.model, "stream": True,
            "messages": [{"role": "user", "content": "capital of France"}]}
    request = llm_http_client.build_request("POST", "/chat/completions", json=body)
    llm_http_client.send(request, stream=True)

def test_left_early(llm):
    llm.complete("capital of France")
    for _ in llm.stream("capital of France"):
        break
    assert llm.last is None
"""
    )
    result, report = run(pytester, "--models=sim-a")
    result.assert_outcomes(passed=2)
    (abandoned,) = entry(report, "test_abandoned", "sim-a")["transcript"]
    assert abandoned["stream"] is True
    assert abandoned["answer"].endswith("[the stream ended before its final event]")
    assert abandoned["input"] == [{"role": "user", "text": "capital of France"}]


def test_a_failing_test_too_big_for_the_budget_evicts_nothing(pytester, write_config):
    long = "y" * 300_000
    write_config(CONFIG.replace('default_reply = "ok"', f'default_reply = "{long}"'))
    pytester.makepyfile(
        """
def test_small(llm):
    llm.complete("one")

def test_huge(llm):
    for n in range(4):
        llm.complete(f"again {n}")
    assert False
"""
    )
    result, report = run(
        pytester, "--models=sim-a", "--llm-transcript-chars=1000000", "--llm-transcript-budget=1"
    )
    result.assert_outcomes(passed=1, failed=1)
    assert "transcript" in entry(report, "test_small", "sim-a")
    assert entry(report, "test_huge", "sim-a")["transcript_more"] == 4
    assert report["transcripts"]["dropped_tests"] == 1
