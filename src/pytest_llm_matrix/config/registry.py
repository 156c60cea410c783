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

from pytest_llm_matrix.config.checks import (
    CONCURRENCY,
    PRICE,
    RPM,
    TIMEOUT,
    name_problem,
    shown,
)
from pytest_llm_matrix.config.models import APIS, AZURE_AUTH, DEFAULT_BASE_URLS, PROVIDERS, Model

CONFIG_FILENAME: Final = "llm-matrix.toml"

#: Model fields, with a checker that returns the normalized value or raises ValueError.
_Check = Callable[[Any], Any]


def _string(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"expected a non-empty string, got {shown(value)}")
    if not value.isprintable():
        raise ValueError(f"contains a control or unprintable character: {shown(value)}")
    return value.strip()


def _name(value: Any, what: str = "name") -> str:
    """An alias, group or tag: a name of the selection syntax."""
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a string, got {shown(value)}")
    problem = name_problem(value)
    if problem is not None:
        raise ValueError(f"invalid {what} {shown(value)}: {problem}")
    return value


#: The summary table's last row: no model may be called so.
TOTAL_ROW: Final = "total"


def _alias(value: Any) -> str:
    """A model's alias: a name (see :func:`_name`) that pytest keeps as it is in test ids.
    pytest escapes non-ASCII characters and backslashes there (``modèle`` becomes
    ``mod\\xe8le``), and the results of such an id could not be matched to its model."""
    name = _name(value, "alias")
    if name == TOTAL_ROW:
        raise ValueError(
            f"invalid alias {shown(name)}: '{TOTAL_ROW}' is reserved for the summary's row "
            "of all models"
        )
    odd = next((char for char in name if not char.isascii() or char == "\\"), None)
    if odd is not None:
        said = "is a backslash" if odd == "\\" else "is not ASCII"
        escaped = name.encode("unicode_escape").decode("ascii")
        raise ValueError(
            f"invalid alias {shown(name)}: {odd!r} {said}, which pytest escapes in test ids "
            f"(test_x[{escaped}]); use printable ASCII characters other than whitespace, "
            "'\\', ',', '[' and ']'"
        )
    return name


def _tags(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple):
        raise ValueError(f"expected a list of tags, got {shown(value)}")
    return tuple(dict.fromkeys(_name(v, "tag") for v in value))


def _selection(value: Any) -> tuple[str, ...]:
    """A selection as a list of expressions (``["all", "-slow"]``), read by the selection
    syntax later, once every model is known."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ValueError(f"expected a list of model names, got {shown(value)}")
    return tuple(dict.fromkeys(v.strip() for v in value))


def _env_name(value: Any) -> str:
    name = _string(value)
    if "=" in name or any(char.isspace() for char in name):
        raise ValueError(f"expected an environment variable name, got {shown(value)}")
    return name


#: The characters of an HTTP header's name (RFC 9110's token).
_TOKEN: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def _header_name(value: Any) -> str:
    """A response header's name, lower-cased; "" reads none."""
    if isinstance(value, str) and value == "":
        return ""
    if not isinstance(value, str) or not _TOKEN.fullmatch(value):
        raise ValueError(
            f"expected an HTTP header name like 'x-gateway-cost' (or \"\" for none), "
            f"got {shown(value)}"
        )
    return value.lower()


def _field_path(value: Any) -> str:
    """A dotted field of an answer's JSON (``usage.cost``); "" reads none."""
    if isinstance(value, str) and value == "":
        return ""
    if (
        not isinstance(value, str)
        or not value.isprintable()
        or not all(part.strip() == part and part for part in value.split("."))
    ):
        raise ValueError(
            f"expected a dotted field name like 'usage.cost' (or \"\" for none), got {shown(value)}"
        )
    return value


