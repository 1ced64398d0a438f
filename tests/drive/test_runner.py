"""End to end: real servers on loopback, `loadbench run` (Locust in-process) in a child process.

Each test drives load for a few seconds and checks what lands in the run directory against
what the server itself did.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from helpers import DIGITS, REPO, demo_process, json_server, read_json, run_cli, start_cli, wait_for_lines
from run_text import files_text

from loadbench.record.columnar import read_run_requests
from loadbench.record.records import read_requests

pytestmark = pytest.mark.e2e

# Long enough to pace the load (a few hundred requests a second, not thousands: the CPU rests
# while users wait), short enough for every assertion on counts.
SERVICE_MS = 20.0
PACE_MS = 10.0  # the demo's service time where a test needs no latency of its own


@pytest.fixture(scope="module")
def demo_url_child() -> Iterator[str]:
    """One demo endpoint process for the tests that need no latency of their own (start-up is
    seconds); its PACE_MS answers keep their loads to hundreds of requests a second."""
    with demo_process(latency_ms=PACE_MS) as url:
        yield url


def all_files_text(folder: Path) -> str:
    return "\n".join(files_text(folder).values())  # the records as text, not as compressed Parquet


# Credentials in the URL, the query and a header of the run below (test_credentials_...).
PASSWORD, QUERY_KEY, HEADER_KEY = "pw-SECRET-0451", "qk-SECRET-9183", "hk-SECRET-7720"


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """One full run against the demo (sampler and report included), shared by the tests that
    read it: what it recorded, and that the credentials it was given reached no file."""
    out = tmp_path_factory.mktemp("demo") / "run"
    with demo_process(latency_ms=SERVICE_MS) as url:
        result = run_cli(
            "run", "--target", url.replace("http://", f"http://alice:{PASSWORD}@"),
            "--scenario", "json_post", "--data", str(DIGITS),
            "--path", f"/predict?api_key={QUERY_KEY}&lang=en", "--header", f"X-Api-Key: {HEADER_KEY}",
            "-u", "4", "-d", "3s", "--warmup", "1s", "--out", str(out), "--quiet",
            "--sample-interval", "0.25",  # enough samples in a short run
        )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return out, result


def test_run_against_demo_records_every_request(
    demo_run: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    out, result = demo_run
    assert result.stdout.strip().splitlines()[-1] == f"report: {out / 'report.html'}"
    assert result.stderr == ""  # --quiet: nothing but errors

    summary = read_json(out / "summary.json")
    meta = read_json(out / "meta.json")
    records = read_run_requests(out)
    req = summary["requests"]
    assert req["total"] > 50
    assert req["errors"] == 0
    # Every recorded request is either measured or excluded as warmup; none is dropped.
    assert req["total"] + req["warmup_excluded"] == len(records)
    # The server sleeps SERVICE_MS in every prediction: no client-side latency can be lower.
    assert summary["latency_ms"]["min"] >= SERVICE_MS
    assert summary["latency_ms"]["p50"] >= SERVICE_MS
    assert summary["latency_ms"]["p50"] <= summary["latency_ms"]["p99"] <= summary["latency_ms"]["max"]
    assert summary["by_name"]["POST /predict"]["requests"] == req["total"]
    assert summary["run"]["status"] == "complete"
    assert 2.5 <= summary["run"]["duration_s"] <= 4.5
    assert summary["throughput_rps"] == pytest.approx(req["ok"] / summary["window"]["duration_s"], rel=1e-3)
    # Exact records: latencies carry sub-millisecond digits, not Locust's 2-significant-digit buckets.
    assert (records["latency_ms"] % 1 != 0).mean() > 0.9

    assert meta["scenario"] == "json_post"
    assert meta["versions"]["locust"]
    assert meta["host"]["cpu_cores"] >= 1
    assert meta["settings"]["users"] == 4
    assert meta["status"] == "complete"

    users = pd.read_csv(out / "users.csv")
    assert users["users"].max() == 4

    # The sampler ran beside the load: it found the demo by its port and sampled it and us.
    resources = summary["resources"]
    assert resources["sampled"] and resources["samples"] >= 4
    assert "listening on port" in resources["server_process"]["process"]["how"]
    assert resources["server_process"]["cpu_percent"]["max"] > 0
    # A Python process with numpy loaded: the demo itself, not a small helper process.
    assert resources["server_process"]["rss_bytes"]["max"] > 20 * 1024 * 1024
    assert resources["generator"]["cpu_max_percent"] > 0
    assert resources["host"]["cpu_percent"]["max"] > 0
    if not resources["gpus"]:
        assert any(n.startswith("no NVIDIA GPU visible on ") for n in resources["notices"])

    html = (out / "report.html").read_text()
    pngs = [chunk.split('"', 1)[0] for chunk in html.split('src="data:image/png;base64,')[1:]]
    # Four request plots, the resources figure, and quality over time (digits rows carry labels).
    assert len(pngs) == 6
    assert summary["quality"]["n"] == summary["requests"]["total"]
    assert all(base64.b64decode(p)[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    assert "<script src=" not in html and "<link" not in html
    assert "| p99 |" in (out / "summary.md").read_text() or "p99" in (out / "summary.md").read_text()


@pytest.fixture(scope="module")
def demo_flag_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A `--demo` run (its endpoint lives and ends with the run), shared with the report re-run."""
    out = tmp_path_factory.mktemp("demo-flag") / "run"
    result = run_cli(
        "run", "--demo", "--demo-latency-ms", f"{PACE_MS:g}", "-u", "2", "-d", "1.5s", "--warmup", "0s",
        "--out", str(out), "--quiet", "--no-sampler",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return out


def test_demo_flag_probes_and_chooses_kserve_v2(demo_flag_run: Path) -> None:
    out = demo_flag_run
    meta = read_json(out / "meta.json")
    summary = read_json(out / "summary.json")
    assert meta["scenario"] == "kserve_v2"
    assert "/v2" in meta["scenario_reason"]
    assert summary["requests"]["total"] > 0 and summary["requests"]["errors"] == 0
    assert list(summary["by_name"]) == ["/v2/models/digits/infer"]
    assert summary["resources"]["sampled"] is False
    assert not (out / "samples.jsonl").exists()
    # No --server-time-header: the demo's own time (X-Service-Time-Ms, on every answer) is never
    # read (tests/drive/test_recorder.py: with the option, it is).
    assert meta["settings"]["server_time_header"] is None
    records = read_run_requests(out)
    assert len(records) > 10 and records["server_ms"].isna().all()


def openai_route(handler: Any, state: dict[str, Any]) -> tuple[int, Any]:
    if handler.path == "/v1/models":
        return 200, {"object": "list", "data": [{"id": "tiny-llm", "object": "model"}]}
    if handler.path == "/v1/chat/completions":
        n = state["count"]
        time.sleep(PACE_MS / 1000)
        if n % 10 == 0:
            return 500, {"error": "overloaded"}
        if n % 10 == 5:
            return 200, {"id": "x", "no_choices_here": True}
        body = json.loads(handler.body)
        assert body["model"] == "tiny-llm"
        return 200, {"id": "x", "choices": [{"message": {"role": "assistant", "content": "hi"}}]}
    return 404, {"error": "no route"}


def test_openai_chat_counts_and_classifies_failures(tmp_path: Path) -> None:
    out = tmp_path / "run"
    secret = "sk-test-SECRET-0123456789"
    with json_server(openai_route) as (url, state):
        result = run_cli(
            "run", "--target", url, "-u", "2", "-d", "2s", "--warmup", "0s", "--out", str(out), "--no-sampler",
            "--header", f"Authorization: Bearer {secret}", "--header", "X-Team: ml-platform",
        )  # fmt: skip
        seen = state["headers"]
    assert result.returncode == 0, result.stderr
    summary = read_json(out / "summary.json")
    meta = read_json(out / "meta.json")
    assert meta["scenario"] == "openai_chat"  # chosen by probing /v1/models
    kinds = {e["kind"]: e["count"] for e in summary["errors"]}
    assert set(kinds) == {"HTTP 500", "invalid response: no 'choices' in the JSON body"}
    assert summary["requests"]["errors"] == sum(kinds.values())
    # Roughly one in ten of each: requests alternate deterministically on the server.
    assert 0.1 < summary["requests"]["error_rate"] < 0.3

    # The header reached the server, and the secret reached no file and no console output.
    chat_headers = [h for h in seen if "Authorization" in h]
    assert chat_headers and all(h["Authorization"] == f"Bearer {secret}" for h in chat_headers)
    assert all(h.get("X-Team") == "ml-platform" for h in chat_headers)
    for text in (all_files_text(out), result.stdout, result.stderr):
        assert secret not in text
    assert "Authorization: ***" in json.dumps(meta["settings"]["headers"])
    assert "X-Team: ml-platform" in meta["settings"]["headers"]


def start_long_run(url: str, out: Path, *extra: str) -> subprocess.Popen[str]:
    """`loadbench run` for 60 s against ``url``: long enough to be interrupted or killed midway."""
    return start_cli(
        "run", "--target", url, "--scenario", "json_post", "--data", str(DIGITS),
        "-u", "2", "-d", "60s", "--warmup", "0s", "--out", str(out), "--no-sampler", *extra,
    )  # fmt: skip


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_stop_signal_finishes_the_run_as_interrupted(
    tmp_path: Path, sig: signal.Signals, demo_url_child: str
) -> None:
    out = tmp_path / "run"
    url = demo_url_child
    process = start_long_run(url, out)
    wait_for_lines(out / "requests.csv", 50)
    process.send_signal(sig)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    summary = read_json(out / "summary.json")
    assert summary["run"]["status"] == "interrupted"
    assert summary["run"]["duration_s"] < 60  # stopped before the -d 60s it was asked for
    assert any("interrupted" in n for n in summary["notices"])
    assert summary["requests"]["total"] >= 49
    assert "report: " in stdout and (out / "report.html").exists()


def test_sigkill_keeps_records_and_report_renders_incomplete(tmp_path: Path, demo_url_child: str) -> None:
    out = tmp_path / "run"
    url = demo_url_child
    process = start_long_run(url, out, "--quiet")
    wait_for_lines(out / "requests.csv", 200)
    # One more flush (every 0.5 s) while the load runs: records of the last second are on disk.
    lines = (out / "requests.csv").read_bytes().count(b"\n")
    wait_for_lines(out / "requests.csv", lines + 1)
    killed_at = time.time()
    process.kill()
    process.communicate(timeout=10)
    kept = read_requests(out / "requests.csv")
    assert len(kept) >= 199
    # At most one second lost: the load ran steadily up to the kill, and the kept records reach
    # to within a second of it (requests end every few ms against this server).
    last_end = float((kept["start_unix_s"] + kept["latency_ms"] / 1000).max())
    assert killed_at - 1.0 <= last_end <= killed_at, killed_at - last_end
    assert read_json(out / "meta.json")["status"] == "running"
    assert not (out / "summary.json").exists()

    result = run_cli("report", str(out))
    assert result.returncode == 0, result.stderr
    summary = read_json(out / "summary.json")
    assert summary["requests"]["total"] == len(kept)
    assert any(n.startswith("incomplete run") for n in summary["notices"])
    assert "incomplete" in (out / "report.html").read_text().lower()


def test_report_reruns_from_the_run_directory_alone(tmp_path: Path, demo_flag_run: Path) -> None:
    # A copy under the same name: the shared run stays as `loadbench run` left it.
    out = tmp_path / demo_flag_run.name
    shutil.copytree(demo_flag_run, out)
    before = read_json(out / "summary.json")
    (out / "summary.json").unlink()
    (out / "report.html").unlink()
    # The endpoint (--demo's, inside the run) is gone: analysis and report need nothing but the directory.
    again = run_cli("report", str(out))
    assert again.returncode == 0, again.stderr
    assert read_json(out / "summary.json") == before
    assert (out / "report.html").exists()


@pytest.mark.parametrize(
    ("scenario", "args", "request_line"),
    [
        ("json_post", ["--data", str(DIGITS)], "/predict"),
        ("kserve_v2", [], "/v2/models/digits/infer"),
        ("openai_chat", ["--max-tokens", "4"], "/v1/chat/completions"),
    ],
)
def test_scenarios_run_under_plain_locust(
    tmp_path: Path, scenario: str, args: list[str], request_line: str, demo_url_child: str
) -> None:
    """The built-in locustfiles are ordinary locustfiles: `locust -f` runs them unchanged."""
    url = demo_url_child
    result = subprocess.run(
        [
            sys.executable, "-m", "locust", "-f", str(REPO / "scenarios" / f"{scenario}.py"), "--host", url,
            # 5 s: on a loaded machine Locust's start-up may take most of a shorter run.
            "--headless", "-u", "2", "-r", "2", "-t", "5s", *args, "--only-summary",
        ],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    output = result.stdout + result.stderr
    # Locust's summary line for the request: POST to the path, every request answered (0 failures).
    row = next((line for line in output.splitlines() if line.startswith("POST") and request_line in line), "")
    failures = re.search(r"\s(\d+)\(\d+\.\d+%\)\s*\|", row)
    assert failures is not None and failures.group(1) == "0", row


def classify_route(handler: Any, state: dict[str, Any]) -> tuple[int, Any]:
    if handler.path == "/classify":
        time.sleep(PACE_MS / 1000)
        body = json.loads(handler.body)
        if any(key.startswith("_") for key in body):
            return 400, {"error": "metadata keys must not be sent"}
        return 200, ({"label": "greeting"} if body.get("text") == "hello" else {"unexpected": True})
    return 404, {"error": "no route"}


def test_readme_scenario_example_runs(tmp_path: Path) -> None:
    """The README's "write your own scenario" example is real code that works as documented."""
    readme = (REPO / "README.md").read_text()
    code = readme.split("# scenarios/my_model.py\n", 1)[1].split("```", 1)[0]
    scenario = tmp_path / "my_model.py"
    scenario.write_text(code)
    data = tmp_path / "texts.jsonl"
    data.write_text('{"text": "hello"}\n{"text": "other", "_note": "never sent"}\n')
    out = tmp_path / "run"
    with json_server(classify_route) as (url, _state):
        result = run_cli(
            "run", "--target", url, "--scenario", str(scenario), "--data", str(data),
            "-u", "2", "-d", "1.5s", "--warmup", "0s", "--out", str(out), "--quiet", "--no-sampler",
        )  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = read_json(out / "summary.json")
    assert list(summary["by_name"]) == ["classify"]
    # Bodies alternate: "hello" answers with a label, "other" without one (a check failure).
    assert 0.4 < summary["requests"]["error_rate"] < 0.6
    assert [e["kind"] for e in summary["errors"]] == ["invalid response: no 'label' in the JSON body"]


def test_remote_agent_samples_join_the_run_and_the_token_stays_secret(
    tmp_path: Path, demo_url_child: str
) -> None:
    token = "agent-TOKEN-9f8e7d6c5b4a"
    agent = subprocess.Popen(
        [sys.executable, "-m", "loadbench", "agent", "--port", "0", "--sample-interval", "0.2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "LOADBENCH_AGENT_TOKEN": token},
    )
    try:
        assert agent.stdout is not None
        agent_url = agent.stdout.readline().split(" on ", 1)[1].strip()
        out = tmp_path / "run"
        url = demo_url_child
        result = run_cli(
            "run", "--target", url, "--scenario", "kserve_v2", "-u", "2", "-d", "2s", "--warmup", "0s",
            "--out", str(out), "--agent", agent_url, "--agent-token", token, "--sample-interval", "0.2",
        )  # fmt: skip
        refused = run_cli(
            "run", "--target", url, "-d", "3s", "--out", str(tmp_path / "refused"),
            "--agent", agent_url, "--agent-token", "wrong-token",
        )  # fmt: skip
    finally:
        agent.terminate()
        agent.communicate(timeout=10)
    assert result.returncode == 0, result.stderr
    summary = read_json(out / "summary.json")
    meta = read_json(out / "meta.json")
    label = agent_url.removeprefix("http://")
    remote = summary["resources"]["remote"][label]
    assert remote["host"]["cpu_percent"]["max"] is not None
    (synced,) = meta["sampler"]["agents"]
    # Same machine, same clock: the true offset is 0, so within the estimate's own uncertainty.
    assert abs(synced["offset_s"]) <= synced["uncertainty_s"] + 1e-6, synced
    for text in (all_files_text(out), result.stdout, result.stderr):
        assert token not in text
    # A wrong token is refused before anything is written.
    assert refused.returncode == 2 and "refused the token" in refused.stderr
    assert "wrong-token" not in refused.stderr
    assert not (tmp_path / "refused").exists()


def test_credentials_in_url_query_and_headers_reach_no_file(
    demo_run: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    out, result = demo_run
    summary = read_json(out / "summary.json")
    assert summary["requests"]["ok"] > 0 and summary["requests"]["errors"] == 0
    assert list(summary["by_name"]) == ["POST /predict"]
    written = all_files_text(out)  # samples.jsonl included: the run sampled its resources
    for secret in (PASSWORD, QUERY_KEY, HEADER_KEY):
        for text in (written, result.stdout, result.stderr):
            assert secret not in text
    assert "alice:***@" in written and "api_key=***" in written and "X-Api-Key: ***" in written


def test_second_interrupt_exits_at_once_and_leaves_readable_files(
    tmp_path: Path, demo_url_child: str
) -> None:
    out = tmp_path / "run"
    url = demo_url_child
    process = start_long_run(url, out)
    wait_for_lines(out / "requests.csv", 100)
    process.send_signal(signal.SIGINT)
    # The second interrupt once the first is taken (two at once could merge into one signal).
    assert process.stderr is not None
    seen = b""
    while b"interrupt again to exit at once" not in seen and (
        chunk := os.read(process.stderr.fileno(), 4096)
    ):
        seen += chunk
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=30)
    stderr = seen.decode() + stderr
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    # "At once": no analysis, no report.
    assert not (out / "summary.json").exists() and not (out / "report.html").exists(), stderr
    assert len(read_run_requests(out)) >= 99  # flushed before exiting (in the CSV, unconverted)
    read_json(out / "meta.json")  # still valid JSON (written atomically)
    # What was recorded can still be analyzed.
    again = run_cli("report", str(out))
    assert again.returncode == 0, again.stderr


def always_503(handler: Any, state: dict[str, Any]) -> tuple[int, Any]:
    time.sleep(0.04)  # fifty failures a second from the two users, not thousands: plenty to count
    return (200, {"ok": True}) if handler.path == "/" else (503, {"error": "model not loaded"})


@pytest.mark.parametrize("keep_going", [False, True], ids=["stopped", "keep-going"])
def test_a_target_that_fails_every_request(tmp_path: Path, keep_going: bool) -> None:
    # Stopped after the 5 s grace (10 failures came long before), unless --keep-going; either
    # way the run directory and report are written, the run is INVALID and the exit code 3.
    # (--no-preflight: the preflight request would stop it before the load, exit code 2.)
    out = tmp_path / "run"
    duration_s = 7.0 if keep_going else 60.0
    with json_server(always_503) as (url, _):
        result = run_cli(
            "run", "--target", url, "--scenario", "json_post", "--path", "/predict", "--payload", "{}", "--no-preflight",
            "-u", "2", "-d", f"{duration_s:g}s", "--warmup", "1s", "--out", str(out), "--quiet", "--no-sampler",
            *(["--keep-going"] if keep_going else []),
        )  # fmt: skip
    assert result.returncode == 3, result.stderr
    assert (out / "report.html").is_file()
    summary, meta = read_json(out / "summary.json"), read_json(out / "meta.json")
    load_s = meta["ended_unix_s"] - meta["started_unix_s"]
    assert summary["requests"]["ok"] == 0 and summary["requests"]["total"] >= 10
    reason = summary["validity"]["reasons"][0]
    assert summary["validity"]["valid"] is False and reason.startswith("every request failed: ")
    assert "HTTP 503" in reason
    if keep_going:
        assert meta["status"] == "complete" and load_s >= duration_s - 0.5
        assert "stopping early" not in result.stderr
    else:
        assert meta["status"] == "failed" and 5.0 <= load_s < 30.0
        assert meta["failure"].startswith("every request failed: ")
        assert "the most common error: HTTP 503" in meta["failure"]
        # Said on the terminal, even with --quiet: why it stopped, quoting the most common error.
        assert "loadbench: stopping early: every request failed" in result.stderr
        assert "HTTP 503" in result.stderr
