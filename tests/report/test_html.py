"""The HTML report: written by real sessions (plain and under xdist), read back with an HTML
parser, and rendered by a real headless browser where one is installed."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import zlib
from html import unescape
from html.parser import HTMLParser
from pathlib import Path

import pytest

from pytest_llm_matrix.calls import transcript
from pytest_llm_matrix.report import html

ROOT = Path(__file__).resolve().parents[2]

PROJECT = """
[tool.pytest.ini_options]
asyncio_default_fixture_loop_scope = "function"

[tool.llm-matrix.simulator]
default_reply = "ok"

[tool.llm-matrix.models.sim-cheap]
provider = "simulator"
input_price = 0.1
output_price = 0.2
simulate = { wrong = ["q2$"], wrong_reply = "no" }

[tool.llm-matrix.models.sim-dear]
provider = "simulator"
input_price = 5.0
output_price = 10.0
simulate = { latency = 0.05 }

[tool.llm-matrix.models.sim-unpriced]
provider = "simulator"
"""

SUITE = """
import pytest

@pytest.mark.parametrize("n", range(4))
def test_answer(llm, n):
    assert llm.complete(f"q{n}") == "ok"

@pytest.mark.llm(repeat=3)
def test_repeated(llm):
    assert llm.complete("again") == "ok"

@pytest.mark.llm(models=["sim-dear"])
def test_only_dear(llm):
    pytest.skip("not today")
"""


class Page(HTMLParser):
    """What the checks need from the page: the grid's cells, and anything fetched."""

    def __init__(self) -> None:
        super().__init__()
        self.cells: list[dict[str, str | None]] = []
        self.fetched: list[str] = []
        self.tags: set[str] = set()
        self.headers: list[str] = []
        self._in_grid_head = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        self.tags.add(tag)
        if tag == "td" and "c" in (found.get("class") or "").split():
            self.cells.append(found)
        for name in ("src", "href"):
            if found.get(name):
                self.fetched.append(f"{tag} {name}={found[name]}")
        if tag == "link":
            self.fetched.append(f"link {found}")


def parse(text: str) -> Page:
    page = Page()
    page.feed(text)
    return page


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["plain", "n2"])
def test_the_grid_has_one_cell_per_test_and_model(pytester, monkeypatch, workers):
    monkeypatch.delenv("TEST_MODELS", raising=False)
    pytester.makefile(".toml", pyproject=PROJECT)
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest("--models=all", "--llm-html=out/report.html", *workers)
    result.assert_outcomes(passed=14, failed=1, skipped=7)
    text = (pytester.path / "out/report.html").read_text()
    page = parse(text)
    assert page.fetched == []  # nothing loaded from anywhere: styles and script inline
    assert {"style", "script", "svg", "table"} <= page.tags
    # 4 + 1 tests on 3 models, and test_only_dear on sim-dear alone
    cells = {(c["data-test"], c["data-model"]): c for c in page.cells if c.get("data-test")}
    tests = {t for t, _ in cells}
    assert len(tests) == 6
    assert len(page.cells) == len(tests) * 3  # one per test and model, empty ones included
    assert len(cells) == 16
    failing = cells["test_suite.py::test_answer[2]", "sim-cheap"]
    assert failing["data-outcome"] == "failed"
    assert failing["title"].startswith("AssertionError: assert 'no' == 'ok'")
    repeated = cells["test_suite.py::test_repeated", "sim-dear"]
    assert repeated["data-outcome"] == "passed"
    skipped = cells["test_suite.py::test_only_dear", "sim-dear"]
    assert skipped["data-outcome"] == "skipped"
    assert skipped["title"] == "not today"
    assert "pass 3/3" in text  # k/N of a repeated test
    # the plot: cost against pass rate; the unpriced model is said, not drawn
    assert "not plotted (no known cost or pass rate): sim-unpriced" in text
    assert "sim-cheap &#9733;" in text  # the cheap model is on the front
    assert "sim-dear &#9733;" in text  # the dear one passes more: on the front too


def test_the_pareto_front():
    points = {"a": (1.0, 0.9), "b": (2.0, 0.95), "c": (2.5, 0.9), "d": (0.5, 0.5), "e": (3.0, 0.95)}
    assert html.pareto_front(points) == ["d", "a", "b"]  # c is beaten by a, e by b


