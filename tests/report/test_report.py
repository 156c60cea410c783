"""The per-model report: table, JSON (against its schema), JUnit, GitHub summary, gates."""

from __future__ import annotations

import fnmatch
import itertools
import json

import jsonschema
import pytest

from pytest_llm_matrix.config import checks
from pytest_llm_matrix.config.models import base_id
from pytest_llm_matrix.config.options import Settings
from pytest_llm_matrix.config.registry import parse_registry
from pytest_llm_matrix.report import render
from pytest_llm_matrix.report.cost import format_usd
from pytest_llm_matrix.report.stats import ModelStats, failure_split
from pytest_llm_matrix.session import unbound_budget

from ..conftest import outcome_counts, schema

SUITE = """
import pytest

@pytest.mark.parametrize("q", ["capital", "hello"])
def test_answer(llm, q):
    reply = llm.complete(f"{q} of France?")
    assert reply in ("Paris", "ok")

def test_always_broken(llm):
    assert llm.complete("hello") == "never"

def test_skipped(llm_model):
    pytest.skip("not today")

@pytest.mark.xfail(reason="known")
def test_xfail(llm_model):
    assert False

def test_no_model():
    pass
"""


@pytest.mark.parametrize("workers", [["-n", "0"], ["-n", "3"]], ids=["n0", "n3"])
def test_json_counts_equal_pytests_and_validate(pytester, write_config, workers):
    write_config()
    pytester.makepyfile(SUITE)
    result = pytester.runpytest_subprocess(
        "--models=all", "--llm-report=out/report.json", "-p", "no:randomly", *workers
    )
    report = json.loads((pytester.path / "out" / "report.json").read_text())
    jsonschema.validate(report, schema())
    counts = outcome_counts(result)
    totals = {
        k: sum(m["outcomes"][k] for m in report["models"].values())
        for k in ("passed", "failed", "skipped", "xfailed")
    }
    assert totals["passed"] + 1 == counts["passed"]  # + the test without a model
    assert totals["failed"] == counts["failed"]
    assert totals["xfailed"] == counts["xfailed"]
    assert report["models"]["sim-weak"]["outcomes"]["failed"] == 2  # Lyon, and "never"
    assert report["failed_everywhere"] == [
        "test_json_counts_equal_pytests_and_validate.py::test_always_broken"
    ]
    assert report["failed_on_some"] == {
        "test_json_counts_equal_pytests_and_validate.py::test_answer[capital]": ["sim-weak"]
    }
    assert report["exit_status"] == result.ret == 1
    gpt = report["models"]["gpt-4o.mini-2"]  # its key is not set: skipped, and said why
    assert gpt["requests"] == 0
    assert gpt["outcomes"]["skipped"] == 5
    assert gpt["unavailable"] == "LLM_MATRIX_TEST_UNSET_KEY is not set"


def test_json_has_no_secrets(pytester, write_config, monkeypatch):
    monkeypatch.setenv("SIM_SECRET_KEY", "sk-secret-never-written")
    write_config(
        '[tool.llm-matrix.models.locked]\nprovider = "simulator"\n'
        'api_key_env = "SIM_SECRET_KEY"\nsimulate = { api_key = "sk-secret-never-written" }\n'
    )
    pytester.makepyfile("def test_a(llm):\n    assert llm.complete('hi')\n")
    result = pytester.runpytest_subprocess("--llm-report=r.json", "--junitxml=j.xml")
    result.assert_outcomes(passed=1)
    for name in ("r.json", "j.xml"):
        assert "sk-secret-never-written" not in (pytester.path / name).read_text()
    assert "sk-secret-never-written" not in result.stdout.str()


def test_n0_and_n3_give_the_same_numbers(pytester, write_config):
    write_config()
    pytester.makepyfile(SUITE)
    numbers = []
    for workers in (["-n", "0"], ["-n", "3"]):
        pytester.runpytest_subprocess("--models=sims", "--llm-report=r.json", *workers)
        report = json.loads((pytester.path / "r.json").read_text())
        numbers.append(
            {
                name: {
                    k: m[k]
                    for k in (
                        "outcomes",
                        "pass_rate",
                        "requests",
                        "retries",
                        "input_tokens",
                        "output_tokens",
                        "cost_usd",
                    )
                }
                for name, m in report["models"].items()
            }
        )
    assert numbers[0] == numbers[1]


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["plain", "n2"])
def test_junit_properties(pytester, write_config, workers):
    write_config()
    pytester.makepyfile("def test_a(llm):\n    assert llm.complete('hi') == 'ok'\n")
    pytester.runpytest_subprocess("--models=sim-fast", "--junitxml=junit.xml", *workers)
    xml = (pytester.path / "junit.xml").read_text()
    for name in (
        "llm_model",
        "llm_requests",
        "llm_retries",
        "llm_input_tokens",
        "llm_output_tokens",
        "llm_cost_usd",
    ):
        assert f'property name="{name}"' in xml, name
    assert 'name="llm_model" value="sim-fast"' in xml
    assert 'name="llm_cost_usd" value="n/a"' in xml  # the simulator has no price


