"""Per-replica statistics from the records' ``replica`` column (docs/metrics.md, Replicas)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from loadbench.analyze import analyzer
from loadbench.analyze.replicas import COLUMN
from loadbench.record import rundir
from loadbench.record.records import RequestRecord, write_requests
from loadbench.report.plotdata_routes import named_points
from loadbench.report.replicas import replicas_html, replicas_markdown

STARTED, WARMUP = 1000.0, 2.0


def rec(start: float, latency: float, replica: str = "", ok: bool = True, status: int = 200) -> RequestRecord:
    error = "" if ok else f"HTTPError: {status}"
    return RequestRecord(start, latency, "/predict", "POST", status, 10, ok, error, replica=replica)


def analyze(
    tmp_path: Path, records: list[RequestRecord], header: str | None = "X-Served-By"
) -> dict[str, Any]:
    run = tmp_path / "run"
    run.mkdir()
    settings = {"users": 3, "warmup_s": WARMUP, "duration_s": 12, "replica_header": header}
    meta = {
        "format": 1, "run_id": "r", "target": "http://127.0.0.1:8000", "scenario": "json_post",
        "status": rundir.STATUS_COMPLETE, "started_unix_s": STARTED, "ended_unix_s": STARTED + 12,
        "settings": settings,
    }  # fmt: skip
    rundir.write_json(run / rundir.META, meta)
    write_requests(run / rundir.REQUESTS, records)
    return dict(analyzer.analyze_run(run))


def test_counts_shares_latency_and_imbalance_per_replica(tmp_path: Path) -> None:
    records = [rec(1000.5, 99.0, "a")]  # in the warmup: not counted
    records += [rec(1002.0 + i * 0.1, 10.0 + i, "a") for i in range(10)]
    records += [rec(1003.0 + i * 0.1, 20.0 + i, "b") for i in range(5)]
    records += [rec(1004.0, 30.0, "b", ok=False, status=503), rec(1004.5, 1.0, "", ok=False, status=0)]
    summary = analyze(tmp_path, records)
    section = summary["replicas"]
    assert section["source"] == "header X-Served-By" and section["count"] == 2
    a, b = section["replicas"]
    assert (a["replica"], a["requests"], a["errors"]) == ("a", 10, 0)
    assert (b["replica"], b["requests"], b["errors"]) == ("b", 6, 1)
    assert a["share"] == pytest.approx(10 / 16, abs=1e-6) and b["error_rate"] == pytest.approx(
        1 / 6, abs=1e-6
    )
    assert a["latency_ms"]["p50"] == pytest.approx(float(np.percentile([10.0 + i for i in range(10)], 50)))
    assert b["latency_ms"]["max"] == 24.0  # the failed request's 30 ms is not a latency
    assert a["throughput_rps"] == pytest.approx(10 / 10.0) and b["throughput_rps"] == pytest.approx(5 / 10.0)
    assert section["imbalance"] == pytest.approx((10 / 16) / 0.5, abs=1e-4)
    assert section["unattributed"] == 1
    assert any("1 request(s) named no replica" in n for n in summary["notices"])


def test_a_header_that_never_appears_is_said_once_and_invents_no_replica(tmp_path: Path) -> None:
    summary = analyze(tmp_path, [rec(1002.0 + i, 10.0) for i in range(5)])
    section = summary["replicas"]
    assert section["replicas"] == [] and section["count"] == 0 and section["imbalance"] is None
    assert section["unattributed"] == 5
    said = [n for n in summary["notices"] if "replica header" in n]
    assert len(said) == 1 and "X-Served-By" in said[0]


def test_without_the_option_there_is_no_section(tmp_path: Path) -> None:
    summary = analyze(tmp_path, [rec(1002.0 + i, 10.0) for i in range(5)], header=None)
    assert "replicas" not in summary


def test_the_report_escapes_what_the_server_named(tmp_path: Path) -> None:
    hostile = "<script>alert(1)</script>"
    summary = analyze(tmp_path, [rec(1002.0 + i, 10.0, hostile if i % 2 else "a") for i in range(6)])
    section = summary["replicas"]
    assert {r["replica"] for r in section["replicas"]} == {"a", hostile}
    frame = pd.DataFrame(
        {
            "start_unix_s": [1002.0, 1003.0],
            "latency_ms": [10.0, 11.0],
            "ok": [1, 1],
            "replica": ["a", hostile],
        }
    )
    html = replicas_html(summary, None, named_points(frame, COLUMN, STARTED))
    assert "<script>" not in html and "&lt;script&gt;" in html and "plot-replicas" in html
    md = "\n".join(replicas_markdown(summary))
    assert "| replica | requests | share |" in md and "<script>" not in md
