"""Prometheus histograms kept as plain counts: log-spaced bucket bounds (`BOUNDS`), a `Histogram`
that counts a value with one bisect (or many at once with numpy), and `histogram_quantile`, the
quantile Prometheus computes from such counts. Used by the live metrics (`loadbench.drive.livemetrics`).
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from prometheus_client.utils import floatToGoString

# 48 bounds a decade: neighbours differ by 10^(1/48) = 4.9 %, and linear interpolation inside a
# bucket (histogram_quantile) is never further off than that from a value in it.
PER_DECADE = 48
LOWEST_S, HIGHEST_S = 1e-4, 60.0


def log_bounds(
    lowest: float = LOWEST_S, highest: float = HIGHEST_S, per_decade: int = PER_DECADE
) -> list[float]:
    """Log-spaced bucket bounds from ``lowest`` up to the first one at or above ``highest``,
    at 5 significant digits (readable ``le`` labels; the ratio moves by under 0.01 %)."""
    bounds: list[float] = []
    k = round(math.log10(lowest) * per_decade)
    while not bounds or bounds[-1] < highest:
        bounds.append(float(f"{10 ** (k / per_decade):.5g}"))
        k += 1
    return bounds


BOUNDS = log_bounds()
LE_LABELS = [floatToGoString(b) for b in BOUNDS] + ["+Inf"]
BOUNDS_ARRAY = np.array(BOUNDS)


def histogram_quantile(q: float, bounds: Sequence[float], cumulative: Sequence[float]) -> float:
    """Prometheus's ``histogram_quantile``: the rank's bucket, then linear interpolation in it
    (from 0 for the first bucket; the highest finite bound for a rank in ``+Inf``).
    ``cumulative`` has one count more than ``bounds``: the ``+Inf`` bucket's."""
    total = cumulative[-1]
    if total <= 0:
        return math.nan
    rank = q * total
    i = bisect_left(list(cumulative), rank)
    if i >= len(bounds):
        return bounds[-1]
    lower = bounds[i - 1] if i > 0 else 0.0
    below = cumulative[i - 1] if i > 0 else 0.0
    inside = cumulative[i] - below
    return lower + (bounds[i] - lower) * ((rank - below) / inside if inside else 0.0)


class Histogram:
    """Counts per bucket of `BOUNDS` (the last one is ``+Inf``) and the sum.

    Every value observed is a whole number of microseconds (a latency the line writes at 3
    decimals of a millisecond, a time at 6 of a second), so the sum is kept as an integer
    count of them: exact, whatever order and batches the values come in.
    """

    __slots__ = ("counts", "total_us")

    def __init__(self) -> None:
        self.counts = [0] * (len(BOUNDS) + 1)
        self.total_us = 0

    @property
    def total(self) -> float:
        return self.total_us / 1e6

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(BOUNDS, seconds)] += 1  # le: the first bound >= the value
        self.total_us += round(seconds * 1e6)

    def observe_ms(self, rounded_ms: Sequence[float] | npt.NDArray[np.float64]) -> None:
        """Many finite latencies at once, each already rounded to 3 decimals as the line writes it."""
        if len(rounded_ms) < 16:  # numpy's set-up costs more than a few bisects
            for value in rounded_ms:
                self.observe(float(value) / 1000.0)
            return
        ms = np.asarray(rounded_ms, dtype=np.float64)
        binned = np.bincount(
            np.searchsorted(BOUNDS_ARRAY, ms / 1000.0, side="left"), minlength=len(self.counts)
        )
        for i in np.flatnonzero(binned).tolist():
            self.counts[i] += int(binned[i])
        self.total_us += int(np.rint(ms * 1000.0).astype(np.int64).sum())

    def cumulative(self) -> list[tuple[str, float]]:
        running, out = 0, []
        for le, count in zip(LE_LABELS, self.counts, strict=True):
            running += count
            out.append((le, float(running)))
        return out
