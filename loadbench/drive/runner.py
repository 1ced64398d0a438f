"""Drive one run: Locust in-process (library mode) -> a run directory of exact request records.

Consumes a `RunConfig`; produces a run directory holding ``meta.json``, ``requests.csv`` and
``users.csv`` (``docs/run-format.md``). Analysis and reporting are separate stages that read
that directory; this module never computes metrics beyond the live progress line.

Everything that can be wrong with the input (target, scenario, options, data files, output
directory) is checked before the run directory is created, so a failed start never leaves a
directory that looks like a run. Ctrl-C or SIGTERM stops the load and finishes the run as
"interrupted"; a second one exits at once, leaving the records flushed so far. A run in which
every request failed is stopped early (`loadbench.drive.watchdog`, unless ``keep_going``) and
finishes as "failed", its records and the reason kept, the reason said on the terminal.

The load model comes from `loadbench.drive.loadplan` (closed loop, open loop via
`loadbench.drive.openloop`, shapes); the run directory's life from `loadbench.drive.lifecycle`; the
scenario from `loadbench.drive.locustfiles`; Locust's master/worker mode from `loadbench.drive.distributed`;
the one request before the load that must succeed from `loadbench.drive.preflight`.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import gevent
import gevent.event
from locust import LoadTestShape, events
from locust.env import Environment
from locust.runners import STATE_STOPPED, STATE_STOPPING, LocalRunner, MasterRunner

from loadbench.drive.checks import check_settings
from loadbench.drive.config import RunConfig
from loadbench.drive.distributed import Master, WorkerSettings, free_port
from loadbench.drive.exporter import open_exporter
from loadbench.drive.inflight import InFlight, counted_classes, counts_starts
from loadbench.drive.lifecycle import ActiveRun, Prepared, begin_run, finish_run
from loadbench.drive.loadplan import LoadPlan, plan_load
from loadbench.drive.locustfiles import (
    Scenario,
    apply_transport_settings,
    load_scenario,
    resolve_scenario,
    set_up_scenario,
)
from loadbench.drive.openloop import Dispatcher, open_loop_classes
from loadbench.drive.preflight import preflight
from loadbench.drive.progress import Progress
from loadbench.drive.recorder import Recorder
from loadbench.drive.rtt import measure_rtt
from loadbench.drive.shape import users_shape_class
from loadbench.drive.watchdog import Watchdog
from loadbench.errors import LoadbenchError, UsageError
from loadbench.load import shapes
from loadbench.load.balance import DEFAULT_POLICY
from loadbench.protocols.targets import check_reachable, probe_target
from loadbench.record import rundir
from loadbench.redact import redact_url, scrub
from loadbench.sample.collector import host_label
from loadbench.sample.hostmetrics import find_server_process
from loadbench.values import check_target, http_url, parse_header

OPEN_LOOP_DRAIN_S = 10.0  # at most this long waiting for open-loop requests in flight at the end
SPAWN_TIMEOUT_S = 30.0


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
    plan = check_settings(config)
    headers = dict(parse_header(h) for h in config.headers)
    verify = not config.insecure
    http2 = "--http2" in config.scenario_args  # an h2c-only server may refuse HTTP/1.1
    for url in [target, *config.targets[1:]]:  # several targets: each must answer
        check_reachable(url, headers, verify=verify, http2=http2)
    server, server_notice = find_server_process(target, config.server_pid, config.server_name)
    _check_samplers(config)
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
    apply_transport_settings(scenario, config)
    scenario.options.seed = plan.seed  # --popularity's draws: the run's seed (drawn when not given)
    # A light probe before any load: ~20 TCP connects, one round trip each (loadbench.drive.rtt).
    return Prepared(scenario, server, server_notice, plan, network=measure_rtt(target))


def _check_samplers(config: RunConfig) -> None:
    """The scrape URLs and regex, and every agent reachable and accepting the token."""
    for url in config.scrapes:
        check_scrape_url(url)
    if config.scrape_match:
        try:
            re.compile(config.scrape_match)
        except re.error as exc:
            raise UsageError(f"--scrape-match {config.scrape_match!r} is not a valid regex: {exc}") from None
    for url in config.agents:
        from loadbench.sample.agent import AgentPuller

        check_target(url)
        # Fail before anything is written when an agent is unreachable or refuses the token.
        puller = AgentPuller(url, token=config.agent_token, label=host_label(url))
        try:
            puller.start()
        finally:
            puller.close()


def check_scrape_url(url: str) -> str:
    """A ``--scrape`` URL: http(s) with a host and a valid port. Unlike a target (a base URL that
    Locust joins request paths onto), it is fetched as given, so its ``?query`` (a token, a
    ``format=``) is legitimate; messages show it with its credentials masked."""
    try:
        return http_url(url)
    except UsageError as exc:
        raise UsageError(f"--scrape {redact_url(url)!r} is {exc}") from None


def _option_value(args: list[str], name: str) -> str | None:
    """The value of ``NAME VALUE`` or ``NAME=VALUE`` in a scenario's arguments (the last one wins)."""
    value = None
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            value = args[i + 1]
        elif arg.startswith(name + "="):
            value = arg.split("=", 1)[1]
    return value


