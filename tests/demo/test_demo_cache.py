"""The demo's caches (loadbench.demo.cache): the response cache's eviction orders and counts, the LLM
simulator's prefix cache and its prefill time, over real HTTP; and a short run against the demo with
its cache, whose figures must be the server's own (docs/metrics.md, Cache)."""

from __future__ import annotations

import json
from collections import OrderedDict
from pathlib import Path

import httpx
import numpy as np
import pytest
from helpers import run_cli, serving

from loadbench.analyze.cache import lfu_hits
from loadbench.data import DIGITS_JSONL
from loadbench.demo import llmsim
from loadbench.demo.args import demo_parser
from loadbench.demo.cache import (
    BLOCK_TOKENS,
    CacheSpec,
    PrefixCache,
    ResponseCache,
    caches_from_args,
    demo_caches,
    parse_cache_spec,
)
from loadbench.demo.server import make_server
from loadbench.errors import UsageError
from loadbench.record.columnar import read_run_requests


def test_lru_evicts_the_least_recently_used_and_counts() -> None:
    cache = ResponseCache(CacheSpec("lru", 2))
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # a is now the most recent: b goes next
    cache.put("c", 3)
    assert cache.get("b") is None and cache.get("a") == 1 and cache.get("c") == 3
    assert cache.counts() == {"policy": "lru", "size": 2, "entries": 2, "hits": 3, "misses": 3,
                              "evictions": 1, "hit_ratio": 0.5}  # fmt: skip


def test_lfu_evicts_the_least_used_ties_by_recency() -> None:
    cache = ResponseCache(CacheSpec("lfu", 3))
    for key in "abc":
        cache.put(key, key)
    cache.get("a")
    cache.get("a")  # a: 3 uses; b and c: 1 each, b the less recent
    cache.put("d", "d")
    assert cache.get("b") is None and cache.get("c") == "c"  # b went; c now has 2 uses
    cache.put("e", "e")  # d (1 use) is the least used
    assert cache.get("d") is None and [cache.get(k) for k in "ace"] == ["a", "c", "e"]
    assert (cache.hits, cache.misses, cache.evictions, len(cache)) == (6, 5, 2, 3)


@pytest.mark.parametrize("policy", ["lru", "lfu"])
def test_the_demo_cache_hits_as_the_offline_replay_says(policy: str) -> None:
    rng = np.random.default_rng(7)
    keys = (rng.zipf(1.4, 600) % 25).tolist()
    cache = ResponseCache(CacheSpec(policy, 6))
    for key in keys:
        if cache.get(key) is None:
            cache.put(key, key)
    brute: OrderedDict[int, None] = OrderedDict()
    lru = 0
    for key in keys:
        if key in brute:
            lru += 1
            brute.move_to_end(key)
        else:
            brute[key] = None
            if len(brute) > 6:
                brute.popitem(last=False)
    expected = lru if policy == "lru" else lfu_hits(keys, [True] * len(keys), 6)
    assert cache.hits == expected and cache.misses == len(keys) - expected


@pytest.mark.parametrize("text", ["lru", "fifo:3", "lru:0", "lfu:x", "lru:-2"])
def test_bad_cache_options_are_one_line_usage_errors(text: str) -> None:
    with pytest.raises(ValueError, match="cache"):
        parse_cache_spec(text)
    with pytest.raises(UsageError, match="--cache"):
        demo_parser().parse_args(["--cache", text])
    args = demo_parser().parse_args(["--cache", "lru:4", "--replicas", "2"])
    with pytest.raises(UsageError, match="--replicas"):
        caches_from_args(args)


def test_prefix_cache_counts_whole_blocks_of_the_longest_shared_prefix() -> None:
    cache = PrefixCache(blocks=4)
    system = [f"s{i}" for i in range(40)]  # 2 whole blocks and 8 words
    assert cache.lookup_and_store([*system, "q1"]) == 0
    assert cache.lookup_and_store([*system, "q2", "more"]) == 2 * BLOCK_TOKENS
    assert cache.lookup_and_store(["x", *system]) == 0  # another first word: another prefix
    # A prompt cached whole still computes its last token: its last block counts as uncached.
    block = [f"b{i}" for i in range(BLOCK_TOKENS)]
    cache.lookup_and_store(block)
    assert cache.lookup_and_store(block) == 0 and cache.evictions > 0  # 4 blocks held: the oldest went
    timing = llmsim.SimulatorTiming(10.0, 1.0, 0.5, PrefixCache())
    assert timing.first_token_ms(system) == (10.0 + 0.5 * 40, 0)
    assert timing.first_token_ms([*system, "again"]) == (10.0 + 0.5 * (41 - 32), 32)
    assert llmsim.SimulatorTiming(10.0, 1.0).first_token_ms(system) == (10.0, None)


