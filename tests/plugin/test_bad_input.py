"""A corpus of malformed configs, options, environment, markers and files read back
(baselines; reports to merge): each must end in a clear usage error (exit 4; markers: a
collection error, exit 2; ``python -m pytest_llm_matrix merge``: exit 2) that names where the
value came from and which field it is, and never in a traceback, an INTERNALERROR or a hang.

Every case is one real pytest session in-process (``pytester.runpytest``): they stop at
configure or at collection, before any test runs, so in-process is reliable and fast.
The expected texts are written out here, not derived from the code under test.
"""

from __future__ import annotations

import dataclasses
import json
import os
import textwrap
from collections.abc import Iterator, Mapping

import pytest

from pytest_llm_matrix.calls.context import SPEND_COUNTERS

#: What the ranges read like in messages (see docs/reference.md: model fields, options).
TIMEOUT = "a number of seconds from 0.1 to 604,800 (a week)"
CAP = "a whole number from 1 to 10,000"
RPM = "a whole number from 1 to 1,000,000"
PRICE = "a number of USD per million tokens from 0 to 10,000"
ATTEMPTS = "a whole number from 1 to 100"
MAX_WAIT = "a number of seconds greater than 0, at most 86,400 (a day)"
MAX_COST = "a number of USD greater than 0, at most 1,000,000"
REPEAT = "a whole number from 1 to 1,000"
RATE = "expected a share from 0 to 1 (0.8) or a percentage from 0% to 100% ('80%')"
SIM_SECONDS = "from 0 to 86400"

#: TOML values that are no number, or no number the plugin can use.
NOT_NUMBERS = ['"5"', "true", "[5]", "{ s = 5 }", "1979-05-27", "nan", "inf", "-inf"]
ABSURD = ["-1", "1e308", str(2**63), str(10**30)]

MODEL_TEST = "def test_m(llm_model):\n    pass\n"

#: A valid model, so that cases that break something else reach the part they break.
SIM = '[tool.llm-matrix.models.sim]\nprovider = "simulator"\n'
BIG = 2**63
HUGE = 10**30
#: Options of every inner run: no plugin that reorders, no warning about an unset option.
QUIET = ("-p", "no:randomly", "-o", "asyncio_default_fixture_loop_scope=function")


@dataclasses.dataclass(frozen=True)
class Case:
    """One bad input; ``expect``: texts that must all be on one error line; ``absent``:
    texts that must not be on it (an ini error must not name the command-line option)."""

    id: str
    expect: tuple[str, ...]
    pyproject: str = SIM  # the whole pyproject.toml
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = dataclasses.field(default_factory=dict)
    files: Mapping[str, str | bytes] = dataclasses.field(default_factory=dict)
    test: str = MODEL_TEST
    exit: int = pytest.ExitCode.USAGE_ERROR
    absent: tuple[str, ...] = ()


def model_field_cases() -> Iterator[Case]:
    """Every model field: wrong types, non-finite, out-of-range and malformed values."""
    numbers = {
        "timeout": (TIMEOUT, [*NOT_NUMBERS, *ABSURD, "-0.0", "0", "1e-9", "0.09", "604801"]),
        "max_concurrency": (
            CAP,
            [*NOT_NUMBERS, *ABSURD, "0", "-0", "2.5", "2.0", "10001", "10000000"],
        ),
        "rpm": (RPM, ["0", "-5", "1000001", str(BIG), "60.0", "nan", "inf", '"60"', "false"]),
        "input_price": (
            PRICE,
            ["nan", "inf", "-inf", "-1", "-0.01", "10001", "1e308", str(BIG), '"1"', "true", "[]"],
        ),
        "output_price": (PRICE, ["nan", "inf", "-1", "1e308", str(HUGE), '"0"', "{}"]),
    }
    for field, (bound, values) in numbers.items():
        for value in values:
            yield Case(
                f"model-{field}={value}",
                ("pyproject.toml: model 'sim': field", f"'{field}'", f"expected {bound}, got "),
                f"{SIM}{field} = {value}\n",
            )
    others = {
        "provider": (["5", '""', '"OpenAI"', "[]", "{}"], "expected one of openai, anthropic"),
        "model": (['""', '"  "', "5", "[]", '"a\\u0007b"'], ""),
        "api": (['"grpc"', "5"], "expected one of openai, anthropic"),
        "base_url": (
            [
                *['"ftp://host/v1"', '"localhost:8000"', '"http://"', '"http://a b/v1"'],
                *['"https://user:pw@host/v1"', '"http://h:99999/v1"', '"http://h/v1?x=1"'],
                *['""', "5", '"http://h/v1#top"', '"http://h\\u0000/v1"'],
            ],
            "",
        ),
        "api_key_env": (['""', '"A=B"', '"A B"', '"A\\u0000B"', "5", "[]"], ""),
        "tags": (
            [
                *["5", "[5]", '[""]', '["a b"]', '["a,b"]', '["-x"]', '["all"]', '["x[1]"]'],
                *['["\\u0007"]', "{}", '["\\u200b"]', '[" "]', '[["a"]]'],
            ],
            "",
        ),
        "params": (["5", '"x"', "[]", "{ t = nan }", "{ t = inf }", "{ d = 1979-05-27 }"], ""),
        "required": (['"yes"', "1", "0", "[]"], "expected true or false"),
        "simulate": (["5", '"x"', "[]"], "expected a table"),
        "price_as": (['""', "5", '"a\\u0007b"', "[]"], ""),
        "cost_header": (['"a b"', '"x:y"', "5", "[]", '"\\u00e9"'], "expected an HTTP header name"),
        "cost_field": (['"a..b"', '".a"', '"a. b"', "5", '"\\u0007"'], "expected a dotted field"),
        "headers": (
            [
                *['"x"', "5", "[]", '{ "a b" = "c" }', "{ X = 5 }", '{ X = "" }'],
                *['{ X = "\\u00e9" }', '{ X = { env = "A B" } }', "{ X = { env = 5 } }"],
                *['{ X = { env = "A", x = 1 } }', '{ Authorization = "Bearer k" }'],
                *['{ "api-key" = "k" }', '{ "X-Api-Key" = "k" }'],
            ],
            "",
        ),
        "api_version": (['""', "5", '"2024 10"', '"a/b"', '"' + "1" * 41 + '"'], ""),
        "auth": (['"bearer"', "5", '""'], "expected one of api-key, entra"),
    }
    for field, (values, detail) in others.items():
        table = "[tool.llm-matrix.models.sim]\n" if field == "provider" else SIM
        for value in values:
            yield Case(
                f"model-{field}={value}",
                ("pyproject.toml: model 'sim': field", f"'{field}'", detail),
                f"{table}{field} = {value}\n",
            )
    yield Case(
        "model-unknown-field",
        ("model 'sim': unknown field 'timout' (did you mean 'timeout'?)",),
        f"{SIM}timout = 5\n",
    )
    yield Case(
        "model-without-provider",
        ("model 'm': field 'provider' is required",),
        '[tool.llm-matrix.models.m]\nmodel = "x"\n',
    )
    for value in ["5", '"x"', "[]", "true", "[{ provider = 'simulator' }]"]:
        yield Case(
            f"model-table-is-{value}",
            ("pyproject.toml: model 'm': expected a table of fields, got",),
            f"[tool.llm-matrix.models]\nm = {value}\n",
        )


