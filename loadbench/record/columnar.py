"""Request records in Parquet (``--records parquet``, run format 2): ``requests.parquet``.

While the run goes on the recorder appends CSV lines to ``requests.csv`` exactly as it always
does (one list append per request, a flush to the OS every 0.5 s), so the recording's cost and
its guarantee (a killed run keeps all but its last half second) are those of format 1. When
the recorder closes, `ParquetRecordWriter` converts that file in one streaming pass into
``requests.parquet`` (zstd, row groups of `ROW_GROUP_ROWS`, the text columns dictionary-encoded)
and deletes the CSV: a finished run keeps 5 to 8 bytes a record instead of 60 to 90.

The conversion reads the text with pyarrow's CSV reader and the same column types as
`loadbench.record.records.read_requests`, so a record reads back as the same numbers from either
file (both parsers round a decimal text to the nearest double). It writes ``requests.parquet.tmp``
and renames it, then removes the CSV: at every moment the run directory holds one complete record
file (``requests.parquet``, or ``requests.csv`` until the rename, and both for an instant: a reader
takes the Parquet one). A damaged CSV is converted as `read_requests` reads it (what it lost goes
into the file's metadata, `DAMAGE_KEY`); a CSV that is no record file stays as it is, and so does
everything when the disk is full: `ParquetRecordWriter.notice` says why.

pyarrow is imported only here, only when a Parquet file is written or read.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd

from loadbench.errors import RunDirError
from loadbench.record import rundir
from loadbench.record.records import (
    COLUMNS,
    CSV_COLUMN_DTYPES,
    FLOAT_COLUMNS,
    RequestRecord,
    RequestWriter,
    last_newline,
    read_requests,
    read_requests_checked,
)
from loadbench.record.salvage import DAMAGE_ATTR, Prefix, RecordDamage, ends_inside_a_line, refused_rows

PARQUET = rundir.REQUESTS_PARQUET
CSV = rundir.REQUESTS
ROW_GROUP_ROWS = 1 << 20  # a million records a row group: a reader's unit of work and memory
COMPRESSION = "zstd"
READ_BLOCK_BYTES = 1 << 20  # the CSV reader's block: 16 MB blocks took 1.1 GB at 10M records, 1 MB 0.5 GB
DAMAGE_KEY = "loadbench.record_damage"  # the file's metadata: what the CSV it came from lost (JSON)


def arrow_schema() -> Any:
    """The Arrow types of the columns: floats and integers as `read_requests` reads them, text
    columns dictionary-encoded (few distinct values: names, statuses, error texts), ``itl_ms``
    (a different list of gaps on each streamed request) as plain text."""
    import pyarrow as pa

    types = {
        "float64": pa.float64(),
        "int64": pa.int64(),
        "int8": pa.int8(),
        "string": pa.string(),
        "category": pa.dictionary(pa.int32(), pa.string()),
    }
    return pa.schema([(c, types[CSV_COLUMN_DTYPES[c]]) for c in COLUMNS])


class ParquetRecordWriter:
    """`RequestWriter` during the run; on `close`, ``requests.csv`` becomes ``requests.parquet``."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.csv = RequestWriter(run_dir / CSV)
        self.notice: str | None = None  # why the records stayed in CSV, when they did

    @property
    def failure(self) -> str | None:
        """`RequestWriter.failure` of the CSV: the disk refused a write during the run."""
        return self.csv.failure

    @property
    def lost(self) -> int:
        return self.csv.lost

    def write(self, r: RequestRecord) -> None:
        self.csv.write(r)

    def write_line(self, line: str) -> None:
        self.csv.write_line(line)

    def flush(self) -> None:
        self.csv.flush()

    def close(self) -> None:
        """Close the CSV, then convert it (once: a second call finds it closed and converted)."""
        self.csv.close()
        source = self.run_dir / CSV
        if not source.exists():
            return
        try:
            convert_csv(source, self.run_dir / PARQUET)
        except RunDirError as exc:
            self.notice = f"the records stay in requests.csv: {exc}"
            return
        source.unlink()


