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
#: The Markdown whose code blocks are the project's documentation.
FILES = (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")))
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
) -> None:
    """Assert that a real run's ``output`` (text, or its lines) shows the ``documented``
    block: each of its lines is a whole line of the output (whitespace runs are one space;
    durations, ``=`` rules and ``...`` are loose), in order. ``substitutions`` (real text ->
    documented text) are made in the output first: only what a test cannot make the same (a
    temporary path, a free port), each named where it is used. ``joined``: the block is one
    message the docs wrap over several lines; it must be in the output as one."""
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
    at = 0
    for line in documented.strip("\n").splitlines():
        pattern = _pattern(line)
        found = next((i for i in range(at, len(lines)) if pattern.fullmatch(lines[i])), None)
        assert found is not None, (
            f"the docs show the line\n  {line}\nwhich the run did not print (after line {at}):\n"
            + "\n".join(lines[at:][-60:])
        )
        at = found + 1
