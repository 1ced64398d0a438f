"""loadbench against ``hey`` on real model servers: median latency and throughput at the same
concurrency, the same request, the same server.

    python benchmarks/real_servers.py [--servers mlserver,kserve] [--concurrency 4]
        [--duration 10] [--warmup 2] [--repeats 3]

Each server is the one of the conformance tests (``tests/real/server_mlserver.py``,
``tests/real/server_kserve.py``: the digits classifier, its venv built on first use), started
once. The request is one Open Inference Protocol infer body (the first held-out digit, FP64
``[1, 64]``) POSTed to ``/v2/models/digits/infer``, by both tools, with ``--concurrency``
connections each sending back to back. Per repetition, one after the other (the CPU is shared:
nothing else of ours runs at once), hey first:

- ``hey -z Ds -c C -m POST -T application/json -D BODY -o csv URL``: one line per request;
  those that started in the first ``--warmup`` seconds are dropped; p50 of the others'
  ``response-time`` (hey writes it to 0.1 ms), throughput = their count / (duration - warmup);
- ``loadbench run --scenario kserve_v2 --payload BODY -u C -d Ds --warmup Ws --quiet
  --no-sampler``: ``summary.json``'s ``latency_ms.p50`` and ``throughput_rps`` (no sampler: the
  request path alone is compared; the sampler's cost is docs/benchmarks.md's own benchmark).

Every answer must be a 200, or the step fails. Prints a Markdown table: the median over the
repetitions of each figure, loadbench minus hey (p50) and loadbench over hey (throughput), and
whether the goals hold (p50 within 0.5 ms, throughput at least 0.9 of hey's). Traffic goes to
127.0.0.1 only; each step has a time limit.

Exit codes: 0 done (goals met or not: the table says), 1 a step failed, 2 bad options or no hey.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "tests" / "real"), str(REPO / "tests")]

import pytest  # noqa: E402 - the server modules fail and skip through pytest's exceptions
from server_kserve import start_kserve  # noqa: E402
from server_mlserver import digits_rows, start_mlserver, v2_body  # noqa: E402

P50_GOAL_MS = 0.5
THROUGHPUT_GOAL = 0.9
PATH = "/v2/models/digits/infer"
STARTERS: dict[str, Callable[[Path], AbstractContextManager[Any]]] = {
    "mlserver": start_mlserver,
    "kserve": start_kserve,
}


class StepFailed(Exception):
    """A step that did not give figures; the message says why."""


@dataclass
class Figures:
    """One tool's figures over the repetitions."""

    p50_ms: list[float] = field(default_factory=list)
    rps: list[float] = field(default_factory=list)
    requests: list[int] = field(default_factory=list)

    def add(self, p50_ms: float, rps: float, requests: int) -> None:
        self.p50_ms.append(p50_ms)
        self.rps.append(rps)
        self.requests.append(requests)


def run_hey(url: str, body: Path, args: argparse.Namespace) -> tuple[float, float, int]:
    """(p50 ms, requests/s, requests) of one hey run, the first ``--warmup`` seconds dropped."""
    command = [
        "hey", "-z", f"{args.duration}s", "-c", str(args.concurrency), "-m", "POST",
        "-T", "application/json", "-D", str(body), "-o", "csv", url + PATH,
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=args.duration + 60, check=False)
    if done.returncode != 0:
        raise StepFailed(f"hey exited {done.returncode}: {done.stderr.strip()[-300:]}")
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    statuses = {row["status-code"] for row in rows}
    if statuses != {"200"}:
        raise StepFailed(f"hey got statuses {sorted(statuses)}, not only 200")
    kept = [float(row["response-time"]) * 1000 for row in rows if float(row["offset"]) >= args.warmup]
    if not kept:
        raise StepFailed("hey recorded no request after the warmup")
    return statistics.median(kept), len(kept) / (args.duration - args.warmup), len(kept)


def run_loadbench(url: str, body: Path, out: Path, args: argparse.Namespace) -> tuple[float, float, int]:
    """(p50 ms, requests/s, requests) from one ``loadbench run``'s summary.json."""
    command = [
        sys.executable, "-m", "loadbench", "run", "--target", url, "--scenario", "kserve_v2",
        "--payload", body.read_text(encoding="utf-8"), "-u", str(args.concurrency),
        "-d", f"{args.duration}s", "--warmup", f"{args.warmup}s", "--quiet", "--no-sampler", "--out", str(out),
    ]  # fmt: skip
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=args.duration + 120, cwd=REPO, check=False
    )
    if done.returncode != 0:
        raise StepFailed(f"loadbench exited {done.returncode}: {done.stderr.strip()[-300:]}")
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    if summary["requests"]["errors"]:
        raise StepFailed(f"loadbench saw {summary['requests']['errors']} errors: {summary['errors'][:1]}")
    return (
        float(summary["latency_ms"]["p50"]),
        float(summary["throughput_rps"]),
        int(summary["requests"]["ok"]),
    )


