"""The controller's per-model report: terminal table, JSON, GitHub summary, exit status.

Workers put the model's alias and what the test spent on every TestReport as plain
builtins; the controller counts reports per model by pytest's own rules, read from each
report (see :func:`category_of`), so every output agrees with pytest's own totals with and
without xdist, whatever other plugins make of them. Tokens are priced only once the tests
are over.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import threading
from collections.abc import Generator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, cast

import pytest

from pytest_llm_matrix._version import __version__
from pytest_llm_matrix.calls import context, recording, transcript
from pytest_llm_matrix.calls.context import (
    AUX_ATTR,
    BUDGET_ATTR,
    REPORT_ATTR,
    SPEND_ATTR,
    TRANSCRIPT_ATTR,
)
from pytest_llm_matrix.config import cachefile, checks
from pytest_llm_matrix.config.jsonfile import writable
from pytest_llm_matrix.config.models import base_id
from pytest_llm_matrix.config.options import distributed
from pytest_llm_matrix.config.redaction import redactor
from pytest_llm_matrix.distribution.scheduling import (
    DURATIONS_CACHE,
    MODEL_TESTS_CACHE,
    model_from_nodeid,
)
from pytest_llm_matrix.matrix.parametrize import DESELECTED_KEY, DESELECTED_OUTPUT
from pytest_llm_matrix.matrix.repeats import NOT_VERDICT, RUN_ATTR, status_of, without_run
from pytest_llm_matrix.report import baseline, html, model_free, render
from pytest_llm_matrix.report.auxiliary import Auxiliary
from pytest_llm_matrix.report.cost import (
    SOURCES,
    format_usd,
    model_cost,
    spend_cost,
    token_source,
    warm_up,
)
from pytest_llm_matrix.report.gates import Gates
from pytest_llm_matrix.report.render import write_file
from pytest_llm_matrix.report.stats import (
    JUDGED,
    ModelStats,
    failure_split,
    percentile,
    replayed_tokens_of,
    reported_of,
    total,
    unreported_tokens_of,
)
from pytest_llm_matrix.report.transcripts import Transcripts

if TYPE_CHECKING:
    from pytest_llm_matrix.config.options import Settings

#: Models already said to have no known price (said once per model, see _unpriced_to_note).
UNPRICED_CACHE: Final = "llm-matrix/unpriced-said"
#: Each model test's cost in the last run that ran it (a repeated test: all its runs), for
#: the next runs' estimate.
TEST_COSTS_CACHE: Final = "llm-matrix/test-costs"
#: pytest 8.3 and later show a status word's markup in the short summary too; older pytest
#: prints a (word, markup) pair there as a tuple.
_MARKUP_IN_SUMMARIES: Final = hasattr(pytest.TestReport, "_get_verbose_word_with_markup")
#: How a test's reports combine into its outcome: the worst wins.
SEVERITY: Final = {"passed": 0, "xfailed": 1, "xpassed": 1, "skipped": 2, "failed": 3, "error": 4}


class Summary:
    """Controller-side plugin: collects reports per model, then reports and judges.

    Failures of optional models (``required = false``) show everywhere but do not fail the
    run; with ``--llm-min-pass-rate``, each required model's pass rate decides instead of
    its individual failures.
    """

    def __init__(self, config: pytest.Config, settings: Settings) -> None:
        self.config = config
        self.settings = settings
        self.models = {m.name: m for m in settings.models}
        self.order = list(settings.selected)
        self.optional = {m.name for m in settings.models if not m.required}
        self.warming = False  # the price table is being loaded (see _warm_up)
        self.stats: dict[str, ModelStats] = {}
        self.failures = {"plain": 0, "required": 0, "optional": 0}
        self.tests: dict[str, dict[str, Any]] = {}  # nodeid -> per-test record
        self.adopted = model_free.Adopted()  # the tests llm_sdks made model tests
        self.auxiliary = Auxiliary(settings.registry.models)
        #: model, test (the id without a run), item, tokens, reported cost: priced once the
        #: tests are over
        self.to_price: list[tuple[str, str, str, tuple[int, int, int], float | None]] = []
        self.replayed_to_price: list[tuple[str, tuple[int, int, int]]] = []  # model, tokens
        self.ran: set[tuple[str, str]] = set()  # (node id, model) of every model test
        self.collect_errors = 0
        #: record and replay: the recordings no test used, and those deleted (prune)
        self.unused: list[str] | None = None
        self.deleted: list[str] = []
        self.narrowed: list[str] = []  # why not every collected test ran (see _narrowed)
        self.deselected = False  # a worker deselected tests (xdist)
        #: --llm-min-pass-rate, --llm-fail-on-regression and --llm-baseline's report (read
        #: at configure, with where it came from)
        self.gates = Gates(
            settings.min_pass_rate,
            config.stash.get(baseline.BASELINE_KEY, None),
            settings.fail_on_regression,
        )
        self.comparison: dict[str, Any] | None = None  # once the tests are over
        self.gate_failed: dict[str, float | None] = {}
        #: what no gate forgives, in the report for a merge of it with others to judge the
        #: whole run (see _unforgiven)
        self.unforgiven: dict[str, int | bool] = {"plain": 0, "stopped": False}
        self.durations: dict[str, float] = {}  # item node id -> its phases' summed time
        self.junit = bool(getattr(config.option, "xmlpath", None))
        self.item_spend: dict[str, dict[str, Any]] = {}  # for --junitxml, until teardown
        self.item_cost: dict[str, float | None] = {}  # ditto
        self.budget_skips = 0
        self.failed_subtests: dict[str, int] = {}  # node id -> its failed subtests
        self.redactor = redactor(config)  # every line and file written goes through it
        self.unwritten: list[str] = []  # outputs that could not be written, and why
        self.report_unwritten = False  # writing --llm-report failed, though checked at start
        self.estimated = False  # the cost estimate was said (xdist: at the first collection)
        self.finished = False  # the tests are over: the summaries are being written
        self.verdict_ids: dict[str, str] = {}  # a repeated test's key -> its verdict run's id
        self.position: dict[str, int] = {}  # node id -> its place in the collection
        self.transcripts = Transcripts(
            settings.transcript_budget * 1_000_000, self.junit and settings.junit_transcripts
        )
        if self.junit:
            self.warm_prices()

    def warm_prices(self) -> None:
        """Load the price data now, for outputs that price tests as they end (--junitxml,
        the live progress): this runs at configure or, without xdist, at collection, before
        any test, so that no test's timeout pays for it."""
        for model in self.models.values():
            model_cost(model, (1, 1, 0))

    # -- the estimate, after collection -------------------------------------------------

    def estimate(self, ids: Sequence[str]) -> str | None:
        """What the model tests collected now cost when they last ran (pytest's cache):
        ``estimated cost of the 40 model tests: $0.0123 (from their last runs; budget $5)``.
        Tests never run before (or unpriced, or stopped by a budget) are said, not guessed;
        while no test is known to have cost anything there is nothing to say."""
        known = cachefile.get(self.config, TEST_COSTS_CACHE, {})
        if not isinstance(known, dict) or not known:
            return None
        tests = {
            without_run(nodeid)
            for nodeid in ids
            if model_from_nodeid(nodeid, self.order) is not None
        }
        costs = [cost for t in tests if (cost := _cost(known.get(t))) is not None]
        if not any(costs):  # no test is known to cost anything: "at least $0.00" says nothing
            return None
        missing = len(tests) - len(costs)
        text = (
            f"estimated cost of the {checks.counted(len(tests), 'model test')}: "
            f"{'at least ' if missing else ''}{format_usd(sum(costs))} (from their last runs"
        )
        if missing:
            text += f"; {missing} of them never ran with a known cost, not counted"
        if self.settings.max_cost is not None:
            text += f"; budget {checks.dollars(self.settings.max_cost)}"
        return text + ")"

    def pytest_report_collectionfinish(self, items: Sequence[pytest.Item]) -> list[str]:
        self._collected([item.nodeid for item in items])
        line = self.estimate([item.nodeid for item in items])
        return [f"llm-matrix: {line}"] if line else []

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: object, ids: Sequence[str]) -> None:
        """With xdist the controller never collects: the first worker's collection (every
        worker collects the same tests) is what is selected."""
        if self.estimated:
            return
        self.estimated = True
        self._collected(ids)
        line = self.estimate(ids)
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if line and reporter is not None:
            reporter.write_line(self.redactor.text(f"llm-matrix: {line}"))

    def _collected(self, ids: Sequence[str]) -> None:
        """The collection's order, which the reports keep (a repeated test: its first run)."""
        for nodeid in ids:
            self.position.setdefault(nodeid, len(self.position))
            self.position.setdefault(without_run(nodeid), len(self.position))

    # -- collecting --------------------------------------------------------------------

    @pytest.hookimpl(tryfirst=True)
    def pytest_report_teststatus(
        self, report: pytest.TestReport | pytest.CollectReport, config: pytest.Config
    ) -> tuple[str, str, str | tuple[str, Mapping[str, bool]]] | None:
        """Runs of a repeated test: the run that settles the outcome carries it, the others
        are skipped. While tests run, each shows what it did (``RUN 2/5 PASSED``); in the
        summaries after the session, the others read ``SKIPPED`` (pytest folds skips under
        the first one's word)."""
        run = getattr(report, RUN_ATTR, None)
        if not isinstance(run, dict) or run.get("role") is None:
            return None
        category, letter, word = status_of(run)
        if self.finished and run["role"] in NOT_VERDICT:
            return category, letter, "SKIPPED"
        if not isinstance(word, str) and not _MARKUP_IN_SUMMARIES:
            word = word[0]  # pytest < 8.3 prints a (word, markup) pair as is in its summary
        return category, letter, word

    def _warm_up(self) -> None:
        """At the first model test's report, in the controller of xdist workers: a thread
        loads the price table the summary will need while the tests run (they mostly wait for
        their models), instead of a quarter second of CPU after the last test."""
        self.warming = True
        if not distributed(self.config) or hasattr(self.config, "workerinput"):
            return  # tests run in this process: they may import what the thread imports
        listed = [m for m in self.models.values() if token_source(m) == "list"]
        if listed:
            threading.Thread(
                target=warm_up, args=(listed,), name="llm-matrix prices", daemon=True
            ).start()

    @pytest.hookimpl(tryfirst=True)  # before junitxml reads the teardown report's properties
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        model = getattr(report, REPORT_ATTR, None)
        kind = "plain" if model is None else "optional" if model in self.optional else "required"
        if report.failed:
            self.failures[kind] += 1
        self.auxiliary.add(getattr(report, AUX_ATTR, None))  # a test without a model's too
        if model is None or model not in self.models:
            return
        if not self.warming:
            self._warm_up()
        if getattr(report, BUDGET_ATTR, False):
            self.budget_skips += 1
        if _is_subtest(report) and report.failed:
            self.failed_subtests[report.nodeid] = self.failed_subtests.get(report.nodeid, 0) + 1
        category = category_of(report, self.failed_subtests.get(report.nodeid, 0))
        counted = bool(category) and getattr(report, "count_towards_summary", True)
        stats = self.stats.setdefault(model, ModelStats())
        stats.add(
            category if counted else "",
            report.duration,
            getattr(report, "start", None),
            getattr(report, "stop", None),
        )
        run = getattr(report, RUN_ATTR, None)
        run = run if isinstance(run, dict) else None
        key = report.nodeid if run is None else run["group"]
        part = self.adopted.note(key, report, kind, category if counted else "")
        test = self.tests.get(key)
        if test is None:
            test = self.tests[key] = {
                "nodeid": key,
                "test": base_id(key, model),
                "model": model,
                "outcome": "passed",
                "duration": 0.0,
                "cost_usd": 0.0,
                "spend": {},
            }
            if run is not None:
                test.update(repeat=run["repeat"], min_pass_rate=run["min_pass_rate"], runs=[])
        test["duration"] += report.duration
        self.durations[report.nodeid] = self.durations.get(report.nodeid, 0.0) + report.duration
        verdict_or_plain = run is None or run["role"] not in NOT_VERDICT
        if (
            counted
            and verdict_or_plain
            and SEVERITY.get(category, 0) > SEVERITY.get(test["outcome"], 0)
        ):
            test["outcome"] = category
        if run is not None and run["role"] is not None:
            self._add_run((stats, part) if part is not None else (stats,), test, run)
            if run["role"] == "verdict":
                self.verdict_ids[key] = report.nodeid
        elif counted and category in JUDGED:
            stats.add_run(category == "passed")
            if part is not None:
                part.add_run(category == "passed")
        telling = counted and verdict_or_plain and category in ("failed", "error", "skipped")
        if telling and "message" not in test and (line := _first_line(report)):
            test["message"] = line  # the grid's hover text in the HTML report
        self.ran.add((report.nodeid, model))
        if category in ("failed", "error") and "failure" not in test and report.failed:
            test["failure"] = _failure(report, self.settings.transcript_chars)
        taken = getattr(report, TRANSCRIPT_ATTR, None)
        if isinstance(taken, dict):
            self.transcripts.add(test, taken, run, report.nodeid)
        spend = getattr(report, SPEND_ATTR, None)
        if isinstance(spend, dict):
            stats.add_spend(spend)
            _merge(test["spend"], spend)
            reported, _ = reported_of(spend)
            tokens = unreported_tokens_of(spend)
            if reported is not None or any(tokens):
                self.to_price.append((model, key, report.nodeid, tokens, reported))
            replayed = replayed_tokens_of(spend)
            if any(replayed):
                self.replayed_to_price.append((model, replayed))
            if self.junit:
                _merge(self.item_spend.setdefault(report.nodeid, {}), spend)
        if self.junit and report.when == "teardown":
            self.price_pending()
            item_spend = self.item_spend.pop(report.nodeid, {})
            cost = self.item_cost.pop(report.nodeid, 0.0)
            report.user_properties.extend(_properties(model, item_spend, cost, run))
            kept = self.transcripts.for_junit.pop(report.nodeid, None)
            if kept:
                report.user_properties.append(("llm_transcript", json.dumps(kept)))

    @staticmethod
    def _add_run(
        counted: tuple[ModelStats, ...], test: dict[str, Any], run: dict[str, Any]
    ) -> None:
        """One run of a repeated test: its own outcome counts towards the model's pass rate
        (and its interval); the verdict run also settles the test's k/N."""
        outcome = "not needed" if run["role"] == "stopped" else run["outcome"]
        test["runs"].append({"index": run["index"], "outcome": outcome})
        for stats in counted:
            stats.repeated = True
            if run["role"] != "stopped" and outcome in JUDGED:
                stats.add_run(outcome == "passed")
        if run["role"] == "verdict":
            test["verdict"] = {
                "passed": run["passed"],
                "runs": run["runs"],
                "needed": run["need"],
                "planned": run["planned"],
                "decided_by": run["index"],
            }

    def spend_text(self, name: str) -> str:
        """A model's spend so far: ``$0.0042``, ``n/a`` (no price) or ``-`` (no tokens)."""
        stats = self.stats.get(name)
        return render.format_cost(stats) if stats is not None else "-"

    def price_pending(self) -> None:
        """Price the reports' tokens here in the controller, where the price data is loaded
        at the end of the run unless an output needs it earlier (see warm_prices): workers
        never load it."""
        self.auxiliary.price()
        for name, tokens in self.replayed_to_price:
            cost = model_cost(self.models[name], tokens)
            self.stats[name].add_replayed_cost(cost, tokens[0] + tokens[1])
        self.replayed_to_price.clear()
        if not self.to_price:
            return
        for name, key, nodeid, tokens, reported in self.to_price:
            cost, sources = spend_cost(self.models[name], tokens, reported)
            self.stats[name].add_cost(cost, tokens[0] + tokens[1], sources)
            test = self.tests[key]
            test["cost_usd"] = _plus(test["cost_usd"], cost)
            if self.junit:
                self.item_cost[nodeid] = _plus(self.item_cost.get(nodeid, 0.0), cost)
        self.to_price.clear()

    # -- judging -----------------------------------------------------------------------

    def _judge(self) -> bool:
        """Whether the run's failures are all forgiven (sets ``gate_failed``; see
        :meth:`.gates.Gates.forgiven`)."""
        rates = {name: stats.pass_rate for name, stats in self.stats.items()}
        self.gate_failed = self.gates.below(rates, self.optional)
        return self.gates.forgiven(
            self.failures["plain"], self.failures["required"], self.gate_failed
        )

    @pytest.hookimpl(wrapper=True)
    def pytest_runtestloop(self, session: pytest.Session) -> Generator[None, object, object]:
        """Forgiven failures are taken off pytest's own count once the tests are over, so
        the exit status pytest computes is already the verdict: every plugin after us then
        sees it (syrupy ORs pytest's status back into the session's at its finish)."""
        result = yield
        self._set_aside_model_free()
        # every failure pytest counted must be a model test's (a collection error is not),
        # and the run must have gone to its end (-x stopped it: tests never ran)
        model_failures = self.failures["required"] + self.failures["optional"]
        if (
            session.testsfailed
            and session.testsfailed == model_failures
            and not session.shouldfail
            and self._judge()
        ):
            session.testsfailed = 0
        return result

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        self.finished = True
        self._set_aside_model_free()
        self.price_pending()
        self._remember()
        self.narrowed = self._narrowed(session)
        self._recordings()
        self._judge()
        self.unforgiven = self._unforgiven(session)
        self._compare(session)
        judged = self.gates.status(int(session.exitstatus), self.gate_failed, self.comparison)
        if judged != session.exitstatus:
            session.exitstatus = pytest.ExitCode(judged)
        if self._budget_reached() and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        self._write_outputs(int(session.exitstatus))
        if self.report_unwritten and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED  # a lost report is no success

    def _unforgiven(self, session: pytest.Session) -> dict[str, int | bool]:
        """What no gate forgives: the failures pytest counted that are no model test's
        (tests without a model, model-free tests, collection errors; none when the model
        tests' were forgiven, see pytest_runtestloop), and whether -x or --maxfail stopped
        the run at a failure (then none is forgiven)."""
        model_failures = self.failures["required"] + self.failures["optional"]
        return {
            "plain": max(0, session.testsfailed - model_failures),
            "stopped": bool(session.shouldfail),
        }

    def _set_aside_model_free(self) -> None:
        """Once the tests are over: model-free tests (see :mod:`.model_free`) leave their
        models' rows, and their failures become plain ones."""
        if self.adopted.free is None:
            self.adopted.set_aside(self.tests, self.stats, self.failures, self._unavailable())

    def _compare(self, session: pytest.Session) -> None:
        """--llm-baseline: this run against the baseline (its verdict: see
        :meth:`.gates.Gates.status`)."""
        if self.gates.baseline is None:
            return
        self.comparison = self.gates.compare(self.build(int(session.exitstatus)))
        changes = self.comparison["models"] if self.comparison is not None else {}
        for name, change in changes.items():
            if name in self.stats:
                self.stats[name].change = change

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: object) -> None:
        """xdist: a worker deselected tests (a plugin's or an option's choice)."""
        output = getattr(node, "workeroutput", None)
        if isinstance(output, dict) and output.get(DESELECTED_OUTPUT):
            self.deselected = True

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.collect_errors += 1

    def _recordings(self) -> None:
        """After a replay of every collected test: the recordings none of them read
        (listed; deleted with --llm-record=prune)."""
        recorder = recording.active()
        if recorder is None or not recorder.offline:
            return
        if self.narrowed:
            return  # the tests that did not run may read recordings: nothing is known
        paths = recording.unused(recorder, self.ran, self.order)
        self.unused = [recorder.shown(path) for path in paths]
        if recorder.mode == "prune":
            deleted, problems = recording.delete(paths, recorder)
            self.deleted = [recorder.shown(path) for path in deleted]
            self.unwritten += [f"--llm-record=prune: could not delete {p}" for p in problems]

    def _narrowed(self, session: pytest.Session) -> list[str]:
        """Why this run did not run every test it collected (none: it did): its unused
        recordings are then not known, and it is no baseline for the next run."""
        option = self.config.option
        narrowed = [
            what
            for what, given in (
                ("-k", getattr(option, "keyword", "")),
                ("-m", getattr(option, "markexpr", "")),
                ("--deselect", getattr(option, "deselect", None)),
                ("--lf", getattr(option, "lf", False)),
                ("--sw", getattr(option, "stepwise", False)),
                ("a test id argument", any("::" in arg for arg in self.config.args)),
                (
                    "deselected tests",
                    self.deselected or self.config.stash.get(DESELECTED_KEY, False),
                ),
                ("a collection error", self.collect_errors),
                ("a stop before the end", session.shouldstop or session.shouldfail),
            )
            if given
        ]
        if len(narrowed) > 1 and "deselected tests" in narrowed:
            narrowed.remove("deselected tests")  # said by the option that deselected them
        if session.exitstatus == pytest.ExitCode.INTERRUPTED:
            narrowed.append("an interruption")
        return narrowed

    def _recording_lines(self) -> list[str]:
        mode = self.settings.record
        if mode == "off":
            return []
        spend = total([*self.stats.values(), *self.auxiliary.rows.values()]).spend
        said = {
            "replay": f"{spend['replayed']} requests replayed, none sent",
            "prune": f"{spend['replayed']} requests replayed, none sent",
            "new": f"{spend['replayed']} requests replayed, {spend['recorded']} sent and recorded",
            "all": f"{spend['recorded']} requests sent and recorded",
        }[mode]
        lines = [f"--llm-record={mode}: {said}"]
        if self.deleted:
            lines.append(f"deleted {checks.counted(len(self.deleted), 'recording')} no test used:")
            lines += [f"  {path}" for path in self.deleted[:20]]
        elif self.unused:
            lines.append(
                f"{checks.counted(len(self.unused), 'recording')} no test used "
                "(delete with --llm-record=prune):"
            )
            lines += [f"  {path}" for path in self.unused[:20]]
        if self.narrowed and self.settings.record == "prune":
            lines.append(
                "deleted nothing: which recordings no test uses is known only after a run of "
                f"every collected test (this one had {', '.join(self.narrowed)})"
            )
        shown = self.deleted or self.unused or []
        if len(shown) > 20:
            lines.append(f"  ... and {len(shown) - 20} more (see the JSON report)")
        return lines

    def _spent(self) -> float | None:
        limits = context.limits()
        if limits is None or limits.budget is None:
            return None
        try:
            return limits.coordinator.spent()
        except pytest.fail.Exception as lost:  # the shared coordinator is gone
            self._lost(str(lost.msg))
            return None
        except Exception as lost:  # a damaged state file: the report goes on without it
            self._lost(_unreadable(lost))
            return None

    def _budget_reached(self) -> bool:
        spent = self._spent()
        budget = self.settings.max_cost
        return spent is not None and budget is not None and spent >= budget

    def _unavailable(self) -> dict[str, str]:
        """Missing keys, and models the HTTP layer found unusable during the run."""
        found = dict(self.settings.unavailable)
        limits = context.limits()
        if limits is not None:
            try:
                found.update(limits.coordinator.all_unavailable())
            except pytest.fail.Exception as lost:  # the shared coordinator is gone
                self._lost(str(lost.msg))
            except Exception as lost:  # a damaged state file: the report goes on without it
                self._lost(_unreadable(lost))
        return found

    def _lost(self, message: str) -> None:
        if message not in self.unwritten:
            self.unwritten.append(message)

    def _unpriced_to_note(self) -> list[str]:
        """Models shown as n/a for cost, said once per model: the pytest cache remembers
        which were said (without a cache, every run says it)."""
        unpriced = [name for name in self.order if name in self.stats and self.stats[name].unpriced]
        cache = getattr(self.config, "cache", None)
        if not unpriced or cache is None:
            return unpriced
        said = cachefile.get(self.config, UNPRICED_CACHE, [])
        said = [name for name in said if isinstance(name, str)] if isinstance(said, list) else []
        new = [name for name in unpriced if name not in said]
        if new:
            cachefile.put(self.config, UNPRICED_CACHE, sorted({*said, *new}))
        return new

    def _split(self, labelled: bool = False) -> tuple[list[str], dict[str, list[str]]]:
        """Tests failed on every model, and on some (test -> its models). ``labelled``
        gives, instead of each model, the id to paste back into pytest (the model is in
        it), and for a repeated test its passes: ``t.py::test_x[sim-weak] 1/3 runs
        passed``."""
        outcomes: dict[str, dict[str, str]] = {}
        labels: dict[tuple[str, str], str] = {}
        for test in self.tests.values():
            if test.get("model_free"):
                continue
            outcomes.setdefault(test["test"], {})[test["model"]] = test["outcome"]
            label = render.pasteable(self.verdict_ids.get(test["nodeid"], test["nodeid"]))
            if "verdict" in test:  # its id is the run that settled it: a real id to paste
                verdict = test["verdict"]
                label += f" ({verdict['passed']}/{checks.counted(verdict['runs'], 'run')} passed)"
            labels[test["test"], test["model"]] = label
        everywhere, some = failure_split(outcomes)
        if labelled:
            some = {t: [labels[t, m] for m in models] for t, models in some.items()}
        return everywhere, some

    # -- output ------------------------------------------------------------------------

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if not self.stats:
            return
        self.price_pending()
        verbosity = self.config.get_verbosity()
        width = None if verbosity > 0 else self.config.get_terminal_writer().fullwidth
        max_rank = render.QUIET_RANK if verbosity < 0 else None
        rows = render.rows_for(self.stats, self.order)
        lines = render.table(rows, width, max_rank)

        def write(line: str, **markup: bool) -> None:
            terminalreporter.write_line(self.redactor.text(line), **markup)

        title = f"llm-matrix: {checks.counted(len(self.stats), 'model')}"
        terminalreporter.write_sep("=", title, bold=True)
        write(lines[0], bold=True)
        for line, (_, stats) in zip(lines[1:], rows, strict=True):
            bad = stats.counts["failed"] + stats.counts["error"]
            write(line, red=bad > 0, green=bad == 0)
        for name, reason in self._unavailable().items():
            write(f"{name}: unavailable: {reason}", yellow=True)
        for line in model_free.lines(self.tests.values(), self.adopted.free or set()):
            write(line, yellow=not line.startswith("  "))
        for line in self.auxiliary.lines():
            write(line)
        for line in self._recording_lines():
            write(line, yellow=line.startswith(("deleted", "  ")) or "no test used" in line)
        if self.comparison is not None and verbosity >= 0:
            for line in render.baseline_lines(self.comparison):
                write(line, red=line.endswith(" worse"), green=line.endswith(" better"))
        for line in self.gates.regression_lines(self.comparison):
            write(line, red=bool(self.comparison and self.comparison["regressions"]))
        if verbosity >= 0 and (unpriced := self._unpriced_to_note()):
            write(
                f"n/a: no known price for {', '.join(unpriced)}; set input_price and "
                "output_price (USD per million tokens) in its config, or price_as to the "
                "listed model id it is priced like"
            )
        everywhere, some = self._split(labelled=True)
        if everywhere and verbosity >= 0:
            write("failed on every model (a test or prompt bug?):", red=True)
            for test in everywhere:
                write(f"  {test}")
        if some and verbosity >= 0:
            write("failed on some models:", yellow=True)
            for labels in some.values():
                for label in labels:
                    write(f"  {label}")
        failed_optional = [
            n
            for n in self.order
            if n in self.optional
            and n in self.stats
            and self.stats[n].counts["failed"] + self.stats[n].counts["error"]
        ]
        if failed_optional:
            write(
                f"optional models (required = false) failed: {', '.join(failed_optional)}; "
                "their failures do not affect the exit status",
                yellow=True,
            )
        if self.settings.max_cost is not None:
            spent = self._spent() or 0.0
            budget = f"--llm-max-cost {checks.dollars(self.settings.max_cost)}"
            if self._budget_reached():
                write(
                    f"{budget} reached: ${spent:.4f} spent, "
                    f"{checks.counted(self.budget_skips, 'model test')} skipped",
                    red=True,
                )
            else:
                write(f"{budget}: ${spent:.4f} spent")
        gate_line = self.gates.gate_line(self.gate_failed)
        if gate_line is not None:
            below = bool(self.gate_failed)
            write(gate_line, red=below, green=not below)
        for problem in self.unwritten:
            write(problem, red=True)

    def build(self, exit_status: int) -> dict[str, Any]:
        """The JSON report (see report_schema.json): plain data, no secrets."""
        unavailable = self._unavailable()
        models: dict[str, Any] = {}
        for name in self.order:
            model = self.models[name]
            stats = self.stats.get(name, ModelStats())
            models[name] = {
                "provider": model.provider,
                "model": model.model,
                "required": model.required,
                "outcomes": dict(stats.counts),
                "pass_rate": stats.pass_rate,
                "runs_passed": stats.runs_passed,
                "runs_judged": stats.runs_judged,
                "pass_rate_interval": list(stats.interval) if stats.interval else None,
                "wall_seconds": stats.span,
                "test_seconds": round(stats.duration, 6),
                **{k: v for k, v in stats.spend.items()},
                "latency_p50": percentile(stats.latencies, 50),
                "latency_p95": percentile(stats.latencies, 95),
                "ttft_p50": percentile(stats.ttft, 50),
                "cost_usd": stats.known_cost,
                "price_sources": [source for source in SOURCES if source in stats.sources],
                "replayed_cost_usd": stats.known_replayed_cost,
                "unavailable": unavailable.get(name),
            }
        everywhere, some = self._split()
        return {
            "version": baseline.REPORT_VERSION,
            "plugin_version": __version__,
            "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "exit_status": exit_status,
            "failures": dict(self.unforgiven),
            "selection": {"models": self.order, "selected_by": self.settings.selected_by},
            "min_pass_rate": self.settings.min_pass_rate,
            "max_cost_usd": self.settings.max_cost,
            "spent_usd": self._spent(),
            "models": models,
            "tests": self._in_order(),
            "transcripts": {
                "chars": self.settings.transcript_chars,
                "budget_mb": self.settings.transcript_budget,
                "dropped_tests": len(self.transcripts.dropped),
            },
            "model_free": sorted(self.adopted.free or ()),
            "auxiliary": self.auxiliary.to_json(),
            "judges": self.auxiliary.to_json(judges=True),
            "failed_everywhere": everywhere,
            "failed_on_some": some,
            "environment": {"python": platform.python_version(), "pytest": pytest.__version__},
            "baseline": self.comparison,
            "recording": None
            if self.settings.record == "off"
            else {
                "mode": self.settings.record,
                "unused": self.unused,
                "deleted": self.deleted,
            },
        }

    def _in_order(self) -> list[dict[str, Any]]:
        """The tests as pytest collected them (one it never said it collected: last)."""
        last = len(self.position)
        return sorted(self.tests.values(), key=lambda test: self.position.get(test["nodeid"], last))

    def _write_outputs(self, exit_status: int) -> None:
        if not self.stats:
            return
        # a test id or a message may hold a lone surrogate (a reply's JSON escape): written
        # as its escape, so that every file, and this plugin reading them back, has text
        report = cast(dict[str, Any], writable(self.redactor.data(self.build(exit_status))))
        self.config.hook.pytest_llm_matrix_report(config=self.config, report=report)
        path = self.settings.report_path
        if path:
            text = json.dumps(self.redactor.data(report), indent=2) + "\n"
            problem = write_file(path, text, append=False)
            if problem:
                self.unwritten.append(f"--llm-report: could not write {problem}")
                self.report_unwritten = True
        if self.settings.html_path:
            text = self.redactor.text(html.render(report))
            problem = write_file(self.settings.html_path, text, append=False)
            if problem:
                self.unwritten.append(f"--llm-html: could not write {problem}")
                self.report_unwritten = True
        cache = getattr(self.config, "cache", None)  # absent with -p no:cacheprovider
        if cache is not None and not self.narrowed:  # the next run's --llm-baseline=last
            cachefile.put(
                self.config,
                baseline.last_report_key(self.order, self.config.args),
                {**report, "tests": [_without_texts(test) for test in report["tests"]]},
            )
        summary_file = os.environ.get("GITHUB_STEP_SUMMARY")
        if summary_file:
            everywhere, some = self._split(labelled=True)
            text = render.markdown(
                render.rows_for(self.stats, self.order),
                self._unavailable(),
                everywhere,
                some,
                self.comparison,
            )
            problem = write_file(summary_file, self.redactor.text(text), append=True)
            if problem:
                self.unwritten.append(f"$GITHUB_STEP_SUMMARY: could not write {problem}")

    def _remember(self) -> None:
        """Durations per test and the number of model tests, for the next run's scheduling
        (longest models first) and ``-n auto`` sizing. Tests not run this time keep their
        old durations, so a ``-k`` run does not wipe them."""
        cache = getattr(self.config, "cache", None)  # absent with -p no:cacheprovider
        if cache is None or not self.tests:
            return
        known = cachefile.get(self.config, DURATIONS_CACHE, {})
        durations = dict(known) if isinstance(known, dict) else {}
        durations.update(
            {k: round(t, 4) for k, t in self.durations.items() if not self.redactor.holds_key(k)}
        )  # (a test id built from a key is not written to the cache)
        cachefile.put(self.config, DURATIONS_CACHE, durations)
        cachefile.put(self.config, MODEL_TESTS_CACHE, len(self.durations))
        known = cachefile.get(self.config, TEST_COSTS_CACHE, {})
        costs = dict(known) if isinstance(known, dict) else {}
        costs.update(
            {
                key: test["cost_usd"]
                for key, test in self.tests.items()
                if test["outcome"] in JUDGED  # it ran: not skipped, not stopped by the budget
                and test["cost_usd"] is not None
                and not self.redactor.holds_key(key)
            }
        )
        cachefile.put(self.config, TEST_COSTS_CACHE, costs)


