"""The docs: the reference is generated from the plugin's own definitions and is current."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_reference", DOCS / "gen_reference.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_reference_is_generated_from_the_code():
    gen = generator()
    committed = (DOCS / "reference.md").read_text(encoding="utf-8")
    assert committed == gen.render(), (
        f"docs/reference.md is stale (an option, config field or the report schema changed): "
        f"run {gen.COMMAND} and commit the result"
    )


def test_the_reference_names_every_option_ini_key_and_field():
    from pytest_llm_matrix.config import registry

    gen = generator()
    text = (DOCS / "reference.md").read_text(encoding="utf-8")
    options, inis = gen.plugin_parser()
    names = [max(names, key=len) for names, _ in options]
    assert len(names) > 30
    for name in [*names, *inis, *registry.MODEL_FIELDS, *registry.TOP_LEVEL_FIELDS]:
        assert f"`{name}" in text, name


def test_a_config_field_without_a_description_stops_the_generator(monkeypatch):
    from pytest_llm_matrix.config import registry

    gen = generator()
    monkeypatch.setattr(registry, "MODEL_FIELDS", {**registry.MODEL_FIELDS, "colour": str})
    with pytest.raises(SystemExit, match="colour"):
        gen.config_section()
