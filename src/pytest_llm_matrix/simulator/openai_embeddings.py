"""OpenAI embeddings (``POST /v1/embeddings``): deterministic vectors, and usage.

The same text always gets the same vector (from a hash of it), unit length, of
``dimensions`` floats (default 16); ``encoding_format = "base64"`` (what the openai SDK asks
for) packs them as little-endian float32. There is no stream: a stream request is a 400.
"""

from __future__ import annotations

import base64
import hashlib
import math
import struct
from collections.abc import Mapping
from typing import Any

from .openai_chat import OpenAIDialect
from .wire import BadRequest, Conversation, Reply, StreamPlan, count_tokens

DEFAULT_DIMENSIONS = 16
MAX_DIMENSIONS = 4096
MAX_INPUTS = 2048


def vector(text: str, dimensions: int) -> list[float]:
    """A unit vector that depends only on ``text`` and ``dimensions``."""
    values: list[float] = []
    block = 0
    while len(values) < dimensions:
        digest = hashlib.sha256(f"{block}:{text}".encode()).digest()
        values += [(byte - 127.5) / 127.5 for byte in digest]
        block += 1
    values = values[:dimensions]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]


class OpenAIEmbeddings(OpenAIDialect):
    """Embeddings: the inputs travel in ``Conversation.inputs``; the reply text is unused."""

    def parse(self, body: Mapping[str, Any]) -> Conversation:
        raw = body.get("input")
        inputs = [raw] if isinstance(raw, str) else raw
        if (
            not isinstance(inputs, list)
            or not 1 <= len(inputs) <= MAX_INPUTS
            or not all(isinstance(item, str) for item in inputs)
        ):
            raise BadRequest(f"'input' must be a string or an array of 1 to {MAX_INPUTS} strings")
        dimensions = body.get("dimensions", DEFAULT_DIMENSIONS)
        if (
            isinstance(dimensions, bool)
            or not isinstance(dimensions, int)
            or not 1 <= dimensions <= MAX_DIMENSIONS
        ):
            raise BadRequest(
                f"'dimensions' must be an integer from 1 to {MAX_DIMENSIONS}, got {dimensions!r}"
            )
        encoding = body.get("encoding_format", "float")
        if encoding not in ("float", "base64"):
            raise BadRequest(f"'encoding_format' must be 'float' or 'base64', got {encoding!r}")
        if body.get("stream") is True:
            raise BadRequest("embeddings are not streamed")
        return Conversation(
            model=body["model"],
            last_user_text="\n".join(inputs),
            prompt_tokens=sum(count_tokens(item) for item in inputs),
            stream=False,
            max_tokens=None,
            inputs=tuple(inputs),
            dimensions=dimensions,
            base64=encoding == "base64",
        )

    def complete(self, conversation: Conversation, reply: Reply) -> dict[str, Any]:
        data = []
        for index, text in enumerate(conversation.inputs):
            values = vector(text, conversation.dimensions)
            embedding: list[float] | str = values
            if conversation.base64:
                packed = struct.pack(f"<{len(values)}f", *values)
                embedding = base64.b64encode(packed).decode()
            data.append({"object": "embedding", "index": index, "embedding": embedding})
        tokens = conversation.prompt_tokens
        return {
            "object": "list",
            "data": data,
            "model": conversation.model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }

    def stream(self, conversation: Conversation, reply: Reply) -> StreamPlan:
        raise AssertionError("parse() refuses a stream request")  # pragma: no cover
