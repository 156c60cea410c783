"""Costs a gateway or provider reports for each answer (LiteLLM's proxy, OpenRouter), and the
price sources a model's cost comes from, end to end: real pytest sessions whose tests talk
to a stand-in gateway over loopback (see tests/gateway_server.py for the shapes)."""

from __future__ import annotations

import json
import sys

import pytest

from tests.gateway_server import Gateway

WORKERS = pytest.mark.parametrize("workers", [["-n", "0"], ["-n", "2"]], ids=["n0", "n2"])

TESTS = """
import pytest

@pytest.mark.parametrize("n", range(3))
def test_whole(llm, n):
    assert llm.complete(f"question {n}") == "four words of reply"

@pytest.mark.parametrize("n", range(3))
def test_streamed(llm, n):
    assert "".join(llm.stream(f"question {n} streamed")) == "four words of reply"
"""


def gateway_model(url: str, extra: str = "") -> str:
    # named like a listed model on purpose: an alias is never priced by its name
    return f"""
[tool.llm-matrix.models.gw]
provider = "openai-compatible"
model = "gpt-4o-mini"
base_url = "{url}"
{extra}
"""


def run(pytester, *args: str) -> tuple[pytest.RunResult, dict]:
    result = pytester.runpytest_subprocess("-p", "no:randomly", "--llm-report=r.json", *args)
    return result, json.loads((pytester.path / "r.json").read_text())


@WORKERS
@pytest.mark.parametrize("shape", ["litellm", "openrouter"])
def test_the_costs_a_gateway_reports_are_the_models_cost(pytester, write_config, workers, shape):
    """LiteLLM's header (whole answers) and usage.cost (streams), OpenRouter's usage.cost:
    summed exactly, said to come from the answers, in the table and the JSON report."""
    with Gateway(shape) as gateway:
        write_config(gateway_model(gateway.url))
        pytester.makepyfile(TESTS)
        result, report = run(pytester, "--models=gw", *workers)
        said = gateway.said
    result.assert_outcomes(passed=6)
    assert len(said) == 6
    assert None not in said
    model = report["models"]["gw"]
    assert model["cost_usd"] == pytest.approx(sum(said), rel=1e-9)
    assert model["price_sources"] == ["reported"]
    assert model["reported"] == 6
    assert model["reported_input_tokens"] == model["input_tokens"] > 0
    assert sum(t["cost_usd"] for t in report["tests"]) == pytest.approx(sum(said), rel=1e-9)
    header = next(line for line in result.outlines if line.startswith("model "))
    row = next(line for line in result.outlines if line.startswith("gw "))
    end = header.index(" price ") + len(" price")  # cells are right-aligned under titles
    assert row[:end].endswith(" reported")
    assert "no known price" not in result.stdout.str()


@WORKERS
def test_answers_without_a_reported_cost_are_priced_as_configured(pytester, write_config, workers):
    """Every third answer says no cost (as LiteLLM's for an alias it has no price for): those
    are priced at the model's configured prices, the rest as reported; the source says both."""
    with Gateway("litellm", silent_every=3) as gateway:
        write_config(gateway_model(gateway.url, "input_price = 1.0\noutput_price = 2.0"))
        pytester.makepyfile(TESTS)
        result, report = run(pytester, "--models=gw", *workers)
        said = gateway.said
    result.assert_outcomes(passed=6)
    assert said.count(None) == 2
    model = report["models"]["gw"]
    unreported_in = model["input_tokens"] - model["reported_input_tokens"]
    unreported_out = model["output_tokens"] - model["reported_output_tokens"]
    assert unreported_in > 0
    assert unreported_out == 8
    priced = (unreported_in * 1.0 + unreported_out * 2.0) / 1e6
    reported = sum(cost for cost in said if cost is not None)
    assert model["cost_usd"] == pytest.approx(reported + priced, rel=1e-9)
    assert model["price_sources"] == ["reported", "configured"]
    assert "reported+configured" in result.stdout.str()


def test_unreported_answers_of_an_alias_without_prices_leave_the_cost_unknown(
    pytester, write_config
):
    """An alias named like a listed model is not priced at that model's list price: what
    its answers did not report is unknown, so the cost is n/a, and the note says how to
    price it."""
    with Gateway("litellm", silent_every=3) as gateway:
        write_config(gateway_model(gateway.url))
        pytester.makepyfile(TESTS)
        result, report = run(pytester, "--models=gw")
    result.assert_outcomes(passed=6)
    model = report["models"]["gw"]
    assert model["cost_usd"] is None
    assert model["price_sources"] == ["reported", "none"]
    result.stdout.fnmatch_lines(
        ["n/a: no known price for gw; set input_price and output_price *, or price_as *"]
    )


def test_price_as_prices_an_alias_like_the_listed_model_it_names(pytester, write_config):
    """``price_as``: the alias's unreported tokens at the named model's list price."""
    with Gateway("litellm", silent_every=1) as gateway:  # no answer says its cost
        write_config(gateway_model(gateway.url, 'price_as = "gpt-4o-mini"'))
        pytester.makepyfile(TESTS)
        result, report = run(pytester, "--models=gw")
    result.assert_outcomes(passed=6)
    model = report["models"]["gw"]
    assert model["price_sources"] == ["list"]
    # gpt-4o-mini's list price (genai-prices): $0.15 in, $0.60 out per million tokens
    expected = (model["input_tokens"] * 0.15 + model["output_tokens"] * 0.6) / 1e6
    assert model["cost_usd"] == pytest.approx(expected, rel=1e-6)


