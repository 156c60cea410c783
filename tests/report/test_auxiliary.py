"""Model-free tests and auxiliary requests in the report: pure parts."""

from __future__ import annotations

from pytest_llm_matrix.config.models import Model
from pytest_llm_matrix.report import auxiliary
from pytest_llm_matrix.report.model_free import model_free
from pytest_llm_matrix.report.stats import ModelStats


def record(test, outcome="passed", reached=False):
    return {"test": test, "outcome": outcome, "reached": reached}


def test_model_free_needs_every_run_to_have_reached_no_model():
    records = [
        record("a"),
        record("a", "failed"),
        record("b"),
        record("b", reached=True),  # reached a model on one model: not model-free
        record("c", "skipped"),
        record("c", "skipped"),  # never ran: not judged model-free
        record("d", "error"),
    ]
    assert model_free(records) == {"a", "d"}


def test_a_model_free_tests_part_comes_off_its_models_row():
    row, part = ModelStats(), ModelStats()
    for stats in (row, part):
        stats.add("failed", 1.5, None, None)
        stats.add_run(False)
    row.add("passed", 2.0, None, None)
    row.add_run(True)
    row.remove(part)
    assert (row.counts["passed"], row.counts["failed"], row.runs_judged) == (1, 0, 1)
    assert row.pass_rate == 1.0
    assert row.duration == 2.0


def test_auxiliary_rows_are_priced_as_the_model_they_went_to():
    priced = Model("judge", "openai", "gpt-4o-mini", "openai")
    rows = auxiliary.Auxiliary({"judge": priced})
    spend = {"requests": 1, "attempts": 1, "input_tokens": 1000, "output_tokens": 100}
    rows.add({"judge": {"spend": spend, "about": {"kind": "routed", "alias": "judge"}}})
    direct = {"kind": "direct", "model": "text-embedding-3-small", "provider": "openai"}
    rows.add({"emb @ api.openai.com": {"spend": spend, "about": direct}})
    unknown = {"kind": "direct", "model": "no-such-model", "provider": "openai-compatible"}
    rows.add({"x @ h": {"spend": spend, "about": unknown}})
    rows.add({"bad": "not a dict"})
    rows.add("not a dict either")
    rows.price()
    found = rows.to_json()
    assert set(found) == {"judge", "emb @ api.openai.com", "x @ h"}
    assert found["judge"]["cost_usd"] > 0
    assert found["emb @ api.openai.com"]["cost_usd"] > 0
    assert found["x @ h"]["cost_usd"] is None  # no known price: n/a, never $0
    assert rows.lines()[1].startswith("  judge: 1 request, 1,000 tokens in, 100 out, $")


def test_auxiliary_rows_merge():
    one = {"auxiliary": {"j": {"kind": "routed", "requests": 2, "cost_usd": 0.5}}}
    two = {"auxiliary": {"j": {"kind": "routed", "requests": 3, "cost_usd": 0.25}}}
    unknown = {"auxiliary": {"j": {"requests": 1, "cost_usd": None}}}
    hostile = {"auxiliary": {"j": {"requests": True, "cost_usd": float("nan")}, "k": 5}}
    assert auxiliary.merged([one, two]) == {
        "j": {"kind": "routed", "requests": 5, "cost_usd": 0.75}
    }
    assert auxiliary.merged([one, unknown])["j"]["cost_usd"] is None
    assert auxiliary.merged([one, hostile])["j"] == {
        "kind": "routed",
        "requests": 2,
        "cost_usd": None,
    }
    assert auxiliary.merged([hostile]) == {"j": {}}
