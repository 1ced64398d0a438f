"""The comparison's overlay plots: every run's latency by percentile, latency CDF, throughput
and resources over time on shared axes, one colour per run (PNG bytes for ``compare.html``).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, NullLocator

from loadbench.compare.runlike import RunLike, run_label
from loadbench.report import plotkit, plots, plots_resources
from loadbench.report.fmt import num

CURVE_POINTS = 600  # points per run on the percentile and CDF curves
MAX_LABEL = 60  # characters of a run id shown in a plot legend

# Panels of the resources overlay: (sample column, or "gpu.util_percent" for the GPUs mean; y label).
_RESOURCE_PANELS: tuple[tuple[str, str], ...] = (
    ("server.cpu_percent", "server CPU (% of one core)"),
    ("host.cpu_percent", "host CPU (% of all cores)"),
    ("gpu.util_percent", "GPU utilization (%)"),
)
# This machine's GPUs' utilization (``gpu0.util_percent``), not a remote host's (``LABEL/gpu0.``)
# and not memory utilization (``gpu0.mem_util_percent``).
_LOCAL_GPU_UTIL = re.compile(r"^gpu\d+\.(?:.*\.)?util_percent$")

PLOT_CAPTIONS = {
    "plot-percentiles": (
        "Latency by percentile",
        "Latency at each percentile of successful requests in each run's measured window; the x "
        "axis stretches the tail (each tick is ten times rarer than the one before).",
    ),
    "plot-cdf": (
        "Latency CDF",
        "Share of successful requests in the measured window at or below each latency.",
    ),
    "plot-throughput": (
        "Throughput over time",
        "Successful requests per second against seconds since each run's start (warmup included).",
    ),
    "plot-resources": (
        "Resources over time",
        "Sampled server process CPU (% of one core), host CPU (% of all cores) and, where present, "
        "the mean utilization of the load host's GPUs, against seconds since each run's start.",
    ),
}


# ---------------------------------------------------------------------------------------------
# Overlay plots


def _legend_text(text: str) -> str:
    """A legend label matplotlib shows as typed: no mathtext, not hidden by a leading underscore."""
    text = " ".join(text.split())
    if len(text) > MAX_LABEL:
        text = text[: MAX_LABEL - 1] + "…"
    return text.replace("$", r"\$")


def _color(i: int) -> str:
    return plots.SERIES_COLORS[i % len(plots.SERIES_COLORS)]


@dataclass(frozen=True)
class LatencyCurves:
    """What the latency overlays draw of one run's ``n`` successful requests: latency ``y`` at
    percentile 1 - 1/``x``, latency ``at_q`` at quantile ``q`` (the CDF), and the smallest and
    largest positive latency (None when none is positive)."""

    n: int
    x: npt.NDArray[np.float64]
    y: npt.NDArray[np.float64]
    q: npt.NDArray[np.float64]
    at_q: npt.NDArray[np.float64]
    positive: tuple[float, float] | None


def latency_curves(run: RunLike) -> LatencyCurves:
    """The run's `LatencyCurves`: from its latencies in memory, or ranked in its store when it was
    read through one (`RunData.stored`: one sorted pass, which the store keeps for a second call)."""
    stored = getattr(run, "stored", None)
    if stored is not None:
        n = int(stored.size)
        x, q = _curve_x(n), _cdf_q(n)
        values = stored.percentiles(np.concatenate([(1.0 - 1.0 / x) * 100.0, q * 100.0])) if n else x[:0]
        return LatencyCurves(n, x, values[: x.size], q, values[x.size :], stored.positive)
    lat = np.asarray(run.latency_ms, dtype=float)
    lat = np.sort(lat[np.isfinite(lat)])
    x, q = _curve_x(lat.size), _cdf_q(lat.size)
    positive = lat[lat > 0]
    return LatencyCurves(
        int(lat.size),
        x,
        np.percentile(lat, (1.0 - 1.0 / x) * 100.0) if lat.size else x[:0],
        q,
        np.quantile(lat, q) if lat.size else q[:0],
        (float(positive[0]), float(positive[-1])) if positive.size else None,
    )


def _curve_x(n: int) -> npt.NDArray[np.float64]:
    """Where the percentile curve of ``n`` latencies is drawn on its 1/(1-q) axis."""
    if n <= 1:
        return np.array([1.0])
    return np.unique(np.concatenate([np.geomspace(1.0, float(n), CURVE_POINTS), [float(n)]]))


def _cdf_q(n: int) -> npt.NDArray[np.float64]:
    return np.linspace(0.0, 1.0, min(CURVE_POINTS, max(n, 2)))


def render_overlay_plots(runs: Sequence[RunLike]) -> dict[str, bytes]:
    """The overlay figures as PNG bytes by figure id; resources only when some run has samples."""
    figures: dict[str, Figure] = {
        "plot-percentiles": percentiles_overlay(runs),
        "plot-cdf": cdf_overlay(runs),
        "plot-throughput": throughput_overlay(runs),
    }
    resources = resources_overlay(runs)
    if resources is not None:
        figures["plot-resources"] = resources
    with warnings.catch_warnings():
        # A run id in a script the font lacks: a missing glyph is a cosmetic matter, not an error.
        warnings.simplefilter("ignore", UserWarning)
        return {key: plotkit.figure_to_png(fig) for key, fig in figures.items()}


def _finish_legend(ax: Axes) -> None:
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(handles, labels, fontsize=8, loc="upper left", framealpha=0.85)


def percentiles_overlay(runs: Sequence[RunLike]) -> Figure:
    """Latency against percentile on the HdrHistogram 1/(1-q) axis, one curve per run."""
    fig, ax = plotkit.new_figure("Latency by percentile")
    top = 10.0
    spread_lo, spread_hi = np.inf, 0.0
    drawn = False
    for i, run in enumerate(runs):
        curves = latency_curves(run)
        n = curves.n
        if n == 0:
            continue
        label = _legend_text(f"{run_label(run, i)} ({n:,} requests)")
        ax.plot(curves.x, curves.y, color=_color(i), lw=1.6, label=label)
        top = max(top, float(n))
        if curves.positive is not None:
            spread_lo, spread_hi = min(spread_lo, curves.positive[0]), max(spread_hi, curves.positive[1])
        drawn = True
    if not drawn:
        return plotkit.no_data(fig, ax, "no successful requests")
    ax.set_xscale("log")
    ax.set_xlim(1.0, top)
    decades = int(np.floor(np.log10(top) + 1e-9))
    ax.xaxis.set_major_locator(FixedLocator([10.0**k for k in range(decades + 1)]))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticklabels([plots.percentile_label(k) for k in range(decades + 1)])
    ax.set_xlabel("percentile")
    ax.set_ylabel("latency (ms)")
    ax.grid(True, which="major", alpha=0.35)
    if spread_hi > 0 and spread_hi / spread_lo > plotkit.LOG_SPREAD:
        ax.set_yscale("log")
    else:
        ax.set_ylim(bottom=0)
    _finish_legend(ax)
    return fig


def cdf_overlay(runs: Sequence[RunLike]) -> Figure:
    """Cumulative distribution of successful requests' latency, one curve per run."""
    fig, ax = plotkit.new_figure("Latency CDF")
    lo, hi = np.inf, 0.0
    drawn = False
    for i, run in enumerate(runs):
        curves = latency_curves(run)
        if curves.n == 0:
            continue
        ax.plot(curves.at_q, curves.q * 100.0, color=_color(i), lw=1.6, label=_legend_text(run_label(run, i)))
        if curves.positive is not None:
            lo, hi = min(lo, curves.positive[0]), max(hi, curves.positive[1])
        drawn = True
    if not drawn:
        return plotkit.no_data(fig, ax, "no successful requests")
    if hi > 0 and hi / lo > plotkit.LOG_SPREAD:
        ax.set_xscale("log")
    ax.set_ylim(0, 100)
    ax.set_xlabel("latency (ms)")
    ax.set_ylabel("requests at or below (%)")
    ax.grid(True, alpha=0.35)
    ax.legend(fontsize=8, loc="lower right", framealpha=0.85)
    return fig


