"""The recorder attached to a real Locust environment's request event, in a child process (locust
stays out of pytest): every event becomes one record, an answer slower than --timeout is a
failure even when the client let it finish, a refused request keeps what the server said, and
with --server-time-header an answer keeps the server's own time (a short demo run too)."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from helpers import read_json, run_cli
from hostile_server import FEATURES_ERROR, OVERLOADED_TEXT, RETRY_DATE

from loadbench.analyze import stats
from loadbench.record.columnar import read_run_requests
from loadbench.record.records import read_requests

TESTS = Path(__file__).resolve().parents[1]

SCRIPT = r"""
import argparse, sys
from pathlib import Path
from locust import User
from locust.env import Environment
from loadbench.drive.recorder import Recorder

class Nobody(User):
    abstract = True

timeout = float(sys.argv[2]) if len(sys.argv) > 2 else None
options = argparse.Namespace(timeout=timeout)
env = Environment(user_classes=[Nobody], parsed_options=options)
recorder = Recorder(Path(sys.argv[1]), secrets=["s3cret"]).register(env)
fire = env.events.request.fire
fire(request_type="POST", name="/fast", response_time=999.5, response_length=10, start_time=1.0, context={})
fire(request_type="POST", name="/slow", response_time=1000.5, response_length=200_000_000, start_time=2.0, context={})
fire(request_type="POST", name="/llm", response_time=1500.0, response_length=5, start_time=3.0,
     context={"loadbench": {"ttft_ms": 20.0, "output_tokens": 4}})
fire(request_type="POST", name="/reset?key=s3cret", response_time=3.0, response_length=0, start_time=4.0,
     exception=ConnectionResetError("reset"), context={})
print(recorder.total, recorder.errors)
recorder.close()
"""


def _record(tmp_path: Path, *timeout: str) -> tuple[str, object]:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path), *timeout], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip(), read_requests(tmp_path / "requests.csv")


def test_an_answer_slower_than_the_timeout_is_a_timeout(tmp_path: Path) -> None:
    counts, frame = _record(tmp_path, "1.0")
    rows = {row["name"]: row for row in frame.to_dict("records")}  # type: ignore[attr-defined]
    assert counts == "4 3"
    # Within the timeout: a success, its latency as measured.
    assert rows["/fast"]["ok"] == 1 and rows["/fast"]["latency_ms"] == 999.5
    # Slower than --timeout: failed, kind timeout, its measured latency and size kept.
    slow = rows["/slow"]
    assert slow["ok"] == 0 and slow["latency_ms"] == 1000.5 and slow["response_bytes"] == 200_000_000
    assert slow["error"] == "TimeoutError: timed out: answered after 1.000 s, over --timeout 1 s"
    assert stats.error_kind(0, slow["error"]) == "timeout"
    # The same rule on the path with per-request extras (an LLM stream), which keeps its timings.
    assert rows["/llm"]["ok"] == 0 and rows["/llm"]["ttft_ms"] == 20.0
    assert stats.error_kind(0, rows["/llm"]["error"]) == "timeout"
    # A real failure keeps its own kind; a secret in the name is scrubbed.
    reset = frame[frame["error"].str.contains("reset")]  # type: ignore[index]
    assert len(reset) == 1 and "s3cret" not in reset.iloc[0]["name"]


def test_without_a_timeout_option_nothing_is_reclassified(tmp_path: Path) -> None:
    counts, frame = _record(tmp_path)
    assert counts == "4 1"
    assert frame["ok"].tolist() == [1, 1, 1, 0]  # type: ignore[index]


SAID_SCRIPT = r"""
import argparse, sys
from pathlib import Path
sys.path.insert(0, sys.argv[2])  # tests/, for the hostile server
from locust import User
from locust.contrib.fasthttp import FastHttpSession
from locust.env import Environment
from hostile_server import HostileServer
from loadbench.drive.recorder import Recorder

class Nobody(User):
    abstract = True

class Headers(dict):
    def get(self, name, default=None):  # names ignore case, as in the clients' header maps
        return next((v for k, v in self.items() if k.lower() == name.lower()), default)

