"""Sessions on "different machines" (separate pytest processes with their own state
directories) sharing caps, cooldowns, unavailable models and the budget through a real
redis-server, started here on a free loopback port."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.snippets import assert_shows, snippet

REDIS_SERVER = shutil.which("redis-server")
pytest.importorskip("redis")

if REDIS_SERVER is None and os.environ.get("CI"):
    raise RuntimeError("redis-server is missing in CI: .ci/run installs it")
pytestmark = pytest.mark.skipif(
    REDIS_SERVER is None, reason="redis-server is not installed (Debian: apt install redis-server)"
)

KEY = "sk-shared-0123456789abcdefghij"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_redis(port: int, folder: Path, password: str | None = None) -> subprocess.Popen[bytes]:
    """A redis-server on ``port`` of the loopback that keeps nothing on disk, answering."""
    process = subprocess.Popen(
        [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(folder),
         *(["--requirepass", password] if password else [])],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    import redis

    deadline = time.monotonic() + 10
    while True:
        try:
            redis.Redis(port=port, password=password).ping()
            return process
        except redis.ConnectionError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                process.wait()
                raise
            time.sleep(0.05)


@pytest.fixture
def redis_url(tmp_path):
    port = free_port()
    process = start_redis(port, tmp_path)
    yield f"redis://127.0.0.1:{port}/0", process
    process.kill()
    process.wait()


@pytest.fixture
def shared(simulator, tmp_path, monkeypatch):
    """Make a project ("a job") whose model answers from one simulator every job shares."""
    monkeypatch.delenv("TEST_MODELS", raising=False)
    monkeypatch.setenv("SHARED_KEY", KEY)
    sim = simulator(
        {
            "default_reply": "ok",
            "models": {"shared": {"latency": 0.2, "api_key": KEY}},
        }
    )

    def job(name: str, tests: int = 12, extra: str = "") -> Path:
        folder = tmp_path / name
        folder.mkdir()
        (folder / "pyproject.toml").write_text(
            textwrap.dedent(
                f"""
                [tool.llm-matrix.models.shared]
                provider = "openai-compatible"
                base_url = "{sim.url}/v1"
                model = "shared"
                api_key_env = "SHARED_KEY"
                input_price = 1000.0
                output_price = 1000.0
                {extra}
                """
            )
        )
        (folder / "test_job.py").write_text(
            textwrap.dedent(
                f"""
                import pytest

                @pytest.mark.parametrize("n", range({tests}))
                def test_answer(llm, n):
                    assert llm.complete(f"question {{n}}") == "ok"
                """
            )
        )
        return folder

    job.simulator = sim  # type: ignore[attr-defined]
    return job


#: Sessions that meet a Redis gone for good wait 2 s for it, not 10 (the tests' time).
SHORT_OUTAGE = {"PYTEST_LLM_MATRIX_REDIS_OUTAGE_WAIT": "2"}


def start(folder: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args],
        cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, **(env or {})}, start_new_session=True,
    )  # fmt: skip


def finish(process: subprocess.Popen[str], timeout: float = 120) -> tuple[int, str]:
    out, _ = process.communicate(timeout=timeout)
    return process.returncode, out


def under_way(simulator, requests: int = 4) -> None:
    """Wait until a session has sent ``requests`` requests (its workers are busy)."""
    deadline = time.monotonic() + 60
    while simulator.stats()["requests"].get("shared", 0) < requests:
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_two_sessions_share_one_cap(redis_url, shared):
    url, _ = redis_url
    args = ["-n", "4", "--max-concurrency", "3", f"--llm-coordinator={url}", "--llm-run-id=r1"]
    first, second = start(shared("a"), *args), start(shared("b"), *args)
    for process in (first, second):
        status, out = finish(process)
        assert status == 0, out
        assert "12 passed" in out
    stats = shared.simulator.stats()
    assert stats["requests"]["shared"] == 24
    assert 2 <= stats["max_in_flight"] <= 3  # 8 workers, 24 requests: the cap held


def test_a_killed_session_gives_its_slots_back(redis_url, shared):
    """A session killed with SIGKILL while it holds every slot: the other still finishes,
    once the dead one's leases expire (10 s without a refresh)."""
    from pytest_llm_matrix.calls.redis_coordinator import LEASE_TTL

    url, _ = redis_url
    args = ["-n", "3", "--max-concurrency", "3", f"--llm-coordinator={url}", "--llm-run-id=r2"]
    slow = shared("slow", tests=60)
    victim = start(slow, *args)
    deadline = time.monotonic() + 60
    while shared.simulator.stats()["in_flight"] < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert shared.simulator.stats()["in_flight"] == 3
    other = start(shared("other", tests=3), *args)  # running while the victim dies
    os.killpg(victim.pid, signal.SIGKILL)
    victim.communicate()  # reaped, its pipe closed
    killed_at = time.monotonic()
    status, out = finish(other)
    took = time.monotonic() - killed_at
    assert status == 0, out
    assert "3 passed" in out
    assert took < LEASE_TTL + 8  # the slots came back within the lease's life (plus start-up)


