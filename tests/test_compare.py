"""Tests of `loadbench.compare`: verdicts on synthetic runs (sensitivity and false-positive rate),
rule parsing, gates, comparability warnings, and degenerate inputs.

The synthetic runs are real run directories (meta.json + requests.csv, then the analyzer), with
per-second random load effects so that requests inside a second are correlated, as in real runs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from loadbench import analyzer, rundir
from loadbench.compare import RunData, comparability_warnings, compare_runs, load_run, parse_rule
from loadbench.errors import RunDirError, UsageError
from loadbench.records import RequestRecord, write_requests

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


def pair(tmp_path: Path, seed: int, **candidate: float) -> tuple[RunData, RunData]:
    base = make_run(tmp_path / f"base{seed}", synthetic_records(2 * seed))
    cand = make_run(tmp_path / f"cand{seed}", synthetic_records(2 * seed + 1, **candidate))
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
    """20 pairs of runs from one distribution: at most one pair may flag any metric."""
    noisy = []
    for seed in range(20):
        base, cand = pair(tmp_path, 100 + seed)
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


def test_rule_on_a_metric_absent_from_both_runs_warns(tmp_path: Path) -> None:
    base, cand = pair(tmp_path, 6)
    result = compare_runs(base, cand, [parse_rule("f1<-0.01"), parse_rule("gpu_util<-10%")])
    assert result["passed"]
    assert any("quality.f1" in w for w in result["warnings"])
    assert any("resources.gpus.0.util_mean" in w for w in result["warnings"])


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
    assert set(result) == {"passed", "failed_rules", "warnings", "base", "candidate", "metrics"}
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
