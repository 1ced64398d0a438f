"""Predictions from a `Fit`: one entry per arrival rate, number of servers and method, and the
capacity plan (the fewest servers for a rate, the highest rate for a number of servers, under an
SLO). Pure: no I/O. The JSON shapes are ``docs/whatif.md``'s.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from loadbench.analyze.slo import Slo
from loadbench.errors import UsageError
from loadbench.whatif import queueing, simulate
from loadbench.whatif.fit import Fit
from loadbench.whatif.queueing import Queue, UnstableError

QUANTILES = (0.5, 0.9, 0.99, 0.999)
KEYS = ("p50", "p90", "p99", "p999")
METHODS = ("erlang_c", "kingman", "simulation")
ARRIVALS = ("poisson", "measured")
# What each method assumes, said beside its figures.
ASSUMPTIONS = {
    "erlang_c": "M/M/c: Poisson arrivals, exponential service times with the measured mean, FIFO, "
    "c identical servers (Erlang C); exact for that model, so it errs by how far the measured "
    "service times are from exponential",
    "kingman": "G/G/c: Erlang C's probability of waiting, Allen–Cunneen's mean wait (Kingman's for "
    "one server; with Poisson arrivals and one server, Pollaczek–Khinchine's exact M/G/1 mean), "
    "the wait exponential given that it happens; service times as measured",
    "simulation": "Monte-Carlo: a discrete-event simulation of a FIFO queue of c servers, service "
    "times drawn from the measured ones, seeded replications from an empty queue with the first "
    "10 % of each dropped; 95 % intervals over the replications (Student's t)",
}
SLO_PATHS = {f"latency_ms.{k}": k for k in (*KEYS, "mean")}
# Searches: rates to within 0.1 % of capacity; the fewest servers among at most this many.
_RATE_STEPS = 12
_MAX_SERVERS = 4096


@dataclass(frozen=True)
class Options:
    """How to predict: the methods, the arrivals, and the simulation's size."""

    methods: tuple[str, ...] = METHODS
    arrivals: str = "poisson"
    sim_requests: int = simulate.DEFAULT_REQUESTS
    replications: int = simulate.DEFAULT_REPLICATIONS
    seed: int = 0


def check_slo(slo: Slo) -> str:
    """The latency statistic an SLO bounds; `UsageError` for anything a what-if cannot predict."""
    key = SLO_PATHS.get(slo.path)
    if key is None or slo.op not in ("<", "<=") or slo.per_request:
        raise UsageError(
            f"whatif predicts latency: --slo takes an upper bound on p50, p90, p99, p999 or mean latency "
            f"(e.g. 'p99<300ms'), not {slo.expr!r}"
        )
    return key


def queue_for(fit: Fit, rate_rps: float, servers: int, options: Options) -> Queue:
    scv = fit.arrival_scv if options.arrivals == "measured" else 1.0
    return Queue(rate_rps, servers, fit.service_ms, fit.overhead_ms, arrival_scv=scv)


def _round(value: float) -> float:
    return round(value, 3)


def predict_one(fit: Fit, rate_rps: float, servers: int, method: str, options: Options) -> dict[str, Any]:
    """One prediction entry; ``stable`` false (and no figures) at or above utilisation 1."""
    queue = queue_for(fit, rate_rps, servers, options)
    entry: dict[str, Any] = {
        "rate_rps": _round(rate_rps),
        "servers": servers,
        "utilisation": round(queue.utilisation, 4),
        "method": method,
        "stable": queue.utilisation < 1.0,
    }
    if not entry["stable"]:
        return {**entry, "latency_ms": None, "ci_ms": None}
    ci: dict[str, list[float]] | None = None
    if method == "simulation":
        gaps = fit.gaps_ms if options.arrivals == "measured" else None
        sim = simulate.simulate(
            queue, QUANTILES, options.sim_requests, options.replications, options.seed, gaps
        )
        quantiles, mean, wait_mean, p_wait = sim.quantiles, sim.mean, sim.wait_mean, sim.wait_probability
        ci = {k: [_round(lo), _round(hi)] for k, (lo, hi) in zip(KEYS, sim.intervals.values(), strict=True)}
        ci["mean"] = [_round(sim.mean_interval[0]), _round(sim.mean_interval[1])]
    else:
        solve = queueing.erlang_c_mmc if method == "erlang_c" else queueing.kingman
        d = solve(queue, QUANTILES)
        quantiles, mean, wait_mean, p_wait = d.quantiles, d.mean, d.wait_mean, d.wait_probability
    latency = {k: _round(quantiles[q]) for k, q in zip(KEYS, QUANTILES, strict=True)}
    latency["mean"] = _round(mean)
    processing = fit.mean_service_ms
    request = max(mean - processing, 0.0)
    return {
        **entry,
        "latency_ms": latency,
        "ci_ms": ci,
        "wait_ms": {"mean": _round(wait_mean), "probability": round(p_wait, 4)},
        "processing_ms": _round(processing),
        "request_ms": _round(request),
        "realtime_ratio": round(processing / request, 4) if request > 0 else None,
    }


