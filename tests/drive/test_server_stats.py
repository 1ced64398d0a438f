"""``--server-stats``: a server's own counters read around the measured window become
``latency_breakdown.processing_ms`` (loadbench.drive.serverstats, loadbench.analyze.processing)."""

from __future__ import annotations

from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from helpers import json_server, read_json, run_cli

pytestmark = pytest.mark.e2e


def triton_like(handler: BaseHTTPRequestHandler, state: dict[str, Any]) -> tuple[int, Any]:
    """/v2/models/m/infer counts each call with a known, varying time of its own (the n-th call
    took 100 + n % 7 * 10 µs of queue and 300 µs of compute); /v2/models/m/stats answers the
    totals as Triton's statistics extension does, and keeps each answer for the test."""
    with state["lock"]:
        stats = state.setdefault("stats", {"count": 0, "request": 0, "queue": 0, "infer": 0})
        if handler.path.endswith("/infer"):
            queue_ns = (100 + stats["count"] % 7 * 10) * 1000
            stats["count"] += 1
            stats["queue"] += queue_ns
            stats["infer"] += 300_000
            stats["request"] += queue_ns + 300_000
            return 200, {"outputs": [{"name": "label", "datatype": "BYTES", "shape": [1], "data": ["1"]}]}
        answer = {
            "model_stats": [
                {
                    "name": "m",
                    "version": "1",
                    "inference_stats": {
                        "success": {"count": stats["count"], "ns": stats["request"]},
                        "queue": {"count": stats["count"], "ns": stats["queue"]},
                        "compute_infer": {"count": stats["count"], "ns": stats["infer"]},
                    },
                }
            ]
        }
        if handler.path.endswith("/stats"):
            state.setdefault("answers", []).append(dict(stats))
        return 200, answer


def test_processing_time_is_the_servers_own_deltas_over_its_count(tmp_path: Path) -> None:
    out = tmp_path / "run"
    with json_server(triton_like) as (url, state):
        result = run_cli(
            "run", "--target", url, "--scenario", "json_post", "--path", "/v2/models/m/infer", "--payload", "{}",
            "-u", "2", "-d", "2s", "--warmup", "0.5s", "--out", str(out), "--quiet", "--no-sampler",
            "--server-stats", f"{url}/v2/models/m/stats",
        )  # fmt: skip
        answers = state["answers"]
    assert result.returncode == 0, result.stderr
    assert len(answers) == 2  # before (at the warmup's end) and after the window
    first, last = answers
    count = last["count"] - first["count"]
    assert count > 0 and first["count"] > 0  # the warmup's requests are not in the delta
    stats = read_json(out / "server_stats.json")
    assert stats["source"] == "triton-stats" and stats["model"] == "m"
    assert stats["per_request"]["requests"] == count
    expected_ms = (last["request"] - first["request"]) / count / 1e6
    assert stats["per_request"]["processing_ms"] == pytest.approx(expected_ms, abs=1e-4)
    assert stats["per_request"]["compute_infer_ms"] == pytest.approx(0.3)
    breakdown = read_json(out / "summary.json")["latency_breakdown"]
    assert breakdown["processing_source"] == "triton-stats"
    assert breakdown["processing_ms"]["mean"] == pytest.approx(expected_ms, abs=1e-4)
    service_mean = read_json(out / "summary.json")["service_time_ms"]["mean"]
    assert breakdown["request_ms"]["mean"] == pytest.approx(service_mean - expected_ms, abs=2e-3)
    assert read_json(out / "meta.json")["settings"]["server_stats"] == f"{url}/v2/models/m/stats"
    assert "Processing time" in (out / "report.html").read_text()
