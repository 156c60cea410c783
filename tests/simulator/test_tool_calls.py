"""Tool calls from the simulator, through the official SDKs, plain and streamed: a two-turn
agent loop (call, tool result, final answer) in all three APIs, parallel calls, calls a
request demands with arguments made from the tool's schema, and bad rule configs."""

from __future__ import annotations

import datetime
import functools
import json
import math
import typing
import uuid

import anthropic
import jsonschema
import openai
import pydantic
import pytest

from pytest_llm_matrix.report.stats import JUDGED
from pytest_llm_matrix.simulator import SimulatorConfigError, parse_config

WEATHER = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        "days": {"type": "integer", "minimum": 1},
    },
    "required": ["city"],
    "additionalProperties": False,
}
TIME = {"type": "object", "properties": {"zone": {"type": "string"}}, "required": ["zone"]}

CONFIG = {
    "rules": [
        # the follow-up turn first: once the tool's result is in, answer with it
        {"conversation": "tool: .*sunny", "reply": "It is sunny in Paris."},
        {
            "match": "weather and time",
            "tool": "get_weather",
            "tool_calls": [
                {"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}},
                {"name": "get_time", "arguments": {"zone": "Europe/Paris"}},
            ],
        },
        {
            "match": "weather",
            "tool": "get_weather",
            "reply": "Let me look that up.",
            "tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}],
        },
    ],
    "models": {"m": {}},
}

CHAT_TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "parameters": WEATHER}},
    {"type": "function", "function": {"name": "get_time", "parameters": TIME}},
]
RESPONSES_TOOLS = [
    {"type": "function", "name": "get_weather", "parameters": WEATHER, "strict": True},
    {"type": "function", "name": "get_time", "parameters": TIME, "strict": False},
]
ANTHROPIC_TOOLS = [
    {"name": "get_weather", "description": "the weather", "input_schema": WEATHER},
    {"name": "get_time", "description": "the time", "input_schema": TIME},
]


@pytest.fixture
def sim(simulator):
    return simulator(CONFIG)


@pytest.fixture
def oai(sim):
    with openai.OpenAI(base_url=sim.url + "/v1", api_key="k", max_retries=0) as client:
        yield client


@pytest.fixture
def claude(sim):
    with anthropic.Anthropic(base_url=sim.url, api_key="k", max_retries=0) as client:
        yield client


# --- OpenAI chat completions --------------------------------------------------------------


def chat_turn(oai, messages, stream, **options):
    options.setdefault("tools", CHAT_TOOLS)
    if not stream:
        return oai.chat.completions.create(model="m", messages=messages, **options)
    with oai.chat.completions.stream(model="m", messages=messages, **options) as events:
        return events.get_final_completion()


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
def test_chat_agent_loop(oai, stream):
    messages = [{"role": "user", "content": "What is the weather in Paris?"}]
    first = chat_turn(oai, messages, stream)
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "Let me look that up."
    [call] = choice.message.tool_calls
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    if not stream:  # (a stream's usage only with stream_options.include_usage)
        assert first.usage.completion_tokens > 0
    messages += [
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": '{"sky": "sunny"}'},
    ]
    final = chat_turn(oai, messages, stream)
    assert final.choices[0].finish_reason == "stop"
    assert final.choices[0].message.content == "It is sunny in Paris."
    assert not final.choices[0].message.tool_calls


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
def test_chat_parallel_calls(oai, stream):
    answer = chat_turn(oai, [{"role": "user", "content": "weather and time please"}], stream)
    calls = answer.choices[0].message.tool_calls
    assert [c.function.name for c in calls] == ["get_weather", "get_time"]
    assert [json.loads(c.function.arguments) for c in calls] == [
        {"city": "Paris", "unit": "celsius"},
        {"zone": "Europe/Paris"},
    ]
    assert len({c.id for c in calls}) == 2
    assert answer.choices[0].message.content is None


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
def test_chat_a_demanded_call_has_arguments_valid_for_its_schema(oai, stream):
    """No rule matches; tool_choice demands a call: arguments made from the schema."""
    messages = [{"role": "user", "content": "no rule matches this"}]
    required = chat_turn(oai, messages, stream, tool_choice="required")
    [call] = required.choices[0].message.tool_calls
    assert call.function.name == "get_weather"  # the first tool
    jsonschema.validate(json.loads(call.function.arguments), WEATHER)
    named = chat_turn(
        oai, messages, stream, tool_choice={"type": "function", "function": {"name": "get_time"}}
    )
    [call] = named.choices[0].message.tool_calls
    assert call.function.name == "get_time"
    jsonschema.validate(json.loads(call.function.arguments), TIME)


def test_chat_without_tools_or_with_tool_choice_none_there_is_no_call(oai):
    asked = [{"role": "user", "content": "What is the weather in Paris?"}]
    plain = oai.chat.completions.create(model="m", messages=asked)
    assert plain.choices[0].message.tool_calls is None
    assert plain.choices[0].finish_reason == "stop"
    refused = oai.chat.completions.create(
        model="m", messages=asked, tools=CHAT_TOOLS, tool_choice="none"
    )
    assert refused.choices[0].message.tool_calls is None


