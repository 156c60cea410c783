"""The small built-in client behind the ``llm`` fixture.

It speaks OpenAI chat completions (OpenAI and every OpenAI-compatible server) and
Anthropic messages, sync and async, streaming or not. The wire formats are handled by
pure functions (request body, response body, stream events), so the sync and async
paths share every line that knows a format.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Final

from pytest_llm_matrix.calls import transport
from pytest_llm_matrix.calls.retrying import error_parts, error_text
from pytest_llm_matrix.calls.usage import Usage, usage_from_body

if TYPE_CHECKING:
    import httpx2

    from pytest_llm_matrix.calls.exchange import Route
    from pytest_llm_matrix.config.models import Model

Message = Mapping[str, Any]
ANTHROPIC_DEFAULT_MAX_TOKENS: Final = 1024


class LLMError(Exception):
    """A model answered with an error, or with something that is not a valid answer."""


@dataclasses.dataclass(frozen=True)
class ChatResult:
    """One answer: its text, the tokens it used, and the raw response body."""

    text: str
    usage: Usage
    finish_reason: str | None
    model: str
    raw: Mapping[str, Any] = dataclasses.field(repr=False, default_factory=dict)

    def __str__(self) -> str:
        return self.text


def _messages(prompt_or_messages: str | Sequence[Message], system: str | None) -> list[Message]:
    if isinstance(prompt_or_messages, str):
        messages: list[Message] = [{"role": "user", "content": prompt_or_messages}]
    else:
        messages = list(prompt_or_messages)
    if system is not None:
        messages.insert(0, {"role": "system", "content": system})
    return messages


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(b.get("text", "") for b in content if isinstance(b, dict))
    return ""


def request_body(
    model: Model, messages: Sequence[Message], params: Mapping[str, Any], stream: bool
) -> tuple[str, dict[str, Any]]:
    """(path, JSON body) for one chat request; the model's default params come first."""
    merged = {**model.params, **params}
    if model.api == "anthropic":
        system = [_text_of(m["content"]) for m in messages if m.get("role") == "system"]
        body: dict[str, Any] = {
            "model": model.model,
            "messages": [m for m in messages if m.get("role") != "system"],
            "max_tokens": ANTHROPIC_DEFAULT_MAX_TOKENS,
            **merged,
        }
        if system:
            body["system"] = "\n\n".join(system)
        if stream:
            body["stream"] = True
        return "/v1/messages", body
    body = {"model": model.model, "messages": list(messages), **merged}
    if stream:
        body["stream"] = True
        body.setdefault("stream_options", {"include_usage": True})
    return "/chat/completions", body


def parse_body(model: Model, status: int, content: bytes) -> ChatResult:
    """Turn a response body into a ChatResult, or raise an LLMError naming the model."""
    __tracebackhide__ = True
    try:
        data = json.loads(content)
    except (ValueError, RecursionError):
        snippet = content[:200].decode("utf-8", "replace")
        raise LLMError(
            f"{model.name}: HTTP {status} with a body that is not JSON: {snippet!r}"
        ) from None
    if status >= 400 or not isinstance(data, dict):
        raise LLMError(f"{model.name}: HTTP {status}: {_error_message(data)}")
    usage = usage_from_body(data) or Usage()
    try:
        if model.api == "anthropic":
            text, finish = _text_of(data["content"]), data.get("stop_reason")
        else:
            choice = data["choices"][0]
            text, finish = choice["message"].get("content") or "", choice.get("finish_reason")
    except (KeyError, IndexError, TypeError, AttributeError):
        raise LLMError(f"{model.name}: unexpected response shape: {str(data)[:200]}") from None
    return ChatResult(text, usage, finish, data.get("model", model.model), data)


def _error_message(data: Any) -> str:
    return error_text(*error_parts(data))


@contextmanager
def _named_errors(model: Model) -> Iterator[None]:
    """Report network failures as the model's, not as a traceback from httpx2."""
    __tracebackhide__ = True
    import httpx2

    try:
        yield
    except httpx2.TransportError as exc:
        raise LLMError(f"{model.name}: {type(exc).__name__}: {exc}") from exc


