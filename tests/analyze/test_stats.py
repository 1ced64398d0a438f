"""Tests of loadbench.analyze.stats: the pure math over request records (no I/O, no Locust)."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from loadbench.analyze import means, stats


def _requests(rows: list[tuple[float, float, int]]) -> pd.DataFrame:
    """(start_unix_s, latency_ms, ok) rows as the columns per_second reads."""
    return pd.DataFrame(
        {
            "start_unix_s": pd.Series([r[0] for r in rows], dtype="float64"),
            "latency_ms": pd.Series([r[1] for r in rows], dtype="float64"),
            "ok": pd.Series([r[2] for r in rows], dtype="int8"),
        }
    )


def _errors(pairs: list[tuple[int, str]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "status": pd.Series([p[0] for p in pairs], dtype="int64"),
            "error": pd.Series([p[1] for p in pairs], dtype="string"),
        }
    )


# --- latency_summary ---------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_latency_summary_equals_numpy_linear_percentiles(seed: int) -> None:
    rng = np.random.default_rng(seed)
    values = rng.lognormal(mean=3.0, sigma=0.8, size=1237)
    summary = stats.latency_summary(values)
    expected = {
        "p50": np.percentile(values, 50, method="linear"),
        "p90": np.percentile(values, 90, method="linear"),
        "p95": np.percentile(values, 95, method="linear"),
        "p99": np.percentile(values, 99, method="linear"),
        "p999": np.percentile(values, 99.9, method="linear"),
        "max": values.max(),
        "mean": values.mean(),
        "min": values.min(),
    }
    assert list(summary) == ["p50", "p90", "p95", "p99", "p999", "max", "mean", "min"]
    for key, value in expected.items():
        assert summary[key] == pytest.approx(value, abs=0.0005), key
        assert summary[key] == round(float(value), 3), key


def test_the_mean_is_exact_so_any_order_and_duckdb_give_the_same() -> None:
    import duckdb

    rng = np.random.default_rng(5)
    con = duckdb.connect()
    for n in (1, 2, 7, 129, 10_000, 200_000):
        # µs values with ties, and a few arbitrary doubles (TPOT, token rates)
        values = np.concatenate([np.round(rng.lognormal(2.5, 1.0, n), 3), rng.lognormal(1, 2, n // 7)])
        mean = means.exact_mean(values)
        assert mean == means.exact_mean(rng.permutation(values))  # np.mean's last bit moves with the order
        assert mean == pytest.approx(float(np.mean(values)), abs=5e-7)  # each value to the ns
        frame = pd.DataFrame({"v": values})  # noqa: F841 (DuckDB reads it by name)
        ((total,),) = con.execute(f"SELECT {means.exact_sum_sql('v')} FROM frame").fetchall()
        assert total == means.exact_sum(values) and means.mean_of(total, values.size) == mean
    # A tie at the rounding of the sum: 0.0005 ms is 500 units, exactly; halves round to even.
    assert means.exact_sum([0.0000025, 0.0000035]) == 2 + 4
    # Values beyond int64's reach in units are summed as Python's integers, still exactly.
    huge = np.array([4e12, 4e12, 1e-3])
    assert means.exact_sum(huge) == 8 * 10**18 + 1000
    assert math.isnan(means.exact_mean([1.0, float("nan")]))
    assert stats.latency_summary(values)["mean"] == round(mean, 3)


def test_latency_summary_interpolates_between_ranks() -> None:
    # 1..5: p50 is the middle value; p90 is 4 + 0.6 * (5 - 4) under linear interpolation.
    summary = stats.latency_summary([5.0, 1.0, 3.0, 2.0, 4.0])
    assert summary["p50"] == 3.0
    assert summary["p90"] == 4.6
    assert summary["p999"] == 4.996
    assert (summary["min"], summary["max"], summary["mean"]) == (1.0, 5.0, 3.0)


def test_latency_summary_rounds_to_microseconds() -> None:
    summary = stats.latency_summary([1.23456789])
    assert set(summary.values()) == {1.235}
    assert all(type(v) is float for v in summary.values())


def test_latency_summary_of_nothing_is_all_none() -> None:
    summary = stats.latency_summary(np.array([], dtype=np.float64))
    assert summary == dict.fromkeys(stats.LATENCY_KEYS)
    assert stats.latency_summary([]) == summary


# --- rate / fraction ---------------------------------------------------------------------------


def test_rate_and_fraction() -> None:
    assert stats.rate(25, 10.0) == 2.5
    assert stats.rate(1, 3.0) == 0.333
    assert stats.rate(5, 0.0) is None
    assert stats.rate(5, -1.0) is None
    assert stats.rate(5, float("nan")) is None
    assert stats.fraction(1, 3) == 0.333333
    assert stats.fraction(0, 0) == 0.0
    assert stats.fraction(4, 4) == 1.0


# --- error_kind --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error", "kind"),
    [
        # An HTTP error status wins over whatever the exception says.
        (503, "HTTPError: 503 Server Error: Service Unavailable for url: /predict", "HTTP 503"),
        (404, "CatchResponseError: invalid response: not found", "HTTP 404"),
        (400, "", "HTTP 400"),
        (429, "LocustBadStatusCode: URL http://127.0.0.1:8000/429: code=429", "HTTP 429"),
        (504, "TimeoutError: timed out", "HTTP 504"),
        # Named transport kinds (changed: these were the exception type, e.g. ConnectionRefusedError).
        (0, "ConnectionRefusedError: [Errno 111] Connection refused", "connection refused"),
        (0, "ConnectError: [Errno 111] Connection refused", "connection refused"),  # httpx
        (0, "ConnectionRefusedError: [Errno 61] Connection refused", "connection refused"),  # macOS
        (0, "ReadTimeout: timed out: after 30 s", "timeout"),
        (0, "TimeoutError: timed out", "timeout"),  # socket.timeout, unwrapped by the recorder
        (0, "ConnectTimeoutError: connect to host timed out", "timeout"),
        (0, "Timeout: 1 second", "timeout"),  # gevent.Timeout
        (0, "timeout: timed out", "timeout"),  # socket.timeout before Python 3.10
        (0, "OSError: [Errno 110] Connection timed out", "timeout"),
        (0, "SSLError: The read operation timed out", "timeout"),  # a timeout first, TLS or not
        # Recorded before the recorder unwrapped geventhttpclient's RetriesExceeded.
        (0, "RetriesExceeded: URL http://h/p: 0, original=timed out", "timeout"),
        (0, "ConnectionResetError: [Errno 104] Connection reset by peer", "connection reset"),
        (
            0,
            "HTTPConnectionClosed: connection closed. (ConnectionResetError: [Errno 104] Connection reset by peer)",
            "connection reset",
        ),
        (0, "ConnectionAbortedError: [Errno 103] Software caused connection abort", "connection reset"),
        (0, "HTTPConnectionClosed: connection closed.", "connection closed"),
        (200, "HTTPParseError: Incomplete response.", "connection closed"),  # a truncated body
        (0, "HTTPParseError: connection closed before end of the headers", "connection closed"),
        (0, "RemoteDisconnected: Remote end closed connection without response", "connection closed"),
        (0, "BrokenPipeError: [Errno 32] Broken pipe", "connection closed"),
        (200, "IncompleteRead: IncompleteRead(10 bytes read, 990 more expected)", "connection closed"),
        (0, "RetriesExceeded: URL http://h/loop: Redirection limit reached (30)", "too many redirects"),
        (0, "TooManyRedirects: Exceeded maximum allowed redirects.", "too many redirects"),
        (
            0,
            "SSLCertVerificationError: [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: "
            "self-signed certificate (_ssl.c:1006)",
            "TLS error",
        ),
        (0, "SSLError: [SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1006)", "TLS error"),
        (0, "SSLEOFError: EOF occurred in violation of protocol (_ssl.c:2427)", "TLS error"),
        (0, "gaierror: [Errno -2] Name or service not known", "DNS error"),
        (0, "gaierror: [Errno -3] Temporary failure in name resolution", "DNS error"),
        (0, "ConnectError: [Errno -2] Name or service not known", "DNS error"),  # httpx
        (0, "HTTPParseError: ('Invalid character in chunk size', 12)", "malformed HTTP response"),
        (0, "BadStatusLine: garbage", "malformed HTTP response"),
        # Changed: a JSON decoding failure was its type, JSONDecodeError.
        (200, "JSONDecodeError: Expecting value: line 1 column 1 (char 0)", "invalid JSON"),
        (200, "json.decoder.JSONDecodeError: Expecting value", "invalid JSON"),
        # Without one: the exception type.
        (0, "LocustError: something else", "LocustError"),
        # A scenario's own response check: its message is the kind...
        (200, "CatchResponseError: invalid response: no outputs", "invalid response: no outputs"),
        (200, "CatchResponseError: ", "response check failed"),
        # ... and a body that is not JSON is invalid JSON, whatever its size (check_json's words).
        (200, "CatchResponseError: invalid response: body is not JSON (15 bytes)", "invalid JSON"),
        (200, "CatchResponseError: invalid response: body is not JSON (2,048 bytes)", "invalid JSON"),
        # A check's message is never taken for a transport failure.
        (
            200,
            "CatchResponseError: invalid response: timed out waiting for tokens",
            "invalid response: timed out waiting for tokens",
        ),
        # No "Type: message" shape: a named kind if one matches (changed: "Timeout" was kept as is),
        # else the text itself, or a placeholder.
        (0, "Timeout", "timeout"),
        (0, "something odd", "something odd"),
        (0, "", "unknown error"),
        (299, "RuntimeError: boom", "RuntimeError"),
        # A 3xx that ended a request is an answer, not followed (changed: below 400 was no HTTP kind).
        (302, "RedirectError: HTTP 302 redirect to /v2 (pass --follow-redirects)", "HTTP 302"),
        (304, "CatchResponseError: invalid response: body is not JSON (0 bytes)", "HTTP 304"),
        # A check that needed a body over --max-body, whatever its size.
        (
            200,
            "CatchResponseError: body over --max-body: 200,000,000 bytes, more than the 8 MiB",
            "body over --max-body",
        ),
    ],
)
def test_error_kind(status: int, error: str, kind: str) -> None:
    assert stats.error_kind(status, error) == kind


def test_error_kind_names_only_known_kinds_for_transport_failures() -> None:
    named = {kind for kind, _ in stats.ERROR_KINDS}
    assert named == {
        "timeout",
        "DNS error",
        "connection refused",
        "connection reset",
        "too many redirects",
        "TLS error",
        "connection closed",
        "malformed HTTP response",
        "invalid JSON",
    }


def test_error_kind_truncates_long_messages() -> None:
    assert stats.error_kind(0, "x" * 200) == "x" * 80
    assert stats.error_kind(200, "CatchResponseError: " + "y" * 200) == "y" * 80


# --- failure_text ------------------------------------------------------------------------------

# Stand-ins with the names and shapes of geventhttpclient's exceptions (this process never
# imports gevent).


class RetriesExceeded(Exception):
    def __init__(self, url: str, *args: object, original: BaseException | None = None) -> None:
        super().__init__(url, *args)
        self.original = original

    def __str__(self) -> str:
        return f"URL {self.args[0]}: 0, original={self.original}"


class HTTPParseError(Exception):
    pass


class HTTPConnectionClosed(HTTPParseError):
    pass


def _raised_while_handling(outer: BaseException, inner: BaseException) -> BaseException:
    try:
        try:
            raise inner
        except BaseException:
            raise outer  # noqa: B904 - the implicit context is the point
    except BaseException as exc:
        return exc


def test_failure_text_unwraps_retries_exceeded_to_the_real_failure() -> None:
    timeout = RetriesExceeded("http://h/slow", 0, original=TimeoutError("timed out"))
    assert stats.failure_text(timeout) == "TimeoutError: timed out"
    refused = RetriesExceeded("http://h/", 0, original=ConnectionRefusedError(111, "Connection refused"))
    assert stats.failure_text(refused) == "ConnectionRefusedError: [Errno 111] Connection refused"
    # Nested wrappers, boundedly; a wrapper without an original is kept as it is.
    nested = RetriesExceeded(
        "http://h/", 0, original=RetriesExceeded("http://h/", 0, original=TimeoutError("t"))
    )
    assert stats.failure_text(nested) == "TimeoutError: t"
    loop = RetriesExceeded("http://h/loop", "Redirection limit reached (30)")
    assert stats.failure_text(loop).startswith("RetriesExceeded: URL http://h/loop")
    assert stats.error_kind(0, stats.failure_text(timeout)) == "timeout"


def test_failure_text_keeps_the_reset_behind_a_closed_connection() -> None:
    reset = _raised_while_handling(
        HTTPConnectionClosed("connection closed."), ConnectionResetError(104, "Connection reset by peer")
    )
    text = stats.failure_text(reset)
    assert text == (
        "HTTPConnectionClosed: connection closed. (ConnectionResetError: [Errno 104] Connection reset by peer)"
    )
    assert stats.error_kind(0, text) == "connection reset"
    closed = HTTPConnectionClosed("connection closed.")
    assert stats.failure_text(closed) == "HTTPConnectionClosed: connection closed."
    assert stats.error_kind(0, stats.failure_text(closed)) == "connection closed"
    # Only a connection error as the context is worth adding: not whatever else was being handled.
    unrelated = _raised_while_handling(HTTPParseError("Incomplete response."), KeyError("x"))
    assert stats.failure_text(unrelated) == "HTTPParseError: Incomplete response."


def test_failure_text_of_plain_exceptions_is_type_and_message() -> None:
    assert stats.failure_text(ConnectionResetError(104, "Connection reset by peer")) == (
        "ConnectionResetError: [Errno 104] Connection reset by peer"
    )
    assert stats.failure_text(ValueError()) == "ValueError: "


# --- error_table -------------------------------------------------------------------------------


def test_error_table_groups_counts_shares_and_examples() -> None:
    errors = _errors(
        [
            (503, "HTTPError: 503 Server Error: busy"),
            (503, "HTTPError: 503 Server Error: busy"),
            (503, "HTTPError: 503 Server Error: overloaded"),
            (0, "ConnectionResetError: [Errno 104] Connection reset by peer"),
            (0, "ConnectionResetError: [Errno 104] Connection reset by peer"),
            (0, "ConnectionResetError: [Errno 104] reset again"),
            (0, "ConnectionResetError: [Errno 104] reset again"),
            (0, "ConnectionResetError: [Errno 104] reset again"),
            (200, "CatchResponseError: invalid response: no outputs"),
        ]
    )
    table = stats.error_table(errors, total=100)
    assert table == [
        {
            "kind": "connection reset",  # changed: was the type, ConnectionResetError
            "count": 5,
            "share": 0.05,
            "example": "ConnectionResetError: [Errno 104] reset again",
        },
        {"kind": "HTTP 503", "count": 3, "share": 0.03, "example": "HTTPError: 503 Server Error: busy"},
        {
            "kind": "invalid response: no outputs",
            "count": 1,
            "share": 0.01,
            "example": "CatchResponseError: invalid response: no outputs",
        },
    ]


def test_error_table_ties_are_ordered_by_kind() -> None:
    errors = _errors([(502, "HTTPError: b"), (0, "ZeroDivisionError: z"), (0, "AError: a"), (500, "e: x")])
    kinds = [row["kind"] for row in stats.error_table(errors, total=4)]
    assert kinds == sorted(kinds) == ["AError", "HTTP 500", "HTTP 502", "ZeroDivisionError"]


def test_error_table_keeps_only_the_top_kinds() -> None:
    pairs = [(500 + i, f"HTTPError: {i}") for i in range(15) for _ in range(i + 1)]
    table = stats.error_table(_errors(pairs), total=len(pairs), top=3)
    assert [(r["kind"], r["count"]) for r in table] == [("HTTP 514", 15), ("HTTP 513", 14), ("HTTP 512", 13)]
    assert len(stats.error_table(_errors(pairs), total=len(pairs))) == 10


def test_error_table_of_no_errors_is_empty() -> None:
    assert stats.error_table(_errors([]), total=10) == []


def _answers(rows: list[tuple[int, str, str, str]]) -> pd.DataFrame:
    """Failed records as read_requests gives them: status, error, server_message, retry_after."""
    columns = ("status", "error", "server_message", "retry_after")
    frame = pd.DataFrame({c: [r[i] for r in rows] for i, c in enumerate(columns)})
    return frame.astype({"status": "int64", "error": "category", "server_message": "category"})


def test_error_table_rows_are_kinds_and_what_the_server_said() -> None:
    code = "LocustBadStatusCode: URL http://h/infer: code="
    features = "X has 4 features, but StandardScaler is expecting 64 features as input."
    errors = _answers(
        [
            *[(400, f"{code}400", features, "")] * 3,
            (400, f"{code}400", "unknown model", ""),
            (400, f"{code}400", "", ""),
            *[(429, f"{code}429", "slow down", "1")] * 2,
            (429, f"{code}429", "slow down", "2"),
            (429, f"{code}429", "slow down", ""),
            (0, "ConnectionResetError: reset", "", ""),
        ]
    )
    table = stats.error_table(errors, total=20)
    # Kinds by their count; a kind's rows by theirs (ties: messages first).
    assert [(r["kind"], r.get("server_message"), r["count"]) for r in table] == [
        ("HTTP 400", features, 3),
        ("HTTP 400", "unknown model", 1),
        ("HTTP 400", None, 1),
        ("HTTP 429", "slow down", 4),
        ("connection reset", None, 1),
    ]
    # Retry-After: the most frequent value among the answers that had one.
    assert table[3] == {
        "kind": "HTTP 429",
        "count": 4,
        "share": 0.2,
        "example": f"{code}429",
        "server_message": "slow down",
        "retry_after": "1",
    }
    assert table[0] == {
        "kind": "HTTP 400",
        "count": 3,
        "share": 0.15,
        "example": f"{code}400",
        "server_message": features,
    }
    assert set(table[2]) == {"kind", "count", "share", "example"}  # the server said nothing
    # Without the columns (records from before them) the rows are the kinds, as they were.
    old = stats.error_table(errors[["status", "error"]], total=20)
    assert [(r["kind"], r["count"]) for r in old] == [
        ("HTTP 400", 5),
        ("HTTP 429", 4),
        ("connection reset", 1),
    ]
    assert all(set(r) == {"kind", "count", "share", "example"} for r in old)


# --- per_second --------------------------------------------------------------------------------


def test_per_second_buckets_by_start_second_and_fills_gaps() -> None:
    start = 1000.0
    requests = _requests(
        [
            (999.5, 1.0, 1),  # before the run: dropped
            (1000.1, 10.0, 1),
            (1000.9, 20.0, 1),
            (1000.95, 500.0, 0),  # an error: counted, not in the percentiles
            (1001.99, 7000.0, 1),  # started in second 1, ended seconds later: still second 1
            (1003.0, 30.0, 0),  # second 3: only an error
            (1004.5, 40.0, 1),
            (1005.0, 1.0, 1),  # at the end of the series: dropped
        ]
    )
    series = stats.per_second(requests, start, warmup_end_unix_s=1002.0, seconds=5)
    assert list(series.columns) == [
        "second",
        "start_unix_s",
        "requests",
        "ok",
        "errors",
        "p50_ms",
        "p99_ms",
        "in_warmup",
    ]
    assert series["second"].tolist() == [0, 1, 2, 3, 4]
    assert series["start_unix_s"].tolist() == [1000.0, 1001.0, 1002.0, 1003.0, 1004.0]
    assert series["requests"].tolist() == [3, 1, 0, 1, 1]
    assert series["ok"].tolist() == [2, 1, 0, 0, 1]
    assert series["errors"].tolist() == [1, 0, 0, 1, 0]
    p50, p99 = series["p50_ms"].tolist(), series["p99_ms"].tolist()
    assert p50[0] == 15.0
    assert p99[0] == round(float(np.percentile([10.0, 20.0], 99)), 3) == 19.9
    assert (p50[1], p99[1]) == (7000.0, 7000.0)
    assert (p50[4], p99[4]) == (40.0, 40.0)
    # No successes in seconds 2 and 3: NaN, not 0.
    assert all(math.isnan(v) for v in (p50[2], p99[2], p50[3], p99[3]))
    assert series["in_warmup"].tolist() == [1, 1, 0, 0, 0]
    assert series["requests"].dtype == np.int64


def test_per_second_percentiles_equal_numpy() -> None:
    rng = np.random.default_rng(7)
    lat = rng.exponential(20.0, size=300)
    requests = _requests([(100.0 + (i % 3) + 0.01, float(v), 1) for i, v in enumerate(lat)])
    series = stats.per_second(requests, 100.0, 100.0, 3)
    for second in range(3):
        values = lat[[i for i in range(300) if i % 3 == second]]
        assert series["p50_ms"][second] == round(float(np.percentile(values, 50)), 3)
        assert series["p99_ms"][second] == round(float(np.percentile(values, 99)), 3)


def test_per_second_with_no_requests_or_no_seconds() -> None:
    empty = _requests([])
    series = stats.per_second(empty, 1000.0, 1001.0, 3)
    assert series["requests"].tolist() == [0, 0, 0]
    assert series["in_warmup"].tolist() == [1, 0, 0]
    assert series["p50_ms"].isna().all()
    assert stats.per_second(_requests([(1000.5, 1.0, 1)]), 1000.0, 1000.0, 0).empty
    assert stats.per_second(_requests([(1000.5, 1.0, 1)]), 1000.0, 1000.0, -3).empty


def test_per_second_in_warmup_does_not_depend_on_sub_millisecond_start() -> None:
    start = 1000.0004  # time.time() has sub-millisecond digits
    requests = _requests([(start + 0.1, 1.0, 1), (start + 2.1, 1.0, 1)])
    no_warmup = stats.per_second(requests, start, warmup_end_unix_s=start, seconds=3)
    assert no_warmup["in_warmup"].tolist() == [0, 0, 0]
    two_s = stats.per_second(requests, start, warmup_end_unix_s=start + 2.0, seconds=3)
    assert two_s["in_warmup"].tolist() == [1, 1, 0]


# --- users_per_second --------------------------------------------------------------------------


def test_users_per_second_takes_the_last_sample_in_or_before_each_second() -> None:
    users = pd.DataFrame(
        {
            "unix_s": [1001.2, 1000.5, 1001.7, 1004.0],  # out of order on purpose
            "users": [3, 1, 4, 2],
        }
    )
    result = stats.users_per_second(users, 1000.0, 6)
    # second 0: 1000.5 -> 1; second 1: 1001.7 -> 4; 2, 3: carried; 4: 1004.0 -> 2; 5: carried.
    assert result.tolist() == [1.0, 4.0, 4.0, 4.0, 2.0, 2.0]


def test_users_per_second_is_nan_before_the_first_sample() -> None:
    users = pd.DataFrame({"unix_s": [1002.5], "users": [5]})
    result = stats.users_per_second(users, 1000.0, 4)
    assert np.isnan(result[:2]).all()
    assert result[2:].tolist() == [5.0, 5.0]


def test_users_per_second_without_samples() -> None:
    empty = pd.DataFrame({"unix_s": pd.Series([], dtype="float64"), "users": pd.Series([], dtype="int64")})
    result = stats.users_per_second(empty, 1000.0, 3)
    assert result.shape == (3,)
    assert np.isnan(result).all()
    assert stats.users_per_second(empty, 1000.0, 0).shape == (0,)


# --- clean -------------------------------------------------------------------------------------


def test_clean_makes_values_json_safe() -> None:
    value = {
        "nan": float("nan"),
        "inf": float("inf"),
        "ninf": -math.inf,
        "np_nan": np.float64("nan"),
        "np_float": np.float32(1.5),
        "np_int": np.int64(7),
        "np_bool": np.bool_(True),
        "nested": [np.float64(2.5), (np.int8(1), float("nan")), {"deep": np.float64("inf")}],
        "keep": ["text", None, 3, 0.25],
    }
    cleaned = stats.clean(value)
    assert cleaned == {
        "nan": None,
        "inf": None,
        "ninf": None,
        "np_nan": None,
        "np_float": 1.5,
        "np_int": 7,
        "np_bool": True,
        "nested": [2.5, [1, None], {"deep": None}],
        "keep": ["text", None, 3, 0.25],
    }
    assert type(cleaned["np_int"]) is int
    assert type(cleaned["np_float"]) is float
    assert type(cleaned["nested"][0]) is float
    # Strict JSON (no NaN / Infinity tokens) now serializes.
    json.dumps(cleaned, allow_nan=False)


def test_error_table_counts_a_kinds_rarer_messages_together() -> None:
    # A server that puts a request id in every message: the kind's top messages, then the rest
    # in one row, so that the other kinds keep their places in the table.
    code = "LocustBadStatusCode: code=503"
    rows = (
        [(503, code, "busy", "5")] * 5
        + [(503, code, "warming up", "")] * 4
        + [(503, code, "queue full", "")] * 3
    )
    rows += [(503, code, f"request {i} failed", "9") for i in range(20)]
    rows += [(0, "ConnectionResetError: reset", "", "")] * 2
    table = stats.error_table(_answers(rows), total=100, top=2)
    assert [(r["kind"], r.get("server_message"), r.get("other_messages"), r["count"]) for r in table] == [
        ("HTTP 503", None, 20, 20),
        ("HTTP 503", "busy", None, 5),
        ("HTTP 503", "warming up", None, 4),
        ("HTTP 503", "queue full", None, 3),
        ("connection reset", None, None, 2),
    ]
    assert table[0]["retry_after"] == "9" and table[0]["example"] == code and table[0]["share"] == 0.2
    assert stats.MAX_MESSAGES_PER_KIND == 3


def test_percentiles_from_order_statistics_are_numpys_bit_for_bit() -> None:
    # What the store's analysis rests on (`loadbench.analyze.bounded`): numpy's percentile from
    # the two values at `percentile_points`, never the values in memory. Ties and µs values
    # (midpoints that round either way at the µs) included.
    rng = np.random.default_rng(20)
    percents = [*stats.PERCENTILES.values(), 12.5, 33.3, 100.0, 0.0]
    for trial in range(3000):
        n = int(rng.integers(1, 20)) if trial % 3 == 0 else int(rng.integers(20, 3000))
        values = np.round(rng.lognormal(2.0, 1.0, n), 3)
        if trial % 5 == 0:
            values = np.round(10.0 + rng.integers(0, 50, n) / 1000.0, 3)
        ordered = np.sort(values)
        lower, upper, gamma = stats.percentile_points(n, percents)
        got = stats.interpolate(ordered[lower], ordered[upper], gamma)
        assert np.array_equal(got, np.percentile(values, percents)), (trial, n)
        # One count per group, one percent: as the per-second series asks.
        lower, upper, gamma = stats.percentile_points(np.array([n, n]), 99.0)
        assert stats.interpolate(ordered[lower], ordered[upper], gamma)[0] == np.percentile(values, 99.0)
