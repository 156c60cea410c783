"""Provider-neutral pieces of the wire protocols: parsed requests, replies, SSE frames, tokens.

Each provider module (OpenAI chat, OpenAI responses, Anthropic messages) implements the
`Dialect` protocol on top of these, so the HTTP handler can run the same fault/latency/rate
logic for every API and only ask the dialect how to spell the answer.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeAlias

if TYPE_CHECKING:
    from collections.abc import Callable
    from email.message import Message

# What went wrong, independent of how each provider names it in its error body.
ErrorKind: TypeAlias = Literal[
    "bad_request",
    "unauthorized",
    "not_found",  # the model does not exist
    "unknown_endpoint",  # no such URL: a client's mistake, not the model's
    "rate_limit",
    "quota",
    "server_error",
    "overloaded",
]

CHARS_PER_TOKEN = 4
TOKENS_PER_MESSAGE = 3


class BadRequest(Exception):
    """The request body is JSON but not a valid request for this API (answered with a 400)."""


def count_tokens(text: str) -> int:
    """Deterministic stand-in for a tokenizer: the same text always gives the same count."""
    return max(1, math.ceil(len(text) / CHARS_PER_TOKEN))


def prompt_tokens(texts: Iterable[str]) -> int:
    """Prompt size of a conversation: every message's text plus a fixed per-message overhead."""
    return sum(count_tokens(text) + TOKENS_PER_MESSAGE for text in texts)


def text_of(content: object) -> str:
    """Text of a message `content`: a string, or the `text` of each block in a list of blocks.

    Non-text blocks (images, tool calls) carry no text and are skipped.
    """
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [
            block["text"]
            for block in content
            if isinstance(block, Mapping) and isinstance(block.get("text"), str)
        ]
        return "\n".join(parts)
    return ""


def message_list(body: Mapping[str, Any], name: str) -> list[Mapping[str, Any]]:
    """`body[name]` validated as a non-empty list of message objects that each have a role."""
    value = body.get(name)
    if (
        not isinstance(value, list)
        or not value
        or not all(
            isinstance(item, Mapping) and isinstance(item.get("role"), str) for item in value
        )
    ):
        raise BadRequest(f"'{name}' must be a non-empty array of message objects with a 'role'")
    return value


def last_user_text(messages: Iterable[Mapping[str, Any]]) -> str:
    """Text of the last user message that has text (not one that only carries tool results):
    the prompt that rules, wrong answers and faults match."""
    texts = [text_of(m.get("content")) for m in messages if m.get("role") == "user"]
    return next((text for text in reversed(texts) if text), "")


def system_text(messages: Iterable[Mapping[str, Any]], *extra: object) -> str:
    """The system prompt: system and developer messages, and ``extra`` (Anthropic's
    ``system``, the Responses API's ``instructions``), one per line."""
    parts = [text_of(part) for part in extra if isinstance(part, str | list)]
    parts += [
        text_of(message.get("content"))
        for message in messages
        if message.get("role") in ("system", "developer")
    ]
    return "\n".join(parts)


def transcript(
    system: str,
    messages: Iterable[Mapping[str, Any]],
    tool_turns: Callable[[Mapping[str, Any]], str | list[str] | None] | None = None,
) -> str:
    """The whole conversation as ``role: text`` lines, system prompt first: what a rule's
    ``conversation`` pattern searches. ``tool_turns`` gives an item's tool calls and results
    as ``assistant: name({...})`` and ``tool: result`` lines."""
    lines = [f"system: {system}"] if system else []
    for message in messages:
        role = message.get("role")
        if role in ("system", "developer"):
            continue
        text = text_of(message.get("content"))
        if role is not None and (text or tool_turns is None):
            lines.append(f"{role}: {text}")
        turns = tool_turns(message) if tool_turns is not None else None
        lines += [turns] if isinstance(turns, str) else turns or []
    return "\n".join(lines)


def optional_limit(body: Mapping[str, Any], *names: str) -> int | None:
    """The first present token limit among `names`, validated as a positive integer."""
    for name in names:
        value = body.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise BadRequest(f"'{name}' must be an integer >= 1, got {value!r}")
        return value
    return None


def new_id(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:24]}"


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
    parallel: bool = True  # more than one call allowed (OpenAI parallel_tool_calls,
    # Anthropic disable_parallel_tool_use)

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


@dataclass(frozen=True)
class Conversation:
    """What the simulator needs from a request, whatever API it came through."""

    model: str
    last_user_text: str
    prompt_tokens: int
    stream: bool
    max_tokens: int | None
    include_usage: bool = False
    system_text: str = ""  # the system prompt (see system_text())
    choices: int = 1  # OpenAI's ``n``: this many choices, each the same reply
    inputs: tuple[str, ...] = ()  # embeddings: the texts to embed
    dimensions: int = 0  # embeddings: the vector size
    base64: bool = False  # embeddings: vectors packed as base64 float32
    transcript: str = ""  # the whole conversation (see transcript())
    tools: tuple[Tool, ...] = ()  # the functions the request offers
    tool_choice: Choice | None = None  # whether it asks for a call (None: as it likes)
    schema: Mapping[str, Any] | None = None  # the JSON schema the answer must follow
    json_mode: bool = False  # a JSON answer asked for (json_object, or a schema)
    thinking: bool = False  # thinking or reasoning asked for (its text is in the answer)
    reasoning_summary: bool = False  # the Responses API: a summary of it asked for


