"""The gates on a run's exit status: ``--llm-min-pass-rate`` (each required model's pass
rate) and ``--llm-fail-on-regression`` (no required model significantly worse than in
``--llm-baseline``).

Judged and said the same way by a pytest run (:class:`.summary.Summary`) and by a merge of
its jobs' reports (``python -m pytest_llm_matrix merge``), so that the merged run exits as
the run that was not split would have: plain data in, a verdict and lines out.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Container, Mapping
from typing import Any

from pytest_llm_matrix.report import baseline, render


@dataclasses.dataclass(frozen=True)
class Gates:
    """A run's gates, as its options give them."""

    min_pass_rate: float | None = None
    #: the report to compare with, and where it came from (said in the comparison)
    baseline: tuple[dict[str, Any], str] | None = None
    fail_on_regression: bool = False

    def below(
        self, pass_rates: Mapping[str, float | None], optional: Container[str]
    ) -> dict[str, float | None]:
        """The required models whose pass rate is below ``--llm-min-pass-rate``, with their
        rates, in the order of ``pass_rates``; none without the gate. A model with no run
        judged has no pass rate: nothing to hold against it."""
        gate = self.min_pass_rate
        if gate is None:
            return {}
        return {
            name: rate
            for name, rate in pass_rates.items()
            if name not in optional and rate is not None and rate < gate
        }

    def forgiven(self, plain: int, required: int, below: Mapping[str, object]) -> bool:
        """Whether a run's failures are all forgiven: optional models', or, with the gate,
        single failures of required models that meet it. ``plain``: failures no gate
        forgives (a test without a model); ``required``: required models' failures;
        ``below``: see :meth:`below`."""
        model_failures_count = self.min_pass_rate is None and required
        return not plain and not model_failures_count and not below

    def compare(self, report: Mapping[str, Any]) -> dict[str, Any] | None:
        """The ``baseline`` section of ``report`` (see :func:`.baseline.compare`); None
        without a baseline."""
        if self.baseline is None:
            return None
        document, source = self.baseline
        return baseline.compare(report, document, source)

    def status(
        self, status: int, below: Mapping[str, object], comparison: Mapping[str, Any] | None
    ) -> int:
        """The exit status of a run that ended with ``status``, judged by the gates: a run
        that passed fails (1) when a required model is below the gate, or, with
        ``--llm-fail-on-regression``, significantly worse than in the baseline."""
        regressed = self.fail_on_regression and comparison is not None and comparison["regressions"]
        return 1 if status == 0 and (below or regressed) else status

    def gate_line(self, below: Mapping[str, float | None]) -> str | None:
        """``--llm-min-pass-rate 80%: below it: sim-weak 66.7%``; None without the gate."""
        gate = self.min_pass_rate
        if gate is None:
            return None
        shown = ", ".join(f"{name} {render.format_rate(rate)}" for name, rate in below.items())
        verdict = f"below it: {shown}" if shown else "every required model meets it"
        return f"--llm-min-pass-rate {gate:.0%}: {verdict}"

    def regression_lines(self, comparison: Mapping[str, Any] | None) -> list[str]:
        """What ``--llm-fail-on-regression`` found: each required model significantly
        worse, with both rates, or that none is."""
        if comparison is None or not self.fail_on_regression:
            return []
        worse = comparison["regressions"]
        if not worse:
            return ["--llm-fail-on-regression: no required model is significantly worse"]
        lines = []
        for name in worse:
            change = comparison["models"][name]
            if change["change"] == "not run":
                lines.append(
                    f"--llm-fail-on-regression: {name} had no run judged in this run "
                    f"({change['baseline_runs'][1]} in the baseline): it is not shown to be "
                    "no worse"
                )
                continue
            lines.append(
                f"--llm-fail-on-regression: {name}'s pass rate fell from "
                f"{render.format_rate(change['baseline_pass_rate'])} to "
                f"{render.format_rate(change['pass_rate'])}: {render.change_text(change)} "
                "(95% interval of the change below 0)"
            )
        return lines
