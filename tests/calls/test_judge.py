"""The ``llm_judge`` fixture, from real sessions on the simulator (which judges by its rules):
verdicts in failures, transcripts and the JSON report; judge requests counted apart, under
the budget, recorded and replayed; every misconfiguration said."""

from __future__ import annotations

import json

import pytest

from pytest_llm_matrix.calls.judge import Verdict, parse_verdict

WORKERS = pytest.mark.parametrize("workers", [["-n", "0"], ["-n", "2"]], ids=["n0", "n2"])

CONFIG = """
[tool.llm-matrix]
judge = "sim-judge"
default = ["sim-a", "sim-b"]

[tool.llm-matrix.models.sim-a]
provider = "simulator"
input_price = 1
output_price = 2

[tool.llm-matrix.models.sim-b]
provider = "simulator"
input_price = 1
output_price = 2
simulate = { wrong = ["(?i)capital"], wrong_reply = "Lyon, I think." }

[tool.llm-matrix.models.sim-judge]
provider = "simulator"
input_price = 100
output_price = 200

[[tool.llm-matrix.models.sim-judge.simulate.rules]]
system = "grade"
match = "(?s)Answer to grade:.*Paris"
json = { pass = true, reason = "It names Paris.", score = 1 }

[[tool.llm-matrix.models.sim-judge.simulate.rules]]
system = "grade"
match = "(?s)Answer to grade:.*garbled"
reply = "Sure! I think it passes."

[[tool.llm-matrix.models.sim-judge.simulate.rules]]
system = "grade"
match = "(?s)Answer to grade:"
json = { pass = false, reason = "It names Lyon, not Paris.", score = 0.1 }

[tool.llm-matrix.simulator]
rules = [{ match = "(?i)capital of France", reply = "Paris is the capital of France." }]
"""

TEST = """
def test_capital(llm, llm_judge):
    answer = llm.complete("What is the capital of France?")
    assert llm_judge.grade(answer, "The answer names Paris.", context="a geography quiz")
"""


def run(pytester: pytest.Pytester, *args: str) -> tuple[pytest.RunResult, dict]:
    result = pytester.runpytest_subprocess(
        "-p", "no:randomly", "--llm-report=r.json", "--llm-html=r.html", *args
    )
    return result, json.loads((pytester.path / "r.json").read_text())


def entry(report: dict, model: str) -> dict:
    (found,) = [t for t in report["tests"] if t["model"] == model]
    return found


@WORKERS
def test_the_judge_fails_one_model_s_answer_with_its_reason(pytester, write_config, workers):
    write_config(CONFIG)
    pytester.makepyfile(TEST)
    result, report = run(pytester, *workers)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*AssertionError: assert Verdict(passed=False, reason='It names Lyon, not Paris.'*",
            "judge requests (not in any model's row):",
            "  sim-judge: 2 requests, * tokens in, * out, $0.0*",
        ]
    )
    failed, passed = entry(report, "sim-b"), entry(report, "sim-a")
    assert "It names Lyon, not Paris." in failed["failure"]
    assert failed["verdicts"] == [
        {"passed": False, "reason": "It names Lyon, not Paris.", "score": 0.1, "judge": "sim-judge"}
    ]
    answer, judged = failed["transcript"]
    assert answer["role"] == "model"
    assert answer["answer"] == "Lyon, I think."
    assert judged["role"] == "judge"
    assert judged["model"] == "sim-judge"
    assert judged["verdict"] == {
        "passed": False,
        "reason": "It names Lyon, not Paris.",
        "score": 0.1,
    }
    assert judged["input"][0]["role"] == "system"
    assert "grade" in judged["input"][0]["text"]
    assert judged["input"][1]["text"] == (
        "Rubric:\nThe answer names Paris.\n\nContext (what the answer replies to):\n"
        "a geography quiz\n\nAnswer to grade:\nLyon, I think."
    )
    assert passed["verdicts"][0]["passed"] is True
    # counted apart: each model's row has its own request only, the judge's row both of its
    for name in ("sim-a", "sim-b"):
        assert report["models"][name]["requests"] == 1
    judge = report["judges"]["sim-judge"]
    assert judge["kind"] == "judge"
    assert judge["requests"] == 2
    assert judge["price_sources"] == ["configured"]
    tokens_in, tokens_out = judge["input_tokens"], judge["output_tokens"]
    assert judge["cost_usd"] == pytest.approx((tokens_in * 100 + tokens_out * 200) / 1e6)
    assert "sim-judge" not in report["models"]
    assert report["auxiliary"] == {}
    page = (pytester.path / "r.html").read_text()
    assert "It names Lyon, not Paris." in page
    assert "<h2>Judge requests</h2>" in page
    assert "<tr><td><code>sim-judge</code></td><td>sim-judge</td><td>2</td>" in page


