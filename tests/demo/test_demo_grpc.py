"""The demo's Open Inference Protocol over gRPC (`loadbench.demo.grpcserver`, ``loadbench demo
--grpc-port``): the HTTP side's model and answers, its errors as gRPC statuses, the spawner's
gRPC URL. The demo runs as a real child process; calls are made with grpcio here."""

from __future__ import annotations

import json
import socket
import urllib.request
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from grpc_servers import demo_grpc_process
from helpers import DIGITS, run_cli

from loadbench.demo.spawn import spawn_demo, stop_demo
from loadbench.protocols.v2grpc import grpc_predict_v2_pb2 as pb
from loadbench.protocols.v2grpc import repository_index_pb2 as ri
from loadbench.protocols.v2grpc.service import (
    MODEL_INFER,
    MODEL_METADATA,
    REPOSITORY_INDEX,
    SERVER_METADATA,
    grpc_target,
    open_channel,
    unary,
)
from loadbench.protocols.v2grpc.tensors import infer_request, response_json

ROWS = [json.loads(line) for line in DIGITS.read_text(encoding="utf-8").splitlines()[:40]]


@pytest.fixture(scope="module")
def demo() -> Iterator[tuple[str, grpc.Channel]]:
    with demo_grpc_process() as (http, url), open_channel(grpc_target(url)) as channel:
        yield http, channel


def v2_body(rows: list[list[int]]) -> dict[str, Any]:
    return {"inputs": [{"name": "input-0", "shape": [len(rows), 64], "datatype": "FP32", "data": rows}]}


def http_infer(http: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(
        f"{http}/v2/models/digits/infer",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())


def grpc_infer(channel: grpc.Channel, body: dict[str, Any], raw: bool = False, model: str = "digits") -> Any:
    reply = unary(channel, MODEL_INFER, infer_request(body, model, raw=raw), pb.ModelInferResponse, 30)
    return reply


@pytest.mark.parametrize("raw", [False, True])
def test_grpc_answers_what_http_answers(demo: tuple[str, grpc.Channel], raw: bool) -> None:
    http, channel = demo
    body = v2_body([row["inputs"][0] for row in ROWS])
    reply = grpc_infer(channel, body, raw)
    # Raw in, raw out, as Triton answers; typed in, typed out.
    assert bool(reply.raw_output_contents) is raw
    answer = response_json(reply)
    assert answer["outputs"] == http_infer(http, body)["outputs"]
    labels = answer["outputs"][0]["data"]
    assert sum(label == row["_expected"] for label, row in zip(labels, ROWS, strict=True)) >= 36  # > 0.9


def test_discovery_methods_describe_the_http_sides_model(demo: tuple[str, grpc.Channel]) -> None:
    http, channel = demo
    with urllib.request.urlopen(f"{http}/v2/models/digits", timeout=30) as answer:
        metadata = json.loads(answer.read())
    reply = unary(
        channel, MODEL_METADATA, pb.ModelMetadataRequest(name="digits"), pb.ModelMetadataResponse, 30
    )
    assert [(t.name, t.datatype, list(t.shape)) for t in reply.inputs] == [
        (t["name"], t["datatype"], t["shape"]) for t in metadata["inputs"]
    ]
    server = unary(channel, SERVER_METADATA, pb.ServerMetadataRequest(), pb.ServerMetadataResponse, 30)
    assert server.name == "loadbench-demo"
    index = unary(channel, REPOSITORY_INDEX, ri.RepositoryIndexRequest(), ri.RepositoryIndexResponse, 30)
    assert [(m.name, m.state) for m in index.models] == [("digits", "READY")]


@pytest.mark.parametrize(
    ("body", "model", "code", "details"),
    [
        (
            {"inputs": [{"name": "input-0", "shape": [1, 10], "datatype": "FP32", "data": [1] * 10}]},
            "digits",
            grpc.StatusCode.INVALID_ARGUMENT,
            "input shape [1, 10] is not [N, 64]",  # what POST /v2/models/digits/infer answers (400)
        ),
        (v2_body([[1] * 64]), "nosuch", grpc.StatusCode.NOT_FOUND, "model 'nosuch' not found"),
        # Over gRPC's default 4 MiB: refused by the server's gRPC before the model sees it.
        (
            {
                "inputs": [
                    {"name": "input-0", "shape": [17_000, 64], "datatype": "FP32", "data": [0.5] * 1_088_000}
                ]
            },
            "digits",
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "SERVER: Received message larger than max",
        ),
    ],
)
def test_errors_are_statuses_with_the_http_sides_words(
    demo: tuple[str, grpc.Channel], body: dict[str, Any], model: str, code: grpc.StatusCode, details: str
) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        grpc_infer(demo[1], body, model=model)
    assert caught.value.code() == code
    assert details in caught.value.details()


def test_the_spawner_gives_the_grpc_url_and_a_bad_grpc_port_is_one_line() -> None:
    process, url = spawn_demo(0.0, grpc=True)
    try:
        assert url.startswith("grpc://127.0.0.1:")
        with open_channel(grpc_target(url)) as channel:
            assert response_json(grpc_infer(channel, v2_body([ROWS[0]["inputs"][0]])))["outputs"][0][
                "shape"
            ] == [1]
    finally:
        stop_demo(process)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("demo", "--port", "0", "--grpc-port", str(port), timeout=60)
    assert result.returncode == 2
    assert result.stderr.startswith(f"loadbench: error: the demo cannot listen on 127.0.0.1:{port} for gRPC")
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
