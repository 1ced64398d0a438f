"""The report stage: renders an analyzed run directory as ``report.html`` and ``summary.md``.

Consumes ``meta.json``, ``summary.json``, ``timeseries.csv``, ``requests.csv`` and, when the
sampler ran, ``samples.jsonl`` of a run directory (the analyzer must have run); produces one self-contained HTML file (inline CSS,
plots as base64 PNG, no network needed) and a short Markdown summary for pull requests.
Everything that came from the server or the user is escaped: it is data, never markup.
"""

from __future__ import annotations

import base64
import html
import math
import os
import shlex
import tempfile
from collections.abc import Container, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from loadbench.analyze import stats
from loadbench.analyze.resources import SATURATED_PERCENT
from loadbench.errors import RunDirError
from loadbench.record import rundir
from loadbench.record.records import read_requests, read_samples
from loadbench.report import plots

DASH = "–"  # shown for a missing value
PERCENTILE_KEYS = (("p50", "p50"), ("p90", "p90"), ("p95", "p95"), ("p99", "p99"), ("p999", "p99.9"))
METRICS_DOC = "docs/metrics.md"
METRICS_NOTE = (
    "latencies are exact per-request measurements from Locust's request event, percentiles computed "
    "with numpy linear interpolation over successful requests in the measured window"
)
MIB = 1024 * 1024
MAX_CORRELATIONS = 8  # latency correlations shown, strongest first
MAX_PROM_SERIES = 30  # Prometheus series shown in the report table
_TS_COLUMNS = ("second", "start_unix_s", "requests", "ok", "errors", "p50_ms", "p99_ms", "users", "in_warmup")
_BADGES = {
    rundir.STATUS_COMPLETE: ("complete", "ok"),
    rundir.STATUS_INTERRUPTED: ("interrupted", "warn"),
    rundir.STATUS_FAILED: ("failed", "bad"),
    rundir.STATUS_RUNNING: ("incomplete", "warn"),
}


# ---------------------------------------------------------------------------------------------
# Number formatting (shared with other stages)


def _num(value: Any) -> float | None:
    """The value as a finite float, or None when it is missing, null, NaN or not a number."""
    if value is None or isinstance(value, bool):
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def format_ms(value: float | None, unit: bool = True) -> str:
    """A latency: 3 significant digits, at least 1 decimal under 100 ms (``4.21 ms``, ``1,234 ms``)."""
    v = _num(value)
    if v is None:
        return DASH
    if abs(v) >= 99.95:
        text = f"{v:,.0f}"
    elif v == 0:
        text = "0.0"
    else:
        r = float(f"{v:.3g}")  # round first so 9.996 becomes 10.0, not 10.00
        decimals = max(1, 2 - math.floor(math.log10(abs(r))))
        text = f"{r:,.{decimals}f}"
    return f"{text} ms" if unit else text


def format_rate(value: float | None, unit: str = "req/s") -> str:
    """A rate with one decimal and thousands separators: ``1,234.5 req/s``."""
    v = _num(value)
    return DASH if v is None else f"{v:,.1f} {unit}".rstrip()


def format_pct(fraction: float | None) -> str:
    """A fraction (0.012) as a percentage with two decimals: ``1.20 %``."""
    v = _num(fraction)
    return DASH if v is None else f"{v * 100:.2f} %"


def format_count(value: float | None) -> str:
    """A count with thousands separators: ``12,345``."""
    v = _num(value)
    return DASH if v is None else f"{round(v):,}"


def format_seconds(value: float | None) -> str:
    """A duration in seconds with one decimal: ``28.0 s``."""
    v = _num(value)
    return DASH if v is None else f"{v:,.1f} s"


def format_bytes(value: float | None) -> str:
    """A byte count in binary units: ``512 B``, ``3.4 KiB``, ``15.6 GiB``."""
    v = _num(value)
    if v is None:
        return DASH
    if abs(v) < 1024:
        return f"{v:,.0f} B"
    for unit in ("KiB", "MiB", "GiB"):
        v /= 1024
        if abs(v) < 1024 or unit == "GiB":
            break
    return f"{v:,.1f} {unit}"


def format_percent(value: float | None) -> str:
    """A value already in percent, one decimal: ``56.7 %``."""
    v = _num(value)
    return DASH if v is None else f"{v:,.1f} %"


def format_byte_rate(value: float | None) -> str:
    """Bytes per second in binary units: ``1.5 MiB/s``."""
    v = _num(value)
    return DASH if v is None else f"{format_bytes(v)}/s"


def format_number(value: float | None, decimals: int = 1) -> str:
    """A plain number: integers without decimals (``24``), others rounded (``7.5``)."""
    v = _num(value)
    if v is None:
        return DASH
    return f"{v:,.0f}" if v == round(v) else f"{v:,.{decimals}f}"


def format_value(value: float | None) -> str:
    """A value of unknown scale (a Prometheus series): 4 significant digits, no exponent below 1e15."""
    v = _num(value)
    if v is None:
        return DASH
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{float(f'{v:.4g}'):g}" if abs(v) >= 1e-4 or v == 0 else f"{v:.3e}"


def format_joules(value: float | None) -> str:
    """Energy: ``3,600 J``, ``12.3 J``, ``0.0123 J``."""
    v = _num(value)
    if v is None:
        return DASH
    return f"{v:,.0f} J" if abs(v) >= 100 else f"{format_value(v)} J"


