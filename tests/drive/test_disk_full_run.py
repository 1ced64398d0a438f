"""A run whose disk fills up: it stops with one line, exits non-zero, and its directory stays usable."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path

from helpers import REPO

from loadbench.record import rundir
from loadbench.record.columnar import read_run_requests

LIMIT_BYTES = 600_000  # RLIMIT_FSIZE: a write past it fails (EFBIG), as one past a full disk does


def _limit_file_size() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT_BYTES, LIMIT_BYTES))


def test_a_run_whose_records_cannot_be_written_stops_early_and_keeps_what_was_written(tmp_path: Path) -> None:
    out = tmp_path / "run"
    command = [
        sys.executable, "-m", "loadbench", "run", "--demo", "-u", "4", "-d", "300s", "--warmup", "0s",
        "--no-sampler", "--quiet", "--out", str(out),
    ]  # fmt: skip
    # Python ignores SIGXFSZ, so a write past the limit is an OSError (File too large).
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=420, cwd=REPO, preexec_fn=_limit_file_size
    )
    assert result.returncode == 3, result.stderr
    assert "stopping early: cannot write requests.csv: File too large" in result.stderr
    assert "Traceback" not in result.stderr
    meta = json.loads((out / rundir.META).read_text())
    assert meta["status"] == rundir.STATUS_FAILED and "cannot write requests.csv" in meta["failure"]
    assert "later records were not written" in meta["failure"]  # those in flight when it failed
    assert meta["ended_unix_s"] - meta["started_unix_s"] < 300  # stopped, not run to its end
    kept = read_run_requests(out)  # converted at the end as any run's: a small file, under the limit
    assert len(kept) > 0
    summary = json.loads((out / rundir.SUMMARY).read_text())
    assert summary["requests"]["total"] <= len(kept)
