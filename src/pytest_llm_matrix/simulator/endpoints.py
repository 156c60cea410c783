"""The side endpoints real suites touch besides generation: Anthropic's token counting and
OpenAI's moderations, answered in the real shapes (deterministically)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .wire import BadRequest, count_tokens, new_id

#: OpenAI's moderation categories, as its API names them.
CATEGORIES = (
    "harassment", "harassment/threatening", "hate", "hate/threatening", "illicit",
    "illicit/violent", "self-harm", "self-harm/instructions", "self-harm/intent", "sexual",
    "sexual/minors", "violence", "violence/graphic",
)  # fmt: skip
#: The category a flagged text is flagged for.
FLAGGED_CATEGORY = "violence"


def moderation_inputs(body: Mapping[str, Any]) -> list[str]:
    """The texts of a moderation request: a string, strings, or text (and image) parts."""
    value = body.get("input")
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return list(value)
    if isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
        return [" ".join(str(v.get("text", "")) for v in value if v.get("type") == "text")]
    raise BadRequest("'input' must be a string, an array of strings, or an array of parts")


def moderation(body: Mapping[str, Any], flagged: tuple[re.Pattern[str], ...]) -> dict[str, Any]:
    """A moderation answer: a text is flagged (for violence, score 0.99) when one of the
    ``flagged`` patterns finds something in it; every other score is 0."""
    model = body.get("model")
    results = []
    for text in moderation_inputs(body):
        hit = any(pattern.search(text) for pattern in flagged)
        results.append(
            {
                "flagged": hit,
                "categories": {c: hit and c == FLAGGED_CATEGORY for c in CATEGORIES},
                "category_scores": {
                    c: 0.99 if hit and c == FLAGGED_CATEGORY else 0.0 for c in CATEGORIES
                },
                "category_applied_input_types": {c: ["text"] for c in CATEGORIES},
            }
        )
    return {
        "id": new_id("modr-"),
        "model": model if isinstance(model, str) else "omni-moderation-latest",
        "results": results,
    }


def token_count(prompt_tokens: int, tools: object) -> dict[str, Any]:
    """Anthropic's ``count_tokens`` answer: the input tokens a message with this request's
    messages, system prompt (counted in ``prompt_tokens``) and tools would have."""
    extra = sum(count_tokens(str(tool)) for tool in tools) if isinstance(tools, list) else 0
    return {"input_tokens": prompt_tokens + extra}
