"""Per-target statistics from the records' ``target`` column (docs/metrics.md, Targets)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from loadbench.analyze import analyzer
from loadbench.record import rundir
from loadbench.record.records import RequestRecord, write_requests

STARTED, WARMUP = 1000.0, 2.0
A, B, C = "http://10.0.0.1:8000", "http://10.0.0.2:8000", "http://10.0.0.3:8000"


def rec(
    start: float, latency: float, target: str, ok: bool = True, status: int = 200, **kw: Any
) -> RequestRecord:
    error = (
        "" if ok else (f"HTTPError: {status}" if status else "ConnectionRefusedError: [Errno 111] refused")
    )
    return RequestRecord(start, latency, "/predict", "POST", status, 10, ok, error, target=target, **kw)


def analyze(tmp_path: Path, records: list[RequestRecord], **settings: Any) -> dict[str, Any]:
    run = tmp_path / "run"
    run.mkdir()
    meta = {
        "format": 1, "run_id": "r", "target": A, "scenario": "json_post", "status": rundir.STATUS_COMPLETE,
        "started_unix_s": STARTED, "ended_unix_s": STARTED + 12,
        "settings": {"users": 3, "warmup_s": WARMUP, "duration_s": 12, **settings},
    }  # fmt: skip
    rundir.write_json(run / rundir.META, meta)
    write_requests(run / rundir.REQUESTS, records)
    return dict(analyzer.analyze_run(run))


def test_counts_shares_latency_and_imbalance_per_target_in_the_listed_order(tmp_path: Path) -> None:
    records = [rec(1000.5, 99.0, B)]  # in the warmup: not counted
    records += [rec(1002.0 + i * 0.1, 10.0 + i, B) for i in range(6)]
    records += [rec(1003.0 + i * 0.1, 20.0 + i, A) for i in range(3)]
    records += [rec(1004.0, 30.0, A, ok=False, status=503)]
    summary = analyze(tmp_path, records, targets=[A, B, C], balance="round-robin")
    section = summary["targets"]
    assert list(section) == ["policy", "targets", "count", "imbalance", "unattributed", "notices"]
    assert section["policy"] == "round-robin" and section["count"] == 3
    a, b, c = section["targets"]
    assert list(a) == ["url", "requests", "errors", "error_rate", "throughput_rps", "latency_ms", "share"]
    assert [t["url"] for t in (a, b, c)] == [A, B, C]  # as listed, not sorted by traffic
    assert (a["requests"], a["errors"], a["error_rate"], a["share"]) == (4, 1, 0.25, 0.4)
    assert (b["requests"], b["errors"], b["error_rate"], b["share"]) == (6, 0, 0.0, 0.6)
    assert a["throughput_rps"] == 0.3 and b["throughput_rps"] == 0.6  # successes / the 10 s window
    assert a["latency_ms"] == {"p50": 21.0, "p90": 21.8, "p99": 21.98, "max": 22.0}  # the 503 is no latency
    assert b["latency_ms"]["p50"] == pytest.approx(float(np.percentile([10.0 + i for i in range(6)], 50)))
    # The listed target that got nothing is there, with nothing, and said.
    assert c == {"url": C, "requests": 0, "errors": 0, "error_rate": None, "throughput_rps": 0.0,
                 "latency_ms": {"p50": None, "p90": None, "p99": None, "max": None}, "share": 0.0}  # fmt: skip
    assert sum(t["requests"] for t in section["targets"]) == summary["requests"]["total"] == 10
    assert section["imbalance"] == pytest.approx(0.6 * 3, abs=1e-4)  # max share over the mean share 1/3
    assert section["unattributed"] == 0
    said = [n for n in summary["notices"] if "got no request" in n]
    assert said == [f"1 target(s) got no request in the measured window: {C}"]
    assert "replicas" not in summary and "retries" not in summary


def test_a_target_in_the_records_but_not_listed_is_kept_and_said(tmp_path: Path) -> None:
    records = [rec(1002.0 + i, 10.0, A if i % 2 else B) for i in range(4)] + [rec(1007.0, 10.0, C)]
    summary = analyze(tmp_path, records, targets=[A, B], balance="p2c")
    urls = [t["url"] for t in summary["targets"]["targets"]]
    assert urls == [A, B, C] and [t["requests"] for t in summary["targets"]["targets"]] == [2, 2, 1]
    assert any("not among the run's targets" in n and C in n for n in summary["notices"])


def test_one_target_has_no_section_and_the_records_name_none(tmp_path: Path) -> None:
    summary = analyze(tmp_path, [rec(1002.0 + i, 10.0, "") for i in range(5)], targets=[A], balance=None)
    assert "targets" not in summary


def test_listed_targets_without_records_still_show_every_target(tmp_path: Path) -> None:
    summary = analyze(tmp_path, [], targets=[A, B], balance="random")
    section = summary["targets"]
    assert [(t["url"], t["requests"], t["share"]) for t in section["targets"]] == [(A, 0, None), (B, 0, None)]
    assert section["imbalance"] is None and section["notices"] == []


def test_per_target_figures_count_attempts_and_the_main_figures_requests(tmp_path: Path) -> None:
    # Two requests: one failed on A and recovered on B; one went straight to B.
    records = [
        rec(1002.0, 5.0, A, ok=False, status=503, attempt=1, request_id="r1"),
        rec(1002.1, 10.0, B, attempt=2, request_id="r1"),
        rec(1003.0, 12.0, B, attempt=1, request_id="r2"),
    ]
    summary = analyze(tmp_path, records, targets=[A, B], balance="least-outstanding")
    a, b = summary["targets"]["targets"]
    assert (a["requests"], a["errors"], b["requests"], b["errors"]) == (1, 1, 2, 0)
    assert (a["share"], b["share"]) == (pytest.approx(1 / 3, abs=1e-6), pytest.approx(2 / 3, abs=1e-6))
    assert b["latency_ms"]["max"] == 12.0  # an attempt's own latency, not its request's
    assert summary["requests"]["total"] == 2 and summary["requests"]["errors"] == 0
