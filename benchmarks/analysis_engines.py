"""Analysis engines side by side on millions of records: pandas today, DuckDB, Polars, pyarrow.

    python3 -m venv /tmp/engines-venv
    /tmp/engines-venv/bin/pip install numpy pandas matplotlib duckdb polars pyarrow psutil jinja2
    PYTHONPATH=. /tmp/engines-venv/bin/python benchmarks/analysis_engines.py [--records 1M,10M] [--reps 2]
        [--keep DIR] [--write-docs]

(A venv of its own: the engines are not loadbench dependencies, and pandas 3 changes its string
dtype when pyarrow is installed, which the project's own venv must not see.)

For each record count N, writes the synthetic run directory of `analyzer_scale.generate_run` (a
10-minute closed-loop run, 10 s warmup) and the same records as ``requests.parquet`` (zstd, row
groups of `ROW_GROUP` rows, text columns dictionary-encoded). Then each engine, in a fresh child
process (imports count), computes the same core figures that ``summary.json`` and
``timeseries.csv`` hold, with today's definitions (`loadbench.analyze.window`,
`loadbench.analyze.stats`):

- the window: records whose start (the due time, open loop) is at or after ``started_unix_s +
  warmup_s``, less half the µs resolution; ``ok`` is the record's ``ok`` column;
- counts of the window: total, ok, failed; by ``name``, by ``status``, failed ones by ``error``;
- p50, p90, p99, p99.9, max and mean latency of the window's successes, exact, numpy's default
  (linear interpolation between the two nearest ranks);
- the per-second series of the run (``timeseries.csv``): per whole second since the run started
  (a record belongs to the second it started in), requests, failures, and p50/p99 of the
  second's successes.

Engines: ``pandas`` (baseline: `read_requests` + `measure` + `stats.per_second`, what
``loadbench report`` does), ``duckdb`` (CSV imported once into an on-disk table; Parquet
queried in place; ``memory_limit`` and a spill directory set), ``polars`` (lazy, streaming
engine), ``pyarrow`` (Parquet row group by row group, two passes: counts accumulated per group; the
successes' latencies placed by second into one float64 array, which exact percentiles strictly
need).

Every engine's figures are checked against the baseline: counts exactly, percentiles within
1e-9 relative (per-second p50/p99, which ``timeseries.csv`` rounds to the µs: within half a µs).
Wall time from the parent; peak memory is the child's maximum resident set (``os.wait4``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from counts import count_label, parse_count  # noqa: E402  (imports nothing: the parent stays small)

SECTION = "## Analysis engines on 10M records (issue 25)"
ROW_GROUP = 262_144
QUANTILES = (0.5, 0.9, 0.99, 0.999)
QUANTILE_KEYS = ("p50", "p90", "p99", "p999")
TIME_RESOLUTION_S = 1e-6  # as loadbench.record.records: the window's half-µs tolerance
DUCKDB_MEMORY_LIMIT = "1GB"
# (engine, input format): the order they run in; the first is the baseline.
ENGINES = (
    ("pandas", "csv"),
    ("duckdb", "csv"),
    ("duckdb", "parquet"),
    ("polars", "csv"),
    ("polars", "parquet"),
    ("pyarrow", "parquet"),
)
FLOAT_COLUMNS = (
    "start_unix_s", "latency_ms", "intended_unix_s", "ttft_ms", "input_tokens", "output_tokens",
    "media_s", "connect_ms", "ttfb_ms", "download_ms", "redirects", "server_ms", "attempt",
)  # fmt: skip
INT_COLUMNS = {"status": "int64", "response_bytes": "int64", "ok": "int8"}

Figures = dict[str, Any]
# The judgment on the figures of 2026-12-07 (1M and 10M records): re-read it when they change.
CHOICE = (
    "**DuckDB over Parquet** is the one to build on: every figure exact (`quantile_cont` is numpy's linear "
    "interpolation; the differences, under 1e-13 relative, are the last bits of its arithmetic, not its "
    "method), the best time, a peak as small as any, `memory_limit` with a spill directory for what does "
    "not fit, and each further figure one SQL query instead of another hand-written accumulator. Its peak "
    "still grows with the run, by about 20 bytes a record: `quantile_cont` keeps the latencies it ranks "
    "in memory (the window's successes, then each second's), which exact percentiles strictly need, with "
    "its own overhead; at that slope 100M records need about 2 GB, under the issue's 3 GB. Its cost as a "
    "dependency: one 25 MB wheel (duckdb 2.0.1, CPython 3.11 manylinux x86_64; 70 MB installed), no "
    "dependencies of its own. The runner-up, **pyarrow + numpy over row groups**, gives the same figures "
    "bit for bit (numpy computes them) with the flattest memory (8 bytes a success, nothing else: about "
    "1 GB at 100M) and costs nothing more since `--records parquet` made pyarrow a dependency (commit "
    "2d95d53; a 55 MB wheel, 171 MB installed), but it was slower than DuckDB at 10M in every run here, "
    "and it is the hand-written chunking the issue would rather not own (each new figure another "
    "accumulator, each breakdown another pass). Polars is out, though it read the CSV fastest: its "
    "streaming engine grew by about 125-130 bytes a record from 1M to 10M (a per-group `quantile` is not "
    "streamed), far from bounded, and its `quantile` defaults to `interpolation='nearest'`, not numpy's "
    "linear, a trap for every later figure; 55 MB of wheels (polars and polars-runtime-32 2.1.0). Over "
    "CSV (run directories of format 1) every engine pays for parsing 87 bytes a record: DuckDB imports "
    "the needed columns once into an on-disk table in bounded memory, one way to read old runs; "
    "converting them with `loadbench export DIR --parquet` is the other."
)


# --- the run and its figures (shared by every engine) -----------------------------------------


def run_params(run_dir: Path) -> dict[str, float]:
    """started, window start (less the half-µs tolerance) and whole seconds, as the analyzer has them."""
    meta = json.loads((run_dir / "meta.json").read_text(encoding="utf-8"))
    started = float(meta["started_unix_s"])
    warmup = float((meta.get("settings") or {}).get("warmup_s", 0.0) or 0.0)
    ended = float(meta["ended_unix_s"])
    return {
        "started": started,
        "window_lo": started + warmup - TIME_RESOLUTION_S / 2,
        "seconds": max(math.ceil(ended - started - 0.01), 0),
    }


def figures_from(
    counts: list[tuple[str, int, str, bool, int]],
    latency: dict[str, float | None],
    series: dict[str, list[Any]],
) -> Figures:
    """The figures from the window's counts by (name, status, error, ok): what every engine returns."""
    by_name: dict[str, int] = {}
    by_status: dict[str, int] = {}
    by_error: dict[str, int] = {}
    total = ok = 0
    for name, status, error, good, n in counts:
        if n == 0:
            continue
        total += n
        ok += n if good else 0
        by_name[name] = by_name.get(name, 0) + n
        by_status[str(status)] = by_status.get(str(status), 0) + n
        if not good:
            by_error[error] = by_error.get(error, 0) + n
    return {
        "total": total,
        "ok": ok,
        "failed": total - ok,
        "by_name": by_name,
        "by_status": by_status,
        "by_error": by_error,
        "latency": latency,
        "series": series,
    }


