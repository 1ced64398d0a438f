"""The runs of a history (`loadbench history`): finding them, one row of key metrics each with
its 95 % bootstrap interval over seconds, and the series they belong to.

Consumes analyzed run directories; produces the rows `loadbench.compare.history` plots. How each
interval is computed: that module's docstring. A series is the runs of one scenario against one
target (host and path, `loadbench.compare.compare.target_key`): runs of different series measure
different things, so a change is only ever looked for between runs of the same series.
"""

from __future__ import annotations

import glob
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from loadbench.analyze.stats import value_at
from loadbench.compare.compare import target_key
from loadbench.errors import RunDirError, UsageError
from loadbench.record import rundir
from loadbench.record.series import read_samples, read_timeseries
from loadbench.report.fmt import as_dict, num

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


def expand_runs(patterns: str | Sequence[str]) -> list[Path]:
    """The run directories ``patterns`` name, together, oldest first (by ``started_unix_s``).

    Each pattern is one run directory, a directory of run directories (``reports/``), or a glob
    (``reports/*-kserve_v2``). `UsageError` when one of them names no run directory: a typo must
    not drop its runs from the history unnoticed.
    """
    found: list[Path] = []
    for pattern in [patterns] if isinstance(patterns, str) else patterns:
        found += _expand(pattern)
    return sorted(dict.fromkeys(found), key=_start_key)


def _expand(pattern: str) -> list[Path]:
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
    return found


def series_of(scenario: Any, target: Any) -> str:
    """The series a run belongs to, as shown: ``json_post @ 127.0.0.1/predict`` (`target_key`:
    host and path, the port left out)."""
    key = target_key(target)
    where = f"{key[0]}{key[1] if key[1] != '/' else ''}" if key else "no target"
    return f"{scenario or '?'} @ {where}"


def series_warning(rows: Sequence[dict[str, Any]]) -> str | None:
    """One line when the rows are of more than one series, naming each with its run count."""
    counts: dict[str, int] = {}
    for row in rows:
        counts[str(row.get("series"))] = counts.get(str(row.get("series")), 0) + 1
    if len(counts) < 2:
        return None
    listed = "; ".join(f"{name} ({n} run{'s' if n != 1 else ''})" for name, n in counts.items())
    return (
        f"the runs are of {len(counts)} different scenarios or targets, each its own series (a change "
        f"is marked only against the previous run of the same series): {listed}"
    )


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
    scenario, target = meta.get("scenario") or info.get("scenario"), meta.get("target") or info.get("target")
    return {
        "id": str(meta.get("run_id") or info.get("id") or run_dir.name),
        "started_at": meta.get("started_at")
        or info.get("started_at")
        or (rundir.iso_utc(started) if started is not None else None),
        "started_unix_s": started,
        "path": str(run_dir),
        "scenario": scenario,
        "target": target,
        "series": series_of(scenario, target),
        "status": meta.get("status") or info.get("status"),
        "metrics": metrics,
    }


def load_history(paths: Sequence[Path], *, resamples: int = RESAMPLES, seed: int = 0) -> History:
    """One row per analyzed run directory, in the given order (see `history_row`).

    A directory without ``summary.json`` (not analyzed), or one that cannot be read, is skipped
    and named in the result's ``warnings``; so are runs of more than one series (`series_warning`).
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
    mixed = series_warning(rows)
    return History(rows, notes if mixed is None else [mixed, *notes])
