"""``loadbench ui``: Locust's web UI with loadbench inside; each start/stop there is a run."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from loadbench.cli.config import run_config, target_of
from loadbench.cli.live import add_metrics_options
from loadbench.cli.options import (
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
)
from loadbench.cli.serveroptions import RECORDS_OPTION
from loadbench.demo.args import add_demo_cache_option

UI_EPILOG = (
    "Scenario options as for `loadbench run` (unknown options go to the scenario).\n\n"
    "examples:\n  loadbench ui --demo\n"
    "  loadbench ui --demo --scenario openai_chat --demo-llm-ttft-ms 80 --slo 'ttft_p99<200ms'\n"
    "  loadbench ui --target http://127.0.0.1:8000 --scenario json_post --data rows.jsonl --web-port 8090\n"
    "  locust -f scenarios/json_post.py --host http://127.0.0.1:8000   # plain Locust: the same plugin"
)

UI_OPTIONS: tuple[Option, ...] = (
    (("--scenario", "-s"), {"metavar": "NAME|FILE.py", "help": "default: probe the target and choose"}),
    (
        ("--users", "-u"),
        {"type": int, "default": 10, "metavar": "N", "help": "the start form's users (default 10)"},
    ),
    (("--spawn-rate", "-r"), {"type": float, "metavar": "R", "help": "the start form's spawn rate"}),
    (
        ("--warmup",),
        {
            "type": duration,
            "default": 2.0,
            "metavar": "TIME",
            "help": "excluded start of each run (default 2s)",
        },
    ),
    (
        ("--reports-dir",),
        {"type": Path, "default": Path("reports"), "metavar": "DIR", "help": "default reports/"},
    ),
    (("--web-host",), {"default": "127.0.0.1", "help": "address of the web UI (default 127.0.0.1)"}),
    (
        ("--web-port",),
        {"type": int, "default": 8089, "help": "port of the web UI (default 8089; 0: any free)"},
    ),
    (
        ("--header", "-H"),
        {"action": "append", "default": [], "metavar": "'NAME: VALUE'", "help": "repeatable"},
    ),
    (
        ("--timeout",),
        {"type": duration, "default": 60.0, "metavar": "TIME", "help": "per request (default 60s)"},
    ),
    (("--insecure",), {"action": "store_true", "help": "do not verify the target's TLS certificate"}),
    PREFLIGHT_OPTION,
)


def add_ui_parser(commands: Any) -> None:
    ui = commands.add_parser(
        "ui",
        allow_abbrev=False,  # unknown options go to the scenario, as with `run`
        help="Locust's web UI with loadbench inside: each start/stop is a run with its report",
        description="Serve Locust's web UI (loopback by default) with loadbench plugged in: each start in the UI "
        "begins a run directory (exact per-request records, resource samples), each stop ends it and writes "
        "report.html. A 'loadbench' tab shows live resources and exact percentiles beside Locust's; "
        "/loadbench/ lists the session's runs with their reports. Ctrl-C quits.",
        epilog=UI_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ui.set_defaults(handler=cmd_ui, passes_extra=True)
    add_where(ui, "base URL of the endpoint")
    add_options(ui, (*UI_OPTIONS, RECORDS_OPTION))
    add_options(ui.add_argument_group("responses (as for `loadbench run`)"), RESPONSE_OPTIONS)
    add_options(
        ui.add_argument_group("several targets and retries (as for `loadbench run`)"), ROUTING_OPTIONS
    )
    add_demo_options(ui)
    add_demo_cache_option(ui)
    add_slo_option(ui, "each run's summary and the /loadbench/ page say PASS or FAIL")
    add_llm_options(ui)
    sampling = ui.add_argument_group("resource sampling, for each run (as for `loadbench run`)")
    add_options(sampling, SAMPLING_OPTIONS)
    add_metrics_options(ui)


def cmd_ui(call: Call) -> int:
    args = call.args
    with target_of(args, call.extra) as (target, scenario_args):
        from loadbench.ui import plugin as webui  # imports locust (gevent): the driving stage only

        # Runs end when stopped in the UI (meta.json says null); the --slo gates are checked before
        # the UI starts and judged in each run's summary.
        config = run_config(args, target, scenario_args, duration_s=float("inf"))
        return webui.serve(config, args.web_host, args.web_port, ["loadbench", *call.argv])
