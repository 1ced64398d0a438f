"""Compare two analyzed runs: "is the candidate at least as good as the base?", with statistics.

Consumes two run directories that the analyzer has already processed (``meta.json``,
``summary.json``, ``requests.csv``, ``timeseries.csv``, ``samples.jsonl`` when present) and
optional ``--fail-on`` rules; produces the ``compare.json`` dict (`compare_runs`), which the
report renderer and the CLI turn into HTML / markdown and an exit code. Pure apart from reading
the two directories in `load_run`; no Locust.

What is compared
----------------
Every metric is named by its path in ``summary.json``: ``latency_ms.p50/p90/p95/p99/p999/mean/
max``, ``throughput_rps``, ``request_rate_rps``, ``requests.error_rate`` and, when the runs were
sampled, ``resources.server_process.cpu_percent.mean``, ``resources.server_process.rss_bytes.max``,
``resources.host.cpu_percent.mean``, ``resources.gpus.<i>.util_mean`` / ``mem_used_max_mib`` /
``power_mean_w``, ``resources.energy.j_per_request``, and the derived ``throughput_per_gpu_rps``
(``throughput_rps`` / number of GPUs, local and remote). Keys later schemas add (``ttft_ms.*``,
``itl_ms.*``, ``tpot_ms.*``, ``goodput_rps``, ``quality.*``) are compared when both summaries
hold them. ``delta`` = candidate − base (in the metric's unit); ``delta_pct`` = delta / |base|
× 100 (null when the base is 0). The values shown are the summaries' own.

Confidence intervals: block bootstrap over seconds
--------------------------------------------------
Requests inside one second share that second's load, GC pauses, batch sizes and noisy
neighbours, so they are correlated: resampling single requests would treat 6,000 correlated
latencies as 6,000 independent ones and give intervals far too narrow (and false alarms). The
unit of resampling is therefore a whole second of the measured window (``second`` = floor(request
start − window start)):

- each resample draws the window's seconds with replacement (as many as the window has), with
  ``numpy.random.default_rng(seed)``; every statistic of that resample is computed from the pooled
  requests / samples of the drawn seconds (a second drawn twice counts twice);
- latency ``p50 … p999`` and ``mean``: the same numpy percentile (linear interpolation) of the
  pooled successful latencies, computed exactly from integer weights (no copies);
- ``throughput_rps`` / ``request_rate_rps``: pooled ok / all requests ÷ window length;
  ``requests.error_rate``: pooled errors ÷ pooled requests;
- resources (``*.cpu_percent.mean``, GPU ``util_mean`` / ``power_mean_w``): the mean, over the
  drawn seconds, of each second's mean sample value;
- the two runs are resampled independently, ``resamples`` times (default 400); the interval of
  the delta is the percentile interval of the ``resamples`` differences (candidate* − base*),
  at ``CI_LEVEL`` (99.5 %: percentiles [0.25, 99.75]; a run has ~10 metrics, so a 95 % level
  per metric would flag about one pair in five of identical runs), widened for few seconds as
  in Hesterberg's expanded percentile interval (factor sqrt(n/(n-1)) · t(n-1)/z, n the seconds
  of the shorter run: 9 % at 30 s, negligible at 10 min), and shifted by the small gap between
  the summaries' delta and the delta of the same estimator on the bootstrapped data (rounding,
  subsampling) so that the interval is always about the delta shown;
- cost is capped: a run with more than ``MAX_LATENCIES`` (100,000) successful requests is
  subsampled uniformly (seeded) first, which keeps every second's share; two 1M-request runs
  compare in under a second (after loading);
- a run with fewer than ``MIN_SECONDS`` (5) seconds holding data gives no interval (``ci``
  null): too few blocks to estimate the noise.

Metrics whose bootstrap would be meaningless get no interval (``ci`` null) and a verdict by
value alone: maxima (``latency_ms.max``, ``rss_bytes.max``, ``mem_used_max_mib``: one extreme
value, the bootstrap cannot exceed it), ``energy.j_per_request`` (energy counters are not per
second), and the model-specific keys (``ttft_ms.*``, ``itl_ms.*``, ``tpot_ms.*``, ``e2e_ms.*``,
``quality.accuracy`` / ``precision`` / ``recall`` / ``f1``: compared by value).
Their verdict is "same" unless |delta_pct| >= ``VALUE_ONLY_PCT`` (25 %; ``latency_ms.max``:
``MAX_PCT``, 100 %, since one slow request in a clean run routinely moves the maximum by half).

Verdict
-------
"better" / "worse" (by the metric's ``direction``: "lower" or "higher" is better) only when
both hold: the interval excludes 0 (the change is larger than the run-to-run noise), and the
change is at least the minimum relevant effect, |delta_pct| >= ``MIN_EFFECT_PCT`` (3 %; for
``requests.error_rate`` >= ``MIN_ERROR_RATE_PP`` = 0.1 percentage point, absolute). Otherwise
"same". Both knobs were tuned on synthetic runs (see ``tests/test_compare.py``): 30 s at about
200 req/s, lognormal latencies (σ 0.4) times a per-second random load factor (lognormal, σ 0.1:
requests of a second are correlated), two runs of the same distribution with different seeds.
Measured over 200 such pairs: family-wise false-positive rate (any latency, throughput, request
rate or error rate metric flagged) 2.5 % (5 of 200); per metric p50 0 %, p90 0.5 %, p95 0.5 %,
p99 1.5 %, p99.9 0.5 %, mean 0.5 %, max 0 %, throughput 0 %, request rate 0 %, error rate 0 %.
(At a 95 % level without widening: 19.5 % family-wise.) The false alarms that remain are changes
of 6-10 % in a tail percentile, above any minimum effect: 30 s runs are short. A +20 % latency
shift and a −20 % throughput drop are flagged "worse".

Rules (``--fail-on``)
---------------------
``METRIC OP CHANGE``, e.g. ``p99>+10%``, ``p50>+5ms``, ``throughput<-5%``, ``error_rate>+0.5pp``,
``f1<-0.01``, ``latency_ms.p999>+20%``, ``gpu_util<-10%``. METRIC is a summary path or an alias
(`ALIASES`, plus ``ttft_p95`` style for ``ttft_ms`` / ``itl_ms`` / ``tpot_ms``); ``>`` fails when
the metric rose by more than CHANGE, ``<`` when it fell by more. CHANGE is ``N%`` (relative to the
base), ``Nms`` (absolute, latency metrics only), ``Npp`` (percentage points, fractions only) or a
plain number (absolute, in the metric's unit); its sign may be omitted (``p99>10%``) but must
agree with OP. A rule fails only when the change is beyond its threshold AND the change is
significant (the metric's interval excludes 0); for a metric without an interval the threshold
alone decides (no noise estimate exists). A rule whose metric is missing from either run adds a
warning and does not fail. ``passed`` is true when no rule failed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import numpy.typing as npt
import pandas as pd

from loadbench import rundir, stats
from loadbench.errors import RunDirError, UsageError
from loadbench.records import read_requests, read_samples
from loadbench.stats import value_at

CI_LEVEL = 0.995  # two-sided: percentiles 0.25 and 99.75 of the bootstrap differences
MIN_EFFECT_PCT = 3.0  # smallest relative change called better / worse
MIN_ERROR_RATE_PP = 0.1  # the same for error rates, in percentage points
VALUE_ONLY_PCT = 25.0  # metrics without an interval: relative change needed for a verdict
MAX_PCT = 100.0  # latency_ms.max: a single request, the noisiest figure of all
MAX_LATENCIES = 100_000  # per run, before bootstrapping
MIN_SECONDS = 5  # seconds with data needed for an interval

FloatArray = npt.NDArray[np.float64]
LATENCY_STATS = ("p50", "p90", "p95", "p99", "p999", "mean", "max")
# Compared by value (no per-second bootstrap): model-specific keys, present when the scenario
# reports them. quality: its headline fractions only (per-class figures would swamp the table).
FUTURE_PREFIXES = ("ttft_ms", "itl_ms", "tpot_ms", "e2e_ms", "quality")
QUALITY_KEYS = ("accuracy", "precision", "recall", "f1")
ALIASES: dict[str, str] = {
    **{k: f"latency_ms.{k}" for k in LATENCY_STATS},
    "throughput": "throughput_rps",
    "request_rate": "request_rate_rps",
    "error_rate": "requests.error_rate",
    "goodput": "goodput_rps",
    "throughput_per_gpu": "throughput_per_gpu_rps",
    "cpu": "resources.server_process.cpu_percent.mean",
    "server_cpu": "resources.server_process.cpu_percent.mean",
    "rss": "resources.server_process.rss_bytes.max",
    "host_cpu": "resources.host.cpu_percent.mean",
    "gpu_util": "resources.gpus.0.util_mean",
    "gpu_mem": "resources.gpus.0.mem_used_max_mib",
    "gpu_power": "resources.gpus.0.power_mean_w",
    "energy_per_request": "resources.energy.j_per_request",
    **{
        q: f"quality.{q}" for q in ("f1", "accuracy", "precision", "recall", "exact_match", "bleu", "rouge_l")
    },
}
_TOKEN_ALIAS = re.compile(r"^(ttft|itl|tpot)_(p50|p90|p95|p99|p999|mean|max|min)$")
_RULE = re.compile(
    r"^\s*(?P<metric>[A-Za-z_][A-Za-z0-9_.]*)\s*(?P<op>[<>])\s*(?P<sign>[+-]?)\s*"
    r"(?P<number>\d+(?:\.\d*)?|\.\d+)\s*(?P<unit>%|ms|pp)?\s*$"
)


@dataclass
class RunData:
    """Everything `compare_runs` needs from one analyzed run directory."""

    path: Path
    meta: dict[str, Any]
    summary: dict[str, Any]
    latency_ms: FloatArray  # successful requests of the measured window (start >= window start)
    ok: npt.NDArray[np.bool_]  # per measured request
    second: npt.NDArray[np.int64]  # per measured request: whole second since the window start
    timeseries: pd.DataFrame  # timeseries.csv (empty when missing)
    samples: pd.DataFrame  # records.read_samples(run_dir / rundir.SAMPLES)


@dataclass(frozen=True)
class Rule:
    """One parsed ``--fail-on`` rule: fail when ``metric`` changed beyond ``threshold``."""

    text: str
    metric: str  # summary path
    op: str  # ">" rose by more than, "<" fell by more than
    kind: str  # "pct" (relative, %), "abs" (metric's unit; ms for "ms"), "pp" (percentage points)
    threshold: float  # signed: positive for ">", negative for "<"

    def change(self, delta: float | None, delta_pct: float | None) -> float | None:
        """The metric's change in this rule's unit (None when it cannot be expressed)."""
        if delta is None:
            return None
        if self.kind == "pct":
            return delta_pct
        return delta * 100.0 if self.kind == "pp" else delta

    def broken(self, delta: float | None, delta_pct: float | None) -> bool:
        change = self.change(delta, delta_pct)
        if change is None:
            return False
        return change > self.threshold if self.op == ">" else change < self.threshold


# -- loading -------------------------------------------------------------------------------------


def load_run(path: Path) -> RunData:
    """Read an analyzed run directory; `RunDirError` when it has not been analyzed."""
    meta = rundir.read_meta(path)
    if not (path / rundir.SUMMARY).is_file():
        raise RunDirError(f"{path} has no {rundir.SUMMARY}: run `loadbench report {path}` first")
    summary = rundir.read_json(path / rundir.SUMMARY)
    requests = read_requests(path / rundir.REQUESTS)
    window_start = _window_start(meta, summary)
    starts = requests["start_unix_s"].to_numpy(dtype=np.float64)
    measured = starts >= window_start  # the analyzer's own rule: a request belongs where it started
    ok = requests["ok"].to_numpy()[measured].astype(bool)
    second = np.floor(starts[measured] - window_start).astype(np.int64)
    latency = requests["latency_ms"].to_numpy(dtype=np.float64)[measured][ok]
    timeseries_path = path / rundir.TIMESERIES
    try:
        timeseries = pd.read_csv(timeseries_path) if timeseries_path.is_file() else pd.DataFrame()
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise RunDirError(f"cannot read {timeseries_path}: {' '.join(str(exc).split())[:160]}") from None
    samples = read_samples(path / rundir.SAMPLES)
    return RunData(path, meta, summary, latency, ok, second, timeseries, samples)


def _window_start(meta: dict[str, Any], summary: dict[str, Any]) -> float:
    # Recomputed as the analyzer does (summary.json rounds it to the microsecond).
    settings = meta.get("settings") or {}
    return float(meta["started_unix_s"]) + float(settings.get("warmup_s") or 0.0)


def _window(run: RunData) -> tuple[float, int]:
    """(window length in s, whole seconds it spans)."""
    length = float(value_at(run.summary, "window.duration_s") or 0.0)
    seconds = max(math.ceil(length - 1e-9), 1)
    if run.second.size:
        seconds = max(seconds, int(run.second.max()) + 1)
    return length, seconds


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


# -- bootstrap -----------------------------------------------------------------------------------


class _Bootstrap:
    """Resamples of one run's seconds and every statistic computed on them.

    One draw of seconds serves every metric of the run, so the statistics of a resample are
    consistent with each other (a resample is "the run, had these seconds happened").
    """

    def __init__(self, run: RunData, resamples: int, rng: np.random.Generator) -> None:
        self.length, self.n = _window(run)
        lat, lat_sec = run.latency_ms, run.second[run.ok]
        if lat.size > MAX_LATENCIES:
            keep = np.sort(rng.choice(lat.size, MAX_LATENCIES, replace=False))
            lat, lat_sec = lat[keep], lat_sec[keep]
        order = np.argsort(lat, kind="stable")
        self.lat, self.lat_sec = lat[order], lat_sec[order]
        self.ok_counts = np.bincount(run.second[run.ok], minlength=self.n).astype(np.float64)
        self.all_counts = np.bincount(run.second, minlength=self.n).astype(np.float64)
        # counts[b, s]: how often second s was drawn in resample b.
        draws = rng.integers(0, self.n, size=(resamples, self.n))
        self.counts = np.zeros((resamples, self.n), dtype=np.int64)
        np.add.at(self.counts, (np.arange(resamples)[:, None], draws), 1)
        self.ones = np.ones((1, self.n), dtype=np.int64)
        self.latency_seconds = np.unique(self.lat_sec).size
        self.request_seconds = int((self.all_counts > 0).sum())
        self.samples = run.samples
        self.window_start = _window_start(run.meta, run.summary)
        self.gpus = _gpu_count(run.summary)
        self._latency_cache: dict[bool, dict[str, FloatArray]] = {}

    def latency_star(self, key: str, counts: npt.NDArray[np.int64]) -> FloatArray:
        """`latency` of every latency statistic at once, kept: one pass over the resamples."""
        full = counts is self.ones
        if full not in self._latency_cache:
            self._latency_cache[full] = self.latency([k for k in LATENCY_STATS if k != "max"], counts)
        return self._latency_cache[full][key]

    def latency(self, keys: Sequence[str], counts: npt.NDArray[np.int64]) -> dict[str, FloatArray]:
        """Each key's statistic over the pooled latencies of every row of ``counts``."""
        out = {k: np.full(len(counts), np.nan) for k in keys}
        if self.lat.size == 0:
            return out
        qs = [stats.PERCENTILES[k] for k in keys if k in stats.PERCENTILES]
        for b, row in enumerate(counts):
            weights = row[self.lat_sec]
            cum = np.cumsum(weights)
            total = int(cum[-1])
            if total == 0:
                continue
            if "mean" in keys:
                out["mean"][b] = float(np.dot(weights, self.lat)) / total
            if qs:
                # numpy's linear percentile of the pooled (repeated) values, read off the weights:
                # element k of the pooled sorted sample is lat[searchsorted(cum, k, "right")].
                h = np.asarray(qs) / 100.0 * (total - 1)
                lo = np.floor(h)
                i_lo = np.searchsorted(cum, lo, side="right")
                i_hi = np.searchsorted(cum, np.minimum(lo + 1, total - 1), side="right")
                values = self.lat[i_lo] + (h - lo) * (self.lat[i_hi] - self.lat[i_lo])
                for key, value in zip((k for k in keys if k in stats.PERCENTILES), values, strict=True):
                    out[key][b] = value
        return out

    def rates(self, counts: npt.NDArray[np.int64]) -> dict[str, FloatArray]:
        ok = counts @ self.ok_counts
        total = counts @ self.all_counts
        length = self.length if self.length > 0 else float(self.n)
        with np.errstate(invalid="ignore", divide="ignore"):
            error_rate = np.where(total > 0, (total - ok) / np.where(total > 0, total, 1), 0.0)
        return {"throughput_rps": ok / length, "request_rate_rps": total / length, "error_rate": error_rate}

    def resource(self, column: str, counts: npt.NDArray[np.int64]) -> FloatArray | None:
        """Mean over the drawn seconds of each second's mean sample of ``column``."""
        if column not in self.samples:
            return None
        times = self.samples["unix_s"].to_numpy(dtype=np.float64)
        values = pd.to_numeric(self.samples[column], errors="coerce").to_numpy(dtype=np.float64)
        sec = np.floor(times - self.window_start)
        keep = (sec >= 0) & (sec < self.n) & ~np.isnan(values)
        if not keep.any():
            return None
        idx = sec[keep].astype(np.int64)
        sums = np.bincount(idx, weights=values[keep], minlength=self.n)
        n = np.bincount(idx, minlength=self.n)
        have = n > 0
        if have.sum() < MIN_SECONDS:
            return None
        per_second = np.where(have, sums / np.where(have, n, 1), 0.0)
        weight = counts @ have.astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(weight > 0, (counts @ per_second) / np.where(weight > 0, weight, 1), np.nan)


