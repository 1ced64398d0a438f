"""A run's first requests: ``summary.json`` ``cold_start`` and ``shared_prefix``.

Consumes the run's window (`loadbench.analyze.window.Window`): every user-visible request, warmup
included (a cold start is over before most warmups are), in send order, and ``meta.json``
``settings.cold_start``, ``settings.preflight`` and ``settings.workload.shared_prefix_tokens``;
produces the two sections (definitions: ``docs/metrics.md``, Cold start and Shared prefix). Pure.

- **Cold start** (``--cold-start N``): the run's first N requests by send time against the
  measured window's other successful requests (the steady state), by latency.
- **Shared prefix** (``--shared-prefix-tokens N``, an LLM run): the requests sent before any
  answer's first token came back could not find the prefix in the server's cache (no prefill
  of it had finished); those sent later could. Time to first token of each group.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from loadbench.analyze.stats import latency_figures, ratio
from loadbench.analyze.window import Window

FloatArray = npt.NDArray[np.float64]

PREFLIGHT_NOTICE = (
    "the preflight sent one request before these, unrecorded: the target's very first request is "
    "not among them (run with --no-preflight to measure it)"
)


def _spread(values: FloatArray) -> dict[str, float | None]:
    return latency_figures(values, ("p50", "p99", "max"))


def cold_start_section(w: Window) -> dict[str, Any] | None:
    """``summary["cold_start"]``; None without ``--cold-start``."""
    count = int(w.settings.get("cold_start") or 0)
    if count <= 0:
        return None
    order = np.argsort(w.sent_unix_s, kind="stable")
    first = order[:count]
    ok = np.asarray(w.requests["ok"].to_numpy(), dtype=bool)
    latency = np.asarray(w.requests["latency_ms"].to_numpy(), dtype=np.float64)
    rest = np.ones(len(latency), dtype=bool)
    rest[first] = False
    steady = latency[rest & w.in_window & ok]
    steady_p50 = round(float(np.median(steady)), 3) if steady.size else None
    return cold_start_of(w.settings, latency[first], ok[first], steady_p50)


def cold_start_of(
    settings: dict[str, Any], latency: FloatArray, ok: npt.NDArray[np.bool_], steady_p50: float | None
) -> dict[str, Any]:
    """``summary["cold_start"]`` from the first requests' latencies and outcomes (in send order)
    and the median of the window's other successes (either analyzer finds those)."""
    count = int(settings.get("cold_start") or 0)
    spread = _spread(latency[ok])
    first_ms = round(float(latency[0]), 3) if len(latency) and ok[0] else None
    notices = []
    if settings.get("preflight", False):
        notices.append(f"cold start: {PREFLIGHT_NOTICE}")
    if len(latency) < count:
        notices.append(f"cold start: the run sent {len(latency)} requests, fewer than --cold-start {count}")
    return {
        "requests": len(latency),
        "asked": count,
        "errors": int((~ok).sum()),
        "first_ms": first_ms,
        "latency_ms": spread,
        "steady_p50_ms": steady_p50,
        "first_vs_steady": ratio(first_ms, steady_p50),
        "p50_vs_steady": ratio(spread["p50"], steady_p50),
        # In send order, None for a failed one: the report's plot of the cold start.
        "latencies_ms": [round(float(v), 3) if o else None for v, o in zip(latency, ok, strict=True)],
        "preflight": bool(settings.get("preflight", False)),
        "notices": notices,
    }


def shared_prefix_section(w: Window) -> dict[str, Any] | None:
    """``summary["shared_prefix"]``; None without ``--shared-prefix-tokens`` or time to first token."""
    workload = w.settings.get("workload") or {}
    tokens = int(workload.get("shared_prefix_tokens") or 0)
    if tokens <= 0 or "ttft_ms" not in w.requests:
        return None
    ttft = np.asarray(w.requests["ttft_ms"].to_numpy(), dtype=np.float64)
    ok = np.asarray(w.requests["ok"].to_numpy(), dtype=bool) & np.isfinite(ttft)
    if not ok.any():
        return None
    sent = w.sent_unix_s
    first_token_at = float(np.min(sent[ok] + ttft[ok] / 1000.0))
    cold = ok & (sent < first_token_at)
    warm = ok & (sent >= first_token_at) & w.in_window
    first = (int(cold.sum()), _spread(ttft[cold]))
    return shared_prefix_of(w.settings, tokens, first, (int(warm.sum()), _spread(ttft[warm])))


def shared_prefix_of(
    settings: dict[str, Any],
    tokens: int,
    first: tuple[int, dict[str, float | None]],
    later: tuple[int, dict[str, float | None]],
) -> dict[str, Any]:
    """``summary["shared_prefix"]`` from the first and the later streams' count and TTFT spread
    (p50, p99, max: either analyzer finds those)."""
    notices = []
    if settings.get("preflight", False):
        notices.append(
            f"shared prefix: {PREFLIGHT_NOTICE}; it carried the prefix, so it may be cached already"
        )
    return {
        "tokens": tokens,
        "first": {"count": first[0], "ttft_ms": first[1]},
        "later": {"count": later[0], "ttft_ms": later[1]},
        "speedup_p50": ratio(first[1]["p50"], later[1]["p50"]),
        "notices": notices,
    }
