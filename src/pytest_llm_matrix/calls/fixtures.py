"""Fixtures bound to the test's model. ``llm_model`` is parametrized per selected model."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Final

import pytest

from pytest_llm_matrix.calls import context
from pytest_llm_matrix.config.options import OFFLINE_MODES
from pytest_llm_matrix.simulator.service import resolved

if TYPE_CHECKING:
    # lazy: the request path loads with the first client a test builds
    from pytest_llm_matrix.calls.client import LLM
    from pytest_llm_matrix.calls.judge import Judge
    from pytest_llm_matrix.config.models import Model


#: The fixtures with which a test asks for a model itself (the SDK fixtures are adoption's).
MODEL_FIXTURES: Final = frozenset(
    {
        "llm",
        "llm_model",
        "llm_http_client",
        "llm_async_http_client",
        "llm_httpx_client",
        "llm_async_httpx_client",
        "openai_client",
        "async_openai_client",
        "anthropic_client",
        "async_anthropic_client",
        "llm_snapshot",
    }
)


@pytest.fixture
def llm_model(request: pytest.FixtureRequest) -> Model | None:
    """The spec of the model this test instance runs against (``test_x[alias]``)."""
    model: Model | None = getattr(request, "param", None)
    node = request.node
    unparametrized = not isinstance(node, pytest.Function) or (
        type(node).__name__ == "TestCaseFunction"
    )
    asked = set(request.fixturenames)
    only_sdks = "llm_sdks" in asked and not (MODEL_FIXTURES - {"llm_model"}) & asked
    if model is None and unparametrized and only_sdks:
        # a unittest test or a doctest, which pytest does not parametrize, reached by ini
        # usefixtures = llm_sdks only: it runs once, as it would without the plugin
        return None
    if model is None:
        # Only reachable when the plugin's parametrization was bypassed, e.g. by a
        # fixture of broader scope that depends on llm_model.
        pytest.fail(
            f"{request.node.nodeid}: llm_model has no model; it is parametrized per model "
            "for function-scoped use only",
            pytrace=False,
        )
    context.refuse(model.name, claim=not only_sdks)
    return resolved(request.config, model)


@pytest.fixture
def llm(llm_model: Model) -> Iterator[LLM]:
    """A small client for the test's model: ``complete``, ``chat``, ``stream`` and async twins."""
    # lazy: the request path loads with the first client a test builds
    from pytest_llm_matrix.calls.client import LLM

    client = LLM(llm_model)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def llm_judge(request: pytest.FixtureRequest) -> Iterator[Judge]:
    """The run's judge (``judge`` in the config, or ``--llm-judge``): ``grade(answer,
    rubric, *, context=None)`` asks it whether an answer meets a rubric."""
    # lazy: the judge loads only in a test that asks for it
    from pytest_llm_matrix.calls.judge import Judge
    from pytest_llm_matrix.config.options import SETTINGS_KEY

    settings = request.config.stash[SETTINGS_KEY]
    models = settings.registry.models
    if settings.judge is None:
        pytest.fail(
            'llm_judge: no judge model is configured; set judge = "<alias>" in the '
            "llm-matrix config (a configured model), or pass --llm-judge=ALIAS; configured "
            f"models: {', '.join(models) or 'none'}",
            pytrace=False,
        )
    model = models[settings.judge]
    missing = model.missing_reason()
    if missing is not None and settings.record not in OFFLINE_MODES:
        why = f"judge {model.name}: {missing}"
        if settings.strict:
            pytest.fail(f"{why} (--llm-strict)", pytrace=False)
        pytest.skip(why)
    context.refuse(model.name)
    judge = Judge(resolved(request.config, model))
    try:
        yield judge
    finally:
        judge.close()


def close_async(client: Any) -> None:
    """Close an async client after its test's event loop is gone (best effort).

    Tests that want a clean close use ``async with`` on the client themselves.
    """
    import asyncio
    import contextlib

    with contextlib.suppress(Exception):
        asyncio.run(client.aclose())


@pytest.fixture
def llm_http_client(llm_model: Model) -> Iterator[Any]:
    """An ``httpx2.Client`` for the test's model: base URL, auth, timeout, LLMTransport."""
    # lazy: the request path loads with the first client a test builds
    from pytest_llm_matrix.calls.transport import http_client

    client = http_client(llm_model, shared=True)
    with client:
        yield client


@pytest.fixture
def llm_async_http_client(llm_model: Model) -> Iterator[Any]:
    """The ``httpx2.AsyncClient`` twin of ``llm_http_client``."""
    # lazy: the request path loads with the first client a test builds
    from pytest_llm_matrix.calls.transport import async_http_client

    client = async_http_client(llm_model)
    yield client
    close_async(client)


@pytest.fixture
def llm_httpx_client(llm_model: Model) -> Iterator[Any]:
    """Like ``llm_http_client``, for plain ``httpx`` users."""
    # lazy: the request path loads with the first client a test builds
    from pytest_llm_matrix.calls.transport import http_client

    client = http_client(llm_model, http="httpx", shared=True)
    with client:
        yield client


@pytest.fixture
def llm_async_httpx_client(llm_model: Model) -> Iterator[Any]:
    """Like ``llm_async_http_client``, for plain ``httpx`` users."""
    # lazy: the request path loads with the first client a test builds
    from pytest_llm_matrix.calls.transport import async_http_client

    client = async_http_client(llm_model, http="httpx")
    yield client
    close_async(client)
