"""What the plugin does at the session's milestones: configure, collected, header.

Module-level hooks in :mod:`pytest_llm_matrix.plugin` stay thin and call these.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Generator
from pathlib import Path
from typing import TYPE_CHECKING, Final

import pytest

from pytest_llm_matrix.adoption import fixtures as adoption_fixtures
from pytest_llm_matrix.calls import context, fixtures, transcript
from pytest_llm_matrix.config import checks
from pytest_llm_matrix.config.options import (
    CONTROLLER_KEY,
    DEFAULT_TRANSCRIPT_CHARS,
    OFFLINE_MODES,
    OFFLINE_URL,
    SETTINGS_KEY,
    WORKERINPUT_KEY,
    Settings,
    distributed,
    preload_mode,
    resolve_settings,
)
from pytest_llm_matrix.matrix import fixtures as matrix_fixtures
from pytest_llm_matrix.matrix.parametrize import (
    DESELECTED_KEY,
    DESELECTED_OUTPUT,
    Matrix,
    Repeats,
    duplicate_id_problem,
    model_of,
)
from pytest_llm_matrix.simulator.service import SIMULATOR_KEY, SimulatorService

if TYPE_CHECKING:
    from pytest_llm_matrix.calls.keycheck import KeyChecks
    from pytest_llm_matrix.config.models import Model

#: Settings resolved early, for ``-n auto`` (before pytest_configure), reused afterwards.
EARLY_KEY: Final = pytest.StashKey[Settings]()
#: What ``-n auto`` chose and why, for the header.
AUTO_KEY: Final = pytest.StashKey[tuple[int | None, str]]()
_AUTO_ENV: Final = "PYTEST_XDIST_AUTO_NUM_WORKERS"
#: The most workers -n auto starts at the user's word (a typo of a few digits more would
#: start thousands of processes, or fail allocating them).
MAX_AUTO_WORKERS: Final = 1024
#: Plugins that order tests themselves; with them, the sequential run keeps their order.
REORDERING_PLUGINS: Final = ("randomly", "random_order", "pytest_randomly")


def early_settings(config: pytest.Config) -> Settings:
    if EARLY_KEY not in config.stash:
        config.stash[EARLY_KEY] = resolve_settings(config)
    return config.stash[EARLY_KEY]


def auto_workers(config: pytest.Config) -> int | None:
    """``-n auto``: workers sized for the selected models' caps (None: xdist decides)."""
    # lazy: only -n auto sizes the workers
    from pytest_llm_matrix.config import cachefile
    from pytest_llm_matrix.distribution import scheduling
    from pytest_llm_matrix.distribution.preload import MEMORY_CACHE, remembered_pss, will_preload

    given = os.environ.get(_AUTO_ENV, "").strip()
    if given.isdigit() and int(given) > MAX_AUTO_WORKERS:
        raise pytest.UsageError(
            f"{_AUTO_ENV}={given[:20]}: at most {MAX_AUTO_WORKERS} workers (xdist would try to "
            "start them all)"
        )
    if given:  # the user's number, as xdist reads it (xdist's own hook answers)
        config.stash[AUTO_KEY] = (int(given) if given.isdigit() else None, _AUTO_ENV)
        return None
    settings = early_settings(config)
    preloaded = will_preload(config, settings)
    measured = remembered_pss(cachefile.get(config, MEMORY_CACHE, None), preloaded)
    chosen, why = scheduling.auto_workers(
        settings,
        _remembered_model_tests(config, scheduling.MODEL_TESTS_CACHE),
        preloaded=preloaded,
        measured=measured,
    )
    config.stash[AUTO_KEY] = (chosen, why)
    return chosen


def _remembered_model_tests(config: pytest.Config, key: str) -> int | None:
    """The model tests of the last run, read straight from pytest's cache directory
    (``config.cache`` does not exist yet when ``-n auto`` is decided)."""
    # lazy: read only when -n auto is sized
    from pytest_llm_matrix.config import cachefile

    value = cachefile.get(config, key, None)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def list_models(config: pytest.Config) -> int | None:
    """``--llm-models``: the models listed, and the run over before it starts (as
    ``pytest --markers``): no session, so no xdist worker, simulator or test. ``--help``
    wins, as it describes the option."""
    if not config.option.llm_list_models or config.option.help:
        return None
    # lazy: only --llm-models lists the models
    from pytest_llm_matrix.config.listing import listing

    sys.stdout.write("".join(f"{line}\n" for line in listing(config)))
    return pytest.ExitCode.OK


