"""Command-line options and their resolution into one frozen :class:`Settings`.

Precedence is CLI > environment > config file > default. Settings are resolved once, in
the controller; xdist workers receive the controller's result through ``workerinput`` so
every process runs the very same selection.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
import re
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final, Literal

import pytest

from pytest_llm_matrix.config import checks
from pytest_llm_matrix.config import registry as reg
from pytest_llm_matrix.config.models import Model
from pytest_llm_matrix.config.selection import resolve

ENV_MODELS: Final = "TEST_MODELS"
WORKERINPUT_KEY: Final = "llm_matrix"
DEFAULT_ATTEMPTS: Final = 4
#: Characters kept of each text of a test's transcript, and megabytes of transcripts a
#: report keeps in all (see pytest_llm_matrix.calls.transcript).
DEFAULT_TRANSCRIPT_CHARS: Final = 4000
TRANSCRIPT_BUDGET_MB: Final = 20
DEFAULT_MAX_WAIT: Final = 60.0
DIST_MODES: Final = ("model", "load")
PROGRESS_MODES: Final = ("auto", "off")
PRELOAD_MODES: Final = ("auto", "on", "off")
#: --llm-check-keys: the selected keyed models' keys checked up front (see calls.keycheck).
CHECK_MODES: Final = ("on", "off")
#: Record modes in which nothing is sent: no key is needed, no simulator starts.
OFFLINE_MODES: Final = ("replay", "prune")
#: The base URL of a simulated model in an offline run (no simulator starts, nothing is
#: sent; the request paths are those the simulator serves).
OFFLINE_URL: Final = "http://replay.invalid"


def _ranged(origin: str, bound: checks.Range) -> Callable[[str], Any]:
    """A parser for a number given as text, whose errors name ``origin`` (the option, or
    the ini key) and the valid range."""

    def parse(text: str) -> float:
        try:
            return bound.parse(text)
        except ValueError as error:
            raise pytest.UsageError(f"{origin}: {error}") from None

    return parse


def _rate(origin: str) -> Callable[[str], float]:
    """A parser for a rate (``0.8`` or ``80%``) whose errors name ``origin``."""

    def parse(text: str) -> float:
        try:
            return checks.parse_rate(text)
        except ValueError as error:
            raise pytest.UsageError(f"{origin}: {error}") from None

    return parse


#: The ranges of the options that take a number, by dest (and ini key).
_RANGES: Final[Mapping[str, checks.Range]] = {
    "llm_max_concurrency": checks.CONCURRENCY,
    "llm_timeout": checks.TIMEOUT,
    "llm_max_attempts": checks.ATTEMPTS,
    "llm_max_wait": checks.MAX_WAIT,
    "llm_max_cost": checks.MAX_COST,
    "llm_repeat": checks.REPEAT,
    "llm_sim_seed": checks.SIM_SEED,
    "llm_transcript_chars": checks.TRANSCRIPT_CHARS,
    "llm_transcript_budget": checks.TRANSCRIPT_BUDGET,
}

#: The parsers of the options that take a number, by dest; each is made for the origin its
#: errors name: the option (``--llm-repeat``) or the ini key (``ini llm_repeat``).
_PARSERS: Final[Mapping[str, Callable[[str], Callable[[str], Any]]]] = {
    **{name: functools.partial(_ranged, bound=bound) for name, bound in _RANGES.items()},
    "llm_min_pass_rate": _rate,
    "llm_repeat_pass_rate": _rate,
}

#: pytest 9.2 takes type expressions for ini keys: shown in ``--help``, and a native TOML
#: number is accepted. The text member comes first, so a value read from an ini file stays
#: as written, for this plugin to check and quote; older pytest reads every value as text.
_TYPED_INI: Final = pytest.version_tuple >= (9, 2)


def _ini_type(name: str) -> Any:
    if not _TYPED_INI:
        return "string"
    if name in ("llm_min_pass_rate", "llm_repeat_pass_rate"):
        return str | float  # 0.8 or "80%"
    number = int if isinstance(_RANGES[name], checks.WholeRange) else float
    return str | number


def _ini_choices(choices: tuple[str, ...]) -> Any:
    return Literal[choices] if _TYPED_INI else "string"


#: How a rate is written, for help texts (argparse needs %% for %).
_RATE_HELP: Final = "a share from 0 to 1 like 0.8, or a percentage like 80%%; not 80"


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("llm-matrix", "run tests across LLMs (pytest-llm-matrix)")
    group.addoption(
        "--models",
        dest="llm_models",
        metavar="SELECTION",
        default=None,
        help="models to run model tests against: comma-separated aliases, groups, tags or "
        "'all'; a leading '-' excludes (all,-gpt-4o). Default: $TEST_MODELS, then the "
        "config's 'default', then all models.",
    )
    group.addoption(
        "--llm-models",
        dest="llm_list_models",
        action="store_true",
        default=False,
        help="list the configured models (provider, model id, api, tags, required, whether "
        "their key variables are set, simulated), the groups, tags, judge and 'default', "
        "and what --models, TEST_MODELS or 'default' selects now; then exit without running "
        "tests.",
    )
    group.addoption(
        "--llm-config",
        dest="llm_config",
        metavar="PATH",
        default=None,
        help="model registry file (TOML). Default: llm-matrix.toml beside the pytest config, "
        "then [tool.llm-matrix] in pyproject.toml. ini: llm_config.",
    )
    group.addoption(
        "--llm-strict",
        dest="llm_strict",
        action="store_true",
        default=None,
        help="fail instead of skipping what cannot run: the run, when a selected model's API "
        "key is missing; a test, when its SDK is not installed. ini: llm_strict.",
    )
    group.addoption(
        "--llm-patch-sdks",
        dest="llm_patch_sdks",
        action="store_true",
        default=None,
        help="during each model test, the generation requests of every openai/anthropic SDK "
        "client (built in the test, cached, openai's module client) go to the model under "
        "test. ini: llm_patch_sdks.",
    )
    group.addoption(
        "--llm-rewrite-model",
        dest="llm_rewrite_model",
        action="store_true",
        default=None,
        help="send every request to the model under test: a request body naming another "
        "model id gets the model under test's (without it, such a request fails the test). "
        "ini: llm_rewrite_model.",
    )
    group.addoption(
        "--max-concurrency",
        dest="llm_max_concurrency",
        metavar="N",
        type=_PARSERS["llm_max_concurrency"]("--max-concurrency"),
        default=None,
        help="cap on requests in flight to all models, across all xdist workers: "
        f"{checks.CONCURRENCY}. ini: llm_max_concurrency; the model config's "
        "max_concurrency comes after both. Default: no global cap.",
    )
    group.addoption(
        "--llm-timeout",
        dest="llm_timeout",
        metavar="SECONDS",
        type=_PARSERS["llm_timeout"]("--llm-timeout"),
        default=None,
        help="per-test timeout for models that set none (becomes a pytest-timeout mark): "
        f"{checks.TIMEOUT}. ini: llm_timeout.",
    )
    group.addoption(
        "--llm-sim-seed",
        dest="llm_sim_seed",
        metavar="N",
        type=_PARSERS["llm_sim_seed"]("--llm-sim-seed"),
        default=None,
        help=f"the built-in simulator's seed for this run ({checks.SIM_SEED}): its latency "
        "ranges and rules with a chance (p); default: its config's seed.",
    )
    group.addoption(
        "--llm-max-attempts",
        dest="llm_max_attempts",
        metavar="N",
        type=_PARSERS["llm_max_attempts"]("--llm-max-attempts"),
        default=None,
        help=f"attempts per request, the first included: {checks.ATTEMPTS} (default "
        f"{DEFAULT_ATTEMPTS}). ini: llm_max_attempts.",
    )
    group.addoption(
        "--llm-max-wait",
        dest="llm_max_wait",
        metavar="SECONDS",
        type=_PARSERS["llm_max_wait"]("--llm-max-wait"),
        default=None,
        help=f"the longest single wait before a retry: {checks.MAX_WAIT} (default "
        f"{DEFAULT_MAX_WAIT:.0f}); a longer Retry-After fails the request. ini: llm_max_wait.",
    )
    group.addoption(
        "--llm-dist",
        dest="llm_dist",
        choices=DIST_MODES,
        default=None,
        help="how model tests are spread over xdist workers: 'model' (default: each model on "
        "as few workers as its cap allows, longest models first, idle workers steal) or "
        "'load' (xdist's own). An explicit --dist always wins. ini: llm_dist.",
    )
    parser.addini(
        "llm_dist",
        "model (default) or load: how model tests spread over workers.",
        type=_ini_choices(DIST_MODES),
        default=None,
    )
    group.addoption(
        "--llm-check-keys",
        dest="llm_check_keys",
        choices=CHECK_MODES,
        default=None,
        help="check the key of every selected model that has one at the start, with a free "
        "request (its model listing), so no test waits for a first request: 'on' (default) "
        "or 'off' (for servers that object). ini: llm_check_keys; config: check_keys.",
    )
    parser.addini(
        "llm_check_keys",
        "on (default) or off: the selected models' keys checked at the start.",
        type=_ini_choices(CHECK_MODES),
        default=None,
    )
    group.addoption(
        "--llm-preload",
        dest="llm_preload",
        choices=PRELOAD_MODES,
        default=None,
        help="fork xdist workers from one process that has imported what they import: "
        "'auto' (default: on Linux, when models are selected), 'on' (also without models), "
        "'off' (every worker starts its own interpreter). ini: llm_preload.",
    )
    parser.addini(
        "llm_preload",
        "auto (default), on or off: preloaded xdist workers.",
        type=_ini_choices(PRELOAD_MODES),
        default=None,
    )
    group.addoption(
        "--llm-min-pass-rate",
        dest="llm_min_pass_rate",
        metavar="RATE",
        type=_PARSERS["llm_min_pass_rate"]("--llm-min-pass-rate"),
        default=None,
        help="per-model gate: the run passes when every required model's pass rate is at "
        f"least RATE ({_RATE_HELP}), whatever its single failures. ini: llm_min_pass_rate.",
    )
    group.addoption(
        "--llm-report",
        dest="llm_report",
        metavar="PATH",
        default=None,
        help="write the per-model and per-test report as JSON to PATH (checked writable at "
        "start). ini: llm_report.",
    )
    group.addoption(
        "--llm-max-cost",
        dest="llm_max_cost",
        metavar="USD",
        type=_PARSERS["llm_max_cost"]("--llm-max-cost"),
        default=None,
        help=f"cost budget for the session, across all workers: {checks.MAX_COST}. Once the "
        "estimated spend reaches it, the remaining model tests are skipped and the run fails. "
        "ini: llm_max_cost.",
    )
    group.addoption(
        "--llm-repeat",
        dest="llm_repeat",
        metavar="N",
        type=_PARSERS["llm_repeat"]("--llm-repeat"),
        default=None,
        help=f"run each model test N times per model ({checks.REPEAT}); it passes when "
        "enough runs pass "
        "(--llm-repeat-pass-rate) and stops early once that is settled. "
        "@pytest.mark.llm(repeat=N) wins. ini: llm_repeat.",
    )
    group.addoption(
        "--llm-repeat-pass-rate",
        dest="llm_repeat_pass_rate",
        metavar="RATE",
        type=_PARSERS["llm_repeat_pass_rate"]("--llm-repeat-pass-rate"),
        default=None,
        help=f"share of a repeated test's runs that must pass on a model ({_RATE_HELP}; "
        "default 1: all). @pytest.mark.llm(min_pass_rate=RATE) wins. ini: llm_repeat_pass_rate.",
    )
    group.addoption(
        "--llm-record",
        dest="llm_record",
        choices=reg.RECORD_MODES,
        default=None,
        help="record and replay the models' answers: 'off' (default: live), 'replay' (no "
        "network, no keys: every request must match a recording), 'new' (replay what "
        "matches, send and record the rest), 'all' (send everything, rewrite the recordings "
        "of the tests that ran), 'prune' (replay, then delete the recordings no test used). "
        "ini: llm_record; config: record.",
    )
    parser.addini(
        "llm_record",
        "off (default), replay, new, all or prune: record and replay the models' answers.",
        type=_ini_choices(reg.RECORD_MODES),
        default=None,
    )
    group.addoption(
        "--llm-cassettes",
        dest="llm_cassettes",
        metavar="DIR",
        default=None,
        help="where recordings live: DIR/<model>/<module path>/<test>.json. Default: an "
        "llm_cassettes folder beside each test module. ini: llm_cassettes; config: cassettes.",
    )
    parser.addini(
        "llm_cassettes",
        "folder of the recordings, relative to this config file.",
        type="paths",
        default=[],
    )
    parser.addini(
        "llm_record_ignore",
        "request body fields left out of a recording's match, e.g. user, metadata.trace_id "
        "(default: user, metadata).",
        type="linelist",
        default=[],
    )
    group.addoption(
        "--llm-coordinator",
        dest="llm_coordinator",
        metavar="URL",
        default=None,
        help="share the caps, cooldowns, unavailable models, first-request gates, budget and "
        "repeats' records with the other jobs of the run through Redis: "
        "redis://[:password@]host:port/db or rediss://... (pip install "
        "'pytest-llm-matrix[redis]'). Default: this machine only. Env: "
        "LLM_MATRIX_COORDINATOR; ini: llm_coordinator; config: coordinator.",
    )
    parser.addini("llm_coordinator", "redis:// URL of the coordinator the run's jobs share.")
    group.addoption(
        "--llm-run-id",
        dest="llm_run_id",
        metavar="ID",
        default=None,
        help="names the state the jobs of one run share in the coordinator. Default: "
        "$LLM_MATRIX_RUN_ID, else the CI's run id (GitHub Actions, GitLab, Buildkite, "
        "CircleCI, Jenkins), else one per session.",
    )
    group.addoption(
        "--llm-progress",
        dest="llm_progress",
        choices=PROGRESS_MODES,
        default=None,
        help="live per-model progress under pytest's own: 'auto' (default: in a terminal, "
        "unless -q) or 'off'. ini: llm_progress.",
    )
    parser.addini(
        "llm_progress",
        "auto (default) or off: live per-model progress.",
        type=_ini_choices(PROGRESS_MODES),
        default=None,
    )
    parser.addini("llm_report", "write the JSON report here, relative to the rootdir.")
    group.addoption(
        "--llm-html",
        dest="llm_html",
        metavar="PATH",
        default=None,
        help="write a self-contained HTML report to PATH: the per-model table, the test x "
        "model grid, cost against pass rate, the baseline's changes (checked writable at "
        "start). ini: llm_html.",
    )
    parser.addini("llm_html", "write the HTML report here, relative to the rootdir.")
    group.addoption(
        "--llm-baseline",
        dest="llm_baseline",
        metavar="PATH|last",
        default=None,
        help="compare with a baseline: 'last' (the last run of the same selection, from "
        "pytest's cache) or the path of a JSON report of --llm-report. The summary shows each "
        "model's pass-rate change with its 95%% interval, and the tests that changed. "
        "ini: llm_baseline.",
    )
    parser.addini("llm_baseline", "'last', or a JSON report to compare with (rootdir-relative).")
    group.addoption(
        "--llm-transcript-chars",
        dest="llm_transcript_chars",
        metavar="N",
        type=_PARSERS["llm_transcript_chars"]("--llm-transcript-chars"),
        default=None,
        help="keep what each request of a model test sent and got in the JSON and HTML "
        f"reports, each text cut at N characters: {checks.TRANSCRIPT_CHARS} (default "
        f"{DEFAULT_TRANSCRIPT_CHARS}; 0: no transcripts). ini: llm_transcript_chars.",
    )
    group.addoption(
        "--llm-transcript-budget",
        dest="llm_transcript_budget",
        metavar="MB",
        type=_PARSERS["llm_transcript_budget"]("--llm-transcript-budget"),
        default=None,
        help="megabytes of transcripts a report keeps in all: "
        f"{checks.TRANSCRIPT_BUDGET} (default {TRANSCRIPT_BUDGET_MB}); past it, a failing "
        "test's transcript takes the place of passed tests', any other is left out. "
        "ini: llm_transcript_budget.",
    )
    group.addoption(
        "--llm-junit-transcripts",
        dest="llm_junit_transcripts",
        action="store_true",
        default=None,
        help="also put each model test's transcript in --junitxml, as its llm_transcript "
        "property (JSON). ini: llm_junit_transcripts.",
    )
    parser.addini(
        "llm_junit_transcripts",
        "put each model test's transcript in --junitxml as a property.",
        type="bool",
        default=False,
    )
    group.addoption(
        "--llm-judge",
        dest="llm_judge",
        metavar="ALIAS",
        default=None,
        help="the configured model the llm_judge fixture asks to grade answers (default: the "
        "config's 'judge'). ini: llm_judge.",
    )
    parser.addini("llm_judge", "the configured model that grades answers (llm_judge).")
    group.addoption(
        "--llm-fail-on-regression",
        dest="llm_fail_on_regression",
        action="store_true",
        default=None,
        help="fail the run when a required model's pass rate is significantly lower than the "
        "baseline's (its 95%% interval lies below 0). ini: llm_fail_on_regression.",
    )
    parser.addini(
        "llm_fail_on_regression",
        "fail on a significant pass-rate drop against the baseline.",
        type="bool",
        default=False,
    )
    for name, text in (
        ("llm_max_concurrency", "cap on requests in flight to all models, across workers."),
        ("llm_repeat", "runs per model of each model test."),
        ("llm_repeat_pass_rate", "share of a repeated test's runs that must pass: 0.8 or 80%."),
        ("llm_min_pass_rate", "per-model pass-rate gate: 0.8 or 80%."),
        ("llm_max_cost", "cost budget for the session, USD."),
        ("llm_timeout", "default per-test timeout for models, seconds."),
        ("llm_max_attempts", "attempts per request, the first included."),
        ("llm_max_wait", "the longest single wait before a retry, seconds."),
        ("llm_transcript_chars", "characters kept of each text of a transcript (0: none)."),
        ("llm_transcript_budget", "megabytes of transcripts a report keeps in all."),
    ):
        parser.addini(name, text, type=_ini_type(name), default=None)
    parser.addini(
        "llm_config",
        "model registry file (TOML), relative to this config file.",
        type="paths",
        default=[],
    )
    parser.addini(
        "llm_patch_sdks",
        "bind SDK clients that the code under test builds to the model under test.",
        type="bool",
        default=False,
    )
    parser.addini(
        "llm_sdks_paths",
        "test files and folders (globs allowed) whose tests use llm_sdks: one per model, their "
        "SDK clients bound to the model under test.",
        type="paths",
        default=[],
    )
    parser.addini(
        "llm_rewrite_model",
        "rewrite a request's model id to the model under test's.",
        type="bool",
        default=False,
    )
    parser.addini(
        "llm_strict",
        "fail instead of skipping: missing API keys (the run), missing SDKs (the test).",
        type="bool",
        default=False,
    )


@dataclasses.dataclass(frozen=True)
class Settings:
    """Everything the plugin decided before collection, identical in every process."""

    registry: reg.Registry = dataclasses.field(default_factory=reg.Registry)
    selected: tuple[str, ...] = ()
    selected_by: str = ""
    strict: bool = False
    check_keys: bool = True  # see pytest_llm_matrix.calls.keycheck
    patch_sdks: bool = False  # see pytest_llm_matrix.adoption
    #: ini llm_sdks_paths: absolute paths (or globs) whose tests use llm_sdks
    sdks_paths: tuple[str, ...] = ()
    rewrite_model: bool = False  # see calls.exchange.Exchange._model_checked
    unavailable: Mapping[str, str] = dataclasses.field(default_factory=dict)
    simulator_url: str | None = None
    max_concurrency: int | None = None
    llm_timeout: float | None = None
    #: where llm_timeout came from, for messages: "--llm-timeout" or "ini llm_timeout"
    llm_timeout_source: str = ""
    #: pytest-timeout's --timeout was typed on the command line (not addopts): it wins over
    #: the models' timeouts for this run (see tracking.add_timeout_marks)
    typed_timeout: bool = False
    max_attempts: int = DEFAULT_ATTEMPTS
    max_wait: float = DEFAULT_MAX_WAIT
    state_dir: str | None = None
    dist: str = "model"
    min_pass_rate: float | None = None
    report_path: str | None = None
    html_path: str | None = None
    baseline: str | None = None  # "last", or a JSON report's absolute path
    fail_on_regression: bool = False
    max_cost: float | None = None
    repeat: int = 1
    repeat_pass_rate: float = 1.0
    progress: str = "auto"
    coordinator: str | None = None  # a redis:// URL; None: this machine's files
    run_id: str = ""
    session_id: str = ""  # one per session, made in the controller
    record: str = "off"  # see pytest_llm_matrix.calls.recording
    cassettes: str | None = None  # an absolute folder; None: beside each test module
    record_ignore: tuple[str, ...] = reg.DEFAULT_RECORD_IGNORE
    #: USD per (input, output, cached) token by model, for the budget; None: no price
    rates: Mapping[str, tuple[float, float, float] | None] = dataclasses.field(default_factory=dict)
    judge: str | None = None  # the alias of the model llm_judge asks (see calls.judge)
    transcript_chars: int = DEFAULT_TRANSCRIPT_CHARS  # see calls.transcript; 0: none
    transcript_budget: int = TRANSCRIPT_BUDGET_MB  # megabytes a report keeps in all
    junit_transcripts: bool = False

    @property
    def models(self) -> list[Model]:
        """The selected models, in config order."""
        return [self.registry.models[name] for name in self.selected]

    @property
    def routed(self) -> list[Model]:
        """The models auxiliary requests are routed to (``[tool.llm-matrix.auxiliary]``
        routes) and the judge, whether selected or not."""
        names = dict.fromkeys([*self.registry.routes.values(), *filter(None, [self.judge])])
        return [self.registry.models[name] for name in names if name in self.registry.models]

    def with_simulator(self, url: str) -> Settings:
        """These settings with the simulated models pointed at the simulator at ``url``."""
        models = {name: model.at_simulator(url) for name, model in self.registry.models.items()}
        registry = dataclasses.replace(self.registry, models=models)
        return dataclasses.replace(self, registry=registry, simulator_url=url)

    def to_wire(self) -> dict[str, Any]:
        """Plain builtins for ``workerinput`` (execnet serializes by exact type)."""
        data = {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}
        data.update(
            registry=self.registry.to_dict(),
            selected=list(self.selected),
            sdks_paths=list(self.sdks_paths),
            record_ignore=list(self.record_ignore),
            unavailable=dict(self.unavailable),
            rates={k: None if v is None else list(v) for k, v in self.rates.items()},
        )
        return data

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> Settings:
        """Rebuild settings in a worker, simulated models already bound to their server."""
        fields = dict(data)
        url = fields.pop("simulator_url")
        settings = cls(
            **{
                **fields,
                "registry": reg.Registry.from_dict(fields["registry"]),
                "selected": tuple(fields["selected"]),
                "sdks_paths": tuple(fields["sdks_paths"]),
                "record_ignore": tuple(fields["record_ignore"]),
                "rates": {k: None if v is None else tuple(v) for k, v in fields["rates"].items()},
            }
        )
        return settings if url is None else settings.with_simulator(url)


SETTINGS_KEY: Final = pytest.StashKey[Settings]()
#: In a worker's ``workerinput``: the controller's pid, which the worker watches.
CONTROLLER_KEY: Final = "llm_matrix_controller"


def distributed(config: pytest.Config) -> bool:
    """Whether xdist runs the tests (this process is its controller or a worker): xdist's own
    condition, a ``--dist`` mode and workers to run it (``-n``, ``--tx``). A ``--dist`` in
    addopts without workers runs the tests in this process."""
    if hasattr(config, "workerinput"):
        return True
    return config.getoption("dist", "no") != "no" and bool(config.getoption("tx", None))


def load_registry(config: pytest.Config) -> reg.Registry:
    explicit: Path | None = None
    if config.option.llm_config is not None:
        origin = "--llm-config"
        explicit = Path(config.invocation_params.dir) / config.option.llm_config
        if not config.option.llm_config.strip():
            raise pytest.UsageError(f"{origin}: expected the path of a TOML file, got ''")
    elif paths := _ini(config, "llm_config"):
        origin = "ini llm_config"
        if len(paths) > 1:
            raise pytest.UsageError(f"{origin}: expected one path, got {len(paths)}")
        explicit = paths[0]
    if explicit is not None and (problem := reg.file_problem(explicit)) is not None:
        raise pytest.UsageError(f"{origin}: {problem}")
    found = reg.find_config(explicit, config.rootpath, config.inipath)
    registry = reg.Registry()
    if found is not None:
        path, table = found
        try:
            where = str(path.relative_to(config.rootpath))
        except ValueError:
            where = str(path)
        registry = reg.parse_registry(table, where)
        if registry.cassettes is not None:  # relative to the config file
            folder = path.parent / Path(registry.cassettes).expanduser()
            registry = dataclasses.replace(registry, cassettes=str(folder.resolve()))
    registry = reg.merge_hook_models(registry, config.hook.pytest_llm_matrix_models(config=config))
    reg.check_registry(registry)
    return registry


#: How to configure a model, for messages about a run without any.
HOW_TO_ADD_MODELS: Final = (
    "add [tool.llm-matrix.models.<alias>] to pyproject.toml, write an llm-matrix.toml beside "
    "your pytest config, or pass --llm-config PATH"
)


def selection_expression(config: pytest.Config, registry: reg.Registry) -> tuple[str, str]:
    """The selection expression and where it comes from: ``--models``, else ``TEST_MODELS``,
    else the config's ``default``, else all. Given with no model configured, it is a usage
    error."""
    cli = config.option.llm_models
    env = os.environ.get(ENV_MODELS, "").strip() or None
    if cli is not None:
        expression, origin = cli, "--models"
    elif env is not None:
        expression, origin = env, ENV_MODELS
    elif registry.default is not None:
        expression, origin = ",".join(registry.default), f"'default' in {registry.source}"
    else:
        expression, origin = "all", "default (all models)"
    if not registry.models and (cli is not None or env is not None):
        raise pytest.UsageError(
            f"{origin} selects models, but none are configured: {HOW_TO_ADD_MODELS}"
        )
    return expression, origin


def unavailable_models(
    config: pytest.Config, registry: reg.Registry, selected: tuple[str, ...]
) -> dict[str, str]:
    """The selected models whose key (or secret header) variable is unset or blank, with
    the reason their tests are skipped; none when nothing is sent (a replay)."""
    if record_mode(config, registry) in OFFLINE_MODES:
        return {}
    return {
        name: missing
        for name in selected
        if (missing := registry.models[name].missing_reason()) is not None
    }


def resolve_settings(config: pytest.Config) -> Settings:
    """Read config, hooks, ``--models``/``TEST_MODELS`` into Settings (controller only)."""
    registry = load_registry(config)
    registry = dataclasses.replace(registry, judge=judge_choice(config, registry)[0])
    expression, origin = selection_expression(config, registry)
    if not registry.models:
        return Settings(registry=registry)
    selected = resolve(expression, registry, origin)
    for name in selected:
        if (problem := registry.models[name].key_problem()) is not None:
            raise pytest.UsageError(f"model {name!r}: {problem}")
    record = record_mode(config, registry)
    unavailable = unavailable_models(config, registry, selected)
    strict = bool(config.option.llm_strict) or bool(_ini(config, "llm_strict"))
    if strict and unavailable:
        missing = "; ".join(f"{name}: {why}" for name, why in unavailable.items())
        raise pytest.UsageError(
            f"--llm-strict: selected models cannot run: {missing}. Set the keys, or deselect "
            "those models with --models"
        )
    repeat_rate = _setting(config, "llm_repeat_pass_rate")
    report_path, html_path = _report_path(config), _report_path(config, "llm_html")
    baseline = _baseline(config)
    if html_path is not None:
        for other, what in ((report_path, "--llm-report"), (baseline, "--llm-baseline")):
            if other is not None and Path(other).resolve() == Path(html_path).resolve():
                raise pytest.UsageError(
                    f"--llm-html and {what} name the same file ({html_path}): the HTML report "
                    f"would overwrite the JSON one; give it another name"
                )
    return Settings(
        registry=registry,
        selected=selected,
        selected_by=origin,
        strict=strict,
        check_keys=_check_keys(config, registry),
        patch_sdks=bool(config.option.llm_patch_sdks) or bool(_ini(config, "llm_patch_sdks")),
        sdks_paths=_sdks_paths(config),
        rewrite_model=bool(config.option.llm_rewrite_model)
        or bool(_ini(config, "llm_rewrite_model")),
        unavailable=unavailable,
        max_concurrency=_setting(config, "llm_max_concurrency") or registry.max_concurrency,
        llm_timeout=_setting(config, "llm_timeout"),
        llm_timeout_source="--llm-timeout"
        if config.option.llm_timeout is not None
        else "ini llm_timeout",
        typed_timeout=any(
            arg == "--timeout" or arg.startswith("--timeout=")
            for arg in config.invocation_params.args
        ),
        max_attempts=_setting(config, "llm_max_attempts") or DEFAULT_ATTEMPTS,
        max_wait=_setting(config, "llm_max_wait") or DEFAULT_MAX_WAIT,
        dist=_setting(config, "llm_dist", _one_of(DIST_MODES)) or DIST_MODES[0],
        progress=_setting(config, "llm_progress", _one_of(PROGRESS_MODES)) or PROGRESS_MODES[0],
        min_pass_rate=_setting(config, "llm_min_pass_rate"),
        repeat=_setting(config, "llm_repeat") or 1,
        repeat_pass_rate=1.0 if repeat_rate is None else repeat_rate,
        report_path=report_path,
        html_path=html_path,
        baseline=baseline,
        fail_on_regression=_fail_on_regression(config),
        max_cost=_setting(config, "llm_max_cost"),
        record=record,
        cassettes=_cassettes(config, registry),
        record_ignore=_record_ignore(config, registry),
        coordinator=_coordinator(config, registry),
        run_id=_run_id(config),
        session_id=uuid.uuid4().hex,
        judge=registry.judge,
        transcript_chars=_transcript_chars(config),
        transcript_budget=_setting(config, "llm_transcript_budget") or TRANSCRIPT_BUDGET_MB,
        junit_transcripts=bool(config.option.llm_junit_transcripts)
        or bool(_ini(config, "llm_junit_transcripts")),
    )


def _transcript_chars(config: pytest.Config) -> int:
    chars = _setting(config, "llm_transcript_chars")
    return DEFAULT_TRANSCRIPT_CHARS if chars is None else int(chars)


def judge_choice(config: pytest.Config, registry: reg.Registry) -> tuple[str | None, str]:
    """The judge and where it comes from: --llm-judge, else ini llm_judge, else the config's
    ``judge``, each a configured model; else none."""
    for value, origin in (
        (config.option.llm_judge, "--llm-judge"),
        (_ini(config, "llm_judge"), "ini llm_judge"),
        (registry.judge, f"'judge' in {registry.source}"),
    ):
        if value is None or (origin != "--llm-judge" and not str(value).strip()):
            continue
        alias = str(value).strip()
        if not alias:
            raise pytest.UsageError(
                f"{origin}: expected the alias of a configured model, got ''; known models: "
                f"{', '.join(registry.models) or 'none'}"
            )
        if alias not in registry.models:
            known = ", ".join(registry.models) or "none"
            raise pytest.UsageError(
                f"{origin}: {checks.shown(alias)} is not a configured model"
                f"{reg.suggest(alias, registry.models)}; known models: {known}"
            )
        return alias, origin
    return None, ""


def _check_keys(config: pytest.Config, registry: reg.Registry) -> bool:
    """--llm-check-keys, else ini llm_check_keys, else the config's check_keys, else on."""
    mode = _setting(config, "llm_check_keys", _one_of(CHECK_MODES))
    if mode is not None:
        return bool(mode == "on")
    return registry.check_keys is not False


