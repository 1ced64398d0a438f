"""Property-based (hypothesis) tests of the run-directory readers against damaged files.

The contract (docs/run-format.md): reading a run directory never raises anything but a
one-line `RunDirError`, never hangs, and a valid file truncated at any byte still reads,
losing at most its partial last line. Inputs are random bytes, valid generated files truncated
at a random byte, valid files with random byte flips / insertions / deletions, and a valid
``meta.json`` with fields replaced by JSON values of any type.

Each example works in its own ``tempfile.TemporaryDirectory()``: pytest's function-scoped
``tmp_path`` would be shared by all the examples of one test (hypothesis refuses it).
Warnings are errors here (pyproject's ``filterwarnings``), so a reader that warns on odd input
(a numpy cast of an out-of-range value, say) fails these tests too.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loadbench.analyze import analyzer
from loadbench.errors import RunDirError
from loadbench.record import records, rundir, series
from loadbench.record.records import COLUMNS, RequestRecord, format_record, write_requests

T = TypeVar("T")

# Tuned so the whole file takes about 10 s of CPU; for a longer hunt multiply the examples:
# LOADBENCH_FUZZ_SCALE=20 pytest tests/record/test_rundir_fuzz.py
SCALE = float(os.environ.get("LOADBENCH_FUZZ_SCALE", "1"))
FAST = settings(max_examples=int(100 * SCALE), deadline=None)
SLOW = settings(max_examples=int(40 * SCALE), deadline=None)  # one analyze_run per example

pytestmark = pytest.mark.timeout(120 * SCALE)  # "never hangs": a stuck reader fails, not blocks

STARTED = 1_700_000_000.0
HEADER = (",".join(COLUMNS) + "\n").encode()


# --- strategies ---------------------------------------------------------------------------------

# Record text fields never hold a newline (the recorder collapses whitespace), but anything else
# goes: commas, quotes, carriage returns, NULs, any non-surrogate unicode.
line_text = st.text(st.characters(codec="utf-8", exclude_characters="\n"), max_size=24)
latencies = st.floats(min_value=0.0, max_value=1e6, allow_nan=False, allow_infinity=False)
request_records = st.builds(
    RequestRecord,
    start_unix_s=st.floats(min_value=STARTED, max_value=STARTED + 60.0),
    latency_ms=latencies,
    name=line_text,
    method=st.sampled_from(["GET", "POST", "grpc", "x,y", '"q"']) | line_text,
    status=st.integers(min_value=0, max_value=599),
    response_bytes=st.integers(min_value=0, max_value=2**40),
    ok=st.booleans(),
    error=line_text,
)
record_lists = st.lists(request_records, max_size=12)


def json_values() -> st.SearchStrategy[Any]:
    """Any JSON value, NaN and Infinity included (Python's json reads and writes them)."""
    scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
        max_leaves=6,
    )


@st.composite
def valid_metas(draw: st.DrawFn, complete: bool | None = None) -> dict[str, Any]:
    duration = draw(st.floats(min_value=0.0, max_value=120.0))
    if complete is None:
        complete = draw(st.booleans())
    return {
        "format": 1,
        "run_id": draw(line_text),
        "target": "http://127.0.0.1:8000",
        "scenario": "json_post",
        "status": rundir.STATUS_COMPLETE if complete else rundir.STATUS_RUNNING,
        "started_unix_s": STARTED,
        "ended_unix_s": STARTED + duration if complete else None,
        "settings": {
            "users": draw(st.integers(min_value=1, max_value=64)),
            "warmup_s": draw(st.floats(min_value=0.0, max_value=10.0)),
            "duration_s": duration,
        },
    }


@st.composite
def users_csvs(draw: st.DrawFn) -> bytes:
    rows = draw(st.lists(st.tuples(st.floats(0.0, 120.0), st.integers(0, 64)), max_size=8))
    return ("unix_s,users\n" + "".join(f"{STARTED + t:.3f},{n}\n" for t, n in rows)).encode()


sample_values = st.none() | st.floats(allow_nan=False, allow_infinity=False, width=32)


@st.composite
def samples_jsonls(draw: st.DrawFn) -> bytes:
    keys = ["host.cpu_percent", "server.cpu_percent", "generator.cpu_percent", "gpu0.util_percent"]
    lines = []
    for _ in range(draw(st.integers(0, 8))):
        row: dict[str, Any] = {"unix_s": STARTED + draw(st.floats(0.0, 120.0))}
        for key in draw(st.lists(st.sampled_from(keys), unique=True)):
            row[key] = draw(sample_values)
        lines.append(json.dumps(row) + "\n")
    return "".join(lines).encode()


