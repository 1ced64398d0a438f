"""psutil readings on real processes: a child that burns CPU and holds memory, process trees,
the host, the generator, and finding the model server's process."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import psutil
import pytest
from helpers import BURNER

from loadbench.errors import UsageError
from loadbench.sample import hostmetrics


def test_process_tree_sees_cpu_and_memory_of_a_real_child(burner: subprocess.Popen[str]) -> None:
    tree = hostmetrics.ProcessTree(burner.pid)
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
        tree = hostmetrics.ProcessTree(parent.pid)
        time.sleep(0.5)
        values = tree.read("server")
        assert values["server.processes"] == 2
        assert (
            values["server.cpu_percent"] is not None and values["server.cpu_percent"] > 50
        )  # the child burns
        assert values["server.rss_bytes"] is not None and values["server.rss_bytes"] > 200 * 1024 * 1024
    finally:
        children = psutil.Process(parent.pid).children(recursive=True)
        parent.kill()
        parent.communicate()
        for child in children:
            child.kill()


def test_process_tree_of_a_process_that_ended() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    tree = hostmetrics.ProcessTree(child.pid)
    child.wait()
    tree.procs = {child.pid: tree.root}
    values = tree.read("server")
    assert values["server.processes"] == 0
    assert values["server.cpu_percent"] is None


def test_host_readings_have_every_field() -> None:
    host = hostmetrics.Host()
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
    generator = hostmetrics.Generator([os.getpid(), burner.pid, 999_999_999])
    time.sleep(0.5)
    assert (generator.read()["generator.cpu_percent"] or 0) > 50


def test_find_server_process_by_listening_port(demo_url: str) -> None:
    found, notice = hostmetrics.find_server_process(demo_url)
    assert notice is None and found is not None
    assert found.pid == os.getpid()  # the demo server runs in this test process
    assert "listening on port" in found.how


def test_find_server_process_by_pid_and_name(burner: subprocess.Popen[str]) -> None:
    found, _ = hostmetrics.find_server_process("http://127.0.0.1:1", server_pid=burner.pid)
    assert found is not None and found.pid == burner.pid and "--server-pid" in found.how
    found, _ = hostmetrics.find_server_process("http://127.0.0.1:1", server_name="hold = bytearray")
    assert found is not None and found.pid == burner.pid
    with pytest.raises(UsageError, match="no such process"):
        hostmetrics.find_server_process("http://127.0.0.1:1", server_pid=999_999_999)
    with pytest.raises(UsageError, match="no running process"):
        hostmetrics.find_server_process("http://127.0.0.1:1", server_name="no-such-process-name-xyz")


def test_find_server_process_when_nobody_listens() -> None:
    found, notice = hostmetrics.find_server_process("http://127.0.0.1:1")
    assert found is None and notice is not None and "port 1" in notice


def test_find_server_process_for_a_remote_target() -> None:
    found, notice = hostmetrics.find_server_process("http://192.0.2.1:8000")  # TEST-NET-1: never contacted
    assert found is None and notice is not None and "not on this machine" in notice


def test_threads_and_open_files_are_read_on_the_slow_cadence() -> None:
    now = [100.0]
    tree = hostmetrics.ProcessTree(os.getpid(), clock=lambda: now[0], slow_every_s=0.5)
    first = tree.read("server")
    assert first["server.threads"] is not None and first["server.threads"] >= 1
    assert first["server.open_fds"] is not None and first["server.open_fds"] >= 3  # stdin/out/err at least
    now[0] += 0.1
    between = tree.read("server")
    # CPU and RSS every sample; threads and open files not until the slow interval has passed.
    assert "server.threads" not in between and "server.open_fds" not in between
    assert between["server.rss_bytes"] is not None and between["server.processes"] == 1
    now[0] += 0.4
    assert tree.read("server")["server.open_fds"] == first["server.open_fds"]