def category_of(report: pytest.TestReport, failed_subtests: int = 0) -> str:
    """How pytest itself counts one report: passed, failed, error, skipped, xfailed,
    xpassed, or '' (not a result: a passed setup or teardown, a passed subtest).

    Read from the report, not from ``pytest_report_teststatus``, which other plugins answer
    their own way (pytest-sugar gives setup and teardown reports a letter too, so counting
    through it counts a test three times). The rules are pytest's: its runner, skipping and
    subtests plugins; a repeated test's runs follow
    :func:`pytest_llm_matrix.matrix.repeats.status_of`.
    """
    run = getattr(report, RUN_ATTR, None)
    if isinstance(run, dict) and run.get("role") is not None:
        return status_of(run)[0]
    if hasattr(report, "wasxfail") and not report.failed:
        return "xfailed" if report.skipped else "xpassed"
    if report.when in ("setup", "teardown"):
        return "error" if report.failed else "skipped" if report.skipped else ""
    if _is_subtest(report):
        return "" if report.passed else report.outcome
    if report.passed and failed_subtests:
        return "failed"  # pytest fails a test whose subtests failed
    return report.outcome


def _unreadable(error: Exception) -> str:
    return (
        f"llm-matrix: the coordinator's state could not be read ({type(error).__name__}: {error})"
    )


