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
time, `records.from_due_time`; window: `window.window_start_unix_s`), so the intervals
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

Rules (``--fail-on``, `loadbench.compare.rules`)
-------------------------------------------------
``METRIC OP CHANGE``, e.g. ``p99>+10%``, ``p99.9>+20%``, ``p50>+5ms``, ``throughput<-5%``,
``error_rate>+0.5pp``, ``f1<-0.01``. METRIC is a summary path or an alias (`rules.ALIASES`, and
``ttft_p95`` style names). A rule fails only when the change is beyond its
threshold AND significant (for a metric without an interval, the threshold alone decides). A
rule whose metric no run has is a `UsageError` (a typo must not disable a gate silently); one
whose metric one of the two runs lacks adds a warning. ``passed`` is true when no rule failed
and, when rules were given, neither run is INVALID (``invalid``: the roles whose measurement the
analyzer called INVALID, as ``loadbench run --slo`` fails on one).

Comparable runs
---------------
`comparability_warnings` lists every setting in which the runs differ; `check_comparable`
refuses (`UsageError`) a candidate of another scenario or target (host and path, `target_key`),
which ``loadbench compare`` skips with ``--force``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from loadbench.analyze import stats
from loadbench.analyze.stats import value_at
from loadbench.compare.bootstrap import RunBootstrap, delta_interval
from loadbench.compare.metrics import Metric, is_open, number, shared_metrics, value, verdict
from loadbench.compare.rules import Rule, check_rules, parse_rule
from loadbench.compare.rundata import RunData, load_run
from loadbench.errors import UsageError
from loadbench.record import rundir

# What the CLI and tools import from here, wherever it is defined.
__all__ = [
    "Rule",
    "RunData",
    "check_comparable",
    "check_rules",
    "comparability_warnings",
    "compare_many",
    "compare_runs",
    "load_run",
    "parse_rule",
    "target_key",
]


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
    metrics = {m.path: _metric_entry(m, base, candidate, boots) for m in shared_metrics(base, candidate)}
    warnings = comparability_warnings(base, candidate)
    failed = _failed_rules(rules, metrics, warnings)
    facts = {"base": _facts(base), "candidate": _facts(candidate)}
    invalid = [role for role, f in facts.items() if f["valid"] is False]
    result: dict[str, Any] = stats.clean(
        {
            # As `loadbench run --slo`: a gate cannot pass on a measurement the analyzer called INVALID.
            "passed": not failed and not (bool(rules) and bool(invalid)),
            "failed_rules": failed,
            "invalid": invalid,
            "warnings": warnings,
            **facts,
            "metrics": metrics,
        }
    )
    return result


def _metric_entry(
    metric: Metric, base: RunData, candidate: RunData, boots: tuple[RunBootstrap, RunBootstrap]
) -> dict[str, Any]:
    """One row of ``compare.json``'s metrics: both values, the delta, its interval and verdict."""
    b, c = value(base, metric.path), value(candidate, metric.path)
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
    if b is None or c is None:
        return entry
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
            min(boot.blocks for boot in boots),
        )
    entry.update(
        delta=round(delta, 6),
        delta_pct=None if delta_pct is None else round(delta_pct, 3),
        ci=ci,
        verdict=verdict(metric, delta, delta_pct, ci),
    )
    return entry


def _failed_rules(
    rules: Sequence[Rule], metrics: dict[str, dict[str, Any]], warnings: list[str]
) -> list[dict[str, Any]]:
    """The rules the comparison broke; a rule that cannot be checked adds to ``warnings`` instead."""
    failed: list[dict[str, Any]] = []
    for rule in rules:
        e = metrics.get(rule.metric)
        if e is None or e["delta"] is None:
            warnings.append(f"rule {rule.text}: {rule.metric} is not in both runs (or is null); not checked")
            continue
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
    return failed


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
            "invalid": r["invalid"],
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
        "open_loop": is_open(run),
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
        # The analyzer's VALID / INVALID (`analyze.trust`); None for a summary without it.
        "valid": value_at(summary, "validity.valid"),
        "invalid_reasons": value_at(summary, "validity.reasons") or [],
    }


def _stages_text(stages: Any) -> str:
    if not isinstance(stages, list) or not stages:
        return "none (constant load)"
    return f"{len(stages)} stage(s) {stages!r}"[:200]


def target_key(target: Any) -> tuple[str, str] | None:
    """What makes two targets the same endpoint: host and path. The scheme and port are left
    out: the demo and local servers listen on a port picked anew for each run, and a server
    moved to another port (or behind TLS) still serves the same endpoint."""
    if not isinstance(target, str):
        return None
    try:
        parts = urlsplit(target)
        return (parts.hostname or "").lower(), parts.path.rstrip("/") or "/"
    except ValueError:
        return target, ""


def check_comparable(base: RunData, candidates: Sequence[RunData]) -> None:
    """`UsageError`, one line, when a candidate ran another scenario or against another target
    than the base (`target_key`): its numbers measure something else, so every verdict would be
    noise. ``loadbench compare --force`` skips this check (the warnings stay)."""
    b = _facts(base)
    for candidate in candidates:
        c = _facts(candidate)
        differ = [
            f"{what} ({b[key]!r} vs {c[key]!r})"
            for key, what, same in (
                ("scenario", "scenario", b["scenario"] == c["scenario"]),
                ("target", "target", target_key(b["target"]) == target_key(c["target"])),
            )
            if not same
        ]
        if differ:
            raise UsageError(
                f"{candidate.path} is not comparable with the base {base.path}: they differ in "
                f"{' and '.join(differ)}; --force compares them anyway"
            )


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
    if target_key(b["target"]) != target_key(c["target"]):
        out.append(f"targets differ: {b['target']!r} (base) vs {c['target']!r} (candidate)")
    differ("scenario_args", "scenario arguments (dataset)")
    differ("cpu_model", "load generator CPUs")
    differ("cpu_cores", "load generator core counts")
    if b["gpus"] and c["gpus"] and b["gpus"] != c["gpus"]:
        out.append(f"GPUs differ: {b['gpus']} (base) vs {c['gpus']} (candidate)")
    elif bool(b["gpus"]) != bool(c["gpus"]):
        out.append(
            f"GPUs differ: {b['gpus'] or 'none sampled'} (base) vs {c['gpus'] or 'none sampled'} (candidate)"
        )
    b_len, c_len = number(b["window_s"]), number(c["window_s"])
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
        if facts["valid"] is False:
            reasons = "; ".join(str(r) for r in facts["invalid_reasons"]) or "see its report"
            out.append(f"the {role} run is INVALID: {reasons}")
        if facts["generator_saturated"]:
            out.append(
                f"the {role} run's load generator was saturated: its latency and throughput may be "
                "limited by the generator, not the server"
            )
    for role, run in (("base", base), ("candidate", candidate)):
        if run.damage is not None and run.damage.warns:  # a killed run's cut-off last line is normal
            out.append(f"the {role} run's records are damaged: {run.damage.notice()}")
    return out
