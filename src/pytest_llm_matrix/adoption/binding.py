"""Binding at request time: while a model test runs, the generation calls of every official
SDK client go to the model under test, wherever and whenever the client was built.

A client built inside the test, one cached at module level or by a module- or
session-scoped fixture, openai's module-level client (``openai.chat.completions.create``),
sync or async: all make their requests in the SDK's ``BaseClient._build_request`` and send
them with their HTTP client's ``send``. For the length of a model test both are wrapped:

- a *generation* call (see :mod:`pytest_llm_matrix.adoption.routes`) is rebuilt for the
  model under test (its base URL and key, the client's own credentials dropped) and sent
  through the plugin's transport: caps, retries within the test's deadline, usage and cost
  in the model's row, recording and replay, its ``model`` rewritten to the model's id;
- an *auxiliary* call (embeddings, moderations, token counting, files, a judge whose model
  id is listed in ``[tool.llm-matrix.auxiliary]``) is never rewritten: it goes where its
  client sent it, with the client's own key, or to the configured model its id is routed
  to; either way through the plugin's transport, counted in a row of its own, recorded and
  replayed with the test's recordings. With a simulated model under test, one that would
  leave the machine fails the test instead, naming the client and the URL;
- the SDK's own retries stay off (every answer says ``x-should-retry: false``): the
  plugin's transport has retried already.

Outside model tests nothing is wrapped: clients behave as without the plugin. A client the
plugin's fixtures built (``openai_client``) is left alone: it goes to its model already.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import importlib.abc
import importlib.machinery
import os
import sys
from collections.abc import AsyncIterator, Callable, Mapping
from functools import cache
from types import ModuleType
from typing import Any, Final
from urllib.parse import urlsplit

import pytest

from pytest_llm_matrix.adoption import routes, sdks
from pytest_llm_matrix.calls import context
from pytest_llm_matrix.calls.exchange import Route
from pytest_llm_matrix.calls.transport import (
    ANTHROPIC_VERSION,
    base_url,
    is_plugin_transport,
    llm_transport,
    timeout_of,
)
from pytest_llm_matrix.config.models import Model
from pytest_llm_matrix.config.options import Settings

#: Where a bound request carries its :class:`Target`, from building to sending.
TAG: Final = "llm_matrix.target"
#: The key an openai client gets when it is built in a model test with none given and none
#: in the environment (openai refuses to be built without one). It is never sent: bound
#: requests carry the model's key; outside model tests it is an unknown key.
PLACEHOLDER_KEY: Final = "llm-matrix-placeholder-key"
#: A client's headers that are not passed on to the model under test: its own credentials,
#: its organization, and what the new URL and body decide.
_DROPPED: Final = frozenset(
    {
        "host",
        "cookie",
        "authorization",
        "x-api-key",
        "api-key",
        "openai-organization",
        "openai-project",
    }
)
_TIMEOUTS: Final = ("connect", "read", "write", "pool")

#: Set while the SDK builds a request that will be bound: its own check that a key is set
#: (anthropic's ``_validate_headers``) does not apply, the model's key is added after.
_BUILDING: Final = contextvars.ContextVar("llm_matrix_building", default=False)


@dataclasses.dataclass(frozen=True)
class Target:
    """Where one SDK request goes: ``model`` (the model under test, a routed model, or the
    destination its client chose), counted as ``route`` says, at ``url`` (None: the URL the
    client built, with its own credentials)."""

    model: Model
    route: Route | None
    url: str | None
    rewrite: bool  # the body's model id becomes ``model.model``

    @property
    def key(self) -> tuple[str, str | None, str | None, bool]:
        account = self.route.account if self.route is not None else None
        return (self.model.name, self.model.base_url, account, self.rewrite)

    def apply(self, request: Any) -> Any:
        """``request`` as it goes: rebuilt for ``url`` and the model's key, or as it is."""
        if self.url is None:
            request.extensions[TAG] = self
            return request
        query = request.url.query
        url = self.url + ("?" + query.decode("ascii") if query else "")
        headers = [(k, v) for k, v in request.headers.multi_items() if k.lower() not in _DROPPED]
        names = {k.lower() for k, _ in headers}
        if (key := self.model.api_key()) is not None:
            anthropic = self.model.api == "anthropic"
            headers.append(("x-api-key", key) if anthropic else ("authorization", f"Bearer {key}"))
        if self.model.api == "anthropic" and "anthropic-version" not in names:
            headers.append(("anthropic-version", ANTHROPIC_VERSION))
        limit = timeout_of(self.model)
        given = request.extensions.get("timeout") or {}
        timeout = {
            name: limit if given.get(name) is None else min(given[name], limit)
            for name in _TIMEOUTS
        }
        return type(request)(
            request.method,
            url,
            headers=headers,
            stream=request.stream,
            extensions={**request.extensions, "timeout": timeout, TAG: self},
        )


