"""The sampler process on real processes: start, samples on schedule, SIGTERM, SIGKILL, orphaning;
and how scrapes and agent pulls that fail or hang show (``sampler.json`` ``final``, notices)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd
import pytest
from helpers import cpu_seconds, serving, wait_for_lines

from loadbench.analyze.resources import compute_resources
from loadbench.record.series import read_samples
from loadbench.sample import sampler
from loadbench.sample.agent import make_agent_server
from loadbench.sample.collector import Collector, host_label


def start_sampler(run_dir: Path, *extra: str) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "loadbench.sample.sampler", "--run-dir", str(run_dir), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "ready", process.stderr.read() if process.stderr else ""
    return process


def test_sampler_process_samples_a_burning_server_until_sigterm(
    tmp_path: Path, burner: subprocess.Popen[str]
) -> None:
    burned_before = cpu_seconds(burner.pid)
    process = start_sampler(
        tmp_path, "--interval", "0.1", "--server-pid", str(burner.pid), "--server-how", "test",
        "--generator-pid", str(os.getpid()),
    )  # fmt: skip
    wait_for_lines(tmp_path / "samples.jsonl", 10, timeout_s=120)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=10)
    burned = cpu_seconds(burner.pid) - burned_before  # what the OS charged the burner meanwhile
    assert process.returncode == 0 and stderr == ""
    samples = read_samples(tmp_path / "samples.jsonl")
    assert len(samples) >= 10
    gaps = samples["unix_s"].diff().dropna()
    # On a fixed 0.1 s schedule: never two samples in one period, however late some were.
    assert (gaps > 0).all() and len(samples) <= gaps.sum() / 0.1 + 2
    late = samples.iloc[3:]
    # The CPU the readings account for (percent of a core × the time it covers) is CPU the OS
    # charged the burner within the sampling, and the burner outburns the idle generator.
    share = late["server.cpu_percent"] / 100 * late["unix_s"].diff()
    assert 0 < share.sum() <= burned + 0.2, (share.sum(), burned)
    assert late["server.cpu_percent"].median() > late["generator.cpu_percent"].median()
    assert late["server.rss_bytes"].min() > 200 * 1024 * 1024
    info = json.loads((tmp_path / "sampler.json").read_text())
    assert info["server"]["pid"] == burner.pid and info["server"]["how"] == "test"
    assert info["interval_s"] == 0.1
    # No GPU on CI: one notice, not an error.
    assert any(n.startswith("no NVIDIA GPU visible on ") for n in info["notices"]) or info["gpus"]


def test_killed_sampler_leaves_a_readable_file(tmp_path: Path) -> None:
    process = start_sampler(tmp_path, "--interval", "0.05")
    wait_for_lines(tmp_path / "samples.jsonl", 15, timeout_s=120)  # flushed at least once a second
    process.kill()
    process.communicate()
    with open(tmp_path / "samples.jsonl", "a") as f:
        f.write('{"unix_s": 1.0, "host.cpu_perc')  # as if killed mid-line
    samples = read_samples(tmp_path / "samples.jsonl")
    assert len(samples) >= 15
    assert samples["unix_s"].min() > 1.0  # the partial line was dropped


def test_sampler_stops_when_its_parent_dies(tmp_path: Path) -> None:
    # A shell parent that starts the sampler and exits at once: the sampler must not live on.
    script = (
        f"import subprocess, sys; p = subprocess.Popen([sys.executable, '-m', 'loadbench.sample.sampler', "
        f"'--run-dir', {str(tmp_path)!r}, '--interval', '0.05', '--parent-pid', str(__import__('os').getpid())], "
        f"stdout=subprocess.PIPE, text=True); p.stdout.readline(); print(p.pid, flush=True)"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30)
    pid = int(out.stdout.strip())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        os.kill(pid, signal.SIGKILL)
        pytest.fail("the orphaned sampler kept running")


class StepClock:
    """The sampler's ``time`` module on a clock that moves only when something sleeps on it:
    the schedule is then exact, however busy the machine running the test is."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_sample_loop_keeps_its_schedule(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = StepClock()
    monkeypatch.setattr(sampler, "time", clock)
    starts: list[float] = []

    class Slow(Collector):
        def sample(self) -> dict[str, float | None]:
            starts.append(clock.now - 1000.0)
            # Each sample takes 30 ms of a 50 ms period; the fifth 120 ms, past two ticks.
            clock.sleep(0.12 if len(starts) == 5 else 0.03)
            return {"host.cpu_percent": 1.0}

    writer = sampler.SampleWriter(tmp_path / "s.jsonl")
    count = sampler.sample_loop(Slow(), writer, 0.05, lambda: clock.now >= 1000.0 + 0.975)
    writer.close()
    # On the 50 ms grid, not 80 ms apart: sampling time does not shift the schedule; the ticks
    # the slow sample missed are skipped, not bunched up.
    expected = [k * 0.05 for k in range(20) if k not in (5, 6)]
    assert starts == pytest.approx(expected, abs=1e-9)
    assert count == len(expected) == len(read_samples(tmp_path / "s.jsonl"))