def _interval(
    base_star: FloatArray | None,
    cand_star: FloatArray | None,
    base_full: float | None,
    cand_full: float | None,
    delta: float,
    blocks: int,
) -> list[float] | None:
    """Percentile interval of the bootstrap differences, widened for few blocks (`_expansion`)
    and shifted onto the summaries' delta."""
    if base_star is None or cand_star is None or base_full is None or cand_full is None:
        return None
    diff = cand_star - base_star
    diff = diff[np.isfinite(diff)]
    if diff.size < 10:
        return None
    tail = (1.0 - CI_LEVEL) / 2.0 * 100.0
    lo, hi = np.percentile(diff, [tail, 100.0 - tail])
    centre = cand_full - base_full
    k = _expansion(blocks)
    lo, hi = centre + k * (lo - centre), centre + k * (hi - centre)
    shift = delta - centre
    return [round(float(lo + shift), 6), round(float(hi + shift), 6)]


def _expansion(blocks: int) -> float:
    """Widening of a percentile interval from ``blocks`` resampled blocks (Hesterberg's expanded
    percentile interval): the bootstrap's spread is the plug-in one, too small by
    sqrt((n-1)/n), and a normal quantile where a Student t with n-1 degrees of freedom belongs.
    With 30 seconds that is about 9 % wider; with 600 it is negligible."""
    n = max(blocks, 2)
    z = NormalDist().inv_cdf(0.5 + CI_LEVEL / 2.0)
    nu = n - 1
    # Cornish-Fisher expansion of the t quantile (no scipy): within 0.2 % for nu >= 4.
    t = z + (z**3 + z) / (4 * nu) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * nu**2)
    return math.sqrt(n / (n - 1)) * t / z


