"""What the report's per-request plots draw, from the records in memory or from a `RecordStore`.

The latency scatter, the percentile curve and the errors-by-kind frame are small: a few thousand
points, some 500 percentiles, one row per (second, kind). `PlotData` holds them, so the plots
(`loadbench.report.plots`) draw the same figure from either source: `frame_plot_data` computes
them from a DataFrame of the records, `store_plot_data` from DuckDB without the records in memory
(a run of any length, `loadbench.analyze.bounded`), and both give the same values: the same
sampled records (the same seeded positions among the successes and failures, in file order), the
percentiles ``np.percentile`` gives bit for bit (`loadbench.analyze.stats.percentile_points`),
the same error counts named by the same rule. The sections' own plots (LLM, quality, replicas,
targets) have theirs in `loadbench.report.sectiondata`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from loadbench.analyze import bounded, stats
from loadbench.analyze.bounded import window_successes
from loadbench.analyze.scope import SOURCE
from loadbench.record.records import from_due_time
from loadbench.report.fmt import as_dict, num
from loadbench.report.plotkit import downsample_indices

if TYPE_CHECKING:
    from loadbench.analyze.store import RecordStore

FloatArray = npt.NDArray[np.float64]

MAX_POINTS = 20_000  # successful requests drawn in the latency scatter
MAX_ERROR_POINTS = 5_000  # failed requests drawn in the latency scatter
PERCENTILE_MARKS = (50.0, 90.0, 99.0, 99.9)
OK_SQL = "ok <> 0"
FAILED_SQL = "ok = 0"
# The record columns whose plots the report draws from a store (`store_plot_data` and
# `loadbench.report.sectiondata`: LLM, quality, real-time factor, phases, replicas, targets,
# cache; with retries, the requests from the store's collapsed ``records``, the attempts from
# ``written``): a run with any other column is drawn from its records in memory (`store_covers`).
COLUMNS = bounded.COLUMNS


def store_covers(meta: dict[str, Any], store: RecordStore) -> bool:
    """Whether every plot of the run's report can be drawn from its store (`COLUMNS`)."""
    return store.filled <= COLUMNS


@dataclass(frozen=True)
class ScatterPoints:
    """The requests the latency scatter draws (seconds since the run start, ms) and how many there
    were of each outcome; ``start_range``: the earliest and latest start of all of them."""

    ok_start_s: FloatArray
    ok_latency_ms: FloatArray
    err_start_s: FloatArray
    err_latency_ms: FloatArray
    ok_total: int
    err_total: int
    start_range: tuple[float, float] | None  # None without requests


@dataclass(frozen=True)
class PercentileCurve:
    """Latency (``y``) at percentile ``1 - 1/x`` of ``n`` successful requests, the marked
    percentiles as (percent, x, y), the largest latency and the smallest positive one."""

    n: int
    x: FloatArray
    y: FloatArray
    marks: tuple[tuple[float, float, float], ...]
    maximum: float
    min_positive: float | None  # None when no latency is positive


@dataclass(frozen=True)
class PlotData:
    """Everything the report's per-request plots need: no record itself."""

    scatter: ScatterPoints
    curve: PercentileCurve
    errors: pd.DataFrame  # `error_kind_frame`: second, kind, count


# --- the latency scatter ------------------------------------------------------------------------


def scatter_points(start_s: npt.ArrayLike, latency_ms: npt.ArrayLike, ok: npt.ArrayLike) -> ScatterPoints:
    """A seeded sample of at most `MAX_POINTS` successes and `MAX_ERROR_POINTS` failures."""
    t = np.asarray(start_s, dtype=float)
    lat = np.asarray(latency_ms, dtype=float)
    good = np.asarray(ok).astype(bool)
    ok_idx = np.flatnonzero(good)
    err_idx = np.flatnonzero(~good)
    shown_ok = ok_idx[downsample_indices(ok_idx.size, MAX_POINTS)]
    shown_err = err_idx[downsample_indices(err_idx.size, MAX_ERROR_POINTS, seed=1)]
    return ScatterPoints(
        t[shown_ok],
        lat[shown_ok],
        t[shown_err],
        lat[shown_err],
        int(ok_idx.size),
        int(err_idx.size),
        (float(t.min()), float(t.max())) if t.size else None,
    )


