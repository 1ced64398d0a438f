"""A fault-injection HTTP/1.1 server on loopback: one hostile behaviour per path.

Raw sockets and threads, for byte-level control (resets, truncated bodies, broken framing).
Every request and what the server did with it is counted, so tests can compare what a load
generator recorded with what really happened on the wire.

Paths (any method; a query string is allowed, e.g. ``/slow?ms=3000``):

``/ok``             200, ``{"outputs": [[1.0]]}``: the one good answer.
``/reset``          reads the request, then resets the connection (SO_LINGER 0, close: RST).
``/close``          reads the request, then closes the connection without answering (FIN).
``/burst5xx``       503 for `burst` requests out of every `burst_period` (counted over the path), else /ok.
``/429``            429 with ``Retry-After: 1`` and ``{"error": "slow down"}``.
``/400``            400 with a model server's JSON error, two in turn: MLServer's ``{"error": ...}``
                    (`FEATURES_ERROR`) and FastAPI's ``{"detail": [{"loc": ..., "msg": ...}]}``.
``/400-evil``       400 with ``{"error": {"message": EVIL_MESSAGE}}``: markup, a bidirectional
                    override, control characters and a table pipe in the server's words.
``/503-text``       503, ``text/plain``, `OVERLOADED_TEXT` (two lines), ``Retry-After`` `RETRY_DATE`.
``/slow?ms=N``      answers /ok after N ms (default 3000); gives up if the client goes away.
``/truncated``      200 with ``Content-Length: 1000``, 10 bytes of it, then closes.
``/badjson``        200, ``application/json``, body ``{"outputs": [1,`` (complete, well framed).
``/sse-malformed``  200 ``text/event-stream``, chunked: a good event, garbage, broken JSON, then a
                    clean end (no ``data: [DONE]``).
``/bad-chunked``    200, chunked, one chunk, then an invalid chunk-size line and a close.
``/sse-done-only``  200 ``text/event-stream``, chunked: ``data: [DONE]`` alone, a clean end (no
                    content, no ``finish_reason``); any path under it too
                    (``/sse-done-only/v1/chat/completions``: a target for the LLM scenarios).
``/sse-forever``    200 ``text/event-stream``, chunked, an event every `event_interval_s`, never
                    ending: until the client leaves, the server stops, or `max_lifetime_s`.
``/huge``           200 with a `huge_bytes` (200 MB) body, streamed from a 1 MiB buffer.
``/hang``           reads the request, never answers: until the client leaves, the server stops
                    or `max_lifetime_s`.
``/redirect-loop``  302 to itself, forever.
``/redirect-to-ok`` 302 to ``/ok``.
``/huge-sse/v1/chat/completions``  200 ``text/event-stream``, chunked: `huge_bytes` (200 MB) of
                    OpenAI chat events, each carrying `HUGE_EVENT_CHARS` characters of content, then
                    a ``finish_reason``, a usage and ``data: [DONE]`` (a target for ``openai_chat``,
                    whose ``GET /huge-sse/`` reachability check gets a 404).
anything else       404.

``refuse_after_s``: that long after the first request for a path other than ``/`` (``/`` is
where a load generator checks that the target is up), the server goes down as a crashed one
would: it closes its listening socket (new connections are refused) and every open connection.

Outcomes counted per path (`count`): ``requests`` (parsed requests), and one of ``ok`` (a good
200 answer sent in full), ``503``, ``429``, ``400``, ``302``, ``404``, ``reset``, ``closed``,
``truncated``, ``badjson``, ``sse-malformed``, ``bad-chunked``, ``sse-done-only``, ``sse-ended``
(a never-ending stream that was ended, with ``sse-events`` counting its events), ``huge`` (sent
in full) or ``huge-aborted``, ``huge-sse`` (sent in full, `huge_sse_bytes` its body's size),
``hang``, ``abandoned`` (the client left before the answer).
``/burst5xx`` also counts ``seen``.

Every loop is bounded in time; `stop` closes every socket and joins every thread.
"""

