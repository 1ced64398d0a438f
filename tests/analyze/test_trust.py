"""Tests of loadbench.analyze.trust: percentile intervals, thin percentiles, MSER-5 settling, open-loop
schedule summaries and the validity verdict. Pure numpy; every random input has a fixed seed."""

from __future__ import annotations

import copy
import json
import math
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from loadbench.analyze import stats, trust
from loadbench.analyze.analyzer import analyze_run
from loadbench.record import rundir

# --- percentile_ci ------------------------------------------------------------------------------


@pytest.mark.parametrize(("q", "true"), [(99.0, -math.log(0.01)), (50.0, math.log(2.0))])
def test_percentile_ci_covers_the_true_percentile_about_95_percent_of_the_time(q: float, true: float) -> None:
    # 400 samples of 2000 exponential(1) latencies; the true q-th percentile is -ln(1 - q/100).
    samples = np.random.default_rng(7).exponential(1.0, size=(400, 2000))
    covered = 0
    for sample in samples:
        ci = trust.percentile_ci(sample, q)
        assert ci is not None
        covered += ci[0] <= true <= ci[1]
    assert 0.90 <= covered / len(samples) <= 0.995


def test_percentile_ci_is_narrower_with_more_requests() -> None:
    rng = np.random.default_rng(3)
    widths = []
    for n in (1_000, 10_000, 100_000):
        lo, hi = trust.percentile_ci(rng.exponential(1.0, n), 99)  # type: ignore[misc]
        widths.append(hi - lo)
    assert widths[0] > widths[1] > widths[2] > 0


@pytest.mark.parametrize("n", [2, 3, 5, 10, 37, 100, 1000, 5000])
@pytest.mark.parametrize("q", [0.0, 50.0, 90.0, 95.0, 99.0, 99.9, 100.0])
def test_percentile_ci_brackets_the_estimate(n: int, q: float) -> None:
    values = np.random.default_rng(n).lognormal(3.0, 1.0, n)
    ci = trust.percentile_ci(values, q)
    assert ci is not None
    lo, hi = ci
    estimate = round(float(np.percentile(values, q)), 3)  # the summary's figure (linear, µs)
    assert lo <= estimate <= hi
    assert values.min() - 0.0005 <= lo and hi <= values.max() + 0.0005
    assert (lo, hi) == (round(lo, 3), round(hi, 3))


def test_percentile_ci_order_statistics_by_hand() -> None:
    # n = 100, p = 0.5: n*p = 50, half-width 1.96 * sqrt(25) = 9.8 -> ranks 39 and 60 (0-based).
    values = np.arange(100, dtype=np.float64)[::-1]  # unsorted on purpose
    assert trust.percentile_ci(values, 50) == (39.0, 60.0)
    assert trust.percentile_ci([1.0, 2.0], 50) == (1.0, 2.0)


@pytest.mark.parametrize("values", [[], [3.0], np.array([], dtype=np.float64)])
def test_percentile_ci_needs_two_values(values: Any) -> None:
    assert trust.percentile_ci(values, 99) is None


def test_latency_ci_keys() -> None:
    values = np.random.default_rng(1).exponential(20.0, 500)
    ci = trust.latency_ci(values)
    assert list(ci) == ["p50", "p90", "p95", "p99", "p999"]
    for key, interval in ci.items():
        assert isinstance(interval, list) and len(interval) == 2, key
        assert interval[0] <= interval[1]
    assert trust.latency_ci([1.0]) == dict.fromkeys(stats.PERCENTILES)


# --- thin_percentiles / required_requests -------------------------------------------------------


def test_required_requests() -> None:
    assert {k: trust.required_requests(k) for k in stats.PERCENTILES} == {
        "p50": 20,
        "p90": 100,
        "p95": 200,
        "p99": 1000,
        "p999": 10000,
    }


def test_thin_percentiles() -> None:
    assert trust.thin_percentiles(0) == ["p50", "p90", "p95", "p99", "p999"]
    assert trust.thin_percentiles(999) == ["p99", "p999"]
    assert trust.thin_percentiles(1000) == ["p999"]
    assert trust.thin_percentiles(9999) == ["p999"]
    assert trust.thin_percentiles(10000) == []


