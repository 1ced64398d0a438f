"""Parsing ``requests.csv`` lines, and a damaged file: keep every line that is a record, say what was lost.

`loadbench.record.records.read_requests` parses a record file in one ``pd.read_csv`` call
(`parse_records`, with the column types it gives) and refuses the records `refused_rows` names.
When that call fails (a line of NUL bytes left by a crash or a full disk, a number that is not
one, a line with a field too many) or a record is refused, the file is read again here
(`salvage`), in blocks of lines, each block with the very same `parse_records` and
`refused_rows`. A block that fails is split by a guess from its text (the lines whose numbers do
not look like numbers are tried one by one, the others together), or else halved, until each
failing line stands alone; that line is dropped and counted. Memory stays that of the records
kept plus one block; the time, a few times the fast path's, is spent only on a damaged file.

What was lost comes back as a `RecordDamage`: how many lines were dropped, whether the file ended
inside a record (a run killed while writing), and the time range the losses fell in, from the
records around them. `read_requests` puts it on the frame (`damage_of`), so the analyzer can say
it in one line of the summary's notices whichever reader handed it the records.
"""

from __future__ import annotations

import io
import math
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from pandas.api.types import union_categoricals

# What a failed ``pd.read_csv`` of record lines raises (pandas' ParserError, a text where a number
# belongs: ValueError; an integer beyond int64: OverflowError; a fraction in an integer column:
# TypeError); ParserWarning only where the caller turned it into an error (a first line longer
# than the header, which pandas would otherwise cut short without a word).
PARSE_ERRORS: tuple[type[Exception], ...] = (
    ValueError,
    OverflowError,
    TypeError,
    pd.errors.ParserError,
    pd.errors.ParserWarning,
)
# ``DataFrame.attrs`` key under which `read_requests` leaves the file's `RecordDamage`.
DAMAGE_ATTR = "loadbench_record_damage"
BLOCK_LINES = 8192  # lines parsed together: a block that fails is halved down to its bad lines
BLOCK_BYTES = 4 << 20
# A longer line is no record (the recorder's longest, a stream's every inter-token gap, is far
# shorter): it is dropped without being held, so a run of zeros without a newline (a crash on a
# full disk) cannot take the reader's memory.
MAX_LINE_BYTES = 64 << 20
# Whether a file that ends without a newline ends inside a record: its last bytes hold more than
# blanks. Only this much of the tail is looked at.
_TAIL_PEEK = 4096

Stream = Callable[[], IO[bytes]]  # opens the text to parse (again) from its start


@dataclass(frozen=True, slots=True)
class RecordDamage:
    """What a record file lost: dropped lines, a cut-off last record, and when they fell.

    ``after_unix_s`` is the start time of the last record read before the first dropped line (None:
    none before it); ``before_unix_s`` that of the first record read after the last dropped line
    (None: the losses reach the file's end, where a cut-off last record always is). A dropped line
    counts as one record: a stretch of zeros that replaced several lines reads as one line.
    """

    lines_dropped: int  # whole lines that were no record (unreadable, or refused)
    cut_off: bool  # the file ended inside a record (the run was killed while writing it)
    first_line: int | None  # physical line numbers (the header is line 1) of the first and the
    last_line: int | None  # last dropped line; None when none was dropped
    after_unix_s: float | None
    before_unix_s: float | None
    records_read: int

    @property
    def records_lost(self) -> int:
        return self.lines_dropped + int(self.cut_off)

    @property
    def warns(self) -> bool:
        """Damage inside the file, not just a killed run's last record: worth a validity warning."""
        return self.lines_dropped > 0

    def notice(self, name: str = "requests.csv") -> str:
        """One line for the summary's notices."""
        if not self.warns:
            return (
                f"{name}: the last record was cut off (the run was killed while writing): "
                "1 record lost at the end"
            )
        lines = (
            f"line {self.first_line}"
            if self.first_line == self.last_line
            else (f"lines {self.first_line}–{self.last_line}")
        )
        cut = ", and the last record was cut off" if self.cut_off else ""
        return (
            f"{name} is damaged: {_count(self.records_lost, 'record')} lost "
            f"{_when(self.after_unix_s, self.before_unix_s)}: "
            f"{_count(self.lines_dropped, 'unreadable line')} ({lines}) dropped{cut}; "
            f"{_count(self.records_read, 'record')} read"
        )


