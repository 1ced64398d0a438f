"""``loadbench compare BASE CAND...`` (per-metric verdicts, CI gates) and ``loadbench history``
(key metrics across many runs)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from loadbench.cli.ci import add_junit_option, check_junit, publish_compare
from loadbench.cli.options import Call
from loadbench.errors import UsageError

COMPARE_EPILOG = (
    "rules (--fail-on): METRIC OP CHANGE, e.g. 'p99>+10%' 'p50>+5ms' 'throughput<-5%' "
    "'error_rate>+0.5pp' 'p99.9>+20%'. A rule fails only on a significant change, not on noise; a rule "
    "naming a metric that no run has is bad input.\n"
    "More than one candidate: each is compared with BASE, and the rules apply to every one; with rules, "
    "a run the analyzer called INVALID fails them too.\n"
    "Runs of another scenario, or against another target (host and path; the port may differ), are "
    "refused unless --force; every other difference is printed as a warning.\n"
    "--junit FILE: one testcase per rule (and per run's validity) for CI test reports; docs/ci.md "
    "has a pipeline that compares every build with the main branch's last run.\n"
    "Exit codes: 0 passed, 1 a rule failed (for any candidate), 2 bad input or runs not comparable."
)


def add_compare_parser(commands: Any) -> None:
    compare = commands.add_parser(
        "compare",
        help="compare candidate runs with a base run: verdicts that survive noise, CI gates",
        description="Compare analyzed run directories: every metric side by side with its change, a 99.5% "
        "bootstrap confidence interval and a verdict (better / worse / same), overlay plots, and the runs' "
        "settings. Writes compare.html, compare.md (for a pull request) and compare.json.",
        epilog=COMPARE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    compare.set_defaults(handler=writing(cmd_compare))
    compare.add_argument(
        "runs", nargs="+", type=Path, metavar="RUN", help="BASE CANDIDATE [MORE...]: run directories"
    )
    compare.add_argument(
        "--out", "-o", type=Path, metavar="DIR", help="output folder (default: next to the candidate)"
    )
    compare.add_argument(
        "--fail-on", action="append", default=[], metavar="RULE", help="a gate, e.g. 'p99>+10%%' (repeatable)"
    )
    add_junit_option(compare)
    compare.add_argument(
        "--resamples", type=int, default=400, metavar="N", help="bootstrap resamples (default 400)"
    )
    compare.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    compare.add_argument(
        "--force",
        action="store_true",
        help="compare runs of different scenarios or targets anyway (they are refused otherwise)",
    )


def add_history_parser(commands: Any) -> None:
    history = commands.add_parser(
        "history",
        help="plot key metrics across many runs and mark significant changes",
        description="Plot latency, throughput and error rate across many runs (e.g. nightly), with confidence "
        "intervals, and mark significant changes. Runs of different scenarios or targets (host and path) are "
        "separate series, with a warning: a change is marked only against the previous run of the same "
        "series. Writes history.html and history.json.",
    )
    history.set_defaults(handler=writing(cmd_history))
    history.add_argument(
        "runs",
        nargs="+",
        metavar="DIR_OR_GLOB",
        help="folders of run directories, globs, or runs (several: their runs together)",
    )
    history.add_argument(
        "--out",
        "-o",
        type=Path,
        metavar="DIR",
        help="output folder (default: DIR/history for one folder DIR, else reports/history)",
    )


def writing(command: Callable[[argparse.Namespace], int]) -> Callable[[Call], int]:
    """``command`` with an --out that cannot be made or written (e.g. under /proc) as bad input."""

    def run(call: Call) -> int:
        try:
            return command(call.args)
        except OSError as exc:
            raise UsageError(f"cannot write {exc.filename or call.args.out}: {exc.strerror or exc}") from None

    return run


def cmd_compare(args: argparse.Namespace) -> int:
    from loadbench.compare.compare import check_comparable, compare_many, parse_rule
    from loadbench.compare.rundata import load_run
    from loadbench.compare.verdict import verdict_text

    if len(args.runs) < 2:
        raise UsageError("compare needs a base and at least one candidate run directory")
    if args.resamples < 50:
        raise UsageError("--resamples must be at least 50")
    rules = [parse_rule(text) for text in args.fail_on]
    check_junit(args)
    runs = [load_run(path) for path in args.runs]
    if not args.force:
        check_comparable(runs[0], runs[1:])
    # Every further run is a candidate of its own against the base; gates apply to each.
    result = compare_many(runs[0], runs[1:], rules, resamples=args.resamples, seed=args.seed)
    # The report's plots (matplotlib) only once the runs have loaded: bad input is quicker said.
    from loadbench.compare.report import candidate_entries, candidate_verdict_lines, render_compare

    out = args.out or args.runs[1].parent / f"compare-{args.runs[1].name}-vs-{args.runs[0].name}"
    paths = render_compare(result, runs, out)
    # The terminal gets plain text (compare.md's escapes are for Markdown), and the warnings:
    # a verdict on runs that measured different things must not look clean there.
    entries = candidate_entries(result)
    for entry in entries:
        who = f"candidate {entry.get('run') or '?'}: " if len(entries) > 1 else ""
        for warning in entry.get("warnings") or []:
            print(f"loadbench: warning: {who}{warning}", file=sys.stderr)
    print(verdict_text(result))
    if len(runs) > 2:
        print("\n".join(candidate_verdict_lines(result, markdown=False)))
    for path in paths:
        print(f"{path.suffix[1:]}: {path}")
    publish_compare(args, result, rules, out)
    return 0 if result["all_passed"] else 1


def cmd_history(args: argparse.Namespace) -> int:
    from loadbench.compare.history import expand_runs, load_history, render_history

    paths = expand_runs(args.runs)
    rows = load_history(paths)
    base = Path(args.runs[0]) if len(args.runs) == 1 and Path(args.runs[0]).is_dir() else Path("reports")
    html_path, json_path = render_history(rows, args.out or base / "history")
    for warning in getattr(rows, "warnings", []):
        print(f"loadbench: warning: {warning}", file=sys.stderr)
    print(f"{len(rows)} runs")
    print(f"html: {html_path}")
    print(f"json: {json_path}")
    return 0
