"""Queueing theory's closed forms for a FIFO queue of ``servers`` identical servers fed at
``rate``: Erlang C (M/M/c), and Kingman / Allen–Cunneen (G/G/c) with Pollaczek–Khinchine's
mean as its exact M/G/1 case. Pure numpy; no I/O. Definitions: ``docs/whatif.md``.

Times are milliseconds and rates requests per millisecond inside this module (`Queue` converts
from requests/s), so a service time and a wait are in the same unit as the recorded latencies.

Each method returns the client's latency distribution, not only the time in the server: the
sojourn (wait + service) plus the request's own overhead outside the queue (client, transport),
drawn paired with its service time from the measured run (`loadbench.whatif.fit`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
# Bisection steps for a quantile: the bracket halves each time, 1e-12 of its width after 40.
_BISECT_STEPS = 48
# The analytic CDFs average over at most this many measured requests: the quantiles then move
# by well under 0.1 % (a subsample's own error), and a prediction takes milliseconds.
_CDF_POINTS = 20_000


class UnstableError(ValueError):
    """The offered load is at or above what the servers can serve: no steady state."""


@dataclass(frozen=True)
class Queue:
    """One what-if question: ``servers`` FIFO servers, Poisson-or-other arrivals at ``rate_rps``."""

    rate_rps: float
    servers: int
    service_ms: FloatArray  # the measured service times (no queueing in them)
    overhead_ms: FloatArray  # paired with service_ms: the rest of each request's latency
    arrival_scv: float = 1.0  # squared coefficient of variation of inter-arrival times (Poisson 1)

    @property
    def mean_service_ms(self) -> float:
        return float(np.mean(self.service_ms))

    @property
    def lam(self) -> float:
        """Arrivals per millisecond."""
        return self.rate_rps / 1000.0

    @property
    def offered(self) -> float:
        """Offered load in Erlangs: the servers busy on average (rate x mean service time)."""
        return self.lam * self.mean_service_ms

    @property
    def utilisation(self) -> float:
        return self.offered / self.servers

    @property
    def service_scv(self) -> float:
        mean = self.mean_service_ms
        return float(np.var(self.service_ms) / (mean * mean)) if mean > 0 else 0.0

    def check_stable(self) -> None:
        if self.utilisation >= 1.0:
            raise UnstableError(
                f"{self.rate_rps:g} req/s on {self.servers} server(s) is unstable: utilisation "
                f"{self.utilisation:.2f} >= 1 (each serves {1000.0 / self.mean_service_ms:.1f} req/s), "
                "the queue grows without bound and has no steady state"
            )


@dataclass(frozen=True)
class Distribution:
    """A predicted latency distribution: the quantiles asked for and the mean, ms."""

    quantiles: dict[float, float]
    mean: float
    wait_mean: float  # mean time in the queue, ms
    wait_probability: float  # share of requests that wait at all


def erlang_c(servers: int, offered: float) -> float:
    """Erlang C: the probability that an arrival waits, M/M/c with ``offered`` Erlangs.

    Through Erlang B's recursion, which stays finite for any number of servers (the textbook
    sum of a^k/k! overflows past ~170)."""
    if offered >= servers:
        return 1.0
    b = 1.0
    for k in range(1, servers + 1):
        b = offered * b / (k + offered * b)
    rho = offered / servers
    return b / (1.0 - rho * (1.0 - b))


def _quantiles(cdf: Callable[[FloatArray], FloatArray], qs: Sequence[float], hi: float) -> dict[float, float]:
    """Invert a CDF by bisection, all quantiles at once (the CDF takes an array of times)."""
    target = np.asarray(qs, dtype=np.float64)
    lo_t = np.zeros_like(target)
    hi_t = np.full_like(target, hi)
    while np.any(cdf(hi_t) < target):  # widen until the bracket holds every quantile
        hi_t = hi_t * 2.0
    for _ in range(_BISECT_STEPS):
        mid = (lo_t + hi_t) / 2.0
        below = cdf(mid) < target
        lo_t = np.where(below, mid, lo_t)
        hi_t = np.where(below, hi_t, mid)
    return {q: float(v) for q, v in zip(qs, hi_t, strict=True)}


def _subsample(values: FloatArray, seed: int = 0) -> FloatArray:
    if values.size <= _CDF_POINTS:
        return values
    return np.random.default_rng(seed).choice(values, _CDF_POINTS, replace=False)


def _exp_wait_cdf(
    base: FloatArray, p_wait: float, wait_mean_if_waiting: float
) -> Callable[[FloatArray], FloatArray]:
    """CDF of ``W + B``: W is 0 with probability 1 - p_wait, else exponential with the given mean;
    B is drawn from the ``base`` values (each request's own time: service + overhead)."""

    def cdf(t: FloatArray) -> FloatArray:
        gap = t[:, None] - base[None, :]
        inside = gap >= 0
        tail = np.exp(-np.where(inside, gap, 0.0) / wait_mean_if_waiting) if wait_mean_if_waiting > 0 else 0.0
        return np.asarray(np.mean(np.where(inside, 1.0 - p_wait * tail, 0.0), axis=1), dtype=np.float64)

    return cdf


def kingman(queue: Queue, qs: Sequence[float]) -> Distribution:
    """G/G/c: Allen–Cunneen's mean wait (Kingman's for one server; Pollaczek–Khinchine's, exact,
    for one server and Poisson arrivals), the wait taken as exponential given that it happens,
    with Erlang C's probability of waiting; service and overhead as measured."""
    queue.check_stable()
    p_wait = erlang_c(queue.servers, queue.offered)
    mu_c = queue.servers / queue.mean_service_ms
    wait_mean = p_wait / (mu_c - queue.lam) * (queue.arrival_scv + queue.service_scv) / 2.0
    base = _subsample(queue.service_ms + queue.overhead_ms)
    cond = wait_mean / p_wait if p_wait > 0 else 0.0
    cdf = _exp_wait_cdf(base, p_wait, cond)
    hi = float(base.max()) + 10.0 * max(cond, 1e-9)
    mean = wait_mean + float(np.mean(queue.service_ms + queue.overhead_ms))
    return Distribution(_quantiles(cdf, qs, hi), mean, wait_mean, p_wait)


def erlang_c_mmc(queue: Queue, qs: Sequence[float]) -> Distribution:
    """M/M/c exactly: Poisson arrivals, exponential service with the measured mean, Erlang C's
    exponential wait; each request's measured overhead added (paired draws of the run's)."""
    queue.check_stable()
    s = queue.mean_service_ms
    mu = 1.0 / s
    p_wait = erlang_c(queue.servers, queue.offered)
    theta = queue.servers * mu - queue.lam  # rate of the exponential wait, given a wait
    overhead = _subsample(queue.overhead_ms)

    def sojourn_tail(t: FloatArray) -> FloatArray:
        # P(W + S > t) with S ~ Exp(mu), W = 0 w.p. 1 - C, else Exp(theta): a hypoexponential.
        t = np.maximum(t, 0.0)
        if abs(theta - mu) < 1e-12 * mu:
            both = (1.0 + mu * t) * np.exp(-mu * t)
        else:
            both = (theta * np.exp(-mu * t) - mu * np.exp(-theta * t)) / (theta - mu)
        return np.asarray((1.0 - p_wait) * np.exp(-mu * t) + p_wait * both, dtype=np.float64)

    def cdf(t: FloatArray) -> FloatArray:
        gap = t[:, None] - overhead[None, :]
        return np.asarray(np.mean(np.where(gap >= 0, 1.0 - sojourn_tail(gap), 0.0), axis=1), dtype=np.float64)

    wait_mean = p_wait / theta
    hi = float(overhead.max()) + 20.0 * (s + 1.0 / theta)
    mean = wait_mean + s + float(np.mean(queue.overhead_ms))
    return Distribution(_quantiles(cdf, qs, hi), mean, wait_mean, p_wait)


def pollaczek_khinchine_wait_ms(rate_rps: float, service_ms: FloatArray) -> float:
    """M/G/1's mean wait: lambda E[S^2] / (2 (1 - rho)); infinite at or above rho = 1."""
    lam = rate_rps / 1000.0
    rho = lam * float(np.mean(service_ms))
    if rho >= 1.0:
        return math.inf
    return lam * float(np.mean(service_ms * service_ms)) / (2.0 * (1.0 - rho))
