"""Retries: attempts collapsed into the requests users saw, and ``summary.json`` ``retries``
(docs/metrics.md, Retries)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from loadbench.analyze import analyzer
from loadbench.analyze.attempts import split_attempts
from loadbench.record import rundir
from loadbench.record.records import RequestRecord, read_requests, write_requests

STARTED, WARMUP = 1000.0, 2.0
RETRIES = {"max": 2, "on": ["5xx", "connect"], "backoff_ms": [50, 2000], "budget": 0.1}
REFUSED = "ConnectionRefusedError: [Errno 111] Connection refused"


def attempt(start: float, latency: float, rid: str, n: int, ok: bool = True, status: int = 200,
            **kw: Any) -> RequestRecord:  # fmt: skip
    error = "" if ok else (f"HTTPError: {status} Server Error" if status else REFUSED)
    return RequestRecord(
        start, latency, "/predict", "POST", status, 10, ok, error, attempt=n, request_id=rid, **kw
    )


def write_run(tmp_path: Path, records: list[RequestRecord], **settings: Any) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    meta = {
        "format": 1, "run_id": "r", "target": "http://127.0.0.1:8000", "scenario": "json_post",
        "status": rundir.STATUS_COMPLETE, "started_unix_s": STARTED, "ended_unix_s": STARTED + 12,
        "settings": {"users": 3, "warmup_s": WARMUP, "duration_s": 12, **settings},
    }  # fmt: skip
    rundir.write_json(run / rundir.META, meta)
    write_requests(run / rundir.REQUESTS, records)
    return run


def analyze(tmp_path: Path, records: list[RequestRecord], **settings: Any) -> dict[str, Any]:
    return dict(analyzer.analyze_run(write_run(tmp_path, records, **settings)))


def records_of_a_retried_run() -> list[RequestRecord]:
    return [
        attempt(1001.0, 7.0, "w", 1),  # in the warmup: in no figure
        # r1: 503, refused, then ok: recovered after two retries.
        attempt(1002.0, 5.0, "r1", 1, ok=False, status=503),
        attempt(1002.105, 1.5, "r1", 2, ok=False, status=0),
        attempt(1002.4, 20.0, "r1", 3),
        # r2: ok at once.
        attempt(1003.0, 10.0, "r2", 1),
        # r3: 503, then 503: exhausted.
        attempt(1004.0, 4.0, "r3", 1, ok=False, status=503),
        attempt(1004.2, 6.0, "r3", 2, ok=False, status=503),
        # r4: ok at once.
        attempt(1005.0, 30.0, "r4", 1),
    ]


def test_attempts_collapse_into_requests_whose_latency_includes_the_backoff(tmp_path: Path) -> None:
    path = tmp_path / "requests.csv"
    shuffled = records_of_a_retried_run()
    shuffled[1], shuffled[3] = shuffled[3], shuffled[1]  # the file's order does not matter
    write_requests(path, [*shuffled, RequestRecord(1006.0, 3.0, "/health", "GET", 200, 2, True)])
    split = split_attempts(read_requests(path))
    requests = split.requests
    assert requests["request_id"].tolist() == ["w", "r1", "r2", "r3", "r4", ""]
    r1 = requests.iloc[1]
    # From the first send (1002.0) to the last attempt's end (1002.4 + 20 ms): 420 ms.
    assert (r1["start_unix_s"], r1["latency_ms"], r1["ok"], r1["status"], r1["attempt"]) == (
        1002.0, 420.0, 1, 200, 3.0
    )  # fmt: skip
    r3 = requests.iloc[3]
    assert (r3["latency_ms"], r3["ok"], r3["status"], r3["error"]) == (
        206.0,
        0,
        503,
        "HTTPError: 503 Server Error",
    )
    assert requests.iloc[5]["name"] == "/health" and requests.iloc[5]["latency_ms"] == 3.0  # no id: as it is
    # The file holds w, r1#3, r1#2, r1#1, r2, r3#1, r3#2, r4, /health.
    assert split.request_of.tolist() == [0, 1, 1, 1, 2, 3, 3, 4, 5]
    assert split.final.tolist() == [True, True, False, False, True, False, True, True, True]
    assert split.retried


def test_without_request_ids_the_records_are_the_requests() -> None:
    frame = pd.DataFrame(
        {"start_unix_s": [1.0], "latency_ms": [2.0], "request_id": pd.Series([""], dtype="string")}
    )
    split = split_attempts(frame)
    assert split.requests is frame and split.attempts is frame and not split.retried


def test_the_summary_is_about_requests_and_retries_about_attempts(tmp_path: Path) -> None:
    summary = analyze(tmp_path, records_of_a_retried_run(), retries=RETRIES)
    reqs = summary["requests"]
    assert (reqs["total"], reqs["ok"], reqs["errors"], reqs["warmup_excluded"]) == (4, 3, 1, 1)
    assert reqs["error_rate"] == 0.25
    # Latency over the 3 successful requests: r1 420 ms (backoff included), r2 10 ms, r4 30 ms.
    assert summary["latency_ms"]["max"] == 420.0 and summary["latency_ms"]["min"] == 10.0
    assert summary["latency_ms"]["p50"] == 30.0
    assert summary["throughput_rps"] == 0.3  # 3 successful requests / 10 s, not 7 attempts
    # The error table: the user-visible failure only (r3's last attempt).
    assert [(e["kind"], e["count"]) for e in summary["errors"]] == [("HTTP 503", 1)]
    retries = summary["retries"]
    assert list(retries) == [
        "requests", "attempts", "retries", "amplification", "retried_requests", "recovered", "exhausted",
        "attempt_error_rate", "error_rate", "by_reason", "settings",
    ]  # fmt: skip
    assert (retries["requests"], retries["attempts"], retries["retries"]) == (4, 7, 3)
    assert retries["amplification"] == round(7 / 4, 6) == 1.75
    assert (retries["retried_requests"], retries["recovered"], retries["exhausted"]) == (2, 1, 1)
    assert retries["attempt_error_rate"] == round(4 / 7, 6) and retries["error_rate"] == 0.25
    # Retried failures: r1's 503 and refusal, r3's first 503 (its last is not retried).
    assert retries["by_reason"] == [
        {"kind": "HTTP 503", "count": 2},
        {"kind": "connection refused", "count": 1},
    ]
    assert retries["settings"] == RETRIES
    series = pd.read_csv(tmp_path / "run" / rundir.TIMESERIES)
    assert series["requests"].sum() == 5  # requests per second, the warmup's included: not attempts


def test_open_loop_latency_counts_from_the_first_attempts_due_time(tmp_path: Path) -> None:
    records = [
        attempt(1002.010, 5.0, "r1", 1, ok=False, status=503, intended_unix_s=1002.0),
        attempt(1002.100, 8.0, "r1", 2, intended_unix_s=1002.0),
    ]
    summary = analyze(tmp_path, records, retries=RETRIES, load={"model": "open", "rate": 1.0})
    # Due at 1002.0, last attempt ended at 1002.108: 108 ms; from the first send: 98 ms.
    assert summary["latency_ms"]["max"] == 108.0 and summary["service_time_ms"]["max"] == 98.0
    assert summary["retries"]["amplification"] == 2.0


def test_a_run_without_retries_has_no_section(tmp_path: Path) -> None:
    records = [RequestRecord(1002.0 + i, 10.0, "/p", "POST", 200, 1, True) for i in range(3)]
    summary = analyze(tmp_path, records)
    assert "retries" not in summary and summary["requests"]["total"] == 3


def test_retries_configured_but_never_needed_amplify_by_one(tmp_path: Path) -> None:
    summary = analyze(tmp_path, [attempt(1002.0 + i, 10.0, f"r{i}", 1) for i in range(4)], retries=RETRIES)
    retries = summary["retries"]
    assert (retries["attempts"], retries["retries"], retries["amplification"]) == (4, 0, 1.0)
    assert retries["by_reason"] == [] and retries["recovered"] == retries["exhausted"] == 0


def test_a_retry_in_the_window_of_a_request_due_in_the_warmup_counts_with_its_request(tmp_path: Path) -> None:
    records = [
        attempt(1001.9, 5.0, "r1", 1, ok=False, status=503),
        attempt(1002.3, 5.0, "r1", 2),
        attempt(1003.0, 5.0, "r2", 1),
    ]
    retries = analyze(tmp_path, records, retries=RETRIES)["retries"]
    assert (retries["requests"], retries["attempts"], retries["amplification"]) == (1, 1, 1.0)


@pytest.mark.parametrize("empty", [True, False])
def test_zero_requests(tmp_path: Path, empty: bool) -> None:
    records = [] if empty else [attempt(1000.5, 5.0, "w", 1)]
    retries = analyze(tmp_path, records, retries=RETRIES)["retries"]
    assert (retries["requests"], retries["attempts"], retries["amplification"]) == (0, 0, None)
    assert retries["attempt_error_rate"] == 0.0 and retries["error_rate"] == 0.0
