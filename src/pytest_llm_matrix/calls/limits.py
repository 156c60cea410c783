"""Request slots, cooldowns, rpm windows and model state shared by one pytest session.

Every xdist worker (a separate process) and every thread or async task inside one of them
coordinates through files in one directory, which the controller creates. The HTTP transport
does all the waiting itself, so every method here returns at once: a caller that gets ``None``
or a positive wait sleeps a little and asks again.

Why files and ``flock``: an OS lock dies with its process, so a worker killed by SIGKILL or by
pytest-timeout's ``os._exit`` cannot leak a slot. Small state files are replaced atomically
(``os.replace``, ``os.link``) and so are read without any lock.

Why no caller starves: callers poll, so without help a caller that releases a slot and asks
again a few µs later (the next request of the same test) would take it back every time while
the waiters sleep through that gap. So a slot released while another caller was turned away
stays closed to everyone for a short hand-off (``handoff``, 5 ms by default): the releaser's
immediate retry fails like everyone else's, and whichever caller polls first afterwards gets
it. That is fair as long as waiters poll about as often as the hand-off lasts (a refused try
costs a few µs, so polling every few ms is cheap); a waiter that backs off to much longer
pauses loses to callers that poll faster.

Why first fit: the slots of a scope are tried in order from slot 0 and made only when first
reached, so the slot objects, files and descriptors a process has grow with the concurrency
actually reached, never with the cap: a cap of 10,000 costs what a cap of 10 does until
10,000 requests are really in flight. (A slot beyond the first free one is reached only while
every slot before it is held or handed off.)
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import math
import os
import re
import struct
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Final, Protocol

#: Seconds a slot released under contention stays closed to everyone (see the module doc).
HANDOFF: Final = 0.005
#: Length of the sliding window behind ``rpm_wait``, in seconds.
RPM_WINDOW: Final = 60.0

_STAMP: Final = struct.Struct("<d")
_OPEN_FLAGS: Final = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC


class Lease(Protocol):
    """Capacity held until released."""

    def release(self) -> None:
        """Give the capacity back; idempotent and safe from any thread."""


class Coordinator(Protocol):
    """What the transport needs; one small interface so another backend can be added."""

    def try_acquire(self, model: str, model_cap: int | None) -> Lease | None:
        """One slot of the model's cap (if any) and one of the global cap (if any), or None.

        The model slot is taken first and given back if no global slot is free: a model
        waiting on its own cap must never hold global capacity.
        """

    def cooldown_until(self, model: str) -> float:
        """The ``time.time()`` until which ``model`` cools down; 0.0 if it does not."""

    def start_cooldown(self, model: str, until: float) -> None:
        """Cool ``model`` down until ``until``, unless it already cools down for longer."""

    def rpm_wait(self, model: str, rpm: int) -> float:
        """0.0 if a request was reserved in the 60 s window, else seconds until one can be."""

    def mark_unavailable(self, model: str, reason: str) -> None:
        """Record that ``model`` cannot be used; the first reason given wins."""

    def unavailable(self, model: str) -> str | None:
        """Why ``model`` is unavailable, or None."""

    def all_unavailable(self) -> dict[str, str]:
        """Every unavailable model with its reason."""

    def is_verified(self, model: str) -> bool:
        """Whether a request to ``model`` has succeeded (so no probe is needed)."""

    def mark_verified(self, model: str) -> None:
        """Record that a request to ``model`` succeeded."""

    def start_check(self, model: str, seconds: float) -> None:
        """Say that ``model``'s key is being checked up front, for at most ``seconds`` (a
        mark that outlives a crashed checker expires; see :mod:`.keycheck`)."""

    def checking(self, model: str) -> bool:
        """Whether ``model``'s key is being checked now (its requests wait for the check)."""

    def end_check(self, model: str) -> None:
        """The check of ``model``'s key is over (its outcome is marked first)."""

    def try_probe(self, model: str) -> Lease | None:
        """The exclusive first-request gate of an unverified model, or None if taken.

        With a wrong API key only one request is ever sent, across all workers.
        """

    def add_cost(self, amount: float) -> None:
        """Add ``amount`` USD to the session's spend."""

    def spent(self) -> float:
        """The session's spend so far, in USD (0.0 before anything was added)."""

    def update_record(self, name: str, change: Callable[[str | None], str]) -> str:
        """Replace the shared text record ``name`` with ``change(old)`` (None: no record yet)
        as one atomic step across processes and threads; return the new text."""

    def record(self, name: str) -> str | None:
        """The shared text record ``name``, or None."""

    def close(self) -> None:
        """Free this process's resources; leases still held are released."""


