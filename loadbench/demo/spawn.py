"""Start the embedded demo endpoint in a child process for a run, and stop it after.

Consumes the demo's timing (checked here, before anything starts); produces a running
``python -m loadbench.demo`` process and its URL. Never imports the server itself (nor
scikit-learn, Locust or gevent): the demo runs in its own process.
"""

from __future__ import annotations

import os
import re
import select
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from loadbench.demo.args import check_service
from loadbench.demo.service import SERVICE_DISTS
from loadbench.errors import TargetError, UsageError


@dataclass(frozen=True)
class DemoTiming:
    """The ``--demo-*`` options of `run`, `ui` and `sweep`; None: the demo's default."""

    latency_ms: float = 0.0
    asr_rtf: float | None = None
    llm_ttft_ms: float | None = None
    llm_itl_ms: float | None = None
    workers: int | None = None
    service_dist: str | None = None
    service_cv: float | None = None
    jitter_ms: float | None = None
    seed: int | None = None
    cache: str | None = None  # --demo-cache lru:SIZE|lfu:SIZE, checked when parsed
    llm_prefix_cache: bool = False  # --demo-llm-prefix-cache: the LLM simulator's prefix cache on

    def check(self) -> None:
        """Refuse timing the demo could not serve, naming the option (bad input, before a start)."""
        if self.asr_rtf is not None and not 0 <= self.asr_rtf < float("inf"):
            raise UsageError("--demo-asr-rtf must be a number >= 0")
        llm_ms = (self.llm_ttft_ms, self.llm_itl_ms)
        if any(ms is not None and not 0 <= ms < float("inf") for ms in llm_ms):
            raise UsageError("--demo-llm-ttft-ms and --demo-llm-itl-ms must be numbers >= 0")
        if not 0 <= self.latency_ms < float("inf"):
            raise UsageError("--demo-latency-ms must be a number >= 0")
        if self.workers is not None and self.workers < 1:
            raise UsageError("--demo-workers must be 1 or more (leave it out for no limit)")
        if self.service_dist is not None and self.service_dist not in SERVICE_DISTS:
            raise UsageError(f"--demo-service-dist must be one of {', '.join(SERVICE_DISTS)}")
        if any(v is not None and not 0 <= v < float("inf") for v in (self.service_cv, self.jitter_ms)):
            raise UsageError("--demo-service-cv and --demo-jitter-ms must be numbers >= 0")
        check_service(self.service_dist, self.service_cv, self.jitter_ms, prefix="--demo-")

    def service_args(self) -> list[str]:
        """The demo's options for its queue and service-time distribution (those given only)."""
        given = (
            ("--workers", self.workers),
            ("--service-dist", self.service_dist),
            ("--service-cv", self.service_cv),
            ("--jitter-ms", self.jitter_ms),
            ("--seed", self.seed),
            ("--cache", self.cache),
        )
        args = [arg for option, value in given if value is not None for arg in (option, str(value))]
        return [*args, "--llm-prefix-cache"] if self.llm_prefix_cache else args


# The built-in scenarios that need request bodies the demo's digits fit: their rows
# ({"inputs": [[64 ints]], "_expected": label}) are a /predict body, a columnar :predict request
# (TF Serving, KServe v1) and a TorchServe handler's input alike, labelled for quality.
DIGITS_SCENARIOS = ("json_post", "tfserving", "kserve_v1", "torchserve")


def demo_scenario_args(scenario: str | None, scenario_args: list[str]) -> list[str]:
    """With ``--demo``, the scenarios of `DIGITS_SCENARIOS` send the demo's labeled digits unless
    told what to send (``--data`` or ``--payload``)."""
    told = any(a in ("--data", "--payload") or a.startswith(("--data=", "--payload=")) for a in scenario_args)
    if scenario is None or Path(scenario).stem not in DIGITS_SCENARIOS or told:
        return scenario_args
    from loadbench.data import DIGITS_JSONL

    return [*scenario_args, "--data", str(DIGITS_JSONL)]


# The built-in scenarios that speak gRPC: with --demo they get the demo's gRPC port as the target.
GRPC_SCENARIOS = ("kserve_v2_grpc",)


def demo_speaks_grpc(scenario: str | None) -> bool:
    """Whether ``--demo`` with this ``--scenario`` targets the demo's gRPC side."""
    return scenario is not None and Path(scenario).stem in GRPC_SCENARIOS


def demo_command(
    latency_ms: float,
    asr_rtf: float | None,
    llm_ms: Sequence[float | None],
    grpc: bool = False,
    service_args: Sequence[str] = (),
) -> list[str]:
    """The child's command line: the demo on a free loopback port (``grpc``: and gRPC on another),
    watching this process; ``service_args``: `DemoTiming.service_args`."""
    command = [sys.executable, "-m", "loadbench.demo", "--port", "0", "--latency-ms", str(latency_ms)]
    command += ["--parent-pid", str(os.getpid())]
    if grpc:
        command += ["--grpc-port", "0"]
    if asr_rtf is not None:
        command += ["--asr-rtf", str(asr_rtf)]
    for option, ms in zip(("--llm-ttft-ms", "--llm-itl-ms"), llm_ms, strict=False):
        if ms is not None:
            command += [option, str(ms)]
    return command + list(service_args)