def parse_records(open_stream: Stream, dtypes: Mapping[str, str], exact: bool) -> pd.DataFrame:
    """One ``pd.read_csv`` of a header line and record lines, its columns ``dtypes``; raises one of
    `PARSE_ERRORS` when a line is not a record. ``exact``: the header holds the columns of
    ``dtypes`` and no other, so every field is read and a line with one too many is refused
    (``usecols`` would drop it without a word)."""
    columns = list(dtypes)
    with warnings.catch_warnings():
        # A damaged integer field ("2.5e400") warns on its way to the TypeError it raises.
        warnings.simplefilter("ignore", RuntimeWarning)
        # A first line with a field too many: pandas would drop the field, and only warn.
        warnings.simplefilter("error", pd.errors.ParserWarning)
        frame = pd.read_csv(
            open_stream(),
            usecols=None if exact else columns,
            index_col=False,
            dtype=dict(dtypes),
            keep_default_na=False,
            na_values={c: [""] for c, t in dtypes.items() if t == "float64"},
            encoding="utf-8",
            encoding_errors="replace",
        )
    # pandas infers a category's values from its text: a column whose every value looks like a
    # number (a name "0001", an error "-Infinity", labels "7") would read back as numbers. Such a
    # column (rare: one text in a run usually is not) is read again, as the text it is.
    numeric = [c for c in columns if dtypes[c] == "category" and frame[c].cat.categories.dtype.kind != "O"]
    if numeric:
        text = pd.read_csv(
            open_stream(),
            usecols=numeric,
            dtype=dict.fromkeys(numeric, str),
            keep_default_na=False,
            encoding="utf-8",
            encoding_errors="replace",
        )
        for column in numeric:
            frame[column] = text[column].astype("category")
    return frame


def refused_rows(frame: pd.DataFrame) -> npt.NDArray[np.bool_]:
    """Records without a finite start time or latency (an empty field reads as NaN, and "inf"
    parses as a float: an infinite start would make the analyzer's run end infinite), or with
    an infinite figure in another float column."""
    start, latency = (frame[c].to_numpy(dtype=np.float64) for c in ("start_unix_s", "latency_ms"))
    bad: npt.NDArray[np.bool_] = ~(np.isfinite(start) & np.isfinite(latency))
    for column in frame.columns:
        if column not in ("start_unix_s", "latency_ms") and frame[column].dtype == np.float64:
            bad |= np.isinf(frame[column].to_numpy())
    return bad


def with_columns(frame: pd.DataFrame, columns: Sequence[str], dtypes: Mapping[str, str]) -> pd.DataFrame:
    """``frame``'s ``columns`` in that order, those it lacks (an older file's) empty: NaN, or
    empty text of the column's dtype."""
    for column in columns:
        if column not in frame:
            if dtypes[column] == "float64":
                frame[column] = np.nan
            else:
                frame[column] = pd.Series([""] * len(frame), dtype=dtypes[column], index=frame.index)
    return frame[list(columns)]


class Prefix(io.RawIOBase):
    """The first ``limit`` bytes of a binary file, read as a stream (a partial last line left out)."""

    def __init__(self, f: io.BufferedReader, limit: int) -> None:
        self._f = f
        self._left = limit

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        n = self._f.readinto(view[: min(len(view), self._left)])
        self._left -= n or 0
        return n or 0


