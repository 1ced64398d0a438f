"""What a what-if shows: a Markdown table that pastes into a pull request, and the plot of
predicted p50 and p99 against the arrival rate, with the measured points, the SLO and the knee.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from loadbench.report.fmt import format_ms, format_pct, format_rate
from loadbench.report.markdown import md, md_table
from loadbench.report.plotkit import SERIES_COLORS, figure_to_png, new_figure
from loadbench.whatif.fit import Fit
from loadbench.whatif.predict import KEYS, Options, knee_rate, predict_one

_CURVE_POINTS = 60


def _cell(entry: dict[str, Any], key: str) -> str:
    latency = entry.get("latency_ms")
    if not latency:
        return "unstable"
    text = format_ms(latency[key], unit=False)
    ci = (entry.get("ci_ms") or {}).get(key)
    return f"{text} ({format_ms(ci[0], unit=False)}–{format_ms(ci[1], unit=False)})" if ci else text


def predictions_table(entries: Sequence[dict[str, Any]]) -> list[str]:
    lines = [
        "| rate | servers | utilisation | method | p50 ms | p90 ms | p99 ms | p999 ms | mean ms | mean wait ms |",
        "|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for e in entries:
        wait = (e.get("wait_ms") or {}).get("mean")
        lines.append(
            f"| {format_rate(e['rate_rps'])} | {e['servers']} | {format_pct(e['utilisation'])} | {e['method']} | "
            + " | ".join(_cell(e, k) for k in (*KEYS, "mean"))
            + f" | {format_ms(wait, unit=False)} |"
        )
    return lines


def plan_lines(plan: dict[str, Any]) -> list[str]:
    lines = [f"Capacity under `{plan['slo']}`:", ""]
    for row in plan["max_rate"]:
        rate = "none (missed even at a trickle)" if row["rate_rps"] is None else format_rate(row["rate_rps"])
        span = row.get("range_rps")
        extra = (
            f" (95 % interval {format_rate(span[0])} to {format_rate(span[1])})"
            if span and None not in span
            else ""
        )
        lines.append(f"- {row['method']}: at most {rate} on {row['servers']} server(s){extra}")
    for row in plan["min_servers"]:
        count = "no number of servers" if row["servers"] is None else f"{row['servers']} server(s)"
        span = row.get("range")
        extra = (
            f" (95 % interval {span[0]} to {span[1]})"
            if span and None not in span and span[0] != span[1]
            else ""
        )
        lines.append(f"- {row['method']}: {format_rate(row['rate_rps'])} needs {count}{extra}")
    return lines


VALIDATION_HEADERS = (
    "step", "rate", "utilisation", "method", "p50 predicted", "p50 measured", "p50 error",
    "p99 predicted", "p99 measured", "p99 error",
)  # fmt: skip
VALIDATION_NUMERIC = (0, 1, 2, 4, 5, 6, 7, 8, 9)


def validation_intro(whatif: dict[str, Any]) -> str:
    if not whatif.get("predicted"):
        return f"Not predicted: {whatif.get('why')}"
    return (
        f"Fitted on step {whatif['fit_step']} ({whatif['service']['method']}; mean service time "
        f"{format_ms(whatif['service']['mean_ms'])}); {whatif['servers']} server(s), {whatif['servers_how']}."
    )


def validation_rows(whatif: dict[str, Any]) -> list[list[str]]:
    """The predicted-vs-measured rows of ``sweep.json`` ``whatif``, plain text (escape to show)."""
    rows = []
    for step in whatif.get("steps") or []:
        for p in step["predicted"]:
            latency = p["latency_ms"] or {}
            err = p["error"]
            rows.append(
                [
                    f"{step['index']}{' (fit)' if step['fit'] else ''}",
                    format_rate(step["rate_rps"]),
                    format_pct(step.get("utilisation")),
                    p["method"],
                    format_ms(latency.get("p50"), unit=False) if latency else "unstable",
                    _measured(step, "p50"),
                    _signed(err["p50"]),
                    format_ms(latency.get("p99"), unit=False) if latency else "unstable",
                    _measured(step, "p99"),
                    _signed(err["p99"]),
                ]
            )
    return rows


def validation_lines(whatif: dict[str, Any]) -> list[str]:
    """The sweep's predicted-vs-measured table in Markdown, its verdict and notes."""
    if not whatif.get("predicted"):
        return [validation_intro(whatif)]
    table = md_table(VALIDATION_HEADERS, validation_rows(whatif), numeric=VALIDATION_NUMERIC)
    notes = [f"- {md(n)}" for n in whatif.get("notes") or []]
    return [md(validation_intro(whatif)), "", *table, "", md(whatif["verdict"]) + ".", *notes]