class _Slot:
    """One lock file: ``flock`` excludes other processes and the thread lock other threads of
    this process, which share the descriptor (and so would share its ``flock``)."""

    __slots__ = ("_fd", "_path", "_thread_lock", "taken_at")

    def __init__(self, path: str) -> None:
        self._path = path
        self._fd = -1
        self._thread_lock = threading.Lock()
        self.taken_at = 0.0

    def try_take(self, now: float, handoff: float) -> bool:
        if not self._thread_lock.acquire(blocking=False):
            return False
        try:
            taken = self._try_flock(now, handoff)
        except BaseException:
            self._thread_lock.release()
            raise
        if not taken:
            self._thread_lock.release()
        return taken

    def _try_flock(self, now: float, handoff: float) -> bool:
        if self._fd < 0:
            self._fd = os.open(self._path, _OPEN_FLAGS, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        # Closed for a hand-off? Compared as an age, so a wall clock set back cannot close
        # the slot for longer than the hand-off.
        if 0.0 <= now - _read_stamp(self._fd) < handoff:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            return False
        self.taken_at = now
        return True

    @property
    def is_open(self) -> bool:
        """False once closed: closing the descriptor dropped its ``flock``."""
        return self._fd >= 0

    def give_back(self, handed_off_at: float | None) -> None:
        """Unlock, first writing the hand-off time (if any) while still holding the lock."""
        if self.is_open:
            if handed_off_at is not None:
                os.pwrite(self._fd, _STAMP.pack(handed_off_at), 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._thread_lock.release()

    def close(self) -> None:
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)


class _Scope:
    """The slots of one cap (the global one, a model's, a model's probe) and the time a
    caller was last turned away from it (the *contended* stamp, shared by all processes)."""

    def __init__(self, prefix: str, handoff: float) -> None:
        self._prefix = prefix
        self._handoff = handoff
        self._slots: list[_Slot] = []
        self._stamp_fd = -1
        self._opening = threading.Lock()

    def try_take(self, cap: int, now: float) -> _Slot | None:
        """The first free slot below ``cap`` (see "first fit" in the module doc), or None."""
        for index in range(cap):
            slot = self._slot(index)
            if slot.try_take(now, self._handoff):
                return slot
        os.pwrite(self._contended_fd(), _STAMP.pack(now), 0)
        return None

    def give_back(self, slot: _Slot, *, hand_off: bool = True) -> None:
        """Return ``slot``, handed off (see the module doc) if someone was turned away since
        it was taken."""
        contended = (
            hand_off
            and self._handoff > 0
            and slot.is_open
            and _read_stamp(self._contended_fd()) >= slot.taken_at
        )
        slot.give_back(time.time() if contended else None)

    def close(self) -> None:
        for slot in self._slots:
            slot.close()
        fd, self._stamp_fd = self._stamp_fd, -1
        if fd >= 0:
            os.close(fd)

    def _slot(self, index: int) -> _Slot:
        """Slot ``index``, made on first use (slots are only ever reached in order)."""
        if index >= len(self._slots):
            with self._opening:
                while len(self._slots) <= index:
                    self._slots.append(_Slot(f"{self._prefix}-{len(self._slots)}.lock"))
        return self._slots[index]

    def _contended_fd(self) -> int:
        if self._stamp_fd < 0:
            with self._opening:
                if self._stamp_fd < 0:
                    self._stamp_fd = os.open(f"{self._prefix}.contended", _OPEN_FLAGS, 0o644)
        return self._stamp_fd


class _Lease:
    __slots__ = ("_held",)

    def __init__(self, held: list[tuple[_Scope, _Slot]]) -> None:
        self._held = held

    def release(self) -> None:
        # list.pop is atomic: each slot is given back once, whichever threads call this.
        while True:
            try:
                scope, slot = self._held.pop()
            except IndexError:
                return
            scope.give_back(slot)


class FileCoordinator:
    """The :class:`Coordinator` of one session, kept in ``directory`` (see the module doc).

    Files, ``<m>`` being a model alias made file-name safe:
    ``global-<i>.lock``, ``model-<m>-<i>.lock``, ``probe-<m>-0.lock`` (slots: ``flock``, with
    the last hand-off time inside); ``global.contended``, ``model-<m>.contended``,
    ``probe-<m>.contended`` (last refusal time); ``model-<m>.cooldown``, ``.rpm``,
    ``.unavailable``, ``.verified``, ``.checking`` (until when), and ``model-<m>.lock``
    guarding cooldown and rpm updates;
    ``spent`` (the budget); ``record-<hash>`` with its ``.lock`` (shared records, e.g. the
    runs of a repeated test).

    Cheap to construct: nothing is opened before first use. A process keeps one descriptor
    open per slot file it has tried (slots are tried first fit, so as many as the
    concurrency it has seen, plus one) and one per scope for its contention stamp.
    """

    def __init__(
        self, directory: Path, global_cap: int | None, *, handoff: float = HANDOFF
    ) -> None:
        if global_cap is not None and global_cap < 1:
            raise ValueError(f"global_cap must be at least 1, got {global_cap}")
        self._dir = os.fspath(directory)
        self._global_cap = global_cap
        self._handoff = handoff
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._scopes: dict[tuple[str, str | None], _Scope] = {}
        self._verified: set[str] = set()
        self._unavailable: dict[str, str] = {}

    def try_acquire(self, model: str, model_cap: int | None) -> Lease | None:
        now = time.time()
        held: list[tuple[_Scope, _Slot]] = []
        if model_cap is not None:
            if model_cap < 1:
                raise ValueError(f"model_cap must be at least 1, got {model_cap}")
            scope = self._scope("model", model)
            slot = scope.try_take(model_cap, now)
            if slot is None:
                return None
            held.append((scope, slot))
        if self._global_cap is not None:
            scope = self._scope("global")
            slot = scope.try_take(self._global_cap, now)
            if slot is None:
                for taken_scope, taken in held:
                    taken_scope.give_back(taken, hand_off=False)  # it was never used
                return None
            held.append((scope, slot))
        return _Lease(held)

    def try_probe(self, model: str) -> Lease | None:
        scope = self._scope("probe", model)
        slot = scope.try_take(1, time.time())
        return None if slot is None else _Lease([(scope, slot)])

    def cooldown_until(self, model: str) -> float:
        try:
            text = _read(self._path(model, "cooldown"))
            until = float(text) if text else 0.0
        except ValueError:  # not a number: no cooldown (never a crash, never forever)
            return 0.0
        return until if math.isfinite(until) else 0.0

    def start_cooldown(self, model: str, until: float) -> None:
        with _exclusive(self._path(model, "lock")):
            if until > self.cooldown_until(model):
                _write_atomic(self._path(model, "cooldown"), repr(until))

    def rpm_wait(self, model: str, rpm: int) -> float:
        if rpm < 1:
            raise ValueError(f"rpm must be at least 1, got {rpm}")
        path = self._path(model, "rpm")
        with _exclusive(self._path(model, "lock")):
            now = time.time()
            window: list[float] = json.loads(_read(path) or "[]")
            recent = sorted(t for t in window if t > now - RPM_WINDOW)
            if len(recent) < rpm:
                _write_atomic(path, json.dumps([*recent, now]))
                return 0.0
        return recent[len(recent) - rpm] + RPM_WINDOW - now

    def add_cost(self, amount: float) -> None:
        path = os.path.join(self._dir, "spent")
        with _exclusive(path + ".lock"):
            _write_atomic(path, repr(float(_read(path) or 0.0) + amount))

    def spent(self) -> float:
        return float(_read(os.path.join(self._dir, "spent")) or 0.0)

    def update_record(self, name: str, change: Callable[[str | None], str]) -> str:
        path = self._record_path(name)
        with _exclusive(path + ".lock"):
            text = change(_read(path))
            _write_atomic(path, text)
        return text

    def record(self, name: str) -> str | None:
        return _read(self._record_path(name))

    def _record_path(self, name: str) -> str:
        return f"{self._dir}/record-{hashlib.sha256(name.encode()).hexdigest()[:24]}"

    def mark_unavailable(self, model: str, reason: str) -> None:
        path = self._path(model, "unavailable")
        temp = _temp_path(path)
        _write(temp, json.dumps({"model": model, "reason": reason}))
        # A hard link appears complete or not at all, and fails if the name exists: the
        # first reason wins and readers never see a half-written file (unlike O_EXCL + write).
        with contextlib.suppress(FileExistsError):
            os.link(temp, path)
        os.unlink(temp)

    def unavailable(self, model: str) -> str | None:
        reason = self._unavailable.get(model)
        if reason is None:
            text = _read(self._path(model, "unavailable"))
            if text is not None:
                reason = self._unavailable[model] = json.loads(text)["reason"]
        return reason

    def all_unavailable(self) -> dict[str, str]:
        found: dict[str, str] = {}
        if not os.path.isdir(self._dir):  # removed under the session: nothing more to learn
            return found
        with os.scandir(self._dir) as entries:
            for entry in entries:
                text = _read(entry.path) if entry.name.endswith(".unavailable") else None
                if text:
                    record = json.loads(text)
                    found[record["model"]] = record["reason"]
        self._unavailable.update(found)
        return found

    def is_verified(self, model: str) -> bool:
        if model not in self._verified and os.path.exists(self._path(model, "verified")):
            self._verified.add(model)
        return model in self._verified

    def mark_verified(self, model: str) -> None:
        os.close(os.open(self._path(model, "verified"), _OPEN_FLAGS, 0o644))
        self._verified.add(model)

    def start_check(self, model: str, seconds: float) -> None:
        _write_atomic(self._path(model, "checking"), repr(time.time() + seconds))

    def checking(self, model: str) -> bool:
        try:
            text = _read(self._path(model, "checking"))
            until = float(text) if text else 0.0
        except ValueError:  # not a number: no check (never a wait forever)
            return False
        return math.isfinite(until) and time.time() < until

    def end_check(self, model: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._path(model, "checking"))

    def close(self) -> None:
        with self._lock:
            scopes, self._scopes = list(self._scopes.values()), {}
        for scope in scopes:
            scope.close()

    def _scope(self, kind: str, model: str | None = None) -> _Scope:
        if os.getpid() != self._pid:
            self._forget_inherited()
        scope = self._scopes.get((kind, model))
        if scope is None:
            name = kind if model is None else f"{kind}-{_file_name(model)}"
            prefix = f"{self._dir}/{name}"
            with self._lock:
                scope = self._scopes.setdefault((kind, model), _Scope(prefix, self._handoff))
        return scope

    def _forget_inherited(self) -> None:
        """In a forked child: the inherited descriptors share the parent's locks, so a
        ``flock`` on them would "succeed" on a slot the parent holds. Start afresh."""
        for scope in self._scopes.values():
            scope.close()
        self._scopes = {}
        self._lock = threading.Lock()  # may have been held by another thread at fork time
        self._pid = os.getpid()

    def _path(self, model: str, suffix: str) -> str:
        return f"{self._dir}/model-{_file_name(model)}.{suffix}"


@functools.lru_cache(maxsize=1024)
def _file_name(model: str) -> str:
    """A file-name-safe stand-in for a model alias (``org/m:1.5``): readable part + hash."""
    readable = re.sub(r"[^A-Za-z0-9_]+", "_", model)[:40]
    return f"{readable}-{hashlib.sha256(model.encode()).hexdigest()[:12]}"


def _read_stamp(fd: int) -> float:
    data = os.pread(fd, _STAMP.size, 0)
    return float(_STAMP.unpack(data)[0]) if len(data) == _STAMP.size else 0.0


def _read(path: str) -> str | None:
    """The file's text, or None if it does not exist."""
    try:
        with open(path, "rb") as file:
            return file.read().decode()
    except FileNotFoundError:
        return None


def _write(path: str, text: str) -> None:
    with open(path, "wb") as file:
        file.write(text.encode())


def _write_atomic(path: str, text: str) -> None:
    temp = _temp_path(path)
    _write(temp, text)
    os.replace(temp, path)


def _temp_path(path: str) -> str:
    """Unique per thread, so concurrent writers never share a temporary file."""
    return f"{path}.{os.getpid()}-{threading.get_ident()}.tmp"


@contextlib.contextmanager
def _exclusive(path: str) -> Iterator[None]:
    """Hold an OS lock on ``path`` for a read-modify-write of a few µs. A fresh descriptor
    per call, so threads of one process exclude each other as well as processes."""
    fd = os.open(path, _OPEN_FLAGS, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
