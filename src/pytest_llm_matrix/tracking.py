"""Per-test hooks for model tests: deadlines, timeouts, and what each test spent.

Registered only once collection has found model tests, so suites (and workers) that run
none pay nothing per test.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import os
import signal
import threading
from collections.abc import Callable, Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import pytest

from pytest_llm_matrix.calls import context, recording
from pytest_llm_matrix.calls.context import (
    AUX_ATTR,
    BUDGET_ATTR,
    REACHED_ATTR,
    REPORT_ATTR,
    SPEND_ATTR,
    TRANSCRIPT_ATTR,
)
from pytest_llm_matrix.calls.fixtures import MODEL_FIXTURES
from pytest_llm_matrix.config.models import Model
from pytest_llm_matrix.config.options import OFFLINE_MODES, SETTINGS_KEY
from pytest_llm_matrix.config.redaction import redact_report, redactor
from pytest_llm_matrix.matrix import SDKS_FIXTURE
from pytest_llm_matrix.matrix.parametrize import model_of
from pytest_llm_matrix.matrix.repeats import (
    CALLING_KEY,
    RUN_KEY,
    STOPPED_KEY,
    settle,
    stop_if_settled,
)
from pytest_llm_matrix.simulator.service import resolved

if TYPE_CHECKING:
    from pytest_llm_matrix.config.options import Settings

TIMEOUT_SOURCE: Final = pytest.StashKey[str]()
#: Set to the alias of the model under test, for the length of each model test.
MODEL_ENV: Final = "LLM_MATRIX_MODEL"
OWN_TIMER: Final = pytest.StashKey[Callable[[], None]]()


def add_timeout_marks(settings: Settings, items: list[pytest.Item]) -> None:
    """A model's ``timeout`` (or ``--llm-timeout``) becomes a ``pytest.mark.timeout``.

    Which timeout a model test gets, first that applies: a timeout mark on the test, class
    or module; ``--timeout`` typed on the command line (this run's override); the model's
    ``timeout``; ``--llm-timeout``, then ini ``llm_timeout``; pytest-timeout's defaults
    (``--timeout`` in addopts, ``PYTEST_TIMEOUT``, ini ``timeout``). Each test remembers
    where its timeout came from, for the failure's message.

    Without pytest-timeout (``-p no:timeout``) no mark is added: nothing would enforce it,
    and under ``--strict-markers`` an unregistered mark is an error (the header says so).
    """
    if not items or not items[0].config.pluginmanager.hasplugin("timeout"):
        return
    for item in items:
        model = model_of(item)
        if model is None:
            continue
        if item.get_closest_marker("timeout") is not None:
            item.stash[TIMEOUT_SOURCE] = "a timeout mark"
        elif settings.typed_timeout:
            item.stash[TIMEOUT_SOURCE] = "--timeout"
        elif model.timeout is not None:
            item.add_marker(pytest.mark.timeout(model.timeout))
            item.stash[TIMEOUT_SOURCE] = "the model's timeout"
        elif settings.llm_timeout is not None:
            item.add_marker(pytest.mark.timeout(settings.llm_timeout))
            item.stash[TIMEOUT_SOURCE] = settings.llm_timeout_source


def default_timeout_source(config: pytest.Config) -> str:
    """Where pytest-timeout's own default came from (its order: option, env, ini)."""
    if config.getoption("timeout", None) is not None:
        return "--timeout"
    if os.environ.get("PYTEST_TIMEOUT"):
        return "PYTEST_TIMEOUT"
    return "ini timeout"


class TestTracker:
    """Opens a test context around each test and puts model and spend on its reports; binds
    the SDK clients of the model tests that ask for it (``llm_sdks``, ``--llm-patch-sdks``)
    from their setup to the end of their teardown."""

    __test__ = False

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.settings = config.stash[SETTINGS_KEY]
        self.binding: Any = None  # the running test's (see pytest_llm_matrix.adoption)
        #: pytest_llm_matrix.adoption.binding, once a test binds: this session's copy (an
        #: in-process pytester run may import a module anew; its calls must meet one copy)
        self.adoption: Any = None

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_protocol(
        self, item: pytest.Item, nextitem: pytest.Item | None
    ) -> Generator[None, object, object]:
        model = model_of(item)
        context.begin(item.nodeid, model.name if model is not None else None)
        saved = os.environ.get(MODEL_ENV)
        if model is not None:  # code under test can tell which model it runs under
            os.environ[MODEL_ENV] = model.name
        try:
            return (yield)
        finally:
            self._unbind()
            context.end()
            if model is not None:
                if saved is None:
                    os.environ.pop(MODEL_ENV, None)
                else:
                    os.environ[MODEL_ENV] = saved

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        recording.restart(context.current())
        model = model_of(item)
        if model is not None and (
            self.settings.patch_sdks or SDKS_FIXTURE in getattr(item, "fixturenames", ())
        ):
            self._bind(model)
        run = item.stash.get(RUN_KEY, None)
        limits = context.limits()
        if run is not None and limits is not None and model is not None:
            stop_if_settled(item, run, limits.coordinator, model.name)

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_teardown(self, item: pytest.Item) -> Generator[None, None, None]:
        """Once its fixtures are torn down (its clients and streams closed), the test's
        recordings are written; a recording that cannot be written errors the test."""
        try:
            result = yield
        finally:
            self._unbind()  # its fixtures (and their clients) are gone
            ctx = context.current()
            if ctx is not None:  # a stream left open: its slot freed, its transcript taken
                ctx.close_streams()
        if recording.active() is not None:
            recording.flush(context.current())
        return result

    def _bind(self, model: Model) -> None:
        """The SDK clients send the test's generation calls to ``model`` (a failure to bind
        is the test's setup error)."""
        # lazy: the SDKs load only in a test that binds them
        from pytest_llm_matrix.adoption import binding

        config = self.config
        if self.adoption is None:
            self.adoption = binding
            binding.install()
            config.add_cleanup(binding.uninstall)
            config.add_cleanup(binding.forget_clients)
        self.binding = self.adoption.Binding(
            resolved(config, model),
            self.settings,
            functools.partial(resolved, config),
            offline=self.settings.record in OFFLINE_MODES,
        )
        self.adoption.activate(self.binding)

    def _fixture_id(self, fixturedef: pytest.FixtureDef[Any]) -> str | None:
        """``tests/conftest.py::index``: where a shared fixture's recordings are kept (None:
        its file is not under the rootdir; they go with the test's)."""
        try:
            path = Path(inspect.getsourcefile(fixturedef.func) or "").resolve()
            relative = path.relative_to(self.config.rootpath.resolve())
        except (TypeError, ValueError, OSError):
            return None
        return f"{relative.as_posix()}::{fixturedef.argname}"

    def _unbind(self) -> None:
        """The test's SDK binding, if it had one, is over."""
        if self.binding is None:
            return
        found, self.binding = self.binding, None
        self.adoption.deactivate(found)

    @pytest.hookimpl(wrapper=True)
    def pytest_fixture_setup(
        self, fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest
    ) -> Generator[None, object, object]:
        """A fixture whose value the tests of several models share is being set up: a
        generation call from it would be one model's answer for all (see the binding)."""
        binding = self.binding
        if binding is None or fixturedef.scope == "function":
            return (yield)
        binding.shared.append((fixturedef.argname, fixturedef.scope, self._fixture_id(fixturedef)))
        try:
            return (yield)
        finally:
            binding.shared.pop()

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, None, None]:
        item.stash[CALLING_KEY] = True
        try:
            return (yield)
        finally:
            item.stash[CALLING_KEY] = False

    # tryfirst: the outermost wrapper, so it sees reports as xfail handling left them
    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        redact_report(item.config, report)  # before its text goes into a shared record
        model = model_of(item)
        if model is not None:
            setattr(report, REPORT_ATTR, model.name)
        ctx = context.current()
        if ctx is not None and (spend := ctx.take()) is not None:
            setattr(report, SPEND_ATTR, spend)
        if ctx is not None and (auxiliary := ctx.take_auxiliary()) is not None:
            setattr(report, AUX_ATTR, auxiliary)
        if ctx is not None:
            exchanges, more, verdicts = ctx.take_transcript()
            if exchanges or more or verdicts:
                taken = {"exchanges": exchanges, "more": more, "verdicts": verdicts}
                # every configured key masked before it leaves the worker on the report
                setattr(report, TRANSCRIPT_ATTR, redactor(item.config).data(taken))
        if ctx is not None and _adopted(item):
            setattr(report, REACHED_ATTR, ctx.reached)  # it may be model-free
        if ctx is not None and ctx.refused_by_budget and report.skipped:
            setattr(report, BUDGET_ATTR, True)
        run = item.stash.get(RUN_KEY, None)
        limits = context.limits()
        subtest = item.stash.get(CALLING_KEY, False)  # pytest's subtests: parts of a run
        if run is not None and limits is not None and model is not None and not subtest:
            stopped = item.stash.get(STOPPED_KEY, False)
            try:
                settle(report, run, limits.coordinator, model.name, stopped)
            except pytest.fail.Exception as lost:  # the shared coordinator is gone
                report.outcome = "failed"
                report.longrepr = str(lost.msg)
        return report


