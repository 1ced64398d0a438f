"""Scaling efficiency and the Universal Scalability Law (USL): the capacity measured at several
replica counts -> the efficiency of each, a USL fit (contention σ, coherency κ), its predictions
at more replicas, and its check against the largest count measured. Pure: numpy only, no I/O.
Definitions: ``docs/metrics.md`` (Scaling) and ``docs/scaling.md``.

- **scaling efficiency** E(N) = X(N) / (N · X(1)), X(N) the capacity (requests/s under the SLO)
  of N replicas: 1 for perfect scaling, below 1 for what the fleet loses to sharing.
- **USL** (Gunther): X(N) = λN / (1 + σ(N−1) + κN(N−1)); σ is contention (a serial share:
  Amdahl's law is κ = 0), κ coherency (the cost of keeping N replicas consistent, or of a
  shared resource that every pair crosses: it makes capacity peak, at N* = √((1−σ)/κ), then fall).

The fit. λ, σ, κ ≥ 0 minimise Σ rᵢ² over the counts measured, rᵢ = Xᵢ / X̂(Nᵢ) − 1 (each
count's measured capacity relative to the fitted one; every count weighs the same, the single
replica included: its measurement is as noisy as any other's). Since
Xᵢ / X̂(Nᵢ) − 1 = (Xᵢ/Nᵢ) · (a + b(Nᵢ−1) + cNᵢ(Nᵢ−1)) − 1 with a = 1/λ, b = σ/λ, c = κ/λ,
rᵢ is linear in (a, b, c), and the bounded least squares is solved exactly by trying each set
of parameters held at 0 (eight of them): no iterations, no starting point, the global optimum.
Three parameters need three replica counts; with two, κ cannot be told apart from σ, and
Amdahl's law (κ = 0) is fitted instead, which is said (`fit_usl`). Efficiency stays defined
against the measured X(1); where the fit's λ is far from it, a note says the single replica
measured off the line the other counts draw.

The check (`validate`): the largest count measured is held out, the rest fitted the same way,
and the held-out capacity predicted: error = predicted / measured − 1, as the what-if's
(``loadbench.whatif.validate``), holding within `HOLDS`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

USL, AMDAHL = "usl", "amdahl"
PREDICT_AT = (8, 16)  # the replica counts predicted (issue 16: "at 8 and 16 replicas")
HOLDS = 0.15  # a prediction holds within 15 % of the measured capacity, as the what-if's do
# A parameter this close to 0 is 0: it is what the bounded least squares returns at its bound,
# give or take a rounding, and a κ of 1e-17 must not report a peak at 10⁸ replicas.
ZERO = 1e-9
DIGITS = 6  # significant digits kept for σ, κ and residuals in scaling.json (κ can be 1e-5)

METHOD = (
    "λ, σ, κ ≥ 0 by least squares of the relative residuals measured / fitted − 1 over every count, "
    "which are linear in (1/λ, σ/λ, κ/λ): solved exactly over the 8 sets of parameters held at 0"
)
AMDAHL_METHOD = (
    METHOD.replace("λ, σ, κ ≥ 0", "λ, σ ≥ 0 (κ = 0)").replace("σ/λ, κ/λ", "σ/λ").replace("8 sets", "4 sets")
)
AMDAHL_WHY = (
    "only two replica counts: the USL's three parameters (λ, σ, κ) need three, so Amdahl's law "
    "(κ = 0, no peak) was fitted; measure a third replica count (e.g. --replicas 1,2,4) for σ and κ"
)
# The fit's λ this far from the measured capacity(1): the single replica measured off the line.
OFF_LINE = 0.10
ASSUMPTIONS = (
    "each capacity is the highest load of a --find-capacity search that met the SLO: a lower bound "
    "within the search's --resolution of the true capacity, so efficiencies and the fit carry that "
    "uncertainty too",
    "replicas are alike and the balancing spreads the load evenly enough for each to reach its "
    "capacity; a replica that is slower, or a balancer that overloads one, lowers the measured "
    "efficiency, which the fit then reads as contention",
    "the USL's λ, σ and κ do not change with N; a shared bottleneck that appears only past the largest "
    "count measured (a network link, the load generator itself) is not in the prediction",
)


@dataclass(frozen=True)
class UslFit:
    """A fitted curve: ``model`` `USL` or `AMDAHL` (κ held at 0), over ``replicas`` with their
    measured ``capacities_rps``; ``residuals``: measured / fitted − 1 per point."""

    model: str
    lambda_rps: float
    sigma: float
    kappa: float
    replicas: tuple[int, ...]
    capacities_rps: tuple[float, ...]
    residuals: tuple[float, ...]

    def rps(self, replicas: float) -> float:
        """The fitted capacity of ``replicas`` (any real N ≥ 1)."""
        return usl_rps(replicas, self.lambda_rps, self.sigma, self.kappa)

    def peak_replicas(self) -> float | None:
        """N* = √((1−σ)/κ), where the fitted capacity peaks; None without a peak (κ = 0, or σ ≥ 1)."""
        if self.kappa <= 0 or self.sigma >= 1:
            return None
        return math.sqrt((1.0 - self.sigma) / self.kappa)

    def ceiling_rps(self) -> float | None:
        """With κ = 0 and σ > 0 (Amdahl): the capacity no number of replicas exceeds, λ / σ."""
        return self.lambda_rps / self.sigma if self.kappa <= 0 and self.sigma > 0 else None

    def parameters(self) -> int:
        return 3 if self.model == USL else 2

    def exact(self) -> bool:
        """As many counts as parameters and the curve through every point (no bound held): its
        residuals then say nothing about its error."""
        return len(self.replicas) <= self.parameters() and max(abs(r) for r in self.residuals) < 1e-6


def usl_rps(replicas: float, lambda_rps: float, sigma: float, kappa: float) -> float:
    """X(N) = λN / (1 + σ(N−1) + κN(N−1))."""
    n = float(replicas)
    return lambda_rps * n / (1.0 + sigma * (n - 1.0) + kappa * n * (n - 1.0))


def efficiency(replicas: int, capacity_rps: float, capacity1_rps: float) -> float:
    """capacity(N) / (N · capacity(1))."""
    return capacity_rps / (replicas * capacity1_rps)


def nonnegative_lstsq(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """argmin ‖a·x − b‖² over x ≥ 0, for a few columns: the optimum is the unconstrained least
    squares on its own support (the columns not held at 0), so the best feasible one of those
    over every support is exact (2^columns of them: 4 for the USL)."""
    columns = a.shape[1]
    best, best_sse = np.zeros(columns), float(b @ b)
    for size in range(1, columns + 1):
        for support in itertools.combinations(range(columns), size):
            sub = a[:, list(support)]
            x_sub = np.linalg.lstsq(sub, b, rcond=None)[0]
            if np.any(x_sub < -ZERO):
                continue
            x = np.zeros(columns)
            x[list(support)] = np.maximum(x_sub, 0.0)
            residual = a @ x - b
            sse = float(residual @ residual)
            if sse < best_sse - 1e-15:
                best, best_sse = x, sse
    return best


def fit_usl(points: Sequence[tuple[int, float]]) -> UslFit:
    """Fit ``points`` (replicas, capacity in requests/s > 0, each count once) as the module says:
    the USL with three counts or more, Amdahl's law with two. ValueError with fewer."""
    ordered = sorted((int(n), float(x)) for n, x in points if x > 0)
    if len(ordered) < 2:
        raise ValueError(
            f"{len(ordered)} replica count(s) with a capacity: a fit needs at least 2 (3 for the USL)"
        )
    n = np.array([p[0] for p in ordered], dtype=np.float64)
    x = np.array([p[1] for p in ordered], dtype=np.float64)
    per = x / n
    # rᵢ = (Xᵢ/Nᵢ)·(a + b(Nᵢ−1) + cNᵢ(Nᵢ−1)) − 1, a = 1/λ, b = σ/λ, c = κ/λ.
    columns = [per, per * (n - 1.0), per * n * (n - 1.0)]
    model = USL if len(ordered) >= 3 else AMDAHL
    theta = nonnegative_lstsq(np.column_stack(columns if model == USL else columns[:2]), np.ones(len(n)))
    if theta[0] <= ZERO:  # no finite λ fits: cannot happen with positive capacities, kept as a guard
        raise ValueError("the capacities fit no finite λ")
    lam = 1.0 / float(theta[0])
    sigma = float(theta[1]) * lam if theta[1] * lam > ZERO else 0.0
    kappa = float(theta[2]) * lam if model == USL and theta[2] * lam > ZERO else 0.0
    fitted = lam * n / (1.0 + sigma * (n - 1.0) + kappa * n * (n - 1.0))
    # Rounded to 1e-9 first: an exact fit leaves float dust (1e-16), not a residual.
    residuals = tuple(_sig(round(float(r), 9)) for r in x / fitted - 1.0)
    return UslFit(model, lam, sigma, kappa, tuple(int(v) for v in n), tuple(float(v) for v in x), residuals)


