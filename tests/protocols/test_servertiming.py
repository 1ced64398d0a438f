"""The server's own time from a response header: a plain number of ms, or W3C Server-Timing; what
cannot be read for certain is None (an empty server_ms), never 0 or a guess."""

from __future__ import annotations

import time

import pytest

from loadbench.protocols.servertiming import server_time_ms, split_spec


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("20.412", 20.412),  # the demo's X-Service-Time-Ms
        (" 7 ", 7.0),
        ("0", 0.0),  # a server that says 0 said it: kept
        (".5", 0.5),
        ("1.5e3", 1500.0),
    ],
)
def test_a_plain_number_is_milliseconds(value: str, expected: float) -> None:
    assert server_time_ms(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("app;dur=12.3", 12.3),
        ('queue;dur=1.2, infer;dur=18.7;desc="GPU, batch 4", cache;desc=hit', 19.9),  # summed; no dur: 0
        ("a;DUR=3", 3.0),  # parameter names ignore case
        ('a;dur="4.5"', 4.5),  # a quoted value
        ("a;dur=1;dur=2", 1.0),  # of two durs the first counts
        ("a;dur=1,,b;dur=2,", 3.0),  # empty list elements
        ("a ; dur = 2 , b;dur=3", 5.0),  # whitespace around the separators
    ],
)
def test_server_timing_is_the_sum_of_its_durations(value: str, expected: float) -> None:
    assert server_time_ms(value) == pytest.approx(expected)


def test_a_metric_names_the_entries_that_count() -> None:
    value = 'queue;dur=1.2, infer;dur=18.7;desc="GPU", post;dur=0.4'
    assert server_time_ms(value, "infer") == 18.7
    assert server_time_ms(value, "queue") == 1.2
    assert server_time_ms("db;dur=5, db;dur=7", "db") == 12.0  # a metric reported twice: both
    assert server_time_ms(value, "Infer") is None  # metric names are compared exactly
    assert server_time_ms(value, "absent") is None
    assert server_time_ms("infer;desc=slow", "infer") is None  # there, but no dur
    assert server_time_ms("18.7", "infer") is None  # a plain number names no metric


@pytest.mark.parametrize(
    "value",
    [
        None,  # the header is absent
        "",
        "   ",
        "-5",
        "-0.1",
        "nan",
        "NaN",
        "inf",
        "-inf",
        "Infinity",
        "1e999",  # overflows to inf
        "1_0",  # float() would take it
        "12ms",
        "0x10",
        "twelve",
        "a;dur=-1",
        "a;dur=nan",
        "a;dur=inf",
        "a;dur=1e999",
        "a;dur=abc",
        "a;dur=",  # a dur without its value
        "a;dur",
        "a;dur=1, b;dur=oops",  # one unreadable dur spoils the sum: no partial figure
        "a dur=1",
        "a;dur=1 b;dur=2",
        'a;desc="unterminated, b;dur=1',
        ",,,",
        "desc;only=true",  # a well-formed list without any dur: nothing said
    ],
)
def test_what_cannot_be_read_for_certain_is_none(value: str | None) -> None:
    assert server_time_ms(value) is None


def test_a_hostile_value_is_read_in_linear_time() -> None:
    started = time.perf_counter()
    for value in ("a" * 50_000 + ";" * 20_000, "a;b=c" * 20_000 + " x", 'a;b="' + "\\x" * 40_000):
        assert server_time_ms(value) is None
    assert time.perf_counter() - started < 2.0


def test_the_option_splits_into_header_and_metric() -> None:
    assert split_spec("X-Service-Time-Ms") == ("X-Service-Time-Ms", None)
    assert split_spec("Server-Timing:infer") == ("Server-Timing", "infer")
