"""The ``loadbench sweep`` subcommand's arguments and wiring (one module per command).

Consumes the command line; produces a `loadbench.sweep.sweep.SweepConfig` and runs it. Options the
sweep does not know are passed to every step's ``loadbench run`` (run options and scenario
options alike); the ones the sweep sets itself for each step are refused.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loadbench.cli.ci import add_junit_option, check_junit, publish_suites, publish_sweep
from loadbench.cli.options import Call, add_demo_options, add_where, duration
from loadbench.cli.prefixsweep import add_prefix_option, check_prefix, cmd_prefix
from loadbench.demo.args import add_demo_cache_option
from loadbench.errors import UsageError
from loadbench.load.balance import DEFAULT_POLICY, POLICIES, policy_name
from loadbench.values import argument_type

if TYPE_CHECKING:  # types only: the sweep and the demo's spawner load after the checks
    from loadbench.demo.spawn import DemoTiming
    from loadbench.sweep.sweep import SweepConfig

SWEEP_EPILOG = """\
modes (one of):
  --rates 10,20,40,80     open loop: one step per arrival rate (requests/s); needs `run --rate`
  --concurrency 1,2,4,8   closed loop: one step per number of users
  --find-capacity         search: double the rate from --start-rate until a step fails, then bisect
                          (`--find-capacity users` searches users instead); needs at least one --slo

A step passes when it completes, meets every --slo, is valid and (rates) achieves >= 95% of the
offered rate. A step too short for a gated percentile (p99 needs 1,000 successful requests) is
lengthened to what its rate needs (said on the terminal); one still too short "cannot judge",
never "fail". Capacity = the highest offered load whose step passed; the knee = the first step
that stops keeping up (definitions: docs/metrics.md, "Sweeps and capacity").

Options the sweep does not know go to every `loadbench run` step: --scenario, --header,
--arrival, --timeout, scenario options (--path, --data, --model) ...

examples:
  loadbench sweep --demo --concurrency 1,2,4,8 --step-duration 10s
  loadbench sweep --target http://127.0.0.1:8000 --rates 50,100,200,400 --slo 'p99<300ms' --slo 'error_rate<1%'
  loadbench sweep --target http://127.0.0.1:8000 --find-capacity --slo 'p99<300ms' --arrival constant
  loadbench sweep --demo --demo-workers 2 --rates 60,100,140,170 --arrival poisson \\
      --server-time-header X-Service-Time-Ms --whatif --whatif-servers 2
  loadbench sweep --target http://gpu-box:8000 --scenario openai_chat --model llama --rates 1,2,4,8 \\
      --slo 'ttft_p99<2s' --gpu-hour-cost 2.50 --out reports/llama-sweep
  loadbench sweep --demo --replicas 1,2,4,8 --demo-workers 1 --demo-latency-ms 20 --find-capacity \\
      --start-rate 20 --slo 'p90<50ms' --scenario json_post --step-duration 8s
  loadbench sweep --targets replicas.txt --replicas 1,2,4 --balance least-outstanding --find-capacity \\
      --slo 'p99<300ms'

scaling (--replicas 1,2,4): the capacity under the --slo gates at each number of replicas, each
count's --find-capacity search in SWEEP_DIR/replicas-N/, its steps sent to the N replicas balanced
client-side (`run --target URL ... --balance`); --demo starts N demo replicas for each count
(--demo-workers each), --target (repeated) / --targets FILE (one URL a line) gives them: the first
N serve N. Writes scaling.json, scaling.md and scaling.html: efficiency = capacity(N) /
(N x capacity(1)), a Universal Scalability Law fit (contention sigma, coherency kappa), its
predictions at 8 and 16 replicas, and its check against the largest count measured
(docs/scaling.md).

