"""Tests for the loopback simulator, driven by the official SDKs over real loopback HTTP."""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import threading
import time

import anthropic
import httpx2
import openai
import pytest

from pytest_llm_matrix.simulator import (
    DEFAULT_REPLY,
    Simulator,
    SimulatorConfig,
    SimulatorConfigError,
    load_config,
    parse_config,
)

USER_HELLO = [{"role": "user", "content": "hello"}]


def tokens(text):
    return max(1, math.ceil(len(text) / 4))


@pytest.fixture
def start(simulator):
    """Start a simulator for a config dict (conftest's ``simulator``); stopped at teardown."""
    return simulator


@pytest.fixture
def clients():
    """Build SDK clients against a simulator; all are closed at teardown."""
    made = []

    class Clients:
        @staticmethod
        def openai(sim, api_key="sk-test", **options):
            client = openai.OpenAI(
                base_url=sim.url + "/v1", api_key=api_key, max_retries=0, **options
            )
            made.append(client)
            return client

        @staticmethod
        def anthropic(sim, api_key="sk-test", **options):
            client = anthropic.Anthropic(
                base_url=sim.url, api_key=api_key, max_retries=0, **options
            )
            made.append(client)
            return client

    yield Clients
    for client in made:
        client.close()


def chat(client, model, prompt="hello", **options):
    return client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": prompt}], **options
    )


def message(client, model, prompt="hello", **options):
    options.setdefault("max_tokens", 200)
    return client.messages.create(
        model=model, messages=[{"role": "user", "content": prompt}], **options
    )


# --- OpenAI chat completions -------------------------------------------------------------


def test_chat_default_reply_with_usage(start, clients):
    sim = start()
    result = chat(clients.openai(sim), "sim-a")
    reply = DEFAULT_REPLY.replace("{model}", "sim-a")
    assert result.object == "chat.completion"
    assert result.model == "sim-a"
    assert result.choices[0].message.content == reply
    assert result.choices[0].message.role == "assistant"
    assert result.choices[0].finish_reason == "stop"
    assert result.usage.prompt_tokens == tokens("hello") + 3
    assert result.usage.completion_tokens == tokens(reply)
    assert result.usage.total_tokens == result.usage.prompt_tokens + tokens(reply)
    assert result.usage.prompt_tokens_details.cached_tokens == 0


def test_prompt_tokens_count_every_message(start, clients):
    sim = start()
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "first question"}]},
        {"role": "assistant", "content": "an answer"},
        {"role": "user", "content": "second"},
    ]
    result = clients.openai(sim).chat.completions.create(model="m", messages=messages)
    texts = ["be brief", "first question", "an answer", "second"]
    assert result.usage.prompt_tokens == sum(tokens(text) + 3 for text in texts)


