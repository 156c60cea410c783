"""Hooks other plugins and conftest.py files can implement (added in ``pytest_addhooks``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pytest_llm_matrix.config.models import Model


@pytest.hookspec
def pytest_llm_matrix_models(
    config: pytest.Config,
) -> Mapping[str, Mapping[str, Any]] | Iterable[Model] | None:
    """Register models in code, next to (or instead of) the TOML config.

    Return a dict of alias -> fields, with the same fields and checks as a
    ``[tool.llm-matrix.models.<alias>]`` table, or a list of
    :class:`pytest_llm_matrix.Model`. Every implementation is called once, in the
    controller, before collection; xdist workers receive the result. Implement it in a
    plugin or in the rootdir's ``conftest.py`` (conftest files deeper in the tree are
    loaded too late to register models).

    Example::

        def pytest_llm_matrix_models(config):
            return {
                "local-llama": {
                    "provider": "openai-compatible",
                    "base_url": "http://localhost:11434/v1",
                    "model": "llama3.2",
                    "tags": ["local"],
                }
            }
    """


@pytest.hookspec
def pytest_llm_matrix_report(config: pytest.Config, report: dict[str, Any]) -> None:
    """Edit or ship the run's report before it is written.

    Called once, in the controller, at the end of a session that ran model tests, whether
    or not ``--llm-report`` was given. ``report`` is the JSON document (plain data, see
    ``report/report_schema.json`` in the package); edit it in place to change what is written.

    Example::

        import json
        import os

        def pytest_llm_matrix_report(config, report):
            report["build"] = os.environ.get("CI_BUILD_ID")  # in the file --llm-report writes
            with open("dashboard-upload.json", "w") as out:  # or send it to your dashboard
                json.dump(report, out)
    """
