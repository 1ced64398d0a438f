"""``loadbench whatif``: from a run (or a sweep) directory, the latency at other arrival rates and
numbers of servers, by queueing theory and by simulation, with the capacity plan under an SLO.

Consumes a run directory (`loadbench.whatif.fit`), or a sweep directory, which is fitted on its
lowest-load step and also validated against every step (`loadbench.whatif.validate`). Produces
the ``whatif.json`` object (``docs/whatif.md``); `write_whatif` writes it with ``whatif.md`` and
``whatif.png``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from loadbench.analyze.slo import Slo
from loadbench.errors import UsageError
from loadbench.record import rundir
from loadbench.whatif import render
from loadbench.whatif.fit import Fit, fit_run, replay_queue
from loadbench.whatif.predict import ASSUMPTIONS, Options, check_slo, plan, predictions
from loadbench.whatif.validate import estimate_servers, lowest_step, measured_steps, validate_sweep

SCHEMA = 1
SWEEP_FILE = "sweep.json"
# Without --rate: these utilisations of the first number of servers, and the measured rate.
DEFAULT_UTILISATIONS = (0.3, 0.5, 0.7, 0.85, 0.95)


@dataclass(frozen=True)
class WhatifRequest:
    """One `loadbench whatif` as the command line gave it."""

    rates: tuple[float, ...] = ()
    servers: tuple[int, ...] = ()
    slo: Slo | None = None
    overhead_ms: float | None = None
    fit_servers: int | None = None  # the measured server's concurrency; None: the first of servers
    options: Options = field(default_factory=Options)


def _sweep(path: Path) -> dict[str, Any] | None:
    return rundir.read_json(path / SWEEP_FILE) if (path / SWEEP_FILE).is_file() else None


def _fit_section(fit: Fit) -> dict[str, Any]:
    s = fit.service_ms
    mean = float(np.mean(s))
    return {
        "run_dir": fit.run_dir,
        "source": fit.source,
        "method": fit.method,
        "requests": fit.requests,
        "mean_service_ms": round(mean, 3),
        "p50_service_ms": round(float(np.quantile(s, 0.5)), 3),
        "p99_service_ms": round(float(np.quantile(s, 0.99)), 3),
        "service_scv": round(float(np.var(s)) / (mean * mean), 4) if mean > 0 else None,
        "mean_overhead_ms": round(float(np.mean(fit.overhead_ms)), 3),
        "arrival_scv": round(fit.arrival_scv, 4),
        "throughput_rps": round(fit.throughput_rps, 3),
        "load_model": fit.load_model,
        "users": fit.users,
    }


def _measured_points(fit: Fit, sweep: dict[str, Any] | None) -> list[dict[str, Any]]:
    if sweep is None:
        lat = fit.latency_ms
        return [
            {
                "rate_rps": round(fit.throughput_rps, 3),
                "p50": round(float(np.quantile(lat, 0.5)), 3),
                "p99": round(float(np.quantile(lat, 0.99)), 3),
                "source": "the run",
            }
        ]
    rate_mode = sweep.get("settings", {}).get("mode") == "rate"
    return [
        {
            "rate_rps": r["offered"] if rate_mode else r.get("achieved_rps"),
            "p50": r["p50_ms"],
            "p99": r.get("p99_ms"),
            "source": f"step {r.get('index')}",
        }
        for r in sweep.get("steps") or []
        if r.get("p50_ms") is not None and r.get("p99_ms") is not None
    ]


def _check(request: WhatifRequest) -> None:
    if any(c < 1 for c in request.servers) or (request.fit_servers is not None and request.fit_servers < 1):
        raise UsageError("--servers must be 1 or more: a queue needs at least one server")
    if any(not r > 0 for r in request.rates):
        raise UsageError("--rate must be more than 0 requests/s")
    if request.slo is not None:
        check_slo(request.slo)


def _servers(request: WhatifRequest, fit: Fit, sweep: dict[str, Any] | None) -> tuple[list[int], str]:
    if request.servers:
        return list(request.servers), "given (--servers)"
    if sweep is not None:
        mode = str(sweep.get("settings", {}).get("mode") or "rate")
        rows = [r for r in sweep.get("steps") or [] if r.get("run_dir")]
        servers, how = estimate_servers(fit, rows, mode)
        if servers is not None:
            return [servers], how
        raise UsageError(f"the sweep cannot tell the server's concurrency ({how})")
    raise UsageError(
        "give --servers C, how many requests the server processes at once (a model server's workers or "
        "instances), or a sweep directory that saturated it, to measure it from"
    )


def _rates(request: WhatifRequest, fit: Fit, servers: list[int]) -> list[float]:
    if request.rates:
        return list(request.rates)
    full = servers[0] * 1000.0 / fit.mean_service_ms
    return sorted({round(full * u, 2) for u in DEFAULT_UTILISATIONS})


def _fit_dir(path: Path, sweep: dict[str, Any] | None) -> Path:
    if sweep is None:
        return path
    lowest = lowest_step(measured_steps(sweep))
    if lowest is None:
        raise UsageError(f"{path} is a sweep with no measured step to fit on")
    return path / str(lowest["run_dir"])


def run_whatif(path: Path, request: WhatifRequest) -> tuple[dict[str, Any], Fit]:
    """The ``whatif.json`` object and the fit it rests on; `UsageError` (one line) for what
    cannot be predicted."""
    _check(request)
    sweep = _sweep(path)
    if sweep is None:
        rundir.check_run_dir(path)
    fit = fit_run(_fit_dir(path, sweep), request.overhead_ms)
    servers, servers_how = _servers(request, fit, sweep)
    fit = replay_queue(fit, request.fit_servers or servers[0])
    rates = _rates(request, fit, servers)
    options = request.options
    notes = list(fit.notes)
    for c in servers:
        note = fit.queueing_note(c)
        if note:
            notes.append(note)
    result: dict[str, Any] = {
        "schema": SCHEMA,
        "kind": "whatif",
        "fit": _fit_section(fit),
        "servers": servers,
        "servers_how": servers_how,
        "arrivals": options.arrivals,
        "predictions": predictions(fit, rates, servers, options),
        "plan": plan(fit, rates, servers, request.slo, options) if request.slo else None,
        "validation": validate_sweep(path, sweep, servers[0], options) if sweep is not None else None,
        "measured": _measured_points(fit, sweep),
        "assumptions": [
            f"service time: {fit.method}",
            "arrivals: Poisson"
            if options.arrivals == "poisson"
            else f"arrivals: the run's inter-arrival gaps (squared CV {fit.arrival_scv:.2f}), scaled to each rate",
            *(f"{m}: {ASSUMPTIONS[m]}" for m in options.methods),
            "real-time ratio = processing time (the mean service time) / request time (mean latency minus it)",
        ],
        "notes": notes,
    }
    unstable = [e for e in result["predictions"] if not e["stable"]]
    if unstable and len(unstable) == len(result["predictions"]):
        e = unstable[0]
        raise UsageError(
            f"every rate asked for is unstable: {e['rate_rps']:g} req/s on {e['servers']} server(s) is "
            f"utilisation {e['utilisation']:.2f} >= 1, no steady state (capacity "
            f"{e['servers'] * 1000.0 / fit.mean_service_ms:.1f} req/s)"
        )
    return result, fit


def write_whatif(out_dir: Path, result: dict[str, Any], fit: Fit, request: WhatifRequest) -> list[Path]:
    """``whatif.json``, ``whatif.md`` and ``whatif.png`` into ``out_dir``; their paths."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        json_path, md_path, png_path = out_dir / "whatif.json", out_dir / "whatif.md", out_dir / "whatif.png"
        rundir.write_json(json_path, result)
        md_path.write_text(render.whatif_markdown(result), encoding="utf-8")
        slo_ms = request.slo.threshold if request.slo else None
        png_path.write_bytes(render.whatif_plot(fit, result, result["servers"], request.options, slo_ms))
    except OSError as exc:
        raise UsageError(f"cannot write the what-if into {out_dir}: {exc.strerror or exc}") from None
    return [json_path, md_path, png_path]
