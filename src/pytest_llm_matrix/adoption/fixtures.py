"""The official SDKs' clients for the test's model, and ``llm_sdks``: adopting a suite whose
code builds its own clients."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from pytest_llm_matrix.calls.fixtures import close_async
from pytest_llm_matrix.config.options import SETTINGS_KEY

if TYPE_CHECKING:
    from pytest_llm_matrix.adoption import sdks
    from pytest_llm_matrix.config.models import Model


def client_options(model: Model, sdk: sdks.SDK, asynchronous: bool) -> dict[str, Any]:
    """What an official SDK client for ``model`` is built with: its base URL and key, an
    HTTP client of the library this release of the SDK takes (httpx or httpx2) on the
    plugin's transport, and no retries of the SDK's own (the transport retries)."""
    # lazy: the request path loads with the first client a test builds
    from pytest_llm_matrix.adoption import sdks
    from pytest_llm_matrix.calls.exchange import NO_KEY
    from pytest_llm_matrix.calls.transport import (
        base_url,
        http_library,
        llm_transport,
        timeout_of,
    )

    library = sdks.http_library(sdk)
    http = http_library(library)
    transport = llm_transport(
        model, asynchronous=asynchronous, http=library, shared=not asynchronous
    )
    client = (http.AsyncClient if asynchronous else http.Client)(
        transport=transport, timeout=timeout_of(model)
    )
    options: dict[str, Any] = {
        "base_url": base_url(model),
        "api_key": model.api_key() or NO_KEY,
        "max_retries": 0,
        "timeout": timeout_of(model),
        "http_client": client,
    }
    headers = model.header_values()
    key = model.api_key()
    if model.provider == "azure-openai" and model.auth != "entra" and key:
        headers["api-key"] = key  # the v1 API takes a bearer key too; a gateway may not
    if headers:
        options["default_headers"] = headers
    if model.provider == "azure-openai" and model.api_version is not None:
        # AzureOpenAI: the deployment's paths, its api-version, its key in api-key
        del options["base_url"]
        key = options.pop("api_key")
        options.update(
            azure_endpoint=model.base_url,
            azure_deployment=model.model,
            api_version=model.api_version,
        )
        options["azure_ad_token" if model.auth == "entra" else "api_key"] = key
    return options


def _sdk(sdk: sdks.SDK, model: Model, config: pytest.Config) -> Any:
    """The SDK's package, or a skip (or failure) that says why this test cannot use it. A
    missing SDK fails the test under ``--llm-strict`` (a pre-commit hook whose dependencies
    lost the SDK would otherwise pass by skipping it)."""
    __tracebackhide__ = True
    # lazy: the SDKs' releases are looked up only in a test that builds a client
    from pytest_llm_matrix.adoption import sdks

    if model.api != sdk.api:
        pytest.skip(
            f"{model.name} speaks the {model.api} API, not {sdk.api}'s: no {sdk.package} client"
        )
    if (problem := sdks.problem(sdk)) is not None:
        pytest.fail(f"{model.name}: {problem}", pytrace=False)
    package = sdks.module(sdk)
    if package is None:
        reason = (
            f"the {sdk.package} SDK is not installed (pip install "
            f"'pytest-llm-matrix[{sdk.package}]'; in a pre-commit hook, add it to "
            "additional_dependencies)"
        )
        if config.stash[SETTINGS_KEY].strict:
            pytest.fail(
                f"{model.name}: {reason}; --llm-strict fails what would be skipped", pytrace=False
            )
        pytest.skip(reason)
    return package


def _sdk_client(package: str, request: pytest.FixtureRequest, asynchronous: bool) -> Any:
    """An official SDK client for the test's model whose only retry layer is ours."""
    # lazy: the SDKs' releases are looked up only in a test that builds a client
    from pytest_llm_matrix.adoption import sdks

    sdk = next(sdk for sdk in sdks.SDKS if sdk.package == package)
    model: Model = request.getfixturevalue("llm_model")
    package = _sdk(sdk, model, request.config)
    factory = getattr(package, sdk.clients[1] if asynchronous else sdk.clients[0])
    options = client_options(model, sdk, asynchronous)
    if "azure_endpoint" in options:
        factory = getattr(package, "AsyncAzureOpenAI" if asynchronous else "AzureOpenAI")
    return factory(**options)


@pytest.fixture
def openai_client(llm_model: Model, request: pytest.FixtureRequest) -> Iterator[Any]:
    """``openai.OpenAI`` for the test's model (OpenAI-API models), SDK retries off
    (``openai.AzureOpenAI`` for an Azure model with an ``api_version``)."""
    client = _sdk_client("openai", request, asynchronous=False)
    with client:
        yield client


@pytest.fixture
def async_openai_client(llm_model: Model, request: pytest.FixtureRequest) -> Iterator[Any]:
    """``openai.AsyncOpenAI`` for the test's model, SDK retries off."""
    client = _sdk_client("openai", request, asynchronous=True)
    yield client
    close_async(client)


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
    close_async(client)


@pytest.fixture
def llm_sdks(llm_model: Model | None) -> Model | None:
    """Makes the test a model test (one per model) whose openai/anthropic SDK clients send
    their generation calls to the model under test, for as long as the test runs, wherever
    the clients were built (see :mod:`pytest_llm_matrix.adoption.binding`). Adopt a suite
    in one line: ini ``usefixtures = llm_sdks``, or ``llm_sdks_paths`` for some folders.
    (unittest tests and doctests, which pytest does not parametrize, run once, unbound.)"""
    return llm_model
