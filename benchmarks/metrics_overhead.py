"""The live endpoint's cost: requests per generator CPU second with and without ``--metrics-port``.

    python benchmarks/metrics_overhead.py [--rounds 5] [--duration 10] [--users 8] [--no-nginx]

The generator saturates one CPU against nginx on the other (`recording_overhead`'s server and
locustfile, both pinned with ``taskset``); each round runs, one after the other, ``loadbench run
--scenario LOCUSTFILE -u USERS -d DURATION --warmup 0s --no-sampler`` without, then with
``--metrics-port PORT`` (every other round the other way round), a thread of this script scraping ``/metrics`` every second while it runs
(a Prometheus at a 1 s scrape interval: 15 times its default rate). The figure is requests per
CPU second of the load phase (the locustfile's marks, as in ``recording_overhead.py``), the
median over the rounds of each, and their ratio. Goal: the endpoint costs at most 3 %.

Exit codes: 0 done (the table says whether the goal holds), 1 a trial failed, 2 bad options.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import tempfile
import threading
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from recording_overhead import (  # noqa: E402  (the shared pieces of benchmarks/)
    LOCUSTFILE,
    BenchError,
    Trial,
    cpu_model,
    free_port,
    load_phase,
    pinning,
    run_logged,
    start_server,
    stop_process,
    tool,
)

GOAL = 0.03


class Scraper(threading.Thread):
    """GETs ``url`` every ``interval_s`` until stopped; counts the scrapes that answered."""

    def __init__(self, url: str, interval_s: float = 1.0) -> None:
        super().__init__(daemon=True)
        self.url, self.interval_s = url, interval_s
        self.done = threading.Event()
        self.scrapes = 0
        self.bytes = 0

    def run(self) -> None:
        while not self.done.wait(self.interval_s):
            try:
                with urllib.request.urlopen(self.url, timeout=5) as response:
                    self.bytes = len(response.read())
                    self.scrapes += 1
            except OSError:  # not serving yet, or no longer
                pass


def trial(url: str, args: argparse.Namespace, workdir: Path, pin: list[str], name: str, live: bool) -> Trial:
    out = workdir / name
    command = [*pin, str(tool("loadbench")), "run", "--target", url, "--scenario", str(LOCUSTFILE)]
    command += ["-u", str(args.users), "-r", str(args.users), "-d", f"{args.duration}s", "--warmup", "0s"]
    command += ["--quiet", "--no-sampler", "--out", str(out)]
    scraper = None
    if live:
        port = free_port()
        command += ["--metrics-port", str(port), "--metrics-linger", "0s"]
        scraper = Scraper(f"http://127.0.0.1:{port}/metrics")
        scraper.start()
    try:
        code, _, phase = run_logged(command, workdir, name, args.duration + 180)
    finally:
        if scraper is not None:
            scraper.done.set()
            scraper.join()
    log = workdir / f"{name}.log"
    if code != 0:
        raise BenchError(f"loadbench run exited with code {code}; see {log}")
    if scraper is not None and scraper.scrapes < args.duration // 2:
        raise BenchError(f"only {scraper.scrapes} scrapes answered in {args.duration} s")
    with open(out / "requests.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    failures = sum(row["ok"] != "1" for row in rows)
    if scraper is not None:
        print(f"  {name}: {scraper.scrapes} scrapes of {scraper.bytes:,} bytes", file=sys.stderr)
    return Trial("loadbench", len(rows), failures, *load_phase(phase, log))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=int, default=10, help="seconds per trial")
    parser.add_argument("--users", type=int, default=8)
    parser.add_argument("--no-nginx", action="store_true", help="the asyncio server instead of nginx")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.duration < 2 or args.users < 1:
        parser.error("--rounds and --users must be 1 or more, --duration 2 or more")
    gen_pin, server_pin, pinned = pinning()
    without: list[float] = []
    with_live: list[float] = []
    with tempfile.TemporaryDirectory(prefix="loadbench-metrics-bench-") as tmp:
        work = Path(tmp)
        try:
            server, url = start_server("asyncio" if args.no_nginx else "nginx", work, server_pin)
        except BenchError as exc:
            print(f"metrics_overhead: {exc} (nginx: `make benchmark-setup`, or --no-nginx)", file=sys.stderr)
            return 1
        try:
            for n in range(args.rounds):
                # ABBA: the first trial of a round goes first every other round, so that a drift
                # of the machine across a round does not fall on one side.
                if n % 2:
                    live = trial(url, args, work, gen_pin, f"on-{n}", live=True)
                    plain = trial(url, args, work, gen_pin, f"off-{n}", live=False)
                else:
                    plain = trial(url, args, work, gen_pin, f"off-{n}", live=False)
                    live = trial(url, args, work, gen_pin, f"on-{n}", live=True)
                without.append(plain.per_cpu_s)
                with_live.append(live.per_cpu_s)
                print(
                    f"round {n + 1}: without {plain.per_cpu_s:,.0f} req/CPU-s, "
                    f"with --metrics-port {live.per_cpu_s:,.0f} req/CPU-s",
                    file=sys.stderr,
                )
        except BenchError as exc:
            print(f"metrics_overhead: {exc}", file=sys.stderr)
            return 1
        finally:
            stop_process(server)
    off, on = statistics.median(without), statistics.median(with_live)
    cost = 1 - on / off
    verdict = "meets" if cost <= GOAL else "misses"
    print("| loadbench run | requests per CPU second, per round | median | vs without |")
    print("|---|---|---:|---:|")
    print(f"| without `--metrics-port` | {', '.join(f'{v:,.0f}' for v in without)} | {off:,.0f} | 1.00x |")
    print(
        f"| with `--metrics-port`, scraped every 1 s | {', '.join(f'{v:,.0f}' for v in with_live)} "
        f"| {on:,.0f} | {on / off:.3f}x |"
    )
    print(
        f"\nThe endpoint costs {cost:+.1%} of the generator's requests per CPU second ({verdict} the "
        f"{GOAL:.0%} goal). {cpu_model()}; {pinned}; {args.users} users, {args.duration} s trials, "
        f"{args.rounds} rounds, alternating which goes first."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
