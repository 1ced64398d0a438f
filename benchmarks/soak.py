"""Soak: the load generator's memory and open files over a long run of steady load (not in CI).

    python benchmarks/soak.py [--duration 10m] [--users 16] [--target URL] [--write-docs]

Starts the embedded demo endpoint (``python -m loadbench demo --port 0 --latency-ms 2``) unless
``--target`` names one, then runs, as a child process::

    python -m loadbench run --target URL --scenario json_post --data loadbench/data/digits.jsonl
        -u 16 -d 10m --warmup 30s --quiet --out TMP/run

Every 5 s (``--interval``) it samples that process (the load generator) and any children of it
other than the sampler with psutil: RSS, USS (``memory_full_info``), open file descriptors,
threads, CPU time; the sampler process (``python -m loadbench.sample.sampler``, a child of the run)
separately; and the number of records in the run directory's ``requests.csv``.

After the run, over the samples of the load phase that come after the settle time (60 s from
the start of the load, ``--settle``; the run's own warmup is 30 s), it fits a least-squares line
to RSS and to open files against time. Goal: no growth beyond a fixed bound after warmup:
RSS max − min at most 50 MiB and slope below 5 MiB/min, open files max − min at most 2.
``--write-docs`` replaces this benchmark's section of ``docs/benchmarks.md``.

Ctrl-C (or SIGTERM) stops the run (SIGINT, as loadbench expects; it still writes its report)
and the demo endpoint, and prints what was sampled so far.

Exit codes: 0 done (whatever the verdict), 1 the run failed, 2 something needed is missing.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import platform
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import psutil

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
import recording_overhead  # noqa: E402  (the shared docs writer of benchmarks/)

from loadbench.errors import UsageError  # noqa: E402
from loadbench.values import parse_duration as _parse_duration  # noqa: E402

SECTION = "## Soak: generator memory and open files over 10 minutes"
DATA = "loadbench/data/digits.jsonl"
MIB = 1024 * 1024
GOAL_RSS_GROWTH_MIB = 50.0  # max − min after the settle time
GOAL_RSS_SLOPE_MIB_MIN = 5.0
GOAL_FDS_GROWTH = 2


class SoakError(Exception):
    """The endpoint or the run failed; the message says which and where its log is."""


@dataclass
class Sample:
    unix_s: float
    rss: int  # the generator: the run process and its children other than the sampler, bytes
    uss: int | None
    fds: int
    threads: int
    cpu_s: float
    procs: int
    sampler_rss: int | None
    sampler_uss: int | None
    sampler_fds: int | None
    records: int  # records in requests.csv so far
    csv_bytes: int


def parse_duration(text: str) -> float:
    try:
        seconds = _parse_duration(text)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc
    if seconds <= 0:
        raise argparse.ArgumentTypeError("must be more than 0 s")
    return seconds


# --- processes -------------------------------------------------------------------------------


def start_demo(workdir: Path, timeout_s: float = 60.0) -> tuple[subprocess.Popen[bytes], str]:
    """Start the demo endpoint on a free port; return it and the URL from its first stdout line."""
    log = workdir / "demo.log"
    command = [sys.executable, "-m", "loadbench", "demo", "--port", "0", "--latency-ms", "2"]
    with open(log, "wb") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, cwd=REPO, start_new_session=True
        )
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        match = re.search(r"http://\S+", log.read_text(encoding="utf-8", errors="replace"))
        if match:
            return process, match.group(0)
        if process.poll() is not None:
            raise SoakError(f"the demo endpoint exited with code {process.returncode}; see {log}")
        time.sleep(0.1)
    stop(process, signal.SIGTERM)
    raise SoakError(f"the demo endpoint announced no URL within {timeout_s:g} s; see {log}")


def stop(process: subprocess.Popen[bytes], sig: signal.Signals, timeout_s: float = 15.0) -> None:
    """Send ``sig``; after ``timeout_s`` kill the process and whatever of its tree is left."""
    if process.poll() is not None:
        return
    try:
        tree = psutil.Process(process.pid).children(recursive=True)
    except psutil.Error:
        tree = []
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(sig)
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    for child in tree:
        with contextlib.suppress(psutil.Error):
            child.kill()


def is_sampler(proc: psutil.Process) -> bool:
    with contextlib.suppress(psutil.Error):
        return "loadbench.sample.sampler" in proc.cmdline()
    return False


class CsvCounter:
    """Counts the records of a growing ``requests.csv`` by reading only what was appended."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.newlines = 0

    def count(self) -> tuple[int, int]:
        with contextlib.suppress(FileNotFoundError), open(self.path, "rb") as f:
            f.seek(self.offset)
            while chunk := f.read(1 << 20):
                self.newlines += chunk.count(b"\n")
                self.offset += len(chunk)
        return max(self.newlines - 1, 0), self.offset  # less the header line


