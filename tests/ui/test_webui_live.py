"""Tests of loadbench.ui.live: the live figures of the web UI's loadbench tab, on hand-built
request events and samples (no Locust: the plugin that feeds them is tested in test_webui.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from loadbench.ui.live import ExactLatencies, ExactValues, llm_status, resource_rows, run_summary


@pytest.fixture(scope="module")
def live() -> dict[str, Any]:
    """Every figure, through JSON as the status endpoint serves them."""
    lat = ExactLatencies(window_start=100.0, timeout_ms=1000.0)
    lat.add(5.0, 99.0, False, {"ttft_ms": 1.0, "itl_ms": [1.0]})  # warmup: excluded
    lat.add(10.0, 100.0, False)  # a plain request: latency only
    lat.add(20.0, 101.0, False, {"ttft_ms": 4.0, "itl_ms": [1.0, 2.0, 3.0]})
    lat.add(30.0, 102.0, False, {"ttft_ms": 6.0, "itl_ms": "4.0 5.0 nan -1 x"})  # a record's text form
    lat.add(40.0, 103.0, True, {"ttft_ms": 100.0, "itl_ms": [100.0]})  # failed: no TTFT, no gaps
    lat.add(1500.0, 104.0, False, {"ttft_ms": 100.0, "itl_ms": [100.0]})  # over the timeout: an error
    lat.add(50.0, 105.0, False, {"ttft_ms": None, "output_tokens": 3})  # not streamed
    lat.add(60.0, None, False, {"ttft_ms": True})  # no start time: counted; a bool is no TTFT
    before = llm_status(ExactLatencies(0.0))

    capped = ExactValues(cap=3)
    capped.add(1.0)
    capped.extend([2.0, 3.0, 4.0, 5.0])
    capped.add(6.0)
    first = dict(capped.summary())

    GIB = 2**30
    sample = {
        "unix_s": 1700000000.25,
        "host.cpu_percent": 12.5,
        "host.mem_used_bytes": 2 * GIB,
        "host.mem_total_bytes": 8 * GIB,
        "host.load1": 0.5,
        "gpu0.util_percent": 87.0,
        "gpu0.mem_used_bytes": 40 * GIB,
        "gpu0.mem_total_bytes": 80 * GIB,
        "gpu0.server_mem_bytes": 39 * GIB,
        "gpu0.power_w": 312.4,
        "gpu0.temp_c": 61.0,
        "gpu10.util_percent": 5.0,
        "gpu2.mem_used_bytes": 1024,
        "gpu2.mem_total_bytes": 2048,
    }
    summary = {
        "requests": {"total": 100, "error_rate": 0.01},
        "throughput_rps": 10.0,
        "latency_ms": {"p50": 5.0, "p99": 9.0},
        "ttft_ms": {"p50": 40.5, "p99": 55.0},
        "slo": {
            "passed": False,
            "checks": [
                {"expr": "p99<300ms", "passed": True, "value": 9.0},
                {"expr": "ttft_p99<50ms", "passed": False, "value": 55.0},
                {"expr": "ttft<500ms", "passed": True, "value": 0.98, "per_request": True},
            ],
        },
        "validity": {"valid": True},
    }
    invalid = {
        **summary,
        "slo": {"passed": True, "checks": summary["slo"]["checks"][:1]},
        "validity": {"valid": False, "reasons": ["too few requests"]},
    }
    return json.loads(
        json.dumps(
            {
                "requests": lat.requests,
                "errors": lat.errors,
                "bad_gaps": lat.bad_gaps,
                "latency": list(lat.latency.values),
                "ttft": list(lat.ttft.values),
                "itl": list(lat.itl.values),
                "summary": lat.summary(),
                "llm": llm_status(lat),
                "before": before,
                "capped": {"values": list(capped.values), "dropped": capped.dropped, "summary": first},
                "rows": resource_rows(sample, ["no model server process found"]),
                "rows_none": resource_rows(None, []),
                "run": run_summary(summary),
                "run_invalid": run_summary(invalid),
                "run_plain": run_summary({"requests": {"total": 3}, "latency_ms": {"p50": 1.0}}),
            }
        )
    )


def test_exact_latencies_count_as_the_analyzer_does(live: dict[str, Any]) -> None:
    # Warmup out; failures and answers over the timeout are errors; successes keep their latency.
    assert live["requests"] == 7 and live["errors"] == 2
    assert live["latency"] == [10.0, 20.0, 30.0, 50.0, 60.0]
    assert live["summary"]["p50"] == 30.0 and live["summary"]["max"] == 60.0


def test_ttft_and_itl_come_from_successful_streams_only(live: dict[str, Any]) -> None:
    # One TTFT per successful stream; every gap pooled; gaps that are not numbers >= 0 left out.
    assert live["ttft"] == [4.0, 6.0]
    assert live["itl"] == [1.0, 2.0, 3.0, 4.0, 5.0] and live["bad_gaps"] == 3
    llm = live["llm"]
    assert llm["streams"] == 2 and llm["gaps"] == 5 and llm["not_kept"] == 0
    rows = {r["key"]: (r["label"], r["exact_ms"]) for r in llm["rows"]}
    assert rows == {
        "ttft_ms.p50": ("TTFT p50", 5.0),
        "ttft_ms.p90": ("TTFT p90", 5.8),
        "ttft_ms.p99": ("TTFT p99", 5.98),
        "itl_ms.p50": ("ITL p50", 3.0),
        "itl_ms.p99": ("ITL p99", 4.96),
    }
    assert llm["ttft_ms"]["max"] == 6.0 and llm["itl_ms"]["min"] == 1.0
    assert live["before"] is None  # no stream measured yet: no LLM rows at all


def test_exact_values_keep_the_first_n_and_count_the_rest(live: dict[str, Any]) -> None:
    capped = live["capped"]
    assert capped["values"] == [1.0, 2.0, 3.0] and capped["dropped"] == 3
    assert capped["summary"]["max"] == 3.0


def test_resource_rows_show_every_gpu_in_index_order(live: dict[str, Any]) -> None:
    rows = {r["metric"]: r["value"] for r in live["rows"]}
    gpus = [m.split()[0] for m in rows if m.startswith("gpu") and m.endswith("utilization")]
    assert gpus == ["gpu0", "gpu2", "gpu10"]  # by index; gpu2 has memory but no utilization
    assert rows["gpu0 utilization"] == "87.0 %" and rows["gpu10 utilization"] == "5.0 %"
    assert rows["gpu0 memory"].endswith(" of 80.0 GiB") and rows["gpu0 memory"].startswith("40.0 GiB")
    assert rows["gpu0 server memory"] == "39.0 GiB"
    assert rows["gpu0 power"] == "312.4 W" and rows["gpu0 temperature"] == "61 °C"
    assert rows["gpu2 utilization"] == "–" and rows["gpu2 power"] == "–"  # no bare unit for a gap
    assert rows["host CPU"] == "12.5 %" and rows["note"] == "no model server process found"
    assert live["rows_none"] == [{"metric": "resources", "value": "no samples yet"}]


def test_run_summary_reports_ttft_and_slo_gates(live: dict[str, Any]) -> None:
    run = live["run"]
    assert (run["requests"], run["p50"], run["p99"]) == (100, 5.0, 9.0)
    assert (run["ttft_p50"], run["ttft_p99"]) == (40.5, 55.0)
    slo = run["slo"]
    assert slo["passed"] is False and slo["valid"] is True and len(slo["checks"]) == 3
    assert slo["text"] == (
        "PASS p99<300ms (measured 9); FAIL ttft_p99<50ms (measured 55); "
        "INFO ttft<500ms (met by 98.0% of requests)"
    )
    # Every gate passed, but the measurement is INVALID: failed, as `loadbench run`'s exit code.
    invalid = live["run_invalid"]["slo"]
    assert invalid["passed"] is False and invalid["text"].startswith("INVALID measurement; PASS p99<300ms")
    assert "slo" not in live["run_plain"] and "ttft_p50" not in live["run_plain"]
