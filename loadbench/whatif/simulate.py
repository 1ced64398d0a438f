"""Monte-Carlo: a discrete-event simulation of a G/G/c FIFO queue driven by the measured service
times, with seeded replications and a confidence interval for every figure.

Each replication starts empty, sends ``requests`` arrivals (Poisson, or the measured
inter-arrival times resampled and scaled to the rate), drops the first ``WARMUP_SHARE`` of them
(the queue has not reached its steady state yet), and yields the client latencies of the rest:
wait + service + the request's own overhead, service and overhead drawn as a pair from the run.

One server: Lindley's recursion in closed form, ``D_n = max(D_{n-1}, A_n) + S_n``, which is
``cumsum(S)_n + max_{k<=n}(A_k - cumsum(S)_{k-1})``: numpy's cumulative max, no Python loop.
Several servers: Kiefer–Wolfowitz with a heap of the servers' free times, the one loop that has
no vector form; at about 0.4 µs a request (docs/benchmarks.md) it stays well under 5 s for a
million, faster than ciw's object-per-customer simulator (measured in benchmarks/whatif_speed.py).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from loadbench.whatif.queueing import FloatArray, Queue

WARMUP_SHARE = 0.1
DEFAULT_REQUESTS = 1_000_000  # simulated in all, over the replications
DEFAULT_REPLICATIONS = 10
# Two-sided 95 % Student t quantiles by degrees of freedom; beyond 30, the normal's.
_T95 = {
    1: 12.706,
    2: 4.303,
    3: 3.182,
    4: 2.776,
    5: 2.571,
    6: 2.447,
    7: 2.365,
    8: 2.306,
    9: 2.262,
    10: 2.228,
    11: 2.201,
    12: 2.179,
    13: 2.160,
    14: 2.145,
    15: 2.131,
    19: 2.093,
    24: 2.064,
    29: 2.045,
}


@dataclass(frozen=True)
class Simulated:
    """Point estimates (the mean over replications) and 95 % confidence intervals, ms."""

    quantiles: dict[float, float]
    intervals: dict[float, tuple[float, float]]
    mean: float
    mean_interval: tuple[float, float]
    wait_mean: float
    wait_probability: float
    requests: int  # simulated and kept, over all replications
    replications: int


def t95(dof: int) -> float:
    """Student's t for a two-sided 95 % interval with ``dof`` degrees of freedom."""
    if dof >= 30:
        return 1.96
    return _T95.get(dof) or _T95[max(k for k in _T95 if k <= dof)]


def departures_one_server(arrivals: FloatArray, service: FloatArray) -> FloatArray:
    """FIFO single-server departure times, vectorised (Lindley's recursion unrolled)."""
    cum = np.cumsum(service)
    before = cum - service  # work of the earlier requests
    return np.asarray(cum + np.maximum.accumulate(arrivals - before), dtype=np.float64)


def starts_many_servers(arrivals: FloatArray, service: FloatArray, servers: int) -> FloatArray:
    """FIFO c-server start-of-service times: each request takes the server free first."""
    free = [0.0] * servers
    starts = np.empty_like(arrivals)
    replace = heapq.heapreplace
    for i, (a, s) in enumerate(zip(arrivals.tolist(), service.tolist(), strict=True)):
        first = free[0]
        start = a if a > first else first
        replace(free, start + s)
        starts[i] = start
    return starts


def starts_of(arrivals: FloatArray, service: FloatArray, servers: int) -> FloatArray:
    """FIFO start-of-service times of requests arriving in order: the vector form for one server,
    the heap for several."""
    if servers == 1:
        return departures_one_server(arrivals, service) - service
    return starts_many_servers(arrivals, service, servers)


def interarrivals(
    rng: np.random.Generator, n: int, rate_rps: float, measured_gaps_ms: FloatArray | None
) -> FloatArray:
    """``n`` inter-arrival gaps (ms) at ``rate_rps``: Poisson, or the measured gaps resampled and
    scaled so their mean matches the rate (their burstiness kept)."""
    mean_gap = 1000.0 / rate_rps
    if measured_gaps_ms is None:
        return rng.exponential(mean_gap, n)
    drawn = rng.choice(measured_gaps_ms, n, replace=True)
    return np.asarray(drawn * (mean_gap / float(np.mean(measured_gaps_ms))), dtype=np.float64)


def one_replication(
    queue: Queue, n: int, rng: np.random.Generator, measured_gaps_ms: FloatArray | None = None
) -> tuple[FloatArray, FloatArray]:
    """The client latencies and waits (ms) of one replication's requests after its warm-up."""
    arrivals = np.cumsum(interarrivals(rng, n, queue.rate_rps, measured_gaps_ms))
    pick = rng.integers(0, queue.service_ms.size, n)
    service = queue.service_ms[pick]
    wait = starts_of(arrivals, service, queue.servers) - arrivals
    latency = wait + service + queue.overhead_ms[pick]
    keep = int(n * WARMUP_SHARE)
    return latency[keep:], wait[keep:]


def _interval(values: Sequence[float]) -> tuple[float, float, float]:
    arr = np.asarray(values, dtype=np.float64)
    mean = float(arr.mean())
    if arr.size < 2:
        return mean, mean, mean
    half = t95(arr.size - 1) * float(arr.std(ddof=1)) / math.sqrt(arr.size)
    return mean, mean - half, mean + half


def simulate(
    queue: Queue,
    qs: Sequence[float],
    requests: int = DEFAULT_REQUESTS,
    replications: int = DEFAULT_REPLICATIONS,
    seed: int = 0,
    measured_gaps_ms: FloatArray | None = None,
) -> Simulated:
    """Simulate ``requests`` arrivals in ``replications`` independent, seeded replications."""
    queue.check_stable()
    per = max(requests // replications, 100)
    rngs = [np.random.default_rng([seed, r]) for r in range(replications)]
    quantiles: dict[float, list[float]] = {q: [] for q in qs}
    means: list[float] = []
    waits: list[float] = []
    waited: list[float] = []
    kept = 0
    for rng in rngs:
        latency, wait = one_replication(queue, per, rng, measured_gaps_ms)
        kept += latency.size
        for q, v in zip(qs, np.quantile(latency, list(qs)), strict=True):
            quantiles[q].append(float(v))
        means.append(float(latency.mean()))
        waits.append(float(wait.mean()))
        waited.append(float(np.mean(wait > 1e-9)))
    points, intervals = {}, {}
    for q, values in quantiles.items():
        mid, lo, hi = _interval(values)
        points[q], intervals[q] = mid, (lo, hi)
    mean, mean_lo, mean_hi = _interval(means)
    return Simulated(
        points,
        intervals,
        mean,
        (mean_lo, mean_hi),
        float(np.mean(waits)),
        float(np.mean(waited)),
        kept,
        replications,
    )


def latencies(queue: Queue, n: int, seed: int = 0) -> npt.NDArray[np.float64]:
    """One replication's client latencies: for plots and tests that want the raw values."""
    return one_replication(queue, n, np.random.default_rng(seed))[0]