def dense_series(
    seconds: int, rows: list[tuple[int, int, int, float | None, float | None]]
) -> dict[str, list[Any]]:
    """Per second from the run start, seconds without records kept: (second, requests, errors, p50, p99)."""
    out: dict[str, list[Any]] = {
        "requests": [0] * seconds,
        "errors": [0] * seconds,
        "p50": [None] * seconds,
        "p99": [None] * seconds,
    }
    for sec, n, errors, p50, p99 in rows:
        out["requests"][sec], out["errors"][sec] = int(n), int(errors)
        out["p50"][sec] = _number(p50)
        out["p99"][sec] = _number(p99)
    return out


def _number(value: Any) -> float | None:
    return None if value is None or not math.isfinite(float(value)) else float(value)


# --- the engines (each in its own child process) ----------------------------------------------


def engine_pandas(run_dir: Path, fmt: str) -> Figures:
    """Today's analyzer path: the whole file in a DataFrame, numpy percentiles."""
    import numpy as np

    from loadbench.analyze import stats
    from loadbench.analyze.window import measure
    from loadbench.record.records import read_requests

    meta = json.loads((run_dir / "meta.json").read_text(encoding="utf-8"))
    w, _notices = measure(meta, read_requests(run_dir / "requests.csv"))
    lat = w.ok_latency
    latency: dict[str, float | None] = dict.fromkeys((*QUANTILE_KEYS, "max", "mean"))
    if lat.size:
        qs = np.percentile(lat, [100 * q for q in QUANTILES])
        latency = {**dict(zip(QUANTILE_KEYS, map(float, qs), strict=True)), "max": float(lat.max())}
        latency["mean"] = float(lat.mean())
    m = w.measured
    grouped = m.groupby(["name", "status", "error", "ok"], observed=True, dropna=False).size()
    counts = [(str(k[0]), int(k[1]), str(k[2]), bool(k[3]), int(n)) for k, n in grouped.items()]
    seconds = max(int(np.ceil(w.ended - w.started - 0.01)), 0)
    ts = stats.per_second(w.requests, w.started, w.start, seconds)
    rows = list(zip(ts["second"], ts["requests"], ts["errors"], ts["p50_ms"], ts["p99_ms"], strict=True))
    return figures_from(counts, latency, dense_series(seconds, rows))


