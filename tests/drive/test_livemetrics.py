"""The live Prometheus figures (`loadbench.drive.livemetrics`), fed with ``requests.csv`` lines and
read back through prometheus_client's own exposition and parser (no Locust here)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from loadbench.drive.histograms import BOUNDS, HIGHEST_S, LOWEST_S, Histogram, histogram_quantile
from loadbench.drive.livemetrics import MAX_NAMES, OTHER, Gauges, LiveMetrics, RunInfo
from loadbench.record.records import RequestRecord, format_record


def quantile_of(hist: Histogram, q: float) -> float:
    return histogram_quantile(q, BOUNDS, [count for _, count in hist.cumulative()])


def samples(metrics: LiveMetrics, only: str = "") -> list[tuple[str, dict[str, str], float]]:
    """The exposition's samples, parsed back; ``only``: just the families of that name prefix
    (prometheus_client's parser is slow on some 28,000 bucket lines)."""
    text = generate_latest(metrics.registry()).decode()
    if only:
        text = "".join(
            ln + "\n"
            for ln in text.splitlines()
            if ln.split(" ", 3)[-2 if ln.startswith("#") else 0].startswith(only)
        )
    return [(s.name, s.labels, s.value) for f in text_string_to_metric_families(text) for s in f.samples]


def line(name: str = "/v2/models/m/infer", latency_ms: float = 5.0, ok: bool = True, **kw: object) -> str:
    record = RequestRecord(
        start_unix_s=kw.pop("start", 1000.0),  # type: ignore[arg-type]
        latency_ms=latency_ms,
        name=name,
        method="POST",
        status=kw.pop("status", 200 if ok else 0),  # type: ignore[arg-type]
        response_bytes=10,
        ok=ok,
        **kw,  # type: ignore[arg-type]
    )
    return format_record(record)


def test_buckets_are_never_more_than_five_percent_apart_from_100us_to_60s() -> None:
    bounds = np.array(BOUNDS)
    assert bounds[0] <= LOWEST_S and bounds[-1] >= HIGHEST_S
    assert np.all(np.diff(bounds) > 0)
    assert (bounds[1:] / bounds[:-1]).max() <= 1.05


DISTRIBUTIONS = {
    "lognormal around 5 ms": lambda rng: rng.lognormal(math.log(0.005), 0.6, 50_000),
    "exponential, mean 200 ms": lambda rng: 0.001 + rng.exponential(0.2, 50_000),
    "log-uniform 100 us .. 60 s": lambda rng: np.exp(rng.uniform(math.log(1e-4), math.log(60), 50_000)),
    "bimodal: cache hits and misses": lambda rng: np.concatenate(
        [rng.normal(0.0008, 0.0001, 30_000).clip(1e-4), rng.normal(2.5, 0.4, 20_000).clip(0.1)]
    ),
    "gamma, LLM-like seconds": lambda rng: rng.gamma(2.0, 4.0, 50_000).clip(1e-4, 60),
    "constant 1.234 ms": lambda rng: np.full(1000, 0.001234),
}


@pytest.mark.parametrize("dist", DISTRIBUTIONS)
def test_histogram_quantile_lands_within_five_percent_of_the_exact_percentile(dist: str) -> None:
    values = DISTRIBUTIONS[dist](np.random.default_rng(7))
    hist = Histogram()
    for v in values:
        hist.observe(float(v))
    assert hist.cumulative()[-1][1] == len(values)
    for q in (0.5, 0.9, 0.95, 0.99, 0.999):
        exact = float(np.percentile(values, q * 100))
        estimate = quantile_of(hist, q)
        assert abs(estimate - exact) / exact <= 0.05, (dist, q, estimate, exact)


def test_requests_are_counted_by_name_outcome_and_status() -> None:
    metrics = LiveMetrics(RunInfo(run_id="r1", scenario="kserve_v2", target="http://h:1", version="0.1.0"))
    metrics.feed(line(latency_ms=2.0) + line(latency_ms=4.0))
    metrics.feed(line(ok=False, status=503, error="HTTPError: 503 Server Error"))
    metrics.feed(line(ok=False, error="ConnectionRefusedError: [Errno 111] Connection refused"))
    metrics.feed("1000.5,3.0,/partial")  # a partial last line: skipped
    got = {
        (s[1]["outcome"], s[1]["status"]): s[2]
        for s in samples(metrics)
        if s[0] == "loadbench_requests_total"
    }
    assert got == {("ok", "200"): 2, ("HTTP 503", "503"): 1, ("connection refused", "0"): 1}
    count = {s[1]["ok"]: s[2] for s in samples(metrics) if s[0] == "loadbench_request_duration_seconds_count"}
    assert count == {"true": 2, "false": 2}
    total = [
        s[2]
        for s in samples(metrics)
        if s[0] == "loadbench_request_duration_seconds_sum" and s[1]["ok"] == "true"
    ]
    assert total == [pytest.approx(0.006)]


def test_llm_tokens_timings_and_predictions_come_from_the_record_fields() -> None:
    metrics = LiveMetrics(RunInfo(scenario="openai_chat"))
    extras = {"ttft_ms": 120.0, "itl_ms": [10.0, 12.0, 11.0], "input_tokens": 30, "output_tokens": 4}
    metrics.feed(line("chat", 160.0, extras=extras) + line("chat", 150.0, extras=extras))
    metrics.feed(line("digit", extras={"expected": "7", "predicted": "7"}))
    metrics.feed(line("digit", extras={"expected": "7", "predicted": "1"}))
    metrics.feed(line("digit", ok=False, status=500, error="HTTPError: 500", extras={"expected": "3"}))
    got = {(s[0], tuple(sorted(s[1].items()))): s[2] for s in samples(metrics)}
    assert got[("loadbench_input_tokens_total", (("name", "chat"), ("scenario", "openai_chat")))] == 60
    assert got[("loadbench_output_tokens_total", (("name", "chat"), ("scenario", "openai_chat")))] == 8
    assert got[("loadbench_ttft_seconds_count", (("name", "chat"), ("scenario", "openai_chat")))] == 2
    assert got[("loadbench_itl_seconds_count", (("name", "chat"), ("scenario", "openai_chat")))] == 6
    assert got[("loadbench_predictions_total", (("correct", "true"), ("scenario", "openai_chat")))] == 1
    assert got[("loadbench_predictions_total", (("correct", "false"), ("scenario", "openai_chat")))] == 2


def test_label_values_are_escaped_scrubbed_and_bounded() -> None:
    hostile = 'he said "hi" \\ <script>alert(1)</script>'
    info = RunInfo(run_id="r\n1", scenario='sc"en', target="http://h:1/?key=s3cret", version="0.1.0")
    metrics = LiveMetrics(info, secrets=["s3cret"])
    metrics.feed(line(hostile) + line("/v1?token=s3cret"))
    for i in range(MAX_NAMES + 50):
        metrics.feed(line(f"/item/{i}"))
    text = generate_latest(metrics.registry()).decode()
    assert "s3cret" not in text
    assert 'run_id="r\\n1"' in text and 'scenario="sc\\"en"' in text  # the exposition's escapes
    parsed = samples(metrics, only="loadbench_r")  # loadbench_run_info, loadbench_requests_total
    info_labels = next(s[1] for s in parsed if s[0] == "loadbench_run_info")
    assert info_labels["run_id"] == "r\n1" and info_labels["scenario"] == 'sc"en'
    names = {s[1]["name"]: s[2] for s in parsed if s[0] == "loadbench_requests_total"}
    assert names[hostile] == 1  # read back exactly as sent
    assert len(names) == MAX_NAMES + 1
    assert names[OTHER] == 52  # two of the first 100 were the hostile and the secret one
    assert sum(names.values()) == MAX_NAMES + 52


def test_gauges_and_the_open_loop_schedule_are_read_at_scrape_time() -> None:
    state = {"users": 3.0}
    gauges = Gauges(
        users=lambda: state["users"],
        in_flight=lambda: 2.0,
        start_unix_s=lambda: 1234.5,
        schedule=lambda: (10, 7, 1),
    )
    metrics = LiveMetrics(RunInfo(), gauges=gauges)
    metrics.feed(line(start=1000.25, intended_unix_s=1000.0))
    state["users"] = 5.0
    got = {s[0]: s[2] for s in samples(metrics) if not s[1] or s[0] == "loadbench_schedule_lag_seconds_sum"}
    assert got["loadbench_users"] == 5.0
    assert got["loadbench_in_flight"] == 2.0
    assert got["loadbench_run_start_time_seconds"] == 1234.5
    assert got["loadbench_schedule_due_total"] == 10
    assert got["loadbench_schedule_backlog"] == 2
    assert got["loadbench_schedule_lag_seconds_sum"] == pytest.approx(0.25)


def test_a_record_counts_exactly_as_its_requests_csv_line_does() -> None:
    # The local run counts the recorder's records as they are (`count`); a distributed master
    # counts the lines its workers send (`feed`): the figures must not depend on which.
    rng = np.random.default_rng(7)
    records = []
    for i in range(400):
        ok = bool(rng.random() < 0.8)
        extras: dict[str, object] = {}
        if i % 3 == 0:
            extras = {
                "ttft_ms": float(rng.gamma(2, 20)),
                "itl_ms": [float(g) for g in rng.gamma(2, 4, size=int(rng.integers(0, 6)))]
                + [math.nan, True],
                "input_tokens": int(rng.integers(0, 300)),
                "output_tokens": [-1, 12, True, 5.0][i % 4],
            }
        elif i % 3 == 1:
            extras = {
                "expected": [7, "7", "cat\nfish", None][i % 4],
                "predicted": [7, "8", "cat fish", "x"][i % 4],
            }
        records.append(
            RequestRecord(
                start_unix_s=1_800_000_000 + i * 0.0123456789,
                latency_ms=float(rng.lognormal(1.0, 1.0))
                if i % 50
                else 0.0004999,  # rounds to a bound's side
                name=["/a", "/b", 'odd "name", with comma'][i % 3],
                method="POST",
                status=[200, 0, 503, 400][i % 4] if not ok else 200,
                response_bytes=10,
                ok=ok,
                error="" if ok else ["ConnectionRefusedError: refused", "HTTP 503", 'x,y "quoted"'][i % 3],
                intended_unix_s=None if i % 2 else 1_800_000_000 + i * 0.0123456789 - rng.random() / 100,
                extras=extras or None,
            )
        )
    by_record = LiveMetrics(RunInfo(run_id="r", scenario="s"))
    by_line = LiveMetrics(RunInfo(run_id="r", scenario="s"))
    for record in records:
        by_record.count(record)
        by_line.feed(format_record(record))
    assert samples(by_record) == samples(by_line)
    assert sum(by_record.requests.values()) == len(records) and by_record.predictions["true"] > 0


def test_a_plain_success_counts_from_its_figures_exactly_as_from_its_line() -> None:
    # The recorder's hot path hands over the figures it formats the line from (`count_ok`); a
    # distributed master parses the same line (`feed`). Latencies and times sit on rounding edges.
    rng = np.random.default_rng(11)
    by_figures = LiveMetrics(RunInfo(run_id="r", scenario="s"))
    by_line = LiveMetrics(RunInfo(run_id="r", scenario="s"))
    for i in range(600):
        latency = float(rng.lognormal(0.0, 1.5)) if i % 7 else [0.0004999, 0.12115, 0.0625, 1e-9, 5e5][i % 5]
        start = (1_800_000_000 if i % 2 else 1_000) + i * 0.0123456789  # a small one keeps its digits
        intended = None if i % 3 else start - float(rng.random()) / 100 + (0.001 if i % 9 == 0 else 0.0)
        name = ["/a", "/b", 'odd "name", with comma'][i % 3]
        status = [200, 201, 204][i % 3]
        by_figures.count_ok(name, status, latency, start, intended)
        by_line.feed(line(name, latency, status=status, start=start, intended_unix_s=intended))
    by_figures.count_ok("/nan", 200, math.nan, 1.0, None)  # not a latency: not counted, as no line is
    by_line.feed(line("/nan", math.nan))
    assert samples(by_figures) == samples(by_line)
    lag = by_figures.schedule_lag  # served by an open loop's run only: compared here
    assert (lag.counts, lag.total) == (by_line.schedule_lag.counts, by_line.schedule_lag.total)
    assert sum(by_figures.requests.values()) == 600 and lag.total > 0


def test_lines_with_and_without_the_servers_time_count_the_same() -> None:
    # A master counts lines with server_ms (before replica, target, attempt, request_id,
    # payload_key and cache; --server-time-header) and lines of a worker of an older version
    # without them alike.
    text = (
        line(latency_ms=2.0, server_ms=1.5)
        + line(ok=False, status=503, error="HTTPError: 503, busy", server_ms=0.25)
        + line(
            "chat", 160.0, extras={"ttft_ms": 120.0, "itl_ms": [10.0], "output_tokens": 4}, server_ms=150.0
        )
    )
    assert [ln.rsplit(",", 7)[1] for ln in text.splitlines()] == ["1.500", "0.250", "150.000"]
    old = "".join(ln.rsplit(",", 7)[0] + "\n" for ln in text.splitlines())
    with_it, without = LiveMetrics(RunInfo(scenario="s")), LiveMetrics(RunInfo(scenario="s"))
    with_it.feed(text)
    without.feed(old)
    assert samples(with_it) == samples(without)
    assert sum(with_it.requests.values()) == 3
    assert ("loadbench_ttft_seconds_count", {"name": "chat", "scenario": "s"}, 1.0) in samples(with_it)


def test_gaps_between_tokens_counted_in_bulk_are_counted_as_one_by_one() -> None:
    # A stream's gaps wait and are parsed and counted together (beyond FOLD_AT of them, and at a
    # scrape): the histogram must be the one that counting each gap on its own gives.
    rng = np.random.default_rng(3)
    records = [
        RequestRecord(
            1_800_000_000 + i, 50.0, "chat", "POST", 200, 10, True,
            extras={"itl_ms": [float(g) for g in rng.gamma(2, 4, size=70)] + ([math.inf] if i % 7 else [])},
        )
        for i in range(100)
    ]  # fmt: skip
    one_by_one = Histogram()
    for record in records:
        assert record.extras is not None
        for gap in record.extras["itl_ms"]:
            if math.isfinite(gap):
                one_by_one.observe(round(gap, 3) / 1000.0)
    by_line, by_record = LiveMetrics(RunInfo()), LiveMetrics(RunInfo())
    by_line.feed("".join(format_record(r) for r in records))
    for record in records:
        by_record.count(record)
    for metrics in (by_line, by_record):
        metrics.fold()
        assert metrics.itl["chat"].counts == one_by_one.counts
        assert metrics.itl["chat"].total_us == one_by_one.total_us
    assert sum(one_by_one.counts) == 7000