def _sdks_paths(config: pytest.Config) -> tuple[str, ...]:
    """ini llm_sdks_paths, each an existing file or folder, or a glob that matches one (a
    typo would otherwise make no model test at all, silently)."""
    import glob

    found = []
    folder = config.inipath.parent if config.inipath is not None else config.rootpath
    for given in _ini(config, "llm_sdks_paths"):
        path = os.path.normpath(str(given))
        shown = os.path.relpath(path, folder)
        if any(char in path for char in "*?["):
            if not glob.glob(path, recursive=True):
                raise pytest.UsageError(
                    f"ini llm_sdks_paths: {shown} matches no file or folder (in {folder})"
                )
        elif not os.path.exists(path):
            raise pytest.UsageError(f"ini llm_sdks_paths: {shown} does not exist (in {folder})")
        found.append(path)
    return tuple(found)


def _baseline(config: pytest.Config) -> str | None:
    """--llm-baseline, else ini llm_baseline: ``last``, or a report's absolute path (read,
    and refused with a usage error if unusable, when the session starts)."""
    if (given := config.option.llm_baseline) is not None:
        origin, folder = "--llm-baseline", Path(config.invocation_params.dir)
    elif given := str(_ini(config, "llm_baseline") or "").strip():
        origin, folder = "ini llm_baseline", config.rootpath
    else:
        return None
    if not given.strip():
        raise pytest.UsageError(f"{origin}: expected 'last' or the path of a JSON report, got ''")
    if given.strip() == "last":
        return "last"
    return str(folder / Path(given).expanduser())


