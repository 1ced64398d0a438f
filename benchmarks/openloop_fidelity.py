"""Open-loop fidelity: does ``loadbench run --rate`` send at the rate and the times it was asked to?

    python benchmarks/openloop_fidelity.py [--rounds 3] [--duration 20s] [--warmup 2s] [--write-docs]
    make benchmark

For each target rate (200 and 1000 requests/s) and each arrival process (constant, poisson),
one trial runs

    python -m loadbench run --target URL --scenario benchmarks/locustfile_get.py --rate R \\
        --arrival A --seed 1 -d 20s --warmup 2s --no-sampler -q --out DIR

with the load generator pinned to one core and nginx to another (``taskset``; the server and
the pinning are `recording_overhead`'s). Trials are interleaved (every configuration once per
round) so drift on a shared machine hits all alike; each figure is the median over the rounds.

From each run's ``requests.csv`` and ``summary.json`` (measured window: from ``--warmup``
after the load started until the load stopped, wall clock):

- achieved send rate = records whose due time (``intended_unix_s``) lies in the window /
  the window's length; its ratio to the target rate, and to the schedule's own count of due
  times in the window (regenerated from the seed: a Poisson schedule's count is random, so it
  can miss the target by a percent or two whatever the generator does);
- lateness = ``start_unix_s`` − ``intended_unix_s`` in ms (actual send minus due time, both
  ``time.time()`` in the generator's process): p50, p99, max, and the share sent > 1 ms late;
- the generator's CPU share over the load (``time.process_time()`` marks the locustfile writes).

Goals: achieved rate within 1% of the schedule, and send lateness p99 under 2 ms at 200
requests/s. ``--write-docs`` replaces this benchmark's section of ``docs/benchmarks.md``.

Exit codes: 0 done (whatever the verdict), 1 a trial failed, 2 something needed is missing.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from recording_overhead import (  # noqa: E402  (a sibling script, not a package)
    LOCUSTFILE,
    BenchError,
    cpu_model,
    describe_server,
    load_phase,
    parse_duration,
    pinning,
    run_logged,
    start_server,
    stop_process,
    tool,
    version_of,
    write_docs,
)

REPO = HERE.parent
DOCS = REPO / "docs" / "benchmarks.md"
SECTION = "## Open-loop fidelity (loadbench run --rate)"
RATES = (200, 1000)
ARRIVALS = ("constant", "poisson")
SEED = 1
GOAL_RATE = 0.01  # achieved send rate within 1% of the schedule
GOAL_RATE_FOR_LATENESS = 200  # the lateness goal applies at this rate
GOAL_LATENESS_P99_MS = 2.0
LATE_MS = 1.0  # "late" in the table: sent more than this after the due time


@dataclass
class Trial:
    """One ``loadbench run --rate`` run, reduced to the figures of the table."""

    rate: int  # target requests/s
    arrival: str
    window_s: float  # the measured window: --warmup after the load started, until it stopped
    scheduled: int  # due times the seeded schedule puts in the window
    sent: int  # records whose due time lies in the window
    lateness_ms: np.ndarray  # start_unix_s - intended_unix_s of those records
    failures: int  # records with ok != 1 (all of the run, warmup included)
    cpu_share: float | None  # generator CPU s / wall s over the load phase
    schedule: dict[str, object]  # summary.json's `schedule`, for the cross-check

    @property
    def achieved_rps(self) -> float:
        return self.sent / self.window_s

    @property
    def vs_target(self) -> float:
        return self.achieved_rps / self.rate

    @property
    def vs_schedule(self) -> float:
        return self.sent / self.scheduled

    def lateness(self, q: float) -> float:
        return float(np.percentile(self.lateness_ms, q))

    @property
    def late_share(self) -> float:
        return float((self.lateness_ms > LATE_MS).mean())


def scheduled_in_window(
    rate: int, arrival: str, duration_s: float, window: tuple[float, float], started: float
) -> int:
    """How many due times the run's seeded schedule puts in the window (what the dispatcher walked)."""
    # Imported here: loadbench's arrivals module is pure (numpy), but needs the venv's loadbench.
    from loadbench.load.arrivals import arrival_offsets, constant_rate

    offsets = np.fromiter(arrival_offsets(constant_rate(rate), arrival, SEED, 1.0, duration_s), float)
    return int(in_window(started + offsets, window).sum())


