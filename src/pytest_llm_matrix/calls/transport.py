"""LLMTransport: the one HTTP layer every request to a model goes through.

One implementation serves httpx2 and httpx, sync and async: the request's logic lives in
:class:`pytest_llm_matrix.calls.exchange.Exchange` as a generator of steps, and the small drivers
here perform those steps with the library's own calls. This module also builds the clients
the fixtures hand out. httpx and httpx2 are imported lazily: the module loads only when a
test uses a model.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
import time
from collections.abc import AsyncIterator, Generator, Iterator
from functools import cache
from types import ModuleType
from typing import TYPE_CHECKING, Any, Final

from pytest_llm_matrix.calls.exchange import (
    Exchange,
    Replay,
    Route,
    Send,
    Sleep,
    Step,
    StreamWatch,
)
from pytest_llm_matrix.calls.recording import replayed_response

if TYPE_CHECKING:
    from pytest_llm_matrix.config.models import Model

ANTHROPIC_VERSION: Final = "2023-06-01"
DEFAULT_TIMEOUT: Final = 60.0
USER_AGENT: Final = "pytest-llm-matrix"


# --- drivers: the same exchange over httpx2 or httpx, sync or async -----------------


class _Steps:
    """Steps an exchange along: it gets the last step's result (or failure), gives the next."""

    def __init__(self, exchange: Generator[Step, Any, Any]) -> None:
        self.exchange = exchange
        self.result: Any = None
        self.failure: BaseException | None = None
        self.value: Any = None  # the response, once the exchange is done

    def next(self) -> Step | None:
        __tracebackhide__ = True
        result, failure = self.result, self.failure
        self.result = self.failure = None
        try:
            return self.exchange.throw(failure) if failure else self.exchange.send(result)
        except StopIteration as stop:
            self.value = stop.value
            return None


def _retryable(http: ModuleType) -> tuple[type[BaseException], ...]:
    return (
        http.ConnectError,
        http.ConnectTimeout,
        http.ReadTimeout,
        http.ReadError,
        http.RemoteProtocolError,
    )