def test_chat_a_tool_choice_naming_no_offered_tool_is_a_400(oai):
    with pytest.raises(openai.BadRequestError, match="not offered"):
        oai.chat.completions.create(
            model="m",
            messages=[{"role": "user", "content": "hi"}],
            tools=CHAT_TOOLS,
            tool_choice={"type": "function", "function": {"name": "nope"}},
        )


# --- OpenAI Responses ---------------------------------------------------------------------


def responses_turn(oai, items, stream, **options):
    options.setdefault("tools", RESPONSES_TOOLS)
    if not stream:
        return oai.responses.create(model="m", input=items, **options)
    with oai.responses.stream(model="m", input=items, **options) as events:
        return events.get_final_response()


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
def test_responses_agent_loop(oai, stream):
    items = [{"role": "user", "content": "What is the weather in Paris?"}]
    first = responses_turn(oai, items, stream)
    calls = [item for item in first.output if item.type == "function_call"]
    assert [c.name for c in calls] == ["get_weather"]
    assert json.loads(calls[0].arguments) == {"city": "Paris"}
    assert first.output_text == "Let me look that up."
    items += [
        calls[0].model_dump(exclude_none=True),
        {"type": "function_call_output", "call_id": calls[0].call_id, "output": "sunny, 21C"},
    ]
    final = responses_turn(oai, items, stream)
    assert final.output_text == "It is sunny in Paris."
    assert not [item for item in final.output if item.type == "function_call"]


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
def test_responses_parallel_and_demanded_calls(oai, stream):
    both = responses_turn(oai, "weather and time please", stream)
    assert [i.name for i in both.output if i.type == "function_call"] == ["get_weather", "get_time"]
    demanded = responses_turn(oai, "nothing matches", stream, tool_choice="required")
    [call] = [i for i in demanded.output if i.type == "function_call"]
    jsonschema.validate(json.loads(call.arguments), WEATHER)


# --- Anthropic messages -------------------------------------------------------------------


def claude_turn(claude, messages, stream, **options):
    options.setdefault("tools", ANTHROPIC_TOOLS)
    if not stream:
        return claude.messages.create(model="m", max_tokens=300, messages=messages, **options)
    with claude.messages.stream(model="m", max_tokens=300, messages=messages, **options) as s:
        return s.get_final_message()


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
def test_anthropic_agent_loop(claude, stream):
    messages = [{"role": "user", "content": "What is the weather in Paris?"}]
    first = claude_turn(claude, messages, stream)
    assert first.stop_reason == "tool_use"
    assert [block.type for block in first.content] == ["text", "tool_use"]
    assert first.content[0].text == "Let me look that up."
    use = first.content[1]
    assert (use.name, use.input) == ("get_weather", {"city": "Paris"})
    messages += [
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "sunny"}],
        },
    ]
    final = claude_turn(claude, messages, stream)
    assert final.stop_reason == "end_turn"
    assert [block.type for block in final.content] == ["text"]
    assert final.content[0].text == "It is sunny in Paris."


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
def test_anthropic_parallel_and_demanded_calls(claude, stream):
    both = claude_turn(claude, [{"role": "user", "content": "weather and time please"}], stream)
    assert [(b.type, b.name) for b in both.content] == [
        ("tool_use", "get_weather"),
        ("tool_use", "get_time"),
    ]
    demanded = claude_turn(
        claude, [{"role": "user", "content": "nothing matches"}], stream,
        tool_choice={"type": "tool", "name": "get_time"},
    )  # fmt: skip
    [use] = demanded.content
    assert use.name == "get_time"
    jsonschema.validate(use.input, TIME)
    anything = claude_turn(
        claude, [{"role": "user", "content": "nothing matches"}], stream,
        tool_choice={"type": "any"},
    )  # fmt: skip
    jsonschema.validate(anything.content[0].input, WEATHER)


# --- schemas and configs ------------------------------------------------------------------


