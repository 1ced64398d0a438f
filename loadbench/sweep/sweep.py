"""``loadbench sweep``: one ordinary run per offered load, then the throughput–latency curve,
knee, capacity and cost.

Consumes a `SweepConfig` (built by the CLI); runs every step as its own ``python -m loadbench
run ... --quiet --out SWEEP_DIR/step-NN-rate-R`` (or ``-users-N``) child process, so each step
is a complete run directory; reads each step's ``summary.json``; produces the sweep directory's
``sweep.json``, ``sweep.md`` and ``sweep.html`` (`loadbench.sweep.report`). The arithmetic
(pass/fail, knee, capacity, cost, the capacity search) is `loadbench.analyze.capacity`.

A step must hold enough successful requests to judge its SLO-gated percentiles (p99 needs
1,000): a step is lengthened beyond ``--step-duration`` to what its rate needs (the offered
rate; in users mode the last step's throughput), said on the terminal, and a step that still
could not be judged runs once more, lengthened by its own throughput
(`loadbench.analyze.capacity.step_duration`). A step that cannot be judged is never read as failed.

A step's exit code 1 (its SLOs failed) is expected; 2 (bad input, the target does not answer)
aborts the sweep with the step's error line, after writing the report of the steps before it.
Ctrl-C (or SIGTERM) interrupts the running step, which still writes its run directory, and the
sweep report covers the steps done. Steps run in their own session so that the child gets one
SIGINT, from us, and shuts down cleanly.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from loadbench.analyze import capacity
from loadbench.analyze.slo import parse_slos
from loadbench.analyze.store import RecordStore
from loadbench.errors import LoadbenchError, UsageError
from loadbench.record import rundir
from loadbench.redact import redact_argv, redact_url
from loadbench.report.fmt import format_ms, format_pct, format_rate
from loadbench.sweep.report import render_sweep
from loadbench.whatif import Options, validate_sweep

SWEEP_SCHEMA = 1
STEP_GRACE_S = 120.0  # after the step's duration: analysis and report time before we give up on it
STATUS_COMPLETE, STATUS_INTERRUPTED, STATUS_ABORTED = "complete", "interrupted", "aborted"
# --whatif: the two methods that take the measured service times; a fifth of the default
# simulation per step keeps the validation to seconds.
WHATIF_OPTIONS = Options(methods=("kingman", "simulation"), sim_requests=200_000)


@dataclass
class SweepConfig:
    """Everything one `loadbench sweep` needs; recorded (redacted) in ``sweep.json``."""

    target: str  # the first of ``targets`` when there are several
    mode: str  # "rate" (open loop, --rate) or "users" (closed loop, --users)
    loads: list[float] = field(default_factory=list)  # the explicit steps; empty with find_capacity
    find_capacity: bool = False
    start: float = 1.0  # --find-capacity: first load
    resolution: float = 0.1  # --find-capacity: stop when hi / lo <= 1 + resolution
    growth: float = 2.0  # --find-capacity: the load's factor after a pass, until a step fails
    max_steps: int = 12
    step_duration_s: float = 30.0  # each step's --duration, warmup included
    warmup_s: float = 2.0
    slos: list[str] = field(default_factory=list)
    pass_slos: bool = True  # give each step --slo too (its own report shows the gates)
    gpu_hour_cost: float | None = None  # USD per GPU-hour
    out_dir: Path | None = None  # None: reports_dir / "<UTC time>-sweep"
    reports_dir: Path = Path("reports")
    force: bool = False
    quiet: bool = False
    run_args: list[str] = field(default_factory=list)  # passed to every `loadbench run` as they are
    whatif: bool = False  # fit the lowest-load step, predict the others (loadbench.whatif.validate)
    whatif_servers: int | None = None  # None: measured by Little's law at saturation
    # Several replicas of one model: every step gets each as a --target, balanced client-side
    # by `run --balance` (empty: ``target`` alone).
    targets: list[str] = field(default_factory=list)
    balance: str | None = None

    def step_targets(self) -> list[str]:
        """What every step targets: ``targets``, or ``target`` alone."""
        return list(self.targets) or [self.target]


@dataclass
class _Step:
    index: int
    load: float
    run_dir: Path
    exit_code: int
    summary: dict[str, Any] | None
    stderr: str
    achieved_rps: float | None  # `achieved_rps` of its records
    duration_s: float  # as run: --step-duration, or longer for the SLO gates


def achieved_rps(run_dir: Path, summary: dict[str, Any] | None) -> float | None:
    """Successful responses that *completed* inside the step's measured window, per second; None
    when the window or the records cannot be read.

    The summary's ``throughput_rps`` counts requests by when they started, and a run waits for
    the requests in flight when the load stops: an overloaded open-loop step still "achieves" its
    offered rate there, only later. Completions inside the window are what the server delivered.
    A completion is the send plus the latency from the send: in the store's ``requests`` view,
    the due time plus the latency from it. Counted in the store, so a step of any length.
    """
    window = (summary or {}).get("window") or {}
    start, end = window.get("start_unix_s"), window.get("end_unix_s")
    if not isinstance(start, int | float) or not isinstance(end, int | float) or not end > start:
        return None
    try:
        with RecordStore.open(run_dir) as store:
            ((done,),) = store.rows(
                "SELECT count(*) FROM requests WHERE ok <> 0 AND start_unix_s + latency_ms / 1000.0 BETWEEN ? AND ?",
                [float(start), float(end)],
            )
    except LoadbenchError:
        return None
    return round(int(done) / (float(end) - float(start)), 3)


def step_name(index: int, mode: str, load: float) -> str:
    """``step-03-rate-12.5`` / ``step-02-users-8``."""
    return f"step-{index:02d}-{mode}-{load:g}"


def step_command(
    config: SweepConfig, load: float, run_dir: Path, duration_s: float | None = None
) -> list[str]:
    """The ``loadbench run`` command line of one step (``duration_s``: default ``--step-duration``)."""
    load_args = ["--rate", f"{load:g}"] if config.mode == "rate" else ["--users", str(int(load))]
    if config.mode == "rate" and not any(
        a == "--arrival" or a.startswith("--arrival=") for a in config.run_args
    ):
        # Evenly spaced unless asked otherwise: a Poisson step's own count varies by a few
        # percent over a short step, enough to trip the 95 %-of-offered rule by chance.
        load_args += ["--arrival", "constant"]
    slo_args = [a for s in config.slos for a in ("--slo", s)] if config.pass_slos else []
    targets = config.step_targets()
    target_args = [a for t in targets for a in ("--target", t)]
    if len(targets) > 1 and config.balance:
        target_args += ["--balance", config.balance]
    return [
        sys.executable,
        "-m",
        "loadbench",
        "run",
        *target_args,
        *load_args,
        "--duration",
        f"{duration_s or config.step_duration_s:g}",
        "--warmup",
        f"{config.warmup_s:g}",
        "--quiet",
        "--out",
        str(run_dir),
        *(["--force"] if config.force else []),
        *slo_args,
        *config.run_args,
    ]


def _run_step(
    config: SweepConfig, index: int, load: float, sweep_dir: Path, duration_s: float
) -> tuple[_Step, bool]:
    """Run one step to its end; return it and whether the sweep was interrupted meanwhile."""
    run_dir = sweep_dir / step_name(index, config.mode, load)
    process = subprocess.Popen(
        step_command(config, load, run_dir, duration_s),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # Ctrl-C reaches us only; we pass one SIGINT on (see module doc)
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    interrupted = False
    try:
        _, stderr = process.communicate(timeout=duration_s + STEP_GRACE_S)
    except KeyboardInterrupt:
        interrupted = True
        process.send_signal(signal.SIGINT)
        try:
            _, stderr = process.communicate(timeout=STEP_GRACE_S)
        except (KeyboardInterrupt, subprocess.TimeoutExpired):
            process.kill()
            _, stderr = process.communicate()
    except subprocess.TimeoutExpired:
        process.kill()
        _, stderr = process.communicate()
    summary_path = run_dir / rundir.SUMMARY
    summary = rundir.read_json(summary_path) if summary_path.is_file() else None
    achieved = achieved_rps(run_dir, summary)
    step = _Step(index, load, run_dir, process.returncode, summary, stderr or "", achieved, duration_s)
    return step, interrupted or process.returncode == 130


def _step_rate(config: SweepConfig, load: float, rows: list[dict[str, Any]]) -> float | None:
    """The rate a step at ``load`` will likely run at: the offered rate, or (users) the highest
    throughput a step measured so far; None before any (the step runs --step-duration)."""
    if config.mode == "rate":
        return load
    measured = [r["achieved_rps"] for r in rows if r.get("achieved_rps")]
    return max(measured) if measured else None


def _lengthened(config: SweepConfig, load: float, rps: float | None, needed: int, out: TextIO) -> float:
    """The step's duration for its gates (`capacity.step_duration`), said on the terminal when
    it is longer than --step-duration: a silent 10-minute step would look like a hang."""
    duration = capacity.step_duration(config.step_duration_s, config.warmup_s, rps, needed)
    if duration > config.step_duration_s and not config.quiet:
        print(
            f"loadbench: {capacity.load_text(load, config.mode)}: the --slo percentiles need "
            f"{needed:,} successful requests, about {rps:,.4g} req/s: this step runs {duration:g} s "
            f"(--step-duration {config.step_duration_s:g} s)",
            file=out,
            flush=True,
        )
    return duration


def _error_line(step: _Step) -> str:
    lines = [ln.strip() for ln in step.stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("loadbench: error:")]
    text = (errors or lines or [f"exit code {step.exit_code}"])[-1]
    return text.removeprefix("loadbench: error: ")


def _progress(row: dict[str, Any], mode: str) -> str:
    offered = capacity.load_text(row["offered"], mode)
    if "achieved_rps" not in row:
        return f"loadbench: step {row['index']:>2}  {offered:<14} no summary: {'; '.join(row['why'])}"
    verdict = {capacity.PASS: "pass", capacity.UNJUDGED: "CANNOT JUDGE: "}.get(row["verdict"], "FAIL: ")
    verdict += "; ".join(row["why"])
    return (
        f"loadbench: step {row['index']:>2}  {offered:<14} -> {format_rate(row['achieved_rps']):>13}"
        f"  p50 {format_ms(row['p50_ms']):>9}  p99 {format_ms(row['p99_ms']):>9}"
        f"  errors {format_pct(row['error_rate'])}  {verdict}"
    )


def _settings(config: SweepConfig) -> dict[str, Any]:
    return {
        "target": redact_url(config.target),
        "targets": [redact_url(t) for t in config.step_targets()],
        "balance": config.balance if len(config.step_targets()) > 1 else None,
        "mode": config.mode,
        "loads": config.loads,
        "find_capacity": config.find_capacity,
        "start": config.start if config.find_capacity else None,
        "resolution": config.resolution if config.find_capacity else None,
        "growth": config.growth if config.find_capacity else None,
        "max_steps": config.max_steps if config.find_capacity else None,
        "step_duration_s": config.step_duration_s,
        "gated_requests": capacity.gated_requests(parse_slos(config.slos)),
        "warmup_s": config.warmup_s,
        "slos": config.slos,
        "gpu_hour_cost_usd": config.gpu_hour_cost,
        "run_args": redact_argv(config.run_args),
    }


def build_sweep(
    config: SweepConfig, steps: list[_Step], rows: list[dict[str, Any]], status: str, started: float
) -> dict[str, Any]:
    """The ``sweep.json`` object."""
    for step, row in zip(steps, rows, strict=True):
        row["run_dir"] = step.run_dir.name
        row["exit_code"] = step.exit_code
        row["duration_s"] = step.duration_s
    scenario = next((s.summary.get("run", {}).get("scenario") for s in steps if s.summary), None)
    analysis = capacity.analyze_sweep(rows, config.mode, config.gpu_hour_cost)
    unjudged = [r for r in rows if r.get("verdict") == capacity.UNJUDGED]
    if unjudged:
        loads = ", ".join(capacity.load_text(r["offered"], config.mode) for r in unjudged)
        analysis["notes"].append(
            f"steps that could not be judged ({loads}): too few requests for an SLO's percentile, "
            "even lengthened; neither passed nor failed (a search stops there)"
        )
    return {
        "schema": SWEEP_SCHEMA,
        "kind": "sweep",
        "status": status,
        "started_at": rundir.iso_utc(started),
        "ended_at": rundir.iso_utc(time.time()),
        "scenario": scenario,
        "settings": _settings(config),
        "steps": rows,
        **analysis,
    }


def run_sweep(config: SweepConfig, out: TextIO = sys.stdout) -> tuple[dict[str, Any], list[Path], int]:
    """Run the sweep; write its report; return ``sweep.json``'s object, the report paths and the
    exit code (0 done, 130 interrupted). A step that exits 2 raises `UsageError` after the report."""
    slos = parse_slos(config.slos)
    if config.find_capacity and not slos:
        raise UsageError(
            "--find-capacity needs at least one --slo: capacity is the highest load that meets them"
        )
    started = time.time()
    sweep_dir = config.out_dir or rundir.default_run_dir(config.reports_dir, "sweep", started)
    rundir.create_run_dir(sweep_dir, config.force)
    what = (
        f"find capacity from {capacity.load_text(config.start, config.mode)}"
        if config.find_capacity
        else ("rates " if config.mode == "rate" else "users ") + ", ".join(f"{x:g}" for x in config.loads)
    )
    if not config.quiet:
        print(
            f"loadbench: sweep against {_targets_text(config)}: {what}, "
            f"{config.step_duration_s:g} s per step -> {sweep_dir}",
            file=out,
            flush=True,
        )
    steps: list[_Step] = []
    rows: list[dict[str, Any]] = []
    status, abort = STATUS_COMPLETE, None
    # SIGTERM stops a sweep like Ctrl-C; signal handlers can only be set from the main thread.
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_interrupt) if main else None
    try:
        search = capacity.CapacitySearch(
            config.mode, config.start, config.resolution, config.max_steps, growth=config.growth
        )
        pending = [] if config.find_capacity else list(config.loads)
        needed = capacity.gated_requests(slos)
        while (load := search.next_load() if config.find_capacity else _pop(pending)) is not None:
            rps = _step_rate(config, load, rows)
            for attempt in range(2):  # the second: once more, lengthened, when it could not be judged
                duration = _lengthened(config, load, rps, needed, out)
                step, interrupted = _run_step(config, len(steps) + 1, load, sweep_dir, duration)
                if step.summary is None and step.exit_code not in (0, 1, 130):
                    abort = (
                        f"step {step.index} ({capacity.load_text(load, config.mode)}): {_error_line(step)}"
                    )
                    break
                steps.append(step)
                row = capacity.step_row(step.index, config.mode, load, step.summary, slos, step.achieved_rps)
                rows.append(row)
                if not config.quiet:
                    print(_progress(row, config.mode), file=out, flush=True)
                if interrupted or row["verdict"] != capacity.UNJUDGED or attempt:
                    break
                # What it measured: successful requests/s (throughput counts failures too).
                rps = min(filter(None, (row.get("achieved_rps"), rps)), default=None)
            if abort or interrupted:
                status = STATUS_ABORTED if abort else STATUS_INTERRUPTED
                break
            search.record(load, None if rows[-1]["verdict"] == capacity.UNJUDGED else rows[-1]["passed"])
    except KeyboardInterrupt:  # between steps
        status = STATUS_INTERRUPTED
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous)
    if abort and not steps:
        _remove_if_empty(sweep_dir)  # like `run`: bad input leaves nothing behind
        raise UsageError(f"sweep aborted at {abort}")
    sweep = build_sweep(config, steps, rows, status, started)
    if config.whatif:
        sweep["whatif"] = validate_sweep(sweep_dir, sweep, config.whatif_servers, WHATIF_OPTIONS)
        if not config.quiet:
            print(f"loadbench: what-if: {_whatif_said(sweep['whatif'])}", file=out, flush=True)
    paths = render_sweep(sweep, sweep_dir)
    if abort:
        raise UsageError(f"sweep aborted at {abort} (report of the steps before it: {paths[-1]})")
    return sweep, list(paths), 130 if status == STATUS_INTERRUPTED else 0


def _whatif_said(whatif: dict[str, Any]) -> str:
    if not whatif.get("predicted"):
        return f"not predicted: {whatif.get('why')}"
    return f"fitted on step {whatif['fit_step']}, {whatif['servers']} server(s): {whatif['verdict']}"


def _targets_text(config: SweepConfig) -> str:
    targets = config.step_targets()
    if len(targets) == 1:
        return redact_url(targets[0])
    return f"{len(targets)} replicas ({config.balance}: {', '.join(redact_url(t) for t in targets)})"


def _pop(pending: list[float]) -> float | None:
    return pending.pop(0) if pending else None


def _remove_if_empty(path: Path) -> None:
    with contextlib.suppress(OSError):  # not empty: keep what is there
        path.rmdir()


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt
