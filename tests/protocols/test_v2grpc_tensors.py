"""The v2 JSON form to protobuf and back (`loadbench.protocols.v2grpc.tensors`), and the small
pieces of `loadbench.protocols.v2grpc.service`: pure functions, no server."""

from __future__ import annotations

import struct
from typing import Any

import grpc
import numpy as np
import pytest

from loadbench.protocols.v2grpc import grpc_predict_v2_pb2 as pb
from loadbench.protocols.v2grpc.service import call_metadata, client_made, grpc_target, server_words
from loadbench.protocols.v2grpc.tensors import (
    TensorError,
    datatype_mismatch,
    infer_request,
    metadata_json,
    request_json,
    response_json,
)

# (datatype, data as JSON holds it, the contents field it travels in when typed)
TENSORS = [
    ("BOOL", [True, False, True], "bool_contents"),
    ("INT8", [-128, 0, 127], "int_contents"),
    ("INT16", [-32768, 5, 32767], "int_contents"),
    ("INT32", [-(2**31), 7, 2**31 - 1], "int_contents"),
    ("INT64", [-(2**63), 9, 2**63 - 1], "int64_contents"),
    ("UINT8", [0, 200, 255], "uint_contents"),
    ("UINT16", [0, 1, 65535], "uint_contents"),
    ("UINT32", [0, 3, 2**32 - 1], "uint_contents"),
    ("UINT64", [0, 4, 2**64 - 1], "uint64_contents"),
    ("FP32", [0.5, -1.25, 3.0], "fp32_contents"),
    ("FP64", [0.1, -2.5e300, 7.0], "fp64_contents"),
    ("BYTES", ["a", "", "héllo"], "bytes_contents"),
]


def body(datatype: str, data: Any, shape: list[int] | None = None) -> dict[str, Any]:
    return {"inputs": [{"name": "x", "datatype": datatype, "shape": shape or [len(data)], "data": data}]}


@pytest.mark.parametrize(("datatype", "data", "field"), TENSORS)
@pytest.mark.parametrize("raw", [False, True])
def test_every_datatype_goes_and_comes_back_unchanged(
    datatype: str, data: Any, field: str, raw: bool
) -> None:
    request = infer_request(body(datatype, data), "m", "2", raw=raw)
    assert (request.model_name, request.model_version) == ("m", "2")
    assert list(request.inputs[0].shape) == [3]
    if raw:
        assert len(request.raw_input_contents) == 1 and not request.inputs[0].HasField("contents")
    else:
        assert not request.raw_input_contents
        assert len(getattr(request.inputs[0].contents, field)) == 3
    # Through the wire format, as a server reads it.
    again = request_json(pb.ModelInferRequest.FromString(request.SerializeToString()))
    expected = list(np.asarray(data, dtype="<f4").tolist()) if datatype == "FP32" else data
    assert again["inputs"] == [{"name": "x", "datatype": datatype, "shape": [3], "data": expected}]


def test_raw_contents_are_little_endian_rows_and_bytes_are_length_prefixed() -> None:
    request = infer_request(body("INT32", [[1, 2], [3, 4]], [2, 2]), "m", raw=True)
    assert request.raw_input_contents[0] == struct.pack("<4i", 1, 2, 3, 4)  # nested data: row-major
    request = infer_request(body("BYTES", ["ab", "c"]), "m", raw=True)
    assert request.raw_input_contents[0] == b"\x02\x00\x00\x00ab\x01\x00\x00\x00c"


def test_fp16_and_bf16_have_no_typed_field_so_the_request_goes_raw() -> None:
    two = {
        "inputs": [
            {"name": "h", "datatype": "FP16", "shape": [2], "data": [1.5, -2.0]},
            {"name": "f", "datatype": "FP32", "shape": [1], "data": [3.0]},
        ]
    }
    request = infer_request(two, "m")  # raw not asked for: every input raw, as the protocol requires
    assert request.raw_input_contents[0] == np.asarray([1.5, -2.0], dtype="<f2").tobytes()
    assert request.raw_input_contents[1] == struct.pack("<f", 3.0)
    bf16 = infer_request(body("BF16", [1.0, -2.5, 3.140625]), "m")
    # BF16 is the upper half of an FP32: 1.0 = 0x3F80, -2.5 = 0xC020, 3.140625 = 0x4049.
    assert bf16.raw_input_contents[0] == struct.pack("<3H", 0x3F80, 0xC020, 0x4049)
    assert request_json(bf16)["inputs"][0]["data"] == [1.0, -2.5, 3.140625]


def test_ids_parameters_and_requested_outputs_are_kept() -> None:
    row = body("FP32", [1.0]) | {
        "id": 42,
        "parameters": {"content_type": "np", "priority": 3, "sequence_start": True},
        "outputs": [{"name": "probabilities", "parameters": {"binary_data": False}}],
    }
    request = infer_request(row, "m")
    assert request.id == "42"
    assert request.parameters["content_type"].string_param == "np"
    assert request.parameters["priority"].int64_param == 3
    assert request.parameters["sequence_start"].bool_param is True
    assert request.outputs[0].name == "probabilities"
    assert request.outputs[0].parameters["binary_data"].bool_param is False
    assert request_json(request)["parameters"] == {
        "content_type": "np",
        "priority": 3,
        "sequence_start": True,
    }


