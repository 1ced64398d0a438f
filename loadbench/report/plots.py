"""Report plots: matplotlib figures built from plain arrays and frames, and PNG encoding.

Consumes numpy arrays of per-request data (start offsets in seconds since the run start,
latencies in ms, ok flags), the analyzer's per-second ``timeseries.csv`` as a DataFrame
(columns ``second, requests, ok, errors, p50_ms, p99_ms, users, in_warmup``) and the
sampler's resource samples as the wide frame of `loadbench.record.records.read_samples`; produces
`matplotlib.figure.Figure` objects and PNG bytes. No paths, no pyplot: figures are created
directly so there is no global state and plotting is safe from any thread.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, NullLocator, StrMethodFormatter

from loadbench.analyze.resources import SATURATED_PERCENT

FIGSIZE = (9.0, 3.6)  # inches
DPI = 110
MAX_POINTS = 20_000  # successful requests drawn in the latency scatter
MAX_ERROR_POINTS = 5_000  # failed requests drawn in the latency scatter
MAX_KINDS = 7  # error kinds stacked separately; the rest are drawn as "other"
LOG_SPREAD = 50.0  # use a log latency axis when max/min exceeds this

C_OK = "#1f77b4"
C_ERR = "#d62728"
C_P50 = "#2ca02c"
C_P99 = "#ff7f0e"
C_USERS = "#555555"
C_WARMUP = "#bbbbbb"
KIND_COLORS = ("#d62728", "#9467bd", "#8c564b", "#e377c2", "#ff7f0e", "#bcbd22", "#17becf", "#7f7f7f")
PERCENTILE_MARKS = (50.0, 90.0, 99.0, 99.9)
MAX_SAMPLES = 5_000  # resource samples drawn per series
PANEL_HEIGHT = 1.75  # inches per panel of the stacked resources figure
GIB = 1024.0**3
C_HOST = "#1f77b4"
C_SERVER = "#d62728"
C_GENERATOR = "#9467bd"
SERIES_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf")
_GPU_METRIC = re.compile(r"^(?:(?P<label>[^/]+)/)?gpu(?P<index>\d+)\.")
# A remote host's key: "LABEL/host.cpu_percent"; not "prom.x{path="/v1"}", whose "/" is data.
_REMOTE_KEY = re.compile(r"^(?!prom\.)(?P<label>[^/]+)/(?:host|server|generator|gpu\d+)\.")


def figure_to_png(fig: Figure, dpi: int = DPI) -> bytes:
    """Encode a figure as PNG bytes (no timestamp metadata, so output depends only on the figure)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    return buf.getvalue()


def downsample_indices(n: int, cap: int, seed: int = 0) -> npt.NDArray[np.int64]:
    """Sorted indices of at most ``cap`` of ``n`` items; a seeded random choice, so reproducible.

    Random rather than a stride so periodic load patterns cannot alias into the sample.
    """
    if n <= cap:
        return np.arange(n, dtype=np.int64)
    chosen = np.random.default_rng(seed).choice(n, size=cap, replace=False)
    return np.sort(chosen).astype(np.int64)


