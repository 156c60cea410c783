"""Parallel efficiency of a model matrix: sequential vs ``-n auto`` vs ``--llm-dist=load``.

Starts the simulator (a separate process) with set latencies, generates a suite of
M models x T tests, and runs it three ways. For each run it prints the wall time, the ideal
(the larger of total request time / global cap and each model's request time / its cap),
efficiency = ideal / wall, worker start-up (session start to a worker's first test) and
peak RSS per worker. A bare xdist session without the plugin (same worker count, trivial
tests) gives the start-up and RSS baseline.

    python benchmarks/parallel.py                 # W1 W2 W3 W0
    python benchmarks/parallel.py W0 W3 --no-sequential
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path


@dataclasses.dataclass
class Workload:
    name: str
    models: dict[str, float]  # alias -> latency per request, seconds
    tests: int  # per model
    global_cap: int | None
    model_cap: int | None
    target: str

    @property
    def ideal(self) -> float:
        total = sum(latency * self.tests for latency in self.models.values())
        bounds = [max(self.models.values())]  # no request is faster than its latency
        if self.global_cap:
            bounds.append(total / self.global_cap)
        if self.model_cap:
            bounds += [latency * self.tests / self.model_cap for latency in self.models.values()]
        return max(bounds)


WORKLOADS = {
    "W1": Workload("W1", {f"m{i}": 1.0 for i in range(4)}, 40, 8, 2, "efficiency >= 0.85"),
    "W2": Workload(
        "W2",
        {"slow": 2.0, "fast1": 0.2, "fast2": 0.2, "fast3": 0.2},
        20,
        8,
        2,
        "efficiency >= 0.85 (the slow model starts first and stays busy)",
    ),
    "W3": Workload("W3", {"only": 1.0}, 3, None, None, "-n auto not slower than no -n"),
    "W0": Workload(
        "W0",
        {f"m{i}": 0.5 for i in range(4)},
        10,
        4,
        None,
        "beat promptfoo (7.1-7.9 s measured here)",
    ),
}

# Records session start (controller), each worker's first test and its peak RSS.
PROBE = """
import json, os, resource, time
import pytest

OUT = os.environ["PARALLEL_BENCH_OUT"]
_first = []

def _write(row):
    with open(OUT, "a") as fh:
        fh.write(json.dumps(row) + "\\n")

def pytest_sessionstart(session):
    if not hasattr(session.config, "workerinput"):
        _write({"event": "start", "t": time.time()})

@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    if not _first:
        _first.append(time.time())
        _write({"event": "first", "worker": os.environ.get("PYTEST_XDIST_WORKER", "main"),
                "t": _first[0]})