def _utc(value: Any) -> str:
    v = _num(value)
    return DASH if v is None else rundir.iso_utc(v)


# ---------------------------------------------------------------------------------------------
# Loading


@dataclass(slots=True)
class _Run:
    """Everything the report needs, loaded once."""

    run_dir: Path
    meta: dict[str, Any]
    summary: dict[str, Any]
    timeseries: pd.DataFrame
    requests: pd.DataFrame
    run_start: float  # unix s of second 0 of the timeseries
    samples: pd.DataFrame  # resource samples; just a ``unix_s`` column when there are none


def _load(run_dir: Path, requests: pd.DataFrame | None = None) -> _Run:
    meta = rundir.read_meta(run_dir)
    for name in (rundir.SUMMARY, rundir.TIMESERIES):
        if not (run_dir / name).is_file():
            raise RunDirError(f"{run_dir} has no {name}: run the analyzer first (loadbench report {run_dir})")
    summary = rundir.read_json(run_dir / rundir.SUMMARY)
    timeseries = _read_timeseries(run_dir / rundir.TIMESERIES)
    if requests is None:
        requests = read_requests(run_dir / rundir.REQUESTS)
    if not timeseries.empty:
        # The analyzer's seconds are the reference, so scatter points line up with per-second rows.
        run_start = float(timeseries["start_unix_s"].iloc[0] - timeseries["second"].iloc[0])
    elif _num(meta.get("started_unix_s")) is not None:
        run_start = float(meta["started_unix_s"])
    else:
        run_start = float(requests["start_unix_s"].min()) if len(requests) else 0.0
    samples = read_samples(run_dir / rundir.SAMPLES)
    return _Run(run_dir, meta, summary, timeseries, requests, run_start, samples)


def _read_timeseries(path: Path) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        return pd.DataFrame({c: pd.Series([], dtype=float) for c in _TS_COLUMNS})
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise RunDirError(f"cannot read {path}: {' '.join(str(exc).split())[:160]}") from None
    missing = [c for c in ("second", "start_unix_s") if c not in frame]
    if missing:
        raise RunDirError(f"{path} is not a timeseries file: missing column(s) {', '.join(missing)}")
    for c in _TS_COLUMNS:
        if c not in frame:
            frame[c] = np.nan
        frame[c] = pd.to_numeric(frame[c], errors="coerce")
    return frame


def error_kind_frame(requests: pd.DataFrame, run_start: float) -> pd.DataFrame:
    """Failed requests counted per (second, kind), with the analyzer's own kind rule."""
    failed = requests[requests["ok"].to_numpy() == 0]
    if failed.empty:
        return pd.DataFrame({"second": pd.Series([], dtype="int64"), "kind": [], "count": []})
    # Count each distinct (second, status, error) first, then name each of those rows' pairs
    # once: few, even when failures are many.
    second = np.floor(failed["start_unix_s"].to_numpy() - run_start).astype("int64")
    keyed = pd.DataFrame({"second": second, "status": failed["status"].to_numpy(), "error": failed["error"]})
    counts = keyed.groupby(["second", "status", "error"], sort=False, observed=True, dropna=False).size()
    counts = counts[counts > 0].rename("count").reset_index()
    kinds: dict[tuple[int, str], str] = {}
    kind = []
    for st, er in zip(counts["status"].tolist(), counts["error"].astype(str).tolist(), strict=True):
        if (st, er) not in kinds:
            kinds[(st, er)] = stats.error_kind(int(st), er)
        kind.append(kinds[(st, er)])
    frame = pd.DataFrame({"second": counts["second"].to_numpy(), "kind": kind, "count": counts["count"]})
    return frame.groupby(["second", "kind"], sort=True)["count"].sum().rename("count").reset_index()


# ---------------------------------------------------------------------------------------------
# Public entry point


def render_report(run_dir: Path, requests: pd.DataFrame | None = None) -> tuple[Path, Path]:
    """Write ``report.html`` and ``summary.md`` into an analyzed run directory; return both paths.

    ``requests``: the directory's ``requests.csv`` as `read_requests` gave it, when the caller
    has already read it (``loadbench report`` analyzes first: one read of millions of records).
    """
    run_dir = Path(run_dir)
    run = _load(run_dir, requests)
    html_path = run_dir / rundir.REPORT
    md_path = run_dir / rundir.SUMMARY_MD
    _write_text_atomic(html_path, _render_html(run))
    _write_text_atomic(md_path, render_markdown(run.meta, run.summary))
    return html_path, md_path


def _render_resources_plot(run: _Run) -> bytes | None:
    """The stacked resources figure as PNG bytes; None when the run has no resource samples."""
    if run.samples.empty or len(run.samples.columns) < 2:
        return None
    window_start = _num(_dict(run.summary.get("window")).get("start_unix_s"))
    fig = plots.resources_over_time(run.timeseries, run.samples, run.run_start, window_start)
    return plots.figure_to_png(fig)


def _render_plots(run: _Run) -> dict[str, bytes]:
    """The four report plots as PNG bytes, keyed by their ``<figure>`` id."""
    req = run.requests
    start = req["start_unix_s"].to_numpy(dtype=float) - run.run_start
    latency = req["latency_ms"].to_numpy(dtype=float)
    ok = req["ok"].to_numpy().astype(bool)
    figures = {
        "plot-latency-time": plots.latency_over_time(start, latency, ok, run.timeseries),
        "plot-percentiles": plots.latency_percentiles(latency[ok & _in_window(req, run.summary)]),
        "plot-throughput": plots.throughput_over_time(run.timeseries),
        "plot-errors": plots.errors_over_time(run.timeseries, error_kind_frame(req, run.run_start)),
    }
    return {key: plots.figure_to_png(fig) for key, fig in figures.items()}


