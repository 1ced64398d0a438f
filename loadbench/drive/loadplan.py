"""How a run offers its load: closed or open loop, rate, arrivals, trace, shape, SLOs.

`plan_load` turns a `RunConfig` into a checked `LoadPlan` (every bad value -> `UsageError`,
before anything is written); the runner executes it and ``meta.json`` records it under
``settings.load`` / ``settings.stages`` / ``settings.slos``. Pure: no Locust here.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from loadbench.analyze import slo
from loadbench.drive.config import RunConfig
from loadbench.errors import UsageError
from loadbench.load import arrivals, shapes

MAX_INFLIGHT_LIMIT = 100_000


@dataclass
class LoadPlan:
    model: str  # "closed" | "open"
    duration_s: float
    stages: list[shapes.Stage] = field(default_factory=list)
    trace: list[arrivals.Arrival] | None = None
    seed: int = 0
    notes: list[str] = field(default_factory=list)

    def offsets(self, config: RunConfig) -> Iterator[float] | Iterator[arrivals.Arrival]:
        """Due times (s after the load start) of an open-loop run; a trace's rows for a trace."""
        if self.trace is not None:
            return (a for a in self.trace if a.offset_s < self.duration_s)
        rate: Callable[[float], float | None]
        if self.stages:
            rate = shapes.rate_function(self.stages)
        else:
            rate = arrivals.constant_rate(float(config.rate or 0.0))
        return arrivals.arrival_offsets(rate, config.arrival, self.seed, config.burstiness, self.duration_s)

    def settings(self, config: RunConfig) -> dict[str, Any]:
        """``settings.load`` of meta.json."""
        if self.model == "closed":
            return {"model": "closed", "users": config.users}
        out: dict[str, Any] = {
            "model": "open",
            "rate": None if (self.trace is not None or self.stages) else config.rate,
            "arrival": "trace" if self.trace is not None else config.arrival,
            "seed": self.seed,
            "max_inflight": config.max_inflight,
        }
        if config.arrival == "gamma" and self.trace is None:
            out["burstiness"] = config.burstiness
        if self.trace is not None and config.trace is not None:
            out["trace"] = {
                "file": config.trace.name,
                "requests": len(self.trace),
                "scale": config.trace_scale,
            }
        return out


def plan_load(config: RunConfig) -> LoadPlan:
    """Check the load options of ``config`` and plan the run; `UsageError` on bad input."""
    slo.parse_slos(config.slos)  # bad SLOs fail before anything runs
    # A stages file whose stages give a rate is open loop by itself: no --rate needed.
    open_loop = (
        config.rate is not None
        or config.trace is not None
        or (
            config.stages_file is not None
            and not config.shape
            and shapes.stages_unit(config.stages_file) == "rate"
        )
    )
    if config.rate is not None and not 0 < config.rate < math.inf:
        raise UsageError(f"--rate must be above 0 requests/s, not {config.rate:g}")
    if open_loop:
        arrivals.check_arrival(config.arrival, config.burstiness)
        if not 1 <= config.max_inflight <= MAX_INFLIGHT_LIMIT:
            raise UsageError(f"--max-inflight must be between 1 and {MAX_INFLIGHT_LIMIT:,}")
    if config.shape and config.stages_file:
        raise UsageError("give a load shape with --shape or --stages, not both")
    if config.trace is not None and (config.shape or config.stages_file):
        raise UsageError("--trace sets its own schedule: it does not combine with --shape or --stages")
    unit = "rate" if open_loop else "users"
    stages: list[shapes.Stage] = []
    if config.shape:
        stages = shapes.parse_shape(config.shape, unit=unit)
    elif config.stages_file is not None:
        stages = shapes.read_stages(config.stages_file, unit=unit)
    seed = config.seed if config.seed is not None else secrets.randbelow(2**31)
    plan = LoadPlan("open" if open_loop else "closed", config.duration_s, stages, seed=seed)
    if stages:
        plan.duration_s = shapes.total_duration_s(stages)
        plan.notes.append(f"the load shape sets the duration: {plan.duration_s:g} s")
    if config.trace is not None:
        plan.trace = arrivals.read_trace(config.trace, config.trace_scale)
        plan.duration_s = plan.trace[-1].offset_s + 0.001
        plan.notes.append(
            f"the trace sets the duration: {len(plan.trace):,} requests over {plan.duration_s:.1f} s"
        )
    if plan.duration_s <= 0:
        raise UsageError("--duration must be longer than 0 s")
    if config.warmup_s >= plan.duration_s:
        raise UsageError(
            f"--warmup ({config.warmup_s:g} s) must be shorter than the run ({plan.duration_s:g} s)"
        )
    return plan
