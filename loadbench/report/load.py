"""Report fragments for how the load was offered and whether to trust the numbers.

The verdict banner (SLO gates, VALID/INVALID), and the "Load and trust" section: load model,
measured window and why, open-loop schedule keeping, service time beside latency, confidence
intervals of the percentiles, steady state, and metrics per load-shape stage. HTML and
Markdown; everything from the run is escaped by the report module's helpers.
"""

from __future__ import annotations

from typing import Any

from loadbench.report.fmt import (
    PERCENTILE_KEYS,
    as_dict,
    as_list,
    format_count,
    format_ms,
    format_pct,
    format_rate,
    format_seconds,
)
from loadbench.report.html import esc, grid_table, kv_table
from loadbench.report.markdown import md, md_table

VERDICT_CSS = """
.verdict { border-radius: 6px; padding: 10px 14px; margin: 16px 0 0; border: 1px solid var(--line); }
.verdict.pass { background: #e8f5e9; border-left: 5px solid var(--ok); }
.verdict.fail { background: #fdecea; border-left: 5px solid var(--bad); }
.verdict.invalid { background: #fff3e0; border-left: 5px solid var(--warn); }
.verdict b { font-size: 15px; }
.verdict ul { margin: 6px 0 0; padding-left: 20px; }
"""


def _result_text(check: dict[str, Any]) -> str:
    """PASS / FAIL, or INFO for a per-request SLO (its attainment, counted into goodput)."""
    if check.get("per_request"):
        return "INFO"
    return "PASS" if check.get("passed") else "FAIL"


def _value_text(check: dict[str, Any]) -> str:
    value = check.get("value")
    if check.get("per_request"):
        return "not measured" if value is None else f"met by {format_pct(value)} of requests"
    if value is None:
        return str(check.get("note") or "not measured")
    unit = check.get("unit")
    if unit == "ms":
        return format_ms(value)
    if unit == "fraction":
        return format_pct(value)
    if unit == "rps":
        return format_rate(value)
    return f"{value:g}"


def verdict_html(summary: dict[str, Any]) -> str:
    """The banner: SLO gates passed/failed, and VALID/INVALID with reasons. Empty when neither applies."""
    slo = as_dict(summary.get("slo"))
    checks = [as_dict(c) for c in as_list(slo.get("checks"))]
    validity = as_dict(summary.get("validity"))
    parts = []
    if checks:
        passed = bool(slo.get("passed"))
        items = "".join(
            f"<li>{'<b>FAIL</b>' if _result_text(c) == 'FAIL' else _result_text(c)} "
            f"<code>{esc(c.get('expr'))}</code>: "
            f"{'' if c.get('per_request') else 'measured '}{esc(_value_text(c))}</li>"
            for c in checks
        )
        gates = [c for c in checks if not c.get("per_request")]
        title = "SLO passed" if passed else "SLO failed"
        parts.append(
            f"<div class='verdict {'pass' if passed else 'fail'}' role='status' aria-label='SLO verdict'>"
            f"<b>{title}</b> ({sum(bool(c.get('passed')) for c in gates)} of {len(gates)} checks"
            + (
                f"; {len(checks) - len(gates)} per-request SLO(s) counted into goodput"
                if len(gates) < len(checks)
                else ""
            )
            + f")<ul>{items}</ul></div>"
        )
    if validity and not validity.get("valid", True):
        reasons = "".join(f"<li>{esc(r)}</li>" for r in as_list(validity.get("reasons")))
        parts.append(
            "<div class='verdict invalid' role='status' aria-label='validity'><b>INVALID measurement</b>: "
            f"the numbers below cannot be trusted as they stand<ul>{reasons}</ul></div>"
        )
    elif validity:
        parts.append(
            "<div class='verdict pass' role='status' aria-label='validity'><b>VALID</b> measurement: "
            "none of the validity checks tripped (docs/metrics.md, Validity)"
            + "".join(f"; not checked: {esc(u)}" for u in as_list(validity.get("unchecked")))
            + "</div>"
        )
    return "".join(parts)


