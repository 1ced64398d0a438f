"""Drive one run: Locust in-process (library mode) -> a run directory of exact request records.

Consumes a `RunConfig`; produces a run directory holding ``meta.json``, ``requests.csv`` and
``users.csv`` (``docs/run-format.md``). Analysis and reporting are separate stages that read
that directory; this module never computes metrics beyond the live progress line.

Everything that can be wrong with the input (target, scenario, options, data files, output
directory) is checked before the run directory is created, so a failed start never leaves a
directory that looks like a run. Ctrl-C or SIGTERM stops the load and finishes the run as
"interrupted"; a second one exits at once, leaving the records flushed so far.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import gevent
import gevent.event
import locust
import psutil
from locust import FastHttpUser, events
from locust.env import Environment
from locust.runners import STATE_STOPPED, STATE_STOPPING, LocalRunner, MasterRunner
from locust.util.load_locustfile import load_locustfile

import loadbench
from loadbench import rundir, shapes
from loadbench import scenario as scenario_helpers
from loadbench.config import RunConfig, check_target, parse_header
from loadbench.distributed import Master, WorkerSettings, free_port
from loadbench.errors import LoadbenchError, ScenarioError, UsageError
from loadbench.hostmetrics import ServerProcess, find_server_process
from loadbench.loadplan import LoadPlan, plan_load
from loadbench.network import measure_rtt
from loadbench.openloop import Dispatcher, open_loop_classes
from loadbench.probe import check_reachable, probe_target
from loadbench.progress import Progress
from loadbench.recorder import Recorder
from loadbench.records import one_line
from loadbench.redact import redact_argv, redact_header, redact_url, scrub, secret_values
from loadbench.sampler import MIN_INTERVAL_S, SamplerProcess, host_label

OPEN_LOOP_DRAIN_S = 10.0  # at most this long waiting for open-loop requests in flight at the end
SPAWN_TIMEOUT_S = 30.0

BUILTIN_SCENARIOS_DIR = Path(__file__).resolve().parent.parent / "scenarios"


@dataclass
class Prepared:
    """Everything checked before the run directory exists."""

    scenario: Scenario
    server: ServerProcess | None
    server_notice: str | None
    plan: LoadPlan | None = None
    network: dict[str, Any] | None = None  # meta.json `network`: round trip to the target


@dataclass
class Scenario:
    """A loaded locustfile: its name, file, User classes and parsed options."""

    name: str
    path: Path
    user_classes: list[type]
    options: argparse.Namespace
    reason: str


def builtin_scenarios() -> list[str]:
    """Names of the scenarios shipped in ``scenarios/``."""
    return sorted(p.stem for p in BUILTIN_SCENARIOS_DIR.glob("*.py") if not p.name.startswith("_"))


def resolve_scenario(name_or_path: str) -> Path:
    """A scenario name (``json_post``) or a locustfile path -> an existing file."""
    if name_or_path.endswith(".py") or os.sep in name_or_path:
        path = Path(name_or_path)
        if not path.is_file():
            raise ScenarioError(f"scenario file {name_or_path} does not exist")
        return path.resolve()
    for folder in (Path.cwd() / "scenarios", BUILTIN_SCENARIOS_DIR):
        candidate = folder / f"{name_or_path}.py"
        if candidate.is_file():
            return candidate.resolve()
    known = ", ".join(builtin_scenarios()) or "none found"
    raise ScenarioError(f"unknown scenario {name_or_path!r} (built-in: {known}; or give a locustfile path)")


def load_scenario(path: Path, target: str, scenario_args: list[str], reason: str) -> Scenario:
    """Import a locustfile and parse its options with Locust's own parser (and its listeners)."""
    try:
        user_classes, _shapes = load_locustfile(str(path))
    except SyntaxError as exc:
        raise ScenarioError(f"scenario {path} line {exc.lineno}: syntax error: {exc.msg}") from None
    except LoadbenchError:
        raise
    except Exception as exc:
        raise ScenarioError(f"scenario {path} failed to import: {type(exc).__name__}: {exc}") from None
    if not user_classes:
        raise ScenarioError(f"scenario {path} defines no Locust User class")
    # No config files: a locust.conf or pyproject.toml in the cwd must not change a loadbench run.
    parser = locust.argument_parser.get_parser(default_config_files=[])

    def fail(message: str) -> None:
        raise UsageError(f"scenario {path.stem}: {message}")

    parser.error = fail  # type: ignore[method-assign]
    options = parser.parse_args(["-f", str(path), "-H", target, *scenario_args])
    return Scenario(path.stem, path, list(user_classes.values()), options, reason)


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


