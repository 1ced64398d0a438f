"""Predictions and the capacity plan on fits whose answers are known in closed form."""

from __future__ import annotations

import math

import numpy as np
import pytest

from loadbench.analyze.slo import parse_slo
from loadbench.errors import UsageError
from loadbench.whatif.fit import Fit
from loadbench.whatif.predict import Options, check_slo, knee_rate, max_rate, min_servers, plan, predict_one

QUICK = Options(sim_requests=200_000, replications=5)


def make_fit(service: np.ndarray, overhead_ms: float = 0.0) -> Fit:
    return Fit(
        run_dir="synthetic",
        service_ms=service,
        overhead_ms=np.full_like(service, overhead_ms),
        source="server",
        method="synthetic",
        requests=service.size,
        window_s=60.0,
        throughput_rps=10.0,
        load_model="closed",
        arrival=None,
        users=1,
        gaps_ms=np.full(10, 100.0),
        latency_ms=service + overhead_ms,
    )


@pytest.fixture(scope="module")
def exp_fit() -> Fit:
    return make_fit(np.random.default_rng(1).exponential(10.0, 100_000))


def test_an_entry_holds_every_documented_field(exp_fit: Fit) -> None:
    entry = predict_one(exp_fit, 50.0, 1, "simulation", QUICK)
    assert set(entry) >= {"rate_rps", "servers", "utilisation", "method", "latency_ms", "ci_ms", "wait_ms"}
    assert set(entry["latency_ms"]) == {"p50", "p90", "p99", "p999", "mean"}
    assert set(entry["ci_ms"]) == {"p50", "p90", "p99", "p999", "mean"}
    assert entry["utilisation"] == pytest.approx(50 * exp_fit.mean_service_ms / 1000, abs=1e-4)
    # Latency = processing + request time, the real-time ratio their quotient.
    assert entry["processing_ms"] + entry["request_ms"] == pytest.approx(
        entry["latency_ms"]["mean"], abs=2e-3
    )
    assert entry["realtime_ratio"] == pytest.approx(entry["processing_ms"] / entry["request_ms"], rel=1e-3)
    analytic = predict_one(exp_fit, 50.0, 1, "kingman", QUICK)
    assert analytic["ci_ms"] is None
    unstable = predict_one(exp_fit, 150.0, 1, "kingman", QUICK)
    assert unstable["stable"] is False and unstable["latency_ms"] is None


def test_max_rate_inverts_the_mm1_median(exp_fit: Fit) -> None:
    # M/M/1: p50 = ln 2 / (mu - lambda) <= L  <=>  lambda <= mu - ln 2 / L.
    mu = 1000.0 / exp_fit.mean_service_ms
    limit = 20.0
    exact = mu - math.log(2) / (limit / 1000.0)
    assert max_rate(exp_fit, 1, "erlang_c", "p50", limit, QUICK) == pytest.approx(exact, rel=0.002)
    # The overhead eats into the budget: 5 ms of it leaves 15 ms for the queue and service.
    shifted = make_fit(exp_fit.service_ms, 5.0)
    assert max_rate(shifted, 1, "erlang_c", "p50", limit, QUICK) == pytest.approx(
        mu - math.log(2) / (15.0 / 1000.0), rel=0.002
    )
    # A bound below the service time itself cannot be met at any rate.
    assert max_rate(exp_fit, 1, "erlang_c", "p50", 1.0, QUICK) is None


def test_min_servers_is_the_smallest_that_meets(exp_fit: Fit) -> None:
    limit = 60.0
    c = min_servers(exp_fit, 350.0, "kingman", "p99", limit, QUICK)
    assert c is not None and c >= 4  # 3.5 Erlangs need at least 4 servers to be stable
    assert predict_one(exp_fit, 350.0, c, "kingman", QUICK)["latency_ms"]["p99"] <= limit
    below = predict_one(exp_fit, 350.0, c - 1, "kingman", QUICK)
    assert not below["stable"] or below["latency_ms"]["p99"] > limit
    # The p99 of the service time alone is ~46 ms: no number of servers brings p99 under 40 ms.
    assert min_servers(exp_fit, 350.0, "kingman", "p99", 40.0, QUICK) is None


def test_plan_gives_a_range_for_the_simulation(exp_fit: Fit) -> None:
    result = plan(exp_fit, [60.0], [1], parse_slo("p99<150ms"), QUICK)
    sim = next(r for r in result["max_rate"] if r["method"] == "simulation")
    lo, hi = sim["range_rps"]
    assert lo <= sim["rate_rps"] <= hi
    exact = next(r for r in result["max_rate"] if r["method"] == "erlang_c")["rate_rps"]
    assert sim["rate_rps"] == pytest.approx(exact, rel=0.05)
    assert {r["method"] for r in result["min_servers"]} == {"erlang_c", "kingman", "simulation"}


def test_slos_a_whatif_cannot_predict_are_refused() -> None:
    assert check_slo(parse_slo("p999<1s")) == "p999"
    assert check_slo(parse_slo("mean<=20ms")) == "mean"
    for text in ("error_rate<1%", "p99>10ms", "ttft<500ms", "throughput>=100"):
        with pytest.raises(UsageError, match="whatif predicts latency"):
            check_slo(parse_slo(text))


def test_the_knee_is_where_the_median_doubles(exp_fit: Fit) -> None:
    knee = knee_rate(exp_fit, 1, QUICK)
    base = predict_one(exp_fit, 1e-6, 1, "kingman", QUICK)["latency_ms"]["p50"]
    at = predict_one(exp_fit, knee, 1, "kingman", QUICK)["latency_ms"]["p50"]
    assert at == pytest.approx(2 * base, rel=0.01)