def test_the_page_stays_small_for_hundreds_of_tests_and_tens_of_models():
    models = [f"model-{m:02d}" for m in range(20)]
    report = {
        "selection": {"models": models, "selected_by": "--models"},
        "created": "2026-11-29T00:00:00+00:00",
        "plugin_version": "0",
        "models": {
            m: {
                "outcomes": dict.fromkeys(("passed", "failed", "error", "skipped"), 1),
                "pass_rate": 0.5, "cost_usd": 0.01 * (i + 1), "input_tokens": 1,
                "latency_p50": 0.1, "requests": 1, "required": True,
            }
            for i, m in enumerate(models)
        },
        "tests": [
            {"test": f"tests/test_x.py::test_{t:03d}", "model": m, "outcome": "failed",
             "message": "AssertionError: " + "x" * 500}
            for t in range(300)
            for m in models
        ],
    }  # fmt: skip
    text = html.render(report)
    assert len(parse(text).cells) == 300 * 20
    assert len(text.encode()) < 4_000_000  # messages are cut to 300 characters


def _stats(**fields):
    """A model's stats row as the report has it; ``fields`` override."""
    row = {
        "outcomes": {"passed": 1, "failed": 0, "error": 0, "skipped": 0},
        "pass_rate": 1.0, "cost_usd": None, "input_tokens": 0, "output_tokens": 0,
        "latency_p50": 0.5, "latency_p95": 0.9, "requests": 1, "required": True,
    }  # fmt: skip
    return row | fields


def synthetic(models, tests, **stats):
    """A report of ``tests`` (dicts with test, model, outcome and any more fields) on
    ``models``; ``stats`` by model override their stats rows."""
    return {
        "selection": {"models": list(models), "selected_by": "--models"},
        "created": "2026-11-29T00:00:00+00:00",
        "plugin_version": "0",
        "models": {m: _stats(**stats.get(m, {})) for m in models},
        "tests": [
            {"nodeid": f"{t['test']}[{t['model']}]", "duration": 0.1, "cost_usd": None,
             "spend": {}, **t}
            for t in tests
        ],
    }  # fmt: skip


class Grid(HTMLParser):
    """The grid's rows: each its attributes and its cells' (attributes, text)."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[tuple[dict[str, str | None], list[tuple[dict[str, str | None], str]]]]
        self.rows = []
        self._in_grid = False
        self._cell: dict[str, str | None] | None = None
        self._text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table" and ("id", "grid") in attrs:
            self._in_grid = True
        elif self._in_grid and tag == "tr":
            self.rows.append((dict(attrs), []))
        elif self._in_grid and tag == "td":
            self._cell, self._text = dict(attrs), ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._in_grid = False
        elif tag == "td" and self._cell is not None:
            self.rows[-1][1].append((self._cell, self._text.strip()))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._text += data


def grid_rows(text):
    grid = Grid()
    grid.feed(text)
    return [row for row in grid.rows if row[1]]  # the head's row has no td


def test_the_grid_keeps_the_reports_order_and_says_not_run():
    """Question 0..11 in the report's order, not sorted as text (0, 1, 10, 11, 2, ...); a
    test a model did not run says so in its cell."""
    names = [f"test_q.py::test_question[Question {n}]" for n in range(12)]
    tests = [{"test": name, "model": "a", "outcome": "passed"} for name in names]
    tests += [{"test": name, "model": "b", "outcome": "failed"} for name in names[::2]]
    rows = grid_rows(html.render(synthetic(["a", "b"], tests)))
    assert [cells[0][1] for _, cells in rows] == names
    assert [row["data-i"] for row, _ in rows] == [str(i) for i in range(12)]  # the way back
    for number, (_, (_, (a, _), (b, on_b))) in enumerate(rows):
        assert a["data-outcome"] == "passed"
        if number % 2:
            assert on_b == "not run"
            assert b["class"] == "c none"
            assert "data-test" not in b  # nothing to open
        else:
            assert b["data-outcome"] == "failed"
            assert on_b == "FAIL"


def exchange(model, answer, *, role="model", prompt="What is the capital of France?", **more):
    """One exchange of a transcript, as the JSON report has it."""
    return {
        "model": model, "role": role, "api": "chat",
        "input": [{"role": "system", "text": "You answer geography questions in one line."},
                  {"role": "user", "text": prompt}],
        "answer": answer, "status": 200, "stream": False, "replayed": False,
        "input_tokens": 21, "output_tokens": 9, "latency_s": 0.25, **more,
    }  # fmt: skip


class Data(HTMLParser):
    """The page's JSON data block: its attributes and its text, as the browser reads it."""

    def __init__(self) -> None:
        super().__init__()
        self.blocks: list[tuple[dict[str, str | None], str]] = []
        self._open = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._open = tag == "script"
        if self._open:
            self.blocks.append((dict(attrs), ""))

    def handle_endtag(self, tag: str) -> None:
        self._open = False

    def handle_data(self, data: str) -> None:
        if self._open:
            attrs, text = self.blocks[-1]
            self.blocks[-1] = (attrs, text + data)


