"""Renders ``sweep --replicas``: ``scaling.json``, ``scaling.md`` and ``scaling.html``.

Consumes the ``scaling.json`` object of `loadbench.sweep.scaling.build_scaling` (the capacity
and efficiency per replica count, the USL fit, its predictions and its check); produces a
headline and tables for a pull request and one self-contained HTML page (inline CSS, PNG plots
as data URLs, no network): capacity against replicas (measured, the linear ideal N × capacity(1),
the fitted curve, the predictions) and efficiency against replicas. Everything from the server
or the user is escaped.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from loadbench.analyze.capacity import load_text
from loadbench.record import rundir
from loadbench.report import plotkit
from loadbench.report.fmt import DASH, as_dict, as_list, format_ms, format_rate, num
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
from loadbench.report.markdown import md, md_table

SCALING_JSON = "scaling.json"
SCALING_MD = "scaling.md"
SCALING_HTML = "scaling.html"
C_MEASURED, C_IDEAL, C_FIT, C_PREDICTED = "#1f77b4", "#777777", "#ff7f0e", "#2e7d32"
_CAPTIONS = {
    "plot-capacity": (
        "Capacity against replicas",
        "The capacity under the SLO measured at each replica count (dots), the linear ideal N × capacity(1) "
        "(dashed), the Universal Scalability Law fitted to them (line), its predictions (squares) and, "
        "where a count was held out to check the fit, what the others predicted for it (x).",
    ),
    "plot-efficiency": (
        "Scaling efficiency",
        "capacity(N) / (N × capacity(1)) measured (dots) and fitted (line); 1 is perfect scaling.",
    ),
}
POINT_HEADERS = ("replicas", "capacity", "ideal", "efficiency", "fitted", "residual", "p99", "steps", "sweep")
POINT_NUMERIC = (0, 1, 2, 3, 4, 5, 6, 7)
PREDICTION_HEADERS = ("replicas", "predicted capacity", "ideal", "efficiency", "model", "")


def _signed_pct(value: Any) -> str:
    v = num(value)
    return DASH if v is None else f"{v * 100:+.1f} %"


def _pct(value: Any) -> str:
    v = num(value)
    return DASH if v is None else f"{v * 100:.0f} %"


def _param(value: Any) -> str:
    v = num(value)
    return DASH if v is None else f"{v:.4g}"


def _points(scaling: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in as_list(scaling.get("points")) if isinstance(p, dict)]


def _measured(scaling: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in _points(scaling) if num(p.get("capacity_rps")) is not None]


def _fit(scaling: dict[str, Any]) -> dict[str, Any]:
    return as_dict(scaling.get("fit"))


def _capacity_text(point: dict[str, Any], mode: str) -> str:
    rate = format_rate(point.get("capacity_rps"))
    if mode == "users" and point.get("offered") is not None:
        return f"{load_text(float(point['offered']), 'users')} = {rate}"
    return rate


# ---------------------------------------------------------------------------------------------
# Text


def fit_said(fit: dict[str, Any]) -> str:
    """The fit in one phrase: ``USL σ = 0.02, κ = 0.0004 (peak at 48 replicas, 1,830 req/s)``."""
    if not fit.get("fitted"):
        return f"no fit: {fit.get('why') or 'no capacity measured'}"
    if fit.get("model") == "amdahl":
        text = f"Amdahl σ = {_param(fit.get('sigma'))} (κ = 0: two replica counts)"
        ceiling = fit.get("ceiling_rps")
        return text + (f", ceiling {format_rate(ceiling)}" if ceiling is not None else "")
    text = f"USL σ = {_param(fit.get('sigma'))}, κ = {_param(fit.get('kappa'))}"
    if fit.get("peak_replicas") is not None:
        text += f" (peak at {fit['peak_replicas']:.3g} replicas, {format_rate(fit.get('peak_rps'))})"
    elif fit.get("ceiling_rps") is not None:
        text += f" (no peak: κ = 0, ceiling {format_rate(fit['ceiling_rps'])})"
    else:
        text += " (no peak)"
    return text


def validation_said(validation: dict[str, Any] | None) -> str:
    """The check in one sentence, or why there is none."""
    validation = validation or {}
    if not validation.get("validated"):
        return f"not checked: {validation.get('why') or 'no fit'}"
    fit_on = ", ".join(str(n) for n in validation.get("fit_on") or [])
    model = "Amdahl" if validation.get("model") == "amdahl" else "USL"
    holds = "holds" if validation.get("holds") else "does not hold"
    return (
        f"fitted ({model}) on {fit_on} replica(s), the fit predicted {format_rate(validation.get('predicted_rps'))} "
        f"at {validation.get('replicas')}, measured {format_rate(validation.get('measured_rps'))}: error "
        f"{_signed_pct(validation.get('error'))} ({holds} within {_pct(validation.get('holds_within'))})"
    )


def fit_error_said(fit: dict[str, Any]) -> str:
    """The fit's own error: RMS and largest relative residual, or why they say nothing."""
    if not fit.get("fitted"):
        return DASH
    if fit.get("exact"):
        return str(fit.get("residual_note") or "exact fit")
    return (
        f"RMS relative residual {_signed_pct(fit.get('rms_residual')).lstrip('+')}, largest "
        f"{_signed_pct(fit.get('max_residual'))} at {fit.get('max_residual_replicas')} replicas"
    )