def validation_figure(whatif: dict[str, Any]) -> Figure | None:
    """Measured p50/p99 of each step against its rate, with each method's predictions."""
    steps = [s for s in whatif.get("steps") or [] if s["predicted"]]
    if not whatif.get("predicted") or not steps:
        return None
    fig, ax = new_figure("What-if: predicted against measured, per step")
    for key, marker in (("p50", "x"), ("p99", "+")):
        shown = [s for s in steps if s["measured_ms"][key] is not None]
        if shown:
            xs, ys = [s["rate_rps"] for s in shown], [s["measured_ms"][key] for s in shown]
            ax.scatter(xs, ys, marker=marker, s=60, color="black", label=f"measured {key}", zorder=3)
    for i, method in enumerate(whatif.get("methods") or []):
        colour = SERIES_COLORS[i % len(SERIES_COLORS)]
        for key, style in (("p50", "--"), ("p99", "-")):
            pts = [
                (s["rate_rps"], p["latency_ms"][key])
                for s in steps
                for p in s["predicted"]
                if p["method"] == method and p["latency_ms"]
            ]
            if pts:
                ax.plot(
                    *zip(*pts, strict=True), ls=style, marker="o", ms=3, color=colour, label=f"{method} {key}"
                )
    ax.set_xlabel("arrival rate (req/s)")
    ax.set_ylabel("latency (ms)")
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", ncols=2)
    return fig


def _measured(step: dict[str, Any], key: str) -> str:
    """A step's measured percentile, with its own 95 % interval when the step has one."""
    text = format_ms(step["measured_ms"][key], unit=False)
    ci = (step.get("measured_ci_ms") or {}).get(key)
    if isinstance(ci, list) and len(ci) == 2 and None not in ci:
        return f"{text} ({format_ms(ci[0], unit=False)}–{format_ms(ci[1], unit=False)})"
    return text


def _signed(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:+.1f} %"


def whatif_markdown(result: dict[str, Any]) -> str:
    fit = result["fit"]
    lines = [
        f"## What-if: {fit['run_dir']}",
        "",
        f"Service time: {fit['method']}; {fit['requests']:,} requests, mean {format_ms(fit['mean_service_ms'])}, "
        f"p99 {format_ms(fit['p99_service_ms'])}; measured {format_rate(fit['throughput_rps'])}.",
        "",
        *predictions_table(result["predictions"]),
        "",
    ]
    if result.get("plan"):
        lines += [*plan_lines(result["plan"]), ""]
    if result.get("validation"):
        lines += ["### Predicted vs measured (sweep steps)", "", *validation_lines(result["validation"]), ""]
    lines += ["Assumptions:", "", *(f"- {a}" for a in result["assumptions"])]
    return "\n".join(lines) + "\n"


def whatif_plot(
    fit: Fit, result: dict[str, Any], servers: Sequence[int], options: Options, slo_ms: float | None
) -> bytes:
    """Predicted p50/p99 against the rate per number of servers (G/G/c curves; the simulation's
    points, o p50 and s p99, with their intervals), the measured points, the SLO and the knee."""
    fig, ax = new_figure("What-if: predicted latency against arrival rate")
    quick = Options(("kingman",), options.arrivals)
    for i, c in enumerate(servers):
        colour = SERIES_COLORS[i % len(SERIES_COLORS)]
        full = c * 1000.0 / fit.mean_service_ms
        rates = full * np.linspace(0.02, 0.97, _CURVE_POINTS)
        curve = [predict_one(fit, float(r), c, "kingman", quick)["latency_ms"] for r in rates]
        ax.plot(rates, [p["p50"] for p in curve], color=colour, lw=1.2, ls="--", label=f"p50, {c} server(s)")
        ax.plot(rates, [p["p99"] for p in curve], color=colour, lw=1.6, label=f"p99, {c} server(s)")
        knee = knee_rate(fit, c, options)
        ax.axvline(knee, color=colour, lw=0.8, ls=":", label=f"knee {knee:,.0f} req/s ({c})")
    colours = {c: SERIES_COLORS[i % len(SERIES_COLORS)] for i, c in enumerate(servers)}
    for e in result["predictions"]:
        if e["method"] != "simulation" or not e.get("ci_ms") or e["servers"] not in colours:
            continue
        for key, marker in (("p50", "o"), ("p99", "s")):
            lo, hi = e["ci_ms"][key]
            mid = e["latency_ms"][key]
            ax.errorbar(
                [e["rate_rps"]],
                [mid],
                yerr=[[mid - lo], [hi - mid]],
                fmt=marker,
                ms=4,
                color=colours[e["servers"]],
                capsize=2,
            )
    measured = result.get("measured") or []
    if measured:
        ax.scatter(
            [m["rate_rps"] for m in measured],
            [m["p50"] for m in measured],
            marker="x",
            color="black",
            label="measured p50",
        )
        ax.scatter(
            [m["rate_rps"] for m in measured],
            [m["p99"] for m in measured],
            marker="+",
            s=60,
            color="black",
            label="measured p99",
        )
    if slo_ms is not None:
        ax.axhline(slo_ms, color="#d62728", lw=1.0, label=f"SLO {slo_ms:g} ms")
    ax.set_xlabel("arrival rate (req/s)")
    ax.set_ylabel("latency (ms)")
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", ncols=2)
    return figure_to_png(fig)
