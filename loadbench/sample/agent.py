"""The sampling agent for a model server on another host, and the puller that reads it.

``loadbench agent`` runs `serve_agent` on the model server's host: a background thread samples
that host (psutil, the server's process tree, NVML) every ``interval_s`` into a ring buffer, and
a small HTTP server hands the buffer out. Routes (JSON, GET only, all behind
``Authorization: Bearer <token>`` when a token is set):

``/time``                 ``{"unix_s": <agent's wall clock>}``, for clock-offset estimation
``/info``                 static facts: hostname, cores, interval, server process, GPUs, notices;
                          plus ``seq``, the last sequence number sampled so far
``/samples?since=SEQ``    ``{"next", "more", "dropped", "samples": [{"seq", "unix_s", ...}]}``:
                          the buffered samples with ``seq > SEQ``, oldest first

`AgentPuller` (`loadbench.sample.puller`) runs in the sampler process on the load-generator host. It consumes those routes
and produces samples in the run directory's ``samples.jsonl`` form: ``unix_s`` moved onto the
local clock (NTP-style offset estimate) and every key prefixed ``<label>/``.
"""

from __future__ import annotations

import contextlib
import hmac
import ipaddress
import itertools
import math
import os
import signal
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from http.server import ThreadingHTTPServer
from types import FrameType
from typing import Any
from urllib.parse import parse_qs

import psutil

from loadbench import __version__
from loadbench.errors import UsageError
from loadbench.jsonhttp import JSONRequestHandler
from loadbench.redact import redact_argv
from loadbench.sample.collector import (
    DEFAULT_PORT,
    MIN_INTERVAL_S,
    TOKEN_ENV,
    Collector,
    one_line,
)
from loadbench.sample.hostmetrics import Host, ProcessTree, find_server_process
from loadbench.sample.puller import AgentPuller

# The puller is the client half of this module's protocol; callers import it from here too.
__all__ = [
    "DEFAULT_PORT",
    "TOKEN_ENV",
    "AgentPuller",
    "AgentServer",
    "build_collector",
    "is_loopback",
    "make_agent_server",
    "serve_agent",
]

MAX_SAMPLES_PER_RESPONSE = 5000


class _BadRequest(Exception):
    """Internal: a request the agent answers with 400."""


def _finite(values: dict[str, Any]) -> dict[str, Any]:
    # JSON has no NaN/Infinity: a value that is not a finite number is "unknown".
    return {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in values.items()}


def is_loopback(bind: str) -> bool:
    """Whether ``bind`` (an address or host name) only ever means this machine's loopback."""
    host = bind.strip("[]")
    with contextlib.suppress(ValueError):
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    try:
        infos = socket.getaddrinfo(host, None)
    except (OSError, UnicodeError):
        return False
    return bool(infos) and all(ipaddress.ip_address(str(i[4][0]).split("%")[0]).is_loopback for i in infos)


def build_collector(
    server_pid: int | None = None, server_name: str | None = None, gpus: Any | None = None
) -> tuple[Collector, str, list[str]]:
    """The agent's default collector: host, the server's process tree when given, and NVML.

    ``gpus`` is a `loadbench.sample.nvml.GpuReader` (or fake); ``None`` opens the real one.
    Returns (collector, how the server was found, notices).
    """
    notices: list[str] = []
    server, how = None, ""
    if server_pid is not None or server_name is not None:
        # The agent runs beside the server, so it is found by pid or name, never by target port.
        found, notice = find_server_process("http://127.0.0.1:1", server_pid, server_name)
        if notice:
            notices.append(notice)
        if found is not None:
            try:
                server = ProcessTree(found.pid)
            except psutil.NoSuchProcess:
                raise UsageError(f"the server process {found.pid} ended before sampling began") from None
            how = found.how
    if gpus is None:
        from loadbench.sample.nvml import GpuReader

        gpus = GpuReader()
    if not gpus.available and gpus.notice:
        notices.append(gpus.notice)
    return Collector(server=server, gpus=gpus, host=Host()), how, notices


def _server_facts(collector: Collector, how: str) -> dict[str, Any] | None:
    if collector.server is None:
        return None
    root = collector.server.root
    try:
        name, cmdline = root.name(), " ".join(redact_argv(root.cmdline()))[:300]
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        name, cmdline = None, None
    return {"pid": root.pid, "name": name, "cmdline": cmdline, "how": how or "given to the agent"}


