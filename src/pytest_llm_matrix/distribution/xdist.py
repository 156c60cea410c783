"""xdist hooks, registered only when pytest-xdist is active (its hookspecs exist then)."""

from __future__ import annotations

import os
import shlex
from typing import TYPE_CHECKING, Any, Final

import pytest

from pytest_llm_matrix.calls import context
from pytest_llm_matrix.calls.context import REPORT_ATTR, SPEND_ATTR
from pytest_llm_matrix.config.options import WORKERINPUT_KEY, Settings
from pytest_llm_matrix.matrix.parametrize import duplicate_id_problem

#: The phase of the report xdist makes for a test whose worker crashed.
CRASH_PHASE: Final = "???"

if TYPE_CHECKING:
    from xdist.workermanage import WorkerController

    from pytest_llm_matrix.distribution.scheduling import ModelScheduling
    from pytest_llm_matrix.simulator.service import SimulatorService


def dist_given(config: pytest.Config) -> bool:
    """Whether the user chose ``--dist`` (or ``-d``) themselves: then it is respected."""
    args = [
        *config.invocation_params.args,
        *config.getini("addopts"),
        *shlex.split(os.environ.get("PYTEST_ADDOPTS", "")),
    ]
    return any(a == "-d" or a == "--dist" or a.startswith("--dist=") for a in args)


def uses_model_scheduler(config: pytest.Config, settings: Settings) -> bool:
    return bool(settings.selected) and settings.dist == "model" and not dist_given(config)