class Binding:
    """One model test's binding: where each SDK request goes."""

    def __init__(
        self,
        model: Model,
        settings: Settings,
        resolve: Callable[[Model], Model],
        offline: bool,
    ) -> None:
        self.model = model
        self.registry = settings.registry
        self.resolve = resolve
        self.offline = offline  # replaying: nothing leaves the machine, recordings answer

    def target(self, sdk: sdks.SDK, client: Any, options: Any) -> Target | None:
        """Where the request ``options`` describes goes (None: left as it is)."""
        __tracebackhide__ = True
        method = str(options.method).upper()
        client_url = str(client.base_url)
        path = str(options.url)
        if "://" in path:
            if not path.startswith(client_url.rstrip("/")):
                return None  # a URL of its own choosing, elsewhere: not the API's
            path = path[len(client_url.rstrip("/")) :]
        path = routes.canonical(sdk.api, path)
        model_id = _model_id(options)
        shown = f"{method} {path}"
        routed = self.registry.routes.get(model_id) if model_id is not None else None
        if routed is not None:
            model = self.resolve(self.registry.models[routed])
            if model.api != sdk.api:
                pytest.fail(
                    f"auxiliary route {model_id!r} -> {routed}: {routed} speaks the "
                    f"{model.api} API, but {_client_name(client)} sent {shown}, a request of "
                    f"the {sdk.api} API",
                    pytrace=False,
                )
            if not model.api_key_set and not self.offline:
                pytest.fail(
                    f"auxiliary route {model_id!r} -> {routed}: {model.api_key_env} is not set",
                    pytrace=False,
                )
            about = {"kind": "routed", "alias": routed, "model": model.model, "sent": model_id}
            route = Route(account=routed, about=about, destination=routed)
            return Target(model, route, base_url(model) + path, rewrite=True)
        kind = routes.kind_of(sdk.api, path)
        if kind != "auxiliary" and model_id not in self.registry.auxiliary:
            if self.model.api != sdk.api:
                if (ctx := context.current()) is not None:
                    ctx.reached = True  # a call to the model under test, if it could go
                pytest.fail(
                    f"{self.model.name} speaks the {self.model.api} API, but the code under "
                    f"test sent {shown} through {_client_name(client)}, a client of the "
                    f"{sdk.api} API; run this test on {sdk.api}-API models only "
                    "(@pytest.mark.llm(models=...))",
                    pytrace=False,
                )
            return Target(self.model, None, base_url(self.model) + path, rewrite=True)
        return self._direct(sdk, client, client_url, shown, model_id)

    def _direct(
        self, sdk: sdks.SDK, client: Any, client_url: str, shown: str, model_id: str | None
    ) -> Target:
        """An auxiliary request to where its client sends it, with the client's own key."""
        __tracebackhide__ = True
        parts = urlsplit(client_url)
        host = parts.netloc.rpartition("@")[2]
        what = model_id if model_id is not None else shown.partition(" ")[2]
        name = f"{what} @ {host}"
        if self.model.provider == "simulator" and not self.offline:
            pytest.fail(
                f"{self.model.name} is simulated, so no request leaves this machine: "
                f"{_client_name(client)} sent {shown} to {parts.scheme}://{host} "
                f"({'model ' + model_id if model_id else 'an auxiliary request'}) with its own "
                "key; it was not sent. Route its model id to a configured model "
                "([tool.llm-matrix.auxiliary] routes; a simulated one will do)",
                pytrace=False,
            )
        provider = (
            "openai"
            if host.endswith("openai.com")
            else "anthropic"
            if host.endswith("anthropic.com")
            else "openai-compatible"
        )
        model = Model(
            name=name,
            provider=provider,
            model=model_id or "",
            api=sdk.api,
            base_url=f"{parts.scheme}://{host}",
        )
        about = {"kind": "direct", "model": model_id or "", "provider": provider}
        about["url"] = str(model.base_url)
        route = Route(
            account=name,
            about=about,
            check_model=False,
            marks_unavailable=False,
            destination=f"{parts.scheme}://{host} ({_client_name(client)})",
        )
        return Target(model, route, None, rewrite=False)


def _model_id(options: Any) -> str | None:
    """The ``model`` of a request's JSON body (``extra_body`` wins, as it does in the SDK)."""
    found = None
    for body in (getattr(options, "json_data", None), getattr(options, "extra_json", None)):
        if isinstance(body, Mapping) and isinstance(body.get("model"), str):
            found = body["model"]
    return found


