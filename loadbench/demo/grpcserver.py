"""The demo's Open Inference Protocol over gRPC: the HTTP side's digits model and service time,
behind KServe's ``GRPCInferenceService`` (``loadbench demo --grpc-port PORT``).

Methods: ``ServerLive``, ``ServerReady``, ``ModelReady``, ``ServerMetadata``, ``ModelMetadata``,
``ModelInfer``, and ``RepositoryIndex`` and ``ModelStreamInfer`` as Triton serves them (the HTTP side answers
``POST /v2/repository/index`` too). ``ModelInfer`` takes what ``POST /v2/models/digits/infer``
takes (one numeric tensor of shape [N, 64]) as typed contents or ``raw_input_contents``, checked
by the same code (`loadbench.demo.model.v2_rows`), waits the same service time (``--latency-ms``,
``--jitter-ms``, ``--service-dist``), in the HTTP side's queue with ``--workers``, and answers ``output-0`` INT64 [N]: raw when the request was raw, as Triton
answers. A bad request is ``INVALID_ARGUMENT`` with the HTTP side's message, another model
``NOT_FOUND``; a message over gRPC's default 4 MiB is refused by gRPC itself
(``RESOURCE_EXHAUSTED``). ``ModelStreamInfer`` answers each request of the stream as a decoupled
model does, several times (`StreamPace`), and a refused one with ``error_message``. Each call runs in a thread of a pool of `MAX_WORKERS`, so that many
calls wait out their service time side by side.

Never imports Locust or gevent: it runs in the demo's own process.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.message import Message

from loadbench import __version__
from loadbench.demo.model import (
    MODEL_NAME,
    MODEL_VERSION,
    BadRequest,
    DemoModel,
    predict,
    v2_metadata,
    v2_rows,
)
from loadbench.protocols.v2grpc import grpc_predict_v2_pb2 as pb
from loadbench.protocols.v2grpc import repository_index_pb2 as ri
from loadbench.protocols.v2grpc.service import (
    MODEL_STREAM_INFER,
    REPOSITORY_INDEX,
    SERVICE,
    SERVICE_NAME,
    Method,
    declared,
)
from loadbench.protocols.v2grpc.tensors import request_json

MAX_WORKERS = 256
SERVER_NAME = "loadbench-demo"


@dataclass(frozen=True)
class StreamPace:
    """How ``ModelStreamInfer`` answers each request (``--grpc-stream-responses``, ``--llm-itl-ms``)."""

    responses: int = 4
    gap_s: float = 0.008


class Refused(Exception):
    """A request the model does not take: the gRPC status and the words to answer with."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