def latency_over_time(
    start_s: npt.ArrayLike,
    latency_ms: npt.ArrayLike,
    ok: npt.ArrayLike,
    timeseries: pd.DataFrame | None = None,
) -> Figure:
    """Scatter of request latencies over time with per-second p50/p99 lines; warmup shaded.

    ``start_s`` is each request's start in seconds since the run start.
    """
    fig, ax = _new_figure("Latency over time")
    t = np.asarray(start_s, dtype=float)
    lat = np.asarray(latency_ms, dtype=float)
    good = np.asarray(ok).astype(bool)
    ts = _contiguous(timeseries)
    if t.size == 0 and ts.empty:
        return _no_data(fig, ax, "no data")
    _label_time_axes(ax, "latency (ms)")
    _shade_warmup(ax, ts)

    ok_idx = np.flatnonzero(good)
    err_idx = np.flatnonzero(~good)
    shown_ok = ok_idx[downsample_indices(ok_idx.size, MAX_POINTS)]
    shown_err = err_idx[downsample_indices(err_idx.size, MAX_ERROR_POINTS, seed=1)]
    if ok_idx.size:
        label = "successful request"
        if shown_ok.size < ok_idx.size:
            label += f" ({shown_ok.size:,} of {ok_idx.size:,} shown)"
        # Fewer points can be drawn bigger and darker; many need transparency to show density.
        size, alpha = (4, 0.25) if shown_ok.size > 5000 else (9, 0.5)
        ax.scatter(t[shown_ok], lat[shown_ok], s=size, alpha=alpha, color=C_OK, linewidths=0, label=label)
    if err_idx.size:
        label = "failed request"
        if shown_err.size < err_idx.size:
            label += f" ({shown_err.size:,} of {err_idx.size:,} shown)"
        ax.scatter(t[shown_err], lat[shown_err], s=14, marker="x", color=C_ERR, linewidths=0.8, label=label)
    if not ts.empty:
        mid = ts["second"].to_numpy(dtype=float) + 0.5  # a row covers [second, second + 1)
        ax.plot(mid, ts["p50_ms"].to_numpy(dtype=float), color=C_P50, lw=1.4, label="p50 per second")
        ax.plot(mid, ts["p99_ms"].to_numpy(dtype=float), color=C_P99, lw=1.4, label="p99 per second")

    values = np.concatenate(
        [
            lat[shown_ok],
            lat[shown_err],
            ts["p50_ms"].to_numpy(dtype=float),
            ts["p99_ms"].to_numpy(dtype=float),
        ]
    )
    values = values[np.isfinite(values) & (values > 0)]
    if values.size and values.max() / values.min() > LOG_SPREAD:
        ax.set_yscale("log")
    else:
        ax.set_ylim(bottom=0)
    _set_time_xlim(ax, t, ts)
    _legend(ax)
    return fig


def latency_percentiles(latency_ms: npt.ArrayLike) -> Figure:
    """HdrHistogram-style percentile distribution: latency against percentile on a 1/(1-q) axis.

    Pass successful requests' latencies from the measured window so the marks match the summary.
    """
    fig, ax = _new_figure("Latency by percentile")
    lat = np.asarray(latency_ms, dtype=float)
    lat = np.sort(lat[np.isfinite(lat)])
    n = lat.size
    if n == 0:
        return _no_data(fig, ax, "no successful requests")
    # The highest percentile n samples can support is 1 - 1/n; beyond it is extrapolation.
    top = max(float(n), 10.0)
    x = (
        np.unique(np.concatenate([np.geomspace(1.0, float(n), 500), [float(n)]]))
        if n > 1
        else np.array([1.0])
    )
    q = 1.0 - 1.0 / x
    y = np.percentile(lat, q * 100.0)
    ax.plot(x, y, color=C_OK, lw=1.6, label="latency at percentile")
    ax.set_xscale("log")
    ax.set_xlim(1.0, top)
    decades = int(np.floor(np.log10(top) + 1e-9))
    ax.xaxis.set_major_locator(FixedLocator([10.0**k for k in range(decades + 1)]))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticklabels([_percentile_label(k) for k in range(decades + 1)])
    ax.set_xlabel("percentile")
    ax.set_ylabel("latency (ms)")
    ax.grid(True, which="major", alpha=0.35)

    for p in PERCENTILE_MARKS:
        xp = 1.0 / (1.0 - p / 100.0)
        if xp > n:
            continue  # not enough samples to claim this percentile
        yp = float(np.percentile(lat, p))
        ax.plot([xp], [yp], "o", color=C_P99, ms=5, zorder=3)
        ax.annotate(
            f"p{p:g}: {_short_ms(yp)}",
            (xp, yp),
            textcoords="offset points",
            xytext=(6, -6),  # below-right: the curve only rises to the right, so this is free
            ha="left",
            va="top",
            fontsize=8,
        )
    positive = lat[lat > 0]
    if positive.size and positive[-1] / positive[0] > LOG_SPREAD:
        ax.set_yscale("log")
    else:
        ax.set_ylim(bottom=0, top=float(lat[-1]) * 1.12 or 1.0)
    ax.text(
        0.01,
        0.97,
        f"{n:,} successful requests · max {_short_ms(float(lat[-1]))}",
        transform=ax.transAxes,
        va="top",
        fontsize=8,
        color="#444444",
    )
    return fig


