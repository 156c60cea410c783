"""The model-aware xdist scheduler, and ``-n auto`` sized for I/O-bound suites.

LLM tests wait on the network, so the matrix should take about as long as its slowest
model needs. The scheduler keeps each model's tests on as few workers as the model's
concurrency cap allows (its rate limits and connections stay per worker, and each worker's
log reads per model), starts the models with the most remaining work first, hands idle
workers work from other models, and never lets a model that is cooling down after 429s
hold a worker. It does not use ``xdist_group`` and never mutates node ids: the controller
maps node ids to models by the alias each model test's id starts with.
"""

from __future__ import annotations

import collections
import math
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

import pytest

if TYPE_CHECKING:
    from xdist.workermanage import WorkerController

    from pytest_llm_matrix.config.options import Settings

#: pytest's cache (``config.cache``) keys the report writes after a run and the next run
#: reads: each model test's duration (the scheduler's estimates), and how many model tests
#: ran (``-n auto`` sizing before collection).
DURATIONS_CACHE: Final = "llm-matrix/durations"
MODEL_TESTS_CACHE: Final = "llm-matrix/model-tests"
#: Tests kept queued on a worker: the running one and the next (an xdist worker only starts
#: a test once it knows the one after it, or that there is none).
QUEUED: Final = 2
DEFAULT_ESTIMATE: Final = 1.0
#: Most workers ``-n auto`` starts: a worker started the normal way costs a third of a
#: second of CPU to start; a preloaded one is forked in milliseconds.
WORKER_CEILING: Final = 32
PRELOADED_CEILING: Final = 64
#: The memory budgeted per worker before any was measured: proportional set size (PSS),
#: measured on Linux with pytest 9.2 and this plugin's HTTP stack at 22 MB for a preloaded
#: worker and 34 MB for one started the normal way; the budget has room for the tests' own.
WORKER_MEMORY: Final = 96 * 2**20
PRELOADED_MEMORY: Final = 64 * 2**20
#: A measured PSS is budgeted with this much room.
MEMORY_MARGIN: Final = 2.0


def model_from_nodeid(nodeid: str, aliases: Sequence[str]) -> str | None:
    """The model alias a test's node id carries, or None for a test without a model.

    The plugin parametrizes ``llm_model`` before any other parametrization (tryfirst), so a
    model test's id is ``name[<alias>]`` or ``name[<alias>-<other ids>]``. Aliases may hold
    dashes, dots or colons; the longest alias that fits wins.
    """
    name = nodeid.rsplit("::", 1)[-1]
    start = name.find("[")
    if start < 0 or not name.endswith("]"):
        return None
    params = name[start + 1 : -1]
    best: str | None = None
    for alias in aliases:
        fits = params == alias or params.startswith(alias + "-")
        if fits and (best is None or len(alias) > len(best)):
            best = alias
    return best


