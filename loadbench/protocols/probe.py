"""Probe a target endpoint over HTTP (httpx) before any load: is it up, and what does it speak?

Consumes a base URL and headers; produces a `ProbeResult` naming the built-in scenario to
use and why. Also discovers model names for the scenarios. Never on the load path: these
are a handful of requests before the run starts.

The rules, in order:
1. ``GET /v1/models`` answers an OpenAI-style list (``{"data": [{"id": ...}]}``) -> ``openai_chat``.
   (An embeddings server answers the same list: the probe cannot tell it from a chat server,
   so ``--scenario embeddings`` must be given.) A list of only loadbench's LLM simulator (the
   demo) waits for rule 2: the demo's real model is benchmarked unless ``--scenario`` says otherwise.
2. ``GET /v2`` answers Open Inference Protocol server metadata, or ``GET /v2/health/ready``
   answers 200 -> ``kserve_v2``. (KServe also serves v1: v2 wins, as before.)
3. The same ``GET /v1/models`` answered a KServe v1 list (``{"models": ["name", ...]}``) -> ``kserve_v1``.
4. ``GET /ping`` answers ``{"status": "Healthy"}`` (or ``"Partial Healthy"``) -> ``torchserve``.
5. ``GET /v1/models/<model>`` (``--model``, else a name no server has) answers TF Serving's model
   status (``{"model_version_status": [...]}``) or its error for an unknown model ("Could not
   find any versions of model ...", "Servable not found ...") -> ``tfserving``.
6. Otherwise -> ``json_post`` (POST JSON to ``/predict`` unless ``--path`` says otherwise).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from loadbench.errors import TargetError
from loadbench.redact import redact_url, scrub

PROBE_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class ProbeResult:
    """The scenario the target seems to want, and the evidence."""

    scenario: str
    reason: str
    model: str | None = None


class Http2OnlyClient(httpx.Client):
    """The probe's client of a ``--http2`` run: HTTP/2 only, so that its failures can say so."""


def _client(
    base_url: str, headers: dict[str, str] | None, timeout_s: float, verify: bool = True, http2: bool = False
) -> httpx.Client:
    # trust_env=False: like Locust's own client, ignore proxy variables; the probe must
    # reach the same server the load will. http2: HTTP/2 only, as a --http2 run sends (an
    # h2c server by prior knowledge may not speak HTTP/1.1 at all).
    cls = Http2OnlyClient if http2 else httpx.Client
    return cls(
        base_url=base_url,
        headers=headers,
        timeout=timeout_s,
        trust_env=False,
        verify=verify,
        http1=not http2,
        http2=http2,
    )


def _get_json(client: httpx.Client, method: str, path: str) -> tuple[int, Any]:
    """(status, parsed JSON or None). Connection failures raise `TargetError`."""
    try:
        # A POST here is a query (Triton's repository index), whose body is an empty JSON object.
        response = client.request(method, path, json={} if method == "POST" else None)
    except httpx.TimeoutException:
        timeout_s = client.timeout.read or PROBE_TIMEOUT_S
        shown = redact_url(str(client.base_url))  # base_url keeps the URL's user:password
        raise TargetError(f"target {shown} did not answer {method} {path} within {timeout_s:g} s") from None
    except httpx.TransportError as exc:
        reason = scrub(str(exc), []) or type(exc).__name__
        shown = redact_url(str(client.base_url))  # base_url keeps the URL's user:password
        if "CERTIFICATE_VERIFY_FAILED" in reason:
            raise TargetError(
                f"the TLS certificate of {shown} could not be verified ({reason.split('] ')[-1][:120]});"
                " pass --insecure to skip verification"
            ) from None
        if isinstance(client, Http2OnlyClient) and isinstance(exc, httpx.RemoteProtocolError):
            # An HTTP/1.1 server answers HTTP/2's preface by hanging up, which httpx reports as a
            # disconnect: name the real cause, not an unreachable server.
            raise TargetError(
                f"target {shown} does not speak HTTP/2 ({reason}): drop --http2, or give a server that "
                "speaks HTTP/2 cleartext (h2c) over http:// or offers h2 over https://"
            ) from None
        raise TargetError(f"target {shown} is unreachable: {reason}") from None
    try:
        return response.status_code, response.json()
    except ValueError:
        return response.status_code, None


