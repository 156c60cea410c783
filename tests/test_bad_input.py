"""A corpus of malformed configs, option values, ini values, environment and markers.

Each must end with a usage error (exit 4; markers: a collection error, exit 2) whose message
names where the mistake is (the file and field, the option or ini key), and never with a
traceback, an INTERNALERROR or a hang. A few valid edge values must be accepted, so that the
checks are not just refusing everything.
"""

from __future__ import annotations

import dataclasses

import pytest

BASE = '[tool.llm-matrix.models.m]\nprovider = "simulator"\n'
A_TEST = "def test_a(llm):\n    pass\n"


@dataclasses.dataclass(frozen=True)
class Case:
    id: str
    config: str = BASE  # the pyproject.toml's [tool.llm-matrix] part (or all of it)
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    ini: str = ""  # lines of [tool.pytest.ini_options]
    test: str = A_TEST
    conftest: str = ""
    files: tuple[tuple[str, bytes], ...] = ()
    code: int = 4
    needle: str = ""  # must appear in the output


def field(name: str, values: list[str], provider: str = "simulator") -> list[Case]:
    head = "[tool.llm-matrix.models.m]\n"
    if name != "provider":
        head += f'provider = "{provider}"\n'
    if provider == "openai-compatible" and name != "base_url":
        head += 'base_url = "http://localhost:8000/v1"\n'
    return [
        Case(
            f"{name}={value}",
            config=head + f"{name} = {value}\n",
            needle=f"pyproject.toml: model 'm': field '{name}'",
        )
        for value in values
    ]


NUMBERS = ['"abc"', "true", "[]", "{}", "nan", "inf", "-inf", "-1", "0", "-0.0", "1e308"]
HUGE_INT = "9223372036854775807"

FIELDS = [
    *field("timeout", [*NUMBERS, "1e-9", "0.05", "604801", HUGE_INT]),
    *field(
        "max_concurrency",
        ['"4"', "4.5", "true", "[]", "nan", "inf", "0", "-1", "10001", HUGE_INT, "1e308"],
    ),
    *field("rpm", ['"60"', "1.5", "false", "0", "-5", "1000001", "nan", "inf", HUGE_INT]),
    *field("input_price", ['"1"', "true", "[]", "-0.01", "-inf", "nan", "inf", "1e308", "1000001"]),
    *field(
        "output_price", ['"1"', "true", "[]", "-0.01", "-inf", "nan", "inf", "1e308", "1000001"]
    ),
    *field("provider", ["5", '""', '"azure"', "[]", "true", '"OpenAI"']),
    *field("model", ["5", '""', '" "', "[]", "true", '"a\\u0000b"', '"a\\nb"']),
    *field("api", ['"grpc"', "5", '""']),
    *field(
        "base_url",
        [
            "5",
            '""',
            '"ftp://x.example"',
            '"localhost:11434"',
            '"http://"',
            '"http://exa mple.com"',
            '"javascript:alert(1)"',
            '"http://host\\n"',
            "[]",
        ],
        provider="openai-compatible",
    ),
    *field("api_key_env", ["5", '""', '"A B"', '"A=B"', '"1ABC"', '"KEY\\n"', "[]"]),
    *field(
        "tags", ["5", "[5]", '["", "x"]', '["all"]', '["-x"]', '["a,b"]', '["a b"]', "[true]", "{}"]
    ),
    *field(
        "params",
        [
            "5",
            '"x"',
            "[]",
            "true",
            "{ temperature = nan }",
            "{ t = inf }",
            "{ when = 1979-05-27 }",
            "{ a = [1, nan] }",
            "{ a = { b = -inf } }",
        ],
    ),
    *field("required", ['"yes"', "1", "[]"]),
    *field("simulate", ["5", "[]"]),
    *field("simulate", ["{ latency = 1 }"], provider="openai"),
]

SIMULATE = [
    Case(
        f"simulate.{knob}",
        config=BASE + f"simulate = {{ {knob} }}\n",
        needle="pyproject.toml: simulator: model 'm'",
    )
    for knob in [
        "latency = nan",
        "latency = -1",
        "latency = [2, 1]",
        "latency = 1e308",
        "latency = [0, inf]",
        "rpm = -1",
        "rpm = 1.5",
        "rpm = 10000001",
        "tokens_per_second = 1e-300",
        "tokens_per_second = inf",
        'faults = [{ kind = "999", every = 1 }]',
        'faults = [{ kind = "429" }]',
        'faults = [{ kind = "hang", every = 1, hang = inf }]',
        'faults = [{ kind = "429", every = 0 }]',
        'faults = [{ kind = "429", every = 1, retry_after = 1e9 }]',
        "unknown = 1",
        'wrong = ["("]',
        "api_key = 5",
        'faults = [{ kind = "not_stream", every = 1, body = "xml" }]',
    ]
]

