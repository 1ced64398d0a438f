"""Parquet request records (``--records parquet``, run format 2) against the CSV they come from."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from helpers import REPO, run_cli

from loadbench.analyze.analyzer import analyze_run
from loadbench.errors import RunDirError
from loadbench.record import columnar, rundir
from loadbench.record.records import COLUMNS, RequestRecord, read_requests, write_requests
from loadbench.record.salvage import damage_of

DATA = Path(__file__).resolve().parents[1] / "data"


def _records() -> list[RequestRecord]:
    """Every kind of field: quotes and commas, a label that looks like a number, token counts,
    inter-token gaps, what the server said, a retry's attempt, an open loop's due time."""
    return [
        RequestRecord(
            1700000000.123456, 12.345, "/predict", "POST", 200, 1234, True, extras={"expected": "0001"}
        ),
        RequestRecord(1700000000.5, 0.5, 'name, with "quotes", and commas', "GET", 200, 0, True),
        RequestRecord(
            1700000001.000001, 30000.0, "/v2/models/digits/infer", "POST", 0, 0, False, "ReadTimeout: x"
        ),
        RequestRecord(
            1700000002.0, 3.0, "NA", "GET", 503, 17, False, "HTTPError: 503, busy", retry_after="5"
        ),
        RequestRecord(
            1700000003.25,
            4.0,
            "/v1/chat/completions",
            "POST",
            200,
            900,
            True,
            intended_unix_s=1700000003.2,
            extras={"ttft_ms": 1.5, "input_tokens": 13, "output_tokens": 16, "itl_ms": [0.5, 0.75]},
        ),
        RequestRecord(1700000004.0, 7.0, "/a", "POST", 200, 5, True, replica="é-2", server_ms=6.25),
    ]


def _sparse(frame: pd.DataFrame) -> pd.DataFrame:
    """The CSV reader's frame as every reader of a run gives it: float columns without a value sparse."""
    return columnar.sparse_empty_columns(frame)


@pytest.fixture
def csv_file(tmp_path: Path) -> Path:
    path = tmp_path / "requests.csv"
    write_requests(path, _records())
    return path


def test_parquet_reads_back_the_frame_the_csv_gives(csv_file: Path) -> None:
    target = csv_file.with_name(columnar.PARQUET)
    assert columnar.convert_csv(csv_file, target, row_group_rows=2) == len(_records())
    pd.testing.assert_frame_equal(columnar.read_parquet_requests(target), _sparse(read_requests(csv_file)))
    assert not target.with_name(target.name + ".tmp").exists()


def test_an_older_file_without_the_last_columns_converts_with_them_empty(csv_file: Path) -> None:
    lines = csv_file.read_text(encoding="utf-8").splitlines()
    old = csv_file.with_name("old.csv")
    old.write_text("".join(",".join(line.split(",")[:9]) + "\n" for line in lines[:2]), encoding="utf-8")
    target = old.with_name(columnar.PARQUET)
    columnar.convert_csv(old, target)
    frame = columnar.read_parquet_requests(target)
    pd.testing.assert_frame_equal(frame, _sparse(read_requests(old)))
    assert frame["server_ms"].isna().all() and (frame["cache"] == "").all()


def test_a_partial_last_line_is_left_out_and_an_empty_file_gives_no_records(csv_file: Path) -> None:
    with open(csv_file, "a", encoding="utf-8") as f:
        f.write("1700000009.0,5.0,/cut")
    target = csv_file.with_name(columnar.PARQUET)
    assert columnar.convert_csv(csv_file, target) == len(_records())
    pd.testing.assert_frame_equal(columnar.read_parquet_requests(target), _sparse(read_requests(csv_file)))
    header_only = csv_file.with_name("header.csv")
    header_only.write_text(",".join(COLUMNS) + "\n", encoding="utf-8")
    assert columnar.convert_csv(header_only, target) == 0
    pd.testing.assert_frame_equal(columnar.read_parquet_requests(target), _sparse(read_requests(header_only)))


