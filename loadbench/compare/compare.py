"""Compare analyzed runs: "is the candidate at least as good as the base?", with statistics.

Consumes run directories that the analyzer has already processed (``meta.json``,
``summary.json``, ``requests.csv``, ``timeseries.csv``, ``samples.jsonl`` when present) and
optional ``--fail-on`` rules; produces the ``compare.json`` dict (`compare_runs` for one
candidate, `compare_many` for several, each against the base), which the report renderer and
the CLI turn into HTML / markdown and an exit code. Pure apart from reading the directories in
`load_run`; no Locust. The full definitions are in ``docs/metrics.md`` (Comparing runs); in
short:

What is compared
----------------
Every metric is named by its path in ``summary.json``: latency (``latency_ms.p50 … max``),
open loop also ``service_time_ms.*``, ``throughput_rps``, ``request_rate_rps``,
``requests.error_rate``, resources (server / host / load-generator CPU, server RSS, GPU
utilization / memory / power, energy per request, ``throughput_per_gpu_rps``), and when both
runs hold them ``ttft_ms.*``, ``itl_ms.*``, ``tpot_ms.*``, ``e2e_ms.*``,
``tokens.output_per_s``, ``goodput_rps``, ``quality.*`` and ``rtf.p50/p90/p99`` /
``rtf.realtime_fraction``. ``delta`` = candidate − base; ``delta_pct`` = delta / |base| × 100.
The values shown are the summaries' own. Latency is the analyzer's (open loop: from the due
time, `records.from_due_time`; window: `analyzer.window_start_unix_s`), so the intervals
describe the values in the table.

Confidence intervals: block bootstrap over seconds
--------------------------------------------------
Requests inside one second are correlated (shared load, GC pauses, batches), so the unit of
resampling is a whole second of the measured window: each resample draws the window's seconds
with replacement, and every statistic is computed from the pooled requests / samples of the
drawn seconds (percentiles exactly, from integer weights). The two runs are resampled
independently ``resamples`` times; the interval of the delta is the percentile interval of the
differences at ``bootstrap.CI_LEVEL`` (99.5 %), widened for few seconds (Hesterberg's expanded percentile
interval, `bootstrap.expansion`) and shifted onto the summaries' delta (rounding, subsampling). A series
of more than ``MAX_LATENCIES`` values is subsampled first; fewer than ``MIN_SECONDS`` seconds
with data give no interval. Maxima, minima, energy per request, goodput and quality have no
interval: their verdict is by value (``VALUE_ONLY_PCT``; ``MAX_PCT`` for the latency maxima).

Verdict
-------
"better" / "worse" (by the metric's direction) only when the interval excludes 0 and the change
is at least ``MIN_EFFECT_PCT`` (error rate: ``MIN_ERROR_RATE_PP`` percentage points); otherwise
"same". The false-positive rate on same-distribution synthetic runs is measured by
``benchmarks/compare_fpr.py`` and stated in ``docs/metrics.md``.

Rules (``--fail-on``)
---------------------
``METRIC OP CHANGE``, e.g. ``p99>+10%``, ``p99.9>+20%``, ``p50>+5ms``, ``throughput<-5%``,
``error_rate>+0.5pp``, ``f1<-0.01``. METRIC is a summary path or an alias (`ALIASES`, and
``ttft_p95`` style names, `_TOKEN_ALIAS`). A rule fails only when the change is beyond its
threshold AND significant (for a metric without an interval, the threshold alone decides). A
rule whose metric no run has is a `UsageError` (a typo must not disable a gate silently); one
whose metric one of the two runs lacks adds a warning. ``passed`` is true when no rule failed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import numpy.typing as npt

from loadbench.analyze import stats
from loadbench.analyze.resources import gpu_count
from loadbench.analyze.stats import value_at
from loadbench.compare.bootstrap import MIN_SECONDS, SERIES_STATS, RunBootstrap, delta_interval
from loadbench.compare.rundata import RunData
from loadbench.errors import UsageError
from loadbench.record import rundir

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
ALIASES: dict[str, str] = {
    **{k: f"latency_ms.{k}" for k in LATENCY_STATS},
    "throughput": "throughput_rps",
    "request_rate": "request_rate_rps",
    "error_rate": "requests.error_rate",
    "goodput": "goodput_rps",
    "throughput_per_gpu": "throughput_per_gpu_rps",
    "output_tokens_per_s": "tokens.output_per_s",
    "tokens_per_s": "tokens.output_per_s",
    "realtime_fraction": "rtf.realtime_fraction",
    "cpu": "resources.server_process.cpu_percent.mean",
    "server_cpu": "resources.server_process.cpu_percent.mean",
    "rss": "resources.server_process.rss_bytes.max",
    "host_cpu": "resources.host.cpu_percent.mean",
    "generator_cpu": "resources.generator.cpu_mean_percent",
    "gpu_util": "resources.gpus.0.util_mean",
    "gpu_mem": "resources.gpus.0.mem_used_max_mib",
    "gpu_power": "resources.gpus.0.power_mean_w",
    "energy_per_request": "resources.energy.j_per_request",
    **{
        q: f"quality.{q}" for q in ("f1", "accuracy", "precision", "recall", "exact_match", "bleu", "rouge_l")
    },
}
ALIASES["p99.9"] = ALIASES["p999"]  # as people write it (and as `--slo` accepts it)
# ttft_p95, service_p99, e2e_p99.9, rtf_p90, ...: a prefix and a statistic.
_PREFIX_ALIAS = {
    "ttft": "ttft_ms",
    "itl": "itl_ms",
    "tpot": "tpot_ms",
    "e2e": "e2e_ms",
    "service": "service_time_ms",
    "rtf": "rtf",
}
_TOKEN_ALIAS = re.compile(r"^(ttft|itl|tpot|e2e|service|rtf)_(p50|p90|p95|p99|p999|p99\.9|mean|max|min)$")
_RULE = re.compile(
    r"^\s*(?P<metric>[A-Za-z_][A-Za-z0-9_.]*)\s*(?P<op>[<>])\s*(?P<sign>[+-]?)\s*"
    r"(?P<number>\d+(?:\.\d*)?|\.\d+)\s*(?P<unit>%|ms|pp)?\s*$"
)


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


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


# -- metrics ---------------------------------------------------------------------------------------


@dataclass
class _Metric:
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


def _is_open(run: RunData) -> bool:
    load = (run.meta.get("settings") or {}).get("load") or {}
    return load.get("model") == "open" or value_at(run.summary, "load.model") == "open"


def _latency_metrics(prefix: str, what: str) -> list[_Metric]:
    """p50 … p99.9, mean (bootstrapped) and max (by value) of a latency-like summary key."""
    out = []
    for key in LATENCY_STATS:
        label = f"{key} {what}" if key in ("mean", "max") else f"{what} {_LATENCY_LABELS[key]}"
        if key == "max":
            out.append(_Metric(f"{prefix}.max", label, "ms", "lower", None, MAX_PCT))
        else:
            out.append(_Metric(f"{prefix}.{key}", label, "ms", "lower", _series_star(prefix, key)))
    return out


def _metrics(base: RunData, candidate: RunData) -> list[_Metric]:
    """The metrics both runs can be compared on, in display order."""
    runs = (base.summary, candidate.summary)

    def in_both(path: str) -> bool:
        return all(_number(value_at(s, path)) is not None for s in runs)

    out = _latency_metrics("latency_ms", "latency")
    # Open loop: latency counts from the due time; the service time (from the actual send)
    # tells a slower server from a generator that fell behind. Closed loop: the two are equal.
    if (_is_open(base) or _is_open(candidate)) and all(
        isinstance(s.get("service_time_ms"), dict) for s in runs
    ):
        out += _latency_metrics("service_time_ms", "service time")
    out += [
        _Metric("throughput_rps", "throughput", "req/s", "higher", _rate_star("throughput_rps")),
        _Metric("request_rate_rps", "request rate", "req/s", "higher", _rate_star("request_rate_rps")),
        _Metric("requests.error_rate", "error rate", "fraction", "lower", _rate_star("error_rate")),
    ]
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
        # The generator's own cost: lower leaves it more headroom before it saturates.
        _Metric(
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
    if all(gpu_count(s) for s in runs):
        out.append(
            _Metric(
                "throughput_per_gpu_rps",
                "throughput per GPU",
                "req/s",
                "higher",
                _rate_star("throughput_rps", per_gpu=True),
            )
        )
    # Model-specific keys, when both runs have them: the LLM latencies with the same block
    # bootstrap as latency (their maxima and minima by value), quality by value.
    for prefix in FUTURE_PREFIXES:
        keys = [set(_leaves(s.get(prefix), prefix)) for s in runs]
        if prefix == "quality":
            keys = [{k for k in ks if k.split(".")[-1] in QUALITY_KEYS and k.count(".") == 1} for ks in keys]
        for path in sorted(keys[0] & keys[1]):
            label = path.replace("_ms.", " ").replace(".", " ")
            stat = path.split(".")[-1]
            if prefix == "quality":
                out.append(_Metric(path, label, "", "higher"))
            elif stat in SERIES_STATS:
                out.append(_Metric(path, label, "ms", "lower", _series_star(prefix, stat)))
            else:
                out.append(_Metric(path, label, "ms", "lower"))
    if in_both("tokens.output_per_s"):
        out.append(
            _Metric(
                "tokens.output_per_s",
                "output tokens/s",
                "tok/s",
                "higher",
                _rate_star("tokens.output_per_s"),
            )
        )
    if all(isinstance(s.get("goodput_rps"), int | float) for s in runs):
        out.append(_Metric("goodput_rps", "goodput", "req/s", "higher"))
    # Real-time factor (processing time / media duration): lower is faster than real time.
    for key in RTF_STATS:
        if in_both(f"rtf.{key}"):
            out.append(_Metric(f"rtf.{key}", f"RTF {key}", "", "lower", _series_star("rtf", key)))
    if in_both("rtf.realtime_fraction"):
        out.append(
            _Metric(
                "rtf.realtime_fraction",
                "faster than real time",
                "fraction",
                "higher",
                _series_star("rtf_realtime", "mean"),
            )
        )
    return out


def _leaves(node: Any, prefix: str) -> list[str]:
    if isinstance(node, dict):
        return [p for k, v in node.items() for p in _leaves(v, f"{prefix}.{k}")]
    return [prefix] if _number(node) is not None else []


def _value(run: RunData, path: str) -> float | None:
    if path == "throughput_per_gpu_rps":
        gpus = gpu_count(run.summary)
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
        return f"{_PREFIX_ALIAS[m[1]]}.{m[2].replace('p99.9', 'p999')}"
    if name.endswith(".p99.9"):  # latency_ms.p99.9, as people write it
        return name.removesuffix(".p99.9") + ".p999"
    if "." in name or name.endswith("_rps"):
        return name
    raise UsageError(
        f"unknown metric {name!r} in the rule {text!r}: use a summary.json path (latency_ms.p99) "
        f"or one of {', '.join(sorted(ALIASES))}, ttft_p95, itl_p50, tpot_mean, e2e_p99, service_p99, rtf_p90"
    )


def _has(run: RunData, path: str) -> bool:
    """Whether ``path`` names a key of the run's summary (its value may be null)."""
    if path == "throughput_per_gpu_rps":
        return bool(gpu_count(run.summary))
    node: Any = run.summary
    for part in path.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return False
    return not isinstance(node, dict | list)