def simulator_knob_cases() -> Iterator[Case]:
    """The simulator's own knobs, in a model's ``simulate`` table and the global table."""
    knobs = [
        ("latency = nan", "latency", SIM_SECONDS),
        ("latency = inf", "latency", SIM_SECONDS),
        ("latency = -1", "latency", SIM_SECONDS),
        ("latency = 1e308", "latency", SIM_SECONDS),
        (f"latency = {BIG}", "latency", SIM_SECONDS),
        ("latency = [0, inf]", "latency[1]", SIM_SECONDS),
        ("latency = [nan, 1]", "latency[0]", SIM_SECONDS),
        ('latency = "1"', "latency", "must be a number"),
        ("tokens_per_second = inf", "tokens_per_second", "from 0 to 1e+06"),
        ("tokens_per_second = -1", "tokens_per_second", "from 0 to 1e+06"),
        (f"rpm = {BIG}", "rpm", "from 0 to 1000000"),
        ("rpm = 1.5", "rpm", "must be an integer"),
        ("rpm = -1", "rpm", "from 0 to 1000000"),
        ("faults = [{ kind = '429', first = 1, retry_after = inf }]", "retry_after", SIM_SECONDS),
        ("faults = [{ kind = '429', first = 1, retry_after = 1e9 }]", "retry_after", SIM_SECONDS),
        ("faults = [{ kind = '429', first = 1, retry_after_ms = -1 }]", "retry_after_ms", "from 0"),
        (f"faults = [{{ kind = '500', every = {BIG} }}]", "every", "from 1 to 1000000000"),
        ("faults = [{ kind = '500', every = 0 }]", "every", "from 1 to 1000000000"),
        ("faults = [{ kind = '500', first = 2.0 }]", "first", "must be an integer"),
        ("faults = [{ kind = 'hang', first = 1, hang = nan }]", "hang", SIM_SECONDS),
        ("faults = [{ kind = 'hang', first = 1, hang = 1e12 }]", "hang", SIM_SECONDS),
        ("faults = 5", "faults", "must be an array"),
        ("wrong = [5]", "wrong[0]", "must be a string"),
    ]
    for knob, field, detail in knobs:
        yield Case(
            f"simulate-{knob}",
            ("pyproject.toml: simulator: model 'sim'", field, detail),
            f"{SIM}simulate = {{ {knob} }}\n",
        )
    top = [
        (f"seed = {BIG}", "seed", "from -1000000000 to 1000000000"),
        ("seed = 1.5", "seed", "must be an integer"),
        ("default_reply = 5", "default_reply", "must be a string"),
        ("rules = 5", "rules", "must be an array"),
        ("rules = [{ match = '(', reply = 'x' }]", "rules[0].match", "invalid regex"),
    ]
    for line, field, detail in top:
        yield Case(
            f"simulator-{line}",
            ("pyproject.toml: simulator", field, detail),
            f"{SIM}[tool.llm-matrix.simulator]\n{line}\n",
        )


def name_cases() -> Iterator[Case]:
    """Aliases, group names and tags are names of the selection syntax."""
    bad = {
        '""': "is empty",
        '" "': "contains whitespace",
        '"a b"': "contains whitespace",
        '"a\\tb"': "contains whitespace",
        '"a,b"': "contains ','",
        '"a[1]"': "contains '[' or ']'",
        '"a]"': "contains '[' or ']'",
        '"-x"': "starts with '-'",
        '"a\\u0007b"': "control or unprintable",
        '"a\\u200bb"': "control or unprintable",
        '"all"': "'all' is reserved",
    }
    for alias, problem in bad.items():
        yield Case(
            f"alias-{alias}",
            ("pyproject.toml: model: invalid alias", problem),
            f'[tool.llm-matrix.models.{alias}]\nprovider = "simulator"\n',
        )
        yield Case(
            f"group-{alias}",
            ("pyproject.toml: group", "invalid group name", problem),
            f'[tool.llm-matrix]\ngroups = {{ {alias} = ["sim"] }}\n{SIM}',
        )
    for members, detail in [
        ("5", "expected a list of model names"),
        ("[5]", "expected a list of model names"),
        ('[""]', "expected a list of model names"),
        ('["nope"]', "names unknown model 'nope'"),
        ("{}", "expected a list of model names"),
    ]:
        yield Case(
            f"group-members-{members}",
            ("pyproject.toml: group 'g'", detail),
            f"[tool.llm-matrix]\ngroups = {{ g = {members} }}\n{SIM}",
        )
    yield Case(
        "group-named-like-a-model",
        ("group 'sim' has the name of a model",),
        f'[tool.llm-matrix]\ngroups = {{ sim = ["sim"] }}\n{SIM}',
    )
    yield Case(
        "tag-named-like-a-model",
        ("model 'sim': tag 'other' has the name of a model",),
        f'{SIM}tags = ["other"]\n[tool.llm-matrix.models.other]\nprovider = "simulator"\n',
    )
    yield Case(
        "tag-named-like-a-group",
        ("model 'sim': tag 'g' has the name of a group",),
        f'[tool.llm-matrix]\ngroups = {{ g = ["sim"] }}\n{SIM}tags = ["g"]\n',
    )


