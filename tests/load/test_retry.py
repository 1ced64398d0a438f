"""Retry policy, backoff, Retry-After and budget (loadbench.load.retry)."""

from __future__ import annotations

import random

import pytest

from loadbench.errors import UsageError
from loadbench.load.retry import (
    RetryBudget,
    RetryPolicy,
    parse_backoff,
    parse_budget,
    parse_retry_on,
    retry_after_seconds,
    retry_count,
)


@pytest.mark.parametrize(
    ("on", "status", "timed_out", "retried"),
    [
        (("5xx",), 503, False, True),
        (("5xx",), 500, False, True),
        (("5xx",), 429, False, False),
        (("429",), 429, False, True),
        (("503",), 503, False, True),
        (("503",), 502, False, False),
        (("connect",), 0, False, True),
        (("connect",), 0, True, False),
        (("timeout",), 0, True, True),
        (("timeout",), 0, False, False),
        (("5xx", "429", "connect", "timeout"), 404, False, False),
        (("5xx", "429", "connect", "timeout"), 400, False, False),
    ],
)
def test_which_failures_are_retried(on: tuple[str, ...], status: int, timed_out: bool, retried: bool) -> None:
    assert RetryPolicy(retries=1, on=on).retryable(status, timed_out) is retried


def test_backoff_is_exponential_with_full_jitter_between_min_and_the_capped_doubling() -> None:
    policy = RetryPolicy(retries=5, backoff_min_s=0.05, backoff_max_s=0.3)
    rng = random.Random(3)
    assert policy.delay_s(1, rng) == 0.05  # the first retry waits the least exactly
    for retry, cap in ((2, 0.1), (3, 0.2), (4, 0.3), (5, 0.3)):
        waits = [policy.delay_s(retry, rng) for _ in range(200)]
        assert all(w is not None and 0.05 <= w <= cap for w in waits)
        assert max(w for w in waits if w is not None) > 0.05 + 0.8 * (cap - 0.05)  # spread, not fixed


def test_retry_after_is_a_floor_and_beyond_the_greatest_wait_no_retry() -> None:
    policy = RetryPolicy(retries=3, backoff_min_s=0.05, backoff_max_s=2.0)
    rng = random.Random(0)
    assert policy.delay_s(1, rng, retry_after_s=1.0) == 1.0
    assert policy.delay_s(1, rng, retry_after_s=0.0) == 0.05
    assert policy.delay_s(1, rng, retry_after_s=5.0) is None


def test_retry_after_reads_seconds_and_http_dates() -> None:
    assert retry_after_seconds("3") == 3.0
    assert retry_after_seconds(None) is None and retry_after_seconds("soon") is None
    now = 1_700_000_000.0  # Tue, 14 Nov 2023 22:13:20 GMT
    assert retry_after_seconds("Tue, 14 Nov 2023 22:13:25 GMT", now=now) == pytest.approx(5.0)
    assert retry_after_seconds("Tue, 14 Nov 2023 22:13:00 GMT", now=now) == 0.0


def test_the_budget_allows_retries_under_its_share_of_requests() -> None:
    budget = RetryBudget(0.1)
    allowed = 0
    for _ in range(100):
        budget.request()
        allowed += budget.take()  # every request fails and asks for a retry
    # A retry is sent while retries so far < 10 % of requests so far: at requests 1, 11, 21, ...
    assert allowed == 10 and budget.retries == 10 and budget.denied == 90
    unbounded = RetryBudget(None)
    unbounded.request()
    assert all(unbounded.take() for _ in range(5))
    none = RetryBudget(0.0)
    none.request()
    assert not none.take()


def test_settings_as_meta_json_records_them() -> None:
    policy = RetryPolicy(2, ("5xx", "connect"), 0.05, 2.0, 0.1)
    assert policy.settings() == {
        "max": 2,
        "on": ["5xx", "connect"],
        "backoff_ms": [50.0, 2000.0],
        "budget": 0.1,
    }


def test_option_values_are_parsed_and_bad_ones_are_one_line() -> None:
    assert parse_retry_on("5xx, 429,CONNECT,timeout,5xx") == ("5xx", "429", "connect", "timeout")
    assert parse_backoff("50ms..2s") == (0.05, 2.0)
    assert parse_backoff("100ms") == (0.1, 0.1)
    assert parse_budget("10%") == 0.1 and parse_budget("0.25") == 0.25
    assert retry_count("3") == 3
    for call, text, message in (
        (parse_retry_on, "5xx,200", "--retry-on '200': use 5xx, connect, timeout or an HTTP error status"),
        (parse_retry_on, "reset", "--retry-on 'reset'"),
        (parse_retry_on, " , ", "--retry-on is empty"),
        (parse_backoff, "2s..50ms", "the greatest wait is below the least"),
        (parse_backoff, "fast..slow", "use MIN..MAX"),
        (parse_budget, "ten", "use a share of requests"),
        (parse_budget, "-5%", "use 0% to 1000%"),
        (retry_count, "11", "11 retries: use 0 to 10"),
        (retry_count, "two", "not a whole number"),
    ):
        with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(".", r"\.")):
            call(text)
