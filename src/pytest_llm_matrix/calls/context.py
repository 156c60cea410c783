"""Process-wide state the HTTP layer reads: the session's limits and the running test.

An xdist worker (or a plain pytest process) runs one test at a time, so "the current
test" is a module global rather than a context variable: requests made from threads or
tasks the test starts are still counted against it. Everything recorded is a plain
builtin, ready to ride on a TestReport across xdist.
"""

from __future__ import annotations

import dataclasses
import json
import os
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import pytest

from pytest_llm_matrix.config import checks

if TYPE_CHECKING:
    from pytest_llm_matrix.calls.limits import Coordinator


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """How hard the transport tries. ``attempts`` counts the first try."""

    attempts: int = 4
    max_wait: float = 60.0
    backoff_initial: float = 0.5
    backoff_max: float = 8.0


@dataclasses.dataclass
class Limits:
    """What every process of the session shares: the coordination directory and caps."""

    directory: Path
    global_cap: int | None
    policy: RetryPolicy
    budget: float | None = None  # USD for the whole session (--llm-max-cost)
    #: Where an xdist worker keeps its running test's spend, for the controller to read
    #: should the worker crash (None: not a worker)
    journal: Journal | None = None
    #: USD per token (input, output, cached input) by model alias; None: no known price
    rates: Mapping[str, tuple[float, float, float] | None] = dataclasses.field(default_factory=dict)
    #: --llm-coordinator: the Redis the run's jobs share (None: this machine's files), and
    #: the run id naming the run's state in it
    shared: str | None = None
    run_id: str = ""
    session: str = ""  # this session's id: repeated tests' records are its own
    _coordinator: Coordinator | None = None
    _lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)

    @property
    def coordinator(self) -> Coordinator:
        """Created on first use: runs without model tests never open its files."""
        with self._lock:
            if self._coordinator is None and self.shared is not None:
                # lazy: the Redis client loads only for a run that shares its state
                from pytest_llm_matrix.calls.redis_coordinator import RedisCoordinator

                self._coordinator = RedisCoordinator(
                    self.shared, self.run_id, self.global_cap, session=self.session
                )
            elif self._coordinator is None:
                # lazy: the file coordinator loads only when a test first needs it
                from pytest_llm_matrix.calls.limits import FileCoordinator

                self._coordinator = FileCoordinator(self.directory, self.global_cap)
            return self._coordinator

    def close(self) -> None:
        if self._coordinator is not None:
            self._coordinator.close()
        if self.journal is not None:
            self.journal.close()


#: What a test's usage travels on, across xdist to the report: attributes of its TestReport.
#: The model's alias (set on every model test's reports).
REPORT_ATTR: Final = "llm_model"
#: What the test spent: a dict of builtins, SPEND_COUNTERS plus cost.
SPEND_ATTR: Final = "llm_spend"
#: Marks a test skipped because the session's budget was spent.
BUDGET_ATTR: Final = "llm_budget_skip"

#: A reported cost is counted in billionths of a dollar: spend counters are whole numbers
#: (added up across workers and merged reports exactly).
NANO: Final = 1_000_000_000

SPEND_COUNTERS = (
    "requests",  # sent to the model (see recording: replayed ones are not)
    "replayed",  # answered from a recording
    "recorded",  # sent and recorded
    "replayed_input_tokens",  # the tokens of replayed answers: what the recordings cost
    "replayed_output_tokens",
    "replayed_cached_tokens",
    "attempts",
    "retries",
    "rate_limited",
    "timeouts",
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "reported",  # answers that said what they cost (a gateway's header, a usage field)
    "reported_cost_nanousd",  # what they said, summed, in billionths of a dollar
    "reported_input_tokens",  # their tokens (in the counts above too): already priced
    "reported_output_tokens",
    "reported_cached_tokens",
)


#: A journal holds one test's spend: a few hundred bytes; a larger file is not one.
JOURNAL_BYTES: Final = 1 << 20


