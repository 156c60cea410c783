"""Tools and tool calls, provider-neutral: what a request offers, what an answer calls.

Each API spells tools its own way (OpenAI chat ``{"type": "function", "function": {...}}``,
Responses ``{"type": "function", "name": ...}``, Anthropic ``{"name", "input_schema"}``) and
asks for a call its own way (``tool_choice``); the parsers here turn them into `Tool` and a
`Choice`. A call the simulator makes is a `ToolCall`; its arguments come from a rule, or are
made from the tool's JSON schema (:func:`example`), deterministically.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .wire import BadRequest, text_of


@dataclass(frozen=True)
class Tool:
    """An offered function: its name and its parameters' JSON schema."""

    name: str
    schema: Mapping[str, Any]


@dataclass(frozen=True)
class Choice:
    """What the request allows: no call (``none``), any (``auto``), a call to one of them
    (``required``), or a call to ``name``."""

    mode: str = "auto"
    name: str | None = None

    @property
    def forces(self) -> bool:
        return self.mode in ("required", "named")


@dataclass(frozen=True)
class ToolCall:
    """A call the answer makes; ``arguments`` is its JSON text, as the APIs carry it."""

    id: str
    name: str
    arguments: str

    @property
    def input(self) -> Any:
        return json.loads(self.arguments)


def call(name: str, arguments: Mapping[str, Any]) -> ToolCall:
    return ToolCall(
        f"call_{uuid.uuid4().hex[:24]}", name, json.dumps(arguments, ensure_ascii=False)
    )


def openai_chat_tools(body: Mapping[str, Any]) -> tuple[tuple[Tool, ...], Choice]:
    tools = []
    for item in _list(body, "tools"):
        function = item.get("function") if item.get("type") == "function" else None
        if isinstance(function, Mapping) and isinstance(function.get("name"), str):
            tools.append(Tool(function["name"], _schema(function.get("parameters"))))
    choice = body.get("tool_choice")
    if isinstance(choice, Mapping):
        function = choice.get("function")
        name = function.get("name") if isinstance(function, Mapping) else None
        return tuple(tools), _named(name, tools)
    return tuple(tools), _mode(choice, tools)


def responses_tools(body: Mapping[str, Any]) -> tuple[tuple[Tool, ...], Choice]:
    tools = tuple(
        Tool(item["name"], _schema(item.get("parameters")))
        for item in _list(body, "tools")
        if item.get("type") == "function" and isinstance(item.get("name"), str)
    )
    choice = body.get("tool_choice")
    if isinstance(choice, Mapping):
        return tools, _named(choice.get("name"), tools)
    return tools, _mode(choice, tools)


def anthropic_tools(body: Mapping[str, Any]) -> tuple[tuple[Tool, ...], Choice]:
    tools = tuple(
        Tool(item["name"], _schema(item.get("input_schema")))
        for item in _list(body, "tools")
        if isinstance(item.get("name"), str) and item.get("type") in (None, "custom")
    )
    choice = body.get("tool_choice")
    if not isinstance(choice, Mapping):
        return tools, _mode(None, tools)
    kind = choice.get("type")
    if kind == "tool":
        return tools, _named(choice.get("name"), tools)
    return tools, _mode({"any": "required"}.get(str(kind), kind), tools)


def _list(body: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    value = body.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, Mapping) for item in value):
        raise BadRequest(f"'{key}' must be an array of objects")
    return value


