"""``loadbench sweep --shared-prefix-tokens 0,512,2048``: what a shared prompt prefix does to the
time to first token, at each prefix length, on a server with prefix caching.

Consumes a `PrefixConfig` (built by the CLI: the prefix lengths and the `SweepConfig` each length
runs with: its loads, ``--concurrency`` or ``--rates``). For each length N, in the order given,
it runs an ordinary sweep into ``SWEEP_DIR/prefix-N/`` whose steps send every request with the
same N-token system prompt (``run --shared-prefix-tokens N``) and a seed of their own, so that
no length's prefix is a prefix of another's and each length starts cold. Reads each step's
``summary.json`` (``ttft_ms``, ``shared_prefix``: `loadbench.analyze.firsts`) and produces
``prefix.json``, ``prefix.md`` and ``prefix.html`` (TTFT p50 and p99 against N, for the requests
that could not find the prefix cached and for those that could).

A length's sweep that is interrupted ends the whole run (exit 130) after the report of the
lengths done; one that aborts (a step exits 2) raises `UsageError` after that report.
"""

from __future__ import annotations

import contextlib
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TextIO

from matplotlib.figure import Figure

from loadbench.analyze import capacity
from loadbench.errors import LoadbenchError
from loadbench.record import rundir
from loadbench.redact import redact_argv
from loadbench.report import plotkit
from loadbench.report.fmt import as_dict, format_ms, format_rate, format_times, num
from loadbench.report.html import (
    CSS,
    esc,
    figure_html,
    grid_table,
    kv_table,
    render_template,
    trusted,
    write_text_atomic,
)
from loadbench.report.markdown import md_table
from loadbench.sweep.series import finish_series, run_series
from loadbench.sweep.sweep import SweepConfig, run_sweep

PREFIX_SCHEMA = 1
PREFIX_JSON, PREFIX_MD, PREFIX_HTML = "prefix.json", "prefix.md", "prefix.html"
# Each length's steps get seed BASE + its index: a different prefix text per length.
SEED_BASE = 1000
HEADERS = (
    "prefix tokens", "load", "TTFT p50", "TTFT p99", "uncached TTFT p50 (n)", "cached TTFT p50 (n)",
    "uncached / cached", "throughput", "errors",
)  # fmt: skip


_CAPTION = (
    "Time to first token against the shared prefix",
    "Each length's steps: TTFT p50 and p99 of the measured window, and the p50 of the requests sent "
    "before any first token came back (uncached) and after (cached).",
)


@dataclass
class PrefixConfig:
    tokens: list[int]  # the prefix lengths, in the order run
    search: SweepConfig  # what every length's sweep runs with (its out_dir is replaced)


def prefix_dir_name(tokens: int) -> str:
    return f"prefix-{tokens}"


def step_point(tokens: int, row: dict[str, Any], sweep_dir: Path, mode: str) -> dict[str, Any]:
    """One step of one length's sweep, from its run directory's summary.json."""
    summary: dict[str, Any] = {}
    run_dir = sweep_dir / str(row.get("run_dir") or "")
    with contextlib.suppress(LoadbenchError, OSError, ValueError):
        summary = rundir.read_json(run_dir / "summary.json")
    prefix = as_dict(summary.get("shared_prefix"))
    first, later = as_dict(prefix.get("first")), as_dict(prefix.get("later"))
    ttft = as_dict(summary.get("ttft_ms"))
    return {
        "tokens": tokens,
        "load": capacity.load_text(float(row.get("offered") or 0), mode),
        "run_dir": f"{prefix_dir_name(tokens)}/{run_dir.name}",
        "ttft_ms": {"p50": ttft.get("p50"), "p99": ttft.get("p99")},
        "uncached": {"count": first.get("count"), "ttft_ms": as_dict(first.get("ttft_ms"))},
        "cached": {"count": later.get("count"), "ttft_ms": as_dict(later.get("ttft_ms"))},
        "speedup_p50": prefix.get("speedup_p50"),
        "throughput_rps": summary.get("throughput_rps"),
        "errors": as_dict(summary.get("requests")).get("errors"),
    }


