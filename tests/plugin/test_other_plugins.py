"""Counts that other plugins cannot bend: the per-model results are read from the reports
themselves, so a plugin that answers ``pytest_report_teststatus`` its own way (pytest-sugar
gives setup and teardown reports a letter too) changes neither the table, nor the JSON
report, nor the gate's verdict."""

from __future__ import annotations

import importlib.util
import json
import re

import pytest

from ..conftest import outcome_counts, run_in_terminal

SUITE = """
import pytest

@pytest.fixture
def broken_teardown():
    yield
    raise RuntimeError("teardown")

@pytest.mark.parametrize("question", ["capital of France?", "hi", "a", "b"])
def test_answer(llm, question):
    assert llm.complete(question) in ("Paris", "ok")

def test_teardown_error(llm, broken_teardown):
    assert llm.complete("hi") == "ok"

def test_skipped(llm_model):
    pytest.skip("not today")

@pytest.mark.xfail(reason="known")
def test_xfail(llm_model):
    assert False
"""

#: Per model: passed, failed, errors, skipped, xfailed (sim-weak answers the capital wrong).
EXPECTED = {"sim-fast": (5, 0, 1, 1, 1), "sim-weak": (4, 1, 1, 1, 1)}
ROW = re.compile(r"^(sim-\w+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s", re.M)


def table_counts(output: str) -> dict[str, tuple[int, ...]]:
    return {name: tuple(map(int, counts)) for name, *counts in ROW.findall(output)}


def json_counts(path) -> dict[str, tuple[int, ...]]:
    models = json.loads(path.read_text())["models"]
    keys = ("passed", "failed", "error", "skipped", "xfailed")
    return {name: tuple(m["outcomes"][k] for k in keys) for name, m in models.items()}


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["plain", "n2"])
@pytest.mark.parametrize("sugar", [True, False], ids=["sugar", "no-sugar"])
def test_pytest_sugar_changes_no_count_and_no_verdict(pytester, write_config, workers, sugar):
    pytest.importorskip("pytest_sugar")
    write_config()
    pytester.makepyfile(SUITE)
    args = [
        "--models=sims",
        "--llm-report=report.json",
        "-p",
        "no:randomly",
        "-p",
        "no:cacheprovider",
    ]
    # sim-weak passes 4 of 6 judged results (66.7%), sim-fast 5 of 6 (83.3%): below 75%,
    # sim-weak fails the gate; counting setup and teardown reports would lift it over.
    output, status = run_in_terminal(
        [*args, "--llm-min-pass-rate=75%", *workers, *([] if sugar else ["-p", "no:sugar"])],
        pytester.path,
    )
    if sugar:
        assert "Results (" in output  # pytest-sugar's own summary: it really ran
    assert table_counts(output) == EXPECTED, output
    assert json_counts(pytester.path / "report.json") == EXPECTED
    assert "--llm-min-pass-rate 75%: below it: sim-weak 66.7%" in output
    assert status == 1


CRASHING = """
import os

def test_crash(llm):
    llm.complete("one")
    os._exit(1)

def test_fine(llm):
    assert llm.complete("hi") == "ok"
"""


def test_a_crash_under_the_model_scheduler_with_rerunfailures_installed(pytester, write_config):
    pytest.importorskip("pytest_rerunfailures")
    write_config()
    pytester.makepyfile(CRASHING)
    # rerunfailures' crash hook reads the scheduler's config, as xdist's schedulers have it
    result = pytester.runpytest_subprocess("--models=sim-fast", "-n", "2", "-p", "no:randomly")
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        ["*crashed while running*test_crash[[]sim-fast]' (model sim-fast)*"]
    )


@pytest.mark.parametrize(
    ("marker", "args"),
    [
        ("@pytest.mark.llm(repeat=3)", ["--reruns=1"]),
        ("@pytest.mark.llm(repeat=3)\n@pytest.mark.flaky(reruns=2)", []),
    ],
    ids=["--reruns", "flaky-mark"],
)
def test_repeats_and_reruns_are_one_or_the_other(pytester, write_config, marker, args):
    pytest.importorskip("pytest_rerunfailures")
    write_config()
    pytester.makepyfile(f"import pytest\n\n{marker}\ndef test_r(llm):\n    pass\n")
    result = pytester.runpytest_subprocess("--models=sim-fast", *args)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(
        ["*test_r: a repeated test (repeat=3) cannot also be rerun by pytest-rerunfailures*"]
    )


REPEATED = """
import pytest

@pytest.mark.llm(repeat=3, min_pass_rate=0.6)
def test_mostly(llm, request):
    llm.complete("hi")
    assert "run1of" not in request.node.name  # 2 of 3 pass: passed

@pytest.mark.llm(repeat=4)
def test_capital(llm):
    assert llm.complete("capital of France?") == "Paris"  # sim-weak fails it

@pytest.mark.parametrize("n", range(2))
def test_plain(llm, n):
    assert llm.complete("hi") == "ok"
"""


