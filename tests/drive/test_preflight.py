"""The preflight (`loadbench.drive.preflight`): one real request of the scenario before the load.

Real servers on loopback, `python -m loadbench` in a child process: a refused request stops the
command with exit 2, what the server said, what was sent and what to change, and writes nothing;
a request that passes is never recorded.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from helpers import json_server, read_json, run_cli, serving
from llm_server import LLMTestServer

from loadbench.record.columnar import read_run_requests

pytestmark = pytest.mark.e2e

SECRET = "SECRET-preflight-token-0123"
WORDS = "X has 4 features, but StandardScaler is expecting 64 features as input."
PAYLOAD = '{"inputs":[{"name":"input-0","shape":[1,4],"datatype":"FP32","data":[0.1,0.2,0.3,0.4]}]}'
QUICK = ("--warmup", "0s", "--no-sampler")


def refusing(message: Any) -> Any:
    """A route that answers every infer request 400 with ``{"error": message(handler)}``."""

    def route(handler: Any, state: dict[str, Any]) -> tuple[int, Any]:
        if handler.command == "POST":
            time.sleep(0.005)  # a run's load (--no-preflight) then sends hundreds, not thousands
            return 400, {"error": message(handler)}
        return 200, {"ok": True}  # the reachability check

    return route


def posts(state: dict[str, Any]) -> int:
    return sum(1 for h in state["headers"] if "Content-Length" in h)


# The server quotes the credential back: it must be scrubbed from what loadbench prints.
scaler = refusing(lambda h: f"{WORDS} (auth was {h.headers.get('Authorization')})")
KSERVE = (
    "--scenario",
    "kserve_v2",
    "--model",
    "m",
    "--payload",
    PAYLOAD,
    "-H",
    f"Authorization: Bearer {SECRET}",
)
COMMANDS = {
    "run": ("run", *KSERVE, "-d", "30s", *QUICK),
    "workers": ("run", *KSERVE, "-d", "30s", "--workers", "1", *QUICK),
    "ui": ("ui", *KSERVE, "--web-port", "0", "--no-sampler"),
}


@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_refused_request_stops_before_anything_runs(tmp_path: Path, command: str) -> None:
    # `run` (the master too, before any worker starts) and `ui` (before the UI serves) alike.
    out = tmp_path / "run"
    with json_server(scaler) as (url, state):
        args = COMMANDS[command]
        extra = ("--out", str(out)) if args[0] == "run" else ("--reports-dir", str(tmp_path))
        result = run_cli(args[0], "--target", url, *args[1:], *extra)
    assert result.returncode == 2, result.stderr
    err = result.stderr
    assert "loadbench: error: preflight request failed: POST /v2/models/m/infer -> 400 in " in err
    assert WORDS in err  # the server's own words
    assert f"sent: POST /v2/models/m/infer {PAYLOAD}" in err  # what was sent, compact
    assert "kserve_v2 takes --model NAME, --payload JSON, --data FILE.jsonl" in err
    assert f"loadbench {args[0]} --target {url} --scenario kserve_v2 --model m -H 'Authorization: ***'" in err
    assert "--data FILE.jsonl\n" in err and "--no-preflight" in err
    assert SECRET not in err + result.stdout and "auth was ***" in err
    assert "Traceback" not in err
    assert posts(state) == 1  # one request, nothing after it
    assert not out.exists() and list(tmp_path.iterdir()) == []  # nothing written


def test_markup_and_control_characters_in_the_answer_are_printed_as_text(tmp_path: Path) -> None:
    said = "<script>alert(1)</script>\x1b[2J\x07 rang\u202eevil\x00 end"
    with json_server(refusing(lambda _: said)) as (url, _):
        result = run_cli(
            "run", "--target", url, "--scenario", "json_post", "--payload", '{"text": "a\\u001b[31mb"}',
            "--out", str(tmp_path / "run"), *QUICK,
        )  # fmt: skip
    assert result.returncode == 2, result.stderr
    err = result.stderr
    assert "<script>alert(1)</script>\\x1b[2J\\x07 rang\\u202eevil\\x00 end" in err
    assert 'sent: POST /predict {"text":"a\\u001b[31mb"}' in err  # what was sent: escaped too
    for raw in ("\x1b", "\x07", "\u202e", "\x00"):
        assert raw not in err
    assert "json_post takes --path /PATH, --payload JSON, --data FILE.jsonl" in err


def test_no_preflight_runs_the_load_and_records_the_failures(tmp_path: Path) -> None:
    out = tmp_path / "run"
    with json_server(refusing(lambda _: WORDS)) as (url, state):
        result = run_cli(
            "run", "--target", url, "--scenario", "json_post", "--payload", "{}", "--no-preflight",
            "-u", "1", "-d", "1s", "--out", str(out), "--quiet", *QUICK,
        )  # fmt: skip
    assert result.returncode == 3, result.stderr  # every request failed: as before the preflight
    assert "preflight" not in result.stderr
    records = read_run_requests(out)
    assert len(records) >= 1 and set(records["status"]) == {400}
    assert set(records["server_message"]) == {WORDS}
    assert len(records) <= posts(state)


def test_the_preflight_request_is_never_recorded(tmp_path: Path) -> None:
    # Open loop: the requests in flight at the end are waited for, so every request the server
    # saw but the preflight's is in requests.csv.
    out = tmp_path / "run"
    lock = threading.Lock()
    seen: list[float] = []

    def route(handler: Any, state: dict[str, Any]) -> tuple[int, Any]:
        if handler.command == "POST":
            with lock:
                seen.append(time.time())
        return 200, {"prediction": 1}

    with json_server(route) as (url, _):
        result = run_cli(
            "run", "--target", url, "--scenario", "json_post", "--payload", "{}",
            "--rate", "20", "--arrival", "constant", "-d", "2s", "--out", str(out), *QUICK,
        )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "loadbench: preflight: POST /predict -> 200 in " in result.stderr
    records = read_run_requests(out)
    meta, summary = read_json(out / "meta.json"), read_json(out / "summary.json")
    assert meta.get("in_flight_unrecorded", 0) == 0
    assert len(seen) == len(records) + 1 and summary["requests"]["total"] == len(records)
    assert min(seen) < meta["started_unix_s"] <= records["start_unix_s"].min()  # the first, before the load


def test_an_llm_stream_that_ends_empty_fails_the_preflight(tmp_path: Path) -> None:
    server = LLMTestServer(ttft_ms=1, itl_ms=1, tokens=2, mode="doneonly")
    with serving(server) as url:
        result = run_cli(
            "run", "--target", url, "--scenario", "openai_chat", "--out", str(tmp_path / "run"), *QUICK,
        )  # fmt: skip
    assert result.returncode == 2, result.stderr
    err = result.stderr
    assert "preflight request failed: POST /v1/chat/completions -> 200 in " in err
    assert " ms: empty stream" in err
    sent = json.loads(err.split("sent: POST /v1/chat/completions ", 1)[1].splitlines()[0])
    assert sent["model"] == "test-llm" and sent["stream"] is True  # the scenario's own request
    assert len(server.bodies) == 1


def test_a_slow_answer_fails_at_the_runs_timeout(tmp_path: Path) -> None:
    def slow(handler: Any, state: dict[str, Any]) -> tuple[int, Any]:
        if handler.command == "POST":
            time.sleep(3)
        return 200, {"prediction": 1}

    with json_server(slow) as (url, _):
        result = run_cli(
            "run", "--target", url, "--scenario", "json_post", "--payload", "{}", "--timeout", "0.5s",
            "--out", str(tmp_path / "run"), *QUICK,
        )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "preflight request failed: POST /predict -> no answer in " in result.stderr
    assert "the run's --timeout, 0.5 s" in result.stderr


def test_a_locustfile_whose_task_raises_stops_with_where(tmp_path: Path) -> None:
    locustfile = tmp_path / "broken.py"
    locustfile.write_text(
        "from locust import FastHttpUser, constant, task\n"
        "class Broken(FastHttpUser):\n"
        "    wait_time = constant(0)\n"
        "    @task\n"
        "    def go(self):\n"
        "        1 / 0\n"
    )
    with json_server(lambda h, s: (200, {"ok": True})) as (url, _):
        result = run_cli(
            "run", "--target", url, "--scenario", str(locustfile), "--out", str(tmp_path / "run"), *QUICK
        )
    assert result.returncode == 2, result.stderr
    assert "the scenario raised ZeroDivisionError: division by zero (at broken.py:6 in go)" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "run").exists()
