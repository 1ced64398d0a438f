"""The sampler process on real processes: start, samples on schedule, SIGTERM, SIGKILL, orphaning."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from loadbench import sampler
from loadbench.records import read_samples


def start_sampler(run_dir: Path, *extra: str) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "loadbench.sampler", "--run-dir", str(run_dir), *extra],
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
    process = start_sampler(
        tmp_path, "--interval", "0.1", "--server-pid", str(burner.pid), "--server-how", "test",
        "--generator-pid", str(os.getpid()),
    )  # fmt: skip
    time.sleep(1.5)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=10)
    assert process.returncode == 0 and stderr == ""
    samples = read_samples(tmp_path / "samples.jsonl")
    assert 10 <= len(samples) <= 20  # 0.1 s for ~1.5 s
    gaps = samples["unix_s"].diff().dropna()
    assert gaps.median() == pytest.approx(0.1, abs=0.02)
    late = samples.iloc[3:]
    assert late["server.cpu_percent"].median() > 50
    assert late["server.rss_bytes"].min() > 200 * 1024 * 1024
    info = json.loads((tmp_path / "sampler.json").read_text())
    assert info["server"]["pid"] == burner.pid and info["server"]["how"] == "test"
    assert info["interval_s"] == 0.1
    # No GPU on CI: one notice, not an error.
    assert any(n.startswith("no NVIDIA GPU visible on ") for n in info["notices"]) or info["gpus"]


def test_killed_sampler_leaves_a_readable_file(tmp_path: Path) -> None:
    process = start_sampler(tmp_path, "--interval", "0.05")
    time.sleep(1.6)  # flushed at least once a second
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
        f"import subprocess, sys; p = subprocess.Popen([sys.executable, '-m', 'loadbench.sampler', "
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


def test_sample_loop_keeps_its_schedule(tmp_path: Path) -> None:
    class Slow(sampler.Collector):
        def sample(self) -> dict[str, float | None]:
            time.sleep(0.03)  # each sample takes 30 ms of a 50 ms period
            return {"host.cpu_percent": 1.0}

    writer = sampler.SampleWriter(tmp_path / "s.jsonl")
    end = time.monotonic() + 1.0
    count = sampler.sample_loop(Slow(), writer, 0.05, lambda: time.monotonic() >= end)
    writer.close()
    assert 16 <= count <= 21  # not 1.0 / (0.05 + 0.03) = 12: sampling time does not shift the schedule
