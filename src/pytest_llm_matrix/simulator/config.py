"""Simulator configuration: frozen dataclasses plus a strict parser for dicts and TOML files.

The parser is strict on purpose: a typo in a fault table would otherwise silently turn a
fault-injection test into a happy-path test, so every unknown key or wrong type is an error
that names the source, the model and the field.
"""

from __future__ import annotations

import json
import math
import re
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, cast, get_args

if TYPE_CHECKING:
    import os

DEFAULT_REPLY = "This is a simulated reply from {model}."
DEFAULT_WRONG_REPLY = "I don't know."
DEFAULT_HANG_SECONDS = 3600.0

FaultKind: TypeAlias = Literal[
    "429", "500", "503", "529", "hang", "malformed", "truncate", "not_stream"
]
FAULT_KINDS: tuple[FaultKind, ...] = get_args(FaultKind)

_TOP_KEYS = ("default_reply", "seed", "rules", "models", "list_models", "strict", "flagged")
_MODEL_KEYS = (
    "latency",
    "tokens_per_second",
    "api_key",
    "rpm",
    "wrong",
    "wrong_reply",
    "rules",
    "faults",
    "strict",
)
_RULE_KEYS = (
    "match", "system", "conversation", "tool", "reply", "tool_calls", "json", "thinking", "p",
)  # fmt: skip
_RULE_PATTERNS = ("match", "system", "conversation", "tool")
_TOOL_CALL_KEYS = ("name", "arguments")
_FAULT_KEYS = (
    "kind",
    "every",
    "first",
    "match",
    "retry_after",
    "retry_after_ms",
    "header_prefix",
    "quota",
    "hang",
    "body",
)
#: A gateway's prefix for the retry headers of the provider behind it (LiteLLM's proxy:
#: ``llm_provider-``): token characters, short.
_HEADER_PREFIX = re.compile(r"[A-Za-z0-9_-]{0,40}")
#: What a `not_stream` fault answers a stream request with.
NOT_STREAM_BODIES = ("json", "html", "garbage")
# Options that only make sense for one fault kind; using them elsewhere is a config mistake.
_KIND_ONLY_OPTIONS: dict[str, FaultKind] = {
    "retry_after": "429",
    "retry_after_ms": "429",
    "header_prefix": "429",
    "quota": "429",
    "hang": "hang",
    "body": "not_stream",
}


class SimulatorConfigError(ValueError):
    """A simulator config is invalid; the message names the source, model and field."""


@dataclass(frozen=True)
class Rule:
    """Reply `reply` when every pattern given is found: `pattern` in the last user message,
    `system` in the system prompt, `conversation` anywhere in the conversation."""

    pattern: re.Pattern[str] | None
    reply: str
    system: re.Pattern[str] | None = None
    conversation: re.Pattern[str] | None = None
    #: only when the request offers a tool whose name this finds
    tool: re.Pattern[str] | None = None
    #: the calls the answer makes: (tool name, arguments)
    tool_calls: tuple[tuple[str, Mapping[str, Any]], ...] = ()
    #: the answer as JSON data (its text is this, serialized); None: ``reply``
    json: Any = None
    #: the thinking shown when the request asks for thinking or reasoning
    thinking: str | None = None
    #: how often the rule applies when it matches (else the next rule is checked)
    p: float = 1.0
    #: where the rule is in the config, for messages: ``rules[2]``
    where: str = ""

    def matches(self, last_user: str, system: str, transcript: str) -> bool:
        return all(
            pattern is None or pattern.search(text) is not None
            for pattern, text in (
                (self.pattern, last_user),
                (self.system, system),
                (self.conversation, transcript),
            )
        )


