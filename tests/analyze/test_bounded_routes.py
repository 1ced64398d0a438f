"""The bounded analyzer's ``replicas``, ``targets``, ``cold_start`` and ``stages``
(`loadbench.analyze.bounded_routes`) equal the in-memory analyzer's, figure for figure."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from bounded_runs import STARTED, assert_same, open_load, records, write_run

from loadbench.analyze import analyzer, bounded
from loadbench.analyze.store import RecordStore
from loadbench.errors import RunDirError
from loadbench.record import rundir
from loadbench.record.columnar import read_run_requests
from loadbench.record.records import RequestRecord
from loadbench.record.series import read_samples, read_users

FORMATS = pytest.mark.parametrize("parquet", [False, True], ids=["csv", "parquet"])
# A closed loop in CSV, an open loop in Parquet: each format and each loop once.
WAYS = pytest.mark.parametrize(
    ("parquet", "open_loop"), [(False, False), (True, True)], ids=["csv-closed", "parquet-open"]
)
TARGETS = ("http://a:8000", "http://b:8000", "http://c:8000")
IDLE_TARGET = "http://idle:8000"
OPEN_LOAD = open_load(100.0)


def _open(recs: list[RequestRecord], seed: int) -> list[RequestRecord]:
    """The same records as an open loop's, each sent a little after it was due."""
    rng = np.random.default_rng(seed)
    lateness = rng.choice([0.0002, 0.001, 0.004, 0.030], size=len(recs), p=[0.6, 0.3, 0.08, 0.02])
    return [
        dataclasses.replace(r, intended_unix_s=round(r.start_unix_s - float(late), 6))
        for r, late in zip(recs, lateness, strict=True)
    ]


def _routed(n: int, seed: int) -> list[RequestRecord]:
    """Records of three replicas of skewed speed and error rates, a fourth that only ever failed,
    answers without the replica header and failures without an answer; sent round robin to three
    targets, a few to one the run did not list and a few to none."""
    rng = np.random.default_rng(seed)
    out = []
    for i, r in enumerate(records(n, seed=seed)):
        replica = str(rng.choice(["r1", "r2", "r3"], p=[0.5, 0.3, 0.2]))
        latency = round(r.latency_ms * {"r1": 1.0, "r2": 1.5, "r3": 4.0}[replica], 3)
        ok, status, error = r.ok, r.status, r.error
        if replica == "r3" and rng.random() < 0.1:
            ok, status, error = False, 500, "HTTPError: 500 Server Error"
        if not ok and status == 503:
            replica = "r4"  # the replica that never answered well
        elif status == 0 or rng.random() < 0.05:
            replica = ""  # no answer, or an answer without the header
        target = TARGETS[i % len(TARGETS)]
        if i % 97 == 0:
            target = "http://unlisted:8000"
        elif i % 89 == 0:
            target = ""
        out.append(
            dataclasses.replace(
                r, latency_ms=latency, ok=ok, status=status, error=error, replica=replica, target=target
            )
        )
    return out


@WAYS
def test_replicas_and_targets_give_the_same_sections(tmp_path: Path, parquet: bool, open_loop: bool) -> None:
    recs = _routed(2000, seed=21)
    settings: dict[str, Any] = {
        "replica_header": "X-Served-By",
        "targets": [*TARGETS, IDLE_TARGET],
        "balance": "round_robin",
    }
    if open_loop:
        recs, settings = _open(recs, 22), {**settings, "load": OPEN_LOAD}
    summary = assert_same(write_run(tmp_path / "run", recs, parquet=parquet, settings=settings))
    replicas = summary["replicas"]
    rows = {row["replica"]: row for row in replicas["replicas"]}
    assert list(rows) == ["r1", "r2", "r3", "r4"] and replicas["source"] == "header X-Served-By"
    assert rows["r3"]["latency_ms"]["p50"] > 2 * rows["r1"]["latency_ms"]["p50"]
    assert rows["r3"]["errors"] > 0 and rows["r4"]["errors"] == rows["r4"]["requests"] > 0
    assert rows["r4"]["latency_ms"]["p50"] is None and replicas["unattributed"] > 0
    targets = summary["targets"]
    urls = [row["url"] for row in targets["targets"]]
    assert urls == [*TARGETS, IDLE_TARGET, "http://unlisted:8000"] and targets["policy"] == "round_robin"
    assert targets["targets"][3]["requests"] == 0 and targets["targets"][3]["latency_ms"]["p50"] is None
    assert 1.5 < targets["imbalance"] < 1.8 and targets["unattributed"] > 0
    notices = "\n".join(summary["notices"])
    for said in ("named no replica", "got no request", "not among the run's targets", "named no target"):
        assert said in notices