def throughput_over_time(timeseries: pd.DataFrame | None) -> Figure:
    """Successful and failed requests per second, with active users on a second y axis."""
    fig, ax = _new_figure("Throughput over time")
    ts = _contiguous(timeseries)
    if ts.empty:
        return _no_data(fig, ax, "no data")
    _label_time_axes(ax, "requests per second")
    _shade_warmup(ax, ts)
    edges = _edges(ts)
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
    _legend(ax, extra=handles, twin=ax2)
    return fig


def errors_over_time(timeseries: pd.DataFrame | None, errors_by_kind: pd.DataFrame | None = None) -> Figure:
    """Failed requests per second, stacked by kind when ``errors_by_kind`` is given.

    ``errors_by_kind`` has columns ``second, kind, count``; without it the timeseries'
    ``errors`` column is drawn as one series.
    """
    fig, ax = _new_figure("Errors over time")
    ts = _contiguous(timeseries)
    if ts.empty:
        return _no_data(fig, ax, "no data")
    _label_time_axes(ax, "failed requests per second")
    _shade_warmup(ax, ts)
    edges = _edges(ts)
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
        _legend(ax)
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
    _legend(ax)
    return fig


def resources_over_time(
    timeseries: pd.DataFrame | None,
    samples: pd.DataFrame | None,
    run_start_unix_s: float,
    warmup_end_unix_s: float | None = None,
) -> Figure:
    """Latency, throughput and resource use over time: stacked panels sharing one time axis.

    Panels, top to bottom, each only when it has data: latency p50/p99 and requests per second
    (from ``timeseries``), CPU %, memory (GiB), GPU utilization % and GPU memory (GiB) with power
    (W) on a twin axis. ``samples`` is the wide frame of `loadbench.record.records.read_samples`
    (``unix_s`` on the same clock as the requests); more than `MAX_SAMPLES` rows are thinned.
    The x axis is seconds since ``run_start_unix_s``, like the other time plots; the warmup
    (up to ``warmup_end_unix_s``, else the timeseries' warmup seconds) is shaded.
    ``fig.axes`` holds one axes per panel plus the power panel's twin.
    """
    ts = _contiguous(timeseries)
    frame = samples if samples is not None and "unix_s" in samples else pd.DataFrame({"unix_s": []})
    frame = frame[frame["unix_s"].notna()]
    if len(frame) > MAX_SAMPLES:
        frame = frame.iloc[downsample_indices(len(frame), MAX_SAMPLES)]
    t = frame["unix_s"].to_numpy(dtype=float) - run_start_unix_s

    def values(key: str, scale: float = 1.0) -> npt.NDArray[np.float64] | None:
        if key not in frame:
            return None
        v = pd.to_numeric(frame[key], errors="coerce").to_numpy(dtype=float)
        return v / scale if np.isfinite(v).any() else None

    hosts = [None, *sorted({m["label"] for k in frame.columns if (m := _REMOTE_KEY.match(str(k)))})]
    gpus = _gpu_prefixes(frame.columns)
    panels: list[tuple[str, _Draw]] = []

    p50, p99 = ts["p50_ms"].to_numpy(dtype=float), ts["p99_ms"].to_numpy(dtype=float)
    if np.isfinite(p50).any() or np.isfinite(p99).any():

        def draw_latency(ax: Axes) -> Axes | None:
            mid = ts["second"].to_numpy(dtype=float) + 0.5
            ax.plot(mid, p50, color=C_P50, lw=1.3, label="p50 per second")
            ax.plot(mid, p99, color=C_P99, lw=1.3, label="p99 per second")
            both = np.concatenate([p50, p99])
            both = both[np.isfinite(both) & (both > 0)]
            if both.size and both.max() / both.min() > LOG_SPREAD:
                ax.set_yscale("log")
            else:
                ax.set_ylim(bottom=0)
            return None

        panels.append(("latency (ms)", draw_latency))
    if not ts.empty:

        def draw_throughput(ax: Axes) -> Axes | None:
            edges = _edges(ts)
            ax.stairs(ts["ok"].to_numpy(dtype=float), edges, color=C_OK, lw=1.3, label="successful req/s")
            ax.stairs(ts["errors"].to_numpy(dtype=float), edges, color=C_ERR, lw=1.1, label="failed req/s")
            ax.set_ylim(bottom=0)
            return None

        panels.append(("requests/s", draw_throughput))

    cpu: list[_Line] = []
    memory: list[_Line] = []
    for i, host in enumerate(hosts):
        name = f"{host} " if host else ""
        pre = f"{host}/" if host else ""
        style = "-" if i == 0 else (0, (4, 1.5))
        for key, label, color in (
            ("host.cpu_percent", "host CPU (% of all cores)", C_HOST),
            ("server.cpu_percent", "server CPU (% of one core)", C_SERVER),
            ("generator.cpu_percent", "generator CPU (% of one core)", C_GENERATOR),
        ):
            if (v := values(pre + key)) is not None:
                cpu.append((v, name + label, color, style))
        for key, label, color in (
            ("server.rss_bytes", "server RSS", C_SERVER),
            ("host.mem_used_bytes", "host memory used", C_HOST),
        ):
            if (v := values(pre + key, GIB)) is not None:
                memory.append((v, name + label, color, style))
    if cpu:

        def draw_cpu(ax: Axes) -> Axes | None:
            _draw_lines(ax, t, cpu)
            if any("generator" in line[1] for line in cpu):
                ax.axhline(
                    SATURATED_PERCENT,
                    color=C_GENERATOR,
                    lw=0.9,
                    ls="--",
                    label=f"generator saturation ({SATURATED_PERCENT:.0f} % of one core)",
                )
            top = max(float(np.nanmax([np.nanmax(v) for v, *_ in cpu])), 100.0)
            ax.set_ylim(0, top * 1.05)
            return None

        panels.append(("CPU (%)", draw_cpu))
    if memory:

        def draw_memory(ax: Axes) -> Axes | None:
            _draw_lines(ax, t, memory)
            ax.set_ylim(bottom=0)
            return None

        panels.append(("memory (GiB)", draw_memory))

    colors = {g: SERIES_COLORS[i % len(SERIES_COLORS)] for i, g in enumerate(gpus)}
    util = [(v, _gpu_name(g), colors[g], "-") for g in gpus if (v := values(f"{g}.util_percent")) is not None]
    gpu_mem = [
        (v, f"{_gpu_name(g)} memory", colors[g], "-")
        for g in gpus
        if (v := values(f"{g}.mem_used_bytes", GIB)) is not None
    ]
    power = [
        (v, f"{_gpu_name(g)} power", colors[g], ":")
        for g in gpus
        if (v := values(f"{g}.power_w")) is not None
    ]
    if util:

        def draw_util(ax: Axes) -> Axes | None:
            _draw_lines(ax, t, util)
            ax.set_ylim(0, 105)
            return None

        panels.append(("GPU util (%)", draw_util))
    if gpu_mem or power:

        def draw_gpu_memory(ax: Axes) -> Axes | None:
            _draw_lines(ax, t, gpu_mem)
            ax.set_ylim(bottom=0)
            if not power:
                return None
            twin = ax.twinx()
            _draw_lines(twin, t, power)
            twin.set_ylabel("power (W)")
            twin.set_ylim(bottom=0)
            return twin

        panels.append(("GPU memory (GiB)", draw_gpu_memory))

    if not panels:
        fig, ax = _new_figure("Resources over time")
        return _no_data(fig, ax, "no data")
    fig = Figure(figsize=(FIGSIZE[0], 0.8 + PANEL_HEIGHT * len(panels)), dpi=DPI, layout="constrained")
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    axes[0].set_title("Resources over time", fontsize=11, loc="left")
    warmup_end = None if warmup_end_unix_s is None else warmup_end_unix_s - run_start_unix_s
    for i, (ax, (ylabel, draw)) in enumerate(zip(axes, panels, strict=True)):
        ax.set_ylabel(ylabel)
        ax.yaxis.set_major_formatter(StrMethodFormatter("{x:,.10g}"))
        ax.grid(True, alpha=0.35)
        shade_label = "warmup (excluded)" if i == 0 else None  # once, in the top panel's legend
        if warmup_end is not None and warmup_end > 0:
            ax.axvspan(0.0, warmup_end, color=C_WARMUP, alpha=0.3, lw=0, label=shade_label)
        elif warmup_end is None:
            _shade_warmup(ax, ts, shade_label)
        twin = draw(ax)
        _side_legend(ax, twin)
    axes[-1].set_xlabel("time since run start (s)")

    lo = [float(t.min())] if t.size else []
    hi = [float(t.max())] if t.size else []
    if not ts.empty:
        lo.append(float(ts["second"].iloc[0]))
        hi.append(float(ts["second"].iloc[-1]) + 1.0)
    if lo and max(hi) > min(lo):
        axes[-1].set_xlim(min(0.0, min(lo)), max(hi))
    return fig