@dataclass
class Load:
    """Locust's side of one run, set up (scenario set-up done, workers connected), not started."""

    env: Environment
    runner: LocalRunner | MasterRunner
    plan: LoadPlan
    dispatcher: Dispatcher | None = None  # the open loop's schedule in one process
    shape: LoadTestShape | None = None  # a closed loop's load shape
    master: Master | None = None  # distributed: the workers' master
    in_flight: InFlight | None = None  # one process: this process's users' requests in flight
    watchdog: Watchdog | None = None  # one process, without keep_going: stops a run that only fails


def run(config: RunConfig, argv: list[str], log: TextIO = sys.stderr, keep_going: bool = False) -> Path:
    """Run the load described by ``config``; return the run directory (records and meta.json).

    One process, or (``config.workers`` / ``config.expect_workers``) a Locust master whose
    workers ship their records here (`loadbench.drive.distributed`). ``keep_going``: run the
    whole duration even when every request fails (otherwise `loadbench.drive.watchdog` stops it).
    """
    exporter = open_exporter(config, log)  # a busy --metrics-port fails here, before anything is written
    prepared = prepare(config)
    target = check_target(config.target)
    load = _set_up_load(config, prepared, target, argv, log)
    master = load.master
    pids = [p.pid for p in master.processes] if master is not None else None
    active = begin_run(config, prepared, load.env, target, argv, log, generator_pids=pids)
    if master is not None:
        master.recorder = active.recorder
        master.samples_path = active.run_dir / rundir.SAMPLES
    exporter.attach(active.meta, active.recorder, load.runner, load.in_flight, load.dispatcher)
    stop_requested = gevent.event.Event()
    handlers = _install_signal_handlers(stop_requested.set, active.recorder, log)
    progress = Progress(active.recorder, load.plan.duration_s, config.warmup_s, log, config.quiet)
    if not config.quiet:
        _announce(config, load, prepared.scenario, target, active.run_dir, log)
    status, failure = rundir.STATUS_COMPLETE, None
    if load.master is None and not keep_going:
        # Listening before the start: the first answers may come before _start_load returns.
        load.watchdog = Watchdog(time.time(), config.warmup_s, config.timeout_s).register(load.env)
    try:
        _start_load(config, load, active.meta, stop_requested)
        if load.watchdog is not None:
            load.watchdog.started_unix_s = active.meta["started_unix_s"]
        status, failure = _watch_load(load, active, progress, stop_requested, log)
        if failure is not None:
            failure = scrub(failure, active.recorder.secrets)
            hint = "" if active.recorder.write_failure else " (--keep-going runs on regardless)"
            log.write(f"\nloadbench: stopping early: {failure}{hint}\n")
            log.flush()
    except Exception as exc:
        status, failure = rundir.STATUS_FAILED, f"{type(exc).__name__}: {exc}"
        raise
    finally:
        ended = time.time()
        _stop_load(load, active.meta, progress, active.recorder)
        finish_run(active, status, failure, load.runner.exceptions, ended)
        exporter.finish()
        for h in handlers:
            h.cancel()
    return active.run_dir


