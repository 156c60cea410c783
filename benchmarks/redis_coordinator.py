"""The Redis coordinator: what a lease costs, and W1 split over two sessions sharing caps.

Starts a redis-server on a free loopback port (Debian's package), then

1. leases: ``try_acquire`` + ``release`` of a model slot and a global slot, through the
   Redis coordinator and through the file coordinator, interleaved in blocks; p50 of each.
   Target: Redis <= 1 ms.
2. W1 as two sessions: the W1 workload of parallel.py (4 models x 40 tests, 1 s each,
   global cap 8, 2 per model) split in two halves, run at once as two pytest sessions of 4
   workers each on one simulator, sharing the caps through Redis (one run id). Efficiency =
   W1's ideal (20 s) / the wall time until both have finished. Target: >= 0.8.

    python benchmarks/redis_coordinator.py [--leases 2000] [--rounds 1]
"""

from __future__ import annotations

import argparse
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from parallel import WORKLOADS, start_simulator

from pytest_llm_matrix.calls.limits import FileCoordinator
from pytest_llm_matrix.calls.redis_coordinator import RedisCoordinator


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_redis(folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    server = shutil.which("redis-server")
    if server is None:
        raise SystemExit("redis-server is not installed (Debian: apt install redis-server)")
    port = free_port()
    process = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(folder)],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    import redis

    for _ in range(200):
        try:
            redis.Redis.from_url(url).ping()
            return process, url
        except redis.ConnectionError:
            time.sleep(0.05)
    raise SystemExit("redis-server did not start")


def leases(url: str, folder: Path, count: int, block: int = 50) -> dict[str, float]:
    coordinators = {
        "redis": RedisCoordinator(url, "bench-leases", 8),
        "files": FileCoordinator(folder, 8),
    }
    times: dict[str, list[float]] = {name: [] for name in coordinators}
    for coordinator in coordinators.values():  # warm up: connections, scripts, files
        for _ in range(50):
            lease = coordinator.try_acquire("m", 2)
            assert lease is not None
            lease.release()
    for _ in range(count // block):
        for name, coordinator in coordinators.items():
            for _ in range(block):
                started = time.perf_counter()
                lease = coordinator.try_acquire("m", 2)
                assert lease is not None
                lease.release()
                times[name].append(time.perf_counter() - started)
    for coordinator in coordinators.values():
        coordinator.close()
    return {name: statistics.median(found) for name, found in times.items()}


def half(root: Path, sim_url: str, first: int, count: int) -> None:
    load = WORKLOADS["W1"]
    lines = ["[tool.llm-matrix]", f"max_concurrency = {load.global_cap}"]
    for alias in load.models:
        lines += [
            f"[tool.llm-matrix.models.{alias}]",
            'provider = "simulator"',
            f'base_url = "{sim_url}/v1"',
            f"max_concurrency = {load.model_cap}",
        ]
    root.joinpath("pyproject.toml").write_text("\n".join(lines) + "\n")
    root.joinpath("test_half.py").write_text(
        textwrap.dedent(f"""
        import pytest

        @pytest.mark.parametrize("n", range({first}, {first + count}))
        def test_request(llm, n):
            assert llm.complete(f"request {{n}}") == "ok"
        """)
    )


def w1_split(url: str, folder: Path, run: int) -> float:
    load = WORKLOADS["W1"]
    simulator, sim_url = start_simulator(load, folder)
    try:
        roots = [folder / f"half-{run}-{i}" for i in range(2)]
        for index, root in enumerate(roots):
            root.mkdir()
            half(root, sim_url, index * load.tests // 2, load.tests // 2)
        args = ["-q", "-p", "no:cacheprovider", "-p", "no:randomly", "-n", "4",
                f"--llm-coordinator={url}", f"--llm-run-id=w1-{run}"]  # fmt: skip
        started = time.monotonic()
        sessions = [
            subprocess.Popen(
                [sys.executable, "-m", "pytest", *args],
                cwd=root,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for root in roots
        ]
        for session in sessions:
            out, _ = session.communicate()
            if session.returncode != 0:
                raise SystemExit(f"a session failed:\n{out[-3000:]}")
        return time.monotonic() - started
    finally:
        simulator.terminate()
        simulator.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leases", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=1, help="W1 runs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        server, url = start_redis(folder)
        try:
            (folder / "files").mkdir()
            p50 = leases(url, folder / "files", args.leases)
            print(f"lease (model + global slot) acquire + release, {args.leases} each, p50:")
            print(f"  Redis coordinator {p50['redis'] * 1000:.3f} ms (target <= 1 ms)")
            print(f"  file coordinator  {p50['files'] * 1000:.3f} ms")
            ideal = WORKLOADS["W1"].ideal
            walls = [w1_split(url, folder, run) for run in range(args.rounds)]
            for wall in walls:
                print(
                    f"W1 as two sessions of 4 workers sharing caps through Redis: wall "
                    f"{wall:.2f}s, ideal {ideal:.1f}s, efficiency {ideal / wall:.2f} "
                    "(target >= 0.8)"
                )
        finally:
            server.kill()
            server.wait()


if __name__ == "__main__":
    main()