def test_a_shared_budget_stops_every_session(redis_url, shared):
    url, _ = redis_url
    args = [f"--llm-coordinator={url}", "--llm-run-id=r3", "--llm-max-cost=0.05"]
    status, out = finish(start(shared("spender", tests=10), *args))
    assert status == 1, out
    assert "--llm-max-cost $0.05 reached" in out
    status, out = finish(start(shared("late", tests=4), *args))
    assert status == 1, out
    assert "4 skipped" in out  # the budget was spent by the other session
    assert "--llm-max-cost $0.05 reached" in out

    # and two sessions at once, on a fresh budget: both stop, spending it only once
    args = [f"--llm-coordinator={url}", "--llm-run-id=r3b", "--llm-max-cost=0.05", "-n", "2"]
    before = shared.simulator.stats()["requests"]["shared"]
    both = [start(shared(name, tests=20), *args) for name in ("one", "two")]
    for process in both:
        status, out = finish(process)
        assert status == 1, out
        assert "--llm-max-cost $0.05 reached" in out
    sent = shared.simulator.stats()["requests"]["shared"] - before
    assert sent < 20  # of 40 tests; each request costs about $0.01: the budget held them


def test_a_wrong_key_in_one_session_spares_the_other_its_requests(redis_url, shared):
    url, _ = redis_url
    args = [f"--llm-coordinator={url}", "--llm-run-id=r4"]
    status, out = finish(start(shared("wrong"), *args, env={"SHARED_KEY": "sk-wrong-000000000000"}))
    assert status == 1, out
    assert "shared is unavailable: HTTP 401" in out
    status, out = finish(start(shared("right"), *args))
    assert "12 skipped" in out, out  # the model is unavailable for the whole run
    assert shared.simulator.stats()["requests"] == {}  # its key check sent no chat request
    # without the check, the first-request gate spares it all but one request
    args = [f"--llm-coordinator={url}", "--llm-run-id=r4-gate", "--llm-check-keys=off", "-n", "3"]
    wrong = {"SHARED_KEY": "sk-wrong-000000000000"}
    status, out = finish(start(shared("wrong-gate"), *args, env=wrong))
    assert status == 1, out
    status, out = finish(start(shared("right-gate"), *args))
    assert "12 skipped" in out, out
    assert shared.simulator.stats()["requests"] == {"shared": 1}


def test_redis_lost_mid_run_fails_fast_naming_the_coordinator(redis_url, shared):
    url, server = redis_url
    args = [f"--llm-coordinator={url}", "--llm-run-id=r5", "-n", "2"]
    running = start(shared("orphan", tests=40), *args, env=SHORT_OUTAGE)
    under_way(shared.simulator)
    server.kill()
    status, out = finish(running, timeout=90)
    assert status == 1, out
    assert f"the llm-matrix coordinator {url}: " in out
    assert "requests stop rather than go out without the shared caps" in out
    # the troubleshooting page's line (its Redis host; the outage wait this test shortens)
    lost = {url: "redis://redis-host:6379/0", "no answer within 2 s": "no answer within 10 s"}
    assert_shows(snippet("trouble-redis-lost"), out, lost)


def test_an_unreachable_coordinator_or_a_bad_url_is_a_usage_error(shared):
    folder = shared("nowhere")
    port = free_port()
    status, out = finish(start(folder, f"--llm-coordinator=redis://:hunter2@127.0.0.1:{port}/0"))
    assert status == 4, out
    assert f"--llm-coordinator: cannot reach redis://***@127.0.0.1:{port}/0" in out
    assert "hunter2" not in out
    status, out = finish(start(folder, "--llm-coordinator=http://127.0.0.1:1"))
    assert status == 4, out
    assert "--llm-coordinator: expected redis://[:password@]host:port/db or rediss://" in out


