"""SLO gates: parsing every form and every error message, evaluation at the boundaries."""

from __future__ import annotations

import pytest

from loadbench.analyze.slo import Slo, evaluate, parse_slo, parse_slos, unit_kind
from loadbench.errors import UsageError


@pytest.mark.parametrize(
    ("text", "metric", "path", "op", "threshold", "unit"),
    [
        ("p99<300ms", "p99", "latency_ms.p99", "<", 300.0, "ms"),
        ("p99 <= 0.3 s", "p99", "latency_ms.p99", "<=", 300.0, "ms"),
        ("  p50<20  ", "p50", "latency_ms.p50", "<", 20.0, "ms"),
        ("p999<1.5s", "p999", "latency_ms.p999", "<", 1500.0, "ms"),
        ("p99.9<1.5s", "p999", "latency_ms.p999", "<", 1500.0, "ms"),
        ("ttft_p99.9<2s", "ttft_p999", "ttft_ms.p999", "<", 2000.0, "ms"),
        ("max<250us", "max", "latency_ms.max", "<", 0.25, "ms"),
        ("mean<=0.29s", "mean", "latency_ms.mean", "<=", 290.0, "ms"),
        ("service_p99<20ms", "service_p99", "service_time_ms.p99", "<", 20.0, "ms"),
        ("latency_ms.p99<5", "p99", "latency_ms.p99", "<", 5.0, "ms"),
        ("error_rate<1%", "error_rate", "requests.error_rate", "<", 0.01, "fraction"),
        ("error_rate <= 0.005", "error_rate", "requests.error_rate", "<=", 0.005, "fraction"),
        ("throughput>=100", "throughput", "throughput_rps", ">=", 100.0, "rps"),
        ("throughput>100rps", "throughput", "throughput_rps", ">", 100.0, "rps"),
        ("request_rate>=5/s", "request_rate", "request_rate_rps", ">=", 5.0, "rps"),
        ("goodput>2req/s", "goodput", "goodput_rps", ">", 2.0, "rps"),
        ("ttft_p95<2s", "ttft_p95", "ttft_ms.p95", "<", 2000.0, "ms"),
        ("tpot_p50<50ms", "tpot_p50", "tpot_ms.p50", "<", 50.0, "ms"),
        ("itl_p99<100", "itl_p99", "itl_ms.p99", "<", 100.0, "ms"),
        ("e2e_p90<10s", "e2e_p90", "e2e_ms.p90", "<", 10000.0, "ms"),
        ("resources.gpus.0.util_mean>=80%", "gpu_util", "resources.gpus.0.util_mean", ">=", 80.0, "percent"),
        (
            "resources.host.cpu_percent.mean<90",
            "resources.host.cpu_percent.mean",
            "resources.host.cpu_percent.mean",
            "<",
            90.0,
            "percent",
        ),
        ("schedule.lateness_ms.p99<1s", "lateness_p99", "schedule.lateness_ms.p99", "<", 1000.0, "ms"),
        (
            "resources.energy.j_per_request<2.5",
            "resources.energy.j_per_request",
            "resources.energy.j_per_request",
            "<",
            2.5,
            "",
        ),
        ("p99<1e3", "p99", "latency_ms.p99", "<", 1000.0, "ms"),
    ],
)
def test_parse_slo(text: str, metric: str, path: str, op: str, threshold: float, unit: str) -> None:
    slo = parse_slo(text)
    assert (slo.metric, slo.path, slo.op, slo.threshold, slo.unit) == (metric, path, op, threshold, unit)
    assert slo.expr == " ".join(text.split())