def structure_cases() -> Iterator[Case]:
    """The shape of the config: tables that are not tables, files that are not TOML."""
    for value in ["5", "[]", '"abc"', "true", "1979-05-27"]:
        yield Case(
            f"llm-matrix={value}",
            ("pyproject.toml: expected a table of llm-matrix settings, got",),
            f"[tool]\nllm-matrix = {value}\n",
        )
    yield Case(  # not in the rootdir, where pytest itself fails on it (AttributeError)
        "tool=5",
        ("sub/pyproject.toml: 'tool' must be a table, got 5",),
        args=("--llm-config=sub/pyproject.toml",),
        files={"sub/pyproject.toml": "tool = 5\n"},
    )
    for value in ["[]", "5", '"x"', "[{ m = 1 }]"]:
        yield Case(
            f"models={value}",
            ("pyproject.toml: setting 'models': expected a table of model tables, got",),
            f"[tool.llm-matrix]\nmodels = {value}\n",
        )
    settings = [
        ("default = 5", "setting 'default': expected a list of model names"),
        ("default = [5]", "setting 'default': expected a list of model names"),
        ('default = [""]', "setting 'default': expected a list of model names"),
        ("default = []", "'default' in pyproject.toml: the selection is empty"),
        ('default = ["nope"]', "'default' in pyproject.toml: unknown model, group or tag 'nope'"),
        ("groups = 5", "setting 'groups': expected a table"),
        ("groups = []", "setting 'groups': expected a table"),
        ("simulator = 5", "setting 'simulator': expected a table"),
        ("simulator = []", "setting 'simulator': expected a table"),
        ("simulator = { d = 1979-05-27 }", "setting 'simulator': d: expected a string, number"),
        ("max_concurency = 3", "unknown setting 'max_concurency' (did you mean"),
    ] + [
        (f"max_concurrency = {value}", f"setting 'max_concurrency': expected {CAP}, got")
        for value in ["0", "-1", "-0", "10001", "nan", "inf", '"4"', "2.0", "1e308", str(BIG)]
    ]
    for line, detail in settings:
        yield Case(
            f"setting-{line}", ("pyproject.toml", detail), f"[tool.llm-matrix]\n{line}\n{SIM}"
        )
    files = [
        ("config-not-utf8", ("--llm-config=/bin/ls",), "/bin/ls: not a TOML file: not UTF-8"),
        ("config-dev-null", ("--llm-config=/dev/null",), "/dev/null is not a regular file"),
        ("config-directory", ("--llm-config=.",), "is a directory; give the path of a TOML"),
        ("config-missing", ("--llm-config=nope.toml",), "--llm-config: no such file: "),
        ("config-empty-path", ("--llm-config=",), "--llm-config: expected the path of a TOML"),
    ]
    for case_id, args, detail in files:
        yield Case(case_id, (detail,), "", args)
    raw: dict[str, tuple[bytes, str]] = {
        "binary": (b"\x7fELF\x02\x01\x01\x00\xd0\xff\xfe", "not UTF-8 text (byte 0xd0 at"),
        "latin1": ('default = ["caf\xe9"]\n'.encode("latin-1"), "not UTF-8 text (byte 0xe9"),
        "bad-toml": (b"[models.m]\nprovider = simulator\n", "invalid TOML: Invalid value"),
        "deep": (b"x = " + b"[" * 5000 + b"]" * 5000 + b"\n", "invalid TOML: nested too deeply"),
        "long-int": (
            b"[models.m]\nprovider = 'simulator'\ntimeout = " + b"9" * 5000 + b"\n",
            "invalid TOML: Exceeds the limit (4300 digits)",
        ),
        "nul": (b"default = ['a']\x00\n", "invalid TOML"),
    }
    for case_id, (content, detail) in raw.items():
        yield Case(
            f"llm-matrix.toml-{case_id}",
            ("llm-matrix.toml: ", detail),
            "",
            files={"llm-matrix.toml": content},
        )


def _choice(key: str, choices: tuple[str, ...], got: str) -> tuple[str, ...]:
    """What a bad choice in an ini file prints: pytest 9.2 checks a choice key's value
    itself (the plugin declares the choices as a Literal type), older pytest leaves it to
    the plugin."""
    if pytest.version_tuple >= (9, 2):
        shown = " | ".join(repr(c) for c in choices)
        return (f"ERROR: ini {key}: ", f"config option '{key}' expects one of {shown}, got '{got}'")
    return (f"ERROR: ini {key}: expected one of {', '.join(choices)}, got '{got}'",)


def option_cases() -> Iterator[Case]:
    """Every numeric option, on the command line and in the ini file."""
    options = {
        "max-concurrency": (CAP, "llm_max_concurrency"),
        "llm-timeout": (TIMEOUT, "llm_timeout"),
        "llm-max-attempts": (ATTEMPTS, "llm_max_attempts"),
        "llm-max-wait": (MAX_WAIT, "llm_max_wait"),
        "llm-max-cost": (MAX_COST, "llm_max_cost"),
        "llm-repeat": (REPEAT, "llm_repeat"),
    }
    values = ["nan", "inf", "-inf", "1e308", "-1", "0", "-0", "", "abc", str(HUGE), str(BIG)]
    for option, (bound, ini) in options.items():
        for value in values:
            yield Case(
                f"--{option}={value}",
                (f"ERROR: --{option}: expected {bound}, got {value!r}",),
                args=(f"--{option}={value}",),
            )
        if ini is None:
            continue
        for value in ["nan", "inf", "-1", "1e308", "abc", str(BIG)]:
            yield Case(
                f"ini-{ini}={value}",
                (f"ERROR: ini {ini}: expected {bound}, got {value!r}",),
                f'{SIM}[tool.pytest.ini_options]\n{ini} = "{value}"\n',
                absent=(f"--{option}",),
            )
    for option, ini in [
        ("llm-min-pass-rate", "llm_min_pass_rate"),
        ("llm-repeat-pass-rate", "llm_repeat_pass_rate"),
    ]:
        for value in ["2", "80", "150%", "-0.1", "nan", "inf", "", "%", "abc", "1e308", "0.5%x"]:
            yield Case(
                f"--{option}={value}",
                (f"ERROR: --{option}: {RATE}, got {value!r}",),
                args=(f"--{option}={value}",),
            )
        for value in ["2", "nan", "101%"]:
            yield Case(
                f"ini-{ini}={value}",
                (f"ERROR: ini {ini}: {RATE}, got {value!r}",),
                f'{SIM}[tool.pytest.ini_options]\n{ini} = "{value}"\n',
                absent=(f"--{option}",),
            )
    yield Case(
        "rate-2-suggests",
        ("--llm-min-pass-rate:", "(did you mean 0.02 or '2%'?)"),
        args=("--llm-min-pass-rate=2",),
    )
    ini_others = [
        ('llm_dist = "spread"', _choice("llm_dist", ("model", "load"), "spread")),
        ('llm_progress = "on"', _choice("llm_progress", ("auto", "off"), "on")),
        ('llm_preload = "yes"', _choice("llm_preload", ("auto", "on", "off"), "yes")),
        ('llm_strict = "maybe"', "ERROR: ini llm_strict: invalid truth value 'maybe'"),
        ('llm_patch_sdks = "maybe"', "ERROR: ini llm_patch_sdks: invalid truth value 'maybe'"),
        ('llm_rewrite_model = "2"', "ERROR: ini llm_rewrite_model: invalid truth value '2'"),
        ('llm_config = "a.toml b.toml"', "ERROR: ini llm_config: expected one path, got 2"),
        ('llm_config = "nope.toml"', "ERROR: ini llm_config: no such file: "),
        ('llm_report = "/proc/llm-matrix/r.json"', "ERROR: ini llm_report: cannot write "),
    ]
    for line, detail in ini_others:
        yield Case(
            f"ini-{line}",
            detail if isinstance(detail, tuple) else (detail,),
            f"{SIM}[tool.pytest.ini_options]\n{line}\n",
            absent=("--llm",),
        )
    for option, value in [
        ("llm-dist", "spread"),
        ("llm-progress", "on"),
        ("llm-preload", "1"),
    ]:  # argparse's choices
        yield Case(
            f"--{option}={value}",
            (f"error: argument --{option}: invalid choice: '{value}'",),
            args=(f"--{option}={value}",),
        )


