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
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from pytest_llm_matrix.config.models import Model

_PER_MILLION = 1_000_000
#: Tokens the per-token rates are derived from: a request's size, below any tier.
_REFERENCE_TOKENS = 1_000

# Our provider names -> genai-prices provider ids.
_GENAI_PROVIDERS: dict[str, str | None] = {"openai": "openai", "anthropic": "anthropic"}
#: Providers whose model ids are the provider's own, so a list price is theirs. Any other
#: model (behind an OpenAI-compatible server or a gateway, simulated) is an alias that may
#: route anywhere: priced from a list only by the model id its config's ``price_as`` names.
FIRST_PARTY: Final = frozenset(_GENAI_PROVIDERS)

#: Where a model's cost comes from (the report's ``price_source``): the answers themselves,
#: the model's configured prices, genai-prices' list, or nowhere (shown as n/a).
SOURCES: Final = ("reported", "configured", "list", "none")


def token_source(model: Model) -> str:
    """Where ``model``'s tokens are priced from: "configured", "list" or "none"."""
    if model.input_price is not None or model.output_price is not None:
        return "configured"
    if model.price_as is not None or model.provider in FIRST_PARTY:
        return "list"
    return "none"


def model_cost(model: Model, tokens: tuple[int, int, int]) -> float | None:
    """The cost of (input, output, cached input) ``tokens`` on ``model``: its configured
    prices; else the list price of its ``price_as`` id, or of its own id at a first-party
    provider; else unknown (None)."""
    input_tokens, output_tokens, cached_tokens = tokens
    source = token_source(model)
    if source == "none":
        return None if any(tokens) else 0.0
    if source == "configured":
        return _price_with_overrides(
            input_tokens, output_tokens, model.input_price, model.output_price
        )
    return _price_from_genai_prices(
        model.provider if model.provider in FIRST_PARTY else "",
        model.price_as or model.model,
        input_tokens,
        output_tokens,
        cached_tokens,
    )


def spend_cost(
    model: Model | None, tokens: tuple[int, int, int], reported: float | None
) -> tuple[float | None, tuple[str, ...]]:
    """The cost of what a test spent on ``model``: the ``reported`` cost of the answers that
    said it, plus the other answers' ``tokens`` at the model's prices; None when those have
    no known price. Also where the figures came from (of SOURCES)."""
    sources = ("reported",) if reported is not None else ()
    if not any(tokens):
        return reported or 0.0, sources
    priced = model_cost(model, tokens) if model is not None else None
    if priced is None:
        return None, (*sources, "none")
    assert model is not None
    return (reported or 0.0) + priced, (*sources, token_source(model))


def sources_text(sources: Iterable[str]) -> str:
    """``reported+list``: the sources in SOURCES' order; ``-`` for none (nothing spent)."""
    found = set(sources)
    return "+".join(source for source in SOURCES if source in found) or "-"


def sources_of(parts: Iterable[Mapping[str, Any]]) -> list[str]:
    """The ``price_sources`` of report rows merged: any row's, in SOURCES' order (a report
    from before them has none)."""
    found = {source for part in parts for source in part.get("price_sources") or ()}
    return [source for source in SOURCES if source in found]


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
