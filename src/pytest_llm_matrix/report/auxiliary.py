"""Auxiliary requests: what the code under test sent for side jobs (embeddings, a judge,
token counting) while a model test ran, counted apart from every model's row.

Workers put them on each report by destination (see
:data:`pytest_llm_matrix.calls.context.AUX_ATTR`): a configured model they were routed to
(``[tool.llm-matrix.auxiliary]`` routes), or the server their client sent them to. Priced
here, in the controller, like the models' tokens.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from pytest_llm_matrix.config.models import PROVIDERS, Model
from pytest_llm_matrix.report.cost import SOURCES, format_usd, model_cost, sources_of, spend_cost
from pytest_llm_matrix.report.render import plain
from pytest_llm_matrix.report.stats import (
    ModelStats,
    percentile,
    replayed_tokens_of,
    reported_of,
    unreported_tokens_of,
)


class Auxiliary:
    """The run's auxiliary requests, one row per destination."""

    def __init__(self, models: Mapping[str, Model]) -> None:
        self.models = models  # every configured model: a route may name an unselected one
        self.rows: dict[str, ModelStats] = {}
        self.about: dict[str, dict[str, str]] = {}
        self._to_price: list[tuple[str, tuple[int, int, int], float | None]] = []
        self._replayed: list[tuple[str, tuple[int, int, int]]] = []  # what recordings cost

    def __bool__(self) -> bool:
        return bool(self.rows)

    def add(self, entries: object) -> None:
        """A report's auxiliary spend: ``{name: {"spend": {...}, "about": {...}}}``."""
        if not isinstance(entries, dict):
            return
        for name, entry in entries.items():
            spend = entry.get("spend") if isinstance(entry, dict) else None
            if not isinstance(name, str) or not isinstance(spend, dict):
                continue
            about = entry.get("about")
            if name not in self.about:
                self.about[name] = (
                    {k: v for k, v in (about or {}).items() if isinstance(v, str)}
                    if isinstance(about, dict)
                    else {}
                )
            stats = self.rows.setdefault(name, ModelStats())
            stats.add_spend(spend)
            reported, _ = reported_of(spend)
            tokens = unreported_tokens_of(spend)
            if reported is not None or any(tokens):
                self._to_price.append((name, tokens, reported))
            if any(replayed := replayed_tokens_of(spend)):
                self._replayed.append((name, replayed))

    def model_of(self, name: str) -> Model | None:
        """The model a row's tokens are priced as: the configured model it was routed to,
        or the model id its request named at a known provider."""
        about = self.about.get(name, {})
        if about.get("kind") in ("routed", "judge"):
            return self.models.get(about.get("alias", ""))
        model_id, provider = about.get("model", ""), about.get("provider", "")
        if not model_id or provider not in PROVIDERS:
            return None
        return Model(name=name, provider=provider, model=model_id, api="openai")

    def price(self) -> None:
        for name, tokens, reported in self._to_price:
            cost, sources = spend_cost(self.model_of(name), tokens, reported)
            self.rows[name].add_cost(cost, tokens[0] + tokens[1], sources)
        self._to_price.clear()
        for name, tokens in self._replayed:
            model = self.model_of(name)
            cost = model_cost(model, tokens) if model is not None else None
            self.rows[name].add_replayed_cost(cost, tokens[0] + tokens[1])
        self._replayed.clear()

    def _judge(self, name: str) -> bool:
        return self.about.get(name, {}).get("kind") == "judge"

    def to_json(self, judges: bool = False) -> dict[str, Any]:
        """The JSON report's ``auxiliary``: per destination, what it is and what it spent;
        or (``judges``) its ``judges``: per judge model's alias, what its requests spent."""
        rows: dict[str, Any] = {}
        for name, stats in self.rows.items():
            if self._judge(name) != judges:
                continue
            about = self.about.get(name, {})
            if judges:
                name = about.get("alias", name)
            rows[name] = {
                "kind": about.get("kind", ""),
                "model": about.get("model", ""),
                "sent_as": about.get("sent", about.get("model", "")),
                **stats.spend,
                "latency_p50": percentile(stats.latencies, 50),
                "cost_usd": stats.known_cost,
                "replayed_cost_usd": stats.known_replayed_cost,
                "price_sources": [source for source in SOURCES if source in stats.sources],
            }
        return rows

    def lines(self) -> list[str]:
        """Under the table: each destination's requests, tokens and cost, and the judges'."""
        lines = []
        for judges, title in (
            (False, "auxiliary requests (not in any model's row):"),
            (True, "judge requests (not in any model's row):"),
        ):
            rows = [(n, stats) for n, stats in self.rows.items() if self._judge(n) == judges]
            if rows:
                lines.append(title)
            for name, stats in rows:
                lines.append("  " + row_text(name, self.about.get(name, {}), stats))
        return lines


def row_text(name: str, about: Mapping[str, str], stats: ModelStats) -> str:
    """``judge (routed gpt-4o): 6 requests, 1,234 tokens in, 56 out, $0.0012``."""
    spend = stats.spend
    if about.get("kind") == "routed" and about.get("sent"):
        name = f"{name} (routed {about['sent']})"
    elif about.get("kind") == "judge":
        name = about.get("alias", name)
    requests = spend["requests"] + spend["replayed"]
    tokens = spend["input_tokens"] + spend["output_tokens"]
    cost = format_usd(stats.known_cost) if tokens or spend["reported"] else "-"
    replayed = ""
    if spend["replayed"]:
        recorded = stats.known_replayed_cost
        said = "unpriced" if recorded is None else format_usd(recorded)
        replayed = f" ({spend['replayed']} replayed, recorded at {said})"
    return plain(
        f"{name}: {requests} request{'s' * (requests != 1)}{replayed}, "
        f"{spend['input_tokens']:,} tokens in, {spend['output_tokens']:,} out, {cost}"
    )


def merged(reports: list[Mapping[str, Any]], section: str = "auxiliary") -> dict[str, Any]:
    """The ``auxiliary`` (or ``judges``) of reports merged: counts and costs add up (a cost
    unknown in one report is unknown in all), a latency known in one report only is kept."""
    rows: dict[str, Any] = {}
    for report in reports:
        found = report.get(section)
        if not isinstance(found, dict):
            continue
        for name, row in found.items():
            if not isinstance(row, dict):
                continue
            mine = rows.get(name)
            if mine is None:
                rows[name] = {
                    k: v
                    for k, v in row.items()
                    if v is None or isinstance(v, str) or _count(v) or _usd(v)
                }
                if "price_sources" in row:
                    rows[name]["price_sources"] = sources_of([row])
                continue
            for key, value in row.items():
                if key in ("cost_usd", "replayed_cost_usd"):
                    both = _usd(value) and _usd(mine.get(key))
                    mine[key] = mine[key] + value if both else None
                elif key == "latency_p50":
                    mine[key] = None
                elif key == "price_sources":
                    mine[key] = sources_of([mine, row])
                elif _count(value):
                    mine[key] = int(mine.get(key, 0) or 0) + value
    return rows


def _count(value: object) -> bool:
    """A counter (a cost in billionths of a dollar included: up to $1e12)."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 10**21


def _usd(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and 0 <= value < 1e12
    )