def report_path_cases() -> Iterator[Case]:
    """--llm-report is checked at start: a report that cannot be written is a usage error."""
    for case_id, path, detail in [
        ("virtual-fs", "/proc/llm-matrix/r.json", "cannot write /proc/llm-matrix/r.json: "),
        ("under-a-file", "test_bad.py/r.json", "/test_bad.py is not a directory"),
        ("a-directory", ".", " is a directory; give a file name"),
        ("empty", "", "expected a file name, got ''"),
        ("device", "/dev/zero", "/dev/zero is not a regular file"),
    ]:
        yield Case(
            f"report-{case_id}",
            ("ERROR: --llm-report: ", detail),
            args=(f"--llm-report={path}",),
            files={"test_bad.py": MODEL_TEST},
        )


#: A baseline report as --llm-report writes it, but for one field (format() fills them in).
BASELINE = (
    '{{"version": 1, "plugin_version": "0.1.0", "created": {created}, "models": {{"sim": '
    '{{"runs_passed": {passed}, "runs_judged": 2, "cost_usd": {cost}, "input_tokens": {tokens}, '
    '"outcomes": {{"passed": 1}}}}}}, "tests": [{{"nodeid": "test_bad.py::test_m[sim]", '
    '"test": "test_bad.py::test_m", "model": "sim", "outcome": {outcome}}}]}}'
)
BASELINE_FIELDS = {
    "created": '"2026-01-01"', "passed": "1", "cost": "0.5", "tokens": "5", "outcome": '"passed"',
}  # fmt: skip


def baseline_cases() -> Iterator[Case]:
    """--llm-baseline: a file that is no report this plugin wrote, or one with a field of
    the wrong type, is a usage error at start naming the file and the field."""
    number = "expected a number from 0 to 1e12, or null"
    count = "expected a whole number from 0 to 1e12"
    fields = [
        ("cost", '"0.5"', "models['sim'].cost_usd is '0.5', " + number),
        ("cost", "-1", "models['sim'].cost_usd is -1, " + number),
        ("cost", "1e999", "models['sim'].cost_usd is inf, " + number),
        ("cost", "true", "models['sim'].cost_usd is True, " + number),
        ("tokens", "1.5", "models['sim'].input_tokens is 1.5, " + count),
        ("tokens", "[5]", "models['sim'].input_tokens is [5], " + count),
        ("passed", '"1"', "models['sim'].runs_passed is '1', " + count),
        ("passed", "3", "models['sim'].runs_passed is 3, more than runs_judged (2)"),
        ("created", "[]", "created is [], expected a string"),
        ("outcome", "null", "tests[0].outcome is None, expected one of passed, failed"),
    ]
    for field, value, detail in fields:
        yield Case(
            f"baseline-{field}={value}",
            ("ERROR: --llm-baseline: ", "base.json: ", detail),
            args=("--llm-baseline=base.json",),
            files={"base.json": BASELINE.format(**(BASELINE_FIELDS | {field: value}))},
        )
    files: list[tuple[str, str | bytes, str]] = [
        ("not-json", "{", "base.json is not JSON (Expecting property name"),
        ("nan", '{"version": 1, "x": NaN}', "is not JSON (NaN is not a number JSON allows)"),
        ("deep", "[" * 5000 + "]" * 5000, "base.json is nested more than 200 levels deep"),
        ("latin1", b'{"created": "caf\xe9"}', "base.json is not UTF-8 text (byte 16: "),
        ("array", "[]", "base.json is not a JSON report (expected an object)"),
        ("version-2", '{"version": 2}', "base.json is a report of version 2;"),
        ("no-models", '{"version": 1}', "base.json: models is missing, expected an object"),
        ("tests-object", '{"version": 1, "models": {}, "tests": {}}', "tests is {}, expected a"),
    ]
    for case_id, content, detail in files:
        yield Case(
            f"baseline-{case_id}",
            ("ERROR: --llm-baseline: ", detail),
            args=("--llm-baseline=base.json",),
            files={"base.json": content},
        )
    yield Case(
        "baseline-folder",
        ("ERROR: --llm-baseline: the baseline ", "base is a folder, not a file"),
        args=("--llm-baseline=base",),
        files={"base/x": ""},
    )
    yield Case(
        "baseline-device",
        ("ERROR: --llm-baseline: the baseline /dev/zero is not a regular file (a device)",),
        args=("--llm-baseline=/dev/zero",),
    )


def selection_cases() -> Iterator[Case]:
    """--models and TEST_MODELS: names of the selection syntax."""
    pyproject = f'[tool.llm-matrix]\ngroups = {{ g = ["sim"] }}\n{SIM}'
    for value, detail in [
        (",", "the selection is empty"),
        ("-", "unknown model, group or tag ''"),
        ("nope", "unknown model, group or tag 'nope'"),
        ("sim,-sim", "selects no model"),
        ("all,-all", "selects no model"),
        ("a b", "unknown model, group or tag 'a b'"),
        ("\x07", "unknown model, group or tag '\\x07'"),
        ("sim[1]", "unknown model, group or tag 'sim[1]'"),
    ]:
        yield Case(f"--models={value!r}", ("--models", detail), pyproject, (f"--models={value}",))
        yield Case(
            f"TEST_MODELS={value!r}", ("TEST_MODELS", detail), pyproject, env={"TEST_MODELS": value}
        )
    yield Case("--models=empty", ("--models: the selection is empty",), pyproject, ("--models=",))


