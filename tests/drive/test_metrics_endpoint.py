"""``--metrics-port``: a real demo run scraped over HTTP during and after its load; the final
figures equal summary.json's (`loadbench.drive.exporter`)."""

from __future__ import annotations

import json
import socket
import time
import urllib.request
from collections import defaultdict
from pathlib import Path

import pytest
from helpers import run_cli, start_cli
from prometheus_client.parser import text_string_to_metric_families

from loadbench.drive.histograms import histogram_quantile

pytestmark = pytest.mark.e2e


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scrape(url: str) -> list[tuple[str, dict[str, str], float]] | None:
    """The endpoint's samples, or None while it does not answer."""
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            text = answer.read().decode()
    except OSError:
        return None
    return [(s.name, s.labels, s.value) for f in text_string_to_metric_families(text) for s in f.samples]


def requests_total(samples: list[tuple[str, dict[str, str], float]]) -> float:
    return sum(v for name, _, v in samples if name == "loadbench_requests_total")


def ok_p50_s(samples: list[tuple[str, dict[str, str], float]]) -> float:
    """histogram_quantile(0.5, sum by (le) (loadbench_request_duration_seconds_bucket{ok="true"}))."""
    by_le: dict[float, float] = defaultdict(float)
    for name, labels, value in samples:
        if name == "loadbench_request_duration_seconds_bucket" and labels["ok"] == "true":
            by_le[float(labels["le"])] += value
    les = sorted(by_le)
    return histogram_quantile(0.5, les[:-1], [by_le[le] for le in les])


def status_of(out: Path) -> str | None:
    try:
        return str(json.loads((out / "meta.json").read_text())["status"])
    except (OSError, ValueError, KeyError):
        return None


def test_live_figures_during_and_after_the_load_equal_the_summary(tmp_path: Path) -> None:
    out, port = tmp_path / "run", free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    process = start_cli(
        # Paced (5 ms answers): hundreds of requests a second are plenty to scrape and compare.
        "run", "--demo", "--demo-latency-ms", "5", "-u", "2", "-d", "2s", "--warmup", "0",
        "--out", str(out), "--quiet", "--no-sampler", "--metrics-port", str(port), "--metrics-linger", "60s",
    )  # fmt: skip
    during = final = None
    try:
        while process.poll() is None:
            status = status_of(out)  # read before the scrape: "complete" means the figures are final
            samples = scrape(url)
            if samples is not None and status == "running" and during is None and requests_total(samples) > 0:
                during = samples
            if samples is not None:
                # The endpoint closes only after a scrape of the final figures, so the last scrape
                # that answered is that one (a status read just before it may still say running).
                final = samples
            time.sleep(0.1)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, stderr
    assert during is not None and final is not None
    summary = json.loads((out / "summary.json").read_text())
    assert summary["requests"]["warmup_excluded"] == 0
    assert 0 < requests_total(during) <= requests_total(final) == summary["requests"]["total"]
    assert any(name == "loadbench_users" for name, _, _ in during)
    info = next(labels for name, labels, _ in final if name == "loadbench_run_info")
    assert info["run_id"] == out.name and info["scenario"] == summary["run"]["scenario"]
    exact_p50_s = summary["latency_ms"]["p50"] / 1000
    assert ok_p50_s(final) == pytest.approx(exact_p50_s, rel=0.05)
    meta = json.loads((out / "meta.json").read_text())
    assert meta["live_metrics"]["url"] == url


def test_a_busy_metrics_port_stops_the_run_before_the_load(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        out = tmp_path / "run"
        result = run_cli(
            "run",
            "--demo",
            "-u",
            "1",
            "-d",
            "2s",
            "--warmup",
            "0s",
            "--out",
            str(out),
            "--no-sampler",
            "--metrics-port",
            str(port),
        )
    assert result.returncode == 2
    errors = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(errors) == 1 and "--metrics-port" in errors[0] and str(port) in errors[0], result.stderr
    assert not out.exists()