def page_data(text):
    """The cells' data as the page's script reads it, shared texts put back in place."""
    parser = Data()
    parser.feed(text)
    (block,) = [text for attrs, text in parser.blocks if attrs.get("id") == "llm-data"]
    data = json.loads(block)
    for cell in data["cells"]:
        for step in cell.get("transcript", []):
            for message in step["input"]:
                if isinstance(message["text"], int):
                    message["text"] = data["texts"][message["text"]]
            if isinstance(step["answer"], int):
                step["answer"] = data["texts"][step["answer"]]
    return data


HOSTILE_ANSWER = (
    "</script><img src=x onerror=alert(1)><script>alert(2)</script>\"'<!-- \u2028\u2029 & "
    "</SCRIPT >" + "x" * 40
)


def test_the_transcripts_are_data_the_page_reads_back_as_they_were():
    """Each cell's transcript, failure and verdicts are one JSON block, read back whole;
    a text sent to every model (the prompt) is written once."""
    long_prompt = "Answer with the city only. " * 10
    tests = []
    for model in ("a", "b", "c"):
        tests.append({
            "test": "t.py::test_capital", "model": model, "outcome": "failed",
            "message": "AssertionError: judged wrong", "failure": "AssertionError: judged wrong\n"
            "assert False\n<b>line three</b>",
            "verdicts": [{"passed": False, "reason": "not Paris", "score": 0.2, "judge": "j"}],
            "transcript": [
                exchange(model, f"Lyon, says {model}", prompt=long_prompt, run=1),
                exchange("j", '{"passed": false}', role="judge", stream=True, latency_s=None,
                         verdict={"passed": False, "reason": "not Paris", "score": None}),
            ],
            "transcript_more": 3, "duration": 1.23456789, "cost_usd": 0.000123456,
        })  # fmt: skip
    report = synthetic(["a", "b", "c"], tests)
    text = html.render(report)
    data = page_data(text)
    assert data["models"] == ["a", "b", "c"]
    for cell, test in zip(data["cells"], report["tests"], strict=True):
        for key in ("failure", "verdicts"):
            assert cell[key] == test[key]
        assert cell["transcript"] == test["transcript"]
        assert cell["transcript_more"] == 3
        assert cell["duration"] == 1.235  # as the panel shows them
        assert cell["cost_usd"] == 0.000123
        assert "spend" not in cell  # the JSON report has it; the page has no use for it
        assert "message" not in cell  # the cell's title
        for key in ("test", "model", "outcome"):
            assert key not in cell  # the cell's data-test, data-model, data-outcome
    assert text.count(long_prompt) == 1  # once, for three models
    # a cell says which entry it opens
    cells = [c for c in parse(text).cells if c.get("data-i")]
    assert [c["data-model"] for c in cells] == ["a", "b", "c"]
    for c in cells:
        entry = data["cells"][int(c["data-i"] or 0)]
        assert entry["transcript"][0]["answer"] == f"Lyon, says {c['data-model']}"


def test_an_answer_that_is_markup_stays_inert_text():
    """An answer, a reason and a failure holding ``</script>``, tags and line separators
    end no block and open no tag: the page has its own tags only, its two scripts, and the
    data reads back the texts unchanged."""
    tests = [{
        "test": "t.py::test_x", "model": "a", "outcome": "failed",
        "message": HOSTILE_ANSWER, "failure": HOSTILE_ANSWER,
        "verdicts": [{"passed": False, "reason": HOSTILE_ANSWER, "score": None, "judge": "j"}],
        "transcript": [exchange("a", HOSTILE_ANSWER, prompt=HOSTILE_ANSWER)],
    }]  # fmt: skip
    text = html.render(synthetic(["a"], tests))
    page = parse(text)
    assert page.tags <= OWN_TAGS, page.tags - OWN_TAGS
    assert "img" not in page.tags
    assert text.count("<script") == 2
    assert text.lower().count("</script") == 2
    assert "<!--" not in text
    data = text[text.index('id="llm-data">') : text.index("</script>")]
    assert "\u2028" not in data  # JavaScript before ES2019 ended a string there
    assert "\u2029" not in data
    (cell,) = page_data(text)["cells"]
    assert cell["transcript"][0]["answer"] == HOSTILE_ANSWER
    assert cell["transcript"][0]["input"][1]["text"] == HOSTILE_ANSWER
    assert cell["failure"] == HOSTILE_ANSWER
    assert cell["verdicts"][0]["reason"] == HOSTILE_ANSWER
    (attrs,) = [c for c in page.cells if c.get("data-i")]
    assert attrs["title"] == HOSTILE_ANSWER  # the first line, an attribute's text
    assert set(attrs) == {"class", "data-key", "data-i", "data-test", "data-model",
                          "data-outcome", "title"}  # fmt: skip


