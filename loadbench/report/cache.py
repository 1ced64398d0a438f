"""Report fragments for cache effects: hits and misses, cold and warm, the hit ratio by cache size.

Consumes ``summary.json`` ``cache`` (`loadbench.analyze.cache`) and the histogram of the
window's successful attempts (each reached the server's cache) that
`loadbench.report.plotdata_cache` makes from the records in memory or from a store; produces the "Cache"
section of ``report.html`` (a table of the figures, the latency histogram on a log axis with hits
and misses coloured, or the mixture's two components when the hits are an estimate, and the
replayed hit ratio against cache size with the measured ratio beside it) and its part of
``summary.md``. Nothing without the section. Text from the run is escaped.
"""

from __future__ import annotations

from typing import Any

from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter, StrMethodFormatter

from loadbench.report import plotkit
from loadbench.report.fmt import (
    as_dict,
    as_list,
    format_count,
    format_ms,
    format_pct,
    format_times,
    num,
)
from loadbench.report.html import esc, figure_html, kv_table
from loadbench.report.markdown import md, md_table
from loadbench.report.plotdata_cache import CacheHistogram

SOURCES = {
    "header": "hits as the answers' cache header said",
    "field": "hits as the answers' JSON field said",
    "mixture": "hits estimated from the latency alone (a two-component mixture on log latency)",
}
_HISTOGRAM_CAPTION = (
    "Latency of hits and misses",
    "Successful requests of the measured window by latency (log axis), stacked: hits as the server said "
    "(or, for an estimate, the requests the mixture's faster component claims) and misses.",
)
_REPLAY_CAPTION = (
    "Hit ratio by cache size (replayed)",
    "The hit ratio an LRU and an LFU cache of each size would have had on this run's payload sequence, "
    "replayed offline in send order (warmup included, counted in the window only); the dashed line is the "
    "hit ratio measured, the dotted one the ceiling (every repeat a hit). Where the measured ratio crosses "
    "the LRU line is the size the server's cache behaves as; under concurrency the server's order may "
    "differ a little from the send order.",
)


def cache_rows(section: dict[str, Any]) -> list[tuple[str, str]]:
    """(figure, value) of the section, in the order the report shows them."""
    hit, miss = as_dict(section.get("hit_latency_ms")), as_dict(section.get("miss_latency_ms"))
    rows = [
        ("hit ratio", format_pct(section.get("hit_ratio"))),
        ("hits / misses", f"{format_count(section.get('hits'))} / {format_count(section.get('misses'))}"),
        ("hit latency p50 / p90 / p99", " / ".join(format_ms(hit.get(k)) for k in ("p50", "p90", "p99"))),
        ("miss latency p50 / p90 / p99", " / ".join(format_ms(miss.get(k)) for k in ("p50", "p90", "p99"))),
        ("speedup of a hit (miss p50 / hit p50)", format_times(section.get("speedup_p50"))),
    ]
    if section.get("distinct_payloads") is not None:
        cold, warm = as_dict(section.get("cold")), as_dict(section.get("warm"))
        rows += [
            ("distinct payloads", format_count(section.get("distinct_payloads"))),
            ("repeat share (requests repeating an earlier payload)", format_pct(section.get("repeat_share"))),
            ("cold (first of a payload): count, p50, p99", _count_spread(cold)),
            ("warm (repeats): count, p50, p99", _count_spread(warm)),
            ("cold / warm p50", format_times(section.get("cold_warm_speedup_p50"))),
        ]
    mixture = as_dict(section.get("mixture"))
    if mixture:
        rows.append(("mixture separation (Ashman's D)", f"{num(mixture.get('ashman_d')) or 0:.2f}"))
    return rows


def _count_spread(part: dict[str, Any]) -> str:
    return f"{format_count(part.get('count'))}, {format_ms(part.get('p50'))}, {format_ms(part.get('p99'))}"


def _said(section: dict[str, Any]) -> str:
    return SOURCES.get(str(section.get("source")), f"source {section.get('source')}") + "."


