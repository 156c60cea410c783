"""What importing the plugin costs a pytest run.

Runs ``python -X importtime -m pytest`` in fresh interpreters on a small project that
configures four models (three simulated, one hosted with its key unset) and has one test
that uses no model, and sums the cumulative import time of every import of the plugin's
own modules that pytest (or a hook) started: the entry point, and what the session loads
on its way. Bytecode is cached (a warm-up run writes it), as for an installed package.
With ``--other PYTHON`` it alternates with a second interpreter (e.g. a virtualenv with an
older checkout installed) and prints the ratio of the medians.

    python benchmarks/import_time.py [--rounds 21] [--other /path/to/venv/bin/python]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from overhead import CONFIG as PROJECT  # the same project: four models, one unset key


def plugin_import_us(python: str, project: Path) -> tuple[int, int]:
    """(microseconds, modules): the plugin's imports in one run of pytest."""
    done = subprocess.run(
        [python, "-X", "importtime", "-m", "pytest", "-q", "-p", "no:randomly"],
        cwd=project,
        env={k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise SystemExit(f"pytest failed:\n{done.stdout}\n{done.stderr}")
    total = modules = 0
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or line.count("|") != 2:
            continue
        _, cumulative, raw_name = line[len("import time:") :].split("|")
        name = raw_name.strip()
        if not cumulative.strip().isdigit() or not name.startswith("pytest_llm_matrix"):
            continue
        modules += 1
        if raw_name[1:] == name:  # not nested in another import: its cumulative time is ours
            total += int(cumulative)
    return total, modules


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--other", help="a second interpreter to alternate with")
    args = parser.parse_args()
    pythons = [sys.executable] + ([args.other] if args.other else [])
    with tempfile.TemporaryDirectory() as folder:
        project = Path(folder)
        (project / "pyproject.toml").write_text(PROJECT)
        (project / "test_plain.py").write_text("def test_plain():\n    pass\n")
        for python in pythons:
            plugin_import_us(python, project)  # warm: bytecode written, files cached
        times: dict[str, list[int]] = {p: [] for p in pythons}
        counts: dict[str, int] = {}
        for _ in range(args.rounds):
            for python in pythons:
                us, modules = plugin_import_us(python, project)
                times[python].append(us)
                counts[python] = modules
    for python in pythons:
        t = times[python]
        print(
            f"{python}: median {statistics.median(t) / 1000:.1f} ms "
            f"[{min(t) / 1000:.1f}-{max(t) / 1000:.1f}], {counts[python]} plugin modules"
        )
    if args.other:
        ratio = statistics.median(times[pythons[0]]) / statistics.median(times[pythons[1]])
        print(f"ratio this/other: {ratio:.3f}")


if __name__ == "__main__":
    main()
