"""A base for loadbench's small HTTP servers (the demo endpoint, the agent): JSON in every answer.

Consumes HTTP/1.1 requests; produces JSON responses with a Content-Length, errors included
(the stdlib would send HTML error pages), keep-alive, and no per-request log lines.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any


class JSONRequestHandler(BaseHTTPRequestHandler):
    """Subclasses route requests and answer with `send_json`; `extra_headers` adds their own."""

    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; with Nagle's algorithm on, the body waits
    # for the client's delayed ACK (~40 ms) on every keep-alive request.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        # A line per request on stderr would dominate the cost of a benchmark target.
        pass

    def extra_headers(self) -> dict[str, str]:
        """Headers every response of this server carries."""
        return {}

    def send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        body = json.dumps(payload, separators=(",", ":"), allow_nan=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (self.extra_headers() | (headers or {})).items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # The stdlib calls this for an unreadable request line or an unsupported method.
        self.close_connection = True
        if not getattr(self, "command", None):
            self.command = ""
        self.send_json(code, {"error": message or self.responses.get(code, ("error",))[0]})

    @contextlib.contextmanager
    def failures_answered(self) -> Iterator[None]:
        """Around a request's handling: a client that went away closes the connection; any
        unexpected exception becomes a JSON 500, so the server never dies or leaves a client hanging."""
        try:
            yield
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as exc:
            self.close_connection = True
            with contextlib.suppress(OSError):  # the client may already be gone
                self.send_json(500, {"error": f"internal error: {type(exc).__name__}: {exc}"})
