"""What the report's cache histogram draws (`loadbench.report.cache`), from the records in memory
or from a `RecordStore`: the successful attempts sent in the measured window (as written: their
send and latency), the labelled ones where the server said hit or miss, binned on a log axis as
hits and misses.

Both give the same `CacheHistogram`: the same values kept (exact comparisons), the same edges
(``np.geomspace`` of their least and largest), each value in the bin ``np.histogram`` puts it in,
and a value's side by the same rule (`hit_mask`: the ``cache`` column, or `cache.assign_fast` of
the summary's mixture on the value itself). The store counts each distinct (latency, answer)
once in DuckDB and bins those counts: memory of a few rows per distinct latency, streamed.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from loadbench.analyze.cache import assign_fast, log_latency
from loadbench.report.fmt import as_dict
from loadbench.report.plotdata import window_bounds, window_sql

if TYPE_CHECKING:
    from loadbench.analyze.store import RecordStore

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

EDGES = 60  # the histogram's bin edges (59 bins)
COUNTED = "lb_cache_histogram"


@dataclass(frozen=True, eq=False)
class CacheHistogram:
    """Hits and misses counted in each bin of ``edges`` (log-spaced); ``estimate``: the sides are
    the mixture's, not the server's word."""

    edges: FloatArray
    hits: IntArray
    misses: IntArray
    estimate: bool

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CacheHistogram):
            return NotImplemented
        return (
            self.estimate == other.estimate
            and np.array_equal(self.edges, other.edges)
            and np.array_equal(self.hits, other.hits)
            and np.array_equal(self.misses, other.misses)
        )

    __hash__ = None  # type: ignore[assignment]


def _mixture_fit(section: dict[str, Any]) -> dict[str, Any] | None:
    """The summary's mixture as `cache.assign_fast` takes it, where its hits are an estimate."""
    mixture = as_dict(section.get("mixture"))
    if (
        section.get("source") == "mixture"
        and mixture.get("medians_ms")
        and section.get("hit_ratio") is not None
    ):
        return {
            "weights": mixture["weights"],
            "means": [float(np.log(m)) for m in mixture["medians_ms"]],
            "sds": mixture["sd_log"],
        }
    return None


def hit_mask(section: dict[str, Any], said: npt.NDArray[Any], latency: FloatArray) -> npt.NDArray[np.bool_]:
    """Per request: a hit, as the section's source tells (the ``cache`` column, or the mixture)."""
    fit = _mixture_fit(section)
    if fit is not None:
        return assign_fast(log_latency(latency), fit)
    return np.asarray(said == "hit", dtype=bool)


def edges_of(lo: float, hi: float) -> FloatArray:
    return np.geomspace(lo, hi * 1.0001 if hi > lo else lo * 1.01 + 1e-3, EDGES)


def _count(values: FloatArray, edges: FloatArray, weights: IntArray | None = None) -> IntArray:
    """``np.histogram``'s counts of ``values`` (each counted ``weights`` times: whole numbers, exact
    in float64 far beyond any run's length)."""
    counts, _ = np.histogram(values, bins=edges, weights=weights)
    return np.asarray(counts, dtype=np.int64)


def frame_cache_data(summary: dict[str, Any], attempts: pd.DataFrame) -> CacheHistogram | None:
    """`CacheHistogram` of the records in memory (``attempts``: every attempt, as written)."""
    section = as_dict(summary.get("cache"))
    if section.get("hit_ratio") is None:
        return None
    start = attempts["start_unix_s"].to_numpy(dtype=np.float64)
    keep = attempts["ok"].to_numpy().astype(bool)
    lo, hi = window_bounds(summary)
    if lo is not None:
        keep &= start >= lo
    if hi is not None:
        keep &= start <= hi
    latency = attempts["latency_ms"].to_numpy(dtype=np.float64)[keep]
    said = (
        attempts["cache"].astype("string").fillna("").str.lower().to_numpy(dtype=object)[keep]
        if "cache" in attempts
        else np.full(latency.size, "", dtype=object)
    )
    if section.get("source") != "mixture":
        labelled = np.isin(said, ("hit", "miss"))
        latency, said = latency[labelled], said[labelled]
    positive = latency > 0
    latency, said = latency[positive], said[positive]
    if latency.size == 0:
        return None
    hit = hit_mask(section, said, latency)
    edges = edges_of(float(latency.min()), float(latency.max()))
    return CacheHistogram(
        edges, _count(latency[hit], edges), _count(latency[~hit], edges), section.get("source") == "mixture"
    )


def store_cache_data(store: RecordStore, summary: dict[str, Any]) -> CacheHistogram | None:
    """`frame_cache_data` of the store's records as written: each distinct (latency, answer)
    counted in DuckDB, then binned and split in numpy."""
    section = as_dict(summary.get("cache"))
    if section.get("hit_ratio") is None:
        return None
    window, params = window_sql(summary)
    said = "lower(coalesce(CAST(cache AS VARCHAR), ''))" if "cache" in store.filled else "''"
    labelled = "" if section.get("source") == "mixture" else f" AND {said} IN ('hit', 'miss')"
    store.rows(
        f"""CREATE OR REPLACE TEMP TABLE {COUNTED} AS SELECT latency_ms AS v, {said} = 'hit' AS said_hit,
        count(*) AS n FROM written WHERE ok <> 0 AND {window} AND latency_ms > 0{labelled} GROUP BY ALL""",
        params,
    )
    ((lo, hi),) = store.rows(f"SELECT min(v), max(v) FROM {COUNTED}")
    if lo is None:
        return None
    edges = edges_of(float(lo), float(hi))

    def binned(reader: Iterator[Any]) -> tuple[IntArray, IntArray]:
        hits = np.zeros(EDGES - 1, dtype=np.int64)
        misses = np.zeros(EDGES - 1, dtype=np.int64)
        for batch in reader:
            v, said_hit, n = (batch.column(i).to_numpy(zero_copy_only=False) for i in range(3))
            v = v.astype(np.float64)
            hit = hit_mask(section, np.where(said_hit.astype(bool), "hit", ""), v)
            n = n.astype(np.int64)
            hits += _count(v[hit], edges, n[hit])
            misses += _count(v[~hit], edges, n[~hit])
        return hits, misses

    hits, misses = store.scan(f"SELECT v, said_hit, n FROM {COUNTED}", [], binned)
    return CacheHistogram(edges, hits, misses, section.get("source") == "mixture")


__all__: Sequence[str] = ("CacheHistogram", "frame_cache_data", "hit_mask", "store_cache_data")
