"""The preloader process: imports what every xdist worker imports, then forks the workers.

Started by the controller (:mod:`.preload`) as ``python -u -c <BOOT> <plan>``, with the
listening socket the launchers connect to (see :mod:`._launcher`). It stays single-threaded:
after its imports it only accepts requests, forks, reaps and kills.

A forked worker gets everything a worker started by execnet would have had from its
interpreter's start: the launcher's stdin, stdout and stderr, working directory,
environment, umask and signal dispositions, ``sys.argv == ['-c']``, and a clean
``__main__``; none of the preloader's sockets or descriptors. Then it runs execnet's
bootstrap from its stdin, as ``python -c`` would have. The interpreter-level settings that
cannot change after start (``PYTHON*`` and locale variables) must be those the preloader
started with; a request whose differ is refused, and its worker starts the normal way.

The preloader guards the workers it forked: it kills a worker whose launcher died (execnet
kills the launcher to kill a worker), and every worker when the controller dies.
"""

from __future__ import annotations

import ast
import atexit
import contextlib
import dataclasses
import gc
import importlib
import marshal
import os
import re
import select
import signal
import socket
import struct
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any, Final, NoReturn

from pytest_llm_matrix.distribution._launcher import DFL, HEADER, IGN, PID, PYINT, REFUSED, STATUS

#: The argument list execnet gives a local interpreter, after the executable.
EXPECTED_ARGV: Final = re.compile(
    r"\A-u\x00(?:-B\x00)?-c\x00import sys;exec\(eval\(sys\.stdin\.readline\(\)\)\)\Z"
)
#: The end of execnet's bootstrap when it sends its whole gateway module as source.
EXEC_TAIL: Final = re.compile(
    r"\nexecmodel = get_execmodel\((?P<model>'[a-z_]+')\)\n"
    r"io = init_popen_io\(execmodel\)\n"
    r"io\.write\('1'\.encode\('ascii'\)\)\n"
    r"serve\(io, id=(?P<id>'[A-Za-z0-9_.-]+')\)\Z"
)
#: Settings read once when an interpreter starts: a forked worker inherits the preloader's.
FIXED_AT_START: Final = re.compile(rb"\A(?:PYTHON.*|LANG|LC_.*)\Z")
MAX_REQUEST: Final = 16 * 2**20


@dataclasses.dataclass
class Request:
    argv: list[str]
    cwd: str
    env: dict[bytes, bytes]
    umask: int
    signals: dict[int, int]


@dataclasses.dataclass
class Worker:
    pid: int
    pidfd: int
    conn: socket.socket
    launcher_fd: int | None
    launcher: int = 0  # its pid


class BecomeWorker(Exception):
    """Raised in a forked child, once set up, to leave the preloader's loop."""


def run(plan: dict[str, Any], hook: object | None, main_names: set[str]) -> None:
    """The preloader's life; returns only in a forked worker, after the worker's session."""
    imported, failed = [], []
    for name in plan["modules"]:
        try:
            importlib.import_module(name)
            imported.append(name)
        except Exception as error:  # a worker imports it again and reports the error itself
            failed.append(f"{name}: {type(error).__name__}")
    if hook is not None and hook in sys.meta_path:
        sys.meta_path.remove(hook)
    if threading.active_count() > 1:
        names = ", ".join(t.name for t in threading.enumerate() if t is not threading.main_thread())
        _say(f"not preloading: an import started a thread ({names}), forking it is unsafe")
        return
    _say(
        f"ready: {len(imported)} modules"
        + (f"; not imported: {', '.join(failed)}" if failed else "")
    )
    gateway_source = _gateway_source()
    _warm_tls()
    waiter = _gnu_tail()
    gc.collect()
    gc.freeze()  # the workers share these objects; the collector will not copy their pages
    try:
        server = Server(plan["listen_fd"], plan["controller"], waiter)
    except ProcessLookupError:  # the run ended (SIGTERM, Ctrl-C) before this was ready
        return
    try:
        server.loop()
    except BecomeWorker:
        pass  # this is a forked worker now, set up as its launcher's interpreter would be
    else:
        return
    _clean_main(main_names)
    _run_bootstrap(gateway_source)
    _exit_as_interpreter()