def in_window(due_unix_s: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    """Due times inside the window, compared in whole µs: the resolution of requests.csv and of
    summary.json's window (a due time exactly at the warmup's end must count the same both ways)."""
    due_us = np.rint(due_unix_s * 1e6)
    return (due_us >= round(window[0] * 1e6)) & (due_us <= round(window[1] * 1e6))


def run_trial(
    url: str, rate: int, arrival: str, duration_s: int, warmup_s: int, workdir: Path, pin: list[str], n: int
) -> Trial:
    name = f"{rate}-{arrival}-{n}"
    out = workdir / name
    command = [*pin, sys.executable, "-m", "loadbench", "run", "--target", url, "--scenario", str(LOCUSTFILE)]
    command += ["--rate", str(rate), "--arrival", arrival, "--seed", str(SEED), "-d", f"{duration_s}s"]
    command += ["--warmup", f"{warmup_s}s", "--no-sampler", "--records", "csv", "-q", "--out", str(out)]
    code, _, phase = run_logged(command, workdir, name, duration_s + 120)
    log = workdir / f"{name}.log"
    records, summary_file = out / "requests.csv", out / "summary.json"
    if code != 0 or not records.is_file() or not summary_file.is_file():
        raise BenchError(f"loadbench run exited with code {code}; see {log}")
    summary = json.loads(summary_file.read_text(encoding="utf-8"))
    meta = json.loads((out / "meta.json").read_text(encoding="utf-8"))
    window = (float(summary["window"]["start_unix_s"]), float(summary["window"]["end_unix_s"]))
    intended, start = [], []
    failures = 0
    with open(records, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            failures += row["ok"] != "1"
            if row["intended_unix_s"]:
                intended.append(float(row["intended_unix_s"]))
                start.append(float(row["start_unix_s"]))
    due, sent_at = np.array(intended), np.array(start)
    # The window holds a request when it was *due* inside it (as summary.json's `schedule`
    # counts): a late send near the warmup's end belongs to the window it was due in.
    inside = in_window(due, window)
    try:
        wall_s, cpu_s = load_phase(phase, log)
        cpu_share: float | None = cpu_s / wall_s
    except BenchError:
        cpu_share = None
    return Trial(
        rate=rate,
        arrival=arrival,
        window_s=window[1] - window[0],
        scheduled=scheduled_in_window(rate, arrival, duration_s, window, float(meta["started_unix_s"])),
        sent=int(inside.sum()),
        lateness_ms=(sent_at[inside] - due[inside]) * 1000.0,
        failures=failures,
        cpu_share=cpu_share,
        schedule=summary.get("schedule") or {},
    )


# --- the report ------------------------------------------------------------------------------


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def config_rows(trials: list[Trial]) -> list[str]:
    rows = [
        "| target req/s | arrival | achieved req/s | / target | / schedule | lateness p50 ms | p99 ms "
        "| max ms | sent > 1 ms late | p99 over rounds (min – max) | generator CPU |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for rate in RATES:
        for arrival in ARRIVALS:
            ts = [t for t in trials if t.rate == rate and t.arrival == arrival]
            p99s = [t.lateness(99) for t in ts]
            cpu = [t.cpu_share for t in ts if t.cpu_share is not None]
            rows.append(
                f"| {rate:,} | {arrival} | {median([t.achieved_rps for t in ts]):,.1f} "
                f"| {median([t.vs_target for t in ts]):.4f} | {median([t.vs_schedule for t in ts]):.4f} "
                f"| {median([t.lateness(50) for t in ts]):.2f} | **{median(p99s):.2f}** "
                f"| {median([float(t.lateness_ms.max()) for t in ts]):.1f} "
                f"| {median([t.late_share for t in ts]):.1%} | {min(p99s):.2f} – {max(p99s):.2f} "
                f"| {f'{median(cpu):.0%}' if cpu else '–'} |"
            )
    return rows


def round_rows(trials: list[Trial]) -> list[str]:
    rows = [
        "| round | target req/s | arrival | sent / scheduled in window | achieved req/s | lateness p50 ms "
        "| p99 ms | max ms | summary.json: achieved req/s, lateness p99 ms |",
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    per_round = len(RATES) * len(ARRIVALS)
    for i, t in enumerate(trials):
        lateness = t.schedule.get("lateness_ms") or {}
        assert isinstance(lateness, dict)
        rows.append(
            f"| {i // per_round + 1} | {t.rate:,} | {t.arrival} | {t.sent:,} / {t.scheduled:,} "
            f"| {t.achieved_rps:,.1f} | {t.lateness(50):.2f} | {t.lateness(99):.2f} "
            f"| {float(t.lateness_ms.max()):.1f} | {t.schedule.get('achieved_send_rps')}, {lateness.get('p99')} |"
        )
    return rows


def verdict(trials: list[Trial]) -> tuple[str, bool, bool]:
    """The result sentence, whether the rate goal is met, whether the lateness goal is met."""
    worst_rate = max(abs(t.vs_schedule - 1) for t in trials)
    medians = {
        (rate, arrival): median([t.vs_schedule for t in trials if t.rate == rate and t.arrival == arrival])
        for rate in RATES
        for arrival in ARRIVALS
    }
    worst_median = max(abs(v - 1) for v in medians.values())
    rate_ok = worst_median <= GOAL_RATE
    p99 = {
        arrival: median(
            [t.lateness(99) for t in trials if t.rate == GOAL_RATE_FOR_LATENESS and t.arrival == arrival]
        )
        for arrival in ARRIVALS
    }
    late_ok = all(v < GOAL_LATENESS_P99_MS for v in p99.values())
    rate_text = (
        f"achieved send rate within {worst_median:.2%} of the schedule (median per configuration; "
        f"worst single trial {worst_rate:.2%}): **{'meets' if rate_ok else 'misses'}** the 1% goal"
    )
    p99_text = ", ".join(f"{a} {v:.2f} ms" for a, v in p99.items())
    late_text = (
        f"send lateness p99 at {GOAL_RATE_FOR_LATENESS} req/s {p99_text}: "
        f"**{'meets' if late_ok else 'misses'}** the {GOAL_LATENESS_P99_MS:g} ms goal"
    )
    return f"{rate_text}; {late_text}.", rate_ok, late_ok


def render_section(trials: list[Trial], facts: dict[str, str], command: str) -> str:
    sentence, _, _ = verdict(trials)
    run_command = (
        f"python -m loadbench run --target http://127.0.0.1:PORT --scenario benchmarks/locustfile_get.py "
        f"--rate R --arrival A --seed {SEED} -d {facts['duration']}s --warmup {facts['warmup']}s "
        "--no-sampler -q --out DIR"
    )
    poisson_off = [t.scheduled / (t.rate * t.window_s) - 1 for t in trials if t.arrival == "poisson"]
    failures = sum(t.failures for t in trials)
    counts = ", ".join(
        f"about {median([t.sent for t in trials if t.rate == rate]):,.0f} at {rate} req/s" for rate in RATES
    )
    unsent = sum(int(t.schedule.get("unsent") or 0) + int(t.schedule.get("dropped") or 0) for t in trials)
    backlog = max(int(t.schedule.get("max_backlog") or 0) for t in trials)
    return "\n".join(
        [
            SECTION,
            "",
            "Goal: on one core, against a fast loopback server, `loadbench run --rate` sends at the "
            "requested rate (within 1%) and on time: the p99 of send lateness (actual send − due time) "
            f"is under {GOAL_LATENESS_P99_MS:g} ms at {GOAL_RATE_FOR_LATENESS} requests/s. 1000 requests/s "
            "is shown for the trend; it has no lateness goal.",
            "",
            f"Result ({facts['date']}): {sentence}",
            "",
            "```",
            command,
            "```",
            "",
            f"runs, {facts['rounds']} rounds of each configuration interleaved (200 constant, 200 poisson, "
            "1000 constant, 1000 poisson, then again), each as a child process:",
            "",
            "```",
            run_command,
            "```",
            "",
            "Medians over the rounds:",
            "",
            *config_rows(trials),
            "",
            "- achieved req/s = the records whose due time (`intended_unix_s`) lies in the measured window "
            f"(`--warmup {facts['warmup']}s` after the load started, until it stopped: "
            f"{median([t.window_s for t in trials]):.2f} s) / the window's length. / schedule = those records "
            "/ the due times the seeded schedule puts in the window (regenerated with "
            "`loadbench.load.arrivals.arrival_offsets` from the run's start): the generator's own shortfall. "
            "/ target compares with the nominal rate; a Poisson schedule's count is itself random "
            f"(seed {SEED}'s windows hold {min(poisson_off):+.1%} to {max(poisson_off):+.1%} of "
            "rate × window), so the rate goal is judged on / schedule.",
            "- Lateness is measured per request as `start_unix_s − intended_unix_s` from `requests.csv`. "
            "`intended_unix_s` is the due time the dispatcher computed (the run's `started_unix_s` + the "
            "schedule's offset); `start_unix_s` is Locust's `start_time`, the `time.time()` that "
            "`FastHttpSession.request` takes before it builds and sends the request. Both come from the "
            "same wall clock in the same process, so no clock offset enters. Lateness therefore covers the "
            "dispatcher's wake-up (`gevent.sleep` to the due time), the hand-over to an idle user greenlet "
            "(`gevent.event.AsyncResult`), Locust's user loop and the task's code up to `client.get`; it does "
            "not cover the time from `start_time` to the bytes leaving the socket, which Locust counts in "
            "the latency instead. Percentiles are exact (numpy) over the window's requests of one run "
            f"({counts}); the table gives their median over the rounds, "
            "never a mean. A negative lateness (a send before its due time) would show as p50 < 0; "
            "`requests.csv` holds both times to the µs.",
            f"- Generator CPU = CPU time / wall time of the `loadbench run` process from Locust's "
            "`test_start` to `test_stopping` (marks written by the locustfile), spawning the open loop's "
            f"1000 idle senders included. Failed requests in all trials: {failures:,}; due times never "
            f"sent (unsent + dropped, whole runs): {unsent:,}; largest backlog of due times waiting for a "
            f"free sender: {backlog:,}.",
            "- Noise: the machine is shared with other engineers' test runs (load average "
            f"{facts['loadavg']} at the start): another tenant's process on the generator's core delays "
            "wake-ups and shows up directly as lateness, so the p99 column moves between rounds "
            "(its min – max is shown); compare configurations within one run of the script.",
            f"- Server: {facts['server']}; {facts['pinning']}.",
            f"- Machine: {facts['cpu']}, {facts['cores']} logical cores (shared, noisy); {facts['os']}.",
            f"- Versions: Python {facts['python']}, Locust {facts['locust']}, gevent {facts['gevent']}, "
            f"loadbench {facts['loadbench']}.",
            "",
            "Every trial:",
            "",
            *round_rows(trials),
            "",
        ]
    )


# --- main ------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Achieved rate and send lateness of `loadbench run --rate` on one core, against nginx.",
    )
    parser.add_argument("--rounds", type=int, default=3, help="trials of each configuration (default 3)")
    parser.add_argument(
        "--duration", type=parse_duration, default=20, help="each trial, warmup included (default 20s)"
    )
    parser.add_argument(
        "--warmup", type=parse_duration, default=2, help="excluded from the start of each trial (default 2s)"
    )
    parser.add_argument(
        "--write-docs", action="store_true", help=f"replace the results section of {DOCS.relative_to(REPO)}"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, run dirs)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.rounds < 1 or args.warmup >= args.duration:
        print("openloop_fidelity: --rounds must be at least 1 and --warmup below --duration", file=sys.stderr)
        return 2
    if shutil.which("nginx") is None and not Path("/usr/sbin/nginx").is_file():
        print("openloop_fidelity: nginx is not installed: `apt-get install nginx-light`", file=sys.stderr)
        return 2
    locust_bin = tool("locust")
    tool("loadbench")  # the venv's loadbench: `python -m loadbench` below runs it
    gen_pin, server_pin, pin_line = pinning()
    command = shlex.join(
        ["python", "benchmarks/openloop_fidelity.py", *(sys.argv[1:] if argv is None else argv)]
    )
    loadavg = ", ".join(f"{x:.2f}" for x in os.getloadavg())

    workdir = Path(tempfile.mkdtemp(prefix="loadbench-openloop-"))
    server, url = start_server("nginx", workdir, server_pin)
    trials: list[Trial] = []
    try:
        server_line = describe_server("nginx")
        print(f"server: {server_line} at {url}; {pin_line}; load average {loadavg}")
        for n in range(1, args.rounds + 1):
            for rate in RATES:
                for arrival in ARRIVALS:
                    t = run_trial(url, rate, arrival, args.duration, args.warmup, workdir, gen_pin, n)
                    trials.append(t)
                    print(
                        f"round {n}: {rate:5} req/s {arrival:8}  achieved {t.achieved_rps:8.1f} req/s "
                        f"({t.sent:,} / {t.scheduled:,} scheduled)  lateness p50 {t.lateness(50):.2f} "
                        f"p99 {t.lateness(99):.2f} max {float(t.lateness_ms.max()):.1f} ms  "
                        f"> {LATE_MS:g} ms late {t.late_share:.1%}",
                        flush=True,
                    )
    except (BenchError, subprocess.TimeoutExpired) as exc:
        print(f"openloop_fidelity: {exc} (kept {workdir})", file=sys.stderr)
        return 1
    finally:
        stop_process(server)

    facts = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "rounds": str(args.rounds),
        "duration": str(args.duration),
        "warmup": str(args.warmup),
        "loadavg": loadavg,
        "server": server_line,
        "pinning": pin_line,
        "cpu": cpu_model(),
        "cores": str(os.cpu_count()),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "locust": version_of([str(locust_bin), "--version"], r"locust\s+(\S+)"),
        "gevent": version_of([sys.executable, "-c", "import gevent; print(gevent.__version__)"], r"(\S+)"),
        "loadbench": version_of([sys.executable, "-m", "loadbench", "--version"], r"loadbench\s+(\S+)"),
    }
    section = render_section(trials, facts, command)
    print()
    print(section)
    if args.write_docs:
        write_docs(section, DOCS, SECTION)
        print(f"wrote {DOCS}")
    if args.keep:
        print(f"kept {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
