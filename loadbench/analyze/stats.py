"""Pure math over request records: percentiles, rates, error kinds, per-second series. No I/O.

Every percentile here is exact: numpy's default (linear interpolation between the two
nearest ranks) over the raw per-request latencies, never a histogram or a rounded value.
"""

from __future__ import annotations

import math
import re
from typing import Any, NotRequired, TypedDict

import numpy as np
import numpy.typing as npt
import pandas as pd

from loadbench.analyze import means
from loadbench.protocols.responses import BODY_OVER_LIMIT

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

# Summary key -> percentile (0..100). Keys as named in summary.json.
PERCENTILES: dict[str, float] = {"p50": 50.0, "p90": 90.0, "p95": 95.0, "p99": 99.0, "p999": 99.9}
LATENCY_KEYS = (*PERCENTILES, "max", "mean", "min")


def _round(value: float, digits: int = 3) -> float:
    return round(float(value), digits)


class LatencySummary(TypedDict):
    """A latency-like distribution in ms (µs resolution); every value None for no values."""

    p50: float | None
    p90: float | None
    p95: float | None
    p99: float | None
    p999: float | None
    max: float | None
    mean: float | None
    min: float | None


def latency_summary(latency_ms: npt.ArrayLike) -> LatencySummary:
    """p50/p90/p95/p99/p999/max/mean/min in ms (µs resolution); all None for no values."""
    values = np.asarray(latency_ms, dtype=np.float64)
    if values.size == 0:
        return {"p50": None, "p90": None, "p95": None, "p99": None, "p999": None,
                "max": None, "mean": None, "min": None}  # fmt: skip
    points = np.percentile(values, list(PERCENTILES.values()))
    return _summary(points, values.max(), means.exact_mean(values), values.min())


def _summary(points: npt.ArrayLike, maximum: float, mean: float, minimum: float) -> LatencySummary:
    """A `LatencySummary` of the `PERCENTILES` ``points`` and the rest, rounded to the µs."""
    p50, p90, p95, p99, p999 = (_round(q) for q in np.asarray(points, dtype=np.float64))
    return {
        "p50": p50,
        "p90": p90,
        "p95": p95,
        "p99": p99,
        "p999": p999,
        "max": _round(maximum),
        "mean": _round(mean),
        "min": _round(minimum),
    }


def percentile_points(n: int | IntArray, percents: npt.ArrayLike) -> tuple[IntArray, IntArray, FloatArray]:
    """Where numpy's default percentile of ``n`` sorted values lies: for each percent, the positions
    of the two values it interpolates between and the weight of the second.

    For figures computed from a sorted stream instead of an array in memory
    (`loadbench.analyze.store`): `interpolate` of the values at these positions gives what
    ``np.percentile(values, percents)`` gives, bit for bit (numpy's ``linear`` method: the virtual
    index ``(n - 1) * q``, clamped to the last value).
    """
    q = np.true_divide(np.asarray(percents, dtype=np.float64), 100)
    count = np.asarray(n, dtype=np.int64)  # one count, or one per group (with one percent)
    virtual = (count - 1) * q
    lower = np.floor(virtual)
    gamma = virtual - lower
    lower_i = lower.astype(np.int64)
    last = virtual >= count - 1
    lower_at = np.asarray(np.where(last, count - 1, lower_i), dtype=np.int64)
    upper_at = np.asarray(np.where(last, count - 1, lower_i + 1), dtype=np.int64)
    return lower_at, upper_at, np.asarray(gamma, dtype=np.float64)


def interpolate(lower: npt.ArrayLike, upper: npt.ArrayLike, gamma: npt.ArrayLike) -> FloatArray:
    """numpy's linear interpolation between two order statistics (as ``np.percentile`` does it)."""
    a = np.asarray(lower, dtype=np.float64)
    b = np.asarray(upper, dtype=np.float64)
    t = np.asarray(gamma, dtype=np.float64)
    diff = b - a
    out = a + diff * t
    np.subtract(b, diff * (1 - t), out=out, where=t >= 0.5)
    return out


CURVE_POINTS = 500  # the report's percentile curve: percentiles evenly spread on its 1/(1-q) axis


