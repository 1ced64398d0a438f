"""``summary.md``: a short Markdown summary of a run to paste into a pull request or release review.

Consumes ``meta.json`` and ``summary.json``; every section's own lines come from its module
(verdict, LLM, network, quality, resources). Text from the run goes through `md`, so it shows as
text in GitHub, never as links, mentions or HTML.
"""

from __future__ import annotations

from typing import Any

from loadbench.report.cache import cache_markdown
from loadbench.report.firsts import firsts_markdown
from loadbench.report.fmt import (
    DASH,
    PERCENTILE_KEYS,
    as_dict,
    as_list,
    format_count,
    format_ms,
    format_pct,
    format_rate,
    format_seconds,
)
from loadbench.report.llm import llm_markdown
from loadbench.report.load import verdict_markdown
from loadbench.report.markdown import md, md_table
from loadbench.report.network import network_markdown
from loadbench.report.quality import quality_markdown
from loadbench.report.replicas import replicas_markdown
from loadbench.report.resources import resources_markdown, top_notices
from loadbench.report.retries import retries_markdown
from loadbench.report.rundata import BADGES, Identity
from loadbench.report.tables import error_cells
from loadbench.report.targets import targets_markdown

MAX_ERRORS = 5  # error kinds listed, most frequent first
MAX_EXAMPLE = 120  # characters of an error's example


def render_markdown(meta: dict[str, Any], summary: dict[str, Any]) -> str:
    """A short Markdown summary to paste into a pull request or release review."""
    who = Identity.of(meta, summary)
    reqs = as_dict(summary.get("requests"))
    lat = as_dict(summary.get("latency_ms"))
    window = as_dict(summary.get("window"))
    status_text = BADGES.get(who.status, (who.status, ""))[0]
    headline = (
        f"**loadbench** · {md(who.scenario)} against {md(who.target)} · "
        f"{format_count(reqs.get('total'))} requests in {format_seconds(window.get('duration_s'))} · "
        f"{md(status_text)}"
    )
    metrics = [
        ("throughput", format_rate(summary.get("throughput_rps"))),
        ("request rate", format_rate(summary.get("request_rate_rps"))),
        *((label, format_ms(lat.get(key))) for key, label in PERCENTILE_KEYS),
        ("max", format_ms(lat.get("max"))),
        ("mean", format_ms(lat.get("mean"))),
        ("error rate", format_pct(reqs.get("error_rate"))),
        ("requests ok / errors", f"{format_count(reqs.get('ok'))} / {format_count(reqs.get('errors'))}"),
    ]
    lines = [headline, *verdict_markdown(summary), "", *md_table(["metric", "value"], metrics, numeric={1})]
    lines += llm_markdown(summary)
    lines += network_markdown(summary)
    lines += replicas_markdown(summary)
    lines += targets_markdown(summary)
    lines += retries_markdown(summary)
    lines += cache_markdown(summary)
    lines += firsts_markdown(summary)
    lines += _by_name_markdown(as_dict(summary.get("by_name")))
    lines += _errors_markdown([as_dict(e) for e in as_list(summary.get("errors"))][:MAX_ERRORS])
    lines += quality_markdown(summary)
    lines += resources_markdown(as_dict(summary.get("resources")))
    notices = [n for n in top_notices(summary) if not n.startswith("INVALID: ")]
    if notices:
        lines += ["", "**Notices**", "", *(f"- {md(n)}" for n in notices)]
    return "\n".join(lines) + "\n"


def _by_name_markdown(by_name: dict[str, Any]) -> list[str]:
    """One row per request name; nothing for a run of one name (the metrics table says it all)."""
    if len(by_name) <= 1:
        return []
    rows = []
    for name, stats in by_name.items():
        s = as_dict(stats)
        nl = as_dict(s.get("latency_ms"))
        rows.append(
            [
                str(name),
                format_count(s.get("requests")),
                format_pct(s.get("error_rate")),
                format_rate(s.get("throughput_rps")),
                format_ms(nl.get("p50")),
                format_ms(nl.get("p99")),
            ]
        )
    headers = ["name", "requests", "error rate", "throughput", "p50", "p99"]
    return ["", *md_table(headers, rows, numeric=range(1, len(headers)))]


def _errors_markdown(errors: list[dict[str, Any]]) -> list[str]:
    """The top errors: kind, count, share, what the server said (when it said something), an example."""
    if not errors:
        return []
    headers, cells = error_cells(errors)
    text = {0, *range(3, len(headers))}  # every column but count and share
    rows = [
        [(DASH if cell is None else _clip(cell)) if i in text else str(cell) for i, cell in enumerate(row)]
        for row in cells
    ]
    return ["", "**Top errors**", "", *md_table(headers, rows, numeric={1, 2})]


def _clip(value: Any, limit: int = MAX_EXAMPLE) -> str:
    text = "" if value is None else " ".join(str(value).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