def scaling_headline(scaling: dict[str, Any]) -> str:
    """One line: capacity and efficiency per count, the fit, the predictions, the check."""
    measured = _measured(scaling)
    if not measured:
        text = "Scaling: no capacity measured at any replica count"
    else:
        caps = " · ".join(
            f"{p['replicas']}: {format_rate(p['capacity_rps'])}"
            + (f" ({_pct(p['efficiency'])})" if p.get("efficiency") is not None else "")
            for p in measured
        )
        text = f"Scaling (capacity, efficiency) {caps}"
    fit = _fit(scaling)
    text += f" · {fit_said(fit)}"
    predicted = [p for p in as_list(scaling.get("predictions")) if isinstance(p, dict)]
    if predicted:
        text += " · predicted " + ", ".join(
            f"{p['replicas']}: {format_rate(p.get('rps'))}" for p in predicted
        )
    validation = as_dict(scaling.get("validation"))
    if validation.get("validated"):
        text += f" · check at {validation.get('replicas')}: error {_signed_pct(validation.get('error'))}"
    if scaling.get("status") != "complete":
        text += f" · {scaling.get('status')}"
    return text


def point_cells(point: dict[str, Any], mode: str) -> list[str]:
    return [
        str(point.get("replicas")),
        _capacity_text(point, mode) if point.get("capacity_rps") is not None else "none",
        format_rate(point.get("ideal_rps")),
        _pct(point.get("efficiency")),
        format_rate(point.get("fitted_rps")),
        _signed_pct(point.get("residual")),
        format_ms(point.get("p99_ms")),
        str(point.get("steps") if point.get("steps") is not None else DASH),
        str(point.get("sweep_dir") or DASH),
    ]


def prediction_cells(prediction: dict[str, Any]) -> list[str]:
    return [
        str(prediction.get("replicas")),
        format_rate(prediction.get("rps")),
        format_rate(prediction.get("ideal_rps")),
        _pct(prediction.get("efficiency")),
        "Amdahl" if prediction.get("model") == "amdahl" else "USL",
        "extrapolated" if prediction.get("extrapolated") else "within the counts measured",
    ]


def _fit_rows(scaling: dict[str, Any]) -> list[tuple[str, str]]:
    fit = _fit(scaling)
    rows = [("fit", fit_said(fit))]
    if fit.get("fitted"):
        rows += [
            ("λ (one replica, by the fit)", format_rate(fit.get("lambda_rps"))),
            ("σ (contention)", _param(fit.get("sigma"))),
            ("κ (coherency)", _param(fit.get("kappa"))),
            ("fitted on", ", ".join(str(n) for n in fit.get("replicas") or []) + " replica(s)"),
            ("method", str(fit.get("method"))),
            ("error of the fit", fit_error_said(fit)),
        ]
    rows.append(("check", validation_said(as_dict(scaling.get("validation")))))
    return rows


def _mode(scaling: dict[str, Any]) -> str:
    return str(as_dict(scaling.get("settings")).get("mode") or "rate")


