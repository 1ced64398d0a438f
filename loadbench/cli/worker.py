"""``loadbench worker``: a Locust worker for a loadbench master on another host."""

from __future__ import annotations

import argparse
from typing import Any

from loadbench.cli.options import RESPONSE_OPTIONS, ROUTING_OPTIONS, Call, Option, add_options, duration
from loadbench.demo.args import port
from loadbench.errors import UsageError

WORKER_OPTIONS: tuple[Option, ...] = (
    (("--master-host",), {"metavar": "HOST", "help": "the master's address"}),
    (("--master-port",), {"type": port, "default": 5557, "metavar": "PORT", "help": "default 5557"}),
    (
        ("--target", "-t"),
        {"metavar": "URL", "action": "append", "help": "the endpoint, as given to the master (repeatable)"},
    ),
    (("--scenario", "-s"), {"metavar": "NAME|FILE.py", "help": "the master's scenario"}),
    (("--header", "-H"), {"action": "append", "default": [], "metavar": "'NAME: VALUE'"}),
    (("--timeout",), {"type": duration, "default": 60.0, "metavar": "TIME", "help": "per request"}),
    (("--insecure",), {"action": "store_true", "help": "do not verify TLS certificates"}),
    (
        ("--sample-interval",),
        {
            "type": duration,
            "default": 1.0,
            "metavar": "TIME",
            "help": "sample this host (CPU, memory, GPUs) and this worker for the master's run (default 1s)",
        },
    ),
    (("--no-sampler",), {"action": "store_true", "help": "do not sample this host"}),
    (("--config-stdin",), {"action": "store_true", "help": argparse.SUPPRESS}),
)


# --targets FILE as the master's, beside --target repeated.
WORKER_ROUTING: tuple[Option, ...] = (
    (("--targets",), {"metavar": "FILE", "help": "more targets, one URL per line, as given to the master"}),
    *ROUTING_OPTIONS,
)


def add_worker_parser(commands: Any) -> None:
    worker = commands.add_parser(
        "worker",
        allow_abbrev=False,
        help="a Locust worker for a loadbench master on another host",
        description="Connect to a `loadbench master` (or `loadbench run --expect-workers N`) and run its load. "
        "Give the same --target and --scenario (and scenario options) as the master; the master sends the "
        "load model and collects every request record. Exits when the master quits.",
        epilog="example:\n  loadbench worker --master-host 10.0.0.5 --target http://10.0.0.9:8000 --scenario json_post",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    worker.set_defaults(handler=cmd_worker, passes_extra=True)
    add_options(worker, WORKER_OPTIONS)
    add_options(worker.add_argument_group("responses (as given to the master)"), RESPONSE_OPTIONS)
    add_options(
        worker.add_argument_group("several targets and retries (as given to the master)"), WORKER_ROUTING
    )


def cmd_worker(call: Call) -> int:
    from loadbench.drive.distributed import WorkerSettings, read_stdin_settings, run_worker

    args = call.args
    if args.config_stdin:
        return run_worker(read_stdin_settings())
    if not (args.master_host and args.target and args.scenario):
        raise UsageError(
            "loadbench worker needs --master-host, --target and --scenario (as given to the master)"
        )
    from loadbench.drive.checks import check_routing
    from loadbench.drive.config import RunConfig
    from loadbench.values import check_targets, read_targets_file

    urls = check_targets([*args.target, *(read_targets_file(args.targets) if args.targets else [])])
    routing = RunConfig(
        target=urls[0],
        targets=urls if len(urls) > 1 else [],
        balance=args.balance,
        retries=args.retries,
        retry_on=list(args.retry_on) if args.retry_on else None,
        retry_backoff_s=list(args.retry_backoff) if args.retry_backoff else None,
        retry_budget=args.retry_budget,
    )
    check_routing(routing)
    header_args = [arg for h in args.header for arg in ("--header", h)]
    return run_worker(
        WorkerSettings(
            master_host=args.master_host,
            master_port=args.master_port,
            target=urls[0],
            scenario=args.scenario,
            scenario_args=[*call.extra, *header_args],
            timeout_s=args.timeout,
            insecure=args.insecure,
            follow_redirects=args.follow_redirects,
            max_body_bytes=args.max_body,
            server_time_header=args.server_time_header,
            replica_header=args.replica_header,
            replica_field=args.replica_field,
            server_time_field=args.server_time_field,
            cache_header=args.cache_header,
            cache_field=args.cache_field,
            targets=routing.targets,
            balance=routing.balance,
            retries=routing.retries,
            retry_on=routing.retry_on,
            retry_backoff_s=routing.retry_backoff_s,
            retry_budget=routing.retry_budget,
            headers=args.header,
            sample_interval_s=None if args.no_sampler else max(args.sample_interval, 0.1),
        )
    )
