"""Resource metrics over the measured window, on hand-built samples where the answer is obvious."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from loadbench.analyze.resources import (
    compute_resources,
    host_cpu_section,
    host_saturated,
    ok_latency_by_second,
    shared_host,
    spread,
    window_energy_j,
)

START = 1000.0


def make_samples(n: int = 21, step: float = 0.5, **columns: object) -> pd.DataFrame:
    frame = pd.DataFrame({"unix_s": START + np.arange(n) * step})
    for key, values in columns.items():
        frame[key.replace("__", ".").replace("_SLASH_", "/")] = values
    return frame


def no_requests() -> pd.Series:
    """No successful request's latency in any second (`ok_latency_by_second` of no records)."""
    return pd.Series([], dtype="float64")


def test_spread_is_mean_p95_max_of_present_values() -> None:
    assert spread(pd.Series([1.0, None, 3.0, 2.0])) == {"mean": 2.0, "p95": 2.9, "max": 3.0}
    assert spread(pd.Series([None, None])) == {"mean": None, "p95": None, "max": None}


def test_energy_from_counter_beats_power_integration() -> None:
    t = np.array([0.0, 1.0, 2.0])
    joules, method = window_energy_j(t, np.array([10.0, 110.0, 210.0]), np.array([50.0, 50.0, 50.0]))
    assert (joules, method) == (200.0, "NVML total energy counter")
    joules, method = window_energy_j(t, np.full(3, np.nan), np.array([100.0, 200.0, 100.0]))
    assert (joules, method) == (300.0, "power integrated over time")  # trapezoids: 150 + 150
    assert window_energy_j(t, np.full(3, np.nan), np.full(3, np.nan)) == (None, "no power readings")


def test_window_excludes_warmup_samples_and_gpus_are_summarised() -> None:
    n = 21  # 0..10 s
    util = np.where(np.arange(n) < 4, 100.0, 50.0)  # busy during the 2 s warmup only
    samples = make_samples(
        n,
        gpu0__util_percent=util,
        gpu0__mem_used_bytes=np.linspace(1, 2, n) * 1024**3,
        gpu0__mem_total_bytes=80 * 1024**3,
        gpu0__power_w=200.0,
        gpu0__energy_j=np.arange(n) * 100.0,  # 200 W
        gpu0__server_mem_bytes=1024**3,
        gpu1__util_percent=np.nan,  # a field the device does not support
        gpu1__power_w=100.0,
    )
    res = compute_resources(
        samples,
        {"gpus": [{"index": 0, "name": "H100"}, {"index": 1, "name": "L4"}]},
        START + 2.0,
        START + 10.0,
        no_requests(),
        ok_requests=400,
    )
    g0, g1 = res["gpus"]
    assert (g0["name"], g1["name"]) == ("H100", "L4")
    assert g0["util_mean"] == 50.0 and g0["util_max"] == 50.0  # warmup samples excluded
    assert g0["busy_fraction"] == 0.5
    assert g0["mem_used_max_mib"] == 2048.0 and g0["mem_total_mib"] == 81920.0
    assert g0["server_mem_max_mib"] == 1024.0
    assert g0["energy_j"] == 1600.0 and g0["energy_method"] == "NVML total energy counter"  # 8 s at 200 W
    assert g1["util_mean"] is None
    assert g1["energy_j"] == 800.0 and g1["energy_method"] == "power integrated over time"
    assert res["energy"]["j_total"] == 2400.0
    assert res["energy"]["j_per_request"] == 6.0
    assert res["energy"]["j_per_output_token"] is None  # no token counts yet
    assert res["samples"] == 17


def test_generator_saturation_flags_the_run() -> None:
    busy = make_samples(11, generator__cpu_percent=[95.0] * 5 + [50.0] * 6)
    res = compute_resources(busy, {}, START, START + 5.0, no_requests(), ok_requests=1)
    assert res["generator"]["saturated"] is True
    assert res["generator"]["cpu_max_percent"] == 95.0
    assert any("load generator" in n for n in res["notices"])
    calm = make_samples(11, generator__cpu_percent=[95.0] * 1 + [50.0] * 10)
    res = compute_resources(calm, {}, START, START + 5.0, no_requests(), ok_requests=1)
    assert res["generator"]["saturated"] is False


