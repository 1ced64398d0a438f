"""``loadbench run --records parquet``: the run ends with requests.parquet, read by every command."""

from __future__ import annotations

import json
from pathlib import Path

from helpers import run_cli

from loadbench.record import columnar, rundir
from loadbench.record.records import COLUMNS


def test_a_parquet_run_ends_with_parquet_records_that_report_reads(tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ("--demo", "-u", "2", "-d", "2s", "--warmup", "0s", "--no-sampler", "--quiet")
    result = run_cli("run", *args, "--records", "parquet", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert (out / columnar.PARQUET).exists() and not (out / "requests.csv").exists()
    meta = json.loads((out / rundir.META).read_text())
    assert meta["format"] == 2 and meta["settings"]["records"] == "parquet" and "records_notice" not in meta
    summary = json.loads((out / rundir.SUMMARY).read_text())
    frame = columnar.read_run_requests(out)
    assert 0 < summary["requests"]["total"] <= len(frame)
    again = run_cli("report", str(out))
    assert again.returncode == 0, again.stderr
    assert json.loads((out / rundir.SUMMARY).read_text()) == summary


def test_a_run_killed_before_the_conversion_keeps_its_csv_records(tmp_path: Path) -> None:
    writer = columnar.ParquetRecordWriter(tmp_path)
    writer.write_line("1700000000.000000,5.000,/a,POST,200,5,1," + "," * (len(COLUMNS) - 8) + "\n")
    writer.flush()  # the recorder's periodic flush; then the process dies: close never comes
    assert columnar.records_path(tmp_path) == tmp_path / "requests.csv"
    assert len(columnar.read_run_requests(tmp_path)) == 1
    writer.csv.close()
