"""What-if validation: queueing-theory and Monte-Carlo predictions against measured latency.

    python benchmarks/whatif_validation.py [--step-duration 60s] [--servers 1,2] [--cv 0.5]

The demo serves as an M/G/c FIFO queue (``loadbench demo --workers C``, lognormal service times
with mean 10 ms and coefficient of variation ``--cv``, seeded), pinned to one core, and for each
C one sweep, pinned to the other (``taskset``; on two shared cores an unpinned demo's service
time and overhead grow with the load, which no queueing model fitted at low load can know):

    loadbench sweep --target URL --rates R30,R50,R70,R85 --arrival poisson \\
        --server-time-header X-Service-Time-Ms --whatif --whatif-servers C ...

sends open-loop Poisson arrivals at 30, 50, 70 and 85 % utilisation (of the nominal mean), fits
the queue on the lowest step (the server's own time per request; each request's wait replayed
out of its overhead) and predicts every step (`loadbench.whatif.validate`). Prints, per step and
method, predicted and measured p50 and p99 and the relative error: the Markdown table of
``docs/benchmarks.md``. The goal (issue 18): within 15 % up to 70 % utilisation. Then Erlang C's
mean wait against the simulated one for exponential service (goal: within 10 %).

Exit codes: 0 done (whatever the errors), 1 a sweep failed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

MEAN_MS = 10.0
UTILISATIONS = (0.3, 0.5, 0.7, 0.85)


def pins() -> tuple[list[str], list[str], str]:
    """taskset prefixes for the load generator and the demo: one core each, so that neither
    slows the other as the load grows (the model cannot know a service time that grows with it)."""
    cpus = sorted(os.sched_getaffinity(0))
    taskset = shutil.which("taskset")
    if taskset is None or len(cpus) < 2:
        return [], [], "not pinned (taskset missing or one CPU)"
    return (
        [taskset, "-c", str(cpus[0])],
        [taskset, "-c", str(cpus[1])],
        (f"generator pinned to CPU {cpus[0]}, demo to CPU {cpus[1]} (taskset)"),
    )


def start_demo(servers: int, cv: float, pin: list[str]) -> tuple[subprocess.Popen[str], str]:
    demo = subprocess.Popen(
        [
            *pin, sys.executable, "-m", "loadbench.demo", "--port", "0", "--workers", str(servers),
            "--latency-ms", f"{MEAN_MS:g}", "--service-dist", "lognormal", "--service-cv", f"{cv:g}", "--seed", "1",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert demo.stdout is not None
    line = demo.stdout.readline()
    found = re.search(r"http://[0-9.]+:[0-9]+", line)
    if not found:
        demo.kill()
        raise SystemExit(f"the demo did not start: {line!r}")
    return demo, found.group(0)


def sweep(servers: int, cv: float, step: str, out: Path, pinned: tuple[list[str], list[str], str]) -> dict:
    gen_pin, demo_pin, _ = pinned
    demo, url = start_demo(servers, cv, demo_pin)
    rates = ",".join(f"{u * servers * 1000.0 / MEAN_MS:g}" for u in UTILISATIONS)
    command = [
        *gen_pin, sys.executable, "-m", "loadbench", "sweep", "--target", url, "--rates", rates,
        "--arrival", "poisson", "--step-duration", step, "--warmup", "5s",
        "--server-time-header", "X-Service-Time-Ms", "--whatif", "--whatif-servers", str(servers),
        "--no-sampler", "--quiet", "--out", str(out), "--force",
    ]  # fmt: skip
    try:
        done = subprocess.run(command, capture_output=True, text=True)
    finally:
        demo.terminate()
        demo.wait(10)
    if done.returncode != 0:
        raise SystemExit(
            f"sweep with {servers} worker(s) failed ({done.returncode}): {done.stderr.strip()[-500:]}"
        )
    return json.loads((out / "sweep.json").read_text())["whatif"]


def ci(step: dict, key: str) -> str:
    found = (step.get("measured_ci_ms") or {}).get(key)
    return f" ({found[0]:.1f}–{found[1]:.1f})" if found and None not in found else ""


def rows(servers: int, whatif: dict) -> list[str]:
    out = []
    for step in whatif["steps"]:
        for p in step["predicted"]:
            lat, meas, err = p["latency_ms"] or {}, step["measured_ms"], p["error"]

            def pct(e: float | None) -> str:
                return "–" if e is None else f"{e * 100:+.1f} %"

            out.append(
                f"| {servers} | {step['utilisation']:.0%}{' (fit)' if step['fit'] else ''} | {step['rate_rps']:g} | "
                f"{p['method']} | {lat.get('p50', float('nan')):.1f} | {meas['p50']:.1f} | {pct(err['p50'])} | "
                f"{lat.get('p99', float('nan')):.1f} | {meas['p99']:.1f}{ci(step, 'p99')} | {pct(err['p99'])} |"
            )
    return out


def erlang_against_simulation() -> list[str]:
    """Erlang C's mean wait against the simulated one, exponential service (no server involved)."""
    import numpy as np

    from loadbench.whatif.queueing import Queue, erlang_c_mmc
    from loadbench.whatif.simulate import simulate

    service = np.random.default_rng(7).exponential(MEAN_MS, 400_000)
    lines = [
        "| servers | utilisation | Erlang C mean wait (ms) | simulated (ms) | difference |",
        "|---:|---:|---:|---:|---:|",
    ]
    for servers in (1, 2, 4):
        for util in UTILISATIONS:
            queue = Queue(
                util * servers * 1000.0 / float(service.mean()), servers, service, np.zeros_like(service)
            )
            exact = erlang_c_mmc(queue, (0.5,)).wait_mean
            sim = simulate(queue, (0.5,), requests=1_000_000, replications=10, seed=3)
            lines.append(
                f"| {servers} | {util:.0%} | {exact:.2f} | {sim.wait_mean:.2f} | {exact / sim.wait_mean - 1:+.1%} |"
            )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--step-duration", default="60s")
    parser.add_argument("--servers", default="1,2")
    parser.add_argument("--cv", type=float, default=0.5)
    args = parser.parse_args()
    lines = [
        f"Demo: lognormal service, mean {MEAN_MS:g} ms, CV {args.cv:g}, FIFO; steps of {args.step_duration} "
        "(5 s warm-up), Poisson arrivals; fitted on the 30 % step.",
        "",
        "| servers | utilisation | rate (req/s) | method | p50 predicted | p50 measured | error | p99 predicted "
        "| p99 measured (95 % interval) | error |",
        "|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    verdicts = []
    pinned = pins()
    lines[0] += f" {pinned[2]}."
    with tempfile.TemporaryDirectory(prefix="whatif-validation-") as tmp:
        for servers in (int(c) for c in args.servers.split(",")):
            whatif = sweep(servers, args.cv, args.step_duration, Path(tmp) / f"c{servers}", pinned)
            if not whatif.get("predicted"):
                print(f"{servers} worker(s): not predicted: {whatif.get('why')}", file=sys.stderr)
                return 1
            lines += rows(servers, whatif)
            verdicts.append(f"- {servers} worker(s): {whatif['verdict']}")
            print("\n".join(lines[-8:]), flush=True)
    print("\n".join([*lines, "", *verdicts, "", *erlang_against_simulation()]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