def test_slo_is_frozen() -> None:
    slo = parse_slo("p99<300ms")
    with pytest.raises(AttributeError):
        slo.threshold = 1.0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty SLO: expected METRIC OP VALUE"),
        ("   ", "empty SLO"),
        ("p98<3ms", "unknown metric 'p98'"),
        ("lat<3ms", "or a summary.json path such as latency_ms.p99"),
        ("ttft>500ms", "the per-request SLO 'ttft>500ms' must be an upper bound: use < or <="),
        ("tpot>=5", "must be an upper bound"),
        ("itl<5%", "gives '%' for request.itl_max_ms, which is a time"),
        ("e2e<2rps", "which is a time"),
        ("latency<-1ms", "negative threshold"),
        ("ttft<", "no value"),
        ("p99=300ms", "'='; OP must be one of <, <=, >, >="),
        ("p99==300ms", "'=='; OP must be one of"),
        ("p99<>300ms", "'<>'; OP must be one of"),
        ("p99 300ms", "no operator; OP must be one of"),
        ("p99≤300ms", "'≤'; OP must be one of"),
        ("p99<", "no value"),
        ("p99<fast", "'fast' is not a number"),
        ("p99<3rps", "gives 'rps' for latency_ms.p99, which is a time: use bare, ms, s, us"),
        ("p99<3%", "which is a time"),
        ("p99<3m", "gives 'm' for latency_ms.p99"),
        ("error_rate<1ms", "which is a fraction: use bare, %"),
        ("error_rate<2", "a fraction from 0 to 1: write 2% or 0.02"),
        ("throughput>5%", "which is a rate: use bare, rps, req/s, /s"),
        ("throughput>5ms", "which is a rate"),
        ("run.users>3x", "which is unitless: use bare"),
        ("p99<-1ms", "negative threshold"),
    ],
)
def test_parse_slo_errors_teach(text: str, message: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_slo(text)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_unknown_metric_lists_the_accepted_ones() -> None:
    with pytest.raises(UsageError) as info:
        parse_slo("lat<3ms")
    for name in ("p99", "service_p99", "error_rate", "throughput", "ttft_p99", "ttft<500ms"):
        assert name in str(info.value)


def test_unit_kind() -> None:
    assert unit_kind("latency_ms.p99") == "ms"
    assert unit_kind("by_name.x.latency_ms.p50") == "ms"
    assert unit_kind("requests.error_rate") == "fraction"
    assert unit_kind("resources.gpus.0.busy_fraction") == "fraction"
    assert unit_kind("throughput_rps") == "rps"
    assert unit_kind("resources.gpus.1.util_p95") == "percent"
    assert unit_kind("resources.energy.j_total") == ""


def test_parse_slos_stops_at_the_first_bad_one() -> None:
    assert [s.metric for s in parse_slos(["p99<3", "error_rate<1%"])] == ["p99", "error_rate"]
    with pytest.raises(UsageError, match="p98"):
        parse_slos(["p99<3", "p98<3"])


SUMMARY = {
    "latency_ms": {"p50": 10.0, "p99": 300.0, "max": None},
    "requests": {"error_rate": 0.01},
    "throughput_rps": 100.0,
    "resources": {"gpus": [{"util_mean": 80.0}], "sampled": True},
    "run": {"status": "complete"},
}


@pytest.mark.parametrize(
    ("text", "passed"),
    [
        ("p99<300ms", False),  # boundaries: strict < fails at equality
        ("p99<=300ms", True),
        ("p99<300.001", True),
        ("p99<0.3s", False),
        ("p99<=0.3s", True),
        ("p50>10", False),
        ("p50>=10", True),
        ("error_rate<1%", False),
        ("error_rate<=1%", True),
        ("error_rate<=0.01", True),
        ("throughput>=100", True),
        ("throughput>100", False),
        ("gpu_util>=80%", True),
    ],
)
def test_evaluate_boundaries(text: str, passed: bool) -> None:
    result = evaluate([parse_slo(text)], SUMMARY)
    check = result["checks"][0]
    assert check["passed"] is passed
    assert result["passed"] is passed
    assert "note" not in check
    assert check["expr"] == text


def test_evaluate_missing_values_fail_as_not_measured() -> None:
    slos = parse_slos(["max<1s", "ttft_p99<2s", "resources.gpus.3.util_mean>1", "p50<20ms"])
    result = evaluate(slos, SUMMARY)
    assert result["passed"] is False
    notes = [c.get("note") for c in result["checks"]]
    assert notes == ["not measured", "not measured", "not measured", None]
    assert [c["value"] for c in result["checks"]] == [None, None, None, 10.0]
    assert result["checks"][3]["passed"] is True


def test_evaluate_non_numbers_fail() -> None:
    result = evaluate([parse_slo("run.status>1"), parse_slo("resources.sampled>0")], SUMMARY)
    assert [c["passed"] for c in result["checks"]] == [False, False]
    assert result["checks"][0]["note"] == "not a number: complete"
    assert result["checks"][1]["note"] == "not a number: True"  # a bool is not a measurement


def test_evaluate_check_fields_and_empty_list() -> None:
    check = evaluate([parse_slo("p99 < 0.5 s")], SUMMARY)["checks"][0]
    assert check == {
        "expr": "p99 < 0.5 s",
        "metric": "p99",
        "path": "latency_ms.p99",
        "value": 300.0,
        "threshold": 500.0,
        "op": "<",
        "unit": "ms",
        "passed": True,
    }
    assert evaluate([], SUMMARY) == {"passed": True, "checks": []}


def test_slo_holds() -> None:
    slo = Slo(expr="x", metric="p99", path="latency_ms.p99", op=">=", threshold=1.0, unit="ms")
    assert slo.holds(1.0) and not slo.holds(0.5)


# --- per-request SLOs (bare ttft / tpot / itl / e2e / latency): counted into goodput -------------


@pytest.mark.parametrize(
    ("text", "metric", "path", "op", "threshold"),
    [
        ("ttft<500ms", "ttft", "request.ttft_ms", "<", 500.0),
        ("ttft <= 0.5 s", "ttft", "request.ttft_ms", "<=", 500.0),
        ("tpot<50", "tpot", "request.tpot_ms", "<", 50.0),
        ("itl<100ms", "itl", "request.itl_max_ms", "<", 100.0),
        ("e2e<2s", "e2e", "request.e2e_ms", "<", 2000.0),
        ("latency<=750us", "latency", "request.latency_ms", "<=", 0.75),
    ],
)
def test_parse_per_request_slo(text: str, metric: str, path: str, op: str, threshold: float) -> None:
    slo = parse_slo(text)
    assert slo.per_request is True
    assert (slo.metric, slo.path, slo.op, slo.threshold, slo.unit) == (metric, path, op, threshold, "ms")
    assert slo.expr == " ".join(text.split())


def test_summary_slos_are_not_per_request() -> None:
    assert not any(s.per_request for s in parse_slos(["ttft_p95<2s", "goodput>10", "p99<1s", "e2e_p99<3s"]))


def test_per_request_check_reports_attainment_and_never_fails() -> None:
    summary = {
        "goodput_rps": 4.0,
        "goodput": {
            "rps": 4.0,
            "attainment": 0.4,
            "slos": [
                {"expr": "ttft<500ms", "attainment": 0.4},
                {"expr": "tpot<50ms", "attainment": 0.9},
            ],
        },
    }
    result = evaluate(parse_slos(["ttft<500ms", "tpot<50ms", "itl<1s", "goodput>5"]), summary)
    ttft, tpot, itl, goodput = result["checks"]
    assert ttft["per_request"] is True and ttft["passed"] is True
    assert (ttft["value"], ttft["unit"], ttft["threshold"], ttft["threshold_unit"]) == (
        0.4,
        "fraction",
        500.0,
        "ms",
    )
    assert "counted into goodput" in ttft["note"]
    assert tpot["value"] == 0.9
    # An SLO the summary has no attainment for: not measured, still not failing.
    assert itl["value"] is None and itl["passed"] is True and itl["note"].startswith("not measured")
    # The gate on goodput decides.
    assert goodput["passed"] is False and "per_request" not in goodput
    assert result["passed"] is False
    assert evaluate(parse_slos(["ttft<500ms", "goodput>3"]), summary)["passed"] is True