def pytest_sessionfinish(session):
    if hasattr(session.config, "workerinput"):
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        _write({"event": "rss", "worker": os.environ["PYTEST_XDIST_WORKER"], "rss": rss})
"""


def make_project(root: Path, load: Workload, sim_url: str) -> None:
    lines = [
        "[tool.pytest.ini_options]",
        'addopts = ["-p", "no:randomly"]',
        "",
        "[tool.llm-matrix]",
    ]
    if load.global_cap:
        lines.append(f"max_concurrency = {load.global_cap}")
    for alias in load.models:
        lines += [
            "",
            f"[tool.llm-matrix.models.{alias}]",
            'provider = "simulator"',
            f'base_url = "{sim_url}/v1"',
        ]
        if load.model_cap:
            lines.append(f"max_concurrency = {load.model_cap}")
    root.joinpath("pyproject.toml").write_text("\n".join(lines) + "\n")
    root.joinpath("conftest.py").write_text(PROBE)
    root.joinpath("test_matrix.py").write_text(
        textwrap.dedent(f"""
        import pytest

        @pytest.mark.parametrize("n", range({load.tests}))
        def test_request(llm, n):
            assert llm.complete(f"request {{n}}") == "ok"
    """)
    )


def make_bare(root: Path, tests: int) -> None:
    root.joinpath("pyproject.toml").write_text("[tool.pytest.ini_options]\naddopts = []\n")
    root.joinpath("conftest.py").write_text(PROBE)
    root.joinpath("test_bare.py").write_text(
        textwrap.dedent(f"""
        import pytest

        @pytest.mark.parametrize("n", range({tests}))
        def test_plain(n):
            pass
    """)
    )


@dataclasses.dataclass
class Run:
    label: str
    wall: float
    workers: int
    startup: float | None  # mean, seconds
    rss: float | None  # mean peak per worker, MB


def run(root: Path, label: str, args: list[str]) -> Run:
    out = root / f"probe-{label.replace(' ', '_')}.jsonl"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PARALLEL_BENCH_OUT"] = str(out)
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit(f"{label}: pytest failed ({proc.returncode}):\n{proc.stdout[-3000:]}")
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    start = next(r["t"] for r in rows if r["event"] == "start")
    firsts = [r["t"] - start for r in rows if r["event"] == "first"]
    rss = [r["rss"] / 2**20 for r in rows if r["event"] == "rss"]
    return Run(
        label,
        wall,
        len(rss) or 1,
        statistics.mean(firsts) if firsts else None,
        statistics.mean(rss) if rss else None,
    )


def start_simulator(load: Workload, folder: Path) -> tuple[subprocess.Popen[str], str]:
    toml = folder / "sim.toml"
    body = ['default_reply = "ok"'] + [
        f'[models."{alias}"]\nlatency = {latency}' for alias, latency in load.models.items()
    ]
    toml.write_text("\n".join(body) + "\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest_llm_matrix.simulator", "--port", "0", "--config", str(toml)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    return proc, line.strip().rsplit(" ", 1)[-1]


def fmt(value: float | None, unit: str) -> str:
    return "-" if value is None else f"{value:.2f}{unit}"


def bench(load: Workload, sequential: bool) -> None:
    with tempfile.TemporaryDirectory(prefix=f"llm-matrix-{load.name}-") as tmp:
        root = Path(tmp)
        sim, url = start_simulator(load, root)
        try:
            make_project(root, load, url)
            runs = []
            if sequential:
                runs.append(run(root, "sequential", []))
            runs.append(run(root, "-n auto", ["-n", "auto"]))
            runs.append(run(root, "--llm-dist=load", ["-n", "auto", "--llm-dist=load"]))
        finally:
            sim.terminate()
            sim.wait()
        workers = runs[-1].workers
        bare_root = root / "bare"
        bare_root.mkdir()
        make_bare(bare_root, load.tests * len(load.models))
        bare = run(bare_root, "bare xdist", ["-n", str(workers), "-p", "no:llm_matrix"])
    ideal = load.ideal
    print(
        f"\n{load.name}: {len(load.models)} models x {load.tests} tests, latencies "
        f"{sorted(set(load.models.values()))} s, global cap {load.global_cap}, per-model cap "
        f"{load.model_cap}; ideal {ideal:.1f}s; target: {load.target}"
    )
    print(
        f"  {'run':<16} {'wall':>8} {'efficiency':>10} {'workers':>7} {'start-up':>9} "
        f"{'RSS/worker':>10}"
    )
    for r in [*runs, bare]:
        eff = f"{ideal / r.wall:.2f}" if r.label != "bare xdist" else "-"
        print(
            f"  {r.label:<16} {r.wall:>7.2f}s {eff:>10} {r.workers:>7} "
            f"{fmt(r.startup, 's'):>9} {fmt(r.rss, ' MB'):>10}"
        )
    auto = next(r for r in runs if r.label == "-n auto")
    if auto.startup and bare.startup and auto.rss and bare.rss:
        print(
            f"  plugin worker vs bare xdist worker: start-up x{auto.startup / bare.startup:.2f},"
            f" RSS x{auto.rss / bare.rss:.2f} (target <= 1.25)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workloads", nargs="*", default=list(WORKLOADS), choices=list(WORKLOADS))
    parser.add_argument(
        "--no-sequential",
        action="store_true",
        help="skip the sequential runs (W1 alone takes 160 s)",
    )
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    for name in args.workloads:
        bench(WORKLOADS[name], not args.no_sequential)


if __name__ == "__main__":
    main()
