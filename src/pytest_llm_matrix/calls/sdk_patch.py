"""``llm_patch_sdks``: SDK clients that the code under test builds itself go to the model
under test.

While a model test runs (its setup, call and teardown), constructing ``openai.OpenAI``,
``openai.AsyncOpenAI``, ``anthropic.Anthropic`` or ``anthropic.AsyncAnthropic`` - however the
class was imported (``from openai import OpenAI`` binds the class itself, so the patch is on
the class, not on a module attribute) - gives a client bound to the test's model: its base
URL and key, the plugin's transport (caps, retries within the test's deadline, usage,
cost), and no retries of the SDK's own. Every other argument the code passes is kept. A
request's ``model`` becomes the model under test's id, whatever the code asked for (suites
hard-code ``"gpt-4o"``). The classes are restored when the test ends.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator
from typing import Any, Final

import pytest

from pytest_llm_matrix.config.models import Model

#: (module, class, asynchronous, the API it speaks)
CLIENTS: Final = (
    ("openai", "OpenAI", False, "openai"),
    ("openai", "AsyncOpenAI", True, "openai"),
    ("anthropic", "Anthropic", False, "anthropic"),
    ("anthropic", "AsyncAnthropic", True, "anthropic"),
)
_PATCHED: Final = "_llm_matrix_original_init"


@contextlib.contextmanager
def bound_sdks(model: Model) -> Iterator[None]:
    """Patch the installed SDKs' client classes for the length of the block."""
    patched: list[tuple[type, Any]] = []
    try:
        for module_name, class_name, asynchronous, api in CLIENTS:
            try:
                cls = getattr(importlib.import_module(module_name), class_name)
            except (ImportError, AttributeError):
                continue  # not installed: nothing can build it
            original = cls.__dict__.get("__init__")
            if original is None or getattr(original, _PATCHED, None) is not None:
                continue
            setattr(cls, "__init__", _bound_init(original, model, asynchronous, api, class_name))  # noqa: B010
            patched.append((cls, original))
        yield
    finally:
        for cls, original in patched:
            setattr(cls, "__init__", original)  # noqa: B010


def client_options(model: Model, asynchronous: bool, rewrite_model: bool | None) -> dict[str, Any]:
    """What an official SDK client for ``model`` is built with: its base URL and key, an
    httpx2 client on the plugin's transport, and no retries of the SDK's own (ours retry)."""
    import httpx2

    # lazy: the request path loads with the first client a test builds
    from pytest_llm_matrix.calls.transport import llm_transport, timeout_of

    transport = llm_transport(
        model, asynchronous=asynchronous, shared=not asynchronous, rewrite_model=rewrite_model
    )
    http = (httpx2.AsyncClient if asynchronous else httpx2.Client)(
        transport=transport, timeout=timeout_of(model)
    )
    return {
        "base_url": model.base_url,
        "api_key": model.api_key() or "not-needed",
        "max_retries": 0,
        "timeout": timeout_of(model),
        "http_client": http,
    }


def _bound_init(original: Any, model: Model, asynchronous: bool, api: str, name: str) -> Any:
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        __tracebackhide__ = True
        if model.api != api:
            pytest.fail(
                f"{model.name} speaks the {model.api} API, but the code under test built an "
                f"{api}.{name} client (llm_patch_sdks binds it to the model under test)",
                pytrace=False,
            )
        kwargs.update(client_options(model, asynchronous, rewrite_model=True))
        original(self, *args, **kwargs)

    setattr(__init__, _PATCHED, original)
    return __init__
