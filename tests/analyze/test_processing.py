"""The server's own processing time in latency_breakdown (loadbench.analyze.processing)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from loadbench.analyze import processing


def test_per_request_server_time_splits_each_request() -> None:
    service = np.array([10.0, 20.0, 30.0, 40.0])
    server = np.array([5.0, 5.0, 10.0, np.nan])  # the last answer said nothing
    found = processing.processing_section(service, server, {"server_time_header": "X-T"}, None, None, 0.0, "")
    assert found is not None
    assert found["processing_source"] == "header" and found["processing_n"] == 3
    assert found["processing_ms"]["p50"] == 5.0
    assert found["request_ms"]["mean"] == pytest.approx((5 + 15 + 20) / 3, abs=1e-4)
    # processing / request time per request: 5/5, 5/15, 10/20
    assert found["realtime_ratio"]["p50"] == 0.5
    assert found["processing_share"]["mean"] == pytest.approx((0.5 + 0.25 + 1 / 3) / 3, abs=1e-4)
    field = processing.processing_section(service, server, {"server_time_field": "t"}, None, None, 0.0, "")
    assert field is not None and field["processing_source"] == "field"


def test_counters_give_means_with_their_source() -> None:
    stats = {
        "source": "triton-metrics",
        "model": "m",
        "per_request": {"requests": 8, "processing_ms": 3.0, "queue_ms": 1.0},
    }
    service = np.array([4.0, 6.0])
    found = processing.processing_section(service, np.array([np.nan, np.nan]), {}, stats, None, 0.0, "")
    assert found is not None
    assert found["processing_source"] == "triton-metrics"
    assert found["processing_ms"] == {"mean": 3.0}
    assert found["request_ms"] == {"mean": 2.0}
    assert found["realtime_ratio"] == {"mean": 1.5}
    assert found["processing_share"] == {"mean": 0.6}
    assert found["server_parts_ms"]["queue"] == 1.0


def test_scraped_counter_rates_over_the_window() -> None:
    # Two scrapes in the window of model m (and one before it, and another model's series).
    samples = pd.DataFrame(
        {
            "unix_s": [99.0, 101.0, 102.0],
            'prom.nv_inference_request_success_rate{model="m",version="1"}': [100.0, 10.0, 30.0],
            'prom.nv_inference_request_duration_us_rate{model="m",version="1"}': [1e6, 20_000.0, 60_000.0],
            'prom.nv_inference_request_success_rate{model="x",version="1"}': [5.0, 5.0, 5.0],
        }
    )
    found = processing.processing_section(
        np.array([5.0]), None, {}, None, samples, 100.0, "http://h:8000/v2/models/m/infer"
    )
    assert found is not None
    assert found["processing_source"] == "triton-metrics"
    assert found["processing_ms"] == {"mean": 2.0}  # 80 000 µs over 40 requests
    assert processing.processing_section(np.array([5.0]), None, {}, None, None, 100.0, "") is None
