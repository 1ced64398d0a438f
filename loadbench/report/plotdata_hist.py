"""A histogram with its percentile marks, from values in memory or from a `RecordStore`: what the
report's distribution plots (TTFT, inter-token gaps, real-time factor) draw.

`histogram_of` bins an array as ``ax.hist`` would (``np.histogram`` with explicit edges: each bin
``[e_i, e_i+1)``, the last one closed); `store_histogram` counts each distinct value once in DuckDB
(`COUNTED`), then the same bins (exact comparisons against the same edges) and the marks (the
values at numpy's positions of the sorted order, ``np.percentile`` bit for bit) from those counts,
so both give equal data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from loadbench.analyze import stats
from loadbench.report.plotkit import LOG_SPREAD

if TYPE_CHECKING:
    from loadbench.analyze.store import RecordStore

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

BINS = 60  # histogram bars
MARKS = (50.0, 90.0, 99.0)


@dataclass(frozen=True, eq=False)
class Histogram:
    """``n`` values (finite, >= 0, or as the caller keeps them) binned at ``edges``: ``counts``
    per bin, one row per split (``split``: the value below which a value counts in the first
    row; None: one row); ``log``: log-spaced bins; ``marks``: the values at `MARKS` percents."""

    n: int
    edges: FloatArray
    counts: IntArray  # shape (rows, bins)
    log: bool
    marks: tuple[float, ...]
    split: float | None = None
    percents: tuple[float, ...] = field(default=MARKS)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Histogram):
            return NotImplemented
        return (
            (self.n, self.log, self.marks, self.split, self.percents)
            == (other.n, other.log, other.marks, other.split, other.percents)
            and np.array_equal(self.edges, other.edges)
            and np.array_equal(self.counts, other.counts)
        )

    __hash__ = None  # type: ignore[assignment]


def empty_histogram(percents: Sequence[float] = MARKS, split: float | None = None) -> Histogram:
    return Histogram(
        0,
        np.zeros(0),
        np.zeros((1 if split is None else 2, 0), dtype=np.int64),
        False,
        (),
        split,
        tuple(percents),
    )


def time_edges(
    min_positive: float | None, max_positive: float | None, maximum: float
) -> tuple[FloatArray, bool]:
    """The bins of `loadbench.report.plots_llm.time_distribution`: log-spaced over the positive
    values when they spread more than `LOG_SPREAD`, else linear from 0 (the log bins hold only
    the positive values, the linear ones every value)."""
    if min_positive is not None and max_positive is not None and max_positive / min_positive > LOG_SPREAD:
        return np.geomspace(min_positive, max_positive * 1.0001, BINS + 1), True
    return np.linspace(0.0, maximum * 1.0001 or 1.0, BINS + 1), False


def _counts(values: FloatArray, edges: FloatArray) -> IntArray:
    counts, _ = np.histogram(values, bins=edges)
    return counts.astype(np.int64)


def histogram_of(values: npt.ArrayLike) -> Histogram:
    """The time histogram of the finite values >= 0 of ``values`` (ms)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v) & (v >= 0)]
    if v.size == 0:
        return empty_histogram()
    positive = v[v > 0]
    edges, log = time_edges(
        float(positive.min()) if positive.size else None,
        float(positive.max()) if positive.size else None,
        float(v.max()),
    )
    counts = _counts(positive if log else v, edges)
    marks = tuple(float(x) for x in np.percentile(v, MARKS))
    return Histogram(int(v.size), edges, counts[None, :], log, marks)


def split_histogram(
    values: FloatArray, edges: FloatArray, log: bool, split: float, percents: Sequence[float]
) -> Histogram:
    """``values`` (already kept) binned in two rows: below ``split``, and the rest."""
    low = values < split
    counts = np.stack([_counts(values[low], edges), _counts(values[~low], edges)])
    marks = tuple(float(x) for x in np.percentile(values, list(percents)))
    return Histogram(int(values.size), edges, counts, log, marks, split, tuple(percents))


# --- from a store -------------------------------------------------------------------------------

# The values a store histogram bins, each distinct one with its count: times are µs multiples, so
# a few hundred thousand rows where there are tens of millions of values (a hash aggregate, one
# pass over the records; the bins and the marks then read this table alone).
COUNTED = "lb_histogram"


def count_values(
    store: RecordStore, value: str, source: str, params: Sequence[Any], keep: str
) -> tuple[Any, ...]:
    """`COUNTED` of the values ``value`` of ``source`` (a table or a parenthesized query, with
    ``params``) that ``keep`` (over ``v``) keeps; (how many, the smallest and largest positive one,
    the smallest and the largest)."""
    store.rows(
        f"""CREATE OR REPLACE TEMP TABLE {COUNTED} AS SELECT v, count(*) AS n
        FROM (SELECT {value} AS v FROM {source}) WHERE {keep} GROUP BY v""",
        params,
    )
    ((n, min_positive, max_positive, minimum, maximum),) = store.rows(
        f"SELECT coalesce(sum(n), 0), min(v) FILTER (v > 0), max(v) FILTER (v > 0), min(v), max(v) FROM {COUNTED}"
    )
    return int(n), min_positive, max_positive, minimum, maximum


def counted_bins(store: RecordStore, edges: FloatArray, split: float | None = None) -> IntArray:
    """The values of `COUNTED` in each bin of ``edges`` as ``np.histogram`` counts them (the last
    bin closed; values outside the edges in none), a row of bins for each side of ``split``."""
    sides = [""] if split is None else [" AND v < ?", " AND v >= ?"]
    parts, params = [], []
    for side in sides:
        for i in range(edges.size - 1):
            upper = "<=" if i == edges.size - 2 else "<"
            parts.append(f"coalesce(sum(n) FILTER (v >= ? AND v {upper} ?{side}), 0)")
            params += [float(edges[i]), float(edges[i + 1])] + ([] if split is None else [split])
    ((*counts,),) = store.rows(f"SELECT {', '.join(parts)} FROM {COUNTED}", params)
    return np.asarray(counts, dtype=np.int64).reshape(len(sides), edges.size - 1)


def counted_percentiles(store: RecordStore, n: int, percents: Sequence[float]) -> tuple[float, ...]:
    """``np.percentile`` of the ``n`` values of `COUNTED` at ``percents``, bit for bit: the values
    at numpy's positions of their sorted order (each position's value: the first whose running
    count passes it), interpolated as numpy does."""
    lower, upper, gamma = stats.percentile_points(n, percents)
    values = store.counted_values_at(f"SELECT v, n FROM {COUNTED}", [], np.concatenate([lower, upper]))
    return tuple(float(x) for x in stats.interpolate(values[: lower.size], values[lower.size :], gamma))


def store_histogram(store: RecordStore, value: str, source: str, params: Sequence[Any] = ()) -> Histogram:
    """`histogram_of` the values ``value`` of ``source`` (a table or a parenthesized query, with
    ``params``): through `COUNTED`."""
    n, min_positive, max_positive, _, maximum = count_values(
        store, value, source, params, "isfinite(v) AND v >= 0"
    )
    if not n:
        return empty_histogram()
    edges, log = time_edges(
        None if min_positive is None else float(min_positive),
        None if max_positive is None else float(max_positive),
        float(maximum),
    )
    return Histogram(n, edges, counted_bins(store, edges), log, counted_percentiles(store, n, MARKS))


__all__: Sequence[str] = (
    "BINS",
    "COUNTED",
    "MARKS",
    "Histogram",
    "count_values",
    "counted_bins",
    "counted_percentiles",
    "empty_histogram",
    "histogram_of",
    "split_histogram",
    "store_histogram",
    "time_edges",
)