def bench_server(name: str, work: Path, args: argparse.Namespace) -> Iterator[tuple[str, str, Figures]]:
    """Start the server once; alternate hey and loadbench ``--repeats`` times."""
    body = work / "body.json"
    body.write_text(json.dumps(v2_body(digits_rows()[0][0])), encoding="utf-8")
    hey, ours = Figures(), Figures()
    with STARTERS[name](work / name) as server:
        for repeat in range(args.repeats):
            hey.add(*run_hey(server.url, body, args))
            ours.add(*run_loadbench(server.url, body, work / f"{name}-run{repeat}", args))
            print(
                f"{name} repeat {repeat + 1}: hey p50 {hey.p50_ms[-1]:.2f} ms {hey.rps[-1]:.0f}/s; "
                f"loadbench p50 {ours.p50_ms[-1]:.2f} ms {ours.rps[-1]:.0f}/s",
                file=sys.stderr,
            )
    yield name, "hey", hey
    yield name, "loadbench", ours


def p50_verdict(delta_ms: float) -> str:
    """The p50 goal: loadbench's median within `P50_GOAL_MS` of hey's. Far below hey's is no
    overhead of loadbench's but the server answering the two clients differently: said apart."""
    if abs(delta_ms) <= P50_GOAL_MS:
        return f"meets ±{P50_GOAL_MS} ms"
    return f"misses +{P50_GOAL_MS} ms" if delta_ms > 0 else "below hey's: the server answered hey slower"


def table(results: list[tuple[str, str, Figures]], args: argparse.Namespace) -> str:
    """The Markdown table: medians per server and tool, then loadbench against hey."""
    lines = [
        f"| server | tool | p50 ms (median of {args.repeats}) | throughput req/s | requests per run "
        f"| loadbench − hey p50 | loadbench / hey throughput |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    by_server: dict[str, dict[str, Figures]] = {}
    for server, tool, figures in results:
        by_server.setdefault(server, {})[tool] = figures
    for server, tools in by_server.items():
        hey_p50, hey_rps = statistics.median(tools["hey"].p50_ms), statistics.median(tools["hey"].rps)
        for tool, figures in tools.items():
            p50, rps = statistics.median(figures.p50_ms), statistics.median(figures.rps)
            delta = ratio = ""
            if tool == "loadbench":
                dp50, r = p50 - hey_p50, rps / hey_rps
                delta = f"{dp50:+.2f} ms ({p50_verdict(dp50)})"
                ratio = f"{r:.2f}× ({'meets' if r >= THROUGHPUT_GOAL else 'misses'} ≥ {THROUGHPUT_GOAL}×)"
            requests = int(statistics.median(figures.requests))
            lines.append(f"| {server} | {tool} | {p50:.2f} | {rps:.0f} | {requests:,} | {delta} | {ratio} |")
    return "\n".join(lines)


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", default="mlserver,kserve", help="comma-separated: mlserver, kserve")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--duration", type=int, default=10, help="seconds per run, warmup included")
    parser.add_argument("--warmup", type=int, default=2, help="seconds dropped at the start of each run")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    args.servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    unknown = [s for s in args.servers if s not in STARTERS]
    if unknown:
        parser.error(f"unknown server {unknown[0]!r}; known: {', '.join(STARTERS)}")
    if args.concurrency < 1 or args.repeats < 1 or not 0 <= args.warmup < args.duration:
        parser.error("--concurrency and --repeats must be 1 or more, and 0 <= --warmup < --duration")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if shutil.which("hey") is None:
        print("real_servers.py: the hey command is not installed (apt-get install hey)", file=sys.stderr)
        return 2
    results: list[tuple[str, str, Figures]] = []
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="loadbench-real-bench-") as tmp:
        for name in args.servers:
            try:
                results += list(bench_server(name, Path(tmp), args))
            except (StepFailed, pytest.skip.Exception, pytest.fail.Exception) as exc:
                print(f"real_servers.py: {name}: {exc}", file=sys.stderr)
                return 1
    print(table(results, args))
    # The figures are only as good as the machine was quiet: say how busy it was.
    print(
        f"\n{os.cpu_count()} cores, 1-minute load average {load_before:.2f} before and "
        f"{os.getloadavg()[0]:.2f} after; concurrency {args.concurrency}, {args.duration} s runs "
        f"({args.warmup} s dropped), {args.repeats} repetitions alternating hey and loadbench"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
