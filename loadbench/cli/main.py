"""The ``loadbench`` command: parse arguments and wire the stages together, nothing more.

    loadbench run --target URL ...   drive -> record -> analyze -> report
    loadbench run --workers N ...    the same on N local Locust workers (master/worker)
    loadbench master / worker        Locust master/worker across hosts
    loadbench ui --target URL ...    Locust's web UI; each start/stop is a run with its report
    loadbench report DIR             analyze -> report, from a run directory alone
    loadbench compare BASE CAND...   compare runs: per-metric verdicts, gates for CI
    loadbench history DIR_OR_GLOB    key metrics across many runs
    loadbench sweep --rates 1,2,4    one run per load: latency curve, knee, capacity, cost
    loadbench demo                   serve the embedded demo model endpoint
    loadbench agent                  serve this host's resource samples to a remote run
    loadbench scenarios              list the built-in scenarios

Every `LoadbenchError` becomes one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import os
import re
import select
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from loadbench import __version__
from loadbench.cli.sweep import add_sweep_parser, cmd_sweep
from loadbench.drive.config import RunConfig
from loadbench.errors import LoadbenchError, TargetError, UsageError
from loadbench.values import parse_duration

EXIT_GATE_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

RUN_EPILOG = """\
scenario options:
  Options loadbench does not know are passed to the scenario. The built-in ones take:
    json_post    --path /predict  --payload JSON | --data FILE.jsonl
    kserve_v2    --model NAME  --batch N  [--payload JSON | --data FILE.jsonl]
    openai_chat  --model NAME  [--no-stream]  --prompt TEXT | --input-tokens N | --data FILE.jsonl | --sharegpt F
                 --output-tokens N (--max-tokens)  --ignore-eos  --temperature T
    openai_completions  the same, POST /v1/completions
  `loadbench scenarios` lists them; a locustfile path works too.

examples:
  loadbench run --demo
  loadbench run --target http://127.0.0.1:8000 --scenario json_post --data rows.jsonl -u 32 -d 60s
  loadbench run --target http://127.0.0.1:8080 --scenario kserve_v2 --model resnet --header 'Authorization: Bearer $TOKEN'
  loadbench run --target http://127.0.0.1:8000 --scenario my_locustfile.py --quiet
  loadbench run --target http://127.0.0.1:8000 --rate 50 -d 2m --slo 'p99<300ms' --slo 'error_rate<1%'
  loadbench run --target http://127.0.0.1:8000 --rate 1 --shape step:20,40,80:30s   # open-loop steps
  loadbench run --target http://127.0.0.1:8000 --scrape http://127.0.0.1:8000/metrics --scrape-match '^vllm:'
  loadbench run --target http://gpu-box:8000 --agent http://gpu-box:9109   # with $LOADBENCH_AGENT_TOKEN set

Exit codes: 0 done, 1 an --slo failed (or the run was INVALID with --slo given), 2 bad input
(one line on stderr), 130 interrupted (the report is still written).
Metric definitions: docs/metrics.md. Run directory format: docs/run-format.md.
"""


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad option as a `UsageError` (one line, exit 2), not usage + exit."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("bad duration ")) from None


def _positive_duration(text: str) -> float:
    value = _duration(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration above 0")
    return value


def _port(text: str) -> int:
    """A TCP port, 0 to 65535 (0: any free one), checked before anything binds or is spawned."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port {value} is not between 0 and 65535")
    return value


def _non_negative(what: str) -> Any:
    """An argparse type: a finite number >= 0 of ``what`` (e.g. milliseconds)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number of {what}") from None
        if not 0 <= value < float("inf"):
            raise argparse.ArgumentTypeError(f"{text}: must be a finite number of {what} >= 0")
        return value

    return parse


_ms = _non_negative("milliseconds")
_times = _non_negative("times the duration")


# Options `run` and `ui` share: one definition each, so the two commands cannot drift apart.


def _add_demo_options(parser: argparse.ArgumentParser) -> None:
    """``--demo-*``: the embedded demo endpoint's timing (checked in `start_demo`)."""
    parser.add_argument(
        "--demo-latency-ms",
        type=_ms,
        default=0.0,
        metavar="MS",
        help="with --demo: added service time per request",
    )
    parser.add_argument(
        "--demo-asr-rtf",
        type=_times,
        default=None,
        metavar="X",
        help="with --demo: its speech recognizer (POST /asr) takes X times the audio's duration (default 0.3)",
    )
    for name, default in (("ttft", 30), ("itl", 8)):
        parser.add_argument(
            f"--demo-llm-{name}-ms",
            type=_ms,
            default=None,
            metavar="MS",
            help=f"with --demo: its LLM simulator's {'time to first token' if name == 'ttft' else 'time between tokens'}"
            f" (default {default})",
        )


