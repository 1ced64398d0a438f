"""Report fragments for where the time goes: the network's and the server's share of latency.

Consumes ``summary.json``'s ``latency_breakdown`` (`loadbench.analyze.network.latency_breakdown`: the
round-trip estimate and the server's part of p50; ``phases_ms``: per-request connect, time to
first byte and download percentiles, ``--http2`` path only), ``service_time_ms`` and
``meta.json``'s ``network``. Produces the "Where the time goes" section of ``report.html``
(always there: without the data it says why) and one line for ``summary.md`` (only with the
data). Everything from the run is escaped by the report module's helpers.
"""

from __future__ import annotations

from typing import Any

from loadbench.report.fmt import as_dict, format_count, format_ms, format_pct, num
from loadbench.report.html import esc, grid_table, kv_table
from loadbench.report.markdown import md

# (key in phases_ms, label): the phases of one request, in the order they happen.
PHASES = (
    ("connect_ms", "connection set-up (TCP + TLS), new connections only"),
    ("ttfb_ms", "time to first byte (send → response headers)"),
    ("download_ms", "download (reading the body)"),
)
NO_PHASES = (
    "Per-request phases (connect, time to first byte, download) are recorded on the --http2 path "
    "only: the default HTTP/1.1 client (Locust's FastHttpUser, geventhttpclient) exposes no hook "
    "for them, so it records each request's total latency only."
)
NO_BREAKDOWN = (
    "No breakdown for this run: it needs a round-trip estimate (TCP connects to the target "
    "before the load; none succeeded, or the run predates them) and a successful request."
)


def _server_share(breakdown: dict[str, Any]) -> float | None:
    share = num(breakdown.get("network_share_p50"))
    return None if share is None else 1.0 - share


SOURCES = {
    "header": "the server's own time per request, from a response header (--server-time-header)",
    "field": "the server's own time per request, from the answer's JSON (--server-time-field)",
    "triton-stats": "Triton's statistics API, read before and after the window (--server-stats)",
    "triton-metrics": "Triton's Prometheus counters, before and after the window (--server-stats / --scrape)",
}
STATS = ("p50", "p90", "p99", "mean")


def processing_html(breakdown: dict[str, Any]) -> str:
    """Processing (the server's own time) vs request time, where the server said its time."""
    if not as_dict(breakdown.get("processing_ms")):
        return ""
    keys = [k for k in STATS if num(as_dict(breakdown.get("processing_ms")).get(k)) is not None]
    rows = []
    for key, label, fmt in (
        ("processing_ms", "processing (the server's own)", format_ms),
        ("request_ms", "request time (latency − processing)", format_ms),
        ("realtime_ratio", "real-time ratio (processing / request time)", _ratio),
        ("processing_share", "processing share of latency", format_pct),
    ):
        values = as_dict(breakdown.get(key))
        rows.append([esc(label), *(esc(fmt(values.get(k))) for k in keys)])
    source = str(breakdown.get("processing_source") or "")
    parts_ms = as_dict(breakdown.get("server_parts_ms"))
    inside = ", ".join(f"{k} {format_ms(v)}" for k, v in parts_ms.items() if num(v) is not None)
    return "\n".join(
        [
            grid_table(["", *keys], rows, numeric=set(range(1, len(keys) + 1))),
            f"<p class='sub'>Source: {esc(SOURCES.get(source, source))}; "
            f"{esc(str(breakdown.get('processing_method') or ''))}"
            f"{esc('; inside the server per request: ' + inside) if inside else ''} "
            "(docs/metrics.md, Processing time).</p>",
        ]
    )


def _ratio(value: Any) -> str:
    number = num(value)
    return "—" if number is None else f"{number:.3g}"


def network_html(summary: dict[str, Any], meta: dict[str, Any]) -> str:
    """The "Where the time goes" section (heading included)."""
    breakdown = as_dict(summary.get("latency_breakdown"))
    parts = ["<h2 id='time'>Where the time goes</h2>"]
    processing = processing_html(breakdown)
    if processing:
        parts.append(processing)
    if num(breakdown.get("network_rtt_ms")) is not None:
        network = as_dict(meta.get("network"))
        samples = format_count(network.get("samples"))
        p50 = as_dict(summary.get("service_time_ms")).get("p50")
        rows = [
            (
                "network round trip (estimate)",
                f"{format_ms(breakdown.get('network_rtt_ms'))} (median of {samples} TCP connects "
                f"before the load; fastest {format_ms(network.get('rtt_ms_min'))})",
            ),
            ("p50 service time", format_ms(p50)),
            (
                "server processing at p50",
                f"{format_ms(breakdown.get('server_ms_p50'))} ({format_pct(_server_share(breakdown))} of p50)",
            ),
            ("network share of p50", format_pct(breakdown.get("network_share_p50"))),
        ]
        parts.append(kv_table((k, esc(v)) for k, v in rows))
        parts.append(
            "<p class='sub'>p50 service time = one network round trip + the rest: the server's "
            "processing, plus the load generator's own send and read time and any proxy between "
            "(docs/metrics.md, Latency breakdown).</p>"
        )
    elif processing:
        parts.append(
            "<p class='sub'>No network round-trip estimate for this run (no TCP connect before the load succeeded).</p>"
        )
    else:
        parts.append(f"<p class='sub'>{esc(NO_BREAKDOWN)}</p>")
    phases = as_dict(breakdown.get("phases_ms"))
    if phases:
        rows_p = []
        for key, label in PHASES:
            values = as_dict(phases.get(key))
            rows_p.append([esc(label), esc(format_ms(values.get("p50"))), esc(format_ms(values.get("p99")))])
        parts.append(grid_table(["phase", "p50", "p99"], rows_p, numeric={1, 2}))
        parts.append(
            f"<p class='sub'>Per request, from httpx's trace (--http2), over the window's successful "
            f"requests; {esc(format_count(phases.get('new_connections')))} of them opened a connection.</p>"
        )
    else:
        parts.append(f"<p class='sub'>{esc(NO_PHASES)}</p>")
    return "\n".join(parts)


def network_markdown(summary: dict[str, Any]) -> list[str]:
    """One line for ``summary.md``; nothing when the run has no breakdown."""
    breakdown = as_dict(summary.get("latency_breakdown"))
    items = []
    if num(breakdown.get("network_rtt_ms")) is not None:
        items.append(
            f"network round trip {format_ms(breakdown.get('network_rtt_ms'))} "
            f"({format_pct(breakdown.get('network_share_p50'))} of p50), "
            f"server {format_ms(breakdown.get('server_ms_p50'))} at p50"
        )
    processing = as_dict(breakdown.get("processing_ms"))
    stat = "p50" if num(processing.get("p50")) is not None else "mean"
    if num(processing.get(stat)) is not None:
        items.append(
            f"processing {format_ms(processing.get(stat))} at {stat} "
            f"(request time {format_ms(as_dict(breakdown.get('request_ms')).get(stat))}, "
            f"{breakdown.get('processing_source')})"
        )
    phases = as_dict(breakdown.get("phases_ms"))
    for key, label in (("connect_ms", "connect"), ("ttfb_ms", "TTFB"), ("download_ms", "download")):
        values = as_dict(phases.get(key))
        if num(values.get("p50")) is not None:
            items.append(f"{label} p50 {format_ms(values.get('p50'))} / p99 {format_ms(values.get('p99'))}")
    if not items:
        return []
    return ["", "**Where the time goes:** " + md("; ".join(items))]
