"""Tests of `loadbench.compare.compare`: verdicts on synthetic runs (sensitivity and false-positive rate),
rule parsing, gates, comparability warnings, and degenerate inputs.

The synthetic runs are real run directories (meta.json + requests.csv, then the analyzer), with
per-second random load effects so that requests inside a second are correlated, as in real runs.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from loadbench.analyze import analyzer
from loadbench.compare.compare import (
    RunData,
    comparability_warnings,
    compare_many,
    compare_runs,
    parse_rule,
)
from loadbench.compare.rundata import load_run
from loadbench.errors import RunDirError, UsageError
from loadbench.record import rundir
from loadbench.record.records import RequestRecord, write_requests

STARTED = 1_700_000_000.0
DURATION = 30
RATE = 200.0
# Every latency and throughput metric with an interval: the family of the false-positive test.
FAMILY = (
    "latency_ms.p50",
    "latency_ms.p90",
    "latency_ms.p95",
    "latency_ms.p99",
    "latency_ms.p999",
    "latency_ms.mean",
    "latency_ms.max",
    "throughput_rps",
    "request_rate_rps",
    "requests.error_rate",
)


def synthetic_records(
    seed: int, latency_scale: float = 1.0, rate_scale: float = 1.0, error_p: float = 0.0
) -> list[RequestRecord]:
    """30 s at about 200 req/s: lognormal latencies (median 20 ms) times a per-second load factor."""
    rng = np.random.default_rng(seed)
    records = []
    for second in range(DURATION):
        load = float(np.exp(rng.normal(0.0, 0.1)))  # this second's shared slowdown / speed-up
        count = int(rng.poisson(RATE * rate_scale / load))
        starts = STARTED + second + np.sort(rng.uniform(0.0, 1.0, count))
        latencies = 20.0 * load * latency_scale * np.exp(rng.normal(0.0, 0.4, count))
        failed = rng.uniform(size=count) < error_p
        for start, latency, bad in zip(starts, latencies, failed, strict=True):
            records.append(
                RequestRecord(
                    float(start),
                    float(latency),
                    "POST /predict",
                    "POST",
                    503 if bad else 200,
                    100,
                    not bad,
                    "HTTPError: 503" if bad else "",
                )
            )
    return records


def make_run(
    path: Path,
    records: list[RequestRecord],
    samples: list[dict[str, Any]] | None = None,
    **meta_overrides: Any,
) -> Path:
    path.mkdir(parents=True)
    meta: dict[str, Any] = {
        "format": 1,
        "run_id": path.name,
        "target": "http://127.0.0.1:8000/predict",
        "scenario": "json_post",
        "status": rundir.STATUS_COMPLETE,
        "started_unix_s": STARTED,
        "ended_unix_s": STARTED + DURATION,
        "load_model": "closed loop",
        "settings": {"users": 8, "warmup_s": 0.0, "duration_s": DURATION, "scenario_args": []},
        "versions": {"loadbench": "0.1", "locust": "2.0", "python": "3.11"},
        "host": {"cpu_model": "Test CPU", "cpu_cores": 8},
    }
    meta.update(meta_overrides)
    rundir.write_json(path / rundir.META, meta)
    write_requests(path / rundir.REQUESTS, records)
    if samples is not None:
        (path / rundir.SAMPLES).write_text("".join(json.dumps(s) + "\n" for s in samples))
    analyzer.analyze_run(path)
    return path


def pair(tmp_path: Path, seed: int, error_p: float = 0.0, **candidate: float) -> tuple[RunData, RunData]:
    """Two runs of seeds 2·seed and 2·seed + 1 (both with ``error_p``), ``candidate`` scaled."""
    base = make_run(tmp_path / f"base{seed}", synthetic_records(2 * seed, error_p=error_p))
    cand = make_run(tmp_path / f"cand{seed}", synthetic_records(2 * seed + 1, error_p=error_p, **candidate))
    return load_run(base), load_run(cand)


def flagged(result: dict[str, Any]) -> list[str]:
    return [path for path in FAMILY if result["metrics"][path]["verdict"] != "same"]


def test_latency_shift_of_20_percent_is_worse(tmp_path: Path) -> None:
    base, cand = pair(tmp_path, 1, latency_scale=1.2)
    result = compare_runs(base, cand)
    for key in ("p50", "p90", "p99"):
        m = result["metrics"][f"latency_ms.{key}"]
        assert m["verdict"] == "worse", (key, m)
        assert m["delta"] > 0 and m["delta_pct"] > 10
        assert m["ci"][0] > 0 and m["ci"][0] <= m["delta"] <= m["ci"][1]
        assert m["direction"] == "lower" and m["unit"] == "ms"
    # The reverse comparison is an improvement, with the opposite sign.
    back = compare_runs(cand, base)
    assert back["metrics"]["latency_ms.p50"]["verdict"] == "better"
    assert back["metrics"]["latency_ms.p50"]["delta"] < 0


def test_throughput_drop_of_20_percent_is_worse(tmp_path: Path) -> None:
    base, cand = pair(tmp_path, 2, rate_scale=0.8)
    m = compare_runs(base, cand)["metrics"]["throughput_rps"]
    assert m["verdict"] == "worse" and m["delta"] < 0 and m["ci"][1] < 0


def test_false_positive_rate_of_same_distribution_runs(tmp_path: Path) -> None:
    """20 pairs of runs from one distribution (1 % errors): at most one pair may flag any metric.
    `benchmarks/compare_fpr.py` measures the same over more pairs (docs/metrics.md)."""
    noisy = []
    for seed in range(20):
        base, cand = pair(tmp_path, 100 + seed, error_p=0.01)
        assert 0.005 < base.summary["requests"]["error_rate"] < 0.02
        hits = flagged(compare_runs(base, cand, seed=seed))
        if hits:
            noisy.append((seed, hits))
    assert len(noisy) <= 1, noisy


def test_a_run_compared_with_itself_is_the_same_everywhere(tmp_path: Path) -> None:
    samples = [
        {"unix_s": STARTED + t / 2, "server.cpu_percent": 50.0 + t % 7, "gpu0.util_percent": 80.0 + t % 5}
        for t in range(2 * DURATION)
    ]
    run = load_run(make_run(tmp_path / "run", synthetic_records(5, error_p=0.01), samples))
    result = compare_runs(run, run)
    assert result["passed"] and result["warnings"] == []
    assert "resources.server_process.cpu_percent.mean" in result["metrics"]
    assert "resources.gpus.0.util_mean" in result["metrics"]
    assert "throughput_per_gpu_rps" in result["metrics"]
    for path, m in result["metrics"].items():
        assert m["verdict"] == "same", path
        assert m["delta"] == 0, path
    json.dumps(result, allow_nan=False)  # compare.json is strict JSON


def test_runs_without_resources_or_samples(tmp_path: Path) -> None:
    base, cand = pair(tmp_path, 3)
    result = compare_runs(base, cand)
    assert not any(p.startswith("resources.") for p in result["metrics"])
    assert "throughput_per_gpu_rps" not in result["metrics"]
    assert base.samples.empty


def test_missing_summary_is_a_run_dir_error(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run", synthetic_records(1)[:50])
    (run / rundir.SUMMARY).unlink()
    with pytest.raises(RunDirError, match="loadbench report"):
        load_run(run)


@pytest.mark.parametrize(
    ("text", "metric", "op", "kind", "threshold"),
    [
        ("p99>+10%", "latency_ms.p99", ">", "pct", 10.0),
        ("p50>+5ms", "latency_ms.p50", ">", "abs", 5.0),
        ("throughput<-5%", "throughput_rps", "<", "pct", -5.0),
        ("error_rate>+0.5pp", "requests.error_rate", ">", "pp", 0.5),
        ("f1<-0.01", "quality.f1", "<", "abs", -0.01),
        ("latency_ms.p999>+20%", "latency_ms.p999", ">", "pct", 20.0),
        ("gpu_util<-10%", "resources.gpus.0.util_mean", "<", "pct", -10.0),
        ("ttft_p95>+10%", "ttft_ms.p95", ">", "pct", 10.0),
        (" p99 > 10% ", "latency_ms.p99", ">", "pct", 10.0),
    ],
)
def test_parse_rule(text: str, metric: str, op: str, kind: str, threshold: float) -> None:
    rule = parse_rule(text)
    assert (rule.metric, rule.op, rule.kind, rule.threshold) == (metric, op, kind, threshold)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("p99", "cannot read the rule"),
        ("p99>+10%%", "cannot read the rule"),
        ("p99=+10%", "cannot read the rule"),
        ("p99>-10%", "contradicts itself"),
        ("throughput<+5%", "contradicts itself"),
        ("bogus>+1%", "unknown metric"),
        ("throughput<-5ms", "not a latency"),
        ("p99>+1pp", "not a fraction"),
    ],
)
def test_parse_rule_rejects(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message) as info:
        parse_rule(text)
    assert "\n" not in str(info.value)


def test_gates_fail_on_a_significant_change_only(tmp_path: Path) -> None:
    base, slower = pair(tmp_path, 4, latency_scale=1.2)
    rule = parse_rule("p99>+10%")
    result = compare_runs(base, slower, [rule, parse_rule("throughput<-50%")])
    assert not result["passed"]
    assert [f["rule"] for f in result["failed_rules"]] == ["p99>+10%"]
    failed = result["failed_rules"][0]
    assert failed["metric"] == "latency_ms.p99" and failed["delta_pct"] > 10 and failed["ci"][0] > 0
    # The same kind of threshold on noise: a tiny threshold is crossed by chance, but not significantly.
    base, same = pair(tmp_path, 5)
    noise = compare_runs(base, same, [parse_rule("p999>+0.01%"), parse_rule("p99>+0.01%")])
    crossed = [p for p in ("latency_ms.p999", "latency_ms.p99") if noise["metrics"][p]["delta_pct"] > 0.01]
    assert crossed  # the thresholds were crossed by chance ...
    assert noise["passed"] and noise["failed_rules"] == []  # ... and did not fail the gate


@pytest.mark.parametrize("text", ["latency_ms.p9>+1%", "f1<-0.01", "gpu_util<-10%", "ttft_p99>+5%"])
def test_rule_on_a_metric_absent_from_both_runs_is_a_usage_error(tmp_path: Path, text: str) -> None:
    # A typo or a metric these runs never measure would otherwise disable the gate silently.
    base, cand = pair(tmp_path, 6)
    with pytest.raises(UsageError, match="in none of the runs") as info:
        compare_runs(base, cand, [parse_rule(text)])
    assert "\n" not in str(info.value) and parse_rule(text).metric in str(info.value)


def test_rule_on_a_metric_of_one_run_only_warns(tmp_path: Path) -> None:
    base, cand = pair(tmp_path, 6)
    cand.summary["quality"] = {"f1": 0.5}
    result = compare_runs(base, cand, [parse_rule("f1<-0.01")])
    assert result["passed"] and any("quality.f1" in w and "not checked" in w for w in result["warnings"])


@pytest.mark.parametrize(
    ("text", "metric"),
    [
        ("p99.9>+10%", "latency_ms.p999"),
        ("latency_ms.p99.9>+10%", "latency_ms.p999"),
        ("ttft_p99.9>+10%", "ttft_ms.p999"),
        ("service_p99>+10%", "service_time_ms.p99"),
        ("e2e_p50>+10%", "e2e_ms.p50"),
        ("rtf_p90>+10%", "rtf.p90"),
        ("realtime_fraction<-5%", "rtf.realtime_fraction"),
        ("output_tokens_per_s<-5%", "tokens.output_per_s"),
        ("generator_cpu>+20%", "resources.generator.cpu_mean_percent"),
    ],
)
def test_rule_aliases(text: str, metric: str) -> None:
    assert parse_rule(text).metric == metric


def test_p99_9_gate_fails_like_p999(tmp_path: Path) -> None:
    base, slower = pair(tmp_path, 4, latency_scale=1.5)
    result = compare_runs(base, slower, [parse_rule("p99.9>+10%")])
    assert [f["metric"] for f in result["failed_rules"]] == ["latency_ms.p999"]


def test_value_only_metrics_and_their_rules(tmp_path: Path) -> None:
    base, cand = pair(tmp_path, 7)
    base.summary["quality"] = {"f1": 0.90}
    cand.summary["quality"] = {"f1": 0.85}
    result = compare_runs(base, cand, [parse_rule("f1<-0.01")])
    m = result["metrics"]["quality.f1"]
    assert m["ci"] is None and m["direction"] == "higher" and m["verdict"] == "same"  # -5.6 %: below 25 %
    assert [f["rule"] for f in result["failed_rules"]] == ["f1<-0.01"]


def test_incomparable_runs_are_warned(tmp_path: Path) -> None:
    records = synthetic_records(8)
    base = load_run(make_run(tmp_path / "base", records))
    other = load_run(
        make_run(
            tmp_path / "other",
            records,
            scenario="kserve_v2",
            settings={"users": 32, "warmup_s": 0.0, "duration_s": DURATION, "scenario_args": []},
            status=rundir.STATUS_INTERRUPTED,
        )
    )
    warnings = comparability_warnings(base, other)
    text = "\n".join(warnings)
    assert "scenarios differ" in text and "'json_post'" in text and "'kserve_v2'" in text
    assert "user counts differ" in text and "32" in text
    assert "candidate run was interrupted" in text
    assert comparability_warnings(base, base) == []
    assert compare_runs(base, other)["warnings"][: len(warnings)] == warnings


def test_comparison_shape(tmp_path: Path) -> None:
    base, cand = pair(tmp_path, 9)
    result = compare_runs(base, cand)
    assert set(result) == {"passed", "failed_rules", "invalid", "warnings", "base", "candidate", "metrics"}
    assert result["invalid"] == [] and result["candidate"]["valid"] is True
    assert result["base"]["scenario"] == "json_post" and result["base"]["id"] == "base9"
    assert list(result["metrics"])[:3] == ["latency_ms.p50", "latency_ms.p90", "latency_ms.p95"]
    for m in result["metrics"].values():
        assert set(m) == {
            "label",
            "unit",
            "direction",
            "base",
            "candidate",
            "delta",
            "delta_pct",
            "ci",
            "verdict",
        }
    # Deterministic for a seed.
    assert compare_runs(base, cand, seed=3) == compare_runs(base, cand, seed=3)


# -- open loop: latency from the due time ------------------------------------------------------

OPEN_SETTINGS: dict[str, Any] = {
    "users": 64,  # open loop: settings.users holds --max-inflight
    "warmup_s": 0.0,
    "duration_s": DURATION,
    "scenario_args": [],
    "load": {"model": "open", "rate": RATE, "arrival": "poisson", "seed": 1, "max_inflight": 64},
    "stages": [],
}


def open_loop_records(
    seed: int, stall_second: int | None = None, stall_ms: float = 400.0
) -> list[RequestRecord]:
    """Poisson arrivals at about 200 req/s, the service time of `synthetic_records`; in
    ``stall_second`` the generator stalled: what was due then went out late, a backlog of
    ``stall_ms`` draining over the second (corrected latency = service time + lateness)."""
    rng = np.random.default_rng(seed)
    records = []
    for second in range(DURATION):
        load = float(np.exp(rng.normal(0.0, 0.1)))
        count = int(rng.poisson(RATE))
        due = STARTED + second + np.sort(rng.uniform(0.0, 1.0, count))
        service = 20.0 * load * np.exp(rng.normal(0.0, 0.4, count))
        lateness = np.zeros(count)
        if second == stall_second:
            lateness = stall_ms / 1000.0 * (1.0 - (due - due[0]))
        for d, svc, late in zip(due, service, lateness, strict=True):
            records.append(
                RequestRecord(
                    float(d + late),
                    float(svc),
                    "POST /predict",
                    "POST",
                    200,
                    100,
                    True,
                    "",
                    intended_unix_s=float(d),
                )
            )
    return records


def test_open_loop_runs_are_compared_on_latency_from_the_due_time(tmp_path: Path) -> None:
    settings = OPEN_SETTINGS
    base = load_run(make_run(tmp_path / "base", open_loop_records(10), settings=settings))
    cand = load_run(make_run(tmp_path / "cand", open_loop_records(20, stall_second=12), settings=settings))
    # The bootstrap's data are the analyzer's: corrected latency, and the service time beside it.
    for run in (base, cand):
        assert np.percentile(run.latency_ms, 99) == pytest.approx(run.summary["latency_ms"]["p99"], abs=1e-3)
        service = run.series["service_time_ms"][0]
        assert np.percentile(service, 99) == pytest.approx(run.summary["service_time_ms"]["p99"], abs=1e-3)
    assert cand.summary["latency_ms"]["p99"] > 4 * cand.summary["service_time_ms"]["p99"]

    result = compare_runs(base, cand)
    m = result["metrics"]["latency_ms.p99"]
    assert m["delta"] > 150  # one stalled second: p99 from ~50 ms to ~300 ms
    # The interval is the corrected latency's: the jump rests on one second of thirty, so a
    # resample without that second shows no change, and the interval reaches below zero.
    assert m["ci"][0] <= 0 < m["delta"] <= m["ci"][1]
    assert m["verdict"] == "same"
    # Bootstrapping the service time instead (the old behaviour) calls it a sure regression.
    as_service = [replace(r, latency_ms=r.series["service_time_ms"][0], series={}) for r in (base, cand)]
    wrong = compare_runs(*as_service)["metrics"]["latency_ms.p99"]
    assert wrong["verdict"] == "worse" and wrong["ci"][0] > 0
    # Open loop: the service time is compared too, and it did not change.
    assert result["metrics"]["service_time_ms.p99"]["verdict"] == "same"
    assert abs(result["metrics"]["service_time_ms.p50"]["delta_pct"]) < 5
    # No "user counts differ" from --max-inflight, and nothing else differs; the stall left the
    # candidate's generator behind its schedule, which the analyzer calls INVALID: said, not hidden.
    assert result["invalid"] == ["candidate"]
    assert [w.split(":")[0] for w in result["warnings"]] == ["the candidate run is INVALID"]


def test_open_loop_settings_that_differ_are_warned(tmp_path: Path) -> None:
    base = load_run(make_run(tmp_path / "base", open_loop_records(1), settings=OPEN_SETTINGS))
    other_load = {
        **OPEN_SETTINGS["load"],
        "rate": 400.0,
        "arrival": "gamma",
        "burstiness": 0.5,
        "max_inflight": 8,
    }
    stages = [{"name": "ramp", "start_s": 0.0, "end_s": 30.0, "start_level": 100.0, "end_level": 400.0}]
    other = load_run(
        make_run(
            tmp_path / "other",
            open_loop_records(2),
            settings={**OPEN_SETTINGS, "users": 8, "load": other_load, "stages": stages},
        )
    )
    text = "\n".join(comparability_warnings(base, other))
    assert "open-loop rates (requests/s) differ: 200.0 (base) vs 400.0 (candidate)" in text
    assert "arrival processes differ: 'poisson' (base) vs 'gamma' (candidate)" in text
    assert "arrival burstiness" in text
    assert "load shapes differ" in text and "none (constant load)" in text
    assert "user counts" not in text  # 64 vs 8 is --max-inflight, not users
    facts = compare_runs(base, other)["candidate"]
    assert facts["rate_rps"] == 400.0 and facts["arrival"] == "gamma" and facts["max_inflight"] == 8
    assert facts["open_loop"] is True and facts["stages"] == stages
    # An open and a closed run: the load models differ (and the users are not compared).
    closed = load_run(make_run(tmp_path / "closed", synthetic_records(3)))
    mixed = "\n".join(comparability_warnings(closed, base))
    assert "load models differ" in mixed and "user counts" not in mixed
    # Closed loops still compare their users.
    assert "service_time_ms.p50" not in compare_runs(closed, closed)["metrics"]


# -- LLM, RTF and generator metrics --------------------------------------------------------------


def llm_records(seed: int, ttft_scale: float = 1.0) -> list[RequestRecord]:
    """30 s of streamed completions, about 40 a second: TTFT ~100 ms (× a per-second load
    factor), 20-40 output tokens 10 ms apart, each request carrying 2 s of media (RTF)."""
    rng = np.random.default_rng(seed)
    records = []
    for second in range(DURATION):
        load = float(np.exp(rng.normal(0.0, 0.1)))
        count = int(rng.poisson(40))
        starts = STARTED + second + np.sort(rng.uniform(0.0, 1.0, count))
        for start in starts:
            ttft = 100.0 * load * ttft_scale * float(np.exp(rng.normal(0.0, 0.3)))
            tokens = int(rng.integers(20, 41))
            gaps = (10.0 * load * np.exp(rng.normal(0.0, 0.3, tokens - 1))).round(3)
            extras = {
                "ttft_ms": ttft,
                "input_tokens": 50,
                "output_tokens": tokens,
                "tokens_source": "usage",
                "itl_ms": gaps.tolist(),
                "media_s": 2.0,
            }
            latency = ttft + float(gaps.sum())
            records.append(
                RequestRecord(
                    float(start), latency, "POST /v1/chat", "POST", 200, 500, True, "", extras=extras
                )
            )
    return records


def generator_samples(seed: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    return [
        {"unix_s": STARTED + t / 2, "generator.cpu_percent": float(30 + rng.normal(0, 3))}
        for t in range(2 * DURATION)
    ]


def test_llm_rtf_and_generator_metrics_are_bootstrapped(tmp_path: Path) -> None:
    base = load_run(make_run(tmp_path / "base", llm_records(1), generator_samples(1)))
    slow = load_run(make_run(tmp_path / "slow", llm_records(2, ttft_scale=1.3), generator_samples(2)))
    result = compare_runs(base, slow)
    metrics = result["metrics"]
    # The bootstrap's series reproduce the summary's values.
    for name in ("ttft_ms", "tpot_ms", "e2e_ms", "itl_ms", "rtf"):
        values = base.series[name][0]
        assert np.percentile(values, 90) == pytest.approx(base.summary[name]["p90"], abs=1e-3), name
    for path in ("ttft_ms.p50", "ttft_ms.p99", "tpot_ms.p50", "itl_ms.p90", "e2e_ms.p50", "rtf.p50"):
        assert metrics[path]["ci"] is not None, path
    ttft = metrics["ttft_ms.p50"]
    assert ttft["verdict"] == "worse" and ttft["ci"][0] > 0 and ttft["delta_pct"] > 15
    # TTFT rose, the decode did not: TPOT and ITL stay the same.
    assert metrics["tpot_ms.p50"]["verdict"] == "same" and metrics["itl_ms.p50"]["verdict"] == "same"
    assert metrics["ttft_ms.max"]["ci"] is None  # maxima: by value
    assert metrics["rtf.p50"]["verdict"] == "worse" and metrics["rtf.p50"]["direction"] == "lower"
    rt = metrics["rtf.realtime_fraction"]
    assert rt["direction"] == "higher" and rt["unit"] == "fraction" and rt["ci"] is not None
    tokens = metrics["tokens.output_per_s"]
    assert tokens["direction"] == "higher" and tokens["ci"] is not None
    assert tokens["ci"][0] <= tokens["delta"] <= tokens["ci"][1]
    gen = metrics["resources.generator.cpu_mean_percent"]
    assert gen["direction"] == "lower" and gen["ci"] is not None and gen["verdict"] == "same"
    # The same run against itself: all the same, every interval about 0.
    self_result = compare_runs(base, base)
    for path, m in self_result["metrics"].items():
        assert m["verdict"] == "same" and m["delta"] == 0, path
    gate = compare_runs(base, slow, [parse_rule("ttft_p50>+10%"), parse_rule("tpot_p50>+10%")])
    assert [f["rule"] for f in gate["failed_rules"]] == ["ttft_p50>+10%"]


# -- more than one candidate ---------------------------------------------------------------------


def test_every_candidate_is_compared_with_the_base(tmp_path: Path) -> None:
    base, same = pair(tmp_path, 11)
    slow = load_run(make_run(tmp_path / "slow", synthetic_records(99, latency_scale=1.3)))
    rules = [parse_rule("p99>+10%")]
    result = compare_many(base, [same, slow], rules)
    # The top-level keys are the first candidate's comparison.
    first = compare_runs(base, same, rules)
    assert {k: result[k] for k in first} == first
    assert result["passed"] is True and result["all_passed"] is False
    assert [c["run"] for c in result["candidates"]] == ["cand11", "slow"]
    assert [c["passed"] for c in result["candidates"]] == [True, False]
    assert result["candidates"][0]["metrics"] == first["metrics"]
    assert [f["rule"] for f in result["candidates"][1]["failed_rules"]] == ["p99>+10%"]
    assert result["candidates"][1]["metrics"]["latency_ms.p50"]["verdict"] == "worse"
    with pytest.raises(UsageError, match="in none of the runs"):
        compare_many(base, [same, slow], [parse_rule("latency_ms.p9>+1%")])