def test_chat_stream_with_usage(start, clients):
    sim = start({"default_reply": "Streaming works for {model} in pieces."})
    stream = chat(clients.openai(sim), "m1", stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert text == "Streaming works for m1 in pieces."
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage.completion_tokens == tokens(text)
    assert chunks[-1].usage.prompt_tokens == tokens("hello") + 3


def test_chat_stream_without_usage_ends_with_done(start):
    sim = start()
    body = {"model": "m", "messages": USER_HELLO, "stream": True}
    response = httpx2.post(sim.url + "/v1/chat/completions", json=body)
    assert response.headers["content-type"].startswith("text/event-stream")
    events = [line for line in response.text.split("\n\n") if line]
    assert events[-1] == "data: [DONE]"
    assert all('"usage"' not in event for event in events)


@pytest.mark.parametrize("limit", ["max_tokens", "max_completion_tokens"])
def test_chat_max_tokens_truncates(start, clients, limit):
    sim = start({"default_reply": "a fairly long reply that will not fit"})
    result = chat(clients.openai(sim), "m", **{limit: 3})
    assert result.choices[0].message.content == "a fairly lon"
    assert result.choices[0].finish_reason == "length"
    assert result.usage.completion_tokens == 3


# --- Rules, default reply, wrong answers --------------------------------------------------


def test_rules_model_rules_win_then_global_then_default(start, clients):
    sim = start(
        {
            "default_reply": "default for {model}",
            "rules": [
                {"match": "(?i)refund", "reply": "global refund"},
                {"match": "weather", "reply": "sunny"},
            ],
            "models": {
                "special": {"rules": [{"match": "refund", "reply": "special refund"}]},
                "plain": {},
            },
        }
    )
    client = clients.openai(sim)
    assert chat(client, "plain", "I want a REFUND").choices[0].message.content == "global refund"
    assert chat(client, "special", "a refund please").choices[0].message.content == (
        "special refund"
    )
    assert chat(client, "special", "the weather?").choices[0].message.content == "sunny"
    assert chat(client, "plain", "nothing").choices[0].message.content == "default for plain"


def test_rules_match_only_the_last_user_message(start, clients):
    sim = start({"rules": [{"match": "refund", "reply": "refund"}]})
    messages = [
        {"role": "user", "content": "refund"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "thanks"},
    ]
    result = clients.openai(sim).chat.completions.create(model="m", messages=messages)
    assert result.choices[0].message.content == DEFAULT_REPLY.replace("{model}", "m")


def test_rules_match_the_system_prompt_and_the_whole_conversation(start, clients):
    """Two tests that differ only in their system prompt get different replies, through
    every API the simulator speaks; ``conversation`` searches every message."""
    sim = start(
        {
            "rules": [
                {"system": "(?i)pirate", "match": "hello", "reply": "Ahoy"},
                {"system": "(?i)formal", "reply": "Good day"},
                {"conversation": "(?m)^assistant: .*order 42", "reply": "About order 42"},
            ],
        }
    )
    client = clients.openai(sim)

    def openai_chat(system, user, history=()):
        messages = [{"role": "system", "content": system}, *history]
        messages.append({"role": "user", "content": user})
        answer = client.chat.completions.create(model="m", messages=messages)
        return answer.choices[0].message.content

    assert openai_chat("You are a pirate.", "hello") == "Ahoy"
    assert openai_chat("You are a pirate.", "bye") != "Ahoy"  # both patterns must match
    assert openai_chat("Be formal.", "hello") == "Good day"
    assert openai_chat("Be plain.", "hello") == DEFAULT_REPLY.replace("{model}", "m")
    history = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "order 42?"}]
    assert openai_chat("Be plain.", "yes", history) == "About order 42"
    developer = client.chat.completions.create(
        model="m",
        messages=[{"role": "developer", "content": "pirate"}, {"role": "user", "content": "hello"}],
    )
    assert developer.choices[0].message.content == "Ahoy"
    responses = client.responses.create(model="m", instructions="Be formal.", input="hello")
    assert responses.output_text == "Good day"
    message = clients.anthropic(sim).messages.create(
        model="m", max_tokens=50, system="You are a pirate.",
        messages=[{"role": "user", "content": "hello"}],
    )  # fmt: skip
    assert message.content[0].text == "Ahoy"


def test_n_gives_that_many_choices(start, clients):
    sim = start({"default_reply": "same answer"})
    client = clients.openai(sim)
    messages = [{"role": "user", "content": "hi"}]
    one = client.chat.completions.create(model="m", messages=messages)
    three = client.chat.completions.create(model="m", messages=messages, n=3)
    assert [c.index for c in three.choices] == [0, 1, 2]
    assert {c.message.content for c in three.choices} == {"same answer"}
    assert three.usage.completion_tokens == 3 * one.usage.completion_tokens
    texts: dict[int, str] = {}
    with client.chat.completions.create(model="m", messages=messages, n=2, stream=True) as s:
        for chunk in s:
            for choice in chunk.choices:
                texts[choice.index] = texts.get(choice.index, "") + (choice.delta.content or "")
    assert texts == {0: "same answer", 1: "same answer"}
    for bad in (0, 129, "2", True):
        with pytest.raises(openai.BadRequestError, match="'n' must be an integer from 1 to 128"):
            client.chat.completions.create(model="m", messages=messages, n=bad)


