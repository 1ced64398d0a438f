"""Report fragments for a run balanced over several targets (``--target`` repeated, ``--balance``).

Consumes ``summary.json`` ``targets`` (`loadbench.analyze.replicas.targets_section`) and the
records' ``target`` column (every attempt its own: each went to one target); produces the
"Targets" section of ``report.html`` (a table per target, the imbalance, the latency over time
coloured by target, and attempts and failures per second per target, where a replica that died
mid-run shows as a window of failures or a shift of share) and its part of ``summary.md``.
Nothing without the section. Target URLs are escaped like any text from the run.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from loadbench.report import plotkit
from loadbench.report.fmt import as_dict, as_list, format_count
from loadbench.report.html import esc, figure_html, grid_table
from loadbench.report.markdown import md_table
from loadbench.report.plotdata_routes import NamedPoints, Traffic
from loadbench.report.replicas import latency_by_points, table_rows

HEADERS = ("target", "share", "requests", "errors", "error rate", "throughput", "p50", "p90", "p99", "max")
NUMERIC = tuple(range(1, len(HEADERS)))
_LATENCY_CAPTION = (
    "Latency over time by target",
    "Each dot is one successful attempt, coloured by the target it was sent to (a retry is a dot of "
    "its own, at its own send); a seeded sample beyond the plot's point budget. Grey: warmup, excluded.",
)
_TRAFFIC_CAPTION = (
    "Requests and errors per second by target",
    "Attempts sent to each target per second (top) and those that failed (bottom), by the second "
    "they were sent in: a target that fails mid-run shows as a window of errors, and its share moving "
    "to the others as the balancer or the retries fail over. Grey: warmup, excluded.",
)


def _said(section: dict[str, Any]) -> str:
    policy = section.get("policy")
    parts = [f"{section.get('count', 0)} target(s)" + (f", balanced {policy}" if policy else "")]
    imbalance = section.get("imbalance")
    if imbalance is not None:
        parts.append(f"imbalance {imbalance:.2f} (the busiest target's share over an even share; 1 is even)")
    parts.append("each target's figures count attempts: a retry counts on the target it went to")
    if section.get("unattributed"):
        parts.append(f"{format_count(section.get('unattributed'))} attempt(s) named no target")
    return "; ".join(parts) + "."


def traffic_figure(series: Traffic | None, timeseries: pd.DataFrame | None) -> Figure | None:
    """Attempts and failed attempts per second, one line per target in ``series``' order (listed
    ones first), from their counts (`loadbench.report.plotdata_routes.traffic`); None without."""
    ts = plotkit.contiguous(timeseries)
    if not series or ts.empty:
        return None
    edges = plotkit.second_edges(ts)
    fig = Figure(
        figsize=(plotkit.FIGSIZE[0], plotkit.FIGSIZE[1] * 1.6), dpi=plotkit.DPI, layout="constrained"
    )
    top, bottom = fig.subplots(2, 1, sharex=True)
    top.set_title("Requests and errors per second by target", fontsize=11, loc="left")
    for i, (name, sent, failed) in enumerate(series):
        colour = plotkit.SERIES_COLORS[i % len(plotkit.SERIES_COLORS)]
        top.stairs(sent, edges, color=colour, lw=1.3, label=plotkit.legend_text(name))
        bottom.stairs(failed, edges, color=colour, lw=1.3)
    for ax, what in ((top, "attempts per second"), (bottom, "failed attempts per second")):
        plotkit.label_time_axes(ax, what)
        plotkit.shade_warmup(ax, ts)
        ax.set_ylim(bottom=0, top=max(ax.get_ylim()[1], 1.0))
        ax.set_xlim(edges[0], edges[-1])
    top.set_xlabel("")
    plotkit.legend(top)
    return fig


def listed_targets(summary: dict[str, Any]) -> list[str]:
    """The targets the summary's table lists, in its order (the plots' colours follow it)."""
    return [r[0] for r in table_rows(as_dict(summary.get("targets")).get("targets"), "url", HEADERS)]


def targets_html(
    summary: dict[str, Any],
    timeseries: pd.DataFrame | None,
    data: tuple[NamedPoints | None, Traffic | None] | None,
) -> str:
    """The "Targets" section (heading included); "" when the run had one target. ``data``: the
    plots' (scatter sample, traffic) of the attempts (`loadbench.report.sectiondata`)."""
    section = as_dict(summary.get("targets"))
    if not section:
        return ""
    parts = ["<h2 id='targets'>Targets</h2>", f"<p class='sub'>{esc(_said(section))}</p>"]
    rows = table_rows(section.get("targets"), "url", HEADERS)
    listed = [r[0] for r in rows]
    if rows:
        cells = [[f"<span class='mono'>{esc(r[0])}</span>", *(esc(c) for c in r[1:])] for r in rows]
        parts.append(grid_table(HEADERS, cells, numeric=NUMERIC))
    for notice in as_list(section.get("notices")):
        parts.append(f"<p class='sub'>{esc(notice)}</p>")
    points, sent = data if data is not None else (None, None)
    fig = latency_by_points(points, "Latency over time by target", timeseries, listed)
    if fig is not None:
        parts.append(figure_html("plot-targets-latency", plotkit.figure_to_png(fig), *_LATENCY_CAPTION))
    fig = traffic_figure(sent, timeseries)
    if fig is not None:
        parts.append(figure_html("plot-targets-traffic", plotkit.figure_to_png(fig), *_TRAFFIC_CAPTION))
    return "\n".join(parts)


def targets_markdown(summary: dict[str, Any]) -> list[str]:
    """The per-target table for ``summary.md``; nothing for a run of one target."""
    section = as_dict(summary.get("targets"))
    if not section:
        return []
    rows = table_rows(section.get("targets"), "url", HEADERS)
    return ["", f"**Targets:** {_said(section)}", "", *md_table(HEADERS, rows, numeric=NUMERIC)]
