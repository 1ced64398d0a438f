"""Distributed runs on Locust's master/worker mode: real worker processes, a real loopback server.

Every worker's records reach the run's one record file (counts match the server's own log), the
merged percentiles equal numpy's over the raw records, an open-loop rate is split among the
workers, and a worker killed midway is reported while the run completes.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest
from helpers import json_server, read_json, run_cli, start_cli

from loadbench.record.columnar import read_run_requests

pytestmark = pytest.mark.e2e

PAYLOAD = '{"x": 1}'
# The servers' service time: closed-loop users then send a few hundred requests a second, not
# thousands (what each test checks is where records go, not how many a core can send).
SERVICE_S = 0.01


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _counting(handler: Any, state: dict[str, Any]) -> tuple[int, Any]:
    if handler.path == "/p":
        with state["lock"]:
            state["posts"] = state.get("posts", 0) + 1
    time.sleep(SERVICE_S)
    return 200, {"ok": True}


def _timed(handler: Any, state: dict[str, Any]) -> tuple[int, Any]:
    """As `_counting`, and says its own time (from reading the request to the answer) as the
    demo does, in ``X-Service-Time-Ms``: the SERVICE_S sleep is inside it."""
    started = time.perf_counter()
    status, body = _counting(handler, state)
    handler.reply_headers["X-Service-Time-Ms"] = f"{(time.perf_counter() - started) * 1000:.3f}"
    return status, body


def _args(url: str, out: Path, *extra: str) -> list[str]:
    return [
        "run", "--target", url, "--scenario", "json_post", "--path", "/p", "--payload", PAYLOAD,
        "--no-sampler", "-q", "-o", str(out), *extra,
    ]  # fmt: skip


def test_two_workers_ship_every_record_and_merge_exactly(tmp_path: Path) -> None:
    """Open loop, so that requests in flight at the end are waited for: every one is recorded.
    --server-time-header reaches the workers (their recorders format the lines the master
    keeps): each answer keeps the server's own time, as a single process's run does."""
    with json_server(_timed) as (url, state):
        result = run_cli(
            *_args(url, tmp_path / "run", "--workers", "2", "--rate", "80", "--arrival", "constant",
                   "--max-inflight", "20", "-d", "4s", "--warmup", "1s",
                   "--server-time-header", "X-Service-Time-Ms"),
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        posts = state["posts"]
    run = tmp_path / "run"
    meta = read_json(run / "meta.json")
    workers = meta["workers"]
    assert len(workers) == 2
    assert all(w["records"] > 0 and w["died_at_unix_s"] is None for w in workers)
    assert (run / "requests.parquet").is_file()  # the master's run dir has the default format
    records = read_run_requests(run)
    # Every request the server answered was recorded once, from one of the two workers; but the
    # master's preflight request, sent once before the workers started, which is never recorded.
    assert len(records) == posts - 1 == sum(w["records"] for w in workers)
    summary = read_json(run / "summary.json")
    # As the analyzer selects them: due at or after the load's start plus the warmup.
    window = records[records["intended_unix_s"] >= meta["started_unix_s"] + meta["settings"]["warmup_s"]]
    ok = window[window["ok"] == 1]
    latency = ok["latency_ms"] + (ok["start_unix_s"] - ok["intended_unix_s"]) * 1000
    for key, q in (("p50", 50), ("p90", 90), ("p99", 99), ("p999", 99.9)):
        assert summary["latency_ms"][key] == pytest.approx(float(np.percentile(latency, q)), abs=0.002)
    assert summary["run"]["workers"] == 2
    # The rate is split: 40 req/s each for 4 s, and together the 80 asked for.
    per_worker = [w["schedule"]["due"] for w in workers]
    assert all(due == pytest.approx(160, rel=0.05) for due in per_worker)
    assert meta["schedule"]["due"] == sum(per_worker)
    assert summary["schedule"]["achieved_send_rps"] == pytest.approx(80, rel=0.05)
    assert summary["schedule"]["unsent"] == 0
    # The server's own time, through either worker: its sleep is inside it, and it inside the
    # client's round trip (from the send).
    assert meta["settings"]["server_time_header"] == "X-Service-Time-Ms"
    all_ok = records[records["ok"] == 1]
    assert len(all_ok) > 10 and (all_ok["server_ms"] >= SERVICE_S * 1000).all()
    assert (all_ok["server_ms"] <= all_ok["latency_ms"]).all()


def _tagging(handler: Any, state: dict[str, Any]) -> tuple[int, Any]:
    """Answers each worker process with a body of its own size, so its rows in requests.csv
    (``response_bytes``) say which worker sent them; logs (time, worker slot) per answer."""
    port = handler.client_address[1]
    with state["lock"]:
        pid = state["owners"].get(port)
    if pid is None:
        # A new connection: find the worker process that holds it (once per connection).
        with contextlib.suppress(psutil.Error):
            for child in psutil.Process(state["cli_pid"]).children():
                if any(c.laddr and c.laddr.port == port for c in child.net_connections(kind="tcp")):
                    pid = child.pid
                    break
        with state["lock"]:
            state["owners"][port] = pid
    with state["lock"]:
        slots = state["slots"]
        slot = slots.setdefault(pid, len(slots)) if pid is not None else 9
        state["answers"].append((time.time(), slot))
    time.sleep(SERVICE_S)
    return 200, {"ok": True, "pad": "x" * (10 * slot)}


def _is_worker(process: psutil.Process) -> bool:
    # A child may exit (a zombie until reaped) between the listing and this look.
    try:
        return "worker" in " ".join(process.cmdline())
    except psutil.Error:
        return False


def test_a_killed_worker_is_reported_and_the_run_completes(tmp_path: Path) -> None:
    with json_server(_tagging) as (url, state):
        state.update(owners={}, slots={}, answers=[], cli_pid=-1)
        process = start_cli(
            *_args(url, tmp_path / "run", "--workers", "2", "-u", "4", "-d", "6s", "--warmup", "0s")
        )
        state["cli_pid"] = process.pid  # before any request: the workers take seconds to start
        try:
            # Wait until both workers run (and have sent records), then kill one.
            deadline = time.monotonic() + 60
            victim = None
            while time.monotonic() < deadline and victim is None:
                workers = [c for c in psutil.Process(process.pid).children() if _is_worker(c)]
                requests = tmp_path / "run" / "requests.csv"
                if len(workers) == 2 and requests.exists() and requests.stat().st_size > 2000:
                    # Both ship every 0.5 s: kill the victim once the server has answered it for
                    # 1.5 s (its own answers, not the other's), a few batches, so it has sent some.
                    with state["lock"]:
                        slot = state["slots"].get(workers[0].pid)
                        first = min((t for t, s in state["answers"] if s == slot), default=None)
                    if slot is not None and first is not None and first < time.time() - 1.5:
                        victim = workers[0]
                time.sleep(0.1)
            assert victim is not None, "the workers did not start"
            killed_at = time.time()
            victim.kill()
            out, err = process.communicate(timeout=120)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
    assert process.returncode == 0, err
    meta = read_json(tmp_path / "run" / "meta.json")
    assert meta["status"] == "complete"
    dead = [w for w in meta["workers"] if w["died_at_unix_s"] is not None]
    alive = [w for w in meta["workers"] if w["died_at_unix_s"] is None]
    assert len(dead) == 1 and len(alive) == 1
    assert dead[0]["pid"] == victim.pid
    assert dead[0]["how"] == "process exited"
    assert dead[0]["records"] > 0
    assert killed_at - 0.5 <= dead[0]["died_at_unix_s"] <= killed_at + 3
    # The survivor went on: it recorded requests after the death.
    assert alive[0]["last_record_unix_s"] > dead[0]["died_at_unix_s"] + 1
    # The dead worker's records up to its death are in the run's records: every row it shipped, and
    # every request the server answered it until its last batch (it ships every 0.5 s).
    slot = state["slots"][victim.pid]
    assert set(state["slots"]) == {victim.pid, alive[0]["pid"]}
    records = read_run_requests(tmp_path / "run")
    body = len(json.dumps({"ok": True, "pad": "x" * (10 * slot)}))
    mine = records[records["response_bytes"] == body]
    assert len(mine) == dead[0]["records"]
    assert len(records) == sum(w["records"] for w in meta["workers"])
    answered = [t for t, s in state["answers"] if s == slot]
    assert len(mine) <= len(answered)
    assert len(mine) >= sum(t < killed_at - 1.0 for t in answered) > 0
    assert mine["start_unix_s"].max() <= killed_at
    summary = read_json(tmp_path / "run" / "summary.json")
    assert summary["run"]["workers_died"] == 1
    assert any("worker" in n and "died" in n for n in summary["notices"])
    assert "died" in out  # the console summary's notes


def test_bad_worker_counts_are_one_line_errors(tmp_path: Path) -> None:
    with json_server(_counting) as (url, _state):
        result = run_cli(*_args(url, tmp_path / "run", "--workers", "many"))
    assert result.returncode == 2
    assert result.stderr.strip().startswith("loadbench: error:") and "workers" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    master = run_cli("master", "--target", "http://127.0.0.1:9", "-q")
    assert master.returncode == 2 and "--expect-workers" in master.stderr
    worker = run_cli("worker", "--master-host", "127.0.0.1")
    assert worker.returncode == 2 and "--target" in worker.stderr


def test_the_master_waits_for_workers_as_long_as_worker_wait_says(tmp_path: Path) -> None:
    with json_server(_counting) as (url, _state):
        started = time.monotonic()
        master = run_cli(
            "master", "--target", url, "--scenario", "json_post", "--path", "/p", "--payload", PAYLOAD,
            "--expect-workers", "1", "--worker-wait", "1.5s", "--master-port", str(free_port()), "-q",
            "-o", str(tmp_path / "run"),
        )  # fmt: skip
    assert master.returncode == 2, master.stderr
    assert "only 0 of 1 workers connected within 1.5 s (--worker-wait)" in master.stderr
    assert len(master.stderr.strip().splitlines()) == 1
    assert time.monotonic() - started >= 1.5  # waited out the 1.5 s (the message: not the default 60 s)
    bad = run_cli("master", "--target", "http://127.0.0.1:9", "--expect-workers", "1", "--worker-wait", "0s")
    assert bad.returncode == 2 and "--worker-wait" in bad.stderr


def test_master_and_a_worker_from_another_shell_join_samples_to_the_timeline(tmp_path: Path) -> None:
    """`loadbench master` + `loadbench worker` as on two hosts: records and the worker host's samples."""
    port = str(free_port())
    with json_server(_counting) as (url, state):
        master = start_cli(
            "master", "--target", url, "--scenario", "json_post", "--path", "/p", "--payload", PAYLOAD,
            "--expect-workers", "1", "--master-port", port, "-u", "2", "-d", "2s", "--warmup", "0s",
            "-q", "-o", str(tmp_path / "run"),
        )  # fmt: skip
        worker = start_cli(
            "worker", "--master-host", "127.0.0.1", "--master-port", port, "--target", url,
            "--scenario", "json_post", "--path", "/p", "--payload", PAYLOAD, "--sample-interval", "0.2",
            "--server-time-header", "Server-Timing",  # taken (this server sends none: left empty)
        )  # fmt: skip
        try:
            # The worker samples its host in a process of its own, not in Locust's event loop.
            deadline = time.monotonic() + 30
            samplers: list[psutil.Process] = []
            while not samplers and time.monotonic() < deadline and worker.poll() is None:
                with contextlib.suppress(psutil.NoSuchProcess):
                    samplers = [
                        c
                        for c in psutil.Process(worker.pid).children()
                        if "loadbench.sample.sampler" in c.cmdline()
                    ]
                time.sleep(0.1)
            assert samplers, "the worker started no sampler process"
            _out, err = master.communicate(timeout=120)
            worker.communicate(timeout=60)  # it exits when the master quits
        finally:
            for process in (master, worker):
                if process.poll() is None:
                    process.kill()
                    process.communicate()
        posts = state["posts"]
    assert master.returncode == 0, err
    assert worker.returncode == 0
    meta = read_json(tmp_path / "run" / "meta.json")
    (info,) = meta["workers"]
    assert info["pid"] is None and info["records"] > 0  # not a local process of the master
    records = read_run_requests(tmp_path / "run")
    assert 0 < len(records) <= posts and records["server_ms"].isna().all()
    summary = read_json(tmp_path / "run" / "summary.json")
    label = f"worker0@{info['host']}"
    remote = summary["resources"]["remote"][label]
    assert remote["host"]["cpu_percent"]["max"] is not None
    assert remote["generator"]["cpu_max_percent"] > 0
    assert not samplers[0].is_running()  # stopped with the worker
