"""A hostile model server for the secret-redaction tests: every answer echoes the API key.

The first path segment picks the answer, so one server serves many models, each with its
own ``base_url`` (``http://127.0.0.1:PORT/<mode>/v1``):

- ``json-<status>``: the provider's JSON error body, the key in its message;
- ``cut-<status>``: a text body with the key straddling its 200th character (long bodies
  are cut there in messages);
- ``text-<status>``: an HTML page holding the key;
- ``sse``: status 200 and an event stream whose error event holds the key (in the
  OpenAI or Anthropic spelling, by the request's path).

The key is whatever the request authenticated with (``authorization: Bearer`` or
``x-api-key``), so the server never needs to be told it.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        key = self.headers.get("x-api-key") or self.headers.get("authorization", "")
        key = key.removeprefix("Bearer ")
        mode = self.path.strip("/").split("/")[0]
        anthropic = self.path.endswith("/messages")
        kind, _, status_text = mode.partition("-")
        status = int(status_text or 200)
        if kind == "sse":
            self._stream(key, anthropic)
            return
        message = f"Incorrect API key provided: {key}. You can find your key at example.com."
        if kind == "cut":
            self._send(status, "text/plain", ("x" * 190 + f"{key} is wrong").encode())
            return
        if kind == "text":
            body = f"<html><body><h1>{status}</h1><p>key {key} refused</p></body></html>"
            self._send(status, "text/html", body.encode())
            return
        if anthropic:
            error = {
                "type": "error",
                "error": {"type": "invalid_request_error", "message": message},
            }
        else:
            error = {"error": {"message": message, "type": "invalid_request_error", "code": None}}
        self._send(status, "application/json", json.dumps(error).encode())

    def _stream(self, key: str, anthropic: bool) -> None:
        message = f"stream failed for key {key}"
        if anthropic:
            error = {"type": "error", "error": {"type": "api_error", "message": message}}
            data = f"event: error\ndata: {json.dumps(error)}\n\n"
        else:
            data = f"data: {json.dumps({'error': {'message': message, 'type': 'server'}})}\n\n"
        self._send(200, "text/event-stream", data.encode())

    def _send(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class EchoServer:
    """Started on a free loopback port; ``url`` is its base address."""

    def __init__(self) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> EchoServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
