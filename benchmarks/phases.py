"""Where a parallel run's fixed cost goes: W0 (4 simulated models x 10 tests x 0.5 s, cap 4,
``-n 4``) cut into phases, for this install and optionally another (``--other PYTHON``: a
virtualenv with another version of the plugin), run alternately.

Phases, from the controller's process start: importing pytest and the plugins (to its
``pytest_sessionstart``), starting the workers (to the last worker's first test), the tests,
the last test's end to the controller's ``pytest_sessionfinish``, the controller's finish
(to its ``pytest_unconfigure``), and the process's exit.

    python benchmarks/phases.py --rounds 3
    python benchmarks/phases.py --rounds 3 --other /tmp/before/bin/python
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

PROBE = """
import json, os, time
import pytest

OUT = os.environ["PHASES_OUT"]
WHO = os.environ.get("PYTEST_XDIST_WORKER", "ctl")
_seen = []
_last = [0.0]

def _write(event, **more):
    with open(OUT, "a") as fh:
        fh.write(json.dumps({"e": event, "who": WHO, "t": time.time(), **more}) + "\\n")

def pytest_sessionstart(session):
    _write("sessionstart")

def pytest_runtest_logstart(nodeid):
    if not _seen:
        _seen.append(1)
        _write("first")

def pytest_runtest_logfinish(nodeid):
    _last[0] = time.time()

@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session):
    _write("finish", last=_last[0])

@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    _write("unconfigure")
"""

PHASES = ("import", "workers", "tests", "to finish", "finish", "exit", "wall")


def project(root: Path, url: str) -> None:
    lines = ["[tool.pytest.ini_options]", 'addopts = ["-p", "no:randomly"]']
    lines += ["[tool.llm-matrix]", "max_concurrency = 4"]
    for i in range(4):
        lines += [f"[tool.llm-matrix.models.m{i}]", 'provider = "simulator"']
        lines.append(f'base_url = "{url}/v1"')
    (root / "pyproject.toml").write_text("\n".join(lines) + "\n")
    (root / "conftest.py").write_text(PROBE)
    (root / "test_w0.py").write_text(
        textwrap.dedent("""
        import pytest

        @pytest.mark.parametrize("n", range(10))
        def test_request(llm, n):
            assert llm.complete(f"request {n}") == "ok"
        """)
    )


def once(python: str, root: Path) -> dict[str, float]:
    out = root / "phases.jsonl"
    out.unlink(missing_ok=True)
    env = {**os.environ, "PHASES_OUT": str(out)}
    started = time.time()
    done = subprocess.run(
        [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "4"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
    )
    ended = time.time()
    if done.returncode != 0:
        sys.exit(f"{python}: pytest failed:\n{done.stdout[-2000:]}")
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    ctl = {r["e"]: r for r in rows if r["who"] == "ctl"}
    first = max(r["t"] for r in rows if r["e"] == "first")
    last = max(r["last"] for r in rows if r["e"] == "finish" and r["who"] != "ctl")
    return {
        "import": ctl["sessionstart"]["t"] - started,
        "workers": first - ctl["sessionstart"]["t"],
        "tests": last - first,
        "to finish": ctl["finish"]["t"] - last,
        "finish": ctl["unconfigure"]["t"] - ctl["finish"]["t"],
        "exit": ended - ctl["unconfigure"]["t"],
        "wall": ended - started,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--other", help="another virtualenv's python, run alternately")
    args = parser.parse_args()
    pythons = {"this": sys.executable} | ({"other": args.other} if args.other else {})
    results: dict[str, list[dict[str, float]]] = {name: [] for name in pythons}
    with tempfile.TemporaryDirectory(prefix="llm-matrix-phases-") as tmp:
        root = Path(tmp)
        (root / "sim.toml").write_text(
            'default_reply = "ok"\n'
            + "".join(f'[models."m{i}"]\nlatency = 0.5\n' for i in range(4))
        )
        command = [sys.executable, "-m", "pytest_llm_matrix.simulator", "--port", "0"]
        sim = subprocess.Popen(
            [*command, "--config", str(root / "sim.toml")],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert sim.stdout is not None
            project(root, sim.stdout.readline().strip().rsplit(" ", 1)[-1])
            for _ in range(args.rounds):
                for name, python in pythons.items():
                    results[name].append(once(python, root))
        finally:
            sim.terminate()
            sim.wait()
    print(f"W0 phases, seconds: medians of {args.rounds} rounds [min-max]")
    print(f"  {'':6}" + "".join(f"{phase:>18}" for phase in PHASES))
    for name, runs in results.items():
        cells = []
        for phase in PHASES:
            values = [run[phase] for run in runs]
            cells.append(f"{statistics.median(values):.2f} [{min(values):.2f}-{max(values):.2f}]")
        print(f"  {name:6}" + "".join(f"{cell:>18}" for cell in cells))


if __name__ == "__main__":
    main()
