"""The `RunConfig` of a parsed command line, built in this one place for `run`, `master` and `ui`,
and the embedded demo they start with ``--demo``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from loadbench.demo.spawn import DemoTiming, demo_scenario_args, demo_speaks_grpc, start_demo, stop_demo
from loadbench.drive.config import RunConfig
from loadbench.values import bare_host_port, parse_header

# RunConfig field -> the parsed option that sets it. A command without the option (`ui` has no
# --out, --rate ...) leaves the field at RunConfig's default.
FROM_ARGS = {
    "scenario": "scenario",
    "users": "users",
    "spawn_rate": "spawn_rate",
    "duration_s": "duration",
    "warmup_s": "warmup",
    "out_dir": "out",
    "reports_dir": "reports_dir",
    "headers": "header",
    "force": "force",
    "quiet": "quiet",
    "timeout_s": "timeout",
    "insecure": "insecure",
    "follow_redirects": "follow_redirects",
    "max_body_bytes": "max_body",
    "server_time_header": "server_time_header",
    "server_stats": "server_stats",
    "label": "label",
    "cold_start": "cold_start",
    "records": "records",
    "replica_header": "replica_header",
    "replica_field": "replica_field",
    "server_time_field": "server_time_field",
    "cache_header": "cache_header",
    "cache_field": "cache_field",
    "balance": "balance",
    "retries": "retries",
    "retry_on": "retry_on",
    "retry_backoff_s": "retry_backoff",
    "retry_budget": "retry_budget",
    "preflight": "preflight",
    "server_pid": "server_pid",
    "server_name": "server_name",
    "scrapes": "scrape",
    "scrape_match": "scrape_match",
    "scrape_interval_s": "scrape_interval",
    "agents": "agent",
    "rate": "rate",
    "arrival": "arrival",
    "burstiness": "burstiness",
    "seed": "seed",
    "max_inflight": "max_inflight",
    "trace": "trace",
    "trace_scale": "trace_scale",
    "shape": "shape",
    "stages_file": "stages",
    "slos": "slo",
    "realtime_tokens_per_s": "realtime_tokens_per_s",
    "workers": "workers",
    "expect_workers": "expect_workers",
    "master_bind": "master_bind",
    "master_port": "master_port",
    "worker_wait_s": "worker_wait",
    "metrics_port": "metrics_port",
    "metrics_bind": "metrics_bind",
    "metrics_linger_s": "metrics_linger",
    "pushgateway": "pushgateway",
    "push_interval_s": "push_interval",
}


def run_config(
    args: argparse.Namespace, target: str, scenario_args: list[str], **overrides: Any
) -> RunConfig:
    """The run the parsed ``args`` ask for, at ``target``; ``overrides`` win over ``args``."""
    fields: dict[str, Any] = {
        field: getattr(args, name) for field, name in FROM_ARGS.items() if hasattr(args, name)
    }
    given = list(getattr(args, "target_list", None) or [])
    fields.update(
        target=target,
        # Several: the first is `target` (a bare HOST:PORT resolved); one alone is just `target`.
        targets=[target, *given[1:]] if len(given) > 1 else [],
        scenario_args=scenario_args,
        sample_interval_s=None if args.no_sampler else args.sample_interval,
        agent_token=args.agent_token or os.environ.get("LOADBENCH_AGENT_TOKEN"),
    )
    for name in ("retry_on", "retry_backoff_s"):  # tuples as parsed; lists as meta.json keeps them
        if fields.get(name) is not None:
            fields[name] = list(fields[name])
    return RunConfig(**{**fields, **overrides})


def demo_timing(args: argparse.Namespace) -> DemoTiming:
    """The ``--demo-*`` options (`loadbench.cli.options.add_demo_options`) as the spawner takes them."""
    return DemoTiming(
        args.demo_latency_ms,
        args.demo_asr_rtf,
        args.demo_llm_ttft_ms,
        args.demo_llm_itl_ms,
        workers=args.demo_workers,
        service_dist=args.demo_service_dist,
        service_cv=args.demo_service_cv,
        jitter_ms=args.demo_jitter_ms,
        seed=args.demo_seed,
        cache=args.demo_cache,
        llm_prefix_cache=getattr(args, "demo_llm_prefix_cache", False),
    )


@contextmanager
def target_of(args: argparse.Namespace, scenario_args: list[str]) -> Iterator[tuple[str, list[str]]]:
    """``--target`` as given, or with ``--demo`` the demo's URL while it runs (stopped on the way out,
    whatever happened); yields it and the scenario's arguments (`demo_scenario_args`)."""
    if not args.demo:
        yield _resolved(args), scenario_args
        return
    timing = demo_timing(args)
    timing.check()  # bad input before the scenario's arguments are looked at, as ever
    scenario_args = demo_scenario_args(args.scenario, scenario_args)
    # A gRPC scenario targets the demo's gRPC side (grpc://), the others its HTTP side.
    demo, target = start_demo(timing, grpc=demo_speaks_grpc(args.scenario))
    try:
        yield target, scenario_args
    finally:
        stop_demo(demo)


def _resolved(args: argparse.Namespace) -> str:
    """``--target`` as given, or a bare ``HOST:PORT`` as the URL of what answers there (said in
    one line unless ``--quiet``)."""
    host_port = bare_host_port(args.target)
    if host_port is None:
        return str(args.target)
    from loadbench.protocols.targets import resolve_bare

    headers = dict(parse_header(h) for h in args.header or [])
    url, said = resolve_bare(host_port, headers, verify=not args.insecure)
    if not getattr(args, "quiet", False):
        print(f"loadbench: {said}", file=sys.stderr)
    return url