def test_a_report_without_transcripts_still_opens_its_cells():
    """Reports of earlier versions (no transcript): the page's data has each cell's duration,
    and no transcript; its test, model, outcome and message are the cell's attributes."""
    tests = [{"test": "t.py::test_x", "model": "a", "outcome": "failed", "message": "boom"}]
    text = html.render(synthetic(["a"], tests))
    (cell,) = page_data(text)["cells"]
    assert cell == {"duration": 0.1}  # and no cost: none known
    (attrs,) = [c for c in parse(text).cells if c.get("data-i")]
    assert attrs["title"] == "boom"
    assert grid_rows(text)[0][1][0][1] == "t.py::test_x"  # no button to open answers: none kept
    assert "<button" not in text[text.index('id="grid"') :].split("</table>")[0]


class Plot(HTMLParser):
    """The plot's frame, markers and texts."""

    def __init__(self) -> None:
        super().__init__()
        self.view: list[float] = []
        self.frame: dict[str, float] = {}
        self.circles: list[dict[str, float]] = []
        self.texts: list[tuple[dict[str, str | None], str]] = []
        self._text: dict[str, str | None] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "svg":
            self.view = [float(v) for v in (found["viewbox"] or "").split()]
        elif tag == "rect":
            self.frame = {k: float(found[k] or 0) for k in ("x", "y", "width", "height")}
        elif tag == "circle":
            self.circles.append({k: float(found[k] or 0) for k in ("cx", "cy", "r")})
        elif tag == "text":
            self._text = found
            self.texts.append((found, ""))

    def handle_endtag(self, tag: str) -> None:
        if tag == "text":
            self._text = None

    def handle_data(self, data: str) -> None:
        if self._text is not None:
            attrs, text = self.texts[-1]
            self.texts[-1] = (attrs, text + data)


def plot_of(text):
    plot = Plot()
    plot.feed(text)
    return plot


LONG_NAME = "an-extremely-long-model-alias-" * 6


@pytest.mark.parametrize(
    "stats",
    [
        {  # unpriced: no cost anywhere, latencies far apart, the worst and best rates
            "tiny": {"pass_rate": 0.0, "latency_p50": 0.001},
            "huge": {"pass_rate": 1.0, "latency_p50": 950.0},
            LONG_NAME: {"pass_rate": 1.0, "latency_p50": 900.0},
            "mid": {"pass_rate": 0.5, "latency_p50": 2.0},
        },
        {  # priced, from a fraction of a cent to a fortune, one with no latency known
            "tiny": {"pass_rate": 0.0, "cost_usd": 1e-7, "input_tokens": 1},
            "huge": {"pass_rate": 1.0, "cost_usd": 900.0, "input_tokens": 1},
            LONG_NAME: {"pass_rate": 1.0, "cost_usd": 850.0, "input_tokens": 1},
            "mid": {"pass_rate": 0.5, "cost_usd": 0.0, "input_tokens": 1, "latency_p50": None},
        },
    ],
    ids=["latency", "cost"],
)
def test_every_marker_and_label_of_the_plot_is_inside_its_frame(stats):
    text = html.render(synthetic(list(stats), [], **stats))
    plot = plot_of(text)
    left, top, width, height = plot.view
    frame = plot.frame
    assert len(plot.circles) == 4
    for c in plot.circles:  # inside the plotting area, not just the picture
        assert frame["x"] <= c["cx"] - c["r"]
        assert c["cx"] + c["r"] <= frame["x"] + frame["width"]
        assert frame["y"] <= c["cy"] - c["r"]
        assert c["cy"] + c["r"] <= frame["y"] + frame["height"]
    labels = {t: a for a, t in plot.texts if t.startswith(("tiny", "huge", "mid", "an-"))}
    for label, attrs in labels.items():
        x = float(attrs["x"] or 0)
        assert left <= x <= left + width
        assert top <= float(attrs["y"] or 0) <= top + height
        # 7px a character (about what the 12px font takes; chromium measures the real
        # widths below), on the side the anchor says
        if attrs.get("text-anchor") == "end":
            assert x - 7 * len(label) >= left, label
        else:
            assert x + 7 * len(label) <= left + width, label
    cut = next(label for label in labels if label.startswith("an-"))
    assert cut.endswith("\u2026")
    assert len(cut) < len(LONG_NAME)
    assert f"<title>{LONG_NAME}: pass rate 100.0%" in text
    if "cost_usd" in stats["tiny"]:
        assert "<h2>Cost and pass rate</h2>" in text
        assert "cost (USD) &mdash; marker size: latency p50" in text  # a free model: linear
        assert "mid &#9733;" in text  # free
        assert "tiny &#9733;" not in text  # dearer than mid, and passes less
        assert "huge &#9733;" not in text  # dearer than LONG_NAME, and passes as much
    else:
        assert "<h2>Latency and pass rate</h2>" in text
        assert "No model's cost is known (unpriced models)" in text
        assert "latency p50, log scale" in text
        assert "marker size" not in text  # all the same size: latency is the x axis
        assert "tiny &#9733;" in text  # the fastest
        assert "huge &#9733;" not in text  # LONG_NAME passes as much and is faster
        assert "not plotted" not in text


