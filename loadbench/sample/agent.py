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

`AgentPuller` runs in the sampler process on the load-generator host. It consumes those routes
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
from urllib.parse import parse_qs, urlsplit, urlunsplit

import httpx
import psutil

from loadbench import __version__
from loadbench.errors import TargetError, UsageError
from loadbench.jsonhttp import JSONRequestHandler
from loadbench.redact import redact_argv, redact_url
from loadbench.sample.collector import MIN_INTERVAL_S, Collector, host_label
from loadbench.sample.hostmetrics import Host, ProcessTree, find_server_process

DEFAULT_PORT = 9109
TOKEN_ENV = "LOADBENCH_AGENT_TOKEN"
MAX_SAMPLES_PER_RESPONSE = 5000
SYNC_ROUNDS = 8
RESYNC_EVERY_S = 60.0
MAX_PAGES_PER_PULL = 50  # 250k samples: far more than a ring buffer holds; bounds a runaway loop
# After a failed pull, wait before the next try: an agent that times out would otherwise hold
# its pull thread (and the agent's own request handler) for a full timeout every second.
BACKOFF_S = (1.0, 2.0, 5.0, 10.0, 30.0)


class _BadRequest(Exception):
    """Internal: a request the agent answers with 400."""


def _finite(values: dict[str, Any]) -> dict[str, Any]:
    # JSON has no NaN/Infinity: a value that is not a finite number is "unknown".
    return {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in values.items()}


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


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
                self.last_sample_error = _one_line(exc)
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


def _split_url(url: str) -> tuple[str, str | None]:
    """``http://user:pw@host:9109/`` -> (``http://host:9109``, ``pw``): the URL to show and use,
    and the credential it carried."""
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 -- raises ValueError for a port that is not a number
    except ValueError:
        raise UsageError(
            f"--agent {redact_url(url)!r} is not a URL like http://gpu-box:{DEFAULT_PORT}"
        ) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(
            f"--agent URL must look like http://gpu-box:{DEFAULT_PORT}, got {parts.scheme}://..."
        )
    userinfo, at, hostport = parts.netloc.rpartition("@")
    secret = (userinfo.split(":", 1)[1] if ":" in userinfo else userinfo) if at else None
    clean = urlunsplit((parts.scheme, hostport, parts.path.rstrip("/"), "", ""))
    return clean, secret or None


