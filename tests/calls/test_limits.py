"""Tests for the cross-process coordinator: caps across threads and real processes, crash
safety under SIGKILL, fairness, and the small shared state (cooldowns, rpm, model state)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import types

import pytest

from pytest_llm_matrix.calls import limits
from pytest_llm_matrix.calls.limits import Coordinator, FileCoordinator

MODEL = "org/model:1.5-mini"  # every character a file name must not contain as is


@pytest.fixture
def make(tmp_path):
    """Build coordinators on one shared directory; all are closed at teardown."""
    made: list[FileCoordinator] = []

    def _make(global_cap: int | None = None, **options) -> Coordinator:
        coordinator = FileCoordinator(tmp_path, global_cap, **options)
        made.append(coordinator)
        return coordinator

    yield _make
    for coordinator in made:
        coordinator.close()


def child(tmp_path, body: str, *args: str) -> subprocess.Popen[str]:
    """Run ``body`` in a separate Python process; ``sys.argv[1]`` is ``tmp_path``."""
    code = "from pytest_llm_matrix.calls.limits import FileCoordinator\n" + textwrap.dedent(body)
    return subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path), *args], stdout=subprocess.PIPE, text=True
    )


class Gauge:
    """Counts leases held at once, with the highest count seen."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.now = self.peak = 0

    def __enter__(self) -> None:
        with self._lock:
            self.now += 1
            self.peak = max(self.peak, self.now)

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self.now -= 1


def hammer(acquire, seconds: float, hold: float = 0.001, poll: float = 0.0005, during=None):
    """Acquire, hold and release in a tight loop (poll on failure); count acquisitions."""
    deadline = time.monotonic() + seconds
    count = 0
    while time.monotonic() < deadline:
        lease = acquire()
        if lease is None:
            time.sleep(poll)
            continue
        count += 1
        with during or contextlib.nullcontext():
            time.sleep(hold)
        lease.release()
    return count


def in_threads(n: int, target) -> list:
    results: list = [None] * n

    def run(i: int) -> None:
        results[i] = target()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def max_overlap(intervals) -> int:
    """Most intervals open at one instant (an end sorts before a start at the same time)."""
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    level = peak = 0
    for _, step in events:
        level += step
        peak = max(peak, level)
    return peak


# -- slots ---------------------------------------------------------------------------------


def test_global_cap_holds_across_threads(make):
    coordinator = make(global_cap=3)
    gauge = Gauge()
    counts = in_threads(
        8, lambda: hammer(lambda: coordinator.try_acquire(MODEL, None), 0.4, during=gauge)
    )
    assert gauge.peak == 3
    assert all(counts)


def test_model_cap_and_global_cap_together(make):
    coordinator = make(global_cap=3)
    first = coordinator.try_acquire(MODEL, 1)
    assert first is not None
    assert coordinator.try_acquire(MODEL, 1) is None  # the model is at its cap ...
    others = [coordinator.try_acquire("other", None) for _ in range(2)]
    assert None not in others  # ... and that refusal kept no global slot
    assert coordinator.try_acquire("other", None) is None  # global cap reached
    first.release()
    time.sleep(limits.HANDOFF)  # both slots were contended: they are handed off first
    assert coordinator.try_acquire(MODEL, 1) is not None


def test_a_model_refused_by_the_global_cap_gives_its_model_slot_back(make):
    coordinator = make(global_cap=2)
    held = [coordinator.try_acquire("other", None) for _ in range(2)]
    assert None not in held
    assert coordinator.try_acquire(MODEL, 2) is None
    no_global_cap = make(global_cap=None)
    assert None not in [no_global_cap.try_acquire(MODEL, 2) for _ in range(2)]


def test_model_names_that_sanitize_alike_have_separate_caps(make):
    coordinator = make()
    assert coordinator.try_acquire("a/b", 1) is not None
    assert coordinator.try_acquire("a:b", 1) is not None
    assert coordinator.try_acquire("a/b", 1) is None


def test_caps_hold_across_processes(tmp_path):
    """Four processes, global cap 2, model cap 1 for half of them: intervals recorded inside
    each hold never overlap more than the caps allow."""
    start = time.time() + 0.5  # all children loop during the same second
    body = f"""
        import json, sys, time
        from pathlib import Path
        c = FileCoordinator(Path(sys.argv[1]), 2)
        model, cap = sys.argv[2], (1 if sys.argv[2] == "capped" else None)
        time.sleep(max(0.0, {start} - time.time()))
        held = []
        while time.time() < {start} + 0.8:
            lease = c.try_acquire(model, cap)
            if lease is None:
                time.sleep(0.0005)
                continue
            begin = time.time()
            time.sleep(0.002)
            held.append((begin, time.time()))
            lease.release()
        print(json.dumps(held))
    """
    models = ["capped", "capped", "free", "free"]
    procs = [child(tmp_path, body, model) for model in models]
    held = {m: [] for m in models}
    for model, proc in zip(models, procs, strict=True):
        out, _ = proc.communicate(timeout=15)
        assert proc.returncode == 0
        held[model] += json.loads(out)
    assert all(held.values())
    assert max_overlap(held["capped"]) == 1
    assert max_overlap(held["capped"] + held["free"]) == 2