def damage_of(frame: pd.DataFrame) -> RecordDamage | None:
    """The `RecordDamage` `read_requests` found in the file ``frame`` was read from, if any."""
    damage = frame.attrs.get(DAMAGE_ATTR)
    return damage if isinstance(damage, RecordDamage) else None


def ends_inside_a_line(f: io.BufferedReader, last_newline: int) -> bool:
    """Whether the file goes on after its last newline (at ``last_newline``) with more than blanks."""
    size = f.seek(0, io.SEEK_END)
    tail = size - last_newline - 1
    if tail <= 0:
        return False
    f.seek(last_newline + 1)
    return tail > _TAIL_PEEK or bool(f.read(tail).strip())


def cut_off_damage(frame: pd.DataFrame) -> RecordDamage:
    """A whole file but for its cut-off last record, read into ``frame``."""
    starts = frame["start_unix_s"].to_numpy()
    return RecordDamage(0, True, None, None, float(starts[-1]) if len(starts) else None, None, len(frame))


def salvage(
    lines: IO[bytes], dtypes: Mapping[str, str], exact: bool, min_fields: int, cut_off: bool
) -> tuple[pd.DataFrame | None, RecordDamage | None]:
    """Read the record file ``lines`` (its header line first, its whole lines only) line by line,
    as `parse_records` reads it whole (``dtypes``, ``exact``) and keeping what `refused_rows` keeps.

    ``min_fields``: a line with fewer fields cannot parse (a required integer column would be
    empty), so a file of garbage is not parsed a line at a time. Returns the frame of the records
    kept (None when there is none) and the damage (None when no line was dropped and the file did
    not end inside a record: ``cut_off``).
    """
    block = _Block(lines.readline(), dtypes, exact)
    max_fields = len(dtypes) if exact else None
    tally = _Tally()
    frames: list[pd.DataFrame | None] = []
    pending: list[tuple[int, bytes | None]] = []
    size = 0
    for number, line in _numbered_lines(lines):
        if line is not None and not line.strip():
            continue  # a blank line is no record, as pandas skips it
        if line is not None and not _may_parse(line, min_fields, max_fields):
            line = None
        pending.append((number, line))
        size += len(line or b"")
        if len(pending) >= BLOCK_LINES or size >= BLOCK_BYTES:
            frames.append(block.settle(pending, tally))
            pending, size = [], 0
    frames.append(block.settle(pending, tally))
    return concat_frames(frames), tally.damage(cut_off)


def concat_frames(frames: list[pd.DataFrame | None]) -> pd.DataFrame | None:
    """One frame of ``frames`` in order, index 0..n-1, each category column's categories united
    and sorted as ``pd.read_csv`` sorts them (a plain concat of differing ones gives text)."""
    present = [f for f in frames if f is not None and len(f)]
    if not present:
        return None
    if len(present) == 1:
        return present[0].reset_index(drop=True)
    first = present[0]
    categories = [c for c in first.columns if isinstance(first[c].dtype, pd.CategoricalDtype)]
    out = pd.concat([f.drop(columns=categories) for f in present], ignore_index=True)
    for column in categories:
        out[column] = pd.Series(union_categoricals([f[column] for f in present], sort_categories=True))
    return out[list(first.columns)]


# Line numbers, and their frame (None: one line that did not parse).
Piece = tuple[list[int], pd.DataFrame | None]


