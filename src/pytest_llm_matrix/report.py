"""Per-model results: aggregation (pure), rendering (pure) and the controller plugin.

Workers put the model's alias on every TestReport as a plain ``str`` attribute; the
controller counts reports per model exactly as pytest's terminal does (through
``pytest_report_teststatus``), so the table agrees with pytest's own totals with and
without xdist.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Final

import pytest

from pytest_llm_matrix import context

if TYPE_CHECKING:
    from pytest_llm_matrix.options import Settings

#: Name of the TestReport attribute that carries the model's alias across xdist.
REPORT_ATTR: Final = "llm_model"
#: Name of the TestReport attribute with what the test spent (a dict of builtins).
SPEND_ATTR: Final = "llm_spend"
OUTCOMES: Final = ("passed", "failed", "error", "skipped", "xfailed", "xpassed")


SPEND_TOTALS: Final = context.SPEND_COUNTERS


@dataclasses.dataclass
class ModelStats:
    """Outcome counts, summed test time (all phases), spend and cost for one model."""

    counts: dict[str, int] = dataclasses.field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    duration: float = 0.0
    spend: dict[str, int] = dataclasses.field(
        default_factory=lambda: dict.fromkeys(SPEND_TOTALS, 0)
    )
    latencies: list[float] = dataclasses.field(default_factory=list)
    ttft: list[float] = dataclasses.field(default_factory=list)
    cost: float = 0.0
    unpriced: bool = False  # some tokens had no known price: the cost is not known

    def add(self, outcome: str, duration: float) -> None:
        if outcome in self.counts:
            self.counts[outcome] += 1
        self.duration += duration

    def add_spend(self, spend: Mapping[str, object]) -> None:
        for key in SPEND_TOTALS:
            self.spend[key] += _count(spend, key)
        self.latencies.extend(_floats(spend.get("latencies")))
        self.ttft.extend(_floats(spend.get("ttft")))

    def add_cost(self, cost: float | None, tokens: int) -> None:
        if cost is None:
            self.unpriced = self.unpriced or tokens > 0
        else:
            self.cost += cost

    @property
    def pass_rate(self) -> float | None:
        """passed / (passed + failed + error); None when nothing ran to a verdict."""
        judged = self.counts["passed"] + self.counts["failed"] + self.counts["error"]
        return self.counts["passed"] / judged if judged else None

    def merged(self, other: ModelStats) -> ModelStats:
        return ModelStats(
            counts={k: self.counts[k] + other.counts[k] for k in OUTCOMES},
            duration=self.duration + other.duration,
            spend={k: self.spend[k] + other.spend[k] for k in SPEND_TOTALS},
            latencies=self.latencies + other.latencies,
            ttft=self.ttft + other.ttft,
            cost=self.cost + other.cost,
            unpriced=self.unpriced or other.unpriced,
        )


def _count(spend: Mapping[str, object], key: str) -> int:
    value = spend.get(key, 0)
    return value if isinstance(value, int) else 0


def _floats(values: object) -> list[float]:
    if not isinstance(values, list):
        return []
    return [float(v) for v in values if isinstance(v, int | float)]


def format_rate(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.1%}"


def format_seconds(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.2f}s"
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)}m{rest:04.1f}s"


def summary_rows(
    stats: Mapping[str, ModelStats], order: Iterable[str]
) -> tuple[list[str], list[list[str]]]:
    """Header and rows (config order, then a total row) as cells of text."""
    names = [name for name in order if name in stats]
    shown = [
        o
        for o in OUTCOMES
        if o in ("passed", "failed", "error", "skipped") or any(stats[n].counts[o] for n in names)
    ]
    header = [
        "model",
        *shown,
        "pass rate",
        "test time",
        "requests",
        "retries",
        "429s",
        "tokens in",
        "tokens out",
        "cost",
    ]
    rows = []
    total = ModelStats()
    for name in names:
        row_stats = stats[name]
        total = total.merged(row_stats)
        rows.append(_row(name, row_stats, shown))
    if len(names) > 1:
        rows.append(_row("total", total, shown))
    return header, rows


def _row(name: str, stats: ModelStats, shown: list[str]) -> list[str]:
    spend = stats.spend
    return [
        name,
        *(str(stats.counts[o]) for o in shown),
        format_rate(stats.pass_rate),
        format_seconds(stats.duration),
        str(spend["requests"]),
        str(spend["retries"]),
        str(spend["rate_limited"]),
        f"{spend['input_tokens']:,}",
        f"{spend['output_tokens']:,}",
        _cost(stats),
    ]


def _cost(stats: ModelStats) -> str:
    from pytest_llm_matrix.cost import format_usd

    if not (stats.spend["input_tokens"] or stats.spend["output_tokens"]):
        return "-"
    return format_usd(None if stats.unpriced else stats.cost)


def format_table(header: list[str], rows: list[list[str]]) -> list[str]:
    """Align cells: the first column left, the rest right."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = (cell.rjust(width) for cell, width in zip(cells[1:], widths[1:], strict=True))
        return "  ".join([first, *rest]).rstrip()

    return [line(header), *(line(r) for r in rows)]