def _set_up_load(config: RunConfig, prepared: Prepared, target: str, argv: list[str], log: TextIO) -> Load:
    """Locust's environment and runner for the plan, the scenario's set-up run, the preflight
    request sent (before any worker starts), the workers connected."""
    scenario, plan = prepared.scenario, prepared.plan or plan_load(config)
    distributed = config.workers > 0 or config.expect_workers > 0
    user_classes = scenario.user_classes
    dispatcher: Dispatcher | None = None
    shape: LoadTestShape | None = None
    if plan.model == "open" and not distributed:
        # Started (with the load's start time) once the senders exist.
        dispatcher = Dispatcher(plan.offsets(config), 0.0)
        user_classes = open_loop_classes(user_classes, dispatcher)
    elif plan.model == "closed" and plan.stages:
        shape = users_shape_class(plan.stages, config.spawn_rate)()
    in_flight = None
    # A master has no users (its workers count their own); some clients cannot be counted.
    if not distributed and counts_starts(user_classes):
        in_flight = InFlight()
        user_classes = counted_classes(user_classes, in_flight)
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
    port = 0
    if distributed:
        port = config.master_port or (5557 if config.expect_workers else free_port(config.master_bind))
        runner = env.create_master_runner(config.master_bind, port)
        master = Master(runner)
    else:
        runner = env.create_local_runner()
    set_up_scenario(scenario, env, runner)
    if in_flight is not None:
        in_flight.register(env)
    quiet_locust(config.quiet)
    logging.getLogger("locust.user.task").addFilter(_OncePerMessage())
    # The open loop spawns its idle senders at once, which Locust warns about for real users.
    logging.getLogger("locust.runners").addFilter(lambda r: "spawn rate is very high" not in r.getMessage())
    if config.preflight:
        try:
            preflight(scenario, config, target, argv, log)
        except LoadbenchError:
            runner.quit()
            raise
    if master is not None:
        if not config.quiet:
            logging.getLogger("locust.runners").setLevel(logging.WARNING)
        _connect_workers(master, config, scenario, target, port, log)
    return Load(env, runner, plan, dispatcher, shape, master, in_flight)


def quiet_locust(quiet: bool) -> None:
    """Under ``--quiet`` only loadbench's own errors reach the terminal: Locust's log lines (a
    stopping runner's complaints, a task's traceback) are turned off at their loggers. What the
    run needs of them is in meta.json (``scenario_exceptions``) and the summary's notices."""
    if quiet:
        logging.getLogger("locust").setLevel(logging.CRITICAL + 1)


def _announce(
    config: RunConfig, load: Load, scenario: Scenario, target: str, run_dir: Path, log: TextIO
) -> None:
    """The lines that say what is about to run, and where its records go."""
    plan = load.plan
    where = redact_url(target)
    if config.targets:
        where = f"{len(config.targets)} targets ({', '.join(redact_url(t) for t in config.targets)}), {config.balance or DEFAULT_POLICY}"
    if config.retries:
        where += f", up to {config.retries} retries"
    log.write(
        f"loadbench: {scenario.name} against {where} ({scenario.reason})\n"
        f"loadbench: {_load_line(config, plan)} for {plan.duration_s:g} s ({config.warmup_s:g} s warmup) -> {run_dir}\n"
    )
    for note in plan.notes:
        log.write(f"loadbench: {note}\n")
    if load.master is not None:
        log.write(f"loadbench: {len(load.master.workers)} Locust workers under this master\n")
    log.flush()