def test_a_saturated_remote_worker_flags_the_run_and_is_named() -> None:
    samples = make_samples(
        11,
        generator__cpu_percent=50.0,
        **{"worker1@box_SLASH_generator__cpu_percent": [97.0] * 6 + [60.0] * 5},
    )
    res = compute_resources(samples, {}, START, START + 5.0, no_requests(), ok_requests=1)
    assert res["remote"]["worker1@box"]["generator"]["saturated"] is True
    gen = res["generator"]
    assert gen["saturated"] is True and gen["saturated_on"] == ["worker1@box"]
    assert gen["cpu_max_percent"] == 97.0 and gen["cpu_mean_percent"] == 50.0  # the mean: this host's
    assert gen["saturated_share"] == pytest.approx(6 / 11, abs=1e-4)
    # One line, last (the analyzer lifts the last notice into the summary's notices).
    assert "worker1@box" in res["notices"][-1] and "load generator" in res["notices"][-1]
    calm = make_samples(11, generator__cpu_percent=50.0, **{"worker1@box_SLASH_generator__cpu_percent": 60.0})
    res = compute_resources(calm, {}, START, START + 5.0, no_requests(), ok_requests=1)
    assert res["generator"]["saturated"] is False and res["generator"]["saturated_on"] == []
    assert not any("load generator" in n for n in res["notices"])


def test_host_cpu_is_a_time_weighted_mean_over_the_window() -> None:
    # Readings every 0.5 s, then a 2 s gap (a starved sampler) whose one reading says 100 %: the
    # reading stands for the 2 s it covers, not for one sample in four (a plain mean: 60 %).
    t = START + np.array([0.0, 0.5, 1.0, 1.5, 3.5])
    samples = pd.DataFrame({"unix_s": t, "host.cpu_percent": [10.0, 20.0, 60.0, 60.0, 100.0]})
    got = host_cpu_section(samples, START + 0.5, START + 3.5, 2)
    # The reading at the window's start covers the warmup before it: no weight.
    # (60 * 0.5 s + 60 * 0.5 s + 100 * 2 s) / 3 s
    assert got == {"mean_percent": 86.67, "limit_percent": 90.0, "at_limit": False, "cores": 2}
    # A reading whose stretch began in the warmup counts for its part inside the window:
    # (20 * 0.25 s + 60 * 0.5 s) / 0.75 s.
    assert host_cpu_section(samples, START + 0.25, START + 1.0)["mean_percent"] == 46.67
    # The run's first reading covers the time since the sampler started, taken as a usual gap
    # (0.5 s): (10 * 0.25 s + 20 * 0.5 s) / 0.75 s.
    assert host_cpu_section(samples, START - 0.25, START + 0.5)["mean_percent"] == 16.67
    assert host_cpu_section(samples.iloc[:1], START - 1.0, START + 1.0)["mean_percent"] == 10.0  # one reading


@pytest.mark.parametrize(("cpu", "at_limit"), [(100.0, True), (90.0, True), (89.99, False), (np.nan, False)])
def test_host_cpu_at_its_limit_from_90_percent(cpu: float, at_limit: bool) -> None:
    samples = make_samples(11, host__cpu_percent=cpu, generator__cpu_percent=40.0)
    res = compute_resources(samples, {"cpu_cores": 2}, START, START + 5.0, no_requests(), ok_requests=1)
    assert res["host_cpu"]["at_limit"] is at_limit
    assert res["host_cpu"]["mean_percent"] == (None if np.isnan(cpu) else cpu)
    assert res["host_cpu"]["cores"] == 2
    assert res["generator"]["saturated"] is False  # the generator's own core was not the limit


def _summary(target: str | None, server: bool = False, remote_server: bool = False) -> dict[str, object]:
    resources: dict[str, object] = {
        "host_cpu": {"mean_percent": 99.9, "limit_percent": 90.0, "at_limit": True, "cores": 2},
        "server_process": {"cpu_percent": {"mean": 96.0}} if server else None,
        "remote": {"box:9109": {"server_process": {"cpu_percent": {}} if remote_server else None}},
    }
    return {"run": {"target": target}, "resources": resources}


@pytest.mark.parametrize(
    ("target", "server", "remote_server", "why"),
    [
        ("http://10.0.0.7:8000", True, False, "the server process was sampled on this host"),
        ("http://127.0.0.1:8000", False, False, "the target 127.0.0.1 is this host"),
        ("http://127.0.1.1", False, False, "the target 127.0.1.1 is this host"),
        ("https://LOCALHOST:8443/v1", False, False, "the target localhost is this host"),
        ("http://api.localhost", False, False, "the target api.localhost is this host"),
        ("http://[::1]:8000", False, False, "the target ::1 is this host"),
        ("http://0.0.0.0:8000", False, False, "the target 0.0.0.0 is this host"),
        ("http://10.0.0.7:8000", False, False, None),  # a remote server's host is not ours
        ("http://gpu-box:8000", False, False, None),  # not resolved: analysis may run anywhere
        ("http://127.0.0.1:8000", False, True, None),  # a tunnel: the agent saw the server elsewhere
        ("http://[::1", False, False, None),  # damaged
        (None, False, False, None),
    ],
)
def test_the_generator_shares_its_host_with_a_local_server_only(
    target: str | None, server: bool, remote_server: bool, why: str | None
) -> None:
    summary = _summary(target, server, remote_server)
    assert shared_host(summary) == why
    assert host_saturated(summary) is (why is not None)
    summary["resources"]["host_cpu"]["at_limit"] = False  # type: ignore[index]
    assert host_saturated(summary) is False


