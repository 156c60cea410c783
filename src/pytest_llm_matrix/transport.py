"""HTTP clients bound to one model: the single seam every request goes through.

Everything that talks to a model (the ``llm`` fixture today, the SDK fixtures later)
gets its ``httpx2`` client here, so retries, concurrency caps and usage accounting can be
added in one place. httpx2 is imported lazily: this module is only loaded when a test
actually uses a model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    import httpx2

    from pytest_llm_matrix.models import Model

ANTHROPIC_VERSION: Final = "2023-06-01"
DEFAULT_TIMEOUT: Final = 60.0
USER_AGENT: Final = "pytest-llm-matrix"


def auth_headers(model: Model) -> dict[str, str]:
    """The headers that authenticate to ``model``'s API (empty when it needs no key)."""
    headers = {"user-agent": USER_AGENT}
    key = model.api_key()
    if model.api == "anthropic":
        headers["anthropic-version"] = ANTHROPIC_VERSION
        if key:
            headers["x-api-key"] = key
    elif key:
        headers["authorization"] = f"Bearer {key}"
    return headers


def base_url(model: Model) -> str:
    if not model.base_url:
        raise RuntimeError(f"model {model.name!r} has no base_url")  # registry guarantees one
    return model.base_url.rstrip("/")


def _timeout(model: Model) -> float:
    return model.timeout if model.timeout is not None else DEFAULT_TIMEOUT


def http_client(model: Model) -> httpx2.Client:
    """A synchronous httpx2 client with ``model``'s base URL, auth and timeout."""
    import httpx2

    return httpx2.Client(
        base_url=base_url(model), headers=auth_headers(model), timeout=_timeout(model)
    )


def async_http_client(model: Model) -> httpx2.AsyncClient:
    """The asynchronous twin of :func:`http_client`."""
    import httpx2

    return httpx2.AsyncClient(
        base_url=base_url(model), headers=auth_headers(model), timeout=_timeout(model)
    )
