"""loadbench against ``hey`` on real model servers: median latency and throughput at the same
concurrency, the same request, the same server.

    python benchmarks/real_servers.py [--servers mlserver,kserve,torchserve,triton,llamacpp]
        [--concurrency 4] [--duration 10] [--warmup 2] [--repeats 3]

Each server is the one of the conformance tests (``tests/real/server_*.py``: its venv built on
first use, ``make real-venvs``), started once. Both tools send one and the same request, with
``--concurrency`` connections each sending back to back:

- MLServer and KServe (the digits classifier): the Open Inference Protocol infer body of the
  first held-out digit, FP64 ``[1, 64]``, to ``/v2/models/digits/infer``; loadbench's
  ``kserve_v2`` scenario with that ``--payload``;
- Triton (PyTriton, the digits TorchScript model): the same row as FP32 ``[1, 64]``;
  ``kserve_v2 --model digits --payload``;
- TorchServe (the same model, one worker, batchSize 4): ``{"inputs": [row]}`` to
  ``/predictions/digits``; ``torchserve --model digits --payload``;
- llama.cpp (llama-cpp-python, the 0.9 MB GGUF of the tests, requests queued, not interrupted):
  a non-streamed ``/v1/completions`` of 16 tokens at temperature 0, at concurrency 1 whatever
  ``--concurrency`` says (the server generates one answer at a time: more connections only
  queue); ``openai_completions --no-stream --max-tokens 16 --temperature 0``.

The server's processes run on one CPU and the client on another (``taskset``; ``--no-pin``: both
share every CPU): a client's own CPU per request then costs the server nothing, so the figures
compare what each client adds to the latency and whether it can keep the server busy, not how
much CPU it takes from a server beside it (on a shared machine, Python's client takes several
times hey's). Per repetition, one after the other (nothing else of ours runs at once), hey first:

- ``hey -z Ds -c C -m POST -T application/json -D BODY -o csv URL``: one line per request;
  those that started in the first ``--warmup`` seconds are dropped; p50 of the others'
  ``response-time`` (hey writes it to 0.1 ms), throughput = their count / (duration - warmup);
- ``loadbench run --scenario S ... -u C -d Ds --warmup Ws --quiet --no-sampler``:
  ``summary.json``'s ``latency_ms.p50`` and ``throughput_rps`` (no sampler: the request path
  alone is compared; the sampler's cost is docs/benchmarks.md's own benchmark).

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
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "tests" / "real"), str(REPO / "tests")]

import psutil  # noqa: E402
import pytest  # noqa: E402 - the server modules fail and skip through pytest's exceptions
from helpers import DIGITS  # noqa: E402
from server_kserve import start_kserve  # noqa: E402
from server_llamacpp import start_llamacpp  # noqa: E402
from server_mlserver import digits_rows, start_mlserver, v2_body  # noqa: E402
from server_torchserve import torchserve  # noqa: E402
from server_triton import triton  # noqa: E402

from loadbench.protocols.workloads import DEFAULT_PROMPT  # noqa: E402

P50_GOAL_MS = 0.5
THROUGHPUT_GOAL = 0.9
LLM_TOKENS = 16


@dataclass(frozen=True)
class Plan:
    """The one request both tools send to a started server, and loadbench's scenario options."""

    url: str  # the server's base URL
    path: str  # what hey POSTs to
    body: dict[str, Any]
    scenario: tuple[str, ...]  # loadbench's --scenario and its options, without the body
    payload: bool = True  # loadbench gets the body as --payload (an LLM scenario builds its own)
    concurrency: int | None = None  # the server's own limit, overriding --concurrency


def v2_plan(url: str, *, datatype: str = "FP64", name: str = "input-0", model: bool = False) -> Plan:
    body = v2_body(digits_rows()[0][0], name)
    body["inputs"][0]["datatype"] = datatype
    scenario = ("--scenario", "kserve_v2", *(("--model", "digits") if model else ()))
    return Plan(url, "/v2/models/digits/infer", body, scenario)


def first_model(url: str) -> str:
    with urllib.request.urlopen(url + "/v1/models", timeout=10) as response:
        return str(json.loads(response.read())["data"][0]["id"])


