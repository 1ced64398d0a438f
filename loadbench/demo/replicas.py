"""Several demo replicas in one process (``loadbench demo --replicas N``): N servers of one model on
N ports, each with its own service (time and queue of workers), each naming itself in an
``X-Served-By`` header on every response: a stand-in for a load-balanced fleet of unequal servers.

Consumes the parsed demo options (`loadbench.demo.args`: ``--replicas``, ``--service-ms``,
``--replica-names`` and the rest) and the server factory (`loadbench.demo.server.make_server`,
passed in: the server imports this module, never the other way round). Produces one announce line
per replica on stdout, then serves until SIGTERM, SIGINT or the parent's exit (``--parent-pid``).

Replica k (from 0) binds ``--port`` + k (a free port with ``--port 0``), takes the k-th
``--service-ms`` as its ``--latency-ms`` and, with ``--seed S``, draws its service times from
seed S + k; the model is trained (or read from its cache) once and shared.
"""

from __future__ import annotations

import argparse
import os
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from types import FrameType

from loadbench.demo.model import DemoModel, build_model
from loadbench.errors import UsageError


@dataclass(frozen=True)
class Replica:
    """One server to run: its name in ``X-Served-By`` (None: the single demo server, no header)
    and its added service time (its ``--latency-ms``)."""

    name: str | None
    latency_ms: float


def replica_plan(args: argparse.Namespace) -> list[Replica]:
    """The replicas the demo options ask for, checked before anything is trained or bound: one
    unnamed replica when they ask for the single server of old (no ``--replica-names``, one
    replica). `UsageError` for options that disagree."""
    count: int = args.replicas
    service_ms: list[float] = args.service_ms or [args.latency_ms]
    if len(service_ms) not in (1, count):
        raise UsageError(
            f"--service-ms has {len(service_ms)} values for {count} replica(s): give 1 (for all) or {count}"
        )
    names: list[str] | None = args.replica_names
    if names is not None and len(names) != count:
        raise UsageError(f"--replica-names gives {len(names)} name(s) for {count} replica(s): give {count}")
    times = service_ms * count if len(service_ms) == 1 else service_ms
    if names is None and count == 1:
        return [Replica(None, times[0])]
    if args.grpc_port is not None:
        raise UsageError("--grpc-port serves a single demo: leave it out with --replicas or --replica-names")
    if args.port and args.port + count - 1 > 65535:
        raise UsageError(f"--replicas {count} from --port {args.port} would pass port 65535")
    names = names or [f"replica-{k}" for k in range(1, count + 1)]
    return [Replica(name, ms) for name, ms in zip(names, times, strict=True)]


def serve_replicas(
    args: argparse.Namespace, plan: list[Replica], make_server: Callable[..., ThreadingHTTPServer]
) -> None:
    """Serve the ``plan`` (`replica_plan`) until SIGTERM or SIGINT (or the parent's exit), one
    stdout line per replica, in order, once all are bound; each server in its own thread.
    `UsageError` for an address that cannot be bound (the others closed)."""
    servers = _bind(args, plan, make_server, build_model())
    threads = [
        threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},  # a stop is served within 50 ms, not 0.5 s
            name=f"loadbench-demo-{replica.name}",
            daemon=True,
        )
        for replica, server in zip(plan, servers, strict=True)
    ]
    stopping = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        # Not Event.set() here: a handler that takes a lock the main thread may hold can deadlock.
        threading.Thread(target=stopping.set, daemon=True).start()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        for thread in threads:
            thread.start()
        for replica, server in zip(plan, servers, strict=True):
            host, port = server.server_address[:2]
            print(
                f"loadbench demo: replica {replica.name} serving a digits classifier on "
                f"http://{host!s}:{port} (service {replica.latency_ms:g} ms)",
                flush=True,
            )
        # Orphaned processes are re-parented (to init or a subreaper): the parent's pid changes.
        while not stopping.wait(0.5):
            if args.parent_pid is not None and os.getppid() != args.parent_pid:
                break
    finally:
        for server, thread in zip(servers, threads, strict=True):
            if thread.is_alive():
                server.shutdown()  # waits for its serve_forever() to return
            server.server_close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _bind(
    args: argparse.Namespace,
    plan: list[Replica],
    make_server: Callable[..., ThreadingHTTPServer],
    model: DemoModel,
) -> list[ThreadingHTTPServer]:
    """Bind every replica's server, sharing ``model``; on a failure, close those bound and raise
    `UsageError`."""
    servers: list[ThreadingHTTPServer] = []
    port = args.port
    try:
        for index, replica in enumerate(plan):
            port = args.port + index if args.port else 0
            servers.append(
                make_server(
                    *(args.host, port, replica.latency_ms, args.jitter_ms or 0.0, args.asr_rtf),
                    *(args.llm_ttft_ms, args.llm_itl_ms),
                    workers=args.workers,
                    service_dist=args.service_dist,
                    service_cv=1.0 if args.service_cv is None else args.service_cv,
                    seed=None if args.seed is None else args.seed + index,
                    model=model,
                    replica_name=replica.name,
                )
            )
    except (OSError, OverflowError, ValueError) as exc:  # socket.gaierror is an OSError
        for server in servers:
            server.server_close()
        if isinstance(exc, ValueError):
            raise UsageError(f"the demo's timing: {exc}") from None
        reason = getattr(exc, "strerror", None) or str(exc)
        raise UsageError(f"the demo cannot listen on {args.host}:{port}: {reason}") from None
    return servers
