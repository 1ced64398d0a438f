"""Analyzer and report by section: ``loadbench report DIR`` through the store vs in memory, by kind.

    python benchmarks/analyzer_sections.py [--records 1M] [--repeat 1] [--kinds plain,llm,...]
        [--keep DIR] [--write-docs]

One synthetic run of N records of each kind (`KIND_COLUMNS`), in Parquet converted from the
recorder's CSV; ``loadbench report`` through the store vs in memory (time, peak RSS, the same
``summary.json``?), then ``loadbench compare`` of two ``all`` runs, store vs in memory.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
# The measuring parent imports no more than analyzer_scale does (numpy, pandas: ~0.1 GB), under
# what every measured child imports itself: a child's peak RSS starts at its parent's.
from analyzer_scale import measure, versions  # noqa: E402
from counts import count_label, parse_count  # noqa: E402
from recording_overhead import DOCS, machine_facts, write_docs  # noqa: E402

SECTION = "## Analyzer and report by section"
AFTER = "## Analyzer and report at scale"  # the section this one follows in docs/benchmarks.md
KINDS = ("plain", "llm", "payload", "routes", "all")
# What each kind adds to the core columns, for the docs and for the check that the store holds it.
KIND_COLUMNS = {
    "plain": (),
    "llm": ("ttft_ms", "input_tokens", "output_tokens", "tokens_source", "itl_ms", "input_tokens_source"),
    "payload": ("expected", "predicted", "media_s", "connect_ms", "ttfb_ms", "download_ms", "server_ms"),
    "routes": ("replica", "target"),
}
KIND_COLUMNS["all"] = tuple(c for k in ("llm", "payload", "routes") for c in KIND_COLUMNS[k])
COMPARE_KIND = "all"
CANDIDATE = "all-candidate"  # compare's second run: another seed, 5 % slower
TARGETS = ("http://a:8000", "http://b:8000", "http://c:8000")
REPLICAS = (("r1", 0.5, 1.0), ("r2", 0.3, 1.3), ("r3", 0.2, 2.0))  # name, share, latency factor
CLASSES = 10
STAGES = [
    {"name": "ramp", "start_s": 0.0, "end_s": 200.0, "start_level": 8.0, "end_level": 64.0},
    {"name": "hold", "start_s": 200.0, "end_s": 400.0, "start_level": 64.0, "end_level": 64.0},
    {"name": "step", "start_s": 400.0, "end_s": 600.0, "start_level": 32.0, "end_level": 32.0},
]
CHECKED_LINES = 2000
CHUNK = 100_000  # records formatted at a time

# The in-memory path of `loadbench report` (`cli.summary.analyze_and_report` without a store).
IN_MEMORY = (
    "import sys; from pathlib import Path; from loadbench.analyze.analyzer import analyze_run; "
    "from loadbench.report.report import render_report; "
    "from loadbench.record.columnar import read_run_requests; run = Path(sys.argv[1]); "
    "requests = read_run_requests(run); analyze_run(run, requests=requests); "
    "render_report(run, requests=requests)"
)
# `loadbench compare` with the store refused: every run read into memory.
COMPARE_IN_MEMORY = (
    "import sys; from loadbench.compare import rundata; "
    "rundata.open_bounded = lambda path, meta: None; "
    "from loadbench.cli.main import main; sys.exit(main(['compare', *sys.argv[1:]]))"
)


# --- the synthetic runs (in a child: the parent never holds their arrays) ---------------------


def generate(base: Path, n: int, kinds: list[str]) -> None:
    """Write every kind's run directory under ``base`` (and compare's candidate)."""
    from loadbench.analyze import bounded
    from loadbench.analyze.analyzer import analyze_run
    from loadbench.analyze.store import RecordStore
    from loadbench.record import rundir

    plans = [(k, k, 7, 1.0) for k in kinds]
    if COMPARE_KIND in kinds:
        plans.append((CANDIDATE, COMPARE_KIND, 8, 1.05))
    for name, kind, seed, slower in plans:
        run_dir = base / name
        if run_dir.exists():
            shutil.rmtree(run_dir)
        t0 = time.perf_counter()
        write_run(run_dir, kind, n, np.random.default_rng(seed), slower)
        meta = rundir.read_meta(run_dir)
        with RecordStore.open(run_dir) as store:
            why = bounded.unsupported(meta, store)
            missing = set(KIND_COLUMNS[kind]) - set(store.filled)
        if why is not None or missing:
            raise SystemExit(f"{name}: not the store's to analyze ({why}), or lacks {sorted(missing)}")
        if name == CANDIDATE:
            analyze_run(run_dir)  # compare reads its summary.json; its report is not measured
        print(f"{name}: wrote {count_label(n)} records in {time.perf_counter() - t0:.1f} s", flush=True)


def write_run(run_dir: Path, kind: str, n: int, rng: Any, slower: float) -> None:
    import pyarrow as pa
    import pyarrow.csv as pcsv
    from analyzer_scale import write_meta, write_users_and_samples

    from loadbench.record import rundir
    from loadbench.record.columnar import convert_csv
    from loadbench.record.records import COLUMNS

    run_dir.mkdir(parents=True)
    write_meta(run_dir, n)
    write_users_and_samples(run_dir, rng)
    meta = rundir.read_meta(run_dir)
    meta["format"] = 2
    meta["settings"].update(kind_settings(kind))
    rundir.write_json(run_dir / rundir.META, meta)
    cols, itl = records_of(kind, n, rng, slower)
    csv_path = run_dir / rundir.REQUESTS
    schema = pa.schema([(c, pa.string()) for c in COLUMNS])
    # Unquoted: no text of these records holds a comma or a quote (`check_lines` says so).
    options = pcsv.WriteOptions(include_header=False, quoting_style="none")
    with open(csv_path, "wb") as f, pcsv.CSVWriter(f, schema, write_options=options) as writer:
        f.write((",".join(COLUMNS) + "\n").encode())
        for lo in range(0, n, CHUNK):  # texts of a chunk at a time: memory stays bounded
            rows = slice(lo, min(n, lo + CHUNK))
            writer.write_table(pa.table({c: text_column(c, cols, itl, rows) for c in COLUMNS}, schema))
    check_lines(csv_path, cols, itl)
    convert_csv(csv_path, run_dir / rundir.REQUESTS_PARQUET)
    csv_path.unlink()


def kind_settings(kind: str) -> dict[str, Any]:
    settings: dict[str, Any] = {}
    if kind in ("payload", "all"):
        settings["server_time_header"] = "Server-Timing"
    if kind in ("routes", "all"):
        settings.update(
            replica_header="X-Served-By",
            targets=list(TARGETS),
            balance="round_robin",
            cold_start=20,
            stages=STAGES,
        )
    return settings


def records_of(kind: str, n: int, rng: Any, slower: float) -> tuple[dict[str, Any], dict[str, Any]]:
    """The records' columns in completion order, as integers of their written resolution (µs,
    0.001 ms, 10^-6 s: the text is exact) or texts, and the LLM runs' gaps by record."""
    from analyzer_scale import DURATION_S, ENDPOINTS, FAILURES, STARTED_UNIX_S

    start = int(STARTED_UNIX_S * 1e6) + 3000 + np.sort(rng.integers(0, int(DURATION_S * 1e6), n))
    which = rng.choice(len(ENDPOINTS), size=n, p=[e[2] for e in ENDPOINTS])
    medians = np.array([e[3] for e in ENDPOINTS]) * slower
    latency = np.rint(medians[which] * rng.lognormal(0.0, 0.45, n) * 1000).astype(np.int64)
    status = np.full(n, 200, dtype=np.int64)
    size = np.array([e[4] for e in ENDPOINTS], dtype=np.int64)[which]
    failure = np.full(n, -1, dtype=np.int64)
    draw, edge = rng.uniform(0.0, 1.0, n), 0.0
    for k, (code, _text, share, fixed_ms) in enumerate(FAILURES):
        hit = (draw >= edge) & (draw < edge + share)
        edge += share
        failure[hit], status[hit], size[hit] = k, code, 57 if code else 0
        if fixed_ms is not None:
            latency[hit] = int(fixed_ms * 1000) + rng.integers(0, 5000, int(hit.sum()))
    ok, answered = failure < 0, status > 0
    speed = np.ones(n)  # a replica's: how much slower than the fastest it answers
    cols: dict[str, Any] = {
        "name": np.array([e[0] for e in ENDPOINTS], dtype=object)[which],
        "method": np.array([e[1] for e in ENDPOINTS], dtype=object)[which],
        "status": status,
        "response_bytes": size,
        "ok": ok.astype(np.int64),
        "error": np.array(["", *(f[1] for f in FAILURES)], dtype=object)[failure + 1],
    }
    if kind in ("routes", "all"):
        pick = rng.choice(len(REPLICAS), size=n, p=[r[1] for r in REPLICAS])
        speed = np.where(ok, np.array([r[2] for r in REPLICAS])[pick], 1.0)
        latency = np.rint(latency * speed).astype(np.int64)
        replica = np.array([r[0] for r in REPLICAS], dtype=object)[pick]
        replica[~answered | (rng.random(n) < 0.02)] = None  # no answer, or no header in it
        cols["replica"] = replica
        cols["target"] = np.array(TARGETS, dtype=object)[np.arange(n) % len(TARGETS)]  # round robin
    itl: dict[str, Any] = {}
    if kind in ("llm", "all"):
        streamed = ok & (rng.random(n) >= 0.05)
        tokens = rng.integers(12, 31, n)  # ~20 gaps a stream
        ttft = np.rint(rng.lognormal(np.log(25.0 * slower), 0.5, n) * speed * 1000).astype(np.int64)
        counts = np.where(streamed, tokens - 1, 0)
        gaps = rng.exponential(8.0 * slower, int(counts.sum())) * np.repeat(speed, counts)
        gaps = np.rint(gaps * 1000).astype(np.int64)
        bounds = np.concatenate([[0], np.cumsum(counts)])
        gap_sum = np.add.reduceat(np.append(gaps, 0), bounds[:-1]) * (counts > 0)
        latency = np.where(streamed, ttft + gap_sum + rng.integers(0, 2000, n), latency)
        usage = rng.random(n) < 0.7
        cols["ttft_ms"] = np.where(streamed, ttft, -1)
        cols["output_tokens"] = np.where(ok, tokens, -1)
        cols["tokens_source"] = texts(("usage", "counted"), (~usage).astype(np.int64), ok)
        cols["input_tokens"] = np.where(ok & usage, rng.integers(20, 800, n), -1)
        cols["input_tokens_source"] = texts(("usage",), np.zeros(n, dtype=np.int64), ok & usage)
        itl = {"gaps": gaps, "bounds": bounds, "streamed": streamed}
    if kind in ("payload", "all"):
        labels = [f"class-{i}" for i in range(CLASSES)]
        skew = np.linspace(2, 1, CLASSES)
        expected = rng.choice(CLASSES, size=n, p=skew / skew.sum())
        right = rng.random(n) < 0.85
        predicted = np.where(right, expected, rng.integers(0, CLASSES, n))
        cols["expected"] = texts(labels, expected, rng.random(n) < 0.95)
        cols["predicted"] = texts(labels, predicted, ok)
        cols["media_s"] = np.where(rng.random(n) < 0.8, rng.integers(500_000, 10_000_000, n), -1)
        new_connection = rng.random(n) < 0.02
        cols["connect_ms"] = np.where(answered, np.where(new_connection, rng.integers(500, 4000, n), 0), -1)
        cols["ttfb_ms"] = np.where(answered, latency * 8 // 10, -1)
        cols["download_ms"] = np.where(answered, latency * 15 // 100, -1)
        cols["server_ms"] = np.where(ok & (rng.random(n) < 0.9), latency * rng.integers(30, 90, n) // 100, -1)
    cols["start_unix_s"], cols["latency_ms"] = start, latency
    # The recorder appends a record when its request ends.
    order = np.argsort(start + latency, kind="stable")
    cols = {c: v[order] for c, v in cols.items()}
    if itl:
        itl["order"] = order
    return cols, itl


def texts(choices: Any, index: Any, mask: Any) -> Any:
    """``choices[index]`` where ``mask``, else None (an empty field), as an object array."""
    return np.array([*choices, None], dtype=object)[np.where(mask, index, len(choices))]


# Decimals each number column is written with (`format_record`, `format_extras`); -1 is "empty".
DECIMALS = {
    **dict.fromkeys(("start_unix_s", "media_s"), 6),
    **dict.fromkeys(("latency_ms", "ttft_ms", "connect_ms", "ttfb_ms", "download_ms", "server_ms"), 3),
}


def text_column(name: str, cols: dict[str, Any], itl: dict[str, Any], rows: slice) -> Any:
    """One column's ``rows`` as the recorder's texts (None: an empty field), formatted in Arrow."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if name == "itl_ms" and itl:
        which = itl["order"][rows]  # the rows' records in the order they were drawn
        counts = itl["bounds"][which + 1] - itl["bounds"][which]
        offsets = np.concatenate([[0], np.cumsum(counts)])
        at = np.repeat(itl["bounds"][which] - offsets[:-1], counts) + np.arange(offsets[-1])
        joined = pc.binary_join(pa.LargeListArray.from_arrays(offsets, fixed(itl["gaps"][at], 3)), " ")
        return pc.if_else(pa.array(itl["streamed"][which]), joined, pa.nulls(len(joined), pa.string()))
    values = cols.get(name)
    if values is None:
        return pa.nulls(len(range(*rows.indices(len(cols["status"])))), pa.string())
    values = values[rows]
    if values.dtype == object:
        return pa.array(values, pa.string())
    if name in DECIMALS:
        return fixed(values, DECIMALS[name])
    return pa.array(values, mask=values < 0).cast(pa.string())


def fixed(quanta: Any, decimals: int) -> Any:
    """``f"{q / 10**decimals:.{decimals}f}"`` of non-negative integers (None for a negative one)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    scale = 10**decimals
    whole = pa.array(quanta // scale, mask=quanta < 0).cast(pa.string())
    part = pc.utf8_lpad(pa.array(quanta % scale).cast(pa.string()), decimals, "0")
    return pc.binary_join_element_wise(whole, part, ".")


def check_lines(csv_path: Path, cols: dict[str, Any], itl: dict[str, Any]) -> None:
    """The first lines written must be `format_record`'s, byte for byte."""
    from loadbench.record.records import RequestRecord, format_record

    def value(name: str, i: int) -> Any:
        v = cols.get(name)
        if v is None or v[i] is None or (not isinstance(v[i], str) and v[i] < 0):
            return None
        return float(v[i]) / 10 ** DECIMALS[name] if name in DECIMALS else v[i]

    with open(csv_path, encoding="utf-8") as f:
        lines = [line for _, line in zip(range(CHECKED_LINES + 1), f, strict=False)][1:]
    for i, line in enumerate(lines):
        extras: dict[str, Any] = {}
        for name in KIND_COLUMNS["all"]:
            v = value(name, i)
            if v is not None and name not in ("server_ms", "replica", "target"):
                extras[name] = int(v) if name in ("input_tokens", "output_tokens") else v
        if itl:
            j = int(itl["order"][i])
            if itl["streamed"][j]:
                lo, hi = itl["bounds"][j], itl["bounds"][j + 1]
                extras["itl_ms"] = [float(g) / 1000 for g in itl["gaps"][lo:hi]]
        fields = {c: value(c, i) for c in ("start_unix_s", "latency_ms", "name", "method", "error")}
        fields.update({c: int(cols[c][i]) for c in ("status", "response_bytes", "ok")})
        record = RequestRecord(
            **fields,
            extras=extras,
            server_ms=value("server_ms", i),
            replica=value("replica", i) or "",
            target=value("target", i) or "",
        )
        if format_record(record) != line:
            raise AssertionError(
                f"{csv_path} line {i + 2}: {line!r}, format_record: {format_record(record)!r}"
            )


# --- measuring -------------------------------------------------------------------------------


def paired(
    commands: dict[str, list[str]], cwd: Path, repeat: int, clear: Any, read: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Medians of ``repeat`` alternating runs of each command (time, peak RSS), and what each
    wrote (``read(how)``, after ``clear(how)`` before each run)."""
    taken: dict[str, list[tuple[float, int]]] = {how: [] for how in commands}
    wrote: dict[str, Any] = {}
    for _ in range(repeat):
        for how, command in commands.items():
            clear(how)
            taken[how].append(measure(command, cwd))
            wrote[how] = read(how)
    row: dict[str, Any] = {}
    for how, runs in taken.items():
        row[f"{how}_s"] = statistics.median(s for s, _ in runs)
        row[f"{how}_rss"] = statistics.median(rss for _, rss in runs)
    return row, wrote


def canonical(path: Path) -> str:
    return json.dumps(json.loads(path.read_text()), sort_keys=True)


def measure_kind(run_dir: Path, repeat: int) -> dict[str, Any]:
    """``loadbench report`` of one run through the store and in memory; their outputs equal?"""
    py = sys.executable
    commands = {
        "store": [py, "-m", "loadbench", "report", str(run_dir), "--quiet"],
        "memory": [py, "-c", IN_MEMORY, str(run_dir)],
    }

    def clear(_how: str) -> None:
        for name in ("summary.json", "timeseries.csv", "report.html", "summary.md"):
            (run_dir / name).unlink(missing_ok=True)

    def read(_how: str) -> tuple[str, bytes]:
        return canonical(run_dir / "summary.json"), (run_dir / "timeseries.csv").read_bytes()

    row, wrote = paired(commands, run_dir.parent, repeat, clear, read)
    row["equal"] = wrote["store"][0] == wrote["memory"][0]
    row["series_equal"] = wrote["store"][1] == wrote["memory"][1]
    return row


def measure_compare(base: Path, repeat: int) -> dict[str, Any]:
    """``loadbench compare`` of the two ``all`` runs (analyzed), through the store and in memory."""
    py = sys.executable
    runs = [str(base / COMPARE_KIND), str(base / CANDIDATE)]
    outs = {how: base / f"compare-{how}" for how in ("store", "memory")}
    commands = {
        "store": [py, "-m", "loadbench", "compare", *runs, "--out", str(outs["store"])],
        "memory": [py, "-c", COMPARE_IN_MEMORY, *runs, "--out", str(outs["memory"])],
    }
    row, wrote = paired(
        commands,
        base,
        repeat,
        lambda how: shutil.rmtree(outs[how], ignore_errors=True),
        lambda how: canonical(outs[how] / "compare.json"),
    )
    row["equal"] = wrote["store"] == wrote["memory"]
    return row


# --- docs ------------------------------------------------------------------------------------


def render_section(rows: list[dict[str, Any]], command: str) -> str:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        SECTION,
        "",
        "What each section of the analysis costs through the store (DuckDB over `requests.parquet`, "
        'docs/architecture.md, "Runs of any length") and with the records in memory, side by side: '
        "`loadbench report DIR` (analysis and report.html) of one run of each kind, and `loadbench "
        f"compare` of two runs of the `all` kind ({stamp}).",
        "",
        "```",
        command,
        "```",
        "",
        "| kind | records | in memory s | in memory GB | store s | store GB | memory ratio | summaries equal |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['kind']} | {count_label(int(r['records']))} | {r['memory_s']:.1f} "
            f"| {r['memory_rss'] / 1e9:.2f} | {r['store_s']:.1f} | {r['store_rss'] / 1e9:.2f} "
            f"| {r['memory_rss'] / r['store_rss']:.1f}× | {'yes' if r['equal'] else '**NO**'} |"
        )
    differ = [r["kind"] for r in rows if not r.get("series_equal", True)]
    repeat = rows[0]["repeat"] if rows else 1
    lines += [
        "",
        "- Each cell is one fresh `python` process (imports included), the median of "
        f"{repeat} run{'s' if repeat > 1 else ''} of each path, alternating: `python -m loadbench "
        "report DIR --quiet` (the store, as every run of these kinds in Parquet is analyzed) and a "
        "child calling `analyze_run(DIR, requests=read_run_requests(DIR))` then "
        "`render_report(DIR, requests=...)` (the in-memory path). GB = 10^9 bytes of peak resident "
        "memory (`os.wait4`'s `ru_maxrss`); memory ratio = in memory / store.",
        "- Summaries equal: `summary.json` of both paths, every figure; `timeseries.csv` "
        + (f"differs in: {', '.join(differ)}." if differ else "is equal byte for byte in every kind."),
        "- `compare (all)`: `loadbench compare A B` of two runs of the `all` kind (the candidate 5 % "
        "slower, another seed), N records each; in memory = `loadbench.compare.rundata.open_bounded` "
        "returning None in the child. Its column says whether the two `compare.json` are equal.",
        "- Input: the synthetic 10-minute closed-loop run of `benchmarks/analyzer_scale.py` (64 "
        "users, three request names, lognormal latencies, 1 % failures), its records written as the "
        "recorder writes `requests.csv` (the first lines checked against `format_record`) and "
        "converted into `requests.parquet` (`convert_csv`, meta format 2). `plain`: those columns. "
        "`llm`: TTFT, output tokens (70 % `usage` with input tokens, 30 % `counted`), 11 to 29 "
        "inter-token gaps a stream (5 % of answers not streamed). `payload`: labels of 10 classes "
        "(5 % unlabeled, 85 % right), `media_s` on 80 %, HTTP/2 phases (2 % new connections), "
        "`server_ms` on 90 % (`settings.server_time_header`). `routes`: 3 replicas of different "
        "speed (`settings.replica_header`, 2 % without the header), 3 targets round robin "
        "(`settings.targets`), 3 stages, `settings.cold_start` 20. `all`: all of these at once.",
        f"- Machine: {machine_facts()}.",
        f"- Versions: {versions()}.",
        "",
    ]
    return "\n".join(lines)


def place_section(section: str, path: Path = DOCS) -> None:
    """Write the section into docs/benchmarks.md: the first time right after "Analyzer and report
    at scale" (`write_docs` would append it at the end), later where it is."""
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    if not any(line.rstrip() == SECTION for line in lines):
        start = next((i for i, line in enumerate(lines) if line.rstrip() == AFTER), None)
        if start is not None:
            end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
            lines.insert(end, SECTION + "\n\n")
            path.write_text("".join(lines), encoding="utf-8")
    write_docs(section, path=path, heading=SECTION)


# --- main ------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Time and peak memory of `loadbench report` and `compare`, store vs in memory, by kind."
    )
    parser.add_argument("--records", default="1M", help="records of each run: 20k, 1M, 2500000 (default 1M)")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each path; the median (default 1)")
    parser.add_argument(
        "--kinds", default=",".join(KINDS), help=f"comma-separated, of {', '.join(KINDS)} (default all)"
    )
    parser.add_argument("--keep", type=Path, help="write the run directories here and keep them")
    parser.add_argument("--generate", nargs=3, metavar=("N", "KINDS", "DIR"), help=argparse.SUPPRESS)
    parser.add_argument("--write-docs", action="store_true", help="write the section into docs/benchmarks.md")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.generate:
        generate(Path(args.generate[2]), int(args.generate[0]), args.generate[1].split(","))
        return 0
    n = parse_count(args.records)
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    unknown = set(kinds) - set(KINDS)
    if unknown or not kinds or args.repeat < 1:
        build_parser().error(f"--kinds of {', '.join(KINDS)}; --repeat at least 1")
    base = args.keep or Path(tempfile.mkdtemp(prefix="analyzer-sections-"))
    rows: list[dict[str, Any]] = []
    try:
        # In a child: a measured child's peak RSS starts at its parent's.
        generator = [sys.executable, __file__, "--generate", str(n), ",".join(kinds), str(base)]
        subprocess.run(generator, check=True)
        measured = [(kind, partial(measure_kind, base / kind, args.repeat)) for kind in kinds]
        if COMPARE_KIND in kinds:
            measured.append((f"compare ({COMPARE_KIND})", partial(measure_compare, base, args.repeat)))
        for label, run in measured:
            row = {"kind": label, "records": n, "repeat": args.repeat, **run()}
            rows.append(row)
            print(
                f"{label}: in memory {row['memory_s']:.1f} s {row['memory_rss'] / 1e9:.2f} GB, store "
                f"{row['store_s']:.1f} s {row['store_rss'] / 1e9:.2f} GB, outputs equal {row['equal']}"
                + (f", timeseries equal {row['series_equal']}" if "series_equal" in row else ""),
                flush=True,
            )
    finally:
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)
    command = (
        "python benchmarks/analyzer_sections.py"
        + (f" --records {args.records}" if args.records != "1M" else "")
        + (f" --repeat {args.repeat}" if args.repeat != 1 else "")
        + (f" --kinds {args.kinds}" if kinds != list(KINDS) else "")
        + (" --write-docs" if args.write_docs else "")
    )
    section = render_section(rows, command)
    print("\n" + section)
    if args.write_docs:
        place_section(section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
