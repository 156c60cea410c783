"""Tests for cost.py: genai-prices lookups, config overrides, formatting, lazy import."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pytest_llm_matrix.config.models import Model
from pytest_llm_matrix.report.cost import (
    format_usd,
    model_cost,
    per_token_rates,
    sources_text,
    spend_cost,
    token_source,
)

M = 1_000_000


def price_usd(provider, model_id, input_tokens, output_tokens, cached_tokens=0, **config):
    """What ``input_tokens`` and ``output_tokens`` cost on a model of ``provider`` named
    ``model_id``, configured with ``config``."""
    api = "anthropic" if provider == "anthropic" else "openai"
    model = Model(name="m", provider=provider, model=model_id, api=api, **config)
    return model_cost(model, (input_tokens, output_tokens, cached_tokens))


# genai-prices 0.2.3, genai_prices/data.py, provider "openai", model "gpt-4o-mini":
# ModelPrice(input_mtok=0.15, cache_read_mtok=0.075, output_mtok=0.6, ...)
# provider "anthropic", model "claude-haiku-4-5":
# ModelPrice(input_mtok=1, cache_write_mtok=1.25, cache_read_mtok=0.1, output_mtok=5, ...)


def test_known_model_list_price():
    assert price_usd("openai", "gpt-4o-mini", M, 0) == pytest.approx(0.15)
    assert price_usd("openai", "gpt-4o-mini", 0, M) == pytest.approx(0.6)


def test_dated_model_id_matches():
    assert price_usd("openai", "gpt-4o-mini-2024-07-18", M, 0) == pytest.approx(0.15)


def test_cached_tokens_are_part_of_input_and_billed_at_the_cache_rate():
    # 1M input of which 400k cached: 600k at 0.15 + 400k at 0.075, plus 1M output at 0.6.
    expected = 0.6 * 0.15 + 0.4 * 0.075 + 0.6
    assert price_usd("openai", "gpt-4o-mini", M, M, cached_tokens=400_000) == pytest.approx(
        expected
    )


def test_anthropic_cache_reads():
    # Usage.input_tokens for Anthropic already adds cache_read_input_tokens back in.
    assert price_usd("anthropic", "claude-haiku-4-5", M, 0, cached_tokens=M) == pytest.approx(0.1)
    assert price_usd("anthropic", "claude-haiku-4-5", 2 * M, M) == pytest.approx(2 + 5)


@pytest.mark.parametrize("provider", ["openai-compatible", "simulator"])
def test_an_alias_is_never_priced_from_the_list_by_its_name(provider):
    """A model behind a gateway or a compatible server may be named like a listed model and
    route anywhere (a LiteLLM alias "gpt-4o-mini" that serves a local model): only the
    provider's own ids are list-priced."""
    assert price_usd(provider, "gpt-4o-mini", M, 0) is None
    assert token_source(Model(name="m", provider=provider, model="gpt-4o-mini", api="openai")) == (
        "none"
    )


@pytest.mark.parametrize("provider", ["openai-compatible", "simulator", "openai"])
def test_price_as_names_the_listed_model_it_is_priced_like(provider):
    assert price_usd(provider, "my-alias", M, M, price_as="gpt-4o-mini") == pytest.approx(0.75)
    model = Model(name="m", provider=provider, model="x", api="openai", price_as="gpt-4o-mini")
    assert token_source(model) == "list"


def test_a_price_as_no_list_knows_is_unpriced():
    assert price_usd("openai-compatible", "x", M, M, price_as="no-such-model-abc") is None


def test_configured_prices_win_over_price_as():
    priced = price_usd(
        "openai-compatible", "x", M, 0, price_as="gpt-4o-mini", input_price=1.0, output_price=2.0
    )
    assert priced == pytest.approx(1.0)


def test_a_spends_cost_is_what_its_answers_said_plus_the_rest_priced():
    configured = Model(
        name="m", provider="openai-compatible", model="x", api="openai", input_price=1.0,
        output_price=2.0,
    )  # fmt: skip
    assert spend_cost(configured, (M, M, 0), 0.25) == (
        pytest.approx(3.25),
        ("reported", "configured"),
    )
    assert spend_cost(configured, (0, 0, 0), 0.25) == (0.25, ("reported",))
    assert spend_cost(configured, (M, 0, 0), None) == (pytest.approx(1.0), ("configured",))
    bare = Model(name="m", provider="openai-compatible", model="x", api="openai")
    assert spend_cost(bare, (0, 0, 0), 0.25) == (0.25, ("reported",))
    assert spend_cost(bare, (10, 10, 0), 0.25) == (None, ("reported", "none"))
    assert spend_cost(None, (10, 10, 0), None) == (None, ("none",))
    listed = Model(name="m", provider="openai", model="gpt-4o-mini", api="openai")
    assert spend_cost(listed, (M, 0, 0), None) == (pytest.approx(0.15), ("list",))


def test_sources_are_said_in_one_order():
    assert sources_text({"list", "reported"}) == "reported+list"
    assert sources_text(["none"]) == "none"
    assert sources_text(()) == "-"


@pytest.mark.parametrize(
    ("provider", "model_id"),
    [
        ("simulator", "sim-fast"),
        ("openai", "no-such-model-xyz"),
        ("anthropic", "gpt-4o-mini"),
        ("openai-compatible", "qwen3-32b-local"),
        ("openai-compatible", "gpt-4o-mini"),
    ],
)
def test_unknown_model_is_unpriced(provider, model_id):
    assert price_usd(provider, model_id, 1000, 1000) is None


