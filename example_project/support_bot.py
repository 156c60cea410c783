"""A tiny support bot: the prompts and the parsing the tests check across models."""

from __future__ import annotations

import json
from typing import Any

SYSTEM = "You are the support assistant of an online shop. Be brief and never share personal data."
INTENTS = ("refund", "shipping", "cancel", "other")


def classify_prompt(message: str) -> str:
    return (
        "Classify the customer's intent as one word out of "
        f"{', '.join(INTENTS)}.\nMessage: {message}"
    )


def parse_intent(reply: str) -> str:
    word = reply.strip().strip(".").lower()
    return word if word in INTENTS else "other"


def extraction_prompt(email: str) -> str:
    return (
        "Extract the customer's name, order id and issue from this email as JSON with the "
        f"keys name, order_id, issue.\n\n{email}"
    )


def parse_extraction(reply: str) -> dict[str, Any]:
    data = json.loads(reply)
    if not isinstance(data, dict):
        raise ValueError(f"expected a JSON object, got {reply!r}")
    return data


# --- an agent step: the model may call a tool to look an order up ---------------------------

ORDER_STATUS_TOOL = {
    "type": "function",
    "function": {
        "name": "order_status",
        "description": "The shipping status of an order.",
        "parameters": {
            "type": "object",
            "properties": {"order_id": {"type": "string"}},
            "required": ["order_id"],
        },
    },
}
ORDERS = {"A-1042": "shipped on Monday, arrives Friday"}


def order_status(order_id: str) -> str:
    return ORDERS.get(order_id, "no such order")


def answer_with_tools(client: Any, model: str, question: str, max_turns: int = 3) -> str:
    """Ask ``question``, running the tool calls the model makes, until it answers in text."""
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": question},
    ]
    for _ in range(max_turns):
        reply = (
            client.chat.completions.create(
                model=model, messages=messages, tools=[ORDER_STATUS_TOOL]
            )
            .choices[0]
            .message
        )
        if not reply.tool_calls:
            return str(reply.content)
        messages.append(reply.model_dump(exclude_none=True))
        for call in reply.tool_calls:
            arguments = json.loads(call.function.arguments)
            result = order_status(**arguments) if call.function.name == "order_status" else "?"
            messages.append({"role": "tool", "tool_call_id": call.id, "content": result})
    raise RuntimeError(f"no answer after {max_turns} turns")