from __future__ import annotations

import contextlib
import json
import select
import socket
import struct
import threading
import time
from collections import Counter
from types import TracebackType
from urllib.parse import parse_qs, urlsplit

OK_BODY = json.dumps({"outputs": [[1.0]]}).encode()
BAD_JSON = b'{"outputs": [1,'
FEATURES_ERROR = "ValueError: X has 4 features, but StandardScaler is expecting 64 features as input."
UNKNOWN_MODEL = {
    "detail": [{"loc": ["body", "model"], "msg": "unknown model 'digits-v9'", "type": "value_error"}]
}
EVIL_MESSAGE = "<script>document.title='PWNED'</script> \u202egnp.exe\x1b[2J | col | &amp; done"
OVERLOADED_TEXT = b"upstream overloaded: <b>try again</b> later\nretry budget exhausted\n"
RETRY_DATE = "Wed, 21 Oct 2026 07:28:00 GMT"
HUGE_BYTES = 200 * 1000 * 1000
HUGE_EVENT_CHARS = (
    60 * 1024
)  # content per /huge-sse event: lines far longer than a token's, far shorter than the body
MAX_HEADER_BYTES = 64 * 1024
MAX_BODY_BYTES = 1024 * 1024
TICK_S = 0.05
IDLE_KEEPALIVE_S = 30.0


class Gone(Exception):
    """The client went away, or the server is stopping: drop this connection."""


