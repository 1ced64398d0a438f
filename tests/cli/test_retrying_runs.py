"""Retries (issue 16): ``--retries N --retry-on ... --retry-backoff MIN..MAX --retry-budget P%``.

Each attempt is a record of its own (``attempt``, ``request_id``); the figures are the
user-visible requests'. A server of our own fails on a known pattern, and every count is
checked against what it saw; failover kills a real demo replica by PID mid-run and restarts it.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from helpers import free_port, read_json, run_cli, serving, start_cli, wait_for_lines, wait_http_ready

from loadbench.data import DIGITS_JSONL
from loadbench.record.columnar import read_run_requests


@pytest.fixture(scope="module")
def flaky() -> Iterator[tuple[str, dict[str, int]]]:
    """``/flaky``: every second request 503 (runs skip the preflight: any may be first); ``/ra``: every
    third 429 with ``Retry-After: 1``; ``/down``: always 503; else 200. Counts per path."""
    seen: dict[str, int] = {}
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0") or 0))
            path = self.path.split("?")[0]
            with lock:
                seen[path] = n = seen.get(path, 0) + 1
            status, headers = 200, {}
            if (path == "/flaky" and n % 2 == 0) or path == "/down":
                status = 503
            elif path == "/ra" and n % 3 == 2:
                status, headers = 429, {"Retry-After": "1"}
            body = json.dumps({"prediction": 1} if status == 200 else {"error": f"busy {status}"}).encode()
            self.send_response(status)
            for name, value in {"Content-Type": "application/json", **headers}.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    with serving(server) as url:
        yield url, seen


def run(
    tmp_path: Path, url: str, path: str, *extra: str, users: int = 2, seconds: int = 2
) -> tuple[Any, Any, str]:
    out = tmp_path / "run"
    done = run_cli(
        "run", "--target", url, "--scenario", "json_post", "--path", path, "--payload", '{"x": 1}',
        "-u", str(users), "-d", f"{seconds}s", "--warmup", "0s", "--no-sampler", "--quiet", "--no-preflight", "--out", str(out), *extra,
    )  # fmt: skip
    assert done.returncode in (0, 1, 3), done.stderr  # 3: every request failed (/down)
    return read_json(out / "summary.json"), read_run_requests(out), done.stderr


def attempts_of(records: Any) -> Any:
    return records.assign(
        attempt=records["attempt"].astype("Int64"), request_id=records["request_id"].astype(str)
    )


def test_without_retries_nothing_is_retried_and_every_503_is_an_error(
    flaky: tuple[str, dict[str, int]], tmp_path: Path
) -> None:
    url, seen = flaky
    before = seen.get("/flaky", 0)
    summary, records, _ = run(tmp_path, url, "/flaky")
    assert records["attempt"].isna().all() and (records["request_id"].fillna("") == "").all()
    assert "retries" not in summary
    failed = int((records["status"] == 503).sum())
    assert failed > 0 and failed == int((records["ok"] == 0).sum())
    # The server saw the records, and at most the users' requests cut off at the stop.
    sent = seen["/flaky"] - before
    assert len(records) <= sent <= len(records) + 2


def test_retries_hide_503s_from_the_user_and_each_attempt_is_a_record(
    flaky: tuple[str, dict[str, int]], tmp_path: Path
) -> None:
    url, _ = flaky
    # One user: the server's alternation is the user's, so a 503's retry is the next, a success.
    summary, records, _ = run(tmp_path, url, "/flaky", "--retries", "2", "--retry-backoff", "5ms", users=1)
    attempts = attempts_of(records)
    assert (attempts["attempt"] >= 1).all() and (attempts["request_id"] != "").all()
    groups = attempts.groupby("request_id")
    # The server alternates: a 503 is followed by a success, so no request needs a third attempt.
    assert groups["attempt"].max().max() == 2
    last = attempts.loc[groups["attempt"].idxmax()]
    # Every user-visible request succeeded, but one whose retry the stop cut off: the run's last.
    failed_requests = last[last["ok"] == 0]
    assert len(failed_requests) <= 1
    assert (failed_requests["start_unix_s"] >= attempts["start_unix_s"].max()).all()
    # Every 503 was retried (no budget), except those whose retry the stop cut off.
    retried = int((attempts["attempt"] == 2).sum())
    failed = int((attempts["status"] == 503).sum())
    assert retried > 0 and retried <= failed <= retried + 1
    # Attempts of one request carry consecutive numbers and never overlap in time.
    for _, mine in groups:
        mine = mine.sort_values("attempt")
        assert mine["attempt"].tolist() == list(range(1, len(mine) + 1))
        ends = mine["start_unix_s"] + mine["latency_ms"] / 1000
        assert (mine["start_unix_s"].iloc[1:].to_numpy() >= ends.iloc[:-1].to_numpy() - 1e-6).all()
    section = summary["retries"]
    assert section["attempts"] == len(records)
    assert section["requests"] == attempts["request_id"].nunique()
    assert section["amplification"] == pytest.approx(len(records) / section["requests"], rel=1e-3)
    assert summary["requests"]["errors"] == failed - retried  # only the cut-off ones stay failures
    meta = read_json(tmp_path / "run" / "meta.json")
    assert meta["settings"]["retries"] == {
        "max": 2, "on": ["5xx", "429", "connect", "timeout"], "backoff_ms": [5.0, 5.0], "budget": None,
    }  # fmt: skip


def test_retry_after_is_honoured_and_beyond_the_greatest_backoff_there_is_no_retry(
    flaky: tuple[str, dict[str, int]], tmp_path: Path
) -> None:
    url, _ = flaky
    _, records, _ = run(
        tmp_path, url, "/ra", "--retries", "1", "--retry-backoff", "10ms..3s", users=1, seconds=3
    )
    attempts = attempts_of(records)
    second = attempts[attempts["attempt"] == 2]
    assert len(second) >= 1
    for _, retry in second.iterrows():
        first = attempts[(attempts["request_id"] == retry["request_id"]) & (attempts["attempt"] == 1)].iloc[0]
        assert first["status"] == 429
        waited = retry["start_unix_s"] - (first["start_unix_s"] + first["latency_ms"] / 1000)
        assert waited >= 1.0 - 1e-3  # the server asked for 1 s
    _, records, _ = run(
        tmp_path / "short", url, "/ra", "--retries", "1", "--retry-backoff", "10ms..500ms", users=1
    )
    assert (records["attempt"] == 1).all() and int((records["status"] == 429).sum()) > 0


def test_the_retry_budget_bounds_the_extra_load(flaky: tuple[str, dict[str, int]], tmp_path: Path) -> None:
    url, _ = flaky
    summary, records, _ = run(
        tmp_path, url, "/down", "--keep-going", "--retries", "3", "--retry-budget", "10%",
        "--retry-backoff", "1ms",
    )  # fmt: skip
    attempts = attempts_of(records)
    requests = attempts["request_id"].nunique()
    retries = len(attempts) - requests
    assert requests > 20 and 1 <= retries <= 0.1 * requests + 1
    assert (
        summary["retries"]["exhausted"] + summary["retries"]["recovered"]
        == summary["retries"]["retried_requests"]
    )
    assert summary["retries"]["recovered"] == 0


def demo_replica(port: int) -> subprocess.Popen[str]:
    command = [
        sys.executable,
        "-m",
        "loadbench.demo",
        "--port",
        str(port),
        "--latency-ms",
        "5",
        "--service-dist",
        "fixed",
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
    wait_http_ready(f"http://127.0.0.1:{port}/health", process, "the demo replica", timeout_s=30)
    return process


def failover(tmp_path: Path, *extra: str) -> tuple[Any, Any, str, tuple[float, float]]:
    """Three demo replicas; the second is killed by PID once the load runs and restarted a second later."""
    ports = [free_port() for _ in range(3)]
    replicas = [demo_replica(port) for port in ports]
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    out = tmp_path / "run"
    try:
        load = start_cli(
            "run", *[a for u in urls for a in ("--target", u)], "--scenario", "json_post", "--path", "/predict",
            "--data", str(DIGITS_JSONL), "-u", "3", "-d", "7s", "--warmup", "0s", "--no-sampler",
            "--quiet", "--out", str(out), *extra,
        )  # fmt: skip
        try:
            wait_for_lines(out / "requests.csv", 60)
        except AssertionError:
            load.kill()
            raise AssertionError(f"the load did not start: {load.communicate(timeout=30)[1]}") from None
        killed = time.time()
        replicas[1].send_signal(signal.SIGKILL)
        replicas[1].wait(timeout=10)
        time.sleep(1.0)
        replicas[1] = demo_replica(ports[1])
        back = time.time()  # answering again (a busy machine may take a while to start it)
        _, stderr = load.communicate(timeout=120)
        assert load.returncode in (0, 1), stderr
    finally:
        for replica in replicas:
            replica.kill()
            replica.wait(timeout=10)
    return read_json(out / "summary.json"), read_run_requests(out), urls[1], (killed, back)


def test_a_replica_killed_mid_run_shows_as_its_window_of_errors(tmp_path: Path) -> None:
    summary, records, dead, (killed, back) = failover(tmp_path)
    failed = records[records["ok"] == 0]
    assert len(failed) > 0
    assert set(failed["target"].astype(str)) == {dead}  # only the killed replica failed
    # Its failures lie in the window it was down (sent before the restart finished).
    assert (failed["start_unix_s"] >= killed - 0.5).all() and (failed["start_unix_s"] <= back + 0.5).all()
    # After the restart it serves again.
    later = records[(records["target"].astype(str) == dead) & (records["start_unix_s"] > back + 0.5)]
    assert len(later) > 0 and (later["ok"] == 1).all()
    rows = {t["url"]: t for t in summary["targets"]["targets"]}
    window = summary["window"]
    measured = failed[
        (failed["start_unix_s"] >= window["start_unix_s"]) & (failed["start_unix_s"] <= window["end_unix_s"])
    ]
    assert rows[dead]["errors"] == len(measured) > 0


def test_with_retries_on_connect_failures_the_user_sees_no_error_and_amplification_counts_them(
    tmp_path: Path,
) -> None:
    summary, records, dead, _ = failover(
        tmp_path, "--retries", "2", "--retry-on", "connect", "--retry-backoff", "5ms"
    )
    attempts = attempts_of(records)
    failed = attempts[attempts["ok"] == 0]
    assert len(failed) > 0 and set(failed["target"].astype(str)) == {dead}
    last = attempts.loc[attempts.groupby("request_id")["attempt"].idxmax()]
    assert (last["ok"] == 1).all()  # each refused attempt was sent again, elsewhere, and succeeded
    # The extra attempts are exactly the retried failures.
    assert len(attempts) - attempts["request_id"].nunique() == len(failed)
    assert summary["requests"]["errors"] == 0
    section = summary["retries"]
    assert section["retries"] == section["attempts"] - section["requests"]
    assert section["amplification"] == pytest.approx(section["attempts"] / section["requests"], rel=1e-3)