def _sampled(
    store: RecordStore, where: str, total: int, cap: int, seed: int, run_start: float
) -> tuple[FloatArray, FloatArray]:
    """(start since ``run_start``, latency) of the records matching ``where`` at the positions
    `downsample_indices` picks among them in file order (what `scatter_points` picks)."""
    wanted = downsample_indices(total, cap, seed)
    if wanted.size == 0:
        return np.zeros(0), np.zeros(0)
    # A scan's result keeps the file's order: positions among these records are the frame's.
    start, latency = store.pick(f"SELECT start_unix_s, latency_ms FROM records WHERE {where}", [], wanted)
    start, latency = start.astype(np.float64), latency.astype(np.float64)
    return start - run_start, latency


def store_scatter(store: RecordStore, run_start: float) -> ScatterPoints:
    """`scatter_points` of the store's records."""
    ((ok_total, err_total, first, last),) = store.rows(
        f"SELECT count(*) FILTER ({OK_SQL}), count(*) FILTER ({FAILED_SQL}), min(start_unix_s), "
        "max(start_unix_s) FROM records"
    )
    ok_t, ok_lat = _sampled(store, OK_SQL, int(ok_total), MAX_POINTS, 0, run_start)
    err_t, err_lat = _sampled(store, FAILED_SQL, int(err_total), MAX_ERROR_POINTS, 1, run_start)
    span = None if first is None else (float(first) - run_start, float(last) - run_start)
    return ScatterPoints(ok_t, ok_lat, err_t, err_lat, int(ok_total), int(err_total), span)


# --- the percentile curve -----------------------------------------------------------------------


def percentile_curve(
    n: int, at: Callable[[FloatArray], FloatArray], maximum: float, min_positive: float | None
) -> PercentileCurve:
    """The curve of ``n`` latencies whose value at each of an array of percents ``at`` gives
    (``np.percentile``'s), with `PERCENTILE_MARKS` that ``n`` can support: one call for all."""
    if n == 0:
        return PercentileCurve(0, np.zeros(0), np.zeros(0), (), float("nan"), None)
    x = stats.curve_x(n)
    # The highest percentile n samples can support is 1 - 1/n; beyond it is extrapolation.
    marks = [(p, 1.0 / (1.0 - p / 100.0)) for p in PERCENTILE_MARKS]
    marks = [(p, xp) for p, xp in marks if xp <= n]
    values = at(np.concatenate([(1.0 - 1.0 / x) * 100.0, [p for p, _ in marks]]))
    marked = tuple((p, xp, float(v)) for (p, xp), v in zip(marks, values[x.size :], strict=True))
    return PercentileCurve(n, x, values[: x.size], marked, maximum, min_positive)


def curve_of(latency_ms: npt.ArrayLike) -> PercentileCurve:
    """`percentile_curve` of latencies in memory (the non-finite ignored)."""
    lat = np.asarray(latency_ms, dtype=float)
    lat = np.sort(lat[np.isfinite(lat)])
    if lat.size == 0:
        return percentile_curve(0, lambda p: p, 0.0, None)
    positive = lat[lat > 0]
    return percentile_curve(
        int(lat.size),
        lambda p: np.asarray(np.percentile(lat, p), dtype=np.float64),
        float(lat[-1]),
        float(positive[0]) if positive.size else None,
    )


def store_curve(store: RecordStore, meta: dict[str, Any], summary: dict[str, Any]) -> PercentileCurve:
    """`curve_of` the window's successes, as the summary ranked them: their count, largest and
    smallest latency from the summary, the curve's values from the store (one sorted pass, or
    none when the analyzer's pass through the same store ranked them already)."""
    where, params = window_successes(meta)
    latency = as_dict(summary.get("latency_ms"))
    n, maximum, minimum = (
        int(as_dict(summary.get("requests")).get("ok") or 0),
        latency.get("max"),
        latency.get("min"),
    )
    min_positive = minimum
    if n and not (num(minimum) or 0) > 0:  # a latency of 0: the smallest positive one is another
        ((min_positive,),) = store.rows(
            f"SELECT min(latency_ms) FILTER (latency_ms > 0) FROM {SOURCE} WHERE {where}", params
        )

    return percentile_curve(
        n,
        lambda percents: store.percentiles(n, percents, "latency_ms", where, params, source=SOURCE),
        float(maximum or 0.0),
        None if min_positive is None else float(min_positive),
    )


# --- errors by kind -----------------------------------------------------------------------------