def test_github_step_summary_and_the_report_hook(pytester, write_config, monkeypatch):
    summary = pytester.path / "summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    write_config()
    pytester.makeconftest(
        """
        def pytest_llm_matrix_report(config, report):
            report["build"] = "1234"
        """
    )
    pytester.makepyfile(SUITE)
    pytester.runpytest_subprocess("--models=sims", "--llm-report=r.json")
    text = summary.read_text()
    assert text.startswith("earlier step\n## llm-matrix\n")
    assert "| `sim-weak` |" in text
    assert "Failed on every model" in text
    assert json.loads((pytester.path / "r.json").read_text())["build"] == "1234"


@pytest.mark.parametrize(("gate", "exit_code"), [("0.5", 0), ("50%", 0), ("0.8", 1)])
def test_min_pass_rate_gate(pytester, write_config, gate, exit_code):
    write_config()
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.parametrize("n", range(3))
        def test_answer(llm, n):
            assert llm.complete(f"capital of France {n}") == "Paris" or n > 0
        """
    )
    # sim-weak answers "Lyon": 2 of 3 pass (66.7%); sim-fast 3 of 3
    result = pytester.runpytest_subprocess("--models=sims", f"--llm-min-pass-rate={gate}")
    assert result.ret == exit_code
    if exit_code:
        result.stdout.fnmatch_lines(["--llm-min-pass-rate 80%: below it: sim-weak 66.7%"])
    else:
        result.stdout.fnmatch_lines(["--llm-min-pass-rate 50%: every required model meets it"])


@pytest.mark.parametrize("bad", ["abc", "150%", "-0.2"])
def test_min_pass_rate_bad_values(pytester, write_config, bad):
    write_config()
    pytester.makepyfile("def test_a(llm_model):\n    pass\n")
    result = pytester.runpytest(f"--llm-min-pass-rate={bad}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --llm-min-pass-rate: *"])


def test_table_fits_the_terminal_and_verbosity_changes_it(pytester, write_config, monkeypatch):
    write_config()
    pytester.makepyfile("def test_a(llm):\n    assert llm.complete('hi') == 'ok'\n")
    headers = {}
    for name, columns, args in (
        ("narrow", "60", []),
        ("wide", "250", []),
        ("verbose", "60", ["-v"]),
        ("quiet", "250", ["-q"]),
    ):
        monkeypatch.setenv("COLUMNS", columns)
        result = pytester.runpytest_subprocess("--models=sims", *args)
        line = next(x for x in result.outlines if x.startswith("model "))
        headers[name] = line
        if name == "narrow":
            assert all(
                len(x) <= 60 for x in result.outlines if x.startswith(("model ", "sim-", "total "))
            )
    assert headers["quiet"].split() == [
        "model",
        "passed",
        "failed",
        "errors",
        "skipped",
        "pass",
        "rate",
        "cost",
    ]
    assert "p95" in headers["verbose"]
    assert "p95" in headers["wide"]
    assert "p95" not in headers["narrow"]
    assert headers["narrow"].split()[:4] == ["model", "passed", "failed", "errors"]


def test_table_drops_least_important_columns_first():
    stats = ModelStats()
    stats.add("passed", 1.0, 0.0, 1.0)
    rows = [("a-model", stats)]
    full = render.table(rows, None)[0].split()
    fitted = render.table(rows, 50)[0]
    assert len(fitted) <= 50
    kept = fitted.split()
    assert kept[:3] == ["model", "passed", "failed"]
    assert "timeouts" in full
    assert "timeouts" not in kept


@pytest.mark.parametrize(
    ("nodeid", "model", "base"),
    [
        ("t.py::test_x[gpt-4o]", "gpt-4o", "t.py::test_x"),
        ("t.py::test_x[gpt-4o-1-a]", "gpt-4o", "t.py::test_x[1-a]"),
        ("t.py::C::test_x[llama-3.1:8b-q]", "llama-3.1:8b", "t.py::C::test_x[q]"),
    ],
)
def test_base_id(nodeid, model, base):
    assert base_id(nodeid, model) == base


def test_failure_split():
    everywhere, some = failure_split(
        {
            "t::a": {"m1": "failed", "m2": "error"},
            "t::b": {"m1": "passed", "m2": "failed"},
            "t::c": {"m1": "failed", "m2": "skipped"},  # ran on one model only
            "t::d": {"m1": "passed", "m2": "passed"},
        }
    )
    assert everywhere == ["t::a"]
    assert some == {"t::b": ["m2"], "t::c": ["m1"]}


BUDGET_CONFIG = """
[tool.llm-matrix.models.pricey]
provider = "simulator"
input_price = 1000.0
output_price = 1000.0
simulate = { latency = 0.05 }
"""


@pytest.mark.parametrize("workers", [["-n", "0"], ["-n", "2"]], ids=["n0", "n2"])
def test_cost_budget_stops_spending(pytester, write_config, workers):
    write_config(BUDGET_CONFIG)
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.parametrize("n", range(20))
        def test_request(llm, n):
            assert llm.complete(f"request number {n}")
        """
    )
    result = pytester.runpytest_subprocess(
        "--llm-max-cost=0.05", "--llm-report=r.json", "-rs", *workers
    )
    report = json.loads((pytester.path / "r.json").read_text())
    per_request = max(t["cost_usd"] for t in report["tests"] if t["cost_usd"])
    passed = report["models"]["pricey"]["outcomes"]["passed"]
    assert 0 < passed < 20
    workers_count = 1 if workers[-1] == "0" else 2
    # overshoot: at most one in-flight request per worker
    assert 0.05 <= report["spent_usd"] <= 0.05 + workers_count * per_request + 1e-9
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        [
            "--llm-max-cost $0.05 reached: $0.0* spent, * model tests skipped",
            "SKIPPED * the cost budget of $0.05 is spent (*--llm-max-cost)",
        ],
        consecutive=False,
    )
    skipped = outcome_counts(result)["skipped"]
    assert skipped == 20 - passed
    assert f"spent, {skipped} model tests skipped" in result.stdout.str()