def key_cases() -> Iterator[Case]:
    """A key that cannot go in a header is refused at start, and not quoted."""
    pyproject = SIM + 'api_key_env = "LLM_MATRIX_BAD_KEY"\n'
    for key in ["sk-abc\ndef-0123456789", "sk-abc\x1bdef-0123456789", "sk-caf\xe9-0123456789"]:
        yield Case(
            f"key {key!r}",
            ("model 'sim': LLM_MATRIX_BAD_KEY holds a control or non-ASCII character",),
            pyproject,
            env={"LLM_MATRIX_BAD_KEY": key},
            absent=("0123456789",),
        )


def hook_cases() -> Iterator[Case]:
    """Models registered in code go through the same checks, Model instances included."""
    where = "pytest_llm_matrix_models hook"
    returns = [
        ('Model("a b", "simulator", "x", "openai")', "model: invalid alias 'a b'"),
        ('Model("all", "simulator", "x", "openai")', "model: invalid alias 'all'"),
        ('Model("m", "simulator", "x", "openai", timeout=float("nan"))', "field 'timeout'"),
        ('Model("m", "simulator", "x", "openai", max_concurrency=10**7)', "'max_concurrency'"),
        ('Model("m", "simulator", "x", "openai", rpm=2**63)', "field 'rpm'"),
        ('Model("m", "simulator", "x", "openai", input_price=float("inf"))', "'input_price'"),
        ('Model("m", "openai", "x", "openai", base_url="ftp://h")', "field 'base_url'"),
        ('Model("m", "simulator", "x", "grpc")', "field 'api'"),
        ('Model("m", "simulator", "x", "openai", tags=("a,b",))', "field 'tags'"),
        ('Model("m", "simulator", "x", "openai", params={"o": object()})', "field 'params'"),
        ('Model("m", "simulator", 5, "openai")', "field 'model'"),
        ('Model("m", "openai", "x", "openai", simulate={"latency": 1})', "field 'simulate'"),
        ("5", "expected Model instances, got 5"),
    ]
    for value, detail in returns:
        yield Case(
            f"hook-list-{value}",
            (where, detail),
            "",
            files={"conftest.py": _hook(f"[{value}]")},
        )
    for value, detail in [
        ("5", "expected a dict of alias -> fields or a list of Model, got 5"),
        ('"abc"', "expected a dict of alias -> fields or a list of Model, got 'abc'"),
        ('{5: {"provider": "simulator"}}', "model: alias must be a string, got 5"),
        ('{"m": 5}', "model 'm': expected a table of fields, got 5"),
        ('{"m": {"provider": "simulator", "timeout": 1e308}}', "field 'timeout'"),
        ('{"m": {"provider": "simulator", 5: 1}}', "model 'm': unknown field 5"),
    ]:
        yield Case(
            f"hook-returns-{value}", (where, detail), "", files={"conftest.py": _hook(value)}
        )


def _hook(result: str) -> str:
    return textwrap.dedent(
        f"""
        from pytest_llm_matrix import Model

        def pytest_llm_matrix_models(config):
            return {result}
        """
    )


def marker_cases() -> Iterator[Case]:
    """@pytest.mark.llm: a collection error (exit 2) naming the test and the keyword."""
    markers = (
        [
            ("models=5", "(models=...): expected a list of model names, got 5"),
            ("models=[5]", "(models=...): expected a list of model names, got [5]"),
            ("models=[]", "(models=...): names no model"),
            ('models=""', "(models=...): names no model"),
            ('models=["nope"]', "(models=...): unknown model, group or tag 'nope'"),
            ('models={"sim"}', "(models=...): expected a list of model names"),
            ('exclude="nope"', "(exclude=...): unknown model, group or tag 'nope'"),
            ("exclude=5", "(exclude=...): expected a list of model names"),
            ('"sim"', "unexpected arguments ['sim']; use keywords"),
            ("repeats=3", "unexpected arguments ['repeats']"),
        ]
        + [
            (f"repeat={value}", f"(repeat=...): expected {REPEAT}, got")
            for value in [
                "0",
                "-1",
                "1001",
                "2**63",
                "10**30",
                "2.0",
                "True",
                '"3"',
                'float("nan")',
            ]
        ]
        + [
            (f"min_pass_rate={value}", f"(min_pass_rate=...): {RATE}, got")
            for value in [
                *['float("nan")', 'float("inf")', "-0.1", "2", "80", '"2"', '"nan"'],
                *['"150%"', "True", "[0.5]", "10**400", '"-1%"'],
            ]
        ]
    )
    for marker, detail in markers:
        yield Case(
            f"marker-{marker}",
            ("test_bad.py::test_m: @pytest.mark.llm", detail),
            test=f"import pytest\n\n@pytest.mark.llm({marker})\ndef test_m(llm_model):\n    pass\n",
            exit=pytest.ExitCode.INTERRUPTED,
        )


CASES: list[Case] = [
    *model_field_cases(),
    *simulator_knob_cases(),
    *name_cases(),
    *structure_cases(),
    *option_cases(),
    *report_path_cases(),
    *baseline_cases(),
    *selection_cases(),
    *key_cases(),
    *hook_cases(),
    *marker_cases(),
]


def run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, case: Case) -> pytest.RunResult:
    monkeypatch.delenv("TEST_MODELS", raising=False)
    for name, value in case.env.items():
        monkeypatch.setenv(name, value)
    (pytester.path / "pyproject.toml").write_text(case.pyproject)
    for name, content in case.files.items():
        path = pytester.path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    pytester.makepyfile(test_bad=case.test)
    return pytester.runpytest(*QUIET, "-p", "no:cacheprovider", *case.args)


def test_the_corpus_is_large():
    print(f"bad-input corpus: {len(CASES)} cases")
    assert len(CASES) >= 150
    assert len({case.id for case in CASES}) == len(CASES)