def html_counts(path) -> dict[str, int]:
    """pytest-html's own tally (its summary's counters) and its per-test results."""
    text = path.read_text()
    found = re.findall(r'<span class="(\w+)">(\d+) \w+', text)
    return {kind: int(n) for kind, n in found if int(n)}


def junit_counts(path) -> dict[str, int]:
    import xml.etree.ElementTree as ET

    counts: dict[str, int] = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        kinds = [c.tag for c in case if c.tag in ("failure", "error", "skipped")]
        kind = (
            {"failure": "failed", "error": "error"}.get(kinds[0], kinds[0]) if kinds else "passed"
        )
        counts[kind] = counts.get(kind, 0) + 1
    return counts


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["plain", "n2"])
def test_every_reporter_counts_repeated_tests_alike(pytester, write_config, workers):
    """Terminal, JUnit, pytest-html, pytest-sugar, the table and the JSON report: one pass
    or failure per test and model, and each other run of a repeated test as a skip."""
    pytest.importorskip("pytest_html")
    write_config()
    pytester.makepyfile(REPEATED)
    args = [
        "--models=sims", "-p", "no:randomly", "-p", "no:cacheprovider", "--llm-report=r.json",
        "--junitxml=j.xml", "--html=r.html", "--self-contained-html", *workers,
    ]  # fmt: skip
    result = pytester.runpytest_subprocess(*args, "-p", "no:sugar")
    terminal = {k: v for k, v in outcome_counts(result).items() if k != "warnings"}
    # 4 tests x 2 models; test_capital fails on sim-weak; the rest pass
    assert terminal["passed"] == 7
    assert terminal["failed"] == 1
    assert junit_counts(pytester.path / "j.xml") == terminal
    assert html_counts(pytester.path / "r.html") == terminal
    models = json.loads((pytester.path / "r.json").read_text())["models"]
    assert {k: sum(m["outcomes"][k] for m in models.values()) for k in terminal} == terminal
    rows = re.findall(r"^(sim-\w+)\s+\d+\s+\d+\s+\d+\s+(\d+)\s", result.stdout.str(), re.M)
    assert sum(int(skipped) for _, skipped in rows) == terminal["skipped"], rows
    if importlib.util.find_spec("pytest_sugar") is not None:
        sugar, _ = run_in_terminal(args, pytester.path)
        line = next(line for line in sugar.splitlines() if line.startswith("Results ("))
        tail = sugar[sugar.index(line) :]
        for kind, number in terminal.items():
            assert re.search(rf"\b{number} {kind}\b", tail), (kind, number, tail)


def test_llm_snapshot_keeps_each_models_snapshots_through_subset_runs(
    pytester, write_config, monkeypatch
):
    """syrupy with model subsets: ``llm_snapshot`` stores each model's snapshots apart, so
    a run of one model neither fails on the others' snapshots as unused nor deletes them
    with --snapshot-update; the plain ``snapshot`` fixture does both (the reason for it)."""
    pytest.importorskip("syrupy")
    for name in ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "PYTEST_XDIST_TESTRUNUID"):
        monkeypatch.delenv(name, raising=False)  # syrupy skips its unused check in workers
    write_config()
    pytester.makepyfile(
        test_snap="""
        def test_answer(llm, llm_snapshot):
            assert llm.complete("hi") == llm_snapshot
        """
    )
    base = ["-p", "no:randomly", "-p", "no:cacheprovider"]
    created = pytester.runpytest_subprocess("--models=sims", "--snapshot-update", *base)
    created.assert_outcomes(passed=2)
    folder = pytester.path / "__snapshots_by_model__"
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.ambr"))
    assert files == ["sim-fast/test_snap.ambr", "sim-weak/test_snap.ambr"]
    weak = (folder / "sim-weak" / "test_snap.ambr").read_text()
    subset = pytester.runpytest_subprocess("--models=sim-fast", *base)
    subset.assert_outcomes(passed=1)
    assert subset.ret == 0
    assert "unused" not in subset.stdout.str()
    update = pytester.runpytest_subprocess("--models=sim-fast", "--snapshot-update", *base)
    assert update.ret == 0
    assert "Deleted" not in update.stdout.str()
    assert (folder / "sim-weak" / "test_snap.ambr").read_text() == weak
    pytester.runpytest_subprocess("--models=sims", *base).assert_outcomes(passed=2)
    # every run of a repeated test compares with the test's one snapshot on its model
    repeated = pytester.runpytest_subprocess("--models=sims", "--llm-repeat=3", *base)
    assert repeated.ret == 0, repeated.stdout.str()
    assert "unused" not in repeated.stdout.str()
    # another extension (single-file JSON) is kept per model too
    json_ext = "--snapshot-default-extension=syrupy.extensions.json.JSONSnapshotExtension"
    pytester.runpytest_subprocess("--models=sims", "--snapshot-update", json_ext, *base)
    weak_json = sorted((folder / "sim-weak").rglob("*.json"))
    assert [p.name for p in weak_json] == ["test_answer[sim-weak].json"]
    update = pytester.runpytest_subprocess(
        "--models=sim-fast", "--snapshot-update", json_ext, *base
    )
    assert "Deleted" not in update.stdout.str()
    assert weak_json[0].exists()
    # the same with syrupy's own fixture: the other model's snapshot counts as unused
    pytester.makepyfile(
        test_snap="""
        def test_answer(llm, snapshot):
            assert llm.complete("hi") == snapshot
        """
    )
    pytester.runpytest_subprocess("--models=sims", "--snapshot-update", *base)
    plain = pytester.runpytest_subprocess("--models=sim-fast", *base)
    assert plain.ret == 1
    plain.stdout.fnmatch_lines(["*1 snapshot unused*"])