NUMBER_REF = {"$defs": {"x": {"type": "number", "minimum": 2.5}}}
TAGS = {"type": "array", "items": {"type": "string", "minLength": 12}, "minItems": 3}
NULL_OR_INT = {"anyOf": [{"type": "null"}, {"type": "integer", "exclusiveMinimum": 4}]}


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object", "properties": {"a": {"$ref": "#/$defs/x"}}, **NUMBER_REF},
        {"type": "object", "properties": {"tags": TAGS}},
        {"type": "object", "properties": {"v": NULL_OR_INT}},
        {"type": "object", "properties": {"v": {"type": ["null", "boolean"]}, "c": {"const": 1}}},
        {"type": "object", "properties": {"n": {"type": "integer", "minimum": 0.5}}},
    ],
)
def test_made_arguments_validate_against_their_schema(schema):
    from pytest_llm_matrix.simulator.tools import example

    value = example(schema)
    jsonschema.validate(value, schema)
    assert example(schema) == value  # the same every time


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"match": "x"}, "needs 'reply' (the answer's text), 'json' (the answer as JSON) or"),
        ({"match": "x", "reply": "a", "json": {}}, "has both 'reply' and 'json'"),
        ({"match": "x", "json": {"v": math.inf}}, "json: must be plain JSON data"),
        ({"match": "x", "tool_calls": []}, "tool_calls: must hold at least one call"),
        ({"match": "x", "tool_calls": [{"arguments": {}}]}, "tool_calls[0]: needs a 'name'"),
        ({"match": "x", "tool_calls": [{"name": "f", "arguments": 5}]}, "must be a table"),
        ({"match": "x", "tool_calls": [{"name": "f", "args": {}}]}, "unknown key 'args'"),
        ({"match": "x", "tool_calls": [{"name": "f", "arguments": {"v": math.nan}}]}, "plain"),
        ({"tool": "(", "reply": "x"}, "tool"),
    ],
)  # fmt: skip
def test_bad_tool_rules_are_refused_naming_the_rule(rule, message):
    with pytest.raises(SimulatorConfigError, match=r"rules\[0\]") as caught:
        parse_config({"rules": [rule]}, source="sim.toml")
    assert message in str(caught.value)


# --- strict mode and the side endpoints ----------------------------------------------------


def test_strict_mode_refuses_a_prompt_no_rule_answers(simulator):
    sim = simulator({"strict": True, "rules": [{"match": "hello", "reply": "hi"}]})
    with openai.OpenAI(base_url=sim.url + "/v1", api_key="k", max_retries=0) as client:
        answered = client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hello there"}]
        )
        assert answered.choices[0].message.content == "hi"
        with pytest.raises(openai.BadRequestError) as refused:
            client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "What is the capital of Peru?"}]
            )
    message = str(refused.value)
    assert "no simulator rule answers this prompt to m (strict = true)" in message
    assert "What is the capital of Peru?" in message


def test_strict_mode_per_model_and_turned_off_for_one(simulator):
    sim = simulator({"strict": True, "models": {"loose": {"strict": False}, "tight": {}}})
    with anthropic.Anthropic(base_url=sim.url, api_key="k", max_retries=0) as client:
        loose = client.messages.create(
            model="loose", max_tokens=50, messages=[{"role": "user", "content": "anything"}]
        )
        assert loose.content[0].text == "This is a simulated reply from loose."
        with pytest.raises(anthropic.BadRequestError, match="strict = true"):
            client.messages.create(
                model="tight", max_tokens=50, messages=[{"role": "user", "content": "anything"}]
            )


def test_anthropic_count_tokens_counts_as_a_message_would(claude):
    messages = [{"role": "user", "content": "What is the weather in Paris?"}]
    counted = claude.messages.count_tokens(model="m", messages=messages, system="Be brief.")
    sent = claude.messages.create(model="m", max_tokens=50, messages=messages, system="Be brief.")
    assert counted.input_tokens == sent.usage.input_tokens > 0
    with_tools = claude.messages.count_tokens(model="m", messages=messages, tools=ANTHROPIC_TOOLS)
    assert with_tools.input_tokens > counted.input_tokens - 3  # tools add to the count
    with pytest.raises(anthropic.NotFoundError):
        claude.messages.count_tokens(model="no-such-model", messages=messages)


def test_moderations_answer_in_the_real_shape(simulator):
    sim = simulator({"flagged": ["(?i)\\bhurt\\b"]})
    with openai.OpenAI(base_url=sim.url + "/v1", api_key="k", max_retries=0) as client:
        result = client.moderations.create(input=["a kind note", "I will hurt you"])
    assert result.model == "omni-moderation-latest"
    calm, threat = result.results
    assert not calm.flagged
    assert calm.category_scores.violence == 0.0
    assert threat.flagged
    assert threat.categories.violence
    assert threat.category_scores.violence == 0.99
    assert not threat.categories.hate


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"strict": "yes"}, "strict: must be true or false"),
        ({"models": {"m": {"strict": 1}}}, "model 'm': strict: must be true or false"),
        ({"flagged": ["("]}, "flagged[0]: invalid regex"),
        ({"flagged": "x"}, "flagged"),
    ],
)
def test_bad_strict_and_flagged_settings_are_refused(config, message):
    with pytest.raises(SimulatorConfigError, match=r"sim\.toml") as caught:
        parse_config(config, source="sim.toml")
    assert message in str(caught.value)


# --- structured outputs --------------------------------------------------------------------


class Order(pydantic.BaseModel):
    order_id: str
    items: list[str]
    total: float
    express: bool


ORDER_RULE = {
    "match": "(?i)the order as json",
    "json": {"order_id": "A-1", "items": ["tea"], "total": 4.5, "express": False},
}
BROKEN_RULE = {"match": "(?i)broken", "json": {"order_id": 7}}