@pytest.mark.timeout(60)  # a hang is a failure too
@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input_is_a_clear_error(pytester, monkeypatch, case):
    result = run(pytester, monkeypatch, case)
    output = result.stdout.lines + result.stderr.lines
    text = "\n".join(output)
    assert "Traceback" not in text
    assert "INTERNALERROR" not in text
    assert result.ret == case.exit, text
    usage = case.exit == pytest.ExitCode.USAGE_ERROR
    where = result.stderr.lines if usage else output
    lines = [line for line in where if all(part in line for part in case.expect)]
    assert lines, f"no line holds all of {case.expect}:\n{text}"
    for part in case.absent:
        assert part not in lines[0], lines[0]
    if usage:
        assert any(line.startswith("ERROR: ") for line in result.stderr.lines), text


# --- python -m pytest_llm_matrix merge: reports that cannot be merged -----------------


def shard(model: str) -> dict:
    """A job's report as --llm-report writes it (checked against the schema below): a plain
    and a repeated test, an auxiliary request, the run's settings and environment."""
    # test_a failed; test_r's runs 1 and 2 count as skipped, run 3 carries the verdict: a
    # pass; 2 of 4 runs passed; each test spent ``counters``
    outcomes = {"passed": 1, "failed": 1, "error": 0, "skipped": 2, "xfailed": 0, "xpassed": 0}
    counters = dict.fromkeys(SPEND_COUNTERS, 0) | {"requests": 4, "input_tokens": 20}
    spend = counters | {"latencies": [0.1, 0.2], "ttft": []}
    total = {counter: 2 * count for counter, count in counters.items()}
    return {
        "version": 1, "plugin_version": "0.1.0", "created": "2026-01-01T00:00:00+00:00",
        "exit_status": 1, "failures": {"plain": 0, "stopped": False},
        "selection": {"models": [model], "selected_by": "--models"},
        "min_pass_rate": None, "max_cost_usd": 5.0, "spent_usd": 0.5,
        "models": {model: {
            "provider": "simulator", "model": model, "required": True, "outcomes": outcomes,
            "pass_rate": 0.5, "runs_passed": 2, "runs_judged": 4,
            "pass_rate_interval": [0.15, 0.85], "wall_seconds": 1.5, "test_seconds": 1.2,
            **total, "latency_p50": 0.1, "latency_p95": 0.2, "ttft_p50": None,
            "cost_usd": 0.5, "replayed_cost_usd": 0.0, "unavailable": None,
        }},
        "tests": [
            {"nodeid": f"t.py::test_a[{model}]", "test": "t.py::test_a", "model": model,
             "outcome": "failed", "duration": 0.2, "cost_usd": 0.1, "spend": spend,
             "message": "assert 'no' == 'ok'"},
            {"nodeid": f"t.py::test_r[{model}]", "test": "t.py::test_r", "model": model,
             "outcome": "passed", "duration": 1.0, "cost_usd": 0.4, "spend": spend,
             "repeat": 3, "min_pass_rate": 0.5,
             "runs": [{"index": 1, "outcome": "passed"}, {"index": 2, "outcome": "failed"},
                      {"index": 3, "outcome": "passed"}],
             "verdict": {"passed": 2, "runs": 3, "needed": 2, "planned": 3, "decided_by": 3}},
        ],
        "model_free": [], "failed_everywhere": [], "failed_on_some": {},
        "auxiliary": {"judge": {"kind": "routed", "model": "m", "sent_as": "m", **counters,
                                "latency_p50": None, "cost_usd": 0.01}},
        "environment": {"python": "3.11.7", "pytest": "9.2.0"},
        "baseline": None, "recording": None,
    }  # fmt: skip


@dataclasses.dataclass(frozen=True)
class MergeCase:
    """``merge a.json b.json``, b.json a valid report but for ``b`` (a field's path and
    value) or ``raw`` (the whole file); ``expect``: texts on one ``error:`` line."""

    id: str
    expect: tuple[str, ...]
    b: tuple[tuple[str | int, ...], object] | None = None
    raw: str | bytes | None = None
    args: tuple[str, ...] = ("a.json", "b.json")


