"""Run history: key metrics of many analyzed runs, in start order, with confidence intervals.

Consumes analyzed run directories (``meta.json``, ``summary.json``, ``timeseries.csv`` and,
when the sampler ran, ``samples.jsonl``); produces one row per run (`load_history`), and
``history.html`` + ``history.json`` (`render_history`): one plot per metric of its value over
the runs with 95 % CI error bars, where a run whose CI does not overlap the previous run's CI is
ringed in red and listed as a significant change.

Confidence intervals are bootstrap intervals over the measured window's *seconds* (seeded, so
reproducible): whole seconds are resampled with replacement, which keeps the correlation of
requests within a second.

- throughput: the mean of successful requests per second;
- p50 / p99 latency: a *proxy*: the CI of the mean of the per-second ``p50_ms`` / ``p99_ms``
  columns (a per-second percentile, averaged), not of the run's own percentile; the value shown
  is the run's exact percentile from ``summary.json``;
- error rate: errors / requests of the resampled seconds;
- GPU 0 utilization: the mean of per-second means of the ``gpu0.util_percent`` samples.
"""

from __future__ import annotations

import base64
import glob
import math
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from matplotlib.figure import Figure

from loadbench.analyze.stats import value_at
from loadbench.compare.verdict import format_metric_value
from loadbench.errors import RunDirError, UsageError
from loadbench.record import rundir
from loadbench.record.records import read_samples, read_timeseries
from loadbench.report import plotkit
from loadbench.report.fmt import DASH, as_dict, num
from loadbench.report.html import CSS, esc, grid_table, render_template, trusted, write_text_atomic

HISTORY_HTML = "history.html"
HISTORY_JSON = "history.json"
RESAMPLES = 1000
CONFIDENCE = 0.95
FloatArray = npt.NDArray[np.float64]
GPU_UTIL = "resources.gpus.0.util_mean"
CI_METHOD = {
    "latency_ms.p50": "bootstrap over seconds of the mean per-second p50 (proxy)",
    "latency_ms.p99": "bootstrap over seconds of the mean per-second p99 (proxy)",
    "throughput_rps": "bootstrap over seconds of successful requests per second",
    "requests.error_rate": "bootstrap over seconds of errors / requests",
    GPU_UTIL: "bootstrap over seconds of per-second mean GPU 0 utilization",
}
# path -> (label, unit, direction: which way is better)
METRICS: dict[str, tuple[str, str, str]] = {
    "latency_ms.p50": ("p50 latency", "ms", "lower"),
    "latency_ms.p99": ("p99 latency", "ms", "lower"),
    "throughput_rps": ("throughput", "req/s", "higher"),
    "requests.error_rate": ("error rate", "fraction", "lower"),
    GPU_UTIL: ("GPU 0 utilization", "%", "higher"),
}


class History(list[dict[str, Any]]):
    """The rows of `load_history`, plus ``warnings``: the run directories it skipped, and why."""

    def __init__(self, rows: Sequence[dict[str, Any]] = (), warnings: Sequence[str] = ()) -> None:
        super().__init__(rows)
        self.warnings: list[str] = list(warnings)


# ---------------------------------------------------------------------------------------------
# Finding runs


def _is_run(path: Path) -> bool:
    return path.is_dir() and (path / rundir.META).is_file()


def _start_key(path: Path) -> tuple[float, str]:
    try:
        started = num(rundir.read_json(path / rundir.META).get("started_unix_s"))
    except RunDirError:
        started = None
    return (started if started is not None else math.inf, path.name)


def expand_runs(pattern: str) -> list[Path]:
    """The run directories ``pattern`` names, oldest first (by ``started_unix_s``).

    ``pattern`` is one run directory, a directory of run directories (``reports/``), or a glob
    (``reports/*-kserve_v2``). `UsageError` when it names no run directory.
    """
    path = Path(pattern)
    found: list[Path] = []
    if _is_run(path):
        found = [path]
    elif path.is_dir():
        found = [p for p in path.iterdir() if _is_run(p)]
    else:
        for match in sorted(glob.glob(pattern)):
            p = Path(match)
            if _is_run(p):
                found.append(p)
            elif p.is_dir():
                found += [c for c in p.iterdir() if _is_run(c)]
    if not found:
        raise UsageError(f"no loadbench run directory matches {pattern!r}")
    return sorted(dict.fromkeys(found), key=_start_key)


# ---------------------------------------------------------------------------------------------
# Loading and confidence intervals


