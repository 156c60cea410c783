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

from . import tools
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
            items: list[Mapping[str, Any]] = [{"role": "user", "content": raw_input}]
        elif isinstance(raw_input, list) and all(isinstance(item, Mapping) for item in raw_input):
            items = raw_input
        else:
            raise BadRequest("'input' must be a string or an array of input items")
        # Items without a role (tool calls and outputs, reasoning) are not message text.
        messages = [item for item in items if isinstance(item.get("role"), str)]
        offered, choice = tools.responses_tools(body)
        schema, json_mode = tools.responses_schema(body)
        reasoning = body.get("reasoning")
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
            transcript=transcript(system, items, tools.responses_turn),
            tools=offered,
            tool_choice=choice,
            schema=schema,
            json_mode=json_mode,
            thinking=isinstance(reasoning, Mapping)
            and reasoning.get("effort") != "none"
            and any(reasoning.get(key) for key in ("effort", "summary")),
            reasoning_summary=isinstance(reasoning, Mapping) and bool(reasoning.get("summary")),
        )

    def complete(self, conversation: Conversation, reply: Reply) -> dict[str, Any]:
        builder = _ResponseBuilder(conversation, reply)
        return builder.response(builder.final_status, builder.output(builder.final_status))

    def stream(self, conversation: Conversation, reply: Reply) -> StreamPlan:
        builder = _ResponseBuilder(conversation, reply)
        if reply.tool_calls:
            return self._stream_calls(builder)
        status = builder.final_status
        index = builder.message_index
        part_ref = {"item_id": builder.message_id, "output_index": index, "content_index": 0}
        reasoning = (
            (
                builder.event(
                    "response.output_item.added", output_index=0, item=builder.reasoning()
                ),
                builder.event(
                    "response.output_item.done", output_index=0, item=builder.reasoning()
                ),
            )
            if reply.thinking
            else ()
        )
        head = (
            builder.event("response.created", response=builder.response("in_progress", [])),
            builder.event("response.in_progress", response=builder.response("in_progress", [])),
            *reasoning,
            builder.event(
                "response.output_item.added",
                output_index=index,
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
                "response.output_item.done", output_index=index, item=builder.message(status)
            ),
            builder.event(done_event, response=builder.response(status, builder.output(status))),
        )
        return StreamPlan(head, pieces, tail)

    @staticmethod
    def _stream_calls(builder: _ResponseBuilder) -> StreamPlan:
        """A streamed answer of function calls (after the message, if it has text)."""
        reply = builder.reply
        status = builder.final_status
        head = [
            builder.event("response.created", response=builder.response("in_progress", [])),
            builder.event("response.in_progress", response=builder.response("in_progress", [])),
        ]
        pieces = []
        items = builder.output(status)
        for index, item in enumerate(items):
            if item["type"] == "reasoning":
                pieces.append(
                    builder.event("response.output_item.added", output_index=index, item=item)
                )
                pieces.append(
                    builder.event("response.output_item.done", output_index=index, item=item)
                )
                continue
            if item["type"] == "message":  # its text streamed, as without calls
                ref = {"item_id": item["id"], "output_index": index, "content_index": 0}
                pieces += [
                    builder.event(
                        "response.output_item.added",
                        output_index=index,
                        item=builder.message("in_progress", with_text=False),
                    ),
                    builder.event("response.content_part.added", **ref, part=_text_part("")),
                    *(
                        builder.event("response.output_text.delta", **ref, delta=p, logprobs=[])
                        for p in reply.pieces
                    ),
                    builder.event("response.output_text.done", **ref, text=reply.text, logprobs=[]),
                    builder.event("response.content_part.done", **ref, part=_text_part(reply.text)),
                    builder.event("response.output_item.done", output_index=index, item=item),
                ]
                continue
            call = next(c for c in reply.tool_calls if c.id == item["call_id"])
            ref = {"item_id": item["id"], "output_index": index}
            pieces.append(
                builder.event(
                    "response.output_item.added",
                    output_index=index,
                    item={**item, "arguments": "", "status": "in_progress"},
                )
            )
            pieces += [
                builder.event("response.function_call_arguments.delta", **ref, delta=part)
                for part in reply.argument_pieces(call)
            ]
            pieces.append(
                builder.event(
                    "response.function_call_arguments.done", **ref, arguments=call.arguments
                )
            )
            pieces.append(builder.event("response.output_item.done", output_index=index, item=item))
        done_event = "response.completed" if status == "completed" else "response.incomplete"
        tail = (builder.event(done_event, response=builder.response(status, items)),)
        return StreamPlan(tuple(head), tuple(pieces), tail)


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


class _ResponseBuilder:
    """Builds the response object and its stream events with one id and sequence counter."""

    def __init__(self, conversation: Conversation, reply: Reply) -> None:
        self.conversation = conversation
        self.reply = reply
        self.response_id = new_id("resp_")
        self.message_id = new_id("msg_")
        self.reasoning_id = new_id("rs_")
        #: the message's place in the output: after the reasoning item, if any
        self.message_index = 1 if reply.thinking else 0
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

    def output(self, status: str) -> list[dict[str, Any]]:
        """The answer's output items: its message (when it has text, or makes no call) and
        a ``function_call`` item per call."""
        items = [self.reasoning()] if self.reply.thinking else []
        if self.reply.text or not self.reply.tool_calls:
            items.append(self.message(status))
        items += [
            {
                "type": "function_call",
                "id": f"fc_{call.id.removeprefix('call_')}",
                "call_id": call.id,
                "name": call.name,
                "arguments": call.arguments,
                "status": "completed",
            }
            for call in self.reply.tool_calls
        ]
        return items

    def reasoning(self) -> dict[str, Any]:
        """The reasoning item: its summary when one was asked for (the reasoning itself is
        never shown, as OpenAI keeps it)."""
        summary = (
            [{"type": "summary_text", "text": self.reply.thinking}]
            if self.conversation.reasoning_summary
            else []
        )
        return {"type": "reasoning", "id": self.reasoning_id, "summary": summary}

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
                "output_tokens_details": {"reasoning_tokens": self.reply.thinking_tokens},
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