class _OncePerMessage(logging.Filter):
    """Log each distinct scenario exception once: a broken task would otherwise print a
    traceback per request. Counts still reach meta.json via Locust's ``runner.exceptions``."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        key = record.getMessage()[-300:]
        if key in self.seen:
            return False
        self.seen.add(key)
        return True


def _install_signal_handlers(stop: Callable[[], None], recorder: Recorder, out: TextIO) -> list[Any]:
    """First Ctrl-C/SIGTERM: stop the load and finish the run. Second: flush records and exit now."""
    state = {"count": 0}

    def handler() -> None:
        state["count"] += 1
        if state["count"] == 1:
            out.write("\nloadbench: stopping (interrupt again to exit at once)...\n")
            out.flush()
            stop()
        else:
            recorder.flush()
            os._exit(130)

    return [gevent.signal_handler(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)]


def prepare(config: RunConfig) -> Prepared:
    """Check the target, the sampler's settings and the scenario; nothing is written yet."""
    target = check_target(config.target)
    if config.users < 1:
        raise UsageError(f"--users must be at least 1, not {config.users}")
    if config.spawn_rate is not None and not config.spawn_rate > 0:
        raise UsageError(f"--spawn-rate must be above 0, not {config.spawn_rate:g}")
    plan = plan_load(config)
    if config.sample_interval_s is not None and not config.sample_interval_s >= MIN_INTERVAL_S:
        raise UsageError(f"--sample-interval must be at least {MIN_INTERVAL_S:g} s")
    if not 0 < config.timeout_s < float("inf"):
        raise UsageError(f"--timeout must be above 0 s, not {config.timeout_s:g}")
    headers = dict(parse_header(h) for h in config.headers)
    verify = not config.insecure
    http2 = "--http2" in config.scenario_args  # an h2c-only server may refuse HTTP/1.1
    check_reachable(target, headers, verify=verify, http2=http2)
    server, server_notice = find_server_process(target, config.server_pid, config.server_name)
    for url in config.scrapes:
        check_target(url)
    if config.scrape_match:
        try:
            re.compile(config.scrape_match)
        except re.error as exc:
            raise UsageError(f"--scrape-match {config.scrape_match!r} is not a valid regex: {exc}") from None
    for url in config.agents:
        from loadbench.agent import AgentPuller

        check_target(url)
        # Fail before anything is written when an agent is unreachable or refuses the token.
        puller = AgentPuller(url, token=config.agent_token, label=host_label(url))
        try:
            puller.start()
        finally:
            puller.close()
    if config.scenario is None:
        probe = probe_target(
            target, headers, verify=verify, model=_option_value(config.scenario_args, "--model"), http2=http2
        )
        name, reason = probe.scenario, f"chosen by probing the target: {probe.reason}"
    else:
        name, reason = config.scenario, "given with --scenario"
    path = resolve_scenario(name)
    header_args = [arg for h in config.headers for arg in ("--header", h)]
    scenario = load_scenario(path, target, [*config.scenario_args, *header_args], reason)
    apply_transport_settings(scenario, config.timeout_s, config.insecure)
    # A light probe before any load: ~20 TCP connects, one round trip each (loadbench.network).
    return Prepared(scenario, server, server_notice, plan, network=measure_rtt(target))


def _option_value(args: list[str], name: str) -> str | None:
    """The value of ``NAME VALUE`` or ``NAME=VALUE`` in a scenario's arguments (the last one wins)."""
    value = None
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            value = args[i + 1]
        elif arg.startswith(name + "="):
            value = arg.split("=", 1)[1]
    return value


def apply_transport_settings(scenario: Scenario, timeout_s: float, insecure: bool) -> None:
    """Give every user the run's per-request timeout and TLS verification.

    Through the options (which loadbench's `ModelUser` reads) and, for other fast-client users,
    through the class attributes Locust's `FastHttpUser` reads when it builds its client.
    """
    scenario.options.timeout = timeout_s
    scenario.options.insecure = insecure
    for cls in scenario.user_classes:
        if issubclass(cls, FastHttpUser):
            cls.network_timeout = cls.connection_timeout = timeout_s
            cls.insecure = insecure


@dataclass
class ActiveRun:
    """A run directory being written: its meta (rewritten at the end), recorder and sampler."""

    run_dir: Path
    meta: dict[str, Any]
    recorder: Recorder
    sampler: SamplerProcess | None


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
        "format": rundir.FORMAT_VERSION,
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

    recorder = Recorder(run_dir, secret_values(config.headers, config.target, config.scenario_args)).register(
        env
    )
    return ActiveRun(run_dir, meta, recorder, sampler)