@pytest.mark.parametrize("key", list(stats.PERCENTILES))
def test_thin_percentiles_agrees_with_required_requests(key: str) -> None:
    # At exactly the required count a percentile is not thin (1 - 0.9 is 0.09999999999999998:
    # 100 requests must not count as 9.99 beyond p90); one fewer and it is.
    need = trust.required_requests(key)
    assert key not in trust.thin_percentiles(need)
    assert key in trust.thin_percentiles(need - 1)


# --- mser5 --------------------------------------------------------------------------------------


def test_mser5_on_flat_noise_cuts_little() -> None:
    cuts, at_limit = [], 0
    for seed in range(40):
        found = trust.mser5(np.random.default_rng(seed).normal(50.0, 5.0, 200))
        assert found is not None
        cuts.append(found[0])
        at_limit += found[1]
        assert found[0] % 5 == 0  # batches of 5
    assert at_limit <= 4  # at most 10 % of the seeds
    assert np.median(cuts) <= 20  # 10 % of the series
    assert sum(c <= 20 for c in cuts) >= 0.75 * len(cuts)


def test_mser5_cuts_a_high_start() -> None:
    cuts = []
    for seed in range(40):
        series = np.random.default_rng(seed).normal(50.0, 5.0, 200)
        series[:60] *= 3  # the first 30 % runs 3x higher
        found = trust.mser5(series)
        assert found is not None
        cuts.append(found[0])
        assert found[0] >= 60  # never keeps any of the high start
    assert np.median(cuts) <= 70
    assert sum(c <= 80 for c in cuts) >= 0.8 * len(cuts)


def test_mser5_on_a_rising_series_stops_at_the_limit() -> None:
    for seed in range(10):
        series = np.linspace(10.0, 100.0, 200) + np.random.default_rng(seed).normal(0.0, 3.0, 200)
        assert trust.mser5(series) == (100, True)  # the end of the first half


def test_mser5_small_series() -> None:
    assert trust.mser5(np.arange(9.0)) is None
    assert trust.mser5([1.0, 2.0, np.nan, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]) is None  # NaN dropped
    # 10 to 19 values: plain MSER (batches of 1).
    found = trust.mser5([9.0, 9.0, 9.0, 1.0, 1.1, 0.9, 1.0, 1.1, 0.9, 1.0, 1.0, 0.9])
    assert found == (3, False)


# --- steady_start -------------------------------------------------------------------------------

WINDOW = (1000.0, 1060.0)  # the measured window, unix seconds


