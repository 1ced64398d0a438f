"""What the Replicas and Targets sections' plots draw, from the records in memory or from a
`RecordStore`: a seeded sample of the successful records that name a replica (a target) for the
latency scatter, the same positions among them both ways (as `plotdata.ScatterPoints`), and
attempts and failed attempts per second per target (exact counts).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import pandas as pd

from loadbench.analyze.replicas import group_order
from loadbench.report import plotkit

if TYPE_CHECKING:
    from loadbench.analyze.store import RecordStore

FloatArray = npt.NDArray[np.float64]

MAX_NAMED_POINTS = 20_000  # successful records drawn in a latency-by-name scatter


@dataclass(frozen=True, eq=False)
class NamedPoints:
    """The sampled records (seconds since the run start, ms, the name each gave), in file order."""

    start_s: FloatArray
    latency_ms: FloatArray
    names: npt.NDArray[np.object_]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, NamedPoints):
            return NotImplemented
        return (
            np.array_equal(self.start_s, other.start_s)
            and np.array_equal(self.latency_ms, other.latency_ms)
            and self.names.tolist() == other.names.tolist()
        )

    __hash__ = None  # type: ignore[assignment]


# (target, attempts per second, failed attempts per second), in the order the plot draws them.
Traffic = list[tuple[str, npt.NDArray[np.float64], npt.NDArray[np.float64]]]


def _names(records: pd.DataFrame, column: str) -> npt.NDArray[np.object_]:
    names: npt.NDArray[np.object_] = records[column].astype("string").fillna("").to_numpy(dtype=object)
    return names


def named_points(records: pd.DataFrame, column: str, run_start: float) -> NamedPoints | None:
    """The sample of the successful records naming a ``column``; None when none does."""
    if column not in records.columns:
        return None
    names = _names(records, column)
    shown = np.flatnonzero(records["ok"].to_numpy().astype(bool) & (names != ""))
    if not shown.size:
        return None
    keep = shown[plotkit.downsample_indices(shown.size, MAX_NAMED_POINTS)]
    start = records["start_unix_s"].to_numpy(dtype=float) - run_start
    return NamedPoints(start[keep], records["latency_ms"].to_numpy(dtype=float)[keep], names[keep])


def _named(column: str) -> str:
    return f"ok <> 0 AND coalesce(CAST(\"{column}\" AS VARCHAR), '') <> ''"


def store_named_points(store: RecordStore, column: str, run_start: float) -> NamedPoints | None:
    """`named_points` of the store's attempts as written (a scan keeps the file's order)."""
    if column not in store.filled:
        return None
    ((total,),) = store.rows(f"SELECT count(*) FROM written WHERE {_named(column)}")
    if not total:
        return None
    wanted = plotkit.downsample_indices(int(total), MAX_NAMED_POINTS)
    start, latency, names = store.pick(
        f'SELECT start_unix_s, latency_ms, CAST("{column}" AS VARCHAR) FROM written WHERE {_named(column)}',
        [],
        wanted,
    )
    return NamedPoints(
        start.astype(np.float64) - run_start, latency.astype(np.float64), np.asarray(names, dtype=object)
    )


def _span(timeseries: pd.DataFrame | None) -> tuple[int, int] | None:
    """(first second, how many) of the timeseries' contiguous rows; None without any."""
    ts = plotkit.contiguous(timeseries)
    return None if ts.empty else (int(ts["second"].iloc[0]), len(ts))


def traffic(
    attempts: pd.DataFrame,
    column: str,
    run_start: float,
    timeseries: pd.DataFrame | None,
    listed: Sequence[str] = (),
) -> Traffic | None:
    """Attempts and failed attempts per second of the timeseries per value of ``column`` (in
    `loadbench.analyze.replicas.group_order`: a listed one that got nothing is a line at zero); None without the column
    or the timeseries."""
    span = _span(timeseries)
    if column not in attempts.columns or span is None:
        return None
    first, seconds = span
    names = _names(attempts, column)
    second = np.floor(attempts["start_unix_s"].to_numpy(dtype=float) - (run_start + first)).astype(np.int64)
    failed = ~attempts["ok"].to_numpy().astype(bool)
    keep = (names != "") & (second >= 0) & (second < seconds)
    out = []
    for name in group_order(names[keep].tolist(), listed):
        mine = keep & (names == name)
        out.append(
            (
                str(name),
                np.bincount(second[mine], minlength=seconds).astype(float),
                np.bincount(second[mine & failed], minlength=seconds).astype(float),
            )
        )
    return out


def store_traffic(
    store: RecordStore,
    column: str,
    run_start: float,
    timeseries: pd.DataFrame | None,
    listed: Sequence[str] = (),
) -> Traffic | None:
    """`traffic` of the store's attempts as written: counts per (name, second) in SQL."""
    span = _span(timeseries)
    if span is None:
        return None
    first, seconds = span
    rows: list[tuple[str, int, int, int]] = []
    if column in store.filled:
        rows = store.rows(
            f"""SELECT name, second, count(*), count(*) FILTER (ok = 0) FROM (
                SELECT coalesce(CAST("{column}" AS VARCHAR), '') AS name,
                CAST(floor(start_unix_s - ?) AS BIGINT) AS second, ok FROM written)
            WHERE name <> '' AND second >= 0 AND second < ? GROUP BY ALL""",
            [run_start + first, seconds],
        )
    out = []
    for name in group_order([r[0] for r in rows], listed):
        sent, failed = np.zeros(seconds), np.zeros(seconds)
        for n, second, count, errors in rows:
            if n == name:
                sent[second], failed[second] = count, errors
        out.append((name, sent, failed))
    return out


__all__: Sequence[str] = (
    "MAX_NAMED_POINTS",
    "NamedPoints",
    "Traffic",
    "named_points",
    "store_named_points",
    "store_traffic",
    "traffic",
)
