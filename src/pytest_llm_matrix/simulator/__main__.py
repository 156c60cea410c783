"""Command line: `python -m pytest_llm_matrix.simulator --port 8000 --config FILE`.

Runs the simulator as a standalone process, e.g. for trying an application against it
or for CI setups that start the endpoint separately from pytest.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from typing import TYPE_CHECKING

from .config import SimulatorConfig, SimulatorConfigError, load_config
from .server import Simulator

if TYPE_CHECKING:
    from collections.abc import Sequence
    from types import FrameType


class _Terminate(Exception):
    """Raised from the SIGTERM handler so shutdown takes the same path as Ctrl-C."""


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise _Terminate


def _port(text: str) -> int:
    """A TCP port, 0 to 65535 (a larger one would reach bind() as an OverflowError)."""
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port from 0 to 65535, got {text!r}")
    return port


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pytest_llm_matrix.simulator",
        description="Serve a simulated OpenAI/Anthropic API on loopback.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind")
    parser.add_argument("--port", type=_port, default=8000, help="port; 0 picks a free one")
    parser.add_argument("--config", help="TOML config file (default: built-in defaults)")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config) if args.config else SimulatorConfig()
    except SimulatorConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _on_sigterm)
    simulator = Simulator(config, host=args.host, port=args.port)
    try:
        url = simulator.start()
    except OSError as exc:
        print(f"error: cannot listen on {args.host}:{args.port}: {exc.strerror}", file=sys.stderr)
        return 2
    print(f"pytest-llm-matrix simulator listening on {url}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except (KeyboardInterrupt, _Terminate):
        pass
    finally:
        simulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
