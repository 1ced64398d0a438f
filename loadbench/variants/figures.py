"""One variant's figures with their confidence intervals: quality, latency, throughput, memory
and energy of one analyzed run directory (`loadbench.compare.rundata.RunData`).

Quality is recomputed from ``requests.csv`` (`loadbench.analyze.quality.quality_summary` over
the measured window, as the analyzer computes it); intervals come from the block bootstrap over
seconds of `loadbench.compare.bootstrap` (one draw of seconds per run serves every statistic).
Memory is the peak of the run's samples inside the window (a maximum: no interval), with the
median beside it. Definitions: docs/metrics.md ("Model variants").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from loadbench.analyze import quality
from loadbench.analyze.stats import value_at
from loadbench.analyze.window import window_start_unix_s
from loadbench.compare.bootstrap import RunBootstrap, delta_interval
from loadbench.compare.rundata import RunData

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
MIB = 1024 * 1024
# Figures with a bootstrap interval, by their key in variants.json.
WITH_CI = ("accuracy", "f1_macro", "recall_macro", "latency_ms.p50", "latency_ms.p99", "throughput_rps")
_GPU_MEM = "mem_used_bytes"
# Fewer seconds than this in a window give no interval: a bootstrap over 1 to 4 blocks, widened
# for so few (`bootstrap.expansion`), spans more than the figure's whole range (an accuracy past
# 100 %, a negative throughput).
MIN_BLOCKS = 5
# The range a figure's own interval is clipped to (a resample cannot leave it; the widening can).
_BOUNDS = {"accuracy": (0.0, 1.0), "f1_macro": (0.0, 1.0), "recall_macro": (0.0, 1.0)}


@dataclass
class QualityCounts:
    """Per second of the window: labeled and correct requests, and per class (rows) the true
    positives, answered predictions and support, so that a resample's macro scores are matrix
    products of its draw counts."""

    labeled: FloatArray
    correct: FloatArray
    tp: FloatArray  # classes x seconds
    predicted: FloatArray
    support: FloatArray


@dataclass
class Figures:
    """What `variant_figures` measured: the values, and the bootstrap behind each interval."""

    values: dict[str, float | None]
    stars: dict[str, FloatArray | None] = field(default_factory=dict)
    fulls: dict[str, float | None] = field(default_factory=dict)
    blocks: int = 1


def quality_counts(run: RunData, seconds: int) -> tuple[QualityCounts | None, dict[str, Any] | None]:
    """The window's labeled requests (`RunData.label_counts`: counted by second and class, a run
    read through its store included), by second and class, and their ``quality_summary``; (None,
    None) without labels."""
    counted = run.label_counts()
    if counted is None:
        return None, None
    expected, predicted, ok = counted["expected"], counted["predicted"], counted["ok"].to_numpy()
    summary = quality.quality_summary(expected, predicted, ok, counted["count"])
    if summary is None:
        return None, None
    labeled, answered, correct = quality.outcomes(expected, predicted, ok)
    weight = counted["count"].to_numpy(dtype=np.float64)
    second = np.clip(counted["second"].to_numpy(dtype=np.int64), 0, seconds - 1)
    expected_text, predicted_text = _labels(expected), _labels(predicted)
    classes = sorted({*expected_text[labeled], *predicted_text[answered]})
    index = {c: i for i, c in enumerate(classes)}
    shape = (len(classes), seconds)
    tp, pred, support = np.zeros(shape), np.zeros(shape), np.zeros(shape)
    e_idx = np.array([index.get(v, -1) for v in expected_text], dtype=np.int64)
    p_idx = np.array([index.get(v, -1) for v in predicted_text], dtype=np.int64)
    np.add.at(support, (e_idx[labeled], second[labeled]), weight[labeled])
    np.add.at(pred, (p_idx[answered], second[answered]), weight[answered])
    np.add.at(tp, (e_idx[correct], second[correct]), weight[correct])
    counts = QualityCounts(
        np.bincount(second[labeled], weights=weight[labeled], minlength=seconds).astype(np.float64),
        np.bincount(second[correct], weights=weight[correct], minlength=seconds).astype(np.float64),
        tp,
        pred,
        support,
    )
    return counts, dict(summary)


def _labels(values: pd.Series) -> npt.NDArray[np.str_]:
    return values.astype("object").where(values.notna(), "").astype(str).to_numpy()


def quality_stars(counts: QualityCounts, draws: IntArray) -> dict[str, FloatArray]:
    """Accuracy, macro recall and macro F1 of every resample (rows of ``draws``), over the
    classes present in it (expected or predicted there), as `quality.quality_summary` defines them."""
    labeled, correct = draws @ counts.labeled, draws @ counts.correct
    tp, pred, support = draws @ counts.tp.T, draws @ counts.predicted.T, draws @ counts.support.T
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(pred > 0, tp / np.where(pred > 0, pred, 1), 0.0)
        recall = np.where(support > 0, tp / np.where(support > 0, support, 1), 0.0)
        both = precision + recall
        f1 = np.where(both > 0, 2 * precision * recall / np.where(both > 0, both, 1), 0.0)
        present = ((pred > 0) | (support > 0)).astype(np.float64)
        n = present.sum(axis=1)
        return {
            "accuracy": np.where(labeled > 0, correct / np.where(labeled > 0, labeled, 1), np.nan),
            "recall_macro": np.where(n > 0, (recall * present).sum(axis=1) / np.where(n > 0, n, 1), np.nan),
            "f1_macro": np.where(n > 0, (f1 * present).sum(axis=1) / np.where(n > 0, n, 1), np.nan),
        }


def in_window(run: RunData) -> npt.NDArray[np.bool_]:
    """Which of the run's samples were taken inside its measured window."""
    times = run.samples["unix_s"].to_numpy(dtype=np.float64)
    keep = times >= window_start_unix_s(run.meta)
    end = value_at(run.summary, "window.end_unix_s")
    if isinstance(end, int | float):
        keep &= times <= float(end)
    return keep


