"""In-process targets: loadbench's per-request latency against a direct timed loop over the same call,
and the serving overhead of the same model behind the demo's HTTP server.

    python benchmarks/inprocess_overhead.py [--rounds 3] [--duration 5] [--users 1]

Targets: ``python://loadbench.demo.callables:digits`` (the demo's full-precision model, numpy) and
``onnx://digits.onnx`` (the same model written by `loadbench.demo.onnxmodel`, ONNX Runtime, CPU),
each fed loadbench/data/digits.jsonl. Each round runs, one after the other:

- the direct loop (this file with ``--direct URL``, its own process): the target opened by
  `loadbench.protocols.inprocess.open_target`, every row prepared once, then for DURATION a plain
  loop calling it with the rows in turn, each call timed with ``perf_counter`` around the call; p50;
- ``loadbench run --target URL --data digits.jsonl -u USERS -d DURATION --warmup 1s --no-sampler``:
  p50 of ``summary.json``;
- served (``--served``, the default): ``loadbench demo`` in its own process and ``loadbench run
  --scenario json_post --data digits.jsonl`` against it with the same users: its p50, minus the
  python:// p50 of the round, is the serving overhead (parsing, HTTP, the server's threads, loopback).

Goal: loadbench's p50 within 0.2 ms of the direct loop's. Prints a Markdown table for
docs/benchmarks.md. Exit codes: 0 done, 1 a trial failed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from recording_overhead import cpu_model

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "loadbench" / "data" / "digits.jsonl"
PYTHON_TARGET = "python://loadbench.demo.callables:digits"
GOAL_MS = 0.2


def direct(url: str, duration_s: float) -> None:
    """The direct loop (module docstring); prints its p50 and call count as JSON."""
    from loadbench.protocols.inprocess import open_target

    target = open_target(url)
    rows = [{k: v for k, v in json.loads(line).items() if not k.startswith("_")} for line in DATA.open()]
    prepared = [target.prepare(row) for row in rows]
    call, clock = target.call, time.perf_counter
    times: list[float] = []
    deadline = clock() + duration_s
    index = 0
    while clock() < deadline:
        argument = prepared[index % len(prepared)]
        index += 1
        start = clock()
        call(argument)
        times.append((clock() - start) * 1000.0)
    print(json.dumps({"p50_ms": statistics.median(times), "calls": len(times)}))


def loadbench_p50(target: str, users: int, duration_s: float, out: Path, *scenario: str) -> dict[str, Any]:
    command = [
        sys.executable, "-m", "loadbench", "run", "--target", target, "--data", str(DATA), *scenario,
        "-u", str(users), "-d", f"{duration_s}s", "--warmup", "1s", "--no-sampler", "-q", "--out", str(out),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=duration_s + 120, cwd=REPO)
    if result.returncode != 0:
        raise RuntimeError(f"loadbench run failed ({result.returncode}): {result.stderr[-2000:]}")
    summary = json.loads((out / "summary.json").read_text())
    return {"p50_ms": summary["latency_ms"]["p50"], "calls": summary["requests"]["total"]}


def direct_p50(target: str, duration_s: float) -> dict[str, Any]:
    command = [sys.executable, __file__, "--direct", target, "--duration", str(duration_s)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=duration_s + 60, cwd=REPO)
    if result.returncode != 0:
        raise RuntimeError(f"direct loop failed: {result.stderr[-2000:]}")
    answer: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return answer


def start_demo() -> tuple[subprocess.Popen[str], str]:
    demo = subprocess.Popen(
        [sys.executable, "-m", "loadbench", "demo", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    assert demo.stdout is not None
    line = demo.stdout.readline()
    url = next(word for word in line.split() if word.startswith("http://"))
    return demo, url


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per trial (default 5)")
    parser.add_argument("--users", type=int, default=1)
    parser.add_argument("--no-served", dest="served", action="store_false", help="skip the served runs")
    parser.add_argument("--direct", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.direct:
        direct(args.direct, args.duration)
        return 0
    from loadbench.demo.model import build_model
    from loadbench.demo.onnxmodel import write_onnx

    work = Path(tempfile.mkdtemp(prefix="lb-inprocess-"))
    targets = [PYTHON_TARGET, f"onnx://{write_onnx(build_model(), work / 'digits.onnx')}"]
    rows: dict[str, dict[str, list[float]]] = {t: {"direct": [], "loadbench": []} for t in targets}
    served: list[float] = []
    try:
        for number in range(args.rounds):
            for target in targets:
                rows[target]["direct"].append(direct_p50(target, args.duration)["p50_ms"])
                out = work / f"r{number}-{targets.index(target)}"
                rows[target]["loadbench"].append(
                    loadbench_p50(target, args.users, args.duration, out)["p50_ms"]
                )
            if args.served:
                demo, url = start_demo()
                try:
                    trial = loadbench_p50(
                        url, args.users, args.duration, work / f"s{number}", "--scenario", "json_post"
                    )
                    served.append(trial["p50_ms"])
                finally:
                    demo.terminate()
                    demo.wait(timeout=10)
    except RuntimeError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(
        f"Result ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {cpu_model()}, Python {sys.version.split()[0]}), "
    )
    print(f"{args.users} user(s), {args.duration:g} s trials, {args.rounds} rounds:\n")
    print(
        "| target | direct loop p50 ms (per round) | loadbench p50 ms (per round) | median difference | goal |"
    )
    print("|---|---|---|---:|---|")
    for target in targets:
        d, lb = rows[target]["direct"], rows[target]["loadbench"]
        diff = statistics.median(b - a for a, b in zip(d, lb, strict=True))
        name = target if target.startswith("python") else "onnx://digits.onnx"
        verdict = "meets" if abs(diff) <= GOAL_MS else "misses"
        print(
            f"| `{name}` | {', '.join(f'{v:.4f}' for v in d)} | {', '.join(f'{v:.4f}' for v in lb)} "
            f"| {diff:+.4f} ms | {verdict} (≤ {GOAL_MS} ms) |"
        )
    if served:
        overhead = [s - p for s, p in zip(served, rows[PYTHON_TARGET]["loadbench"], strict=True)]
        print(
            f"\nServed (`loadbench demo`, `json_post`, the same model and rows): p50 "
            f"{', '.join(f'{v:.3f}' for v in served)} ms; serving overhead (served p50 − python:// p50) "
            f"median **{statistics.median(overhead):.3f} ms**."
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
