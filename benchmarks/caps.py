"""What a concurrency cap costs, by its size: cap 10 against cap 10,000 (the largest allowed).

Each run is a fresh process (so its RSS is its own) that holds ``--held`` leases at once,
releases them, and repeats, through one FileCoordinator with the given global cap and the
same per-model cap. Printed per cap: time per acquire+release, peak RSS, descriptors open
and slot files made; then the ratios cap 10,000 / cap 10. Rounds alternate the caps, so both
see the same machine load.

    python benchmarks/caps.py [--rounds 5] [--cycles 2000] [--held 8]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CAPS = (10, 10_000)


def child(cap: int, cycles: int, held: int) -> dict[str, float]:
    from pytest_llm_matrix.calls.limits import FileCoordinator

    with tempfile.TemporaryDirectory() as state:
        coordinator = FileCoordinator(Path(state), cap)
        fds_before = len(os.listdir("/proc/self/fd"))
        started = time.perf_counter()
        for _ in range(cycles):
            leases = [coordinator.try_acquire("m", cap) for _ in range(held)]
            for lease in leases:
                assert lease is not None
                lease.release()
        elapsed = time.perf_counter() - started
        fds = len(os.listdir("/proc/self/fd")) - fds_before
        files = len(os.listdir(state))
        coordinator.close()
    return {
        "us_per_lease": elapsed / (cycles * held) * 1e6,
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "fds": fds,
        "files": files,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--cycles", type=int, default=2000)
    parser.add_argument("--held", type=int, default=8)
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.cycles, args.held)))
        return
    runs: dict[int, list[dict[str, float]]] = {cap: [] for cap in CAPS}
    for _ in range(args.rounds):
        for cap in CAPS:
            command = [sys.executable, __file__, "--child", str(cap)]
            command += ["--cycles", str(args.cycles), "--held", str(args.held)]
            out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            runs[cap].append(json.loads(out))
    print(
        f"{args.held} leases held at once (global + model cap), {args.cycles} cycles, "
        f"{args.rounds} alternating rounds; medians (min-max)"
    )
    median: dict[int, dict[str, float]] = {}
    for cap in CAPS:
        values = {key: [run[key] for run in runs[cap]] for key in runs[cap][0]}
        median[cap] = {key: statistics.median(v) for key, v in values.items()}
        us, rss = values["us_per_lease"], values["rss_mb"]
        print(
            f"  cap {cap:>6,}: {median[cap]['us_per_lease']:6.1f} us per acquire+release "
            f"({min(us):.1f}-{max(us):.1f}), peak RSS {median[cap]['rss_mb']:.1f} MB "
            f"({min(rss):.1f}-{max(rss):.1f}), {median[cap]['fds']:.0f} descriptors, "
            f"{median[cap]['files']:.0f} files"
        )
    small, large = median[CAPS[0]], median[CAPS[1]]
    ratios = {key: large[key] / small[key] for key in ("us_per_lease", "rss_mb", "fds")}
    print(
        f"  ratio cap {CAPS[1]:,} / cap {CAPS[0]}: time {ratios['us_per_lease']:.2f}, "
        f"RSS {ratios['rss_mb']:.2f}, descriptors {ratios['fds']:.2f}"
    )


if __name__ == "__main__":
    main()