class _Block:
    """Settles a block of lines: which are records (read as `parse_records` reads them) and which not."""

    def __init__(self, header: bytes, dtypes: Mapping[str, str], exact: bool) -> None:
        self.header, self.dtypes, self.exact = header, dtypes, exact

    def settle(self, block: list[tuple[int, bytes | None]], tally: _Tally) -> pd.DataFrame | None:
        """The frame of the block's records in line order; every line tallied (None: refused unparsed)."""
        candidates = [(n, line) for n, line in block if line is not None]
        dropped = [n for n, line in block if line is None]
        frames: list[pd.DataFrame | None] = []
        kept: list[int] = []
        for numbers, frame in self._pieces(candidates, guess=True) if candidates else ():
            if frame is None:
                dropped += numbers
            elif len(frame) == len(numbers):  # (else one line pandas reads as blank: no record)
                bad = refused_rows(frame)
                dropped += [n for n, refused in zip(numbers, bad.tolist(), strict=True) if refused]
                kept += [n for n, refused in zip(numbers, bad.tolist(), strict=True) if not refused]
                frames.append(_drop_rows(frame, bad) if bad.any() else frame)
        out = concat_frames(frames)
        order = np.argsort(kept, kind="stable")
        if out is not None and (np.diff(order) < 0).any():  # the guessed-bad lines came apart
            out = out.take(order).reset_index(drop=True)
        starts = (
            np.array([], dtype=np.float64) if out is None else out["start_unix_s"].to_numpy(dtype=np.float64)
        )
        tally.block(np.sort(np.array(kept, dtype=np.int64)), starts, sorted(dropped))
        return out

    def _parse(self, lines: list[tuple[int, bytes]]) -> pd.DataFrame | None:
        """The lines' frame when each line reads as one record together, else None."""
        text = self.header + b"".join(line for _, line in lines)
        try:
            frame = parse_records(lambda: io.BytesIO(text), self.dtypes, self.exact)
        except PARSE_ERRORS:
            return None
        return frame

    def _pieces(self, lines: list[tuple[int, bytes]], guess: bool) -> Iterator[Piece]:
        """``lines`` in pieces that parse, each with its frame, and the lines that do not, alone.

        Each record is one physical line, so a frame of another number of rows (a stray quote that
        swallowed the next lines, a carriage return that split one) did not read them as records.
        A block that fails is split by a guess from its text (`_suspects`): the lines it doubts are
        tried one by one, the others together; failing that, it is halved until each bad line
        stands alone."""
        numbers = [n for n, _ in lines]
        frame = self._parse(lines)
        if frame is not None and len(frame) == len(lines):
            yield numbers, frame
            return
        if len(lines) == 1:
            yield numbers, frame if frame is not None and len(frame) == 0 else None
            return
        suspects = self._suspects(lines) if guess else None
        if suspects is not None and suspects.any():
            trusted = [x for x, s in zip(lines, suspects, strict=True) if not s]
            if trusted:
                yield from self._pieces(trusted, guess=False)
            for x, s in zip(lines, suspects, strict=True):
                if s:
                    yield from self._pieces([x], guess=False)
            return
        # Lines that did not split into fields: the halves may, and then a guess helps again.
        again, middle = guess and suspects is None, len(lines) // 2
        yield from self._pieces(lines[:middle], again)
        yield from self._pieces(lines[middle:], again)

    def _suspects(self, lines: list[tuple[int, bytes]]) -> npt.NDArray[np.bool_] | None:
        """A guess at the lines whose numbers do not parse, from the lines read as text; None when
        the lines do not even split into fields one line a row. Only a guess: the parser decides."""
        text = self.header + b"".join(line for _, line in lines)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", pd.errors.ParserWarning)
                fields = pd.read_csv(
                    io.BytesIO(text),
                    usecols=None if self.exact else list(self.dtypes),
                    index_col=False,
                    dtype=str,
                    keep_default_na=False,
                    encoding="utf-8",
                    encoding_errors="replace",
                )
        except PARSE_ERRORS:
            return None
        if len(fields) != len(lines):
            return None
        doubt = np.zeros(len(fields), dtype=bool)
        for column, dtype in self.dtypes.items():
            if dtype in ("float64", "int64", "int8"):
                values = pd.to_numeric(fields[column], errors="coerce").to_numpy(dtype=np.float64)
                empty = (fields[column].str.strip() == "").to_numpy(dtype=bool)
                if dtype == "float64":
                    doubt |= np.isnan(values) & ~empty
                else:
                    doubt |= ~np.isfinite(values) | (values != np.round(values)) | (np.abs(values) >= 2**63)
        return doubt