def _in_window(requests: pd.DataFrame, summary: dict[str, Any]) -> np.ndarray:
    """Requests whose start lies in the analyzer's measured window (inclusive both ends)."""
    window = summary.get("window") or {}
    start = requests["start_unix_s"].to_numpy(dtype=float)
    mask = np.ones(start.size, dtype=bool)
    lo, hi = _num(window.get("start_unix_s")), _num(window.get("end_unix_s"))
    if lo is not None:
        mask &= start >= lo
    if hi is not None:
        mask &= start <= hi
    return mask


def _write_text_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a report is meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ---------------------------------------------------------------------------------------------
# HTML

_CSS = """
:root { --fg:#1d2330; --muted:#5b6472; --line:#dfe3ea; --bg:#f6f7f9; --ok:#2e7d32; --warn:#b26a00;
  --bad:#c62828; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial,
  sans-serif; color: var(--fg); background: #fff; }
main { max-width: 1040px; margin: 0 auto; padding: 24px 20px 40px; }
h1 { font-size: 22px; margin: 0 0 6px; overflow-wrap: anywhere; }
h2 { font-size: 17px; margin: 28px 0 10px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
.sub { color: var(--muted); margin: 0 0 16px; }
.badge { display: inline-block; padding: 2px 10px; border-radius: 999px; font-size: 12px; font-weight: 600;
  color: #fff; vertical-align: middle; margin-left: 8px; }
.badge.ok { background: var(--ok); } .badge.warn { background: var(--warn); }
.badge.bad { background: var(--bad); }
.tiles { display: grid; grid-template-columns: repeat(auto-fit, minmax(170px, 1fr)); gap: 10px; }
.tile { background: var(--bg); border: 1px solid var(--line); border-radius: 8px; padding: 10px 14px; }
.tile .v { font-size: 24px; font-weight: 650; font-variant-numeric: tabular-nums; }
.tile .k { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
.alert { background: #fdecea; border: 1px solid #f1b0aa; border-left: 5px solid var(--bad);
  border-radius: 6px; padding: 10px 14px; margin: 16px 0 0; }
.flag { display: inline-block; padding: 0 8px; border-radius: 999px; font-size: 11.5px; font-weight: 600;
  color: #fff; background: var(--bad); margin-left: 6px; }
h3 { font-size: 15px; margin: 20px 0 8px; }
.notices { background: #fff8e1; border: 1px solid #f2d48a; border-left: 5px solid var(--warn);
  border-radius: 6px; padding: 10px 14px 10px 32px; margin: 16px 0 0; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: var(--bg); font-weight: 600; }
td.n, th.n { text-align: right; white-space: nowrap; }
table + table { margin-top: 14px; }
table.kv th { width: 230px; }
code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12.5px;
  overflow-wrap: anywhere; }
figure { margin: 0 0 18px; }
img.plot { width: 100%; height: auto; border: 1px solid var(--line); border-radius: 6px; }
figcaption { color: var(--muted); font-size: 12.5px; margin-top: 4px; }
footer { margin-top: 32px; padding-top: 10px; border-top: 1px solid var(--line); color: var(--muted);
  font-size: 12.5px; }
@media print {
  main { max-width: none; padding: 0; }
  h2 { break-after: avoid; }
  figure, .tile, tr { break-inside: avoid; }
  .badge { border: 1px solid #000; color: #000; background: none !important; }
}
"""

_PLOT_CAPTIONS = {
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
    "plot-resources": (
        "Resources over time",
        "Per-second latency and throughput above the sampled resources on the same time axis: CPU "
        "(the host as a share of all its cores; the server process tree and the load generator as a "
        "share of one core, so they can exceed 100 %; dashed: the generator's saturation threshold), "
        "memory, and where present GPU utilization, GPU memory and power. Grey: warmup.",
    ),
}


# Bidirectional-text controls would let server text reverse how a cell reads: show them instead.
_BIDI_CONTROLS = {c: f"<U+{c:04X}>" for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F)}
# Enough to stop links, images, @mentions and #references; emphasis inside a word is harmless.
_MD_SPECIAL = str.maketrans({c: "\\" + c for c in "\\[]@#"})


def visible_text(text: str) -> str:
    """Bidirectional-text control characters replaced by their code points, e.g. ``<U+202E>``."""
    return text.translate(_BIDI_CONTROLS)


def _e(value: Any) -> str:
    """Escape any value for HTML text or attribute; missing values show as a dash."""
    if value is None:
        return DASH
    return html.escape(visible_text(str(value)), quote=True)


def _kv_table(rows: Iterable[tuple[str, str]]) -> str:
    """Two-column table; values are already-escaped HTML."""
    body = "".join(f"<tr><th scope='row'>{_e(k)}</th><td>{v}</td></tr>" for k, v in rows)
    return f"<table class='kv'>{body}</table>"


