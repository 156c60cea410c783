"""Start the built-in simulator for the selected ``provider = "simulator"`` models."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from pytest_llm_matrix.models import Model
from pytest_llm_matrix.options import Settings


def simulator_config_data(settings: Settings) -> dict[str, Any]:
    """The simulator's config: ``[tool.llm-matrix.simulator]`` plus each model's ``simulate``."""
    registry = settings.registry
    where = f"{registry.source}: simulator"
    data = dict(registry.simulator)
    if "models" in data:
        raise pytest.UsageError(
            f"{where}: per-model knobs go in each model's 'simulate' table, not in "
            "[tool.llm-matrix.simulator.models]"
        )
    knobs: dict[str, dict[str, Any]] = {}
    owners: dict[str, str] = {}
    for model in registry.models.values():
        if model.provider != "simulator":
            continue
        if model.model in knobs and knobs[model.model] != dict(model.simulate):
            raise pytest.UsageError(
                f"{registry.source}: simulator models {owners[model.model]!r} and "
                f"{model.name!r} share the model id {model.model!r} but simulate differently; "
                "give them distinct 'model' ids"
            )
        knobs[model.model] = dict(model.simulate)
        owners[model.model] = model.name
    data["models"] = knobs
    return data


def start_simulator(config: pytest.Config, settings: Settings) -> Settings:
    """Start one simulator for the session if a selected model needs it; stop it at exit.

    A simulator model with its own ``base_url`` points at a simulator started elsewhere
    (``python -m pytest_llm_matrix.simulator``) and needs none.
    """
    needs = [m for m in settings.models if m.provider == "simulator" and m.base_url is None]
    if not needs:
        return settings
    from pytest_llm_matrix.simulator import Simulator, SimulatorConfigError, parse_config

    where = f"{settings.registry.source}: simulator"
    try:
        sim_config = parse_config(simulator_config_data(settings), source=where)
    except SimulatorConfigError as exc:
        raise pytest.UsageError(str(exc)) from None
    simulator = Simulator(sim_config)
    url = simulator.start()
    config.add_cleanup(simulator.stop)

    def bind(model: Model) -> Model:
        if model.provider != "simulator" or model.base_url is not None:
            return model
        return dataclasses.replace(model, base_url=url + ("/v1" if model.api == "openai" else ""))

    models = {name: bind(m) for name, m in settings.registry.models.items()}
    registry = dataclasses.replace(settings.registry, models=models)
    return dataclasses.replace(settings, registry=registry, simulator_url=url)