Writes SWEEP_DIR/sweep.html, sweep.md (for a pull request) and sweep.json, and one ordinary run
directory per step (step-01-rate-10/ ...). --junit FILE: one testcase per step (a step that missed
a gate is a failure, one that cannot be judged is skipped; the exit code stays 0: docs/ci.md).
--whatif: queueing-theory predictions from the lowest-load step beside every step's measurement
(sweep.json "whatif", docs/whatif.md). Exit codes: 0 done (failing steps are results, not
errors), 2 bad input or a step that could not run (one line on stderr), 130 interrupted (the
sweep report of the steps done is still written).
"""

# Set by the sweep for every step: a user's value would silently fight ours.
_OWN = (
    *("--target", "-t", "--demo", "--users", "-u", "--rate", "--duration", "-d", "--warmup"),
    *("--out", "-o", "--quiet", "-q", "--force", "--slo", "--reports-dir"),
)


def _numbers(text: str, integer: bool) -> list[float]:
    what = "whole numbers of users" if integer else "rates in requests/s"
    try:
        values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected comma-separated {what}, e.g. 1,2,4,8") from None
    if not values or any(not v > 0 or v == float("inf") or (integer and v != int(v)) for v in values):
        raise argparse.ArgumentTypeError(f"{text!r}: expected comma-separated {what} > 0, e.g. 1,2,4,8")
    return sorted(set(values))


def _rates(text: str) -> list[float]:
    return _numbers(text, integer=False)


def _users(text: str) -> list[float]:
    return _numbers(text, integer=True)


def add_sweep_parser(commands: Any) -> argparse.ArgumentParser:
    """Add the ``sweep`` subparser to ``commands`` (the subparsers action of the main parser)."""
    sweep: argparse.ArgumentParser = commands.add_parser(
        "sweep",
        allow_abbrev=False,  # unknown options go to the steps: never guess they meant ours
        help="one run per offered load: throughput–latency curve, knee, capacity, cost",
        description="Run the endpoint at a series of loads, one ordinary `loadbench run` per step, and find "
        "the throughput–latency curve, the saturation knee and the capacity under your SLOs. Writes "
        "sweep.html, sweep.md and sweep.json next to the steps' run directories.",
        epilog=SWEEP_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sweep.set_defaults(handler=cmd_sweep, passes_extra=True)
    add_where(
        sweep,
        "base URL of the endpoint; repeated: replicas of one model, every step balancing over them (--balance)",
        "start the embedded demo endpoint and sweep it",
    )
    mode = sweep.add_mutually_exclusive_group(required=True)
    mode.add_argument("--rates", type=_rates, metavar="R1,R2,...", help="open-loop arrival rates, requests/s")
    mode.add_argument("--concurrency", type=_users, metavar="N1,N2,...", help="closed-loop numbers of users")
    mode.add_argument(
        "--find-capacity",
        nargs="?",
        const="rate",
        choices=("rate", "users"),
        metavar="rate|users",
        help="search for the capacity under the --slo gates (default: by rate)",
    )
    search = sweep.add_argument_group("--find-capacity")
    search.add_argument(
        "--start-rate", type=float, default=1.0, metavar="R", help="first rate (default 1 rps)"
    )
    search.add_argument("--start-users", type=int, default=1, metavar="N", help="first users (default 1)")
    search.add_argument(
        "--resolution", type=float, default=0.1, help="stop when highest fail / lowest pass <= 1 + this (0.1)"
    )
    search.add_argument("--max-steps", type=int, default=12, metavar="N", help="at most N steps (default 12)")
    sweep.add_argument(
        "--step-duration",
        type=duration,
        default=30.0,
        metavar="TIME",
        help="each step, warmup included (30s)",
    )
    sweep.add_argument(
        "--warmup", type=duration, default=2.0, metavar="TIME", help="excluded start of each step (2s)"
    )
    sweep.add_argument(
        "--slo",
        action="append",
        default=[],
        metavar="EXPR",
        help="a gate every passing step meets, e.g. 'p99<300ms', 'error_rate<1%%' (repeatable)",
    )
    sweep.add_argument(
        "--gpu-hour-cost",
        type=float,
        metavar="USD",
        help="price of one GPU-hour, for cost per million requests",
    )
    sweep.add_argument(
        "--out", "-o", type=Path, metavar="DIR", help="sweep directory (default REPORTS_DIR/<UTC time>-sweep)"
    )
    sweep.add_argument(
        "--reports-dir", type=Path, default=Path("reports"), metavar="DIR", help="default reports/"
    )
    sweep.add_argument(
        "--force", action="store_true", help="write into an existing, non-empty sweep directory"
    )
    sweep.add_argument("--quiet", "-q", action="store_true", help="no progress lines")
    _add_whatif_options(sweep)
    _add_scaling_options(sweep)
    add_prefix_option(sweep)
    add_junit_option(sweep)
    add_demo_options(sweep)
    add_demo_cache_option(sweep)
    return sweep


def _add_scaling_options(sweep: argparse.ArgumentParser) -> None:
    scaling = sweep.add_argument_group("scaling (docs/scaling.md)")
    scaling.add_argument(
        "--replicas",
        type=_replica_counts,
        metavar="N1,N2,...",
        help="find the capacity at each number of replicas (1 among them), then scaling efficiency and a "
        "Universal Scalability Law fit: scaling.json/.md/.html; needs --find-capacity",
    )
    scaling.add_argument(
        "--balance",
        type=argument_type(policy_name),
        metavar="POLICY",
        help=f"how every step spreads its requests over several replicas (`run --balance`): {', '.join(POLICIES)} "
        f"(default {DEFAULT_POLICY})",
    )


def _replica_counts(text: str) -> list[int]:
    """``1,2,4``: whole numbers >= 1, 1 among them, at least two, no repeats (an argparse type)."""
    example = "e.g. 1,2,4"
    try:
        counts = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected comma-separated numbers of replicas, {example}"
        ) from None
    if any(n < 1 for n in counts):
        raise argparse.ArgumentTypeError(f"{text!r}: numbers of replicas are whole numbers >= 1, {example}")
    if len(set(counts)) < len(counts):
        raise argparse.ArgumentTypeError(f"{text!r} names a number of replicas twice")
    if 1 not in counts or len(counts) < 2:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give 1 and at least one more count ({example}): efficiency is capacity(N) / "
            "(N x capacity(1))"
        )
    return sorted(counts)


def _add_whatif_options(sweep: argparse.ArgumentParser) -> None:
    sweep.add_argument(
        "--whatif",
        action="store_true",
        help="fit a queueing model on the lowest-load step and check its predictions against every other "
        "step (docs/whatif.md)",
    )
    sweep.add_argument(
        "--whatif-servers",
        type=int,
        metavar="C",
        help="with --whatif: requests the server processes at once (default: measured at saturation)",
    )


def _run_options(parser: argparse.ArgumentParser) -> set[str]:
    """The option strings `loadbench run` accepts (so the sweep only uses what this build has)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and "run" in action.choices:
            return set(action.choices["run"]._option_string_actions)
    return set()


