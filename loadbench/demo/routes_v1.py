"""The demo's digits model over TF Serving's REST API, KServe v1 and TorchServe, on the demo's one port.

Consumes a request (method, path, JSON-decoded body); produces ``(status, JSON answer)``, None
for a path that is none of these, or a `BadRequest` / `HTTPError`. Runs inside
`loadbench.demo.server`, which lists the models (``GET /v1/models``) and times every answer.

    GET  /v1/models/digits[/versions/1]           TF Serving's model status and KServe v1's
                                                  readiness in one answer
    GET  /v1/models/digits[/versions/1]/metadata  TF Serving's signature (serving_default)
    POST /v1/models/digits[/versions/1]:predict   {"instances": [...]} -> {"predictions": [labels]}
                                                  {"inputs": ...} -> {"outputs": [labels]}
    GET  /ping                                    TorchServe's health: {"status": "Healthy"}
    POST /predictions/digits[/1.0]                TorchServe inference: rows, or an object holding
                                                  them in "inputs", "instances" or "data"
    GET  /models, /models/digits[/1.0|/all]       TorchServe's management API (list, describe)

TF Serving and KServe v1 share ``:predict``'s wire format; a columnar ``inputs`` request is
answered under ``outputs``, as TF Serving does and as loadbench's predict scenarios expect
(`loadbench.protocols.bodies.predict_answer_key`). TorchServe serves management on a second port
(8081); the demo serves it on its one port, where ``loadbench.protocols.probe`` looks when no
``--management URL`` is given. Unknown models get each server's own error: TF Serving's "Could
not find any versions of model ..." / "Servable not found ...", TorchServe's
``{"code": 404, "type": "ModelNotFoundException", ...}``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import Any

from loadbench.demo.model import (
    MODEL_NAME,
    MODEL_VERSION,
    N_FEATURES,
    BadRequest,
    DemoModel,
    HTTPError,
    allow,
    predict,
)

Answer = tuple[int, Any]
Delay = Callable[[], None]
TORCHSERVE_VERSION = "1.0"  # what torch-model-archiver gives a model unless told otherwise

_V1_MODEL = re.compile(
    r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>[^/:]+))?(?P<action>/metadata|:predict)?$"
)
_PREDICTIONS = re.compile(r"^/predictions/(?P<name>[^/]+)(?:/(?P<version>[^/]+))?$")
_DESCRIBE = re.compile(r"^/models/(?P<name>[^/]+)(?:/(?P<version>[^/]+))?$")


def v1_route(method: str, path: str, body: Any, model: DemoModel, delay: Delay) -> Answer | None:
    """``/v1/models/<model>...``: TF Serving and KServe v1 (None for another path)."""
    match = _V1_MODEL.match(path)
    if match is None:
        return None
    name, version, action = match["name"], match["version"], match["action"]
    if name != MODEL_NAME or version not in (None, MODEL_VERSION):
        if action == ":predict":
            wanted = f"Latest({name})" if version is None else f"Specific({name}, {version})"
            raise HTTPError(404, f"Servable not found for request: {wanted}")
        which = "any versions" if version is None else f"version {version}"
        raise HTTPError(404, f"Could not find {which} of model {name}")
    if action == ":predict":
        allow(method, "POST")
        rows, key = v1_rows(body)
        labels, _ = predict(model, rows)
        delay()
        return 200, {key: labels}
    allow(method, "GET")
    return 200, (tfserving_metadata() if action == "/metadata" else model_status())


def model_status() -> dict[str, Any]:
    """TF Serving's ``model_version_status`` and KServe v1's ``name``/``ready``: both ask this path."""
    ok = {"error_code": "OK", "error_message": ""}
    return {
        "model_version_status": [{"version": MODEL_VERSION, "state": "AVAILABLE", "status": ok}],
        "name": MODEL_NAME,
        "ready": True,
    }


def _tensor_info(name: str, dtype: str, dims: list[int]) -> dict[str, Any]:
    # TF Serving writes sizes as strings (int64 in its JSON mapping of the protobuf).
    shape = {"dim": [{"size": str(d), "name": ""} for d in dims], "unknown_rank": False}
    return {"dtype": dtype, "tensor_shape": shape, "name": f"{name}:0"}


def tfserving_metadata() -> dict[str, Any]:
    """``GET /v1/models/<model>/metadata``: the model's serving signature, as TF Serving gives it."""
    signature = {
        "inputs": {"input-0": _tensor_info("input-0", "DT_FLOAT", [-1, N_FEATURES])},
        "outputs": {"output-0": _tensor_info("output-0", "DT_INT64", [-1])},
        "method_name": "tensorflow/serving/predict",
    }
    return {
        "model_spec": {"name": MODEL_NAME, "signature_name": "", "version": MODEL_VERSION},
        "metadata": {"signature_def": {"signature_def": {"serving_default": signature}}},
    }