@pytest.fixture
def shaped(simulator):
    sim = simulator({"rules": [ORDER_RULE, BROKEN_RULE]})
    with openai.OpenAI(base_url=sim.url + "/v1", api_key="k", max_retries=0) as client:
        yield client


def test_chat_parse_gets_an_answer_that_follows_its_schema(shaped):
    """openai's parse: a strict json_schema made from a pydantic model; a rule's json is the
    answer, and a prompt no rule answers gets one made from the schema."""
    ask = [{"role": "user", "content": "Give me the order as JSON"}]
    ruled = shaped.chat.completions.parse(model="m", messages=ask, response_format=Order)
    assert ruled.choices[0].message.parsed == Order(
        order_id="A-1", items=["tea"], total=4.5, express=False
    )
    made = shaped.chat.completions.parse(
        model="m", messages=[{"role": "user", "content": "anything"}], response_format=Order
    )
    assert isinstance(made.choices[0].message.parsed, Order)
    jsonschema.validate(json.loads(made.choices[0].message.content), Order.model_json_schema())


def test_chat_stream_with_a_schema_parses(shaped):
    ask = [{"role": "user", "content": "Give me the order as JSON"}]
    with shaped.chat.completions.stream(model="m", messages=ask, response_format=Order) as events:
        answer = events.get_final_completion()
    assert answer.choices[0].message.parsed == Order(
        order_id="A-1", items=["tea"], total=4.5, express=False
    )


def test_a_rules_json_that_breaks_the_requests_schema_is_a_400_naming_the_rule(shaped):
    with pytest.raises(openai.BadRequestError) as refused:
        shaped.chat.completions.parse(
            model="m", messages=[{"role": "user", "content": "broken"}], response_format=Order
        )
    assert "rules[1]: its json does not follow the request's schema" in str(refused.value)


def test_json_mode_and_plain_answers_of_a_json_rule(shaped):
    ask = [{"role": "user", "content": "the order as json"}]
    moded = shaped.chat.completions.create(
        model="m", messages=ask, response_format={"type": "json_object"}
    )
    assert json.loads(moded.choices[0].message.content)["order_id"] == "A-1"
    plain = shaped.chat.completions.create(model="m", messages=ask)
    assert json.loads(plain.choices[0].message.content)["total"] == 4.5


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
def test_responses_parse_follows_the_schema(shaped, stream):
    if stream:
        with shaped.responses.stream(model="m", input="anything", text_format=Order) as events:
            answer = events.get_final_response()
    else:
        answer = shaped.responses.parse(model="m", input="anything", text_format=Order)
    assert isinstance(answer.output_parsed, Order)


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
def test_anthropic_output_format_follows_the_schema(simulator, stream):
    sim = simulator({})
    schema = Order.model_json_schema()
    with anthropic.Anthropic(base_url=sim.url, api_key="k", max_retries=0) as client:
        answer = claude_turn(
            client, [{"role": "user", "content": "anything"}], stream, tools=[],
            extra_body={"output_format": {"type": "json_schema", "schema": schema}},
        )  # fmt: skip
    jsonschema.validate(json.loads(answer.content[0].text), schema)


# --- thinking and reasoning ----------------------------------------------------------------


THINKING_RULES = {
    "rules": [
        {"match": "(?i)weather", "reply": "Sunny.", "thinking": "Paris is sunny in June."},
        {
            "match": "(?i)look it up",
            "thinking": "I need the tool.",
            "tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}],
        },
    ]
}


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
def test_anthropic_thinking_blocks(simulator, stream):
    sim = simulator(THINKING_RULES)
    with anthropic.Anthropic(base_url=sim.url, api_key="k", max_retries=0) as client:
        thinking = {"type": "enabled", "budget_tokens": 200}
        answer = claude_turn(
            client, [{"role": "user", "content": "weather?"}], stream, thinking=thinking, tools=[]
        )
        called = claude_turn(
            client, [{"role": "user", "content": "look it up"}], stream, thinking=thinking
        )
        plain = claude_turn(client, [{"role": "user", "content": "weather?"}], stream, tools=[])
    assert [b.type for b in answer.content] == ["thinking", "text"]
    assert answer.content[0].thinking == "Paris is sunny in June."
    assert answer.content[0].signature
    assert answer.content[1].text == "Sunny."
    assert answer.usage.output_tokens == plain.usage.output_tokens + 6  # the thinking's tokens
    assert [b.type for b in called.content] == ["thinking", "tool_use"]
    assert called.stop_reason == "tool_use"
    assert [b.type for b in plain.content] == ["text"]


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
def test_responses_reasoning_items_and_tokens(simulator, stream):
    sim = simulator(THINKING_RULES)
    with openai.OpenAI(base_url=sim.url + "/v1", api_key="k", max_retries=0) as client:
        summarized = responses_turn(
            client, "weather?", stream, tools=[], reasoning={"effort": "low", "summary": "auto"}
        )
        silent = responses_turn(client, "weather?", stream, tools=[], reasoning={"effort": "low"})
        plain = responses_turn(client, "weather?", stream, tools=[])
    assert [item.type for item in summarized.output] == ["reasoning", "message"]
    assert summarized.output[0].summary[0].text == "Paris is sunny in June."
    assert summarized.output_text == "Sunny."
    assert summarized.usage.output_tokens_details.reasoning_tokens == 6
    assert silent.output[0].summary == []
    assert plain.usage.output_tokens_details.reasoning_tokens == 0
    assert [item.type for item in plain.output] == ["message"]


