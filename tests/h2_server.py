"""A real HTTP/2 server for the ``--http2`` tests: hypercorn serving a tiny ASGI app, h2c on loopback.

Run as a child process (the test process keeps its own event loop out of it):

    python tests/h2_server.py LOG.jsonl [--tls CERT KEY] [--max-requests N]

It binds a free loopback port, prints its URL on the first line of stdout, and appends one JSON
line per request to LOG.jsonl: ``{"http_version", "method", "path", "body"}``
(``http_version`` is ASGI's ``scope["http_version"]``: ``"2"`` for HTTP/2). Routes: ``POST
/predict`` answers ``{"predictions": [...]}``; ``GET /v1/models`` a KServe v1 model list;
``POST /v1/models/m:predict`` ``{"predictions": [...]}``; ``POST /v1/chat/completions`` with
``"stream": true`` streams an OpenAI chat answer as SSE: a role event, ``max_tokens`` content
events (the first ``TTFT_MS`` after the app got the request, then ``ITL_MS`` apart, one HTTP/2
DATA frame each), the answer's end (an empty delta with ``finish_reason`` ``length``), a usage
event and ``data: [DONE]``; its log line is written when the stream
ends and adds the server's own timing, ``"ttft_ms"`` and ``"itl_ms"`` (a list), by
``time.perf_counter()``. ``POST /redirect`` answers 307 to ``/predict``; ``POST /big``
``{"predictions": [1], "pad": ...}``, `BIG_BYTES` long. Anything else 404.

``--max-requests N`` sets hypercorn's ``keep_alive_max_requests`` (here 1,000,000 unless given; hypercorn's own default is 1,000): after that
many requests on one connection it sends GOAWAY, the graceful end of a connection that HTTP/2
clients must handle, so a test can force one quickly.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
import sys
import time
from typing import Any

from hypercorn.asyncio import serve
from hypercorn.config import Config

TTFT_MS = 40.0
ITL_MS = 10.0
BIG_BYTES = 3 * 1024 * 1024


def make_app(log_path: str) -> Any:
    log = open(log_path, "a", encoding="utf-8")  # noqa: SIM115 (open for the server's life)

    def write(scope: dict[str, Any], body: bytes, **extra: Any) -> None:
        line = {
            "http_version": scope["http_version"],
            "method": scope["method"],
            "path": scope["path"],
            "body": body.decode("utf-8", "replace"),
            **extra,
        }
        log.write(json.dumps(line) + "\n")
        log.flush()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        t0 = time.perf_counter()
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if (scope["method"], scope["path"]) == ("POST", "/v1/chat/completions"):
            request = json.loads(body or b"{}")
            if request.get("stream"):
                timing = await stream_chat(send, t0, int(request.get("max_tokens") or 8))
                write(scope, body, **timing)
                return
        write(scope, body)
        route = (scope["method"], scope["path"])
        if route == ("POST", "/redirect"):
            headers = [(b"location", b"/predict"), (b"content-length", b"0")]
            await send({"type": "http.response.start", "status": 307, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return
        answer: Any
        if route == ("GET", "/v1/models"):
            status, answer = 200, {"models": ["m"]}
        elif route == ("POST", "/big"):
            head = '{"predictions": [1], "pad": "'
            status, answer = 200, {"predictions": [1], "pad": "x" * (BIG_BYTES - len(head) - 2)}
        elif route in (("POST", "/predict"), ("POST", "/v1/models/m:predict")):
            status, answer = 200, {"predictions": [len(body)]}
        else:
            status, answer = 404, {"error": "not found"}
        data = json.dumps(answer).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": data})

    return app


async def stream_chat(send: Any, t0: float, tokens: int) -> dict[str, Any]:
    """Stream a chat answer as SSE, paced from ``t0``; return the server's own timing."""

    async def event(payload: Any) -> None:
        data = f"data: {json.dumps(payload)}\n\n".encode()
        await send({"type": "http.response.body", "body": data, "more_body": True})

    headers = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await event({"id": "x", "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]})
    sent: list[float] = []
    due = t0 + TTFT_MS / 1000
    for i in range(tokens):
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        await event({"id": "x", "choices": [{"index": 0, "delta": {"content": f"w{i} "}}]})
        sent.append(time.perf_counter())
        due = sent[-1] + ITL_MS / 1000
    # The answer's end, as OpenAI sends it: without a finish_reason the stream was cut.
    await event({"id": "x", "choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]})
    await event({"id": "x", "choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": tokens}})
    await send({"type": "http.response.body", "body": b"data: [DONE]\n\n", "more_body": False})
    return {
        "ttft_ms": (sent[0] - t0) * 1000 if sent else None,
        "itl_ms": [(b - a) * 1000 for a, b in itertools.pairwise(sent)],
    }


def main(argv: list[str]) -> None:
    # No GOAWAY after hypercorn's default 1,000 requests per connection unless asked: how many a
    # test run reaches depends on the machine's speed, so a test would see it only sometimes.
    log_path, max_requests = argv[0], 1_000_000
    if "--max-requests" in argv:
        at = argv.index("--max-requests")
        max_requests = int(argv[at + 1])
        argv = argv[:at] + argv[at + 2 :]
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    sock.set_inheritable(True)
    config = Config()
    config.bind = [f"fd://{sock.fileno()}"]
    config.accesslog = None
    config.errorlog = None
    config.keep_alive_max_requests = max_requests
    scheme = "http"
    if len(argv) >= 4 and argv[1] == "--tls":
        config.certfile, config.keyfile = argv[2], argv[3]
        scheme = "https"
    print(f"{scheme}://127.0.0.1:{sock.getsockname()[1]}", flush=True)
    asyncio.run(serve(make_app(log_path), config))  # type: ignore[arg-type]


if __name__ == "__main__":
    main(sys.argv[1:])
