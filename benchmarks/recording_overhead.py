"""Recording overhead: requests/s that ``loadbench run`` sustains vs plain ``locust``, same locustfile.

    python benchmarks/recording_overhead.py [--rounds 5] [--duration 10s] [--users 32] [--write-docs]
    make benchmark

Both sides run ``benchmarks/locustfile_get.py`` (FastHttpUser, no think time, ``GET /``) against
the same fast loopback server, on one core each: the load generator is pinned to the first CPU
this process may use, the server to the second (``taskset``). The trials alternate
(plain, loadbench, plain, loadbench, ...) so drift on a shared machine hits both alike.

requests/s, for both tools, is every request the run completed divided by the load phase,
from Locust's ``test_start`` to its ``test_stopping`` event (both tools fire them; the
locustfile writes their wall-clock times and the process CPU time). Plain Locust's count is
the sum of ``num_requests`` in its ``--json`` statistics, loadbench's the number of records in
``requests.csv`` (``--warmup 0s``; ``--no-sampler``, whose cost is measured on its own). Not
the configured duration: plain Locust's ``-t`` timer fires early. Both spawn all users in 1 s.
A second figure, requests per CPU second of the generator, is less sensitive to other
tenants of a shared machine. The result is the ratio of the medians, loadbench / plain; the
goal is at least 0.95 (recording every request costs at most 5% of plain Locust's throughput).

The server is nginx (``apt-get install nginx-light``) with a generated one-worker config in a
temporary directory, stopped at the end; ``--no-nginx`` uses a small asyncio HTTP/1.1 server
instead. When ``wrk`` is installed, one ``wrk -t1 -c32`` run on the load generator's core gives
the rig's ceiling. ``--write-docs`` replaces this benchmark's section of ``docs/benchmarks.md``.

Exit codes: 0 done (whatever the verdict), 1 a trial failed, 2 something needed is missing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import datetime as dt
import json
import os
import platform
import re
import selectors
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
LOCUSTFILE = HERE / "locustfile_get.py"
DOCS = REPO / "docs" / "benchmarks.md"
SECTION = "## Recording overhead (loadbench run vs plain Locust)"
GOAL_OVERHEAD = 0.05
MIN_SERVER_RPS = 10_000  # the fallback server must be far faster than one Locust process
BODY = b'{"ok":true}'

NGINX_CONF = """\
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    keepalive_requests 100000;
    keepalive_timeout 65s;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            default_type application/json;
            return 200 '{body}';
        }}
    }}
}}
"""


class BenchError(Exception):
    """A trial or the server failed; the message says which and where its log is."""


@dataclass
class Trial:
    tool: str  # "plain" or "loadbench"
    requests: int  # every request the run completed (failed ones included)
    failures: int
    load_s: float  # the load phase: test_start -> test_stopping, from the locustfile's marks
    cpu_s: float  # CPU time the load generator used in that phase

    @property
    def rps(self) -> float:
        return self.requests / self.load_s

    @property
    def per_cpu_s(self) -> float:
        """Requests per CPU second: what one whole core would sustain, less sensitive to a noisy host."""
        return self.requests / self.cpu_s


# --- the server ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_listening(port: int, process: subprocess.Popen[bytes], log: Path, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchError(f"the server exited with code {process.returncode}; see {log}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise BenchError(f"the server did not listen on 127.0.0.1:{port} within {timeout_s:g} s; see {log}")


def start_server(kind: str, workdir: Path, pin: list[str]) -> tuple[subprocess.Popen[bytes], str]:
    """Start nginx or the asyncio server on a free loopback port; return the process and its URL."""
    port = free_port()
    log = workdir / f"{kind}.log"
    if kind == "nginx":
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        prefix = workdir / "nginx"
        prefix.mkdir()
        conf = prefix / "nginx.conf"
        conf.write_text(NGINX_CONF.format(prefix=prefix, port=port, body=BODY.decode()), encoding="utf-8")
        command = [*pin, nginx, "-p", str(prefix), "-e", str(prefix / "error.log"), "-c", str(conf)]
        command += ["-g", "daemon off;"]
    else:
        command = [*pin, sys.executable, str(Path(__file__).resolve()), "--serve-asyncio", str(port)]
    with open(log, "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_listening(port, process, log)
    except BaseException:
        stop_process(process)
        raise
    return process, f"http://127.0.0.1:{port}"


def describe_server(kind: str) -> str:
    """One line for the docs: which server `start_server` started, and how it is configured."""
    if kind == "nginx":
        version = version_of([shutil.which("nginx") or "/usr/sbin/nginx", "-v"], r"nginx/(\S+)")
        return (
            f"nginx {version}, 1 worker, `access_log off`, `keepalive_requests 100000`, "
            f"answering `return 200 '{BODY.decode()}'`"
        )
    return "the script's asyncio HTTP/1.1 keep-alive server (`--no-nginx`)"


def stop_process(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class _HttpProtocol(asyncio.Protocol):
    """Answers every request with 200 and a fixed JSON body, keeping the connection open."""

    RESPONSE = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
        b"Connection: keep-alive\r\n\r\n%s" % (len(BODY), BODY)
    )

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        answers = 0
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                break
            head = self.buffer[:end].lower()
            match = re.search(rb"\r\ncontent-length:\s*(\d+)", head)
            size = end + 4 + (int(match.group(1)) if match else 0)
            if len(self.buffer) < size:
                break
            self.buffer = self.buffer[size:]
            answers += 1
        if answers:
            self.transport.write(self.RESPONSE * answers)


def serve_asyncio(port: int) -> None:
    """The ``--no-nginx`` server (run in its own process by `start_server`)."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(_HttpProtocol, "127.0.0.1", port, backlog=1024)
        async with server:
            await server.serve_forever()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())


