"""The summary as text: the terminal table (fitted to the width) and Markdown (pure)."""

from __future__ import annotations

import dataclasses
import os
import re
import shlex
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from pytest_llm_matrix.report.cost import format_usd, sources_text
from pytest_llm_matrix.report.stats import ModelStats, total


def format_rate(rate: float | None, interval: tuple[float, float] | None = None) -> str:
    """``80.0%``, with the 95% interval where repeats ran: ``80.0% (62-91)``."""
    if rate is None:
        return "-"
    if interval is None:
        return f"{rate:.1%}"
    low, high = interval
    return f"{rate:.1%} ({low * 100:.0f}-{high * 100:.0f})"


def format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.2f}s"
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)}m{rest:04.1f}s"


def format_ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.0f}ms"


def format_cost(stats: ModelStats) -> str:
    spend = stats.spend
    if not (spend["input_tokens"] or spend["output_tokens"] or spend["reported"]):
        return "-"
    return format_usd(stats.known_cost)


def format_replayed_cost(stats: ModelStats) -> str:
    if not (stats.spend["replayed_input_tokens"] or stats.spend["replayed_output_tokens"]):
        return "-"
    return format_usd(stats.known_replayed_cost)


def _spent(counter: str) -> Callable[[Sequence[ModelStats]], bool]:
    return lambda rows: any(s.spend[counter] for s in rows)


def change_text(change: Mapping[str, Any] | None, markup: bool = False) -> str:
    """``-50.0pp (-71..-22) worse``: the pass-rate change, its 95% interval and verdict."""
    if change is None or change.get("difference") is None or change.get("interval") is None:
        return "-"
    low, high = change["interval"]
    verdict = change["change"]
    text = f"{change['difference'] * 100:+.1f}pp ({low * 100:+.0f}..{high * 100:+.0f})"
    if verdict in ("worse", "better"):
        text += f" {verdict}"
        if markup:
            return f'<span class="{verdict}">{text}</span>'
    return text


def _cost_change(stats: ModelStats) -> str:
    change = stats.change
    value = None if change is None else change.get("cost_change_usd")
    if not isinstance(value, int | float):
        return "-"
    return f"{'+' if value >= 0 else '-'}{format_usd(abs(value))}"


def _p50_change(stats: ModelStats) -> str:
    change = stats.change
    value = None if change is None else change.get("latency_p50_change")
    return f"{value * 1000:+.0f}ms" if isinstance(value, int | float) else "-"


def _not_all_configured(rows: Sequence[ModelStats]) -> bool:
    return any(s.sources - {"configured"} for s in rows)


def _compared(rows: Sequence[ModelStats]) -> bool:
    return any(s.change is not None for s in rows)


def baseline_lines(comparison: Mapping[str, Any], most: int = 10) -> list[str]:
    """What changed against the baseline, under the table: per model with a change, its
    pass rates, and the tests that flipped, appeared or went."""
    when = f", {comparison['created']}" if comparison.get("created") else ""
    lines = [plain(f"against the baseline: {comparison['source']}{when}")]
    for name, change in comparison["models"].items():
        lists = [
            ("now failing (passed in the baseline)", change["now_failing"]),
            ("now passing (failed in the baseline)", change["now_passing"]),
            ("added", change["added"]),
            ("removed", change["removed"]),
        ]
        if change["change"] in (None, "same") and not any(found for _, found in lists):
            continue
        before, now = change["baseline_pass_rate"], change["pass_rate"]
        said = "no run judged in this run" if change["change"] == "not run" else change_text(change)
        lines.append(f"{plain(name)}: {format_rate(before)} -> {format_rate(now)}, {said}")
        for title, found in lists:
            if found:
                lines.append(f"  {title}: {len(found)}")
                lines += [f"    {plain(test)}" for test in found[:most]]
                if len(found) > most:
                    lines.append(f"    ... and {len(found) - most} more (see the JSON report)")
    for key, title in (
        ("only_in_baseline", "only in the baseline"),
        ("only_in_this_run", "only in this run"),
    ):
        if comparison.get(key):
            lines.append(plain(f"{title}: {', '.join(comparison[key])}"))
    return lines


