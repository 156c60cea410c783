"""Nothing a run starts or writes outlives it: not its xdist workers, not its state
directory, whether it ends normally, is interrupted, terminated or killed."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

SLOW_PROJECT = """
[tool.llm-matrix.models.sim-slow]
provider = "simulator"
simulate = { latency = 0.3 }
"""

SLOW_SUITE = """
import pytest

@pytest.mark.parametrize("n", range(60))
def test_answer(llm, n):
    assert llm.complete("hi")
"""


def children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        found |= {int(child) for child in task.read_text().split()}
    return found


def descendants(pid: int) -> set[int]:
    """Every process below ``pid``: with preloading, xdist's workers are the preloader's
    children, and the controller's are the preloader and the workers' launchers."""
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children(todo.pop()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def running(pid: int) -> bool:
    """Alive and not a zombie (a dead child not yet reaped by whoever inherited it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def state_dirs(temp: Path) -> list[str]:
    return sorted(p.name for p in temp.iterdir() if "pytest-llm-matrix-" in p.name)


def wait_for(condition, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def temp(tmp_path_factory, monkeypatch) -> Path:
    """The temporary folder of the runs under test (TMPDIR), apart from everyone else's."""
    folder = tmp_path_factory.mktemp("tmpdir")
    monkeypatch.setenv("TMPDIR", str(folder))
    monkeypatch.setattr(tempfile, "tempdir", None)  # in-process runs: read TMPDIR again
    return folder


needs_proc = pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs /proc")


@needs_proc
@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["plain", "n2"])
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_nothing_outlives_a_stopped_run(pytester, write_config, temp, workers, signum):
    write_config(SLOW_PROJECT)
    pytester.makepyfile(SLOW_SUITE)
    process = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *workers],
        cwd=pytester.path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # the signal goes to the controller alone
    )
    try:
        # two workers, plus the preloader and a launcher per worker when preloaded
        expected = {2, 5} if workers else {0}
        assert wait_for(lambda: state_dirs(temp) and len(descendants(process.pid)) >= min(expected))
        time.sleep(1.0)  # tests under way
        # a short-lived helper (the preloader's ``tail --version``) may be there for a moment
        seen: list[set[int]] = []

        def settled() -> bool:
            seen.append(descendants(process.pid))
            return len(seen[-1]) in expected

        assert wait_for(settled), [sorted(found) for found in seen[-3:]]
        started = set().union(*seen)
        process.send_signal(signum)
        process.wait(timeout=30)
    finally:
        process.kill()
        process.wait()
    assert wait_for(lambda: not any(running(pid) for pid in started), timeout=5)
    if signum == signal.SIGKILL:
        # nothing can clean up after SIGKILL: the next run does
        assert len(state_dirs(temp)) == 1
        pytester.makepyfile("def test_a(llm):\n    pass\n")
        pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)
    assert state_dirs(temp) == []


def test_only_stale_state_directories_are_removed_at_start(pytester, write_config, temp):
    def make(name: str, locked: bool | None) -> int | None:
        folder = temp / name
        folder.mkdir()
        (folder / "slot").write_text("")
        if locked is None:
            return None
        fd = os.open(folder / "owner.lock", os.O_RDWR | os.O_CREAT)
        if locked:
            fcntl.flock(fd, fcntl.LOCK_EX)
            return fd
        os.close(fd)
        return None

    make("pytest-llm-matrix-dead", locked=False)  # its owner died
    alive = make("pytest-llm-matrix-alive", locked=True)  # another session, running
    make("pytest-llm-matrix-unlocked", locked=None)  # an older plugin's, maybe running
    make("pytest-llm-matrix-unlocked-old", locked=None)  # ... or long gone
    # being made right now: its lock file exists, not yet locked (a race to survive)
    make(".pytest-llm-matrix-making-new", locked=False)
    make(".pytest-llm-matrix-making-old", locked=None)
    two_days_ago = time.time() - 2 * 86400
    for name in ("pytest-llm-matrix-unlocked-old", ".pytest-llm-matrix-making-old"):
        os.utime(temp / name, (two_days_ago, two_days_ago))
    make("unrelated", locked=None)
    write_config()
    pytester.makepyfile("def test_a(llm):\n    pass\n")
    try:
        pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)
    finally:
        assert alive is not None
        os.close(alive)
    assert sorted(p.name for p in temp.iterdir()) == [
        ".pytest-llm-matrix-making-new",
        "pytest-llm-matrix-alive",
        "pytest-llm-matrix-unlocked",
        "unrelated",
    ]


def test_a_run_leaves_no_state_and_keeps_sigterm_as_it_was(pytester, write_config, temp):
    write_config()
    pytester.makepyfile("def test_a(llm):\n    pass\n")
    before = signal.getsignal(signal.SIGTERM)
    pytester.makeconftest(
        "import os, tempfile\n"
        "def pytest_sessionfinish():\n"
        "    with open('seen.txt', 'w') as seen:\n"
        "        seen.write('\\n'.join(os.listdir(tempfile.gettempdir())))\n"
    )
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)  # in-process
    seen = (pytester.path / "seen.txt").read_text().split()
    assert any(name.startswith("pytest-llm-matrix-") for name in seen)  # there, while it ran
    assert signal.getsignal(signal.SIGTERM) is before
    assert state_dirs(temp) == []