def test_embeddings_are_deterministic_unit_vectors_with_usage(start, clients):
    import math

    import httpx

    sim = start({"models": {"embed": {}}})
    client = clients.openai(sim)
    result = client.embeddings.create(model="embed", input=["alpha", "beta", "alpha"])
    vectors = [item.embedding for item in result.data]  # the SDK asked for base64
    assert [len(v) for v in vectors] == [16, 16, 16]
    assert vectors[0] == pytest.approx(vectors[2])
    assert vectors[0] != pytest.approx(vectors[1])
    assert all(math.isclose(sum(x * x for x in v), 1.0, rel_tol=1e-5) for v in vectors)
    assert result.usage.prompt_tokens == result.usage.total_tokens > 0
    plain = httpx.post(
        sim.url + "/v1/embeddings",
        json={"model": "embed", "input": "alpha", "dimensions": 8, "encoding_format": "float"},
    ).json()
    assert len(plain["data"][0]["embedding"]) == 8
    again = client.embeddings.create(model="embed", input="alpha", dimensions=8)
    assert again.data[0].embedding == pytest.approx(plain["data"][0]["embedding"], rel=1e-6)
    for bad in ({"input": []}, {"input": [1]}, {"input": "x", "dimensions": 0}):
        response = httpx.post(sim.url + "/v1/embeddings", json={"model": "embed", **bad})
        assert response.status_code == 400, bad
    unknown = httpx.post(sim.url + "/v1/embeddings", json={"model": "nope", "input": "x"})
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "model_not_found"
    assert sim.stats()["requests"] == {"embed": 6, "nope": 1}  # bad requests count too


def test_wrong_answers(start, clients):
    sim = start(
        {
            "rules": [{"match": "capital", "reply": "Paris"}],
            "models": {
                "good": {},
                "bad": {"wrong": ["(?i)capital"], "wrong_reply": "Lyon"},
                "shy": {"wrong": ["capital"]},
            },
        }
    )
    client = clients.openai(sim)
    prompt = "What is the capital of France?"
    assert chat(client, "good", prompt).choices[0].message.content == "Paris"
    assert chat(client, "bad", prompt).choices[0].message.content == "Lyon"
    assert chat(client, "shy", prompt).choices[0].message.content == "I don't know."
    assert chat(client, "bad", "hello").choices[0].message.content != "Lyon"


# --- OpenAI responses ---------------------------------------------------------------------


def test_responses_string_and_list_input(start, clients):
    sim = start({"rules": [{"match": "ping", "reply": "pong"}]})
    client = clients.openai(sim)
    result = client.responses.create(model="r", input="ping")
    assert result.object == "response"
    assert result.status == "completed"
    assert result.output_text == "pong"
    assert result.usage.input_tokens == tokens("ping") + 3
    assert result.usage.output_tokens == tokens("pong")
    listed = client.responses.create(
        model="r",
        instructions="be terse",
        input=[{"role": "user", "content": [{"type": "input_text", "text": "ping again"}]}],
    )
    assert listed.output_text == "pong"
    assert listed.usage.input_tokens == tokens("ping again") + tokens("be terse") + 6


def test_responses_stream(start, clients):
    sim = start({"default_reply": "streamed response text"})
    client = clients.openai(sim)
    events = list(client.responses.create(model="r", input="hi", stream=True))
    assert events[0].type == "response.created"
    deltas = [event.delta for event in events if event.type == "response.output_text.delta"]
    assert "".join(deltas) == "streamed response text"
    assert events[-1].type == "response.completed"
    assert events[-1].response.usage.output_tokens == tokens("streamed response text")
    with client.responses.stream(model="r", input="hi") as stream:
        final = stream.get_final_response()
    assert final.output_text == "streamed response text"
    assert final.usage.input_tokens == tokens("hi") + 3