def test_models_at_one_point_get_a_label_each():
    """Three models with the same pass rate and latency: labels on one side of the markers
    on lines of their own (the markers overlap; the labels stay readable), in the frame."""
    models = ["gpt-4o-mini", "claude-haiku", "sim-weak"]
    plot = plot_of(html.render(synthetic(models, [])))
    labels = [(a.get("text-anchor"), float(a["y"] or 0)) for a, t in plot.texts if "\u2605" in t]
    assert len(labels) == 3
    for number, (side, y) in enumerate(labels):
        assert plot.frame["y"] < y <= plot.frame["y"] + plot.frame["height"]
        for other_side, other_y in labels[number + 1 :]:
            assert side != other_side or abs(y - other_y) >= 14


def test_the_plot_says_what_it_cannot_draw():
    stats = {
        "priced": {"cost_usd": 0.5, "input_tokens": 3},
        "unpriced": {},
        "unrated": {"pass_rate": None, "cost_usd": 0.2, "input_tokens": 3},
    }
    text = html.render(synthetic(list(stats), [], **stats))
    assert len(plot_of(text).circles) == 1  # costs known for some: the cost plot
    assert "not plotted (no known cost or pass rate): unpriced, unrated" in text
    stats = {"a": {"latency_p50": None}, "b": {"pass_rate": None}}
    text = html.render(synthetic(list(stats), [], **stats))
    assert plot_of(text).circles == []
    assert "no model to plot" in text
    assert "not plotted (no known latency or pass rate): a, b" in text


def _png_pixels_vary(path: Path) -> bool:
    """Whether a PNG is more than one flat colour (its decompressed rows hold many values)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    position, compressed = 8, b""
    while position < len(data):
        length = int.from_bytes(data[position : position + 4], "big")
        kind = data[position + 4 : position + 8]
        if kind == b"IDAT":
            compressed += data[position + 8 : position + 8 + length]
        position += 12 + length
    return len(set(zlib.decompress(compressed))) > 32


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (Debian: apt install chromium)"
)
def test_the_example_report_renders_in_a_headless_browser(monkeypatch, tmp_path):
    """The example project's report, with a baseline, rendered by chromium: not blank."""
    monkeypatch.delenv("TEST_MODELS", raising=False)
    project = tmp_path / "example"
    shutil.copytree(ROOT / "example_project", project, ignore=shutil.ignore_patterns("__pycache__"))
    common = ["-p", "no:cacheprovider", "--models=all", "--llm-record=replay"]
    base = subprocess.run(
        [sys.executable, "-m", "pytest", *common, "--llm-report=base.json", "-q"],
        cwd=project, capture_output=True, text=True,
    )  # fmt: skip
    assert (project / "base.json").exists(), base.stdout[-2000:]
    done = subprocess.run(
        [sys.executable, "-m", "pytest", *common, "--llm-baseline=base.json",
         "--llm-html=report.html"],
        cwd=project, capture_output=True, text=True,
    )  # fmt: skip
    page = project / "report.html"
    assert page.exists(), done.stdout[-2000:]
    shot = tmp_path / "report.png"
    subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         "--window-size=1200,1400", f"--screenshot={shot}", page.as_uri()],
        capture_output=True, timeout=120, check=False,
    )  # fmt: skip
    assert shot.exists()
    assert _png_pixels_vary(shot)
    assert "Against the baseline" in page.read_text()
    # the judged test's cell on sim-weak opens its transcript; its row shows every answer
    probed = tmp_path / "probed.html"
    probed.write_text(page.read_text().replace("</body>", EXAMPLE_PROBE + "</body>"))
    dom = chromium(probed, tmp_path, "--dump-dom")
    probe = json.loads(unescape(dom.split('<pre id="probe">')[1].split("</pre>")[0]))
    assert probe["open"] is True
    assert probe["answers"][0] == "I am not sure."
    assert probe["shown"] is True
    assert "It does not say how the customer gets a refund." in probe["panel"]
    assert "My order arrived damaged. What can I do?" in probe["panel"]
    fast, slow, weak, flaky = probe["columns"]
    for column in (fast, slow, flaky):
        assert "Sorry about that! Send us a photo and we will refund or replace it." in column
    assert "I am not sure." in weak
    assert probe["marks"] == ["I am not sure."]


