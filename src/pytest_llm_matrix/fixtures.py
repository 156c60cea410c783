"""Fixtures bound to the test's model. ``llm_model`` is parametrized per selected model."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from pytest_llm_matrix.options import SIMULATOR_KEY

if TYPE_CHECKING:
    from pytest_llm_matrix.client import LLM
    from pytest_llm_matrix.models import Model


@pytest.fixture
def llm_model(request: pytest.FixtureRequest) -> Model:
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
    if model.needs_simulator:
        simulator = request.config.stash[SIMULATOR_KEY]
        assert simulator is not None  # created in pytest_configure whenever one is needed
        model = model.at_simulator(simulator.ensure_started())
    return model


@pytest.fixture
def llm(llm_model: Model) -> Iterator[LLM]:
    """A small client for the test's model: ``complete``, ``chat``, ``stream`` and async twins."""
    from pytest_llm_matrix.client import LLM

    client = LLM(llm_model)
    try:
        yield client
    finally:
        client.close()
