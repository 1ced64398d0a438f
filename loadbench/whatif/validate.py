"""A what-if checked against measurement: fit on a sweep's lowest-load step, predict every step,
and put the predictions beside what each step measured (``sweep.json`` ``whatif``).

Consumes a sweep directory's rows (``sweep.json`` ``steps``, each with its run directory);
produces the ``whatif`` object (``docs/whatif.md``). Rate-mode steps are predicted at their
offered rate with the steps' own arrivals (Poisson; a constant, gamma or trace schedule as the fit step's measured gaps); a
closed loop (users mode) sends no more than its users at once, which an open queue does not
model: its steps are predicted at their measured throughput, and the object says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from loadbench.analyze import capacity
from loadbench.errors import LoadbenchError
from loadbench.record import rundir
from loadbench.whatif.fit import Fit, fit_run, replay_queue
from loadbench.whatif.predict import Options, predict_one

HOLDS = 0.15  # a prediction holds within 15 % of the measured figure
# A step whose own mean service time moved this far from the fit's ran on a different server, as
# far as the model is concerned (slowed by its machine, warmed up, batching): said per step.
DRIFT = 0.10
VALIDATION_METHODS = ("kingman", "simulation")


def _saturated(rows: Sequence[dict[str, Any]], mode: str) -> list[dict[str, Any]]:
    """Steps where the server did not keep up: the only ones that show its concurrency."""
    if mode == "users":
        return [r for r in rows if r.get("achieved_rps")]
    return [
        r
        for r in rows
        if (r.get("achieved_ratio") or 1.0) < capacity.ACHIEVED_SHARE and r.get("achieved_rps")
    ]


def estimate_servers(fit: Fit, rows: Sequence[dict[str, Any]], mode: str) -> tuple[int | None, str]:
    """The server's concurrency by Little's law at saturation: busy servers = throughput x mean
    service time, at the highest throughput a saturated step reached."""
    saturated = _saturated(rows, mode)
    if not saturated:
        return None, "no step saturated the server, so its concurrency cannot be measured: give --servers C"
    peak = max(float(r["achieved_rps"]) for r in saturated)
    busy = peak * fit.mean_service_ms / 1000.0
    servers = max(1, round(busy))
    return servers, (
        f"measured: {peak:.1f} req/s at saturation x {fit.mean_service_ms:.3f} ms mean service time = "
        f"{busy:.2f} busy servers (Little's law), rounded to {servers}"
    )


def _error(predicted: float | None, measured: float | None) -> float | None:
    if predicted is None or not measured:
        return None
    return round(predicted / measured - 1.0, 4)


def _measured_ci(step_dir: Path) -> dict[str, Any] | None:
    """The step's own 95 % intervals of p50 and p99 (``summary.json`` ``latency_ci_ms``): how far
    a measured percentile could be off by chance, beside how far a prediction is."""
    try:
        ci = rundir.read_json(step_dir / rundir.SUMMARY).get("latency_ci_ms")
    except LoadbenchError:
        return None
    return {k: ci.get(k) for k in ("p50", "p99")} if isinstance(ci, dict) else None


def _own_service_ms(step_dir: Path, fit: Fit) -> float | None:
    """The step's own mean service time, by the fit's method; None when it cannot be read."""
    if fit.source != "server":
        return None  # a latency-based one holds the step's own queueing: no measure of the server
    try:
        return round(fit_run(step_dir).mean_service_ms, 3)
    except LoadbenchError:
        return None


def _drift_notes(steps: Sequence[dict[str, Any]], fit: Fit) -> list[str]:
    """One note per step whose server was not the one fitted: its own service time moved."""
    notes = []
    for step in steps:
        own = step.get("service_mean_ms")
        if own is None or step["fit"] or abs(own / fit.mean_service_ms - 1.0) <= DRIFT:
            continue
        notes.append(
            f"step {step['index']}: the server's own mean service time was {own:.3f} ms against the fit's "
            f"{fit.mean_service_ms:.3f} ms ({own / fit.mean_service_ms - 1.0:+.0%}): the server itself changed "
            "with the load (its machine busier, caching, batching), which a queueing model fitted at low load "
            "cannot know"
        )
    return notes


def _step(
    row: dict[str, Any], fit: Fit, servers: int, mode: str, options: Options, step_dir: Path
) -> dict[str, Any]:
    rate = float(row["offered"]) if mode == "rate" else float(row.get("achieved_rps") or 0.0)
    out: dict[str, Any] = {
        "index": row.get("index"),
        "offered": row.get("offered"),
        "rate_rps": round(rate, 3),
        "fit": step_dir.name == Path(fit.run_dir).name,
        "measured_ms": {"p50": row.get("p50_ms"), "p99": row.get("p99_ms")},
        "measured_ci_ms": _measured_ci(step_dir),
        "service_mean_ms": _own_service_ms(step_dir, fit),
        "predicted": [],
    }
    if rate <= 0:
        return out
    for method in options.methods:
        entry = predict_one(fit, rate, servers, method, options)
        out["utilisation"] = entry["utilisation"]
        latency = entry["latency_ms"] or {}
        errors = {k: _error(latency.get(k), row.get(f"{k}_ms")) for k in ("p50", "p99")}
        holds = all(e is not None and abs(e) <= HOLDS for e in errors.values())
        out["predicted"].append(
            {
                "method": method,
                "stable": entry["stable"],
                "latency_ms": entry["latency_ms"],
                "ci_ms": entry["ci_ms"],
                "error": errors,
                "holds": holds,
            }
        )
    return out


def _method_note(method: str, steps: Sequence[dict[str, Any]]) -> str:
    """Up to which utilisation one method held, and where and by how much it first missed."""
    ordered = sorted(
        (
            (s.get("utilisation") or 0.0, s["index"], p)
            for s in steps
            for p in s["predicted"]
            if p["method"] == method
        ),
        key=lambda t: t[0],
    )
    first_miss = next(((u, i, p) for u, i, p in ordered if not p["holds"]), None)
    if first_miss is None:
        return f"{method} held at every step (up to utilisation {ordered[-1][0]:.0%})" if ordered else method
    held = [u for u, _, p in ordered if p["holds"] and u < first_miss[0]]
    upto = f"held up to utilisation {max(held):.0%}, " if held else ""
    worst = max(
        (k for k in ("p50", "p99") if first_miss[2]["error"][k] is not None),
        key=lambda k: abs(first_miss[2]["error"][k]),
        default="p50",
    )
    error = first_miss[2]["error"][worst]
    by = f"{worst} {error * 100:+.1f} %" if error is not None else "unstable"
    return f"{method} {upto}missed from {first_miss[0]:.0%} (step {first_miss[1]}: {by})"


def _summary_note(steps: Sequence[dict[str, Any]], methods: Sequence[str]) -> str:
    """Per method, up to which utilisation its predictions held within `HOLDS`, in words."""
    notes = "; ".join(_method_note(m, steps) for m in methods)
    if all(p["holds"] for s in steps for p in s["predicted"]):
        return f"every prediction held within {HOLDS:.0%} of the measured p50 and p99: {notes}"
    return (
        f"within {HOLDS:.0%} of the measured p50 and p99: {notes}. Near saturation a queue is most "
        "sensitive to the service time's tail and to a measured percentile's own noise (see its interval); "
        "a server that batches, caches, or shares its CPU with the generator is no longer the FIFO queue "
        "the model assumes"
    )


def measured_steps(sweep: dict[str, Any]) -> list[dict[str, Any]]:
    """A sweep's steps that measured a latency, with their run directories."""
    return [r for r in sweep.get("steps") or [] if r.get("run_dir") and r.get("p50_ms") is not None]


