"""Where a preloaded worker's memory goes: the process tree of one W4 run, taken apart.

Runs the W4 suite of ``parallel.py`` (32 workers, preloaded), waits until every worker is
in its tests, and reads ``/proc/<pid>/smaps`` of every process of the run. Prints the PSS
of the controller, the preloader, the launchers and the workers, and, for the median
worker, its private pages by where they sit: mappings it inherited from the preloader (the
pages it wrote there: copy-on-write), mappings it made itself, and the Python binary's data.

    python benchmarks/worker_memory.py            # after 12 s of the run
    python benchmarks/worker_memory.py --at 20
"""

from __future__ import annotations

import argparse
import collections
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import parallel


def children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = collections.defaultdict(list)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_bytes()
            tree[int(stat[stat.rindex(b")") + 2 :].split()[1])].append(int(entry))
        except (OSError, ValueError, IndexError):
            continue
    return tree


def starts(pid: int) -> set[str]:
    """Start addresses of ``pid``'s mappings."""
    return {line.split("-", 1)[0] for line in Path(f"/proc/{pid}/maps").read_text().splitlines()}


def breakdown(pid: int, inherited: set[str]) -> collections.Counter[str]:
    """KiB of Pss and of private dirty pages of ``pid``, by kind of mapping."""
    kinds: collections.Counter[str] = collections.Counter()
    kind = ""
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        fields = line.split()
        if not fields[0].endswith(":"):  # a mapping's header: address perms offset dev inode [path]
            path = fields[5] if len(fields) > 5 else ""
            if path in ("", "[heap]"):
                where = (
                    "inherited from the preloader"
                    if fields[0].split("-")[0] in inherited
                    else "its own"
                )
                kind = f"{path or 'anonymous'} ({where})"
            elif path == os.path.realpath(sys.executable) or "/bin/python" in path:
                kind = "Python binary"
            else:
                kind = "libraries and other files" if path.startswith("/") else path
            continue
        if fields[0] == "Pss:":
            kinds["pss"] += int(fields[1])
        elif fields[0] == "Private_Dirty:":
            kinds[kind] += int(fields[1])
    return kinds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--at", type=float, default=12.0, help="seconds into the run")
    args = parser.parse_args()
    load = parallel.WORKLOADS["W4"]
    with tempfile.TemporaryDirectory(prefix="llm-matrix-memory-") as tmp:
        root = Path(tmp)
        sim, url = parallel.start_simulator(load, root)
        parallel.make_project(root, load, url)
        env = {**os.environ, "PARALLEL_BENCH_OUT": str(root / "probe.jsonl")}
        run = subprocess.Popen(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "auto"],
            cwd=root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            time.sleep(args.at)
            tree = children()
            roles: dict[str, list[int]] = collections.defaultdict(list)
            preloader = None
            for pid in tree[run.pid]:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
                if b"_boot" in cmdline:
                    preloader = pid
                    roles["preloader"].append(pid)
                    roles["workers"] += tree[pid]
                else:
                    roles["launchers"].append(pid)
            roles["controller"].append(run.pid)
            if preloader is None:
                sys.exit("no preloader in the run: is --llm-preload off, or unsupported here?")
            inherited = starts(preloader)
            found = {
                role: [breakdown(pid, inherited if role == "workers" else set()) for pid in pids]
                for role, pids in roles.items()
            }
        finally:
            output, _ = run.communicate()
            sim.terminate()
            sim.wait()
    print(f"Python {sys.version.split()[0]}, {len(found['workers'])} workers, {args.at:.0f} s in")
    total = 0.0
    for role, rows in found.items():
        pss = sum(row["pss"] for row in rows) / 1024
        total += pss
        print(f"  {role:<11} {len(rows):>3} x {pss / len(rows):6.1f} MB = {pss:6.1f} MB PSS")
    print(f"  {'tree':<11} {total:>24.1f} MB PSS")
    workers = sorted(found["workers"], key=lambda row: row["pss"])
    median = workers[len(workers) // 2]
    print(f"  the median worker: {median['pss'] / 1024:.1f} MB PSS; its private dirty pages:")
    for kind, kib in median.most_common():
        if kind != "pss" and kib >= 32:
            print(f"    {kib / 1024:6.2f} MB  {kind}")
    spread = [row["pss"] / 1024 for row in workers]
    print(
        f"  workers' PSS: min {min(spread):.1f}, median {statistics.median(spread):.1f}, "
        f"max {max(spread):.1f} MB"
    )
    if run.returncode != 0:
        sys.exit(f"the run failed ({run.returncode}):\n{output[-2000:]}")


if __name__ == "__main__":
    main()
