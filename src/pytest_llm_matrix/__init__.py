"""Run one pytest suite across many LLMs, in parallel, with a per-model summary."""

from __future__ import annotations

from typing import Any

from pytest_llm_matrix._version import __version__
from pytest_llm_matrix.config.models import Model

__all__ = [
    "LLM",
    "Judge",
    "LLMError",
    "Model",
    "Verdict",
    "__version__",
    "current_model",
    "llm_transport",
    "wrap_client",
]

_LAZY = {
    "LLM": "pytest_llm_matrix.calls.client",
    "LLMError": "pytest_llm_matrix.calls.client",
    "Judge": "pytest_llm_matrix.calls.judge",
    "Verdict": "pytest_llm_matrix.calls.judge",
    "llm_transport": "pytest_llm_matrix.calls.transport",
    "wrap_client": "pytest_llm_matrix.calls.transport",
}


def current_model() -> str | None:
    """The alias of the model the running test uses (as in its id: ``test_x[<alias>]``),
    or None outside a model test. For code under test, to label what it produces; the
    environment variable ``LLM_MATRIX_MODEL`` holds the same during the test."""
    # lazy: any part's import loads this package first; it stays a facade that loads
    # nothing of the request path
    from pytest_llm_matrix.calls import context

    ctx = context.current()
    return ctx.model if ctx is not None else None


def __getattr__(name: str) -> Any:
    """The HTTP parts load on first use: this package is imported by every pytest run."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