def curve_x(n: int) -> FloatArray:
    """Where the report's percentile curve of ``n`` values is drawn: ``x`` on its 1/(1-q) axis
    (percentile ``1 - 1/x``), `CURVE_POINTS` of them from 1 to ``n``. Here, beside the summary's
    percentiles, because a run of any length ranks both in one sorted pass
    (`loadbench.analyze.bounded`)."""
    if n <= 1:
        return np.array([1.0])
    return np.unique(np.concatenate([np.geomspace(1.0, float(n), CURVE_POINTS), [float(n)]]))


def summary_from_ranks(n: int, value_at: Any, total: int) -> LatencySummary:
    """`latency_summary` of ``n`` values known by rank (``value_at(positions) -> values``, sorted
    ascending) and their `loadbench.analyze.means.exact_sum` ``total``: the same figures without
    the values in memory."""
    if n == 0:
        return latency_summary([])
    _, _, gamma = percentile_points(n, list(PERCENTILES.values()))
    values = value_at(summary_positions(n))
    k = len(PERCENTILES)
    mean = means.mean_of(int(total), n)
    return _summary(interpolate(values[:k], values[k : 2 * k], gamma), values[-1], mean, values[-2])


def summary_positions(n: int) -> IntArray:
    """The positions among ``n`` sorted values (``n`` > 0) that `summary_from_ranks` reads: each
    percentile's two, then the first and the last."""
    lower, upper, _ = percentile_points(n, list(PERCENTILES.values()))
    return np.concatenate([lower, upper, [0, n - 1]]).astype(np.int64)


def latency_figures(latency_ms: npt.ArrayLike, keys: tuple[str, ...]) -> dict[str, float | None]:
    """Some of `latency_summary`'s figures (``("p50", "p99", "max")``), each None for no values."""
    summary = latency_summary(latency_ms)
    return {key: summary[key] for key in keys}  # type: ignore[literal-required]


def ratio(slow: float | None, fast: float | None) -> float | None:
    """``slow / fast`` (a speedup: how many times faster ``fast`` is), None when either is missing
    or ``fast`` is 0."""
    return _round(slow / fast, 3) if slow is not None and fast else None


def rate(count: int, duration_s: float) -> float | None:
    """Events per second over a duration; None when the duration is not positive."""
    if not duration_s > 0:
        return None
    return _round(count / duration_s, 3)


def fraction(part: int, whole: int) -> float:
    """part / whole, 0.0 when whole is 0 (no requests means no errors)."""
    return _round(part / whole, 6) if whole else 0.0


# Named kinds of transport failures, tried in order on the recorded ``Type: message`` text
# (first match wins). Each pattern covers the wording of Python's socket errors, the Locust
# fast client (geventhttpclient), requests/urllib3 and httpx (errno numbers: Linux's).
ERROR_KINDS: tuple[tuple[str, re.Pattern[str]], ...] = (
    # socket.timeout is TimeoutError; gevent.Timeout, ReadTimeout, ConnectTimeout(Error), ...
    ("timeout", re.compile(r"^[\w.]*timeout\w*(:|$)|\btimed out\b|\[Errno 110\]", re.IGNORECASE)),
    (
        "DNS error",
        re.compile(
            r"gaierror|Name or service not known|nodename nor servname|name resolution"
            r"|No address associated with hostname|getaddrinfo|\[Errno -[235]\]",
            re.IGNORECASE,
        ),
    ),
    (
        "connection refused",
        re.compile(r"ConnectionRefused|Connection refused|\[Errno 111\]", re.IGNORECASE),
    ),
    (
        "connection reset",
        re.compile(r"ConnectionReset|Connection reset|ConnectionAborted|\[Errno (104|103)\]", re.IGNORECASE),
    ),
    (
        "too many redirects",
        re.compile(
            r"Redirection limit reached|TooManyRedirects|too many redirects|redirect loop", re.IGNORECASE
        ),
    ),
    (
        "TLS error",
        re.compile(
            r"^[\w.]*(SSL|TLS|Certificate)\w*:|CERTIFICATE_VERIFY_FAILED|certificate verify failed|\[SSL"
        ),
    ),
    # The server closed the connection before a complete answer: no response at all, or a
    # body shorter than its Content-Length or chunked framing promised.
    (
        "connection closed",
        re.compile(
            r"ConnectionClosed|connection closed|Incomplete response|IncompleteRead|RemoteDisconnected"
            r"|EmptyResponse|Empty response|BrokenPipe|Broken pipe|\[Errno 32\]|Server ?Disconnected"
            r"|peer closed connection|ContentLengthError|ChunkedEncodingError",
            re.IGNORECASE,
        ),
    ),
    (
        "malformed HTTP response",
        re.compile(
            r"HTTPParseError|BadStatusLine|HTTPProtocolViolation|LineTooLong|InvalidChunkLength"
            r"|RemoteProtocolError|LocalProtocolError|^ProtocolError:"
        ),
    ),
    ("invalid JSON", re.compile(r"^[\w.]*JSONDecodeError:")),
)
_CHECK_NOT_JSON = re.compile(r"\bnot (valid )?JSON\b|\binvalid JSON\b|JSONDecodeError", re.IGNORECASE)


