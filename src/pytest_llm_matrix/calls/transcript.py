"""Transcripts: what each request of a model test sent and what came back, for the reports.

The exchange (:mod:`.exchange`) is the one path of every client, so it is where a request's
input messages and its answer are taken down: for the ``llm`` client, the SDKs, a bound
client, a judge, streamed or not, live or replayed. Each exchange becomes one plain dict::

    {"model": alias, "role": "model"|"judge"|"auxiliary", "api": "chat"|"responses"|
     "messages"|"other", "input": [{"role", "text"}...], "answer": text, "status": 200,
     "stream": bool, "replayed": bool, "input_tokens": n, "output_tokens": n,
     "latency_s": s}

Tool calls and structured output are in the answer as JSON text. Every text is cut at the
session's ``--llm-transcript-chars`` (the cut said at its end), a request keeps its last
:data:`MAX_MESSAGES` messages, a test its first :data:`MAX_EXCHANGES` requests (the rest
counted), and the controller bounds the whole report (see the summary). Texts are redacted
with the model's secrets where they are taken, and again with every key where a report is
written. It runs in every worker, for every request: plain code, no imports of note.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any, Final

from pytest_llm_matrix.config.options import DEFAULT_TRANSCRIPT_CHARS

#: The requests a test keeps in its transcript; the rest are counted (``transcript_more``).
MAX_EXCHANGES: Final = 50
#: The messages a request keeps (its last ones: a conversation's latest turns).
MAX_MESSAGES: Final = 20
#: Of a streamed answer, at most this many bytes are read for its text: ample for any cut
#: text, a cap against a stream that never ends.
STREAM_BYTES: Final = 4 * 1024 * 1024

_chars = DEFAULT_TRANSCRIPT_CHARS


def configure(chars: int) -> None:
    """This process's cut (0: no transcripts)."""
    global _chars
    _chars = chars


def chars() -> int:
    return _chars


def cut(text: str, limit: int | None = None) -> str:
    """``text``, at most ``limit`` characters of it, saying how much was left out."""
    limit = _chars if limit is None else limit
    if len(text) <= limit:
        return text
    return f"{text[:limit]}\n[... {len(text) - limit:,} more characters not kept]"


def text_of(data: bytes, limit: int | None = None) -> str:
    """Bytes that are no JSON (an HTML page, plain text), as text cut like the others: only
    what the cut keeps is decoded (a character is at most four bytes)."""
    limit = _chars if limit is None else limit
    if len(data) <= limit:
        return data.decode("utf-8", "replace")
    head = data[: limit * 4].decode("utf-8", "replace")[:limit]
    more = len(data) - len(head.encode("utf-8", "replace"))
    return f"{head}\n[... {max(more, 1):,} more bytes not kept]" if more > 0 else head


def api_of(path: str) -> str:
    """The wire format of a request, from its URL path."""
    if path.endswith("/chat/completions"):
        return "chat"
    if path.endswith("/responses"):
        return "responses"
    if path.endswith("/messages"):
        return "messages"
    return "other"


# --- what was sent ---------------------------------------------------------------------


def input_of(api: str, body: Mapping[str, Any] | None) -> list[dict[str, str]]:
    """A request's messages as ``[{"role", "text"}]``: its last :data:`MAX_MESSAGES`, each
    text cut."""
    if body is None:
        return []
    try:
        messages = list(_messages(api, body))
    except RecursionError:  # tool results in tool results, past Python's stack
        return [{"role": "note", "text": "[messages nested too deep to show]"}]
    except Exception as error:  # a shape no API takes: said, never raised
        return [{"role": "note", "text": f"[messages not readable: {type(error).__name__}]"}]
    dropped = len(messages) - MAX_MESSAGES
    if dropped > 0:
        messages = [("note", f"[{dropped:,} earlier messages not kept]"), *messages[dropped:]]
    return [{"role": role, "text": cut(text)} for role, text in messages]


