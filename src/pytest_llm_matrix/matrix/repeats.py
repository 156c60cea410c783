"""Repeated runs: a test runs N times per model and passes when passes / N >= p.

Each run is its own item (``test_x[alias-run2of5]``), so runs spread over xdist workers like
any other test. Every run's result goes into a record the session's processes share (see
:meth:`~pytest_llm_matrix.calls.limits.Coordinator.update_record`); the run whose result settles the
outcome - enough passes, too many failures, or an error or skip - carries the verdict on its
own report: the one passed or failed of the test and model. Every other run reports as
skipped, with what it did in the reason (``run 2/5 passed, judged with the other runs``);
runs not yet started when the outcome is settled are skipped at setup as not needed (early
stop). Every reporter reads the same outcomes from the same reports, so the terminal, JUnit,
pytest-html and ``-x``/``--maxfail`` count one pass or failure per test and model.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any, Final

import pytest

from pytest_llm_matrix.config import checks
from pytest_llm_matrix.config.options import Settings
from pytest_llm_matrix.matrix import MARKER

#: The hidden fixture each run of a repeated test is parametrized on (its value: RunSpec).
RUN_FIXTURE: Final = "_llm_matrix_run"
#: TestReport attribute describing a run (a dict of builtins).
RUN_ATTR: Final = "llm_run"
#: The title of the report section that explains a verdict.
SECTION: Final = "llm-matrix repeats"


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """One run of a repeated test: run ``index`` of ``repeat``, judged at ``min_pass_rate``."""

    index: int
    repeat: int
    min_pass_rate: float

    @property
    def id(self) -> str:
        return f"run{self.index}of{self.repeat}"


@dataclasses.dataclass(frozen=True)
class Run:
    """A collected run: its test-and-model group and how that group is judged."""

    group: str  # the node id without the run's id: test_x[alias]
    spec: RunSpec
    planned: int  # runs of the group collected in this session (fewer with -k)


RUN_KEY: Final = pytest.StashKey[Run]()
STOPPED_KEY: Final = pytest.StashKey[bool]()
#: Set while a run's test function runs: reports made then are subtests' (pytest >= 9).
CALLING_KEY: Final = pytest.StashKey[bool]()


def passes_needed(runs: int, rate: float) -> int:
    """The fewest passes out of ``runs`` for passes / runs >= rate (0 when rate is 0)."""
    # A small tolerance so that 0.7 * 10 (7.000000000000001) needs 7, not 8.
    return max(0, min(runs, math.ceil(rate * runs - 1e-9)))


# -- the shared tally ----------------------------------------------------------------------


@dataclasses.dataclass
class Tally:
    """The runs of one test on one model so far, and the verdict once it is settled."""

    planned: int
    rate: float = 1.0
    passed: int = 0
    failed: int = 0
    verdict: str | None = None
    decided_by: int | None = None
    notes: dict[str, str] = dataclasses.field(default_factory=dict)  # run index -> failure

    @property
    def runs(self) -> int:
        return self.passed + self.failed

    @property
    def need(self) -> int:
        return passes_needed(self.planned, self.rate)

    def add(self, index: int, outcome: str, note: str | None) -> bool:
        """Count one run; True when this run settles the verdict."""
        if self.verdict is not None:
            return False
        if outcome == "passed":
            self.passed += 1
        elif outcome == "failed":
            self.failed += 1
        if note:
            self.notes[str(index)] = note
        if outcome not in ("passed", "failed"):
            self.verdict = outcome  # an error, a skip or an xfail: nothing to weigh
        elif self.passed >= self.need:
            self.verdict = "passed"
        elif self.passed + (self.planned - self.runs) < self.need:
            self.verdict = "failed"
        if self.verdict is None:
            return False
        self.decided_by = index
        return True

    def short(self) -> str:
        """``3/4 passed, needs 3/5``"""
        return f"{self.passed}/{self.runs} passed, needs {self.need}/{self.planned}"

    def explain(self, model: str) -> str:
        """Why the verdict is what it is, for the report section."""
        needs = f"needs {self.need} of {self.planned} (min_pass_rate {self.rate:.0%})"
        head = f"{model}: {self.passed} of {checks.counted(self.runs, 'run')} passed; {needs}"
        if self.verdict in ("passed", "failed"):
            left = self.planned - self.runs
            head += f": {self.verdict}"
            if left:
                others = "the other run was" if left == 1 else f"the other {left} runs were"
                head += f", so {others} not needed"
        else:
            head += f"; run {self.decided_by} ended as {self.verdict}, which settles it"
        failures = [f"run {i} failed: {note}" for i, note in sorted(self.notes.items())]
        return "\n".join([head, *failures])

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Tally:
        return cls(**json.loads(text))


# -- collection ----------------------------------------------------------------------------


def plan_for(definition: pytest.Item, settings: Settings) -> tuple[int, float]:
    """How often a test runs per model and the share of runs that must pass: the closest
    ``@pytest.mark.llm(repeat=, min_pass_rate=)`` wins over ``--llm-repeat`` and
    ``--llm-repeat-pass-rate``. ``None`` is the same as not giving the keyword."""
    repeat: int | None = None
    rate: float | None = None
    for mark in definition.iter_markers(MARKER):  # closest first
        origin = f"{definition.nodeid}: @pytest.mark.llm"
        if repeat is None and mark.kwargs.get("repeat") is not None:
            try:
                repeat = checks.REPEAT.check(mark.kwargs["repeat"])
            except ValueError as error:
                raise pytest.Collector.CollectError(f"{origin}(repeat=...): {error}") from None
        if rate is None and (value := mark.kwargs.get("min_pass_rate")) is not None:
            try:
                rate = checks.rate_of(value)
            except ValueError as error:
                raise pytest.Collector.CollectError(
                    f"{origin}(min_pass_rate=...): {error}"
                ) from None
    return (
        repeat if repeat is not None else settings.repeat,
        rate if rate is not None else settings.repeat_pass_rate,
    )


def add_runs(metafunc: pytest.Metafunc, settings: Settings) -> None:
    """Parametrize a repeated model test with its runs (last: the run id ends the test id)."""
    repeat, rate = plan_for(metafunc.definition, settings)
    if repeat == 1 and rate > 0:  # one run that must pass: a plain test
        return
    if _rerun(metafunc):
        raise pytest.Collector.CollectError(
            f"{metafunc.definition.nodeid}: a repeated test (repeat={repeat}) cannot also be "
            "rerun by pytest-rerunfailures (--reruns or @pytest.mark.flaky): a rerun would "
            "replace a run whose failure was already judged. Its runs already measure how "
            "flaky it is; use one or the other"
        )
    specs = [RunSpec(index, repeat, rate) for index in range(1, repeat + 1)]
    metafunc.fixturenames.append(RUN_FIXTURE)
    metafunc.parametrize(RUN_FIXTURE, specs, ids=[s.id for s in specs], indirect=True)


def _rerun(metafunc: pytest.Metafunc) -> bool:
    """Whether pytest-rerunfailures would rerun this test when it fails."""
    config = metafunc.config
    if not config.pluginmanager.hasplugin("rerunfailures"):
        return False
    reruns = getattr(config.option, "reruns", 0) or 0
    return bool(reruns) or metafunc.definition.get_closest_marker("flaky") is not None


def index_runs(items: Iterable[pytest.Item]) -> None:
    """Stash each run's group and the number of its group's runs actually collected."""
    found: list[tuple[pytest.Item, str, RunSpec]] = []
    planned: dict[str, int] = {}
    for item in items:
        callspec = getattr(item, "callspec", None)
        spec = callspec.params.get(RUN_FIXTURE) if callspec is not None else None
        if not isinstance(spec, RunSpec):
            continue
        group = group_of(item.nodeid, spec.id)
        found.append((item, group, spec))
        planned[group] = planned.get(group, 0) + 1
    for item, group, spec in found:
        item.stash[RUN_KEY] = Run(group, spec, planned[group])


def group_of(nodeid: str, run_id: str) -> str:
    """``t.py::test_x[alias-run2of5]`` -> ``t.py::test_x[alias]``."""
    for ending in (f"-{run_id}]", f"-{run_id}-"):
        head, found, tail = nodeid.rpartition(ending)
        if found:
            return head + ("]" if ending.endswith("]") else "-") + tail
    return nodeid


# -- running -------------------------------------------------------------------------------


def stop_if_settled(item: pytest.Item, run: Run, coordinator: Any, model: str) -> None:
    """Early stop: a run whose test and model already have a verdict is skipped."""
    text = coordinator.record(_record_name(run))
    if text is None:
        return
    tally = Tally.from_json(text)
    if tally.verdict is None:
        return
    item.stash[STOPPED_KEY] = True
    pytest.skip(f"{model}: run {tally.decided_by} settled it ({tally.short()})")


def settle(
    report: pytest.TestReport, run: Run, coordinator: Any, model: str, stopped: bool
) -> None:
    """Record this run's result and turn its report into the verdict or a mere run."""
    info = _info(run)
    setattr(report, RUN_ATTR, info)
    if report.when == "teardown":
        if report.failed and not _first_teardown_error(run, coordinator):
            _demote(report, info, "error", model)
        return
    if report.when == "setup" and report.passed:
        return
    # the run's own result: its call, a setup that did not pass, or xdist's crash report
    outcome = outcome_of(report)
    info["outcome"] = outcome
    if stopped:
        info["role"] = "stopped"
        if report.skipped and isinstance(report.longrepr, tuple):  # at the test, not here
            path, lineno, _ = report.location
            report.longrepr = (str(path), (lineno or 0) + 1, report.longrepr[2])
        return
    settled = False
    tally = Tally(run.planned, run.spec.min_pass_rate)

    def change(text: str | None) -> str:
        nonlocal settled, tally
        if text is not None:
            tally = Tally.from_json(text)
        settled = tally.add(run.spec.index, outcome, _note(report) if report.failed else None)
        return tally.to_json()

    coordinator.update_record(_record_name(run), change)
    info.update(passed=tally.passed, runs=tally.runs, need=tally.need, verdict=tally.verdict)
    if not settled:
        _demote(report, info, outcome, model)
        return
    info["role"] = "verdict"
    report.sections.append((SECTION, tally.explain(model)))
    if tally.verdict == "passed" and report.failed:  # min_pass_rate 0: any result passes
        report.outcome = "passed"
        report.longrepr = None


