"""Renders a sweep: ``sweep.json``, ``sweep.md`` and ``sweep.html``.

Consumes the ``sweep.json`` object of `loadbench.sweep.sweep.build_sweep` (settings, one row per step
with its offered load, achieved throughput, latency, error rate, SLO checks and run directory,
and the knee, capacity and cost of `loadbench.analyze.capacity`); produces a Markdown headline + table
for a pull request and one self-contained HTML page (inline CSS, PNG plots as data URLs, no
network): the throughput–latency curve (and TTFT / TPOT when the steps measured them), achieved
against offered load, and the error rate. Everything from the server or the user is escaped.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from loadbench.analyze.capacity import ACHIEVED_SHARE, load_text
from loadbench.record import rundir
from loadbench.report import plotkit
from loadbench.report.fmt import DASH, format_ms, format_pct, format_rate
from loadbench.report.html import (
    CSS,
    dir_link,
    esc,
    figure_html,
    grid_table,
    kv_table,
    render_template,
    trusted,
    write_text_atomic,
)
from loadbench.report.markdown import md_table
from loadbench.whatif.render import (
    VALIDATION_HEADERS,
    VALIDATION_NUMERIC,
    validation_figure,
    validation_intro,
    validation_lines,
    validation_rows,
)

SWEEP_JSON = "sweep.json"
SWEEP_MD = "sweep.md"
SWEEP_HTML = "sweep.html"
C_CAPACITY = "#2e7d32"
C_KNEE = "#c62828"
_CAPTIONS = {
    "plot-curve": (
        "Throughput–latency curve",
        "p50 and p99 latency of each step against its achieved throughput (successful requests/s), "
        "labelled with the offered load. Green ring: capacity; red ring: the saturation knee.",
    ),
    "plot-llm-curve": (
        "Token latency against throughput",
        "Time to first token and time per output token (p50, p99) of each step against its achieved throughput.",
    ),
    "plot-achieved": (
        "Achieved against offered load",
        "Successful requests/s of each step against the load offered; dashed: achieved = offered and "
        "the 95 % line a step must reach to count as keeping up.",
    ),
    "plot-errors": (
        "Error rate",
        "Failed requests as a share of all requests in each step's measured window.",
    ),
    "plot-whatif": (
        "What-if: predicted against measured",
        "Each step's measured p50 (x) and p99 (+) against its arrival rate, and what the queueing models "
        "fitted on the lowest-load step predicted there (dashed p50, solid p99). docs/whatif.md.",
    ),
}


def _unit(sweep: dict[str, Any]) -> str:
    return "rps" if sweep.get("settings", {}).get("mode") == "rate" else "users"


def _load(value: Any, unit: str) -> str:
    return DASH if value is None else load_text(value, "rate" if unit == "rps" else "users")


def _steps(sweep: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in sweep.get("steps", []) if isinstance(r, dict)]


def _measured(sweep: dict[str, Any]) -> list[dict[str, Any]]:
    return sorted((r for r in _steps(sweep) if "achieved_rps" in r), key=lambda r: r["offered"])


# ---------------------------------------------------------------------------------------------
# Headline


def headline(sweep: dict[str, Any]) -> str:
    """One line: capacity, knee, per-GPU capacity and cost (plain text)."""
    unit = _unit(sweep)
    cap, knee = sweep.get("capacity"), sweep.get("knee")
    slos = sweep.get("settings", {}).get("slos") or []
    if cap:
        text = f"Capacity: {_load(cap['offered'], unit)}"
        if unit == "users":
            text += f" = {format_rate(cap.get('rps'))}"
        text += f" (p99 {format_ms(cap.get('p99_ms'))}"
        text += f"; meets {', '.join(slos)})" if slos else ")"
    else:
        text = "Capacity: none: no step passed"
    text += f" · knee at {_load(knee['offered'], unit)}" if knee else " · no knee in the range swept"
    per_gpu = sweep.get("capacity_per_gpu_rps")
    text += (
        f" · {format_rate(per_gpu)} per GPU"
        if per_gpu is not None
        else f" · per GPU {sweep.get('cost_note')}"
    )
    cost = sweep.get("cost_per_million_requests_usd")
    if cost is not None:
        text += f" · ${cost:,.4g} per million requests"
    if sweep.get("status") != "complete":
        text += f" · sweep {sweep.get('status')}"
    return text


def _verdict(row: dict[str, Any]) -> str:
    # sweep.json files written before "verdict" existed have only "passed".
    return str(row.get("verdict") or ("pass" if row.get("passed") else "fail"))


def _step_cells(row: dict[str, Any], unit: str) -> list[str]:
    ratio = row.get("achieved_ratio")
    return [
        str(row.get("index")),
        _load(row.get("offered"), unit),
        format_rate(row.get("achieved_rps")),
        DASH if ratio is None else f"{ratio:.0%}",
        format_ms(row.get("p50_ms")),
        format_ms(row.get("p99_ms")),
        format_pct(row.get("error_rate")),
        _verdict(row),
        "; ".join(row.get("why") or []) or DASH,
        str(row.get("run_dir") or DASH),
    ]


_HEADERS = ("step", "offered", "achieved", "of offered", "p50", "p99", "errors", "verdict", "why", "run")


def render_sweep_markdown(sweep: dict[str, Any]) -> str:
    """A headline and a table of the steps, for a pull request."""
    unit = _unit(sweep)
    lines = [f"**{headline(sweep)}**", ""]
    lines += md_table(_HEADERS, (_step_cells(r, unit) for r in _steps(sweep)), numeric=(0, 1, 2, 3, 4, 5, 6))
    notes = [*(sweep.get("notes") or [])]
    if sweep.get("knee"):
        notes.append("knee: " + "; ".join(sweep["knee"].get("reasons") or []))
    lines += ["", *[f"- {n}" for n in notes]] if notes else []
    if sweep.get("whatif"):
        lines += ["", "### What-if: predicted against measured", "", *validation_lines(sweep["whatif"])]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# Plots


def _figure(title: str) -> tuple[Figure, Axes]:
    fig = Figure(figsize=plotkit.FIGSIZE, dpi=plotkit.DPI, layout="constrained")
    ax = fig.add_subplot()
    ax.set_title(title, fontsize=11, loc="left")
    ax.grid(True, alpha=0.35)
    return fig, ax


def _ring(ax: Axes, x: Any, ys: Sequence[Any], color: str, label: str) -> None:
    found = [float(y) for y in ys if x is not None and y is not None]
    if found:
        ax.scatter(
            [float(x)] * len(found),
            found,
            s=160,
            facecolors="none",
            edgecolors=color,
            linewidths=2,
            label=label,
        )


def _marked(sweep: dict[str, Any], key: str) -> dict[str, Any] | None:
    mark = sweep.get(key)
    return next((r for r in _steps(sweep) if mark and r.get("index") == mark.get("step")), None)


def curve_figure(sweep: dict[str, Any], series: Sequence[tuple[str, str, str]], title: str) -> Figure | None:
    """Latency figures (row key, label, colour) against achieved throughput; None without data."""
    rows = [r for r in _measured(sweep) if r.get("achieved_rps") is not None]
    present = [s for s in series if any(r.get(s[0]) is not None for r in rows)]
    if not present:
        return None
    fig, ax = _figure(title)
    unit = _unit(sweep)
    for key, label, color in present:
        pts = [(r["achieved_rps"], r[key]) for r in rows if r.get(key) is not None]
        ax.plot(*zip(*pts, strict=True), marker="o", color=color, label=label)
    first = present[-1][0]
    for r in rows:
        if r.get(first) is not None:
            ax.annotate(
                f"{r['offered']:g}", (r["achieved_rps"], r[first]), fontsize=7, xytext=(3, 4),
                textcoords="offset points",
            )  # fmt: skip
    keys = [k for k, _, _ in present]
    for name, color, label in (("capacity", C_CAPACITY, "capacity"), ("knee", C_KNEE, "knee")):
        row = _marked(sweep, name)
        if row:
            _ring(ax, row.get("achieved_rps"), [row.get(k) for k in keys], color, label)
    ax.set_xlabel(f"achieved throughput (req/s); points labelled with the offered load ({unit})")
    ax.set_ylabel("latency (ms)")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8, loc="upper left")
    return fig


def achieved_figure(sweep: dict[str, Any]) -> Figure | None:
    rows = _measured(sweep)
    if not rows:
        return None
    unit = _unit(sweep)
    fig, ax = _figure("Achieved against offered load")
    x = [r["offered"] for r in rows]
    achieved = [float("nan") if r.get("achieved_rps") is None else r["achieved_rps"] for r in rows]
    ax.plot(x, achieved, marker="o", color=plotkit.C_OK, label="achieved (ok req/s)")
    if unit == "rps":
        ax.plot(x, x, linestyle="--", color="#777777", label="achieved = offered")
        ax.plot(x, [ACHIEVED_SHARE * v for v in x], linestyle=":", color="#777777", label="95 % of offered")
    for name, color in (("capacity", C_CAPACITY), ("knee", C_KNEE)):
        row = _marked(sweep, name)
        if row:
            ax.axvline(row["offered"], color=color, alpha=0.7, label=name)
    ax.set_xlabel(f"offered load ({'requests/s' if unit == 'rps' else 'users'})")
    ax.set_ylabel("achieved throughput (req/s)")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8, loc="upper left")
    return fig


def errors_figure(sweep: dict[str, Any]) -> Figure | None:
    rows = [r for r in _measured(sweep) if r.get("error_rate") is not None]
    if not rows:
        return None
    fig, ax = _figure("Error rate by offered load")
    ax.plot(
        [r["offered"] for r in rows], [r["error_rate"] * 100 for r in rows], marker="o", color=plotkit.C_ERR
    )
    ax.set_xlabel(f"offered load ({'requests/s' if _unit(sweep) == 'rps' else 'users'})")
    ax.set_ylabel("errors (% of requests)")
    ax.set_ylim(bottom=0)
    return fig


def render_sweep_plots(sweep: dict[str, Any]) -> dict[str, bytes]:
    """PNG bytes of every plot that has data, by figure id."""
    figures = {
        "plot-curve": curve_figure(
            sweep,
            (("p50_ms", "p50", plotkit.C_P50), ("p99_ms", "p99", plotkit.C_P99)),
            "Throughput–latency curve",
        ),
        "plot-llm-curve": curve_figure(
            sweep,
            (
                ("ttft_p50_ms", "TTFT p50", "#1f77b4"),
                ("ttft_p99_ms", "TTFT p99", "#9467bd"),
                ("tpot_p50_ms", "TPOT p50", "#2ca02c"),
                ("tpot_p99_ms", "TPOT p99", "#ff7f0e"),
            ),
            "Token latency against throughput",
        ),
        "plot-achieved": achieved_figure(sweep),
        "plot-errors": errors_figure(sweep),
        "plot-whatif": validation_figure(sweep["whatif"]) if sweep.get("whatif") else None,
    }
    return plotkit.figures_to_png(figures)


# ---------------------------------------------------------------------------------------------
# HTML


def _steps_table_html(sweep: dict[str, Any]) -> str:
    unit = _unit(sweep)
    rows = []
    for r in _steps(sweep):
        cells = [esc(c) for c in _step_cells(r, unit)]
        name = r.get("run_dir")
        if name:
            cells[9] = dir_link(name, "report.html")
        rows.append(cells)
    table = grid_table(_HEADERS, rows, numeric=(0, 1, 2, 3, 4, 5, 6))
    # Colour the verdict cells: the 8th cell of each body row.
    return table.replace("<td>pass</td>", "<td class='pass'>pass</td>").replace(
        "<td>fail</td>", "<td class='fail'>fail</td>"
    )


def _tiles(sweep: dict[str, Any]) -> list[tuple[str, str]]:
    unit = _unit(sweep)
    cap, knee = sweep.get("capacity"), sweep.get("knee")
    per_gpu = sweep.get("capacity_per_gpu_rps")
    cost = sweep.get("cost_per_million_requests_usd")
    return [
        ("capacity", _load(cap["offered"], unit) if cap else "none"),
        ("knee", _load(knee["offered"], unit) if knee else "none"),
        ("per GPU", format_rate(per_gpu) if per_gpu else "n/a"),
        ("per 1M requests", f"${cost:,.4g}" if cost is not None else "n/a"),
    ]


def _notes(sweep: dict[str, Any]) -> list[str]:
    notes = [str(n) for n in sweep.get("notes") or []]
    knee = sweep.get("knee")
    if knee:
        notes.append(f"knee at step {knee.get('step')}: " + "; ".join(knee.get("reasons") or []))
    if sweep.get("cost_note"):
        notes.append(f"per GPU and cost: {sweep['cost_note']}")
    return notes


def _settings_rows(sweep: dict[str, Any]) -> list[tuple[str, str]]:
    """The settings table's rows, each value escaped (a kit table takes escaped cells)."""
    settings = sweep.get("settings", {})
    rows = [
        ("mode", "open loop, requests/s" if _unit(sweep) == "rps" else "closed loop, users"),
        ("step duration", f"{settings.get('step_duration_s')} s (warmup {settings.get('warmup_s')} s)"),
        ("search", "double, then bisect" if settings.get("find_capacity") else "the listed loads"),
        ("run options", " ".join(settings.get("run_args") or []) or DASH),
        ("started", sweep.get("started_at")),
        ("ended", sweep.get("ended_at")),
    ]
    return [(k, esc(v)) for k, v in rows]