class Unread:
    # A streamed answer whose body nobody read yet: each read of it is counted.
    def __init__(self, status, headers, body):
        self.status_code, self.headers, self.body, self.reads = status, Headers(headers), body, 0

    @property
    def content(self):
        self.reads += 1
        return self.body

env = Environment(user_classes=[Nobody], parsed_options=argparse.Namespace(timeout=None))
recorder = Recorder(Path(sys.argv[1]), secrets=["sk-s3cret-token"]).register(env)
said = b'{"error": "bad key sk-s3cret-token"}'
small = Unread(401, {"Content-Length": str(len(said)), "Retry-After": "sk-s3cret-token"}, said)
chunked = Unread(503, {"Content-Type": "text/plain"}, b"never read")  # no length: could be endless
large = Unread(503, {"Content-Length": str(10**9)}, b"never read")
for name, response in [("/small", small), ("/chunked", chunked), ("/large", large)]:
    env.events.request.fire(
        request_type="POST", name=name, response_time=1.0, response_length=0, start_time=1.0,
        exception=RuntimeError("refused"), response=response, context={},
    )
print(small.reads, chunked.reads, large.reads)

# Locust's fast client against a real server on loopback: answers it read, and a streamed one.
with HostileServer() as server:
    session = FastHttpSession(server.url, env.events.request, user=None)
    for _ in range(2):
        session.post("/400", json={})
    session.post("/429", json={}, stream=True).content
    session.post("/503-text", json={})
    with session.post("/badjson", json={}, catch_response=True) as response:
        response.failure("invalid response: body is not JSON")  # a 200 the check failed
recorder.close()
"""


def test_a_refused_request_keeps_what_the_server_said(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", SAID_SCRIPT, str(tmp_path), str(TESTS)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    # The small unread body was read once; a chunked or large one, never.
    assert result.stdout.split() == ["1", "0", "0"]
    frame = read_requests(tmp_path / "requests.csv")
    said = [
        (name, status, message, retry)
        for name, status, message, retry in zip(
            frame["name"], frame["status"], frame["server_message"], frame["retry_after"], strict=True
        )
    ]
    assert said == [
        ("/small", 401, "bad key ***", "***"),  # credentials scrubbed, in the header too
        ("/chunked", 503, "", ""),
        ("/large", 503, "", ""),
        ("/400", 400, FEATURES_ERROR, ""),  # MLServer's {"error": ...}
        ("/400", 400, "body.model: unknown model 'digits-v9'", ""),  # FastAPI's detail list
        ("/429", 429, "slow down", "1"),  # streamed: its small body read all the same
        ("/503-text", 503, OVERLOADED_TEXT.decode().splitlines()[0], RETRY_DATE),
        ("/badjson", 200, "", ""),  # not refused: a failed check of a 200 says nothing more
    ]
    assert (frame["ok"] == 0).all()


COUNTER_SCRIPT = r"""
import argparse, sys
from pathlib import Path
from locust import User
from locust.env import Environment
from prometheus_client import generate_latest
from loadbench.drive.livemetrics import LiveMetrics, RunInfo
from loadbench.drive.recorder import Recorder

class Nobody(User):
    abstract = True

class Answer:
    def __init__(self, status_code):
        self.status_code = status_code

out = Path(sys.argv[1])
env = Environment(user_classes=[Nobody], parsed_options=argparse.Namespace(timeout=2.0))
recorder = Recorder(out, secrets=["s3cret"]).register(env)
from loadbench.drive.openloop import INTENDED_KEY
recorder.counter = live = LiveMetrics(RunInfo(run_id="r", scenario="s"), ["s3cret"])
fire = env.events.request.fire
for i in range(3000):
    start = 1_800_000_000 + i * 0.0123456789
    context = {}
    if i % 4 == 0:
        context[INTENDED_KEY] = start - (i % 13) / 1000
    if i % 50 == 0:
        context["loadbench"] = {"ttft_ms": 12.3456, "output_tokens": 7}
    kwargs = {"response": Answer(201 if i % 5 == 0 else 200)}
    if i % 31 == 0:
        kwargs["exception"] = ConnectionResetError("reset by peer")
    fire(request_type="POST", name=["/a", "/b?key=s3cret", "/c\nd", "x" * 300][i % 4],
         response_time=(i % 997) * 0.0123456 + 0.0004999 + (2500.0 if i % 211 == 0 else 0.0),
         response_length=10, start_time=start, context=context, **kwargs)
