"""The HTTP layer: a threading HTTP/1.1 server and the request handler that routes to dialects.

The handler decides nothing itself: it asks `SimulatorState` (rate limits, faults, latency,
reply text) and the endpoint's `Dialect` (request parsing, body and error spelling) and only
turns their answers into bytes on the socket, including the deliberately broken ones.
This module imports `http.server`, which is slow to import, so `Simulator.start` loads it
lazily.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import re
import socket
import socketserver
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, TypeAlias
from urllib.parse import parse_qs, unquote

from . import endpoints
from .anthropic_messages import AnthropicMessages
from .openai_chat import OpenAIChat
from .openai_embeddings import OpenAIEmbeddings
from .openai_responses import OpenAIResponses
from .state import NoRule
from .wire import BadRequest, ErrorKind, SSEEvent

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

    from .config import Fault, FaultKind, ModelConfig
    from .state import RetryAfter, SimulatorState
    from .wire import Conversation, Dialect, Reply, StreamPlan

_Request: TypeAlias = socket.socket | tuple[bytes, socket.socket]
_Headers: TypeAlias = "Iterable[tuple[str, str]]"

_DIALECTS: dict[str, Dialect] = {
    "/v1/chat/completions": OpenAIChat(),
    "/v1/responses": OpenAIResponses(),
    "/v1/messages": AnthropicMessages(),
    "/v1/embeddings": OpenAIEmbeddings(),
}
#: The test a request comes from, as pytest-llm-matrix sends it to a simulated model: chance
#: rules (``p``) are drawn per test.
TEST_HEADER = "x-llm-matrix-test"
#: Azure OpenAI's deployment paths: ``/openai/deployments/<name>/chat/completions``.
_DEPLOYMENT = re.compile(r"/openai/deployments/(?P<name>[^/]+)(?P<rest>/.+)")
_DEPLOYMENT_PATHS = ("/chat/completions", "/embeddings")
# Paths outside every dialect still answer in a provider format: OpenAI's, the common one.
_FALLBACK_DIALECT = _DIALECTS["/v1/chat/completions"]
_ERROR_FAULTS: dict[FaultKind | None, tuple[int, ErrorKind]] = {
    "500": (500, "server_error"),
    "503": (503, "server_error"),
    "529": (529, "overloaded"),
}


class _Stopped(Exception):
    """The simulator is stopping: abandon the request and drop the connection."""


class SimulatorHTTPServer(ThreadingHTTPServer):
    """Threading server that can drop all its connections at once for a fast stop."""

    daemon_threads = True  # handler threads never keep the process (or stop()) waiting
    request_queue_size = 128  # concurrency tests open many connections at once

    def __init__(self, address: tuple[str, int], state: SimulatorState) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.state = state
        self.stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, SimulatorHandler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks up the host's FQDN, which can block on slow DNS;
        # the simulator only ever needs the numeric address.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def process_request(self, request: _Request, client_address: object) -> None:
        if isinstance(request, socket.socket):
            with self._connections_lock:
                self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: _Request) -> None:
        if isinstance(request, socket.socket):
            with self._connections_lock:
                self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Shut down every open connection so idle keep-alive threads and clients see EOF."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):  # already closed by the other side
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: _Request, client_address: object) -> None:
        # Clients hanging up (timeouts, cancelled streams) are routine, not server errors.
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)


class SimulatorHandler(BaseHTTPRequestHandler):
    """One connection; serves keep-alive requests until the client or the server closes it."""

    protocol_version = "HTTP/1.1"
    server_version = "pytest-llm-matrix-simulator"
    disable_nagle_algorithm = True  # stream chunks must leave as soon as they are written
    server: SimulatorHTTPServer
    #: Ends the current model request's in-flight window (see ``_answered``).
    _leave_in_flight: Callable[[], None] | None = None

    def log_message(self, format: str, *args: object) -> None:
        """Silenced: a stderr line per request would drown the output of the tests."""

    def send_response(self, code: int, message: str | None = None) -> None:
        # `path` is unset when the request line itself was unparseable.
        if not getattr(self, "path", "").startswith("/_sim/"):
            self.server.state.record_status(code)
        super().send_response(code, message)

    def do_GET(self) -> None:
        path, _ = self._azure(self._route())
        if path == "/v1/models" and self.server.state.config.list_models:
            self._list_models()
        elif path == "/_sim/stats":
            self._send_json(200, self.server.state.stats())
        else:
            self._not_found(self._route())

    def do_POST(self) -> None:
        path, deployment = self._azure(self._route())
        dialect = _DIALECTS.get(path)
        if dialect is not None and deployment == "":  # Azure, without an api-version
            self._read_body()
            self._send_json(404, {"error": {"code": "404", "message": "Resource not found"}})
            return
        if dialect is not None:
            self._serve_model_request(dialect, deployment)
            return
        if path == "/v1/messages/count_tokens":
            self._count_tokens()
            return
        if path == "/v1/moderations":
            self._moderate()
            return
        self._read_body()
        if path == "/_sim/reset":
            self.server.state.reset()
            self._send_json(200, {"reset": True})
        else:
            self._not_found(self._route())

    def _count_tokens(self) -> None:
        """Anthropic's token counting: checked as a message is (model, key, body), free
        of latency and faults."""
        dialect = _DIALECTS["/v1/messages"]
        body = _json_object(self._read_body())
        model = body.get("model") if body is not None else None
        # token counting has its own limits: not the model's rpm
        admitted = self._admit(
            dialect, body, model if isinstance(model, str) else None, limited=False
        )
        if admitted is not None and body is not None:
            conversation = admitted[1]
            self._send_json(
                200, endpoints.token_count(conversation.prompt_tokens, body.get("tools"))
            )

    def _moderate(self) -> None:
        """OpenAI's moderations: any model name (or none), flagged by the config's patterns."""
        dialect = _FALLBACK_DIALECT
        body = _json_object(self._read_body())
        if body is None:
            self._error(dialect, 400, "bad_request", "Request body is not a JSON object.")
            return
        try:
            answer = endpoints.moderation(body, self.server.state.config.flagged)
        except BadRequest as exc:
            self._error(dialect, 400, "bad_request", str(exc))
            return
        self._send_json(200, answer)

    def _list_models(self) -> None:
        """The models the request's key can use, as a provider lists them: a simulator
        whose models have keys answers 401 to a key none of them has (or none), and lists
        the models without a key and those with the request's."""
        models = self.server.state.config.models
        keys = {knobs.api_key for knobs in models.values() if knobs.api_key is not None}
        dialect = _DIALECTS[
            "/v1/messages" if "x-api-key" in self.headers else "/v1/chat/completions"
        ]
        key = self._azure_key or dialect.api_key(self.headers)
        if keys and key not in keys:
            self._error(dialect, 401, "unauthorized", "Incorrect API key provided.")
            return
        usable = [name for name, knobs in models.items() if knobs.api_key in (None, key)]
        self._send_json(200, _models_payload(usable))

    def _route(self) -> str:
        return self.path.partition("?")[0].rstrip("/")

    def _azure(self, path: str) -> tuple[str, str | None]:
        """Azure OpenAI's paths as the OpenAI API's: ``/openai/v1/chat/completions``, and
        ``/openai/deployments/<name>/chat/completions?api-version=...`` (the deployment is
        the model; without an api-version Azure knows no such resource: "" for it). The key
        may come in Azure's ``api-key`` header there. None: not an Azure deployment path."""
        self._azure_key: str | None = None
        self._deployment: str | None = None
        self._test = ""  # the test asking (see _admit)
        if not path.startswith("/openai/"):
            return path, None
        self._azure_key = self.headers.get("api-key")
        if path.startswith("/openai/v1/"):
            return path.removeprefix("/openai"), None
        versioned = bool(parse_qs(self.path.partition("?")[2]).get("api-version"))
        match = _DEPLOYMENT.fullmatch(path)
        if match is None:  # the resource's own paths (Responses): the body names the model
            return "/v1" + path.removeprefix("/openai"), None if versioned else ""
        if match["rest"] not in _DEPLOYMENT_PATHS:
            return path, None  # Azure serves no Responses under a deployment
        self._deployment = unquote(match["name"])
        return "/v1" + match["rest"], self._deployment if versioned else ""

    def _not_found(self, path: str) -> None:
        """An endpoint the simulator does not serve: 404 as OpenAI words it for an unknown
        URL, which names no model (a client's mistake must not read as a missing model)."""
        self._error(
            _FALLBACK_DIALECT, 404, "unknown_endpoint", f"Invalid URL ({self.command} {path})"
        )

    def _read_body(self) -> bytes:
        if "Transfer-Encoding" in self.headers:
            # Chunked uploads are not supported; never reuse a connection we cannot resync.
            self.close_connection = True
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        return self.rfile.read(length) if length > 0 else b""

    def _serve_model_request(self, dialect: Dialect, deployment: str | None = None) -> None:
        body = _json_object(self._read_body())
        if body is not None and deployment:
            body = {**body, "model": deployment}  # Azure: the path names the model
        model = body.get("model") if body is not None else None
        model = model if isinstance(model, str) else None
        with self.server.state.in_flight(model) as leave:
            self._leave_in_flight = leave
            try:
                admitted = self._admit(dialect, body, model)
                if admitted is not None:
                    self._respond(dialect, *admitted)
            except _Stopped:
                self.close_connection = True
            finally:
                self._leave_in_flight = None

    def _admit(
        self,
        dialect: Dialect,
        body: Mapping[str, Any] | None,
        model: str | None,
        limited: bool = True,
    ) -> tuple[ModelConfig, Conversation] | None:
        """Gatekeeping in the order a real API does it; sends the error and returns None
        when the request is rejected before reaching the model."""
        state = self.server.state
        if body is None or model is None:
            problem = "not a JSON object" if body is None else "missing a string 'model'"
            self._error(dialect, 400, "bad_request", f"Request body is {problem}.")
            return None
        state.count_request(model)
        knobs = state.model_config(model)
        if knobs is None and self._deployment is not None:
            message = (
                "The API deployment for this resource does not exist. If you created the "
                "deployment within the last 5 minutes, please wait a moment and try again."
            )  # Azure's own words
            self._send_json(404, {"error": {"code": "DeploymentNotFound", "message": message}})
            return None
        if knobs is None:
            self._error(dialect, 404, "not_found", f"The model '{model}' does not exist.")
            return None
        key = self._azure_key or dialect.api_key(self.headers)
        if knobs.api_key is not None and key != knobs.api_key:
            self._error(dialect, 401, "unauthorized", "Incorrect API key provided.")
            return None
        try:
            conversation = dialect.parse(body)
        except BadRequest as exc:
            self._error(dialect, 400, "bad_request", str(exc))
            return None
        except (TypeError, ValueError, AttributeError, RecursionError) as broken:
            self._unanswerable(dialect, "read", broken)  # a body of a shape it does not read
            return None
        # the test asking, for chance rules (digested only when one is drawn: see state)
        self._test = self.headers.get(TEST_HEADER, "")
        if not limited:
            return knobs, conversation
        retry = state.admit(model, knobs)
        if retry is not None:
            message = f"Rate limit reached for {model}: {knobs.rpm} requests per minute."
            self._error(dialect, 429, "rate_limit", message, _retry_headers(retry))
            return None
        return knobs, conversation

    def _respond(self, dialect: Dialect, knobs: ModelConfig, conversation: Conversation) -> None:
        """The model's answer, unless a scheduled fault replaces or mangles it."""
        state, model, prompt = self.server.state, conversation.model, conversation.last_user_text
        fault = state.pick_fault(model, knobs, prompt)
        kind = fault.kind if fault is not None else None
        if fault is not None and kind == "429":
            self._fault_429(dialect, model, fault)
            return
        if fault is not None and kind == "not_stream" and conversation.stream:
            self._pause(state.latency(knobs))
            self._not_a_stream(dialect, conversation, fault.body, state, knobs)
            return
        if fault is not None and kind == "hang":
            self._pause(fault.hang)
            self.close_connection = True  # no answer at all, as a stuck upstream would do
            return
        self._pause(state.latency(knobs))
        if kind in _ERROR_FAULTS:
            status, error_kind = _ERROR_FAULTS[kind]
            self._error(dialect, status, error_kind, f"Simulated {status} error for {model}.")
            return
        reply = self._reply(dialect, state, knobs, conversation)
        if reply is None:
            return
        if conversation.stream:
            plan = dialect.stream(conversation, reply)
            self._send_stream(plan, knobs.tokens_per_second, mangle=kind)
        else:
            self._send_json(200, dialect.complete(conversation, reply), mangle=kind)

    def _reply(
        self,
        dialect: Dialect,
        state: SimulatorState,
        knobs: ModelConfig,
        conversation: Conversation,
    ) -> Reply | None:
        """The answer (each of ``n`` choices answered anew), or None when the request
        cannot be answered as configured: a 400 that says why has gone out."""
        try:
            test = self._test
            reply = state.reply(knobs, conversation, test)
            if conversation.choices > 1:  # each choice answered anew: chance rules differ
                others = tuple(
                    state.reply(knobs, conversation, test) for _ in range(conversation.choices - 1)
                )
                reply = dataclasses.replace(reply, others=others)
        except (NoRule, BadRequest) as refused:
            self._error(dialect, 400, "bad_request", str(refused))
            return None
        except (RecursionError, TypeError, ValueError, OverflowError) as broken:
            self._unanswerable(dialect, "answer", broken)  # a schema past what it reads
            return None
        return reply

    def _unanswerable(self, dialect: Dialect, what: str, broken: Exception) -> None:
        """A request the simulator cannot read or answer: a 400 that says so, never a
        dropped connection."""
        message = f"the simulator cannot {what} this request: {type(broken).__name__}: {broken}"
        self._error(dialect, 400, "bad_request", message)

    def _not_a_stream(
        self,
        dialect: Dialect,
        conversation: Conversation,
        body: str,
        state: SimulatorState,
        knobs: ModelConfig,
    ) -> None:
        """A stream was asked for; answer as a server that ignores ``stream`` (a whole JSON
        completion), a proxy's error page, or garbage - all with status 200 and no SSE."""
        if body == "json":
            reply = self._reply(dialect, state, knobs, conversation)
            if reply is not None:
                self._send_json(200, dialect.complete(conversation, reply))
            return
        if body == "html":
            content_type, data = "text/html", b"<html><body><h1>Welcome</h1></body></html>"
        else:
            content_type, data = "application/octet-stream", b"\x00\xff\xfe garbage \x01\x02"
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self._answered()
        self.wfile.write(data)

    def _fault_429(self, dialect: Dialect, model: str, fault: Fault) -> None:
        headers = []
        if isinstance(fault.retry_after, str):
            headers.append(("retry-after", fault.retry_after))
        elif fault.retry_after is not None:
            headers.append(("retry-after", str(math.ceil(fault.retry_after))))
        if fault.retry_after_ms is not None:
            headers.append(("retry-after-ms", str(fault.retry_after_ms)))
        headers = [(fault.header_prefix + name, value) for name, value in headers]
        if fault.quota:
            message = "You exceeded your current quota (simulated)."
            self._error(dialect, 429, "quota", message, headers)
        else:
            message = f"Rate limit reached for {model} (simulated)."
            self._error(dialect, 429, "rate_limit", message, headers)

    def _pause(self, seconds: float) -> None:
        """Sleep, but wake up at once when the simulator stops."""
        if seconds > 0 and self.server.stopping.wait(seconds):
            raise _Stopped

    def _error(
        self,
        dialect: Dialect,
        status: int,
        kind: ErrorKind,
        message: str,
        headers: _Headers = (),
    ) -> None:
        self._send_json(status, dialect.error_body(kind, message), headers)

    def _send_json(
        self, status: int, payload: object, headers: _Headers = (), mangle: FaultKind | None = None
    ) -> None:
        """Send a JSON body; the `malformed` and `truncate` faults break it on purpose."""
        data = json.dumps(payload, ensure_ascii=False).encode()
        if mangle == "malformed":
            data = data[: len(data) // 2]  # a cut JSON object is never valid JSON
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        if mangle == "truncate":
            # Promise the whole body, send half, hang up: the client sees a broken response.
            self.wfile.write(data[: len(data) // 2])
            self.close_connection = True
        else:
            self._answered()
            self.wfile.write(data)

    def _answered(self) -> None:
        """The last bytes of the answer go out next: the request stops counting as in
        flight (see ``SimulatorState.in_flight``)."""
        if self._leave_in_flight is not None:
            self._leave_in_flight()

    def _send_stream(
        self, plan: StreamPlan, tokens_per_second: float, mangle: FaultKind | None
    ) -> None:
        """Send SSE in chunked encoding, one chunk per event so clients see them as they come;
        the `malformed` and `truncate` faults break the stream on purpose."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        head, pieces, tail = plan.head, plan.pieces, plan.tail
        if mangle == "malformed":
            first = head[0]
            head = (SSEEvent(first.data[: len(first.data) // 2], first.event),)
            pieces, tail = (), ()
        elif mangle == "truncate":
            # A clean end of body, but before the closing events: a silently cut answer.
            pieces, tail = pieces[: math.ceil(len(pieces) / 2)], ()
        for event in head:
            self._write_chunk(event.encode())
        for index, event in enumerate(pieces):
            if index and tokens_per_second:
                self._pause(1 / tokens_per_second)
            self._write_chunk(event.encode())
        for index, event in enumerate(tail):
            if index == len(tail) - 1:
                self._answered()  # a client may stop reading at the final event
            self._write_chunk(event.encode())
        self.wfile.write(b"0\r\n\r\n")

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))


def _json_object(raw: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):  # not JSON, or nested past the parser's depth
        return None
    return value if isinstance(value, dict) else None


def _retry_headers(retry: RetryAfter) -> list[tuple[str, str]]:
    return [("retry-after", str(retry.seconds)), ("retry-after-ms", str(retry.milliseconds))]


def _models_payload(model_ids: list[str]) -> dict[str, Any]:
    """The configured models, with the fields both the OpenAI and Anthropic SDKs read."""
    created = int(time.time())
    created_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(created))
    data = [
        {
            "id": model_id,
            "object": "model",
            "created": created,
            "owned_by": "simulator",
            "type": "model",
            "display_name": model_id,
            "created_at": created_at,
        }
        for model_id in model_ids
    ]
    return {
        "object": "list",
        "data": data,
        "has_more": False,
        "first_id": model_ids[0] if model_ids else None,
        "last_id": model_ids[-1] if model_ids else None,
    }