class AgentPuller:
    """Pulls one agent's samples onto the local clock, for the sampler process.

    A token may also come in the URL's password (``http://:TOKEN@host:9109``); it is never
    shown. `pull` never raises: failures are counted in ``errors`` and kept in ``last_error``.
    """

    def __init__(
        self,
        url: str,
        token: str | None = None,
        label: str = "",
        client: httpx.Client | None = None,
        clock: Callable[[], float] = time.time,
        timeout_s: float = 2.0,
    ) -> None:
        self.url, url_secret = _split_url(url)
        token = token or url_secret
        if token is not None and not token.isascii():
            raise UsageError("the agent token must be ASCII (it travels in an HTTP header)")
        self.token = token
        self.label = label or host_label(self.url)
        self.clock = clock
        self.owns_client = client is None
        self.client = client or httpx.Client(
            trust_env=False,
            timeout=timeout_s,
            headers={"Authorization": f"Bearer {token}"} if token else None,
        )
        self.offset_s = 0.0
        self.uncertainty_s: float | None = None
        self.rtt_ms: float | None = None
        self.first_offset_s: float | None = None
        self.drift_s = 0.0  # latest offset minus the first: how far the two clocks walked apart
        self.last_sync = -math.inf
        self.syncs = 0
        self.since: int | None = None
        self.pulled = 0
        self.dropped = 0  # samples the agent's ring buffer lost before they were pulled
        self.errors = 0
        self.last_error: str | None = None
        self.last_pull_unix_s: float | None = None  # local wall clock of the last pull that worked
        self.failures_in_a_row = 0
        self.retry_at = -math.inf

    def _get(self, path: str) -> httpx.Response:
        """GET a route; raises TargetError for an unreachable agent or a refused token."""
        try:
            response = self.client.get(self.url + path)
        except httpx.HTTPError as exc:
            raise TargetError(f"agent {self.url} is unreachable: {_one_line(exc)}") from None
        if response.status_code == 401:
            given = "the given token" if self.token else "no token (none given)"
            raise TargetError(
                f"agent {self.url} refused the token: it answered 401 to {given}; "
                f"set {TOKEN_ENV} to the token the agent was started with"
            )
        if response.status_code != 200:
            raise TargetError(
                f"agent {self.url} answered {path.split('?')[0]} with HTTP {response.status_code}: "
                "is it a loadbench agent?"
            )
        return response

    def _json(self, response: httpx.Response, path: str) -> Any:
        try:
            return response.json()
        except ValueError:
            raise TargetError(f"agent {self.url} answered {path} with something other than JSON") from None

    def start(self) -> dict[str, Any]:
        """Read the agent's facts and estimate the clock offset; the result goes in sampler.json."""
        info = self._json(self._get("/info"), "/info")
        if not isinstance(info, dict):
            raise TargetError(f"agent {self.url} answered /info with something other than an object")
        self.sync()
        seq = info.get("seq")
        # Pull from the last sample taken before the start: the remote series then covers the run
        # from its beginning, without the up-to-30-minute backlog of the ring buffer.
        self.since = max(0, seq - 1) if isinstance(seq, int) else None
        remote = {k: v for k, v in info.items() if k != "seq"}
        return {
            "url": self.url,
            "label": self.label,
            "offset_s": self.offset_s,
            "uncertainty_s": self.uncertainty_s,
            "rtt_ms": self.rtt_ms,
            "remote": remote,
        }

    def sync(self) -> None:
        """Estimate the offset of the agent's clock NTP-style from the fastest of a few round trips."""
        best: tuple[float, float, float] | None = None  # (round trip, t0 + t1, remote)
        for _ in range(SYNC_ROUNDS):
            t0 = self.clock()
            response = self._get("/time")
            t1 = self.clock()  # before parsing: the round trip ends when the answer is in
            remote = self._json(response, "/time")
            if not isinstance(remote, dict) or not isinstance(remote.get("unix_s"), int | float):
                raise TargetError(f"agent {self.url} answered /time without unix_s")
            if best is None or t1 - t0 < best[0]:
                best = (t1 - t0, t0 + t1, float(remote["unix_s"]))
        assert best is not None
        rtt, t_sum, remote_s = best
        # The fastest round trip bounds the error best: the remote reading lies within it.
        self.offset_s = remote_s - t_sum / 2
        self.uncertainty_s = rtt / 2
        self.rtt_ms = round(rtt * 1000, 3)
        if self.first_offset_s is None:
            self.first_offset_s = self.offset_s
        self.drift_s = self.offset_s - self.first_offset_s
        self.syncs += 1
        self.last_sync = time.monotonic()

    def pull(self) -> list[dict[str, Any]]:
        """The samples taken since the last pull, on the local clock with keys ``<label>/<key>``."""
        out: list[dict[str, Any]] = []
        now = time.monotonic()
        if now < self.retry_at:
            return out
        if now - self.last_sync >= RESYNC_EVERY_S:
            try:
                self.sync()
            except Exception as exc:  # keep the previous offset; the samples still come
                self._failed(exc)
                self.last_sync = now  # try again in a minute, not on every pull
        try:
            for _ in range(MAX_PAGES_PER_PULL):
                path = "/samples" if self.since is None else f"/samples?since={self.since}"
                body = self._json(self._get(path), path)
                for sample in body["samples"]:
                    out.append(self._localize(sample))
                self.dropped += int(body.get("dropped", 0))
                self.since = int(body["next"])
                if not body.get("more"):
                    break
        except Exception as exc:  # a lost agent must not end the sampler
            self._failed(exc)
            self.retry_at = time.monotonic() + BACKOFF_S[min(self.failures_in_a_row, len(BACKOFF_S)) - 1]
        else:
            self.failures_in_a_row = 0
            self.last_pull_unix_s = round(self.clock(), 6)
        self.pulled += len(out)
        return out

    def _failed(self, exc: BaseException) -> None:
        self.errors += 1
        self.failures_in_a_row += 1
        line = _one_line(exc)
        if self.token:
            line = line.replace(self.token, "***")  # never in a message, whatever the server echoed
        self.last_error = line if len(line) <= 300 else line[:297] + "..."

    def _localize(self, sample: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {"unix_s": round(float(sample["unix_s"]) - self.offset_s, 6)}
        prefix = self.label + "/"
        for key, value in sample.items():
            if key not in ("seq", "unix_s"):
                out[prefix + key] = value
        return out

    def summary(self) -> dict[str, Any]:
        """How the pulling went (for a final note in the run directory); never holds the token."""
        return {
            "url": self.url,
            "label": self.label,
            "offset_s": self.offset_s,
            "uncertainty_s": self.uncertainty_s,
            "drift_s": self.drift_s,
            "syncs": self.syncs,
            "pulled": self.pulled,
            "dropped": self.dropped,
            "errors": self.errors,
            "last_error": self.last_error,
            "last_pull_unix_s": self.last_pull_unix_s,
        }

    def close(self) -> None:
        if self.owns_client:
            self.client.close()
