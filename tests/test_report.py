"""Tests of loadbench.report against run directories built by hand (no Locust, no server)."""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from loadbench import records, report, rundir
from loadbench.errors import RunDirError

START = 1_700_000_000.0
XSS = "<script>alert(1)</script>"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def make_meta(status: str = "complete") -> dict[str, Any]:
    return {
        "format": 1,
        "run_id": "20231114T221320Z-json_post",
        "target": "http://127.0.0.1:8000",
        "scenario": "json_post",
        "scenario_reason": "POST endpoint with a JSON payload file",
        "status": status,
        "started_unix_s": START,
        "ended_unix_s": START + 12.0,
        "command": ["loadbench", "run", "http://127.0.0.1:8000", "--users", "4", "-H", "Authorization: ***"],
        "settings": {
            "users": 4,
            "spawn_rate": 4.0,
            "duration_s": 12.0,
            "warmup_s": 2.0,
            "headers": ["Authorization: ***"],
            "scenario_args": ["payload=digits.jsonl"],
        },
        "versions": {"loadbench": "0.1.0", "locust": "2.31.0", "python": "3.11.2"},
        "host": {
            "hostname": "bench-1",
            "platform": "Linux-6.1-x86_64",
            "cpu_model": "Test CPU",
            "cpu_cores": 8,
            "memory_bytes": 16 * 1024**3,
        },
        "git_commit": "0123456789abcdef",
    }


def make_requests() -> list[records.RequestRecord]:
    """600 requests over 12 s; every 40th fails with a server error whose text holds markup."""
    out = []
    for i in range(600):
        name = "/predict" if i % 3 else "/health"
        ok = i % 40 != 39
        status = 200 if ok else (500 if i % 80 == 79 else 0)
        error = ""
        if not ok:
            error = f"HTTPError: 500 Server Error: {XSS}" if status else "ConnectionResetError: reset by peer"
        out.append(
            records.RequestRecord(
                start_unix_s=START + i * 0.02,
                latency_ms=4.0 + (i % 50) * 0.5,
                name=name,
                method="POST",
                status=status,
                response_bytes=120,
                ok=ok,
                error=error,
            )
        )
    return out


def make_summary(zero: bool = False) -> dict[str, Any]:
    """A hand-written summary.json; ``zero`` gives the shape of a run without a single request."""
    null_lat = dict.fromkeys(("p50", "p90", "p95", "p99", "p999", "max", "mean", "min"))
    lat = {
        "p50": 4.21,
        "p90": 20.5,
        "p95": 40.0,
        "p99": 152.4,
        "p999": 990.0,
        "max": 1234.4,
        "mean": 12.3,
        "min": 0.5,
    }
    return {
        "schema": 1,
        "run": {
            "id": "20231114T221320Z-json_post",
            "target": "http://127.0.0.1:8000",
            "scenario": "json_post",
            "status": "complete",
            "started_at": rundir.iso_utc(START),
            "ended_at": rundir.iso_utc(START + 12.0),
            "duration_s": 12.0,
            "users": 4,
            "warmup_s": 2.0,
        },
        "window": {"start_unix_s": START + 2.0, "end_unix_s": START + 12.0, "duration_s": 10.0},
        "requests": {
            "total": 0 if zero else 12345,
            "ok": 0 if zero else 12197,
            "errors": 0 if zero else 148,
            "error_rate": None if zero else 0.012,
            "warmup_excluded": 0 if zero else 100,
        },
        "throughput_rps": 0.0 if zero else 1234.5,
        "request_rate_rps": 0.0 if zero else 1249.3,
        "latency_ms": null_lat if zero else lat,
        "by_name": {}
        if zero
        else {
            "/predict": {
                "requests": 8230,
                "ok": 8131,
                "errors": 99,
                "error_rate": 0.012,
                "throughput_rps": 823.0,
                "latency_ms": lat,
            },
            f"/pipe|name{XSS}": {
                "requests": 4115,
                "ok": 4066,
                "errors": 49,
                "error_rate": 0.0119,
                "throughput_rps": 411.5,
                "latency_ms": null_lat,
            },
        },
        "errors": []
        if zero
        else [
            {
                "kind": "HTTP 500",
                "count": 100,
                "share": 0.6757,
                "example": f"HTTPError: 500 Server Error: {XSS}",
            },
            {"kind": "ConnectionResetError", "count": 48, "share": 0.3243, "example": "reset by peer"},
        ],
        "response_bytes": {"total": 0 if zero else 1_481_400, "mean": None if zero else 120.0},
        "notices": [] if zero else ["p99.9 rests on fewer than 1,000 requests", f"odd server text {XSS}"],
    }