def build_prefix(
    config: PrefixConfig, points: list[dict[str, Any]], status: str, started: float, scenario: Any
) -> dict[str, Any]:
    search = config.search
    done = {p["tokens"] for p in points}
    notes = []
    missing = [str(n) for n in config.tokens if n not in done]
    if missing:
        notes.append(f"not measured ({status}): {', '.join(missing)} prefix tokens")
    if not any(p["ttft_ms"]["p50"] is not None for p in points):
        notes.append(
            "no step reported a time to first token: the scenario must stream (openai_chat, openai_completions)"
        )
    return {
        "schema": PREFIX_SCHEMA,
        "kind": "prefix",
        "status": status,
        "started_at": rundir.iso_utc(started),
        "ended_at": rundir.iso_utc(time.time()),
        "scenario": scenario,
        "settings": {
            "tokens": list(config.tokens),
            "mode": search.mode,
            "loads": list(search.loads),
            "step_duration_s": search.step_duration_s,
            "warmup_s": search.warmup_s,
            "run_args": redact_argv(search.run_args),
        },
        "points": points,
        "notes": notes,
    }


def run_prefix(config: PrefixConfig, out: TextIO = sys.stdout) -> tuple[dict[str, Any], list[Path], int]:
    """Run every length's sweep; write the report; return ``prefix.json``'s object, the report
    paths and the exit code (0 done, 130 interrupted)."""
    started = time.time()
    search = config.search
    top = search.out_dir or rundir.default_run_dir(search.reports_dir, "prefix", started)
    rundir.create_run_dir(top, search.force)
    if not search.quiet:
        lengths = ", ".join(str(n) for n in config.tokens)
        print(f"loadbench: shared prefix of {lengths} tokens -> {top}", file=out, flush=True)
    points: list[dict[str, Any]] = []
    scenario: Any = None

    def run_length(index_tokens: tuple[int, int]) -> int:
        nonlocal scenario
        index, tokens = index_tokens
        name = prefix_dir_name(tokens)
        args = [*search.run_args, "--shared-prefix-tokens", str(tokens), "--seed", str(SEED_BASE + index)]
        sub = replace(search, out_dir=top / name, run_args=args)
        if not search.quiet:
            print(f"loadbench: {tokens} prefix tokens -> {name}/", file=out, flush=True)
        sweep, _, code = run_sweep(sub, out)
        scenario = scenario or sweep.get("scenario")
        points.extend(step_point(tokens, row, top / name, search.mode) for row in sweep.get("steps") or [])
        return code

    end = run_series(enumerate(config.tokens), run_length, lambda point: f"{point[1]} prefix tokens")
    return finish_series(
        top,
        end,
        bool(points),
        lambda status: build_prefix(config, points, status, started, scenario),
        render_prefix,
        "the lengths",
    )


def _count(part: dict[str, Any]) -> str:
    ttft = as_dict(part.get("ttft_ms"))
    return f"{format_ms(ttft.get('p50'))} ({part.get('count') or 0})"


def point_cells(p: dict[str, Any]) -> list[str]:
    return [
        f"{p['tokens']:,}",
        str(p["load"]),
        format_ms(p["ttft_ms"]["p50"]),
        format_ms(p["ttft_ms"]["p99"]),
        _count(as_dict(p.get("uncached"))),
        _count(as_dict(p.get("cached"))),
        format_times(p.get("speedup_p50")),
        format_rate(p.get("throughput_rps")),
        str(p.get("errors") if p.get("errors") is not None else "–"),
    ]


def prefix_headline(result: dict[str, Any]) -> str:
    points = [p for p in result["points"] if p["ttft_ms"]["p50"] is not None]
    if not points:
        return "shared prefix: no time to first token measured"
    low, high = min(points, key=lambda p: p["tokens"]), max(points, key=lambda p: p["tokens"])
    return (
        f"shared prefix: TTFT p50 {format_ms(low['ttft_ms']['p50'])} at {low['tokens']:,} tokens, "
        f"{format_ms(high['ttft_ms']['p50'])} at {high['tokens']:,} ({result['status']})"
    )