def _percentile_ci(values: npt.NDArray[np.float64]) -> list[float] | None:
    values = values[np.isfinite(values)]
    if values.size == 0:
        return None
    alpha = (1.0 - CONFIDENCE) / 2.0
    lo, hi = np.percentile(values, [alpha * 100.0, (1.0 - alpha) * 100.0])
    return [float(lo), float(hi)]


def bootstrap_mean_ci(values: npt.ArrayLike, resamples: int = RESAMPLES, seed: int = 0) -> list[float] | None:
    """95 % bootstrap CI of the mean of ``values`` (NaNs dropped); None with fewer than 2 values."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size < 2:
        return None
    idx = np.random.default_rng(seed).integers(0, v.size, size=(resamples, v.size))
    return _percentile_ci(v[idx].mean(axis=1))


def bootstrap_ratio_ci(
    num: npt.ArrayLike, den: npt.ArrayLike, resamples: int = RESAMPLES, seed: int = 0
) -> list[float] | None:
    """95 % bootstrap CI of sum(num) / sum(den) over resampled pairs; None with fewer than 2 pairs."""
    n = np.asarray(num, dtype=float)
    d = np.asarray(den, dtype=float)
    keep = np.isfinite(n) & np.isfinite(d)
    n, d = n[keep], d[keep]
    if n.size < 2 or d.sum() <= 0:
        return None
    idx = np.random.default_rng(seed).integers(0, n.size, size=(resamples, n.size))
    dens = d[idx].sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratios = np.where(dens > 0, n[idx].sum(axis=1) / np.where(dens > 0, dens, 1.0), np.nan)
    return _percentile_ci(ratios)


def _window_seconds(timeseries: pd.DataFrame) -> pd.DataFrame:
    """The measured window's seconds (warmup excluded)."""
    if timeseries.empty:
        return timeseries
    warm = pd.to_numeric(timeseries["in_warmup"], errors="coerce").fillna(0) > 0
    return timeseries[~warm]


def _gpu_per_second(run_dir: Path, summary: dict[str, Any]) -> npt.NDArray[np.float64]:
    samples = read_samples(run_dir / rundir.SAMPLES)
    if "gpu0.util_percent" not in samples.columns:
        return np.array([], dtype=float)
    window = as_dict(summary.get("window"))
    start, end = num(window.get("start_unix_s")), num(window.get("end_unix_s"))
    t = samples["unix_s"].to_numpy(dtype=float)
    v = pd.to_numeric(samples["gpu0.util_percent"], errors="coerce").to_numpy(dtype=float)
    keep = np.isfinite(v)
    if start is not None:
        keep &= t >= start
    if end is not None:
        keep &= t < end
    if not keep.any():
        return np.array([], dtype=float)
    origin = start if start is not None else float(t[keep].min())
    frame = pd.DataFrame({"second": np.floor(t[keep] - origin), "v": v[keep]})
    means: FloatArray = frame.groupby("second")["v"].mean().to_numpy(dtype=float)
    return means


def _clean(value: Any) -> float | None:
    return num(value)


def history_row(run_dir: Path, resamples: int = RESAMPLES, seed: int = 0) -> dict[str, Any]:
    """One run's row: id, start, path and each key metric's value with a 95 % CI."""
    meta = rundir.read_meta(run_dir)
    summary = rundir.read_json(run_dir / rundir.SUMMARY)
    info = as_dict(summary.get("run"))
    ts_path = run_dir / rundir.TIMESERIES
    timeseries = _window_seconds(read_timeseries(ts_path)) if ts_path.is_file() else pd.DataFrame()

    def col(name: str) -> npt.NDArray[np.float64]:
        if timeseries.empty or name not in timeseries:
            return np.array([], dtype=float)
        values: FloatArray = pd.to_numeric(timeseries[name], errors="coerce").to_numpy(dtype=float)
        return values

    cis: dict[str, list[float] | None] = {
        "latency_ms.p50": bootstrap_mean_ci(col("p50_ms"), resamples, seed),
        "latency_ms.p99": bootstrap_mean_ci(col("p99_ms"), resamples, seed),
        "throughput_rps": bootstrap_mean_ci(col("ok"), resamples, seed),
        "requests.error_rate": bootstrap_ratio_ci(col("errors"), col("requests"), resamples, seed),
    }
    metrics: dict[str, dict[str, Any]] = {}
    for path, (label, unit, direction) in METRICS.items():
        value = _clean(value_at(summary, path))
        if path == GPU_UTIL:
            if value is None:
                continue
            cis[path] = bootstrap_mean_ci(_gpu_per_second(run_dir, summary), resamples, seed)
        metrics[path] = {
            "label": label,
            "unit": unit,
            "direction": direction,
            "value": value,
            "ci": cis.get(path),
            "ci_method": CI_METHOD[path],
        }
    started = num(meta.get("started_unix_s"))
    return {
        "id": str(meta.get("run_id") or info.get("id") or run_dir.name),
        "started_at": meta.get("started_at")
        or info.get("started_at")
        or (rundir.iso_utc(started) if started is not None else None),
        "started_unix_s": started,
        "path": str(run_dir),
        "scenario": meta.get("scenario") or info.get("scenario"),
        "status": meta.get("status") or info.get("status"),
        "metrics": metrics,
    }


