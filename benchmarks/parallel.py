"""Parallel efficiency of a model matrix: ``-n auto`` with preloaded workers and without.

Starts the simulator (a separate process) with set latencies, generates a suite of
M models x T tests, and runs it: ``-n auto`` (workers preloaded), ``-n auto
--llm-preload=off``, optionally sequential and ``--llm-dist=load``. For each run it prints
the wall time, the ideal (the larger of total request time / global cap and each model's
request time / its cap), efficiency = ideal / wall, session start-up (controller start to
the last worker's first test), per-test overhead (the workers' busy spans beyond the tests'
request time, per test; waits for a model's cap count too), the peak PSS of the whole
process tree (controller, preloader, launchers, workers; sampled from
/proc/<pid>/smaps_rollup) and the CPU per test of the controller and of the workers (from
their first test on). A bare xdist session without the plugin (same worker count, trivial
tests) gives a start-up baseline. ``--only-auto`` runs ``-n auto`` alone: for measuring an
older version of the plugin (which has no ``--llm-preload``) with the same script.

    python benchmarks/parallel.py                 # W1 W2 W3 W0 W4 W5 W6, keyed models
    python benchmarks/parallel.py W4 --rounds 3   # medians and spread of 3 rounds
    python benchmarks/parallel.py W4 --pair --gate --no-preload-off  # keyed/keyless, gate
    python benchmarks/parallel.py W0 --sequential --load

Every model has a key (``api_key_env``; the simulator checks it), as real providers do;
``--keyless`` measures models without keys, as the runs before issue 22 did. The last
column is the spread of the workers' first requests' start times.
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
import threading
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
    workers: str = "auto"  # -n

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
        "wall <= 6.0 s (promptfoo: 6.7-7.9 s measured here)",
    ),
    "W4": Workload(
        "W4",
        {f"m{i}": 2.0 for i in range(8)},
        50,
        32,
        None,
        "wall <= 30 s, start-up <= 3 s, PSS <= 600 MB (promptfoo -j 32: 29.7 s); keyed "
        "within 2 % of keyless",
    ),
    "W5": Workload(
        "W5",
        {f"m{i}": 3.0 for i in range(8)},
        64,
        64,
        None,
        "efficiency >= 0.85 (promptfoo: 0.91)",
    ),
    "W6": Workload(
        "W6",
        {f"m{i}": 3.0 for i in range(4)},
        4,
        None,
        None,
        "the 16 first requests start within 1.5 s of each other",
        workers="16",
    ),
}
#: The key every model of a keyed run has (the simulator checks it).
KEY = "sk-bench-0123456789abcdef"

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

_span = []

@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item):
    now = time.time()
    if not _first:
        _first.append(now)
        _first.append(time.process_time())
        _write({"event": "first", "worker": os.environ.get("PYTEST_XDIST_WORKER", "main"),
                "t": now})

_call = []

@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    try:
        return (yield)
    finally:
        if not _call:
            _call.append((item.nodeid, time.time()))

@pytest.hookimpl(trylast=True)
def pytest_runtest_logfinish():
    _span.append(time.time())

def pytest_sessionfinish(session):
    if hasattr(session.config, "workerinput") and _first:
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        _write({"event": "worker", "worker": os.environ["PYTEST_XDIST_WORKER"], "rss": rss,
                "busy": (_span[-1] if _span else _first[0]) - _first[0], "tests": len(_span),
                "cpu": time.process_time() - _first[1], "first_call": _call[0] if _call else None})
    elif not hasattr(session.config, "workerinput"):
        _write({"event": "controller", "cpu": time.process_time()})
"""


def make_project(root: Path, load: Workload, sim_url: str, keyed: bool) -> None:
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
        if keyed:
            lines.append('api_key_env = "PARALLEL_BENCH_KEY"')
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
    startup: float | None  # controller start to the last worker's first test, seconds
    overhead: float | None  # per test: workers' busy time beyond the tests' request time
    pss: float | None  # peak PSS of the process tree, MB
    rss: float | None  # mean peak RSS per worker, MB
    controller_cpu: float | None  # controller CPU per test, ms
    worker_cpu: float | None  # workers' CPU per test from their first test on, ms
    #: the spread of the workers' first requests' start times (their first test's call end
    #: less its model's latency), seconds
    first_spread: float | None = None


