"""Shared test helpers: real servers on loopback, the real `loadbench` command in a subprocess,
and headless Chromium opening a page to check that script-injection payloads in it stay text.

The pytest process never imports locust (it monkey-patches the standard library); every
load test runs `python -m loadbench` (or `locust`) as a child process.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psutil
import pytest
from cli_zygote import run_loadbench

from loadbench.report.html import visible_text

REPO = Path(__file__).resolve().parent.parent
DIGITS = REPO / "loadbench" / "data" / "digits.jsonl"


def run_cli(*args: str, timeout: float = 120, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python -m loadbench ARGS`` to completion and capture its output: in its own process,
    forked from a zygote that has imported what a run imports (`cli_zygote`)."""
    return run_loadbench(list(args), cwd or REPO, {**os.environ, "PYTHONUNBUFFERED": "1"}, timeout)


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
    # A listen backlog of at least 128 (as the demo's server asks), not socketserver's 5: before
    # the load, loadbench times 20 TCP connects back to back (loadbench/drive/rtt.py), faster
    # than the accepting thread starts a handler thread for each; beyond 5 waiting, a connect's
    # SYN was dropped and the kernel sent it again a second later: some 2 s of every run against
    # these servers spent waiting. (listen() again on a listening socket only resizes its queue.)
    server.socket.listen(max(int(getattr(server, "request_queue_size", 0)), 128))
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
    A route may add response headers to ``handler.reply_headers`` (a dict, empty per request).

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
            self.reply_headers: dict[str, str] = {}
            status, payload = route(self, state)
            data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in self.reply_headers.items():
                self.send_header(name, value)
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


def free_port() -> int:
    """A TCP port of 127.0.0.1 free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http_ready(url: str, process: subprocess.Popen[Any], what: str, timeout_s: float = 60.0) -> None:
    """Poll ``url`` until it answers 200; fail when ``process`` exits or ``timeout_s`` passes."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        assert process.poll() is None, f"{what} exited with code {process.returncode}"
        assert time.monotonic() < deadline, f"{what} did not answer {url} within {timeout_s:g} s"
        time.sleep(0.1)


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def cpu_seconds(pid: int) -> float:
    """The CPU time (user + system, seconds) the OS has charged to a process so far: what
    psutil's ``cpu_percent`` differences, so a test can check a CPU reading against it."""
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


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


# ---------------------------------------------------------------------------------------------
# Pages in a real browser: server and user text must stay text

PWNED = "PWNED"
# Each would change the page's title if a page let it run.
SCRIPT_PAYLOADS = (
    "<script>document.title='PWNED'</script>",
    "<img src=x onerror=\"document.title='PWNED'\">",
    "\"><svg onload=document.title='PWNED'>",
    "'><a href=\"javascript:document.title='PWNED'\">click</a>",
    "</textarea></title></style><script>document.title='PWNED'</script>",
    "| col | <iframe src=\"javascript:parent.document.title='PWNED'\"></iframe> |",
    "&lt;b&gt;already escaped&lt;/b&gt; <b onmouseover=\"document.title='PWNED'\">bold</b>",
    "\u202e<script>document.title='PWNED'</script>\u202dexe.txt",  # right-to-left override
    "[fix](javascript:document.title='PWNED') ![x](http://127.0.0.1:9/x.png) <style>*{display:none}</style>",
)


def require_executable(name: str, apt_package: str) -> str:
    """The command's path; without it, skip (fail under CI, which installs it)."""
    path = shutil.which(name)
    if path:
        return path
    message = f"the {name!r} command is not installed (apt-get install {apt_package})"
    if os.environ.get("CI"):
        pytest.fail(f"{message}, and CI must have it: .ci/run installs it")
    pytest.skip(message)


def run_chromium(browser: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Headless Chromium, cut off from everything but the files it is given."""
    result = subprocess.run(
        [
            browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--disable-extensions",
            f"--user-data-dir={profile}", *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, f"chromium exited {result.returncode}: {result.stderr[-2000:]}"
    return result


@dataclass
class Page:
    """What `html.parser` sees in a page: element counts, attributes, title and visible text."""

    tags: Counter[str] = field(default_factory=Counter)
    attributes: list[tuple[str, str, str]] = field(default_factory=list)  # (tag, name, value)
    title: str = ""
    text: str = ""


class _PageParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.page = Page()
        self.open: list[str] = []
        self.chunks: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.page.tags[tag] += 1
        self.page.attributes += [(tag, name, value or "") for name, value in attrs]
        if tag in ("title", "style", "script"):
            self.open.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if self.open and self.open[-1] == tag:
            self.open.pop()

    def handle_endtag(self, tag: str) -> None:
        if self.open and self.open[-1] == tag:
            self.open.pop()

    def handle_data(self, data: str) -> None:
        if "title" in self.open:
            self.page.title += data
        elif not self.open:
            self.chunks.append(data)


def parse_page(markup: str) -> Page:
    parser = _PageParser()
    parser.feed(markup)
    parser.close()
    parser.page.text = "".join(parser.chunks)
    return parser.page


def assert_inert_in_chromium(
    page: Path,
    browser: str,
    profile: Path,
    payloads: Sequence[str],
    title_prefix: str = "loadbench report — ",
) -> Page:
    """Open the page in headless Chromium: no payload ran or made an element; all show as text.

    ``title_prefix`` is how the page's own title starts (each page kind has its own).
    """
    source = page.read_text(encoding="utf-8")
    for payload in payloads:
        if "<" in payload:
            assert payload not in source, f"raw payload in {page.name}: {payload!r}"
    written = parse_page(source)

    result = run_chromium(browser, profile, "--virtual-time-budget=3000", "--dump-dom", page.as_uri())
    dom = parse_page(result.stdout)
    # Scripts that ran would have renamed the page; the title is the page's own. (A title may
    # quote a payload as text, e.g. compare's run ids, so "PWNED" can be in it but not all of it.)
    assert written.title.startswith(title_prefix), written.title
    assert dom.title == written.title
    assert dom.title != PWNED
    # The browser built exactly the elements the page wrote (it only adds implied <tbody>s).
    new_kinds = set(dom.tags) - set(written.tags) - {"tbody"}
    assert not new_kinds, f"elements no page writes: {sorted(new_kinds)}"
    assert dom.tags - Counter(tbody=dom.tags["tbody"]) == written.tags - Counter(tbody=written.tags["tbody"])
    for tag, name, value in dom.attributes:
        assert not name.startswith("on"), f"<{tag} {name}=...> in the page"
        assert not value.strip().lower().startswith("javascript:"), f"<{tag} {name}={value!r}>"
        assert not (tag == "img" and not value.startswith("data:image/png;base64,") and name == "src")
    # Every payload is in the page, unchanged, as text a reader can see.
    # (Bidirectional-text controls are shown as their code points, so they cannot reorder a cell.)
    for payload in payloads:
        assert visible_text(payload) in dom.text, f"payload not shown as text: {payload!r}"
    return dom