def _sig(value: float) -> float:
    return float(f"{value:.{DIGITS}g}") + 0.0  # + 0.0: a -0.0 residual reads as 0.0


def _rms(values: Sequence[float]) -> float | None:
    return _sig(math.sqrt(sum(v * v for v in values) / len(values))) if values else None


def fit_object(fit: UslFit) -> dict[str, Any]:
    """``scaling.json`` ``fit``: the parameters, the peak, and the error of the fit itself."""
    pairs = list(zip(fit.replicas, fit.residuals, strict=True))
    worst = max(pairs, key=lambda t: abs(t[1]))
    peak = fit.peak_replicas()
    ceiling = fit.ceiling_rps()
    out: dict[str, Any] = {
        "fitted": True,
        "model": fit.model,
        "method": METHOD if fit.model == USL else AMDAHL_METHOD,
        "lambda_rps": round(fit.lambda_rps, 3),
        "sigma": _sig(fit.sigma),
        "kappa": _sig(fit.kappa),
        "peak_replicas": None if peak is None else round(peak, 2),
        "peak_rps": None if peak is None else round(fit.rps(peak), 3),
        "ceiling_rps": None if ceiling is None else round(ceiling, 3),
        "replicas": list(fit.replicas),
        "parameters": fit.parameters(),
        "rms_residual": _rms([r for _, r in pairs]),
        "max_residual": worst[1],
        "max_residual_replicas": worst[0],
        "exact": fit.exact(),
        "why": AMDAHL_WHY if fit.model == AMDAHL else None,
    }
    if fit.exact():
        out["residual_note"] = (
            f"{len(pairs)} replica counts for {out['parameters']} parameters: the curve passes through the "
            "points, so its residuals say nothing of its error; the validation does"
        )
    return out


