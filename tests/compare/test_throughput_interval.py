"""The throughput interval of `loadbench compare` against a case whose answer is known: a closed
loop of the same users against a server with a fixed service time. Each user sends its next
request when the previous one ends, so the throughput is users / service time and the ratio of
two such runs is the inverse ratio of their service times (10 ms vs 15 ms: 2/3).

The windows end, as real ones do, a few milliseconds into a last, partial second (a 10 s run
with a 2 s warmup ends 8.002 s into its window): that sliver once counted as a whole second of
throughput in every resample that drew it, and intervals spanned most of the rate.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_compare import STARTED, make_run

from loadbench.compare import bootstrap
from loadbench.compare.compare import compare_runs
from loadbench.compare.rundata import RunData, load_run
from loadbench.record.records import RequestRecord

USERS = 10
LENGTH_S = 10.002  # the load's duration: stopped 2 ms into the window's ninth second
WARMUP_S = 2.0
JITTER = 0.1  # lognormal sigma of each service time around its fixed mean


def closed_loop_records(service_ms: float, seed: int) -> list[RequestRecord]:
    """``USERS`` users back to back against a server of mean service time ``service_ms``."""
    rng = np.random.default_rng(seed)
    records = []
    for _ in range(USERS):
        t = STARTED + float(rng.uniform(0.0, service_ms / 1000.0))  # users start staggered
        while t < STARTED + LENGTH_S:
            # Mean exactly service_ms: the true throughput is USERS / service time.
            latency = service_ms * float(np.exp(rng.normal(-(JITTER**2) / 2, JITTER)))
            records.append(RequestRecord(t, latency, "POST /predict", "POST", 200, 100, True, ""))
            t += latency / 1000.0
    return records


def closed_loop_run(path: Path, service_ms: float, seed: int) -> RunData:
    make_run(
        path,
        closed_loop_records(service_ms, seed),
        ended_unix_s=STARTED + LENGTH_S,
        settings={"users": USERS, "warmup_s": WARMUP_S, "duration_s": 10, "scenario_args": []},
    )
    return load_run(path)


@pytest.mark.parametrize("cand_ms", [15.0, 11.5])  # 2/3 of the throughput; -13 % (the demo pair)
def test_a_slower_server_at_the_same_users_is_worse_by_its_known_ratio(
    tmp_path: Path, cand_ms: float
) -> None:
    base = closed_loop_run(tmp_path / "base", 10.0, seed=1)
    cand = closed_loop_run(tmp_path / "cand", cand_ms, seed=2)
    m = compare_runs(base, cand)["metrics"]["throughput_rps"]
    true_base, true_cand = USERS / 0.010, USERS / (cand_ms / 1000.0)
    lo, hi = m["ci"]
    assert m["verdict"] == "worse", m
    assert lo <= true_cand - true_base <= hi, m
    # As a ratio: (base + interval) / base holds the inverse ratio of the service times.
    assert (m["base"] + lo) / m["base"] <= 10.0 / cand_ms <= (m["base"] + hi) / m["base"], m
    # Per-second rates that barely vary give an interval of a few % of the rate, never one
    # reaching below -base (the candidate cannot serve fewer than no requests).
    assert hi - lo < 0.05 * m["base"], m


def test_the_rate_of_a_resample_counts_the_time_its_seconds_cover() -> None:
    """100 requests in every whole second and none in the 2 ms sliver that ends the window:
    every resample's rate is 100 req/s, however often it drew the sliver."""
    second = np.repeat(np.arange(8), 100)
    ok = np.ones(second.size, dtype=bool)
    run = RunData(
        path=Path("run"),
        meta={"started_unix_s": STARTED, "settings": {"warmup_s": 0.0}},
        summary={"window": {"duration_s": 8.002}},
        latency_ms=np.full(second.size, 10.0),
        ok=ok,
        second=second,
        timeseries=pd.DataFrame(),
        samples=pd.DataFrame(),
    )
    boot = bootstrap.RunBootstrap(run, 400, np.random.default_rng(0))
    assert boot.n == 9 and (boot.counts[:, 8] >= 3).any()  # some resamples drew the sliver 3+ times
    assert boot.rates(boot.ones)["throughput_rps"][0] == pytest.approx(800 / 8.002)
    assert boot.rates(boot.counts)["throughput_rps"] == pytest.approx(np.full(400, 100.0), rel=0.005)
    assert bootstrap.second_lengths(8.002, 10) == pytest.approx([1.0] * 8 + [0.002, 0.0])
