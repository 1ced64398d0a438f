"""`loadbench compare` of runs with ``--retries`` through their stores: the requests users saw (the
store's collapsed records, in the order of their first attempts) give the comparison the records
in memory give, series for series and position for position."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from bounded_runs import no_frames, write_run
from retried_runs import OPEN_LOAD, RETRIES, retried

from loadbench.analyze.analyzer import analyze_run
from loadbench.compare import bootstrap, rundata
from loadbench.compare.compare import compare_runs
from loadbench.compare.rundata import load_run
from loadbench.compare.runstore import StoredSeries
from loadbench.record import rundir
from loadbench.record.columnar import convert_csv, read_run_requests


def analyzed(path: Path, seed: int, open_loop: bool) -> Path:
    """A retried run of format 2, in row groups of 500 records, analyzed in memory."""
    settings: dict[str, Any] = {"retries": RETRIES, **({"load": OPEN_LOAD} if open_loop else {})}
    run = write_run(path, retried(1500 + 300 * seed, seed=seed, open_loop=open_loop), settings=settings)
    convert_csv(run / rundir.REQUESTS, run / rundir.REQUESTS_PARQUET, row_group_rows=500)
    (run / rundir.REQUESTS).unlink()
    rundir.write_json(run / rundir.META, {**rundir.read_meta(run), "format": 2})
    analyze_run(run, requests=read_run_requests(run))
    return run


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("retried")
    return [analyzed(root / f"run{seed}", seed, open_loop=True) for seed in (51, 52)]


def in_memory(monkeypatch: pytest.MonkeyPatch, runs: list[Path]) -> list[rundata.RunData]:
    with monkeypatch.context() as m:
        m.setattr(rundata, "open_bounded", lambda path, meta: None)
        return [load_run(path) for path in runs]


def test_compare_of_retried_runs_through_the_store_is_the_comparison_in_memory(
    runs: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bootstrap, "MAX_LATENCIES", 1_000)  # a subsample: positions matter
    baseline, candidate = in_memory(monkeypatch, runs)
    want = json.loads(json.dumps(compare_runs(baseline, candidate, resamples=100)))
    no_frames(monkeypatch, rundata)
    loaded = [load_run(path) for path in runs]
    assert all(run.stored is not None for run in loaded)
    got = json.loads(json.dumps(compare_runs(loaded[0], loaded[1], resamples=100)))
    assert got == want
    assert got["metrics"]["latency_ms.p50"]["ci"] is not None


def test_each_stored_series_of_a_retried_run_is_the_series_in_memory(
    runs: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    memory = in_memory(monkeypatch, runs)
    no_frames(monkeypatch, rundata)
    for mem, path in zip(memory, runs, strict=True):
        run = load_run(path)
        assert run.stored is not None and run.series.keys() == mem.series.keys()
        summary = rundir.read_json(path / rundir.SUMMARY)
        assert run.stored.size == summary["requests"]["ok"] < summary["retries"]["attempts"]
        for key, stored in run.series.items():
            values, seconds = mem.series[key]  # type: ignore[misc]
            assert isinstance(stored, StoredSeries) and stored.size == values.size > 0, key
            got_values, got_seconds = stored.take(None)
            np.testing.assert_array_equal(got_values, values, err_msg=key)
            np.testing.assert_array_equal(got_seconds, seconds, err_msg=key)
        for got, want in zip(run.second_counts(), mem.second_counts(), strict=True):
            np.testing.assert_array_equal(got, want)