def _fail_on_regression(config: pytest.Config) -> bool:
    wanted = bool(config.option.llm_fail_on_regression) or bool(
        _ini(config, "llm_fail_on_regression")
    )
    if wanted and _baseline(config) is None:
        raise pytest.UsageError(
            "--llm-fail-on-regression compares with a baseline: give --llm-baseline=last (the "
            "last run of this selection) or --llm-baseline=PATH (a JSON report of --llm-report)"
        )
    return wanted


#: CI systems' variables naming one run of a pipeline (shared by all its jobs).
CI_RUN_IDS: Final = (
    ("GITHUB_RUN_ID", "GITHUB_RUN_ATTEMPT"),
    ("CI_PIPELINE_ID", None),  # GitLab
    ("BUILDKITE_BUILD_ID", None),
    ("CIRCLE_WORKFLOW_ID", None),
    ("BUILD_TAG", None),  # Jenkins
)
COORDINATOR_SCHEMES: Final = ("redis", "rediss")


def _coordinator(config: pytest.Config, registry: reg.Registry) -> str | None:
    """--llm-coordinator, else $LLM_MATRIX_COORDINATOR, else ini, else the config's."""
    for origin, value in (
        ("--llm-coordinator", config.option.llm_coordinator),
        ("LLM_MATRIX_COORDINATOR", os.environ.get("LLM_MATRIX_COORDINATOR")),
        ("ini llm_coordinator", _ini(config, "llm_coordinator")),
        ("config coordinator", registry.coordinator),
    ):
        if value is None or (origin != "--llm-coordinator" and not str(value).strip()):
            continue
        url = str(value).strip()
        scheme = url.partition("://")[0] if "://" in url else ""
        if scheme.lower() not in COORDINATOR_SCHEMES:
            # never the URL as given: a password in it would be shown too
            got = shown_url(url) if scheme else "a URL without redis:// or rediss://"
            raise pytest.UsageError(
                f"{origin}: expected redis://[:password@]host:port/db or rediss://..., got {got}"
            )
        return url
    return None