@cache
def transport_classes(http: ModuleType) -> tuple[type[Any], type[Any]]:
    """(sync, async) LLMTransport classes for ``httpx2`` or ``httpx``."""
    errors = _retryable(http)

    class WatchedStream(http.SyncByteStream):  # type: ignore[misc,name-defined]
        def __init__(self, inner: Any, watch: StreamWatch) -> None:
            self.inner, self.watch = inner, watch
            self.chunks: Iterator[bytes] | None = None

        def __iter__(self) -> Iterator[bytes]:
            __tracebackhide__ = True
            self.chunks = chunks = iter(self.inner)
            try:
                for chunk in chunks:
                    self.watch.chunk(chunk)
                    yield chunk
            except errors as exc:
                self.watch.broke(exc)
            except GeneratorExit:  # the reader stopped early
                self.rest()
                raise
            self.watch.ended()

        def rest(self) -> None:
            """Recording a stream its reader left early: the rest is read, so that its
            replay has the whole answer."""
            if self.watch.wants_rest():
                with contextlib.suppress(*errors):
                    for chunk in self.chunks or self.inner:
                        self.watch.chunk(chunk)

        def close(self) -> None:
            try:
                self.rest()
                self.inner.close()
            finally:
                self.watch.close()

    class AsyncWatchedStream(http.AsyncByteStream):  # type: ignore[misc,name-defined]
        def __init__(self, inner: Any, watch: StreamWatch) -> None:
            self.inner, self.watch = inner, watch
            self.chunks: AsyncIterator[bytes] | None = None

        async def __aiter__(self) -> AsyncIterator[bytes]:
            __tracebackhide__ = True
            self.chunks = chunks = self.inner.__aiter__()
            try:
                async for chunk in chunks:
                    self.watch.chunk(chunk)
                    yield chunk
            except errors as exc:
                self.watch.broke(exc)
            except GeneratorExit:  # the reader stopped early
                await self.rest()
                raise
            self.watch.ended()

        async def rest(self) -> None:
            if self.watch.wants_rest():  # recording: the whole answer, for its replay
                with contextlib.suppress(*errors, RuntimeError):
                    async for chunk in self.chunks or self.inner:
                        self.watch.chunk(chunk)

        async def aclose(self) -> None:
            try:
                await self.rest()
                await self.inner.aclose()
            finally:
                self.watch.close()

    def wrap_sync(response: Any, watch: StreamWatch) -> None:
        response.stream = WatchedStream(response.stream, watch)

    def wrap_async(response: Any, watch: StreamWatch) -> None:
        response.stream = AsyncWatchedStream(response.stream, watch)

    class LLMTransport(http.BaseTransport):  # type: ignore[misc,name-defined]
        """Wraps a real transport with the session's caps, retries and accounting."""

        def __init__(
            self,
            model: Model,
            transport: Any = None,
            *,
            shared: bool = False,
            rewrite_model: bool | None = None,
            route: Route | None = None,
        ) -> None:
            self.model = model
            self.rewrite_model = rewrite_model  # None: as the session says (llm_rewrite_model)
            self.route = route  # None: the model under test's own requests
            #: the process's pooled transport is closed with the session, not with a client
            self.pooled = transport is None and shared
            if transport is None:
                transport = (
                    shared_transport(http, base_url(model))
                    if shared
                    else http.HTTPTransport(**_tls(http))
                )
            self.inner = transport

        def handle_request(self, request: Any) -> Any:
            __tracebackhide__ = True
            request.read()
            exchange = Exchange(self.model, errors, self.rewrite_model, self.route)
            steps = _Steps(exchange.run(request, wrap_sync))
            while (step := steps.next()) is not None:
                try:
                    if isinstance(step, Sleep):
                        time.sleep(step.seconds)
                    elif isinstance(step, Send):
                        steps.result = self.inner.handle_request(step.request)
                    elif isinstance(step, Replay):
                        steps.result = replayed_response(http, step.answer, step.request)
                    else:
                        _bound(step.response, step.limit, asynchronous=False)
                        steps.result = step.response.read()
                except BaseException as exc:  # the exchange frees what it holds, then decides
                    steps.failure = exc
            return steps.value

        def close(self) -> None:
            if not self.pooled:
                self.inner.close()

    class AsyncLLMTransport(http.AsyncBaseTransport):  # type: ignore[misc,name-defined]
        """The async twin of LLMTransport."""

        def __init__(
            self,
            model: Model,
            transport: Any = None,
            *,
            rewrite_model: bool | None = None,
            route: Route | None = None,
        ) -> None:
            self.model = model
            self.rewrite_model = rewrite_model
            self.route = route
            self.inner = (
                transport if transport is not None else http.AsyncHTTPTransport(**_tls(http))
            )

        async def handle_async_request(self, request: Any) -> Any:
            __tracebackhide__ = True
            import anyio

            await request.aread()
            exchange = Exchange(self.model, errors, self.rewrite_model, self.route)
            steps = _Steps(exchange.run(request, wrap_async))
            while (step := steps.next()) is not None:
                try:
                    if isinstance(step, Sleep):
                        await anyio.sleep(step.seconds)
                    elif isinstance(step, Send):
                        steps.result = await self.inner.handle_async_request(step.request)
                    elif isinstance(step, Replay):
                        steps.result = replayed_response(http, step.answer, step.request)
                    else:
                        _bound(step.response, step.limit, asynchronous=True)
                        steps.result = await step.response.aread()
                except BaseException as exc:  # the exchange frees what it holds, then decides
                    steps.failure = exc
            return steps.value

        async def aclose(self) -> None:
            await self.inner.aclose()

    _OURS.update((LLMTransport, AsyncLLMTransport))
    return LLMTransport, AsyncLLMTransport


#: Every LLMTransport class made so far (one pair per HTTP library).
_OURS: set[type[Any]] = set()


def is_plugin_transport(transport: object) -> bool:
    """Whether ``transport`` is this plugin's: its client goes to a model already."""
    return type(transport) in _OURS