def load_html(summary: dict[str, Any]) -> str:
    """The "Load and trust" section's body."""
    load = as_dict(summary.get("load"))
    window = as_dict(summary.get("window"))
    steady = as_dict(summary.get("steady"))
    rows = [
        ("load model", esc(load.get("description") or load.get("model"))),
        ("measured window", esc(window.get("reason"))),
        ("steady state", esc(_steady_text(steady))),
    ]
    out = [kv_table(rows)]
    schedule = as_dict(summary.get("schedule"))
    if schedule:
        late = as_dict(schedule.get("lateness_ms"))
        out.append("<h3>Schedule</h3>")
        out.append(
            kv_table(
                (k, esc(v))
                for k, v in [
                    ("requested rate", format_rate(schedule.get("requested_rps"))),
                    ("sent (measured window)", f"{format_rate(schedule.get('achieved_send_rps'))}"),
                    (
                        "sends late: p50 / p99 / max",
                        f"{format_ms(late.get('p50'))} / {format_ms(late.get('p99'))} / {format_ms(late.get('max'))}",
                    ),
                    (
                        f"sent more than {schedule.get('late_threshold_ms', 10):g} ms late",
                        f"{format_count(schedule.get('late_requests'))} ({format_pct(schedule.get('late_fraction'))})",
                    ),
                    (
                        "due / sent over the run",
                        f"{format_count(schedule.get('due_total'))} / {format_count(schedule.get('sent_total'))}",
                    ),
                    ("never sent (no free sender by the end)", format_count(schedule.get("unsent"))),
                    ("seed", str(schedule.get("seed"))),
                ]
            )
        )
    out.append("<h3>Latency, service time and uncertainty</h3>")
    lat, service, ci = (as_dict(summary.get(k)) for k in ("latency_ms", "service_time_ms", "latency_ci_ms"))
    open_loop = load.get("model") == "open"
    rows2 = []
    for key, label in PERCENTILE_KEYS:
        interval = ci.get(key)
        ci_text = (
            f"{format_ms(interval[0])} – {format_ms(interval[1])}"
            if isinstance(interval, list) and len(interval) == 2
            else "–"
        )
        rows2.append(
            [esc(label), esc(format_ms(lat.get(key))), esc(ci_text), esc(format_ms(service.get(key)))]
        )
    out.append(
        grid_table(
            [
                "percentile",
                "latency (from due time)" if open_loop else "latency",
                "95% interval",
                "service time (from send)",
            ],
            rows2,
            numeric={1, 2, 3},
        )
    )
    out.append(
        "<p class='sub'>Intervals: distribution-free, from order statistics; requests close in time "
        "are correlated, so the true uncertainty is wider."
        + (
            " Open loop: latency counts from when each request was due, service time from when it was sent."
            if open_loop
            else ""
        )
        + "</p>"
    )
    stages = [as_dict(s) for s in as_list(summary.get("stages"))]
    if stages:
        out.append("<h3>Stages</h3>")
        out.append(grid_table(*_stage_rows(stages), numeric=set(range(1, 8))))
    return "\n".join(out)


def _stage_rows(stages: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    headers = ["stage", "from", "to", "requests", "throughput", "error rate", "p50", "p99"]
    rows = []
    for s in stages:
        lat = as_dict(s.get("latency_ms"))
        rows.append(
            [
                esc(s.get("name")),
                esc(format_seconds(s.get("start_s"))),
                esc(format_seconds(s.get("end_s"))),
                esc(format_count(s.get("requests"))),
                esc(format_rate(s.get("throughput_rps"))),
                esc(format_pct(s.get("error_rate"))),
                esc(format_ms(lat.get("p50"))),
                esc(format_ms(lat.get("p99"))),
            ]
        )
    return headers, rows


def _steady_text(steady: dict[str, Any]) -> str:
    settled = steady.get("settled")
    if settled is None:
        return "not judged: the measured window is too short or has too few requests"
    if settled is False:
        return "latency never settled: it kept changing through the measured window (MSER-5)"
    offset = steady.get("settled_offset_s") or 0.0
    if steady.get("material"):
        return f"latency settled {offset:g} s into the measured window (MSER-5); it ran differently before"
    return "latency was steady across the measured window (MSER-5)"


def verdict_markdown(summary: dict[str, Any]) -> list[str]:
    """Markdown lines for the verdicts (empty when there is nothing to say)."""
    lines: list[str] = []
    slo = as_dict(summary.get("slo"))
    checks = [as_dict(c) for c in as_list(slo.get("checks"))]
    if checks:
        lines += ["", f"**{'SLO passed' if slo.get('passed') else 'SLO failed'}**", ""]
        lines += md_table(
            ["check", "result", "measured"],
            [[str(c.get("expr")), _result_text(c), _value_text(c)] for c in checks],
            numeric={2},
        )
    validity = as_dict(summary.get("validity"))
    if validity and not validity.get("valid", True):
        lines += [
            "",
            "**INVALID measurement**",
            "",
            *(f"- {md(r)}" for r in as_list(validity.get("reasons"))),
        ]
    load = as_dict(summary.get("load"))
    if load.get("description"):
        lines += ["", f"Load: {md(load['description'])}"]
    return lines