#: What a query key holding a credential contains (compared without case or punctuation).
_SECRET_KEY_PARTS: Final = ("pass", "pwd", "token", "secret", "key", "auth", "cred", "sig")
_SCHEME: Final = re.compile(r"[A-Za-z][A-Za-z0-9+.-]{0,31}")
#: A host and port that cannot be a password cut short: a name or [IPv6] and digits.
_HOST_PORT: Final = re.compile(r"(?:\[[0-9A-Fa-f:.]*\]|[^:\[\]@]*)(?::[0-9]*)?")


def shown_url(url: str) -> str:
    """A coordinator URL as messages show it: scheme, host, port, database and query, never
    a credential in it, whatever its shape. The user and password before an ``@`` (the
    last one: a password may hold ``@``), the values of query keys like ``password`` or
    ``token``, and a password percent-encoded into the host are masked. A URL whose host
    part is not a host (a password holding ``/``, ``?`` or ``#`` not percent-encoded, or
    its ``@`` missing) is not shown at all: no one can tell where its password ends."""
    scheme, rest = _split_scheme(url.strip())
    head = "" if scheme is None else f"{scheme}://"
    authority, tail = _split_authority(rest)
    if _unclear(authority, tail):
        return f"{head}*** (hidden: where its password ends is unclear; percent-encode @/?#)"
    decoded = _unquote(authority)
    shown = ("***@" if "@" in decoded else "") + decoded.rpartition("@")[2]
    path, _, query = tail.partition("#")[0].partition("?")
    if query:
        pairs = (pair.partition("=") for pair in query.split("&"))
        path += "?" + "&".join(
            f"{key}=***" if _secret_key(key) else f"{key}{sep}{value}" for key, sep, value in pairs
        )
    return "".join(c if c.isprintable() else "?" for c in head + shown + path)


