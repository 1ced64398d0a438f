"""Resource sampling beside the load: host, model-server process, generator, GPUs, Prometheus.

Runs in its own process (``python -m loadbench.sample.sampler``, started and stopped by the runner),
so a busy load cannot delay samples and sampling cannot slow the load. Every
``--sample-interval`` it appends one flat JSON object to the run directory's
``samples.jsonl`` (flushed at least once a second); at start it writes ``sampler.json`` (what
is sampled and how it was found), and at exit (SIGTERM included) adds ``final`` to it: how
every scrape and agent pull went. Scrapes and agent pulls wait on the network, so they run in
threads of their own (`Background`), never in the sample loop. Format: ``docs/run-format.md``.

Sample keys are ``[<host label>/]<group>.<metric>`` with the unit in the metric name;
``unix_s`` is the wall-clock time of the sample, the clock of ``requests.csv``. Groups:
``host`` (psutil), ``server`` (the model server's process tree), ``generator`` (loadbench's
own processes), ``gpu<i>`` (NVML), ``prom`` (Prometheus scrapes). A value the platform
cannot give is ``null``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from loadbench.record.rundir import SAMPLER_INFO, SAMPLES, write_json
from loadbench.redact import redact_argv
from loadbench.sample.collector import Collector, host_label
from loadbench.sample.hostmetrics import Generator, ProcessTree, ServerProcess, Values
from loadbench.sample.nvml import GpuReader
from loadbench.sample.prometheus import Scraper
from loadbench.sample.puller import AgentPuller

FLUSH_INTERVAL_S = 1.0


class SampleWriter:
    """Appends samples as JSON lines; flushes to the OS at least every `FLUSH_INTERVAL_S`.

    Thread-safe (the sample loop and the `Background` threads share it). Each flush is one
    ``write`` of whole lines to a file opened ``O_APPEND``, so a distributed master appending
    its workers' lines to the same file never lands inside one of ours.
    """

    def __init__(self, path: Path) -> None:
        self.fd: int | None = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.pending: list[str] = []
        self.lock = threading.Lock()
        self.last_flush = time.monotonic()

    def write(self, sample: dict[str, Any]) -> None:
        line = json.dumps(sample, separators=(",", ":"), allow_nan=False) + "\n"
        with self.lock:
            self.pending.append(line)
            now = time.monotonic()
            if now - self.last_flush >= FLUSH_INTERVAL_S:
                self._flush()
                self.last_flush = now

    def _flush(self) -> None:
        if self.fd is None or not self.pending:
            return
        data, self.pending = "".join(self.pending).encode("utf-8"), []
        while data:
            data = data[os.write(self.fd, data) :]

    def close(self) -> None:
        with self.lock:
            if self.fd is not None:
                self._flush()
                os.close(self.fd)
                self.fd = None


def _finite(values: dict[str, Any]) -> dict[str, Any]:
    # JSON has no NaN/Infinity: a value that is not a finite number is "unknown".
    return {k: (v if v is None or (v == v and abs(v) != float("inf")) else None) for k, v in values.items()}


def _number(value: Any) -> float | int | None:
    # JSON has no NaN/Infinity, and a sample value is a number or unknown: anything else is unknown.
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return value
    return None


def relayed_lines(label: str, samples: Any) -> list[str]:
    """A worker's relayed samples as ``samples.jsonl`` lines, keys prefixed ``<label>/``.

    The worker is another host's process: a sample without a finite ``unix_s`` is dropped, and
    a value that is not a finite number becomes null, so that every line is valid JSON.
    """
    lines = []
    for sample in samples if isinstance(samples, list) else []:
        if not isinstance(sample, dict) or _number(sample.get("unix_s")) is None:
            continue
        row = {"unix_s": sample["unix_s"]}
        row.update({f"{label}/{k}": _number(v) for k, v in sample.items() if k != "unix_s"})
        lines.append(json.dumps(row, separators=(",", ":"), allow_nan=False) + "\n")
    return lines


class Background:
    """Prometheus scrapes and agent pulls, each in its own thread on its own schedule.

    They wait on the network (up to a 2 s timeout each), so they must not run in the sample
    loop. A scrape's values wait in `take` for the sample loop to put them on its next sample
    (one line, one writer of local samples); an agent's samples are lines of their own, written
    through the thread-safe `SampleWriter`.
    """

    def __init__(self, writer: SampleWriter) -> None:
        self.writer = writer
        self.stopping = threading.Event()
        self.threads: list[threading.Thread] = []
        self.pullers: list[tuple[Any, threading.Thread]] = []
        self._scraped: Values = {}
        self._lock = threading.Lock()

    def add_scraper(self, scraper: Any, interval_s: float) -> None:
        """Scrape now, then every ``interval_s``."""

        def scrape() -> None:
            values = scraper.scrape()
            with self._lock:
                self._scraped |= values

        self._every(f"loadbench-scrape-{len(self.threads)}", interval_s, scrape, first_s=0.0)

    def add_puller(self, puller: Any, every_s: float = 1.0) -> None:
        """Pull an agent's samples every ``every_s``, starting ``every_s`` from now."""

        def pull() -> None:
            for remote in puller.pull():
                self.writer.write(_finite(remote))

        thread = self._every(f"loadbench-pull-{len(self.threads)}", every_s, pull, first_s=every_s)
        self.pullers.append((puller, thread))

    def _every(
        self, name: str, interval_s: float, action: Callable[[], None], first_s: float
    ) -> threading.Thread:
        def loop() -> None:
            next_run = time.monotonic() + first_s
            while not self.stopping.wait(max(0.0, next_run - time.monotonic())):
                now = time.monotonic()
                action()
                next_run = now + interval_s

        thread = threading.Thread(target=loop, name=name, daemon=True)
        self.threads.append(thread)
        thread.start()
        return thread

    def take(self) -> Values:
        """The scraped values since the last call (for the next sample)."""
        with self._lock:
            values, self._scraped = self._scraped, {}
        return values

    def stop(self, timeout_s: float = 3.0) -> None:
        """Stop the threads (waiting out a scrape in flight), then pull each agent one last time."""
        self.stopping.set()
        deadline = time.monotonic() + timeout_s
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        for puller, thread in self.pullers:
            if not thread.is_alive():  # else still in a request: not safe to use it from here too
                for remote in puller.pull():
                    self.writer.write(_finite(remote))


