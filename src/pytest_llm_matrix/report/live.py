"""Live per-model progress in a terminal: one line per model, redrawn in place.

The block sits below pytest's own progress line. pytest keeps writing its letters (or, with
``-v``, its lines) at the cursor as usual; after each of its writes the block is redrawn
underneath. Moving the cursor takes escape sequences, which pytest's writer has no
public call for: they go through ``TerminalReporter.write_raw`` (as pytest's own OSC 9;4
progress does), so pytest's idea of its current line is not disturbed, and colours still go
through pytest's markup (``NO_COLOR`` works). Only in a terminal: when stdout is not a TTY,
with ``-q``, ``-s`` without xdist, live logging, ``TERM=dumb`` or ``--llm-progress=off``,
nothing is drawn and pytest's output is byte for byte what it would be without the plugin.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Generator, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Final

import pytest

from pytest_llm_matrix.calls.context import REPORT_ATTR
from pytest_llm_matrix.config.options import distributed
from pytest_llm_matrix.distribution.scheduling import model_from_nodeid
from pytest_llm_matrix.matrix.parametrize import model_of

if TYPE_CHECKING:
    from pytest_llm_matrix.report.summary import Summary

#: Seconds between redraws while pytest only adds letters to its line.
INTERVAL: Final = 0.1
ERASE_BELOW: Final = "\x1b[0J"  # clear from the cursor to the end of the screen


def wanted(config: pytest.Config) -> bool:
    """Whether the live block can be drawn without getting in anyone's way (in the
    controller, with --llm-progress not off)."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None or not hasattr(reporter, "write_raw"):
        return False  # write_raw: pytest >= 9
    if not reporter.isatty() or os.environ.get("TERM") == "dumb":
        return False
    if config.get_verbosity() < 0:
        return False
    if config.getoption("log_cli_level", None) or config.getini("log_cli"):
        return False  # live logs write between pytest's letters
    if config.getoption("usepdb", False) or config.getoption("trace", False):
        return False  # the debugger writes over the block
    return distributed(config) or config.getoption("capture", "fd") != "no"


def progress_lines(
    rows: Sequence[tuple[str, int, int, int, str]], width: int
) -> list[tuple[str, dict[str, bool]]]:
    """``sim-fast  12/20 done  1 failed  cost $0.0042``, one per model (pure)."""
    name_width = max((len(name) for name, *_ in rows), default=0)
    total_width = max((len(str(total)) for _, _, total, _, _ in rows), default=1)
    lines = []
    for name, done, total, failed, spend in rows:
        text = (
            f"{name:<{name_width}}  {done:>{total_width}}/{total:<{total_width}} done  "
            f"{failed} failed  cost {spend}"
        )
        markup = {"red": True} if failed else {"green": True} if done == total else {}
        lines.append((text[: max(width - 1, 1)].rstrip(), markup))
    return lines


class LiveProgress:
    """Controller-side: counts finished tests per model and redraws the block."""

    def __init__(self, config: pytest.Config, summary: Summary, order: Sequence[str]) -> None:
        self.config = config
        self.summary = summary
        self.order = list(order)
        self.active: bool | None = None  # decided once pytest's terminal exists
        self.reporter: Any = None
        self.totals: dict[str, int] = {}
        self.done: dict[str, int] = {}
        self.drawn = 0  # lines of the block on screen, below the cursor's line
        self.last_draw = 0.0
        self.last_width = 0

    def activate(self) -> bool:
        if self.active is None:
            # the block must fit on the screen, with pytest's line above it
            fits = len(self.order) + 2 <= shutil.get_terminal_size().lines
            self.active = fits and wanted(self.config)
            if self.active:
                self.reporter = self.config.pluginmanager.get_plugin("terminalreporter")
                self.summary.warm_prices()
        return self.active

    def pytest_sessionstart(self) -> None:
        self.activate()

    # -- what there is to do -------------------------------------------------------------

    def count(self, models: Iterable[str | None]) -> None:
        if self.totals or not self.activate():
            return
        for name in models:
            if name is not None:
                self.totals[name] = self.totals.get(name, 0) + 1

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.count(m.name if (m := model_of(item)) else None for item in session.items)

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: Sequence[str]) -> None:
        self.count(model_from_nodeid(nodeid, self.order) for nodeid in ids)

    # -- following the run ---------------------------------------------------------------

    @pytest.hookimpl(trylast=True)  # after pytest's terminal has written its letter or line
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        model = getattr(report, REPORT_ATTR, None)
        if report.when == "teardown" and isinstance(model, str):
            self.done[model] = self.done.get(model, 0) + 1
        self.refresh()

    @pytest.hookimpl(trylast=True)
    def pytest_runtest_logstart(self) -> None:
        self.refresh()  # pytest may have started a line (a file name, or -v's test id)

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtestloop(self) -> Generator[None, object, object]:
        try:
            return (yield)
        finally:
            self.erase()

    # -- drawing -------------------------------------------------------------------------

    def refresh(self) -> None:
        if not self.totals:
            return
        writer = self.config.get_terminal_writer()
        # pytest's line may be longer than the terminal (-v with long ids): the cursor is on
        # its last screen line
        width = writer.width_of_current_line % max(writer.fullwidth, 1)
        moved = width < self.last_width or self.config.get_verbosity() > 0
        now = time.monotonic()
        if moved or now - self.last_draw >= INTERVAL:
            self.draw(writer, width)
            self.last_draw = now
        self.last_width = width

    def rows(self) -> list[tuple[str, int, int, int, str]]:
        self.summary.price_pending()
        rows = []
        for name in self.order:
            if name not in self.totals:
                continue
            stats = self.summary.stats.get(name)
            failed = stats.counts["failed"] + stats.counts["error"] if stats else 0
            spend = self.summary.spend_text(name)
            rows.append((name, self.done.get(name, 0), self.totals[name], failed, spend))
        return rows

    def draw(self, writer: Any, column: int) -> None:
        """Clear below the cursor, draw the block underneath, come back to the cursor."""
        lines = progress_lines(self.rows(), writer.fullwidth)
        body = "".join("\n" + writer.markup(text, **markup) for text, markup in lines)
        back = f"\x1b[{len(lines)}A\r" + (f"\x1b[{column}C" if column else "")
        self.reporter.write_raw(ERASE_BELOW + body + back, flush=True)
        self.drawn = len(lines)

    def erase(self) -> None:
        if self.drawn:
            self.reporter.write_raw(ERASE_BELOW, flush=True)
            self.drawn = 0
