"""``loadbench scenarios``: list the built-in scenarios."""

from __future__ import annotations

from typing import Any

from loadbench.cli.options import Call


def add_scenarios_parser(commands: Any) -> None:
    scenarios = commands.add_parser(
        "scenarios", help="list the built-in scenarios", description="List the built-in scenarios."
    )
    scenarios.set_defaults(handler=cmd_scenarios)


def cmd_scenarios(call: Call) -> int:
    from loadbench.drive.locustfiles import BUILTIN_SCENARIOS_DIR, builtin_scenarios

    for name in builtin_scenarios():
        doc = (BUILTIN_SCENARIOS_DIR / f"{name}.py").read_text(encoding="utf-8").split('"""')
        first = doc[1].strip().splitlines()[0] if len(doc) > 1 else ""
        print(f"{name:14} {first}")
    return 0
