"""The Cache section of ``report.html`` and ``summary.md``, and the console's cache line, on run
directories built by hand: one whose server said hit or miss, one whose hits are a mixture estimate
with a hostile cache header name in its notice."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from loadbench.analyze.analyzer import analyze_run
from loadbench.cli.summary import cache_lines
from loadbench.record import rundir
from loadbench.record.records import RequestRecord, write_requests
from loadbench.report.cache import cache_html, cache_markdown
from loadbench.report.report import render_report

STARTED = 1000.0
XSS = "<script>alert(1)</script>"


def make_run(path: Path, records: list[RequestRecord], **settings: Any) -> Path:
    path.mkdir()
    meta = {
        "format": 1, "run_id": "cached", "target": "http://127.0.0.1:1", "scenario": "json_post",
        "status": rundir.STATUS_COMPLETE, "started_unix_s": STARTED, "ended_unix_s": STARTED + 30,
        "settings": {"users": 1, "warmup_s": 0.0, "duration_s": 30, **settings},
    }  # fmt: skip
    rundir.write_json(path / rundir.META, meta)
    write_requests(path / rundir.REQUESTS, records)
    return path


def keyed(i: int, latency: float, key: str, cache: str = "") -> RequestRecord:
    return RequestRecord(
        STARTED + 0.1 * i, latency, "/predict", "POST", 200, 5, True, extras={"payload_key": key}, cache=cache
    )


def test_a_run_whose_server_said_shows_figures_histogram_and_replay(tmp_path: Path) -> None:
    # Keys cycle over 4 bodies behind an LRU of 4 (the server's answers): the first 4 miss, the rest hit.
    records = [keyed(i, 20.0 + i % 3 if i < 4 else 1.0 + 0.01 * i, f"k{i % 4}", "miss" if i < 4 else "hit")
               for i in range(40)]  # fmt: skip
    run = make_run(tmp_path / "run", records, cache_header="X-Cache")
    summary = analyze_run(run)
    render_report(run)
    page = (run / rundir.REPORT).read_text()
    assert "<h2 id='cache'>Cache</h2>" in page
    for figure in ("plot-cache-latency", "plot-cache-replay"):
        assert f'<figure id="{figure}"><img class="plot" src="data:image/png;base64,' in page
    lines = (run / rundir.SUMMARY_MD).read_text().splitlines()
    assert "**Cache:** hits as the answers' cache header said." in lines
    assert "| hit ratio | 90.00 % |" in lines and "| hits / misses | 36 / 4 |" in lines
    assert "| 4 | 90.00 % | 90.00 % |" in lines  # an LRU or LFU of 4 would have hit as the server did
    assert "| 2 | 0.00 % | 0.00 % |" in lines  # a cycle of 4 through 2 entries never hits
    assert cache_lines(dict(summary)["cache"]) == [
        "  cache       hit ratio 90.00% (header), a hit 16.87x faster at p50, repeat share 90.00%"
    ]


def test_an_estimate_is_labelled_and_server_text_escaped(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    fast = rng.random(120) < 0.5
    latency = np.where(fast, 1.0, 40.0) * rng.lognormal(0.0, 0.05, 120)
    records = [keyed(i, float(ms), f"k{i % 30}") for i, ms in enumerate(latency)]
    run = make_run(tmp_path / "run", records, cache_header=XSS)
    analyze_run(run)
    render_report(run)
    page = (run / rundir.REPORT).read_text()
    assert "hits estimated from the latency alone" in page and "plot-cache-latency" in page
    assert XSS not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    text = (run / rundir.SUMMARY_MD).read_text()
    assert XSS not in text


def test_runs_without_the_section_show_nothing() -> None:
    summary: dict[str, Any] = {"requests": {"total": 3}}
    assert cache_html(summary, None) == "" and cache_markdown(summary) == []  # type: ignore[arg-type]
    assert cache_lines(None) == []
