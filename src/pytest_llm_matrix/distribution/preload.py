"""Preloaded xdist workers: forked from one process that has imported what they import.

A worker's imports (pytest, xdist, execnet, the installed plugins, this plugin's HTTP stack)
cost a third of a second of CPU; on a 2-core machine, 32 workers spend seconds on them
before the first test. Where the platform can fork, the controller starts one *preloader*
(:mod:`._preloader`) as soon as it is configured, and points xdist's ``popen`` specs at a
launcher (:mod:`._launcher`) in place of the interpreter: execnet starts the launcher as it
would start Python, the launcher hands its pipes to the preloader, and the preloader forks a
worker that runs execnet's bootstrap. Everything after that is xdist's own: the worker builds
its config, collects and reports as any worker does; a crashed worker is restarted the same
way; a dead preloader makes later workers start the normal way.

Plugin modules are imported under pytest's assertion-rewriting hook, marked as pytest marks
them, so a worker finds them as it would have imported them.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import shlex
import socket
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Final

import pytest

from pytest_llm_matrix.config import cachefile
from pytest_llm_matrix.config.options import CONTROLLER_KEY, preload_mode

if TYPE_CHECKING:
    from execnet import XSpec
    from xdist.workermanage import WorkerController

    from pytest_llm_matrix.config.options import Settings

PLUGIN_NAME: Final = "llm_matrix.preload"
#: What every worker of a session with models imports beyond the plugins' own modules.
WORKER_STACK: Final = (
    "pytest_llm_matrix.plugin",
    "pytest_llm_matrix.session",
    "pytest_llm_matrix.calls.fixtures",
    "pytest_llm_matrix.tracking",
    "pytest_llm_matrix.distribution.lifetime",
    # every worker imports these at its end (what it tells the controller): the last to
    # end would import them while the run waits for it
    "pytest_llm_matrix.distribution.preload",
    "pytest_llm_matrix.distribution.scheduling",
    "encodings.idna",  # at the first request to a host name
    "pytest_llm_matrix.calls.limits",
    "pytest_llm_matrix.calls.client",
    "pytest_llm_matrix.calls.transport",
    "pytest_llm_matrix.calls.exchange",
    "httpx",
    "httpx2",
    "httpcore2",
    "h11",
    "anyio",
    "anyio._backends._asyncio",
    "truststore",
    "asyncio",
    "concurrent.futures",
    "pdb",
    "faulthandler",
    "packaging.version",
)
#: Modules outside any plugin distribution, safe to import without pytest's rewriting hook.
PLAIN_STACK: Final = ("httpx", "httpx2", "httpcore2", "h11", "anyio", "asyncio", "pdb")
#: ``python -c`` runs this in the preloader: pytest's rewriting hook is set up as a worker's
#: pytest sets it up before the plugin modules are imported under it.
BOOT: Final = """\
import sys
def _boot():
    import json
    plan = json.loads(sys.argv[1])
    keep = set(plan["main_names"])
    hook = None
    if plan["rewrite"]:
        from _pytest.config import get_config
        from _pytest.assertion import install_importhook
        config = get_config()
        ini, getini = plan["ini"], config.getini
        config.getini = lambda name: ini[name] if name in ini else getini(name)
        hook = install_importhook(config)
        try:
            config._mark_plugins_for_rewrite(hook, plan["disable_autoload"])
        except TypeError:  # pytest < 8.4 reads PYTEST_DISABLE_PLUGIN_AUTOLOAD itself
            config._mark_plugins_for_rewrite(hook)
    from pytest_llm_matrix.distribution import _preloader
    _preloader.run(plan, hook, keep)
