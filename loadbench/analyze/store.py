"""A run's records in DuckDB: the figures of a run of any length without its records in memory.

`RecordStore` queries ``requests.parquet`` in place (a ``requests.csv`` is first converted into a
temporary Parquet file by `loadbench.record.columnar.convert_csv`, the conversion a run of
``--records parquet`` ends with, so both formats read back as the same numbers). DuckDB counts,
groups and sorts out of core, under `MEMORY_LIMIT_MB`, spilling into a temporary directory; the
analyzer (`loadbench.analyze.bounded`) takes the figures from it. With ``--retries`` its views
hold the requests users saw (``records``, ``requests``) beside the attempts (``written``,
``attempts``): `COLLAPSE`.

Exact percentiles need every value in order: DuckDB sorts, the store streams the sorted values in
batches and keeps only those at the positions numpy's percentile would read
(`loadbench.analyze.stats.percentile_points`), so every percentile equals ``np.percentile``'s bit
for bit. Sums and means are DuckDB's (``fsum``, compensated): they may differ from numpy's in a
double's last bits, which the summary's rounding to the µs hides.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
import pandas as pd

from loadbench.analyze import stats
from loadbench.errors import RunDirError
from loadbench.record.columnar import PARQUET, convert_csv, parquet_damage, records_path
from loadbench.record.records import COLUMNS
from loadbench.record.salvage import RecordDamage

T = TypeVar("T")
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

# DuckDB's memory limit: it spills what does not fit into the store's temporary directory. 256 MB
# up to 32M records keeps the peak flat (30M records: 19.9 s at 0.47 GB, where 1 GB took 19.7 s
# at 0.72 GB); a longer run gets 8 bytes a record, since spilling more slows its sorts (100M:
# about 10 % slower at 256 MB; 128 MB ran out). A query that runs out anyway is retried under
# twice the limit, twice.
MEMORY_LIMIT_MB = 256
LIMIT_BYTES_PER_RECORD = 8
OUT_OF_MEMORY_RETRIES = 2
BATCH_ROWS = 1 << 20  # sorted values streamed a million at a time


# The records as the analyzer counts them (`loadbench.record.records.from_due_time`, wrk2's
# correction): a request of an open loop starts when it was due and its latency counts from then;
# ``sent_unix_s`` and ``service_ms`` keep the send and the latency from it. Closed loop: the same.
SCHEDULED = "intended_unix_s IS NOT NULL AND isfinite(intended_unix_s)"
DUE_VIEW = f"""CREATE VIEW requests AS SELECT * REPLACE (
    CASE WHEN {SCHEDULED} THEN intended_unix_s ELSE start_unix_s END AS start_unix_s,
    CASE WHEN {SCHEDULED} THEN latency_ms + (start_unix_s - intended_unix_s) * 1000.0 ELSE latency_ms END
        AS latency_ms),
    start_unix_s AS sent_unix_s, latency_ms AS service_ms FROM records"""

# With ``--retries`` the file's records are attempts (`loadbench.analyze.attempts`). The view
# ``written`` is the file itself; ``records`` is then the requests users saw, as
# `loadbench.analyze.attempts.split_attempts` collapses them: a request's start and due time are
# its first attempt's (first by attempt number, then start, then place in the file), its latency
# runs to its last attempt's end, every other column is the last attempt's, and it stands where
# its first attempt stands in the file (``file_row_number``, and a scan's order). The collapse is
# written once into a temporary Parquet file, in that order, with each request's attempt count
# and last attempt's row beside it (``lb_attempts``, ``lb_final_row``), so later queries read a
# plain file. Only the columns some record fills are written (the others, empty, cost as much to
# write as the rest): ``records`` gives the others back as NULL. The first attempt is the least of a struct whose
# fields are the order's keys and what the request takes of it. Only requests of several attempts
# (a few percent) are grouped into the join's table, so it stays small: a request of one attempt
# is its record (its latency plus a gap of 0).
ATTEMPT_NUMBER = "CASE WHEN attempt IS NULL OR isnan(attempt) THEN -1.0 ELSE attempt END"
HAS_ID = "coalesce(CAST(request_id AS VARCHAR), '') <> ''"
COLLAPSE = f"""WITH ends AS (
    SELECT id, min(k) AS f, max(k).r AS last_row, count(*) AS n FROM (
        SELECT CAST(request_id AS VARCHAR) AS id, {{{{'n': {ATTEMPT_NUMBER}, 's': start_unix_s,
        'r': file_row_number, 'i': intended_unix_s}}}} AS k FROM written WHERE {HAS_ID})
    GROUP BY id HAVING count(*) > 1)