#: Headers the plugin sets itself (or the library does): a model's ``headers`` may not.
_OWN_HEADERS: Final = frozenset(
    {
        "authorization", "x-api-key", "api-key", "content-type", "content-length", "host",
        "anthropic-version", "transfer-encoding", "connection", "user-agent",
    }
)  # fmt: skip


def _headers(value: Any) -> dict[str, Any]:
    """Extra request headers: ``{"X-Title" = "my tests", "X-Team" = {env = "TEAM_TOKEN"}}``."""
    if not isinstance(value, Mapping):
        raise ValueError(
            f'expected a table like {{ "X-Title" = "evals", "X-Team" = {{ env = "TEAM_KEY" }} }}, '
            f"got {shown(value)}"
        )
    headers: dict[str, Any] = {}
    for name, item in value.items():
        if not isinstance(name, str) or not _TOKEN.fullmatch(name):
            raise ValueError(f"{shown(name)} is not an HTTP header name")
        if name.lower() in _OWN_HEADERS:
            where_key = " (the key goes in the variable api_key_env names)" * (
                name.lower() in ("authorization", "x-api-key", "api-key")
            )
            raise ValueError(f"{name!r} is set by the plugin or its HTTP library{where_key}")
        if any(name.lower() == seen.lower() for seen in headers):
            raise ValueError(f"{name!r} is given twice (header names ignore case)")
        if isinstance(item, Mapping):
            if set(item) != {"env"}:
                raise ValueError(
                    f'{name!r}: expected a string or {{ env = "VARIABLE" }}, got {shown(item)}'
                )
            try:
                headers[name] = {"env": _env_name(item["env"])}
            except ValueError as exc:
                raise ValueError(f"{name!r}: env: {exc}") from None
        elif isinstance(item, str) and item.isascii() and item.isprintable() and item.strip():
            headers[name] = item.strip()
        else:
            raise ValueError(
                f'{name!r}: expected printable ASCII text or {{ env = "VARIABLE" }}, '
                f"got {shown(item)}"
            )
    return headers


#: An Azure OpenAI deployment's name, as it appears in its paths.
_DEPLOYMENT: Final = re.compile(r"[A-Za-z0-9._-]{1,64}")
#: An ``api-version``: ``2024-10-21``, ``2025-04-01-preview``, ``preview``.
_API_VERSION: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9.\-]{0,39}")


def _api_version(value: Any) -> str:
    if not isinstance(value, str) or not _API_VERSION.fullmatch(value):
        raise ValueError(f"expected an Azure api-version like '2024-10-21', got {shown(value)}")
    return value


def _base_url(value: Any) -> str:
    """``http(s)://host[:port][/path]``: the plugin appends the API's paths to it."""
    from urllib.parse import urlsplit  # only for configs that set a base_url

    text = _string(value)
    if "@" in text.partition("://")[2].partition("/")[0]:  # before any message shows it
        raise ValueError("must not hold credentials; put the key in the variable api_key_env names")
    example = "like http://localhost:11434/v1"
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018  (raises ValueError for a bad port)
    except ValueError:
        raise ValueError(f"expected an http(s) URL {example}, got {shown(value)}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"expected an http(s) URL {example}, got {shown(value)}")
    if any(char.isspace() for char in text):
        raise ValueError(f"expected an http(s) URL without spaces, got {shown(value)}")
    if parts.fragment or parts.query:
        raise ValueError(f"expected a base URL without '?' or '#' parts, got {shown(value)}")
    return text


def _data(value: Any, path: str, finite: bool) -> Any:
    """Plain TOML-like data: under xdist it goes to the workers, which take builtins only
    (a datetime from TOML would crash the session). ``finite``: no NaN or infinity either,
    for data sent in JSON request bodies."""
    if isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        if finite and not math.isfinite(value):
            raise ValueError(f"{path or 'value'}: expected a finite number, got {value!r}")
        return value
    if isinstance(value, list | tuple):
        return [_data(item, f"{path}[{index}]", finite) for index, item in enumerate(value)]
    if isinstance(value, Mapping):
        for key in value:
            if not isinstance(key, str):
                raise ValueError(f"{path or 'table'}: keys must be strings, got {shown(key)}")
        return {
            key: _data(item, f"{path}.{key}" if path else key, finite)
            for key, item in value.items()
        }
    raise ValueError(
        f"{path or 'value'}: expected a string, number, boolean, array or table, "
        f"got {shown(value)} ({type(value).__name__})"
    )


def _table(value: Any, finite: bool = False) -> dict[str, Any]:
    """A table of plain data (the simulator's knobs: its own parser checks their values)."""
    if not isinstance(value, Mapping):
        raise ValueError(f"expected a table, got {shown(value)}")
    return dict(_data(value, "", finite))


def _params(value: Any) -> dict[str, Any]:
    """Request parameters: they go into JSON request bodies, where NaN is invalid."""
    return _table(value, finite=True)


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {shown(value)}")
    return value


def _choice(choices: tuple[str, ...]) -> _Check:
    def check(value: Any) -> str:
        if not isinstance(value, str) or value not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}; got {shown(value)}")
        return value

    return check