DERIVED_SQL = """
    SELECT coalesce(intended_unix_s, start_unix_s) AS t,
           CASE WHEN intended_unix_s IS NULL THEN latency_ms
                ELSE latency_ms + (start_unix_s - intended_unix_s) * 1000.0 END AS lat,
           ok = 1 AS good, CAST(name AS VARCHAR) AS name, status,
           coalesce(CAST(error AS VARCHAR), '') AS error
    FROM {source}
"""
NEEDED = ("start_unix_s", "latency_ms", "intended_unix_s", "ok", "name", "status", "error")


def engine_duckdb(run_dir: Path, fmt: str) -> Figures:
    """DuckDB: a CSV imported once into an on-disk table, a Parquet file queried where it lies."""
    import duckdb

    p = run_params(run_dir)
    spill = Path(tempfile.mkdtemp(prefix="engines-duckdb-", dir=run_dir))
    try:
        con = duckdb.connect(str(spill / "records.duckdb") if fmt == "csv" else ":memory:")
        con.execute(f"SET memory_limit = '{DUCKDB_MEMORY_LIMIT}'")
        con.execute(f"SET temp_directory = '{spill}'")
        con.execute("SET preserve_insertion_order = false")
        if fmt == "csv":
            types = {c: "DOUBLE" for c in FLOAT_COLUMNS if c in NEEDED}
            types |= {"status": "BIGINT", "ok": "TINYINT", "name": "VARCHAR", "error": "VARCHAR"}
            source = f"read_csv('{run_dir / 'requests.csv'}', header = true, types = {types!r})"
            con.execute(f"CREATE TABLE r AS {DERIVED_SQL.format(source=source)}")
        else:
            source = f"read_parquet('{run_dir / 'requests.parquet'}')"
            con.execute(f"CREATE VIEW r AS {DERIVED_SQL.format(source=source)}")
        lo, started, seconds = p["window_lo"], p["started"], int(p["seconds"])
        counts = con.execute(
            "SELECT name, status, error, good, count(*) FROM r WHERE t >= $lo GROUP BY ALL", {"lo": lo}
        ).fetchall()
        qs = list(QUANTILES)
        row = con.execute(
            "SELECT quantile_cont(lat, $qs), max(lat), avg(lat) FROM r WHERE t >= $lo AND good",
            {"lo": lo, "qs": qs},
        ).fetchone()
        assert row is not None
        latency = dict.fromkeys((*QUANTILE_KEYS, "max", "mean"))
        if row[0] is not None:
            latency = dict(zip(QUANTILE_KEYS, row[0], strict=True)) | {"max": row[1], "mean": row[2]}
        per_second = con.execute(
            """SELECT sec, count(*), count(*) FILTER (WHERE NOT good),
                      quantile_cont(lat, [0.5, 0.99]) FILTER (WHERE good)
               FROM (SELECT CAST(floor(t - $started) AS BIGINT) AS sec, lat, good FROM r)
               WHERE sec >= 0 AND sec < $seconds GROUP BY sec""",
            {"started": started, "seconds": seconds},
        ).fetchall()
        con.close()
    finally:
        shutil.rmtree(spill, ignore_errors=True)
    rows = [(s, n, e, *(q if q is not None else (None, None))) for s, n, e, q in per_second]
    return figures_from([tuple(c) for c in counts], latency, dense_series(seconds, rows))  # type: ignore[misc]


def engine_polars(run_dir: Path, fmt: str) -> Figures:
    """Polars: lazy queries, collected together on the streaming engine."""
    import polars as pl

    p = run_params(run_dir)
    if fmt == "csv":
        schema = {c: pl.Float64 for c in FLOAT_COLUMNS} | {"status": pl.Int64, "ok": pl.Int8}
        schema |= {"name": pl.String, "error": pl.String}
        src = pl.scan_csv(run_dir / "requests.csv", schema_overrides=schema, infer_schema_length=1000)
    else:
        src = pl.scan_parquet(run_dir / "requests.parquet")
    start, intended, service = pl.col("start_unix_s"), pl.col("intended_unix_s"), pl.col("latency_ms")
    lf = src.select(
        t=pl.coalesce(intended, start),
        lat=pl.when(intended.is_null()).then(service).otherwise(service + (start - intended) * 1000.0),
        good=pl.col("ok") == 1,
        name=pl.col("name").cast(pl.String).fill_null(""),
        status=pl.col("status"),
        error=pl.col("error").cast(pl.String).fill_null(""),
    )
    lat, good = pl.col("lat"), pl.col("good")
    window = lf.filter(pl.col("t") >= p["window_lo"])
    seconds = int(p["seconds"])
    counts_q = window.group_by("name", "status", "error", "good").agg(n=pl.len())
    ok_lat = lat.filter(good)
    overall_q = window.select(
        *[
            ok_lat.quantile(q, interpolation="linear").alias(k)
            for q, k in zip(QUANTILES, QUANTILE_KEYS, strict=True)
        ],
        max=ok_lat.max(),
        mean=ok_lat.mean(),
    )
    sec = (pl.col("t") - p["started"]).floor().cast(pl.Int64).alias("sec")
    series_q = (
        lf.with_columns(sec)
        .filter((pl.col("sec") >= 0) & (pl.col("sec") < seconds))
        .group_by("sec")
        .agg(
            n=pl.len(),
            errors=(~good).sum(),
            p50=ok_lat.quantile(0.5, interpolation="linear"),
            p99=ok_lat.quantile(0.99, interpolation="linear"),
        )
    )
    counts, overall, series = pl.collect_all([counts_q, overall_q, series_q], engine="streaming")
    latency = {k: _number(v) for k, v in overall.row(0, named=True).items()}
    return figures_from(counts.rows(), latency, dense_series(seconds, series.rows()))


