"""Fixtures bound to the test's model. ``llm_model`` is parametrized per selected model."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from pytest_llm_matrix import context
from pytest_llm_matrix.options import SETTINGS_KEY, SIMULATOR_KEY

if TYPE_CHECKING:
    from pytest_llm_matrix.client import LLM
    from pytest_llm_matrix.models import Model
    from pytest_llm_matrix.repeats import RunSpec


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
    from pytest_llm_matrix.sdk_patch import bound_sdks

    with bound_sdks(model):  # --llm-patch-sdks: clients the code builds go to this model
        yield model


@pytest.fixture
def _llm_matrix_run(request: pytest.FixtureRequest) -> RunSpec:
    """Which run of a repeated test this is (internal: the plugin parametrizes it)."""
    spec: RunSpec = request.param
    return spec


@pytest.fixture
def llm(llm_model: Model) -> Iterator[LLM]:
    """A small client for the test's model: ``complete``, ``chat``, ``stream`` and async twins."""
    from pytest_llm_matrix.client import LLM

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
    from pytest_llm_matrix.transport import http_client

    client = http_client(llm_model, shared=True)
    with client:
        yield client


@pytest.fixture
def llm_async_http_client(llm_model: Model) -> Iterator[Any]:
    """The ``httpx2.AsyncClient`` twin of ``llm_http_client``."""
    from pytest_llm_matrix.transport import async_http_client

    client = async_http_client(llm_model)
    yield client
    _close_async(client)


@pytest.fixture
def llm_httpx_client(llm_model: Model) -> Iterator[Any]:
    """Like ``llm_http_client``, for plain ``httpx`` users."""
    from pytest_llm_matrix.transport import http_client

    client = http_client(llm_model, http="httpx", shared=True)
    with client:
        yield client


@pytest.fixture
def llm_async_httpx_client(llm_model: Model) -> Iterator[Any]:
    """Like ``llm_async_http_client``, for plain ``httpx`` users."""
    from pytest_llm_matrix.transport import async_http_client

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
    from pytest_llm_matrix.sdk_patch import client_options

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
    test (see :mod:`pytest_llm_matrix.sdk_patch`). Adopt a suite in one line: ini
    ``usefixtures = llm_sdks``, or ``pytestmark = pytest.mark.usefixtures("llm_sdks")``."""
    from pytest_llm_matrix.sdk_patch import bound_sdks

    with bound_sdks(llm_model):
        yield llm_model


#: The folder, beside a test module, where ``llm_snapshot`` keeps each model's snapshots.
SNAPSHOTS_BY_MODEL = "__snapshots_by_model__"
_SNAPSHOT_EXTENSIONS: dict[tuple[type, str], type] = {}


@pytest.fixture
def llm_snapshot(llm_model: Model, request: pytest.FixtureRequest) -> Any:
    """syrupy's ``snapshot``, kept per model: ``__snapshots_by_model__/<alias>/`` beside the
    test module. A run of some models reads and writes only theirs: the other models'
    snapshots are neither reported unused nor deleted by ``--snapshot-update``."""
    if not request.config.pluginmanager.hasplugin("syrupy"):
        pytest.fail(
            f"{request.node.nodeid}: llm_snapshot compares with syrupy snapshots; "
            "install syrupy (pip install syrupy)",
            pytrace=False,
        )
    snapshot = request.getfixturevalue("snapshot")
    return snapshot.use_extension(_snapshot_extension(type(snapshot.extension), llm_model.name))


def _snapshot_extension(base: type, alias: str) -> type:
    """The session's snapshot extension (syrupy's default, or ``--snapshot-default-
    extension``), storing under the model's own folder, with a repeated test's runs
    sharing one snapshot. One class per model: syrupy looks for unused snapshots only in
    the folders of the extensions a run used."""
    key = (base, alias)
    if key not in _SNAPSHOT_EXTENSIONS:
        from pathlib import Path
        from urllib.parse import quote

        from pytest_llm_matrix.repeats import without_run

        # one folder per alias, none shared: percent-encoded (injective), and never "." or ".."
        folder = quote(alias, safe="")
        if set(folder) == {"."}:
            folder = folder.replace(".", "%2E")

        class ByModel(base):  # type: ignore[misc]
            @classmethod
            def dirname(cls, *, test_location: Any) -> str:
                path = Path(super().dirname(test_location=test_location))
                test_dir = Path(test_location.filepath).parent
                try:  # __snapshots__/<rest> -> __snapshots_by_model__/<alias>/<rest>
                    rest = path.relative_to(test_dir / "__snapshots__")
                except ValueError:
                    return str(path)  # an extension that keeps its own folder
                return str(test_dir / SNAPSHOTS_BY_MODEL / folder / rest)

            @classmethod
            def get_snapshot_name(cls, *, test_location: Any, index: Any = 0) -> str:
                name = super().get_snapshot_name(test_location=test_location, index=index)
                return without_run(name)  # every run of a repeated test: one snapshot

        ByModel.__name__ = f"{base.__name__}ByModel"
        _SNAPSHOT_EXTENSIONS[key] = ByModel
    return _SNAPSHOT_EXTENSIONS[key]
