"""The example project's commands as the README and the quickstart write them, run by CI
(``.ci/run``: ``python -m tests.example_commands``) in the virtualenv it made.

The README's first command ends in ``cd example_project && pytest --models=all -n 4``
(CI has made and activated its own virtualenv, so only that part is run); its summary block
is compared with the run's output at the README's 120 columns. The quickstart's block of
example commands repeats that one, then replays the recordings and writes the HTML report;
each runs as written, as do the replay commands of the example's own README (which leave
its recordings as they were). Costs minutes of nobody's time in the suite, so it is not a test of
it: the example's sequential run alone takes 15 s.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.snippets import ROOT, assert_shows, snippet

EXAMPLE = ROOT / "example_project"


def run(command: str) -> str:
    """Run a documented command as written, in the example project, through bash."""
    print(f"$ {command}", flush=True)
    # this interpreter's pytest, as in the README's activated virtualenv
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    env = {**os.environ, "COLUMNS": "120", "PATH": path}
    env.pop("TEST_MODELS", None)
    done = subprocess.run(
        ["bash", "-c", command],
        cwd=EXAMPLE,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        check=False,
    )
    print(done.stdout, flush=True)
    assert done.returncode == 0, f"{command!r} exited {done.returncode}"
    return done.stdout


def main() -> None:
    readme = snippet("readme-try").strip()
    command = readme.rsplit("&& cd example_project && ", 1)[1]
    output = run(command)
    assert_shows(snippet("readme-summary"), output)
    rates = dict(re.findall(r"^(sim-\w+)\s+(?:\d+\s+){4}([\d.]+)%", output, re.M))
    assert float(rates["sim-weak"]) < float(rates["sim-fast"]), rates
    print("the README's summary is the example's run's", flush=True)

    first, *others = snippet("example-commands").strip().splitlines()
    assert first == readme, "the quickstart's first example command is the README's"
    with tempfile.TemporaryDirectory() as keep:
        for line in others:
            command = line.split("  #", 1)[0].strip()
            output = run(command)
            if "--llm-record=replay" in command:
                assert "3 failed, 34 passed, 8 skipped" in output, output[-2000:]
                assert "--llm-record=replay: 52 requests replayed, none sent" in output
            if "--llm-html=report.html" in command:
                report = EXAMPLE / "report.html"
                assert report.stat().st_size > 10_000
                report.rename(Path(keep) / "report.html")  # leave the checkout as it was
    print("the quickstart's example commands run as written", flush=True)

    cassettes = EXAMPLE / "tests" / "llm_cassettes"
    before = {path: path.read_bytes() for path in cassettes.rglob("*.json")}
    for line in snippet("example-replay-commands").strip().splitlines():
        output = run(line.split("  #", 1)[0].strip())
        assert "3 failed, 34 passed, 8 skipped" in output, output[-2000:]
    after = {path: path.read_bytes() for path in cassettes.rglob("*.json")}
    assert after == before, "a run of the example's README changed its recordings"
    print("the example's README's replay commands run as written", flush=True)


if __name__ == "__main__":
    sys.exit(main())