def test_responses_max_output_tokens_is_incomplete(start, clients):
    sim = start({"default_reply": "twelve chars and more"})
    client = clients.openai(sim)
    result = client.responses.create(model="r", input="hi", max_output_tokens=3)
    assert result.status == "incomplete"
    assert result.incomplete_details.reason == "max_output_tokens"
    assert result.output_text == "twelve chars"
    events = list(client.responses.create(model="r", input="hi", max_output_tokens=3, stream=True))
    assert events[-1].type == "response.incomplete"


# --- Anthropic messages -------------------------------------------------------------------


def test_anthropic_message_with_system_and_blocks(start, clients):
    sim = start({"rules": [{"match": "hola", "reply": "hola!"}]})
    client = clients.anthropic(sim)
    result = client.messages.create(
        model="claude-sim",
        max_tokens=100,
        system=[{"type": "text", "text": "be kind"}],
        messages=[{"role": "user", "content": [{"type": "text", "text": "hola"}]}],
    )
    assert result.type == "message"
    assert result.content[0].text == "hola!"
    assert result.stop_reason == "end_turn"
    assert result.usage.input_tokens == tokens("hola") + tokens("be kind") + 6
    assert result.usage.output_tokens == tokens("hola!")
    assert result.usage.cache_read_input_tokens == 0
    text_system = message(client, "claude-sim", "hola", system="be kind")
    assert text_system.usage.input_tokens == result.usage.input_tokens


def test_anthropic_max_tokens_truncates(start, clients):
    sim = start({"default_reply": "0123456789abcdef"})
    result = message(clients.anthropic(sim), "c", max_tokens=2)
    assert result.content[0].text == "01234567"
    assert result.stop_reason == "max_tokens"
    assert result.usage.output_tokens == 2