# --- scrapes and agents that fail, match nothing, die or hang -----------------------------------


def stop_sampler(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=20)
    assert process.returncode == 0 and stderr == "", stderr


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def metrics_server(status: int, body: bytes) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    with serving(ThreadingHTTPServer(("127.0.0.1", 0), Handler)) as url:
        yield url + "/metrics"


@contextmanager
def silent_server() -> Iterator[str]:
    """Accepts connections and never answers: a hung metrics endpoint."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/metrics"
    finally:
        stop.set()
        thread.join(timeout=5)
        for conn in held:
            conn.close()
        listener.close()


def resources_of(run_dir: Path) -> dict[str, object]:
    info = json.loads((run_dir / "sampler.json").read_text())
    samples = read_samples(run_dir / "samples.jsonl")
    no_latency = pd.Series([], dtype="float64")  # no request: nothing to correlate with
    return compute_resources(samples, info, 0.0, time.time() + 1, no_latency, ok_requests=0)


def test_failing_and_unmatched_scrapes_are_summarised_and_become_notices(tmp_path: Path) -> None:
    port = closed_port()
    closed = f"http://scraper:hunter2pw@127.0.0.1:{port}/metrics?token=s3cretq"
    with (
        metrics_server(500, b"internal error\n") as failing,
        metrics_server(200, b"# TYPE up gauge\nup 1\n") as serving_up,
    ):
        process = start_sampler(
            tmp_path, "--interval", "0.1", "--no-gpu", "--scrape-interval", "0.2", "--scrape-match", "^vllm:",
            "--scrape", closed, "--scrape", failing, "--scrape", serving_up,
        )  # fmt: skip
        wait_for_lines(tmp_path / "samples.jsonl", 12, timeout_s=120)
        stop_sampler(process)
    text = (tmp_path / "sampler.json").read_text()
    assert "hunter2pw" not in text and "s3cretq" not in text
    final = json.loads(text)["final"]
    by_url = {s["url"].split("?")[0]: s for s in final["scrapes"]}
    masked = f"http://scraper:***@127.0.0.1:{port}/metrics"
    assert set(by_url) == {masked, failing, serving_up}
    assert by_url[masked]["errors"] == by_url[masked]["scrapes"] >= 3
    assert by_url[masked]["last_error"].startswith(f"{masked}?token=*** is unreachable")
    assert by_url[failing]["last_error"] == f"HTTP 500 from {failing}"
    assert by_url[serving_up] | {"scrapes": 0} == {
        "url": serving_up, "match": "^vllm:", "scrapes": 0, "errors": 0, "last_error": None, "series_max": 0,
    }  # fmt: skip
    assert final["samples"] >= 8
    notices = resources_of(tmp_path)["notices"]
    assert isinstance(notices, list)
    mine = [n for n in notices if n.startswith("--scrape ")]
    assert len(mine) == 3
    assert any(
        masked in n and " scrapes failed, last: " in n and ": all " in n and "unreachable" in n for n in mine
    )
    assert any(failing in n and "HTTP 500" in n for n in mine)
    assert any(serving_up in n and "no series matched --scrape-match '^vllm:'" in n for n in mine)
    assert not any("hunter2pw" in n or "s3cretq" in n for n in notices)


def wait_for_remote_lines(path: Path, label: str, lines: int, timeout_s: float = 120.0) -> None:
    """Wait until ``path`` holds ``lines`` lines of the agent ``label``'s samples."""
    deadline = time.monotonic() + timeout_s
    key = f'"{label}/'.encode()
    while sum(key in line for line in path.read_bytes().splitlines()) < lines:
        if time.monotonic() > deadline:
            raise AssertionError(f"{path}: not {lines} lines of {label}'s samples in {timeout_s} s")
        time.sleep(0.1)