def _check_replicas(
    args: argparse.Namespace, targets: list[str], grpc: bool, parser: argparse.ArgumentParser
) -> None:
    """``--replicas`` and ``--balance`` against the other options and this build's `run`."""
    replicas: list[int] | None = args.replicas
    if replicas is None and args.balance and len(targets) < 2:
        raise UsageError(
            "--balance spreads the requests over several replicas: give --target more than once, "
            "--targets FILE or --replicas"
        )
    if replicas is not None and not args.find_capacity:
        raise UsageError(
            "--replicas compares the capacity under the SLO at each count: it needs --find-capacity "
            "(and --slo), not --rates or --concurrency"
        )
    if replicas is not None and args.demo and grpc:
        raise UsageError(
            "--replicas with --demo starts HTTP replicas: a gRPC scenario cannot be balanced over them"
        )
    if replicas is not None and not args.demo and len(targets) < max(replicas):
        raise UsageError(
            f"--replicas {max(replicas)} needs {max(replicas)} targets, {len(targets)} given "
            "(--target repeated, or --targets FILE)"
        )
    several = max(replicas or [1]) > 1 or len(targets) > 1
    if several and "--balance" not in _run_options(parser):
        raise UsageError("this loadbench's `run` has no --balance yet: several replicas per step need it")


def _check_run_args(extra: list[str]) -> None:
    for token in extra:
        for own in _OWN:
            short = not own.startswith("--")
            if (
                token == own
                or token.startswith(own + "=")
                or (short and token.startswith(own) and token[1:2] != "-")
            ):
                raise UsageError(
                    f"{own} is set by the sweep for every step; use the sweep's own options "
                    "(see `loadbench sweep --help`)"
                )


def _scenario_of(extra: list[str]) -> str | None:
    """The ``--scenario``/``-s`` the steps will get, as `run` would parse it (the last one wins)."""
    scenario = None
    for i, token in enumerate(extra):
        if token in ("--scenario", "-s") and i + 1 < len(extra):
            scenario = extra[i + 1]
        elif token.startswith("--scenario="):
            scenario = token.removeprefix("--scenario=")
        elif token.startswith("-s") and not token.startswith("--") and len(token) > 2:
            scenario = token[2:]
    return scenario


def _check(call: Call, extra: list[str]) -> None:
    """The sweep's own options against each other and against this build's `run` (bad input
    first: nothing is started or written)."""
    from loadbench.analyze.slo import parse_slos

    args = call.args
    _check_run_args(extra)
    parse_slos(args.slo)
    check_junit(args)
    run_options = _run_options(call.parser)
    if _mode(args) == "rate" and "--rate" not in run_options:
        raise UsageError("this loadbench's `run` has no --rate (open loop) yet: sweep with --concurrency")
    if args.find_capacity and not args.slo:
        raise UsageError("--find-capacity needs at least one --slo, e.g. --slo 'p99<300ms'")
    if not args.resolution > 0:
        raise UsageError("--resolution must be > 0, e.g. 0.1 (stop within 10%)")
    if args.max_steps < 1 or args.start_rate <= 0 or args.start_users < 1:
        raise UsageError("--max-steps, --start-rate and --start-users must be positive")
    if args.gpu_hour_cost is not None and not args.gpu_hour_cost >= 0:
        raise UsageError("--gpu-hour-cost must be a price >= 0 in USD per GPU-hour")
    if args.whatif_servers is not None and (not args.whatif or args.whatif_servers < 1):
        raise UsageError("--whatif-servers takes a number >= 1 and goes with --whatif")
    if args.step_duration <= args.warmup:
        raise UsageError("--step-duration must be longer than --warmup: nothing would be measured")