@pytest.mark.parametrize("workers", [["-n", "0"], ["-n", "2"]], ids=["n0", "n2"])
def test_the_estimate_adds_up_the_selected_tests_last_costs(pytester, write_config, workers):
    """After collection: the last known cost of each model test selected now. A run stopped
    by the budget leaves the tests it skipped unknown, and the estimate says so."""
    write_config(BUDGET_CONFIG)
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.parametrize("n", range(10))
        def test_request(llm, n):
            assert llm.complete(f"request number {n}")

        def test_plain():
            pass
        """
    )

    def estimate(result: pytest.RunResult) -> str:
        lines = [line for line in result.outlines if "estimated cost" in line]
        assert len(lines) <= 1, lines
        return lines[0] if lines else ""

    stopped = pytester.runpytest_subprocess("--llm-max-cost=0.05", "--llm-report=r.json", *workers)
    assert estimate(stopped) == ""  # nothing known yet
    report = json.loads((pytester.path / "r.json").read_text())
    ran = [t for t in report["tests"] if t["outcome"] == "passed"]
    assert 0 < len(ran) < 10
    spent = sum(t["cost_usd"] for t in ran)
    after_stop = pytester.runpytest_subprocess("--llm-report=r.json", *workers)
    assert estimate(after_stop) == (
        "llm-matrix: estimated cost of the 10 model tests: at least "
        f"{format_usd(spent)} (from their last runs; {10 - len(ran)} of them never ran with a "
        "known cost, not counted)"
    )
    every = sum(t["cost_usd"] for t in json.loads((pytester.path / "r.json").read_text())["tests"])
    full = pytester.runpytest_subprocess("--llm-max-cost=5", *workers)
    assert estimate(full) == (
        f"llm-matrix: estimated cost of the 10 model tests: {format_usd(every)} "
        "(from their last runs; budget $5)"
    )
    one = pytester.runpytest_subprocess("-k", "request and 3", *workers)
    assert estimate(one).startswith("llm-matrix: estimated cost of the 1 model test: $0.0")
    # a cache file edited by hand: only plausible costs count, the rest are left out
    costs_file = pytester.path / ".pytest_cache" / "v" / "llm-matrix" / "test-costs"
    remembered = json.loads(costs_file.read_text())
    ids = sorted(remembered)
    garbage = [float("nan"), -5, 1e308, float("inf"), True, 10**30, "0.5", [1], None]
    remembered = {i: (0.25 if n == 0 else garbage[n - 1]) for n, i in enumerate(ids)}
    costs_file.write_text(json.dumps(remembered))
    edited = pytester.runpytest_subprocess(*workers)
    assert estimate(edited) == (
        "llm-matrix: estimated cost of the 10 model tests: at least $0.25 (from their last "
        "runs; 9 of them never ran with a known cost, not counted)"
    )


UNPRICED_CONFIG = """
[tool.llm-matrix.models.sim-a]
provider = "simulator"