_boot()
"""
#: The names ``__main__`` has in a fresh ``python -c``.
MAIN_NAMES: Final = (
    "__name__",
    "__doc__",
    "__package__",
    "__loader__",
    "__spec__",
    "__annotations__",
    "__builtins__",
)


#: In a worker's ``workeroutput``: its proportional set size at the end, in bytes.
PSS_OUTPUT: Final = "llm_matrix_pss"
#: The largest worker PSS of the last run, by how workers started: sizes ``-n auto``.
MEMORY_CACHE: Final = "llm-matrix/worker-pss"


@dataclasses.dataclass
class Decision:
    on: bool
    why: str


def decide(config: pytest.Config, settings: Settings) -> Decision:
    """Whether this controller preloads its workers, and why (not)."""
    problem = _mode_problem(config, settings) or platform_problem()
    if problem is not None:
        return Decision(False, problem)
    if config.getoption("looponfail", False):
        return Decision(False, "--looponfail runs its own processes")
    specs = _specs(config)
    if not specs:
        return Decision(False, "no local workers")
    for spec in specs:
        if (odd := _spec_problem(spec)) is not None:
            return Decision(False, f"--tx {spec}: {odd}")
    return Decision(True, "--llm-preload=off starts each the normal way")


def will_preload(config: pytest.Config, settings: Settings) -> bool:
    """For ``-n auto``, decided before xdist makes its specs: whether workers will be
    preloaded, as far as the mode, the models and the platform tell."""
    return _mode_problem(config, settings) is None and platform_problem() is None


def _mode_problem(config: pytest.Config, settings: Settings) -> str | None:
    chosen = preload_mode(config)
    if chosen == "off":
        return "--llm-preload=off"
    if chosen == "auto" and not settings.selected:
        return "no models selected"
    return None


def byte_count(value: object) -> int | None:
    """A memory size in bytes as read back from a worker or the cache, if plausible."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**40:
        return value
    return None


def remembered_pss(known: object, preloaded: bool) -> int | None:
    """The largest worker PSS the last run measured, for workers started this way."""
    if not isinstance(known, dict):
        return None  # no cache, or one of another version or edited by hand
    return byte_count(known.get("preloaded" if preloaded else "normal"))


def own_pss() -> int | None:
    """This process's proportional set size in bytes (Linux), else None."""
    # lazy: a worker measures itself only at its end; the rest of preloading never needs it
    from pytest_llm_matrix.distribution.scheduling import proc_bytes

    return proc_bytes("/proc/self/smaps_rollup", "Pss")


def platform_problem() -> str | None:
    if sys.platform != "linux" or not hasattr(os, "fork"):
        return f"needs fork and pidfds (Linux); this is {sys.platform}"
    try:
        os.close(os.pidfd_open(os.getpid()))
    except (AttributeError, OSError) as error:
        return f"this kernel has no pidfds ({error})"
    return None


def _specs(config: pytest.Config) -> list[XSpec]:
    from execnet import XSpec
    from xdist.workermanage import parse_tx_spec_config

    try:
        return [XSpec(spec) for spec in parse_tx_spec_config(config)]
    except pytest.UsageError:
        return []


def _spec_problem(spec: XSpec) -> str | None:
    if not spec.popen:
        return "not a local (popen) worker"
    if spec.python or spec.via:
        return "names its own interpreter"
    if spec.execmodel not in (None, "thread", "main_thread_only"):
        return f"execmodel {spec.execmodel} cannot be forked"
    if getattr(spec, "env", None):
        # a forked worker would keep what the preloader built from its own environment (a
        # TLS context and SSL_CERT_FILE, settings an SDK reads at import)
        return "sets the workers' environment (env:), which a forked worker would not see"
    return None


def plan_modules(config: pytest.Config, settings: Settings) -> tuple[list[str], bool]:
    """What the preloader imports, and whether under pytest's rewriting hook."""
    rewrite = config.getoption("assertmode", "rewrite") == "rewrite"
    autoload = not _autoload_disabled(config)
    modules: list[str] = ["pytest", "execnet", "execnet.gateway_base"]
    if not (rewrite and autoload):
        # plugin modules would not be imported as a worker imports them: the stack only
        return modules + list(PLAIN_STACK if settings.selected else ()), rewrite
    # the plugins pytest loaded from entry points, which every worker loads too
    for plugin, _dist in config.pluginmanager.list_plugin_distinfo():
        name = getattr(plugin, "__name__", None)
        if isinstance(name, str) and name not in modules:
            modules.append(name)
    if settings.selected:
        modules += [m for m in WORKER_STACK if m not in modules]
    modules += [m for m in remembered_modules(config) if m not in modules]
    return modules, rewrite