def render_scaling_markdown(scaling: dict[str, Any]) -> str:
    """A headline, the points, the fit, the predictions and the check, for a pull request."""
    mode = _mode(scaling)
    lines = [f"**{scaling_headline(scaling)}**", ""]
    lines += md_table(POINT_HEADERS, (point_cells(p, mode) for p in _points(scaling)), numeric=POINT_NUMERIC)
    lines += ["", *md_table(("USL fit", ""), _fit_rows(scaling), numeric=())]
    predicted = [p for p in as_list(scaling.get("predictions")) if isinstance(p, dict)]
    if predicted:
        lines += [
            "",
            *md_table(PREDICTION_HEADERS, (prediction_cells(p) for p in predicted), numeric=(0, 1, 2, 3)),
        ]
    notes = [str(n) for n in as_list(scaling.get("notes"))]
    assumptions = [str(a) for a in as_list(scaling.get("assumptions"))]
    if notes:
        lines += ["", *[f"- {md(n)}" for n in notes]]
    if assumptions:
        lines += ["", "Assumptions:", "", *[f"- {md(a)}" for a in assumptions]]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# Plots


def _figure(title: str) -> tuple[Figure, Axes]:
    fig, ax = plotkit.new_figure(title)
    ax.grid(True, alpha=0.35)
    return fig, ax


def _curve(scaling: dict[str, Any], key: str) -> tuple[list[float], list[float]]:
    pts = [c for c in as_list(scaling.get("curve")) if isinstance(c, dict) and num(c.get(key)) is not None]
    return [float(c["replicas"]) for c in pts], [float(c[key]) for c in pts]


def capacity_figure(scaling: dict[str, Any]) -> Figure | None:
    measured = _measured(scaling)
    if not measured:
        return None
    fig, ax = _figure("Capacity against replicas")
    xs = [float(p["replicas"]) for p in measured]
    ax.plot(
        xs, [float(p["capacity_rps"]) for p in measured], "o", color=C_MEASURED, label="measured", zorder=4
    )
    fit = _fit(scaling)
    curve_x, curve_y = _curve(scaling, "rps")
    one = next((float(p["capacity_rps"]) for p in measured if p["replicas"] == 1), None)
    if curve_x and one is not None:
        ax.plot(curve_x, [one * n for n in curve_x], "--", color=C_IDEAL, label="linear: N × capacity(1)")
    if curve_x:
        name = "USL fit" if fit.get("model") == "usl" else "Amdahl fit (κ = 0)"
        ax.plot(curve_x, curve_y, "-", color=C_FIT, label=name)
    # A count measured shows its measurement; its prediction stays in the table.
    predicted = [
        p
        for p in as_list(scaling.get("predictions"))
        if isinstance(p, dict) and num(p.get("rps")) and float(p["replicas"]) not in xs
    ]
    if predicted:
        ax.plot(
            [float(p["replicas"]) for p in predicted],
            [float(p["rps"]) for p in predicted],
            "s",
            color=C_PREDICTED,
            label="predicted",
            zorder=3,
        )
        for p in predicted:
            ax.annotate(
                format_rate(p["rps"]), (float(p["replicas"]), float(p["rps"])), fontsize=7, xytext=(-6, 6),
                textcoords="offset points", ha="right",
            )  # fmt: skip
    validation = as_dict(scaling.get("validation"))
    if validation.get("validated"):
        ax.plot(
            [float(validation["replicas"])],
            [float(validation["predicted_rps"])],
            "x",
            color=C_FIT,
            markersize=9,
            label=f"check: predicted from {', '.join(str(n) for n in validation.get('fit_on') or [])}",
        )
    _replica_axis(ax, scaling, xs, curve_x)
    ax.set_ylabel("capacity under the SLO (req/s)")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8, loc="upper left")
    return fig


def efficiency_figure(scaling: dict[str, Any]) -> Figure | None:
    measured = [p for p in _measured(scaling) if num(p.get("efficiency")) is not None]
    if not measured:
        return None
    fig, ax = _figure("Scaling efficiency")
    xs = [float(p["replicas"]) for p in measured]
    ax.axhline(1.0, linestyle="--", color=C_IDEAL, label="linear scaling")
    curve_x, curve_y = _curve(scaling, "efficiency")
    if curve_x:
        ax.plot(curve_x, curve_y, "-", color=C_FIT, label="fitted")
    ax.plot(xs, [float(p["efficiency"]) for p in measured], "o", color=C_MEASURED, label="measured", zorder=3)
    _replica_axis(ax, scaling, xs, curve_x)
    ax.set_ylabel("capacity(N) / (N × capacity(1))")
    ax.set_ylim(0, max(1.1, *(float(p["efficiency"]) * 1.05 for p in measured)))
    ax.legend(fontsize=8, loc="lower left")
    return fig


