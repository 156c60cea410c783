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
from typing import Any

from .wire import BadRequest, Choice, Tool, ToolCall, text_of


def call(name: str, arguments: Mapping[str, Any]) -> ToolCall:
    # (no NaN or infinity: a schema's enum of 1e999 makes no JSON; a ValueError, a 400)
    text = json.dumps(arguments, ensure_ascii=False, allow_nan=False)
    return ToolCall(f"call_{uuid.uuid4().hex[:24]}", name, text)


def openai_chat_tools(body: Mapping[str, Any]) -> tuple[tuple[Tool, ...], Choice]:
    tools = []
    for item in _list(body, "tools"):
        if item.get("type") != "function":
            continue  # a built-in tool the simulator does not call
        function = item.get("function")
        if not isinstance(function, Mapping):
            raise BadRequest("a function tool needs a 'function' object")
        tools.append(Tool(_tool_name(function.get("name")), _schema(function.get("parameters"))))
    parallel = body.get("parallel_tool_calls") is not False
    choice = body.get("tool_choice")
    if isinstance(choice, Mapping) and choice.get("type") == "allowed_tools":
        return _allowed(choice.get("allowed_tools"), tools, parallel)
    if isinstance(choice, Mapping):
        function = choice.get("function")
        name = function.get("name") if isinstance(function, Mapping) else None
        return tuple(tools), _named(name, tools, parallel)
    return tuple(tools), _mode(choice, tools, parallel)


def responses_tools(body: Mapping[str, Any]) -> tuple[tuple[Tool, ...], Choice]:
    tools = [
        Tool(_tool_name(item.get("name")), _schema(item.get("parameters")))
        for item in _list(body, "tools")
        if item.get("type") == "function"
    ]
    parallel = body.get("parallel_tool_calls") is not False
    choice = body.get("tool_choice")
    if isinstance(choice, Mapping) and choice.get("type") == "allowed_tools":
        return _allowed(choice, tools, parallel)
    if isinstance(choice, Mapping):
        return tuple(tools), _named(choice.get("name"), tools, parallel)
    return tuple(tools), _mode(choice, tools, parallel)


def anthropic_tools(body: Mapping[str, Any]) -> tuple[tuple[Tool, ...], Choice]:
    tools = tuple(
        Tool(_tool_name(item.get("name")), _schema(item.get("input_schema")))
        for item in _list(body, "tools")
        if item.get("type") in (None, "custom")
    )
    choice = body.get("tool_choice")
    if choice is None:
        return tools, Choice("auto")
    if not isinstance(choice, Mapping):
        raise BadRequest(f"tool_choice must be an object with a 'type', got {choice!r}")
    parallel = choice.get("disable_parallel_tool_use") is not True
    kind = choice.get("type")
    if kind == "tool":
        return tools, _named(choice.get("name"), tools, parallel)
    if kind == "any":
        if not tools:
            raise BadRequest("tool_choice 'any' needs at least one tool")
        return tools, Choice("required", parallel=parallel)
    if kind in ("auto", "none"):
        return tools, Choice(str(kind), parallel=parallel)
    raise BadRequest(f"unknown tool_choice type {kind!r} (auto, any, tool, none)")


def _tool_name(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise BadRequest(f"every tool needs a 'name', got {value!r}")
    return value


def _list(body: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    value = body.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, Mapping) for item in value):
        raise BadRequest(f"'{key}' must be an array of objects")
    return value


