"""Tests for usage.py: hand-written bodies and streams, then real ones from the simulator."""

from __future__ import annotations

import itertools
import json
import math
import random

import httpx2
import pytest

from pytest_llm_matrix.calls.usage import (
    MAX_ANSWER_COST,
    StreamTracker,
    Usage,
    cost_in,
    cost_value,
    usage_from_body,
)
from pytest_llm_matrix.simulator import Simulator, parse_config

# --- usage_from_body, hand-written bodies -------------------------------------------------


def test_openai_chat_body():
    body = {
        "object": "chat.completion",
        "choices": [],
        "usage": {
            "prompt_tokens": 100,
            "completion_tokens": 20,
            "total_tokens": 120,
            "prompt_tokens_details": {"cached_tokens": 64},
        },
    }
    assert usage_from_body(body) == Usage(input_tokens=100, output_tokens=20, cached_tokens=64)


def test_openai_chat_body_without_details():
    body = {"usage": {"prompt_tokens": 7, "completion_tokens": 3, "prompt_tokens_details": None}}
    assert usage_from_body(body) == Usage(7, 3, 0)


def test_openai_responses_body():
    body = {
        "object": "response",
        "status": "completed",
        "usage": {
            "input_tokens": 50,
            "output_tokens": 5,
            "total_tokens": 55,
            "input_tokens_details": {"cached_tokens": 32},
            "output_tokens_details": {"reasoning_tokens": 0},
        },
    }
    assert usage_from_body(body) == Usage(input_tokens=50, output_tokens=5, cached_tokens=32)


def test_anthropic_body_adds_cache_fields_to_input():
    body = {
        "type": "message",
        "usage": {
            "input_tokens": 10,
            "cache_creation_input_tokens": 200,
            "cache_read_input_tokens": 1000,
            "output_tokens": 30,
        },
    }
    assert usage_from_body(body) == Usage(input_tokens=1210, output_tokens=30, cached_tokens=1000)


def test_anthropic_body_with_null_cache_fields():
    body = {
        "type": "message",
        "usage": {
            "input_tokens": 10,
            "output_tokens": 3,
            "cache_creation_input_tokens": None,
            "cache_read_input_tokens": None,
        },
    }
    assert usage_from_body(body) == Usage(10, 3, 0)


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"error": {"message": "rate limited", "type": "rate_limit_exceeded"}},
        {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
        {"object": "response", "status": "in_progress", "usage": None},
        {"usage": {"total_tokens": 3}},
        {"usage": "12"},
    ],
)
def test_body_without_usage(body):
    assert usage_from_body(body) is None


def test_nonsense_counts_are_zero():
    body = {"usage": {"prompt_tokens": "12", "completion_tokens": -1, "total_tokens": True}}
    assert usage_from_body(body) == Usage(0, 0, 0)


def test_absurd_counts_are_zero_not_an_overflow_later():
    # 10**400 tokens would overflow every price (a float) and the JSON report
    body = {"usage": {"prompt_tokens": 10**400, "completion_tokens": 10**9 + 1}}
    assert usage_from_body(body) == Usage(0, 0, 0)
    assert usage_from_body({"usage": {"input_tokens": 10**9, "output_tokens": 7}}) == Usage(
        10**9, 7, 0
    )


# --- StreamTracker, hand-written streams ----------------------------------------------------