def test_chat_reasoning_tokens_in_usage(simulator):
    sim = simulator(THINKING_RULES)
    with openai.OpenAI(base_url=sim.url + "/v1", api_key="k", max_retries=0) as client:
        asked = [{"role": "user", "content": "weather?"}]
        reasoned = client.chat.completions.create(model="m", messages=asked, reasoning_effort="low")
        plain = client.chat.completions.create(model="m", messages=asked)
    assert reasoned.choices[0].message.content == "Sunny."
    assert reasoned.usage.completion_tokens_details.reasoning_tokens == 6
    assert reasoned.usage.completion_tokens == plain.usage.completion_tokens + 6


# --- rules that apply by chance ------------------------------------------------------------


FLIP = {
    "seed": 3,
    "rules": [
        {"match": "flip", "reply": "heads", "p": 0.5},
        {"match": "flip", "reply": "tails"},
    ],
}


def flips(simulator, config, test="t.py::test_flip", count=200):
    sim = simulator(config)
    headers = {"x-llm-matrix-test": test} if test else {}
    with openai.OpenAI(
        base_url=sim.url + "/v1", api_key="k", max_retries=0, default_headers=headers
    ) as client:
        return [
            client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "flip"}]
            )
            .choices[0]
            .message.content
            for _ in range(count)
        ]


def test_a_chance_rule_applies_as_often_as_its_p_and_reproducibly(simulator):
    first = flips(simulator, FLIP)
    # a binomial(200, 0.5) count lands in [82, 118] with 99% probability
    assert 82 <= first.count("heads") <= 118
    assert set(first) == {"heads", "tails"}
    assert flips(simulator, FLIP) == first  # same seed, same test: the same answers
    assert flips(simulator, {**FLIP, "seed": 4}) != first
    assert flips(simulator, FLIP, test="t.py::test_other") != first  # each test its own draws
    assert flips(simulator, FLIP, test=None, count=40) == flips(
        simulator, FLIP, test=None, count=40
    )


@pytest.mark.parametrize("p", [-0.1, 1.5, math.nan, math.inf, True, "0.5"])
def test_a_chance_outside_0_to_1_is_refused_naming_the_rule(p):
    with pytest.raises(SimulatorConfigError, match=r"rules\[0\]\.p: must be a probability"):
        parse_config({"rules": [{"match": "x", "reply": "y", "p": p}]}, source="sim.toml")


