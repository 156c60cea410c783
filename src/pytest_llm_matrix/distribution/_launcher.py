"""Stands in for the Python interpreter of a preloaded xdist worker (see :mod:`.preload`).

execnet starts a local worker as ``<python> -u -c <bootstrap line>`` with pipes for stdin
and stdout. With preloading, ``<python>`` is ``python -I -S`` this script: it hands its
stdin, stdout and stderr, working directory, environment, umask and signal dispositions to
the session's preloader, which forks a worker that runs the bootstrap in their place. The
launcher then stays as the worker's stand-in: it exits with the worker's status, forwards
the signals a process is sent by name, and kills the worker when the controller dies (the
preloader kills it when the launcher is killed). Where GNU ``tail`` is installed, the
launcher becomes ``tail --pid=<worker>`` instead, which waits for the worker in a fraction
of an interpreter's memory. Where the preloader cannot be reached or
refuses, the launcher becomes the interpreter it stands in for (``exec``), so the worker
starts the normal way.

Only builtin and stdlib modules, and as few as possible: it starts once per worker (which is
also why it spells out try/except where contextlib.suppress would do).
"""

from __future__ import annotations

import _socket
import marshal
import os
import select
import struct
import sys

#: typing costs a launcher milliseconds: imported for mypy only (``always_true``); so do
#: ``signal`` and ``socket``, which import ``enum`` (together 45 % of a launcher's start:
#: 20 -> 11 ms): the launcher uses the C modules beneath them
TYPING = False
if TYPING:
    import signal
    from typing import NoReturn
else:
    import _signal as signal

#: sent by the worker (its pid), the preloader (its wait status) or a refusal (why)
PID, STATUS, REFUSED = b"P", b"S", b"N"
HEADER = struct.Struct("!cI")
#: dispositions, as sent: default, ignored, Python's KeyboardInterrupt handler
DFL, IGN, PYINT = 0, 1, 2
FORWARDED = ("SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2")
#: Seconds to wait for the preloader to fork the worker before starting it the normal way
#: (it answers in milliseconds once its imports are done; those take a second or two).
#: ``PYTEST_LLM_MATRIX_LAUNCHER_TIMEOUT`` overrides it (the tests use a short one).
GIVE_UP_AFTER = 60.0


def dispositions() -> dict[int, int]:
    found = {}
    for number in range(1, signal.NSIG):
        try:
            handler = signal.getsignal(number)
        except (ValueError, OSError):
            continue
        if handler is signal.default_int_handler:
            found[number] = PYINT
        elif handler == signal.SIG_IGN:  # an int from _signal
            found[number] = IGN
        elif handler == signal.SIG_DFL:
            found[number] = DFL
    return found


def request(tail: list[str]) -> bytes:
    umask = os.umask(0o22)
    os.umask(umask)
    body = marshal.dumps(
        {
            "argv": tail,
            "cwd": os.getcwd(),
            "env": dict(os.environb),
            "umask": umask,
            "signals": dispositions(),
            "controller": os.getppid(),
        }
    )
    return struct.pack("!I", len(body)) + body


def read_message(conn: _socket.socket) -> tuple[bytes, bytes]:
    """One message: (kind, body); (b'', b'') when the connection ended first."""
    data = b""
    while len(data) < HEADER.size:
        chunk = conn.recv(HEADER.size - len(data))
        if not chunk:
            return b"", b""
        data += chunk
    kind, size = HEADER.unpack(data)
    body = b""
    while len(body) < size:
        chunk = conn.recv(size - len(body))
        if not chunk:
            return b"", b""
        body += chunk
    return kind, body


def give_up_after() -> float:
    try:
        value = float(os.environ.get("PYTEST_LLM_MATRIX_LAUNCHER_TIMEOUT", GIVE_UP_AFTER))
    except ValueError:
        return GIVE_UP_AFTER
    return value if 0 < value <= GIVE_UP_AFTER else GIVE_UP_AFTER