def records_writer(run_dir: Path, records: str) -> RequestWriter | ParquetRecordWriter:
    """The run's record writer for ``--records`` (``csv`` or ``parquet``)."""
    if records == "parquet":
        return ParquetRecordWriter(run_dir)
    return RequestWriter(run_dir / CSV)


def convert_csv(source: Path, target: Path, row_group_rows: int = ROW_GROUP_ROWS) -> int:
    """Write ``source`` (a ``requests.csv``) as ``target`` (Parquet); returns the records written.

    Streaming: the CSV is read in blocks and written in row groups. A file the fast reader refuses
    (a damaged line, a record `read_requests` would refuse) is read by `read_requests`, which keeps
    every readable record; what it lost (`RecordDamage`, also a killed run's cut-off last line) is
    kept in the Parquet file's metadata, so the analysis says the same of either file. Written to
    ``target.tmp`` and renamed: ``target`` is complete or absent. RunDirError when the CSV is not a
    record file or the disk refuses the Parquet file (the temporary file is removed then).
    """
    import pyarrow as pa

    partial = target.with_name(target.name + ".tmp")
    try:
        try:
            written = _convert_stream(source, partial, row_group_rows)
        except (pa.ArrowInvalid, _Refused):
            written = _convert_salvaged(source, partial, row_group_rows)
        with open(partial, "rb+") as done:
            os.fsync(done.fileno())
        os.replace(partial, target)
    except (pa.ArrowException, ValueError, RunDirError) as exc:
        partial.unlink(missing_ok=True)
        raise RunDirError(f"{source} cannot be converted: {str(exc).splitlines()[0][:200]}") from None
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise RunDirError(f"cannot write {target}: {exc.strerror or exc}") from None
    return written


class _Refused(Exception):
    """A batch holds a record `read_requests` refuses (no finite start or latency, an infinity)."""


def _convert_stream(source: Path, partial: Path, row_group_rows: int) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = arrow_schema()
    written, last_start = 0, None
    with open(source, "rb") as f, pq.ParquetWriter(partial, schema, compression=COMPRESSION) as writer:
        end = last_newline(f)
        cut_off = end >= 0 and ends_inside_a_line(f, end)
        pending: list[Any] = []
        rows = 0
        for batch in _csv_batches(f, end, schema):
            if _refuses(batch):
                raise _Refused
            if batch.num_rows:  # where a cut-off last record would have been: after this one
                last_start = float(batch.column("start_unix_s")[-1].as_py())
            pending.append(batch)
            rows += batch.num_rows
            if rows >= row_group_rows:
                writer.write_table(pa.Table.from_batches(pending, schema), row_group_size=row_group_rows)
                written, pending, rows = written + rows, [], 0
        if pending:
            writer.write_table(pa.Table.from_batches(pending, schema), row_group_size=row_group_rows)
            written += rows
        if cut_off:
            damage = RecordDamage(0, True, None, None, last_start, None, written)
            writer.add_key_value_metadata({DAMAGE_KEY: json.dumps(asdict(damage))})
    return written


def _convert_salvaged(source: Path, partial: Path, row_group_rows: int) -> int:
    """The records `read_requests` keeps of a damaged file, with what it lost in the metadata."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    frame, damage = read_requests_checked(source)
    frame.attrs.clear()  # the damage goes into the metadata as JSON, not as pandas' attrs
    schema = arrow_schema()
    table = pa.Table.from_pandas(frame, schema=schema, preserve_index=False)
    with pq.ParquetWriter(partial, schema, compression=COMPRESSION) as writer:
        writer.write_table(table, row_group_size=row_group_rows)
        if damage is not None:
            writer.add_key_value_metadata({DAMAGE_KEY: json.dumps(asdict(damage))})
    return len(frame)


def _refuses(batch: Any) -> bool:
    """Whether ``batch`` holds a record `read_requests` refuses: `salvage.refused_rows`'s rule on an
    Arrow batch (no finite start or latency, or an infinite figure in another float column)."""
    import pyarrow.compute as pc

    for name in FLOAT_COLUMNS:
        column = batch.column(batch.schema.get_field_index(name))
        if name in ("start_unix_s", "latency_ms"):
            if column.null_count or not pc.all(pc.is_finite(column)).as_py():
                return True
        elif pc.any(pc.is_inf(column)).as_py():
            return True
    return False


def _csv_batches(f: io.BufferedReader, end: int, schema: Any) -> Iterator[Any]:
    """Record batches of the file's whole lines (its first ``end + 1`` bytes), header first."""
    import pyarrow.csv as pcsv

    if end < 0:
        return
    f.seek(0)
    header = f.readline(end + 1).rstrip(b"\r\n").decode("utf-8", "replace").split(",")
    if any(c not in header for c in COLUMNS[:8]):
        raise ValueError("not a request record file: its header lacks the first columns")
    known = [c for c in header if c in COLUMNS]
    f.seek(0)
    reader = pcsv.open_csv(
        Prefix(f, end + 1),
        read_options=pcsv.ReadOptions(use_threads=False, block_size=READ_BLOCK_BYTES),
        convert_options=pcsv.ConvertOptions(
            include_columns=known,
            column_types={c: schema.field(c).type for c in known},
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        ),
    )
    for batch in reader:
        yield _complete(batch, schema)


