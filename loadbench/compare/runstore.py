"""A long run as the comparison reads it without its records in memory: what
`loadbench.compare.rundata.load_run` keeps of a run `loadbench.analyze.bounded.open_bounded` covers.

`StoredRun` holds the run's `RecordStore` and what the bootstrap needs of every request, as
arrays of one value per second: the measured window's requests and successes counted per second,
the output tokens of its LLM requests summed per second, and its labeled requests counted by
(second, expected, predicted, ok). Each per-request series (latency, service time, TTFT, ITL,
TPOT, end-to-end, RTF) stays in the store as a `StoredSeries`, an SQL value over the window's rows
as the analyzer selects them: `StoredSeries.take` fetches the values at given positions (in file
order: the order of the in-memory path's arrays), so the bootstrap's seeded subsample
(`loadbench.compare.bootstrap.SortedSeries`) picks the same requests from either path;
`StoredSeries.percentiles` ranks them for the overlay plots (numpy's percentiles, bit for bit,
`loadbench.analyze.stats.percentile_points`). The `StoredRun` is itself the latency's series.

The rows are the store's ``requests`` view, the records as the analyzer counts them: an open
loop's latency and window from each request's due time, its service time (``service_ms``) from
the send, as `loadbench.record.records.from_due_time` gives the in-memory path.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from loadbench.analyze import bounded
from loadbench.analyze.bounded_llm import GAPS, LLM, OUTPUT, STREAMED, TPOT, TPOT_ROWS, VALID_GAP
from loadbench.analyze.bounded_payload import CARRIED, RTF
from loadbench.analyze.scope import OK, SOURCE
from loadbench.analyze.store import RecordStore

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

# `load_run`'s own window rule (a request belongs where it started, or was due: at or after the
# window start), not the analyzer's half-microsecond tolerance: both paths must pick the same
# requests. Every series' query has this one parameter, the window start.
IN_WINDOW = "start_unix_s >= ?"
SUCCESSES = f"{IN_WINDOW} AND {OK}"
# The record columns of a run this path reads: every column the bounded analyzer covers (labels
# as their counts, which `loadbench variants`' quality reads: `RunData.label_counts`).
COLUMNS = bounded.COLUMNS
# What `np.floor(start - window_start)` gives: the request's second since the window start.
SECOND = "CAST(floor(start_unix_s - ?) AS BIGINT)"
# Each valid inter-token gap of the window's successful streams, with its request's start, in
# file order (request by request, each request's gaps in their order: `llm_metrics.parse_itl`).
GAP_ROWS = f"(SELECT unnest({GAPS}) AS gap, start_unix_s FROM {SOURCE} WHERE {IN_WINDOW} AND {STREAMED})"
VALID = VALID_GAP.format("gap")
# The series of an LLM run (`rundata._series`' selections) by summary key: value and which of
# the window's rows (`SOURCE`) it is taken from.
LLM_SERIES = {
    "ttft_ms": ("ttft_ms", STREAMED),
    "tpot_ms": (TPOT, f"{OK} AND {TPOT_ROWS} AND isfinite({TPOT})"),
    "e2e_ms": ("latency_ms", f"{OK} AND {LLM}"),
}
# `quality.rtf_values` and the share of them below 1 (its mean is ``rtf.realtime_fraction``).
RTF_SERIES = {
    "rtf": (RTF, f"{OK} AND {CARRIED}"),
    "rtf_realtime": (f"CASE WHEN {RTF} < 1.0 THEN 1.0 ELSE 0.0 END", f"{OK} AND {CARRIED}"),
}


class _Lease:
    """A run's store held open: closed once no series refers to it any longer (or at exit: the
    store's temporary directory), however long a series outlives its run."""

    def __init__(self, store: RecordStore) -> None:
        self.close = weakref.finalize(self, store.close)


@dataclass(eq=False, kw_only=True)  # compared by identity
class StoredSeries:
    """One per-request series of a run's measured window in its store: ``value`` over the rows of
    ``rows`` (a view, or a subquery) that match ``where``; ``size`` of them. The window start is
    the one parameter of ``rows`` and ``where`` together."""

    store: RecordStore
    window_start: float  # unix s
    size: int
    value: str = "latency_ms"
    rows: str = SOURCE
    where: str = SUCCESSES
    _lease: _Lease | None = field(default=None, repr=False)

    def take(self, positions: IntArray | None) -> tuple[FloatArray, IntArray]:
        """(value, second since the window start) of the series at ``positions`` (ascending,
        0-based in file order), or all of them when ``positions`` is None."""
        wanted = np.arange(self.size) if positions is None else positions
        if wanted.size == 0:
            return np.zeros(0), np.zeros(0, dtype=np.int64)
        # A scan keeps the file's order: positions among these rows are the frame path's.
        sql = f"SELECT {self.value}, start_unix_s FROM {self.rows} WHERE {self.where}"
        value, start = (v.astype(np.float64) for v in self.store.pick(sql, [self.window_start], wanted))
        return value, np.floor(start - self.window_start).astype(np.int64)

    def percentiles(self, percents: npt.ArrayLike) -> FloatArray:
        """``np.percentile`` of the series at ``percents``: one sorted pass in the store, none for
        positions it ranked already (`RecordStore.values_at`)."""
        if self.size == 0:
            return np.full(np.asarray(percents).shape, np.nan)
        return self.store.percentiles(
            self.size, percents, self.value, self.where, [self.window_start], source=self.rows
        )