def configure(config: pytest.Config) -> None:
    workerinput = getattr(config, "workerinput", None)
    simulator = None
    if workerinput is not None and WORKERINPUT_KEY in workerinput:
        settings = Settings.from_wire(workerinput[WORKERINPUT_KEY])
        if settings.selected:
            # lazy: a worker watches its controller only in a run with model tests
            from pytest_llm_matrix.distribution.lifetime import exit_with_controller

            exit_with_controller(workerinput.get(CONTROLLER_KEY))
            config.pluginmanager.register(WorkerOutput(config), "llm_matrix.worker_output")
    else:
        settings = early_settings(config)
        preload_mode(config)  # checked in every run, used where workers start
        if any(m.needs_simulator for m in [*settings.models, *settings.routed]):
            simulator = SimulatorService(config, settings)  # checks the config in any mode
            if settings.record in OFFLINE_MODES:  # nothing is sent: no simulator starts
                simulator = None
                settings = settings.with_simulator(OFFLINE_URL)
        if settings.selected:
            settings = _with_state_dir(config, settings)
        if any(m.price_as for m in [*settings.models, *settings.routed]):
            _check_price_as([*settings.models, *settings.routed])
        if settings.max_cost is not None:
            settings = _with_rates(settings)
        if settings.baseline is not None and settings.selected:
            _load_baseline(config, settings)
        if settings.coordinator is not None and settings.selected:
            _check_coordinator(settings.coordinator)
        if settings.selected:
            _check_sdks(config, settings)
    config.stash[SETTINGS_KEY] = settings
    config.stash[SIMULATOR_KEY] = simulator
    context.set_rewrite_model(settings.rewrite_model)
    config.add_cleanup(lambda: context.set_rewrite_model(False))
    transcript.configure(settings.transcript_chars)
    config.add_cleanup(lambda: transcript.configure(DEFAULT_TRANSCRIPT_CHARS))
    _redact_reports(config, settings)
    if settings.record != "off" and settings.selected:
        _record(config, settings)
    if settings.state_dir is not None:
        policy = context.RetryPolicy(attempts=settings.max_attempts, max_wait=settings.max_wait)
        limits = context.Limits(
            Path(settings.state_dir),
            settings.max_concurrency,
            policy,
            budget=settings.max_cost,
            rates=settings.rates,
            shared=settings.coordinator,
            run_id=settings.run_id,
            session=settings.session_id,
            journal=context.Journal(
                context.journal_path(settings.state_dir, workerinput["workerid"])
            )
            if workerinput is not None and "workerid" in workerinput
            else None,
        )
        context.configure(limits)
        config.add_cleanup(lambda: context.configure(None))
        if workerinput is None:
            _start_key_checks(config, settings, limits)
    if settings.selected:
        config.add_cleanup(_close_pooled_connections)
    config.pluginmanager.register(fixtures, "llm_matrix.fixtures")
    config.pluginmanager.register(adoption_fixtures, "llm_matrix.sdk_fixtures")
    config.pluginmanager.register(matrix_fixtures, "llm_matrix.matrix_fixtures")
    config.pluginmanager.register(Matrix(settings, config), "llm_matrix.matrix")
    if settings.selected:
        config.pluginmanager.register(Repeats(settings), "llm_matrix.repeats")
    if hasattr(config, "workerinput"):
        return
    if config.pluginmanager.hasplugin("xdist"):
        # lazy: xdist's hooks load only where xdist is on
        from pytest_llm_matrix.distribution.xdist import XdistHooks

        config.pluginmanager.register(XdistHooks(settings, simulator), "llm_matrix.xdist")
    if distributed(config):
        # lazy: preloading matters only to runs with xdist workers
        from pytest_llm_matrix.distribution import lifetime, preload
        from pytest_llm_matrix.distribution.xdist import CrashTeardown

        preload.register(config, settings)
        if settings.selected:
            lifetime.end_without_collecting()

        config.pluginmanager.register(CrashTeardown(config), "llm_matrix.crash_teardown")
        # The xdist controller never collects: it learns of model tests from reports.
        _register_summary(config, settings)