def _complete(batch: Any, schema: Any) -> Any:
    """The batch with every column of the schema, in its order: columns an older file lacks are
    empty (null numbers, empty text), as `read_requests` fills them."""
    import pyarrow as pa

    arrays = []
    for field in schema:
        index = batch.schema.get_field_index(field.name)
        if index >= 0:
            arrays.append(batch.column(index))
        elif pa.types.is_dictionary(field.type) or pa.types.is_string(field.type):
            arrays.append(pa.array([""] * batch.num_rows, pa.string()).cast(field.type))
        else:
            arrays.append(pa.nulls(batch.num_rows, field.type))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def write_csv(source: Path, out: IO[bytes]) -> None:
    """Write the records of ``source`` (``requests.parquet`` or ``requests.csv``) to ``out`` as CSV
    with the header of `COLUMNS`, batch by batch. From Parquet, numbers are written in their
    shortest exact form (``4.7``, not ``4.700``): `read_requests` reads back the same values.
    RunDirError when ``source`` cannot be read or ``out`` cannot be written."""
    import pyarrow as pa
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    try:
        if source.name != PARQUET:
            _copy_whole_lines(source, out)
            return
        parquet = pq.ParquetFile(source)
        names = [c for c in COLUMNS if c in parquet.schema_arrow.names]
        options = pcsv.WriteOptions(include_header=False, quoting_style="needed")
        schema = arrow_schema()
        out.write((",".join(COLUMNS) + "\n").encode())
        for batch in parquet.iter_batches(batch_size=1 << 16, columns=names):
            complete = _complete(batch, schema)
            plain = [
                column.cast(pa.string()) if pa.types.is_dictionary(column.type) else column
                for column in complete.columns
            ]
            pcsv.write_csv(pa.RecordBatch.from_arrays(plain, names=list(COLUMNS)), out, write_options=options)
    except FileNotFoundError:
        raise RunDirError(f"{source} is missing") from None
    except pa.ArrowException as exc:
        raise RunDirError(f"{source} cannot be read: {str(exc).splitlines()[0][:200]}") from None
    except BrokenPipeError:
        raise  # the reader went away (`| head`): the caller ends quietly
    except OSError as exc:
        raise RunDirError(f"cannot write the CSV: {exc.strerror or exc}") from None


def _copy_whole_lines(source: Path, out: IO[bytes]) -> None:
    with open(source, "rb") as f:
        left = last_newline(f) + 1
        f.seek(0)
        while left > 0:
            block = f.read(min(left, READ_BLOCK_BYTES))
            if not block:
                return
            out.write(block)
            left -= len(block)