def test_a_damaged_csv_converts_what_is_readable_and_keeps_what_was_lost(tmp_path: Path) -> None:
    writer = columnar.ParquetRecordWriter(tmp_path)
    for record in _records():
        writer.write(record)
    writer.write_line("1700000005.0,not-a-number,/a,POST,200,5,1," + "," * (len(COLUMNS) - 8) + "\n")
    writer.write(RequestRecord(1700000006.0, 1.0, "/a", "POST", 200, 5, True))
    writer.write_line("1700000007.0,inf,/a,POST,200,5,1," + "," * (len(COLUMNS) - 8) + "\n")
    writer.close()
    assert writer.notice is None and not (tmp_path / "requests.csv").exists()
    frame = columnar.read_run_requests(tmp_path)
    assert len(frame) == len(_records()) + 1
    damage = damage_of(frame)
    assert damage is not None and damage.lines_dropped == 2 and not damage.cut_off
    assert not list(tmp_path.glob("*.tmp"))


def test_a_cut_off_last_line_is_said_from_the_parquet_file_as_from_the_csv(csv_file: Path) -> None:
    with open(csv_file, "a", encoding="utf-8") as f:
        f.write("1700000009.0,5.0,/cut")
    target = csv_file.with_name(columnar.PARQUET)
    columnar.convert_csv(csv_file, target)
    from_csv, from_parquet = (
        damage_of(read_requests(csv_file)),
        damage_of(columnar.read_parquet_requests(target)),
    )
    assert from_csv is not None and from_csv.cut_off and from_parquet == from_csv


def test_a_file_that_is_no_record_file_stays_csv_and_the_writer_says_why(tmp_path: Path) -> None:
    (tmp_path / "requests.csv").write_text("this,is,no,record,file\n1,2,3,4,5\n", encoding="utf-8")
    writer = columnar.ParquetRecordWriter(tmp_path)
    writer.close()
    assert (tmp_path / "requests.csv").exists() and not (tmp_path / columnar.PARQUET).exists()
    assert writer.notice is not None and "requests.csv" in writer.notice and "\n" not in writer.notice
    assert not list(tmp_path.glob("*.tmp"))


def test_the_writer_converts_at_close_once_and_the_run_directory_prefers_parquet(tmp_path: Path) -> None:
    writer = columnar.records_writer(tmp_path, "parquet")
    for record in _records():
        writer.write(record)
    writer.flush()
    assert columnar.records_path(tmp_path).name == "requests.csv"  # during the run: the CSV
    writer.close()
    writer.close()  # the recorder may close twice
    assert columnar.records_path(tmp_path).name == columnar.PARQUET
    assert not (tmp_path / "requests.csv").exists() and writer.notice is None
    assert len(columnar.read_run_requests(tmp_path)) == len(_records())
    plain = columnar.records_writer(tmp_path, "csv")
    plain.close()
    assert isinstance(plain, type(writer.csv))


def test_a_file_that_is_no_parquet_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / columnar.PARQUET
    bad.write_bytes(b"PAR1 not really")
    with pytest.raises(RunDirError, match="cannot be read") as caught:
        columnar.read_parquet_requests(bad)
    assert "\n" not in str(caught.value)


def test_csv_export_of_parquet_reads_back_the_same_records(csv_file: Path) -> None:
    target = csv_file.with_name(columnar.PARQUET)
    columnar.convert_csv(csv_file, target)
    out = io.BytesIO()
    columnar.write_csv(target, out)
    exported = csv_file.with_name("exported.csv")
    exported.write_bytes(out.getvalue())
    assert exported.read_text(encoding="utf-8").splitlines()[0] == ",".join(COLUMNS)
    pd.testing.assert_frame_equal(read_requests(exported), read_requests(csv_file))
    copied = io.BytesIO()
    columnar.write_csv(csv_file, copied)  # a CSV source: its whole lines, as they are
    assert copied.getvalue() == csv_file.read_bytes()


