"""The reports of a big run with transcripts: their sizes and the time to write them.

A real run of T tests on 8 simulated models (no latency), each test one chat call whose
prompt and answer are about 500 characters each (about 1 KB of transcript per test and
model), with ``-n 2``, ``--llm-report`` and ``--llm-html``: with transcripts and the default
budget (20 MB), with every transcript kept (no budget to speak of), and without transcripts
(``--llm-transcript-chars=0``). A conftest times the controller's writing of its outputs
(the JSON report and the HTML report, each redacted; and the baseline pytest's cache keeps).
Prints each file's size, the tests whose transcripts the budget left out, and the time to
write them.

    python benchmarks/report_size.py [--tests 5000] [--models 8]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

CONFIG = """
[tool.pytest.ini_options]
addopts = ["-p", "no:randomly"]

[tool.llm-matrix.simulator]
default_reply = "{reply}"
"""

MODEL = """
[tool.llm-matrix.models.sim-{n}]
provider = "simulator"
input_price = 1
output_price = 2
"""

CONFTEST = """
import sys
import time

from pytest_llm_matrix.report import summary

_write = summary.Summary._write_outputs


def _timed(self, exit_status):
    started = time.perf_counter()
    _write(self, exit_status)
    print(f"WRITE-SECONDS {time.perf_counter() - started:.3f}", file=sys.stderr)


summary.Summary._write_outputs = _timed
"""

TESTS = """
import pytest

PROMPT = "Summarise the customer's message in one paragraph. " * 10

@pytest.mark.parametrize("n", range({tests}))
def test_answer(llm, n):
    assert llm.complete(f"{{n}}: {{PROMPT}}")
"""


def run(folder: Path, chars: int, budget: int) -> dict[str, float]:
    for name in ("r.json", "r.html"):
        (folder / name).unlink(missing_ok=True)
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-n", "2", "-q", "--models=all",
         "--llm-report=r.json", "--llm-html=r.html", f"--llm-transcript-chars={chars}",
         f"--llm-transcript-budget={budget}", "--llm-progress=off"],
        cwd=folder, capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": "0"},
    )  # fmt: skip
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(done.stdout[-3000:] + done.stderr[-3000:])
    seconds = [
        float(line.split()[1]) for line in done.stderr.splitlines() if "WRITE-SECONDS" in line
    ]
    report = json.loads((folder / "r.json").read_text())
    return {
        "dropped": report["transcripts"]["dropped_tests"],
        "wall": wall,
        "write": seconds[0],
        "json": (folder / "r.json").stat().st_size / 1e6,
        "html": (folder / "r.html").stat().st_size / 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", type=int, default=5000)
    parser.add_argument("--models", type=int, default=8)
    args = parser.parse_args()
    reply = "The customer asks for a refund of a damaged order and wants it soon. " * 7
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        models = "".join(MODEL.format(n=n) for n in range(args.models))
        (root / "pyproject.toml").write_text(CONFIG.format(reply=reply.strip()) + models)
        (root / "conftest.py").write_text(textwrap.dedent(CONFTEST))
        (root / "test_big.py").write_text(TESTS.format(tests=args.tests))
        cells = args.tests * args.models
        print(f"{args.tests:,} tests x {args.models} models = {cells:,} test x model cells, -n 2")
        for chars, budget, label in (
            (4000, 20, "default budget"),
            (4000, 200, "every transcript"),
            (0, 20, "no transcripts"),
        ):
            got = run(root, chars, budget)
            print(
                f"  {label:<17} JSON {got['json']:6.1f} MB  HTML {got['html']:6.1f} MB  "
                f"written in {got['write']:5.2f} s  transcripts left out: "
                f"{got['dropped']:,}  (the whole run: {got['wall']:.0f} s)"
            )


if __name__ == "__main__":
    main()
