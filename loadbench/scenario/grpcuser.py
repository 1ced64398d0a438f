"""gRPC for scenarios: a Locust user that calls the Open Inference Protocol's GRPCInferenceService
and reports every call to Locust's ``request`` event with the fields the HTTP clients report, so
``requests.csv`` is written the same way on both transports (docs/run-format.md):

- ``request_type`` ``gRPC``; ``name`` the method's path (``/inference.GRPCInferenceService/ModelInfer``);
- ``response_time``: ``time.perf_counter()`` ms from just before the call until its answer's bytes
  were in (parsing them comes after, as reading JSON does on the HTTP side); ``start_time`` the
  wall clock at the send; ``response_length`` the answer message's bytes;
- ``response``: a `GrpcReply`, whose ``status_code`` is the HTTP status of a gRPC answer, 200,
  whatever gRPC status the server sent, and 0 when no answer came (gRPC's client library failed
  the call itself: no connection, the deadline), as on the HTTP side; its ``server_message`` is
  the status details when the server sent them (`loadbench.protocols.v2grpc.service.server_words`);
- ``exception``: a failed status is a `GrpcStatusError` whose class is named after the status, so
  the error column reads ``UNAVAILABLE: failed to connect ...``; an answer the scenario refuses
  (no outputs) is Locust's ``CatchResponseError``, as on the HTTP side;
- ``context``: the user's ``context()`` (the open loop's due time) and ``context["loadbench"]``:
  the payload's label and the prediction. No phases (``connect_ms`` ...): gRPC's Python API times
  no part of a call, and its connectivity notices arrive in their own greenlet, after the call
  they belong to as often as not, so they cannot be tied to one; a call that opens the user's
  connection (its first) counts the connect in its latency, as an HTTP request does.

gRPC under gevent: ``grpc.experimental.gevent.init_gevent()`` runs once, when this module is
first imported, before any of the load's channels exist; without it every call would hold
gevent's hub, so the users would take turns (the tests prove they overlap). Discovery calls
made before the load in the same process (`loadbench.protocols.v2grpc.discovery`) block the
process while they last, which is all they need.

Each user has its own channel, hence its own connection (`loadbench.protocols.v2grpc.service`),
as each HTTP user has its own; ``--header`` values go as gRPC metadata; ``--timeout`` is every
call's deadline.

Imports locust: only scenarios and driving code may import this module.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, ClassVar

import grpc
import grpc.experimental.gevent
from google.protobuf.message import DecodeError
from locust import User, constant
from locust.exception import CatchResponseError

from loadbench.protocols.extract import Extractor
from loadbench.protocols.v2grpc import GRPC_REQUEST_TYPE
from loadbench.protocols.v2grpc import grpc_predict_v2_pb2 as pb
from loadbench.protocols.v2grpc.service import (
    MODEL_INFER,
    call_metadata,
    client_made,
    grpc_target,
    open_channel,
    server_words,
)
from loadbench.protocols.v2grpc.tensors import response_json
from loadbench.record.records import EXTRAS_KEY
from loadbench.scenario.helpers import DEFAULT_TIMEOUT_S, Extras, headers_from_options, tls_verify
from loadbench.scenario.labels import request_extras

grpc.experimental.gevent.init_gevent()

REQUEST_TYPE = GRPC_REQUEST_TYPE


class GrpcStatusError(Exception):
    """A call that ended with a status other than ``OK``; each status has a subclass of its name."""

    code: ClassVar[grpc.StatusCode] = grpc.StatusCode.UNKNOWN


_ERRORS: dict[grpc.StatusCode, type[GrpcStatusError]] = {}


def status_error(code: grpc.StatusCode, details: str | None) -> GrpcStatusError:
    """The exception of a failed call: ``UNAVAILABLE('failed to connect ...')``."""
    cls = _ERRORS.get(code)
    if cls is None:
        cls = _ERRORS[code] = type(code.name, (GrpcStatusError,), {"code": code, "__module__": __name__})
    return cls(details or code.name)


@dataclass(frozen=True)
class GrpcReply:
    """The request event's ``response`` of a gRPC call (see the module docstring)."""

    status_code: int
    server_message: str = ""
    headers: None = None  # what HTTP-minded listeners look for: there are no HTTP headers to read


ANSWERED = 200  # the HTTP status of every gRPC answer: the gRPC status travels in its trailers
OK_REPLY = GrpcReply(ANSWERED)