def check_reachable(
    base_url: str,
    headers: dict[str, str] | None = None,
    timeout_s: float = PROBE_TIMEOUT_S,
    verify: bool = True,
    http2: bool = False,
) -> int:
    """GET the base URL; any HTTP answer (even 404) means reachable. Returns the status."""
    with _client(base_url, headers, timeout_s, verify, http2) as client:
        status, _ = _get_json(client, "GET", "/")
        return status


def _openai_models(body: Any) -> list[str]:
    if isinstance(body, dict) and isinstance(body.get("data"), list):
        return [str(m["id"]) for m in body["data"] if isinstance(m, dict) and "id" in m]
    return []


def _kserve_v1_models(body: Any) -> list[str]:
    # KServe v1 (and TF Serving front ends that list): {"models": ["name", ...]}
    if isinstance(body, dict) and isinstance(body.get("models"), list):
        return [str(m) for m in body["models"] if isinstance(m, str | int)]
    return []


def _tfserving_status(body: Any) -> bool:
    return isinstance(body, dict) and isinstance(body.get("model_version_status"), list)


def _tfserving_error(body: Any) -> bool:
    # What TF Serving's REST API answers for a model it does not serve.
    error = body.get("error") if isinstance(body, dict) else None
    return isinstance(error, str) and (
        "Could not find any versions of model" in error or "Servable not found for request" in error
    )


SIMULATOR_MODEL = "loadbench-llm-simulator"  # loadbench.demo.llmsim.MODEL_ID, the demo's LLM simulator
PROBE_MODEL = "loadbench-probe"  # a model name no server has: TF Serving answers with its own error


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
    model: str | None = None,
    http2: bool = False,
) -> ProbeResult:
    """Choose a built-in scenario for the target (rules in the module docstring).

    ``model``: the ``--model`` the scenario will get, if any (TF Serving lists no models).
    ``http2``: probe over HTTP/2 only (a ``--http2`` run).
    """
    with _client(base_url, headers, timeout_s, verify, http2) as client:
        status, body = _get_json(client, "GET", "/v1/models")
        v1_body = body if status == 200 else None
        models = _openai_models(body) if status == 200 else []
        # loadbench's own demo lists only its LLM simulator there: its real model (v2) wins.
        simulator_only = bool(models) and all(m == SIMULATOR_MODEL for m in models)
        if models and not simulator_only:
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
        if simulator_only:
            return ProbeResult("openai_chat", "GET /v1/models listed loadbench's LLM simulator", models[0])
        models = _kserve_v1_models(v1_body)
        if models:
            return ProbeResult(
                "kserve_v1", f"GET /v1/models listed {len(models)} KServe v1 model(s)", models[0]
            )
        status, body = _get_json(client, "GET", "/ping")
        if status == 200 and isinstance(body, dict) and str(body.get("status", "")).endswith("Healthy"):
            return ProbeResult("torchserve", f"GET /ping answered {body['status']!r} (TorchServe)")
        status, body = _get_json(client, "GET", f"/v1/models/{model or PROBE_MODEL}")
        if status == 200 and _tfserving_status(body):
            return ProbeResult("tfserving", f"GET /v1/models/{model} answered TF Serving model status", model)
        if _tfserving_error(body):
            return ProbeResult(
                "tfserving",
                f"GET /v1/models/{model or PROBE_MODEL} answered TF Serving's unknown-model error"
                + ("" if model else " (TF Serving lists no models: pass --model NAME)"),
            )
        return ProbeResult(
            "json_post",
            "no OpenAI (/v1/models), Open Inference Protocol (/v2), KServe v1, TorchServe (/ping) "
            "or TF Serving API found; POSTing JSON",
        )


def _first_listed(
    base_url: str,
    headers: dict[str, str] | None,
    verify: bool,
    requests: Sequence[tuple[str, str]],
    models_in: Callable[[Any], list[str]],
    failure: Callable[[int], str],
) -> str:
    """The first model ``models_in`` finds in the first of ``requests`` whose 200 answer lists any.

    None listed: `TargetError` with ``failure(HTTP status of the last request)``.
    """
    status = 0
    with _client(base_url, headers, PROBE_TIMEOUT_S, verify) as client:
        for method, path in requests:
            status, body = _get_json(client, method, path)
            models = models_in(body) if status == 200 else []
            if models:
                return models[0]
    raise TargetError(failure(status))


def discover_openai_model(base_url: str, headers: dict[str, str] | None = None, verify: bool = True) -> str:
    """The first model listed by ``GET /v1/models``."""
    return _first_listed(
        base_url,
        headers,
        verify,
        [("GET", "/v1/models")],
        _openai_models,
        lambda status: f"{redact_url(base_url)}/v1/models listed no model (HTTP {status}); pass --model NAME",
    )


def discover_v2_model(base_url: str, headers: dict[str, str] | None = None, verify: bool = True) -> str:
    """A model name from the server's repository index (Triton) or model list (KServe)."""
    return _first_listed(
        base_url,
        headers,
        verify,
        [("POST", "/v2/repository/index"), ("GET", "/v2/models"), ("GET", "/v1/models")],
        _v2_models,
        lambda _: f"{redact_url(base_url)} lists no Open Inference Protocol model; pass --model NAME",
    )


def v2_model_metadata(
    base_url: str, model: str, headers: dict[str, str] | None = None, verify: bool = True
) -> dict[str, Any]:
    """``GET /v2/models/<model>``: the model's input and output tensor metadata."""
    with _client(base_url, headers, PROBE_TIMEOUT_S, verify) as client:
        status, body = _get_json(client, "GET", f"/v2/models/{model}")
    if status != 200 or not isinstance(body, dict) or not isinstance(body.get("inputs"), list):
        raise TargetError(
            f"{redact_url(base_url)}/v2/models/{model} gave no model metadata (HTTP {status}); pass --payload or --data"
        )
    return body


def discover_v1_model(base_url: str, headers: dict[str, str] | None = None, verify: bool = True) -> str:
    """The first model ``GET /v1/models`` lists as KServe v1 does (``{"models": [...]}``)."""
    return _first_listed(
        base_url,
        headers,
        verify,
        [("GET", "/v1/models")],
        _kserve_v1_models,
        lambda status: (
            f"{redact_url(base_url)}/v1/models listed no KServe v1 model (HTTP {status}); pass --model NAME"
        ),
    )


def tfserving_model_status(
    base_url: str, model: str, headers: dict[str, str] | None = None, verify: bool = True
) -> list[Any]:
    """``GET /v1/models/<model>``: TF Serving's version status list for the model."""
    with _client(base_url, headers, PROBE_TIMEOUT_S, verify) as client:
        status, body = _get_json(client, "GET", f"/v1/models/{model}")
    if status != 200 or not _tfserving_status(body):
        error = body.get("error") if isinstance(body, dict) else None
        detail = f": {str(error)[:120]}" if error else ""
        raise TargetError(
            f"{redact_url(base_url)}/v1/models/{model} gave no TF Serving model status (HTTP {status}{detail}); "
            "pass --model NAME"
        )
    return list(body["model_version_status"])


def discover_tfserving_model(
    base_url: str, headers: dict[str, str] | None = None, verify: bool = True
) -> str:
    """TF Serving lists no models; a front end that answers ``GET /v1/models`` may."""
    return _first_listed(
        base_url,
        headers,
        verify,
        [("GET", "/v1/models")],
        _kserve_v1_models,
        lambda _: f"{redact_url(base_url)} does not list its models (TF Serving cannot); pass --model NAME",
    )


def _torchserve_models(body: Any) -> list[str]:
    # The management API: {"models": [{"modelName": "resnet", "modelUrl": "..."}]}
    if isinstance(body, dict) and isinstance(body.get("models"), list):
        return [str(m["modelName"]) for m in body["models"] if isinstance(m, dict) and "modelName" in m]
    return []


def discover_torchserve_model(
    base_url: str,
    headers: dict[str, str] | None = None,
    verify: bool = True,
    management_url: str | None = None,
) -> str:
    """The first model of TorchServe's ``GET /models`` (management API: ``management_url``, else the target)."""
    tried = []
    for url in (management_url, base_url):
        if not url:
            continue
        with _client(url, headers, PROBE_TIMEOUT_S, verify) as client:
            try:
                status, body = _get_json(client, "GET", "/models")
            except TargetError:
                if url is management_url:
                    raise
                status, body = 0, None
        models = _torchserve_models(body) if status == 200 else []
        if models:
            return models[0]
        tried.append(f"{redact_url(url)}/models (HTTP {status})")
    raise TargetError(f"no TorchServe model list at {', '.join(tried)}; pass --model NAME")
