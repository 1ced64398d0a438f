"""SLO gates: ``--slo 'p99<300ms'`` expressions, parsed and checked against a ``summary.json``.

Consumes the text a user types (`parse_slo`) and an analyzed summary (`evaluate`); produces
`Slo` objects and the ``summary["slo"]`` dict. Pure: no I/O, no Locust.

Grammar: ``METRIC OP VALUE[UNIT]``, spaces allowed, OP one of ``<`` ``<=`` ``>`` ``>=``; the
gate passes when ``summary value OP VALUE`` holds. METRIC is an alias (`ALIASES`: ``p99``,
``service_p99``, ``error_rate``, ``throughput``, ``ttft_p95`` …) or any dotted path into
``summary.json`` (``latency_ms.p999``, ``resources.gpus.0.util_mean``). The unit must fit the
metric, and the threshold is stored in the summary's own unit:

- times (a path segment ending in ``_ms``): ``ms`` (or bare), ``s``, ``us`` / ``µs``;
- fractions (``*error_rate``, ``*_fraction``, ``*_share``, ``quality.*``): bare is a fraction,
  ``%`` a percentage (``1%`` = 0.01);
- rates (``*_rps``): bare, ``rps``, ``req/s`` or ``/s``;
- percentages (a segment ending in ``_percent``, GPU ``util_*``): bare or ``%``;
- anything else: a bare number in the summary's unit.

A metric the summary does not hold (``null`` or absent: no successful request, no GPU, an LLM
key on a plain JSON run) fails its check with the note "not measured": an SLO that cannot be
shown to hold has not been met.

Per-request SLOs: a bare ``ttft``, ``tpot``, ``itl``, ``e2e`` or ``latency`` (`PER_REQUEST`)
with ``<`` or ``<=`` and a time, e.g. ``ttft<500ms``, is a bound every single request must
meet (``Slo.per_request``). `loadbench.analyze.llm_metrics` counts the requests meeting all of them:
``summary["goodput_rps"]`` (DistServe's goodput) and ``summary["goodput"]``. Its check in
``summary["slo"]`` reports the share of requests meeting it (``value``, a fraction) and never
fails the gate by itself: gate on ``goodput>N`` for that.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypedDict

from loadbench.analyze.stats import LATENCY_KEYS, value_at
from loadbench.errors import UsageError

_STATS = LATENCY_KEYS  # p50 p90 p95 p99 p999 max mean min
ALIASES: dict[str, str] = {
    **{k: f"latency_ms.{k}" for k in _STATS},
    **{f"service_{k}": f"service_time_ms.{k}" for k in _STATS},
    **{f"{p}_{k}": f"{p}_ms.{k}" for p in ("ttft", "tpot", "itl", "e2e") for k in _STATS},
    "error_rate": "requests.error_rate",
    "throughput": "throughput_rps",
    "request_rate": "request_rate_rps",
    "goodput": "goodput_rps",
    "lateness_p99": "schedule.lateness_ms.p99",
    "gpu_util": "resources.gpus.0.util_mean",
    "server_cpu": "resources.server_process.cpu_percent.mean",
}
_CANONICAL = {path: name for name, path in ALIASES.items()}
# p99.9 as people write it: p99.9, service_p99.9, ttft_p99.9, ... name the p999 keys.
ALIASES.update(
    {name.replace("p999", "p99.9"): path for name, path in list(ALIASES.items()) if "p999" in name}
)
# Per-request SLOs: bare name -> the per-request quantity it bounds (docs/metrics.md, LLM metrics).
# ``itl`` bounds a request's largest inter-token gap: every gap of the request must meet it.
PER_REQUEST: dict[str, str] = {
    "ttft": "request.ttft_ms",
    "tpot": "request.tpot_ms",
    "itl": "request.itl_max_ms",
    "e2e": "request.e2e_ms",
    "latency": "request.latency_ms",
}
# Shown in error messages: the families, not all 60 aliases.
_ACCEPTED = (
    "p50 p90 p95 p99 p999 max mean min, service_p99 (service_time_ms), error_rate, throughput, "
    "request_rate, goodput, ttft_p99 / tpot_* / itl_* / e2e_*, gpu_util, server_cpu, "
    "a per-request bound (ttft<500ms, tpot, itl, e2e, latency), "
    "or a summary.json path such as latency_ms.p99 or resources.gpus.0.util_mean"
)
_EXAMPLES = "e.g. p99<300ms, error_rate<1%, throughput>=100, service_p50<=20ms"

OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_SHAPE = re.compile(r"^\s*(?P<metric>[^\s<>=!≤≥]+)\s*(?P<op>[<>=!≤≥]*)\s*(?P<value>.*?)\s*$")
_VALUE = re.compile(r"^(?P<number>[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*(?P<unit>.*)$")

# Unit -> factor into the summary's unit, per kind of metric.
_UNITS: dict[str, dict[str, float]] = {
    "ms": {"": 1.0, "ms": 1.0, "s": 1000.0, "us": 0.001, "µs": 0.001},
    "fraction": {"": 1.0, "%": 0.01},
    "rps": {"": 1.0, "rps": 1.0, "req/s": 1.0, "/s": 1.0},
    "percent": {"": 1.0, "%": 1.0},
    "": {"": 1.0},
}


@dataclass(frozen=True)
class Slo:
    """One parsed SLO gate: passes when ``value_at(summary, path) op threshold``."""

    expr: str  # as typed, trimmed
    metric: str  # canonical name: the alias when one exists (p99), else the summary path
    path: str  # dotted path into summary.json
    op: str  # "<", "<=", ">" or ">="
    threshold: float  # in the summary's unit (ms, a fraction, req/s, ...)
    unit: str  # the summary's unit: "ms", "fraction", "rps", "percent" or "" (as the summary has it)
    # A bound on every request (``ttft<500ms``): counted into goodput, never gating by itself.
    per_request: bool = False

    def holds(self, value: float) -> bool:
        return OPS[self.op](value, self.threshold)


def unit_kind(path: str) -> str:
    """The kind of unit a summary path is in: "ms", "fraction", "rps", "percent" or ""."""
    parts = path.split(".")
    last = parts[-1]
    if any(p.endswith("_ms") for p in parts):
        return "ms"
    if last.endswith(("error_rate", "_fraction", "_share")) or parts[0] == "quality":
        return "fraction"
    if last.endswith("_rps"):
        return "rps"
    if any(p.endswith("_percent") for p in parts) or last.startswith("util_"):
        return "percent"
    return ""


def _resolve(name: str, expr: str) -> str:
    if name in PER_REQUEST:
        return PER_REQUEST[name]
    if name in ALIASES:  # before the dotted paths: p99.9 is an alias
        return ALIASES[name]
    if "." in name or name.endswith("_rps"):
        return name
    raise UsageError(f"unknown metric {name!r} in the SLO {expr!r}: use {_ACCEPTED}")


def parse_slo(text: str) -> Slo:
    """Parse ``METRIC OP VALUE[UNIT]`` (module docstring); `UsageError` with a one-line hint otherwise."""
    expr = " ".join(text.split())
    shape = _SHAPE.match(text)
    if not expr or not shape:
        raise UsageError(f"empty SLO: expected METRIC OP VALUE, {_EXAMPLES}")
    name, op, rest = shape["metric"], shape["op"], shape["value"]
    if op not in OPS:
        found = f"{op!r}" if op else "no operator"
        raise UsageError(
            f"cannot read the SLO {expr!r}: {found}; OP must be one of <, <=, >, >= ({_EXAMPLES})"
        )
    path = _resolve(name, expr)
    per_request = name in PER_REQUEST
    if per_request and op not in ("<", "<="):
        raise UsageError(
            f"the per-request SLO {expr!r} must be an upper bound: use < or <= "
            f"(e.g. {name}<500ms; gate on goodput>N for a rate of requests meeting it)"
        )
    value = _VALUE.match(rest)
    if not value:
        found = f"{rest!r} is not a number" if rest else "no value"
        raise UsageError(f"cannot read the SLO {expr!r}: {found} ({_EXAMPLES})")
    number, unit = float(value["number"]), value["unit"]
    kind = unit_kind(path)
    factors = _UNITS[kind]
    if unit not in factors:
        accepted = ", ".join(u or "bare" for u in factors)
        what = {"ms": "a time", "fraction": "a fraction", "rps": "a rate", "percent": "a percentage"}
        raise UsageError(
            f"the SLO {expr!r} gives {unit!r} for {path}, which is {what.get(kind, 'unitless')}: "
            f"use {accepted} (e.g. {_example(kind)})"
        )
    if kind in ("ms", "rps", "fraction") and number < 0:
        raise UsageError(f"the SLO {expr!r} has a negative threshold: {path} is never negative")
    if kind == "fraction" and not unit and number > 1:
        raise UsageError(
            f"the SLO {expr!r} gives {number:g} for {path}, a fraction from 0 to 1: "
            f"write {number:g}% or {number / 100:g}"
        )
    # 12 significant digits: 0.29 s is 290 ms, not 289.99999999999994.
    threshold = float(f"{number * factors[unit]:.12g}")
    return Slo(
        expr=expr,
        metric=name if per_request else _CANONICAL.get(path, path),
        path=path,
        op=op,
        threshold=threshold,
        unit=kind,
        per_request=per_request,
    )


def _example(kind: str) -> str:
    return {
        "ms": "p99<300ms, p99<0.3s",
        "fraction": "error_rate<1%, error_rate<0.01",
        "rps": "throughput>=100, throughput>=100rps",
        "percent": "gpu_util>=80%",
    }.get(kind, "a bare number in summary.json's unit")


def parse_slos(texts: Sequence[str]) -> list[Slo]:
    """Parse every ``--slo``; the first bad one raises."""
    return [parse_slo(text) for text in texts]


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


class SloSection(TypedDict):
    """``summary["slo"]``: every check, and whether all passed (`evaluate`)."""

    passed: bool
    checks: list[dict[str, Any]]


def evaluate(slos: Sequence[Slo], summary: Mapping[str, Any]) -> SloSection:
    """``summary["slo"]``: ``{"passed", "checks": [{"expr", "metric", "path", "value", "threshold",
    "op", "unit", "passed", "note"?}]}``; ``passed`` is true when every check passed (and with no SLO).

    A per-request SLO's check (`_per_request_check`) always passes: it reports attainment."""
    checks: list[dict[str, Any]] = []
    for slo in slos:
        if slo.per_request:
            checks.append(_per_request_check(slo, summary))
            continue
        raw = value_at(summary, slo.path)
        value = _number(raw)
        check: dict[str, Any] = {
            "expr": slo.expr,
            "metric": slo.metric,
            "path": slo.path,
            "value": value,
            "threshold": slo.threshold,
            "op": slo.op,
            "unit": slo.unit,
            "passed": value is not None and slo.holds(value),
        }
        if value is None:
            # Unmeasured cannot count as met: an SLO on p99 of a run with no success must fail.
            check["note"] = "not measured" if raw is None else f"not a number: {str(raw)[:40]}"
        checks.append(check)
    return {"passed": all(c["passed"] for c in checks), "checks": checks}


def _per_request_check(slo: Slo, summary: Mapping[str, Any]) -> dict[str, Any]:
    """The check of a per-request SLO: ``value`` is its attainment (the share of the window's
    requests that succeeded and met it, from ``summary["goodput"]["slos"]``), ``unit``
    ``fraction``; the bound itself is ``threshold`` in ``threshold_unit`` (ms). It passes
    always: a per-request SLO is counted into goodput and gates nothing by itself."""
    goodput = summary.get("goodput")
    entries = goodput.get("slos") if isinstance(goodput, dict) else None
    entry = next(
        (e for e in entries or [] if isinstance(e, dict) and e.get("expr") == slo.expr),
        None,
    )
    value = _number(entry.get("attainment")) if entry else None
    check: dict[str, Any] = {
        "expr": slo.expr,
        "metric": slo.metric,
        "path": slo.path,
        "value": value,
        "threshold": slo.threshold,
        "op": slo.op,
        "unit": "fraction",
        "passed": True,
        "per_request": True,
        "threshold_unit": slo.unit,
        "note": "per-request SLO: share of requests meeting it; counted into goodput, gates nothing by itself"
        if value is not None
        else "not measured (per-request SLO; gates nothing by itself)",
    }
    return check
