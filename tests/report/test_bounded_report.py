"""``report.html`` of a run analyzed through a `RecordStore` (its records never in a frame): the
per-request plots' data from DuckDB equals what the records in memory give, and the page is the
same page."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from bounded_runs import no_frames

from loadbench.analyze import store as store_module
from loadbench.analyze.analyzer import analyze_run
from loadbench.analyze.bounded import open_bounded
from loadbench.analyze.store import RecordStore
from loadbench.cli.summary import analyze_and_report
from loadbench.record import columnar, rundir
from loadbench.record.columnar import convert_csv, read_run_requests
from loadbench.record.records import RequestRecord, write_requests
from loadbench.report import plotdata, rundata
from loadbench.report.report import render_report
from loadbench.report.rundata import Run, load_run

STARTED = 1000.0
DURATION = 6


def plain_records(seed: int = 3) -> list[RequestRecord]:
    """Some 3,000 requests over 6 s, a few of them failed in several ways (statuses, exceptions,
    a status without error text), some with a zero latency."""
    rng = np.random.default_rng(seed)
    n = 3000
    starts = STARTED + np.sort(rng.uniform(0.0, DURATION, n))
    latencies = np.round(20.0 * np.exp(rng.normal(0.0, 0.8, n)), 3)
    latencies[rng.uniform(size=n) < 0.01] = 0.0
    failures = [
        (503, "HTTPError: 503 Service Unavailable"),
        (0, "ConnectionError: refused"),
        (500, ""),
        (429, 'HTTPError: 429 "slow down"'),
    ]
    records = []
    for i, (start, latency) in enumerate(zip(starts.tolist(), latencies.tolist(), strict=True)):
        failed = rng.uniform() < 0.08
        status, error = failures[i % len(failures)] if failed else (200, "")
        name = "/predict" if i % 3 else "/health"
        records.append(RequestRecord(start, latency, name, "POST", status, 100, not failed, error))
    return records


def make_parquet_run(path: Path) -> Path:
    """A plain run of format 2 whose records are a Parquet file of many row groups."""
    path.mkdir()
    meta = {
        "format": 2, "run_id": path.name, "target": "http://127.0.0.1:1", "scenario": "json_post",
        "status": rundir.STATUS_COMPLETE, "started_unix_s": STARTED, "ended_unix_s": STARTED + DURATION,
        "load_model": "closed loop",
        "settings": {"users": 4, "warmup_s": 1.0, "duration_s": DURATION, "scenario_args": []},
    }  # fmt: skip
    rundir.write_json(path / rundir.META, meta)
    csv = path / rundir.REQUESTS
    write_requests(csv, plain_records())
    convert_csv(csv, path / columnar.PARQUET, row_group_rows=400)
    csv.unlink()
    return path


@pytest.fixture
def run_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # Small caps so the scatter samples (from several batches of the stream) on a small run.
    monkeypatch.setattr(plotdata, "MAX_POINTS", 700)
    monkeypatch.setattr(plotdata, "MAX_ERROR_POINTS", 60)
    monkeypatch.setattr(store_module, "BATCH_ROWS", 256)
    path = make_parquet_run(tmp_path / "run")
    store = open_bounded(path, rundir.read_meta(path))
    assert store is not None  # a plain run: the bounded path covers it
    with store:
        analyze_run(path, store=store)
    return path


def both_runs(path: Path) -> tuple[Run, Run]:
    with RecordStore.open(path) as store:
        bounded = load_run(path, store=store)
    return bounded, load_run(path, requests=read_run_requests(path))


def test_the_plots_data_from_the_store_equals_the_frames(run_dir: Path) -> None:
    bounded, frame = both_runs(run_dir)
    assert (
        bounded.requests.empty and bounded.attempts.empty and list(bounded.requests) == list(frame.requests)
    )
    ours, theirs = bounded.plots.scatter, frame.plots.scatter
    assert (ours.ok_total, ours.err_total) == (theirs.ok_total, theirs.err_total)
    assert 700 < ours.ok_total < 3000 and 60 < ours.err_total < 700  # both outcomes were sampled
    assert ours.ok_start_s.size == 700 and ours.err_start_s.size == 60
    for field in ("ok_start_s", "ok_latency_ms", "err_start_s", "err_latency_ms"):
        np.testing.assert_array_equal(getattr(ours, field), getattr(theirs, field))
    assert ours.start_range == theirs.start_range

    curve, expected = bounded.plots.curve, frame.plots.curve
    assert curve.n == expected.n and 2000 < curve.n < ours.ok_total  # the warmup's left out
    np.testing.assert_array_equal(curve.x, expected.x)
    np.testing.assert_array_equal(curve.y, expected.y)  # bit for bit, not approximately
    assert curve.marks == expected.marks and [m[0] for m in curve.marks] == [50.0, 90.0, 99.0, 99.9]
    assert (curve.maximum, curve.min_positive) == (expected.maximum, expected.min_positive)
    assert curve.min_positive is not None and curve.min_positive > 0.0

    pd.testing.assert_frame_equal(bounded.plots.errors, frame.plots.errors)
    assert len(set(bounded.plots.errors["kind"])) == 4
    assert bounded.plots.errors["count"].sum() == ours.err_total


def test_the_report_from_the_store_reads_no_frame_and_is_the_same_page(
    run_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    html_path, _ = render_report(run_dir, requests=read_run_requests(run_dir))
    from_frame = html_path.read_text()
    no_frames(monkeypatch, rundata)
    with RecordStore.open(run_dir) as store:
        render_report(run_dir, store=store)
    from_store = html_path.read_text()
    assert from_store.count("<img") == from_frame.count("<img") >= 4
    for figure in ("plot-latency-time", "plot-percentiles", "plot-throughput", "plot-errors"):
        assert f'<figure id="{figure}"><img class="plot" src="data:image/png;base64,' in from_store
    assert from_store == from_frame

    html_path.unlink()
    render_report(run_dir)  # no records given: the report opens a store of its own
    assert html_path.read_text() == from_frame


def test_loadbench_report_opens_the_records_once_as_a_store(
    run_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    expected = rundir.read_json(run_dir / rundir.SUMMARY)
    (run_dir / rundir.REPORT).unlink(missing_ok=True)
    no_frames(monkeypatch, rundata)
    summary = analyze_and_report(run_dir)
    assert dict(summary) == expected
    assert (run_dir / rundir.REPORT).read_text().count("<img") >= 4
    assert "report: " in capsys.readouterr().out


def test_a_shared_store_sorts_the_windows_latencies_once_for_summary_and_curve(
    run_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sorts: list[str] = []
    picked = RecordStore.pick

    def counted(self: RecordStore, sql: str, params: Any, positions: Any) -> Any:
        if "ORDER BY" in sql:
            sorts.append(sql)
        return picked(self, sql, params, positions)

    monkeypatch.setattr(RecordStore, "pick", counted)
    with RecordStore.open(run_dir) as store:
        analyze_run(run_dir, store=store)
        after_analysis = list(sorts)
        render_report(run_dir, store=store)
    assert sorts == after_analysis  # the curve's values came from the analyzer's pass
    assert len(after_analysis) == 3  # the window's latencies, by name, by second
    with RecordStore.open(run_dir) as store:  # a store of its own: the report sorts them itself
        render_report(run_dir, store=store)
    assert len(sorts) == 4


def test_an_open_loops_curve_ranks_the_latency_from_the_due_time_either_way(tmp_path: Path) -> None:
    path = make_parquet_run(tmp_path / "open")
    records = [
        dataclasses.replace(r, intended_unix_s=round(r.start_unix_s - (0.02 if i % 50 == 0 else 0.0005), 6))
        for i, r in enumerate(plain_records(seed=4))
    ]
    csv = path / rundir.REQUESTS
    write_requests(csv, records)
    (path / columnar.PARQUET).unlink()
    convert_csv(csv, path / columnar.PARQUET, row_group_rows=400)
    csv.unlink()
    meta = rundir.read_meta(path)
    meta["settings"]["load"] = {"model": "open", "rate": 500.0, "arrival": "constant"}
    rundir.write_json(path / rundir.META, meta)
    analyze_run(path)
    summary = rundir.read_json(path / rundir.SUMMARY)
    bounded, frame = both_runs(path)
    np.testing.assert_array_equal(bounded.plots.curve.y, frame.plots.curve.y)
    marks = {p: y for p, _, y in bounded.plots.curve.marks}
    assert round(marks[99.0], 3) == summary["latency_ms"]["p99"] != summary["service_time_ms"]["p99"]


def test_a_long_run_says_on_stderr_that_it_is_read_out_of_memory_unless_quiet(
    run_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from loadbench.cli import summary as summary_module

    analyze_and_report(run_dir)
    assert "out of memory" not in capsys.readouterr().err  # 3,000 records: not worth a word
    monkeypatch.setattr(summary_module, "SAY_RECORDS", 1000)
    analyze_and_report(run_dir)
    assert "analyzing 3,000 records out of memory (requests.parquet, DuckDB)" in capsys.readouterr().err
    analyze_and_report(run_dir, quiet=True)
    assert capsys.readouterr().err == ""