ALIASES = [
    Case(
        f"alias {alias}",
        config=f'[tool.llm-matrix.models.{alias}]\nprovider = "simulator"\n',
        needle="pyproject.toml: model alias",
    )
    for alias in [
        '""',
        '" "',
        '"a,b"',
        '"-x"',
        '"a b"',
        '"a\\tb"',
        '"all"',
        '"x[1]"',
        '"a]"',
        '"e\\u0007"',
    ]
]

STRUCTURE = [
    Case(
        "unknown field",
        config=BASE + "timout = 5\n",
        needle="unknown field 'timout' (did you mean 'timeout'?)",
    ),
    Case("empty field name", config=BASE + '"" = 1\n', needle="unknown field ''"),
    *[
        Case(
            f"model table {value}",
            config=f"[tool.llm-matrix]\nmodels = {{ m = {value} }}\n",
            needle="model 'm': expected a table of fields",
        )
        for value in ["5", "[]", '"x"']
    ],
    *[
        Case(
            f"llm-matrix = {value}",
            config=f"[tool]\nllm-matrix = {value}\n",
            needle="pyproject.toml: [tool.llm-matrix] must be a table",
        )
        for value in ["5", "[]", '"abc"', "true"]
    ],
    Case(
        "tool = 5",
        args=("--llm-config=other/pyproject.toml",),
        files=(("other/pyproject.toml", b"tool = 5\n"),),
        needle="other/pyproject.toml: 'tool' must be a table",
    ),
    *[
        Case(
            f"models = {value}",
            config=f"[tool.llm-matrix]\nmodels = {value}\n",
            needle="'models' must be a table",
        )
        for value in ["[]", "5", '"abc"']
    ],
    *[
        Case(
            f"default = {value}",
            config=f"[tool.llm-matrix]\ndefault = {value}\n" + BASE,
            needle="pyproject.toml",
        )
        for value in ["5", '""', "[5]", '["nope"]', '[""]', "[]", '["-"]', '["a\\u0001"]']
    ],
    *[
        Case(
            f"groups = {value}",
            config=f"[tool.llm-matrix]\ngroups = {value}\n" + BASE,
            needle="pyproject.toml",
        )
        for value in [
            "5",
            "[]",
            "{ g = 5 }",
            "{ g = [5] }",
            '{ g = ["nope"] }',
            '{ all = ["m"] }',
            '{ "" = ["m"] }',
            '{ "a,b" = ["m"] }',
            '{ "-g" = ["m"] }',
            '{ m = ["m"] }',
        ]
    ],
    *[
        Case(
            f"max_concurrency = {value}",
            config=f"[tool.llm-matrix]\nmax_concurrency = {value}\n" + BASE,
            needle="pyproject.toml: setting 'max_concurrency'",
        )
        for value in ["0", "-1", '"4"', "4.5", "nan", "inf", "10001", HUGE_INT, "true"]
    ],
    *[
        Case(
            f"simulator = {value}",
            config=f"[tool.llm-matrix]\nsimulator = {value}\n" + BASE,
            needle="pyproject.toml",
        )
        for value in [
            "5",
            "{ models = {} }",
            "{ rules = 5 }",
            '{ rules = [{ match = "(", reply = "x" }] }',
            "{ default_reply = 5 }",
            '{ seed = "x" }',
            "{ unknown = 1 }",
        ]
    ],
    Case(
        "unknown setting",
        config='[tool.llm-matrix]\ndefualt = ["m"]\n' + BASE,
        needle="unknown setting 'defualt' (did you mean 'default'?)",
    ),
    Case(
        "bad TOML",
        config="",
        files=(("llm-matrix.toml", b"[models.m]\nprovider = \n"),),
        needle="llm-matrix.toml: invalid TOML: Invalid value (at line 2, column 12)",
    ),
    Case(
        "llm-matrix.toml = 5",
        config="",
        files=(("llm-matrix.toml", b"models = 5\n"),),
        needle="llm-matrix.toml: 'models' must be a table",
    ),
]


def option(name: str, values: list[str], needle: str = "") -> list[Case]:
    return [
        Case(f"{name}={value}", args=(f"{name}={value}",), needle=needle or name)
        for value in values
    ]