# -- metrics ---------------------------------------------------------------------------------------


@dataclass
class _Metric:
    path: str
    label: str
    unit: str
    direction: str  # which is better: "lower" | "higher"
    star: Callable[[_Bootstrap, npt.NDArray[np.int64]], FloatArray | None] | None = None
    value_only_pct: float = VALUE_ONLY_PCT


def _latency_star(key: str) -> Callable[[_Bootstrap, npt.NDArray[np.int64]], FloatArray | None]:
    def star(boot: _Bootstrap, counts: npt.NDArray[np.int64]) -> FloatArray | None:
        if boot.latency_seconds < MIN_SECONDS:
            return None
        return boot.latency_star(key, counts)

    return star


def _rate_star(
    key: str, per_gpu: bool = False
) -> Callable[[_Bootstrap, npt.NDArray[np.int64]], FloatArray | None]:
    def star(boot: _Bootstrap, counts: npt.NDArray[np.int64]) -> FloatArray | None:
        if boot.request_seconds < MIN_SECONDS or (per_gpu and not boot.gpus):
            return None
        rate = boot.rates(counts)[key]
        return rate / boot.gpus if per_gpu else rate

    return star


def _resource_star(column: str) -> Callable[[_Bootstrap, npt.NDArray[np.int64]], FloatArray | None]:
    def star(boot: _Bootstrap, counts: npt.NDArray[np.int64]) -> FloatArray | None:
        return boot.resource(column, counts)

    return star