def _grid_table(headers: Sequence[str], rows: Iterable[Sequence[str]], numeric: Container[int]) -> str:
    """A table whose cells are already-escaped HTML; ``numeric`` columns are right-aligned."""

    def cls(i: int) -> str:
        return " class=n" if i in numeric else ""

    head = "".join(f"<th scope='col'{cls(i)}>{_e(h)}</th>" for i, h in enumerate(headers))
    body = "".join("<tr>" + "".join(f"<td{cls(i)}>{c}</td>" for i, c in enumerate(r)) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _render_html(run: _Run) -> str:
    """The whole self-contained report page."""
    meta, summary = run.meta, run.summary
    info = _dict(summary.get("run"))
    scenario = info.get("scenario") or meta.get("scenario") or "unknown scenario"
    target = info.get("target") or meta.get("target") or "unknown target"
    status = str(info.get("status") or meta.get("status") or rundir.STATUS_RUNNING)
    badge_text, badge_class = _BADGES.get(status, (status, "warn"))
    title = f"loadbench report — {scenario} against {target}"
    reqs = _dict(summary.get("requests"))
    lat = _dict(summary.get("latency_ms"))
    window = _dict(summary.get("window"))

    tiles = [
        ("throughput", format_rate(summary.get("throughput_rps"))),
        ("p50 latency", format_ms(lat.get("p50"))),
        ("p99 latency", format_ms(lat.get("p99"))),
        ("error rate", format_pct(reqs.get("error_rate"))),
        ("requests", format_count(reqs.get("total"))),
    ]
    resources = _dict(summary.get("resources"))
    gpus = _all_gpus(resources)
    if gpus:
        tiles.append(("GPU util", format_percent(gpus[0][1].get("util_mean"))))
    from loadbench.report.quality import quality_html, quality_tiles

    tiles += quality_tiles(summary)
    tiles_html = "".join(
        f"<div class='tile'><div class='k'>{_e(k)}</div><div class='v'>{_e(v)}</div></div>" for k, v in tiles
    )

    from loadbench.report.llm import llm_html
    from loadbench.report.load import VERDICT_CSS, load_html, verdict_html
    from loadbench.report.network import network_html

    notices = [n for n in _top_notices(summary) if not n.startswith("INVALID: ")]
    notices_html = (
        "<ul class='notices' aria-label='notices'>" + "".join(f"<li>{_e(n)}</li>" for n in notices) + "</ul>"
        if notices
        else ""
    )

    parts = [
        "<!DOCTYPE html>",
        "<html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>{_e(title)}</title><style>{_CSS}{VERDICT_CSS}</style></head><body><main>",
        f"<header><h1>{_e(title)}<span class='badge {badge_class}'>{_e(badge_text)}</span></h1>",
        f"<p class='sub'>run <span class='mono'>{_e(info.get('id') or meta.get('run_id'))}</span> · "
        f"measured {_e(format_seconds(window.get('duration_s')))} from {_e(_utc(window.get('start_unix_s')))}"
        f"</p>",
        f"<section class='tiles' aria-label='headline numbers'>{tiles_html}</section>"
        f"{verdict_html(summary)}{_saturation_alert(resources)}{notices_html}</header>",
        "<h2>Summary</h2>",
        _summary_table(summary),
        "<h2 id='load'>Load and trust</h2>",
        load_html(summary),
        network_html(summary, meta),  # "Where the time goes"
        quality_html(summary, run.requests, run.run_start, run.timeseries, _in_window(run.requests, summary)),
        llm_html(summary, run.requests, run.timeseries, run.run_start),  # "" without LLM data
        "<h2>Plots</h2>",
        _plots_html(_render_plots(run)),
        "<h2 id='resources'>Resources</h2>",
        _resources_html(summary, _render_resources_plot(run)),
        "<h2>Requests by name</h2>",
        _by_name_table(summary),
        "<h2>Errors</h2>",
        _errors_table(summary),
        "<h2>Run</h2>",
        _meta_table(meta, summary),
        "<footer>How the metrics are defined: ",
        f"{_e(METRICS_NOTE)}. See <code>{_e(METRICS_DOC)}</code> in the loadbench sources. ",
        f"Report generated by loadbench {_e(_dict(meta.get('versions')).get('loadbench'))}.</footer>",
        "</main></body></html>",
    ]
    return "\n".join(parts) + "\n"


def _summary_table(summary: dict[str, Any]) -> str:
    reqs = _dict(summary.get("requests"))
    lat = _dict(summary.get("latency_ms"))
    window = _dict(summary.get("window"))
    size = _dict(summary.get("response_bytes"))
    rows = [
        ("throughput (successful requests)", format_rate(summary.get("throughput_rps"))),
        ("request rate (all requests)", format_rate(summary.get("request_rate_rps"))),
        *((f"latency {label}", format_ms(lat.get(key))) for key, label in PERCENTILE_KEYS),
        ("latency max", format_ms(lat.get("max"))),
        ("latency mean", format_ms(lat.get("mean"))),
        ("latency min", format_ms(lat.get("min"))),
        ("requests", format_count(reqs.get("total"))),
        ("successful", format_count(reqs.get("ok"))),
        ("failed", format_count(reqs.get("errors"))),
        ("error rate", format_pct(reqs.get("error_rate"))),
        ("excluded as warmup", format_count(reqs.get("warmup_excluded"))),
        (
            "measured window",
            f"{_utc(window.get('start_unix_s'))} → {_utc(window.get('end_unix_s'))} "
            f"({format_seconds(window.get('duration_s'))})",
        ),
        ("response bytes", f"{format_bytes(size.get('total'))} total, {format_bytes(size.get('mean'))} mean"),
    ]
    return _kv_table((k, _e(v)) for k, v in rows)


def _plots_html(pngs: dict[str, bytes]) -> str:
    return "\n".join(_figure_html(key, png) for key, png in pngs.items())


def _figure_html(key: str, png: bytes) -> str:
    return figure_html(key, png, *_PLOT_CAPTIONS[key])


def figure_html(figure_id: str, png: bytes, title: str, caption: str) -> str:
    """A ``<figure>`` with the PNG inline (no network) and an escaped title and caption."""
    data = base64.b64encode(png).decode("ascii")
    return (
        f'<figure id="{_e(figure_id)}"><img class="plot" src="data:image/png;base64,{data}" '
        f'alt="{_e(title)}: {_e(caption)}">'
        f"<figcaption><b>{_e(title)}.</b> {_e(caption)}</figcaption></figure>"
    )


# Resources ------------------------------------------------------------------------------------

_HOST_ROWS = (
    ("host CPU (% of all cores)", "cpu_percent", format_percent),
    ("host load average (1 min)", "load1", lambda v: format_number(v, 2)),
    ("host memory used", "mem_used_bytes", format_bytes),
    ("host memory available", "mem_available_bytes", format_bytes),
    ("host swap used", "swap_used_bytes", format_bytes),
    ("network sent", "net_sent_bytes_per_s", format_byte_rate),
    ("network received", "net_recv_bytes_per_s", format_byte_rate),
    ("disk read", "disk_read_bytes_per_s", format_byte_rate),
    ("disk write", "disk_write_bytes_per_s", format_byte_rate),
)
_SERVER_ROWS = (
    ("server CPU (% of one core)", "cpu_percent", format_percent),
    ("server memory (RSS)", "rss_bytes", format_bytes),
    ("server threads", "threads", format_number),
    ("server open file descriptors", "open_fds", format_number),
    ("server processes", "processes", format_number),
)


def _all_gpus(resources: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(display name, GPU entry) of every GPU: this machine's first, then each remote host's."""
    out = [(f"gpu{_dict(g).get('index')}", _dict(g)) for g in _list(resources.get("gpus"))]
    for label, remote in _dict(resources.get("remote")).items():
        out += [(f"{label} gpu{_dict(g).get('index')}", _dict(g)) for g in _list(_dict(remote).get("gpus"))]
    return out


def _saturation_text(generator: dict[str, Any]) -> str:
    share = _num(generator.get("saturated_share"))
    how_often = f" in {share * 100:.1f} % of the samples" if share is not None else ""
    return (
        f"The load generator was saturated: it used more than {SATURATED_PERCENT:.0f} % of a CPU core"
        f"{how_often} (max {format_percent(generator.get('cpu_max_percent'))}). Latency and throughput "
        "may be limited by the generator, not the server: use more workers or fewer users."
    )


def _top_notices(summary: dict[str, Any]) -> list[str]:
    """The summary's notices, less the generator-saturation one when the warning shows it instead."""
    notices = [str(n) for n in _list(summary.get("notices"))]
    resources = _dict(summary.get("resources"))
    if _dict(resources.get("generator")).get("saturated") is True:
        shown = {str(n) for n in _list(resources.get("notices"))}
        notices = [n for n in notices if n not in shown]
    return notices


def _saturation_alert(resources: dict[str, Any]) -> str:
    generator = _dict(resources.get("generator"))
    if generator.get("saturated") is not True:
        return ""
    return f"<p class='alert' role='alert'><b>Warning.</b> {_e(_saturation_text(generator))}</p>"


def _spread_rows(group: dict[str, Any], spec: Sequence[tuple[str, str, Any]]) -> list[list[str]]:
    """Rows of (name, mean, p95, max) for the metrics of ``spec`` that ``group`` has."""
    rows = []
    for name, key, fmt in spec:
        if key not in group:
            continue
        s = _dict(group.get(key))
        rows.append([_e(name), *(_e(fmt(s.get(k))) for k in ("mean", "p95", "max"))])
    return rows


def _usage_table(host: dict[str, Any], server: dict[str, Any] | None, generator: dict[str, Any]) -> str:
    rows = _spread_rows(host, _HOST_ROWS) + _spread_rows(server or {}, _SERVER_ROWS)
    if generator and (
        generator.get("cpu_mean_percent") is not None or generator.get("cpu_max_percent") is not None
    ):
        peak = _e(format_percent(generator.get("cpu_max_percent")))
        if generator.get("saturated") is True:
            peak += "<span class='flag' title='generator saturated'>saturated</span>"
        rows.append(
            [
                _e("load generator CPU (% of one core)"),
                _e(format_percent(generator.get("cpu_mean_percent"))),
                DASH,
                peak,
            ]
        )
    if not rows:
        return "<p>No host or process readings.</p>"
    return _grid_table(["resource", "mean", "p95", "max"], rows, numeric={1, 2, 3})


def _process_html(server: dict[str, Any] | None) -> str:
    if server is None:
        return "<p>No server process was sampled.</p>"
    process = server.get("process")
    if not isinstance(process, dict):
        return "<p>Server process: not identified.</p>"
    text = f"Server process: pid {_e(process.get('pid'))} <span class='mono'>{_e(process.get('name'))}</span>"
    if process.get("how"):
        text += f", found by {_e(process.get('how'))}"
    text += "."
    if process.get("cmdline"):
        text += f" Command: <code>{_e(process.get('cmdline'))}</code>"
    return f"<p>{text}</p>"


def _slash(*values: str, unit: str = "") -> str:
    """``a / b / c unit``, or a dash when every value is missing."""
    if all(v == DASH for v in values):
        return DASH
    return " / ".join(values) + (f" {unit}" if unit else "")


def _gpu_cells(g: dict[str, Any]) -> list[tuple[str, str]]:
    """(metric, text) rows of one GPU entry of ``summary["resources"]``."""

    def num(key: str, decimals: int = 1) -> str:
        v = _num(g.get(key))
        return DASH if v is None else f"{v:,.{decimals}f}"

    busy = _num(g.get("busy_fraction"))
    energy = format_joules(g.get("energy_j"))
    if energy != DASH and g.get("energy_method"):
        energy += f" ({g['energy_method']})"
    return [
        ("name", DASH if g.get("name") is None else str(g["name"])),
        (
            "utilization mean / p95 / max",
            _slash(num("util_mean"), num("util_p95"), num("util_max"), unit="%"),
        ),
        ("busy fraction", format_percent(None if busy is None else busy * 100)),
        ("memory utilization mean", format_percent(g.get("mem_util_mean"))),
        ("memory used max / total", _slash(num("mem_used_max_mib", 0), num("mem_total_mib", 0), unit="MiB")),
        ("memory used mean", _slash(num("mem_used_mean_mib", 0), unit="MiB")),
        ("server's GPU memory max", _slash(num("server_mem_max_mib", 0), unit="MiB")),
        (
            "power mean / max / limit",
            _slash(num("power_mean_w"), num("power_max_w"), num("power_limit_w"), unit="W"),
        ),
        ("temperature max", _slash(num("temp_max_c", 0), unit="°C")),
        ("SM clock mean", _slash(num("sm_clock_mean_mhz", 0), unit="MHz")),
        (
            "PCIe tx / rx mean",
            _slash(
                format_byte_rate(g.get("pcie_tx_mean_bytes_per_s")),
                format_byte_rate(g.get("pcie_rx_mean_bytes_per_s")),
            ),
        ),
        ("energy", energy),
    ]


def _gpu_table(gpus: list[tuple[str, dict[str, Any]]]) -> str:
    """One column per GPU, one row per metric."""
    if not gpus:
        return ""
    columns = [_gpu_cells(g) for _, g in gpus]
    body = [[_e(label), *(_e(cells[i][1]) for cells in columns)] for i, (label, _) in enumerate(columns[0])]
    return _grid_table(["GPU", *(name for name, _ in gpus)], body, numeric=range(1, len(gpus) + 1))


def _energy_html(energy: dict[str, Any]) -> str:
    if _num(energy.get("j_total")) is None:
        return ""
    rows = [
        ("GPU energy in the measured window", _e(format_joules(energy.get("j_total")))),
        ("energy per successful request", _e(format_joules(energy.get("j_per_request")))),
    ]
    if _num(energy.get("j_per_output_token")) is not None:
        rows.append(("energy per output token", _e(format_joules(energy.get("j_per_output_token")))))
    return "<h3>Energy</h3>" + _kv_table(rows)


def _correlation_html(correlation: dict[str, Any]) -> str:
    pairs = [(str(k), v) for k, r in correlation.items() if (v := _num(r)) is not None]
    if not pairs:
        return ""
    pairs.sort(key=lambda kv: (-abs(kv[1]), kv[0]))
    rows = [[f"<span class='mono'>{_e(k)}</span>", _e(f"{r:+.2f}")] for k, r in pairs[:MAX_CORRELATIONS]]
    note = (
        "<p class='sub'>Pearson r between the per-second mean latency of successful requests and the "
        "per-second mean of each resource over the measured window, strongest first. A value near +1 "
        "means latency rose with the resource; correlation is not cause.</p>"
    )
    return "<h3>Latency correlation</h3>" + note + _grid_table(["resource", "r"], rows, numeric={1})


def _prometheus_html(prometheus: dict[str, Any]) -> str:
    if not prometheus:
        return ""
    items = list(prometheus.items())
    rows = [
        [
            f"<span class='mono'>{_e(name)}</span>",
            *(_e(format_value(_dict(s).get(k))) for k in ("mean", "p95", "max")),
        ]
        for name, s in items[:MAX_PROM_SERIES]
    ]
    more = len(items) - MAX_PROM_SERIES
    note = f"<p class='sub'>… and {more:,} more series (all in summary.json).</p>" if more > 0 else ""
    return (
        "<h3>Prometheus</h3>" + _grid_table(["series", "mean", "p95", "max"], rows, numeric={1, 2, 3}) + note
    )


def _offset_text(offset: Any, uncertainty: Any) -> str:
    o, u = _num(offset), _num(uncertainty)
    if o is None:
        return "clock offset unknown"

    def fmt(v: float, sign: str = "") -> str:
        return f"{v:{sign},.3f} s" if abs(v) >= 1 else f"{v * 1000:{sign},.1f} ms"

    return f"clock offset {fmt(o, '+')}" + ("" if u is None else f" ± {fmt(u)}")


def _resources_html(summary: dict[str, Any], png: bytes | None) -> str:
    resources = summary.get("resources")
    if not isinstance(resources, dict):
        return "<p>No resource data: this run was analyzed without the resource sampler.</p>"
    parts = []
    notices = [str(n) for n in _list(resources.get("notices"))]
    if notices:
        parts.append(
            "<ul class='notices' aria-label='resource notices'>"
            + "".join(f"<li>{_e(n)}</li>" for n in notices)
            + "</ul>"
        )
    if png is not None:
        parts.append(_figure_html("plot-resources", png))
    if not resources.get("sampled"):
        parts.append("<p>No resource samples: the run was made without the sampler.</p>")
        return "\n".join(parts)
    if png is None:
        parts.append(f"<p>No plot: the run directory has no readable {_e(rundir.SAMPLES)}.</p>")
    server = resources.get("server_process")
    server = server if isinstance(server, dict) else None
    interval = _num(resources.get("interval_s"))
    parts.append(
        f"<p class='sub'>{_e(format_count(resources.get('samples')))} samples in the measured window"
        + (f", one every {_e(format_number(interval, 2))} s" if interval is not None else "")
        + ".</p>"
    )
    parts.append(_process_html(server))
    parts.append(_usage_table(_dict(resources.get("host")), server, _dict(resources.get("generator"))))
    local_gpus = [(f"gpu{_dict(g).get('index')}", _dict(g)) for g in _list(resources.get("gpus"))]
    if local_gpus:
        parts.append("<h3>GPUs</h3>" + _gpu_table(local_gpus))
    parts.append(_energy_html(_dict(resources.get("energy"))))
    parts.append(_correlation_html(_dict(resources.get("latency_correlation"))))
    parts.append(_prometheus_html(_dict(resources.get("prometheus"))))
    for label, entry in _dict(resources.get("remote")).items():
        remote = _dict(entry)
        rs = remote.get("server_process")
        parts.append(
            f"<h3>Remote host <span class='mono'>{_e(label)}</span></h3>"
            f"<p class='sub'>{_e(_offset_text(remote.get('clock_offset_s'), remote.get('clock_uncertainty_s')))}"
            " (remote clock minus this machine's; samples are placed on this machine's clock).</p>"
        )
        parts.append(_usage_table(_dict(remote.get("host")), rs if isinstance(rs, dict) else None, {}))
        gpus = [(f"gpu{_dict(g).get('index')}", _dict(g)) for g in _list(remote.get("gpus"))]
        if gpus:
            parts.append(_gpu_table(gpus))
    return "\n".join(p for p in parts if p)


def _by_name_table(summary: dict[str, Any]) -> str:
    by_name = _dict(summary.get("by_name"))
    if not by_name:
        return "<p>No requests.</p>"
    headers = ["name", "requests", "ok", "errors", "error rate", "throughput", "p50", "p90", "p99", "max"]
    rows = []
    for name, entry in by_name.items():
        s = _dict(entry)
        lat = _dict(s.get("latency_ms"))
        cells = [
            format_count(s.get("requests")),
            format_count(s.get("ok")),
            format_count(s.get("errors")),
            format_pct(s.get("error_rate")),
            format_rate(s.get("throughput_rps")),
            *(format_ms(lat.get(k)) for k in ("p50", "p90", "p99", "max")),
        ]
        rows.append([f"<span class='mono'>{_e(name)}</span>", *(_e(c) for c in cells)])
    return _grid_table(headers, rows, numeric=range(1, len(headers)))


def _errors_table(summary: dict[str, Any]) -> str:
    errors = [_dict(e) for e in _list(summary.get("errors"))]
    if not errors:
        return "<p>No errors.</p>"
    rows = [
        [
            f"<span class='mono'>{_e(e.get('kind'))}</span>",
            _e(format_count(e.get("count"))),
            _e(format_pct(e.get("share"))),
            f"<span class='mono'>{_e(e.get('example'))}</span>",
        ]
        for e in errors
    ]
    return _grid_table(["kind", "count", "share", "example"], rows, numeric={1, 2})


def _meta_table(meta: dict[str, Any], summary: dict[str, Any]) -> str:
    info = _dict(summary.get("run"))
    settings = _dict(meta.get("settings"))
    versions = _dict(meta.get("versions"))
    host = _dict(meta.get("host"))
    started, ended = _num(meta.get("started_unix_s")), _num(meta.get("ended_unix_s"))
    duration = ended - started if started is not None and ended is not None else None
    scenario = _e(meta.get("scenario") or info.get("scenario"))
    if meta.get("scenario_reason"):
        scenario += f" <span class='sub'>({_e(meta['scenario_reason'])})</span>"
    command = _list(meta.get("command"))
    host_facts = [
        host.get("hostname"),
        host.get("platform"),
        host.get("cpu_model"),
        f"{host['cpu_cores']} cores" if host.get("cpu_cores") else None,
        f"{format_bytes(host['memory_bytes'])} memory" if host.get("memory_bytes") else None,
    ]
    rows = [
        ("run id", f"<span class='mono'>{_e(meta.get('run_id') or info.get('id'))}</span>"),
        ("target", f"<span class='mono'>{_e(meta.get('target') or info.get('target'))}</span>"),
        ("scenario", scenario),
        ("status", _e(meta.get("status") or info.get("status"))),
        ("started (UTC)", _e(_utc(started))),
        ("ended (UTC)", _e(_utc(ended))),
        ("duration", _e(format_seconds(duration))),
        ("users", _e(format_count(settings.get("users", info.get("users"))))),
        ("spawn rate", _e(format_rate(settings.get("spawn_rate"), "users/s"))),
        ("planned duration", _e(format_seconds(settings.get("duration_s")))),
        ("warmup", _e(format_seconds(settings.get("warmup_s", info.get("warmup_s"))))),
        ("headers", _lines(_list(settings.get("headers")))),
        ("scenario args", _lines(_list(settings.get("scenario_args")))),
        ("command", f"<code>{_e(shlex.join(str(a) for a in command))}</code>" if command else DASH),
        ("versions", _e(" · ".join(f"{k} {v}" for k, v in versions.items()) or None)),
        ("host", _e(" · ".join(str(f) for f in host_facts if f) or None)),
        ("git commit", f"<span class='mono'>{_e(meta.get('git_commit'))}</span>"),
    ]
    return _kv_table(rows)


def _lines(items: list[Any]) -> str:
    return "<br>".join(f"<span class='mono'>{_e(i)}</span>" for i in items) if items else DASH


# ---------------------------------------------------------------------------------------------
# Markdown


def _md(value: Any) -> str:
    """Text safe inside a GitHub table cell: one line, no raw HTML, and Markdown syntax
    (links, images, emphasis, @mentions, #references, ``|``) shown as text, not acted on."""
    text = visible_text(" ".join(str(value).split())).translate(_MD_SPECIAL)
    return html.escape(text, quote=False).replace("|", "\\|")


def _md_table(headers: Sequence[str], rows: Iterable[Sequence[str]], numeric: Container[int]) -> list[str]:
    align = ["---:" if i in numeric else "---" for i in range(len(headers))]
    out = ["| " + " | ".join(_md(h) for h in headers) + " |", "|" + "|".join(align) + "|"]
    out += ["| " + " | ".join(_md(c) for c in r) + " |" for r in rows]
    return out


def render_markdown(meta: dict[str, Any], summary: dict[str, Any]) -> str:
    """A short Markdown summary to paste into a pull request or release review."""
    info = _dict(summary.get("run"))
    reqs = _dict(summary.get("requests"))
    lat = _dict(summary.get("latency_ms"))
    window = _dict(summary.get("window"))
    scenario = info.get("scenario") or meta.get("scenario") or "unknown scenario"
    target = info.get("target") or meta.get("target") or "unknown target"
    status = str(info.get("status") or meta.get("status") or rundir.STATUS_RUNNING)
    status_text = _BADGES.get(status, (status, ""))[0]
    headline = (
        f"**loadbench** · {_md(scenario)} against {_md(target)} · "
        f"{format_count(reqs.get('total'))} requests in {format_seconds(window.get('duration_s'))} · "
        f"{_md(status_text)}"
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
    from loadbench.report.llm import llm_markdown
    from loadbench.report.load import verdict_markdown

    lines = [headline, *verdict_markdown(summary), "", *_md_table(["metric", "value"], metrics, numeric={1})]
    lines += llm_markdown(summary)
    from loadbench.report.network import network_markdown

    lines += network_markdown(summary)

    by_name = _dict(summary.get("by_name"))
    if len(by_name) > 1:
        rows = []
        for name, stats in by_name.items():
            s = _dict(stats)
            nl = _dict(s.get("latency_ms"))
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
        lines += ["", *_md_table(headers, rows, numeric=range(1, len(headers)))]

    errors = [_dict(e) for e in _list(summary.get("errors"))][:5]
    if errors:
        rows = [
            [
                str(e.get("kind")),
                format_count(e.get("count")),
                format_pct(e.get("share")),
                _clip(e.get("example")),
            ]
            for e in errors
        ]
        lines += [
            "",
            "**Top errors**",
            "",
            *_md_table(["kind", "count", "share", "example"], rows, numeric={1, 2}),
        ]

    from loadbench.report.quality import quality_markdown

    lines += quality_markdown(summary)
    lines += _markdown_resources(_dict(summary.get("resources")))

    notices = [n for n in _top_notices(summary) if not n.startswith("INVALID: ")]
    if notices:
        lines += ["", "**Notices**", "", *(f"- {_md(n)}" for n in notices)]
    return "\n".join(lines) + "\n"


def _markdown_resources(resources: dict[str, Any]) -> list[str]:
    """A few bullets: the server process, each GPU, energy per request, generator saturation."""
    if not resources.get("sampled"):
        return []
    items = []
    generator = _dict(resources.get("generator"))
    if generator.get("saturated") is True:
        items.append(f"**Warning:** {_md(_saturation_text(generator))}")
    server = _dict(resources.get("server_process"))
    if server:
        cpu, rss = _dict(server.get("cpu_percent")), _dict(server.get("rss_bytes"))
        items.append(
            f"server process: CPU mean {format_percent(cpu.get('mean'))} / max {format_percent(cpu.get('max'))} "
            f"of one core, RSS max {format_bytes(rss.get('max'))}"
        )
    for name, g in _all_gpus(resources):
        model = f" ({_md(g['name'])})" if g.get("name") else ""
        used, total = _num(g.get("mem_used_max_mib")), _num(g.get("mem_total_mib"))
        memory = (
            DASH if used is None else f"{used:,.0f}" + ("" if total is None else f" / {total:,.0f}") + " MiB"
        )
        items.append(
            f"{_md(name)}{model}: util mean {format_percent(g.get('util_mean'))}, memory max {memory}"
        )
    energy = _dict(resources.get("energy"))
    if _num(energy.get("j_per_request")) is not None:
        items.append(
            f"GPU energy: {format_joules(energy.get('j_per_request'))} per request "
            f"({format_joules(energy.get('j_total'))} in total)"
        )
    return ["", "**Resources**", "", *(f"- {i}" for i in items)] if items else []


def _clip(value: Any, limit: int = 120) -> str:
    text = "" if value is None else " ".join(str(value).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
