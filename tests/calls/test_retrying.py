"""Retry decisions and wait arithmetic (pure functions)."""

from __future__ import annotations

import email.utils
import json

import pytest

from pytest_llm_matrix.calls.retrying import (
    Verdict,
    backoff,
    classify,
    error_of,
    request_id,
    seconds,
    server_wait,
)

NOW = 1_800_000_000.0


def body(code: str = "", message: str = "") -> bytes:
    return json.dumps({"error": {"code": code, "type": code, "message": message}}).encode()


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504, 529])
def test_transient_statuses_are_retried(status):
    assert classify(status, body("rate_limit_exceeded")) is Verdict.RETRY


@pytest.mark.parametrize("status", [400, 404, 422])
def test_bad_requests_are_never_retried(status):
    assert classify(status, body("invalid_request_error", "bad field")) is Verdict.FAIL


@pytest.mark.parametrize(
    ("status", "payload"),
    [
        (401, body("invalid_api_key")),
        (403, body("permission_denied")),
        (404, body("model_not_found", "The model `x` does not exist")),
        (
            404,
            json.dumps(
                {"type": "error", "error": {"type": "not_found_error", "message": "model: x"}}
            ).encode(),
        ),
        (429, body("insufficient_quota", "You exceeded your current quota")),
    ],
    ids=["401", "403", "404-openai", "404-anthropic", "quota"],
)
def test_unavailable(status, payload):
    assert classify(status, payload) is Verdict.UNAVAILABLE


@pytest.mark.parametrize(
    ("payload", "verdict"),
    [
        (body("", "Invalid URL (POST /v1/embeddingz)"), Verdict.FAIL),
        (body("", "Invalid URL (GET /v1/models/x)"), Verdict.FAIL),
        (json.dumps({"detail": "Not Found"}).encode(), Verdict.FAIL),
        (b"<html>404</html>", Verdict.FAIL),
        (json.dumps({"error": 'model "llama3" not found, try pulling it first'}).encode(),
         Verdict.UNAVAILABLE),
        (json.dumps({"object": "error", "message": "The model `m` does not exist.",
                     "type": "NotFoundError", "code": 404}).encode(), Verdict.UNAVAILABLE),
    ],
    ids=["openai-url", "url-with-models", "fastapi", "html", "ollama", "vllm"],
)  # fmt: skip
def test_only_a_404_that_names_a_missing_model_disables_it(payload, verdict):
    assert classify(404, payload) is verdict


def test_ok_and_non_json_errors():
    assert classify(200, b"not json") is Verdict.OK
    assert classify(503, b"<html>busy</html>") is Verdict.RETRY
    assert classify(404, b"<html>no route</html>") is Verdict.FAIL


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after-ms": "1500", "retry-after": "9"}, 1.5),
        ({"retry-after": "3"}, 3.0),
        ({"retry-after": "0.25"}, 0.25),
        ({"retry-after": email.utils.formatdate(NOW + 30, usegmt=True)}, 30.0),
        ({"retry-after": email.utils.formatdate(NOW - 30, usegmt=True)}, 0.0),
        ({"x-ratelimit-reset-requests": "1s", "x-ratelimit-reset-tokens": "6m0s"}, 360.0),
        ({"x-ratelimit-reset-tokens": "20ms"}, 0.02),
        ({"anthropic-ratelimit-requests-reset": "2027-01-15T08:00:12Z"}, None),
        ({"retry-after": "soon"}, None),
        ({"retry-after": "inf"}, None),
        ({"retry-after": "nan"}, None),
        ({"retry-after": "-5"}, 0.0),
        ({"retry-after": "1e308"}, 1e308),
        ({"retry-after-ms": "inf", "retry-after": "2"}, 2.0),
        ({"retry-after": "Fri, 31 Dec 99999 23:59:59 GMT"}, None),
        ({"x-ratelimit-reset-requests": "9" * 400 + "h"}, None),
        ({}, None),
        # a gateway's copies of the provider's headers (LiteLLM: "llm_provider-" + name)
        ({"llm_provider-retry-after": "2"}, 2.0),
        ({"llm_provider-retry-after-ms": "1500", "llm_provider-retry-after": "9"}, 1.5),
        ({"llm_provider-x-ratelimit-reset-requests": "6m0s"}, 360.0),
        ({"retry-after": "1", "llm_provider-retry-after": "9"}, 1.0),  # the gateway's own first
        ({"llm_provider-retry-after": "soon", "llm_provider-retry-after-ms": "x"}, None),
        # a retry-after, under any prefix, before a reset header
        ({"x-ratelimit-reset-requests": "1s", "llm_provider-retry-after": "30"}, 30.0),
    ],
)
def test_server_wait_order(headers, expected):
    if "anthropic-ratelimit-requests-reset" in headers:
        from datetime import datetime

        reset = datetime.fromisoformat("2027-01-15T08:00:12+00:00").timestamp()
        expected = reset - NOW
    assert server_wait(headers, now=NOW) == pytest.approx(expected)


