"""Hostile endpoints: every failure a named error kind, nothing counted as a success unless it
is one, the run goes on and ends on time.

A fault-injection server (`hostile_server.HostileServer`, a real server on loopback) acts out
one misbehaviour per path; `loadbench run` (a child process: this process never imports
Locust) drives it. Runs shared by the tests of their kind: every case but two at once (one user
per case, each request named after its path), the server going down midway, a 200 MB answer, a
200 MB event stream and redirects followed. What the run recorded is compared with what the
server itself did.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import psutil
import pytest
from helpers import REPO, read_json
from hostile_server import (
    EVIL_MESSAGE,
    FEATURES_ERROR,
    HUGE_BYTES,
    OK_BODY,
    OVERLOADED_TEXT,
    RETRY_DATE,
    HostileServer,
)

from loadbench.analyze import stats
from loadbench.protocols.errorbody import MAX_MESSAGE_CHARS
from loadbench.protocols.responses import BODY_OVER_LIMIT
from loadbench.record.columnar import read_run_requests
from loadbench.record.records import MAX_ERROR_CHARS
from loadbench.report.html import esc
from loadbench.report.markdown import md

pytestmark = pytest.mark.e2e

DURATION_S = 3.0
TIMEOUT_S = 1.0
# Start-up (imports, checks) before the load and the analysis and report after it: a few
# seconds on an idle machine, much more on a busy 2-core one. The load itself is bounded tighter.
OVERHEAD_S = 30.0
LOAD_SLACK_S = 1.0
COMMON = (
    "-d",
    f"{DURATION_S:g}s",
    "--warmup",
    "0s",
    "--timeout",
    f"{TIMEOUT_S:g}s",
    "--quiet",
    "--no-sampler",
    # The recorder under hostile answers: no preflight to stop a run of them before the load
    # (tests/drive/test_preflight.py), nor one more request in the server's counts.
    "--no-preflight",
)
PAYLOAD = '{"inputs":[[0]]}'

# Every named kind loadbench may report (stats.ERROR_KINDS and the check and status kinds).
NAMED_KINDS = {kind for kind, _ in stats.ERROR_KINDS} | {BODY_OVER_LIMIT}

# The mixed run: path -> the kinds its failures may have (empty: every request succeeds).
EXPECTED: dict[str, set[str]] = {
    "/ok": set(),
    "/reset": {"connection reset"},
    "/close": {"connection closed"},
    "/burst5xx": {"HTTP 503"},
    "/429": {"HTTP 429"},
    "/slow?ms=3000": {"timeout"},
    "/truncated": {"connection closed"},
    "/badjson": {"invalid JSON"},
    "/sse-malformed": {"invalid response: malformed SSE event"},
    "/bad-chunked": {"malformed HTTP response"},
    "/hang": {"timeout"},
    "/redirect-loop": {"HTTP 302"},  # not followed: a redirect is an answer (no --follow-redirects)
}
NEVER_ENDS = "/sse-forever"
# What the server counts for a request of each path that the client saw fail (or succeed).
SERVER_OUTCOME = {
    "/reset": "reset",
    "/close": "closed",
    "/429": "429",
    "/truncated": "truncated",
    "/badjson": "badjson",
    "/sse-malformed": "sse-malformed",
    "/bad-chunked": "bad-chunked",
    "/redirect-loop": "302",
}

# One user per case (fixed_count; or `per_path`), each sending to its own path, named after it. Responses are
# checked as the kserve_v2 scenario does (JSON with "outputs"), SSE streams event by event.
# Each user rests PACE_S between requests: every case still sends hundreds, not the thousands a
# dozen back-to-back users would, which kept both cores busy.
PACE_S = 0.01
LOCUSTFILE = """
from __future__ import annotations

import json

from locust import constant, task

from loadbench.scenario.helpers import ModelUser, check_json

PATHS = {paths!r}
JSON_CHECKED = {{"/ok", "/burst5xx", "/badjson"}}