_LATENCY_LABELS = {"p50": "p50", "p90": "p90", "p95": "p95", "p99": "p99", "p999": "p99.9"}


def _gpu_count(summary: dict[str, Any]) -> int:
    resources = summary.get("resources") or {}
    remote = resources.get("remote") or {}
    return len(resources.get("gpus") or []) + sum(len(r.get("gpus") or []) for r in remote.values())


def _metrics(base: RunData, candidate: RunData) -> list[_Metric]:
    """The metrics both runs can be compared on, in display order."""
    out: list[_Metric] = []
    for key in LATENCY_STATS:
        label = {"mean": "mean latency", "max": "max latency"}.get(key, f"latency {_LATENCY_LABELS.get(key)}")
        if key == "max":
            out.append(_Metric("latency_ms.max", label, "ms", "lower", None, MAX_PCT))
        else:
            out.append(_Metric(f"latency_ms.{key}", label, "ms", "lower", _latency_star(key)))
    out += [
        _Metric("throughput_rps", "throughput", "req/s", "higher", _rate_star("throughput_rps")),
        _Metric("request_rate_rps", "request rate", "req/s", "higher", _rate_star("request_rate_rps")),
        _Metric("requests.error_rate", "error rate", "fraction", "lower", _rate_star("error_rate")),
    ]
    runs = (base.summary, candidate.summary)
    present = [
        _Metric(
            "resources.server_process.cpu_percent.mean",
            "server CPU (mean)",
            "% of a core",
            "lower",
            _resource_star("server.cpu_percent"),
        ),
        _Metric("resources.server_process.rss_bytes.max", "server memory (peak RSS)", "bytes", "lower"),
        _Metric(
            "resources.host.cpu_percent.mean",
            "host CPU (mean)",
            "%",
            "lower",
            _resource_star("host.cpu_percent"),
        ),
    ]
    gpus = min(len(value_at(s, "resources.gpus") or []) for s in runs)
    for i in range(gpus):
        index = value_at(base.summary, f"resources.gpus.{i}.index")
        column = f"gpu{index if isinstance(index, int) else i}"
        present += [
            _Metric(
                f"resources.gpus.{i}.util_mean",
                f"GPU {i} utilization (mean)",
                "%",
                "higher",
                _resource_star(f"{column}.util_percent"),
            ),
            _Metric(f"resources.gpus.{i}.mem_used_max_mib", f"GPU {i} memory (peak)", "MiB", "lower"),
            _Metric(
                f"resources.gpus.{i}.power_mean_w",
                f"GPU {i} power (mean)",
                "W",
                "lower",
                _resource_star(f"{column}.power_w"),
            ),
        ]
    present.append(_Metric("resources.energy.j_per_request", "energy per request", "J", "lower"))
    out += [m for m in present if any(_number(value_at(s, m.path)) is not None for s in runs)]
    if all(_gpu_count(s) for s in runs):
        out.append(
            _Metric(
                "throughput_per_gpu_rps",
                "throughput per GPU",
                "req/s",
                "higher",
                _rate_star("throughput_rps", per_gpu=True),
            )
        )
    # Keys of later schemas, compared by value when both runs have them.
    for prefix in FUTURE_PREFIXES:
        keys = [set(_leaves(s.get(prefix), prefix)) for s in runs]
        if prefix == "quality":
            keys = [{k for k in ks if k.split(".")[-1] in QUALITY_KEYS and k.count(".") == 1} for ks in keys]
        for path in sorted(keys[0] & keys[1]):
            unit = "ms" if prefix.endswith("_ms") else ""
            higher = prefix == "quality"
            out.append(
                _Metric(
                    path, path.replace("_ms.", " ").replace(".", " "), unit, "higher" if higher else "lower"
                )
            )
    if all(isinstance(s.get("goodput_rps"), int | float) for s in runs):
        out.append(_Metric("goodput_rps", "goodput", "req/s", "higher"))
    return out


