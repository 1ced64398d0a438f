"""HTTP/2 ceiling: requests/s one load generator core sustains with ``--http2`` (httpx) vs the default
HTTP/1.1 fast client, against nginx on loopback.

    python benchmarks/http2_ceiling.py [--rounds 3] [--duration 10] [--users 32]

Each trial is ``loadbench run --scenario json_post --payload '{"x": 1}' -u USERS -d DURATION
--warmup 0s --no-sampler`` pinned to one CPU (``taskset``), nginx (one worker) pinned to
another, answering ``return 200 '{"ok":true}'`` on two ports: plain HTTP/1.1, and HTTP/2 by
prior knowledge (``listen ... http2``, h2c) for ``--http2``. The trials alternate. Figures:
``request_rate_rps`` from the run's ``summary.json`` (every request in the measured window /
its length) and the generator's CPU seconds (``getrusage`` of the child, start-up included).
Prints a Markdown table for ``docs/benchmarks.md``.

Exit codes: 0 done, 1 a trial failed, 2 nginx or taskset missing.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from recording_overhead import cpu_model, free_port, pinning, stop_process, version_of, wait_listening

REPO = Path(__file__).resolve().parent.parent
NGINX_CONF = """\
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    http2_max_requests 1000000;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    server {{
        listen 127.0.0.1:{h1};
        location / {{ default_type application/json; return 200 '{{"ok":true}}'; }}
    }}
    server {{
        listen 127.0.0.1:{h2} http2;
        location / {{ default_type application/json; return 200 '{{"ok":true}}'; }}
    }}
}}
"""


def start_nginx(workdir: Path, pin: list[str]) -> tuple[subprocess.Popen[bytes], int, int]:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    h1, h2 = free_port(), free_port()
    prefix = workdir / "nginx"
    prefix.mkdir()
    conf = prefix / "nginx.conf"
    conf.write_text(NGINX_CONF.format(prefix=prefix, h1=h1, h2=h2), encoding="utf-8")
    log = prefix / "out.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [
                *pin,
                nginx,
                "-p",
                str(prefix),
                "-e",
                str(prefix / "error.log"),
                "-c",
                str(conf),
                "-g",
                "daemon off;",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    for port in (h1, h2):
        wait_listening(port, process, log)
    return process, h1, h2


def trial(url: str, http2: bool, users: int, duration_s: int, out: Path, pin: list[str]) -> dict[str, float]:
    command = [
        *pin, sys.executable, "-m", "loadbench", "run", "--target", url, "--scenario", "json_post",
        "--payload", '{"x": 1}', "-u", str(users), "-d", f"{duration_s}s", "--warmup", "0s",
        "--no-sampler", "--quiet", "--out", str(out), *(["--http2"] if http2 else []),
    ]  # fmt: skip
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=duration_s + 120)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise SystemExit(f"http2_ceiling: a trial failed: {result.stderr.strip()[-500:]}")
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    cpu_s = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {
        "rps": float(summary["request_rate_rps"]),
        "errors": float(summary["requests"]["errors"]),
        "requests": float(summary["requests"]["total"]),
        "cpu_s": cpu_s,
        "p50": float(summary["latency_ms"]["p50"] or 0.0),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10, help="seconds per trial")
    parser.add_argument("--users", type=int, default=32)
    args = parser.parse_args(argv)
    if shutil.which("nginx") is None and not Path("/usr/sbin/nginx").is_file():
        print("http2_ceiling: nginx is not installed (apt-get install nginx-light)", file=sys.stderr)
        return 2
    gen_pin, server_pin, pin_line = pinning()
    results: dict[str, list[dict[str, float]]] = {"HTTP/1.1 (fast client)": [], "HTTP/2 (--http2, httpx)": []}
    with tempfile.TemporaryDirectory(prefix="h2ceiling-") as tmp:
        workdir = Path(tmp)
        nginx, h1, h2 = start_nginx(workdir, server_pin)
        try:
            for n in range(args.rounds):
                for label, http2, port in (
                    ("HTTP/1.1 (fast client)", False, h1),
                    ("HTTP/2 (--http2, httpx)", True, h2),
                ):
                    out = workdir / f"run-{n}-{int(http2)}"
                    got = trial(f"http://127.0.0.1:{port}", http2, args.users, args.duration, out, gen_pin)
                    results[label].append(got)
                    print(
                        f"round {n + 1} {label}: {got['rps']:,.0f} req/s, errors {got['errors']:.0f}",
                        flush=True,
                    )
        finally:
            stop_process(nginx)
    nginx_version = version_of([shutil.which("nginx") or "/usr/sbin/nginx", "-v"], r"nginx/(\S+)")
    print()
    print(f"Result ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}), {args.users} users, "
          f"{args.duration} s trials, {args.rounds} rounds:")  # fmt: skip
    print()
    print("| client | req/s per round | median req/s | req per CPU s (median) | p50 ms (median) | errors |")
    print("|---|---|---:|---:|---:|---:|")
    for label, trials in results.items():
        per_round = ", ".join(f"{t['rps']:,.0f}" for t in trials)
        per_cpu = statistics.median(t["requests"] / t["cpu_s"] for t in trials)
        print(
            f"| {label} | {per_round} | **{statistics.median(t['rps'] for t in trials):,.0f}** | "
            f"{per_cpu:,.0f} | {statistics.median(t['p50'] for t in trials):.2f} | "
            f"{sum(t['errors'] for t in trials):.0f} |"
        )
    print()
    print(f"- Server: nginx {nginx_version}, 1 worker; {pin_line}.")
    print(f"- Machine: {cpu_model()}; Python {platform.python_version()}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
