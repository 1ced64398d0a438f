"""``loadbench run --records parquet``: what a killed run keeps (the end-to-end runs are the Ctrl-C and
SIGKILL tests of tests/cli/test_cli.py, which record in Parquet)."""

from __future__ import annotations

from pathlib import Path

from loadbench.record import columnar
from loadbench.record.records import COLUMNS


def test_a_run_killed_before_the_conversion_keeps_its_csv_records(tmp_path: Path) -> None:
    writer = columnar.ParquetRecordWriter(tmp_path)
    writer.write_line("1700000000.000000,5.000,/a,POST,200,5,1," + "," * (len(COLUMNS) - 8) + "\n")
    writer.flush()  # the recorder's periodic flush; then the process dies: close never comes
    assert columnar.records_path(tmp_path) == tmp_path / "requests.csv"
    assert len(columnar.read_run_requests(tmp_path)) == 1
    writer.csv.close()
