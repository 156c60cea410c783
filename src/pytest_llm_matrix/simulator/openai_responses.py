"""OpenAI Responses API (`POST /v1/responses`), non-streaming and SSE with `event:` lines.

The stream emits the full event sequence a real server sends (created, in_progress,
output_item.added, content_part.added, output_text deltas, the matching *.done events and
completed), because the SDK's `responses.stream()` helper rebuilds the response from those
events and refuses streams that skip the structural ones.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from .openai_chat import OpenAIDialect
from .wire import (
    BadRequest,
    Conversation,
    Reply,
    SSEEvent,
    StreamPlan,
    last_user_text,
    new_id,
    optional_limit,
    prompt_tokens,
    system_text,
    text_of,
    transcript,
)


class OpenAIResponses(OpenAIDialect):
    """The Responses API; `input` may be a string or a list of role/content messages."""

    def parse(self, body: Mapping[str, Any]) -> Conversation:
        raw_input = body.get("input")
        if isinstance(raw_input, str):
            messages: list[Mapping[str, Any]] = [{"role": "user", "content": raw_input}]
        elif isinstance(raw_input, list) and all(isinstance(item, Mapping) for item in raw_input):
            # Items without a role (tool outputs, reasoning) are not conversation text.
            messages = [item for item in raw_input if isinstance(item.get("role"), str)]
        else:
            raise BadRequest("'input' must be a string or an array of input items")
        texts = [text_of(message.get("content")) for message in messages]
        instructions = body.get("instructions")
        if isinstance(instructions, str):
            texts.append(instructions)
        system = system_text(messages, instructions)
        return Conversation(
            model=body["model"],
            last_user_text=last_user_text(messages),
            prompt_tokens=prompt_tokens(texts),
            stream=body.get("stream") is True,
            max_tokens=optional_limit(body, "max_output_tokens"),
            system_text=system,
            transcript=transcript(system, messages),
        )

    def complete(self, conversation: Conversation, reply: Reply) -> dict[str, Any]:
        builder = _ResponseBuilder(conversation, reply)
        return builder.response(builder.final_status, [builder.message(builder.final_status)])

    def stream(self, conversation: Conversation, reply: Reply) -> StreamPlan:
        builder = _ResponseBuilder(conversation, reply)
        status = builder.final_status
        part_ref = {"item_id": builder.message_id, "output_index": 0, "content_index": 0}
        head = (
            builder.event("response.created", response=builder.response("in_progress", [])),
            builder.event("response.in_progress", response=builder.response("in_progress", [])),
            builder.event(
                "response.output_item.added",
                output_index=0,
                item=builder.message("in_progress", with_text=False),
            ),
            builder.event("response.content_part.added", **part_ref, part=_text_part("")),
        )
        pieces = tuple(
            builder.event("response.output_text.delta", **part_ref, delta=piece, logprobs=[])
            for piece in reply.pieces
        )
        done_event = "response.completed" if status == "completed" else "response.incomplete"
        tail = (
            builder.event("response.output_text.done", **part_ref, text=reply.text, logprobs=[]),
            builder.event("response.content_part.done", **part_ref, part=_text_part(reply.text)),
            builder.event(
                "response.output_item.done", output_index=0, item=builder.message(status)
            ),
            builder.event(done_event, response=builder.response(status, [builder.message(status)])),
        )
        return StreamPlan(head, pieces, tail)


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


class _ResponseBuilder:
    """Builds the response object and its stream events with one id and sequence counter."""

    def __init__(self, conversation: Conversation, reply: Reply) -> None:
        self.conversation = conversation
        self.reply = reply
        self.response_id = new_id("resp_")
        self.message_id = new_id("msg_")
        self.created_at = int(time.time())
        self.final_status = "incomplete" if reply.truncated else "completed"
        self._sequence = 0

    def event(self, event_type: str, **fields: object) -> SSEEvent:
        payload = {"type": event_type, "sequence_number": self._sequence, **fields}
        self._sequence += 1
        return SSEEvent.of(payload, event_type)

    def message(self, status: str, *, with_text: bool = True) -> dict[str, Any]:
        """The assistant message item; without text before its content part has started."""
        content = [_text_part(self.reply.text)] if with_text else []
        return {
            "type": "message",
            "id": self.message_id,
            "status": status,
            "role": "assistant",
            "content": content,
        }

    def response(self, status: str, output: list[dict[str, Any]]) -> dict[str, Any]:
        finished = status != "in_progress"
        usage = None
        if finished:
            prompt, completion = self.conversation.prompt_tokens, self.reply.completion_tokens
            usage = {
                "input_tokens": prompt,
                "output_tokens": completion,
                "total_tokens": prompt + completion,
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens_details": {"reasoning_tokens": 0},
            }
        incomplete = {"reason": "max_output_tokens"} if status == "incomplete" else None
        return {
            "id": self.response_id,
            "object": "response",
            "created_at": self.created_at,
            "completed_at": int(time.time()) if status == "completed" else None,
            "status": status,
            "error": None,
            "incomplete_details": incomplete,
            "instructions": None,
            "max_output_tokens": self.conversation.max_tokens,
            "model": self.conversation.model,
            "output": output,
            "parallel_tool_calls": True,
            "previous_response_id": None,
            "reasoning": {"effort": None, "summary": None},
            "store": False,
            "temperature": 1.0,
            "text": {"format": {"type": "text"}},
            "tool_choice": "auto",
            "tools": [],
            "top_p": 1.0,
            "truncation": "disabled",
            "usage": usage,
            "metadata": {},
        }
