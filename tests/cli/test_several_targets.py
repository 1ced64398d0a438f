"""Several targets balanced client-side (issue 16): ``--target`` repeated or ``--targets FILE``,
``--balance round-robin|random|least-outstanding|p2c``, against the demo's three replicas (10, 20
and 40 ms), each naming itself in ``X-Served-By``.

The client's record of where it sent each request (``target``) is checked against the server's
own word (``replica``, from ``--replica-header X-Served-By``). Timing assertions are lower bounds
and orderings the sleeps imply, never how fast the machine is.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import free_port, json_server, read_json, run_cli

from loadbench.data import DIGITS_JSONL
from loadbench.record.columnar import read_run_requests

SERVICE_MS = {"a": 10.0, "b": 20.0, "c": 40.0}
LINE = re.compile(r"loadbench demo: replica (\S+) serving a digits classifier on (http://127\.0\.0\.1:\d+) ")


@pytest.fixture(scope="module")
def replicas() -> Iterator[dict[str, str]]:
    """The demo's replicas a, b, c: name -> URL."""
    command = [
        sys.executable, "-m", "loadbench.demo", "--port", "0", "--replicas", "3", "--service-ms", "10,20,40",
        "--service-dist", "fixed", "--replica-names", "a,b,c",
    ]  # fmt: skip
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as demo:
        assert demo.stdout is not None
        urls = {}
        for _ in range(3):
            found = LINE.match(demo.stdout.readline())
            assert found, "the demo's replicas did not start"
            urls[found.group(1)] = found.group(2)
        try:
            yield urls
        finally:
            demo.terminate()
            demo.communicate(timeout=20)


def measure(tmp_path: Path, where: list[str], users: int, *extra: str) -> tuple[dict[str, Any], Any, str]:
    out = tmp_path / "run"
    done = run_cli(
        "run", *where, "--scenario", "json_post", "--data", str(DIGITS_JSONL), "-u", str(users),
        "-d", "3s", "--warmup", "1s", "--replica-header", "X-Served-By", "--no-sampler", "--out", str(out), *extra,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return read_json(out / "summary.json"), read_run_requests(out), done.stderr


def targets_of(urls: dict[str, str]) -> list[str]:
    return [arg for name in "abc" for arg in ("--target", urls[name])]


def test_round_robin_sends_each_replica_its_turn_and_every_record_names_where_it_went(
    replicas: dict[str, str], tmp_path: Path
) -> None:
    summary, records, said = measure(tmp_path, targets_of(replicas), 3, "--balance", "round-robin")
    # The preflight checked each replica, by name.
    for url in replicas.values():
        assert f"loadbench: preflight: {url}: POST /predict -> 200" in said
    sent = records["target"].astype(str).tolist()
    served = records["replica"].astype(str).tolist()
    # Where the client sent each request is where the server says it was served: exactly.
    by_url = {url: name for name, url in replicas.items()}
    assert [by_url[u] for u in sent] == served
    counts = records["target"].value_counts()
    assert set(counts.index) == set(replicas.values())
    # In turn whoever asks: equal counts, up to the requests in flight when the load stopped.
    assert counts.max() - counts.min() <= 3
    for name, url in replicas.items():
        mine = records[(records["target"] == url) & (records["ok"] == 1)]["latency_ms"]
        assert mine.median() >= SERVICE_MS[name]  # at least the service time it sleeps
    meta = read_json(tmp_path / "run" / "meta.json")
    assert meta["settings"]["targets"] == [replicas[n] for n in "abc"]
    assert meta["settings"]["balance"] == "round-robin" and meta["settings"]["retries"] is None
    assert summary["requests"]["errors"] == 0
    # summary.json's per-target counts are exactly the records' (those in the measured window).
    measured = records[records["start_unix_s"] >= summary["window"]["start_unix_s"] - 1e-6]
    rows = {row["url"]: row for row in summary["targets"]["targets"]}
    assert list(rows) == [replicas[n] for n in "abc"]
    for url, row in rows.items():
        assert row["requests"] == int((measured["target"] == url).sum())
    assert sum(row["requests"] for row in rows.values()) == summary["requests"]["total"]
    assert summary["targets"]["imbalance"] < 1.1


def test_least_outstanding_sends_the_fastest_replica_the_most(
    replicas: dict[str, str], tmp_path: Path
) -> None:
    _, records, _ = measure(tmp_path, targets_of(replicas), 6, "--balance", "least-outstanding")
    counts = records["replica"].astype(str).value_counts()
    assert counts["a"] > counts["b"] > counts["c"]


def test_p2c_from_a_targets_file_favours_the_fastest_and_records_the_policy(
    replicas: dict[str, str], tmp_path: Path
) -> None:
    listed = tmp_path / "targets.txt"
    listed.write_text(
        "# the three replicas\n" + "".join(f"{replicas[n]}\n\n" for n in "abc"), encoding="utf-8"
    )
    # Two local worker processes, each balancing its own requests (and retrying, never needed here).
    summary, records, _ = measure(
        tmp_path, ["--targets", str(listed)], 6, "--balance", "p2c", "--workers", "2", "--retries", "1"
    )
    counts = records["replica"].astype(str).value_counts()
    assert set(counts.index) == {"a", "b", "c"}
    assert counts["a"] > counts["c"]
    meta = read_json(tmp_path / "run" / "meta.json")
    assert meta["settings"]["balance"] == "p2c" and len(meta["settings"]["targets"]) == 3
    # Request ids are unique across the workers: one prefix per process.
    ids = records["request_id"].astype(str)
    assert ids.str.split("-").str[0].nunique() == 2 and ids.is_unique
    assert summary["retries"]["amplification"] == 1.0 and summary["targets"]["policy"] == "p2c"


def test_a_dead_replica_stops_the_run_before_the_load_naming_it(
    replicas: dict[str, str], tmp_path: Path
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    done = run_cli(
        "run", "--target", replicas["a"], "--target", dead, "--scenario", "json_post", "--data", str(DIGITS_JSONL),
        "-d", "3s", "--warmup", "1s", "--no-sampler", "--out", str(tmp_path / "run"),
    )  # fmt: skip
    assert done.returncode == 2
    assert dead.split("//")[1] in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--target", "http://127.0.0.1:1", "--target", "http://127.0.0.1:1/"],
            "is given twice: each replica once",
        ),
        (["--target", "http://127.0.0.1:1", "--target", "https://127.0.0.1:2"], "must share one protocol"),
        (
            ["--target", "http://127.0.0.1:1", "--target", "grpc://127.0.0.1:2"],
            "a grpc:// target is measured alone",
        ),
        (
            ["--target", "http://127.0.0.1:1", "--balance", "p2c"],
            "--balance spreads requests over several targets",
        ),
        (["--target", "http://127.0.0.1:1", "--balance", "fastest"], "unknown balance policy 'fastest'"),
        (
            ["--target", "http://127.0.0.1:1", "--retry-on", "5xx"],
            "--retry-on shapes retries, and there are none",
        ),
        (["--target", "http://127.0.0.1:1", "--retries", "20"], "20 retries: use 0 to 10"),
        (["--target", "grpc://127.0.0.1:1", "--retries", "1"], "--retries is for HTTP targets"),
        (["--targets", "/nonexistent/targets.txt"], "cannot read it"),
        (
            ["--target", "http://u:sekrit@127.0.0.1:1", "--target", "ftp://127.0.0.1:2"],
            "is not an http:// or https://",
        ),
    ],
)
def test_bad_targets_and_routing_options_are_one_line_and_exit_2(args: list[str], message: str) -> None:
    done = run_cli(
        "run", *args, "--scenario", "json_post", "--payload", "{}", "-d", "3s", "--warmup", "1s", timeout=60
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) <= 2 and message in done.stderr, done.stderr  # argparse adds a usage line
    assert "Traceback" not in done.stderr and "sekrit" not in done.stderr