recorder.close()
by_line = LiveMetrics(RunInfo(run_id="r", scenario="s"), ["s3cret"])
by_line.feed((out / "requests.csv").read_text(encoding="utf-8"))
(out / "by_counter.txt").write_bytes(generate_latest(live.registry()))
(out / "by_line.txt").write_bytes(generate_latest(by_line.registry()))
"""


def test_the_live_counter_counts_every_record_as_its_line_in_requests_csv(tmp_path: Path) -> None:
    # What --metrics-port serves in a local run (the recorder's counter, fed on its hot path with
    # figures, elsewhere with records) must equal what the written file says, request by request.
    result = subprocess.run(
        [sys.executable, "-c", COUNTER_SCRIPT, str(tmp_path)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    by_counter = (tmp_path / "by_counter.txt").read_text()
    assert by_counter == (tmp_path / "by_line.txt").read_text()
    assert 'loadbench_requests_total{name="/a",outcome="ok",scenario="s",status="200"}' in by_counter
    assert "s3cret" not in by_counter and 'outcome="timeout"' in by_counter


TIMED_SCRIPT = r"""
import argparse, sys
from pathlib import Path
from locust import User
from locust.env import Environment
from prometheus_client import generate_latest
from loadbench.drive.livemetrics import LiveMetrics, RunInfo
from loadbench.drive.openloop import INTENDED_KEY
from loadbench.drive.recorder import Recorder

class Nobody(User):
    abstract = True

class Headers(dict):
    def get(self, name, default=None):  # names ignore case, as in the clients' header maps
        return next((v for k, v in self.items() if k.lower() == name.lower()), default)

class Answer:
    def __init__(self, status_code, service, timing, served=None):
        headers = {"x-service-time-ms": service, "Server-Timing": timing, "X-Served-By": served}
        self.status_code = status_code
        self.headers = Headers({k: v for k, v in headers.items() if v is not None})

out = Path(sys.argv[1])
options = argparse.Namespace(
    timeout=1.0, server_time_header=sys.argv[2] or None, replica_header=sys.argv[3] if len(sys.argv) > 3 else None
)
env = Environment(user_classes=[Nobody], parsed_options=options)
recorder = Recorder(out, secrets=["s3cret"]).register(env)
recorder.counter = live = LiveMetrics(RunInfo(run_id="r", scenario="s"), ["s3cret"])
timing = 'queue;dur=1.5, infer;dur=18.25;desc="gpu, batch 4"'
requests = [
    # name, answer, exception, latency ms, context
    ("/plain", Answer(200, "20.5", timing, "replica-1"), None, 25.0, {}),
    ("/open", Answer(200, "7", "infer;dur=7", "b, with a comma"), None, 9.0, {INTENDED_KEY: 0.999}),
    ("/repeated", Answer(200, None, ["queue;dur=1", "infer;dur=2"]), None, 5.0, {}),  # geventhttpclient's list
    ("/refused?key=s3cret", Answer(503, "3", "infer;dur=3", "r s3cret\nnext"), RuntimeError("HTTP 503"), 4.0, {}),
    ("/late", Answer(200, "900", "infer;dur=900"), None, 1500.0, {}),  # over --timeout: still said
    ("/llm", Answer(200, "12", "infer;dur=12"), None, 30.0, {"loadbench": {"ttft_ms": 5.0}}),
    ("/garbage", Answer(200, "-1", "infer;dur=oops"), None, 3.0, {}),
    ("/none", Answer(200, None, None), None, 3.0, {}),
    ("/reset", Answer(0, "5", "infer;dur=5"), ConnectionResetError("reset"), 3.0, {}),  # no answer
]
for i, (name, answer, exception, latency, context) in enumerate(requests):
    env.events.request.fire(
        request_type="POST", name=name, response_time=latency, response_length=10, start_time=1.0 + i,
        response=answer, exception=exception, context=context,
    )
