"""Scale out on Locust's master/worker mode, keeping every request record exact.

Workers are ordinary Locust workers running the same scenario. Each ships its request
records to the master as Locust custom messages (`RECORDS_MSG`, a batch of ``requests.csv``
lines every 0.5 s); the master appends them to the run directory's one ``requests.csv``, so
the analysis reads the same records a single process would have written. Open loop: the
master sends each worker its share of the schedule (`LOAD_MSG`: rate / N, its own seed, its
rows of a trace) before the users spawn, then one start time for all (`GO_MSG`); each
worker's dispatcher keeps its own schedule. When the load stops, each worker flushes its last
records and sends its schedule statistics (`DONE_MSG`) before Locust's ``client_stopped``.

A worker on another host samples that host with its own sampler process (`SampleRelay`) and
relays the lines to the master (`SAMPLES_MSG`), which appends them to ``samples.jsonl``.

The master watches its workers: one that stops sending heartbeats (or, when local, whose
process exits) is reported in ``meta.json`` ``workers`` with when it died and how many
records it had sent; the run goes on with the others.

Imports Locust: driving code only.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gevent
import gevent.event
from locust import events
from locust.env import Environment
from locust.runners import STATE_MISSING, MasterRunner, WorkerRunner

from loadbench.drive.inflight import InFlight, counted_classes, counts_starts
from loadbench.drive.locustfiles import (
    apply_transport_settings,
    load_scenario,
    resolve_scenario,
    set_up_scenario,
)
from loadbench.drive.openloop import Dispatcher, DispatcherRef, ScheduleStats, open_loop_classes
from loadbench.drive.recorder import Recorder
from loadbench.errors import LoadbenchError
from loadbench.load import arrivals, shapes
from loadbench.record.records import RequestRecord, format_record
from loadbench.record.rundir import SAMPLES
from loadbench.redact import secret_values
from loadbench.sample.sampler import SamplerProcess, relayed_lines
from loadbench.values import DEFAULT_MAX_BODY_BYTES

RECORDS_MSG = "loadbench_records"
LOAD_MSG = "loadbench_load"
GO_MSG = "loadbench_go"
DONE_MSG = "loadbench_done"
HELLO_MSG = "loadbench_hello"
SAMPLES_MSG = "loadbench_samples"
CONNECT_TIMEOUT_S = 60.0
START_DELAY_S = 0.2  # the common start time lies this far ahead, so every worker gets it first
DONE_TIMEOUT_S = 10.0


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


# --- worker side ---------------------------------------------------------------------------------


class RecordShipper:
    """A worker's `LineSink`: record lines go to the master in batches, not to a file."""

    def __init__(self, runner: WorkerRunner) -> None:
        self._runner = runner
        self._pending: list[str] = []
        self._closed = False

    def write(self, r: RequestRecord) -> None:
        self._pending.append(format_record(r))

    def write_line(self, line: str) -> None:
        self._pending.append(line)

    def flush(self) -> None:
        if self._pending:
            lines, self._pending = "".join(self._pending), []
            self._runner.send_message(RECORDS_MSG, {"lines": lines})

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.flush()


@dataclass
class WorkerSettings:
    """What a worker needs to run the scenario; local workers read it as JSON on stdin."""

    master_host: str
    master_port: int
    target: str
    scenario: str  # name or path
    scenario_args: list[str] = field(default_factory=list)  # headers included, as --header
    timeout_s: float = 60.0
    insecure: bool = False
    follow_redirects: int = 0
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    server_time_header: str | None = None  # read by the worker's recorder into its record lines
    replica_header: str | None = None  # the same
    replica_field: str | None = None  # the same
    server_time_field: str | None = None  # the same
    cache_header: str | None = None  # the same
    cache_field: str | None = None  # the same
    seed: int | None = None  # the scenario's --seed; a local worker's: the run's + its number
    targets: list[str] = field(default_factory=list)  # as RunConfig's: several targets, and retries
    balance: str | None = None
    retries: int = 0
    retry_on: list[str] | None = None
    retry_backoff_s: list[float] | None = None
    retry_budget: float | None = None
    headers: list[str] = field(default_factory=list)  # for scrubbing only
    # A worker on another host samples that host and ships the samples (None: the master's
    # own sampler covers this host already, as for local workers).
    sample_interval_s: float | None = None
    quiet: bool = False  # `loadbench run --quiet`: Locust's log lines stay off the terminal


