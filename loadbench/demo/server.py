"""The embedded demo endpoint: a real digits classifier behind a real HTTP server.

Consumes nothing from the network: at start-up it trains a scikit-learn classifier on the training part of
``sklearn.datasets.load_digits()`` (bundled with scikit-learn, deterministic split with ``random_state=0``)
and serves it over HTTP/1.1 with keep-alive. It is the default target of ``make bench`` and of the end-to-end
tests, and runs in its own process, so it must never import locust or gevent.

Produces HTTP responses, all ``application/json`` and all carrying ``X-Service-Time-Ms`` (the server's own
handling time in ms, with the injected delay; with ``workers``, less the wait for a worker), on these routes:

    GET  /health                          {"status": "ok"}
    POST /predict                         {"inputs": [[64 numbers], ...]} or {"inputs": [64 numbers]}
                                          -> {"predictions", "probabilities", "model": "digits"}
    GET  /v2, /v2/health/*, /v2/models/<model>[/versions/1][/ready], POST .../infer, POST
         /v2/repository/index             the Open Inference Protocol v2 (`loadbench.demo.routes_v2`):
                                          "digits" and its variants (`loadbench.demo.variants`)
    POST /asr                             a speech-recognition stand-in: the body is WAV bytes (audio/wav)
                                          -> {"text", "duration_s", "model": "asr-sim"}, answered after
                                          asr_rtf x the audio's duration (--asr-rtf, default 0.3)
    GET  /v1/models                       the OpenAI-style list of the LLM simulator ({"data": [...]})
                                          and KServe v1's model list ({"models": ["digits"]}) in one
    POST /v1/chat/completions             the LLM simulator (`loadbench.demo.llmsim`): timed words, not a
    POST /v1/completions                  model; streamed (SSE) or not; first token after llm_ttft_ms,
                                          the next ones llm_itl_ms apart (--llm-ttft-ms, --llm-itl-ms)
    POST /v1/embeddings                   OpenAI embeddings under the simulator's model: hashed word
                                          vectors (`loadbench.demo.embeddings`)
    GET  /v1/models/digits[/versions/1][/metadata], POST /v1/models/digits[/versions/1]:predict
                                          TF Serving REST and KServe v1 (`loadbench.demo.routes_v1`)
    GET  /ping, /models, /models/digits   TorchServe's inference and management APIs, on this one
    POST /predictions/digits[/1.0]        port (`loadbench.demo.routes_v1`)

With ``grpc_port`` (``--grpc-port``), the Open Inference Protocol over gRPC on that port too, the same model
and service time (`loadbench.demo.grpcserver`). With ``replica_name`` (`loadbench.demo.replicas`), every
response carries ``X-Served-By``. With ``caches`` (``--cache``, ``--llm-prefix-cache``:
`loadbench.demo.cache`), every prediction of the HTTP routes goes through a response cache (``X-Cache:
HIT``/``MISS``), the LLM simulator through a prefix cache, and ``GET /cache`` gives their own counts.

Errors are JSON ``{"error": "..."}``: 400 for malformed JSON or a wrong shape, 404 for an unknown route or
model, 405 for a known route with the wrong method, 500 for anything unexpected; the OpenAI routes answer
OpenAI's ``{"error": {"message", "code"}}``, TorchServe's and TF Serving's routes their servers' own error
shapes. Every prediction (``/predict``, ``infer``, ``:predict``, ``/predictions``, ``/v1/embeddings``) sleeps
a service time before answering successfully, a known floor for tests: ``latency_ms + uniform(0, jitter_ms)``
or drawn from ``service_dist`` (`loadbench.demo.service`). With ``workers`` (``--workers C``), at most C sleep
at once and the others wait in a FIFO queue (shared with gRPC); their answers also carry ``X-Queue-Time-Ms``
(the wait for a worker, ms) and ``X-Service-Time-Ms`` is the time holding one (the queue's service time:
parsing and the model's arithmetic run outside it, in parallel).

The payload file ``loadbench/data/digits.jsonl`` (``PAYLOAD_PATH``) is written by
`loadbench.demo.model.write_payload_file`.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from http.server import ThreadingHTTPServer
from types import FrameType
from typing import TYPE_CHECKING, Any

from loadbench import __version__
from loadbench.data import DIGITS_JSONL
from loadbench.demo import embeddings, llmsim, routes_v1, routes_v2
from loadbench.demo.args import check_service, demo_parser
from loadbench.demo.cache import NO_CACHES, DemoCaches, cached_answer, caches_from_args
from loadbench.demo.model import (
    MODEL_NAME,
    BadRequest,
    DemoModel,
    HTTPError,
    allow,
    build_model,
    predict,
)
from loadbench.demo.model import write_payload_file as write_payload_file  # its old home's name, kept
from loadbench.demo.replicas import replica_plan, serve_replicas
from loadbench.demo.service import Service, ServiceTime
from loadbench.demo.variants import Repository
from loadbench.errors import LoadbenchError, UsageError
from loadbench.jsonhttp import JSONRequestHandler
from loadbench.protocols.media import MediaError, wav_duration_s
from loadbench.redact import argv_secrets, scrub

if TYPE_CHECKING:
    import grpc

PAYLOAD_PATH = DIGITS_JSONL
ASR_PATH = "/asr"
DEFAULT_ASR_RTF = 0.3  # processing time / audio duration of the demo's speech recognizer

# Larger bodies are refused rather than buffered: the demo is a benchmark target, not a data sink.
_MAX_BODY_BYTES = 64 * 1024 * 1024


class _DemoServer(ThreadingHTTPServer):
    """The threaded HTTP server, holding the model and the injected service (time and queue)."""

    daemon_threads = True
    # The stdlib's listen backlog of 5 drops connections when many users connect at once.
    request_queue_size = 128
    caches = NO_CACHES  # none: make_server sets those asked for (`loadbench.demo.cache`)

    def __init__(
        self,
        address: tuple[str, int],
        model: DemoModel,
        service: Service,
        asr_rtf: float = DEFAULT_ASR_RTF,
        llm_timing: llmsim.SimulatorTiming | None = None,
        replica_name: str | None = None,
    ) -> None:
        self.model = model
        self.models = Repository(model)  # what the v2 routes serve: the model and its variants
        self.replica_name = replica_name  # X-Served-By on every response (None: no header)
        self.llm_timing = llm_timing or llmsim.SimulatorTiming()
        self.service = service
        self.asr_rtf = asr_rtf
        super().__init__(address, _DemoHandler)

    def service_delay(self) -> None:
        """Take a prediction's service time, waiting for a worker first if there is a queue."""
        self.service.serve()


