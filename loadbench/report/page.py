"""``report.html``: the page of one run, assembled from its sections and rendered through the
``report.html.j2`` template (jinja2, autoescaping on).

The header (title, status badge, headline tiles, saturation warning, notices), the summary,
requests-by-name, errors and run tables go into the template as plain values and are escaped
there; the sections built by their own modules (verdict, load, network, replicas, targets,
retries, cache, quality, LLM with the kit; resources from its template) go in as `trusted` markup. Plots are drawn
here and inlined as base64 PNGs, so the page needs no file beside it and no network.
"""

from __future__ import annotations

from typing import Any

from loadbench.report import plotkit, plots
from loadbench.report.cache import cache_html
from loadbench.report.firsts import firsts_html
from loadbench.report.fmt import (
    as_dict,
    format_count,
    format_ms,
    format_pct,
    format_percent,
    format_rate,
    format_seconds,
    num,
    utc,
)
from loadbench.report.html import CSS, png_base64, render_template, trusted
from loadbench.report.llm import llm_html
from loadbench.report.load import VERDICT_CSS, load_html, verdict_html
from loadbench.report.network import network_html
from loadbench.report.quality import quality_html, quality_tiles
from loadbench.report.replicas import replicas_html
from loadbench.report.resources import all_gpus, resources_html, saturation_warning, top_notices
from loadbench.report.retries import retries_html
from loadbench.report.rundata import BADGES, Identity, Run
from loadbench.report.tables import (
    BY_NAME_HEADERS,
    by_name_rows,
    error_headers,
    error_rows,
    run_facts,
    summary_rows,
)
from loadbench.report.targets import targets_html

TEMPLATE = "report.html.j2"
METRICS_DOC = "docs/metrics.md"
METRICS_NOTE = (
    "latencies are exact per-request measurements from Locust's request event, percentiles computed "
    "with numpy linear interpolation over successful requests in the measured window"
)
PLOT_CAPTIONS = {
    "plot-latency-time": (
        "Latency over time",
        "Each dot is one request (successful in blue, failed as red crosses; beyond "
        f"{plots.MAX_POINTS:,} successes or {plots.MAX_ERROR_POINTS:,} failures, a seeded random sample "
        "of them, as the legend says); lines are the "
        "per-second p50 and p99 of all successful requests. Grey: warmup, excluded from the metrics.",
    ),
    "plot-percentiles": (
        "Latency by percentile",
        "Latency at each percentile of successful requests in the measured window; the x axis "
        "stretches the tail (each tick is ten times rarer than the one before).",
    ),
    "plot-throughput": (
        "Throughput over time",
        "Successful and failed requests completed per second by start time, and active users (dashed).",
    ),
    "plot-errors": (
        "Errors over time",
        "Failed requests per second, stacked by HTTP status or exception type.",
    ),
}


def render_html(run: Run) -> str:
    """The whole self-contained report page."""
    meta, summary = run.meta, run.summary
    window = as_dict(summary.get("window"))
    data = run.sections
    return render_template(
        TEMPLATE,
        **_header(meta, summary),
        css=trusted(CSS + VERDICT_CSS),
        run_id=as_dict(summary.get("run")).get("id") or meta.get("run_id"),
        measured=format_seconds(window.get("duration_s")),
        started=utc(window.get("start_unix_s")),
        summary_rows=summary_rows(summary),
        load=trusted(load_html(summary)),
        network=trusted(network_html(summary, meta)),  # "Where the time goes"
        # Replicas and targets count attempts (each went somewhere); both "" without their section.
        replicas=trusted(replicas_html(summary, run.timeseries, data.replicas)),
        targets=trusted(targets_html(summary, run.timeseries, data.targets)),
        retries=trusted(retries_html(summary)),  # "" without retries
        cache=trusted(cache_html(summary, data.cache)),  # "" without
        firsts=trusted(firsts_html(summary)),  # "" without --cold-start or --shared-prefix-tokens
        quality=trusted(quality_html(summary, run.timeseries, data.quality, data.rtf)),
        llm=trusted(llm_html(summary, run.timeseries, data.llm)),  # "" without LLM data
        figures=[(key, png_base64(png), *PLOT_CAPTIONS[key]) for key, png in render_plots(run).items()],
        resources=trusted(resources_html(summary, render_resources_plot(run))),
        by_name_headers=BY_NAME_HEADERS,
        by_name=by_name_rows(summary),
        error_headers=error_headers(summary),
        errors=error_rows(summary),
        facts=run_facts(meta, summary),
        metrics_note=METRICS_NOTE,
        metrics_doc=METRICS_DOC,
        version=as_dict(meta.get("versions")).get("loadbench"),
    )


def _header(meta: dict[str, Any], summary: dict[str, Any]) -> dict[str, Any]:
    """The header's values: title, status badge, headline tiles, verdict, warning and notices."""
    who = Identity.of(meta, summary)
    badge_text, badge_class = BADGES.get(who.status, (who.status, "warn"))
    resources = as_dict(summary.get("resources"))
    return {
        "title": f"loadbench report — {who.scenario} against {who.target}",
        "badge_text": badge_text,
        "badge_class": badge_class,
        "tiles": headline_tiles(summary),
        "verdict": trusted(verdict_html(summary)),
        "saturation": saturation_warning(resources),
        "notices": [n for n in top_notices(summary) if not n.startswith("INVALID: ")],
    }


def headline_tiles(summary: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, value) of each tile at the top of the page."""
    reqs = as_dict(summary.get("requests"))
    lat = as_dict(summary.get("latency_ms"))
    tiles = [
        ("throughput", format_rate(summary.get("throughput_rps"))),
        ("p50 latency", format_ms(lat.get("p50"))),
        ("p99 latency", format_ms(lat.get("p99"))),
        ("error rate", format_pct(reqs.get("error_rate"))),
        ("requests", format_count(reqs.get("total"))),
    ]
    gpus = all_gpus(as_dict(summary.get("resources")))
    if gpus:
        tiles.append(("GPU util", format_percent(gpus[0][1].get("util_mean"))))
    return tiles + quality_tiles(summary)


def render_plots(run: Run) -> dict[str, bytes]:
    """The four report plots as PNG bytes, keyed by their ``<figure>`` id."""
    figures = {
        "plot-latency-time": plots.latency_scatter(run.plots.scatter, run.timeseries),
        "plot-percentiles": plots.percentile_figure(run.plots.curve),
        "plot-throughput": plots.throughput_over_time(run.timeseries),
        "plot-errors": plots.errors_over_time(run.timeseries, run.plots.errors),
    }
    return {key: plotkit.figure_to_png(fig) for key, fig in figures.items()}


def render_resources_plot(run: Run) -> bytes | None:
    """The stacked resources figure as PNG bytes; None when the run has no resource samples."""
    if run.samples.empty or len(run.samples.columns) < 2:
        return None
    window_start = num(as_dict(run.summary.get("window")).get("start_unix_s"))
    fig = plots.resources_over_time(run.timeseries, run.samples, run.run_start, window_start)
    return plotkit.figure_to_png(fig)
