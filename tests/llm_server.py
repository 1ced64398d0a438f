"""A test server speaking OpenAI's chat completions and completions, streamed (SSE) or not,
with a known time to first token and inter-token latency, that records its own timing.

Each streamed request gets a role event, then ``tokens`` content events: the first ``ttft_ms``
after the request line was read, the next ones ``itl_ms`` apart, then (when asked for with
``stream_options.include_usage``) a usage event and ``data: [DONE]``, all in chunked
encoding. The server notes, per request, when it wrote each content event
(``time.perf_counter()``, measured from reading the request line) in ``timings``, with the
wall clock (``time.time()``) at which it read the request line, ``start_unix_s``, so a test can
pair its records with the client's ``start_unix_s``. With ``vary_tokens`` N > 1, the k-th
request (in the order they arrived, from 0) streams ``tokens + k % N`` tokens: a record's token
count then tells apart requests that started close together from several users.

``mode`` breaks the stream on purpose:
``ok``, ``disconnect`` (the connection drops after ``cut_after`` content events), ``junk``
(comments, unknown fields, a line without a colon and an undecodable line between events:
still a good stream), ``badjson`` (one event's data is not JSON), ``nousage`` (never sends
usage), ``nodone`` (the body ends cleanly after the answer's ``finish_reason`` without
``[DONE]``, as transformers serve does: still a good stream), ``noend`` (neither
``finish_reason`` nor ``[DONE]``: the body stops before the answer does), ``interrupted``
(llama.cpp's server interrupting a request for the next one: the role event (chat), then
``data: [DONE]``: no content, no ``finish_reason``), ``doneonly`` (``data: [DONE]`` alone),
``finishedempty`` (no content, then the answer's ``finish_reason`` and a usage of 0 completion
tokens: an answer that did finish, empty), ``cut`` (the content events, then ``data: [DONE]``
with no ``finish_reason`` and no usage: llama-cpp-python's server interrupting a stream after
its first tokens; not streamed, an ordinary answer). Not streamed, ``interrupted`` and ``doneonly``
answer a choice with empty text and no ``finish_reason`` (and no usage), ``finishedempty`` empty
text with ``finish_reason`` ``stop`` and a usage of 0. A request's ``user`` field, when given,
is its mode.
"""

from __future__ import annotations

import itertools
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODEL = "test-llm"
EMPTY_MODES = ("interrupted", "doneonly", "finishedempty")


class LLMTestServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self,
        ttft_ms: float = 40.0,
        itl_ms: float = 10.0,
        tokens: int = 12,
        mode: str = "ok",
        cut_after: int = 4,
        vary_tokens: int = 1,
    ) -> None:
        self.ttft_ms = ttft_ms
        self.vary_tokens = max(1, vary_tokens)
        self.streams = 0  # streamed requests so far
        self.itl_ms = itl_ms
        self.tokens = tokens
        self.mode = mode
        self.cut_after = cut_after
        self.lock = threading.Lock()
        # Per streamed request: {"ttft_ms", "itl_ms": [...], "tokens", "start_unix_s"}, by its clocks.
        self.timings: list[dict[str, Any]] = []
        self.bodies: list[dict[str, Any]] = []
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: LLMTestServer
    _t0 = 0.0
    _start_unix_s = 0.0

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def parse_request(self) -> bool:
        self._t0 = time.perf_counter()  # the request line was just read
        self._start_unix_s = time.time()
        return super().parse_request()

    def _json(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path == "/v1/models":
            self._json(200, {"object": "list", "data": [{"id": MODEL, "object": "model"}]})
        else:
            self._json(404, {"error": "no route"})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        with self.server.lock:
            self.server.bodies.append(body)
        if self.path not in ("/v1/chat/completions", "/v1/completions"):
            self._json(404, {"error": "no route"})
            return
        chat = self.path == "/v1/chat/completions"
        # A request may pick its own mode through OpenAI's "user" field (a data row's field).
        mode = body.get("user") or self.server.mode
        n = self.server.tokens
        if not body.get("stream"):
            self._answer(chat, n, mode)
            return
        with self.server.lock:
            n += self.server.streams % self.server.vary_tokens
            self.server.streams += 1
        self._stream(body, chat, n, mode)

    def _answer(self, chat: bool, n: int, mode: str) -> None:
        """One JSON answer (not streamed); the empty modes answer no text (module docstring)."""
        time.sleep((self.server.ttft_ms + self.server.itl_ms * (n - 1)) / 1000)
        empty = mode in EMPTY_MODES
        text = "" if empty else " ".join(f"w{i}" for i in range(n))
        choice: dict[str, Any] = (
            {"message": {"role": "assistant", "content": text}} if chat else {"text": text}
        )
        choice["finish_reason"] = "stop" if mode == "finishedempty" else None if empty else "length"
        answer: dict[str, Any] = {"id": "x", "choices": [{"index": 0, **choice}]}
        if mode not in ("interrupted", "doneonly"):
            tokens = 0 if empty else n
            answer["usage"] = {"prompt_tokens": 7, "completion_tokens": tokens, "total_tokens": 7 + tokens}
        self._json(200, answer)

    def _chunk(self, text: str | bytes) -> None:
        data = text.encode() if isinstance(text, str) else text
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def _event(self, payload: Any) -> None:
        self._chunk(f"data: {json.dumps(payload)}\n\n")

    def _stream(self, body: dict[str, Any], chat: bool, n: int, mode: str) -> None:
        server = self.server
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if chat and mode != "doneonly":
            self._event({"id": "x", "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]})
        if mode in ("interrupted", "doneonly"):
            self._chunk("data: [DONE]\n\n")
            self.wfile.write(b"0\r\n\r\n")
            self._record([])
            return
        if mode == "finishedempty":
            n = 0
        empty = {"delta": {}} if chat else {"text": ""}
        sent: list[float] = []
        due = self._t0 + server.ttft_ms / 1000
        for i in range(n):
            time.sleep(max(0.0, due - time.perf_counter()))
            if mode == "disconnect" and i == server.cut_after:
                self._record(sent)
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True
                return
            if mode == "badjson" and i == 2:
                self._chunk("data: {not json\n\n")
            if mode == "junk":
                self._chunk(b": keep-alive comment\r\nevent: token\r\nwhatever: 1\r\nnocolon\r\n\xff\xfe\r\n")
            token = f"w{i} "
            choice = {"delta": {"content": token}} if chat else {"text": token}
            self._event({"id": "x", "choices": [{"index": 0, **choice, "finish_reason": None}]})
            sent.append(time.perf_counter())
            due = sent[-1] + server.itl_ms / 1000
        # The answer's end, as OpenAI sends it: an empty delta with its reason.
        if mode not in ("noend", "cut"):
            self._event({"id": "x", "choices": [{"index": 0, **empty, "finish_reason": "length"}]})
        if (body.get("stream_options") or {}).get("include_usage") and mode not in ("nousage", "cut"):
            self._event({"id": "x", "choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": n}})
        if mode not in ("nodone", "noend"):
            self._chunk("data: [DONE]\n\n")
        self.wfile.write(b"0\r\n\r\n")
        self._record(sent)

    def _record(self, sent: list[float]) -> None:
        with self.server.lock:
            self.server.timings.append(
                {
                    "ttft_ms": (sent[0] - self._t0) * 1000 if sent else None,
                    "itl_ms": [(b - a) * 1000 for a, b in itertools.pairwise(sent)],
                    "tokens": len(sent),
                    "start_unix_s": self._start_unix_s,
                }
            )