def check_sse(response):
    if response.request_meta.get("exception") is not None or not response.status_code:
        return  # already failed (a timeout, say): keep that reason
    text = response.content.decode("utf-8", "replace").replace("\\r\\n", "\\n")
    done = False
    for event in (e for e in text.split("\\n\\n") if e.strip()):
        for line in event.split("\\n"):
            if line.startswith(":"):
                continue
            data = line[len("data: "):] if line.startswith("data: ") else None
            if data == "[DONE]":
                done = True
                continue
            try:
                json.loads(data)
            except (TypeError, ValueError):
                response.failure("invalid response: malformed SSE event")
                return
    if not done:
        response.failure("invalid response: SSE stream ended without [DONE]")


def make_user(path):
    def send(self):
        with self.client.post(path, json={{"inputs": [[0]]}}, headers=self.headers, name=path, catch_response=True) as response:
            if path in JSON_CHECKED:
                check_json(response, "outputs")
            elif path.startswith("/sse"):
                check_sse(response)

    return type("User" + str(PATHS.index(path)), (ModelUser,), {{"__module__": __name__, "fixed_count": {per_path}, "wait_time": constant({pace}), "send": task(send)}})


# Only as module globals: Locust takes every User class it finds there, once by name.
globals().update({{user.__name__: user for user in map(make_user, PATHS)}})
"""


def hostile_locustfile(paths: list[str], per_path: int = 1) -> str:
    """LOCUSTFILE for these paths, ``per_path`` paced users each."""
    return LOCUSTFILE.format(paths=paths, pace=PACE_S, per_path=per_path)


@dataclass
class Run:
    """One `loadbench run` against a hostile server, and what each side saw."""

    out: Path
    result: subprocess.CompletedProcess[str]
    wall_s: float
    summary: dict[str, Any]
    meta: dict[str, Any]
    records: pd.DataFrame
    server: HostileServer
    peak_rss_bytes: int = 0
    server_stop_s: float = 0.0  # how long the server took to shut down after the run
    rss: list[tuple[float, int]] | None = None  # (time.time(), RSS bytes) of loadbench, every 50 ms

    @property
    def load_s(self) -> float:
        """How long the load itself ran (from meta.json: started to stopped)."""
        return float(self.meta["ended_unix_s"]) - float(self.meta["started_unix_s"])

    def rss_at_load_start(self) -> int:
        """loadbench's memory when the load began: its imports, before any request."""
        started = float(self.meta["started_unix_s"])
        before = [rss for t, rss in self.rss or [] if t < started]
        assert before, "no memory sample before the load"
        return before[-1]

    def load_rss_growth(self) -> int:
        """How far loadbench's memory grew while the load ran, above what it held when it began:
        what the requests cost, apart from the imports before and the report after."""
        started, ended = float(self.meta["started_unix_s"]), float(self.meta["ended_unix_s"])
        during = [rss for t, rss in self.rss or [] if started <= t <= ended]
        assert during, "no memory sample during the load"
        return max(during) - self.rss_at_load_start()

    def report_rss_growth(self) -> int:
        """How far loadbench's memory grew after the load, above what it held when the load ended:
        what analyzing the records and writing the report cost."""
        ended = float(self.meta["ended_unix_s"])
        at_end = [rss for t, rss in self.rss or [] if t <= ended]
        after = [rss for t, rss in self.rss or [] if t > ended]
        assert at_end and after, "no memory sample at the load's end or after it"
        return max(after) - at_end[-1]

    def kinds(self, name: str | None = None) -> pd.Series:
        """Error kind of every failed request (of one name), as the analyzer names it."""
        failed = self.records[self.records["ok"] == 0]
        if name is not None:
            failed = failed[failed["name"] == name]
        return pd.Series(
            [
                stats.error_kind(int(s), str(e))
                for s, e in zip(failed["status"], failed["error"], strict=True)
            ],
            dtype="object",
        )


