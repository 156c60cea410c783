"""Price token counts in USD, once, in the controller.

Workers only count tokens; the controller prices each model's totals here. genai-prices is
imported inside the functions: its bundled price table is large, and xdist workers (which
import this package) must never pay for it. Nothing here starts genai-prices'
`UpdatePrices`, the one part of it that touches the network, so prices come from its
bundled data.
"""

from __future__ import annotations

import contextlib
import functools
import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable

    from pytest_llm_matrix.config.models import Model

_PER_MILLION = 1_000_000
#: Tokens the per-token rates are derived from: a request's size, below any tier.
_REFERENCE_TOKENS = 1_000

# Our provider names -> genai-prices provider ids. None lets genai-prices find the provider
# from the model id: an OpenAI-compatible server may host a known model, and simulator models
# usually match nothing, so they stay unpriced.
_GENAI_PROVIDERS: dict[str, str | None] = {
    "openai": "openai",
    "anthropic": "anthropic",
    "openai-compatible": None,
    "simulator": None,
}


def price_usd(
    provider: str,
    model_id: str,
    input_tokens: int,
    output_tokens: int,
    cached_tokens: int = 0,
    input_price: float | None = None,
    output_price: float | None = None,
) -> float | None:
    """Cost in USD of the given tokens, or None when it is unknown (shown as "n/a", never $0).

    `input_tokens` includes `cached_tokens`, as in `usage.Usage`. `input_price` and
    `output_price` (USD per million tokens, from the model's config) override genai-prices.
    """
    if input_price is not None or output_price is not None:
        return _price_with_overrides(input_tokens, output_tokens, input_price, output_price)
    return _price_from_genai_prices(provider, model_id, input_tokens, output_tokens, cached_tokens)


def model_cost(model: Model, tokens: tuple[int, int, int]) -> float | None:
    """The cost of (input, output, cached input) ``tokens`` on ``model``, its configured
    prices first."""
    input_tokens, output_tokens, cached_tokens = tokens
    return price_usd(
        model.provider,
        model.model,
        input_tokens,
        output_tokens,
        cached_tokens,
        input_price=model.input_price,
        output_price=model.output_price,
    )


def per_token_rates(model: Model) -> tuple[float, float, float] | None:
    """USD per (input, output, cached input) token, or None when any is unknown.

    Computed once in the controller, so workers can price requests (for a budget) with
    plain arithmetic and never load the price data. Priced on a request-sized count: a
    million tokens would land in some models' long-context tier.
    """
    count = _REFERENCE_TOKENS
    prices = (
        model_cost(model, (count, 0, 0)),
        model_cost(model, (0, count, 0)),
        model_cost(model, (count, 0, count)),
    )
    if any(price is None for price in prices):
        return None
    per_input, per_output, per_cached = (float(p) / count for p in prices if p is not None)
    return per_input, per_output, per_cached


def _price_with_overrides(
    input_tokens: int,
    output_tokens: int,
    input_price: float | None,
    output_price: float | None,
) -> float | None:
    """Configured prices; cached input is billed at `input_price` since no cache rate is given.

    A missing price is only harmless when there is nothing to price with it.
    """
    if (input_price is None and input_tokens) or (output_price is None and output_tokens):
        return None
    cost = input_tokens * (input_price or 0.0) + output_tokens * (output_price or 0.0)
    return cost / _PER_MILLION


#: (provider, model) pairs genai-prices does not know: asked once per session, not per test
#: (a failed lookup costs a quarter of a millisecond, once per test of a simulated model).
_UNKNOWN: set[tuple[str, str]] = set()


@functools.lru_cache(maxsize=4096)
def _price_from_genai_prices(
    provider: str, model_id: str, input_tokens: int, output_tokens: int, cached_tokens: int
) -> float | None:
    """Price from genai-prices' bundled data; None for a model it does not know.

    genai-prices treats `cache_read_tokens` as a part of `input_tokens` (it prices the
    difference at the input rate and the cached part at the cache-read rate, or at the input
    rate when the model has none), which is exactly our `Usage` convention, so the counts go
    in unchanged. It raises ValueError when cached exceeds input: unpriceable, not a crash.
    """
    if (provider, model_id) in _UNKNOWN:
        return None
    import genai_prices

    usage = genai_prices.Usage(
        input_tokens=input_tokens, output_tokens=output_tokens, cache_read_tokens=cached_tokens
    )
    try:
        calculation = genai_prices.calc_price(
            usage, model_ref=model_id, provider_id=_GENAI_PROVIDERS.get(provider)
        )
    except LookupError:
        _UNKNOWN.add((provider, model_id))
        return None
    except ValueError:
        return None
    return float(calculation.total_price)


def warm_up(models: Iterable[Model]) -> None:
    """Look each of ``models`` up once now (see ``Summary._warm_up``): the first lookup loads
    genai-prices' bundled table, a model's first compiles its patterns, and an unknown model
    is remembered as unknown; any failure is left for the pricing itself to meet."""
    for model in models:
        with contextlib.suppress(Exception):
            model_cost(model, (1, 1, 0))


def format_usd(value: float | None) -> str:
    """A cost for humans: "n/a" when unknown, cents from $1 up, two significant digits below.

    Test runs on cheap models cost fractions of a cent, which a fixed "$0.00" would hide.
    """
    if value is None:
        return "n/a"
    if value >= 1 or value <= 0:
        return f"${value:,.2f}"
    # Round to two significant digits first, so 0.000999 becomes 0.0010 and not 0.00100.
    rounded = float(f"{value:.2g}")
    decimals = max(2, 1 - math.floor(math.log10(rounded)))
    return f"${rounded:.{decimals}f}"
