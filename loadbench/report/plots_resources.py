"""The report's stacked resources figure: latency, throughput, CPU, memory and GPU panels that
share one time axis, so a latency spike can be read against what the machines were doing.

Consumes the analyzer's per-second timeseries and the sampler's wide frame of
`loadbench.record.series.read_samples` (``unix_s`` on the requests' clock; ``host.*``,
``server.*``, ``generator.*``, ``gpuN.*`` and remote hosts' ``LABEL/...`` columns); produces one
`matplotlib.figure.Figure`. No pyplot, no global state, like `loadbench.report.plots`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import StrMethodFormatter

from loadbench.analyze.resources import SATURATED_PERCENT
from loadbench.report.plotkit import (
    C_ERR,
    C_OK,
    C_P50,
    C_P99,
    C_WARMUP,
    DPI,
    FIGSIZE,
    LOG_SPREAD,
    SERIES_COLORS,
    contiguous,
    downsample_indices,
    new_figure,
    no_data,
    second_edges,
    set_time_xlim,
    shade_warmup,
)

MAX_SAMPLES = 5_000  # resource samples drawn per series
PANEL_HEIGHT = 1.75  # inches per panel of the stacked resources figure
GIB = 1024.0**3
C_HOST = "#1f77b4"
C_SERVER = "#d62728"
C_GENERATOR = "#9467bd"
GPU_METRIC = re.compile(r"^(?:(?P<label>[^/]+)/)?gpu(?P<index>\d+)\.")
# A remote host's key: "LABEL/host.cpu_percent"; not "prom.x{path="/v1"}", whose "/" is data.
_REMOTE_KEY = re.compile(r"^(?!prom\.)(?P<label>[^/]+)/(?:host|server|generator|gpu\d+)\.")
_CPU_SERIES = (
    ("host.cpu_percent", "host CPU (% of all cores)", C_HOST),
    ("server.cpu_percent", "server CPU (% of one core)", C_SERVER),
    ("generator.cpu_percent", "generator CPU (% of one core)", C_GENERATOR),
)
_MEMORY_SERIES = (
    ("server.rss_bytes", "server RSS", C_SERVER),
    ("host.mem_used_bytes", "host memory used", C_HOST),
)

Line = tuple[npt.NDArray[np.float64], str, str, Any]  # values, label, color, line style
Draw = Callable[[Axes], Axes | None]  # draws one panel; returns its twin axes, if any
Panel = tuple[str, Draw]  # y label, drawer


@dataclass(frozen=True, slots=True)
class _Samples:
    """The sample rows to draw (thinned to `MAX_SAMPLES`) and their time since run start."""

    frame: pd.DataFrame
    t: npt.NDArray[np.float64]

    @classmethod
    def of(cls, samples: pd.DataFrame | None, run_start_unix_s: float) -> _Samples:
        frame = samples if samples is not None and "unix_s" in samples else pd.DataFrame({"unix_s": []})
        frame = frame[frame["unix_s"].notna()]
        if len(frame) > MAX_SAMPLES:
            frame = frame.iloc[downsample_indices(len(frame), MAX_SAMPLES)]
        return cls(frame, frame["unix_s"].to_numpy(dtype=float) - run_start_unix_s)

    def values(self, key: str, scale: float = 1.0) -> npt.NDArray[np.float64] | None:
        """The column as floats over ``scale``; None when absent or never a number."""
        if key not in self.frame:
            return None
        v = pd.to_numeric(self.frame[key], errors="coerce").to_numpy(dtype=float)
        return v / scale if np.isfinite(v).any() else None


def resources_over_time(
    timeseries: pd.DataFrame | None,
    samples: pd.DataFrame | None,
    run_start_unix_s: float,
    warmup_end_unix_s: float | None = None,
) -> Figure:
    """Latency, throughput and resource use over time: stacked panels sharing one time axis.

    Panels, top to bottom, each only when it has data: latency p50/p99 and requests per second
    (from ``timeseries``), CPU %, memory (GiB), GPU utilization % and GPU memory (GiB) with power
    (W) on a twin axis. ``samples`` is the wide frame of `loadbench.record.series.read_samples`
    (``unix_s`` on the same clock as the requests); more than `MAX_SAMPLES` rows are thinned.
    The x axis is seconds since ``run_start_unix_s``, like the other time plots; the warmup
    (up to ``warmup_end_unix_s``, else the timeseries' warmup seconds) is shaded.
    ``fig.axes`` holds one axes per panel plus the power panel's twin.
    """
    ts = contiguous(timeseries)
    s = _Samples.of(samples, run_start_unix_s)
    panels = [*_request_panels(ts), *_host_panels(s), *_gpu_panels(s)]
    if not panels:
        fig, ax = new_figure("Resources over time")
        return no_data(fig, ax, "no data")
    fig = Figure(figsize=(FIGSIZE[0], 0.8 + PANEL_HEIGHT * len(panels)), dpi=DPI, layout="constrained")
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    axes[0].set_title("Resources over time", fontsize=11, loc="left")
    warmup_end = None if warmup_end_unix_s is None else warmup_end_unix_s - run_start_unix_s
    for i, (ax, (ylabel, draw)) in enumerate(zip(axes, panels, strict=True)):
        ax.set_ylabel(ylabel)
        ax.yaxis.set_major_formatter(StrMethodFormatter("{x:,.10g}"))
        ax.grid(True, alpha=0.35)
        _shade(ax, ts, warmup_end, "warmup (excluded)" if i == 0 else None)  # once, in the top legend
        side_legend(ax, draw(ax))
    axes[-1].set_xlabel("time since run start (s)")
    set_time_xlim(axes[-1], s.t, ts)
    return fig


def _shade(ax: Axes, ts: pd.DataFrame, warmup_end: float | None, label: str | None) -> None:
    """The analyzer's window start when known (it is what the metrics exclude), else warmup seconds."""
    if warmup_end is not None and warmup_end > 0:
        ax.axvspan(0.0, warmup_end, color=C_WARMUP, alpha=0.3, lw=0, label=label)
    elif warmup_end is None:
        shade_warmup(ax, ts, label)


def _request_panels(ts: pd.DataFrame) -> list[Panel]:
    """Per-second latency p50/p99 and requests per second, from the analyzer's timeseries."""
    panels: list[Panel] = []
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
            edges = second_edges(ts)
            ax.stairs(ts["ok"].to_numpy(dtype=float), edges, color=C_OK, lw=1.3, label="successful req/s")
            ax.stairs(ts["errors"].to_numpy(dtype=float), edges, color=C_ERR, lw=1.1, label="failed req/s")
            ax.set_ylim(bottom=0)
            return None

        panels.append(("requests/s", draw_throughput))
    return panels


def _host_lines(s: _Samples) -> tuple[list[Line], list[Line]]:
    """CPU and memory lines of this machine (solid) and of each remote host (dashed), in that order."""
    hosts = [None, *sorted({m["label"] for k in s.frame.columns if (m := _REMOTE_KEY.match(str(k)))})]
    cpu: list[Line] = []
    memory: list[Line] = []
    for i, host in enumerate(hosts):
        name = f"{host} " if host else ""
        pre = f"{host}/" if host else ""
        style = "-" if i == 0 else (0, (4, 1.5))
        cpu += [
            (v, name + label, c, style)
            for key, label, c in _CPU_SERIES
            if (v := s.values(pre + key)) is not None
        ]
        memory += [
            (v, name + label, c, style)
            for key, label, c in _MEMORY_SERIES
            if (v := s.values(pre + key, GIB)) is not None
        ]
    return cpu, memory


def _host_panels(s: _Samples) -> list[Panel]:
    cpu, memory = _host_lines(s)
    panels: list[Panel] = []
    if cpu:

        def draw_cpu(ax: Axes) -> Axes | None:
            _draw_lines(ax, s.t, cpu)
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
            _draw_lines(ax, s.t, memory)
            ax.set_ylim(bottom=0)
            return None

        panels.append(("memory (GiB)", draw_memory))
    return panels


def _gpu_panels(s: _Samples) -> list[Panel]:
    """GPU utilization, and GPU memory with power on a twin axis: one colour per GPU."""
    gpus = gpu_prefixes(s.frame.columns)
    colors = {g: SERIES_COLORS[i % len(SERIES_COLORS)] for i, g in enumerate(gpus)}

    def lines(metric: str, suffix: str, style: str, scale: float = 1.0) -> list[Line]:
        return [
            (v, f"{_gpu_name(g)}{suffix}", colors[g], style)
            for g in gpus
            if (v := s.values(f"{g}.{metric}", scale)) is not None
        ]

    util = lines("util_percent", "", "-")
    gpu_mem = lines("mem_used_bytes", " memory", "-", GIB)
    power = lines("power_w", " power", ":")
    panels: list[Panel] = []
    if util:

        def draw_util(ax: Axes) -> Axes | None:
            _draw_lines(ax, s.t, util)
            ax.set_ylim(0, 105)
            return None

        panels.append(("GPU util (%)", draw_util))
    if gpu_mem or power:

        def draw_gpu_memory(ax: Axes) -> Axes | None:
            _draw_lines(ax, s.t, gpu_mem)
            ax.set_ylim(bottom=0)
            if not power:
                return None
            twin = ax.twinx()
            _draw_lines(twin, s.t, power)
            twin.set_ylabel("power (W)")
            twin.set_ylim(bottom=0)
            return twin

        panels.append(("GPU memory (GiB)", draw_gpu_memory))
    return panels


def _draw_lines(ax: Axes, t: npt.NDArray[np.float64], lines: list[Line]) -> None:
    for v, label, color, style in lines:
        ax.plot(t, v, color=color, ls=style, lw=1.2, label=label)


def gpu_prefixes(columns: Iterable[Any]) -> list[str]:
    """``gpu0``, ``gpu1``, ``LABEL/gpu0`` ... of the sample columns: this machine's first, by index."""
    found: set[tuple[str, int]] = set()
    for key in columns:
        m = GPU_METRIC.match(str(key))
        if m:
            found.add((m["label"] or "", int(m["index"])))
    return [f"{label}/gpu{i}" if label else f"gpu{i}" for label, i in sorted(found)]


def _gpu_name(prefix: str) -> str:
    return prefix.replace("/", " ")


def side_legend(ax: Axes, twin: Axes | None) -> None:
    """Legend to the right of the panel, so it never hides data (past the twin axis' labels)."""
    handles, labels = ax.get_legend_handles_labels()
    if twin is not None:
        more = twin.get_legend_handles_labels()
        handles += more[0]
        labels += more[1]
    if handles:
        x = 1.09 if twin is not None else 1.01
        ax.legend(handles, labels, fontsize=7.5, loc="upper left", bbox_to_anchor=(x, 1.0), framealpha=0.85)
