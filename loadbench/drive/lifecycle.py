"""A run directory's life: begin it (meta.json, sampler, recorder), finish it (outcome in meta).

Shared by `loadbench run` (`loadbench.drive.runner`) and the web UI (`loadbench.ui.plugin`), which begins
and finishes one run directory per start and stop. Consumes a `RunConfig` and the checked
`Prepared` inputs; produces ``meta.json`` (rewritten at the end), ``requests.csv`` and
``users.csv`` through the `Recorder`, and ``samples.jsonl`` through the `SamplerProcess`.
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import locust
import psutil
from locust.env import Environment

import loadbench
from loadbench.drive.config import RunConfig
from loadbench.drive.loadplan import LoadPlan, plan_load
from loadbench.drive.locustfiles import Scenario
from loadbench.drive.recorder import Recorder
from loadbench.drive.serverstats import ServerStatsWatch
from loadbench.load import shapes
from loadbench.load.balance import DEFAULT_POLICY
from loadbench.load.retry import DEFAULT_BACKOFF_S, DEFAULT_RETRY_ON, RetryPolicy
from loadbench.record import rundir
from loadbench.record.columnar import records_writer
from loadbench.record.records import one_line
from loadbench.redact import redact_argv, redact_header, redact_url, scrub, secret_values
from loadbench.sample.hostmetrics import ServerProcess
from loadbench.sample.sampler import SamplerProcess
from loadbench.scenario.workloadctl import workload_settings
from loadbench.values import target_base


@dataclass
class Prepared:
    """Everything checked before the run directory exists."""

    scenario: Scenario
    server: ServerProcess | None
    server_notice: str | None
    plan: LoadPlan | None = None
    network: dict[str, Any] | None = None  # meta.json `network`: round trip to the target


def host_facts() -> dict[str, Any]:
    """What the load generator ran on, for meta.json."""
    cpu_model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "hostname": platform.node(),
        "platform": platform.platform(),
        "cpu_model": cpu_model,
        "cpu_cores": psutil.cpu_count(logical=True),
        "memory_bytes": psutil.virtual_memory().total,
    }


def git_commit(cwd: Path) -> dict[str, Any] | None:
    """The commit (and whether the tree is dirty) of the working directory's git repo, if any."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": head, "dirty": bool(dirty)}


def _exception_line(entry: Mapping[str, object]) -> str:
    """``message (at file:line in function)`` for one of Locust's ``runner.exceptions`` entries.

    Locust keeps the exception's ``str()`` and the traceback's frames, not its type.
    """
    frames = [
        ln.strip() for ln in str(entry.get("traceback", "")).splitlines() if ln.strip().startswith('File "')
    ]
    where = ""
    if frames:
        match = re.match(r'File "([^"]+)", line (\d+), in (\S+)', frames[-1])
        if match:
            where = f" (at {Path(match[1]).name}:{match[2]} in {match[3]})"
    return f"{entry.get('msg', '')}{where}"


@dataclass
class ActiveRun:
    """A run directory being written: its meta (rewritten at the end), recorder and sampler."""

    run_dir: Path
    meta: dict[str, Any]
    recorder: Recorder
    sampler: SamplerProcess | None
    server_stats: ServerStatsWatch | None = None  # --server-stats: Triton's counters around the window