def unrecorded(report: pytest.TestReport, run: Run, model: str, why: str) -> None:
    """A crashed run the controller could not record with its test's other runs (the
    coordinator is gone): an errored run, which settles its test and model as an error
    always does, saying why it stands alone. The session goes on without the record."""
    tally = Tally(run.planned, run.spec.min_pass_rate)
    tally.add(run.spec.index, "error", None)
    info = _info(run)
    info.update(role="verdict", outcome="error", passed=tally.passed, runs=tally.runs)
    info.update(need=tally.need, verdict=tally.verdict)
    setattr(report, RUN_ATTR, info)
    report.longrepr = f"{report.longrepr}; not judged with its other runs: {why}"
    report.sections.append((SECTION, f"{model}: run {run.spec.index} crashed; {why}"))


def _info(run: Run) -> dict[str, Any]:
    """What a run's report says of it (RUN_ATTR), before its role and outcome are known."""
    return {
        "group": run.group,
        "index": run.spec.index,
        "repeat": run.spec.repeat,
        "planned": run.planned,
        "min_pass_rate": run.spec.min_pass_rate,
        "role": None,
        "outcome": None,
    }


def _demote(report: pytest.TestReport, info: dict[str, Any], outcome: str, model: str) -> None:
    """A run's report that does not settle the outcome: skipped, for every reporter, with
    what the run did in the reason; the verdict's report counts for the test and model."""
    info.update(role="run", outcome=outcome)
    if report.skipped and not hasattr(report, "wasxfail"):
        return  # a skip already says why
    where = f"run {info['index']}/{info['planned']}"
    reason = f"{model}: {where} {_done(outcome)}, judged with the other runs"
    if report.failed:
        reason += f": {_note(report)}"
    path, lineno, _ = report.location
    report.outcome = "skipped"
    report.longrepr = (str(path), (lineno or 0) + 1, f"Skipped: {reason}")
    if hasattr(report, "wasxfail"):
        del report.wasxfail


