"""``python -m pytest_llm_matrix merge REPORT.json... [--llm-report OUT] [--html OUT]``:
the JSON reports of several jobs (a job per model, or pytest-split shards) as the summary of
one run: the terminal table, a JSON report, an HTML report, and the GitHub step summary when
``$GITHUB_STEP_SUMMARY`` is set. Exit status 0, or 2 when the reports cannot be merged."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

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
    )
    merging.add_argument("reports", nargs="+", metavar="REPORT.json")
    merging.add_argument("--llm-report", metavar="OUT", help="write the merged JSON report")
    merging.add_argument("--html", metavar="OUT", help="write the merged HTML report")
    args = parser.parse_args(argv)
    try:
        report = merge(read_all(args.reports))
    except MergeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    rows = render.rows_for(
        {n: stats_of(m) for n, m in report["models"].items()}, report["selection"]["models"]
    )
    width = shutil.get_terminal_size((120, 24)).columns
    print(f"llm-matrix: {report['selection']['selected_by']}")
    for line in render.table(rows, width, None):
        print(line)
    everywhere = report["failed_everywhere"]
    some = report["failed_on_some"]
    if everywhere:
        print("failed on every model (a test or prompt bug?):")
        print("\n".join(f"  {test}" for test in everywhere))
    if some:
        print("failed on some models:")
        print("\n".join(f"  {test}: {', '.join(models)}" for test, models in some.items()))
    for path, text in (
        (args.llm_report, json.dumps(report, indent=2) + "\n"),
        (args.html, html.render(report) if args.html else ""),
    ):
        if path:
            try:
                Path(path).write_text(text, encoding="utf-8")
            except OSError as error:
                print(f"error: could not write {path}: {error.strerror or error}", file=sys.stderr)
                return 2
            print(f"wrote {path}")
    summary_file = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary_file:
        with open(summary_file, "a", encoding="utf-8") as file:
            file.write(render.markdown(rows, {}, everywhere, some))
    return 0


if __name__ == "__main__":
    sys.exit(main())
