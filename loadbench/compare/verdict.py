"""A comparison as text: metric values, deltas and CIs in their units, and the verdict.

Reads the ``compare.json`` object of `loadbench.compare.compare.compare_runs`. Shared by the
Markdown (`loadbench.compare.markdown`) and HTML (`loadbench.compare.html`) renderings, and by
the history page for its values. Everything here is plain text: each rendering escapes it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from loadbench.report.fmt import (
    DASH,
    as_dict,
    as_list,
    format_bytes,
    format_joules,
    format_ms,
    format_pct,
    format_percent,
    format_rate,
    format_value,
    num,
)
from loadbench.report.markdown import md

VERDICT_EMOJI = {"worse": "🔴", "better": "🟢", "same": "⚪"}
TABLE_HEADERS = ("metric", "base", "candidate", "Δ", "Δ%", "99.5% CI", "verdict")
NUMERIC_COLUMNS = frozenset({1, 2, 3, 4, 5})


def _unit_kind(unit: Any, path: str) -> str:
    u = str(unit or "").strip().lower()
    if u == "ms" or (not u and path.startswith("latency_ms")):
        return "ms"
    if u in ("req/s", "rps", "1/s", "requests/s") or (not u and path.endswith("_rps")):
        return "rate"
    if u in ("fraction", "ratio", "share", "0-1") or (not u and path.endswith(("error_rate", "_fraction"))):
        return "fraction"
    if u.startswith("%") or u in ("percent", "pct"):
        return "percent"
    if u in ("bytes", "b", "byte"):
        return "bytes"
    if u in ("j", "joule", "joules"):
        return "joules"
    return "other"


def format_metric_value(value: Any, unit: Any, path: str = "") -> str:
    """A metric value in its unit: ``4.21 ms``, ``1,234.5 req/s``, ``1.20 %`` (a fraction)."""
    kind = _unit_kind(unit, path)
    v = num(value)
    if v is None:
        return DASH
    if kind == "ms":
        return format_ms(v)
    if kind == "rate":
        return format_rate(v)
    if kind == "fraction":
        return format_pct(v)
    if kind == "percent":
        return format_percent(v)
    if kind == "bytes":
        return format_bytes(v)
    if kind == "joules":
        return format_joules(v)
    return f"{format_value(v)} {unit or ''}".rstrip()


def format_delta(value: Any, unit: Any, path: str = "") -> str:
    """A signed difference: ``+1.30 ms``, ``-12.0 req/s``; fractions and percentages in ``pp``."""
    kind = _unit_kind(unit, path)
    v = num(value)
    if v is None:
        return DASH
    if kind == "fraction":
        return f"{v * 100:+.2f} pp"
    if kind == "percent":
        return f"{v:+.1f} pp"
    sign = "+" if v > 0 else "-" if v < 0 else "±"
    return sign + format_metric_value(abs(v), unit, path)


def format_delta_pct(value: Any) -> str:
    """A relative difference already in percent: ``+12.3 %``."""
    v = num(value)
    return DASH if v is None else f"{v:+.1f} %"


def format_ci(ci: Any, unit: Any, path: str = "") -> str:
    """The 99.5 % CI of a delta as ``[lo, hi]``; a dash when there is none."""
    if not isinstance(ci, list | tuple) or len(ci) != 2 or any(num(c) is None for c in ci):
        return DASH
    return f"[{format_delta(ci[0], unit, path)}, {format_delta(ci[1], unit, path)}]"


def verdict_counts(result: dict[str, Any]) -> dict[str, int]:
    """How many metrics are worse, better and the same."""
    counts = {"worse": 0, "better": 0, "same": 0}
    for m in as_dict(result.get("metrics")).values():
        verdict = str(as_dict(m).get("verdict") or "same")
        counts[verdict if verdict in counts else "same"] += 1
    return counts


def failed_rules(result: dict[str, Any]) -> list[dict[str, Any]]:
    return [as_dict(r) for r in as_list(result.get("failed_rules"))]


def invalid_text(result: dict[str, Any]) -> str:
    """``candidate run INVALID`` (or the base, or both) when the analyzer called a measurement
    INVALID (``compare.json`` ``invalid``); empty otherwise."""
    roles = [str(r) for r in as_list(result.get("invalid"))]
    if not roles:
        return ""
    return f"{' and '.join(roles)} run{'s' if len(roles) > 1 else ''} INVALID"


def status(result: dict[str, Any]) -> tuple[str, str, str]:
    """(emoji, headline word, css class) of the comparison's verdict. An INVALID run is named in
    the word and never gets the green mark: nothing it measured can be relied on."""
    counts = verdict_counts(result)
    invalid = invalid_text(result)
    if result.get("passed") is False or failed_rules(result):
        emoji, word, css = "❌", "worse", "bad"
        if invalid and not failed_rules(result):
            word = "gate not passed"  # only the INVALID measurement failed it
    elif counts["worse"]:
        emoji, word, css = "⚠️", "worse, no gate failed", "warn"
    elif invalid:
        emoji, word, css = "⚠️", "no significant regression", "warn"
    else:
        emoji, word, css = "✅", "no significant regression", "ok"
    return emoji, f"{word} · {invalid}" if invalid else word, css


def counts_text(result: dict[str, Any]) -> str:
    """``2 worse · 1 better · 2 same``: the line under a verdict banner."""
    counts = verdict_counts(result)
    return f"{counts['worse']} worse · {counts['better']} better · {counts['same']} same"


def verdict_text(result: dict[str, Any], markdown: bool = False) -> str:
    """The one-line verdict, e.g. ``loadbench compare: ❌ worse — 3 metrics worse, …``: plain text
    for a terminal, or (``markdown``) bold and with the rules' text escaped for compare.md."""
    emoji, word, _ = status(result)
    counts = verdict_counts(result)
    total = sum(counts.values())
    noun = "metric" if counts["worse"] == 1 else "metrics"
    head = f"loadbench compare: {emoji} {word}"
    text = f"**{head}**" if markdown else head
    if total:
        text += f" — {counts['worse']} {noun} worse, {counts['better']} better, {counts['same']} same"
    else:
        text += " — no metrics compared"
    failed = failed_rules(result)
    if failed:
        names = ", ".join(str(r.get("rule") or r.get("metric") or "?") for r in failed)
        text += f" · {len(failed)} gate{'s' if len(failed) != 1 else ''} failed: {md(names) if markdown else names}"
    return text


