"""Triton's ``ModelStreamInfer`` from a `loadbench.scenario.grpcuser.GrpcUser`, timed answer by answer.

A decoupled model answers one request any number of times on the bidirectional stream (an LLM
one answer per token or chunk). Each request is a stream of its own: the one request is sent,
the sending side closed at once, and the answers read until the server ends the stream (Triton
ends it once the requests it was sent are answered in full). One stream per request keeps a
request's answers apart from the next one's without Triton's ``triton_final_response`` flags,
and costs what a unary call costs: one HTTP/2 stream on the user's connection.

Timing, as the SSE path's (docs/metrics.md, "LLM streaming"): ``time.perf_counter()`` just
before the stream is opened, and as each answer's bytes are in (parsing comes after). The
request event carries the end-to-end time as ``response_time``, every answer's bytes as
``response_length``, and under ``context["loadbench"]``: ``ttft_ms`` (to the first answer that
holds outputs), ``itl_ms`` (the gaps between such answers), ``output_tokens`` (their count,
``tokens_source`` ``counted``): the fields the analyzer's LLM section reads, unchanged.

A failure keeps the timings measured until then. An answer with ``error_message`` (Triton's
refusal of a request inside the stream) is a failure whose ``server_message`` is those words;
a failed status is recorded as a unary call's is; a stream whose answers held no outputs is the
failure ``empty stream``.

Imports locust: only scenarios and driving code may import this module.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

import grpc
from google.protobuf.message import DecodeError
from locust.exception import CatchResponseError

from loadbench.protocols.extract import Extractor
from loadbench.protocols.v2grpc import grpc_predict_v2_pb2 as pb
from loadbench.protocols.v2grpc import repository_index_pb2 as ri
from loadbench.protocols.v2grpc.service import MODEL_STREAM_INFER
from loadbench.protocols.v2grpc.tensors import response_json
from loadbench.record.records import EXTRAS_KEY
from loadbench.scenario.grpcuser import ANSWERED, GrpcReply, GrpcUser, failed
from loadbench.scenario.helpers import Extras
from loadbench.scenario.labels import request_extras


class StreamErrorMessage(Exception):
    """A ``ModelStreamInferResponse`` whose ``error_message`` was set: the server refused the request."""


class StreamTimes:
    """What one stream's answers were: when those with outputs arrived, their bytes, the last one."""

    def __init__(self, sent_s: float) -> None:
        self.sent_s = sent_s
        self.arrivals: list[float] = []
        self.length = 0
        self.error_message = ""
        self.last: pb.ModelInferResponse | None = None

    def add(self, answer: bytes, now_s: float) -> None:
        """One answer's bytes, in at ``now_s``; DecodeError when they are no ModelStreamInferResponse."""
        self.length += len(answer)
        reply = ri.ModelStreamInferResponse.FromString(answer)
        if reply.error_message:
            self.error_message = reply.error_message
        elif reply.infer_response.outputs:
            self.arrivals.append(now_s)
            self.last = reply.infer_response

    def extras(self) -> dict[str, Any]:
        """The ``context["loadbench"]`` fields the SSE path records (module docstring)."""
        times = self.arrivals
        return {
            "ttft_ms": (times[0] - self.sent_s) * 1000.0 if times else None,
            "itl_ms": [(b - a) * 1000.0 for a, b in itertools.pairwise(times)],
            "output_tokens": len(times),
            "tokens_source": "counted",
        }


def stream_infer(user: GrpcUser, request: bytes, meta: Extras, extractor: Extractor) -> None:
    """``ModelStreamInfer`` with a request serialized at set-up (module docstring); its payload's
    label in the record, the prediction (``--extract``) read from the last answer with outputs."""
    extras = request_extras(meta)
    client = user.client
    event = client.event(MODEL_STREAM_INFER.path, extras)
    sent_s = time.perf_counter()
    stream = StreamTimes(sent_s)
    try:
        answers = client.streaming(MODEL_STREAM_INFER.path)(
            iter((request,)), timeout=client.timeout_s, metadata=client.metadata
        )
        for answer in answers:
            stream.add(answer, time.perf_counter())
    except grpc.RpcError as error:
        failed(event, error)
    except DecodeError:
        answers.cancel()
        event["exception"] = CatchResponseError("invalid response: not a ModelStreamInferResponse")
    event["response_time"] = (time.perf_counter() - sent_s) * 1000.0
    event["response_length"] = stream.length
    if event["exception"] is None:
        if stream.error_message:
            event["exception"] = StreamErrorMessage(stream.error_message)
            event["response"] = GrpcReply(ANSWERED, stream.error_message)
        elif stream.last is None:
            event["exception"] = CatchResponseError("empty stream: no answer held outputs")
    recorded = event["context"][EXTRAS_KEY]
    recorded.update(stream.extras())
    if stream.last is not None and ("expected" in extras or extractor.explicit):
        predicted = extractor(response_json(stream.last))
        if predicted:
            recorded["predicted"] = predicted
    client.fire(event)