@cache
def _bounded_classes(http: ModuleType) -> tuple[type[Any], type[Any]]:
    """(sync, async) stream wrappers of ``http`` (httpx2 or httpx) for a body that must
    arrive in full within a time limit; a response takes only its own library's streams."""

    def too_slow(limit: float) -> BaseException:
        message = f"the answer did not arrive in full within {limit:g}s"
        return http.ReadTimeout(message)  # type: ignore[no-any-return]

    class BoundedStream(http.SyncByteStream):  # type: ignore[misc,name-defined]
        def __init__(self, inner: Any, limit: float) -> None:
            self.inner, self.limit = inner, limit

        def __iter__(self) -> Iterator[bytes]:
            deadline = time.monotonic() + self.limit
            for chunk in self.inner:
                if time.monotonic() > deadline:
                    raise too_slow(self.limit)
                yield chunk

        def close(self) -> None:
            self.inner.close()

    class AsyncBoundedStream(http.AsyncByteStream):  # type: ignore[misc,name-defined]
        def __init__(self, inner: Any, limit: float) -> None:
            self.inner, self.limit = inner, limit

        async def __aiter__(self) -> AsyncIterator[bytes]:
            deadline = time.monotonic() + self.limit
            async for chunk in self.inner:
                if time.monotonic() > deadline:
                    raise too_slow(self.limit)
                yield chunk

        async def aclose(self) -> None:
            await self.inner.aclose()

    return BoundedStream, AsyncBoundedStream


def _bound(response: Any, limit: float | None, asynchronous: bool) -> None:
    """Make ``response``'s body fail with a read timeout unless it arrives within ``limit``."""
    if limit is None:
        return
    http = sys.modules[type(response).__module__.split(".")[0]]
    sync_class, async_class = _bounded_classes(http)
    response.stream = (async_class if asynchronous else sync_class)(response.stream, limit)


#: Per process, library and server: the connections the fixtures' sync clients share, so a
#: test does not pay a new connection (and, to a hosted API, a TLS handshake) per test.
#: Keyed by pid: a forked child never writes to its parent's sockets.
_SHARED: dict[tuple[int, str, str], Any] = {}


def shared_transport(http: ModuleType, url: str) -> Any:
    """The process's pooled transport of ``http`` (httpx2 or httpx) to ``url``'s server."""
    key = (os.getpid(), http.__name__, url)
    transport = _SHARED.get(key)
    if transport is None:
        transport = _SHARED[key] = http.HTTPTransport(**_tls(http))
    return transport


@atexit.register
def close_shared() -> None:
    """Close this process's pooled connections (at the end of a session, and at exit)."""
    for key in list(_SHARED):
        transport = _SHARED.pop(key)
        if key[0] == os.getpid():
            transport.close()


@cache
def _tls(http: ModuleType) -> dict[str, Any]:
    """One TLS context per process and library, shared by every transport we create.

    Building one loads the CA bundle (~20 ms); paying that per test is most of a fast
    test's overhead. The context is the library's own default, made once.
    """
    create = getattr(http, "create_ssl_context", None)
    return {"verify": create()} if create is not None else {}


def http_library(http: str) -> ModuleType:
    if http == "httpx2":
        import httpx2

        return httpx2
    if http == "httpx":
        import httpx

        return httpx
    raise ValueError(f"http must be 'httpx2' or 'httpx', not {http!r}")


def llm_transport(
    model: Model,
    transport: Any = None,
    *,
    asynchronous: bool = False,
    http: str = "httpx2",
    shared: bool = False,
    rewrite_model: bool | None = None,
    route: Route | None = None,
) -> Any:
    """An LLMTransport for ``model``, wrapping ``transport`` (default: a new real one).

    ``http`` picks the library (``"httpx2"``, which the official SDKs use, or ``"httpx"``);
    ``asynchronous`` picks the async twin. ``shared`` (sync only) wraps the process's pooled
    transport to the model's server, which outlives the client (see :func:`shared_transport`).
    ``rewrite_model``: a request body's ``model`` becomes ``model.model`` (True), or a
    different one fails the test (False); None follows ``--llm-rewrite-model``. ``route``:
    whose requests these are (None: the model under test's; see
    :class:`~pytest_llm_matrix.calls.exchange.Route`).
    """
    sync_class, async_class = transport_classes(http_library(http))
    if asynchronous:
        return async_class(model, transport, rewrite_model=rewrite_model, route=route)
    return sync_class(model, transport, shared=shared, rewrite_model=rewrite_model, route=route)


