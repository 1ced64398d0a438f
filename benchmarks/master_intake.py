"""Distributed runs: how many records per second a master takes in on one core (issue 25).

    python benchmarks/master_intake.py [--rounds 3] [--senders 4] [--batch 3000] [--batches 100]
                                       [--live-metrics] [--llm] [--code DIR] [--baseline DIR]

The real intake path, not a copy of it: each round starts one master process and ``--senders``
sender processes, as ``loadbench run --workers N`` does, and they talk over Locust's own zmq
channel. The master is a real Locust ``MasterRunner`` with loadbench's `Master` on it and the run
directory's `Recorder` (it writes ``requests.csv`` as in a run), pinned to the first CPU this
script may use (``taskset``); the senders are real Locust ``WorkerRunner`` processes, pinned to
the others, each shipping its records through loadbench's worker-side `RecordShipper`, in
batches of ``--batch`` records (3,000: what a worker at 6,000 requests/s ships every 0.5 s).

The records are what a worker's recorder writes: each sender formats its batch once with the
real `Recorder` hot path (open loop: an intended time on every record; 1 % failures, which take
the recorder's general path), then writes those lines into its shipper and ships them,
``--batches`` times, as fast as the channel takes them. The master measures from its go signal
(sent once every sender has said hello) until the last record is in, so it works through a
backlog the whole time: the wall time is its capacity, and its CPU time (the whole process:
zmq's I/O thread included) per record is the cost.

Figures, per round; the table gives the median over rounds:

- records/s: every record the master took in / its wall time from go to the last record;
- master CPU µs/record: the master's CPU time over the same span / the records;
- master cores busy: that CPU time / the wall time (below 1: the senders, not the master,
  were the limit, and records/s understates the master's capacity);
- worker µs/record, format: the recorder formatting one record into its line (as in any run);
- worker µs/record, ship: writing the lines into the shipper and shipping the batches (building
  the message, msgpack, zmq), the sender's CPU time / the records it sent.

Exactly once: after each round the master checks that ``requests.csv`` holds every record sent,
each once (its line count, and an order-independent checksum of the lines equal to the sum of
what the senders sent), and that its per-worker counts (what ``meta.json`` ``workers`` says) add up to it.
A round that fails the check fails the benchmark.

``--live-metrics``: a second master configuration per round, with the live metrics counter of
``--metrics-port`` attached (it counts every received line too). ``--llm``: records as a streamed
LLM chat's (a time to first token, token counts, 63 inter-token gaps: lines of about 500 bytes
instead of 90). ``--code DIR``: measure the ``loadbench`` package in DIR instead of this tree's
(a frozen copy, ``git archive HEAD loadbench | tar -x -C DIR``, while others edit the tree).
``--baseline DIR``: another ``loadbench`` package, measured in the same rounds, interleaved with
the measured one, for a before/after table.

Goal (issue 25): at least 100,000 records/s on one master core, so that 16 workers at 6,000
requests/s each fit.

Exit codes: 0 done (the table says whether the goal holds), 1 a round failed, 2 bad options.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path
from types import SimpleNamespace
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
import recording_overhead  # noqa: E402  (the shared machine facts and CPU pinning)
from recording_overhead import cpu_model  # noqa: E402

GOAL_RPS = 100_000
FAILURE_EVERY = 100  # one record in 100 a failure: the recorder's general path
LLM_TOKENS = 64  # --llm: tokens an answer (63 inter-token gaps in its line)
ROUND_TIMEOUT_S = 300.0


def line_sum(lines: Any) -> int:
    """An order-independent checksum of lines (bytes): their CRC-32s summed."""
    return sum(zlib.crc32(line) for line in lines)


# --- the sender: a real Locust worker runner with loadbench's shipper ----------------------------


class Lines:
    """A `LineSink` that keeps the lines the recorder formats (the sender's batch template)."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def write(self, r: Any) -> None:
        from loadbench.record.records import format_record

        self.lines.append(format_record(r))

    def write_line(self, line: str) -> None:
        self.lines.append(line)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def batch_lines(size: int, seed: int, llm: bool) -> tuple[list[str], float]:
    """``size`` record lines as a worker's recorder formats them, and its CPU seconds per record;
    ``llm``: a streamed chat's, with its time to first token, token counts and inter-token gaps."""
    from loadbench.drive.openloop import INTENDED_KEY
    from loadbench.drive.recorder import Recorder
    from loadbench.record.records import EXTRAS_KEY

    sink = Lines()
    recorder = Recorder(None, [], sink)
    start = 1_765_000_000.0 + seed * 1000.0
    began = time.process_time()
    for i in range(size):
        t = start + i * 0.000_17
        failed = i % FAILURE_EVERY == FAILURE_EVERY - 1
        recorder.on_request(
            "POST",
            "/v1/chat/completions",
            4.0 + (i * 7919 % 10_000) / 997.0,
            0 if failed else 612 + i % 50,
            ConnectionResetError(104, "Connection reset by peer") if failed else None,
            start_time=t,
            response=SimpleNamespace(status_code=0 if failed else 200, headers={}),
            context={INTENDED_KEY: round(t - 0.000_8, 6), **({EXTRAS_KEY: llm_extras(i)} if llm else {})},
        )
    return sink.lines, (time.process_time() - began) / size


def llm_extras(i: int) -> dict[str, Any]:
    gaps = [8.0 + (i * 31 + k * 17) % 400 / 100.0 for k in range(LLM_TOKENS - 1)]
    return {
        "ttft_ms": 40.0 + i % 300 / 10.0,
        "input_tokens": 200 + i % 56,
        "output_tokens": LLM_TOKENS,
        "tokens_source": "usage",
        "itl_ms": gaps,
    }


def run_sender(args: argparse.Namespace) -> None:
    import gevent.event
    from locust import events
    from locust.env import Environment

    from loadbench.drive.distributed import GO_MSG, HELLO_MSG, RecordShipper

    lines, format_s = batch_lines(args.batch, args.seed, args.llm)
    env = Environment(user_classes=[], events=events)
    runner = env.create_worker_runner("127.0.0.1", args.port)
    go = gevent.event.Event()
    runner.register_message(GO_MSG, lambda msg, **_: go.set())
    runner.send_message(HELLO_MSG, {"pid": os.getpid(), "host": socket.gethostname()})
    shipper = RecordShipper(runner)
    if not go.wait(60):
        raise SystemExit("sender: no go from the master within 60 s")
    began = time.process_time()
    for _ in range(args.batches):
        for line in lines:
            shipper.write_line(line)
        shipper.flush()
        gevent.sleep(0)  # the runner's heartbeats, and zmq's green sockets
    ship_s = time.process_time() - began
    encoded = [line.encode() for line in lines]
    result = {
        "records": args.batch * args.batches,
        "format_us": format_s * 1e6,
        "ship_us": ship_s / (args.batch * args.batches) * 1e6,
        "sum": line_sum(encoded) * args.batches,
    }
    print(json.dumps(result), flush=True)
    runner.greenlet.join(timeout=ROUND_TIMEOUT_S)  # until the master says quit


# --- the master: a real Locust master runner with loadbench's Master and Recorder ----------------


def run_master(args: argparse.Namespace) -> None:
    import gevent
    from locust import events
    from locust.env import Environment

    from loadbench.drive.distributed import GO_MSG, Master
    from loadbench.drive.recorder import Recorder
    from loadbench.record.rundir import REQUESTS

    env = Environment(user_classes=[], events=events)
    runner = env.create_master_runner("127.0.0.1", args.port)
    master = Master(runner)
    run_dir = Path(args.out)
    recorder = Recorder(run_dir).register(env)
    if args.live_metrics:
        from loadbench.drive.livemetrics import LiveMetrics, RunInfo

        recorder.counter = LiveMetrics(RunInfo(run_id="bench", scenario="bench", target="t", version="0"))
    master.recorder = recorder
    master.wait_for_workers(args.senders, 60)

    def taken() -> int:
        return sum(w.records for w in master.workers.values())

    began, began_cpu = time.perf_counter(), time.process_time()
    runner.send_message(GO_MSG, {"start_unix_s": time.time()})
    deadline = time.monotonic() + ROUND_TIMEOUT_S
    while taken() < args.expect and time.monotonic() < deadline:
        gevent.sleep(0.001)
    wall_s, cpu_s = time.perf_counter() - began, time.process_time() - began_cpu
    # The recorder's flusher may have a timer that expired in the same loop turn (the loop was
    # busy): let it run first, or it would wake after close() and write to a closed users.csv.
    gevent.sleep(0)
    recorder.close()
    with open(run_dir / REQUESTS, "rb") as f:
        f.readline()  # the header
        lines = f.read().splitlines(keepends=True)
    import loadbench

    result = {
        "code": str(Path(loadbench.__file__).resolve().parent.parent),
        "records": taken(),
        "wall_s": wall_s,
        "cpu_s": cpu_s,
        "lines": len(lines),
        "sum": line_sum(lines),
        "total": recorder.total,
    }
    runner.quit()
    print(json.dumps(result), flush=True)


# --- the driver ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pinning() -> tuple[list[str], list[str], str]:
    """taskset prefixes for the master (the first CPU) and the senders (every other one)."""
    return recording_overhead.pinning("master", "senders", second_takes_the_rest=True)


def one_round(args: argparse.Namespace, code: Path, live_metrics: bool) -> dict[str, float]:
    """One master and its senders with the ``loadbench`` package under ``code``; the round's figures."""
    master_cpu, sender_cpu, _ = pinning()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(code), os.environ.get("PYTHONPATH", "")])}
    port = free_port()
    expect = args.senders * args.batch * args.batches
    this = [sys.executable, str(Path(__file__).resolve())]
    with tempfile.TemporaryDirectory(prefix="master-intake-") as out:
        # Plain words only in these command lines (a temporary path, numbers): split at spaces.
        master_argv = f"--role master --port {port} --out {out} --senders {args.senders} --expect {expect}"
        sender_argv = f"--role sender --port {port} --batch {args.batch} --batches {args.batches}"
        master = subprocess.Popen(
            [*master_cpu, *this, *master_argv.split(), *(["--live-metrics"] if live_metrics else [])],
            stdout=subprocess.PIPE,
            env=env,
            text=True,
            cwd=out,
        )
        senders = [
            subprocess.Popen(
                [
                    *sender_cpu,
                    *this,
                    *sender_argv.split(),
                    "--seed",
                    str(n),
                    *(["--llm"] if args.llm else []),
                ],
                stdout=subprocess.PIPE,
                env=env,
                text=True,
                cwd=out,
            )
            for n in range(args.senders)
        ]
        try:
            mine = _result(master)
            theirs = [_result(s) for s in senders]
        finally:
            for process in (master, *senders):
                if process.poll() is None:
                    process.kill()
                    process.wait()
    if Path(mine["code"]) != code.resolve():
        raise RuntimeError(f"the master ran the loadbench under {mine['code']}, not under {code}")
    sent = sum(int(s["records"]) for s in theirs)
    problems = []
    if not (mine["records"] == mine["lines"] == sent == expect):
        problems.append(
            f"records sent {sent:,}, counted {mine['records']:,}, lines in requests.csv {mine['lines']:,}"
        )
    if mine["sum"] != sum(int(s["sum"]) for s in theirs):
        problems.append("requests.csv's lines are not the lines sent")
    if problems:
        raise RuntimeError("not exactly once: " + "; ".join(problems))
    return {
        "rps": mine["records"] / mine["wall_s"],
        "master_us": mine["cpu_s"] / mine["records"] * 1e6,
        "cores": mine["cpu_s"] / mine["wall_s"],
        "format_us": statistics.median(s["format_us"] for s in theirs),
        "ship_us": statistics.median(s["ship_us"] for s in theirs),
    }


