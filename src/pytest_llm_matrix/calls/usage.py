"""Token usage and stream progress from response bodies of the three supported wire formats.

OpenAI chat completions, OpenAI Responses and Anthropic messages each report usage under a
different shape; this module turns every one into the same `Usage`, from a parsed JSON body
(`usage_from_body`) or from raw SSE bytes as the transport receives them (`StreamTracker`).
Stdlib only: it runs in every xdist worker, for every chunk of every stream.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Usage:
    """Token counts of one response, in one meaning whatever the provider.

    `input_tokens` counts ALL input, cached included, because that is how OpenAI reports it
    and how genai-prices prices it; `cached_tokens` is the part of it read from a cache.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0


def usage_from_body(body: Mapping[str, Any]) -> Usage | None:
    """Usage of a non-streaming response body (any of the three formats); None without usage.

    All three formats keep usage under a top-level `usage` key, and its keys alone tell the
    formats apart (see `_parse_usage`), so error bodies and in-progress responses give None.
    """
    return _parse_usage(body.get("usage"))


def _parse_usage(usage: object) -> Usage | None:
    """A provider `usage` object as `Usage`, recognised by its keys.

    `prompt_tokens` is OpenAI chat (and other OpenAI-style endpoints); otherwise
    `input_tokens`/`output_tokens` is OpenAI Responses or Anthropic. Those two can share one
    rule because each lacks the other's cache fields: Anthropic's `input_tokens` excludes the
    `cache_*_input_tokens`, Responses' includes its `input_tokens_details.cached_tokens`.
    """
    if not isinstance(usage, Mapping):
        return None
    if "prompt_tokens" in usage:
        return Usage(
            input_tokens=_count(usage, "prompt_tokens"),
            output_tokens=_count(usage, "completion_tokens"),
            cached_tokens=_count(usage.get("prompt_tokens_details"), "cached_tokens"),
        )
    if "input_tokens" in usage or "output_tokens" in usage:
        cache_read = _count(usage, "cache_read_input_tokens")
        return Usage(
            input_tokens=_count(usage, "input_tokens")
            + _count(usage, "cache_creation_input_tokens")
            + cache_read,
            output_tokens=_count(usage, "output_tokens"),
            cached_tokens=cache_read + _count(usage.get("input_tokens_details"), "cached_tokens"),
        )
    return None


#: More tokens than any model reads or writes in one request: a server that reports more
#: is talking nonsense, and such numbers would overflow prices (10**400 as a float).
MAX_TOKENS = 10**9


def _count(mapping: object, key: str) -> int:
    """`mapping[key]` as a token count; missing, null or nonsense values (negative, over
    MAX_TOKENS) count as 0."""
    if not isinstance(mapping, Mapping):
        return 0
    value = mapping.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_TOKENS:
        return 0
    return value


