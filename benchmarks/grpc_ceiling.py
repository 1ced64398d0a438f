"""gRPC ceiling: ``ModelInfer`` calls/s one load generator core sustains with ``kserve_v2_grpc`` vs a
plain grpcio loop, against a minimal grpcio server on loopback.

    python benchmarks/grpc_ceiling.py [--rounds 3] [--duration 8] [--users 32]

The server (this file with ``--serve``, its own process, pinned to one CPU) answers ``ModelInfer``
with a fixed ``ModelInferResponse`` without parsing the request (and ``ModelMetadata`` for the
scenario's set-up). Each round runs, pinned to another CPU (``taskset``), one after the other:

- loadbench: ``loadbench run --scenario kserve_v2_grpc --model digits --payload ONE_ROW -u USERS
  -d DURATION --warmup 0s --no-sampler --no-preflight``; figures from ``summary.json``
  (``request_rate_rps``, ``latency_ms.p50``);
- the plain loop (this file with ``--plain``): USERS greenlets under
  ``grpc.experimental.gevent.init_gevent()`` (how loadbench's users wait), each with a channel of
  its own made by the same `loadbench.protocols.v2grpc.service.open_channel` (same options), calling
  ``ModelInfer`` with the same serialized request in a loop for DURATION; its calls/s and p50;
- the same loop with ``--patched``: after gevent's ``monkey.patch_all()``, as loadbench's users
  run under Locust (so a difference is not the patching's).

The generator is pinned to one CPU and saturates it, so its calls/s is calls/s per generator core.
Prints a Markdown table for ``docs/benchmarks.md``. Exit codes: 0 done, 1 a trial failed.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent import futures
from pathlib import Path
from typing import Any

from recording_overhead import cpu_model, free_port, pinning, stop_process

REPO = Path(__file__).resolve().parent.parent
ROW = [0.5] * 64
PAYLOAD = {"inputs": [{"name": "input-0", "shape": [1, 64], "datatype": "FP32", "data": ROW}]}


def serve(port: int) -> None:
    """The minimal server: fixed answers, requests never parsed (its CPU is not the generator's)."""
    import grpc

    from loadbench.demo.model import v2_metadata
    from loadbench.protocols.v2grpc import grpc_predict_v2_pb2 as pb
    from loadbench.protocols.v2grpc.service import SERVICE_NAME

    answer = pb.ModelInferResponse(model_name="digits", model_version="1")
    answer.outputs.add(name="output-0", datatype="INT64", shape=[1]).contents.int64_contents.append(3)
    infer_bytes = answer.SerializeToString()
    metadata = pb.ModelMetadataResponse(name="digits", versions=["1"], platform="bench")
    for spec in v2_metadata()["inputs"]:
        metadata.inputs.add(name=spec["name"], datatype=spec["datatype"], shape=spec["shape"])
    metadata_bytes = metadata.SerializeToString()
    handlers = {
        "ModelInfer": grpc.unary_unary_rpc_method_handler(lambda request, context: infer_bytes),
        "ModelMetadata": grpc.unary_unary_rpc_method_handler(lambda request, context: metadata_bytes),
        "ServerLive": grpc.unary_unary_rpc_method_handler(lambda request, context: b"\x08\x01"),
    }
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=64))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    print("serving", flush=True)
    server.wait_for_termination()


def plain(url: str, users: int, duration_s: float, patched: bool = False) -> None:
    """The plain loop (module docstring); prints {"rps", "p50"} as JSON. ``patched``: gevent's
    ``monkey.patch_all()`` first, as importing Locust does before loadbench's users exist."""
    if patched:
        from gevent import monkey

        monkey.patch_all()
    import grpc
    import grpc.experimental.gevent

    grpc.experimental.gevent.init_gevent()
    import gevent

    from loadbench.protocols.v2grpc.service import MODEL_INFER, grpc_target, open_channel
    from loadbench.protocols.v2grpc.tensors import infer_request

    request = infer_request(PAYLOAD, "digits", "", False).SerializeToString()
    target = grpc_target(url)
    latencies: list[float] = []
    deadline = time.perf_counter() + duration_s

    def user() -> None:
        channel = open_channel(target)
        call = channel.unary_unary(MODEL_INFER.path)
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            call(request, timeout=60.0)
            latencies.append((time.perf_counter() - start) * 1000.0)
        channel.close()

    begun = time.perf_counter()
    gevent.joinall([gevent.spawn(user) for _ in range(users)], raise_error=True)
    elapsed = time.perf_counter() - begun
    print(json.dumps({"rps": len(latencies) / elapsed, "p50": statistics.median(latencies)}))