@pytest.mark.parametrize(
    ("row", "words"),
    [
        ({"instances": [[1, 2]]}, 'non-empty "inputs" list'),
        ({"inputs": []}, 'non-empty "inputs" list'),
        ({"inputs": [{"datatype": "FP32", "shape": [1], "data": [1]}]}, 'with a "name"'),
        (body("FP8", [1]), "datatype 'FP8' is not one of"),
        (body("FP32", [1], shape=["1"]), '"shape" must be a list of whole numbers'),
        (body("FP32", "1,2"), 'input x: "data" must be a list'),
        (body("FP32", ["1.0"]), "input x: FP32 data must be numbers"),
        (body("INT32", [1.5]), "input x: INT32 data must be whole numbers"),
        (body("INT8", [128]), "input x: INT8 data must lie in [-128, 127]"),
        (body("UINT8", [-1]), "input x: UINT8 data must lie in [0, 255]"),
        (body("BOOL", ["yes"]), "input x: BOOL data must be true/false"),
        (body("BYTES", [1]), "input x: BYTES data must be strings"),
        (body("FP32", [1]) | {"parameters": {"t": 0.5}}, "parameters are booleans, integers or strings"),
    ],
)
def test_a_row_that_cannot_be_sent_names_what_is_wrong(row: Any, words: str) -> None:
    with pytest.raises(TensorError) as caught:
        infer_request(row, "m")
    assert words in str(caught.value)


def test_answers_read_alike_typed_or_raw_as_triton_sends_them() -> None:
    typed = pb.ModelInferResponse(model_name="m", model_version="1", id="r")
    out = typed.outputs.add(name="labels", datatype="INT64", shape=[2])
    out.contents.int64_contents.extend([7, 3])
    raw = pb.ModelInferResponse(model_name="m", model_version="1", id="r")
    raw.outputs.add(name="labels", datatype="INT64", shape=[2])
    raw.raw_output_contents.append(struct.pack("<2q", 7, 3))
    raw.outputs.add(name="text", datatype="BYTES", shape=[1])
    raw.raw_output_contents.append(b"\x03\x00\x00\x00cat")
    expected = {"name": "labels", "datatype": "INT64", "shape": [2], "data": [7, 3]}
    assert response_json(typed) == {"model_name": "m", "model_version": "1", "id": "r", "outputs": [expected]}
    answer = response_json(raw)
    assert answer["outputs"][0] == expected
    assert answer["outputs"][1]["data"] == ["cat"]


def test_metadata_in_the_http_shape_and_datatypes_checked_against_it() -> None:
    reply = pb.ModelMetadataResponse(name="digits", versions=["1"], platform="sklearn")
    reply.inputs.add(name="input-0", datatype="FP32", shape=[-1, 64])
    metadata = metadata_json(reply)
    assert metadata == {
        "name": "digits",
        "versions": ["1"],
        "platform": "sklearn",
        "inputs": [{"name": "input-0", "datatype": "FP32", "shape": [-1, 64]}],
        "outputs": [],
    }
    fits = {"inputs": [{"name": "input-0", "datatype": "fp32", "shape": [1, 64], "data": [0] * 64}]}
    assert datatype_mismatch(fits, metadata) is None
    wrong = {"inputs": [{"name": "input-0", "datatype": "INT32", "shape": [1, 64], "data": [0] * 64}]}
    assert datatype_mismatch(wrong, metadata) == "input input-0 is INT32, but the model's metadata says FP32"
    # An input the metadata does not declare, or metadata with no inputs (MLServer's): nothing to check.
    assert datatype_mismatch(body("INT32", [1]), metadata) is None
    assert datatype_mismatch(wrong, {"name": "digits", "inputs": []}) is None


def test_targets_headers_and_whose_words_a_status_holds() -> None:
    assert grpc_target("grpc://127.0.0.1:8001").address == "127.0.0.1:8001"
    tls = grpc_target("grpcs://[::1]:443")
    assert (tls.address, tls.tls, tls.url) == ("[::1]:443", True, "grpcs://[::1]:443")
    assert call_metadata({"Authorization": " Bearer t ", "X-Id": "1"}) == (
        ("authorization", "Bearer t"),
        ("x-id", "1"),
    )
    code = grpc.StatusCode
    assert server_words(code.INVALID_ARGUMENT, "expected 64 features") == "expected 64 features"
    assert server_words(code.RESOURCE_EXHAUSTED, "SERVER: Received message larger than max (5 vs. 4)")
    assert (
        server_words(code.RESOURCE_EXHAUSTED, "Stream removed (CLIENT: Received message larger than max)")
        == ""
    )
    refused = "failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:1: Connection refused"
    assert client_made(code.UNAVAILABLE, refused) and server_words(code.UNAVAILABLE, refused) == ""
    assert client_made(code.DEADLINE_EXCEEDED, "Deadline Exceeded")
    # A server may answer DEADLINE_EXCEEDED or UNAVAILABLE itself, in its own words.
    assert not client_made(code.DEADLINE_EXCEEDED, "model queue timeout after 100 ms")
    assert server_words(code.UNAVAILABLE, "model digits is not ready") == "model digits is not ready"