def _schema(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {"type": "object", "properties": {}}


def _mode(value: object, tools: list[Tool] | tuple[Tool, ...], parallel: bool = True) -> Choice:
    if value in (None, "auto"):
        return Choice("auto", parallel=parallel)
    if value in ("none", "required"):
        if value == "required" and not tools:
            raise BadRequest("tool_choice 'required' needs at least one tool")
        return Choice(str(value), parallel=parallel)
    raise BadRequest(f"unknown tool_choice {value!r}")


def _named(name: object, tools: list[Tool] | tuple[Tool, ...], parallel: bool = True) -> Choice:
    if not isinstance(name, str) or name not in {tool.name for tool in tools}:
        raise BadRequest(f"tool_choice names a tool that is not offered: {name!r}")
    return Choice("named", name, parallel=parallel)


def _allowed(choice: object, tools: list[Tool], parallel: bool) -> tuple[tuple[Tool, ...], Choice]:
    """OpenAI's ``allowed_tools``: the offered tools it lists, in its mode."""
    if not isinstance(choice, Mapping) or not isinstance(choice.get("tools"), list):
        raise BadRequest("allowed_tools needs a 'mode' and a list of 'tools'")
    names: set[str] = set()
    for item in choice["tools"]:
        function = item.get("function") if isinstance(item, Mapping) else None
        holder = function if isinstance(function, Mapping) else item
        name = holder.get("name") if isinstance(holder, Mapping) else None
        if not isinstance(name, str):
            raise BadRequest(f"allowed_tools names a tool by {name!r}, not by its name")
        names.add(name)
    allowed = tuple(tool for tool in tools if tool.name in names)
    return allowed, _mode(choice.get("mode"), allowed, parallel)


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

#: How deep a schema is followed: past it, an array is empty and anything else is null.
_DEPTH = 8
#: The most values one made answer holds: nested ``minItems`` multiply.
_BUDGET = 10_000
#: ... and the most characters its strings hold (an answer of ``n`` choices: each).
_CHARACTERS = 200_000
#: Strings for the ``format``s pydantic and the SDKs write, each valid for its format.
_FORMATS: dict[str, str] = {
    "date-time": "2025-01-01T00:00:00Z",
    "date": "2025-01-01",
    "time": "00:00:00",
    "uuid": "00000000-0000-4000-8000-000000000000",
    "email": "user@example.com",
    "uri": "https://example.com",
    "hostname": "example.com",
    "ipv4": "192.0.2.1",
    "ipv6": "2001:db8::1",
    "duration": "P1D",
}


class _Maker:
    """Makes one value for a schema, counting what it makes (see :data:`_BUDGET` and
    :data:`_CHARACTERS`)."""

    def __init__(self, root: Mapping[str, Any]) -> None:
        self.root = root
        self.made = 0
        self.characters = 0

    def count(self, values: int = 1, characters: int = 0) -> None:
        self.made += values
        self.characters += characters
        if self.made > _BUDGET or self.characters > _CHARACTERS:
            raise BadRequest(
                f"the schema asks for a value of more than {_BUDGET:,} parts or "
                f"{_CHARACTERS:,} characters"
            )

    def value(self, schema: object, defs: Mapping[str, Any], depth: int) -> Any:
        self.count()
        if not isinstance(schema, Mapping):
            return None
        defs = _defs(schema, defs)
        ref = schema.get("$ref")
        if isinstance(ref, str):  # followed at any depth: arrays and leaves end it
            return self.value(_resolve(ref, self.root, defs), defs, depth + 1)
        if "const" in schema:
            return schema["const"]
        enum = schema.get("enum")
        if isinstance(enum, list) and enum:
            return enum[0]
        for key in ("anyOf", "oneOf"):
            options = schema.get(key)
            if isinstance(options, list) and options:
                # past the depth, the option that ends soonest: one that refers nowhere
                if depth >= _DEPTH:
                    options = sorted(options, key=lambda o: (_refers(o), _type(o) != "null"))
                return self.value(options[0], defs, depth + 1)
        merged = _all_of(schema, self.root, defs)
        kind = _type(merged)
        if kind == "object":
            return self._object(merged, defs, depth)
        if kind == "array":
            return self._array(merged, defs, depth)
        if kind == "string":
            text = _string(merged)
            self.count(0, len(text))
            return text
        if kind in ("integer", "number"):
            return _number(merged, kind)
        if kind == "boolean":
            return False
        return None

    def _object(self, schema: Mapping[str, Any], defs: Mapping[str, Any], depth: int) -> Any:
        properties = schema.get("properties")
        properties = properties if isinstance(properties, Mapping) else {}
        required = _names(schema.get("required"))
        if depth >= _DEPTH:  # deep in a recursive schema: only what is required
            properties = {k: v for k, v in properties.items() if k in required}
        made = {name: self.value(sub, defs, depth + 1) for name, sub in properties.items()}
        for name in required:  # a required name without a schema: any value will do
            if name not in made:
                self.count(1, len(name))
                made[name] = "example"
        extra = schema.get("additionalProperties")
        wanted = _bound(schema.get("minProperties"), 0) or 0
        for index in range(max(wanted - len(made), 0)):  # dict[str, X] with a minimum size
            self.count()
            value_schema = extra if isinstance(extra, Mapping) else {}
            made[f"key{index}"] = self.value(value_schema, defs, depth + 1)
        return made

    def _array(self, schema: Mapping[str, Any], defs: Mapping[str, Any], depth: int) -> Any:
        low = _bound(schema.get("minItems"), 0) or 0
        high = _bound(schema.get("maxItems"), None)
        prefix = schema.get("prefixItems")
        if isinstance(prefix, list):
            return [self.value(item, defs, depth + 1) for item in prefix]
        count = low if depth >= _DEPTH or high == 0 else max(low, 1)
        if high is not None:
            count = min(count, high)
        items_schema = schema.get("items")
        if schema.get("uniqueItems") is True and count > 1:
            return self._distinct(items_schema, count, defs, depth)
        return [self.value(items_schema, defs, depth + 1) for _ in range(count)]

    def _distinct(self, schema: object, count: int, defs: Mapping[str, Any], depth: int) -> Any:
        """``count`` different items: an enum's first values, or strings and numbers
        without bounds told apart by their index (the final check refuses the rest)."""
        if isinstance(schema, Mapping):
            schema = _resolve(schema["$ref"], self.root, defs) if "$ref" in schema else schema
        enum = schema.get("enum") if isinstance(schema, Mapping) else None
        if isinstance(enum, list) and len(enum) >= count:
            return list(enum[:count])
        first = self.value(schema, defs, depth + 1)
        items = [first] + [self.value(schema, defs, depth + 1) for _ in range(count - 1)]
        if isinstance(first, str):
            return [f"{item}{index}" if index else item for index, item in enumerate(items)]
        if isinstance(first, int | float) and not isinstance(first, bool):
            return [item + index for index, item in enumerate(items)]
        return items


def example(schema: object, defs: Mapping[str, Any] | None = None, depth: int = 0) -> Any:
    """A value that validates against ``schema``, the same every time, for the JSON Schema
    that tools and structured outputs use (pydantic's included): ``type``, ``properties``,
    ``required``, ``items``, ``prefixItems``, ``enum``, ``const``, ``anyOf``/``oneOf``,
    ``allOf``, ``$ref`` (to ``$defs`` or ``#``), ``minimum``/``maximum`` (exclusive too),
    ``multipleOf``, ``minLength``/``maxLength``, ``minItems``/``maxItems``, ``uniqueItems``,
    ``minProperties``, ``format`` (date-time, date, time, uuid, email, uri, ...). Every
    property is given: a strict schema requires them all. Not ``pattern``. A schema the
    value cannot be made for (contradictory bounds, more than :data:`_BUDGET` values or
    :data:`_CHARACTERS` characters) is a :class:`BadRequest`."""
    root = schema if isinstance(schema, Mapping) else {}
    made = _Maker(root).value(schema, defs or {}, depth)
    problem = violation(made, schema, defs)
    if problem is not None:
        raise BadRequest(f"the simulator cannot make a value for this schema: {problem}")
    return made


def _defs(schema: Mapping[str, Any], defs: Mapping[str, Any]) -> Mapping[str, Any]:
    found = [schema.get(key) for key in ("$defs", "definitions")]
    if not any(isinstance(more, Mapping) and more for more in found):
        return defs
    merged = dict(defs)
    for more in found:
        if isinstance(more, Mapping):
            merged.update(more)
    return merged


def _resolve(ref: object, root: Mapping[str, Any], defs: Mapping[str, Any]) -> object:
    """What a ``$ref`` points to: ``#``, ``#/$defs/x``, or any JSON pointer into the root."""
    if not isinstance(ref, str):
        return None
    if ref == "#":
        return root
    parts = ref.removeprefix("#/").split("/") if ref.startswith("#/") else []
    if len(parts) == 2 and parts[0] in ("$defs", "definitions") and parts[1] in defs:
        return defs[parts[1]]
    found: object = root
    for part in parts:
        found = (
            found.get(part.replace("~1", "/").replace("~0", "~"))
            if isinstance(found, Mapping)
            else None
        )
    return found


def _refers(schema: object) -> bool:
    return isinstance(schema, Mapping) and ("$ref" in schema or "allOf" in schema)


def _type(schema: object) -> str | None:
    if not isinstance(schema, Mapping):
        return None
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None and ("properties" in schema or "required" in schema):
        return "object"
    if kind is None and ("items" in schema or "prefixItems" in schema):
        return "array"
    return kind if isinstance(kind, str) else None


def _all_of(
    schema: Mapping[str, Any],
    root: Mapping[str, Any] | None = None,
    defs: Mapping[str, Any] | None = None,
) -> Mapping[str, Any]:
    """A schema with its ``allOf`` parts folded in (their properties and requirements; the
    stricter numeric bound; a part that is a ``$ref`` resolved first)."""
    parts = schema.get("allOf")
    if not isinstance(parts, list) or not parts:
        return schema
    merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
    properties = dict(merged.get("properties") or {})
    required = list(_names(merged.get("required")))
    for part in parts:
        if isinstance(part, Mapping) and "$ref" in part:
            part = _resolve(part["$ref"], root or schema, defs or _defs(schema, {}))
        if not isinstance(part, Mapping):
            continue
        part = _all_of(part, root, defs)
        for key, value in part.items():
            if key in ("minimum", "exclusiveMinimum", "minLength", "minItems") and key in merged:
                merged[key] = max(merged[key], value) if _comparable(merged[key], value) else value
                continue
            if key in ("maximum", "exclusiveMaximum", "maxLength", "maxItems") and key in merged:
                merged[key] = min(merged[key], value) if _comparable(merged[key], value) else value
                continue
            if key == "properties" and isinstance(value, Mapping):
                properties.update(value)
            elif key == "required":
                required += _names(value)
            else:
                merged.setdefault(key, value)
    if properties:
        merged["properties"] = properties
    if required:
        merged["required"] = required
    return merged


def _comparable(a: object, b: object) -> bool:
    return all(isinstance(v, int | float) and not isinstance(v, bool) for v in (a, b))


def _names(value: object) -> list[str]:
    return [n for n in value if isinstance(n, str)] if isinstance(value, list) else []


def _bound(value: object, default: int | None) -> int | None:
    """A count bound (``minItems``, ``maxLength``, ...): a whole number from 0."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return default
    return value


def _string(schema: Mapping[str, Any]) -> str:
    fmt = schema.get("format")
    text = _FORMATS.get(fmt, "example") if isinstance(fmt, str) else "example"
    low, high = _bound(schema.get("minLength"), 0) or 0, _bound(schema.get("maxLength"), None)
    if low > 100_000:
        raise BadRequest(f"minLength {low} is more than the simulator makes (100,000)")
    if len(text) < low:
        text = (text * (low // len(text) + 1))[:low]
    if high is not None and len(text) > high:
        text = text[: max(high, low)]
    return text


def _number(schema: Mapping[str, Any], kind: str) -> int | float:
    """The number nearest 0 within the schema's bounds, on its ``multipleOf`` (a whole one
    for an integer); none there is a :class:`BadRequest`. Whole bounds stay whole numbers
    (no float rounding of 2**53 or 10**20)."""

    def bound(key: str) -> int | float | None:
        value = schema.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        if isinstance(value, float) and not math.isfinite(value):
            return None
        return value

    low, high = bound("minimum"), bound("maximum")
    above, below = bound("exclusiveMinimum"), bound("exclusiveMaximum")
    step = bound("multipleOf")
    step = step if step is not None and step > 0 else None

    def fits(v: int | float) -> bool:
        return (
            (low is None or v >= low)
            and (high is None or v <= high)
            and (above is None or v > above)
            and (below is None or v < below)
            and (kind != "integer" or float(v).is_integer())
            and (step is None or _multiple(v, step))
        )

    candidates: list[int | float] = [0]
    for edge in (low, high, above, below):
        if edge is not None:
            candidates += _near(edge, step, kind)
    if low is not None and high is not None and kind == "number":
        candidates.append((low + high) / 2)
    if above is not None and below is not None and kind == "number":
        candidates.append((above + below) / 2)
    found = [c for c in candidates if fits(c)]
    if not found:
        raise BadRequest("the schema's bounds leave no number to answer with")
    value = min(found, key=abs)
    return int(value) if kind == "integer" else float(value)


def _near(edge: int | float, step: int | float | None, kind: str) -> list[int | float]:
    """Numbers at and next to a bound: on the step's multiples, or whole, or the bound."""
    if step is not None:
        base: int | float = (
            edge - edge % step
            if isinstance(edge, int) and isinstance(step, int)
            else math.floor(edge / step) * step
        )
        return [base + k * step for k in (-1, 0, 1, 2)]
    if kind == "integer":
        whole = edge if isinstance(edge, int) else math.floor(edge)
        return [whole - 1, whole, whole + 1]
    return [edge, edge + 1, edge - 1]


