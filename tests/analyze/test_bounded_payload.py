"""The payload keys of the bounded analyzer (`loadbench.analyze.bounded_payload`): ``quality``,
``rtf``, ``latency_breakdown.phases_ms`` and the server's own processing time are what the
in-memory analyzer gives, figure for figure, on the same run directories (CSV and Parquet, closed
and open loop), edge cases included."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from bounded_runs import STARTED, assert_same, open_load, records, write_run

from loadbench.analyze import analyzer, bounded, bounded_payload
from loadbench.analyze.store import RecordStore
from loadbench.record import rundir
from loadbench.record.columnar import read_run_requests
from loadbench.record.records import RequestRecord
from loadbench.record.series import read_samples, read_users

# Classes of text and of numbers: numeric order, ties of one number ("7", "07", "7.0"), words
# pandas would read as missing elsewhere ("NA", "None", "nan"), CSV quoting, accents, a label
# that the writer trims to one line.
LABELS = (
    "cat",
    "dog",
    "bird",
    "2",
    "10",
    "7",
    "07",
    "7.0",
    "1e1",
    "NA",
    "None",
    "nan",
    "a,b",
    'say "hi"',
    "café",
)
NUMERIC_LABELS = ("7", "07", "7.0", "1e1", "10", "-3", "0.5", "inf", "nan")


def payload_records(
    n: int, seed: int, labels: tuple[str, ...] = LABELS, open_loop: bool = False
) -> list[RequestRecord]:
    """`records` with every payload column: labels (right, wrong, missing, of failed requests),
    media durations (some missing, zero or negative), HTTP/2 phases (connect 0 on a reused
    connection, none on a failed request) and the server's time (missing, negative, zero, more
    than the latency)."""
    rng = np.random.default_rng(seed)
    out = []
    for r in records(n, seed=seed):
        extras: dict[str, Any] = {}
        u = rng.random(8)
        if u[0] < 0.9:  # labeled
            expected = labels[int(rng.integers(len(labels)))]
            extras["expected"] = expected
            if u[1] < 0.7:
                extras["predicted"] = expected
            elif u[1] < 0.85:
                extras["predicted"] = labels[int(rng.integers(len(labels)))]
            elif u[1] < 0.9:
                extras["predicted"] = "never expected"
            # else: the answer carried no prediction
        elif u[0] < 0.95:
            extras["predicted"] = labels[0]  # a prediction without a label counts nowhere
        if u[2] < 0.8:
            extras["media_s"] = (
                float(rng.choice([0.0, -1.0, 0.37, 1.5, 2.25, 0.004]))
                if u[3] < 0.1
                else round(float(rng.uniform(0.005, 0.05)), 6)
            )
        if r.ok:
            connect = round(float(rng.uniform(0.5, 4.0)), 3) if u[4] < 0.05 else 0.0
            extras |= {"connect_ms": connect, "ttfb_ms": round(r.latency_ms * 0.8, 3)}
            if u[5] < 0.95:
                extras["download_ms"] = round(r.latency_ms * 0.15, 3)
        server_ms: float | None = None
        if u[6] < 0.85:
            if u[7] < 0.03:
                server_ms = -1.0
            elif u[7] < 0.06:
                server_ms = 0.0
            elif u[7] < 0.08:
                server_ms = r.latency_ms  # request time 0: no ratio
            elif u[7] < 0.1:
                server_ms = r.latency_ms * 1.5  # a server clock that ran ahead
            else:  # Server-Timing: the sum of a few durs, to the µs
                server_ms = round(r.latency_ms * float(rng.uniform(0.3, 0.9)) + 0.123, 3)
        intended = None
        if open_loop:
            intended = round(r.start_unix_s - float(rng.choice([0.0002, 0.001, 0.02])), 6)
        out.append(dataclasses.replace(r, extras=extras, server_ms=server_ms, intended_unix_s=intended))
    return out


def both_ways(run: Path, server_stats: dict[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Both analyzers' summaries of ``run`` with the server's counters (`bounded_runs.both_ways`
    without them)."""
    meta = rundir.read_meta(run)
    users, samples = read_users(run / rundir.USERS), read_samples(run / rundir.SAMPLES)
    frame, _ = analyzer.compute_summary(meta, read_run_requests(run), users, samples, None, server_stats)
    with RecordStore.open(run) as store:
        assert bounded.unsupported(meta, store) is None
        found, _ = bounded.bounded_summary(meta, store, users, samples, None, server_stats)
    return json.loads(json.dumps(frame)), json.loads(json.dumps(found))