def test_llm_snapshot_without_syrupy_says_what_to_install(pytester, write_config):
    write_config()
    pytester.makepyfile("def test_a(llm_snapshot):\n    pass\n")
    result = pytester.runpytest_subprocess("--models=sim-fast", "-p", "no:syrupy")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*llm_snapshot compares with syrupy snapshots; install syrupy*"])


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["plain", "n2"])
def test_a_forgiven_failure_stays_forgiven_with_syrupy(pytester, write_config, workers):
    """syrupy ORs pytest's exit status back in at its session finish: the verdict (a failure
    that the pass-rate gate forgives) must already be pytest's own status by then."""
    pytest.importorskip("syrupy")
    write_config()
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.parametrize("q", ["capital of France?", "hi", "a"])
        def test_answer(llm, q):
            assert llm.complete(q) in ("Paris", "ok")
        """
    )
    args = ["--models=sims", "--llm-min-pass-rate=0.5", "-p", "no:randomly", *workers]
    with_syrupy = pytester.runpytest_subprocess(*args)
    with_syrupy.stdout.fnmatch_lines(["*plugins:*syrupy*", "*1 failed, 5 passed*"])
    assert with_syrupy.ret == 0
    assert pytester.runpytest_subprocess(*args, "-p", "no:syrupy").ret == 0


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["plain", "n2"])
def test_a_collection_error_is_never_forgiven(pytester, write_config, workers):
    """Forgiving model failures (an optional model's, or under the gate) must not forgive
    what is not a model failure: a module that does not import fails the run."""
    write_config()
    pytester.makepyfile(
        test_ok="""
        import pytest

        @pytest.mark.parametrize("q", ["capital of France?", "hi"])
        def test_answer(llm, q):
            assert llm.complete(q) in ("Paris", "ok")
        """,
        test_broken="import nonexistent_module_xyz\n",
    )
    args = ["--models=sims", "--llm-min-pass-rate=0.5", "-p", "no:randomly", *workers]
    result = pytester.runpytest_subprocess(*args)
    result.stdout.fnmatch_lines(["*ERROR*test_broken.py*"])
    assert result.ret != pytest.ExitCode.OK
    result = pytester.runpytest_subprocess(*args, "--continue-on-collection-errors")
    result.stdout.fnmatch_lines(["*1 failed, 3 passed, 1 error*"])
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    forgiven = pytester.runpytest_subprocess(*args, "--ignore=test_broken.py")
    assert forgiven.ret == pytest.ExitCode.OK  # the same failure alone is forgiven


def test_x_stopping_on_a_forgiven_failure_fails_the_run(pytester, write_config):
    """-x stopped the run: the tests after the failure never ran, so the run fails, with
    syrupy or without it."""
    write_config()
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.parametrize("q", ["capital of France?", "hi", "a"])
        def test_answer(llm, q):
            assert llm.complete(q) in ("Paris", "ok")
        """
    )
    args = ["--models=sims", "--llm-min-pass-rate=0.5", "-p", "no:randomly", "-x"]
    assert pytester.runpytest_subprocess(*args).ret == pytest.ExitCode.TESTS_FAILED
    assert pytester.runpytest_subprocess(*args, "-p", "no:syrupy").ret == 1


def test_llm_snapshot_folders_are_one_per_alias():
    """Aliases that a naive file name would merge ('org/m:1' and 'org_m_1'), or that would
    leave the folder ('..'), each get a folder of their own inside __snapshots_by_model__."""
    pytest.importorskip("syrupy")
    from pathlib import Path
    from types import SimpleNamespace

    from syrupy.extensions.amber import AmberSnapshotExtension
    from syrupy.extensions.json import JSONSnapshotExtension

    from pytest_llm_matrix.matrix.fixtures import _snapshot_extension

    where = SimpleNamespace(filepath="/p/tests/test_x.py", basename="test_x")
    aliases = ["org/m:1", "org_m_1", "..", "...", ".", "a%2Fb", "a/b", "gpt-4o-mini"]
    folders = [
        Path(_snapshot_extension(AmberSnapshotExtension, a).dirname(test_location=where))
        for a in aliases
    ]
    assert len(set(folders)) == len(aliases)
    for folder in folders:
        assert folder.parent == Path("/p/tests/__snapshots_by_model__"), folder
    assert folders[-1].name == "gpt-4o-mini"  # plain aliases read as they are
    single = _snapshot_extension(JSONSnapshotExtension, "a/b").dirname(test_location=where)
    assert single == "/p/tests/__snapshots_by_model__/a%2Fb/test_x"
