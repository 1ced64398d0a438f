"""Tests of loadbench.load.arrivals: open-loop schedules (constant, Poisson, gamma) and trace files.

Pure numpy, no Locust. Every random schedule has a fixed seed, so every number here is the same
on every run; the statistical bounds are wide enough that they hold for other seeds too.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from loadbench.errors import UsageError
from loadbench.load.arrivals import (
    PAUSE_STEP_S,
    Arrival,
    arrival_offsets,
    check_arrival,
    constant_rate,
    read_trace,
)

RATE = 100.0  # requests/s
LONG_S = 2000.0  # about 200,000 requests: tight enough for 2 % on the rate


def _offsets(
    arrival: str,
    *,
    seed: int = 1,
    burstiness: float = 1.0,
    rate: float = RATE,
    end_s: float = LONG_S,
) -> npt.NDArray[np.float64]:
    schedule = arrival_offsets(constant_rate(rate), arrival, seed, burstiness, end_s)
    return np.fromiter(schedule, dtype=np.float64)


def _gaps(offsets: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Inter-arrival times, the first measured from the load start (0)."""
    return np.diff(offsets, prepend=0.0)


def _ks_exponential(gaps: npt.NDArray[np.float64], rate: float) -> float:
    """Kolmogorov–Smirnov statistic of ``gaps`` against the exponential distribution of ``rate``."""
    x = np.sort(gaps)
    n = x.size
    cdf = 1.0 - np.exp(-rate * x)
    rank = np.arange(1, n + 1)
    return float(max((rank / n - cdf).max(), (cdf - (rank - 1) / n).max()))


def _ks_critical_1pct(n: int) -> float:
    return 1.63 / math.sqrt(n)


@pytest.fixture(scope="module")
def poisson_long() -> npt.NDArray[np.float64]:
    return _offsets("poisson", seed=20240601)


# --- constant -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("rate", "end_s"), [(8.0, 2.0), (10.0, 3.0), (7.0, 3.0), (1000.0, 60.0)])
def test_constant_starts_at_zero_then_one_every_one_over_rate(rate: float, end_s: float) -> None:
    offsets = _offsets("constant", rate=rate, end_s=end_s)
    expected = np.arange(round(rate * end_s)) / rate
    # Exactly rate * duration requests: adding up 1/rate used to drift and let one more in
    # just before the end (10 req/s over 1 s gave an 11th at 0.9999999999999999).
    assert offsets.size == expected.size
    assert offsets[0] == 0.0
    np.testing.assert_allclose(offsets, expected, rtol=0, atol=1e-9)
    np.testing.assert_allclose(np.diff(offsets), 1.0 / rate, rtol=0, atol=1e-9)


def test_constant_over_one_second_at_ten_per_second_is_ten_requests() -> None:
    assert _offsets("constant", rate=10.0, end_s=1.0).size == 10


def test_constant_ignores_the_seed() -> None:
    assert np.array_equal(_offsets("constant", seed=1, end_s=5.0), _offsets("constant", seed=2, end_s=5.0))


# --- Poisson ------------------------------------------------------------------------------------


def test_poisson_mean_rate_within_2_percent(poisson_long: npt.NDArray[np.float64]) -> None:
    assert np.all(np.diff(poisson_long) > 0)
    assert poisson_long[0] > 0 and poisson_long[-1] < LONG_S
    assert poisson_long.size / LONG_S == pytest.approx(RATE, rel=0.02)


def test_poisson_gaps_pass_a_ks_test_against_the_exponential(poisson_long: npt.NDArray[np.float64]) -> None:
    gaps = _gaps(poisson_long)
    statistic = _ks_exponential(gaps, RATE)
    assert statistic < _ks_critical_1pct(gaps.size), statistic


def test_the_ks_test_rejects_a_constant_schedule() -> None:
    """The KS check above can fail: a schedule with the same rate but regular gaps is rejected."""
    gaps = _gaps(_offsets("constant"))
    statistic = _ks_exponential(gaps, RATE)
    # Every gap is 1/rate: the empirical CDF jumps from 0 to 1 where the exponential's is 1 - 1/e.
    assert statistic == pytest.approx(1 - math.exp(-1), abs=1e-3)
    assert statistic > 50 * _ks_critical_1pct(gaps.size)


