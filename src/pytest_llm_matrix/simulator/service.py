"""The built-in simulator for the selected ``provider = "simulator"`` models."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Final

import pytest

from pytest_llm_matrix.config.models import Model
from pytest_llm_matrix.config.options import Settings

if TYPE_CHECKING:
    from pytest_llm_matrix.simulator.server import Simulator


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


class SimulatorService:
    """The session's one simulator, in the controller: checked at once, started when needed.

    The config is validated in ``pytest_configure`` so mistakes stop the run before
    collection, but the server only starts when a worker is configured (xdist) or a test
    first uses a simulated model (no xdist). A run that uses no model never pays for it.
    A simulator model with its own ``base_url`` points at a simulator started elsewhere
    (``python -m pytest_llm_matrix.simulator``) and needs none.
    """

    def __init__(self, config: pytest.Config, settings: Settings) -> None:
        # lazy: the simulator's config loads only when a simulated model is configured
        from pytest_llm_matrix.simulator.config import SimulatorConfigError, parse_config

        where = f"{settings.registry.source}: simulator"
        data = simulator_config_data(settings)
        if (seed := config.option.llm_sim_seed) is not None:
            data["seed"] = seed  # this run's, over the config's
        try:
            sim_config = parse_config(data, source=where)
        except SimulatorConfigError as exc:
            raise pytest.UsageError(str(exc)) from None
        self._sim_config = sim_config
        self._simulator: Simulator | None = None
        self._config = config
        self._lock = threading.Lock()
        self.url: str | None = None

    def ensure_started(self) -> str:
        with self._lock:
            if self.url is None:
                # lazy: the server (http.server, the API handlers) loads only when it starts
                from pytest_llm_matrix.simulator.server import Simulator

                self._simulator = Simulator(self._sim_config)
                self.url = self._simulator.start()
                self._config.add_cleanup(self._simulator.stop)
            return self.url


def resolved(config: pytest.Config, model: Model) -> Model:
    """``model`` as requests reach it: a simulated model without a ``base_url`` of its own
    is pointed at the session's simulator, started now if it was not yet."""
    if not model.needs_simulator:
        return model
    simulator = config.stash.get(SIMULATOR_KEY, None)
    if simulator is None:  # created in pytest_configure whenever a model in use needs one
        raise RuntimeError(f"{model.name}: no simulator in this session")
    return model.at_simulator(simulator.ensure_started())


#: The session's simulator service in ``config.stash`` (None: no simulated model selected).
SIMULATOR_KEY: Final[pytest.StashKey[SimulatorService | None]] = pytest.StashKey()
