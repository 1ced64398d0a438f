"""Triton's counters read as the server's own time per request (loadbench.protocols.triton_stats)."""

from __future__ import annotations

import httpx
import pytest

from loadbench.protocols import triton_stats

# The statistics extension's answer, shaped as Triton's (two versions of "m", one other model).
STATS = {
    "model_stats": [
        {
            "name": "m",
            "version": "1",
            "inference_count": 10,
            "execution_count": 10,
            "inference_stats": {
                "success": {"count": 10, "ns": 50_000_000},
                "fail": {"count": 1, "ns": 1_000},
                "queue": {"count": 10, "ns": 5_000_000},
                "compute_input": {"count": 10, "ns": 1_000_000},
                "compute_infer": {"count": 10, "ns": 40_000_000},
                "compute_output": {"count": 10, "ns": 2_000_000},
            },
            "batch_stats": [],
        },
        {
            "name": "m",
            "version": "2",
            "inference_stats": {"success": {"count": 5, "ns": 10_000_000}, "queue": {"count": 5, "ns": 0}},
        },
        {"name": "other", "version": "1", "inference_stats": {"success": {"count": 99, "ns": 99}}},
    ]
}

METRICS = """# HELP nv_inference_request_success Number of successful inference requests, all batch sizes
# TYPE nv_inference_request_success counter
nv_inference_request_success{model="m",version="1"} 40
nv_inference_request_success{model="other",version="1"} 7
# TYPE nv_inference_request_duration_us counter
nv_inference_request_duration_us{model="m",version="1"} 200000
nv_inference_request_duration_us{model="other",version="1"} 5
# TYPE nv_inference_queue_duration_us counter
nv_inference_queue_duration_us{model="m",version="1"} 20000
# TYPE nv_inference_compute_infer_duration_us counter
nv_inference_compute_infer_duration_us{model="m",version="1"} 160000
nv_gpu_utilization{gpu_uuid="GPU-1"} 0.5
"""


def test_stats_answer_sums_the_versions_of_the_model() -> None:
    counters = triton_stats.counters_from_stats(STATS, "m")
    assert counters == {
        "success": 15.0,
        "request": 60_000.0,  # µs
        "queue": 5_000.0,
        "compute_input": 1_000.0,
        "compute_infer": 40_000.0,
        "compute_output": 2_000.0,
    }
    assert triton_stats.counters_from_stats(STATS, "absent") is None
    assert triton_stats.counters_from_stats({"error": "x"}) is None


def test_metrics_text_for_one_model() -> None:
    counters = triton_stats.counters_from_metrics(METRICS, "m")
    assert counters is not None
    assert (
        counters["success"] == 40 and counters["request"] == 200_000 and counters["compute_infer"] == 160_000
    )
    assert counters["compute_output"] == 0
    assert triton_stats.counters_from_metrics(METRICS, None)["success"] == 47  # type: ignore[index]
    assert triton_stats.counters_from_metrics("nv_gpu_utilization 1\n", None) is None


def test_per_request_means_are_deltas_over_the_success_delta() -> None:
    before = triton_stats.counters_from_metrics(METRICS, "m")
    assert before is not None
    after = {**before, "success": 60.0, "request": 260_000.0, "queue": 24_000.0, "compute_infer": 200_000.0}
    assert triton_stats.per_request(before, after) == {
        "requests": 20,
        "processing_ms": 3.0,  # 60 000 µs / 20
        "queue_ms": 0.2,
        "compute_input_ms": 0.0,
        "compute_infer_ms": 2.0,
        "compute_output_ms": 0.0,
    }
    assert triton_stats.per_request(after, after) is None  # nothing served in between
    assert triton_stats.per_request(after, before) is None  # a restart: counters went back


def test_metrics_url_and_model_of() -> None:
    assert (
        triton_stats.metrics_url("http://10.0.0.5:8000/v2/models/m/stats") == "http://10.0.0.5:8002/metrics"
    )
    assert triton_stats.model_of("http://h:8000/v2/models/resnet/versions/2/stats") == "resnet"
    assert triton_stats.model_of("http://h:8000/predict") is None


@pytest.mark.parametrize(
    ("status", "body", "kind", "expect"),
    [
        (200, '{"model_stats": []}', "application/json", "no triton-stats counters for model m"),
        (
            400,
            '{"error":"This API is restricted, expecting header \'triton-access\'"}',
            "application/json",
            "HTTP 400",
        ),
        (200, METRICS, "text/plain", None),
    ],
)
def test_snapshot_reads_either_source_and_says_why_not(
    status: int, body: str, kind: str, expect: str | None
) -> None:
    transport = httpx.MockTransport(
        lambda request: httpx.Response(status, text=body, headers={"content-type": kind})
    )
    with httpx.Client(transport=transport) as client:
        reading = triton_stats.snapshot(client, "http://user:pw@h:8000/v2/models/m/stats", "m")
    assert "pw" not in str(reading)
    if expect is None:
        assert reading["source"] == "triton-metrics" and reading["counters"]["success"] == 40
    else:
        assert reading["error"].startswith(expect)
        assert triton_stats.restricted(reading) == (status == 400)
