"""``python -m pytest_llm_matrix merge REPORT.json... [--llm-report OUT] [--html OUT]``:
the JSON reports of several jobs (a job per model, or pytest-split shards) as the summary of
one run: the terminal table, a JSON report, an HTML report, and the GitHub step summary when
``$GITHUB_STEP_SUMMARY`` is set.

Exit status: the merged report's, so that a CI step merging the jobs' reports fails when the
run failed: 0 when every part passed, else the highest of the parts' (1: tests failed); 2
when the reports cannot be merged or an output cannot be written (an ``error:`` line says
which; a part interrupted, exit status 2, also makes it 2). The same when the output is
piped to a reader that stops early (``| head``): the files are still written, the rest of
the output is dropped without a traceback, and the status is still the run's (not 120 or
141, which would say nothing of the run to ``set -o pipefail``)."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pytest_llm_matrix.report import html, render
from pytest_llm_matrix.report.merge import MergeError, merge, read_all, stats_of


def main(argv: Sequence[str] | None = None) -> int:
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
        "of the parts' (1: tests failed). 2 when the reports cannot be merged or an output "
        "cannot be written (an 'error:' line says which; a part interrupted, exit status 2, "
        "also makes it 2).",
    )
    merging.add_argument("reports", nargs="+", metavar="REPORT.json")
    merging.add_argument("--llm-report", metavar="OUT", help="write the merged JSON report")
    merging.add_argument("--html", metavar="OUT", help="write the merged HTML report")
    args = parser.parse_args(argv)
    try:
        report = merge(read_all(args.reports))
    except MergeError as error:  # it may quote a test id: escape sequences shown, not run
        print(render.plain(f"error: {error}"), file=sys.stderr)
        return 2
    rows = render.rows_for(
        {n: stats_of(m) for n, m in report["models"].items()}, report["selection"]["models"]
    )
    width = shutil.get_terminal_size((120, 24)).columns
    lines = [f"llm-matrix: {report['selection']['selected_by']}"]
    lines += render.table(rows, width, None)
    everywhere = report["failed_everywhere"]
    some = report["failed_on_some"]
    if everywhere:
        lines.append("failed on every model (a test or prompt bug?):")
        lines += [f"  {test}" for test in everywhere]
    if some:
        lines.append("failed on some models:")
        lines += [f"  {test}: {', '.join(models)}" for test, models in some.items()]
    # names and ids from the files: escape sequences shown, not run
    _say([render.plain(line) for line in lines])
    outputs: list[tuple[str | None, str, Callable[[], str]]] = [
        (args.llm_report, "w", lambda: json.dumps(report, indent=2) + "\n"),
        (args.html, "w", lambda: html.render(report)),
        (
            os.environ.get("GITHUB_STEP_SUMMARY"),
            "a",
            lambda: render.markdown(rows, {}, everywhere, _labelled(report)),
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