@dataclass(frozen=True)
class Fault:
    """One injected fault and the schedule on which it fires (`every` or `first`)."""

    kind: FaultKind
    every: int | None = None
    first: int | None = None
    match: re.Pattern[str] | None = None
    retry_after: float | str | None = None  # a string is sent as it is, even "inf"
    retry_after_ms: int | None = None
    quota: bool = False
    hang: float = DEFAULT_HANG_SECONDS
    body: str = "json"
    #: the retry headers' names start with this, as a gateway passes its provider's on
    header_prefix: str = ""

    def fires_on(self, count: int) -> bool:
        """Whether the fault fires on the `count`-th request it counts (1-based)."""
        if self.every is not None:
            return count % self.every == 0
        return self.first is not None and count <= self.first


@dataclass(frozen=True)
class ModelConfig:
    """Behaviour knobs for one model id; the defaults describe a fast, well-behaved model."""

    latency: tuple[float, float] = (0.0, 0.0)
    tokens_per_second: float = 0.0
    api_key: str | None = None
    rpm: int = 0
    wrong: tuple[re.Pattern[str], ...] = ()
    wrong_reply: str = DEFAULT_WRONG_REPLY
    rules: tuple[Rule, ...] = ()
    faults: tuple[Fault, ...] = ()
    #: a prompt no rule answers is a 400, not the default reply (None: as the config says)
    strict: bool | None = None


@dataclass(frozen=True)
class SimulatorConfig:
    """Whole-simulator config; `SimulatorConfig()` serves any model id with default knobs."""

    default_reply: str = DEFAULT_REPLY
    seed: int = 0
    rules: tuple[Rule, ...] = ()
    models: Mapping[str, ModelConfig] = field(default_factory=lambda: types.MappingProxyType({}))
    #: ``GET /v1/models`` answers (False: 404, as servers without a listing do)
    list_models: bool = True
    #: every model: a prompt no rule answers is a 400 naming it, not the default reply
    strict: bool = False
    #: ``/v1/moderations``: texts any of these finds are flagged
    flagged: tuple[re.Pattern[str], ...] = ()


class _Where:
    """Tracks where in the config we are, so every error message can say so.

    Messages read like `sim.toml: model 'gpt-x': faults[0].every: must be >= 1, got 0`.
    """

    def __init__(self, source: str, model: str | None = None, path: str = "") -> None:
        self.source = source
        self.model = model
        self.path = path

    def child(self, name: str) -> _Where:
        if name.startswith("[") or not self.path:
            return _Where(self.source, self.model, self.path + name)
        return _Where(self.source, self.model, f"{self.path}.{name}")

    def description(self) -> str:
        """Where this is: ``sim.toml: model 'm': rules[0]``."""
        parts = [self.source]
        if self.model is not None:
            parts.append(f"model {self.model!r}")
        if self.path:
            parts.append(self.path)
        return ": ".join(parts)

    def error(self, message: str) -> SimulatorConfigError:
        return SimulatorConfigError(f"{self.description()}: {message}")


def _check_keys(data: object, allowed: tuple[str, ...], where: _Where) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise where.error(f"must be a table, got {type(data).__name__}")
    for key in data:
        if key not in allowed:
            valid = ", ".join(sorted(allowed))
            raise where.error(f"unknown key {key!r} (valid keys: {valid})")
    return cast("Mapping[str, Any]", data)


def _string(value: object, where: _Where) -> str:
    if not isinstance(value, str):
        raise where.error(f"must be a string, got {value!r}")
    return value


#: Bounds that keep every knob finite and sane: a count of requests, a number of seconds.
_MAX_COUNT = 1_000_000_000
_MAX_SECONDS = 86_400.0  # a day: longer than any test should wait


def _integer(value: object, where: _Where, minimum: int | None, maximum: int = _MAX_COUNT) -> int:
    """An integer from ``minimum`` (None: ``-maximum``) to ``maximum``."""
    low = -maximum if minimum is None else minimum
    if isinstance(value, bool) or not isinstance(value, int):
        raise where.error(f"must be an integer from {low} to {maximum}, got {_shown(value)}")
    if not low <= value <= maximum:
        raise where.error(f"must be from {low} to {maximum}, got {_shown(value)}")
    return value


