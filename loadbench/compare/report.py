"""Renders a comparison of runs: ``compare.json``, ``compare.md`` and ``compare.html``.

Consumes the result of `loadbench.compare.compare.compare_runs` (the ``compare.json`` object: verdict,
failed rules, warnings and one entry per metric with base, candidate, delta, delta %, 99.5 % CI
of the delta and a verdict) and the loaded runs (`loadbench.compare.rundata.RunData`, or anything with
the same ``path``, ``meta``, ``summary``, ``latency_ms``, ``timeseries`` and ``samples``
attributes: `loadbench.compare.runlike.RunLike`): the first run is the base, the second the
candidate, further runs are extra candidates, each compared with the base (``candidates`` in the
result: a verdict line and a table each) and drawn in the overlay plots. Produces a Markdown
verdict + table for a pull request (`loadbench.compare.markdown`) and one self-contained HTML page
(`loadbench.compare.html`, its plots from `loadbench.compare.plots`).

This module is the entry point the command uses; the names of the renderings it re-exports are
the ones callers and tests have always imported from here.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from loadbench.compare.html import render_compare_html
from loadbench.compare.markdown import render_compare_markdown
from loadbench.compare.plots import render_overlay_plots
from loadbench.compare.runlike import RunLike
from loadbench.compare.verdict import (
    VERDICT_EMOJI,
    candidate_entries,
    candidate_verdict_lines,
    format_ci,
    format_delta,
    format_delta_pct,
    format_metric_value,
    verdict_counts,
    verdict_line,
)
from loadbench.record import rundir
from loadbench.report.html import write_text_atomic

__all__ = [
    "COMPARE_HTML",
    "COMPARE_JSON",
    "COMPARE_MD",
    "VERDICT_EMOJI",
    "RunLike",
    "candidate_entries",
    "candidate_verdict_lines",
    "format_ci",
    "format_delta",
    "format_delta_pct",
    "format_metric_value",
    "render_compare",
    "render_compare_html",
    "render_compare_markdown",
    "render_overlay_plots",
    "verdict_counts",
    "verdict_line",
]

COMPARE_JSON = "compare.json"
COMPARE_MD = "compare.md"
COMPARE_HTML = "compare.html"


def render_compare(result: dict[str, Any], runs: Sequence[RunLike], out_dir: Path) -> tuple[Path, Path, Path]:
    """Write ``compare.json``, ``compare.md`` and ``compare.html`` into ``out_dir``; return the paths.

    ``runs[0]`` is the base, ``runs[1]`` the candidate; further runs are extra candidates
    (their comparisons are ``result["candidates"][1:]``, from `loadbench.compare.compare.compare_many`),
    in the overlay plots and the settings table too.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path, html_path = out_dir / COMPARE_JSON, out_dir / COMPARE_MD, out_dir / COMPARE_HTML
    rundir.write_json(json_path, result)
    write_text_atomic(md_path, render_compare_markdown(result))
    write_text_atomic(html_path, render_compare_html(result, runs))
    return json_path, md_path, html_path