def _is_subtest(report: pytest.TestReport) -> bool:
    """pytest's own subtests (>= 9) and the pytest-subtests plugin's."""
    return type(report).__name__ in ("SubtestReport", "SubTestReport")


def _properties(
    model: str, spend: dict[str, Any], cost: float | None, run: dict[str, Any] | None
) -> list[tuple[str, object]]:
    """What a test's <testcase> carries in --junitxml."""
    properties: list[tuple[str, object]] = [
        ("llm_model", model),
        ("llm_requests", spend.get("requests", 0)),
        ("llm_retries", spend.get("retries", 0)),
        ("llm_input_tokens", spend.get("input_tokens", 0)),
        ("llm_output_tokens", spend.get("output_tokens", 0)),
        ("llm_cost_usd", "n/a" if cost is None else f"{cost:.8f}"),
    ]
    if run is not None:
        properties.append(("llm_run", f"{run['index']}/{run['planned']}"))
    return properties


def _cost(value: object) -> float | None:
    """A remembered cost, if it is one (the cache file may hold anything)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not 0 <= value <= checks.MAX_COST.high:  # also refuses nan; an int compares exactly
        return None
    return float(value)


def _first_line(report: pytest.TestReport) -> str:
    """A failure's (or skip's) first line: its exception and message, or its reason."""
    longrepr = report.longrepr
    crash = getattr(longrepr, "reprcrash", None)
    if crash is not None:
        text = str(crash.message)
    elif isinstance(longrepr, tuple) and len(longrepr) == 3:
        text = str(longrepr[2]).removeprefix("Skipped: ")  # a skip: (path, line, reason)
    else:
        text = str(longrepr or "")
    text = text.strip()
    return text.splitlines()[0][:300] if text else ""


def _failure(report: pytest.TestReport, chars: int) -> str:
    """A failure's message (an assertion's, with its explanation), cut like a transcript's
    texts: the report's longer word than its first line."""
    crash = getattr(report.longrepr, "reprcrash", None)
    text = str(crash.message if crash is not None else report.longrepr or "").strip()
    return transcript.cut(text, max(chars, 300))


def _without_texts(test: dict[str, Any]) -> dict[str, Any]:
    """A test's entry without its transcript: what a baseline needs, in pytest's cache."""
    return {k: v for k, v in test.items() if k not in ("transcript", "verdicts", "failure")}


def _plus(total: float | None, cost: float | None) -> float | None:
    """Costs add up; one unknown cost makes the sum unknown."""
    return None if total is None or cost is None else total + cost


def _merge(total: dict[str, Any], spend: dict[str, Any]) -> None:
    for key, value in spend.items():
        if isinstance(value, list):
            total[key] = [*total.get(key, []), *value]
        elif isinstance(value, int):
            total[key] = total.get(key, 0) + value