def _start_load(config: RunConfig, load: Load, meta: dict[str, Any], stop: gevent.event.Event) -> None:
    """Start the users (or the open loop's senders and schedule); sets ``meta["started_unix_s"]``."""
    runner, master, dispatcher = load.runner, load.master, load.dispatcher
    open_loop = load.plan.model == "open"
    if open_loop:
        # Requests in flight when the schedule ends are waited for (up to the grace), so
        # the slowest ones, which matter most to the tail, are not cut from the records.
        load.env.stop_timeout = min(config.timeout_s, OPEN_LOOP_DRAIN_S)
    if master is not None and open_loop:
        master.send_load(_load_message(config, load.plan))
        runner.start(config.max_inflight, spawn_rate=config.max_inflight, wait=False)
        master.wait_spawned(config.max_inflight)
        meta["started_unix_s"] = master.go()
    elif dispatcher is not None:
        _start_senders(runner, config.max_inflight, stop)
        meta["started_unix_s"] = round(
            time.time(), 6
        )  # as requests.csv writes times: due times read back exact
        dispatcher.start_unix_s = meta["started_unix_s"]
        dispatcher.start()
    else:
        meta["started_unix_s"] = round(time.time(), 6)
        if load.shape is not None:
            runner.start_shape()
        else:
            runner.start(config.users, spawn_rate=config.spawn_rate or float(config.users))


def _watch_load(
    load: Load, active: ActiveRun, progress: Progress, stop: gevent.event.Event, log: TextIO
) -> tuple[str, str | None]:
    """Tick the progress line until the load's end; returns the run's status, and why it failed
    when the watchdog stopped it (every request failed) or the records could not be written."""
    runner, master, dispatcher = load.runner, load.master, load.dispatcher
    duration_s = load.plan.duration_s
    start_mono = time.monotonic() - (time.time() - active.meta["started_unix_s"])
    next_tick = 1.0
    while True:
        elapsed = time.monotonic() - start_mono
        if elapsed >= duration_s or (dispatcher is not None and dispatcher.finished):
            return rundir.STATUS_COMPLETE, None
        if load.shape is not None and elapsed > 1.0 and runner.state in (STATE_STOPPED, STATE_STOPPING):
            return rundir.STATUS_COMPLETE, None  # the shape ran out
        if stop.is_set():
            return rundir.STATUS_INTERRUPTED, None
        why = load.watchdog.verdict(elapsed) if load.watchdog is not None else None
        if active.recorder.write_failure is not None:  # a full disk: what was written is kept
            why = f"{active.recorder.write_failure}; the records written before it are kept"
        if why is not None:
            return rundir.STATUS_FAILED, why
        if master is not None:
            for line in master.watch():
                log.write(f"\nloadbench: warning: {line}\n")
        if elapsed >= next_tick:
            if dispatcher is not None:
                progress.tick(elapsed, dispatcher.in_flight(runner.user_count), "in flight")
            else:
                progress.tick(elapsed, runner.user_count)
            next_tick += 1.0
        stop.wait(min(0.1, duration_s - elapsed, max(next_tick - elapsed, 0.001)))


def _stop_load(load: Load, meta: dict[str, Any], progress: Progress, recorder: Recorder) -> None:
    """Stop the users, collect the schedule and the workers' meta, and close the records."""
    runner, master = load.runner, load.master
    if load.dispatcher is not None:
        meta["schedule"] = vars(load.dispatcher.close())
    runner.stop()  # a closed loop's users are killed mid-request; an open loop's after the drain
    unrecorded = load.in_flight.unrecorded() if load.in_flight is not None else None
    if master is not None:
        master.finish()
        master.watch()
        meta["workers"] = master.meta()
        schedule = master.schedule()
        if schedule is not None:
            meta["schedule"] = schedule
        unrecorded = master.in_flight_unrecorded()
    if unrecorded is not None:
        meta["in_flight_unrecorded"] = unrecorded
    progress.done()
    recorder.close()
    runner.quit()
    if master is not None:
        master.stop_processes()


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
                follow_redirects=config.follow_redirects,
                max_body_bytes=config.max_body_bytes,
                server_time_header=config.server_time_header,
                replica_header=config.replica_header,
                replica_field=config.replica_field,
                server_time_field=config.server_time_field,
                cache_header=config.cache_header,
                cache_field=config.cache_field,
                seed=getattr(scenario.options, "seed", None),
                targets=list(config.targets),
                balance=config.balance,
                retries=config.retries,
                retry_on=config.retry_on,
                retry_backoff_s=config.retry_backoff_s,
                retry_budget=config.retry_budget,
                headers=list(config.headers),
                quiet=config.quiet,
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
        master.wait_for_workers(config.workers + config.expect_workers, config.worker_wait_s)
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