MODEL_FIELDS: Final[Mapping[str, _Check]] = {
    "provider": _choice(PROVIDERS),
    "model": _string,
    "api": _choice(APIS),
    "base_url": _base_url,
    "api_key_env": _env_name,
    "timeout": TIMEOUT.check,
    "max_concurrency": CONCURRENCY.check,
    "rpm": RPM.check,
    "tags": _tags,
    "input_price": PRICE.check,
    "output_price": PRICE.check,
    "price_as": _string,
    "cost_header": _header_name,
    "cost_field": _field_path,
    "params": _params,
    "headers": _headers,
    "api_version": _api_version,
    "auth": _choice(AZURE_AUTH),
    "required": _boolean,
    "simulate": _table,
}

TOP_LEVEL_FIELDS: Final = (
    "auxiliary",
    "cassettes",
    "check_keys",
    "coordinator",
    "default",
    "groups",
    "judge",
    "max_concurrency",
    "models",
    "record",
    "record_ignore",
    "simulator",
)
#: Record and replay (see :mod:`pytest_llm_matrix.calls.recording`): the modes, and the
#: body fields left out of a request's match unless configured otherwise.
RECORD_MODES: Final = ("off", "replay", "new", "all", "prune")
DEFAULT_RECORD_IGNORE: Final = ("user", "metadata")


#: ``[tool.llm-matrix.auxiliary]``: model ids the code under test uses for side jobs
#: (embeddings, a judge), never rewritten to the model under test, and where they go.
AUXILIARY_FIELDS: Final = ("models", "routes")