def take_sample(run: psutil.Process, counter: CsvCounter) -> Sample | None:
    try:
        children = run.children(recursive=True)
    except psutil.Error:
        return None
    sampler = next((c for c in children if is_sampler(c)), None)
    skip = {sampler.pid} if sampler is not None else set()
    if sampler is not None:
        with contextlib.suppress(psutil.Error):
            skip |= {c.pid for c in sampler.children(recursive=True)}
    generator = [run] + [c for c in children if c.pid not in skip]
    rss = fds = threads = 0
    uss: int | None = 0
    cpu = 0.0
    for proc in generator:
        try:
            with proc.oneshot():
                try:
                    full = proc.memory_full_info()
                    rss += full.rss
                    uss = uss + full.uss if uss is not None else None
                except psutil.AccessDenied:
                    rss += proc.memory_info().rss
                    uss = None
                fds += proc.num_fds()
                threads += proc.num_threads()
                times = proc.cpu_times()
                cpu += times.user + times.system
        except psutil.NoSuchProcess:
            if proc is run:
                return None
    s_rss = s_uss = s_fds = None
    if sampler is not None:
        with contextlib.suppress(psutil.Error):
            full = sampler.memory_full_info()
            s_rss, s_uss, s_fds = full.rss, full.uss, sampler.num_fds()
    records, size = counter.count()
    return Sample(
        time.time(), rss, uss, fds, threads, cpu, len(generator), s_rss, s_uss, s_fds, records, size
    )


# --- analysis --------------------------------------------------------------------------------


