"""The recorder attached to a real Locust environment's request event, in a child process (locust
stays out of pytest): every event becomes one record, an answer slower than --timeout is a
failure even when the client let it finish, and a refused request keeps what the server said."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from hostile_server import FEATURES_ERROR, OVERLOADED_TEXT, RETRY_DATE

from loadbench.analyze import stats
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