def _multiple(value: int | float, step: int | float) -> bool:
    if isinstance(value, int) and isinstance(step, int):
        return value % step == 0
    quotient = value / step
    return math.isclose(quotient, round(quotient), rel_tol=1e-9, abs_tol=1e-9)


def _distinct(item: Any, index: int) -> Any:
    """Items made alike, made distinct (``uniqueItems``) where their type allows."""
    if isinstance(item, str):
        return f"{item}{index}" if index else item
    if isinstance(item, int | float) and not isinstance(item, bool):
        return item + index
    return item


#: How deep a value is checked against a schema (a self-referencing one ends there).
_CHECK_DEPTH = 64


def violation(
    value: Any,
    schema: object,
    defs: Mapping[str, Any] | None = None,
    depth: int = 0,
    root: Mapping[str, Any] | None = None,
) -> str | None:
    """Why ``value`` does not validate against ``schema`` (types, ``required``,
    ``properties``, ``additionalProperties: false``, ``items``, ``enum``, ``const``,
    ``anyOf``/``oneOf``, ``allOf``, ``$ref``, length and range bounds), or None."""
    if not isinstance(schema, Mapping) or depth > _CHECK_DEPTH:
        return None
    root = schema if root is None else root
    defs = _defs(schema, defs or {})
    ref = schema.get("$ref")
    if isinstance(ref, str):
        return violation(value, _resolve(ref, root, defs), defs, depth + 1, root)
    if "const" in schema and value != schema["const"]:
        return f"{value!r} is not {schema['const']!r}"
    if isinstance(schema.get("enum"), list) and value not in schema["enum"]:
        return f"{value!r} is not one of {schema['enum']!r}"
    for key in ("anyOf", "oneOf"):
        options = schema.get(key)
        if not isinstance(options, list) or not options:
            continue
        if all(violation(value, o, defs, depth + 1, root) for o in options):
            return f"{value!r} matches none of {key}"
    schema = _all_of(schema, root, defs)
    kinds = schema.get("type")
    kinds = kinds if isinstance(kinds, list) else [kinds] if isinstance(kinds, str) else []
    if kinds and not any(_is(value, kind) for kind in kinds):
        return f"{value!r} is not of type {' or '.join(map(str, kinds))}"
    if isinstance(value, dict):
        properties = schema.get("properties")
        properties = properties if isinstance(properties, Mapping) else {}
        for name in _names(schema.get("required")):
            if name not in value:
                return f"{name!r} is required"
        patterned = isinstance(schema.get("patternProperties"), Mapping)
        for name, item in value.items():
            if name in properties:
                problem = violation(item, properties[name], defs, depth + 1, root)
                if problem is not None:
                    return f"{name}: {problem}"
            elif schema.get("additionalProperties") is False and not patterned:
                return f"{name!r} is not an allowed property"
    if isinstance(value, list):
        prefix = schema.get("prefixItems")
        prefix = prefix if isinstance(prefix, list) else []
        for index, item in enumerate(value):
            own = prefix[index] if index < len(prefix) else schema.get("items")
            if (problem := violation(item, own, defs, depth + 1, root)) is not None:
                return f"[{index}]: {problem}"
    return _out_of_bounds(value, schema)


def _out_of_bounds(value: Any, schema: Mapping[str, Any]) -> str | None:
    sized = {str: ("minLength", "maxLength"), list: ("minItems", "maxItems")}
    for kind, (low_key, high_key) in sized.items():
        if isinstance(value, kind):
            low, high = _bound(schema.get(low_key), 0) or 0, _bound(schema.get(high_key), None)
            if len(value) < low or (high is not None and len(value) > high):
                return f"{value!r} is not within {low_key} and {high_key}"
    if isinstance(value, int | float) and not isinstance(value, bool):
        for key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
            bound = schema.get(key)
            if isinstance(bound, bool) or not isinstance(bound, int | float):
                continue
            broken = {
                "minimum": value < bound,
                "maximum": value > bound,
                "exclusiveMinimum": value <= bound,
                "exclusiveMaximum": value >= bound,
            }[key]
            if broken:
                return f"{value!r} breaks {key} {bound!r}"
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
    """Anthropic's structured outputs: ``output_config.format`` (the SDK's ``parse``), or
    the beta's ``output_format``."""
    config = body.get("output_config")
    if isinstance(config, Mapping) and config.get("format") is not None:
        return _format(config.get("format"), nested=False)
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