class Clock:
    """A clock that advances one second per reading, so each reading is distinguishable."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        self.now += 1
        return self.now


def sse(*events):
    """Encode events: a dict is a bare `data:` line, a (name, dict) pair a named event."""
    out = []
    for event in events:
        if isinstance(event, tuple):
            name, payload = event
            out.append(f"event: {name}\ndata: {json.dumps(payload)}\n\n")
        elif isinstance(event, dict):
            out.append(f"data: {json.dumps(event)}\n\n")
        else:
            out.append(event)
    return "".join(out).encode()


def chat_chunk(delta=None, usage=None, choices=True):
    chunk = {"object": "chat.completion.chunk", "choices": [], "usage": usage}
    if choices:
        chunk["choices"] = [{"index": 0, "delta": delta or {}, "finish_reason": None}]
    return chunk


CHAT_USAGE = {
    "prompt_tokens": 12,
    "completion_tokens": 4,
    "prompt_tokens_details": {"cached_tokens": 8},
}


def test_chat_stream_first_token_usage_and_done():
    clock = Clock()
    tracker = StreamTracker(clock)
    tracker.feed(sse(chat_chunk({"role": "assistant", "content": ""})))
    assert tracker.first_token_at is None  # a role-only chunk is not a token
    tracker.feed(sse(chat_chunk({"content": "Hi"})))
    assert tracker.first_token_at == 1.0
    tracker.feed(sse(chat_chunk({"content": " there"})))
    assert tracker.first_token_at == 1.0  # set once
    assert tracker.usage is None
    assert not tracker.done
    tracker.feed(sse(chat_chunk(usage=CHAT_USAGE, choices=False)))
    assert tracker.usage == Usage(12, 4, 8)
    assert not tracker.done
    tracker.feed(b"data: [DONE]\n\n")
    assert tracker.done
    assert tracker.error is None


@pytest.mark.parametrize(
    "delta",
    [
        {"tool_calls": [{"index": 0, "id": "call_1", "function": {"name": "f"}}]},
        {"refusal": "I can't help with that."},
    ],
)
def test_chat_tool_calls_and_refusals_are_first_tokens(delta):
    tracker = StreamTracker(Clock())
    tracker.feed(sse(chat_chunk({"role": "assistant", "content": None}), chat_chunk(delta)))
    assert tracker.first_token_at == 1.0


def test_chat_usage_in_a_content_chunk_is_kept():
    tracker = StreamTracker(Clock())
    tracker.feed(sse(chat_chunk({"content": "a"}), chat_chunk({"content": "b"}, CHAT_USAGE)))
    assert tracker.usage == Usage(12, 4, 8)


def test_chat_in_stream_error():
    tracker = StreamTracker()
    tracker.feed(sse(chat_chunk({"content": "a"}), {"error": {"message": "boom", "type": "x"}}))
    assert tracker.error == "boom"
    assert not tracker.done


def test_crlf_comments_unknown_fields_and_bad_json_are_harmless():
    stream = (
        b": keep-alive comment\r\n\r\n"
        b"id: 1\r\nretry: 100\r\ndata: {not json\r\n\r\n"
        b"data: [1, 2]\r\n\r\n"
        b"data: \xff\xfe\r\n\r\n"
        b'data: {"choices": [{"delta": {"content": "x"}}]}\r\n\r\n'
        b'data: {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 1}}\r\n\r\n'
        b"data: [DONE]\r\n\r\n"
    )
    tracker = StreamTracker(Clock())
    tracker.feed(stream)
    assert (tracker.usage, tracker.first_token_at, tracker.done) == (Usage(3, 1, 0), 1.0, True)


def test_multi_line_data_is_joined():
    tracker = StreamTracker()
    tracker.feed(b'data: {"choices": [],\ndata: "usage": {"prompt_tokens": 2}}\n\n')
    assert tracker.usage == Usage(2, 0, 0)


def test_an_event_cut_before_its_blank_line_is_not_dispatched():
    tracker = StreamTracker()
    tracker.feed(sse(chat_chunk(usage=CHAT_USAGE, choices=False))[:-1])
    assert tracker.usage is None


def responses_event(name, **fields):
    return (name, {"type": name, **fields})


def response_object(status, usage=None, error=None):
    return {"object": "response", "status": status, "usage": usage, "error": error}


RESPONSES_USAGE = {
    "input_tokens": 20,
    "output_tokens": 6,
    "input_tokens_details": {"cached_tokens": 4},
}


@pytest.mark.parametrize("final", ["response.completed", "response.incomplete"])
def test_responses_stream(final):
    clock = Clock()
    tracker = StreamTracker(clock)
    tracker.feed(
        sse(
            responses_event("response.created", response=response_object("in_progress")),
            responses_event("response.output_item.added", output_index=0, item={}),
        )
    )
    assert tracker.first_token_at is None
    tracker.feed(sse(responses_event("response.output_text.delta", delta="Hi")))
    assert tracker.first_token_at == 1.0
    assert not tracker.done
    tracker.feed(
        sse(
            responses_event("response.output_text.done", text="Hi"),
            responses_event(final, response=response_object(final[9:], RESPONSES_USAGE)),
        )
    )
    assert (tracker.usage, tracker.done, tracker.error) == (Usage(20, 6, 4), True, None)


@pytest.mark.parametrize(
    "event", ["response.refusal.delta", "response.function_call_arguments.delta"]
)
def test_responses_other_content_deltas(event):
    tracker = StreamTracker(Clock())
    tracker.feed(sse(responses_event(event, delta="x")))
    assert tracker.first_token_at == 1.0


def test_responses_failed_is_final_with_its_error():
    tracker = StreamTracker()
    failed = response_object(
        "failed", RESPONSES_USAGE, {"code": "server_error", "message": "model crashed"}
    )
    tracker.feed(sse(responses_event("response.failed", response=failed)))
    assert (tracker.done, tracker.error, tracker.usage) == (True, "model crashed", Usage(20, 6, 4))


def test_responses_error_event():
    tracker = StreamTracker()
    tracker.feed(sse(responses_event("error", code="server_error", message="oops", param=None)))
    assert tracker.error == "oops"
    assert not tracker.done


def anthropic_event(name, **fields):
    return (name, {"type": name, **fields})


def message_start(**usage):
    return anthropic_event("message_start", message={"type": "message", "usage": usage})


def test_anthropic_stream_output_is_cumulative():
    tracker = StreamTracker(Clock())
    tracker.feed(
        sse(
            message_start(
                input_tokens=10,
                cache_creation_input_tokens=5,
                cache_read_input_tokens=100,
                output_tokens=1,
            ),
            anthropic_event("content_block_start", index=0, content_block={"type": "text"}),
            anthropic_event("ping"),
        )
    )
    assert tracker.usage == Usage(115, 1, 100)
    assert tracker.first_token_at is None
    tracker.feed(sse(anthropic_event("content_block_delta", index=0, delta={"text": "Hi"})))
    assert tracker.first_token_at == 1.0
    tracker.feed(sse(anthropic_event("message_delta", delta={}, usage={"output_tokens": 7})))
    tracker.feed(sse(anthropic_event("message_delta", delta={}, usage={"output_tokens": 9})))
    assert tracker.usage == Usage(115, 9, 100)  # cumulative: the latest count, not a sum
    assert not tracker.done
    tracker.feed(sse(anthropic_event("message_stop")))
    assert tracker.done


def test_anthropic_message_delta_may_update_input_and_cache():
    tracker = StreamTracker()
    tracker.feed(
        sse(
            message_start(input_tokens=10, cache_read_input_tokens=0, output_tokens=1),
            anthropic_event(
                "message_delta",
                usage={
                    "input_tokens": 12,
                    "cache_creation_input_tokens": None,
                    "cache_read_input_tokens": 50,
                    "output_tokens": 4,
                },
            ),
        )
    )
    assert tracker.usage == Usage(62, 4, 50)


def test_anthropic_error_event():
    tracker = StreamTracker()
    error = {"type": "overloaded_error", "message": "Overloaded"}
    tracker.feed(
        sse(
            message_start(input_tokens=3, output_tokens=1),
            ("error", {"type": "error", "error": error}),
        )
    )
    assert (tracker.error, tracker.done, tracker.usage) == ("Overloaded", False, Usage(3, 1, 0))


# --- costs an answer reports ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "cost"),
    [
        (0.00042, 0.00042),
        (3, 3.0),
        ("1.9999999999999998e-05", 1.9999999999999998e-05),  # LiteLLM's header, a repr
        (" 0.5 ", 0.5),
        (MAX_ANSWER_COST, MAX_ANSWER_COST),
    ],
)
def test_a_reported_cost_is_a_positive_finite_number(value, cost):
    assert cost_value(value) == cost


@pytest.mark.parametrize(
    "value",
    [
        0,  # what a gateway says when it does not know the price, and on errors
        "0.0",
        -0.1,
        float("nan"),
        "nan",
        float("inf"),
        "1e999",
        MAX_ANSWER_COST * 1.001,
        10**400,
        True,
        None,
        "",
        "$0.01",
        "1_0",  # Python's float() takes it; a header's number is plain
        "0x10",
        "Infinity",
        "1" * 65,
        [0.1],
        {"total": 0.1},
    ],
)
def test_nonsense_costs_are_no_cost_said(value):
    assert cost_value(value) is None


def test_a_cost_is_read_at_its_dotted_path():
    body = {"usage": {"prompt_tokens": 1, "cost": 0.25}, "extra": {"cost": "x"}}
    assert cost_in(body, ("usage", "cost")) == 0.25
    assert cost_in(body, ("extra", "cost")) is None
    assert cost_in(body, ("usage", "cost", "deeper")) is None
    assert cost_in(body, ()) is None
    assert cost_in(["not", "a", "mapping"], ("usage",)) is None


def test_a_streams_cost_is_read_from_its_usage_chunk():
    """OpenRouter and LiteLLM put usage.cost in a chat stream's last chunk."""
    tracker = StreamTracker(cost_path=("usage", "cost"))
    tracker.feed(sse(chat_chunk({"content": "Hi"}), chat_chunk(usage={**CHAT_USAGE, "cost": 0.5})))
    tracker.feed(b"data: [DONE]\n\n")
    assert (tracker.cost, tracker.done) == (0.5, True)
    alone = StreamTracker(cost_path=("usage", "cost"))  # a cost chunk without token counts
    alone.feed(sse(chat_chunk({"content": "Hi"}), chat_chunk(usage={"cost": 0.5})))
    assert (alone.cost, alone.usage) == (0.5, None)
    untold = StreamTracker()  # no path: nothing read
    untold.feed(sse(chat_chunk({"content": "Hi"}), chat_chunk(usage={**CHAT_USAGE, "cost": 0.5})))
    assert untold.cost is None


