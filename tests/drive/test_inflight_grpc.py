"""gRPC calls cut off by the stop, and by the server's death: calls in flight when the load
stops are counted like HTTP requests (test_inflight.py), and a server killed mid-run is measured
as the calls' own failure (``UNAVAILABLE``), never a crash or a success.

The demo's gRPC side as a real child process; `loadbench run` in a child process.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from grpc_servers import demo_grpc_child
from helpers import read_json, run_cli, start_cli, wait_for_lines

from loadbench.record.columnar import read_run_requests


@pytest.mark.e2e
@pytest.mark.parametrize("stream", [False, True], ids=["ModelInfer", "ModelStreamInfer"])
def test_grpc_calls_cut_off_by_the_stop_are_counted(tmp_path: Path, stream: bool) -> None:
    out = tmp_path / "run"
    # 1.5 s calls (the stream's first answer after 1.5 s), 3 users for 2.5 s: each user is
    # inside its second call at the stop.
    result = run_cli(
        "run", "--demo", "--scenario", "kserve_v2_grpc", *(["--stream"] if stream else []),
        "--demo-latency-ms", "1500", "--no-preflight", "-u", "3", "-d", "2.5s", "--warmup", "0s",
        "--out", str(out), "--quiet", "--no-sampler",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    meta = read_json(out / "meta.json")
    recorded = read_run_requests(out)
    # One call per user came back (fewer if a busy machine spawned a user late); whatever the
    # timing, each user was inside a call when it was stopped.
    assert meta["status"] == "complete" and 1 <= len(recorded) <= 3 and recorded["ok"].all()
    assert meta["in_flight_unrecorded"] == 3
    summary = read_json(out / "summary.json")
    assert summary["requests"]["in_flight_unrecorded"] == 3
    assert "3 request(s) in flight at the stop were not recorded" in json.dumps(summary["notices"])


@pytest.mark.e2e
def test_a_grpc_server_killed_mid_run_is_measured_as_unavailable(tmp_path: Path) -> None:
    out = tmp_path / "run"
    with demo_grpc_child(5.0) as (demo, _, target):
        run = start_cli(
            "run", "--target", target, "--model", "digits", "--no-preflight", "-u", "2", "-d", "4s",
            "--warmup", "0s", "--out", str(out), "--quiet", "--no-sampler",
        )  # fmt: skip
        try:
            wait_for_lines(out / "requests.csv", 20)  # the header and some answers
            demo.kill()
            demo.wait(timeout=10)
            _, stderr = run.communicate(timeout=60)
        finally:
            run.kill()
    # Some calls succeeded: the run is measured to its end, not stopped as a target that failed.
    assert run.returncode == 0, stderr
    records = read_run_requests(out)
    failed = records[~records["ok"].astype(bool)]
    assert records["ok"].astype(bool).sum() >= 19 and len(failed) > 0
    # After the kill: UNAVAILABLE in gRPC's words, no answer (status 0), never a success.
    assert failed["error"].str.startswith("UNAVAILABLE").all(), failed["error"].unique()
    assert (failed["status"] == 0).all()
    assert failed["start_unix_s"].min() > records.loc[records["ok"].astype(bool), "start_unix_s"].min()
    summary = read_json(out / "summary.json")
    # Kinds by what gRPC said: the calls cut by the death, and those refused after it.
    kinds = {row["kind"] for row in summary["errors"]}
    allowed = {"UNAVAILABLE", "connection refused", "connection reset", "connection closed"}
    assert kinds and kinds <= allowed, summary["errors"]
    assert summary["requests"]["errors"] == len(failed)
