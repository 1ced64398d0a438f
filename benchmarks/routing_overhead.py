"""Routing overhead: what the `Router` (several targets, ``--retries``) costs ``loadbench run`` per request.

    python benchmarks/routing_overhead.py [--rounds 3] [--duration 10s] [--users 32] [--write-docs]
    make benchmark

Five arms, each a ``loadbench run --scenario benchmarks/locustfile_model_get.py`` (a `ModelUser`,
whose client is `DeadlineSession`, sending ``GET /`` back to back) against one nginx that
listens on two loopback ports and serves a tiny static file:

    a  one target                              no router: the session sends as before
    b  one target, --retries 1                 the router on, nothing ever retried
    c  two targets, --balance round-robin
    d  two targets, --balance least-outstanding
    e  two targets, --balance p2c

Every trial is ``-u USERS -r USERS -d DURATION --warmup 0s --no-sampler --no-preflight --quiet``,
the load generator pinned to the first CPU this process may use and nginx to the second
(``taskset``, as ``recording_overhead.py``). Each round runs every arm once, one after the
other; the order rotates from round to round (a b c d e, then b c d e a, ...) so a drift of a
shared machine, or a place in the round, favours no arm. The figures are requests/s and
requests per CPU second of the generator over the load phase (the locustfile's
``test_start`` / ``test_stopping`` marks, as in ``recording_overhead.py``): medians over the
rounds, their spread ((max - min) / median), and ratios to arm a, both of the medians and the
median of each round's own ratio. Per CPU second is the figure to read on a shared machine.

Each trial's ``requests.csv`` is checked: no failures; ``target`` empty in a and b and one of
the two targets in c-e, both used; ``attempt`` 1 and a ``request_id`` on every record of b
(unique), both empty elsewhere. A trial that breaks these fails the benchmark (exit 1).

Exit codes: 0 done (whatever the verdict), 1 a trial failed, 2 something needed is missing.
"""

from __future__ import annotations

import argparse
import csv
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from recording_overhead import (  # noqa: E402  (the shared pieces of benchmarks/)
    BODY,
    REPO,
    BenchError,
    Trial,
    free_port,
    load_phase,
    parse_duration,
    pinning,
    run_facts,
    run_logged,
    stop_process,
    tool,
    version_of,
    wait_listening,
    write_docs,
)

LOCUSTFILE = HERE / "locustfile_model_get.py"
DOCS = REPO / "docs" / "benchmarks.md"
SECTION = "## Routing overhead (several targets, `--balance`, `--retries`; `benchmarks/routing_overhead.py`)"
GOAL_OVERHEAD = 0.05  # arms b and c: the router costs at most 5 % of arm a's requests per CPU second

NGINX_CONF = """\
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    keepalive_requests 100000;
    keepalive_timeout 65s;
    open_file_cache max=16;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    server {{
        listen 127.0.0.1:{port_a};
        listen 127.0.0.1:{port_b};
        root {prefix}/www;
        location / {{
            default_type application/json;
            try_files /ok.json =404;
        }}
    }}
}}
"""


@dataclass(frozen=True)
class Arm:
    key: str
    label: str  # for the table
    targets: int  # 1 or 2
    options: tuple[str, ...]  # loadbench run's routing options


ARMS = (
    Arm("a", "one target (no router)", 1, ()),
    Arm("b", "one target, `--retries 1`", 1, ("--retries", "1")),
    Arm("c", "two targets, `--balance round-robin`", 2, ("--balance", "round-robin")),
    Arm("d", "two targets, `--balance least-outstanding`", 2, ("--balance", "least-outstanding")),
    Arm("e", "two targets, `--balance p2c`", 2, ("--balance", "p2c")),
)


@dataclass
class Result:
    arm: Arm
    trial: Trial
    split: dict[str, int]  # records per target (the `target` column's values)


# --- the server ------------------------------------------------------------------------------