def sample_loop(
    collector: Collector,
    writer: SampleWriter,
    interval_s: float,
    should_stop: Callable[[], bool],
    background: Background | None = None,
) -> int:
    """Sample every ``interval_s`` on a fixed schedule until ``should_stop()``; return the count.

    A late sample does not shift the schedule; ticks missed entirely (a stalled machine) are
    skipped rather than bunched up. Scraped values from ``background`` join the next sample.
    """
    count = 0
    next_tick = time.monotonic()
    while not should_stop():
        sample = {"unix_s": round(time.time(), 6)} | _finite(collector.sample())
        if background is not None:
            sample |= _finite(background.take())
        writer.write(sample)
        count += 1
        now = time.monotonic()
        next_tick += interval_s
        if next_tick < now:
            next_tick = now + interval_s - ((now - next_tick) % interval_s)
        while not should_stop() and (delay := next_tick - time.monotonic()) > 0:
            time.sleep(min(delay, 0.05))  # wake often enough to stop promptly
    return count


class SamplerProcess:
    """The driver's handle on the sampler child process: start it, wait until it samples, stop it."""

    def __init__(
        self,
        run_dir: Path,
        interval_s: float,
        server: ServerProcess | None,
        generator_pids: Sequence[int],
        scrapes: Sequence[str] = (),
        scrape_match: str | None = None,
        scrape_interval_s: float = 1.0,
        agents: Sequence[str] = (),
        agent_token: str | None = None,
    ) -> None:
        command = [sys.executable, "-m", "loadbench.sample.sampler", "--run-dir", str(run_dir)]
        command += ["--interval", repr(interval_s), "--parent-pid", str(os.getpid())]
        if server is not None:
            command += ["--server-pid", str(server.pid), "--server-how", server.how]
        for pid in generator_pids:
            command += ["--generator-pid", str(pid)]
        for url in scrapes:
            command += ["--scrape", url]
        if scrape_match:
            command += ["--scrape-match", scrape_match]
        command += ["--scrape-interval", repr(scrape_interval_s)]
        for url in agents:
            command += ["--agent", url]
        env = dict(os.environ)
        if agent_token:
            env["LOADBENCH_AGENT_TOKEN"] = agent_token  # the environment, not argv: argv is public (ps)
        self.process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            start_new_session=True,
        )

    def wait_ready(self, timeout_s: float = 30.0) -> str | None:
        """Block until the sampler took its first sample; None when ready, else why it is not."""
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return self._failure()
            ready, _, _ = select.select([self.process.stdout], [], [], 0.1)
            if ready and self.process.stdout.readline().strip() == "ready":
                return None
        return f"the sampler did not start within {timeout_s:g} s"

    def _failure(self) -> str:
        err = self.process.stderr.read() if self.process.stderr else ""
        last = err.strip().splitlines()[-1] if err.strip() else ""
        return f"the sampler exited with code {self.process.returncode}" + (f": {last}" if last else "")

    def stop(self, timeout_s: float = 10.0) -> str | None:
        """SIGTERM, then wait for its last sample; None when it ended cleanly, else what went wrong."""
        if self.process.poll() is not None:
            problem = self._failure() if self.process.returncode else None
        else:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout_s)
                problem = self._failure() if self.process.returncode else None
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                problem = f"the sampler did not stop within {timeout_s:g} s and was killed"
        for pipe in (self.process.stdout, self.process.stderr):
            if pipe is not None:
                pipe.close()
        return problem


