"""What to do with a model's answer, and how long to wait before trying again.

Pure functions: the transport feeds them status codes, headers and bodies. The wait order
is the server's word first (``retry-after-ms``, ``retry-after``, then the providers'
rate-limit reset headers; then a gateway's copies of its provider's, ``llm_provider-...``),
and exponential backoff with jitter otherwise.
"""

from __future__ import annotations

import email.utils
import json
import math
import random
import re
import time
from collections.abc import Mapping
from datetime import datetime
from enum import Enum
from typing import Final

RETRY_STATUSES: Final = frozenset({408, 429, 500, 502, 503, 504, 529})
UNAVAILABLE_STATUSES: Final = frozenset({401, 403})
RESET_HEADERS: Final = (
    "x-ratelimit-reset-requests",
    "x-ratelimit-reset-tokens",
    "anthropic-ratelimit-requests-reset",
    "anthropic-ratelimit-tokens-reset",
    "anthropic-ratelimit-input-tokens-reset",
    "anthropic-ratelimit-output-tokens-reset",
)
#: Where the retry headers come: the server's own, then a gateway's copies of its upstream
#: provider's (LiteLLM's proxy sends only ``llm_provider-retry-after`` and the like on the 429s
#: it passes on).
HEADER_PREFIXES: Final = ("", "llm_provider-")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT_SECONDS: Final = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


class Verdict(Enum):
    OK = "ok"  # hand the response to the caller
    RETRY = "retry"  # transient: wait and try again
    UNAVAILABLE = "unavailable"  # the model cannot serve this session: stop using it
    FAIL = "fail"  # the request itself is wrong: hand it to the caller, no retry


def error_of(body: bytes) -> tuple[str, str]:
    """(code or type, message) from an OpenAI- or Anthropic-style error body."""
    try:
        data = json.loads(body)
    except ValueError:
        return "", body[:200].decode("utf-8", "replace")
    return error_parts(data)


def error_parts(data: object) -> tuple[str, str]:
    """(code or type, message) from a parsed error body; ("", the start of it) otherwise.

    A code that is a number repeats the HTTP status (LiteLLM's proxy sends ``"code":
    "400"``, OpenRouter ``"code": 400``): the type, if any, says more."""
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict):
        return "", str(data)[:200]
    kind = next((k for k in (error.get("code"), error.get("type")) if _names_a_kind(k)), "")
    return str(kind), str(error.get("message", ""))


def _names_missing(message: str, model: str | None) -> bool:
    """Whether a gateway's 400 says the model (``model``, when given) is not one it serves."""
    found = _GATEWAY_MODEL_MISSING.search(message)
    if found is None:
        return False
    named = found.group("litellm") or found.group("openrouter")
    return model is None or named == model


def _names_a_kind(value: object) -> bool:
    return isinstance(value, str) and bool(value) and not value.isdigit() and value != "None"


#: Where a server or a gateway names the request, for finding it in their logs: LiteLLM's
#: proxy, OpenAI-style servers, Anthropic.
REQUEST_ID_HEADERS: Final = ("x-litellm-call-id", "x-request-id", "request-id")


def request_id(headers: Mapping[str, str]) -> str:
    """`` (request id <id>)`` from the first of REQUEST_ID_HEADERS present, or ``""``; an id
    that is not short printable text is left out."""
    for name in REQUEST_ID_HEADERS:
        value = headers.get(name)
        if value and len(value) <= 128 and value.isprintable() and value.isascii():
            return f" (request id {value})"
    return ""


def error_text(code: str, message: str) -> str:
    """``invalid_api_key: Incorrect API key`` (or the message alone when there is no code)."""
    return f"{code}: {message}" if code else message


#: A 404's message that says the *model* is missing, as providers word it: vLLM and OpenAI
#: ("The model `x` does not exist"), Ollama ('model "x" not found'), Anthropic ("model: x").
#: An unknown URL ("Invalid URL (POST /v1/x)") names no model.
_MODEL_MISSING = re.compile(r"\bmodel\b.*\b(not found|does not exist|not exist)\b|^\s*model:", re.I)


#: A 400 from a gateway that says the model (an alias it routes) is not one it serves, as
#: LiteLLM's proxy ("Invalid model name passed in model=x") and OpenRouter ("x is not a
#: valid model ID") word it.
_GATEWAY_MODEL_MISSING = re.compile(
    r"Invalid model name passed in model=(?P<litellm>\S+?)\.?(?:\s|$)"
    r"|^\s*(?P<openrouter>\S+) is not a valid model ID\.?\s*$"
)
#: LiteLLM's proxy without a database: any key but its master key is refused so, with a 400.
KEY_REFUSED_KINDS: Final = frozenset({"no_db_connection"})