#: For the example's report: opens the judged test's cell on sim-weak, expands its row.
EXAMPLE_PROBE = """<script>
var found={},grid=document.getElementById('grid');
var row=Array.from(grid.tBodies[0].rows).filter(function(r){
return r.textContent.indexOf('test_damaged_order_answer_passes_the_judge')>=0;})[0];
row.querySelector('td.c[data-model="sim-weak"]').click();
var panel=document.getElementById('panel');found.open=panel.open;
found.panel=document.getElementById('panel-body').innerText;
var texts=panel.querySelectorAll('.answer .text');
found.answers=Array.from(texts).map(function(t){return t.textContent;});
found.shown=texts[0].checkVisibility()&&texts[0].getBoundingClientRect().height>0;
document.dispatchEvent(new KeyboardEvent('keydown',{key:'Escape'}));
row.querySelector('button.more').click();var more=row.nextElementSibling;
found.columns=Array.from(more.querySelectorAll('.col')).map(function(c){return c.innerText;});
found.marks=Array.from(more.querySelectorAll('mark')).map(function(m){return m.textContent;});
var out=document.createElement('pre');out.id='probe';out.textContent=JSON.stringify(found);
document.body.appendChild(out);
</script>"""


def answers_report(models, answers, **stats):
    """A report of three questions on ``models``, in the order 2, 10, 1: ``answers[model]``
    is each one's answer, with a judge's exchange and verdict after it (None: not run on
    Question 2, and no answer kept on the others)."""
    tests = []
    for number in (2, 10, 1):
        for model in models:
            said = answers[model]
            if said is None and number == 2:
                continue
            passed = said is not None and "Paris" in said
            why = "assert False"
            tests.append({
                "test": f"t.py::test_capital[Question {number}]", "model": model,
                "outcome": "passed" if passed else "failed",
                **({} if passed else {"message": "AssertionError: the judge said no",
                                      "failure": f"AssertionError: the judge said no\n{why}"}),
                "verdicts": [{"passed": passed, "reason": f"{model} judged", "score": 0.5,
                              "judge": "judge-model"}],
                "transcript": [
                    exchange(model, said, prompt=f"Question {number}: France's capital?"),
                    exchange("judge-model", "{}", role="judge",
                             verdict={"passed": passed, "reason": "why", "score": None}),
                ][said is None :],
            })  # fmt: skip
    return synthetic(models, tests, **stats)


def chromium(page, tmp_path, *args):
    """Run headless chromium on ``page``; what it wrote on stdout."""
    done = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         f"--user-data-dir={tmp_path / 'profile'}", *args, page.as_uri()],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    return done.stdout


#: Run after the page's own script: clicks a cell, expands a row, sorts, measures the plot,
#: and writes what it found in <pre id="probe">.
PROBE = """<script>
var found={},grid=document.getElementById('grid');
function names(){return Array.from(grid.tBodies[0].rows).filter(function(r){
return r.dataset.i!=null;}).map(function(r){return r.cells[0].querySelector('code').textContent;});}
var cell=grid.querySelector('td.c[data-model="weak"]');cell.click();
var panel=document.getElementById('panel'),answer=panel.querySelector('.answer .text');
found.open=panel.open;found.panel=document.getElementById('panel-body').innerText;
found.answer=answer.textContent;found.answerShown=answer.checkVisibility()&&
answer.getBoundingClientRect().height>0;
document.dispatchEvent(new KeyboardEvent('keydown',{key:'Escape'}));found.closed=!panel.open;
var button=grid.querySelector('button.more');button.click();
var row=button.closest('tr').nextElementSibling;
found.expanded=button.getAttribute('aria-expanded');found.row=row.className;
found.columns=Array.from(row.querySelectorAll('.col')).map(function(c){return c.innerText;});
found.marks=Array.from(row.querySelectorAll('mark')).map(function(m){return m.textContent;});
var head=grid.tHead.rows[0].cells[0];found.order=[names()];
for(var k=0;k<3;k++){head.click();found.order.push(names());}
found.answersFollow=grid.tBodies[0].rows[1].className;
found.images=document.querySelectorAll('img').length;
var box=document.querySelector('svg').getBoundingClientRect();found.outside=[];
document.querySelectorAll('svg text, svg circle').forEach(function(e){
var b=e.getBoundingClientRect();found.drawn=(found.drawn||0)+1;
if(b.left<box.left||b.top<box.top||b.right>box.right||b.bottom>box.bottom)
found.outside.push(e.textContent||e.outerHTML);});
var out=document.createElement('pre');out.id='probe';out.textContent=JSON.stringify(found);
document.body.appendChild(out);
</script>"""


@pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (Debian: apt install chromium)"
)
def test_a_browser_opens_a_cells_transcript_and_a_rows_answers(tmp_path):
    """In chromium: a click on a cell shows its transcript (the answer visible, markup in
    it as text), Escape closes it; a row's button shows each model's answer side by side,
    the words that differ marked; sorting by the test is natural and comes back to the
    report's order; the plot's texts and markers are inside its frame as drawn."""
    hostile = "</script><img src=x onerror=alert(1)> Lyon"
    models = ["strong", "other", "weak", "mute", LONG_NAME]
    answers = {
        "strong": "The capital of France is Paris.",
        "other": "The capital of France is Paris, of course.",
        "weak": hostile,
        "mute": "",
        LONG_NAME: None,
    }
    stats = {
        "strong": {"pass_rate": 1.0, "latency_p50": 0.002},
        "other": {"pass_rate": 0.0, "latency_p50": 1000.0},
        "weak": {"pass_rate": 0.5, "latency_p50": 0.3},
        "mute": {"pass_rate": 0.0, "latency_p50": 0.3},
        LONG_NAME: {"pass_rate": 1.0, "latency_p50": 999.0},
    }
    page = tmp_path / "report.html"
    page.write_text(html.render(answers_report(models, answers, **stats)).replace(
        "</body>", PROBE + "</body>"))  # fmt: skip
    dom = chromium(page, tmp_path, "--dump-dom")
    probe = json.loads(unescape(dom.split('<pre id="probe">')[1].split("</pre>")[0]))
    assert probe["open"] is True
    assert probe["answer"] == hostile
    assert probe["answerShown"] is True
    for shown in ("FAIL", "AssertionError: the judge said no\nassert False", "weak judged",
                  "Question 2: France's capital?", "status 200", "judge-model"):  # fmt: skip
        assert shown in probe["panel"]
    assert probe["closed"] is True
    assert probe["images"] == 0  # the answer's <img> is text
    assert probe["expanded"] == "true"
    assert probe["row"] == "answers"
    strong, other, weak, mute, long = probe["columns"]
    assert "The capital of France is Paris." in strong
    assert "compared with this answer" in strong
    assert "Paris, of course." in other
    assert "3 words not in strong's" in other  # "Paris," is not "Paris."
    assert hostile in weak
    assert "empty answer" in mute
    assert "not run" in long
    assert probe["marks"] == ["Paris, of course.", hostile]
    first, up, down, back = probe["order"]
    question = "t.py::test_capital[Question {}]".format
    assert first == [question(2), question(10), question(1)]  # the report's order
    assert up == [question(1), question(2), question(10)]  # natural: 2 before 10
    assert down == [question(10), question(2), question(1)]
    assert back == first
    assert probe["answersFollow"] == "answers"  # the expanded row moved with its test
    assert probe["drawn"] > 5 + 2 * len(models)  # ticks, titles, markers and labels
    assert probe["outside"] == []  # as laid out, rotated titles and real font widths included


@pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (Debian: apt install chromium)"
)
def test_the_answers_side_by_side_in_a_screenshot(tmp_path):
    """A screenshot of a row's answers expanded (tmp_path/answers.png): not blank."""
    models = ["gpt-4o-mini", "claude-haiku", "sim-weak"]
    answers = {
        "gpt-4o-mini": "The capital of France is Paris. It has been since 987.",
        "claude-haiku": "Paris is the capital of France, and has been since 987.",
        "sim-weak": "Lyon, I think.\n[... 120 more characters not kept]",
    }
    page = tmp_path / "report.html"
    script = "<script>document.querySelector('#grid button.more').click();</script>"
    page.write_text(html.render(answers_report(models, answers)).replace(
        "</body>", script + "</body>"))  # fmt: skip
    shot = tmp_path / "answers.png"
    chromium(page, tmp_path, "--window-size=1100,1200", f"--screenshot={shot}")
    assert _png_pixels_vary(shot)