def test_demo_answers_x_cache_and_keeps_its_own_counts() -> None:
    caches = demo_caches(CacheSpec("lru", 2), 64, 2.0)
    rows = [[i % 17] * 64 for i in range(3)]
    sequence = [0, 0, 1, 2, 0, 2, 1]
    expected = ["MISS", "HIT", "MISS", "MISS", "MISS", "HIT", "MISS"]  # an LRU of 2 by hand
    server = make_server(port=0, latency_ms=5.0, llm_ttft_ms=1.0, llm_itl_ms=0.0, caches=caches)
    with serving(server) as url, httpx.Client(base_url=url, timeout=10) as client:
        said = [client.post("/predict", json={"inputs": [rows[i]]}).headers.get("X-Cache") for i in sequence]
        v2 = {"inputs": [{"name": "input-0", "shape": [1, 64], "datatype": "FP32", "data": rows[0]}]}
        said += [client.post("/v2/models/digits/infer", json=v2).headers.get("X-Cache") for _ in range(2)]
        bad = client.post("/predict", json={"no": "inputs"})
        health = client.get("/health")
        counts = client.get("/cache").json()
        prompt = " ".join(f"w{i}" for i in range(40))
        usage = [
            client.post("/v1/completions", json={"prompt": f"{prompt} {n}", "max_tokens": 1}).json()["usage"]
            for n in range(2)
        ]
        streamed = {
            "prompt": f"{prompt} 2",
            "max_tokens": 1,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        events = [line[6:] for line in client.post("/v1/completions", json=streamed).text.splitlines()]
        usage.append(next(json.loads(e) for e in events if '"usage"' in e)["usage"])
        prefix = client.get("/cache").json()["prefix"]
    assert said == [*expected, "MISS", "HIT"]  # the v2 route: its own key
    assert bad.status_code == 400 and "X-Cache" not in bad.headers and "X-Cache" not in health.headers
    assert counts["response"] == {"policy": "lru", "size": 2, "entries": 2, "hits": 3, "misses": 6,
                                  "evictions": 4, "hit_ratio": round(3 / 9, 6)}  # fmt: skip
    assert [u["prompt_tokens_details"]["cached_tokens"] for u in usage] == [0, 32, 32]  # streamed too
    assert (prefix["prompts"], prefix["cached_tokens"], prefix["prompt_tokens"]) == (3, 64, 123)


@pytest.mark.e2e
def test_a_run_counts_the_hits_the_demo_counted_and_its_replay_agrees(tmp_path: Path) -> None:
    caches = demo_caches(CacheSpec("lru", 8), None, None)
    out = tmp_path / "run"
    # One user, no preflight (its request would warm the cache unrecorded): the order is exact.
    with serving(make_server(port=0, latency_ms=3.0, caches=caches)) as url:
        result = run_cli(
            *("run", "--target", url, "--scenario", "json_post", "--data", str(DIGITS_JSONL)),
            *("--distinct", "20", "--popularity", "zipf:1.1", "--cache-header", "X-Cache", "--no-preflight"),
            *(
                "-u",
                "1",
                "-d",
                "2s",
                "--warmup",
                "0s",
                "--no-sampler",
                "--out",
                str(out),
                "--cold-start",
                "5",
            ),
        )
        counts = httpx.get(url + "/cache").json()["response"]
    assert result.returncode == 0, result.stderr
    summary = json.loads((out / "summary.json").read_text())
    meta = json.loads((out / "meta.json").read_text())
    cache = summary["cache"]
    # The demo also served (and counted) the request in flight when the load stopped, which Locust
    # cut off unrecorded: every other one is in the records, as the server labelled it.
    unrecorded = meta.get("in_flight_unrecorded") or 0
    recorded = cache["hits"] + cache["misses"]
    assert recorded <= counts["hits"] + counts["misses"] <= recorded + unrecorded
    assert 0 <= counts["hits"] - cache["hits"] <= unrecorded and cache["hits"] > 0 and cache["misses"] > 0
    # Zipf over 20 payloads can leave the rarest unsent in a short run on a slow machine: the figure
    # is the payloads the records hold, never more than the run could draw from.
    sent = read_run_requests(out)["payload_key"].dropna().nunique()
    assert cache["source"] == "header" and 2 <= cache["distinct_payloads"] == sent <= 20
    replay = cache["replay"]
    assert replay["lru"][replay["sizes"].index(8)] == cache["hit_ratio"] == replay["measured"]
    assert "  cache       hit ratio" in result.stdout + result.stderr
    # The first five requests, reported apart: the very first one a miss (nothing cached yet).
    cold = summary["cold_start"]
    assert (cold["requests"], cold["preflight"], meta["settings"]["cold_start"]) == (5, False, 5)
    assert cold["first_ms"] is not None and "  cold start  first request" in result.stdout + result.stderr


def test_run_passes_demo_cache_to_the_demo_it_starts() -> None:
    from loadbench.demo.args import cache_text
    from loadbench.demo.spawn import DemoTiming

    assert cache_text(" LFU:16 ") == "lfu:16"
    assert DemoTiming(5.0, cache="lru:8").service_args() == ["--cache", "lru:8"]
    assert DemoTiming(5.0).service_args() == []