class AgentServer(ThreadingHTTPServer):
    """The agent's HTTP server; owns the sampling thread and its ring buffer."""

    daemon_threads = True  # keep-alive connections must not hold up server_close()

    def __init__(
        self,
        address: tuple[str, int],
        token: str | None,
        interval_s: float,
        collector: Collector,
        clock: Callable[[], float],
        buffer_s: float,
        info: dict[str, Any],
        owns_collector: bool,
    ) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.token = token.encode("utf-8") if token else None
        self.interval_s = interval_s
        self.collector = collector
        self.clock = clock
        self.info = info
        self.owns_collector = owns_collector
        self.buffer: deque[dict[str, Any]] = deque(maxlen=max(1, math.ceil(buffer_s / interval_s)))
        self.lock = threading.Lock()
        self.last_seq = 0
        self.sample_errors = 0
        self.last_sample_error: str | None = None
        self.stopping = threading.Event()
        self.connections: set[socket.socket] = set()
        # Made before binding: server_close(), called by a bind that fails, looks at it.
        self.sampler = threading.Thread(target=self._sample_loop, name="loadbench-agent-sampler", daemon=True)
        super().__init__(address, _AgentHandler)
        self.sampler.start()

    def _sample_loop(self) -> None:
        # A fixed schedule like the sampler's: a late sample does not shift the ones after it.
        next_tick = time.monotonic()
        while not self.stopping.is_set():
            unix_s = self.clock()
            try:
                values = _finite(self.collector.sample())
            except Exception as exc:  # a sampling hiccup must not end the agent
                self.sample_errors += 1
                self.last_sample_error = one_line(exc)
            else:
                with self.lock:
                    self.last_seq += 1
                    self.buffer.append({"seq": self.last_seq, "unix_s": round(unix_s, 6)} | values)
            next_tick += self.interval_s
            now = time.monotonic()
            if next_tick < now:
                next_tick = now + self.interval_s - ((now - next_tick) % self.interval_s)
            self.stopping.wait(next_tick - now)

    def samples_since(self, since: int | None) -> dict[str, Any]:
        """The body of ``/samples``: buffered samples with ``seq > since``, oldest first."""
        with self.lock:
            last = self.last_seq
            oldest = self.buffer[0]["seq"] if self.buffer else last + 1
            if since is None or since > last:
                # No cursor, or a cursor from before this agent restarted: everything buffered.
                since = oldest - 1
            since = max(since, 0)  # sequence numbers start at 1
            # Sequence numbers are contiguous, so the start is found by arithmetic, not a scan.
            start = max(0, since - oldest + 1)
            page = list(itertools.islice(self.buffer, start, start + MAX_SAMPLES_PER_RESPONSE))
        dropped = max(0, oldest - 1 - since)
        next_seq = page[-1]["seq"] if page else max(since, oldest - 1)
        return {"next": next_seq, "more": next_seq < last, "dropped": dropped, "samples": page}

    def info_now(self) -> dict[str, Any]:
        """The body of ``/info``: the static facts plus the sampling counters."""
        notices = list(self.info["notices"])
        if self.last_sample_error:
            notices.append(f"{self.sample_errors} sample(s) failed, last: {self.last_sample_error}")
        return self.info | {"notices": notices, "seq": self.last_seq}

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that vanished mid-request is normal for an agent; anything else is a bug.
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)

    def server_close(self) -> None:
        super().server_close()
        # Also end the open keep-alive connections: a closed agent must look gone to its pullers.
        with self.lock:
            connections, self.connections = list(self.connections), set()
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        self.stopping.set()
        if self.sampler.is_alive() and self.sampler is not threading.current_thread():
            self.sampler.join(timeout=5)
        if self.owns_collector and self.collector.gpus is not None:
            self.collector.gpus.close()


class _AgentHandler(JSONRequestHandler):
    """Routes requests; every response is JSON with a Content-Length."""

    # Buffer the response so headers and body leave in one write (one packet for /time),
    # flushed by the base class at the end of each request.
    wbufsize = 1 << 16
    server_version = f"loadbench-agent/{__version__}"
    server: AgentServer

    def setup(self) -> None:
        super().setup()
        with self.server.lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        with self.server.lock:
            self.server.connections.discard(self.connection)
        super().finish()

    def _authorized(self) -> bool:
        if self.server.token is None:
            return True
        given = self.headers.get("Authorization", "")
        # Headers arrive decoded as latin-1: encoding back gives the bytes the client sent.
        given_bytes = given.encode("latin-1", errors="replace")
        return hmac.compare_digest(given_bytes, b"Bearer " + self.server.token)

    def do_GET(self) -> None:
        with self.failures_answered():
            try:
                self._get()
            except _BadRequest as exc:
                self.send_json(400, {"error": str(exc)})

    def _get(self) -> None:
        if not self._authorized():
            self.send_json(401, {"error": "missing or wrong token"}, {"WWW-Authenticate": "Bearer"})
            return
        path, _, query = self.path.partition("?")
        if path == "/time":
            self.send_json(200, {"unix_s": self.server.clock()})
        elif path == "/samples":
            self.send_json(200, self.server.samples_since(_since(query)))
        elif path == "/info":
            self.send_json(200, self.server.info_now())
        else:
            self.send_json(404, {"error": f"no route {path[:100]!r}: try /time, /info or /samples"})


