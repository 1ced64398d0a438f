"""The sampler on real processes: psutil readings of a child that burns CPU and holds memory,
the sampler process itself (start, samples, stop, kill), and finding the server process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from loadbench import sampler
from loadbench.demo import make_server
from loadbench.errors import UsageError
from loadbench.records import read_samples

BURNER = """
import sys, time
hold = bytearray(200 * 1024 * 1024)  # 200 MiB, touched so it is resident
for i in range(0, len(hold), 4096):
    hold[i] = 1
print("ready", flush=True)
end = time.monotonic() + float(sys.argv[1])
while time.monotonic() < end:
    pass
"""


@pytest.fixture
def burner() -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen([sys.executable, "-c", BURNER, "20"], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "ready"
    yield process
    process.kill()
    process.communicate()


def test_process_tree_sees_cpu_and_memory_of_a_real_child(burner: subprocess.Popen[str]) -> None:
    tree = sampler.ProcessTree(burner.pid)
    time.sleep(0.5)
    values = tree.read("server")
    assert values["server.cpu_percent"] is not None and values["server.cpu_percent"] > 50  # one busy core
    assert values["server.rss_bytes"] is not None and values["server.rss_bytes"] > 200 * 1024 * 1024
    assert values["server.threads"] is not None and values["server.threads"] >= 1
    assert values["server.processes"] == 1


def test_process_tree_includes_children() -> None:
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import subprocess, sys; subprocess.run([sys.executable, '-c', {BURNER!r}, '10'])",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert parent.stdout is not None and parent.stdout.readline().strip() == "ready"
        tree = sampler.ProcessTree(parent.pid)
        time.sleep(0.5)
        values = tree.read("server")
        assert values["server.processes"] == 2
        assert (
            values["server.cpu_percent"] is not None and values["server.cpu_percent"] > 50
        )  # the child burns
        assert values["server.rss_bytes"] is not None and values["server.rss_bytes"] > 200 * 1024 * 1024
    finally:
        parent.kill()
        parent.communicate()
        subprocess.run(["pkill", "-f", "hold = bytearray"], check=False)


def test_process_tree_of_a_process_that_ended() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    tree = sampler.ProcessTree(child.pid)
    child.wait()
    tree.procs = {child.pid: tree.root}
    values = tree.read("server")
    assert values["server.processes"] == 0
    assert values["server.cpu_percent"] is None


def test_host_readings_have_every_field() -> None:
    host = sampler.Host()
    time.sleep(0.2)
    values = host.read()
    for key in (
        "host.cpu_percent", "host.load1", "host.mem_used_bytes", "host.mem_available_bytes", "host.swap_used_bytes",
        "host.net_sent_bytes_per_s", "host.net_recv_bytes_per_s", "host.disk_read_bytes_per_s",
    ):  # fmt: skip
        assert key in values
    assert 0 <= (values["host.cpu_percent"] or 0) <= 100
    assert "host.cpu0_percent" in values
    assert (values["host.mem_used_bytes"] or 0) > 0


def test_generator_reads_the_busiest_process(burner: subprocess.Popen[str]) -> None:
    generator = sampler.Generator([os.getpid(), burner.pid, 999_999_999])
    time.sleep(0.5)
    assert (generator.read()["generator.cpu_percent"] or 0) > 50


@pytest.fixture
def demo_server() -> Iterator[str]:
    server = make_server(port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_find_server_process_by_listening_port(demo_server: str) -> None:
    found, notice = sampler.find_server_process(demo_server)
    assert notice is None and found is not None
    assert found.pid == os.getpid()  # the demo server runs in this test process
    assert "listening on port" in found.how


def test_find_server_process_by_pid_and_name(burner: subprocess.Popen[str]) -> None:
    found, _ = sampler.find_server_process("http://127.0.0.1:1", server_pid=burner.pid)
    assert found is not None and found.pid == burner.pid and "--server-pid" in found.how
    found, _ = sampler.find_server_process("http://127.0.0.1:1", server_name="hold = bytearray")
    assert found is not None and found.pid == burner.pid
    with pytest.raises(UsageError, match="no such process"):
        sampler.find_server_process("http://127.0.0.1:1", server_pid=999_999_999)
    with pytest.raises(UsageError, match="no running process"):
        sampler.find_server_process("http://127.0.0.1:1", server_name="no-such-process-name-xyz")


def test_find_server_process_when_nobody_listens() -> None:
    found, notice = sampler.find_server_process("http://127.0.0.1:1")
    assert found is None and notice is not None and "port 1" in notice


def test_find_server_process_for_a_remote_target() -> None:
    found, notice = sampler.find_server_process("http://192.0.2.1:8000")  # TEST-NET-1: never contacted
    assert found is None and notice is not None and "not on this machine" in notice


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
    assert 18 <= count <= 21  # not 1.0 / (0.05 + 0.03) = 12: sampling time does not shift the schedule