class ModelScheduling:
    """xdist scheduler: model affinity within each model's cap, longest models first."""

    def __init__(
        self,
        numnodes: int,
        settings: Settings,
        estimates: Mapping[str, float],
        cooling: Callable[[str], bool] = lambda model: False,
        log: Callable[..., None] = lambda *args: None,
        config: pytest.Config | None = None,
    ) -> None:
        #: as on xdist's own schedulers, which other plugins' xdist hooks read
        #: (pytest-rerunfailures' pytest_handlecrashitem reads sched.config)
        self.config = config
        self.numnodes = numnodes
        self.aliases = list(settings.selected)
        self.caps = {m.name: m.max_concurrency for m in settings.models}
        self.estimates = estimates
        self.cooling = cooling
        self.log = log
        self.node2collection: dict[WorkerController, list[str]] = {}
        self.node2pending: dict[WorkerController, list[int]] = {}
        self.node2model: dict[WorkerController, str | None] = {}
        self.collection: list[str] | None = None
        self.model_of: list[str | None] = []
        self.cost: list[float] = []
        self.queues: dict[str | None, collections.deque[int]] = {}
        self.remaining: dict[str | None, float] = {}

    # -- the xdist scheduler protocol -------------------------------------------------

    @property
    def nodes(self) -> list[WorkerController]:
        return list(self.node2pending)

    @property
    def collection_is_completed(self) -> bool:
        return len(self.node2collection) >= self.numnodes

    @property
    def tests_finished(self) -> bool:
        if not self.collection_is_completed or any(self.queues.values()):
            return False
        return all(len(pending) < QUEUED for pending in self.node2pending.values())

    @property
    def has_pending(self) -> bool:
        return any(self.queues.values()) or any(self.node2pending.values())

    def add_node(self, node: WorkerController) -> None:
        self.node2pending[node] = []
        self.node2model[node] = None

    def add_node_collection(self, node: WorkerController, collection: Sequence[str]) -> None:
        if self.collection is not None and list(collection) != self.collection:
            self.log(f"{node.gateway.id} collected different tests; it gets none")
            return
        self.node2collection[node] = list(collection)

    def mark_test_complete(
        self, node: WorkerController, item_index: int, duration: float = 0
    ) -> None:
        self.node2pending[node].remove(item_index)
        self._fill(node)

    def mark_test_pending(self, item: str) -> None:
        if self.collection is None:
            return
        self._requeue([self.collection.index(item)])
        for node in self.nodes:
            self._fill(node)

    def remove_pending_tests_from_node(
        self, node: WorkerController, indices: Sequence[int]
    ) -> None:
        raise NotImplementedError("model scheduling does not hand tests back")

    def remove_node(self, node: WorkerController) -> str | None:
        """A node left: a crash reports the test it was running; its queue is rescheduled."""
        pending = self.node2pending.pop(node)
        self.node2model.pop(node, None)
        if not pending or self.collection is None:
            return None
        crashed = self.collection[pending[0]]
        self._requeue(pending[1:])
        for other in self.nodes:
            self._fill(other)
        return crashed

    def schedule(self) -> None:
        if self.collection is None:
            collections_seen = list(self.node2collection.values())
            if any(c != collections_seen[0] for c in collections_seen[1:]):
                self.log("**Different tests collected, aborting run**")
                return
            self._index(collections_seen[0])
            if len(self.collection or ()) < QUEUED * len(self.nodes):
                # Too few tests to queue two per worker: one each, as far as they go.
                for node in self.nodes:
                    self._fill(node, limit=1)
        for node in self.nodes:
            self._fill(node)

    # -- choosing work ----------------------------------------------------------------

    def _index(self, collection: list[str]) -> None:
        self.collection = collection
        self.model_of = [model_from_nodeid(nodeid, self.aliases) for nodeid in collection]
        self.cost = [self.estimates.get(nodeid, DEFAULT_ESTIMATE) for nodeid in collection]
        order: list[str | None] = [*self.aliases, None]
        self.queues = {model: collections.deque() for model in order}
        self.remaining = dict.fromkeys(order, 0.0)
        for index, model in enumerate(self.model_of):
            self.queues[model].append(index)
            self.remaining[model] += self.cost[index]

    def _requeue(self, indices: Iterable[int]) -> None:
        for index in reversed(list(indices)):
            model = self.model_of[index]
            self.queues[model].appendleft(index)
            self.remaining[model] += self.cost[index]

    def _workers_on(self, model: str) -> int:
        return sum(
            1
            for pending in self.node2pending.values()
            if any(self.model_of[i] == model for i in pending)
        )

    def _has_room(self, model: str, node: WorkerController) -> bool:
        cap = self.caps.get(model)
        on_it = any(self.model_of[i] == model for i in self.node2pending[node])
        return cap is None or on_it or self._workers_on(model) < cap

    def _choose(self, node: WorkerController) -> tuple[bool, str | None]:
        """(found, queue): the queue the node takes its next test from (None: no model)."""
        current = self.node2model.get(node)
        candidates = [m for m in self.aliases if self.queues[m]]
        if current in candidates and not self.cooling(current) and self._has_room(current, node):
            return True, current
        open_models = [m for m in candidates if not self.cooling(m) and self._has_room(m, node)]
        if open_models:
            # the model that would otherwise finish last gets the worker
            return True, max(
                open_models, key=lambda m: self.remaining[m] / (self._workers_on(m) + 1)
            )
        if self.queues[None]:
            return True, None
        if candidates:  # every model is at its cap or cooling: no worker idles all the same
            return True, max(candidates, key=lambda m: self.remaining[m])
        return False, None

    def _fill(self, node: WorkerController, limit: int = QUEUED) -> None:
        if node.shutting_down or self.collection is None or node not in self.node2pending:
            return
        pending = self.node2pending[node]
        chosen: list[int] = []
        while len(pending) < limit:
            found, model = self._choose(node)
            if not found:
                break
            index = self.queues[model].popleft()
            self.remaining[model] -= self.cost[index]
            self.node2model[node] = model
            chosen.append(index)
            pending.append(index)  # counts for the next choice's room check
        if chosen:
            node.send_runtest_some(chosen)
        if not any(self.queues.values()):
            # Nothing left to hand out: every worker may run its last test (a worker only
            # starts a test once it knows the next one, or that there is none).
            for other in self.nodes:
                if not other.shutting_down:
                    other.shutdown()