def test_slots_and_probe_of_a_sigkilled_process_are_free_again(tmp_path, make):
    proc = child(
        tmp_path,
        f"""
        import sys, time
        from pathlib import Path
        c = FileCoordinator(Path(sys.argv[1]), 3)
        held = [c.try_acquire({MODEL!r}, 3) for _ in range(3)]
        probe = c.try_probe({MODEL!r})
        print(None not in held and probe is not None, flush=True)
        time.sleep(60)
        """,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "True"
        coordinator = make(global_cap=3)
        assert coordinator.try_acquire("other", None) is None
        assert coordinator.try_probe(MODEL) is None
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    assert None not in [coordinator.try_acquire(MODEL, 3) for _ in range(3)]
    assert coordinator.try_probe(MODEL) is not None


def test_a_forked_child_does_not_share_the_parents_slots(tmp_path):
    """Inherited descriptors share the parent's locks; the child must open its own."""
    proc = child(
        tmp_path,
        """
        import os, sys
        from pathlib import Path
        c = FileCoordinator(Path(sys.argv[1]), 1)
        lease = c.try_acquire("m", None)
        pid = os.fork()
        if pid == 0:
            os._exit(0 if c.try_acquire("m", None) is None else 1)
        print(lease is not None and os.waitpid(pid, 0)[1] == 0)
        """,
    )
    out, _ = proc.communicate(timeout=10)
    assert out.strip() == "True"


def test_release_is_idempotent_and_works_from_another_thread(make):
    coordinator = make(global_cap=1)
    lease = coordinator.try_acquire(MODEL, 1)
    assert lease is not None
    in_threads(4, lease.release)
    lease.release()
    assert coordinator.try_acquire(MODEL, 1) is not None
    assert coordinator.try_acquire(MODEL, 1) is None  # double release freed nothing extra


def test_no_caps_always_grants(make):
    coordinator = make()
    assert None not in [coordinator.try_acquire(MODEL, None) for _ in range(100)]


def test_close_releases_the_slots_of_this_process(make):
    coordinator = make(global_cap=1)
    lease = coordinator.try_acquire(MODEL, None)
    assert lease is not None
    coordinator.close()
    assert make(global_cap=1).try_acquire(MODEL, None) is not None
    lease.release()  # harmless after close


@pytest.mark.parametrize("cap", [10, 10_000, 2**63])
def test_a_cap_costs_what_the_concurrency_reached_costs(tmp_path, make, cap):
    """Slots are tried first fit and made on first use: holding 3 leases under any cap makes
    3 slot files per scope and keeps 3 descriptors per scope open, never one per unit of cap."""
    coordinator = make(global_cap=cap)
    for _ in range(50):  # acquired and released over and over, as a long run does
        leases = [coordinator.try_acquire(MODEL, cap) for _ in range(3)]
        assert None not in leases
        for lease in leases:
            lease.release()
    slots = sorted(path.name for path in tmp_path.glob("*.lock"))
    assert [name for name in slots if name.startswith("global-")] == [
        "global-0.lock",
        "global-1.lock",
        "global-2.lock",
    ]
    assert len([name for name in slots if name.startswith("model-")]) == 3
    open_slots = [
        fd for fd in open_files() if fd.startswith(str(tmp_path)) and fd.endswith(".lock")
    ]
    assert len(open_slots) == 6


def open_files() -> list[str]:
    """What this process's descriptors point at (the one listing /proc/self/fd is gone)."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(FileNotFoundError):
            found.append(os.readlink(f"/proc/self/fd/{fd}"))
    return found


@pytest.mark.parametrize("cap", [0, -1])
def test_caps_below_one_are_errors(tmp_path, make, cap):
    with pytest.raises(ValueError, match="global_cap"):
        FileCoordinator(tmp_path, cap)
    with pytest.raises(ValueError, match="model_cap"):
        make().try_acquire(MODEL, cap)


# -- fairness ------------------------------------------------------------------------------


def test_a_releaser_cannot_take_a_contended_slot_straight_back(make):
    holder, waiter = make(global_cap=1), make(global_cap=1)
    lease = holder.try_acquire(MODEL, None)
    assert lease is not None
    assert waiter.try_acquire(MODEL, None) is None  # someone is turned away
    lease.release()
    assert holder.try_acquire(MODEL, None) is None  # the immediate retry is refused
    time.sleep(limits.HANDOFF)
    assert waiter.try_acquire(MODEL, None) is not None  # the waiter's next poll gets it


def test_an_uncontended_slot_can_be_taken_straight_back(make):
    coordinator = make(global_cap=1)
    for _ in range(10):
        lease = coordinator.try_acquire(MODEL, None)
        assert lease is not None
        lease.release()


def test_four_threads_on_one_slot_each_get_a_fair_share(make):
    coordinator = make(global_cap=1)
    counts = in_threads(4, lambda: hammer(lambda: coordinator.try_acquire(MODEL, None), 1.0))
    assert min(counts) >= 0.1 * sum(counts), counts


# -- shared state --------------------------------------------------------------------------


def test_cooldown_keeps_the_latest_deadline(make):
    first, second = make(), make()
    assert first.cooldown_until(MODEL) == 0.0
    now = time.time()
    first.start_cooldown(MODEL, now + 10)
    second.start_cooldown(MODEL, now + 5)
    assert first.cooldown_until(MODEL) == second.cooldown_until(MODEL) == now + 10
    second.start_cooldown(MODEL, now + 20)
    assert first.cooldown_until(MODEL) == now + 20
    assert first.cooldown_until("other") == 0.0


def test_cooldown_max_holds_under_concurrent_writers(make):
    coordinator = make()
    base = time.time()
    in_threads(8, lambda: [coordinator.start_cooldown(MODEL, base + i) for i in range(30)])
    assert coordinator.cooldown_until(MODEL) == base + 29


def test_rpm_window(make, monkeypatch):
    clock = types.SimpleNamespace(time=lambda: 1000.0)
    monkeypatch.setattr(limits, "time", clock)
    first, second = make(), make()
    assert first.rpm_wait(MODEL, 2) == 0.0
    clock.time = lambda: 1010.0
    assert second.rpm_wait(MODEL, 2) == 0.0
    clock.time = lambda: 1015.0
    assert first.rpm_wait(MODEL, 2) == pytest.approx(45.0)  # 60 s after the first one
    assert second.rpm_wait(MODEL, 2) == pytest.approx(45.0)  # a wait reserves nothing
    assert first.rpm_wait("other", 2) == 0.0
    clock.time = lambda: 1060.5
    assert first.rpm_wait(MODEL, 2) == 0.0  # the first one has left the window
    assert first.rpm_wait(MODEL, 2) == pytest.approx(9.5)


def test_rpm_wait_in_real_time(make):
    coordinator = make()
    assert [coordinator.rpm_wait(MODEL, 2) for _ in range(2)] == [0.0, 0.0]
    assert 59.0 < coordinator.rpm_wait(MODEL, 2) <= 60.0


def test_rpm_reservations_are_exact_under_threads(make):
    coordinator = make()
    granted = in_threads(8, lambda: [coordinator.rpm_wait(MODEL, 20) for _ in range(10)])
    assert sum(wait == 0.0 for waits in granted for wait in waits) == 20


def test_unavailable_first_reason_wins_and_is_shared(make):
    first, second = make(), make()
    assert first.unavailable(MODEL) is None
    assert first.all_unavailable() == {}
    first.mark_unavailable(MODEL, "401 invalid api key")
    second.mark_unavailable(MODEL, "later reason")
    second.mark_unavailable("b:2", "quota exhausted")
    assert second.unavailable(MODEL) == "401 invalid api key"
    assert first.all_unavailable() == {
        MODEL: "401 invalid api key",
        "b:2": "quota exhausted",
    }
    assert first.unavailable("b:2") == "quota exhausted"


def test_verified_is_shared(make):
    first, second = make(), make()
    assert not first.is_verified(MODEL)
    second.mark_verified(MODEL)
    assert first.is_verified(MODEL)
    assert not first.is_verified("other")


def test_probe_is_exclusive_across_coordinators_and_threads(make):
    first, second = make(), make()
    probe = first.try_probe(MODEL)
    assert probe is not None
    assert second.try_probe(MODEL) is None
    assert in_threads(4, lambda: first.try_probe(MODEL)) == [None] * 4
    assert second.try_probe("other") is not None
    probe.release()
    time.sleep(limits.HANDOFF)  # others were turned away: the probe is handed off
    assert second.try_probe(MODEL) is not None


# -- cost ----------------------------------------------------------------------------------


def test_uncontended_acquire_release_cost(make, capsys):
    coordinator = make(global_cap=8)
    for cap in (None, 4):
        for _ in range(500):
            coordinator.try_acquire(MODEL, cap).release()
        rounds = 5000
        began = time.perf_counter()
        for _ in range(rounds):
            coordinator.try_acquire(MODEL, cap).release()
        micros = (time.perf_counter() - began) / rounds * 1e6
        with capsys.disabled():
            scopes = "global" if cap is None else "global + model"
            print(f"\n  try_acquire + release ({scopes} cap): {micros:.1f} µs")


def test_a_damaged_state_file_does_not_take_the_report_down(pytester, write_config):
    """The controller never dies of its coordinator: a state file that is not what the
    plugin wrote is said in a line, and the summary and outcomes stand."""
    write_config()
    pytester.makepyfile(
        """
        import os
        from pytest_llm_matrix.calls import context

        def test_damage(llm):
            assert llm.complete("hi")
            folder = context.limits().coordinator._dir
            with open(os.path.join(folder, "model-zz.unavailable"), "w") as fh:
                fh.write("[1]")
        """
    )
    result = pytester.runpytest_subprocess("--models=sim-fast", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*the coordinator's state could not be read (TypeError*"])
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
