"""A stand-in for a gateway in front of a provider, answering OpenAI chat completions the way
LiteLLM's proxy or OpenRouter does, down to where each says what an answer cost.

Shapes seen from a real LiteLLM proxy 1.108.7 in front of the simulator (with a configured
``input_cost_per_token``): a whole answer carries ``x-litellm-response-cost`` (Python's repr
of a float, ``1.9999999999999998e-05``) and its breakdown headers; a stream carries no cost
header (its headers go out before the cost is known), and its last chunk's ``usage`` holds
``cost``; an alias LiteLLM has no price for gets no ``x-litellm-response-cost`` but a
``x-litellm-response-cost-original: 0.0``. OpenRouter (its usage-accounting docs) puts
``cost`` (credits, one per USD), ``is_byok`` and ``cost_details`` in every answer's
``usage``, the last chunk's in a stream, without being asked.
"""

from __future__ import annotations

import http.server
import json
import threading
from typing import Any

#: USD per input and output token the stand-in reports costs at.
INPUT_RATE = 2e-5
OUTPUT_RATE = 4e-5
REPLY = "four words of reply"


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    shape = "litellm"  # or "openrouter"
    #: the cost each answer said, in order (None: that answer said none)
    said: list[float | None]
    #: each request's path (with its query) and headers
    seen: list[tuple[str, dict[str, str]]]
    #: answer every n-th request without a cost (0: never)
    silent_every = 0
    fixed_cost: float | None = None  # every answer's cost (None: from its tokens)
    tokenless = False  # no token counts in the answers: a usage.cost at most
    requests = 0

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        size = int(self.headers.get("content-length") or 0)
        body = json.loads(self.rfile.read(size))
        cls = type(self)
        with _LOCK:
            cls.seen.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
            cls.requests += 1
            silent = bool(cls.silent_every) and cls.requests % cls.silent_every == 0
        prompt = sum(len(str(m.get("content", "")).split()) for m in body.get("messages", []))
        usage: dict[str, Any] = {
            "completion_tokens": 4,
            "prompt_tokens": prompt + 3,
            "total_tokens": prompt + 7,
            "completion_tokens_details": {"reasoning_tokens": 0},
            "prompt_tokens_details": {"cached_tokens": 0},
        }
        cost = usage["prompt_tokens"] * INPUT_RATE + 4 * OUTPUT_RATE
        if cls.fixed_cost is not None:
            cost = cls.fixed_cost
        headers = {"x-litellm-call-id": "6b7a3c1e-1111-4000-8000-00000000abcd"}
        if silent:
            cost_said = None
            if self.shape == "litellm":
                headers["x-litellm-response-cost-original"] = "0.0"
        elif self.shape == "openrouter":
            usage.update(cost=cost, is_byok=False, cost_details={"upstream_inference_cost": None})
            cost_said = cost
        else:
            cost_said = cost
        streaming = body.get("stream") is True
        if not silent and self.shape == "litellm":
            if streaming:
                usage["cost"] = cost
            else:
                headers["x-litellm-response-cost"] = repr(cost)
                headers["x-litellm-response-cost-original"] = repr(cost)
                headers["x-litellm-response-cost-input"] = repr(usage["prompt_tokens"] * INPUT_RATE)
        if cls.tokenless:  # usage without token counts: only the cost in it
            usage = {"cost": usage["cost"]} if "cost" in usage else None
        with _LOCK:
            cls.said.append(cost_said)
        answer_id = "chatcmpl-gw0001"
        if not streaming:
            data = {
                "id": answer_id,
                "object": "chat.completion",
                "model": body.get("model"),
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": "stop",
                        "message": {"role": "assistant", "content": REPLY},
                    }
                ],
            }
            if usage is not None:
                data["usage"] = usage
            self._send(200, "application/json", json.dumps(data).encode(), headers)
            return
        chunks = [
            {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]},
            {"choices": [{"index": 0, "delta": {"content": REPLY}}]},
            {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
            {"choices": [{"index": 0, "delta": {}}], **({"usage": usage} if usage else {})},
        ]
        events = b"".join(
            b"data: "
            + json.dumps({"id": answer_id, "object": "chat.completion.chunk", **c}).encode()
            + b"\n\n"
            for c in chunks
        )
        self._send(200, "text/event-stream", events + b"data: [DONE]\n\n", headers)

    def _send(self, status: int, kind: str, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        self.send_header("content-type", kind)
        self.send_header("content-length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)


_LOCK = threading.Lock()


class Gateway:
    """``with Gateway("litellm") as gw: gw.url, gw.said``: a gateway stand-in on loopback."""

    def __init__(
        self,
        shape: str,
        silent_every: int = 0,
        fixed_cost: float | None = None,
        tokenless: bool = False,
    ) -> None:
        self.handler: Any = type(
            "Handler",
            (_Handler,),
            {
                "shape": shape,
                "said": [],
                "seen": [],
                "silent_every": silent_every,
                "requests": 0,
                "fixed_cost": fixed_cost,
                "tokenless": tokenless,
            },
        )
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self.handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    @property
    def said(self) -> list[float | None]:
        return list(self.handler.said)

    @property
    def seen(self) -> list[tuple[str, dict[str, str]]]:
        return list(self.handler.seen)

    def __enter__(self) -> Gateway:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