@dataclass(frozen=True)
class Reply:
    """The assistant text after `max_tokens` truncation, pre-split into one piece per token."""

    text: str
    pieces: tuple[str, ...]
    truncated: bool
    completion_tokens: int
    tool_calls: tuple[ToolCall, ...] = ()
    thinking: str = ""  # the thinking before the answer (its tokens are in the count)
    others: tuple[Reply, ...] = ()  # OpenAI's ``n``: the other choices, each answered anew

    @property
    def choices(self) -> tuple[Reply, ...]:
        return (self, *self.others)

    @property
    def thinking_tokens(self) -> int:
        return count_tokens(self.thinking) if self.thinking else 0

    def thinking_pieces(self) -> tuple[str, ...]:
        text = self.thinking
        return tuple(text[i : i + CHARS_PER_TOKEN] for i in range(0, len(text), CHARS_PER_TOKEN))

    def argument_pieces(self, call: ToolCall) -> tuple[str, ...]:
        """A call's arguments in stream-sized pieces (one token each)."""
        text = call.arguments
        return tuple(text[i : i + CHARS_PER_TOKEN] for i in range(0, len(text), CHARS_PER_TOKEN))


def make_reply(
    text: str, max_tokens: int | None, tool_calls: tuple[ToolCall, ...] = (), thinking: str = ""
) -> Reply:
    """Cut `text` to `max_tokens` and split it so each stream chunk is exactly one token.
    ``thinking`` comes first, then the text, then ``tool_calls``, all within `max_tokens`:
    what does not fit is cut (thinking, text) or left out (a call), and the reply is
    truncated."""
    if not (thinking or tool_calls):
        return _text_reply(text, max_tokens)
    left = max_tokens
    if thinking:
        cut = _text_reply(thinking, left)
        thinking = cut.text
        if left is not None:
            left -= cut.completion_tokens
        if cut.truncated or left == 0:
            return Reply("", (), True, cut.completion_tokens, (), thinking)
    reply = _text_reply(text, left) if text else Reply("", (), False, 0)
    if left is not None:
        left -= reply.completion_tokens
    calls = []
    truncated = reply.truncated
    for call in tool_calls:
        tokens = count_tokens(call.name + call.arguments)
        if truncated or (left is not None and tokens > left):
            truncated = True  # a call cut short is no call: left out
            break
        calls.append(call)
        if left is not None:
            left -= tokens
    used = reply.completion_tokens + sum(count_tokens(c.name + c.arguments) for c in calls)
    used += count_tokens(thinking) if thinking else 0
    return Reply(reply.text, reply.pieces, truncated, used, tuple(calls), thinking)


def _text_reply(text: str, max_tokens: int | None) -> Reply:
    limit = None if max_tokens is None else max_tokens * CHARS_PER_TOKEN
    truncated = limit is not None and len(text) > limit
    if limit is not None:
        text = text[:limit]
    pieces = tuple(text[i : i + CHARS_PER_TOKEN] for i in range(0, len(text), CHARS_PER_TOKEN))
    return Reply(text, pieces, truncated, count_tokens(text))


@dataclass(frozen=True)
class SSEEvent:
    """One server-sent event; `data` is already serialized so it can also be cut short."""

    data: str
    event: str | None = None

    @classmethod
    def of(cls, payload: object, event: str | None = None) -> SSEEvent:
        return cls(json.dumps(payload, ensure_ascii=False), event)

    def encode(self) -> bytes:
        head = f"event: {self.event}\n" if self.event is not None else ""
        return f"{head}data: {self.data}\n\n".encode()


@dataclass(frozen=True)
class StreamPlan:
    """A streamed answer: events before the text, one event per text piece, closing events.

    Kept in three parts because pacing (tokens_per_second) applies between the pieces and
    truncation drops the closing events.
    """

    head: tuple[SSEEvent, ...]
    pieces: tuple[SSEEvent, ...]
    tail: tuple[SSEEvent, ...]


class Dialect(Protocol):
    """How one provider API parses requests and spells answers and errors."""

    def api_key(self, headers: Message) -> str | None:
        """The API key the client sent, in this provider's header convention."""
        ...

    def parse(self, body: Mapping[str, Any]) -> Conversation:
        """Validate `body` (whose `model` the handler has checked to be a string).

        Raises `BadRequest` when it is not a valid request for this API.
        """
        ...

    def error_body(self, kind: ErrorKind, message: str) -> dict[str, Any]: ...

    def complete(self, conversation: Conversation, reply: Reply) -> dict[str, Any]:
        """The non-streaming response body."""
        ...

    def stream(self, conversation: Conversation, reply: Reply) -> StreamPlan: ...


def bearer_token(headers: Message) -> str | None:
    value = headers.get("Authorization")
    if value is None:
        return None
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None
