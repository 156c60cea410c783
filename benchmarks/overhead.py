"""What the plugin costs a suite that uses no model.

Generates 2,000 trivial tests in a project whose pyproject.toml configures four simulated
models (so the plugin does all its start-up work: config, selection, simulator), then runs
it alternately with the plugin on and with ``-p no:llm_matrix`` and prints the ratio of
the medians. Target: at most 1.03.

    python benchmarks/overhead.py [--tests 2000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

CONFIG = """
[tool.pytest.ini_options]
addopts = ["-p", "no:cacheprovider"]

[tool.llm-matrix]
default = ["all"]
[tool.llm-matrix.models.sim-a]
provider = "simulator"
[tool.llm-matrix.models.sim-b]
provider = "simulator"
[tool.llm-matrix.models.sim-c]
provider = "simulator"
simulate = { latency = 0.5 }
[tool.llm-matrix.models.gpt-4o-mini]
provider = "openai"
api_key_env = "OVERHEAD_BENCH_UNSET_KEY"
"""


def make_suite(root: Path, tests: int) -> None:
    root.joinpath("pyproject.toml").write_text(textwrap.dedent(CONFIG))
    per_file = 100
    for start in range(0, tests, per_file):
        body = "".join(
            f"def test_{i}():\n    assert {i} + 1 == {i + 1}\n\n"
            for i in range(start, min(start + per_file, tests))
        )
        root.joinpath(f"test_gen_{start // per_file:03}.py").write_text(body)


# Installed packages come with compiled bytecode; let an editable checkout have it too,
# or the plugin would pay for compiling its modules on every run while pytest would not.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def run(root: Path, extra: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one pytest run in a subprocess."""
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", *extra],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
        env=ENV,
    )
    elapsed = time.perf_counter() - started
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.exit(f"pytest failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr}")
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    return elapsed, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="llm-matrix-overhead-") as tmp:
        root = Path(tmp)
        make_suite(root, args.tests)
        run(root, [])  # warm the file cache and bytecode
        on: list[tuple[float, float]] = []
        off: list[tuple[float, float]] = []
        for _ in range(args.rounds):
            on.append(run(root, []))
            off.append(run(root, ["-p", "no:llm_matrix"]))
    print(f"{args.tests} trivial tests, {args.rounds} alternating rounds")
    for index, what in enumerate(("wall", "CPU")):
        on_s = [r[index] for r in on]
        off_s = [r[index] for r in off]
        print(f"  {what:4} plugin on : median {statistics.median(on_s):.3f}s  min {min(on_s):.3f}s")
        print(
            f"  {what:4} plugin off: median {statistics.median(off_s):.3f}s  min {min(off_s):.3f}s"
        )
        medians = statistics.median(on_s) / statistics.median(off_s)
        paired = statistics.median(a / b for a, b in zip(on_s, off_s, strict=True))
        print(
            f"  {what:4} ratio on/off: medians {medians:.3f}, "
            f"minimums {min(on_s) / min(off_s):.3f}, "
            f"median of paired rounds {paired:.3f}  (target <= 1.03)"
        )


if __name__ == "__main__":
    main()