def test_replicas_nobody_named_and_targets_named_only_in_the_warmup(tmp_path: Path) -> None:
    # The header asked for, no answer carrying it; one target listed, named by warmup records only.
    recs = [
        dataclasses.replace(r, target="http://a:8000" if r.start_unix_s < STARTED + 5.0 else "")
        for r in records(1500, seed=23)
    ]
    settings = {"replica_header": "X-Served-By", "replica_field": "host", "targets": ["http://a:8000"]}
    summary = assert_same(write_run(tmp_path / "run", recs, parquet=True, settings=settings))
    assert (
        summary["replicas"]["count"] == 0
        and summary["replicas"]["unattributed"] == summary["requests"]["total"]
    )
    assert summary["replicas"]["source"] == "header X-Served-By, field host"
    assert any("no answer named its replica" in n for n in summary["notices"])
    (target,) = summary["targets"]["targets"]
    assert target["requests"] == 0 and summary["targets"]["unattributed"] == summary["requests"]["total"]


@FORMATS
def test_replicas_named_without_the_setting_and_one_replica(tmp_path: Path, parquet: bool) -> None:
    recs = [dataclasses.replace(r, replica="only") for r in records(1200, seed=24)]
    summary = assert_same(write_run(tmp_path / "run", recs, parquet=parquet))
    (row,) = summary["replicas"]["replicas"]
    assert summary["replicas"]["source"] == "records" and summary["replicas"]["imbalance"] == 1.0
    assert row["latency_ms"]["p99"] == summary["latency_ms"]["p99"] and "targets" not in summary


def _first_failed(recs: list[RequestRecord], ties: int) -> list[RequestRecord]:
    """The first request sent failed; the next ``ties`` were sent at the same µs as it."""
    first = min(range(len(recs)), key=lambda i: recs[i].start_unix_s)
    start = recs[first].start_unix_s
    out = list(recs)
    out[first] = dataclasses.replace(
        out[first], ok=False, status=503, error="HTTPError: 503", latency_ms=900.0
    )
    for i in sorted(range(len(recs)), key=lambda i: recs[i].start_unix_s)[1 : ties + 1]:
        out[i] = dataclasses.replace(out[i], start_unix_s=start, latency_ms=round(400.0 + i / 1000, 3))
    return out


@pytest.mark.parametrize(
    ("parquet", "open_loop", "warmup_s"),
    [(False, False, 5.0), (True, True, 5.0), (True, False, 0.0), (False, True, 0.0)],
    ids=["csv-closed-warmup", "parquet-open-warmup", "parquet-closed-no-warmup", "csv-open-no-warmup"],
)
def test_the_cold_start_gives_the_same_section(
    tmp_path: Path, parquet: bool, open_loop: bool, warmup_s: float
) -> None:
    recs = _first_failed(records(1500, seed=25), ties=5)
    settings: dict[str, Any] = {"cold_start": 8, "preflight": warmup_s > 0, "warmup_s": warmup_s}
    if open_loop:
        recs, settings = _open(recs, 26), {**settings, "load": OPEN_LOAD}
    summary = assert_same(write_run(tmp_path / "run", recs, parquet=parquet, settings=settings))
    cold = summary["cold_start"]
    assert cold["requests"] == 8 and cold["errors"] >= 1 and cold["first_ms"] is None
    assert cold["latencies_ms"][0] is None and cold["latency_ms"]["p50"] >= 400.0
    assert cold["steady_p50_ms"] < 50.0 and cold["p50_vs_steady"] > 5
    assert cold["preflight"] == (warmup_s > 0)
    assert any("--no-preflight" in n for n in summary["notices"]) == (warmup_s > 0)