def finish_run(
    active: ActiveRun,
    status: str,
    failure: str | None,
    exceptions: Mapping[Any, Mapping[str, Any]],
    ended: float | None = None,
) -> None:
    """Close the recorder, stop the sampler and rewrite meta.json with the outcome.

    ``exceptions`` is Locust's ``runner.exceptions`` (scenario errors outside requests);
    ``ended`` defaults to now.
    """
    ended = time.time() if ended is None else ended
    meta = active.meta
    active.recorder.close()  # safe when the caller already closed it
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
        meta["failure"] = failure
    meta["started_at"] = rundir.iso_utc(meta["started_unix_s"])
    rundir.write_json(active.run_dir / rundir.META, meta)


def run(config: RunConfig, argv: list[str], log: TextIO = sys.stderr) -> Path:
    """Run the load described by ``config``; return the run directory (records and meta.json).

    One process, or (``config.workers`` / ``config.expect_workers``) a Locust master whose
    workers ship their records here (`loadbench.distributed`).
    """
    prepared = prepare(config)
    scenario, plan = prepared.scenario, prepared.plan or plan_load(config)
    target = check_target(config.target)
    distributed = config.workers > 0 or config.expect_workers > 0
    dispatcher: Dispatcher | None = None
    user_classes = scenario.user_classes
    shape = None
    if plan.model == "open" and not distributed:
        # Started (with the load's start time) once the senders exist.
        dispatcher = Dispatcher(plan.offsets(config), 0.0)
        user_classes = open_loop_classes(user_classes, dispatcher)
    elif plan.model == "closed" and plan.stages:
        shape = shapes.users_shape_class(plan.stages, config.spawn_rate)()
    env = Environment(
        user_classes=user_classes,
        shape_class=shape,
        events=events,
        host=target,
        parsed_options=scenario.options,
        locustfile=str(scenario.path),
    )
    master: Master | None = None
    runner: LocalRunner | MasterRunner
    if distributed:
        port = config.master_port or (5557 if config.expect_workers else free_port(config.master_bind))
        runner = env.create_master_runner(config.master_bind, port)
        master = Master(runner)
    else:
        runner = env.create_local_runner()
    # The scenario's own set-up (loading data, discovering the model) runs here, before
    # anything is written, so its failures leave no run directory behind.
    env.loadbench_library_mode = True  # type: ignore[attr-defined]
    del scenario_helpers.setup_failures[:]
    env.events.init.fire(environment=env, runner=runner, web_ui=None)
    if scenario_helpers.setup_failures:
        raise ScenarioError(f"scenario {scenario.name}: {scenario_helpers.setup_failures[0]}")
    logging.getLogger("locust.user.task").addFilter(_OncePerMessage())
    # The open loop spawns its idle senders at once, which Locust warns about for real users.
    logging.getLogger("locust.runners").addFilter(lambda r: "spawn rate is very high" not in r.getMessage())
    if master is not None:
        logging.getLogger("locust.runners").setLevel(logging.WARNING)
        _connect_workers(master, config, scenario, target, port, log)

    active = begin_run(
        config,
        prepared,
        env,
        target,
        argv,
        log,
        generator_pids=[p.pid for p in master.processes] if master else None,
    )
    run_dir, meta, recorder = active.run_dir, active.meta, active.recorder
    if master is not None:
        master.recorder = recorder
    stop_requested = gevent.event.Event()
    handlers = _install_signal_handlers(stop_requested.set, recorder, log)
    duration_s = plan.duration_s
    progress = Progress(recorder, duration_s, config.warmup_s, log, config.quiet)
    if not config.quiet:
        log.write(
            f"loadbench: {scenario.name} against {redact_url(target)} ({scenario.reason})\n"
            f"loadbench: {_load_line(config, plan)} for {duration_s:g} s ({config.warmup_s:g} s warmup) -> {run_dir}\n"
        )
        for note in plan.notes:
            log.write(f"loadbench: {note}\n")
        if master is not None:
            log.write(f"loadbench: {len(master.workers)} Locust workers under this master\n")
        log.flush()
    status = rundir.STATUS_COMPLETE
    failure = None
    open_loop = plan.model == "open"
    try:
        if open_loop:
            # Requests in flight when the schedule ends are waited for (up to the grace), so
            # the slowest ones, which matter most to the tail, are not cut from the records.
            env.stop_timeout = min(config.timeout_s, OPEN_LOOP_DRAIN_S)
        if master is not None and open_loop:
            master.send_load(_load_message(config, plan))
            runner.start(config.max_inflight, spawn_rate=config.max_inflight, wait=False)
            master.wait_spawned(config.max_inflight)
            meta["started_unix_s"] = master.go()
        elif dispatcher is not None:
            _start_senders(runner, config.max_inflight, stop_requested)
            meta["started_unix_s"] = time.time()
            dispatcher.start_unix_s = meta["started_unix_s"]
            dispatcher.start()
        else:
            meta["started_unix_s"] = time.time()
            if shape is not None:
                runner.start_shape()
            else:
                runner.start(config.users, spawn_rate=config.spawn_rate or float(config.users))
        start_mono = time.monotonic() - (time.time() - meta["started_unix_s"])
        next_tick = 1.0
        while True:
            elapsed = time.monotonic() - start_mono
            if elapsed >= duration_s or (dispatcher is not None and dispatcher.finished):
                break
            if shape is not None and elapsed > 1.0 and runner.state in (STATE_STOPPED, STATE_STOPPING):
                break  # the shape ran out
            if stop_requested.is_set():
                status = rundir.STATUS_INTERRUPTED
                break
            if master is not None:
                for line in master.watch():
                    log.write(f"\nloadbench: warning: {line}\n")
            if elapsed >= next_tick:
                if dispatcher is not None:
                    progress.tick(elapsed, dispatcher.in_flight(runner.user_count), "in flight")
                else:
                    progress.tick(elapsed, runner.user_count)
                next_tick += 1.0
            stop_requested.wait(min(0.1, duration_s - elapsed, max(next_tick - elapsed, 0.001)))
    except Exception as exc:
        status, failure = rundir.STATUS_FAILED, f"{type(exc).__name__}: {exc}"
        raise
    finally:
        ended = time.time()
        if dispatcher is not None:
            meta["schedule"] = vars(dispatcher.close())
        runner.stop()
        if master is not None:
            master.finish()
            master.watch()
            meta["workers"] = master.meta()
            schedule = master.schedule()
            if schedule is not None:
                meta["schedule"] = schedule
        progress.done()
        recorder.close()
        runner.quit()
        if master is not None:
            master.stop_processes()
        finish_run(active, status, failure, runner.exceptions, ended)
        for h in handlers:
            h.cancel()
    return run_dir