def run_worker(settings: WorkerSettings) -> int:
    """Connect to the master and run users until it says quit; returns the exit code."""
    # Local workers share the master's terminal: under --quiet, none of Locust's lines.
    logging.getLogger("locust").setLevel(logging.CRITICAL + 1 if settings.quiet else logging.WARNING)
    path = resolve_scenario(settings.scenario)
    scenario = load_scenario(path, settings.target, settings.scenario_args, "given by the master")
    apply_transport_settings(scenario, settings)
    ref = DispatcherRef()
    user_classes = open_loop_classes(scenario.user_classes, ref)
    in_flight = InFlight() if counts_starts(user_classes) else None
    env = Environment(
        user_classes=user_classes if in_flight is None else counted_classes(user_classes, in_flight),
        events=events,
        host=settings.target,
        parsed_options=scenario.options,
        locustfile=str(scenario.path),
    )
    runner = env.create_worker_runner(settings.master_host, settings.master_port)
    set_up_scenario(scenario, env, runner)
    # Only now ready: the master starts the load once every worker said hello, and the
    # scenario's set-up (data, model discovery) must have finished by then.
    runner.send_message(HELLO_MSG, {"pid": os.getpid(), "host": socket.gethostname()})
    secrets = secret_values(settings.headers, settings.target, settings.scenario_args)
    recorder = Recorder(None, secrets, RecordShipper(runner)).register(env)
    if in_flight is not None:
        in_flight.register(env)
    state: dict[str, Any] = {"index": None}

    def on_load(msg: Any, **_: Any) -> None:
        data = msg.data or {}
        state["index"] = data.get("index")
        ref.dispatcher = Dispatcher(worker_offsets(data), 0.0) if data.get("model") == "open" else None

    def on_go(msg: Any, **_: Any) -> None:
        if ref.dispatcher is not None:
            ref.dispatcher.start_unix_s = float(msg.data["start_unix_s"])
            ref.dispatcher.start()

    def on_stopping(**_: Any) -> None:
        if ref.dispatcher is not None:
            state["schedule"] = vars(ref.dispatcher.close())

    def on_stop(**_: Any) -> None:
        recorder.flush()
        if relay is not None:
            relay.relay()  # the samples up to the load's end, while the master still listens
        # The users are stopped: what they had in flight is lost (the master sums it up).
        unrecorded = in_flight.unrecorded() if in_flight is not None else None
        runner.send_message(
            DONE_MSG,
            {"index": state["index"], "schedule": state.get("schedule"), "in_flight_unrecorded": unrecorded},
        )
        if in_flight is not None:
            in_flight.reset()
        ref.dispatcher = None

    runner.register_message(LOAD_MSG, on_load)
    runner.register_message(GO_MSG, on_go)
    relay = (
        SampleRelay(runner, settings.sample_interval_s) if settings.sample_interval_s is not None else None
    )
    relaying = gevent.spawn(relay.run) if relay is not None else None
    env.events.test_stopping.add_listener(on_stopping)
    env.events.test_stop.add_listener(on_stop)
    try:
        runner.greenlet.join()
    finally:
        recorder.close()
        if relaying is not None:
            relaying.kill()
        if relay is not None:
            relay.close()
    return 0