class HostileServer:
    """See the module docstring. Use as a context manager, or `start` / `stop`."""

    def __init__(
        self,
        refuse_after_s: float | None = None,
        huge_bytes: int = HUGE_BYTES,
        burst: int = 3,
        burst_period: int = 10,
        event_interval_s: float = 0.1,
        max_lifetime_s: float = 60.0,
    ) -> None:
        self.refuse_after_s = refuse_after_s
        self.huge_bytes = huge_bytes
        self.burst = burst
        self.burst_period = burst_period
        self.event_interval_s = event_interval_s
        self.max_lifetime_s = max_lifetime_s
        self._counts: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._down = threading.Event()  # refused: the listener and all connections are closed
        self._conns: set[socket.socket] = set()
        self._threads: set[threading.Thread] = set()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(128)
        self._listener.settimeout(TICK_S)
        self.port: int = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._acceptor: threading.Thread | None = None
        self._first_request: float | None = None  # monotonic time of the first non-/ request
        self.down_at: float | None = None  # time.time() when refuse_after_s took the server down
        # /huge: (time.time() at the first byte, at the last or when the client left) of each body.
        self.huge_sends: list[tuple[float, float]] = []
        self.huge_sse_bytes = 0  # the body of a /huge-sse answer (its events, after the chunk framing)

    # --- life cycle ----------------------------------------------------------------------------

    def start(self) -> HostileServer:
        self._acceptor = threading.Thread(target=self._accept_loop, name="hostile-accept", daemon=True)
        self._acceptor.start()
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        """Close every socket and join every thread; raise if a thread is still alive."""
        self._stop.set()
        self._go_down()
        deadline = time.monotonic() + timeout_s
        threads = [self._acceptor] if self._acceptor else []
        with self._lock:
            threads += list(self._threads)
        for thread in threads:
            thread.join(max(deadline - time.monotonic(), 0.01))
        alive = [t.name for t in threads if t.is_alive()]
        if alive:
            raise RuntimeError(f"hostile server threads still alive after {timeout_s} s: {alive}")

    def __enter__(self) -> HostileServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _go_down(self) -> None:
        """Close the listener and end every open connection (idempotent).

        A connection is shut down here (the client sees it end at once); its own thread, which
        notices within `TICK_S`, closes it: never a socket another thread may be waiting on.
        """
        if self._down.is_set():
            return
        self._down.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    # --- counts --------------------------------------------------------------------------------

    def count(self, path: str, outcome: str = "requests") -> int:
        """How many requests to ``path`` ended in ``outcome`` (``requests``: all parsed)."""
        with self._lock:
            return self._counts[(path, outcome)]

    def counts(self) -> dict[str, dict[str, int]]:
        """Every count: {path: {outcome: n}}."""
        out: dict[str, dict[str, int]] = {}
        with self._lock:
            for (path, outcome), n in sorted(self._counts.items()):
                out.setdefault(path, {})[outcome] = n
        return out

    def _add(self, path: str, outcome: str, n: int = 1) -> int:
        """Count; returns the new total of (path, outcome)."""
        with self._lock:
            self._counts[(path, outcome)] += n
            return self._counts[(path, outcome)]

    # --- accepting -----------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        while not self._stop.is_set() and not self._down.is_set():
            if self._refuse_now():
                return
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # the listener was closed
            conn.settimeout(TICK_S)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            thread = threading.Thread(target=self._serve, args=(conn,), name="hostile-conn", daemon=True)
            with self._lock:
                if self._down.is_set():
                    conn.close()
                    return
                self._conns.add(conn)
                self._threads = {t for t in self._threads if t.is_alive()}
                self._threads.add(thread)
            thread.start()

    def _refuse_now(self) -> bool:
        """Go down when `refuse_after_s` has passed; True when down."""
        first = self._first_request
        due = (
            first is not None
            and self.refuse_after_s is not None
            and time.monotonic() - first >= self.refuse_after_s
        )
        if due and not self._down.is_set():
            self.down_at = time.time()
            self._go_down()
        return self._down.is_set()

    # --- one connection ------------------------------------------------------------------------

    def _serve(self, conn: socket.socket) -> None:
        buffer = b""
        try:
            while True:
                head, buffer = self._read_head(conn, buffer)
                request_line, *header_lines = head.decode("latin-1").split("\r\n")
                parts = request_line.split(" ")
                target = parts[1] if len(parts) > 1 else "/"
                headers = {}
                for line in header_lines:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
                length = min(int(headers.get("content-length", "0") or 0), MAX_BODY_BYTES)
                while len(buffer) < length:
                    buffer += self._recv(conn)
                buffer = buffer[length:]
                url = urlsplit(target)
                path = url.path
                self._add(path, "requests")
                if path != "/" and self._first_request is None:
                    self._first_request = time.monotonic()
                keep = self._respond(conn, path, url.query, target)
                if not keep or self._refuse_now() or headers.get("connection", "").lower() == "close":
                    return
        except (Gone, OSError, ValueError):
            pass  # the client left, the server went down, or the request was garbage: drop it
        finally:
            with self._lock:
                self._conns.discard(conn)
            with contextlib.suppress(OSError):
                conn.close()

    def _recv(self, conn: socket.socket, idle_s: float = IDLE_KEEPALIVE_S) -> bytes:
        deadline = time.monotonic() + idle_s
        while time.monotonic() < deadline:
            if self._stop.is_set() or self._down.is_set():
                raise Gone
            try:
                data = conn.recv(65536)
            except TimeoutError:
                continue
            if not data:
                raise Gone
            return data
        raise Gone

    def _read_head(self, conn: socket.socket, buffer: bytes) -> tuple[bytes, bytes]:
        while b"\r\n\r\n" not in buffer:
            if len(buffer) > MAX_HEADER_BYTES:
                raise Gone
            buffer += self._recv(conn)
        head, _, rest = buffer.partition(b"\r\n\r\n")
        return head, rest

    def _send(self, conn: socket.socket, data: bytes | memoryview, deadline: float | None = None) -> None:
        """Send all of ``data`` by ``deadline`` (monotonic; default `max_lifetime_s` from now), or raise `Gone`."""
        view = memoryview(data)
        if deadline is None:
            deadline = time.monotonic() + self.max_lifetime_s
        while view:
            if self._stop.is_set() or self._down.is_set() or time.monotonic() > deadline:
                raise Gone
            try:
                sent = conn.send(view[: 1024 * 1024])
            except TimeoutError:
                continue
            view = view[sent:]

    def _wait(self, conn: socket.socket, seconds: float) -> bool:
        """Wait up to ``seconds``; False as soon as the client closes or the server stops."""
        deadline = time.monotonic() + min(seconds, self.max_lifetime_s)
        while (left := deadline - time.monotonic()) > 0:
            if self._stop.is_set() or self._down.is_set():
                return False
            try:
                readable, _, _ = select.select([conn], [], [], min(TICK_S, left))
            except (OSError, ValueError):
                return False
            if readable:
                try:
                    if not conn.recv(1, socket.MSG_PEEK):
                        return False
                except TimeoutError:
                    pass
                except OSError:
                    return False
                time.sleep(TICK_S)  # the client sent more (a pipelined request): keep waiting
        return True

    @staticmethod
    def _head(status: str, headers: dict[str, str]) -> bytes:
        lines = [f"HTTP/1.1 {status}", *(f"{k}: {v}" for k, v in headers.items())]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def _answer(self, conn: socket.socket, status: str, body: bytes, **extra: str) -> None:
        headers = {"Content-Type": "application/json", "Content-Length": str(len(body)), **extra}
        self._send(conn, self._head(status, headers) + body)

    # --- behaviours ----------------------------------------------------------------------------

    def _respond(self, conn: socket.socket, path: str, query: str, target: str) -> bool:
        """Act out ``path``; True to keep the connection for another request."""
        if path == "/ok":
            self._answer(conn, "200 OK", OK_BODY)
            self._add(path, "ok")
        elif path == "/reset":
            self._add(path, "reset")
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return False
        elif path == "/close":
            self._add(path, "closed")
            return False
        elif path == "/burst5xx":
            n = self._add(path, "seen") - 1
            if n % self.burst_period < self.burst:
                self._answer(conn, "503 Service Unavailable", b'{"error": "overloaded"}')
                self._add(path, "503")
            else:
                self._answer(conn, "200 OK", OK_BODY)
                self._add(path, "ok")
        elif path == "/429":
            self._answer(conn, "429 Too Many Requests", b'{"error": "slow down"}', **{"Retry-After": "1"})
            self._add(path, "429")
        elif path == "/400":
            turn = self._add(path, "400") % 2
            body = {"error": FEATURES_ERROR} if turn else UNKNOWN_MODEL
            self._answer(conn, "400 Bad Request", json.dumps(body).encode())
        elif path == "/400-evil":
            self._answer(conn, "400 Bad Request", json.dumps({"error": {"message": EVIL_MESSAGE}}).encode())
            self._add(path, "400")
        elif path == "/503-text":
            extra = {"Content-Type": "text/plain; charset=utf-8", "Retry-After": RETRY_DATE}
            self._answer(conn, "503 Service Unavailable", OVERLOADED_TEXT, **extra)
            self._add(path, "503")
        elif path == "/slow":
            ms = float(parse_qs(query).get("ms", ["3000"])[0])
            if not self._wait(conn, ms / 1000):
                self._add(path, "abandoned")
                return False
            self._answer(conn, "200 OK", OK_BODY)
            self._add(path, "ok")
        elif path == "/truncated":
            head = self._head("200 OK", {"Content-Type": "application/json", "Content-Length": "1000"})
            self._send(conn, head + b'{"outputs"')
            self._add(path, "truncated")
            return False
        elif path == "/badjson":
            self._answer(conn, "200 OK", BAD_JSON)
            self._add(path, "badjson")
        elif path == "/sse-malformed":
            self._send(conn, self._sse_head())
            for event in (
                b'data: {"token": "a"}\n\n',
                b"this is not a field line\n\n",
                b'data: {"token": \n\n',
                b"\x00\xff\xfe binary\n",
            ):
                self._send(conn, self._chunk(event))
            self._send(conn, b"0\r\n\r\n")
            self._add(path, "sse-malformed")
        elif path == "/sse-done-only" or path.startswith("/sse-done-only/"):
            self._send(conn, self._sse_head() + self._chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n")
            self._add("/sse-done-only", "sse-done-only")
        elif path == "/bad-chunked":
            self._send(conn, self._sse_head() + self._chunk(b'data: {"token": "a"}\n\n') + b"zz\r\nxx\r\n")
            self._add(path, "bad-chunked")
            return False
        elif path == "/sse-forever":
            self._send(conn, self._sse_head())
            deadline = time.monotonic() + self.max_lifetime_s
            try:
                while time.monotonic() < deadline and self._wait(conn, self.event_interval_s):
                    self._send(conn, self._chunk(b'data: {"token": "x"}\n\n'))
                    self._add(path, "sse-events")
            finally:
                self._add(path, "sse-ended")
            return False
        elif path == "/huge":
            head = self._head(
                "200 OK", {"Content-Type": "application/octet-stream", "Content-Length": str(self.huge_bytes)}
            )
            self._send(conn, head)
            block = b"x" * (1024 * 1024)
            left = self.huge_bytes
            deadline = time.monotonic() + self.max_lifetime_s
            began = time.time()
            try:
                while left > 0:
                    piece = block if left >= len(block) else block[:left]
                    self._send(conn, piece, deadline)
                    left -= len(piece)
            except (Gone, OSError):
                self._add(path, "huge-aborted")
                raise
            finally:
                with self._lock:
                    self.huge_sends.append((began, time.time()))
            self._add(path, "huge")
        elif path == "/hang":
            self._wait(conn, self.max_lifetime_s)
            self._add(path, "hang")
            return False
        elif path == "/redirect-loop":
            self._send(conn, self._head("302 Found", {"Location": target, "Content-Length": "0"}))
            self._add(path, "302")
        elif path == "/redirect-to-ok":
            self._send(conn, self._head("302 Found", {"Location": "/ok", "Content-Length": "0"}))
            self._add(path, "302")
        elif path == "/huge-sse/v1/chat/completions":
            self._huge_sse(conn)
            self._add(path, "huge-sse")
        else:
            self._answer(conn, "404 Not Found", b'{"error": "no such path"}')
            self._add(path, "404")
        return True

    def _huge_sse(self, conn: socket.socket) -> None:
        """`huge_bytes` of chat events, each a line of `HUGE_EVENT_CHARS` characters, then the end."""
        event = (
            b"data: %s\n\n"
            % json.dumps({"choices": [{"delta": {"content": "x" * HUGE_EVENT_CHARS}}]}).encode()
        )
        ending = (
            b"".join(
                b"data: %s\n\n" % json.dumps(payload).encode()
                for payload in (
                    {"choices": [{"delta": {}, "finish_reason": "length"}]},
                    {"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 1}},
                )
            )
            + b"data: [DONE]\n\n"
        )
        events = max(1, (self.huge_bytes - len(ending)) // len(event))
        self.huge_sse_bytes = events * len(event) + len(ending)
        deadline = time.monotonic() + self.max_lifetime_s
        self._send(conn, self._sse_head())
        block = self._chunk(event * 16)
        for _ in range(events // 16):
            self._send(conn, block, deadline)
        self._send(conn, self._chunk(event * (events % 16) + ending) + b"0\r\n\r\n", deadline)

    @staticmethod
    def _sse_head() -> bytes:
        return HostileServer._head(
            "200 OK",
            {
                "Content-Type": "text/event-stream",
                "Transfer-Encoding": "chunked",
                "Cache-Control": "no-cache",
            },
        )

    @staticmethod
    def _chunk(data: bytes) -> bytes:
        return b"%x\r\n%s\r\n" % (len(data), data)