def _done(outcome: str) -> str:
    return {"error": "errored", "xfailed": "xfailed", "xpassed": "xpassed"}.get(outcome, outcome)


def _first_teardown_error(run: Run, coordinator: Any) -> bool:
    """Whether this is the first teardown error among the test's runs on this model: it
    counts (as a plain test's would), later ones do not."""
    count = coordinator.update_record("teardown:" + run.group, lambda old: str(int(old or 0) + 1))
    return bool(count == "1")


def crashed_run(nodeid: str) -> Run | None:
    """The run a crashed xdist worker was running, from its node id (the controller has no
    items); its test's record keeps the planned runs and the bar if another run made it."""
    match = _RUN_ID.search(nodeid)
    if match is None:
        return None
    index, repeat = int(match["index"]), int(match["repeat"])
    spec = RunSpec(index, repeat, 1.0)
    return Run(group_of(nodeid, spec.id), spec, repeat)


_RUN_ID: Final = re.compile(r"-run(?P<index>\d+)of(?P<repeat>\d+)(?=[-\]])")
#: The roles of a repeated test's runs that do not carry its verdict (reported skipped).
NOT_VERDICT: Final = ("run", "stopped")


def without_run(name: str) -> str:
    """A node id or snapshot name without its run: ``test_x[a-run2of5]`` -> ``test_x[a]``."""
    return _RUN_ID.sub("", name)