def _model_ids(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise ValueError(f"expected a list of model ids, got {shown(value)}")
    return tuple(dict.fromkeys(_string(v) for v in value))


def _auxiliary(value: Any) -> tuple[tuple[str, ...], dict[str, str]]:
    """(every auxiliary model id, id -> the alias its requests go to)."""
    if not isinstance(value, Mapping):
        raise ValueError(f"expected a table with 'models' and 'routes', got {shown(value)}")
    for key in value:
        if key not in AUXILIARY_FIELDS:
            raise ValueError(
                f"unknown field {shown(key)}{suggest(str(key), AUXILIARY_FIELDS)}; valid "
                f"fields: {', '.join(AUXILIARY_FIELDS)}"
            )
    ids = _model_ids(value.get("models", []))
    raw_routes = value.get("routes", {})
    if not isinstance(raw_routes, Mapping):
        raise ValueError(f"'routes': expected a table of model id = alias, got {shown(raw_routes)}")
    routes: dict[str, str] = {}
    for model_id, alias in raw_routes.items():
        try:
            routes[_string(model_id)] = _name(alias, "alias")
        except ValueError as exc:
            raise ValueError(f"'routes': {shown(model_id)}: {exc}") from None
    return tuple(dict.fromkeys([*ids, *routes])), routes


def field_names(value: Any) -> tuple[str, ...]:
    """Body fields, top-level (``user``) or nested (``metadata.trace_id``)."""
    if not isinstance(value, list) or not all(
        isinstance(v, str) and v.strip() and all(part.strip() for part in v.split("."))
        for v in value
    ):
        raise ValueError(f"expected a list of field names like 'user' or 'a.b', got {shown(value)}")
    return tuple(dict.fromkeys(v.strip() for v in value))


@dataclasses.dataclass(frozen=True)
class Registry:
    """Every known model (in config order), the groups, and the top-level settings."""

    models: Mapping[str, Model] = dataclasses.field(default_factory=dict)
    groups: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    default: tuple[str, ...] | None = None
    max_concurrency: int | None = None
    simulator: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    source: str | None = None
    record: str | None = None  # a mode of RECORD_MODES
    cassettes: str | None = None  # a folder, absolute once the config file is known
    record_ignore: tuple[str, ...] | None = None
    coordinator: str | None = None  # a redis:// URL (see pytest_llm_matrix.calls.redis_coordinator)
    #: model ids never rewritten to the model under test (see pytest_llm_matrix.adoption)
    auxiliary: tuple[str, ...] = ()
    routes: Mapping[str, str] = dataclasses.field(default_factory=dict)  # id -> alias
    check_keys: bool | None = None  # see pytest_llm_matrix.calls.keycheck
    judge: str | None = None  # the alias of the model that grades answers (llm_judge)

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
            "record": self.record,
            "cassettes": self.cassettes,
            "record_ignore": None if self.record_ignore is None else list(self.record_ignore),
            "coordinator": self.coordinator,
            "auxiliary": list(self.auxiliary),
            "routes": dict(self.routes),
            "check_keys": self.check_keys,
            "judge": self.judge,
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
            record=data["record"],
            cassettes=data["cassettes"],
            record_ignore=None if data["record_ignore"] is None else tuple(data["record_ignore"]),
            coordinator=data["coordinator"],
            auxiliary=tuple(data["auxiliary"]),
            routes=dict(data["routes"]),
            check_keys=data["check_keys"],
            judge=data["judge"],
        )


def closest(word: str, candidates: Iterable[str]) -> str | None:
    """The candidate ``word`` was most likely meant to be, for "did you mean" hints."""
    import difflib  # only on the error path

    close = difflib.get_close_matches(word, list(candidates), n=1)
    return close[0] if close else None


def suggest(word: str, candidates: Iterable[str]) -> str:
    close = closest(word, candidates)
    return f" (did you mean {close!r}?)" if close else ""