def url_secrets(url: str) -> list[str]:
    """The parts of ``url`` that may be credentials, as given and percent-decoded, longest
    first: what :func:`scrubbed` masks in a message about it."""
    _, rest = _split_scheme(url.strip())
    authority, tail = _split_authority(rest)
    found: set[str] = set()
    if _unclear(authority, tail):  # where the password ends is unknown: all up to its end
        cut = max(rest.rfind("@"), rest.lower().rfind("%40"))
        before = rest[:cut] if cut >= 0 else rest
        found.add(before)
        found.update(re.split(r"[/?#:@&=;]|%40", before, flags=re.IGNORECASE))
    for userinfo in (authority, _unquote(authority)):
        if "@" in userinfo:
            userinfo = userinfo.rpartition("@")[0]
            found.update((userinfo, *userinfo.split(":", 1)))
    for pair in tail.partition("#")[0].partition("?")[2].split("&"):
        key, _, value = pair.partition("=")
        if _secret_key(key):
            found.add(value)
    found.update([_unquote(part, plus) for part in found for plus in (False, True)])
    return sorted((part for part in found if len(part) > 1), key=len, reverse=True)


def scrubbed(text: str, url: str) -> str:
    """``text`` (an error's, say) without any part of ``url`` that may be a credential."""
    for secret in url_secrets(url):
        text = text.replace(secret, "***")
    return text