def start_nginx(workdir: Path, pin: list[str]) -> tuple[subprocess.Popen[bytes], list[str]]:
    """One nginx, one worker, listening on two free loopback ports; its process and both URLs."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    prefix = workdir / "nginx"
    (prefix / "www").mkdir(parents=True)
    (prefix / "www" / "ok.json").write_bytes(BODY)
    # Started as root, nginx's worker runs as an unprivileged user: it must be able to reach the
    # file through mkdtemp's 0700 directory (traverse only; nothing in it becomes listable).
    workdir.chmod(0o711)
    port_a = free_port()
    port_b = free_port()
    while port_b == port_a:
        port_b = free_port()
    conf = prefix / "nginx.conf"
    conf.write_text(NGINX_CONF.format(prefix=prefix, port_a=port_a, port_b=port_b), encoding="utf-8")
    log = workdir / "nginx.log"
    command = [*pin, nginx, "-p", str(prefix), "-e", str(prefix / "error.log"), "-c", str(conf)]
    command += ["-g", "daemon off;"]
    with open(log, "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        for port in (port_a, port_b):
            wait_listening(port, process, log)
    except BaseException:
        stop_process(process)
        raise
    return process, [f"http://127.0.0.1:{port_a}", f"http://127.0.0.1:{port_b}"]


# --- the trials ------------------------------------------------------------------------------


def routed_trial(
    arm: Arm, urls: list[str], users: int, duration_s: int, workdir: Path, pin: list[str], n: int
) -> Result:
    name = f"{arm.key}-{n}"
    out = workdir / name
    command = [*pin, str(tool("loadbench")), "run", "--scenario", str(LOCUSTFILE), "--records", "csv"]
    for url in urls[: arm.targets]:
        command += ["--target", url]
    command += [*arm.options, "-u", str(users), "-r", str(users), "-d", f"{duration_s}s"]
    command += ["--warmup", "0s", "--quiet", "--no-sampler", "--no-preflight", "--out", str(out)]
    code, _, phase = run_logged(command, workdir, name, duration_s + 180)
    log = workdir / f"{name}.log"
    records = out / "requests.csv"
    if code != 0 or not records.is_file():
        raise BenchError(f"arm {arm.key}: loadbench run exited with code {code}; see {log}")
    requests, failures, split = check_records(arm, urls, records)
    return Result(arm, Trial(arm.key, requests, failures, *load_phase(phase, log)), split)


def check_records(arm: Arm, urls: list[str], records: Path) -> tuple[int, int, dict[str, int]]:
    """(requests, failures, records per target) of one trial; BenchError when the routing
    columns are not what the arm must write (see the module docstring)."""
    with open(records, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader)
        missing = {"ok", "target", "attempt", "request_id"} - set(header)
        if missing:
            raise BenchError(f"arm {arm.key}: {records} lacks the columns {sorted(missing)}")
        ok, target, attempt, rid = (header.index(c) for c in ("ok", "target", "attempt", "request_id"))
        split: Counter[str] = Counter()
        attempts: Counter[str] = Counter()
        ids: set[str] = set()
        requests = failures = with_id = 0
        for row in reader:
            requests += 1
            failures += row[ok] != "1"
            split[row[target]] += 1
            attempts[row[attempt]] += 1
            if row[rid]:
                with_id += 1
                ids.add(row[rid])
    problems = []
    if requests == 0:
        problems.append("no records")
    if failures:
        problems.append(f"{failures} failed requests")
    retrying = "--retries" in arm.options
    if arm.targets == 1 and set(split) != {""}:
        problems.append(f"target should be empty, found {sorted(split)}")
    if arm.targets == 2 and set(split) != set(urls):
        problems.append(f"target should take both {urls}, found {dict(split)}")
    if retrying and (set(attempts) != {"1"} or with_id != requests or len(ids) != requests):
        problems.append(
            f"attempt should be 1 and request_id unique on every record: attempts {dict(attempts)}, "
            f"{with_id:,} ids ({len(ids):,} distinct) in {requests:,} records"
        )
    if not retrying and (set(attempts) != {""} or with_id):
        problems.append(f"attempt and request_id should be empty: attempts {dict(attempts)}, {with_id:,} ids")
    if problems:
        raise BenchError(f"arm {arm.key}: {records}: " + "; ".join(problems))
    return requests, failures, dict(split)


# --- the report ------------------------------------------------------------------------------


def spread(values: list[float]) -> float:
    return (max(values) - min(values)) / statistics.median(values)


def render_section(
    results: list[list[Result]], facts: dict[str, str], command: str, urls: list[str]
) -> tuple[str, dict[str, float]]:
    """The docs section, and each arm's cost per CPU second vs arm a (1 - ratio of the medians)."""
    by_arm = {arm.key: [next(r for r in rnd if r.arm is arm) for rnd in results] for arm in ARMS}
    base = by_arm["a"]
    base_rps = statistics.median(r.trial.rps for r in base)
    base_cpu = statistics.median(r.trial.per_cpu_s for r in base)
    rows = [
        "| arm | req/s, median (spread) | req per CPU s, median (spread) | vs a: req/s | vs a: per CPU s "
        "| per CPU s, median of each round's ratio (range) | records per target |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    costs: dict[str, float] = {}
    for arm in ARMS:
        mine = by_arm[arm.key]
        rps = [r.trial.rps for r in mine]
        cpu = [r.trial.per_cpu_s for r in mine]
        paired = [m.trial.per_cpu_s / b.trial.per_cpu_s for m, b in zip(mine, base, strict=True)]
        costs[arm.key] = 1 - statistics.median(cpu) / base_cpu
        total: Counter[str] = Counter()
        for r in mine:
            total.update(r.split)
        count = sum(total.values())
        split = " / ".join(f"{total[u] / count:.1%}" for u in urls) if arm.targets == 2 else "(one target)"
        ratio_cell = (
            f"{statistics.median(paired):.3f} ({min(paired):.3f}–{max(paired):.3f})" if arm.key != "a" else ""
        )
        rows.append(
            f"| {arm.key}: {arm.label} | {statistics.median(rps):,.0f} ({spread(rps):.0%}) "
            f"| {statistics.median(cpu):,.0f} ({spread(cpu):.0%}) "
            f"| {statistics.median(rps) / base_rps:.3f} | **{statistics.median(cpu) / base_cpu:.3f}** "
            f"| {ratio_cell} | {split} |"
        )
    per_round = [
        "| round (order) | " + " | ".join(f"{arm.key} req/s, per CPU s" for arm in ARMS) + " |",
        "|---|" + "---:|" * len(ARMS),
    ]
    for i, rnd in enumerate(results, 1):
        cells = {r.arm.key: f"{r.trial.rps:,.0f}, {r.trial.per_cpu_s:,.0f}" for r in rnd}
        order = " ".join(r.arm.key for r in rnd)
        per_round.append(f"| {i} ({order}) | " + " | ".join(cells[arm.key] for arm in ARMS) + " |")
    verdicts = []
    for key in ("b", "c"):
        cost = costs[key]
        word = "within" if cost <= GOAL_OVERHEAD else "over"
        verdicts.append(f"arm {key} costs {cost:+.1%} ({word} the {GOAL_OVERHEAD:.0%} budget)")
    failures = sum(r.trial.failures for rnd in results for r in rnd)
    d, u = facts["duration"], facts["users"]
    return "\n".join(
        [
            SECTION,
            "",
            "What routing each request through `loadbench.scenario.routing.Router` costs the load "
            "generator: with several targets (`--target A --target B`, `--balance`) or `--retries`, "
            "each request of a `ModelUser` copies its context, makes a `Route`, asks the "
            "`Balancer` for a target, and the recorder writes three more fields; with one target and "
            "no retries no router is made. Budget: at most 5 % of arm a's requests per CPU second "
            "for b and c.",
            "",
            f"Result ({facts['date']}): per CPU second of the generator, " + "; ".join(verdicts) + ".",
            "",
            "What the excess means: arm a's requests cost the generator about 145 µs of CPU each "
            "against this 11-byte nginx answer, so 10 % is about 15 µs a request, spent only by runs "
            "that ask for several targets or retries. Against a model that takes a millisecond or more "
            "it is under 1.5 % of a core per request. The router was already trimmed once by this "
            "benchmark (one context dict per attempt, a `Route` per target made once, no list building "
            "in `Balancer.pick` for a first attempt: b 0.879 -> 0.90, e 0.889 -> 0.90 per CPU s); what "
            "is left is mostly the extra call layer with its keyword arguments.",
            "",
            "```",
            command,
            "```",
            "",
            "(`make benchmark` runs the script with its defaults.)",
            "",
            *rows,
            "",
            "Each trial, in the order run (req/s, req per CPU s):",
            "",
            *per_round,
            "",
            f"- Method: {len(results)} round{'s' if len(results) > 1 else ''}; each runs the five arms once, one after the other, the "
            "order rotating by one arm per round. Every trial is `loadbench run --scenario "
            f"benchmarks/locustfile_model_get.py -u {u} -r {u} -d {d}s --warmup 0s --no-sampler "
            "--no-preflight --quiet` plus the arm's `--target`s and options; the locustfile is a "
            '`ModelUser` with one task, `self.client.get("/", name="GET /")` (no think time).',
            "- req/s = the records of `requests.csv` / the load phase (Locust's `test_start` to "
            "`test_stopping`, wall clock, written by the locustfile); req per CPU s = the same records "
            "/ the CPU time (`time.process_time()`) the generator used in that phase: the rate one "
            "whole core would sustain, the figure to read on a shared machine. Spread = (max − min) / "
            "median over the rounds. The ratio columns divide by arm a: the medians, and each round's "
            "own ratio (its median and range).",
            "- Checked in every trial's `requests.csv`: no failures; `target` empty in a and b, one of "
            "the two base URLs in c–e with both used (records per target: the share of each, all "
            "rounds); `attempt` 1 and a unique `request_id` on every record of b (the router was on, "
            f"nothing was retried), both empty elsewhere. Failed requests in all trials: {failures:,}.",
            f"- Server: {facts['server']}; {facts['pinning']}.",
            f"- Machine: {facts['cpu']}, {facts['cores']} logical cores, shared with other work while "
            "this ran (tests and builds of other sessions), so every figure is ± the spreads shown: "
            f"compare the arms with each other, not with other sections; {facts['os']}.",
            f"- Versions: Python {facts['python']}, Locust {facts['locust']}, loadbench {facts['loadbench']}.",
            "",
        ]
    ), costs


# --- main ------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--rounds", type=int, default=3, help="rounds, each running every arm once (default 3)"
    )
    parser.add_argument(
        "--duration", type=parse_duration, default=10, help="each trial: 10s, 1m... (default 10s)"
    )
    parser.add_argument("--users", type=int, default=32, help="concurrent users (default 32)")
    parser.add_argument(
        "--write-docs",
        action="store_true",
        help=f"replace this benchmark's section of {DOCS.relative_to(REPO)}",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, run dirs)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.rounds < 1 or args.users < 1:
        print("routing_overhead: --rounds and --users must be at least 1", file=sys.stderr)
        return 2
    if shutil.which("nginx") is None and not Path("/usr/sbin/nginx").is_file():
        print("routing_overhead: nginx is not installed: `make benchmark-setup`", file=sys.stderr)
        return 2
    locust_bin, loadbench_bin = tool("locust"), tool("loadbench")
    gen_pin, server_pin, pin_line = pinning()
    command = shlex.join(
        ["python", "benchmarks/routing_overhead.py", *(sys.argv[1:] if argv is None else argv)]
    )
    workdir = Path(tempfile.mkdtemp(prefix="loadbench-routing-"))
    try:
        server, urls = start_nginx(workdir, server_pin)
    except BenchError as exc:
        print(f"routing_overhead: {exc}", file=sys.stderr)
        return 1
    version = version_of([shutil.which("nginx") or "/usr/sbin/nginx", "-v"], r"nginx/(\S+)")
    server_line = (
        f"nginx {version}, 1 worker listening on two loopback ports (the two targets), `access_log off`, "
        f"`keepalive_requests 100000`, serving a {len(BODY)}-byte static file (`try_files`)"
    )
    print(f"server: {server_line} at {' and '.join(urls)}; {pin_line}")
    results: list[list[Result]] = []
    try:
        for n in range(args.rounds):
            order = ARMS[n % len(ARMS) :] + ARMS[: n % len(ARMS)]
            rnd = []
            for arm in order:
                r = routed_trial(arm, urls, args.users, args.duration, workdir, gen_pin, n + 1)
                rnd.append(r)
                split = ", ".join(f"{v:,}" for v in r.split.values()) if arm.targets == 2 else ""
                print(
                    f"round {n + 1}: {arm.key} {r.trial.rps:8,.0f} req/s {r.trial.per_cpu_s:8,.0f} req/CPU-s "
                    f"({r.trial.requests:,} requests{'; per target ' + split if split else ''})",
                    flush=True,
                )
            results.append(rnd)
    except (BenchError, subprocess.TimeoutExpired) as exc:
        print(f"routing_overhead: {exc} (kept {workdir})", file=sys.stderr)
        return 1
    finally:
        stop_process(server)

    facts = run_facts(args, server_line, pin_line, locust_bin, loadbench_bin)
    section, _ = render_section(results, facts, command, urls)
    print()
    print(section)
    if args.write_docs:
        write_docs(section, DOCS, SECTION)
        print(f"wrote {DOCS}")
    if args.keep:
        print(f"kept {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