def test_repeated_tests_are_judged_by_each_session_on_its_own_runs(redis_url, shared):
    """Two jobs of one run (one run id) that both run a repeated test: each judges its
    own runs; a pass in one never settles the other's."""
    url, _ = redis_url
    args = [f"--llm-coordinator={url}", "--llm-run-id=r6"]
    extra = "\n@pytest.mark.llm(repeat=3)\ndef test_again(llm):\n    assert WANT == 'ok'\n"
    good, bad = shared("good", tests=1), shared("bad", tests=1)
    for folder, want in ((good, "ok"), (bad, "bad")):
        module = folder / "test_job.py"
        module.write_text(f"WANT = {want!r}\n" + module.read_text() + extra)
    status, out = finish(start(good, *args))
    assert status == 0, out
    status, out = finish(start(bad, *args))
    assert status == 1, out
    assert "1 failed" in out


def test_the_password_is_never_shown(redis_url, shared):
    url, _ = redis_url
    port = url.rsplit(":", 1)[1].split("/")[0]
    folder = shared("secret")
    for given in (
        f"redis://127.0.0.1:{port}/0?password=hunter2",
        f"redis://:hun/ter2#x@127.0.0.1:{port}/0",
    ):
        status, out = finish(start(folder, f"--llm-coordinator={given}"))
        assert status in (0, 4), out  # (a server without a password takes any)
        assert "hunter2" not in out
        assert "hun/ter2" not in out
        assert "ter2" not in out


def test_a_stalled_redis_fails_the_rest_of_the_run_quickly(redis_url, shared):
    url, server = redis_url
    args = [f"--llm-coordinator={url}", "--llm-run-id=r7", "-n", "2"]
    running = start(shared("stalled", tests=60), *args, env=SHORT_OUTAGE)
    under_way(shared.simulator)
    server.send_signal(signal.SIGSTOP)  # a partition: connections hang, nothing answers
    stalled_at = time.monotonic()
    try:
        status, out = finish(running, timeout=120)
    finally:
        server.send_signal(signal.SIGCONT)
    assert status == 1, out
    assert f"the llm-matrix coordinator {url}: " in out
    assert time.monotonic() - stalled_at < 45  # ~56 tests left: not 2 s of timeout each


def test_key_checks_and_verified_marks_are_shared_and_expire(redis_url):
    from pytest_llm_matrix.calls.redis_coordinator import RedisCoordinator

    url, _ = redis_url
    first = RedisCoordinator(url, "r-check", None, session="s1")
    second = RedisCoordinator(url, "r-check", None, session="s2")
    try:
        assert not second.checking("m")
        first.start_check("m", 30)
        assert second.checking("m")  # a worker of another job waits for it
        first.mark_verified("m")
        first.end_check("m")
        assert not second.checking("m")
        assert second.is_verified("m")
        first.start_check("n", 0.05)
        time.sleep(0.2)
        assert not second.checking("n")  # a checker that died leaves no wait behind
    finally:
        first.close()
        second.close()


def test_a_worker_crash_while_redis_is_down_is_an_errored_test(redis_url, shared):
    """The controller records a crashed run of a repeated test in the coordinator: with
    Redis gone that cannot be done, and the run is an errored test, the rest of the report
    intact (it was an INTERNALERROR that ended the session with no results)."""
    url, server = redis_url
    folder = shared("crash")
    (folder / "test_job.py").unlink()
    (folder / "test_crash.py").write_text(
        textwrap.dedent(
            """
            import os
            import signal

            import pytest

            def test_plain():
                pass

            @pytest.mark.llm(repeat=2)
            def test_crash(llm):
                assert llm.complete("first") == "ok"  # while Redis answers
                os.kill(int(os.environ["REDIS_PID"]), signal.SIGKILL)
                os._exit(3)  # the worker dies: its controller settles the run
            """
        )
    )
    args = [f"--llm-coordinator={url}", "--llm-run-id=r-crash", "-n", "1"]
    status, out = finish(start(folder, *args, env={"REDIS_PID": str(server.pid), **SHORT_OUTAGE}))
    assert "INTERNALERROR" not in out, out
    assert status == 1, out
    crashed = r"worker 'gw0' crashed while running 'test_crash.py::test_crash\[shared-run[12]of2\]'"
    not_judged = r" \(model shared\); not judged with its other runs: the llm-matrix coordinator "
    assert re.search(crashed + not_judged, out), out
    assert re.search(r"^shared +0 +0 +2 +0 ", out, re.MULTILINE), out  # the summary table
    assert out.splitlines()[-1].startswith("1 passed, 2 errors in "), out
    summary = out.partition("llm-matrix: 1 model")[2]
    lost = [line for line in summary.splitlines() if line.startswith("the llm-matrix coordinator")]
    assert len(lost) == 1, out  # said once