def engine_pyarrow(run_dir: Path, fmt: str) -> Figures:
    """pyarrow + numpy, row group by row group, in two passes over ``requests.parquet``.

    Exact percentiles need every success's latency: one float64 array, nothing more. Pass 1
    counts (the window's groups, each second's requests and failures, the successes of each
    bucket); pass 2 places each success's latency straight into its bucket's slice of the array,
    no sort. A bucket is (second, in the window): a second's successes lie together (its p50/p99)
    and so do the window's, as one slice at the end (the run's percentiles).
    """
    import numpy as np
    import pyarrow.parquet as pq

    p = run_params(run_dir)
    seconds = int(p["seconds"])
    pf = pq.ParquetFile(run_dir / "requests.parquet")
    buckets = 2 * seconds + 1  # (second, in window) in that order, then "after the run, in the window"
    per_bucket = np.zeros(buckets, dtype=np.int64)
    requests = np.zeros(seconds, dtype=np.int64)
    errors = np.zeros(seconds, dtype=np.int64)
    counts: dict[tuple[str, int, str, bool], int] = {}
    for i in range(pf.num_row_groups):
        g = pf.read_row_group(i, columns=list(NEEDED))
        _lat, good, inw, sec, bucket = _derive(g, p, seconds)
        run = (sec >= 0) & (sec < seconds)
        requests += np.bincount(sec[run], minlength=seconds)
        errors += np.bincount(sec[run & ~good], minlength=seconds)
        _count_groups(counts, g, inw, good)
        per_bucket += np.bincount(bucket[good & (bucket >= 0)], minlength=buckets)
    offsets = np.concatenate([[0], np.cumsum(per_bucket)])
    values = np.empty(int(offsets[-1]), dtype=np.float64)
    fill = offsets[:-1].copy()
    for i in range(pf.num_row_groups):
        g = pf.read_row_group(i, columns=["start_unix_s", "intended_unix_s", "latency_ms", "ok"])
        lat, good, _inw, _sec, bucket = _derive(g, p, seconds)
        keep = good & (bucket >= 0)
        b, lat = bucket[keep], lat[keep]
        order = np.argsort(b, kind="stable")
        b, lat = b[order], lat[order]
        n = np.bincount(b, minlength=buckets)
        first = np.cumsum(n) - n  # where each bucket starts among this group's sorted successes
        values[fill[b] + np.arange(b.size) - first[b]] = lat
        fill += n
    rows = []
    for s in range(seconds):
        lo, hi = int(offsets[2 * s]), int(offsets[2 * s + 2])
        p50, p99 = np.percentile(values[lo:hi], [50.0, 99.0]) if hi > lo else (None, None)
        rows.append((s, int(requests[s]), int(errors[s]), p50, p99))
    # The window's buckets follow each other: those of the seconds before it are all out of it.
    in_window = [k for k in [*range(1, 2 * seconds, 2), 2 * seconds] if per_bucket[k]]
    window = values[int(offsets[in_window[0]]) if in_window else values.size :]
    latency: dict[str, float | None] = dict.fromkeys((*QUANTILE_KEYS, "max", "mean"))
    if window.size:
        latency |= {"max": float(window.max()), "mean": float(window.mean())}
        # In place (the per-second figures are done): no copy of the largest array.
        qs = np.percentile(window, [100 * q for q in QUANTILES], overwrite_input=True)
        latency |= dict(zip(QUANTILE_KEYS, map(float, qs), strict=True))
    return figures_from([(*k, v) for k, v in counts.items()], latency, dense_series(seconds, rows))


