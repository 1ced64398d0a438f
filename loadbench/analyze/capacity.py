"""Sweep arithmetic: step summaries -> step rows, the saturation knee, capacity, per-GPU capacity
and cost, and the capacity search. Pure: no I/O, no Locust. Definitions: ``docs/metrics.md``
(Sweeps and capacity).

A sweep step is one ordinary run at one offered load: an open-loop rate in requests/s (mode
``rate``) or a number of closed-loop users (mode ``users``). `step_row` reduces its
``summary.json`` to the figures a sweep needs; the rest works on those rows:

- a step **passed** when it finished (status ``complete``), met every SLO, was valid
  (``validity.valid`` not false) and, in rate mode, achieved at least `ACHIEVED_SHARE` (95 %)
  of its offered rate as successful requests per second;
- a step **cannot be judged** (``verdict`` ``cannot judge``, neither passed nor failed) when
  its only shortcoming is an SLO-gated percentile resting on too few requests
  (`loadbench.analyze.trust.required_requests`) and that percentile's confidence interval does
  not settle the gate either; `step_duration` is how long a step must run for the gates;
- **capacity** is the highest offered load of a passed step (`find_capacity`);
- the **knee** is the first step, in order of load, where the server stops keeping up
  (`find_knee`);
- **capacity per GPU** and **cost per million requests** follow from the capacity step's
  GPU count (`cost_figures`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from loadbench.analyze.resources import gpu_count
from loadbench.analyze.slo import Slo, evaluate
from loadbench.analyze.stats import PERCENTILES, value_at
from loadbench.analyze.trust import required_requests
from loadbench.record import rundir

ACHIEVED_SHARE = 0.95  # rate mode: a step keeps up when throughput >= 95 % of the offered rate
# The knee: median latency above twice the lowest-load step's. The median, not p99: a short
# step's p99 rests on a handful of requests and doubles by chance; queueing moves the median.
KNEE_P50_FACTOR = 2.0
KNEE_GROWTH = 1.05  # users mode: more users that add less than 5 % throughput
MODES = ("rate", "users")
# A lengthened step plans 10 % more requests than its gates need: a few errors, or a rate a
# little under the offered one, must not leave it one request short again.
STEP_MARGIN = 1.1
PASS, FAIL, UNJUDGED = "pass", "fail", "cannot judge"
# How `loadbench.analyze.trust` words a gated percentile resting on too few values.
_THIN_PREFIX = "an SLO gates on "
# Step-summary figures copied into sweep.json: row key -> summary path. LLM keys only when present.
FIGURES: dict[str, str] = {
    "throughput_rps": "throughput_rps",
    "request_rate_rps": "request_rate_rps",
    "error_rate": "requests.error_rate",
    "requests": "requests.total",
    "p50_ms": "latency_ms.p50",
    "p90_ms": "latency_ms.p90",
    "p99_ms": "latency_ms.p99",
    "service_p50_ms": "service_time_ms.p50",
    "service_p99_ms": "service_time_ms.p99",
    "achieved_send_rps": "schedule.achieved_send_rps",
    "late_requests": "schedule.late_requests",
    "ttft_p50_ms": "ttft_ms.p50",
    "ttft_p99_ms": "ttft_ms.p99",
    "tpot_p50_ms": "tpot_ms.p50",
    "tpot_p99_ms": "tpot_ms.p99",
    "goodput_rps": "goodput_rps",
}
# Figures only some runs have (open loop, LLM scenarios): left out of a row rather than null.
_OPTIONAL = frozenset(
    {"service_p50_ms", "service_p99_ms", "achieved_send_rps", "late_requests", "goodput_rps"}
    | {"ttft_p50_ms", "ttft_p99_ms", "tpot_p50_ms", "tpot_p99_ms"}
)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def step_row(
    index: int,
    mode: str,
    load: float,
    summary: dict[str, Any] | None,
    slos: Sequence[Slo],
    achieved_rps: float | None = None,
) -> dict[str, Any]:
    """One sweep step: its load, key figures, SLO checks, validity and whether it passed.

    ``summary`` None means the step left no summary (it failed before measuring): not passed.
    ``achieved_rps`` is `loadbench.sweep.sweep.achieved_rps` of the step's records; None falls back to the
    summary's ``throughput_rps``.
    """
    row: dict[str, Any] = {"index": index, "offered": load, "unit": "rps" if mode == "rate" else "users"}
    if summary is None:
        missing = ["the step wrote no summary.json"]
        return row | {"status": "no summary", "verdict": FAIL, "passed": False, "why": missing}
    status = str(value_at(summary, "run.status") or rundir.STATUS_RUNNING)
    row["status"] = status
    for key, path in FIGURES.items():
        value = _number(value_at(summary, path))
        if value is not None or key not in _OPTIONAL:
            row[key] = value
    row["gpus"] = gpu_count(summary)
    slo = evaluate(slos, summary)
    validity = summary.get("validity")
    validity = validity if isinstance(validity, dict) else {}
    row["slo_passed"] = slo["passed"]
    row["slo_checks"] = slo["checks"]
    row["valid"] = validity.get("valid") is not False
    row["validity_reasons"] = [str(r) for r in validity.get("reasons") or []]
    tput = row["achieved_rps"] = achieved_rps if achieved_rps is not None else row["throughput_rps"]
    row["achieved_ratio"] = (
        round(tput / load, 4) if mode == "rate" and tput is not None and load > 0 else None
    )

    thin = [r for r in row["validity_reasons"] if r.startswith(_THIN_PREFIX)]
    why: list[str] = []
    if status != rundir.STATUS_COMPLETE:
        why.append(f"the step is {status}")
    unjudged: list[str] = [f"cannot judge: {r.removeprefix('an ')}" for r in thin]
    for check in slo["checks"]:
        if check["passed"]:
            continue
        if _rests_on_too_few(check, thin) and not _surely_failed(check, summary):
            unjudged.append(f"cannot judge SLO {check['expr']}: {_check_value(check)} on too few requests")
        else:
            why.append(f"SLO {check['expr']} failed: {_check_value(check)}")
    invalid = [r for r in row["validity_reasons"] if r not in thin]
    if not row["valid"] and (invalid or not thin):
        why.append("invalid run: " + ("; ".join(invalid) or "see its report"))
    if mode == "rate" and (row["achieved_ratio"] is None or row["achieved_ratio"] < ACHIEVED_SHARE):
        why.append(f"achieved {_pct(row['achieved_ratio'])} of the offered rate (needs {ACHIEVED_SHARE:.0%})")
    # A real failure decides the step; too few requests for a gate, alone, decides nothing.
    row["verdict"] = FAIL if why else (UNJUDGED if unjudged else PASS)
    row["passed"] = row["verdict"] == PASS
    row["why"] = why or unjudged
    return row


def _thin_names(thin: Sequence[str]) -> set[str]:
    """The gated names (``p99``, ``ttft_ms.p99``) that trust's thin-gate reasons name."""
    return {r.removeprefix(_THIN_PREFIX).split(",", 1)[0] for r in thin}