def llamacpp_plan(server: Any) -> Plan:
    model = first_model(server.url)
    body = {
        "model": model,
        "temperature": 0.0,
        "prompt": DEFAULT_PROMPT,
        "max_tokens": LLM_TOKENS,
        "stream": False,
    }
    scenario = (
        "--scenario", "openai_completions", "--model", model, "--no-stream",
        "--max-tokens", str(LLM_TOKENS), "--temperature", "0",
    )  # fmt: skip
    return Plan(server.url, "/v1/completions", body, scenario, payload=False, concurrency=1)


@contextmanager
def started(name: str, work: Path) -> Iterator[tuple[Plan, int]]:
    """Start one server of the matrix; yield what both tools send to it, and its process id."""
    starters: dict[str, Callable[[], AbstractContextManager[Any]]] = {
        "mlserver": lambda: start_mlserver(work),
        "kserve": lambda: start_kserve(work),
        "torchserve": lambda: torchserve(work, DIGITS),
        "triton": lambda: triton(work, DIGITS),
        "llamacpp": lambda: start_llamacpp(work),
    }
    with starters[name]() as server:
        pid = server.server.process.pid
        if name in ("mlserver", "kserve"):
            yield v2_plan(server.url), pid
        elif name == "triton":
            row = server.offline["rows"][0]["inputs"]
            plan = v2_plan(server.url, datatype="FP32", name="inputs", model=True)
            plan.body["inputs"][0]["data"] = row
            yield plan, pid
        elif name == "torchserve":
            body = {"inputs": [server.offline["rows"][0]["inputs"]]}
            scenario = ("--scenario", "torchserve", "--model", "digits")
            yield Plan(server.inference, "/predictions/digits", body, scenario), pid
        else:
            yield llamacpp_plan(server), pid


SERVERS = ("mlserver", "kserve", "torchserve", "triton", "llamacpp")


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