class GrpcClient:
    """A user's channel to the target, calling unary methods with pre-serialized requests."""

    def __init__(self, user: User, url: str, verify: bool, timeout_s: float, headers: dict[str, str]) -> None:
        self.user = user
        self.target = grpc_target(url)
        self.timeout_s = timeout_s
        self.metadata = call_metadata(headers)
        self.request_event = user.environment.events.request
        self.channel = open_channel(self.target, verify)
        self._calls: dict[str, Any] = {}

    def close(self) -> None:
        self.channel.close()

    def _callable(self, path: str) -> Any:
        call = self._calls.get(path)
        if call is None:
            # No (de)serializers: requests go as the bytes prepared at set-up, answers come as bytes.
            call = self._calls[path] = self.channel.unary_unary(path)
        return call

    def streaming(self, path: str) -> Any:
        """The stream-stream callable of ``path``: requests go and answers come as bytes."""
        call = self._calls.get(path)
        if call is None:
            call = self._calls[path] = self.channel.stream_stream(path)
        return call

    def event(self, path: str, extras: Extras) -> dict[str, Any]:
        """The request event's fields of a call about to be sent, as a success so far: the user's
        ``context()`` is asked for here, before the send (`loadbench.drive.inflight` counts on it)."""
        return {
            "request_type": REQUEST_TYPE,
            "name": path,
            "context": {**self.user.context(), EXTRAS_KEY: dict(extras)},
            "start_time": time.time(),
            "url": f"{self.target.url}{path}",
            "response_length": 0,
            "exception": None,
            "response": OK_REPLY,
        }

    def call(self, path: str, request: bytes, extras: Extras) -> tuple[bytes | None, dict[str, Any]]:
        """Send one call; (its answer's bytes, None when it failed; the request event's fields so far,
        to be fired with `fire` once the answer is checked)."""
        meta = self.event(path, extras)
        start = time.perf_counter()
        answer: bytes | None = None
        try:
            answer = self._callable(path)(request, timeout=self.timeout_s, metadata=self.metadata)
        except grpc.RpcError as error:
            failed(meta, error)
        meta["response_time"] = (time.perf_counter() - start) * 1000.0
        if answer is not None:
            meta["response_length"] = len(answer)
        return answer, meta

    def fire(self, meta: dict[str, Any]) -> None:
        self.request_event.fire(**meta)


def failed(meta: dict[str, Any], error: grpc.RpcError) -> None:
    """A call's request event fields once it ended with ``error``'s status (module docstring)."""
    code, details = error.code(), error.details()
    meta["exception"] = status_error(code, details)
    answered = ANSWERED if not client_made(code, details) else 0
    meta["response"] = GrpcReply(answered, server_words(code, details))


class GrpcUser(User):
    """Base user for gRPC endpoints: a channel of its own (``self.client``), no think time.

    The client is made in ``on_start`` from the run's options (``--header``, ``--timeout``,
    ``--insecure``) and closed in ``on_stop``; subclasses add ``@task`` methods.
    """

    abstract = True
    wait_time = constant(0)
    # The client asks for ``context()`` before each call (`GrpcClient.event`), so the requests
    # cut off by the stop can be counted (`loadbench.drive.inflight.counts_starts`).
    context_before_send: ClassVar[bool] = True
    client: GrpcClient

    def on_start(self) -> None:
        options = self.environment.parsed_options
        timeout = float(getattr(options, "timeout", None) or DEFAULT_TIMEOUT_S)
        self.client = GrpcClient(
            self, self.host or "", tls_verify(options), timeout, headers_from_options(options)
        )

    def on_stop(self) -> None:
        client = getattr(self, "client", None)
        if client is not None:
            client.close()


def infer_labelled(user: GrpcUser, request: bytes, meta: Extras, extractor: Extractor) -> None:
    """``ModelInfer`` with a request serialized at set-up, its payload's label in the record; the
    answer must hold outputs; the prediction (``--extract``, on the answer's JSON shape) is recorded."""
    extras = request_extras(meta)
    answer, event = user.client.call(MODEL_INFER.path, request, extras)
    if answer is not None:
        try:
            reply = pb.ModelInferResponse.FromString(answer)
        except DecodeError:
            event["exception"] = CatchResponseError(
                f"invalid response: not a ModelInferResponse ({len(answer)} bytes)"
            )
            reply = None
        if reply is not None and not reply.outputs:
            event["exception"] = CatchResponseError("invalid response: ModelInferResponse holds no outputs")
        elif reply is not None and ("expected" in extras or extractor.explicit):
            predicted = extractor(response_json(reply))
            if predicted:
                event["context"][EXTRAS_KEY]["predicted"] = predicted
    user.client.fire(event)
