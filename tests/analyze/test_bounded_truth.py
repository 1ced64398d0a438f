"""Issue 25's truth test: on a run of a million records, every figure of ``summary.json`` and every
cell of ``timeseries.csv`` from the analysis through a store (`loadbench.analyze.bounded`) equals
the in-memory analyzer's, read from ``requests.csv`` (run format 1) and from ``requests.parquet``
(format 2). The run is generated from a fixed seed, so it is the same directory on every machine.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

from loadbench.analyze import analyzer, bounded
from loadbench.analyze.store import RecordStore
from loadbench.record import rundir
from loadbench.record.columnar import convert_csv, read_run_requests
from loadbench.record.records import COLUMNS
from loadbench.record.series import read_samples, read_users

RECORDS = 1_000_000
STARTED = 1_795_400_000.0
DURATION_S = 120.0
NAMES = np.array(["/v2/models/digits/infer", "/v2/models/digits", "/v2/health/ready"])
ERRORS = np.array(
    [
        "HTTPError: 503 Server Error: busy",
        "TimeoutError: timed out",
        "ConnectionResetError: [Errno 104] reset",
    ]
)


def write_run(run: Path) -> None:
    rng = np.random.default_rng(25)
    start = np.sort(STARTED + rng.uniform(0, DURATION_S, RECORDS))
    latency = np.round(rng.lognormal(np.log(15.0), 0.7, RECORDS), 3)
    name = rng.choice(3, RECORDS, p=[0.8, 0.15, 0.05])
    failed = rng.random(RECORDS) < 0.01
    kind = rng.integers(0, 3, RECORDS)
    failed_text = np.where(failed, ERRORS[kind], "")
    columns = {c: pa.nulls(RECORDS, pa.float64()) for c in COLUMNS}  # every optional column empty
    columns.update(
        start_unix_s=np.round(start, 6),
        latency_ms=latency,
        name=NAMES[name],
        method=np.full(RECORDS, "POST"),
        status=np.where(failed, np.where(kind == 0, 503, 0), 200),
        response_bytes=np.where(failed, 0, 117),
        ok=(~failed).astype(np.int8),
        error=failed_text,
        server_message=np.where(failed & (kind == 0), "overloaded", ""),
    )
    order = np.argsort(start + latency / 1000.0, kind="stable")  # written as they finished
    table = pa.table({c: v if isinstance(v, pa.Array) else pa.array(v) for c, v in columns.items()})
    run.mkdir()
    # Arrow's CSV writer: a million lines in a second, as the recorder writes them (no text here
    # needs quotes; Arrow would quote the header's names).
    with (run / rundir.REQUESTS).open("wb") as f:
        f.write((",".join(COLUMNS) + "\n").encode())
        options = pacsv.WriteOptions(include_header=False, quoting_style="none")
        pacsv.write_csv(table.take(pa.array(order)), f, write_options=options)
    rundir.write_json(
        run / rundir.META,
        {
            "format": 1,
            "run_id": "run-truth",
            "target": "http://127.0.0.1:8000",
            "scenario": "kserve_v2",
            "status": rundir.STATUS_COMPLETE,
            "started_unix_s": STARTED,
            "ended_unix_s": STARTED + DURATION_S,
            "settings": {"users": 64, "warmup_s": 10.0, "duration_s": DURATION_S},
        },
    )
    (run / rundir.USERS).write_text("unix_s,users\n" + "".join(f"{STARTED + i:.3f},64\n" for i in range(121)))


@pytest.fixture(scope="module")
def run_dirs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("truth")
    csv = base / "csv"
    write_run(csv)
    parquet = base / "parquet"
    parquet.mkdir()
    for name in (rundir.META, rundir.USERS):
        (parquet / name).write_bytes((csv / name).read_bytes())
    convert_csv(csv / rundir.REQUESTS, parquet / rundir.REQUESTS_PARQUET)
    return csv, parquet


def test_a_million_records_give_the_same_summary_from_either_analyzer_and_either_format(
    run_dirs: tuple[Path, Path],
) -> None:
    results = {}
    for run in run_dirs:
        meta, users = rundir.read_meta(run), read_users(run / rundir.USERS)
        samples = read_samples(run / rundir.SAMPLES)
        summary, series = analyzer.compute_summary(meta, read_run_requests(run), users, samples)
        results[f"memory/{run.name}"] = (json.loads(json.dumps(summary)), series)
        with RecordStore.open(run) as store:  # the CSV one is converted first, as the store does
            assert bounded.unsupported(meta, store) is None
            summary, series = bounded.bounded_summary(meta, store, users, samples)
        results[f"store/{run.name}"] = (json.loads(json.dumps(summary)), series)
    expected_summary, expected_series = results.pop("memory/csv")
    assert expected_summary["requests"]["total"] > 900_000 and len(expected_summary["errors"]) == 3
    for way, (summary, series) in results.items():
        assert summary == expected_summary, way
        pd.testing.assert_frame_equal(series, expected_series, obj=way)
