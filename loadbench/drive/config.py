"""Run settings: the `RunConfig` dataclass, everything one ``loadbench run`` (or one web UI
run) needs; the parsers of the values users type are in `loadbench.values`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from loadbench.values import DEFAULT_MAX_BODY_BYTES


@dataclass
class RunConfig:
    """Everything one `loadbench run` needs; recorded (redacted) in ``meta.json`` under ``settings``."""

    target: str
    scenario: str | None = None  # None: probe the target and choose
    users: int = 10
    spawn_rate: float | None = None  # users started per second; None: all within one second
    duration_s: float = 30.0  # load phase, warmup included
    warmup_s: float = 2.0  # requests starting in the first warmup_s are excluded from the metrics
    out_dir: Path | None = None  # None: reports_dir / "<UTC timestamp>-<scenario>"
    reports_dir: Path = Path("reports")
    headers: list[str] = field(default_factory=list)  # "Name: value", sent with every request
    scenario_args: list[str] = field(default_factory=list)  # passed to the scenario's own options
    force: bool = False  # allow writing into an existing non-empty run directory
    quiet: bool = False  # no live progress line
    timeout_s: float = 60.0  # per request: a slower answer is an error (kind: timeout)
    insecure: bool = False  # skip TLS certificate verification (warned about in the report)
    follow_redirects: int = 0  # redirect hops a request may follow; 0: a 3xx answer is a failure
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES  # a larger response body is counted, not kept
    # The answer's header holding the server's own time (NAME or NAME:METRIC); None: not read.
    server_time_header: str | None = None
    # Triton's statistics (/v2/models/NAME/stats) or metrics (/metrics) URL, read around the window.
    server_stats: str | None = None
    label: str | None = None  # --label: the run's name among model variants (`loadbench variants`)
    cold_start: int = 0  # --cold-start N: the run's first N requests reported apart; 0: not
    records: str = "parquet"  # --records: requests.csv becomes requests.parquet at the end; or csv
    replica_header: str | None = None  # the answer's header naming the replica that served it
    replica_field: str | None = None  # or the path in its JSON body that names it
    server_time_field: str | None = None  # the path in the answer's JSON body holding the server's ms
    cache_header: str | None = None  # the answer's header saying hit/miss of the server's cache (or Age)
    cache_field: str | None = None  # or the path in its JSON body that says it
    # Several targets (replicas of one model; the first is `target`), balanced client-side.
    targets: list[str] = field(default_factory=list)  # every target when several; else empty
    balance: str | None = None  # --balance (loadbench.load.balance); None: round-robin
    # Retries (loadbench.load.retry): none unless `retries` > 0.
    retries: int = 0
    retry_on: list[str] | None = None  # None: DEFAULT_RETRY_ON
    retry_backoff_s: list[float] | None = None  # [least, greatest]; None: DEFAULT_BACKOFF_S
    retry_budget: float | None = None  # retries / requests at most; None: no budget
    preflight: bool = True  # one request of the scenario before the load (loadbench.drive.preflight)
    sample_interval_s: float | None = 0.5  # resource sampling period; None: no sampler
    server_pid: int | None = None  # the model server's process, when not found automatically
    server_name: str | None = None
    scrapes: list[str] = field(default_factory=list)  # Prometheus text-format URLs
    scrape_match: str | None = None  # regex selecting the scraped series
    scrape_interval_s: float = 1.0  # at least the sample interval
    agents: list[str] = field(default_factory=list)  # `loadbench agent` URLs on remote hosts
    agent_token: str | None = None  # never written anywhere
    # Open loop (docs/metrics.md "Load models"): requests/s on a schedule independent of responses.
    rate: float | None = None  # None: closed loop (`users` users, each waiting for its answer)
    arrival: str = "poisson"  # constant | poisson | gamma
    burstiness: float = 1.0  # gamma shape: 1 = Poisson, < 1 burstier, > 1 more regular
    seed: int | None = None  # None: a seed is drawn and recorded in meta.json
    max_inflight: int = 1000  # open loop: concurrent requests at most (later sends are late)
    trace: Path | None = None  # open loop: send at the offsets of a recorded trace
    trace_scale: float = 1.0  # multiply the trace's offsets (0.5: twice as fast)
    shape: str | None = None  # load shape spec: ramp/step/spike (see loadbench.load.shapes)
    stages_file: Path | None = None  # load shape from a file of stages
    slos: list[str] = field(default_factory=list)  # SLO gates, e.g. "p99<300ms" (see loadbench.analyze.slo)
    # LLM streams: the share of streams that kept ahead of a reader at this pace (tokens/s).
    realtime_tokens_per_s: float | None = None
    # Distributed (Locust master/worker): local worker processes, and remote ones to wait for.
    workers: int = 0  # 0: one process, no master
    expect_workers: int = 0  # remote `loadbench worker`s that connect on their own
    master_bind: str = "127.0.0.1"
    master_port: int | None = None  # None: a free port (local workers), 5557 with remote ones
    worker_wait_s: float = 60.0  # how long the master waits for every worker to connect
    # The live Prometheus endpoint (loadbench.drive.exporter); None: none.
    metrics_port: int | None = None
    metrics_bind: str = "127.0.0.1"
    metrics_linger_s: float = 30.0  # after the load, at most this long waiting for a final scrape
    # The same figures pushed to a Prometheus Pushgateway (loadbench.drive.pushgateway); None: none.
    pushgateway: str | None = None
    push_interval_s: float = 5.0


def available_cores() -> int:
    """The CPU cores this process may run on (`--workers auto`)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1
