"""Every code block of the README and the docs is run by a test, or marked with why not.

See ``tests/snippets.py`` for the markers. This module checks the inventory and runs the
blocks that no other module of the suite runs.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.snippets import ROOT, blocks, parse

SNIPPET_CALL = re.compile(r"""\bsnippet\(\s*["']([\w.-]+)["']""")


def names_read_by_tests() -> set[str]:
    return {
        name
        for path in (ROOT / "tests").rglob("*.py")
        for name in SNIPPET_CALL.findall(path.read_text(encoding="utf-8"))
    }


def test_every_block_is_run_by_a_test_or_says_why_not():
    unmarked = [
        f"{block.where} ({block.language or 'no language'}: {block.text.splitlines()[0][:60]!r})"
        for block in blocks()
        if block.name is None and block.reason is None
    ]
    assert not unmarked, (
        "code blocks with no marker on the line before them: put <!-- snippet: NAME --> "
        "and read it in a test with the snippet function, or <!-- not run: REASON -->:\n  "
        + "\n  ".join(unmarked)
    )


def test_every_snippet_name_is_read_by_a_test_and_used_once():
    named = [block.name for block in blocks() if block.name]
    assert len(named) == len(set(named)), sorted(n for n in named if named.count(n) > 1)
    read = names_read_by_tests()
    unread = sorted(set(named) - read)
    assert not unread, f"blocks marked as run by a test that no test reads: {unread}"
    missing = sorted(read - set(named))
    assert not missing, f"tests read snippets no block is marked with: {missing}"


def test_reasons_say_something():
    for block in blocks():
        if block.reason is not None:
            assert len(block.reason.split()) >= 4, f"{block.where}: say why it is not run"


def test_the_markers_are_read_as_written(tmp_path: Path):
    page = tmp_path / "page.md"
    page.write_text(
        "text\n\n<!-- snippet: one -->\n```toml\na = 1\n```\n\n- item\n\n"
        "  <!-- not run: needs a key we do not have -->\n  ```python\n  x = 1\n  ```\n\n"
        "```text\nno marker\n```\n"
    )
    one, two, three = parse(page)
    assert (one.name, one.reason, one.language, one.text) == ("one", None, "toml", "a = 1\n")
    assert (two.name, two.reason, two.text) == (None, "needs a key we do not have", "x = 1\n")
    assert (three.name, three.reason, three.line) == (None, None, 15)