def _result(process: subprocess.Popen[str]) -> dict[str, Any]:
    out, _ = process.communicate(timeout=ROUND_TIMEOUT_S)
    if process.returncode != 0:
        raise RuntimeError(f"a benchmark process exited with code {process.returncode}")
    return dict(json.loads(out.strip().splitlines()[-1]))


def table(results: dict[str, list[dict[str, float]]]) -> str:
    rows = [
        "| code | master | records/s | master CPU µs/record | master cores busy "
        "| worker µs/record: format | worker µs/record: ship |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for label, rounds in results.items():
        med = {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}
        code, config = label.split(" / ")
        rows.append(
            f"| {code} | {config} | **{med['rps']:,.0f}** | {med['master_us']:.2f} | {med['cores']:.2f} "
            f"| {med['format_us']:.2f} | {med['ship_us']:.2f} |"
        )
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--senders", type=int, default=4, help="sender (worker) processes")
    parser.add_argument("--batch", type=int, default=3000, help="records a batch (a worker's 0.5 s)")
    parser.add_argument("--batches", type=int, default=100, help="batches each sender ships")
    parser.add_argument("--live-metrics", action="store_true", help="also with the live metrics counter")
    parser.add_argument("--llm", action="store_true", help="an LLM chat's records (token timings)")
    parser.add_argument("--baseline", type=Path, help="a directory holding another loadbench package")
    parser.add_argument(
        "--code", type=Path, help="measure the loadbench package in this directory, not the tree's"
    )
    parser.add_argument("--role", choices=("master", "sender"), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--expect", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "master":
        run_master(args)
        return 0
    if args.role == "sender":
        run_sender(args)
        return 0
    if min(args.rounds, args.senders, args.batch, args.batches) < 1:
        parser.error("--rounds, --senders, --batch and --batches must be 1 or more")
    if args.baseline is not None and not (args.baseline / "loadbench" / "__init__.py").is_file():
        parser.error(f"--baseline {args.baseline}: no loadbench package in it")
    if args.code is not None and not (args.code / "loadbench" / "__init__.py").is_file():
        parser.error(f"--code {args.code}: no loadbench package in it")
    label = "this tree" if args.code is None else str(args.code)
    codes = {label: REPO if args.code is None else args.code.resolve()}
    if args.baseline is not None:
        codes = {"baseline": args.baseline.resolve(), **codes}
    configs = {"plain": False, **({"live metrics": True} if args.live_metrics else {})}
    results: dict[str, list[dict[str, float]]] = {f"{c} / {m}": [] for c in codes for m in configs}
    _, _, pinned = pinning()
    print(f"# {pinned}; {args.senders} senders x {args.batches} batches x {args.batch:,} records")
    for n in range(1, args.rounds + 1):
        for code, path in codes.items():
            for config, live in configs.items():
                try:
                    r = one_round(args, path, live)
                except (RuntimeError, subprocess.TimeoutExpired, ValueError) as exc:
                    print(f"round {n}, {code} / {config}: {exc}", file=sys.stderr)
                    return 1
                results[f"{code} / {config}"].append(r)
                print(
                    f"round {n} {code} / {config}: {r['rps']:,.0f} records/s, master {r['master_us']:.2f} "
                    f"µs/record ({r['cores']:.2f} cores), worker {r['format_us']:.2f} + {r['ship_us']:.2f} µs/record",
                    flush=True,
                )
    print()
    print(table(results))
    measured = list(codes)[-1]
    best = statistics.median(r["rps"] for r in results[f"{measured} / plain"])
    verdict = "meets" if best >= GOAL_RPS else "misses"
    print(
        f"\n{measured}, plain: {best:,.0f} records/s on one master core: {verdict} the goal of {GOAL_RPS:,}"
    )
    print(
        f"machine: {cpu_model()}, {os.cpu_count()} logical CPUs; "
        f"Python {platform.python_version()}; load average {os.getloadavg()[0]:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
