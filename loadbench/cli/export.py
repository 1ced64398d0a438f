"""``loadbench export DIR --csv | --parquet``: a run's request records in the other format.

``--csv`` writes the records (from ``requests.parquet`` or ``requests.csv``) as CSV to ``--out``
or standard output, for a spreadsheet or a tool that reads CSV; ``--parquet`` converts a run
directory of format 1 in place (``requests.csv`` -> ``requests.parquet``, meta.json format 2): the
migration of docs/run-format.md. Both stream: memory does not grow with the record count.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

from loadbench.cli.options import Call
from loadbench.errors import UsageError
from loadbench.record import rundir

# A run whose meta.json says running and whose CSV changed this recently is taken for a live one
# (the recorder flushes every 0.5 s); older, it was killed, and its records can be converted.
LIVE_S = 10.0


def add_export_parser(commands: Any) -> None:
    export = commands.add_parser(
        "export",
        help="write a run's request records as CSV, or convert a run directory to Parquet records",
        description="Write a run directory's request records in another format. --csv: as CSV (the "
        "columns of docs/run-format.md, header first) to --out or standard output, from requests.parquet "
        "or requests.csv. --parquet: convert a run directory's requests.csv into requests.parquet in "
        "place (run format 2, a tenth of the size or less: what `loadbench run` writes unless --records csv). "
        "Examples: loadbench export reports/RUN --csv > requests.csv; loadbench export reports/RUN --parquet",
    )
    export.set_defaults(handler=cmd_export)
    export.add_argument(
        "run_dir", type=Path, metavar="DIR", help="a run directory written by `loadbench run`"
    )
    form = export.add_mutually_exclusive_group(required=True)
    form.add_argument(
        "--csv", action="store_true", help="write the records as CSV (to --out, or standard output)"
    )
    form.add_argument(
        "--parquet", action="store_true", help="convert DIR's requests.csv into requests.parquet in place"
    )
    export.add_argument(
        "--out", type=Path, metavar="FILE", help="with --csv: the file to write (default: standard output)"
    )


def cmd_export(call: Call) -> int:
    # Here, not at the top: every command's parser is built at start, and this module's imports
    # (pyarrow, pandas: 1.7 s) would slow `loadbench --help` and every command that needs neither.
    from loadbench.record.columnar import PARQUET, convert_csv, records_path, write_csv

    run_dir: Path = call.args.run_dir
    meta = rundir.read_meta(run_dir)  # one line for a directory that is not a run
    source = records_path(run_dir)
    if call.args.parquet:
        if call.args.out is not None:
            raise UsageError("--out goes with --csv; --parquet converts the run directory in place")
        if source.name == PARQUET:
            print(f"{run_dir}: the records are in {PARQUET} already", file=sys.stderr)
            return 0
        age_s = time.time() - source.stat().st_mtime
        if meta.get("status") == rundir.STATUS_RUNNING and age_s < LIVE_S:
            # A run going on appends to the CSV: converting and deleting it would lose what comes next.
            raise UsageError(
                f"{run_dir} is still being written ({source.name} changed {age_s:.0f} s ago, meta.json "
                "says running): convert it once the run has ended"
            )
        records = convert_csv(source, run_dir / PARQUET)
        meta["format"] = rundir.FORMAT_VERSION
        rundir.write_json(run_dir / rundir.META, meta)
        source.unlink()
        print(f"{run_dir}: {records:,} records converted into {PARQUET}", file=sys.stderr)
        return 0
    out = call.args.out
    if out is not None and out.resolve() == source.resolve():
        raise UsageError(f"--out {out} is the run's own record file")
    if out is None:
        try:
            write_csv(source, sys.stdout.buffer)
            sys.stdout.flush()
        except BrokenPipeError:
            # The reader stopped (`| head`): as Unix tools do, end quietly; nothing more to flush.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    else:
        with open(out, "wb") as f:
            write_csv(source, f)
    return 0
