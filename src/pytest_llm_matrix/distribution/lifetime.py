"""Nothing a run starts or writes outlives it.

- The session's state directory (request slots, cooldowns, the budget, shared records) is
  removed when the session ends, and on SIGTERM. Its owner holds a lock on a file inside it
  for the whole session; a directory whose lock is free has lost its owner (a controller
  killed by SIGKILL cannot clean up), and the next session removes it. The lock is an OS
  lock, so it is free exactly when the owner is gone: no pid that could have been reused.
  A directory without a lock (an older version of the plugin, which may still be running)
  is removed only after a day without a change.
- An xdist worker whose controller died stops at once, instead of finishing its queued
  tests (spending money on hosted models) against a session nobody reports.
"""

from __future__ import annotations

import atexit
import fcntl
import functools
import gc
import os
import select
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

import pytest

PREFIX: Final = "pytest-llm-matrix-"
#: A directory is made under this name, locked, then renamed to PREFIX...: a session that
#: looks for stale directories never sees one that is not locked yet.
MAKING_PREFIX: Final = ".pytest-llm-matrix-making-"
OWNER_LOCK: Final = "owner.lock"
#: A directory without an owner lock this old is stale: half made (its maker died between
#: mkdtemp and rename), or made by a version of the plugin before owner locks, which may
#: still be running - so only after a day without a change.
UNOWNED_STALE_AFTER: Final = 86400.0
#: How often a worker checks that its controller is alive, in seconds (without pidfds).
PARENT_CHECK: Final = 0.25


def state_dir(config: pytest.Config) -> str:
    """A fresh state directory for the session, owned by this process until it ends;
    stale ones of sessions that died are removed first."""
    temp = Path(tempfile.gettempdir())
    remove_stale(temp)
    making = Path(tempfile.mkdtemp(prefix=MAKING_PREFIX))
    lock = os.open(making / OWNER_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    fcntl.flock(lock, fcntl.LOCK_EX)
    final = temp / (PREFIX + making.name.removeprefix(MAKING_PREFIX))
    os.rename(making, final)

    def remove() -> None:
        shutil.rmtree(final, ignore_errors=True)
        os.close(lock)

    config.add_cleanup(remove)
    _remove_on_sigterm(config, remove)
    return str(final)


def remove_stale(temp: Path) -> list[Path]:
    """Remove the state directories whose owner is gone; return them."""
    removed: list[Path] = []
    try:
        entries = list(os.scandir(temp))
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        try:
            if not entry.is_dir(follow_symlinks=False) or entry.stat().st_uid != os.getuid():
                continue
            old = now - entry.stat().st_mtime > UNOWNED_STALE_AFTER
            if entry.name.startswith(MAKING_PREFIX):
                stale = old  # its lock may not be taken yet: never judged by it
            elif entry.name.startswith(PREFIX):
                owned = _owner_alive(Path(entry.path))
                stale = old if owned is None else not owned
            else:
                continue
        except OSError:
            continue
        if stale:
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(Path(entry.path))
    return removed


def _owner_alive(directory: Path) -> bool | None:
    """Whether a live process holds the directory's owner lock; None when it has none."""
    try:
        fd = os.open(directory / OWNER_LOCK, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def _remove_on_sigterm(config: pytest.Config, remove: Callable[[], None]) -> None:
    """On SIGTERM, remove the state, then die of SIGTERM as the process would have.

    Only where SIGTERM is not handled already (by pytest, another plugin or the program
    that runs pytest in-process), and only from the main thread, where handlers can be set.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return

    def on_sigterm(signum: int, frame: object) -> None:
        remove()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)

    signal.signal(signal.SIGTERM, on_sigterm)

    def restore() -> None:
        if signal.getsignal(signal.SIGTERM) is on_sigterm:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)

    config.add_cleanup(restore)


@functools.cache  # once per process
def end_without_collecting() -> None:
    """In the controller of a distributed run: at the interpreter's exit, the garbage collector
    leaves alone what the process holds then.

    The interpreter's finalization runs full collections over every object still alive (an xdist
    controller of a model run holds ~85,000, with the price table): ~0.2 s of CPU at the end of
    every run on a 2-core machine, for memory the OS frees at once anyway. ``gc.freeze`` at exit
    moves them out of the collector's sight; they are still freed by reference counting as
    modules are cleared. No test runs in an xdist controller, so no test's garbage with a
    finalizer is left to it; registered with ``atexit``, so a process that runs pytest in-process
    and goes on is not affected before its own exit.
    """
    atexit.register(gc.freeze)


def exit_with_controller(controller: object = None) -> None:
    """In an xdist worker: exit as soon as the controller that started it is gone.

    ``controller`` is its pid when the controller said (a preloaded worker's parent is the
    preloader, which may die while the run goes on); otherwise the parent is the controller.
    A pidfd wakes the watcher when the process ends; without pidfds it polls.
    """
    pid = controller if isinstance(controller, int) and not isinstance(controller, bool) else None
    if pid is None:
        pid = os.getppid()
    if pid <= 1:
        return
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        pidfd = None
    if pidfd is None and pid != os.getppid():
        return  # neither a pidfd nor a parent link to watch it by

    def watch() -> None:
        if pidfd is not None:
            poller = select.poll()
            poller.register(pidfd, select.POLLIN)
            while not poller.poll():
                pass
        else:
            while os.getppid() == pid:
                time.sleep(PARENT_CHECK)
        os._exit(1)  # no report could reach anyone; the OS frees the request slots

    threading.Thread(target=watch, name="llm-matrix-parent-watch", daemon=True).start()