def test_calls_go_on_as_soon_as_a_restarted_redis_answers(redis_url, shared, tmp_path):
    """Redis restarted mid-run, down for 3 s: the calls made meanwhile wait for it, and the
    run goes on as soon as it answers (26 of 40 tests errored while every call failed at
    once for 5 s after a failure)."""
    url, server = redis_url
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    args = [f"--llm-coordinator={url}", "--llm-run-id=r-restart", "-n", "2"]
    running = start(shared("restart", tests=40), *args)
    restarted = None
    try:
        under_way(shared.simulator, requests=6)
        server.kill()
        server.wait()
        sent_before = shared.simulator.stats()["requests"]["shared"]
        time.sleep(3)
        restarted = start_redis(port, tmp_path)
        status, out = finish(running, timeout=120)
    finally:
        if running.poll() is None:
            os.killpg(running.pid, signal.SIGKILL)
            running.communicate()
        if restarted is not None:
            restarted.kill()
            restarted.wait()
    assert sent_before < 36, out  # the outage came mid-run
    assert status == 0, out
    assert out.splitlines()[-1].startswith("40 passed in "), out
    assert shared.simulator.stats()["requests"]["shared"] >= 40


#: Coordinator URLs of every shape that hold the password "hunter2" (PORT: nothing listens).
ODD_URLS = [
    "http://127.0.0.1/0?password=hunter2",  # an unknown scheme
    "HTTPS://user:hunter2@127.0.0.1/0?auth_token=hunter2",
    "redis2://:hun@ter2@127.0.0.1:PORT",  # several @
    "unix://:hunter2@/tmp/redis.sock",
    ":hunter2@127.0.0.1:PORT/0",  # no scheme
    "127.0.0.1:PORT/0?password=hunter2",
    "hunter2@127.0.0.1",
    "redis://:hun@ter2@127.0.0.1:PORT/0",
    "redis://:hun/ter2@127.0.0.1:PORT/0",  # a / not percent-encoded
    "redis://:hun?ter2@127.0.0.1:PORT/0",
    "redis://:hun#ter2@127.0.0.1:PORT/0",
    "redis://user:hunter2/0",  # its @ missing
    "redis://:hunter2",
    "redis://%3Ahunter2%40127.0.0.1:PORT/0",  # the password percent-encoded into the host
    "redis://:hunter2%40x@127.0.0.1:PORT/0",
    "redis://127.0.0.1:PORT/0?pass%77ord=hunter2",  # a percent-encoded key
    "redis://127.0.0.1:PORT/0?db=0&password=hun@ter2",
    "rediss://default:hunter2@127.0.0.1:PORT/0?ssl_cert_reqs=none",
    "redis://127.0.0.1:PORT/0?password=hun;ter2",  # redis-py splits a query on & only
    "unix:///tmp/redis.sock?password=hun;ter2",
]


@pytest.mark.parametrize("given", ODD_URLS)
def test_no_coordinator_url_shows_its_password(pytester, write_config, given):
    """Whatever the URL's scheme or shape, its usage error (or the message of a Redis that
    cannot be reached) never shows the password, nor a part of it."""
    write_config()
    pytester.makepyfile("def test_model(llm):\n    pass\n")
    url = given.replace("PORT", str(free_port()))
    result = pytester.runpytest_subprocess(f"--llm-coordinator={url}", "-p", "no:cacheprovider")
    out = result.stdout.str() + result.stderr.str()
    assert result.ret == pytest.ExitCode.USAGE_ERROR, out
    assert "--llm-coordinator: " in out, out
    for part in ("hunter2", "hunter", "ter2", "hun@", "hun/", "hun?", "hun#", "3Ahun"):
        assert part not in out, out


