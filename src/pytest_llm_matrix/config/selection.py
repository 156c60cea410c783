"""The model selection syntax shared by ``--models``, ``TEST_MODELS`` and ``@pytest.mark.llm``.

An expression is a comma-separated list of names, read left to right. A name is ``all``,
a model alias, a group or a tag (in that order of precedence); a leading ``-`` removes
what the name stands for. ``all`` is every configured model but the judge (which grades
answers, and is not graded unless named). An expression that starts with an exclusion starts from
``all``. Spaces are ignored and duplicates collapse; the result keeps config order.
"""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from pytest_llm_matrix.config.registry import Registry, closest


def split_expression(expression: str | Iterable[str]) -> list[str]:
    """``"a, b,,-c"`` -> ``["a", "b", "-c"]``; a list's items may hold commas too."""
    parts = [expression] if isinstance(expression, str) else list(expression)
    return [token.strip() for part in parts for token in part.split(",") if token.strip()]


def expand_name(name: str, registry: Registry) -> tuple[str, ...] | None:
    """The aliases a single name stands for, or None when it is unknown."""
    if name == "all":
        return tuple(alias for alias in registry.models if alias != registry.judge)
    if name in registry.models:
        return (name,)
    if name in registry.groups:
        return registry.groups[name]
    return registry.tags.get(name)


def unknown_name_error(name: str, registry: Registry, origin: str) -> pytest.UsageError:
    close = closest(name, ["all", *registry.models, *registry.groups, *registry.tags])
    hint = f" Did you mean {close!r}?" if close else ""
    lines = [
        f"{origin}: unknown model, group or tag {name!r}.{hint}",
        f"  models: {', '.join(registry.models) or '(none configured)'}",
    ]
    if registry.groups:
        lines.append(f"  groups: {', '.join(registry.groups)}")
    if registry.tags:
        lines.append(f"  tags:   {', '.join(registry.tags)}")
    return pytest.UsageError("\n".join(lines))


def evaluate(expression: str | Iterable[str], registry: Registry, origin: str) -> set[str]:
    """The aliases an expression stands for (maybe none); an unknown name is a
    :class:`pytest.UsageError` naming ``origin``."""
    tokens = split_expression(expression)
    starts = tokens and tokens[0].startswith("-")
    chosen: set[str] = set(expand_name("all", registry) or ()) if starts else set()
    for token in tokens:
        exclude = token.startswith("-")
        name = token[1:].strip() if exclude else token
        aliases = expand_name(name, registry)
        if aliases is None:
            raise unknown_name_error(name, registry, origin)
        if exclude:
            chosen.difference_update(aliases)
        else:
            chosen.update(aliases)
    return chosen


def resolve(expression: str | Iterable[str], registry: Registry, origin: str) -> tuple[str, ...]:
    """Evaluate a selection expression to aliases in config order.

    ``origin`` (``"--models"``, ``"TEST_MODELS"``, ...) is named in every error.
    Raises :class:`pytest.UsageError` for an unknown name or an empty result.
    """
    tokens = split_expression(expression)
    if not tokens:
        raise pytest.UsageError(f"{origin}: the selection is empty; name at least one model")
    chosen = evaluate(tokens, registry, origin)
    if not chosen:
        raise pytest.UsageError(
            f"{origin}={','.join(tokens)!r} selects no model; "
            f"known models: {', '.join(registry.models)}"
        )
    return tuple(name for name in registry.models if name in chosen)
