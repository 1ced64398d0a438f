"""``loadbench sweep --shared-prefix-tokens 0,512,2048``: the option, its checks, and the command
that runs one sweep per prefix length (`loadbench.sweep.prefix`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from loadbench.cli.ci import publish_suites
from loadbench.cli.options import Call
from loadbench.errors import UsageError

if TYPE_CHECKING:
    from loadbench.demo.spawn import DemoTiming
    from loadbench.sweep.sweep import SweepConfig

# The scenarios that take --shared-prefix-tokens (and report a time to first token).
PREFIX_SCENARIOS = ("openai_chat", "openai_completions")
MAX_LENGTHS = 20


def prefix_lengths(text: str) -> list[int]:
    """``0,512,2048``: whole numbers >= 0, no repeats, at most `MAX_LENGTHS` (an argparse type)."""
    example = "e.g. 0,512,2048"
    try:
        lengths = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected comma-separated numbers of tokens, {example}"
        ) from None
    if not lengths or any(n < 0 for n in lengths):
        raise argparse.ArgumentTypeError(f"{text!r}: numbers of tokens are whole numbers >= 0, {example}")
    if len(set(lengths)) < len(lengths):
        raise argparse.ArgumentTypeError(f"{text!r} names a length twice")
    if len(lengths) > MAX_LENGTHS:
        raise argparse.ArgumentTypeError(f"{text!r}: at most {MAX_LENGTHS} lengths")
    return lengths


def add_prefix_option(sweep: argparse.ArgumentParser) -> None:
    group = sweep.add_argument_group("shared prefix (docs/metrics.md 'Shared prefix')")
    group.add_argument(
        "--shared-prefix-tokens",
        type=prefix_lengths,
        metavar="N1,N2,...",
        help="one sweep of the given --concurrency or --rates per prefix length: every request starts with "
        "the same N-token system prompt (`run --shared-prefix-tokens N`), new to the server at each length; "
        "time to first token per length, uncached against cached: prefix.json/.md/.html "
        "(openai_chat, openai_completions; with --demo add --demo-llm-prefix-cache)",
    )


def check_prefix(args: argparse.Namespace, scenario: str | None) -> None:
    """The prefix sweep against the other sweep options (bad input before anything starts)."""
    if args.shared_prefix_tokens is None:
        return
    if args.find_capacity or args.replicas is not None:
        raise UsageError(
            "--shared-prefix-tokens sweeps prefix lengths at the loads of --concurrency or --rates: "
            "not with --find-capacity or --replicas"
        )
    if scenario is None or Path(scenario).stem not in PREFIX_SCENARIOS:
        raise UsageError(
            f"--shared-prefix-tokens needs an LLM scenario that streams: --scenario {' or '.join(PREFIX_SCENARIOS)}"
        )


def cmd_prefix(call: Call, config: SweepConfig, timing: DemoTiming | None) -> int:
    """Start the demo if asked, run one sweep per prefix length, write prefix.*; the exit code."""
    from loadbench.demo.spawn import start_demo, stop_demo
    from loadbench.record.rundir import read_json
    from loadbench.sweep.ci import sweep_suite
    from loadbench.sweep.prefix import PREFIX_MD, PrefixConfig, prefix_dir_name, prefix_headline, run_prefix
    from loadbench.sweep.report import SWEEP_JSON

    demo = None
    if timing is not None:
        demo, config.target = start_demo(timing)
    try:
        result, paths, code = run_prefix(PrefixConfig(call.args.shared_prefix_tokens, config))
    finally:
        if demo is not None:
            stop_demo(demo)
    print(prefix_headline(result))
    for path in paths:
        print(f"{path.suffix[1:]}: {path}")
    top = paths[0].parent
    sweeps = [top / prefix_dir_name(n) for n in call.args.shared_prefix_tokens]
    suites = [sweep_suite(read_json(d / SWEEP_JSON), d) for d in sweeps if (d / SWEEP_JSON).is_file()]
    publish_suites(call.args, suites, [], top / PREFIX_MD, "loadbench sweep", call.argv)
    if code:
        print("loadbench: sweep interrupted: the report covers the lengths done", file=sys.stderr)
    return code