def _split_scheme(url: str) -> tuple[str | None, str]:
    scheme, found, rest = url.partition("://")
    return (scheme, rest) if found and _SCHEME.fullmatch(scheme) else (None, url)


def _split_authority(rest: str) -> tuple[str, str]:
    """``host:port`` (with any user and password) and what follows it (path, query)."""
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    return rest[:end], rest[end:]


def _unclear(authority: str, tail: str) -> bool:
    """Whether a password may run past the host part: an ``@`` after it, or a host part
    that is no host and port (``redis://:pa/ss@host`` cut at ``/``: ``:pa``)."""
    host = _unquote(authority).rpartition("@")[2]
    return "@" in tail or "%40" in tail.lower() or not _HOST_PORT.fullmatch(host)


def _unquote(text: str, plus: bool = False) -> str:
    """Percent-decoded as redis-py decodes a URL: its host and password, or (``plus``)
    its query."""
    from urllib.parse import unquote, unquote_plus

    return unquote_plus(text) if plus else unquote(text)


def _secret_key(key: str) -> bool:
    name = re.sub(r"[^a-z0-9]", "", _unquote(key, plus=True).lower())
    return any(part in name for part in _SECRET_KEY_PARTS)


def _run_id(config: pytest.Config) -> str:
    """--llm-run-id, else $LLM_MATRIX_RUN_ID, else the CI's run id, else a new one."""
    for origin, given in (
        ("--llm-run-id", config.option.llm_run_id),
        ("LLM_MATRIX_RUN_ID", os.environ.get("LLM_MATRIX_RUN_ID")),
    ):
        if given is None or not given.strip():
            continue
        if not given.strip().isprintable() or len(given.strip()) > 200:
            raise pytest.UsageError(f"{origin}: expected up to 200 printable characters")
        return given.strip()
    for name, attempt in CI_RUN_IDS:
        if value := os.environ.get(name, "").strip():
            extra = os.environ.get(attempt, "").strip() if attempt else ""
            found = f"{name.lower()}-{value}" + (f"-{extra}" if extra else "")
            if not found.isprintable() or len(found) > 200:  # named by its digest instead
                found = f"{name.lower()}-{hashlib.sha256(found.encode()).hexdigest()[:24]}"
            return found
    return uuid.uuid4().hex