def render_sweep_html(sweep: dict[str, Any], pngs: dict[str, bytes]) -> str:
    """The whole self-contained sweep page."""
    settings = sweep.get("settings", {})
    return render_template(
        "sweep.html.j2",
        css=trusted(CSS),
        target=settings.get("target"),
        scenario=sweep.get("scenario") or "scenario",
        steps=len(_steps(sweep)),
        status=sweep.get("status"),
        headline=headline(sweep),
        tiles=[(k, v) for k, v in _tiles(sweep)],
        notes=[n for n in _notes(sweep)],
        slos=[s for s in settings.get("slos") or []],
        steps_table=trusted(_steps_table_html(sweep)),
        figures=[trusted(figure_html(key, png, *_CAPTIONS[key])) for key, png in pngs.items()],
        settings_table=trusted(kv_table(_settings_rows(sweep))),
        whatif=_whatif_html(sweep.get("whatif")),
    )


def _whatif_html(whatif: dict[str, Any] | None) -> dict[str, Any] | None:
    """The what-if section's escaped parts, or None when the sweep ran without --whatif."""
    if not whatif:
        return None
    rows = [[esc(c) for c in r] for r in validation_rows(whatif)]
    return {
        "intro": validation_intro(whatif),
        "table": trusted(grid_table(VALIDATION_HEADERS, rows, numeric=VALIDATION_NUMERIC)) if rows else None,
        "verdict": whatif.get("verdict"),
        "notes": list(whatif.get("notes") or []),
    }


def render_sweep(sweep: dict[str, Any], out_dir: Path) -> tuple[Path, Path, Path]:
    """Write ``sweep.json``, ``sweep.md`` and ``sweep.html`` into ``out_dir``; return the paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path, html_path = out_dir / SWEEP_JSON, out_dir / SWEEP_MD, out_dir / SWEEP_HTML
    rundir.write_json(json_path, sweep)
    write_text_atomic(md_path, render_sweep_markdown(sweep))
    write_text_atomic(html_path, render_sweep_html(sweep, render_sweep_plots(sweep)))
    return json_path, md_path, html_path
