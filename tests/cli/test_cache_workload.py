"""A run with a known repeat structure against a server whose cache is known: what the records say
of its cache (``--cache-header``) and of each payload (``payload_key``) is what the server saw."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from helpers import json_server, read_json, run_cli

from loadbench.protocols.variety import payload_key
from loadbench.record.columnar import read_run_requests

PAYLOAD = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 2], "data": [0.5, 1.0]}]}


def _cache_route(handler: Any, state: dict[str, Any]) -> tuple[int, Any]:
    """An unbounded cache: the first time a body comes, a miss; every later time, a hit."""
    if handler.command != "POST":
        return 200, {"ok": True}  # the reachability check: not a request of the load
    body = json.loads(handler.body)
    key = hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:12]
    with state["lock"]:
        seen = state.setdefault("seen", set())
        verdict = "hit" if key in seen else "miss"
        seen.add(key)
        state.setdefault("log", []).append((key, verdict))
    handler.reply_headers["X-Cache"] = verdict.upper()
    return 200, {"predictions": [1]}


def test_the_cache_column_and_payload_keys_are_the_servers_own_view(tmp_path: Path) -> None:
    out = tmp_path / "run"
    with json_server(_cache_route) as (url, state):
        result = run_cli(
            "run",
            "--target",
            url,
            "--scenario",
            "json_post",
            "--users",
            "1",  # one at a time: the server's order is the records' order
            "--duration",
            "2s",
            "--warmup",
            "0",
            "--no-preflight",
            "--seed",
            "7",
            "--cache-header",
            "X-Cache",
            "--out",
            str(out),
            "--quiet",
            "--payload",
            json.dumps(PAYLOAD),
            "--distinct",
            "20",
            "--popularity",
            "zipf:1.1",
        )
        assert result.returncode == 0, result.stderr
        log = list(state["log"])
    frame = read_run_requests(out)
    recorded = list(zip(frame["payload_key"].astype(str), frame["cache"].astype(str), strict=True))
    # A request cut off in flight when the run stopped reached the server but no record.
    assert len(log) - len(recorded) in (0, 1) and len(recorded) > 20
    assert recorded == log[: len(recorded)]
    hits = sum(verdict == "hit" for _, verdict in log[: len(recorded)])
    assert (frame["cache"] == "hit").sum() == hits
    assert (frame["cache"] == "miss").sum() == len(recorded) - hits
    # Zipf over 20 bodies: at most 20 keys, the most frequent the payload itself (rank 1; seeded draws).
    counts = frame["payload_key"].astype(str).value_counts()
    assert len(counts) <= 20 and counts.index[0] == payload_key(PAYLOAD)
    settings = read_json(out / "meta.json")["settings"]
    assert settings["cache_header"] == "X-Cache"
    assert settings["workload"] == {
        "popularity": "zipf:1.1",
        "distinct": 20,
        "seed": 7,
        "shared_prefix_tokens": None,
    }


def test_a_bad_popularity_is_one_line_and_exit_2(tmp_path: Path) -> None:
    with json_server(_cache_route) as (url, _):
        result = run_cli(
            "run",
            "--target",
            url,
            "--scenario",
            "json_post",
            "--payload",
            "{}",
            "--popularity",
            "zipf:0",
            "--out",
            str(tmp_path / "run"),
            "--duration",
            "3s",
        )
    assert result.returncode == 2
    assert "Zipf's exponent S must be above 0" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_a_shared_prefix_longer_than_the_context_the_server_says_is_one_line_and_exit_2(
    tmp_path: Path,
) -> None:
    def vllm(handler: Any, state: dict[str, Any]) -> tuple[int, Any]:
        if handler.path == "/v1/models":
            return 200, {"object": "list", "data": [{"id": "m", "max_model_len": 100}]}
        return 404, {}

    with json_server(vllm) as (url, _):
        result = run_cli(
            "run", "--target", url, "--scenario", "openai_chat", "--shared-prefix-tokens", "200",
            "--out", str(tmp_path / "run"), "--duration", "3s",
        )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "loadbench: error: scenario openai_chat: --shared-prefix-tokens 200 does not fit the model's "
        "context of 100 tokens (GET /v1/models max_model_len): give fewer"
    )
    assert not (tmp_path / "run").exists()
