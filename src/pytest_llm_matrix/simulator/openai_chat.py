"""OpenAI chat completions (`POST /v1/chat/completions`), plus what all OpenAI APIs share.

Field names and shapes follow what the official openai SDK parses, so SDK users get real
`ChatCompletion` / `ChatCompletionChunk` objects, usage included.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import tools
from .wire import (
    BadRequest,
    Conversation,
    ErrorKind,
    Reply,
    SSEEvent,
    StreamPlan,
    bearer_token,
    last_user_text,
    message_list,
    new_id,
    optional_limit,
    prompt_tokens,
    system_text,
    text_of,
    transcript,
)

if TYPE_CHECKING:
    from collections.abc import Mapping
    from email.message import Message

# (type, code) of OpenAI error bodies per kind of failure.
_OPENAI_ERRORS: dict[ErrorKind, tuple[str, str | None]] = {
    "bad_request": ("invalid_request_error", None),
    "unauthorized": ("invalid_request_error", "invalid_api_key"),
    "not_found": ("invalid_request_error", "model_not_found"),
    "unknown_endpoint": ("invalid_request_error", None),  # as OpenAI: "Invalid URL (...)"
    "rate_limit": ("rate_limit_exceeded", "rate_limit_exceeded"),
    "quota": ("insufficient_quota", "insufficient_quota"),
    "server_error": ("server_error", "server_error"),
    "overloaded": ("server_error", "server_error"),
}


class OpenAIDialect:
    """Auth and error conventions shared by every OpenAI endpoint."""

    def api_key(self, headers: Message) -> str | None:
        return bearer_token(headers)

    def error_body(self, kind: ErrorKind, message: str) -> dict[str, Any]:
        error_type, code = _OPENAI_ERRORS[kind]
        return {"error": {"message": message, "type": error_type, "param": None, "code": code}}


class OpenAIChat(OpenAIDialect):
    """Chat completions, non-streaming and SSE (`data:` lines ending with `[DONE]`)."""

    def parse(self, body: Mapping[str, Any]) -> Conversation:
        messages = message_list(body, "messages")
        stream_options = body.get("stream_options")
        include_usage = (
            isinstance(stream_options, dict) and stream_options.get("include_usage") is True
        )
        system = system_text(messages)
        offered, choice = tools.openai_chat_tools(body)
        schema, json_mode = tools.openai_schema(body)
        return Conversation(
            model=body["model"],
            last_user_text=last_user_text(messages),
            prompt_tokens=prompt_tokens(text_of(message.get("content")) for message in messages),
            stream=body.get("stream") is True,
            max_tokens=optional_limit(body, "max_completion_tokens", "max_tokens"),
            include_usage=include_usage,
            system_text=system,
            transcript=transcript(system, messages, tools.chat_turn),
            choices=_choices(body),
            tools=offered,
            tool_choice=choice,
            schema=schema,
            json_mode=json_mode,
            thinking=body.get("reasoning_effort") not in (None, "none"),
        )

    def complete(self, conversation: Conversation, reply: Reply) -> dict[str, Any]:
        return {
            "id": new_id("chatcmpl-"),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": conversation.model,
            "choices": [
                {
                    "index": index,
                    "message": _message(choice),
                    "logprobs": None,
                    "finish_reason": _finish_reason(choice),
                }
                for index, choice in enumerate(reply.choices)
            ],
            "usage": _usage(conversation, reply),
        }

    def stream(self, conversation: Conversation, reply: Reply) -> StreamPlan:
        completion_id = new_id("chatcmpl-")
        created = int(time.time())

        def envelope(choices: list[dict[str, Any]], usage: dict[str, Any] | None) -> SSEEvent:
            payload: dict[str, Any] = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": conversation.model,
                "choices": choices,
            }
            if conversation.include_usage:
                payload["usage"] = usage  # null on every chunk but the last
            return SSEEvent.of(payload)

        def chunk(index: int, delta: dict[str, Any], finish: str | None = None) -> SSEEvent:
            choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
            return envelope([choice], None)

        choices = list(enumerate(reply.choices))
        tail = [chunk(index, {}, _finish_reason(choice)) for index, choice in choices]
        if conversation.include_usage:
            tail.append(envelope([], _usage(conversation, reply)))
        tail.append(SSEEvent("[DONE]"))
        # an answer of calls only has no content at all (null), as OpenAI streams it
        head = [
            chunk(
                index,
                {
                    "role": "assistant",
                    "content": "" if choice.text or not choice.tool_calls else None,
                    "refusal": None,
                },
            )
            for index, choice in choices
        ]
        # the choices' pieces interleaved, token by token, as several choices come
        per_choice = [
            [chunk(index, {"content": piece}) for piece in choice.pieces]
            + _calls(index, choice, chunk)
            for index, choice in choices
        ]
        pieces = [event for step in itertools.zip_longest(*per_choice) for event in step if event]
        return StreamPlan(head=tuple(head), pieces=tuple(pieces), tail=tuple(tail))


def _message(reply: Reply) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.text, "refusal": None}
    if reply.tool_calls:
        message["content"] = reply.text or None
        message["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
            for call in reply.tool_calls
        ]
    return message


def _calls(
    index: int, reply: Reply, chunk: Callable[[int, dict[str, Any]], SSEEvent]
) -> list[SSEEvent]:
    """A choice's calls as chunks: each call's id, type and name first, then its arguments
    piece by piece."""
    events = []
    for number, call in enumerate(reply.tool_calls):
        opening = {
            "index": number,
            "id": call.id,
            "type": "function",
            "function": {"name": call.name, "arguments": ""},
        }
        events.append(chunk(index, {"tool_calls": [opening]}))
        events += [
            chunk(index, {"tool_calls": [{"index": number, "function": {"arguments": part}}]})
            for part in reply.argument_pieces(call)
        ]
    return events


def _finish_reason(reply: Reply) -> str:
    if reply.truncated:
        return "length"
    return "tool_calls" if reply.tool_calls else "stop"


def _choices(body: Mapping[str, Any]) -> int:
    """OpenAI's ``n``: 1 to 128 choices."""
    n = body.get("n", 1)
    if n is None:
        return 1
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 128:
        raise BadRequest(f"'n' must be an integer from 1 to 128, got {n!r}")
    return n


def _usage(conversation: Conversation, reply: Reply) -> dict[str, Any]:
    completion = sum(choice.completion_tokens for choice in reply.choices)  # all generated
    return {
        "prompt_tokens": conversation.prompt_tokens,
        "completion_tokens": completion,
        "total_tokens": conversation.prompt_tokens + completion,
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": sum(choice.thinking_tokens for choice in reply.choices)
        },
    }