class StreamParser:
    """Takes SSE lines of either format and gives the text they carry; at the end,
    :meth:`result` is the whole answer, as ``chat`` gives it.

    First-token time and cut streams are the transport's business: it watches every
    stream, this client's included.
    """

    def __init__(self, model: Model) -> None:
        self.model = model
        self._event = ""
        self.parts: list[str] = []
        self.usage: dict[str, Any] = {}  # Anthropic's: message_start's, updated by deltas
        self.finish: str | None = None
        self.model_id: str | None = None

    def result(self) -> ChatResult:
        """The streamed answer: its text, usage, finish reason and model."""
        usage = usage_from_body({"usage": self.usage}) or Usage()
        return ChatResult(
            "".join(self.parts), usage, self.finish, self.model_id or self.model.model
        )

    def feed(self, line: str) -> str:
        """One SSE line in, the text it carries out (often empty)."""
        __tracebackhide__ = True
        if line.startswith("event:"):
            self._event = line[6:].strip()
            return ""
        payload = line[5:].strip() if line.startswith("data:") else "[DONE]"
        if payload == "[DONE]":
            return ""
        try:
            event = json.loads(payload)
        except (ValueError, RecursionError):
            raise LLMError(
                f"{self.model.name}: malformed stream event: {payload[:200]!r}"
            ) from None
        if not isinstance(event, dict):
            raise LLMError(f"{self.model.name}: malformed stream event: {payload[:200]!r}")
        kind = event.get("type", self._event)
        if kind == "error" or "error" in event:
            raise LLMError(f"{self.model.name}: stream error: {_error_message(event)}")
        text = self._anthropic(kind, event) if self.model.api == "anthropic" else self._chat(event)
        if text:
            self.parts.append(text)
        return text

    def _anthropic(self, kind: str, event: Mapping[str, Any]) -> str:
        message = event.get("message")
        if kind == "message_start" and isinstance(message, Mapping):
            self.model_id = message.get("model") or self.model_id
            self._usage(message.get("usage"))
        elif kind == "message_delta":
            self._usage(event.get("usage"))
            delta = event.get("delta")
            if isinstance(delta, Mapping) and delta.get("stop_reason"):
                self.finish = str(delta["stop_reason"])
        elif kind == "content_block_delta":
            delta = event.get("delta")
            return str(delta.get("text", "")) if isinstance(delta, Mapping) else ""
        return ""

    def _chat(self, event: Mapping[str, Any]) -> str:
        if isinstance(event.get("model"), str):
            self.model_id = event["model"]
        if isinstance(event.get("usage"), Mapping):
            self.usage = dict(event["usage"])
        texts = []
        for choice in event.get("choices") or ():
            if not isinstance(choice, Mapping):
                continue
            if choice.get("finish_reason"):
                self.finish = str(choice["finish_reason"])
            delta = choice.get("delta")
            if isinstance(delta, Mapping) and isinstance(delta.get("content"), str):
                texts.append(delta["content"])
        return "".join(texts)

    def _usage(self, usage: object) -> None:
        if isinstance(usage, Mapping):
            self.usage.update((k, v) for k, v in usage.items() if v is not None)


class LLM:
    """A client bound to one model: ``complete``, ``chat``, ``stream`` and async twins.

    ``params`` given to a call override the model's configured ``params``.
    """

    def __init__(self, model: Model, route: Route | None = None) -> None:
        self.model = model
        self.route = route  # whose requests these are (None: the model under test's)
        self._client: httpx2.Client | None = None
        #: the last answer: of ``chat``/``complete``, or of a stream once it has ended (None
        #: while a stream runs, and after one left before its end)
        self.last: ChatResult | None = None

    def __repr__(self) -> str:
        return f"<LLM {self.model.name} ({self.model.provider}:{self.model.model})>"

    @property
    def http(self) -> httpx2.Client:
        if self._client is None:
            self._client = transport.http_client(self.model, shared=True, route=self.route)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def chat(
        self, messages: str | Sequence[Message], *, system: str | None = None, **params: Any
    ) -> ChatResult:
        __tracebackhide__ = True
        path, body = request_body(self.model, _messages(messages, system), params, False)
        with _named_errors(self.model):
            response = self.http.post(path, json=body)
        self.last = parse_body(self.model, response.status_code, response.content)
        return self.last

    def complete(self, prompt: str, *, system: str | None = None, **params: Any) -> str:
        __tracebackhide__ = True
        return self.chat(prompt, system=system, **params).text

    def stream(
        self, messages: str | Sequence[Message], *, system: str | None = None, **params: Any
    ) -> Iterator[str]:
        """Yield text pieces as they arrive; raises LLMError if the stream is cut short."""
        __tracebackhide__ = True
        path, body = request_body(self.model, _messages(messages, system), params, True)
        parser = StreamParser(self.model)
        self.last = None  # until this stream ends
        with _named_errors(self.model), self.http.stream("POST", path, json=body) as response:
            if response.status_code >= 400:
                parse_body(self.model, response.status_code, response.read())
            for line in response.iter_lines():
                if text := parser.feed(line):
                    yield text
        self.last = parser.result()

    async def achat(
        self, messages: str | Sequence[Message], *, system: str | None = None, **params: Any
    ) -> ChatResult:
        __tracebackhide__ = True
        path, body = request_body(self.model, _messages(messages, system), params, False)
        # A client per call, closed in the call's own event loop: a fixture cannot close an
        # async client in the test's loop, and a test may run several loops.
        with _named_errors(self.model):
            async with transport.async_http_client(self.model, route=self.route) as client:
                response = await client.post(path, json=body)
        self.last = parse_body(self.model, response.status_code, response.content)
        return self.last

    async def acomplete(self, prompt: str, *, system: str | None = None, **params: Any) -> str:
        __tracebackhide__ = True
        return (await self.achat(prompt, system=system, **params)).text

    async def astream(
        self, messages: str | Sequence[Message], *, system: str | None = None, **params: Any
    ) -> AsyncIterator[str]:
        __tracebackhide__ = True
        path, body = request_body(self.model, _messages(messages, system), params, True)
        parser = StreamParser(self.model)
        self.last = None  # until this stream ends
        with _named_errors(self.model):
            async with (
                transport.async_http_client(self.model, route=self.route) as client,
                client.stream("POST", path, json=body) as response,
            ):
                if response.status_code >= 400:
                    parse_body(self.model, response.status_code, await response.aread())
                async for line in response.aiter_lines():
                    if text := parser.feed(line):
                        yield text
        self.last = parser.result()
