"""Per-stage metrics of a run with a load shape: ``summary.json`` ``stages``."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, TypedDict

import numpy as np
import numpy.typing as npt

from loadbench.analyze import stats
from loadbench.errors import RunDirError
from loadbench.record.records import TIME_RESOLUTION_S


class StageSection(TypedDict):
    """One entry of ``summary["stages"]``: the measured requests of one stage of the load shape."""

    name: str
    start_s: float
    end_s: float
    start_level: float
    end_level: float
    measured_s: float
    requests: int
    ok: int
    errors: int
    error_rate: float
    throughput_rps: float | None
    request_rate_rps: float | None
    latency_ms: stats.LatencySummary
    in_warmup: float


def stage_summaries(
    start_unix_s: Sequence[float] | npt.NDArray[np.float64],
    latency_ms: Sequence[float] | npt.NDArray[np.float64],
    ok: Sequence[bool] | Sequence[int] | npt.NDArray[Any],
    run_started_unix_s: float,
    stages: list[dict[str, Any]],
    window_start_unix_s: float,
    *,
    window_end_unix_s: float | None = None,
) -> list[StageSection]:
    """Metrics per stage (``summary.json`` ``stages``), stages as `Stage.to_dict` gives them.

    A request belongs to the stage in which it started, and counts only when it started in
    the measured window (after the warmup), as in the run's summary. ``measured_s`` is the
    part of the stage inside the window ``[window_start, window_end]`` (window_end None: the
    stage's planned end) and the rates divide by it; ``in_warmup`` is the share of the
    stage's planned time that lies in the warmup. Latency: the stage's successful requests.
    """
    starts = np.asarray(start_unix_s, dtype=np.float64)
    latencies = np.asarray(latency_ms, dtype=np.float64)
    oks = np.asarray(ok).astype(bool)
    measured = starts >= window_start_unix_s - TIME_RESOLUTION_S / 2  # as the run's summary counts
    out: list[StageSection] = []
    for index, stage in enumerate(stages):
        try:
            name = str(stage["name"])
            start_s, end_s = float(stage["start_s"]), float(stage["end_s"])
            start_level, end_level = float(stage["start_level"]), float(stage["end_level"])
            if not all(map(math.isfinite, (start_s, end_s, start_level, end_level))):
                raise ValueError
        except (KeyError, TypeError, ValueError):
            raise RunDirError(f"meta.json settings.stages[{index}] is not a stage: {stage!r:.200}") from None
        lo, hi = run_started_unix_s + start_s, run_started_unix_s + end_s
        planned_s = max(hi - lo, 0.0)
        window_hi = hi if window_end_unix_s is None else min(hi, window_end_unix_s)
        measured_s = max(window_hi - max(lo, window_start_unix_s), 0.0)
        warmup_s = min(max(window_start_unix_s - lo, 0.0), planned_s)
        selected = measured & (starts >= lo) & (starts < hi)
        total = int(selected.sum())
        good = int((selected & oks).sum())
        out.append(
            {
                "name": name,
                "start_s": start_s,
                "end_s": end_s,
                "start_level": start_level,
                "end_level": end_level,
                "measured_s": round(measured_s, 3),
                **stage_figures(total, good, stats.latency_summary(latencies[selected & oks]), measured_s),  # type: ignore[typeddict-item]
                "in_warmup": round(warmup_s / planned_s, 6) if planned_s > 0 else 0.0,
            }
        )
    return out


def stage_figures(total: int, good: int, latency: stats.LatencySummary, measured_s: float) -> dict[str, Any]:
    """A stage's requests, successes and their latency, with its rates over its ``measured_s``
    (unrounded): the part of `stage_summaries`' row either analyzer counts."""
    return {
        "requests": total,
        "ok": good,
        "errors": total - good,
        "error_rate": stats.fraction(total - good, total),
        "throughput_rps": stats.rate(good, measured_s),
        "request_rate_rps": stats.rate(total, measured_s),
        "latency_ms": latency,
    }
