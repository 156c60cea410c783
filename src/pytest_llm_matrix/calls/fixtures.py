"""Fixtures bound to the test's model. ``llm_model`` is parametrized per selected model."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from pytest_llm_matrix.calls import context
from pytest_llm_matrix.config.options import SETTINGS_KEY
from pytest_llm_matrix.simulator.service import SIMULATOR_KEY

if TYPE_CHECKING:
    # lazy: the request path loads with the first client a test builds
    from pytest_llm_matrix.calls.client import LLM
    from pytest_llm_matrix.config.models import Model


@pytest.fixture
def llm_model(request: pytest.FixtureRequest) -> Iterator[Model]:
    """The spec of the model this test instance runs against (``test_x[alias]``)."""
    model: Model | None = getattr(request, "param", None)
    if model is None:
        # Only reachable when the plugin's parametrization was bypassed, e.g. by a
        # fixture of broader scope that depends on llm_model.
        pytest.fail(
            f"{request.node.nodeid}: llm_model has no model; it is parametrized per model "
            "for function-scoped use only",
            pytrace=False,
        )
    if (reason := context.refusal(model.name)) is not None:
        pytest.skip(reason)
    if model.needs_simulator:
        simulator = request.config.stash[SIMULATOR_KEY]
        assert simulator is not None  # created in pytest_configure whenever one is needed
        model = model.at_simulator(simulator.ensure_started())
    if not request.config.stash[SETTINGS_KEY].patch_sdks:
        yield model
        return
    # lazy: the SDKs load only in a test that binds them
    from pytest_llm_matrix.calls.sdk_patch import bound_sdks

    with bound_sdks(model):  # --llm-patch-sdks: clients the code builds go to this model
        yield model


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


def _close_async(client: Any) -> None:
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
    _close_async(client)


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
    _close_async(client)


def _sdk(name: str, model: Model, config: pytest.Config) -> Any:
    """The SDK module, or a skip that says why this test cannot use it. A missing SDK fails
    the test under ``--llm-strict`` (a pre-commit hook whose dependencies lost the SDK
    would otherwise pass by skipping it)."""
    api = "anthropic" if name == "anthropic" else "openai"
    if model.api != api:
        pytest.skip(f"{model.name} speaks the {model.api} API, not {api}'s: no {name} client")
    try:
        return __import__(name)
    except ImportError:
        reason = (
            f"the {name} SDK is not installed (pip install 'pytest-llm-matrix[{name}]'; "
            f"in a pre-commit hook, add it to additional_dependencies)"
        )
        if config.stash[SETTINGS_KEY].strict:
            pytest.fail(
                f"{model.name}: {reason}; --llm-strict fails what would be skipped", pytrace=False
            )
        pytest.skip(reason)


def _sdk_client(name: str, request: pytest.FixtureRequest, asynchronous: bool) -> Any:
    """An official SDK client for the test's model whose only retry layer is ours."""
    # lazy: the SDKs load only in a test that binds them
    from pytest_llm_matrix.calls.sdk_patch import client_options

    model: Model = request.getfixturevalue("llm_model")
    sdk = _sdk(name, model, request.config)
    if name == "openai":
        factory = sdk.AsyncOpenAI if asynchronous else sdk.OpenAI
    else:
        factory = sdk.AsyncAnthropic if asynchronous else sdk.Anthropic
    return factory(**client_options(model, asynchronous, rewrite_model=None))


@pytest.fixture
def openai_client(llm_model: Model, request: pytest.FixtureRequest) -> Iterator[Any]:
    """``openai.OpenAI`` for the test's model (OpenAI-API models), SDK retries off."""
    client = _sdk_client("openai", request, asynchronous=False)
    with client:
        yield client


@pytest.fixture
def async_openai_client(llm_model: Model, request: pytest.FixtureRequest) -> Iterator[Any]:
    """``openai.AsyncOpenAI`` for the test's model, SDK retries off."""
    client = _sdk_client("openai", request, asynchronous=True)
    yield client
    _close_async(client)


@pytest.fixture
def anthropic_client(llm_model: Model, request: pytest.FixtureRequest) -> Iterator[Any]:
    """``anthropic.Anthropic`` for the test's model (Anthropic-API models), SDK retries off."""
    client = _sdk_client("anthropic", request, asynchronous=False)
    with client:
        yield client


@pytest.fixture
def async_anthropic_client(llm_model: Model, request: pytest.FixtureRequest) -> Iterator[Any]:
    """``anthropic.AsyncAnthropic`` for the test's model, SDK retries off."""
    client = _sdk_client("anthropic", request, asynchronous=True)
    yield client
    _close_async(client)


@pytest.fixture
def llm_sdks(llm_model: Model) -> Iterator[Model]:
    """Makes the test a model test (one per model) and, for as long as it runs, binds the
    openai/anthropic SDK clients that the code under test builds itself to the model under
    test (see :mod:`pytest_llm_matrix.calls.sdk_patch`). Adopt a suite in one line: ini
    ``usefixtures = llm_sdks``, or ``pytestmark = pytest.mark.usefixtures("llm_sdks")``."""
    # lazy: the SDKs load only in a test that binds them
    from pytest_llm_matrix.calls.sdk_patch import bound_sdks

    with bound_sdks(llm_model):
        yield llm_model
