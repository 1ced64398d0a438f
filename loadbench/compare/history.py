"""Run history: key metrics of many analyzed runs, in start order, with confidence intervals.

Consumes analyzed run directories (``meta.json``, ``summary.json``, ``timeseries.csv`` and,
when the sampler ran, ``samples.jsonl``); produces one row per run (`load_history`), and
``history.html`` + ``history.json`` (`render_history`): one plot per metric of its value over
the runs with 95 % CI error bars, where a run whose CI does not overlap the previous run's CI is
ringed in red and listed as a significant change. Runs of different scenarios or targets are
separate series (`loadbench.compare.history_runs`): their own line in each plot, changes looked
for only within a series, and a warning that names them.

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
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from loadbench.compare.history_runs import (
    CI_METHOD,
    CONFIDENCE,
    GPU_UTIL,
    METRICS,
    RESAMPLES,
    History,
    bootstrap_mean_ci,
    bootstrap_ratio_ci,
    expand_runs,
    history_row,
    load_history,
)
from loadbench.compare.verdict import format_metric_value
from loadbench.record import rundir
from loadbench.report import plotkit
from loadbench.report.fmt import DASH, as_dict, num
from loadbench.report.html import CSS, esc, grid_table, render_template, trusted, write_text_atomic

# What callers have always imported from here, wherever it is defined.
__all__ = [
    "CI_METHOD",
    "CONFIDENCE",
    "GPU_UTIL",
    "HISTORY_HTML",
    "HISTORY_JSON",
    "METRICS",
    "RESAMPLES",
    "History",
    "bootstrap_mean_ci",
    "bootstrap_ratio_ci",
    "expand_runs",
    "history_figure",
    "history_row",
    "load_history",
    "render_history",
    "render_history_html",
    "significant_changes",
]

HISTORY_HTML = "history.html"
HISTORY_JSON = "history.json"

# ---------------------------------------------------------------------------------------------
# Significant changes


def _overlap(a: Sequence[float], b: Sequence[float]) -> bool:
    return a[0] <= b[1] and b[0] <= a[1]


def significant_changes(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Runs whose CI of a metric does not overlap that of the previous run of the same series
    (that has one), in run order: a run of another scenario or target measures something else."""
    changes = []
    for path in METRICS:
        latest: dict[Any, dict[str, Any]] = {}  # per series: its last run with this metric's CI
        for row in rows:
            m = as_dict(as_dict(row.get("metrics")).get(path))
            ci = m.get("ci")
            if not isinstance(ci, list) or len(ci) != 2:
                continue
            previous = latest.get(row.get("series"))
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
            latest[row.get("series")] = row
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
    # One line per series: a line joining runs of different scenarios or targets would draw a
    # change where there is only a different measurement.
    series = list(dict.fromkeys(row.get("series") for row in rows))
    for k, name in enumerate(series):
        mine = np.array([row.get("series") == name for row in rows])
        color = plotkit.SERIES_COLORS[k % len(plotkit.SERIES_COLORS)] if len(series) > 1 else plotkit.C_OK
        text = label if len(series) == 1 else str(name).replace("$", r"\$")[:60]
        ax.plot(x[mine], values[mine], "o-", color=color, ms=5, lw=1.0, label=text)
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
            f"<span class='mono'>{esc(r.get('target'))}</span>",
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
            grid_table(["run", "started (UTC)", "scenario", "target", "status", "path"], run_rows, numeric=())
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