def _share(value: float, replicas: int, capacity1_rps: float | None) -> float | None:
    """A fitted capacity as an efficiency: against the *measured* capacity(1), as the definition."""
    return None if not capacity1_rps else round(efficiency(replicas, value, capacity1_rps), 4)


def curve(fit: UslFit, up_to: int, capacity1_rps: float | None) -> list[dict[str, Any]]:
    """The fitted capacity and efficiency at every whole N from 1 to ``up_to`` (the plot's line)."""
    return [
        {"replicas": n, "rps": round(fit.rps(n), 3), "efficiency": _share(fit.rps(n), n, capacity1_rps)}
        for n in range(1, up_to + 1)
    ]


def predictions(
    fit: UslFit, capacity1_rps: float | None, at: Sequence[int] = PREDICT_AT
) -> list[dict[str, Any]]:
    """The fitted capacity at each of ``at``; ``extrapolated`` beyond the largest count measured;
    efficiency and the linear ideal against the measured capacity(1)."""
    largest = max(fit.replicas)
    return [
        {
            "replicas": n,
            "rps": round(fit.rps(n), 3),
            "efficiency": _share(fit.rps(n), n, capacity1_rps),
            "ideal_rps": None if not capacity1_rps else round(n * capacity1_rps, 3),
            "model": fit.model,
            "extrapolated": n > largest,
        }
        for n in at
    ]


