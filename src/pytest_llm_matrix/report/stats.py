"""Per-model and per-test aggregates of a run (pure data, no pytest).

Counts are kept per report, exactly as pytest's terminal counts them, so the table and the
JSON report agree with pytest's own totals with and without xdist.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Iterable, Mapping
from typing import Any, Final

from pytest_llm_matrix.calls.context import NANO, SPEND_COUNTERS

OUTCOMES: Final = ("passed", "failed", "error", "skipped", "xfailed", "xpassed")
#: Outcomes that are a verdict on the model: the pass rate is passed / these.
JUDGED: Final = ("passed", "failed", "error")


def count_of(spend: Mapping[str, object], key: str) -> int:
    value = spend.get(key, 0)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def tokens_of(spend: Mapping[str, object]) -> tuple[int, int, int]:
    """(input, output, cached input) tokens of a report's spend."""
    return (
        count_of(spend, "input_tokens"),
        count_of(spend, "output_tokens"),
        count_of(spend, "cached_tokens"),
    )


def reported_of(spend: Mapping[str, object]) -> tuple[float | None, tuple[int, int, int]]:
    """What a report's answers said they cost (USD; None when none did), and the tokens of
    those answers: priced already, so taken off the tokens still to price."""
    if not count_of(spend, "reported"):
        return None, (0, 0, 0)
    return count_of(spend, "reported_cost_nanousd") / NANO, (
        count_of(spend, "reported_input_tokens"),
        count_of(spend, "reported_output_tokens"),
        count_of(spend, "reported_cached_tokens"),
    )


def unreported_tokens_of(spend: Mapping[str, object]) -> tuple[int, int, int]:
    """(input, output, cached input) tokens of a report's answers that did not say their
    cost: priced from the model's prices."""
    _, reported = reported_of(spend)
    return tuple(  # type: ignore[return-value]
        max(total - part, 0) for total, part in zip(tokens_of(spend), reported, strict=True)
    )


def replayed_tokens_of(spend: Mapping[str, object]) -> tuple[int, int, int]:
    """(input, output, cached input) tokens of a report's replayed answers: what the
    recordings cost when they were made, not spent now."""
    return (
        count_of(spend, "replayed_input_tokens"),
        count_of(spend, "replayed_output_tokens"),
        count_of(spend, "replayed_cached_tokens"),
    )


def floats_of(values: object) -> list[float]:
    if not isinstance(values, list):
        return []
    return [float(v) for v in values if isinstance(v, int | float) and not isinstance(v, bool)]