def load_history(paths: Sequence[Path], *, resamples: int = RESAMPLES, seed: int = 0) -> History:
    """One row per analyzed run directory, in the given order (see `history_row`).

    A directory without ``summary.json`` (not analyzed), or one that cannot be read, is skipped
    and named in the result's ``warnings``.
    """
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    for p in paths:
        path = Path(p)
        if not (path / rundir.SUMMARY).is_file():
            notes.append(f"skipped {path}: no {rundir.SUMMARY} (run `loadbench report {path}` first)")
            continue
        try:
            rows.append(history_row(path, resamples, seed))
        except RunDirError as exc:
            notes.append(f"skipped {path}: {exc}")
    return History(rows, notes)


# ---------------------------------------------------------------------------------------------
# Significant changes


def _overlap(a: Sequence[float], b: Sequence[float]) -> bool:
    return a[0] <= b[1] and b[0] <= a[1]


def significant_changes(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Runs whose CI of a metric does not overlap the previous run's (that has one), in run order."""
    changes = []
    for path in METRICS:
        previous: dict[str, Any] | None = None
        for row in rows:
            m = as_dict(as_dict(row.get("metrics")).get(path))
            ci = m.get("ci")
            if not isinstance(ci, list) or len(ci) != 2:
                continue
            if previous is not None:
                pm = previous["metrics"][path]
                if not _overlap(ci, pm["ci"]):
                    value, before = num(m.get("value")), num(pm.get("value"))
                    up = (sum(ci) / 2) > (sum(pm["ci"]) / 2)
                    better = up == (m.get("direction") == "higher")
                    changes.append(
                        {
                            "metric": path,
                            "label": m.get("label") or path,
                            "unit": m.get("unit"),
                            "run_id": row.get("id"),
                            "previous_run_id": previous.get("id"),
                            "value": value,
                            "previous_value": before,
                            "ci": ci,
                            "previous_ci": pm["ci"],
                            "change": "up" if up else "down",
                            "verdict": "better" if better else "worse",
                        }
                    )
            previous = row
    return changes


# ---------------------------------------------------------------------------------------------
# Rendering


def _fmt(value: Any, unit: str) -> str:
    return format_metric_value(value, unit)


def _tick_label(row: dict[str, Any]) -> str:
    text = " ".join(str(row.get("id") or "?").split())
    if len(text) > 40:
        text = text[:39] + "…"
    started = str(row.get("started_at") or "")[:16].replace("T", " ")
    return (f"{text}\n{started}" if started else text).replace("$", r"\$")


def history_figure(rows: Sequence[dict[str, Any]], path: str, changes: Sequence[dict[str, Any]]) -> Figure:
    """One metric's value over the runs with CI error bars; significant changes ringed in red."""
    label, unit, _ = METRICS[path]
    scale = 100.0 if unit == "fraction" else 1.0
    ylabel = f"{label} (%)" if unit == "fraction" else f"{label} ({unit})"
    fig = Figure(figsize=(plotkit.FIGSIZE[0], 3.9), dpi=plotkit.DPI, layout="constrained")
    ax = fig.add_subplot()
    ax.set_title(label, fontsize=11, loc="left")
    x = np.arange(len(rows), dtype=float)
    values = np.full(len(rows), np.nan)
    lo = np.full(len(rows), np.nan)
    hi = np.full(len(rows), np.nan)
    for i, row in enumerate(rows):
        m = as_dict(as_dict(row.get("metrics")).get(path))
        v = num(m.get("value"))
        values[i] = v * scale if v is not None else np.nan
        ci = m.get("ci")
        if isinstance(ci, list) and len(ci) == 2:
            lo[i], hi[i] = ci[0] * scale, ci[1] * scale
    has_ci = np.isfinite(lo) & np.isfinite(hi)
    # The CI is of a proxy for latency: draw the bar around its own centre, the value as a dot.
    centre = np.where(has_ci, (lo + hi) / 2.0, np.nan)
    if has_ci.any():
        ax.errorbar(
            x[has_ci],
            centre[has_ci],
            yerr=[centre[has_ci] - lo[has_ci], hi[has_ci] - centre[has_ci]],
            fmt="none",
            ecolor="#555555",
            elinewidth=1.2,
            capsize=4,
            label="95% CI",
        )
    ax.plot(x, values, "o-", color=plotkit.C_OK, ms=5, lw=1.0, label=label)
    changed = {c["run_id"] for c in changes if c["metric"] == path}
    ring = [i for i, row in enumerate(rows) if row.get("id") in changed]
    if ring:
        ax.scatter(
            x[ring],
            np.where(np.isfinite(values[ring]), values[ring], centre[ring]),
            s=260,
            facecolors="none",
            edgecolors=plotkit.C_ERR,
            linewidths=2.0,
            zorder=4,
            label="significant change",
        )
    ax.set_xticks(x)
    ax.set_xticklabels([_tick_label(r) for r in rows], rotation=30, ha="right", fontsize=7.5)
    ax.set_xlim(-0.5, max(len(rows) - 0.5, 0.5))
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.35)
    finite = np.concatenate([values[np.isfinite(values)], lo[has_ci], hi[has_ci]])
    if finite.size and finite.min() >= 0:
        ax.set_ylim(bottom=0, top=float(finite.max()) * 1.15 or 1.0)
    ax.legend(fontsize=8, loc="upper left", framealpha=0.85)
    return fig