def test_a_coordinator_url_shows_what_is_not_secret(pytester, write_config):
    write_config()
    pytester.makepyfile("def test_model(llm):\n    pass\n")
    result = pytester.runpytest_subprocess(
        "--llm-coordinator=http://127.0.0.1:6379/0?password=hunter2&db=1", "-p", "no:cacheprovider"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: --llm-coordinator: expected redis://[:password@]host:port/db or rediss://..., "
            "got http://127.0.0.1:6379/0?password=***&db=1"
        ]
    )
    port = free_port()
    result = pytester.runpytest_subprocess(
        f"--llm-coordinator=redis://u:hunter2@127.0.0.1:{port}/0?password=hunter2&socket_timeout=1",
        "-p",
        "no:cacheprovider",
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: --llm-coordinator: cannot reach "
            f"redis://***@127.0.0.1:{port}/0?password=***&socket_timeout=1 (ConnectionError: *"
        ]
    )


def test_what_redis_holds_that_is_not_ours_fails_tests_not_the_session(redis_url, shared):
    """A budget in Redis that is no number (another tool's key, a hand edit): the tests that
    read it error naming the coordinator, and the session ends with its report."""
    import redis

    url, _ = redis_url
    redis.Redis.from_url(url).set("llm-matrix:r-spoilt:spent", "lots")
    args = [f"--llm-coordinator={url}", "--llm-run-id=r-spoilt", "--llm-max-cost=1", "-n", "2"]
    status, out = finish(start(shared("spoilt", tests=2), *args))
    assert "INTERNALERROR" not in out, out
    assert status == 1, out
    assert out.splitlines()[-1].startswith("2 errors in "), out
    assert f"the llm-matrix coordinator {url}: reading the budget failed (ValueError: " in out
    assert "During handling" not in out, out  # the message alone
    assert re.search(r"^shared +0 +0 +2 +0 ", out, re.MULTILINE), out  # the summary table


def test_a_password_protected_coordinator_is_shown_without_its_password(shared, tmp_path):
    """The header line and the errors at run time name the coordinator, never its
    password, given before the host or in the query."""
    import redis

    port = free_port()
    server = start_redis(port, tmp_path, password="hunter2")
    try:
        spoilt = redis.Redis(port=port, password="hunter2")
        folder = shared("protected", tests=1)
        for given, shown in (
            (f"redis://default:hunter2@127.0.0.1:{port}/0", f"redis://***@127.0.0.1:{port}/0"),
            (
                f"redis://127.0.0.1:{port}/0?password=hunter2",
                f"redis://127.0.0.1:{port}/0?password=***",
            ),
        ):
            run_id = f"r-protected-{len(shown)}"
            spoilt.set(f"llm-matrix:{run_id}:spent", "lots")  # an error at run time
            args = [
                f"--llm-coordinator={given}",
                f"--llm-run-id={run_id}",
                "--llm-max-cost=1",
                "-v",
            ]
            status, out = finish(start(folder, *args))
            assert status == 1, out
            assert f"shared through {shown} (run id {run_id})" in out  # the header
            assert f"the llm-matrix coordinator {shown}: reading the budget failed" in out
            assert "hunter2" not in out
    finally:
        server.kill()
        server.wait()


HIDDEN = "redis://*** (hidden: where its password ends is unclear; percent-encode @/?#)"


@pytest.mark.parametrize(
    ("given", "shown"),
    [
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("rediss://u:p@ss@h:1/2?password=x&db=3", "rediss://***@h:1/2?password=***&db=3"),
        ("redis://[::1]:6379/0?Auth-Token=x;ssl_cert_reqs=none",  # & alone splits, as redis-py
         "redis://[::1]:6379/0?Auth-Token=***"),
        ("redis://%3Ahunter2%40h:1/0#fragment", "redis://***@h:1/0"),
        (":hunter2@h:1", "***@h:1"),
        ("redis://:hun/ter2@h:1/0", HIDDEN),
        ("redis://user:hunter2", HIDDEN),
        ("redis://h:1/0?x=a%40b", HIDDEN),
        ("redis://h\x1b[2J:1", HIDDEN),
        ("redis://h:1/\x1b[2J", "redis://h:1/?[2J"),
    ],
)  # fmt: skip
def test_a_coordinator_url_as_shown(given, shown):
    from pytest_llm_matrix.config.options import shown_url

    assert shown_url(given) == shown