def test_backoff_grows_with_jitter_and_is_capped():
    first = [backoff(1, 0.5, 8.0) for _ in range(200)]
    third = [backoff(3, 0.5, 8.0) for _ in range(200)]
    assert all(0.5 <= w <= 8.0 for w in first + third)
    assert min(third) >= 2.0  # 0.5 * 2**2 before jitter
    assert len(set(first)) > 100  # jittered
    assert max(backoff(20, 0.5, 8.0) for _ in range(50)) <= 8.0


@pytest.mark.parametrize(
    ("value", "text"),
    [(30, "30s"), (12.4, "12s"), (2.5, "2.5s"), (1.0, "1s"), (0.25, "0.25s"), (1e308, "1e+308s")],
)
def test_seconds(value, text):
    assert seconds(value) == text


# -- behind gateways: the exact bodies LiteLLM's proxy (1.104-1.108, read from its source and
# seen from a running 1.106) and OpenRouter (its docs and reported answers) send

_LITELLM_UNKNOWN_ALIAS = (
    "/chat/completions: Invalid model name passed in model=nope-alias. Call `/v1/models` to "
    "view available models for your key."
)
LITELLM_UNKNOWN_ALIAS = json.dumps(
    {
        "error": {
            "message": _LITELLM_UNKNOWN_ALIAS,
            "type": "invalid_request_error",
            "param": None,
            "code": "400",
            "provider_specific_fields": {"error": _LITELLM_UNKNOWN_ALIAS},
        }
    }
).encode()
LITELLM_UNKNOWN_ALIAS_MESSAGES = json.dumps(
    {
        "type": "error",
        "error": {
            "type": "invalid_request_error",
            "message": _LITELLM_UNKNOWN_ALIAS.replace("/chat/completions", "anthropic_messages"),
        },
    }
).encode()
LITELLM_NO_DB = json.dumps(
    {"error": {"message": "No connected db.", "type": "no_db_connection", "param": None,
               "code": "400"}}
).encode()  # fmt: skip
LITELLM_KEY_NOT_FOUND = json.dumps(
    {"error": {"message": "Authentication Error, Invalid API key provided.",
               "type": "token_not_found_in_db", "param": "key", "code": "401"}}
).encode()  # fmt: skip
LITELLM_429 = json.dumps(
    {"error": {"message": "litellm.RateLimitError: RateLimitError: OpenAIException - Rate "
               "limit reached for requests\n\nLiteLLM: model group 'limited' failed with the "
               "error above. No fallback was attempted.", "type": "throttling_error",
               "param": None, "code": "429"}}
).encode()  # fmt: skip
OPENROUTER_UNKNOWN_MODEL = json.dumps(
    {"error": {"message": "foo is not a valid model ID", "code": 400}, "user_id": "user_x"}
).encode()
OPENROUTER_BAD_KEY = json.dumps({"error": {"message": "User not found.", "code": 401}}).encode()
OPENROUTER_NO_CREDITS = json.dumps(
    {"error": {"code": 402,
               "message": "Insufficient credits. Add more using https://openrouter.ai/credits"}}
).encode()  # fmt: skip
OPENROUTER_IN_FLIGHT = json.dumps(
    {"error": {"code": 402, "message": "This request would exceed your available credits "
               "given your current in-flight requests. Retry after in-flight requests settle, "
               "or add credits.", "metadata": {"reason": "in_flight_budget_exhausted",
               "limit_source": "openrouter_in_flight_budget"}}}
).encode()  # fmt: skip
OPENROUTER_429 = json.dumps(
    {"error": {"code": 429, "message": "Rate limit exceeded",
               "metadata": {"error_type": "rate_limit_exceeded"}}}
).encode()  # fmt: skip