KEY_CHECKS_KEY: Final = pytest.StashKey["KeyCheckLines"]()


def _start_key_checks(config: pytest.Config, settings: Settings, limits: context.Limits) -> None:
    """In the controller: the selected keyed models' keys checked in the background, while
    the workers start (see :mod:`.calls.keycheck`)."""
    if (
        not settings.check_keys
        or settings.record in OFFLINE_MODES
        or config.option.collectonly
        or not any(m.api_key_env for m in [*settings.models, *settings.routed])
    ):
        return
    # lazy: only a run with keyed models checks keys
    from pytest_llm_matrix.calls.keycheck import KeyChecks

    models = {m.name: m for m in [*settings.models, *settings.routed]}
    key_checks = KeyChecks(list(models.values()), lambda: limits.coordinator)
    if not key_checks.models:
        return
    key_checks.start()
    plugin = config.stash[KEY_CHECKS_KEY] = KeyCheckLines(config, key_checks, settings.strict)
    config.pluginmanager.register(plugin, "llm_matrix.key_checks")


class KeyCheckLines:
    """Says what the key checks found, once they are over and before the first test."""

    def __init__(self, config: pytest.Config, key_checks: KeyChecks, strict: bool) -> None:
        self.config = config
        self.checks = key_checks
        self.strict = strict

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> Generator[None, object, object]:
        if not distributed(self.config) and not any(model_of(i) for i in session.items):
            return (yield)  # no model test: nothing waits for the checks, nothing to say
        lines = self.checks.lines()
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            for line in lines:
                reporter.write_line(line)
        unlisted = self.checks.unlisted()
        if self.strict and unlisted:
            raise pytest.UsageError(
                f"--llm-strict: {'; '.join(unlisted)}. Fix the model ids in the config, or run "
                "without --llm-strict (the ids may still be served: not every server lists them)"
            )
        return (yield)

    def header(self) -> str:
        names = ", ".join(self.checks.models)
        return f"llm-matrix: checking the keys of {names} in the background (--llm-check-keys)"


class WorkerOutput:
    """In a worker: what the controller learns of it at the end (the modules it imported,
    so the next run's preloader imports them once for every worker)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    def pytest_sessionfinish(self) -> None:
        # lazy: preloading matters only to runs with xdist workers
        from pytest_llm_matrix.distribution.preload import (
            MODULES_OUTPUT,
            PSS_OUTPUT,
            own_pss,
            worker_modules,
        )

        output = getattr(self.config, "workeroutput", None)
        if isinstance(output, dict) and self.config.stash.get(DESELECTED_KEY, False):
            output[DESELECTED_OUTPUT] = True
        if isinstance(output, dict):
            output[MODULES_OUTPUT] = worker_modules(self.config)
            output[PSS_OUTPUT] = own_pss()


def _close_pooled_connections() -> None:
    """The fixtures' pooled connections end with the session (if a test opened any)."""
    import sys

    transport = sys.modules.get("pytest_llm_matrix.calls.transport")
    if transport is not None:
        transport.close_shared()


def _check_coordinator(url: str) -> None:
    """The shared coordinator answers now, or the run does not start."""
    try:
        # lazy: the Redis client loads only for a run that shares its state
        from pytest_llm_matrix.calls.redis_coordinator import connect, shown_url
    except ImportError:
        raise pytest.UsageError(
            "--llm-coordinator needs the redis package: pip install 'pytest-llm-matrix[redis]'"
        ) from None
    try:
        connect(url).close()
    except ValueError:  # its text may quote the URL's parts, a password among them
        raise pytest.UsageError(
            f"--llm-coordinator: {shown_url(url)} is not a valid Redis URL: expected "
            "redis://[:password@]host:port/db (a password with / # ? or @ percent-encoded)"
        ) from None
    except Exception as error:  # a refused connection, a wrong password
        raise pytest.UsageError(
            f"--llm-coordinator: cannot reach {shown_url(url)} ({type(error).__name__}: {error})"
        ) from None


