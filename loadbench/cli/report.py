"""``loadbench report DIR``: analyze -> report, from a run directory alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from loadbench.cli.options import Call
from loadbench.cli.summary import analyze_and_report


def add_report_parser(commands: Any) -> None:
    report = commands.add_parser(
        "report",
        help="re-analyze a run directory and re-render its report",
        description="Analyze a run directory from its files alone and write summary.json, timeseries.csv, "
        "report.html and summary.md into it.",
    )
    report.set_defaults(handler=cmd_report)
    report.add_argument(
        "run_dir", type=Path, metavar="DIR", help="a run directory written by `loadbench run`"
    )
    report.add_argument(
        "--quiet",
        "-q",
        action="store_true",
        help="no word on how a long run's records are read (the summary is printed all the same)",
    )


def cmd_report(call: Call) -> int:
    analyze_and_report(call.args.run_dir, quiet=call.args.quiet)
    return 0