def error_kind(status: int, error: str) -> str:
    """Name the kind of a failure, for grouping (the rules are listed in docs/metrics.md, Errors).

    An HTTP error status wins (``HTTP 503``). A scenario's own check of a response (Locust's
    ``CatchResponseError``) is named by its message (``invalid response: ...``), or
    ``invalid JSON`` when it says the body is not JSON. Transport failures get a name from
    `ERROR_KINDS` (``timeout``, ``connection refused``, ...). Anything else: the exception type.
    """
    if status >= 300:  # a 3xx too: an answer loadbench did not follow (docs/metrics.md "Redirects")
        return f"HTTP {status}"
    type_name, sep, message = error.partition(": ")
    if sep and type_name == "CatchResponseError":
        if _CHECK_NOT_JSON.search(message):
            return "invalid JSON"
        if message.startswith(BODY_OVER_LIMIT):
            return BODY_OVER_LIMIT
        return message[:80] or "response check failed"
    for kind, pattern in ERROR_KINDS:
        if pattern.search(error):
            return kind
    if not sep:
        return error[:80] or "unknown error"
    return type_name


def failure_text(exception: BaseException) -> str:
    """``Type: message`` of a failed request's exception, naming what really happened.

    HTTP clients wrap failures: geventhttpclient's ``RetriesExceeded`` keeps the real one in
    ``original`` (``URL http://...: 0, original=timed out`` becomes ``TimeoutError: timed
    out``), and it raises ``HTTPConnectionClosed`` while handling a ``ConnectionResetError``,
    which is added in parentheses (so a reset is not mistaken for a clean close). One
    physical line is up to the caller (`loadbench.record.records.one_line`).
    """
    for _ in range(5):  # unwrap, boundedly
        original = getattr(exception, "original", None)
        if not isinstance(original, BaseException) or original is exception:
            break
        exception = original
    text = f"{type(exception).__name__}: {exception}"
    if not isinstance(exception, OSError):
        cause = exception.__cause__ or exception.__context__
        if isinstance(cause, ConnectionError):
            text += f" ({type(cause).__name__}: {cause})"
    return text


class ErrorRow(TypedDict):
    """One entry of ``summary["errors"]``: a kind of failure, and what the server said, if anything."""

    kind: str
    count: int
    share: float
    example: str
    # Only when the server explained its refusal (requests.csv ``server_message``).
    server_message: NotRequired[str]
    # Only on a kind's row that counts its less frequent messages together: how many there were.
    other_messages: NotRequired[int]
    # Only when some of these answers carried a Retry-After header: its most frequent value.
    retry_after: NotRequired[str]


# The record columns an error row is grouped by; the last two are optional (older records).
ERROR_COLUMNS = ("status", "error", "server_message", "retry_after")
# Server messages listed apart per kind; a kind's other messages share one row (a server that
# puts a request id in each message must not push every other kind out of the table).
MAX_MESSAGES_PER_KIND = 3


