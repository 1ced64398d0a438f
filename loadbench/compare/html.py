"""``compare.html``: the comparison as one self-contained page (inline CSS, PNG plots as data
URLs, no network), from the ``compare.html.j2`` template.

Everything that came from the server or the user (run ids, scenarios, targets, warnings, rule
names) is data, never markup: the template escapes the values it is given, and the tables are
built by the HTML kit (`loadbench.report.html`), which escapes each cell.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from loadbench.compare.plots import PLOT_CAPTIONS, render_overlay_plots
from loadbench.compare.runlike import RunLike, run_label
from loadbench.compare.verdict import (
    NUMERIC_COLUMNS,
    TABLE_HEADERS,
    VERDICT_EMOJI,
    candidate_entries,
    counts_text,
    failed_rules,
    metric_rows,
    rule_text,
    run_id,
    status,
)
from loadbench.report.fmt import (
    DASH,
    as_dict,
    as_list,
    format_count,
    format_rate,
    format_seconds,
    format_value,
    num,
)
from loadbench.report.html import CSS, esc, figure_html, grid_table, render_template, trusted


def render_compare_html(result: dict[str, Any], runs: Sequence[RunLike]) -> str:
    """The whole self-contained comparison page."""
    failed = failed_rules(result)
    entries = candidate_entries(result)
    pngs = render_overlay_plots(runs)
    return render_template(
        "compare.html.j2",
        css=trusted(CSS),
        base_id=run_id(result.get("base"), "base"),
        cand_id=run_id(result.get("candidate"), "candidate"),
        main=_comparison_view(result, 1),
        gates=f" · {len(failed)} gate{'s' if len(failed) != 1 else ''} failed" if failed else "",
        candidates=[{"run": c.get("run") or "?", "verdict": " ".join(status(c)[:2])} for c in entries]
        if len(entries) > 1
        else [],
        others=[_comparison_view(entry, number) for number, entry in enumerate(entries[1:], start=2)],
        settings_table=trusted(settings_table_html(runs)) if runs else None,
        figures=[trusted(figure_html(key, png, *PLOT_CAPTIONS[key])) for key, png in pngs.items()],
    )


def _comparison_view(entry: dict[str, Any], number: int) -> dict[str, Any]:
    """What the page shows of one candidate's comparison with the base (``number`` 1 is the first)."""
    emoji, word, css = status(entry)
    return {
        "number": number,
        "run": entry.get("run") or "?",
        "emoji": emoji,
        "word": word,
        "css": css,
        "counts": counts_text(entry),
        "warnings": [w for w in as_list(entry.get("warnings"))],
        "failed": [rule_text(r, entry) for r in failed_rules(entry)],
        "table": trusted(metrics_table_html(entry)),
    }


def metrics_table_html(result: dict[str, Any]) -> str:
    """The metrics table: label and path, values, Δ, Δ%, CI, and the verdict cell coloured."""
    rows = []
    for path, cells, verdict in metric_rows(result):
        css = verdict if verdict in VERDICT_EMOJI else "same"
        escaped = [f"{esc(cells[0])}<br><span class='mono sub'>{esc(path)}</span>"]
        escaped += [esc(c) for c in cells[1:]]
        escaped.append(f"<span class='{css}'>{esc(VERDICT_EMOJI.get(verdict, '⚪'))} {esc(verdict)}</span>")
        rows.append(escaped)
    table = grid_table(TABLE_HEADERS, rows, numeric=NUMERIC_COLUMNS)
    # The kit's table has no per-cell class: colour the verdict cell itself.
    for css in VERDICT_EMOJI:
        table = table.replace(f"<td><span class='{css}'>", f"<td class='{css}'><span class='{css}'>")
    return table