@st.composite
def mutated(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` with a few random byte flips, insertions and deletions."""
    buf = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "insert", "delete"]))
        pos = draw(st.integers(0, len(buf)))
        if op == "insert" or not buf or pos == len(buf):
            buf[pos:pos] = draw(st.binary(min_size=1, max_size=4))
        elif op == "flip":
            buf[pos] = draw(st.integers(0, 255))
        else:
            del buf[pos : pos + draw(st.integers(1, 4))]
    return bytes(buf)


@st.composite
def damaged(draw: st.DrawFn, valid: bytes) -> bytes:
    """One of: random bytes (sometimes after a plausible first line), ``valid`` truncated at a
    random byte, or ``valid`` with random edits."""
    how = draw(st.sampled_from(["random", "truncated", "mutated"]))
    if how == "random":
        first_line = valid[: valid.find(b"\n") + 1]
        return draw(st.sampled_from([b"", first_line])) + draw(st.binary(max_size=300))
    if how == "truncated":
        return valid[: draw(st.integers(0, len(valid)))]
    return draw(mutated(valid))


# --- helpers ------------------------------------------------------------------------------------


@contextmanager
def scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as d:
        yield Path(d)


def read_or_error(read: Callable[[Path], T], path: Path) -> T | None:
    """``read(path)``, or None when it raised a proper `RunDirError`; anything else propagates."""
    try:
        return read(path)
    except RunDirError as exc:
        message = str(exc)
        assert message, "an empty RunDirError message"
        assert "\n" not in message and "\r" not in message, f"a multi-line message: {message!r}"
        return None


def strict_json(text: str) -> Any:
    def no_constants(token: str) -> Any:
        raise AssertionError(f"summary.json holds the non-JSON constant {token}")

    return json.loads(text, parse_constant=no_constants)


# --- requests.csv -------------------------------------------------------------------------------


@FAST
@given(recs=record_lists, data=st.data())
def test_a_truncated_request_file_reads_every_whole_line(
    recs: list[RequestRecord], data: st.DataObject
) -> None:
    with scratch() as d:
        write_requests(d / "full.csv", recs)
        full = (d / "full.csv").read_bytes()
        lines = [format_record(r).encode() for r in recs]
        assert full == HEADER + b"".join(lines)
        k = data.draw(st.integers(0, len(full)), label="truncate at")
        (d / "requests.csv").write_bytes(full[:k])

        frame = records.read_requests(d / "requests.csv")

        ends = [len(HEADER) + sum(len(x) for x in lines[: i + 1]) for i in range(len(lines))]
        kept = [r for r, end in zip(recs, ends, strict=True) if end <= k]
        assert list(frame.columns) == list(COLUMNS)
        assert len(frame) == len(kept)
        assert frame["latency_ms"].tolist() == [float(f"{r.latency_ms:.3f}") for r in kept]
        assert frame["start_unix_s"].tolist() == [float(f"{r.start_unix_s:.6f}") for r in kept]
        assert frame["name"].tolist() == [r.name for r in kept]
        assert frame["method"].tolist() == [r.method for r in kept]
        assert frame["status"].tolist() == [r.status for r in kept]
        assert frame["ok"].tolist() == [int(r.ok) for r in kept]
        assert frame["error"].tolist() == [r.error for r in kept]


@FAST
@given(recs=record_lists, data=st.data())
def test_a_damaged_request_file_reads_or_raises_run_dir_error(
    recs: list[RequestRecord], data: st.DataObject
) -> None:
    with scratch() as d:
        write_requests(d / "full.csv", recs)
        path = d / "requests.csv"
        path.write_bytes(data.draw(damaged((d / "full.csv").read_bytes())))
        frame = read_or_error(records.read_requests, path)
        if frame is not None:
            assert list(frame.columns) == list(COLUMNS)


# --- users.csv, samples.jsonl -------------------------------------------------------------------


@FAST
@given(valid=users_csvs(), data=st.data())
def test_a_damaged_users_file_reads_or_raises_run_dir_error(valid: bytes, data: st.DataObject) -> None:
    with scratch() as d:
        path = d / "users.csv"
        damaged_bytes = data.draw(damaged(valid))
        path.write_bytes(damaged_bytes)
        frame = read_or_error(series.read_users, path)
        if frame is not None:
            assert list(frame.columns) == ["unix_s", "users"]
            assert str(frame["unix_s"].dtype) == "float64" and str(frame["users"].dtype) == "int64"
        if damaged_bytes == valid[: len(damaged_bytes)]:  # truncated: every whole line is kept
            assert frame is not None
            assert len(frame) == max(damaged_bytes.count(b"\n") - 1, 0)


@FAST
@given(valid=samples_jsonls(), data=st.data())
def test_a_damaged_samples_file_reads_or_raises_run_dir_error(valid: bytes, data: st.DataObject) -> None:
    with scratch() as d:
        path = d / "samples.jsonl"
        damaged_bytes = data.draw(damaged(valid))
        path.write_bytes(damaged_bytes)
        frame = read_or_error(series.read_samples, path)
        if frame is not None:
            assert "unix_s" in frame.columns
        if damaged_bytes == valid[: len(damaged_bytes)]:  # truncated: every whole line is kept
            assert frame is not None
            assert len(frame) == damaged_bytes.count(b"\n")


# --- meta.json ----------------------------------------------------------------------------------


@FAST
@given(meta=valid_metas(), data=st.data())
def test_a_damaged_meta_file_reads_or_raises_run_dir_error(meta: dict[str, Any], data: st.DataObject) -> None:
    with scratch() as d:
        rundir.write_json(d / rundir.META, meta)
        valid = (d / rundir.META).read_bytes()
        (d / rundir.META).write_bytes(data.draw(damaged(valid)))
        read_or_error(rundir.read_json, d / rundir.META)
        read_or_error(rundir.read_meta, d)


# meta.json keys the analyzer reads, and settings keys.
META_KEYS = (
    "format",
    "started_unix_s",
    "ended_unix_s",
    "status",
    "settings",
    "scenario_exceptions",
    "sampler",
)
SETTINGS_KEYS = ("users", "warmup_s", "duration_s")


@st.composite
def odd_metas(draw: st.DrawFn) -> dict[str, Any]:
    """A valid meta with some fields (and settings fields) replaced by any JSON value, or removed."""
    meta = draw(valid_metas())
    for key in draw(st.lists(st.sampled_from(META_KEYS), unique=True, min_size=1, max_size=3)):
        if draw(st.booleans()):
            meta[key] = draw(json_values())
        else:
            meta.pop(key, None)
    if isinstance(meta.get("settings"), dict):
        for key in draw(st.lists(st.sampled_from(SETTINGS_KEYS), unique=True, max_size=2)):
            meta["settings"][key] = draw(json_values())
    return meta


# --- the whole analyzer -------------------------------------------------------------------------

RUN_FILES = (rundir.META, rundir.REQUESTS, rundir.USERS, rundir.SAMPLES)


@st.composite
def valid_runs(draw: st.DrawFn, complete: bool | None = None) -> dict[str, bytes]:
    with scratch() as d:
        rundir.write_json(d / rundir.META, draw(valid_metas(complete)))
        write_requests(d / rundir.REQUESTS, draw(record_lists))
        files = {name: (d / name).read_bytes() for name in (rundir.META, rundir.REQUESTS)}
    files[rundir.USERS] = draw(users_csvs())
    files[rundir.SAMPLES] = draw(samples_jsonls())
    return files


def analyze_or_error(files: dict[str, bytes]) -> dict[str, Any] | None:
    """Run the analyzer over a run directory holding ``files``: it succeeds with strict JSON
    output, or raises a one-line `RunDirError`."""
    with scratch() as d:
        for name, content in files.items():
            (d / name).write_bytes(content)
        summary = read_or_error(analyzer.analyze_run, d)
        if summary is not None:
            assert strict_json((d / rundir.SUMMARY).read_text(encoding="utf-8")) == summary
            assert (d / rundir.TIMESERIES).is_file()
        return summary


@SLOW
@given(data=st.data())
def test_analyze_run_on_damaged_files_succeeds_or_raises_run_dir_error(data: st.DataObject) -> None:
    names = data.draw(
        st.lists(st.sampled_from(RUN_FILES), unique=True, min_size=1, max_size=2), label="damaged"
    )
    # Incomplete runs (ended_unix_s null) included: the analyzer then takes the run's end from
    # the last record, bounded by the planned duration, so a damaged start time
    # (1700000012 -> 9700000012) cannot make it build billions of per-second rows.
    files = data.draw(valid_runs())
    for name in names:
        files[name] = data.draw(damaged(files[name]), label=name)
    analyze_or_error(files)


@SLOW
@given(files=valid_runs(), data=st.data())
def test_analyze_run_on_truncated_files_reads_what_is_whole(
    files: dict[str, bytes], data: st.DataObject
) -> None:
    # Every file but meta.json (written atomically, never truncated) cut at a random byte.
    for name in (rundir.REQUESTS, rundir.USERS, rundir.SAMPLES):
        files[name] = files[name][: data.draw(st.integers(0, len(files[name])), label=name)]
    summary = analyze_or_error(files)
    assert summary is not None, "a truncated run must still be analyzed"


@SLOW
@given(files=valid_runs(), meta=odd_metas())
def test_analyze_run_on_odd_meta_values_succeeds_or_raises_run_dir_error(
    files: dict[str, bytes], meta: dict[str, Any]
) -> None:
    files[rundir.META] = json.dumps(meta).encode()  # allow_nan: NaN / Infinity as Python writes them
    summary = analyze_or_error(files)
    if summary is not None:
        assert math.isfinite(summary["run"]["started_unix_s"])


# --- inputs that crashed a reader before (regressions) --------------------------------------------

BASE_RECORDS = [RequestRecord(STARTED + 1.0, 12.5, "POST /predict", "POST", 200, 10, True)]
INCOMPLETE_META = {
    "format": 1,
    "status": rundir.STATUS_RUNNING,
    "started_unix_s": STARTED,
    "ended_unix_s": None,
    "settings": {"users": 1, "warmup_s": 0.0, "duration_s": 10.0},
}


def meta_bytes(**overrides: Any) -> bytes:
    return json.dumps(INCOMPLETE_META | overrides).encode()  # allow_nan: NaN as Python writes it


def record_line(start: str = f"{STARTED + 2:.6f}", latency: str = "3.0", status: str = "200") -> bytes:
    return HEADER + f"{start},{latency},/a,GET,{status},1,1,\n".encode()


READERS: dict[str, Callable[[Path], object]] = {
    rundir.META: lambda p: rundir.read_meta(p.parent),
    rundir.REQUESTS: records.read_requests,
    rundir.USERS: series.read_users,
    rundir.SAMPLES: series.read_samples,
}

# What each raised before the fix, in the comment after it.
CRASHERS: list[tuple[str, bytes]] = [
    (rundir.USERS, b"\n"),  # EmptyDataError
    (rundir.USERS, b"unix_s,users\n\xff,1\n"),  # UnicodeDecodeError
    (rundir.USERS, b"1000,1\n"),  # KeyError (no header)
    (rundir.USERS, b'unix_s,users\n"1,2\n'),  # ParserError (EOF inside string)
    (rundir.USERS, b"unix_s,users\n1,inf\n"),  # IntCastingNaNError
    (rundir.REQUESTS, record_line(status="9" * 25)),  # OverflowError
    (rundir.REQUESTS, record_line(start="inf")),  # OverflowError in the analyzer (incomplete run)
    (rundir.REQUESTS, record_line(latency="inf")),  # the same
    (rundir.SAMPLES, b"[" * 100_000 + b"\n"),  # RecursionError
    (rundir.SAMPLES, b'{"unix_s": 1' + b"0" * 5000 + b"}\n"),  # ValueError (int max str digits)
    (rundir.META, b"[" * 100_000),  # RecursionError
    (rundir.META, b'{"format": 1' + b"0" * 5000 + b"}"),  # ValueError (int max str digits)
    (rundir.META, meta_bytes(settings=[])),  # AttributeError in the analyzer
    (rundir.META, meta_bytes(sampler=[1])),  # AttributeError in the analyzer
    (rundir.META, meta_bytes(started_unix_s=1e20)),  # OverflowError in the analyzer
    (rundir.META, meta_bytes(started_unix_s=float("inf"))),  # OverflowError in the analyzer
    (rundir.META, meta_bytes(started_unix_s=2**70)),  # OverflowError in the analyzer
    (rundir.META, meta_bytes(ended_unix_s=2.5e11)),  # MemoryError (a series of 2.5e11 seconds), in year 9992
]


@pytest.mark.parametrize(("name", "content"), CRASHERS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CRASHERS)])
def test_inputs_that_crashed_a_reader_read_or_raise_run_dir_error(name: str, content: bytes) -> None:
    files = {
        rundir.META: meta_bytes(),
        rundir.REQUESTS: HEADER + b"".join(format_record(r).encode() for r in BASE_RECORDS),
        rundir.USERS: f"unix_s,users\n{STARTED + 1:.3f},1\n".encode(),
        rundir.SAMPLES: json.dumps({"unix_s": STARTED + 1, "host.cpu_percent": 5.0}).encode() + b"\n",
    }
    files[name] = content
    with scratch() as d:
        for file_name, data in files.items():
            (d / file_name).write_bytes(data)
        read_or_error(READERS[name], d / name)
    analyze_or_error(files)


def test_damaged_users_lines_are_dropped() -> None:
    with scratch() as d:
        path = d / rundir.USERS
        path.write_bytes(b'unix_s,users\n1,1e300\n2,inf\n3,-1\n"4,1\n5,\xff\n6,1,9\nnan,1\n7,2\n8,3')
        frame = series.read_users(path)
    assert frame["unix_s"].tolist() == [7.0]  # 8,3 is a partial last line
    assert frame["users"].tolist() == [2]
