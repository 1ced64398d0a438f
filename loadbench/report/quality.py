"""Report fragments for quality under load and the real-time factor of media models.

Consumes ``summary.json``'s ``quality`` and ``rtf`` sections and, for the plots, the run's
request records (``expected``, ``predicted``, ``ok``, ``latency_ms``, ``media_s``); produces the
"Quality" and "Real-time factor" sections of ``report.html``, a headline tile, and Markdown
lines for ``summary.md``. Nothing when the run carried no labels and no media durations.
Everything from the run is escaped by the report module's helpers.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from loadbench.analyze import quality
from loadbench.report import plotkit, plots_quality
from loadbench.report.fmt import as_dict, format_count, format_pct, num
from loadbench.report.html import esc, figure_html, grid_table, kv_table
from loadbench.report.markdown import md_table
from loadbench.report.plotdata_hist import Histogram
from loadbench.report.plotdata_quality import QualityPlotData

_QUALITY_CAPTION = (
    "Accuracy of the labeled requests that started in each second: solid, every labeled request "
    "(a failed or unanswered one counts as wrong, so overload shows); dashed, only the answered "
    "ones. Dotted, on the right axis: labeled requests per second. Below: macro F1, precision "
    f"and recall over the labeled requests that started in the trailing {quality.ROLLING_WINDOW_S} s "
    "up to each second (the classes present in that window). Grey: warmup, excluded."
)
_RTF_CAPTION = (
    "Real-time factor of each successful request with a media duration in the measured window: "
    "processing time (from the send to the end of the response) / media duration. Left of the "
    "black RTF = 1 line, the request was processed faster than real time."
)


def _fraction(value: Any) -> str:
    v = num(value)
    return "–" if v is None else f"{v:.3f}"


def _rtf(value: Any) -> str:
    v = num(value)
    return "–" if v is None else f"{v:.3g}"


def quality_tiles(summary: dict[str, Any]) -> list[tuple[str, str]]:
    """Headline tiles: accuracy and RTF p50, when the run has them."""
    tiles = []
    q, rtf = as_dict(summary.get("quality")), as_dict(summary.get("rtf"))
    if q:
        tiles.append(("accuracy", format_pct(q.get("accuracy"))))
    if rtf:
        tiles.append(("RTF p50", _rtf(rtf.get("p50"))))
    return tiles


def quality_html(
    summary: dict[str, Any],
    timeseries: pd.DataFrame,
    quality_data: QualityPlotData | None,
    rtf_data: Histogram | None,
) -> str:
    """The "Quality" and "Real-time factor" sections (headings included); "" when neither applies.
    ``quality_data``, ``rtf_data``: their plots' data (`loadbench.report.sectiondata`); no plot
    without it."""
    out = []
    q = as_dict(summary.get("quality"))
    if q:
        out.append("<h2 id='quality'>Quality</h2>")
        out.append(_quality_table(q))
        out.append(_class_table(q))
        if quality_data is not None:
            fig = plots_quality.quality_over_time(
                quality_data.per_second, timeseries, quality_data.rolling, quality.ROLLING_WINDOW_S
            )
            out.append(
                figure_html(
                    "plot-quality-time", plotkit.figure_to_png(fig), "Quality over time", _QUALITY_CAPTION
                )
            )
    rtf = as_dict(summary.get("rtf"))
    if rtf:
        out.append("<h2 id='rtf'>Real-time factor</h2>")
        out.append(_rtf_table(rtf))
        if rtf_data is not None:
            fig = plots_quality.rtf_distribution(rtf_data)
            out.append(figure_html("plot-rtf", plotkit.figure_to_png(fig), "Real-time factor", _RTF_CAPTION))
    return "\n".join(out)


def _quality_rows(q: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        ("accuracy (failures count wrong)", format_pct(q.get("accuracy"))),
        ("accuracy of answered requests", format_pct(q.get("accuracy_answered"))),
        ("precision (macro)", _fraction(q.get("precision"))),
        ("recall (macro)", _fraction(q.get("recall"))),
        ("F1 (macro)", _fraction(q.get("f1"))),
        (
            "labeled / answered / correct",
            f"{format_count(q.get('n'))} / {format_count(q.get('answered'))} / {format_count(q.get('correct'))}",
        ),
        ("classes", format_count(q.get("classes"))),
    ]


def _quality_table(q: dict[str, Any]) -> str:
    return kv_table((k, esc(v)) for k, v in _quality_rows(q)) + (
        "<p class='sub'>Over the measured window's requests that carried an expected label. A failed "
        "request, or one without a prediction, is a wrong answer and is predicted for no class. "
        "Macro: the unweighted mean over the classes (docs/metrics.md, Quality).</p>"
    )


def _class_table(q: dict[str, Any]) -> str:
    per_class = as_dict(q.get("per_class"))
    rows = [
        [
            esc(name),
            esc(format_count(c.get("support"))),
            esc(format_count(c.get("predicted"))),
            esc(_fraction(c.get("precision"))),
            esc(_fraction(c.get("recall"))),
            esc(_fraction(c.get("f1"))),
        ]
        for name, c in ((n, as_dict(v)) for n, v in per_class.items())
    ]
    note = ""
    classes = num(q.get("classes"))
    if classes is not None and classes > len(rows):
        note = f"<p class='sub'>The {len(rows)} classes with the most support of {format_count(classes)}.</p>"
    headers = ["class", "support", "predicted", "precision", "recall", "F1"]
    return grid_table(headers, rows, numeric={1, 2, 3, 4, 5}) + note


def _rtf_rows(rtf: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        ("RTF p50 / p90 / p99", f"{_rtf(rtf.get('p50'))} / {_rtf(rtf.get('p90'))} / {_rtf(rtf.get('p99'))}"),
        ("RTF mean / max", f"{_rtf(rtf.get('mean'))} / {_rtf(rtf.get('max'))}"),
        ("faster than real time (RTF < 1)", format_pct(rtf.get("realtime_fraction"))),
        ("requests with a media duration", format_count(rtf.get("n"))),
        ("failed ones (left out)", format_count(rtf.get("failed"))),
    ]


def _rtf_table(rtf: dict[str, Any]) -> str:
    return kv_table((k, esc(v)) for k, v in _rtf_rows(rtf)) + (
        "<p class='sub'>RTF = processing time / media duration, per successful request that carried a "
        "media duration (docs/metrics.md, Real-time factor).</p>"
    )


def quality_markdown(summary: dict[str, Any]) -> list[str]:
    """Markdown lines for ``summary.md`` (empty when the run has neither section)."""
    lines: list[str] = []
    q, rtf = as_dict(summary.get("quality")), as_dict(summary.get("rtf"))
    if q:
        lines += ["", "**Quality**", "", *md_table(["metric", "value"], _quality_rows(q), numeric={1})]
    if rtf:
        lines += [
            "",
            "**Real-time factor**",
            "",
            *md_table(["metric", "value"], _rtf_rows(rtf), numeric={1}),
        ]
    return lines