def _check_sdks(config: pytest.Config, settings: Settings) -> None:
    """A suite that binds its SDK clients (ini ``usefixtures = llm_sdks``, ``llm_sdks_paths``,
    ``--llm-patch-sdks``) cannot run on an SDK release the binding does not support: said
    once, before any test (a route set up in a conftest.py fails each test instead)."""
    usefixtures = config.getini("usefixtures")
    if not (settings.patch_sdks or settings.sdks_paths or "llm_sdks" in usefixtures):
        return
    # lazy: the SDKs' releases are looked up only for a suite that binds them
    from pytest_llm_matrix.adoption import sdks

    problems = [problem for sdk in sdks.SDKS if (problem := sdks.problem(sdk)) is not None]
    if problems:
        raise pytest.UsageError(
            "llm_sdks: " + "; ".join(problems) + " (or uninstall it, if the suite does not use it)"
        )


def _load_baseline(config: pytest.Config, settings: Settings) -> None:
    """The report to compare with, read now: a baseline that cannot be used is a usage
    error before any test runs, never a silent pass at the end."""
    # lazy: only a run with --llm-baseline reads one
    from pytest_llm_matrix.config import cachefile
    from pytest_llm_matrix.report import baseline

    if settings.baseline == "last":
        origin = "--llm-baseline=last"
        if not config.pluginmanager.has_plugin("cacheprovider"):
            raise pytest.UsageError(
                f"{origin} reads pytest's cache, which -p no:cacheprovider turned off"
            )
        path = cachefile.value_path(
            config, baseline.last_report_key(settings.selected, config.args)
        )
        if not path.exists():
            raise pytest.UsageError(
                f"{origin}: no earlier complete run of this selection "
                f"({', '.join(settings.selected)}; the same test paths) in pytest's cache "
                f"({path.parent.parent.parent}); run it once without --llm-baseline (a run "
                "narrowed by -k, -m, test ids or a stop is not kept), or give the path of a "
                "report written by --llm-report"
            )
        source = "the last run of this selection (pytest's cache)"
    else:
        origin, path = "--llm-baseline", Path(str(settings.baseline))
        try:  # as the user would write it
            source = str(path.relative_to(config.rootpath))
        except ValueError:
            source = str(path)
    try:
        document = baseline.read(path)
    except baseline.BaselineError as error:
        raise pytest.UsageError(f"{origin}: {error}") from None
    config.stash[baseline.BASELINE_KEY] = (document, source)


def _record(config: pytest.Config, settings: Settings) -> None:
    """Record or replay the models' answers in this process (see :mod:`.calls.recording`)."""
    # lazy: only a run that records or replays loads it
    from pytest_llm_matrix.calls import recording
    from pytest_llm_matrix.config.redaction import REDACTOR_KEY

    redactor = config.stash.get(REDACTOR_KEY, None)
    recorder = recording.Recorder(
        settings.record,
        config.rootpath,
        base=None if settings.cassettes is None else Path(settings.cassettes),
        ignore=settings.record_ignore,
        mask=redactor.data if redactor is not None else (lambda data: data),
        invocation=Path(config.invocation_params.dir),
        keys=(lambda: redactor.forms) if redactor is not None else None,
    )
    recording.configure(recorder)
    config.add_cleanup(lambda: recording.configure(None))


def _redact_reports(config: pytest.Config, settings: Settings) -> None:
    """Keep keys out of every report (see :mod:`.config.redaction`): the configured models'
    and, in a run with model tests, the SDKs' own (a suite's client sends one to servers that
    may echo it)."""
    key_envs = [name for m in settings.registry.models.values() for name in m.secret_envs()]
    if not key_envs and not settings.selected:
        return
    # lazy: only a run with keys or model tests redacts
    from pytest_llm_matrix.config.redaction import (
        PLUGIN_NAME,
        REDACTOR_KEY,
        SDK_KEY_ENVS,
        Redactor,
        ReportRedaction,
    )

    redactor = config.stash[REDACTOR_KEY] = Redactor([*key_envs, *SDK_KEY_ENVS])
    config.pluginmanager.register(ReportRedaction(config, redactor), PLUGIN_NAME)


