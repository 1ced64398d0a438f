"""Tests of loadbench.compare.bootstrap: the pure pieces of the block bootstrap behind `loadbench compare`
(its verdicts on whole runs are tested in test_compare.py)."""

from __future__ import annotations

import numpy as np
import pytest

from loadbench.analyze import stats
from loadbench.compare import bootstrap


def test_pooled_statistics_equal_numpy_on_the_pooled_values() -> None:
    rng = np.random.default_rng(3)
    values = rng.lognormal(3.0, 0.5, 997)
    seconds = rng.integers(0, 10, values.size)
    series = bootstrap.SortedSeries(values, seconds, rng)
    # Row 0: every second once (the run itself); row 1: second 2 three times, second 7 never.
    counts = np.ones((2, 10), dtype=np.int64)
    counts[1, 2], counts[1, 7] = 3, 0
    out = series.statistics(bootstrap.SERIES_STATS, counts)
    pooled = np.concatenate([values[seconds != 7], values[seconds == 2], values[seconds == 2]])
    for key in bootstrap.SERIES_STATS:
        if key == "mean":
            expected = [values.mean(), pooled.mean()]
        else:
            q = stats.PERCENTILES[key]
            expected = [np.percentile(values, q), np.percentile(pooled, q)]
        assert out[key] == pytest.approx(expected, rel=1e-12), key


def test_a_long_series_is_subsampled_and_an_empty_one_gives_nan() -> None:
    rng = np.random.default_rng(0)
    big = bootstrap.SortedSeries(
        np.arange(bootstrap.MAX_LATENCIES + 500.0),
        np.zeros(bootstrap.MAX_LATENCIES + 500, dtype=np.int64),
        rng,
    )
    assert big.values.size == bootstrap.MAX_LATENCIES and (np.diff(big.values) >= 0).all()
    empty = bootstrap.SortedSeries(np.empty(0), np.empty(0, dtype=np.int64), rng)
    assert np.isnan(empty.statistics(["p50"], np.ones((1, 3), dtype=np.int64))["p50"]).all()


def test_expansion_widens_for_few_seconds_only() -> None:
    assert bootstrap.expansion(30) == pytest.approx(1.10, abs=0.005)  # about 10 % with 30 seconds
    assert 1.0 < bootstrap.expansion(600) < 1.005
    assert bootstrap.expansion(5) > bootstrap.expansion(10) > bootstrap.expansion(30)


def test_delta_interval_is_centred_on_the_summaries_delta() -> None:
    base = np.full(400, 10.0) + np.linspace(-1, 1, 400)
    cand = np.full(400, 12.0) + np.linspace(-1, 1, 400)[::-1]
    ci = bootstrap.delta_interval(base, cand, 10.0, 12.0, 2.5, blocks=600)
    assert ci is not None and ci[0] < 2.5 < ci[1]
    # Shifted onto the summaries' delta (2.5, not the resamples' 2.0), and about as wide as the spread.
    assert (ci[0] + ci[1]) / 2 == pytest.approx(2.5, abs=0.01) and 3.5 < ci[1] - ci[0] < 4.1
    assert bootstrap.delta_interval(base[:9], cand[:9], 10.0, 12.0, 2.0, blocks=30) is None
    assert bootstrap.delta_interval(None, cand, 10.0, 12.0, 2.0, blocks=30) is None
