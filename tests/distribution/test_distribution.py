"""Distribution over real xdist workers: affinity, stealing, crashes, -n auto, ordering."""

from __future__ import annotations

import collections
import json

import pytest

from ..conftest import SPEND_RECORDER

# Each test appends {"test", "worker"} to ran.jsonl when it starts: what really ran, where.
RECORDING = """
import json, os
import pytest

@pytest.fixture(autouse=True)
def _record(request):
    with open("ran.jsonl", "a") as fh:
        fh.write(json.dumps({"test": request.node.nodeid.split("::")[-1],
                             "worker": os.environ.get("PYTEST_XDIST_WORKER", "main")}) + "\\n")
"""


@pytest.fixture(autouse=True, params=["auto", "off"], ids=["preloaded", "not-preloaded"])
def preload(request, monkeypatch):
    """Every distribution test runs with workers forked from the preloader and without."""
    monkeypatch.setenv("PYTEST_ADDOPTS", f"--llm-preload={request.param}")
    return request.param


def ran(pytester) -> list[dict]:
    path = pytester.path / "ran.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def two_models(pytester, write_config, simulator, a_cap=1, b_cap=1, latency=0.2, extra=""):
    sim = simulator(
        {"default_reply": "ok", "models": {"a": {"latency": latency}, "b": {"latency": latency}}}
    )
    write_config(
        f"""
        [tool.llm-matrix]
        {extra}
        [tool.llm-matrix.models.a]
        provider = "simulator"
        base_url = "{sim.url}/v1"
        max_concurrency = {a_cap}
        [tool.llm-matrix.models.b]
        provider = "simulator"
        base_url = "{sim.url}/v1"
        max_concurrency = {b_cap}
        """
    )
    pytester.makeconftest(SPEND_RECORDER + RECORDING)
    return sim