@pytest.mark.parametrize("run", ["run-small", "run-demo-json_post", "run-demo-openai_chat"])
def test_every_figure_of_the_summary_is_the_same_from_either_file(tmp_path: Path, run: str) -> None:
    as_csv, as_parquet = tmp_path / "csv", tmp_path / "parquet"
    shutil.copytree(DATA / run, as_csv)
    shutil.copytree(DATA / run, as_parquet)
    columnar.convert_csv(as_parquet / "requests.csv", as_parquet / columnar.PARQUET)
    (as_parquet / "requests.csv").unlink()
    assert analyze_run(as_parquet) == analyze_run(as_csv)
    csv_series = (as_csv / rundir.TIMESERIES).read_bytes()
    assert (as_parquet / rundir.TIMESERIES).read_bytes() == csv_series


def test_export_converts_a_run_in_place_and_writes_csv_back(tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(DATA / "run-small", run)
    before = read_requests(run / "requests.csv")
    converted = run_cli("export", str(run), "--parquet")
    assert converted.returncode == 0, converted.stderr
    assert "records converted" in converted.stderr
    assert not (run / "requests.csv").exists() and (run / columnar.PARQUET).exists()
    assert json.loads((run / rundir.META).read_text())["format"] == rundir.FORMAT_VERSION
    again = run_cli("export", str(run), "--parquet")
    assert again.returncode == 0 and "already" in again.stderr
    out = tmp_path / "out.csv"
    exported = run_cli("export", str(run), "--csv", "--out", str(out))
    assert exported.returncode == 0, exported.stderr
    pd.testing.assert_frame_equal(read_requests(out), before)
    to_stdout = run_cli("export", str(run), "--csv")
    assert to_stdout.stdout.encode() == out.read_bytes()


def test_export_does_not_convert_a_run_that_is_still_being_written(tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(DATA / "run-small", run)
    meta = json.loads((run / rundir.META).read_text())
    rundir.write_json(run / rundir.META, {**meta, "status": rundir.STATUS_RUNNING, "ended_unix_s": None})
    (run / "requests.csv").touch()  # the recorder's last flush, just now
    live = run_cli("export", str(run), "--parquet")
    assert live.returncode == 2 and "still being written" in live.stderr
    assert (run / "requests.csv").exists() and not (run / columnar.PARQUET).exists()
    old = (run / "requests.csv").stat().st_mtime - 3600
    os.utime(run / "requests.csv", (old, old))  # killed an hour ago: its records convert
    assert run_cli("export", str(run), "--parquet").returncode == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--csv"], "meta.json"),
        (["--parquet", "--out", "x.csv"], "--out goes with --csv"),
    ],
)
def test_export_refuses_bad_input_in_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    target = tmp_path / "nothing"
    target.mkdir()
    if "--parquet" in args:
        shutil.copytree(DATA / "run-small", target, dirs_exist_ok=True)
    result = run_cli("export", str(target), *args)
    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_export_to_a_reader_that_stops_early_ends_quietly(tmp_path: Path) -> None:
    # `loadbench export DIR --csv | head`: the pipe closes mid-write; like Unix tools, no error.
    run = tmp_path / "run"
    shutil.copytree(DATA / "run-small", run)
    write_requests(
        run / "requests.csv",
        [RequestRecord(1700000000.0 + i, 5.0, "/a", "POST", 200, 5, True) for i in range(20_000)],
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "loadbench", "export", str(run), "--csv"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO,
    )  # fmt: skip
    assert process.stdout is not None and process.stderr is not None
    assert process.stdout.readline().startswith(b"start_unix_s,")
    process.stdout.close()  # the reader is gone, far before the 1.5 MB of records are written
    assert process.wait(timeout=60) == 0
    with process.stderr:
        assert process.stderr.read() == b""