def _since(query: str) -> int | None:
    """The ``since`` cursor of a ``/samples`` query; None when absent."""
    values = parse_qs(query).get("since")
    if not values:
        return None
    try:
        return int(values[-1])
    except ValueError:
        raise _BadRequest(f"since must be an integer sequence number, got {values[-1][:40]!r}") from None


def make_agent_server(
    bind: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    token: str | None = None,
    interval_s: float = 0.5,
    collector: Collector | None = None,
    clock: Callable[[], float] = time.time,
    buffer_s: float = 1800,
    server_pid: int | None = None,
    server_name: str | None = None,
) -> AgentServer:
    """Bind the agent (port 0 picks a free port) and start sampling; call ``serve_forever`` to serve.

    ``collector=None`` builds the default one (`build_collector`, with the server process when
    ``server_pid`` or ``server_name`` is given). ``server_close()`` stops the sampling.
    """
    token = token or None
    bind = bind.strip("[]")  # "[::1]", as in URLs, binds ::1
    if not is_loopback(bind) and token is None:
        raise UsageError(f"the agent binds beyond loopback ({bind}): give --token or {TOKEN_ENV}")
    if not interval_s >= MIN_INTERVAL_S:
        raise UsageError(f"the agent's sample interval must be at least {MIN_INTERVAL_S} s, got {interval_s}")
    if not buffer_s > 0:
        raise UsageError(f"the agent's buffer must hold more than 0 s, got {buffer_s}")
    owns = collector is None
    notices: list[str] = []
    how = ""
    if collector is None:
        collector, how, notices = build_collector(server_pid, server_name)
    elif collector.gpus is not None and not collector.gpus.available and collector.gpus.notice:
        notices.append(collector.gpus.notice)
    info = {
        "hostname": socket.gethostname(),
        "cpu_cores": psutil.cpu_count(logical=True),
        "interval_s": interval_s,
        "buffer_s": buffer_s,
        "server": _server_facts(collector, how),
        "gpus": [vars(g) for g in collector.gpus.gpus] if collector.gpus is not None else [],
        "notices": notices,
        "loadbench": __version__,
    }
    try:
        return AgentServer((bind, port), token, interval_s, collector, clock, buffer_s, info, owns)
    except OSError as exc:
        if owns and collector.gpus is not None:
            collector.gpus.close()
        raise UsageError(f"the agent cannot listen on {bind}:{port}: {exc.strerror or exc}") from None


def serve_agent(
    bind: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    token: str | None = None,
    interval_s: float = 0.5,
    server_pid: int | None = None,
    server_name: str | None = None,
) -> None:
    """Serve samples of this host until SIGTERM or SIGINT, announcing the URL in one stdout line.

    ``token=None`` takes the token from ``LOADBENCH_AGENT_TOKEN``.
    """
    if token is None:
        token = os.environ.get(TOKEN_ENV) or None
    stop = threading.Event()
    holder: dict[str, AgentServer] = {}

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()
        if "server" in holder:
            # shutdown() waits for serve_forever() to return, which runs in this very (main) thread.
            threading.Thread(target=holder["server"].shutdown, daemon=True).start()

    # Installed before opening NVML (which can take a while): a stop during start-up is clean too.
    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        server = make_agent_server(
            bind, port, token, interval_s, server_pid=server_pid, server_name=server_name
        )
        holder["server"] = server
        try:
            if stop.is_set():
                return
            bound_port = server.server_address[1]
            host = bind.strip("[]")
            shown = f"[{host}]" if ":" in host else host
            print(
                f"loadbench agent: serving samples of {socket.gethostname()} on http://{shown}:{bound_port}",
                flush=True,
            )
            server.serve_forever()
        finally:
            server.server_close()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