def test_responses_and_anthropic_streams_say_their_cost_where_their_usage_is():
    responses = StreamTracker(cost_path=("usage", "cost"))
    final = {"response": {"status": "completed", "usage": {"input_tokens": 3, "cost": 0.125}}}
    responses.feed(sse(("response.completed", final)))
    assert responses.cost == 0.125
    anthropic = StreamTracker(cost_path=("usage", "cost"))
    anthropic.feed(
        sse(
            message_start(input_tokens=3, output_tokens=1),
            anthropic_event("message_delta", delta={}, usage={"output_tokens": 4, "cost": 0.75}),
        )
    )
    assert anthropic.cost == 0.75


def test_long_line_fed_byte_by_byte():
    delta = {"content": "x" * 50_000}
    stream = sse(chat_chunk(delta), chat_chunk(usage=CHAT_USAGE, choices=False), "data: [DONE]\n\n")
    tracker = StreamTracker(Clock())
    for i in range(len(stream)):
        tracker.feed(stream[i : i + 1])
    assert (tracker.first_token_at, tracker.usage, tracker.done) == (1.0, Usage(12, 4, 8), True)


# --- real bodies from the simulator -----------------------------------------------------------

PROMPT = "What is the capital of France?"
REPLY = "The capital of France is Paris, a city on the Seine."
ENDPOINTS = {
    "chat": (
        "/v1/chat/completions",
        {"messages": [{"role": "user", "content": PROMPT}]},
        {"stream_options": {"include_usage": True}},
    ),
    "responses": ("/v1/responses", {"input": PROMPT}, {}),
    "messages": (
        "/v1/messages",
        {"messages": [{"role": "user", "content": PROMPT}], "max_tokens": 256},
        {},
    ),
}
EXPECTED = Usage(
    input_tokens=math.ceil(len(PROMPT) / 4) + 3,
    output_tokens=math.ceil(len(REPLY) / 4),
)