ADOPTED_KEY: Final = pytest.StashKey[bool]()


def _adopted(item: pytest.Item) -> bool:
    """Whether ``item`` is a model test only because ``llm_sdks`` made it one (not asking
    for a model itself): it may then be model-free."""
    found = item.stash.get(ADOPTED_KEY, None)
    if found is None:
        own: set[str] = set()
        with contextlib.suppress(TypeError, ValueError, AttributeError):
            own = set(inspect.signature(item.obj).parameters)  # type: ignore[attr-defined]
        found = SDKS_FIXTURE in getattr(item, "fixturenames", ()) and not own & MODEL_FIXTURES
        item.stash[ADOPTED_KEY] = found
    return found


class TimeoutHooks:
    """pytest-timeout integration (registered only when pytest-timeout is active).

    The timer's start is the test's deadline for the HTTP layer. For model tests on the
    signal method, the timer is ours, so that the failure names the model and its timeout.
    """

    @pytest.hookimpl(tryfirst=True, optionalhook=True)
    def pytest_timeout_set_timer(self, item: pytest.Item, settings: Any) -> bool | None:
        ctx = context.current()
        timeout = settings.timeout
        if ctx is None or not timeout:
            return None
        source = item.stash.get(TIMEOUT_SOURCE, None) or default_timeout_source(item.config)
        ctx.set_deadline(timeout, source)
        model = model_of(item)
        if model is None or settings.method != "signal":
            return None
        if threading.current_thread() is not threading.main_thread():
            return None
        message = f"{model.name}: timed out after {timeout:g}s ({source})"

        def fire(signum: int, frame: object) -> None:
            __tracebackhide__ = True
            pytest.fail(message)

        def cancel() -> None:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, signal.SIG_DFL)

        signal.signal(signal.SIGALRM, fire)
        signal.setitimer(signal.ITIMER_REAL, timeout)
        item.stash[OWN_TIMER] = cancel
        return True

    @pytest.hookimpl(tryfirst=True, optionalhook=True)
    def pytest_timeout_cancel_timer(self, item: pytest.Item) -> bool | None:
        cancel = item.stash.get(OWN_TIMER, None)
        if cancel is None:
            return None
        del item.stash[OWN_TIMER]
        cancel()
        return True