def _derive(g: Any, p: dict[str, float], seconds: int) -> tuple[Any, ...]:
    """A row group's latency (from the due time), ok, in-window, second and bucket (-1: none)."""
    import numpy as np

    start = g["start_unix_s"].to_numpy()
    intended = g["intended_unix_s"].to_numpy()
    lat = g["latency_ms"].to_numpy()
    scheduled = np.isfinite(intended)
    if scheduled.any():  # open loop: from the due time, as `from_due_time`
        lat = np.where(scheduled, lat + (start - intended) * 1000.0, lat)
        start = np.where(scheduled, intended, start)
    good = g["ok"].to_numpy() == 1
    inw = start >= p["window_lo"]
    sec = np.floor(start - p["started"]).astype(np.int64)
    bucket = np.where((sec >= 0) & (sec < seconds), 2 * sec + inw, np.where(inw, 2 * seconds, -1))
    return lat, good, inw, sec, bucket


def _count_groups(counts: dict[tuple[str, int, str, bool], int], g: Any, inw: Any, good: Any) -> None:
    """Add one row group's window records to the counts by (name, status, error, ok)."""
    import numpy as np
    import pyarrow as pa

    def codes(column: str) -> tuple[Any, list[Any]]:
        col = g[column].combine_chunks()
        if not pa.types.is_dictionary(col.type):
            col = col.dictionary_encode()
        idx = col.indices.fill_null(-1).to_numpy(zero_copy_only=False)
        return idx.astype(np.int64), col.dictionary.to_pylist()

    # One hash encoding per column and one bincount over the combined codes: no sort.
    name_idx, names = codes("name")
    error_idx, errors = codes("error")
    status_idx, statuses = codes("status")
    shape = (len(names) + 1, len(statuses) + 1, len(errors) + 1, 2)
    key = np.ravel_multi_index((name_idx + 1, status_idx + 1, error_idx + 1, good.astype(np.int64)), shape)
    n = np.bincount(key[inw], minlength=math.prod(shape))
    for flat in np.flatnonzero(n).tolist():
        ni, si, ei, ok = np.unravel_index(flat, shape)
        k = (
            names[ni - 1] if ni else "",
            int(statuses[si - 1]) if si else 0,
            errors[ei - 1] if ei else "",
            bool(ok),
        )
        counts[k] = counts.get(k, 0) + int(n[flat])