_Line = tuple[npt.NDArray[np.float64], str, str, Any]  # values, label, color, line style
_Draw = Callable[[Axes], Axes | None]  # draws one panel; returns its twin axes, if any


def _draw_lines(ax: Axes, t: npt.NDArray[np.float64], lines: list[_Line]) -> None:
    for v, label, color, style in lines:
        ax.plot(t, v, color=color, ls=style, lw=1.2, label=label)


def _gpu_prefixes(columns: Iterable[Any]) -> list[str]:
    """``gpu0``, ``gpu1``, ``LABEL/gpu0`` ... of the sample columns: this machine's first, by index."""
    found: set[tuple[str, int]] = set()
    for key in columns:
        m = _GPU_METRIC.match(str(key))
        if m:
            found.add((m["label"] or "", int(m["index"])))
    return [f"{label}/gpu{i}" if label else f"gpu{i}" for label, i in sorted(found)]


def _gpu_name(prefix: str) -> str:
    return prefix.replace("/", " ")


def _side_legend(ax: Axes, twin: Axes | None) -> None:
    """Legend to the right of the panel, so it never hides data (past the twin axis' labels)."""
    handles, labels = ax.get_legend_handles_labels()
    if twin is not None:
        more = twin.get_legend_handles_labels()
        handles += more[0]
        labels += more[1]
    if handles:
        x = 1.09 if twin is not None else 1.01
        ax.legend(handles, labels, fontsize=7.5, loc="upper left", bbox_to_anchor=(x, 1.0), framealpha=0.85)