def _change_table(changes: Sequence[dict[str, Any]]) -> str:
    rows = []
    for c in changes:
        unit = str(c.get("unit") or "")
        rows.append(
            [
                f"<span class='mono'>{esc(c['previous_run_id'])}</span>",
                f"<span class='mono'>{esc(c['run_id'])}</span>",
                esc(_fmt(c["previous_value"], unit)),
                esc(_fmt(c["value"], unit)),
                esc(f"[{_fmt(c['ci'][0], unit)}, {_fmt(c['ci'][1], unit)}]"),
                f"<span class='{'bad' if c['verdict'] == 'worse' else 'ok'}'>{esc(c['change'])} "
                f"({esc(c['verdict'])})</span>",
            ]
        )
    return grid_table(
        ["previous run", "run", "before", "after", "95% CI after", "change"], rows, numeric={2, 3}
    )


def _figure_view(
    rows: Sequence[dict[str, Any]], path: str, changes: Sequence[dict[str, Any]]
) -> dict[str, Any]:
    """What the page shows of one metric: its plot (base64 PNG), caption and significant changes."""
    label = METRICS[path][0]
    png = plotkit.figure_to_png(history_figure(rows, path, changes))
    return {
        "key": "plot-" + path.replace(".", "-").replace("_", "-"),
        "label": label,
        "png": base64.b64encode(png).decode("ascii"),
        "method": CI_METHOD[path],
        "changes": trusted(_change_table(changes)) if changes else None,
    }


def render_history_html(
    rows: Sequence[dict[str, Any]], changes: Sequence[dict[str, Any]], notes: Sequence[str]
) -> str:
    """The self-contained history page."""
    run_rows = [
        [
            f"<span class='mono'>{esc(r.get('id'))}</span>",
            esc(r.get("started_at")),
            esc(r.get("scenario")),
            esc(r.get("status")),
            f"<span class='mono'>{esc(r.get('path'))}</span>",
        ]
        for r in rows
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # a glyph the font lacks in a run id
        figures = [
            _figure_view(rows, path, [c for c in changes if c["metric"] == path])
            for path in METRICS
            if any(path in as_dict(r.get("metrics")) for r in rows)
        ]
    return render_template(
        "history.html.j2",
        css=trusted(CSS),
        runs=len(rows),
        changes=len(changes),
        notes=[n for n in notes],
        runs_table=trusted(
            grid_table(["run", "started (UTC)", "scenario", "status", "path"], run_rows, numeric=())
        ),
        figures=figures,
        dash=DASH,
    )


def render_history(rows: Sequence[dict[str, Any]], out_dir: Path) -> tuple[Path, Path]:
    """Write ``history.html`` and ``history.json`` into ``out_dir`` (created if missing)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    changes = significant_changes(rows)
    notes = list(getattr(rows, "warnings", []))
    html_path, json_path = out_dir / HISTORY_HTML, out_dir / HISTORY_JSON
    rundir.write_json(json_path, {"rows": list(rows), "significant_changes": changes, "warnings": notes})
    write_text_atomic(html_path, render_history_html(rows, changes, notes))
    return html_path, json_path