def throughput_overlay(runs: Sequence[RunLike]) -> Figure:
    """Successful requests per second against seconds since each run's start, one line per run."""
    fig, ax = plotkit.new_figure("Throughput over time")
    drawn = False
    for i, run in enumerate(runs):
        ts = run.timeseries
        if ts is None or ts.empty or "second" not in ts or "ok" not in ts:
            continue
        ts = ts.sort_values("second")
        x = ts["second"].to_numpy(dtype=float) + 0.5
        y = pd.to_numeric(ts["ok"], errors="coerce").fillna(0).to_numpy(dtype=float)
        ax.plot(x, y, color=_color(i), lw=1.3, label=_legend_text(run_label(run, i)))
        drawn = True
    if not drawn:
        return plotkit.no_data(fig, ax, "no data")
    plotkit.label_time_axes(ax, "successful requests per second")
    ax.set_ylim(bottom=0)
    plotkit.legend(ax)
    return fig


def _run_start(run: RunLike) -> float | None:
    ts = run.timeseries
    if ts is not None and not ts.empty and {"second", "start_unix_s"} <= set(ts.columns):
        v = num(ts["start_unix_s"].iloc[0] - ts["second"].iloc[0])
        if v is not None:
            return v
    return num(run.meta.get("started_unix_s"))