def test_affinity_holds_and_idle_workers_steal(pytester, write_config, simulator):
    two_models(pytester, write_config, simulator)
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.parametrize("n", range(12))
        def test_a(llm, n):
            assert llm.complete("hi") == "ok"

        @pytest.mark.llm(models=["b"])
        @pytest.mark.parametrize("n", range(2))
        def test_b(llm, n):
            assert llm.complete("hi") == "ok"
        """
    )
    result = pytester.runpytest_subprocess("-n", "2", "--models=all", "-v")
    result.assert_outcomes(passed=26)  # test_a on both models, test_b on b
    result.stdout.fnmatch_lines(["llm-matrix: model-aware scheduling (--llm-dist=model)"])
    by_model = collections.defaultdict(collections.Counter)
    for row in ran(pytester):
        by_model[row["test"].split("[")[1].split("-")[0]][row["worker"]] += 1
    # b (14 tests) and a (12 tests) each start on their own worker (cap 1) ...
    assert all(len(workers) >= 1 for workers in by_model.values())
    home_a = by_model["a"].most_common(1)[0][0]
    home_b = by_model["b"].most_common(1)[0][0]
    assert home_a != home_b
    # ... and whichever finishes first steals from the other instead of idling
    assert len(by_model["a"]) == 2 or len(by_model["b"]) == 2, by_model


def test_sequential_runs_read_model_by_model(pytester, write_config, simulator):
    two_models(pytester, write_config, simulator, latency=0)
    pytester.makepyfile(
        """
        def test_one(llm_model):
            pass

        def test_two(llm_model):
            pass

        def test_plain():
            pass
        """
    )
    result = pytester.runpytest("--models=all", "-v", "-p", "no:randomly")
    order = [line.split("::")[1].split(" ")[0] for line in result.outlines if " PASSED" in line]
    assert order == ["test_plain", "test_one[a]", "test_two[a]", "test_one[b]", "test_two[b]"]


def test_a_killed_worker_fails_one_test_and_loses_none(pytester, write_config, simulator):
    two_models(pytester, write_config, simulator, a_cap=2, b_cap=2, latency=0.05)
    pytester.makepyfile(
        """
        import os
        import pytest

        @pytest.mark.parametrize("n", range(8))
        def test_request(llm, llm_model, n):
            if llm_model.name == "a" and n == 3:
                os._exit(1)  # the worker dies mid-test
            assert llm.complete("hi") == "ok"
        """
    )
    result = pytester.runpytest_subprocess("-n", "3", "--models=all", "-p", "no:randomly")
    result.assert_outcomes(passed=15, failed=1)
    result.stdout.fnmatch_lines(
        ["*worker 'gw*' crashed while running 'test_*.py::test_request?a-3?' (model a)*"]
    )
    started = collections.Counter(row["test"] for row in ran(pytester))
    assert len(started) == 16
    assert set(started.values()) == {1}  # no test ran twice, none was lost


def test_pytest_timeout_thread_method_kills_a_worker_cleanly(pytester, write_config, simulator):
    two_models(pytester, write_config, simulator, latency=0.05)
    pytester.makepyfile(
        """
        import time
        import pytest

        @pytest.mark.parametrize("n", range(4))
        def test_request(llm, llm_model, n):
            if llm_model.name == "b" and n == 0:
                time.sleep(30)
            assert llm.complete("hi") == "ok"
        """
    )
    result = pytester.runpytest_subprocess(
        "-n", "2", "--models=all", "--timeout=2", "--timeout-method=thread"
    )
    result.assert_outcomes(passed=7, failed=1)
    result.stdout.fnmatch_lines(["*crashed while running*test_request[[]b-0]' (model b)*"])
    assert set(collections.Counter(r["test"] for r in ran(pytester)).values()) == {1}


def test_max_worker_restart_is_respected(pytester, write_config, simulator):
    two_models(pytester, write_config, simulator, latency=0)
    pytester.makepyfile(
        """
        import os
        import pytest

        @pytest.mark.parametrize("n", range(6))
        def test_request(llm_model, n):
            if n == 0:
                os._exit(1)
        """
    )
    result = pytester.runpytest_subprocess(
        "-n", "2", "--models=all", "--max-worker-restart=0", "-p", "no:randomly"
    )
    result.stdout.fnmatch_lines(["*crashed and worker restarting disabled*"])
    assert result.ret != 0


def test_n_auto_is_sized_from_the_caps(pytester, write_config, simulator):
    two_models(pytester, write_config, simulator, a_cap=2, b_cap=3, latency=0)
    pytester.makepyfile("def test_m(llm_model):\n    pass\n")
    result = pytester.runpytest_subprocess("-n", "auto", "--models=all")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        ["*-n auto: 5 workers, set by the sum of the models' caps", "created: 5/5 workers"]
    )
    with_global = pytester.runpytest_subprocess("-n", "auto", "--models=all", "--max-concurrency=3")
    with_global.stdout.fnmatch_lines(
        ["*-n auto: 2 workers, set by the model tests of the last run"]
    )
    # the ini key caps the same way; the command line wins over it
    from_ini = pytester.runpytest_subprocess(
        "-n", "auto", "--models=all", "-o", "llm_max_concurrency=1", "-p", "no:cacheprovider"
    )
    from_ini.stdout.fnmatch_lines(["*-n auto: 1 worker, set by the global cap*"])
    both = pytester.runpytest_subprocess(
        "-n",
        "auto",
        "--models=all",
        "-o",
        "llm_max_concurrency=1",
        "--max-concurrency=4",
        "-p",
        "no:cacheprovider",
    )
    both.stdout.fnmatch_lines(["*-n auto: 4 workers, set by the global cap*"])


def test_n_auto_without_models_is_xdists(pytester, write_config):
    write_config("")
    pytester.makepyfile("def test_plain():\n    pass\n")
    result = pytester.runpytest_subprocess("-n", "auto")
    result.assert_outcomes(passed=1)
    assert "-n auto:" not in result.stdout.str()


def test_an_explicit_dist_is_respected(pytester, write_config, simulator):
    two_models(pytester, write_config, simulator, latency=0)
    pytester.makepyfile("def test_m(llm_model):\n    pass\n")
    result = pytester.runpytest_subprocess("-n", "2", "--dist", "loadfile", "--models=all", "-v")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [
            "llm-matrix: xdist's --dist=loadfile (given explicitly)",
            "scheduling tests via LoadFileScheduling",
        ]
    )
    load = pytester.runpytest_subprocess("-n", "2", "--llm-dist=load", "--models=all", "-v")
    load.stdout.fnmatch_lines(
        [
            "llm-matrix: xdist's load scheduling (--llm-dist=load)",
            "scheduling tests via LoadScheduling",
        ]
    )


@pytest.mark.parametrize("workers", [[], ["-n", "2"]])
def test_runs_without_the_cache_plugin(pytester, write_config, simulator, workers):
    two_models(pytester, write_config, simulator, latency=0)
    pytester.makepyfile("def test_m(llm):\n    llm.complete('hi')\n")
    result = pytester.runpytest_subprocess("--models=all", "-p", "no:cacheprovider", *workers)
    result.assert_outcomes(passed=2)


def test_durations_are_remembered(pytester, write_config, simulator):
    two_models(pytester, write_config, simulator, latency=0.1)
    pytester.makepyfile("def test_m(llm):\n    llm.complete('hi')\n")
    pytester.runpytest_subprocess("--models=all").assert_outcomes(passed=2)
    cache = pytester.path / ".pytest_cache" / "v" / "llm-matrix"
    durations = json.loads((cache / "durations").read_text())
    assert set(durations) == {
        "test_durations_are_remembered.py::test_m[a]",
        "test_durations_are_remembered.py::test_m[b]",
    }
    assert all(d >= 0.1 for d in durations.values())
    assert json.loads((cache / "model-tests").read_text()) == 2


@pytest.mark.parametrize("dist", [[], ["-n", "2"]])
def test_randomly_keeps_its_own_order(pytester, write_config, simulator, dist):
    """With a reordering plugin active, the sequential run does not regroup."""
    two_models(pytester, write_config, simulator, latency=0)
    pytester.makeconftest(
        RECORDING + "\ndef pytest_configure(config):\n"
        "    config.pluginmanager.register(object(), 'randomly')  # stands in for it\n"
    )
    pytester.makepyfile(
        "def test_one(llm_model):\n    pass\n\ndef test_two(llm_model):\n    pass\n"
    )
    result = pytester.runpytest("--models=all", "-v", *dist)
    if not dist:
        order = [line.split("::")[1].split(" ")[0] for line in result.outlines if " PASSED" in line]
        assert order == ["test_one[a]", "test_one[b]", "test_two[a]", "test_two[b]"]
    result.assert_outcomes(passed=4)
