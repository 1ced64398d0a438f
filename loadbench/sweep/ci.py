"""``loadbench sweep --junit``: each step as a CI test case.

Consumes the ``sweep.json`` dict (`loadbench.sweep.sweep.build_sweep`); produces one `Suite`: a
case per step, named by its load (``step-03 12.5 rps``), failed with the step's reasons when it
missed a gate, skipped when it could not be judged. A sweep looks for the load at which the
endpoint breaks, so failed steps are its result and its exit code stays 0; the capacity and the
knee are the suite's properties.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from loadbench.analyze.capacity import FAIL, UNJUDGED, load_text
from loadbench.report.junit import Case, Suite


def step_case(row: Mapping[str, Any], mode: str) -> Case:
    name = f"step-{int(row.get('index') or 0):02d} {load_text(float(row.get('offered') or 0), mode)}"
    why = [str(w) for w in row.get("why") or []]
    detail = f"run directory {row.get('run_dir')}; " + ("; ".join(why) or "met every gate")
    verdict = row.get("verdict") or ("pass" if row.get("passed") else FAIL)
    if verdict == UNJUDGED:
        return Case(name, "sweep", "skipped", message="; ".join(why) or "cannot judge", detail=detail)
    if verdict == FAIL:
        return Case(name, "sweep", "failed", message="; ".join(why) or "the step failed", detail=detail)
    return Case(name, "sweep", "passed", detail=detail)


def _point(point: Any, mode: str) -> str:
    if not isinstance(point, dict) or point.get("offered") is None:
        return "none"
    return load_text(float(point["offered"]), mode)


def sweep_suite(sweep: Mapping[str, Any], sweep_dir: Path) -> Suite:
    settings = sweep.get("settings") or {}
    mode = str(settings.get("mode") or "rate")
    properties = {
        "sweep_dir": str(sweep_dir),
        "target": str(settings.get("target") or ""),
        "scenario": str(sweep.get("scenario") or ""),
        "capacity": _point(sweep.get("capacity"), mode),
        "knee": _point(sweep.get("knee"), mode),
    }
    return Suite(
        name=f"loadbench sweep {sweep_dir.name}",
        cases=[step_case(row, mode) for row in sweep.get("steps") or []],
        properties=properties,
    )