def test_anthropic_stream(start, clients):
    sim = start({"default_reply": "a streamed anthropic reply"})
    client = clients.anthropic(sim)
    with client.messages.stream(
        model="c", max_tokens=100, messages=[{"role": "user", "content": "hello"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "a streamed anthropic reply"
    assert final.content[0].text == text
    assert final.stop_reason == "end_turn"
    assert final.usage.input_tokens == tokens("hello") + 3
    assert final.usage.output_tokens == tokens(text)
    raw = message(client, "c", stream=True)
    types = [event.type for event in raw]
    assert types[:2] == ["message_start", "content_block_start"]
    assert types[-3:] == ["content_block_stop", "message_delta", "message_stop"]


# --- Auth, unknown models, bad requests ---------------------------------------------------


def test_wrong_api_key_is_401(start, clients):
    sim = start({"models": {"locked": {"api_key": "sk-right"}}})
    with pytest.raises(openai.AuthenticationError) as caught:
        chat(clients.openai(sim, api_key="sk-wrong"), "locked")
    assert caught.value.code == "invalid_api_key"
    assert chat(clients.openai(sim, api_key="sk-right"), "locked").choices
    with pytest.raises(anthropic.AuthenticationError) as anthropic_caught:
        message(clients.anthropic(sim, api_key="sk-wrong"), "locked")
    assert anthropic_caught.value.body["error"]["type"] == "authentication_error"
    assert message(clients.anthropic(sim, api_key="sk-right"), "locked").content


def test_unknown_model_is_404_when_models_are_listed(start, clients):
    sim = start({"models": {"known": {}}})
    with pytest.raises(openai.NotFoundError) as caught:
        chat(clients.openai(sim), "unknown")
    assert caught.value.code == "model_not_found"
    with pytest.raises(anthropic.NotFoundError) as anthropic_caught:
        message(clients.anthropic(sim), "unknown")
    assert anthropic_caught.value.body["error"]["type"] == "not_found_error"
    assert chat(clients.openai(sim), "known").choices


def test_bad_requests_are_400_in_provider_format(start):
    sim = start()
    not_json = httpx2.post(sim.url + "/v1/chat/completions", content=b"{nope")
    assert not_json.status_code == 400
    assert not_json.json()["error"]["type"] == "invalid_request_error"
    no_messages = httpx2.post(sim.url + "/v1/chat/completions", json={"model": "m"})
    assert no_messages.status_code == 400
    no_model = httpx2.post(sim.url + "/v1/messages", json={"messages": USER_HELLO})
    assert no_model.status_code == 400
    assert no_model.json() == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": no_model.json()["error"]["message"]},
    }


def test_models_endpoint(start, clients):
    sim = start({"models": {"one": {}, "two": {}}})
    assert [model.id for model in clients.openai(sim).models.list()] == ["one", "two"]
    assert [model.id for model in clients.anthropic(sim).models.list()] == ["one", "two"]
    payload = httpx2.get(sim.url + "/v1/models").json()
    assert payload["object"] == "list"
    assert payload["data"][0]["owned_by"] == "simulator"


# --- Rate limits and status faults --------------------------------------------------------


def test_fault_429_headers_and_match(start, clients):
    fault = {"kind": "429", "first": 2, "match": "flaky", "retry_after": 1.5}
    fault["retry_after_ms"] = 1500
    sim = start({"models": {"m": {"faults": [fault]}}})
    body = {"model": "m", "messages": [{"role": "user", "content": "flaky prompt"}]}
    first = httpx2.post(sim.url + "/v1/chat/completions", json=body)
    assert first.status_code == 429
    assert first.headers["retry-after"] == "2"
    assert first.headers["retry-after-ms"] == "1500"
    assert first.json()["error"]["code"] == "rate_limit_exceeded"
    client = clients.openai(sim)
    assert chat(client, "m", "steady prompt").choices  # does not match, does not count
    with pytest.raises(openai.RateLimitError):
        chat(client, "m", "flaky again")
    assert chat(client, "m", "flaky third time").choices  # first = 2 is used up
    assert sim.stats()["faults"] == {"m": {"429": 2}}


def test_quota_429(start, clients):
    sim = start({"models": {"m": {"faults": [{"kind": 429, "every": 1, "quota": True}]}}})
    with pytest.raises(openai.RateLimitError) as caught:
        chat(clients.openai(sim), "m")
    assert caught.value.code == "insufficient_quota"
    assert caught.value.body["type"] == "insufficient_quota"
    assert "retry-after" not in caught.value.response.headers


@pytest.mark.parametrize(
    ("kind", "anthropic_error", "anthropic_type"),
    [
        ("500", anthropic.InternalServerError, "api_error"),
        ("503", anthropic.InternalServerError, "api_error"),
        ("529", anthropic.OverloadedError, "overloaded_error"),
    ],
)
def test_server_error_faults(start, clients, kind, anthropic_error, anthropic_type):
    sim = start({"models": {"m": {"faults": [{"kind": kind, "every": 1}]}}})
    with pytest.raises(openai.InternalServerError) as caught:
        chat(clients.openai(sim), "m")
    assert caught.value.status_code == int(kind)
    assert caught.value.body["type"] == "server_error"
    with pytest.raises(anthropic_error) as anthropic_caught:
        message(clients.anthropic(sim), "m")
    assert anthropic_caught.value.status_code == int(kind)
    assert anthropic_caught.value.body["error"]["type"] == anthropic_type


def test_every_n_schedule_counts_per_model(start, clients):
    sim = start({"models": {"m": {"faults": [{"kind": "503", "every": 3}]}, "other": {}}})
    client = clients.openai(sim)
    outcomes = []
    for _ in range(7):
        chat(client, "other")  # other models do not advance m's counter
        try:
            chat(client, "m")
            outcomes.append("ok")
        except openai.InternalServerError:
            outcomes.append("503")
    assert outcomes == ["ok", "ok", "503", "ok", "ok", "503", "ok"]
    sim.reset()  # counters restart: the next two succeed, the third fails again
    chat(client, "m")
    chat(client, "m")
    with pytest.raises(openai.InternalServerError):
        chat(client, "m")


def test_rpm_limit_really_limits(start, clients):
    sim = start({"models": {"m": {"rpm": 2}}})
    client = clients.openai(sim)
    chat(client, "m")
    chat(client, "m")
    with pytest.raises(openai.RateLimitError) as caught:
        chat(client, "m")
    headers = caught.value.response.headers
    assert 59 <= int(headers["retry-after"]) <= 60
    assert 58_000 < int(headers["retry-after-ms"]) <= 60_000
    assert sim.stats()["statuses"] == {"200": 2, "429": 1}
    sim.reset()
    assert chat(client, "m").choices


# --- Broken answers: malformed, truncated, hanging ----------------------------------------


def test_malformed_json_makes_sdks_raise(start, clients):
    sim = start({"models": {"m": {"faults": [{"kind": "malformed", "every": 1}]}}})
    raw = httpx2.post(sim.url + "/v1/chat/completions", json={"model": "m", "messages": USER_HELLO})
    assert raw.status_code == 200
    assert raw.headers["content-type"] == "application/json"
    with pytest.raises(json.JSONDecodeError):
        raw.json()
    with pytest.raises(ValueError):
        chat(clients.openai(sim), "m")
    with pytest.raises(ValueError):
        list(chat(clients.openai(sim), "m", stream=True))
    with pytest.raises(ValueError):
        message(clients.anthropic(sim), "m")


def test_truncate_stream_ends_without_final_event(start, clients):
    sim = start({"models": {"m": {"faults": [{"kind": "truncate", "every": 1}]}}})
    body = {"model": "m", "messages": USER_HELLO, "stream": True}
    raw = httpx2.post(sim.url + "/v1/chat/completions", json=body)
    assert raw.status_code == 200
    assert "[DONE]" not in raw.text
    assert '"finish_reason": "stop"' not in raw.text
    chunks = list(chat(clients.openai(sim), "m", stream=True))
    assert chunks  # the SDK accepts the cut stream; the answer is just incomplete
    assert all(chunk.choices[0].finish_reason is None for chunk in chunks)
    types = [event.type for event in message(clients.anthropic(sim), "m", stream=True)]
    assert "message_start" in types
    assert "message_stop" not in types
    responses = list(clients.openai(sim).responses.create(model="m", input="hi", stream=True))
    assert responses[-1].type == "response.output_text.delta"


def test_truncate_non_stream_closes_mid_body(start, clients):
    sim = start({"models": {"m": {"faults": [{"kind": "truncate", "every": 1}]}}})
    with pytest.raises(openai.APIConnectionError):
        chat(clients.openai(sim), "m")
    with pytest.raises(anthropic.APIConnectionError):
        message(clients.anthropic(sim), "m")


def test_hang_times_out_the_client(start, clients):
    sim = start({"models": {"m": {"faults": [{"kind": "hang", "every": 1, "hang": 1}]}}})
    began = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        chat(clients.openai(sim, timeout=0.3), "m")
    assert time.monotonic() - began < 0.9


def test_stop_is_fast_while_a_request_hangs(clients):
    sim = Simulator(parse_config({"models": {"m": {"faults": [{"kind": "hang", "every": 1}]}}}))
    sim.start()
    client = clients.openai(sim, timeout=5)
    errors = []

    def call():
        try:
            chat(client, "m")
        except openai.APIError as exc:
            errors.append(exc)

    worker = threading.Thread(target=call)
    worker.start()
    deadline = time.monotonic() + 2
    while sim.stats()["in_flight"] == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    began = time.monotonic()
    sim.stop()
    sim.stop()  # idempotent
    assert time.monotonic() - began < 0.5
    worker.join(2)
    assert isinstance(errors[0], openai.APIConnectionError)


def test_context_manager_and_url():
    sim = Simulator(SimulatorConfig())
    with pytest.raises(RuntimeError):
        _ = sim.url
    with sim as running:
        assert running.url.startswith("http://127.0.0.1:")
        assert httpx2.get(running.url + "/v1/models").json()["data"] == []
    assert sim.stats()["statuses"] == {"200": 1}  # stats outlive the server
    sim.stop()


# --- Timing and concurrency ---------------------------------------------------------------


def test_latency_applies_before_the_response(start, clients):
    sim = start({"models": {"slow": {"latency": 0.2}, "ranged": {"latency": [0.05, 0.1]}}})
    client = clients.openai(sim)
    chat(client, "slow")  # warm the connection so only the latency is measured
    began = time.monotonic()
    chat(client, "slow")
    assert time.monotonic() - began >= 0.2
    began = time.monotonic()
    chat(client, "ranged")
    assert time.monotonic() - began >= 0.05


def test_tokens_per_second_paces_stream_chunks(start, clients):
    sim = start({"default_reply": "x" * 40, "models": {"m": {"tokens_per_second": 50}}})
    arrivals = []
    for chunk in chat(clients.openai(sim), "m", stream=True):
        if chunk.choices and chunk.choices[0].delta.content:
            arrivals.append(time.monotonic())
    assert len(arrivals) == 10
    assert arrivals[-1] - arrivals[0] >= 9 / 50 * 0.9


def test_stats_track_concurrency(start, clients):
    sim = start({"models": {"m": {"latency": 0.3}, "n": {}}})
    client = clients.openai(sim)
    workers = [threading.Thread(target=chat, args=(client, "m")) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    chat(client, "n")
    stats = httpx2.get(sim.url + "/_sim/stats").json()
    assert stats == sim.stats()
    assert stats["requests"] == {"m": 4, "n": 1}
    assert stats["max_in_flight"] == 4
    assert stats["max_in_flight_by_model"] == {"m": 4, "n": 1}
    assert stats["in_flight"] == 0
    assert stats["in_flight_by_model"] == {"m": 0, "n": 0}
    assert stats["statuses"] == {"200": 5}
    assert httpx2.post(sim.url + "/_sim/reset").status_code == 200
    assert sim.stats()["requests"] == {}
    assert sim.stats()["max_in_flight"] == 0


# --- Config -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (
            {"modles": {}},
            "unknown key 'modles' (valid keys: default_reply, flagged, list_models, models, rules,"
            " seed, strict)",
        ),
        ({"models": {"m": {"latncy": 1}}}, "model 'm': unknown key 'latncy'"),
        ({"models": {"m": {"faults": [{"kind": "500", "evry": 2}]}}}, "faults[0]: unknown key"),
        ({"models": {"m": {"latency": "fast"}}}, "model 'm': latency: must be a number"),
        (
            {"models": {"m": {"latency": -1}}},
            "model 'm': latency: must be a finite number from 0 to 86400, got -1",
        ),
        ({"models": {"m": {"latency": [2, 1]}}}, "model 'm': latency: lower bound"),
        ({"models": {"m": {"rpm": -1}}}, "model 'm': rpm: must be from 0 to 1000000, got -1"),
        ({"models": {"m": {"rpm": True}}}, "model 'm': rpm: must be an integer"),
        ({"models": {"m": {"tokens_per_second": -5}}}, "model 'm': tokens_per_second"),
        ({"models": {"m": {"wrong": ["(unclosed"]}}}, "model 'm': wrong[0]: invalid regex"),
        ({"rules": [{"match": "[", "reply": "x"}]}, "test: rules[0].match: invalid regex"),
        ({"rules": [{"match": "x"}]}, "rules[0]: needs 'reply' (the answer's text), 'json'"),
        ({"rules": [{"reply": "x"}]}, "rules[0]: needs at least one of 'match' (the last user"),
        ({"rules": [{"system": "(", "reply": "x"}]}, "test: rules[0].system: invalid regex"),
        ({"rules": [{"conversation": 1, "reply": "x"}]}, "rules[0].conversation:"),
        ({"models": {"m": {"faults": [{"kind": "404", "every": 1}]}}}, "unknown fault kind"),
        ({"models": {"m": {"faults": [{"kind": "500", "every": 0}]}}}, "faults[0].every: must be"),
        ({"models": {"m": {"faults": [{"kind": "500", "first": 0}]}}}, "faults[0].first: must be"),
        ({"models": {"m": {"faults": [{"kind": "500"}]}}}, "exactly one of 'every' or 'first'"),
        (
            {"models": {"m": {"faults": [{"kind": "500", "every": 1, "quota": True}]}}},
            "faults[0].quota: only applies to kind '429'",
        ),
        (
            {"models": {"m": {"faults": [{"kind": "429", "first": 1, "header_prefix": "a: b"}]}}},
            "faults[0].header_prefix: must be up to 40 letters, digits, '-' or '_'",
        ),
        (
            {"models": {"m": {"faults": [{"kind": "500", "first": 1, "header_prefix": "x-"}]}}},
            "faults[0].header_prefix: only applies to kind '429'",
        ),
        ({"models": {"m": {"api_key": 5}}}, "model 'm': api_key: must be a string"),
        ({"models": {"m": []}}, "model 'm': must be a table"),
    ],
)
def test_config_errors_name_the_field(config, expected):
    with pytest.raises(SimulatorConfigError) as caught:
        parse_config(config, source="test")
    assert expected in str(caught.value)
    assert str(caught.value).startswith("test")


