"""``loadbench run`` (drive -> record -> analyze -> report) and ``loadbench master`` (the same, for
workers on other hosts): their options and their wiring.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from loadbench.cli.ci import add_junit_option, check_junit, publish_run
from loadbench.cli.config import run_config, target_of
from loadbench.cli.live import add_metrics_options
from loadbench.cli.options import (
    KEEP_GOING_OPTION,
    PREFLIGHT_OPTION,
    RESPONSE_OPTIONS,
    ROUTING_OPTIONS,
    SAMPLING_OPTIONS,
    Call,
    Option,
    add_demo_options,
    add_llm_options,
    add_options,
    add_slo_option,
    add_where,
    duration,
    positive_duration,
    workers,
)
from loadbench.cli.serveroptions import COLD_START_OPTION, LABEL_OPTION, RECORDS_OPTION
from loadbench.cli.summary import analyze_and_report, run_exit_code
from loadbench.demo.args import add_demo_cache_option, port
from loadbench.redact import secret_values
from loadbench.values import bare_host_port, check_target

RUN_EPILOG = """\
scenario options:
  Options loadbench does not know are passed to the scenario. The built-in ones take:
    json_post    --path /predict  --payload JSON | --data FILE.jsonl
    kserve_v2    --model NAME  --batch N  [--payload JSON | --data FILE.jsonl]
    kserve_v2_grpc  the same over gRPC, at --target grpc://HOST:PORT (grpcs:// for TLS)  [--raw-contents]
    openai_chat  --model NAME  [--no-stream]  --prompt TEXT | --input-tokens N | --data FILE.jsonl | --sharegpt F
                 --output-tokens N (--max-tokens)  --ignore-eos  --temperature T
                 --tokenizer PATH (count prompt tokens when the server sends no usage: loadbench[tokenizer])
    openai_completions  the same, POST /v1/completions
  `loadbench scenarios` lists them; a locustfile path works too.

examples:
  loadbench run --demo
  loadbench run --target http://127.0.0.1:8000 --scenario json_post --data rows.jsonl -u 32 -d 60s
  loadbench run --target http://127.0.0.1:8080 --scenario kserve_v2 --model resnet --header 'Authorization: Bearer $TOKEN'
  loadbench run --target grpc://127.0.0.1:8001 --model resnet --data rows.jsonl   # Open Inference Protocol over gRPC
  loadbench run --target http://127.0.0.1:8000 --scenario my_locustfile.py --quiet
  loadbench run --target python://mymodel:predict --data rows.jsonl -u 4   # in-process: the model's own latency
  loadbench run --target http://127.0.0.1:8001 --target http://127.0.0.1:8002 --balance p2c --retries 2   # two replicas
  loadbench run --targets replicas.txt --scenario kserve_v2 --retries 1 --retry-on 503,connect --retry-budget 10%
  loadbench run --target http://127.0.0.1:8000 --rate 50 -d 2m --slo 'p99<300ms' --slo 'error_rate<1%'
  loadbench run --target http://127.0.0.1:8000 --slo 'p99<300ms' --junit junit.xml --quiet   # CI: docs/ci.md
  loadbench run --target http://127.0.0.1:8000 --rate 1 --shape step:20,40,80:30s   # open-loop steps
  loadbench run --target http://127.0.0.1:8000 --scrape http://127.0.0.1:8000/metrics --scrape-match '^vllm:'
  loadbench run --target http://gpu-box:8000 --agent http://gpu-box:9109   # with $LOADBENCH_AGENT_TOKEN set

Before the load, one request of the scenario is sent (to each target; not recorded): if it fails, nothing runs
(exit code 2) and the terminal quotes the server, shows what was sent and the options to change;
--no-preflight skips it. A run in which no request succeeds is stopped after 5 s and 10 failed
requests, whichever comes later (and once a failure started after the warmup), unless
--keep-going; its run directory and report are still written, and the terminal says why,
quoting the most common error.