def _record_name(run: Run) -> str:
    return "runs:" + run.group


def outcome_of(report: pytest.TestReport) -> str:
    if hasattr(report, "wasxfail"):
        return "xfailed" if report.skipped else "xpassed"
    if report.passed:
        return "passed"
    if report.skipped:
        return "skipped"
    return "failed" if report.when == "call" else "error"


def _note(report: pytest.TestReport) -> str:
    """A failed run's one-line reason."""
    crash = getattr(report.longrepr, "reprcrash", None)
    message = getattr(crash, "message", None) or str(report.longrepr or "")
    first = message.strip().splitlines()[0] if message.strip() else "failed"
    return first if len(first) <= 200 else first[:197] + "..."


def status_of(run: Mapping[str, Any]) -> tuple[str, str, str | tuple[str, Mapping[str, bool]]]:
    """How a run's main report shows and counts (pure)."""
    role, outcome = run["role"], run["outcome"]
    where = f"{run['index']}/{run['planned']}"
    if role == "stopped":
        return "skipped", "-", ("NOT NEEDED", {"yellow": True})
    if role == "run":  # skipped for every reporter: the verdict counts for the test
        if outcome == "passed":
            return "skipped", ",", (f"RUN {where} PASSED", {"green": True})
        letter = "f" if outcome in ("failed", "error") else "-"
        return "skipped", letter, (f"RUN {where} {outcome.upper()}", {"yellow": True})
    verdict = run["verdict"]
    tally = f"{run['passed']}/{run['runs']}, needs {run['need']}/{run['planned']}"
    if verdict == "passed":
        return "passed", ".", (f"PASSED {tally}", {"green": True})
    if verdict == "failed":
        return "failed", "F", (f"FAILED {tally}", {"red": True})
    if verdict == "error":
        return "error", "E", ("ERROR", {"red": True})
    category = {"skipped": "skipped", "xfailed": "xfailed", "xpassed": "xpassed"}[verdict]
    letter = {"skipped": "s", "xfailed": "x", "xpassed": "X"}[verdict]
    return category, letter, (category.upper(), {"yellow": True})
