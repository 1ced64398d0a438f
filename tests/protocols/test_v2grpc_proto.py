"""The gRPC messages loadbench sends are the Open Inference Protocol's, field numbers and all, and
the committed ``*_pb2.py`` are what protoc makes of the committed ``.proto`` files (`make protos`)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType

import pytest
from google.protobuf import descriptor_pb2

from loadbench.protocols.v2grpc import grpc_predict_v2_pb2, repository_index_pb2

REPO = Path(__file__).resolve().parents[2]
PROTOS = {
    "loadbench/protocols/v2grpc/grpc_predict_v2.proto": grpc_predict_v2_pb2,
    "loadbench/protocols/v2grpc/repository_index.proto": repository_index_pb2,
}

# KServe's published grpc_predict_v2.proto (and Triton's RepositoryIndex messages): every field's
# number. A client whose numbers differ sends fields a server reads as others, or not at all.
PUBLISHED = {
    "ServerLiveResponse": {"live": 1},
    "ServerReadyResponse": {"ready": 1},
    "ModelReadyRequest": {"name": 1, "version": 2},
    "ModelReadyResponse": {"ready": 1},
    "ServerMetadataResponse": {"name": 1, "version": 2, "extensions": 3},
    "ModelMetadataRequest": {"name": 1, "version": 2},
    "ModelMetadataResponse": {"name": 1, "versions": 2, "platform": 3, "inputs": 4, "outputs": 5},
    "ModelMetadataResponse.TensorMetadata": {"name": 1, "datatype": 2, "shape": 3},
    "ModelInferRequest": {
        "model_name": 1, "model_version": 2, "id": 3, "parameters": 4, "inputs": 5, "outputs": 6,
        "raw_input_contents": 7,
    },
    "ModelInferRequest.InferInputTensor": {"name": 1, "datatype": 2, "shape": 3, "parameters": 4, "contents": 5},
    "ModelInferRequest.InferRequestedOutputTensor": {"name": 1, "parameters": 2},
    "ModelInferResponse": {
        "model_name": 1, "model_version": 2, "id": 3, "parameters": 4, "outputs": 5, "raw_output_contents": 6,
    },
    "ModelInferResponse.InferOutputTensor": {"name": 1, "datatype": 2, "shape": 3, "parameters": 4, "contents": 5},
    "InferParameter": {"bool_param": 1, "int64_param": 2, "string_param": 3},
    "InferTensorContents": {
        "bool_contents": 1, "int_contents": 2, "int64_contents": 3, "uint_contents": 4, "uint64_contents": 5,
        "fp32_contents": 6, "fp64_contents": 7, "bytes_contents": 8,
    },
    "RepositoryIndexRequest": {"repository_name": 1, "ready": 2},
    "RepositoryIndexResponse": {"models": 1},
    "RepositoryIndexResponse.ModelIndex": {"name": 1, "version": 2, "state": 3, "reason": 4},
    "ModelStreamInferResponse": {"error_message": 1, "infer_response": 2},
}  # fmt: skip
TRITONS = ("Repository", "ModelStreamInfer")  # messages of repository_index.proto
SERVICE_METHODS = ["ServerLive", "ServerReady", "ModelReady", "ServerMetadata", "ModelMetadata", "ModelInfer"]


def message(name: str) -> object:
    module: ModuleType = repository_index_pb2 if name.startswith(TRITONS) else grpc_predict_v2_pb2
    found: object = module
    for part in name.split("."):
        found = getattr(found, part)
    return found


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_every_field_has_its_published_number(name: str) -> None:
    descriptor = message(name).DESCRIPTOR  # type: ignore[attr-defined]
    assert descriptor.full_name == f"inference.{name}"
    assert {f.name: f.number for f in descriptor.fields} == PUBLISHED[name]


def test_the_service_is_kserves() -> None:
    service = grpc_predict_v2_pb2.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    assert service.full_name == "inference.GRPCInferenceService"
    assert [m.name for m in service.methods] == SERVICE_METHODS
    for method in service.methods:
        assert (method.input_type.name, method.output_type.name) == (
            f"{method.name}Request",
            f"{method.name}Response",
        )
        assert not method.client_streaming and not method.server_streaming


def test_the_committed_stubs_are_what_protoc_makes_of_the_proto_files(tmp_path: Path) -> None:
    # Compared as descriptors, not as text: another grpcio-tools writes other text for the same messages.
    descriptor_set = tmp_path / "protos.pb"
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", "-I.", f"--descriptor_set_out={descriptor_set}", *PROTOS],
        cwd=REPO,
        check=True,
        capture_output=True,
        timeout=60,
    )
    made = descriptor_pb2.FileDescriptorSet.FromString(descriptor_set.read_bytes())
    assert [f.name for f in made.file] == list(PROTOS)
    for generated, module in zip(made.file, PROTOS.values(), strict=True):
        committed = descriptor_pb2.FileDescriptorProto()
        module.DESCRIPTOR.CopyToProto(committed)
        without_json_names(generated.message_type)  # protoc adds them to the set, never to *_pb2.py
        assert committed == generated, f"{generated.name}: run `make protos` and commit the *_pb2.py(i)"


def without_json_names(messages: Iterable[descriptor_pb2.DescriptorProto]) -> None:
    for found in messages:
        for field in found.field:
            field.ClearField("json_name")
        without_json_names(found.nested_type)
