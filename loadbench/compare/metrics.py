"""The metrics ``loadbench compare`` compares: which ones two runs share, their values and verdicts.

Every metric is a ``summary.json`` path; one with a bootstrap statistic (``star``) gets a
confidence interval (`loadbench.compare.bootstrap`), the others a verdict by value alone.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from loadbench.analyze.resources import gpu_count
from loadbench.analyze.stats import value_at
from loadbench.compare.bootstrap import MIN_SECONDS, SERIES_STATS, RunBootstrap
from loadbench.compare.rundata import RunData

MIN_EFFECT_PCT = 3.0  # smallest relative change called better / worse
MIN_ERROR_RATE_PP = 0.1  # the same for error rates, in percentage points
VALUE_ONLY_PCT = 25.0  # metrics without an interval: relative change needed for a verdict
MAX_PCT = 100.0  # latency_ms.max: a single request, the noisiest figure of all

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
LATENCY_STATS = ("p50", "p90", "p95", "p99", "p999", "mean", "max")
# Per-request series of the LLM keys: same block bootstrap as latency (quality: by value).
LLM_PREFIXES = ("ttft_ms", "itl_ms", "tpot_ms", "e2e_ms")
FUTURE_PREFIXES = (*LLM_PREFIXES, "quality")
# quality: its headline fractions only (per-class figures would swamp the table).
QUALITY_KEYS = ("accuracy", "precision", "recall", "f1")
RTF_STATS = ("p50", "p90", "p99")


def number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


# -- metrics ---------------------------------------------------------------------------------------


@dataclass
class Metric:
    path: str
    label: str
    unit: str
    direction: str  # which is better: "lower" | "higher"
    star: Callable[[RunBootstrap, npt.NDArray[np.int64]], FloatArray | None] | None = None
    value_only_pct: float = VALUE_ONLY_PCT


def _series_star(name: str, key: str) -> Callable[[RunBootstrap, npt.NDArray[np.int64]], FloatArray | None]:
    def star(boot: RunBootstrap, counts: npt.NDArray[np.int64]) -> FloatArray | None:
        return boot.series_star(name, key, counts)

    return star


def _rate_star(
    key: str, per_gpu: bool = False
) -> Callable[[RunBootstrap, npt.NDArray[np.int64]], FloatArray | None]:
    def star(boot: RunBootstrap, counts: npt.NDArray[np.int64]) -> FloatArray | None:
        if boot.request_seconds < MIN_SECONDS or (per_gpu and not boot.gpus):
            return None
        rate = boot.rates(counts).get(key)
        if rate is None:
            return None
        return rate / boot.gpus if per_gpu else rate

    return star


def _resource_star(column: str) -> Callable[[RunBootstrap, npt.NDArray[np.int64]], FloatArray | None]:
    def star(boot: RunBootstrap, counts: npt.NDArray[np.int64]) -> FloatArray | None:
        return boot.resource(column, counts)

    return star


_LATENCY_LABELS = {"p50": "p50", "p90": "p90", "p95": "p95", "p99": "p99", "p999": "p99.9"}


def is_open(run: RunData) -> bool:
    load = (run.meta.get("settings") or {}).get("load") or {}
    return load.get("model") == "open" or value_at(run.summary, "load.model") == "open"


def _latency_metrics(prefix: str, what: str) -> list[Metric]:
    """p50 … p99.9, mean (bootstrapped) and max (by value) of a latency-like summary key."""
    out = []
    for key in LATENCY_STATS:
        label = f"{key} {what}" if key in ("mean", "max") else f"{what} {_LATENCY_LABELS[key]}"
        if key == "max":
            out.append(Metric(f"{prefix}.max", label, "ms", "lower", None, MAX_PCT))
        else:
            out.append(Metric(f"{prefix}.{key}", label, "ms", "lower", _series_star(prefix, key)))
    return out


def shared_metrics(base: RunData, candidate: RunData) -> list[Metric]:
    """The metrics both runs can be compared on, in display order."""
    runs = (base.summary, candidate.summary)
    out = _latency_metrics("latency_ms", "latency")
    # Open loop: latency counts from the due time; the service time (from the actual send)
    # tells a slower server from a generator that fell behind. Closed loop: the two are equal.
    if (is_open(base) or is_open(candidate)) and all(
        isinstance(s.get("service_time_ms"), dict) for s in runs
    ):
        out += _latency_metrics("service_time_ms", "service time")
    out += [
        Metric("throughput_rps", "throughput", "req/s", "higher", _rate_star("throughput_rps")),
        Metric("request_rate_rps", "request rate", "req/s", "higher", _rate_star("request_rate_rps")),
        Metric("requests.error_rate", "error rate", "fraction", "lower", _rate_star("error_rate")),
    ]
    present = _resource_metrics(base, runs)
    out += [m for m in present if any(number(value_at(s, m.path)) is not None for s in runs)]
    if all(gpu_count(s) for s in runs):
        out.append(
            Metric(
                "throughput_per_gpu_rps",
                "throughput per GPU",
                "req/s",
                "higher",
                _rate_star("throughput_rps", per_gpu=True),
            )
        )
    return out + _model_metrics(runs)


def _resource_metrics(base: RunData, runs: tuple[dict[str, Any], dict[str, Any]]) -> list[Metric]:
    """Server, host, generator and GPU figures (kept by the caller where either run has them)."""
    present = [
        Metric(
            "resources.server_process.cpu_percent.mean",
            "server CPU (mean)",
            "% of a core",
            "lower",
            _resource_star("server.cpu_percent"),
        ),
        Metric("resources.server_process.rss_bytes.max", "server memory (peak RSS)", "bytes", "lower"),
        Metric(
            "resources.host.cpu_percent.mean",
            "host CPU (mean)",
            "%",
            "lower",
            _resource_star("host.cpu_percent"),
        ),
        # The generator's own cost: lower leaves it more headroom before it saturates.
        Metric(
            "resources.generator.cpu_mean_percent",
            "load generator CPU (mean)",
            "% of a core",
            "lower",
            _resource_star("generator.cpu_percent"),
        ),
    ]
    gpus = min(len(value_at(s, "resources.gpus") or []) for s in runs)
    for i in range(gpus):
        index = value_at(base.summary, f"resources.gpus.{i}.index")
        column = f"gpu{index if isinstance(index, int) else i}"
        present += [
            Metric(
                f"resources.gpus.{i}.util_mean",
                f"GPU {i} utilization (mean)",
                "%",
                "higher",
                _resource_star(f"{column}.util_percent"),
            ),
            Metric(f"resources.gpus.{i}.mem_used_max_mib", f"GPU {i} memory (peak)", "MiB", "lower"),
            Metric(
                f"resources.gpus.{i}.power_mean_w",
                f"GPU {i} power (mean)",
                "W",
                "lower",
                _resource_star(f"{column}.power_w"),
            ),
        ]
    present.append(Metric("resources.energy.j_per_request", "energy per request", "J", "lower"))
    return present


def _model_metrics(runs: tuple[dict[str, Any], dict[str, Any]]) -> list[Metric]:
    """Model-specific keys, when both runs have them: the LLM latencies with the same block
    bootstrap as latency (their maxima and minima by value), quality by value, tokens, goodput, RTF."""

    def in_both(path: str) -> bool:
        return all(number(value_at(s, path)) is not None for s in runs)

    out: list[Metric] = []
    for prefix in FUTURE_PREFIXES:
        keys = [set(_leaves(s.get(prefix), prefix)) for s in runs]
        if prefix == "quality":
            keys = [{k for k in ks if k.split(".")[-1] in QUALITY_KEYS and k.count(".") == 1} for ks in keys]
        for path in sorted(keys[0] & keys[1]):
            label = path.replace("_ms.", " ").replace(".", " ")
            stat = path.split(".")[-1]
            if prefix == "quality":
                out.append(Metric(path, label, "", "higher"))
            elif stat in SERIES_STATS:
                out.append(Metric(path, label, "ms", "lower", _series_star(prefix, stat)))
            else:
                out.append(Metric(path, label, "ms", "lower"))
    if in_both("tokens.output_per_s"):
        star = _rate_star("tokens.output_per_s")
        out.append(Metric("tokens.output_per_s", "output tokens/s", "tok/s", "higher", star))
    if all(isinstance(s.get("goodput_rps"), int | float) for s in runs):
        out.append(Metric("goodput_rps", "goodput", "req/s", "higher"))
    # Real-time factor (processing time / media duration): lower is faster than real time.
    for key in RTF_STATS:
        if in_both(f"rtf.{key}"):
            out.append(Metric(f"rtf.{key}", f"RTF {key}", "", "lower", _series_star("rtf", key)))
    if in_both("rtf.realtime_fraction"):
        star = _series_star("rtf_realtime", "mean")
        out.append(Metric("rtf.realtime_fraction", "faster than real time", "fraction", "higher", star))
    return out


def _leaves(node: Any, prefix: str) -> list[str]:
    if isinstance(node, dict):
        return [p for k, v in node.items() for p in _leaves(v, f"{prefix}.{k}")]
    return [prefix] if number(node) is not None else []


def value(run: RunData, path: str) -> float | None:
    if path == "throughput_per_gpu_rps":
        gpus = gpu_count(run.summary)
        throughput = number(run.summary.get("throughput_rps"))
        return None if not gpus or throughput is None else round(throughput / gpus, 3)
    return number(value_at(run.summary, path))


def verdict(metric: Metric, delta: float, delta_pct: float | None, ci: list[float] | None) -> str:
    if delta == 0:
        return "same"
    if ci is not None:
        significant = ci[0] > 0 or ci[1] < 0
        if metric.path.endswith("error_rate"):
            relevant = abs(delta) * 100.0 >= MIN_ERROR_RATE_PP
        else:
            relevant = delta_pct is None or abs(delta_pct) >= MIN_EFFECT_PCT
    else:
        significant = True  # no noise estimate: the (larger) value-only threshold stands in
        relevant = delta_pct is not None and abs(delta_pct) >= metric.value_only_pct
    if not (significant and relevant):
        return "same"
    rose = delta > 0
    return "worse" if rose == (metric.direction == "lower") else "better"
