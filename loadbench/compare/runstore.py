"""A long run as the comparison reads it without its records in memory: what
`loadbench.compare.rundata.load_run` keeps of a run `loadbench.analyze.bounded.open_bounded` covers.

`StoredRun` holds the run's `RecordStore` and what the bootstrap needs of every request, as
arrays of one value per second: the measured window's requests and successes counted per second.
The latencies of the window's successes stay in the store: `StoredRun.take` fetches those at given
positions (among the successes, in file order: the order of the in-memory path's arrays), so the
bootstrap's seeded subsample (`loadbench.compare.bootstrap.SortedSeries`) picks the same requests
from either path; `StoredRun.percentiles` ranks them for the overlay plots (numpy's percentiles,
bit for bit, `loadbench.analyze.stats.percentile_points`). `loadbench.compare.rundata.load_run`
takes only closed-loop runs this way, so the latency is also the service time.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from loadbench.analyze.store import RecordStore

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

# `load_run`'s own window rule (a request belongs where it started: at or after the window
# start), not the analyzer's half-microsecond tolerance: both paths must pick the same requests.
IN_WINDOW = "start_unix_s >= ?"
SUCCESSES = f"{IN_WINDOW} AND ok <> 0"


@dataclass(eq=False)  # one run, one store: compared by identity
class StoredRun:
    """The measured window of a run in its store (`StoredRun.open`); the store closes with it."""

    store: RecordStore
    window_start: float  # unix s
    requests: IntArray  # per second since the window start: the window's requests...
    successes: IntArray  # ... and its successful ones (as long as the last second with a request)
    positive: tuple[float, float] | None  # the successes' smallest and largest positive latency
    _closer: Any = field(default=None, repr=False)

    @classmethod
    def open(cls, store: RecordStore, window_start: float) -> StoredRun:
        """Count the window's requests per second (one grouped scan); the store is the run's now."""
        second = "CAST(floor(start_unix_s - ?) AS BIGINT)"  # what `np.floor(start - window_start)` gives
        rows = store.rows(
            f"""SELECT {second} AS s, count(*), count(*) FILTER (ok <> 0),
            min(latency_ms) FILTER (ok <> 0 AND latency_ms > 0),
            max(latency_ms) FILTER (ok <> 0 AND latency_ms > 0)
            FROM records WHERE {IN_WINDOW} GROUP BY s""",
            [window_start, window_start],
        )
        size = max((int(r[0]) for r in rows), default=-1) + 1
        requests = np.zeros(size, dtype=np.int64)
        successes = np.zeros(size, dtype=np.int64)
        for s, n, ok, _, _ in rows:
            requests[s], successes[s] = n, ok
        lows = [float(r[3]) for r in rows if r[3] is not None]
        highs = [float(r[4]) for r in rows if r[4] is not None]
        positive = (min(lows), max(highs)) if lows else None
        run = cls(store, window_start, requests, successes, positive)
        # Closed when the run is no longer referenced, or at exit: the store's temporary directory.
        run._closer = weakref.finalize(run, store.close)
        return run

    def close(self) -> None:
        if self._closer is not None:
            self._closer()

    @property
    def size(self) -> int:
        """How many successful requests the window holds (the series' length)."""
        return int(self.successes.sum())

    def take(self, positions: IntArray | None) -> tuple[FloatArray, IntArray]:
        """(latency, second since the window start) of the window's successes at ``positions``
        (ascending, 0-based in file order), or of all of them when ``positions`` is None."""
        wanted = np.arange(self.size) if positions is None else positions
        if wanted.size == 0:
            return np.zeros(0), np.zeros(0, dtype=np.int64)
        # A scan keeps the file's order: positions among these rows are the frame path's.
        sql = f"SELECT latency_ms, start_unix_s FROM records WHERE {SUCCESSES}"
        latency, start = (v.astype(np.float64) for v in self.store.pick(sql, [self.window_start], wanted))
        return latency, np.floor(start - self.window_start).astype(np.int64)

    def percentiles(self, percents: npt.ArrayLike) -> FloatArray:
        """``np.percentile`` of the window's successes' latencies at ``percents``: one sorted pass
        in the store, none for positions it ranked already (`RecordStore.values_at`)."""
        if self.size == 0:
            return np.full(np.asarray(percents).shape, np.nan)
        return self.store.percentiles(self.size, percents, "latency_ms", SUCCESSES, [self.window_start])