def own_peak_rss() -> int:
    """This process's own peak resident set (VmHWM, bytes): a check on ``ru_maxrss``, which also
    counts what the process held when it was forked."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


RUNNERS = {
    "pandas": engine_pandas,
    "duckdb": engine_duckdb,
    "polars": engine_polars,
    "pyarrow": engine_pyarrow,
}


def child(engine: str, fmt: str, run_dir: Path, out: Path) -> int:
    figures = RUNNERS[engine](run_dir, fmt)
    figures["vm_hwm"] = own_peak_rss()
    out.write_text(json.dumps(figures), encoding="utf-8")
    return 0


# --- the inputs ------------------------------------------------------------------------------


def ensure_run(base: Path, n: int) -> Path:
    """The synthetic run of n records, written by a child process (see `generate`)."""
    command = [sys.executable, str(Path(__file__).resolve()), "--generate", str(n), str(base)]
    subprocess.run(command, check=True, env=child_env())
    return base / f"run-{count_label(n)}"


def generate(base: Path, n: int) -> None:
    """The synthetic run of n records (reused when ``--keep`` already holds it), with its Parquet copy.

    In a child of its own: a child's peak RSS starts at its parent's RSS when it was forked, so
    the parent stays small (no pandas, no 10M-record arrays) for the engines' peaks to be theirs.
    """
    sys.path.insert(0, str(HERE))
    from analyzer_scale import generate_run

    run_dir = base / f"run-{count_label(n)}"
    meta = run_dir / "meta.json"
    if not (run_dir / "requests.csv").is_file() or json.loads(meta.read_text()).get("synthetic_records") != n:
        t0 = time.perf_counter()
        (run_dir / "requests.parquet").unlink(missing_ok=True)
        generate_run(run_dir, n)
        print(
            f"{count_label(n)}: wrote {run_dir / 'requests.csv'} in {time.perf_counter() - t0:.1f} s",
            flush=True,
        )
    if not (run_dir / "requests.parquet").is_file():
        t0 = time.perf_counter()
        write_parquet(run_dir / "requests.csv", run_dir / "requests.parquet")
        print(f"{count_label(n)}: wrote requests.parquet in {time.perf_counter() - t0:.1f} s", flush=True)


def write_parquet(csv_path: Path, out: Path) -> None:
    """The same records as Parquet: the CSV's columns and types, text dictionary-encoded, zstd.

    Streamed block by block (bounded memory), written in row groups of `ROW_GROUP` rows.
    """
    import pyarrow as pa
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    with open(csv_path, encoding="utf-8") as f:
        header = f.readline().rstrip("\n").split(",")
    text = pa.dictionary(pa.int32(), pa.string())
    ints = {"int64": pa.int64(), "int8": pa.int8()}
    types = {
        c: pa.float64() if c in FLOAT_COLUMNS else ints[INT_COLUMNS[c]] if c in INT_COLUMNS else text
        for c in header
    }
    reader = pcsv.open_csv(
        csv_path,
        read_options=pcsv.ReadOptions(block_size=16 << 20),
        convert_options=pcsv.ConvertOptions(column_types=types, strings_can_be_null=False),
    )
    tmp = out.with_suffix(".parquet.tmp")
    with pq.ParquetWriter(tmp, reader.schema, compression="zstd", use_dictionary=True) as writer:
        pending: list[Any] = []
        rows = 0
        for batch in reader:
            pending.append(batch)
            rows += batch.num_rows
            while rows >= ROW_GROUP:
                table = pa.Table.from_batches(pending, schema=reader.schema)
                writer.write_table(table.slice(0, ROW_GROUP), row_group_size=ROW_GROUP)
                rest = table.slice(ROW_GROUP)
                pending, rows = rest.to_batches(), rest.num_rows
        if rows:
            writer.write_table(pa.Table.from_batches(pending, schema=reader.schema), row_group_size=ROW_GROUP)
    tmp.replace(out)


# --- measuring and checking ------------------------------------------------------------------


def child_env() -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }


def measure_engine(engine: str, fmt: str, run_dir: Path, out: Path) -> tuple[float, int]:
    """(wall seconds, peak RSS bytes) of one fresh child computing the figures into ``out``."""
    command = [sys.executable, str(Path(__file__).resolve()), "--child", engine, fmt, str(run_dir), str(out)]
    with tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            command, cwd=run_dir.parent, env=child_env(), stdout=subprocess.DEVNULL, stderr=err
        )
        _pid, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            raise RuntimeError(f"{engine} over {fmt} failed: {err.read().decode(errors='replace')[-3000:]}")
    return wall, usage.ru_maxrss * 1024  # Linux: KiB


def close(a: float | None, b: float | None, rel: float = 1e-9, abs_tol: float = 0.0) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=rel, abs_tol=abs_tol)


def disagreements(fig: Figures, base: Figures) -> list[str]:
    """What differs from the baseline's figures: counts exactly, percentiles to 1e-9 relative."""
    bad = [k for k in ("total", "ok", "failed", "by_name", "by_status", "by_error") if fig[k] != base[k]]
    bad += [f"latency.{k}" for k, v in base["latency"].items() if not close(fig["latency"][k], v)]
    s, b = fig["series"], base["series"]
    bad += [f"series.{k}" for k in ("requests", "errors") if s[k] != b[k]]
    for k in ("p50", "p99"):
        # timeseries.csv rounds to the µs: an exact value agrees when it rounds to the baseline's.
        off = [
            i
            for i, (x, y) in enumerate(zip(s[k], b[k], strict=True))
            if not close(x, y, abs_tol=0.0005 + 1e-9)
        ]
        if off or len(s[k]) != len(b[k]):
            bad.append(f"series.{k} ({len(off)} seconds)")
    return bad


def max_quantile_error(fig: Figures, base: Figures) -> float:
    """Largest relative difference of the window's percentiles from the baseline's."""
    errs = [
        abs(fig["latency"][k] - v) / abs(v)
        for k, v in base["latency"].items()
        if v and fig["latency"][k] is not None
    ]
    return max(errs, default=0.0)


