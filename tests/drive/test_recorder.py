"""The recorder attached to a real Locust environment's request event, in a child process (locust
stays out of pytest): every event becomes one record, and an answer slower than --timeout is a
failure even when the client let it finish."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from loadbench.analyze import stats
from loadbench.record.records import read_requests

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
