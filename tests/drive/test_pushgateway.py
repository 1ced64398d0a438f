"""``--pushgateway``: a real demo run pushing to Debian's ``prometheus-pushgateway`` on
127.0.0.1, read back from the gateway's own ``/metrics`` with prometheus_client's parser; an
unreachable gateway stops the run before the load; a gateway that goes away mid-run is a notice.
"""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import free_port, read_json, require_executable, run_cli, wait_http_ready
from prometheus_client.parser import text_string_to_metric_families


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A real Pushgateway on a free loopback port: (its URL, its process)."""
    binary = require_executable("prometheus-pushgateway", "prometheus-pushgateway")
    port = free_port()
    process = subprocess.Popen(
        [binary, f"--web.listen-address=127.0.0.1:{port}", f"--persistence.file={tmp_path / 'push.data'}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http_ready(f"{url}/-/ready", process, "the pushgateway", timeout_s=30)
        yield url, process
    finally:
        process.kill()
        process.wait(timeout=10)


def pushed(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name.startswith("loadbench_")
    }


@pytest.mark.e2e
def test_the_gateway_ends_with_the_runs_totals_under_its_run_id(
    gateway: tuple[str, subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    url, _ = gateway
    out = tmp_path / "run"
    result = run_cli(
        "run", "--demo", "--demo-latency-ms", "2", "-u", "2", "-d", "2.5s", "--warmup", "0s", "--out", str(out),
        "--no-sampler", "--pushgateway", url, "--push-interval", "0.5s",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary, meta = read_json(out / "summary.json"), read_json(out / "meta.json")
    figures = pushed(url)
    totals = {
        labels: value
        for (name, labels), value in figures.items()
        if name == "loadbench_requests_total"
        and ("run_id", "run") in labels
        and ("job", "loadbench") in labels
    }
    assert totals and sum(totals.values()) == summary["requests"]["total"]
    info = [labels for name, labels in figures if name == "loadbench_run_info"]
    assert any(("run_id", "run") in labels and ("scenario", "kserve_v2") in labels for labels in info)
    # Pushed during the run too, not only at the end; none failed.
    pushes = meta["live_metrics"]["pushes"]
    assert pushes["ok"] >= 2 and pushes["failed"] == 0, pushes


def test_an_unreachable_gateway_stops_the_run_before_the_load(tmp_path: Path) -> None:
    out = tmp_path / "run"
    dead = f"http://127.0.0.1:{free_port()}"
    result = run_cli("run", "--demo", "-d", "2s", "--warmup", "0s", "--out", str(out), "--pushgateway", dead)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"loadbench: error: --pushgateway {dead} is unreachable")
    assert not out.exists()


@pytest.mark.e2e
def test_a_gateway_gone_mid_run_is_a_notice_not_a_stopped_run(
    gateway: tuple[str, subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    url, process = gateway
    out = tmp_path / "run"
    run = subprocess.Popen(
        [
            sys.executable, "-m", "loadbench", "run", "--demo", "--demo-latency-ms", "2", "-u", "2", "-d", "3s",
            "--warmup", "0s", "--out", str(out), "--no-sampler",
            "--pushgateway", url, "--push-interval", "0.3s",
        ],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not (out / "requests.csv").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)
        process.kill()
        _, stderr = run.communicate(timeout=120)
    finally:
        run.kill()
    assert run.returncode == 0, stderr
    assert "loadbench: --pushgateway: a push failed: " in stderr
    pushes = read_json(out / "meta.json")["live_metrics"]["pushes"]
    assert pushes["failed"] >= 1 and pushes["ok"] >= 1
    notices = read_json(out / "summary.json")["notices"]
    assert any(f"push(es) to --pushgateway {url} failed during the run" in n for n in notices), notices
