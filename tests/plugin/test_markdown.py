"""The project's Markdown renders as written: no table row left outside its table.

A blank line inside a table ends it; the rows after it, with no header and separator row of
their own, render as text full of pipes (GitHub's and mkdocs' Markdown alike).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: The Markdown files of the project: its top level, docs, the example and the package's.
FILES = sorted(
    {
        *ROOT.glob("*.md"),
        *ROOT.glob("docs/**/*.md"),
        *ROOT.glob("example_project/**/*.md"),
        *ROOT.glob("src/**/*.md"),
    }
)
#: A table's separator row: ``|---|:---:|``, ``--- | ---``.
SEPARATOR = re.compile(r"\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*")


def outside_fences(lines: list[str]) -> Iterator[tuple[int, str]]:
    """``(number, line)`` of each line of Markdown outside fenced code, numbered from 1."""
    fence = ""
    for number, line in enumerate(lines, start=1):
        stripped = line.lstrip()
        if fence:
            if stripped.startswith(fence):
                fence = ""
            continue
        if stripped.startswith(("```", "~~~")):
            fence = stripped[:3]
            continue
        yield number, line


def stray_rows(text: str) -> list[int]:
    """The numbers of the lines that start with ``|`` but are in no table: neither a row
    under the line before (a table row too) nor a header over a separator row. Fenced code
    is skipped."""
    lines = text.splitlines()
    stray = []
    for number, line in outside_fences(lines):
        if not line.lstrip().startswith("|"):
            continue
        continues = number > 1 and lines[number - 2].lstrip().startswith("|")
        heads = number < len(lines) and "|" in lines[number] and SEPARATOR.fullmatch(lines[number])
        if not (continues or heads):
            stray.append(number)
    return stray


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(ROOT)) for p in FILES])
def test_no_table_is_broken(path: Path):
    lines = path.read_text(encoding="utf-8").splitlines()
    stray = [f"line {n}: {lines[n - 1][:70]}" for n in stray_rows("\n".join(lines))]
    assert not stray, f"{path.name}: table rows outside a table (a blank line inside it?): " + (
        "; ".join(stray)
    )


def test_the_readme_is_checked():
    assert ROOT / "README.md" in FILES


TABLE = "| code | when |\n|---|---|\n| 0 | passed |\n| 1 | failed |\n"


@pytest.mark.parametrize(
    ("text", "stray"),
    [
        (TABLE, []),
        ("text\n\n" + TABLE + "\ntext\n\n" + TABLE, []),
        (TABLE + "\n| 5 | no tests |\n", [6]),  # a blank line inside the table
        (TABLE + "text\n| 5 | no tests |\n", [6]),  # a paragraph inside it
        ("| a | b |\n| c | d |\n", [1]),  # no separator row: no table at all
        ("```text\n| not | a table |\n```\n", []),  # fenced code
        ("  ~~~\n  | x |\n  ~~~\n", []),
        ("| a | b |\n| :-: | --- |\n| c | d |\n", []),
    ],
)
def test_stray_rows(text: str, stray: list[int]):
    assert stray_rows(text) == stray