def spawn_demo(
    latency_ms: float,
    timeout_s: float = 30.0,
    asr_rtf: float | None = None,
    llm_ms: Sequence[float | None] = (),
    grpc: bool = False,
    service_args: Sequence[str] = (),
) -> tuple[subprocess.Popen[str], str]:
    """Start the demo on a free loopback port in a child process; return it and its URL (``grpc``:
    its ``grpc://`` URL, the demo serving the Open Inference Protocol over gRPC too).

    ``llm_ms``: the LLM simulator's (time to first token, time between tokens), None for its default;
    ``service_args``: its queue and service-time distribution (`DemoTiming.service_args`).
    The demo runs in its own session: a Ctrl-C in the terminal reaches loadbench only, which stops
    the load first and the demo after (`stop_demo`); were the demo interrupted with it, the run's
    last requests would fail with 'connection refused'. It stops by itself when loadbench is gone."""
    if not 0 <= latency_ms < float("inf"):  # callers that did not check, e.g. `sweep --demo`
        raise UsageError(f"the demo's latency must be a number of ms >= 0, not {latency_ms:g}")
    command = demo_command(latency_ms, asr_rtf, llm_ms, grpc, service_args)
    process, urls = _spawn(command, r"grpc://\S+" if grpc else r"http://\S+", 1, timeout_s)
    return process, urls[0]


def _spawn(
    command: list[str], url: str, count: int, timeout_s: float
) -> tuple[subprocess.Popen[str], list[str]]:
    """Start ``command`` and read its stdout until ``count`` lines announced a URL (the regex
    ``url``); `TargetError` with the child's last stderr line when it exits or times out first."""
    # Its stderr goes to a file, not a pipe nobody reads: a failed start is told in one line.
    with tempfile.TemporaryFile("w+", encoding="utf-8") as stderr:
        process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            start_new_session=True,
        )
        assert process.stdout is not None
        # Raw reads, not readline(): several announce lines arrive in one read, and lines left in
        # a reader's buffer would never wake select() again.
        fd, pending, urls = process.stdout.fileno(), b"", []
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and process.poll() is None:
            ready, _, _ = select.select([fd], [], [], 0.2)
            chunk = os.read(fd, 65536) if ready else b""
            *complete, pending = (pending + chunk).split(b"\n")
            for line in complete:
                match = re.search(url, line.decode("utf-8", "replace"))
                if match:
                    urls.append(match.group(0))
            if len(urls) >= count:
                return process, urls[:count]
        process.kill()
        process.wait()
        stderr.seek(0)
        lines = stderr.read().strip().splitlines()
    reason = lines[-1].removeprefix("loadbench: error: ") if lines else ""
    raise TargetError("the embedded demo endpoint did not start" + (f": {reason}" if reason else ""))


def start_demo(timing: DemoTiming, grpc: bool = False) -> tuple[subprocess.Popen[str], str]:
    """Check ``timing`` and start the demo with it (`spawn_demo`; ``grpc``: its gRPC URL)."""
    timing.check()
    llm_ms = (timing.llm_ttft_ms, timing.llm_itl_ms)
    return spawn_demo(
        timing.latency_ms,
        asr_rtf=timing.asr_rtf,
        llm_ms=llm_ms,
        grpc=grpc,
        service_args=timing.service_args(),
    )


def start_replicas(
    timing: DemoTiming, count: int, timeout_s: float = 30.0
) -> tuple[subprocess.Popen[str], list[str]]:
    """Check ``timing`` and start ``count`` demo replicas in one child process
    (`loadbench.demo.replicas`: free loopback ports, named replica-1 ... replica-N in
    ``X-Served-By``, each with ``timing``'s service time and its own queue of ``timing.workers``);
    return the process and the replicas' URLs, in order."""
    timing.check()
    if count < 1:
        raise UsageError(f"the demo serves 1 or more replicas, not {count}")
    command = demo_command(
        timing.latency_ms,
        timing.asr_rtf,
        (timing.llm_ttft_ms, timing.llm_itl_ms),
        False,
        timing.service_args(),
    )
    # Named even when alone: one replica then runs the same code, and says who served, as N do.
    names = ",".join(f"replica-{k}" for k in range(1, count + 1))
    command += ["--replicas", str(count), "--replica-names", names]
    return _spawn(command, r"http://\S+", count, timeout_s)


def stop_demo(process: subprocess.Popen[str]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    if process.stdout is not None:
        process.stdout.close()  # the pipe its URL came through
