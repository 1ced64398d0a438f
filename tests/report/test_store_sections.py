"""The report's record-reading sections (LLM, quality, real-time factor, replicas, targets) drawn
from a `RecordStore`: their plots' data equals what the records in memory give (a CSV run read
into a frame against the same records as Parquet through DuckDB), and ``report.html`` of the
stored run has every section and image the in-memory one has, without reading a frame."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from bounded_runs import (
    STARTED,
    analyzed_both_ways,
    loaded_both_ways,
    pages_both_ways,
    records,
    write_run,
)

from loadbench.analyze import store as store_module
from loadbench.analyze.store import RecordStore
from loadbench.record.columnar import read_run_requests
from loadbench.record.records import RequestRecord
from loadbench.report import plotdata_llm, plotdata_routes
from loadbench.report.plotdata_hist import histogram_of, store_histogram

TARGETS = ("http://a:8000", "http://b:8000", "http://c:8000")
LABELS = ("cat", "dog", "7", "10", "bird", "fish", "3", "0.5", "horse", "cow", "ox")  # over 8 classes


def rich_records(n: int, seed: int, open_loop: bool) -> list[RequestRecord]:
    """`records` with every column the store draws: LLM calls streamed or not (empty answers,
    one chunk, a damaged gap), labels right and wrong, media durations, phases, replicas and
    targets (some unnamed, one unlisted), and due times in an open loop."""
    rng = np.random.default_rng(seed)
    out = []
    for i, r in enumerate(records(n, seed=seed)):
        kind = int(rng.integers(0, 6))
        tokens = int(rng.integers(2, 25))
        # The first token within the latency, the gaps sharing what is left of it.
        ttft = round(r.latency_ms * float(rng.uniform(0.1, 0.5)), 3)
        share = rng.dirichlet(np.ones(tokens - 1)) * (r.latency_ms - ttft) * 0.99
        extras: dict[str, Any] = {
            "ttft_ms": ttft,
            "output_tokens": tokens,
            "tokens_source": "usage",
            "itl_ms": [round(float(g), 3) for g in share],
        }
        if kind == 1:  # not streamed
            del extras["ttft_ms"], extras["itl_ms"]
        elif kind == 2:  # one chunk, or an empty answer
            extras.update(output_tokens=int(rng.integers(0, 2)), itl_ms=[])
        elif kind == 3:
            extras = {}
        if rng.random() < 0.9:
            expected = LABELS[int(rng.integers(len(LABELS)))]
            extras["expected"] = expected
            if rng.random() < 0.85:
                extras["predicted"] = (
                    expected if rng.random() < 0.7 else LABELS[int(rng.integers(len(LABELS)))]
                )
        if rng.random() < 0.8:
            extras["media_s"] = round(float(rng.choice([0.0, 0.004, 0.02, 0.05, 2.0])), 6)
        if r.ok:
            extras |= {"connect_ms": 0.0, "ttfb_ms": round(r.latency_ms * 0.8, 3)}
        replica = "" if rng.random() < 0.05 else str(rng.choice(["r1", "r2", "r3"], p=[0.5, 0.3, 0.2]))
        target = "http://unlisted:8000" if i % 97 == 0 else ("" if i % 89 == 0 else TARGETS[i % 3])
        intended = round(r.start_unix_s - float(rng.choice([0.0002, 0.02])), 6) if open_loop else None
        out.append(
            dataclasses.replace(r, extras=extras, replica=replica, target=target, intended_unix_s=intended)
        )
    return out


@pytest.fixture(autouse=True)
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    # Samples and streamed batches on a small run: the positions and sums cross batches.
    monkeypatch.setattr(plotdata_routes, "MAX_NAMED_POINTS", 500)
    monkeypatch.setattr(plotdata_llm, "TOKEN_BATCH_ROWS", 300)
    monkeypatch.setattr(store_module, "BATCH_ROWS", 256)


def pair(tmp_path: Path, open_loop: bool) -> tuple[Path, Path]:
    """The same run twice: records in a CSV (analyzed in memory) and in Parquet (through a store)."""
    settings: dict[str, Any] = {
        "replica_header": "X-Served-By",
        "targets": [*TARGETS, "http://idle:8000"],
        "cold_start": 5,
        "slos": ["ttft<40ms", "tpot<=12ms"],
    }
    if open_loop:
        settings["load"] = {"model": "open", "rate": 75.0, "arrival": "poisson", "seed": 7}
    csv = write_run(tmp_path / "csv", rich_records(3000, 11, open_loop), settings=settings)
    stored = analyzed_both_ways(csv)
    return csv, stored


@pytest.mark.parametrize("open_loop", [False, True])
def test_every_sections_plot_data_from_the_store_equals_the_frames(tmp_path: Path, open_loop: bool) -> None:
    frame, bounded = loaded_both_ways(*pair(tmp_path, open_loop))
    assert bounded.requests.empty and not frame.requests.empty
    ours, theirs = bounded.sections, frame.sections

    assert ours.llm is not None and theirs.llm is not None
    assert ours.llm.ttft == theirs.llm.ttft and ours.llm.itl == theirs.llm.itl
    assert 1000 < ours.llm.ttft.n < ours.llm.itl.n and len(ours.llm.ttft.marks) == 3
    np.testing.assert_allclose(ours.llm.tokens_per_s, theirs.llm.tokens_per_s, rtol=1e-12)
    np.testing.assert_allclose(ours.llm.in_flight, theirs.llm.in_flight, rtol=1e-9, atol=1e-9)
    np.testing.assert_array_equal(ours.llm.tpot_p50_ms, theirs.llm.tpot_p50_ms)  # NaN where no TPOT
    assert ours.llm.tokens_per_s.sum() > 10_000 and np.isfinite(ours.llm.tpot_p50_ms).sum() > 30
    assert 0.5 < ours.llm.in_flight.max() < 20

    assert ours.quality is not None and theirs.quality is not None
    pd.testing.assert_frame_equal(ours.quality.per_second, theirs.quality.per_second)
    pd.testing.assert_frame_equal(ours.quality.rolling, theirs.quality.rolling)
    assert ours.quality.per_second["labeled"].sum() > 2000
    assert 0.5 < float(np.nanmean(ours.quality.rolling["f1"])) < 1.0

    assert ours.rtf is not None and ours.rtf == theirs.rtf
    assert ours.rtf.counts.shape == (2, 60) and (ours.rtf.counts.sum(axis=1) > 0).all()  # both sides of 1

    assert ours.replicas is not None and ours.replicas == theirs.replicas
    assert ours.replicas.start_s.size == 500 and set(ours.replicas.names.tolist()) == {"r1", "r2", "r3"}
    assert ours.targets is not None and theirs.targets is not None
    assert ours.targets[0] == theirs.targets[0] and ours.targets[0] is not None
    traffic, expected = ours.targets[1], theirs.targets[1]
    assert traffic is not None and expected is not None
    assert (
        [t[0] for t in traffic]
        == [t[0] for t in expected]
        == [*TARGETS, "http://idle:8000", "http://unlisted:8000"]
    )
    for (_, sent, failed), (_, sent_expected, failed_expected) in zip(traffic, expected, strict=True):
        np.testing.assert_array_equal(sent, sent_expected)
        np.testing.assert_array_equal(failed, failed_expected)
    assert traffic[3][1].sum() == 0 and traffic[0][2].sum() > 0  # the idle target: a line at 0


FIGURE = re.compile(r'<figure id="([\w-]+)"><img class="plot" src="data:image/png;base64,')


def test_the_stored_runs_page_has_every_section_and_image_without_a_frame(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    csv, stored = pair(tmp_path, open_loop=False)
    from_frame, from_store = pages_both_ways(csv, stored, monkeypatch)
    figures = FIGURE.findall(from_store)
    assert figures == FIGURE.findall(from_frame)
    for figure in ("plot-llm-ttft", "plot-llm-itl", "plot-llm-tokens", "plot-llm-tpot", "plot-quality-time",
                   "plot-rtf", "plot-replicas", "plot-targets-latency", "plot-targets-traffic"):  # fmt: skip
        assert figure in figures
    # Figures of exact data (counts, samples, order statistics) are the same image either way.
    images = re.compile(r'<figure id="([\w-]+)"><img class="plot" src="data:image/png;base64,([^"]+)"')
    stored_images, frame_images = dict(images.findall(from_store)), dict(images.findall(from_frame))
    for figure in ("plot-llm-ttft", "plot-llm-itl", "plot-rtf", "plot-replicas", "plot-targets-latency",
                   "plot-targets-traffic", "plot-quality-time"):  # fmt: skip
        assert stored_images[figure] == frame_images[figure], figure
    headings = re.compile(r"<h2 id='([\w-]+)'>")
    assert headings.findall(from_store) == headings.findall(from_frame)
    assert {"llm", "quality", "rtf", "replicas", "targets", "first-requests"} <= set(
        headings.findall(from_store)
    )


def test_a_store_histogram_bins_counts_and_marks_as_numpy(tmp_path: Path) -> None:
    # Values on the bins' edges, zeros (left out of log bins), a wide spread and a narrow one.
    rng = np.random.default_rng(5)
    for values in (
        np.concatenate([rng.lognormal(2.0, 2.0, 5000), [0.0, 0.0, 1e-3]]),
        np.round(rng.uniform(10.0, 12.0, 4000), 1),
        np.zeros(7),
    ):
        recs = [
            RequestRecord(
                STARTED + i * 1e-3, float(v), "/x", "GET", 200, 1, True, "", extras={"ttft_ms": float(v)}
            )
            for i, v in enumerate(values)
        ]
        run = write_run(tmp_path / f"run{values.size}", recs, parquet=True)
        with RecordStore.open(run) as store:
            got = store_histogram(store, "ttft_ms", "records")
        written = read_run_requests(run)["ttft_ms"].to_numpy(dtype=np.float64)  # as the file keeps them
        assert got == histogram_of(written) and got.n == values.size
        assert got.counts.sum() == ((written > 0).sum() if got.log else values.size)