def test_the_judge_is_never_the_model_under_test(pytester, write_config):
    """With --llm-rewrite-model, every request of the model under test goes to it; the
    judge's still go to the judge (the simulator answers a verdict only as the judge)."""
    write_config(CONFIG)
    pytester.makepyfile(TEST)
    result, report = run(pytester, "--llm-rewrite-model", "--models=sim-a")
    result.assert_outcomes(passed=1)
    (judged,) = [e for e in entry(report, "sim-a")["transcript"] if e["role"] == "judge"]
    assert judged["model"] == "sim-judge"
    assert json.loads(judged["answer"])["pass"] is True


def test_a_reply_that_is_no_verdict_fails_quoting_it(pytester, write_config):
    write_config(CONFIG)
    pytester.makepyfile(
        """
def test_garbled(llm_model, llm_judge):
    llm_judge.grade("garbled", "The answer names Paris.")
"""
    )
    result, _ = run(pytester, "--models=sim-a")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            '*judge sim-judge: its reply is not a JSON object (expected {"pass": true or false, '
            '"reason": "..."}): \'Sure! I think it passes.\''
        ]
    )
    assert "Traceback" not in result.stdout.str()


def test_the_judge_is_replayed_offline(pytester, write_config):
    write_config(CONFIG)
    pytester.makepyfile(TEST)
    result, recorded = run(pytester, "--llm-record=new")
    result.assert_outcomes(passed=1, failed=1)
    result, replayed = run(pytester, "--llm-record=replay")
    result.assert_outcomes(passed=1, failed=1)
    assert replayed["judges"]["sim-judge"]["replayed"] == 2
    assert replayed["judges"]["sim-judge"]["requests"] == 0
    recorded_cost = recorded["judges"]["sim-judge"]["cost_usd"]
    assert replayed["judges"]["sim-judge"]["replayed_cost_usd"] == pytest.approx(recorded_cost)
    result.stdout.fnmatch_lines(["  sim-judge: 2 requests (2 replayed, recorded at $0.0*), *"])
    for model in ("sim-a", "sim-b"):
        assert entry(replayed, model)["verdicts"] == entry(recorded, model)["verdicts"]
        assert all(e["replayed"] for e in entry(replayed, model)["transcript"])


def test_judge_requests_count_towards_the_budget(pytester, write_config):
    """The judge costs 100x the models: its first verdict spends the budget, and the next
    test is skipped for it."""
    write_config(CONFIG)
    pytester.makepyfile(TEST)
    result, report = run(pytester, "--llm-max-cost=0.005", "--models=sim-a,sim-b", "-p", "no:xdist")
    outcomes = {t["model"]: t["outcome"] for t in report["tests"]}
    assert outcomes == {"sim-a": "passed", "sim-b": "skipped"}
    assert report["spent_usd"] == pytest.approx(
        report["judges"]["sim-judge"]["cost_usd"] + report["models"]["sim-a"]["cost_usd"]
    )
    assert report["spent_usd"] >= 0.005
    result.stdout.fnmatch_lines(
        ["--llm-max-cost $0.005 reached: $0.0* spent, 1 model test skipped"]
    )


def test_each_run_of_a_repeated_test_is_graded(pytester, write_config):
    write_config(CONFIG)
    pytester.makepyfile(TEST)
    result, report = run(pytester, "--models=sim-a", "--llm-repeat=3", "--llm-repeat-pass-rate=1")
    result.assert_outcomes(passed=1, skipped=2)
    test = entry(report, "sim-a")
    assert [v["run"] for v in test["verdicts"]] == [1, 2, 3]
    assert report["judges"]["sim-judge"]["requests"] == 3


@pytest.mark.parametrize(
    ("args", "config", "said"),
    [
        (
            ["--llm-judge=sim-jugde"],
            CONFIG,
            "*--llm-judge: 'sim-jugde' is not a configured model "
            "(did you mean 'sim-judge'?); known models: sim-a, sim-b, sim-judge*",
        ),
        (
            ["--llm-judge="],
            CONFIG,
            "*--llm-judge: expected the alias of a configured model, got ''; known models: *",
        ),
        (
            [],
            CONFIG.replace('judge = "sim-judge"', 'judge = "nope"'),
            "*'judge' in pyproject.toml: 'nope' is not a configured model*",
        ),
        ([], CONFIG.replace('judge = "sim-judge"', "judge = 3"), "*setting 'judge': *"),
    ],
    ids=["option-typo", "option-blank", "config-unknown", "config-not-text"],
)
def test_a_judge_that_is_no_configured_model_is_a_usage_error(
    pytester, write_config, args, config, said
):
    write_config(config)
    pytester.makepyfile(TEST)
    result = pytester.runpytest_subprocess(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([said])


def test_no_judge_configured_fails_the_test_saying_how(pytester, write_config):
    write_config(CONFIG.replace('judge = "sim-judge"\n', ""))
    pytester.makepyfile(TEST)
    result = pytester.runpytest_subprocess("--models=sim-a")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            '*llm_judge: no judge model is configured; set judge = "<alias>" in the llm-matrix '
            "config (a configured model), or pass --llm-judge=ALIAS; configured models: *"
        ]
    )


