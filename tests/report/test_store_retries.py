"""The report of a run with ``--retries`` drawn from a `RecordStore`: the per-request plots draw the
requests users saw (the store's collapsed records), the replicas' and targets' plots the attempts,
with the data the records in memory give; the page has every section and image, no frame read."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from bounded_runs import analyzed_both_ways, loaded_both_ways, pages_both_ways, write_run
from retried_runs import OPEN_LOAD, RETRIES, TARGETS, retried

from loadbench.analyze import store as store_module
from loadbench.record import rundir
from loadbench.report import plotdata, plotdata_routes

IDLE = "http://idle:8000"


@pytest.fixture(autouse=True)
def small_samples(monkeypatch: pytest.MonkeyPatch) -> None:
    # Samples and streamed batches on a small run: the positions cross batches.
    monkeypatch.setattr(plotdata_routes, "MAX_NAMED_POINTS", 400)
    monkeypatch.setattr(plotdata, "MAX_POINTS", 900)
    monkeypatch.setattr(plotdata, "MAX_ERROR_POINTS", 60)
    monkeypatch.setattr(store_module, "BATCH_ROWS", 256)


def pair(tmp_path: Path, open_loop: bool) -> tuple[Path, Path]:
    """The same retried run twice: records in a CSV (analyzed in memory) and in Parquet (through
    a store)."""
    settings: dict[str, Any] = {
        "retries": RETRIES,
        "replica_header": "X-Served-By",
        "targets": [*TARGETS, IDLE],
    }
    if open_loop:
        settings["load"] = OPEN_LOAD
    csv = write_run(
        tmp_path / "csv", retried(2000, seed=41, open_loop=open_loop, routed=True), settings=settings
    )
    stored = analyzed_both_ways(csv)
    assert rundir.read_json(stored / rundir.SUMMARY) == rundir.read_json(csv / rundir.SUMMARY)
    return csv, stored


@pytest.mark.parametrize("open_loop", [False, True], ids=["closed", "open"])
def test_a_retried_runs_plot_data_from_the_store_equals_the_frames(tmp_path: Path, open_loop: bool) -> None:
    frame, bounded = loaded_both_ways(*pair(tmp_path, open_loop))
    assert bounded.requests.empty and len(frame.attempts) > len(frame.requests)
    ours, theirs = bounded.plots.scatter, frame.plots.scatter
    assert (
        (ours.ok_total, ours.err_total)
        == (theirs.ok_total, theirs.err_total)
        == (
            int(frame.requests["ok"].sum()),
            int((frame.requests["ok"] == 0).sum()),
        )
    )
    assert ours.ok_start_s.size == 900 and ours.err_start_s.size == 60
    for field in ("ok_start_s", "ok_latency_ms", "err_start_s", "err_latency_ms"):
        np.testing.assert_array_equal(getattr(ours, field), getattr(theirs, field))
    assert ours.start_range == theirs.start_range
    assert ours.ok_latency_ms.max() > 300.0  # a retried request: its backoff in its latency

    curve, expected = bounded.plots.curve, frame.plots.curve
    assert curve.n == expected.n > 0 and curve.marks == expected.marks
    np.testing.assert_array_equal(curve.y, expected.y)
    # From the summary, which keeps the µs (an open loop's latency from the due time has more).
    assert expected.min_positive is not None
    assert (curve.maximum, curve.min_positive) == (
        round(expected.maximum, 3),
        round(expected.min_positive, 3),
    )
    pd.testing.assert_frame_equal(bounded.plots.errors, frame.plots.errors)
    assert bounded.plots.errors["count"].sum() == ours.err_total  # requests that failed, not attempts

    sections, want = bounded.sections, frame.sections
    assert sections.replicas is not None and sections.replicas == want.replicas
    assert sections.targets is not None and want.targets is not None
    assert sections.targets[0] == want.targets[0]
    traffic, expected_traffic = sections.targets[1], want.targets[1]
    assert traffic is not None and expected_traffic is not None
    assert [t[0] for t in traffic] == [t[0] for t in expected_traffic] == [*TARGETS, IDLE]
    for (_, sent, failed), (_, sent_expected, failed_expected) in zip(traffic, expected_traffic, strict=True):
        np.testing.assert_array_equal(sent, sent_expected)
        np.testing.assert_array_equal(failed, failed_expected)
    # Attempts per target: more than the requests, failed attempts on both targets.
    assert sum(t[1].sum() for t in traffic) > len(frame.requests) * 0.9 and traffic[1][2].sum() > 0


FIGURE = re.compile(r'<figure id="([\w-]+)"><img class="plot" src="data:image/png;base64,([^"]+)"')


def test_a_retried_runs_page_from_the_store_has_every_section_without_a_frame(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    csv, stored = pair(tmp_path, open_loop=False)
    from_frame, from_store = pages_both_ways(csv, stored, monkeypatch)
    stored_images, frame_images = dict(FIGURE.findall(from_store)), dict(FIGURE.findall(from_frame))
    assert list(stored_images) == list(frame_images)
    for figure in ("plot-latency-time", "plot-percentiles", "plot-errors", "plot-replicas",
                   "plot-targets-latency", "plot-targets-traffic"):  # fmt: skip
        assert stored_images[figure] == frame_images[figure], figure
    headings = re.compile(r"<h2 id='([\w-]+)'>")
    assert headings.findall(from_store) == headings.findall(from_frame)
    assert {"retries", "replicas", "targets"} <= set(headings.findall(from_store))
