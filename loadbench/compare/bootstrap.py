"""Block bootstrap over seconds: the confidence intervals of `loadbench.compare.compare`.

Consumes one analyzed run's per-request series and samples (`loadbench.compare.rundata.RunData`);
produces, for every statistic a comparison needs, its value on each resample of the run's
seconds, and the interval of a difference between two runs. Pure numpy, no I/O. Why seconds
are the unit, the interval level and the widening: ``docs/metrics.md`` (Comparing runs).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import NormalDist

import numpy as np
import numpy.typing as npt
import pandas as pd

from loadbench.analyze import stats
from loadbench.analyze.resources import gpu_count
from loadbench.analyze.stats import value_at
from loadbench.analyze.window import window_start_unix_s
from loadbench.compare.rundata import RunData, Series

CI_LEVEL = 0.995  # two-sided: percentiles 0.25 and 99.75 of the bootstrap differences
MAX_LATENCIES = 100_000  # per run, before bootstrapping
MIN_SECONDS = 5  # seconds with data needed for an interval
# Statistics a per-request series is bootstrapped for (maxima and minima: compared by value).
SERIES_STATS = ("p50", "p90", "p95", "p99", "p999", "mean")

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def window_seconds(run: RunData) -> tuple[float, int]:
    """(window length in s, whole seconds it spans)."""
    length = float(value_at(run.summary, "window.duration_s") or 0.0)
    seconds = max(math.ceil(length - 1e-9), 1)
    requests, _ = run.second_counts()
    return length, max(seconds, requests.size)  # as many as reach the last request


def second_lengths(length: float, seconds: int) -> FloatArray:
    """How much of each of the window's ``seconds`` the window covers: 1 s each, except the last,
    partial one (a 28.002 s window ends in a second of 2 ms) and any second past the window's end
    (requests that started as the load stopped), 0. Without a length: 1 s each."""
    if length <= 0:
        return np.ones(seconds)
    return np.clip(length - np.arange(seconds, dtype=np.float64), 0.0, 1.0)


def _pad(counts: IntArray, n: int) -> FloatArray:
    """Per-second ``counts`` over ``n`` seconds (``np.bincount(..., minlength=n)``)."""
    out = np.zeros(max(n, counts.size))
    out[: counts.size] = counts
    return out


class SortedSeries:
    """One per-request series (values and their seconds), sorted by value, subsampled to
    ``MAX_LATENCIES`` (seeded, uniform: every second keeps its share).

    The sample is drawn at once (the rng's draws do not depend on where the values are) but the
    values are fetched when first needed: a series in a run's store (`RunData.stored`) costs a
    scan of its records, which a comparison that never reads the series is spared."""

    def __init__(self, values: FloatArray, seconds: IntArray, rng: np.random.Generator) -> None:
        self._draw((values, seconds), rng)

    @classmethod
    def of(cls, series: Series, rng: np.random.Generator) -> SortedSeries:
        """The `SortedSeries` of a series in memory or in a run's store."""
        if isinstance(series, tuple):
            return cls(*series, rng)
        out = cls.__new__(cls)
        out._draw(series, rng)
        return out

    def _draw(self, series: Series, rng: np.random.Generator) -> None:
        size = series[0].size if isinstance(series, tuple) else series.size
        self._keep = np.sort(rng.choice(size, MAX_LATENCIES, replace=False)) if size > MAX_LATENCIES else None
        self._series: Series | None = series
        self._values: FloatArray | None = None
        self._seconds: IntArray | None = None
        self._with_data = 0

    def _fetch(self) -> tuple[FloatArray, IntArray]:
        if self._values is None or self._seconds is None:
            series, keep = self._series, self._keep
            assert series is not None
            if isinstance(series, tuple):
                values, seconds = series if keep is None else (series[0][keep], series[1][keep])
            else:
                values, seconds = series.take(keep)
            order = np.argsort(values, kind="stable")
            self._values, self._seconds = values[order], seconds[order]
            self._with_data = int(np.unique(seconds).size)
            self._series = None  # the full series is no longer needed
        return self._values, self._seconds

    @property
    def values(self) -> FloatArray:
        return self._fetch()[0]

    @property
    def seconds(self) -> IntArray:
        return self._fetch()[1]

    @property
    def seconds_with_data(self) -> int:
        self._fetch()
        return self._with_data

    def statistics(self, keys: Sequence[str], counts: IntArray) -> dict[str, FloatArray]:
        """Each key's statistic over the pooled values of every row of ``counts``."""
        out = {k: np.full(len(counts), np.nan) for k in keys}
        if self.values.size == 0:
            return out
        if "mean" in keys:
            # The pooled mean of every resample at once, from per-second sums and counts.
            width = counts.shape[1]
            sums = np.bincount(self.seconds, weights=self.values, minlength=width)
            n = np.bincount(self.seconds, minlength=width).astype(np.float64)
            pooled_n = counts @ n
            with np.errstate(invalid="ignore", divide="ignore"):
                out["mean"] = np.where(
                    pooled_n > 0, (counts @ sums) / np.where(pooled_n > 0, pooled_n, 1), np.nan
                )
        qs = [stats.PERCENTILES[k] for k in keys if k in stats.PERCENTILES]
        if not qs:
            return out
        for b, row in enumerate(counts):
            weights = row[self.seconds]
            cum = np.cumsum(weights)
            total = int(cum[-1])
            if total == 0:
                continue
            # numpy's linear percentile of the pooled (repeated) values, read off the weights:
            # element k of the pooled sorted sample is values[searchsorted(cum, k, "right")].
            h = np.asarray(qs) / 100.0 * (total - 1)
            lo = np.floor(h)
            i_lo = np.searchsorted(cum, lo, side="right")
            i_hi = np.searchsorted(cum, np.minimum(lo + 1, total - 1), side="right")
            values = self.values[i_lo] + (h - lo) * (self.values[i_hi] - self.values[i_lo])
            for key, value in zip((k for k in keys if k in stats.PERCENTILES), values, strict=True):
                out[key][b] = value
        return out


class RunBootstrap:
    """Resamples of one run's seconds and every statistic computed on them.

    One draw of seconds serves every metric of the run, so the statistics of a resample are
    consistent with each other (a resample is "the run, had these seconds happened").
    """

    def __init__(self, run: RunData, resamples: int, rng: np.random.Generator) -> None:
        self.length, self.n = window_seconds(run)
        series = dict(run.series)
        if "latency_ms" not in series and run.latency_ms is not None and run.second is not None:
            assert run.ok is not None
            series["latency_ms"] = (run.latency_ms, run.second[run.ok])
        # Latency first, then the draws, then the rest: the draws of a plain run do not
        # depend on which other series it has.
        self.sorted = {"latency_ms": SortedSeries.of(series.pop("latency_ms"), rng)}
        requests, successes = run.second_counts()
        self.ok_counts = _pad(successes, self.n)
        self.lengths = second_lengths(self.length, self.n)
        # The blocks the interval's widening counts: the seconds the window covers, not the
        # sliver that ends it (an 8.002 s window is 8 blocks, though it spans 9 seconds).
        self.blocks = max(round(float(self.lengths.sum())), 1)
        self.all_counts = _pad(requests, self.n)
        # counts[b, s]: how often second s was drawn in resample b.
        draws = rng.integers(0, self.n, size=(resamples, self.n))
        self.counts = np.zeros((resamples, self.n), dtype=np.int64)
        np.add.at(self.counts, (np.arange(resamples)[:, None], draws), 1)
        self.ones = np.ones((1, self.n), dtype=np.int64)
        self.sorted.update({name: SortedSeries.of(data, rng) for name, data in sorted(series.items())})
        self.tokens = None
        if run.tokens_per_second is not None:
            self.tokens = np.zeros(self.n)
            self.tokens[: min(self.n, run.tokens_per_second.size)] = run.tokens_per_second[: self.n]
        self.request_seconds = int((self.all_counts > 0).sum())
        self.samples = run.samples
        self.window_start = window_start_unix_s(run.meta)
        self.gpus = gpu_count(run.summary)
        self._cache: dict[tuple[str, bool], dict[str, FloatArray]] = {}

    def series_star(self, name: str, key: str, counts: IntArray) -> FloatArray | None:
        """``key`` of series ``name`` on every row of ``counts``; None without enough seconds.
        Every statistic of the series is computed at once and kept: one pass over the resamples."""
        data = self.sorted.get(name)
        if data is None or data.seconds_with_data < MIN_SECONDS:
            return None
        full = counts is self.ones
        if (name, full) not in self._cache:
            self._cache[(name, full)] = data.statistics(SERIES_STATS, counts)
        return self._cache[(name, full)][key]

    def rates(self, counts: npt.NDArray[np.int64]) -> dict[str, FloatArray]:
        """Pooled events of the drawn seconds ÷ the time those seconds cover. Dividing by the
        window's length instead would count the last, partial second (a few ms and a handful of
        requests) as a whole second of throughput: each draw of it stands in for a full second and
        the resampled rate drops by about 1/n of the run, which makes the interval span most of the
        rate on short runs. On the run itself (every second once) this is the summary's rate."""
        ok = counts @ self.ok_counts
        total = counts @ self.all_counts
        covered = counts @ self.lengths
        with np.errstate(invalid="ignore", divide="ignore"):
            error_rate = np.where(total > 0, (total - ok) / np.where(total > 0, total, 1), 0.0)
            per_s = np.where(covered > 0, 1.0 / np.where(covered > 0, covered, 1), np.nan)
        out = {"throughput_rps": ok * per_s, "request_rate_rps": total * per_s, "error_rate": error_rate}
        if self.tokens is not None:
            out["tokens.output_per_s"] = (counts @ self.tokens) * per_s
        return out

    def resource(self, column: str, counts: npt.NDArray[np.int64]) -> FloatArray | None:
        """Mean over the drawn seconds of each second's mean sample of ``column``."""
        if column not in self.samples:
            return None
        times = self.samples["unix_s"].to_numpy(dtype=np.float64)
        values = pd.to_numeric(self.samples[column], errors="coerce").to_numpy(dtype=np.float64)
        sec = np.floor(times - self.window_start)
        keep = (sec >= 0) & (sec < self.n) & ~np.isnan(values)
        if not keep.any():
            return None
        idx = sec[keep].astype(np.int64)
        sums = np.bincount(idx, weights=values[keep], minlength=self.n)
        n = np.bincount(idx, minlength=self.n)
        have = n > 0
        if have.sum() < MIN_SECONDS:
            return None
        per_second = np.where(have, sums / np.where(have, n, 1), 0.0)
        weight = counts @ have.astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(weight > 0, (counts @ per_second) / np.where(weight > 0, weight, 1), np.nan)


def delta_interval(
    base_star: FloatArray | None,
    cand_star: FloatArray | None,
    base_full: float | None,
    cand_full: float | None,
    delta: float,
    blocks: int,
) -> list[float] | None:
    """Percentile interval of the bootstrap differences, widened for few blocks (`expansion`)
    and shifted onto the summaries' delta."""
    if base_star is None or cand_star is None or base_full is None or cand_full is None:
        return None
    diff = cand_star - base_star
    diff = diff[np.isfinite(diff)]
    if diff.size < 10:
        return None
    tail = (1.0 - CI_LEVEL) / 2.0 * 100.0
    lo, hi = np.percentile(diff, [tail, 100.0 - tail])
    centre = cand_full - base_full
    k = expansion(blocks)
    lo, hi = centre + k * (lo - centre), centre + k * (hi - centre)
    shift = delta - centre
    return [round(float(lo + shift), 6), round(float(hi + shift), 6)]


def expansion(blocks: int) -> float:
    """Widening of a percentile interval from ``blocks`` resampled blocks (Hesterberg's expanded
    percentile interval): the bootstrap's spread is the plug-in one, too small by
    sqrt((n-1)/n), and a normal quantile where a Student t with n-1 degrees of freedom belongs.
    With 30 seconds that is about 10 % wider; with 600 it is negligible."""
    n = max(blocks, 2)
    z = NormalDist().inv_cdf(0.5 + CI_LEVEL / 2.0)
    nu = n - 1
    # Cornish-Fisher expansion of the t quantile (no scipy): within 0.2 % for nu >= 4.
    t = z + (z**3 + z) / (4 * nu) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * nu**2)
    return math.sqrt(n / (n - 1)) * t / z