def validate(points: Sequence[tuple[int, float]]) -> dict[str, Any]:
    """Hold out the largest replica count, fit the others (`fit_usl`), predict it: ``scaling.json``
    ``validation``; ``validated`` false with ``why`` when fewer than three counts have a capacity."""
    ordered = sorted(points)
    if len(ordered) < 3:
        return {
            "validated": False,
            "why": f"{len(ordered)} replica count(s) with a capacity: a check holds the largest out and fits "
            "the others, which needs at least 3 (e.g. --replicas 1,2,4; 1,2,4,8 checks the USL itself)",
        }
    held_n, held_x = ordered[-1]
    fit = fit_usl(ordered[:-1])
    predicted = fit.rps(held_n)
    error = predicted / held_x - 1.0
    return {
        "validated": True,
        "fit_on": list(fit.replicas),
        "model": fit.model,
        "sigma": _sig(fit.sigma),
        "kappa": _sig(fit.kappa),
        "replicas": held_n,
        "predicted_rps": round(predicted, 3),
        "measured_rps": round(held_x, 3),
        "error": round(error, 4),
        "holds_within": HOLDS,
        "holds": abs(error) <= HOLDS,
    }


def _fit_notes(fit: UslFit, points: Sequence[tuple[int, float]], capacity1_rps: float | None) -> list[str]:
    """What the reader of the efficiencies must know: superlinear counts, a capacity(1) off the
    line the other counts draw, Amdahl's law in place of the USL."""
    notes = []
    if capacity1_rps is None:
        notes.append(
            "no capacity at 1 replica: no efficiency (it is relative to capacity(1)); the fit still stands"
        )
    else:
        above = [n for n, x in points if n > 1 and efficiency(n, x, capacity1_rps) > 1.0]
        if above:
            notes.append(
                f"efficiency above 1 at {', '.join(str(n) for n in above)} replica(s): more than N × capacity(1) "
                "(cache effects, a capacity(1) measured low by the search's resolution, or noise), which the "
                "USL with σ, κ ≥ 0 follows only as linear scaling"
            )
        off = capacity1_rps / fit.lambda_rps - 1.0
        if abs(off) > OFF_LINE and len(points) > fit.parameters():
            notes.append(
                f"capacity(1) measured {capacity1_rps:,.4g} req/s, {off:+.0%} off the fit's λ = "
                f"{fit.lambda_rps:,.4g} req/s that the other counts draw: the single replica measured "
                f"{'low' if off < 0 else 'high'} (noise, or the search's resolution), and every efficiency, "
                "relative to it, with it"
            )
    if fit.model == AMDAHL:
        notes.append(AMDAHL_WHY)
    return notes


def analyze_scaling(
    measured: Sequence[tuple[int, float | None]], predict_at: Sequence[int] = PREDICT_AT
) -> dict[str, Any]:
    """The figures of ``scaling.json`` from (replicas, capacity in requests/s or None when no
    step passed) per replica count: ``points``, ``fit``, ``curve``, ``predictions``,
    ``validation``, ``assumptions`` and ``notes``."""
    notes: list[str] = []
    missing = [n for n, x in measured if not x]
    if missing:
        counts = ", ".join(str(n) for n in missing)
        notes.append(f"no capacity at {counts} replica(s) (no step met the SLO): left out of the fit")
    points = sorted((int(n), float(x)) for n, x in measured if x)
    lam = next((x for n, x in points if n == 1), None)
    rows: list[dict[str, Any]] = [
        {
            "replicas": int(n),
            "capacity_rps": None if not x else round(float(x), 3),
            "ideal_rps": None if lam is None else round(n * lam, 3),
            "efficiency": None if lam is None or not x else round(efficiency(n, float(x), lam), 4),
        }
        for n, x in sorted(measured)
    ]
    out: dict[str, Any] = {
        "points": rows,
        "fit": None,
        "curve": [],
        "predictions": [],
        "validation": None,
        "assumptions": list(ASSUMPTIONS),
        "notes": notes,
    }
    try:
        fit = fit_usl(points)
    except ValueError as exc:
        out["fit"] = {"fitted": False, "why": str(exc)}
        out["validation"] = {"validated": False, "why": str(exc)}
        return out
    for row in rows:
        if row["capacity_rps"] is not None:
            row["fitted_rps"] = round(fit.rps(row["replicas"]), 3)
            row["residual"] = fit.residuals[fit.replicas.index(row["replicas"])]
    out["fit"] = fit_object(fit)
    out["curve"] = curve(fit, max([*fit.replicas, *predict_at]), lam)
    out["predictions"] = predictions(fit, lam, predict_at)
    out["validation"] = validate(points)
    notes += _fit_notes(fit, points, lam)
    return out
