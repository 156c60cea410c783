"""Preloaded xdist workers: forked from one preloader, yet what xdist would have started.

Real sessions in subprocesses, real xdist workers, the real simulator over loopback.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .test_lifetime import descendants, needs_proc, running, wait_for

pytestmark = [
    needs_proc,
    pytest.mark.skipif(sys.platform != "linux", reason="preloading needs Linux"),
]

PROJECT = """
[tool.llm-matrix.models.a]
provider = "simulator"
[tool.llm-matrix.models.b]
provider = "simulator"
"""

#: Written by every worker: what its process looks like from the inside, at configure
#: time (before any test module is imported) and during its first test.
PROBE = """
import json, os, signal, sys, threading
import pytest

def _state():
    handlers = {}
    for number in range(1, signal.NSIG):
        try:
            handler = signal.getsignal(number)
        except (ValueError, OSError):
            continue
        handlers[number] = getattr(handler, "__name__", str(handler))
    fds = {}
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if ":" in target:
            kind = target.split(":")[0]
        elif "(deleted)" in target:
            kind = "tmp"
        elif "pytest-llm-matrix-" in target:  # the session's state: a new folder each run
            kind = "state/" + os.path.basename(target)
        else:
            kind = target
        fds[kind] = fds.get(kind, 0) + 1
    parent = open(f"/proc/{os.getppid()}/cmdline", "rb").read().split(b"\\0")
    return {
        "worker": os.environ.get("PYTEST_XDIST_WORKER"),
        "preloaded": b"_boot()" in b" ".join(parent),
        "cwd": os.getcwd(),
        "argv": sys.argv,
        "marker": os.environ.get("PRELOAD_TEST_MARKER"),
        "umask": os.umask(os.umask(0)),
        "signals": handlers,
        "threads": sorted(t.name for t in threading.enumerate()),
        "fds": fds,
        "main": sorted(vars(sys.modules["__main__"])),
        "test_modules": sorted(m for m in sys.modules if m.startswith(("test_", "conftest"))),
    }

def pytest_configure(config):
    if hasattr(config, "workerinput"):
        state = _state()  # before the file that records it is open
        with open(f"configure-{os.getpid()}.json", "w") as fh:
            json.dump(state, fh)

@pytest.fixture
def state():
    return _state()
"""

SUITE = """
import json, os
import pytest

@pytest.mark.parametrize("n", range(4))
def test_probe(llm, state, n):
    assert llm.complete("hi")
    with open(f"test-{os.getpid()}.json", "w") as fh:
        json.dump(state, fh)
"""


def states(folder: Path, prefix: str) -> list[dict]:
    found = [json.loads(p.read_text()) for p in sorted(folder.glob(f"{prefix}-*.json"))]
    for path in folder.glob(f"{prefix}-*.json"):
        path.unlink()
    return found


def comparable(state: dict) -> dict:
    return {k: v for k, v in state.items() if k not in ("worker", "preloaded")}


def test_a_preloaded_worker_is_what_xdist_would_have_started(pytester, write_config, monkeypatch):
    write_config(PROJECT)
    pytester.makeconftest(PROBE)
    pytester.makepyfile(SUITE)
    monkeypatch.setenv("PRELOAD_TEST_MARKER", "set before the run")
    seen = {}
    for mode in ("auto", "off"):
        result = pytester.runpytest_subprocess(
            "-n", "2", "--models=all", "-p", "no:cacheprovider", f"--llm-preload={mode}"
        )
        result.assert_outcomes(passed=8)
        seen[mode] = (states(pytester.path, "configure"), states(pytester.path, "test"))
    result.stdout.fnmatch_lines(["*llm-matrix: workers not preloaded: --llm-preload=off*"])
    (on_configure, on_test), (off_configure, off_test) = seen["auto"], seen["off"]
    assert len(on_configure) == len(off_configure) == 2
    assert all(s["preloaded"] for s in on_configure + on_test)
    assert not any(s["preloaded"] for s in off_configure + off_test)
    for on, off in [(on_configure, off_configure), (on_test, off_test)]:
        assert {json.dumps(comparable(s), sort_keys=True) for s in on} == {
            json.dumps(comparable(s), sort_keys=True) for s in off
        }
    first = on_configure[0]
    assert first["marker"] == "set before the run"
    assert first["argv"] == ["-c"]
    assert first["cwd"] == str(pytester.path)
    assert first["test_modules"] == ["conftest"]  # the probe's own; no test module yet


def test_the_header_says_whether_workers_are_preloaded(pytester, write_config):
    write_config(PROJECT)
    pytester.makepyfile("def test_m(llm_model):\n    pass\n")
    preloaded = pytester.runpytest_subprocess("-n", "2", "--models=all")
    preloaded.stdout.fnmatch_lines(["*llm-matrix: workers preloaded (forked from one process*"])
    plain = pytester.runpytest_subprocess("--models=all")
    assert "llm-matrix: workers" not in plain.stdout.str()


@pytest.mark.parametrize(
    "args",
    [["-p", "no:llm_matrix"], [], ["--models=all", "--llm-preload=off"]],
    ids=["plugin-off", "no-models", "off"],
)
def test_runs_without_models_or_the_plugin_never_preload(pytester, write_config, args):
    write_config(PROJECT if args else "")
    pytester.makepyfile(
        """
        import os

        def test_parent():
            parent = open(f"/proc/{os.getppid()}/cmdline", "rb").read()
            assert b"_boot()" not in parent and b"pytest" in parent
        """
    )
    result = pytester.runpytest_subprocess("-n", "2", *args)
    result.assert_outcomes(passed=1)


def test_on_preloads_without_models(pytester, write_config):
    write_config("")
    pytester.makepyfile(
        """
        import os

        def test_parent():
            assert b"_boot()" in open(f"/proc/{os.getppid()}/cmdline", "rb").read()
        """
    )
    pytester.runpytest_subprocess("-n", "2", "--llm-preload=on").assert_outcomes(passed=1)


CRASHING = """
import os
import pytest