class DemoInference:
    """The service's methods, each ``(request, context) -> reply``."""

    def __init__(
        self, model: DemoModel, service_delay: Callable[[], None], stream: StreamPace | None = None
    ) -> None:
        self.model = model
        self.service_delay = service_delay
        self.stream = stream or StreamPace()

    def ServerLive(self, request: pb.ServerLiveRequest, context: grpc.ServicerContext) -> Message:
        return pb.ServerLiveResponse(live=True)

    def ServerReady(self, request: pb.ServerReadyRequest, context: grpc.ServicerContext) -> Message:
        return pb.ServerReadyResponse(ready=True)

    def ModelReady(self, request: pb.ModelReadyRequest, context: grpc.ServicerContext) -> Message:
        self._known(request.name, request.version, context)
        return pb.ModelReadyResponse(ready=True)

    def ServerMetadata(self, request: pb.ServerMetadataRequest, context: grpc.ServicerContext) -> Message:
        return pb.ServerMetadataResponse(name=SERVER_NAME, version=__version__)

    def ModelMetadata(self, request: pb.ModelMetadataRequest, context: grpc.ServicerContext) -> Message:
        self._known(request.name, request.version, context)
        metadata = v2_metadata()
        reply = pb.ModelMetadataResponse(
            name=metadata["name"], versions=metadata["versions"], platform=metadata["platform"]
        )
        for spec in metadata["inputs"]:
            reply.inputs.add(name=spec["name"], datatype=spec["datatype"], shape=spec["shape"])
        for spec in metadata["outputs"]:
            reply.outputs.add(name=spec["name"], datatype=spec["datatype"], shape=spec["shape"])
        return reply

    def ModelInfer(self, request: pb.ModelInferRequest, context: grpc.ServicerContext) -> Message:
        try:
            return self.answer(request)
        except Refused as exc:
            context.abort(exc.code, str(exc))

    def ModelStreamInfer(
        self, requests: Iterator[pb.ModelInferRequest], context: grpc.ServicerContext
    ) -> Iterator[Message]:
        """Triton's stream, as a decoupled model answers: `StreamPace.responses` answers per request,
        the first after the service time, the others `StreamPace.gap_s` apart; a refused request
        is one answer with ``error_message`` (Triton's way: the stream goes on)."""
        for request in requests:
            try:
                reply = self.answer(request)
            except Refused as exc:
                yield ri.ModelStreamInferResponse(error_message=str(exc))
                continue
            for number in range(self.stream.responses):
                if number:
                    time.sleep(self.stream.gap_s)
                yield ri.ModelStreamInferResponse(infer_response=reply)

    def answer(self, request: pb.ModelInferRequest) -> pb.ModelInferResponse:
        """The model's answer after the service time; `Refused` for another model or a bad request."""
        refusal = self._refusal(request.model_name, request.model_version)
        if refusal:
            raise Refused(grpc.StatusCode.NOT_FOUND, refusal)
        try:
            labels, _ = predict(self.model, v2_rows(request_json(request)))
        except BadRequest as exc:
            raise Refused(grpc.StatusCode.INVALID_ARGUMENT, str(exc)) from None
        self.service_delay()
        reply = pb.ModelInferResponse(model_name=MODEL_NAME, model_version=MODEL_VERSION, id=request.id)
        output = reply.outputs.add(name="output-0", datatype="INT64", shape=[len(labels)])
        if request.raw_input_contents:
            reply.raw_output_contents.append(
                b"".join(int(label).to_bytes(8, "little", signed=True) for label in labels)
            )
        else:
            output.contents.int64_contents.extend(labels)
        return reply

    def RepositoryIndex(self, request: ri.RepositoryIndexRequest, context: grpc.ServicerContext) -> Message:
        reply = ri.RepositoryIndexResponse()
        reply.models.add(name=MODEL_NAME, version=MODEL_VERSION, state="READY")
        return reply

    def _known(self, name: str, version: str, context: grpc.ServicerContext) -> None:
        refusal = self._refusal(name, version)
        if refusal:
            context.abort(grpc.StatusCode.NOT_FOUND, refusal)

    @staticmethod
    def _refusal(name: str, version: str) -> str:
        if name != MODEL_NAME:
            return f"model {name!r} not found"
        if version and version != MODEL_VERSION:
            return f"model {name!r} has no version {version!r}"
        return ""


def _handler(
    method: Method, behaviour: Callable[[Any, grpc.ServicerContext], Message]
) -> grpc.RpcMethodHandler:
    return grpc.unary_unary_rpc_method_handler(
        behaviour,
        request_deserializer=method.request.FromString,
        response_serializer=method.reply.SerializeToString,
    )


def service_handler(inference: DemoInference) -> grpc.GenericRpcHandler:
    """Every method the service declares (from the generated descriptor), and RepositoryIndex."""
    handlers = {name: _handler(declared(name), getattr(inference, name)) for name in SERVICE.methods_by_name}
    handlers["RepositoryIndex"] = _handler(REPOSITORY_INDEX, inference.RepositoryIndex)
    handlers["ModelStreamInfer"] = grpc.stream_stream_rpc_method_handler(
        inference.ModelStreamInfer,
        request_deserializer=MODEL_STREAM_INFER.request.FromString,
        response_serializer=MODEL_STREAM_INFER.reply.SerializeToString,
    )
    return grpc.method_handlers_generic_handler(SERVICE_NAME, handlers)


def start_grpc_server(
    model: DemoModel,
    service_delay: Callable[[], None],
    host: str = "127.0.0.1",
    port: int = 0,
    credentials: grpc.ServerCredentials | None = None,
    stream: StreamPace | None = None,
) -> tuple[grpc.Server, int]:
    """Serve the demo's model over gRPC on ``host:port`` (0: a free port), TLS with ``credentials``,
    ``ModelStreamInfer`` at ``stream``'s pace; returns the started server and its port. OSError
    when it cannot bind."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=MAX_WORKERS, thread_name_prefix="demo-grpc"))
    server.add_generic_rpc_handlers((service_handler(DemoInference(model, service_delay, stream)),))
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        bound = (
            server.add_secure_port(address, credentials) if credentials else server.add_insecure_port(address)
        )
    except RuntimeError:  # gRPC's "Failed to bind to address ..."; older versions return 0
        bound = 0
    if not bound:
        raise OSError("the port is in use, or the address is not one of this host's")
    server.start()
    return server, bound
