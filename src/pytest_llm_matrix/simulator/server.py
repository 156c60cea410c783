"""`Simulator`: runs the loopback server on a daemon thread inside the calling process.

It runs inside the pytest controller, so starting must take milliseconds and stopping
must never wait for handlers that are deliberately hanging or pacing a stream.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from .state import SimulatorState

if TYPE_CHECKING:
    from types import TracebackType

    from .config import SimulatorConfig
    from .handler import SimulatorHTTPServer

# How often the accept loop checks for shutdown; bounds how long `stop()` takes.
_POLL_INTERVAL = 0.02


class Simulator:
    """A fake OpenAI/Anthropic endpoint on loopback, driven by a `SimulatorConfig`.

    Use as a context manager (`with Simulator(cfg) as sim: sim.url`) or call `start()` and
    `stop()`. Stats and counters live on the instance and survive `stop()`.
    """

    def __init__(self, config: SimulatorConfig, host: str = "127.0.0.1", port: int = 0) -> None:
        self._host = host
        self._port = port
        self._state = SimulatorState(config)
        self._server: SimulatorHTTPServer | None = None
        self._url: str | None = None

    def start(self) -> str:
        """Bind, start serving on a daemon thread and return the base URL."""
        if self._server is not None:
            raise RuntimeError("simulator is already running")
        # lazy: http.server costs tens of milliseconds to import and is only needed here
        from .handler import SimulatorHTTPServer

        server = SimulatorHTTPServer((self._host, self._port), self._state)
        thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": _POLL_INTERVAL},
            name="pytest-llm-matrix-simulator",
            daemon=True,
        )
        thread.start()
        self._server = server
        host = server.server_name
        netloc = f"[{host}]" if ":" in host else host
        self._url = f"http://{netloc}:{server.server_port}"
        return self._url

    def stop(self) -> None:
        """Stop serving and drop open connections; idempotent and fast."""
        server, self._server = self._server, None
        if server is None:
            return
        server.stopping.set()  # wakes handlers sleeping for latency, pacing or a hang fault
        server.shutdown()
        server.close_connections()
        server.server_close()

    @property
    def url(self) -> str:
        """Base URL (`http://127.0.0.1:PORT`); OpenAI clients want `url + "/v1"`."""
        if self._url is None:
            raise RuntimeError("simulator has not been started")
        return self._url

    def stats(self) -> dict[str, Any]:
        """Request, in-flight, status and fault counters (same as `GET /_sim/stats`)."""
        return self._state.stats()

    def reset(self) -> None:
        """Clear counters, rate-limit windows and stats (same as `POST /_sim/reset`)."""
        self._state.reset()

    def __enter__(self) -> Simulator:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
