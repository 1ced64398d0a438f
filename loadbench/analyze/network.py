"""The network's share of latency: the split of p50 latency and of a request into phases.

Consumes a run's ``meta.json`` ``network`` entry (measured by the driver before the load,
`loadbench.drive.rtt`) and its latency percentiles (for `latency_breakdown`), or the events of
httpx's ``trace`` extension (for `request_phases`). Produces plain dicts; no Locust import, so
the analyzer may use it.

- `latency_breakdown(network, p50)`: with one round trip as the network's cost of a request on
  a kept-alive connection, ``server_ms_p50 = p50 - rtt``. See ``docs/metrics.md`` for the
  assumptions (small bodies, reused connections) and what else lands in the "server" part.
- `request_phases(events)`: per request on the HTTP/2 (httpx) path, connection set-up, time to
  the response headers and download time, from httpx's trace events.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from loadbench.analyze import stats


def latency_breakdown(network: Any, latency_p50_ms: float | None) -> dict[str, Any] | None:
    """``summary.json`` ``latency_breakdown``: the network's and the server's part of p50 latency.

    ``network_rtt_ms`` is the median TCP connect time before the load; ``server_ms_p50`` is
    p50 latency minus that round trip (never below 0); ``network_share_p50`` the round trip's
    fraction of p50. None when the run has no round-trip estimate or no successful request.
    """
    if not isinstance(network, dict) or latency_p50_ms is None or not latency_p50_ms > 0:
        return None
    rtt = network.get("rtt_ms_median")
    if not isinstance(rtt, int | float) or isinstance(rtt, bool) or rtt < 0:
        return None
    network_ms = min(float(rtt), float(latency_p50_ms))
    return {
        "network_rtt_ms": round(float(rtt), 3),
        "server_ms_p50": round(float(latency_p50_ms) - network_ms, 3),
        "network_share_p50": round(network_ms / float(latency_p50_ms), 4),
        "method": "p50 latency = one network round trip (TCP connect time) + the rest (server and client)",
    }


def request_phases(events: Sequence[tuple[str, float]], sent: float) -> dict[str, float]:
    """Phases of one request from httpx's ``trace`` events ``(name, perf_counter seconds)``.

    ``sent`` is the perf_counter reading the latency counts from. Keys, in ms, each present
    only when its events were seen:

    - ``connect_ms``: TCP connect plus TLS handshake, when this request opened a connection
      (0 when it reused one).
    - ``ttfb_ms``: from ``sent`` until the response headers had been received.
    - ``download_ms``: reading the response body, from its first read to its last.
    """
    starts: dict[str, float] = {}
    ends: dict[str, float] = {}
    for name, t in events:
        # "connection.connect_tcp.started", "http2.receive_response_body.complete", ...
        _, _, step = name.partition(".")
        step, _, edge = step.rpartition(".")
        if edge == "started":
            starts.setdefault(step, t)
        elif edge in ("complete", "failed"):
            ends[step] = t
    phases: dict[str, float] = {}
    connect_s = 0.0
    for step in ("connect_tcp", "start_tls"):
        if step in starts and step in ends:
            connect_s += ends[step] - starts[step]
    phases["connect_ms"] = round(connect_s * 1000.0, 3)
    if "receive_response_headers" in ends:
        phases["ttfb_ms"] = round((ends["receive_response_headers"] - sent) * 1000.0, 3)
    if "receive_response_body" in starts and "receive_response_body" in ends:
        download_s = ends["receive_response_body"] - starts["receive_response_body"]
        phases["download_ms"] = round(download_s * 1000.0, 3)
    return phases


PHASES = ("connect_ms", "ttfb_ms", "download_ms")


def phase_summaries(requests: Any) -> dict[str, Any]:
    """Percentiles of the per-request phases (``--http2`` path) over the given request records.

    ``{"connect_ms": {...}, "ttfb_ms": {...}, "download_ms": {...}, "new_connections": n}``;
    empty when no request carries them. ``connect_ms`` is over the requests that opened a
    connection (a reused one costs 0 and would hide the set-up cost).
    """
    if not all(p in requests for p in PHASES):
        return {}
    ttfb = requests["ttfb_ms"].to_numpy(dtype=np.float64)
    if not np.isfinite(ttfb).any():
        return {}
    connect = requests["connect_ms"].to_numpy(dtype=np.float64)
    download = requests["download_ms"].to_numpy(dtype=np.float64)
    opened = connect[np.isfinite(connect) & (connect > 0)]
    return {
        "connect_ms": stats.latency_summary(opened),
        "new_connections": int(opened.size),
        "ttfb_ms": stats.latency_summary(ttfb[np.isfinite(ttfb)]),
        "download_ms": stats.latency_summary(download[np.isfinite(download)]),
    }
