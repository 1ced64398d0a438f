"""`loadbench compare` and `loadbench variants` of runs read through their store
(`loadbench.compare.runstore`, no records in memory) give what they give of the same runs read
into memory: the same compare.json and compare.md, byte for byte."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from bounded_runs import no_frames

from loadbench.analyze.analyzer import analyze_run
from loadbench.cli.main import main
from loadbench.compare import bootstrap, rundata
from loadbench.compare.history_runs import load_history
from loadbench.compare.plots import latency_curves
from loadbench.compare.rundata import RunData, load_run
from loadbench.record import rundir
from loadbench.record.columnar import convert_csv
from loadbench.record.records import RequestRecord, write_requests
from loadbench.variants.variants import load_variant, variants_table

STARTED = 1_795_400_000.0
WARMUP_S = 5.0
DURATION_S = 30.0
NAMES = ("/v2/models/digits/infer", "/v2/models/digits", "/v2/health/ready")
FAILURES = ((503, "HTTPError: 503 Server Error: busy"), (0, "TimeoutError: timed out"))
MAX_LATENCIES = 4_000  # the bootstrap's subsample, small: the candidate's successes exceed it


def records(n: int, seed: int, scale: float) -> list[RequestRecord]:
    """A closed-loop run's records, in the order they ended: lognormal latencies at µs resolution
    (ties included) with a slow tail, 3 % failures, three names, a request at the window start."""
    rng = np.random.default_rng(seed)
    start = np.round(STARTED + rng.uniform(0, DURATION_S, n), 6)
    start[0] = STARTED + WARMUP_S  # at the window's start exactly: measured
    latency = np.round(rng.lognormal(np.log(12.0 * scale), 0.6, n), 3)
    latency[rng.random(n) < 0.01] *= 40
    latency = np.round(latency, 3)
    which = rng.integers(0, len(NAMES), n)
    failed = rng.random(n) < 0.03
    kind = rng.integers(0, len(FAILURES), n)
    out = []
    for i in np.argsort(start + latency / 1000.0, kind="stable"):
        status, error = FAILURES[kind[i]] if failed[i] else (200, "")
        ok = not failed[i]
        out.append(
            RequestRecord(
                float(start[i]), float(latency[i]), NAMES[which[i]], "POST", status, 117 * ok, ok, error
            )
        )
    return out


def parquet_run(path: Path, recs: list[RequestRecord]) -> Path:
    """An analyzed run directory of format 2 (``requests.parquet``, in row groups of 1,000)."""
    path.mkdir(parents=True)
    rundir.write_json(
        path / rundir.META,
        {
            "format": 2,
            "run_id": path.name,
            "target": "http://127.0.0.1:8000",
            "scenario": "kserve_v2",
            "status": rundir.STATUS_COMPLETE,
            "started_unix_s": STARTED,
            "ended_unix_s": STARTED + DURATION_S,
            "settings": {"users": 8, "warmup_s": WARMUP_S, "duration_s": DURATION_S},
        },
    )
    write_requests(path / rundir.REQUESTS, recs)
    convert_csv(path / rundir.REQUESTS, path / rundir.REQUESTS_PARQUET, row_group_rows=1_000)
    (path / rundir.REQUESTS).unlink()
    (path / rundir.USERS).write_text(
        "unix_s,users\n" + "".join(f"{STARTED + i:.3f},8\n" for i in range(int(DURATION_S)))
    )
    analyze_run(path)
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("bounded-compare")
    base = parquet_run(root / "base", records(3_000, seed=1, scale=1.0))
    cand = parquet_run(root / "cand", records(9_000, seed=2, scale=1.15))
    return base, cand


@pytest.fixture(autouse=True)
def small_sample(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bootstrap, "MAX_LATENCIES", MAX_LATENCIES)


@pytest.fixture
def in_memory(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every run read into memory, as `load_run` reads the runs the store does not cover."""
    with monkeypatch.context() as m:
        m.setattr(rundata, "open_bounded", lambda path, meta: None)
        yield


