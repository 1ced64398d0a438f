"""The simulation against the closed forms it must agree with, and against a plain loop."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loadbench.whatif.queueing import Queue, UnstableError, erlang_c_mmc, pollaczek_khinchine_wait_ms
from loadbench.whatif.simulate import departures_one_server, simulate, starts_many_servers, t95

QS = (0.5, 0.9, 0.99, 0.999)


def naive_starts(arrivals: list[float], service: list[float], servers: int) -> list[float]:
    free = [0.0] * servers
    starts = []
    for a, s in zip(arrivals, service, strict=True):
        k = min(range(servers), key=lambda i: free[i])
        start = max(a, free[k])
        free[k] = start + s
        starts.append(start)
    return starts


@given(
    st.lists(st.tuples(st.floats(0, 50), st.floats(0, 30)), min_size=1, max_size=60),
    st.integers(1, 4),
)
@settings(max_examples=150, deadline=None)
def test_vector_and_heap_forms_equal_a_plain_fifo_loop(
    pairs: list[tuple[float, float]], servers: int
) -> None:
    arrivals = np.cumsum([g for g, _ in pairs])
    service = np.array([s for _, s in pairs])
    expected = naive_starts(arrivals.tolist(), service.tolist(), servers)
    assert starts_many_servers(arrivals, service, servers) == pytest.approx(expected)
    if servers == 1:
        assert departures_one_server(arrivals, service) - service == pytest.approx(expected, abs=1e-9)


def test_mm1_mean_and_quantiles_match_theory() -> None:
    service = np.random.default_rng(3).exponential(10.0, 200_000)
    queue = Queue(70.0, 1, service, np.zeros_like(service))
    sim = simulate(queue, QS, requests=400_000, replications=8, seed=1)
    exact = erlang_c_mmc(queue, QS)
    lo, hi = sim.mean_interval
    assert lo <= exact.mean * 1.03 and hi >= exact.mean * 0.97
    for q in (0.5, 0.9, 0.99):
        assert sim.quantiles[q] == pytest.approx(exact.quantiles[q], rel=0.05)
    assert sim.wait_probability == pytest.approx(0.7, abs=0.02)


def test_erlang_c_mean_wait_within_ten_percent_of_the_simulation() -> None:
    # The bar: Erlang C's mean wait within 10 % of the simulated one, exponential service.
    service = np.random.default_rng(4).exponential(10.0, 200_000)
    for servers, util in ((2, 0.5), (2, 0.8), (4, 0.7)):
        queue = Queue(util * servers * 100.0, servers, service, np.zeros_like(service))
        sim = simulate(queue, QS, requests=400_000, replications=8, seed=2)
        assert sim.wait_mean == pytest.approx(erlang_c_mmc(queue, QS).wait_mean, rel=0.10)


def test_md1_wait_is_pollaczek_khinchine() -> None:
    service = np.full(10, 10.0)
    queue = Queue(60.0, 1, service, np.zeros_like(service))
    sim = simulate(queue, QS, requests=300_000, replications=6, seed=5)
    assert sim.wait_mean == pytest.approx(pollaczek_khinchine_wait_ms(60.0, service), rel=0.05)


def test_seeded_runs_repeat_and_intervals_shrink_with_size() -> None:
    service = np.random.default_rng(6).lognormal(2.0, 0.5, 10_000)
    queue = Queue(50.0, 1, service, np.full_like(service, 0.5))
    a = simulate(queue, QS, requests=100_000, replications=5, seed=9)
    assert a == simulate(queue, QS, requests=100_000, replications=5, seed=9)
    big = simulate(queue, QS, requests=800_000, replications=5, seed=9)
    width = lambda s: s.intervals[0.99][1] - s.intervals[0.99][0]  # noqa: E731
    assert width(big) < width(a)
    assert all(lo <= a.quantiles[q] <= hi for q, (lo, hi) in a.intervals.items())


def test_measured_gaps_keep_their_burstiness() -> None:
    # Bursty arrivals (gaps of 0 and 2x the mean) wait longer than Poisson ones at the same rate.
    service = np.full(100, 5.0)
    queue = Queue(100.0, 1, service, np.zeros_like(service))
    bursty = np.array([0.0, 0.0, 0.0, 40.0])
    poisson = simulate(queue, QS, requests=200_000, replications=4, seed=1)
    burst = simulate(queue, QS, requests=200_000, replications=4, seed=1, measured_gaps_ms=bursty)
    assert burst.wait_mean > poisson.wait_mean


def test_unstable_and_t_quantiles() -> None:
    service = np.full(10, 10.0)
    with pytest.raises(UnstableError):
        simulate(Queue(200.0, 2, service, np.zeros_like(service)), QS)
    assert t95(9) == pytest.approx(2.262)
    assert t95(16) == pytest.approx(2.131)  # the nearest tabulated below
    assert t95(100) == 1.96
    assert math.isclose(t95(1), 12.706)