def _leaves(node: Any, prefix: str) -> list[str]:
    if isinstance(node, dict):
        return [p for k, v in node.items() for p in _leaves(v, f"{prefix}.{k}")]
    return [prefix] if _number(node) is not None else []


def _value(run: RunData, path: str) -> float | None:
    if path == "throughput_per_gpu_rps":
        gpus = _gpu_count(run.summary)
        throughput = _number(run.summary.get("throughput_rps"))
        return None if not gpus or throughput is None else round(throughput / gpus, 3)
    return _number(value_at(run.summary, path))


def _verdict(metric: _Metric, delta: float, delta_pct: float | None, ci: list[float] | None) -> str:
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


# -- public API ------------------------------------------------------------------------------------


def parse_rule(text: str) -> Rule:
    """Parse one ``--fail-on`` rule (grammar in the module docstring); `UsageError` when malformed."""
    match = _RULE.match(text)
    if not match:
        raise UsageError(
            f"cannot read the rule {text!r}: expected METRIC>CHANGE or METRIC<CHANGE, "
            "e.g. p99>+10%, p50>+5ms, throughput<-5%, error_rate>+0.5pp, f1<-0.01"
        )
    name, op, sign, unit = match["metric"], match["op"], match["sign"], match["unit"]
    number = float(match["number"])
    if (op == ">" and sign == "-") or (op == "<" and sign == "+"):
        word = "rise (>+N)" if op == ">" else "fall (<-N)"
        raise UsageError(f"the rule {text!r} contradicts itself: {op!r} needs a {word}")
    metric = _resolve(name, text)
    kind = {"%": "pct", "pp": "pp"}.get(unit or "", "abs")
    if unit == "ms" and not _is_ms(metric):
        raise UsageError(f"the rule {text!r} gives ms for {metric}, which is not a latency in ms")
    if unit == "pp" and not _is_fraction(metric):
        raise UsageError(f"the rule {text!r} gives percentage points for {metric}, which is not a fraction")
    threshold = number if op == ">" else -number
    return Rule(text=text.strip(), metric=metric, op=op, kind=kind, threshold=threshold)


