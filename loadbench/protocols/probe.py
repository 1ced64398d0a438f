"""Probe a target endpoint over HTTP (httpx) before any load: is it up, and what does it speak?

Consumes a base URL and headers; produces a `ProbeResult` naming the built-in scenario to
use and why. Also discovers, for the scenarios, the model and what a request to it must hold
(`Found`: the model and the one line a scenario says at start): `find_v2_model` and
`v2_model_metadata` (Open Inference Protocol), `find_torchserve_model` (TorchServe's management
API, with the model's workers and batch settings), `tfserving_signature` (TF Serving), and the
``discover_*`` functions (the model name alone). Where the server cannot say, the error names
what to pass. Never on the load path: these are a handful of requests before the run starts.

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
from loadbench.protocols.bodies import (
    V2_EXAMPLE,
    TensorSpec,
    tfserving_inputs,
    torchserve_settings,
    v2_inputs,
)
from loadbench.protocols.errorbody import token_header_hint
from loadbench.protocols.probehttp import PROBE_TIMEOUT_S, get_json, open_client
from loadbench.redact import redact_url


@dataclass(frozen=True)
class ProbeResult:
    """The scenario the target seems to want, and the evidence."""

    scenario: str
    reason: str
    model: str | None = None


@dataclass(frozen=True)
class Found:
    """What a scenario's discovery found: the model, and the one line that says how and what it holds."""

    model: str
    note: str


def check_reachable(
    base_url: str,
    headers: dict[str, str] | None = None,
    timeout_s: float = PROBE_TIMEOUT_S,
    verify: bool = True,
    http2: bool = False,
) -> int:
    """GET the base URL; any HTTP answer (even 404) means reachable. Returns the status."""
    with open_client(base_url, headers, timeout_s, verify, http2) as client:
        status, _ = get_json(client, "GET", "/")
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
    with open_client(base_url, headers, timeout_s, verify, http2) as client:
        status, body = get_json(client, "GET", "/v1/models")
        v1_body = body if status == 200 else None
        models = _openai_models(body) if status == 200 else []
        # loadbench's own demo lists only its LLM simulator there: its real model (v2) wins.
        simulator_only = bool(models) and all(m == SIMULATOR_MODEL for m in models)
        if models and not simulator_only:
            return ProbeResult(
                "openai_chat", f"GET /v1/models listed {len(models)} OpenAI-style model(s)", models[0]
            )
        status, body = get_json(client, "GET", "/v2")
        if status == 200 and isinstance(body, dict) and "name" in body:
            return ProbeResult(
                "kserve_v2", f"GET /v2 answered Open Inference Protocol server metadata ({body['name']})"
            )
        status, _ = get_json(client, "GET", "/v2/health/ready")
        if status == 200:
            return ProbeResult("kserve_v2", "GET /v2/health/ready answered 200 (Open Inference Protocol)")
        if simulator_only:
            return ProbeResult("openai_chat", "GET /v1/models listed loadbench's LLM simulator", models[0])
        models = _kserve_v1_models(v1_body)
        if models:
            return ProbeResult(
                "kserve_v1", f"GET /v1/models listed {len(models)} KServe v1 model(s)", models[0]
            )
        status, body = get_json(client, "GET", "/ping")
        if status == 200 and isinstance(body, dict) and str(body.get("status", "")).endswith("Healthy"):
            return ProbeResult("torchserve", f"GET /ping answered {body['status']!r} (TorchServe)")
        status, body = get_json(client, "GET", f"/v1/models/{model or PROBE_MODEL}")
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
    with open_client(base_url, headers, PROBE_TIMEOUT_S, verify) as client:
        for method, path in requests:
            status, body = get_json(client, method, path)
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


def _error_text(body: Any) -> str:
    """The message of an error answer (``{"error": ...}`` or TorchServe's ``{"message": ...}``)."""
    error = body.get("error", body.get("message")) if isinstance(body, dict) else None
    return str(error)[:120] if error else ""


def _v2_index(body: list[Any]) -> tuple[list[str], list[str]]:
    """(READY models, ``name (STATE)`` of the others) of a repository index; no state counts as READY."""
    entries = [m for m in body if isinstance(m, dict) and "name" in m]
    ready = [str(m["name"]) for m in entries if str(m.get("state", "READY")).upper() == "READY"]
    others = [f"{m['name']} ({m.get('state')})" for m in entries if str(m["name"]) not in ready]
    return ready, others


