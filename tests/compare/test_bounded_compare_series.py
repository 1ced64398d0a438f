"""Every series `loadbench compare` bootstraps, read through a run's store
(`loadbench.compare.runstore.StoredSeries`): open loops (latency from the due time, service time
from the send), LLM runs (TTFT, ITL, TPOT, end-to-end, tokens per second) and media (RTF) give
the comparison they give read into memory; labels are counted by second and class."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from bounded_runs import no_frames, open_load, records, write_run

from loadbench.analyze.analyzer import analyze_run
from loadbench.analyze.store import RecordStore
from loadbench.analyze.window import window_start_unix_s
from loadbench.compare import bootstrap, rundata
from loadbench.compare.compare import compare_runs
from loadbench.compare.rundata import RunData, load_run
from loadbench.compare.runstore import StoredRun, StoredSeries
from loadbench.record import rundir
from loadbench.record.columnar import convert_csv, read_run_requests
from loadbench.record.records import RequestRecord
from loadbench.variants.variants import load_variant, variants_table

MAX_LATENCIES = 1_000  # the bootstrap's subsample, small: most series exceed it
DAMAGED_GAP = "7777.125"  # rewritten as a word that is not a number
OPEN_LOAD = open_load(85.0)


def llm_records(n: int, seed: int, open_loop: bool, streams: bool = True) -> list[RequestRecord]:
    """Requests of every LLM kind (streamed, not streamed, empty, one chunk, plain, failed after
    a first token, a damaged gap), some with media; an open loop's sent late now and then."""
    rng = np.random.default_rng(seed)
    out = []
    for r in records(n, seed=seed):
        kind = int(rng.integers(0, 7))
        tokens = int(rng.integers(2, 30))
        gaps: list[Any] = [round(float(g), 3) for g in rng.exponential(8.0 * (1 + seed % 2), tokens - 1)]
        extras: dict[str, Any] = {"output_tokens": tokens, "tokens_source": "usage"}
        if streams:
            extras.update(ttft_ms=round(float(rng.lognormal(np.log(25.0), 0.5)), 3), itl_ms=gaps)
        if kind == 1:  # not streamed
            extras.pop("ttft_ms", None), extras.pop("itl_ms", None)
        elif kind == 2:  # an empty answer
            extras.update(output_tokens=0, itl_ms=[]) if streams else extras.update(output_tokens=0)
        elif kind == 3 and streams:  # one chunk
            extras.update(output_tokens=1, itl_ms=[])
        elif kind == 4:
            extras = {}
        elif kind == 5 and streams and rng.random() < 0.05:
            extras["itl_ms"] = [*gaps, float(DAMAGED_GAP)]
        if rng.random() < 0.3:
            extras["media_s"] = float(
                rng.choice([0.0, round(float(rng.uniform(0.01, 0.05)), 3)], p=[0.1, 0.9])
            )
        if not r.ok and streams and rng.random() < 0.5:
            extras = {"ttft_ms": 8.0}  # failed after its first token
        lateness = float(rng.choice([0.0002, 0.001, 0.030], p=[0.7, 0.25, 0.05]))
        intended = round(r.start_unix_s - lateness, 6) if open_loop else None
        out.append(dataclasses.replace(r, extras=extras or None, intended_unix_s=intended))
    return out


def labeled(recs: list[RequestRecord], seed: int) -> list[RequestRecord]:
    rng = np.random.default_rng(seed)
    out = []
    for r in recs:
        extras: dict[str, Any] = {}
        if rng.random() < 0.8:
            extras["expected"] = str(rng.integers(0, 4))
            if rng.random() < 0.9:
                extras["predicted"] = extras["expected"] if rng.random() < 0.7 else str(rng.integers(0, 5))
        out.append(dataclasses.replace(r, extras=extras or None))
    return out