def _parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m loadbench.sample.sampler", description=__doc__)
    parser.add_argument("--run-dir", type=Path, required=True)
    parser.add_argument("--interval", type=float, default=0.5)
    parser.add_argument("--server-pid", type=int)
    parser.add_argument("--server-how", default="")
    parser.add_argument("--generator-pid", type=int, action="append", default=[])
    parser.add_argument("--scrape", action="append", default=[])
    parser.add_argument("--scrape-match")
    parser.add_argument("--scrape-interval", type=float, default=1.0)
    parser.add_argument("--agent", action="append", default=[])
    parser.add_argument("--no-gpu", action="store_true", help="do not open NVML")
    parser.add_argument(
        "--parent-pid", type=int, help="stop when this process is gone (the driver was killed)"
    )
    return parser.parse_args(argv)


@dataclass
class Sources:
    """What the sampler process reads: this host's collector, scrapes and remote agents."""

    collector: Collector
    gpus: GpuReader | None
    scrapers: list[Scraper]
    scrape_interval_s: float
    pullers: list[AgentPuller]
    info: dict[str, Any]  # sampler.json


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the sampler process. SIGTERM/SIGINT end it cleanly after one last sample."""
    args = _parse_args(sys.argv[1:] if argv is None else argv)
    stop = {"now": False}

    def request_stop(*_: Any) -> None:
        stop["now"] = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    sources = _open_sources(args)
    # A killed driver cannot stop us: notice being orphaned instead.
    parent = args.parent_pid

    def should_stop() -> bool:
        return stop["now"] or (parent is not None and os.getppid() != parent)

    _sample(args.run_dir, args.interval, sources, should_stop)
    return 0


def _open_sources(args: argparse.Namespace) -> Sources:
    """Find the server process, open NVML, the scrapers and the agents; describe them (sampler.json)."""
    notices: list[str] = []
    server = None
    if args.server_pid is not None:
        try:
            server = ProcessTree(args.server_pid)
        except psutil.NoSuchProcess:
            notices.append(f"the server process {args.server_pid} ended before sampling began")
    gpus = None if args.no_gpu else GpuReader()
    if gpus is not None and not gpus.available and gpus.notice:
        notices.append(gpus.notice)
    headers = {}
    token = os.environ.get("LOADBENCH_SCRAPE_AUTH")
    if token:
        headers["Authorization"] = token
    scrapers = [Scraper(url, match=args.scrape_match, headers=headers) for url in args.scrape]
    # Parsing a server's metrics costs milliseconds, and exporters refresh about once a second:
    # scrape on a slower schedule than psutil's cheap reads.
    scrape_interval_s = max(args.scrape_interval, args.interval)
    pullers: list[AgentPuller] = []
    agents_info: list[dict[str, Any]] = []
    for url in args.agent:
        puller = AgentPuller(url, token=os.environ.get("LOADBENCH_AGENT_TOKEN"), label=host_label(url))
        agents_info.append(puller.start())
        pullers.append(puller)
    info: dict[str, Any] = {
        "interval_s": args.interval,
        "pid": os.getpid(),
        "hostname": socket.gethostname(),
        "cpu_cores": psutil.cpu_count(logical=True),
        "server": None
        if server is None
        else {"pid": args.server_pid, "how": args.server_how, **_process_facts(args.server_pid)},
        "generator_pids": args.generator_pid,
        "gpus": [vars(g) for g in gpus.gpus] if gpus is not None else [],
        "scrapes": [
            {"url": s.shown_url, "match": args.scrape_match, "interval_s": scrape_interval_s}
            for s in scrapers
        ],
        "agents": agents_info,
        "notices": notices,
    }
    collector = Collector(server=server, generator=Generator(args.generator_pid), gpus=gpus)
    return Sources(collector, gpus, scrapers, scrape_interval_s, pullers, info)


def _sample(run_dir: Path, interval_s: float, sources: Sources, should_stop: Callable[[], bool]) -> None:
    """Sample until ``should_stop``; then one last sample of the background reads, and ``final``."""
    sampler_json = run_dir / SAMPLER_INFO
    writer = SampleWriter(run_dir / SAMPLES)
    write_json(sampler_json, sources.info)
    background = Background(writer)
    for scraper in sources.scrapers:
        background.add_scraper(scraper, sources.scrape_interval_s)
    for puller in sources.pullers:
        background.add_puller(puller)
    print("ready", flush=True)
    count = 0
    try:
        count = sample_loop(sources.collector, writer, interval_s, should_stop, background)
    finally:
        background.stop()
        last = _finite(background.take())
        if last:
            writer.write({"unix_s": round(time.time(), 6)} | last)
        writer.close()
        # How the scrapes and pulls went: analysis turns failures into notices (a URL that
        # never answered must not look like a server without metrics).
        sources.info["final"] = {
            "ended_unix_s": round(time.time(), 6),
            "samples": count,
            "scrapes": [s.summary() for s in sources.scrapers],
            "agents": [p.summary() for p in sources.pullers],
        }
        write_json(sampler_json, sources.info)
        _close(sources)


def _close(sources: Sources) -> None:
    if sources.gpus is not None:
        sources.gpus.close()
    for scraper in sources.scrapers:
        scraper.close()
    for puller in sources.pullers:
        puller.close()


def _process_facts(pid: int) -> dict[str, Any]:
    try:
        proc = psutil.Process(pid)
        return {"name": proc.name(), "cmdline": " ".join(redact_argv(proc.cmdline()))[:300]}
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return {"name": None, "cmdline": None}


if __name__ == "__main__":
    raise SystemExit(main())