class XdistHooks:
    """Hands the controller's settings to every worker and schedules model tests.

    The simulator, if the selection needs one, starts when the first worker is set up,
    so every worker gets its address.
    """

    def __init__(self, settings: Settings, simulator: SimulatorService | None) -> None:
        self.settings = settings
        self.simulator = simulator
        self.wire: dict[str, Any] | None = None
        self.ids_checked = False
        #: workers that finished their session, not told to exit yet (see _exit_finished)
        self.finished: list[WorkerController] = []

    def pytest_configure_node(self, node: WorkerController) -> None:
        if self.wire is None:
            settings = self.settings
            if self.simulator is not None:
                settings = settings.with_simulator(self.simulator.ensure_started())
            self.wire = settings.to_wire()
        node.workerinput[WORKERINPUT_KEY] = self.wire

    def pytest_xdist_node_collection_finished(self, node: WorkerController, ids: list[str]) -> None:
        """Two model tests with one id (see ``session.check_ids_are_unique``; workers do
        not check: a usage error there would crash them): the run stops with exit 4."""
        if self.ids_checked:
            return
        self.ids_checked = True
        problem = duplicate_id_problem(ids)
        if problem is not None:
            pytest.exit(problem, returncode=pytest.ExitCode.USAGE_ERROR)

    def pytest_testnodedown(self, node: WorkerController, error: object | None) -> None:
        if error is None and self.settings.selected:
            self.finished.append(node)
        self._exit_finished()

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if self.finished:
            self._exit_finished()

    def _exit_finished(self) -> None:
        """Workers that finished their session cleanly are told to exit once it has wholly
        ended (their channel closed: ``pytest_unconfigure`` and every cleanup done, however
        long they take), at the next event, not when the last worker has finished: their
        exits overlap the others' last tests instead of adding to the run's end (64 workers:
        ~0.2 s at the end of every run on 2 cores).

        ``Gateway.exit`` is execnet's own first half of a termination: it sends the worker
        the message the session's end would, and leaves the waiting for its process to
        ``Group.terminate`` at the session's end, which waits for (or kills) every gateway
        exited so - as long as one gateway is still in the group, so the last is left to it.
        """
        waiting = []
        for node in self.finished:
            group = getattr(getattr(node, "nodemanager", None), "group", None)
            channel = getattr(node, "channel", None)
            try:
                if group is None or channel is None or node.gateway not in group:
                    continue  # gone already, or not what this was written for
                if not channel.isclosed() or len(group) < 2:
                    waiting.append(node)
                    continue
            except (TypeError, AttributeError):  # not execnet's Group and Channel
                continue
            node.gateway.exit()
        self.finished = waiting

    def pytest_xdist_make_scheduler(
        self, config: pytest.Config, log: Any
    ) -> ModelScheduling | None:
        if not uses_model_scheduler(config, self.settings):
            return None
        from xdist.workermanage import parse_tx_spec_config

        # lazy: the scheduler loads only when it schedules a run
        from pytest_llm_matrix.config import cachefile
        from pytest_llm_matrix.distribution.scheduling import (
            DURATIONS_CACHE,
            ModelScheduling,
            cooling_check,
            estimates_from,
        )

        def coordinator() -> Any:
            limits = context.limits()
            return limits.coordinator if limits is not None else None

        estimates = estimates_from(cachefile.get(config, DURATIONS_CACHE, {}))
        return ModelScheduling(
            len(parse_tx_spec_config(config)),
            self.settings,
            estimates,
            cooling=cooling_check(coordinator),
            log=log.modelsched,
            config=config,
        )

    def pytest_handlecrashitem(self, crashitem: str, report: pytest.TestReport, sched: Any) -> None:
        """A worker died mid-test: the failure counts for, and names, the test's model, and
        keeps what the test had spent (from the worker's journal)."""
        # lazy: loaded only when a worker crashes
        from pytest_llm_matrix.distribution.scheduling import model_from_nodeid

        model = model_from_nodeid(crashitem, self.settings.selected)
        if model is None:
            return
        setattr(report, REPORT_ATTR, model)
        report.longrepr = f"{report.longrepr} (model {model})"
        worker = getattr(getattr(getattr(report, "node", None), "gateway", None), "id", None)
        if self.settings.state_dir is not None and isinstance(worker, str):
            path = context.journal_path(self.settings.state_dir, worker)
            spend = context.Journal.read(path, crashitem)
            if spend is not None:
                setattr(report, SPEND_ATTR, spend)
        self._settle_run(crashitem, report, model)

    @staticmethod
    def _settle_run(crashitem: str, report: pytest.TestReport, model: str) -> None:
        """A crashed run of a repeated test is an errored run of it, judged with the rest;
        if the coordinator cannot record it (Redis gone), it is an errored run all the same,
        and the session goes on: the controller never dies of the coordinator."""
        # lazy: loaded only when a worker crashes
        from pytest_llm_matrix.matrix.repeats import crashed_run, settle, unrecorded

        run = crashed_run(crashitem)
        limits = context.limits()
        if run is None or limits is None:
            return
        try:
            settle(report, run, limits.coordinator, model, stopped=False)
        except pytest.fail.Exception as lost:  # the coordinator's way to say it failed
            unrecorded(report, run, model, str(lost.msg))
        except Exception as lost:  # anything else: the session goes on all the same
            unrecorded(report, run, model, f"{type(lost).__name__}: {lost}")


class CrashTeardown:
    """Registered in the controller only when xdist runs the tests (crashes happen only
    then), so a run without ``-n`` pays nothing per report for it."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    @pytest.hookimpl(trylast=True)  # after every reporter has taken the crash report
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """A crashed worker's test gets the teardown report its worker never sent: it ends
        the test for every reporter - JUnit closes its case with the test's ``llm_*``
        properties, the live progress counts it done - as any test's teardown does."""
        if str(report.when) != CRASH_PHASE or str(report.outcome) == "rerun":
            return  # not a crash, or one pytest-rerunfailures runs again: the test goes on
        # lazy: loaded only when a worker crashes
        from pytest_llm_matrix.matrix.repeats import RUN_ATTR

        model = getattr(report, REPORT_ATTR, None)
        if model is None:
            return
        teardown = pytest.TestReport(
            report.nodeid, report.location, {}, "passed", None, "teardown", duration=0.0
        )
        # JUnit keys a test case by its id and this: the crash report's worker
        teardown.node = getattr(report, "node", None)  # type: ignore[attr-defined]
        setattr(teardown, REPORT_ATTR, model)
        run = getattr(report, RUN_ATTR, None)
        if isinstance(run, dict):
            setattr(teardown, RUN_ATTR, {**run, "role": None, "outcome": None})
        self.config.hook.pytest_runtest_logreport(report=teardown)