def tree_pss(root: int) -> float:
    """Sum of Pss over ``root`` and its descendants, in bytes."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                stat = fh.read()
            parent = int(stat[stat.rindex(b")") + 2 :].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(parent, []).append(int(entry))
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        todo += children.get(pid, [])
        try:
            with open(f"/proc/{pid}/smaps_rollup") as fh:
                for line in fh:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1]) * 1024
                        break
        except OSError:
            continue
    return total


def run(
    root: Path,
    label: str,
    args: list[str],
    nominal: float,
    latencies: dict[str, float] | None = None,
    keyed: bool = False,
) -> Run:
    """Run pytest in ``root``; ``nominal`` is one test's request time."""
    out = root / f"probe-{label.replace(' ', '_')}.jsonl"
    out.unlink(missing_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PARALLEL_BENCH_OUT"] = str(out)
    env.pop("PARALLEL_BENCH_KEY", None)
    if keyed:
        env["PARALLEL_BENCH_KEY"] = KEY
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    peak = [0.0]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.5):
            peak[0] = max(peak[0], tree_pss(proc.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, _ = proc.communicate()
    wall = time.perf_counter() - started
    done.set()
    sampler.join()
    if proc.returncode != 0:
        sys.exit(f"{label}: pytest failed ({proc.returncode}):\n{stdout[-3000:]}")
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    start = next(r["t"] for r in rows if r["event"] == "start")
    firsts = [r["t"] - start for r in rows if r["event"] == "first"]
    workers = [r for r in rows if r["event"] == "worker"]
    tests = sum(w["tests"] for w in workers)
    overhead = (sum(w["busy"] for w in workers) - nominal * tests) / tests if tests else None
    controller = next((r["cpu"] for r in rows if r["event"] == "controller"), None)
    worker_cpu = sum(w["cpu"] for w in workers) / tests * 1000 if tests else None
    starts = [
        t - (latencies or {}).get(nodeid.partition("[")[2].partition("-")[0], nominal)
        for nodeid, t in (w["first_call"] for w in workers if w.get("first_call"))
    ]
    return Run(
        label,
        wall,
        len(workers) or 1,
        max(firsts) if firsts else None,
        overhead,
        peak[0] / 2**20 if peak[0] else None,
        statistics.mean(w["rss"] / 2**20 for w in workers) if workers else None,
        controller / tests * 1000 if controller is not None and tests else None,
        worker_cpu,
        max(starts) - min(starts) if len(starts) > 1 else None,
    )


def start_simulator(load: Workload, folder: Path, keyed: bool) -> tuple[subprocess.Popen[str], str]:
    """The simulator; with ``keyed``, its models answer (and list themselves) only with KEY."""
    toml = folder / "sim.toml"
    key = f'\napi_key = "{KEY}"' if keyed else ""
    body = ['default_reply = "ok"'] + [
        f'[models."{alias}"]\nlatency = {latency}{key}' for alias, latency in load.models.items()
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


def fmt(value: float | None, unit: str, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}{unit}"


@dataclasses.dataclass
class Options:
    sequential: bool = False
    load_dist: bool = False
    only_auto: bool = False
    keyless: bool = False  # the models have no key (the runs before issue 22 measured so)
    pair: bool = False  # also run keyless, for the keyed / keyless ratio
    gate: bool = False  # also run with --llm-check-keys=off: the first-request gate
    preload_off: bool = True


def bench(load: Workload, options: Options) -> list[Run]:
    nominal = statistics.mean(load.models.values())
    keyed = not options.keyless
    n = ["-n", load.workers]
    label = f"-n {load.workers}" + (" keyed" if keyed else "")
    variants: list[tuple[str, list[str], bool]] = []
    if options.sequential:
        variants.append(("sequential", [], keyed))
    variants.append((label, n, keyed))
    if keyed and options.pair and not options.only_auto:
        variants.append((f"-n {load.workers} keyless", n, False))
    if keyed and options.gate and not options.only_auto:
        variants.append(("check off (gate)", [*n, "--llm-check-keys=off"], True))
    if options.preload_off and not options.only_auto:
        variants.append(("preload off", [*n, "--llm-preload=off"], keyed))
    if options.load_dist and not options.only_auto:
        variants.append(("--llm-dist=load", [*n, "--llm-dist=load"], keyed))
    with tempfile.TemporaryDirectory(prefix=f"llm-matrix-{load.name}-") as tmp:
        root = Path(tmp)
        projects: dict[bool, Path] = {}
        sims = []
        try:
            for kind in dict.fromkeys(k for _, _, k in variants):
                folder = root / ("keyed" if kind else "keyless")
                folder.mkdir()
                sim, url = start_simulator(load, folder, kind)
                sims.append(sim)
                make_project(folder, load, url, kind)
                projects[kind] = folder
            runs = [
                run(projects[kind], name, args, nominal, load.models, kind)
                for name, args, kind in variants
            ]
        finally:
            for sim in sims:
                sim.terminate()
                sim.wait()
        workers = runs[-1].workers
        bare_root = root / "bare"
        bare_root.mkdir()
        make_bare(bare_root, load.tests * len(load.models))
        bare = run(bare_root, "bare xdist", ["-n", str(workers), "-p", "no:llm_matrix"], 0.0)
    ideal = load.ideal
    print(
        f"\n{load.name}: {len(load.models)} models x {load.tests} tests, latencies "
        f"{sorted(set(load.models.values()))} s, global cap {load.global_cap}, per-model cap "
        f"{load.model_cap}; ideal {ideal:.1f}s; target: {load.target}"
    )
    print(
        f"  {'run':<16} {'wall':>8} {'efficiency':>10} {'workers':>7} {'start-up':>9} "
        f"{'overhead/test':>13} {'tree PSS':>9} {'RSS/worker':>10} {'CPU/test ctl+wrk':>16} "
        f"{'1st-request spread':>18}"
    )
    for r in [*runs, bare]:
        eff = f"{ideal / r.wall:.2f}" if r.label != "bare xdist" else "-"
        print(
            f"  {r.label:<16} {r.wall:>7.2f}s {eff:>10} {r.workers:>7} "
            f"{fmt(r.startup, 's'):>9} {fmt(r.overhead, ' s', 3):>13} "
            f"{fmt(r.pss, ' MB', 0):>9} {fmt(r.rss, ' MB', 0):>10} "
            f"{fmt(r.controller_cpu, '', 1):>7}+{fmt(r.worker_cpu, ' ms', 1):<8} "
            f"{fmt(r.first_spread, ' s'):>18}"
        )
    on = runs[1] if options.sequential else runs[0]
    keyless = next((r for r in runs if r.label.endswith("keyless")), None)
    if keyless is not None:
        print(f"  keyed / keyless: wall x{on.wall / keyless.wall:.3f}")
    gated = next((r for r in runs if r.label == "check off (gate)"), None)
    if gated is not None:
        print(f"  checked / gate: wall x{on.wall / gated.wall:.3f}")
    off = next((r for r in runs if r.label == "preload off"), None)
    if off is None:
        return runs
    startup = (on.startup or 0) / (off.startup or 1)
    pss = (on.pss or 0) / (off.pss or 1)
    print(
        f"  preloaded / not: wall x{on.wall / off.wall:.2f}, start-up x{startup:.2f}, "
        f"tree PSS x{pss:.2f}"
    )
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workloads", nargs="*", default=list(WORKLOADS), choices=list(WORKLOADS))
    parser.add_argument("--sequential", action="store_true", help="also run without -n")
    parser.add_argument("--load", action="store_true", help="also run --llm-dist=load")
    parser.add_argument("--rounds", type=int, default=1, help="repeat; print medians")
    parser.add_argument("--only-auto", action="store_true", help="run -n auto alone")
    parser.add_argument(
        "--keyless", action="store_true", help="models without keys (as before issue 22)"
    )
    parser.add_argument("--pair", action="store_true", help="also run keyless: the ratio")
    parser.add_argument(
        "--gate", action="store_true", help="also run --llm-check-keys=off: the ratio"
    )
    parser.add_argument(
        "--no-preload-off", action="store_true", help="skip the --llm-preload=off run"
    )
    args = parser.parse_args()
    options = Options(
        sequential=args.sequential,
        load_dist=args.load,
        only_auto=args.only_auto,
        keyless=args.keyless,
        pair=args.pair,
        gate=args.gate,
        preload_off=not args.no_preload_off,
    )
    print(f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    for name in args.workloads:
        results = [bench(WORKLOADS[name], options) for _ in range(args.rounds)]
        if args.rounds > 1:
            summarize(WORKLOADS[name], results)


def summarize(load: Workload, results: list[list[Run]]) -> None:
    print(f"\n{load.name}: medians of {len(results)} rounds [min-max]")
    for index, first in enumerate(results[0]):
        runs = [r[index] for r in results]

        def stat(attr: str, digits: int = 2, runs: list[Run] = runs) -> str:
            values = [getattr(r, attr) for r in runs if getattr(r, attr) is not None]
            if not values:
                return "-"
            return (
                f"{statistics.median(values):.{digits}f} "
                f"[{min(values):.{digits}f}-{max(values):.{digits}f}]"
            )

        effs = [load.ideal / r.wall for r in runs]
        print(
            f"  {first.label:<16} wall {stat('wall')}s  efficiency {statistics.median(effs):.2f} "
            f"[{min(effs):.2f}-{max(effs):.2f}]  start-up {stat('startup')}s  "
            f"overhead/test {stat('overhead', 3)}s  tree PSS {stat('pss', 0)} MB  "
            f"CPU/test controller {stat('controller_cpu', 1)} ms, "
            f"workers {stat('worker_cpu', 1)} ms  1st-request spread {stat('first_spread')}s"
        )


if __name__ == "__main__":
    main()