def _record_ignore(config: pytest.Config, registry: reg.Registry) -> tuple[str, ...]:
    """ini llm_record_ignore, else the config's record_ignore, else user and metadata."""
    if given := _ini(config, "llm_record_ignore"):
        try:
            return reg.field_names(list(given))
        except ValueError as error:
            raise pytest.UsageError(f"ini llm_record_ignore: {error}") from None
    if registry.record_ignore is not None:
        return registry.record_ignore
    return reg.DEFAULT_RECORD_IGNORE


def record_mode(config: pytest.Config, registry: reg.Registry) -> str:
    """--llm-record, else ini llm_record, else the config's record, else off."""
    chosen = _setting(config, "llm_record", _one_of(reg.RECORD_MODES))
    return str(chosen or registry.record or reg.RECORD_MODES[0])


def _cassettes(config: pytest.Config, registry: reg.Registry) -> str | None:
    """--llm-cassettes (from the invocation folder), else ini llm_cassettes (from the ini
    file), else the config's cassettes (from its file); None: beside each test module."""
    if (given := config.option.llm_cassettes) is not None:
        if not given.strip():
            raise pytest.UsageError("--llm-cassettes: expected a folder, got ''")
        folder = Path(config.invocation_params.dir) / Path(given).expanduser()
    elif paths := _ini(config, "llm_cassettes"):
        if len(paths) > 1:
            raise pytest.UsageError(f"ini llm_cassettes: expected one folder, got {len(paths)}")
        folder = Path(paths[0])
    elif registry.cassettes is not None:
        folder = Path(registry.cassettes)
    else:
        return None
    if folder.exists() and not folder.is_dir():
        raise pytest.UsageError(f"llm cassettes folder {folder} is a file, not a folder")
    return str(folder.resolve())