def run_hey(plan: Plan, body: Path, concurrency: int, args: argparse.Namespace) -> tuple[float, float, int]:
    """(p50 ms, requests/s, requests) of one hey run, the first ``--warmup`` seconds dropped."""
    command = [
        *args.client_pin, "hey", "-z", f"{args.duration}s", "-c", str(concurrency), "-m", "POST",
        "-T", "application/json", "-D", str(body), "-o", "csv", plan.url + plan.path,
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


def run_loadbench(
    plan: Plan, out: Path, concurrency: int, args: argparse.Namespace
) -> tuple[float, float, int]:
    """(p50 ms, requests/s, requests) from one ``loadbench run``'s summary.json."""
    payload = ("--payload", json.dumps(plan.body)) if plan.payload else ()
    command = [
        *args.client_pin, sys.executable, "-m", "loadbench", "run", "--target", plan.url, *plan.scenario, *payload,
        "-u", str(concurrency), "-d", f"{args.duration}s", "--warmup", f"{args.warmup}s",
        "--quiet", "--no-sampler", "--out", str(out),
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


def bench_server(name: str, work: Path, args: argparse.Namespace) -> Iterator[tuple[str, int, str, Figures]]:
    """Start the server once; alternate hey and loadbench ``--repeats`` times."""
    body = work / f"{name}-body.json"
    hey, ours = Figures(), Figures()
    with started(name, work / name) as (plan, pid):
        if args.server_cpu is not None:
            pin_tree(pid, args.server_cpu)
        body.write_text(json.dumps(plan.body), encoding="utf-8")
        concurrency = plan.concurrency or args.concurrency
        for repeat in range(args.repeats):
            hey.add(*run_hey(plan, body, concurrency, args))
            ours.add(*run_loadbench(plan, work / f"{name}-run{repeat}", concurrency, args))
            print(
                f"{name} repeat {repeat + 1}: hey p50 {hey.p50_ms[-1]:.2f} ms {hey.rps[-1]:.0f}/s; "
                f"loadbench p50 {ours.p50_ms[-1]:.2f} ms {ours.rps[-1]:.0f}/s",
                file=sys.stderr,
            )
    yield name, concurrency, "hey", hey
    yield name, concurrency, "loadbench", ours


def pin_tree(pid: int, cpu: int) -> None:
    """Every thread of the server's process and its children onto ``cpu`` (``taskset -a -p``);
    processes it starts later inherit it."""
    for process in [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]:
        command = ["taskset", "-a", "-p", "-c", str(cpu), str(process.pid)]
        subprocess.run(command, capture_output=True, check=False, timeout=30)


def pinning(args: argparse.Namespace) -> str:
    """Set ``args.client_pin`` (a command prefix) and ``args.server_cpu``; say what was done."""
    cpus = sorted(os.sched_getaffinity(0))
    args.client_pin, args.server_cpu = [], None
    if args.no_pin or shutil.which("taskset") is None or len(cpus) < 2:
        return "not pinned: the server and the client share every CPU"
    args.client_pin, args.server_cpu = ["taskset", "-c", str(cpus[0])], cpus[-1]
    return f"the server's processes pinned to CPU {cpus[-1]}, the client (hey or loadbench) to CPU {cpus[0]}"


def p50_verdict(delta_ms: float) -> str:
    """The p50 goal: loadbench's median within `P50_GOAL_MS` of hey's. Far below hey's is no
    overhead of loadbench's but the server answering the two clients differently: said apart."""
    if abs(delta_ms) <= P50_GOAL_MS:
        return f"meets ±{P50_GOAL_MS} ms"
    return f"misses +{P50_GOAL_MS} ms" if delta_ms > 0 else "below hey's: the server answered hey slower"


def table(results: list[tuple[str, int, str, Figures]], args: argparse.Namespace) -> str:
    """The Markdown table: medians per server and tool, then loadbench against hey."""
    lines = [
        f"| server | connections | tool | p50 ms (median of {args.repeats}) | throughput req/s "
        f"| requests per run | loadbench − hey p50 | loadbench / hey throughput |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    by_server: dict[tuple[str, int], dict[str, Figures]] = {}
    for server, concurrency, tool, figures in results:
        by_server.setdefault((server, concurrency), {})[tool] = figures
    for (server, concurrency), tools in by_server.items():
        hey_p50, hey_rps = statistics.median(tools["hey"].p50_ms), statistics.median(tools["hey"].rps)
        for tool, figures in tools.items():
            p50, rps = statistics.median(figures.p50_ms), statistics.median(figures.rps)
            delta = ratio = ""
            if tool == "loadbench":
                dp50, r = p50 - hey_p50, rps / hey_rps
                delta = f"{dp50:+.2f} ms ({p50_verdict(dp50)})"
                ratio = f"{r:.2f}× ({'meets' if r >= THROUGHPUT_GOAL else 'misses'} ≥ {THROUGHPUT_GOAL}×)"
            requests = int(statistics.median(figures.requests))
            lines.append(
                f"| {server} | {concurrency} | {tool} | {p50:.2f} | {rps:.0f} | {requests:,} | {delta} | {ratio} |"
            )
    return "\n".join(lines)


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--servers", default=",".join(SERVERS), help=f"comma-separated, of: {', '.join(SERVERS)}"
    )
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--duration", type=int, default=10, help="seconds per run, warmup included")
    parser.add_argument("--warmup", type=int, default=2, help="seconds dropped at the start of each run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--no-pin",
        action="store_true",
        help="let the server and the client share every CPU (default: each on a CPU of its own, taskset)",
    )
    args = parser.parse_args(argv)
    args.servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    unknown = [s for s in args.servers if s not in SERVERS]
    if unknown:
        parser.error(f"unknown server {unknown[0]!r}; known: {', '.join(SERVERS)}")
    if args.concurrency < 1 or args.repeats < 1 or not 0 <= args.warmup < args.duration:
        parser.error("--concurrency and --repeats must be 1 or more, and 0 <= --warmup < --duration")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if shutil.which("hey") is None:
        print("real_servers.py: the hey command is not installed (apt-get install hey)", file=sys.stderr)
        return 2
    pinned = pinning(args)
    results: list[tuple[str, int, str, Figures]] = []
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
        f"{os.getloadavg()[0]:.2f} after; {pinned}; {args.duration} s runs "
        f"({args.warmup} s dropped), {args.repeats} repetitions alternating hey and loadbench"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