def become_interpreter(tail: list[str], why: str) -> NoReturn:
    """Start the worker the normal way: be the interpreter execnet asked for."""
    if why and os.environ.get("PYTEST_LLM_MATRIX_LAUNCHER_DEBUG"):
        os.write(2, f"llm-matrix launcher: {why}\n".encode())
    os.execv(sys.executable, [sys.executable, *tail])


def mirror(status: int) -> None:
    """Exit as the worker did."""
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        signal.signal(number, signal.SIG_DFL)
        os.kill(os.getpid(), number)
    os._exit(os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 1)


def main() -> None:
    name, tail = sys.argv[1], sys.argv[2:]
    controller = os.getppid()
    try:
        controller_fd = os.pidfd_open(controller)
    except OSError as error:
        become_interpreter(tail, f"no pidfd: {error}")
    payload = request(tail)  # before any handler of ours is set
    conn = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        conn.connect("\0" + name)
        _, uid, _ = struct.unpack(
            "3i", conn.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, 12)
        )
        if uid != os.getuid():
            raise OSError(f"the preloader's socket belongs to uid {uid}")
        rights = (_socket.SOL_SOCKET, _socket.SCM_RIGHTS, struct.pack("3i", 0, 1, 2))
        sent = conn.sendmsg([payload[:4096]], [rights])
        conn.sendall(payload[sent:])
        conn.settimeout(give_up_after())  # a preloader stuck in its imports must not hang us
        kind, body = read_message(conn)
        conn.settimeout(None)
    except OSError as error:
        conn.close()
        become_interpreter(tail, str(error))
    if kind != PID:
        conn.close()
        become_interpreter(tail, body.decode(errors="replace") if body else "no answer")
    worker, waiter = struct.unpack("!i?", body)
    # The worker holds the pipes now: the controller must see them close when it exits.
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.close(null)
    # Ctrl-C reaches the worker with the whole process group; a signal sent to this
    # process by name is meant for the worker.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if waiter:
        # A 1 MB stand-in instead of an interpreter: GNU tail ends when the worker does;
        # the preloader kills the worker if it is killed, and the worker when the
        # controller dies. (The worker's exit status is not mirrored then.)
        signal.signal(signal.SIGQUIT, signal.SIG_IGN)
        try:
            os.execvp("tail", ["tail", f"--pid={worker}", "-s", "0.1", "-f", os.devnull])
        except OSError:
            pass  # stay, as the interpreter

    def forward(number: int, frame: object) -> None:
        try:
            os.kill(worker, number)
        except OSError:
            pass

    for signame in FORWARDED:
        signal.signal(getattr(signal, signame), forward)
    try:
        worker_fd = os.pidfd_open(worker)
    except OSError:
        worker_fd = None
    poller = select.poll()
    poller.register(conn, select.POLLIN)
    poller.register(controller_fd, select.POLLIN)
    if worker_fd is not None:
        poller.register(worker_fd, select.POLLIN)
    connected = True
    while True:
        try:
            events = poller.poll()
        except InterruptedError:
            continue
        for fd, _ in events:
            if fd == controller_fd:
                try:
                    os.kill(worker, signal.SIGKILL)
                except OSError:
                    pass
                os._exit(1)
            if fd == conn.fileno():
                kind, body = read_message(conn)
                if kind == STATUS:
                    mirror(struct.unpack("!i", body)[0])
                poller.unregister(conn)  # the preloader is gone: the worker's pidfd tells
                connected = False
            if fd == worker_fd:
                if connected:  # the preloader sends the status as soon as it reaps it
                    conn.settimeout(2.0)
                    try:
                        kind, body = read_message(conn)
                    except OSError:
                        kind = b""
                    if kind == STATUS:
                        mirror(struct.unpack("!i", body)[0])
                os._exit(1)  # the status went with the preloader


if __name__ == "__main__":
    main()