def parse_model(name: Any, fields: Any, where: str) -> Model:
    """Validate one model entry; ``where`` names the file (or hook) it came from."""
    try:
        _alias(name)
    except ValueError as exc:
        raise pytest.UsageError(f"{where}: model: {exc}") from None
    place = f"{where}: model {name!r}"
    if not isinstance(fields, Mapping):
        raise pytest.UsageError(f"{place}: expected a table of fields, got {shown(fields)}")
    values: dict[str, Any] = {}
    for key, raw in fields.items():
        check = MODEL_FIELDS.get(key)
        if check is None:
            hint = suggest(key, MODEL_FIELDS) if isinstance(key, str) else ""
            raise pytest.UsageError(
                f"{place}: unknown field {shown(key)}{hint}; "
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
    if provider == "azure-openai":
        _check_azure({"model": name, **values}, place)
    else:
        for azure_only in ("api_version", "auth"):
            if azure_only in values:
                raise pytest.UsageError(
                    f"{place}: field {azure_only!r} only applies to provider 'azure-openai', "
                    f"not {provider!r}"
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


def _check_azure(values: Mapping[str, Any], place: str) -> None:
    """An ``azure-openai`` model: its resource's endpoint, the OpenAI API."""
    endpoint = values.get("base_url")
    if endpoint is None:
        raise pytest.UsageError(
            f"{place}: provider 'azure-openai' needs a 'base_url': the resource's endpoint, "
            "like https://my-resource.openai.azure.com"
        )
    if endpoint.rstrip("/").endswith(("/openai", "/openai/v1")) or "/openai/deployments" in (
        endpoint
    ):
        raise pytest.UsageError(
            f"{place}: field 'base_url': the resource's endpoint without the API's path "
            f"(the plugin adds /openai/v1, or /openai/deployments/<model> with api_version), "
            f"got {endpoint!r}"
        )
    if values.get("api", "openai") != "openai":
        raise pytest.UsageError(f"{place}: provider 'azure-openai' speaks the 'openai' API")
    deployment = values["model"]
    if not _DEPLOYMENT.fullmatch(deployment) or not deployment.strip("."):
        raise pytest.UsageError(
            f"{place}: field 'model': an Azure deployment's name (letters, digits, '.', '_' "
            f"and '-', at most 64), got {deployment!r}"
        )
    if values.get("auth") == "entra" and "api_key_env" not in values:
        raise pytest.UsageError(
            f"{place}: auth 'entra' needs 'api_key_env': the variable that holds the token"
        )


def parse_registry(data: Any, where: str) -> Registry:
    """Validate a ``[tool.llm-matrix]`` table (or the whole of an llm-matrix.toml)."""
    if not isinstance(data, Mapping):
        raise pytest.UsageError(
            f"{where}: expected a table of llm-matrix settings, got {shown(data)}"
        )
    for key in data:
        if key not in TOP_LEVEL_FIELDS:
            raise pytest.UsageError(
                f"{where}: unknown setting {key!r}{suggest(key, TOP_LEVEL_FIELDS)}; "
                f"valid settings: {', '.join(TOP_LEVEL_FIELDS)}"
            )
    raw_models = data.get("models", {})
    if not isinstance(raw_models, Mapping):
        raise pytest.UsageError(
            f"{where}: setting 'models': expected a table of model tables, got {shown(raw_models)}"
        )
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
            _name(group, "group name")
            groups[group] = _selection(members)
        except ValueError as exc:
            raise pytest.UsageError(f"{where}: group {group!r}: {exc}") from None
    auxiliary, routes = setting("auxiliary", _auxiliary) or ((), {})
    return dataclasses.replace(
        registry,
        auxiliary=auxiliary,
        routes=routes,
        groups=groups,
        default=setting("default", _selection),
        max_concurrency=setting("max_concurrency", CONCURRENCY.check),
        simulator=setting("simulator", _table) or {},
        record=setting("record", _choice(RECORD_MODES)),
        cassettes=setting("cassettes", _string),
        record_ignore=setting("record_ignore", field_names),
        coordinator=setting("coordinator", _string),
        check_keys=setting("check_keys", _boolean),
        judge=setting("judge", _alias),
    )


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
                    f"{suggest(member, known)}; known models: {', '.join(known) or 'none'}"
                )
    for model_id, alias in registry.routes.items():
        if alias not in known:
            raise pytest.UsageError(
                f"{where}: auxiliary route {model_id!r} names unknown model {alias!r}"
                f"{suggest(alias, known)}; known models: {', '.join(known) or 'none'}"
            )
    for tag, owners in registry.tags.items():
        if tag in known or tag in registry.groups:
            kind = "model" if tag in known else "group"
            raise pytest.UsageError(
                f"{where}: model {owners[0]!r}: tag {tag!r} has the name of a {kind}, which "
                "--models would pick instead; rename the tag"
            )


def file_problem(path: Path) -> str | None:
    """Why ``path`` cannot be read as a config file, or None. Only regular files: reading
    a FIFO would block and a device may never end."""
    if "\0" in str(path):
        return "the path contains a NUL character"
    if path.is_dir():
        return f"{path} is a directory; give the path of a TOML file"
    if not path.exists():
        return f"no such file: {path}"
    if not path.is_file():
        return f"{path} is not a regular file; give the path of a TOML file"
    return None


def read_toml(path: Path) -> dict[str, Any]:
    """A TOML file's table; an unreadable or malformed file is a usage error."""
    problem = file_problem(path)
    if problem is not None:
        raise pytest.UsageError(f"cannot read llm-matrix config: {problem}")
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise pytest.UsageError(f"{path}: invalid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise pytest.UsageError(
            f"{path}: not a TOML file: not UTF-8 text (byte {exc.object[exc.start]:#04x} "
            f"at offset {exc.start})"
        ) from None
    except ValueError as exc:  # an integer too long to read, for one
        raise pytest.UsageError(f"{path}: invalid TOML: {exc}") from None
    except RecursionError:
        raise pytest.UsageError(f"{path}: invalid TOML: nested too deeply") from None
    except OSError as exc:
        raise pytest.UsageError(f"cannot read llm-matrix config {path}: {exc.strerror}") from None


def _tool_table(data: Mapping[str, Any], path: Path) -> Any:
    """``[tool.llm-matrix]`` of a pyproject.toml, or None."""
    tool = data.get("tool")
    if tool is None:
        return None
    if not isinstance(tool, Mapping):
        raise pytest.UsageError(f"{path}: 'tool' must be a table, got {shown(tool)}")
    return tool.get("llm-matrix")


def find_config(
    explicit: Path | None, rootpath: Path, inipath: Path | None
) -> tuple[Path, Any] | None:
    """The config table and its file: ``--llm-config``, then llm-matrix.toml, then pyproject.
    The table is as read: :func:`parse_registry` checks that it is one."""

    if explicit is not None:
        data: Any = read_toml(explicit)
        if explicit.name == "pyproject.toml":
            data = _tool_table(data, explicit)
        return explicit, {} if data is None else data
    beside = inipath.parent if inipath is not None else rootpath
    for folder in dict.fromkeys((beside, rootpath)):
        candidate = folder / CONFIG_FILENAME
        if candidate.is_file():
            return candidate, read_toml(candidate)
    pyproject = rootpath / "pyproject.toml"
    if pyproject.is_file():
        table = _tool_table(read_toml(pyproject), pyproject)
        if table is not None:
            return pyproject, table
    return None


def merge_hook_models(registry: Registry, results: Iterable[Any]) -> Registry:
    """Add models returned by ``pytest_llm_matrix_models`` implementations; a ``Model``
    built in code is checked like a TOML table."""
    models = dict(registry.models)
    where = "pytest_llm_matrix_models hook"
    for result in results:
        if result is None:
            continue
        if isinstance(result, Mapping):
            entries = [parse_model(name, fields, where) for name, fields in result.items()]
        elif isinstance(result, Iterable) and not isinstance(result, str | bytes):
            entries = [_checked(model, where) for model in result]
        else:
            raise pytest.UsageError(
                f"{where}: expected a dict of alias -> fields or a list of Model, "
                f"got {shown(result)}"
            )
        for model in entries:
            if model.name in models:
                raise pytest.UsageError(
                    f"{where}: model {model.name!r} is already defined"
                    f" in {registry.source or 'another hook'}"
                )
            models[model.name] = model
    return dataclasses.replace(registry, models=models)


def _checked(model: Any, where: str) -> Model:
    """A ``Model`` from a hook, put through the checks of a TOML table."""
    if not isinstance(model, Model):
        raise pytest.UsageError(f"{where}: expected Model instances, got {shown(model)}")
    fields = {
        field.name: getattr(model, field.name)
        for field in dataclasses.fields(model)
        if field.name != "name" and getattr(model, field.name) is not None
    }
    return parse_model(model.name, fields, where)