def _autoload_disabled(config: pytest.Config) -> bool:
    return bool(os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD")) or bool(
        getattr(config.known_args_namespace, "disable_plugin_autoload", False)
    )


#: Third-party packages a worker's modules may come from and still be preloaded (next to the
#: standard library and the plugins' own): pytest's, this plugin's and the SDKs' stacks.
STACK_PACKAGES: Final = frozenset(
    [
        "pytest",
        "_pytest",
        "pluggy",
        "iniconfig",
        "packaging",
        "execnet",
        "xdist",
        "pytest_llm_matrix",
        "httpx",
        "httpx2",
        "httpcore",
        "httpcore2",
        "h11",
        "h2",
        "hpack",
        "hyperframe",
        "anyio",
        "sniffio",
        "certifi",
        "truststore",
        "idna",
        "openai",
        "anthropic",
        "pydantic",
        "pydantic_core",
        "jiter",
        "distro",
        "typing_extensions",
        "annotated_types",
        "typing_inspection",
        "tenacity",
        "genai_prices",
        "tomli",
    ]
)
#: Never preloaded, even when a worker imported them: they act on the terminal or the
#: desktop, print, or are programs rather than libraries.
NEVER: Final = frozenset(
    {
        "__main__",
        "__mp_main__",
        "__hello__",
        "__phello__",
        "readline",
        "rlcompleter",
        "antigravity",
        "this",
        "idlelib",
        "turtledemo",
        "turtle",
        "tkinter",
        "test",
        "pydoc",
        "webbrowser",
    }
)
MODULES_CACHE: Final = "llm-matrix/worker-modules"
#: In a worker's ``workeroutput``: the modules it imported (see :func:`worker_modules`).
MODULES_OUTPUT: Final = "llm_matrix_modules"


def remembered_modules(config: pytest.Config) -> list[str]:
    """The stack modules the last run's workers imported (see :func:`worker_modules`)."""
    value = cachefile.get(config, MODULES_CACHE, [])
    if not isinstance(value, list):
        return []
    allowed = _allowed_tops(config.pluginmanager)
    return [m for m in value if isinstance(m, str) and _preloadable(m, allowed)]


def _allowed_tops(pluginmanager: pytest.PytestPluginManager) -> set[str]:
    tops = set(STACK_PACKAGES) | set(sys.stdlib_module_names)
    for plugin, _dist in pluginmanager.list_plugin_distinfo():
        name = getattr(plugin, "__name__", None)
        if isinstance(name, str):
            tops.add(name.split(".", 1)[0])
    return tops


def _preloadable(name: str, allowed: set[str]) -> bool:
    top = name.split(".", 1)[0]
    return (
        top in allowed
        and top not in NEVER
        and not name.endswith(".__main__")
        and not name.startswith("_pytest.pytester")
    )


def worker_modules(config: pytest.Config) -> list[str]:
    """The modules of pytest's, the plugins' and the HTTP stacks this worker imported, for the
    next run's preloader; never a test module, a conftest or the project's code."""
    allowed = _allowed_tops(config.pluginmanager)
    return sorted(name for name in list(sys.modules) if _preloadable(name, allowed))


