"""Run settings: the `RunConfig` dataclass and the parsers for the values users type.

Consumes command-line strings (durations like ``30s``, headers like ``'K: V'``, URLs);
produces validated values or raises `UsageError` / `TargetError` with a one-line message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from loadbench.errors import TargetError, UsageError
from loadbench.redact import redact_header, redact_url

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


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


def parse_duration(text: str) -> float:
    """Parse ``30``, ``30s``, ``500ms``, ``2m``, ``1h30m`` into seconds."""
    value = text.strip().lower()
    try:
        return _check_duration(text, float(value))
    except ValueError:
        pass
    pos, total = 0, 0.0
    for match in _DURATION_PART.finditer(value):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNIT_S[match.group(2)]
        pos = match.end()
    if pos == 0 or pos != len(value):
        raise UsageError(f"bad duration {text!r}: use a number of seconds or e.g. 500ms, 30s, 2m, 1h30m")
    return _check_duration(text, total)


def _check_duration(text: str, seconds: float) -> float:
    if not seconds >= 0 or seconds == float("inf"):
        raise UsageError(f"bad duration {text!r}: must be a finite number of seconds >= 0")
    return seconds


def parse_header(text: str) -> tuple[str, str]:
    """Parse ``'Name: value'`` into its two parts."""
    name, sep, value = text.partition(":")
    name = name.strip()
    if not sep or not name or not re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", name):
        # The text may be a credential with a typo ('Authorization Bearer x'): never echo it whole.
        raise UsageError(f"bad header {redact_header(text)!r}: use 'Name: value'")
    return name, value.strip()


def check_target(url: str) -> str:
    """Return the target URL without a trailing slash, or raise `TargetError` if it is not HTTP(S)."""
    shown = redact_url(url)  # messages never carry the URL's credentials
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unclosed [IPv6 bracket
        raise TargetError(f"target {shown!r} is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TargetError(f"target {shown!r} is not an http:// or https:// URL with a host")
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise TargetError(f"target {shown!r} has an invalid port") from None
    if parts.query or parts.fragment:
        # Locust joins request paths onto the base URL and would drop or mangle a query here.
        raise TargetError(
            "the target must be a base URL without ?query or #fragment: put query parameters in the path"
        )
    return url.rstrip("/")