def measure_count(base: Path, n: int, reps: int) -> list[dict[str, Any]]:
    """Every engine on the run of n records, ``reps`` times each (median wall; peak of the peaks)."""
    run_dir = ensure_run(base, n)
    rows: list[dict[str, Any]] = []
    baseline: Figures | None = None
    for engine, fmt in ENGINES:
        walls, peaks = [], []
        out = run_dir / f"figures-{engine}-{fmt}.json"
        for _ in range(reps):
            wall, rss = measure_engine(engine, fmt, run_dir, out)
            walls.append(wall)
            peaks.append(rss)
        fig = json.loads(out.read_text(encoding="utf-8"))
        baseline = baseline or fig
        bad = disagreements(fig, baseline)
        rows.append(
            {
                "records": n,
                "engine": engine,
                "format": fmt,
                "wall_s": sorted(walls)[len(walls) // 2],
                "walls": walls,
                "rss": max(peaks),
                "hwm": fig["vm_hwm"],
                "agree": "baseline"
                if fig is baseline
                else ("equal" if not bad else "DIFFERS: " + ", ".join(bad)),
                "q_err": max_quantile_error(fig, baseline),
                "input_bytes": (run_dir / f"requests.{fmt}").stat().st_size,
            }
        )
        r = rows[-1]
        print(
            f"  {engine:8} {fmt:8} {r['wall_s']:6.1f} s  {r['rss'] / 1e9:5.2f} GB  "
            f"{r['rss'] / n:6.0f} B/record (own VmHWM {r['hwm'] / 1e9:.2f} GB)  {r['agree']} (max rel. percentile diff {r['q_err']:.1e})",
            flush=True,
        )
    return rows


# --- docs ------------------------------------------------------------------------------------


def installed_mb(dist: str) -> float:
    """Installed size of a distribution and the libraries it bundles (MB), from its RECORD."""
    from importlib.metadata import distribution

    files = distribution(dist).files or []
    return sum(f.size or 0 for f in files) / 1e6


def versions() -> str:
    from importlib.metadata import version

    return ", ".join(
        [f"Python {platform.python_version()}"]
        + [f"{p} {version(p)}" for p in ("numpy", "pandas", "duckdb", "polars", "pyarrow")]
    )


def growth(rows: list[dict[str, Any]]) -> list[str]:
    """Per engine: peak memory and time from the smallest record count to the largest."""
    counts = sorted({r["records"] for r in rows})
    if len(counts) < 2:
        return []
    lo, hi = counts[0], counts[-1]
    out = []
    for engine, fmt in ENGINES:
        a = next(r for r in rows if r["records"] == lo and (r["engine"], r["format"]) == (engine, fmt))
        b = next(r for r in rows if r["records"] == hi and (r["engine"], r["format"]) == (engine, fmt))
        out.append(
            f"{engine} over {fmt}: {a['rss'] / 1e9:.2f} → {b['rss'] / 1e9:.2f} GB "
            f"({b['rss'] / a['rss']:.1f}×, {(b['rss'] - a['rss']) / (hi - lo):.0f} bytes per further record), "
            f"{a['wall_s']:.1f} → {b['wall_s']:.1f} s"
        )
    return [
        f"- From {count_label(lo)} to {count_label(hi)} records ({hi / lo:g}×), peak memory and time:"
    ] + [f"  - {line}" for line in out]


def choice(rows: list[dict[str, Any]]) -> list[str]:
    """The measured facts the choice rests on (at the largest count), then the choice."""
    top = max(r["records"] for r in rows)
    last = [r for r in rows if r["records"] == top and r["agree"] in ("baseline", "equal")]
    base = next(r for r in rows if r["records"] == top and r["agree"] == "baseline")
    fastest = min(last, key=lambda r: r["wall_s"])
    smallest = min(last, key=lambda r: r["rss"])
    return [
        f"**Choice.** At {count_label(top)} records, every engine's figures equal today's. Fastest: "
        f"{fastest['engine']} over {fastest['format']}, {fastest['wall_s']:.1f} s "
        f"({base['wall_s'] / fastest['wall_s']:.0f}× faster than today's {base['wall_s']:.1f} s); least memory: "
        f"{smallest['engine']} over {smallest['format']}, {smallest['rss'] / 1e9:.2f} GB "
        f"(today: {base['rss'] / 1e9:.2f} GB). {CHOICE}"
    ]


def render_section(rows: list[dict[str, Any]], command: str, loads: tuple[str, str], reps: int) -> str:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        SECTION,
        "",
        "Which engine should analyze runs of any length (issue 25, part 1)? Each computes the same core "
        "figures of `summary.json` and `timeseries.csv` from a synthetic run (counts of the window by "
        "name, status and error; exact p50/p90/p99/p99.9, max and mean of its successes; the per-second "
        "series with each second's p50/p99), in a fresh process, and is checked against today's analyzer.",
        "",
        f"Measured {stamp}:",
        "",
        "```",
        "python3 -m venv /tmp/engines-venv",
        "/tmp/engines-venv/bin/pip install numpy pandas matplotlib duckdb polars pyarrow psutil jinja2",
        command,
        "```",
        "",
        "| records | engine | input | input size | wall s | (each run) | peak RSS | bytes / record | figures |",
        "|---:|---|---|---:|---:|---|---:|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {count_label(r['records'])} | {r['engine']} | {r['format']} | {r['input_bytes'] / 1e6:,.0f} MB "
            f"| {r['wall_s']:.1f} | {', '.join(f'{w:.1f}' for w in r['walls'])} | {r['rss'] / 1e9:.2f} GB | {r['rss'] / r['records']:.0f} | {r['agree']} |"
        )
    lines += ["", *choice(rows), "", *growth(rows)]
    lines += [
        f"- Wall time from the parent, imports included, the median of {reps} run(s) each; peak RSS = the "
        "child's `ru_maxrss` (`os.wait4`), GB = 10^9 bytes. \"equal\": every count equal to the baseline's, "
        "every percentile within 1e-9 relative (per-second p50/p99, which `timeseries.csv` rounds to the µs, "
        "within half a µs)."
        " The run is written by a child of its own and the parent stays small: a child's `ru_maxrss` starts "
        "at its parent's peak (Linux carries the high-water mark across fork and exec), which would "
        "otherwise count here; each child's own `VmHWM` agreed within 0.1 GB.",
        "- pandas = today's path (`read_requests`, `measure`, `stats.per_second`). duckdb over csv imports "
        f"the needed columns once into an on-disk table, then queries it; over parquet it queries the file; "
        f"`memory_limit` {DUCKDB_MEMORY_LIMIT}, a spill directory beside the run, `quantile_cont` (linear, as "
        "numpy's default). polars: lazy queries collected together on the streaming engine, `quantile(q, "
        "'linear')`. pyarrow: `requests.parquet` row group by row group in two passes: the first counts "
        "(the window's groups, each second's requests and failures, the successes of each second), the "
        "second places each success's latency straight into its second's slice of one float64 array (no "
        "sort), then numpy's percentile over each second's slice and, in place, over the window's.",
        f"- Input: `analyzer_scale.generate_run` (10-minute closed-loop run, 10 s warmup, 1 % failures), "
        f"and the same records as Parquet (zstd, row groups of {ROW_GROUP:,} rows, text columns "
        "dictionary-encoded), written by the script.",
        f"- Load average (1, 5, 15 min) before: {loads[0]}; after: {loads[1]}. Machine: {machine_facts()}.",
        f"- Baseline code: loadbench at {git_head()}.",
        f"- Versions: {versions()}. Installed sizes: "
        + ", ".join(
            f"{d} {installed_mb(d):.0f} MB" for d in ("duckdb", "polars", "polars-runtime-32", "pyarrow")
        )
        + ".",
        "",
    ]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Analysis engines side by side: time, memory, same figures.")
    parser.add_argument(
        "--records", default="10M", help="comma-separated record counts: 1M,10M (default 10M)"
    )
    parser.add_argument("--keep", type=Path, help="write the run directories here and keep them (reused)")
    parser.add_argument(
        "--reps", type=int, default=1, help="runs of each engine; the median wall time (default 1)"
    )
    parser.add_argument("--write-docs", action="store_true", help="write the section into docs/benchmarks.md")
    parser.add_argument("--generate", nargs=2, metavar=("N", "BASE"), help=argparse.SUPPRESS)
    parser.add_argument(
        "--child", nargs=4, metavar=("ENGINE", "FORMAT", "RUN_DIR", "OUT"), help=argparse.SUPPRESS
    )
    return parser