#: The most one answer can cost, in USD: a reported cost above it is nonsense, not a price.
MAX_ANSWER_COST = 1000.0
_DECIMAL = re.compile(r"(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


def cost_value(value: object) -> float | None:
    """A cost an answer reports (a JSON number, or a header's text of one) in USD: positive,
    finite, at most MAX_ANSWER_COST; anything else is no cost said. A reported 0 is not
    said either: a gateway that does not know a model's price reports 0 (LiteLLM does, and
    on errors), which would show a paid run as free."""
    if isinstance(value, str):
        if len(value) > 64 or not _DECIMAL.fullmatch(value.strip()):
            return None  # not ``1_0``, ``0x10``, ``inf``: a header's number is plain
        value = float(value)
    elif isinstance(value, bool) or not isinstance(value, int | float):
        return None
    elif isinstance(value, int) and not 0 < value <= MAX_ANSWER_COST:
        return None  # a JSON integer of 400 digits is no float
    value = float(value)
    return value if math.isfinite(value) and 0 < value <= MAX_ANSWER_COST else None


def cost_in(data: object, path: tuple[str, ...]) -> float | None:
    """The cost at the dotted ``path`` of an answer's JSON (``("usage", "cost")``), if any."""
    if not path:
        return None
    for part in path:
        if not isinstance(data, Mapping):
            return None
        data = data.get(part)
    return cost_value(data)


# Named events that mean "the model produced output"; their payload need not be parsed.
_CONTENT_EVENTS = frozenset(
    {
        b"response.output_text.delta",
        b"response.refusal.delta",
        b"response.function_call_arguments.delta",
        b"content_block_delta",
    }
)
# Responses events that end the stream and carry the final response (and its usage).
_RESPONSE_FINAL_EVENTS = frozenset(
    {b"response.completed", b"response.incomplete", b"response.failed"}
)
# Named events whose JSON payload is parsed; every other named event is skipped unparsed.
_PARSED_EVENTS = _RESPONSE_FINAL_EVENTS | {b"message_start", b"message_delta", b"error"}
# Once the first token is seen, an OpenAI chat chunk matters only if it carries usage (whose
# object always has `prompt_tokens`) or an error; a substring test skips parsing the rest.
_CHAT_MARKERS = (b'"prompt_tokens"', b'"error"')


class StreamTracker:
    """Feed raw SSE bytes as they arrive (chunks may split lines and events anywhere);
    it tracks usage, first-token time and whether the stream reached its final event.

    The three formats are told apart by their events: OpenAI chat sends bare `data:` lines,
    Responses and Anthropic name each event. Bad JSON in an event is ignored; whether a stream
    without its final event is an error is for the caller to decide from `done`.
    """

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, cost_path: tuple[str, ...] = ()
    ) -> None:
        self._clock = clock
        self._cost_path = cost_path  # where a cost is said, in the events that carry usage
        # the chat chunks worth parsing once the first token is seen: usage, errors, a cost
        self._markers = _CHAT_MARKERS + ((b'"%s"' % cost_path[-1].encode(),) if cost_path else ())
        self.usage: Usage | None = None
        self.cost: float | None = None  # what the answer says it cost, if it does
        self.first_token_at: float | None = None
        self.done = False
        self.error: str | None = None
        self._partial = bytearray()  # an incomplete line carried over to the next chunk
        self._event: bytes | None = None  # the current event's name, if it has one
        self._data: list[bytes] = []  # the current event's data lines, if worth parsing
        self._anthropic_usage: dict[str, Any] = {}  # message_start usage, updated by deltas

    def feed(self, chunk: bytes) -> None:
        """Consume the next bytes of the stream.

        A line split across chunks is gathered in a bytearray (amortised appends), so feeding
        many tiny chunks stays linear in the stream length.
        """
        start = 0
        while (end := chunk.find(b"\n", start)) >= 0:
            if self._partial:
                self._partial += chunk[start:end]
                line = bytes(self._partial)
                self._partial.clear()
            else:
                line = chunk[start:end]
            self._line(line.removesuffix(b"\r"))
            start = end + 1
        self._partial += chunk[start:]

    def _line(self, line: bytes) -> None:
        """One SSE line: a blank line ends the event; `event:` names it; `data:` adds data."""
        if not line:
            self._dispatch()
        elif line.startswith(b"data:"):
            self._on_data(_field_value(line, 5))
        elif line.startswith(b"event:"):
            self._event = _field_value(line, 6)
        # Comments (`:` lines) and other fields (`id:`, `retry:`) say nothing about progress.

    def _on_data(self, value: bytes) -> None:
        """Keep data only for events worth parsing; content and stop events need no payload."""
        event = self._event
        if event is None or event in _PARSED_EVENTS:
            self._data.append(value)
        elif event in _CONTENT_EVENTS:
            self._first_token()
        elif event == b"message_stop":
            self.done = True

    def _dispatch(self) -> None:
        """A complete event: parse the data kept for it and update the progress fields."""
        event, data = self._event, b"\n".join(self._data)
        self._event = None
        self._data.clear()
        if not data:
            return
        if event is None:
            self._chat_chunk(data)
            return
        payload = _load(data)
        if payload is None:
            return
        if event == b"message_start":
            message = payload.get("message")
            if isinstance(message, Mapping):
                self._merge_anthropic_usage(message.get("usage"))
                self._set_cost(message)
        elif event == b"message_delta":
            self._merge_anthropic_usage(payload.get("usage"))
            self._set_cost(payload)
        elif event == b"error":
            self.error = _error_message(payload)
        else:  # a final Responses event
            self.done = True
            response = payload.get("response")
            if isinstance(response, Mapping):
                self._set_usage(_parse_usage(response.get("usage")))
                self._set_cost(response)
                if event == b"response.failed":
                    self.error = _error_message(response)

    def _chat_chunk(self, data: bytes) -> None:
        """An OpenAI chat chunk: content delta, usage (the last chunk), error or `[DONE]`."""
        if data == b"[DONE]":
            self.done = True
            return
        if self.first_token_at is not None and not any(m in data for m in self._markers):
            return
        payload = _load(data)
        if payload is None:
            return
        if payload.get("error"):
            self.error = _error_message(payload)
        self._set_usage(_parse_usage(payload.get("usage")))
        self._set_cost(payload)
        if self.first_token_at is None and _has_chat_content(payload):
            self._first_token()

    def _merge_anthropic_usage(self, usage: object) -> None:
        """Merge Anthropic usage: later events repeat fields as running totals, so they win."""
        if not isinstance(usage, Mapping):
            return
        self._anthropic_usage.update((k, v) for k, v in usage.items() if v is not None)
        self._set_usage(_parse_usage(self._anthropic_usage))

    def _set_usage(self, usage: Usage | None) -> None:
        if usage is not None:
            self.usage = usage

    def _set_cost(self, payload: Mapping[str, Any]) -> None:
        if self._cost_path and (cost := cost_in(payload, self._cost_path)) is not None:
            self.cost = cost

    def _first_token(self) -> None:
        if self.first_token_at is None:
            self.first_token_at = self._clock()


def _field_value(line: bytes, name_length: int) -> bytes:
    """The value of an SSE field line: after the colon, minus one optional leading space."""
    value = line[name_length:]
    return value[1:] if value.startswith(b" ") else value


def _load(data: bytes) -> Mapping[str, Any] | None:
    """An event's JSON object, or None when it is not one (a broken event is ignored)."""
    try:
        payload = json.loads(data)
    except (ValueError, RecursionError):  # JSONDecodeError, UnicodeDecodeError, too deep
        return None
    return payload if isinstance(payload, dict) else None


def _has_chat_content(chunk: Mapping[str, Any]) -> bool:
    """Whether a chat chunk carries output: text, a tool call or a refusal (not a bare role)."""
    choices = chunk.get("choices")
    if not isinstance(choices, list):
        return False
    for choice in choices:
        delta = choice.get("delta") if isinstance(choice, Mapping) else None
        if isinstance(delta, Mapping) and (
            delta.get("content") or delta.get("tool_calls") or delta.get("refusal")
        ):
            return True
    return False


def _error_message(payload: Mapping[str, Any]) -> str:
    """The message of an error payload: `{"error": {"message"}}` (Anthropic, OpenAI chat,
    a failed response) or a top-level `message` (the Responses `error` event)."""
    error = payload.get("error")
    source = error if isinstance(error, Mapping) else payload
    for key in ("message", "code", "type"):
        value = source.get(key)
        if isinstance(value, str) and value:
            return value
    return "stream error"