def _gnu_tail() -> bool:
    """Whether GNU ``tail`` (which can wait for a pid) is there for launchers to become."""
    import subprocess

    try:
        done = subprocess.run(
            ["tail", "--version"], capture_output=True, timeout=5, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0 and b"GNU coreutils" in done.stdout


def _warm_tls() -> None:
    """Load the CA bundle once, here: every worker's first request would load its own
    (tens of milliseconds and megabytes each); forked, they share this one."""
    transport = sys.modules.get("pytest_llm_matrix.calls.transport")
    if transport is None:
        return
    for name in ("httpx2", "httpx"):
        module = sys.modules.get(name)
        if module is not None:
            with contextlib.suppress(Exception):
                transport._tls(module)


def _say(line: str) -> None:
    """One line for the controller (its pipe is this process's stdout until it forks)."""
    with contextlib.suppress(OSError):
        os.write(1, (line + "\n").encode(errors="replace"))


def _gateway_source() -> str | None:
    try:
        import execnet.gateway_base as gateway_base

        with open(gateway_base.__file__, encoding="utf-8") as fh:
            return fh.read()
    except (ImportError, OSError, TypeError):
        return None


class Server:
    def __init__(self, listen_fd: int, controller: int, waiter: bool) -> None:
        self.waiter = waiter
        self.listener = socket.socket(fileno=listen_fd)
        self.listener.setblocking(True)
        self.controller_fd = os.pidfd_open(controller)
        self.controller = controller
        self.poller = select.poll()
        self.poller.register(self.listener, select.POLLIN)
        self.poller.register(self.controller_fd, select.POLLIN)
        self.by_pidfd: dict[int, Worker] = {}
        self.by_launcher: dict[int, Worker] = {}
        self.start_env = {k: v for k, v in os.environb.items() if FIXED_AT_START.match(k)}
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C: the controller decides

    def loop(self) -> None:
        while True:
            try:
                events = self.poller.poll()
            except InterruptedError:
                continue
            for fd, _ in events:
                if fd == self.controller_fd:
                    self.kill_all()
                    return
                if fd == self.listener.fileno():
                    self.accept()
                elif fd in self.by_pidfd:
                    self.reap(self.by_pidfd[fd])
                elif fd in self.by_launcher:
                    _kill(self.by_launcher[fd].pid)

    def kill_all(self) -> None:
        for worker in self.by_pidfd.values():
            _kill(worker.pid)
        for worker in list(self.by_pidfd.values()):
            self.reap(worker)

    def accept(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        fds: list[int] = []
        try:
            conn.settimeout(5.0)
            launcher, uid, _ = struct.unpack(
                "3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
            )
            if uid != os.getuid() or _parent_of(launcher) != self.controller:
                raise ValueError("not a launcher of this session")
            request, fds = self.read_request(conn)
            problem = self.problem(request, fds)
            if problem is not None:
                _say(f"refused: {problem}")
                _send(conn, REFUSED, problem.encode())
                raise ValueError(problem)
            if _gave_up(conn):
                raise EOFError  # its launcher timed out and started the worker itself
            try:
                launcher_fd: int | None = os.pidfd_open(launcher)
            except OSError:
                launcher_fd = None
            self.fork(conn, request, fds, launcher_fd, launcher)
        except BecomeWorker:
            raise
        except (OSError, ValueError, TypeError, KeyError, EOFError, struct.error):
            conn.close()
        finally:
            for fd in fds:
                _close(fd)

    @staticmethod
    def read_request(conn: socket.socket) -> tuple[Request, list[int]]:
        data, fds, _, _ = socket.recv_fds(conn, 4096, 3)
        if len(data) < 4:
            raise ValueError("short request")
        (size,) = struct.unpack("!I", data[:4])
        if size > MAX_REQUEST:
            raise ValueError("request too large")
        body = data[4:]
        while len(body) < size:
            chunk = conn.recv(min(size - len(body), 2**20))
            if not chunk:
                raise EOFError
            body += chunk
        raw = marshal.loads(body)
        request = Request(
            argv=[str(a) for a in raw["argv"]],
            cwd=str(raw["cwd"]),
            env={bytes(k): bytes(v) for k, v in raw["env"].items()},
            umask=int(raw["umask"]),
            signals={int(k): int(v) for k, v in raw["signals"].items()},
        )
        return request, list(fds)

    def problem(self, request: Request, fds: list[int]) -> str | None:
        if len(fds) != 3:
            return "expected stdin, stdout and stderr"
        if not EXPECTED_ARGV.match("\x00".join(request.argv)):
            return f"unexpected interpreter arguments {request.argv!r}"
        fixed = {k: v for k, v in request.env.items() if FIXED_AT_START.match(k)}
        if fixed != self.start_env:
            changed = sorted(
                k.decode(errors="replace") for k in fixed.keys() ^ self.start_env.keys()
            )
            changed += sorted(
                k.decode(errors="replace")
                for k in fixed.keys() & self.start_env.keys()
                if fixed[k] != self.start_env[k]
            )
            return f"interpreter settings changed since the preloader started: {', '.join(changed)}"
        return None

    def fork(
        self,
        conn: socket.socket,
        request: Request,
        fds: list[int],
        launcher_fd: int | None,
        launcher: int = 0,
    ) -> None:
        pid = os.fork()
        if pid == 0:
            try:
                self.in_child(conn, request, fds, launcher_fd)
            except BaseException:
                os._exit(70)
            raise BecomeWorker
        try:
            pidfd = os.pidfd_open(pid)
        except OSError:  # gone already: reap it now
            pidfd = -1
        worker = Worker(pid, pidfd, conn, launcher_fd, launcher)
        if pidfd < 0:
            self.reap(worker)
            return
        self.by_pidfd[pidfd] = worker
        self.poller.register(pidfd, select.POLLIN)
        if launcher_fd is not None:
            self.by_launcher[launcher_fd] = worker
            self.poller.register(launcher_fd, select.POLLIN)

    def in_child(
        self, conn: socket.socket, request: Request, fds: list[int], launcher_fd: int | None
    ) -> None:
        """Make this forked process what the launcher's interpreter would have been."""
        self.listener.close()
        _close(self.controller_fd)
        for worker in self.by_pidfd.values():
            worker.conn.close()
            _close(worker.pidfd)
            if worker.launcher_fd is not None:
                _close(worker.launcher_fd)
        if launcher_fd is not None:
            _close(launcher_fd)
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
        for fd in fds:
            if fd > 2:
                os.close(fd)
        fds.clear()
        _send(conn, PID, struct.pack("!i?", os.getpid(), self.waiter))
        conn.close()
        os.chdir(request.cwd)
        os.umask(request.umask)
        os.environb.clear()
        os.environb.update(request.env)
        handlers: dict[int, signal.Handlers | Callable[[int, FrameType | None], Any]] = {
            DFL: signal.SIG_DFL,
            IGN: signal.SIG_IGN,
            PYINT: signal.default_int_handler,
        }
        for number, disposition in request.signals.items():
            if disposition in handlers:
                with contextlib.suppress(OSError, ValueError):
                    signal.signal(number, handlers[disposition])
        sys.argv[:] = ["-c"]
        if "-B" in request.argv:
            sys.dont_write_bytecode = True

    def reap(self, worker: Worker) -> None:
        try:
            _, status = os.waitpid(worker.pid, 0)
        except ChildProcessError:
            status = 1 << 8
        with contextlib.suppress(OSError):  # a launcher that became tail does not listen
            _send(worker.conn, STATUS, struct.pack("!i", status))
        worker.conn.close()
        if self.waiter and worker.launcher_fd is not None:
            _end_waiter(worker.launcher_fd, worker.launcher)
        if worker.pidfd >= 0:
            self.by_pidfd.pop(worker.pidfd, None)
            self.poller.unregister(worker.pidfd)
            _close(worker.pidfd)
        if worker.launcher_fd is not None:
            self.by_launcher.pop(worker.launcher_fd, None)
            self.poller.unregister(worker.launcher_fd)
            _close(worker.launcher_fd)


def _end_waiter(launcher_fd: int, launcher: int) -> None:
    """A launcher that became ``tail --pid`` notices its worker's end only at its next look,
    up to a tenth of a second later, and xdist's teardown (the run's end) waits for it: it is
    ended now. Through its pidfd, so never another process that took its pid; only once it
    is ``tail`` (one that stayed an interpreter ends by itself on the status it is sent)."""
    try:
        with open(f"/proc/{launcher}/comm", "rb") as comm:
            if comm.read().strip() != b"tail":
                return
        signal.pidfd_send_signal(launcher_fd, signal.SIGTERM)
    except (OSError, AttributeError):  # gone already; no pidfd_send_signal
        pass


def _gave_up(conn: socket.socket) -> bool:
    """Whether the launcher closed its end (it sends nothing after its request)."""
    poller = select.poll()
    poller.register(conn, select.POLLIN | select.POLLHUP)
    if not poller.poll(0):
        return False
    try:
        return conn.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def _send(conn: socket.socket, kind: bytes, body: bytes) -> None:
    conn.sendall(HEADER.pack(kind, len(body)) + body)


def _kill(pid: int) -> None:
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGKILL)


def _close(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)


def _parent_of(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
        return int(stat[stat.rindex(b")") + 2 :].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def _exit_as_interpreter() -> NoReturn:
    """End a worker whose session is over as its interpreter would, minus the teardown of
    every module and object it inherited (which touches, and so copies, every shared page:
    ~1 s of CPU for 64 workers ending at once on 2 cores). What an interpreter's exit does
    that a program can see is kept: it waits for the threads that are not daemons, runs the
    ``atexit`` functions, and flushes the standard streams. An error in the bootstrap does
    not come here: it propagates and the interpreter ends the normal way, with status 1."""
    main = threading.main_thread()
    for thread in threading.enumerate():
        if thread is not main and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()  # prints what a function raised, as the interpreter would
    code = 0
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except Exception:  # a closed or broken stream: the interpreter would say nothing
            code = code or 120
    os._exit(code)


def _clean_main(keep: set[str]) -> None:
    """``__main__`` as a fresh ``python -c`` has it."""
    main = sys.modules["__main__"].__dict__
    for name in [n for n in main if n not in keep]:
        del main[name]


def _run_bootstrap(gateway_source: str | None) -> None:
    """Run execnet's bootstrap from stdin, as the ``-c`` line would have: the import form
    (what a plain ``popen`` worker runs) when execnet sent its gateway module as source."""
    main = sys.modules["__main__"].__dict__
    source = ast.literal_eval(sys.stdin.readline())
    tail = EXEC_TAIL.search(source) if isinstance(source, str) else None
    if tail is not None and gateway_source and source.startswith(gateway_source):
        import execnet

        importdir = os.path.dirname(os.path.dirname(execnet.__file__))
        source = "\n".join(
            [
                "import sys",
                f"if {importdir!r} not in sys.path:",
                f"    sys.path.insert(0, {importdir!r})",
                "from execnet.gateway_base import serve, init_popen_io, get_execmodel",
                "sys.stdout.write('1')",
                "sys.stdout.flush()",
                f"execmodel = get_execmodel({tail['model']})",
                f"serve(init_popen_io(execmodel), id={tail['id']})",
            ]
        )
    exec(source, main)
