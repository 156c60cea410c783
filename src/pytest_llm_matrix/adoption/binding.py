"""Binding at request time: while a model test runs, the generation calls of every official
SDK client go to the model under test, wherever and whenever the client was built.

A client built inside the test, one cached at module level or by a module- or
session-scoped fixture, openai's module-level client (``openai.chat.completions.create``),
sync or async: all make their requests in the SDK's ``BaseClient._build_request`` and send
them with their HTTP client's ``send``. Both are wrapped, and while a model test runs:

- a *generation* call (see :mod:`pytest_llm_matrix.adoption.routes`) is rebuilt for the
  model under test (its base URL and key; of the client's headers and query only those of
  the API itself, never its credentials) and sent through the plugin's transport: caps,
  retries within the test's deadline, usage and cost in the model's row, recording and
  replay, its ``model`` rewritten to the model's id; the SDK's own retries stay off (every
  answer says ``x-should-retry: false``). With several models selected, a generation call
  from a fixture whose value their tests share (class-, module- or session-scoped) fails:
  its answer would be one model's for all;
- an *auxiliary* call (embeddings, moderations, token counting, files; a model id listed
  in ``[tool.llm-matrix.auxiliary]``; a client the plugin cannot point elsewhere: Bedrock,
  Vertex, openai's ``provider=`` clients, a URL of its own) is never rewritten. Routed, it
  goes to the configured model its id names, like a generation call but counted in that
  model's auxiliary row. Otherwise it goes where its client sends it, through the client's
  own HTTP client (its transport, auth, hooks, retries), and the plugin only watches:
  counted in a row of its own, recorded and replayed with the test's recordings (a shared
  fixture's, with that fixture's). One answered in the process (httpx's ``MockTransport``,
  ``WSGITransport``, ``ASGITransport``) is left alone. Under a simulated model, one that
  would leave the machine fails the test, naming the client and the URL; under
  ``--llm-record=replay`` none is sent.

Outside model tests the wrappers pass everything through: clients behave as without the
plugin (a client that got a placeholder key in a model test refuses, as it would have
refused to be built). A client the plugin's fixtures built (``openai_client``) is left
alone: it goes to its model already.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import importlib.abc
import importlib.machinery
import ipaddress
import os
import sys
import threading
from collections.abc import AsyncIterator, Callable, Mapping
from functools import cache
from types import ModuleType
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest

from pytest_llm_matrix.adoption import routes, sdks
from pytest_llm_matrix.calls import context
from pytest_llm_matrix.calls.exchange import Route
from pytest_llm_matrix.calls.transport import (
    api_query,
    api_url,
    auth_headers,
    is_plugin_transport,
    llm_transport,
    timeout_of,
)
from pytest_llm_matrix.config.models import Model
from pytest_llm_matrix.config.options import Settings

#: Where a bound request carries its :class:`Target`, from building to sending.
TAG: Final = "llm_matrix.target"
#: The key an openai client gets when it is built in a model test with no credentials given
#: or in the environment (openai refuses to be built without one). It is never sent: bound
#: requests carry the model's key, and outside model tests such a client refuses to send.
PLACEHOLDER_KEY: Final = "llm-matrix-placeholder-key"
#: The headers of a client's request that go on to the model under test: those of the APIs
#: themselves. Everything else (credentials in any header, a gateway's or a proxy's keys,
#: cookies, the organization) stays with the client.
_KEPT_HEADERS: Final = frozenset(
    {
        "accept",
        "accept-encoding",
        "content-type",
        "content-length",
        "user-agent",
        "openai-beta",
        "anthropic-version",
        "anthropic-beta",
        "idempotency-key",
    }
)
_KEPT_HEADER_PREFIXES: Final = ("x-stainless-",)
#: The query parameters of the APIs' generation calls (Anthropic's beta flag, Responses'
#: include and paging): a client's ``default_query`` may carry secrets of its own.
_KEPT_QUERY: Final = frozenset(
    {
        "beta",
        "include",
        "include[]",
        "include_obfuscation",
        "stream",
        "starting_after",
        "after",
        "before",
        "limit",
        "order",
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
    client built, sent by the client's own HTTP client with its own credentials)."""

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
        kept = [
            (name, value)
            for name, value in parse_qsl(request.url.query.decode("ascii"), keep_blank_values=True)
            if name in _KEPT_QUERY
        ]
        kept += api_query(self.model).items()  # the model's own (Azure's api-version)
        url = self.url + ("?" + urlencode(kept) if kept else "")
        headers = [
            (k, v)
            for k, v in request.headers.multi_items()
            if k.lower() in _KEPT_HEADERS or k.lower().startswith(_KEPT_HEADER_PREFIXES)
        ]
        names = {k.lower() for k, _ in headers}
        headers += [  # the model's key and headers (and API version), the SDK's user agent
            (k, v) for k, v in auth_headers(self.model).items() if k not in names | {"user-agent"}
        ]
        limit = timeout_of(self.model)
        given = request.extensions.get("timeout") or {}
        timeout = {
            name: limit if given.get(name) is None else min(given[name], limit)
            for name in _TIMEOUTS
        }
        request.read()  # (a JSON body, or a multipart one: both read synchronously)
        return type(request)(  # the library adds Host (and the length) for the new URL
            request.method,
            url,
            headers=[(k, v) for k, v in headers if k.lower() != "content-length"],
            content=request.content,
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
        #: the tests of several models may share a fixture's value
        self.several = len(settings.selected) > 1
        #: the fixtures of a shared scope being set up (see tracking): (name, scope, the id
        #: their recordings are kept under, if they have a file under the rootdir)
        self.shared: list[tuple[str, str, str | None]] = []

    def target(self, sdk: sdks.SDK, client: Any, options: Any) -> Target | None:
        """Where the request ``options`` describes goes (None: left as it is)."""
        __tracebackhide__ = True
        method = str(options.method).upper()
        client_url = str(client.base_url).rstrip("/")
        url = str(client._prepare_url(str(options.url)))
        path = url[len(client_url) :] if url.startswith(client_url) else None
        model_id = _model_id(options)
        shown = f"{method} {routes.canonical(sdk.api, path or urlsplit(url).path)}"
        if _in_process(client, url):
            return None  # a mock answers it: nothing leaves, nothing to bind
        routed = self.registry.routes.get(model_id) if model_id is not None else None
        if routed is not None and path is not None:
            return self._routed(sdk, client, str(model_id), routed, routes.canonical(sdk.api, path))
        kind = routes.kind_of(sdk.api, path) if path is not None else "auxiliary"
        bindable = getattr(client, "_provider", None) is None  # openai's provider= clients
        if kind != "auxiliary" and model_id not in self.registry.auxiliary and bindable:
            assert path is not None
            self._check_generation(sdk, client, shown)
            return Target(
                self.model, None, api_url(self.model, routes.canonical(sdk.api, path)), True
            )
        return self._direct(sdk, client, url, shown, model_id)

    def _check_generation(self, sdk: sdks.SDK, client: Any, shown: str) -> None:
        """A generation call may go to the model under test: same API, and not from a
        fixture whose value the tests of other models share."""
        __tracebackhide__ = True
        if (ctx := context.current()) is not None:
            ctx.reached = True  # a call to the model under test, whether it may go or not
        name = self.model.name
        if self.model.api != sdk.api:
            pytest.fail(
                f"{name} speaks the {self.model.api} API, but the code under test sent "
                f"{shown} through {_client_name(client)}, a client of the {sdk.api} API; run "
                f"this test on {sdk.api}-API models only (@pytest.mark.llm(models=...))",
                pytrace=False,
            )
        if self.shared and self.several:
            fixture, scope, _ = self.shared[-1]
            pytest.fail(
                f"{name}: the {scope}-scoped fixture {fixture!r} sent {shown} through "
                f"{_client_name(client)}: its value is shared by the tests of every model, "
                f"which would all get {name}'s answer. Make it function-scoped, or keep its "
                "results per model (a dict keyed by pytest_llm_matrix.current_model(), filled "
                "by a function-scoped fixture: see 'Work shared by a module's tests' in "
                "docs/writing-tests.md)",
                pytrace=False,
            )

    def _routed(self, sdk: sdks.SDK, client: Any, model_id: str, routed: str, path: str) -> Target:
        __tracebackhide__ = True
        model = self.resolve(self.registry.models[routed])
        if model.api != sdk.api:
            pytest.fail(
                f"auxiliary route {model_id!r} -> {routed}: {routed} speaks the {model.api} "
                f"API, but {_client_name(client)} sent {path}, a request of the {sdk.api} API",
                pytrace=False,
            )
        if not model.api_key_set and not self.offline:
            pytest.fail(
                f"auxiliary route {model_id!r} -> {routed}: {model.missing_env()} is not set",
                pytrace=False,
            )
        about = {"kind": "routed", "alias": routed, "model": model.model, "sent": model_id}
        route = Route(account=routed, about=about, destination=routed, tape=self._tape())
        return Target(model, route, api_url(model, path), rewrite=True)

    def _direct(
        self, sdk: sdks.SDK, client: Any, url: str, shown: str, model_id: str | None
    ) -> Target:
        """An auxiliary request, to where its client sends it, watched."""
        __tracebackhide__ = True
        parts = urlsplit(url)
        host = parts.netloc.rpartition("@")[2]
        origin = f"{parts.scheme}://{host}"
        what = model_id if model_id is not None else shown.partition(" ")[2]
        if self.model.provider == "simulator" and not self.offline and not _loopback(parts):
            pytest.fail(
                f"{self.model.name} is simulated, so no request leaves this machine: "
                f"{_client_name(client)} sent {shown} to {origin} "
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
        name = f"{what} @ {host}"
        model = Model(name=name, provider=provider, model=model_id or "", api=sdk.api)
        about = {"kind": "direct", "model": model_id or "", "provider": provider, "url": origin}
        route = Route(
            account=name,
            about=about,
            observe=True,
            destination=f"{origin} ({_client_name(client)})",
            tape=self._tape(),
        )
        return Target(model, route, None, rewrite=False)

    def _tape(self) -> str | None:
        """Where an auxiliary request's recording is kept, if a shared fixture sent it."""
        return self.shared[-1][2] if self.shared else None


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


def _in_process(client: Any, url: str) -> bool:
    """Whether the client's HTTP client answers ``url`` in the process (httpx's
    ``MockTransport``, or a client the plugin built): nothing would leave."""
    http = getattr(client, "_client", None)
    pick = getattr(http, "_transport_for_url", None)
    library = next(  # the SDK's own client is a subclass of the library's
        (
            module
            for name in ("httpx", "httpx2")
            if (module := sys.modules.get(name)) is not None
            and isinstance(http, module.Client | module.AsyncClient)
        ),
        None,
    )
    if pick is None or library is None:
        return False
    try:
        transport = pick(library.URL(url))
    except Exception:  # a URL the library refuses: it will say so when it is sent
        return False
    names = ("MockTransport", "WSGITransport", "ASGITransport")
    in_process = tuple(
        kind for name in names if isinstance(kind := getattr(library, name, None), type)
    )
    return is_plugin_transport(transport) or isinstance(transport, in_process)


def _loopback(parts: Any) -> bool:
    host = parts.hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# --- the wrappers: pass-through unless a model test is bound ------------------------------

#: The bindings in force, the innermost last (a pytester run inside a bound test has its
#: own, and gives the outer one back when it ends).
_stack: list[Binding] = []


def active() -> Binding | None:
    return _stack[-1] if _stack else None


def _build_request(original: Any, sdk: sdks.SDK, problem: str | None) -> Any:
    def _build_request(self: Any, options: Any, *args: Any, **kwargs: Any) -> Any:
        __tracebackhide__ = True
        binding = active()
        http = getattr(self, "_client", None)
        if binding is None:
            if getattr(self, "api_key", None) == PLACEHOLDER_KEY:
                _refuse_placeholder(sdk)
            return original(self, options, *args, **kwargs)
        if is_plugin_transport(getattr(http, "_transport", None)):
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


def _refuse_placeholder(sdk: sdks.SDK) -> None:
    """A client built in a model test without a key, used outside one: it refuses, as the
    SDK would have refused to build it."""
    package = sys.modules.get(sdk.package)
    error = getattr(package, "OpenAIError", RuntimeError)
    raise error(
        f"The api_key client option must be set either by passing api_key to the client or by "
        f"setting the {sdk.key_env} environment variable (this client was built in a model "
        "test without one, where pytest-llm-matrix gave it a placeholder)"
    )


def _validate_headers(original: Any) -> Any:
    def _validate_headers(self: Any, *args: Any, **kwargs: Any) -> Any:
        if _BUILDING.get():
            return None  # the model's key is added to the request being built
        return original(self, *args, **kwargs)

    return _validate_headers


def _keyed_init(original: Any, sdk: sdks.SDK) -> Any:
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        try:
            original(self, *args, **kwargs)
        except Exception as error:
            # built in a model test without credentials: its requests carry the model's
            wanted = "api_key" in str(error) or "credential" in str(error).lower()
            if active() is None or kwargs.get("api_key") is not None or not wanted:
                raise
            original(self, *args, **{**kwargs, "api_key": PLACEHOLDER_KEY})

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
            rewrite_model=True if target.rewrite else None,
            route=target.route,
        )
        client = _CLIENTS[key] = http.Client(transport=transport, timeout=timeout_of(target.model))
    return client


def _sync_send(original: Any) -> Any:
    def send(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        __tracebackhide__ = True
        target = request.extensions.get(TAG)
        if not isinstance(target, Target) or active() is None:
            return original(self, request, *args, **kwargs)
        http = sys.modules[type(request).__module__.partition(".")[0]]
        if target.url is None:  # the client's own HTTP client sends it; the plugin watches
            watched = llm_transport(
                target.model,
                _ViaClient(original, self, kwargs),
                http=http.__name__,
                route=target.route,
            )
            return watched.handle_request(request)
        kwargs.pop("auth", None)  # the client's own auth: the model's key is on the request
        response = original(_sync_client(http, target), request, *args, **kwargs)
        response.headers["x-should-retry"] = "false"  # the plugin has retried already
        return response

    return send


def _async_send(original: Any) -> Any:
    async def send(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        __tracebackhide__ = True
        target = request.extensions.get(TAG)
        if not isinstance(target, Target) or active() is None:
            return await original(self, request, *args, **kwargs)
        http = sys.modules[type(request).__module__.partition(".")[0]]
        if target.url is None:
            watched = llm_transport(
                target.model,
                _AsyncViaClient(original, self, kwargs),
                asynchronous=True,
                http=http.__name__,
                route=target.route,
            )
            return await watched.handle_async_request(request)
        kwargs.pop("auth", None)
        # a client per request, closed in its own event loop (a cached async client would
        # outlive the loop of the test that made it)
        transport = llm_transport(
            target.model,
            asynchronous=True,
            http=http.__name__,
            rewrite_model=True if target.rewrite else None,
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


class _ViaClient:
    """A transport that sends through a client's own ``send`` (its transport, auth, event
    hooks, redirects): the plugin's transport wraps it to watch an auxiliary request."""

    def __init__(self, send: Any, client: Any, kwargs: Mapping[str, Any]) -> None:
        self.send, self.client = send, client
        self.kwargs = {k: v for k, v in kwargs.items() if k != "stream"}

    def handle_request(self, request: Any) -> Any:
        return self.send(self.client, request, stream=True, **self.kwargs)

    def close(self) -> None:
        pass


class _AsyncViaClient(_ViaClient):
    async def handle_async_request(self, request: Any) -> Any:
        return await self.send(self.client, request, stream=True, **self.kwargs)

    async def aclose(self) -> None:
        pass


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


# --- installing the wrappers: once per process, while a session uses them ----------------

#: (class, attribute) -> (what it was, our wrapper), for every wrapper installed.
_installed: dict[tuple[type, str], tuple[Any, Any]] = {}
#: Why an SDK's clients cannot be bound (its structure is not the one known), by package.
_unbindable: dict[str, str] = {}
_sessions = 0
_lock = threading.RLock()


def _wrap(cls: type, name: str, wrapper: Callable[[Any], Any]) -> None:
    if (cls, name) in _installed:
        return
    original = cls.__dict__[name]
    made = wrapper(original)
    _installed[cls, name] = (original, made)
    setattr(cls, name, made)


def _wrap_sdk(sdk: sdks.SDK, package: ModuleType) -> None:
    """Wrap an SDK's base client (and, where needed, its client classes)."""
    problem = sdks.problem(sdk)
    base = getattr(getattr(package, "_base_client", None), "BaseClient", None)
    if not isinstance(base, type) or "_build_request" not in base.__dict__:
        _unbindable[sdk.package] = problem or (
            f"{sdk.package} {sdks.installed(sdk)}: its clients cannot be bound"
        )
        return
    _wrap(base, "_build_request", lambda original: _build_request(original, sdk, problem))
    if problem is not None:
        return
    for name in sdk.clients:
        cls = getattr(package, name, None)
        if not isinstance(cls, type):
            continue
        if "_validate_headers" in cls.__dict__:
            _wrap(cls, "_validate_headers", _validate_headers)
        if sdk is sdks.OPENAI and "__init__" in cls.__dict__:
            _wrap(cls, "__init__", lambda original: _keyed_init(original, sdk))
    _wrap_http()


def _wrap_http() -> None:
    """Wrap the ``send`` of each HTTP library imported (an SDK imports the one it uses)."""
    for name in ("httpx", "httpx2"):
        http = sys.modules.get(name)
        if http is not None:
            _wrap(http.Client, "send", _sync_send)
            _wrap(http.AsyncClient, "send", _async_send)


class _OnImport(importlib.abc.MetaPathFinder):
    """An installed SDK is wrapped when the suite imports it, not before: an SDK the suite
    does not use is never imported (anthropic takes a second)."""

    def __init__(self) -> None:
        self.waiting: dict[str, sdks.SDK] = {}

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
            with _lock:
                if _sessions:  # (and again if it is imported anew: a pytester run drops it)
                    _wrap_sdk(sdk, module)

        loader.exec_module = exec_module
        return spec


_hook = _OnImport()


def install() -> None:
    """Wrap the SDKs for a session that binds (once per process; each call is matched by
    one :func:`uninstall`, at the session's end)."""
    global _sessions
    with _lock:
        _sessions += 1
        if _sessions > 1:
            return
        for sdk in sdks.SDKS:
            package = sys.modules.get(sdk.package)
            if package is not None:
                _wrap_sdk(sdk, package)
            if sdks.installed(sdk) is not None:
                _hook.waiting[sdk.package] = sdk
        _wrap_http()
        if _hook.waiting and _hook not in sys.meta_path:
            sys.meta_path.insert(0, _hook)


def uninstall() -> None:
    """The last session that bound is over: every wrapper goes, unless something wrapped it
    in turn (an instrumentation library): then it stays, passing everything through."""
    global _sessions
    with _lock:
        _sessions = max(0, _sessions - 1)
        if _sessions:
            return
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(_hook)
        _hook.waiting.clear()
        for (cls, name), (original, made) in list(_installed.items()):
            if cls.__dict__.get(name) is made:
                setattr(cls, name, original)
                del _installed[cls, name]
        _unbindable.clear()


def activate(binding: Binding) -> None:
    """Bind every SDK client to ``binding``'s model until :func:`deactivate` (a model test:
    from its setup to the end of its teardown). An SDK that cannot be bound fails the test."""
    __tracebackhide__ = True
    for package, problem in _unbindable.items():
        if package in sys.modules:
            pytest.fail(f"{binding.model.name}: {problem}", pytrace=False)
    _wrap_http()  # a library imported since
    _stack.append(binding)


def deactivate(binding: Binding | None = None) -> None:
    """``binding`` (or every binding: the end of a test) is over; nothing of it is left."""
    if binding is None:
        _stack.clear()
    elif binding in _stack:
        _stack.remove(binding)
    _forget_placeholder()


def _forget_placeholder() -> None:
    """openai's module-level client built in the test without a key: its placeholder went
    into ``openai.api_key``; both go, as they were before the test."""
    openai = sys.modules.get("openai")
    if openai is not None and getattr(openai, "api_key", None) == PLACEHOLDER_KEY:
        openai.__dict__["api_key"] = None
        if "_client" in openai.__dict__:
            openai.__dict__["_client"] = None
