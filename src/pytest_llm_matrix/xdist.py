"""xdist hooks, registered only when pytest-xdist is active (its hookspecs exist then)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pytest_llm_matrix.options import WORKERINPUT_KEY, Settings

if TYPE_CHECKING:
    from xdist.workermanage import WorkerController

    from pytest_llm_matrix.simulation import SimulatorService


class XdistHooks:
    """Hands the controller's resolved settings to every worker.

    The simulator, if the selection needs one, starts when the first worker is set up,
    so every worker gets its address.
    """

    def __init__(self, settings: Settings, simulator: SimulatorService | None) -> None:
        self.settings = settings
        self.simulator = simulator
        self.wire: dict[str, Any] | None = None

    def pytest_configure_node(self, node: WorkerController) -> None:
        if self.wire is None:
            settings = self.settings
            if self.simulator is not None:
                settings = settings.with_simulator(self.simulator.ensure_started())
            self.wire = settings.to_wire()
        node.workerinput[WORKERINPUT_KEY] = self.wire
