"""Request records: the columns of ``requests.csv``, its writer, and its reader.

One line per finished request, appended while the run goes on (one record is always one
physical line: text fields never hold a newline). Columns, in order:

``start_unix_s``    float s, wall clock (``time.time()``) when the request was sent, µs resolution.
                    Only used to place the request on the run's timeline.
``latency_ms``      float ms, Locust's ``response_time``: ``time.perf_counter()`` from just before
                    the request was sent until the response body was read (or the request failed).
                    Exact, not Locust's rounded statistics.
``name``            request name (Locust's ``name``, the URL path unless the scenario names it).
``method``          HTTP method (or another request type a custom scenario reports).
``status``          HTTP status code; 0 when no response arrived (connection error, timeout).
``response_bytes``  size of the response body in bytes (Content-Length when given).
``ok``              1 when the request succeeded, 0 when Locust reported an exception for it.
``error``           one line describing the failure (``Type: message``, at most 300 characters,
                    credentials scrubbed); empty when ``ok`` is 1.
``intended_unix_s`` open loop: float s, wall clock, when the schedule said the request was due
                    (its latency counts from here); empty in a closed loop, and for the later
                    requests of a task that sends several. Older files may lack the column.

Model-specific columns, empty when the scenario did not report them (it does so through the
request event's ``context["loadbench"]``, see `EXTRA_FIELDS`; older files lack them):

``ttft_ms``         streamed responses: time to the first content token, ms from the send.
``input_tokens``    prompt tokens (the server's ``usage``, or loadbench's ``--tokenizer``:
                    ``input_tokens_source``); empty when unknown (never 0 for unknown).
``output_tokens``   generated tokens.
``tokens_source``   of ``output_tokens``: ``usage`` (the server said), ``counted`` (content chunks
                    counted), or empty.
``itl_ms``          streamed responses: every inter-token gap in ms (3 decimals), space-separated.
``expected``        the label or answer the payload carried (``_expected``), one line.
``predicted``       the prediction the scenario extracted from the response, one line.
``media_s``         the payload's media duration in seconds (audio, video), for real-time factor.
``connect_ms``      HTTP/2 path: TCP connect + TLS handshake when the request opened a connection, else 0.
``ttfb_ms``         HTTP/2 path: from the send until the response headers were in.
``download_ms``     HTTP/2 path: reading the response body.

What the server said when it refused a request (filled by the recorder for a failed request
with an HTTP status >= 400, from the answer; empty otherwise, and in older files):

``server_message``  the message of the error answer's body (a JSON body's ``error`` / ``message`` /
                    ``detail``, or the first line of a text body), one line, at most 200
                    characters, credentials scrubbed (`loadbench.protocols.errorbody`).
``retry_after``     the answer's ``Retry-After`` header as sent (seconds or an HTTP date).

Later columns (empty in older files):

``redirects``       redirect hops the request followed (``--follow-redirects``), filled by the
                    recorder from the answer's history; empty for none.
``input_tokens_source``  of ``input_tokens``: ``usage`` (the server said) or ``tokenizer`` (counted
                    by loadbench with ``--tokenizer``); empty when unknown. A scenario's extra.
``server_ms``       the server's own processing time, float ms, from the answer's header named by
                    ``--server-time-header`` (a number of ms, or Server-Timing ``dur``s); empty
                    without the option, and for a request whose answer did not carry a readable one.
``replica``         which replica served the request: the answer's header named by
                    ``--replica-header`` (a load balancer's ``X-Served-By``), one line, at most 100
                    characters, credentials scrubbed; empty without the option or the header.
``target``          several targets (``--target`` repeated, ``--targets FILE``): the target the request
                    was sent to, as its base URL without credentials; empty with one target.
``attempt``         with ``--retries``: 1 for a request's first attempt, 2 for its first retry, ...;
                    empty without retries. Each attempt is a record of its own.
``request_id``      with ``--retries``: the user-visible request an attempt belongs to (the same text
                    on all its attempts, unique in the run); empty without retries.
``payload_key``     which payload the request sent: a short hash of its body (12 hex digits), the
                    same for every exact repeat; written with ``--popularity``, ``--distinct`` or
                    ``--cache-header``/``--cache-field`` (a scenario's extra), else empty.
``cache``           what the server said of its cache for this answer: ``hit`` or ``miss``, read from
                    ``--cache-header`` (HIT/MISS values, or ``Age``) or ``--cache-field``; empty when
                    not asked or not said.

Readers ignore columns they do not know, so later versions may add columns at the end.
A partial last line (a killed run) and damaged lines are dropped by the reader (`salvage`).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd

from loadbench.errors import RunDirError
from loadbench.record.salvage import (
    DAMAGE_ATTR,
    PARSE_ERRORS,
    Prefix,
    RecordDamage,
    cut_off_damage,
    ends_inside_a_line,
    parse_records,
    refused_rows,
    salvage,
    with_columns,
)

COLUMNS = (
    "start_unix_s",
    "latency_ms",
    "name",
    "method",
    "status",
    "response_bytes",
    "ok",
    "error",
    "intended_unix_s",
    "ttft_ms",
    "input_tokens",
    "output_tokens",
    "tokens_source",
    "itl_ms",
    "expected",
    "predicted",
    "media_s",
    "connect_ms",
    "ttfb_ms",
    "download_ms",
    "server_message",
    "retry_after",
    "redirects",
    "input_tokens_source",
    "server_ms",
    "replica",
    "target",
    "attempt",
    "request_id",
    "payload_key",
    "cache",
)
# Columns a reader fills (NaN, or empty text) when an older file lacks them.
OPTIONAL_COLUMNS = COLUMNS[8:]
# What the recorder takes from the answer: what the server said when it refused a request, and
# the redirects it followed (and, last of all columns, ``server_ms`` and ``replica``).
RESPONSE_FIELDS = ("server_message", "retry_after", "redirects")
# Keys of a request event's context["loadbench"] that the recorder writes (the columns above):
# those before the response fields, and those added after them.
_LEADING_EXTRAS = COLUMNS[9 : COLUMNS.index(RESPONSE_FIELDS[0])]
_TRAILING_EXTRAS = COLUMNS[COLUMNS.index(RESPONSE_FIELDS[-1]) + 1 : COLUMNS.index("server_ms")]
# Extras after the route's three columns (then the recorder's ``cache``, the last column).
_FINAL_EXTRAS = ("payload_key",)
EXTRA_FIELDS = _LEADING_EXTRAS + _TRAILING_EXTRAS + _FINAL_EXTRAS
# Every field after ``intended_unix_s``, empty: the end of a line with no extras and nothing
# taken from the answer.
EMPTY_TAIL = "," * (len(COLUMNS) - 9)
# A scenario's per-request extras (LLM token timings, labels, media duration) arrive in the
# request event's context under this key, as a dict of `EXTRA_FIELDS`.
EXTRAS_KEY = "loadbench"
# Several targets or retries: the request event's context["loadbench_route"] is a `Route` (the
# ``target``, ``attempt`` and ``request_id`` columns), set by the session that sent the attempt.
ROUTE_KEY = "loadbench_route"
# Every field after ``intended_unix_s`` up to the route's three, empty, and every field after
# them, empty: with `Route.fields` between them, the hot path's line end.
EMPTY_BEFORE_ROUTE = "," * (COLUMNS.index("target") - 9)
EMPTY_AFTER_ROUTE = "," * (len(COLUMNS) - 1 - COLUMNS.index("request_id"))


@dataclass(frozen=True, slots=True)
class Route:
    """Where an attempt went and which request it belongs to (the last three columns)."""

    target: str = ""  # a base URL without credentials; "" with one target
    attempt: int = 0  # 1, 2, ... with --retries; 0 without
    request_id: str = ""  # with --retries

    def fields(self) -> str:
        """The three fields, each with its leading comma."""
        return f",{csv_field(self.target)},{self.attempt or ''},{csv_field(self.request_id)}"


FLOAT_COLUMNS = (
    "start_unix_s",
    "latency_ms",
    "intended_unix_s",
    "ttft_ms",
    "input_tokens",
    "output_tokens",
    "media_s",
    "connect_ms",
    "ttfb_ms",
    "download_ms",
    "redirects",
    "server_ms",
    "attempt",
)
MAX_LABEL_CHARS = 100
# Times are written to the microsecond (`format_record`): a time read back may sit up to half of
# this (and a float's spacing) before the value it was written from. The analyzer's window takes
# a request that close before its start as in it.
TIME_RESOLUTION_S = 1e-6
# The dtype `read_requests` gives each column: the Parquet reader (`loadbench.record.columnar`)
# gives the same.
CSV_COLUMN_DTYPES: dict[str, str] = {
    **dict.fromkeys(FLOAT_COLUMNS, "float64"),
    "status": "int64",
    "response_bytes": "int64",
    "ok": "int8",
    "itl_ms": "string",
    # Text: each distinct value stored once (a run has few names and error texts, millions of records).
    **dict.fromkeys(
        ("name", "method", "error", "tokens_source", "expected", "predicted", "server_message"),
        "category",
    ),
    # request_id: one value per request with --retries, but "" in every record of a run without
    # (the common case): a category keeps those in a byte each, a string column not.
    **dict.fromkeys(
        ("retry_after", "input_tokens_source", "replica", "target", "request_id", "payload_key", "cache"),
        "category",
    ),
}
MAX_ERROR_CHARS = 300


@dataclass(slots=True)
class RequestRecord:
    """One finished request; see the module docstring for each field's definition."""

    start_unix_s: float
    latency_ms: float
    name: str
    method: str
    status: int
    response_bytes: int
    ok: bool
    error: str = ""
    intended_unix_s: float | None = None
    extras: dict[str, Any] | None = None  # context["loadbench"]: the model-specific columns
    server_message: str = ""  # one line, already bounded and scrubbed by the recorder
    retry_after: str = ""
    redirects: int = 0  # hops followed
    server_ms: float | None = None  # --server-time-header: what the answer said, None when nothing
    replica: str = ""  # --replica-header: the replica that served it, bounded and scrubbed
    target: str = ""  # several targets: the one it was sent to (a base URL, no credentials)
    attempt: int = 0  # --retries: 1, 2, ...; 0 without retries (written empty)
    request_id: str = ""  # --retries: the user-visible request this attempt belongs to
    cache: str = ""  # --cache-header / --cache-field: "hit", "miss", or "" when not said


