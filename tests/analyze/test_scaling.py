"""Scaling efficiency and the USL fit on exact synthetic capacities: the parameters come back, the
efficiency, the peak, the predictions, the check against a held-out count, and what is said when
there are too few counts for the two parameters."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from loadbench.analyze.scaling import (
    AMDAHL,
    HOLDS,
    PREDICT_AT,
    USL,
    analyze_scaling,
    efficiency,
    fit_usl,
    nonnegative_lstsq,
    usl_rps,
    validate,
)


def usl_points(counts: tuple[int, ...], lam: float, sigma: float, kappa: float) -> list[tuple[int, float]]:
    return [(n, usl_rps(n, lam, sigma, kappa)) for n in counts]


@pytest.mark.parametrize(
    ("sigma", "kappa"),
    [(0.05, 0.002), (0.0, 0.01), (0.2, 0.0), (0.0, 0.0), (0.5, 0.05)],
)
@pytest.mark.parametrize("counts", [(1, 2, 4), (1, 2, 4, 8), (1, 3, 5, 8, 16)])
def test_the_fit_recovers_sigma_and_kappa_from_exact_capacities(
    counts: tuple[int, ...], sigma: float, kappa: float
) -> None:
    fit = fit_usl(usl_points(counts, 40.0, sigma, kappa))
    assert fit.model == USL
    assert fit.lambda_rps == pytest.approx(40.0)
    assert fit.sigma == pytest.approx(sigma, abs=1e-9)
    assert fit.kappa == pytest.approx(kappa, abs=1e-9)
    assert max(abs(r) for r in fit.residuals) < 1e-9


def test_efficiency_and_the_peak() -> None:
    assert efficiency(4, 300.0, 100.0) == 0.75
    fit = fit_usl(usl_points((1, 2, 4, 8), 100.0, 0.05, 0.002))
    peak = fit.peak_replicas()
    assert peak == pytest.approx(math.sqrt(0.95 / 0.002))
    # The peak is the curve's maximum: capacity falls on either side of it.
    assert fit.rps(peak) > fit.rps(peak - 1) and fit.rps(peak) > fit.rps(peak + 1)
    amdahl = fit_usl(usl_points((1, 2, 4), 100.0, 0.25, 0.0))
    assert amdahl.peak_replicas() is None and amdahl.ceiling_rps() == pytest.approx(400.0)


def test_analyze_scaling_writes_efficiency_predictions_and_the_check() -> None:
    points = usl_points((1, 2, 4, 8), 50.0, 0.03, 0.001)
    out = analyze_scaling(points)
    rows = {r["replicas"]: r for r in out["points"]}
    assert rows[1]["efficiency"] == 1.0
    assert rows[4]["efficiency"] == pytest.approx(points[2][1] / 200.0, abs=1e-4)
    assert rows[8]["ideal_rps"] == 400.0
    assert all(r["residual"] == 0.0 for r in out["points"])
    fit = out["fit"]
    assert fit["fitted"] and fit["model"] == USL and fit["parameters"] == 3
    assert fit["sigma"] == pytest.approx(0.03) and fit["kappa"] == pytest.approx(0.001)
    assert fit["rms_residual"] == 0.0 and not fit["exact"]
    assert [p["replicas"] for p in out["predictions"]] == list(PREDICT_AT)
    at16 = out["predictions"][1]
    assert at16["rps"] == pytest.approx(usl_rps(16, 50.0, 0.03, 0.001), abs=1e-3)
    assert at16["extrapolated"] and not out["predictions"][0]["extrapolated"]  # 8 was measured
    assert [c["replicas"] for c in out["curve"]] == list(range(1, 17))
    check = out["validation"]
    assert check["validated"] and check["fit_on"] == [1, 2, 4] and check["replicas"] == 8
    assert check["model"] == USL and check["error"] == pytest.approx(0.0, abs=1e-4) and check["holds"]


def test_three_counts_fit_exactly_and_say_the_residuals_prove_nothing() -> None:
    out = analyze_scaling(usl_points((1, 2, 4), 50.0, 0.1, 0.01))
    assert out["fit"]["model"] == USL and out["fit"]["exact"]
    assert out["fit"]["residual_note"].startswith("3 replica counts for 3 parameters")
    assert "say nothing of its error" in out["fit"]["residual_note"]
    # The check holds 4 out: 1 and 2 alone fit Amdahl's law, which cannot know κ.
    check = out["validation"]
    assert check["model"] == AMDAHL and check["fit_on"] == [1, 2]
    assert check["predicted_rps"] > check["measured_rps"]  # κ > 0 bends the truth below Amdahl


def test_one_count_besides_1_fits_amdahl_and_says_so() -> None:
    out = analyze_scaling([(1, 50.0), (2, 90.0)])
    fit = out["fit"]
    assert fit["model"] == AMDAHL and fit["kappa"] == 0.0
    assert fit["lambda_rps"] == pytest.approx(50.0) and fit["parameters"] == 2 and fit["exact"]
    assert fit["sigma"] == pytest.approx(2 * 50 / 90 - 1, rel=1e-5)  # 90 = 100 / (1 + σ)
    assert "need three" in fit["why"] and "--replicas 1,2,4" in fit["why"]
    assert any("Amdahl" in n for n in out["notes"])
    assert not out["validation"]["validated"] and "at least 3" in out["validation"]["why"]
    assert all(p["model"] == AMDAHL for p in out["predictions"])


@pytest.mark.parametrize(
    "measured", [[(1, 50.0)], [(1, 50.0), (2, None)], [(4, 150.0)], []], ids=["1", "1+none", "4", "empty"]
)
def test_no_fit_with_fewer_than_two_counts(measured: list[tuple[int, float | None]]) -> None:
    out = analyze_scaling(measured)
    assert out["fit"]["fitted"] is False and "a fit needs at least 2 (3 for the USL)" in out["fit"]["why"]
    assert out["validation"]["validated"] is False
    assert out["predictions"] == [] and out["curve"] == []


def test_without_capacity_at_1_the_fit_stands_without_efficiency() -> None:
    out = analyze_scaling([(1, None), (2, 90.0), (4, 150.0)])
    assert out["fit"]["model"] == AMDAHL and out["fit"]["replicas"] == [2, 4]
    assert all(p["efficiency"] is None for p in out["points"])
    assert all(p["efficiency"] is None and p["ideal_rps"] is None for p in out["predictions"])
    assert any("no capacity at 1 replica: no efficiency" in n for n in out["notes"])


def test_a_count_without_capacity_is_left_out_and_said() -> None:
    out = analyze_scaling([(1, 50.0), (2, 95.0), (4, None), (8, 300.0)])
    assert out["fit"]["replicas"] == [1, 2, 8]
    assert any("no capacity at 4 replica(s)" in n for n in out["notes"])
    row4 = next(r for r in out["points"] if r["replicas"] == 4)
    assert row4["capacity_rps"] is None and row4["efficiency"] is None and "fitted_rps" not in row4


def test_superlinear_capacity_holds_the_parameters_at_0_and_is_said() -> None:
    out = analyze_scaling([(1, 50.0), (2, 104.0), (4, 212.0)])
    assert out["fit"]["sigma"] == 0.0 and out["fit"]["kappa"] == 0.0
    assert out["fit"]["lambda_rps"] > 50.0  # the line the three draw, above the single replica
    assert any("efficiency above 1 at 2, 4" in n for n in out["notes"])


def test_a_single_replica_measured_low_is_outvoted_and_said() -> None:
    # Measured (benchmarks/scaling_validation.py): capacity(1) came out 18 % under the others' line.
    out = analyze_scaling([(1, 38.8), (2, 94.5), (4, 188.9), (8, 366.0), (16, 732.0)])
    assert out["fit"]["lambda_rps"] == pytest.approx(46.0, rel=0.03)
    assert out["points"][0]["residual"] < -0.10 and out["points"][-1]["residual"] == pytest.approx(
        0.0, abs=0.05
    )
    assert any("capacity(1) measured 38.8 req/s" in n and "measured low" in n for n in out["notes"])
    check = out["validation"]
    assert check["fit_on"] == [1, 2, 4, 8] and check["holds"], check


def test_noise_shows_in_the_fit_error_and_the_check() -> None:
    # ±3 % on the true USL's capacities: the residuals and the check's error say how far.
    truth = usl_points((1, 2, 4, 8), 100.0, 0.05, 0.002)
    noisy = [(n, x * (1 + e)) for (n, x), e in zip(truth, (0.0, 0.03, -0.03, 0.03), strict=True)]
    out = analyze_scaling(noisy)
    fit, check = out["fit"], out["validation"]
    assert 0.005 < fit["rms_residual"] < 0.05
    assert fit["max_residual_replicas"] in (2, 4, 8) and abs(fit["max_residual"]) >= fit["rms_residual"]
    assert check["error"] == pytest.approx(check["predicted_rps"] / check["measured_rps"] - 1, abs=1e-4)
    assert check["holds"] == (abs(check["error"]) <= HOLDS)


def test_validate_needs_three_counts() -> None:
    assert validate([(1, 10.0), (2, 19.0)])["validated"] is False


def test_nonnegative_lstsq_is_the_optimum() -> None:
    # Against a fine grid search over x >= 0 on random small problems: never worse.
    rng = np.random.default_rng(7)
    grid = np.linspace(0.0, 3.0, 121)
    for _ in range(20):
        a = rng.normal(size=(5, 2))
        b = rng.normal(size=5)
        x = nonnegative_lstsq(a, b)
        assert np.all(x >= 0)
        best = min(float(np.sum((a @ np.array(g) - b) ** 2)) for g in itertools.product(grid, grid))
        assert float(np.sum((a @ x - b) ** 2)) <= best + 1e-12