def wrk_rps(
    url: str, pin: list[str], connections: int, duration_s: int, log: Path, threads: int = 1
) -> float | None:
    """``wrk -t1`` on the load generator's core: what the rig serves without Python in the client."""
    wrk = shutil.which("wrk")
    if wrk is None:
        return None
    command = [*pin, wrk, f"-t{threads}", f"-c{connections}", f"-d{duration_s}s", url + "/"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=duration_s + 60)
    log.write_text(result.stdout + result.stderr, encoding="utf-8")
    match = re.search(r"Requests/sec:\s*([\d.]+)", result.stdout)
    if result.returncode != 0 or match is None:
        raise BenchError(f"wrk failed (exit {result.returncode}); see {log}")
    return float(match.group(1))


def python_client_rps(port: int, connections: int, duration_s: float) -> float:
    """A bare selectors-based keep-alive client (a lower bound of the server's capacity)."""
    request = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    response_size = len(_HttpProtocol.RESPONSE)
    selector = selectors.DefaultSelector()
    pending: dict[socket.socket, int] = {}
    for _ in range(connections):
        s = socket.create_connection(("127.0.0.1", port))
        s.setblocking(False)
        s.sendall(request)
        pending[s] = response_size
        selector.register(s, selectors.EVENT_READ)
    done = 0
    deadline = time.monotonic() + duration_s
    try:
        while time.monotonic() < deadline:
            for key, _ in selector.select(timeout=0.1):
                s = key.fileobj
                assert isinstance(s, socket.socket)
                pending[s] -= len(s.recv(65536))
                while pending[s] <= 0:
                    done += 1
                    pending[s] += response_size
                    s.send(request)
    finally:
        for s in pending:
            selector.unregister(s)
            s.close()
    return done / duration_s


# --- the trials ------------------------------------------------------------------------------


def tool(name: str) -> Path:
    """``locust`` / ``loadbench`` next to this interpreter (the venv running the script)."""
    path = Path(sys.executable).parent / name
    if not path.is_file():
        print(
            f"recording_overhead: {path} is missing: run this script with the python of a virtualenv "
            "that has loadbench and locust installed (e.g. `make benchmark`)",
            file=sys.stderr,
        )
        raise SystemExit(2)
    return path


def run_logged(command: list[str], workdir: Path, name: str, timeout_s: float) -> tuple[int, Path, Path]:
    """Run one trial; return its exit code, its stdout file and its phase file (the load's start/stop)."""
    phase = workdir / f"{name}.phase"
    env = {**os.environ, "LOADBENCH_BENCH_PHASE_FILE": str(phase)}
    stdout = workdir / f"{name}.out"
    with open(stdout, "wb") as out, open(workdir / f"{name}.log", "wb") as err:
        code = subprocess.run(
            command, cwd=workdir, env=env, stdout=out, stderr=err, timeout=timeout_s
        ).returncode
    return code, stdout, phase


