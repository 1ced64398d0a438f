"""Tests of loadbench.record.records: the requests.csv writer and reader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from loadbench.errors import RunDirError
from loadbench.record.records import (
    COLUMNS,
    MAX_ERROR_CHARS,
    RequestRecord,
    RequestWriter,
    one_line,
    read_requests,
    read_requests_checked,
    write_requests,
)

HEADER = ",".join(COLUMNS) + "\n"
EXPECTED_DTYPES = {
    "start_unix_s": "float64",
    "latency_ms": "float64",
    "name": "category",
    "method": "category",
    "status": "int64",
    "response_bytes": "int64",
    "ok": "int8",
    "error": "category",
    "intended_unix_s": "float64",
    "ttft_ms": "float64",
    "input_tokens": "float64",
    "output_tokens": "float64",
    "tokens_source": "category",
    "itl_ms": "string",
    "expected": "category",
    "predicted": "category",
    "media_s": "float64",
    "connect_ms": "float64",
    "ttfb_ms": "float64",
    "download_ms": "float64",
    "server_message": "category",
    "retry_after": "category",
    "redirects": "float64",
    "input_tokens_source": "category",
    "server_ms": "float64",
    "replica": "category",
    "target": "category",
    "attempt": "float64",
    "request_id": "category",
    "payload_key": "category",
    "cache": "category",
}


def _dtypes(frame: pd.DataFrame) -> dict[str, str]:
    return {c: str(t) for c, t in frame.dtypes.items()}


def test_round_trip_keeps_every_field(tmp_path: Path) -> None:
    records = [
        RequestRecord(1700000000.123456, 12.345, "/predict", "POST", 200, 1234, True),
        RequestRecord(1700000000.5, 0.5, 'name, with "quotes", and commas', "GET", 200, 0, True),
        RequestRecord(
            1700000001.000001,
            30000.0,
            "/v2/models/digits/infer",
            "POST",
            0,
            0,
            False,
            one_line('ReadTimeout: timed out\n  after 30 s,\twith "details"\r\n'),
        ),
        RequestRecord(1700000002.0, 3.0, "NA", "GET", 503, 17, False, "HTTPError: 503, busy"),
        RequestRecord(1700000003.0, 4.0, "", "CUSTOM", 0, 0, False, "null"),
    ]
    path = tmp_path / "requests.csv"
    write_requests(path, records)
    text = path.read_text(encoding="utf-8")
    # One record is one physical line.
    assert text.count("\n") == 1 + len(records)
    assert text.splitlines()[0] == ",".join(COLUMNS)

    frame = read_requests(path)
    assert list(frame.columns) == list(COLUMNS)
    assert _dtypes(frame) == EXPECTED_DTYPES
    assert frame["start_unix_s"].tolist() == [r.start_unix_s for r in records]
    assert frame["latency_ms"].tolist() == [r.latency_ms for r in records]
    assert frame["name"].tolist() == [r.name for r in records]
    assert frame["method"].tolist() == [r.method for r in records]
    assert frame["status"].tolist() == [r.status for r in records]
    assert frame["response_bytes"].tolist() == [r.response_bytes for r in records]
    assert frame["ok"].tolist() == [1, 1, 0, 0, 0]
    assert frame["error"].tolist() == [
        "",
        "",
        'ReadTimeout: timed out after 30 s, with "details"',
        "HTTPError: 503, busy",
        "null",  # not parsed as a missing value
    ]


def test_writer_rounds_to_microseconds(tmp_path: Path) -> None:
    path = tmp_path / "requests.csv"
    write_requests(path, [RequestRecord(1.23456789, 9.87654321, "n", "GET", 200, 1, True)])
    assert path.read_text().splitlines()[1] == "1.234568,9.877,n,GET,200,1,1,,,,,,,,,,,,,,,,,,,,,,,,"
    frame = read_requests(path)
    assert (frame["start_unix_s"][0], frame["latency_ms"][0]) == (1.234568, 9.877)


def test_writer_appends_without_a_second_header(tmp_path: Path) -> None:
    path = tmp_path / "requests.csv"
    write_requests(path, [RequestRecord(1.0, 1.0, "a", "GET", 200, 1, True)])
    write_requests(path, [RequestRecord(2.0, 2.0, "b", "GET", 200, 1, True)])
    assert path.read_text().count("start_unix_s") == 1
    assert read_requests(path)["name"].tolist() == ["a", "b"]


def test_writer_flush_makes_records_readable_before_close(tmp_path: Path) -> None:
    path = tmp_path / "requests.csv"
    writer = RequestWriter(path)
    try:
        writer.write(RequestRecord(1.0, 1.0, "a", "GET", 200, 1, True))
        writer.flush()
        assert len(read_requests(path)) == 1
    finally:
        writer.close()
    writer.close()  # twice is fine
    writer.flush()  # after close too


def test_one_line_collapses_whitespace_and_limits_length() -> None:
    assert one_line("a\nb\r\n\tc   d ") == "a b c d"
    assert one_line("x" * MAX_ERROR_CHARS) == "x" * MAX_ERROR_CHARS
    long = one_line("x" * (MAX_ERROR_CHARS + 1))
    assert len(long) == MAX_ERROR_CHARS
    assert long.endswith("…")
    assert one_line("abcdef", limit=4) == "abc…"


def test_partial_last_line_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / "requests.csv"
    write_requests(
        path,
        [
            RequestRecord(1.0, 1.0, "a", "GET", 200, 1, True),
            RequestRecord(2.0, 2.0, "b", "GET", 200, 1, True),
        ],
    )
    with path.open("a", encoding="utf-8") as f:
        f.write("3.000000,3.0,c,GE")  # killed mid-write
    frame = read_requests(path)
    assert frame["name"].tolist() == ["a", "b"]


def test_partial_header_gives_zero_rows(tmp_path: Path) -> None:
    path = tmp_path / "requests.csv"
    path.write_text("start_unix_s,laten")
    frame = read_requests(path)
    assert len(frame) == 0
    assert _dtypes(frame) == EXPECTED_DTYPES


@pytest.mark.parametrize("content", [HEADER, "", "\n", HEADER + "\n"])
def test_header_only_or_empty_file_gives_zero_typed_rows(tmp_path: Path, content: str) -> None:
    path = tmp_path / "requests.csv"
    path.write_text(content)
    frame = read_requests(path)
    assert len(frame) == 0
    assert list(frame.columns) == list(COLUMNS)
    assert _dtypes(frame) == EXPECTED_DTYPES


def test_unknown_extra_columns_are_ignored(tmp_path: Path) -> None:
    path = tmp_path / "requests.csv"
    # A later version added a column in the middle and one at the end.
    path.write_text(
        "start_unix_s,latency_ms,name,gpu_util,method,status,response_bytes,ok,error,trace_id\n"
        "1.5,2.5,/p,0.9,POST,200,10,1,,abc\n"
        "2.5,3.5,/p,0.8,POST,500,0,0,HTTPError: 500,def\n"
    )
    frame = read_requests(path)
    assert list(frame.columns) == list(COLUMNS)
    assert frame["latency_ms"].tolist() == [2.5, 3.5]
    assert frame["status"].tolist() == [200, 500]
    assert frame["error"].tolist() == ["", "HTTPError: 500"]


def test_columns_in_another_order_are_read_by_name(tmp_path: Path) -> None:
    path = tmp_path / "requests.csv"
    path.write_text(
        "ok,error,status,name,method,response_bytes,latency_ms,start_unix_s\n0,Boom: x,0,/p,GET,0,7.5,9.25\n"
    )
    frame = read_requests(path)
    assert list(frame.columns) == list(COLUMNS)
    assert frame.iloc[0].tolist()[:8] == [9.25, 7.5, "/p", "GET", 0, 0, 0, "Boom: x"]


def test_missing_column_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "requests.csv"
    path.write_text("start_unix_s,latency_ms,name,method,status,ok\n1,2,n,GET,200,1\n")
    with pytest.raises(RunDirError, match=r"missing column\(s\) response_bytes, error") as info:
        read_requests(path)
    assert str(path) in str(info.value)


def test_not_a_csv_at_all_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "requests.csv"
    path.write_text("<html>\n<body>oops</body>\n</html>\n")
    with pytest.raises(RunDirError, match="not a request record file"):
        read_requests(path)


@pytest.mark.parametrize(
    "line",
    [
        "1.0,abc,n,GET,200,1,1,",  # latency not a number
        "x,1.0,n,GET,200,1,1,",  # start not a number
        "1.0,1.0,n,GET,OK,1,1,",  # status not an integer
        "1.0,1.0,n,GET,,1,1,",  # status empty
        "1.0,1.0,n,GET,200,1.5,1,",  # bytes not an integer
        "2.0,,b,GET,200,1,1,",  # no latency
        "inf,1.0,b,GET,200,1,1,",  # an infinite start
    ],
)
def test_a_corrupt_record_is_dropped_and_counted(tmp_path: Path, line: str) -> None:
    """A damaged line is dropped (tests/record/test_salvage.py has the whole story)."""
    path = tmp_path / "requests.csv"
    path.write_text(HEADER + "1.0,1.0,ok,GET,200,1,1,\n" + line + "\n")
    frame, damage = read_requests_checked(path)
    assert frame["name"].tolist() == ["ok"]
    assert damage is not None and (damage.lines_dropped, damage.first_line) == (1, 3)
    assert "\n" not in damage.notice()


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "nope" / "requests.csv"
    with pytest.raises(RunDirError, match="is missing") as info:
        read_requests(path)
    assert str(path) in str(info.value)


def test_a_directory_instead_of_a_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "requests.csv"
    path.mkdir()
    with pytest.raises(RunDirError, match="cannot read"):
        read_requests(path)


def test_intended_send_time_round_trips_and_older_files_read_without_it(tmp_path: Path) -> None:
    path = tmp_path / "requests.csv"
    write_requests(
        path,
        [
            RequestRecord(1.5, 10.0, "/a", "POST", 200, 3, True, "", intended_unix_s=1.25),
            RequestRecord(2.5, 11.0, "/a", "POST", 0, 0, False, "ConnectionError: x", None),
        ],
    )
    frame = read_requests(path)
    assert frame["intended_unix_s"].iloc[0] == 1.25
    assert np.isnan(frame["intended_unix_s"].iloc[1])
    old = tmp_path / "old.csv"
    old.write_text(
        "start_unix_s,latency_ms,name,method,status,response_bytes,ok,error\n1.0,2.0,/a,GET,200,1,1,\n"
    )
    frame = read_requests(old)
    assert list(frame.columns) == list(COLUMNS)
    assert np.isnan(frame["intended_unix_s"].iloc[0])
    bad = tmp_path / "bad.csv"
    bad.write_text(path.read_text().splitlines()[0] + "\n1.0,2.0,/a,GET,200,1,1,,inf\n")
    frame, damage = read_requests_checked(bad)  # an infinite intended_unix_s: not a record
    assert len(frame) == 0 and damage is not None and damage.lines_dropped == 1


def test_model_specific_extras_round_trip_and_wrong_types_stay_empty(tmp_path: Path) -> None:
    path = tmp_path / "requests.csv"
    extras = {
        "ttft_ms": 12.3456,
        "input_tokens": 17,
        "output_tokens": 3,
        "tokens_source": "usage",
        "itl_ms": [5.0, 6.25, "x"],
        "expected": "7",
        "predicted": 'say "hi",\nthere',
        "media_s": 2.5,
    }
    wrong = {
        "ttft_ms": "fast",
        "input_tokens": -1,
        "output_tokens": True,
        "itl_ms": "1 2",
        "media_s": float("nan"),
    }
    write_requests(
        path,
        [
            RequestRecord(1.0, 20.0, "/v1/chat", "POST", 200, 9, True, extras=extras),
            RequestRecord(2.0, 20.0, "/v1/chat", "POST", 200, 9, True, extras=wrong),
        ],
    )
    frame = read_requests(path)
    first, second = frame.iloc[0], frame.iloc[1]
    assert first["ttft_ms"] == 12.346
    assert (first["input_tokens"], first["output_tokens"]) == (17, 3)
    assert first["tokens_source"] == "usage"
    assert first["itl_ms"] == "5.000 6.250"
    assert (first["expected"], first["predicted"]) == ("7", 'say "hi", there')
    assert first["media_s"] == 2.5
    assert (
        np.isnan(second["ttft_ms"]) and np.isnan(second["input_tokens"]) and np.isnan(second["output_tokens"])
    )
    assert second["itl_ms"] == "" and np.isnan(second["media_s"])


def test_what_the_server_said_round_trips_and_older_files_read_without_it(tmp_path: Path) -> None:
    path = tmp_path / "requests.csv"
    message = 'X has 4 features, but "StandardScaler" is expecting 64 features as input.'
    write_requests(
        path,
        [
            RequestRecord(1.0, 2.0, "/infer", "POST", 400, 90, False, "LocustBadStatusCode: code=400", None,
                          {"ttft_ms": 5.0}, server_message=message),
            RequestRecord(2.0, 2.0, "/infer", "POST", 429, 20, False, "LocustBadStatusCode: code=429",
                          server_message="slow down", retry_after="Wed, 21 Oct 2015 07:28:00 GMT"),
            RequestRecord(3.0, 2.0, "/infer", "POST", 200, 20, True),
        ],
    )  # fmt: skip
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0].endswith(
        ",server_message,retry_after,redirects,input_tokens_source,server_ms,replica,target,attempt,request_id"
        ",payload_key,cache"
    )
    assert all(line.count(",") >= len(COLUMNS) - 1 for line in lines)
    frame = read_requests(path)
    assert frame["server_message"].tolist() == [message, "slow down", ""]
    assert frame["retry_after"].tolist() == ["", "Wed, 21 Oct 2015 07:28:00 GMT", ""]
    assert frame["ttft_ms"].iloc[0] == 5.0  # the extras before them keep their places
    # A file from before these columns reads with them empty.
    old = tmp_path / "old.csv"
    old.write_text(
        ",".join(COLUMNS[: COLUMNS.index("server_message")])
        + "\n1.0,2.0,/a,GET,400,1,0,HTTPError: 400"
        + "," * 12
        + "\n"
    )
    frame = read_requests(old)
    assert list(frame.columns) == list(COLUMNS)
    assert (frame["server_message"].tolist(), frame["retry_after"].tolist()) == ([""], [""])


def test_redirects_and_the_input_token_source_round_trip_and_older_files_read_without_them(
    tmp_path: Path,
) -> None:
    # The last columns: one the recorder fills (hops followed), one a scenario's extra after it.
    path = tmp_path / "requests.csv"
    write_requests(
        path,
        [
            RequestRecord(1.0, 2.0, "/a", "GET", 200, 5, True, redirects=3),
            RequestRecord(2.0, 2.0, "/v1/completions", "POST", 200, 9, True,
                          extras={"input_tokens": 12, "input_tokens_source": "tokenizer", "ttft_ms": 1.0}),
            RequestRecord(3.0, 2.0, "/a", "GET", 302, 0, False, "RedirectError: HTTP 302 redirect to /b",
                          server_message="redirect to /b"),
        ],
    )  # fmt: skip
    frame = read_requests(path)
    assert frame["redirects"].iloc[0] == 3 and frame["redirects"].iloc[1:].isna().all()
    assert frame["input_tokens_source"].tolist() == ["", "tokenizer", ""]
    assert (frame["input_tokens"].iloc[1], frame["ttft_ms"].iloc[1]) == (12, 1.0)
    assert frame["server_message"].tolist() == ["", "", "redirect to /b"]
    # A file from before these columns reads with them empty.
    old = tmp_path / "old.csv"
    old.write_text(
        ",".join(COLUMNS[: COLUMNS.index("redirects")]) + "\n1.0,2.0,/a,GET,200,1,1," + "," * 14 + "\n"
    )
    frame = read_requests(old)
    assert list(frame.columns) == list(COLUMNS)
    assert np.isnan(frame["redirects"].iloc[0]) and frame["input_tokens_source"].tolist() == [""]


def test_the_servers_time_is_next_to_last_and_older_files_read_without_it(tmp_path: Path) -> None:
    path = tmp_path / "requests.csv"
    write_requests(
        path,
        [
            RequestRecord(1.0, 25.0, "/a", "POST", 200, 5, True, server_ms=20.4126),
            RequestRecord(2.0, 9.0, "/a", "POST", 503, 5, False, "HTTPError: 503", server_ms=0.0),
            RequestRecord(3.0, 2.0, "/v1/completions", "POST", 200, 9, True, redirects=1,
                          extras={"input_tokens_source": "usage", "ttft_ms": 1.0}),
            RequestRecord(4.0, 2.0, "/a", "POST", 0, 0, False, "ConnectionRefusedError: refused"),
        ],
    )  # fmt: skip
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0].endswith(
        ",input_tokens_source,server_ms,replica,target,attempt,request_id,payload_key,cache"
    )
    assert lines[1].endswith(",20.413,,,,,,") and lines[2].endswith(
        ",0.000,,,,,,"
    )  # ms to the µs; 0 is a value
    assert lines[3].endswith(",1,usage,,,,,,,")  # the extras and hops keep their places before it
    assert all(line.count(",") == len(COLUMNS) - 1 for line in lines)
    frame = read_requests(path)
    assert frame["server_ms"].iloc[:2].tolist() == [20.413, 0.0]
    assert frame["server_ms"].iloc[2:].isna().all()
    assert frame["input_tokens_source"].tolist() == ["", "", "usage", ""]
    # A file from before the column (every line seven fields shorter: server_ms, replica, target,
    # attempt, request_id, payload_key, cache) reads with it empty.
    old = tmp_path / "old.csv"
    old.write_text("".join(line.rsplit(",", 7)[0] + "\n" for line in lines), encoding="utf-8")
    frame = read_requests(old)
    assert list(frame.columns) == list(COLUMNS) and str(frame["server_ms"].dtype) == "float64"
    assert frame["server_ms"].isna().all() and frame["redirects"].iloc[2] == 1


@pytest.mark.parametrize("run", ["run-small", "run-demo-json_post", "run-demo-openai_chat"])
def test_the_fixture_runs_of_older_formats_read_with_an_empty_server_time(run: str) -> None:
    path = Path(__file__).resolve().parents[1] / "data" / run / "requests.csv"
    assert "server_ms" not in path.read_text(encoding="utf-8").splitlines()[0]
    frame = read_requests(path)
    assert len(frame) > 0 and list(frame.columns) == list(COLUMNS)
    assert frame["server_ms"].isna().all()


def test_the_replica_round_trips_quoted_and_older_files_read_without_it(tmp_path: Path) -> None:
    path = tmp_path / "requests.csv"
    write_requests(
        path,
        [
            RequestRecord(1.0, 25.0, "/a", "POST", 200, 5, True, replica="replica-1"),
            RequestRecord(2.0, 9.0, "/a", "POST", 503, 5, False, "HTTPError: 503", replica='b, "2"'),
            RequestRecord(3.0, 9.0, "/a", "POST", 0, 0, False, "ConnectionRefusedError: x"),
        ],
    )
    frame = read_requests(path)
    assert frame["replica"].astype("string").fillna("").tolist() == ["replica-1", 'b, "2"', ""]
    old = tmp_path / "old.csv"
    header, *rows = path.read_text(encoding="utf-8").splitlines()
    old.write_text(
        "\n".join(
            [
                header.removesuffix(",replica,target,attempt,request_id,payload_key,cache"),
                *(r.rsplit(",", 6)[0] for r in rows[:1]),
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    assert read_requests(old)["replica"].astype("string").fillna("").tolist() == [""]


def test_the_target_and_the_attempts_round_trip_and_older_files_read_without_them(tmp_path: Path) -> None:
    path = tmp_path / "requests.csv"
    write_requests(
        path,
        [
            RequestRecord(1.0, 9.0, "/a", "POST", 503, 5, False, "HTTPError: 503", target="http://127.0.0.1:1",
                          attempt=1, request_id="ab-1"),
            RequestRecord(1.1, 8.0, "/a", "POST", 200, 5, True, target="http://127.0.0.1:2", attempt=2,
                          request_id="ab-1"),
            RequestRecord(2.0, 7.0, "/a", "POST", 200, 5, True, target='http://h,"x":3'),
        ],
    )  # fmt: skip
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[1].endswith(",http://127.0.0.1:1,1,ab-1,,") and lines[3].endswith(',"http://h,""x"":3",,,,')
    frame = read_requests(path)
    assert frame["target"].astype("string").tolist() == [
        "http://127.0.0.1:1",
        "http://127.0.0.1:2",
        'http://h,"x":3',
    ]
    assert frame["attempt"].iloc[:2].tolist() == [1.0, 2.0] and np.isnan(frame["attempt"].iloc[2])
    assert frame["request_id"].fillna("").tolist() == ["ab-1", "ab-1", ""]
    old = tmp_path / "old.csv"
    old.write_text(
        "\n".join(
            [
                lines[0].removesuffix(",target,attempt,request_id,payload_key,cache"),
                lines[1].rsplit(",", 5)[0],
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    frame = read_requests(old)
    assert list(frame.columns) == list(COLUMNS) and frame["attempt"].isna().all()
    assert frame["target"].astype("string").fillna("").tolist() == [""]
    assert frame["request_id"].fillna("").tolist() == [""]


def test_text_that_looks_like_numbers_reads_back_as_the_same_text(tmp_path: Path) -> None:
    # pandas infers a category's values: a file whose every name, error or label looks like a
    # number would read back as numbers ("0001" as 1, "-Infinity" as -inf, "7" as 7).
    path = tmp_path / "requests.csv"
    write_requests(
        path,
        [
            RequestRecord(1.0, 2.0, "000000000", "1", 200, 1, False, "-Infinity", extras={"expected": "07"}),
            RequestRecord(2.0, 2.0, "0001", "2", 200, 1, False, "NaN", extras={"expected": "7"}, target="1"),
        ],
    )
    frame = read_requests(path)
    assert frame["name"].tolist() == ["000000000", "0001"]
    assert frame["method"].tolist() == ["1", "2"]
    assert frame["error"].tolist() == ["-Infinity", "NaN"]
    assert frame["expected"].tolist() == ["07", "7"]
    assert frame["target"].astype(str).tolist() == ["", "1"]
    assert str(frame["name"].dtype) == "category"


def test_the_payload_key_and_the_cache_answer_round_trip_and_older_files_read_without_them(
    tmp_path: Path,
) -> None:
    path = tmp_path / "requests.csv"
    write_requests(
        path,
        [
            RequestRecord(1.0, 9.0, "/a", "POST", 200, 5, True, extras={"payload_key": "0a1b2c3d4e5f"}, cache="miss"),
            RequestRecord(1.1, 1.0, "/a", "POST", 200, 5, True, extras={"payload_key": "0a1b2c3d4e5f"}, cache="hit"),
            RequestRecord(1.2, 1.0, "/a", "POST", 200, 5, True, extras={"payload_key": "000000000007"}),
            RequestRecord(2.0, 7.0, "/a", "POST", 200, 5, True, target="http://h:1", attempt=1, request_id="r-1"),
        ],
    )  # fmt: skip
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[1].endswith(",0a1b2c3d4e5f,miss") and lines[4].endswith(",http://h:1,1,r-1,,")
    assert all(line.count(",") == len(COLUMNS) - 1 for line in lines)
    frame = read_requests(path)
    # A key of digits only stays text (not the number 7).
    assert frame["payload_key"].astype(str).tolist() == ["0a1b2c3d4e5f", "0a1b2c3d4e5f", "000000000007", ""]
    assert frame["cache"].astype(str).tolist() == ["miss", "hit", "", ""]
    old = tmp_path / "old.csv"
    old.write_text(
        "\n".join([lines[0].removesuffix(",payload_key,cache"), lines[1].rsplit(",", 2)[0]]) + "\n",
        encoding="utf-8",
    )
    frame = read_requests(old)
    assert list(frame.columns) == list(COLUMNS)
    assert (frame["payload_key"].astype(str).tolist(), frame["cache"].astype(str).tolist()) == ([""], [""])
