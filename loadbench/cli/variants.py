"""``loadbench variants RUN...``: model variants side by side (quality, latency, memory, Pareto)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from loadbench.cli.compare import writing
from loadbench.errors import UsageError

EPILOG = (
    "Each RUN is an analyzed run directory (or a sweep directory: its capacity step, and its capacity "
    "as the throughput), optionally DIR=LABEL. A run's label is that, else what `loadbench run --label "
    "NAME` recorded, else the directory's name.\n"
    "Runs that ran another scenario or sent other data (--data / --payload) than the first are refused "
    "unless --force; the model's path may differ (each variant is served under its own).\n"
    "Exit codes: 0 done, 1 a variant is flagged and --fail-on-drop was given, 2 bad input."
)


def add_variants_parser(commands: Any) -> None:
    variants = commands.add_parser(
        "variants",
        help="compare model variants (fp32, int8, pruned...): quality vs latency vs memory, Pareto plot",
        description="Put runs of a model's variants side by side: accuracy, macro F1 and recall, p50 and p99 "
        "latency, throughput (or capacity under the SLO for a sweep), server RSS and GPU memory, energy per "
        "request, each with its confidence interval and its difference to the baseline; marks the variants "
        "on the Pareto front (no other variant at least as good on accuracy, p99 and memory and better on "
        "one) and flags those that lose more accuracy than --max-quality-drop.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    variants.set_defaults(handler=writing(cmd_variants))
    variants.add_argument(
        "runs", nargs="+", metavar="RUN", help="run or sweep directories, each DIR or DIR=LABEL"
    )
    variants.add_argument(
        "--baseline", metavar="LABEL", help="the variant the others are compared with (default: the first)"
    )
    variants.add_argument(
        "--max-quality-drop",
        default="1%",
        metavar="DROP",
        help="flag a variant whose accuracy is more than DROP below the baseline's: points of accuracy "
        "(1%%, 0.5pp) or a fraction (0.01); default 1%%",
    )
    variants.add_argument("--fail-on-drop", action="store_true", help="exit 1 when a variant is flagged")
    variants.add_argument(
        "--out",
        "-o",
        type=Path,
        metavar="DIR",
        help="write variants.json, .md and .html here (default: print the table)",
    )
    variants.add_argument(
        "--force", action="store_true", help="compare runs of different scenarios or data anyway"
    )
    variants.add_argument(
        "--quiet", "-q", action="store_true", help="print only the output paths (with --out) and flags"
    )
    variants.add_argument(
        "--resamples", type=int, default=400, metavar="N", help="bootstrap resamples (default 400)"
    )
    variants.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")


def cmd_variants(args: argparse.Namespace) -> int:
    from loadbench.variants.variants import (
        check_same_model,
        load_variant,
        parse_drop,
        parse_spec,
        variants_table,
    )

    if args.resamples < 50:
        raise UsageError("--resamples must be at least 50")
    max_drop = parse_drop(args.max_quality_drop)
    specs = [parse_spec(text) for text in args.runs]
    variants = [load_variant(path, label) for path, label in specs]
    if not args.force:
        check_same_model(variants)
    table = variants_table(variants, args.baseline, max_drop, args.resamples, args.seed)
    from loadbench.variants.render import variants_markdown, write_variants

    if args.out is not None:
        for path in write_variants(table, args.out):
            print(f"{path.suffix[1:]}: {path}")
    elif not args.quiet:
        print(variants_markdown(table))
    flagged = [e["label"] for e in table["variants"] if e.get("flagged")]
    for label in flagged:
        print(f"loadbench: warning: {label} loses more accuracy than --max-quality-drop", file=sys.stderr)
    return 1 if flagged and args.fail_on_drop else 0