def load_phase(phase: Path, log: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds) from test_start to test_stopping, as the locustfile wrote them.

    A distributed run (``--workers N``) has one start and one stopping mark per process (the
    master's and each worker's, unlabelled): the phase then runs from the first start to the
    last stopping, and the CPU seconds are every process's own, added up (the sum of the
    stopping marks' CPU times minus the sum of the start marks'). One process: its two marks.
    """
    lines = phase.read_text(encoding="utf-8").splitlines() if phase.exists() else []
    marks: dict[str, list[tuple[float, float]]] = {"start": [], "stopping": []}
    for fields in map(str.split, lines):
        marks.setdefault(fields[0], []).append((float(fields[1]), float(fields[2])))
    starts, stops = marks["start"], marks["stopping"]
    if not starts or len(starts) != len(stops):
        raise BenchError(
            f"the locustfile recorded {len(starts)} test_start and {len(stops)} test_stopping times "
            f"in {phase} (one of each per process expected); see {log}"
        )
    wall_s = max(t for t, _ in stops) - min(t for t, _ in starts)
    return wall_s, sum(c for _, c in stops) - sum(c for _, c in starts)


def plain_trial(url: str, users: int, duration_s: int, workdir: Path, pin: list[str], n: int) -> Trial:
    # --json: the final statistics, printed at exit (the --csv stats file is only rewritten once a
    # second while the run goes on, so it misses the last fraction of a second).
    command = [*pin, str(tool("locust")), "-f", str(LOCUSTFILE), "--headless", "-u", str(users)]
    command += ["-r", str(users), "-t", f"{duration_s}s", "--host", url, "--only-summary", "--json"]
    name = f"plain-{n}"
    code, stdout, phase = run_logged(command, workdir, name, duration_s + 120)
    log = workdir / f"{name}.log"
    try:
        entries = json.loads(stdout.read_text(encoding="utf-8"))
    except ValueError:
        raise BenchError(f"plain locust (exit {code}) printed no JSON statistics; see {log}") from None
    requests = sum(int(e["num_requests"]) for e in entries)
    failures = sum(int(e["num_failures"]) for e in entries)
    return Trial("plain", requests, failures, *load_phase(phase, log))


def loadbench_trial(
    url: str, users: int, duration_s: int, workdir: Path, pin: list[str], n: int, workers: int = 0
) -> Trial:
    """One ``loadbench run``; ``workers`` > 0 adds ``--workers N`` (``users`` are then all of them)."""
    name = f"loadbench-{workers}w-{n}" if workers else f"loadbench-{n}"
    out = workdir / name
    command = [*pin, str(tool("loadbench")), "run", "--target", url, "--scenario", str(LOCUSTFILE)]
    command += ["--records", "csv"]  # counts the lines of requests.csv
    command += ["--workers", str(workers)] if workers else []
    # --no-sampler: this measures recording; the sampler's own cost is benchmarked on its own.
    command += [
        "-u",
        str(users),
        "-r",
        str(users),
        "-d",
        f"{duration_s}s",
        "--warmup",
        "0s",
        "--quiet",
        "--no-sampler",
    ]
    command += ["--out", str(out)]
    code, _, phase = run_logged(command, workdir, name, duration_s + 180)
    log = workdir / f"{name}.log"
    records = out / "requests.csv"
    if code != 0 or not records.is_file():
        raise BenchError(f"loadbench run exited with code {code}; see {log}")
    requests = failures = 0
    with open(records, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            requests += 1
            failures += row["ok"] != "1"
    return Trial("loadbench", requests, failures, *load_phase(phase, log))


# --- facts and the report --------------------------------------------------------------------


def pinning(
    first: str = "load generator", second: str = "server", second_takes_the_rest: bool = False
) -> tuple[list[str], list[str], str]:
    """taskset prefixes for the load generator (``first``: the first CPU) and the server
    (``second``: the next CPU, or every other one), and a line describing them."""
    cpus = sorted(os.sched_getaffinity(0))
    taskset = shutil.which("taskset")
    if taskset is None or len(cpus) < 2:
        why = "taskset is not installed" if taskset is None else "only one CPU is available"
        return [], [], f"not pinned ({why}): {first} and {second} share the CPUs"
    others = ",".join(str(c) for c in cpus[1:]) if second_takes_the_rest else str(cpus[1])
    return (
        [taskset, "-c", str(cpus[0])],
        [taskset, "-c", others],
        f"{first} pinned to CPU {cpus[0]}, {second} to CPU {others} (`taskset`)",
    )


def run_facts(
    args: argparse.Namespace, server_line: str, pin_line: str, locust_bin: Path, loadbench_bin: Path
) -> dict[str, str]:
    """When, how long and on what a benchmark of plain locust against ``loadbench run`` ran: the
    facts its section of docs/benchmarks.md opens with."""
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "users": str(args.users),
        "duration": str(args.duration),
        "server": server_line,
        "pinning": pin_line,
        "cpu": cpu_model(),
        "cores": str(os.cpu_count()),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "locust": version_of([str(locust_bin), "--version"], r"locust\s+(\S+)"),
        "loadbench": version_of([str(loadbench_bin), "--version"], r"loadbench\s+(\S+)"),
    }


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_facts() -> str:
    """The CPU, its logical cores, the memory and the kernel, for a benchmark's docs section."""
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    return (
        f"{cpu_model()}, {os.cpu_count()} logical cores (shared, noisy), {mem:.1f} GiB RAM; "
        f"{platform.system()} {platform.release()}"
    )