def run_loadbench(
    server: HostileServer, out: Path, *args: str, exit_code: int | tuple[int, ...] = 0, target: str = ""
) -> Run:
    """``loadbench run --target SERVER ARGS`` to completion, timed, sampling its memory;
    ``exit_code``: what it must exit with, or the codes it may (3: the target failed every request);
    ``target``: a URL on the server (default its root)."""
    started = time.monotonic()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "loadbench",
            "run",
            "--target",
            target or server.url,
            "--out",
            str(out),
            *COMMON,
            *args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    rss: list[tuple[float, int]] = []
    try:
        watched = psutil.Process(process.pid)
        deadline = started + DURATION_S + TIMEOUT_S + OVERHEAD_S + 30
        while process.poll() is None and time.monotonic() < deadline:
            with contextlib.suppress(psutil.Error):  # between polls, it may have just exited
                rss.append((time.time(), watched.memory_info().rss))
            time.sleep(0.05)
        stdout, stderr = process.communicate(timeout=max(deadline - time.monotonic(), 1))
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    wall_s = time.monotonic() - started
    result = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    assert result.returncode in (exit_code if isinstance(exit_code, tuple) else (exit_code,)), result.stderr
    return Run(
        out=out,
        result=result,
        wall_s=wall_s,
        summary=read_json(out / "summary.json"),
        meta=read_json(out / "meta.json"),
        records=read_run_requests(out),
        server=server,
        peak_rss_bytes=max((r for _, r in rss), default=0),
        rss=rss,
    )


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    folder = tmp_path_factory.mktemp("mixed")
    locustfile = folder / "hostile.py"
    locustfile.write_text(hostile_locustfile([*EXPECTED, NEVER_ENDS]))
    server = HostileServer().start()
    try:
        run = run_loadbench(
            server, folder / "run", "--scenario", str(locustfile), "-u", str(len(EXPECTED) + 1)
        )
    finally:
        stop_started = time.monotonic()
        server.stop()  # raises if a thread is left behind
    run.server_stop_s = time.monotonic() - stop_started
    yield run