def _new_figure(title: str) -> tuple[Figure, Axes]:
    fig = Figure(figsize=FIGSIZE, dpi=DPI, layout="constrained")
    ax = fig.add_subplot()
    ax.set_title(title, fontsize=11, loc="left")
    return fig, ax


def _no_data(fig: Figure, ax: Axes, message: str) -> Figure:
    ax.set_xticks([])
    ax.set_yticks([])
    ax.text(0.5, 0.5, message, transform=ax.transAxes, ha="center", va="center", fontsize=16, color="#777777")
    return fig


def _label_time_axes(ax: Axes, ylabel: str) -> None:
    ax.set_xlabel("time since run start (s)")
    ax.set_ylabel(ylabel)
    ax.yaxis.set_major_formatter(StrMethodFormatter("{x:,.10g}"))
    ax.grid(True, alpha=0.35)


def _legend(ax: Axes, extra: list[Any] | None = None, twin: Axes | None = None) -> None:
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


def _contiguous(timeseries: pd.DataFrame | None) -> pd.DataFrame:
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


def _edges(ts: pd.DataFrame) -> npt.NDArray[np.float64]:
    first = float(ts["second"].iloc[0])
    return first + np.arange(len(ts) + 1, dtype=float)


def _shade_warmup(ax: Axes, ts: pd.DataFrame, label: str | None = "warmup (excluded)") -> None:
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


def _set_time_xlim(ax: Axes, t: npt.NDArray[np.float64], ts: pd.DataFrame) -> None:
    lo = [float(t.min())] if t.size else []
    hi = [float(t.max())] if t.size else []
    if not ts.empty:
        lo.append(float(ts["second"].iloc[0]))
        hi.append(float(ts["second"].iloc[-1]) + 1.0)
    if lo and hi and max(hi) > min(lo):
        ax.set_xlim(min(0.0, min(lo)), max(hi))


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


def _percentile_label(decade: int) -> str:
    """Tick label for x = 10**decade on the 1/(1-q) axis: 0%, 90%, 99%, 99.9%, ..."""
    if decade == 0:
        return "0%"
    return f"{100.0 - 100.0 / 10.0**decade:.{max(decade - 2, 0)}f}%"


def _short_ms(value: float) -> str:
    return f"{value:,.0f} ms" if abs(value) >= 99.95 else f"{float(f'{value:.3g}'):g} ms"