@pytest.mark.parametrize("n", range(6))
def test_request(llm, llm_model, n):
    parent = open(f"/proc/{os.getppid()}/cmdline", "rb").read()
    with open("parents.txt", "a") as fh:
        fh.write(f"{n} {llm_model.name} {b'_boot()' in parent}\\n")
    if llm_model.name == "a" and n == 2:
        os._exit(1)
    assert llm.complete("hi")
"""


def test_a_crashed_worker_is_restarted_from_the_preloader(pytester, write_config):
    write_config(PROJECT)
    pytester.makepyfile(CRASHING)
    result = pytester.runpytest_subprocess("-n", "2", "--models=all", "-p", "no:randomly")
    result.assert_outcomes(passed=11, failed=1)
    result.stdout.fnmatch_lines(["*crashed while running*test_request?a-2?*"])
    rows = (pytester.path / "parents.txt").read_text().split("\n")[:-1]
    assert len(rows) == 12  # every test ran once: none lost, none twice
    assert all(row.endswith("True") for row in rows)  # the replacement was forked too


#: In the controller: how each worker's stand-in process (what execnet started and waits
#: for) ended, once xdist has torn the nodes down.
STAND_INS = """
import json
import pytest

_popens = {}

def pytest_testnodedown(node, error):
    _popens[node.gateway.id] = node.gateway._io.popen

@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session):
    if not hasattr(session.config, "workerinput"):
        with open("stand-ins.json", "w") as fh:
            json.dump({gw: p.returncode for gw, p in _popens.items()}, fh)
"""


@pytest.mark.skipif(shutil.which("tail") is None, reason="needs GNU tail")
def test_a_waiting_launcher_ends_with_its_worker_not_at_its_next_look(pytester, write_config):
    """A launcher that became ``tail --pid`` (looking every tenth of a second) is ended by
    the preloader as soon as its worker has ended: xdist's teardown, the run's end, does not
    wait for its next look. (Killed by SIGTERM is how it ended then; by itself, exit 0.)"""
    write_config(PROJECT)
    pytester.makeconftest(STAND_INS)
    pytester.makepyfile("def test_answer(llm):\n    assert llm.complete('hi')\n")
    result = pytester.runpytest_subprocess("-n", "4", "--models=all", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    assert "llm-matrix: workers preloaded" in result.stdout.str()
    ended = json.loads((pytester.path / "stand-ins.json").read_text())
    assert len(ended) == 4
    # a tail that looked just as its worker ended exits by itself first (a race it may win)
    assert set(ended.values()) <= {0, -signal.SIGTERM}
    assert -signal.SIGTERM in ended.values()


ENDING = """
import atexit, os, threading, time

def _late(path):
    time.sleep(0.3)
    with open(path, "w") as fh:
        fh.write("written after the session")

