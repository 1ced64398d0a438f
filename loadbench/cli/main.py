"""The ``loadbench`` command: parse arguments and wire the stages together, nothing more.

    loadbench run --target URL ...   drive -> record -> analyze -> report
    loadbench run --workers N ...    the same on N local Locust workers (master/worker)
    loadbench master / worker        Locust master/worker across hosts
    loadbench ui --target URL ...    Locust's web UI; each start/stop is a run with its report
    loadbench report DIR             analyze -> report, from a run directory alone
    loadbench compare BASE CAND...   compare runs: per-metric verdicts, gates for CI
    loadbench history DIR_OR_GLOB    key metrics across many runs
    loadbench variants RUN...        model variants side by side: quality vs latency vs memory
    loadbench export DIR --csv       a run's records as CSV (or --parquet: convert the run directory)
    loadbench sweep --rates 1,2,4    one run per load: latency curve, knee, capacity, cost
    loadbench demo                   serve the embedded demo model endpoint
    loadbench agent                  serve this host's resource samples to a remote run
    loadbench scenarios              list the built-in scenarios

Every `LoadbenchError` becomes one line on stderr and exit code 2. Each command's options and
wiring are in a module of its own (cli/run.py ...); the options they share in cli/options.py.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from loadbench import __version__
from loadbench.cli.agent import add_agent_parser
from loadbench.cli.compare import add_compare_parser, add_history_parser
from loadbench.cli.demo import add_demo_parser
from loadbench.cli.export import add_export_parser
from loadbench.cli.options import EXIT_INTERRUPTED, EXIT_USAGE, Call, Parser
from loadbench.cli.report import add_report_parser
from loadbench.cli.run import add_master_parser, add_run_parser
from loadbench.cli.scenarios import add_scenarios_parser
from loadbench.cli.summary import console_summary
from loadbench.cli.sweep import add_sweep_parser
from loadbench.cli.ui import add_ui_parser
from loadbench.cli.variants import add_variants_parser
from loadbench.cli.whatif import add_whatif_parser
from loadbench.cli.worker import add_worker_parser
from loadbench.errors import LoadbenchError, UsageError

__all__ = ["build_parser", "console_summary", "main", "scrub_error"]  # console_summary: for its tests

# In `loadbench --help` order.
COMMANDS = (
    add_run_parser,
    add_master_parser,
    add_worker_parser,
    add_ui_parser,
    add_report_parser,
    add_compare_parser,
    add_history_parser,
    add_variants_parser,
    add_export_parser,
    add_demo_parser,
    add_agent_parser,
    add_sweep_parser,
    add_whatif_parser,
    add_scenarios_parser,
)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="loadbench",
        description="Load testing and latency benchmarking for deployed ML model endpoints, on Locust.",
        epilog="Start with `loadbench run --demo`, then `loadbench run --target URL`. "
        "Every run writes a run directory with exact per-request records, summary.json and report.html. "
        "Prefer Locust's web UI? `loadbench ui --demo` (or --target URL): each start/stop there is such a run.",
    )
    parser.add_argument("--version", action="version", version=f"loadbench {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for add in COMMANDS:
        add(commands)
    return parser


def scrub_error(message: str, argv: Sequence[str]) -> str:
    """An error line with every secret of the command line and the environment masked.

    The last line of defence: messages redact at their source, but one that echoes an option,
    a server's text or a library's exception must still never print a credential."""
    from loadbench.redact import argv_secrets, scrub

    env = [os.environ.get(name, "") for name in ("LOADBENCH_AGENT_TOKEN", "LOADBENCH_SCRAPE_AUTH")]
    return scrub(message, [*argv_secrets(argv), *env])


def dispatch(parser: argparse.ArgumentParser, argv: list[str], as_master: bool) -> int:
    """Parse ``argv`` and run its command."""
    args, extra = parser.parse_known_args(argv)
    if as_master and not args.expect_workers:
        raise UsageError("loadbench master needs --expect-workers N (the workers on other hosts)")
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    if extra and not getattr(args, "passes_extra", False):
        raise UsageError(f"unrecognized arguments: {' '.join(extra)} (see `loadbench {args.command} --help`)")
    return int(args.handler(Call(args, extra, argv, parser)))


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    # `master` is `run` with remote workers: parsed as `run`, but for its own --help.
    as_master = argv[:1] == ["master"] and not {"-h", "--help"} & set(argv)
    if as_master:
        argv = ["run", *argv[1:]]
    try:
        return dispatch(parser, argv, as_master)
    except LoadbenchError as exc:
        print(f"loadbench: error: {scrub_error(str(exc), argv)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("loadbench: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