def _number(value: object, where: _Where, maximum: float = _MAX_SECONDS) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise where.error(f"must be a number from 0 to {maximum:g}, got {_shown(value)}")
    # ints compare exactly: math.isfinite(10**400) would overflow
    if (isinstance(value, float) and not math.isfinite(value)) or not 0 <= value <= maximum:
        raise where.error(f"must be a finite number from 0 to {maximum:g}, got {_shown(value)}")
    return float(value)


def _header_value(value: str, where: _Where) -> str:
    if not value or not value.isprintable() or not value.isascii():
        raise where.error(f"must be printable ASCII to go in a header, got {_shown(value)}")
    return value


def _shown(value: object) -> str:
    """``repr`` for messages, short even for an integer too long to print."""
    if isinstance(value, int) and value.bit_length() > 128:
        return f"an integer of about {value.bit_length() * math.log10(2):.0f} digits"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _regex(value: object, where: _Where) -> re.Pattern[str]:
    text = _string(value, where)
    try:
        return re.compile(text)
    except re.error as exc:
        raise where.error(f"invalid regex {text!r}: {exc}") from None


def _list(value: object, where: _Where) -> list[Any]:
    if not isinstance(value, list | tuple):
        raise where.error(f"must be an array, got {value!r}")
    return list(value)


def _latency(value: object, where: _Where) -> tuple[float, float]:
    if isinstance(value, list | tuple):
        if len(value) != 2:
            raise where.error(f"must be a number or a [lo, hi] pair, got {value!r}")
        low = _number(value[0], where.child("[0]"))
        high = _number(value[1], where.child("[1]"))
        if low > high:
            raise where.error(f"lower bound {low} is greater than upper bound {high}")
        return (low, high)
    seconds = _number(value, where)
    return (seconds, seconds)


def _rules(value: object, where: _Where) -> tuple[Rule, ...]:
    rules = []
    for index, item in enumerate(_list(value, where)):
        item_where = where.child(f"[{index}]")
        table = _check_keys(item, _RULE_KEYS, item_where)
        if not any(key in table for key in ("reply", "tool_calls", "json")):
            raise item_where.error(
                "needs 'reply' (the answer's text), 'json' (the answer as JSON) or 'tool_calls'"
            )
        if "reply" in table and "json" in table:
            raise item_where.error("has both 'reply' and 'json': the answer is one of them")
        if not any(key in table for key in _RULE_PATTERNS):
            raise item_where.error(
                "needs at least one of 'match' (the last user message), 'system' (the system "
                "prompt), 'conversation' (the whole conversation) or 'tool' (an offered "
                "tool's name)"
            )
        patterns = {
            key: _regex(table[key], item_where.child(key)) if key in table else None
            for key in _RULE_PATTERNS
        }
        calls = (
            _tool_calls(table["tool_calls"], item_where.child("tool_calls"))
            if "tool_calls" in table
            else ()
        )
        rules.append(
            Rule(
                patterns["match"],
                _string(table["reply"], item_where.child("reply")) if "reply" in table else "",
                system=patterns["system"],
                conversation=patterns["conversation"],
                tool=patterns["tool"],
                tool_calls=calls,
                json=_json_data(table["json"], item_where.child("json"))
                if "json" in table
                else None,
                thinking=_string(table["thinking"], item_where.child("thinking"))
                if "thinking" in table
                else None,
                p=_probability(table["p"], item_where.child("p")) if "p" in table else 1.0,
                where=item_where.description(),
            )
        )
    return tuple(rules)


def _probability(value: object, where: _Where) -> float:
    # compared before any float(): a 400-digit integer is no float (NaN fails both tests)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise where.error(f"must be a probability from 0 to 1, got {_shown(value)}")
    return float(value)


def _json_data(value: object, where: _Where) -> Any:
    if value is None:
        raise where.error("must be JSON data other than null (a table, an array, a value)")
    try:
        json.dumps(value, allow_nan=False)
    except (ValueError, TypeError, RecursionError):
        raise where.error(
            "must be plain JSON data (no NaN or infinity, no dates, not nested too deep)"
        ) from None
    return value