def pasteable(nodeid: str) -> str:
    """A node id as a shell takes it: quoted when it holds spaces or shell characters."""
    if re.fullmatch(r"[\w@%+=:,./\-\[\]]+", nodeid):
        return nodeid
    return shlex.quote(nodeid)


def plain(text: str) -> str:
    """Text from a file as one line of plain text: control characters (escape sequences,
    line breaks) shown escaped, never acted on."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def code(text: str, in_table: bool = False) -> str:
    """``text`` as a Markdown code span that nothing in it can close or turn into markup
    (a link, an image, HTML): on one line (see :func:`plain`), fenced by one backtick more
    than its longest run of backticks, padded with a space (which CommonMark strips) where
    it starts or ends with a backtick or a space. In a table cell ``|`` is escaped as well:
    GitHub splits cells on it even inside code, and drops the backslash."""
    text = plain(text)
    fence = "`" * (max((len(run) for run in re.findall("`+", text)), default=0) + 1)
    if not text or text[0] in "` " or text[-1] in "` ":
        text = f" {text} "
    if in_table:
        text = text.replace("|", "\\|")
    return f"{fence}{text}{fence}"


def fenced(lines: Sequence[str]) -> list[str]:
    """``lines`` as a fenced code block that none of them can close: the fence is longer
    than any run of backticks in them."""
    longest = max((len(run) for line in lines for run in re.findall("`+", line)), default=0)
    fence = "`" * max(3, longest + 1)
    return [f"{fence}text", *(plain(line) for line in lines), fence]


#: A figure as the formatters write it (``80.0% (62-91)``, ``$0.0012``, ``+1.5pp (-3..+4)
#: worse``): nothing Markdown would read as markup.
_FIGURE: Final = re.compile(r"(?!.*www\.)[A-Za-z0-9.,%()+\-$/ ]*")


def _cell(text: str) -> str:
    """A table cell: a figure as it is, anything else (a merged report's odd value) as code."""
    return text if _FIGURE.fullmatch(text) else code(text, in_table=True)


@dataclasses.dataclass(frozen=True)
class Column:
    title: str
    rank: int  # 0 always shown; higher ranks are dropped first when the table is too wide
    cell: Callable[[ModelStats], str]
    shown_if: Callable[[Sequence[ModelStats]], bool] = lambda rows: True


def _count(outcome: str) -> Callable[[ModelStats], str]:
    return lambda s: str(s.counts[outcome])


def _any(outcome: str) -> Callable[[Sequence[ModelStats]], bool]:
    return lambda rows: any(s.counts[outcome] for s in rows)


COLUMNS: Final = (
    Column("passed", 0, _count("passed")),
    Column("failed", 0, _count("failed")),
    Column("errors", 1, _count("error")),
    Column("skipped", 1, _count("skipped")),
    Column("xfailed", 1, _count("xfailed"), _any("xfailed")),
    Column("xpassed", 1, _count("xpassed"), _any("xpassed")),
    Column("pass rate", 0, lambda s: format_rate(s.pass_rate, s.interval)),
    Column("vs baseline", 0, lambda s: change_text(s.change), _compared),
    Column("cost", 2, format_cost),
    # where the cost came from: the answers ("reported"), a price list, nowhere ("none");
    # shown unless every cost is the configured prices'
    Column("price", 3, lambda s: sources_text(s.sources), _not_all_configured),
    # record and replay: what the replayed answers cost when recorded (not spent now)
    Column("recorded cost", 2, format_replayed_cost, _spent("replayed")),
    Column("cost change", 3, _cost_change, _compared),
    Column("wall", 3, lambda s: format_seconds(s.span)),
    Column("test time", 4, lambda s: format_seconds(s.duration)),
    Column("requests", 5, lambda s: str(s.spend["requests"])),
    Column("replayed", 5, lambda s: str(s.spend["replayed"]), _spent("replayed")),
    Column("recorded", 5, lambda s: str(s.spend["recorded"]), _spent("recorded")),
    Column("tokens in", 6, lambda s: f"{s.spend['input_tokens']:,}"),
    Column("tokens out", 6, lambda s: f"{s.spend['output_tokens']:,}"),
    Column("retries", 7, lambda s: str(s.spend["retries"])),
    Column("429s", 7, lambda s: str(s.spend["rate_limited"])),
    Column("p50", 8, lambda s: format_ms(s.latency(50))),
    Column("p95", 9, lambda s: format_ms(s.latency(95))),
    Column("p50 change", 8, _p50_change, _compared),
    Column("ttft p50", 9, lambda s: format_ms(s.ttft_p50())),
    Column("timeouts", 10, lambda s: str(s.spend["timeouts"])),
)
#: With -q, only these ranks show.
QUIET_RANK: Final = 2


def rows_for(stats: Mapping[str, ModelStats], order: Sequence[str]) -> list[tuple[str, ModelStats]]:
    """Models in config order, then a total row when there is more than one."""
    rows = [(name, stats[name]) for name in order if name in stats]
    if len(rows) > 1:
        rows.append(("total", total(s for _, s in rows)))
    return rows


def _visible(rows: Sequence[tuple[str, ModelStats]]) -> list[Column]:
    """The columns with something to show for these rows (xfailed only when any, ...)."""
    return [c for c in COLUMNS if c.shown_if([s for _, s in rows])]


def table(
    rows: Sequence[tuple[str, ModelStats]], width: int | None, max_rank: int | None = None
) -> list[str]:
    """Aligned lines: header, then one per row. Columns are dropped, least important
    first, until the lines fit ``width`` (None: keep every column)."""
    columns = _visible(rows)
    if max_rank is not None:
        columns = [c for c in columns if c.rank <= max_rank]
    while True:
        lines = _lay_out(rows, columns)
        if width is None or len(lines[0]) <= width:
            return lines
        droppable = max(c.rank for c in columns)
        if droppable == 0:
            return lines
        last = max(i for i, c in enumerate(columns) if c.rank == droppable)
        del columns[last]


def _lay_out(rows: Sequence[tuple[str, ModelStats]], columns: Sequence[Column]) -> list[str]:
    cells = [["model", *(c.title for c in columns)]]
    cells += [[name, *(c.cell(stats) for c in columns)] for name, stats in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    return [
        "  ".join(
            [
                row[0].ljust(widths[0]),
                *(v.rjust(w) for v, w in zip(row[1:], widths[1:], strict=True)),
            ]
        ).rstrip()
        for row in cells
    ]


def markdown(
    rows: Sequence[tuple[str, ModelStats]],
    unavailable: Mapping[str, str],
    everywhere: Sequence[str],
    some: Mapping[str, Sequence[str]],
    comparison: Mapping[str, Any] | None = None,
) -> str:
    """The summary for GitHub's job summary: the full table, then what failed where, then
    what changed against the baseline. Every name, id and message from the run is quoted as
    code (:func:`code`, :func:`fenced`): a test id cannot add a link, an image, HTML or a
    table column to the page."""
    columns = _visible(rows)
    lines = [
        "## llm-matrix",
        "",
        "| model | " + " | ".join(c.title for c in columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    for name, stats in rows:
        label = "**total**" if name == "total" else code(name, in_table=True)
        cells = (_cell(c.cell(stats)) for c in columns)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    for name, reason in unavailable.items():
        lines += ["", f"- {code(name)} unavailable: {code(reason)}"]
    if everywhere:
        lines += ["", "Failed on every model (a test or prompt bug?):", ""]
        lines += [f"- {code(test)}" for test in everywhere]
    if some:
        lines += ["", "Failed on some models:", ""]
        lines += [f"- {code(label)}" for labels in some.values() for label in labels]
    if comparison is not None:
        lines += ["", *fenced(baseline_lines(comparison))]
    return "\n".join(lines) + "\n"


def write_file(path: str, text: str, *, append: bool) -> str | None:
    """Write an output file (the session's and merge's); None, or why it could not be
    written. Only a regular file (or none yet): opening a FIFO would wait for a reader
    forever. A lone surrogate (a ``\\ud800`` escape) is written as its escape."""
    if os.path.exists(path) and not os.path.isfile(path):
        return f"{path}: not a regular file"
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with open(
            path, "a" if append else "w", encoding="utf-8", errors="backslashreplace"
        ) as file:
            file.write(text)
    except OSError as error:
        return f"{path}: {error.strerror or error}"
    return None