[tool.llm-matrix.models.sim-b]
provider = "simulator"
"""


@pytest.mark.parametrize("workers", [["-n", "0"], ["-n", "2"]], ids=["n0", "n2"])
def test_unpriced_models_get_no_estimate_and_a_budget_that_cannot_bind_says_so(
    pytester, write_config, workers
):
    """A test that sent nothing is known to cost $0, one on an unpriced model is not known:
    together no longer "at least $0.00" at every run. A budget no model's tokens can reach
    says so at the start, and is shown as given (not $1e-06)."""
    write_config(UNPRICED_CONFIG)
    pytester.makepyfile(
        """
        def test_sends(llm):
            assert llm.complete("hello")

        def test_sends_nothing(llm_model):
            pass
        """
    )
    for _ in range(2):  # the second run has the first one's costs to estimate from
        result = pytester.runpytest_subprocess("--llm-max-cost=0.000001", *workers)
        assert result.ret == 0
        assert "estimated cost" not in result.stdout.str()
    result.stdout.fnmatch_lines(
        [
            "llm-matrix: --llm-max-cost $0.000001 cannot bind: no model of this run has a price "
            "(sim-a, sim-b); set their input_price and output_price (or price_as) for their "
            "tokens to count",
            "--llm-max-cost $0.000001: $0.0000 spent",
        ],
        consecutive=False,
    )
    assert "1e-06" not in result.stdout.str()
    priced = pytester.runpytest_subprocess("--llm-max-cost=5", "--models=sim-a", *workers)
    assert "llm-matrix: --llm-max-cost $5 cannot bind" in priced.stdout.str()
    write_config(UNPRICED_CONFIG + "input_price = 1.0\noutput_price = 1.0\n")  # sim-b's
    priced = pytester.runpytest_subprocess("--llm-max-cost=5", *workers)
    assert "llm-matrix: --llm-max-cost $5" not in priced.stdout.str()


def unpriced(budget: float | None, *models: dict, rates: dict | None = None, judge=None):
    registry = parse_registry({"models": dict(models)}, "cfg")
    return Settings(
        registry=registry,
        selected=tuple(name for name in registry.models if name != judge),
        max_cost=budget,
        rates=rates or {},
        judge=judge,
    )


SIM = ("sim", {"provider": "simulator"})
GATEWAY = ("gw", {"provider": "openai-compatible", "base_url": "http://gw/v1"})
QUIET = ("quiet", {**GATEWAY[1], "cost_header": "", "cost_field": ""})


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        (unpriced(None, SIM), None),
        (unpriced(5, SIM, rates={"sim": (1e-6, 1e-6, 1e-6)}), None),
        (unpriced(5, SIM, QUIET), "--llm-max-cost $5 cannot bind: * (sim, quiet); *"),
        (
            unpriced(5, SIM, GATEWAY, rates={"sim": None, "gw": None}),
            "--llm-max-cost $5 may never bind: no model of this run has a price (sim, gw), so "
            "only the costs their answers report (cost_header, cost_field) count; *",
        ),
        # the judge's requests count too: a priced judge can reach the budget
        (unpriced(5, SIM, GATEWAY, rates={"gw": (1e-6, 1e-6, 1e-6)}, judge="gw"), None),
        (
            unpriced(0.5, SIM, GATEWAY, judge="gw"),
            "--llm-max-cost $0.5 may never bind: * (sim, gw)*",
        ),
    ],
)
def test_unbound_budget(settings, expected):
    line = unbound_budget(settings)
    assert line == expected if expected is None else fnmatch.fnmatchcase(line or "", expected)


@pytest.mark.parametrize(
    ("value", "shown"),
    [(5, "$5"), (5.0, "$5"), (0.05, "$0.05"), (1e-06, "$0.000001"), (1e6, "$1,000,000")],
)
def test_budgets_are_shown_as_written(value, shown):
    assert checks.dollars(value) == shown


def test_report_path_that_is_a_directory_is_a_usage_error(pytester, write_config):
    write_config()
    pytester.mkdir("out")
    result = pytester.runpytest("--llm-report=out")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--llm-report: *out is a directory; give a file name*"])


def test_a_report_that_cannot_be_written_at_the_end_fails_the_run(pytester, write_config):
    """Checked writable at start (see test_bad_input.py), the report's folder is replaced by
    a file during the run: the run fails and says why, instead of losing the report."""
    write_config()
    pytester.mkdir("out")
    pytester.makepyfile(
        test_x="""
        import shutil

        def test_x(llm):
            llm.complete('hi')
            shutil.rmtree("out")
            open("out", "w").close()
        """
    )
    result = pytester.runpytest("--llm-report=out/r.json")
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["--llm-report: could not write *out/r.json: File exists"])
    assert "Traceback" not in result.stdout.str()


def test_a_step_summary_that_is_a_fifo_does_not_hang_the_run(pytester, write_config, monkeypatch):
    import os

    fifo = pytester.path / "fifo"
    os.mkfifo(fifo)
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(fifo))
    write_config()
    pytester.makepyfile(test_x="def test_x(llm):\n    llm.complete('hi')\n")
    result = pytester.runpytest_subprocess(timeout=60)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["$GITHUB_STEP_SUMMARY: could not write *fifo: not a regular file"])


def test_failed_on_some_models_lists_ids_that_can_be_pasted_back(pytester, write_config):
    """Each line under "failed on some models" is a node id with its model: given back to
    pytest, it runs exactly that test on that model."""
    write_config()
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.parametrize("intent", ["refund", "hello"])
        def test_intent(llm, intent):
            assert llm.complete(f"capital of France {intent}") == "Paris"
        """
    )
    result = pytester.runpytest("--models=sim-fast,sim-weak", "-p", "no:randomly")
    lines = result.stdout.lines
    start = lines.index("failed on some models:")
    block = itertools.takewhile(lambda line: line.startswith("  "), lines[start + 1 :])
    ids = [line.strip() for line in block]
    assert ids == [
        "test_failed_on_some_models_lists_ids_that_can_be_pasted_back.py::"
        f"test_intent[sim-weak-{intent}]"
        for intent in ("refund", "hello")
    ], lines[start:]
    again = pytester.runpytest(ids[0], "--models=sim-fast,sim-weak")
    again.assert_outcomes(failed=1)
    # an id with a space is quoted for the shell
    pytester.makepyfile(
        test_spaced="""
        import pytest

        @pytest.mark.parametrize("q", ["capital of France?"], ids=["a b"])
        def test_q(llm, q):
            assert llm.complete(q) == "Paris"
        """
    )
    spaced = pytester.runpytest("test_spaced.py", "--models=sim-fast,sim-weak")
    spaced.stdout.fnmatch_lines(["  'test_spaced.py::test_q[[]sim-weak-a b[]]'"])
    again.stdout.fnmatch_lines(["*1 failed in*"])
    assert "llm-matrix: 1 model" in again.stdout.str()


def test_no_price_is_said_once_per_model_and_never_with_q(pytester, write_config):
    write_config()
    pytester.makepyfile("def test_a(llm):\n    assert llm.complete('hi') == 'ok'\n")
    quiet = pytester.runpytest("--models=sim-fast", "-q")
    assert "no known price" not in quiet.stdout.str()
    first = pytester.runpytest("--models=sim-fast")
    first.stdout.fnmatch_lines(["n/a: no known price for sim-fast; set input_price*"])
    again = pytester.runpytest("--models=sim-fast")
    assert "no known price" not in again.stdout.str()
    more = pytester.runpytest("--models=sim-fast,sim-weak")
    more.stdout.fnmatch_lines(["n/a: no known price for sim-weak; set input_price*"])
    # without a cache there is nothing to remember it by: every run says it
    for _ in range(2):
        bare = pytester.runpytest("--models=sim-fast", "-p", "no:cacheprovider")
        bare.stdout.fnmatch_lines(["n/a: no known price for sim-fast; *"])
