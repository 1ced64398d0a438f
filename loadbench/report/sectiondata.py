"""The data of the report sections' plots that read records (LLM, quality, real-time factor,
replicas, targets, cache): made once per run, from the records in memory (`frame_section_data`) or from
a `RecordStore` (`store_section_data`), only for the sections its summary has. Each section draws
from it (`loadbench.report.page`), so a run of any length is drawn in bounded memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from loadbench.analyze.replicas import COLUMN, TARGET_COLUMN
from loadbench.report.fmt import as_dict
from loadbench.report.llm import has_llm
from loadbench.report.plotdata import window_sql
from loadbench.report.plotdata_cache import CacheHistogram, frame_cache_data, store_cache_data
from loadbench.report.plotdata_hist import Histogram
from loadbench.report.plotdata_llm import LlmPlotData, frame_llm_data, store_llm_data
from loadbench.report.plotdata_quality import (
    QualityPlotData,
    frame_quality_data,
    frame_rtf,
    store_quality_data,
    store_rtf,
)
from loadbench.report.plotdata_routes import (
    NamedPoints,
    Traffic,
    named_points,
    store_named_points,
    store_traffic,
    traffic,
)
from loadbench.report.targets import listed_targets

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from loadbench.analyze.store import RecordStore


@dataclass(frozen=True)
class SectionData:
    """Each record-reading section's plot data; None where the summary has no such section."""

    llm: LlmPlotData | None = None
    quality: QualityPlotData | None = None
    rtf: Histogram | None = None
    replicas: NamedPoints | None = None
    targets: tuple[NamedPoints | None, Traffic | None] | None = None
    cache: CacheHistogram | None = None


def frame_section_data(
    summary: dict[str, Any],
    requests: pd.DataFrame,
    attempts: pd.DataFrame,
    timeseries: pd.DataFrame,
    run_start: float,
    in_window: npt.NDArray[np.bool_],
) -> SectionData:
    """`SectionData` of the records in memory: ``requests`` as users saw them, ``attempts`` as
    written; ``in_window``: the requests sent in the measured window."""
    return SectionData(
        llm=frame_llm_data(summary, requests, timeseries, run_start) if has_llm(summary) else None,
        quality=frame_quality_data(requests, run_start, timeseries)
        if as_dict(summary.get("quality"))
        else None,
        rtf=frame_rtf(requests, in_window) if as_dict(summary.get("rtf")) else None,
        replicas=named_points(attempts, COLUMN, run_start) if as_dict(summary.get("replicas")) else None,
        targets=(
            named_points(attempts, TARGET_COLUMN, run_start),
            traffic(attempts, TARGET_COLUMN, run_start, timeseries, listed_targets(summary)),
        )
        if as_dict(summary.get("targets"))
        else None,
        cache=frame_cache_data(summary, attempts),
    )


def store_section_data(
    store: RecordStore, summary: dict[str, Any], timeseries: pd.DataFrame, run_start: float
) -> SectionData:
    """`SectionData` of the store's records: its ``records`` and ``requests`` as users saw them,
    its ``written`` records as the attempts (`loadbench.analyze.store.COLLAPSE`)."""
    return SectionData(
        llm=store_llm_data(store, summary, timeseries, run_start) if has_llm(summary) else None,
        quality=store_quality_data(store, run_start, timeseries) if as_dict(summary.get("quality")) else None,
        rtf=store_rtf(store, window_sql(summary)) if as_dict(summary.get("rtf")) else None,
        replicas=store_named_points(store, COLUMN, run_start) if as_dict(summary.get("replicas")) else None,
        targets=(
            store_named_points(store, TARGET_COLUMN, run_start),
            store_traffic(store, TARGET_COLUMN, run_start, timeseries, listed_targets(summary)),
        )
        if as_dict(summary.get("targets"))
        else None,
        cache=store_cache_data(store, summary),
    )


__all__: Sequence[str] = ("SectionData", "frame_section_data", "store_section_data")