def _add_sampling_options(res: argparse._ArgumentGroup) -> None:
    """The resource-sampling options of `run` and `ui`."""
    res.add_argument(
        "--sample-interval",
        type=_duration,
        default=0.5,
        metavar="TIME",
        help="how often to sample GPU, host and server process (default 0.5s, at least 50ms)",
    )
    res.add_argument("--no-sampler", action="store_true", help="sample no resources")
    res.add_argument(
        "--server-pid",
        type=int,
        metavar="PID",
        help="the model server's process (default: the local process listening on the target's port)",
    )
    res.add_argument(
        "--server-name", metavar="NAME", help="find the model server's process by name or command line"
    )
    res.add_argument(
        "--scrape",
        action="append",
        default=[],
        metavar="URL",
        help="Prometheus metrics URL to scrape during the run (repeatable)",
    )
    res.add_argument("--scrape-match", metavar="REGEX", help="keep only scraped series matching this regex")
    res.add_argument(
        "--scrape-interval",
        type=_duration,
        default=1.0,
        metavar="TIME",
        help="how often to scrape (default 1s; never more often than --sample-interval)",
    )
    res.add_argument(
        "--agent",
        action="append",
        default=[],
        metavar="URL",
        help="`loadbench agent` on a remote model-server host (repeatable)",
    )
    res.add_argument(
        "--agent-token",
        metavar="TOKEN",
        help="the agents' token (default: $LOADBENCH_AGENT_TOKEN); never written anywhere",
    )


def _add_slo_option(group: argparse.ArgumentParser | argparse._ArgumentGroup, verdict: str) -> None:
    """``--slo``; ``verdict`` says what a failed gate does in this command."""
    group.add_argument(
        "--slo",
        action="append",
        default=[],
        metavar="EXPR",
        help=f"gate: 'p99<300ms', 'error_rate<1%%', 'throughput>50', 'goodput>10'; repeatable; {verdict}. "
        "Bare 'ttft<500ms', 'tpot<50ms', 'itl<100ms', 'e2e<2s', 'latency<1s' bound every "
        "request: counted into goodput (docs/metrics.md 'LLM metrics'), gating nothing by themselves",
    )


