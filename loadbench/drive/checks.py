"""The checks of a run's settings that need neither the network nor Locust: ``loadbench run``
makes them before it imports the driving stage (Locust, gevent: a second of imports), so that bad
input is one line at once, and `loadbench.drive.runner.prepare` makes them again for every caller.
"""

from __future__ import annotations

from loadbench.drive.config import RunConfig
from loadbench.drive.loadplan import LoadPlan, plan_load
from loadbench.errors import UsageError
from loadbench.record import rundir
from loadbench.sample.collector import MIN_INTERVAL_S
from loadbench.values import check_targets, is_grpc_url, parse_header


def check_settings(config: RunConfig) -> LoadPlan:
    """The load's numbers, the headers, the per-request timeout and ``--out``; returns the load plan."""
    for header in config.headers:
        parse_header(header)
    if config.users < 1:
        raise UsageError(f"--users must be at least 1, not {config.users}")
    if config.spawn_rate is not None and not config.spawn_rate > 0:
        raise UsageError(f"--spawn-rate must be above 0, not {config.spawn_rate:g}")
    plan = plan_load(config)
    if config.sample_interval_s is not None and not config.sample_interval_s >= MIN_INTERVAL_S:
        raise UsageError(f"--sample-interval must be at least {MIN_INTERVAL_S:g} s")
    if not 0 < config.timeout_s < float("inf"):
        raise UsageError(f"--timeout must be above 0 s, not {config.timeout_s:g}")
    check_routing(config)
    if config.out_dir is not None:  # before any request is sent, the preflight's included
        rundir.check_new_run_dir(config.out_dir, config.force)
    return plan


def check_routing(config: RunConfig) -> None:
    """Several targets and retries: the targets themselves, and options that would do nothing."""
    if config.targets:
        check_targets(config.targets)
    if config.balance is not None and len(config.targets) < 2:
        raise UsageError(
            "--balance spreads requests over several targets: give --target more than once, or --targets FILE"
        )
    if config.retries == 0:
        given = [
            flag
            for flag, value in (
                ("--retry-on", config.retry_on),
                ("--retry-backoff", config.retry_backoff_s),
                ("--retry-budget", config.retry_budget),
            )
            if value is not None
        ]
        if given:
            raise UsageError(f"{given[0]} shapes retries, and there are none: add --retries N")
    elif is_grpc_url(config.target):
        raise UsageError("--retries is for HTTP targets: a grpc:// target's calls are not retried yet")
