"""The report stage: renders an analyzed run directory as ``report.html`` and ``summary.md``.

Consumes ``meta.json``, ``summary.json``, ``timeseries.csv``, ``requests.csv`` and, when the
sampler ran, ``samples.jsonl`` of a run directory (the analyzer must have run); produces one
self-contained HTML file (inline CSS, plots as base64 PNG, no network needed; `page`) and a short
Markdown summary for pull requests (`summary_md`). Everything that came from the server or the
user is escaped: it is data, never markup.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from loadbench.analyze.store import RecordStore
from loadbench.record import rundir
from loadbench.report.fmt import (
    DASH,
    format_byte_rate,
    format_bytes,
    format_count,
    format_joules,
    format_ms,
    format_number,
    format_pct,
    format_percent,
    format_rate,
    format_seconds,
    format_value,
)
from loadbench.report.html import write_text_atomic
from loadbench.report.page import METRICS_DOC, METRICS_NOTE, render_html
from loadbench.report.resources import MAX_CORRELATIONS, MAX_PROM_SERIES
from loadbench.report.rundata import error_kind_frame, load_run
from loadbench.report.summary_md import render_markdown

# What callers and tests have always reached through this module.
__all__ = [
    "DASH",
    "MAX_CORRELATIONS",
    "MAX_PROM_SERIES",
    "METRICS_DOC",
    "METRICS_NOTE",
    "error_kind_frame",
    "format_byte_rate",
    "format_bytes",
    "format_count",
    "format_joules",
    "format_ms",
    "format_number",
    "format_pct",
    "format_percent",
    "format_rate",
    "format_seconds",
    "format_value",
    "render_markdown",
    "render_report",
]


def render_report(
    run_dir: Path, requests: pd.DataFrame | None = None, store: RecordStore | None = None
) -> tuple[Path, Path]:
    """Write ``report.html`` and ``summary.md`` into an analyzed run directory; return both paths.

    ``requests``: the directory's records as `read_run_requests` gave them, or ``store``: the
    `RecordStore` `loadbench.analyze.bounded.open_bounded` gave, when the caller has opened them
    already (``loadbench report`` analyzes first: one read of millions of records). Without
    either, `load_run` chooses.
    """
    run_dir = Path(run_dir)
    run = load_run(run_dir, requests, store)
    html_path = run_dir / rundir.REPORT
    md_path = run_dir / rundir.SUMMARY_MD
    write_text_atomic(html_path, render_html(run))
    write_text_atomic(md_path, render_markdown(run.meta, run.summary))
    return html_path, md_path