def wrap_client(model: Model, client: Any) -> Any:
    """Route an existing httpx2/httpx client (sync or async) through ``model``'s transport."""
    module = type(client).__module__.split(".")[0]
    asynchronous = type(client).__name__.startswith("Async")
    client._transport = llm_transport(
        model, client._transport, asynchronous=asynchronous, http=module
    )
    return client


# --- clients bound to a model --------------------------------------------------------


def auth_headers(model: Model) -> dict[str, str]:
    """The headers every request to ``model`` carries: its key (none when it needs none),
    in the header its API takes, and its configured ``headers``."""
    headers = {"user-agent": USER_AGENT, **model.header_values()}
    key = model.api_key()
    if model.api == "anthropic":
        headers["anthropic-version"] = ANTHROPIC_VERSION
        if key:
            headers["x-api-key"] = key
    elif key and model.provider == "azure-openai" and model.auth != "entra":
        headers["api-key"] = key
    elif key:
        headers["authorization"] = f"Bearer {key}"
    return headers


def base_url(model: Model) -> str:
    """The URL the API's paths (``/chat/completions``) go under: the model's ``base_url``;
    for Azure OpenAI, its endpoint's v1 API or, with an ``api_version``, its deployment's."""
    if not model.base_url:
        raise RuntimeError(f"model {model.name!r} has no base_url")  # registry guarantees one
    url = model.base_url.rstrip("/")
    if model.provider != "azure-openai":
        return url
    if model.api_version is None:
        return f"{url}/openai/v1"
    return f"{url}/openai/deployments/{model.model}"  # a name of [A-Za-z0-9._-] (registry)


#: The paths Azure OpenAI serves under a deployment (the openai SDK's list); the others, the
#: Responses API's among them, are the resource's, the deployment named in the body.
AZURE_DEPLOYMENT_PATHS: Final = frozenset(
    {
        "/completions", "/chat/completions", "/embeddings", "/audio/transcriptions",
        "/audio/translations", "/audio/speech", "/images/generations", "/images/edits",
    }
)  # fmt: skip


def api_url(model: Model, path: str) -> str:
    """The URL of the API's ``path`` (``/chat/completions``, ``/responses``) at ``model``."""
    if (
        model.provider == "azure-openai"
        and model.api_version is not None
        and model.base_url
        and path not in AZURE_DEPLOYMENT_PATHS
    ):
        return f"{model.base_url.rstrip('/')}/openai{path}"
    return base_url(model) + path


def api_query(model: Model) -> dict[str, str]:
    """The query every request to ``model`` carries: Azure's ``api-version``."""
    return {"api-version": model.api_version} if model.api_version else {}


def timeout_of(model: Model) -> float:
    return model.timeout if model.timeout is not None else DEFAULT_TIMEOUT


def http_client(
    model: Model,
    *,
    http: str = "httpx2",
    asynchronous: bool = False,
    shared: bool = False,
    route: Route | None = None,
) -> Any:
    """A client with ``model``'s base URL, auth, timeout and transport (``shared``: over the
    process's pooled connections, see :func:`shared_transport`; ``route``: whose requests
    these are, see :class:`~pytest_llm_matrix.calls.exchange.Route`)."""
    module = http_library(http)
    return (module.AsyncClient if asynchronous else module.Client)(
        base_url=base_url(model),
        params=api_query(model),
        headers=auth_headers(model),
        timeout=timeout_of(model),
        transport=llm_transport(
            model, asynchronous=asynchronous, http=http, shared=shared, route=route
        ),
    )


def async_http_client(model: Model, *, http: str = "httpx2", route: Route | None = None) -> Any:
    """The asynchronous twin of :func:`http_client`."""
    return http_client(model, http=http, asynchronous=True, route=route)