def version_of(command: list[str], pattern: str) -> str:
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return "?"
    match = re.search(pattern, result.stdout + result.stderr)
    return match.group(1) if match else "?"


def parse_duration(text: str) -> int:
    match = re.fullmatch(r"(?:(\d+)m)?(?:(\d+)s?)?", text.strip())
    if not text.strip() or match is None:
        raise argparse.ArgumentTypeError(f"bad duration {text!r} (whole seconds: 10s, 1m, 1m30s)")
    seconds = int(match.group(1) or 0) * 60 + int(match.group(2) or 0)
    if seconds < 1:
        raise argparse.ArgumentTypeError("the duration must be at least 1 s")
    return seconds


def render_section(
    trials: list[tuple[Trial, Trial]],
    facts: dict[str, str],
    command: str,
    ceiling: str,
) -> str:
    plain = [p.rps for p, _ in trials]
    lb = [q.rps for _, q in trials]
    ratio = statistics.median(lb) / statistics.median(plain)
    paired = statistics.median(q.rps / p.rps for p, q in trials)
    cpu_ratio = statistics.median(q.per_cpu_s for _, q in trials) / statistics.median(
        p.per_cpu_s for p, _ in trials
    )
    cpu_spread = (
        max(p.per_cpu_s for p, _ in trials) - min(p.per_cpu_s for p, _ in trials)
    ) / statistics.median(p.per_cpu_s for p, _ in trials)
    spread = (max(plain) - min(plain)) / statistics.median(plain)
    # The verdict rests on requests per CPU second: wall-clock req/s on a shared machine moves
    # by tens of percent between identical trials, far more than the 5 % being judged.
    overhead = 1 - cpu_ratio
    verdict = (
        f"**meets** the goal (overhead {max(overhead, 0):.1%} ≤ {GOAL_OVERHEAD:.0%})"
        if overhead <= GOAL_OVERHEAD
        else f"**misses** the goal (overhead {overhead:.1%} > {GOAL_OVERHEAD:.0%})"
    )
    noisy = spread > 2 * GOAL_OVERHEAD
    failures = sum(p.failures + q.failures for p, q in trials)
    rows = [
        "| round | plain `locust` req/s | (requests / load s) | req per CPU s | `loadbench run` req/s "
        "| (requests / load s) | req per CPU s | loadbench / plain req/s | (per CPU s) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for i, (p, q) in enumerate(trials, 1):
        rows.append(
            f"| {i} | {p.rps:,.0f} | {p.requests:,} / {p.load_s:.2f} | {p.per_cpu_s:,.0f} | {q.rps:,.0f} "
            f"| {q.requests:,} / {q.load_s:.2f} | {q.per_cpu_s:,.0f} | {q.rps / p.rps:.3f} "
            f"| {q.per_cpu_s / p.per_cpu_s:.3f} |"
        )
    rows.append(
        f"| **median** | **{statistics.median(plain):,.0f}** | | {statistics.median(p.per_cpu_s for p, _ in trials):,.0f} "
        f"| **{statistics.median(lb):,.0f}** | | {statistics.median(q.per_cpu_s for _, q in trials):,.0f} "
        f"| **{ratio:.3f}** | {cpu_ratio:.3f} |"
    )
    d = facts["duration"]
    plain_short = statistics.median(int(d) - p.load_s for p, _ in trials)
    return "\n".join(
        [
            SECTION,
            "",
            "Goal: recording every request costs at most 5% of plain Locust's throughput, i.e. "
            "`loadbench run` sustains at least 0.95× the requests/s of plain `locust` running the same "
            "locustfile on the same rig.",
            "",
            f"Result ({facts['date']}): per CPU second of the load generator, loadbench / plain = "
            f"**{cpu_ratio:.3f}**: {verdict}. In requests per wall-clock second the ratio of the medians "
            f"is {ratio:.3f} and the median of the per-round ratios {paired:.3f}"
            + (
                f"; plain Locust's own trials spread {spread:.0%} in req/s on this shared machine, so "
                "the wall-clock figures cannot resolve a 5 % difference: the per-CPU-second ratio "
                "(spread " + f"{cpu_spread:.0%}) is the one to read."
                if noisy
                else "."
            ),
            "",
            "```",
            command,
            "```",
            "",
            "(`make benchmark` runs the script with its defaults.)",
            "",
            *rows,
            "",
            f"- Method: {len(trials)} rounds, alternating plain `locust` (`--headless -u {facts['users']} "
            f"-r {facts['users']} -t {d}s --only-summary --json`) and `loadbench run` (`-u {facts['users']} "
            f"-d {d}s --warmup 0s --quiet --no-sampler`), both running `benchmarks/locustfile_get.py` (FastHttpUser, "
            "`wait_time = constant(0)`, `GET /`) in one process on one core against a loopback server.",
            "- req/s = every request the run completed / the load phase, defined alike for both: from "
            "Locust's `test_start` to its `test_stopping` event (wall clock, written by the locustfile). "
            "Requests: the sum of `num_requests` in Locust's `--json` statistics; the records in loadbench's "
            "`requests.csv`. Not the configured duration: plain Locust's `-t` timer fires early "
            f"(median {plain_short:.2f} s short of {d} s here; gevent's timer counts from a cached loop time "
            "that predates start-up work), so dividing by `-t` would flatter plain Locust. Not Locust's "
            "`--csv` stats file either: it is rewritten once a second, so its final count is stale.",
            "- req per CPU s = the same requests / the CPU time (`time.process_time()`) the load generator "
            "used in the load phase. The generator is CPU-bound, so this is the rate a whole core would "
            "sustain; time stolen by other tenants of a shared machine does not count against it.",
            f"- Noise: plain Locust's trials spread {spread:.1%} in req/s and {cpu_spread:.1%} in req per CPU s "
            "(max − min over median). "
            f"Failed requests in all trials: {failures:,}.",
            f"- Server: {facts['server']}; {facts['pinning']}.",
            f"- Ceiling: {ceiling}",
            f"- Machine: {facts['cpu']}, {facts['cores']} logical cores (shared, noisy); {facts['os']}.",
            f"- Versions: Python {facts['python']}, Locust {facts['locust']}, loadbench {facts['loadbench']}.",
            "",
        ]
    )


def write_docs(section: str, path: Path = DOCS, heading: str | None = None) -> None:
    """Replace the section titled ``heading`` (up to the next ``## `` heading), or append it.

    Without ``heading``: the module's ``SECTION`` as it is at call time (soak.py and
    sampler_overhead.py set it before calling), not as it was when this function was defined.
    """
    heading = SECTION if heading is None else heading
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.rstrip() == heading), None)
    block = section.rstrip("\n") + "\n"
    if start is None:
        text = text.rstrip("\n") + "\n\n" + block
    else:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        after = "".join(lines[end:])
        text = "".join(lines[:start]) + block + ("\n" + after if after else "")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


