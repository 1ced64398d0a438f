"""The bounded analyzer's LLM keys (`loadbench.analyze.bounded_llm`) equal the in-memory ones
(`loadbench.analyze.llm_metrics.llm_summary`), key order and notices included."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from bounded_runs import STARTED, both_ways, open_load, records, to_parquet, write_run

from loadbench.analyze import analyzer, bounded, bounded_llm
from loadbench.analyze.store import RecordStore
from loadbench.record import rundir
from loadbench.record.columnar import read_run_requests
from loadbench.record.records import RequestRecord
from loadbench.record.series import read_samples, read_users

PER_REQUEST = ["ttft<40ms", "tpot<=12ms", "itl<60ms", "e2e<900ms", "latency<=0.5s"]
GATES = ["ttft_ms.p99<500", "ttft_ms.p999<500", "itl_p999<100", "tpot_ms.p999<50", "e2e_p999<2s"]
# Gaps written as these numbers are then rewritten in the CSV file into damaged text.
DAMAGE = {"7777.125": "x", "6666.125": "", "5555.125": "1e"}


def same(run: Path) -> dict[str, Any]:
    """Both summaries equal, keys in the same order (JSON keeps it), series equal."""
    (frame_summary, frame_series), (store_summary, store_series) = both_ways(run)
    assert store_summary == frame_summary
    _same_order(store_summary, frame_summary)
    pd.testing.assert_frame_equal(store_series, frame_series)
    return frame_summary


def _same_order(a: Any, b: Any) -> None:
    if isinstance(a, dict):
        assert list(a) == list(b)
        for key in a:
            _same_order(a[key], b[key])
    elif isinstance(a, list):
        for x, y in zip(a, b, strict=True):
            _same_order(x, y)


def llm_records(
    n: int, seed: int, open_loop: bool = False, unknown_input: bool = True
) -> list[RequestRecord]:
    """`records`' requests as LLM calls of every kind: streamed with usage or counted tokens,
    not streamed, empty answers, one-chunk streams, old records without an input source,
    tokenizer counts, plain requests, and failures that had a first token."""
    rng = np.random.default_rng(seed)
    out = []
    for r in records(n, seed=seed):
        kind = int(rng.integers(0, 9))
        tokens = int(rng.integers(2, 30))
        gaps = [round(float(g), 3) for g in rng.exponential(8.0, tokens - 1)]
        ttft = round(float(rng.lognormal(np.log(25.0), 0.5)), 3)
        extras: dict[str, Any] = {
            "ttft_ms": ttft,
            "output_tokens": tokens,
            "tokens_source": "usage",
            "input_tokens": int(rng.integers(5, 400)),
            "input_tokens_source": "usage",
            "itl_ms": gaps,
        }
        if kind == 1:  # no usage: counted chunks, prompt unknown unless a tokenizer counted it
            extras.update(tokens_source="counted", input_tokens_source="tokenizer")
            if unknown_input:
                del extras["input_tokens"], extras["input_tokens_source"]
        elif kind == 2:  # not streamed
            del extras["ttft_ms"], extras["itl_ms"]
        elif kind == 3:  # an empty answer, streamed or not
            extras.update(output_tokens=0, itl_ms=[])
            if rng.random() < 0.5:
                del extras["ttft_ms"]
        elif kind == 4:  # one chunk
            extras.update(output_tokens=int(rng.integers(1, 4)), itl_ms=[])
        elif kind == 5:  # an older record: no input source
            del extras["input_tokens_source"]
        elif kind == 6:
            extras["input_tokens_source"] = "tokenizer"
        elif kind == 7:
            extras = {}
        if not r.ok and rng.random() < 0.5:
            extras = {"ttft_ms": ttft}  # failed after its first token
        lateness = float(rng.choice([0.0002, 0.001, 0.030], p=[0.7, 0.25, 0.05]))
        intended = round(r.start_unix_s - lateness, 6) if open_loop else None
        out.append(dataclasses.replace(r, extras=extras or None, intended_unix_s=intended))
    return out


def damaged_run(path: Path, recs: list[RequestRecord], parquet: bool, **meta: Any) -> Path:
    """A run whose CSV has the `DAMAGE` markers rewritten (before any conversion to Parquet)."""
    run = write_run(path, recs, **meta)
    csv = run / rundir.REQUESTS
    text = csv.read_text()
    for marker, word in DAMAGE.items():
        text = text.replace(marker, word)
    csv.write_text(text)
    if parquet:
        to_parquet(run)
    return run


@pytest.mark.parametrize("parquet", [False, True])
@pytest.mark.parametrize("open_loop", [False, True])
def test_an_llm_run_of_every_kind_of_request_gives_the_same_summary(
    tmp_path: Path, parquet: bool, open_loop: bool
) -> None:
    settings: dict[str, Any] = {"realtime_tokens_per_s": 80, "slos": [*PER_REQUEST, *GATES]}
    if open_loop:
        settings["load"] = open_load(85.0)
    run = write_run(tmp_path / "run", llm_records(3000, 5, open_loop), parquet=parquet, settings=settings)
    summary = same(run)
    assert summary["ttft_ms"]["p50"] is not None and summary["itl_ms"]["p99"] is not None
    assert summary["tokens"]["source"] == "mixed" and summary["tokens"]["input_total"] is None
    assert summary["tokens"]["input_source"] == "mixed"
    assert 0 < summary["llm_realtime"]["fraction_ahead"] < 1
    assert 0 < summary["goodput"]["requests"] < summary["requests"]["ok"]
    assert [s["expr"] for s in summary["goodput"]["slos"]] == PER_REQUEST
    assert all(0 < s["met"] <= s["measured"] for s in summary["goodput"]["slos"])
    said = " ".join(summary["notices"])
    assert "counted from stream chunks" in said and "are unknown" in said and "no output token" in said
    assert "ttft_ms.p999, which" in said  # validity: the gate rests on the streams, not every success
    assert ("schedule" in summary) is open_loop


def test_known_inputs_give_a_total_and_no_realtime_key_without_a_pace(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", llm_records(1500, 6, unknown_input=False), parquet=True)
    summary = same(run)
    assert summary["tokens"]["input_total"] > 0 and summary["tokens"]["input_source"] == "mixed"
    assert "llm_realtime" not in summary and summary["goodput"]["slos"] == []
    assert list(summary)[list(summary).index("ttft_ms") :][:7] == [
        "ttft_ms", "itl_ms", "tpot_ms", "e2e_ms", "tokens", "goodput_rps", "goodput"
    ]  # fmt: skip


def _stream(i: int, gaps: list[float]) -> RequestRecord:
    """A successful stream of these gaps, a token each, in the window."""
    extras = {"ttft_ms": 20.0, "output_tokens": len(gaps) + 1, "itl_ms": gaps, "tokens_source": "usage"}
    return RequestRecord(STARTED + 6 + 0.01 * i, 80.0 + i % 7, "/chat", "POST", 200, 50, True, extras=extras)


@pytest.mark.parametrize("parquet", [False, True])
def test_damaged_gaps_spoil_their_requests_alike(tmp_path: Path, parquet: bool) -> None:
    nan = float("nan")
    streams = [
        [1.0, 7777.125, 2.0],  # "1.000 x 2.000"
        [-1.0],
        [3.0, nan, 4.0],
        [5.0, float("inf")],
        [nan],  # the whole field "nan"
        [1.0, 6666.125, 2.0],  # two spaces: two gaps, not damaged
        [4.0, 5555.125],  # "1e": not a number
        [2.0, 3.0],
        [],
    ]
    recs = [_stream(i, gaps) for i, gaps in enumerate(streams * 30)]
    recs += records(600, seed=8)
    settings = {"realtime_tokens_per_s": 100, "slos": ["itl<4.5ms", "ttft<30", "tpot<50ms"]}
    summary = same(damaged_run(tmp_path / "run", recs, parquet, settings=settings))
    assert any(n.startswith("180 request(s) hold inter-token gaps") for n in summary["notices"])
    assert summary["llm_realtime"] == {"tokens_per_s": 100.0, "fraction_ahead": 0.333333, "requests": 270}
    assert summary["itl_ms"]["max"] == 5.0 and summary["itl_ms"]["min"] == 1.0
    # "-1" is a number: its request's largest gap is -1, which meets an itl bound.
    assert summary["goodput"]["slos"][0]["met"] == 4 * 30  # and two spaces, one chunk, [2, 3]


def test_a_reader_kept_ahead_of_exactly_at_the_boundary(tmp_path: Path) -> None:
    for pace, streams, ahead in (
        (10, [[100.0] * 5, [100.001, 99.999], [50.0, 150.0], [], [150.0, 50.0]], 0.6),
        (3, [[333.333] * 3, [333.334], [0.0, 666.667], [0.0, 666.666]], 0.5),
    ):
        recs = [_stream(i, gaps) for i, gaps in enumerate(streams * 20)] + records(300, seed=9)
        run = write_run(tmp_path / f"pace{pace}", recs, settings={"realtime_tokens_per_s": pace})
        summary = same(run)
        assert summary["llm_realtime"]["fraction_ahead"] == ahead


def test_per_request_slos_without_streams_or_without_llm_data(tmp_path: Path) -> None:
    unstreamed = [
        dataclasses.replace(
            r, extras={"output_tokens": 1 + i % 3, "tokens_source": "usage", "input_tokens": 4}
        )
        for i, r in enumerate(records(800, seed=11))
    ]
    slos = ["itl<20ms", "tpot<10ms", "ttft<100ms"]
    summary = same(write_run(tmp_path / "unstreamed", unstreamed, parquet=True, settings={"slos": slos}))
    assert [s["measured"] for s in summary["goodput"]["slos"]] == [0, 0, 0]
    assert sum("every request misses it" in n for n in summary["notices"]) == 3
    assert summary["ttft_ms"]["p50"] is None and summary["tokens"]["per_request_output_per_s"]["p50"] is None
    plain = same(write_run(tmp_path / "plain", records(800, seed=11), settings={"slos": ["latency<15ms"]}))
    assert "ttft_ms" not in plain and plain["goodput"]["slos"][0]["expr"] == "latency<15ms"
    assert 0 < plain["goodput"]["requests"] == plain["goodput"]["slos"][0]["met"] < plain["requests"]["ok"]
    assert "goodput" not in same(write_run(tmp_path / "bare", records(300, seed=11)))


def test_llm_data_only_in_failed_requests(tmp_path: Path) -> None:
    recs = [
        dataclasses.replace(r, extras=None if r.ok else {"ttft_ms": 8.0, "itl_ms": [1.0]})
        for r in records(1200, seed=12)
    ]
    summary = same(write_run(tmp_path / "run", recs, parquet=True, settings={"realtime_tokens_per_s": 5}))
    assert summary["ttft_ms"]["p50"] is None and summary["e2e_ms"]["max"] is None
    assert summary["llm_realtime"] == {"tokens_per_s": 5.0, "fraction_ahead": None, "requests": 0}
    assert summary["goodput"]["requests"] == summary["requests"]["ok"]


def test_a_pace_of_zero_is_refused_either_way(tmp_path: Path) -> None:
    run = write_run(
        tmp_path / "run", [_stream(i, [1.0]) for i in range(50)], settings={"realtime_tokens_per_s": 0}
    )
    meta = rundir.read_meta(run)
    users, samples = read_users(run / rundir.USERS), read_samples(run / rundir.SAMPLES)
    with pytest.raises(ValueError, match="above 0 tokens/s"):
        analyzer.compute_summary(meta, read_run_requests(run), users, samples)
    with RecordStore.open(run) as store, pytest.raises(ValueError, match="above 0 tokens/s"):
        bounded.bounded_summary(meta, store, users, samples)


def test_llm_runs_are_covered_by_the_store(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", llm_records(300, 13), parquet=True, settings={"slos": PER_REQUEST})
    with RecordStore.open(run) as store:
        assert bounded.unsupported(rundir.read_meta(run), store) is None
        assert (
            bounded_llm.COLUMNS <= bounded.COLUMNS
            and store.filled & bounded_llm.COLUMNS == bounded_llm.COLUMNS
        )


@pytest.mark.parametrize("open_loop", [False, True], ids=["closed", "open"])
def test_a_shared_prefix_run_gives_the_same_first_and_later_ttft(tmp_path: Path, open_loop: bool) -> None:
    recs = llm_records(1500, 12, open_loop)
    # The first streams' first token is slow (the prefix is not cached yet): several are sent before it.
    slow = [i for i, r in enumerate(recs) if r.ok and (r.extras or {}).get("ttft_ms") is not None][:3]
    for i in slow:
        recs[i] = dataclasses.replace(recs[i], extras={**(recs[i].extras or {}), "ttft_ms": 900.0})
    settings: dict[str, Any] = {"workload": {"shared_prefix_tokens": 512}, "preflight": True}
    if open_loop:
        settings["load"] = open_load(40.0, seed=3)
    run = write_run(tmp_path / "run", recs, parquet=True, settings=settings)
    with RecordStore.open(run) as store:
        assert bounded.unsupported(rundir.read_meta(run), store) is None
    prefix = same(run)["shared_prefix"]
    assert prefix["tokens"] == 512 and prefix["first"]["count"] >= 1 and prefix["later"]["count"] > 100
    assert prefix["later"]["ttft_ms"]["p50"] < prefix["first"]["ttft_ms"]["max"]
    assert any("shared prefix" in n for n in prefix["notices"])