def machine_facts() -> str:
    """As analyzer_scale.py states them (recording_overhead imports only the standard library)."""
    from recording_overhead import machine_facts as facts

    return facts()


def git_head() -> str:
    """The commit measured, and whether the tree held uncommitted changes (others edit it too)."""
    try:
        head = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        )
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "loadbench"], capture_output=True, text=True
        )
    except OSError:
        return "an unknown commit (no git)"
    if head.returncode != 0:
        return "an unknown commit (not a git checkout)"
    return f"commit {head.stdout.strip()}" + (" with uncommitted changes" if dirty.stdout.strip() else "")


def load_average() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.child:
        engine, fmt, run_dir, out = args.child
        return child(engine, fmt, Path(run_dir), Path(out))
    if args.generate:
        generate(Path(args.generate[1]), int(args.generate[0]))
        return 0
    sys.path.insert(0, str(HERE))
    from recording_overhead import write_docs

    counts = [parse_count(c) for c in args.records.split(",") if c.strip()]
    base = args.keep or Path(tempfile.mkdtemp(prefix="analysis-engines-"))
    rows: list[dict[str, Any]] = []
    before = after = ""
    try:
        for n in counts:
            ensure_run(base, n)
        before = load_average()
        for n in counts:
            print(f"{n:,} records (load average {load_average()}):", flush=True)
            rows += measure_count(base, n, args.reps)
        after = load_average()
    finally:
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)
    command = (
        "PYTHONPATH=. /tmp/engines-venv/bin/python benchmarks/analysis_engines.py"
        + (f" --records {args.records}" if args.records != "10M" else "")
        + (f" --reps {args.reps}" if args.reps != 1 else "")
        + (" --write-docs" if args.write_docs else "")
    )
    section = render_section(rows, command, (before, after), args.reps)
    print("\n" + section)
    if args.write_docs:
        write_docs(section, heading=SECTION)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
