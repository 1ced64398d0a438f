"""What the Quality and Real-time factor sections' plots draw, from the records in memory or from
a `RecordStore`.

`QualityPlotData`: accuracy per second and the rolling macro scores
(`loadbench.analyze.quality.accuracy_per_second` / `macro_scores_rolling`'s frames). From a store
they come from the records counted per (second, expected, predicted, ok) in SQL, through the
same functions weighted by those counts, so the frames are equal. The RTF histogram (`plotdata_hist.Histogram`, two
rows: faster than real time and not) has the same bins, counts and marks both ways.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from loadbench.analyze import quality
from loadbench.report.plotdata_hist import (
    Histogram,
    count_values,
    counted_bins,
    counted_percentiles,
    empty_histogram,
    split_histogram,
)
from loadbench.report.plotkit import LOG_SPREAD

if TYPE_CHECKING:
    from loadbench.analyze.store import RecordStore

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

RTF_BINS = 60
RTF_MARKS = (50.0, 99.0)


@dataclass(frozen=True, eq=False)
class QualityPlotData:
    """The frames `loadbench.report.plots_quality.quality_over_time` draws."""

    per_second: pd.DataFrame
    rolling: pd.DataFrame


def quality_seconds(timeseries: pd.DataFrame, latest_start_s: float) -> int:
    """The seconds the quality figure covers (the report's rule: the timeseries', or up to the
    latest start without one)."""
    return int(timeseries["second"].max()) + 1 if len(timeseries) else int(np.ceil(max(latest_start_s, 0)))


def due_start_s(requests: pd.DataFrame) -> FloatArray:
    """Open loop: a request belongs to the second it was due in, as in the analyzer's series."""
    sent = requests["start_unix_s"].to_numpy(dtype=float)
    intended = requests["intended_unix_s"].to_numpy(dtype=float)
    starts: FloatArray = np.where(np.isfinite(intended), intended, sent)
    return starts


def frame_quality_data(requests: pd.DataFrame, run_start: float, timeseries: pd.DataFrame) -> QualityPlotData:
    """`QualityPlotData` of the records in memory."""
    start = due_start_s(requests) - run_start
    seconds = quality_seconds(timeseries, float(start.max(initial=0)))
    args = (start, requests["expected"], requests["predicted"], requests["ok"].to_numpy(), seconds)
    return QualityPlotData(quality.accuracy_per_second(*args), quality.macro_scores_rolling(*args))


def store_quality_data(store: RecordStore, run_start: float, timeseries: pd.DataFrame) -> QualityPlotData:
    """`QualityPlotData` of the store's records: their (second, expected, predicted, ok) counted in
    SQL, then `quality`'s own per-second arithmetic on the counts."""
    ((latest,),) = store.rows("SELECT max(start_unix_s) - ? FROM requests", [run_start])
    seconds = max(quality_seconds(timeseries, 0.0 if latest is None else float(latest)), 0)
    second = "CAST(floor(start_unix_s - ?) AS BIGINT)"
    grouped = store.frame(
        f"""SELECT {second} AS s, CAST(expected AS VARCHAR) AS expected,
        CAST(predicted AS VARCHAR) AS predicted, ok <> 0 AS ok, count(*) AS n
        FROM requests WHERE {second} >= 0 AND {second} < ? GROUP BY ALL ORDER BY ALL""",
        [run_start, run_start, run_start, seconds],
    )
    args = (
        grouped["s"].to_numpy(dtype=np.float64),
        grouped["expected"],
        grouped["predicted"],
        grouped["ok"].to_numpy(dtype=bool),
        seconds,
    )
    counts = grouped["n"].to_numpy(dtype=np.int64)
    return QualityPlotData(
        quality.accuracy_per_second(*args, counts=counts), quality.macro_scores_rolling(*args, counts=counts)
    )


# --- the real-time factor -----------------------------------------------------------------------


def rtf_edges(lo: float, hi: float) -> tuple[FloatArray, bool]:
    """`loadbench.report.plots_quality.rtf_distribution`'s bins for RTFs from ``lo`` to ``hi``."""
    log = hi / lo > LOG_SPREAD
    lo_edge, hi_edge = min(lo, 1.0) * 0.9, max(hi, 1.0) * 1.1
    edges = np.geomspace(lo_edge, hi_edge, RTF_BINS + 1) if log else np.linspace(0.0, hi_edge, RTF_BINS + 1)
    return np.asarray([float(e) for e in edges]), log


def rtf_histogram_of(rtf: npt.ArrayLike) -> Histogram:
    """The RTF histogram of the finite positive values of ``rtf``."""
    values = np.asarray(rtf, dtype=np.float64)
    values = values[np.isfinite(values) & (values > 0)]
    if values.size == 0:
        return empty_histogram(RTF_MARKS, 1.0)
    edges, log = rtf_edges(float(values.min()), float(values.max()))
    return split_histogram(values, edges, log, 1.0, RTF_MARKS)


def frame_rtf(requests: pd.DataFrame, in_window: npt.NDArray[np.bool_]) -> Histogram:
    """`rtf_histogram_of` the window's records in memory."""
    mask = np.asarray(in_window, dtype=bool)
    return rtf_histogram_of(
        quality.rtf_values(
            requests["latency_ms"].to_numpy()[mask],
            requests["media_s"].to_numpy()[mask],
            requests["ok"].to_numpy()[mask],
        )
    )


# `quality.rtf_values` from the records as written (the latency from the send).
RTF = "latency_ms / 1000.0 / media_s"


def store_rtf(store: RecordStore, window: tuple[str, Sequence[Any]]) -> Histogram:
    """`frame_rtf` of the store's records; ``window``: the SQL condition (and parameters) of the
    records the report's window holds (by their send)."""
    where, params = window
    source = (
        f"(SELECT {RTF} AS rtf FROM records WHERE {where} AND ok <> 0 AND isfinite(media_s) AND media_s > 0)"
    )
    n, _, _, lo, hi = count_values(store, "rtf", source, params, "isfinite(v) AND v > 0")
    if not n:
        return empty_histogram(RTF_MARKS, 1.0)
    edges, log = rtf_edges(float(lo), float(hi))
    marks = counted_percentiles(store, n, RTF_MARKS)
    return Histogram(n, edges, counted_bins(store, edges, split=1.0), log, marks, 1.0, RTF_MARKS)


__all__: Sequence[str] = (
    "QualityPlotData",
    "frame_quality_data",
    "frame_rtf",
    "rtf_histogram_of",
    "store_quality_data",
    "store_rtf",
)
