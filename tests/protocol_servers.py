"""Stand-in model servers, one per endpoint kind, on loopback: each answers its protocol's routes
as the real server does (the shapes from TF Serving's, KServe's, Triton's, MLServer's,
TorchServe's and OpenAI's API documentation) and records every request as ``(method, path, body bytes)`` in ``state["seen"]``.

`protocol_server(kind)` yields ``(url, state)``; ``kind`` is a key of `ROUTES`. An HTTP/2 server
(hypercorn, h2c) for the ``--http2`` path is in `h2_server`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from helpers import json_server

Answer = tuple[int, Any]
OPENAI_MODELS = {"object": "list", "data": [{"id": "e5-small", "object": "model", "owned_by": "me"}]}
TFS_STATUS = {
    "model_version_status": [
        {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
    ]
}


def _tensor(dtype: str, *dims: int) -> dict[str, Any]:
    # TF Serving's TensorInfo in JSON: sizes are strings (int64 in the protobuf's JSON mapping).
    shape = {"dim": [{"size": str(d), "name": ""} for d in dims], "unknown_rank": False}
    return {"dtype": dtype, "tensor_shape": shape, "name": "serving_default_x:0"}


TFS_METADATA = {
    "model_spec": {"name": "half_plus_two", "signature_name": "", "version": "1"},
    "metadata": {
        "signature_def": {
            "signature_def": {
                "serving_default": {
                    "inputs": {"x": _tensor("DT_FLOAT", -1)},
                    "outputs": {"y": _tensor("DT_FLOAT", -1)},
                    "method_name": "tensorflow/serving/predict",
                }
            }
        }
    },
}


def _tfserving(method: str, path: str, body: Any) -> Answer:
    if (method, path) == ("GET", "/v1/models/half_plus_two"):
        return 200, TFS_STATUS
    if (method, path) == ("GET", "/v1/models/half_plus_two/metadata"):
        return 200, TFS_METADATA
    if method == "GET" and path.startswith("/v1/models/"):
        name = path.removeprefix("/v1/models/")
        return 404, {"error": f"Could not find any versions of model {name}"}
    if (method, path) == ("POST", "/v1/models/half_plus_two:predict") and isinstance(body, dict):
        if "instances" in body:
            return 200, {"predictions": [x / 2 + 2 for x in body["instances"]]}
        if "inputs" in body:
            return 200, {"outputs": [x / 2 + 2 for x in body["inputs"]]}
        return 400, {"error": "Missing 'inputs' or 'instances' key"}
    return 404, {"error": f"Malformed request: {method} {path}"}


def _kserve_v1(method: str, path: str, body: Any) -> Answer:
    if (method, path) == ("GET", "/v1/models"):
        return 200, {"models": ["sklearn-iris"]}
    if (method, path) == ("GET", "/v1/models/sklearn-iris"):
        return 200, {"name": "sklearn-iris", "ready": True}
    if (method, path) == ("POST", "/v1/models/sklearn-iris:predict") and isinstance(body, dict):
        return 200, {"predictions": [1 for _ in body.get("instances", [])]}
    return 404, {"error": "Model with name nope does not exist."}


def _torchserve(method: str, path: str, body: Any) -> Answer:
    if (method, path) == ("GET", "/ping"):
        return 200, {"status": "Healthy"}
    if (method, path) == ("GET", "/models"):  # the management API, here on the same port
        return 200, {"models": [{"modelName": "resnet-18", "modelUrl": "resnet-18.mar"}]}
    if (method, path) == ("POST", "/predictions/resnet-18"):
        return 200, {"tabby": 0.41, "tiger_cat": 0.35}
    return 404, {
        "code": 404,
        "type": "ResourceNotFoundException",
        "message": "Requested resource is not found",
    }


def _torchserve_no_list(method: str, path: str, body: Any) -> Answer:
    return (404, {"code": 404}) if path == "/models" else _torchserve(method, path, body)


# TorchServe with its two ports: inference (no /models) and management (GET /models, /models/<name>).
TORCHSERVE_DESCRIPTION = {
    "modelName": "resnet-18",
    "modelVersion": "1.0",
    "modelUrl": "resnet-18.mar",
    "runtime": "python",
    "minWorkers": 2,
    "maxWorkers": 4,
    "batchSize": 8,
    "maxBatchDelay": 50,
    "loadedAtStartup": True,
    "workers": [
        {"id": "9000", "status": "READY", "memoryUsage": 0, "pid": 1, "gpu": True},
        {"id": "9001", "status": "UNLOADING", "memoryUsage": 0, "pid": 2, "gpu": True},
    ],
}


def _torchserve_management(method: str, path: str, body: Any) -> Answer:
    if (method, path) == ("GET", "/models"):
        return 200, {"models": [{"modelName": "resnet-18", "modelUrl": "resnet-18.mar"}]}
    if (method, path) == ("GET", "/models/resnet-18"):
        return 200, [TORCHSERVE_DESCRIPTION]
    return 404, {"code": 404, "type": "ModelNotFoundException", "message": f"Model not found: {path}"}


# Open Inference Protocol servers. Each checks an infer request against its model's metadata
# (names, datatypes, shapes, element count) as Triton and MLServer do, answering 400 otherwise.
TRITON_METADATA = {
    "name": "simple",
    "versions": ["1"],
    "platform": "onnxruntime_onnx",
    "inputs": [
        {"name": "INPUT0", "datatype": "INT32", "shape": [-1, 16]},
        {"name": "INPUT1", "datatype": "FP32", "shape": [-1, 4]},
    ],
    "outputs": [{"name": "OUTPUT0", "datatype": "INT32", "shape": [-1, 16]}],
}
PYTRITON_METADATA = {
    "name": "add",
    "versions": ["1"],
    "platform": "python",
    "inputs": [{"name": "a", "datatype": "FP32", "shape": [-1, 1]}],
    "outputs": [{"name": "sum", "datatype": "FP32", "shape": [-1, 1]}],
}
# MLServer's metadata for a model whose model-settings.json declares no inputs.
MLSERVER_METADATA = {
    "name": "iris",
    "versions": [],
    "platform": "",
    "inputs": [],
    "outputs": [],
    "parameters": {},
}
RESTRICTED = {"error": "This API is restricted, expecting header 'triton-access-token'"}


def _v2_infer(metadata: dict[str, Any], body: Any) -> Answer:
    inputs = body.get("inputs") if isinstance(body, dict) else None
    if not isinstance(inputs, list) or not inputs:
        return 400, {"error": "Invalid request: no inputs"}
    declared = {spec["name"]: spec for spec in metadata["inputs"]}
    for tensor in inputs:
        spec = declared.get(tensor.get("name")) if declared else tensor
        shape = tensor.get("shape", [])
        count = 1
        for size in shape:
            count *= size
        if (
            spec is None
            or spec.get("datatype") != tensor.get("datatype")
            or len(tensor.get("data", [])) != count
        ):
            return 400, {"error": f"unexpected inference input {tensor.get('name')!r}"}
        if any(want not in (-1, got) for want, got in zip(spec.get("shape", []), shape, strict=False)):
            return 400, {"error": f"unexpected shape for input {tensor['name']!r}: {shape}"}
    output = {"name": "OUTPUT0", "datatype": "FP32", "shape": [1], "data": [7.0]}
    return 200, {"model_name": metadata["name"], "outputs": [output]}


def _v2(index: Answer, metadata: dict[str, Any]) -> Callable[[str, str, Any], Answer]:
    name = metadata["name"]

    def answer(method: str, path: str, body: Any) -> Answer:
        if (method, path) == ("GET", "/v2"):
            return 200, {"name": "stand-in", "version": "2", "extensions": []}
        if (method, path) == ("POST", "/v2/repository/index"):
            return index
        if (method, path) == ("GET", f"/v2/models/{name}"):
            return 200, metadata
        if (method, path) == ("POST", f"/v2/models/{name}/infer"):
            return _v2_infer(metadata, body)
        return 404, {"error": f"Request for unknown model: '{path}' is not found"}

    return answer


def _embeddings(method: str, path: str, body: Any) -> Answer:
    if (method, path) == ("GET", "/v1/models"):
        return 200, OPENAI_MODELS
    if (method, path) == ("POST", "/v1/embeddings") and isinstance(body, dict):
        text = body.get("input")
        return 200, {
            "object": "list",
            "data": [{"object": "embedding", "index": 0, "embedding": [0.25, -0.5, 0.125]}],
            "model": body.get("model"),
            "usage": {"prompt_tokens": len(str(text).split()), "total_tokens": len(str(text).split())},
        }
    return 404, {"error": {"message": "not found"}}


def _bad_embeddings(method: str, path: str, body: Any) -> Answer:
    if (method, path) == ("POST", "/v1/embeddings"):
        return 200, {"object": "list", "data": [{"embedding": "AAAA"}]}  # base64, not floats
    return _embeddings(method, path, body)


def _generate(method: str, path: str, body: Any) -> Answer:
    if (method, path) == ("POST", "/generate") and isinstance(body, dict):
        return 200, {"predictions": [{"label": str(body.get("inputs", ""))[-1:]}]}
    return 404, {"error": "not found"}


ROUTES: dict[str, Callable[[str, str, Any], Answer]] = {
    "tfserving": _tfserving,
    "kserve_v1": _kserve_v1,
    "torchserve": _torchserve,
    "torchserve_no_list": _torchserve_no_list,
    "embeddings": _embeddings,
    "bad_embeddings": _bad_embeddings,
    "json_template": _generate,
    "torchserve_inference": _torchserve_no_list,
    "torchserve_management": _torchserve_management,
    # Triton: the index lists a model not loaded first, then the READY one.
    "triton": _v2(
        (
            200,
            [
                {"name": "ensemble", "state": "UNAVAILABLE", "reason": "unloaded"},
                {"name": "simple", "version": "1", "state": "READY"},
            ],
        ),
        TRITON_METADATA,
    ),
    "pytriton": _v2((403, RESTRICTED), PYTRITON_METADATA),  # the index needs its access token
    "mlserver": _v2(
        (200, [{"name": "iris", "version": "", "state": "READY", "reason": ""}]), MLSERVER_METADATA
    ),
}


@contextmanager
def protocol_server(kind: str, pace_ms: float = 0.0) -> Iterator[tuple[str, dict[str, Any]]]:
    """A threaded HTTP/1.1 server on loopback speaking ``kind``; yields (URL, state). ``pace_ms``:
    a service time for each POST, so a closed loop's users send hundreds a second, not thousands."""
    answer = ROUTES[kind]

    def route(handler: Any, state: dict[str, Any]) -> Answer:
        if pace_ms and handler.command == "POST":
            time.sleep(pace_ms / 1000)
        raw = handler.body
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        with state["lock"]:
            state.setdefault("seen", []).append((handler.command, handler.path, raw))
        return answer(handler.command, handler.path, body)

    with json_server(route) as (url, state):
        state["seen"] = []
        yield url, state
