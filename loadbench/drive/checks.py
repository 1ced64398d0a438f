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
from loadbench.values import parse_header


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
    if config.out_dir is not None:  # before any request is sent, the preflight's included
        rundir.check_new_run_dir(config.out_dir, config.force)
    return plan
