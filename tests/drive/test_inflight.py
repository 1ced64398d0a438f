"""Requests in flight when the load stops: Locust kills a closed loop's users mid-request, and
those requests never reach ``requests.csv``. The driver counts them (``meta.json``
``in_flight_unrecorded``), the summary says so; a run that recorded nothing is ``failed``.

Real servers on loopback that take their time, `loadbench run` in a child process.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from helpers import REPO, json_server, read_json, run_cli

from loadbench.analyze.analyzer import analyze_run
from loadbench.record import rundir
from loadbench.record.columnar import read_run_requests


def slow(seconds: float) -> Any:
    """The load's POSTs take ``seconds`` (counted in ``state["posts"]``); the reachability probe does not."""

    def route(handler: Any, state: dict[str, Any]) -> tuple[int, Any]:
        if handler.command == "POST":
            with state["lock"]:
                state["posts"] = state.get("posts", 0) + 1
            time.sleep(seconds)
        return 200, {"label": 1}

    return route


def run_slow(url: str, out: Path, users: int, duration: str, exit_code: int = 0) -> None:
    # No preflight: every request the server gets is then the load's (recorded or cut off).
    result = run_cli(
        "run", "--target", url, "--scenario", "json_post", "--payload", '{"x": 1}', "--no-check-json", "--no-preflight",
        "-u", str(users), "-d", duration, "--warmup", "0s", "--out", str(out), "--quiet", "--no-sampler",
    )  # fmt: skip
    assert result.returncode == exit_code, result.stderr


@pytest.mark.e2e
def test_requests_cut_off_by_a_closed_loop_stop_are_counted(tmp_path: Path) -> None:
    out = tmp_path / "run"
    # 1.5 s answers, 4 users for 4 s: each user is inside a request at the stop.
    with json_server(slow(1.5)) as (url, state):
        run_slow(url, out, 4, "4s")
        received = state["posts"]
    meta = read_json(out / "meta.json")
    recorded = len(read_run_requests(out))
    assert meta["status"] == "complete" and recorded > 0
    assert meta["in_flight_unrecorded"] == 4
    # Every request the server got is either recorded or counted as cut off.
    assert recorded + meta["in_flight_unrecorded"] == received
    summary = read_json(out / "summary.json")
    assert summary["requests"]["in_flight_unrecorded"] == 4
    assert "4 request(s) in flight at the stop were not recorded" in json.dumps(summary["notices"])


@pytest.mark.e2e
def test_a_run_that_recorded_nothing_is_failed_with_the_reason(tmp_path: Path) -> None:
    out = tmp_path / "run"
    # Answers slower than the whole run: requests went out, none came back before the stop.
    with json_server(slow(3.0)) as (url, _):
        run_slow(url, out, 2, "1.5s", exit_code=3)  # nothing recorded: the target failed the run
    meta = read_json(out / "meta.json")
    assert meta["status"] == "failed"
    assert meta["in_flight_unrecorded"] == 2
    assert "none was answered" in meta["failure"]
    summary = read_json(out / "summary.json")
    assert summary["run"]["status"] == "failed"
    assert any(n.startswith("the run failed: no request was recorded") for n in summary["notices"])


def test_the_summary_carries_the_count_only_when_the_driver_made_it(tmp_path: Path) -> None:
    # Runs recorded before (or by a client that cannot be counted) keep their summary as it was.
    for count in (None, 0, 7):
        run = tmp_path / f"run-{count}"
        shutil.copytree(REPO / "tests" / "data" / "run-small", run)
        meta = read_json(run / rundir.META)
        if count is not None:
            meta["in_flight_unrecorded"] = count
        rundir.write_json(run / rundir.META, meta)
        summary = analyze_run(run)
        notices = json.dumps(summary["notices"])
        if count is None:
            assert "in_flight_unrecorded" not in summary["requests"]
        else:
            assert summary["requests"]["in_flight_unrecorded"] == count
        assert ("in flight at the stop" in notices) == bool(count)
