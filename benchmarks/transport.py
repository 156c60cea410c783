"""What the transport adds to a request, against bare httpx2, on a zero-latency simulator.

Both clients keep their connections alive and send the same chat completion to the same
loopback simulator, interleaved in small blocks so both see the same machine load. The
transport runs with everything on: a global cap and a per-model cap (file-lock slots),
cooldown and availability checks, usage parsing, and a test context recording it all; and
once more as in an xdist worker, which also rewrites its running test's spend to a journal
file after every request; and as a replay (``--llm-record=replay``): the same requests
answered from a recording made just before, nothing sent; and without transcripts
(``--llm-transcript-chars=0``), for what taking each request down costs.

    python benchmarks/transport.py [--requests 2000]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import httpx2

from pytest_llm_matrix.calls import context, recording, transcript
from pytest_llm_matrix.calls.transport import llm_transport
from pytest_llm_matrix.config.models import Model
from pytest_llm_matrix.simulator import Simulator, parse_config

BENCH_TEST = "bench.py::test_bench[bench]"
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


def recorded(state: str, client: httpx2.Client, stream: bool, count: int) -> recording.Recorder:
    """Record ``count`` identical requests for a test, then a replayer of them (identical
    requests replay in order, one recording each)."""
    folder = Path(state) / ("stream" if stream else "plain")
    recording.configure(recording.Recorder("all", folder, base=folder))
    ctx = context.begin(BENCH_TEST)
    for _ in range(count):
        timed(client, stream)
    recording.flush(ctx)
    context.end()
    recording.configure(None)
    return recording.Recorder("replay", folder, base=folder)


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
        limits = context.Limits(Path(state), 8, context.RetryPolicy())
        journal = context.Journal(f"{state}/spend-gw0.json")
        context.configure(limits)
        bare = httpx2.Client(base_url=model.base_url)
        wrapped = httpx2.Client(base_url=model.base_url, transport=llm_transport(model))
        # the transport as a plain pytest process runs it, and as an xdist worker does (which
        # also keeps its running test's spend in a journal, for a crash)
        variants = (
            ("bare", bare, None),
            ("transport", wrapped, None),
            ("worker", wrapped, journal),
            ("replayed", wrapped, None),
            ("untranscribed", wrapped, None),
        )
        chars = transcript.chars()
        rounds = args.requests // args.block // 2
        for stream in (False, True):
            replayer = recorded(state, wrapped, stream, 50 + rounds * args.block)
            ctx = context.begin(BENCH_TEST)  # a fresh test: its replay reads the recording
            results: dict[str, list[float]] = {name: [] for name, _, _ in variants}
            for name, client, kept in variants:  # warm up: connections, imports, files
                limits.journal = kept
                recording.configure(replayer if name == "replayed" else None)
                for _ in range(50):
                    timed(client, stream)
            for _ in range(rounds):
                for name, client, kept in variants:
                    limits.journal = kept
                    recording.configure(replayer if name == "replayed" else None)
                    transcript.configure(0 if name == "untranscribed" else chars)
                    ctx.take_transcript()  # room for the block: every request is taken down
                    results[name].extend(timed(client, stream) for _ in range(args.block))
            transcript.configure(chars)
            recording.configure(None)
            p50 = {name: statistics.median(times) for name, times in results.items()}
            kind = "streamed" if stream else "plain"
            print(f"{kind} chat completion, {len(results['bare'])} requests each, p50:")
            print(f"  bare httpx2                 {p50['bare'] * 1000:.3f} ms")
            for name, label in (("transport", "LLMTransport"), ("worker", "  in an xdist worker")):
                added = p50[name] - p50["bare"]
                print(
                    f"  {label:<27} {p50[name] * 1000:.3f} ms: {added * 1000:.3f} ms added "
                    f"(target <= 1.5 ms); ratio {p50[name] / p50['bare']:.2f}"
                )
            print(f"  the worker's journal adds {(p50['worker'] - p50['transport']) * 1000:.3f} ms")
            taken, without = p50["transport"] - p50["untranscribed"], p50["untranscribed"]
            print(f"  its transcript adds {taken * 1000:.3f} ms (without: {without * 1000:.3f} ms)")
            print(
                f"  replayed (--llm-record=replay) {p50['replayed'] * 1000:.3f} ms: "
                f"{p50['replayed'] / p50['transport']:.2f} of a live request through the "
                f"transport, {p50['replayed'] / p50['bare']:.2f} of bare httpx2"
            )
        limits.journal = journal
        assert ctx.take() is not None  # the transport did record what it spent
        context.end()
        context.configure(None)
        bare.close()
        wrapped.close()
    simulator.stop()


if __name__ == "__main__":
    main()