def test_the_ks_test_rejects_a_regular_gamma_schedule() -> None:
    gaps = _gaps(_offsets("gamma", burstiness=4.0, end_s=200.0))
    assert _ks_exponential(gaps, RATE) > _ks_critical_1pct(gaps.size)


def test_gamma_with_burstiness_1_is_poisson() -> None:
    gaps = _gaps(_offsets("gamma", burstiness=1.0, seed=5, end_s=500.0))
    assert _ks_exponential(gaps, RATE) < _ks_critical_1pct(gaps.size)


# --- gamma --------------------------------------------------------------------------------------


@pytest.mark.parametrize("burstiness", [0.5, 4.0])
def test_gamma_keeps_the_mean_rate_and_sets_the_variability(burstiness: float) -> None:
    offsets = _offsets("gamma", burstiness=burstiness, seed=11)
    gaps = _gaps(offsets)
    assert offsets.size / LONG_S == pytest.approx(RATE, rel=0.03)
    cv = gaps.std() / gaps.mean()
    assert cv == pytest.approx(1 / math.sqrt(burstiness), rel=0.10)


# --- seeds --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("arrival", "burstiness"), [("poisson", 1.0), ("gamma", 0.5), ("gamma", 3.0)])
def test_same_seed_same_schedule_other_seed_other_schedule(arrival: str, burstiness: float) -> None:
    first = _offsets(arrival, seed=42, burstiness=burstiness, end_s=10.0)
    again = _offsets(arrival, seed=42, burstiness=burstiness, end_s=10.0)
    other = _offsets(arrival, seed=43, burstiness=burstiness, end_s=10.0)
    assert first.size > 500
    assert np.array_equal(first, again)
    assert first.size != other.size or not np.array_equal(first, other)


# --- rate functions -----------------------------------------------------------------------------


def _paused(t: float) -> float | None:
    """100 req/s, a pause from 1 s to 2 s, 100 req/s again until 3 s, then the end."""
    if t >= 3.0:
        return None
    return 0.0 if 1.0 <= t < 2.0 else RATE


@pytest.mark.parametrize(("arrival", "burstiness"), [("constant", 1.0), ("poisson", 1.0), ("gamma", 0.5)])
def test_nothing_is_sent_during_a_pause(arrival: str, burstiness: float) -> None:
    for seed in range(10):
        offsets = np.fromiter(arrival_offsets(_paused, arrival, seed, burstiness), dtype=np.float64)
        in_pause = offsets[(offsets >= 1.0) & (offsets < 2.0)]
        assert in_pause.size == 0, (seed, in_pause)
        before, after = offsets[offsets < 1.0], offsets[offsets >= 2.0]
        assert before.size == pytest.approx(RATE, rel=0.3)
        assert after.size == pytest.approx(RATE, rel=0.3)
        assert after.max() < 3.0
        if arrival == "constant":
            # After the pause the first request is due at once (within the polling step).
            assert 2.0 <= after[0] <= 2.0 + PAUSE_STEP_S + 1e-9
            assert before.size == 100


def test_a_rate_that_starts_at_zero_waits_for_the_rate() -> None:
    offsets = list(arrival_offsets(lambda t: 0.0 if t < 0.5 else (10.0 if t < 1.5 else None), "constant", 0))
    assert len(offsets) == 10
    assert 0.5 <= offsets[0] <= 0.5 + PAUSE_STEP_S + 1e-9


@pytest.mark.parametrize("arrival", ["constant", "poisson"])
def test_a_ramp_from_zero_offers_its_rate(arrival: str) -> None:
    # 0 to 10 req/s over 10 s: about 50 requests, most in the second half.
    ramp = lambda t: t if t < 10.0 else None  # noqa: E731
    offsets = list(arrival_offsets(ramp, arrival, 4))
    assert len(offsets) == pytest.approx(50, rel=0.3)


def test_rate_none_ends_the_schedule() -> None:
    calls: list[float] = []

    def rate(t: float) -> float | None:
        calls.append(t)
        return RATE if t < 1.5 else None

    for arrival in ("constant", "poisson", "gamma"):
        offsets = list(arrival_offsets(rate, arrival, 3, 2.0))  # end_s: infinite
        assert offsets and max(offsets) < 1.5
        assert len(offsets) == pytest.approx(150, rel=0.2)
    assert max(calls) < 1.5 + 0.2  # stopped at the first None, not polling on