def latency_histogram(data: CacheHistogram | None) -> Figure | None:
    """Hits and misses by latency on a log axis; None without the figures to split them."""
    if data is None:
        return None
    fig, ax = plotkit.new_figure("Latency of hits and misses")
    edges = data.edges
    estimate = " (estimated)" if data.estimate else ""
    # Each bin's count as one weighted value at its left edge: the bars ``ax.hist`` draws of the values.
    ax.hist(
        [edges[:-1], edges[:-1]],
        bins=edges.tolist(),
        weights=[data.hits, data.misses],
        stacked=True,
        color=[plotkit.SERIES_COLORS[2], plotkit.SERIES_COLORS[1]],
        label=[
            f"hits{estimate} ({int(data.hits.sum()):,})",
            f"misses{estimate} ({int(data.misses.sum()):,})",
        ],
    )
    lo, hi = float(edges[0]), float(edges[-1])
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(StrMethodFormatter("{x:g}"))  # 2, not 2×10⁰
    ax.xaxis.set_minor_formatter(StrMethodFormatter("{x:g}") if hi / lo < 20 else NullFormatter())
    ax.set_xlabel("latency (ms, log scale)")
    ax.set_ylabel("requests")
    ax.grid(True, alpha=0.35)
    plotkit.legend(ax)
    return fig


def replay_plot(section: dict[str, Any]) -> Figure | None:
    """The replayed LRU and LFU hit ratios by cache size, the measured ratio and the ceiling."""
    replay = as_dict(section.get("replay"))
    sizes = [num(s) for s in as_list(replay.get("sizes"))]
    if not sizes or any(s is None for s in sizes):
        return None
    fig, ax = plotkit.new_figure("Hit ratio by cache size (replayed)")
    for name, colour, marker in (
        ("lru", plotkit.SERIES_COLORS[0], "o"),
        ("lfu", plotkit.SERIES_COLORS[1], "s"),
    ):
        points = [
            (s, num(v)) for s, v in zip(sizes, as_list(replay.get(name)), strict=False) if num(v) is not None
        ]
        if points:
            xs, ys = zip(*points, strict=True)
            ax.plot(xs, [y * 100 for y in ys], marker=marker, ms=4, lw=1.4, color=colour, label=name.upper())
    ceiling = num(replay.get("infinite"))
    if ceiling is not None:
        ax.axhline(ceiling * 100, color="#777777", ls=":", lw=1.2, label="every repeat a hit")
    measured = num(replay.get("measured"))
    if measured is not None:
        ax.axhline(measured * 100, color=plotkit.C_ERR, ls="--", lw=1.2, label="measured")
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))  # 16 entries, not 2⁴
    ax.set_xlabel("cache size (entries, log scale)")
    ax.set_ylabel("hit ratio (%)")
    ax.set_ylim(0, 105)
    ax.grid(True, alpha=0.35)
    plotkit.legend(ax)
    return fig


def cache_html(summary: dict[str, Any], histogram: CacheHistogram | None) -> str:
    """The "Cache" section (heading included); "" for a run without it. ``histogram``: what its
    latency histogram draws (`loadbench.report.plotdata_cache`), None for none."""
    section = as_dict(summary.get("cache"))
    if not section:
        return ""
    parts = ["<h2 id='cache'>Cache</h2>", f"<p class='sub'>{esc(_said(section))}</p>"]
    parts.append(kv_table((k, esc(v)) for k, v in cache_rows(section)))
    for notice in as_list(section.get("notices")):
        parts.append(f"<p class='sub'>{esc(notice)}</p>")
    for figure_id, fig, caption in (
        ("plot-cache-latency", latency_histogram(histogram), _HISTOGRAM_CAPTION),
        ("plot-cache-replay", replay_plot(section), _REPLAY_CAPTION),
    ):
        if fig is not None:
            parts.append(figure_html(figure_id, plotkit.figure_to_png(fig), *caption))
    return "\n".join(parts)


def cache_markdown(summary: dict[str, Any]) -> list[str]:
    """The cache's figures for ``summary.md``; nothing without the section."""
    section = as_dict(summary.get("cache"))
    if not section:
        return []
    lines = [
        "",
        f"**Cache:** {md(_said(section))}",
        "",
        *md_table(("metric", "value"), cache_rows(section), numeric={1}),
    ]
    replay = as_dict(section.get("replay"))
    sizes = as_list(replay.get("sizes"))
    if sizes:
        rows = [
            [format_count(s), format_pct(lru), format_pct(lfu)]
            for s, lru, lfu in zip(
                sizes, as_list(replay.get("lru")), as_list(replay.get("lfu")), strict=False
            )
        ]
        lines += ["", *md_table(("cache size", "LRU hit ratio", "LFU hit ratio"), rows, numeric={0, 1, 2})]
    return lines