Exit codes: 0 done; 1 an --slo failed (or the run was INVALID with --slo given); 2 bad input
(one line on stderr) or a failed preflight (nothing written); 3 the target failed every request,
or nothing was recorded (the run's status is `failed`; the report is still written); 130
interrupted (the report is still written).
Metric definitions: docs/metrics.md. Run directory format: docs/run-format.md.
"""
RUN_OPTIONS: tuple[Option, ...] = (
    (
        ("--scenario", "-s"),
        {
            "metavar": "NAME|FILE.py",
            "help": "built-in scenario name or locustfile path (default: probe the target and choose)",
        },
    ),
    (
        ("--users", "-u"),
        {"type": int, "default": 10, "metavar": "N", "help": "concurrent users (default 10)"},
    ),
    (
        ("--spawn-rate", "-r"),
        {"type": float, "metavar": "R", "help": "users started per second (default: all in 1 s)"},
    ),
    (
        ("--duration", "-d"),
        {
            "type": duration,
            "default": 30.0,
            "metavar": "TIME",
            "help": "load duration incl. warmup: 30s, 2m, 1h30m (default 30s)",
        },
    ),
    (
        ("--warmup",),
        {
            "type": duration,
            "default": 2.0,
            "metavar": "TIME",
            "help": "requests that start in this first part are excluded from the metrics (default 2s)",
        },
    ),
    (
        ("--out", "-o"),
        {"type": Path, "metavar": "DIR", "help": "run directory (default REPORTS_DIR/<UTC time>-<scenario>)"},
    ),
    (
        ("--reports-dir",),
        {
            "type": Path,
            "default": Path("reports"),
            "metavar": "DIR",
            "help": "where default run directories go (default reports/)",
        },
    ),
    (
        ("--header", "-H"),
        {
            "action": "append",
            "default": [],
            "metavar": "'NAME: VALUE'",
            "help": "header sent with every request; repeatable; credential values are never written anywhere",
        },
    ),
    (
        ("--timeout",),
        {
            "type": duration,
            "default": 60.0,
            "metavar": "TIME",
            "help": "per-request timeout: a slower answer counts as an error of kind 'timeout' (default 60s)",
        },
    ),
    (
        ("--insecure",),
        {"action": "store_true", "help": "do not verify the target's TLS certificate (the report warns)"},
    ),
    (("--force",), {"action": "store_true", "help": "write into an existing, non-empty run directory"}),
    (("--quiet", "-q"), {"action": "store_true", "help": "no live progress line (for CI logs)"}),
    KEEP_GOING_OPTION,
    PREFLIGHT_OPTION,
)

LOAD_OPTIONS: tuple[Option, ...] = (
    (
        ("--rate",),
        {
            "type": float,
            "metavar": "R",
            "help": "open loop: send R requests/s on a schedule, whatever the responses do; "
            "latency counts from when each request was due (no coordinated omission)",
        },
    ),
    (
        ("--arrival",),
        {
            "choices": ("constant", "poisson", "gamma"),
            "default": "poisson",
            "help": "open loop: how requests are spaced (default poisson)",
        },
    ),
    (
        ("--burstiness",),
        {
            "type": float,
            "default": 1.0,
            "metavar": "B",
            "help": "--arrival gamma: shape B (1 = Poisson, <1 burstier, >1 more regular)",
        },
    ),
    (
        ("--seed",),
        {"type": int, "metavar": "N", "help": "seed of the arrival schedule (default: random, recorded)"},
    ),
    (
        ("--max-inflight",),
        {
            "type": int,
            "default": 1000,
            "metavar": "N",
            "help": "open loop: at most N requests in flight; later ones start late and count it (default 1000)",
        },
    ),
    (
        ("--trace",),
        {
            "type": Path,
            "metavar": "FILE",
            "help": "open loop: send at the offsets of a trace (CSV or JSONL with offset_s or timestamp)",
        },
    ),
    (
        ("--trace-scale",),
        {
            "type": float,
            "default": 1.0,
            "metavar": "X",
            "help": "multiply the trace's offsets (0.5: twice as fast)",
        },
    ),
    (
        ("--shape",),
        {
            "metavar": "SPEC",
            "help": "load shape: ramp:10-100:60s, step:10,20,40:30s, spike:20,200:60s:10s@30s "
            "(levels are users, or requests/s with --rate); sets the duration",
        },
    ),
    (
        ("--stages",),
        {"type": Path, "metavar": "FILE", "help": "load shape from a JSON or CSV file of stages"},
    ),
)

DISTRIBUTED_OPTIONS: tuple[Option, ...] = (
    (
        ("--workers",),
        {
            "type": workers,
            "default": 0,
            "metavar": "N|auto",
            "help": "start N local Locust worker processes under this one as master (auto: one per core); "
            "every worker's exact records reach this run directory",
        },
    ),
    (
        ("--expect-workers",),
        {
            "type": int,
            "default": 0,
            "metavar": "N",
            "help": "also wait for N remote `loadbench worker --master-host THIS_HOST` processes",
        },
    ),
    (
        ("--master-bind",),
        {
            "default": "127.0.0.1",
            "metavar": "HOST",
            "help": "where workers connect (default 127.0.0.1; 0.0.0.0 for other hosts: no authentication!)",
        },
    ),
    (
        ("--master-port",),
        {"type": port, "metavar": "PORT", "help": "default 5557 with --expect-workers, else any free port"},
    ),
    (
        ("--worker-wait",),
        {
            "type": positive_duration,
            "default": 60.0,
            "metavar": "TIME",
            "help": "how long to wait for every worker to connect before giving up (default 60s)",
        },
    ),
)


def add_run_parser(commands: Any) -> None:
    """Add ``run`` to ``commands`` (the subparsers action of the top parser)."""
    run: argparse.ArgumentParser = commands.add_parser(
        "run",
        allow_abbrev=False,  # unknown options go to the scenario: never guess they meant ours
        help="drive load at an endpoint, record every request, write the report",
        description="Drive load at a model endpoint with Locust (in-process), record every request exactly, "
        "then analyze the run and write report.html, summary.json and summary.md into the run directory.",
        epilog=RUN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.set_defaults(handler=cmd_run, passes_extra=True)
    add_where(
        run,
        "base URL of the endpoint, e.g. http://127.0.0.1:8000 or grpc://127.0.0.1:8001; a bare HOST:PORT "
        "is asked what it speaks (HTTP/1.1, else gRPC); or a model called in this process, no server: "
        "python://package.module:callable (called with each --data row as a dict) or onnx://PATH/model.onnx "
        "(an ONNX Runtime session); scenario inprocess",
    )
    add_options(run, RUN_OPTIONS)
    add_options(run, (LABEL_OPTION, COLD_START_OPTION, RECORDS_OPTION))
    add_options(
        run.add_argument_group("responses (docs/metrics.md 'Redirects', 'Response bodies')"), RESPONSE_OPTIONS
    )
    add_options(
        run.add_argument_group("several targets and retries (docs/metrics.md 'Targets', 'Retries')"),
        ROUTING_OPTIONS,
    )
    add_demo_options(run)
    add_demo_cache_option(run)
    load = run.add_argument_group(
        "load model (default: closed loop of --users; docs/metrics.md 'Load models')"
    )
    add_options(load, LOAD_OPTIONS)
    add_slo_option(load, "exit code 1 when one fails")
    add_junit_option(load)
    add_llm_options(run.add_argument_group("LLM streams (docs/metrics.md 'LLM metrics')"))
    dist = run.add_argument_group("distributed (Locust master/worker; docs/distributed.md)")
    add_options(dist, DISTRIBUTED_OPTIONS)
    add_metrics_options(run)
    sampling = run.add_argument_group("resource sampling (a separate process, on the requests' clock)")
    add_options(sampling, SAMPLING_OPTIONS)


def add_master_parser(commands: Any) -> None:
    """``master``: only its help is its own; `main` parses its options as `run`'s."""
    master = commands.add_parser(
        "master",
        help="`loadbench run` as a Locust master for workers on other hosts (needs --expect-workers N)",
        description="Exactly `loadbench run` (every option of `loadbench run --help` applies), waiting for "
        "--expect-workers N remote workers before the load starts.",
    )
    master.set_defaults(handler=cmd_master_help)


def cmd_master_help(call: Call) -> int:
    call.parser.parse_args(["run", "--help"])  # prints `run`'s help and exits
    return 0


def cmd_run(call: Call) -> int:
    check_junit(call.args)
    # Bad settings are one line before the driving stage's imports (Locust: a second of them).
    from loadbench.drive.checks import check_settings

    given = call.args.target
    if given is not None and bare_host_port(given) is None:
        check_target(given)
    check_settings(run_config(call.args, given or "", call.extra))
    with target_of(call.args, call.extra) as (target, scenario_args):
        # Imported here: locust monkey-patches the standard library with gevent on import,
        # which only the driving stage may have.
        from loadbench.drive import runner

        run_dir = runner.run(
            run_config(call.args, target, scenario_args),
            ["loadbench", *call.argv],
            keep_going=bool(getattr(call.args, "keep_going", False)),
        )
    summary = analyze_and_report(run_dir, quiet=bool(getattr(call.args, "quiet", False)))
    secrets = secret_values(call.args.header, target, scenario_args)
    publish_run(call.args, summary, run_dir, call.argv, secrets)
    return run_exit_code(summary)