def loadbench_trial(url: str, users: int, duration_s: int, out: Path, pin: list[str]) -> dict[str, float]:
    command = [
        *pin, sys.executable, "-m", "loadbench", "run", "--target", url, "--scenario", "kserve_v2_grpc",
        "--model", "digits", "--payload", json.dumps(PAYLOAD), "-u", str(users), "-r", "1000",
        "-d", f"{duration_s}s", "--warmup", "0s", "--no-sampler", "--no-preflight", "--quiet",
        "--out", str(out),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=duration_s + 120)
    if result.returncode != 0:
        raise SystemExit(f"grpc_ceiling: a loadbench trial failed: {result.stderr.strip()[-500:]}")
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    return {"rps": float(summary["request_rate_rps"]), "p50": float(summary["latency_ms"]["p50"])}


def plain_trial(
    url: str, users: int, duration_s: int, pin: list[str], patched: bool = False
) -> dict[str, float]:
    command = [
        *pin,
        sys.executable,
        __file__,
        "--plain",
        url,
        "--users",
        str(users),
        "--duration",
        str(duration_s),
        *(["--patched"] if patched else []),
    ]
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=duration_s + 60)
    if result.returncode != 0:
        raise SystemExit(f"grpc_ceiling: a plain trial failed: {result.stderr.strip()[-500:]}")
    got: dict[str, float] = json.loads(result.stdout.strip().splitlines()[-1])
    return got


def table(results: dict[str, list[dict[str, float]]], args: Any, pin_line: str) -> str:
    import grpc

    lines = [
        f"Result ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}), {args.users} users, "
        f"{args.duration} s trials, {args.rounds} rounds:",
        "",
        "| generator | calls/s per round | median calls/s | vs plain | p50 ms (median) | p50 − plain's |",
        "|---|---|---:|---:|---:|---:|",
    ]
    base_rps = statistics.median(t["rps"] for t in results["plain"])
    base_p50 = statistics.median(t["p50"] for t in results["plain"])
    for label, trials in (
        ("plain grpcio loop (gevent)", results["plain"]),
        ("plain grpcio loop, monkey-patched as under Locust", results["patched"]),
        ("loadbench kserve_v2_grpc", results["loadbench"]),
    ):
        rps, p50 = statistics.median(t["rps"] for t in trials), statistics.median(t["p50"] for t in trials)
        lines.append(
            f"| {label} | {', '.join(format(t['rps'], ',.0f') for t in trials)} | **{rps:,.0f}** | "
            f"{rps / base_rps:.2f}x | {p50:.2f} | {p50 - base_p50:+.2f} |"
        )
    lines += [
        "",
        f"- Server: a minimal grpcio {grpc.__version__} server (fixed answers, 64 threads); {pin_line}.",
        f"- Machine: {cpu_model()}; Python {platform.python_version()}.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=8, help="seconds per trial")
    parser.add_argument("--users", type=int, default=32)
    parser.add_argument("--serve", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--plain", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--patched", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve is not None:
        serve(args.serve)
        return 0
    if args.plain is not None:
        plain(args.plain, args.users, args.duration, args.patched)
        return 0
    gen_pin, server_pin, pin_line = pinning()
    port = free_port()
    server = subprocess.Popen(
        [*server_pin, sys.executable, __file__, "--serve", str(port)], stdout=subprocess.PIPE
    )
    results: dict[str, list[dict[str, float]]] = {"plain": [], "patched": [], "loadbench": []}
    try:
        assert server.stdout is not None
        server.stdout.readline()  # "serving"
        url = f"grpc://127.0.0.1:{port}"
        with tempfile.TemporaryDirectory(prefix="grpcceiling-") as tmp:
            for n in range(args.rounds):
                results["plain"].append(plain_trial(url, args.users, args.duration, gen_pin))
                results["patched"].append(plain_trial(url, args.users, args.duration, gen_pin, True))
                out = Path(tmp) / f"run-{n}"
                results["loadbench"].append(loadbench_trial(url, args.users, args.duration, out, gen_pin))
                print(
                    f"round {n + 1}: plain {results['plain'][-1]}, patched {results['patched'][-1]}, "
                    f"loadbench {results['loadbench'][-1]}",
                    flush=True,
                )
    finally:
        stop_process(server)
    print()
    print(table(results, args, pin_line))
    return 0


if __name__ == "__main__":
    sys.exit(main())