def _messages(api: str, body: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    if api == "responses":
        if isinstance(body.get("instructions"), str):
            yield "system", body["instructions"]
        given = body.get("input")
        if isinstance(given, str):
            yield "user", given
        elif isinstance(given, list):
            for item in given:
                yield from _responses_item(item)
        return
    if api == "messages" and "system" in body:
        yield "system", _blocks_text(body["system"])
    messages = body.get("messages")
    if isinstance(messages, list):
        for message in messages:
            if isinstance(message, Mapping):
                yield _role(message), _message_text(message)
        return
    for field in ("prompt", "input"):  # completions, embeddings, moderations
        if field in body:
            value = body[field]
            yield field, value if isinstance(value, str) else _json(value)
            return


def _role(message: Mapping[str, Any]) -> str:
    role = message.get("role")
    return role if isinstance(role, str) else "?"


def _message_text(message: Mapping[str, Any]) -> str:
    """A chat or Anthropic message: its text, its tool calls as JSON."""
    parts = [_blocks_text(message.get("content"))]
    calls = message.get("tool_calls")
    if isinstance(calls, list) and calls:
        parts.append(_json([_chat_call(call) for call in calls]))
    return "\n".join(part for part in parts if part)


def _responses_item(item: object) -> Iterator[tuple[str, str]]:
    if isinstance(item, str):
        yield "user", item
        return
    if not isinstance(item, Mapping):
        return
    kind = item.get("type")
    if kind == "function_call":
        call = {"name": item.get("name"), "arguments": _arguments(item.get("arguments"))}
        yield "assistant", _json([call])
    elif kind == "function_call_output":
        output = item.get("output")
        yield "tool", output if isinstance(output, str) else _json(output)
    elif "role" in item:
        yield _role(item), _blocks_text(item.get("content"))


def _blocks_text(content: object) -> str:
    """Text of a message's content: a string, or parts/blocks of any of the three formats
    (an image or a file is named, not shown)."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return "" if content is None else _json(content)
    texts = []
    for block in content:
        if isinstance(block, str):
            texts.append(block)
            continue
        if not isinstance(block, Mapping):
            continue
        kind = block.get("type")
        if isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif kind == "tool_use":
            texts.append(_json({"name": block.get("name"), "input": block.get("input")}))
        elif kind == "tool_result":
            texts.append(_blocks_text(block.get("content")))
        elif isinstance(kind, str) and kind not in ("thinking", "redacted_thinking"):
            texts.append(f"[{kind}]")
    return "\n".join(texts)


def _chat_call(call: object) -> dict[str, Any]:
    function = call.get("function") if isinstance(call, Mapping) else None
    if not isinstance(function, Mapping):
        return {"call": call}
    return {"name": function.get("name"), "arguments": _arguments(function.get("arguments"))}


def _arguments(value: object) -> object:
    """A tool call's arguments: their JSON text as the object it holds, when it is JSON."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except (ValueError, RecursionError):
            return value
    return value


def _json(value: object) -> str:
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        return "[not JSON text]"


# --- what came back --------------------------------------------------------------------


def answer_of(api: str, data: object) -> str:
    """The text of a whole answer (its tool calls and structured output as JSON), or an
    error's message."""
    try:
        return _answer(api, data)
    except RecursionError:
        return "[an answer nested too deep to show]"
    except Exception as error:  # a shape no API sends: said, never raised
        return f"[the answer could not be read for its text: {type(error).__name__}]"


def _answer(api: str, data: object) -> str:
    if not isinstance(data, Mapping):
        return _json(data)
    error = data.get("error")
    if error:
        message = error.get("message") if isinstance(error, Mapping) else error
        return f"error: {message if isinstance(message, str) else _json(message)}"
    if api == "chat" or "choices" in data:
        return _chat_answer(data)
    if api == "messages" or data.get("type") == "message":
        return _blocks_answer(data.get("content"))
    if api == "responses" or data.get("object") == "response":
        return _responses_answer(data.get("output"))
    if isinstance(data.get("data"), list):  # embeddings
        return f"[{len(data['data'])} result{'s' * (len(data['data']) != 1)}]"
    return _json(data)


def _chat_answer(data: Mapping[str, Any]) -> str:
    choices = data.get("choices")
    if not isinstance(choices, list):
        return _json(data)
    texts = []
    for index, choice in enumerate(choices):
        if not isinstance(choice, Mapping):
            continue
        message = choice.get("message") or choice.get("delta") or {}
        text = _message_text(message) if isinstance(message, Mapping) else ""
        if not text and isinstance(choice.get("text"), str):  # legacy completions
            text = choice["text"]
        if isinstance(message, Mapping) and isinstance(message.get("refusal"), str):
            text = f"refusal: {message['refusal']}"
        texts.append(f"[choice {index}] {text}" if len(choices) > 1 else text)
    return "\n".join(texts)


def _blocks_answer(content: object) -> str:
    return _blocks_text(content) if isinstance(content, list) else ""


def _responses_answer(output: object) -> str:
    if not isinstance(output, list):
        return ""
    texts = []
    for item in output:
        if not isinstance(item, Mapping):
            continue
        kind = item.get("type")
        if kind == "message":
            texts.append(_blocks_text(item.get("content")))
        elif kind == "function_call":
            call = {"name": item.get("name"), "arguments": _arguments(item.get("arguments"))}
            texts.append(_json([call]))
    return "\n".join(text for text in texts if text)


def stream_answer(api: str, raw: bytes) -> str:
    """The text a streamed answer (its SSE bytes, as far as they were read) carried, and
    the errors it said; what cannot be read is said, never raised (a transcript does not
    change a test's outcome)."""
    try:
        return _stream_answer(api, raw)
    except RecursionError:
        return "[an answer nested too deep to show]"
    except Exception as error:  # an event of a shape no API sends: the test goes on
        return f"[the stream could not be read for its text: {type(error).__name__}]"


def _stream_answer(api: str, raw: bytes) -> str:
    text = raw.decode("utf-8", "replace")
    chat: dict[int, list[str]] = {}
    calls: dict[tuple[int, int], dict[str, Any]] = {}
    blocks: dict[int, dict[str, Any]] = {}
    final: str | None = None
    deltas: list[str] = []
    errors: list[str] = []
    for event in _events(text):
        kind = event.get("type")
        if kind in ("response.completed", "response.incomplete", "response.failed"):
            response = event.get("response")
            response = response if isinstance(response, Mapping) else {}
            final = _responses_answer(response.get("output"))
            if kind == "response.failed":
                errors.append(_error_text(response.get("error") or "the response failed"))
        elif kind == "response.output_text.delta" and isinstance(event.get("delta"), str):
            deltas.append(event["delta"])
        elif kind == "content_block_start":
            index, block = event.get("index"), event.get("content_block")
            if isinstance(index, int) and isinstance(block, Mapping):
                blocks[index] = {"type": block.get("type"), "name": block.get("name"), "text": []}
                if isinstance(block.get("text"), str):
                    blocks[index]["text"].append(block["text"])
        elif kind == "content_block_delta":
            index, delta = event.get("index"), event.get("delta")
            if isinstance(index, int) and isinstance(delta, Mapping):
                piece = delta.get("text", delta.get("partial_json"))
                if isinstance(piece, str):
                    blocks.setdefault(index, {"type": "text", "name": None, "text": []})
                    blocks[index]["text"].append(piece)
        elif kind == "error" or event.get("error"):
            errors.append(_error_text(event.get("error") or event))
        elif isinstance(event.get("choices"), list):
            _chat_delta(event["choices"], chat, calls)
    if final is not None:
        answer = final
    elif blocks:
        answer = "\n".join(_block_text(block) for _, block in sorted(blocks.items()))
    elif chat or calls:
        texts = ["".join(chat.get(index, [])) for index in sorted(chat)]
        if calls:
            shown = [
                {"name": call["name"], "arguments": _arguments("".join(call["arguments"]))}
                for _, call in sorted(calls.items())
            ]
            texts.append(_json(shown))
        answer = "\n".join(text for text in texts if text)
    else:
        answer = "".join(deltas)
    said = [f"error: {error}" for error in errors]
    return "\n".join([answer, *said] if answer else said)


def _error_text(error: object) -> str:
    """An error's message: ``{"message": ...}``, its text, or its JSON."""
    if isinstance(error, Mapping):
        message = error.get("message")
        if isinstance(message, str):
            return message
        inner = error.get("error")
        if isinstance(inner, Mapping) and isinstance(inner.get("message"), str):
            return str(inner["message"])
    return error if isinstance(error, str) else _json(error)


def _block_text(block: Mapping[str, Any]) -> str:
    joined = "".join(block["text"])
    if block["type"] == "tool_use":
        return _json({"name": block["name"], "input": _arguments(joined)})
    return "" if block["type"] in ("thinking", "redacted_thinking") else joined


def _chat_delta(
    choices: list[Any], chat: dict[int, list[str]], calls: dict[tuple[int, int], dict[str, Any]]
) -> None:
    for position, choice in enumerate(choices):
        if not isinstance(choice, Mapping):
            continue
        index = choice.get("index", position)
        index = index if isinstance(index, int) else position
        delta = choice.get("delta")
        if not isinstance(delta, Mapping):
            continue
        if isinstance(delta.get("content"), str):
            chat.setdefault(index, []).append(delta["content"])
        calls_now = delta.get("tool_calls")
        for call in calls_now if isinstance(calls_now, list) else ():
            if not isinstance(call, Mapping):
                continue
            slot = call.get("index", 0)
            found = calls.setdefault(
                (index, slot if isinstance(slot, int) else 0), {"name": None, "arguments": []}
            )
            function = call.get("function")
            if isinstance(function, Mapping):
                if isinstance(function.get("name"), str):
                    found["name"] = function["name"]
                if isinstance(function.get("arguments"), str):
                    found["arguments"].append(function["arguments"])


def _events(text: str) -> Iterator[Mapping[str, Any]]:
    """The JSON payloads of a stream's events (their ``event:`` name as ``type`` where the
    payload has none)."""
    name = None
    data: list[str] = []
    for line in [*text.splitlines(), ""]:
        if not line:
            if data:
                joined = "\n".join(data)
                try:
                    payload = json.loads(joined)
                except (ValueError, RecursionError):
                    payload = None
                if isinstance(payload, dict):
                    if name and "type" not in payload:
                        payload["type"] = name
                    yield payload
            name, data = None, []
        elif line.startswith("data:"):
            value = line[5:].removeprefix(" ")
            if value != "[DONE]":
                data.append(value)
        elif line.startswith("event:"):
            name = line[6:].strip()
