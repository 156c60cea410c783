"""How big the HTML report gets, and how long writing it takes, for a large run with
transcripts.

A synthetic JSON report of ``--tests`` tests on ``--models`` models (default 5,000 x 8),
each test x model with a transcript of about ``--kb`` KB of text: one exchange with a
system prompt (the same in every test), the test's question (the same on every model) and
an answer of the model's own; one cell in ten failing, with a multi-line failure and a
judge's exchange and verdict. It is rendered ``--rounds`` times by ``html.render``, the
function ``--llm-html`` and ``python -m pytest_llm_matrix merge --html`` write with.
Printed: the transcripts' text, the JSON report (as ``--llm-report`` writes it) and the
HTML page in MB; ``html.render``'s median and fastest time, with ``json.dumps`` of the
report (what ``--llm-report`` does) for scale.

    python benchmarks/html_size.py [--tests 5000] [--models 8] [--kb 1] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time

from pytest_llm_matrix.report import html

WORDS = [
    "the", "a", "model", "answer", "order", "refund", "customer", "capital", "city", "invoice",
    "shipping", "delay", "account", "password", "reset", "within", "days", "policy", "please",
    "contact", "support", "ticket", "number", "item", "returned", "warranty", "covers",
    "damage", "weather", "forecast", "tomorrow", "Paris", "London", "Berlin", "approximately",
]  # fmt: skip


def text(rng: random.Random, size: int) -> str:
    words: list[str] = []
    length = 0
    while length < size:
        word = rng.choice(WORDS)
        words.append(word)
        length += len(word) + 1
    return " ".join(words)[:size]


def synthetic_report(tests: int, models: int, kb: float) -> tuple[dict[str, object], int]:
    """The report, and the bytes of text in its transcripts."""
    rng = random.Random(26)
    names = [f"model-{m}" for m in range(models)]
    size = int(kb * 1000)
    system = "You are the support assistant of an online shop. " + text(rng, size * 3 // 10)
    entries = []
    kept = 0
    for t in range(tests):
        test = f"tests/test_support.py::test_answers[Question {t}]"
        question = text(rng, size * 2 // 10)
        for name in names:
            answer = text(rng, size - len(system) - len(question))
            failed = rng.random() < 0.1
            transcript = [
                {"model": name, "role": "model", "api": "chat",
                 "input": [{"role": "system", "text": system},
                           {"role": "user", "text": question}],
                 "answer": answer, "status": 200, "stream": False, "replayed": False,
                 "input_tokens": 310, "output_tokens": 120, "latency_s": 0.8},
            ]  # fmt: skip
            entry: dict[str, object] = {
                "nodeid": f"{test[:-1]}-{name}]", "test": test, "model": name,
                "outcome": "failed" if failed else "passed", "duration": 0.9,
                "cost_usd": 0.0004, "spend": {"latencies": [0.8]}, "transcript": transcript,
            }  # fmt: skip
            kept += len(system) + len(question) + len(answer)
            if failed:
                reason = "The answer does not say how many days a refund takes."
                transcript.append(
                    {"model": "judge", "role": "judge", "api": "chat",
                     "input": [{"role": "user", "text": f"Grade: {answer}"}],
                     "answer": json.dumps({"passed": False, "reason": reason}),
                     "status": 200, "stream": False, "replayed": False, "input_tokens": 200,
                     "output_tokens": 30, "latency_s": 0.5,
                     "verdict": {"passed": False, "reason": reason, "score": None}}
                )  # fmt: skip
                entry["message"] = "AssertionError: the judge said no"
                entry["failure"] = f"AssertionError: the judge said no\n{reason}\nassert False"
                entry["verdicts"] = [
                    {"passed": False, "reason": reason, "score": None, "judge": "judge"}
                ]
                kept += len(answer) + 50
            entries.append(entry)
    stats = {
        name: {
            "outcomes": {"passed": tests, "failed": 0, "error": 0, "skipped": 0},
            "pass_rate": 0.9, "cost_usd": 1.0 + m, "input_tokens": 1, "latency_p50": 0.8,
            "latency_p95": 1.5, "requests": tests, "required": True,
        }
        for m, name in enumerate(names)
    }  # fmt: skip
    report = {
        "selection": {"models": names, "selected_by": "--models"},
        "created": "2026-12-05T00:00:00+00:00",
        "plugin_version": "bench",
        "models": stats,
        "tests": entries,
    }
    return report, kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", type=int, default=5000)
    parser.add_argument("--models", type=int, default=8)
    parser.add_argument("--kb", type=float, default=1.0, help="transcript text per cell")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    report, kept = synthetic_report(args.tests, args.models, args.kb)
    renders, dumps = [], []
    page = ""
    for _ in range(args.rounds):
        started = time.perf_counter()
        page = html.render(report)
        renders.append(time.perf_counter() - started)
        started = time.perf_counter()
        written = json.dumps(report, indent=2)
        dumps.append(time.perf_counter() - started)
    mb = 1_000_000
    cells = args.tests * args.models
    print(f"{args.tests} tests x {args.models} models = {cells} cells, {args.rounds} rounds")
    print(f"  transcript text: {kept / mb:.1f} MB ({kept / cells:.0f} bytes a cell)")
    print(f"  JSON report    : {len(written.encode()) / mb:.1f} MB")
    print(f"  HTML page      : {len(page.encode()) / mb:.1f} MB")
    print(f"  html.render    : median {statistics.median(renders):.2f}s  min {min(renders):.2f}s")
    print(f"  json.dumps     : median {statistics.median(dumps):.2f}s  min {min(dumps):.2f}s")


if __name__ == "__main__":
    main()