def test_end_s_is_respected() -> None:
    for arrival in ("constant", "poisson", "gamma"):
        offsets = _offsets(arrival, burstiness=0.5, end_s=2.5)
        assert offsets.size and offsets.max() < 2.5
        assert offsets.size == pytest.approx(250, rel=0.25)
    assert list(arrival_offsets(constant_rate(RATE), "poisson", 1, end_s=0.0)) == []


def test_the_schedule_is_lazy_and_unbounded_without_an_end() -> None:
    schedule = arrival_offsets(constant_rate(RATE), "poisson", 9)
    first = [next(schedule) for _ in range(1000)]
    assert first == sorted(first)
    assert first[-1] == pytest.approx(10.0, rel=0.15)


@pytest.mark.parametrize(
    ("arrival", "burstiness", "message"),
    [
        ("uniform", 1.0, "--arrival must be one of constant, poisson, gamma, not 'uniform'"),
        ("", 1.0, "--arrival must be one of"),
        ("Poisson", 1.0, "--arrival must be one of"),
        ("gamma", 0.0, "--burstiness must be above 0, not 0"),
        ("gamma", -1.0, "--burstiness must be above 0, not -1"),
        ("gamma", math.inf, "--burstiness must be above 0"),
        ("gamma", math.nan, "--burstiness must be above 0"),
        ("poisson", 0.0, "--burstiness"),  # checked whatever the arrival
    ],
)
def test_bad_arrival_or_burstiness_is_a_usage_error(arrival: str, burstiness: float, message: str) -> None:
    with pytest.raises(UsageError, match=re.escape(message)):
        check_arrival(arrival, burstiness)
    # The schedule is a generator: the check runs on the first request asked for.
    with pytest.raises(UsageError, match=re.escape(message)):
        next(arrival_offsets(constant_rate(RATE), arrival, 1, burstiness))


# --- read_trace ---------------------------------------------------------------------------------


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_trace_csv_with_offsets_and_token_lengths(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "trace.csv",
        "offset_s,input_tokens,output_tokens\n0,10,20\n0.5,,\n1.25,3,4\n",
    )
    assert read_trace(path) == [Arrival(0.0, 10, 20), Arrival(0.5, None, None), Arrival(1.25, 3, 4)]


def test_trace_csv_with_timestamps_starts_at_the_first(tmp_path: Path) -> None:
    path = _write(tmp_path, "trace.csv", "timestamp\n1700000010.5\n1700000010.0\n1700000012.0\n")
    assert [a.offset_s for a in read_trace(path)] == [0.0, 0.5, 2.0]
    assert all(a.input_tokens is None and a.output_tokens is None for a in read_trace(path))


def test_trace_jsonl_with_token_lengths(tmp_path: Path) -> None:
    rows = [
        {"offset_s": 0.0, "input_tokens": 128, "output_tokens": 32},
        {"offset_s": 0.25, "input_tokens": 512},
        {"offset_s": 1.0, "output_tokens": 7, "prompt": "ignored"},
    ]
    path = _write(tmp_path, "trace.jsonl", "\n".join(json.dumps(r) for r in rows) + "\n\n")
    assert read_trace(path) == [Arrival(0.0, 128, 32), Arrival(0.25, 512, None), Arrival(1.0, None, 7)]


def test_trace_jsonl_with_timestamps(tmp_path: Path) -> None:
    path = _write(tmp_path, "t.jsonl", '{"timestamp": 50.5}\n{"timestamp": 50.0}\n')
    assert [a.offset_s for a in read_trace(path)] == [0.0, 0.5]


def test_trace_rows_are_sorted_with_their_token_lengths(tmp_path: Path) -> None:
    path = _write(tmp_path, "trace.csv", "offset_s,input_tokens\n2.0,3\n0.0,1\n1.0,2\n0.5,9\n")
    assert read_trace(path) == [Arrival(0.0, 1), Arrival(0.5, 9), Arrival(1.0, 2), Arrival(2.0, 3)]


def test_trace_scale_multiplies_the_offsets(tmp_path: Path) -> None:
    path = _write(tmp_path, "trace.csv", "offset_s,output_tokens\n0,5\n1.0,6\n3.0,7\n")
    assert read_trace(path, scale=0.5) == [
        Arrival(0.0, None, 5),
        Arrival(0.5, None, 6),
        Arrival(1.5, None, 7),
    ]
    assert [a.offset_s for a in read_trace(path, scale=2.0)] == [0.0, 2.0, 6.0]
    stamps = _write(tmp_path, "stamps.csv", "timestamp\n100\n104\n")
    assert [a.offset_s for a in read_trace(stamps, scale=0.5)] == [0.0, 2.0]