def error_kind_frame(requests: pd.DataFrame, run_start: float) -> pd.DataFrame:
    """Failed requests counted per (second, kind), with the analyzer's own kind rule."""
    failed = requests[requests["ok"].to_numpy() == 0]
    if failed.empty:
        return _named_kinds(None)
    # Count each distinct (second, status, error) first, then name each of those rows' pairs
    # once: few, even when failures are many.
    second = np.floor(failed["start_unix_s"].to_numpy() - run_start).astype("int64")
    keyed = pd.DataFrame({"second": second, "status": failed["status"].to_numpy(), "error": failed["error"]})
    counts = keyed.groupby(["second", "status", "error"], sort=False, observed=True, dropna=False).size()
    return _named_kinds(counts[counts > 0].rename("count").reset_index())


def store_error_kinds(store: RecordStore, run_start: float) -> pd.DataFrame:
    """`error_kind_frame` of the store's records."""
    counts = store.frame(
        f"""SELECT CAST(floor(start_unix_s - ?) AS BIGINT) AS second, status, error, count(*) AS count
        FROM records WHERE {FAILED_SQL} GROUP BY ALL""",
        [run_start],
    )
    return _named_kinds(counts if len(counts) else None)


def _named_kinds(counts: pd.DataFrame | None) -> pd.DataFrame:
    """Counts per (second, status, error) as counts per (second, kind), sorted."""
    if counts is None:
        return pd.DataFrame({"second": pd.Series([], dtype="int64"), "kind": [], "count": []})
    kinds: dict[tuple[int, str], str] = {}
    kind = []
    for st, er in zip(counts["status"].tolist(), counts["error"].astype(str).tolist(), strict=True):
        if (st, er) not in kinds:
            kinds[(st, er)] = stats.error_kind(int(st), er)
        kind.append(kinds[(st, er)])
    frame = pd.DataFrame(
        {"second": counts["second"].to_numpy(dtype=np.int64), "kind": kind, "count": counts["count"]}
    )
    return frame.groupby(["second", "kind"], sort=True)["count"].sum().rename("count").reset_index()


# --- both ---------------------------------------------------------------------------------------


def frame_plot_data(requests: pd.DataFrame, in_window: npt.NDArray[np.bool_], run_start: float) -> PlotData:
    """`PlotData` of the records in memory; ``in_window``: the measured window's mask of them (an
    open loop's requests by their due time, as the analyzer counts them)."""
    start = requests["start_unix_s"].to_numpy(dtype=float) - run_start
    latency = requests["latency_ms"].to_numpy(dtype=float)
    ok = requests["ok"].to_numpy().astype(bool)
    # The curve ranks what the summary's percentiles rank: an open loop's latency from the due time.
    due = from_due_time(requests)
    due_latency = due["latency_ms"].to_numpy(dtype=float)
    return PlotData(
        scatter_points(start, latency, ok),
        curve_of(due_latency[ok & in_window]),
        error_kind_frame(requests, run_start),
    )


def store_plot_data(
    store: RecordStore, meta: dict[str, Any], summary: dict[str, Any], run_start: float
) -> PlotData:
    """`PlotData` of the store's records, for the run of ``meta`` analyzed into ``summary``."""
    return PlotData(
        store_scatter(store, run_start),
        store_curve(store, meta, summary),
        store_error_kinds(store, run_start),
    )


def window_bounds(summary: dict[str, Any]) -> tuple[float | None, float | None]:
    """The summary's measured window as (start, end) unix seconds, either None when not given."""
    window = as_dict(summary.get("window"))
    return num(window.get("start_unix_s")), num(window.get("end_unix_s"))


def window_sql(summary: dict[str, Any]) -> tuple[str, list[float]]:
    """`window_bounds` as an SQL condition on ``start_unix_s`` (both ends in) and its parameters:
    over the store's ``requests`` view, the due time; over ``records``, the send."""
    lo, hi = window_bounds(summary)
    where, params = ["true"], []
    if lo is not None:
        where.append("start_unix_s >= ?")
        params.append(lo)
    if hi is not None:
        where.append("start_unix_s <= ?")
        params.append(hi)
    return " AND ".join(where), params


__all__: Sequence[str] = (
    "MAX_ERROR_POINTS",
    "MAX_POINTS",
    "PERCENTILE_MARKS",
    "PercentileCurve",
    "PlotData",
    "ScatterPoints",
    "error_kind_frame",
    "frame_plot_data",
    "store_plot_data",
    "window_bounds",
    "window_sql",
)