def _rests_on_too_few(check: dict[str, Any], thin: Sequence[str]) -> bool:
    """Whether a failed check's percentile rests on too few values (a measured value only:
    a percentile that was not measured at all, with no successful request, is a failure)."""
    path = str(check["path"])
    names = _thin_names(thin)
    key = path.rsplit(".", 1)[-1]
    latency = path.startswith("latency_ms.") and key in names
    return check["value"] is not None and (path in names or latency)


def _surely_failed(check: dict[str, Any], summary: dict[str, Any]) -> bool:
    """A thin latency percentile whose whole 95 % interval lies on the failing side of the gate:
    failed, however few the requests (300 requests with 8 above 20 ms fail 'p99<20ms')."""
    path = str(check["path"])
    if not path.startswith("latency_ms."):
        return False
    ci = value_at(summary, "latency_ci_ms." + path.removeprefix("latency_ms."))
    if not isinstance(ci, list) or len(ci) != 2 or not all(_number(x) is not None for x in ci):
        return False
    lo, hi, threshold = float(ci[0]), float(ci[1]), float(check["threshold"])
    return {
        "<": lo >= threshold,
        "<=": lo > threshold,
        ">": hi <= threshold,
        ">=": hi < threshold,
    }.get(str(check["op"]), False)


def gated_requests(slos: Sequence[Slo]) -> int:
    """Successful requests a step needs so that every SLO-gated percentile can be judged
    (`loadbench.analyze.trust.required_requests`: p99 needs 1,000, p90 100); 0 without one."""
    keys = [s.path.rsplit(".", 1)[-1] for s in slos if not s.per_request]
    return max((required_requests(k) for k in keys if k in PERCENTILES), default=0)


