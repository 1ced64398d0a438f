"""A run's first requests: ``summary.json`` ``cold_start`` (``--cold-start N``) and ``shared_prefix``
(``--shared-prefix-tokens N``) (docs/metrics.md, Cold start and Shared prefix)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from loadbench.analyze import analyzer
from loadbench.cli.summary import firsts_lines
from loadbench.record import rundir
from loadbench.record.records import RequestRecord, write_requests
from loadbench.report.firsts import firsts_html, firsts_markdown

STARTED = 1000.0


def write_run(tmp_path: Path, records: list[RequestRecord], **settings: Any) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    meta = {
        "format": 1, "run_id": "r", "target": "http://127.0.0.1:8000", "scenario": "openai_chat",
        "status": rundir.STATUS_COMPLETE, "started_unix_s": STARTED, "ended_unix_s": STARTED + 10,
        "settings": {"users": 2, "warmup_s": 2.0, "duration_s": 10, **settings},
    }  # fmt: skip
    rundir.write_json(run / rundir.META, meta)
    write_requests(run / rundir.REQUESTS, records)
    return run


def ok(start: float, latency: float, **extras: Any) -> RequestRecord:
    return RequestRecord(start, latency, "/v1/chat/completions", "POST", 200, 10, True, extras=extras or None)


def test_the_first_requests_are_reported_apart_from_the_steady_state_warmup_or_not(tmp_path: Path) -> None:
    # A target that has just started: 900 ms, then 300 ms, then failed once, then 10 ms from then on.
    records = [ok(1000.1, 900.0), ok(1001.0, 300.0)]
    records.append(
        RequestRecord(1001.4, 5.0, "/v1/chat/completions", "POST", 503, 9, False, "HTTPError: 503")
    )
    records += [ok(1001.5 + i * 0.5, 10.0 + (i % 3)) for i in range(14)]  # 8 of them in the window
    summary = analyzer.analyze_run(write_run(tmp_path, records, cold_start=4, preflight=False))
    cold = summary["cold_start"]
    assert (cold["requests"], cold["asked"], cold["errors"]) == (4, 4, 1)
    assert cold["first_ms"] == 900.0 and cold["latencies_ms"] == [900.0, 300.0, None, 10.0]
    assert cold["latency_ms"]["max"] == 900.0 and cold["latency_ms"]["p50"] == 300.0
    # The steady state: the window's requests that are not among the first four.
    steady = sorted(10.0 + (i % 3) for i in range(14) if 1001.5 + i * 0.5 >= STARTED + 2.0)
    assert cold["steady_p50_ms"] == steady[len(steady) // 2] == 11.0
    assert cold["first_vs_steady"] == round(900.0 / 11.0, 3) and cold["notices"] == []
    assert "cold start  first request 900 ms" in firsts_lines(summary)[0]
    html = firsts_html(summary)
    assert "Cold start" in html and "plot-cold-start" in html and "Shared prefix" not in html
    assert any("Cold start" in line for line in firsts_markdown(summary))


def test_a_preflight_and_a_short_run_are_said_and_runs_without_the_options_have_no_section(
    tmp_path: Path,
) -> None:
    summary = analyzer.analyze_run(
        write_run(tmp_path, [ok(1000.5, 50.0), ok(1003.0, 5.0)], cold_start=5, preflight=True)
    )
    notices = summary["cold_start"]["notices"]
    assert any("--no-preflight" in n for n in notices) and any(
        "fewer than --cold-start 5" in n for n in notices
    )
    assert all(n in summary["notices"] for n in notices)
    plain = tmp_path / "plain"
    plain.mkdir()
    summary = analyzer.analyze_run(write_run(plain, [ok(1000.5, 50.0), ok(1003.0, 5.0)]))
    assert "cold_start" not in summary and "shared_prefix" not in summary
    assert firsts_html(summary) == "" and firsts_markdown(summary) == [] and firsts_lines(summary) == []


def test_a_shared_prefix_splits_the_time_to_first_token_at_the_first_token_back(tmp_path: Path) -> None:
    # Two users start together (uncached: nobody's first token is back), the first token comes at
    # 1000.2 + 0.080; every request sent after it could find the prefix cached.
    records = [ok(1000.2, 500.0, ttft_ms=80.0), ok(1000.21, 500.0, ttft_ms=120.0)]
    records += [ok(1002.0 + i * 0.5, 400.0, ttft_ms=20.0 + i) for i in range(10)]
    settings = {"workload": {"shared_prefix_tokens": 1000}, "preflight": False}
    summary = analyzer.analyze_run(write_run(tmp_path, records, **settings))
    prefix = summary["shared_prefix"]
    assert prefix["tokens"] == 1000
    assert prefix["first"]["count"] == 2 and prefix["first"]["ttft_ms"]["p50"] == 100.0
    assert prefix["later"]["count"] == 10 and prefix["later"]["ttft_ms"]["p50"] == 24.5
    assert prefix["speedup_p50"] == round(100.0 / 24.5, 3)
    assert "1,000 shared tokens" in firsts_lines(summary)[0]
    assert "Shared prefix" in firsts_html(summary)
