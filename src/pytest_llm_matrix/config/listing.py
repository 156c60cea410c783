"""``--llm-models``: the configured models, groups, tags, judge and selection, listed
without running a test, as ``pytest --markers`` lists the markers.

Read the way a run reads them (the config, the hooks' models, ``--llm-judge``,
``--models``/``TEST_MODELS``), so a mistake is the usage error the run would meet. A key is
never shown: only whether its variable is set.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence

import pytest

from pytest_llm_matrix.config import checks, options
from pytest_llm_matrix.config.models import Model
from pytest_llm_matrix.config.registry import Registry
from pytest_llm_matrix.config.selection import resolve

COLUMNS = ("model", "provider", "model id", "api", "tags", "required", "simulated", "keys")


@dataclasses.dataclass(frozen=True)
class Selection:
    """What a run would select now, and why."""

    models: tuple[str, ...]
    origin: str  # "--models", "TEST_MODELS", "'default' in pyproject.toml", ...
    overridden: tuple[str, ...] = ()  # the sources it wins over ("TEST_MODELS", ...)
    unavailable: Mapping[str, str] = dataclasses.field(default_factory=dict)


def listing(config: pytest.Config) -> list[str]:
    """The lines ``--llm-models`` prints for this run's config."""
    registry = options.load_registry(config)
    judge, judge_origin = options.judge_choice(config, registry)
    registry = dataclasses.replace(registry, judge=judge)
    expression, origin = options.selection_expression(config, registry)
    if not registry.models:
        return no_models(registry)
    selected = resolve(expression, registry, origin)
    overridden = []
    if origin == "--models" and os.environ.get(options.ENV_MODELS, "").strip():
        overridden.append(options.ENV_MODELS)
    if origin in ("--models", options.ENV_MODELS) and registry.default is not None:
        overridden.append("'default'")
    selection = Selection(
        selected,
        origin,
        tuple(overridden),
        options.unavailable_models(config, registry, selected),
    )
    return lines(registry, judge_origin, selection)


def no_models(registry: Registry) -> list[str]:
    where = f"in {registry.source}" if registry.source else "(no llm-matrix config found)"
    return [f"llm-matrix: no models configured {where}: {options.HOW_TO_ADD_MODELS}"]


def lines(registry: Registry, judge_origin: str, selection: Selection) -> list[str]:
    """The listing: a table of the models, then groups, tags, judge, default, selection."""
    source = registry.source or "no llm-matrix config found: from the pytest_llm_matrix_models hook"
    found = [f"llm-matrix: {checks.counted(len(registry.models), 'model')} ({source})"]
    found.extend(table([_row(model) for model in registry.models.values()]))
    found.append("groups:" if registry.groups else "groups: none")
    found.extend(f"  {name}: {', '.join(members)}" for name, members in registry.groups.items())
    tags = registry.tags
    found.append("tags:" if tags else "tags: none")
    found.extend(f"  {tag}: {', '.join(owners)}" for tag, owners in tags.items())
    if registry.judge is None:
        found.append("judge: none (name one with 'judge' in the config or --llm-judge)")
    else:
        found.append(f"judge: {registry.judge} (from {judge_origin}; not in 'all')")
    if registry.default is None:
        found.append("default: not set (a run without --models or TEST_MODELS selects 'all')")
    else:
        found.append(f"default: {', '.join(registry.default)}")
    over = f", over {' and '.join(selection.overridden)}" if selection.overridden else ""
    found.append(
        f"selected now: {len(selection.models)} of "
        f"{checks.counted(len(registry.models), 'model')} "
        f"(from {selection.origin}{over}): {', '.join(selection.models)}"
    )
    found.extend(
        f"  {name} would be skipped: {reason}" for name, reason in selection.unavailable.items()
    )
    return found


def _row(model: Model) -> list[str]:
    keys = [f"{name} {_state(name)}" for name in model.secret_envs()]
    return [
        model.name,
        model.provider,
        model.model,
        model.api,
        ",".join(model.tags) or "-",
        "yes" if model.required else "no",
        "yes" if model.provider == "simulator" else "no",
        ", ".join(keys) or "-",
    ]


def _state(variable: str) -> str:
    """Whether a variable is set: never its value."""
    if os.environ.get(variable, "").strip():
        return "set"
    return "blank" if variable in os.environ else "not set"


def table(rows: Sequence[Sequence[str]]) -> list[str]:
    """Rows under :data:`COLUMNS`, each column as wide as its widest cell."""
    widths = [max(len(cell) for cell in column) for column in zip(COLUMNS, *rows, strict=True)]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [COLUMNS, *rows]
    ]
