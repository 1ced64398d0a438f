"""Tests of loadbench.analyze.analyzer on run directories built by hand (no Locust, no server).

The golden test analyzes the checked-in run directory ``tests/data/run-small/`` and compares
the result with ``summary.golden.json`` / ``timeseries.golden.csv`` next to it; run
``pytest tests/analyze/test_analyzer.py --update-goldens`` to rewrite them after an intended change.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from loadbench.analyze import analyzer
from loadbench.errors import RunDirError
from loadbench.record import rundir
from loadbench.record.records import COLUMNS, OPTIONAL_COLUMNS, RequestRecord, write_requests

DATA = Path(__file__).resolve().parents[1] / "data"
GOLDEN_RUN = DATA / "run-small"
STARTED, ENDED, WARMUP = 1000.0, 1010.0, 2.0
USERS_CSV = "unix_s,users\n1000.200,1\n1000.700,2\n" + "".join(f"{1001.5 + i:.3f},2\n" for i in range(9))

BUSY = "HTTPError: 503 Server Error: busy for url: /a"
RESET = "ConnectionResetError: [Errno 104] Connection reset by peer"
CHECK = "CatchResponseError: invalid response: empty outputs"


def _notices(summary: dict) -> list[str]:
    """The notices, less the one every short test run gets about its thin p99/p999."""
    return [n for n in summary["notices"] if "rough figures" not in n]


def ok(start: float, latency: float, name: str = "/a", nbytes: int = 100) -> RequestRecord:
    return RequestRecord(start, latency, name, "POST", 200, nbytes, True)


def err(start: float, latency: float, name: str, status: int, error: str) -> RequestRecord:
    return RequestRecord(start, latency, name, "POST", status, 0, False, error)


# The standard run: 3 requests start in the warmup, 12 in the measured window (8 ok, 4 errors).
WARMUP_RECORDS = [
    ok(1000.5, 10.0),
    ok(1001.9, 99.0),  # starts 0.1 s before the warmup ends: excluded, though it ends after
    err(1001.95, 5.0, "/b", 503, "HTTPError: 503 Server Error: warming up"),
]
MEASURED_OK_A = [ok(1002.0, 30.0), ok(1003.1, 12.0), ok(1003.5, 14.0), ok(1004.2, 16.0), ok(1005.0, 18.0)]
MEASURED_OK_A.append(ok(1009.9, 50.0))
MEASURED_OK_B = [ok(1006.3, 100.0, "/b", 300), ok(1006.4, 120.0, "/b", 300)]
MEASURED_ERRORS = [
    err(1007.0, 40.0, "/a", 503, BUSY),
    err(1007.5, 41.0, "/a", 503, BUSY),
    err(1008.1, 3.0, "/b", 0, RESET),
    err(1008.2, 9.0, "/b", 200, CHECK),
]
STANDARD = WARMUP_RECORDS + MEASURED_OK_A + MEASURED_OK_B + MEASURED_ERRORS
OK_LATENCIES = [r.latency_ms for r in MEASURED_OK_A + MEASURED_OK_B]


def make_meta(**overrides: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "format": 1,
        "run_id": "run-test",
        "target": "http://127.0.0.1:8000",
        "scenario": "json_post",
        "status": rundir.STATUS_COMPLETE,
        "started_unix_s": STARTED,
        "ended_unix_s": ENDED,
        "settings": {"users": 2, "warmup_s": WARMUP, "duration_s": 10},
    }
    meta.update(overrides)
    return meta


def make_run(
    tmp_path: Path,
    records: list[RequestRecord],
    meta: dict[str, Any] | None = None,
    users: str | None = USERS_CSV,
) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    rundir.write_json(run / rundir.META, make_meta() if meta is None else meta)
    write_requests(run / rundir.REQUESTS, records)
    if users is not None:
        (run / rundir.USERS).write_text(users)
    return run


def read_summary_strict(run: Path) -> dict[str, Any]:
    """summary.json as strict JSON: NaN / Infinity tokens are an error."""

    def no_constants(token: str) -> Any:
        raise AssertionError(f"summary.json holds the non-JSON constant {token}")

    return json.loads((run / rundir.SUMMARY).read_text(encoding="utf-8"), parse_constant=no_constants)


def read_timeseries(run: Path) -> pd.DataFrame:
    return pd.read_csv(run / rundir.TIMESERIES)


def numpy_latency(values: list[float]) -> dict[str, float]:
    arr = np.asarray(values, dtype=np.float64)
    out = {
        key: round(float(np.percentile(arr, q)), 3)
        for key, q in (("p50", 50), ("p90", 90), ("p95", 95), ("p99", 99), ("p999", 99.9))
    }
    out.update(max=float(arr.max()), mean=round(float(arr.mean()), 3), min=float(arr.min()))
    return out


# --- a complete run ----------------------------------------------------------------------------


def test_summary_of_a_complete_run(tmp_path: Path) -> None:
    run = make_run(tmp_path, STANDARD)
    returned = analyzer.analyze_run(run)
    summary = read_summary_strict(run)
    assert summary == returned

    assert summary["schema"] == 1
    assert summary["run"] == {
        "id": "run-test",
        "target": "http://127.0.0.1:8000",
        "scenario": "json_post",
        "status": "complete",
        "started_at": "1970-01-01T00:16:40.000Z",
        "ended_at": "1970-01-01T00:16:50.000Z",
        "started_unix_s": 1000.0,
        "ended_unix_s": 1010.0,
        "duration_s": 10.0,
        "users": 2,
        "warmup_s": 2.0,
    }
    assert summary["window"] == {
        "start_unix_s": 1002.0,
        "end_unix_s": 1010.0,
        "duration_s": 8.0,
        "reason": "--warmup 2 s excluded, then until the load stopped",
    }
    assert summary["requests"] == {
        "total": 12,
        "ok": 8,
        "errors": 4,
        "error_rate": 0.333333,
        "warmup_excluded": 3,
    }
    # ok / (ended - (started + warmup)) = 8 / 8 s; all requests: 12 / 8 s.
    assert summary["throughput_rps"] == 1.0
    assert summary["request_rate_rps"] == 1.5
    assert _notices(summary) == []
    assert summary["response_bytes"] == {"total": 6 * 100 + 2 * 300, "mean": round(1200 / 12, 1)}


def test_warmup_exclusion_is_by_request_start_time(tmp_path: Path) -> None:
    records = [ok(1001.9, 1.0), ok(1001.999999, 2.0), ok(1002.0, 3.0), ok(1002.000001, 4.0)]
    run = make_run(tmp_path, records)
    summary = analyzer.analyze_run(run)
    assert summary["requests"]["total"] == 2
    assert summary["requests"]["warmup_excluded"] == 2
    assert summary["latency_ms"]["min"] == 3.0
    assert summary["latency_ms"]["max"] == 4.0


def test_latency_is_over_successful_measured_requests_only(tmp_path: Path) -> None:
    run = make_run(tmp_path, STANDARD)
    summary = analyzer.analyze_run(run)
    assert summary["latency_ms"] == numpy_latency(OK_LATENCIES)
    # Neither the warmup's 99 ms nor the errors' 40/41 ms count.
    assert summary["latency_ms"]["max"] == 120.0
    assert summary["latency_ms"]["min"] == 12.0


def test_by_name(tmp_path: Path) -> None:
    summary = analyzer.analyze_run(make_run(tmp_path, STANDARD))
    assert list(summary["by_name"]) == ["/a", "/b"]
    a, b = summary["by_name"]["/a"], summary["by_name"]["/b"]
    assert {k: a[k] for k in ("requests", "ok", "errors", "error_rate", "throughput_rps")} == {
        "requests": 8,
        "ok": 6,
        "errors": 2,
        "error_rate": 0.25,
        "throughput_rps": 0.75,
    }
    assert a["latency_ms"] == numpy_latency([r.latency_ms for r in MEASURED_OK_A])
    assert {k: b[k] for k in ("requests", "ok", "errors", "error_rate", "throughput_rps")} == {
        "requests": 4,
        "ok": 2,
        "errors": 2,
        "error_rate": 0.5,
        "throughput_rps": 0.25,
    }
    assert b["latency_ms"] == numpy_latency([100.0, 120.0])


def test_errors_table(tmp_path: Path) -> None:
    summary = analyzer.analyze_run(make_run(tmp_path, STANDARD))
    # The warmup's 503 is not counted.
    assert summary["errors"] == [
        {"kind": "HTTP 503", "count": 2, "share": 0.166667, "example": BUSY},
        {"kind": "connection reset", "count": 1, "share": 0.083333, "example": RESET},
        {"kind": "invalid response: empty outputs", "count": 1, "share": 0.083333, "example": CHECK},
    ]


def test_errors_table_splits_a_status_by_what_the_server_said(tmp_path: Path) -> None:
    said = "X has 4 features, but StandardScaler is expecting 64 features as input."

    def refused(start: float, status: int, message: str, retry_after: str = "") -> RequestRecord:
        error = f"LocustBadStatusCode: code={status}"
        return RequestRecord(
            start, 2.0, "/a", "POST", status, 9, False, error, None, None, message, retry_after
        )

    measured = [refused(1003.0 + i / 10, 400, said) for i in range(3)]
    measured += [refused(1004.0, 400, "unknown model"), refused(1004.5, 429, "slow down", "1")]
    summary = analyzer.analyze_run(make_run(tmp_path, [*MEASURED_OK_A, *measured]))
    code = "LocustBadStatusCode: code="
    assert summary["errors"] == [
        {"kind": "HTTP 400", "count": 3, "share": 0.272727, "example": f"{code}400", "server_message": said},
        {
            "kind": "HTTP 400",
            "count": 1,
            "share": 0.090909,
            "example": f"{code}400",
            "server_message": "unknown model",
        },
        {
            "kind": "HTTP 429",
            "count": 1,
            "share": 0.090909,
            "example": f"{code}429",
            "server_message": "slow down",
            "retry_after": "1",
        },
    ]


def test_timeseries(tmp_path: Path) -> None:
    run = make_run(tmp_path, STANDARD)
    analyzer.analyze_run(run)
    ts = read_timeseries(run)
    assert list(ts.columns) == [
        "second",
        "start_unix_s",
        "requests",
        "ok",
        "errors",
        "p50_ms",
        "p99_ms",
        "in_warmup",
        "users",
    ]
    assert len(ts) == 10  # ceil(ended - started)
    assert ts["second"].tolist() == list(range(10))
    assert ts["start_unix_s"].tolist() == [1000.0 + s for s in range(10)]
    # Warmup requests are in the series too (flagged), unlike the summary.
    assert ts["requests"].tolist() == [1, 2, 1, 2, 1, 1, 2, 2, 2, 1]
    assert ts["ok"].tolist() == [1, 1, 1, 2, 1, 1, 2, 0, 0, 1]
    assert ts["errors"].tolist() == [0, 1, 0, 0, 0, 0, 0, 2, 2, 0]
    assert ts["in_warmup"].tolist() == [1, 1, 0, 0, 0, 0, 0, 0, 0, 0]
    assert ts["users"].tolist() == [2.0] * 10
    assert ts["p50_ms"][3] == 13.0
    assert ts["p99_ms"][6] == round(float(np.percentile([100.0, 120.0], 99)), 3)
    assert ts["p50_ms"][7:9].isna().all()  # only errors in seconds 7 and 8


def test_timeseries_rows_round_up_a_fractional_duration(tmp_path: Path) -> None:
    run = make_run(tmp_path, [ok(1004.2, 1.0)], make_meta(ended_unix_s=1004.3))
    summary = analyzer.analyze_run(run)
    assert len(read_timeseries(run)) == 5
    assert summary["window"]["duration_s"] == 2.3
    assert summary["throughput_rps"] == round(1 / 2.3, 3)


def test_users_in_the_timeseries(tmp_path: Path) -> None:
    users = (
        "unix_s,users\n1001.5,1\nnot,a number\n1003.2,4\n1004.9,bad\n1005.1,3\n1006.0,"  # partial last line
    )
    run = make_run(tmp_path, STANDARD, users=users)
    analyzer.analyze_run(run)
    values = read_timeseries(run)["users"].tolist()
    assert np.isnan(values[0])
    assert values[1:] == [1.0, 1.0, 4.0, 4.0, 3.0, 3.0, 3.0, 3.0, 3.0]


def test_without_users_csv_the_users_column_is_empty(tmp_path: Path) -> None:
    run = make_run(tmp_path, STANDARD, users=None)
    summary = analyzer.analyze_run(run)
    assert read_timeseries(run)["users"].isna().all()
    assert summary["requests"]["total"] == 12


# --- runs that did not go to plan --------------------------------------------------------------


def test_interrupted_run_adds_a_notice_and_measures_what_ran(tmp_path: Path) -> None:
    records = [r for r in STANDARD if r.start_unix_s < 1006.0]
    run = make_run(tmp_path, records, make_meta(status=rundir.STATUS_INTERRUPTED, ended_unix_s=1006.0))
    analyzer.analyze_run(run)
    summary = read_summary_strict(run)
    assert summary["run"]["status"] == "interrupted"
    assert _notices(summary) == ["run interrupted after 6.0 s of 10.0 s planned; the metrics cover what ran"]
    assert summary["window"]["duration_s"] == 4.0
    assert summary["requests"]["total"] == 5
    assert summary["throughput_rps"] == 1.25
    assert len(read_timeseries(run)) == 6


def test_failed_run_adds_a_notice(tmp_path: Path) -> None:
    meta = make_meta(status=rundir.STATUS_FAILED, failure="RuntimeError: scenario crashed")
    summary = analyzer.analyze_run(make_run(tmp_path, STANDARD, meta))
    assert _notices(summary) == ["the run failed: RuntimeError: scenario crashed"]
    assert summary["requests"]["total"] == 12


@pytest.mark.parametrize("drop_key", [False, True])
def test_killed_run_ends_at_the_last_record(tmp_path: Path, drop_key: bool) -> None:
    meta = make_meta(status=rundir.STATUS_RUNNING, ended_unix_s=None)
    if drop_key:
        del meta["ended_unix_s"]
        del meta["status"]
    records = [*STANDARD[:-1], ok(1008.3, 1700.0)]  # the last to end: 1008.3 + 1.7 s = 1010.0
    records.insert(3, ok(1002.5, 10.0))
    run = make_run(tmp_path, records, meta)
    summary = analyzer.analyze_run(run)
    assert summary["run"]["status"] == "running"
    assert summary["run"]["ended_unix_s"] == 1010.0
    assert summary["window"]["duration_s"] == 8.0
    assert len(_notices(summary)) == 1
    assert summary["notices"][0].startswith("incomplete run: the load generator did not finish")
    assert summary["requests"]["total"] == 13
    assert len(read_timeseries(run)) == 10


def test_killed_run_with_a_partial_last_record(tmp_path: Path) -> None:
    run = make_run(tmp_path, [ok(1003.0, 10.0), ok(1004.0, 500.0)], make_meta(ended_unix_s=None))
    with (run / rundir.REQUESTS).open("a") as f:
        f.write("1009.000000,12")  # killed mid-write
    summary = analyzer.analyze_run(run)
    assert summary["requests"]["total"] == 2
    assert summary["run"]["ended_unix_s"] == 1004.5
    assert summary["run"]["duration_s"] == 4.5
    assert summary["throughput_rps"] == round(2 / 2.5, 3)


def test_zero_requests(tmp_path: Path) -> None:
    run = make_run(tmp_path, [])
    summary = analyzer.analyze_run(run)
    assert read_summary_strict(run) == summary
    assert summary["requests"] == {"total": 0, "ok": 0, "errors": 0, "error_rate": 0.0, "warmup_excluded": 0}
    assert summary["throughput_rps"] == 0.0
    assert summary["latency_ms"] == dict.fromkeys(["p50", "p90", "p95", "p99", "p999", "max", "mean", "min"])
    assert summary["by_name"] == {}
    assert summary["errors"] == []
    assert summary["response_bytes"] == {"total": 0, "mean": None}
    assert summary["notices"] == ["no requests were recorded in the measured window"]
    ts = read_timeseries(run)
    assert len(ts) == 10
    assert ts["requests"].sum() == 0


def test_killed_run_with_zero_requests(tmp_path: Path) -> None:
    run = make_run(tmp_path, [], make_meta(ended_unix_s=None, status=rundir.STATUS_RUNNING))
    summary = analyzer.analyze_run(run)
    assert summary["run"]["duration_s"] == 0.0
    assert summary["throughput_rps"] is None
    assert summary["notices"][0].startswith("incomplete run")
    assert len(read_timeseries(run)) == 0


def test_all_errors(tmp_path: Path) -> None:
    records = [err(1003.0 + i, 5.0, "/a", 500, "HTTPError: 500 Server Error") for i in range(4)]
    run = make_run(tmp_path, records)
    summary = analyzer.analyze_run(run)
    assert read_summary_strict(run) == summary
    assert summary["requests"]["errors"] == 4
    assert summary["requests"]["error_rate"] == 1.0
    assert summary["throughput_rps"] == 0.0
    assert summary["request_rate_rps"] == 0.5
    assert set(summary["latency_ms"].values()) == {None}
    assert set(summary["by_name"]["/a"]["latency_ms"].values()) == {None}
    assert summary["errors"] == [
        {"kind": "HTTP 500", "count": 4, "share": 1.0, "example": "HTTPError: 500 Server Error"}
    ]
    assert summary["notices"] == [
        "every request failed: latency figures are empty",
        "INVALID: every request failed: 4 of 4 measured requests; the most common: HTTP 500 (4), "
        "e.g. HTTPError: 500 Server Error",
    ]
    assert summary["validity"]["valid"] is False
    assert read_timeseries(run)["p50_ms"].isna().all()


def test_warmup_covering_the_whole_run(tmp_path: Path) -> None:
    meta = make_meta(settings={"users": 2, "warmup_s": 20.0, "duration_s": 10})
    run = make_run(tmp_path, STANDARD, meta)
    summary = analyzer.analyze_run(run)
    assert read_summary_strict(run) == summary
    assert summary["window"]["duration_s"] == 0.0
    assert summary["requests"]["total"] == 0
    assert summary["requests"]["warmup_excluded"] == len(STANDARD)
    assert summary["throughput_rps"] is None
    assert summary["request_rate_rps"] is None
    assert summary["notices"] == ["the warmup (20 s) covers the whole run: no requests were measured"]
    assert read_timeseries(run)["in_warmup"].tolist() == [1] * 10


def test_missing_settings_values_default(tmp_path: Path) -> None:
    run = make_run(tmp_path, STANDARD, make_meta(settings={}))
    summary = analyzer.analyze_run(run)
    assert summary["run"]["warmup_s"] == 0.0
    assert summary["run"]["users"] is None
    assert summary["requests"]["total"] == len(STANDARD)
    assert summary["requests"]["warmup_excluded"] == 0


def test_summary_json_is_strict_json_everywhere(tmp_path: Path) -> None:
    run = make_run(tmp_path, STANDARD)
    analyzer.analyze_run(run)
    text = (run / rundir.SUMMARY).read_text()
    for token in ("NaN", "Infinity"):
        assert token not in text
    read_summary_strict(run)


# --- errors ------------------------------------------------------------------------------------


def test_unusable_meta_value_is_a_run_dir_error(tmp_path: Path) -> None:
    run = make_run(tmp_path, STANDARD, make_meta(started_unix_s="yesterday"))
    with pytest.raises(RunDirError, match="has an unusable value"):
        analyzer.analyze_run(run)
    assert not (run / rundir.SUMMARY).exists()


def test_missing_requests_csv_is_a_run_dir_error(tmp_path: Path) -> None:
    run = make_run(tmp_path, STANDARD)
    (run / rundir.REQUESTS).unlink()
    with pytest.raises(RunDirError, match=r"requests\.csv is missing"):
        analyzer.analyze_run(run)


def test_not_a_run_dir(tmp_path: Path) -> None:
    with pytest.raises(RunDirError, match="not a loadbench run directory"):
        analyzer.analyze_run(tmp_path)


def test_reanalysis_is_idempotent(tmp_path: Path) -> None:
    run = make_run(tmp_path, STANDARD)
    first = analyzer.analyze_run(run)
    first_ts = (run / rundir.TIMESERIES).read_text()
    assert analyzer.analyze_run(run) == first
    assert (run / rundir.TIMESERIES).read_text() == first_ts


# --- golden ------------------------------------------------------------------------------------


def test_golden_run_small(tmp_path: Path, update_goldens: bool) -> None:
    """Analyze the checked-in run directory and compare with its goldens (``--update-goldens``)."""
    run = tmp_path / "run-small"
    shutil.copytree(GOLDEN_RUN, run, ignore=shutil.ignore_patterns("*.golden.*"))
    # The fixture is what the test claims it is: two names, errors, a truncated last line.
    raw = (run / rundir.REQUESTS).read_bytes()
    # Written before requests.csv gained intended_unix_s: older files must still analyze.
    assert raw.splitlines()[0].decode() == ",".join(c for c in COLUMNS if c not in OPTIONAL_COLUMNS)
    assert not raw.endswith(b"\n")

    summary = analyzer.analyze_run(run)
    got_summary = read_summary_strict(run)
    assert got_summary == summary
    got_ts = (run / rundir.TIMESERIES).read_text()

    golden_summary = GOLDEN_RUN / "summary.golden.json"
    golden_ts = GOLDEN_RUN / "timeseries.golden.csv"
    if update_goldens:
        golden_summary.write_text(json.dumps(got_summary, indent=2) + "\n", encoding="utf-8")
        golden_ts.write_text(got_ts, encoding="utf-8")
    assert golden_summary.exists(), "no golden yet: run pytest --update-goldens"

    expected = json.loads(golden_summary.read_text(encoding="utf-8"))
    assert got_summary == expected, "summary differs from the golden; if intended: pytest --update-goldens"
    assert got_ts == golden_ts.read_text(encoding="utf-8"), "timeseries.csv differs from the golden"
    # Sanity, independent of the golden: the fixture exercises what it is meant to.
    assert len(got_summary["by_name"]) == 2
    assert got_summary["requests"]["errors"] > 0
    assert got_summary["requests"]["warmup_excluded"] > 0


# --- validity of gates beyond latency, and checks not made --------------------------------------


def test_a_ttft_gate_on_too_few_streams_makes_the_run_invalid(tmp_path: Path) -> None:
    # 50 successful streams: enough for p50 of TTFT, not for p99 (needs 1,000).
    streams = [
        RequestRecord(
            1002.0 + i * 0.1,
            40.0,
            "chat",
            "POST",
            200,
            10,
            True,
            extras={"ttft_ms": 5.0 + i, "output_tokens": 8},
        )
        for i in range(50)
    ]
    meta = make_meta(settings={"users": 2, "warmup_s": WARMUP, "duration_s": 10, "slos": ["ttft_p99<1s"]})
    summary = analyzer.analyze_run(make_run(tmp_path, streams, meta))
    assert summary["validity"]["valid"] is False
    assert summary["validity"]["reasons"] == [
        "an SLO gates on ttft_ms.p99, which 50 measured values cannot pin down (needs at least 1,000)"
    ]
    meta["settings"]["slos"] = ["ttft_p50<1s"]
    rundir.write_json(tmp_path / "run" / rundir.META, meta)
    assert analyzer.analyze_run(tmp_path / "run")["validity"]["valid"] is True


def test_validity_names_the_generator_check_it_could_not_make(tmp_path: Path) -> None:
    run = make_run(tmp_path, STANDARD)
    assert analyzer.analyze_run(run)["validity"]["unchecked"] == [
        "the load generator's CPU (no resource samples: --no-sampler, or the sampler failed)"
    ]
    # With the generator sampled, the check was made: nothing unchecked.
    sampled = ["{" + f'"unix_s": {1000.0 + t}, "generator.cpu_percent": 12.0' + "}" for t in range(11)]
    (run / rundir.SAMPLES).write_text("\n".join(sampled) + "\n")
    rundir.write_json(run / rundir.SAMPLER_INFO, {"interval_s": 1.0})
    assert "unchecked" not in analyzer.analyze_run(run)["validity"]
