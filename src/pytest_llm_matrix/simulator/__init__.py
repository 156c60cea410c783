"""A loopback HTTP simulator of the OpenAI and Anthropic APIs, with fault injection.

It lets the plugin (and its users) run an LLM test matrix without network, keys or cost,
and makes the unpleasant parts of real providers reproducible: latency, rate limits,
5xx errors, hangs, malformed and truncated answers. The server is stdlib only and this
package import stays cheap (no HTTP client libraries, `http.server` loaded on start).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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
    from .server import Simulator

#: Where each public name lives. Everything loads on first use: the plugin imports the
#: session service (``.service``) in every run, and only a run with a simulated model
#: needs the config, only a started simulator the server.
_LAZY = {
    "DEFAULT_REPLY": ".config",
    "Fault": ".config",
    "ModelConfig": ".config",
    "Rule": ".config",
    "SimulatorConfig": ".config",
    "SimulatorConfigError": ".config",
    "load_config": ".config",
    "parse_config": ".config",
    "Simulator": ".server",
}


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
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
