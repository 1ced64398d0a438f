"""``loadbench compare --junit``: a comparison's ``--fail-on`` rules as CI test cases.

Consumes the ``compare.json`` dict (`loadbench.compare.compare.compare_many`) and the rules as
typed; produces one `Suite` per candidate: a case per rule (failed when the change was beyond
it and significant, skipped when it could not be checked) and, with rules, a case per run's
validity, because a gate cannot pass on a measurement the analyzer called INVALID.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from loadbench.compare.bootstrap import CI_LEVEL
from loadbench.compare.rules import Rule
from loadbench.report.junit import Case, Suite


def _signed(value: float, unit: str) -> str:
    return f"{value:+.4g}{' ' + unit if unit else ''}"


def change_text(entry: Mapping[str, Any]) -> str:
    """``+4.1 ms (+23.4%; 99.5% CI +2 – +6.3 ms)``: a metric's change with its interval."""
    if entry.get("delta") is None:
        return "not in both runs"
    unit = str(entry.get("unit") or "")
    text = _signed(float(entry["delta"]), unit)
    parts = [] if entry.get("delta_pct") is None else [f"{float(entry['delta_pct']):+.1f}%"]
    ci = entry.get("ci")
    if ci:
        parts.append(f"{CI_LEVEL:.1%} CI {_signed(float(ci[0]), unit)} – {_signed(float(ci[1]), unit)}")
    return text + (f" ({'; '.join(parts)})" if parts else "")


def rule_case(rule: Rule, candidate: Mapping[str, Any]) -> Case:
    """One rule against one candidate (a ``compare.json`` ``candidates`` entry)."""
    entry = (candidate.get("metrics") or {}).get(rule.metric) or {}
    values = f"base {entry.get('base')}, candidate {entry.get('candidate')}"
    if any(f.get("rule") == rule.text for f in candidate.get("failed_rules") or []):
        change = change_text(entry)
        return Case(
            rule.text,
            "compare",
            "failed",
            message=f"rule {rule.text} failed: {rule.metric} changed {change}",
            detail=f"{rule.metric}: {values}; change {change}",
        )
    unchecked = [w for w in candidate.get("warnings") or [] if str(w).startswith(f"rule {rule.text}: ")]
    if unchecked:
        return Case(rule.text, "compare", "skipped", message=str(unchecked[0]))
    return Case(
        rule.text, "compare", "passed", detail=f"{rule.metric}: {values}; change {change_text(entry)}"
    )


def validity_cases(result: Mapping[str, Any], candidate: Mapping[str, Any]) -> list[Case]:
    cases = []
    for role in ("base", "candidate"):
        run_id = result["base"]["id"] if role == "base" else candidate.get("run")
        name = f"valid measurement ({role} {run_id})"
        if role in (candidate.get("invalid") or []):
            message = f"the {role} run {run_id} is INVALID (see its report): no rule can pass on it"
            cases.append(Case(name, "validity", "failed", message=message))
        else:
            cases.append(Case(name, "validity", "passed"))
    return cases


def compare_suites(result: Mapping[str, Any], rules: Sequence[Rule], out_dir: Path) -> list[Suite]:
    """One suite per candidate, named ``loadbench compare BASE vs CANDIDATE``."""
    base = result.get("base") or {}
    suites = []
    for candidate in result.get("candidates") or []:
        cases = [rule_case(rule, candidate) for rule in rules]
        if rules:
            cases += validity_cases(result, candidate)
        properties = {
            "compare_dir": str(out_dir),
            "base": str(base.get("path") or base.get("id") or ""),
            "candidate": str(candidate.get("path") or candidate.get("run") or ""),
            "target": str(base.get("target") or ""),
            "scenario": str(base.get("scenario") or ""),
        }
        name = f"loadbench compare {base.get('id')} vs {candidate.get('run')}"
        suites.append(Suite(name=name, cases=cases, properties=properties))
    return suites


def compare_warnings(result: Mapping[str, Any]) -> list[str]:
    """Every candidate's warnings (settings that differ, rules not checked), for a CI log."""
    many = len(result.get("candidates") or []) > 1
    return [
        f"candidate {c.get('run')}: {w}" if many else str(w)
        for c in result.get("candidates") or []
        for w in c.get("warnings") or []
    ]