def error_table(errors: pd.DataFrame, total: int, top: int = 10) -> list[ErrorRow]:
    """The ``top`` most frequent kinds of failure, each split by what the server said.

    ``errors`` holds the failed records' `ERROR_COLUMNS` (``server_message`` and ``retry_after``
    may be absent). A kind's rows: one per server message (``HTTP 400`` "unknown model" and
    ``HTTP 400`` "expecting 64 features"), its `MAX_MESSAGES_PER_KIND` most frequent; one for the
    rest of its messages (``other_messages``), one for its answers without a message. Kinds in
    order of their count, their rows in order of theirs. ``share`` is of all ``total`` requests;
    ``example`` is the row's most frequent error text; ``retry_after`` its most frequent one.
    """
    if errors.empty:
        return []
    keys = [c for c in ERROR_COLUMNS if c in errors]
    # Count the distinct records first: few, even when the errors are many.
    distinct = errors.groupby(keys, sort=False, observed=True, dropna=False).size().reset_index(name="count")
    return counted_error_table(distinct[distinct["count"] > 0].reset_index(drop=True), total, top)


def counted_error_table(distinct: pd.DataFrame, total: int, top: int = 10) -> list[ErrorRow]:
    """`error_table` from the failed records already counted: one row per distinct
    (`ERROR_COLUMNS`) with its ``count``, in the order each was first recorded (ties between
    texts go to the first seen)."""
    if distinct.empty:
        return []
    text = {c: _text(distinct[c]) if c in distinct else "" for c in ERROR_COLUMNS[1:]}
    frame = pd.DataFrame(
        {
            "kind": [error_kind(int(s), e) for s, e in zip(distinct["status"], text["error"], strict=True)],
            "count": distinct["count"].to_numpy(),
            **text,
        }
    )
    kinds = frame.groupby("kind", sort=False)["count"].sum().reset_index()
    kinds = kinds.sort_values(["count", "kind"], ascending=[False, True], kind="stable").head(top)
    rows: list[ErrorRow] = []
    for kind in kinds["kind"]:
        rows += _kind_rows(str(kind), frame[frame["kind"] == kind], total)
    return rows


def _kind_rows(kind: str, frame: pd.DataFrame, total: int) -> list[ErrorRow]:
    """One kind's rows of `error_table`, most frequent first."""
    by_message = frame.groupby("server_message", sort=False)["count"].sum().reset_index()
    said = by_message[by_message["server_message"] != ""]
    said = said.sort_values(["count", "server_message"], ascending=[False, True], kind="stable")
    listed = said["server_message"].head(MAX_MESSAGES_PER_KIND).tolist()
    others = frame["server_message"].ne("") & ~frame["server_message"].isin(listed)
    parts = [(m, frame[frame["server_message"] == m], 0) for m in listed]
    parts += [("", frame[others], len(said) - len(listed)), ("", frame[frame["server_message"] == ""], 0)]
    rows: list[ErrorRow] = []
    for message, group, folded in parts:
        if group.empty:
            continue
        count = int(group["count"].sum())
        row: ErrorRow = {
            "kind": kind,
            "count": count,
            "share": fraction(count, total),
            "example": _most_frequent(group, "error"),
        }
        if message:
            row["server_message"] = message
        if folded:
            row["other_messages"] = folded
        retry_after = _most_frequent(group[group["retry_after"] != ""], "retry_after")
        if retry_after:
            row["retry_after"] = retry_after
        rows.append(row)
    rows.sort(key=lambda r: -r["count"])  # stable: ties keep the order above
    return rows


def _text(values: pd.Series) -> pd.Series:
    """A text column as plain strings, a missing value as ""."""
    return values.astype(object).fillna("").astype(str)


def _most_frequent(counted: pd.DataFrame, column: str) -> str:
    """The value of ``column`` with the largest summed ``count`` ("" for no rows; ties: first seen)."""
    if counted.empty:
        return ""
    return str(counted.groupby(column, sort=False)["count"].sum().idxmax())


def group_rows(keys: pd.Series) -> list[tuple[str, npt.NDArray[np.int64]]]:
    """``(str(key), row positions)`` for each distinct key, in order of the key's text.

    Works on positions, never copying the frame per group: one factorization (free on a
    ``category`` column) and one stable sort. Missing keys (NaN) belong to no group, as in
    pandas' ``groupby``.
    """
    codes, uniques = pd.factorize(keys)
    codes = np.asarray(codes, dtype=np.int64)
    if codes.size == 0:
        return []
    order = np.argsort(codes, kind="stable")
    counts = np.bincount(codes[codes >= 0], minlength=len(uniques))
    ends = np.cumsum(counts) + int((codes < 0).sum())  # the missing (-1) sort first
    names = [str(u) for u in uniques]
    return [
        (names[i], order[ends[i] - counts[i] : ends[i]])
        for i in sorted(range(len(names)), key=names.__getitem__)
    ]