def build_meta(
    config: RunConfig,
    scenario: Scenario,
    target: str,
    run_dir: Path,
    started: float,
    argv: list[str],
    plan: LoadPlan | None = None,
) -> dict[str, Any]:
    """The initial ``meta.json`` of a run (status running); credentials redacted."""
    spawn_rate = config.spawn_rate or float(config.users)
    plan = plan or plan_load(config)
    load = plan.settings(config)
    users = config.max_inflight if plan.model == "open" else config.users
    if plan.stages and plan.model == "closed":
        users = int(shapes.peak_level(plan.stages))
    return {
        "format": rundir.FORMAT_VERSION if config.records == "parquet" else rundir.CSV_FORMAT_VERSION,
        "run_id": run_dir.name,
        "target": redact_url(target),
        "scenario": scenario.name,
        "scenario_path": str(scenario.path),
        "scenario_reason": scenario.reason,
        "status": rundir.STATUS_RUNNING,
        "started_unix_s": started,
        "started_at": rundir.iso_utc(started),
        "ended_unix_s": None,
        "ended_at": None,
        "load_model": (
            "open loop: requests sent on a schedule; latency counts from each request's due time"
            if plan.model == "open"
            else "closed loop: each user sends its next request when the previous one ends"
        ),
        "command": redact_argv(argv),
        "settings": {
            "users": users,
            "spawn_rate": spawn_rate,
            "load": load,
            "stages": [stage.to_dict() for stage in plan.stages],
            "slos": list(config.slos),
            "realtime_tokens_per_s": config.realtime_tokens_per_s,
            "duration_s": plan.duration_s,
            "warmup_s": config.warmup_s,
            "timeout_s": config.timeout_s,
            "tls_verify": not config.insecure,
            "follow_redirects": config.follow_redirects,
            "max_body_bytes": config.max_body_bytes,
            "server_time_header": config.server_time_header,
            "server_stats": None if config.server_stats is None else redact_url(config.server_stats),
            "label": config.label,
            "cold_start": config.cold_start or None,
            "records": config.records,
            "preflight": config.preflight,
            "replica_header": config.replica_header,
            "replica_field": config.replica_field,
            "server_time_field": config.server_time_field,
            "cache_header": config.cache_header,
            "cache_field": config.cache_field,
            # The scenario's workload control (--popularity, --distinct, their seed, --shared-prefix-tokens).
            "workload": workload_settings(scenario.options),
            # Several targets: their base URLs as records name them (no credentials), and the policy.
            "targets": [target_base(t) for t in config.targets],
            "balance": (config.balance or DEFAULT_POLICY) if config.targets else None,
            "retries": retry_settings(config),
            "headers": [redact_header(h) for h in config.headers],
            "scenario_args": redact_argv(config.scenario_args),
        },
        "clocks": {
            "start_unix_s": "wall clock, time.time(), when each request was sent",
            "latency_ms": "time.perf_counter() from send until the response was read (Locust's response_time)",
            "intended_unix_s": "open loop: wall clock, time.time(), when the schedule said the request was due",
        },
        "versions": {
            "loadbench": loadbench.__version__,
            "locust": locust.__version__,
            "python": platform.python_version(),
        },
        "host": host_facts(),
        "git": git_commit(Path.cwd()),
    }


def begin_run(
    config: RunConfig,
    prepared: Prepared,
    env: Environment,
    target: str,
    argv: list[str],
    log: TextIO = sys.stderr,
    extra_meta: Mapping[str, Any] | None = None,
    generator_pids: list[int] | None = None,
) -> ActiveRun:
    """Create the run directory, write meta.json (status running), start the sampler and recorder.

    ``extra_meta`` adds keys (e.g. the web UI's ``driver``) before the first write; a dict
    value is merged into the dict of the same key (``{"settings": {"duration_s": None}}``).
    """
    started = time.time()
    run_dir = config.out_dir or rundir.default_run_dir(config.reports_dir, prepared.scenario.name, started)
    rundir.create_run_dir(run_dir, force=config.force)
    meta = build_meta(config, prepared.scenario, target, run_dir, started, argv, prepared.plan)
    for key, value in (extra_meta or {}).items():
        if isinstance(value, Mapping) and isinstance(meta.get(key), dict):
            meta[key].update(value)
        else:
            meta[key] = value
    if prepared.network is not None:
        meta["network"] = prepared.network
    # A --scrape URL may carry a token in its query: scrubbed from records and messages too.
    secrets = secret_values(
        config.headers,
        config.target,
        [*config.scenario_args, *config.scrapes, *filter(None, [config.server_stats])],
    )
    discovery = getattr(env, "loadbench_discovery", None)  # scenario.predict.say_at_start's line
    if isinstance(discovery, str):
        meta["discovery"] = one_line(scrub(discovery, secrets), 1000)
    rundir.write_json(run_dir / rundir.META, meta)

    sampler = None
    if config.sample_interval_s is not None:
        sampler = SamplerProcess(
            run_dir,
            config.sample_interval_s,
            prepared.server,
            [os.getpid(), *(generator_pids or [])],
            config.scrapes,
            config.scrape_match,
            config.scrape_interval_s,
            config.agents,
            config.agent_token,
        )
        problem = sampler.wait_ready()
        info = rundir.read_json(run_dir / rundir.SAMPLER_INFO) if problem is None else {}
        meta["sampler"] = {
            "interval_s": config.sample_interval_s,
            "server": None if prepared.server is None else vars(prepared.server),
            # Clock offsets of remote agents (NTP-style estimate) and their uncertainty.
            "agents": info.get("agents", []),
            "notices": [n for n in (prepared.server_notice, problem) if n],
        }
        if problem:
            log.write(f"loadbench: warning: {problem}; the run goes on without resource samples\n")
        rundir.write_json(run_dir / rundir.META, meta)

    recorder = Recorder(run_dir, secrets, records_writer(run_dir, config.records)).register(env)
    watch = None
    if config.server_stats:
        watch = ServerStatsWatch(config.server_stats, target, run_dir, secrets)
        watch.start(meta, config.warmup_s)
    return ActiveRun(run_dir, meta, recorder, sampler, watch)