def find_v2_model(base_url: str, headers: dict[str, str] | None = None, verify: bool = True) -> Found:
    """An Open Inference Protocol model: the first READY one of ``POST /v2/repository/index`` (Triton,
    MLServer), else the first of KServe's ``GET /v2/models`` or ``GET /v1/models`` list.

    None: `TargetError` saying why (the index is restricted, lists nothing or nothing READY) and
    to pass ``--model NAME``.
    """
    shown, why, hint = redact_url(base_url), "", ""
    with open_client(base_url, headers, PROBE_TIMEOUT_S, verify) as client:
        status, body = get_json(client, "POST", "/v2/repository/index")
        error = _error_text(body)
        if status == 200 and isinstance(body, list):
            ready, others = _v2_index(body)
            if ready:
                listed = f"{len(ready)} READY of {len(ready) + len(others)} listed"
                return Found(ready[0], f"model {ready[0]} from POST /v2/repository/index ({listed})")
            why = "POST /v2/repository/index lists " + (
                f"no READY model ({', '.join(others[:3])})" if others else "no model"
            )
        elif status in (401, 403) or (400 <= status < 500 and "restricted" in error.lower()):
            # PyTriton / Triton with --http-restricted-api: "This API is restricted, expecting header ..."
            why = f"POST /v2/repository/index is restricted (HTTP {status}{': ' + error if error else ''})"
            hint = token_header_hint(error)
        for method, path in (("GET", "/v2/models"), ("GET", "/v1/models")):
            status, body = get_json(client, method, path)
            models = _v2_models(body) if status == 200 else []
            if models:
                return Found(models[0], f"model {models[0]} from {method} {path} ({len(models)} listed)")
    if why:
        raise TargetError(f"{shown}: {why}; pass --model NAME{hint}")
    raise TargetError(f"{shown} lists no Open Inference Protocol model; pass --model NAME")


def discover_v2_model(base_url: str, headers: dict[str, str] | None = None, verify: bool = True) -> str:
    """The model `find_v2_model` finds."""
    return find_v2_model(base_url, headers, verify).model


