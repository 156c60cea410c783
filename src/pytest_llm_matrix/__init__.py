"""Run one pytest suite across many LLMs, in parallel, with a per-model summary."""

from __future__ import annotations

from pytest_llm_matrix.models import Model

__version__ = "0.1.0"
__all__ = ["Model", "__version__"]
