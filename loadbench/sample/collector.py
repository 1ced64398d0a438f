"""What the sampler reads on one machine, shared by the sampler and the agent (which runs it on
the model server's host): the `Collector`, the shortest sample interval, and an agent's host label,
port and token variable (known to the agent and to its puller alike).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from loadbench.sample.hostmetrics import Generator, Host, ProcessTree, Values

MIN_INTERVAL_S = 0.05
DEFAULT_PORT = 9109  # of `loadbench agent`
TOKEN_ENV = "LOADBENCH_AGENT_TOKEN"


def one_line(exc: BaseException) -> str:
    """An exception's message on one line (its type's name when it has none)."""
    return " ".join(str(exc).split()) or type(exc).__name__


@dataclass
class Collector:
    """Everything sampled on this machine; `sample()` gives one flat dict (without ``unix_s``).

    Only cheap local reads: anything that waits on the network (scrapes, agents) runs in a
    `Background` thread, so a hung endpoint cannot delay these samples.
    """

    server: ProcessTree | None = None
    generator: Generator | None = None
    gpus: Any = None  # loadbench.sample.nvml.GpuReader, or None when GPUs are not sampled
    host: Host = field(default_factory=Host)

    def server_pids(self) -> list[int]:
        return list(self.server.procs) if self.server is not None else []

    def sample(self) -> Values:
        values = self.host.read()
        if self.server is not None:
            values |= self.server.read("server")
        if self.generator is not None:
            values |= self.generator.read()
        if self.gpus is not None and self.gpus.available:
            values |= self.gpus.read(self.server_pids())
        return values


def host_label(url: str) -> str:
    """``http://gpu-box:9109`` -> ``gpu-box:9109``, the prefix of that agent's sample keys."""
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port or 80}"