def slope_per_min(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, value) points, in value per minute."""
    if len(points) < 2:
        return float("nan")
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    sxy = sum((x - mx) * (y - my) for x, y in points)
    return 60.0 * sxy / sxx if sxx else float("nan")


@dataclass
class Growth:
    slope: float  # per minute
    spread: float  # max − min
    first: float
    last: float


def growth(samples: list[Sample], t0: float, value: str, scale: float = 1.0) -> Growth:
    points = [(s.unix_s - t0, getattr(s, value) / scale) for s in samples if getattr(s, value) is not None]
    if not points:
        nan = float("nan")
        return Growth(nan, nan, nan, nan)
    ys = [y for _, y in points]
    return Growth(slope_per_min(points), max(ys) - min(ys), ys[0], ys[-1])


def mib(value: int | None) -> str:
    return "–" if value is None else f"{value / MIB:.1f}"


def minute_rows(samples: list[Sample], t0: float, end: float) -> list[str]:
    """One table row per whole minute of the load: the last sample at or before each mark."""
    rows = []
    previous: Sample | None = None
    marks = [60.0 * m for m in range(0, int((end - t0) // 60) + 1)]
    if end - t0 - marks[-1] > 5:
        marks.append(end - t0)  # a last, partial minute
    for mark in marks:
        before = [s for s in samples if s.unix_s - t0 <= mark + 0.5]
        if not before:
            continue
        s = before[-1]
        if previous is s:
            continue
        rate = "–"
        if previous is not None and s.unix_s > previous.unix_s:
            rate = f"{(s.records - previous.records) / (s.unix_s - previous.unix_s):,.0f}"
        rows.append(
            f"| {mark / 60:.4g} | {s.unix_s - t0:.0f} | {s.records:,} | {rate} | {mib(s.rss)} | {mib(s.uss)} "
            f"| {s.fds} | {s.threads} | {mib(s.sampler_rss)} | {s.csv_bytes / MIB:.1f} |"
        )
        previous = s
    return rows


def machine_facts() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or platform.machine(),
    )
    mem = psutil.virtual_memory().total / 1024**3
    return (
        f"{cpu}, {psutil.cpu_count()} logical cores (shared, noisy), {mem:.1f} GiB RAM; "
        f"{platform.system()} {platform.release()}"
    )


def versions() -> str:
    from importlib.metadata import version

    import loadbench

    parts = [f"Python {platform.python_version()}"]
    for name in ("locust", "psutil"):
        with contextlib.suppress(Exception):
            parts.append(f"{name.capitalize() if name == 'locust' else name} {version(name)}")
    return ", ".join([*parts, f"loadbench {loadbench.__version__}"])


def render(
    samples: list[Sample],
    summary: dict,
    args: argparse.Namespace,
    command: str,
    run_command: str,
    target_desc: str,
    started: dt.datetime,
    interrupted: bool,
) -> tuple[str, bool]:
    run = summary.get("run", {})
    t0 = float(run.get("started_unix_s") or samples[0].unix_s)
    end = float(run.get("ended_unix_s") or samples[-1].unix_s)
    load = [s for s in samples if s.unix_s <= end]
    after = [s for s in load if s.unix_s - t0 >= args.settle]
    post = [s for s in samples if s.unix_s > end]
    rss = growth(after, t0, "rss", MIB)
    uss = growth(after, t0, "uss", MIB)
    fds = growth(after, t0, "fds")
    threads = growth(after, t0, "threads")
    s_rss = growth(after, t0, "sampler_rss", MIB)
    s_fds = growth(after, t0, "sampler_fds")
    span_min = (after[-1].unix_s - after[0].unix_s) / 60 if len(after) > 1 else 0.0
    ok = (
        len(after) >= 3
        and rss.spread <= GOAL_RSS_GROWTH_MIB
        and rss.slope < GOAL_RSS_SLOPE_MIB_MIN
        and fds.spread <= GOAL_FDS_GROWTH
    )
    verdict = (
        "meets" if ok else "misses" if len(after) >= 3 else "too few samples after the settle time to judge"
    )
    reqs = summary.get("requests", {})
    lat = summary.get("latency_ms", {})
    cpu_load = (load[-1].cpu_s - load[0].cpu_s) / (load[-1].unix_s - load[0].unix_s) if len(load) > 1 else 0
    records_end = load[-1].records if load else 0
    peak_post = max((s.rss for s in post), default=None)
    lines = [
        SECTION,
        "",
        f"Goal: over {args.duration_text} of steady load, the load generator's memory and open files do "
        f"not grow beyond a fixed bound after warmup: from {args.settle:g} s into the load to its end, RSS "
        f"max − min ≤ {GOAL_RSS_GROWTH_MIB:g} MiB with a least-squares slope < {GOAL_RSS_SLOPE_MIB_MIN:g} "
        f"MiB/min, and open file descriptors max − min ≤ {GOAL_FDS_GROWTH}.",
        "",
        f"Result ({started:%Y-%m-%d %H:%M} UTC{', interrupted' if interrupted else ''}): RSS "
        f"{rss.first:.1f} → {rss.last:.1f} MiB, slope **{rss.slope:+.2f} MiB/min**, max − min "
        f"**{rss.spread:.1f} MiB** over {span_min:.1f} min; open files {fds.first:.0f} → {fds.last:.0f}, "
        f"max − min **{fds.spread:.0f}**: **{verdict}**" + (" the goal." if len(after) >= 3 else "."),
        "",
        "```",
        command,
        "```",
        "",
        "runs, as a child process, with the load generator sampled from outside:",
        "",
        "```",
        run_command,
        "```",
        "",
        "| minute | t (s) | records in requests.csv | req/s (since previous row) | generator RSS MiB "
        "| USS MiB | open fds | threads | sampler RSS MiB | requests.csv MiB |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        *minute_rows(load, t0, end),
        "",
        f"After the settle time ({len(after)} samples, {span_min:.1f} min):",
        "",
        "| | first | last | max − min | slope per min | bound |",
        "|---|---:|---:|---:|---:|---|",
        f"| generator RSS (MiB) | {rss.first:.1f} | {rss.last:.1f} | {rss.spread:.1f} | {rss.slope:+.2f} "
        f"| ≤ {GOAL_RSS_GROWTH_MIB:g}, < {GOAL_RSS_SLOPE_MIB_MIN:g}/min |",
        f"| generator USS (MiB) | {uss.first:.1f} | {uss.last:.1f} | {uss.spread:.1f} | {uss.slope:+.2f} | |",
        f"| generator open fds | {fds.first:.0f} | {fds.last:.0f} | {fds.spread:.0f} | {fds.slope:+.2f} "
        f"| ≤ {GOAL_FDS_GROWTH} |",
        f"| generator threads | {threads.first:.0f} | {threads.last:.0f} | {threads.spread:.0f} "
        f"| {threads.slope:+.2f} | |",
        f"| sampler RSS (MiB) | {s_rss.first:.1f} | {s_rss.last:.1f} | {s_rss.spread:.1f} | {s_rss.slope:+.2f} | |",
        f"| sampler open fds | {s_fds.first:.0f} | {s_fds.last:.0f} | {s_fds.spread:.0f} | {s_fds.slope:+.2f} | |",
        "",
        f"- The run: {reqs.get('total', 0):,} requests measured ({reqs.get('warmup_excluded', 0):,} in warmup "
        f"excluded; {records_end:,} records in all), throughput {summary.get('throughput_rps', 0):,.1f} req/s, "
        f"errors {reqs.get('errors', 0):,}, latency p50 {lat.get('p50', float('nan')):.1f} ms, p99 "
        f"{lat.get('p99', float('nan')):.1f} ms (from the run directory's `summary.json`; status "
        f"{run.get('status', '?')}). The generator used {100 * cpu_load:.0f} % of one core on average.",
        f"- Target: {target_desc}; the endpoint runs on the same 2 cores as the generator, so req/s moves "
        "with the host's other tenants, not with the generator's state.",
        f"- Sampling: every {args.interval:g} s with psutil from this script: the `loadbench run` process "
        "(its children other than the sampler are added in, none here), and the sampler process "
        "(`python -m loadbench.sample.sampler`, a child of the run) separately. USS = `memory_full_info().uss`, "
        "memory only this process holds. Minute rows show the last sample at or before each mark, "
        "timed from the run's `started_unix_s`; samples after the load's end (analysis and report) are "
        "left out"
        + (f" (the generator's RSS peaked at {peak_post / MIB:.1f} MiB there)." if peak_post else "."),
        f"- Machine: {machine_facts()}.",
        f"- Versions: {versions()}.",
        "",
    ]
    return "\n".join(lines), ok


# --- main ------------------------------------------------------------------------------------


class Interrupted(Exception):
    pass


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise Interrupted


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Sample the load generator's memory and open files over a long steady run."
    )
    parser.add_argument("--duration", default="10m", help="load duration, warmup included (default 10m)")
    parser.add_argument("--users", "-u", type=int, default=16, help="concurrent users (default 16)")
    parser.add_argument("--target", help="endpoint base URL (default: start the demo endpoint)")
    parser.add_argument("--warmup", default="30s", help="the run's --warmup (default 30s)")
    parser.add_argument(
        "--settle", type=parse_duration, default=60.0, help="growth is judged after this (default 60s)"
    )
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between samples (default 5)")
    parser.add_argument("--write-docs", action="store_true", help="replace the section in docs/benchmarks.md")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, run dir)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.duration_text = args.duration
    duration_s = parse_duration(args.duration)
    parse_duration(args.warmup)
    if args.settle + 2 * args.interval >= duration_s:
        print(f"soak: --duration must exceed --settle ({args.settle:g} s) by two intervals", file=sys.stderr)
        return 2
    if not (REPO / DATA).exists():
        print(f"soak: {DATA} is missing", file=sys.stderr)
        return 2
    command = shlex.join(["python", "benchmarks/soak.py", *(sys.argv[1:] if argv is None else argv)])
    started = dt.datetime.now(dt.UTC)
    # Started in the background by a shell, a process inherits SIGINT ignored, and so would the
    # children: handle it here, so that they get the default disposition (and Ctrl-C works).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _on_sigterm)
    workdir = Path(tempfile.mkdtemp(prefix="loadbench-soak-"))
    demo: subprocess.Popen[bytes] | None = None
    run: subprocess.Popen[bytes] | None = None
    samples: list[Sample] = []
    interrupted = False
    try:
        if args.target:
            url, target_desc = args.target, f"`{args.target}`"
        else:
            demo, url = start_demo(workdir)
            target_desc = "the embedded demo endpoint (`loadbench demo --latency-ms 2`, POST /predict)"
        out = workdir / "run"
        run_args = ["--target", url, "--scenario", "json_post", "--data", DATA, "-u", str(args.users)]
        run_args += ["-d", args.duration, "--warmup", args.warmup, "--records", "csv", "--quiet", "--out"]
        run_command = shlex.join(["python", "-m", "loadbench", "run", *run_args, "TMPDIR/run"])
        log = workdir / "run.log"
        print(f"soak: {run_command.replace('TMPDIR', str(workdir))}", flush=True)
        with open(log, "wb") as f:
            run = subprocess.Popen(
                [sys.executable, "-m", "loadbench", "run", *run_args, str(out)],
                stdout=f,
                stderr=subprocess.STDOUT,
                cwd=REPO,
                start_new_session=True,  # Ctrl-C reaches it once, from here
            )
        proc = psutil.Process(run.pid)
        counter = CsvCounter(out / "requests.csv")
        t_start = time.monotonic()
        next_at = t_start
        while run.poll() is None:
            sample = take_sample(proc, counter)
            if sample is not None:
                samples.append(sample)
                t = time.monotonic() - t_start
                if len(samples) % max(1, round(60 / args.interval)) == 1:
                    print(
                        f"soak: {t:5.0f} s  records {sample.records:,}  RSS {mib(sample.rss)} MiB  "
                        f"USS {mib(sample.uss)} MiB  fds {sample.fds}  threads {sample.threads}  "
                        f"sampler RSS {mib(sample.sampler_rss)} MiB",
                        flush=True,
                    )
            next_at += args.interval
            with contextlib.suppress(subprocess.TimeoutExpired):
                run.wait(timeout=max(0.0, next_at - time.monotonic()))
        if run.returncode != 0:
            raise SoakError(f"`loadbench run` exited with code {run.returncode}; see {log}")
    except (KeyboardInterrupt, Interrupted):
        interrupted = True
        print("soak: interrupted; stopping the run and the endpoint", file=sys.stderr, flush=True)
    except SoakError as exc:
        print(f"soak: {exc}", file=sys.stderr)
        args.keep = True
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not skip the clean-up
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if run is not None:
            stop(run, signal.SIGINT, timeout_s=60.0)  # loadbench stops the load and writes its report
        if demo is not None:
            stop(demo, signal.SIGTERM)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        summary_path = workdir / "run" / "summary.json"
        summary_text = summary_path.read_text(encoding="utf-8") if summary_path.exists() else "{}"
        if args.keep:
            print(f"soak: kept {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    if len(samples) < 2:
        print("soak: too few samples to report", file=sys.stderr)
        return 1
    section, _ = render(
        samples, json.loads(summary_text), args, command, run_command, target_desc, started, interrupted
    )
    print("\n" + section)
    if args.write_docs and not interrupted:
        recording_overhead.SECTION = SECTION  # the writer replaces the section named by this global
        recording_overhead.write_docs(section)
        print(f"soak: wrote {recording_overhead.DOCS.relative_to(REPO)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
