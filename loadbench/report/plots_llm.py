"""LLM report plots: TTFT and ITL distributions, output tokens per second, TPOT against concurrency.

Consumes plain numpy arrays (per-request TTFT and TPOT in ms, every inter-token gap in ms,
token and request times in seconds since the run start) and the analyzer's per-second
``timeseries.csv`` frame (for the warmup shading); produces `matplotlib.figure.Figure` objects
with the look of `loadbench.report.plots` (whose helpers these reuse; PNG via `plotkit.figure_to_png`).
The per-second arithmetic (`per_second_tokens`, `mean_in_flight`, `median_per_second`) is
vectorized: sorts, prefix sums and bincounts, never a loop over requests.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd
from matplotlib.figure import Figure

from loadbench.report.plotdata_hist import Histogram, histogram_of
from loadbench.report.plotkit import (
    C_OK,
    C_P50,
    C_P99,
    contiguous,
    label_time_axes,
    legend,
    new_figure,
    no_data,
    second_edges,
    shade_warmup,
    short_ms,
)

C_TTFT = "#9467bd"
C_ITL = "#1f77b4"
C_TOKENS = "#2ca02c"

FloatArray = npt.NDArray[np.float64]


def per_second_tokens(times_s: npt.ArrayLike, weights: npt.ArrayLike, seconds: int) -> FloatArray:
    """Sum of ``weights`` per whole second ``[s, s + 1)`` of ``seconds``; times outside are dropped."""
    t = np.asarray(times_s, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    second = np.floor(t)
    keep = np.isfinite(second) & (second >= 0) & (second < seconds) & np.isfinite(w)
    return np.bincount(second[keep].astype(np.int64), weights=w[keep], minlength=max(seconds, 0)).astype(
        np.float64
    )[: max(seconds, 0)]


def mean_in_flight(start_s: npt.ArrayLike, end_s: npt.ArrayLike, seconds: int) -> FloatArray:
    """Mean number of requests in flight during each whole second: the total overlap of the
    intervals ``[start, end]`` with ``[s, s + 1)``, in seconds.

    The in-flight count integrated up to time e is ``sum over starts before e of (e − start)``
    minus the same over ends: two sorted prefix sums evaluated at the second edges.
    """
    start = np.asarray(start_s, dtype=np.float64)
    end = np.asarray(end_s, dtype=np.float64)
    keep = np.isfinite(start) & np.isfinite(end) & (end >= start)
    edges = np.arange(max(seconds, 0) + 1, dtype=np.float64)

    def integral(points: FloatArray) -> FloatArray:
        points = np.sort(points)
        prefix = np.concatenate([[0.0], np.cumsum(points)])
        n = np.searchsorted(points, edges, side="left")
        area: FloatArray = edges * n - prefix[n]
        return area

    area = integral(start[keep]) - integral(end[keep])
    return np.diff(area)


def median_per_second(second: npt.ArrayLike, values: npt.ArrayLike, seconds: int) -> FloatArray:
    """Median of ``values`` per whole second (NaN for a second without any)."""
    s = np.asarray(second, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    keep = np.isfinite(s) & np.isfinite(v) & (s >= 0) & (s < seconds)
    out = np.full(max(seconds, 0), np.nan)
    if keep.any():
        medians = pd.Series(v[keep]).groupby(s[keep].astype(np.int64)).median()
        out[medians.index.to_numpy()] = medians.to_numpy()
    return out


def time_distribution(data: Histogram | npt.ArrayLike, title: str, what: str, color: str) -> Figure:
    """Histogram of times in ms (log-spaced bins when they spread widely), p50 / p90 / p99 marked;
    ``data``: the `Histogram` (`loadbench.report.plotdata_hist`) or the times themselves."""
    fig, ax = new_figure(title)
    hist = data if isinstance(data, Histogram) else histogram_of(data)
    if hist.n == 0:
        return no_data(fig, ax, f"no {what}")
    if hist.log:
        ax.set_xscale("log")
    # Each bin's left edge weighted by its count: the bars ``ax.hist`` draws of the values.
    ax.hist(
        hist.edges[:-1], bins=hist.edges.tolist(), weights=hist.counts[0], color=color, alpha=0.75,
        label=f"{what} ({hist.n:,})",
    )  # fmt: skip
    for q, c, x in zip((50.0, 90.0, 99.0), (C_P50, "#8c564b", C_P99), hist.marks, strict=True):
        ax.axvline(x, color=c, lw=1.3, ls="--", label=f"p{q:g} {short_ms(x)}")
    ax.set_xlabel(f"{what} (ms)")
    ax.set_ylabel("count")
    ax.grid(True, alpha=0.35)
    ax.set_ylim(bottom=0)
    legend(ax)
    return fig


def ttft_distribution(ttft: Histogram | npt.ArrayLike) -> Figure:
    """TTFT of the window's successful streamed requests."""
    return time_distribution(ttft, "Time to first token", "TTFT", C_TTFT)


def itl_distribution(gaps: Histogram | npt.ArrayLike) -> Figure:
    """Every inter-token gap of the window's successful streamed requests."""
    return time_distribution(gaps, "Inter-token latency", "inter-token gap", C_ITL)


def tokens_over_time(tokens_per_s: npt.ArrayLike, timeseries: pd.DataFrame | None) -> Figure:
    """Output tokens delivered per second of the run (one value per second from 0), warmup shaded."""
    fig, ax = new_figure("Output tokens per second")
    values = np.asarray(tokens_per_s, dtype=np.float64)
    if values.size == 0:
        return no_data(fig, ax, "no data")
    ts = contiguous(timeseries)
    ts = ts[(ts["second"] >= 0) & (ts["second"] < values.size)] if not ts.empty else ts
    label_time_axes(ax, "output tokens per second")
    shade_warmup(ax, ts)
    edges = np.arange(values.size + 1, dtype=np.float64)
    if not ts.empty and len(ts) == values.size:
        edges = second_edges(ts)
    ax.stairs(values, edges, color=C_TOKENS, lw=1.4, label="output tokens/s")
    ax.set_xlim(edges[0], edges[-1])
    ax.set_ylim(bottom=0, top=max(float(values.max()) * 1.05, 1.0))
    legend(ax)
    return fig


def tpot_vs_concurrency(in_flight: npt.ArrayLike, tpot_p50_ms: npt.ArrayLike) -> Figure:
    """Per second of the measured window: median TPOT of the requests started in it against the
    mean number of requests in flight during it."""
    fig, ax = new_figure("TPOT against concurrency")
    x = np.asarray(in_flight, dtype=np.float64)
    y = np.asarray(tpot_p50_ms, dtype=np.float64)
    keep = np.isfinite(x) & np.isfinite(y)
    if not keep.any():
        return no_data(fig, ax, "no TPOT measured")
    ax.scatter(
        x[keep], y[keep], s=16, alpha=0.6, color=C_OK, linewidths=0, label=f"one second ({int(keep.sum()):,})"
    )
    ax.set_xlabel("requests in flight (mean over the second)")
    ax.set_ylabel("median TPOT (ms)")
    ax.grid(True, alpha=0.35)
    ax.set_xlim(left=0, right=max(float(x[keep].max()) * 1.05, 1.0))
    ax.set_ylim(bottom=0, top=max(float(y[keep].max()) * 1.1, 1e-3))
    legend(ax)
    return fig