class _DemoHandler(JSONRequestHandler):
    """Routes requests; every response, error or not, is JSON with a Content-Length."""

    server_version = f"loadbench-demo/{__version__}"
    server: _DemoServer
    _t0: float = 0.0
    # This request's wait for a worker and its time holding one, once it has queued.
    _queued: tuple[float, float] | None = None
    _served = False

    def parse_request(self) -> bool:
        # Called right after the request line is read: the start of handling this request.
        self._t0, self._queued = time.perf_counter(), None
        return super().parse_request()

    def extra_headers(self) -> dict[str, str]:
        elapsed_s = time.perf_counter() - self._t0
        if self._queued is None:
            return {"X-Service-Time-Ms": f"{elapsed_s * 1000.0:.3f}"}
        # The time holding a worker, queueing theory's service time: parsing and arithmetic run outside it.
        queued_s, served_s = self._queued
        return {
            "X-Service-Time-Ms": f"{served_s * 1000.0:.3f}",
            "X-Queue-Time-Ms": f"{queued_s * 1000.0:.3f}",
        }

    def end_headers(self) -> None:
        if self.server.replica_name is not None:  # here, not in extra_headers: streams too
            self.send_header("X-Served-By", self.server.replica_name)
        super().end_headers()

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        if not getattr(self, "command", None):
            # The request line was unreadable, so parse_request() never started the clock.
            self._t0, self._queued = time.perf_counter(), None
        super().send_error(code, message, explain)

    def _serve(self) -> None:
        """A prediction's service time (`_DemoServer.service_delay`), its wait kept for the headers."""
        self._queued, self._served = self.server.service.serve(), True

    def _read_json(self) -> Any:
        raw = self._read_body()
        if not raw.strip():
            raise BadRequest("request body is empty; expected JSON")
        try:
            return json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BadRequest(f"request body is not valid JSON: {exc}") from None

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True  # the unread chunked body would corrupt the next request
            raise HTTPError(411, "chunked bodies are not supported; send Content-Length")
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            self.close_connection = True
            raise BadRequest("Content-Length is not an integer") from None
        if length < 0 or length > _MAX_BODY_BYTES:
            self.close_connection = True
            raise HTTPError(413, f"body of {length} bytes is over the {_MAX_BODY_BYTES} byte limit")
        raw = self.rfile.read(length) if length else b""
        if len(raw) < length:
            self.close_connection = True
            raise BadRequest("request body ended before Content-Length bytes")
        return raw

    def _dispatch(self, method: str) -> None:
        with self.failures_answered():
            try:
                # Read the body before routing so that keep-alive survives 404s on POST.
                path = self.path.split("?", 1)[0]
                body = None
                if method == "POST":
                    body = self._read_body() if path == ASR_PATH else self._read_json()
                if method == "POST" and path in llmsim.ROUTES:
                    self._complete(path, body)
                    return
                self._served = False  # a model's answer (`_serve`), the only kind the response cache keeps
                cache = self.server.caches.response if method == "POST" else None
                compute = lambda: (*self._route(method, path, body), self._served)  # noqa: E731
                status, payload, said = cached_answer(cache, path, body, compute)
                self.send_json(status, payload, said)
            except BadRequest as exc:
                self.send_json(400, {"error": str(exc)})
            except llmsim.SimulatorError as exc:
                self.send_json(exc.status, {"error": {"message": str(exc), "code": exc.status}})
            except HTTPError as exc:
                self.send_json(exc.status, exc.payload, exc.headers)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _route(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        fixed = _FIXED_ROUTES.get(path)
        if fixed is not None:
            allowed, answer = fixed
            allow(method, allowed)
            return 200, answer(self, body)
        if path in llmsim.ROUTES:
            allow(method, "POST")
        server = self.server
        for route in (routes_v1.v1_route, routes_v1.torchserve_route):
            answered = route(method, path, body, server.model, self._serve)
            if answered is not None:
                return answered
        answered = routes_v2.v2_route(method, path, body, server.models, self._serve)
        if answered is None:
            raise HTTPError(404, f"no route for {method} {path}")
        return answered

    def _embed(self, body: Any) -> dict[str, Any]:
        answer = embeddings.embed(body)
        self._serve()
        return answer

    def _predict(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict) or "inputs" not in body:
            raise BadRequest('request body must be a JSON object with an "inputs" key')
        labels, probabilities = predict(self.server.model, body["inputs"])
        self._serve()
        return {"predictions": labels, "probabilities": probabilities, "model": MODEL_NAME}

    def _complete(self, path: str, body: Any) -> None:
        # The LLM simulator writes its own response: a stream cannot go through send_json.
        timing = self.server.llm_timing
        if isinstance(body, dict) and body.get("stream") is True:
            llmsim.stream(self, path, body, timing, self._t0)
        else:
            self.send_json(200, llmsim.answer(path, body, timing, self._t0))

    def _transcribe(self, audio: bytes) -> dict[str, Any]:
        # A stand-in for speech recognition: it takes asr_rtf x the audio's duration.
        try:
            duration_s = wav_duration_s(audio)
        except MediaError as exc:
            raise BadRequest(f"{exc}; POST the bytes of a WAV file") from None
        time.sleep(self.server.asr_rtf * duration_s)
        return {
            "text": f"[{duration_s:.2f} s of audio]",
            "duration_s": round(duration_s, 6),
            "model": "asr-sim",
        }


# path -> (method, answer(handler, body)); not the LLM simulator's completions: they stream their own.
_FIXED_ROUTES: dict[str, tuple[str, Callable[[_DemoHandler, Any], Any]]] = {
    "/health": ("GET", lambda handler, body: {"status": "ok"}),
    "/predict": ("POST", _DemoHandler._predict),
    ASR_PATH: ("POST", _DemoHandler._transcribe),
    # One list, two protocols: OpenAI clients read "data" (the LLM simulator), KServe v1 ones "models".
    "/v1/models": ("GET", lambda handler, body: {**llmsim.models(), "models": [MODEL_NAME]}),
    "/v1/embeddings": ("POST", _DemoHandler._embed),
    "/cache": ("GET", lambda handler, body: handler.server.caches.counts()),  # the caches' own counts
}


def make_server(
    host: str = "127.0.0.1",
    port: int = 0,
    latency_ms: float = 0.0,
    jitter_ms: float = 0.0,
    asr_rtf: float = DEFAULT_ASR_RTF,
    llm_ttft_ms: float = llmsim.SimulatorTiming.ttft_ms,
    llm_itl_ms: float = llmsim.SimulatorTiming.itl_ms,
    *,
    workers: int | None = None,
    service_dist: str = "uniform",
    service_cv: float = 1.0,
    seed: int | None = None,
    model: DemoModel | None = None,
    replica_name: str | None = None,
    caches: DemoCaches = NO_CACHES,
) -> ThreadingHTTPServer:
    """Train the model (unless given one) and bind the server (port 0: a free one); ``serve_forever`` serves.
    ``workers``: at most that many predictions in service at once, the others waiting in arrival order (None:
    no limit); ``service_dist``, ``service_cv``, ``seed``: `loadbench.demo.service`; ``replica_name``: the
    X-Served-By header's value (None: no header). ValueError for a timing it cannot serve."""
    service = Service(ServiceTime(latency_ms, jitter_ms, service_dist, service_cv), workers, seed)
    if not 0 <= asr_rtf < float("inf"):
        raise ValueError("asr_rtf must be a finite number >= 0")
    if not (0 <= llm_ttft_ms < float("inf") and 0 <= llm_itl_ms < float("inf")):
        raise ValueError("llm_ttft_ms and llm_itl_ms must be finite numbers >= 0")
    timing = llmsim.SimulatorTiming(llm_ttft_ms, llm_itl_ms, caches.prefill_ms_per_token, caches.prefix)
    server = _DemoServer((host, port), model or build_model(), service, asr_rtf, timing, replica_name)
    server.caches = caches  # ``caches``: `loadbench.demo.cache.DemoCaches`, GET /cache their counts
    return server


def serve_demo(
    host: str = "127.0.0.1",
    port: int = 8000,
    latency_ms: float = 0.0,
    jitter_ms: float = 0.0,
    asr_rtf: float = DEFAULT_ASR_RTF,
    llm_ttft_ms: float = llmsim.SimulatorTiming.ttft_ms,
    llm_itl_ms: float = llmsim.SimulatorTiming.itl_ms,
    parent_pid: int | None = None,
    grpc_port: int | None = None,
    grpc_stream_responses: int = 4,
    *,
    workers: int | None = None,
    service_dist: str = "uniform",
    service_cv: float = 1.0,
    seed: int | None = None,
    caches: DemoCaches = NO_CACHES,
) -> None:
    """Serve the demo until SIGTERM or SIGINT, announcing the URL(s) in one stdout line. ``parent_pid``: also
    stop when that process is gone (`loadbench run --demo` starts the demo in its own session, out of reach of
    the terminal's Ctrl-C: if the run dies, so does the demo). ``grpc_port``: also serve the Open Inference
    Protocol over gRPC there (`loadbench.demo.grpcserver`), ``ModelStreamInfer`` answering
    ``grpc_stream_responses`` times per request, ``llm_itl_ms`` apart. ``workers`` and the service time's
    distribution: `make_server`. `UsageError` for an unbindable address (in use, unknown host, bad port)."""
    try:
        server = make_server(
            *(host, port, latency_ms, jitter_ms, asr_rtf, llm_ttft_ms, llm_itl_ms),
            workers=workers,
            service_dist=service_dist,
            service_cv=service_cv,
            seed=seed,
            caches=caches,
        )
    except (OSError, OverflowError) as exc:  # socket.gaierror is an OSError
        reason = getattr(exc, "strerror", None) or str(exc)
        raise UsageError(f"the demo cannot listen on {host}:{port}: {reason}") from None
    except ValueError as exc:
        raise UsageError(f"the demo's timing: {exc}") from None
    bound_host, bound_port = server.server_address[:2]
    grpc_server, grpc_said = None, ""
    if grpc_port is not None:
        assert isinstance(server, _DemoServer)  # make_server's, typed as its public base
        grpc_server, bound_grpc = _serve_grpc(server, host, grpc_port, grpc_stream_responses, llm_itl_ms)
        grpc_said = f"; gRPC on grpc://{bound_host!s}:{bound_grpc}"

    def stop(signum: int, frame: FrameType | None) -> None:
        # shutdown() waits for serve_forever() to return, which runs in this very (main) thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    if parent_pid is not None:

        def watch_parent() -> None:
            # Orphaned processes are re-parented (to init or a subreaper): the pid changes.
            while os.getppid() == parent_pid:
                time.sleep(0.5)
            server.shutdown()

        threading.Thread(target=watch_parent, name="loadbench-demo-parent", daemon=True).start()
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        print(
            f"loadbench demo: serving a digits classifier on http://{bound_host!s}:{bound_port} "
            f"(POST /predict, Open Inference Protocol v2 at /v2/models/{MODEL_NAME}){grpc_said}",
            flush=True,
        )
        server.serve_forever(poll_interval=0.05)  # a stop is served within 50 ms, not 0.5 s
    finally:
        server.server_close()
        if grpc_server is not None:
            grpc_server.stop(grace=None)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _serve_grpc(
    server: _DemoServer, host: str, port: int, stream_responses: int, itl_ms: float
) -> tuple[grpc.Server, int]:
    """Start the gRPC side beside ``server`` (same model, same service and queue); the started
    gRPC server and its port. `UsageError`, ``server`` closed, when it cannot."""
    from loadbench.demo.grpcserver import StreamPace, start_grpc_server  # grpcio: only when serving gRPC

    if stream_responses < 1:
        server.server_close()
        raise UsageError(f"--grpc-stream-responses must be 1 or more, not {stream_responses}")
    pace = StreamPace(stream_responses, itl_ms / 1000)
    try:
        return start_grpc_server(server.model, server.service_delay, host, port, stream=pace)
    except OSError as exc:
        server.server_close()
        raise UsageError(f"the demo cannot listen on {host}:{port} for gRPC: {exc}") from None


def serve_from_args(args: argparse.Namespace) -> None:
    """Serve as the parsed `loadbench demo` options (`loadbench.demo.args`) say."""
    check_service(args.service_dist, args.service_cv, args.jitter_ms)  # before the model is trained
    caches = caches_from_args(args)
    if (plan := replica_plan(args))[0].name is not None:  # several replicas: `loadbench.demo.replicas`
        return serve_replicas(args, plan, make_server)
    serve_demo(
        args.host,
        args.port,
        plan[0].latency_ms,
        args.jitter_ms or 0.0,
        args.asr_rtf,
        args.llm_ttft_ms,
        args.llm_itl_ms,
        args.parent_pid,
        args.grpc_port,
        args.grpc_stream_responses,
        workers=args.workers,
        service_dist=args.service_dist,
        service_cv=1.0 if args.service_cv is None else args.service_cv,
        seed=args.seed,
        caches=caches,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Stand-alone entry point: ``python -m loadbench.demo[.server] ...`` is ``loadbench demo ...``,
    with the same options, checks, messages and exit codes, without loading the command line's stages."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        serve_from_args(demo_parser().parse_args(argv))
    except LoadbenchError as exc:
        print(f"loadbench: error: {scrub(str(exc), argv_secrets(argv))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("loadbench: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
