"""A distributed gRPC run: two local worker processes load the demo's gRPC side and ship every
record to the master, which writes one run directory as for HTTP (test_distributed.py).
The demo and `loadbench run --workers 2` as real child processes."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import read_json, run_cli

from loadbench.record.columnar import read_run_requests


@pytest.mark.e2e
def test_two_workers_load_a_grpc_target_into_one_run(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = run_cli(
        # 4 s: each worker must finish requests of its own, and on a machine loaded four times
        # over a worker once finished none in 2 s (the other 31, where each does about 440 on an idle one).
        "run", "--demo", "--scenario", "kserve_v2_grpc", "--demo-latency-ms", "5", "--workers", "2",
        "-u", "4", "-d", "4s", "--warmup", "0s", "--no-sampler", "--quiet", "--out", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    meta = read_json(out / "meta.json")
    workers = meta["workers"]
    assert len(workers) == 2, workers
    assert all(w["records"] > 0 and w["died_at_unix_s"] is None for w in workers), workers
    records = read_run_requests(out)
    assert len(records) == sum(w["records"] for w in workers)
    assert set(records["name"]) == {"/inference.GRPCInferenceService/ModelInfer"}
    assert set(records["method"]) == {"gRPC"} and records["ok"].all()
    summary = read_json(out / "summary.json")
    assert summary["run"]["workers"] == 2 and summary["requests"]["total"] == len(records)
    assert summary["requests"]["errors"] == 0