def _with_state_dir(config: pytest.Config, settings: Settings) -> Settings:
    """A fresh directory the session's processes coordinate through (slots, cooldowns)."""
    # lazy: the state directory is made only for a run with model tests
    from pytest_llm_matrix.distribution.lifetime import state_dir

    return dataclasses.replace(settings, state_dir=state_dir(config))


def _check_price_as(models: list[Model]) -> None:
    """A model's ``price_as`` names a model the price list knows: a typo would show the
    cost as n/a at the end of the run, and leave the model out of --llm-max-cost."""
    # lazy: the price list loads only for a run whose models name one of its ids
    from pytest_llm_matrix.report.cost import model_cost

    for model in models:
        if model.price_as and model_cost(model, (1, 1, 0)) is None:
            raise pytest.UsageError(
                f"model {model.name!r}: price_as {model.price_as!r} is not in genai-prices' "
                "price list; name a model id it lists (gpt-4o-mini, claude-haiku-4-5, ...), "
                "or set input_price and output_price"
            )


def _with_rates(settings: Settings) -> Settings:
    """Per-token prices for the budget, looked up once here and shipped to the workers."""
    # lazy: prices (genai-prices) are looked up only for --llm-max-cost
    from pytest_llm_matrix.report.cost import per_token_rates

    rates = {m.name: per_token_rates(m) for m in [*settings.models, *settings.routed]}
    return dataclasses.replace(settings, rates=rates)


def _register_summary(config: pytest.Config, settings: Settings) -> None:
    if not settings.selected or config.pluginmanager.has_plugin("llm_matrix.summary"):
        return
    # lazy: the report loads only for a run with model tests
    from pytest_llm_matrix.report import live
    from pytest_llm_matrix.report.summary import Summary

    summary = Summary(config, settings)
    config.pluginmanager.register(summary, "llm_matrix.summary")
    if settings.progress != "off":
        progress = live.LiveProgress(config, summary, settings.selected)
        config.pluginmanager.register(progress, "llm_matrix.live")