SELECT * FROM (
    SELECT w.* REPLACE (
        CASE WHEN e.id IS NULL THEN w.start_unix_s ELSE e.f.s END AS start_unix_s,
        CASE WHEN e.id IS NULL THEN w.intended_unix_s ELSE e.f.i END AS intended_unix_s,
        CASE WHEN e.id IS NULL THEN w.latency_ms
            ELSE w.latency_ms + round((w.start_unix_s - e.f.s) * 1000.0, 3) END AS latency_ms,
        CASE WHEN e.id IS NULL THEN w.file_row_number ELSE e.f.r END AS file_row_number),
        coalesce(e.n, 1) AS lb_attempts, coalesce(e.last_row, w.file_row_number) AS lb_final_row
    FROM (SELECT {{columns}} FROM written) AS w LEFT JOIN ends AS e ON CAST(w.request_id AS VARCHAR) = e.id
    WHERE e.id IS NULL OR w.file_row_number = e.last_row)
ORDER BY file_row_number"""
# What the collapse reads besides the filled columns.
COLLAPSE_READS = ("start_unix_s", "latency_ms", "intended_unix_s", "attempt", "request_id", "file_row_number")
# The attempts as the sections that count them see them (`loadbench.analyze.window.Window`'s
# ``attempts``): an open loop's first attempt from its due time, a retry (attempt 2 on) from its
# own send (`loadbench.analyze.attempts.attempt_timeline`); beside each, its request's start (the
# window's rule: a retry counts where its request does), whether it was its request's last, and
# how many attempts its request took (joined for requests of several attempts only: any other is
# its own request, its last attempt). Without request ids the attempts are the requests.
RETRY = "attempt >= 2 AND NOT isnan(attempt)"
ATTEMPT_DUE = f"{SCHEDULED} AND NOT coalesce({RETRY}, false)"
REQUEST_START = f"CASE WHEN {SCHEDULED} THEN intended_unix_s ELSE start_unix_s END"
ATTEMPTS_VIEW = f"""CREATE VIEW attempts AS SELECT a.* REPLACE (
    CASE WHEN {ATTEMPT_DUE} THEN intended_unix_s ELSE start_unix_s END AS start_unix_s,
    CASE WHEN {ATTEMPT_DUE} THEN latency_ms + (start_unix_s - intended_unix_s) * 1000.0 ELSE latency_ms END
        AS latency_ms),
    coalesce(r.request_start, {REQUEST_START}) AS request_start_unix_s,
    coalesce(a.file_row_number = r.lb_final_row, true) AS final,
    coalesce(r.lb_attempts, 1) AS request_attempts
