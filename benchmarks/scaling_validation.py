"""Scaling validation: the USL fitted on a few replica counts against larger counts measured.

    python benchmarks/scaling_validation.py [--replicas 1,2,4,8,16] [--service-ms 20] \\
        [--step-duration 8s] [--resolution 0.05] [--slo 'p90<50ms'] [--balance round-robin]

Starts the demo's largest fleet once (``loadbench demo --replicas N``: N servers in one process,
each a FIFO queue of one worker with a fixed service time, so about 1000 / (service + overhead)
req/s a replica), pinned to one core, and runs, pinned to the other (``taskset``):

    loadbench sweep --targets FILE --replicas 1,2,4,8,16 --find-capacity --slo ... --arrival constant

whose count N sends to the first N replicas. Pinned so, the fleet shares one core, as replicas
share a host, a NIC or a GIL: what stops it scaling is real and measured, not modelled. Then,
for every prefix of the counts with at least three (1,2,4; 1,2,4,8; ...), the USL fitted on it
(`loadbench.analyze.scaling.fit_usl`) predicts each larger count measured; prints the
capacities, the fit of `scaling.json` and the table of predicted against measured capacity, as
Markdown for ``docs/scaling.md``.

``--analyze SWEEP_DIR`` prints the same for a sweep directory already measured (its
``scaling.json`` points, analysed again by this build).

Exit codes: 0 done (whatever the errors), 1 the sweep failed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from loadbench.analyze.scaling import HOLDS, analyze_scaling, fit_usl


def pins(enabled: bool) -> tuple[list[str], list[str], str]:
    """taskset prefixes for the load generator and the fleet: one core each."""
    cpus = sorted(os.sched_getaffinity(0))
    taskset = shutil.which("taskset")
    if not enabled or taskset is None or len(cpus) < 2:
        return [], [], "not pinned"
    return (
        [taskset, "-c", str(cpus[0])],
        [taskset, "-c", str(cpus[1])],
        f"generator pinned to CPU {cpus[0]}, the whole fleet to CPU {cpus[1]} (taskset)",
    )


def start_fleet(count: int, service_ms: float, pin: list[str]) -> tuple[subprocess.Popen[str], list[str]]:
    names = ",".join(f"replica-{k}" for k in range(1, count + 1))
    fleet = subprocess.Popen(
        [
            *pin, sys.executable, "-m", "loadbench.demo", "--port", "0", "--replicas", str(count),
            "--replica-names", names, "--workers", "1", "--latency-ms", f"{service_ms:g}",
            "--service-dist", "fixed",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert fleet.stdout is not None
    urls: list[str] = []
    while len(urls) < count:
        line = fleet.stdout.readline()
        if not line:
            raise SystemExit("the demo fleet did not start")
        found = re.search(r"http://[0-9.]+:[0-9]+", line)
        if found:
            urls.append(found.group(0))
    return fleet, urls


def prefix_checks(points: list[tuple[int, float]]) -> list[dict]:
    """Every prefix of at least three counts fitted; each larger count predicted."""
    rows = []
    for k in range(3, len(points)):
        fit = fit_usl(points[:k])
        for n, measured in points[k:]:
            predicted = fit.rps(n)
            rows.append(
                {
                    "fit_on": [p[0] for p in points[:k]],
                    "lambda": fit.lambda_rps,
                    "sigma": fit.sigma,
                    "kappa": fit.kappa,
                    "replicas": n,
                    "predicted": predicted,
                    "measured": measured,
                    "error": predicted / measured - 1.0,
                }
            )
    return rows


def _fmt(value: float | None, spec: str) -> str:
    return "–" if value is None else spec.format(value)


def markdown(scaling: dict, checks: list[dict], settings: str) -> str:
    lines = [
        settings,
        "",
        "| replicas | capacity | efficiency | USL fitted | residual | steps |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for p in scaling["points"]:
        cells = [
            str(p["replicas"]),
            _fmt(p.get("capacity_rps"), "{:,.1f} req/s"),
            _fmt(p.get("efficiency"), "{:.1%}"),
            _fmt(p.get("fitted_rps"), "{:,.1f}"),
            _fmt(p.get("residual"), "{:+.1%}"),
            str(p.get("steps")),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    fit = scaling["fit"]
    if fit.get("fitted"):
        lines += [
            "",
            f"Fit on every count ({fit['model']}): λ = {fit['lambda_rps']:,.1f} req/s, σ = {fit['sigma']:.4g}, "
            f"κ = {fit['kappa']:.4g}, "
            f"peak {fit['peak_replicas'] if fit['peak_replicas'] is not None else 'none'}"
            + (f" replicas at {fit['peak_rps']:,.1f} req/s" if fit.get("peak_rps") else "")
            + f"; RMS relative residual {fit['rms_residual']:.1%}, largest {fit['max_residual']:+.1%} at "
            f"{fit['max_residual_replicas']}. Predicted: "
            + ", ".join(f"{p['replicas']}: {p['rps']:,.1f} req/s" for p in scaling["predictions"]),
        ]
    if checks:
        lines += [
            "",
            "| fitted on | λ | σ | κ | predicts | predicted | measured | error | holds (15 %) |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        for c in checks:
            lines.append(
                f"| {', '.join(map(str, c['fit_on']))} | {c['lambda']:,.1f} | {c['sigma']:.4g} | {c['kappa']:.4g} | "
                f"{c['replicas']} | "
                f"{c['predicted']:,.1f} | {c['measured']:,.1f} | {c['error']:+.1%} | "
                f"{'yes' if abs(c['error']) <= HOLDS else 'no'} |"
            )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--replicas", default="1,2,4,8,16")
    parser.add_argument("--service-ms", type=float, default=20.0)
    parser.add_argument("--step-duration", default="8s")
    parser.add_argument("--warmup", default="2s")
    parser.add_argument("--resolution", default="0.05")
    parser.add_argument("--slo", default="p90<50ms")
    parser.add_argument("--balance", default="round-robin")
    parser.add_argument("--start-rate", default="20")
    parser.add_argument("--no-pin", action="store_true")
    parser.add_argument("--out", type=Path, help="keep the sweep directory here")
    parser.add_argument("--analyze", type=Path, metavar="SWEEP_DIR", help="analyse a sweep measured before")
    args = parser.parse_args()
    if args.analyze:
        return report(args.analyze, f"re-analysed from {args.analyze}")
    counts = [int(n) for n in args.replicas.split(",")]
    gen_pin, fleet_pin, pinned = pins(not args.no_pin)
    out = args.out or Path(tempfile.mkdtemp(prefix="scaling-")) / "sweep"
    fleet, urls = start_fleet(max(counts), args.service_ms, fleet_pin)
    started = time.time()
    try:
        listing = out.parent / "replicas.txt"
        listing.parent.mkdir(parents=True, exist_ok=True)
        listing.write_text("\n".join(urls) + "\n", encoding="utf-8")
        command = [
            *gen_pin, sys.executable, "-m", "loadbench", "sweep", "--targets", str(listing),
            "--replicas", args.replicas, "--balance", args.balance, "--find-capacity",
            "--start-rate", args.start_rate, "--resolution", args.resolution, "--slo", args.slo,
            "--step-duration", args.step_duration, "--warmup", args.warmup, "--arrival", "constant",
            "--scenario", "json_post", "--data", str(Path(__file__).resolve().parents[1] / "loadbench/data/digits.jsonl"),
            "--no-sampler", "--quiet", "--out", str(out), "--force",
        ]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True)
    finally:
        fleet.terminate()
        fleet.wait(timeout=10)
    if result.returncode != 0:
        print(result.stdout, result.stderr, file=sys.stderr)
        return 1
    settings = (
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(started))}, {(time.time() - started) / 60:.1f} min; "
        f"demo replicas of 1 worker, fixed {args.service_ms:g} ms; --slo '{args.slo}', --resolution "
        f"{args.resolution}, --step-duration {args.step_duration}, --balance {args.balance}, constant arrivals; "
        f"{pinned}; {platform.processor() or platform.machine()}, {os.cpu_count()} logical cores; sweep dir {out}"
    )
    return report(out, settings)


def report(out: Path, settings: str) -> int:
    """Print the Markdown of ``out``'s scaling.json, its points analysed by this build."""
    saved = json.loads((out / "scaling.json").read_text(encoding="utf-8"))
    measured = [(p["replicas"], p.get("capacity_rps")) for p in saved["points"]]
    analysis = analyze_scaling(measured)
    steps = {p["replicas"]: p.get("steps") for p in saved["points"]}
    scaling = analysis | {"points": [r | {"steps": steps.get(r["replicas"])} for r in analysis["points"]]}
    points = [(n, x) for n, x in measured if x]
    checks = prefix_checks(points)
    print(markdown(scaling, checks, settings))
    print(f"\nvalidation: {json.dumps(scaling['validation'])}")
    for note in scaling["notes"]:
        print(f"note: {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
