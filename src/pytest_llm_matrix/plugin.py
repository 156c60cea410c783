"""pytest entry point (``-p no:llm_matrix`` turns it off, as do the other names a user may
guess: ``-p no:llm-matrix``, the name on pytest's ``plugins:`` line, and the package's).

Kept thin and cheap to import: it loads in every pytest run of every project that has the
package installed. The stateful parts are classes registered by name in
``pytest_configure`` (see :mod:`pytest_llm_matrix.session`); HTTP libraries load only when
a test uses a model.
"""

from __future__ import annotations

import pytest

from pytest_llm_matrix import hookspecs, session
from pytest_llm_matrix.config.options import add_options
from pytest_llm_matrix.matrix import MARKER_HELP

#: Names that switch the plugin off with ``-p no:NAME`` besides its entry point's
#: (``llm_matrix``, which pytest itself blocks): the ``plugins:`` line shows
#: ``llm-matrix``, the package is ``pytest-llm-matrix``. pytest blocks names before it
#: loads entry points, so the plugin sees the block when it registers.
OFF_NAMES = ("llm-matrix", "pytest-llm-matrix", "pytest_llm_matrix", "pytest_llm_matrix.plugin")


def switched_off(pluginmanager: pytest.PytestPluginManager) -> bool:
    return any(pluginmanager.is_blocked(name) for name in OFF_NAMES)


def pytest_addoption(parser: pytest.Parser, pluginmanager: pytest.PytestPluginManager) -> None:
    if not switched_off(pluginmanager):
        add_options(parser)


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hookspecs)  # even when off: a conftest may implement them


@pytest.hookimpl(tryfirst=True, optionalhook=True)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    if switched_off(config.pluginmanager):
        return None
    return session.auto_workers(config)


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> int | None:
    if switched_off(config.pluginmanager):
        return None
    return session.list_models(config)


def pytest_configure(config: pytest.Config) -> None:
    if switched_off(config.pluginmanager):
        return
    config.addinivalue_line("markers", MARKER_HELP)
    if not config.option.help:
        session.configure(config)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not switched_off(config.pluginmanager):
        session.collected(config, items)


def pytest_report_header(config: pytest.Config) -> list[str] | None:
    if switched_off(config.pluginmanager):
        return None
    return session.header(config)