def classify(status: int, body: bytes, model: str | None = None) -> Verdict:
    """What to do with an answer. ``model``: the model id the request asked for; a
    gateway's "no such model" makes the model unavailable only when it names that id (a
    request may name others, in a fallback list)."""
    if status < 400:
        return Verdict.OK
    code, message = error_of(body) if status in (400, 402, 404, 429) else ("", "")
    if status == 429 and "insufficient_quota" in (code, message):
        return Verdict.UNAVAILABLE
    if status in RETRY_STATUSES:
        return Verdict.RETRY
    if status in UNAVAILABLE_STATUSES:
        return Verdict.UNAVAILABLE
    if status == 402:  # out of credits (OpenRouter), unless only until requests in flight end
        return Verdict.RETRY if b"in_flight_budget_exhausted" in body else Verdict.UNAVAILABLE
    if status == 400 and (code in KEY_REFUSED_KINDS or _names_missing(message, model)):
        return Verdict.UNAVAILABLE
    if status == 404 and (
        "model" in code.lower() or code == "DeploymentNotFound" or _MODEL_MISSING.search(message)
    ):
        return Verdict.UNAVAILABLE  # the model (Azure: the deployment) is missing; any other
        # 404 fails the test only
    return Verdict.FAIL


def _duration(text: str) -> float | None:
    """OpenAI's reset durations: ``"1s"``, ``"6m0s"``, ``"20ms"``, ``"1h2m3.5s"``."""
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text.replace(" ", ""):
        return None
    return sum(float(n) * _UNIT_SECONDS[u] for n, u in parts)


def _date(text: str, now: float) -> float | None:
    """An HTTP date or an RFC 3339 timestamp, as seconds from ``now``."""
    try:
        return email.utils.parsedate_to_datetime(text).timestamp() - now
    except (TypeError, ValueError, OverflowError):
        pass
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() - now
    except (ValueError, OverflowError):
        return None


def _number(text: str, unit: float = 1.0) -> float | None:
    """A plain number of ``unit`` seconds, or None for anything else (``inf`` and ``nan``
    too: a server that asks for an endless wait has said nothing usable)."""
    try:
        value = float(text) * unit
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def server_wait(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """How long the server asked us to wait, in seconds, or None if it did not say.

    Always a finite number >= 0: a date in the past means "now"; values that are not
    numbers, durations or dates are ignored, as if the header were absent.
    """
    now = time.time() if now is None else now
    for said in (_retry_after, _reset):  # a retry-after, under any prefix, before a reset
        for prefix in HEADER_PREFIXES:
            wait = said(headers, prefix, now)
            if wait is not None:
                return wait
    return None


def _retry_after(headers: Mapping[str, str], prefix: str, now: float) -> float | None:
    """The wait ``prefix`` + ``retry-after-ms`` or ``retry-after`` asks for, if any."""
    if (value := headers.get(prefix + "retry-after-ms")) is not None and (
        seconds := _number(value, 0.001)
    ) is not None:
        return max(0.0, seconds)
    if (value := headers.get(prefix + "retry-after")) is not None:
        seconds = _number(value)
        if seconds is None:
            seconds = _date(value, now)
        if seconds is not None:
            return max(0.0, seconds)
    return None


def _reset(headers: Mapping[str, str], prefix: str, now: float) -> float | None:
    """The longest wait the rate-limit reset headers named ``prefix`` + one ask for."""
    waits = []
    for name in RESET_HEADERS:
        if (value := headers.get(prefix + name)) is not None:
            seconds = _duration(value)
            if seconds is None:
                seconds = _date(value, now)
            if seconds is not None and math.isfinite(seconds):
                waits.append(max(0.0, seconds))
    return max(waits) if waits else None


def backoff(attempt: int, initial: float, maximum: float) -> float:
    """Exponential backoff with jitter for the wait after failed attempt ``attempt`` (1-based):
    ``initial * 2**(attempt - 1)`` plus up to ``initial`` of jitter, never over ``maximum``."""
    exponential = initial * 2.0 ** min(attempt - 1, 64)
    return min(maximum, exponential + random.uniform(0, initial))


def seconds(value: float) -> str:
    """``12.0`` -> ``"12s"``, ``0.25`` -> ``"0.25s"``, ``1e308`` -> ``"1e+308s"``: waits and
    budgets in messages."""
    if value >= 1e6:
        return f"{value:.3g}s"
    return f"{value:.0f}s" if value >= 10 or value == int(value) else f"{value:.2g}s"
