"""The bounded analyzer of runs with ``--retries`` (`loadbench.analyze.bounded_retries`, the store's
collapsed ``requests`` and its ``attempts``) equals the in-memory analyzer, figure for figure."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from bounded_runs import assert_same, records, write_run
from retried_runs import OPEN_LOAD, RETRIES, TARGETS, retried

from loadbench.analyze import bounded
from loadbench.analyze.attempts import split_attempts
from loadbench.analyze.store import RecordStore
from loadbench.record import rundir
from loadbench.record.columnar import read_run_requests
from loadbench.record.records import RequestRecord

WAYS = pytest.mark.parametrize(
    ("parquet", "open_loop"),
    [(False, False), (True, True), (True, False), (False, True)],
    ids=["csv-closed", "parquet-open", "parquet-closed", "csv-open"],
)


def _run(tmp_path: Path, recs: list[RequestRecord], parquet: bool, open_loop: bool, **settings: Any) -> Path:
    settings = {"retries": RETRIES, **settings}
    if open_loop:
        settings["load"] = OPEN_LOAD
    return write_run(tmp_path / "run", recs, parquet=parquet, settings=settings)


@WAYS
def test_retried_runs_give_the_same_summary(tmp_path: Path, parquet: bool, open_loop: bool) -> None:
    summary = assert_same(_run(tmp_path, retried(1500, seed=31, open_loop=open_loop), parquet, open_loop))
    section = summary["retries"]
    assert section["retries"] == section["attempts"] - section["requests"] > 100
    assert section["requests"] == summary["requests"]["total"]
    assert section["recovered"] > 0 and section["exhausted"] > 0
    assert section["retried_requests"] == section["recovered"] + section["exhausted"]
    assert {r["kind"] for r in section["by_reason"]} == {"HTTP 503", "connection refused", "timeout"}
    assert section["settings"] == RETRIES and 0 < section["attempt_error_rate"] < 1
    # The requests users saw: as many as there are distinct requests, latency backoff included.
    assert summary["latency_ms"]["max"] > 300.0


def test_the_store_collapses_attempts_as_split_attempts_does(tmp_path: Path) -> None:
    run = _run(tmp_path, retried(600, seed=32, open_loop=True), parquet=True, open_loop=True)
    split = split_attempts(read_run_requests(run))
    columns = ["start_unix_s", "latency_ms", "ok", "status", "request_id", "intended_unix_s"]
    with RecordStore.open(run) as store:
        assert store.retried
        # In the order of each request's first attempt, as the in-memory frame is.
        frame = store.frame(f"SELECT {', '.join(columns)} FROM records")
        ((attempts, final),) = store.rows("SELECT count(*), count(*) FILTER (final) FROM attempts")
    expected = split.requests[columns].reset_index(drop=True)
    assert len(frame) == len(expected) < len(split.attempts) == attempts
    assert final == len(expected)
    np.testing.assert_array_equal(frame["latency_ms"].to_numpy(), expected["latency_ms"].to_numpy())
    np.testing.assert_array_equal(frame["start_unix_s"].to_numpy(), expected["start_unix_s"].to_numpy())
    assert frame["request_id"].fillna("").tolist() == expected["request_id"].astype(str).tolist()


@pytest.mark.parametrize("parquet", [False, True], ids=["csv", "parquet"])
def test_replicas_and_targets_count_attempts(tmp_path: Path, parquet: bool) -> None:
    recs = retried(1500, seed=33, open_loop=parquet, routed=True)
    settings = {"replica_header": "X-Served-By", "targets": [*TARGETS, "http://idle:8000"]}
    summary = assert_same(_run(tmp_path, recs, parquet, parquet, **settings))
    attempts = summary["retries"]["attempts"]
    targets = summary["targets"]
    assert sum(t["requests"] for t in targets["targets"]) + targets["unattributed"] == attempts
    replicas = summary["replicas"]
    assert sum(r["requests"] for r in replicas["replicas"]) + replicas["unattributed"] == attempts
    assert attempts > summary["requests"]["total"]


def test_retries_with_the_first_requests_and_stages(tmp_path: Path) -> None:
    stages = [
        {"name": "low", "start_s": 0.0, "end_s": 20.0, "start_level": 4.0, "end_level": 4.0},
        {"name": "high", "start_s": 20.0, "end_s": 40.0, "start_level": 8.0, "end_level": 8.0},
    ]
    run = _run(tmp_path, retried(1200, seed=34), True, False, cold_start=20, stages=stages)
    summary = assert_same(run)
    assert summary["cold_start"]["requests"] == 20 and len(summary["stages"]) == 2
    keys = list(summary)
    assert keys.index("retries") < keys.index("cold_start")


def test_retries_set_but_never_needed(tmp_path: Path) -> None:
    # --retries given, every request ok at its first attempt: ids, attempt 1 each.
    recs = [
        dataclasses.replace(r, ok=True, status=200, error="", attempt=1, request_id=f"q{i}")
        for i, r in enumerate(records(800, seed=35))
    ]
    run = _run(tmp_path, recs, True, False)
    with RecordStore.open(run) as store:
        assert not store.retried  # nothing to collapse: the records are the requests
    section = assert_same(run)["retries"]
    assert section["retries"] == 0 and section["amplification"] == 1.0 and section["by_reason"] == []


@pytest.mark.parametrize("numbered", [False, True], ids=["setting-only", "numbers-only"])
def test_retries_without_request_ids(tmp_path: Path, numbered: bool) -> None:
    # The setting without ids (nothing to collapse); or attempt numbers without the setting.
    recs = [dataclasses.replace(r, attempt=1 if numbered else 0) for r in records(600, seed=36)]
    run = write_run(tmp_path / "run", recs, parquet=True, settings={} if numbered else {"retries": RETRIES})
    with RecordStore.open(run) as store:
        assert not store.retried and bounded.unsupported(rundir.read_meta(run), store) is None
    section = assert_same(run)["retries"]
    assert section["attempts"] == section["requests"] > 0 and section["settings"] == (
        None if numbered else RETRIES
    )