def test_more_cached_than_input_is_unpriced_not_an_error():
    assert price_usd("openai", "gpt-4o-mini", 10, 0, cached_tokens=20) is None


def test_zero_tokens_of_a_known_model_cost_zero():
    assert price_usd("openai", "gpt-4o-mini", 0, 0) == 0.0


def test_overrides_win_over_genai_prices():
    assert price_usd(
        "openai", "gpt-4o-mini", M, 2 * M, input_price=1.0, output_price=3.0
    ) == pytest.approx(7.0)
    model = Model(name="m", provider="openai", model="gpt-4o-mini", api="openai", input_price=1.0)
    assert token_source(model) == "configured"


def test_overrides_price_cached_tokens_at_the_input_price():
    assert price_usd(
        "openai", "gpt-4o-mini", M, 0, cached_tokens=M, input_price=2.0, output_price=4.0
    ) == pytest.approx(2.0)


def test_overrides_price_unknown_models():
    assert price_usd("simulator", "sim-fast", 500_000, 0, input_price=2.0, output_price=0.0) == (
        pytest.approx(1.0)
    )


def test_a_missing_override_only_matters_when_its_tokens_are_used():
    assert price_usd("simulator", "sim", M, 0, input_price=2.0) == pytest.approx(2.0)
    assert price_usd("simulator", "sim", 0, M, output_price=5.0) == pytest.approx(5.0)
    assert price_usd("simulator", "sim", M, 1, input_price=2.0) is None
    assert price_usd("openai", "gpt-4o-mini", 1, M, output_price=5.0) is None


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "n/a"),
        (0.0, "$0.00"),
        (0.0012345, "$0.0012"),
        (0.000999, "$0.0010"),
        (0.0000004, "$0.00000040"),
        (0.05, "$0.050"),
        (0.5, "$0.50"),
        (0.123, "$0.12"),
        (0.9999, "$1.00"),
        (1.234, "$1.23"),
        (1234.567, "$1,234.57"),
    ],
)
def test_format_usd(value, text):
    assert format_usd(value) == text


def run_python(code):
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()


def test_importing_cost_does_not_import_genai_prices():
    code = "import sys, pytest_llm_matrix.report.cost\nprint('genai_prices' in sys.modules)"
    assert run_python(code) == "False"


def test_pricing_never_touches_the_network():
    """With every way out blocked, a fresh process still imports genai-prices and prices."""
    code = (
        "import socket\n"
        "def blocked(*args, **kwargs):\n"
        "    raise RuntimeError('network access')\n"
        "socket.socket.connect = socket.socket.connect_ex = blocked\n"
        "socket.create_connection = socket.getaddrinfo = blocked\n"
        "from pytest_llm_matrix.config.models import Model\n"
        "from pytest_llm_matrix.report.cost import model_cost\n"
        "for provider in ('openai', 'simulator'):\n"
        "    model = Model('m', provider, 'gpt-4o-mini', 'openai', price_as='gpt-4o-mini')\n"
        "    print(model_cost(model, (1_000_000, 0, 0)))\n"
    )
    assert run_python(code).split() == ["0.15", "0.15"]


@pytest.mark.parametrize(
    ("provider", "model_id"),
    [
        ("anthropic", "claude-sonnet-4-5"),
        ("openai", "gpt-4o-mini"),
        ("anthropic", "claude-haiku-4-5"),
    ],
)
def test_budget_rates_price_a_request_as_the_report_does(provider, model_id):
    # Some models have a long-context tier (claude-sonnet-4-5 above 200k input tokens): the
    # budget's per-token rates must be those of a request-sized call, as the report prices.
    model = Model(name="m", provider=provider, model=model_id, api=provider)
    rates = per_token_rates(model)
    assert rates is not None
    per_input, per_output, per_cached = rates
    expected = model_cost(model, (1200, 300, 200))
    assert expected is not None
    assert 1000 * per_input + 200 * per_cached + 300 * per_output == pytest.approx(expected)


def test_budget_rates_are_none_without_a_price():
    assert per_token_rates(Model(name="s", provider="simulator", model="s", api="openai")) is None
    priced = Model(
        name="s", provider="simulator", model="s", api="openai", input_price=2.0, output_price=4.0
    )
    assert per_token_rates(priced) == pytest.approx((2e-6, 4e-6, 2e-6))


def test_warming_up_looks_each_model_up_once_ahead():
    """The controller's warm-up thread looks up the run's models while the tests run, so
    the summary at the end finds an unknown model known as unknown, and a known one's
    patterns compiled."""
    from pytest_llm_matrix.report import cost

    unknown = Model(name="m-warm", provider="openai", model="no-such-model-warm", api="openai")
    known = Model(name="k-warm", provider="openai", model="gpt-4o", api="openai")
    cost.warm_up([unknown, known])
    assert ("openai", "no-such-model-warm") in cost._UNKNOWN
    assert ("openai", "gpt-4o") not in cost._UNKNOWN
    hits = cost._price_from_genai_prices.cache_info().hits
    model_cost(known, (1, 1, 0))
    assert cost._price_from_genai_prices.cache_info().hits == hits + 1