recorder.close()
by_line = LiveMetrics(RunInfo(run_id="r", scenario="s"), ["s3cret"])
by_line.feed((out / "requests.csv").read_text(encoding="utf-8"))
(out / "by_counter.txt").write_bytes(generate_latest(live.registry()))
(out / "by_line.txt").write_bytes(generate_latest(by_line.registry()))
print(recorder.total, recorder.errors)
"""

NAMES = ["/plain", "/open", "/repeated", "/refused?key=***", "/late", "/llm", "/garbage", "/none", "/reset"]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("X-Service-Time-Ms", [20.5, 7.0, None, 3.0, 900.0, 12.0, None, None, None]),
        ("Server-Timing", [19.75, 7.0, 3.0, 3.0, 900.0, 12.0, None, None, None]),
        ("Server-Timing:queue", [1.5, None, 1.0, None, None, None, None, None, None]),
        ("", [None] * 9),  # without the option: never read, the header there or not
    ],
)
def test_the_servers_time_is_recorded_from_the_header_named(
    tmp_path: Path, spec: str, expected: list[float | None]
) -> None:
    result = subprocess.run(
        [sys.executable, "-c", TIMED_SCRIPT, str(tmp_path), spec], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["9", "3"]  # every request once; refused, late and reset failed
    frame = read_requests(tmp_path / "requests.csv")
    assert frame["name"].tolist() == NAMES
    got = [None if math.isnan(v) else v for v in frame["server_ms"]]
    assert got == expected
    # The rest of each record as without the option: a late answer is a timeout, extras and the
    # open loop's due time kept, a secret in a name scrubbed.
    assert frame["ok"].tolist() == [1, 1, 1, 0, 0, 1, 1, 1, 0]
    assert stats.error_kind(200, frame["error"].iloc[4]) == "timeout"
    assert frame["ttft_ms"].iloc[5] == 5.0 and frame["intended_unix_s"].iloc[1] == 0.999
    # Every line has every field, and the live counter counted each record as its line.
    lines = (tmp_path / "requests.csv").read_text(encoding="utf-8").splitlines()
    assert len({line.count(",") for line in lines if '"' not in line}) == 1
    assert (tmp_path / "by_counter.txt").read_text() == (tmp_path / "by_line.txt").read_text()


def test_the_replica_is_recorded_from_the_header_named_and_scrubbed(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", TIMED_SCRIPT, str(tmp_path), "", "X-Served-By"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    frame = read_requests(tmp_path / "requests.csv")
    replicas = frame["replica"].astype("string").fillna("").tolist()
    # The refused answer's replica kept too (a failure is a replica's as well), on one line,
    # the secret masked; the answers without the header name none.
    assert replicas == ["replica-1", "b, with a comma", "", "r *** next", "", "", "", "", ""]
    assert frame["server_ms"].isna().all()  # not asked for
    assert (tmp_path / "by_counter.txt").read_text() == (tmp_path / "by_line.txt").read_text()


def _demo_run(out: Path, *extra: str) -> tuple[dict[str, Any], pd.DataFrame]:
    result = run_cli(
        "run", "--demo", "--demo-latency-ms", "20", "-u", "2", "-d", "1.5s", "--warmup", "0s",
        "--out", str(out), "--quiet", "--no-sampler", *extra,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return read_json(out / "meta.json"), read_run_requests(out)


@pytest.mark.e2e
def test_a_demo_run_records_the_demos_own_service_time(tmp_path: Path) -> None:
    meta, frame = _demo_run(tmp_path / "timed", "--server-time-header", "X-Service-Time-Ms")
    assert meta["settings"]["server_time_header"] == "X-Service-Time-Ms"
    ok = frame[frame["ok"] == 1]
    assert len(ok) > 10
    # The demo's 20 ms sleep is inside its own time, and its time is inside the client's round trip.
    assert (ok["server_ms"] >= 20.0).all(), ok["server_ms"].min()
    assert (ok["server_ms"] <= ok["latency_ms"]).all()
    # Without the option the demo's header is never read: tests/drive/test_runner.py's --demo run
    # (test_demo_flag_probes_and_chooses_kserve_v2) checks that, one demo run fewer here.
