"""The run directory's series besides the request records: resource samples (``samples.jsonl``),
the analyzer's per-second ``timeseries.csv`` and the user counts (``users.csv``), read into frames
(docs/run-format.md).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from loadbench.errors import RunDirError


def read_samples(path: Path) -> pd.DataFrame:
    """Read ``samples.jsonl`` (resource samples) into a wide frame: ``unix_s`` plus one column per key.

    A missing file gives an empty frame (runs without a sampler); a damaged or partial line is
    skipped, not fatal: a killed sampler leaves a readable file. Rows are sorted by ``unix_s``.
    """
    if not path.exists():
        return pd.DataFrame({"unix_s": pd.Series([], dtype="float64")})
    rows = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if not line.endswith("\n"):
                break  # the sampler was stopped mid-write
            try:
                row = json.loads(line)
            # ValueError covers JSONDecodeError and an integer of more than 4300 digits;
            # RecursionError, arrays nested thousands deep. Either way a damaged line.
            except (ValueError, RecursionError):
                continue
            if isinstance(row, dict) and isinstance(row.get("unix_s"), int | float):
                rows.append(row)
    if not rows:
        return pd.DataFrame({"unix_s": pd.Series([], dtype="float64")})
    frame = pd.DataFrame.from_records(rows)
    frame = frame.apply(pd.to_numeric, errors="coerce")
    return frame.sort_values("unix_s", kind="stable").reset_index(drop=True)


TIMESERIES_COLUMNS = (
    "second",
    "start_unix_s",
    "requests",
    "ok",
    "errors",
    "p50_ms",
    "p99_ms",
    "users",
    "in_warmup",
)


def read_timeseries(path: Path) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        return pd.DataFrame({c: pd.Series([], dtype=float) for c in TIMESERIES_COLUMNS})
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise RunDirError(f"cannot read {path}: {' '.join(str(exc).split())[:160]}") from None
    missing = [c for c in ("second", "start_unix_s") if c not in frame]
    if missing:
        raise RunDirError(f"{path} is not a timeseries file: missing column(s) {', '.join(missing)}")
    for c in TIMESERIES_COLUMNS:
        if c not in frame:
            frame[c] = np.nan
        frame[c] = pd.to_numeric(frame[c], errors="coerce")
    return frame


def read_users(path: Path) -> pd.DataFrame:
    """Read ``users.csv`` (``unix_s,users``); missing or damaged lines give fewer rows, not errors.

    A file without those columns in its header raises `RunDirError`; a file with no whole line
    (empty, or truncated inside its header) gives zero rows.
    """
    empty = pd.DataFrame({"unix_s": pd.Series([], dtype="float64"), "users": pd.Series([], dtype="int64")})
    if not path.exists():
        return empty
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise RunDirError(f"cannot read {path}: {exc.strerror or exc}") from None
    data = data[: data.rfind(b"\n") + 1]
    if not data.strip():  # nothing but blank lines: pandas would raise EmptyDataError
        return empty
    # Every field is a number, so nothing is quoted: QUOTE_NONE keeps a stray quote from
    # swallowing the rest of the file (a ParserError); dtype=str leaves numbers to to_numeric
    # below (no int64 overflow in pandas' type inference); undecodable bytes become U+FFFD.
    frame = pd.read_csv(
        io.BytesIO(data),
        on_bad_lines="skip",
        quoting=csv.QUOTE_NONE,
        dtype=str,
        encoding="utf-8",
        encoding_errors="replace",
        skip_blank_lines=True,
    )
    missing = [c for c in ("unix_s", "users") if c not in frame.columns]
    if missing:
        raise RunDirError(f"{path} is not a users file: missing column(s) {', '.join(missing)}")
    frame = frame[["unix_s", "users"]].apply(pd.to_numeric, errors="coerce").astype("float64")
    # Damaged values are dropped: NaN / inf, and user counts no int64 can hold exactly.
    keep = np.isfinite(frame["unix_s"]) & frame["users"].between(0, 2**53)
    return frame[keep].astype({"unix_s": "float64", "users": "int64"}).reset_index(drop=True)


class UsersWriter:
    """Appends ``unix_s,users`` lines to ``users.csv`` (the active users, once a second and at each
    change). A write the system refuses (a full disk) is not raised: `failure` says it in one line
    and later lines are dropped, as `loadbench.record.records.RequestWriter` does."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.failure: str | None = None
        self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115
        if self._file.tell() == 0:
            self._file.write("unix_s,users\n")

    def write(self, unix_s: float, users: int) -> None:
        if self.failure is None and not self._file.closed:
            self._guarded(self._file.write, f"{unix_s:.3f},{users}\n")

    def flush(self) -> None:
        if self.failure is None and not self._file.closed:
            self._guarded(self._file.flush)

    def close(self) -> None:
        if not self._file.closed:
            self.flush()
            with contextlib.suppress(OSError):  # the buffer refused again: the failure is said
                self._file.close()

    def _guarded(self, write: Any, *args: Any) -> None:
        try:
            write(*args)
        except OSError as exc:
            self.failure = f"cannot write {self.path.name}: {exc.strerror or exc}"
