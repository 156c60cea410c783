"""The per-model summary: the same numbers with and without xdist."""

from __future__ import annotations

import pytest

SUITE = """
import pytest

def test_capital(llm):
    assert llm.complete("What is the capital of France?") == "Paris"

@pytest.mark.parametrize("n", range(3))
def test_default(llm, n):
    assert llm.complete(f"hello {n}") == "ok"

def test_skipped(llm_model):
    pytest.skip("not today")

@pytest.mark.xfail(reason="known")
def test_xfail(llm_model):
    assert False

def test_no_model():
    pass

@pytest.fixture
def broken(llm_model):
    raise RuntimeError("setup broke")

def test_error(broken):
    pass
"""


def table(result: pytest.RunResult) -> dict[str, list[str]]:
    lines = result.outlines
    start = next(
        i
        for i, line in enumerate(lines)
        if "llm-matrix:" in line and "models" in line and line.startswith("=")
    )
    rows = {}
    for line in lines[start + 2 :]:
        cells = line.split()
        if not cells or line.startswith(("=", "_")) or cells[0].endswith(":"):
            break
        header = lines[start + 1].split()
        outcomes = header.index("pass") - 1  # the columns between "model" and "pass rate"
        rows[cells[0]] = cells[1 : 2 + outcomes]  # the outcomes and the pass rate
    return rows


def test_counts_per_model(pytester, write_config, xdist_args):
    write_config()
    pytester.makepyfile(SUITE)
    result = pytester.runpytest_subprocess("--models=sims,hosted", *xdist_args)
    # 7 model tests x 3 models (the hosted one skipped: no key) + 1 test without a model
    result.assert_outcomes(passed=8, failed=1, skipped=9, xfailed=2, errors=2)
    rows = table(result)
    # passed failed error skipped xfailed pass-rate
    assert rows["sim-fast"] == ["4", "0", "1", "1", "1", "80.0%"]
    assert rows["sim-weak"] == ["3", "1", "1", "1", "1", "60.0%"]
    assert rows["gpt-4o.mini-2"] == ["0", "0", "0", "7", "0", "-"]
    assert rows["total"] == ["7", "1", "2", "9", "2", "70.0%"]
    result.stdout.fnmatch_lines(
        ["gpt-4o.mini-2: unavailable: LLM_MATRIX_TEST_UNSET_KEY is not set"]
    )


def test_non_model_tests_run_once(pytester, write_config, xdist_args):
    write_config()
    pytester.makepyfile("def test_a():\n    pass\n\ndef test_m(llm_model):\n    pass\n")
    result = pytester.runpytest_subprocess("--models=sims", "-v", *xdist_args)
    result.assert_outcomes(passed=3)
    assert sum("test_a" in line and "PASSED" in line for line in result.outlines) == 1


def test_optional_model_failures_do_not_fail_the_run(pytester, write_config):
    write_config(
        """
        [tool.llm-matrix.models.main]
        provider = "simulator"
        [tool.llm-matrix.models.candidate]
        provider = "simulator"
        required = false
        """
    )
    pytester.makepyfile(
        """
        def test_m(llm_model):
            assert llm_model.name == "main"
        """
    )
    result = pytester.runpytest("--models=all")
    result.assert_outcomes(passed=1, failed=1)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["optional models (required = false) failed: candidate;*"])

    pytester.makepyfile(
        """
        def test_m(llm_model):
            assert llm_model.name == "candidate"
        """
    )
    required_failed = pytester.runpytest("--models=all")
    assert required_failed.ret == pytest.ExitCode.TESTS_FAILED


def test_one_simulator_serves_every_worker(pytester, write_config, monkeypatch):
    write_config()
    record = pytester.path / "seen.txt"
    monkeypatch.setenv("SEEN_FILE", str(record))
    pytester.makepyfile(
        """
        import os
        import pytest

        @pytest.mark.parametrize("n", range(6))
        def test_url(llm, llm_model, n):
            assert llm.complete("hi") == "ok"
            with open(os.environ["SEEN_FILE"], "a") as fh:
                fh.write(f"{os.environ['PYTEST_XDIST_WORKER']} {llm_model.base_url}\\n")
        """
    )
    result = pytester.runpytest_subprocess("--models=sims", "-n", "2", "-p", "no:randomly")
    result.assert_outcomes(passed=12)
    seen = [line.split() for line in record.read_text().splitlines()]
    assert {worker for worker, _ in seen} == {"gw0", "gw1"}
    assert len({url for _, url in seen}) == 1


#: Test ids and names that would be markup if a summary quoted them carelessly: a code span
#: closed early around a link, an image, HTML, table pipes, a code fence.
HOSTILE_IDS = [
    "` [click me](https://evil.example/login) `",
    "![i](https://evil.example/i.png)",
    "<script>alert(1)</script>",
    "a|b|c",
    "```",
]

HOSTILE_PROJECT = """
[tool.llm-matrix.simulator]
default_reply = "ok"

[tool.llm-matrix.models."sim|`x`"]
provider = "simulator"

[tool.llm-matrix.models.sim-weak]
provider = "simulator"
simulate = { wrong = ["(?i)capital"], wrong_reply = "Lyon" }

[tool.llm-matrix.models.hosted]
provider = "openai"
api_key_env = "K`<b>bold</b>`[c](https://evil.example)![i](https://evil.example/i.png)"
"""

