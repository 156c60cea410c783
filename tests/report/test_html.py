"""The HTML report: written by real sessions (plain and under xdist), read back with an HTML
parser, and rendered by a real headless browser where one is installed."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zlib
from html.parser import HTMLParser
from pathlib import Path

import pytest

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
