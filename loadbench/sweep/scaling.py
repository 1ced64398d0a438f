"""``loadbench sweep --replicas 1,2,4``: the capacity under the SLO at each number of replicas,
scaling efficiency, and the Universal Scalability Law fitted to them.

Consumes a `ScalingConfig` (built by the CLI: the replica counts, and the `SweepConfig` every
count's capacity search runs with) and a `ReplicaSource`, which makes N replicas available for
as long as their search runs: `demo_replicas` starts N demo replicas in one child process (and
stops them after), `given_replicas` takes the first N of the ``--target``/``--targets`` URLs.
For each N, in increasing order, it runs an ordinary ``--find-capacity`` sweep into
``SWEEP_DIR/replicas-N/`` whose steps target the N replicas, balanced client-side (``run
--target URL ... --balance B``). Produces ``scaling.json``, ``scaling.md`` and ``scaling.html``
in the sweep directory (`loadbench.sweep.scaling_report`); the math is
`loadbench.analyze.scaling`.

Each search after the first starts at the linear ideal from the last capacity found (N/N' ×
capacity(N')), not at ``--start-rate``: it passes only if scaling is perfect (the search then
grows by `IDEAL_GROWTH`, not 2×), a failure halves back towards the capacity already found, and
the bisection between them takes a few steps; a search from 1 rps would spend most of its steps
far below the capacity.

A count's sweep that is interrupted ends the whole run (exit 130) after the report of the
counts done; one that aborts (a step exits 2) raises `UsageError` after that report.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TextIO

from loadbench.analyze import capacity
from loadbench.analyze.scaling import analyze_scaling
from loadbench.demo.spawn import DemoTiming, start_replicas, stop_demo
from loadbench.errors import UsageError
from loadbench.load.balance import DEFAULT_POLICY
from loadbench.record import rundir
from loadbench.redact import redact_argv, redact_url
from loadbench.report.fmt import format_rate
from loadbench.sweep.scaling_report import render_scaling
from loadbench.sweep.series import finish_series, run_series
from loadbench.sweep.sweep import SweepConfig, run_sweep

SCALING_SCHEMA = 1
# Above its linear ideal a count's search grows 25 % a step, not 2x: a fleet that beats N x the
# capacity of one by much is rare, and a step at twice the ideal only overloads it (and drains).
IDEAL_GROWTH = 1.25

# N replicas, available while the context lasts: their URLs, in order.
ReplicaSource = Callable[[int], AbstractContextManager[list[str]]]


@dataclass
class ScalingConfig:
    """``sweep --replicas``: the replica counts and the search each runs (``search``: its
    ``out_dir`` is the top sweep directory, its ``start`` the first count's)."""

    replicas: list[int]
    search: SweepConfig
    balance: str = DEFAULT_POLICY
    source: str = "targets"  # "demo" or "targets", recorded in scaling.json
    targets: list[str] = field(default_factory=list)  # --target/--targets as given
    demo: DemoTiming | None = None


def given_replicas(targets: Sequence[str]) -> ReplicaSource:
    """The first N of ``targets`` for N replicas (the CLI checked there are enough)."""

    @contextlib.contextmanager
    def first(count: int) -> Iterator[list[str]]:
        if count > len(targets):
            raise UsageError(f"{count} replicas asked for, {len(targets)} target(s) given")
        yield list(targets[:count])

    return first


def demo_replicas(timing: DemoTiming) -> ReplicaSource:
    """N demo replicas (`loadbench.demo.spawn.start_replicas`), stopped when the count is done."""

    @contextlib.contextmanager
    def started(count: int) -> Iterator[list[str]]:
        process, urls = start_replicas(timing, count)
        try:
            yield urls
        finally:
            stop_demo(process)

    return started


def replicas_dir_name(count: int) -> str:
    return f"replicas-{count}"


def _settings(config: ScalingConfig) -> dict[str, Any]:
    search = config.search
    demo = config.demo
    return {
        "replicas": list(config.replicas),
        "balance": config.balance,
        "source": config.source,
        "targets": [redact_url(t) for t in config.targets[: max(config.replicas)]],
        "demo": None if demo is None else {"latency_ms": demo.latency_ms, "workers": demo.workers},
        "mode": search.mode,
        "start": search.start,
        "resolution": search.resolution,
        "max_steps": search.max_steps,
        "step_duration_s": search.step_duration_s,
        "warmup_s": search.warmup_s,
        "slos": list(search.slos),
        "run_args": redact_argv(search.run_args),
    }


def _point(count: int, sweep: dict[str, Any], targets: Sequence[str], dir_name: str) -> dict[str, Any]:
    """What one count's sweep measured, for ``scaling.json`` ``points``."""
    cap = sweep.get("capacity") or {}
    return {
        "replicas": count,
        "capacity_rps": cap.get("rps"),
        "offered": cap.get("offered"),
        "unit": cap.get("unit"),
        "p99_ms": cap.get("p99_ms"),
        "steps": len(sweep.get("steps") or []),
        "status": sweep.get("status"),
        "sweep_dir": dir_name,
        "targets": [redact_url(t) for t in targets],
    }


def build_scaling(
    config: ScalingConfig, measured: list[dict[str, Any]], status: str, started: float, scenario: Any
) -> dict[str, Any]:
    """The ``scaling.json`` object: settings, the points each count's sweep measured and
    `loadbench.analyze.scaling.analyze_scaling`'s figures."""
    analysis = analyze_scaling([(p["replicas"], p["capacity_rps"]) for p in measured])
    by_count = {p["replicas"]: p for p in measured}
    points = [by_count[row["replicas"]] | row for row in analysis.pop("points")]
    not_run = [n for n in config.replicas if n not in by_count]
    if not_run:
        counts = ", ".join(str(n) for n in not_run)
        analysis["notes"].append(f"not measured ({status}): {counts} replica(s)")
    return {
        "schema": SCALING_SCHEMA,
        "kind": "scaling",
        "status": status,
        "started_at": rundir.iso_utc(started),
        "ended_at": rundir.iso_utc(time.time()),
        "scenario": scenario,
        "settings": _settings(config),
        "points": points,
        **analysis,
    }


def run_scaling(
    config: ScalingConfig, source: ReplicaSource, out: TextIO = sys.stdout
) -> tuple[dict[str, Any], list[Path], int]:
    """Run every count's capacity search; write the report; return ``scaling.json``'s object, the
    report paths and the exit code (0 done, 130 interrupted). `UsageError` after the report when
    a count's sweep aborted; before anything is written when the first one could not start."""
    started = time.time()
    search = config.search
    top = search.out_dir or rundir.default_run_dir(search.reports_dir, "scaling", started)
    rundir.create_run_dir(top, search.force)
    if not search.quiet:
        counts = ", ".join(str(n) for n in config.replicas)
        print(
            f"loadbench: scaling: capacity under {', '.join(search.slos)} at {counts} replica(s), balanced "
            f"{config.balance} -> {top}",
            file=out,
            flush=True,
        )
    measured: list[dict[str, Any]] = []
    scenario: Any = None
    start = search.start
    previous_count, previous_load = 0, 0.0  # the last count that found a capacity, and that capacity

    def run_count(count: int) -> int:
        nonlocal scenario, start, previous_count, previous_load
        name = replicas_dir_name(count)
        with source(count) as urls:
            sub = replace(
                search,
                target=urls[0],
                targets=urls if count > 1 else [],
                balance=config.balance if count > 1 else None,
                out_dir=top / name,
                start=start,
                growth=IDEAL_GROWTH if previous_count else search.growth,
            )
            if not search.quiet:
                print(f"loadbench: {count} replica(s) -> {name}/", file=out, flush=True)
            sweep, _, code = run_sweep(sub, out)
        measured.append(_point(count, sweep, urls, name))
        scenario = scenario or sweep.get("scenario")
        if not search.quiet:
            print(f"loadbench: {count} replica(s): {_capacity_said(sweep)}", file=out, flush=True)
        reached = (sweep.get("capacity") or {}).get("offered")
        if reached:
            previous_count, previous_load = count, float(reached)
        start = _next_start(search.mode, previous_count, previous_load, count, config.replicas, start)
        return code

    end = run_series(sorted(config.replicas), run_count, lambda count: f"{count} replica(s)")
    return finish_series(
        top,
        end,
        bool(measured),
        lambda status: build_scaling(config, measured, status, started, scenario),
        render_scaling,
        "the counts",
    )


def _next_start(
    mode: str, count: int, load: float, done: int, replicas: Sequence[int], start: float
) -> float:
    """Where the next count's search starts: the linear ideal from the last capacity found,
    ``load × next / count`` (it passes only if scaling is perfect; a failure halves back towards
    the capacity already found), or ``start`` when none was found yet."""
    following = [n for n in sorted(replicas) if n > done]
    if not following or not count:
        return start
    ideal = load * following[0] / count
    return float(math.floor(ideal)) if mode == "users" else float(f"{ideal:.4g}")


def _capacity_said(sweep: dict[str, Any]) -> str:
    cap = sweep.get("capacity")
    if not cap:
        return "no capacity: no step met the SLO"
    mode = str(sweep.get("settings", {}).get("mode") or "rate")
    return f"capacity {capacity.load_text(cap['offered'], mode)} = {format_rate(cap.get('rps'))}"