def test_leaves_work_for_the_exit(llm_model):
    mode = os.environ["ENDING_MODE"]
    atexit.register(lambda: open(f"atexit-{mode}.txt", "w").write(llm_model.name))
    threading.Thread(target=_late, args=(f"thread-{mode}.txt",)).start()
    threading.Thread(target=time.sleep, args=(60,), daemon=True).start()
"""


def test_a_preloaded_worker_ends_as_its_interpreter_would(pytester, write_config, monkeypatch):
    """The worker skips tearing its inherited objects down, not what a program can see of
    an interpreter's exit: threads that are not daemons are waited for (a daemon is not),
    ``atexit`` functions run."""
    write_config(PROJECT)
    pytester.makepyfile(ENDING)
    for mode in ("auto", "off"):
        monkeypatch.setenv("ENDING_MODE", mode)
        started = time.monotonic()
        result = pytester.runpytest_subprocess(
            "-n", "1", "--models=a", "-p", "no:cacheprovider", f"--llm-preload={mode}"
        )
        result.assert_outcomes(passed=1)
        preloaded = "llm-matrix: workers preloaded" in result.stdout.str()
        assert preloaded == (mode == "auto")
        assert time.monotonic() - started < 30  # the daemon thread's minute was not waited
        assert (pytester.path / f"atexit-{mode}.txt").read_text() == "a"
        assert (pytester.path / f"thread-{mode}.txt").read_text() == "written after the session"


def counts(output: str) -> dict[str, int]:
    """pytest's outcome counts from its last line."""
    last = output.strip().splitlines()[-1]
    return {word: int(n) for n, word in re.findall(r"(\d+) (passed|failed|error)", last)}


def start(pytester, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=pytester.path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: what it leaves is easy to find
    )