class SampleRelay:
    """A remote worker's sampler: its own process, its lines relayed to the master.

    The sampler must not be a greenlet in Locust's loop (a busy load would delay its samples),
    so the worker starts the same `SamplerProcess` a run uses, writing into a temporary
    directory, and a greenlet ships the finished lines of its ``samples.jsonl`` every second.
    The master writes them into ``samples.jsonl`` under the label ``worker<index>@<host>/``, the
    way a remote agent's samples are kept, on this host's wall clock (keep hosts NTP-synced).
    """

    def __init__(self, runner: WorkerRunner, interval_s: float) -> None:
        self.runner = runner
        self.dir = Path(tempfile.mkdtemp(prefix="loadbench-worker-samples-"))
        self.offset = 0  # bytes of samples.jsonl shipped so far
        self.process = SamplerProcess(self.dir, interval_s, None, [os.getpid()])
        self.problem = self.process.wait_ready()
        if self.problem:
            logging.getLogger("loadbench").warning("the sampler did not start: %s", self.problem)

    def relay(self) -> None:
        """Ship the complete lines written since the last call (a partial last line waits)."""
        try:
            with open(self.dir / SAMPLES, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except OSError:
            return
        end = data.rfind(b"\n") + 1
        if not end:
            return
        self.offset += end
        samples = []
        for line in data[:end].splitlines():
            try:
                samples.append(json.loads(line))
            except ValueError:
                continue
        if samples:
            self.runner.send_message(SAMPLES_MSG, {"samples": samples})

    def run(self) -> None:
        """The relaying greenlet: every second, until killed."""
        while True:
            gevent.sleep(1.0)
            self.relay()

    def close(self) -> None:
        self.process.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def worker_offsets(data: dict[str, Any]) -> Any:
    """This worker's share of an open-loop schedule, from the master's `LOAD_MSG` data."""
    count = max(int(data.get("count", 1)), 1)
    duration_s = float(data["duration_s"])
    trace = data.get("trace")
    if trace is not None:
        return (arrivals.Arrival(float(t), i, o) for t, i, o in trace if float(t) < duration_s)
    stages = [shapes.Stage(**s) for s in data.get("stages") or []]
    whole = shapes.rate_function(stages) if stages else arrivals.constant_rate(float(data["rate"]))

    def rate(t: float) -> float | None:
        r = whole(t)
        return None if r is None else r / count

    return arrivals.arrival_offsets(
        rate, str(data["arrival"]), int(data["seed"]), float(data.get("burstiness", 1.0)), duration_s
    )


# --- master side ---------------------------------------------------------------------------------


@dataclass
class WorkerInfo:
    """One worker as the master saw it; written to ``meta.json`` ``workers``."""

    index: int
    id: str
    pid: int | None = None
    host: str | None = None
    records: int = 0
    last_record_unix_s: float | None = None
    died_at_unix_s: float | None = None
    exit_code: int | None = None
    how: str | None = None  # how it died: "process exited" or "stopped sending heartbeats"
    schedule: dict[str, Any] | None = None


class Master:
    """The master's side of a distributed run: workers, their records, their deaths."""

    def __init__(self, runner: MasterRunner) -> None:
        self.runner = runner
        self.recorder: Recorder | None = None
        self.workers: dict[str, WorkerInfo] = {}
        self.processes: list[subprocess.Popen[bytes]] = []
        self._done: set[str] = set()
        self._in_flight: dict[str, int | None] = {}  # per worker, from its DONE_MSG
        self._hello: dict[str, dict[str, Any]] = {}
        runner.register_message(HELLO_MSG, self._on_hello)
        runner.register_message(SAMPLES_MSG, self._on_samples)
        self.samples_path: Path | None = None  # the run directory's samples.jsonl, once it exists
        runner.register_message(RECORDS_MSG, self._on_records)
        runner.register_message(DONE_MSG, self._on_done)

    def spawn_local(self, count: int, settings: WorkerSettings) -> None:
        """Start ``count`` worker processes on this host; settings (headers, its own seed) go on stdin."""
        for number in range(1, count + 1):  # own seeds: workers must not draw payloads in lockstep
            seed = None if settings.seed is None else settings.seed + number
            text = json.dumps({**vars(settings), "seed": seed})
            process = subprocess.Popen(
                [sys.executable, "-m", "loadbench", "worker", "--config-stdin"],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
            )
            assert process.stdin is not None
            process.stdin.write(text.encode())
            process.stdin.close()
            self.processes.append(process)

    def wait_for_workers(self, count: int, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self.runner.clients.ready) < count or len(self._hello) < count:
            dead = [p for p in self.processes if p.poll() is not None]
            if dead:
                raise LoadbenchError(
                    f"a worker process exited with code {dead[0].returncode} before connecting "
                    "(its error is printed above)"
                )
            if time.monotonic() > deadline:
                raise LoadbenchError(
                    f"only {len(self.runner.clients.ready)} of {count} workers connected within {timeout_s:g} s "
                    "(--worker-wait)"
                )
            gevent.sleep(0.05)
        local = {p.pid for p in self.processes}
        for node in self.runner.clients.ready:
            hello = self._hello.get(node.id, {})
            pid = hello.get("pid")
            self.workers[node.id] = WorkerInfo(
                self.runner.get_worker_index(node.id),
                node.id,
                pid if pid in local else None,
                hello.get("host"),
            )

    def send_load(self, data: dict[str, Any]) -> None:
        """Each worker's share of the load (open loop), before the users spawn."""
        count = len(self.workers)
        for position, info in enumerate(sorted(self.workers.values(), key=lambda w: w.index)):
            share = {**data, "index": position, "count": count, "seed": int(data.get("seed", 0)) + position}
            if data.get("trace") is not None:
                share["trace"] = data["trace"][position::count]
                share["count"] = 1
            self.runner.send_message(LOAD_MSG, share, client_id=info.id)

    def go(self) -> float:
        """One start time for every worker's schedule; returns it."""
        start = round(time.time() + START_DELAY_S, 6)  # to the microsecond, as requests.csv writes times
        self.runner.send_message(GO_MSG, {"start_unix_s": start})
        gevent.sleep(max(start - time.time(), 0.0))
        return start

    def wait_spawned(self, users: int, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while self.runner.user_count < users and time.monotonic() < deadline:
            gevent.sleep(0.02)

    def watch(self) -> list[str]:
        """Note workers that died since the last call; returns one line per new death."""
        now = time.time()
        lines = []
        by_pid = {p.pid: p for p in self.processes}
        for node_id, info in self.workers.items():
            if info.died_at_unix_s is not None or node_id in self._done:
                continue
            process = by_pid.get(info.pid) if info.pid else None
            node = self.runner.clients.get(node_id)
            if process is not None and process.poll() is not None:
                info.died_at_unix_s, info.exit_code, info.how = now, process.returncode, "process exited"
            elif node is not None and node.state == STATE_MISSING:
                info.died_at_unix_s, info.how = now, "stopped sending heartbeats"
            else:
                continue
            lines.append(
                f"worker {info.index} ({info.how}) after sending {info.records:,} requests; the run goes on"
            )
        return lines

    def finish(self) -> None:
        """Wait (bounded) for live workers' last records, then end local worker processes."""
        deadline = time.monotonic() + DONE_TIMEOUT_S
        while time.monotonic() < deadline:
            alive = [w for w, i in self.workers.items() if i.died_at_unix_s is None]
            if all(w in self._done for w in alive):
                break
            gevent.sleep(0.05)

    def stop_processes(self) -> None:
        for process in self.processes:
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)

    def meta(self) -> list[dict[str, Any]]:
        return [vars(w) for w in sorted(self.workers.values(), key=lambda w: w.index)]

    def schedule(self) -> dict[str, Any] | None:
        """The workers' schedule statistics, summed (max_backlog: the largest)."""
        parts = [w.schedule for w in self.workers.values() if w.schedule]
        if not parts:
            return None
        total = vars(ScheduleStats())
        for part in parts:
            for key in ("due", "handed_out", "unsent", "dropped"):
                total[key] += int(part.get(key) or 0)
            total["max_backlog"] = max(total["max_backlog"], int(part.get("max_backlog") or 0))
            for key, pick in (("first_due_unix_s", min), ("last_due_unix_s", max)):
                values = [v for v in (total[key], part.get(key)) if isinstance(v, int | float)]
                total[key] = pick(values) if values else None
        return total

    def in_flight_unrecorded(self) -> int | None:
        """The workers' requests cut off at the stop, summed; None when a worker's count is unknown
        (it died, never said, or its client cannot be counted)."""
        counts = [self._in_flight.get(worker) for worker in self.workers]
        if not counts or any(c is None for c in counts):
            return None
        return sum(c for c in counts if c is not None)

    def _on_records(self, msg: Any, **_: Any) -> None:
        text = str((msg.data or {}).get("lines", ""))
        if not text or self.recorder is None:
            return
        if not text.endswith("\n"):
            text += "\n"
        self.recorder.write_lines(text)
        info = self.workers.get(msg.node_id)
        # The live progress line: counts and recent latencies from the lines themselves.
        for row in csv.reader(text.splitlines()):
            if len(row) < 7:
                continue
            self.recorder.total += 1
            if row[6] == "1":
                self.recorder.window_ms.append(float(row[1]))
            else:
                self.recorder.errors += 1
            if info is not None:
                info.records += 1
                info.last_record_unix_s = float(row[0])

    def _on_samples(self, msg: Any, **_: Any) -> None:
        info = self.workers.get(msg.node_id)
        if self.samples_path is None or info is None:
            return
        label = f"worker{info.index}@{info.host or 'unknown'}"
        lines = relayed_lines(label, (msg.data or {}).get("samples"))
        if lines:
            # One append per batch: the sampler process appends to the same file, line by line.
            fd = os.open(self.samples_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, "".join(lines).encode())
            finally:
                os.close(fd)

    def _on_hello(self, msg: Any, **_: Any) -> None:
        self._hello[msg.node_id] = dict(msg.data or {})

    def _on_done(self, msg: Any, **_: Any) -> None:
        self._done.add(msg.node_id)
        info = self.workers.get(msg.node_id)
        if info is not None:
            info.schedule = (msg.data or {}).get("schedule")
        count = (msg.data or {}).get("in_flight_unrecorded")
        self._in_flight[msg.node_id] = count if isinstance(count, int) else None


def read_stdin_settings() -> WorkerSettings:
    """A local worker's settings, written by its master on stdin as JSON."""
    try:
        data = json.loads(sys.stdin.read())
        return WorkerSettings(**data)
    except (ValueError, TypeError) as exc:
        raise LoadbenchError(f"worker settings on stdin are not valid: {exc}") from None