@pytest.fixture(scope="module")
def sim_url():
    config = {
        "rules": [{"match": "capital", "reply": REPLY}],
        "models": {
            "sim-ok": {},
            "sim-cut": {"faults": [{"kind": "truncate", "every": 1}]},
        },
    }
    with Simulator(parse_config(config, source="test_usage")) as sim:
        yield sim.url


def post(url, endpoint, model, stream):
    path, body, stream_options = ENDPOINTS[endpoint]
    body = {"model": model, **body, **(stream_options if stream else {})}
    if stream:
        body["stream"] = True
    headers = {"authorization": "Bearer sk-test", "x-api-key": "sk-test"}
    with httpx2.Client(timeout=10) as client:
        response = client.post(url + path, json=body, headers=headers)
    assert response.status_code == 200, response.text
    return response


def feed_in_random_chunks(data, seed):
    """Feed `data` in chunks of 1..7 bytes; returns the tracker."""
    rng = random.Random(seed)
    tracker = StreamTracker(itertools.count(1).__next__)
    start = 0
    while start < len(data):
        size = rng.randint(1, 7)
        tracker.feed(data[start : start + size])
        start += size
    return tracker


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_simulator_json_body(sim_url, endpoint):
    assert usage_from_body(post(sim_url, endpoint, "sim-ok", False).json()) == EXPECTED


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_simulator_stream_in_random_chunks(sim_url, endpoint, seed):
    data = post(sim_url, endpoint, "sim-ok", True).content
    tracker = feed_in_random_chunks(data, seed)
    assert tracker.usage == EXPECTED
    assert tracker.done
    assert tracker.error is None
    assert tracker.first_token_at is not None


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_simulator_first_token_comes_with_the_first_text_delta(sim_url, endpoint):
    """Feed event by event: the clock is read only once, at the event with the first text."""
    data = post(sim_url, endpoint, "sim-ok", True).content
    events = [event + b"\n\n" for event in data.split(b"\n\n") if event]
    first_text = next(i for i, event in enumerate(events) if REPLY[:4].encode() in event)
    assert first_text > 0  # the simulator sends structural events before the text
    tracker = StreamTracker(itertools.count(1).__next__)
    for index, event in enumerate(events):
        tracker.feed(event)
        assert tracker.first_token_at == (None if index < first_text else 1)


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_simulator_truncated_stream_is_not_done(sim_url, endpoint):
    data = post(sim_url, endpoint, "sim-cut", True).content
    tracker = feed_in_random_chunks(data, seed=1)
    assert not tracker.done
    assert tracker.first_token_at is not None  # it stopped halfway through the text
    if endpoint == "messages":  # message_start already told the input and a first output count
        assert tracker.usage == Usage(EXPECTED.input_tokens, 1, 0)
    else:
        assert tracker.usage is None