@pytest.mark.parametrize("parquet", [False, True], ids=["csv", "parquet"])
@pytest.mark.parametrize("open_loop", [False, True], ids=["closed", "open"])
def test_labels_media_phases_and_server_time_give_the_same_summary(
    tmp_path: Path, parquet: bool, open_loop: bool
) -> None:
    settings: dict[str, Any] = {"server_time_header": "Server-Timing"}
    if open_loop:
        settings["load"] = open_load(100.0)
    run = write_run(
        tmp_path / "run",
        payload_records(2500, seed=21, open_loop=open_loop),
        parquet=parquet,
        settings=settings,
        network={"rtt_ms_median": 0.4},
    )
    summary = assert_same(run)
    q, rtf, breakdown = summary["quality"], summary["rtf"], summary["latency_breakdown"]
    assert q["n"] > q["answered"] > q["correct"] > 0 and 0 < q["accuracy"] < q["accuracy_answered"] < 1
    assert q["classes"] == len(LABELS) + 1 and q["per_class"]["never expected"]["support"] == 0
    assert set(q["per_class"]) == {*LABELS, "never expected"}
    assert rtf["n"] > 0 and rtf["failed"] > 0 and 0 < rtf["p50"] < rtf["p99"] <= rtf["max"]
    phases = breakdown["phases_ms"]
    assert 0 < phases["new_connections"] < summary["requests"]["ok"] / 10
    assert phases["connect_ms"]["min"] > 0 and phases["ttfb_ms"]["p50"] < summary["service_time_ms"]["p50"]
    assert breakdown["processing_source"] == "header" and breakdown["network_rtt_ms"] == 0.4
    assert 0 < breakdown["processing_n"] < summary["requests"]["ok"]
    assert breakdown["realtime_ratio"]["p50"] > 0 and breakdown["request_ms"]["p50"] > 0


def test_numbers_as_labels_and_more_classes_than_shown(tmp_path: Path) -> None:
    # Every label looks like a number: the CSV reader reads such a column again as text.
    numeric = assert_same(
        write_run(tmp_path / "numeric", payload_records(1000, seed=22, labels=NUMERIC_LABELS))
    )
    assert {"7", "07", "7.0", "inf", "nan"} <= set(numeric["quality"]["per_class"])
    many = tuple(f"class-{i}" for i in range(70))
    summary = assert_same(
        write_run(tmp_path / "many", payload_records(2000, seed=23, labels=many), parquet=True)
    )
    assert summary["quality"]["classes"] == 71 and len(summary["quality"]["per_class"]) == 50


def test_failed_or_unlabeled_windows_and_missing_columns(tmp_path: Path) -> None:
    # Every request failed: labels and media counted as wrong / failed, no phases, no server time.
    failed = [
        dataclasses.replace(r, status=503, ok=False, error="HTTPError: 503", response_bytes=0)
        for r in payload_records(600, seed=24)
    ]
    summary = assert_same(write_run(tmp_path / "failed", failed, parquet=True))
    assert summary["quality"]["answered"] == 0 and summary["quality"]["accuracy_answered"] is None
    assert summary["rtf"]["n"] == 0 and summary["rtf"]["failed"] > 0
    assert "latency_breakdown" not in summary
    # Predictions without labels, media of no duration, phases without ttfb, server times all unusable.
    odd = [
        dataclasses.replace(
            r,
            extras={"predicted": "x", "media_s": 0.0, "connect_ms": 0.0, "download_ms": 1.0},
            server_ms=-2.0,
        )
        for r in records(500, seed=25)
    ]
    summary = assert_same(write_run(tmp_path / "odd", odd, settings={"server_time_field": "timing"}))
    assert not {"quality", "rtf", "latency_breakdown"} & set(summary)
    # Labels only in the warmup: no quality in the window.
    early = [
        dataclasses.replace(
            r, extras={"expected": "a", "predicted": "a"} if r.start_unix_s < STARTED + 4 else {}
        )
        for r in records(500, seed=26)
    ]
    assert "quality" not in assert_same(write_run(tmp_path / "early", early, parquet=True))


@pytest.mark.parametrize(
    ("settings", "source"),
    [
        ({"server_time_field": "timing"}, "field"),
        ({"server_time_field": "timing", "server_time_header": "X-Time"}, "header"),
        ({}, "header"),
    ],
)
def test_the_server_time_source_follows_the_settings(
    tmp_path: Path, settings: dict[str, Any], source: str
) -> None:
    recs = [dataclasses.replace(r, server_ms=round(r.latency_ms / 3, 3)) for r in records(400, seed=27)]
    summary = assert_same(write_run(tmp_path / "run", recs, parquet=True, settings=settings))
    assert summary["latency_breakdown"]["processing_source"] == source


def test_without_a_usable_server_time_the_counters_speak(tmp_path: Path) -> None:
    stats = {
        "source": "triton-stats",
        "per_request": {"requests": 500, "processing_ms": 4.0, "queue_ms": 1.0},
    }
    unusable = [dataclasses.replace(r, server_ms=-1.0) for r in records(800, seed=28)]
    frame, found = both_ways(write_run(tmp_path / "unusable", unusable, parquet=True), stats)
    assert found == frame and found["latency_breakdown"]["processing_source"] == "triton-stats"
    usable = [dataclasses.replace(r, server_ms=2.5) for r in records(800, seed=28)]
    frame, found = both_ways(write_run(tmp_path / "usable", usable, parquet=True), stats)
    assert found == frame and found["latency_breakdown"]["processing_source"] == "header"
    assert found["latency_breakdown"]["processing_ms"] == {"p50": 2.5, "p90": 2.5, "p99": 2.5, "mean": 2.5}


def test_the_section_columns_are_covered(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", payload_records(300, seed=29), parquet=True)
    with RecordStore.open(run) as store:
        assert store.filled >= bounded_payload.COLUMNS
        assert bounded.unsupported(rundir.read_meta(run), store) is None
