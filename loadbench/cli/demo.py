"""``loadbench demo``: serve the embedded demo model endpoint (its options: `loadbench.demo.args`)."""

from __future__ import annotations

from typing import Any

from loadbench.cli.options import Call
from loadbench.demo.args import DEMO_DESCRIPTION, DEMO_HELP, add_demo_arguments


def add_demo_parser(commands: Any) -> None:
    demo = commands.add_parser("demo", help=DEMO_HELP, description=DEMO_DESCRIPTION)
    demo.set_defaults(handler=cmd_demo)
    add_demo_arguments(demo)


def cmd_demo(call: Call) -> int:
    from loadbench.demo.server import serve_from_args  # scikit-learn: only when serving

    serve_from_args(call.args)
    return 0