def _replica_axis(ax: Axes, scaling: dict[str, Any], xs: Sequence[float], curve_x: Sequence[float]) -> None:
    """Ticks at the counts measured and predicted, on a linear axis: the linear ideal is then a
    straight line, and the fit's bend away from it reads as the capacity lost."""
    predicted = [float(p["replicas"]) for p in as_list(scaling.get("predictions")) if isinstance(p, dict)]
    ticks = sorted({1, *(int(x) for x in [*xs, *predicted])})
    ax.set_xticks(ticks)
    ax.set_xlim(0, max([*ticks, *curve_x]) * 1.05)
    ax.set_xlabel("replicas (N)")


def render_scaling_plots(scaling: dict[str, Any]) -> dict[str, bytes]:
    """PNG bytes of every plot that has data, by figure id."""
    figures = {"plot-capacity": capacity_figure(scaling), "plot-efficiency": efficiency_figure(scaling)}
    return plotkit.figures_to_png(figures)


# ---------------------------------------------------------------------------------------------
# HTML


def _points_table_html(scaling: dict[str, Any]) -> str:
    mode = _mode(scaling)
    rows = []
    for p in _points(scaling):
        cells = [esc(c) for c in point_cells(p, mode)]
        name = p.get("sweep_dir")
        if name:
            cells[-1] = dir_link(name, "sweep.html")
        rows.append(cells)
    return grid_table(POINT_HEADERS, rows, numeric=POINT_NUMERIC)


def _settings_rows(scaling: dict[str, Any]) -> list[tuple[str, str]]:
    settings = as_dict(scaling.get("settings"))
    demo = as_dict(settings.get("demo"))
    source = (
        f"the demo: {settings.get('replicas') and max(settings['replicas'])} replica(s) at most, "
        f"service {demo.get('latency_ms')} ms, workers {demo.get('workers') or 'no limit'} each"
        if settings.get("source") == "demo"
        else " ".join(str(t) for t in settings.get("targets") or []) or DASH
    )
    rows = [
        ("replicas", ", ".join(str(n) for n in settings.get("replicas") or [])),
        ("balance", settings.get("balance")),
        ("replicas from", source),
        ("search", f"--find-capacity {settings.get('mode')}, resolution {settings.get('resolution')}, "
         f"at most {settings.get('max_steps')} steps per count"),
        ("step duration", f"{settings.get('step_duration_s')} s (warmup {settings.get('warmup_s')} s)"),
        ("run options", " ".join(str(a) for a in settings.get("run_args") or []) or DASH),
        ("started", scaling.get("started_at")),
        ("ended", scaling.get("ended_at")),
    ]  # fmt: skip
    return [(k, esc(v)) for k, v in rows]


def render_scaling_html(scaling: dict[str, Any], pngs: dict[str, bytes]) -> str:
    """The whole self-contained scaling page."""
    settings = as_dict(scaling.get("settings"))
    predicted = [p for p in as_list(scaling.get("predictions")) if isinstance(p, dict)]
    prediction_rows = [[esc(c) for c in prediction_cells(p)] for p in predicted]
    return render_template(
        "scaling.html.j2",
        css=trusted(CSS),
        scenario=scaling.get("scenario") or "scenario",
        status=scaling.get("status"),
        replicas=", ".join(str(n) for n in settings.get("replicas") or []),
        headline=scaling_headline(scaling),
        slos=[str(s) for s in settings.get("slos") or []],
        points_table=trusted(_points_table_html(scaling)),
        fit_table=trusted(kv_table([(k, esc(v)) for k, v in _fit_rows(scaling)])),
        predictions_table=trusted(grid_table(PREDICTION_HEADERS, prediction_rows, numeric=(0, 1, 2, 3)))
        if prediction_rows
        else None,
        notes=[str(n) for n in as_list(scaling.get("notes"))],
        assumptions=[str(a) for a in as_list(scaling.get("assumptions"))],
        figures=[trusted(figure_html(key, png, *_CAPTIONS[key])) for key, png in pngs.items()],
        settings_table=trusted(kv_table(_settings_rows(scaling))),
    )


def render_scaling(scaling: dict[str, Any], out_dir: Path) -> tuple[Path, Path, Path]:
    """Write ``scaling.json``, ``scaling.md`` and ``scaling.html`` into ``out_dir``; return the paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path, html_path = out_dir / SCALING_JSON, out_dir / SCALING_MD, out_dir / SCALING_HTML
    rundir.write_json(json_path, scaling)
    write_text_atomic(md_path, render_scaling_markdown(scaling))
    write_text_atomic(html_path, render_scaling_html(scaling, render_scaling_plots(scaling)))
    return json_path, md_path, html_path