def one_line(text: str, limit: int = MAX_ERROR_CHARS) -> str:
    """Collapse whitespace runs (newlines included) so a field stays on one physical line."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def csv_field(text: str) -> str:
    """One CSV field, quoted only when it must be (as the csv module's QUOTE_MINIMAL does)."""
    if "," in text or '"' in text or "\n" in text or "\r" in text:
        return '"' + text.replace('"', '""') + '"'
    return text


def format_record(r: RequestRecord) -> str:
    """One line of ``requests.csv``, newline included."""
    return (
        f"{r.start_unix_s:.6f},{r.latency_ms:.3f},{csv_field(r.name)},{csv_field(r.method)},"
        f"{r.status},{r.response_bytes},{1 if r.ok else 0},{csv_field(r.error)},"
        f"{'' if r.intended_unix_s is None else f'{r.intended_unix_s:.6f}'}"
        f"{format_extras(r.extras or {}, _LEADING_EXTRAS)}"
        f",{csv_field(r.server_message)},{csv_field(r.retry_after)},{r.redirects or ''}"
        f"{format_extras(r.extras or {}, _TRAILING_EXTRAS)}"
        f",{'' if r.server_ms is None else f'{r.server_ms:.3f}'},{csv_field(r.replica)}"
        f",{csv_field(r.target)},{r.attempt or ''},{csv_field(r.request_id)}"
        f"{format_extras(r.extras or {}, _FINAL_EXTRAS)},{csv_field(r.cache)}\n"
    )


def format_extras(extras: dict[str, Any], keys: tuple[str, ...] = EXTRA_FIELDS) -> str:
    """The model-specific fields ``keys`` of a line (each with its leading comma) from
    context["loadbench"].

    Values of the wrong type are left empty, never written as something else.
    """
    if not extras:
        return "," * len(keys)
    out = []
    for key in keys:
        value = extras.get(key)
        text = ""
        if key == "itl_ms":
            if isinstance(value, list | tuple):
                text = " ".join(f"{float(v):.3f}" for v in value if isinstance(v, int | float))
        elif key in ("input_tokens", "output_tokens"):
            if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                text = str(value)
        elif key in ("ttft_ms", "media_s", "connect_ms", "ttfb_ms", "download_ms"):
            if isinstance(value, int | float) and not isinstance(value, bool) and np.isfinite(value):
                text = f"{float(value):.6f}" if key == "media_s" else f"{float(value):.3f}"
        elif value is not None:
            text = csv_field(one_line(str(value), MAX_LABEL_CHARS))
        out.append("," + text)
    return "".join(out)


class RequestWriter:
    """Appends lines to ``requests.csv``; `flush` pushes them to the OS (survives a SIGKILL).

    Lines are kept in a list until the next flush: on the hot path (thousands of requests a
    second, in the load generator's only thread) a list append is the cheapest way to keep one.

    A write the system refuses (a full disk, a file size limit, an I/O error) is not raised:
    `failure` says it in one line, the lines written before it stay (a partial last line, which
    readers drop, at most), and every later record is counted in `lost` and dropped, so memory
    stays bounded while the driver stops the run (`loadbench.drive.runner`).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.failure: str | None = None
        new = not path.exists() or path.stat().st_size == 0
        self._file: IO[str] = open(path, "a", encoding="utf-8", newline="")  # noqa: SIM115
        self._pending: list[str] | _Dropped = []
        if new:
            try:
                self._file.write(",".join(COLUMNS) + "\n")
                self._file.flush()
            except OSError as exc:
                self._fail(exc)

    def write(self, r: RequestRecord) -> None:
        self._pending.append(format_record(r))

    def write_line(self, line: str) -> None:
        """Append an already formatted record line (see `format_record`)."""
        self._pending.append(line)

    def flush(self) -> None:
        pending = self._pending
        if self._file.closed or not isinstance(pending, list):  # closed, or failed already
            return
        try:
            if pending:
                self._file.write("".join(pending))
            self._file.flush()
        except OSError as exc:
            self._fail(exc)  # the lines handed over count as lost: part of them may be on disk
            return
        self._pending.clear()

    @property
    def lost(self) -> int:
        """Records dropped since the failure (the failing flush's included)."""
        return len(self._pending) if self.failure is not None else 0

    def _fail(self, exc: OSError) -> None:
        self.failure = f"cannot write {self.path.name}: {exc.strerror or exc}"
        self._pending = _Dropped(len(self._pending))

    def close(self) -> None:
        if self._file.closed:
            return
        try:
            self.flush()
        finally:
            try:
                self._file.close()
            except OSError as exc:  # the buffer's last bytes, refused again
                if self.failure is None:
                    self._fail(exc)


class _Dropped:
    """The pending lines of a writer that cannot write any more: counted, never kept."""

    def __init__(self, count: int) -> None:
        self.count = count

    def append(self, _line: str) -> None:
        self.count += 1

    def clear(self) -> None:
        pass

    def __len__(self) -> int:
        return self.count


def read_requests(path: Path) -> pd.DataFrame:
    """Read ``requests.csv`` into a DataFrame with the documented columns and dtypes.

    A missing file is an error; a file with only a header (or nothing) gives zero rows; a partial
    last line (a run killed mid-write) and a damaged line are dropped (`read_requests_checked`).
    The text columns are pandas ``category`` (each distinct text stored once: a run has few names
    and error texts, and millions of records). The file is parsed as it is read, never held whole.
    """
    return read_requests_checked(path)[0]


def read_requests_checked(path: Path) -> tuple[pd.DataFrame, RecordDamage | None]:
    """`read_requests`, and what a damaged file lost (`loadbench.record.salvage`), which the frame
    also carries (`salvage.damage_of`); None when every line was a record."""
    try:
        with open(path, "rb") as f:
            frame, damage = _read_request_file(path, f)
    except FileNotFoundError:
        raise RunDirError(f"{path} is missing") from None
    except OSError as exc:
        raise RunDirError(f"cannot read {path}: {exc.strerror or exc}") from None
    if damage is not None:
        frame.attrs[DAMAGE_ATTR] = damage
    return frame, damage


def _read_request_file(path: Path, f: io.BufferedReader) -> tuple[pd.DataFrame, RecordDamage | None]:
    end = last_newline(f)  # the records end at the last whole line
    if end < 0:
        return _empty_frame(), None
    cut_off = ends_inside_a_line(f, end)
    f.seek(0)
    first = f.readline(end + 1)
    if not first.strip():
        # Only a file that opens with a blank line gets here: whitespace alone is empty.
        f.seek(0)
        if not f.read(end + 1).strip():
            return _empty_frame(), None
    header = first.rstrip(b"\n").decode("utf-8", "replace").split(",")
    missing = [c for c in COLUMNS if c not in header and c not in OPTIONAL_COLUMNS]
    if missing:
        raise RunDirError(f"{path} is not a request record file: missing column(s) {', '.join(missing)}")
    dtypes = {c: CSV_COLUMN_DTYPES[c] for c in COLUMNS if c in header}
    # A header of known columns only is read whole, so that pandas refuses a line with a field too
    # many (``usecols`` would drop the extra field without a word).
    exact = len(set(header)) == len(header) and set(header) <= set(COLUMNS)

    def whole_file() -> IO[bytes]:
        f.seek(0)
        return io.BufferedReader(Prefix(f, end + 1))

    try:
        frame: pd.DataFrame | None = parse_records(whole_file, dtypes, exact)
    except PARSE_ERRORS:
        frame = None
    damage = cut_off_damage(frame) if frame is not None and cut_off else None
    if frame is None or refused_rows(frame).any():  # damaged: read again, line by line
        required = 1 + max(header.index(c) for c in ("status", "response_bytes", "ok"))
        frame, damage = salvage(whole_file(), dtypes, exact, required, cut_off)
    return with_columns(_empty_frame() if frame is None else frame, COLUMNS, CSV_COLUMN_DTYPES), damage


def last_newline(f: io.BufferedReader, block: int = 1 << 16) -> int:
    """Offset of the file's last ``\\n``, -1 when it has none; reads backwards from the end."""
    pos = f.seek(0, io.SEEK_END)
    while pos > 0:
        start = max(pos - block, 0)
        f.seek(start)
        at = f.read(pos - start).rfind(b"\n")
        if at >= 0:
            return start + at
        pos = start
    return -1


def from_due_time(requests: pd.DataFrame) -> pd.DataFrame:
    """``requests`` with latency counted from each request's due time (wrk2's correction).

    Open loop: a row with an ``intended_unix_s`` is placed at its due time (``start_unix_s``
    becomes ``intended_unix_s``) and its ``latency_ms`` grows by the send lateness
    (``start_unix_s − intended_unix_s``), so a backlog in the generator counts against the
    server's latency instead of vanishing. Rows without one (closed loop, the later requests
    of a task that sends several) are unchanged, and so is a frame where no row has one. The
    input's ``latency_ms`` stays the service time (from the actual send). The analyzer and
    ``loadbench compare`` both use this, so their latencies and windows are the same.
    """
    intended = requests["intended_unix_s"].to_numpy(dtype=np.float64)
    scheduled = np.isfinite(intended)
    if not scheduled.any():
        return requests
    sent = requests["start_unix_s"].to_numpy(dtype=np.float64)
    service_ms = requests["latency_ms"].to_numpy(dtype=np.float64)
    return requests.assign(
        start_unix_s=np.where(scheduled, intended, sent),
        latency_ms=np.where(scheduled, service_ms + (sent - intended) * 1000.0, service_ms),
    )


def _empty_frame() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series([], dtype=t) for c, t in CSV_COLUMN_DTYPES.items()})[list(COLUMNS)]


def write_requests(path: Path, records: list[RequestRecord]) -> None:
    """Write a whole record file at once (tests and tools that build runs by hand)."""
    writer = RequestWriter(path)
    try:
        for r in records:
            writer.write(r)
    finally:
        writer.close()