FROM written AS a LEFT JOIN (
    SELECT CAST(request_id AS VARCHAR) AS id, {REQUEST_START} AS request_start, lb_final_row, lb_attempts
    FROM lb_collapsed WHERE lb_attempts > 1) AS r ON CAST(a.request_id AS VARCHAR) = r.id"""
PLAIN_ATTEMPTS_VIEW = """CREATE VIEW attempts AS SELECT *, start_unix_s AS request_start_unix_s, true AS final,
    CAST(1 AS BIGINT) AS request_attempts FROM requests"""


def _quote(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


@dataclass
class RecordStore:
    """The records of one run directory, as DuckDB views: ``written`` (the file), ``records``
    (the requests users saw: ``written`` itself without retries), ``requests`` (`DUE_VIEW`) and
    ``attempts`` (`ATTEMPTS_VIEW`).

    Close it (or use it in a ``with``): the temporary directory holds DuckDB's spill files and,
    for a run recorded in CSV, the converted copy of its records.
    """

    con: Any  # duckdb.DuckDBPyConnection (duckdb is imported only where a store is opened)
    path: Path  # the run's record file
    damage: RecordDamage | None
    _tmp: Path
    filled: frozenset[str] = field(default_factory=frozenset)  # columns with at least one value
    records: int = 0  # how many
    limit_mb: int = MEMORY_LIMIT_MB  # DuckDB's memory limit now
    _types: int = 0  # ENUM types created (`ordinal`)
    # Whether some request took several attempts (``request_id``, `COLLAPSE`): ``records`` and
    # ``requests`` then hold the requests users saw, ``written`` and ``attempts`` the attempts.
    retried: bool = False
    # The values `values_at` found, by query: a later call for positions already found (the
    # report's percentile curve, after the analyzer's pass) needs no second sort.
    _found: dict[tuple[Any, ...], dict[int, float]] = field(default_factory=dict)

    @classmethod
    def open(cls, run_dir: Path) -> RecordStore:
        import duckdb

        path = records_path(run_dir)
        tmp = Path(tempfile.mkdtemp(prefix="loadbench-store-"))
        try:
            parquet = path
            if path.name != PARQUET:
                if not path.is_file():
                    raise RunDirError(f"{path} is missing")
                parquet = tmp / PARQUET
                convert_csv(path, parquet)
            con = duckdb.connect(
                config={
                    "memory_limit": f"{MEMORY_LIMIT_MB}MB",
                    "temp_directory": str(tmp / "spill"),
                    "threads": 2,
                }
            )
            con.execute("SET enable_progress_bar = false")  # our own output says what is going on
            con.execute(
                f"CREATE VIEW written AS SELECT * FROM read_parquet({_quote(parquet)}, file_row_number = true)"
            )
            store = cls(con, path, parquet_damage(parquet), tmp)
            store.filled = store._filled_columns(parquet)
            store.limit_mb = max(MEMORY_LIMIT_MB, store.records * LIMIT_BYTES_PER_RECORD >> 20)
            con.execute(f"SET memory_limit = '{store.limit_mb}MB'")
            store._check_records()
            store._views(tmp / "requests-collapsed.parquet")
            return store
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def close(self) -> None:
        self.con.close()
        shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> RecordStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- plain queries ---------------------------------------------------------------------

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """A query's (small) result as tuples."""
        result: list[tuple[Any, ...]] = self._retrying(lambda: self.con.execute(sql, list(params)).fetchall())
        return result

    def frame(self, sql: str, params: Sequence[Any] = ()) -> pd.DataFrame:
        """A query's (small) result as a DataFrame: counts by group, never the records."""
        frame: pd.DataFrame = self._retrying(lambda: self.con.execute(sql, list(params)).df())
        return frame

    def scan(
        self,
        sql: str,
        params: Sequence[Any],
        reduce: Callable[[Iterator[Any]], T],
        batch_rows: int = BATCH_ROWS,
    ) -> T:
        """``reduce`` of the query's result streamed past in Arrow record batches of ``batch_rows``
        rows (a scan keeps the file's order): what a pass over every row keeps, never the rows.
        A pass that runs out of memory starts again with a fresh stream; any other failure is one
        line (`_retrying`)."""
        return self._retrying(
            lambda: reduce(iter(self.con.sql(sql, params=list(params)).to_arrow_reader(batch_rows)))
        )

    def counted_values_at(self, counted: str, params: Sequence[Any], positions: npt.ArrayLike) -> FloatArray:
        """The values at 0-based ``positions`` of the sorted order of the values a query counts:
        ``counted`` gives each distinct value ``v`` and its count ``n``. Each position's value is
        the first whose running count passes it, found by an ASOF join: a hash aggregate and a sort
        of the distinct values, where µs-resolution times have far fewer of them than records."""
        wanted = np.asarray(positions, dtype=np.int64)
        rows = self.rows(
            f"""WITH ranked AS (SELECT v, sum(n) OVER (ORDER BY v ROWS UNBOUNDED PRECEDING) AS above
                FROM ({counted})),
            wanted AS (SELECT unnest(l) AS p, generate_subscripts(l, 1) AS i FROM (SELECT ?::BIGINT[] AS l))
            SELECT v FROM wanted ASOF JOIN ranked ON wanted.p < ranked.above ORDER BY i""",
            [*params, wanted.tolist()],
        )
        return np.array([v for (v,) in rows], dtype=np.float64)

    def pick(self, sql: str, params: Sequence[Any], positions: npt.ArrayLike) -> list[npt.NDArray[Any]]:
        """The rows at ``positions`` (0-based, in the order of the query's result: ORDER BY's, or a
        scan's file order, which DuckDB keeps) as one array per column, in the order of
        ``positions``. The result streams past in batches; only these rows are kept."""
        wanted = np.asarray(positions, dtype=np.int64)
        order = np.argsort(wanted, kind="stable")
        sorted_wanted = wanted[order]

        def one_pass(reader: Iterator[Any]) -> list[npt.NDArray[Any]]:
            parts: list[list[npt.NDArray[Any]]] = []
            offset = 0
            for batch in reader:
                if not parts:
                    parts = [[] for _ in range(batch.num_columns)]
                lo = np.searchsorted(sorted_wanted, offset, side="left")
                hi = np.searchsorted(sorted_wanted, offset + batch.num_rows, side="left")
                if hi > lo:
                    at = sorted_wanted[lo:hi] - offset
                    for part, column in zip(parts, batch.columns, strict=True):
                        part.append(column.to_numpy(zero_copy_only=False)[at])
                offset += batch.num_rows
                if hi == sorted_wanted.size:
                    break
            if offset < (sorted_wanted[-1] + 1 if sorted_wanted.size else 0):
                raise RunDirError(f"{self.path}: position {int(sorted_wanted[-1])} asked of {offset:,} rows")
            picked = [np.concatenate(part) for part in parts]
            out = []
            for values in picked:
                column = np.empty_like(values)
                column[order] = values
                out.append(column)
            return out

        if wanted.size == 0:
            return []
        return self.scan(sql, params, one_pass)

    def _retrying(self, work: Callable[[], T]) -> T:
        """``work()``; when DuckDB runs out of memory, again under twice the limit (at most
        `OUT_OF_MEMORY_RETRIES` times); any other failure of DuckDB's as one line."""
        import duckdb

        for attempt in range(OUT_OF_MEMORY_RETRIES + 1):
            try:
                return work()
            except (duckdb.Error, OSError) as exc:  # a stream's failure comes through Arrow as OSError
                line = " ".join(str(exc).split("\n")[0].split())[:300]
                if "out of memory" in line.lower() and attempt < OUT_OF_MEMORY_RETRIES:
                    self.limit_mb *= 2
                    self.con.execute(f"SET memory_limit = '{self.limit_mb}MB'")
                    continue
                raise RunDirError(
                    f"{self.path}: the analysis failed in DuckDB (memory limit {self.limit_mb} MB, "
                    f"spilling into {self._tmp}): {line}"
                ) from None
        raise AssertionError("unreachable")

    def _filled_columns(self, parquet: Path) -> frozenset[str]:
        """The columns with a value in some record, from the file's statistics (no scan): a column
        is empty when every row group holds only nulls, or only empty text. A row group without
        statistics counts as filled, which can only send a run to the in-memory path."""
        import pyarrow.parquet as pq

        metadata = pq.read_metadata(parquet)
        self.records = metadata.num_rows
        filled: set[str] = set()
        for group in range(metadata.num_row_groups):
            row_group = metadata.row_group(group)
            for index in range(row_group.num_columns):
                chunk = row_group.column(index)
                stats = chunk.statistics
                empty = stats is not None and (
                    stats.null_count == row_group.num_rows
                    or (stats.has_min_max and stats.min == "" and stats.max == "")
                )
                if not empty and chunk.path_in_schema in COLUMNS:
                    filled.add(chunk.path_in_schema)
        return frozenset(filled)

    def _views(self, collapsed: Path) -> None:
        """``records``, ``requests`` and ``attempts`` over ``written``: the attempts collapsed
        (`COLLAPSE`) when some request took several (`retried`)."""
        if "request_id" in self.filled:
            ((several, retries),) = self.rows(
                f"""SELECT (SELECT count(*) FROM (SELECT 1 FROM written WHERE {HAS_ID}
                GROUP BY CAST(request_id AS VARCHAR) HAVING count(*) > 1)),
                (SELECT count(*) FROM written WHERE {RETRY})"""
            )
            # Requests of one attempt each, none numbered a retry: the records are the requests.
            self.retried = bool(several or retries)
        if self.retried:
            types = self.rows("SELECT column_name, column_type FROM (DESCRIBE written)")
            kept = [name for name, _ in types if name in self.filled or name in COLLAPSE_READS]
            sql = COLLAPSE.format(columns=", ".join(f'"{name}"' for name in kept))
            self._retrying(lambda: self.con.execute(f"COPY ({sql}) TO {_quote(collapsed)} (FORMAT parquet)"))
            self.con.execute(f"CREATE VIEW lb_collapsed AS SELECT * FROM read_parquet({_quote(collapsed)})")
            listed = [f'"{name}"' if name in kept else f'NULL::{kind} AS "{name}"' for name, kind in types]
            self.con.execute(f"CREATE VIEW records AS SELECT {', '.join(listed)} FROM lb_collapsed")
            self.con.execute(DUE_VIEW)
            self.con.execute(ATTEMPTS_VIEW)
        else:
            self.con.execute("CREATE VIEW records AS SELECT * FROM written")
            self.con.execute(DUE_VIEW)
            self.con.execute(PLAIN_ATTEMPTS_VIEW)

    def ordinal(self, column: str, values: Sequence[str]) -> str:
        """An SQL expression for ``column`` as the position of its value in ``values`` (an ENUM:
        sorting by it is sorting integers, several times faster than sorting the texts)."""
        self._types += 1
        name = f"lb_enum_{self._types}"
        listed = ", ".join("'" + v.replace("'", "''") + "'" for v in values)
        self.con.execute(f"CREATE TYPE {name} AS ENUM ({listed})")
        return f'CAST("{column}" AS {name})'

    def _check_records(self) -> None:
        """The readers' rule (`loadbench.record.salvage.refused_rows`): every record has a finite
        start time and latency."""
        ((bad,),) = self.rows(
            "SELECT min(file_row_number) FROM written WHERE start_unix_s IS NULL OR latency_ms IS NULL "
            "OR NOT isfinite(start_unix_s) OR NOT isfinite(latency_ms)"
        )
        if bad is not None:
            raise RunDirError(
                f"{self.path} record {int(bad) + 1}: no finite start time or latency, or an infinite figure"
            )

    # --- sorted values ---------------------------------------------------------------------

    def sorted_query(self, value: str, where: str, group: str | None = None, source: str = "records") -> str:
        """The query of ``value`` over the rows of ``source`` (``records`` as written, or
        ``requests`` as the analyzer counts them: `DUE_VIEW`) matching ``where``, ascending
        (within each value of the expression ``group``, the groups in ascending order). Its
        parameters: those of the ``?`` in ``group`` first, then those in ``where``."""
        keyed = f", {group} AS g" if group else ""
        order = "g, v" if group else "v"
        return f"SELECT v FROM (SELECT {value} AS v{keyed} FROM {source} WHERE {where}) ORDER BY {order}"

    def percentiles(
        self,
        n: int,
        percents: npt.ArrayLike,
        value: str,
        where: str,
        params: Sequence[Any] = (),
        source: str = "records",
    ) -> FloatArray:
        """``np.percentile`` at ``percents`` of the ``n`` values of `sorted_query` (no group), bit for
        bit: the values at `loadbench.analyze.stats.percentile_points`, interpolated as numpy does."""
        lower, upper, gamma = stats.percentile_points(n, percents)
        values = self.values_at(np.concatenate([lower, upper]), value, where, params, source=source)
        return stats.interpolate(values[: lower.size], values[lower.size :], gamma)

    def values_at(
        self,
        positions: npt.ArrayLike,
        value: str,
        where: str,
        params: Sequence[Any] = (),
        group: str | None = None,
        source: str = "records",
    ) -> FloatArray:
        """The values at ``positions`` (0-based) of `sorted_query`'s order: one pass, any number of
        positions, only they kept; positions an earlier call found are not sorted for again."""
        wanted = np.asarray(positions, dtype=np.int64)
        out = np.full(wanted.size, np.nan)
        if wanted.size == 0:
            return out
        found = self._found.setdefault((value, where, tuple(params), group, source), {})
        if all(p in found for p in wanted.tolist()):
            return np.array([found[p] for p in wanted.tolist()], dtype=np.float64)
        (column,) = self.pick(self.sorted_query(value, where, group, source), params, wanted)
        out = np.asarray(column, dtype=np.float64)
        found.update(zip(wanted.tolist(), out.tolist(), strict=True))
        return out