def make_timeseries(seconds: int = 12, warmup: int = 2) -> pd.DataFrame:
    sec = np.arange(seconds)
    p50 = np.full(seconds, 15.0)
    p50[3] = np.nan  # a second without a successful request: written as an empty cell
    return pd.DataFrame(
        {
            "second": sec,
            "start_unix_s": START + sec,
            "requests": 50,
            "ok": np.where(sec % 2 == 1, 48, 50),
            "errors": np.where(sec % 2 == 1, 2, 0),
            "p50_ms": p50,
            "p99_ms": p50 * 1.5,
            "users": np.where(sec < 1, np.nan, 4.0),
            "in_warmup": (sec < warmup).astype(int),
        }
    )


def make_run_dir(path: Path, zero: bool = False, status: str = "complete") -> Path:
    """A complete, analyzed run directory written by hand."""
    path.mkdir(parents=True, exist_ok=True)
    rundir.write_json(path / rundir.META, make_meta(status))
    records.write_requests(path / rundir.REQUESTS, [] if zero else make_requests())
    rundir.write_json(path / rundir.SUMMARY, make_summary(zero))
    ts = make_timeseries().iloc[0:0] if zero else make_timeseries()
    ts.to_csv(path / rundir.TIMESERIES, index=False)
    return path


def _pngs(page: str) -> list[bytes]:
    found = re.findall(r'<img class="plot" src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    return [base64.b64decode(b) for b in found]


def test_render_report_writes_both_files(tmp_path: Path) -> None:
    run_dir = make_run_dir(tmp_path / "run")
    html_path, md_path = report.render_report(run_dir)
    assert html_path == run_dir / rundir.REPORT and md_path == run_dir / rundir.SUMMARY_MD
    assert html_path.is_file() and md_path.is_file()
    assert not list(run_dir.glob(".*.tmp"))  # atomic writes leave no temp files behind


def test_report_html_content(tmp_path: Path) -> None:
    page = report.render_report(make_run_dir(tmp_path / "run"))[0].read_text(encoding="utf-8")
    assert "loadbench report — json_post against http://127.0.0.1:8000" in page
    assert "class='badge ok'>complete<" in page
    for figure_id in ("plot-latency-time", "plot-percentiles", "plot-throughput", "plot-errors"):
        assert f'<figure id="{figure_id}">' in page
    pngs = _pngs(page)
    assert len(pngs) == 4 and page.count('<img class="plot"') == 4
    for png in pngs:
        assert png.startswith(PNG_SIGNATURE)
        assert 5_000 < len(png) < 1_000_000
    assert all(re.search(r'alt="[^"]+"', tag) for tag in re.findall(r"<img [^>]+>", page))
    # Headline numbers, formatted.
    for text in ("1,234.5 req/s", "4.21 ms", "152 ms", "1.20 %", "12,345", "1,234 ms", "990 ms"):
        assert text in page
    # Notices, tables and metadata.
    assert "p99.9 rests on fewer than 1,000 requests" in page
    assert "ConnectionResetError" in page and "67.57 %" in page
    assert "0123456789abcdef" in page and "Test CPU" in page and "16.0 GiB" in page
    assert "Authorization: ***" in page and "payload=digits.jsonl" in page
    assert "POST endpoint with a JSON payload file" in page
    assert "2023-11-14T22:13:20.000Z" in page
    assert "docs/metrics.md" in page and "numpy linear interpolation" in page


def test_report_html_escapes_server_and_user_text(tmp_path: Path) -> None:
    page = report.render_report(make_run_dir(tmp_path / "run"))[0].read_text(encoding="utf-8")
    assert XSS not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script" not in page.lower()


def test_report_html_is_self_contained(tmp_path: Path) -> None:
    page = report.render_report(make_run_dir(tmp_path / "run"))[0].read_text(encoding="utf-8")
    lowered = page.lower()
    assert "<link" not in lowered and "@import" not in lowered and "url(" not in lowered
    assert "<iframe" not in lowered and "<object" not in lowered
    for src in re.findall(r"""src\s*=\s*["']?([^"' >]+)""", page):
        assert src.startswith("data:image/png;base64,")
    # The only URLs are the target's own address, shown as text.
    assert set(re.findall(r"https?://[^\s<'\"]+", page)) == {"http://127.0.0.1:8000"}


@pytest.mark.parametrize(
    ("status", "badge"),
    [("interrupted", "interrupted"), ("failed", "failed"), ("running", "incomplete")],
)
def test_report_status_badge(tmp_path: Path, status: str, badge: str) -> None:
    run_dir = make_run_dir(tmp_path / "run", status=status)
    summary = make_summary()
    summary["run"]["status"] = status
    rundir.write_json(run_dir / rundir.SUMMARY, summary)
    page = report.render_report(run_dir)[0].read_text(encoding="utf-8")
    assert f">{badge}</span></h1>" in page


def test_summary_markdown(tmp_path: Path) -> None:
    md = report.render_report(make_run_dir(tmp_path / "run"))[1].read_text(encoding="utf-8")
    first = md.splitlines()[0]
    assert first == (
        "**loadbench** · json_post against http://127.0.0.1:8000 · 12,345 requests in 10.0 s · complete"
    )
    assert "| metric | value |" in md
    assert "| p99 | 152 ms |" in md
    assert "| throughput | 1,234.5 req/s |" in md
    assert "| error rate | 1.20 % |" in md
    # Per-name table (two names): the pipe in a name is escaped, markup is neutralised.
    assert "/pipe\\|name&lt;script&gt;" in md
    assert XSS not in md
    assert "**Top errors**" in md and "| HTTP 500 | 100 | 67.57 % |" in md
    assert "**Notices**" in md and "- p99.9 rests on fewer than 1,000 requests" in md
    for line in md.splitlines():
        if line.startswith("|"):
            assert line.endswith("|")


def test_zero_request_run(tmp_path: Path) -> None:
    run_dir = make_run_dir(tmp_path / "run", zero=True)
    html_path, md_path = report.render_report(run_dir)
    page = html_path.read_text(encoding="utf-8")
    assert len(_pngs(page)) == 4
    assert "No requests." in page and "No errors." in page
    assert report.DASH in page
    md = md_path.read_text(encoding="utf-8")
    assert "| p99 | – |" in md and " 0 requests in 10.0 s " in md
    assert "**Top errors**" not in md and "**Notices**" not in md


def test_single_name_has_no_per_name_markdown(tmp_path: Path) -> None:
    run_dir = make_run_dir(tmp_path / "run")
    summary = make_summary()
    summary["by_name"] = {"/predict": summary["by_name"]["/predict"]}
    rundir.write_json(run_dir / rundir.SUMMARY, summary)
    md = report.render_report(run_dir)[1].read_text(encoding="utf-8")
    assert "| name |" not in md


def test_meta_with_missing_optional_fields(tmp_path: Path) -> None:
    run_dir = make_run_dir(tmp_path / "run")
    rundir.write_json(run_dir / rundir.META, {"format": 1, "started_unix_s": START, "settings": {}})
    page = report.render_report(run_dir)[0].read_text(encoding="utf-8")
    assert "json_post" in page  # falls back to the summary's run block


@pytest.mark.parametrize("missing", [rundir.SUMMARY, rundir.TIMESERIES])
def test_unanalyzed_run_dir_raises(tmp_path: Path, missing: str) -> None:
    run_dir = make_run_dir(tmp_path / "run")
    (run_dir / missing).unlink()
    with pytest.raises(RunDirError, match="run the analyzer first"):
        report.render_report(run_dir)
    assert not (run_dir / rundir.REPORT).exists()


def test_corrupt_summary_raises(tmp_path: Path) -> None:
    run_dir = make_run_dir(tmp_path / "run")
    (run_dir / rundir.SUMMARY).write_text("{not json", encoding="utf-8")
    with pytest.raises(RunDirError, match="not valid JSON"):
        report.render_report(run_dir)


def test_error_kind_frame() -> None:
    reqs = pd.DataFrame(
        {
            "start_unix_s": [START + 0.5, START + 0.7, START + 3.2, START + 3.9],
            "status": [500, 0, 0, 200],
            "ok": [0, 0, 0, 1],
            "error": ["HTTPError: 500", "ConnectionResetError: reset", "", ""],
        }
    )
    kinds = report.error_kind_frame(reqs, START)
    assert kinds.to_dict("records") == [
        {"second": 0, "kind": "ConnectionResetError", "count": 1},
        {"second": 0, "kind": "HTTP 500", "count": 1},
        {"second": 3, "kind": "unknown error", "count": 1},
    ]


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (4.2137, "4.21 ms"),
        (152.4, "152 ms"),
        (1234.4, "1,234 ms"),
        (12.345, "12.3 ms"),
        (0.04231, "0.0423 ms"),
        (9.996, "10.0 ms"),
        (99.96, "100 ms"),
        (0.0, "0.0 ms"),
        (None, "–"),
        (float("nan"), "–"),
    ],
)
def test_format_ms(value: float | None, text: str) -> None:
    assert report.format_ms(value) == text


def test_format_rate_pct_count() -> None:
    assert report.format_rate(1234.54) == "1,234.5 req/s"
    assert report.format_rate(None) == "–"
    assert report.format_pct(0.012) == "1.20 %"
    assert report.format_pct(None) == "–"
    assert report.format_count(12345) == "12,345"
    assert report.format_bytes(16 * 1024**3) == "16.0 GiB"
    assert report.format_bytes(512) == "512 B"
