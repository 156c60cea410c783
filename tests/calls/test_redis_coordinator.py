"""Sessions on "different machines" (separate pytest processes with their own state
directories) sharing caps, cooldowns, unavailable models and the budget through a real
redis-server, started here on a free loopback port."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

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


@pytest.fixture
def redis_url(tmp_path):
    port = free_port()
    process = subprocess.Popen(
        [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"redis://127.0.0.1:{port}/0"
    import redis

    deadline = time.monotonic() + 10
    while True:
        try:
            redis.Redis.from_url(url).ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                process.kill()
                raise
            time.sleep(0.05)
    yield url, process
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
    running = start(shared("orphan", tests=40), *args)
    under_way(shared.simulator)
    server.kill()
    status, out = finish(running, timeout=90)
    assert status == 1, out
    assert f"the llm-matrix coordinator {url}: " in out
    assert "requests stop rather than go out without the shared caps" in out


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
    running = start(shared("stalled", tests=60), *args)
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