def journal_path(state_dir: str, worker: str) -> str:
    """Where worker ``worker`` (``gw0``) keeps its running test's spend (see Journal)."""
    return f"{state_dir}/spend-{worker}.json"


class Journal:
    """The running test's spend not yet on a report, in a file of the session's state
    directory, so that a crashed worker's requests are not lost (the controller reads it).

    Rewritten in place after every request with one ``pwrite`` on a descriptor kept open: a
    process dies between system calls, so a reader finds the whole entry. A shorter entry
    is padded with spaces over the longer one before it (JSON allows trailing spaces).
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd = -1
        self._size = 0
        self._lock = threading.Lock()  # a test's threads finish requests concurrently
        self._pid = os.getpid()
        self._off = False

    def write(self, nodeid: str, spend: Mapping[str, Any]) -> None:
        if self._off or os.getpid() != self._pid:
            return  # given up, or a process the test forked (its spend is not the worker's)
        data = json.dumps({"nodeid": nodeid, "spend": spend}).encode()
        with self._lock:
            try:
                if self._fd < 0:
                    self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
                os.pwrite(self._fd, data.ljust(self._size), 0)
            except OSError:  # the state directory is gone: no crash recovery, no failure
                self._off = True
                return
            self._size = max(self._size, len(data))

    @staticmethod
    def read(path: str, nodeid: str) -> dict[str, Any] | None:
        """What the test ``nodeid`` spent before its worker died, if anything."""
        # lazy: read only when a worker crashed
        from pytest_llm_matrix.config.jsonfile import JSONFileError, read_json

        try:
            entry = read_json(path, what="the journal", max_bytes=JOURNAL_BYTES)
        except (OSError, JSONFileError):
            return None
        if not isinstance(entry, dict) or entry.get("nodeid") != nodeid:
            return None
        spend = entry.get("spend")
        return spend if isinstance(spend, dict) and spend.get("attempts") else None

    def close(self) -> None:
        with self._lock:
            fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)


#: On the reports of a test that llm_sdks makes a model test: whether it has sent (or tried
#: to send) a request to the model under test (see pytest_llm_matrix.report.model_free).
REACHED_ATTR: Final = "llm_reached"
#: What a test's requests sent and got (see pytest_llm_matrix.calls.transcript):
#: {"exchanges": [...], "more": n, "verdicts": [...]}.
TRANSCRIPT_ATTR: Final = "llm_transcript"
#: What a test's auxiliary requests spent (embeddings, a judge: requests the code under test
#: sends for side jobs, see pytest_llm_matrix.adoption): {name: {"spend": ..., "about": ...}}.
AUX_ATTR: Final = "llm_aux"


def _empty() -> dict[str, Any]:
    spend: dict[str, Any] = dict.fromkeys(SPEND_COUNTERS, 0)
    spend["latencies"] = []
    spend["ttft"] = []
    return spend


class Tally:
    """Counters and timings of requests, for one row of the report: the model under test's,
    or an auxiliary destination's (``about`` says what it is, in builtins)."""

    def __init__(self, lock: threading.Lock, about: Mapping[str, Any] | None = None) -> None:
        self._lock = lock
        self.about = dict(about or {})
        self.spend = _empty()

    def count(self, **amounts: int) -> None:
        with self._lock:
            for key, amount in amounts.items():
                self.spend[key] += amount

    def record(self, key: str, value: float) -> None:
        """Append a latency or time-to-first-token, in seconds."""
        with self._lock:
            self.spend[key].append(round(value, 6))