def analyzed(path: Path, recs: list[RequestRecord], open_loop: bool) -> Path:
    """An analyzed run of format 2, in row groups of 500 records (a gap in its CSV damaged)."""
    settings: dict[str, Any] = {"load": OPEN_LOAD} if open_loop else {}
    run = write_run(path, recs, settings=settings)
    csv = run / rundir.REQUESTS
    csv.write_text(csv.read_text().replace(DAMAGED_GAP, "x"))
    convert_csv(csv, run / rundir.REQUESTS_PARQUET, row_group_rows=500)
    csv.unlink()
    rundir.write_json(run / rundir.META, {**rundir.read_meta(run), "format": 2})
    # The in-memory analyzer's summary: what both readings compare (the bounded one is its own test).
    analyze_run(run, requests=read_run_requests(run))
    return run


RUNS = {
    "open-llm": lambda root: [
        analyzed(root / f"open{i}", llm_records(n, seed, open_loop=True), open_loop=True)
        for i, (n, seed) in enumerate([(1_500, 1), (2_500, 2)])
    ],
    "closed-unstreamed": lambda root: [
        analyzed(root / f"closed{i}", llm_records(n, seed, open_loop=False, streams=False), open_loop=False)
        for i, (n, seed) in enumerate([(1_500, 3), (2_000, 4)])
    ],
}


