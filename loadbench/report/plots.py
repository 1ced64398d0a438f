"""Report plots: matplotlib figures built from plain arrays and frames, and PNG encoding.

Consumes numpy arrays of per-request data (start offsets in seconds since the run start,
latencies in ms, ok flags), the analyzer's per-second ``timeseries.csv`` as a DataFrame
(columns ``second, requests, ok, errors, p50_ms, p99_ms, users, in_warmup``) and, for the
stacked resources figure (`loadbench.report.plots_resources`, re-exported here), the sampler's
resource samples; produces `matplotlib.figure.Figure` objects. No paths, no pyplot: figures are created
directly so there is no global state and plotting is safe from any thread.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, NullLocator

from loadbench.report.plotdata import (
    MAX_ERROR_POINTS,
    MAX_POINTS,
    PERCENTILE_MARKS,
    PercentileCurve,
    ScatterPoints,
    curve_of,
    scatter_points,
)
from loadbench.report.plotkit import (
    C_ERR,
    C_OK,
    C_P50,
    C_P99,
    C_USERS,
    LOG_SPREAD,
    SERIES_COLORS,
    contiguous,
    downsample_indices,
    label_time_axes,
    legend,
    new_figure,
    no_data,
    second_edges,
    set_time_xlim,
    shade_warmup,
    short_ms,
)
from loadbench.report.plots_resources import (
    MAX_SAMPLES,
    PANEL_HEIGHT,
    resources_over_time,
)

MAX_KINDS = 7  # error kinds stacked separately; the rest are drawn as "other"

KIND_COLORS = ("#d62728", "#9467bd", "#8c564b", "#e377c2", "#ff7f0e", "#bcbd22", "#17becf", "#7f7f7f")

__all__ = [
    "KIND_COLORS",
    "MAX_ERROR_POINTS",
    "MAX_KINDS",
    "MAX_POINTS",
    "MAX_SAMPLES",
    "PANEL_HEIGHT",
    "PERCENTILE_MARKS",
    "SERIES_COLORS",
    "downsample_indices",
    "errors_over_time",
    "latency_over_time",
    "latency_percentiles",
    "latency_scatter",
    "percentile_figure",
    "percentile_label",
    "resources_over_time",
    "throughput_over_time",
]


def latency_over_time(
    start_s: npt.ArrayLike,
    latency_ms: npt.ArrayLike,
    ok: npt.ArrayLike,
    timeseries: pd.DataFrame | None = None,
) -> Figure:
    """Scatter of request latencies over time with per-second p50/p99 lines; warmup shaded.

    ``start_s`` is each request's start in seconds since the run start.
    """
    return latency_scatter(scatter_points(start_s, latency_ms, ok), timeseries)


def latency_scatter(points: ScatterPoints, timeseries: pd.DataFrame | None = None) -> Figure:
    """`latency_over_time` of requests already sampled (`loadbench.report.plotdata`)."""
    fig, ax = new_figure("Latency over time")
    ts = contiguous(timeseries)
    if points.start_range is None and ts.empty:
        return no_data(fig, ax, "no data")
    label_time_axes(ax, "latency (ms)")
    shade_warmup(ax, ts)

    shown_ok, shown_err = points.ok_latency_ms, points.err_latency_ms
    if points.ok_total:
        label = "successful request"
        if shown_ok.size < points.ok_total:
            label += f" ({shown_ok.size:,} of {points.ok_total:,} shown)"
        # Fewer points can be drawn bigger and darker; many need transparency to show density.
        size, alpha = (4, 0.25) if shown_ok.size > 5000 else (9, 0.5)
        ax.scatter(points.ok_start_s, shown_ok, s=size, alpha=alpha, color=C_OK, linewidths=0, label=label)
    if points.err_total:
        label = "failed request"
        if shown_err.size < points.err_total:
            label += f" ({shown_err.size:,} of {points.err_total:,} shown)"
        ax.scatter(points.err_start_s, shown_err, s=14, marker="x", color=C_ERR, linewidths=0.8, label=label)
    if not ts.empty:
        mid = ts["second"].to_numpy(dtype=float) + 0.5  # a row covers [second, second + 1)
        ax.plot(mid, ts["p50_ms"].to_numpy(dtype=float), color=C_P50, lw=1.4, label="p50 per second")
        ax.plot(mid, ts["p99_ms"].to_numpy(dtype=float), color=C_P99, lw=1.4, label="p99 per second")

    values = np.concatenate(
        [shown_ok, shown_err, ts["p50_ms"].to_numpy(dtype=float), ts["p99_ms"].to_numpy(dtype=float)]
    )
    values = values[np.isfinite(values) & (values > 0)]
    if values.size and values.max() / values.min() > LOG_SPREAD:
        ax.set_yscale("log")
    else:
        ax.set_ylim(bottom=0)
    set_time_xlim(ax, np.array(points.start_range or (), dtype=float), ts)
    legend(ax)
    return fig


def latency_percentiles(latency_ms: npt.ArrayLike) -> Figure:
    """HdrHistogram-style percentile distribution: latency against percentile on a 1/(1-q) axis.

    Pass successful requests' latencies from the measured window so the marks match the summary.
    """
    return percentile_figure(curve_of(latency_ms))


def percentile_figure(curve: PercentileCurve) -> Figure:
    """`latency_percentiles` of a curve already computed (`loadbench.report.plotdata`)."""
    fig, ax = new_figure("Latency by percentile")
    n = curve.n
    if n == 0:
        return no_data(fig, ax, "no successful requests")
    top = max(float(n), 10.0)
    ax.plot(curve.x, curve.y, color=C_OK, lw=1.6, label="latency at percentile")
    ax.set_xscale("log")
    ax.set_xlim(1.0, top)
    decades = int(np.floor(np.log10(top) + 1e-9))
    ax.xaxis.set_major_locator(FixedLocator([10.0**k for k in range(decades + 1)]))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticklabels([percentile_label(k) for k in range(decades + 1)])
    ax.set_xlabel("percentile")
    ax.set_ylabel("latency (ms)")
    ax.grid(True, which="major", alpha=0.35)

    for p, xp, yp in curve.marks:
        ax.plot([xp], [yp], "o", color=C_P99, ms=5, zorder=3)
        ax.annotate(
            f"p{p:g}: {short_ms(yp)}",
            (xp, yp),
            textcoords="offset points",
            xytext=(6, -6),  # below-right: the curve only rises to the right, so this is free
            ha="left",
            va="top",
            fontsize=8,
        )
    if curve.min_positive is not None and curve.maximum / curve.min_positive > LOG_SPREAD:
        ax.set_yscale("log")
    else:
        ax.set_ylim(bottom=0, top=curve.maximum * 1.12 or 1.0)
    ax.text(
        0.01,
        0.97,
        f"{n:,} successful requests · max {short_ms(curve.maximum)}",
        transform=ax.transAxes,
        va="top",
        fontsize=8,
        color="#444444",
    )
    return fig


def throughput_over_time(timeseries: pd.DataFrame | None) -> Figure:
    """Successful and failed requests per second, with active users on a second y axis."""
    fig, ax = new_figure("Throughput over time")
    ts = contiguous(timeseries)
    if ts.empty:
        return no_data(fig, ax, "no data")
    label_time_axes(ax, "requests per second")
    shade_warmup(ax, ts)
    edges = second_edges(ts)
    ax.stairs(ts["ok"].to_numpy(dtype=float), edges, color=C_OK, lw=1.4, label="successful req/s")
    ax.stairs(ts["errors"].to_numpy(dtype=float), edges, color=C_ERR, lw=1.2, label="failed req/s")
    ax.set_ylim(bottom=0)
    ax.set_xlim(edges[0], edges[-1])

    users = ts["users"].to_numpy(dtype=float)
    handles: list[Any] = []
    ax2: Axes | None = None
    if np.isfinite(users).any():
        ax2 = ax.twinx()
        # Append the last value so the step line reaches the end of the last second.
        (line,) = ax2.step(
            edges,
            np.append(users, users[-1]),
            where="post",
            color=C_USERS,
            lw=1.0,
            ls="--",
            label="active users",
        )
        handles = [line]
        ax2.set_ylabel("active users")
        ax2.set_ylim(bottom=0, top=max(float(np.nanmax(users)) * 1.05, 1.0))
    legend(ax, extra=handles, twin=ax2)
    return fig


def errors_over_time(timeseries: pd.DataFrame | None, errors_by_kind: pd.DataFrame | None = None) -> Figure:
    """Failed requests per second, stacked by kind when ``errors_by_kind`` is given.

    ``errors_by_kind`` has columns ``second, kind, count``; without it the timeseries'
    ``errors`` column is drawn as one series.
    """
    fig, ax = new_figure("Errors over time")
    ts = contiguous(timeseries)
    if ts.empty:
        return no_data(fig, ax, "no data")
    label_time_axes(ax, "failed requests per second")
    shade_warmup(ax, ts)
    edges = second_edges(ts)
    ax.set_xlim(edges[0], edges[-1])
    total = float(np.nansum(ts["errors"].to_numpy(dtype=float)))
    by_kind = errors_by_kind if errors_by_kind is not None and not errors_by_kind.empty else None
    if total == 0 and by_kind is None:
        ax.set_ylim(0, 1)
        ax.text(
            0.5,
            0.5,
            "no errors",
            transform=ax.transAxes,
            ha="center",
            va="center",
            fontsize=16,
            color="#2e7d32",
        )
        legend(ax)
        return fig

    if by_kind is None:
        ax.stairs(
            ts["errors"].to_numpy(dtype=float), edges, fill=True, color=C_ERR, alpha=0.8, label="errors"
        )
    else:
        table = _kind_table(by_kind, ts["second"].to_numpy())
        bottom = np.zeros(len(ts))
        for i, kind in enumerate(table.columns):
            counts = table[kind].to_numpy(dtype=float)
            color = KIND_COLORS[i % len(KIND_COLORS)]
            ax.stairs(bottom + counts, edges, baseline=bottom, fill=True, color=color, alpha=0.85, label=kind)
            bottom = bottom + counts
    ax.set_ylim(bottom=0)
    legend(ax)
    return fig


def _kind_table(by_kind: pd.DataFrame, seconds: npt.NDArray[Any]) -> pd.DataFrame:
    """Seconds x kinds count table, most frequent kinds first, the tail folded into "other"."""
    frame = by_kind[["second", "kind", "count"]].copy()
    frame["kind"] = frame["kind"].astype(str)
    totals = frame.groupby("kind")["count"].sum().sort_values(ascending=False, kind="stable")
    if len(totals) > MAX_KINDS:
        keep = set(totals.index[: MAX_KINDS - 1])
        frame["kind"] = frame["kind"].where(frame["kind"].isin(keep), "other")
        order = [k for k in totals.index if k in keep] + ["other"]
    else:
        order = list(totals.index)
    table = frame.pivot_table(index="second", columns="kind", values="count", aggfunc="sum", fill_value=0)
    return table.reindex(index=seconds, columns=order, fill_value=0).fillna(0)


def percentile_label(decade: int) -> str:
    """Tick label for x = 10**decade on the 1/(1-q) axis: 0%, 90%, 99%, 99.9%, ..."""
    if decade == 0:
        return "0%"
    return f"{100.0 - 100.0 / 10.0**decade:.{max(decade - 2, 0)}f}%"
