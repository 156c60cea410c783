"""The model-aware scheduler: node-id mapping, affinity, stealing, crashes, -n auto."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from pytest_llm_matrix.config.models import Model
from pytest_llm_matrix.config.options import Settings
from pytest_llm_matrix.config.registry import Registry
from pytest_llm_matrix.distribution import scheduling
from pytest_llm_matrix.distribution.scheduling import (
    ModelScheduling,
    auto_workers,
    model_from_nodeid,
)

AWKWARD = ["gpt-4o", "gpt-4o-mini", "llama-3.1:8b", "qwen.v2-7b", "a"]


@pytest.mark.parametrize(
    ("nodeid", "model"),
    [
        ("t.py::test_x[gpt-4o]", "gpt-4o"),
        ("t.py::test_x[gpt-4o-mini]", "gpt-4o-mini"),
        ("t.py::test_x[gpt-4o-mini-1-2]", "gpt-4o-mini"),
        ("t.py::test_x[gpt-4o-x]", "gpt-4o"),
        ("t.py::TestC::test_x[llama-3.1:8b-refund]", "llama-3.1:8b"),
        ("t.py::test_x[qwen.v2-7b-a-b]", "qwen.v2-7b"),
        ("t.py::test_x[a]", "a"),
        ("t.py::test_x[ab]", None),
        ("t.py::test_x", None),
        ("t.py::test_x[no-model]", None),
        ("dir/t.py::test_x[x]", None),
    ],
)
def test_model_from_nodeid(nodeid, model):
    assert model_from_nodeid(nodeid, AWKWARD) == model


def test_the_alias_leads_every_id(pytester, write_config):
    write_config(
        '[tool.llm-matrix.models."llama-3.1:8b"]\nprovider = "openai-compatible"\n'
        'base_url = "http://127.0.0.1:9/v1"\n'
    )
    pytester.makepyfile(
        """
        import pytest

        pytestmark = pytest.mark.parametrize("flavour", ["x-y"])

        @pytest.mark.parametrize("n", [1, 2])
        class TestC:
            @pytest.mark.parametrize("m", ["a"])
            def test_x(self, m, llm_model, n, flavour):
                pass
        """
    )
    result = pytester.runpytest("--collect-only", "-q")
    ids = [line for line in result.outlines if "::" in line]
    assert len(ids) == 2
    assert all(model_from_nodeid(i, AWKWARD) == "llama-3.1:8b" for i in ids), ids


@dataclasses.dataclass(eq=False)
class FakeNode:
    name: str
    sent: list[int] = dataclasses.field(default_factory=list)
    shutting_down: bool = False

    @property
    def gateway(self):
        return self

    @property
    def id(self):
        return self.name

    def send_runtest_some(self, indices):
        self.sent.extend(indices)

    def shutdown(self):
        self.shutting_down = True


def settings(caps: dict[str, int | None]) -> Settings:
    models = {
        name: Model(name=name, provider="simulator", model=name, api="openai", max_concurrency=cap)
        for name, cap in caps.items()
    }
    return Settings(registry=Registry(models=models), selected=tuple(models))


def collection(tests: dict[str, int], plain: int = 0) -> list[str]:
    ids = [f"t.py::test_{i}[{model}]" for model, count in tests.items() for i in range(count)]
    return ids + [f"t.py::test_plain_{i}" for i in range(plain)]


def run(sched: ModelScheduling, nodes: list[FakeNode], rounds: int = 1000) -> dict[str, list[str]]:
    """Complete tests in turn (each node its oldest pending) until all are done."""
    done: dict[str, list[str]] = {n.name: [] for n in nodes}
    for _ in range(rounds):
        busy = [n for n in nodes if sched.node2pending.get(n)]
        if not busy:
            break
        for node in busy:
            index = sched.node2pending[node][0]
            done[node.name].append(sched.collection[index])
            sched.mark_test_complete(node, index)
    return done


def start(caps, tests, nodes=4, plain=0, estimates=None, cooling=lambda m: False):
    sched = ModelScheduling(nodes, settings(caps), estimates or {}, cooling=cooling)
    fakes = [FakeNode(f"gw{i}") for i in range(nodes)]
    for node in fakes:
        sched.add_node(node)
        sched.add_node_collection(node, collection(tests, plain))
    sched.schedule()
    return sched, fakes


def models_by_node(sched, done):
    return {
        node: {model_from_nodeid(t, sched.aliases) for t in tests} for node, tests in done.items()
    }


def test_every_test_runs_exactly_once():
    sched, nodes = start({"a": 2, "b": 2, "c": None}, {"a": 10, "b": 7, "c": 5}, plain=4)
    done = run(sched, nodes)
    everything = [t for tests in done.values() for t in tests]
    assert sorted(everything) == sorted(sched.collection)
    assert sched.tests_finished
    assert all(n.shutting_down for n in nodes)


def test_affinity_within_the_cap():
    # 4 workers, two models capped at 2 workers each: each model stays on two workers
    sched, nodes = start({"a": 2, "b": 2}, {"a": 12, "b": 12})
    done = run(sched, nodes)
    per_node = models_by_node(sched, done)
    assert all(len(models) == 1 for models in per_node.values()), per_node
    workers = {m: [n for n, ms in per_node.items() if m in ms] for m in ("a", "b")}
    assert len(workers["a"]) == len(workers["b"]) == 2


def test_longest_model_first_and_idle_workers_steal():
    estimates = {f"t.py::test_{i}[slow]": 2.0 for i in range(20)}
    estimates.update({f"t.py::test_{i}[{m}]": 0.2 for m in ("f1", "f2", "f3") for i in range(20)})
    sched, nodes = start(
        {"slow": 2, "f1": 2, "f2": 2, "f3": 2},
        {"f1": 20, "f2": 20, "f3": 20, "slow": 20},
        nodes=8,
        estimates=estimates,
    )
    first = {n.name: model_from_nodeid(sched.collection[n.sent[0]], sched.aliases) for n in nodes}
    assert list(first.values()).count("slow") == 2  # the slow model starts at once, at its cap
    done = run(sched, nodes)
    assert sum(len(t) for t in done.values()) == 80


def test_no_worker_idles_while_tests_remain():
    # one model capped at 1 worker, 3 workers: the others take its tests all the same
    _sched, nodes = start({"a": 1}, {"a": 9}, nodes=3)
    assert all(n.sent for n in nodes)


def test_a_cooling_model_does_not_hold_workers():
    cooling = {"a"}
    sched, nodes = start(
        {"a": None, "b": None}, {"a": 6, "b": 6}, nodes=2, cooling=lambda m: m in cooling
    )
    first = [model_from_nodeid(sched.collection[i], sched.aliases) for n in nodes for i in n.sent]
    assert set(first) == {"b"}  # while "a" cools down, both workers run "b"
    cooling.clear()
    done = run(sched, nodes)
    assert sum(len(t) for t in done.values()) == 12


def test_a_crash_fails_one_test_and_reschedules_the_rest():
    sched, nodes = start({"a": None}, {"a": 8}, nodes=2)
    crashed_node = nodes[0]
    running = sched.node2pending[crashed_node][0]
    crash = sched.remove_node(crashed_node)
    assert crash == sched.collection[running]
    replacement = FakeNode("gw2")
    sched.add_node(replacement)
    sched.add_node_collection(replacement, sched.collection)
    sched.schedule()
    done = run(sched, [nodes[1], replacement])
    everything = [t for tests in done.values() for t in tests]
    # nothing lost, nothing twice: the crashed test once (as the crash), the rest once each
    assert sorted([*everything, crash]) == sorted(sched.collection)
    requeued = {sched.collection[i] for i in crashed_node.sent} - {crash}
    assert requeued
    assert requeued <= set(everything)


def test_few_tests_spread_one_per_worker():
    _sched, nodes = start({"a": None}, {"a": 3}, nodes=4)
    assert sorted(len(n.sent) for n in nodes) == [0, 1, 1, 1]
    assert all(n.shutting_down for n in nodes)


@pytest.mark.parametrize(
    ("global_cap", "caps", "tests", "expected"),
    [
        (8, [2, 2, 2, 2], None, (8, "the global cap")),
        (None, [2, 1], None, (3, "the sum of the models' caps")),
        (8, [2, 2], 3, (3, "the model tests of the last run")),
        (4, [None, 2], None, (4, "the global cap")),
    ],
)
def test_auto_workers(global_cap, caps, tests, expected):
    s = dataclasses.replace(
        settings({f"m{i}": cap for i, cap in enumerate(caps)}), max_concurrency=global_cap
    )
    chosen, why = auto_workers(s, tests)
    assert chosen == expected[0]
    assert why.startswith(expected[1])


@pytest.mark.parametrize(
    ("preloaded", "measured", "available", "expected"),
    [
        (True, None, 2**40, (64, "the ceiling for workers preloaded (64)")),
        (False, None, 2**40, (32, "the ceiling for workers started the normal way (32)")),
        (True, None, 640 * 2**20, (10, "the memory available (640 MB; 64 MB budgeted")),
        (False, None, 960 * 2**20, (10, "the memory available (960 MB; 96 MB budgeted")),
        (True, 20 * 2**20, 800 * 2**20, (20, "the memory available (800 MB; 20 MB measured")),
        (True, 20 * 2**20, 1, (1, "the memory available (0 MB")),
    ],
)
def test_auto_workers_fit_the_memory(preloaded, measured, available, expected):
    s = dataclasses.replace(settings({"a": 100}), max_concurrency=100)
    chosen, why = auto_workers(s, None, preloaded=preloaded, measured=measured, available=available)
    assert chosen == expected[0]
    assert why.startswith(expected[1])


def test_a_second_auto_run_is_sized_by_the_memory_its_workers_took(pytester, write_config):
    write_config()
    pytester.makepyfile(
        "import pytest\n\n@pytest.mark.parametrize('n', range(4))\n"
        "def test_a(llm_model, n):\n    pass\n"
    )
    first = pytester.runpytest_subprocess("-n", "2", "--models=sim-fast")
    first.assert_outcomes(passed=4)
    # what the workers imported, for the next run's preloader: the stacks, not the project
    learned = json.loads((pytester.path / ".pytest_cache/v/llm-matrix/worker-modules").read_text())
    assert "pytest_llm_matrix.calls.fixtures" in learned
    assert not [m for m in learned if m.startswith(("test_", "conftest"))]
    known = json.loads((pytester.path / ".pytest_cache/v/llm-matrix/worker-pss").read_text())
    assert 5 * 2**20 < known["preloaded"] < 200 * 2**20  # a real PSS, in bytes
    (pytester.path / ".pytest_cache/v/llm-matrix/worker-pss").write_text(
        json.dumps({"preloaded": 2**39})  # as if each worker had taken 512 GB
    )
    second = pytester.runpytest_subprocess("-n", "auto", "--models=sim-fast")
    second.stdout.fnmatch_lines(
        ["*-n auto: 1 worker, set by the memory available (* MB; 524288 MB measured last run, x2)*"]
    )
    for garbage in ['{"preloaded": "lots"}', '{"preloaded": 1e400}', "[1]", "{"]:
        (pytester.path / ".pytest_cache/v/llm-matrix/worker-pss").write_text(garbage)
        result = pytester.runpytest_subprocess("-n", "auto", "--models=sim-fast")
        result.assert_outcomes(passed=4)
    # a FIFO where the value was: read without waiting for a writer (it hung the run before)
    (pytester.path / ".pytest_cache/v/llm-matrix/worker-pss").unlink()
    os.mkfifo(pytester.path / ".pytest_cache/v/llm-matrix/worker-pss")
    result = pytester.runpytest_subprocess("-n", "auto", "--models=sim-fast", timeout=120)
    result.assert_outcomes(passed=4)


def test_auto_workers_without_caps_or_models():
    chosen, why = auto_workers(settings({"a": None}), None, cpus=3)
    uncapped = "as neither a global cap nor a cap on every model is set"
    assert (chosen, why) == (6, f"2 per CPU (3 CPUs), {uncapped}")
    assert auto_workers(Settings(), None) == (None, "no models selected: xdist's default")


@pytest.mark.parametrize(("tests", "expected"), [(40, 4), (4, 4), (3, 3), (None, 4)])
def test_remembered_tests_only_lower_the_workers_without_caps(tests, expected):
    assert auto_workers(settings({"a": None, "b": 2}), tests, cpus=2)[0] == expected


def test_a_second_auto_run_starts_no_more_workers_than_the_first(pytester, write_config):
    write_config()
    pytester.makepyfile(
        "import pytest\n\n@pytest.mark.parametrize('n', range(40))\ndef test_a(llm, n):\n    pass\n"
    )
    cpus = os.cpu_count() or 1
    chosen = []
    for _ in range(2):
        result = pytester.runpytest_subprocess("--models=sims", "-n", "auto")
        result.assert_outcomes(passed=80)
        line = next(line for line in result.outlines if "-n auto:" in line)
        chosen.append(int(line.split("-n auto: ")[1].split()[0]))
    assert chosen == [min(2 * cpus, 32)] * 2


def test_auto_workers_without_the_cache_plugin(pytester, write_config):
    write_config()
    pytester.makepyfile("def test_a(llm):\n    pass\n")
    result = pytester.runpytest_subprocess("--models=sims", "-n", "auto", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*-n auto: * workers, set by 2 per CPU*"])


def _tree(root, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_cgroup_v2_memory_and_cpu_limits_are_read_up_to_the_root(tmp_path):
    proc = tmp_path / "cgroup"
    proc.write_text("0::/jobs/ci\n")
    _tree(
        tmp_path / "fs",
        {
            "memory.max": "max\n",
            "jobs/memory.max": str(900 * 2**20),
            "jobs/memory.current": str(100 * 2**20),
            "jobs/ci/memory.max": str(2 * 2**30),
            "jobs/ci/memory.current": str(50 * 2**20),
            "jobs/cpu.max": "150000 100000\n",
            "jobs/ci/cpu.max": "max 100000\n",
        },
    )
    root = str(tmp_path / "fs")
    assert scheduling.cgroup_memory_free(root, str(proc)) == 800 * 2**20  # the parent's
    assert scheduling.cgroup_cpus(root, str(proc)) == 1.5


def test_cgroup_v1_limits_and_a_container_that_sees_its_cgroup_as_the_root(tmp_path):
    proc = tmp_path / "cgroup"
    proc.write_text("4:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc\n0::/\n")
    _tree(
        tmp_path / "fs",
        {  # the container's own cgroup mounted as the root: /docker/abc is not there
            "memory/memory.limit_in_bytes": str(600 * 2**20),
            "memory/memory.usage_in_bytes": str(200 * 2**20),
            "cpu/cpu.cfs_quota_us": "50000",
            "cpu/cpu.cfs_period_us": "100000",
        },
    )
    root = str(tmp_path / "fs")
    assert scheduling.cgroup_memory_free(root, str(proc)) == 400 * 2**20
    assert scheduling.cgroup_cpus(root, str(proc)) == 0.5
    unlimited = tmp_path / "none"
    _tree(
        unlimited, {"memory/memory.limit_in_bytes": str(2**63 - 4096), "cpu/cpu.cfs_quota_us": "-1"}
    )
    assert scheduling.cgroup_memory_free(str(unlimited), str(proc)) is None
    assert scheduling.cgroup_cpus(str(unlimited), str(proc)) is None
    assert scheduling.cgroup_memory_free(str(tmp_path / "missing"), str(tmp_path / "x")) is None


def test_usable_cpus_follow_the_affinity_mask_and_the_quota(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    proc = tmp_path / "cgroup"
    proc.write_text("0::/\n")
    _tree(tmp_path / "fs", {"cpu.max": "250000 100000\n"})
    assert scheduling.usable_cpus(str(tmp_path / "fs"), str(proc)) == (3, "the cgroup's CPU quota")
    assert scheduling.usable_cpus(str(tmp_path / "none"), str(proc)) == (4, "the affinity mask")


def test_auto_workers_take_the_users_number(pytester, write_config, monkeypatch):
    write_config()
    pytester.makepyfile("def test_a(llm):\n    pass\n")
    monkeypatch.setenv("PYTEST_XDIST_AUTO_NUM_WORKERS", "1")
    result = pytester.runpytest_subprocess("--models=sims", "-n", "auto")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        ["*-n auto: 1 worker, set by PYTEST_XDIST_AUTO_NUM_WORKERS*", "*1 worker [[]2 items[]]*"]
    )
    monkeypatch.setenv("PYTEST_XDIST_AUTO_NUM_WORKERS", "99999999999")
    huge = pytester.runpytest_subprocess("--models=sims", "-n", "auto")
    assert huge.ret == pytest.ExitCode.USAGE_ERROR
    huge.stderr.fnmatch_lines(["ERROR: PYTEST_XDIST_AUTO_NUM_WORKERS=99999999999: at most 1024 *"])


def test_auto_workers_count_the_cpus_taskset_leaves(pytester, write_config, monkeypatch):
    if shutil.which("taskset") is None or not hasattr(os, "sched_getaffinity"):
        pytest.skip("taskset (util-linux) is not on this machine")
    monkeypatch.delenv("PYTEST_XDIST_AUTO_NUM_WORKERS", raising=False)
    write_config()
    pytester.makepyfile("def test_a(llm):\n    pass\n")
    result = pytester.run(
        "taskset", "-c", "0", sys.executable, "-m", "pytest", "--models=sims", "-n", "auto",
        "-p", "no:cacheprovider",
    )  # fmt: skip
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        ["*-n auto: 2 workers, set by 2 per CPU (1 CPUs, the affinity mask), as neither*"]
    )


def test_auto_workers_fit_a_cgroup_memory_limit(pytester, write_config, monkeypatch):
    """A v1 memory cgroup of 600 MB: -n auto sizes the workers by it, not by the machine's
    free memory."""
    folder = Path(f"/sys/fs/cgroup/memory/llm-matrix-test-{os.getpid()}")
    try:
        folder.mkdir()
    except OSError as error:
        pytest.skip(f"cannot make a cgroup v1 memory cgroup here ({error.strerror})")
    try:
        try:
            (folder / "memory.limit_in_bytes").write_text(str(600 * 2**20))
        except OSError as error:
            pytest.skip(f"cannot limit a memory cgroup here ({error.strerror})")
        monkeypatch.delenv("PYTEST_XDIST_AUTO_NUM_WORKERS", raising=False)
        write_config(
            "[tool.llm-matrix]\nmax_concurrency = 64\n"
            '[tool.llm-matrix.models.sim-a]\nprovider = "simulator"\n'
        )
        pytester.makepyfile("def test_a(llm):\n    pass\n")
        script = (
            f"echo $$ > {folder}/cgroup.procs && exec {sys.executable} -m pytest "
            "--models=sim-a -n auto -p no:cacheprovider --collect-only"
        )
        result = pytester.run("sh", "-c", script)
        result.stdout.fnmatch_lines(
            ["*-n auto: * workers, set by the memory available to this cgroup (* MB;*"]
        )
        line = next(line for line in result.outlines if "-n auto:" in line)
        assert int(line.split("-n auto: ")[1].split()[0]) <= 600 // 64
    finally:
        with contextlib.suppress(OSError):
            folder.rmdir()