def test_errors_about_a_coordinator_lose_its_password():
    """What redis-py says of a URL it read otherwise than meant names the "host" it tried:
    part of a password."""
    from pytest_llm_matrix.config.options import scrubbed

    said = scrubbed("Error -2 connecting to :hunter2@h:1.", "redis://%3Ahunter2%40h:1/0")
    assert said == "Error -2 connecting to ***@h:1."
    said = scrubbed("Error -2 connecting to admin:12.", "redis://admin:12/34@h:1/0")
    assert said == "Error -2 connecting to ***:***."


@pytest.mark.parametrize(
    ("text", "expected"),
    [("2", 2.0), ("0.5", 0.5), ("0", 10.0), ("-1", 10.0), ("nan", 10.0), ("inf", 10.0),
     ("11", 10.0), ("soon", 10.0)],
)  # fmt: skip
def test_the_outage_wait_takes_only_sane_values(monkeypatch, text, expected):
    from pytest_llm_matrix.calls.redis_coordinator import outage_wait

    monkeypatch.setenv("PYTEST_LLM_MATRIX_REDIS_OUTAGE_WAIT", text)
    assert outage_wait() == expected


def outside_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    """No run id from the environment: neither LLM_MATRIX_RUN_ID nor a CI's."""
    from pytest_llm_matrix.config.options import CI_RUN_IDS

    for name in ("LLM_MATRIX_RUN_ID", "LLM_MATRIX_COORDINATOR", "GITHUB_STEP_SUMMARY"):
        monkeypatch.delenv(name, raising=False)
    for pair in CI_RUN_IDS:
        for name in filter(None, pair):
            monkeypatch.delenv(name, raising=False)


def test_the_docs_command_makes_machines_outside_ci_one_run(redis_url, shared, monkeypatch):
    """docs/beyond-one-machine.md's command, as written but for its Redis (this test's for
    redis-host), on two "machines" outside CI: its --llm-run-id makes them one run, and
    the global cap of 8 holds for their 12 workers together (-n auto: 6 each)."""
    url, _ = redis_url
    (command,) = snippet("coordinator-command").splitlines()
    assert command.count("--llm-coordinator=redis://redis-host:6379/0 ") == 1, command
    program, *args = shlex.split(command.replace("redis://redis-host:6379/0", url))
    assert program == "pytest"
    assert args[args.index("-n") + 1] == "auto", args
    (run_id,) = [a.partition("=")[2] for a in args if a.startswith("--llm-run-id=")]
    outside_ci(monkeypatch)
    workers = {"PYTEST_XDIST_AUTO_NUM_WORKERS": "6"}  # what -n auto starts (a 6-core machine)
    # (-v undoes start's -q: the header names the coordinator and the run id)
    machines = [start(shared(m, tests=24), *args, "-v", env=workers) for m in ("m1", "m2")]
    for process in machines:
        status, out = finish(process)
        assert status == 0, out
        assert "24 passed" in out, out
        assert f"shared through {url} (run id {run_id})" in out, out
    stats = shared.simulator.stats()
    assert stats["requests"]["shared"] == 48
    assert stats["max_in_flight"] <= 8, stats  # 12 workers: the cap held across machines
    import redis

    keys = {key.decode() for key in redis.Redis.from_url(url).keys("llm-matrix:*")}
    assert f"llm-matrix:{run_id}:verified" in keys, keys  # the key check's mark, for the run
    assert all(key.startswith(f"llm-matrix:{run_id}:") for key in keys), keys


SHARDS_CONFIG = """
[tool.llm-matrix.models.sim-fast]
provider = "simulator"

[tool.llm-matrix.models.sim-weak]
provider = "simulator"
{weak}

[tool.llm-matrix.simulator]
default_reply = "ok"
rules = [{{ match = "(?i)capital of france", reply = "Paris" }}]

[tool.pytest.ini_options]
asyncio_default_fixture_loop_scope = "function"
"""