@pytest.fixture(scope="module")
def refused(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    folder = tmp_path_factory.mktemp("refused")
    # Two paced users on one path: refused connections fail at once, and back-to-back users would
    # spin on them for the rest of the run.
    locustfile = folder / "hostile.py"
    locustfile.write_text(hostile_locustfile(["/burst5xx"], per_path=2))
    with HostileServer(refuse_after_s=1.5) as server:
        yield run_loadbench(server, folder / "run", "--scenario", str(locustfile), "-u", "2")


# Refusals: model servers saying no, each in its own way (hostile_server: /400, /400-evil, /429,
# /503-text), beside good answers.
REFUSALS = ["/ok", "/400", "/400-evil", "/429", "/503-text"]
UNKNOWN_MODEL_SAID = "body.model: unknown model 'digits-v9'"  # FastAPI's detail entry: loc: msg
# What the recorder keeps of EVIL_MESSAGE: the control character (ESC) gone, all else as sent.
EVIL_SAID = EVIL_MESSAGE.replace("\x1b", " ")
OVERLOADED_SAID = OVERLOADED_TEXT.decode().splitlines()[0]  # text: its first line


@pytest.fixture(scope="module")
def refusals(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    folder = tmp_path_factory.mktemp("refusals")
    locustfile = folder / "hostile.py"
    locustfile.write_text(hostile_locustfile(REFUSALS))
    with HostileServer() as server:
        yield run_loadbench(server, folder / "run", "--scenario", str(locustfile), "-u", str(len(REFUSALS)))


@pytest.fixture(scope="module")
def huge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    folder = tmp_path_factory.mktemp("huge")
    with HostileServer() as server:
        yield run_loadbench(
            server,
            folder / "run",
            "--scenario",
            "json_post",
            "--path",
            "/huge",
            "--payload",
            PAYLOAD,
            "--no-check-json",  # an octet stream: received in full is the success measured here
            "-u",
            "1",
            # A loaded machine may read no 200 MB body within --timeout: every request then fails
            # (named), the run goes on for its duration and exits 3.
            "--keep-going",
            exit_code=(0, 3),
        )


def assert_run_is_consistent(run: Run) -> None:
    """The summary agrees with the records; every failure has a named kind and a short example."""
    req = run.summary["requests"]
    assert "Traceback" not in run.result.stderr
    assert run.summary["run"]["status"] == "complete"
    assert req["total"] == len(run.records)  # no warmup: every record is measured
    assert req["ok"] == int(run.records["ok"].sum())
    assert req["errors"] == req["total"] - req["ok"]
    # The errors table: at most ten rows (a kind, and what the server said), here all of them,
    # summing to the failures.
    rows = run.summary["errors"]
    assert sum(row["count"] for row in rows) == req["errors"]
    kinds = {row["kind"] for row in rows}
    assert kinds == set(run.kinds())
    for kind in kinds:
        assert kind in NAMED_KINDS or kind.startswith(("HTTP ", "invalid response: ")), kind
        assert sum(row["count"] for row in rows if row["kind"] == kind) == int((run.kinds() == kind).sum())
    for row in rows:
        assert "\n" not in row["example"] and len(row["example"]) <= MAX_ERROR_CHARS
        said = row.get("server_message", "")
        assert "\n" not in said and len(said) <= MAX_MESSAGE_CHARS
    # Nothing failed without saying why; nothing that succeeded carries an error.
    assert (run.records.loc[run.records["ok"] == 0, "error"].str.len() > 0).all()
    assert (run.records.loc[run.records["ok"] == 1, "error"].fillna("") == "").all()


def assert_on_time(run: Run) -> None:
    """The load stopped at --duration (plus at most one timeout) and the command soon after."""
    assert DURATION_S - 0.1 <= run.load_s <= DURATION_S + TIMEOUT_S + LOAD_SLACK_S, run.load_s
    # No recorded request ended later than that either.
    ends = run.records["start_unix_s"] + run.records["latency_ms"] / 1000
    limit = float(run.meta["started_unix_s"]) + DURATION_S + TIMEOUT_S + LOAD_SLACK_S
    assert (ends <= limit).all(), ends.max() - limit
    assert run.wall_s < DURATION_S + TIMEOUT_S + OVERHEAD_S, run.wall_s


# --- every case at once ------------------------------------------------------------------------


def test_every_hostile_case_is_a_named_kind_and_the_run_goes_on(mixed: Run) -> None:
    assert_run_is_consistent(mixed)
    assert_on_time(mixed)
    by_name = mixed.summary["by_name"]
    for name, expected in EXPECTED.items():
        assert by_name[name]["requests"] >= 1, name  # every user kept sending: the run went on
        kinds = set(mixed.kinds(name))
        assert kinds == expected, f"{name}: {kinds}"
    assert {row["kind"] for row in mixed.summary["errors"]} == set().union(*EXPECTED.values())


def test_only_real_successes_count_as_ok(mixed: Run) -> None:
    by_name = mixed.summary["by_name"]
    server = mixed.server
    succeeding = {name for name, stats_ in by_name.items() if stats_["ok"]}
    assert succeeding == {"/ok", "/burst5xx"}
    # The client saw what the server sent; at most the one request in flight at the stop
    # (one user per path) was answered by the server and never recorded.
    for name, outcome in [("/ok", "ok"), ("/burst5xx", "ok")]:
        assert server.count(name, outcome) - 1 <= by_name[name]["ok"] <= server.count(name, outcome), name
    assert server.count("/burst5xx", "503") >= 1
    assert (
        server.count("/burst5xx", "503") - 1
        <= by_name["/burst5xx"]["errors"]
        <= server.count("/burst5xx", "503")
    )
    for name, outcome in SERVER_OUTCOME.items():
        assert server.count(name, outcome) - 1 <= by_name[name]["errors"] <= server.count(name, outcome), name


def test_a_redirect_is_recorded_as_the_answer_it_is(mixed: Run) -> None:
    # Not followed: one request on the wire per record (above), failed with where it pointed.
    loops = mixed.records[mixed.records["name"] == "/redirect-loop"]
    assert len(loops) >= 1 and (loops["status"] == 302).all() and (loops["ok"] == 0).all()
    assert (
        loops["error"] == "RedirectError: HTTP 302 redirect to /redirect-loop (pass --follow-redirects)"
    ).all()
    assert (loops["server_message"] == "redirect to /redirect-loop").all()
    assert loops["redirects"].isna().all()  # none followed
    row = next(r for r in mixed.summary["errors"] if r["kind"] == "HTTP 302")
    assert row["server_message"] == "redirect to /redirect-loop"
    assert "redirects" not in mixed.summary["requests"]  # a run that follows none has no count


@pytest.mark.parametrize("checked", [True, False], ids=["json_post", "no-check-json"])
def test_json_post_fails_a_200_whose_body_is_not_json(tmp_path: Path, checked: bool) -> None:
    # The real built-in scenario, not the test's locustfile: /badjson answers 200, application/json,
    # a well-framed body that is not JSON. Only --no-check-json counts it a success.
    with HostileServer() as server:
        run = run_loadbench(
            server, tmp_path / "run", "--scenario", "json_post", "--path", "/badjson", "--payload", PAYLOAD,
            "-u", "1", *([] if checked else ["--no-check-json"]), "--keep-going",
            "-d", "1s",  # after COMMON's: what each answer is counted as needs no long run
            exit_code=3 if checked else 0,
        )  # fmt: skip
    assert_run_is_consistent(run)
    answered = server.count("/badjson", "badjson")
    assert len(run.records) >= 1 and answered - 1 <= len(run.records) <= answered
    if checked:
        assert run.summary["requests"]["ok"] == 0
        assert set(run.kinds()) == {"invalid JSON"}
        assert run.records["error"].str.contains("invalid response: body is not JSON", regex=False).all()
    else:
        assert run.summary["requests"]["errors"] == 0


def test_timeouts_fail_after_the_timeout(mixed: Run) -> None:
    for name in ("/slow?ms=3000", "/hang"):
        failed = mixed.records[(mixed.records["name"] == name)]
        assert len(failed) >= 1 and (failed["ok"] == 0).all()
        assert (failed["status"] == 0).all()
        assert (failed["latency_ms"] >= TIMEOUT_S * 1000 * 0.99).all(), name
        assert (failed["latency_ms"] < TIMEOUT_S * 1000 + 1500).all(), name
        # The error names the timeout itself, not the client's wrapper around it: the socket
        # read's timeout or the request deadline (loadbench.scenario.helpers.DeadlineSession), whichever fired.
        assert all(str(e).startswith("TimeoutError: timed out") for e in failed["error"])
    # The server saw the client give up on the slow answer each time.
    assert mixed.server.count("/slow", "abandoned") >= 1
    assert mixed.server.count("/slow", "ok") == 0


def test_a_reset_is_told_from_a_close(mixed: Run) -> None:
    errors = mixed.records.set_index("name")["error"]
    assert all("ConnectionResetError" in e for e in errors.loc[["/reset"]])
    assert not any("Reset" in e for e in errors.loc[["/close", "/truncated"]])


def test_the_server_shut_down_quickly(mixed: Run) -> None:
    # The never-ending stream and the hanging requests included: every socket closed, every thread joined.
    assert mixed.server_stop_s < 3.0


def test_a_never_ending_stream_is_a_timeout(mixed: Run) -> None:
    assert mixed.server.count(NEVER_ENDS, "sse-events") > 0  # it was really streaming
    assert set(mixed.kinds(NEVER_ENDS)) == {"timeout"}


# --- the server goes down midway ---------------------------------------------------------------


def test_connection_refused_midway(refused: Run) -> None:
    assert_run_is_consistent(refused)
    assert_on_time(refused)
    server = refused.server
    assert server.down_at is not None
    records = refused.records.assign(
        kind=[
            stats.error_kind(int(s), str(e))
            for s, e in zip(refused.records["status"], refused.records["error"], strict=True)
        ]
    )
    kinds = set(records.loc[records["ok"] == 0, "kind"])
    # 503 bursts before, refusals after; the requests in flight when it went down: reset or closed.
    assert (
        {"HTTP 503", "connection refused"}
        <= kinds
        <= {
            "HTTP 503",
            "connection refused",
            "connection reset",
            "connection closed",
        }
    )
    ok = records[records["ok"] == 1]
    assert len(ok) >= 1
    assert server.count("/burst5xx", "ok") - 2 <= len(ok) <= server.count("/burst5xx", "ok")
    assert (ok["start_unix_s"] < server.down_at).all()
    refusals = records[records["kind"] == "connection refused"]
    assert (refusals["start_unix_s"] > server.down_at - 0.01).all()
    assert (refusals["status"] == 0).all()
    # Resets and closes come only from the cut itself: per user, the request in flight and at
    # most one more racing it on a connection the server was closing (2 users), all near the cut.
    cut = records[records["kind"].isin(["connection reset", "connection closed"])]
    assert len(cut) <= 2 * 2
    assert (cut["start_unix_s"] < server.down_at + 0.5).all()


# --- a 200 MB answer ---------------------------------------------------------------------------


def test_a_200_mb_answer_is_received_and_recorded(huge: Run) -> None:
    assert_run_is_consistent(huge)
    assert huge.wall_s < DURATION_S + TIMEOUT_S + OVERHEAD_S + 10  # it may overrun the load (below)
    records = huge.records
    assert len(records) >= 1
    ok = records[records["ok"] == 1]
    # All of it arrived (Content-Length, and the body read in full), or the request failed with a name.
    assert (ok["response_bytes"] == HUGE_BYTES).all()
    assert (ok["status"] == 200).all()
    assert set(huge.kinds()) <= NAMED_KINDS
    assert len(ok) <= huge.server.count("/huge", "huge")
    assert (huge.records["response_bytes"] > 0).all()


def test_a_200_mb_answer_is_never_held_in_memory(huge: Run) -> None:
    # Read in blocks and dropped beyond --max-body (8 MiB by default): the load adds a small part
    # of one body to what loadbench held, never the body (it added 400 MB when bodies were kept).
    assert huge.load_rss_growth() < HUGE_BYTES / 8, huge.load_rss_growth()
    # Nor after it, while the records are analyzed and the report written (the whole process
    # peaked at 513 MB when bodies were kept): above what it held when the load ended, less than
    # one body. That phase has a cost of its own: DuckDB and pyarrow, mapped to read the Parquet
    # records, touch some 100 MB of their libraries (about 120 MB of growth here; their pages vary by
    # machine: CI's process peaked 46 MB above this machine's, so an absolute bound measured the
    # machine). A body kept for the analysis or the report would add its 200 MB to that.
    assert huge.report_rss_growth() < HUGE_BYTES, huge.report_rss_growth()


def test_a_200_mb_answer_respects_duration_and_timeout(huge: Run) -> None:
    # A body arriving at full speed is read without yielding to gevent (geventhttpclient's read
    # loop never waits on a socket that always has data), so neither the stop nor the deadline
    # can cut one short: the load overruns by at most the one body being read when it ends,
    # however long that read took (the server's own clock: the last body may not be recorded).
    due_end = float(huge.meta["started_unix_s"]) + DURATION_S
    last = max((s for s in huge.server.huge_sends if s[0] <= due_end + TIMEOUT_S), key=lambda s: s[0])
    read_s = last[1] - last[0]
    sends = [(round(b - due_end, 2), round(e - due_end, 2)) for b, e in huge.server.huge_sends]
    assert huge.load_s <= DURATION_S + max(TIMEOUT_S, read_s) + LOAD_SLACK_S, (huge.load_s, sends)
    # And an answer slower than --timeout is a timeout, however it arrived (the recorder's rule).
    ok = huge.records[huge.records["ok"] == 1]
    assert (ok["latency_ms"] <= TIMEOUT_S * 1000).all()
    slow = huge.records[huge.records["latency_ms"] > TIMEOUT_S * 1000]
    assert (slow["ok"] == 0).all() and set(slow["error"].map(lambda e: stats.error_kind(0, e))) <= {"timeout"}


# --- what refusing servers said ----------------------------------------------------------------


def test_each_refusal_keeps_what_the_server_said(refusals: Run) -> None:
    assert_run_is_consistent(refusals)
    records = refusals.records
    failed = records[records["ok"] == 0]
    said = {
        name: set(zip(rows["server_message"].astype(str), rows["retry_after"].astype(str), strict=True))
        for name, rows in failed.groupby("name", observed=True)
    }
    assert said == {
        "/400": {(FEATURES_ERROR, ""), (UNKNOWN_MODEL_SAID, "")},
        "/400-evil": {(EVIL_SAID, "")},
        "/429": {("slow down", "1")},
        "/503-text": {(OVERLOADED_SAID, RETRY_DATE)},
    }
    assert (records.loc[records["ok"] == 1, "server_message"].astype(str) == "").all()
    # The errors table: one row per status and message, each counted, Retry-After when sent.
    rows = {(row["kind"], row.get("server_message")): row for row in refusals.summary["errors"]}
    assert rows.keys() == {
        ("HTTP 400", FEATURES_ERROR),
        ("HTTP 400", UNKNOWN_MODEL_SAID),
        ("HTTP 400", EVIL_SAID),
        ("HTTP 429", "slow down"),
        ("HTTP 503", OVERLOADED_SAID),
    }
    for (_, message), row in rows.items():
        assert row["count"] == int((failed["server_message"] == message).sum()) >= 1
    assert rows[("HTTP 429", "slow down")]["retry_after"] == "1"
    assert rows[("HTTP 503", OVERLOADED_SAID)]["retry_after"] == RETRY_DATE
    assert "retry_after" not in rows[("HTTP 400", FEATURES_ERROR)]


def test_the_reports_show_what_the_server_said_as_text(refusals: Run) -> None:
    page = (refusals.out / "report.html").read_text(encoding="utf-8")
    table = page[page.index("<h2>Errors</h2>") : page.index("<h2>Run</h2>")]
    assert "server&#x27;s message</th>" in table and "Retry-After</th>" in table
    for text in (FEATURES_ERROR, UNKNOWN_MODEL_SAID, EVIL_SAID, OVERLOADED_SAID, RETRY_DATE):
        assert esc(text) in table, text
    # Markup is text (escaped), the right-to-left override shows as its code point.
    assert "<script" not in table and "<b>" not in table and "\u202e" not in page
    assert "&lt;script&gt;document.title=&#x27;PWNED&#x27;&lt;/script&gt; &lt;U+202E&gt;gnp.exe" in table
    markdown = (refusals.out / "summary.md").read_text(encoding="utf-8")
    lines = markdown.splitlines()
    top = lines.index("**Top errors**")
    errors = [line for line in lines[top + 2 :] if line.startswith("|")]
    assert errors[0] == "| kind | count | share | server's message | Retry-After | example |"
    for text in (FEATURES_ERROR, EVIL_SAID, OVERLOADED_SAID, RETRY_DATE):
        assert md(text) in markdown, text
    assert "<script" not in markdown and "\u202e" not in markdown
    # The pipes in the server's words are escaped: every row keeps the table's six columns.
    assert all(len(re.split(r"(?<!\\)\|", line)) == 8 for line in errors), errors


# --- bodies over --max-body, a 200 MB stream, redirects followed -------------------------------


def test_a_check_that_needs_a_body_over_max_body_fails_by_that_name(tmp_path: Path) -> None:
    # /ok's JSON is 22 bytes: over a 10-byte --max-body it is read and counted, never parsed.
    with HostileServer() as server:
        run = run_loadbench(
            server, tmp_path / "run", "--scenario", "json_post", "--path", "/ok", "--payload", PAYLOAD,
            "-u", "1", "--max-body", "10", "--keep-going", "--no-preflight",
            "-d", "1s",  # after COMMON's: what each answer is counted as needs no long run
            exit_code=3,
        )  # fmt: skip
    assert_run_is_consistent(run)
    assert set(run.kinds()) == {"body over --max-body"}
    assert (run.records["response_bytes"] == len(OK_BODY)).all() and (run.records["status"] == 200).all()
    assert run.meta["settings"]["max_body_bytes"] == 10
    answered = server.count("/ok", "ok")
    assert answered - 1 <= len(run.records) <= answered


@pytest.fixture(scope="module")
def huge_stream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    folder = tmp_path_factory.mktemp("huge-stream")
    with HostileServer() as server:
        yield run_loadbench(
            server, folder / "run", "--scenario", "openai_chat", "--model", "m", "-u", "1",
            "--timeout", "60s",  # a 200 MB stream may take seconds to parse on a busy machine
            target=server.url + "/huge-sse",
        )  # fmt: skip


def test_a_200_mb_stream_is_parsed_as_it_arrives_and_never_held(huge_stream: Run) -> None:
    assert_run_is_consistent(huge_stream)
    records = huge_stream.records
    sent = huge_stream.server.count("/huge-sse/v1/chat/completions", "huge-sse")
    assert 1 <= len(records) <= sent and records["ok"].all()
    # Streams are parsed whatever their size (--max-body is for bodies read whole): every byte
    # was read and counted, the answer's end found.
    assert (records["response_bytes"] == huge_stream.server.huge_sse_bytes).all()
    assert (records["output_tokens"] == 1).all() and (records["tokens_source"] == "usage").all()
    assert huge_stream.load_rss_growth() < HUGE_BYTES / 8, huge_stream.load_rss_growth()


@pytest.fixture(scope="module")
def redirected(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    folder = tmp_path_factory.mktemp("redirected")
    locustfile = folder / "hostile.py"
    locustfile.write_text(hostile_locustfile(["/redirect-to-ok", "/redirect-loop"]))
    with HostileServer() as server:
        yield run_loadbench(
            server, folder / "run", "--scenario", str(locustfile), "-u", "2", "--follow-redirects", "3"
        )


def test_followed_redirects_are_counted_and_a_loop_stops_at_the_bound(redirected: Run) -> None:
    assert_run_is_consistent(redirected)
    server, records = redirected.server, redirected.records
    once = records[records["name"] == "/redirect-to-ok"]
    loop = records[records["name"] == "/redirect-loop"]
    assert len(once) >= 1 and len(loop) >= 1
    # One hop to /ok, which answered: a success of one redirect, /ok's body and status.
    assert once["ok"].all() and (once["redirects"] == 1).all() and (once["status"] == 200).all()
    assert (once["response_bytes"] == len(OK_BODY)).all()
    assert server.count("/ok", "ok") - 1 <= len(once) <= server.count("/ok", "ok")
    # The loop: 3 hops followed, the 4th redirect refused: 4 requests on the wire per record
    # (the one in flight at the stop may have sent some of its own).
    assert set(redirected.kinds("/redirect-loop")) == {"too many redirects"}
    assert (loop["redirects"] == 3).all()
    assert 4 * len(loop) <= server.count("/redirect-loop", "302") <= 4 * (len(loop) + 1)
    requests = redirected.summary["requests"]
    assert requests["redirects"] == len(once) + 3 * len(loop)
    assert requests["redirected"] == len(once) + len(loop)
    assert redirected.meta["settings"]["follow_redirects"] == 3
