from __future__ import annotations

import fcntl
import json
import os
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import textwrap
import time
from importlib import resources

import httpcore2  # noqa: F401  (see below)
import httpx2  # noqa: F401
import pytest

# pytester's in-process runs drop the modules an inner run imported. Importing httpx2 and
# httpcore2 (which httpx2 loads lazily) here keeps one copy of each for every inner run:
# otherwise httpx2's mapping of httpcore2 errors meets exception classes from a second copy.


def pytest_configure(config: pytest.Config) -> None:
    """A suite started with SIGINT ignored (as a background job of a shell without job
    control starts it) would pass that on to every run it starts, and the tests of Ctrl-C
    would test nothing: take the signal back, as a terminal's run has it."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


#: A registry with no network needs: simulator models (the plugin starts the simulator)
#: and hosted models whose keys are unset, so they are skipped.
BASIC_CONFIG = """
[tool.llm-matrix]
default = ["sim-fast"]
groups = { sims = ["sim-fast", "sim-weak"] }

[tool.llm-matrix.models.sim-fast]
provider = "simulator"
tags = ["fast", "cheap"]

[tool.llm-matrix.models.sim-weak]
provider = "simulator"
tags = ["cheap"]
simulate = { wrong = ["(?i)capital"], wrong_reply = "Lyon" }

[tool.llm-matrix.models."gpt-4o.mini-2"]
provider = "openai"
model = "gpt-4o-mini"
api_key_env = "LLM_MATRIX_TEST_UNSET_KEY"
tags = ["hosted"]

[tool.llm-matrix.simulator]
default_reply = "ok"
rules = [{ match = "(?i)capital of france", reply = "Paris" }]
"""

PYTEST_INI = """
[tool.pytest.ini_options]
asyncio_default_fixture_loop_scope = "function"
"""


@pytest.fixture
def write_config(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch):
    """Write a pyproject.toml with the given [tool.llm-matrix] text (plus pytest settings)."""
    monkeypatch.delenv("TEST_MODELS", raising=False)
    monkeypatch.delenv("LLM_MATRIX_TEST_UNSET_KEY", raising=False)

    def write(text: str = BASIC_CONFIG) -> None:
        pytester.makefile(".toml", pyproject=textwrap.dedent(text) + PYTEST_INI)

    return write


def outcome_counts(result: pytest.RunResult) -> dict[str, int]:
    """pytest's own outcome counts, from its last line: {"passed": 5, "failed": 3, ...}."""
    return {word: int(n) for n, word in re.findall(r"(\d+) (\w+)", result.outlines[-1])}


def schema() -> dict:
    """The JSON report's schema, as shipped in the package."""
    text = resources.files("pytest_llm_matrix.report").joinpath("report_schema.json").read_text()
    return json.loads(text)


def collected(result: pytest.RunResult) -> list[str]:
    """Test names (without the file part) from a ``--collect-only -q`` run."""
    return [line.split("::", 1)[1] for line in result.outlines if "::" in line]


@pytest.fixture(
    params=[[], ["-n", "0"], ["-n", "2"], ["-p", "no:xdist"]],
    ids=["plain", "n0", "n2", "no-xdist"],
)
def xdist_args(request: pytest.FixtureRequest) -> list[str]:
    """Run a feature test without xdist, with xdist off, with two workers, and blocked."""
    return list(request.param)


#: An inner conftest.py that writes what every test spent (from its reports, in the
#: controller) to spend.jsonl: the reports are the contract, so tests read them there.
SPEND_RECORDER = """
import json

IN_WORKER = []

def pytest_configure(config):
    IN_WORKER.append(hasattr(config, "workerinput"))

def pytest_runtest_logreport(report):
    spend = getattr(report, "llm_spend", None)
    if spend is not None and not IN_WORKER[-1]:  # only the controller's copy
        with open("spend.jsonl", "a") as fh:  # pytester runs in the project folder
            fh.write(json.dumps({"nodeid": report.nodeid, "when": report.when,
                                 "model": getattr(report, "llm_model", None), **spend}) + "\\n")
"""


def read_spend(pytester: pytest.Pytester) -> dict[str, dict]:
    """Per test id: the spend of all its phases added up (lists concatenated)."""
    import json

    path = pytester.path / "spend.jsonl"
    totals: dict[str, dict] = {}
    if not path.exists():
        return totals
    for line in path.read_text().splitlines():
        row = json.loads(line)
        name = row.pop("nodeid").split("::", 1)[1]
        row.pop("when")
        total = totals.setdefault(name, {})
        for key, value in row.items():
            if isinstance(value, list):
                total[key] = total.get(key, []) + value
            elif isinstance(value, int):
                total[key] = total.get(key, 0) + value
            else:
                total[key] = value
    return totals


@pytest.fixture
def simulator():
    """A simulator started by the test, for projects whose models point at it by base_url."""
    from pytest_llm_matrix.simulator import Simulator, parse_config

    started: list[Simulator] = []

    def start(config: dict | None = None) -> Simulator:
        sim = Simulator(parse_config(config or {}, source="test"))
        sim.start()
        started.append(sim)
        return sim

    yield start
    for sim in started:
        sim.stop()


def run_in_terminal(
    args: list[str], cwd: os.PathLike[str], timeout: float = 90
) -> tuple[str, int | None]:
    """Run pytest with stdout in a pseudo-terminal 100 columns wide; return all it wrote
    and its exit status (None when it had to be killed)."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 100, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("PY_COLORS", "NO_COLOR", "CI")}
    env["TERM"] = "xterm-256color"
    process = subprocess.Popen(
        [sys.executable, "-m", "pytest", *args],
        cwd=cwd,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
    )
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if not ready:
                if process.poll() is not None:
                    break
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
    finally:
        try:
            status: int | None = process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            status = None
            process.kill()
            process.wait()
        os.close(master)
    # colours off, so the text reads plainly; cursor movements stay
    text = re.sub(r"\x1b\[[\d;]*m", "", b"".join(chunks).decode(errors="replace"))
    return text, status
