"""How many tokens an LLM server's model takes in one request, where the server says it: vLLM's
``GET /v1/models`` (each model's ``max_model_len``), llama.cpp's ``GET /props``
(``default_generation_settings.n_ctx``, or ``n_ctx``). `model_context` gives None when the server
says neither (TGI, Ollama, an answer that fails): an unknown context, never a guess.

Used to refuse a ``--shared-prefix-tokens`` that cannot fit before any load. HTTP through the
probe's client (`loadbench.protocols.probehttp`); no Locust.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from loadbench.errors import TargetError
from loadbench.protocols.probehttp import PROBE_TIMEOUT_S, get_json, open_client


@dataclass(frozen=True)
class Context:
    """A model's context length in tokens, and where the server said it."""

    tokens: int
    source: str  # "GET /v1/models max_model_len", "GET /props n_ctx"


def _positive(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def context_in_models(body: Any, model: str) -> int | None:
    """``max_model_len`` of ``model`` in an OpenAI-style model list (vLLM's), None when not said."""
    data = body.get("data") if isinstance(body, dict) else None
    for entry in data if isinstance(data, list) else []:
        if isinstance(entry, dict) and entry.get("id") == model:
            return _positive(entry.get("max_model_len"))
    return None


def context_in_props(body: Any) -> int | None:
    """llama.cpp's ``n_ctx`` in its ``/props`` answer, None when not said."""
    if not isinstance(body, dict):
        return None
    settings = body.get("default_generation_settings")
    found = _positive(settings.get("n_ctx")) if isinstance(settings, dict) else None
    return found or _positive(body.get("n_ctx"))


def model_context(
    base_url: str, model: str, headers: dict[str, str] | None = None, verify: bool = True
) -> Context | None:
    """The context of ``model`` as the server says it (module docstring); None when it does not."""
    try:
        with open_client(base_url, headers, PROBE_TIMEOUT_S, verify) as client:
            status, body = get_json(client, "GET", "/v1/models")
            tokens = context_in_models(body, model) if status == 200 else None
            if tokens is not None:
                return Context(tokens, "GET /v1/models max_model_len")
            status, body = get_json(client, "GET", "/props")
            tokens = context_in_props(body) if status == 200 else None
            return Context(tokens, "GET /props n_ctx") if tokens is not None else None
    except TargetError:
        return None  # the load's own requests will say what is wrong with the target