def preload_mode(config: pytest.Config) -> str:
    """--llm-preload, else ini llm_preload, else auto (see
    :mod:`pytest_llm_matrix.distribution.preload`)."""
    return str(_setting(config, "llm_preload", _one_of(PRELOAD_MODES)) or PRELOAD_MODES[0])


def _ini(config: pytest.Config, name: str) -> Any:
    """An ini value; a value pytest cannot convert to the key's type is a usage error that
    names the key and, for a number, its range (pytest's own message may do neither)."""
    try:
        return config.getini(name)
    except (TypeError, ValueError, pytest.UsageError) as error:
        expected = f" (expected {_RANGES[name]})" if name in _RANGES else ""
        raise pytest.UsageError(f"ini {name}: {error}{expected}") from None


def _report_path(config: pytest.Config, name: str = "llm_report") -> str | None:
    """An output's path (``--llm-report``, ``--llm-html``), checked now: finding at the end
    that it cannot be written would lose the report of a whole run."""
    if getattr(config.option, name) is not None:
        text, origin = getattr(config.option, name), "--" + name.replace("_", "-")
        path = Path(config.invocation_params.dir) / text
    elif text := str(_ini(config, name) or "").strip():
        origin = f"ini {name}"
        path = config.rootpath / text
    else:
        return None
    problem = _unwritable(path) if text.strip() else "expected a file name, got ''"
    if problem is not None:
        raise pytest.UsageError(f"{origin}: {problem}")
    return str(path)


def _unwritable(path: Path) -> str | None:
    """Why the report cannot be written at ``path``, found by trying: permission bits say
    nothing for root, nor on a read-only or virtual file system."""
    import tempfile

    if "\0" in str(path):
        return "the path contains a NUL character"
    if path.is_dir():
        return f"{path} is a directory; give a file name"
    try:
        if path.exists():
            if not path.is_file():
                return f"{path} is not a regular file"
            os.close(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC))
            return None
        folder = path.parent
        while not folder.exists():
            folder = folder.parent
        if not folder.is_dir():
            return f"cannot write {path}: {folder} is not a directory"
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".llm-matrix-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as error:
        return f"cannot write {path}: {error.strerror or error}"
    return None


def _setting(
    config: pytest.Config, name: str, parser: Callable[[str], Callable[[str], Any]] | None = None
) -> Any:
    """The command line's value (already parsed by the option's type), else the ini file's,
    read by the same parser but naming the ini key in its errors; else None."""
    value = getattr(config.option, name)
    if value is not None:
        return value
    raw = _ini(config, name)  # text; a number where pytest types the key (0 is a value too)
    if raw is not None and (text := str(raw).strip()):
        value = (parser or _PARSERS[name])(f"ini {name}")(text)
    return value


def _one_of(choices: tuple[str, ...]) -> Callable[[str], Callable[[str], str]]:
    def parser(origin: str) -> Callable[[str], str]:
        def parse(text: str) -> str:
            if text not in choices:
                raise pytest.UsageError(
                    f"{origin}: expected one of {', '.join(choices)}, got {checks.shown(text)}"
                )
            return text

        return parse

    return parser
