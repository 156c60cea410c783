"""xdist hooks, registered only when pytest-xdist is active (its hookspecs exist then)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pytest_llm_matrix.options import WORKERINPUT_KEY, Settings

if TYPE_CHECKING:
    from xdist.workermanage import WorkerController


class XdistHooks:
    """Hands the controller's resolved settings to every worker."""

    def __init__(self, settings: Settings) -> None:
        self.wire: dict[str, Any] = settings.to_wire()

    def pytest_configure_node(self, node: WorkerController) -> None:
        node.workerinput[WORKERINPUT_KEY] = self.wire
