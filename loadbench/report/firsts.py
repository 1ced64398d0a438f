"""A run's first requests in the report: ``summary.json`` ``cold_start`` (``--cold-start N``) and
``shared_prefix`` (``--shared-prefix-tokens N``), as HTML (heading, table, the cold start's
latency by order), and ``summary.md`` lines (the terminal's lines: `loadbench.cli.summary`).

Consumes the two sections (`loadbench.analyze.firsts`); produces markup and text. Each part is
empty for a run without its section.
"""

from __future__ import annotations

from typing import Any

from matplotlib.figure import Figure

from loadbench.report import plotkit
from loadbench.report.fmt import as_dict, as_list, format_count, format_ms, format_times, num
from loadbench.report.html import esc, figure_html, kv_table
from loadbench.report.markdown import md, md_table

_COLD_CAPTION = (
    "Cold start: latency of the first requests",
    "Each of the run's first requests (--cold-start N) in the order it was sent, against the measured "
    "window's p50 of the other requests (dashed). Failed requests are left out.",
)


def cold_start_rows(section: dict[str, Any]) -> list[tuple[str, str]]:
    spread = as_dict(section.get("latency_ms"))
    return [
        (
            "requests (the run's first)",
            f"{format_count(section.get('requests'))} of {format_count(section.get('asked'))}",
        ),
        ("failed among them", format_count(section.get("errors"))),
        ("the first request", format_ms(section.get("first_ms"))),
        ("their p50 / p99 / max", " / ".join(format_ms(spread.get(k)) for k in ("p50", "p99", "max"))),
        ("steady p50 (the window's other requests)", format_ms(section.get("steady_p50_ms"))),
        ("first vs steady p50", format_times(section.get("first_vs_steady"))),
        ("their p50 vs steady p50", format_times(section.get("p50_vs_steady"))),
    ]


def shared_prefix_rows(section: dict[str, Any]) -> list[tuple[str, str]]:
    rows = [("shared prefix", f"{format_count(section.get('tokens'))} tokens")]
    for key, label in (("first", "sent before any first token (uncached)"), ("later", "sent after (cached)")):
        part = as_dict(section.get(key))
        ttft = as_dict(part.get("ttft_ms"))
        rows.append(
            (
                f"{label}: TTFT p50 / p99",
                f"{format_ms(ttft.get('p50'))} / {format_ms(ttft.get('p99'))} "
                f"({format_count(part.get('count'))} requests)",
            )
        )
    rows.append(("TTFT p50 uncached vs cached", format_times(section.get("speedup_p50"))))
    return rows


def cold_start_plot(section: dict[str, Any]) -> Figure | None:
    latencies = as_list(section.get("latencies_ms"))
    points = [(i + 1, v) for i, v in enumerate(latencies) if num(v) is not None]
    if not points:
        return None
    fig, ax = plotkit.new_figure("Cold start: latency of the first requests")
    ax.plot(
        [p[0] for p in points], [p[1] for p in points], marker="o", markersize=3, linewidth=1, label="request"
    )
    steady = num(section.get("steady_p50_ms"))
    if steady is not None:
        ax.axhline(steady, linestyle="--", color="grey", linewidth=1, label="steady p50")
    ax.set_xlabel("request, in the order sent")
    ax.set_ylabel("latency (ms)")
    ax.set_yscale("log")
    ax.grid(True, alpha=0.35)
    plotkit.legend(ax)
    return fig


def firsts_html(summary: dict[str, Any]) -> str:
    """The "First requests" section (heading included); "" for a run without either part."""
    cold, prefix = as_dict(summary.get("cold_start")), as_dict(summary.get("shared_prefix"))
    if not cold and not prefix:
        return ""
    parts = ["<h2 id='first-requests'>First requests</h2>"]
    if cold:
        parts.append("<h3>Cold start</h3>")
        parts.append(kv_table((k, esc(v)) for k, v in cold_start_rows(cold)))
        fig = cold_start_plot(cold)
        if fig is not None:
            parts.append(figure_html("plot-cold-start", plotkit.figure_to_png(fig), *_COLD_CAPTION))
    if prefix:
        parts.append("<h3>Shared prefix</h3>")
        parts.append(kv_table((k, esc(v)) for k, v in shared_prefix_rows(prefix)))
    for section in (cold, prefix):
        for notice in as_list(section.get("notices")):
            parts.append(f"<p class='sub'>{esc(notice)}</p>")
    return "\n".join(parts)


def firsts_markdown(summary: dict[str, Any]) -> list[str]:
    """``summary.md``'s tables of the two parts; nothing without them."""
    lines: list[str] = []
    for key, title, rows in (
        ("cold_start", "Cold start", cold_start_rows),
        ("shared_prefix", "Shared prefix", shared_prefix_rows),
    ):
        section = as_dict(summary.get(key))
        if section:
            lines += ["", f"**{md(title)}:**", "", *md_table(("metric", "value"), rows(section), numeric={1})]
    return lines
