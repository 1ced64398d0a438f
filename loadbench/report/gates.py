"""A run's gates as CI test cases: its ``--slo`` checks, its validity, whether it ran at all.

Consumes an analyzed ``summary.json`` dict; produces the `Suite` of ``loadbench run --junit`` (and
of each sweep step). The cases say what ``run``'s exit code says, one gate each: a failed SLO, an
INVALID measurement, a run that failed or was interrupted. A per-request SLO (``ttft<500ms``)
gates nothing by itself (docs/metrics.md), so its case passes and carries its attainment.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from loadbench.report.junit import Case, Suite

# summary.json paths of latency statistics -> the key of their 95 % interval (analyze/trust.py).
_CI_KEYS = {"latency_ms": "latency_ci_ms"}
_UNIT_TEXT = {"ms": " ms", "rps": " req/s", "percent": "%"}


def measured_text(value: float, unit: str) -> str:
    """A measured value as people read it in the unit its SLO was written in."""
    if unit == "fraction":
        return f"{value:.3%}".replace(".000%", "%")
    return f"{value:.4g}{_UNIT_TEXT.get(unit, '')}"


def interval_text(summary: Mapping[str, Any], path: str, unit: str) -> str:
    """`` (95% CI lo–hi ms)`` when the summary holds an interval for ``path``; else nothing."""
    section, _, key = path.partition(".")
    ci = summary.get(_CI_KEYS.get(section, ""))
    bounds = ci.get(key) if isinstance(ci, dict) else None
    if not isinstance(bounds, list) or len(bounds) != 2:
        return ""
    return f" (95% CI {bounds[0]:.4g}–{bounds[1]:.4g}{_UNIT_TEXT.get(unit, '')})"


def slo_case(check: Mapping[str, Any], summary: Mapping[str, Any], classname: str = "slo") -> Case:
    """The case of one ``summary["slo"]["checks"]`` entry (`loadbench.analyze.slo.evaluate`)."""
    expr, value, unit = str(check["expr"]), check.get("value"), str(check.get("unit") or "")
    if check.get("per_request"):
        shown = "not measured" if value is None else f"met by {value:.1%} of requests"
        return Case(
            expr, classname, "passed", detail=f"{expr}: {shown} (per-request SLO, counted into goodput)"
        )
    if value is None:
        measured = str(check.get("note") or "not measured")
    else:
        measured = f"measured {measured_text(value, unit)}" + interval_text(summary, str(check["path"]), unit)
    if check.get("passed"):
        return Case(expr, classname, "passed", detail=f"{expr}: {measured}")
    threshold = measured_text(float(check["threshold"]), unit)
    return Case(
        expr,
        classname,
        "failed",
        message=f"SLO {expr} failed: {measured}",
        detail=f"{check['path']} {check['op']} {threshold} does not hold: {measured}",
    )


def validity_case(summary: Mapping[str, Any], classname: str = "validity") -> Case:
    """ "valid measurement": failed when the analyzer called the run INVALID, with its reasons."""
    validity = summary.get("validity") or {"valid": True}
    warnings = [str(w) for w in validity.get("warnings") or []]
    if validity.get("valid", True):
        return Case("valid measurement", classname, "passed", detail="\n".join(warnings))
    reasons = [str(r) for r in validity.get("reasons") or []] or ["no reason given"]
    return Case(
        "valid measurement",
        classname,
        "failed",
        message="INVALID measurement: " + "; ".join(reasons),
        detail="\n".join(reasons + warnings),
    )


def status_case(summary: Mapping[str, Any]) -> Case:
    """ "run completed": failed when the run did not complete, or no measured request succeeded
    (``run``'s exit codes 3 and 130)."""
    run, requests = summary.get("run") or {}, summary.get("requests") or {}
    status, total, ok = run.get("status"), requests.get("total", 0), requests.get("ok", 0)
    if status in ("failed", "interrupted"):
        return Case("run completed", "run", "failed", message=f"the run {status}")
    if total > 0 and ok == 0:
        return Case("run completed", "run", "failed", message=f"every one of {total:,} requests failed")
    return Case("run completed", "run", "passed", detail=f"{status}: {total:,} requests, {ok:,} ok")


def run_cases(summary: Mapping[str, Any]) -> list[Case]:
    """Every gate of an analyzed run, in the order the terminal shows them."""
    checks = (summary.get("slo") or {}).get("checks") or []
    return [status_case(summary), validity_case(summary), *(slo_case(c, summary) for c in checks)]


def run_properties(summary: Mapping[str, Any], run_dir: Path) -> dict[str, str]:
    run = summary.get("run") or {}
    return {
        "run_dir": str(run_dir),
        "target": str(run.get("target") or ""),
        "scenario": str(run.get("scenario") or ""),
        "status": str(run.get("status") or ""),
    }


def run_suite(summary: Mapping[str, Any], run_dir: Path, command: str = "loadbench run") -> Suite:
    """``loadbench run``'s suite: named by the command and the run id."""
    run = summary.get("run") or {}
    return Suite(
        name=f"{command} {run.get('id') or run_dir.name} against {run.get('target') or '?'}",
        cases=run_cases(summary),
        properties=run_properties(summary, run_dir),
        time_s=run.get("duration_s"),
    )


def run_warnings(summary: Mapping[str, Any]) -> list[str]:
    """The validity warnings a CI log should flag (the INVALID reasons are a failed case already)."""
    validity = summary.get("validity") or {}
    return [str(w) for w in validity.get("warnings") or []]
