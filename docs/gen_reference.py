"""Write docs/reference.md from the plugin's own definitions, so the reference cannot drift.

    python docs/gen_reference.py          # rewrite docs/reference.md
    python docs/gen_reference.py --check  # exit 1 if the committed file is stale

What is read, and from where:

- the command-line options and ini keys: ``add_options`` called on a real ``pytest.Parser``
  (help texts as ``pytest --help`` shows them), their ranges from ``config.checks``, their
  defaults from the resolved ``Settings``;
- ``python -m pytest_llm_matrix merge``: its ``argparse`` parser;
- the config file: ``TOP_LEVEL_FIELDS`` and ``MODEL_FIELDS`` (each field's check gives its
  type and range), the ``Model`` spec's defaults, the simulator's keys;
- the ``llm`` marker and the hooks: ``MARKER_HELP``, ``hookspecs``;
- the JSON report: ``report/report_schema.json``, a table per object.

The meanings of config fields are written here (``SETTING_NOTES``, ``MODEL_FIELD_NOTES``);
a field without one, or a note for a field that is gone, stops the script.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from pytest_llm_matrix import __main__ as cli
from pytest_llm_matrix import hookspecs
from pytest_llm_matrix.config import checks, models, options
from pytest_llm_matrix.config import registry as reg
from pytest_llm_matrix.matrix import MARKER_HELP, MARKER_KWARGS
from pytest_llm_matrix.simulator import config as sim_config

HERE = Path(__file__).resolve().parent
TARGET = HERE / "reference.md"
COMMAND = "python docs/gen_reference.py"

# -- what the code does not say in words --------------------------------------------------

#: Defaults an option's help states in words (the code computes them at run time).
OPTION_DEFAULTS: Mapping[str, str] = {
    "llm_models": "`TEST_MODELS`, else the config's `default`, else every model",
    "llm_config": "`llm-matrix.toml` beside the pytest config, else `pyproject.toml`",
    "llm_cassettes": "`llm_cassettes/` beside each test module",
    "llm_run_id": "the CI's run id, else one per session",
    "llm_sim_seed": "the simulator config's `seed` (0)",
    "llm_judge": "the config's `judge`",
    "llm_max_concurrency": "none: no global cap",
    "llm_timeout": "none",
}

#: Environment variables the plugin reads or sets, besides the models' key variables.
ENVIRONMENT: Mapping[str, str] = {
    options.ENV_MODELS: "the selection when `--models` is not given (over the config's `default`)",
    "LLM_MATRIX_COORDINATOR": "`--llm-coordinator` when it is not given (over ini "
    "`llm_coordinator` and config `coordinator`)",
    "LLM_MATRIX_RUN_ID": "`--llm-run-id` when it is not given",
    "LLM_MATRIX_MODEL": "set by the plugin during a model test: the model's alias (as "
    "`pytest_llm_matrix.current_model()` returns it); put back as it was when the test ends",
    "PYTEST_XDIST_AUTO_NUM_WORKERS": "the number of workers `-n auto` starts, as in xdist "
    "(at most 1,000)",
    "GITHUB_STEP_SUMMARY": "when set, a Markdown summary is appended to this file (a run, "
    "or `merge`)",
}

#: The top-level settings of ``[tool.llm-matrix]``: (type, default, meaning).
SETTING_NOTES: Mapping[str, tuple[str, str, str]] = {
    "models": (
        "a table of model tables, by alias",
        "`{}`",
        "the models: see [model fields](#model-fields)",
    ),
    "default": (
        "a list of names (a selection)",
        "every model",
        "the selection when neither `--models` nor `TEST_MODELS` is given",
    ),
    "groups": (
        "a table of group name → list of aliases",
        "`{}`",
        "names for sets of models, usable in a selection",
    ),
    "judge": (
        "an alias",
        "none",
        "the model the `llm_judge` fixture asks; `--llm-judge` and ini `llm_judge` win",
    ),
    "max_concurrency": (
        str(checks.CONCURRENCY),
        "none: no global cap",
        "requests in flight to all models together, across all workers; `--max-concurrency` "
        "and ini `llm_max_concurrency` win",
    ),
    "record": (
        "one of " + ", ".join(f"`{m}`" for m in reg.RECORD_MODES),
        f"`{reg.RECORD_MODES[0]}`",
        "record and replay the models' answers; `--llm-record` and ini `llm_record` win",
    ),
    "cassettes": (
        "a folder, relative to the config file",
        "`llm_cassettes/` beside each test module",
        "where recordings live; `--llm-cassettes` and ini `llm_cassettes` win",
    ),
    "record_ignore": (
        "a list of body field names (`user`, `metadata.trace_id`)",
        ", ".join(f"`{f}`" for f in reg.DEFAULT_RECORD_IGNORE),
        "request body fields left out of a recording's match; ini `llm_record_ignore` wins",
    ),
    "coordinator": (
        "a `redis://` or `rediss://` URL",
        "none: this machine only",
        "the Redis the jobs of a run share; `--llm-coordinator`, `LLM_MATRIX_COORDINATOR` "
        "and ini `llm_coordinator` win",
    ),
    "check_keys": (
        "true or false",
        "true",
        "check the selected models' keys at the start; `--llm-check-keys` and ini "
        "`llm_check_keys` win",
    ),
    "auxiliary": (
        "a table with " + " and ".join(f"`{f}`" for f in reg.AUXILIARY_FIELDS),
        "none",
        "`models`: model ids never rewritten to the model under test; `routes`: model id → "
        "the alias its requests go to ([adopting a suite](adopting.md#what-is-not-rewritten))",
    ),
    "simulator": (
        "a table",
        "`{}`",
        "the built-in simulator's rules and settings (in a standalone config file: top "
        "level): see [the simulator](simulator.md) and [its keys](#simulator-keys)",
    ),
}

#: The model fields: what each means (type, range and default come from the code).
MODEL_FIELD_NOTES: Mapping[str, str] = {
    "provider": "how the model is reached; `openai-compatible` needs a `base_url`",
    "model": "the id sent to the API (no control characters); for `azure-openai`, the "
    "deployment's name: letters, digits, `.`, `_` and `-`",
    "api": "the wire format the built-in client speaks: OpenAI chat completions or "
    "Anthropic messages",
    "base_url": "the API base URL (OpenAI style includes `/v1`); required for "
    "`openai-compatible` and `azure-openai` (the resource's endpoint)",
    "api_key_env": "the environment variable holding the key. While it is unset the "
    "model's tests are skipped (`OPENAI_API_KEY is not set`); `--llm-strict` makes that an "
    "error",
    "timeout": "per-test timeout (a pytest-timeout mark); also each request's connect and "
    "read timeout, and the longest a non-streamed answer may take to arrive in full "
    "(default 60; a stream is bounded per read, and by the test's timeout)",
    "max_concurrency": "requests in flight to this model, across all workers",
    "rpm": "requests per minute to this model, across all workers",
    "tags": "names usable in a selection ([names](configuring-models.md#names))",
    "input_price": "USD per million input tokens ([how a cost is found](http-layer.md#costs))",
    "output_price": "USD per million output tokens",
    "price_as": "price this model's tokens at that listed model's price (an alias behind a "
    "gateway, a self-hosted copy); an id genai-prices does not list stops the run with a "
    "usage error",
    "cost_header": 'a response header where a whole answer says its cost in USD; `""` reads none',
    "cost_field": "a field of the answer's JSON (in a stream: of its usage event) where it "
    'says its cost in USD; `""` reads none',
    "params": "default request parameters (`temperature`, `max_tokens`, ...); a call's own "
    "parameters win",
    "headers": "extra headers on every request to the model, by every client (OpenRouter's "
    "`HTTP-Referer` and `X-Title`, a gateway's team header). A value from a variable is a "
    "secret: redacted like a key, and while the variable is unset the model's tests are "
    "skipped. Not the headers the plugin or its HTTP library sets (`authorization`, "
    "`x-api-key`, `api-key`, `anthropic-version`, `user-agent`, ...), nor one name twice in "
    "another case",
    "api_version": "`azure-openai` only: send requests to the deployment's paths "
    "(`/openai/deployments/<model>/chat/completions?api-version=...`; Responses at the "
    "resource's `/openai/responses?api-version=...`); without it, to "
    "Azure's v1 API (`/openai/v1/chat/completions`, `model` in the body)",
    "auth": "`azure-openai` only: how the variable `api_key_env` names is sent: Azure's "
    "`api-key` header, or as a Microsoft Entra ID bearer token (`entra`)",
    "required": "`false`: the model's failures are reported but do not fail the run",
    "simulate": 'simulator knobs, `provider = "simulator"` only ([the simulator]'
    "(simulator.md#knobs-per-model))",
}

#: What a model field's check accepts, by the check's name (ranges and choices are read).
CHECK_TYPES: Mapping[str, str] = {
    "_string": "text",
    "_base_url": "`http(s)://host[:port][/path]`, no credentials, query or fragment",
    "_env_name": "an environment variable's name (no `=`, spaces or control characters)",
    "_tags": "a list of names",
    "_header_name": 'an HTTP header name, or `""`',
    "_field_path": 'a dotted field name, or `""`',
    "_params": "a table of strings, finite numbers, booleans, arrays, tables",
    "_headers": 'a table of header name → text, or `{ env = "VARIABLE" }`',
    "_api_version": "an Azure api-version (`2024-10-21`)",
    "_boolean": "true or false",
    "_table": "a table",
}

#: Model field defaults the loader computes (``parse_model``); the others are the spec's.
MODEL_DEFAULTS: Mapping[str, str] = {
    "provider": "required",
    "model": "the alias",
    "api": "`anthropic` for `anthropic`, else `openai`",
    "base_url": ", ".join(
        f"`{url}` for `{provider}`" for provider, url in models.DEFAULT_BASE_URLS.items()
    )
    + "; the built-in simulator for `simulator`",
    "timeout": "`--llm-timeout`, else none",
    "auth": "`api-key`",
}


# -- helpers --------------------------------------------------------------------------------


def cell(text: str) -> str:
    """Text for a Markdown table cell: one line, pipes escaped."""
    return " ".join(text.split()).replace("|", "\\|")


def plain(text: str) -> str:
    """Text from the code as Markdown: ``<`` and ``>`` outside code spans escaped, so that
    ``DIR/<model>/`` is not taken for an HTML tag."""
    parts = text.split("`")
    for index in range(0, len(parts), 2):
        parts[index] = parts[index].replace("<", "&lt;").replace(">", "&gt;")
    return "`".join(parts)


def table(header: Iterable[str], rows: Iterable[Iterable[str]]) -> list[str]:
    names = list(header)
    lines = ["| " + " | ".join(names) + " |", "|" + "---|" * len(names)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return lines


def shown_default(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, tuple | list):
        return ", ".join(f"`{v}`" for v in value) if value else "`[]`"
    if isinstance(value, Mapping):
        return "`{}`" if not value else f"`{dict(value)}`"
    return f"`{value}`"


def rst_to_markdown(text: str, snippet: str) -> str:
    """A docstring's reStructuredText as Markdown: roles and literals, and a block after
    ``::`` as Python code, marked as run by a test under the name ``snippet`` (see
    ``tests/snippets.py``)."""
    out: list[str] = []
    lines = inspect.cleandoc(text).splitlines()
    index = 0
    while index < len(lines):
        line = re.sub(r":\w+:`~?([^`]+)`", r"``\1``", lines[index]).replace("``", "`")
        index += 1
        if not line.rstrip().endswith("::"):
            out.append(line)
            continue
        block = []
        while index < len(lines) and (not lines[index].strip() or lines[index][:1] == " "):
            block.append(lines[index][4:])
            index += 1
        while block and not block[0]:
            block.pop(0)
        while block and not block[-1]:
            block.pop()
        out += [
            line.rstrip()[:-1],
            "",
            f"<!-- snippet: {snippet} -->",
            "```python",
            *block,
            "```",
            "",
        ]
    return "\n".join(out).strip()


# -- options and ini keys -------------------------------------------------------------------


class Ini(NamedTuple):
    name: str
    help: str
    type: Any
    default: Any


def plugin_parser() -> tuple[list[tuple[list[str], dict[str, Any]]], dict[str, Ini]]:
    """The options and ini keys ``add_options`` declares, on a real ``pytest.Parser``."""
    parser = pytest.Parser(_ispytest=True)
    inis: dict[str, Ini] = {}
    real = parser.addini
    signature = inspect.signature(real)

    def addini(*args: Any, **kwargs: Any) -> None:
        bound = signature.bind(*args, **kwargs)
        given = bound.arguments
        inis[given["name"]] = Ini(
            given["name"], given["help"], given.get("type"), given.get("default")
        )
        real(*args, **kwargs)

    parser.addini = addini  # type: ignore[method-assign]
    options.add_options(parser)
    group = parser.getgroup("llm-matrix")
    found = [(list(option.names()), dict(option.attrs())) for option in group.options]
    return found, inis


def is_flag(attrs: Mapping[str, Any]) -> bool:
    return attrs.get("action") == "store_true" or attrs.get("nargs") == 0


#: What an option whose value is not checked as a number or choice takes, by its metavar.
METAVARS: Mapping[str, str] = {
    "SELECTION": "a [selection](selection.md)",
    "PATH": "a file's path",
    "PATH|last": "a JSON report's path, or `last`",
    "DIR": "a folder",
    "URL": "a `redis://` or `rediss://` URL",
    "ID": "up to 200 printable characters",
    "ALIAS": "a configured model's alias",
}


def value_of(dest: str, attrs: Mapping[str, Any]) -> str:
    """What an option (or its ini twin) takes: a range, a rate, one of its choices."""
    if is_flag(attrs):
        return "a flag"
    if attrs.get("choices"):
        return "one of " + ", ".join(f"`{c}`" for c in attrs["choices"])
    if dest in options._RANGES:
        return str(options._RANGES[dest])
    if options._PARSERS.get(dest) is options._rate:
        return "a [rate](#rates)"
    metavar = str(attrs.get("metavar"))
    if metavar not in METAVARS:
        raise SystemExit(f"option {dest}: metavar {metavar!r} has no description in METAVARS")
    return METAVARS[metavar]


def settings_default(dest: str) -> Any:
    fields = {f.name: f for f in dataclasses.fields(options.Settings)}
    for name in (dest, dest.removeprefix("llm_")):
        field = fields.get(name)
        if field is not None and field.default is not dataclasses.MISSING:
            return field.default
    return None


def default_of(dest: str, attrs: Mapping[str, Any]) -> str:
    if dest in OPTION_DEFAULTS:
        return OPTION_DEFAULTS[dest]
    if is_flag(attrs):
        return "off"
    if attrs.get("choices"):
        return f"`{attrs['choices'][0]}`"
    return shown_default(settings_default(dest))


def config_twin(dest: str) -> str | None:
    if dest == "llm_models":
        return "default"
    name = dest.removeprefix("llm_")
    return name if name in reg.TOP_LEVEL_FIELDS and name != "models" else None


def env_twin(dest: str) -> str | None:
    twins = {"llm_models": options.ENV_MODELS}
    twins |= {f"llm_{n.removeprefix('LLM_MATRIX_').lower()}": n for n in ENVIRONMENT}
    found = twins.get(dest)
    return found if found in ENVIRONMENT else None


def option_name(names: list[str], attrs: Mapping[str, Any]) -> str:
    long = max(names, key=len)
    metavar = attrs.get("metavar")
    if is_flag(attrs) or attrs.get("choices") or not metavar:
        return f"`{long}`"
    return " or ".join(f"`{long}={part}`" for part in str(metavar).split("|"))


def help_text(attrs: Mapping[str, Any]) -> str:
    return plain(str(attrs.get("help") or "").replace("%%", "%"))


def options_section() -> list[str]:
    found, inis = plugin_parser()
    entries = []
    for names, attrs in found:
        dest = attrs["dest"]
        also = []
        if (env := env_twin(dest)) is not None:
            also.append(f"env `{env}`")
        if dest in inis:
            also.append(f"ini `{dest}`")
        if (twin := config_twin(dest)) is not None:
            also.append(f"config `{twin}`")
        if is_flag(attrs):
            facts = "A flag, off by default."
        else:
            facts = f"Takes {value_of(dest, attrs)}; default: {default_of(dest, attrs)}."
        if also:
            facts += f" Also set by {', '.join(also)}."
        entries += [
            f"- {option_name(names, attrs)}: {cell(help_text(attrs))}",
            "",
            f"    {facts}",
            "",
        ]
    by_dest = {attrs["dest"]: (names, attrs) for names, attrs in found}
    ini_rows = []
    for name, ini in sorted(inis.items()):
        names, attrs = by_dest.get(name, ([], None))
        if attrs is not None:
            kind = "true or false" if is_flag(attrs) else value_of(name, attrs)
            kind = INI_TYPES.get(str(ini.type), kind) if str(ini.type) == "paths" else kind
            default = "`false`" if is_flag(attrs) else default_of(name, attrs)
            option = f"`{max(names, key=len)}`"
        else:
            kind, option = INI_TYPES.get(str(ini.type), "text"), ""
            default = INI_DEFAULTS.get(name) or shown_default(ini.default or None)
        ini_rows.append([f"`{name}`", kind, default, option, ini.help])
    return [
        "## Command-line options",
        "",
        "In `pytest --help` under *run tests across LLMs (pytest-llm-matrix)*. A value given "
        "on the command line wins over the environment, the ini file and the config file, "
        "in that order.",
        "",
        *entries,
        "",
        "## ini keys",
        "",
        "In `[tool.pytest.ini_options]` of `pyproject.toml`, or in `pytest.ini`, `tox.ini`, "
        "`setup.cfg`. Paths are relative to the ini file.",
        "",
        *table(["key", "takes", "default", "option", "what it does"], ini_rows),
        "",
    ]


#: What an ini key without an option twin takes, by its pytest type.
INI_TYPES: Mapping[str, str] = {
    "paths": "paths, relative to the ini file",
    "linelist": "one value per line",
    "bool": "true or false",
}
INI_DEFAULTS: Mapping[str, str] = {
    "llm_record_ignore": ", ".join(f"`{f}`" for f in reg.DEFAULT_RECORD_IGNORE),
    "llm_sdks_paths": "none",
}


def rates_section() -> list[str]:
    return [
        "## Rates",
        "",
        "A RATE (`--llm-min-pass-rate`, `--llm-repeat-pass-rate`, the marker's "
        "`min_pass_rate`) is a share from 0 to 1 (`0.8`) or a percentage with its sign "
        "(`80%`). A bare number above 1 is an error, not a percentage: "
        f"`{rate_error('2')}`.",
        "",
    ]


def rate_error(text: str) -> str:
    try:
        checks.parse_rate(text)
    except ValueError as error:
        return str(error)
    raise AssertionError(f"{text!r} is a valid rate")


def environment_section() -> list[str]:
    rows = [[f"`{name}`", text] for name, text in ENVIRONMENT.items()]
    ci = ", ".join(
        f"`{name}`" + (f" (with `{attempt}`)" if attempt else "")
        for name, attempt in options.CI_RUN_IDS
    )
    rows.append([ci, "the CI's run id: the default `--llm-run-id`"])
    return [
        "## Environment variables",
        "",
        "Besides each model's `api_key_env` and the variables its `headers` name:",
        "",
        *table(["variable", "what it does"], rows),
        "",
    ]


def merge_section() -> list[str]:
    parser = cli.build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    merging = commands.choices["merge"]
    rows = []
    for action in merging._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        if action.option_strings:
            name = max(action.option_strings, key=len)
            shown = f"`{name}`" if action.nargs == 0 else f"`{name} {action.metavar}`"
        else:
            shown = f"`{action.metavar}...`"
        rows.append([shown, plain((action.help or "the JSON reports to merge").replace("%%", "%"))])
    return [
        "## The merge command",
        "",
        "`python -m pytest_llm_matrix merge REPORT.json... [options]` "
        "([merging reports](reports.md#merging-reports)).",
        "",
        plain(str(merging.description)),
        "",
        *table(["argument", "what it does"], rows),
        "",
        plain(str(merging.epilog)),
        "",
    ]


def marker_section() -> list[str]:
    kinds = {
        "models": "a list of names (aliases, groups, tags) or a selection string",
        "exclude": "a list of names, or a selection string",
        "repeat": str(checks.REPEAT),
        "min_pass_rate": "a [rate](#rates); default 1",
    }
    missing = set(MARKER_KWARGS) ^ set(kinds)
    if missing:
        raise SystemExit(f"marker keywords without a description here: {sorted(missing)}")
    return [
        "## The `llm` marker",
        "",
        f"`@pytest.mark.{MARKER_HELP.partition(':')[0]}`:{MARKER_HELP.partition(':')[2]}",
        "",
        *table(["keyword", "takes"], [[f"`{k}`", kinds[k]] for k in MARKER_KWARGS]),
        "",
    ]


# -- the config file ------------------------------------------------------------------------


def check_type(check: Callable[..., Any]) -> str:
    bound = getattr(check, "__self__", None)
    if isinstance(bound, checks.Range):
        return str(bound)
    closure = inspect.getclosurevars(check).nonlocals
    if "choices" in closure:
        return "one of " + ", ".join(f"`{c}`" for c in closure["choices"])
    name = getattr(check, "__name__", "")
    if name not in CHECK_TYPES:
        raise SystemExit(f"model field check {name!r} has no description in CHECK_TYPES")
    return CHECK_TYPES[name]


def config_section() -> list[str]:
    unknown = set(SETTING_NOTES) ^ set(reg.TOP_LEVEL_FIELDS)
    if unknown:
        raise SystemExit(f"top-level settings and SETTING_NOTES differ: {sorted(unknown)}")
    unknown = set(MODEL_FIELD_NOTES) ^ set(reg.MODEL_FIELDS)
    if unknown:
        raise SystemExit(f"model fields and MODEL_FIELD_NOTES differ: {sorted(unknown)}")
    spec = {f.name: f for f in dataclasses.fields(models.Model)}
    model_rows = []
    for name, check in reg.MODEL_FIELDS.items():
        field = spec[name]
        if name in MODEL_DEFAULTS:
            default = MODEL_DEFAULTS[name]
        elif field.default_factory is not dataclasses.MISSING:
            default = shown_default(field.default_factory())
        else:
            default = shown_default(field.default)
        model_rows.append([f"`{name}`", check_type(check), default, MODEL_FIELD_NOTES[name]])
    setting_rows = [[f"`{name}`", *SETTING_NOTES[name]] for name in sorted(reg.TOP_LEVEL_FIELDS)]
    simulator = [
        ("top level (`[tool.llm-matrix.simulator]`)", sim_config._TOP_KEYS),
        ("a model's `simulate` table", sim_config._MODEL_KEYS),
        ("a rule", sim_config._RULE_KEYS),
        ("a rule's tool call", sim_config._TOOL_CALL_KEYS),
        ("a fault", sim_config._FAULT_KEYS),
        ("a fault's `kind`", sim_config.FAULT_KINDS),
    ]
    return [
        "## Config file",
        "",
        "`[tool.llm-matrix]` in `pyproject.toml`, or the top level of `llm-matrix.toml` or of "
        "the file `--llm-config` names ([configuring models](configuring-models.md)).",
        "",
        "### Top-level settings",
        "",
        *table(["setting", "takes", "default", "what it does"], setting_rows),
        "",
        "### Model fields",
        "",
        f"`[tool.llm-matrix.models.<alias>]`. `provider` is one of "
        f"{', '.join(f'`{p}`' for p in models.PROVIDERS)}.",
        "",
        *table(["field", "takes", "default", "what it does"], model_rows),
        "",
        "### Simulator keys",
        "",
        "What each means: [the simulator](simulator.md).",
        "",
        *table(
            ["where", "keys"], [[w, ", ".join(f"`{k}`" for k in keys)] for w, keys in simulator]
        ),
        "",
    ]


# -- hooks ----------------------------------------------------------------------------------


def hooks_section() -> list[str]:
    lines = ["## Hooks", "", "Implement them in a plugin or in the rootdir's `conftest.py`.", ""]
    for name, function in inspect.getmembers(hookspecs, inspect.isfunction):
        if not name.startswith("pytest_llm_matrix_"):
            continue
        parameters = ", ".join(inspect.signature(function).parameters)
        lines += [
            f"### `{name}({parameters})`",
            "",
            rst_to_markdown(function.__doc__ or "", f"hook-{name}"),
            "",
        ]
    return lines


# -- the JSON report ------------------------------------------------------------------------


class Schema:
    """The report's JSON schema as Markdown: a table per object, linked by name; an object
    defined inline gets its section after the one that holds it."""

    def __init__(self, schema: Mapping[str, Any]) -> None:
        self.schema = schema
        self.defs: Mapping[str, Any] = schema.get("$defs", {})
        self.found: list[tuple[str, Mapping[str, Any]]] = []  # inline objects of a section

    @staticmethod
    def anchor(title: str) -> str:
        return "report-" + re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")

    def link(self, title: str) -> str:
        return f"[`{title}`](#{self.anchor(title)})"

    def kind(self, node: Mapping[str, Any], title: str) -> str:
        """What a value is, in words."""
        if "$ref" in node:
            name = node["$ref"].rpartition("/")[2]
            target = self.defs[name]
            return self.link(name) if target.get("properties") else self.kind(target, name)
        if "const" in node:
            return f"`{json.dumps(node['const'])}`"
        if "enum" in node:
            return "one of " + ", ".join(f"`{json.dumps(v)}`" for v in node["enum"])
        for key in ("oneOf", "anyOf"):
            if key in node:
                return " or ".join(self.kind(part, title) for part in node[key])
        types = node.get("type", [])
        words = []
        for kind in [types] if isinstance(types, str) else types:
            if kind == "object" and node.get("properties"):
                self.found.append((title, node))
                words.append(self.link(title))
            elif kind == "object" and isinstance(node.get("additionalProperties"), Mapping):
                value = self.kind(node["additionalProperties"], f"{title}.<name>")
                words.append(f"object: name → {value}")
            elif kind == "array" and isinstance(node.get("items"), Mapping):
                inner = self.kind(node["items"], f"{title}[]")
                fixed = "minItems" in node and node.get("minItems") == node.get("maxItems")
                pair = fixed and node["minItems"] == 2
                words.append(f"a pair of {inner}" if pair else f"array of {inner}")
            else:
                words.append(kind)
        text = " or ".join(words) or "any"
        bounds = [
            f"≥ {node['minimum']}" if "minimum" in node else "",
            f"≤ {node['maximum']}" if "maximum" in node else "",
        ]
        if any(bounds):
            text += " (" + ", ".join(b for b in bounds if b) + ")"
        if "format" in node:
            text += f" ({node['format']})"
        return text

    def section(self, title: str, node: Mapping[str, Any]) -> list[str]:
        """The table of one object, then those of the objects defined inside it."""
        self.found = []
        required = set(node.get("required", ()))
        rows = []
        for name, child in node.get("properties", {}).items():
            child_title = name if title == "report" else f"{title}.{name}"
            rows.append(
                [
                    f"`{name}`",
                    self.kind(child, child_title),
                    "yes" if name in required else "",
                    plain(str(child.get("description", ""))),
                ]
            )
        extra = node.get("additionalProperties")
        if isinstance(extra, Mapping):
            rows.append(["*other names*", self.kind(extra, f"{title}.<name>"), "", ""])
        inner, self.found = self.found, []
        described = "description" in node and title != "report"
        lines = [
            f'<a id="{self.anchor(title)}"></a>',
            "",
            f"### `{title}`",
            "",
            *([plain(str(node["description"])), ""] if described else []),
            *table(["field", "value", "required", "meaning"], rows),
            "",
        ]
        for child_title, child in inner:
            lines += self.section(child_title, child)
        return lines

    def render(self) -> list[str]:
        lines = [
            "## JSON report",
            "",
            "What `--llm-report` writes, `merge` reads and writes, and the "
            "`pytest_llm_matrix_report` hook receives. The schema is `report_schema.json` in "
            'the package (`importlib.resources.files("pytest_llm_matrix.report") / '
            '"report_schema.json"`). ' + plain(str(self.schema.get("description", ""))),
            "",
            *self.section("report", self.schema),
        ]
        for name, node in self.defs.items():
            if node.get("properties"):
                lines += self.section(name, node)
        values = [
            f"`{name}`: {self.kind(node, name)}"
            for name, node in self.defs.items()
            if not node.get("properties")
        ]
        return [*lines, "Named values: " + "; ".join(values) + ".", ""]


def report_section() -> list[str]:
    text = resources.files("pytest_llm_matrix.report").joinpath("report_schema.json").read_text()
    return Schema(json.loads(text)).render()


# -- the page -------------------------------------------------------------------------------


def render() -> str:
    lines = [
        "# Reference",
        "",
        f"<!-- Generated by {COMMAND} from the plugin's own definitions: do not edit. -->",
        "",
        "Every option, ini key, config field and report field, generated from the plugin's "
        f"definitions (`{COMMAND}`). The pages before this one say how they work together.",
        "",
        *options_section(),
        *rates_section(),
        *environment_section(),
        *marker_section(),
        *config_section(),
        *merge_section(),
        *hooks_section(),
        *report_section(),
    ]
    text = "\n".join(lines)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.rstrip("\n") + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if TARGET.read_text(encoding="utf-8") != text:
            print(f"{TARGET.name} is stale: run {COMMAND}", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
