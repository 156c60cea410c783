"""Fixtures of the matrix rather than of a request: which run of a repeated test this is,
and syrupy snapshots kept per model (``llm_snapshot``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pytest_llm_matrix.config.models import Model
    from pytest_llm_matrix.matrix.repeats import RunSpec


@pytest.fixture
def _llm_matrix_run(request: pytest.FixtureRequest) -> RunSpec:
    """Which run of a repeated test this is (internal: the plugin parametrizes it)."""
    spec: RunSpec = request.param
    return spec


#: The folder, beside a test module, where ``llm_snapshot`` keeps each model's snapshots.
SNAPSHOTS_BY_MODEL = "__snapshots_by_model__"
_SNAPSHOT_EXTENSIONS: dict[tuple[type, str], type] = {}


@pytest.fixture
def llm_snapshot(llm_model: Model, request: pytest.FixtureRequest) -> Any:
    """syrupy's ``snapshot``, kept per model: ``__snapshots_by_model__/<alias>/`` beside the
    test module. A run of some models reads and writes only theirs: the other models'
    snapshots are neither reported unused nor deleted by ``--snapshot-update``."""
    if not request.config.pluginmanager.hasplugin("syrupy"):
        pytest.fail(
            f"{request.node.nodeid}: llm_snapshot compares with syrupy snapshots; "
            "install syrupy (pip install syrupy)",
            pytrace=False,
        )
    snapshot = request.getfixturevalue("snapshot")
    return snapshot.use_extension(_snapshot_extension(type(snapshot.extension), llm_model.name))


def _snapshot_extension(base: type, alias: str) -> type:
    """The session's snapshot extension (syrupy's default, or ``--snapshot-default-
    extension``), storing under the model's own folder, with a repeated test's runs
    sharing one snapshot. One class per model: syrupy looks for unused snapshots only in
    the folders of the extensions a run used."""
    key = (base, alias)
    if key not in _SNAPSHOT_EXTENSIONS:
        from pathlib import Path
        from urllib.parse import quote

        # lazy: repeats load only when a model test is collected
        from pytest_llm_matrix.matrix.repeats import without_run

        # one folder per alias, none shared: percent-encoded (injective), and never "." or ".."
        folder = quote(alias, safe="")
        if set(folder) == {"."}:
            folder = folder.replace(".", "%2E")

        class ByModel(base):  # type: ignore[misc]
            @classmethod
            def dirname(cls, *, test_location: Any) -> str:
                path = Path(super().dirname(test_location=test_location))
                test_dir = Path(test_location.filepath).parent
                try:  # __snapshots__/<rest> -> __snapshots_by_model__/<alias>/<rest>
                    rest = path.relative_to(test_dir / "__snapshots__")
                except ValueError:
                    return str(path)  # an extension that keeps its own folder
                return str(test_dir / SNAPSHOTS_BY_MODEL / folder / rest)

            @classmethod
            def get_snapshot_name(cls, *, test_location: Any, index: Any = 0) -> str:
                name = super().get_snapshot_name(test_location=test_location, index=index)
                return without_run(name)  # every run of a repeated test: one snapshot

        ByModel.__name__ = f"{base.__name__}ByModel"
        _SNAPSHOT_EXTENSIONS[key] = ByModel
    return _SNAPSHOT_EXTENSIONS[key]
