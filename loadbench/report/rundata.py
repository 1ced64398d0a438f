"""An analyzed run directory loaded once for its report, and what every section derives from it:
the run's identity (scenario, target, status), the measured window's requests, errors by kind.

With ``--retries`` the records are attempts: the report collapses them into the requests users
saw as the analyzer does (`loadbench.analyze.attempts`), so its plots show what its figures count;
the attempts stay beside them for the sections about attempts (targets, replicas).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from loadbench.analyze import stats
from loadbench.analyze.attempts import split_attempts
from loadbench.errors import RunDirError
from loadbench.record import rundir
from loadbench.record.columnar import read_run_requests
from loadbench.record.series import read_samples, read_timeseries
from loadbench.report.fmt import as_dict, num

# status -> (shown as, badge class)
BADGES = {
    rundir.STATUS_COMPLETE: ("complete", "ok"),
    rundir.STATUS_INTERRUPTED: ("interrupted", "warn"),
    rundir.STATUS_FAILED: ("failed", "bad"),
    rundir.STATUS_RUNNING: ("incomplete", "warn"),
}


@dataclass(slots=True)
class Run:
    """Everything the report needs, loaded once."""

    run_dir: Path
    meta: dict[str, Any]
    summary: dict[str, Any]
    timeseries: pd.DataFrame
    requests: pd.DataFrame  # one row per user-visible request (attempts collapsed)
    run_start: float  # unix s of second 0 of the timeseries
    samples: pd.DataFrame  # resource samples; just a ``unix_s`` column when there are none
    attempts: pd.DataFrame  # the records as written: every attempt (``requests`` without retries)


@dataclass(frozen=True, slots=True)
class Identity:
    """What the run was: the summary's word first, the directory's ``meta.json`` as the fallback."""

    scenario: str
    target: str
    status: str

    @classmethod
    def of(cls, meta: dict[str, Any], summary: dict[str, Any]) -> Identity:
        info = as_dict(summary.get("run"))
        return cls(
            str(info.get("scenario") or meta.get("scenario") or "unknown scenario"),
            str(info.get("target") or meta.get("target") or "unknown target"),
            str(info.get("status") or meta.get("status") or rundir.STATUS_RUNNING),
        )


def load_run(run_dir: Path, requests: pd.DataFrame | None = None) -> Run:
    meta = rundir.read_meta(run_dir)
    for name in (rundir.SUMMARY, rundir.TIMESERIES):
        if not (run_dir / name).is_file():
            raise RunDirError(f"{run_dir} has no {name}: run the analyzer first (loadbench report {run_dir})")
    summary = rundir.read_json(run_dir / rundir.SUMMARY)
    timeseries = read_timeseries(run_dir / rundir.TIMESERIES)
    if requests is None:
        requests = read_run_requests(run_dir)
    split = split_attempts(requests)
    requests = split.requests
    if not timeseries.empty:
        # The analyzer's seconds are the reference, so scatter points line up with per-second rows.
        run_start = float(timeseries["start_unix_s"].iloc[0] - timeseries["second"].iloc[0])
    elif num(meta.get("started_unix_s")) is not None:
        run_start = float(meta["started_unix_s"])
    else:
        run_start = float(requests["start_unix_s"].min()) if len(requests) else 0.0
    samples = read_samples(run_dir / rundir.SAMPLES)
    return Run(run_dir, meta, summary, timeseries, requests, run_start, samples, split.attempts)


def in_window(requests: pd.DataFrame, summary: dict[str, Any]) -> npt.NDArray[np.bool_]:
    """Requests whose start lies in the analyzer's measured window (inclusive both ends)."""
    window = summary.get("window") or {}
    start = requests["start_unix_s"].to_numpy(dtype=float)
    mask = np.ones(start.size, dtype=bool)
    lo, hi = num(window.get("start_unix_s")), num(window.get("end_unix_s"))
    if lo is not None:
        mask &= start >= lo
    if hi is not None:
        mask &= start <= hi
    return mask


def error_kind_frame(requests: pd.DataFrame, run_start: float) -> pd.DataFrame:
    """Failed requests counted per (second, kind), with the analyzer's own kind rule."""
    failed = requests[requests["ok"].to_numpy() == 0]
    if failed.empty:
        return pd.DataFrame({"second": pd.Series([], dtype="int64"), "kind": [], "count": []})
    # Count each distinct (second, status, error) first, then name each of those rows' pairs
    # once: few, even when failures are many.
    second = np.floor(failed["start_unix_s"].to_numpy() - run_start).astype("int64")
    keyed = pd.DataFrame({"second": second, "status": failed["status"].to_numpy(), "error": failed["error"]})
    counts = keyed.groupby(["second", "status", "error"], sort=False, observed=True, dropna=False).size()
    counts = counts[counts > 0].rename("count").reset_index()
    kinds: dict[tuple[int, str], str] = {}
    kind = []
    for st, er in zip(counts["status"].tolist(), counts["error"].astype(str).tolist(), strict=True):
        if (st, er) not in kinds:
            kinds[(st, er)] = stats.error_kind(int(st), er)
        kind.append(kinds[(st, er)])
    frame = pd.DataFrame({"second": counts["second"].to_numpy(), "kind": kind, "count": counts["count"]})
    return frame.groupby(["second", "kind"], sort=True)["count"].sum().rename("count").reset_index()