def _add_llm_options(group: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    group.add_argument(
        "--realtime-tokens-per-s",
        type=_tokens_per_s,
        metavar="R",
        help="a reading or speaking pace: report the share of streams that kept ahead of a reader "
        "taking R tokens/s from the first token (summary llm_realtime)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="loadbench",
        description="Load testing and latency benchmarking for deployed ML model endpoints, on Locust.",
        epilog="Start with `loadbench run --demo`, then `loadbench run --target URL`. "
        "Every run writes a run directory with exact per-request records, summary.json and report.html. "
        "Prefer Locust's web UI? `loadbench ui --demo` (or --target URL): each start/stop there is such a run.",
    )
    parser.add_argument("--version", action="version", version=f"loadbench {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    run = commands.add_parser(
        "run",
        allow_abbrev=False,  # unknown options go to the scenario: never guess they meant ours
        help="drive load at an endpoint, record every request, write the report",
        description="Drive load at a model endpoint with Locust (in-process), record every request exactly, "
        "then analyze the run and write report.html, summary.json and summary.md into the run directory.",
        epilog=RUN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    where = run.add_mutually_exclusive_group(required=True)
    where.add_argument(
        "--target", "-t", metavar="URL", help="base URL of the endpoint, e.g. http://127.0.0.1:8000"
    )
    where.add_argument(
        "--demo", action="store_true", help="start the embedded demo endpoint on 127.0.0.1 and target it"
    )
    run.add_argument(
        "--scenario",
        "-s",
        metavar="NAME|FILE.py",
        help="built-in scenario name or locustfile path (default: probe the target and choose)",
    )
    run.add_argument("--users", "-u", type=int, default=10, metavar="N", help="concurrent users (default 10)")
    run.add_argument(
        "--spawn-rate", "-r", type=float, metavar="R", help="users started per second (default: all in 1 s)"
    )
    run.add_argument(
        "--duration",
        "-d",
        type=_duration,
        default=30.0,
        metavar="TIME",
        help="load duration incl. warmup: 30s, 2m, 1h30m (default 30s)",
    )
    run.add_argument(
        "--warmup",
        type=_duration,
        default=2.0,
        metavar="TIME",
        help="requests that start in this first part are excluded from the metrics (default 2s)",
    )
    run.add_argument(
        "--out",
        "-o",
        type=Path,
        metavar="DIR",
        help="run directory (default REPORTS_DIR/<UTC time>-<scenario>)",
    )
    run.add_argument(
        "--reports-dir",
        type=Path,
        default=Path("reports"),
        metavar="DIR",
        help="where default run directories go (default reports/)",
    )
    run.add_argument(
        "--header",
        "-H",
        action="append",
        default=[],
        metavar="'NAME: VALUE'",
        help="header sent with every request; repeatable; credential values are never written anywhere",
    )
    run.add_argument(
        "--timeout",
        type=_duration,
        default=60.0,
        metavar="TIME",
        help="per-request timeout: a slower answer counts as an error of kind 'timeout' (default 60s)",
    )
    run.add_argument(
        "--insecure",
        action="store_true",
        help="do not verify the target's TLS certificate (the report warns)",
    )
    run.add_argument("--force", action="store_true", help="write into an existing, non-empty run directory")
    run.add_argument("--quiet", "-q", action="store_true", help="no live progress line (for CI logs)")
    _add_demo_options(run)
    load = run.add_argument_group(
        "load model (default: closed loop of --users; docs/metrics.md 'Load models')",
    )
    load.add_argument(
        "--rate",
        type=float,
        metavar="R",
        help="open loop: send R requests/s on a schedule, whatever the responses do; "
        "latency counts from when each request was due (no coordinated omission)",
    )
    load.add_argument(
        "--arrival",
        choices=("constant", "poisson", "gamma"),
        default="poisson",
        help="open loop: how requests are spaced (default poisson)",
    )
    load.add_argument(
        "--burstiness",
        type=float,
        default=1.0,
        metavar="B",
        help="--arrival gamma: shape B (1 = Poisson, <1 burstier, >1 more regular)",
    )
    load.add_argument(
        "--seed", type=int, metavar="N", help="seed of the arrival schedule (default: random, recorded)"
    )
    load.add_argument(
        "--max-inflight",
        type=int,
        default=1000,
        metavar="N",
        help="open loop: at most N requests in flight; later ones start late and count it (default 1000)",
    )
    load.add_argument(
        "--trace",
        type=Path,
        metavar="FILE",
        help="open loop: send at the offsets of a trace (CSV or JSONL with offset_s or timestamp)",
    )
    load.add_argument(
        "--trace-scale",
        type=float,
        default=1.0,
        metavar="X",
        help="multiply the trace's offsets (0.5: twice as fast)",
    )
    load.add_argument(
        "--shape",
        metavar="SPEC",
        help="load shape: ramp:10-100:60s, step:10,20,40:30s, spike:20,200:60s:10s@30s "
        "(levels are users, or requests/s with --rate); sets the duration",
    )
    load.add_argument(
        "--stages", type=Path, metavar="FILE", help="load shape from a JSON or CSV file of stages"
    )
    _add_slo_option(load, "exit code 1 when one fails")
    _add_llm_options(run.add_argument_group("LLM streams (docs/metrics.md 'LLM metrics')"))
    dist = run.add_argument_group("distributed (Locust master/worker; docs/distributed.md)")
    dist.add_argument(
        "--workers",
        type=_workers,
        default=0,
        metavar="N|auto",
        help="start N local Locust worker processes under this one as master (auto: one per core); "
        "every worker's exact records reach this run directory",
    )
    dist.add_argument(
        "--expect-workers",
        type=int,
        default=0,
        metavar="N",
        help="also wait for N remote `loadbench worker --master-host THIS_HOST` processes",
    )
    dist.add_argument(
        "--master-bind",
        default="127.0.0.1",
        metavar="HOST",
        help="where workers connect (default 127.0.0.1; 0.0.0.0 for other hosts: no authentication!)",
    )
    dist.add_argument(
        "--master-port",
        type=_port,
        metavar="PORT",
        help="default 5557 with --expect-workers, else any free port",
    )
    dist.add_argument(
        "--worker-wait",
        type=_positive_duration,
        default=60.0,
        metavar="TIME",
        help="how long to wait for every worker to connect before giving up (default 60s)",
    )
    _add_sampling_options(
        run.add_argument_group("resource sampling (a separate process, on the requests' clock)")
    )

    commands.add_parser(
        "master",
        help="`loadbench run` as a Locust master for workers on other hosts (needs --expect-workers N)",
        description="Exactly `loadbench run` (every option of `loadbench run --help` applies), waiting for "
        "--expect-workers N remote workers before the load starts.",
    )
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
    worker.add_argument("--master-host", metavar="HOST", help="the master's address")
    worker.add_argument("--master-port", type=_port, default=5557, metavar="PORT", help="default 5557")
    worker.add_argument("--target", "-t", metavar="URL", help="the endpoint, as given to the master")
    worker.add_argument("--scenario", "-s", metavar="NAME|FILE.py", help="the master's scenario")
    worker.add_argument("--header", "-H", action="append", default=[], metavar="'NAME: VALUE'")
    worker.add_argument("--timeout", type=_duration, default=60.0, metavar="TIME", help="per request")
    worker.add_argument("--insecure", action="store_true", help="do not verify TLS certificates")
    worker.add_argument(
        "--sample-interval",
        type=_duration,
        default=1.0,
        metavar="TIME",
        help="sample this host (CPU, memory, GPUs) and this worker for the master's run (default 1s)",
    )
    worker.add_argument("--no-sampler", action="store_true", help="do not sample this host")
    worker.add_argument("--config-stdin", action="store_true", help=argparse.SUPPRESS)

    ui = commands.add_parser(
        "ui",
        allow_abbrev=False,  # unknown options go to the scenario, as with `run`
        help="Locust's web UI with loadbench inside: each start/stop is a run with its report",
        description="Serve Locust's web UI (loopback by default) with loadbench plugged in: each start in the UI "
        "begins a run directory (exact per-request records, resource samples), each stop ends it and writes "
        "report.html. A 'loadbench' tab shows live resources and exact percentiles beside Locust's; "
        "/loadbench/ lists the session's runs with their reports. Ctrl-C quits.",
        epilog="Scenario options as for `loadbench run` (unknown options go to the scenario).\n\n"
        "examples:\n  loadbench ui --demo\n"
        "  loadbench ui --demo --scenario openai_chat --demo-llm-ttft-ms 80 --slo 'ttft_p99<200ms'\n"
        "  loadbench ui --target http://127.0.0.1:8000 --scenario json_post --data rows.jsonl --web-port 8090\n"
        "  locust -f scenarios/json_post.py --host http://127.0.0.1:8000   # plain Locust: the same plugin",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ui_where = ui.add_mutually_exclusive_group(required=True)
    ui_where.add_argument("--target", "-t", metavar="URL", help="base URL of the endpoint")
    ui_where.add_argument(
        "--demo", action="store_true", help="start the embedded demo endpoint on 127.0.0.1 and target it"
    )
    ui.add_argument("--scenario", "-s", metavar="NAME|FILE.py", help="default: probe the target and choose")
    ui.add_argument(
        "--users", "-u", type=int, default=10, metavar="N", help="the start form's users (default 10)"
    )
    ui.add_argument("--spawn-rate", "-r", type=float, metavar="R", help="the start form's spawn rate")
    ui.add_argument(
        "--warmup",
        type=_duration,
        default=2.0,
        metavar="TIME",
        help="excluded start of each run (default 2s)",
    )
    ui.add_argument(
        "--reports-dir", type=Path, default=Path("reports"), metavar="DIR", help="default reports/"
    )
    ui.add_argument("--web-host", default="127.0.0.1", help="address of the web UI (default 127.0.0.1)")
    ui.add_argument(
        "--web-port", type=int, default=8089, help="port of the web UI (default 8089; 0: any free)"
    )
    ui.add_argument("--header", "-H", action="append", default=[], metavar="'NAME: VALUE'", help="repeatable")
    ui.add_argument(
        "--timeout", type=_duration, default=60.0, metavar="TIME", help="per request (default 60s)"
    )
    ui.add_argument("--insecure", action="store_true", help="do not verify the target's TLS certificate")
    _add_demo_options(ui)
    _add_slo_option(ui, "each run's summary and the /loadbench/ page say PASS or FAIL")
    _add_llm_options(ui)
    _add_sampling_options(ui.add_argument_group("resource sampling, for each run (as for `loadbench run`)"))

    report = commands.add_parser(
        "report",
        help="re-analyze a run directory and re-render its report",
        description="Analyze a run directory from its files alone and write summary.json, timeseries.csv, "
        "report.html and summary.md into it.",
    )
    report.add_argument(
        "run_dir", type=Path, metavar="DIR", help="a run directory written by `loadbench run`"
    )

    compare = commands.add_parser(
        "compare",
        help="compare candidate runs with a base run: verdicts that survive noise, CI gates",
        description="Compare analyzed run directories: every metric side by side with its change, a 99.5% "
        "bootstrap confidence interval and a verdict (better / worse / same), overlay plots, and the runs' "
        "settings. Writes compare.html, compare.md (for a pull request) and compare.json.",
        epilog="rules (--fail-on): METRIC OP CHANGE, e.g. 'p99>+10%' 'p50>+5ms' 'throughput<-5%' "
        "'error_rate>+0.5pp' 'p99.9>+20%'. A rule fails only on a significant change, not on noise; a rule "
        "naming a metric that no run has is bad input.\n"
        "More than one candidate: each is compared with BASE, and the rules apply to every one.\n"
        "Exit codes: 0 passed, 1 a rule failed (for any candidate), 2 bad input.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    compare.add_argument(
        "runs", nargs="+", type=Path, metavar="RUN", help="BASE CANDIDATE [MORE...]: run directories"
    )
    compare.add_argument(
        "--out", "-o", type=Path, metavar="DIR", help="output folder (default: next to the candidate)"
    )
    compare.add_argument(
        "--fail-on", action="append", default=[], metavar="RULE", help="a gate, e.g. 'p99>+10%%' (repeatable)"
    )
    compare.add_argument(
        "--resamples", type=int, default=400, metavar="N", help="bootstrap resamples (default 400)"
    )
    compare.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")

    history = commands.add_parser(
        "history",
        help="plot key metrics across many runs and mark significant changes",
        description="Plot latency, throughput and error rate across many runs (e.g. nightly), with confidence "
        "intervals, and mark significant changes. Writes history.html and history.json.",
    )
    history.add_argument(
        "runs", metavar="DIR_OR_GLOB", help="a folder of run directories, a glob, or one run"
    )
    history.add_argument("--out", "-o", type=Path, metavar="DIR", help="output folder (default: DIR/history)")

    demo = commands.add_parser(
        "demo",
        help="serve the embedded demo model endpoint",
        description="Serve a scikit-learn digits classifier over HTTP: POST /predict and the Open Inference "
        "Protocol v2 routes under /v2. Stops on Ctrl-C or SIGTERM.",
    )
    demo.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    demo.add_argument("--port", type=_port, default=8000, help="port (default 8000; 0 picks a free one)")
    demo.add_argument("--latency-ms", type=_ms, default=0.0, help="added service time per prediction")
    demo.add_argument("--jitter-ms", type=_ms, default=0.0, help="added uniform random service time, 0..MS")
    demo.add_argument(
        "--asr-rtf",
        type=_times,
        default=0.3,
        help="POST /asr takes this times the audio's duration (default 0.3)",
    )
    demo.add_argument(
        "--llm-ttft-ms", type=_ms, default=30.0, help="LLM simulator: time to first token (default 30)"
    )
    demo.add_argument(
        "--llm-itl-ms", type=_ms, default=8.0, help="LLM simulator: time between tokens (default 8)"
    )
    demo.add_argument("--parent-pid", type=int, help=argparse.SUPPRESS)  # stop when it is gone

    agent = commands.add_parser(
        "agent",
        help="serve this host's resource samples to a remote `loadbench run --agent`",
        description="Sample this host (GPUs, CPU, memory, and a model-server process) and serve the samples over "
        "HTTP to `loadbench run --agent http://HOST:PORT` on the load-generator host, which aligns the clocks. "
        "Beyond loopback a token is required: --token or $LOADBENCH_AGENT_TOKEN.",
    )
    agent.add_argument("--bind", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    agent.add_argument("--port", type=_port, default=9109, help="port (default 9109)")
    agent.add_argument("--token", help="required bearer token (default: $LOADBENCH_AGENT_TOKEN)")
    agent.add_argument("--sample-interval", type=_duration, default=0.5, metavar="TIME", help="default 0.5s")
    agent.add_argument(
        "--server-pid", type=int, metavar="PID", help="the model server's process on this host"
    )
    agent.add_argument("--server-name", metavar="NAME", help="find the model server's process by name")

    add_sweep_parser(commands)
    commands.add_parser(
        "scenarios", help="list the built-in scenarios", description="List the built-in scenarios."
    )
    return parser


def spawn_demo(
    latency_ms: float,
    timeout_s: float = 30.0,
    asr_rtf: float | None = None,
    llm_ms: Sequence[float | None] = (),
) -> tuple[subprocess.Popen[str], str]:
    """Start ``loadbench demo`` on a free loopback port in a child process; return it and its URL.

    ``llm_ms``: the LLM simulator's (time to first token, time between tokens), None for its default.
    The demo runs in its own session: a Ctrl-C in the terminal reaches loadbench only, which stops
    the load first and the demo after (`stop_demo`); were the demo interrupted with it, the run's
    last requests would fail with 'connection refused'. It stops by itself when loadbench is gone."""
    if not 0 <= latency_ms < float("inf"):  # callers that did not check, e.g. `sweep --demo`
        raise UsageError(f"the demo's latency must be a number of ms >= 0, not {latency_ms:g}")
    command = [sys.executable, "-m", "loadbench", "demo", "--port", "0", "--latency-ms", str(latency_ms)]
    command += ["--parent-pid", str(os.getpid())]
    if asr_rtf is not None:
        command += ["--asr-rtf", str(asr_rtf)]
    for option, ms in zip(("--llm-ttft-ms", "--llm-itl-ms"), llm_ms, strict=False):
        if ms is not None:
            command += [option, str(ms)]
    # Its stderr goes to a file, not a pipe nobody reads: a failed start is told in one line.
    with tempfile.TemporaryFile("w+", encoding="utf-8") as stderr:
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=stderr, text=True, start_new_session=True
        )
        assert process.stdout is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and process.poll() is None:
            ready, _, _ = select.select([process.stdout], [], [], 0.2)
            if ready:
                match = re.search(r"http://\S+", process.stdout.readline())
                if match:
                    return process, match.group(0)
        process.kill()
        process.wait()
        stderr.seek(0)
        lines = stderr.read().strip().splitlines()
    reason = lines[-1].removeprefix("loadbench: error: ") if lines else ""
    raise TargetError("the embedded demo endpoint did not start" + (f": {reason}" if reason else ""))


def demo_scenario_args(scenario: str | None, scenario_args: list[str]) -> list[str]:
    """With ``--demo``, ``json_post`` sends the demo's labeled digits unless told what to send."""
    told = any(a in ("--data", "--payload") or a.startswith(("--data=", "--payload=")) for a in scenario_args)
    if scenario is None or Path(scenario).stem != "json_post" or told:
        return scenario_args
    from loadbench.data import DIGITS_JSONL

    return [*scenario_args, "--data", str(DIGITS_JSONL)]


def start_demo(
    args: argparse.Namespace, scenario_args: list[str]
) -> tuple[subprocess.Popen[str], str, list[str]]:
    """``--demo`` of `run` and `ui`: check the ``--demo-*`` options, start the demo endpoint;
    return it, its URL and the scenario's arguments (`demo_scenario_args`)."""
    if args.demo_asr_rtf is not None and not 0 <= args.demo_asr_rtf < float("inf"):
        raise UsageError("--demo-asr-rtf must be a number >= 0")
    llm_ms = (args.demo_llm_ttft_ms, args.demo_llm_itl_ms)
    if any(ms is not None and not 0 <= ms < float("inf") for ms in llm_ms):
        raise UsageError("--demo-llm-ttft-ms and --demo-llm-itl-ms must be numbers >= 0")
    if not 0 <= args.demo_latency_ms < float("inf"):
        raise UsageError("--demo-latency-ms must be a number >= 0")
    scenario_args = demo_scenario_args(args.scenario, scenario_args)
    demo, target = spawn_demo(args.demo_latency_ms, asr_rtf=args.demo_asr_rtf, llm_ms=llm_ms)
    return demo, target, scenario_args


def stop_demo(process: subprocess.Popen[str]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _format_ms(value: float | None) -> str:
    return "–" if value is None else f"{value:.3g}" if value < 100 else f"{value:,.0f}"


def console_summary(summary: dict[str, Any]) -> str:
    """A few lines for the terminal; the report has the rest."""
    run, req, lat = summary["run"], summary["requests"], summary["latency_ms"]
    tput = summary.get("throughput_rps")
    lines = [
        f"{run['scenario']} against {run['target']}: {req['total']:,} requests in {summary['window']['duration_s']:.1f} s"
        f" measured ({req['warmup_excluded']:,} in warmup excluded) · {run['status']}",
        f"  throughput {'–' if tput is None else f'{tput:,.1f}'} req/s   errors {req['errors']:,} ({req['error_rate']:.2%})",
        "  latency ms  "
        + "  ".join(f"{k} {_format_ms(lat[k])}" for k in ("p50", "p90", "p99", "p999", "max")),
    ]
    service = summary.get("service_time_ms") or {}
    schedule = summary.get("schedule")
    if schedule:
        lines.append(
            "  service ms  "
            + "  ".join(f"{k} {_format_ms(service.get(k))}" for k in ("p50", "p90", "p99", "p999", "max"))
            + "   (from the actual send)"
        )
        late = schedule.get("lateness_ms") or {}
        lines.append(
            f"  schedule    {schedule.get('achieved_send_rps') or 0:,.1f} req/s sent"
            + (f" of {schedule['requested_rps']:g} requested" if schedule.get("requested_rps") else "")
            + f"; sends late p50 {_format_ms(late.get('p50'))} p99 {_format_ms(late.get('p99'))} ms"
            + f"; {schedule.get('late_requests', 0):,} over {schedule.get('late_threshold_ms', 10):g} ms late"
        )
    ttft, tpot, tokens = (summary.get(k) or {} for k in ("ttft_ms", "tpot_ms", "tokens"))
    if ttft or tokens:
        goodput = summary.get("goodput_rps")
        lines.append(
            "  LLM ms      "
            + f"TTFT p50 {_format_ms(ttft.get('p50'))} p99 {_format_ms(ttft.get('p99'))}"
            + f"   TPOT p50 {_format_ms(tpot.get('p50'))} p99 {_format_ms(tpot.get('p99'))}"
            + f"   {tokens.get('output_per_s') or 0:,.1f} output tokens/s"
            + ("" if goodput is None else f"   goodput {goodput:,.1f} req/s")
        )
    lines += [f"  note: {n}" for n in summary.get("notices", []) if not n.startswith("INVALID: ")]
    validity = summary.get("validity")
    if validity and not validity["valid"]:
        lines.append("  INVALID measurement: " + "; ".join(validity["reasons"]))
    for check in (summary.get("slo") or {}).get("checks", []):
        value = check["value"]
        if check.get("per_request"):
            shown = (
                "not measured" if value is None else f"met by {value:.1%} of requests; counted into goodput"
            )
            lines.append(f"  SLO INFO  {check['expr']}  ({shown})")
            continue
        shown = "not measured" if value is None else f"{value:g}"
        lines.append(f"  SLO {'PASS' if check['passed'] else 'FAIL'}  {check['expr']}  (measured {shown})")
    return "\n".join(lines)


def _analyze_and_report(run_dir: Path) -> dict[str, Any]:
    from loadbench.analyze.analyzer import analyze_run
    from loadbench.record import rundir
    from loadbench.record.records import read_requests
    from loadbench.report.report import render_report

    rundir.read_meta(run_dir)  # a directory that is not a run fails on its meta.json first
    requests = read_requests(run_dir / rundir.REQUESTS)  # read once: analysis and report share it
    summary = analyze_run(run_dir, requests)
    report_path, _ = render_report(run_dir, requests)
    print(console_summary(summary))
    print(f"report: {report_path}")
    return summary


def cmd_run(args: argparse.Namespace, scenario_args: list[str], argv: list[str]) -> int:
    demo = None
    target = args.target
    if args.demo:
        demo, target, scenario_args = start_demo(args, scenario_args)
    try:
        # Imported here: locust monkey-patches the standard library with gevent on import,
        # which only the driving stage may have.
        from loadbench.drive import runner
        from loadbench.record import rundir

        config = RunConfig(
            target=target,
            scenario=args.scenario,
            users=args.users,
            spawn_rate=args.spawn_rate,
            duration_s=args.duration,
            warmup_s=args.warmup,
            out_dir=args.out,
            reports_dir=args.reports_dir,
            headers=args.header,
            scenario_args=scenario_args,
            force=args.force,
            quiet=args.quiet,
            timeout_s=args.timeout,
            insecure=args.insecure,
            sample_interval_s=None if args.no_sampler else args.sample_interval,
            server_pid=args.server_pid,
            server_name=args.server_name,
            scrapes=args.scrape,
            scrape_match=args.scrape_match,
            scrape_interval_s=args.scrape_interval,
            agents=args.agent,
            agent_token=args.agent_token or os.environ.get("LOADBENCH_AGENT_TOKEN"),
            rate=args.rate,
            arrival=args.arrival,
            burstiness=args.burstiness,
            seed=args.seed,
            max_inflight=args.max_inflight,
            trace=args.trace,
            trace_scale=args.trace_scale,
            shape=args.shape,
            stages_file=args.stages,
            slos=args.slo,
            realtime_tokens_per_s=args.realtime_tokens_per_s,
            workers=args.workers,
            expect_workers=args.expect_workers,
            master_bind=args.master_bind,
            master_port=args.master_port,
            worker_wait_s=args.worker_wait,
        )
        run_dir = runner.run(config, argv)
    finally:
        if demo is not None:
            stop_demo(demo)
    summary = _analyze_and_report(run_dir)
    if summary["run"]["status"] == rundir.STATUS_INTERRUPTED:
        return EXIT_INTERRUPTED
    return gate_exit_code(summary)


def gate_exit_code(summary: dict[str, Any]) -> int:
    """1 when an SLO failed, or when SLOs were given and the measurement is INVALID; else 0."""
    checks = summary.get("slo", {}).get("checks", [])
    if not checks:
        return 0
    validity = summary.get("validity", {"valid": True})
    return EXIT_GATE_FAILED if not summary["slo"]["passed"] or not validity.get("valid", True) else 0


def cmd_ui(args: argparse.Namespace, scenario_args: list[str], argv: list[str]) -> int:
    demo = None
    target = args.target
    if args.demo:
        demo, target, scenario_args = start_demo(args, scenario_args)
    try:
        from loadbench.ui import plugin as webui  # imports locust (gevent): the driving stage only

        config = RunConfig(
            target=target,
            scenario=args.scenario,
            users=args.users,
            spawn_rate=args.spawn_rate,
            duration_s=float("inf"),  # runs end when stopped in the UI; meta.json says null
            warmup_s=args.warmup,
            reports_dir=args.reports_dir,
            headers=args.header,
            scenario_args=scenario_args,
            timeout_s=args.timeout,
            insecure=args.insecure,
            sample_interval_s=None if args.no_sampler else args.sample_interval,
            server_pid=args.server_pid,
            server_name=args.server_name,
            scrapes=args.scrape,
            scrape_match=args.scrape_match,
            scrape_interval_s=args.scrape_interval,
            agents=args.agent,
            agent_token=args.agent_token or os.environ.get("LOADBENCH_AGENT_TOKEN"),
            slos=args.slo,  # checked before the UI starts; gated in each run's summary
            realtime_tokens_per_s=args.realtime_tokens_per_s,
        )
        return webui.serve(config, args.web_host, args.web_port, argv)
    finally:
        if demo is not None:
            stop_demo(demo)


def cmd_compare(args: argparse.Namespace) -> int:
    from loadbench.compare.compare import compare_many, parse_rule
    from loadbench.compare.report import candidate_verdict_lines, render_compare
    from loadbench.compare.rundata import load_run

    if len(args.runs) < 2:
        raise UsageError("compare needs a base and at least one candidate run directory")
    if args.resamples < 50:
        raise UsageError("--resamples must be at least 50")
    rules = [parse_rule(text) for text in args.fail_on]
    runs = [load_run(path) for path in args.runs]
    # Every further run is a candidate of its own against the base; gates apply to each.
    result = compare_many(runs[0], runs[1:], rules, resamples=args.resamples, seed=args.seed)
    out = args.out or args.runs[1].parent / f"compare-{args.runs[1].name}-vs-{args.runs[0].name}"
    paths = render_compare(result, runs, out)
    md = paths[1].read_text(encoding="utf-8")
    print(md.splitlines()[0] if md else "")
    if len(runs) > 2:
        print("\n".join(candidate_verdict_lines(result)))
    for path in paths:
        print(f"{path.suffix[1:]}: {path}")
    return 0 if result["all_passed"] else 1


def cmd_history(args: argparse.Namespace) -> int:
    from loadbench.compare.history import expand_runs, load_history, render_history

    paths = expand_runs(args.runs)
    rows = load_history(paths)
    base = Path(args.runs) if Path(args.runs).is_dir() else Path("reports")
    html_path, json_path = render_history(rows, args.out or base / "history")
    for warning in getattr(rows, "warnings", []):
        print(f"loadbench: warning: {warning}", file=sys.stderr)
    print(f"{len(rows)} runs")
    print(f"html: {html_path}")
    print(f"json: {json_path}")
    return 0


def cmd_scenarios() -> int:
    from loadbench.drive.locustfiles import BUILTIN_SCENARIOS_DIR, builtin_scenarios

    for name in builtin_scenarios():
        doc = (BUILTIN_SCENARIOS_DIR / f"{name}.py").read_text(encoding="utf-8").split('"""')
        first = doc[1].strip().splitlines()[0] if len(doc) > 1 else ""
        print(f"{name:14} {first}")
    return 0


def _tokens_per_s(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of tokens per second") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text}: the pace must be a number of tokens/s above 0")
    return value


def _workers(text: str) -> int:
    if text == "auto":
        from loadbench.drive.distributed import available_cores

        return available_cores()
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of workers or 'auto'") from None
    if not 0 <= value <= 256:
        raise argparse.ArgumentTypeError(f"{value} workers: use 0 to 256, or auto")
    return value


def cmd_worker(args: argparse.Namespace, scenario_args: list[str]) -> int:
    from loadbench.drive.distributed import WorkerSettings, read_stdin_settings, run_worker
    from loadbench.values import check_target

    if args.config_stdin:
        return run_worker(read_stdin_settings())
    if not (args.master_host and args.target and args.scenario):
        raise UsageError(
            "loadbench worker needs --master-host, --target and --scenario (as given to the master)"
        )
    header_args = [arg for h in args.header for arg in ("--header", h)]
    return run_worker(
        WorkerSettings(
            master_host=args.master_host,
            master_port=args.master_port,
            target=check_target(args.target),
            scenario=args.scenario,
            scenario_args=[*scenario_args, *header_args],
            timeout_s=args.timeout,
            insecure=args.insecure,
            headers=args.header,
            sample_interval_s=None if args.no_sampler else max(args.sample_interval, 0.1),
        )
    )


def scrub_error(message: str, argv: Sequence[str]) -> str:
    """An error line with every secret of the command line and the environment masked.

    The last line of defence: messages redact at their source, but one that echoes an option,
    a server's text or a library's exception must still never print a credential."""
    from loadbench.redact import argv_secrets, scrub

    env = [os.environ.get(name, "") for name in ("LOADBENCH_AGENT_TOKEN", "LOADBENCH_SCRAPE_AUTH")]
    return scrub(message, [*argv_secrets(argv), *env])


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    as_master = argv[:1] == ["master"] and not {"-h", "--help"} & set(argv)
    if as_master:
        argv = ["run", *argv[1:]]
    try:
        args, extra = parser.parse_known_args(argv)
        if as_master and not args.expect_workers:
            raise UsageError("loadbench master needs --expect-workers N (the workers on other hosts)")
        if args.command is None:
            parser.print_help()
            return EXIT_USAGE
        if extra and args.command not in ("run", "sweep", "ui", "worker"):
            raise UsageError(
                f"unrecognized arguments: {' '.join(extra)} (see `loadbench {args.command} --help`)"
            )
        if args.command == "run":
            return cmd_run(args, extra, ["loadbench", *argv])
        if args.command == "ui":
            return cmd_ui(args, extra, ["loadbench", *argv])
        if args.command == "worker":
            return cmd_worker(args, extra)
        if args.command == "master":
            parser.parse_args(["run", "--help"])
        if args.command == "report":
            _analyze_and_report(args.run_dir)
            return 0
        if args.command in ("compare", "history"):
            try:
                return cmd_compare(args) if args.command == "compare" else cmd_history(args)
            except OSError as exc:  # an --out that cannot be made or written (e.g. under /proc)
                raise UsageError(f"cannot write {exc.filename or args.out}: {exc.strerror or exc}") from None
        if args.command == "sweep":
            return cmd_sweep(args, extra, parser)
        if args.command == "agent":
            from loadbench.sample.agent import serve_agent

            serve_agent(
                args.bind, args.port, args.token, args.sample_interval, args.server_pid, args.server_name
            )
            return 0
        if args.command == "demo":
            from loadbench.demo.server import serve_demo

            serve_demo(
                args.host,
                args.port,
                args.latency_ms,
                args.jitter_ms,
                args.asr_rtf,
                args.llm_ttft_ms,
                args.llm_itl_ms,
                args.parent_pid,
            )
            return 0
        return cmd_scenarios()
    except LoadbenchError as exc:
        print(f"loadbench: error: {scrub_error(str(exc), argv)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("loadbench: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
