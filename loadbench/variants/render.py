"""``variants.md`` (for a pull request), ``variants.html`` (the table and the Pareto plot) and
``variants.json`` from `loadbench.variants.variants.variants_table`'s dict.

Every label, path and value from the runs is escaped: `report.markdown.md` in Markdown,
`report.html.esc` and the autoescaping template ``variants.html.j2`` in HTML, and
`plotkit.legend_text` on the plot.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from loadbench.record import rundir
from loadbench.report import plotkit
from loadbench.report.fmt import DASH, as_dict, format_ms, format_number, num
from loadbench.report.html import (
    CSS,
    esc,
    figure_html,
    grid_table,
    render_template,
    trusted,
    write_text_atomic,
)
from loadbench.report.markdown import md, md_table

HEADERS = (
    "variant",
    "accuracy",
    "Δ accuracy",
    "macro F1",
    "macro recall",
    "p50",
    "p99",
    "Δ p99",
    "throughput",
    "server RSS",
    "GPU memory",
    "J / request",
    "Pareto",
    "quality",
)
NUMERIC = set(range(1, 12))
FOOTNOTE = (
    "Intervals: 99.5 % block bootstrap over seconds (as `loadbench compare`; none for a window under 5 s); "
    "Δ = variant − baseline, "
    "accuracy in points. Memory: peak in the measured window. Pareto: no other variant at least as good on "
    "accuracy, p99 and memory and better on one. Throughput of a sweep: its capacity under the SLO."
)


def _pct(value: Any) -> str:
    v = num(value)
    return DASH if v is None else f"{v * 100:.2f} %"


def _points(value: Any) -> str:
    """A difference of accuracy, in percentage points."""
    v = num(value)
    return DASH if v is None else f"{v * 100:.2f} pp"


def _ci(value: str, interval: Any, scale: float = 1.0, digits: int = 2) -> str:
    if not isinstance(interval, list) or len(interval) != 2:
        return value
    lo, hi = (num(x) for x in interval)
    if lo is None or hi is None:
        return value
    return f"{value} [{lo * scale:.{digits}f}, {hi * scale:.{digits}f}]"


def _delta(entry: dict[str, Any], key: str, scale: float = 1.0, unit: str = "") -> str:
    vs = as_dict(as_dict(entry.get("vs_baseline")).get(key))
    delta = num(vs.get("delta"))
    if delta is None:
        return DASH
    return _ci(f"{delta * scale:+.2f}{unit}", vs.get("ci"), scale)


def rows(table: dict[str, Any]) -> list[list[str]]:
    """One plain-text row per variant, in ``HEADERS`` order."""
    out = []
    for e in table.get("variants", []):
        ci = as_dict(e.get("ci"))
        latency = as_dict(e.get("latency_ms"))
        baseline = e.get("label") == table.get("baseline")
        quality = (
            "baseline"
            if baseline
            else ("FLAGGED: drop " + _points(e.get("quality_drop")) if e.get("flagged") else "ok")
        )
        if not baseline and e.get("quality_drop") is None:
            quality = DASH
        out.append(
            [
                str(e.get("label")),
                _ci(_pct(e.get("accuracy")), ci.get("accuracy"), 100.0),
                DASH if baseline else _delta(e, "accuracy", 100.0, " pp"),
                _ci(format_number(e.get("f1_macro"), 4), ci.get("f1_macro"), 1.0, 4),
                _ci(format_number(e.get("recall_macro"), 4), ci.get("recall_macro"), 1.0, 4),
                _ci(format_ms(latency.get("p50")), ci.get("latency_ms.p50")),
                _ci(format_ms(latency.get("p99")), ci.get("latency_ms.p99")),
                DASH if baseline else _delta(e, "latency_ms.p99", 1.0, " ms"),
                _ci(format_number(e.get("throughput_rps")) + " req/s", ci.get("throughput_rps"), 1.0, 1)
                + (" (capacity)" if e.get("capacity_rps") is not None else ""),
                _mb(e.get("server_rss_mb"), e.get("server_rss_median_mb")),
                _mb(e.get("gpu_memory_mb"), e.get("gpu_memory_median_mb")),
                DASH
                if num(e.get("energy_j_per_request")) is None
                else f"{num(e.get('energy_j_per_request')):.4g} J",
                "yes" if e.get("pareto") else "no",
                quality,
            ]
        )
    return out


def _mb(peak: Any, median: Any) -> str:
    if num(peak) is None:
        return DASH
    return f"{format_number(peak)} MB (median {format_number(median)})"


def variants_markdown(table: dict[str, Any]) -> str:
    """``variants.md``: a heading line, the table and the footnote."""
    flagged = [str(e.get("label")) for e in table.get("variants", []) if e.get("flagged")]
    head = f"**Model variants** against baseline `{md(table.get('baseline'))}`"
    if flagged:
        head += (
            f": ⚠️ accuracy drop over {_points(table.get('max_quality_drop'))} for {md(', '.join(flagged))}"
        )
    return "\n".join(
        [head, "", *md_table(HEADERS, rows(table), NUMERIC), "", f"<sub>{md(FOOTNOTE)}</sub>", ""]
    )


def pareto_figure(table: dict[str, Any]) -> Figure:
    """Accuracy against p99 latency, a bubble per variant sized by its memory, the Pareto front joined."""
    fig, ax = plotkit.new_figure("Quality vs p99 latency (bubble: memory)")
    points = [
        (e, num(as_dict(e.get("latency_ms")).get("p99")), num(e.get("accuracy")))
        for e in table.get("variants", [])
    ]
    drawn = [(e, x, y) for e, x, y in points if x is not None and y is not None]
    if not drawn:
        return plotkit.no_data(fig, ax, "no variant has both accuracy and p99")
    memories = [num(e.get("memory_mb")) or 0.0 for e, _, _ in drawn]
    top = max(memories) or 1.0
    for (e, x, y), memory in zip(drawn, memories, strict=True):
        size = 60.0 + 600.0 * memory / top
        color = plotkit.C_P50 if e.get("pareto") else "#999999"
        ax.scatter([x], [y * 100.0], s=size, color=color, alpha=0.6, edgecolors="black", linewidths=0.6)
        ax.annotate(
            plotkit.legend_text(str(e.get("label")), 30),
            (x, y * 100.0),
            textcoords="offset points",
            xytext=(8, 6),
            fontsize=9,
        )
    front = sorted((x, y * 100.0) for e, x, y in drawn if e.get("pareto"))
    if len(front) > 1:
        ax.plot(
            [p[0] for p in front],
            [p[1] for p in front],
            color=plotkit.C_P50,
            linestyle="--",
            linewidth=1,
            label="Pareto front",
        )
        ax.legend(loc="best", fontsize=8)
    ax.margins(x=0.15, y=0.15)  # room for the labels beside the outermost bubbles
    ax.set_xlabel("p99 latency (ms)")
    ax.set_ylabel("accuracy (%)")
    ax.grid(True, alpha=0.3)
    return fig


def variants_html(table: dict[str, Any]) -> str:
    png = plotkit.figures_to_png({"pareto": pareto_figure(table)})["pareto"]
    table_html = grid_table(HEADERS, [[esc(c) for c in r] for r in rows(table)], NUMERIC)
    return render_template(
        "variants.html.j2",
        css=trusted(CSS),
        baseline=table.get("baseline"),
        flagged=[e.get("label") for e in table.get("variants", []) if e.get("flagged")],
        max_drop=_points(table.get("max_quality_drop")),
        table=trusted(table_html),
        figure=trusted(
            figure_html(
                "pareto",
                png,
                "Quality vs p99 latency",
                "Green: on the Pareto front; bubble area: memory (server RSS + GPU).",
            )
        ),
        runs=[
            (e.get("label"), e.get("run"), e.get("scenario"), e.get("target"))
            for e in table.get("variants", [])
        ],
        footnote=FOOTNOTE,
    )


def write_variants(table: dict[str, Any], out: Path) -> list[Path]:
    """``variants.json``, ``variants.md`` and ``variants.html`` in ``out``; their paths."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "variants.json", out / "variants.md", out / "variants.html"]
    rundir.write_json(paths[0], table)
    write_text_atomic(paths[1], variants_markdown(table))
    write_text_atomic(paths[2], variants_html(table))
    return paths