def test_a_repeated_tests_runs_differ_and_a_seed_reproduces_them(pytester, write_config):
    """Each run of a repeated test is a test of its own for the simulator's draws: runs of a
    rule with p = 0.5 differ, a second session gives the same outcomes, another seed others."""
    write_config(
        """
[tool.llm-matrix.models.coin]
provider = "simulator"

[tool.llm-matrix.simulator]
rules = [
  { match = "flip", reply = "heads", p = 0.5 },
  { match = "flip", reply = "tails" },
]
"""
    )
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.llm(repeat=30, min_pass_rate=0.5)
        def test_flip(llm):
            assert llm.complete("flip") == "heads"
        """
    )

    def outcomes(*args: str) -> dict[int, str]:
        """Each run that ran: its outcome (with early stop, not every run runs)."""
        pytester.runpytest_subprocess("-p", "no:randomly", "--llm-report=r.json", *args)
        [test] = json.loads((pytester.path / "r.json").read_text())["tests"]
        return {run["index"]: run["outcome"] for run in test["runs"] if run["outcome"] in JUDGED}

    first = outcomes()
    assert len(first) >= 15
    assert set(first.values()) == {"passed", "failed"}
    parallel = outcomes("-n", "2")  # whichever worker runs a run, its draw is the same
    assert len(parallel.keys() & first.keys()) >= 10
    assert all(parallel[run] == first[run] for run in parallel.keys() & first.keys())
    reseeded = outcomes("--llm-sim-seed=12345")
    assert any(reseeded[run] != first[run] for run in reseeded.keys() & first.keys())


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
def test_n_choices_are_answered_each_anew(simulator, stream):
    sim = simulator(FLIP)
    with openai.OpenAI(base_url=sim.url + "/v1", api_key="k", max_retries=0) as client:
        ask = {"model": "m", "messages": [{"role": "user", "content": "flip"}], "n": 20}
        if stream:
            with client.chat.completions.stream(**ask) as events:
                answer = events.get_final_completion()
        else:
            answer = client.chat.completions.create(**ask)
    texts = [choice.message.content for choice in answer.choices]
    assert [choice.index for choice in answer.choices] == list(range(20))
    assert set(texts) == {"heads", "tails"}


# --- hostile and odd requests (found by review) --------------------------------------------


def raw_post(sim, path, body: bytes | str):
    import httpx2

    content = body.encode() if isinstance(body, str) else body
    return httpx2.post(
        sim.url + path, content=content, headers={"content-type": "application/json"}, timeout=10
    )


#: 100 x 100 x 100 strings: a request of a few hundred bytes asking for a million values
HUNDRED_CUBED = {"type": "array", "minItems": 100, "items": {"type": "string"}}
for _ in range(2):
    HUNDRED_CUBED = {"type": "array", "minItems": 100, "items": HUNDRED_CUBED}


def forced(parameters) -> str:
    return json.dumps(
        {
            "model": "m",
            "messages": [{"role": "user", "content": "hi"}],
            "tools": [{"type": "function", "function": {"name": "f", "parameters": parameters}}],
            "tool_choice": "required",
        }
    )


@pytest.mark.parametrize(
    "body",
    [
        forced({"type": "object", "$defs": None, "properties": {}}),
        forced({"type": "object", "$defs": [1], "properties": {}}),
        forced({"type": "object", "properties": {"a": {"type": "integer", "minimum": 1e999}}}),
        forced({"type": "object", "properties": {"a": {"type": "number", "enum": [1e999]}}}),
        forced({"type": "object", "properties": {"a": HUNDRED_CUBED}}),
        "[" * 100_000,
    ],
    ids=["defs-null", "defs-list", "huge-minimum", "infinite-enum", "nested-minitems", "deep"],
)
def test_a_hostile_request_gets_a_400_not_a_dropped_connection(simulator, body):
    sim = simulator({})
    answer = raw_post(sim, "/v1/chat/completions", body)
    if answer.status_code == 200:  # a value that could be made must be valid JSON
        arguments = answer.json()["choices"][0]["message"]["tool_calls"][0]["function"]
        json.loads(arguments["arguments"], parse_constant=pytest.fail)
    else:
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"]["message"]


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object", "required": 5},
        {"type": "object", "properties": "abc"},
        {"$defs": {"A": {"$ref": "#/$defs/A"}}, "$ref": "#/$defs/A"},
    ],
)
def test_a_rules_json_against_an_odd_schema_is_answered(simulator, schema):
    sim = simulator({"rules": [{"match": "json", "json": {"a": 1}}]})
    body = {
        "model": "m",
        "messages": [{"role": "user", "content": "json"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}},
    }
    answer = raw_post(sim, "/v1/chat/completions", json.dumps(body))
    assert answer.status_code in (200, 400), answer.text


class Everything(pydantic.BaseModel):
    when: datetime.datetime
    day: datetime.date
    ident: uuid.UUID
    code: str = pydantic.Field(max_length=3)
    debt: int = pydantic.Field(le=-1)
    nothing: list[int] = pydantic.Field(max_length=0)
    zip_code: str = pydantic.Field(min_length=5, max_length=5)
    step: int = pydantic.Field(multiple_of=7, gt=10)


class Node(pydantic.BaseModel):
    name: str
    children: list[Node]


@pytest.mark.parametrize("model", [Everything, Node])
def test_made_answers_parse_into_common_pydantic_models(shaped, model):
    answer = shaped.chat.completions.parse(
        model="m", messages=[{"role": "user", "content": "anything"}], response_format=model
    )
    assert isinstance(answer.choices[0].message.parsed, model)


def test_anthropic_parse_gets_structured_output(simulator):
    sim = simulator({})
    with anthropic.Anthropic(base_url=sim.url, api_key="k", max_retries=0) as client:
        answer = client.messages.parse(
            model="m", max_tokens=300, messages=[{"role": "user", "content": "anything"}],
            output_format=Order,
        )  # fmt: skip
    assert isinstance(answer.parsed_output, Order)


def test_json_mode_always_answers_a_json_object(simulator):
    sim = simulator({})
    with openai.OpenAI(base_url=sim.url + "/v1", api_key="k", max_retries=0) as client:
        answer = client.chat.completions.create(
            model="m",
            messages=[{"role": "user", "content": "anything"}],
            response_format={"type": "json_object"},
        )
    assert json.loads(answer.choices[0].message.content) == {
        "reply": "This is a simulated reply from m."
    }


def test_calls_follow_what_the_request_allows(oai, claude):
    """A rule's calls: only to offered tools, one without parallel calls, only the named
    tool's under a named tool_choice."""
    ask = [{"role": "user", "content": "weather and time please"}]
    only_weather = [CHAT_TOOLS[0]]
    unoffered = oai.chat.completions.create(model="m", messages=ask, tools=only_weather)
    # the parallel rule calls get_time too, which is not offered: the next rule answers
    assert [c.function.name for c in unoffered.choices[0].message.tool_calls] == ["get_weather"]
    assert unoffered.choices[0].message.content == "Let me look that up."
    single = oai.chat.completions.create(
        model="m", messages=ask, tools=CHAT_TOOLS, parallel_tool_calls=False
    )
    assert len(single.choices[0].message.tool_calls) == 1
    named = oai.chat.completions.create(
        model="m", messages=ask, tools=CHAT_TOOLS,
        tool_choice={"type": "function", "function": {"name": "get_time"}},
    )  # fmt: skip
    assert [c.function.name for c in named.choices[0].message.tool_calls] == ["get_time"]
    one = claude.messages.create(
        model="m", max_tokens=300, messages=ask, tools=ANTHROPIC_TOOLS,
        tool_choice={"type": "auto", "disable_parallel_tool_use": True},
    )  # fmt: skip
    assert [b.type for b in one.content] == ["tool_use"]


