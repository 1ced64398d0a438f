"""Shared test helpers: real servers on loopback and the real `loadbench` command in a subprocess.

The pytest process never imports locust (it monkey-patches the standard library); every
load test runs `python -m loadbench` (or `locust`) as a child process.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DIGITS = REPO / "loadbench" / "data" / "digits.jsonl"


def run_cli(*args: str, timeout: float = 120, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python -m loadbench ARGS`` to completion and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "loadbench", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd or REPO,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def start_cli(*args: str, cwd: Path | None = None) -> subprocess.Popen[str]:
    """Start ``python -m loadbench ARGS`` without waiting."""
    return subprocess.Popen(
        [sys.executable, "-m", "loadbench", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd or REPO,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


@contextmanager
def demo_process(latency_ms: float = 0.0) -> Iterator[str]:
    """The embedded demo endpoint as a real child process; yields its URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "loadbench", "demo", "--port", "0", "--latency-ms", str(latency_ms)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = re.search(r"http://\S+", line)
        assert match, f"demo printed {line!r}"
        yield match.group(0)
    finally:
        process.terminate()
        process.communicate(timeout=10)  # also closes the pipe


@contextmanager
def serving(server: Any) -> Iterator[str]:
    """Serve a bound ``socketserver`` server in a background thread; yield its base URL; always shut down."""
    # A short poll interval: shutdown() waits for serve_forever() to notice it.
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


Handler = Callable[[BaseHTTPRequestHandler, dict[str, Any]], tuple[int, Any]]


@contextmanager
def json_server(route: Handler) -> Iterator[tuple[str, dict[str, Any]]]:
    """A real threaded HTTP/1.1 server on loopback; ``route(handler, state)`` -> (status, JSON body).

    Yields the base URL and a shared ``state`` dict (request counter, seen headers).
    """
    state: dict[str, Any] = {"count": 0, "headers": [], "lock": threading.Lock()}

    class _Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length", "0") or 0)
            self.body = self.rfile.read(length) if length else b""
            with state["lock"]:
                state["count"] += 1
                state["headers"].append(dict(self.headers))
            status, payload = route(self, state)
            data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _handle

    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    with serving(server) as url:
        yield url, state


def wait_for_lines(path: Path, lines: int, timeout_s: float = 30.0) -> None:
    """Wait until a file holds at least ``lines`` newline-terminated lines."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.exists() and path.read_bytes().count(b"\n") >= lines:
            return
        time.sleep(0.1)
    raise AssertionError(f"{path} did not reach {lines} lines in {timeout_s} s")


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


# A child process that holds 200 MiB and keeps one core busy for argv[1] seconds.
BURNER = """
import sys, time
hold = bytearray(200 * 1024 * 1024)  # 200 MiB, touched so it is resident
for i in range(0, len(hold), 4096):
    hold[i] = 1
print("ready", flush=True)
end = time.monotonic() + float(sys.argv[1])
while time.monotonic() < end:
    pass
"""