SHARD_TESTS = {
    "test_a_capital.py": """
def test_capital(llm):
    assert llm.complete("The capital of France?") == "Paris"
""",
    "test_b_answers.py": """
import pytest

@pytest.mark.parametrize("n", range(3))
def test_answer(llm, n):
    assert llm.complete(f"question {n}") == "ok"
""",
}


@pytest.mark.parametrize("weak", [True, False], ids=["a-shard-fails", "all-pass"])
def test_the_docs_shards_step_runs_under_bash_e_and_exits_as_the_run(
    redis_url, tmp_path, monkeypatch, weak
):
    """The shards job of docs/beyond-one-machine.md: its `run: |` step, as written, under
    GitHub's `bash --noprofile --norc -eo pipefail`, with pytest-split, simulated models and
    the job's LLM_MATRIX_COORDINATOR (this test's Redis for localhost:6379). A failed test
    in the first shard does not end the step before the merge: it prints the whole run's
    table and exits 1, failing the step as the run failed; all passing, it exits 0. Both
    shards join the workflow run's id (GITHUB_RUN_ID and attempt)."""
    yaml = pytest.importorskip("yaml")
    pytest.importorskip("pytest_split", reason="pytest-split is not installed (dev extras)")
    from packaging.requirements import Requirement

    url, _ = redis_url
    (job,) = yaml.safe_load(snippet("shards-job")).values()
    assert job["env"] == {"LLM_MATRIX_COORDINATOR": "redis://localhost:6379/0"}, job["env"]
    (install,) = [step["run"] for step in job["steps"] if "pip install" in step.get("run", "")]
    (plugin,) = [r for r in shlex.split(install)[2:] if r.startswith("pytest-llm-matrix")]
    pinned = Requirement(plugin).url or ""  # installed from the repository at a full commit
    assert re.fullmatch(
        r"git\+https://github\.com/pytest-llm-matrix/pytest-llm-matrix@[0-9a-f]{40}", pinned
    )
    (script,) = [step["run"] for step in job["steps"] if "merge" in step.get("run", "")]

    project = tmp_path / "project"
    project.mkdir()
    rule = 'simulate = { wrong = ["(?i)capital"], wrong_reply = "Lyon" }' if weak else ""
    (project / "pyproject.toml").write_text(SHARDS_CONFIG.format(weak=rule))
    for name, text in SHARD_TESTS.items():
        (project / name).write_text(text)
    (tmp_path / "step.sh").write_text(script)
    outside_ci(monkeypatch)
    for name in ("TEST_MODELS", "PYTEST_ADDOPTS", "PYTEST_XDIST_AUTO_NUM_WORKERS"):
        monkeypatch.delenv(name, raising=False)
    bin_dir = str(Path(sys.executable).parent)  # the step's pytest and python: this one's
    if shutil.which("pytest", path=bin_dir) is None:
        pytest.skip(f"no pytest script beside {sys.executable}")
    env = {
        **os.environ,
        "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
        "LLM_MATRIX_COORDINATOR": job["env"]["LLM_MATRIX_COORDINATOR"].replace(
            "redis://localhost:6379/0", url
        ),
        "GITHUB_RUN_ID": "4242",  # as GitHub sets them for every job of the run
        "GITHUB_RUN_ATTEMPT": "1",
    }
    step = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(tmp_path / "step.sh")],
        cwd=project, env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    out = step.stdout + step.stderr
    assert out.count("(run id github_run_id-4242-1)") == 2, out  # one run: both shards
    shards = [json.loads((project / f"r{n}.json").read_text()) for n in (1, 2)]
    assert [len(shard["tests"]) for shard in shards] == [4, 4], out  # split in two
    assert "llm-matrix: merged from 2 reports: r1.json, r2.json" in out, out
    table = out.partition("llm-matrix: merged from 2 reports")[2]
    if weak:
        assert [shard["exit_status"] for shard in shards] == [1, 0], out
        assert re.search(r"^total +7 +1 +0 +0 ", table, re.MULTILINE), out
        assert step.returncode == 1, out
    else:
        assert [shard["exit_status"] for shard in shards] == [0, 0], out
        assert re.search(r"^total +8 +0 +0 +0 ", table, re.MULTILINE), out
        assert step.returncode == 0, out