def step_duration(duration_s: float, warmup_s: float, rps: float | None, needed: int) -> float:
    """How long a step runs: ``duration_s``, or longer when ``needed`` successful requests at
    ``rps`` (the offered rate, or an estimate of the throughput) do not fit in its measured
    window; whole seconds, with `STEP_MARGIN` to spare."""
    if not needed or not rps or rps <= 0:
        return duration_s
    return max(duration_s, warmup_s + math.ceil(needed * STEP_MARGIN / rps))


def _check_value(check: dict[str, Any]) -> str:
    """A failed check's measured value in its unit: ``p99 = 36.3 ms``, ``p99 not measured``."""
    if check["value"] is None:
        return f"{check['metric']} {check.get('note') or 'not measured'}"
    value = float(check["value"])
    shown = {
        "ms": f"{value:,.4g} ms",
        "fraction": f"{value * 100:.3g} %",
        "rps": f"{value:,.4g} req/s",
        "percent": f"{value:.3g} %",
    }.get(check["unit"], f"{value:,.4g}")
    return f"{check['metric']} = {shown}"


def load_text(load: float, mode: str) -> str:
    """``12.5 rps`` / ``1 user`` / ``8 users``."""
    if mode == "rate":
        return f"{load:g} rps"
    return f"{load:g} user" + ("" if load == 1 else "s")


def _pct(ratio: float | None) -> str:
    return "nothing" if ratio is None else f"{ratio:.0%}"