def merge_field_cases() -> Iterator[MergeCase]:
    """Every field a merge reads, with values of the wrong type or out of range."""
    named = ("models", "auxiliary")
    number = "a number from 0 to 1e12"
    count = "a whole number from 0 to 1e12"
    outcome = "one of passed, failed, error, skipped, xfailed, xpassed"
    fields: list[tuple[tuple[str | int, ...], list[object], str]] = [
        (("selection",), [[], "x", None], "an object"),
        (("selection", "models"), ["sim-b", [5], {}], "a list of strings"),
        (("exit_status",), ["bad", True, -1, 256, 1.5, None], "a whole number from 0 to 255"),
        (("failures",), ["x", [], None], "an object"),
        (("failures", "plain"), [-1, "0", True, 1.0], count),
        (("failures", "stopped"), [0, "no", None], "true or false"),
        (("environment",), ["x", [], {"python": 3}], "an object of strings"),
        (("plugin_version",), [1, None], "a string"),
        (("created",), [1], "a string"),
        (("spent_usd",), [[1], True, -1, "1"], f"{number}, or null"),
        (("max_cost_usd",), [-1, {}], f"{number}, or null"),
        (("min_pass_rate",), [2, -0.5, "80%"], "a number from 0 to 1, or null"),
        (("models",), [[], "x"], "an object"),
        (("models", "sim-b"), [5, None], "an object"),
        (("models", "sim-b", "runs_passed"), ["3", True, -1, 3.0, 10**13], count),
        (("models", "sim-b", "runs_judged"), [None], count),
        (("models", "sim-b", "outcomes"), [[], "x"], "an object"),
        (("models", "sim-b", "outcomes", "passed"), [1.5, "2", False], count),
        (("models", "sim-b", "requests"), [True, "4", -4], count),
        (("models", "sim-b", "cost_usd"), ["0.5", -0.1, 1e13], f"{number}, or null"),
        (("models", "sim-b", "wall_seconds"), ["slow", [1]], f"{number}, or null"),
        (("models", "sim-b", "required"), ["yes", 1], "true or false"),
        (("models", "sim-b", "provider"), [5], "a string"),
        (("models", "sim-b", "unavailable"), [5, []], "a string or null"),
        (("models", "sim-b", "pass_rate_interval"), ["x", [0.5], [0, 2], True],
         "null or two numbers from 0 to 1"),
        (("tests",), ["abc", {}, None], "a list"),
        (("tests", 0), [5, "t"], "an object"),
        (("tests", 0, "nodeid"), [None, 5], "a string"),
        (("tests", 0, "test"), [[]], "a string"),
        (("tests", 0, "model"), [5], "a string"),
        (("tests", 0, "outcome"), ["weird", 5], outcome),
        (("tests", 0, "duration"), ["slow", -1.0, False, None], number),
        (("tests", 0, "cost_usd"), [{}, "0.1"], f"{number}, or null"),
        (("tests", 0, "message"), [5, None], "a string"),
        (("tests", 0, "model_free"), ["yes", False], "true"),
        (("tests", 0, "spend"), [[1], "x"], "an object"),
        (("tests", 0, "spend", "requests"), [-1, "1", 1.0], count),
        (("tests", 0, "spend", "latencies"), ["x", [True], [-1], ["0.1"]],
         "a list of numbers from 0 to 1e12"),
        (("tests", 0, "spend", "new_counter"), ["7", {}], f"{count} or a list of numbers"),
        (("tests", 1, "runs"), ["abc", {}, None], "a list"),
        (("tests", 1, "runs", 0), [5], "an object"),
        (("tests", 1, "runs", 0, "index"), ["1", 0, 1.0], "a whole number from 1 to 1e12"),
        (("tests", 1, "runs", 1, "outcome"), [5, "maybe"], f"{outcome}, not needed"),
        (("tests", 1, "verdict"), ["x", [2, 3]], "an object"),
        (("tests", 1, "verdict", "passed"), ["2", -2], count),
        (("tests", 1, "repeat"), [0, "3"], "a whole number from 1 to 1e12"),
        (("tests", 1, "min_pass_rate"), [2, None], "a number from 0 to 1"),
        (("auxiliary",), [[], "x"], "an object"),
        (("auxiliary", "judge"), [5], "an object"),
        (("auxiliary", "judge", "requests"), ["x", -1], count),
        (("auxiliary", "judge", "kind"), [5], "a string"),
        (("auxiliary", "judge", "cost_usd"), [-1, "0.1"], f"{number}, or null"),
    ]  # fmt: skip
    for path, values, expected in fields:
        field = "".join(  # a list's items and named models or requests in brackets
            f"[{step}]" if isinstance(step, int) else f"[{step!r}]" if up in named else f".{step}"
            for up, step in zip(("", *path), path, strict=False)
        ).lstrip(".")
        for value in values:
            yield MergeCase(
                f"merge-{field}={value!r}",
                (f"error: b.json: {field} is {value!r}, expected {expected}",),
                b=(path, value),
            )
    yield MergeCase(
        "merge-runs_passed>runs_judged",
        ("error: b.json: models['sim-b'].runs_passed is 2, more than runs_judged (1)",),
        b=(("models", "sim-b", "runs_judged"), 1),
    )
    # figures its tests cannot have made (a count edited, tests cut), runs past the repeat
    for path, value, said in [
        (("models", "sim-b", "outcomes", "passed"), 1000,
         "models['sim-b'].outcomes.passed is 1000, but its tests hold at most 1: "),
        (("models", "sim-b", "outcomes", "failed"), 0,
         "models['sim-b'].outcomes.failed is 0, but 1 of its tests ended failed"),
        (("models", "sim-b", "runs_passed"), 4,
         "models['sim-b'].runs_passed is 4, but its tests hold at most 3: "),
        (("models", "sim-b", "requests"), 5,
         "models['sim-b'].requests is 5, but its tests' spend.requests adds up to 8"),
        (("tests",), [], "models['sim-b'].requests is 8, but its tests' spend.requests adds up "
         "to 0"),
        (("tests", 1, "runs", 2, "index"), 4,
         "tests[1].runs[2].index is 4, more than the test's repeat (3)"),
    ]:  # fmt: skip
        field = ".".join(str(step) for step in path)
        yield MergeCase(
            f"merge-figure-{field}={value!r}", (f"error: b.json: {said}",), b=(path, value)
        )


def merge_file_cases() -> Iterator[MergeCase]:
    """Files that are no report, and a report given twice."""
    valid = json.dumps(shard("sim-b"))
    files: list[tuple[str, str | bytes, str]] = [
        ("empty", "", "the report b.json is not JSON (Expecting value"),
        ("not-json", "{", "the report b.json is not JSON (Expecting property name"),
        ("nan", valid.replace('"spent_usd": 0.5', '"spent_usd": NaN'), "NaN is not a number"),
        ("infinity", valid.replace('"duration": 0.2', '"duration": -Infinity'),
         "-Infinity is not a number JSON allows"),
        ("1e999", valid.replace('"duration": 0.2', '"duration": 1e999'),
         "b.json: tests[0].duration is inf, expected a number from 0 to 1e12"),
        ("deep", "[" * 100_000 + "]" * 100_000, "b.json is nested more than 200 levels deep"),
        ("latin1", b'{"version": 1, "x": "caf\xe9"}', "b.json is not UTF-8 text (byte 24: "),
        ("array", "[]", "b.json is not a JSON report (expected an object)"),
        ("version-2", '{"version": 2}', "b.json is a report of version 2;"),
        ("version-true", '{"version": true}', "b.json is a report of version True;"),
        ("key-twice", valid.replace('"models": {', '"models": {"sim-b": {}, ', 1),
         "the report b.json has the key 'sim-b' twice in one object"),
    ]  # fmt: skip
    for case_id, content, detail in files:
        yield MergeCase(f"merge-file-{case_id}", ("error: ", detail), raw=content)
    for case_id, args, detail in [
        ("missing", ("a.json", "none.json"), "error: the report none.json does not exist"),
        ("folder", ("a.json", "."), "error: the report . is a folder, not a file"),
        ("device", ("a.json", "/dev/null"), "the report /dev/null is not a regular file (a"),
        ("fifo", ("a.json", "fifo.json"), "the report fifo.json is not a regular file (a FIFO)"),
        ("twice", ("a.json", "b.json", "a.json"), "error: a.json is given twice"),
        ("copy", ("a.json", "./a.json"), "error: a.json and ./a.json hold the same report"),
    ]:
        yield MergeCase(f"merge-file-{case_id}", (detail,), raw=valid, args=args)


MERGE_CASES: list[MergeCase] = [*merge_field_cases(), *merge_file_cases()]


def merge(tmp_path, monkeypatch, capsys, case: MergeCase) -> tuple[int, str]:
    """The command, in-process: an exception escaping it fails the test."""
    from pytest_llm_matrix.__main__ import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    (tmp_path / "a.json").write_text(json.dumps(shard("sim-a")))
    b = shard("sim-b")
    if case.b is not None:
        (*holders, last), value = case.b
        holder = b
        for step in holders:
            holder = holder[step]
        holder[last] = value
    content = json.dumps(b) if case.raw is None else case.raw
    if isinstance(content, bytes):
        (tmp_path / "b.json").write_bytes(content)
    else:
        (tmp_path / "b.json").write_text(content)
    if "fifo.json" in case.args:
        os.mkfifo(tmp_path / "fifo.json")  # no writer: a reader that opened it would wait
    status = main(["merge", *case.args, "--llm-report", "merged.json", "--html", "m.html"])
    return status, capsys.readouterr().err


