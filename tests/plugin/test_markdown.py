"""The project's Markdown renders as written: no table row left outside its table, no list
item run into the paragraph above it.

A blank line inside a table ends it; the rows after it, with no header and separator row of
their own, render as text full of pipes (GitHub's and mkdocs' Markdown alike). On the docs
site (Python-Markdown), a list nested by fewer than four spaces, or a list item right under
a paragraph of the item before it, is read as that paragraph's text: `- item` shows as is.
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


#: The pages of the docs site, rendered by Python-Markdown (the rest by GitHub's CommonMark).
SITE_PAGES = sorted(ROOT.glob("docs/*.md"))
#: The docs site's Markdown extensions (mkdocs.yml), which decide what is a list.
SITE_EXTENSIONS = [
    "admonition",
    "attr_list",
    "tables",
    "toc",
    "pymdownx.highlight",
    "pymdownx.inlinehilite",
    "pymdownx.superfences",
]
#: A list marker starting a line of rendered text: a list item that did not become one.
LOST_ITEM = re.compile(r"^\s*(?:[-*+]|\d+\.)\s", re.MULTILINE)


def lost_items(text: str) -> list[str]:
    """The lines of paragraphs and list items, as the site renders ``text``, that start with a
    list marker after their first line (code blocks left out)."""
    import markdown

    rendered = markdown.markdown(text, extensions=SITE_EXTENSIONS)
    rendered = re.sub(r"<pre.*?</pre>", "", rendered, flags=re.DOTALL)
    return [
        re.sub(r"<[^>]+>", "", line).strip()[:70]
        for match in re.finditer(r"<(p|li)>(.*?)</\1>", rendered, re.DOTALL)
        for line in match.group(2).splitlines()[1:]
        if LOST_ITEM.match(line)
    ]


@pytest.mark.parametrize("path", SITE_PAGES, ids=[str(p.relative_to(ROOT)) for p in SITE_PAGES])
def test_no_list_item_is_run_into_a_paragraph(path: Path):
    pytest.importorskip("markdown", reason="Python-Markdown (the docs extras) is not installed")
    pytest.importorskip("pymdownx", reason="pymdown-extensions (the docs extras) is not installed")
    lines = path.read_text(encoding="utf-8").splitlines()
    shallow = [
        f"line {n}: {line.strip()[:70]}"
        for n, line in outside_fences(lines)
        if re.match(r" {1,3}(?:[-*+]|\d+\.) ", line)
    ]
    assert not shallow, f"{path.name}: nest a list by four spaces for the site: " + "; ".join(
        shallow
    )
    lost = lost_items("\n".join(lines))
    assert not lost, (
        f"{path.name}: list items the site shows as text (a blank line before them, or a "
        "nested list indented by four spaces): " + "; ".join(lost)
    )


@pytest.mark.parametrize(
    ("text", "lost"),
    [
        ("- one\n- two\n", []),
        ("- one\n\n    more of one\n\n- two\n", []),
        ("- one\n\n    more of one\n- two\n", ["- two"]),  # no blank line before it
        ("- one:\n\n  1. a\n  2. b\n", []),  # (flattened, which the shallow check finds)
        ("- one:\n\n  1. a\n\n  after\n- two\n", ["- two"]),
        ("```text\n- not a list\n```\n", []),
    ],
)
def test_lost_items(text: str, lost: list[str]):
    pytest.importorskip("markdown")
    pytest.importorskip("pymdownx")
    assert lost_items(text) == lost


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