def wilson_interval(passed: int, runs: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """The Wilson score interval for a pass rate (95% by default); (0, 1) for no runs."""
    if runs <= 0:
        return 0.0, 1.0
    share = passed / runs
    denominator = 1 + z * z / runs
    centre = (share + z * z / (2 * runs)) / denominator
    half = z * math.sqrt(share * (1 - share) / runs + z * z / (4 * runs * runs)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (0-100) by linear interpolation, None for no values."""
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


@dataclasses.dataclass
class ModelStats:
    """Outcome counts, time, spend and cost for one model."""

    counts: dict[str, int] = dataclasses.field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    duration: float = 0.0  # summed over tests and phases
    start: float | None = None  # epoch seconds of the first test's start
    stop: float | None = None  # ... and of the last test's end
    spend: dict[str, int] = dataclasses.field(
        default_factory=lambda: dict.fromkeys(SPEND_COUNTERS, 0)
    )
    latencies: list[float] = dataclasses.field(default_factory=list)
    ttft: list[float] = dataclasses.field(default_factory=list)
    cost: float = 0.0
    unpriced: bool = False  # some tokens had no known price: the cost is not known
    #: where the cost came from (report.cost.SOURCES): the answers, configured prices, ...
    sources: set[str] = dataclasses.field(default_factory=set)
    replayed_cost: float = 0.0  # what the replayed answers cost when they were recorded
    replayed_unpriced: bool = False
    runs_passed: int = 0  # runs that passed, of ...
    runs_judged: int = 0  # ... runs that passed, failed or errored (a plain test is one run)
    repeated: bool = False  # some tests ran repeatedly: the pass rate gets an interval
    #: the comparison with a baseline's run of this model (see baseline.compare), if any
    change: Mapping[str, Any] | None = None
    #: latency p50 and p95 and ttft p50 known without the samples (a merged report's)
    known_percentiles: Mapping[str, float | None] | None = None

    def latency(self, q: int) -> float | None:
        if self.known_percentiles is not None:
            return self.known_percentiles.get(f"latency_p{q}")
        return percentile(self.latencies, q)

    def ttft_p50(self) -> float | None:
        if self.known_percentiles is not None:
            return self.known_percentiles.get("ttft_p50")
        return percentile(self.ttft, 50)

    def add(self, outcome: str, duration: float, start: float | None, stop: float | None) -> None:
        if outcome in self.counts:
            self.counts[outcome] += 1
        self.duration += duration
        if not (start and stop):  # xdist's report of a crashed worker has neither (0)
            return
        self.start = start if self.start is None else min(self.start, start)
        self.stop = stop if self.stop is None else max(self.stop, stop)

    def add_spend(self, spend: Mapping[str, object]) -> None:
        for key in SPEND_COUNTERS:
            self.spend[key] += count_of(spend, key)
        self.latencies.extend(floats_of(spend.get("latencies")))
        self.ttft.extend(floats_of(spend.get("ttft")))

    def add_cost(self, cost: float | None, tokens: int, sources: Iterable[str] = ()) -> None:
        self.sources.update(sources)
        if cost is None:
            self.unpriced = self.unpriced or tokens > 0
        else:
            self.cost += cost

    def add_replayed_cost(self, cost: float | None, tokens: int) -> None:
        if cost is None:
            self.replayed_unpriced = self.replayed_unpriced or tokens > 0
        else:
            self.replayed_cost += cost

    def add_run(self, passed: bool) -> None:
        self.runs_passed += passed
        self.runs_judged += 1

    @property
    def pass_rate(self) -> float | None:
        """Runs passed / runs that passed, failed or errored; None when none did. Without
        repeats every test is one run, so this is passed / (passed + failed + error)."""
        return self.runs_passed / self.runs_judged if self.runs_judged else None

    @property
    def interval(self) -> tuple[float, float] | None:
        """The pass rate's 95% Wilson interval, where repeats were run."""
        if not self.repeated or not self.runs_judged:
            return None
        return wilson_interval(self.runs_passed, self.runs_judged)

    @property
    def span(self) -> float | None:
        """Wall-clock time from the model's first test's start to its last test's end."""
        if self.start is None or self.stop is None:
            return None
        return self.stop - self.start

    @property
    def known_cost(self) -> float | None:
        """The cost, or None when some tokens had no price (shown as n/a, never $0)."""
        return None if self.unpriced else self.cost

    @property
    def known_replayed_cost(self) -> float | None:
        return None if self.replayed_unpriced else self.replayed_cost

    def remove(self, part: ModelStats) -> None:
        """Take off what ``part`` (one test's reports) added to the outcomes, test time and
        runs (its wall-clock span stays: the test did run then)."""
        for key in OUTCOMES:
            self.counts[key] -= part.counts[key]
        self.duration -= part.duration
        self.runs_passed -= part.runs_passed
        self.runs_judged -= part.runs_judged

    def merged(self, other: ModelStats) -> ModelStats:
        starts = [s for s in (self.start, other.start) if s is not None]
        stops = [s for s in (self.stop, other.stop) if s is not None]
        return ModelStats(
            counts={k: self.counts[k] + other.counts[k] for k in OUTCOMES},
            duration=self.duration + other.duration,
            start=min(starts) if starts else None,
            stop=max(stops) if stops else None,
            spend={k: self.spend[k] + other.spend[k] for k in SPEND_COUNTERS},
            latencies=self.latencies + other.latencies,
            ttft=self.ttft + other.ttft,
            cost=self.cost + other.cost,
            unpriced=self.unpriced or other.unpriced,
            sources=self.sources | other.sources,
            replayed_cost=self.replayed_cost + other.replayed_cost,
            replayed_unpriced=self.replayed_unpriced or other.replayed_unpriced,
            runs_passed=self.runs_passed + other.runs_passed,
            runs_judged=self.runs_judged + other.runs_judged,
            repeated=self.repeated or other.repeated,
        )


def total(stats: Iterable[ModelStats]) -> ModelStats:
    result = ModelStats()
    for item in stats:
        result = result.merged(item)
    return result


def failure_split(
    outcomes: Mapping[str, Mapping[str, str]],
) -> tuple[list[str], dict[str, list[str]]]:
    """Tests that failed on every model they ran on (two or more: likely a test or prompt
    bug), and tests that failed only on some models (test -> those models).

    ``outcomes`` maps a test's base id to {model: "passed" | "failed" | ...}.
    """
    everywhere: list[str] = []
    some: dict[str, list[str]] = {}
    for test, by_model in outcomes.items():
        judged = {m: o for m, o in by_model.items() if o in JUDGED}
        failed = [m for m, o in judged.items() if o != "passed"]
        if not failed:
            continue
        if len(judged) >= 2 and len(failed) == len(judged):
            everywhere.append(test)
        else:
            some[test] = failed
    return everywhere, some