def verdict_line(result: dict[str, Any]) -> str:
    """The one-line verdict as Markdown: ``**loadbench compare: ❌ worse** — 3 metrics worse, …``."""
    return verdict_text(result, markdown=True)


def run_id(info: Any, fallback: str) -> str:
    """A run's id from the ``base`` / ``candidate`` entry of the result (its directory's name)."""
    info = as_dict(info)
    return str(info.get("id") or (Path(str(info["path"])).name if info.get("path") else fallback))


def metric_rows(result: dict[str, Any]) -> list[tuple[str, list[str], str]]:
    """(path, formatted cells without the verdict, verdict) per metric, in the result's order."""
    rows = []
    for path, raw in as_dict(result.get("metrics")).items():
        m = as_dict(raw)
        unit = m.get("unit")
        verdict = str(m.get("verdict") or "same")
        cells = [
            str(m.get("label") or path),
            format_metric_value(m.get("base"), unit, path),
            format_metric_value(m.get("candidate"), unit, path),
            format_delta(m.get("delta"), unit, path),
            format_delta_pct(m.get("delta_pct")),
            format_ci(m.get("ci"), unit, path),
        ]
        rows.append((str(path), cells, verdict))
    return rows


def rule_text(rule: dict[str, Any], result: dict[str, Any]) -> str:
    """Plain text (unescaped) describing one failed rule."""
    metric = str(rule.get("metric") or "")
    m = as_dict(as_dict(result.get("metrics")).get(metric))
    unit = m.get("unit")
    name = f"{rule.get('rule') or metric}"
    detail = [f"{m.get('label') or metric}" if metric else ""]
    if num(rule.get("delta")) is not None:
        detail.append(f"Δ {format_delta(rule.get('delta'), unit, metric)}")
    if num(rule.get("delta_pct")) is not None:
        detail.append(f"Δ% {format_delta_pct(rule.get('delta_pct'))}")
    if rule.get("ci") is not None:
        detail.append(f"99.5% CI {format_ci(rule.get('ci'), unit, metric)}")
    detail = [d for d in detail if d]
    return name + (" — " + ", ".join(detail) if detail else "")


def candidate_entries(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Every candidate's comparison with the base (``compare.json`` ``candidates``); a result
    without that key (one candidate) is its own single entry."""
    entries = [as_dict(c) for c in as_list(result.get("candidates"))]
    if entries:
        return entries
    return [{**result, "run": run_id(result.get("candidate"), "candidate")}]


def candidate_verdict_lines(result: dict[str, Any], markdown: bool = True) -> list[str]:
    """One line per candidate: ``- `run-id`: **loadbench compare: …**`` (Markdown), or
    ``- run-id: loadbench compare: …`` (plain text, for a terminal)."""
    entries = candidate_entries(result)
    if not markdown:
        return [f"- {c.get('run') or '?'}: {verdict_text(c)}" for c in entries]
    return [f"- `{md(str(c.get('run') or '?'))}`: {verdict_line(c)}" for c in entries]
