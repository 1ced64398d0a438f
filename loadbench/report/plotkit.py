"""The plot kit of every report: figure size, colours, and the helpers each plot is drawn with
(a titled figure, a "no data" panel, time axes, legends that never hide data, warmup shading).
"""

from __future__ import annotations

import io
import warnings
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.image import imsave
from matplotlib.ticker import StrMethodFormatter

FIGSIZE = (9.0, 3.6)  # inches

DPI = 110

LOG_SPREAD = 50.0  # use a log latency axis when max/min exceeds this

C_OK = "#1f77b4"

C_ERR = "#d62728"

C_P50 = "#2ca02c"

C_P99 = "#ff7f0e"

C_USERS = "#555555"

C_WARMUP = "#bbbbbb"

# One colour per series where a figure draws several of a kind (GPUs, runs).
SERIES_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf")


MAX_LABEL = 60  # characters of a legend label taken from the run (a replica, a target URL)


def legend_text(text: str, limit: int = MAX_LABEL) -> str:
    """A label from the run that matplotlib shows as typed: one line, bounded, ``$`` not read as
    mathtext, and a leading ``_`` (which hides a label from the legend) kept visible."""
    text = " ".join(str(text).split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    text = text.replace("$", r"\$")
    return " " + text if text.startswith("_") else text


def figure_to_png(fig: Figure, dpi: int = DPI) -> bytes:
    """Encode a figure as PNG bytes (no timestamp metadata, so output depends only on the figure).

    One draw, then the pixels encoded as ``savefig`` encodes them (byte for byte the same file):
    ``savefig`` draws a figure with a layout engine twice, once without rendering to lay it out and
    once to render, where a canvas's own draw lays out and renders in one pass (a report's plots
    in about 20 % less CPU).
    """
    if fig.get_dpi() != dpi:
        fig.set_dpi(dpi)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()  # type: ignore[no-untyped-call]  # (matplotlib's stubs leave these two untyped)
    pixels = canvas.buffer_rgba()  # type: ignore[no-untyped-call]
    buf = io.BytesIO()
    # None drops the "Software" text, as savefig's metadata does (the stubs want str values).
    no_software: dict[str, Any] = {"Software": None}
    imsave(buf, pixels, format="png", dpi=dpi, metadata=no_software)
    return buf.getvalue()


def figures_to_png(figures: dict[str, Figure | None]) -> dict[str, bytes]:
    """PNG bytes of every figure that was drawn (None: no data for it), by figure id."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # a glyph the font lacks
        return {k: figure_to_png(f) for k, f in figures.items() if f is not None}


def new_figure(title: str) -> tuple[Figure, Axes]:
    fig = Figure(figsize=FIGSIZE, dpi=DPI, layout="constrained")
    ax = fig.add_subplot()
    ax.set_title(title, fontsize=11, loc="left")
    return fig, ax


def no_data(fig: Figure, ax: Axes, message: str) -> Figure:
    ax.set_xticks([])
    ax.set_yticks([])
    ax.text(0.5, 0.5, message, transform=ax.transAxes, ha="center", va="center", fontsize=16, color="#777777")
    return fig


def label_time_axes(ax: Axes, ylabel: str) -> None:
    ax.set_xlabel("time since run start (s)")
    ax.set_ylabel(ylabel)
    ax.yaxis.set_major_formatter(StrMethodFormatter("{x:,.10g}"))
    ax.grid(True, alpha=0.35)


def legend(ax: Axes, extra: list[Any] | None = None, twin: Axes | None = None) -> None:
    """Legend in the upper left, with the y axes raised so it never hides data."""
    handles, labels = ax.get_legend_handles_labels()
    for h in extra or []:
        handles.append(h)
        labels.append(h.get_label())
    if not handles:
        return
    ncols = 2 if len(handles) > 3 else 1
    ax.legend(handles, labels, fontsize=8, loc="upper left", framealpha=0.85, ncols=ncols)
    # Fraction of the axes height the legend takes (8 pt rows on a ~2.8 in high axes).
    share = min(0.5, (-(-len(handles) // ncols) * 0.19 + 0.12) / 2.8)
    for axis in (ax, twin):
        if axis is None:
            continue
        lo, hi = axis.get_ylim()
        if axis.get_yscale() == "log":
            axis.set_ylim(lo, lo * (hi / lo) ** (1.0 / (1.0 - share)))
        else:
            axis.set_ylim(lo, lo + (hi - lo) / (1.0 - share))


def contiguous(timeseries: pd.DataFrame | None) -> pd.DataFrame:
    """The timeseries with one row for every second (gaps filled) and every column present."""
    cols = ["second", "requests", "ok", "errors", "p50_ms", "p99_ms", "users", "in_warmup"]
    if timeseries is None or timeseries.empty or "second" not in timeseries:
        return pd.DataFrame({c: pd.Series([], dtype=float) for c in cols})
    ts = timeseries.copy()
    for c in cols:
        if c not in ts:
            ts[c] = np.nan if c in ("p50_ms", "p99_ms", "users") else 0
    ts = ts[cols].drop_duplicates("second").set_index("second").sort_index()
    full = np.arange(int(ts.index.min()), int(ts.index.max()) + 1)
    ts = ts.reindex(full)
    for c in ("requests", "ok", "errors", "in_warmup"):
        ts[c] = ts[c].fillna(0)
    return ts.rename_axis("second").reset_index()


def second_edges(ts: pd.DataFrame) -> npt.NDArray[np.float64]:
    first = float(ts["second"].iloc[0])
    return first + np.arange(len(ts) + 1, dtype=float)


def shade_warmup(ax: Axes, ts: pd.DataFrame, label: str | None = "warmup (excluded)") -> None:
    """Shade each run of consecutive warmup seconds; label only the first span."""
    if ts.empty:
        return
    warm = ts["in_warmup"].to_numpy(dtype=float) > 0
    seconds = ts["second"].to_numpy(dtype=float)
    i = 0
    while i < warm.size:
        if not warm[i]:
            i += 1
            continue
        j = i
        while j + 1 < warm.size and warm[j + 1]:
            j += 1
        ax.axvspan(seconds[i], seconds[j] + 1.0, color=C_WARMUP, alpha=0.3, lw=0, label=label)
        label = None
        i = j + 1


def downsample_indices(n: int, cap: int, seed: int = 0) -> npt.NDArray[np.int64]:
    """Sorted indices of at most ``cap`` of ``n`` items; a seeded random choice, so reproducible.

    Random rather than a stride so periodic load patterns cannot alias into the sample.
    """
    if n <= cap:
        return np.arange(n, dtype=np.int64)
    chosen = np.random.default_rng(seed).choice(n, size=cap, replace=False)
    return np.sort(chosen).astype(np.int64)


def set_time_xlim(ax: Axes, t: npt.NDArray[np.float64], ts: pd.DataFrame) -> None:
    """An x axis from run start (or the earliest point before it) to the last point or second."""
    lo = [float(t.min())] if t.size else []
    hi = [float(t.max())] if t.size else []
    if not ts.empty:
        lo.append(float(ts["second"].iloc[0]))
        hi.append(float(ts["second"].iloc[-1]) + 1.0)
    if lo and hi and max(hi) > min(lo):
        ax.set_xlim(min(0.0, min(lo)), max(hi))


def short_ms(value: float) -> str:
    return f"{value:,.0f} ms" if abs(value) >= 99.95 else f"{float(f'{value:.3g}'):g} ms"