def _measured(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows of complete steps, in order of offered load (a search visits loads out of order).

    An interrupted or killed step measured only part of its load: it neither passes nor marks
    the knee."""
    done = (r for r in rows if r.get("status") == rundir.STATUS_COMPLETE and "throughput_rps" in r)
    return sorted(done, key=lambda r: (r["offered"], r["index"]))


def find_knee(rows: Sequence[dict[str, Any]], mode: str) -> dict[str, Any] | None:
    """The saturation knee: the first step, by increasing load, where the server stops keeping up.

    Rate mode: achieved throughput below 95 % of the offered rate, or p50 above twice the p50 of
    the lowest-load step. Users mode (no offered rate): p50 above twice the lowest-load step's, or
    throughput less than 5 % above the previous (lower-load) step's. None when no step qualifies.
    """
    steps = _measured(rows)
    if not steps:
        return None
    base_p50 = steps[0].get("p50_ms")
    previous: dict[str, Any] | None = None
    for step in steps:
        reasons: list[str] = []
        tput, p50 = step.get("achieved_rps"), step.get("p50_ms")
        if mode == "rate" and (tput is None or tput < ACHIEVED_SHARE * step["offered"]):
            reasons.append(
                f"throughput {_fmt(tput)} req/s is below 95% of the offered {_fmt(step['offered'])}"
            )
        if base_p50 and p50 is not None and p50 > KNEE_P50_FACTOR * base_p50:
            reasons.append(f"p50 {_fmt(p50)} ms is above 2x the lowest load's {_fmt(base_p50)} ms")
        if (
            mode == "users"
            and previous is not None
            and previous.get("achieved_rps")
            and (tput is None or tput < KNEE_GROWTH * previous["achieved_rps"])
        ):
            reasons.append(
                f"throughput {_fmt(tput)} req/s grew less than 5% over {_fmt(previous['offered'])} users'"
            )
        if reasons:
            return {"step": step["index"], "offered": step["offered"], "reasons": reasons}
        previous = step
    return None


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:,.4g}"


def find_capacity(rows: Sequence[dict[str, Any]], mode: str) -> dict[str, Any] | None:
    """Capacity: the passed step with the highest offered load, or None when no step passed.

    ``rps`` is the capacity in requests per second: the offered rate in rate mode, the step's
    achieved throughput in users mode (closed loop offers users, not a rate).
    """
    passed = [r for r in _measured(rows) if r["passed"]]
    if not passed:
        return None
    best = passed[-1]
    rps = best["offered"] if mode == "rate" else best.get("achieved_rps")
    return {
        "step": best["index"],
        "offered": best["offered"],
        "unit": best["unit"],
        "rps": rps,
        "achieved_rps": best.get("achieved_rps"),
        "p99_ms": best.get("p99_ms"),
    }


def capacity_notes(rows: Sequence[dict[str, Any]], capacity: dict[str, Any] | None) -> list[str]:
    """Warnings about the capacity figure: a failed step below it (noise, or a bursty server)."""
    if capacity is None:
        return []
    below = [
        r for r in _measured(rows) if r.get("verdict", FAIL) == FAIL and r["offered"] < capacity["offered"]
    ]
    if not below:
        return []
    loads = ", ".join(_fmt(r["offered"]) for r in below)
    return [
        f"steps below the capacity failed ({loads} {capacity['unit']}): the results are not monotonic; "
        "longer steps or repeated sweeps give a steadier figure"
    ]


def cost_figures(capacity: dict[str, Any] | None, gpus: int, gpu_hour_cost: float | None) -> dict[str, Any]:
    """Capacity per GPU and cost per million requests at capacity, each with a note when n/a.

    cost per 1M requests = gpu_hour_cost × GPUs / (capacity_rps × 3600) × 1e6.
    """
    rps = capacity.get("rps") if capacity else None
    out: dict[str, Any] = {
        "gpus": gpus,
        "capacity_per_gpu_rps": None,
        "gpu_hour_cost_usd": gpu_hour_cost,
        "cost_per_million_requests_usd": None,
        "cost_note": None,
    }
    if not rps:
        out["cost_note"] = "n/a: no capacity (no step passed)"
        return out
    if gpus <= 0:
        out["cost_note"] = "n/a: no GPU samples"
        return out
    out["capacity_per_gpu_rps"] = round(rps / gpus, 3)
    if gpu_hour_cost is None:
        out["cost_note"] = "n/a: no --gpu-hour-cost given"
        return out
    out["cost_per_million_requests_usd"] = round(gpu_hour_cost * gpus / (rps * 3600.0) * 1e6, 4)
    return out


def analyze_sweep(rows: Sequence[dict[str, Any]], mode: str, gpu_hour_cost: float | None) -> dict[str, Any]:
    """The sweep-level figures of ``sweep.json``: knee, capacity, per-GPU capacity, cost, notes."""
    knee = find_knee(rows, mode)
    capacity = find_capacity(rows, mode)
    gpus = 0
    if capacity is not None:
        gpus = next((r.get("gpus", 0) for r in rows if r["index"] == capacity["step"]), 0)
    return {
        "knee": knee,
        "capacity": capacity,
        **cost_figures(capacity, gpus, gpu_hour_cost),
        "notes": capacity_notes(rows, capacity),
    }


@dataclass
class CapacitySearch:
    """`--find-capacity`: double the load from ``start`` until a step fails, then bisect between
    the last pass and the first fail until hi / lo <= 1 + ``resolution``; at most ``max_steps``.
    ``growth``: the factor in place of doubling, for a search that starts near the capacity
    (`sweep --replicas` starts each count at its linear ideal, which few fleets beat by much).

    When the very first step fails, the load is halved until one passes (rate mode) or the search
    ends (users mode cannot go below 1). Users are whole numbers, so users mode also ends when no
    whole number lies strictly between the last pass and the first fail.

    A step that could not be judged (``record(load, None)``: too few requests for a gated
    percentile, even lengthened) is neither: the search ends there (``unjudged``) rather than
    read it as a failure and halve its way to nothing.
    """

    mode: str
    start: float
    resolution: float = 0.1
    max_steps: int = 12
    lo: float | None = None  # highest load that passed
    hi: float | None = None  # lowest load that failed
    steps: int = 0
    unjudged: float | None = None  # a load whose step could not be judged: the search ended there
    growth: float = 2.0

    def next_load(self) -> float | None:
        """The load of the next step, or None when the search is done."""
        if self.steps >= self.max_steps or self.unjudged is not None:
            return None
        lo, hi = self.lo, self.hi
        if lo is None and hi is None:
            load = self.start
        elif hi is None:
            assert lo is not None
            load = lo * self.growth
        elif lo is None:
            load = hi / 2
            if self.mode == "users" and hi <= 1:
                return None
        else:
            if hi / lo <= 1 + self.resolution:
                return None
            load = (lo + hi) / 2
        if self.mode == "users":
            load = float(math.floor(load)) if hi is not None else float(math.ceil(load))
            if (lo is not None and load <= lo) or (hi is not None and load >= hi) or load < 1:
                return None
        else:
            load = float(f"{load:.4g}")  # readable step names: 12.5 rps, not 12.500000001
        return load

    def record(self, load: float, passed: bool | None) -> None:
        """Record a step's outcome: passed, failed, or None when it could not be judged."""
        self.steps += 1
        if passed is None:
            self.unjudged = load
        elif passed:
            self.lo = load if self.lo is None else max(self.lo, load)
        else:
            self.hi = load if self.hi is None else min(self.hi, load)