def collected(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Per-test hooks are registered only when the run has model tests."""
    if not any(model_of(item) for item in items):
        return
    # lazy: the per-test parts load only when collection found model tests
    from pytest_llm_matrix.matrix.repeats import index_runs
    from pytest_llm_matrix.tracking import TestTracker, TimeoutHooks, add_timeout_marks

    if not hasattr(config, "workerinput"):  # (under xdist the controller checks the ids)
        problem = duplicate_id_problem([item.nodeid for item in items if model_of(item)])
        if problem is not None:
            raise pytest.UsageError(problem)
    settings = config.stash[SETTINGS_KEY]
    add_timeout_marks(settings, items)
    index_runs(items)
    config.pluginmanager.register(TestTracker(config), "llm_matrix.tracker")
    if config.pluginmanager.hasplugin("timeout"):
        config.pluginmanager.register(TimeoutHooks(), "llm_matrix.timeout")
    if hasattr(config, "workerinput"):
        return
    _register_summary(config, settings)
    if not distributed(config) and not any(
        config.pluginmanager.hasplugin(name) for name in REORDERING_PLUGINS
    ):
        group_by_model(items, settings.selected)


def group_by_model(items: list[pytest.Item], order: tuple[str, ...]) -> None:
    """The sequential tier reads model by model: tests without a model first, then each
    model's tests in config order, each group in collection order (a stable sort)."""
    rank = {name: position for position, name in enumerate(order, start=1)}

    def key(item: pytest.Item) -> int:
        model = model_of(item)
        return 0 if model is None else rank.get(model.name, len(rank) + 1)

    items.sort(key=key)


def unbound_budget(settings: Settings) -> str | None:
    """Why ``--llm-max-cost`` may never be reached, when none of the run's models (those
    selected, the judge, the auxiliary routes') has a known price: only the costs their
    answers report count, and a simulated answer reports none."""
    models = list({m.name: m for m in [*settings.models, *settings.routed]}.values())
    if settings.max_cost is None or not models or any(settings.rates.get(m.name) for m in models):
        return None
    names = ", ".join(m.name for m in models)
    budget = f"--llm-max-cost {checks.dollars(settings.max_cost)}"
    fix = "set their input_price and output_price (or price_as) for their tokens to count"
    if not any(m.provider != "simulator" and (m.cost_header or m.cost_field) for m in models):
        return f"{budget} cannot bind: no model of this run has a price ({names}); {fix}"
    return (
        f"{budget} may never bind: no model of this run has a price ({names}), so only the "
        f"costs their answers report (cost_header, cost_field) count; {fix}"
    )


def header(config: pytest.Config) -> list[str] | None:
    settings = config.stash.get(SETTINGS_KEY, None)
    if settings is None or not settings.registry.models:
        return None
    lines = [
        f"llm-matrix: {len(settings.selected)} of "
        f"{checks.counted(len(settings.registry.models), 'model')} "
        f"(from {settings.selected_by}): {', '.join(settings.selected)}"
    ]
    lines.extend(
        f"llm-matrix: {name} skipped: {reason}" for name, reason in settings.unavailable.items()
    )
    if (key_checks := config.stash.get(KEY_CHECKS_KEY, None)) is not None:
        lines.append(key_checks.header())
    details = [f"config: {settings.registry.source}"]
    simulated = [m.name for m in settings.models if m.needs_simulator]
    if simulated:
        details.append(f"built-in simulator for {', '.join(simulated)}")
    lines.append("llm-matrix: " + ", ".join(details))
    if settings.coordinator is not None and settings.selected:
        # lazy: the Redis client loads only for a run that shares its state
        from pytest_llm_matrix.calls.redis_coordinator import shown_url

        lines.append(
            f"llm-matrix: caps, cooldowns, unavailable models and the budget shared through "
            f"{shown_url(settings.coordinator)} (run id {settings.run_id})"
        )
    if settings.record != "off" and settings.selected:
        where = settings.cassettes or "llm_cassettes/ beside each test module"
        what = {
            "replay": "replaying recordings: nothing is sent, no key is needed",
            "prune": "replaying recordings, then deleting those no test used",
            "new": "replaying recordings, sending and recording what has none",
            "all": "sending every request and recording it anew",
        }[settings.record]
        lines.append(f"llm-matrix: --llm-record={settings.record}: {what} ({where})")
    if (budget := unbound_budget(settings)) is not None:
        lines.append(f"llm-matrix: {budget}")
    routes = settings.registry.routes
    aux = [f"{i} -> {routes[i]}" if i in routes else i for i in settings.registry.auxiliary]
    if aux and settings.selected:
        lines.append(f"llm-matrix: auxiliary model ids (never rewritten): {', '.join(aux)}")
    maxfail = config.getoption("maxfail", 0) or 0
    if maxfail > 0 and len(settings.selected) > 1:
        given = "-x (--maxfail=1)" if maxfail == 1 else f"--maxfail={maxfail}"
        stop = (
            "the first failure of any model stops"
            if maxfail == 1
            else f"{maxfail} failures, of any models, stop"
        )
        lines.append(
            f"llm-matrix: {given} counts failures across all {len(settings.selected)} models: "
            f"{stop} every model's tests; add --maxfail=0 to run the whole matrix"
        )
    timed = settings.llm_timeout is not None or any(m.timeout for m in settings.models)
    if timed and not config.pluginmanager.hasplugin("timeout"):
        lines.append(
            "llm-matrix: pytest-timeout is off: model timeouts are not enforced per test "
            "(a model's timeout still bounds each of its requests)"
        )
    if distributed(config) and settings.selected:
        # lazy: xdist's hooks load only where xdist is on
        from pytest_llm_matrix.distribution.xdist import dist_given, uses_model_scheduler

        if uses_model_scheduler(config, settings):
            how = "model-aware scheduling (--llm-dist=model)"
        elif dist_given(config):
            how = f"xdist's --dist={config.getoption('dist')} (given explicitly)"
        else:
            how = "xdist's load scheduling (--llm-dist=load)"
        auto = config.stash.get(AUTO_KEY, None)
        if auto is not None and auto[0] is not None:
            how += f"; -n auto: {checks.counted(auto[0], 'worker')}, set by {auto[1]}"
        lines.append(f"llm-matrix: {how}")
    if distributed(config):
        # lazy: preloading matters only to runs with xdist workers
        from pytest_llm_matrix.distribution.preload import PLUGIN_NAME

        preloading = config.pluginmanager.get_plugin(PLUGIN_NAME)
        if preloading is not None:
            lines.append(preloading.header())
    return lines
