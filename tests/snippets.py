"""The code blocks of the README and the docs, each run by a test or marked with why not.

Every fenced block has a marker on the line before it (an HTML comment: invisible on
GitHub and on the site):

- ``<!-- snippet: NAME -->``: a test runs it (or, for output, compares it with a real run's),
  reading it with :func:`snippet` ``("NAME")``;
- ``<!-- not run: REASON -->``: no test can run it here, and the reason says why.

``tests/plugin/test_snippets.py`` checks that every block has one, that every name is
read by some test, and runs most of them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: The Markdown whose code blocks are the project's documentation (the example's README too).
FILES = (
    ROOT / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
    ROOT / "example_project" / "README.md",
)
FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([\w+-]*)")
MARKER = re.compile(r"^\s*<!-- (?:snippet: ([\w.-]+)|not run: (.+?)) -->\s*$")


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # the fence's line, numbered from 1
    indent: int  # the fence's indentation, in spaces
    language: str
    text: str  # dedented to the fence's indentation
    name: str | None  # run by a test under this name
    reason: str | None  # not run, and why

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def parse(path: Path) -> list[Block]:
    """The fenced blocks of one Markdown file, with the marker each has (if any)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found = []
    number = 0
    while number < len(lines):
        opening = FENCE.match(lines[number])
        if not opening:
            number += 1
            continue
        indent, fence, language = opening.groups()
        end = number + 1
        while end < len(lines) and not lines[end].strip().startswith(fence):
            end += 1
        body = [
            line[len(indent) :] if line.startswith(indent) else line.lstrip()
            for line in lines[number + 1 : end]
        ]
        marker = MARKER.match(lines[number - 1]) if number else None
        found.append(
            Block(
                path=path,
                line=number + 1,
                indent=len(indent),
                language=language,
                text="\n".join(body) + "\n",
                name=marker.group(1) if marker else None,
                reason=marker.group(2) if marker else None,
            )
        )
        number = end + 1
    return found


@cache
def blocks() -> tuple[Block, ...]:
    return tuple(block for path in FILES for block in parse(path))


def snippet(name: str) -> str:
    """The text of the block marked ``<!-- snippet: name -->``."""
    (block,) = [block for block in blocks() if block.name == name] or [None]
    assert block is not None, f"no block is marked <!-- snippet: {name} --> in the docs"
    return block.text


#: What a documented output may differ in from a real run's: a duration (``1.04s``), and a
#: rule of ``=`` whose width is the terminal's. ``...`` stands for anything.
_LOOSE = re.compile(r"(\.\.\.|\b\d+(?:\.\d+)?s\b|={3,})")


def _pattern(line: str) -> re.Pattern[str]:
    parts = _LOOSE.split(" ".join(line.split()))
    loose = {"...": ".*?", "=": "=+"}
    return re.compile(
        "".join(
            loose["..."]
            if part == "..."
            else loose["="]
            if part.startswith("===")
            else r"\d+(?:\.\d+)?s"
            if index % 2
            else re.escape(part)
            for index, part in enumerate(parts)
        )
    )


def assert_shows(
    documented: str,
    output: str | Sequence[str],
    substitutions: Mapping[str, str] | None = None,
    *,
    joined: bool = False,
    apart: bool = False,
) -> None:
    """Assert that a real run's ``output`` (text, or its lines) shows the ``documented``
    block: its lines are lines of the output, one after the other, as the block has them (a
    table with a row more or less fails); a line of just ``...`` in the block stands for
    lines left out. Within a line, whitespace runs are one space, and durations (``1.04s``),
    ``=`` rules and ``...`` are loose. ``substitutions`` (real text -> documented text) are
    made in the output first: only what a test cannot make the same (a temporary path, a
    free port), each named where it is used. ``joined``: the block is one message the docs
    wrap over several lines; it must be in the output as one. ``apart``: the block's lines
    are messages of their own (a page of error messages), each a line of the output, in
    order, with any lines between them."""
    lines = [
        " ".join(line.split())
        for line in (output.splitlines() if isinstance(output, str) else output)
    ]
    for real, shown in (substitutions or {}).items():
        lines = [line.replace(real, shown) for line in lines]
    if joined:
        assert _pattern(documented).search(" ".join(lines)), (
            f"the docs say:\n{documented}\nthe run printed:\n" + "\n".join(lines)[-3000:]
        )
        return
    runs: list[list[str]] = [[]]
    for line in documented.strip("\n").splitlines():
        if line.strip() == "...":
            runs.append([])
        else:
            runs[-1].append(line)
            if apart:
                runs.append([])
    at = 0
    for run in filter(None, runs):
        patterns = [_pattern(line) for line in run]
        found = next(
            (
                i
                for i in range(at, len(lines) - len(run) + 1)
                if all(p.fullmatch(lines[i + k]) for k, p in enumerate(patterns))
            ),
            None,
        )
        if found is None:  # say which line differs: the longest start of the run found
            for size in range(len(run), 0, -1):
                if any(
                    all(p.fullmatch(lines[i + k]) for k, p in enumerate(patterns[:size]))
                    for i in range(at, len(lines) - size + 1)
                ):
                    break
            else:
                size = 0
            raise AssertionError(
                f"the docs show the line\n  {run[size]}\nwhich the run did not print"
                + (f" after\n  {run[size - 1]}" if size else f" (after line {at})")
                + ":\n"
                + "\n".join(lines[at:][-60:])
            )
        at = found + len(run)
