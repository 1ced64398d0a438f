"""Report fragments for the replicas that served the run (``--replica-header``).

Consumes ``summary.json`` ``replicas`` (`loadbench.analyze.replicas`) and the records' ``replica``
column; produces the "Replicas" section of ``report.html`` (a table per replica and the latency
over time coloured by replica) and one table for ``summary.md``. Nothing without the section.
Replica names come from the server's answers: escaped like any server text.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from loadbench.report import plotkit
from loadbench.report.fmt import as_dict, as_list, format_count, format_ms, format_pct, format_rate
from loadbench.report.html import esc, figure_html, grid_table
from loadbench.report.markdown import md_table

HEADERS = ("replica", "requests", "share", "errors", "error rate", "throughput", "p50", "p90", "p99", "max")
NUMERIC = tuple(range(1, len(HEADERS)))
_CAPTION = (
    "Latency over time by replica",
    "Each dot is one successful request, coloured by the replica that served it (its answer's "
    "replica header); a seeded sample beyond the plot's point budget. Grey: warmup, excluded.",
)


def _rows(section: dict[str, Any]) -> list[list[str]]:
    rows = []
    for r in as_list(section.get("replicas")):
        lat = as_dict(r.get("latency_ms"))
        rows.append(
            [
                str(r.get("replica")),
                format_count(r.get("requests")),
                format_pct(r.get("share")),
                format_count(r.get("errors")),
                format_pct(r.get("error_rate")),
                format_rate(r.get("throughput_rps")),
                *(format_ms(lat.get(k)) for k in ("p50", "p90", "p99", "max")),
            ]
        )
    return rows


def _said(section: dict[str, Any]) -> str:
    imbalance = section.get("imbalance")
    parts = [f"{section.get('count', 0)} replica(s) from the {section.get('source')}"]
    if imbalance is not None:
        parts.append(f"imbalance {imbalance:.2f} (the busiest replica's share over an even share; 1 is even)")
    if section.get("unattributed"):
        parts.append(f"{format_count(section.get('unattributed'))} request(s) named no replica")
    return "; ".join(parts) + "."


def latency_by_replica(
    requests: pd.DataFrame, run_start: float, timeseries: pd.DataFrame | None
) -> Figure | None:
    """Successful requests' latency over time, one colour per replica; None without replicas."""
    if "replica" not in requests.columns:
        return None
    names = requests["replica"].astype("string").fillna("")
    ok = requests["ok"].to_numpy().astype(bool) & (names != "").to_numpy()
    if not ok.any():
        return None
    fig, ax = plotkit.new_figure("Latency over time by replica")
    start = requests["start_unix_s"].to_numpy(dtype=float) - run_start
    latency = requests["latency_ms"].to_numpy(dtype=float)
    shown = np.flatnonzero(ok)
    keep = shown[plotkit.downsample_indices(shown.size, 20_000)]
    for i, name in enumerate(sorted(set(names.to_numpy()[keep].tolist()))):
        pick = keep[names.to_numpy()[keep] == name]
        colour = plotkit.SERIES_COLORS[i % len(plotkit.SERIES_COLORS)]
        ax.scatter(start[pick], latency[pick], s=4, alpha=0.5, color=colour, label=str(name), rasterized=True)
    ts = plotkit.contiguous(timeseries)
    if not ts.empty:
        plotkit.shade_warmup(ax, ts)
    plotkit.label_time_axes(ax, "latency (ms)")
    plotkit.legend(ax)
    return fig


def replicas_html(
    summary: dict[str, Any], requests: pd.DataFrame, run_start: float, timeseries: pd.DataFrame | None
) -> str:
    """The "Replicas" section (heading included); "" when the run has no replica section."""
    section = as_dict(summary.get("replicas"))
    if not section:
        return ""
    parts = ["<h2 id='replicas'>Replicas</h2>", f"<p class='sub'>{esc(_said(section))}</p>"]
    rows = _rows(section)
    if rows:
        parts.append(grid_table(HEADERS, [[esc(c) for c in r] for r in rows], numeric=NUMERIC))
    for notice in as_list(section.get("notices")):
        parts.append(f"<p class='sub'>{esc(notice)}</p>")
    fig = latency_by_replica(requests, run_start, timeseries)
    if fig is not None:
        parts.append(figure_html("plot-replicas", plotkit.figure_to_png(fig), *_CAPTION))
    return "\n".join(parts)


def replicas_markdown(summary: dict[str, Any]) -> list[str]:
    """The per-replica table for ``summary.md``; nothing without replicas."""
    section = as_dict(summary.get("replicas"))
    rows = _rows(section) if section else []
    if not rows:
        return []
    return ["", f"**Replicas:** {_said(section)}", "", *md_table(HEADERS, rows, numeric=NUMERIC)]