def test_energy_per_output_token_from_gpu_samples_and_llm_tokens() -> None:
    samples = make_samples(21, gpu0__energy_j=np.arange(21) * 150.0)  # 300 W for 10 s
    res = compute_resources(
        samples, {}, START, START + 10.0, no_requests(), ok_requests=100, output_tokens=6000
    )
    assert res["energy"]["j_total"] == 3000.0
    assert res["energy"]["j_per_request"] == 30.0
    assert res["energy"]["j_per_output_token"] == 0.5


def test_failed_scrapes_and_agent_losses_become_notices() -> None:
    final = {
        "scrapes": [
            {"url": "http://a:***@h:1/metrics", "match": None, "scrapes": 10, "errors": 3,
             "last_error": "HTTP 500 from http://a:***@h:1/metrics", "series_max": 4},
            {"url": "http://h:2/metrics", "match": "^vllm:", "scrapes": 10, "errors": 0, "last_error": None,
             "series_max": 0},
            {"url": "http://h:3/metrics", "match": None, "scrapes": 10, "errors": 0, "last_error": None,
             "series_max": 9},
        ],
        "agents": [
            {"url": "http://box:9109", "label": "box:9109", "pulled": 40, "dropped": 7, "errors": 2,
             "last_error": "agent http://box:9109 is unreachable: refused", "drift_s": 0.004},
        ],
    }  # fmt: skip
    samples = make_samples(5, **{"box:9109_SLASH_host__cpu_percent": 20.0})
    res = compute_resources(
        samples, {"final": final, "notices": ["first"]}, START, START + 2.0, no_requests(), ok_requests=0
    )
    assert res["notices"] == [
        "first",
        "--scrape http://a:***@h:1/metrics: 3 of 10 scrapes failed, last: HTTP 500 from http://a:***@h:1/metrics",
        "--scrape http://h:2/metrics: no series matched --scrape-match '^vllm:' in 10 successful scrape(s)",
        "--agent http://box:9109: 2 failed request(s) to the agent (40 samples pulled), last: agent "
        "http://box:9109 is unreachable: refused",
        "--agent http://box:9109: 7 sample(s) lost: the agent's buffer overflowed before they were pulled",
    ]
    assert res["remote"]["box:9109"]["clock_drift_s"] == 0.004


def test_latency_correlates_with_server_cpu() -> None:
    seconds = np.arange(10)
    cpu = np.repeat(seconds * 10.0, 2)  # two samples per second
    samples = make_samples(20, server__cpu_percent=cpu, host__cpu_percent=np.repeat(np.full(10, 5.0), 2))
    requests = pd.DataFrame(
        {
            "start_unix_s": START + seconds + 0.3,
            "latency_ms": 10.0 + seconds * 3.0,
            "ok": np.ones(10, dtype=np.int8),
        }
    )
    res = compute_resources(
        samples, {}, START, START + 10.0, ok_latency_by_second(requests, START), ok_requests=10
    )
    assert res["latency_correlation"]["server.cpu_percent"] == pytest.approx(1.0)
    assert "host.cpu_percent" not in res["latency_correlation"]  # constant: no correlation defined


def test_remote_hosts_and_prometheus_series() -> None:
    samples = make_samples(
        5,
        **{
            "box:9109_SLASH_gpu0__util_percent": 80.0,
            "box:9109_SLASH_host__cpu_percent": 20.0,
            'prom__vllm:num_requests_running{model_name="m"}': [1.0, 2.0, 3.0, 4.0, 5.0],
            'prom__http_requests_total_rate{path="/v1/chat"}': 3.0,  # a slash, but no remote host
        },
    )
    info = {
        "agents": [{"label": "box:9109", "offset_s": 0.25, "uncertainty_s": 0.001, "remote": {"gpus": []}}]
    }
    res = compute_resources(samples, info, START, START + 2.0, no_requests(), ok_requests=0)
    assert list(res["remote"]) == ["box:9109"]
    remote = res["remote"]["box:9109"]
    assert remote["gpus"][0]["util_mean"] == 80.0
    assert remote["host"]["cpu_percent"]["mean"] == 20.0
    assert remote["clock_offset_s"] == 0.25
    assert res["prometheus"]['vllm:num_requests_running{model_name="m"}']["max"] == 5.0
    assert res["gpus"] == []


def test_no_samples() -> None:
    empty = pd.DataFrame({"unix_s": pd.Series([], dtype="float64")})
    res = compute_resources(empty, None, START, START + 1, no_requests(), ok_requests=0)
    assert res == {
        "sampled": False,
        "samples": 0,
        "notices": ["no resource samples: the run was made without the sampler"],
    }
    res = compute_resources(
        empty, {"notices": ["the sampler exited with code 1"]}, START, START + 1, no_requests(), 0
    )
    assert res["notices"] == ["the sampler exited with code 1"]