def _resolve(name: str, text: str) -> str:
    if name in ALIASES:
        return ALIASES[name]
    if m := _TOKEN_ALIAS.match(name):
        return f"{m[1]}_ms.{m[2]}"
    if "." in name or name.endswith("_rps"):
        return name
    raise UsageError(
        f"unknown metric {name!r} in the rule {text!r}: use a summary.json path (latency_ms.p99) "
        f"or one of {', '.join(sorted(ALIASES))}, ttft_p95, itl_p50, tpot_mean"
    )


def _is_ms(path: str) -> bool:
    return path.split(".", 1)[0].endswith("_ms")


def _is_fraction(path: str) -> bool:
    return path.endswith(("error_rate", "busy_fraction")) or path.startswith("quality.")


def compare_runs(
    base: RunData, candidate: RunData, rules: Sequence[Rule] = (), *, resamples: int = 400, seed: int = 0
) -> dict[str, Any]:
    """Compare ``candidate`` with ``base``: every metric with its delta, interval and verdict,
    the rules that failed, and why the two runs may not be comparable (``compare.json``)."""
    rng = np.random.default_rng(seed)
    boots = (_Bootstrap(base, resamples, rng), _Bootstrap(candidate, resamples, rng))
    metrics: dict[str, dict[str, Any]] = {}
    for metric in _metrics(base, candidate):
        b, c = _value(base, metric.path), _value(candidate, metric.path)
        entry: dict[str, Any] = {
            "label": metric.label,
            "unit": metric.unit,
            "direction": metric.direction,
            "base": b,
            "candidate": c,
            "delta": None,
            "delta_pct": None,
            "ci": None,
            "verdict": "same",
        }
        metrics[metric.path] = entry
        if b is None or c is None:
            continue
        delta = c - b
        delta_pct = delta / abs(b) * 100.0 if b != 0 else None
        ci = None
        if metric.star is not None:
            stars = [metric.star(boot, boot.counts) for boot in boots]
            fulls = [metric.star(boot, boot.ones) for boot in boots]
            ci = _interval(
                stars[0],
                stars[1],
                None if fulls[0] is None else float(fulls[0][0]),
                None if fulls[1] is None else float(fulls[1][0]),
                delta,
                min(boot.n for boot in boots),
            )
        entry.update(
            delta=round(delta, 6),
            delta_pct=None if delta_pct is None else round(delta_pct, 3),
            ci=ci,
            verdict=_verdict(metric, delta, delta_pct, ci),
        )

    warnings = comparability_warnings(base, candidate)
    failed: list[dict[str, Any]] = []
    for rule in rules:
        entry_or_none = metrics.get(rule.metric)
        if entry_or_none is None or entry_or_none["delta"] is None:
            warnings.append(f"rule {rule.text}: {rule.metric} is not in both runs; not checked")
            continue
        e = entry_or_none
        significant = e["ci"] is None or e["ci"][0] > 0 or e["ci"][1] < 0
        if rule.kind == "pct" and e["delta_pct"] is None:
            warnings.append(
                f"rule {rule.text}: the base's {rule.metric} is 0, no relative change; not checked"
            )
            continue
        if significant and rule.broken(e["delta"], e["delta_pct"]):
            failed.append(
                {
                    "rule": rule.text,
                    "metric": rule.metric,
                    "delta": e["delta"],
                    "delta_pct": e["delta_pct"],
                    "ci": e["ci"],
                }
            )
    return stats.clean(
        {
            "passed": not failed,
            "failed_rules": failed,
            "warnings": warnings,
            "base": _facts(base),
            "candidate": _facts(candidate),
            "metrics": metrics,
        }
    )