@pytest.fixture(scope="module", params=sorted(RUNS))
def runs(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return RUNS[request.param](tmp_path_factory.mktemp(request.param))


@pytest.fixture(autouse=True)
def small_sample(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bootstrap, "MAX_LATENCIES", MAX_LATENCIES)


@pytest.fixture
def memory(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    with monkeypatch.context() as m:
        m.setattr(rundata, "open_bounded", lambda path, meta: None)
        yield


def compare_json(runs: list[Path]) -> dict[str, Any]:
    """compare.json of the two runs (the CLI's plots and pages: `test_bounded_compare`)."""
    loaded = [load_run(path) for path in runs]
    result: dict[str, Any] = json.loads(json.dumps(compare_runs(loaded[0], loaded[1], resamples=100)))
    return result


def test_compare_of_every_series_through_the_store_is_the_comparison_in_memory(
    runs: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as m:
        m.setattr(rundata, "open_bounded", lambda path, meta: None)
        want = compare_json(runs)
    no_frames(monkeypatch, rundata)
    got = compare_json(runs)
    assert got == want
    metrics = got["metrics"]
    # What could differ is there: intervals of each kind of series, and of the token rate.
    series = ["e2e_ms.p50", "rtf.p50", "rtf.realtime_fraction"]
    streamed = "ttft_ms.p50" in metrics
    assert streamed == ("open" in runs[0].name)
    series += ["ttft_ms.p50", "itl_ms.p99", "tpot_ms.p99"] if streamed else []
    assert all(metrics[key]["ci"] is not None for key in [*series, "tokens.output_per_s"]), metrics.keys()


def test_each_stored_series_is_the_series_in_memory(
    runs: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as m:
        m.setattr(rundata, "open_bounded", lambda path, meta: None)
        memory = [load_run(path) for path in runs]
    no_frames(monkeypatch, rundata)
    for mem, run in zip(memory, [load_run(path) for path in runs], strict=True):
        assert run.stored is not None and mem.stored is None
        assert run.series.keys() == mem.series.keys()
        assert ("itl_ms" in run.series) == ("open" in run.path.name)
        open_loop = "open" in run.path.name
        assert (run.series["service_time_ms"] is run.stored) is not open_loop
        for key, stored in run.series.items():
            values, seconds = mem.series[key]  # type: ignore[misc]
            assert isinstance(stored, StoredSeries) and stored.size == values.size, key
            if stored.size == 0:  # no stream: no TTFT, no TPOT, in either path
                assert not open_loop and key in ("ttft_ms", "tpot_ms")
                continue
            got_values, got_seconds = stored.take(None)
            np.testing.assert_array_equal(got_values, values, err_msg=key)
            np.testing.assert_array_equal(got_seconds, seconds, err_msg=key)
            # Positions across the file's row groups, in file order.
            at = np.unique(np.array([0, 1, 499, 500, 501, values.size // 2, values.size - 1]))
            at = at[at < values.size]
            picked, picked_seconds = stored.take(at)
            np.testing.assert_array_equal(picked, values[at], err_msg=key)
            np.testing.assert_array_equal(picked_seconds, seconds[at], err_msg=key)
            percents = [0.0, 12.5, 50.0, 99.9, 100.0]
            np.testing.assert_array_equal(stored.percentiles(percents), np.percentile(values, percents))
        assert run.tokens_per_second is not None and mem.tokens_per_second is not None
        np.testing.assert_array_equal(run.tokens_per_second, mem.tokens_per_second)
        assert run.tokens_per_second.sum() > 0
        for got, want in zip(run.second_counts(), mem.second_counts(), strict=True):
            np.testing.assert_array_equal(got, want)
    # An open loop: latency from the due time, service time from the send.
    if open_loop:
        stored_run = run.stored
        assert stored_run is not None
        latency, _ = stored_run.take(None)
        service, _ = run.series["service_time_ms"].take(None)  # type: ignore[union-attr]
        assert (latency >= service).all() and (latency > service).any()


def test_the_bootstrap_of_stored_series_is_the_bootstrap_in_memory(
    runs: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as m:
        m.setattr(rundata, "open_bounded", lambda path, meta: None)
        want = bootstrap.RunBootstrap(load_run(runs[1]), 60, np.random.default_rng(5))
    got = bootstrap.RunBootstrap(load_run(runs[1]), 60, np.random.default_rng(5))
    assert got.sorted.keys() == want.sorted.keys()
    for key in want.sorted:
        for stat in ("p50", "p99", "mean"):
            a, b = got.series_star(key, stat, got.counts), want.series_star(key, stat, want.counts)
            assert (a is None) == (b is None), key
            if a is not None and b is not None:
                np.testing.assert_array_equal(a, b, err_msg=f"{key}.{stat}")
    np.testing.assert_array_equal(
        got.rates(got.counts)["tokens.output_per_s"], want.rates(want.counts)["tokens.output_per_s"]
    )


def test_variants_of_stored_llm_runs(runs: list[Path], monkeypatch: pytest.MonkeyPatch) -> None:
    with monkeypatch.context() as m:
        m.setattr(rundata, "open_bounded", lambda path, meta: None)
        want = variants_table([load_variant(p, p.name) for p in runs], resamples=100)
    no_frames(monkeypatch, rundata)
    variants = [load_variant(p, p.name) for p in runs]
    assert all(isinstance(v.run, RunData) and v.run.stored is not None for v in variants)
    assert variants_table(variants, resamples=100) == want


def test_labels_are_counted_by_second_and_class(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = analyzed(tmp_path / "labeled", labeled(llm_records(2_000, 6, open_loop=True), 6), open_loop=True)
    with monkeypatch.context() as m:
        m.setattr(rundata, "open_bounded", lambda path, meta: None)
        mem = load_run(run)
        want_table = variants_table([load_variant(run, "labeled")], resamples=100)
    assert mem.stored is None
    want = mem.label_counts()
    assert want is not None and want["count"].sum() == mem.second.size  # type: ignore[union-attr]
    assert set(want["predicted"]) >= {"", "4"} and not want["ok"].all()
    with RecordStore.open(run) as store:
        stored = StoredRun.open(store, window_start_unix_s(mem.meta))
        assert stored.labels is not None
        assert stored.labels.to_dict("list") == want.to_dict("list")
        assert stored.labels.dtypes.to_dict() == want.dtypes.to_dict()
    no_frames(monkeypatch, rundata)
    kept = load_run(run)
    assert kept.stored is not None  # a labeled run is read through its store too
    assert kept.label_counts().to_dict("list") == want.to_dict("list")  # type: ignore[union-attr]
    assert variants_table([load_variant(run, "labeled")], resamples=100) == want_table
    monkeypatch.undo()
    plain = analyzed(tmp_path / "plain", records(300), open_loop=False)
    assert load_run(plain).label_counts() is None