def test_load_config_from_toml(tmp_path):
    path = tmp_path / "sim.toml"
    path.write_text(
        'default_reply = "hi from {model}"\n'
        "seed = 3\n"
        "[[rules]]\n"
        'match = "(?i)refund"\n'
        'reply = "refund"\n'
        '[models."sim-fast"]\n'
        "latency = [0.01, 0.02]\n"
        'faults = [{ kind = "429", first = 2, match = "flaky", retry_after = 1 }]\n'
    )
    config = load_config(path)
    assert config.default_reply == "hi from {model}"
    assert config.seed == 3
    assert config.rules[0].reply == "refund"
    model = config.models["sim-fast"]
    assert model.latency == (0.01, 0.02)
    assert model.faults[0].kind == "429"
    assert model.faults[0].retry_after == 1.0
    assert SimulatorConfig().models == {}


def test_load_config_reports_toml_syntax_errors_with_line(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text('seed = 1\n[models."m"]\nlatency = = 2\n')
    with pytest.raises(SimulatorConfigError) as caught:
        load_config(path)
    assert str(path) in str(caught.value)
    assert "line 3" in str(caught.value)
    with pytest.raises(SimulatorConfigError, match="cannot read config"):
        load_config(tmp_path / "missing.toml")


# --- Packaging: cheap import and the command line -----------------------------------------


def test_import_is_cheap():
    code = (
        "import sys, pytest_llm_matrix.simulator\n"
        "heavy = {'httpx', 'httpx2', 'openai', 'anthropic', 'http.server'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_cli_serves_until_sigterm(tmp_path):
    config = tmp_path / "sim.toml"
    config.write_text('[[rules]]\nmatch = "ping"\nreply = "pong"\n')
    command = [sys.executable, "-m", "pytest_llm_matrix.simulator", "--port", "0"]
    process = subprocess.Popen(
        [*command, "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline().strip()
        prefix = "pytest-llm-matrix simulator listening on "
        assert line.startswith(prefix + "http://127.0.0.1:")
        url = line.removeprefix(prefix)
        body = {"model": "m", "messages": [{"role": "user", "content": "ping"}]}
        response = httpx2.post(url + "/v1/chat/completions", json=body)
        assert response.json()["choices"][0]["message"]["content"] == "pong"
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=5)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0
    assert "Traceback" not in stderr


def test_cli_rejects_bad_config(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text("unknown = 1\n")
    result = subprocess.run(
        [sys.executable, "-m", "pytest_llm_matrix.simulator", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert result.returncode == 2
    assert f"{config}: unknown key 'unknown'" in result.stderr