class _Tally:
    """The records kept and the lines dropped, met in the file's order."""

    def __init__(self) -> None:
        self.read = 0
        self.dropped = 0
        self.first_line: int | None = None
        self.last_line: int | None = None
        self.last_start: float | None = None  # of the last record kept so far
        self.after: float | None = None
        self.before: float | None = None
        self.waiting = False  # a line was dropped since the last record kept

    def block(self, kept: npt.NDArray[np.int64], starts: npt.NDArray[np.float64], dropped: list[int]) -> None:
        """A block's kept records (their line numbers and start times, in order) and dropped lines."""
        previous = 0
        for number in dropped:
            at = int(np.searchsorted(kept, number))
            self._kept(starts[previous:at])
            self._dropped(number)
            previous = at
        self._kept(starts[previous:])

    def _kept(self, starts: npt.NDArray[np.float64]) -> None:
        if not len(starts):
            return
        self.read += len(starts)
        if self.waiting:
            self.before, self.waiting = float(starts[0]), False
        self.last_start = float(starts[-1])

    def _dropped(self, number: int) -> None:
        if self.first_line is None:
            self.first_line, self.after = number, self.last_start
        self.last_line, self.before, self.waiting = number, None, True
        self.dropped += 1

    def damage(self, cut_off: bool) -> RecordDamage | None:
        if not (self.dropped or cut_off):
            return None
        after = self.after if self.dropped else self.last_start
        before = None if cut_off else self.before
        return RecordDamage(self.dropped, cut_off, self.first_line, self.last_line, after, before, self.read)


def _numbered_lines(lines: IO[bytes]) -> Iterator[tuple[int, bytes | None]]:
    """Each line after the header with its physical number; None for one beyond `MAX_LINE_BYTES`."""
    number = 1
    while line := lines.readline(MAX_LINE_BYTES):
        number += 1
        if line.endswith(b"\n"):
            yield number, line
            continue
        while line and not line.endswith(b"\n"):  # skip the rest of the overlong line unread
            line = lines.readline(MAX_LINE_BYTES)
        yield number, None


def _may_parse(line: bytes, min_fields: int, max_fields: int | None) -> bool:
    """False for a line that cannot be a record, judged by its commas alone. Quotes only join
    fields, so a line has at most commas + 1 fields, and exactly that many without quotes (a
    carriage return splits a line for pandas: such a line is left to the parser)."""
    fields = line.count(b",") + 1
    if fields < min_fields:
        return False
    return max_fields is None or fields <= max_fields or b'"' in line or b"\r" in line


def _drop_rows(frame: pd.DataFrame, bad: npt.NDArray[np.bool_]) -> pd.DataFrame:
    """``frame`` without its ``bad`` rows, and without the categories only they used (the frame
    of the file without those lines would not have them)."""
    frame = frame[~bad]
    for column in frame.columns:
        if isinstance(frame[column].dtype, pd.CategoricalDtype):
            frame[column] = frame[column].cat.remove_unused_categories()
    return frame


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def _when(after: float | None, before: float | None) -> str:
    """Where the losses fell on the clock, to the tenth of a second, widened outwards."""
    if after is not None and before is not None:
        return f"between {_clock(after, math.floor)} and {_clock(before, math.ceil)} UTC"
    if after is not None:
        return f"from {_clock(after, math.floor)} UTC to the end"
    if before is not None:
        return f"from the start to {_clock(before, math.ceil)} UTC"
    return "with no record read before or after them"


def _clock(unix_s: float, rounding: Callable[[float], int]) -> str:
    tenths = rounding(unix_s * 10)
    seconds, tenth = divmod(tenths, 10)
    try:
        return f"{datetime.fromtimestamp(seconds, UTC):%H:%M:%S}.{tenth}"
    except (OverflowError, OSError, ValueError):  # a start time no calendar holds (still finite)
        return f"{unix_s:.1f} s (unix time)"
