"""A local stand-in for API Gateway: real HTTP in, the REST proxy event to the ingest handler, its answer out.

Like the deployed API (binaryMediaTypes */*), the body reaches the handler base64-encoded, byte for byte.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from dsync.local.lambda_events import LocalContext, api_gateway_event
from shared.resources import INGEST_FUNCTION

WEBHOOK_PATH = "/webhooks/workos"
MAX_PAYLOAD_BYTES = 10 * 1024 * 1024  # API Gateway's REST API payload limit

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


class _RequestHandler(BaseHTTPRequestHandler):
    server: LocalGateway
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the ingest handler logs every request with its outcome."""

    def _handle(self) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_PAYLOAD_BYTES:
            self._answer(413, {"message": "Request Too Long"})
            self.close_connection = True
            return
        body = self.rfile.read(length) if length else b""
        if url.path == "/health":
            self._answer(200, {"status": "ok"})
            return
        if url.path != WEBHOOK_PATH:
            self._answer(404, {"message": f"no route for {url.path}; webhooks go to {WEBHOOK_PATH}"})
            return
        event = api_gateway_event(
            method=self.command,
            path=WEBHOOK_PATH,
            headers=dict(self.headers.items()),
            body=body,
            query=dict(parse_qsl(url.query)) or None,
        )
        context = LocalContext(function_name="dsync-ingest", timeout_seconds=INGEST_FUNCTION.timeout_seconds)
        try:
            response = self.server.ingest(event, context)
        except Exception:  # an unhandled Lambda error is a 502 at API Gateway, and WorkOS retries
            self.server.on_error("ingest handler raised")
            self._answer(502, {"message": "Internal server error"})
            return
        payload = response.get("body") or ""
        raw = base64.b64decode(payload) if response.get("isBase64Encoded") else str(payload).encode()
        self._send(int(response.get("statusCode", 502)), raw, response.get("headers") or {})

    do_POST = do_GET = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _handle

    def _answer(self, status: int, document: dict[str, Any]) -> None:
        self._send(status, json.dumps(document).encode(), {"Content-Type": "application/json"})

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, str(value))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


class LocalGateway(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self, host: str, port: int, *, ingest: Handler, on_error: Callable[[str], None] = lambda message: None
    ) -> None:
        super().__init__((host, port), _RequestHandler)
        self.ingest = ingest
        self.on_error = on_error
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}{WEBHOOK_PATH}"

    def start(self) -> None:
        self._thread = threading.Thread(target=self.serve_forever, name="local-gateway", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
