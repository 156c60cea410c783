"""pytest entry point (``-p no:llm_matrix`` turns it off).

Kept thin and cheap to import: it loads in every pytest run of every project that has the
package installed. The stateful parts are classes registered by name in
``pytest_configure``; HTTP libraries load only when a test uses a model.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_llm_matrix import context, fixtures, hookspecs
from pytest_llm_matrix.matrix import MARKER_HELP, Matrix, model_of
from pytest_llm_matrix.options import (
    SETTINGS_KEY,
    SIMULATOR_KEY,
    WORKERINPUT_KEY,
    Settings,
    add_options,
    resolve_settings,
)


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hookspecs)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER_HELP)
    if config.option.help:
        return
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None and WORKERINPUT_KEY in workerinput:
        settings = Settings.from_wire(workerinput[WORKERINPUT_KEY])
        simulator = None
    else:
        settings = resolve_settings(config)
        simulator = None
        if any(m.needs_simulator for m in settings.models):
            from pytest_llm_matrix.simulation import SimulatorService

            simulator = SimulatorService(config, settings)
        if settings.selected:
            settings = _with_state_dir(config, settings)
    config.stash[SETTINGS_KEY] = settings
    config.stash[SIMULATOR_KEY] = simulator
    if settings.state_dir is not None:
        policy = context.RetryPolicy(attempts=settings.max_attempts, max_wait=settings.max_wait)
        limits = context.Limits(Path(settings.state_dir), settings.max_concurrency, policy)
        context.configure(limits)
        config.add_cleanup(lambda: context.configure(None))
    config.pluginmanager.register(fixtures, "llm_matrix.fixtures")
    config.pluginmanager.register(Matrix(settings), "llm_matrix.matrix")
    if hasattr(config, "workerinput"):
        return
    if config.pluginmanager.hasplugin("xdist"):
        from pytest_llm_matrix.xdist import XdistHooks

        config.pluginmanager.register(XdistHooks(settings, simulator), "llm_matrix.xdist")
    if config.getoption("dist", "no") != "no":
        # The xdist controller never collects: it learns of model tests from reports.
        _register_summary(config, settings)


def _with_state_dir(config: pytest.Config, settings: Settings) -> Settings:
    """A fresh directory the session's processes coordinate through (slots, cooldowns)."""
    import dataclasses
    import shutil
    import tempfile

    state_dir = tempfile.mkdtemp(prefix="pytest-llm-matrix-")
    config.add_cleanup(lambda: shutil.rmtree(state_dir, ignore_errors=True))
    return dataclasses.replace(settings, state_dir=state_dir)


def _register_summary(config: pytest.Config, settings: Settings) -> None:
    if not settings.selected or config.pluginmanager.has_plugin("llm_matrix.summary"):
        return
    from pytest_llm_matrix.report import Summary

    summary = Summary(config, settings)
    config.pluginmanager.register(summary, "llm_matrix.summary")


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Per-test hooks are registered only when the run has model tests."""
    if not any(model_of(item) for item in items):
        return
    from pytest_llm_matrix.tracking import TestTracker, TimeoutHooks, add_timeout_marks

    settings = config.stash[SETTINGS_KEY]
    add_timeout_marks(settings, items)
    config.pluginmanager.register(TestTracker(), "llm_matrix.tracker")
    if config.pluginmanager.hasplugin("timeout"):
        config.pluginmanager.register(TimeoutHooks(), "llm_matrix.timeout")
    if not hasattr(config, "workerinput"):
        _register_summary(config, settings)


def pytest_report_header(config: pytest.Config) -> list[str] | None:
    settings = config.stash.get(SETTINGS_KEY, None)
    if settings is None or not settings.registry.models:
        return None
    lines = [
        f"llm-matrix: {len(settings.selected)} of {len(settings.registry.models)} models "
        f"(from {settings.selected_by}): {', '.join(settings.selected)}"
    ]
    lines.extend(
        f"llm-matrix: {name} skipped: {reason}" for name, reason in settings.unavailable.items()
    )
    details = [f"config: {settings.registry.source}"]
    simulated = [m.name for m in settings.models if m.needs_simulator]
    if simulated:
        details.append(f"built-in simulator for {', '.join(simulated)}")
    lines.append("llm-matrix: " + ", ".join(details))
    return lines