def lowest_step(rows: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The step a sweep's what-if fits on: the lowest offered load of ``rows``."""
    return min(rows, key=lambda r: float(r["offered"])) if rows else None


def validate_sweep(
    sweep_dir: Path, sweep: dict[str, Any], servers: int | None, options: Options
) -> dict[str, Any]:
    """The ``whatif`` object of ``sweep.json``; ``predicted`` false with the reason when it cannot be."""
    mode = str(sweep.get("settings", {}).get("mode") or "rate")
    rows = measured_steps(sweep)
    lowest = lowest_step(rows)
    if lowest is None:
        return {"predicted": False, "why": "no step measured a latency"}
    try:
        fit = fit_run(sweep_dir / str(lowest["run_dir"]))
    except LoadbenchError as exc:
        return {"predicted": False, "why": f"cannot fit the lowest-load step: {exc}"}
    how = "given (--servers)"
    if servers is None:
        servers, how = estimate_servers(fit, rows, mode)
        if servers is None:
            return {"predicted": False, "why": how}
    if fit.arrival not in (None, "poisson") and options.arrivals == "poisson":
        # The steps' own schedule (constant, gamma, a trace) is what they measured: predict with it.
        options = replace(options, arrivals="measured")
    fit = replay_queue(fit, servers)
    steps = [
        _step(r, fit, servers, mode, options, sweep_dir / str(r["run_dir"]))
        for r in sorted(rows, key=lambda r: float(r["offered"]))
    ]
    notes = [*fit.notes, *_drift_notes(steps, fit)]
    queued = fit.queueing_note(servers)
    if queued:
        notes.append(queued)
    if mode == "users":
        notes.append(
            "a closed loop (users) keeps at most its users in flight, which an open queue does not model: "
            "steps predicted at their measured throughput with Poisson arrivals; predictions overstate the tail"
        )
    return {
        "predicted": True,
        "fit_step": lowest.get("index"),
        "servers": servers,
        "servers_how": how,
        "service": {
            "source": fit.source,
            "method": fit.method,
            "mean_ms": round(fit.mean_service_ms, 3),
            "requests": fit.requests,
        },
        "methods": list(options.methods),
        "arrivals": options.arrivals
        if fit.arrival is None
        else f"{options.arrivals} (the steps sent {fit.arrival})",
        "holds_within": HOLDS,
        "steps": steps,
        "verdict": _summary_note(steps, options.methods),
        "notes": notes,
    }