def compare_files(runs: tuple[Path, Path], out: Path) -> tuple[dict[str, Any], str]:
    assert main(["compare", str(runs[0]), str(runs[1]), "--out", str(out), "--resamples", "200"]) == 0
    return json.loads((out / "compare.json").read_text()), (out / "compare.md").read_text()


def test_compare_through_the_store_is_the_comparison_in_memory(
    runs: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as m:
        m.setattr(rundata, "open_bounded", lambda path, meta: None)
        memory_json, memory_md = compare_files(runs, tmp_path / "memory")
    no_frames(monkeypatch, rundata)
    store_json, store_md = compare_files(runs, tmp_path / "store")
    assert (tmp_path / "store" / "compare.html").is_file()
    assert store_json == memory_json
    assert store_md == memory_md
    # The comparison has what could differ: bootstrapped intervals of latency and rates.
    metrics = store_json["metrics"]
    assert metrics["latency_ms.p99"]["ci"] is not None and metrics["throughput_rps"]["ci"] is not None
    assert metrics["latency_ms.p50"]["verdict"] == "worse"


def test_a_stored_run_keeps_counts_and_fetches_the_sampled_latencies(
    runs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as m:
        m.setattr(rundata, "open_bounded", lambda path, meta: None)
        memory = [load_run(path) for path in runs]
    no_frames(monkeypatch, rundata)
    stored = [load_run(path) for path in runs]
    for mem, run in zip(memory, stored, strict=True):
        assert run.stored is not None and run.latency_ms is None and run.ok is None and run.second is None
        assert mem.stored is None and mem.latency_ms is not None and mem.second is not None
        for got, want in zip(run.second_counts(), mem.second_counts(), strict=True):
            np.testing.assert_array_equal(got, want)
        # File order, across the Parquet file's row groups: the in-memory arrays' order.
        values, seconds = run.stored.take(None)
        want_seconds = mem.second[mem.ok] if mem.ok is not None else None
        np.testing.assert_array_equal(values, mem.latency_ms)
        np.testing.assert_array_equal(seconds, want_seconds)
        at = np.array([0, 5, 999, 1_000, 1_001, run.stored.size - 1])
        picked = run.stored.take(at)
        np.testing.assert_array_equal(picked[0], mem.latency_ms[at])
        assert run.series["service_time_ms"] is run.stored  # a closed loop: one series
        # The overlay plots' curves: the same percentiles, from the store's sorted pass.
        store_curves, memory_curves = latency_curves(run), latency_curves(mem)
        np.testing.assert_array_equal(store_curves.y, memory_curves.y)
        np.testing.assert_allclose(store_curves.at_q, memory_curves.at_q, rtol=1e-12)
        assert store_curves.positive == memory_curves.positive
    assert stored[1].stored is not None and stored[1].stored.size > MAX_LATENCIES  # subsampled


def test_the_sample_is_fetched_only_when_read(
    runs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    run = load_run(runs[1])
    assert run.stored is not None
    taken: list[int] = []
    take = run.stored.take
    monkeypatch.setattr(run.stored, "take", lambda positions: taken.append(len(positions)) or take(positions))
    boot = bootstrap.RunBootstrap(run, 50, np.random.default_rng(0))
    assert taken == []  # drawn, not fetched: a closed loop's service time is never read
    assert boot.series_star("latency_ms", "p99", boot.counts) is not None
    assert taken == [MAX_LATENCIES]


def test_variants_and_history_of_stored_runs(
    runs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as m:
        m.setattr(rundata, "open_bounded", lambda path, meta: None)
        memory = variants_table([load_variant(p, p.name) for p in runs], resamples=200)
    no_frames(monkeypatch, rundata)
    variants = [load_variant(p, p.name) for p in runs]
    assert all(isinstance(v.run, RunData) and v.run.stored is not None for v in variants)
    table = variants_table(variants, resamples=200)
    assert table == memory
    assert table["variants"][1]["vs_baseline"]["latency_ms.p99"]["ci"] is not None
    rows = load_history(list(runs), resamples=100)
    assert [row["metrics"]["latency_ms.p99"]["value"] for row in rows] == [
        rundir.read_json(p / rundir.SUMMARY)["latency_ms"]["p99"] for p in runs
    ]