def _tool_calls(value: object, where: _Where) -> tuple[tuple[str, Mapping[str, Any]], ...]:
    """``[{ name = "get_weather", arguments = { city = "Paris" } }]``: one or more calls."""
    calls = []
    items = _list(value, where)
    if not items:
        raise where.error("must hold at least one call")
    for index, item in enumerate(items):
        call_where = where.child(f"[{index}]")
        table = _check_keys(item, _TOOL_CALL_KEYS, call_where)
        name = table.get("name")
        if not isinstance(name, str) or not name:
            raise call_where.error(f"needs a 'name': the tool's, got {_shown(name)}")
        arguments = table.get("arguments", {})
        if not isinstance(arguments, Mapping):
            raise call_where.child("arguments").error(
                f"must be a table of the call's arguments, got {_shown(arguments)}"
            )
        _json_data(arguments, call_where.child("arguments"))
        calls.append((name, arguments))
    return tuple(calls)


def _fault_kind(value: object, where: _Where) -> FaultKind:
    # TOML users naturally write `kind = 429`; accept the integer spelling of status kinds.
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if text in FAULT_KINDS:
        return text
    raise where.error(f"unknown fault kind {value!r} (valid kinds: {', '.join(FAULT_KINDS)})")


def _fault(value: object, where: _Where) -> Fault:
    table = _check_keys(value, _FAULT_KEYS, where)
    if "kind" not in table:
        raise where.error("missing required key 'kind'")
    kind = _fault_kind(table["kind"], where.child("kind"))
    for option, owner in _KIND_ONLY_OPTIONS.items():
        if option in table and kind != owner:
            raise where.child(option).error(f"only applies to kind {owner!r}, not {kind!r}")
    if ("every" in table) == ("first" in table):
        raise where.error("needs exactly one of 'every' or 'first'")
    every = _integer(table["every"], where.child("every"), 1) if "every" in table else None
    first = _integer(table["first"], where.child("first"), 1) if "first" in table else None
    match = _regex(table["match"], where.child("match")) if "match" in table else None
    retry_after: float | str | None = None
    if "retry_after" in table:
        value = table["retry_after"]
        if isinstance(value, str):  # verbatim, to play a server that sends nonsense
            retry_after = _header_value(value, where.child("retry_after"))
        else:
            retry_after = _number(value, where.child("retry_after"))
    retry_after_ms = None
    if "retry_after_ms" in table:
        retry_after_ms = _integer(
            table["retry_after_ms"], where.child("retry_after_ms"), 0, int(_MAX_SECONDS * 1000)
        )
    quota = table.get("quota", False)
    if not isinstance(quota, bool):
        raise where.child("quota").error(f"must be a boolean, got {quota!r}")
    hang = DEFAULT_HANG_SECONDS
    if "hang" in table:
        hang = _number(table["hang"], where.child("hang"))
    body = table.get("body", "json")
    if body not in NOT_STREAM_BODIES:
        raise where.child("body").error(
            f"must be one of {', '.join(NOT_STREAM_BODIES)}, got {body!r}"
        )
    prefix = table.get("header_prefix", "")
    if not isinstance(prefix, str) or not _HEADER_PREFIX.fullmatch(prefix):
        raise where.child("header_prefix").error(
            f"must be up to 40 letters, digits, '-' or '_' (LiteLLM's is 'llm_provider-'), "
            f"got {_shown(prefix)}"
        )
    return Fault(kind, every, first, match, retry_after, retry_after_ms, quota, hang, body, prefix)


