"""Report fragments for a run with ``--retries``: what the retries cost and what they saved.

Consumes ``summary.json`` ``retries`` (`loadbench.analyze.retries`); produces the "Retries"
section of ``report.html`` (a table of the figures, the failures that were retried by kind) and
its part of ``summary.md``. Nothing without the section.
"""

from __future__ import annotations

from typing import Any

from loadbench.report.fmt import DASH, as_dict, as_list, format_count, format_number, format_pct
from loadbench.report.html import esc, grid_table, kv_table
from loadbench.report.markdown import md, md_table

NOTE = (
    "Every figure of this report but this section's, the Targets' and the Replicas' is about the requests "
    "users saw: a request's latency runs from its first attempt's send to its last attempt's end, backoff "
    "waits included, and it failed only when its last attempt did."
)


def _settings(value: Any) -> str:
    settings = as_dict(value)
    if not settings:
        return "settings not recorded"
    most = settings.get("max")
    parts = [f"up to {format_count(most)} {'retry' if most == 1 else 'retries'}"]
    on = [str(x) for x in as_list(settings.get("on"))]
    if on:
        parts.append("on " + ", ".join(on))
    backoff = as_list(settings.get("backoff_ms"))
    if len(backoff) == 2:
        parts.append(f"backoff {format_number(backoff[0])}..{format_number(backoff[1])} ms")
    if settings.get("budget") is not None:
        parts.append(f"budget {format_pct(settings.get('budget'))}")
    return ", ".join(parts)


def retry_rows(section: dict[str, Any]) -> list[tuple[str, str]]:
    """(figure, value) of the section, in the order the report shows them."""
    amplification = section.get("amplification")
    return [
        ("requests (user-visible)", format_count(section.get("requests"))),
        ("attempts", format_count(section.get("attempts"))),
        ("retries", format_count(section.get("retries"))),
        ("amplification", DASH if amplification is None else f"{amplification:.3f}×"),
        ("retried requests", format_count(section.get("retried_requests"))),
        ("recovered (retried, then ok)", format_count(section.get("recovered"))),
        ("exhausted (retried, still failed)", format_count(section.get("exhausted"))),
        ("attempt error rate", format_pct(section.get("attempt_error_rate"))),
        ("error rate (user-visible)", format_pct(section.get("error_rate"))),
    ]


def _reasons(section: dict[str, Any]) -> list[list[str]]:
    return [
        [str(r.get("kind")), format_count(r.get("count"))]
        for r in map(as_dict, as_list(section.get("by_reason")))
    ]


def retries_html(summary: dict[str, Any]) -> str:
    """The "Retries" section (heading included); "" for a run without retries."""
    section = as_dict(summary.get("retries"))
    if not section:
        return ""
    said = f"Retries: {_settings(section.get('settings'))}. {NOTE}"
    parts = ["<h2 id='retries'>Retries</h2>", f"<p class='sub'>{esc(said)}</p>"]
    parts.append(kv_table((k, esc(v)) for k, v in retry_rows(section)))
    reasons = _reasons(section)
    if reasons:
        parts.append("<h3>Failed attempts that were retried, by kind</h3>")
        parts.append(grid_table(("kind", "attempts"), [[esc(c) for c in r] for r in reasons], numeric=(1,)))
    return "\n".join(parts)


def retries_markdown(summary: dict[str, Any]) -> list[str]:
    """The retries' figures for ``summary.md``; nothing without retries."""
    section = as_dict(summary.get("retries"))
    if not section:
        return []
    said = md(_settings(section.get("settings")))
    lines = ["", f"**Retries:** {said}", "", *md_table(("metric", "value"), retry_rows(section), numeric={1})]
    reasons = _reasons(section)
    if reasons:
        lines += ["", *md_table(("retried failure", "attempts"), reasons, numeric={1})]
    return lines