def settings_table_html(runs: Sequence[RunLike]) -> str:
    """Each run's settings side by side; a fact that differs between the runs in bold."""
    headers = ["", *(run_label(r, i).split(":", 1)[0] for i, r in enumerate(runs))]
    facts: list[tuple[str, Callable[[RunLike], Any]]] = [
        ("run id", lambda r: r.meta.get("run_id") or as_dict(r.summary.get("run")).get("id") or r.path.name),
        ("scenario", lambda r: r.meta.get("scenario") or as_dict(r.summary.get("run")).get("scenario")),
        ("status", lambda r: r.meta.get("status") or as_dict(r.summary.get("run")).get("status")),
        ("target", lambda r: r.meta.get("target") or as_dict(r.summary.get("run")).get("target")),
        (
            "started (UTC)",
            lambda r: r.meta.get("started_at") or as_dict(r.summary.get("run")).get("started_at"),
        ),
        ("load model", lambda r: r.meta.get("load_model")),
        (
            "users",
            lambda r: None if _is_open(r) else format_count(as_dict(r.meta.get("settings")).get("users")),
        ),
        ("rate", lambda r: format_rate(_load(r).get("rate")) if _is_open(r) else None),
        ("arrival", _arrival),
        ("max in flight", lambda r: format_count(_load(r).get("max_inflight")) if _is_open(r) else None),
        ("load shape", _shape),
        (
            "dataset / scenario args",
            lambda r: " ".join(str(a) for a in as_list(as_dict(r.meta.get("settings")).get("scenario_args"))),
        ),
        ("spawn rate", lambda r: format_rate(as_dict(r.meta.get("settings")).get("spawn_rate"), "users/s")),
        ("duration", lambda r: format_seconds(as_dict(r.meta.get("settings")).get("duration_s"))),
        ("warmup", lambda r: format_seconds(as_dict(r.meta.get("settings")).get("warmup_s"))),
        ("versions", lambda r: " · ".join(f"{k} {v}" for k, v in as_dict(r.meta.get("versions")).items())),
        ("host CPU", _host_cpu),
        ("GPUs", _gpus),
        ("git commit", lambda r: as_dict(r.meta.get("git")).get("commit") or r.meta.get("git_commit")),
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
        label = f"<b>{esc(name)}</b>" if differs else esc(name)
        rows.append([label, *(f"<span class='mono'>{esc(v)}</span>" for v in values)])
    return grid_table(headers, rows, numeric=())


def _load(run: RunLike) -> dict[str, Any]:
    return as_dict(as_dict(run.meta.get("settings")).get("load"))


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
    trace = as_dict(load.get("trace"))
    if trace:
        arrival += f" {trace.get('file') or ''} ×{format_value(trace.get('scale') or 1)}"
    return arrival


def _shape(run: RunLike) -> str | None:
    """The load shape's stages, ``start→end`` levels over their seconds; None for a constant load."""
    stages = [as_dict(st) for st in as_list(as_dict(run.meta.get("settings")).get("stages"))]
    if not stages:
        return None
    parts = []
    for st in stages[:6]:
        start, end = num(st.get("start_s")), num(st.get("end_s"))
        length = f" over {format_value(end - start)} s" if start is not None and end is not None else ""
        parts.append(f"{format_value(st.get('start_level'))}→{format_value(st.get('end_level'))}{length}")
    return "; ".join(parts) + (f"; … ({len(stages)} stages)" if len(stages) > 6 else "")


def _host_cpu(run: RunLike) -> str:
    host = as_dict(run.meta.get("host"))
    facts = [host.get("hostname"), host.get("cpu_model")]
    if host.get("cpu_cores"):
        facts.append(f"{host['cpu_cores']} cores")
    return " · ".join(str(f) for f in facts if f)


def _gpus(run: RunLike) -> str:
    gpus = as_list(as_dict(run.summary.get("resources")).get("gpus"))
    return "; ".join(f"{as_dict(g).get('index', '?')}: {as_dict(g).get('name') or 'GPU'}" for g in gpus)
