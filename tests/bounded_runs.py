"""Run directories for the bounded analyzer's tests (`loadbench.analyze.bounded`), and the check
that it gives what the in-memory analyzer gives on them (`assert_same`)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from loadbench.analyze import analyzer, bounded
from loadbench.analyze.store import RecordStore
from loadbench.record import columnar, rundir
from loadbench.record.columnar import convert_csv, read_run_requests
from loadbench.record.records import RequestRecord, write_requests
from loadbench.record.series import read_samples, read_users
from loadbench.report import plotdata
from loadbench.report.rundata import Run, load_run

DATA = Path(__file__).resolve().parent / "data"
STARTED = 1_795_400_000.0
NAMES = ("/v2/models/digits/infer", "/v2/models/digits", "/v2/health/ready")
FAILURES = (
    (503, "HTTPError: 503 Server Error: busy", "model is overloaded, try later", "2"),
    (503, "HTTPError: 503 Server Error: busy", "queue full", ""),
    (400, "HTTPError: 400 Client Error", "expecting 64 features", ""),
    (0, "TimeoutError: timed out", "", ""),
    (0, "ConnectionRefusedError: [Errno 111] Connection refused", "", ""),
)


def records(
    n: int, seed: int = 3, names: tuple[str, ...] = NAMES, duration_s: float = 40.0
) -> list[RequestRecord]:
    """A closed-loop run's records: lognormal latencies at µs resolution (ties included), some
    failures of each kind, some redirects, not quite in start order (written as they finished)."""
    rng = np.random.default_rng(seed)
    start = np.sort(STARTED + rng.uniform(0, duration_s, n))
    latency = np.round(rng.lognormal(np.log(12.0), 0.6, n), 3)
    latency[rng.random(n) < 0.01] *= 40  # a slow tail
    latency = np.round(latency, 3)
    which = rng.choice(len(names), n, p=np.linspace(2, 1, len(names)) / np.linspace(2, 1, len(names)).sum())
    failed = rng.random(n) < 0.03
    kind = rng.integers(0, len(FAILURES), n)
    hops = np.where(rng.random(n) < 0.02, rng.integers(1, 3, n), 0)
    out = []
    for i in np.argsort(start + latency / 1000.0, kind="stable"):  # in the order they ended
        status, error, message, retry_after = FAILURES[kind[i]] if failed[i] else (200, "", "", "")
        out.append(
            RequestRecord(
                round(float(start[i]), 6),
                float(latency[i]),
                names[which[i]],
                "POST",
                status,
                0 if failed[i] else 117 + int(which[i]),
                not failed[i],
                error,
                server_message=message,
                retry_after=retry_after,
                redirects=int(hops[i]),
            )
        )
    return out


def open_load(rate: float, seed: int = 7) -> dict[str, Any]:
    """``settings.load`` of an open loop (Poisson arrivals at ``rate`` req/s, 64 in flight at most)."""
    return {"model": "open", "rate": rate, "arrival": "poisson", "seed": seed, "max_inflight": 64}


def write_run(
    path: Path, recs: list[RequestRecord], parquet: bool = False, samples: bool = True, **meta: Any
) -> Path:
    path.mkdir(parents=True)
    settings = {"users": 8, "warmup_s": 5.0, "duration_s": 40, **meta.pop("settings", {})}
    rundir.write_json(
        path / rundir.META,
        {
            "format": 1,
            "run_id": "run-bounded",
            "target": "http://127.0.0.1:8000",
            "scenario": "kserve_v2",
            "status": rundir.STATUS_COMPLETE,
            "started_unix_s": STARTED,
            "ended_unix_s": STARTED + 40.0,
            "settings": settings,
            "in_flight_unrecorded": 3,
            **meta,
        },
    )
    write_requests(path / rundir.REQUESTS, recs)
    (path / rundir.USERS).write_text(
        "unix_s,users\n" + "".join(f"{STARTED + 0.5 * i:.3f},{min(i + 1, 8)}\n" for i in range(80))
    )
    if samples:
        with (path / rundir.SAMPLES).open("w") as f:
            for i in range(80):
                cpu = 20.0 + (i % 7) * 5
                f.write(
                    json.dumps(
                        {
                            "unix_s": STARTED + 0.5 * i,
                            "host.cpu_percent": cpu,
                            "generator.cpu_percent": cpu / 2,
                        }
                    )
                    + "\n"
                )
    if parquet:
        to_parquet(path)
    return path


def to_parquet(path: Path) -> None:
    convert_csv(path / rundir.REQUESTS, path / rundir.REQUESTS_PARQUET)
    (path / rundir.REQUESTS).unlink()
    meta = rundir.read_meta(path)
    rundir.write_json(path / rundir.META, {**meta, "format": 2})


def both_ways(run: Path) -> tuple[tuple[dict[str, Any], pd.DataFrame], tuple[dict[str, Any], pd.DataFrame]]:
    """(summary, series) of the run from the records in memory, and from a store."""
    meta = rundir.read_meta(run)
    users, samples = read_users(run / rundir.USERS), read_samples(run / rundir.SAMPLES)
    frame_summary, frame_series = analyzer.compute_summary(meta, read_run_requests(run), users, samples)
    with RecordStore.open(run) as store:
        assert bounded.unsupported(meta, store) is None
        store_summary, store_series = bounded.bounded_summary(meta, store, users, samples)
    return (json.loads(json.dumps(frame_summary)), frame_series), (
        json.loads(json.dumps(store_summary)),
        store_series,
    )


def assert_same(run: Path) -> dict[str, Any]:
    (frame_summary, frame_series), (store_summary, store_series) = both_ways(run)
    assert store_summary == frame_summary
    pd.testing.assert_frame_equal(store_series, frame_series)
    return frame_summary


def refuse_frames(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("the records were read into a frame")


def no_frames(monkeypatch: Any, *readers: Any) -> None:
    """Every reader of records into a frame refused (`monkeypatch`: pytest's): the columnar
    module's, and ``read_run_requests`` where each of ``readers`` (a module) imported it."""
    monkeypatch.setattr(columnar, "read_run_requests", refuse_frames)
    monkeypatch.setattr(columnar, "read_parquet_requests", refuse_frames)
    for module in readers:
        monkeypatch.setattr(module, "read_run_requests", refuse_frames)


def pages_both_ways(csv: Path, stored: Path, monkeypatch: Any) -> tuple[str, str]:
    """report.html of ``csv`` from its records in memory, then of ``stored`` with every reader of
    records into a frame refused: the page drawn from the store alone."""
    from loadbench.report import rundata
    from loadbench.report.report import render_report

    html, _ = render_report(csv)
    from_frame = html.read_text()
    no_frames(monkeypatch, rundata)
    html, _ = render_report(stored)  # opens a store of its own: no frame read
    return from_frame, html.read_text()


def analyzed_both_ways(csv: Path) -> Path:
    """Analyze ``csv`` (a run written in CSV) from its records in memory, and a Parquet copy of it
    (``parquet`` beside it) through a store, which the analyzer and the report must both take;
    the copy's path."""
    stored = csv.parent / "parquet"
    shutil.copytree(csv, stored)
    to_parquet(stored)
    analyzer.analyze_run(csv, requests=read_run_requests(csv))
    meta = rundir.read_meta(stored)
    store = bounded.open_bounded(stored, meta)
    assert store is not None  # the analyzer takes the store...
    with store:
        assert plotdata.store_covers(meta, store)  # ... and so does the report
        analyzer.analyze_run(stored, store=store)
    return stored


def loaded_both_ways(csv: Path, stored: Path) -> tuple[Run, Run]:
    """The report's `Run` of ``csv`` from its records in memory, and of ``stored`` from a store."""
    with RecordStore.open(stored) as store:
        from_store = load_run(stored, store=store)
    return load_run(csv, requests=read_run_requests(csv)), from_store
