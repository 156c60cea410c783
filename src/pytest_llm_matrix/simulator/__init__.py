"""A loopback HTTP simulator of the OpenAI and Anthropic APIs, with fault injection.

It lets the plugin (and its users) run an LLM test matrix without network, keys or cost,
and makes the unpleasant parts of real providers reproducible: latency, rate limits,
5xx errors, hangs, malformed and truncated answers. The server is stdlib only and this
package import stays cheap (no HTTP client libraries, `http.server` loaded on start).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .config import (
    DEFAULT_REPLY,
    Fault,
    ModelConfig,
    Rule,
    SimulatorConfig,
    SimulatorConfigError,
    load_config,
    parse_config,
)

if TYPE_CHECKING:
    from .server import Simulator


def __getattr__(name: str) -> Any:
    """``Simulator`` loads on first use: the plugin only validates configs up front."""
    if name == "Simulator":
        from .server import Simulator

        return Simulator
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DEFAULT_REPLY",
    "Fault",
    "ModelConfig",
    "Rule",
    "Simulator",
    "SimulatorConfig",
    "SimulatorConfigError",
    "load_config",
    "parse_config",
]
