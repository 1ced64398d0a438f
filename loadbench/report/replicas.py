"""Report fragments for the replicas that served the run (``--replica-header``), and the pieces
every "who served it" section shares (`loadbench.report.targets` draws its own with them).

Consumes ``summary.json`` ``replicas`` (`loadbench.analyze.replicas`) and the records' ``replica``
column; produces the "Replicas" section of ``report.html`` (a table per replica and the latency
over time coloured by replica) and one table for ``summary.md``. Nothing without the section.
Replica names come from the server's answers: escaped like any server text.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from loadbench.analyze.replicas import group_order
from loadbench.report import plotkit
from loadbench.report.fmt import as_dict, as_list, format_count, format_ms, format_pct, format_rate
from loadbench.report.html import esc, figure_html, grid_table
from loadbench.report.markdown import md_table
from loadbench.report.plotdata_routes import NamedPoints, named_points


def _latency(key: str) -> Callable[[dict[str, Any]], str]:
    return lambda r: format_ms(as_dict(r.get("latency_ms")).get(key))


# The figures of one replica's or target's entry (`loadbench.analyze.replicas.group_stats`), by
# column heading; a section's table picks its columns from these.
CELLS: dict[str, Callable[[dict[str, Any]], str]] = {
    "requests": lambda r: format_count(r.get("requests")),
    "share": lambda r: format_pct(r.get("share")),
    "errors": lambda r: format_count(r.get("errors")),
    "error rate": lambda r: format_pct(r.get("error_rate")),
    "throughput": lambda r: format_rate(r.get("throughput_rps")),
    **{key: _latency(key) for key in ("p50", "p90", "p99", "max")},
}
HEADERS = ("replica", "requests", "share", "errors", "error rate", "throughput", "p50", "p90", "p99", "max")
NUMERIC = tuple(range(1, len(HEADERS)))
_CAPTION = (
    "Latency over time by replica",
    "Each dot is one successful request, coloured by the replica that served it (its answer's "
    "replica header); a seeded sample beyond the plot's point budget. Grey: warmup, excluded.",
)


def table_rows(entries: Any, name_key: str, headers: Sequence[str]) -> list[list[str]]:
    """One row per entry: its ``name_key`` first, then the `CELLS` named by ``headers[1:]``."""
    return [
        [str(r.get(name_key)), *(CELLS[h](r) for h in headers[1:])] for r in map(as_dict, as_list(entries))
    ]


def _rows(section: dict[str, Any]) -> list[list[str]]:
    return table_rows(section.get("replicas"), "replica", HEADERS)


def _said(section: dict[str, Any]) -> str:
    imbalance = section.get("imbalance")
    parts = [f"{section.get('count', 0)} replica(s) from the {section.get('source')}"]
    if imbalance is not None:
        parts.append(f"imbalance {imbalance:.2f} (the busiest replica's share over an even share; 1 is even)")
    if section.get("unattributed"):
        parts.append(f"{format_count(section.get('unattributed'))} request(s) named no replica")
    return "; ".join(parts) + "."


def latency_by(
    records: pd.DataFrame,
    column: str,
    title: str,
    run_start: float,
    timeseries: pd.DataFrame | None,
    listed: Sequence[str] = (),
) -> Figure | None:
    """Successful records' latency over time, one colour per value of ``column`` (in
    `loadbench.analyze.replicas.group_order`); None when no successful record has one."""
    return latency_by_points(named_points(records, column, run_start), title, timeseries, listed)


def latency_by_points(
    points: NamedPoints | None, title: str, timeseries: pd.DataFrame | None, listed: Sequence[str] = ()
) -> Figure | None:
    """`latency_by` of the records already sampled (`loadbench.report.plotdata_routes`)."""
    if points is None:
        return None
    fig, ax = plotkit.new_figure(title)
    names = points.names
    for i, name in enumerate(group_order(names.tolist(), listed)):
        pick = names == name
        if not pick.any():
            continue  # the colour stays its own, as in the other plots of its section
        colour = plotkit.SERIES_COLORS[i % len(plotkit.SERIES_COLORS)]
        label = plotkit.legend_text(name)
        ax.scatter(
            points.start_s[pick],
            points.latency_ms[pick],
            s=4,
            alpha=0.5,
            color=colour,
            label=label,
            rasterized=True,
        )
    ts = plotkit.contiguous(timeseries)
    if not ts.empty:
        plotkit.shade_warmup(ax, ts)
    plotkit.label_time_axes(ax, "latency (ms)")
    plotkit.legend(ax)
    return fig


def replicas_html(
    summary: dict[str, Any], timeseries: pd.DataFrame | None, points: NamedPoints | None
) -> str:
    """The "Replicas" section (heading included); "" when the run has no replica section.
    ``points``: the scatter's sample of the attempts, each its own (each attempt's answer named
    its replica: `loadbench.report.sectiondata`); no plot without it."""
    section = as_dict(summary.get("replicas"))
    if not section:
        return ""
    parts = ["<h2 id='replicas'>Replicas</h2>", f"<p class='sub'>{esc(_said(section))}</p>"]
    rows = _rows(section)
    if rows:
        parts.append(grid_table(HEADERS, [[esc(c) for c in r] for r in rows], numeric=NUMERIC))
    for notice in as_list(section.get("notices")):
        parts.append(f"<p class='sub'>{esc(notice)}</p>")
    fig = None if points is None else latency_by_points(points, "Latency over time by replica", timeseries)
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