def _requests(
    seed: int, latency: Callable[[npt.NDArray[np.float64]], npt.NDArray[np.float64]], n: int = 3000
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """``n`` sends spread over the window; latency(offset_s) scaled by gamma noise (CV 0.5)."""
    rng = np.random.default_rng(seed)
    send = np.sort(rng.uniform(*WINDOW, n))
    noise = rng.gamma(4.0, 0.25, n)
    return send, latency(send - WINDOW[0]) * noise


def _flat(offset: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    return np.full(offset.size, 50.0)


def _slow_start(offset: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    return np.where(offset < 24.0, 150.0, 50.0)  # the first 40 % of the window 3x slower


def _overload(offset: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    return 50.0 + 10.0 * offset  # the queue grows the whole time: 50 ms to 650 ms


SEEDS = range(50)


def test_steady_start_of_a_stable_run() -> None:
    for seed in SEEDS:
        out = trust.steady_start(*_requests(seed, _flat), *WINDOW)
        assert out["settled"] is True, seed
        assert out["material"] is False, seed
        assert (out["bins"], out["bin_s"]) == (100, 0.6)
        assert out["settled_at_unix_s"] == pytest.approx(WINDOW[0] + out["settled_offset_s"], abs=1e-6)


def test_steady_start_of_a_slow_start() -> None:
    settled = 0
    for seed in SEEDS:
        out = trust.steady_start(*_requests(seed, _slow_start), *WINDOW)
        assert out["material"] is True, seed
        # Settled: the second half is steady. MSER-5 leans late, so now and then its best cut
        # is the end of the first half (30 s) rather than the 24 s where the slow part ends.
        assert out["settled"] is True, seed
        settled += out["settled_offset_s"] == pytest.approx(24.0, abs=3.0)  # 40 % of 60 s
        assert 21.0 <= out["settled_offset_s"] <= 30.0, seed
    assert settled >= 0.8 * len(SEEDS)
    first = trust.steady_start(*_requests(0, _slow_start), *WINDOW)
    assert (first["settled"], first["settled_offset_s"], first["material"]) == (True, 24.0, True)


def test_steady_start_of_an_overload_never_settles() -> None:
    never = 0
    for seed in SEEDS:
        out = trust.steady_start(*_requests(seed, _overload), *WINDOW)
        assert out["material"] is True, seed
        never += out["settled"] is False
    assert never >= 0.9 * len(SEEDS)
    first = trust.steady_start(*_requests(0, _overload), *WINDOW)
    assert (first["settled"], first["settled_offset_s"]) == (False, 30.0)  # the end of the first half


def test_steady_start_cannot_judge_too_few_requests_or_bins() -> None:
    few = trust.steady_start(*_requests(0, _flat, n=49), *WINDOW)
    assert few["settled"] is None and few["settled_offset_s"] is None and few["material"] is False
    short = trust.steady_start(*_requests(0, _flat), WINDOW[0], WINDOW[0] + 2.0)  # 8 bins of 0.25 s
    assert short["settled"] is None and short["bins"] == 8
    empty = trust.steady_start(np.array([]), np.array([]), 5.0, 5.0)
    assert (empty["settled"], empty["bins"], empty["bin_s"]) == (None, 0, None)


def test_steady_start_ignores_requests_outside_the_window() -> None:
    send, latency = _requests(2, _flat)
    outside = np.array([WINDOW[0] - 5.0, WINDOW[1] + 5.0])
    out = trust.steady_start(np.concatenate([send, outside]), np.concatenate([latency, [1e6, 1e6]]), *WINDOW)
    assert out == trust.steady_start(send, latency, *WINDOW)


# --- schedule_summary ---------------------------------------------------------------------------


def test_schedule_summary_by_hand() -> None:
    # Window [100, 104). One request due in the warmup (99.5, 100 ms late: outside), four due in
    # the window 2, 0, 20 and 11 ms late, and one closed-loop request with no due time (NaN).
    intended = np.array([99.5, 100.0, 101.0, 102.0, 103.0, np.nan])
    start = np.array([99.6, 100.002, 101.0, 102.020, 103.011, 103.5])
    settings = {"model": "open", "rate": 1.0, "arrival": "constant", "seed": 7}
    meta = {"due": 5, "unsent": 1, "dropped": 2, "max_backlog": 3}
    out = trust.schedule_summary(start, intended, 100.0, 104.0, settings, meta)
    assert out["lateness_ms"] == {
        "p50": 6.5,  # between 2 and 11
        "p90": 17.3,  # 11 + 0.7 * 9
        "p95": 18.65,
        "p99": 19.73,
        "p999": 19.973,
        "max": 20.0,
        "mean": 8.25,
        "min": 0.0,
    }
    del out["lateness_ms"]
    assert out == {
        "requested_rps": 1.0,
        "arrival": "constant",
        "seed": 7,
        "sent": 4,
        "achieved_send_rps": 1.0,  # 4 in 4 s
        "late_requests": 2,  # over 10 ms: 20 and 11
        "late_fraction": 0.5,
        "late_threshold_ms": 10.0,
        "due_total": 5,
        "sent_total": 5,  # the warmup's included
        "unsent": 1,
        "dropped": 2,
        "max_backlog": 3,
    }


def test_schedule_summary_without_meta_or_requests() -> None:
    none = np.array([], dtype=np.float64)
    out = trust.schedule_summary(none, none, 0.0, 0.0, {"rate": None, "arrival": "trace"}, None)
    assert out["sent"] == 0 and out["sent_total"] == 0
    assert out["achieved_send_rps"] is None  # no window
    assert out["lateness_ms"] == dict.fromkeys(stats.LATENCY_KEYS)
    assert out["late_fraction"] == 0.0
    assert (out["due_total"], out["unsent"], out["dropped"], out["max_backlog"]) == (None, 0, 0, 0)
    assert (out["requested_rps"], out["arrival"], out["seed"]) == (None, "trace", None)


# --- validity -----------------------------------------------------------------------------------


def _clean() -> dict[str, Any]:
    """A summary of a trustworthy open-loop run: 100 req/s for 60 s, all sent on time."""
    return {
        "requests": {"total": 6000, "ok": 6000},
        "window": {"duration_s": 60.0},
        "resources": {"generator": {"saturated": False, "saturated_share": 0.02}},
        "steady": {"settled": True},
        "schedule": {
            "requested_rps": 100.0,
            "arrival": "constant",
            "achieved_send_rps": 100.0,
            "lateness_ms": {"p99": 1.5},
            "late_requests": 12,
            "due_total": 6000,
            "sent_total": 6000,
        },
    }


def test_a_clean_summary_is_valid() -> None:
    assert trust.validity(_clean(), "open", ["p99"]) == {"valid": True, "reasons": []}
    closed = _clean()
    del closed["schedule"]
    assert trust.validity(closed, "closed", ["p50", "p99", "max", "error_rate"]) == {
        "valid": True,
        "reasons": [],
    }
    assert trust.validity({}, "closed", []) == {"valid": True, "reasons": []}


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def apply(summary: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = summary
        for part in parents:
            node = node[part]
        node[last] = value

    return apply


@pytest.mark.parametrize(
    ("change", "model", "gated", "reason"),
    [
        (
            _set("resources.generator.saturated", True),
            "open",
            [],
            "the load generator's CPU was saturated (2% of samples above 90% of a core): "
            "it may have measured its own delays",
        ),
        (_set("window.duration_s", 0.5), "open", [], "the measured window lasted 0.5 s, under 1 s"),
        (_set("steady.settled", False), "closed", [], "latency never settled"),
        (
            _set("schedule.lateness_ms.p99", 12.5),
            "open",
            [],
            "the generator fell behind its schedule: 1% of requests were sent more than 12.5 ms late "
            "(bound 10 ms; 12 later than 10 ms)",
        ),
        (
            _set("schedule.sent_total", 5699),
            "open",
            [],
            "only 5,699 of 6,000 scheduled requests were sent (95.0%): raise --max-inflight or lower --rate",
        ),
        (_set("schedule.achieved_send_rps", 94.9), "open", [], "sent 94.9 requests/s of the 100 requested"),
        (
            _set("requests.ok", 999),
            "open",
            ["p99"],
            "an SLO gates on p99, which 999 successful requests cannot pin down (needs at least 1,000)",
        ),
        (
            _set("requests.ok", 6000),
            "open",
            ["p999"],
            "an SLO gates on p999, which 6,000 successful requests cannot pin down (needs at least 10,000)",
        ),
        (_set("requests.ok", 99), "closed", ["p90"], "needs at least 100"),
    ],
)
def test_each_reason_on_its_own(
    change: Callable[[dict[str, Any]], None], model: str, gated: list[str], reason: str
) -> None:
    summary = _clean()
    if model == "closed":
        del summary["schedule"]
    change(summary)
    out = trust.validity(summary, model, gated)
    assert out["valid"] is False
    assert len(out["reasons"]) == 1, out["reasons"]
    assert reason in out["reasons"][0]


@pytest.mark.parametrize(
    "change",
    [
        _set("resources.generator.saturated", False),
        _set("steady.settled", None),  # could not judge: no verdict either way
        _set("schedule.lateness_ms.p99", 10.0),  # at the bound
        _set("schedule.lateness_ms.p99", None),
        _set("schedule.sent_total", 5700),  # exactly 95 %
        _set("schedule.due_total", None),
        _set("schedule.achieved_send_rps", 95.0),
        _set("schedule.achieved_send_rps", None),
        _set("requests.ok", 1000),  # exactly enough for p99
    ],
)
def test_at_or_inside_the_bounds_is_still_valid(change: Callable[[dict[str, Any]], None]) -> None:
    summary = _clean()
    change(summary)
    assert trust.validity(summary, "open", ["p99"]) == {"valid": True, "reasons": []}


def test_what_does_not_make_a_run_invalid() -> None:
    # A short window with no requests at all: nothing was measured, nothing to distrust.
    empty = _clean()
    empty["window"]["duration_s"] = 0.0
    empty["requests"] = {"total": 0, "ok": 0}
    assert trust.validity(empty, "open", [])["valid"] is True
    # A Poisson or gamma schedule sends a random number: a low achieved rate is no reason.
    poisson = _clean()
    poisson["schedule"].update(arrival="poisson", achieved_send_rps=80.0)
    assert trust.validity(poisson, "open", [])["valid"] is True
    # The schedule is checked for an open-loop run only.
    late = _clean()
    late["schedule"]["lateness_ms"]["p99"] = 500.0
    assert trust.validity(late, "closed", [])["valid"] is True
    # Only percentiles need a tail: a gate on the mean, max or error rate needs no minimum.
    few = _clean()
    few["requests"]["ok"] = 5
    assert trust.validity(few, "open", ["mean", "max", "error_rate", "throughput"])["valid"] is True
    # Exactly 100 successes are enough for p90 (1 - 0.9 is not quite 0.1 in floating point).
    ninety = _clean()
    ninety["requests"]["ok"] = 100
    assert trust.validity(ninety, "open", ["p90"])["valid"] is True


def test_lateness_needs_enough_late_requests_to_invalidate() -> None:
    summary = _clean()
    _set("schedule.lateness_ms.p99", 12.5)(summary)
    summary["schedule"]["late_requests"] = 9  # two outliers of a short run must not decide it
    assert trust.validity(summary, "open", [])["valid"] is True


def test_every_reason_at_once() -> None:
    summary = _clean()
    for change in (
        _set("resources.generator", {"saturated": True}),
        _set("window.duration_s", 0.5),
        _set("steady.settled", False),
        _set("schedule.lateness_ms.p99", 50.0),
        _set("schedule.sent_total", 10),
        _set("schedule.achieved_send_rps", 1.0),
        _set("requests.ok", 10),
    ):
        change(summary)
    before = copy.deepcopy(summary)
    out = trust.validity(summary, "open", ["p99", "p999"])
    assert summary == before  # not modified
    assert out["valid"] is False
    assert len(out["reasons"]) == 8
    assert out["reasons"][0] == (
        "the load generator's CPU was saturated: it may have measured its own delays"  # no share
    )


def test_gated_percentiles_beyond_latency_need_their_own_values() -> None:
    summary = _clean()
    # 6,000 successful requests, but only 500 streams measured a TTFT: p99 needs 1,000.
    out = trust.validity(summary, "open", [], {"ttft_ms.p99": 500, "ttft_ms.p50": 500, "ttft_ms.max": 3})
    assert out == {
        "valid": False,
        "reasons": [
            "an SLO gates on ttft_ms.p99, which 500 measured values cannot pin down (needs at least 1,000)"
        ],
    }
    assert trust.validity(summary, "open", [], {"ttft_ms.p99": 1000})["valid"] is True


def test_a_saturated_remote_worker_is_one_reason_that_names_it() -> None:
    summary = _clean()
    summary["resources"] = {
        "generator": {"saturated": True, "saturated_share": 0.5, "saturated_on": ["worker1@box"]},
        "remote": {"worker1@box": {"generator": {"saturated": True}}},
    }
    out = trust.validity(summary, "open", [])
    assert out["reasons"] == [
        "the load generator's CPU was saturated on worker1@box (50% of samples above 90% of a core): "
        "it may have measured its own delays"
    ]
    # An older summary, saturation only under remote: still one reason, naming the worker.
    del summary["resources"]["generator"]
    assert trust.validity(summary, "open", [])["reasons"] == [
        "the load generator's CPU was saturated on worker1@box: it may have measured its own delays"
    ]


# --- a saturated host shared with the server ----------------------------------------------------

HOST_REASON = (
    "the load generator shared a host whose CPU was at its limit (the server process was sampled on "
    "this host): 99.9% of its 2 cores on average over the window (limit 90%), so latency and "
    "throughput measure the contention between the generator and the server, not the server"
)


def _busy_host(
    mean: float = 99.9, server: bool = True, target: str = "http://10.0.0.7:8000"
) -> dict[str, Any]:
    summary = _clean()
    summary["run"] = {"target": target}
    summary["resources"] |= {
        "host_cpu": {"mean_percent": mean, "limit_percent": 90.0, "at_limit": mean >= 90.0, "cores": 2},
        "server_process": {"cpu_percent": {"mean": 96.0}} if server else None,
    }
    return summary


def test_a_saturated_host_shared_with_the_server_is_a_warning() -> None:
    # The defect: 64 users against the demo, host CPU 99.9 %, generator well under a core: VALID
    # with no word. Now a warning (not INVALID: a closed loop beside its server reaches the
    # host's limit by design; docs/metrics.md, Validity).
    out = trust.validity(_busy_host(), "open", [])
    assert out == {"valid": True, "reasons": [], "warnings": [HOST_REASON]}
    # A loopback target shares the host even when its process was not found.
    loopback = trust.validity(_busy_host(server=False, target="http://localhost:8000"), "open", [])
    assert loopback["warnings"] == [
        HOST_REASON.replace(
            "the server process was sampled on this host", "the target localhost is this host"
        )
    ]
    # With the generator saturated as well: INVALID for the generator, the host a warning still.
    both = _busy_host()
    both["resources"]["generator"]["saturated"] = True
    out = trust.validity(both, "open", [])
    assert out["valid"] is False and len(out["reasons"]) == 1 and out["warnings"] == [HOST_REASON]


def test_a_busy_host_is_no_warning_without_the_server_or_below_the_limit() -> None:
    # A remote server's host is not the generator's: a busy generator host alone is its own check.
    assert "warnings" not in trust.validity(_busy_host(server=False), "open", [])
    assert "warnings" not in trust.validity(_busy_host(mean=89.9), "open", [])
    assert trust.validity(_busy_host(mean=90.0), "open", [])["warnings"]  # at the limit
    # A summary from before host_cpu existed, or one without host readings.
    older = _busy_host()
    del older["resources"]["host_cpu"]
    assert trust.validity(older, "open", []) == {"valid": True, "reasons": []}


def test_the_demo_run_on_a_saturated_host_warns(tmp_path: Path) -> None:
    # A real demo run (tests/data): host CPU 100 % in every sample, server and generator on it.
    data = Path(__file__).resolve().parents[1] / "data" / "run-demo-json_post"
    run = tmp_path / "run"
    shutil.copytree(data, run, ignore=shutil.ignore_patterns("summary.before.*"))
    summary = analyze_run(run)
    assert summary["resources"]["host_cpu"] == {
        "mean_percent": 100.0,
        "limit_percent": 90.0,
        "at_limit": True,
        "cores": 2,
    }
    warning = HOST_REASON.replace("99.9%", "100.0%")
    assert summary["validity"] == {"valid": True, "reasons": [], "warnings": [warning]}
    assert f"WARNING: {warning}" in summary["notices"]
    # The same run against a remote server (no server process here): nothing to say.
    meta = json.loads((run / rundir.META).read_text())
    meta["target"] = "http://10.0.0.7:44737"
    (run / rundir.META).write_text(json.dumps(meta))
    lines = [json.loads(line) for line in (run / rundir.SAMPLES).read_text().splitlines()]
    remote = [{k: v for k, v in row.items() if not k.startswith("server.")} for row in lines]
    (run / rundir.SAMPLES).write_text("".join(json.dumps(row) + "\n" for row in remote))
    assert analyze_run(run)["validity"] == {"valid": True, "reasons": []}