def test_an_empty_targets_file_is_one_line(tmp_path: Path) -> None:
    listed = tmp_path / "none.txt"
    listed.write_text("# nothing yet\n\n", encoding="utf-8")
    done = run_cli("run", "--targets", str(listed), "--scenario", "json_post", "-d", "1s", timeout=60)
    assert done.returncode == 2 and "lists no URL" in done.stderr and "Traceback" not in done.stderr


def test_a_replica_named_in_the_json_body_is_recorded_with_replica_field(tmp_path: Path) -> None:
    def route(handler: Any, state: dict[str, Any]) -> tuple[int, Any]:
        # A server that names its replica in the body, and one answer in ten that names none.
        n = state["count"]
        meta = {} if n % 10 == 0 else {"replica": f"pod-{n % 2}"}
        return 200, {"prediction": 1, "meta": meta}

    with json_server(route) as (url, _):
        out = tmp_path / "run"
        done = run_cli(
            "run", "--target", url, "--scenario", "json_post", "--payload", '{"x": 1}', "-u", "2", "-d", "3s",
            "--warmup", "1s", "--replica-field", "meta.replica", "--no-sampler", "--quiet", "--out", str(out),
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
    records = read_run_requests(out)
    names = records["replica"].astype(str)
    assert set(names) == {"pod-0", "pod-1", ""}
    summary = read_json(out / "summary.json")
    section = summary["replicas"]
    assert section["source"] == "field meta.replica"
    measured = records[records["start_unix_s"] >= summary["window"]["start_unix_s"] - 1e-6]
    rows = {r["replica"]: r["requests"] for r in section["replicas"]}
    assert rows == {n: int((measured["replica"].astype(str) == n).sum()) for n in ("pod-0", "pod-1")}
    assert section["unattributed"] == int((measured["replica"].astype(str) == "").sum()) > 0
    assert read_json(out / "meta.json")["settings"]["replica_field"] == "meta.replica"


def test_a_bad_replica_field_is_one_line() -> None:
    done = run_cli(
        "run", "--target", "http://127.0.0.1:1", "--replica-field", "meta..replica", "-d", "3s", timeout=60
    )
    assert done.returncode == 2 and "--replica-field" in done.stderr and "segment 2 is empty" in done.stderr
    assert "Traceback" not in done.stderr