def _client_name(client: Any) -> str:
    kind = type(client)
    if kind.__name__.startswith("_ModuleClient") or kind.__name__.startswith("_AzureModule"):
        return f"{kind.__module__.partition('.')[0]}'s module-level client"
    return f"an {kind.__module__.partition('.')[0]}.{kind.__name__}"


# --- the wrappers ------------------------------------------------------------------------

_active: Binding | None = None


def active() -> Binding | None:
    return _active


def _build_request(original: Any, sdk: sdks.SDK, problem: str | None) -> Any:
    def _build_request(self: Any, options: Any, *args: Any, **kwargs: Any) -> Any:
        __tracebackhide__ = True
        binding = _active
        http = getattr(self, "_client", None)
        if binding is None or is_plugin_transport(getattr(http, "_transport", None)):
            return original(self, options, *args, **kwargs)
        if problem is not None:
            pytest.fail(f"{binding.model.name}: {problem}", pytrace=False)
        target = binding.target(sdk, self, options)
        if target is None:
            return original(self, options, *args, **kwargs)
        token = _BUILDING.set(target.url is not None)
        try:
            request = original(self, options, *args, **kwargs)
        finally:
            _BUILDING.reset(token)
        return target.apply(request)

    return _build_request


def _validate_headers(original: Any) -> Any:
    def _validate_headers(self: Any, *args: Any, **kwargs: Any) -> Any:
        if _BUILDING.get():
            return None  # the model's key is added to the request being built
        return original(self, *args, **kwargs)

    return _validate_headers


def _keyed_init(original: Any, sdk: sdks.SDK) -> Any:
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        if kwargs.get("api_key") is None and os.environ.get(sdk.key_env) is None:
            kwargs["api_key"] = PLACEHOLDER_KEY
        original(self, *args, **kwargs)

    return __init__


#: Per process: the sync clients that send bound requests, by library and target.
_CLIENTS: dict[tuple[Any, ...], Any] = {}


def forget_clients() -> None:
    """At the end of a session: the clients go (their pooled connections are the
    transport module's, closed with the session)."""
    for client in list(_CLIENTS.values()):
        with contextlib.suppress(Exception):
            client.close()
    _CLIENTS.clear()


def _sync_client(http: ModuleType, target: Target) -> Any:
    key = (os.getpid(), http.__name__, *target.key)
    client = _CLIENTS.get(key)
    if client is None:
        transport = llm_transport(
            target.model,
            http=http.__name__,
            shared=True,
            rewrite_model=target.rewrite or None,
            route=target.route,
        )
        client = _CLIENTS[key] = http.Client(transport=transport, timeout=timeout_of(target.model))
    return client


