"""Load and validate the model registry: ``[tool.llm-matrix]``, ``llm-matrix.toml``, hooks.

Every mistake in a config becomes a :class:`pytest.UsageError` that names the file, the
model and the field, so a typo never surfaces as a traceback from our internals.
"""

from __future__ import annotations

import dataclasses
import math
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Final

import pytest

from pytest_llm_matrix.models import APIS, DEFAULT_BASE_URLS, PROVIDERS, Model

CONFIG_FILENAME: Final = "llm-matrix.toml"

#: Model fields, with a checker that returns the normalized value or raises ValueError.
_Check = Callable[[Any], Any]

#: Bounds of the numbers a config holds (also what the README's tables say).
MIN_TIMEOUT: Final = 0.1  # a smaller one would fire inside pytest's own code
MAX_TIMEOUT: Final = 7 * 86400.0
MAX_CONCURRENCY: Final = 10_000
MAX_RPM: Final = 1_000_000
MAX_PRICE: Final = 1_000_000.0  # USD per million tokens
#: What a name in the selection syntax (an alias, a group, a tag) may not hold.
_NOT_IN_NAMES: Final = re.compile(r"[\s,\[\]]|[^\x20-\x7e\xa0-\U0010ffff]")
NAME_RULE: Final = (
    "names are used in --models and test ids: no spaces, commas, brackets or control "
    "characters, not starting with '-', and not 'all'"
)
_ENV_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _string(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"expected a non-empty string, got {value!r}")
    if not value.isprintable():
        raise ValueError(f"holds a control character: {value!r}")
    return value.strip()


def _number(value: Any, what: str, low: float, high: float, *, integer: bool = False) -> Any:
    """A number of the right kind within [low, high]; nan, inf and huge values are refused
    with the range in the message."""
    kind = "a whole number" if integer else what
    wrong_type = not isinstance(value, int) if integer else not isinstance(value, int | float)
    if isinstance(value, bool) or wrong_type:
        raise ValueError(f"expected {kind}, got {value!r}")
    if not (math.isfinite(value) and low <= value <= high):
        raise ValueError(f"must be from {low:g} to {high:g}, got {value!r}")
    return value if integer else float(value)


def _seconds(value: Any) -> float:
    return float(_number(value, "a number of seconds", MIN_TIMEOUT, MAX_TIMEOUT))


def _cap(value: Any) -> int:
    return int(_number(value, "", 1, MAX_CONCURRENCY, integer=True))


def _rpm(value: Any) -> int:
    return int(_number(value, "", 1, MAX_RPM, integer=True))


def _price(value: Any) -> float:
    return float(_number(value, "USD per million tokens as a number", 0, MAX_PRICE))


def name_problem(name: object) -> str | None:
    """Why ``name`` cannot be an alias, group or tag, or None."""
    if not isinstance(name, str) or not name:
        return f"expected a non-empty name, got {name!r}"
    if _NOT_IN_NAMES.search(name) or name.startswith("-") or name == "all":
        return f"{name!r} cannot be used: {NAME_RULE}"
    return None


def _name(value: Any) -> str:
    if (problem := name_problem(value)) is not None:
        raise ValueError(problem)
    return str(value)


def _names(value: Any) -> tuple[str, ...]:
    """A list of names (aliases, groups or tags); a single string is a list of one."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise ValueError(f"expected a list of names, got {value!r}")
    return tuple(dict.fromkeys(_name(v.strip() if isinstance(v, str) else v) for v in value))


def _url(value: Any) -> str:
    import urllib.parse  # only when a model sets one

    text = _string(value)
    parts = urllib.parse.urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname or " " in text:
        raise ValueError(f"expected an http:// or https:// URL with a host, got {value!r}")
    return text


def _env_name(value: Any) -> str:
    if not isinstance(value, str) or not _ENV_NAME.fullmatch(value):
        raise ValueError(
            f"expected the name of an environment variable (letters, digits, _), got {value!r}"
        )
    return value


def _table(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"expected a table, got {value!r}")
    return dict(value)


def _params(value: Any) -> dict[str, Any]:
    """Request parameters: what JSON can carry (no nan or inf, no TOML dates)."""
    table = _table(value)

    def check(item: Any, where: str) -> None:
        if isinstance(item, float) and not math.isfinite(item):
            raise ValueError(f"{where}: {item!r} is not a number JSON can carry")
        if isinstance(item, dict):
            for key, inner in item.items():
                check(inner, f"{where}.{key}")
        elif isinstance(item, list):
            for index, inner in enumerate(item):
                check(inner, f"{where}[{index}]")
        elif item is not None and not isinstance(item, str | int | float | bool):
            raise ValueError(f"{where}: {item!r} cannot be sent as JSON")

    for key, item in table.items():
        check(item, key)
    return table


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
    "base_url": _url,
    "api_key_env": _env_name,
    "timeout": _seconds,
    "max_concurrency": _cap,
    "rpm": _rpm,
    "tags": _names,
    "input_price": _price,
    "output_price": _price,
    "params": _params,
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
    if (problem := name_problem(name)) is not None:
        raise pytest.UsageError(f"{where}: model alias {problem}")
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


def parse_registry(data: Any, where: str) -> Registry:
    """Validate a ``[tool.llm-matrix]`` table (or the whole of an llm-matrix.toml)."""
    if not isinstance(data, dict):
        raise pytest.UsageError(f"{where}: expected a table of settings, got {data!r}")
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
            groups[_name(group)] = _names(members)
        except ValueError as exc:
            raise pytest.UsageError(f"{where}: group {group!r}: {exc}") from None
    return dataclasses.replace(
        registry,
        groups=groups,
        default=setting("default", _selection),
        max_concurrency=setting("max_concurrency", _cap),
        simulator=setting("simulator", _table) or {},
    )


def _selection(value: Any) -> tuple[str, ...]:
    """``default``: a selection as a list (names, and ``-name`` to exclude)."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        raise ValueError(f"expected a non-empty list of names, got {value!r}")
    return tuple(_string(item) for item in value)