@WORKERS
def test_the_budget_counts_the_costs_the_answers_report(pytester, write_config, workers):
    """--llm-max-cost adds up what the answers said they cost (here $0.0009 or so each;
    the configured prices, a thousand times lower, would never reach the budget)."""
    with Gateway("openrouter") as gateway:
        write_config(gateway_model(gateway.url, "input_price = 0.001\noutput_price = 0.001"))
        pytester.makepyfile(
            """
            import pytest

            @pytest.mark.parametrize("n", range(20))
            def test_request(llm, n):
                assert llm.complete(f"request number {n}")
            """
        )
        result, report = run(pytester, "--models=gw", "--llm-max-cost=0.003", *workers)
        said = gateway.said
    passed = report["models"]["gw"]["outcomes"]["passed"]
    assert 0 < passed < 20
    assert len(said) == passed
    assert report["spent_usd"] == pytest.approx(sum(said), rel=1e-6)
    assert report["spent_usd"] >= 0.003
    result.stdout.fnmatch_lines(["--llm-max-cost $0.003 reached: $0.00* spent, * skipped"])


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("cost_header", '"x cost"', "field 'cost_header': expected an HTTP header name"),
        ("cost_field", '"usage..cost"', "field 'cost_field': expected a dotted field name"),
        ("cost_field", "3", "field 'cost_field': expected a dotted field name"),
        ("price_as", '""', "field 'price_as': expected a non-empty string"),
    ],
)
def test_bad_cost_settings_are_refused(pytester, write_config, field, value, message):
    write_config(gateway_model("http://127.0.0.1:9/v1", f"{field} = {value}"))
    pytester.makepyfile("def test_x(llm): pass")
    result = pytester.runpytest_subprocess("--models=gw")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*model 'gw': {message}*"])
    assert "Traceback" not in result.stderr.str()


def test_a_configured_header_and_field_are_read_and_the_defaults_can_be_turned_off(
    pytester, write_config
):
    """A company gateway's own cost header; ``cost_field = ""`` ignores a usage.cost that
    means something else (credits of another currency)."""
    with Gateway("openrouter") as gateway:
        write_config(
            gateway_model(
                gateway.url,
                'cost_field = ""\ncost_header = "X-LiteLLM-Call-Id"\ninput_price = 1.0\n'
                "output_price = 1.0",
            )
        )
        pytester.makepyfile(TESTS)
        result, report = run(pytester, "--models=gw")
    result.assert_outcomes(passed=6)
    model = report["models"]["gw"]
    # the call id is no number: no cost said; usage.cost is not read: all configured
    assert model["price_sources"] == ["configured"]
    assert model["reported"] == 0
    assert model["cost_usd"] == pytest.approx(
        (model["input_tokens"] + model["output_tokens"]) / 1e6, rel=1e-9
    )


@pytest.mark.parametrize("shape", ["litellm", "openrouter"])
def test_a_cost_said_without_token_counts_is_counted(pytester, write_config, shape):
    """An answer with a cost but no token counts (a usage holding only ``cost``, or none):
    its cost is the model's, shown in the table, and counted by the budget."""
    with Gateway(shape, tokenless=True, fixed_cost=0.25) as gateway:
        write_config(gateway_model(gateway.url))
        pytester.makepyfile(TESTS)
        result, report = run(pytester, "--models=gw", "--llm-max-cost=100")
        said = gateway.said
    result.assert_outcomes(passed=6)
    model = report["models"]["gw"]
    assert model["input_tokens"] == 0
    assert model["reported"] == len(said) == 6
    assert model["cost_usd"] == pytest.approx(1.5)
    assert report["spent_usd"] == pytest.approx(1.5)
    row = next(line for line in result.outlines if line.startswith("gw "))
    assert "$1.50" in row


def test_reported_costs_over_a_thousand_dollars_merge(pytester, write_config):
    """Counted in billionths of a dollar, a run's reported costs go well past 1e12."""
    with Gateway("litellm", fixed_cost=999.0) as gateway:
        write_config(gateway_model(gateway.url))
        pytester.makepyfile(TESTS)
        result, report = run(pytester, "--models=gw")
    result.assert_outcomes(passed=6)
    assert report["models"]["gw"]["reported_cost_nanousd"] == 6 * 999 * 10**9
    merged = pytester.run(sys.executable, "-m", "pytest_llm_matrix", "merge", "r.json")
    assert merged.ret == 0, merged.stderr.str()
    assert "$5,994.00" in merged.stdout.str()
    baseline = pytester.runpytest_subprocess("--models=gw", "--llm-baseline=r.json", "--co")
    assert baseline.ret == 0, baseline.stderr.str()


def test_price_as_must_name_a_listed_model(pytester, write_config):
    write_config(gateway_model("http://127.0.0.1:9/v1", 'price_as = "no-such-model-xyz"'))
    pytester.makepyfile("def test_x(llm): pass")
    result = pytester.runpytest_subprocess("--models=gw")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*model 'gw': price_as 'no-such-model-xyz' is not in genai-prices' price list*"]
    )