def _resource_series(samples: pd.DataFrame, key: str) -> pd.Series | None:
    """One panel's series of a run's samples: a column, or the mean over local GPUs' utilization."""
    if key == "gpu.util_percent":
        cols = [c for c in samples.columns if _LOCAL_GPU_UTIL.match(str(c))]
        if not cols:
            return None
        return samples[cols].apply(pd.to_numeric, errors="coerce").mean(axis=1)
    if key not in samples.columns:
        return None
    return pd.to_numeric(samples[key], errors="coerce")


def _has_samples(run: RunLike) -> bool:
    s = run.samples
    return s is not None and not s.empty and "unix_s" in s.columns and len(s.columns) > 1


def resources_overlay(runs: Sequence[RunLike]) -> Figure | None:
    """Server CPU, host CPU and GPU utilization over time, one color per run; None without samples."""
    sampled = [(i, run) for i, run in enumerate(runs) if _has_samples(run)]
    if not sampled:
        return None
    panels = []
    for key, ylabel in _RESOURCE_PANELS:
        lines = []
        for i, run in sampled:
            series = _resource_series(run.samples, key)
            start = _run_start(run)
            if series is None or start is None or not series.notna().any():
                continue
            t = run.samples["unix_s"].to_numpy(dtype=float) - start
            keep = plots.downsample_indices(t.size, plots.MAX_SAMPLES)
            lines.append((i, run, t[keep], series.to_numpy(dtype=float)[keep]))
        if lines:
            panels.append((ylabel, lines))
    if not panels:
        return None
    fig = Figure(
        figsize=(plotkit.FIGSIZE[0], 0.8 + plots.PANEL_HEIGHT * len(panels)),
        dpi=plotkit.DPI,
        layout="constrained",
    )
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    axes[0].set_title("Resources over time", fontsize=11, loc="left")
    for ax, (ylabel, lines) in zip(axes, panels, strict=True):
        for i, run, t, v in lines:
            ax.plot(t, v, color=_color(i), lw=1.1, label=_legend_text(run_label(run, i)))
        ax.set_ylabel(ylabel, fontsize=8)
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.35)
        plots_resources.side_legend(ax, None)
    axes[-1].set_xlabel("time since run start (s)")
    return fig
