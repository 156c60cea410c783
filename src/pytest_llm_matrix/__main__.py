"""``python -m pytest_llm_matrix merge REPORT.json... [--llm-report OUT] [--html OUT]
[--llm-min-pass-rate RATE] [--llm-baseline PATH [--llm-fail-on-regression]]``: the JSON
reports of several jobs (a job per model, or pytest-split shards) as the summary of one run:
the terminal table, a JSON report, an HTML report, and the GitHub step summary when
``$GITHUB_STEP_SUMMARY`` is set. The gate options mean what they mean to pytest, and judge
the merged run as the run that was not split (see :func:`.report.merge.apply_gates`), with the same
lines.

Exit status: the merged report's, so that a CI step merging the jobs' reports fails when the
run failed: 0 when every part passed, else the highest of the parts' (1: tests failed); with
``--llm-min-pass-rate``, ``--llm-fail-on-regression``: the status the run that was not split
would have had with them; 2 when an option is wrong, the reports cannot be merged or an
output cannot be written (an ``error:`` line says which; a part interrupted, exit status 2,
also makes it 2). The same when the output is piped to a reader that stops early (``|
head``): the files are still written, the rest of the output is dropped without a
traceback, and the status is still the run's (not 120 or 141, which would say nothing of
the run to ``set -o pipefail``)."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pytest_llm_matrix.config import checks
from pytest_llm_matrix.report import baseline, html, render
from pytest_llm_matrix.report.gates import Gates
from pytest_llm_matrix.report.merge import MergeError, apply_gates, merge, read_all, stats_of


class OptionError(Exception):
    """An option merge cannot use; the message names it, as pytest's usage errors do."""


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m pytest_llm_matrix`` (the docs' reference reads it)."""
    parser = argparse.ArgumentParser(
        prog="python -m pytest_llm_matrix",
        description="pytest-llm-matrix tools outside a pytest run.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    merging = commands.add_parser(
        "merge",
        help="merge the JSON reports of several jobs into one summary",
        description="Merge the JSON reports (--llm-report) of the jobs a suite was split "
        "into: print the summary of the whole run, and write it as JSON, HTML and (with "
        "$GITHUB_STEP_SUMMARY set) the GitHub step summary.",
        epilog="Exit status: the merged report's: 0 when every part passed, else the highest "
        "of the parts' (1: tests failed); with --llm-min-pass-rate or "
        "--llm-fail-on-regression, the status the run that was not split would have had "
        "with them. 2 when an option is wrong, the reports cannot be merged or an output "
        "cannot be written (an 'error:' line says which; a part interrupted, exit status 2, "
        "also makes it 2).",
    )
    merging.add_argument("reports", nargs="+", metavar="REPORT.json")
    merging.add_argument("--llm-report", metavar="OUT", help="write the merged JSON report")
    merging.add_argument("--html", metavar="OUT", help="write the merged HTML report")
    merging.add_argument(
        "--llm-min-pass-rate",
        metavar="RATE",
        help="judge the merged run as pytest does: it passes when every required model's "
        "pass rate is at least RATE (a share from 0 to 1 like 0.8, or a percentage like "
        "80%%; not 80), whatever its single failures; the jobs' own gates give way to it",
    )
    merging.add_argument(
        "--llm-baseline",
        metavar="PATH",
        help="compare the merged run with a baseline, as pytest does: the path of a JSON "
        "report of --llm-report (or of merge); not 'last', which is pytest's cache",
    )
    merging.add_argument(
        "--llm-fail-on-regression",
        action="store_true",
        help="exit 1 when a required model's pass rate is significantly lower than the "
        "baseline's (its 95%% interval lies below 0)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        gates = _gates(args)
        parts = read_all(args.reports)
        report = merge(parts)
    except (OptionError, MergeError) as error:  # it may quote a test id: shown, not run
        print(render.plain(f"error: {error}"), file=sys.stderr)
        return 2
    below = apply_gates(report, parts, gates)
    comparison = report["baseline"]
    changes = comparison["models"] if comparison is not None else {}
    rows = render.rows_for(
        {n: stats_of(m, changes.get(n)) for n, m in report["models"].items()},
        report["selection"]["models"],
    )
    width = shutil.get_terminal_size((120, 24)).columns
    lines = [f"llm-matrix: {report['selection']['selected_by']}"]
    lines += render.table(rows, width, None)
    if comparison is not None:
        lines += render.baseline_lines(comparison)
    lines += gates.regression_lines(comparison)
    everywhere = report["failed_everywhere"]
    some = report["failed_on_some"]
    if everywhere:
        lines.append("failed on every model (a test or prompt bug?):")
        lines += [f"  {test}" for test in everywhere]
    if some:
        lines.append("failed on some models:")
        lines += [f"  {test}: {', '.join(models)}" for test, models in some.items()]
    if (gate_line := gates.gate_line(below)) is not None:
        lines.append(gate_line)
    # names and ids from the files: escape sequences shown, not run
    _say([render.plain(line) for line in lines])
    outputs: list[tuple[str | None, str, Callable[[], str]]] = [
        (args.llm_report, "w", lambda: json.dumps(report, indent=2) + "\n"),
        (args.html, "w", lambda: html.render(report)),
        (
            os.environ.get("GITHUB_STEP_SUMMARY"),
            "a",
            lambda: render.markdown(rows, {}, everywhere, _labelled(report), comparison),
        ),
    ]
    for path, mode, text in outputs:
        if not path:
            continue
        problem = render.write_file(path, text(), append=mode == "a")
        if problem is not None:
            print(f"error: could not write {problem}", file=sys.stderr)
            return 2
        if mode == "w":
            _say([f"wrote {path}"])
    status: int = report["exit_status"]
    return status


def _gates(args: argparse.Namespace) -> Gates:
    """The gate options, checked as pytest checks its own (the same messages), and the
    baseline read as a pytest run reads it; a bad one is an :class:`OptionError`."""
    rate = None
    if args.llm_min_pass_rate is not None:
        try:
            rate = checks.parse_rate(args.llm_min_pass_rate)
        except ValueError as error:
            raise OptionError(f"--llm-min-pass-rate: {error}") from None
    given = args.llm_baseline
    if given is None:
        if args.llm_fail_on_regression:
            raise OptionError(
                "--llm-fail-on-regression compares with a baseline: give --llm-baseline=PATH "
                "(a JSON report of --llm-report)"
            )
        return Gates(min_pass_rate=rate)
    if not given.strip():
        raise OptionError("--llm-baseline: expected the path of a JSON report, got ''")
    if given.strip() == "last":
        raise OptionError(
            "--llm-baseline: 'last' is the last run of a selection in pytest's cache, which "
            "merge does not read: give the path of a JSON report of --llm-report"
        )
    path = Path(given).expanduser()
    if args.html is not None and Path(args.html).resolve() == path.resolve():
        raise OptionError(
            f"--html and --llm-baseline name the same file ({args.html}): the HTML report "
            "would overwrite the JSON one; give it another name"
        )
    try:
        document = baseline.read(path)
    except baseline.BaselineError as error:
        raise OptionError(f"--llm-baseline: {error}") from None
    return Gates(rate, (document, given), bool(args.llm_fail_on_regression))


def _say(lines: Sequence[str]) -> None:
    """Print ``lines`` to stdout. A reader that closed it (``| head -1``) has all it wanted:
    the rest goes nowhere, and the merge goes on (its files are written, its status is the
    run's), as ``git log | head`` ends quietly."""
    try:
        for line in lines:
            print(line)
        sys.stdout.flush()  # a pipe's buffer: a closed reader is found here, not at exit
    except BrokenPipeError:
        # Python's advice: stdout to the null device, or the interpreter's final flush of
        # what is still buffered fails again at exit (a message, and exit status 120)
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, sys.stdout.fileno())
        os.close(null)


def _labelled(report: Mapping[str, Any]) -> dict[str, list[str]]:
    """The tests failed on some models, each by the ids to paste back into pytest (as the
    step summary of a run lists them), not by the models' names."""
    ids = {(test["test"], test["model"]): test["nodeid"] for test in report["tests"]}
    return {
        test: [render.pasteable(ids[test, model]) for model in models]
        for test, models in report["failed_on_some"].items()
    }


if __name__ == "__main__":
    sys.exit(main())
