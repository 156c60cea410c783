"""pytest entry point (``-p no:llm_matrix`` turns it off).

Kept thin and cheap to import: it loads in every pytest run of every project that has the
package installed. The stateful parts are classes registered by name in
``pytest_configure`` (see :mod:`pytest_llm_matrix.session`); HTTP libraries load only when
a test uses a model.
"""

from __future__ import annotations

import pytest

from pytest_llm_matrix import hookspecs, session
from pytest_llm_matrix.matrix import MARKER_HELP
from pytest_llm_matrix.options import add_options


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hookspecs)


@pytest.hookimpl(tryfirst=True, optionalhook=True)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    return session.auto_workers(config)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER_HELP)
    if not config.option.help:
        session.configure(config)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    session.collected(config, items)


def pytest_report_header(config: pytest.Config) -> list[str] | None:
    return session.header(config)
