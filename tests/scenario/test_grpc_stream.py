"""``kserve_v2_grpc --stream`` end to end: ``python -m loadbench run`` against the demo's
``ModelStreamInfer`` in a child process (several answers per request, a known gap), its records'
TTFT / ITL fields and the LLM section the analyzer and report build from them, the server's own
words when it refuses a request inside the stream, and a server without the method.
Locust stays in the child processes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_servers import demo_grpc_process, grpc_serving
from helpers import read_json, run_cli

from loadbench.demo.model import v2_metadata
from loadbench.protocols.v2grpc import grpc_predict_v2_pb2 as pb
from loadbench.record.columnar import read_run_requests

pytestmark = pytest.mark.e2e
STREAM = "/inference.GRPCInferenceService/ModelStreamInfer"
# 1 s: 2 users finish a stream every ~90 ms (the service time and the gaps), some 20 in all.
QUICK = ("-u", "2", "-d", "1s", "--warmup", "0s", "--no-sampler")
ANSWERS, GAP_MS, SERVICE_MS = 5, 20.0, 10.0


@pytest.fixture(scope="module")
def demo() -> Iterator[str]:
    """The demo's gRPC URL: every streamed request answered `ANSWERS` times, `GAP_MS` apart."""
    options = ("--grpc-stream-responses", str(ANSWERS), "--llm-itl-ms", str(GAP_MS))
    with demo_grpc_process(SERVICE_MS, *options) as (_, target):
        yield target


def loadbench(out: Path, *args: str) -> Any:
    return run_cli("run", "--out", str(out), *args)


def test_each_answer_is_timed_into_ttft_and_itl_and_the_llm_section_reads_them(
    demo: str, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    result = loadbench(out, "--target", demo, "--stream", *QUICK)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "ModelStreamInfer, one stream per request" in result.stderr
    requests = read_run_requests(out)
    assert len(requests) >= 5
    assert set(requests["name"]) == {STREAM} and requests["ok"].all()
    assert (requests["output_tokens"] == ANSWERS).all()
    assert (requests["tokens_source"] == "counted").all()
    gaps = [[float(g) for g in text.split()] for text in requests["itl_ms"]]
    assert all(len(g) == ANSWERS - 1 for g in gaps)
    # The first answer cannot come before the service time, nor the last before every gap too;
    # all of them are in before the stream ends.
    assert (requests["ttft_ms"] >= SERVICE_MS).all()
    last = requests["ttft_ms"] + [sum(g) for g in gaps]
    assert (last >= SERVICE_MS + (ANSWERS - 1) * GAP_MS).all()
    assert (last <= requests["latency_ms"] + 0.01).all()
    summary = read_json(out / "summary.json")
    assert summary["ttft_ms"]["min"] >= SERVICE_MS
    assert summary["itl_ms"]["p50"] >= GAP_MS / 2
    assert summary["tokens"]["output_total"] == ANSWERS * summary["tokens"]["requests"] > 0
    assert "TTFT" in (out / "report.html").read_text(encoding="utf-8")


def test_an_error_message_in_the_stream_is_a_failure_in_the_servers_words(demo: str, tmp_path: Path) -> None:
    # 2 values a row: the demo's model takes 64, and says so as Triton does, inside the stream.
    payload = {"inputs": [{"name": "input-0", "shape": [1, 2], "datatype": "FP32", "data": [0.5, 0.5]}]}
    out = tmp_path / "run"
    args = ("--target", demo, "--stream", "--payload", json.dumps(payload), *QUICK)
    refused = loadbench(tmp_path / "refused", *args)
    result = loadbench(out, *args, "--no-preflight")
    assert refused.returncode == 2 and "64" in refused.stderr, refused.stderr[-2000:]
    assert result.returncode == 3, result.stderr[-3000:]
    requests = read_run_requests(out)
    assert len(requests) > 0 and not requests["ok"].any()
    assert (requests["status"] == 200).all()
    words = requests["server_message"].iloc[0]
    assert "64" in words and (requests["server_message"] == words).all()
    assert (requests["error"] == f"StreamErrorMessage: {words}").all()
    assert requests["ttft_ms"].isna().all()


def test_a_server_without_model_stream_infer_answers_unimplemented(tmp_path: Path) -> None:
    def metadata(request: Any, context: grpc.ServicerContext) -> pb.ModelMetadataResponse:
        reply = pb.ModelMetadataResponse(name=request.name)
        for spec in v2_metadata()["inputs"]:
            reply.inputs.add(name=spec["name"], datatype=spec["datatype"], shape=spec["shape"])
        return reply

    with grpc_serving({"ModelMetadata": metadata}) as target:
        out = tmp_path / "run"
        result = loadbench(out, "--target", target, "--scenario", "kserve_v2_grpc", "--stream",
                           "--model", "digits", "--no-preflight", *QUICK)  # fmt: skip
    assert result.returncode == 3, result.stderr[-3000:]
    requests = read_run_requests(out)
    assert (requests["error"] == "UNIMPLEMENTED: Method not found!").all()
    assert (requests["server_message"] == "Method not found!").all()