def peak_median(run: RunData, values: pd.Series) -> tuple[float | None, float | None]:
    """Peak and median of one sampled series inside the measured window."""
    data = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)[in_window(run)]
    data = data[np.isfinite(data)]
    if data.size == 0:
        return None, None
    return float(data.max()), float(np.median(data))


def server_rss(run: RunData) -> tuple[float | None, float | None]:
    """The model server's resident memory, MB: (peak, median) in the window."""
    if "server.rss_bytes" not in run.samples:
        return None, None
    peak, median = peak_median(run, run.samples["server.rss_bytes"])
    return _mb(peak), _mb(median)


def gpu_memory(run: RunData) -> tuple[float | None, float | None]:
    """GPU memory used, MB, summed over this host's GPUs: (peak, median) in the window."""
    columns = [
        c for c in run.samples.columns if isinstance(c, str) and c.startswith("gpu") and c.endswith(_GPU_MEM)
    ]
    if not columns:
        return None, None
    total = run.samples[columns].apply(pd.to_numeric, errors="coerce").sum(axis=1, min_count=1)
    peak, median = peak_median(run, total)
    return _mb(peak), _mb(median)


def _mb(value: float | None) -> float | None:
    return None if value is None else round(value / MIB, 1)


def variant_figures(run: RunData, resamples: int, rng: np.random.Generator) -> Figures:
    """Every figure of one variant, and the bootstrap stars behind the intervals."""
    boot = RunBootstrap(run, resamples, rng)
    counts, summary = quality_counts(run, boot.n)
    rss_peak, rss_median = server_rss(run)
    gpu_peak, gpu_median = gpu_memory(run)
    values: dict[str, float | None] = {
        "accuracy": None if summary is None else summary["accuracy"],
        "f1_macro": None if summary is None else summary["f1"],
        "recall_macro": None if summary is None else summary["recall"],
        "latency_ms.p50": _num(value_at(run.summary, "latency_ms.p50")),
        "latency_ms.p99": _num(value_at(run.summary, "latency_ms.p99")),
        "throughput_rps": _num(value_at(run.summary, "throughput_rps")),
        "server_rss_mb": rss_peak,
        "server_rss_median_mb": rss_median,
        "gpu_memory_mb": gpu_peak,
        "gpu_memory_median_mb": gpu_median,
        "energy_j_per_request": _num(value_at(run.summary, "resources.energy.j_per_request")),
    }
    figures = Figures(values, blocks=boot.blocks)
    quality_draws = quality_full = None
    if counts is not None:
        quality_draws, quality_full = quality_stars(counts, boot.counts), quality_stars(counts, boot.ones)
    for key in WITH_CI:
        star: FloatArray | None
        full: FloatArray | None
        if key.startswith("latency_ms."):
            stat = key.split(".")[1]
            star, full = (
                boot.series_star("latency_ms", stat, boot.counts),
                boot.series_star("latency_ms", stat, boot.ones),
            )
        elif key == "throughput_rps":
            star, full = boot.rates(boot.counts)[key], boot.rates(boot.ones)[key]
        else:
            star = None if quality_draws is None else quality_draws[key]
            full = None if quality_full is None else quality_full[key]
        figures.stars[key] = star
        figures.fulls[key] = None if full is None else float(full[0])
    return figures


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def value_interval(figures: Figures, key: str) -> list[float] | None:
    """The interval of one variant's own figure (the bootstrap's, widened for few seconds)."""
    star, full, value = figures.stars.get(key), figures.fulls.get(key), figures.values.get(key)
    if star is None or full is None or value is None or figures.blocks < MIN_BLOCKS:
        return None
    interval = delta_interval(np.zeros_like(star), star, 0.0, full, value, figures.blocks)
    if interval is None:
        return None
    low, high = _BOUNDS.get(key, (0.0, float("inf")))
    return [max(interval[0], low), min(interval[1], high)]


def difference_interval(base: Figures, other: Figures, key: str) -> list[float] | None:
    """The interval of ``other`` − ``base`` for one figure (`bootstrap.delta_interval`)."""
    b, o = base.values.get(key), other.values.get(key)
    if b is None or o is None or min(base.blocks, other.blocks) < MIN_BLOCKS:
        return None
    return delta_interval(
        base.stars.get(key),
        other.stars.get(key),
        base.fulls.get(key),
        other.fulls.get(key),
        o - b,
        min(base.blocks, other.blocks),
    )