@pytest.mark.parametrize("size", [1, 2, 9], ids=["one", "two", "nine"])
def test_a_cold_start_longer_than_the_run_and_small_steady_states(tmp_path: Path, size: int) -> None:
    # A run of a few requests: every one of them, or all but one or two, is among the first.
    recs = records(size + 1, seed=27)
    settings = {"cold_start": size, "warmup_s": 0.0}
    summary = assert_same(write_run(tmp_path / "run", recs, parquet=True, settings=settings))
    assert summary["cold_start"]["requests"] == size
    short = assert_same(write_run(tmp_path / "short", recs, parquet=True, settings={"cold_start": 50}))
    assert short["cold_start"]["requests"] == size + 1 and short["cold_start"]["steady_p50_ms"] is None
    assert any("fewer than --cold-start 50" in n for n in short["notices"])


STAGES = [
    {"name": "ramp", "start_s": 0.0, "end_s": 12.0, "start_level": 2.0, "end_level": 8.0},
    {"name": "hold", "start_s": 12.0, "end_s": 27.5, "start_level": 8.0, "end_level": 8.0},
    {"name": "step", "start_s": 27.5, "end_s": 45.0, "start_level": 12.0, "end_level": 12.0},
    {"name": "after", "start_s": 45.0, "end_s": 50.0, "start_level": 1.0, "end_level": 1.0},
]


@WAYS
def test_stages_give_the_same_figures(tmp_path: Path, parquet: bool, open_loop: bool) -> None:
    recs = records(2000, seed=28)
    settings: dict[str, Any] = {"stages": STAGES}
    if open_loop:
        recs, settings = _open(recs, 29), {**settings, "load": OPEN_LOAD}
    summary = assert_same(write_run(tmp_path / "run", recs, parquet=parquet, settings=settings))
    ramp, hold, step, after = summary["stages"]
    assert ramp["in_warmup"] > 0 and 0 < ramp["requests"] < hold["requests"]
    assert step["measured_s"] == 12.5 and step["errors"] > 0 and step["latency_ms"]["mean"] is not None
    assert after["requests"] == 0 and after["latency_ms"]["p50"] is None
    assert sum(s["requests"] for s in summary["stages"]) == summary["requests"]["total"]


def test_a_stage_that_is_not_one_fails_the_same_either_way(tmp_path: Path) -> None:
    run = write_run(
        tmp_path / "run", records(300, seed=30), parquet=True, settings={"stages": [{"users": 4}]}
    )
    meta = rundir.read_meta(run)
    users, samples = read_users(run / rundir.USERS), read_samples(run / rundir.SAMPLES)
    with pytest.raises(RunDirError) as in_memory:
        analyzer.compute_summary(meta, read_run_requests(run), users, samples)
    with RecordStore.open(run) as store, pytest.raises(RunDirError) as from_store:
        assert bounded.unsupported(meta, store) is None
        bounded.bounded_summary(meta, store, users, samples)
    assert str(from_store.value) == str(in_memory.value)


def test_everything_at_once_on_an_open_loop(tmp_path: Path) -> None:
    recs = _open(_first_failed(_routed(2500, seed=31), ties=2), 32)
    settings = {
        "replica_header": "X-Served-By",
        "targets": list(TARGETS),
        "cold_start": 5,
        # A stage over the others: each request counts in every stage it started in.
        "stages": [*STAGES[:3], {**STAGES[1], "name": "over", "start_s": 6.0, "end_s": 30.0}],
        "load": OPEN_LOAD,
    }
    summary = assert_same(write_run(tmp_path / "run", recs, parquet=True, settings=settings))
    assert {"replicas", "targets", "cold_start", "stages"} <= set(summary)
    ramp, hold, step, over = summary["stages"]
    assert hold["requests"] < over["requests"] < ramp["requests"] + hold["requests"] + step["requests"]
