"""Record writers on a disk that refuses writes: one line saying why, no exception, bounded memory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from loadbench.errors import RunDirError
from loadbench.record import rundir
from loadbench.record.columnar import ParquetRecordWriter
from loadbench.record.records import RequestRecord, RequestWriter, read_requests
from loadbench.record.series import UsersWriter

FULL = Path("/dev/full")  # every write: ENOSPC, "No space left on device"

pytestmark = pytest.mark.skipif(not FULL.exists(), reason="no /dev/full on this system")


def _record(n: int) -> RequestRecord:
    return RequestRecord(1700000000.0 + n, 5.0, "/a", "POST", 200, 5, True)


def test_a_full_disk_is_a_failure_not_an_exception_and_later_records_are_counted_not_kept(
    tmp_path: Path,
) -> None:
    path = tmp_path / "requests.csv"
    path.symlink_to(FULL)  # "new": empty, so the header goes into the buffer first
    writer = RequestWriter(path)
    for n in range(3):
        writer.write(_record(n))
    writer.flush()
    assert writer.failure == "cannot write requests.csv: No space left on device"
    for n in range(1000):
        writer.write(_record(n))
    assert writer.lost == 1003
    assert not isinstance(writer._pending, list)
    writer.flush()
    writer.close()
    writer.close()


def test_records_written_before_the_disk_filled_stay_readable(tmp_path: Path) -> None:
    path = tmp_path / "requests.csv"
    writer = RequestWriter(path)
    for n in range(5):
        writer.write(_record(n))
    writer.flush()
    writer._file.close()
    writer._file = open(FULL, "w", encoding="utf-8")  # noqa: SIM115  (the disk fills now)
    writer.write(_record(5))
    writer.close()
    assert writer.failure is not None and writer.lost == 1
    assert len(read_requests(path)) == 5


def test_the_users_timeline_and_the_parquet_writer_say_the_same(tmp_path: Path) -> None:
    users_path = tmp_path / "users.csv"
    users_path.symlink_to(FULL)
    users = UsersWriter(users_path)
    users.write(1700000000.0, 4)
    users.flush()
    users.write(1700000001.0, 4)
    users.close()
    assert users.failure == "cannot write users.csv: No space left on device"
    (tmp_path / "requests.csv").symlink_to(FULL)
    parquet = ParquetRecordWriter(tmp_path)
    parquet.write(_record(0))
    parquet.flush()
    assert parquet.failure == "cannot write requests.csv: No space left on device"
    parquet.close()  # the conversion reads the (empty) CSV; nothing raises


def test_json_files_refused_by_the_disk_are_one_line_and_the_old_file_stays(tmp_path: Path) -> None:
    meta = tmp_path / rundir.META
    rundir.write_json(meta, {"status": "running"})
    os.chmod(tmp_path, 0o500)  # no new file here: mkstemp fails as on a disk without room
    try:
        if os.access(tmp_path, os.W_OK):
            pytest.skip("root ignores directory permissions")
        with pytest.raises(RunDirError, match="cannot write") as caught:
            rundir.write_json(meta, {"status": "complete"})
    finally:
        os.chmod(tmp_path, 0o700)
    assert "\n" not in str(caught.value)
    assert rundir.read_json(meta) == {"status": "running"}
