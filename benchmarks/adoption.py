"""What binding SDK clients at request time costs a test.

A suite of N tests on two simulated models (no latency), each test making one chat call
through the official openai SDK, three ways:

- ``fixture``: the plugin's ``openai_client`` fixture (a client built for the test);
- ``cached``: ``usefixtures = llm_sdks``, the code under test's client built once at import
  and kept (the binding wraps the SDK for each test and rebuilds each request);
- ``per-test``: ``usefixtures = llm_sdks``, the code under test building ``OpenAI()`` in
  every test;
- ``unbound``: the same ``OpenAI()`` in every test, pointed at the simulator by the test
  itself and not bound: what the SDK costs on its own (building a client loads its CA
  bundle, about 20 ms).

Rounds alternate the three; prints each one's median wall time, its spread, and the ratio
to ``fixture`` measured in the same rounds.

    python benchmarks/adoption.py [--tests 300] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

CONFIG = """
[tool.pytest.ini_options]
addopts = ["-p", "no:cacheprovider", "-q", "-p", "no:randomly"]
{ini}

[tool.llm-matrix]
default = ["sim-a", "sim-b"]
[tool.llm-matrix.models.sim-a]
provider = "simulator"
[tool.llm-matrix.models.sim-b]
provider = "simulator"
"""

TESTS = {
    "fixture": (
        "",
        "",
        "def test_{i}(openai_client, llm_model):\n"
        "    answer = openai_client.chat.completions.create(model=llm_model.model, messages=M)\n"
        "    assert answer.choices[0].message.content\n\n",
    ),
    "cached": (
        'usefixtures = ["llm_sdks"]',
        "import openai\nCLIENT = openai.OpenAI(api_key='sk-bench')\n",
        "def test_{i}():\n"
        "    answer = CLIENT.chat.completions.create(model='gpt-4o', messages=M)\n"
        "    assert answer.choices[0].message.content\n\n",
    ),
    "per-test": (
        'usefixtures = ["llm_sdks"]',
        "import openai\n",
        "def test_{i}():\n"
        "    client = openai.OpenAI(api_key='sk-bench')\n"
        "    answer = client.chat.completions.create(model='gpt-4o', messages=M)\n"
        "    assert answer.choices[0].message.content\n\n",
    ),
    "unbound": (
        "",
        "import openai\n",
        "def test_{i}(llm_model):\n"
        "    client = openai.OpenAI(api_key='sk-bench', base_url=llm_model.base_url)\n"
        "    answer = client.chat.completions.create(model=llm_model.model, messages=M)\n"
        "    assert answer.choices[0].message.content\n\n",
    ),
}


def make(root: Path, kind: str, tests: int) -> None:
    ini, head, body = TESTS[kind]
    root.mkdir()
    root.joinpath("pyproject.toml").write_text(textwrap.dedent(CONFIG.format(ini=ini)))
    messages = "M = [{'role': 'user', 'content': 'hi'}]\n\n"
    text = head + messages + "".join(body.format(i=i) for i in range(tests))
    root.joinpath("test_bench.py").write_text(text)


ENV = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "CI")}
ENV.pop("OPENAI_BASE_URL", None)


def run(root: Path) -> float:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "pytest"], cwd=root, env=ENV, capture_output=True, text=True
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{root.name} failed:\n{done.stdout[-3000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        roots = {kind: Path(folder, kind) for kind in TESTS}
        for kind, root in roots.items():
            make(root, kind, args.tests)
            run(root)  # warm: bytecode, the OS's caches
        times: dict[str, list[float]] = {kind: [] for kind in TESTS}
        for _ in range(args.rounds):
            for kind, root in roots.items():
                times[kind].append(run(root))
    runs = 2 * args.tests
    base = statistics.median(times["fixture"])
    print(f"{args.tests} tests x 2 models = {runs} model tests, {args.rounds} rounds")
    for kind, found in times.items():
        median = statistics.median(found)
        spread = max(found) - min(found)
        per_test = (median - base) / runs * 1000
        print(
            f"{kind:9} median {median:6.2f}s  spread {spread:5.2f}s  ratio to fixture "
            f"{median / base:5.3f}  ({per_test:+.2f} ms per model test)"
        )


if __name__ == "__main__":
    main()
