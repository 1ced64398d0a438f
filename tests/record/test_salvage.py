"""A damaged ``requests.csv`` (loadbench.record.salvage): every line that is a record is kept,
exactly as the file without the damaged lines reads; the damage is counted and placed in time.

Each case damages one small fixed record file the way a killed run, a full disk or a crash does,
and compares what is read with the frame `read_requests` gives for the same file without the bad
lines (which it reads in one ``pd.read_csv`` call, no salvage).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from helpers import run_cli

from loadbench.analyze import analyzer
from loadbench.errors import RunDirError
from loadbench.record import rundir, salvage
from loadbench.record.records import (
    COLUMNS,
    RequestRecord,
    format_record,
    read_requests,
    read_requests_checked,
)
from loadbench.record.salvage import RecordDamage, damage_of

HEADER = (",".join(COLUMNS) + "\n").encode()
STARTED = 1_765_000_000.0  # 2025-12-06 05:46:40 UTC


def _record(i: int) -> RequestRecord:
    ok = i % 4 != 3
    return RequestRecord(
        STARTED + 1.0 + i * 0.5,
        10.0 + i,
        ["POST /predict", "GET /health", 'say "hi", there'][i % 3],
        "POST",
        200 if ok else 503,
        100 + i,
        ok,
        "" if ok else "HTTPError: 503, busy",
        intended_unix_s=STARTED + 1.0 + i * 0.5 - 0.001 if i % 2 else None,
        extras={"output_tokens": i, "itl_ms": [1.5, 2.0], "expected": f"{i % 2:04d}"} if i % 3 == 0 else None,
    )


RECORDS = [_record(i) for i in range(12)]
LINES = [format_record(r).encode() for r in RECORDS]  # record i is line i + 2 (the header is line 1)

# A damaged file, the same file without its damaged lines, the numbers of the lines dropped, and
# the records read just before the first and just after the last (their indexes; None: none).
Case = tuple[bytes, bytes, list[int], int | None, int | None]


def _start(i: int) -> float:
    return float(f"{RECORDS[i].start_unix_s:.6f}")


def _replace(index: int, line: bytes, after: int | None = -1) -> Case:
    """Record ``index``'s line replaced by ``line``."""
    damaged = HEADER + b"".join(LINES[:index]) + line + b"".join(LINES[index + 1 :])
    clean = HEADER + b"".join(LINES[:index] + LINES[index + 1 :])
    return damaged, clean, [index + 2], index - 1 if after == -1 else after, index + 1


def _field(index: int, column: str, value: str) -> bytes:
    """Record ``index``'s line with one field's text replaced (a surrogate: a byte that is no UTF-8)."""
    fields = next(csv.reader([LINES[index].decode()]))
    fields[COLUMNS.index(column)] = value
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(fields)
    return out.getvalue().encode("utf-8", "surrogateescape")


def _joined(index: int, prefix: bytes) -> Case:
    """``prefix`` (what was left of a line, with no newline) joined to record ``index``'s line."""
    damaged = HEADER + b"".join(LINES[:index]) + prefix + b"".join(LINES[index:])
    return damaged, HEADER + b"".join(LINES[:index] + LINES[index + 1 :]), [index + 2], index - 1, index + 1


CASES: dict[str, Callable[[], Case]] = {
    "a line of zeros (a crash, a full disk)": lambda: _replace(5, b"\0" * (len(LINES[5]) - 1) + b"\n"),
    "zeros without a newline, joined to the next line": lambda: _joined(5, b"\0" * 40),
    "a field too many": lambda: _replace(4, LINES[4][:-1] + b",x\n"),
    "a field too many on the first line": lambda: _replace(0, LINES[0][:-1] + b",x\n", after=None),
    "a cut line joined to the next (too many fields)": lambda: _joined(5, LINES[4][:30]),
    "too few fields (a line cut before its status)": lambda: _replace(4, LINES[4][:25] + b"\n"),
    "a latency that is no number": lambda: _replace(6, _field(6, "latency_ms", "12.x5")),
    "an infinite start": lambda: _replace(6, _field(6, "start_unix_s", "inf")),
    "no latency": lambda: _replace(6, _field(6, "latency_ms", "")),
    "an infinite time to first token": lambda: _replace(6, _field(6, "ttft_ms", "-inf")),
    "a status of 25 digits": lambda: _replace(7, _field(7, "status", "9" * 25)),
    "a fraction for bytes": lambda: _replace(7, _field(7, "response_bytes", "1.5")),
    "invalid UTF-8 in a number": lambda: _replace(3, _field(3, "latency_ms", "1\udcff2")),
    "a stray quote opening a field": lambda: _replace(
        1, LINES[1].replace(b",GET /health,", b',"GET /health,')
    ),
    # pandas reads "True" as 1.0 where a guess from the text doubts it, and refuses blanks that
    # a guess takes for an empty field: the parser decides, not the guess.
    "a blank latency": lambda: _replace(6, _field(6, "latency_ms", "  ")),
    "a latency of True (a record) beside a damaged line": lambda: (
        HEADER
        + b"".join(LINES[:2])
        + _field(2, "latency_ms", "True")
        + b"".join(LINES[3:6])
        + b"\0\n"
        + b"".join(LINES[7:]),
        HEADER + b"".join(LINES[:2]) + _field(2, "latency_ms", "True") + b"".join(LINES[3:6] + LINES[7:]),
        [8],
        5,
        7,
    ),
    "the first and the last record": lambda: (
        HEADER + b"x\n" + b"".join(LINES[1:-1]) + b"\0\0\n",
        HEADER + b"".join(LINES[1:-1]),
        [2, 13],
        None,
        None,
    ),
    "three lines apart": lambda: (
        HEADER
        + b"".join(LINES[:2])
        + b"1,2,3\n"
        + b"".join(LINES[2:6])
        + b"\xff\xfe\n"
        + b"".join(LINES[6:9])
        + b"nan,1,a,GET,200,1,1,\n"
        + b"".join(LINES[9:]),
        HEADER + b"".join(LINES),
        [4, 9, 13],
        1,
        9,
    ),
}