def nothing_sent(meta: Mapping[str, Any], exceptions: Mapping[Any, Mapping[str, Any]]) -> str:
    """Why a run recorded no request, as far as the driver can tell."""
    unrecorded = meta.get("in_flight_unrecorded")
    if isinstance(unrecorded, int) and unrecorded > 0:
        return (
            f"no request was recorded: {unrecorded:,} were sent but none was answered before the load "
            "stopped (a slow endpoint, or a run too short for it)"
        )
    why = "no request was recorded: nothing was sent between the start and the stop"
    first = next(iter(exceptions.values()), None)
    if first is not None:
        why += f"; the scenario raised: {_exception_line(first)}"
    return why


def finish_run(
    active: ActiveRun,
    status: str,
    failure: str | None,
    exceptions: Mapping[Any, Mapping[str, Any]],
    ended: float | None = None,
) -> str:
    """Close the recorder, stop the sampler and rewrite meta.json with the outcome; return its status.

    ``exceptions`` is Locust's ``runner.exceptions`` (scenario errors outside requests);
    ``ended`` defaults to now. A run that recorded no request is never ``complete``: it measured
    nothing, and is ``failed`` with the reason (`nothing_sent`).
    """
    ended = time.time() if ended is None else ended
    meta = active.meta
    active.recorder.close()  # safe when the caller already closed it
    notice = getattr(active.recorder.requests, "notice", None)
    if notice:  # --records parquet, and the conversion could not be done: the CSV stays
        meta["records_notice"] = notice
    lost = getattr(active.recorder.requests, "lost", 0)
    if failure and lost:  # the disk refused the records: those that came after are counted here
        failure += f" ({lost:,} later records were not written)"
    if status == rundir.STATUS_COMPLETE and active.recorder.total == 0:
        status, failure = rundir.STATUS_FAILED, failure or nothing_sent(meta, exceptions)
    if active.server_stats is not None:
        active.server_stats.finish()
    if active.sampler is not None:
        problem = active.sampler.stop()
        if problem:
            meta["sampler"]["notices"].append(problem)
    meta.update(
        status=status,
        ended_unix_s=ended,
        ended_at=rundir.iso_utc(ended),
        scenario_exceptions=[
            {"count": e["count"], "error": one_line(scrub(_exception_line(e), active.recorder.secrets))}
            for e in list(exceptions.values())[:10]
        ],
    )
    if failure:
        # An exception's text may quote a header, a URL or a server's answer: scrubbed like errors.
        meta["failure"] = scrub(failure, active.recorder.secrets)
    meta["started_at"] = rundir.iso_utc(meta["started_unix_s"])
    rundir.write_json(active.run_dir / rundir.META, meta)
    return status


def retry_settings(config: RunConfig) -> dict[str, Any] | None:
    """``settings.retries`` of meta.json: the policy, or None without ``--retries``."""
    if not config.retries:
        return None
    low, high = config.retry_backoff_s or DEFAULT_BACKOFF_S
    policy = RetryPolicy(
        config.retries,
        tuple(config.retry_on or DEFAULT_RETRY_ON),
        float(low),
        float(high),
        config.retry_budget,
    )
    return policy.settings()