def _facts(run: RunData) -> dict[str, Any]:
    """The short facts shown side by side (and checked by `comparability_warnings`)."""
    meta, summary = run.meta, run.summary
    settings = meta.get("settings") or {}
    host = meta.get("host") or {}
    versions = meta.get("versions") or {}
    gpus = [g.get("name") for g in value_at(summary, "resources.gpus") or [] if isinstance(g, dict)]
    return {
        "path": str(run.path),
        "id": meta.get("run_id") or value_at(summary, "run.id"),
        "scenario": meta.get("scenario"),
        "target": meta.get("target"),
        "status": meta.get("status"),
        "started_at": value_at(summary, "run.started_at"),
        "load_model": meta.get("load_model"),
        "users": settings.get("users"),
        "duration_s": value_at(summary, "run.duration_s"),
        "window_s": value_at(summary, "window.duration_s"),
        "warmup_s": settings.get("warmup_s"),
        "requests": value_at(summary, "requests.total"),
        "scenario_args": settings.get("scenario_args"),
        "loadbench": versions.get("loadbench"),
        "locust": versions.get("locust"),
        "python": versions.get("python"),
        "cpu_model": host.get("cpu_model"),
        "cpu_cores": host.get("cpu_cores"),
        "gpus": gpus,
        "generator_saturated": bool(value_at(summary, "resources.generator.saturated")),
    }