def test_a_judge_without_its_key_skips_or_fails_under_strict(pytester, write_config, monkeypatch):
    monkeypatch.delenv("LLM_MATRIX_JUDGE_KEY", raising=False)
    write_config(
        CONFIG
        + """
[tool.llm-matrix.models.keyed-judge]
provider = "openai"
model = "gpt-4o"
api_key_env = "LLM_MATRIX_JUDGE_KEY"
"""
    )
    pytester.makepyfile(TEST)
    result = pytester.runpytest_subprocess("--models=sim-a", "--llm-judge=keyed-judge", "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*judge keyed-judge: LLM_MATRIX_JUDGE_KEY is not set*"])
    result = pytester.runpytest_subprocess(
        "--models=sim-a", "--llm-judge=keyed-judge", "--llm-strict"
    )
    result.assert_outcomes(errors=1)


@pytest.mark.parametrize(
    ("reply", "verdict"),
    [
        ('{"pass": true, "reason": "ok"}', Verdict(True, "ok", None, "j")),
        (
            '```json\n{"pass": false, "reason": "no", "score": 0.25}\n```',
            Verdict(False, "no", 0.25, "j"),
        ),
        ('Here: {"pass": true, "reason": "fine", "score": 7}', Verdict(True, "fine", None, "j")),
        ('{"pass": true, "reason": "x", "score": NaN}', Verdict(True, "x", None, "j")),
    ],
    ids=["plain", "fenced", "prose-and-bad-score", "nan-score"],
)
def test_verdicts_are_read_from_what_judges_reply(reply, verdict):
    assert parse_verdict(reply, "j") == verdict


@pytest.mark.parametrize(
    ("reply", "problem"),
    [
        ("no", "is not a JSON object"),
        ('{"pass": "yes", "reason": "x"}', 'has no "pass": true or false'),
        ('{"pass": true}', 'has no "reason" text'),
        ("[1, 2]", "is not a JSON object"),
    ],
)
def test_replies_that_are_no_verdict(reply, problem):
    with pytest.raises(pytest.fail.Exception, match=f"judge j: its reply {problem}"):
        parse_verdict(reply, "j")


def test_a_verdict_is_truthy_when_it_passed():
    assert Verdict(True, "ok")
    assert not Verdict(False, "no")


def test_all_leaves_the_judge_out_unless_it_is_named(pytester, write_config):
    write_config(CONFIG)
    pytester.makepyfile("def test_one(llm):\n    assert llm.complete('hi')\n")
    result = pytester.runpytest_subprocess("--models=all", "--collect-only", "-q")
    assert "test_one[sim-judge]" not in result.stdout.str()
    result.stdout.fnmatch_lines(["*test_one[[]sim-a[]]", "*test_one[[]sim-b[]]"])
    result = pytester.runpytest_subprocess("--models=-sim-b", "--collect-only", "-q")
    assert "test_one[sim-judge]" not in result.stdout.str()
    result = pytester.runpytest_subprocess("--models=all,sim-judge", "--collect-only", "-q")
    result.stdout.fnmatch_lines(["*test_one[[]sim-judge[]]"])
    result = pytester.runpytest_subprocess(
        "--models=all", "--llm-judge=sim-b", "--collect-only", "-q"
    )
    result.stdout.fnmatch_lines(["*test_one[[]sim-judge[]]"])
    assert "test_one[sim-b]" not in result.stdout.str()


def test_a_judge_s_reason_is_cut_in_the_reports_not_in_the_verdict(pytester, write_config):
    reason = "because " + "z" * 5000
    write_config(CONFIG.replace('reason = "It names Paris."', f'reason = "{reason}"'))
    pytester.makepyfile(
        """
def test_capital(llm, llm_judge):
    verdict = llm_judge.grade(llm.complete("capital of France?"), "names Paris")
    assert len(verdict.reason) == 5008
"""
    )
    result, report = run(pytester, "--models=sim-a", "--llm-transcript-chars=100")
    result.assert_outcomes(passed=1)
    test = entry(report, "sim-a")
    cut = "because " + "z" * 92 + "\n[... 4,908 more characters not kept]"
    assert test["verdicts"][0]["reason"] == cut
    assert test["transcript"][1]["verdict"]["reason"] == cut


def test_a_test_without_a_model_counts_its_judge_requests(pytester, write_config):
    write_config(CONFIG)
    pytester.makepyfile(
        """
def test_plain(llm_judge):
    assert llm_judge.grade("Paris", "names Paris")

def test_model(llm):
    assert llm.complete("hi")
"""
    )
    result, report = run(pytester, "--models=sim-a", "--llm-max-cost=10")
    result.assert_outcomes(passed=2)
    judge = report["judges"]["sim-judge"]
    assert judge["requests"] == 1
    assert report["spent_usd"] == pytest.approx(
        judge["cost_usd"] + report["models"]["sim-a"]["cost_usd"]
    )
