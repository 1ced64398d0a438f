"""``loadbench whatif DIR``: predicted latency at other rates and numbers of servers."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from loadbench.cli.options import Call
from loadbench.demo.args import ms
from loadbench.errors import UsageError
from loadbench.values import at_least_one

WHATIF_EPILOG = (
    "examples:\n"
    "  loadbench run --demo --demo-workers 2 --users 1 --duration 60s --server-time-header X-Service-Time-Ms\n"
    "  loadbench whatif reports/RUN --servers 2 --rate 100 --rate 150 --slo 'p99<100ms'\n"
    "  loadbench whatif reports/RUN --servers 1 --servers 2 --json | jq '.predictions[] | .latency_ms.p99'\n"
    "  loadbench whatif reports/SWEEP   (fits the lowest-load step and checks every other step)\n"
    "\n"
    "Fit on a run without queueing: a closed loop of at most as many users as the server has workers,\n"
    "or any run that recorded the server's own time (loadbench run --server-time-header NAME): client\n"
    "and transport time does not wait in the server's queue and is kept apart (docs/whatif.md).\n"
    "Methods: erlang_c (M/M/c), kingman (G/G/c; Pollaczek-Khinchine's exact mean for M/G/1) and\n"
    "simulation (Monte-Carlo, 95% intervals). A prediction is a model: `loadbench sweep --whatif`\n"
    "shows where it holds.\n"
    "Exit codes: 0 done, 2 bad input (too few requests to fit, no --servers, every rate unstable)."
)


def _rate(text: str) -> float:
    try:
        value = float(text.removesuffix("rps"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a rate in requests/s") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text}: a rate must be more than 0 requests/s")
    return value


def add_whatif_parser(commands: Any) -> None:
    p = commands.add_parser(
        "whatif",
        help="predict latency at other arrival rates and numbers of servers (queueing theory, Monte-Carlo)",
        description="From a measured run's service times, predict the latency distribution (p50, p90, p99, "
        "p999, mean, wait) at other arrival rates and numbers of servers by queueing theory and by a "
        "Monte-Carlo simulation, and with --slo the capacity: the highest rate per number of servers and "
        "the fewest servers per rate. Writes whatif.json, whatif.md and whatif.png.",
        epilog=WHATIF_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.set_defaults(handler=cmd_whatif)
    p.add_argument("run_dir", type=Path, metavar="DIR", help="a run directory, or a sweep directory")
    p.add_argument(
        "--rate",
        type=_rate,
        action="append",
        default=[],
        metavar="R",
        help="arrival rate in req/s (repeatable; default: 30 to 95%% of capacity)",
    )
    p.add_argument(
        "--servers",
        type=at_least_one("servers"),
        action="append",
        default=[],
        metavar="C",
        help="requests the server processes at once (repeatable; a sweep measures it)",
    )
    p.add_argument(
        "--fit-servers",
        type=at_least_one("servers"),
        metavar="C",
        help="the measured server's concurrency, to take its queue's waits out of the fit run's overheads (default: the first --servers)",
    )
    p.add_argument("--slo", metavar="EXPR", help="a latency bound for the capacity plan, e.g. 'p99<300ms'")
    p.add_argument(
        "--method",
        choices=("erlang_c", "kingman", "simulation"),
        action="append",
        default=[],
        help="only these methods (repeatable; default all three)",
    )
    p.add_argument(
        "--arrivals",
        choices=("poisson", "measured"),
        default="poisson",
        help="Poisson arrivals (default), or the run's own inter-arrival gaps scaled to each rate",
    )
    p.add_argument(
        "--overhead-ms",
        type=ms,
        metavar="MS",
        help="the client's and transport's time per request, outside the server's queue (default: the server's own timing, else the measured round trip)",
    )
    p.add_argument(
        "--sim-requests",
        type=at_least_one("requests"),
        default=1_000_000,
        metavar="N",
        help="requests simulated per prediction, over all replications (default 1,000,000)",
    )
    p.add_argument(
        "--replications",
        type=at_least_one("replications"),
        default=10,
        metavar="N",
        help="independent simulation replications for the intervals (default 10)",
    )
    p.add_argument("--seed", type=int, default=0, help="simulation seed (default 0)")
    p.add_argument("--out", "-o", type=Path, metavar="DIR", help="where whatif.* go (default: DIR itself)")
    p.add_argument("--json", action="store_true", help="print whatif.json's object instead of the table")


def cmd_whatif(call: Call) -> int:
    from loadbench.analyze.slo import parse_slo
    from loadbench.whatif import Options, WhatifRequest, run_whatif, write_whatif
    from loadbench.whatif.predict import METHODS
    from loadbench.whatif.render import whatif_markdown

    args = call.args
    if args.replications < 2:
        raise UsageError("--replications must be 2 or more: an interval needs two")
    methods = tuple(m for m in METHODS if m in args.method) or METHODS
    request = WhatifRequest(
        rates=tuple(args.rate),
        servers=tuple(dict.fromkeys(args.servers)),
        slo=parse_slo(args.slo) if args.slo else None,
        overhead_ms=args.overhead_ms,
        fit_servers=args.fit_servers,
        options=Options(methods, args.arrivals, args.sim_requests, args.replications, args.seed),
    )
    result, fit = run_whatif(args.run_dir, request)
    paths = write_whatif(args.out or args.run_dir, result, fit, request)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(whatif_markdown(result), end="")
    for note in result["notes"]:
        print(f"loadbench: note: {note}", file=sys.stderr)
    for path in paths:
        print(f"{path.suffix[1:]}: {path}")
    return 0