def predictions(
    fit: Fit, rates: Sequence[float], servers: Sequence[int], options: Options
) -> list[dict[str, Any]]:
    return [
        predict_one(fit, rate, c, method, options)
        for c in servers
        for rate in rates
        for method in options.methods
    ]


def _meets(
    fit: Fit, rate: float, servers: int, method: str, key: str, limit: float, options: Options, bound: int
) -> bool:
    """Whether the SLO holds; ``bound`` -1/0/+1: on the interval's low end, the point, its high end."""
    try:
        entry = predict_one(fit, rate, servers, method, options)
    except UnstableError:
        return False
    if not entry["stable"]:
        return False
    if bound and entry["ci_ms"] is not None:
        return bool(entry["ci_ms"][key][0 if bound < 0 else 1] <= limit)
    return bool(entry["latency_ms"][key] <= limit)


def max_rate(
    fit: Fit, servers: int, method: str, key: str, limit: float, options: Options, bound: int = 0
) -> float | None:
    """The highest arrival rate whose predicted ``key`` stays within ``limit`` ms (bisection over
    utilisation, which the latency grows with); None when even a trickle misses it."""
    full = servers * 1000.0 / fit.mean_service_ms  # the rate at utilisation 1
    lo, hi = 0.0, 1.0
    if not _meets(fit, full * 1e-3, servers, method, key, limit, options, bound):
        return None
    lo = 1e-3
    for _ in range(_RATE_STEPS):
        mid = (lo + hi) / 2.0
        if _meets(fit, full * mid, servers, method, key, limit, options, bound):
            lo = mid
        else:
            hi = mid
    return full * lo


def min_servers(
    fit: Fit, rate: float, method: str, key: str, limit: float, options: Options, bound: int = 0
) -> int | None:
    """The fewest servers whose predicted ``key`` at ``rate`` stays within ``limit`` ms; None when
    no number does (the overhead and service time alone exceed it)."""
    offered = rate * fit.mean_service_ms / 1000.0
    c = max(1, math.floor(offered) + 1)
    while c <= _MAX_SERVERS:
        if _meets(fit, rate, c, method, key, limit, options, bound):
            return c
        # Past twice the offered load the wait is nearly gone: more servers cannot help.
        if c > 2 * offered + 4:
            return None
        c += 1
    return None


def _search_options(options: Options) -> Options:
    # A search predicts a dozen times: a fifth of the simulation each time keeps it to seconds.
    return replace(options, sim_requests=max(options.sim_requests // 5, 50_000))


def plan(
    fit: Fit, rates: Sequence[float], servers: Sequence[int], slo: Slo, options: Options
) -> dict[str, Any]:
    """``plan``: per method, the highest rate per number of servers and the fewest servers per
    rate under the SLO; the simulation's with the range its 95 % intervals allow."""
    key = check_slo(slo)
    search = _search_options(options)
    out: dict[str, Any] = {"slo": slo.expr, "max_rate": [], "min_servers": []}
    for method in options.methods:
        for c in servers:
            row: dict[str, Any] = {
                "servers": c,
                "method": method,
                "rate_rps": _opt(max_rate(fit, c, method, key, slo.threshold, search)),
            }
            if method == "simulation":
                row["range_rps"] = [
                    _opt(max_rate(fit, c, method, key, slo.threshold, search, bound=+1)),
                    _opt(max_rate(fit, c, method, key, slo.threshold, search, bound=-1)),
                ]
            out["max_rate"].append(row)
        for rate in rates:
            row = {
                "rate_rps": _round(rate),
                "method": method,
                "servers": min_servers(fit, rate, method, key, slo.threshold, search),
            }
            if method == "simulation":
                row["range"] = [
                    min_servers(fit, rate, method, key, slo.threshold, search, bound=-1),
                    min_servers(fit, rate, method, key, slo.threshold, search, bound=+1),
                ]
            out["min_servers"].append(row)
    return out


def _opt(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def knee_rate(fit: Fit, servers: int, options: Options) -> float:
    """Where the predicted median reaches twice its no-load value (`loadbench.analyze.capacity`'s
    knee for a sweep), by the G/G/c formula: cheap, and what the plot marks."""
    quick = Options(("kingman",), options.arrivals)
    base = predict_one(fit, 1e-6, servers, "kingman", quick)["latency_ms"]["p50"]
    full = servers * 1000.0 / fit.mean_service_ms
    lo, hi = 0.0, 0.9999
    for _ in range(30):
        mid = (lo + hi) / 2.0
        p50 = predict_one(fit, full * mid, servers, "kingman", quick)["latency_ms"]["p50"]
        lo, hi = (mid, hi) if p50 < 2.0 * base else (lo, mid)
    return full * lo