TWO_SPEEDS = """
[tool.llm-matrix.models.quick]
provider = "simulator"
[tool.llm-matrix.models.slow]
provider = "simulator"
simulate = { latency = 2.0 }
"""

#: In the controller: the worker process of the first node to go down, and whether it is
#: still there when the session ends (before xdist tears its nodes down).
NODE_DOWN_PROBE = """
import json, os, time
import pytest

_down = []

def pytest_testnodedown(node, error):
    _down.append((node.gateway.id, node.gateway._rinfo().pid, error))

@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session):
    if hasattr(session.config, "workerinput"):
        return
    def ended(pid):  # gone, or a zombie (its parent reaps it later); it may go mid-read
        try:
            with open(f"/proc/{pid}/stat") as stat:
                return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
        except FileNotFoundError:
            return True

    gone = {}
    deadline = time.monotonic() + 10
    for gateway, pid, error in _down:
        while not ended(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        gone[gateway] = ended(pid)
    with open("down.json", "w") as fh:
        json.dump({"order": [d[0] for d in _down], "pids": [d[1] for d in _down],
                   "gone": gone}, fh)
"""


@pytest.mark.parametrize("preload", ["auto", "off"])
def test_a_worker_that_finished_exits_before_the_session_ends(pytester, write_config, preload):
    """A worker done with its tests is told to exit when it goes down, not when the last
    one has: by the session's end it is gone. The last one is left to xdist's teardown,
    which waits for every worker; none outlives the run."""
    write_config(TWO_SPEEDS)
    pytester.makeconftest(NODE_DOWN_PROBE)
    pytester.makepyfile("def test_answer(llm):\n    assert llm.complete('hi')\n")
    result = pytester.runpytest_subprocess(
        "-n", "2", "--models=quick,slow", "-p", "no:cacheprovider", f"--llm-preload={preload}"
    )
    result.assert_outcomes(passed=2)
    down = json.loads((pytester.path / "down.json").read_text())
    first, last = down["order"]
    assert down["gone"] == {first: True, last: False}
    assert not any(running(pid) for pid in down["pids"])


SLOW_TO_END = """
import os, time

def pytest_unconfigure(config):
    worker = getattr(config, "workerinput", {}).get("workerid")
    if worker and os.path.exists(f"quick-{worker}"):
        time.sleep(6)  # longer than execnet gives a worker told to exit (5 s, then SIGINT)
        with open(f"unconfigured-{worker}", "w") as fh:
            fh.write("done")
"""

QUICK_AND_SLOW = """
import os

def test_answer(llm, llm_model):
    if llm_model.name == "quick":
        open(f"quick-{os.environ['PYTEST_XDIST_WORKER']}", "w").close()
    assert llm.complete("hi")
"""


def test_a_worker_is_told_to_exit_only_once_its_session_has_wholly_ended(pytester, write_config):
    """A worker that finished first may take its time in ``pytest_unconfigure`` and its
    cleanups while the others run (6 s here, the slow model's test 4 s): it is told to exit
    only once they are done, not when it went down (execnet would interrupt it 5 s later)."""
    write_config(TWO_SPEEDS.replace("latency = 2.0", "latency = 4.0"))
    pytester.makeconftest(SLOW_TO_END)
    pytester.makepyfile(QUICK_AND_SLOW)
    result = pytester.runpytest_subprocess(
        "-n", "2", "--models=quick,slow", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=2)
    quick = [p.name.removeprefix("quick-") for p in pytester.path.glob("quick-*")]
    assert len(quick) == 1
    assert (pytester.path / f"unconfigured-{quick[0]}").read_text() == "done"


ENDING_PROBE = """
import atexit, gc, os, sys

def _freeze_count():
    if not hasattr(sys, "_llm_worker"):
        with open("frozen.txt", "w") as fh:
            fh.write(str(gc.get_freeze_count()))

atexit.register(_freeze_count)  # registered before the plugin's: runs after it

def pytest_configure(config):
    if hasattr(config, "workerinput"):
        sys._llm_worker = True
"""


@pytest.mark.parametrize(
    ("args", "frozen"),
    [
        (["-n", "1", "--models=a"], True),
        (["--models=a"], False),  # tests ran in this process: its exit is left as it was
        (["--dist", "load", "--models=a"], False),  # a --dist without workers: the same
        (["-n", "1"], False),  # no model selected: the plugin stays out of it
    ],
)
def test_the_controller_ends_without_the_collectors_last_passes(
    pytester, write_config, args, frozen
):
    model = '[tool.llm-matrix.models.a]\nprovider = "simulator"\n'
    write_config(model if "--models=a" in args else "")
    pytester.makeconftest(ENDING_PROBE)
    pytester.makepyfile("def test_plain():\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", *args)
    result.assert_outcomes(passed=1)
    assert (int((pytester.path / "frozen.txt").read_text()) > 0) == frozen