def finish(process: subprocess.Popen[bytes], timeout: float) -> str:
    """The run's output once it ends (killed if it does not end in ``timeout``)."""
    try:
        output, _ = process.communicate(timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        assert process.stdout is not None
        process.stdout.close()
    return output.decode()


def group_members(pgid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            found.append(int(entry))
    return found


def preloader_of(pid: int) -> int | None:
    for child in descendants(pid):
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
            parent = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[1]
            if b"_boot()" in cmdline and parent == str(pid):
                return child
        except OSError:
            continue
    return None


def launchers_of(pid: int) -> list[int]:
    found = []
    for child in descendants(pid):
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        if cmdline.startswith(b"tail\0--pid=") or b"_launcher.py" in cmdline:
            found.append(child)
    return found


SLOW = """
import os
import pytest

@pytest.mark.parametrize("n", range(40))
def test_request(llm, llm_model, n):
    with open("ran.txt", "a") as fh:
        fh.write(f"{llm_model.name}-{n}\\n")
    assert llm.complete("hi")
"""


@pytest.mark.parametrize("victim", ["controller", "preloader", "launcher"])
def test_a_killed_process_of_the_run_leaves_nothing_behind(pytester, write_config, victim):
    write_config(
        PROJECT.replace(
            'provider = "simulator"', 'provider = "simulator"\nsimulate = { latency = 0.1 }'
        )
    )
    pytester.makepyfile(SLOW)
    process = start(pytester, "-n", "3", "--models=all", "-p", "no:randomly")
    try:
        assert wait_for(lambda: len(launchers_of(process.pid)) == 3)
        assert wait_for(lambda: (pytester.path / "ran.txt").exists())
        target = {
            "controller": lambda: process.pid,
            "preloader": lambda: preloader_of(process.pid),
            "launcher": lambda: launchers_of(process.pid)[0],
        }[victim]()
        assert target is not None
        os.kill(target, signal.SIGKILL)
    finally:
        text = finish(process, timeout=120)
    if victim != "controller":
        # the run goes on and completes: a killed launcher is a crashed worker
        assert counts(text) in ({"passed": 80}, {"passed": 79, "failed": 1}), text
    assert wait_for(lambda: not group_members(process.pid), timeout=10), [
        Path(f"/proc/{p}/cmdline").read_bytes() for p in group_members(process.pid)
    ]


def test_after_the_preloader_died_workers_start_the_normal_way(pytester, write_config):
    write_config(PROJECT)
    pytester.makepyfile(
        """
        import os, time
        import pytest

        @pytest.mark.parametrize("n", range(6))
        def test_request(llm, llm_model, n):
            parent = open(f"/proc/{os.getppid()}/cmdline", "rb").read()
            with open("parents.txt", "a") as fh:
                fh.write(f"{llm_model.name}-{n} {b'_boot()' in parent}\\n")
            if llm_model.name == "a" and n == 0:
                while os.path.exists("hold"):
                    time.sleep(0.05)
            if llm_model.name == "a" and n == 1:
                os._exit(1)  # after the preloader is gone: its replacement starts normally
            assert llm.complete("hi")
        """
    )
    (pytester.path / "hold").write_text("")
    process = start(pytester, "-n", "2", "--models=all", "-p", "no:randomly")
    try:
        assert wait_for(lambda: (pytester.path / "parents.txt").exists())
        preloader = preloader_of(process.pid)
        assert preloader is not None
        os.kill(preloader, signal.SIGKILL)
        assert wait_for(lambda: not running(preloader))
        (pytester.path / "hold").unlink()
    finally:
        text = finish(process, timeout=120)
    assert counts(text) == {"passed": 11, "failed": 1}, text
    assert "llm-matrix: the worker preloader exited (killed by signal 9)" in text
    rows = dict(line.split() for line in (pytester.path / "parents.txt").read_text().splitlines())
    assert len(rows) == 12
    assert "False" in rows.values()  # the restarted worker was not forked


def test_pytest_cov_measures_code_run_in_preloaded_workers(pytester, write_config):
    pytest.importorskip("pytest_cov")
    write_config(PROJECT)
    pytester.makepyfile(
        covered="""
        def answer(n):
            if n % 2:
                return "odd"
            return "even"
        """,
        test_cov="""
        import pytest
        from covered import answer

        @pytest.mark.parametrize("n", range(4))
        def test_answer(llm_model, n):
            assert answer(n) in ("odd", "even")
        """,
    )
    result = pytester.runpytest_subprocess(
        "-n",
        "4",
        "--models=all",
        "--cov=covered",
        "--cov-report=term-missing",
        "-p",
        "no:cacheprovider",
    )
    result.assert_outcomes(passed=8)
    result.stdout.fnmatch_lines(["*workers preloaded*", "covered.py * 100%*"])


def test_a_worker_the_preloader_cannot_give_what_xdist_would_starts_normally(
    pytester, write_config
):
    """An interpreter setting changed after the preloader started (here by a conftest, as
    the workers come up): the preloader refuses, the worker starts the normal way, and a
    line says why."""
    write_config(PROJECT)
    pytester.makeconftest(
        """
        import os
        import pytest

        @pytest.hookimpl(tryfirst=True)
        def pytest_sessionstart(session):
            if not hasattr(session.config, "workerinput"):
                os.environ["PYTHONWARNINGS"] = "ignore::DeprecationWarning"
        """
    )
    pytester.makepyfile(
        """
        import os

        def test_normal(llm_model):
            parent = open(f"/proc/{os.getppid()}/cmdline", "rb").read()
            assert b"_boot()" not in parent
            assert os.environ["PYTHONWARNINGS"] == "ignore::DeprecationWarning"
        """
    )
    result = pytester.runpytest_subprocess("-n", "2", "--models=all", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [
            "llm-matrix: gw? started the normal way: the preloader refused: interpreter "
            "settings changed since the preloader started: PYTHONWARNINGS"
        ]
    )


@pytest.mark.parametrize("mode", ["auto", "off"])
def test_ctrl_c_to_the_process_group_stops_the_run_as_without_preloading(
    pytester, write_config, mode
):
    """Ctrl-C reaches every process of the run: the preloader and the launchers leave it to
    the controller and the workers, which stop as xdist's own do."""
    write_config(
        PROJECT.replace(
            'provider = "simulator"', 'provider = "simulator"\nsimulate = { latency = 0.2 }'
        )
    )
    pytester.makepyfile(SLOW)
    process = start(pytester, "-n", "2", "--models=all", f"--llm-preload={mode}")
    try:
        assert wait_for(lambda: (pytester.path / "ran.txt").exists())
        time.sleep(0.5)
        os.killpg(process.pid, signal.SIGINT)
    finally:
        text = finish(process, timeout=60)
    assert "KeyboardInterrupt" in text, text
    assert process.returncode == 2  # pytest's "interrupted"
    assert "crashed" not in text, text
    assert "Traceback" not in text, text
    assert wait_for(lambda: not group_members(process.pid), timeout=10)


def test_workers_with_their_own_interpreter_are_not_preloaded(pytester, write_config):
    write_config(PROJECT)
    pytester.makepyfile("def test_m(llm_model):\n    pass\n")
    spec = f"2*popen//python={sys.executable}"
    result = pytester.runpytest_subprocess("-d", "--tx", spec, "--models=all")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        ["llm-matrix: workers not preloaded: --tx popen//python=*: names its own interpreter"]
    )


def test_workers_given_their_own_environment_are_not_preloaded(pytester, write_config):
    """A worker forked from the preloader would keep what it built from the preloader's
    environment (the TLS context from SSL_CERT_FILE, an SDK's settings read at import):
    with --tx ...//env: the workers start the normal way, see their environment, and the
    header says why."""
    write_config(PROJECT)
    pytester.makepyfile(
        "import os, ssl\n\ndef test_m(llm):\n"
        "    assert os.environ['LLM_MATRIX_WORKER_ENV'] == 'theirs'\n"
        "    assert llm.complete('hi')\n"
    )
    spec = "2*popen//env:LLM_MATRIX_WORKER_ENV=theirs"
    result = pytester.runpytest_subprocess("-d", "--tx", spec, "--models=all")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [
            "llm-matrix: workers not preloaded: --tx popen//env:LLM_MATRIX_WORKER_ENV=theirs: "
            "sets the workers' environment (env:), which a forked worker would not see"
        ]
    )


