"""The report's Cache section drawn from a `RecordStore`: the latency histogram's data equals what
the records in memory give (hits said, hits estimated, retried attempts), and ``report.html`` of
a stored cache run has the same section and images as the in-memory one, without reading a frame."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from bounded_runs import analyzed_both_ways, pages_both_ways, write_run
from retried_runs import retried

from loadbench.analyze.store import RecordStore
from loadbench.record.columnar import read_run_requests
from loadbench.record.records import RequestRecord
from loadbench.report.rundata import load_run

HEADER = {"cache_header": "X-Cache"}
IMAGES = re.compile(r'<figure id="([\w-]+)"><img class="plot" src="data:image/png;base64,([^"]+)"')


def keyed(n: int, seed: int, said: bool) -> list[RequestRecord]:
    """Attempts of a retried run with a payload key each: repeats fast (hits), first sights slow."""
    rng = np.random.default_rng(seed)
    seen: set[str] = set()
    out = []
    for r in retried(n, seed):
        key = f"k{min(int(rng.zipf(1.3)), 50):03d}"
        hit = key in seen and r.ok
        seen.add(key)
        latency = round(float(rng.lognormal(np.log(2.0 if hit else 40.0), 0.2)), 3)
        answer = ("hit" if hit else "miss") if said and r.ok else ""
        out.append(dataclasses.replace(r, latency_ms=latency, extras={"payload_key": key}, cache=answer))
    return out


def pair(tmp_path: Path, recs: list[RequestRecord], settings: dict[str, Any]) -> tuple[Path, Path]:
    """The run analyzed in memory (CSV) and through a store (Parquet)."""
    csv = write_run(tmp_path / "csv", recs, settings={**settings, "retries": {"max": 3}})
    stored = analyzed_both_ways(csv)
    return csv, stored


@pytest.mark.parametrize("said", [True, False])
def test_the_histogram_from_the_store_equals_the_frames(tmp_path: Path, said: bool) -> None:
    csv, stored = pair(tmp_path, keyed(800, 3, said), HEADER if said else {})
    with RecordStore.open(stored) as store:
        ours = load_run(stored, store=store).sections.cache
    theirs = load_run(csv, requests=read_run_requests(csv)).sections.cache
    assert ours is not None and ours == theirs
    assert ours.estimate is not said
    assert ours.hits.sum() > 50 and ours.misses.sum() > 10


def test_the_stored_cache_page_equals_the_frames_without_a_frame(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    csv, stored = pair(tmp_path, keyed(600, 4, True), HEADER)
    from_frame, from_store = pages_both_ways(csv, stored, monkeypatch)
    stored_images, frame_images = dict(IMAGES.findall(from_store)), dict(IMAGES.findall(from_frame))
    for figure in ("plot-cache-latency", "plot-cache-replay"):
        assert stored_images[figure] == frame_images[figure], figure
    section = re.compile(r"<h2 id='cache'>Cache</h2>.*?</table>", re.DOTALL)
    assert section.findall(from_store) == section.findall(from_frame) != []
