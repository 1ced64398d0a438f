"""The analyzer without the records in memory (`loadbench.analyze.bounded`) gives what the
in-memory one gives (`loadbench.analyze.analyzer.compute_summary`), figure for figure, on the
same run directories: every key of ``summary.json`` and every cell of ``timeseries.csv``."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from bounded_runs import DATA, assert_same, open_load, records, to_parquet, write_run

from loadbench.analyze import analyzer, bounded
from loadbench.analyze.store import RecordStore
from loadbench.errors import RunDirError
from loadbench.record import columnar, rundir
from loadbench.record.columnar import read_run_requests
from loadbench.record.records import RequestRecord


@pytest.mark.parametrize("parquet", [False, True], ids=["csv", "parquet"])
def test_a_run_of_many_names_and_failures_gives_the_same_summary(tmp_path: Path, parquet: bool) -> None:
    summary = assert_same(write_run(tmp_path / "run", records(6000), parquet=parquet))
    # What the comparison rests on: every part of the summary this path computes is there.
    assert len(summary["by_name"]) == 3 and len(summary["errors"]) >= 4
    assert summary["requests"]["redirects"] > 0 and summary["requests"]["warmup_excluded"] > 0
    assert any(row.get("retry_after") == "2" for row in summary["errors"])
    assert summary["steady"]["bins"] > 10 and summary["resources"]["latency_correlation"]
    assert summary["latency_ci_ms"]["p50"] is not None


def test_one_name_a_killed_run_and_a_run_without_samples(tmp_path: Path) -> None:
    one = assert_same(write_run(tmp_path / "one", records(900, seed=5, names=("/only",)), parquet=True))
    assert list(one["by_name"]) == ["/only"] and one["by_name"]["/only"]["latency_ms"] == one["latency_ms"]
    killed = write_run(
        tmp_path / "killed", records(700, seed=6), parquet=True, samples=False, status=rundir.STATUS_RUNNING
    )
    meta = rundir.read_meta(killed)
    del meta["ended_unix_s"]
    rundir.write_json(killed / rundir.META, meta)
    summary = assert_same(killed)
    assert any("incomplete run" in n for n in summary["notices"])


def test_empty_and_failed_windows(tmp_path: Path) -> None:
    warmup_only = write_run(
        tmp_path / "warm", records(300, seed=7), parquet=True, settings={"warmup_s": 60.0}
    )
    assert assert_same(warmup_only)["requests"]["total"] == 0
    failed = [
        RequestRecord(
            r.start_unix_s,
            r.latency_ms,
            r.name,
            r.method,
            503,
            0,
            False,
            "HTTPError: 503",
            server_message="busy",
        )
        for r in records(400, seed=8)
    ]
    summary = assert_same(write_run(tmp_path / "failed", failed, parquet=True))
    assert summary["requests"]["ok"] == 0 and summary["latency_ms"]["p50"] is None


def test_a_damaged_csv_loses_the_same_records_either_way(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", records(2000, seed=9))
    lines = (run / rundir.REQUESTS).read_text().splitlines(keepends=True)
    lines[700] = "garbage,not,a,record\n"
    (run / rundir.REQUESTS).write_text("".join(lines))
    summary = assert_same(run)
    assert any("requests.csv" in w for w in summary["validity"].get("warnings", []))


def test_cache_runs_take_the_store_and_a_column_it_does_not_know_goes_to_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recs = records(200, seed=10)
    recs[5] = dataclasses.replace(recs[5], cache="hit")
    cached = write_run(tmp_path / "cached", recs, parquet=True)
    labelled = write_run(
        tmp_path / "labelled",
        records(200, seed=10),
        parquet=True,
        settings={"cache_header": "X-Cache"},
    )
    for run in (cached, labelled):
        with RecordStore.open(run) as store:
            assert bounded.unsupported(rundir.read_meta(run), store) is None
        store = bounded.open_bounded(run, rundir.read_meta(run))
        assert store is not None
        store.close()
    # A record column this path gives no figures for (as a later format may add) sends the run to memory.
    monkeypatch.setattr(bounded, "COLUMNS", bounded.COLUMNS - {"cache"})
    with RecordStore.open(cached) as store:
        assert bounded.unsupported(rundir.read_meta(cached), store) == "records with cache"
    assert bounded.open_bounded(cached, rundir.read_meta(cached)) is None


def test_an_open_loop_counts_from_the_due_time_and_keeps_its_schedule_either_way(tmp_path: Path) -> None:
    rng = np.random.default_rng(15)
    recs = []
    for r in records(5000, seed=15):
        lateness = float(rng.choice([0.0002, 0.001, 0.004, 0.030], p=[0.6, 0.3, 0.08, 0.02]))
        recs.append(dataclasses.replace(r, intended_unix_s=round(r.start_unix_s - lateness, 6)))
    load = open_load(125.0)
    run = write_run(
        tmp_path / "open",
        recs,
        parquet=True,
        settings={"load": load},
        schedule={"due": 5002, "unsent": 2, "dropped": 0, "max_backlog": 9},
    )
    summary = assert_same(run)
    assert summary["load"]["model"] == "open" and summary["schedule"]["late_requests"] > 0
    assert summary["schedule"]["lateness_ms"]["max"] >= 29.0 and summary["schedule"]["unsent"] == 2
    # The latency counts the lateness, the service time does not.
    assert summary["latency_ms"]["p99"] > summary["service_time_ms"]["p99"]


def test_analyze_run_takes_a_parquet_run_through_the_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    frame_run = write_run(tmp_path / "frame", records(1500, seed=11), parquet=True)
    store_run = tmp_path / "store"
    shutil.copytree(frame_run, store_run)
    expected = analyzer.analyze_run(frame_run, requests=read_run_requests(frame_run))

    def no_frame(path: Path) -> pd.DataFrame:
        raise AssertionError(f"{path} was read into memory")

    monkeypatch.setattr(columnar, "read_parquet_requests", no_frame)
    assert analyzer.analyze_run(store_run) == expected
    for name in (rundir.SUMMARY, rundir.TIMESERIES):
        assert (store_run / name).read_bytes() == (frame_run / name).read_bytes()


def test_a_small_csv_run_is_read_into_memory_and_a_large_one_is_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = write_run(tmp_path / "run", records(300, seed=12))
    meta = rundir.read_meta(run)
    assert bounded.open_bounded(run, meta) is None  # far under CSV_BYTES
    monkeypatch.setattr(bounded, "CSV_BYTES", 1)
    store = bounded.open_bounded(run, meta)
    assert store is not None
    store.close()


def test_a_record_without_a_finite_latency_is_refused_by_number(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    run = write_run(tmp_path / "run", records(50, seed=13), parquet=True)
    path = run / rundir.REQUESTS_PARQUET
    table = pq.read_table(path)
    latency = table.column("latency_ms").to_numpy().copy()
    latency[3] = np.nan
    index = table.schema.get_field_index("latency_ms")
    pq.write_table(table.set_column(index, "latency_ms", pa.array(latency)), path)
    with pytest.raises(RunDirError, match=r"requests.parquet record 4: no finite start time or latency"):
        RecordStore.open(run)
    with pytest.raises(RunDirError, match=r"requests.parquet record 4: no finite start time or latency"):
        read_run_requests(run)  # the reader's own rule, the same words


def test_the_golden_run_directory_is_covered_and_unchanged(tmp_path: Path) -> None:
    run = tmp_path / "run-small"
    shutil.copytree(DATA / "run-small", run)
    to_parquet(run)
    meta = rundir.read_meta(run)
    with RecordStore.open(run) as store:
        if bounded.unsupported(meta, store) is not None:
            pytest.skip(f"run-small is not a plain run: {bounded.unsupported(meta, store)}")
    assert_same(run)


def test_duckdb_out_of_memory_is_retried_under_a_larger_limit_then_said_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from loadbench.analyze import store as store_module

    run = write_run(tmp_path / "run", records(60_000, seed=14, duration_s=60.0), parquet=True)
    with RecordStore.open(run) as store:
        expected = store.values_at([0, 30_000, 50_000], "latency_ms", "ok <> 0")
    with RecordStore.open(run) as store:
        store.limit_mb = 1
        store.con.execute("SET memory_limit = '1MB'")
        with pytest.raises(
            RunDirError, match=r"the analysis failed in DuckDB \(memory limit 4 MB.*[Oo]ut of [Mm]emory"
        ):
            store.values_at([0, 30_000, 50_000], "latency_ms", "ok <> 0", group="name")
    monkeypatch.setattr(store_module, "OUT_OF_MEMORY_RETRIES", 12)
    with RecordStore.open(run) as store:
        store.limit_mb = 1
        store.con.execute("SET memory_limit = '1MB'")
        np.testing.assert_array_equal(store.values_at([0, 30_000, 50_000], "latency_ms", "ok <> 0"), expected)
        assert store.limit_mb > 1  # it ran out, and was given more