def _model(value: object, where: _Where) -> ModelConfig:
    table = _check_keys(value, _MODEL_KEYS, where)
    knobs: dict[str, Any] = {}
    if "latency" in table:
        knobs["latency"] = _latency(table["latency"], where.child("latency"))
    if "tokens_per_second" in table:
        tps_where = where.child("tokens_per_second")
        speed = _number(table["tokens_per_second"], tps_where, 1e6)
        if 0 < speed < 1 / _MAX_SECONDS:  # a pause between tokens longer than a day
            raise tps_where.error(f"must be 0 or at least {1 / _MAX_SECONDS:.3g}, got {speed!r}")
        knobs["tokens_per_second"] = speed
    if "api_key" in table:
        knobs["api_key"] = _string(table["api_key"], where.child("api_key"))
    if "rpm" in table:
        knobs["rpm"] = _integer(table["rpm"], where.child("rpm"), 0, 1_000_000)
    if "wrong" in table:
        wrong_where = where.child("wrong")
        knobs["wrong"] = tuple(
            _regex(item, wrong_where.child(f"[{index}]"))
            for index, item in enumerate(_list(table["wrong"], wrong_where))
        )
    if "wrong_reply" in table:
        knobs["wrong_reply"] = _string(table["wrong_reply"], where.child("wrong_reply"))
    if "rules" in table:
        knobs["rules"] = _rules(table["rules"], where.child("rules"))
    if "strict" in table:
        knobs["strict"] = _boolean(table["strict"], where.child("strict"))
    if "faults" in table:
        faults_where = where.child("faults")
        knobs["faults"] = tuple(
            _fault(item, faults_where.child(f"[{index}]"))
            for index, item in enumerate(_list(table["faults"], faults_where))
        )
    return ModelConfig(**knobs)


def parse_config(data: Mapping[str, Any], source: str = "<config>") -> SimulatorConfig:
    """Validate a config mapping (as loaded from TOML) into a `SimulatorConfig`."""
    root = _Where(source)
    table = _check_keys(data, _TOP_KEYS, root)
    default_reply = DEFAULT_REPLY
    if "default_reply" in table:
        default_reply = _string(table["default_reply"], root.child("default_reply"))
    seed = 0
    if "seed" in table:
        seed = _integer(table["seed"], root.child("seed"), None)
    rules = _rules(table["rules"], root.child("rules")) if "rules" in table else ()
    models: dict[str, ModelConfig] = {}
    if "models" in table:
        models_table = table["models"]
        if not isinstance(models_table, Mapping):
            raise root.child("models").error(f"must be a table, got {models_table!r}")
        for name, model_table in models_table.items():
            models[name] = _model(model_table, _Where(source, name))
    list_models = _boolean(table.get("list_models", True), root.child("list_models"))
    strict = _boolean(table.get("strict", False), root.child("strict"))
    flagged_where = root.child("flagged")
    flagged = tuple(
        _regex(item, flagged_where.child(f"[{index}]"))
        for index, item in enumerate(_list(table.get("flagged", []), flagged_where))
    )
    return SimulatorConfig(
        default_reply,
        seed,
        rules,
        types.MappingProxyType(models),
        list_models=list_models,
        strict=strict,
        flagged=flagged,
    )


def _boolean(value: object, where: _Where) -> bool:
    if not isinstance(value, bool):
        raise where.error(f"must be true or false, got {_shown(value)}")
    return value


def load_config(path: str | os.PathLike[str]) -> SimulatorConfig:
    """Read and validate a TOML config file; unreadable or invalid files raise the config error."""
    import tomllib  # Imported here: only file-based configs need it, and imports must stay cheap.

    source = str(path)
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except OSError as exc:
        raise SimulatorConfigError(f"{source}: cannot read config: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        # The decoder's message already ends with "(at line N, column M)".
        raise SimulatorConfigError(f"{source}: invalid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise SimulatorConfigError(
            f"{source}: not a TOML file: not UTF-8 text (byte {exc.object[exc.start]:#04x} "
            f"at offset {exc.start})"
        ) from None
    except ValueError as exc:  # an integer too long to read, for one
        raise SimulatorConfigError(f"{source}: invalid TOML: {exc}") from None
    except RecursionError:
        raise SimulatorConfigError(f"{source}: invalid TOML: nested too deeply") from None
    return parse_config(data, source)