class Summary:
    """Controller-side plugin: counts reports per model and prints the table.

    It also keeps failures of optional models (``required = false``) out of the exit
    status: they show in the table, but only failures that matter fail the run.
    """

    def __init__(self, config: pytest.Config, settings: Settings) -> None:
        self.config = config
        self.models = {m.name: m for m in settings.models}
        self.order = list(settings.selected)
        self.unavailable = dict(settings.unavailable)
        self.optional = {m.name for m in settings.models if not m.required}
        self.stats: dict[str, ModelStats] = {}
        self.failures = {"required": 0, "optional": 0}
        self.durations: dict[str, float] = {}  # per model test, all phases
        self.to_price: list[tuple[str, tuple[int, int, int]]] = []  # (model, tokens) per report

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        model = getattr(report, REPORT_ATTR, None)
        if report.failed:
            self.failures["optional" if model in self.optional else "required"] += 1
        if model is None:
            return
        category, letter, word = self.config.hook.pytest_report_teststatus(
            report=report, config=self.config
        )
        stats = self.stats.setdefault(model, ModelStats())
        counted = (letter or word) and getattr(report, "count_towards_summary", True)
        stats.add(category if counted else "", report.duration)
        self.durations[report.nodeid] = self.durations.get(report.nodeid, 0.0) + report.duration
        spend = getattr(report, SPEND_ATTR, None)
        if isinstance(spend, dict) and model in self.models:
            stats.add_spend(spend)

            tokens = (
                _count(spend, "input_tokens"),
                _count(spend, "output_tokens"),
                _count(spend, "cached_tokens"),
            )
            if any(tokens):
                self.to_price.append((str(model), tokens))

    def _price(self) -> None:
        """Price every report's tokens, here in the controller and only once the tests are
        over: workers never load the price data, and no test's timeout pays for it."""
        if not self.to_price:
            return
        from pytest_llm_matrix.cost import price_usd

        for name, (input_tokens, output_tokens, cached_tokens) in self.to_price:
            model = self.models[name]
            cost = price_usd(
                model.provider,
                model.model,
                input_tokens,
                output_tokens,
                cached_tokens,
                input_price=model.input_price,
                output_price=model.output_price,
            )
            self.stats[name].add_cost(cost, input_tokens + output_tokens)
        self.to_price.clear()

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if not self.stats:
            return
        self._price()
        header, rows = summary_rows(self.stats, self.order)
        lines = format_table(header, rows)
        terminalreporter.write_sep("=", f"llm-matrix: {len(self.stats)} models", bold=True)
        terminalreporter.write_line(lines[0], bold=True)
        for line, row in zip(lines[1:], rows, strict=True):
            failed = int(row[2]) + int(row[3])
            terminalreporter.write_line(line, red=failed > 0, green=failed == 0)
        for name, reason in self._unavailable().items():
            terminalreporter.write_line(f"{name}: unavailable: {reason}", yellow=True)
        if any(stats.unpriced for stats in self.stats.values()):
            terminalreporter.write_line(
                "n/a: no known price for the model; set input_price and output_price "
                "(USD per million tokens) in its config"
            )
        failed_optional = [
            name
            for name in self.order
            if name in self.optional
            and name in self.stats
            and self.stats[name].counts["failed"] + self.stats[name].counts["error"]
        ]
        if failed_optional:
            terminalreporter.write_line(
                f"optional models (required = false) failed: {', '.join(failed_optional)}; "
                "their failures do not affect the exit status",
                yellow=True,
            )

    def _remember(self) -> None:
        """Durations per test and the number of model tests, for the next run's scheduling
        (longest models first) and ``-n auto`` sizing. Tests not run this time keep their
        old durations, so a ``-k`` run does not wipe them."""
        cache = getattr(self.config, "cache", None)  # absent with -p no:cacheprovider
        if cache is None or not self.durations:
            return
        from pytest_llm_matrix.session import DURATIONS_CACHE, MODEL_TESTS_CACHE

        known = cache.get(DURATIONS_CACHE, {})
        durations = dict(known) if isinstance(known, dict) else {}
        durations.update({k: round(v, 4) for k, v in self.durations.items()})
        cache.set(DURATIONS_CACHE, durations)
        cache.set(MODEL_TESTS_CACHE, len(self.durations))

    def _unavailable(self) -> dict[str, str]:
        """Missing keys, and models the HTTP layer found unusable during the run."""
        found = dict(self.unavailable)
        limits = context.limits()
        if limits is not None:
            found.update(limits.coordinator.all_unavailable())
        return found

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        self._remember()
        only_optional = self.failures["optional"] and not self.failures["required"]
        if exitstatus == pytest.ExitCode.TESTS_FAILED and only_optional:
            session.exitstatus = pytest.ExitCode.OK
