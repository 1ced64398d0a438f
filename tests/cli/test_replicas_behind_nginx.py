"""Per-replica statistics behind a real load balancer: the demo's three replicas (10, 20 and
40 ms) behind nginx, measured through one URL with ``--replica-header X-Served-By`` (issue 16).

Timing assertions are lower bounds and orderings the sleeps imply, never how fast the machine is.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import read_json, run_cli
from nginx_lb import nginx_balancer

from loadbench.data import DIGITS_JSONL
from loadbench.record.columnar import read_run_requests

SERVICE_MS = {"a": 10.0, "b": 20.0, "c": 40.0}
LINE = re.compile(r"loadbench demo: replica (\S+) serving a digits classifier on (http://127\.0\.0\.1:\d+) ")


@pytest.fixture(scope="module")
def replicas() -> Iterator[list[str]]:
    command = [
        sys.executable, "-m", "loadbench.demo", "--port", "0", "--replicas", "3", "--service-ms", "10,20,40",
        "--service-dist", "fixed", "--replica-names", "a,b,c",
    ]  # fmt: skip
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as demo:
        assert demo.stdout is not None
        urls = []
        for _ in range(3):
            found = LINE.match(demo.stdout.readline())
            assert found, "the demo's replicas did not start"
            urls.append(found.group(2))
        try:
            yield urls
        finally:
            demo.terminate()
            demo.communicate(timeout=20)


def measure(
    tmp_path: Path, url: str, users: int, *extra: str, duration: str = "5s", warmup: str = "1s"
) -> tuple[dict[str, Any], Any]:
    """A json_post run through ``url``; (its summary, its records). The default 5 s (1 s warmup)
    gives the shares and the per-replica percentiles enough requests on a loaded machine."""
    out = tmp_path / "run"
    done = run_cli(
        "run", "--target", url, "--scenario", "json_post", "--path", "/predict", "--data", str(DIGITS_JSONL),
        "-u", str(users),
        "-d", duration, "--warmup", warmup, "--replica-header", "X-Served-By", "--no-sampler", "--quiet",
        "--out", str(out), *extra,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return read_json(out / "summary.json"), read_run_requests(out)


def by_name(summary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["replica"]: r for r in summary["replicas"]["replicas"]}


@pytest.fixture(scope="module")
def round_robin(
    replicas: list[str], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, Any], Any]:
    """The three replicas behind nginx's round-robin, 3 users: (run dir, summary, records). Read by
    the shares test and by the report's (its Replicas table and plot)."""
    tmp = tmp_path_factory.mktemp("round-robin")
    with nginx_balancer(replicas, "round-robin") as url:
        summary, records = measure(tmp, url, 3)
    return tmp / "run", summary, records


def test_round_robin_shares_evenly_and_each_replica_shows_its_own_latency(
    round_robin: tuple[Path, dict[str, Any], Any],
) -> None:
    _, summary, records = round_robin
    rows = by_name(summary)
    assert set(rows) == {"a", "b", "c"} and summary["replicas"]["unattributed"] == 0
    # The counts are the records' own, replica by replica, in the measured window.
    window = records[records["start_unix_s"] >= summary["window"]["start_unix_s"] - 1e-6]
    counts = window["replica"].astype("string").value_counts().to_dict()
    assert {k: v["requests"] for k, v in rows.items()} == counts
    # nginx's round-robin takes turns: every replica within a few requests of a third.
    total = sum(counts.values())
    assert all(abs(v["share"] - 1 / 3) <= 3 / total + 0.01 for v in rows.values()), rows
    assert summary["replicas"]["imbalance"] < 1.1
    for name, service in SERVICE_MS.items():
        assert rows[name]["latency_ms"]["p50"] >= service
    assert rows["a"]["latency_ms"]["p50"] < rows["b"]["latency_ms"]["p50"] < rows["c"]["latency_ms"]["p50"]


def test_least_conn_sends_the_fastest_replica_the_most(replicas: list[str], tmp_path: Path) -> None:
    with nginx_balancer(replicas, "least_conn") as url:
        summary, _ = measure(tmp_path, url, 6)
    rows = by_name(summary)
    # The 10 ms replica frees its connections four times as often as the 40 ms one.
    assert rows["a"]["share"] > rows["b"]["share"] > rows["c"]["share"], rows
    assert summary["replicas"]["imbalance"] > 1.2


def test_the_report_has_the_replicas_table_and_plot(round_robin: tuple[Path, dict[str, Any], Any]) -> None:
    # The round-robin run's report (one run fewer than a run of its own).
    run, _, _ = round_robin
    html = (run / "report.html").read_text(encoding="utf-8")
    assert "<h2 id='replicas'>Replicas</h2>" in html and "plot-replicas" in html
    md = (run / "summary.md").read_text(encoding="utf-8")
    assert "**Replicas:** 3 replica(s) from the header X-Served-By" in md


def test_a_replica_header_that_never_comes_is_said_and_invents_nothing(
    replicas: list[str], tmp_path: Path
) -> None:
    # What each record holds, not how many: 2 s (some 150 requests from the one user) is plenty.
    summary, records = measure(
        tmp_path, replicas[0], 1, "--replica-header", "X-Nobody-Sends-This", duration="2s", warmup="0.5s"
    )
    section = summary["replicas"]
    assert section["replicas"] == [] and section["unattributed"] == summary["requests"]["total"]
    assert sum("X-Nobody-Sends-This" in n for n in summary["notices"]) == 1
    assert records["replica"].astype("string").fillna("").eq("").all()
