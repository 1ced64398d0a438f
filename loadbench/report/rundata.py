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

from loadbench.analyze.attempts import split_attempts
from loadbench.analyze.bounded import open_bounded
from loadbench.analyze.store import RecordStore
from loadbench.errors import RunDirError
from loadbench.record import rundir
from loadbench.record.columnar import read_run_requests
from loadbench.record.records import COLUMNS, CSV_COLUMN_DTYPES, from_due_time
from loadbench.record.series import read_samples, read_timeseries
from loadbench.report.fmt import as_dict, num
from loadbench.report.plotdata import (
    PlotData,
    error_kind_frame,
    frame_plot_data,
    store_covers,
    store_plot_data,
    window_bounds,
)
from loadbench.report.sectiondata import SectionData, frame_section_data, store_section_data

__all__ = ["BADGES", "Identity", "Run", "error_kind_frame", "in_window", "load_run", "no_records"]

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
    plots: PlotData  # what the per-request plots draw (from the frames or from a store)
    sections: SectionData  # what the record-reading sections' plots draw (from either)


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


def load_run(run_dir: Path, requests: pd.DataFrame | None = None, store: RecordStore | None = None) -> Run:
    """The run directory as the report needs it. ``requests``: its records as `read_run_requests`
    gave them, or ``store``: the `RecordStore` `open_bounded` gave, when the caller has opened them
    already; without either, a store when `open_bounded` gives one (the records never in memory:
    the plots' data comes from DuckDB), else the records read into memory."""
    meta = rundir.read_meta(run_dir)
    for name in (rundir.SUMMARY, rundir.TIMESERIES):
        if not (run_dir / name).is_file():
            raise RunDirError(f"{run_dir} has no {name}: run the analyzer first (loadbench report {run_dir})")
    if store is not None and not store_covers(meta, store):
        # A section of its report draws from the records themselves: read them.
        return load_run(run_dir, requests=read_run_requests(run_dir))
    if requests is None and store is None:
        opened = open_bounded(run_dir, meta)
        if opened is not None:
            with opened:
                if store_covers(meta, opened):
                    return load_run(run_dir, store=opened)
        requests = read_run_requests(run_dir)
    summary = rundir.read_json(run_dir / rundir.SUMMARY)
    timeseries = read_timeseries(run_dir / rundir.TIMESERIES)
    if store is not None:
        # A run whose every plot the store draws (`store_covers`): the sections that read records
        # draw from `SectionData` instead.
        requests = attempts = no_records()
    else:
        assert requests is not None
        split = split_attempts(requests)
        requests, attempts = split.requests, split.attempts
    if not timeseries.empty:
        # The analyzer's seconds are the reference, so scatter points line up with per-second rows.
        run_start = float(timeseries["start_unix_s"].iloc[0] - timeseries["second"].iloc[0])
    elif num(meta.get("started_unix_s")) is not None:
        run_start = float(meta["started_unix_s"])
    elif store is not None:
        ((first,),) = store.rows("SELECT min(start_unix_s) FROM records")
        run_start = 0.0 if first is None else float(first)
    else:
        run_start = float(requests["start_unix_s"].min()) if len(requests) else 0.0
    if store is not None:
        plot_data = store_plot_data(store, meta, summary, run_start)
        sections = store_section_data(store, summary, timeseries, run_start)
    else:
        # The window as the analyzer has it: an open loop's requests by their due time.
        plot_data = frame_plot_data(requests, in_window(from_due_time(requests), summary), run_start)
        sections = frame_section_data(
            summary, requests, attempts, timeseries, run_start, in_window(requests, summary)
        )
    samples = read_samples(run_dir / rundir.SAMPLES)
    return Run(
        run_dir, meta, summary, timeseries, requests, run_start, samples, attempts, plot_data, sections
    )


def in_window(requests: pd.DataFrame, summary: dict[str, Any]) -> npt.NDArray[np.bool_]:
    """Requests whose start lies in the analyzer's measured window (inclusive both ends)."""
    start = requests["start_unix_s"].to_numpy(dtype=float)
    mask = np.ones(start.size, dtype=bool)
    lo, hi = window_bounds(summary)
    if lo is not None:
        mask &= start >= lo
    if hi is not None:
        mask &= start <= hi
    return mask


def no_records() -> pd.DataFrame:
    """An empty record frame, every column with the dtype the readers give it."""
    return pd.DataFrame({c: pd.Series([], dtype=t) for c, t in CSV_COLUMN_DTYPES.items()})[list(COLUMNS)]
