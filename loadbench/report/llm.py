"""The report's "LLM" section: TTFT / ITL / TPOT / end-to-end percentiles, tokens, goodput, the
real-time ratio of streams, and four plots; and its short Markdown table.

Consumes an analyzed summary (the keys of `loadbench.analyze.llm_metrics`) and, for the plots,
their data (`loadbench.report.plotdata_llm.LlmPlotData`, from the records in memory or from a
store; latency and start from the actual send); produces HTML (everything from the run escaped by the report module's helpers) and
Markdown lines. A run without LLM keys gets nothing, and its records are never looked at.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from loadbench.report import plotkit, plots_llm
from loadbench.report.fmt import (
    PERCENTILE_KEYS,
    as_dict,
    as_list,
    format_count,
    format_ms,
    format_number,
    format_pct,
    format_rate,
)
from loadbench.report.html import esc, figure_html, grid_table, kv_table
from loadbench.report.markdown import md_table
from loadbench.report.plotdata_llm import LlmPlotData

LLM_KEYS = ("ttft_ms", "itl_ms", "tpot_ms", "e2e_ms", "tokens")
_TIME_COLUMNS = (("ttft_ms", "TTFT"), ("itl_ms", "ITL"), ("tpot_ms", "TPOT"), ("e2e_ms", "end-to-end"))
_CAPTIONS = {
    "plot-llm-ttft": (
        "Time to first token",
        "TTFT of the successful streamed requests in the measured window (from the send to the first "
        "content token); dashed: p50, p90, p99.",
    ),
    "plot-llm-itl": (
        "Inter-token latency",
        "Every gap between consecutive streamed chunks of the successful requests in the measured window; "
        "dashed: p50, p90, p99.",
    ),
    "plot-llm-tokens": (
        "Output tokens per second",
        "Output tokens of successful requests, each streamed chunk placed at its arrival (send + TTFT + "
        "gaps, weighted so a request's chunks sum to its output tokens), a request without a stream at "
        "its completion. Grey: warmup.",
    ),
    "plot-llm-tpot": (
        "TPOT against concurrency",
        "Each point is one second of the measured window: the median TPOT of the successful requests "
        "sent in it, against the mean number of requests in flight during it.",
    ),
}


def has_llm(summary: dict[str, Any]) -> bool:
    """True when the analyzer found LLM data (a TTFT or token counts) in the measured window."""
    return any(isinstance(summary.get(k), dict) for k in LLM_KEYS)


def llm_html(summary: dict[str, Any], timeseries: pd.DataFrame, data: LlmPlotData | None) -> str:
    """The whole "LLM" section (heading included); empty for a run without LLM data. ``data``: its
    plots' data (`loadbench.report.sectiondata`); no plot without it."""
    if not has_llm(summary):
        return ""
    out = ["<h2 id='llm'>LLM</h2>", _times_table(summary), _tokens_table(summary)]
    goodput = as_dict(summary.get("goodput"))
    entries = [as_dict(e) for e in as_list(goodput.get("slos"))]
    if entries:
        out.append("<h3>Per-request SLOs (goodput)</h3>")
        rows = [
            [
                f"<code>{esc(e.get('expr'))}</code>",
                esc(format_count(e.get("measured"))),
                esc(format_count(e.get("met"))),
                esc(format_pct(e.get("attainment"))),
            ]
            for e in entries
        ]
        out.append(grid_table(["SLO", "measured (successful)", "met", "attainment"], rows, numeric={1, 2, 3}))
        out.append(
            "<p class='sub'>Attainment: requests that succeeded and met the SLO, as a share of all requests "
            "in the measured window. Goodput counts the requests meeting every one of them.</p>"
        )
    if data is not None:
        out.extend(
            figure_html(key, plotkit.figure_to_png(fig), *_CAPTIONS[key])
            for key, fig in _figures(data, timeseries).items()
        )
    return "\n".join(out)


def _times_table(summary: dict[str, Any]) -> str:
    groups = [(as_dict(summary.get(key)), label) for key, label in _TIME_COLUMNS]
    rows = [
        [esc(label), *(esc(format_ms(g.get(key))) for g, _ in groups)]
        for key, label in (*PERCENTILE_KEYS, ("max", "max"), ("mean", "mean"))
    ]
    return grid_table(["", *(label for _, label in groups)], rows, numeric={1, 2, 3, 4})