def test_trace_csv_written_by_a_spreadsheet(tmp_path: Path) -> None:
    """A byte-order mark before the header (Excel's "CSV UTF-8") is not part of the column name."""
    path = tmp_path / "excel.csv"
    path.write_bytes(b"\xef\xbb\xbfoffset_s,input_tokens\r\n0,1\r\n0.5,2\r\n")
    assert read_trace(path) == [Arrival(0.0, 1), Arrival(0.5, 2)]


def test_trace_token_counts_may_be_written_as_floats(tmp_path: Path) -> None:
    path = _write(tmp_path, "t.jsonl", '{"offset_s": 0, "input_tokens": 12.0, "output_tokens": "3"}\n')
    assert read_trace(path) == [Arrival(0.0, 12, 3)]


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("empty.csv", "", "holds no requests"),
        ("header.csv", "offset_s,input_tokens\n", "holds no requests"),
        ("blank.jsonl", "{}\n", r"needs an 'offset_s' or 'timestamp' column"),
        ("cols.csv", "time,input_tokens\n0,1\n", r"needs an 'offset_s' or 'timestamp' column \(optional"),
        ("bad.csv", "offset_s\n0\n0.5\nsoon\n1.0\n", r"line 4: bad offset_s or token count"),
        ("blanks.csv", "offset_s\n0\n\n\nsoon\n", r"line 5: bad offset_s"),  # blank lines counted
        ("bad.jsonl", '{"offset_s": 0}\n\n{"offset_s": "x"}\n', r"line 3: bad offset_s"),
        ("missing.jsonl", '{"offset_s": 0}\n{"timestamp": 1}\n', r"line 2: bad offset_s"),
        ("stamp.csv", "timestamp\n1\nnope\n", r"line 3: bad timestamp or token count"),
        ("nan.csv", "offset_s\n0\nnan\n", r"line 3: offset_s is not a finite number"),
        ("inf.csv", "offset_s\n0\ninf\n", r"line 3: offset_s is not a finite number"),
        ("neg.csv", "offset_s\n-0.5\n0\n1\n", "offset_s must not be negative"),
        ("tokens.csv", "offset_s,input_tokens\n0,5\n1,-3\n", r"line 3: bad offset_s or token count"),
        ("tokens.jsonl", '{"offset_s": 0, "output_tokens": -1}\n', r"line 1: bad offset_s or token count"),
        ("word.jsonl", '{"offset_s": 0, "output_tokens": "many"}\n', r"line 1: bad offset_s or token count"),
        ("huge.jsonl", '{"offset_s": 0, "output_tokens": "inf"}\n', r"line 1: bad offset_s or token count"),
        ("list.jsonl", '{"offset_s": 0}\n[1, 2]\n', r"line 2: not a JSON object"),
        ("text.jsonl", '{"offset_s": 0}\n"offset_s"\n', r"line 2: not a JSON object"),
        ("broken.jsonl", '{"offset_s": 0}\n{"offset_s": 1\n', r"line 2: not a JSON object"),
    ],
)
def test_bad_traces_are_usage_errors_that_say_where(
    tmp_path: Path, name: str, text: str, message: str
) -> None:
    path = _write(tmp_path, name, text)
    with pytest.raises(UsageError, match=message) as caught:
        read_trace(path)
    assert str(path) in str(caught.value)


def test_missing_trace_file(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"trace file .*nope\.csv does not exist"):
        read_trace(tmp_path / "nope.csv")


def test_unreadable_trace_file(tmp_path: Path) -> None:
    binary = tmp_path / "trace.bin"
    binary.write_bytes(b"offset_s\n\xff\xfe\n")
    with pytest.raises(UsageError, match="cannot read trace file"):
        read_trace(binary)
    with pytest.raises(UsageError, match="cannot read trace file"):
        read_trace(tmp_path)  # a directory


@pytest.mark.parametrize("scale", [0.0, -1.0, math.inf, math.nan])
def test_bad_trace_scale(tmp_path: Path, scale: float) -> None:
    path = _write(tmp_path, "trace.csv", "offset_s\n0\n")
    with pytest.raises(UsageError, match=r"\-\-trace\-scale must be above 0"):
        read_trace(path, scale=scale)