def _mode(args: argparse.Namespace) -> str:
    return "users" if args.concurrency or args.find_capacity == "users" else "rate"


def cmd_sweep(call: Call) -> int:
    """``loadbench sweep``: check the options, start the demo if asked, run the sweep (``--replicas``:
    one capacity search per count, `loadbench.sweep.scaling`)."""
    from loadbench.cli.config import demo_timing
    from loadbench.demo.spawn import demo_scenario_args, demo_speaks_grpc, start_demo, stop_demo
    from loadbench.values import check_targets

    args, extra = call.args, call.extra
    _check(call, extra)
    timing = demo_timing(args) if args.demo else None
    if timing is not None:
        timing.check()
    targets = check_targets(list(getattr(args, "target_list", None) or []))
    grpc = demo_speaks_grpc(_scenario_of(extra))
    _check_replicas(args, targets, grpc, call.parser)
    check_prefix(args, _scenario_of(extra))
    if args.demo:  # as `run --demo`: json_post sends the demo's digits unless told what to send
        extra = demo_scenario_args(_scenario_of(extra), extra)
    from loadbench.sweep.sweep import SweepConfig, run_sweep  # after the checks: bad input is quick

    mode = _mode(args)
    several = len(targets) > 1 and args.replicas is None  # every step balances over all of them
    config = SweepConfig(
        target=targets[0] if targets else "",
        mode=mode,
        loads=args.rates or args.concurrency or [],
        find_capacity=bool(args.find_capacity),
        start=float(args.start_users) if mode == "users" else args.start_rate,
        resolution=args.resolution,
        max_steps=args.max_steps,
        step_duration_s=args.step_duration,
        warmup_s=args.warmup,
        slos=args.slo,
        pass_slos="--slo" in _run_options(call.parser),
        gpu_hour_cost=args.gpu_hour_cost,
        out_dir=args.out,
        reports_dir=args.reports_dir,
        force=args.force,
        quiet=args.quiet,
        run_args=extra,
        whatif=args.whatif,
        whatif_servers=args.whatif_servers,
        targets=targets if several else [],
        balance=(args.balance or DEFAULT_POLICY) if several else None,
    )
    if args.replicas is not None:
        return _cmd_scaling(call, config, targets, timing)
    if args.shared_prefix_tokens is not None:
        return cmd_prefix(call, config, timing)
    demo = None
    if timing is not None:
        demo, config.target = start_demo(timing, grpc=grpc)
    try:
        sweep, paths, code = run_sweep(config)
    finally:
        if demo is not None:
            stop_demo(demo)
    from loadbench.sweep.report import headline

    print(headline(sweep))
    for path in paths:
        print(f"{path.suffix[1:]}: {path}")
    publish_sweep(args, sweep, paths[0].parent, call.argv)
    if code:
        print("loadbench: sweep interrupted: the report covers the steps done", file=sys.stderr)
    return code


def _cmd_scaling(call: Call, config: SweepConfig, targets: list[str], timing: DemoTiming | None) -> int:
    """``--replicas``: a capacity search per count into SWEEP_DIR/replicas-N/, then scaling.*."""
    from loadbench.record.rundir import read_json
    from loadbench.sweep.ci import sweep_suite
    from loadbench.sweep.report import SWEEP_JSON
    from loadbench.sweep.scaling import ScalingConfig, demo_replicas, given_replicas, run_scaling
    from loadbench.sweep.scaling_report import SCALING_MD, scaling_headline

    scaling_config = ScalingConfig(
        replicas=call.args.replicas,
        search=config,
        balance=call.args.balance or DEFAULT_POLICY,
        source="targets" if timing is None else "demo",
        targets=targets,
        demo=timing,
    )
    source = given_replicas(targets) if timing is None else demo_replicas(timing)
    scaling, paths, code = run_scaling(scaling_config, source)
    print(scaling_headline(scaling))
    for path in paths:
        print(f"{path.suffix[1:]}: {path}")
    top = paths[0].parent
    sweeps = [top / str(p["sweep_dir"]) for p in scaling["points"]]
    suites = [sweep_suite(read_json(d / SWEEP_JSON), d) for d in sweeps if (d / SWEEP_JSON).is_file()]
    publish_suites(call.args, suites, [], top / SCALING_MD, "loadbench sweep", call.argv)
    if code:
        print("loadbench: sweep interrupted: the report covers the replica counts done", file=sys.stderr)
    return code