def render_prefix_markdown(result: dict[str, Any]) -> str:
    lines = [f"## {prefix_headline(result)}", ""]
    lines += md_table(HEADERS, [point_cells(p) for p in result["points"]], numeric={0, 2, 3, 4, 5, 6, 7, 8})
    lines += ["", *(f"- {note}" for note in result["notes"])]
    return "\n".join(lines).rstrip() + "\n"


def prefix_figure(result: dict[str, Any]) -> Figure | None:
    points = sorted(result["points"], key=lambda p: p["tokens"])
    if not any(p["ttft_ms"]["p50"] is not None for p in points):
        return None
    fig, ax = plotkit.new_figure("Time to first token against the shared prefix")
    xs = [p["tokens"] for p in points]
    for label, values, style in (
        ("TTFT p50", [num(p["ttft_ms"]["p50"]) for p in points], "-o"),
        ("TTFT p99", [num(p["ttft_ms"]["p99"]) for p in points], "--o"),
        ("uncached p50", [num(as_dict(p["uncached"]["ttft_ms"]).get("p50")) for p in points], ":s"),
        ("cached p50", [num(as_dict(p["cached"]["ttft_ms"]).get("p50")) for p in points], ":^"),
    ):
        kept = [(x, v) for x, v in zip(xs, values, strict=True) if v is not None]
        if kept:
            ax.plot([k[0] for k in kept], [k[1] for k in kept], style, label=label, markersize=4)
    ax.set_xlabel("shared prefix (tokens)")
    ax.set_ylabel("time to first token (ms)")
    ax.grid(True, alpha=0.35)
    plotkit.legend(ax)
    return fig


def render_prefix_html(result: dict[str, Any], png: bytes | None) -> str:
    """The whole self-contained page."""
    settings = as_dict(result.get("settings"))
    rows = [[esc(c) for c in point_cells(p)] for p in result["points"]]
    figure = figure_html("plot-prefix", png, *_CAPTION) if png else None
    settings_rows = [(k, esc(v)) for k, v in (
        ("prefix lengths (tokens)", ", ".join(str(n) for n in settings.get("tokens") or [])),
        ("mode", settings.get("mode")),
        ("loads", ", ".join(capacity.load_text(v, str(settings.get("mode"))) for v in settings.get("loads") or [])),
        ("step duration", f"{settings.get('step_duration_s')} s (warmup {settings.get('warmup_s')} s)"),
        ("run options", " ".join(str(a) for a in settings.get("run_args") or [])),
    )]  # fmt: skip
    return render_template(
        "prefix.html.j2",
        css=trusted(CSS),
        scenario=result.get("scenario") or "scenario",
        status=result.get("status"),
        tokens=", ".join(str(n) for n in settings.get("tokens") or []),
        headline=prefix_headline(result),
        notes=[str(n) for n in result["notes"]],
        points_table=trusted(grid_table(HEADERS, rows, numeric=range(len(HEADERS)))),
        figure=trusted(figure) if figure else None,
        settings_table=trusted(kv_table(settings_rows)),
    )


def render_prefix(result: dict[str, Any], out_dir: Path) -> tuple[Path, Path, Path]:
    """Write ``prefix.json``, ``prefix.md`` and ``prefix.html`` into ``out_dir``."""
    fig = prefix_figure(result)
    png = plotkit.figure_to_png(fig) if fig is not None else None
    paths = (out_dir / PREFIX_JSON, out_dir / PREFIX_MD, out_dir / PREFIX_HTML)
    rundir.write_json(paths[0], result)
    write_text_atomic(paths[1], render_prefix_markdown(result))
    write_text_atomic(paths[2], render_prefix_html(result, png))
    return paths