def v2_model_metadata(
    base_url: str, model: str, headers: dict[str, str] | None = None, verify: bool = True
) -> dict[str, Any]:
    """``GET /v2/models/<model>``: the model's metadata, which must name its inputs.

    No metadata, or metadata listing no inputs (MLServer's may list none): `TargetError` naming
    ``--payload``/``--data`` with an example body.
    """
    with open_client(base_url, headers, PROBE_TIMEOUT_S, verify) as client:
        status, body = get_json(client, "GET", f"/v2/models/{model}")
    if status != 200 or not isinstance(body, dict):
        detail = f": {_error_text(body)}" if _error_text(body) else ""
        raise TargetError(
            f"{redact_url(base_url)}/v2/models/{model} gave no model metadata (HTTP {status}){detail}; "
            "pass --model NAME of a served model, or --payload/--data"
        )
    if not v2_inputs(body):
        raise TargetError(
            f"the metadata of model {model} (GET /v2/models/{model}) lists no inputs, so no request can be "
            f"built for it: pass --payload '{V2_EXAMPLE}' or --data FILE.jsonl (one such body a line)"
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
    with open_client(base_url, headers, PROBE_TIMEOUT_S, verify) as client:
        status, body = get_json(client, "GET", f"/v1/models/{model}")
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


def _torchserve_models(body: Any) -> list[str] | None:
    # The management API: {"models": [{"modelName": "resnet", "modelUrl": "..."}]}; None: not that list.
    if isinstance(body, dict) and isinstance(body.get("models"), list):
        return [str(m["modelName"]) for m in body["models"] if isinstance(m, dict) and "modelName" in m]
    return None


TORCHSERVE_MANAGEMENT_PORT = 8081  # TorchServe's default management port
GUESS_TIMEOUT_S = 2.0  # a guessed management address that does not answer at once is not one


def management_candidates(base_url: str) -> list[str]:
    """Where TorchServe's management API may be, in order: the target itself (loadbench's demo serves
    it there), the target's port + 1 (8080 -> 8081), TorchServe's default port 8081, on the same host."""
    url = httpx.URL(base_url)
    port = url.port or (443 if url.scheme == "https" else 80)
    found = [base_url.rstrip("/")]
    for other in (port + 1, TORCHSERVE_MANAGEMENT_PORT):
        candidate = str(url.copy_with(port=other, path="/", query=None, fragment=None)).rstrip("/")
        if candidate not in found and other != port:
            found.append(candidate)
    return found


@dataclass(frozen=True)
class _NotServed:
    """The management API answered, and says that it does not serve the ``--model``."""

    why: str


def _torchserve_at(
    url: str, headers: dict[str, str] | None, verify: bool, model: str | None, timeout_s: float
) -> Found | str | _NotServed:
    """The model and its settings from the management API at ``url``; else why not (a `str`)."""
    shown = redact_url(url)
    with open_client(url, headers, timeout_s, verify) as client:
        status, body = get_json(client, "GET", "/models")
        models = _torchserve_models(body) if status == 200 else None
        if models is None:
            return f"{shown}/models (HTTP {status})"
        if not models and not model:
            return f"{shown}/models (lists no model)"
        name = model or models[0]
        status, description = get_json(client, "GET", f"/models/{name}")
    if status == 404 and model and model not in models:
        # TorchServe's own "Model not found: NAME": every request to it would get the same 404.
        detail = f": {_error_text(description)}" if _error_text(description) else ""
        listed = f"it lists {', '.join(models[:5])}" if models else "it lists no model"
        return _NotServed(
            f"TorchServe's management API at {shown} does not serve model {name} (GET /models/{name} "
            f"HTTP 404{detail}); {listed}: pass --model NAME of a served model"
        )
    settings = torchserve_settings(description) if status == 200 else None
    found = "(--model)" if model else f"from {shown}/models ({len(models)} listed)"
    detail = f": {_error_text(description)}" if _error_text(description) else ""
    return Found(name, f"model {name} {found}; " + (settings or f"GET /models/{name} HTTP {status}{detail}"))


def find_torchserve_model(
    base_url: str,
    headers: dict[str, str] | None = None,
    verify: bool = True,
    management_url: str | None = None,
    model: str | None = None,
) -> Found:
    """The model (``model``, else the first TorchServe's management API lists) with its workers and
    batch settings (``GET /models/<model>``).

    The management API is at ``management_url``, else at the first of `management_candidates`
    that answers. None answers: with ``model``, a note that the settings are unknown; without,
    a `TargetError` naming ``--management URL`` and ``--model NAME``. One answers that it does
    not serve ``model`` (HTTP 404, and not listed): a `TargetError` quoting it, with what it lists.
    """
    tried = []
    for url in [management_url] if management_url else management_candidates(base_url):
        timeout_s = PROBE_TIMEOUT_S if url in (management_url, base_url.rstrip("/")) else GUESS_TIMEOUT_S
        try:
            answer = _torchserve_at(url, headers, verify, model, timeout_s)
        except TargetError as exc:
            if management_url:
                raise TargetError(f"--management {redact_url(url)}: {exc}") from None
            answer = f"{redact_url(url)}/models (no answer)"
        if isinstance(answer, Found):
            return answer
        if isinstance(answer, _NotServed):
            raise TargetError(answer.why)
        tried.append(answer)
    where = ", ".join(tried)
    if model:
        unknown = "workers and batch settings unknown (--management URL shows them)"
        return Found(model, f"model {model} (--model); no TorchServe management API at {where}: {unknown}")
    raise TargetError(
        f"no TorchServe model list at {where}; pass --management URL (TorchServe's management API, "
        f"port {TORCHSERVE_MANAGEMENT_PORT} by default) or --model NAME"
    )


def discover_torchserve_model(
    base_url: str,
    headers: dict[str, str] | None = None,
    verify: bool = True,
    management_url: str | None = None,
) -> str:
    """The model `find_torchserve_model` finds (``GET /models`` of TorchServe's management API)."""
    return find_torchserve_model(base_url, headers, verify, management_url).model


def tfserving_signature(
    base_url: str, model_path: str, headers: dict[str, str] | None = None, verify: bool = True
) -> tuple[str, list[TensorSpec]] | str:
    """(signature, inputs) of TF Serving's ``GET <model_path>/metadata`` (``model_path``:
    ``/v1/models/<model>[/versions/<n>]``); else why not (a `str`)."""
    with open_client(base_url, headers, PROBE_TIMEOUT_S, verify) as client:
        status, body = get_json(client, "GET", f"{model_path}/metadata")
    signature = tfserving_inputs(body) if status == 200 else None
    return signature or f"GET {model_path}/metadata gave no signature (HTTP {status})"
