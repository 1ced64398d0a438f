"""Renders a comparison of runs: ``compare.json``, ``compare.md`` and ``compare.html``.

Consumes the result of `loadbench.compare.compare.compare_runs` (the ``compare.json`` object: verdict,
failed rules, warnings and one entry per metric with base, candidate, delta, delta %, 99.5 % CI
of the delta and a verdict) and the loaded runs (`loadbench.compare.rundata.RunData`, or anything with
the same ``path``, ``meta``, ``summary``, ``latency_ms``, ``timeseries`` and ``samples``
attributes): the first run is the base, the second the candidate, further runs are extra
candidates, each compared with the base (``candidates`` in the result: a verdict line and a
table each) and drawn in the overlay plots. Produces a Markdown verdict + table for a pull
request and one self-contained HTML page (inline CSS, PNG plots as data URLs, no network).

Everything that came from the server or the user (run ids, scenarios, targets, warnings, rule
names) is escaped: it is data, never markup.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, NullLocator

from loadbench.record import rundir
from loadbench.report import plots
from loadbench.report.report import (
    _CSS,
    DASH,
    _dict,
    _e,
    _grid_table,
    _list,
    _md,
    _md_table,
    _num,
    _write_text_atomic,
    figure_html,
    format_bytes,
    format_count,
    format_joules,
    format_ms,
    format_pct,
    format_percent,
    format_rate,
    format_seconds,
    format_value,
)

COMPARE_JSON = "compare.json"
COMPARE_MD = "compare.md"
COMPARE_HTML = "compare.html"
CURVE_POINTS = 600  # points per run on the percentile and CDF curves
MAX_LABEL = 60  # characters of a run id shown in a plot legend
VERDICT_EMOJI = {"worse": "🔴", "better": "🟢", "same": "⚪"}
_TABLE_HEADERS = ("metric", "base", "candidate", "Δ", "Δ%", "99.5% CI", "verdict")

# Panels of the resources overlay: (sample column, or "gpu.util_percent" for the GPUs mean; y label).
_RESOURCE_PANELS: tuple[tuple[str, str], ...] = (
    ("server.cpu_percent", "server CPU (% of one core)"),
    ("host.cpu_percent", "host CPU (% of all cores)"),
    ("gpu.util_percent", "GPU utilization (%)"),
)

_EXTRA_CSS = """
.banner { border-radius: 8px; padding: 14px 18px; margin: 0 0 18px; color: #fff; font-size: 18px;
  font-weight: 650; }
