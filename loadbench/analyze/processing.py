"""The server's own processing time and the rest of latency: ``summary.json``
``latency_breakdown.processing_ms``, ``request_ms`` and ``realtime_ratio``. Pure; no I/O.

Consumes the window's successful requests (service time, and ``server_ms`` where the server
said its time per request: ``--server-time-header`` / ``--server-time-field``), the run's
``server_stats.json`` (``--server-stats``: Triton's counters before and after the window,
`loadbench.protocols.triton_stats`) and its scraped samples (``--scrape`` of Triton's metrics
port). The first source that has data wins, in that order:

- ``header`` / ``field``: per request, ``processing = server_ms`` and ``request = service time −
  server_ms``; p50, p90, p99 and mean of each, and of the per-request ratio.
- ``triton-stats`` / ``triton-metrics`` (``server_stats.json``): the counters' deltas over the
  window divided by the requests they count: means only.
- ``triton-metrics`` from scrapes: the scraped counters' rates summed over the window's samples
  (each rate is that scrape's delta / its interval, the same interval for every counter of one
  scrape, so the ratio of the sums is the ratio of the deltas): means only, exact to within one
  scrape interval at each end.

Definitions (docs/metrics.md, "Processing time: the server's own"): latency = processing +
request time; ``realtime_ratio`` = processing / request time (as the project's seeds and
``loadbench whatif`` define it); ``processing_share`` = processing / latency.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from loadbench.analyze import means
from loadbench.protocols import triton_stats

FloatArray = npt.NDArray[np.float64]
_DIGITS = 4


def _stat_block(values: FloatArray) -> dict[str, float | None]:
    values = values[np.isfinite(values)]
    if values.size == 0:
        return {"p50": None, "p90": None, "p99": None, "mean": None}
    p50, p90, p99 = np.percentile(values, [50, 90, 99])
    return {
        k: round(float(v), _DIGITS)
        for k, v in (("p50", p50), ("p90", p90), ("p99", p99), ("mean", means.exact_mean(values)))
    }


def per_request_processing(
    service_ms: FloatArray, server_ms: FloatArray, source: str
) -> dict[str, Any] | None:
    """From each successful request's service time and the server's own time for it."""
    keep = np.isfinite(server_ms) & np.isfinite(service_ms) & (server_ms >= 0)
    if not keep.any():
        return None
    processing, latency = server_ms[keep], service_ms[keep]
    request = latency - processing
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(request > 0, processing / np.where(request > 0, request, 1.0), np.nan)
        share = np.where(latency > 0, processing / np.where(latency > 0, latency, 1.0), np.nan)
    return {
        "processing_source": source,
        "processing_method": "per request: processing = the server's own time (server_ms); "
        "request = service time - processing; percentiles of each, and of their ratio, over the requests",
        "processing_n": int(keep.sum()),
        "processing_ms": _stat_block(processing),
        "request_ms": _stat_block(request),
        "realtime_ratio": _stat_block(ratio),
        "processing_share": _stat_block(share),
    }


def counter_processing(
    means: dict[str, Any], service_mean_ms: float, source: str, method: str
) -> dict[str, Any] | None:
    """From the window's per-request means of the server's counters (`triton_stats.per_request`)."""
    processing = means.get("processing_ms")
    if not isinstance(processing, int | float) or service_mean_ms <= 0:
        return None
    request = service_mean_ms - float(processing)
    parts = {p: means.get(f"{p}_ms") for p in triton_stats.PARTS}
    return {
        "processing_source": source,
        "processing_method": method,
        "processing_n": means.get("requests"),
        "processing_ms": {"mean": round(float(processing), _DIGITS)},
        "request_ms": {"mean": round(request, _DIGITS)},
        "realtime_ratio": {"mean": round(float(processing) / request, _DIGITS) if request > 0 else None},
        "processing_share": {"mean": round(float(processing) / service_mean_ms, _DIGITS)},
        "server_parts_ms": parts,
    }


def scraped_means(samples: pd.DataFrame, start_unix_s: float, model: str | None) -> dict[str, Any] | None:
    """Triton's per-request means over the window from scraped counter rates (``prom.<name>_rate{…}``),
    summed over the series of ``model`` (None: every model); None without a success count."""
    if samples.empty or "unix_s" not in samples:
        return None
    rows = samples[samples["unix_s"].to_numpy(dtype=np.float64) > start_unix_s]
    totals = dict.fromkeys(triton_stats.KEYS, 0.0)
    for column in rows.columns:
        if not isinstance(column, str) or not column.startswith("prom."):
            continue
        name, _, labels = column[len("prom.") :].partition("{")
        for key, family in triton_stats.METRICS.items():
            if name != family + "_rate":
                continue
            if model is not None and f'model="{model}"' not in labels:
                continue
            totals[key] += float(
                np.nansum(pd.to_numeric(rows[column], errors="coerce").to_numpy(dtype=np.float64))
            )
    if totals["success"] <= 0:
        return None
    return triton_stats.per_request(dict.fromkeys(triton_stats.KEYS, 0.0), totals)


COUNTER_METHOD = (
    "means over the window: Δ of the server's counters (request duration, queue, compute) "
    "÷ Δ requests it counted; request = mean service time - processing"
)


def processing_section(
    service_ms: FloatArray,
    server_ms: FloatArray | None,
    settings: dict[str, Any],
    server_stats: dict[str, Any] | None,
    samples: pd.DataFrame | None,
    start_unix_s: float,
    target: str,
) -> dict[str, Any] | None:
    """The processing keys of ``latency_breakdown`` from the first source with data (module
    docstring); ``service_ms`` and ``server_ms`` are the window's successful requests'."""
    if server_ms is not None:
        source = (
            "field"
            if settings.get("server_time_field") and not settings.get("server_time_header")
            else "header"
        )
        found = per_request_processing(service_ms, server_ms, source)
        if found is not None:
            return found
    finite = service_ms[np.isfinite(service_ms)]
    if finite.size == 0:
        return None
    return counter_section(means.exact_mean(finite), server_stats, samples, start_unix_s, target)


def counter_section(
    mean_service_ms: float,
    server_stats: dict[str, Any] | None,
    samples: pd.DataFrame | None,
    start_unix_s: float,
    target: str,
) -> dict[str, Any] | None:
    """`processing_section` from the server's counters, for a run whose requests did not each say
    their processing time: ``mean_service_ms`` is the window's successful requests' mean."""
    mean = mean_service_ms
    stats = server_stats or {}
    means = stats.get("per_request")
    if isinstance(means, dict):
        source = str(stats.get("source") or "triton-stats")
        return counter_processing(means, mean, source, COUNTER_METHOD + f" (--server-stats, {source})")
    if samples is not None:
        model = stats.get("model") if isinstance(stats.get("model"), str) else triton_stats.model_of(target)
        scraped = scraped_means(samples, start_unix_s, model)
        if scraped is not None:
            return counter_processing(
                scraped,
                mean,
                "triton-metrics",
                COUNTER_METHOD + " (--scrape of Triton's metrics, summed rates)",
            )
    return None