class TestContext:
    """The running test: its deadline, and what it has spent so far."""

    __test__ = False  # not a test class, whatever pytest's python_classes says

    def __init__(self, nodeid: str | None = None, model: str | None = None) -> None:
        self.nodeid = nodeid
        self.model = model  # the alias of the model under test (None: a test without one)
        self.refused_by_budget = False  # a request (or the test) was refused: budget spent
        self.reached = False  # a request to the model under test was made (sent or not)
        self.deadline: float | None = None  # time.monotonic() value
        self.timeout: float | None = None  # the configured seconds behind the deadline
        self.timeout_source = "timeout"
        self._lock = threading.Lock()
        self.main = Tally(self._lock)
        self.auxiliary: dict[str, Tally] = {}  # by the name of its row in the report
        self.closers: list[Callable[[], None]] = []
        #: (node id, model alias) -> its recordings (see recording)
        self.tapes: dict[tuple[str, str], Any] = {}
        #: what its requests sent and got (see transcript), and how many more were not kept
        self.transcript: list[dict[str, Any]] = []
        self.transcript_more = 0
        #: the judge's verdicts on its answers (see pytest_llm_matrix.calls.judge)
        self.verdicts: list[dict[str, Any]] = []

    def close_streams(self) -> None:
        """Free what the test left open (an unclosed stream holds a slot); each closes once."""
        for close in self.closers:
            close()

    def set_deadline(self, timeout: float, source: str = "timeout") -> None:
        self.timeout = timeout
        self.timeout_source = source
        self.deadline = time.monotonic() + timeout

    def time_left(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.monotonic()

    def tally(self, account: str | None, about: Mapping[str, Any] | None = None) -> Tally:
        """Where a request is counted: the model under test's row (``account`` None), or
        the auxiliary row ``account``."""
        if account is None:
            return self.main
        with self._lock:
            found = self.auxiliary.get(account)
            if found is None:
                found = self.auxiliary[account] = Tally(self._lock, about)
            return found

    def take(self) -> dict[str, Any] | None:
        """What was spent since the last call (None if nothing), and start afresh."""
        with self._lock:
            spend, self.main.spend = self.main.spend, _empty()
        if not (spend["attempts"] or spend["requests"] or spend["replayed"]):
            return None
        checkpoint(self)  # it is on a report now: a crash must not count it again
        return spend

    def take_auxiliary(self) -> dict[str, Any] | None:
        """What the auxiliary requests spent since the last call, by row (None if nothing)."""
        taken: dict[str, Any] = {}
        with self._lock:
            for name, tally in self.auxiliary.items():
                spend, tally.spend = tally.spend, _empty()
                if spend["attempts"] or spend["requests"] or spend["replayed"]:
                    taken[name] = {"spend": spend, "about": dict(tally.about)}
        return taken or None

    def room(self, most: int) -> bool:
        """Whether the transcript keeps another request (its first ``most`` are kept); one
        it does not keep is counted."""
        with self._lock:
            if len(self.transcript) < most:
                return True
            self.transcript_more += 1
            return False

    def note(self, entry: dict[str, Any], most: int) -> None:
        """Add a request to the transcript: its first ``most`` requests are kept."""
        with self._lock:
            if len(self.transcript) < most:
                self.transcript.append(entry)
            else:
                self.transcript_more += 1

    def judged(self, judge: str, verdict: dict[str, Any]) -> None:
        """A verdict of ``judge`` (its reason cut like a transcript's texts): on its last
        request in the transcript, and the test's."""
        with self._lock:
            self.verdicts.append(verdict)
            for entry in reversed(self.transcript):
                if entry["role"] == "judge" and entry["model"] == judge:
                    entry.setdefault("verdict", {k: v for k, v in verdict.items() if k != "judge"})
                    break

    def take_transcript(self) -> tuple[list[dict[str, Any]], int, list[dict[str, Any]]]:
        """The transcript, the requests not kept and the verdicts since the last call."""
        with self._lock:
            taken = self.transcript, self.transcript_more, self.verdicts
            self.transcript, self.transcript_more, self.verdicts = [], 0, []
        return taken

    def counters(self) -> dict[str, int]:
        """The counters spent since the last :meth:`take` (not the latencies: a journal
        entry stays the same size however many requests a test makes)."""
        with self._lock:
            return {key: self.main.spend[key] for key in SPEND_COUNTERS}


_limits: Limits | None = None
_current: TestContext | None = None
_recorder: Any = None  # the session's recording.Recorder, if it records or replays
_rewrite_model = False  # --llm-rewrite-model: see exchange.Exchange._model_checked


def rewrite_model() -> bool:
    return _rewrite_model


def set_rewrite_model(value: bool) -> None:
    global _rewrite_model
    _rewrite_model = value


def configure(limits: Limits | None) -> None:
    global _limits
    if _limits is not None and limits is not _limits:
        _limits.close()
    _limits = limits


def limits() -> Limits | None:
    return _limits


def set_recorder(recorder: Any) -> None:
    """Kept here, with the rest of the process's state, by :mod:`.recording`."""
    global _recorder
    _recorder = recorder


def recorder() -> Any:
    return _recorder


def refusal(model: str) -> str | None:
    """Why no request to ``model`` may go out any more, or None: the model was found
    unavailable, or the session's cost budget is spent. Checked at test setup and before
    every attempt."""
    limits = _limits
    if limits is None:
        return None
    coordinator = limits.coordinator
    if (reason := coordinator.unavailable(model)) is not None:
        return f"{model} is unavailable: {reason}"
    if limits.budget is not None and (spent := coordinator.spent()) >= limits.budget:
        if _current is not None:
            _current.refused_by_budget = True
        return (
            f"the cost budget of {checks.dollars(limits.budget)} is spent (${spent:.4f} so far, "
            "--llm-max-cost)"
        )
    return None


def refuse(model: str, *, claim: bool = True) -> None:
    """Stop the test if no request to ``model`` may go out (see :func:`refusal`): skip it,
    or, for the first test of a model whose key check found the key refused, fail it with
    the reason, as a refused first request would have (a wrong key must not pass as a run
    of skips). ``claim=False`` (a test that ``llm_sdks`` made a model test, which may never
    call the model): while that first failure is unclaimed the test runs, and its first call
    to the model claims it."""
    __tracebackhide__ = True
    reason = refusal(model)
    if reason is None:
        return
    if _limits is not None and _limits.coordinator.record(claim_record(model)) == UNCLAIMED:
        if not claim:
            return
        current = _current.nodeid if _current is not None else None
        token = f"{_limits.session}:{os.getpid()}:{threading.get_ident()}:{current}"
        if _claim_failure(_limits.coordinator, model, token):
            pytest.fail(f"{reason}; its remaining tests are skipped", pytrace=False)
    pytest.skip(reason)


#: The shared record of a model its key check refused (see :mod:`.keycheck`) holds this
#: until its first test claims it.
UNCLAIMED: Final = "unclaimed"


def claim_record(model: str) -> str:
    return f"key check failed: {model}"


def _claim_failure(coordinator: Coordinator, model: str, token: str) -> bool:
    """Whether this test is the first of ``model`` to meet the unavailable mark its key
    check set: that test fails with the reason, the rest are skipped. One claim per
    session, across its processes."""
    name = claim_record(model)
    claimed = coordinator.update_record(name, lambda old: token if old == UNCLAIMED else old or "")
    return claimed == token


#: The tests a test's own session runs inside of (an in-process pytester run in a model
#: test): each gets its context back when the inner one ends.
_outer: list[TestContext | None] = []


def begin(nodeid: str | None = None, model: str | None = None) -> TestContext:
    global _current
    _outer.append(_current)
    _current = TestContext(nodeid, model)
    return _current


def checkpoint(ctx: TestContext | None) -> None:
    """Save what ``ctx`` has spent so far to the worker's journal (if it keeps one)."""
    limits = _limits
    if limits is None or limits.journal is None or ctx is None or ctx.nodeid is None:
        return
    limits.journal.write(ctx.nodeid, ctx.counters())


def end() -> None:
    """The test is over: free whatever it left open (an unclosed stream holds a slot)."""
    global _current
    ctx, _current = _current, (_outer.pop() if _outer else None)
    if ctx is not None:
        ctx.close_streams()


def current() -> TestContext | None:
    return _current
