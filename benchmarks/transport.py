"""What the transport adds to a request, against bare httpx2, on a zero-latency simulator.

Both clients keep their connections alive and send the same chat completion to the same
loopback simulator, interleaved in small blocks so both see the same machine load. The
transport runs with everything on: a global cap and a per-model cap (file-lock slots),
cooldown and availability checks, usage parsing, and a test context recording it all.

    python benchmarks/transport.py [--requests 2000]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import httpx2

from pytest_llm_matrix import context
from pytest_llm_matrix.models import Model
from pytest_llm_matrix.simulator import Simulator, parse_config
from pytest_llm_matrix.transport import llm_transport

BODY = {"model": "bench", "messages": [{"role": "user", "content": "hello"}]}


def timed(client: httpx2.Client, stream: bool) -> float:
    started = time.perf_counter()
    if stream:
        with client.stream("POST", "/chat/completions", json={**BODY, "stream": True}) as r:
            for _ in r.iter_bytes():
                pass
    else:
        client.post("/chat/completions", json=BODY).raise_for_status()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--block", type=int, default=20)
    args = parser.parse_args()
    simulator = Simulator(parse_config({"default_reply": "ok", "models": {"bench": {}}}))
    url = simulator.start()
    model = Model(
        name="bench",
        provider="simulator",
        model="bench",
        api="openai",
        base_url=url + "/v1",
        max_concurrency=4,
    )
    with tempfile.TemporaryDirectory() as state:
        context.configure(context.Limits(Path(state), 8, context.RetryPolicy()))
        ctx = context.begin()
        bare = httpx2.Client(base_url=model.base_url)
        wrapped = httpx2.Client(base_url=model.base_url, transport=llm_transport(model))
        for stream in (False, True):
            results: dict[str, list[float]] = {"bare": [], "transport": []}
            for client in (bare, wrapped):  # warm up: connections, imports, files
                for _ in range(50):
                    timed(client, stream)
            for _ in range(args.requests // args.block // 2):
                for name, client in (("bare", bare), ("transport", wrapped)):
                    results[name].extend(timed(client, stream) for _ in range(args.block))
            bare_p50 = statistics.median(results["bare"])
            ours_p50 = statistics.median(results["transport"])
            kind = "streamed" if stream else "plain"
            print(f"{kind} chat completion, {len(results['bare'])} requests each, p50:")
            print(f"  bare httpx2      {bare_p50 * 1000:.3f} ms")
            print(f"  LLMTransport     {ours_p50 * 1000:.3f} ms")
            print(
                f"  added            {(ours_p50 - bare_p50) * 1000:.3f} ms at p50 "
                f"(target <= 1.5 ms); ratio {ours_p50 / bare_p50:.2f}"
            )
        assert ctx.take() is not None  # the transport did record what it spent
        context.end()
        context.configure(None)
        bare.close()
        wrapped.close()
    simulator.stop()


if __name__ == "__main__":
    main()
