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

Readers ignore columns they do not know, so later versions may add columns at the end.
A run killed mid-write may end in a partial line; the reader drops it.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pandas as pd

from loadbench.errors import RunDirError

COLUMNS = ("start_unix_s", "latency_ms", "name", "method", "status", "response_bytes", "ok", "error")
_DTYPES = {
    "start_unix_s": "float64",
    "latency_ms": "float64",
    "name": "string",
    "method": "string",
    "status": "int64",
    "response_bytes": "int64",
    "ok": "int8",
    "error": "string",
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


def one_line(text: str, limit: int = MAX_ERROR_CHARS) -> str:
    """Collapse whitespace runs (newlines included) so a field stays on one physical line."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


class RequestWriter:
    """Appends records to ``requests.csv``; `flush` pushes them to the OS (survives a SIGKILL)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        new = not path.exists() or path.stat().st_size == 0
        self._file: IO[str] = open(path, "a", encoding="utf-8", newline="")  # noqa: SIM115
        self._csv = csv.writer(self._file, lineterminator="\n")
        if new:
            self._csv.writerow(COLUMNS)
            self._file.flush()

    def write(self, r: RequestRecord) -> None:
        self._csv.writerow(
            (
                f"{r.start_unix_s:.6f}",
                f"{r.latency_ms:.3f}",
                r.name,
                r.method,
                r.status,
                r.response_bytes,
                1 if r.ok else 0,
                r.error,
            )
        )

    def flush(self) -> None:
        if not self._file.closed:
            self._file.flush()

    def close(self) -> None:
        if not self._file.closed:
            self._file.flush()
            self._file.close()


def read_requests(path: Path) -> pd.DataFrame:
    """Read ``requests.csv`` into a DataFrame with the documented columns and dtypes.

    A missing file is an error; a file with only a header (or nothing) gives zero rows; a
    partial last line (the run was killed mid-write) is dropped.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise RunDirError(f"{path} is missing") from None
    except OSError as exc:
        raise RunDirError(f"cannot read {path}: {exc.strerror or exc}") from None
    end = data.rfind(b"\n")
    data = data[: end + 1] if end >= 0 else b""
    if not data.strip():
        return _empty_frame()
    header = data[: data.find(b"\n")].decode("utf-8", "replace").split(",")
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise RunDirError(f"{path} is not a request record file: missing column(s) {', '.join(missing)}")
    try:
        frame = pd.read_csv(
            io.BytesIO(data),
            usecols=list(COLUMNS),
            dtype=_DTYPES,
            keep_default_na=False,
            na_values={"start_unix_s": [""], "latency_ms": [""]},
            encoding="utf-8",
            encoding_errors="replace",
        )
    except (ValueError, pd.errors.ParserError) as exc:
        raise RunDirError(f"{path} holds a corrupt record: {one_line(str(exc), 160)}") from None
    if frame["start_unix_s"].isna().any() or frame["latency_ms"].isna().any():
        bad = int(frame.index[frame["start_unix_s"].isna() | frame["latency_ms"].isna()][0]) + 2
        raise RunDirError(f"{path} line {bad}: a record without a start time or latency")
    return frame[list(COLUMNS)]


def _empty_frame() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series([], dtype=t) for c, t in _DTYPES.items()})[list(COLUMNS)]


def write_requests(path: Path, records: list[RequestRecord]) -> None:
    """Write a whole record file at once (tests and tools that build runs by hand)."""
    writer = RequestWriter(path)
    try:
        for r in records:
            writer.write(r)
    finally:
        writer.close()