def test_a_rules_arguments_that_break_the_tools_schema_are_a_400_naming_it(simulator):
    sim = simulator(
        {
            "rules": [
                {"match": "go", "tool_calls": [{"name": "get_weather", "arguments": {"town": 5}}]}
            ]
        }
    )
    refused = pytest.raises(openai.BadRequestError, match=r"rules\[0\]: its call to get_weather")
    with openai.OpenAI(base_url=sim.url + "/v1", api_key="k", max_retries=0) as client, refused:
        client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "go"}], tools=CHAT_TOOLS
        )


@pytest.mark.parametrize(
    ("path", "extra", "message"),
    [
        ("/v1/messages", {"tool_choice": "auto"}, "tool_choice must be an object"),
        ("/v1/messages", {"tool_choice": {"type": "sometimes"}}, "unknown tool_choice type"),
        ("/v1/messages", {"tools": [{"input_schema": {}}]}, "every tool needs a 'name'"),
        ("/v1/chat/completions", {"tools": [{"type": "function", "function": {}}]}, "'name'"),
        (
            "/v1/messages",
            {"thinking": {"type": "enabled", "budget_tokens": 500}},
            "max_tokens must be greater than thinking.budget_tokens",
        ),
    ],
)
def test_bad_tool_and_thinking_requests_are_400s(simulator, path, extra, message):
    sim = simulator({})
    body = {"model": "m", "max_tokens": 100, "messages": [{"role": "user", "content": "x"}]}
    answer = raw_post(sim, path, json.dumps({**body, **extra}))
    assert answer.status_code == 400
    assert message in answer.text


def test_max_tokens_bounds_calls_and_thinking(oai, claude):
    ask = [{"role": "user", "content": "weather and time please"}]
    cut = oai.chat.completions.create(model="m", messages=ask, tools=CHAT_TOOLS, max_tokens=2)
    assert cut.choices[0].finish_reason == "length"
    assert cut.usage.completion_tokens <= 2
    thought = claude.messages.create(
        model="m", max_tokens=3, messages=[{"role": "user", "content": "weather?"}],
        thinking={"type": "enabled", "budget_tokens": 2},
    )  # fmt: skip
    assert thought.stop_reason == "max_tokens"
    assert thought.usage.output_tokens <= 3


def test_a_responses_stream_of_text_and_calls_streams_the_text(sim):
    body = {
        "model": "m", "input": "What is the weather in Paris?", "tools": RESPONSES_TOOLS,
        "stream": True,
    }  # fmt: skip
    events = raw_post(sim, "/v1/responses", json.dumps(body)).text
    assert events.count("event: response.output_text.delta") > 1
    assert "event: response.function_call_arguments.delta" in events
    cut = raw_post(sim, "/v1/responses", json.dumps({**body, "max_output_tokens": 2})).text
    assert "event: response.incomplete" in cut
    assert "event: response.completed" not in cut


def test_the_not_stream_fault_answers_the_whole_completion(simulator):
    sim = simulator({**CONFIG, "models": {"m": {"faults": [{"kind": "not_stream", "every": 1}]}}})
    body = {
        "model": "m", "stream": True, "tools": CHAT_TOOLS,
        "messages": [{"role": "user", "content": "What is the weather in Paris?"}],
    }  # fmt: skip
    answer = raw_post(sim, "/v1/chat/completions", json.dumps(body)).json()
    assert answer["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "get_weather"


def test_token_counting_spends_no_rpm(simulator):
    sim = simulator({"models": {"m": {"rpm": 2}}})
    with anthropic.Anthropic(base_url=sim.url, api_key="k", max_retries=0) as client:
        ask = [{"role": "user", "content": "hi"}]
        for _ in range(3):
            client.messages.count_tokens(model="m", messages=ask)
        client.messages.create(model="m", max_tokens=10, messages=ask)  # not a 429


def test_reasoning_effort_none_is_no_reasoning(oai):
    answer = oai.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "hi"}], reasoning_effort="none"
    )
    assert answer.usage.completion_tokens_details.reasoning_tokens == 0


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"match": "x", "reply": "y", "p": 10**400}, "p: must be a probability"),
        ({"match": "x", "json": None}, "json: must be JSON data other than null"),
        ({"match": "x", "json": functools.reduce(lambda v, _: [v], range(5000), [])}, "nested"),
    ],
)
def test_odd_rule_values_are_config_errors(rule, message):
    with pytest.raises(SimulatorConfigError, match=r"rules\[0\]") as caught:
        parse_config({"rules": [rule]}, source="sim.toml")
    assert message in str(caught.value)


