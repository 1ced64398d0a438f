"""Stand-in model servers, one per endpoint kind, on loopback: each answers its protocol's routes
as the real server does (the shapes from TF Serving's, KServe's, TorchServe's and OpenAI's API
documentation) and records every request as ``(method, path, body bytes)`` in ``state["seen"]``.

`protocol_server(kind)` yields ``(url, state)``; ``kind`` is a key of `ROUTES`. An HTTP/2 server
(hypercorn, h2c) for the ``--http2`` path is in `h2_server`.
"""

from __future__ import annotations

import json
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


def _tfserving(method: str, path: str, body: Any) -> Answer:
    if (method, path) == ("GET", "/v1/models/half_plus_two"):
        return 200, TFS_STATUS
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
}


@contextmanager
def protocol_server(kind: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """A threaded HTTP/1.1 server on loopback speaking ``kind``; yields (URL, state)."""
    answer = ROUTES[kind]

    def route(handler: Any, state: dict[str, Any]) -> Answer:
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