OPTIONS = [
    *option(
        "--max-concurrency",
        ["abc", "0", "-1", "1.5", "nan", "inf", "99999999999999999999", "10001"],
    ),
    *option("--llm-timeout", ["abc", "0", "-1", "nan", "inf", "-inf", "1e308", "1e-9", "604801"]),
    *option("--llm-max-attempts", ["0", "-1", "abc", "1.5", "101", "nan"]),
    *option("--llm-max-wait", ["0", "-1", "nan", "inf", "1e308", "abc"]),
    *option("--llm-max-cost", ["0", "-1", "nan", "inf", "abc", "1e308"]),
    *option("--llm-repeat", ["0", "-1", "1001", "abc", "nan", "1.5"]),
    *option("--llm-min-pass-rate", ["2", "101%", "-1", "nan", "inf", "abc", "", "%", "50%%", "80"]),
    *option("--llm-repeat-pass-rate", ["2", "nan", "1.5", "-0.1"]),
    *option("--llm-dist", ["foo"]),
    *option("--llm-progress", ["foo"]),
    *option("--llm-report", [".", "test_a.py/r.json"]),
    *option("--llm-config", ["missing.toml", "."]),
    *[
        Case(f"--llm-config={name}", args=(f"--llm-config={name}",), needle=f"{name}: {needle}")
        for name, needle in [
            ("/bin/ls", "not a TOML file (not UTF-8 text)"),
            ("latin1.toml", "not a TOML file (not UTF-8 text)"),
            ("broken.toml", "invalid TOML"),
            ("models5.toml", "'models' must be a table"),
        ]
    ],
    *option("--models", ["", ",", "nope", "-nope", "all,-m", "m,nope"]),
]
CONFIG_FILES = (
    ("latin1.toml", "[models.caf\xe9]\nprovider = 'simulator'\n".encode("latin-1")),
    ("broken.toml", b"[models\n"),
    ("models5.toml", b"models = 5\n"),
)
OPTIONS = [dataclasses.replace(case, files=CONFIG_FILES) for case in OPTIONS]

INI = [
    Case(f"ini {key}={value}", ini=f'{key} = "{value}"\n', needle=f"ini {key}")
    for key, value in [
        ("llm_timeout", "nan"),
        ("llm_timeout", "0"),
        ("llm_max_attempts", "0"),
        ("llm_max_attempts", "1000"),
        ("llm_repeat", "2000"),
        ("llm_min_pass_rate", "2"),
        ("llm_repeat_pass_rate", "nan"),
        ("llm_dist", "x"),
        ("llm_progress", "x"),
        ("llm_max_cost", "inf"),
        ("llm_max_wait", "-1"),
        ("llm_strict", "maybe"),
        ("llm_report", "."),
    ]
] + [
    Case("ini llm_config", ini='llm_config = "missing.toml"\n', needle="--llm-config: no such file")
]

ENV = [
    Case(f"TEST_MODELS={value!r}", env=(("TEST_MODELS", value),), needle="TEST_MODELS")
    for value in ["nope", ",", "-", "all,-m", "m,nope", "-all"]
] + [
    Case(
        f"key {key!r}",
        config=BASE + 'api_key_env = "LLM_MATRIX_BAD_KEY"\n',
        env=(("LLM_MATRIX_BAD_KEY", key),),
        needle="model 'm': LLM_MATRIX_BAD_KEY holds a control or non-ASCII character",
    )
    for key in ["sk-abc\ndef0123456789", "sk-abc\x1bdef0123456789", "sk-caf\xe9-0123456789"]
]

MARKERS = [
    Case(
        f"marker {marker}",
        test=f"import pytest\n\n@pytest.mark.llm({marker})\n" + A_TEST,
        code=2,
        needle="@pytest.mark.llm",
    )
    for marker in [
        "models=5",
        "models=[5]",
        'models=["nope"]',
        "exclude=5",
        'exclude=["nope"]',
        "repeat=0",
        "repeat=1001",
        "repeat=1.5",
        'repeat="3"',
        "repeat=True",
        "min_pass_rate=2",
        'min_pass_rate=float("nan")',
        'min_pass_rate=float("inf")',
        'min_pass_rate="abc"',
        "min_pass_rate=-0.1",
        'min_pass_rate="2"',
        '"m"',
        'model="m"',
        "repeat=2**63",
    ]
]