class Preloading:
    """The controller's side: the preloader process and the rewritten worker specs."""

    def __init__(self, config: pytest.Config, settings: Settings) -> None:
        self.config = config
        self.settings = settings
        self.decision = decide(config, settings)
        self.process: subprocess.Popen[bytes] | None = None
        self.name = ""
        self.reported_gone = False
        self.refusals: set[str] = set()
        self.last_words = ""
        self.pending = b""
        self.learned: set[str] = set()
        self.pss: list[int] = []
        if self.decision.on:
            try:
                self.start()
            except OSError as error:
                self.decision = Decision(False, f"the preloader did not start ({error})")

    def start(self) -> None:
        modules, rewrite = plan_modules(self.config, self.settings)
        self.name = f"pytest-llm-matrix-{os.getpid()}-{secrets.token_hex(8)}"
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind("\0" + self.name)
            listener.listen(512)
            ini = {
                name: self.config.getini(name)
                for name in ("python_files", "enable_assertion_pass_hook")
            }
            plan = {
                "listen_fd": listener.fileno(),
                "controller": os.getpid(),
                "modules": modules,
                "rewrite": rewrite,
                "disable_autoload": _autoload_disabled(self.config),
                "ini": ini,
                "main_names": list(MAIN_NAMES),
            }
            self.process = subprocess.Popen(
                [sys.executable, "-u", "-c", BOOT, json.dumps(plan)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                pass_fds=[listener.fileno()],
            )
        finally:
            listener.close()  # the preloader's copy is the only one: its death refuses
        self.config.add_cleanup(self.stop)

    def stop(self) -> None:
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            process.kill()
        process.wait()
        if process.stdout is not None:
            process.stdout.close()

    # -- xdist hooks ------------------------------------------------------------------

    def pytest_xdist_setupnodes(self, config: pytest.Config, specs: list[XSpec]) -> None:
        """Point every local spec at the launcher (restarted workers reuse these specs)."""
        if self.process is None:
            return
        launcher = Path(__file__).with_name("_launcher.py")
        command = shlex.join([sys.executable, "-I", "-S", str(launcher), self.name])
        for spec in specs:
            if _spec_problem(spec) is None:
                spec.python = command

    def pytest_configure_node(self, node: WorkerController) -> None:
        node.workerinput[CONTROLLER_KEY] = os.getpid()
        if self.process is None:
            return
        for line in self._heard():
            if line.startswith("refused: ") and line not in self.refusals:
                self.refusals.add(line)
                worker = node.gateway.id
                self._line(f"{worker} started the normal way: the preloader {line}")
            elif line.startswith("not preloading: "):
                self.last_words = line
        if not self.reported_gone:
            code = self.process.poll()
            if code is not None:
                self.reported_gone = True
                said = f": {self.last_words}" if self.last_words else ""
                self._line(
                    f"the worker preloader exited ({_how(code)}{said}): "
                    "workers start the normal way from now on"
                )

    def pytest_testnodedown(self, node: WorkerController, error: object) -> None:
        output = getattr(node, "workeroutput", None) or {}
        modules = output.get(MODULES_OUTPUT)
        if isinstance(modules, list):
            self.learned.update(m for m in modules if isinstance(m, str))
        if (pss := byte_count(output.get(PSS_OUTPUT))) is not None:
            self.pss.append(pss)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        cache = getattr(self.config, "cache", None)
        if cache is None or not self.settings.selected:
            return
        if self.learned:
            allowed = _allowed_tops(self.config.pluginmanager)
            learned = sorted(m for m in self.learned if _preloadable(m, allowed))
            cachefile.put(self.config, MODULES_CACHE, learned)
        if self.pss:
            known = cachefile.get(self.config, MEMORY_CACHE, {})
            known = dict(known) if isinstance(known, dict) else {}
            known["preloaded" if self.process is not None else "normal"] = max(self.pss)
            cachefile.put(self.config, MEMORY_CACHE, known)

    def header(self) -> str:
        if self.decision.on:
            return f"llm-matrix: workers preloaded (forked from one process; {self.decision.why})"
        return f"llm-matrix: workers not preloaded: {self.decision.why}"

    def _heard(self) -> list[str]:
        """The lines the preloader wrote since last asked (it writes one per event)."""
        stream = self.process.stdout if self.process is not None else None
        if stream is None:
            return []
        chunks = []
        try:
            os.set_blocking(stream.fileno(), False)
            while chunk := os.read(stream.fileno(), 65536):
                chunks.append(chunk)
        except (BlockingIOError, OSError, ValueError):
            pass
        self.pending += b"".join(chunks)
        *lines, self.pending = self.pending.split(b"\n")
        return [line.decode(errors="replace") for line in lines]

    def _line(self, text: str) -> None:
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"llm-matrix: {text}")


def _how(code: int) -> str:
    return f"killed by signal {-code}" if code < 0 else f"exit status {code}"


def register(config: pytest.Config, settings: Settings) -> None:
    """In the controller of a distributed run: decide, maybe start the preloader."""
    config.pluginmanager.register(Preloading(config, settings), PLUGIN_NAME)
