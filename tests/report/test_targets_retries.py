"""The Targets and Retries sections of ``report.html`` and ``summary.md``, on a run directory built by
hand: two targets and a third that got nothing, one of them failing for two seconds mid-run, its
failures retried on the other (failover)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
from helpers import run_cli

from loadbench.record import rundir
from loadbench.record.records import RequestRecord, write_requests
from loadbench.report import plotkit
from loadbench.report.markdown import md
from loadbench.report.replicas import latency_by
from loadbench.report.retries import retries_html, retries_markdown
from loadbench.report.targets import targets_html, targets_markdown

STARTED = 1000.0
XSS = "<script>alert(1)</script>"
# C got nothing, and its name would break matplotlib's mathtext if a legend read it as such.
A, B, C = "http://a:1", f"http://b:2/{XSS}", "http://c:3/$\\frac$"
HOSTILE_ERROR = "<img src=x onerror=alert(1)>: boom"
RETRIES = {"max": 1, "on": ["connect"], "backoff_ms": [50, 2000], "budget": None}


def make_records() -> list[RequestRecord]:
    """40 requests in the window, every 0.25 s, alternating A and B; B fails from 6 s to 8 s into
    the run, and each of its 4 failures is retried on A 50 ms later. One more in the warmup."""
    out = [RequestRecord(1001.0, 10.0, "/predict", "POST", 200, 5, True, target=A, attempt=1, request_id="w")]
    for i in range(40):
        t = 1002.0 + i * 0.25
        rid = f"r{i}"
        if i % 2 == 0:
            out.append(
                RequestRecord(t, 10.0, "/predict", "POST", 200, 5, True, target=A, attempt=1, request_id=rid)
            )
        elif 1006.0 <= t < 1008.0:
            out.append(
                RequestRecord(
                    t,
                    5.0,
                    "/predict",
                    "POST",
                    0,
                    0,
                    False,
                    HOSTILE_ERROR,
                    target=B,
                    attempt=1,
                    request_id=rid,
                )
            )
            out.append(
                RequestRecord(
                    t + 0.05, 10.0, "/predict", "POST", 200, 5, True, target=A, attempt=2, request_id=rid
                )
            )
        else:
            out.append(
                RequestRecord(t, 20.0, "/predict", "POST", 200, 5, True, target=B, attempt=1, request_id=rid)
            )
    return out


def make_run(path: Path) -> Path:
    path.mkdir()
    meta = {
        "format": 1, "run_id": "balanced", "target": A, "scenario": "json_post", "status": rundir.STATUS_COMPLETE,
        "started_unix_s": STARTED, "ended_unix_s": STARTED + 12,
        "settings": {"users": 2, "warmup_s": 2.0, "duration_s": 12, "targets": [A, B, C], "balance": "round-robin",
                     "retries": RETRIES},
    }  # fmt: skip
    rundir.write_json(path / rundir.META, meta)
    write_requests(path / rundir.REQUESTS, make_records())
    return path


def test_loadbench_report_shows_targets_and_retries_escaped(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run")
    result = run_cli("report", str(run))
    assert result.returncode == 0, result.stderr
    summary = json.loads((run / rundir.SUMMARY).read_text())
    # The figures users saw: 40 requests, none failed, the retried ones 50 ms + 10 ms long.
    assert summary["requests"]["total"] == 40 and summary["requests"]["errors"] == 0
    assert summary["latency_ms"]["max"] == 60.0 and summary["errors"] == []
    targets = summary["targets"]
    counts = [(t["url"], t["requests"], t["errors"], t["share"]) for t in targets["targets"]]
    assert counts == [(A, 24, 0, 0.545455), (B, 20, 4, 0.454545), (C, 0, 0, 0.0)]
    assert targets["imbalance"] == 1.6364 and targets["policy"] == "round-robin"
    retries = summary["retries"]
    assert (retries["requests"], retries["attempts"], retries["retries"], retries["amplification"]) == (
        40,
        44,
        4,
        1.1,
    )
    assert (retries["recovered"], retries["exhausted"], retries["attempt_error_rate"]) == (4, 0, 0.090909)
    assert retries["by_reason"] == [{"kind": "<img src=x onerror=alert(1)>", "count": 4}]

    page = (run / rundir.REPORT).read_text()
    assert "<h2 id='targets'>Targets</h2>" in page and "<h2 id='retries'>Retries</h2>" in page
    for figure in ("plot-targets-latency", "plot-targets-traffic", "plot-latency-time"):
        assert f'<figure id="{figure}"><img class="plot" src="data:image/png;base64,' in page
    assert XSS not in page and "<img src=x" not in page
    assert "http://b:2/&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert f"1 target(s) got no request in the measured window: {C}" in page

    text = (run / rundir.SUMMARY_MD).read_text()
    assert XSS not in text and "<img" not in text
    lines = text.splitlines()
    header = "| target | share | requests | errors | error rate | throughput | p50 | p90 | p99 | max |"
    at = lines.index(header)
    assert lines[at + 2 : at + 5] == [
        "| http://a:1 | 54.55 % | 24 | 0 | 0.00 % | 2.4 req/s | 10.0 ms | 10.0 ms | 10.0 ms | 10.0 ms |",
        "| http://b:2/&lt;script&gt;alert(1)&lt;/script&gt; | 45.45 % | 20 | 4 | 20.00 % | 1.6 req/s | 20.0 ms "
        "| 20.0 ms | 20.0 ms | 20.0 ms |",
        f"| {md(C)} | 0.00 % | 0 | 0 | – | 0.0 req/s | – | – | – | – |",
    ]
    assert "**Retries:** up to 1 retry, on connect, backoff 50..2,000 ms" in lines
    assert "| amplification | 1.100× |" in lines and "| recovered (retried, then ok) | 4 |" in lines
    assert "| attempt error rate | 9.09 % |" in lines and "| error rate (user-visible) | 0.00 % |" in lines


def test_runs_without_them_have_neither_section() -> None:
    summary: dict[str, Any] = {"requests": {"total": 3}}
    assert targets_html(summary, None, None) == "" and targets_markdown(summary) == []
    assert retries_html(summary) == "" and retries_markdown(summary) == []


def test_names_from_the_run_are_shown_as_typed_in_legends() -> None:
    frame = pd.DataFrame(
        {"start_unix_s": [1.0, 2.0], "latency_ms": [1.0, 2.0], "ok": [1, 1], "target": ["a$\\frac$b", "_c"]}
    )
    fig = latency_by(frame, "target", "t", 0.0, None, listed=["_c", "idle"])
    assert fig is not None and plotkit.figure_to_png(fig).startswith(b"\x89PNG")  # no mathtext error
    legend = fig.axes[0].get_legend()
    assert [t.get_text() for t in legend.get_texts()] == [
        " _c",
        "a\\$\\frac\\$b",
    ]  # listed first, none hidden