def _only_input(named: dict[str, Any], what: str) -> Any:
    # The model has one input tensor: a request may name it (any name) but must not add others.
    if len(named) != 1:
        raise BadRequest(f"{what} names {len(named)} input tensors; the model has one (input-0)")
    return next(iter(named.values()))


def v1_rows(body: Any) -> tuple[Any, str]:
    """The rows of a ``:predict`` request and the key its answer goes under.

    Row format: ``{"instances": [row, ...]}`` (or ``[{"input-0": row}, ...]``) -> ``predictions``;
    columnar: ``{"inputs": [row, ...]}`` (or ``{"input-0": [row, ...]}``) -> ``outputs``.
    """
    if not isinstance(body, dict) or ("instances" in body) == ("inputs" in body):
        raise BadRequest(
            'request body must be a JSON object with one of "instances" (row format) or "inputs" (columnar)'
        )
    if "inputs" in body:
        rows = body["inputs"]
        return (_only_input(rows, '"inputs"') if isinstance(rows, dict) else rows), "outputs"
    rows = body["instances"]
    if isinstance(rows, list) and rows and all(isinstance(row, dict) for row in rows):
        rows = [_only_input(row, "an instance") for row in rows]
    return rows, "predictions"


def torchserve_route(method: str, path: str, body: Any, model: DemoModel, delay: Delay) -> Answer | None:
    """TorchServe's inference and management APIs (None for another path)."""
    if path == "/ping":
        allow(method, "GET")
        return 200, {"status": "Healthy"}
    if path == "/models":
        allow(method, "GET")
        return 200, {"models": [{"modelName": MODEL_NAME, "modelUrl": f"{MODEL_NAME}.mar"}]}
    match = _PREDICTIONS.match(path)
    if match is not None:
        _check_torchserve_model(match["name"], match["version"], "/predictions/")
        allow(method, "POST")
        labels, probabilities = predict(model, _torchserve_rows(body))
        delay()
        return 200, {"predictions": labels, "probabilities": probabilities, "model": MODEL_NAME}
    match = _DESCRIBE.match(path)
    if match is not None:
        _check_torchserve_model(match["name"], match["version"], "/models/")
        allow(method, "GET")
        return 200, [torchserve_description()]
    return None


def _check_torchserve_model(name: str, version: str | None, route: str) -> None:
    if name != MODEL_NAME:
        message = f"Model not found: {name}"
        error = {"code": 404, "type": "ModelNotFoundException", "message": message}
        raise HTTPError(404, message, payload=error)
    # Describing takes "all" for every version; inference takes one version.
    if version not in (None, TORCHSERVE_VERSION) and not (version == "all" and route == "/models/"):
        message = f"Model version: {version} does not exist for model: {name}"
        error = {"code": 404, "type": "ModelVersionNotFoundException", "message": message}
        raise HTTPError(404, message, payload=error)


def _torchserve_rows(body: Any) -> Any:
    # A TorchServe handler takes whatever the client sends; this one takes what the demo's other
    # routes do, so one data file (loadbench/data/digits.jsonl) fits them all.
    if not isinstance(body, dict):
        return body
    for key in ("inputs", "instances", "data"):
        if key in body:
            return body[key]
    raise BadRequest('request body must be rows of numbers, or an object holding them in "inputs"')


def torchserve_description() -> dict[str, Any]:
    """One entry of ``GET /models/<model>`` (TorchServe's describe-model answer)."""
    worker = {"id": "9000", "status": "READY", "memoryUsage": 0, "pid": os.getpid(), "gpu": False}
    return {
        "modelName": MODEL_NAME,
        "modelVersion": TORCHSERVE_VERSION,
        "modelUrl": f"{MODEL_NAME}.mar",
        "runtime": "python",
        "minWorkers": 1,
        "maxWorkers": 1,
        "batchSize": 1,
        "maxBatchDelay": 100,
        "loadedAtStartup": True,
        "workers": [worker],
    }