def estimates_from(durations: Any) -> dict[str, float]:
    """Per-test durations remembered from the previous run (pytest's cache), checked."""
    if not isinstance(durations, dict):
        return {}
    found: dict[str, float] = {}
    for key, value in durations.items():
        if not isinstance(value, int | float) or isinstance(value, bool):
            continue
        try:
            seconds = float(value)  # an int of 400 digits overflows
        except OverflowError:
            continue
        if math.isfinite(seconds) and seconds >= 0:
            found[str(key)] = seconds
    return found


def cooling_check(coordinator_getter: Callable[[], Any]) -> Callable[[str], bool]:
    """Whether a model is in a shared 429 cooldown right now (read from the coordinator)."""

    def cooling(model: str) -> bool:
        coordinator = coordinator_getter()
        try:
            return coordinator is not None and coordinator.cooldown_until(model) > time.time()
        except (Exception, pytest.fail.Exception):  # a shared coordinator lost: tests say so
            return False

    return cooling


def auto_workers(
    settings: Settings,
    model_tests: int | None,
    cpus: int | None = None,
    *,
    preloaded: bool = False,
    measured: int | None = None,
    available: int | None = None,
) -> tuple[int | None, str]:
    """How many workers ``-n auto`` starts for this selection, and why (for the header).

    Enough workers to reach the concurrency caps (the global cap or the sum of the models'
    caps, whichever is smaller), or 2 per CPU when no caps are configured; never more than
    the model tests of the last run (as remembered), nor than the memory available holds:
    ``measured`` is the largest PSS of a worker of the last run (bytes), else a budget for
    a ``preloaded`` worker or one started the normal way. The remembered count only ever
    lowers the number. None means "no LLM tests selected: let xdist decide"."""
    models = settings.models
    if not models:
        return None, "no models selected: xdist's default"
    bounds: dict[str, int] = {}
    caps = [m.max_concurrency for m in models]
    if settings.max_concurrency is not None:
        bounds[f"the global cap of {settings.max_concurrency}"] = settings.max_concurrency
    if all(cap is not None for cap in caps):
        bounds["the sum of the models' caps"] = sum(c for c in caps if c is not None)
    if not bounds:
        how = ""
        if cpus is None:
            cpus, how = usable_cpus()
            how = f", {how}"
        uncapped = "as neither a global cap nor a cap on every model is set"
        bounds[f"2 per CPU ({cpus} CPUs{how}), {uncapped}"] = 2 * cpus
    if model_tests:
        bounds["the model tests of the last run"] = model_tests
    kind = "preloaded" if preloaded else "started the normal way"
    ceiling = PRELOADED_CEILING if preloaded else WORKER_CEILING
    bounds[f"the ceiling for workers {kind} ({ceiling})"] = ceiling
    if measured is not None and measured > 0:
        per_worker = int(measured * MEMORY_MARGIN)
        how = f"{measured / 2**20:.0f} MB measured last run, x{MEMORY_MARGIN:g}"
    else:
        per_worker = PRELOADED_MEMORY if preloaded else WORKER_MEMORY
        how = f"{per_worker // 2**20} MB budgeted per worker {kind}"
    where = ""
    if available is None:
        available, where = _available()
    if available is not None:
        said = f"the memory available{where} ({available // 2**20} MB; {how})"
        bounds[said] = max(1, available // per_worker)
    reason, chosen = min(bounds.items(), key=lambda item: item[1])
    return max(1, chosen), reason


def proc_bytes(path: str, field: str) -> int | None:
    """A ``Field:   123 kB`` line of a /proc file (``meminfo``, ``smaps_rollup``) in bytes,
    or None where there is no such file or line (not Linux)."""
    try:
        with open(path, encoding="ascii") as fh:
            for line in fh:
                if line.startswith(f"{field}:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _available() -> tuple[int | None, str]:
    """Memory available to new processes, in bytes (Linux's MemAvailable, else free pages),
    and where the bound comes from: ``" to this cgroup"`` when its limit is lower."""
    available = proc_bytes("/proc/meminfo", "MemAvailable")
    if available is None:
        try:
            available = int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (ValueError, OSError, AttributeError):
            available = None
    limited = cgroup_memory_free()
    if limited is not None and (available is None or limited < available):
        return limited, " to this cgroup"
    return available, ""


#: Where cgroups are mounted (v2 at the root, or under ``unified`` beside v1's controllers).
CGROUP_ROOT: Final = "/sys/fs/cgroup"
#: A v1 limit at or above this is "no limit" (the kernel's is just under 2**63).
_UNLIMITED: Final = 2**60


def usable_cpus(root: str = CGROUP_ROOT, proc: str = "/proc/self/cgroup") -> tuple[int, str]:
    """The CPUs this process may run on (its affinity mask, as ``taskset`` sets it), lowered
    by its cgroup's CPU quota; and which bound it is."""
    try:
        cpus, how = len(os.sched_getaffinity(0)), "the affinity mask"
    except (AttributeError, OSError):  # not Linux
        cpus, how = os.cpu_count() or 1, "the CPU count"
    quota = cgroup_cpus(root, proc)
    if quota is not None and math.ceil(quota) < cpus:
        return max(1, math.ceil(quota)), "the cgroup's CPU quota"
    return max(1, cpus), how


def _cgroup_paths(proc: str) -> dict[str, str]:
    """Controller (``memory``, ``cpu``; ``""`` for cgroup v2) -> this process's cgroup."""
    found: dict[str, str] = {}
    try:
        with open(proc, encoding="utf-8") as fh:
            for line in fh:
                parts = line.rstrip("\n").split(":", 2)
                if len(parts) == 3:
                    for controller in parts[1].split(","):
                        found[controller] = parts[2]
    except OSError:
        pass
    return found


def _cgroup_dirs(roots: tuple[str, ...], path: str) -> list[str]:
    """The folders of a cgroup and of its parents, up to the mount (a container may see its
    own cgroup as the root: then the path does not exist and the root is it)."""
    for root in roots:
        if not os.path.isdir(root):
            continue
        here = os.path.normpath(os.path.join(root, path.lstrip("/")))
        found = []
        while here.startswith(root):
            if os.path.isdir(here):
                found.append(here)
            if here == root:
                break
            here = os.path.dirname(here)
        if found:
            return found
    return []


def _number(path: str) -> int | None:
    try:
        with open(path, encoding="ascii") as fh:
            return int(fh.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def cgroup_memory_free(root: str = CGROUP_ROOT, proc: str = "/proc/self/cgroup") -> int | None:
    """What this process's cgroups (v2, v1) let it still use: the least, over the cgroup
    and its parents with a limit, of the limit less the usage; None without a limit."""
    paths = _cgroup_paths(proc)
    lows = []
    v2 = (root, os.path.join(root, "unified"))
    for folder in _cgroup_dirs(v2, paths.get("", "/")):
        limit, used = _number(f"{folder}/memory.max"), _number(f"{folder}/memory.current")
        if limit is not None:
            lows.append(limit - (used or 0))
    for folder in _cgroup_dirs((os.path.join(root, "memory"),), paths.get("memory", "/")):
        limit = _number(f"{folder}/memory.limit_in_bytes")
        used = _number(f"{folder}/memory.usage_in_bytes")
        if limit is not None and limit < _UNLIMITED:
            lows.append(limit - (used or 0))
    return max(0, min(lows)) if lows else None


def cgroup_cpus(root: str = CGROUP_ROOT, proc: str = "/proc/self/cgroup") -> float | None:
    """The CPUs this process's cgroups' quota allows (v2 ``cpu.max``, v1 CFS quota), the
    least over the cgroup and its parents; None without a quota."""
    paths = _cgroup_paths(proc)
    quotas: list[float] = []
    v2 = (root, os.path.join(root, "unified"))
    for folder in _cgroup_dirs(v2, paths.get("", "/")):
        try:
            with open(f"{folder}/cpu.max", encoding="ascii") as fh:
                allowed, every = fh.read().split()[:2]
            if allowed != "max" and int(every) > 0:
                quotas.append(int(allowed) / int(every))
        except (OSError, ValueError):
            continue
    v1 = (os.path.join(root, "cpu"), os.path.join(root, "cpu,cpuacct"))
    for folder in _cgroup_dirs(v1, paths.get("cpu", "/")):
        quota = _number(f"{folder}/cpu.cfs_quota_us")
        period = _number(f"{folder}/cpu.cfs_period_us")
        if quota is not None and period and quota > 0:
            quotas.append(quota / period)
    return min(quotas) if quotas else None