.banner.bad { background: var(--bad); } .banner.ok { background: var(--ok); }
.banner.warn { background: var(--warn); }
.banner .sub { color: #fff; opacity: .9; font-size: 13.5px; font-weight: 400; margin: 4px 0 0; }
td.worse { color: var(--bad); font-weight: 650; } td.better { color: var(--ok); font-weight: 650; }
td.same { color: var(--muted); }
"""


class RunLike(Protocol):
    """What the renderer reads of a loaded run (`loadbench.compare.rundata.RunData` has it all)."""

    @property
    def path(self) -> Path: ...
    @property
    def meta(self) -> dict[str, Any]: ...
    @property
    def summary(self) -> dict[str, Any]: ...
    @property
    def latency_ms(self) -> npt.NDArray[Any]: ...
    @property
    def timeseries(self) -> pd.DataFrame: ...
    @property
    def samples(self) -> pd.DataFrame: ...


# ---------------------------------------------------------------------------------------------
# Public entry point


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
    _write_text_atomic(md_path, render_compare_markdown(result))
    _write_text_atomic(html_path, render_compare_html(result, runs))
    return json_path, md_path, html_path


# ---------------------------------------------------------------------------------------------
# Values, deltas and the verdict


def _unit_kind(unit: Any, path: str) -> str:
    u = str(unit or "").strip().lower()
    if u == "ms" or (not u and path.startswith("latency_ms")):
        return "ms"
    if u in ("req/s", "rps", "1/s", "requests/s") or (not u and path.endswith("_rps")):
        return "rate"
    if u in ("fraction", "ratio", "share", "0-1") or (not u and path.endswith(("error_rate", "_fraction"))):
        return "fraction"
    if u.startswith("%") or u in ("percent", "pct"):
        return "percent"
    if u in ("bytes", "b", "byte"):
        return "bytes"
    if u in ("j", "joule", "joules"):
        return "joules"
    return "other"


def format_metric_value(value: Any, unit: Any, path: str = "") -> str:
    """A metric value in its unit: ``4.21 ms``, ``1,234.5 req/s``, ``1.20 %`` (a fraction)."""
    kind = _unit_kind(unit, path)
    v = _num(value)
    if v is None:
        return DASH
    if kind == "ms":
        return format_ms(v)
    if kind == "rate":
        return format_rate(v)
    if kind == "fraction":
        return format_pct(v)
    if kind == "percent":
        return format_percent(v)
    if kind == "bytes":
        return format_bytes(v)
    if kind == "joules":
        return format_joules(v)
    return f"{format_value(v)} {unit or ''}".rstrip()


def format_delta(value: Any, unit: Any, path: str = "") -> str:
    """A signed difference: ``+1.30 ms``, ``-12.0 req/s``; fractions and percentages in ``pp``."""
    kind = _unit_kind(unit, path)
    v = _num(value)
    if v is None:
        return DASH
    if kind == "fraction":
        return f"{v * 100:+.2f} pp"
    if kind == "percent":
        return f"{v:+.1f} pp"
    sign = "+" if v > 0 else "-" if v < 0 else "±"
    return sign + format_metric_value(abs(v), unit, path)


def format_delta_pct(value: Any) -> str:
    """A relative difference already in percent: ``+12.3 %``."""
    v = _num(value)
    return DASH if v is None else f"{v:+.1f} %"


def format_ci(ci: Any, unit: Any, path: str = "") -> str:
    """The 99.5 % CI of a delta as ``[lo, hi]``; a dash when there is none."""
    if not isinstance(ci, list | tuple) or len(ci) != 2 or any(_num(c) is None for c in ci):
        return DASH
    return f"[{format_delta(ci[0], unit, path)}, {format_delta(ci[1], unit, path)}]"


def verdict_counts(result: dict[str, Any]) -> dict[str, int]:
    """How many metrics are worse, better and the same."""
    counts = {"worse": 0, "better": 0, "same": 0}
    for m in _dict(result.get("metrics")).values():
        verdict = str(_dict(m).get("verdict") or "same")
        counts[verdict if verdict in counts else "same"] += 1
    return counts


def _failed_rules(result: dict[str, Any]) -> list[dict[str, Any]]:
    return [_dict(r) for r in _list(result.get("failed_rules"))]


def _status(result: dict[str, Any]) -> tuple[str, str, str]:
    """(emoji, headline word, css class) of the comparison's verdict."""
    counts = verdict_counts(result)
    if result.get("passed") is False or _failed_rules(result):
        return "❌", "worse", "bad"
    if counts["worse"]:
        return "⚠️", "worse, no gate failed", "warn"
    return "✅", "no significant regression", "ok"


def verdict_line(result: dict[str, Any]) -> str:
    """The one-line verdict (Markdown), e.g. ``**loadbench compare: ❌ worse** — 3 metrics worse, …``."""
    emoji, word, _ = _status(result)
    counts = verdict_counts(result)
    total = sum(counts.values())
    noun = "metric" if counts["worse"] == 1 else "metrics"
    text = (
        f"**loadbench compare: {emoji} {word}** — {counts['worse']} {noun} worse, "
        f"{counts['better']} better, {counts['same']} same"
    )
    if not total:
        text = f"**loadbench compare: {emoji} {word}** — no metrics compared"
    failed = _failed_rules(result)
    if failed:
        names = ", ".join(_md(r.get("rule") or r.get("metric") or "?") for r in failed)
        text += f" · {len(failed)} gate{'s' if len(failed) != 1 else ''} failed: {names}"
    return text


def _run_id(info: Any, fallback: str) -> str:
    info = _dict(info)
    return str(info.get("id") or (Path(str(info["path"])).name if info.get("path") else fallback))


def _metric_rows(result: dict[str, Any]) -> list[tuple[str, list[str], str]]:
    """(path, formatted cells without the verdict, verdict) per metric, in the result's order."""
    rows = []
    for path, raw in _dict(result.get("metrics")).items():
        m = _dict(raw)
        unit = m.get("unit")
        verdict = str(m.get("verdict") or "same")
        cells = [
            str(m.get("label") or path),
            format_metric_value(m.get("base"), unit, path),
            format_metric_value(m.get("candidate"), unit, path),
            format_delta(m.get("delta"), unit, path),
            format_delta_pct(m.get("delta_pct")),
            format_ci(m.get("ci"), unit, path),
        ]
        rows.append((str(path), cells, verdict))
    return rows


def _rule_text(rule: dict[str, Any], result: dict[str, Any]) -> str:
    """Plain text (unescaped) describing one failed rule."""
    metric = str(rule.get("metric") or "")
    m = _dict(_dict(result.get("metrics")).get(metric))
    unit = m.get("unit")
    parts = [f"{rule.get('rule') or metric}"]
    detail = [f"{m.get('label') or metric}" if metric else ""]
    if _num(rule.get("delta")) is not None:
        detail.append(f"Δ {format_delta(rule.get('delta'), unit, metric)}")
    if _num(rule.get("delta_pct")) is not None:
        detail.append(f"Δ% {format_delta_pct(rule.get('delta_pct'))}")
    if rule.get("ci") is not None:
        detail.append(f"99.5% CI {format_ci(rule.get('ci'), unit, metric)}")
    detail = [d for d in detail if d]
    return parts[0] + (" — " + ", ".join(detail) if detail else "")


# ---------------------------------------------------------------------------------------------
# Markdown


def candidate_entries(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Every candidate's comparison with the base (``compare.json`` ``candidates``); a result
    without that key (one candidate) is its own single entry."""
    entries = [_dict(c) for c in _list(result.get("candidates"))]
    if entries:
        return entries
    return [{**result, "run": _run_id(result.get("candidate"), "candidate")}]


def candidate_verdict_lines(result: dict[str, Any]) -> list[str]:
    """One Markdown line per candidate: ``- `run-id`: **loadbench compare: …**``."""
    return [f"- `{_md(str(c.get('run') or '?'))}`: {verdict_line(c)}" for c in candidate_entries(result)]


def _markdown_body(entry: dict[str, Any]) -> list[str]:
    """Warnings, metrics table and failed gates of one candidate's comparison."""
    out: list[str] = []
    warns = [str(w) for w in _list(entry.get("warnings"))]
    if warns:
        out += ["", *(f"> - ⚠️ {_md(w)}" for w in warns)]
    rows = _metric_rows(entry)
    if rows:
        table = [[*cells, f"{VERDICT_EMOJI.get(v, '⚪')} {v}"] for _, cells, v in rows]
        out += ["", *_md_table(_TABLE_HEADERS, table, numeric={1, 2, 3, 4, 5})]
    failed = _failed_rules(entry)
    if failed:
        out += ["", "**Failed gates**", ""]
        out += [f"- ❌ {_md(_rule_text(r, entry))}" for r in failed]
    return out


def render_compare_markdown(result: dict[str, Any]) -> str:
    """The comparison as Markdown for a pull request: verdict line first, then the table.

    With more than one candidate: a verdict line per candidate under the first, then each
    further candidate's own table after the first's."""
    base_id = _run_id(result.get("base"), "base")
    cand_id = _run_id(result.get("candidate"), "candidate")
    out = [verdict_line(result), "", f"base `{_md(base_id)}` → candidate `{_md(cand_id)}`"]
    entries = candidate_entries(result)
    if len(entries) > 1:
        out += ["", "Each candidate against the base:", "", *candidate_verdict_lines(result)]
    out += _markdown_body(result)
    for entry in entries[1:]:
        run = _md(str(entry.get("run") or "?"))
        out += ["", f"### candidate `{run}` vs base `{_md(base_id)}`", "", verdict_line(entry)]
        out += _markdown_body(entry)
    out += [
        "",
        "<sub>Δ = candidate − base; 99.5% CI of Δ by block bootstrap over seconds; pp = percentage points. "
        "Generated by loadbench compare.</sub>",
    ]
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------------------------
# HTML


def render_compare_html(result: dict[str, Any], runs: Sequence[RunLike]) -> str:
    """The whole self-contained comparison page."""
    emoji, word, css = _status(result)
    counts = verdict_counts(result)
    failed = _failed_rules(result)
    sub = f"{counts['worse']} worse · {counts['better']} better · {counts['same']} same"
    if failed:
        sub += f" · {len(failed)} gate{'s' if len(failed) != 1 else ''} failed"
    base_id = _run_id(result.get("base"), "base")
    cand_id = _run_id(result.get("candidate"), "candidate")
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>loadbench compare: {_e(base_id)} vs {_e(cand_id)}</title>",
        f"<style>{_CSS}{_EXTRA_CSS}</style></head><body><main>",
        "<h1>loadbench compare</h1>",
        f"<p class='sub'>base <span class='mono'>{_e(base_id)}</span> → candidate "
        f"<span class='mono'>{_e(cand_id)}</span></p>",
        f"<div class='banner {css}' id='verdict'>{_e(emoji)} {_e(word)}<p class='sub'>{_e(sub)}</p></div>",
    ]
    entries = candidate_entries(result)
    if len(entries) > 1:
        items = "".join(
            f"<li><span class='mono'>{_e(str(c.get('run') or '?'))}</span>: {_e(' '.join(_status(c)[:2]))}</li>"
            for c in entries
        )
        parts.append(f"<p class='sub'>Each candidate against the base:</p><ul id='candidates'>{items}</ul>")
    warns = [str(w) for w in _list(result.get("warnings"))]
    if warns:
        items = "".join(f"<li>{_e(w)}</li>" for w in warns)
        parts.append(f"<ul class='notices' id='warnings'>{items}</ul>")
    if failed:
        items = "".join(f"<li>{_e(_rule_text(r, result))}</li>" for r in failed)
        parts.append(f"<h2>Failed gates</h2><ul class='alert' id='failed-rules'>{items}</ul>")
    parts.append("<h2>Metrics</h2>")
    parts.append(_metrics_table_html(result))
    parts.append(
        "<p class='sub'>Δ = candidate − base; the 99.5 % CI of Δ is a block-bootstrap interval over seconds; "
        "pp = percentage points. A metric is worse or better only when its CI excludes zero.</p>"
    )
    for number, entry in enumerate(candidate_entries(result)[1:], start=2):
        parts.append(_candidate_html(entry, number))
    parts.append("<h2>Runs</h2>")
    parts.append(_settings_table_html(runs))
    pngs = render_overlay_plots(runs)
    if pngs:
        parts.append("<h2>Plots</h2>")
        parts += [_figure_html(key, png) for key, png in pngs.items()]
    parts.append("<footer>Generated by loadbench compare. Self-contained: no network needed.</footer>")
    parts.append("</main></body></html>")
    return "\n".join(parts) + "\n"


def _candidate_html(entry: dict[str, Any], number: int) -> str:
    """A further candidate's comparison with the base: its verdict, warnings, gates and table."""
    emoji, word, css = _status(entry)
    counts = verdict_counts(entry)
    sub = f"{counts['worse']} worse · {counts['better']} better · {counts['same']} same"
    run = str(entry.get("run") or "?")
    parts = [
        f"<h2 id='candidate-{number}'>Candidate {number}: <span class='mono'>{_e(run)}</span></h2>",
        f"<div class='banner {css}'>{_e(emoji)} {_e(word)}<p class='sub'>{_e(sub)}</p></div>",
    ]
    warns = [str(w) for w in _list(entry.get("warnings"))]
    if warns:
        parts.append("<ul class='notices'>" + "".join(f"<li>{_e(w)}</li>" for w in warns) + "</ul>")
    failed = _failed_rules(entry)
    if failed:
        items = "".join(f"<li>{_e(_rule_text(r, entry))}</li>" for r in failed)
        parts.append(f"<ul class='alert'>{items}</ul>")
    parts.append(_metrics_table_html(entry))
    return "\n".join(parts)


def _metrics_table_html(result: dict[str, Any]) -> str:
    rows = []
    for path, cells, verdict in _metric_rows(result):
        css = verdict if verdict in VERDICT_EMOJI else "same"
        escaped = [f"{_e(cells[0])}<br><span class='mono sub'>{_e(path)}</span>"]
        escaped += [_e(c) for c in cells[1:]]
        escaped.append(f"<span class='{css}'>{_e(VERDICT_EMOJI.get(verdict, '⚪'))} {_e(verdict)}</span>")
        rows.append(escaped)
    table = _grid_table(_TABLE_HEADERS, rows, numeric={1, 2, 3, 4, 5})
    # colour the verdict cell itself
    for css in VERDICT_EMOJI:
        table = table.replace(f"<td><span class='{css}'>", f"<td class='{css}'><span class='{css}'>")
    return table


def _run_label(run: RunLike, index: int) -> str:
    role = "base" if index == 0 else "candidate" if index == 1 else f"candidate {index}"
    info = _dict(run.summary.get("run"))
    run_id = run.meta.get("run_id") or info.get("id") or Path(run.path).name
    return f"{role}: {run_id}"


def _settings_table_html(runs: Sequence[RunLike]) -> str:
    if not runs:
        return "<p class='sub'>no runs loaded</p>"
    headers = ["", *(_run_label(r, i).split(":", 1)[0] for i, r in enumerate(runs))]
    facts: list[tuple[str, Callable[[RunLike], Any]]] = [
        ("run id", lambda r: r.meta.get("run_id") or _dict(r.summary.get("run")).get("id") or r.path.name),
        ("scenario", lambda r: r.meta.get("scenario") or _dict(r.summary.get("run")).get("scenario")),
        ("status", lambda r: r.meta.get("status") or _dict(r.summary.get("run")).get("status")),
        ("target", lambda r: r.meta.get("target") or _dict(r.summary.get("run")).get("target")),
        (
            "started (UTC)",
            lambda r: r.meta.get("started_at") or _dict(r.summary.get("run")).get("started_at"),
        ),
        ("load model", lambda r: r.meta.get("load_model")),
        (
            "users",
            lambda r: None if _is_open(r) else format_count(_dict(r.meta.get("settings")).get("users")),
        ),
        ("rate", lambda r: format_rate(_load(r).get("rate")) if _is_open(r) else None),
        ("arrival", _arrival),
        ("max in flight", lambda r: format_count(_load(r).get("max_inflight")) if _is_open(r) else None),
        ("load shape", _shape),
        (
            "dataset / scenario args",
            lambda r: " ".join(str(a) for a in _list(_dict(r.meta.get("settings")).get("scenario_args"))),
        ),
        ("spawn rate", lambda r: format_rate(_dict(r.meta.get("settings")).get("spawn_rate"), "users/s")),
        ("duration", lambda r: format_seconds(_dict(r.meta.get("settings")).get("duration_s"))),
        ("warmup", lambda r: format_seconds(_dict(r.meta.get("settings")).get("warmup_s"))),
        ("versions", lambda r: " · ".join(f"{k} {v}" for k, v in _dict(r.meta.get("versions")).items())),
        ("host CPU", _host_cpu),
        ("GPUs", _gpus),
        ("git commit", lambda r: _dict(r.meta.get("git")).get("commit") or r.meta.get("git_commit")),
    ]
    rows = []
    for name, get in facts:
        values = []
        for run in runs:
            try:
                value = get(run)
            except (TypeError, ValueError, AttributeError):
                value = None
            values.append(value if value not in (None, "") else DASH)
        differs = len({str(v) for v in values}) > 1
        label = f"<b>{_e(name)}</b>" if differs else _e(name)
        rows.append([label, *(f"<span class='mono'>{_e(v)}</span>" for v in values)])
    return _grid_table(headers, rows, numeric=())


def _load(run: RunLike) -> dict[str, Any]:
    return _dict(_dict(run.meta.get("settings")).get("load"))


def _is_open(run: RunLike) -> bool:
    return _load(run).get("model") == "open"


def _arrival(run: RunLike) -> str | None:
    """Open loop: the arrival process (gamma with its burstiness; the trace replayed)."""
    load = _load(run)
    if not _is_open(run):
        return None
    arrival = str(load.get("arrival") or "?")
    if load.get("burstiness") is not None:
        arrival += f" (burstiness {format_value(load['burstiness'])})"
    trace = _dict(load.get("trace"))
    if trace:
        arrival += f" {trace.get('file') or ''} ×{format_value(trace.get('scale') or 1)}"
    return arrival


def _shape(run: RunLike) -> str | None:
    """The load shape's stages, ``start→end`` levels over their seconds; None for a constant load."""
    stages = [_dict(st) for st in _list(_dict(run.meta.get("settings")).get("stages"))]
    if not stages:
        return None
    parts = []
    for st in stages[:6]:
        start, end = _num(st.get("start_s")), _num(st.get("end_s"))
        length = f" over {format_value(end - start)} s" if start is not None and end is not None else ""
        parts.append(f"{format_value(st.get('start_level'))}→{format_value(st.get('end_level'))}{length}")
    return "; ".join(parts) + (f"; … ({len(stages)} stages)" if len(stages) > 6 else "")


def _host_cpu(run: RunLike) -> str:
    host = _dict(run.meta.get("host"))
    facts = [host.get("hostname"), host.get("cpu_model")]
    if host.get("cpu_cores"):
        facts.append(f"{host['cpu_cores']} cores")
    return " · ".join(str(f) for f in facts if f)


def _gpus(run: RunLike) -> str:
    gpus = _list(_dict(run.summary.get("resources")).get("gpus"))
    return "; ".join(f"{_dict(g).get('index', '?')}: {_dict(g).get('name') or 'GPU'}" for g in gpus)


_PLOT_CAPTIONS = {
    "plot-percentiles": (
        "Latency by percentile",
        "Latency at each percentile of successful requests in each run's measured window; the x "
        "axis stretches the tail (each tick is ten times rarer than the one before).",
    ),
    "plot-cdf": (
        "Latency CDF",
        "Share of successful requests in the measured window at or below each latency.",
    ),
    "plot-throughput": (
        "Throughput over time",
        "Successful requests per second against seconds since each run's start (warmup included).",
    ),
    "plot-resources": (
        "Resources over time",
        "Sampled server process CPU (% of one core), host CPU (% of all cores) and, where present, "
        "the mean utilization of the load host's GPUs, against seconds since each run's start.",
    ),
}


def _figure_html(key: str, png: bytes) -> str:
    return figure_html(key, png, *_PLOT_CAPTIONS[key])


# ---------------------------------------------------------------------------------------------
# Overlay plots


def _legend_text(text: str) -> str:
    """A legend label matplotlib shows as typed: no mathtext, not hidden by a leading underscore."""
    text = " ".join(text.split())
    if len(text) > MAX_LABEL:
        text = text[: MAX_LABEL - 1] + "…"
    return text.replace("$", r"\$")


def _color(i: int) -> str:
    return plots.SERIES_COLORS[i % len(plots.SERIES_COLORS)]


def _latencies(run: RunLike) -> npt.NDArray[np.float64]:
    lat = np.asarray(run.latency_ms, dtype=float)
    return np.sort(lat[np.isfinite(lat)])


def render_overlay_plots(runs: Sequence[RunLike]) -> dict[str, bytes]:
    """The overlay figures as PNG bytes by figure id; resources only when some run has samples."""
    figures: dict[str, Figure] = {
        "plot-percentiles": percentiles_overlay(runs),
        "plot-cdf": cdf_overlay(runs),
        "plot-throughput": throughput_overlay(runs),
    }
    resources = resources_overlay(runs)
    if resources is not None:
        figures["plot-resources"] = resources
    with warnings.catch_warnings():
        # A run id in a script the font lacks: a missing glyph is a cosmetic matter, not an error.
        warnings.simplefilter("ignore", UserWarning)
        return {key: plots.figure_to_png(fig) for key, fig in figures.items()}


def _finish_legend(ax: Axes) -> None:
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(handles, labels, fontsize=8, loc="upper left", framealpha=0.85)


def percentiles_overlay(runs: Sequence[RunLike]) -> Figure:
    """Latency against percentile on the HdrHistogram 1/(1-q) axis, one curve per run."""
    fig, ax = plots._new_figure("Latency by percentile")
    top = 10.0
    spread_lo, spread_hi = np.inf, 0.0
    drawn = False
    for i, run in enumerate(runs):
        lat = _latencies(run)
        n = lat.size
        if n == 0:
            continue
        x = (
            np.unique(np.concatenate([np.geomspace(1.0, float(n), CURVE_POINTS), [float(n)]]))
            if n > 1
            else [1.0]
        )
        x = np.asarray(x, dtype=float)
        y = np.percentile(lat, (1.0 - 1.0 / x) * 100.0)
        ax.plot(x, y, color=_color(i), lw=1.6, label=_legend_text(f"{_run_label(run, i)} ({n:,} requests)"))
        top = max(top, float(n))
        positive = lat[lat > 0]
        if positive.size:
            spread_lo, spread_hi = min(spread_lo, float(positive[0])), max(spread_hi, float(positive[-1]))
        drawn = True
    if not drawn:
        return plots._no_data(fig, ax, "no successful requests")
    ax.set_xscale("log")
    ax.set_xlim(1.0, top)
    decades = int(np.floor(np.log10(top) + 1e-9))
    ax.xaxis.set_major_locator(FixedLocator([10.0**k for k in range(decades + 1)]))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticklabels([plots._percentile_label(k) for k in range(decades + 1)])
    ax.set_xlabel("percentile")
    ax.set_ylabel("latency (ms)")
    ax.grid(True, which="major", alpha=0.35)
    if spread_hi > 0 and spread_hi / spread_lo > plots.LOG_SPREAD:
        ax.set_yscale("log")
    else:
        ax.set_ylim(bottom=0)
    _finish_legend(ax)
    return fig


def cdf_overlay(runs: Sequence[RunLike]) -> Figure:
    """Cumulative distribution of successful requests' latency, one curve per run."""
    fig, ax = plots._new_figure("Latency CDF")
    lo, hi = np.inf, 0.0
    drawn = False
    for i, run in enumerate(runs):
        lat = _latencies(run)
        if lat.size == 0:
            continue
        q = np.linspace(0.0, 1.0, min(CURVE_POINTS, max(lat.size, 2)))
        x = np.quantile(lat, q)
        ax.plot(x, q * 100.0, color=_color(i), lw=1.6, label=_legend_text(_run_label(run, i)))
        positive = lat[lat > 0]
        if positive.size:
            lo, hi = min(lo, float(positive[0])), max(hi, float(positive[-1]))
        drawn = True
    if not drawn:
        return plots._no_data(fig, ax, "no successful requests")
    if hi > 0 and hi / lo > plots.LOG_SPREAD:
        ax.set_xscale("log")
    ax.set_ylim(0, 100)
    ax.set_xlabel("latency (ms)")
    ax.set_ylabel("requests at or below (%)")
    ax.grid(True, alpha=0.35)
    ax.legend(fontsize=8, loc="lower right", framealpha=0.85)
    return fig


def throughput_overlay(runs: Sequence[RunLike]) -> Figure:
    """Successful requests per second against seconds since each run's start, one line per run."""
    fig, ax = plots._new_figure("Throughput over time")
    drawn = False
    for i, run in enumerate(runs):
        ts = run.timeseries
        if ts is None or ts.empty or "second" not in ts or "ok" not in ts:
            continue
        ts = ts.sort_values("second")
        x = ts["second"].to_numpy(dtype=float) + 0.5
        y = pd.to_numeric(ts["ok"], errors="coerce").fillna(0).to_numpy(dtype=float)
        ax.plot(x, y, color=_color(i), lw=1.3, label=_legend_text(_run_label(run, i)))
        drawn = True
    if not drawn:
        return plots._no_data(fig, ax, "no data")
    plots._label_time_axes(ax, "successful requests per second")
    ax.set_ylim(bottom=0)
    plots._legend(ax)
    return fig


def _run_start(run: RunLike) -> float | None:
    ts = run.timeseries
    if ts is not None and not ts.empty and {"second", "start_unix_s"} <= set(ts.columns):
        v = _num(ts["start_unix_s"].iloc[0] - ts["second"].iloc[0])
        if v is not None:
            return v
    return _num(run.meta.get("started_unix_s"))


def _resource_series(samples: pd.DataFrame, key: str) -> pd.Series | None:
    """One panel's series of a run's samples: a column, or the mean over local GPUs' utilization."""
    if key == "gpu.util_percent":
        cols = [c for c in samples.columns if plots._GPU_METRIC.match(str(c)) and "/" not in str(c)]
        cols = [
            c for c in cols if str(c).endswith(".util_percent") and not str(c).endswith("mem_util_percent")
        ]
        if not cols:
            return None
        return samples[cols].apply(pd.to_numeric, errors="coerce").mean(axis=1)
    if key not in samples.columns:
        return None
    return pd.to_numeric(samples[key], errors="coerce")


def _has_samples(run: RunLike) -> bool:
    s = run.samples
    return s is not None and not s.empty and "unix_s" in s.columns and len(s.columns) > 1


def resources_overlay(runs: Sequence[RunLike]) -> Figure | None:
    """Server CPU, host CPU and GPU utilization over time, one color per run; None without samples."""
    sampled = [(i, run) for i, run in enumerate(runs) if _has_samples(run)]
    if not sampled:
        return None
    panels = []
    for key, ylabel in _RESOURCE_PANELS:
        lines = []
        for i, run in sampled:
            series = _resource_series(run.samples, key)
            start = _run_start(run)
            if series is None or start is None or not series.notna().any():
                continue
            t = run.samples["unix_s"].to_numpy(dtype=float) - start
            keep = plots.downsample_indices(t.size, plots.MAX_SAMPLES)
            lines.append((i, run, t[keep], series.to_numpy(dtype=float)[keep]))
        if lines:
            panels.append((ylabel, lines))
    if not panels:
        return None
    fig = Figure(
        figsize=(plots.FIGSIZE[0], 0.8 + plots.PANEL_HEIGHT * len(panels)),
        dpi=plots.DPI,
        layout="constrained",
    )
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    axes[0].set_title("Resources over time", fontsize=11, loc="left")
    for ax, (ylabel, lines) in zip(axes, panels, strict=True):
        for i, run, t, v in lines:
            ax.plot(t, v, color=_color(i), lw=1.1, label=_legend_text(_run_label(run, i)))
        ax.set_ylabel(ylabel, fontsize=8)
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.35)
        plots._side_legend(ax, None)
    axes[-1].set_xlabel("time since run start (s)")
    return fig
