"""The server's own time per request, from Triton's counters: its statistics extension or its
Prometheus metrics. No Locust; HTTP through httpx.

Two sources, read before and after the measured window (`loadbench.drive.serverstats`):

- the statistics extension, ``GET /v2/models/NAME[/versions/V]/stats``: per model and version,
  ``inference_stats.{success,queue,compute_input,compute_infer,compute_output}`` each
  ``{"count", "ns"}`` since the server started (`counters_from_stats`);
- the metrics port's Prometheus counters (``/metrics``, port 8002 by default), in µs:
  ``nv_inference_request_success``, ``nv_inference_request_duration_us``,
  ``nv_inference_queue_duration_us``, ``nv_inference_compute_{input,infer,output}_duration_us``
  (`counters_from_metrics`), for servers that restrict the statistics API (nvidia-pytriton
  answers it ``400 This API is restricted...``).

Both become one flat dict of totals, `Counters` (``success``: requests; every other key µs), so
that `per_request` turns two snapshots into the window's per-request means in ms:
``processing_ms`` = Δ request duration / Δ success (Triton's whole time on a request: queue,
compute and its own handling), and each part (``queue_ms``, ``compute_input_ms``,
``compute_infer_ms``, ``compute_output_ms``) likewise. Definitions: docs/metrics.md
("Processing time: the server's own").
"""

from __future__ import annotations

import json
import math
import re
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from loadbench.protocols.exposition import PrometheusParseError, parse_text
from loadbench.protocols.probehttp import bounded_body
from loadbench.redact import redact_url, scrub

# Counters' keys; "success" counts requests, every other key is a total in µs.
PARTS = ("queue", "compute_input", "compute_infer", "compute_output")
KEYS = ("success", "request", *PARTS)
# Triton's Prometheus family behind each key.
METRICS = {
    "success": "nv_inference_request_success",
    "request": "nv_inference_request_duration_us",
    "queue": "nv_inference_queue_duration_us",
    "compute_input": "nv_inference_compute_input_duration_us",
    "compute_infer": "nv_inference_compute_infer_duration_us",
    "compute_output": "nv_inference_compute_output_duration_us",
}
TRITON_METRICS_PORT = 8002
SERVER_STATS_FILE = "server_stats.json"  # in the run directory (docs/run-format.md)
TIMEOUT_S = 5.0
MAX_BODY_BYTES = 8 * 1024 * 1024

Counters = dict[str, float]

_MODEL_PATH = re.compile(r"/v2/models/([^/]+)")


def model_of(url: str) -> str | None:
    """The model a ``/v2/models/NAME/...`` URL names, else None."""
    match = _MODEL_PATH.search(urlsplit(url).path)
    return match.group(1) if match else None


def counters_from_stats(body: Any, model: str | None = None) -> Counters | None:
    """Totals of a statistics-extension answer, summed over its entries (every version) of
    ``model`` (None: every model); None when the answer has no such entry."""
    entries = body.get("model_stats") if isinstance(body, dict) else None
    if not isinstance(entries, list):
        return None
    totals = dict.fromkeys(KEYS, 0.0)
    found = False
    for entry in entries:
        if not isinstance(entry, dict) or (model is not None and entry.get("name") != model):
            continue
        stats = entry.get("inference_stats")
        if not isinstance(stats, dict):
            continue
        found = True
        for key in KEYS:
            part = stats.get("success" if key in ("success", "request") else key)
            if not isinstance(part, dict):
                continue
            value = part.get("count" if key == "success" else "ns")
            if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
                totals[key] += float(value) if key == "success" else float(value) / 1000.0
    return totals if found else None


def counters_from_metrics(text: str, model: str | None = None) -> Counters | None:
    """Totals of Triton's Prometheus counters in exposition ``text`` (`exposition.parse_text`),
    summed over the series of ``model`` (label ``model``; None: every model); None when it has no
    success counter, or is no exposition text."""
    try:
        families = parse_text(text)
    except PrometheusParseError:
        return None
    totals = dict.fromkeys(KEYS, 0.0)
    seen = False
    for key, name in METRICS.items():
        family = families.get(name)
        for sample in family.samples if family is not None else ():
            if sample.name != name or (model is not None and dict(sample.labels).get("model") != model):
                continue
            if math.isfinite(sample.value):
                totals[key] += sample.value
                seen = seen or key == "success"
    return totals if seen else None


def per_request(before: Counters, after: Counters) -> dict[str, float | int] | None:
    """The window's per-request means in ms between two snapshots; None when no request
    succeeded in between, or a counter went back (the server restarted)."""
    delta = {key: after.get(key, 0.0) - before.get(key, 0.0) for key in KEYS}
    if delta["success"] <= 0 or any(value < 0 for value in delta.values()):
        return None
    n = delta["success"]
    out: dict[str, float | int] = {
        "requests": round(n),
        "processing_ms": round(delta["request"] / n / 1000, 4),
    }
    for part in PARTS:
        out[f"{part}_ms"] = round(delta[part] / n / 1000, 4)
    return out


def metrics_url(url: str) -> str:
    """Triton's metrics endpoint on the host of ``url`` (its default port)."""
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    netloc = f"[{host}]" if ":" in host else host
    return urlunsplit(("http", f"{netloc}:{TRITON_METRICS_PORT}", "/metrics", "", ""))


def snapshot(
    client: httpx.Client, url: str, model: str | None, secrets: list[str] | None = None
) -> dict[str, Any]:
    """One reading of ``url``: ``{"unix_s", "url", "source", "counters"}``, where ``source`` is
    ``triton-stats`` for a JSON answer and ``triton-metrics`` for exposition text; or, when it
    cannot be read, ``{"unix_s", "url", "error", "status"}`` (``status``: the HTTP status, or
    None when there was no answer). The URL is written with its credentials masked."""
    shown = redact_url(url)
    now = time.time()
    try:
        with client.stream("GET", url, timeout=TIMEOUT_S) as response:
            body = bounded_body(response, MAX_BODY_BYTES)
            if body is None:
                return {
                    "unix_s": now,
                    "url": shown,
                    "status": response.status_code,
                    "error": "answer too large",
                }
            status = response.status_code
            kind = response.headers.get("content-type", "")
    except httpx.HTTPError as exc:
        return {
            "unix_s": now,
            "url": shown,
            "status": None,
            "error": scrub(f"{type(exc).__name__}: {exc}", secrets or [])[:200],
        }
    text = body.decode("utf-8", "replace")
    if status != 200:
        said = scrub(" ".join(text.split())[:200], secrets or [])
        return {"unix_s": now, "url": shown, "status": status, "error": f"HTTP {status}: {said}"}
    if "json" in kind or text.lstrip().startswith("{"):
        try:
            counters = counters_from_stats(json.loads(text), model)
        except ValueError:
            counters = None
        source = "triton-stats"
    else:
        counters = counters_from_metrics(text, model)
        source = "triton-metrics"
    if counters is None:
        what = f"model {model}" if model else "any model"
        return {"unix_s": now, "url": shown, "status": status, "error": f"no {source} counters for {what}"}
    return {"unix_s": now, "url": shown, "source": source, "counters": counters}


def restricted(reading: dict[str, Any]) -> bool:
    """Whether a failed reading is the server refusing the API (a 4xx), so that its metrics
    port is the next place to look."""
    status = reading.get("status")
    return isinstance(status, int) and 400 <= status < 500
