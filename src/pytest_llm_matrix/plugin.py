"""pytest entry point (``-p no:llm_matrix`` turns it off).

Kept thin and cheap to import: it loads in every pytest run of every project that has the
package installed. The stateful parts are classes registered by name in
``pytest_configure``; HTTP libraries load only when a test uses a model.
"""

from __future__ import annotations

from typing import Final

import pytest

from pytest_llm_matrix import fixtures, hookspecs
from pytest_llm_matrix.matrix import MARKER_HELP, Matrix
from pytest_llm_matrix.options import WORKERINPUT_KEY, Settings, add_options, resolve_settings

SETTINGS_KEY: Final = pytest.StashKey[Settings]()


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hookspecs)


def _settings(config: pytest.Config) -> Settings:
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None and WORKERINPUT_KEY in workerinput:
        return Settings.from_wire(workerinput[WORKERINPUT_KEY])
    settings = resolve_settings(config)
    if not config.option.collectonly:
        from pytest_llm_matrix.simulation import start_simulator

        settings = start_simulator(config, settings)
    return settings


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER_HELP)
    if config.option.help:
        return
    settings = _settings(config)
    config.stash[SETTINGS_KEY] = settings
    config.pluginmanager.register(fixtures, "llm_matrix.fixtures")
    config.pluginmanager.register(Matrix(settings), "llm_matrix.matrix")
    if hasattr(config, "workerinput"):
        return
    if config.pluginmanager.hasplugin("xdist"):
        from pytest_llm_matrix.xdist import XdistHooks

        config.pluginmanager.register(XdistHooks(settings), "llm_matrix.xdist")
    if settings.selected:
        from pytest_llm_matrix.report import Summary

        optional = [m.name for m in settings.models if not m.required]
        summary = Summary(config, settings.selected, settings.unavailable, optional)
        config.pluginmanager.register(summary, "llm_matrix.summary")


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
    if settings.simulator_url:
        details.append(f"simulator: {settings.simulator_url}")
    lines.append("llm-matrix: " + ", ".join(details))
    return lines
