"""Open Inference Protocol v2 over gRPC (KServe, Triton, MLServer): ``GRPCInferenceService/ModelInfer``.

    loadbench run --target grpc://HOST:PORT [--scenario kserve_v2_grpc] [--model NAME] [--payload JSON | --data FILE.jsonl]
    locust -f scenarios/kserve_v2_grpc.py --host grpc://HOST:PORT [same options]

The gRPC twin of ``kserve_v2``: the same options, payloads, labels and answers, over the
protocol's gRPC service (``grpcs://`` for TLS, ``--insecure`` to trust any certificate). The
model comes from ``--model`` or the first READY model of ``RepositoryIndex`` (Triton, MLServer;
KServe's base service has no such method: ``UNIMPLEMENTED`` stops the start with one line, pass
``--model NAME``). ``ModelMetadata`` is asked either way: an unknown model stops the start.

What is sent: ``--payload`` / ``--data`` rows in the v2 JSON form (``{"inputs": [{"name",
"shape", "datatype", "data"}]}``), each turned once, at set-up, into a serialized
``ModelInferRequest`` with typed tensor contents, or ``raw_input_contents`` with
``--raw-contents`` (FP16 and BF16 always); an input whose datatype is not the one the model's
metadata declares stops the start. Without either, one request per batch of ``--batch`` rows is
built from the metadata (random values, ``-1`` dimensions set to the batch size), as ``kserve_v2``
does. What was found is said in one line at start. A call is a success when its status is OK and
its ``ModelInferResponse`` holds outputs.

Quality: a ``--data`` line's ``_expected`` is the label its answer should carry; the prediction
is the answer's value at ``--extract PATH`` on its JSON shape (default ``outputs.0.data.0``,
typed or raw outputs alike). See docs/servers.md, "gRPC".

``--stream``: Triton's ``ModelStreamInfer`` instead (a decoupled model answers a request several
times), one stream per request, timed answer by answer into the TTFT / ITL fields the LLM
section of the report reads (`loadbench.scenario.grpcstream`). An answer with ``error_message``
is a failure with the server's words.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from locust import events, task

import loadbench.ui.hook  # noqa: F401 - loadbench's tab in plain locust's web UI
from loadbench.errors import UsageError
from loadbench.protocols.bodies import v2_synthetic_request
from loadbench.protocols.extract import Extractor
from loadbench.protocols.v2grpc import grpc_predict_v2_pb2 as pb
from loadbench.protocols.v2grpc.discovery import find_grpc_model, grpc_model_metadata, require_inputs
from loadbench.protocols.v2grpc.tensors import TensorError, datatype_mismatch, infer_request
from loadbench.scenario import (
    Extras,
    Payloads,
    add_request_options,
    headers_from_options,
    on_setup,
    tls_verify,
)
from loadbench.scenario.grpcstream import stream_infer
from loadbench.scenario.grpcuser import GrpcUser, infer_labelled
from loadbench.scenario.labels import add_extract_option, check_payload_labels, extractor_from_options
from loadbench.scenario.predict import say_at_start
from loadbench.values import is_grpc_url

EXTRACT_DEFAULTS = ("outputs.0.data.0",)  # the first output's first element
REQUESTS: Iterator[tuple[bytes, Extras]] = iter(())
EXTRACTOR: Extractor | None = None


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    parser.add_argument(
        "--model", default=None, help="model name (default: the first READY model of RepositoryIndex)"
    )
    parser.add_argument("--model-version", default="", help="model version (default: the server's choice)")
    parser.add_argument("--batch", type=int, default=1, help="rows per synthetic request (default 1)")
    parser.add_argument(
        "--raw-contents",
        action="store_true",
        help="send tensors as raw_input_contents (little-endian bytes) instead of typed contents",
    )
    parser.add_argument(
        "--stream",
        action="store_true",
        help="call Triton's ModelStreamInfer (decoupled models: several answers per request) and record "
        "the time to the first answer and the gaps between answers as TTFT and ITL",
    )
    add_extract_option(parser, EXTRACT_DEFAULTS)
    add_request_options(parser, payload_help="v2 JSON form; default: random tensors shaped by ModelMetadata.")


def _serialized(
    payloads: Payloads, model: str, version: str, raw: bool, metadata: dict[str, Any]
) -> list[bytes]:
    """Every payload as a ModelInferRequest's bytes, checked against the model's metadata."""
    requests = []
    for number, (body, _) in enumerate(payloads.items, start=1):
        mismatch = datatype_mismatch(body, metadata)
        if mismatch:
            raise UsageError(
                f"payload {number}: {mismatch}: send that datatype, or --model NAME of the model it fits"
            )
        try:
            requests.append(infer_request(body, model, version, raw).SerializeToString())
        except TensorError as exc:
            raise UsageError(f"payload {number}: {exc}") from None
    return requests


@on_setup
def _load(environment: Any) -> None:
    global REQUESTS, EXTRACTOR
    options = environment.parsed_options
    EXTRACTOR = extractor_from_options(options, EXTRACT_DEFAULTS)
    host = environment.host or ""
    if not is_grpc_url(host):
        raise UsageError(
            f"kserve_v2_grpc speaks gRPC: give --target grpc://HOST:PORT (grpcs:// over TLS), not {host!r}; "
            "kserve_v2 is the same protocol over HTTP"
        )
    if options.http2:
        raise UsageError("--http2 does not apply to kserve_v2_grpc: gRPC is always HTTP/2")
    if options.batch < 1:
        raise UsageError(f"--batch must be 1 or more, not {options.batch}")
    headers, verify = headers_from_options(options), tls_verify(options)
    model, said = (options.model, f"model {options.model} (--model)") if options.model else (None, "")
    if model is None:
        model, said = find_grpc_model(host, headers, verify)
    metadata = grpc_model_metadata(host, model, options.model_version, headers, verify)
    default = None
    if not options.payload and not options.data:
        require_inputs(metadata, model)
        default = [v2_synthetic_request(metadata, options.batch, seed) for seed in range(16)]
        tensors = ", ".join(f"{i['name']} {i['datatype']} {i['shape']}" for i in default[0]["inputs"])
        said += f"; random {tensors} from ModelMetadata (--payload or --data for real inputs)"
    payloads = Payloads.from_options(options, default=default)
    check_payload_labels(payloads)
    serialized = _serialized(payloads, model, options.model_version, options.raw_contents, metadata)
    pairs = list(zip(serialized, [meta for _, meta in payloads.items], strict=True))
    REQUESTS = (pairs[i] for i in payloads.indexes())  # in turn, or as --popularity says
    raw = any(pb.ModelInferRequest.FromString(r).raw_input_contents for r in serialized)  # FP16, BF16: raw
    contents = "raw_input_contents" if raw else "typed contents"
    method = "ModelStreamInfer, one stream per request" if options.stream else "ModelInfer"
    say_at_start(environment, f"kserve_v2_grpc: {said}; {len(serialized)} request(s), {contents}; {method}")


class KServeV2GrpcUser(GrpcUser):
    @task
    def infer(self) -> None:
        assert EXTRACTOR is not None
        request, meta = next(REQUESTS)
        if self.environment.parsed_options.stream:
            stream_infer(self, request, meta, EXTRACTOR)
        else:
            infer_labelled(self, request, meta, EXTRACTOR)
