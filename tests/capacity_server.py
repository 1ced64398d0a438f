"""A loopback HTTP server with a known capacity, for sweep tests.

At most ``slots`` requests are served at once, each holding its slot for ``service_ms``; the
others wait in a first-come queue (a semaphore; Python's is FIFO enough at these rates). Its
capacity is therefore ``slots / service_ms * 1000`` requests/s (2 slots × 20 ms = 100 rps):
below it latency stays near ``service_ms``, above it the queue and the latency grow without
bound and the throughput stays at the capacity. It answers any GET or POST (the ``json_post``
scenario's ``POST /predict``) with a small JSON body; a request that waited longer than
``max_wait_s`` for a slot gets a 503 so no thread waits forever.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from helpers import serving


class CapacityServer(ThreadingHTTPServer):
    """`ThreadingHTTPServer` on 127.0.0.1 that serves ``slots`` requests at a time."""

    daemon_threads = True
    request_queue_size = 512  # the listen backlog: an overload queues in our semaphore, not in SYN drops

    def __init__(self, slots: int, service_ms: float, max_wait_s: float = 30.0) -> None:
        self.slots = threading.BoundedSemaphore(slots)
        self.service_s = service_ms / 1000.0
        self.max_wait_s = max_wait_s
        self.capacity_rps = slots / self.service_s
        self.lock = threading.Lock()
        self.served = 0
        self.rejected = 0
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: CapacityServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length", "0") or 0)
        if length:
            self.rfile.read(length)
        server = self.server
        if server.slots.acquire(timeout=server.max_wait_s):
            try:
                time.sleep(server.service_s)  # the service time, inside the slot
            finally:
                server.slots.release()
            status, body = 200, {"outputs": [0]}
            with server.lock:
                server.served += 1
        else:
            status, body = 503, {"error": "queue wait too long"}
            with server.lock:
                server.rejected += 1
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _handle


@contextmanager
def capacity_server(slots: int = 2, service_ms: float = 20.0) -> Iterator[tuple[str, CapacityServer]]:
    """Serve a `CapacityServer` from a background thread; yield its URL and the server."""
    server = CapacityServer(slots, service_ms)
    with serving(server) as url:
        yield url, server
