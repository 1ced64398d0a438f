"""Report plots for quality under load and the real-time factor (media models).

Consumes the per-second accuracy frame of `loadbench.analyze.quality.accuracy_per_second`, the rolling
macro scores of `loadbench.analyze.quality.macro_scores_rolling`, the analyzer's ``timeseries.csv`` (for
the warmup shading) and per-request RTF values; produces matplotlib figures, drawn like
`loadbench.report.plots` (no pyplot, no global state).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

from loadbench.report.plotdata_hist import Histogram
from loadbench.report.plotdata_quality import rtf_histogram_of
from loadbench.report.plotkit import (
    C_ERR,
    C_OK,
    C_P50,
    C_P99,
    C_USERS,
    DPI,
    FIGSIZE,
    contiguous,
    label_time_axes,
    legend,
    new_figure,
    no_data,
    shade_warmup,
)

C_ACCURACY = "#2ca02c"
C_ANSWERED = "#1f77b4"
C_F1 = "#9467bd"
C_PRECISION = "#ff7f0e"
C_RECALL = "#8c564b"


def quality_over_time(
    per_second: pd.DataFrame,
    timeseries: pd.DataFrame | None = None,
    rolling: pd.DataFrame | None = None,
    window_s: int | None = None,
) -> Figure:
    """Top: accuracy per second (failures counted wrong) and over answered requests, with the
    labeled requests per second on a second y axis. Bottom (with ``rolling``, the frame of
    `loadbench.analyze.quality.macro_scores_rolling` over ``window_s`` s windows): macro F1, precision and
    recall over time. Warmup shaded in both."""
    if rolling is None:
        fig, ax = new_figure("Quality over time")
    else:
        fig = Figure(figsize=(FIGSIZE[0], FIGSIZE[1] * 1.7), dpi=DPI, layout="constrained")
        ax, ax_macro = fig.subplots(2, 1, sharex=True)
        ax.set_title("Quality over time", fontsize=11, loc="left")
    if per_second.empty or not (per_second["labeled"] > 0).any():
        return no_data(fig, ax, "no labeled requests")
    label_time_axes(ax, "accuracy")
    ts = contiguous(timeseries)
    shade_warmup(ax, ts)
    seconds = per_second["second"].to_numpy(dtype=float)
    edges = np.append(seconds, seconds[-1] + 1.0) if seconds.size else seconds
    ax.stairs(
        per_second["accuracy"].to_numpy(dtype=float),
        edges,
        color=C_ACCURACY,
        lw=1.6,
        baseline=None,  # no vertical edges down to 0 at the ends
        label="accuracy (failures count wrong)",
    )
    ax.stairs(
        per_second["accuracy_answered"].to_numpy(dtype=float),
        edges,
        color=C_ANSWERED,
        lw=1.1,
        ls="--",
        baseline=None,
        label="accuracy of answered requests",
    )
    ax.set_ylim(0.0, 1.02)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_xlim(edges[0], edges[-1])
    ax2 = ax.twinx()
    labeled = per_second["labeled"].to_numpy(dtype=float)
    (line,) = ax2.step(
        edges,
        np.append(labeled, labeled[-1]),
        where="post",
        color=C_USERS,
        lw=0.9,
        ls=":",
        label="labeled req/s",
    )
    ax2.set_ylabel("labeled requests per second")
    ax2.set_ylim(bottom=0, top=max(float(labeled.max()) * 1.05, 1.0))
    legend(ax, extra=[line], twin=ax2)
    if rolling is not None:
        ax.set_xlabel("")
        _macro_panel(ax_macro, rolling, ts, edges, window_s)
    return fig


def _macro_panel(
    ax: Axes, rolling: pd.DataFrame, ts: pd.DataFrame, edges: npt.NDArray[np.float64], window_s: int | None
) -> None:
    """Macro F1 (solid), precision and recall (thin) over the trailing windows, one step a second."""
    window = f"{window_s} s" if window_s else "rolling"
    label_time_axes(ax, f"macro, {window} window")
    shade_warmup(ax, ts, label=None)
    rolling = rolling.set_index("second").reindex(edges[:-1].astype(np.int64))
    for key, color, lw, ls, label in (
        ("f1", C_F1, 1.6, "-", "macro F1"),
        ("precision", C_PRECISION, 1.0, "--", "macro precision"),
        ("recall", C_RECALL, 1.0, ":", "macro recall"),
    ):
        values = rolling[key].to_numpy(dtype=float)
        ax.stairs(values, edges, color=color, lw=lw, ls=ls, baseline=None, label=f"{label} ({window})")
    ax.set_ylim(0.0, 1.02)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_xlim(edges[0], edges[-1])
    legend(ax)


def rtf_distribution(rtf: Histogram | npt.ArrayLike) -> Figure:
    """Histogram of per-request real-time factors, the RTF = 1 line (real time) and p50/p99;
    ``rtf``: the `Histogram` (`loadbench.report.plotdata_quality.rtf_histogram_of`) or the RTFs."""
    fig, ax = new_figure("Real-time factor")
    hist = rtf if isinstance(rtf, Histogram) else rtf_histogram_of(rtf)
    if hist.n == 0:
        return no_data(fig, ax, "no successful request with a media duration")
    bins = hist.edges.tolist()
    # Each bin's left edge weighted by its counts: the stacked bars ``ax.hist`` draws of the values.
    ax.hist(
        [hist.edges[:-1], hist.edges[:-1]],
        bins=bins,
        weights=[hist.counts[0], hist.counts[1]],
        stacked=True,
        color=[C_OK, C_ERR],
        label=["faster than real time (RTF < 1)", "real time or slower"],
    )
    if hist.log:
        ax.set_xscale("log")
    ax.axvline(1.0, color="#000000", lw=1.2, label="RTF = 1 (real time)")
    p50, p99 = hist.marks
    ax.axvline(p50, color=C_P50, lw=1.1, ls="--", label=f"p50 {p50:.3g}")
    ax.axvline(p99, color=C_P99, lw=1.1, ls="--", label=f"p99 {p99:.3g}")
    ax.set_xlabel("real-time factor: processing time / media duration")
    ax.set_ylabel("requests")
    ax.grid(True, alpha=0.35)
    legend(ax)
    return fig