def check_registry(registry: Registry) -> None:
    """Cross-checks that need every model known: group members, name clashes."""
    where = registry.source or "llm-matrix config"
    known = registry.models
    for group, members in registry.groups.items():
        if group in known:
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


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise pytest.UsageError(f"{path}: invalid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise pytest.UsageError(f"{path}: not a TOML file (not UTF-8 text)") from None
    except OSError as exc:
        raise pytest.UsageError(f"cannot read llm-matrix config {path}: {exc.strerror}") from None


def _tool_table(path: Path, data: Mapping[str, Any]) -> dict[str, Any] | None:
    """``[tool.llm-matrix]`` of a pyproject.toml (None when absent), checked to be a table."""
    tool = data.get("tool", {})
    if not isinstance(tool, dict):
        raise pytest.UsageError(f"{path}: 'tool' must be a table, got {tool!r}")
    table = tool.get("llm-matrix")
    if table is not None and not isinstance(table, dict):
        raise pytest.UsageError(
            f"{path}: [tool.llm-matrix] must be a table of settings, got {table!r}"
        )
    return table


def find_config(
    explicit: Path | None, rootpath: Path, inipath: Path | None
) -> tuple[Path, dict[str, Any]] | None:
    """The config table and its file: ``--llm-config``, then llm-matrix.toml, then pyproject."""
    if explicit is not None:
        data = read_toml(explicit)
        if explicit.name == "pyproject.toml":
            data = _tool_table(explicit, data) or {}
        return explicit, data
    beside = inipath.parent if inipath is not None else rootpath
    for folder in dict.fromkeys((beside, rootpath)):
        candidate = folder / CONFIG_FILENAME
        if candidate.is_file():
            return candidate, read_toml(candidate)
    pyproject = rootpath / "pyproject.toml"
    if pyproject.is_file():
        table = _tool_table(pyproject, read_toml(pyproject))
        if table is not None:
            return pyproject, table
    return None


def _checked_instance(model: Any, where: str) -> Model:
    """A ``Model`` built in code, put through the same checks as a config table."""
    if not isinstance(model, Model):
        raise pytest.UsageError(f"{where}: expected Model instances, got {model!r}")
    fields = {k: v for k, v in model.to_dict().items() if k != "name" and v is not None}
    fields["tags"], fields["params"] = list(model.tags), dict(model.params)
    fields["simulate"] = dict(model.simulate)
    return parse_model(model.name, fields, where)


def merge_hook_models(registry: Registry, results: Iterable[Any]) -> Registry:
    """Add models returned by ``pytest_llm_matrix_models`` implementations."""
    models = dict(registry.models)
    where = "pytest_llm_matrix_models hook"
    for result in results:
        if result is None:
            continue
        entries: list[Model]
        if isinstance(result, Mapping):
            entries = [parse_model(n, f, where) for n, f in result.items()]
        elif isinstance(result, Iterable) and not isinstance(result, str | bytes):
            entries = [_checked_instance(model, where) for model in result]
        else:
            raise pytest.UsageError(
                f"{where}: expected a dict of alias -> fields or a list of Model, got {result!r}"
            )
        for model in entries:
            if model.name in models:
                raise pytest.UsageError(
                    f"{where}: model {model.name!r} is already defined"
                    f" in {registry.source or 'another hook'}"
                )
            models[model.name] = model
    return dataclasses.replace(registry, models=models)
