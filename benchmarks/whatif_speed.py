"""What-if simulation speed: loadbench's numpy/heap G/G/c simulation against ciw's.

    python benchmarks/whatif_speed.py [--requests 1000000] [--rounds 3]

Simulates a FIFO queue with lognormal service times (mean 10 ms, CV 1) at 70 % utilisation
fed by Poisson arrivals, with 1 and 4 servers, ``--requests`` customers each, with
`loadbench.whatif.simulate` (one replication of all of them) and, when it is importable, with
ciw (https://github.com/CiwPython/Ciw, a maintained discrete-event simulator: ``pip install
ciw``; it is not a loadbench dependency). ciw runs until its clock has seen the same number of
arrivals. Each figure is the median wall time over ``--rounds``, the two run alternately. Both
give the mean wait: it must agree within a few percent, or the comparison is void.

The goal: under 5 s for a million simulated requests. Prints the Markdown table of
``docs/benchmarks.md``'s section.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time

import numpy as np

from loadbench.whatif.queueing import Queue
from loadbench.whatif.simulate import one_replication

MEAN_MS, CV, UTIL = 10.0, 1.0, 0.7
SIGMA = math.sqrt(math.log(1 + CV * CV))
MU = math.log(MEAN_MS) - SIGMA * SIGMA / 2


def loadbench_sim(servers: int, n: int) -> tuple[float, float]:
    service = np.random.default_rng(1).lognormal(MU, SIGMA, 200_000)
    queue = Queue(UTIL * servers * 1000.0 / MEAN_MS, servers, service, np.zeros_like(service))
    t = time.perf_counter()
    _, wait = one_replication(queue, n, np.random.default_rng(2))
    return time.perf_counter() - t, float(wait.mean())


def ciw_sim(servers: int, n: int) -> tuple[float, float] | None:
    try:
        import ciw  # type: ignore[import-not-found]
    except ImportError:
        return None
    rate_per_ms = UTIL * servers / MEAN_MS
    network = ciw.create_network(
        arrival_distributions=[ciw.dists.Exponential(rate=rate_per_ms)],
        service_distributions=[ciw.dists.Lognormal(mean=MU, sd=SIGMA)],
        number_of_servers=[servers],
    )
    ciw.seed(2)
    t = time.perf_counter()
    sim = ciw.Simulation(network)
    sim.simulate_until_max_customers(n, method="Arrive")
    elapsed = time.perf_counter() - t
    records = sim.get_all_records()
    keep = [r.waiting_time for r in records[len(records) // 10 :]]
    return elapsed, float(np.mean(keep))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    lines = [
        f"Simulated requests per trial: {args.requests:,}; lognormal service, mean {MEAN_MS:g} ms, CV {CV:g}; "
        f"Poisson arrivals at {UTIL:.0%} utilisation; median of {args.rounds} rounds, alternating.",
        "",
        "| servers | loadbench (s) | ciw (s) | ciw / loadbench | mean wait loadbench (ms) | mean wait ciw (ms) |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for servers in (1, 4):
        ours, theirs, waits = [], [], [0.0, 0.0]
        for _ in range(args.rounds):
            elapsed, waits[0] = loadbench_sim(servers, args.requests)
            ours.append(elapsed)
            other = ciw_sim(servers, args.requests)
            if other is not None:
                theirs.append(other[0])
                waits[1] = other[1]
        a = statistics.median(ours)
        b = statistics.median(theirs) if theirs else None
        ratio = f"{b / a:,.0f}x" if b else "ciw not installed"
        lines.append(
            f"| {servers} | {a:.3f} | {'–' if b is None else f'{b:.1f}'} | {ratio} | {waits[0]:.2f} | "
            f"{'–' if b is None else f'{waits[1]:.2f}'} |"
        )
        print(lines[-1], flush=True)
    text = "\n".join(lines)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
