"""Per-model parametrization and tagging each report with its model."""

from __future__ import annotations

import fnmatch
import functools
import re
from pathlib import Path
from typing import Any, Final

import pytest

from pytest_llm_matrix.config.checks import shown
from pytest_llm_matrix.config.models import Model
from pytest_llm_matrix.config.options import Settings
from pytest_llm_matrix.config.selection import evaluate, split_expression
from pytest_llm_matrix.matrix import FIXTURE, MARKER, MARKER_KWARGS, SDKS_FIXTURE

#: Whether a plugin or option deselected collected tests in this process (the run is then
#: not a run of every collected test: see the summary's unused recordings).
DESELECTED_KEY: Final = pytest.StashKey[bool]()
#: The same, as a worker tells the controller (in ``workeroutput``).
DESELECTED_OUTPUT: Final = "llm_matrix_deselected"


class Matrix:
    """Runs every test that needs ``llm_model`` once per selected model."""

    def __init__(self, settings: Settings, config: pytest.Config) -> None:
        self.settings = settings
        self.config = config

    def _names(self, value: Any, origin: str) -> set[str]:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise pytest.Collector.CollectError(
                f"{origin}: expected a list of model names, got {shown(value)}"
            )
        if not split_expression(value):
            raise pytest.Collector.CollectError(
                f"{origin}: names no model; name at least one alias, group or tag"
            )
        try:
            return evaluate(value, self.settings.registry, origin)
        except pytest.UsageError as error:
            raise pytest.Collector.CollectError(str(error)) from None

    def models_for(self, definition: pytest.Item) -> tuple[list[Model], str | None]:
        """The models one test runs on, and why none if so."""
        allowed = set(self.settings.selected)
        excluded: set[str] = set()
        for mark in definition.iter_markers(MARKER):
            origin = f"{definition.nodeid}: @pytest.mark.llm"
            unknown = set(mark.kwargs) - set(MARKER_KWARGS)
            if mark.args or unknown:
                raise pytest.Collector.CollectError(
                    f"{origin}: unexpected arguments {sorted(unknown) or list(mark.args)}; "
                    f"use keywords: {', '.join(MARKER_KWARGS)}"
                )
            if mark.kwargs.get("models") is not None:
                allowed &= self._names(mark.kwargs["models"], origin + "(models=...)")
            if mark.kwargs.get("exclude") is not None:
                excluded |= self._names(mark.kwargs["exclude"], origin + "(exclude=...)")
        chosen = [m for m in self.settings.models if m.name in allowed - excluded]
        if chosen:
            return chosen, None
        return [], (
            "no selected model is allowed by @pytest.mark.llm "
            f"(selected: {', '.join(self.settings.selected)})"
        )

    def pytest_collectstart(self, collector: pytest.Collector) -> None:
        """ini ``llm_sdks_paths``: the test modules under those paths use ``llm_sdks``."""
        paths = self.settings.sdks_paths
        if paths and isinstance(collector, pytest.Module) and _under(collector.path, paths):
            collector.add_marker(pytest.mark.usefixtures(SDKS_FIXTURE))

    def pytest_deselected(self, items: list[pytest.Item]) -> None:
        if items:
            self.config.stash[DESELECTED_KEY] = True

    @pytest.hookimpl(tryfirst=True)  # the alias leads every model test's id: test_x[alias-...]
    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        if FIXTURE not in metafunc.fixturenames:
            return
        if not self.settings.registry.models:
            raise pytest.Collector.CollectError(
                f"{metafunc.definition.nodeid} uses {FIXTURE}, but no models are configured. "
                "Add [tool.llm-matrix.models.<alias>] to pyproject.toml, write an "
                "llm-matrix.toml beside your pytest config, or pass --llm-config PATH."
            )
        models, reason = self.models_for(metafunc.definition)
        unavailable = self.settings.unavailable
        params = [
            pytest.param(
                model,
                id=model.name,
                marks=[pytest.mark.skip(reason=f"{model.name}: {unavailable[model.name]}")]
                if model.name in unavailable
                else [],
            )
            for model in models
        ] or [pytest.param(None, id="no-model", marks=pytest.mark.skip(reason=str(reason)))]
        metafunc.parametrize(FIXTURE, params, indirect=True)


def _under(path: Path, patterns: tuple[str, ...]) -> bool:
    """Whether ``path`` is one of ``patterns`` (absolute paths; globs where ``*`` stays in
    one folder and ``**`` crosses folders) or inside one."""
    for pattern in patterns:
        if any(char in pattern for char in "*?["):
            matches = _glob(pattern).fullmatch
            if matches(str(path)) or any(matches(str(parent)) for parent in path.parents):
                return True
        elif path == Path(pattern) or Path(pattern) in path.parents:
            return True
    return False


@functools.cache
def _glob(pattern: str) -> re.Pattern[str]:
    parts = []
    for piece in re.split(r"(\*\*/?|\*|\?)", pattern):
        if piece in ("**", "**/"):
            parts.append(".*")
        elif piece == "*":
            parts.append("[^/]*")
        elif piece == "?":
            parts.append("[^/]")
        else:
            parts.append(fnmatch.translate(piece).removeprefix("(?s:").removesuffix(")\\Z"))
    return re.compile("".join(parts))


def duplicate_id_problem(nodeids: list[str]) -> str | None:
    """Why the run cannot go on when two model tests have one id, else None. They would
    share a result (one of them lost from the report) and a rerun by id: pytest joins the
    model and the other parameters' ids with ``-``, so models ``a`` and ``a-b`` with
    parameters ``b-c`` and ``c`` both give ``test_x[a-b-c]``."""
    seen: set[str] = set()
    for nodeid in nodeids:
        if nodeid in seen:
            return (
                f"two model tests have the id {nodeid!r}: pytest joins a model's alias and the "
                "other parameters' ids with '-' (models 'a' and 'a-b' with parameters 'b-c' "
                "and 'c' both read [a-b-c]); give the parameters ids that keep them apart "
                "(ids=, or pytest.param(..., id=...)), or rename a model"
            )
        seen.add(nodeid)
    return None


def model_of(item: pytest.Item) -> Model | None:
    """The model a collected test runs on, if any."""
    callspec = getattr(item, "callspec", None)
    model = callspec.params.get(FIXTURE) if callspec is not None else None
    return model if isinstance(model, Model) else None


class Repeats:
    """Adds the runs of repeated tests (see :mod:`pytest_llm_matrix.matrix.repeats`)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @pytest.hookimpl(trylast=True)  # after every other parametrization: the run id comes last
    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        if FIXTURE not in metafunc.fixturenames:
            return
        # lazy: repeats load only when a model test is collected
        from pytest_llm_matrix.matrix.repeats import add_runs

        add_runs(metafunc, self.settings)