HOOK = "from pytest_llm_matrix import Model\n\ndef pytest_llm_matrix_models(config):\n    return "
HOOKS = [
    Case(
        f"hook returns {value}",
        conftest=HOOK + value + "\n",
        needle="pytest_llm_matrix_models hook",
    )
    for value in [
        "5",
        '"m"',
        "[5]",
        '{"": {"provider": "simulator"}}',
        '{"a": 5}',
        '{5: {"provider": "simulator"}}',
        '[Model("a,b", provider="simulator", model="x", api="openai")]',
        '[Model("ok", provider="simulator", model="ok", api="openai", timeout=float("nan"))]',
        '[Model("ok", provider="simulator", model="ok", api="openai", tags=("all",))]',
        '{"m": {"provider": "simulator"}}',
    ]
]

CORPUS = [*FIELDS, *SIMULATE, *ALIASES, *STRUCTURE, *OPTIONS, *INI, *ENV, *MARKERS, *HOOKS]


def run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, case: Case) -> pytest.RunResult:
    monkeypatch.delenv("TEST_MODELS", raising=False)
    for name, value in case.env:
        monkeypatch.setenv(name, value)
    ini = '\n[tool.pytest.ini_options]\nasyncio_default_fixture_loop_scope = "function"\n'
    ini += case.ini
    (pytester.path / "pyproject.toml").write_text(case.config + ini)
    pytester.makepyfile(test_a=case.test)
    if case.conftest:
        pytester.makeconftest(case.conftest)
    for name, data in case.files:
        (pytester.path / name).parent.mkdir(parents=True, exist_ok=True)
        (pytester.path / name).write_bytes(data)
    return pytester.runpytest("-p", "no:cacheprovider", *case.args)


def test_the_corpus_is_large():
    assert len(CORPUS) >= 250
    assert len({case.id for case in CORPUS}) == len(CORPUS)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("case", CORPUS, ids=[case.id for case in CORPUS])
def test_bad_input_is_a_clear_error(pytester, monkeypatch, case):
    result = run(pytester, monkeypatch, case)
    output = result.stdout.str() + "\n" + result.stderr.str()
    assert "Traceback" not in output
    assert "INTERNALERROR" not in output
    assert result.ret == case.code, output
    assert case.needle in output, output
    assert "0123456789" not in output  # no key of the corpus is quoted
    if case.code == 4:
        assert result.stderr.lines, output  # "ERROR: ..." or argparse's "error: ..."


VALID = [
    Case("timeout = 0.5", config=BASE + "timeout = 0.5\n", code=0),
    Case("timeout = a week", config=BASE + "timeout = 604800\n", code=0),
    Case("max_concurrency = 10000", config=BASE + "max_concurrency = 10000\n", code=0),
    Case("input_price = 0", config=BASE + "input_price = 0\noutput_price = 1000000\n", code=0),
    Case(
        "alias org/model:1.5",
        config='[tool.llm-matrix.models."org/model:1.5"]\nprovider = "simulator"\n',
        code=0,
    ),
    Case("params", config=BASE + 'params = { temperature = 0.0, stop = ["\\n"], n = 1 }\n', code=0),
    Case("80%", args=("--llm-min-pass-rate=80%",), code=0),
    Case("0.8", args=("--llm-min-pass-rate=0.8", "--llm-repeat-pass-rate=1"), code=0),
    Case(
        "caps",
        args=("--max-concurrency=10000", "--llm-max-attempts=100", "--llm-max-wait=86400"),
        code=0,
    ),
    Case(
        "hook Model",
        conftest=HOOK + '[Model("hooked", provider="simulator", model="h", api="openai")]\n',
        code=0,
    ),
]


@pytest.mark.parametrize("case", VALID, ids=[case.id for case in VALID])
def test_valid_edge_values_are_accepted(pytester, monkeypatch, case):
    result = run(pytester, monkeypatch, case)
    assert result.ret == 0, result.stdout.str() + result.stderr.str()


def test_dev_null_as_config_is_an_empty_config_not_a_missing_file(pytester, monkeypatch):
    result = run(pytester, monkeypatch, Case("dev null", args=("--llm-config=/dev/null",)))
    assert "no such file" not in result.stderr.str()
    result.stdout.fnmatch_lines(["*uses llm_model, but no models are configured*"])


def test_a_model_timeout_without_pytest_timeout_is_said_not_a_crash(pytester, monkeypatch):
    case = Case(
        "no timeout plugin",
        config=BASE + "timeout = 5\n",
        args=("-p", "no:timeout", "--strict-markers"),
    )
    result = run(pytester, monkeypatch, case)
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(
        ["llm-matrix: pytest-timeout is off: model timeouts are not enforced*"]
    )


def test_the_standalone_simulator_refuses_a_binary_config(tmp_path):
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "pytest_llm_matrix.simulator", "--config", "/bin/ls"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == "error: /bin/ls: not a TOML file (not UTF-8 text)"