def _connect_workers(
    master: Master, config: RunConfig, scenario: Scenario, target: str, port: int, log: TextIO
) -> None:
    """Start the local workers and wait until every expected worker has connected."""
    if config.workers:
        header_args = [arg for h in config.headers for arg in ("--header", h)]
        master.spawn_local(
            config.workers,
            WorkerSettings(
                master_host=config.master_bind if config.master_bind not in ("0.0.0.0", "*") else "127.0.0.1",
                master_port=port,
                target=target,
                scenario=str(scenario.path),
                scenario_args=[*config.scenario_args, *header_args],
                timeout_s=config.timeout_s,
                insecure=config.insecure,
                headers=list(config.headers),
            ),
        )
    if config.expect_workers and not config.quiet:
        log.write(
            f"loadbench: waiting for {config.expect_workers} worker(s): "
            f"loadbench worker --master-host THIS_HOST --master-port {port} --target {redact_url(target)} "
            f"--scenario {scenario.name}\n"
        )
        log.flush()
    try:
        master.wait_for_workers(config.workers + config.expect_workers)
    except LoadbenchError:
        master.runner.quit()
        for process in master.processes:
            process.kill()
        raise


def _load_message(config: RunConfig, plan: LoadPlan) -> dict[str, Any]:
    """The open-loop schedule the master splits among its workers."""
    return {
        "model": "open",
        "rate": config.rate,
        "arrival": config.arrival,
        "burstiness": config.burstiness,
        "seed": plan.seed,
        "duration_s": plan.duration_s,
        "stages": [s.to_dict() for s in plan.stages],
        "trace": None
        if plan.trace is None
        else [[a.offset_s, a.input_tokens, a.output_tokens] for a in plan.trace],
    }


def _load_line(config: RunConfig, plan: LoadPlan) -> str:
    if plan.model == "closed":
        if plan.stages:
            return f"closed loop, load shape of {len(plan.stages)} stage(s) up to {shapes.peak_level(plan.stages):g} users"
        return f"{config.users} users (closed loop)"
    if plan.trace is not None:
        return f"open loop replaying {len(plan.trace):,} requests from {config.trace}"
    if plan.stages:
        return f"open loop, {config.arrival} arrivals, load shape of {len(plan.stages)} stage(s)"
    return (
        f"open loop, {config.rate:g} requests/s ({config.arrival}), at most {config.max_inflight} in flight"
    )


def _start_senders(runner: LocalRunner | MasterRunner, count: int, stop: gevent.event.Event) -> None:
    """Spawn the open loop's pool of senders and wait until they all wait for the schedule."""
    runner.start(count, spawn_rate=count, wait=False)
    deadline = time.monotonic() + SPAWN_TIMEOUT_S
    while runner.user_count < count and time.monotonic() < deadline and not stop.is_set():
        gevent.sleep(0.01)