def test_the_reports_the_merge_cases_break_are_merged(tmp_path, monkeypatch, capsys):
    import jsonschema

    from ..conftest import schema

    for model in ("sim-a", "sim-b"):
        jsonschema.validate(shard(model), schema())
    assert merge(tmp_path, monkeypatch, capsys, MergeCase("valid", ())) == (1, "")
    merged = json.loads((tmp_path / "merged.json").read_text())
    jsonschema.validate(merged, schema())
    assert merged["models"]["sim-b"]["runs_judged"] == 4


@pytest.mark.timeout(60)  # a hang is a failure too
@pytest.mark.parametrize("case", MERGE_CASES, ids=[case.id for case in MERGE_CASES])
def test_a_report_that_cannot_be_merged_is_a_clear_error(tmp_path, monkeypatch, capsys, case):
    status, err = merge(tmp_path, monkeypatch, capsys, case)
    assert status == 2, err
    lines = [line for line in err.splitlines() if all(part in line for part in case.expect)]
    assert lines, f"no line holds all of {case.expect}:\n{err}"
    assert err.startswith("error: "), err
    assert not (tmp_path / "merged.json").exists()


#: Valid edge values: the checks must not refuse these.
GOOD = [
    ("timeout-0.1", f"{SIM}timeout = 0.1\n", ()),
    ("timeout-0.5", f"{SIM}timeout = 0.5\n", ()),
    ("timeout-a-week", f"{SIM}timeout = 604800\n", ()),
    ("cap-10000", f"{SIM}max_concurrency = 10000\nrpm = 1000000\n", ()),
    ("price-0", f"{SIM}input_price = 0\noutput_price = 10000\n", ()),
    ("params-nested", f"{SIM}params = {{ a = [1, 2.5, {{ b = true }}], c = 'x' }}\n", ()),
    (
        "alias-org/model:1.5",
        '[tool.llm-matrix.models."org/model:1.5"]\nprovider = "openai-compatible"\n'
        'base_url = "http://[::1]:8000/v1"\ntags = ["a-b", "x.y"]\n',
        (),
    ),
    ("rate-80%", SIM, ("--llm-min-pass-rate=80%", "--llm-repeat-pass-rate=0.8")),
    ("rate-0-and-1", SIM, ("--llm-min-pass-rate=0", "--llm-repeat-pass-rate=1")),
    ("options-at-bounds", SIM, ("--max-concurrency=10000", "--llm-max-attempts=100")),
    ("options-small", SIM, ("--llm-timeout=0.1", "--llm-max-wait=0.001", "--llm-max-cost=1e-6")),
    ("ini-values", f'{SIM}[tool.pytest.ini_options]\nllm_repeat = "3"\nllm_timeout = "2.5"\n', ()),
    ("report-in-new-folder", SIM, ("--llm-report=new/folder/r.json",)),
    *(
        [
            (
                "native-toml-numbers",
                f"{SIM}[tool.pytest]\nllm_repeat = 3\nllm_max_concurrency = 4\n"
                'llm_timeout = 2.5\nllm_max_cost = 1\nllm_min_pass_rate = 0.8\nllm_dist = "load"\n',
                (),
            )
        ]
        if pytest.version_tuple >= (9, 2)  # typed ini keys; older pytest reads text only
        else []
    ),
]


@pytest.mark.parametrize(("pyproject", "args"), [g[1:] for g in GOOD], ids=[g[0] for g in GOOD])
def test_valid_edge_values_are_accepted(pytester, monkeypatch, pyproject, args):
    monkeypatch.delenv("TEST_MODELS", raising=False)
    (pytester.path / "pyproject.toml").write_text(pyproject)
    pytester.makepyfile(test_ok=MODEL_TEST)
    result = pytester.runpytest(*QUIET, "--collect-only", "-q", *args)
    assert result.ret == pytest.ExitCode.OK, "\n".join(result.stdout.lines + result.stderr.lines)


def test_marker_edge_values_are_accepted(pytester, monkeypatch):
    monkeypatch.delenv("TEST_MODELS", raising=False)
    (pytester.path / "pyproject.toml").write_text(SIM)
    pytester.makepyfile(
        test_ok="""
        import pytest

        @pytest.mark.llm(models=None, exclude=None, repeat=2, min_pass_rate="50%")
        def test_a(llm_model):
            pass

        @pytest.mark.llm(models=["sim"], min_pass_rate=0.5, repeat=None)
        def test_b(llm_model):
            pass
        """
    )
    result = pytester.runpytest(*QUIET, "--collect-only", "-q")
    assert result.ret == pytest.ExitCode.OK
    assert [line for line in result.stdout.lines if "::" in line] == [
        "test_ok.py::test_a[sim-run1of2]",
        "test_ok.py::test_a[sim-run2of2]",
        "test_ok.py::test_b[sim]",
    ]


def test_no_timeout_marks_without_pytest_timeout(pytester, monkeypatch):
    """-p no:timeout with a model timeout and --strict-markers: the tests run, unmarked, and
    the header says model timeouts are not enforced per test."""
    monkeypatch.delenv("TEST_MODELS", raising=False)
    (pytester.path / "pyproject.toml").write_text(f"{SIM}timeout = 5\n")
    pytester.makepyfile(
        test_ok="""
        def test_a(llm_model, request):
            assert request.node.get_closest_marker("timeout") is None
        """
    )
    result = pytester.runpytest(*QUIET, "-p", "no:timeout", "--strict-markers")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        ["llm-matrix: pytest-timeout is off: model timeouts are not enforced per test*"]
    )


def test_report_is_valid_json_with_an_explicit_price(pytester, monkeypatch):
    """The price that used to be nan/inf is refused; a real one ends in strict JSON."""
    monkeypatch.delenv("TEST_MODELS", raising=False)
    (pytester.path / "pyproject.toml").write_text(f"{SIM}input_price = 10000\n")
    pytester.makepyfile(test_ok="def test_a(llm):\n    llm.complete('hi')\n")
    result = pytester.runpytest(*QUIET, "--llm-report=r.json")
    result.assert_outcomes(passed=1)
    text = (pytester.path / "r.json").read_text()
    json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in the report"))
