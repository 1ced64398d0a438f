"""``loadbench agent``: serve this host's resource samples to a remote run."""

from __future__ import annotations

from typing import Any

from loadbench.cli.options import Call, Option, add_options, duration
from loadbench.demo.args import port

AGENT_OPTIONS: tuple[Option, ...] = (
    (("--bind",), {"default": "127.0.0.1", "help": "address to listen on (default 127.0.0.1)"}),
    (("--port",), {"type": port, "default": 9109, "help": "port (default 9109)"}),
    (("--token",), {"help": "required bearer token (default: $LOADBENCH_AGENT_TOKEN)"}),
    (("--sample-interval",), {"type": duration, "default": 0.5, "metavar": "TIME", "help": "default 0.5s"}),
    (("--server-pid",), {"type": int, "metavar": "PID", "help": "the model server's process on this host"}),
    (("--server-name",), {"metavar": "NAME", "help": "find the model server's process by name"}),
)


def add_agent_parser(commands: Any) -> None:
    agent = commands.add_parser(
        "agent",
        help="serve this host's resource samples to a remote `loadbench run --agent`",
        description="Sample this host (GPUs, CPU, memory, and a model-server process) and serve the samples over "
        "HTTP to `loadbench run --agent http://HOST:PORT` on the load-generator host, which aligns the clocks. "
        "Beyond loopback a token is required: --token or $LOADBENCH_AGENT_TOKEN.",
    )
    agent.set_defaults(handler=cmd_agent)
    add_options(agent, AGENT_OPTIONS)


def cmd_agent(call: Call) -> int:
    from loadbench.sample.agent import serve_agent

    args = call.args
    serve_agent(args.bind, args.port, args.token, args.sample_interval, args.server_pid, args.server_name)
    return 0