def check_rules(rules: Sequence[Rule], runs: Sequence[RunData]) -> None:
    """`UsageError` for a rule whose metric none of ``runs`` has: a misspelt metric
    (``latency_ms.p9``) would otherwise never fail, silently disabling the gate."""
    for rule in rules:
        if not any(_has(run, rule.metric) for run in runs):
            raise UsageError(
                f"the rule {rule.text!r} names {rule.metric}, which is in none of the runs' summary.json: "
                "check its spelling (a summary.json path, or an alias such as p99, p99.9, throughput, error_rate)"
            )


def _is_ms(path: str) -> bool:
    return path.split(".", 1)[0].endswith("_ms")


def _is_fraction(path: str) -> bool:
    return path.endswith(("error_rate", "busy_fraction", "realtime_fraction")) or path.startswith("quality.")


def compare_runs(
    base: RunData,
    candidate: RunData,
    rules: Sequence[Rule] = (),
    *,
    resamples: int = 400,
    seed: int = 0,
    check: bool = True,
) -> dict[str, Any]:
    """Compare ``candidate`` with ``base``: every metric with its delta, interval and verdict,
    the rules that failed, and why the two runs may not be comparable (``compare.json``).

    `UsageError` when a rule names a metric that neither run has (`check_rules`; ``check``
    False: the caller checked the rules against more runs)."""
    if check:
        check_rules(rules, (base, candidate))
    rng = np.random.default_rng(seed)
    boots = (RunBootstrap(base, resamples, rng), RunBootstrap(candidate, resamples, rng))
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
            ci = delta_interval(
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
            warnings.append(f"rule {rule.text}: {rule.metric} is not in both runs (or is null); not checked")
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


def compare_many(
    base: RunData,
    candidates: Sequence[RunData],
    rules: Sequence[Rule] = (),
    *,
    resamples: int = 400,
    seed: int = 0,
) -> dict[str, Any]:
    """Compare every candidate with ``base`` (``compare.json`` of ``loadbench compare``).

    The top-level keys are `compare_runs`' for the first candidate (tools read them);
    ``candidates`` holds one entry per candidate, the first included: its ``run`` (id),
    ``path``, ``passed``, ``failed_rules``, ``warnings`` and ``metrics``; ``all_passed`` is
    true when no candidate broke a rule. Every candidate is resampled with the same seed.
    """
    if not candidates:
        raise UsageError("compare needs a base and at least one candidate run directory")
    check_rules(rules, (base, *candidates))
    results = [compare_runs(base, c, rules, resamples=resamples, seed=seed, check=False) for c in candidates]
    out = dict(results[0])
    out["all_passed"] = all(r["passed"] for r in results)
    out["candidates"] = [
        {
            "run": r["candidate"]["id"],
            "path": r["candidate"]["path"],
            "passed": r["passed"],
            "failed_rules": r["failed_rules"],
            "warnings": r["warnings"],
            "metrics": r["metrics"],
        }
        for r in results
    ]
    return out


def _facts(run: RunData) -> dict[str, Any]:
    """The short facts shown side by side (and checked by `comparability_warnings`)."""
    meta, summary = run.meta, run.summary
    settings = meta.get("settings") or {}
    load = settings.get("load") or {}
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
        "open_loop": _is_open(run),
        # Closed loop: the users; open loop, settings.users holds --max-inflight (also below).
        "users": settings.get("users"),
        "rate_rps": load.get("rate"),
        "arrival": load.get("arrival"),
        "burstiness": load.get("burstiness"),
        "trace": load.get("trace"),
        "max_inflight": load.get("max_inflight"),
        "stages": settings.get("stages") or None,
        "planned_duration_s": settings.get("duration_s"),
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


def _stages_text(stages: Any) -> str:
    if not isinstance(stages, list) or not stages:
        return "none (constant load)"
    return f"{len(stages)} stage(s) {stages!r}"[:200]


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
    if b["open_loop"] != c["open_loop"]:
        model = {True: "open loop", False: "closed loop"}
        out.append(
            f"load models differ: {model[b['open_loop']]} (base) vs {model[c['open_loop']]} (candidate)"
        )
    elif not b["open_loop"]:
        differ("load_model", "load models")
        differ("users", "user counts")
    else:
        differ("load_model", "load models")
        # The offered load of an open loop is its schedule, not a number of users.
        differ("rate_rps", "open-loop rates (requests/s)")
        differ("arrival", "arrival processes")
        differ("burstiness", "arrival burstiness (gamma shape)")
        differ("trace", "replayed traces")
    if b["stages"] != c["stages"]:
        out.append(
            f"load shapes differ: {_stages_text(b['stages'])} (base) vs {_stages_text(c['stages'])} (candidate)"
        )
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