def read_parquet_requests(path: Path) -> pd.DataFrame:
    """``requests.parquet`` as the DataFrame `read_requests` gives for the same records."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
        metadata = parquet.metadata
        empty = _null_columns(metadata)
        table = parquet.read(columns=[c for c in parquet.schema_arrow.names if c not in empty])
    except FileNotFoundError:
        raise RunDirError(f"{path} is missing") from None
    except (pa.ArrowException, OSError) as exc:
        raise RunDirError(f"{path} cannot be read: {str(exc).splitlines()[0][:200]}") from None
    damage = _damage_in(metadata.metadata)
    missing = [c for c in COLUMNS[:8] if c not in table.column_names]
    if missing:
        raise RunDirError(f"{path} is not a request record file: missing column(s) {', '.join(missing)}")
    # Arrow's buffers are released column by column as they convert: the peak is about one frame.
    frame = table.to_pandas(self_destruct=True, split_blocks=True)
    del table
    for column in COLUMNS:
        if column not in frame and column in FLOAT_COLUMNS:
            frame[column] = empty_float_column(len(frame), frame.index)
            continue
        if column not in frame:
            frame[column] = ""
        dtype = CSV_COLUMN_DTYPES[column]
        if dtype == "category":
            # Categories in the CSV reader's order (sorted), not the dictionary's (first seen), so
            # breakdowns by name, status or error come out in the same order from either file.
            values = frame[column].astype("category")
            frame[column] = values.cat.set_categories(sorted(str(c) for c in values.cat.categories))
        else:
            frame[column] = frame[column].astype(dtype)
    frame = frame[list(COLUMNS)]
    refused = refused_rows(frame)  # the CSV reader's rule (sparse columns hold no value to refuse)
    if refused.any():
        raise RunDirError(
            f"{path} record {int(np.flatnonzero(refused)[0]) + 1}: no finite start time or latency, "
            "or an infinite figure"
        )
    if damage is not None:
        frame.attrs[DAMAGE_ATTR] = damage
    return frame


def parquet_damage(path: Path) -> RecordDamage | None:
    """What the CSV that ``path`` was converted from had lost (its `DAMAGE_KEY` metadata); None
    when it lost nothing."""
    import pyarrow.parquet as pq

    return _damage_in(pq.read_metadata(path).metadata)


def _damage_in(metadata: dict[bytes, bytes] | None) -> RecordDamage | None:
    """The `RecordDamage` the conversion kept in the file's metadata; None without (or unreadable)."""
    text = (metadata or {}).get(DAMAGE_KEY.encode())
    try:
        return RecordDamage(**json.loads(text)) if text else None
    except (ValueError, TypeError):
        return None


def _null_columns(metadata: Any) -> set[str]:
    """Float columns whose every value is null in every row group (by the file's statistics)."""
    empty = set(FLOAT_COLUMNS[2:])  # start and latency are never empty
    for group in range(metadata.num_row_groups):
        row_group = metadata.row_group(group)
        for index in range(row_group.num_columns):
            chunk = row_group.column(index)
            stats = chunk.statistics
            if stats is None or stats.null_count != row_group.num_rows:
                empty.discard(chunk.path_in_schema)
    return empty


def records_path(run_dir: Path) -> Path:
    """The run's record file: ``requests.parquet`` (a finished run of format 2), else ``requests.csv``."""
    parquet = run_dir / PARQUET
    return parquet if parquet.exists() else run_dir / CSV


def read_run_requests(run_dir: Path) -> pd.DataFrame:
    """The run directory's records, from whichever file holds them (`records_path`)."""
    path = records_path(run_dir)
    frame = read_parquet_requests(path) if path.name == PARQUET else read_requests(path)
    return sparse_empty_columns(frame)


def sparse_empty_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with each float column that holds no value at all as a sparse column.

    Most runs fill two or three of the thirteen float columns (no tokens, no due times, no
    phases...), and a dense column of NaN costs 8 bytes a record: 88 of a typical record's
    bytes in memory. A sparse column of NaN costs nothing per record and reads the same
    (``isna``, ``notna``, masks, ``to_numpy`` where a module needs the values).
    """
    for column in FLOAT_COLUMNS[2:]:  # start and latency: every record has them
        values = frame[column]
        if not isinstance(values.dtype, pd.SparseDtype) and values.isna().all():
            frame[column] = empty_float_column(len(values), frame.index)
    return frame


def empty_float_column(rows: int, index: pd.Index) -> pd.Series:
    """A sparse float column of ``rows`` NaN, built without a dense array (a broadcast view)."""
    return pd.Series(pd.arrays.SparseArray(np.broadcast_to(np.nan, rows)), index=index)
