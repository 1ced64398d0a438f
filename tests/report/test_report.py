"""Tests of loadbench.report.report against run directories built by hand (no Locust, no server)."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from test_plots import REMOTE, make_sample_rows

from loadbench.analyze.resources import compute_resources, ok_latency_by_second
from loadbench.errors import RunDirError
from loadbench.record import records, rundir, series
from loadbench.report import report

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


def test_error_tables_show_what_the_server_said_escaped(tmp_path: Path) -> None:
    run_dir = make_run_dir(tmp_path / "run")
    summary = make_summary()
    said = f"{XSS} \u202eexe.txt | col | 64 features"
    summary["errors"] = [
        {
            "kind": "HTTP 400",
            "count": 90,
            "share": 0.6,
            "example": "LocustBadStatusCode: 400",
            "server_message": said,
        },
        {
            "kind": "HTTP 429",
            "count": 40,
            "share": 0.3,
            "example": "LocustBadStatusCode: 429",
            "retry_after": "30",
        },
        {"kind": "connection reset", "count": 18, "share": 0.1, "example": "ConnectionResetError: reset"},
        {
            "kind": "HTTP 400",
            "count": 5,
            "share": 0.03,
            "example": "LocustBadStatusCode: 400",
            "other_messages": 12,
        },
    ]
    rundir.write_json(run_dir / rundir.SUMMARY, summary)
    html_path, md_path = report.render_report(run_dir)
    page = html_path.read_text(encoding="utf-8")
    table = page[page.index("<h2>Errors</h2>") : page.index("<h2>Run</h2>")]
    headers = re.findall(r"<th scope='col'[^>]*>([^<]*)</th>", table)
    assert headers == ["kind", "count", "share", "server&#x27;s message", "Retry-After", "example"]
    assert "<td>&lt;script&gt;alert(1)&lt;/script&gt; &lt;U+202E&gt;exe.txt | col | 64 features</td>" in table
    assert "<td>30</td>" in table and table.count("<td>–</td>") == 5  # each row without one: a dash
    assert "<td>(12 other messages)</td>" in table  # a kind's rarer messages, counted together
    assert XSS not in page and "\u202e" not in page
    md = md_path.read_text(encoding="utf-8")
    assert "| kind | count | share | server's message | Retry-After | example |" in md
    assert (
        "| HTTP 400 | 90 | 60.00 % | &lt;script&gt;alert(1)&lt;/script&gt; &lt;U+202E&gt;exe.txt \\| col \\| 64 "
        "features | – | LocustBadStatusCode: 400 |" in md
    )
    assert "| HTTP 429 | 40 | 30.00 % | – | 30 | LocustBadStatusCode: 429 |" in md
    # Without anything the server said, the tables keep their four columns.
    old = report.render_report(make_run_dir(tmp_path / "old"))
    assert "server&#x27;s message" not in old[0].read_text(encoding="utf-8")
    assert "| kind | count | share | example |" in old[1].read_text(encoding="utf-8")


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
        {"second": 0, "kind": "HTTP 500", "count": 1},
        {"second": 0, "kind": "connection reset", "count": 1},
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


# ---------------------------------------------------------------------------------------------
# Resources


def make_sampler_info() -> dict[str, Any]:
    return {
        "interval_s": 0.25,
        "hostname": "bench-1",
        "server": {
            "pid": 4242,
            "how": "listening on port 8000 of the target",
            "name": "python3",
            "cmdline": f"python3 serve.py --banner {XSS}",
        },
        "gpus": [
            {"index": 0, "name": "NVIDIA H100 80GB HBM3"},
            {"index": 1, "name": "NVIDIA H100 80GB HBM3"},
        ],
        "agents": [
            {
                "label": REMOTE,
                "offset_s": 0.0123,
                "uncertainty_s": 0.0021,
                "remote": {"gpus": [{"index": 0, "name": "NVIDIA A100-SXM4-40GB"}]},
            }
        ],
        "notices": [f"odd sampler notice {XSS}"],
    }


def make_resources_run_dir(path: Path, gpus: bool = True) -> Path:
    """An analyzed run directory with resource samples: 2 local GPUs, a remote host with one GPU,
    Prometheus series and a saturated load generator; the summary's resources block computed by
    `compute_resources` over the measured window, as the analyzer does."""
    run_dir = make_run_dir(path)
    rows = make_sample_rows(start=START, gpus=gpus)
    with open(run_dir / rundir.SAMPLES, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    info = make_sampler_info()
    rundir.write_json(run_dir / rundir.SAMPLER_INFO, info)
    requests = records.read_requests(run_dir / rundir.REQUESTS)
    window = requests[requests["start_unix_s"] >= START + 2.0]
    samples = series.read_samples(run_dir / rundir.SAMPLES)
    resources = compute_resources(
        samples,
        info,
        START + 2.0,
        START + 12.0,
        ok_latency_by_second(window, START + 2.0),
        int(window["ok"].sum()),
    )
    # Latency in the hand-built requests repeats every second, so nothing correlates: set some.
    resources["latency_correlation"] = {f"res{i}.value": round((-1) ** i * i / 10, 3) for i in range(10)}
    summary = make_summary()
    summary["resources"] = resources
    if resources["generator"]["saturated"]:
        summary["notices"].append(resources["notices"][-1])
    rundir.write_json(run_dir / rundir.SUMMARY, summary)
    return run_dir


def _section(page: str) -> str:
    return page[page.index("<h2 id='resources'>") : page.index("<h2>Requests by name")]


def test_resources_block_computed(tmp_path: Path) -> None:
    summary = rundir.read_json(make_resources_run_dir(tmp_path / "run") / rundir.SUMMARY)
    resources = summary["resources"]
    assert resources["sampled"] and resources["generator"]["saturated"]
    assert [g["index"] for g in resources["gpus"]] == [0, 1]
    assert list(resources["remote"]) == [REMOTE]
    assert len(resources["prometheus"]) == 36


def test_report_resources_section(tmp_path: Path) -> None:
    html_path, _ = report.render_report(make_resources_run_dir(tmp_path / "run"))
    page = html_path.read_text(encoding="utf-8")
    section = _section(page)
    assert page.index("<h2>Plots</h2>") < page.index("<h2 id='resources'>")
    assert '<figure id="plot-resources"><img class="plot"' in section
    pngs = _pngs(page)
    assert len(pngs) == 5 and all(p.startswith(PNG_SIGNATURE) for p in pngs)
    # The server process, with how it was found.
    assert "pid 4242" in section and "found by listening on port 8000 of the target" in section
    assert "python3 serve.py --banner &lt;script&gt;alert(1)&lt;/script&gt;" in section
    # Host and process rows, formatted.
    for text in (
        "host CPU (% of all cores)",
        "server CPU (% of one core)",
        "server memory (RSS)",
        "2.0 GiB",
        "server open file descriptors",
        "<td class=n>57</td>",
        "network received",
        "2.4 MiB/s",
        "host load average (1 min)",
        "<td class=n>2.50</td>",
        "load generator CPU (% of one core)",
        "<span class='flag' title='generator saturated'>saturated</span>",
    ):
        assert text in section, text
    # GPUs: one column each, local table then the remote host's.
    assert "<th scope='col' class=n>gpu0</th><th scope='col' class=n>gpu1</th>" in section
    assert "NVIDIA H100 80GB HBM3" in section and "NVIDIA A100-SXM4-40GB" in section
    assert "20,480 / 81,920 MiB" in section and "22,528 / 81,920 MiB" in section
    assert "18,432 MiB" in section  # the server's own GPU memory
    assert "/ 700.0 W" in section and "62 °C" in section and "1,980 MHz" in section
    assert "286.1 MiB/s / 95.4 MiB/s" in section
    assert "(NVML total energy counter)" in section and "(power integrated over time)" in section
    assert "energy per successful request" in section
    # Remote host with its clock offset.
    assert f"Remote host <span class='mono'>{REMOTE}</span>" in section
    assert "clock offset +12.3 ms ± 2.1 ms" in section
    # Correlations: 8 strongest by |r|, sign kept.
    corr = section[section.index("Latency correlation") :]
    shown = re.findall(r"res(\d)\.value", corr)
    assert shown == ["9", "8", "7", "6", "5", "4", "3", "2"]
    assert "<td class=n>-0.90</td>" in corr and "<td class=n>+0.80</td>" in corr
    # Prometheus: 30 of 36 series, the label value escaped.
    prom = section[section.index("<h3>Prometheus</h3>") :]
    prom = prom[: prom.index("</table>")]
    assert prom.count("<tr>") == 1 + report.MAX_PROM_SERIES
    assert "… and 6 more series" in section
    assert "inflight_requests{model=&quot;&lt;script&gt;alert(1)&lt;/script&gt;&quot;}" in section
    # Resource notices, escaped.
    assert "odd sampler notice &lt;script&gt;" in section
    assert XSS not in page and "<script" not in page.lower()


def test_report_saturation_warning_near_the_top(tmp_path: Path) -> None:
    page = report.render_report(make_resources_run_dir(tmp_path / "run"))[0].read_text(encoding="utf-8")
    alert = page.index("<p class='alert' role='alert'>")
    assert page.index("class='tiles'") < alert < page.index("<h2>Summary</h2>")
    assert "latency and throughput may be limited by the generator" in page[alert:].lower()
    # The analyzer's copy of the notice is not repeated in the header's notice list.
    header = page[: page.index("</header>")]
    assert header.count("may be limited by the generator") == 1
    # The GPU tile: mean utilization of the first GPU.
    assert "<div class='k'>GPU util</div>" in page


def test_report_resources_without_gpus(tmp_path: Path) -> None:
    page = report.render_report(make_resources_run_dir(tmp_path / "run", gpus=False))[0].read_text("utf-8")
    section = _section(page)
    assert '<figure id="plot-resources">' in section
    assert "<div class='k'>GPU util</div>" not in page
    assert "<h3>GPUs</h3>" not in section and "<h3>Energy</h3>" not in section


def test_summary_markdown_resources(tmp_path: Path) -> None:
    md = report.render_report(make_resources_run_dir(tmp_path / "run"))[1].read_text(encoding="utf-8")
    block = md[md.index("**Resources**") :]
    assert "- **Warning:** The load generator was saturated" in block
    assert "- server process: CPU mean" in block and "RSS max 2.0 GiB" in block
    assert "- gpu0 (NVIDIA H100 80GB HBM3): util mean" in block and "memory max 20,480 / 81,920 MiB" in block
    assert f"- {REMOTE} gpu0 (NVIDIA A100-SXM4-40GB)" in block
    assert " per request (" in block
    assert md.count("may be limited by the generator") == 1
    assert XSS not in md
    assert len(block.split("**Notices**")[0].splitlines()) <= 10  # short


def test_report_without_resources_key(tmp_path: Path) -> None:
    run_dir = make_run_dir(tmp_path / "run")  # an older summary: no "resources" at all
    html_path, md_path = report.render_report(run_dir)
    page = html_path.read_text(encoding="utf-8")
    assert "<h2 id='resources'>Resources</h2>" in page
    assert "No resource data" in _section(page) and "plot-resources" not in page
    assert len(_pngs(page)) == 4 and "GPU util" not in page and "class='alert'" not in page
    assert "**Resources**" not in md_path.read_text(encoding="utf-8")


def test_report_unsampled_run(tmp_path: Path) -> None:
    run_dir = make_run_dir(tmp_path / "run")
    summary = make_summary()
    summary["resources"] = {"sampled": False, "samples": 0, "notices": [f"no sampler {XSS}"]}
    rundir.write_json(run_dir / rundir.SUMMARY, summary)
    html_path, md_path = report.render_report(run_dir)
    section = _section(html_path.read_text(encoding="utf-8"))
    assert "No resource samples" in section and "no sampler &lt;script&gt;" in section
    assert "plot-resources" not in section
    assert "**Resources**" not in md_path.read_text(encoding="utf-8")


def test_report_resources_without_samples_file(tmp_path: Path) -> None:
    run_dir = make_resources_run_dir(tmp_path / "run")
    (run_dir / rundir.SAMPLES).unlink()
    page = report.render_report(run_dir)[0].read_text(encoding="utf-8")
    section = _section(page)
    assert "plot-resources" not in section and "No plot" in section
    assert "host CPU (% of all cores)" in section and len(_pngs(page)) == 4


def test_report_resources_with_nulls(tmp_path: Path) -> None:
    run_dir = make_resources_run_dir(tmp_path / "run")
    summary = rundir.read_json(run_dir / rundir.SUMMARY)
    resources = summary["resources"]
    resources["gpus"][0] = {"index": 0}
    resources["host"] = {"cpu_percent": {"mean": None, "p95": None, "max": None}}
    resources["server_process"] = None
    resources["remote"][REMOTE] = {"clock_offset_s": None}
    resources["energy"] = None
    resources["prometheus"] = None
    resources["latency_correlation"] = {"x": None}
    rundir.write_json(run_dir / rundir.SUMMARY, summary)
    section = _section(report.render_report(run_dir)[0].read_text(encoding="utf-8"))
    assert "No server process was sampled" in section and "clock offset unknown" in section


def test_resource_formatting() -> None:
    assert report.format_percent(56.72) == "56.7 %"
    assert report.format_byte_rate(1.5 * 1024**2) == "1.5 MiB/s"
    assert report.format_number(24.0) == "24" and report.format_number(7.25) == "7.2"
    assert report.format_value(0.123456) == "0.1235" and report.format_value(12345.6) == "12,346"
    assert report.format_joules(3600.4) == "3,600 J" and report.format_joules(0.01234) == "0.01234 J"
    for fmt in (report.format_percent, report.format_byte_rate, report.format_value, report.format_joules):
        assert fmt(None) == report.DASH


# --- where the time goes (latency_breakdown) ---------------------------------------------------


def _time_section(page: str) -> str:
    start = page.index("<h2 id='time'>Where the time goes</h2>")
    return page[start : page.index("<h2", start + 1)]


def test_report_where_the_time_goes(tmp_path: Path) -> None:
    run_dir = make_run_dir(tmp_path / "run")
    meta = make_meta()
    meta["network"] = {"rtt_ms_median": 0.25, "rtt_ms_min": 0.125, "samples": 20, "method": XSS}
    rundir.write_json(run_dir / rundir.META, meta)
    summary = make_summary()
    summary["service_time_ms"] = {"p50": 5.0}
    summary["latency_breakdown"] = {
        "network_rtt_ms": 0.25,
        "server_ms_p50": 4.75,
        "network_share_p50": 0.05,
        "method": XSS,
        "phases_ms": {
            "connect_ms": {"p50": 1.5, "p99": 3.25},
            "new_connections": 4,
            "ttfb_ms": {"p50": 4.5, "p99": 17.5},
            "download_ms": {"p50": 0.5, "p99": 2.5},
        },
    }
    rundir.write_json(run_dir / rundir.SUMMARY, summary)
    html_path, md_path = report.render_report(run_dir)
    section = _time_section(html_path.read_text(encoding="utf-8"))
    for text in ("0.250 ms", "median of 20 TCP connects", "0.125 ms", "5.00 ms", "4.75 ms (95.00 % of p50)"):
        assert text in section, text
    assert "5.00 %" in section  # the network's share
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", section)
    for label, p50, p99 in (
        ("connection set-up", "1.50 ms", "3.25 ms"),
        ("time to first byte", "4.50 ms", "17.5 ms"),
    ):
        i = next(n for n, c in enumerate(cells) if c.startswith(label))
        assert cells[i + 1 : i + 3] == [p50, p99]
    assert "4 of them opened a connection" in section and "--http2 path only" not in section
    assert XSS not in section
    md = md_path.read_text(encoding="utf-8")
    line = next(x for x in md.splitlines() if x.startswith("**Where the time goes:**"))
    assert "network round trip 0.250 ms (5.00 % of p50), server 4.75 ms at p50" in line
    assert "TTFB p50 4.50 ms / p99 17.5 ms" in line and "download p50 0.500 ms / p99 2.50 ms" in line


def test_report_where_the_time_goes_on_the_http1_path(tmp_path: Path) -> None:
    # A round trip but no per-request phases: the default client records none, and says so.
    run_dir = make_run_dir(tmp_path / "run")
    summary = make_summary()
    summary["latency_breakdown"] = {"network_rtt_ms": 0.5, "server_ms_p50": 3.71, "network_share_p50": 0.1188}
    rundir.write_json(run_dir / rundir.SUMMARY, summary)
    html_path, md_path = report.render_report(run_dir)
    section = _time_section(html_path.read_text(encoding="utf-8"))
    assert "3.71 ms (88.12 % of p50)" in section and "<table><thead>" not in section
    assert "--http2 path only" in section and "no hook" in section
    md = md_path.read_text(encoding="utf-8")
    assert (
        "**Where the time goes:** network round trip 0.500 ms (11.88 % of p50), server 3.71 ms at p50" in md
    )
    assert "TTFB" not in md


def test_report_where_the_time_goes_without_data(tmp_path: Path) -> None:
    html_path, md_path = report.render_report(make_run_dir(tmp_path / "run"))
    section = _time_section(html_path.read_text(encoding="utf-8"))
    assert "No breakdown for this run" in section and "<table" not in section
    assert "Where the time goes" not in md_path.read_text(encoding="utf-8")