# --- main ------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Requests/s of `loadbench run` vs plain `locust` on one core, same locustfile.",
    )
    parser.add_argument("--rounds", type=int, default=5, help="trials of each tool, alternating (default 5)")
    parser.add_argument(
        "--duration", type=parse_duration, default=10, help="each trial: 10s, 1m... (default 10s)"
    )
    parser.add_argument("--users", type=int, default=32, help="concurrent users (default 32)")
    parser.add_argument(
        "--no-nginx", action="store_true", help="use the built-in asyncio server instead of nginx"
    )
    parser.add_argument("--no-wrk", action="store_true", help="skip the wrk ceiling measurement")
    parser.add_argument(
        "--write-docs", action="store_true", help=f"replace the results section of {DOCS.relative_to(REPO)}"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, run dirs)")
    parser.add_argument("--serve-asyncio", type=int, metavar="PORT", help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.serve_asyncio is not None:
        serve_asyncio(args.serve_asyncio)
        return 0
    if args.rounds < 1 or args.users < 1:
        print("recording_overhead: --rounds and --users must be at least 1", file=sys.stderr)
        return 2
    if not args.no_nginx and shutil.which("nginx") is None and not Path("/usr/sbin/nginx").is_file():
        print(
            "recording_overhead: nginx is not installed: `apt-get install nginx-light` "
            "(or run with --no-nginx for the slower built-in asyncio server)",
            file=sys.stderr,
        )
        return 2
    locust_bin, loadbench_bin = tool("locust"), tool("loadbench")
    gen_pin, server_pin, pin_line = pinning()
    kind = "asyncio" if args.no_nginx else "nginx"
    command = shlex.join(
        ["python", "benchmarks/recording_overhead.py", *(sys.argv[1:] if argv is None else argv)]
    )

    workdir = Path(tempfile.mkdtemp(prefix="loadbench-overhead-"))
    server, url = start_server(kind, workdir, server_pin)
    try:
        server_line = describe_server(kind)
        print(f"server: {server_line} at {url}; {pin_line}")

        ceiling = "wrk is not installed (`apt-get install wrk`): no ceiling measured."
        if not args.no_wrk:
            rps = wrk_rps(url, gen_pin, args.users, args.duration, workdir / "wrk.log")
            if rps is not None:
                ceiling = (
                    f"`wrk -t1 -c{args.users} -d{args.duration}s` on the load generator's core: "
                    f"{rps:,.0f} req/s against the same server."
                )
        else:
            ceiling = "not measured (`--no-wrk`)."
        if kind == "asyncio":
            measured = None if args.no_wrk else wrk_rps(url, [], args.users, 3, workdir / "wrk-check.log")
            how = "wrk"
            if measured is None:
                measured, how = (
                    python_client_rps(int(url.rsplit(":", 1)[1]), args.users, 3.0),
                    "a Python client",
                )
            if measured < MIN_SERVER_RPS:
                note = (
                    f"the asyncio server answered only {measured:,.0f} req/s to {how} (< {MIN_SERVER_RPS:,}): "
                    "it may be the bottleneck, so the ratio may understate the overhead; prefer nginx."
                )
                print("WARNING: " + note)
                server_line += f" — WARNING: {note}"
            else:
                server_line += f", {measured:,.0f} req/s to {how} (fast enough)"
        print(f"ceiling: {ceiling}")

        trials: list[tuple[Trial, Trial]] = []
        for n in range(1, args.rounds + 1):
            p = plain_trial(url, args.users, args.duration, workdir, gen_pin, n)
            print(
                f"round {n}: plain locust   {p.rps:9,.0f} req/s ({p.requests:,} requests, {p.failures} failed)"
            )
            q = loadbench_trial(url, args.users, args.duration, workdir, gen_pin, n)
            print(
                f"round {n}: loadbench run  {q.rps:9,.0f} req/s ({q.requests:,} requests, {q.failures} failed)"
                f"  ratio {q.rps / p.rps:.3f}"
            )
            trials.append((p, q))
    except (BenchError, subprocess.TimeoutExpired) as exc:
        print(f"recording_overhead: {exc} (kept {workdir})", file=sys.stderr)
        return 1
    finally:
        stop_process(server)

    facts = run_facts(args, server_line, pin_line, locust_bin, loadbench_bin)
    section = render_section(trials, facts, command, ceiling)
    print()
    print(section)
    if args.write_docs:
        write_docs(section)
        print(f"wrote {DOCS}")
    if args.keep:
        print(f"kept {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
