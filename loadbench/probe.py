"""Probe a target endpoint over HTTP (httpx) before any load: is it up, and what does it speak?

Consumes a base URL and headers; produces a `ProbeResult` naming the built-in scenario to
use and why. Also discovers model names for the scenarios. Never on the load path: these
are a handful of requests before the run starts.

The rules, in order:
1. ``GET /v1/models`` answers an OpenAI-style list (``{"data": [{"id": ...}]}``) -> ``openai_chat``.
2. ``GET /v2`` answers Open Inference Protocol server metadata, or ``GET /v2/health/ready``
   answers 200 -> ``kserve_v2``.
3. Otherwise -> ``json_post`` (POST JSON to ``/predict`` unless ``--path`` says otherwise).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from loadbench.errors import TargetError

PROBE_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class ProbeResult:
    """The scenario the target seems to want, and the evidence."""

    scenario: str
    reason: str
    model: str | None = None


def _client(
    base_url: str, headers: dict[str, str] | None, timeout_s: float, verify: bool = True
) -> httpx.Client:
    # trust_env=False: like Locust's own client, ignore proxy variables; the probe must
    # reach the same server the load will.
    return httpx.Client(base_url=base_url, headers=headers, timeout=timeout_s, trust_env=False, verify=verify)


def _get_json(client: httpx.Client, method: str, path: str) -> tuple[int, Any]:
    """(status, parsed JSON or None). Connection failures raise `TargetError`."""
    try:
        # A POST here is a query (Triton's repository index), whose body is an empty JSON object.
        response = client.request(method, path, json={} if method == "POST" else None)
    except httpx.TimeoutException:
        timeout_s = client.timeout.read or PROBE_TIMEOUT_S
        raise TargetError(
            f"target {client.base_url} did not answer {method} {path} within {timeout_s:g} s"
        ) from None
    except httpx.TransportError as exc:
        reason = str(exc) or type(exc).__name__
        if "CERTIFICATE_VERIFY_FAILED" in reason:
            raise TargetError(
                f"the TLS certificate of {client.base_url} could not be verified ({reason.split('] ')[-1][:120]});"
                " pass --insecure to skip verification"
            ) from None
        raise TargetError(f"target {client.base_url} is unreachable: {reason}") from None
    try:
        return response.status_code, response.json()
    except ValueError:
        return response.status_code, None


def check_reachable(
    base_url: str,
    headers: dict[str, str] | None = None,
    timeout_s: float = PROBE_TIMEOUT_S,
    verify: bool = True,
) -> int:
    """GET the base URL; any HTTP answer (even 404) means reachable. Returns the status."""
    with _client(base_url, headers, timeout_s, verify) as client:
        status, _ = _get_json(client, "GET", "/")
        return status


def _openai_models(body: Any) -> list[str]:
    if isinstance(body, dict) and isinstance(body.get("data"), list):
        return [str(m["id"]) for m in body["data"] if isinstance(m, dict) and "id" in m]
    return []


def _v2_models(body: Any) -> list[str]:
    # Triton's repository index: [{"name": ..., "state": "READY"}, ...]
    if isinstance(body, list):
        return [str(m["name"]) for m in body if isinstance(m, dict) and "name" in m]
    # KServe's model list: {"models": ["name", ...]}
    if isinstance(body, dict) and isinstance(body.get("models"), list):
        return [str(m) for m in body["models"]]
    return []


def probe_target(
    base_url: str,
    headers: dict[str, str] | None = None,
    timeout_s: float = PROBE_TIMEOUT_S,
    verify: bool = True,
) -> ProbeResult:
    """Choose a built-in scenario for the target (rules in the module docstring)."""
    with _client(base_url, headers, timeout_s, verify) as client:
        status, body = _get_json(client, "GET", "/v1/models")
        models = _openai_models(body) if status == 200 else []
        if models:
            return ProbeResult(
                "openai_chat", f"GET /v1/models listed {len(models)} OpenAI-style model(s)", models[0]
            )
        status, body = _get_json(client, "GET", "/v2")
        if status == 200 and isinstance(body, dict) and "name" in body:
            return ProbeResult(
                "kserve_v2", f"GET /v2 answered Open Inference Protocol server metadata ({body['name']})"
            )
        status, _ = _get_json(client, "GET", "/v2/health/ready")
        if status == 200:
            return ProbeResult("kserve_v2", "GET /v2/health/ready answered 200 (Open Inference Protocol)")
        return ProbeResult(
            "json_post", "no OpenAI (/v1/models) or Open Inference Protocol (/v2) API found; POSTing JSON"
        )


def discover_openai_model(base_url: str, headers: dict[str, str] | None = None, verify: bool = True) -> str:
    """The first model listed by ``GET /v1/models``."""
    with _client(base_url, headers, PROBE_TIMEOUT_S, verify) as client:
        status, body = _get_json(client, "GET", "/v1/models")
    models = _openai_models(body) if status == 200 else []
    if not models:
        raise TargetError(f"{base_url}/v1/models listed no model (HTTP {status}); pass --model NAME")
    return models[0]


def discover_v2_model(base_url: str, headers: dict[str, str] | None = None, verify: bool = True) -> str:
    """A model name from the server's repository index (Triton) or model list (KServe)."""
    with _client(base_url, headers, PROBE_TIMEOUT_S, verify) as client:
        for method, path in (("POST", "/v2/repository/index"), ("GET", "/v2/models"), ("GET", "/v1/models")):
            status, body = _get_json(client, method, path)
            models = _v2_models(body) if status == 200 else []
            if models:
                return models[0]
    raise TargetError(f"{base_url} lists no Open Inference Protocol model; pass --model NAME")


def v2_model_metadata(
    base_url: str, model: str, headers: dict[str, str] | None = None, verify: bool = True
) -> dict[str, Any]:
    """``GET /v2/models/<model>``: the model's input and output tensor metadata."""
    with _client(base_url, headers, PROBE_TIMEOUT_S, verify) as client:
        status, body = _get_json(client, "GET", f"/v2/models/{model}")
    if status != 200 or not isinstance(body, dict) or not isinstance(body.get("inputs"), list):
        raise TargetError(
            f"{base_url}/v2/models/{model} gave no model metadata (HTTP {status}); pass --payload or --data"
        )
    return body