@pytest.mark.parametrize(
    ("status", "payload", "verdict"),
    [
        (400, LITELLM_UNKNOWN_ALIAS, Verdict.UNAVAILABLE),
        (400, LITELLM_UNKNOWN_ALIAS_MESSAGES, Verdict.UNAVAILABLE),
        (400, LITELLM_NO_DB, Verdict.UNAVAILABLE),
        (401, LITELLM_KEY_NOT_FOUND, Verdict.UNAVAILABLE),
        (429, LITELLM_429, Verdict.RETRY),
        (400, OPENROUTER_UNKNOWN_MODEL, Verdict.UNAVAILABLE),
        (401, OPENROUTER_BAD_KEY, Verdict.UNAVAILABLE),
        (402, OPENROUTER_NO_CREDITS, Verdict.UNAVAILABLE),
        (402, OPENROUTER_IN_FLIGHT, Verdict.RETRY),
        (429, OPENROUTER_429, Verdict.RETRY),
        (400, body("invalid_request_error", "'messages' is a required property"), Verdict.FAIL),
        (400, body("invalid_request_error", "the model may not set temperature=3"), Verdict.FAIL),
    ],
    ids=[
        "litellm-alias", "litellm-alias-messages", "litellm-no-db", "litellm-401",
        "litellm-429", "openrouter-model", "openrouter-401", "openrouter-402",
        "openrouter-402-in-flight", "openrouter-429", "plain-400", "400-naming-a-model",
    ],
)  # fmt: skip
def test_gateways_answers_are_understood(status, payload, verdict):
    assert classify(status, payload) is verdict


def test_azures_missing_deployment_is_a_missing_model():
    body = {
        "error": {
            "code": "DeploymentNotFound",
            "message": "The API deployment for this resource does not exist. If you created "
            "the deployment within the last 5 minutes, please wait a moment and try again.",
        }
    }
    assert classify(404, json.dumps(body).encode()) is Verdict.UNAVAILABLE
    missing_version = {"error": {"code": "404", "message": "Resource not found"}}
    assert classify(404, json.dumps(missing_version).encode()) is Verdict.FAIL


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (LITELLM_UNKNOWN_ALIAS, ("invalid_request_error", _LITELLM_UNKNOWN_ALIAS)),
        (LITELLM_NO_DB, ("no_db_connection", "No connected db.")),
        (OPENROUTER_UNKNOWN_MODEL, ("", "foo is not a valid model ID")),
        (body("rate_limit_exceeded", "slow down"), ("rate_limit_exceeded", "slow down")),
    ],
    ids=["litellm", "litellm-no-db", "openrouter", "openai"],
)
def test_a_code_that_repeats_the_status_is_not_shown_as_the_errors_kind(payload, expected):
    """LiteLLM sends ``"code": "400"`` and OpenRouter ``"code": 400``: the status, which the
    message says already ("HTTP 400: 400: ..." was the message): the type is the kind."""
    assert error_of(payload) == expected


@pytest.mark.parametrize(
    ("headers", "shown"),
    [
        ({"x-litellm-call-id": "c-1", "x-request-id": "r-1"}, " (request id c-1)"),
        ({"x-request-id": "req_abc"}, " (request id req_abc)"),
        ({"request-id": "req_011"}, " (request id req_011)"),
        ({"x-request-id": "a\x1b[31m"}, ""),  # not printable: not shown
        ({"x-request-id": "x" * 129}, ""),
        ({}, ""),
    ],
)
def test_the_request_id_a_server_gives_is_shown(headers, shown):
    assert request_id(headers) == shown


def test_a_gateways_no_such_model_counts_only_for_the_model_asked_for():
    """A request may name other models (a fallback list): only a 400 naming the model the
    request asked for makes it unavailable; wording that only resembles it is a bad request."""
    assert classify(400, LITELLM_UNKNOWN_ALIAS, model="nope-alias") is Verdict.UNAVAILABLE
    assert classify(400, LITELLM_UNKNOWN_ALIAS, model="gpt-4o") is Verdict.FAIL
    assert classify(400, OPENROUTER_UNKNOWN_MODEL, model="foo") is Verdict.UNAVAILABLE
    assert classify(400, OPENROUTER_UNKNOWN_MODEL, model="openai/gpt-4o") is Verdict.FAIL
    tool_choice = json.dumps(
        {"error": {"message": "Invalid value for 'tool_choice': 'x' is not a valid model ID",
                   "code": 400}}
    ).encode()  # fmt: skip
    assert classify(400, tool_choice) is Verdict.FAIL