def _read(tmp_path: Path, name: str, content: bytes) -> tuple[pd.DataFrame, RecordDamage | None]:
    path = tmp_path / name
    path.write_bytes(content)
    return read_requests_checked(path)


@pytest.fixture(params=[salvage.BLOCK_LINES, 3], ids=["one block", "blocks of 3 lines"])
def block_lines(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(salvage, "BLOCK_LINES", request.param)
    return int(request.param)


@pytest.mark.parametrize("case", CASES)
def test_a_damaged_line_is_dropped_and_the_rest_read_exactly(
    tmp_path: Path, case: str, block_lines: int
) -> None:
    damaged, clean, dropped, after, before = CASES[case]()
    frame, damage = _read(tmp_path, "requests.csv", damaged)
    expected, none = _read(tmp_path, "clean.csv", clean)
    assert none is None
    pd.testing.assert_frame_equal(frame, expected)
    assert damage is not None and damage_of(frame) is damage
    assert damage == RecordDamage(
        lines_dropped=len(dropped),
        cut_off=False,
        first_line=dropped[0],
        last_line=dropped[-1],
        after_unix_s=None if after is None else _start(after),
        before_unix_s=None if before is None else _start(before),
        records_read=len(expected),
    )
    assert read_requests(tmp_path / "requests.csv").equals(frame)


def test_a_cut_off_last_line_is_a_gentle_notice(tmp_path: Path) -> None:
    frame, damage = _read(tmp_path, "requests.csv", HEADER + b"".join(LINES) + LINES[0][:17])
    pd.testing.assert_frame_equal(frame, _read(tmp_path, "clean.csv", HEADER + b"".join(LINES))[0])
    assert damage == RecordDamage(0, True, None, None, _start(11), None, 12)
    assert not damage.warns and damage.records_lost == 1
    assert damage.notice() == (
        "requests.csv: the last record was cut off (the run was killed while writing): 1 record lost at the end"
    )
    assert _read(tmp_path, "blanks.csv", HEADER + b"".join(LINES) + b"  ")[1] is None


def test_damage_and_a_cut_off_last_line_together(tmp_path: Path) -> None:
    damaged, clean, *_ = _replace(3, b"\0\0\0\n")
    frame, damage = _read(tmp_path, "requests.csv", damaged + b"1765000099.5,1")
    pd.testing.assert_frame_equal(frame, _read(tmp_path, "clean.csv", clean)[0])
    assert damage == RecordDamage(1, True, 5, 5, _start(2), None, 11)
    assert damage.warns and damage.records_lost == 2
    assert damage.notice() == (
        "requests.csv is damaged: 2 records lost from 05:46:42.0 UTC to the end: 1 unreadable line "
        "(line 5) dropped, and the last record was cut off; 11 records read"
    )


def test_the_notice_says_how_many_and_when_in_one_line() -> None:
    between = RecordDamage(3, False, 5, 9, STARTED + 3.25, STARTED + 9.81, 1234)
    assert between.notice() == (
        "requests.csv is damaged: 3 records lost between 05:46:43.2 and 05:46:49.9 UTC: "
        "3 unreadable lines (lines 5–9) dropped; 1,234 records read"
    )
    assert "from the start to 05:46:41.0 UTC" in RecordDamage(1, False, 2, 2, None, STARTED + 1, 5).notice()
    assert "with no record read before or after them" in RecordDamage(2, False, 2, 3, None, None, 0).notice()
    odd = RecordDamage(1, False, 3, 3, 1e300, -1e300, 2).notice()  # finite, but on no calendar
    assert "1000000" in odd and "(unix time)" in odd and "\n" not in odd


def test_invalid_utf8_in_a_text_is_kept_as_replacement_characters(tmp_path: Path) -> None:
    line = LINES[1].replace(b"GET /health", b"GET /h\xffealth")
    frame, damage = _read(tmp_path, "requests.csv", HEADER + LINES[0] + line)
    assert damage is None  # the numbers are whole: the record is worth keeping
    assert frame["name"].tolist() == ["POST /predict", "GET /h\ufffdealth"]


@pytest.mark.parametrize(
    "content",
    [b"", HEADER, HEADER + b"\n\n", b"start_unix_s,lat"],
    ids=["empty", "header", "blank lines", "cut header"],
)
def test_no_records_is_no_damage(tmp_path: Path, content: bytes) -> None:
    frame, damage = _read(tmp_path, "requests.csv", content)
    assert len(frame) == 0 and list(frame.columns) == list(COLUMNS) and damage is None


def test_a_header_then_only_damage(tmp_path: Path) -> None:
    frame, damage = _read(tmp_path, "requests.csv", HEADER + b"\0" * 100 + b"\nx,y\n" + LINES[0][:10])
    assert len(frame) == 0 and list(frame.columns) == list(COLUMNS)
    assert damage == RecordDamage(2, True, 2, 3, None, None, 0)


def test_a_damaged_header_is_a_one_line_error(tmp_path: Path) -> None:
    path = tmp_path / "requests.csv"
    path.write_bytes(b"\0" * 30 + HEADER[30:] + b"".join(LINES))
    with pytest.raises(RunDirError, match="is not a request record file: missing column") as info:
        read_requests(path)
    assert "\n" not in str(info.value)


def test_the_comma_screen_refuses_only_lines_that_cannot_parse(tmp_path: Path) -> None:
    """Without the screen (``min_fields`` 1), the same lines are kept: it only saves parsing."""
    damaged = CASES["three lines apart"]()[0]
    (tmp_path / "requests.csv").write_bytes(damaged + LINES[0][:5] + b"\n")
    dtypes = {c: str(t) for c, t in read_requests(tmp_path / "requests.csv").dtypes.items()}
    results = []
    for min_fields in (7, 1):
        with open(tmp_path / "requests.csv", "rb") as f:
            results.append(salvage.salvage(f, dtypes, True, min_fields, cut_off=False))
    (screened, screened_damage), (parsed, parsed_damage) = results
    assert screened is not None and parsed is not None
    pd.testing.assert_frame_equal(screened, parsed)
    assert screened_damage == parsed_damage and screened_damage is not None
    assert screened_damage.lines_dropped == 4


def _run_dir(tmp_path: Path, requests: bytes) -> Path:
    run = tmp_path / "run"
    run.mkdir(parents=True)
    meta = {
        "format": 1, "run_id": "r", "target": "http://127.0.0.1:8000", "scenario": "json_post",
        "status": rundir.STATUS_COMPLETE, "started_unix_s": STARTED, "ended_unix_s": STARTED + 8.0,
        "settings": {"users": 2, "warmup_s": 0.0, "duration_s": 8.0},
    }  # fmt: skip
    rundir.write_json(run / rundir.META, meta)
    (run / rundir.REQUESTS).write_bytes(requests)
    return run


def test_the_analysis_says_it_once_a_warning_for_damage_a_notice_for_a_cut(tmp_path: Path) -> None:
    damaged = _replace(5, b"\0" * 50 + b"\n")[0]
    summary = analyzer.analyze_run(_run_dir(tmp_path / "damaged", damaged))
    said = [n for n in summary["notices"] if "requests.csv" in n]
    assert said == [f"WARNING: {summary['validity']['warnings'][-1]}"]
    assert "1 record lost between 05:46:43.0 and 05:46:44.0 UTC" in said[0]
    assert summary["requests"]["total"] == 11
    cut = analyzer.analyze_run(_run_dir(tmp_path / "cut", HEADER + b"".join(LINES) + LINES[0][:9]))
    assert [n for n in cut["notices"] if "requests.csv" in n] == [
        "requests.csv: the last record was cut off (the run was killed while writing): 1 record lost at the end"
    ]
    assert not any("requests.csv" in w for w in cut["validity"].get("warnings", []))


def test_report_prints_the_damage_in_one_line(tmp_path: Path) -> None:
    damaged = _replace(5, b"\0" * 50 + b"\n")[0]
    run = _run_dir(tmp_path, damaged + b"17650")
    result = run_cli("report", str(run))
    assert result.returncode == 0, result.stderr
    said = [line for line in result.stdout.splitlines() if "requests.csv is damaged" in line]
    assert len(said) == 1 and "2 records lost" in said[0] and "Traceback" not in result.stderr
    summary = json.loads((run / rundir.SUMMARY).read_text())
    assert any("requests.csv is damaged" in n for n in summary["notices"])
    assert "requests.csv is damaged: 2 records lost" in (run / rundir.REPORT).read_text()