def per_second(
    requests: pd.DataFrame, run_start_unix_s: float, warmup_end_unix_s: float, seconds: int
) -> pd.DataFrame:
    """Per-second series from the run start: requests, ok, errors, p50_ms, p99_ms, in_warmup.

    A request belongs to the second in which it started. Seconds with no requests are kept
    (zeros), so gaps show up in plots; p50/p99 are NaN for a second without successes.
    """
    seconds = max(int(seconds), 0)
    offset = np.floor(requests["start_unix_s"].to_numpy() - run_start_unix_s).astype(np.int64)
    keep = (offset >= 0) & (offset < seconds)
    second = offset[keep]
    ok = requests["ok"].to_numpy()[keep].astype(bool)
    p50, p99 = _percentiles_per_second(second[ok], requests["latency_ms"].to_numpy()[keep][ok], seconds)
    return series_frame(
        np.bincount(second, minlength=seconds),
        np.bincount(second[ok], minlength=seconds),
        p50,
        p99,
        run_start_unix_s,
        warmup_end_unix_s,
    )


def series_frame(
    requests: npt.ArrayLike,
    ok: npt.ArrayLike,
    p50: FloatArray,
    p99: FloatArray,
    run_start_unix_s: float,
    warmup_end_unix_s: float,
) -> pd.DataFrame:
    """`per_second`'s frame from each second's counts and percentiles (one entry a second)."""
    requests = np.asarray(requests, dtype=np.int64)
    index = pd.RangeIndex(requests.size, name="second")
    out = pd.DataFrame(index=index)
    second_starts = run_start_unix_s + index.to_numpy()
    out["start_unix_s"] = np.round(second_starts, 3)
    out["requests"] = requests
    out["ok"] = np.asarray(ok, dtype=np.int64)
    out["errors"] = out["requests"] - out["ok"]
    out["p50_ms"] = np.round(p50, 3)
    out["p99_ms"] = np.round(p99, 3)
    out["in_warmup"] = (second_starts < warmup_end_unix_s).astype(np.int8)
    return out.reset_index()


def _percentiles_per_second(
    second: npt.NDArray[np.int64], latency_ms: npt.NDArray[np.float64], seconds: int
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Exact p50 and p99 of the latencies of each second (NaN for a second without any).

    One stable sort by second (records arrive almost in start order, which timsort finds
    cheap), then numpy's percentile over each second's slice: linear in the records.
    """
    p50 = np.full(seconds, np.nan)
    p99 = np.full(seconds, np.nan)
    if second.size == 0:
        return p50, p99
    order = np.argsort(second, kind="stable")
    second, latency_ms = second[order], latency_ms[order]
    bounds = np.flatnonzero(np.diff(second)) + 1
    starts = np.concatenate([[0], bounds])
    ends = np.concatenate([bounds, [second.size]])
    for lo, hi in zip(starts.tolist(), ends.tolist(), strict=True):
        p50[second[lo]], p99[second[lo]] = np.percentile(latency_ms[lo:hi], [50.0, 99.0])
    return p50, p99


def users_per_second(users: pd.DataFrame, run_start_unix_s: float, seconds: int) -> npt.NDArray[np.float64]:
    """Active users for each second since the run start (last sample in or before it; NaN before any)."""
    result = np.full(max(seconds, 0), np.nan)
    if users.empty or seconds <= 0:
        return result
    offsets = users["unix_s"].to_numpy(dtype=np.float64) - run_start_unix_s
    counts = users["users"].to_numpy(dtype=np.float64)
    order = np.argsort(offsets, kind="stable")
    offsets, counts = offsets[order], counts[order]
    ends = np.arange(1, seconds + 1, dtype=np.float64)
    idx = np.searchsorted(offsets, ends, side="left") - 1
    valid = idx >= 0
    result[valid] = counts[idx[valid]]
    return result


def clean(value: Any) -> Any:
    """Make a value JSON-safe: NaN/inf -> None, numpy scalars -> Python numbers."""
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def value_at(tree: Any, path: str) -> Any:
    """The value at a dotted path of nested dicts and lists (``resources.gpus.0.util_mean``), or None."""
    node = tree
    for part in path.split("."):
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node
