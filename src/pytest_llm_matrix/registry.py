"""Load and validate the model registry: ``[tool.llm-matrix]``, ``llm-matrix.toml``, hooks.

Every mistake in a config becomes a :class:`pytest.UsageError` that names the file, the
model and the field, so a typo never surfaces as a traceback from our internals.
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Final

import pytest

from pytest_llm_matrix.models import APIS, DEFAULT_BASE_URLS, PROVIDERS, Model

CONFIG_FILENAME: Final = "llm-matrix.toml"

#: Model fields, with a checker that returns the normalized value or raises ValueError.
_Check = Callable[[Any], Any]


def _string(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("expected a non-empty string")
    return value.strip()


def _positive_number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"expected a number of seconds, got {value!r}")
    if value <= 0:
        raise ValueError(f"must be greater than 0, got {value!r}")
    return float(value)


def _positive_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"expected a whole number, got {value!r}")
    if value <= 0:
        raise ValueError(f"must be at least 1, got {value!r}")
    return value


def _price(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"expected USD per million tokens as a number, got {value!r}")
    if value < 0:
        raise ValueError(f"must not be negative, got {value!r}")
    return float(value)


def _string_list(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ValueError(f"expected a list of names, got {value!r}")
    return tuple(dict.fromkeys(v.strip() for v in value))


def _table(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"expected a table, got {value!r}")
    return dict(value)


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {value!r}")
    return value


def _choice(choices: tuple[str, ...]) -> _Check:
    def check(value: Any) -> str:
        if value not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}; got {value!r}")
        return str(value)

    return check


MODEL_FIELDS: Final[Mapping[str, _Check]] = {
    "provider": _choice(PROVIDERS),
    "model": _string,
    "api": _choice(APIS),
    "base_url": _string,
    "api_key_env": _string,
    "timeout": _positive_number,
    "max_concurrency": _positive_int,
    "rpm": _positive_int,
    "tags": _string_list,
    "input_price": _price,
    "output_price": _price,
    "params": _table,
    "required": _boolean,
    "simulate": _table,
}

TOP_LEVEL_FIELDS: Final = ("default", "groups", "max_concurrency", "models", "simulator")


@dataclasses.dataclass(frozen=True)
class Registry:
    """Every known model (in config order), the groups, and the top-level settings."""

    models: Mapping[str, Model] = dataclasses.field(default_factory=dict)
    groups: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    default: tuple[str, ...] | None = None
    max_concurrency: int | None = None
    simulator: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    source: str | None = None

    @property
    def tags(self) -> dict[str, tuple[str, ...]]:
        """Tag -> aliases carrying it, in config order."""
        found: dict[str, list[str]] = {}
        for model in self.models.values():
            for tag in model.tags:
                found.setdefault(tag, []).append(model.name)
        return {tag: tuple(names) for tag, names in found.items()}

    def to_dict(self) -> dict[str, Any]:
        return {
            "models": [m.to_dict() for m in self.models.values()],
            "groups": {k: list(v) for k, v in self.groups.items()},
            "default": None if self.default is None else list(self.default),
            "max_concurrency": self.max_concurrency,
            "simulator": dict(self.simulator),
            "source": self.source,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Registry:
        models = [Model.from_dict(m) for m in data["models"]]
        default = data["default"]
        return cls(
            models={m.name: m for m in models},
            groups={k: tuple(v) for k, v in data["groups"].items()},
            default=None if default is None else tuple(default),
            max_concurrency=data["max_concurrency"],
            simulator=data["simulator"],
            source=data["source"],
        )


def closest(word: str, candidates: Iterable[str]) -> str | None:
    """The candidate ``word`` was most likely meant to be, for "did you mean" hints."""
    import difflib  # only on the error path

    close = difflib.get_close_matches(word, list(candidates), n=1)
    return close[0] if close else None


def _suggest(word: str, candidates: Iterable[str]) -> str:
    close = closest(word, candidates)
    return f" (did you mean {close!r}?)" if close else ""


def parse_model(name: str, fields: Any, where: str) -> Model:
    """Validate one model entry; ``where`` names the file (or hook) it came from."""
    place = f"{where}: model {name!r}"
    if not isinstance(fields, dict):
        raise pytest.UsageError(f"{place}: expected a table of fields, got {fields!r}")
    values: dict[str, Any] = {}
    for key, raw in fields.items():
        check = MODEL_FIELDS.get(key)
        if check is None:
            raise pytest.UsageError(
                f"{place}: unknown field {key!r}{_suggest(key, MODEL_FIELDS)}; "
                f"valid fields: {', '.join(MODEL_FIELDS)}"
            )
        try:
            values[key] = check(raw)
        except ValueError as exc:
            raise pytest.UsageError(f"{place}: field {key!r}: {exc}") from None
    if "provider" not in values:
        raise pytest.UsageError(
            f"{place}: field 'provider' is required (one of {', '.join(PROVIDERS)})"
        )
    provider = values["provider"]
    if provider == "openai-compatible" and "base_url" not in values:
        raise pytest.UsageError(
            f"{place}: provider 'openai-compatible' needs a 'base_url' "
            "(for example http://localhost:11434/v1 for Ollama)"
        )
    if values.get("simulate") and provider != "simulator":
        raise pytest.UsageError(
            f"{place}: field 'simulate' only applies to provider 'simulator', not {provider!r}"
        )
    values.setdefault("model", name)
    values.setdefault("api", "anthropic" if provider == "anthropic" else "openai")
    if "base_url" not in values and provider in DEFAULT_BASE_URLS:
        values["base_url"] = DEFAULT_BASE_URLS[provider]
    return Model(name=name, **values)


def parse_registry(data: Mapping[str, Any], where: str) -> Registry:
    """Validate a ``[tool.llm-matrix]`` table (or the whole of an llm-matrix.toml)."""
    for key in data:
        if key not in TOP_LEVEL_FIELDS:
            raise pytest.UsageError(
                f"{where}: unknown setting {key!r}{_suggest(key, TOP_LEVEL_FIELDS)}; "
                f"valid settings: {', '.join(TOP_LEVEL_FIELDS)}"
            )
    raw_models = data.get("models", {})
    if not isinstance(raw_models, dict):
        raise pytest.UsageError(f"{where}: 'models' must be a table of model tables")
    models = {name: parse_model(name, fields, where) for name, fields in raw_models.items()}
    registry = Registry(models=models, source=where)
    return _with_settings(registry, data, where)


def _with_settings(registry: Registry, data: Mapping[str, Any], where: str) -> Registry:
    def setting(key: str, check: _Check) -> Any:
        if key not in data:
            return None
        try:
            return check(data[key])
        except ValueError as exc:
            raise pytest.UsageError(f"{where}: setting {key!r}: {exc}") from None

    raw_groups = setting("groups", _table) or {}
    groups: dict[str, tuple[str, ...]] = {}
    for group, members in raw_groups.items():
        try:
            groups[group] = _string_list(members)
        except ValueError as exc:
            raise pytest.UsageError(f"{where}: group {group!r}: {exc}") from None
    return dataclasses.replace(
        registry,
        groups=groups,
        default=setting("default", _string_list),
        max_concurrency=setting("max_concurrency", _positive_int),
        simulator=setting("simulator", _table) or {},
    )


def check_registry(registry: Registry) -> None:
    """Cross-checks that need every model known: group members, name clashes."""
    where = registry.source or "llm-matrix config"
    known = registry.models
    for group, members in registry.groups.items():
        if group in known or group == "all":
            raise pytest.UsageError(
                f"{where}: group {group!r} has the name of a model; "
                "rename the group so that --models is unambiguous"
            )
        for member in members:
            if member not in known:
                raise pytest.UsageError(
                    f"{where}: group {group!r} names unknown model {member!r}"
                    f"{_suggest(member, known)}; known models: {', '.join(known) or 'none'}"
                )
    if "all" in known:
        raise pytest.UsageError(f"{where}: 'all' is reserved and cannot name a model")


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise pytest.UsageError(f"{path}: invalid TOML: {exc}") from None
    except OSError as exc:
        raise pytest.UsageError(f"cannot read llm-matrix config {path}: {exc.strerror}") from None


def find_config(
    explicit: Path | None, rootpath: Path, inipath: Path | None
) -> tuple[Path, dict[str, Any]] | None:
    """The config table and its file: ``--llm-config``, then llm-matrix.toml, then pyproject."""
    if explicit is not None:
        data = read_toml(explicit)
        if explicit.name == "pyproject.toml":
            data = data.get("tool", {}).get("llm-matrix", {})
        return explicit, data
    beside = inipath.parent if inipath is not None else rootpath
    for folder in dict.fromkeys((beside, rootpath)):
        candidate = folder / CONFIG_FILENAME
        if candidate.is_file():
            return candidate, read_toml(candidate)
    pyproject = rootpath / "pyproject.toml"
    if pyproject.is_file():
        table = read_toml(pyproject).get("tool", {}).get("llm-matrix")
        if table is not None:
            return pyproject, table
    return None


def merge_hook_models(registry: Registry, results: Iterable[Any]) -> Registry:
    """Add models returned by ``pytest_llm_matrix_models`` implementations."""
    models = dict(registry.models)
    where = "pytest_llm_matrix_models hook"
    for result in results:
        if result is None:
            continue
        entries: Iterable[Model]
        if isinstance(result, Mapping):
            entries = [parse_model(str(n), dict(f), where) for n, f in result.items()]
        elif isinstance(result, Iterable):
            entries = list(result)
        else:
            raise pytest.UsageError(
                f"{where}: expected a dict of alias -> fields or a list of Model, got {result!r}"
            )
        for model in entries:
            if not isinstance(model, Model):
                raise pytest.UsageError(f"{where}: expected Model instances, got {model!r}")
            if model.name in models:
                raise pytest.UsageError(
                    f"{where}: model {model.name!r} is already defined"
                    f" in {registry.source or 'another hook'}"
                )
            models[model.name] = model
    return dataclasses.replace(registry, models=models)
