"""Cache effects: ``summary.json`` ``cache`` (docs/metrics.md, Cache) on hand-built records whose
answers are known, the mixture on a known bimodal sample, and the replays against brute force."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from loadbench.analyze import analyzer
from loadbench.analyze.cache import (
    assign_fast,
    fit_mixture,
    lfu_hits,
    replay_lru,
    replay_sizes,
    stack_distances,
)
from loadbench.record import rundir
from loadbench.record.records import RequestRecord, write_requests

STARTED, WARMUP = 1000.0, 2.0


def record(start: float, latency: float, key: str = "", cache: str = "", ok: bool = True) -> RequestRecord:
    extras = {"payload_key": key} if key else None
    status = 200 if ok else 500
    return RequestRecord(
        start,
        latency,
        "/predict",
        "POST",
        status,
        10,
        ok,
        "" if ok else "HTTPError: 500",
        extras=extras,
        cache=cache,
    )


def analyze(tmp_path: Path, records: list[RequestRecord], **settings: Any) -> dict[str, Any]:
    run = tmp_path / "run"
    run.mkdir()
    meta = {
        "format": 1, "run_id": "r", "target": "http://127.0.0.1:8000", "scenario": "json_post",
        "status": rundir.STATUS_COMPLETE, "started_unix_s": STARTED, "ended_unix_s": STARTED + 60,
        "settings": {"users": 1, "warmup_s": WARMUP, "duration_s": 60, **settings},
    }  # fmt: skip
    rundir.write_json(run / rundir.META, meta)
    write_requests(run / rundir.REQUESTS, records)
    return dict(analyzer.analyze_run(run))


def brute_lru(keys: list[int], counted: list[bool], size: int) -> int:
    cache: OrderedDict[int, None] = OrderedDict()
    hits = 0
    for key, mine in zip(keys, counted, strict=True):
        if key in cache:
            hits += mine
            cache.move_to_end(key)
            continue
        if len(cache) >= size:
            cache.popitem(last=False)
        cache[key] = None
    return hits


def brute_lfu(keys: list[int], counted: list[bool], size: int) -> int:
    """LFU by its definition: evict the fewest uses since entry, ties the least recently used."""
    uses: dict[int, int] = {}
    used_at: dict[int, int] = {}
    hits = 0
    for t, (key, mine) in enumerate(zip(keys, counted, strict=True)):
        if key in uses:
            hits += mine
            uses[key] += 1
        else:
            if len(uses) >= size:
                victim = min(uses, key=lambda k: (uses[k], used_at[k]))
                del uses[victim], used_at[victim]
            uses[key] = 1
        used_at[key] = t
    return hits


def test_header_hits_cold_warm_and_replay(tmp_path: Path) -> None:
    # Keys a, b, a, c, a, b in the window after a in the warmup; the server said hit/miss; an LRU of 2.
    rows = [record(1001.0, 20.0, "a", "miss")]  # warmup: warms the cache, counts nowhere
    sequence = [("a", "hit", 1.0), ("b", "miss", 20.0), ("a", "hit", 1.2), ("c", "miss", 22.0),
                ("a", "hit", 1.1), ("b", "miss", 21.0)]  # fmt: skip
    rows += [record(1003.0 + i, ms, key, said) for i, (key, said, ms) in enumerate(sequence)]
    rows.append(record(1010.0, 5.0, "d", "", ok=False))  # failed: in no figure
    cache = analyze(tmp_path, rows, cache_header="X-Cache")["cache"]
    assert (cache["hits"], cache["misses"], cache["hit_ratio"], cache["source"]) == (3, 3, 0.5, "header")
    assert cache["hit_latency_ms"]["p50"] == 1.1 and cache["miss_latency_ms"]["p50"] == 21.0
    assert cache["speedup_p50"] == round(21.0 / 1.1, 3)
    # Cold: the first b and c (a was first sent in the warmup); warm: the other four.
    assert cache["cold"] == {"count": 2, "p50": 21.0, "p99": pytest.approx(21.98)}
    assert cache["warm"]["count"] == 4 and cache["repeat_share"] == round(4 / 6, 6)
    assert cache["distinct_payloads"] == 3
    replay = cache["replay"]
    assert replay["sizes"] == [1, 2, 3]  # up to the 3 distinct keys; the knee (3) among them
    # Over a | a b a c a b: an LRU of 1 hits the first a; of 2 the three a's (the server's own
    # answers: the measured ratio); of 3 the last b too (since its last use: a, c).
    assert replay["lru"] == [round(1 / 6, 6), 0.5, round(4 / 6, 6)] and replay["measured"] == 0.5
    assert replay["infinite"] == round(4 / 6, 6) and replay["lru_full_size"] == 3
    assert replay["lfu"][1] == round(brute_lfu([0, 0, 1, 0, 2, 0, 1], [False] + [True] * 6, 2) / 6, 6)
    assert cache["notices"] == []


def test_a_cache_header_never_seen_is_a_notice_and_a_mixture_estimate(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    fast = rng.random(200) < 0.3
    latency = np.where(fast, rng.lognormal(np.log(1.0), 0.1, 200), rng.lognormal(np.log(30.0), 0.1, 200))
    rows = [record(1003.0 + i * 0.1, float(ms), f"k{i % 50}") for i, ms in enumerate(latency)]
    summary = analyze(tmp_path, rows, cache_header="X-Cache")
    cache = summary["cache"]
    assert cache["source"] == "mixture" and cache["mixture"]["ashman_d"] > 10
    assert cache["hits"] == int(fast.sum()) and cache["misses"] == int((~fast).sum())
    said = "the answers never carried the header X-Cache saying hit or miss: no hits counted from it"
    assert said in cache["notices"] and said in summary["notices"]


def test_overlapping_modes_give_no_estimate(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    rows = [record(1003.0 + i * 0.1, float(ms), f"k{i}") for i, ms in enumerate(rng.lognormal(2.0, 0.3, 100))]
    cache = analyze(tmp_path, rows)["cache"]
    assert cache["hit_ratio"] is None and cache["hits"] is None
    assert any(n.startswith("the components overlap: no estimate") for n in cache["notices"])
    # All keys distinct: every request cold, no replay hit at any size.
    assert cache["cold"]["count"] == 100 and cache["warm"]["count"] == 0 and cache["repeat_share"] == 0
    assert set(cache["replay"]["lru"]) == {0.0} and cache["replay"]["lru_full_size"] is None


def test_a_run_with_nothing_of_a_cache_has_no_section(tmp_path: Path) -> None:
    # Two clear latency modes but no keys and no cache option: no claim of a cache.
    rows = [record(1003.0 + i * 0.1, 1.0 if i % 2 else 50.0) for i in range(100)]
    assert "cache" not in analyze(tmp_path, rows)


def test_mixture_recovers_a_known_bimodal_sample() -> None:
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.normal(0.0, 0.2, 3000), rng.normal(3.0, 0.4, 7000)])
    fit = fit_mixture(x)
    assert fit is not None
    assert fit["weights"][0] == pytest.approx(0.3, abs=0.01)
    assert fit["means"] == pytest.approx([0.0, 3.0], abs=0.03)
    assert fit["sds"] == pytest.approx([0.2, 0.4], abs=0.02)
    expected_d = np.sqrt(2) * 3.0 / np.sqrt(0.2**2 + 0.4**2)
    assert fit["ashman_d"] == pytest.approx(expected_d, rel=0.03)
    assert assign_fast(x, fit)[:3000].mean() > 0.99 and assign_fast(x, fit)[3000:].mean() < 0.01
    assert fit_mixture(np.full(50, 2.0)) is None


@pytest.mark.parametrize("seed", range(6))
def test_replays_equal_brute_force_simulations(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, distinct = int(rng.integers(1, 400)), int(rng.integers(1, 40))
    keys = rng.zipf(1.3, n) % distinct if seed % 2 else rng.integers(0, distinct, n)
    counted = rng.random(n) < 0.8
    codes = keys.astype(np.int64)
    sizes = replay_sizes(distinct, None)
    lru = replay_lru(codes, counted, sizes)
    total = int(counted.sum())
    for size, ratio in zip(sizes, lru, strict=True):
        brute = brute_lru(codes.tolist(), counted.tolist(), size)
        assert ratio == (round(brute / total, 6) if total else None)
        assert lfu_hits(codes.tolist(), counted.tolist(), size) == brute_lfu(
            codes.tolist(), counted.tolist(), size
        )


def test_stack_distances_by_hand() -> None:
    # a b c a a b: a again after b, c (3); a right after a (1); b after c, a (3).
    assert stack_distances(np.array([0, 1, 2, 0, 0, 1])).tolist() == [0, 0, 0, 3, 1, 3]
    assert replay_sizes(10, 7) == [1, 2, 4, 7, 8, 10]
