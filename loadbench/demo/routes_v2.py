"""The demo's models over the Open Inference Protocol v2 (KServe v2, Triton's HTTP API), on the demo's port.

Consumes a request (method, path, JSON-decoded body); produces ``(status, JSON answer)``, None for
a path that is not v2's, or a `BadRequest` / `HTTPError`. Runs inside `loadbench.demo.server`,
which times every answer; the models come from a `loadbench.demo.variants.Repository` (the
full-precision ``digits`` and its variants).

    GET  /v2                                    server metadata
    GET  /v2/health/live, /v2/health/ready
    POST /v2/repository/index                   Triton-style model list: every model, READY
    GET  /v2/models/<model>[/versions/1]        model metadata
    GET  /v2/models/<model>[/versions/1]/ready
    POST /v2/models/<model>[/versions/1]/infer  {"inputs": [one FP32 tensor, [N, 64]]}
                                                -> {"outputs": [{"name": "output-0", "data": labels}]}
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from loadbench import __version__
from loadbench.demo.model import MODEL_VERSION, Classifier, HTTPError, allow, predict, v2_metadata, v2_rows
from loadbench.demo.variants import Repository

Answer = tuple[int, Any]
Delay = Callable[[], None]

_MODEL_ROUTE = re.compile(
    r"^/v2/models/(?P<name>[^/]+)(?:/versions/(?P<version>[^/]+))?(?P<action>/ready|/infer)?$"
)
_SERVER = {"name": "loadbench-demo", "version": __version__, "extensions": []}


def v2_route(method: str, path: str, body: Any, models: Repository, delay: Delay) -> Answer | None:
    """``/v2...``: the server's and its models' v2 routes (None for another path)."""
    if not path.startswith("/v2"):
        return None
    if path in ("/v2", "/v2/health/live", "/v2/health/ready"):
        allow(method, "GET")
        if path == "/v2":
            return 200, _SERVER
        return 200, {path.rpartition("/")[2]: True}
    if path == "/v2/repository/index":
        allow(method, "POST")
        return 200, [{"name": name, "version": MODEL_VERSION, "state": "READY"} for name in models.names()]
    match = _MODEL_ROUTE.match(path)
    if match is None:
        return None
    name, version, action = match["name"], match["version"], match["action"]
    if name not in models.names():
        raise HTTPError(404, f"model {name!r} not found")
    if version is not None and version != MODEL_VERSION:
        raise HTTPError(404, f"model {name!r} has no version {version!r}")
    # Any route of a model loads it: a client's readiness or metadata check pays its training, not the load.
    model = models.get(name)
    if action == "/infer":
        allow(method, "POST")
        return 200, v2_infer(name, model, body, delay)
    allow(method, "GET")
    if action == "/ready":
        return 200, {"name": name, "ready": True}
    return 200, v2_metadata(name, models.platform(name))


def v2_infer(name: str, model: Classifier, body: Any, delay: Delay) -> dict[str, Any]:
    """One v2 inference: the model's labels for the request's rows, after the service time."""
    rows = v2_rows(body)
    labels, _ = predict(model, rows)
    delay()
    response: dict[str, Any] = {"model_name": name, "model_version": MODEL_VERSION}
    if "id" in body:
        response["id"] = body["id"]
    response["outputs"] = [{"name": "output-0", "shape": [len(labels)], "datatype": "INT64", "data": labels}]
    return response