HOSTILE_PROJECT = """
[tool.pytest.ini_options]
asyncio_default_fixture_loop_scope = "function"

[tool.llm-matrix.simulator]
default_reply = "ok"

[tool.llm-matrix.models."<i>sim</i>\\"'|"]
provider = "simulator"

[tool.llm-matrix.models.sim-weak]
provider = "simulator"
simulate = { wrong = ["(?i)capital"], wrong_reply = "Lyon" }
"""

#: Ids and messages that would be markup, or would leave an attribute, if quoted carelessly.
HOSTILE = [
    "` [click me](https://evil.example/login) `",
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "'><a href=https://evil.example>x</a>",
    "a|b|c",
]

HOSTILE_SUITE = f"""
import os
import pytest

HOSTILE = {HOSTILE!r}

@pytest.mark.parametrize("s", HOSTILE, ids=HOSTILE)
def test_hostile(llm, s):
    assert os.path.exists("pass") or llm.complete("capital") == "ok", s + "\\n<b>line two</b>"
"""

#: Every tag the report writes itself.
OWN_TAGS = {
    "html", "head", "meta", "title", "style", "body", "h1", "h2", "p", "span", "table",
    "thead", "tbody", "tr", "th", "td", "code", "div", "ul", "li", "svg", "rect", "line",
    "text", "polyline", "g", "circle", "script", "dialog", "h3", "button",
}  # fmt: skip


def test_ids_names_and_messages_are_text_in_the_page(pytester, monkeypatch):
    """A session whose ids, alias and failure messages hold HTML, quotes and line breaks:
    each shows as text (in the grid, the table, the baseline's changes), never as markup."""
    monkeypatch.delenv("TEST_MODELS", raising=False)
    pytester.makefile(".toml", pyproject=HOSTILE_PROJECT)
    pytester.makepyfile(test_suite=HOSTILE_SUITE)
    (pytester.path / "pass").touch()
    pytester.runpytest("--models=all", "--llm-report=base.json").assert_outcomes(passed=10)
    (pytester.path / "pass").unlink()
    result = pytester.runpytest("--models=all", "--llm-baseline=base.json", "--llm-html=r.html")
    result.assert_outcomes(passed=5, failed=5)
    text = (pytester.path / "r.html").read_text()
    page = parse(text)
    assert page.fetched == []
    assert page.tags <= OWN_TAGS, page.tags - OWN_TAGS
    assert text.count("<script") == 2  # the report's own: its data and its script
    assert text.count('<script type="application/json" id="llm-data">') == 1
    alias = "<i>sim</i>\"'|"
    cells = {(c["data-test"], c["data-model"]): c for c in page.cells if c.get("data-test")}
    assert {model for _, model in cells} == {alias, "sim-weak"}
    for hostile in HOSTILE:
        failing = cells[f"test_suite.py::test_hostile[{hostile}]", "sim-weak"]
        assert failing["data-outcome"] == "failed"
        assert failing["title"].startswith(f"AssertionError: {hostile}")
        assert cells[f"test_suite.py::test_hostile[{hostile}]", alias]["data-outcome"] == "passed"
    assert "test_suite.py::test_hostile[sim-weak-&lt;script&gt;alert(1)&lt;/script&gt;]" in text
    assert "<code>&lt;i&gt;sim&lt;/i&gt;&quot;&#x27;|</code>" in text


def test_a_merged_reports_odd_values_are_escaped_too():
    """Values a merged report carries where numbers belong are text, not markup."""
    bad = "<img src=x onerror=alert(1)>"
    report = {
        "selection": {"models": ["m"], "selected_by": bad},
        "models": {
            "m": {
                "outcomes": {"passed": bad, "failed": bad, "error": bad, "skipped": bad},
                "pass_rate": None, "cost_usd": None, "requests": bad, "replayed": bad,
                "latency_p50": None,
            }
        },
        "tests": [{"test": bad, "model": "m", "outcome": bad, "message": bad,
                   "verdict": {"passed": bad, "runs": bad}}],
    }  # fmt: skip
    page = parse(html.render(report))
    assert "img" not in page.tags
    assert page.fetched == []


def test_the_page_knows_every_cut_marker_a_transcript_writes():
    """The script's pattern for the line that says a text was cut (shown muted, left out of
    the side-by-side comparison) matches what the plugin writes, thousands separators too."""
    page = html.render(
        synthetic(["m"], [{"test": "t.py::test_a", "model": "m", "outcome": "passed"}])
    )
    pattern = re.search(r"var CUT=/(.*?)/;", page)
    assert pattern is not None
    cut = re.compile(pattern.group(1))
    for text in (transcript.cut("x" * 5000, 10), transcript.cut("x" * 20, 10),
                 transcript.text_of(b"y" * 5000, 10)):  # fmt: skip
        assert cut.search(text), text