@dataclass(eq=False, kw_only=True)  # one run, one store: compared by identity
class StoredRun(StoredSeries):
    """The measured window of a run in its store (`StoredRun.open`), and the series of its
    successes' latencies; the store closes with it."""

    requests: IntArray  # per second since the window start: the window's requests...
    successes: IntArray  # ... and its successful ones (as long as the last second with a request)
    positive: tuple[float, float] | None  # the successes' smallest and largest positive latency
    # The other series, by summary key, as `rundata._series` names them: latency_ms is this one,
    # and so is service_time_ms where it is not here (a closed loop: one and the same).
    series: dict[str, StoredSeries] = field(default_factory=dict)
    # The successful LLM requests' output tokens per second (None: no LLM request in the window).
    tokens: FloatArray | None = None
    # The window's requests by second, expected and predicted label, ok: ``count`` each (None:
    # no labels in the records).
    labels: pd.DataFrame | None = None

    @classmethod
    def open(cls, store: RecordStore, window_start: float) -> StoredRun:
        """Count the window's requests and every series per second (one grouped scan; the labels
        in another); the store is the run's now."""
        frame, llm, media = _per_second_counts(store, window_start)
        size = int(frame["s"].max()) + 1 if len(frame) else 0
        seconds = frame["s"].to_numpy(dtype=np.int64)

        def per_second(name: str, dtype: type) -> npt.NDArray[Any]:
            out: npt.NDArray[Any] = np.zeros(size, dtype=dtype)
            out[seconds] = frame[name].to_numpy(dtype=dtype)
            return out

        def total(name: str) -> int:
            return int(frame[name].sum())

        successes = per_second("ok", np.int64)
        lows, highs = frame["low"].dropna(), frame["high"].dropna()
        lease = _Lease(store)
        run = cls(
            _lease=lease,
            store=store,
            window_start=window_start,
            size=int(successes.sum()),
            requests=per_second("n", np.int64),
            successes=successes,
            positive=(float(lows.min()), float(highs.max())) if len(lows) else None,
        )

        def stored(key: str, value: str, where: str, rows: str = SOURCE) -> StoredSeries:
            return StoredSeries(
                store=store,
                window_start=window_start,
                size=total(key),
                value=value,
                rows=rows,
                where=where,
                _lease=lease,
            )

        if "intended_unix_s" in store.filled:
            # An open loop: its service time (from the send) is not its latency (from the due time).
            service = StoredSeries(
                store=store, window_start=window_start, size=run.size, value="service_ms", _lease=lease
            )
            run.series["service_time_ms"] = service
        if llm and total("llm"):
            # As the in-memory path: TTFT, TPOT and E2E of an LLM run; ITL where some request streamed.
            for key, (value, where) in LLM_SERIES.items():
                run.series[key] = stored(key, value, f"{IN_WINDOW} AND {where}")
            if total("ttft_ms"):
                run.series["itl_ms"] = stored("itl_ms", "gap", VALID, GAP_ROWS)
            run.tokens = per_second("tokens", np.float64)
        if media and total("rtf"):
            for key, (value, where) in RTF_SERIES.items():
                run.series[key] = stored(key, value, f"{IN_WINDOW} AND {where}")
        if "expected" in store.filled:
            run.labels = _labels(store, window_start)
        return run

    def close(self) -> None:
        if self._lease is not None:
            self._lease.close()


def _labels(store: RecordStore, window_start: float) -> pd.DataFrame | None:
    """The window's requests counted by (second, expected, predicted, ok), a missing label as
    empty text (as the in-memory consumer reads one), sorted; None when none is labeled."""
    predicted = "predicted" if "predicted" in store.filled else "''"
    frame = store.frame(
        f"""SELECT {SECOND} AS second, coalesce(expected, '') AS expected,
        coalesce({predicted}, '') AS predicted, {OK} AS ok, count(*) AS count
        FROM {SOURCE} WHERE {IN_WINDOW} GROUP BY ALL ORDER BY ALL""",
        [window_start, window_start],
    )
    return frame.astype(
        {"second": np.int64, "expected": str, "predicted": str, "ok": bool, "count": np.int64}
    )


def _per_second_counts(store: RecordStore, window_start: float) -> tuple[pd.DataFrame, bool, bool]:
    """Per second of the window (``s``): its requests, successes, smallest and largest positive
    latency, and each series' count (one grouped scan); whether the run has LLM data, and media."""
    counts = {
        "n": "count(*)",
        "ok": f"count(*) FILTER ({OK})",
        "low": f"min(latency_ms) FILTER ({OK} AND latency_ms > 0)",
        "high": f"max(latency_ms) FILTER ({OK} AND latency_ms > 0)",
    }
    llm = bool(store.filled & {"ttft_ms", "output_tokens"})
    if llm:
        counts["llm"] = f"count(*) FILTER ({LLM})"
        counts.update({key: f"count(*) FILTER ({where})" for key, (_, where) in LLM_SERIES.items()})
        # np.nan_to_num of an unknown count: it adds nothing (exact: counts are whole numbers).
        tokens = f"CASE WHEN {OUTPUT} THEN output_tokens ELSE 0 END"
        counts["tokens"] = f"coalesce(fsum({tokens}) FILTER ({OK} AND {LLM}), 0)"
        # No itl_ms text in the whole file: streams without gaps (`llm_metrics.parse_itl`).
        valid = f"list_filter({GAPS}, lambda gap: {VALID})" if "itl_ms" in store.filled else "[]"
        counts["itl_ms"] = f"coalesce(sum(len({valid})) FILTER ({STREAMED}), 0)"
    media = "media_s" in store.filled
    if media:
        counts.update({key: f"count(*) FILTER ({where})" for key, (_, where) in RTF_SERIES.items()})
    columns = ", ".join(f"{expr} AS {name}" for name, expr in counts.items())
    frame = store.frame(
        f"SELECT {SECOND} AS s, {columns} FROM {SOURCE} WHERE {IN_WINDOW} GROUP BY s ORDER BY s",
        [window_start, window_start],
    )
    return frame, llm, media
