"""Which requests go to the model under test, and which SDK releases are supported: pure."""

from __future__ import annotations

import pytest

from pytest_llm_matrix.adoption import routes, sdks


@pytest.mark.parametrize(
    ("api", "path", "kind"),
    [
        ("openai", "/chat/completions", "generation"),
        ("openai", "chat/completions/", "generation"),
        ("openai", "/completions", "generation"),
        ("openai", "/responses", "generation"),
        ("openai", "/responses?include[]=x", "generation"),
        ("openai", "/responses/resp_123", "follow-up"),
        ("openai", "/responses/resp_123/input_items", "follow-up"),
        ("openai", "/chat/completions/chatcmpl-1/messages", "follow-up"),
        ("openai", "/responses/input_tokens", "auxiliary"),
        ("openai", "/embeddings", "auxiliary"),
        ("openai", "/moderations", "auxiliary"),
        ("openai", "/models", "auxiliary"),
        ("openai", "/files", "auxiliary"),
        ("openai", "/audio/transcriptions", "auxiliary"),
        ("openai", "/images/generations", "auxiliary"),
        ("openai", "/deployments/my-gpt/chat/completions", "generation"),
        ("openai", "/deployments/my-emb/embeddings", "auxiliary"),
        ("anthropic", "/v1/messages", "generation"),
        ("anthropic", "/v1/messages?beta=true", "generation"),
        ("anthropic", "/v1/complete", "generation"),
        ("anthropic", "/v1/messages/count_tokens", "auxiliary"),
        ("anthropic", "/v1/messages/batches", "auxiliary"),
        ("anthropic", "/v1/messages/batches/b1/results", "auxiliary"),
        ("anthropic", "/v1/models", "auxiliary"),
        ("anthropic", "/chat/completions", "auxiliary"),
    ],
)
def test_kind_of(api, path, kind):
    assert routes.kind_of(api, path) == kind


def test_canonical_paths():
    assert routes.canonical("openai", "/deployments/d/chat/completions") == "/chat/completions"
    assert routes.canonical("anthropic", "/deployments/d/v1/messages") == (
        "/deployments/d/v1/messages"
    )
    assert routes.canonical("openai", "") == "/"


@pytest.mark.parametrize(
    ("sdk", "version", "problem", "library"),
    [
        (sdks.OPENAI, "1.55.3", False, "httpx"),
        (sdks.OPENAI, "1.109.1", False, "httpx"),
        (sdks.OPENAI, "2.54.0", False, "httpx"),
        (sdks.OPENAI, "3.0.0", False, "httpx2"),
        (sdks.OPENAI, "3.60.0", False, "httpx2"),
        (sdks.OPENAI, "1.55.2", True, "httpx"),
        (sdks.OPENAI, "0.28.1", True, "httpx"),
        (sdks.OPENAI, "4.0.0rc1", True, "httpx2"),
        (sdks.ANTHROPIC, "0.40.0", False, "httpx"),
        (sdks.ANTHROPIC, "0.125.0", False, "httpx"),
        (sdks.ANTHROPIC, "1.0.0", False, "httpx2"),
        (sdks.ANTHROPIC, "2.17.0", False, "httpx2"),
        (sdks.ANTHROPIC, "0.39.0", True, "httpx"),
        (sdks.ANTHROPIC, "3.0.0", True, "httpx2"),
    ],
)
def test_supported_releases_and_their_http_library(sdk, version, problem, library):
    found = sdks.problem(sdk, version)
    assert (found is not None) is problem
    if found is not None:
        assert found == (
            f"{sdk.package} {version} is not supported by pytest-llm-matrix (supported: "
            f"{sdk.supported}): pip install '{sdk.supported}'"
        )
    assert sdks.http_library(sdk, version) == library


def test_parse():
    assert sdks.parse("1.109.1") == (1, 109, 1)
    assert sdks.parse("2.0.0rc1") == (2, 0, 0)
    assert sdks.parse("3.1.dev4") == (3, 1)
    assert sdks.parse("x") == ()