def _tokens_table(summary: dict[str, Any]) -> str:
    tokens = as_dict(summary.get("tokens"))
    rate = as_dict(tokens.get("per_request_output_per_s"))
    rows = [
        ("output tokens per second (window)", format_rate(tokens.get("output_per_s"), "tokens/s")),
        (
            "output / input tokens",
            f"{format_count(tokens.get('output_total'))} / {_input_total_text(tokens)} "
            f"over {format_count(tokens.get('requests'))} requests",
        ),
        (
            "per-request output rate: p50 / min",
            f"{format_number(rate.get('p50'))} / {format_number(rate.get('min'))} tokens/s",
        ),
        ("output token counts from", _source_text(tokens.get("output_source", tokens.get("source")))),
        ("input token counts from", _input_source_text(tokens)),
    ]
    goodput = as_dict(summary.get("goodput"))
    if goodput:
        slos = as_list(goodput.get("slos"))
        rows.append(
            (
                "goodput",
                f"{format_rate(goodput.get('rps'))} ({format_pct(goodput.get('attainment'))} of requests)"
                + ("" if slos else ": no per-request SLO given, so every successful request counts"),
            )
        )
    realtime = as_dict(summary.get("llm_realtime"))
    if realtime:
        rows.append(
            (
                f"kept ahead of {format_number(realtime.get('tokens_per_s'))} tokens/s",
                f"{format_pct(realtime.get('fraction_ahead'))} of "
                f"{format_count(realtime.get('requests'))} streams",
            )
        )
    return kv_table((k, esc(v)) for k, v in rows)


# An input total the server's usage did not give and no --tokenizer counted (docs/metrics.md).
UNKNOWN_INPUT = "unknown (the server sent no usage; pass --tokenizer)"


def _input_total_text(tokens: dict[str, Any]) -> str:
    # Summaries from before the input total could be unknown hold a number there, always.
    return UNKNOWN_INPUT if tokens.get("input_total", 0) is None else format_count(tokens.get("input_total"))


def _input_source_text(tokens: dict[str, Any]) -> str:
    if "input_source" not in tokens:  # a summary from before input sources: usage or nothing
        return _source_text(tokens.get("source"))
    return {
        "usage": "the server's usage report",
        "tokenizer": "loadbench's --tokenizer (the server sent no usage)",
        "mixed": "the server's usage where it sent one, loadbench's --tokenizer elsewhere",
    }.get(str(tokens.get("input_source")), UNKNOWN_INPUT)


def _source_text(source: Any) -> str:
    return {
        "usage": "the server's usage report",
        "counted": "stream chunks counted (the server sent no usage)",
        "mixed": "the server's usage where it sent one, chunks counted elsewhere",
    }.get(str(source), "unknown")


def _figures(data: LlmPlotData, timeseries: pd.DataFrame) -> dict[str, Any]:
    """The four LLM figures, from their data (`loadbench.report.plotdata_llm`)."""
    return {
        "plot-llm-ttft": plots_llm.ttft_distribution(data.ttft),
        "plot-llm-itl": plots_llm.itl_distribution(data.itl),
        "plot-llm-tokens": plots_llm.tokens_over_time(data.tokens_per_s, timeseries),
        "plot-llm-tpot": plots_llm.tpot_vs_concurrency(data.in_flight, data.tpot_p50_ms),
    }


def llm_markdown(summary: dict[str, Any]) -> list[str]:
    """A short table for ``summary.md``: p50 / p90 / p99 of each LLM time, tokens/s and goodput."""
    if not has_llm(summary):
        return []
    rows = []
    for key, label in _TIME_COLUMNS:
        values = as_dict(summary.get(key))
        rows.append([label, *(format_ms(values.get(k)) for k in ("p50", "p90", "p99"))])
    lines = ["", "**LLM**", "", *md_table(["metric", "p50", "p90", "p99"], rows, numeric={1, 2, 3})]
    tokens = as_dict(summary.get("tokens"))
    facts = [f"output {format_rate(tokens.get('output_per_s'), 'tokens/s')}"]
    goodput = as_dict(summary.get("goodput"))
    if goodput:
        facts.append(
            f"goodput {format_rate(goodput.get('rps'))} ({format_pct(goodput.get('attainment'))} of requests)"
        )
    realtime = as_dict(summary.get("llm_realtime"))
    if realtime:
        facts.append(
            f"{format_pct(realtime.get('fraction_ahead'))} of streams kept ahead of "
            f"{format_number(realtime.get('tokens_per_s'))} tokens/s"
        )
    return [*lines, "", " · ".join(facts)]
