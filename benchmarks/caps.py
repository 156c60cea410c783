"""What a concurrency cap costs, by its size: it must not grow with the cap.

Acquires and releases one slot 5,000 times while four others are held, with a global cap of
10 and of 10,000 (the largest allowed), interleaved in blocks; prints the time per cycle, the
slot files made and the descriptors held, and the ratio of the two caps. Target: ratio ~1.

    python benchmarks/caps.py [--cycles 5000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

from pytest_llm_matrix.limits import FileCoordinator

CAPS = (10, 10_000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=5000)
    parser.add_argument("--block", type=int, default=250)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as small, tempfile.TemporaryDirectory() as large:
        folders = dict(zip(CAPS, (small, large), strict=True))
        coordinators = {cap: FileCoordinator(folders[cap], cap, handoff=0) for cap in CAPS}
        held = {
            cap: [c.try_acquire("m", None) for _ in range(4)] for cap, c in coordinators.items()
        }
        times: dict[int, list[float]] = {cap: [] for cap in CAPS}
        for _ in range(args.cycles // args.block):
            for cap, coordinator in coordinators.items():
                started = time.perf_counter()
                for _ in range(args.block):
                    lease = coordinator.try_acquire("m", None)
                    assert lease is not None
                    lease.release()
                times[cap].append((time.perf_counter() - started) / args.block)
        for cap in CAPS:
            files = [f for f in os.listdir(folders[cap]) if f.endswith(".lock")]
            print(
                f"cap {cap:>6}: {statistics.median(times[cap]) * 1e6:6.2f} us per acquire and "
                f"release (median of blocks), {len(files)} slot files"
            )
        ratio = statistics.median(times[CAPS[1]]) / statistics.median(times[CAPS[0]])
        print(
            f"cap {CAPS[1]} / cap {CAPS[0]}: {ratio:.2f} (target ~1: a cap's cost is not its size)"
        )
        for leases in held.values():
            for lease in leases:
                assert lease is not None
                lease.release()
        for coordinator in coordinators.values():
            coordinator.close()


if __name__ == "__main__":
    main()