def test_learned_modules_are_the_stacks_never_the_projects_or_programs():
    from pytest_llm_matrix.distribution.preload import STACK_PACKAGES, _preloadable

    allowed = set(STACK_PACKAGES) | set(sys.stdlib_module_names) | {"xdist"}
    kept = ["httpx2", "httpcore2._sync.connection_pool", "json", "asyncio.tasks", "xdist.plugin"]
    refused = [
        "conftest",
        "test_matrix",
        "myproject.models",
        "antigravity",
        "idlelib.idle",
        "this",
        "__hello__",
        "json.__main__",
        "test.support",
        "_pytest.pytester",
    ]
    assert [m for m in kept if _preloadable(m, allowed)] == kept
    assert [m for m in refused if _preloadable(m, allowed)] == []


def launch(name: str, timeout: float = 30) -> tuple[str, float]:
    """Run the launcher as execnet would, with a tail that shows which interpreter ran it."""
    from pytest_llm_matrix.distribution import _launcher

    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-I", "-S", _launcher.__file__, name, "-c", "print('normal start')"],
        capture_output=True,
        timeout=timeout,
        env={**os.environ, "PYTEST_LLM_MATRIX_LAUNCHER_TIMEOUT": "1"},
        check=False,
    )
    return done.stdout.decode() + done.stderr.decode(), time.monotonic() - started


def test_a_launcher_without_a_preloader_starts_its_worker_the_normal_way():
    output, _ = launch("pytest-llm-matrix-test-nobody-listens")
    assert output == "normal start\n"


@pytest.mark.parametrize("answer", ["never", "refuse", "hang up"])
def test_a_launcher_whose_preloader_does_not_fork_starts_its_worker_the_normal_way(answer):
    import socket
    import threading

    from pytest_llm_matrix.distribution._launcher import HEADER, REFUSED

    name = f"pytest-llm-matrix-test-{os.getpid()}-{answer.replace(' ', '')}"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind("\0" + name)
    server.listen(1)
    held = []

    def serve():
        conn, _ = server.accept()
        held.append(conn)
        _, fds, _, _ = socket.recv_fds(conn, 2**20, 3)
        for fd in fds:  # as the preloader does: only a forked worker keeps them
            os.close(fd)
        if answer == "refuse":
            conn.sendall(HEADER.pack(REFUSED, 4) + b"nope")
        elif answer == "hang up":
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        output, took = launch(name)
    finally:
        server.close()
        for conn in held:
            conn.close()
    assert output == "normal start\n"
    if answer == "never":  # a preloader stuck in its imports: given up on, not waited for
        assert 1.0 <= took < 20


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1", 1.0),
        ("0.5", 0.5),
        ("nan", 60.0),
        ("inf", 60.0),
        ("-inf", 60.0),
        ("1e308", 60.0),
        ("0", 60.0),
        ("-3", 60.0),
        ("9" * 400, 60.0),
        ("soon", 60.0),
        ("", 60.0),
    ],
)
def test_the_launchers_give_up_time_takes_only_sane_values(monkeypatch, text, expected):
    from pytest_llm_matrix.distribution._launcher import give_up_after

    monkeypatch.setenv("PYTEST_LLM_MATRIX_LAUNCHER_TIMEOUT", text)
    assert give_up_after() == expected