def test_an_agent_that_dies_mid_run_is_a_notice(tmp_path: Path) -> None:
    agent = make_agent_server(port=0, interval_s=0.1, collector=Collector())
    thread = threading.Thread(target=agent.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{agent.server_address[1]}"
    try:
        process = start_sampler(tmp_path, "--interval", "0.1", "--no-gpu", "--agent", url)
        # Pulls (every second) while the agent lives: its samples, keys "<label>/...", on disk.
        wait_for_remote_lines(tmp_path / "samples.jsonl", host_label(url), 6)
    finally:
        agent.shutdown()
        agent.server_close()
        thread.join(timeout=5)
    # And at least one pull after it died: 1.5 s more of the sampler's own schedule.
    lines = (tmp_path / "samples.jsonl").read_bytes().count(b"\n")
    wait_for_lines(tmp_path / "samples.jsonl", lines + 15, timeout_s=120)
    stop_sampler(process)
    (final,) = json.loads((tmp_path / "sampler.json").read_text())["final"]["agents"]
    assert final["url"] == url and final["pulled"] > 5
    assert final["errors"] >= 1 and "unreachable" in final["last_error"]
    assert final["last_pull_unix_s"] is not None
    notices = resources_of(tmp_path)["notices"]
    assert isinstance(notices, list)
    assert any(
        n.startswith(f"--agent {url}: ") and "failed request" in n and "unreachable" in n for n in notices
    )


def test_a_hung_scrape_does_not_delay_the_host_samples(tmp_path: Path) -> None:
    with silent_server() as hung:
        process = start_sampler(
            tmp_path, "--interval", "0.2", "--no-gpu", "--scrape", hung, "--scrape-interval", "0.2"
        )
        # 15 samples 0.2 s apart: 2.8 s or more, the scrape's 2 s timeout and more.
        wait_for_lines(tmp_path / "samples.jsonl", 15, timeout_s=120)
        stop_sampler(process)  # waits out the scrape in flight (communicate's timeout catches a hang)
    samples = read_samples(tmp_path / "samples.jsonl")
    host = samples[samples["host.cpu_percent"].notna()]
    gaps = host["unix_s"].diff().dropna()
    assert len(host) >= 12
    assert gaps.max() < 2.0  # inline, one scrape would have held a sample for its 2 s timeout
    (scrape,) = json.loads((tmp_path / "sampler.json").read_text())["final"]["scrapes"]
    assert scrape["errors"] >= 1 and scrape["last_error"] == f"{hung} did not answer within 2 s"


def test_relayed_worker_samples_are_finite_json_lines() -> None:
    samples = [
        {"unix_s": 10.5, "host.cpu_percent": float("nan"), "gpu0.power_w": float("inf"), "host.load1": 0.5},
        {"unix_s": 11.0, "generator.cpu_percent": "busy", "host.ok": True, "host.mem_used_bytes": 7},
        {"unix_s": float("nan"), "host.cpu_percent": 1.0},  # no usable time: dropped
        "not a sample",
    ]
    lines = sampler.relayed_lines("worker1@box", samples)
    assert [json.loads(line) for line in lines] == [
        {"unix_s": 10.5, "worker1@box/host.cpu_percent": None, "worker1@box/gpu0.power_w": None,
         "worker1@box/host.load1": 0.5},
        {"unix_s": 11.0, "worker1@box/generator.cpu_percent": None, "worker1@box/host.ok": None,
         "worker1@box/host.mem_used_bytes": 7},
    ]  # fmt: skip
    assert all(line.endswith("\n") and line.count("\n") == 1 for line in lines)
    assert sampler.relayed_lines("w", None) == []