def _target_path(target: Any) -> str | None:
    if not isinstance(target, str):
        return None
    try:
        return urlsplit(target).path.rstrip("/") or "/"
    except ValueError:
        return target


def comparability_warnings(base: RunData, candidate: RunData) -> list[str]:
    """One line per reason the two runs may not measure the same thing."""
    b, c = _facts(base), _facts(candidate)
    out: list[str] = []

    def differ(key: str, what: str) -> None:
        if b[key] != c[key]:
            out.append(f"{what} differ: {b[key]!r} (base) vs {c[key]!r} (candidate)")

    differ("scenario", "scenarios")
    differ("load_model", "load models")
    differ("users", "user counts")
    if _target_path(b["target"]) != _target_path(c["target"]):
        out.append(
            f"target paths differ: {_target_path(b['target'])!r} (base) vs {_target_path(c['target'])!r} (candidate)"
        )
    differ("scenario_args", "scenario arguments (dataset)")
    differ("cpu_model", "load generator CPUs")
    differ("cpu_cores", "load generator core counts")
    if b["gpus"] and c["gpus"] and b["gpus"] != c["gpus"]:
        out.append(f"GPUs differ: {b['gpus']} (base) vs {c['gpus']} (candidate)")
    elif bool(b["gpus"]) != bool(c["gpus"]):
        out.append(
            f"GPUs differ: {b['gpus'] or 'none sampled'} (base) vs {c['gpus'] or 'none sampled'} (candidate)"
        )
    b_len, c_len = _number(b["window_s"]), _number(c["window_s"])
    if b_len is not None and c_len is not None and abs(b_len - c_len) > 0.2 * max(b_len, c_len):
        out.append(
            f"measured windows differ by more than 20 %: {b_len:g} s (base) vs {c_len:g} s (candidate)"
        )
    for role, facts in (("base", b), ("candidate", c)):
        status = facts["status"]
        if status != rundir.STATUS_COMPLETE:
            why = {
                rundir.STATUS_INTERRUPTED: "was interrupted",
                rundir.STATUS_FAILED: "failed",
                rundir.STATUS_RUNNING: "is incomplete (the load generator did not finish)",
            }.get(str(status), f"has status {status!r}")
            out.append(f"the {role} run {why}: its metrics cover only what ran")
        if facts["generator_saturated"]:
            out.append(
                f"the {role} run's load generator was saturated: its latency and throughput may be "
                "limited by the generator, not the server"
            )
    return out
