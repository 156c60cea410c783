"""Run the example project's suite through a real LiteLLM proxy in front of the simulator.

Opt-in: LiteLLM is not one of the project's dependencies. Install its proxy in a virtualenv
of its own and name its ``litellm`` command::

    python3 -m venv /tmp/litellm
    /tmp/litellm/bin/pip install 'litellm[proxy]>=1.104,<1.109,!=1.107.0'
    python benchmarks/litellm_proxy.py --litellm /tmp/litellm/bin/litellm

What it does: starts the simulator (with the example project's rules) on loopback, a LiteLLM
proxy in front of it (a master key, no database, ``num_retries: 0``) with four aliases, and
runs the example suite (``pytest --models=all -n 4``) against those aliases as
``openai-compatible`` models, then prints what each model got: outcomes, requests, 429s and
retries, its cost and where the cost came from, and why a model was unavailable:

- ``gw-priced``: LiteLLM has a price for it (``input_cost_per_token``): costs reported;
- ``gpt-4o-mini``: an alias named like a listed model, routed to a simulated model LiteLLM
  has no price for: no cost reported, and not priced at gpt-4o-mini's list price;
- ``gw-busy``: the backend answers every third request with 429 and ``retry-after: 1``
  (LiteLLM passes it on as ``llm_provider-retry-after``);
- ``gw-unknown``: an alias the proxy does not serve: unavailable after one request.

The proxy and the simulator end with the script (the proxy's whole process group).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.request
from pathlib import Path

from pytest_llm_matrix.simulator import Simulator, parse_config

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "example_project"
MASTER_KEY = "sk-llm-matrix-benchmark-master-0123456789"

LITELLM_CONFIG = """
model_list:
  - model_name: gw-priced
    litellm_params:
      model: openai/sim-priced
      api_base: {sim}/v1
      api_key: none
      input_cost_per_token: 0.000002
      output_cost_per_token: 0.000008
  - model_name: gpt-4o-mini
    litellm_params:
      model: openai/sim-local
      api_base: {sim}/v1
      api_key: none
  - model_name: gw-busy
    litellm_params:
      model: openai/sim-busy
      api_base: {sim}/v1
      api_key: none
      input_cost_per_token: 0.000002
      output_cost_per_token: 0.000008
litellm_settings:
  num_retries: 0
"""

MODELS = """
[tool.llm-matrix.models.gw-priced]
provider = "openai-compatible"
base_url = "{proxy}/v1"
api_key_env = "LITELLM_BENCH_KEY"

[tool.llm-matrix.models.gpt-4o-mini]
provider = "openai-compatible"
base_url = "{proxy}/v1"
api_key_env = "LITELLM_BENCH_KEY"

[tool.llm-matrix.models.gw-busy]
provider = "openai-compatible"
base_url = "{proxy}/v1"
api_key_env = "LITELLM_BENCH_KEY"
max_concurrency = 2

[tool.llm-matrix.models.gw-unknown]
provider = "openai-compatible"
base_url = "{proxy}/v1"
api_key_env = "LITELLM_BENCH_KEY"
required = false
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_simulator() -> Simulator:
    table = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["tool"]["llm-matrix"]
    config = dict(table["simulator"])
    config["models"] = {
        "sim-priced": {"latency": 0.05},
        "sim-local": {"latency": 0.05},
        "sim-busy": {
            "latency": 0.05,
            "faults": [{"kind": "429", "every": 3, "retry_after": 1}],
        },
    }
    simulator = Simulator(parse_config(config, source="litellm_proxy.py"))
    simulator.start()
    return simulator


def start_proxy(litellm: str, config: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "LITELLM_MASTER_KEY": MASTER_KEY,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LITELLM_LOG": "ERROR",
    }
    with log.open("wb") as out:
        return subprocess.Popen(
            [litellm, "--config", str(config), "--port", str(port), "--telemetry", "False"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its workers die with its process group
        )


def wait_ready(proxy: subprocess.Popen[bytes], url: str, log: Path, limit: float = 120) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if proxy.poll() is not None:
            sys.exit(f"the proxy exited ({proxy.returncode}):\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health/liveliness", timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    sys.exit(f"the proxy did not answer within {limit:.0f}s:\n{log.read_text()[-3000:]}")


def stop(proxy: subprocess.Popen[bytes]) -> None:
    if proxy.poll() is None:
        os.killpg(proxy.pid, signal.SIGTERM)
        try:
            proxy.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proxy.pid, signal.SIGKILL)
            proxy.wait()


def project(folder: Path, proxy_url: str) -> None:
    shutil.copytree(EXAMPLE, folder, ignore=shutil.ignore_patterns("llm_cassettes", "__pycache__"))
    text = (folder / "pyproject.toml").read_text()
    head = text[: text.index("[tool.llm-matrix]")]
    (folder / "pyproject.toml").write_text(
        head + "[tool.llm-matrix]\n" + MODELS.format(proxy=proxy_url)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--litellm", default="litellm", help="the proxy's litellm command")
    parser.add_argument("--workers", default="4", help="pytest -n (default 4)")
    args = parser.parse_args()
    if shutil.which(args.litellm) is None:
        sys.exit(f"{args.litellm}: not found; see this script's docstring to install it")
    simulator = start_simulator()
    with tempfile.TemporaryDirectory(prefix="llm-matrix-litellm-") as scratch:
        work = Path(scratch)
        config = work / "litellm.yaml"
        config.write_text(LITELLM_CONFIG.format(sim=simulator.url))
        port = free_port()
        proxy_url = f"http://127.0.0.1:{port}"
        log = work / "proxy.log"
        proxy = start_proxy(args.litellm, config, port, log)
        try:
            wait_ready(proxy, proxy_url, log)
            project(work / "suite", proxy_url)
            started = time.monotonic()
            run = subprocess.run(
                [sys.executable, "-m", "pytest", "--models=all", "-n", args.workers,
                 "-p", "no:cacheprovider", "--llm-report=r.json", "-rf"],
                cwd=work / "suite",
                env={**os.environ, "LITELLM_BENCH_KEY": MASTER_KEY},
                capture_output=True,
                text=True,
            )  # fmt: skip
            took = time.monotonic() - started
            print(run.stdout[-6000:])
            report = json.loads((work / "suite" / "r.json").read_text())
        finally:
            stop(proxy)
            simulator.stop()
    print(f"suite through the proxy: exit {run.returncode}, {took:.1f}s")
    for name, model in report["models"].items():
        outcomes = {k: v for k, v in model["outcomes"].items() if v}
        cost = model["cost_usd"]
        print(
            f"{name}: {outcomes}, {model['requests']} requests, {model['rate_limited']} 429s, "
            f"{model['retries']} retries, cost {'n/a' if cost is None else f'${cost:.6f}'} "
            f"from {'+'.join(model.get('price_sources') or ['-'])} "
            f"({model.get('reported', 0)} answers said their cost)"
            + (f"; unavailable: {model['unavailable']}" if model["unavailable"] else "")
        )
    print(f"simulator: {simulator.stats()['statuses']}")


if __name__ == "__main__":
    main()
