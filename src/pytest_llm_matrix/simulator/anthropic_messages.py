"""Anthropic Messages API (`POST /v1/messages`), non-streaming and SSE.

The stream follows Anthropic's event order (message_start, content_block_start, ping,
content_block_delta..., content_block_stop, message_delta, message_stop) so the SDK's
`messages.stream()` helper can accumulate a final message with cumulative usage.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
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
    from email.message import Message

    from .wire import ToolCall

_ANTHROPIC_ERRORS: dict[ErrorKind, str] = {
    "bad_request": "invalid_request_error",
    "unauthorized": "authentication_error",
    "not_found": "not_found_error",
    "unknown_endpoint": "not_found_error",
    "rate_limit": "rate_limit_error",
    "quota": "rate_limit_error",
    "server_error": "api_error",
    "overloaded": "overloaded_error",
}


class AnthropicMessages:
    """Messages API; `system` and message content may be strings or lists of blocks."""

    def api_key(self, headers: Message) -> str | None:
        # The SDK sends `x-api-key`; gateways and auth-token users send a bearer token.
        return headers.get("x-api-key") or bearer_token(headers)

    def error_body(self, kind: ErrorKind, message: str) -> dict[str, Any]:
        return {"type": "error", "error": {"type": _ANTHROPIC_ERRORS[kind], "message": message}}

    def parse(self, body: Mapping[str, Any]) -> Conversation:
        messages = message_list(body, "messages")
        texts = [text_of(message.get("content")) for message in messages]
        system = body.get("system")
        if system is not None:
            if not isinstance(system, str | list):
                raise BadRequest("'system' must be a string or an array of text blocks")
            texts.append(text_of(system))
        system_prompt = system_text(messages, system)
        offered, choice = tools.anthropic_tools(body)
        schema, json_mode = tools.anthropic_schema(body)
        return Conversation(
            model=body["model"],
            last_user_text=last_user_text(messages),
            prompt_tokens=prompt_tokens(texts),
            stream=body.get("stream") is True,
            max_tokens=optional_limit(body, "max_tokens"),
            system_text=system_prompt,
            transcript=transcript(system_prompt, messages, tools.anthropic_turns),
            tools=offered,
            tool_choice=choice,
            schema=schema,
            json_mode=json_mode,
            thinking=_thinking(body),
        )

    def complete(self, conversation: Conversation, reply: Reply) -> dict[str, Any]:
        content: list[dict[str, Any]] = []
        if reply.thinking:
            content.append(
                {"type": "thinking", "thinking": reply.thinking, "signature": _signature(reply)}
            )
        if reply.text or not reply.tool_calls:
            content.append({"type": "text", "text": reply.text})
        content += [_tool_use(call, call.input) for call in reply.tool_calls]
        return _message(
            new_id("msg_"),
            conversation,
            content=content,
            stop_reason=_stop_reason(reply),
            output_tokens=reply.completion_tokens,
        )

    def stream(self, conversation: Conversation, reply: Reply) -> StreamPlan:
        start = _message(
            new_id("msg_"), conversation, content=[], stop_reason=None, output_tokens=1
        )
        text = bool(reply.text or not reply.tool_calls)
        first = 1 if reply.thinking else 0  # the text block's index: after the thinking
        head = [_event("message_start", message=start)]
        pieces: list[SSEEvent] = []
        if reply.thinking:
            block = {"type": "thinking", "thinking": "", "signature": ""}
            head.append(_event("content_block_start", index=0, content_block=block))
            pieces += [
                _event(
                    "content_block_delta",
                    index=0,
                    delta={"type": "thinking_delta", "thinking": part},
                )
                for part in reply.thinking_pieces()
            ]
            signature = {"type": "signature_delta", "signature": _signature(reply)}
            pieces.append(_event("content_block_delta", index=0, delta=signature))
            pieces.append(_event("content_block_stop", index=0))
        if text:
            block = {"type": "text", "text": ""}
            (pieces if reply.thinking else head).append(
                _event("content_block_start", index=first, content_block=block)
            )
        head.append(_event("ping"))
        pieces += [
            _event("content_block_delta", index=first, delta={"type": "text_delta", "text": piece})
            for piece in reply.pieces
        ]
        if text and reply.tool_calls:
            pieces.append(_event("content_block_stop", index=first))
        for number, call in enumerate(reply.tool_calls, start=first + int(text)):
            pieces.append(
                _event("content_block_start", index=number, content_block=_tool_use(call, {}))
            )
            pieces += [
                _event(
                    "content_block_delta",
                    index=number,
                    delta={"type": "input_json_delta", "partial_json": part},
                )
                for part in reply.argument_pieces(call)
            ]
            pieces.append(_event("content_block_stop", index=number))
        tail = [] if reply.tool_calls else [_event("content_block_stop", index=first)]
        tail += [
            _event(
                "message_delta",
                delta={"stop_reason": _stop_reason(reply), "stop_sequence": None},
                usage={"output_tokens": reply.completion_tokens},
            ),
            _event("message_stop"),
        ]
        return StreamPlan(tuple(head), tuple(pieces), tuple(tail))


def _event(event_type: str, **fields: object) -> SSEEvent:
    return SSEEvent.of({"type": event_type, **fields}, event_type)


def _stop_reason(reply: Reply) -> str:
    if reply.truncated:
        return "max_tokens"
    return "tool_use" if reply.tool_calls else "end_turn"


def _thinking(body: Mapping[str, Any]) -> bool:
    """Whether extended thinking is asked for: ``{"type": "enabled", "budget_tokens": N}``."""
    thinking = body.get("thinking")
    if not isinstance(thinking, Mapping) or thinking.get("type") != "enabled":
        return False
    budget = thinking.get("budget_tokens")
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise BadRequest(f"thinking.budget_tokens must be an integer >= 1, got {budget!r}")
    limit = body.get("max_tokens")
    if isinstance(limit, int) and not isinstance(limit, bool) and budget >= limit:
        raise BadRequest(
            f"max_tokens must be greater than thinking.budget_tokens ({limit} <= {budget})"
        )
    return True


def _signature(reply: Reply) -> str:
    """A thinking block's signature: opaque, the same for the same thinking."""
    return "sim-" + hashlib.sha256(reply.thinking.encode()).hexdigest()[:32]


def _tool_use(call: ToolCall, arguments: object) -> dict[str, Any]:
    return {
        "type": "tool_use",
        "id": f"toolu_{call.id.removeprefix('call_')}",
        "name": call.name,
        "input": arguments,
    }


def _message(
    message_id: str,
    conversation: Conversation,
    *,
    content: list[dict[str, Any]],
    stop_reason: str | None,
    output_tokens: int,
) -> dict[str, Any]:
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": conversation.model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {
            "input_tokens": conversation.prompt_tokens,
            "output_tokens": output_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        },
    }