def _sync_send(original: Any) -> Any:
    def send(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        __tracebackhide__ = True
        target = request.extensions.get(TAG)
        if not isinstance(target, Target):
            return original(self, request, *args, **kwargs)
        kwargs.pop("auth", None)  # the client's own auth: the model's key is on the request
        http = sys.modules[type(request).__module__.partition(".")[0]]
        response = original(_sync_client(http, target), request, *args, **kwargs)
        response.headers["x-should-retry"] = "false"  # the plugin has retried already
        return response

    return send


def _async_send(original: Any) -> Any:
    async def send(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        __tracebackhide__ = True
        target = request.extensions.get(TAG)
        if not isinstance(target, Target):
            return await original(self, request, *args, **kwargs)
        kwargs.pop("auth", None)
        http = sys.modules[type(request).__module__.partition(".")[0]]
        # a client per request, closed in its own event loop (a cached async client would
        # outlive the loop of the test that made it)
        transport = llm_transport(
            target.model,
            asynchronous=True,
            http=http.__name__,
            rewrite_model=target.rewrite or None,
            route=target.route,
        )
        client = http.AsyncClient(transport=transport, timeout=timeout_of(target.model))
        try:
            response = await original(client, request, *args, **kwargs)
        except BaseException:
            await client.aclose()
            raise
        if kwargs.get("stream"):
            response.stream = _closing_class(http)(response.stream, client)
        else:
            await client.aclose()
        response.headers["x-should-retry"] = "false"
        return response

    return send


@cache
def _closing_class(http: ModuleType) -> type[Any]:
    class ClosingStream(http.AsyncByteStream):  # type: ignore[misc,name-defined]
        """A streamed answer that closes the client that sent it when it is closed."""

        def __init__(self, inner: Any, client: Any) -> None:
            self.inner, self.client = inner, client

        async def __aiter__(self) -> AsyncIterator[bytes]:
            async for chunk in self.inner:
                yield chunk

        async def aclose(self) -> None:
            try:
                await self.inner.aclose()
            finally:
                await self.client.aclose()

    return ClosingStream


# --- installing and removing them ----------------------------------------------------------


def _sdk_patches(sdk: sdks.SDK, package: ModuleType) -> list[tuple[type, str, Any]]:
    """(class, attribute, wrapper) for an SDK's base client and client classes."""
    __tracebackhide__ = True
    problem = sdks.problem(sdk)
    base = getattr(getattr(package, "_base_client", None), "BaseClient", None)
    original = base.__dict__.get("_build_request") if isinstance(base, type) else None
    if base is None or original is None:
        pytest.fail(
            problem or f"{sdk.package} {sdks.installed(sdk)}: its clients cannot be bound",
            pytrace=False,
        )
    found = [(base, "_build_request", _build_request(original, sdk, problem))]
    if problem is not None:
        return found
    for name in sdk.clients:
        cls = getattr(package, name, None)
        if not isinstance(cls, type):
            continue
        if "_validate_headers" in cls.__dict__:
            wrapper = _validate_headers(cls.__dict__["_validate_headers"])
            found.append((cls, "_validate_headers", wrapper))
        if sdk is sdks.OPENAI and "__init__" in cls.__dict__:
            found.append((cls, "__init__", _keyed_init(cls.__dict__["__init__"], sdk)))
    return found


def _http_patches() -> list[tuple[type, str, Any]]:
    """(class, attribute, wrapper) for the ``send`` of each HTTP library imported and not
    wrapped yet (an SDK imports the one it uses)."""
    found: list[tuple[type, str, Any]] = []
    for name in ("httpx", "httpx2"):
        http = sys.modules.get(name)
        if http is None or any(cls is http.Client for cls, _, _ in _patched):
            continue
        found.append((http.Client, "send", _sync_send(http.Client.__dict__["send"])))
        found.append((http.AsyncClient, "send", _async_send(http.AsyncClient.__dict__["send"])))
    return found


def _install(found: list[tuple[type, str, Any]]) -> None:
    for cls, name, wrapper in found:
        _patched.append((cls, name, cls.__dict__[name]))
        setattr(cls, name, wrapper)


class _OnImport(importlib.abc.MetaPathFinder):
    """An SDK imported while a test is bound is wrapped the moment its import ends: an
    installed SDK the suite does not use is never imported (anthropic takes a second)."""

    def __init__(self, waiting: dict[str, sdks.SDK]) -> None:
        self.waiting = waiting

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        sdk = self.waiting.get(fullname)
        if sdk is None:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        loader: Any = getattr(spec, "loader", None)
        if spec is None or not hasattr(loader, "exec_module"):
            return None
        run = loader.exec_module

        def exec_module(module: ModuleType) -> None:
            run(module)
            self.waiting.pop(fullname, None)
            if _active is not None:
                _install(_sdk_patches(sdk, module) + _http_patches())

        loader.exec_module = exec_module
        return spec


#: The wrapped attributes and what they were, while a binding is active.
_patched: list[tuple[type, str, Any]] = []
_hook: _OnImport | None = None


def activate(binding: Binding) -> None:
    """Bind every SDK client to ``binding``'s model until :func:`deactivate` (a model test:
    from its setup to the end of its teardown). An SDK that cannot be bound fails the test."""
    __tracebackhide__ = True
    global _active, _hook
    deactivate()
    try:
        waiting: dict[str, sdks.SDK] = {}
        for sdk in sdks.SDKS:
            package = sys.modules.get(sdk.package)
            if package is not None:
                _install(_sdk_patches(sdk, package))
            elif sdks.installed(sdk) is not None:
                waiting[sdk.package] = sdk
        _install(_http_patches())
        if waiting:
            _hook = _OnImport(waiting)
            sys.meta_path.insert(0, _hook)
    except BaseException:
        deactivate()
        raise
    _active = binding


def deactivate() -> None:
    """Every wrapped attribute back as it was; nothing of the test's binding is left."""
    global _active, _hook
    _active = None
    if _hook is not None:
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(_hook)
        _hook = None
    while _patched:
        cls, name, original = _patched.pop()
        setattr(cls, name, original)
    _forget_placeholder()


def _forget_placeholder() -> None:
    """openai's module-level client built in the test without a key: its placeholder went
    into ``openai.api_key``; both go, as they were before the test."""
    openai = sys.modules.get("openai")
    if openai is not None and getattr(openai, "api_key", None) == PLACEHOLDER_KEY:
        openai.__dict__["api_key"] = None
        if "_client" in openai.__dict__:
            openai.__dict__["_client"] = None