# --- the second review's findings ------------------------------------------------------------


def test_allowed_tools_naming_a_tool_oddly_is_a_400(simulator):
    sim = simulator({})
    body = {
        "model": "m", "messages": [{"role": "user", "content": "x"}], "tools": CHAT_TOOLS,
        "tool_choice": {"type": "allowed_tools", "allowed_tools": {
            "mode": "auto", "tools": [{"type": "function", "function": {"name": {"x": 1}}}]}},
    }  # fmt: skip
    answer = raw_post(sim, "/v1/chat/completions", json.dumps(body))
    assert answer.status_code == 400
    assert "allowed_tools" in answer.json()["error"]["message"]


def test_the_made_values_size_is_bounded(simulator):
    """Long strings and nameless required properties count towards the limit, per choice."""
    sim = simulator({})
    many = {"type": "array", "minItems": 100, "items": {"type": "string", "minLength": 100_000}}
    required = {
        "type": "array",
        "minItems": 5000,
        "items": {"type": "object", "required": [f"k{i}" for i in range(1000)]},
    }
    for schema in (many, required):
        answer = raw_post(
            sim, "/v1/chat/completions", forced({"type": "object", "properties": {"a": schema}})
        )
        assert answer.status_code == 400
        assert "more than" in answer.json()["error"]["message"]


class Bounded(pydantic.BaseModel):
    ratio: float = pydantic.Field(gt=0, le=0.5)
    tens: int = pydantic.Field(le=15, multiple_of=10)
    small: int = pydantic.Field(le=2)
    big: int = pydantic.Field(gt=2**53)
    colours: set[typing.Literal["red", "green", "blue"]] = pydantic.Field(min_length=2)
    counts: dict[str, int] = pydantic.Field(min_length=1)


class Expr(pydantic.BaseModel):
    left: Expr | int
    right: Expr | int


class Outer(pydantic.BaseModel):
    inner: Order = pydantic.Field(description="an order")


@pytest.mark.parametrize("model", [Bounded, Expr, Outer])
def test_made_answers_parse_into_bounded_and_recursive_models(shaped, model):
    answer = shaped.chat.completions.parse(
        model="m", messages=[{"role": "user", "content": "anything"}], response_format=model
    )
    assert isinstance(answer.choices[0].message.parsed, model)


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "integer", "minimum": 5, "maximum": 1},
        {"type": "number", "exclusiveMinimum": 1, "exclusiveMaximum": 1},
        {"type": "integer", "exclusiveMinimum": 1, "exclusiveMaximum": 2},
        {"type": "string", "minLength": 5, "maxLength": 2},
        {"type": "array", "minItems": 3, "maxItems": 1},
        {"type": "integer", "minimum": 1.2, "maximum": 1.8},
    ],
)
def test_a_schema_no_value_satisfies_is_a_400(simulator, schema):
    sim = simulator({})
    answer = raw_post(
        sim,
        "/v1/chat/completions",
        forced({"type": "object", "properties": {"a": schema}, "required": ["a"]}),
    )
    assert answer.status_code == 400, answer.text


def test_a_tool_without_parameters_is_called_with_an_empty_object(simulator):
    sim = simulator({})
    answer = raw_post(sim, "/v1/chat/completions", forced({}))
    arguments = answer.json()["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]
    assert json.loads(arguments) == {}


def test_rule_arguments_with_prefix_items_and_pattern_properties_are_accepted(simulator):
    schema = {
        "type": "object",
        "properties": {
            "pair": {
                "type": "array",
                "prefixItems": [{"type": "integer"}],
                "items": {"type": "string"},
            },
            "tags": {
                "type": "object",
                "patternProperties": {"^x_": {"type": "integer"}},
                "additionalProperties": False,
            },
        },
    }
    sim = simulator(
        {
            "rules": [
                {
                    "match": "go",
                    "tool_calls": [
                        {"name": "f", "arguments": {"pair": [1, "a"], "tags": {"x_1": 2}}}
                    ],
                }
            ]
        }
    )
    tools_ = [{"type": "function", "function": {"name": "f", "parameters": schema}}]
    with openai.OpenAI(base_url=sim.url + "/v1", api_key="k", max_retries=0) as client:
        answer = client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "go"}], tools=tools_
        )
    assert answer.choices[0].message.tool_calls[0].function.name == "f"
