"""``summary.json`` ``cache`` through a store (`loadbench.analyze.bounded_cache`) equals the
in-memory analyzer's (`loadbench.analyze.cache`): hits said by a header, estimated by the mixture
(clear and overlapping modes, a sample of the latencies), cold vs warm, warmup keys warming the
window, failed and retried attempts, and no section for a run with nothing of a cache."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from bounded_runs import assert_same, records, write_run
from retried_runs import retried

from loadbench.analyze import bounded_cache, cache
from loadbench.analyze.cache import StackDistances, stack_distances
from loadbench.record.records import RequestRecord

HEADER = {"cache_header": "X-Cache"}


def cached(
    n: int, seed: int, keys: int = 60, said: bool = True, fast_ms: float = 2.0, slow_ms: float = 40.0
) -> list[RequestRecord]:
    """`records` with a payload key each (zipf over ``keys``), a repeat answered fast (a hit) and
    a first sight slow; ``said``: the answers said hit or miss. Failures keep their key but no
    answer. Ties in start time included (the send order's ties go by place in the file)."""
    rng = np.random.default_rng(seed)
    seen: set[str] = set()
    out: list[RequestRecord] = []
    for i, r in enumerate(records(n, seed=seed)):
        key = f"k{min(int(rng.zipf(1.3)), keys):04d}" if i % 37 else ""
        hit = bool(key) and key in seen and rng.random() < 0.9
        if r.ok and key:
            seen.add(key)
        latency = round(float(rng.lognormal(np.log(fast_ms if hit else slow_ms), 0.25)), 3)
        start = out[-1].start_unix_s if i % 101 == 5 and out else r.start_unix_s
        out.append(
            dataclasses.replace(
                r,
                start_unix_s=start,
                latency_ms=latency,
                extras={"payload_key": key} if key else None,
                cache=("hit" if hit else "miss") if said and r.ok and key else "",
            )
        )
    return out


def both(tmp_path: Path, recs: list[RequestRecord], **meta: Any) -> dict[str, Any]:
    """The summary of the run in memory (CSV) and through a store (Parquet), asserted equal."""
    run = write_run(tmp_path / "run", recs, parquet=True, **meta)
    return assert_same(run)


def test_header_labels_keys_and_warmup(tmp_path: Path) -> None:
    summary = both(tmp_path, cached(3000, 5), settings=HEADER)
    section = summary["cache"]
    assert section["source"] == "header"
    assert section["hits"] > section["misses"] > 0
    assert section["cold"]["count"] + section["warm"]["count"] > 0
    assert section["replay"]["lfu"][0] is not None and section["replay"]["lru_full_size"]
    # Keys first sent in the warmup are warm in the window: fewer cold than distinct payloads.
    assert section["cold"]["count"] < section["distinct_payloads"]


def test_labels_without_the_option(tmp_path: Path) -> None:
    assert both(tmp_path, cached(800, 6))["cache"]["source"] == "header"


@pytest.mark.parametrize("sample", [None, 300])
def test_keys_only_two_clear_modes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sample: int | None
) -> None:
    if sample:  # more latencies than the EM fits: both paths fit the same seeded sample
        monkeypatch.setattr(cache, "MIXTURE_SAMPLE", sample)
        # and the store streams keys and latencies in small batches: runs of fast ones cross them
        monkeypatch.setattr(bounded_cache, "BATCH_ROWS", 97)
    section = both(tmp_path, cached(2500, 7, said=False))["cache"]
    assert section["source"] == "mixture" and section["mixture"]["ashman_d"] >= cache.MIN_SEPARATION
    assert section["hits"] > 0 and section["misses"] > 0


def test_keys_only_overlapping_modes(tmp_path: Path) -> None:
    section = both(tmp_path, cached(1500, 8, said=False, fast_ms=10.0, slow_ms=12.0))["cache"]
    assert section["hit_ratio"] is None and any("overlap" in n for n in section["notices"])


def test_an_option_never_answered_without_keys(tmp_path: Path) -> None:
    recs = [dataclasses.replace(r, extras=None, cache="") for r in cached(600, 9)]
    section = both(tmp_path, recs, settings={"cache_field": "cached"})["cache"]
    assert section["source"] == "mixture" and section["distinct_payloads"] is None
    assert any("never carried the field cached" in n for n in section["notices"])


def test_too_few_for_a_mixture(tmp_path: Path) -> None:
    section = both(tmp_path, cached(15, 10, said=False))["cache"]
    assert section["hits"] is None


def test_nothing_of_a_cache_has_no_section(tmp_path: Path) -> None:
    assert "cache" not in both(tmp_path, records(400, seed=11))


def test_retried_attempts(tmp_path: Path) -> None:
    rng = np.random.default_rng(12)
    recs = []
    for r in retried(1500, 12):
        key = f"k{min(int(rng.zipf(1.4)), 40):03d}"
        hit = r.ok and rng.random() < 0.6
        recs.append(
            dataclasses.replace(
                r, extras={"payload_key": key}, cache=("hit" if hit else "miss") if r.ok else ""
            )
        )
    section = both(tmp_path, recs, settings={**HEADER, "retries": {"max": 3}})["cache"]
    assert section["hits"] > 0 and section["replay"]["accesses"] > 0


@pytest.mark.parametrize("seed", [0, 1])
def test_streamed_stack_distances_equal_one_pass(seed: int) -> None:
    rng = np.random.default_rng(seed)
    codes = np.minimum(rng.zipf(1.2, 5000), 300).astype(np.int64)
    streamed = StackDistances()
    parts = [streamed.feed(part) for part in np.array_split(codes, 7)]
    expected = stack_distances(codes)
    assert np.array_equal(np.concatenate(parts), expected)
    # By definition: the distinct keys since the previous access, itself included.
    last: dict[int, int] = {}
    for t, code in enumerate(codes.tolist()[:800]):
        want = len(set(codes[last[code] + 1 : t + 1].tolist())) if code in last else 0
        assert expected[t] == want
        last[code] = t
