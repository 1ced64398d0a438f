"""A real HTTP/2 server for the ``--http2`` tests: hypercorn serving a tiny ASGI app, h2c on loopback.

Run as a child process (the test process keeps its own event loop out of it):

    python tests/h2_server.py LOG.jsonl [--tls CERT KEY]

It binds a free loopback port, prints its URL on the first line of stdout, and appends one JSON
line per request to LOG.jsonl: ``{"http_version", "method", "path", "body"}``
(``http_version`` is ASGI's ``scope["http_version"]``: ``"2"`` for HTTP/2). Routes: ``POST
/predict`` answers ``{"predictions": [...]}``; ``GET /v1/models`` a KServe v1 model list;
``POST /v1/models/m:predict`` ``{"predictions": [...]}``; anything else 404.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
from typing import Any

from hypercorn.asyncio import serve
from hypercorn.config import Config


def make_app(log_path: str) -> Any:
    log = open(log_path, "a", encoding="utf-8")  # noqa: SIM115 (open for the server's life)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        log.write(
            json.dumps(
                {
                    "http_version": scope["http_version"],
                    "method": scope["method"],
                    "path": scope["path"],
                    "body": body.decode("utf-8", "replace"),
                }
            )
            + "\n"
        )
        log.flush()
        route = (scope["method"], scope["path"])
        if route == ("GET", "/v1/models"):
            status, answer = 200, {"models": ["m"]}
        elif route in (("POST", "/predict"), ("POST", "/v1/models/m:predict")):
            status, answer = 200, {"predictions": [len(body)]}
        else:
            status, answer = 404, {"error": "not found"}
        data = json.dumps(answer).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": data})

    return app


def main(argv: list[str]) -> None:
    log_path = argv[0]
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    sock.set_inheritable(True)
    config = Config()
    config.bind = [f"fd://{sock.fileno()}"]
    config.accesslog = None
    config.errorlog = None
    scheme = "http"
    if len(argv) >= 4 and argv[1] == "--tls":
        config.certfile, config.keyfile = argv[2], argv[3]
        scheme = "https"
    print(f"{scheme}://127.0.0.1:{sock.getsockname()[1]}", flush=True)
    asyncio.run(serve(make_app(log_path), config))  # type: ignore[arg-type]


if __name__ == "__main__":
    main(sys.argv[1:])
