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
