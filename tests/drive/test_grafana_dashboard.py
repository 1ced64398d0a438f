"""The Grafana dashboard (docs/grafana/loadbench.json) against a real Prometheus (Debian's
``prometheus`` package) scraping a real run's ``--metrics-port`` every second.

Two demo runs, one after the other on the same port: a labelled ``json_post`` run whose rows
include one the demo refuses (throughput, latency, errors, accuracy, resources), then an LLM
stream run (TTFT, ITL, tokens). Every panel's query, with Grafana's variables filled in as
Grafana would, must return data from one of them (the GPU panel only where the sampler saw a
GPU); the totals Prometheus stored must be the run's (``summary.json``), and the histogram's p50
within 5% of the exact one. Traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import json
import math
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import DIGITS, REPO, free_port, read_json, require_executable, run_cli, wait_http_ready

DASHBOARD = REPO / "docs" / "grafana" / "loadbench.json"
RATE_INTERVAL = "4s"  # Grafana's $__rate_interval: at least four scrape intervals


def api(base: str, path: str, **params: Any) -> Any:
    query = urllib.parse.urlencode(params)
    with urllib.request.urlopen(f"{base}/api/v1/{path}?{query}", timeout=30) as response:
        answer = json.loads(response.read())
    assert answer["status"] == "success", answer
    return answer["data"]


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """A real Prometheus on 127.0.0.1 scraping 127.0.0.1:PORT every second; (its URL, PORT)."""
    binary = require_executable("prometheus", "prometheus")
    work = tmp_path_factory.mktemp("prometheus")
    port, scraped = free_port(), free_port()
    config = work / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
        f"scrape_configs:\n  - job_name: loadbench\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{scraped}']\n"
    )
    log = (work / "prometheus.log").open("w")
    process = subprocess.Popen(
        [
            binary, f"--config.file={config}", f"--storage.tsdb.path={work / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn",
        ],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http_ready(f"{url}/-/ready", process, "prometheus")
        # Ready is not yet scraping: the scrape loop starts a moment later (an offset within the
        # interval, after target discovery). A run begun before it would be scraped too little
        # for rate() over the first seconds; `up` exists once the loop has tried once.
        deadline = time.monotonic() + 60
        while not api(url, "query", query='up{job="loadbench"}')["result"]:
            assert time.monotonic() < deadline, "prometheus never scraped its target"
            time.sleep(0.2)
        yield url, scraped
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def run(out: Path, port: int, *args: str) -> tuple[dict[str, Any], float]:
    """A demo run serving its metrics on ``port`` until Prometheus has scraped its final figures;
    (its summary.json, the time it ended)."""
    result = run_cli(
        "run", "--demo", *args, "-u", "2", "-d", "4s", "--warmup", "0s", "--out", str(out), "--quiet",
        "--sample-interval", "0.25s", "--metrics-port", str(port), "--metrics-linger", "30s",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return read_json(out / "summary.json"), time.time()


@pytest.fixture(scope="module")
def runs(
    prometheus: tuple[str, int], tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict[str, Any], dict[str, Any], float, float]:
    """The labelled run's summary, the LLM run's, when the first began and when it ended."""
    _, port = prometheus
    work = tmp_path_factory.mktemp("runs")
    rows = DIGITS.read_text().splitlines()[:20]
    bad = json.dumps({"inputs": [[1, 2, 3]], "_expected": 7})  # the demo refuses three features
    data = work / "rows.jsonl"
    data.write_text("\n".join([*rows, bad]) + "\n")
    began = time.time()
    # Paced (5 ms an answer, as the LLM run's simulator paces itself): hundreds of requests a
    # second fill every panel; two unpaced users would keep both cores busy for the 4 s.
    labelled, ended = run(
        work / "labelled", port, "--scenario", "json_post", "--data", str(data), "--demo-latency-ms", "5"
    )
    llm, _ = run(work / "llm", port, "--scenario", "openai_chat")
    return labelled, llm, began, ended


def filled(expr: str, run_ids: str) -> str:
    return expr.replace("$__rate_interval", RATE_INTERVAL).replace("$run_id", run_ids)


def values(result: list[dict[str, Any]]) -> list[float]:
    return [float(v) for series in result for _, v in series.get("values", [series.get("value")]) if v]


def panels() -> list[dict[str, Any]]:
    return list(json.loads(DASHBOARD.read_text())["panels"])


def test_the_dashboard_picks_runs_from_run_info_and_its_datasource_is_a_variable() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert (
        variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    )
    assert variables["run_id"]["definition"] == "label_values(loadbench_run_info, run_id)"
    titles = {p["title"] for p in dashboard["panels"]}
    assert len(titles) == len(dashboard["panels"]) >= 10
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}"
        assert all('loadbench_run_info{run_id=~"$run_id"}' in t["expr"] for t in panel["targets"]), panel


@pytest.mark.e2e
def test_every_panel_shows_the_runs(
    prometheus: tuple[str, int], runs: tuple[dict[str, Any], dict[str, Any], float, float]
) -> None:
    url, _ = prometheus
    labelled, llm, began, _ = runs
    run_ids = f"{labelled['run']['id']}|{llm['run']['id']}"
    assert labelled["requests"]["errors"] > 0 and labelled["quality"]["n"] > 0  # what the panels need
    gpus = bool((labelled.get("resources") or {}).get("gpus"))  # NVML found a GPU (none here)
    empty = []
    for panel in panels():
        for target in panel["targets"]:
            data = api(
                url, "query_range", query=filled(target["expr"], run_ids),
                start=began - 5, end=time.time(), step="1s",
            )  # fmt: skip
            got = [v for v in values(data["result"]) if math.isfinite(v)]
            if not got and not (panel["title"] == "GPUs" and not gpus):
                empty.append(f"{panel['title']}: {target['legendFormat']}")
    assert not empty, f"panels without data: {empty}"


@pytest.mark.e2e
def test_the_stored_totals_are_the_runs_and_the_histogram_p50_is_within_5_percent(
    prometheus: tuple[str, int], runs: tuple[dict[str, Any], dict[str, Any], float, float]
) -> None:
    url, _ = prometheus
    labelled, _, _, ended = runs
    run_id = labelled["run"]["id"]
    on_run = f'on(instance) group_left() last_over_time(loadbench_run_info{{run_id="{run_id}"}}[2m])'
    total = api(
        url, "query", query=f"sum(last_over_time(loadbench_requests_total[2m]) * {on_run})", time=ended
    )
    assert float(total["result"][0]["value"][1]) == labelled["requests"]["total"]
    errors = api(
        url, "query", time=ended,
        query=f'sum(last_over_time(loadbench_requests_total{{outcome!="ok"}}[2m]) * {on_run})',
    )  # fmt: skip
    assert float(errors["result"][0]["value"][1]) == labelled["requests"]["errors"]
    p50 = api(
        url, "query", time=ended,
        query=(
            "histogram_quantile(0.5, sum by (le) (last_over_time("
            f'loadbench_request_duration_seconds_bucket{{ok="true"}}[2m]) * {on_run}))'
        ),
    )  # fmt: skip
    exact_ms = labelled["latency_ms"]["p50"]
    assert float(p50["result"][0]["value"][1]) * 1000 == pytest.approx(exact_ms, rel=0.05)


@pytest.mark.e2e
def test_a_sweeps_steps_are_each_a_run_prometheus_stores_whole(
    prometheus: tuple[str, int], runs: tuple[dict[str, Any], dict[str, Any], float, float], tmp_path: Path
) -> None:
    # `sweep` passes --metrics-port on to each step's `run`: each step serves on the same port,
    # and lingers until its final figures are scraped.
    url, port = prometheus
    began = time.time()
    result = run_cli(
        "sweep", "--demo", "--demo-latency-ms", "5", "--concurrency", "1,2", "--step-duration", "2s",
        "--warmup", "0s",
        "--out", str(tmp_path / "sweep"), "--quiet", "--no-sampler",
        "--metrics-port", str(port), "--metrics-linger", "30s",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    steps = [read_json(path) for path in sorted((tmp_path / "sweep").glob("*/summary.json"))]
    assert len(steps) == 2
    # The steps share their series (same labels, same instance), so each step's total is read
    # from the raw samples of its own last scrape: the one that last saw its run_info.
    window = f"{time.time() - began + 5:.0f}s"
    now = time.time()
    infos = api(url, "query", query=f"loadbench_run_info[{window}]", time=now)["result"]
    counters = api(url, "query", query=f"loadbench_requests_total[{window}]", time=now)["result"]
    for step in steps:
        run_id = step["run"]["id"]
        last = max(
            float(t) for info in infos if info["metric"]["run_id"] == run_id for t, _ in info["values"]
        )
        total = sum(float(v) for series in counters for t, v in series["values"] if float(t) == last)
        assert total == step["requests"]["total"], run_id