def _schema(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {"type": "object", "properties": {}}


def _mode(value: object, tools: list[Tool] | tuple[Tool, ...]) -> Choice:
    if value in (None, "auto"):
        return Choice("auto")
    if value in ("none", "required"):
        if value == "required" and not tools:
            raise BadRequest("tool_choice 'required' needs at least one tool")
        return Choice(str(value))
    raise BadRequest(f"unknown tool_choice {value!r}")


def _named(name: object, tools: list[Tool] | tuple[Tool, ...]) -> Choice:
    if not isinstance(name, str) or name not in {tool.name for tool in tools}:
        raise BadRequest(f"tool_choice names a tool that is not offered: {name!r}")
    return Choice("named", name)


# --- the conversation's tool turns, as text a rule's ``conversation`` pattern searches ------


def chat_turn(message: Mapping[str, Any]) -> str | None:
    """A chat message's tool calls, ``assistant: name(arguments)`` (a ``tool`` message's
    result is its text: ``tool: <result>`` already)."""
    calls = message.get("tool_calls")
    if message.get("role") == "assistant" and isinstance(calls, list):
        return "\n".join(
            f"assistant: {f.get('name')}({f.get('arguments')})"
            for c in calls
            if isinstance(c, Mapping) and isinstance(f := c.get("function"), Mapping)
        )
    return None


def responses_turn(item: Mapping[str, Any]) -> str | None:
    kind = item.get("type")
    if kind == "function_call_output":
        output = item.get("output")
        return f"tool: {output if isinstance(output, str) else text_of(output)}"
    if kind == "function_call":
        return f"assistant: {item.get('name')}({item.get('arguments')})"
    return None


def anthropic_turns(message: Mapping[str, Any]) -> list[str]:
    content = message.get("content")
    if not isinstance(content, list):
        return []
    lines = []
    for block in content:
        if not isinstance(block, Mapping):
            continue
        if block.get("type") == "tool_result":
            lines.append(f"tool: {text_of(block.get('content'))}")
        elif block.get("type") == "tool_use":
            lines.append(f"assistant: {block.get('name')}({json.dumps(block.get('input'))})")
    return lines


# --- arguments made from a schema ---------------------------------------------------------

#: How deep a schema is followed: a recursive one ends in empty values.
_DEPTH = 8


def example(schema: object, defs: Mapping[str, Any] | None = None, depth: int = 0) -> Any:
    """A value that validates against ``schema`` (the JSON Schema subset tools and
    structured outputs use: types, properties, required, items, enum, const, anyOf/oneOf,
    $ref to $defs, minimum, minItems, minLength), the same every time. Every property is
    given: a strict schema requires them all."""
    if not isinstance(schema, Mapping) or depth > _DEPTH:
        return None
    defs = {**(defs or {}), **schema.get("$defs", {}), **schema.get("definitions", {})}
    ref = schema.get("$ref")
    if isinstance(ref, str):
        return example(defs.get(ref.rpartition("/")[2]), defs, depth + 1)
    if "const" in schema:
        return schema["const"]
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return enum[0]
    for key in ("anyOf", "oneOf", "allOf"):
        options = schema.get(key)
        if isinstance(options, list) and options:
            return example(options[0], defs, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or (kind is None and "properties" in schema):
        properties = schema.get("properties")
        if not isinstance(properties, Mapping):
            return {}
        return {name: example(sub, defs, depth + 1) for name, sub in properties.items()}
    if kind == "array":
        count = schema.get("minItems", 0)
        count = count if isinstance(count, int) and 0 <= count <= 100 else 0
        return [example(schema.get("items"), defs, depth + 1) for _ in range(max(count, 1))]
    if kind == "string":
        length = schema.get("minLength", 0)
        text = "example"
        if isinstance(length, int) and 0 < length <= 10_000:
            text = (text * (length // len(text) + 1))[: max(length, len(text))]
        return text
    if kind in ("integer", "number"):
        low = schema.get("minimum", schema.get("exclusiveMinimum"))
        value = low if isinstance(low, int | float) and not isinstance(low, bool) else 0
        if "exclusiveMinimum" in schema and value == schema["exclusiveMinimum"]:
            value += 1
        return math.ceil(value) if kind == "integer" else float(value)
    if kind == "boolean":
        return False
    return None


def violation(value: Any, schema: object, defs: Mapping[str, Any] | None = None) -> str | None:
    """Why ``value`` does not validate against ``schema`` (the subset :func:`example`
    makes values for, plus ``required`` and ``additionalProperties: false``), or None."""
    if not isinstance(schema, Mapping):
        return None
    defs = {**(defs or {}), **schema.get("$defs", {}), **schema.get("definitions", {})}
    ref = schema.get("$ref")
    if isinstance(ref, str):
        return violation(value, defs.get(ref.rpartition("/")[2]), defs)
    if "const" in schema and value != schema["const"]:
        return f"{value!r} is not {schema['const']!r}"
    if isinstance(schema.get("enum"), list) and value not in schema["enum"]:
        return f"{value!r} is not one of {schema['enum']!r}"
    for key in ("anyOf", "oneOf"):
        options = schema.get(key)
        if isinstance(options, list) and all(violation(value, o, defs) for o in options):
            return f"{value!r} matches none of {key}"
    kinds = schema.get("type")
    kinds = kinds if isinstance(kinds, list) else [kinds] if isinstance(kinds, str) else []
    if kinds and not any(_is(value, kind) for kind in kinds):
        return f"{value!r} is not of type {' or '.join(kinds)}"
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        for name in schema.get("required", []):
            if name not in value:
                return f"{name!r} is required"
        for name, item in value.items():
            if name in properties:
                if (problem := violation(item, properties[name], defs)) is not None:
                    return f"{name}: {problem}"
            elif schema.get("additionalProperties") is False:
                return f"{name!r} is not an allowed property"
    if isinstance(value, list):
        for index, item in enumerate(value):
            if (problem := violation(item, schema.get("items"), defs)) is not None:
                return f"[{index}]: {problem}"
    return None


def _is(value: Any, kind: str) -> bool:
    number = isinstance(value, int | float) and not isinstance(value, bool)
    return {
        "object": isinstance(value, dict),
        "array": isinstance(value, list),
        "string": isinstance(value, str),
        "integer": number and float(value).is_integer(),
        "number": number,
        "boolean": isinstance(value, bool),
        "null": value is None,
    }.get(kind, True)


def openai_schema(body: Mapping[str, Any]) -> tuple[Mapping[str, Any] | None, bool]:
    """Chat completions' ``response_format``: (a json_schema's schema, json_object asked)."""
    return _format(body.get("response_format"), nested=True)


def responses_schema(body: Mapping[str, Any]) -> tuple[Mapping[str, Any] | None, bool]:
    """The Responses API's ``text.format``."""
    text = body.get("text")
    return _format(text.get("format") if isinstance(text, Mapping) else None, nested=False)


def anthropic_schema(body: Mapping[str, Any]) -> tuple[Mapping[str, Any] | None, bool]:
    """Anthropic's structured outputs: ``output_format``."""
    return _format(body.get("output_format"), nested=False)


def _format(value: object, nested: bool) -> tuple[Mapping[str, Any] | None, bool]:
    if not isinstance(value, Mapping):
        return None, False
    if value.get("type") == "json_object":
        return None, True
    if value.get("type") != "json_schema":
        return None, False
    holder = value.get("json_schema") if nested else value
    schema = holder.get("schema") if isinstance(holder, Mapping) else None
    if not isinstance(schema, Mapping):
        raise BadRequest("a json_schema format needs a 'schema' object")
    return schema, True