HOSTILE_SUITE = f"""
import os
import pytest

HOSTILE = {HOSTILE_IDS!r}

@pytest.mark.parametrize("s", HOSTILE, ids=HOSTILE)
def test_everywhere(llm, s):
    assert llm.complete(s) == "never"

@pytest.mark.parametrize("s", HOSTILE, ids=HOSTILE)
def test_some(llm, s):
    assert llm.complete("capital " + s) == "ok"

@pytest.mark.parametrize("s", HOSTILE, ids=HOSTILE)
def test_flips(llm, s):  # fails once the file "flip" exists: a change against the baseline
    assert not os.path.exists("flip")
"""


class Rendered:
    """A Markdown page as a renderer shows it (CommonMark with GitHub's tables), read back
    with an HTML parser: its tags, links, the cells of each table row and the code text."""

    def __init__(self, text: str) -> None:
        from html.parser import HTMLParser

        from markdown_it import MarkdownIt  # (a dependency of twine, in the dev extra)

        self.html = MarkdownIt("commonmark").enable("table").render(text)
        self.tags: set[str] = set()
        self.links: list[str] = []
        self.rows: list[list[str]] = []
        self.code: list[str] = []
        page = self

        class Parser(HTMLParser):
            def __init__(self) -> None:
                super().__init__()
                self.stack: list[str] = []  # the open elements

            def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
                page.tags.add(tag)
                page.links += [f"{tag} {v}" for k, v in attrs if k in ("href", "src")]
                if tag == "tr":
                    page.rows.append([])
                elif tag in ("td", "th"):
                    page.rows[-1].append("")
                elif tag == "code":
                    page.code.append("")
                self.stack.append(tag)

            def handle_endtag(self, tag: str) -> None:
                self.stack.pop()

            def handle_data(self, data: str) -> None:
                if "code" in self.stack:
                    page.code[-1] += data
                if {"td", "th"} & set(self.stack):
                    page.rows[-1][-1] += data

        Parser().feed(self.html)


def test_the_step_summary_quotes_ids_and_names_as_code(pytester, write_config, monkeypatch):
    """Test ids, aliases and messages holding backticks, links, images, HTML and pipes are
    shown as they are, in code: no link, image or HTML from them, no extra table column."""
    summary = pytester.path / "summary.md"
    write_config(HOSTILE_PROJECT)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    pytester.makepyfile(test_suite=HOSTILE_SUITE)
    pytester.runpytest_subprocess("--models=all", "--llm-report=base.json").assert_outcomes(
        passed=15, failed=15, skipped=15
    )
    (pytester.path / "flip").touch()
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    result = pytester.runpytest_subprocess("--models=all", "--llm-baseline=base.json")
    result.assert_outcomes(passed=5, failed=25, skipped=15)
    page = Rendered(summary.read_text())
    assert page.links == []
    assert {"a", "img", "script", "b"}.isdisjoint(page.tags), page.html
    header, *rows = page.rows
    assert header[0] == "model"
    assert [row[0] for row in rows] == ["sim|`x`", "sim-weak", "hosted", "total"]
    assert {len(row) for row in rows} == {len(header)}  # no cell split by a pipe
    for hostile in HOSTILE_IDS:  # shown whole, in code
        assert f"test_suite.py::test_everywhere[{hostile}]" in page.code
        assert any(f"test_some[sim-weak-{hostile}]" in code for code in page.code)
    assert "hosted" in page.code
    assert any(code.startswith("K`<b>bold</b>`[c](https://evil.example)") for code in page.code)
    fence = next(code for code in page.code if code.startswith("against the baseline"))
    for hostile in HOSTILE_IDS:  # the baseline's changes stay inside their code block
        assert f"test_suite.py::test_flips[sim-weak-{hostile}]" in fence


def test_markdown_quotes_what_only_a_merged_report_can_hold():
    """A merged report's names and ids may hold what pytest never puts in an id: line
    breaks, backticks at both ends, HTML in a count. All stay in code, one line each."""
    from pytest_llm_matrix.report import render
    from pytest_llm_matrix.report.stats import ModelStats

    odd = ModelStats()
    odd.counts["passed"] = "<img src=x>|2"  # type: ignore[assignment]  (a bad merged count)
    text = render.markdown(
        [("m|1\n| x |", odd), ("``m2``", ModelStats())],
        {"m\n# gone": "line one\n[c](https://evil.example)"},
        ["t.py::test_a[`x\n- ![i](https://evil.example/i.png)]"],
        {"t.py::test_b": ["t.py::test_b[`` ` ``]", "t.py::test_b[\r\n<b>]"]},
    )
    page = Rendered(text)
    assert page.links == []
    assert {"a", "img", "b", "h1"}.isdisjoint(page.tags), page.html
    header, *rows = page.rows
    assert [row[0] for row in rows] == ["m|1\\n| x |", "``m2``"]
    assert {len(row) for row in rows} == {len(header)}
    assert rows[0][1] == "<img src=x>|2"
    assert page.code[-5:] == [
        "m\\n# gone",
        "line one\\n[c](https://evil.example)",
        "t.py::test_a[`x\\n- ![i](https://evil.example/i.png)]",
        "t.py::test_b[`` ` ``]",
        "t.py::test_b[\\r\\n<b>]",
    ]
