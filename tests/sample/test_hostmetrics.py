"""psutil readings on real processes: a child that burns CPU and holds memory, process trees,
the host, the generator, and finding the model server's process.

No test asserts how fast this machine is: a CPU reading is checked against the process's own
CPU time, read from the OS (``/proc``, through psutil) just before the reading's interval opened
and just after it closed, so the bounds hold however many other processes share the cores.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

import psutil
import pytest
from helpers import BURNER, cpu_seconds

from loadbench.errors import UsageError
from loadbench.sample import hostmetrics

T = TypeVar("T")
SLACK_PERCENT = 0.1  # psutil rounds each process's percent to 0.1, the tree sums and rounds to 0.01


class Bracket:
    """The CPU share of processes over an interval that lies between two pairs of readings.

    ``open(prime)`` reads each process's CPU time and the monotonic clock (psutil's timer)
    before and after ``prime()`` (which starts the code's interval), ``close(read)`` the same
    around ``read()`` (which ends it). Whenever inside those brackets the code took its two
    readings, the share it computed lies between `low` and `high`: the least CPU time over the
    longest interval, and the most over the shortest.
    """

    def __init__(self, pids: Sequence[int]) -> None:
        self.pids = list(pids)

    def _mark(self) -> tuple[float, list[float]]:
        return time.monotonic(), [cpu_seconds(pid) for pid in self.pids]

    def open(self, prime: Callable[[], T]) -> T:
        self.before_open = self._mark()
        result = prime()
        self.after_open = self._mark()
        return result

    def close(self, read: Callable[[], T]) -> T:
        self.before_close = self._mark()
        result = read()
        self.after_close = self._mark()
        return result

    def low(self, i: int) -> float:
        busy = self.before_close[1][i] - self.after_open[1][i]
        return 100 * busy / (self.after_close[0] - self.before_open[0]) - SLACK_PERCENT

    def high(self, i: int) -> float:
        busy = self.after_close[1][i] - self.before_open[1][i]
        return 100 * busy / (self.before_close[0] - self.after_open[0]) + SLACK_PERCENT

    def wait_until_busy(self, pid: int, busy_s: float, timeout_s: float = 60.0) -> None:
        """Wait (polling the OS, not the clock) until the process has burned ``busy_s`` seconds of
        CPU since the interval opened: on a loaded machine that takes longer, not less."""
        start = self.after_open[1][self.pids.index(pid)]
        deadline = time.monotonic() + timeout_s
        while cpu_seconds(pid) - start < busy_s:
            assert time.monotonic() < deadline, (
                f"process {pid} burned under {busy_s} s of CPU in {timeout_s} s"
            )
            time.sleep(0.02)


def test_process_tree_sees_cpu_and_memory_of_a_real_child(burner: subprocess.Popen[str]) -> None:
    window = Bracket([burner.pid])
    tree = window.open(lambda: hostmetrics.ProcessTree(burner.pid))
    window.wait_until_busy(burner.pid, 0.3)
    values = window.close(lambda: tree.read("server"))
    cpu = values["server.cpu_percent"]
    # What the OS charged the burner over the tree's interval, as a share of one core.
    assert cpu is not None and window.low(0) <= cpu <= window.high(0), (cpu, window.low(0), window.high(0))
    assert window.low(0) > 0  # it did burn
    assert values["server.rss_bytes"] is not None and values["server.rss_bytes"] > 200 * 1024 * 1024
    assert values["server.threads"] is not None and values["server.threads"] >= 1
    assert values["server.processes"] == 1


def test_process_tree_includes_children() -> None:
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import subprocess, sys; subprocess.run([sys.executable, '-c', {BURNER!r}, '30'])",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert parent.stdout is not None and parent.stdout.readline().strip() == "ready"
        (child,) = psutil.Process(parent.pid).children()
        window = Bracket([parent.pid, child.pid])
        tree = window.open(lambda: hostmetrics.ProcessTree(parent.pid))
        window.wait_until_busy(child.pid, 0.3)
        values = window.close(lambda: tree.read("server"))
        assert values["server.processes"] == 2
        cpu = values["server.cpu_percent"]
        # The tree's CPU is the sum of its members' (the idle parent's and the burning child's).
        low, high = window.low(0) + window.low(1), window.high(0) + window.high(1)
        assert cpu is not None and low <= cpu <= high, (cpu, low, high)
        assert window.low(1) > window.high(0)  # the child burns, the parent waits for it
        assert values["server.rss_bytes"] is not None and values["server.rss_bytes"] > 200 * 1024 * 1024
    finally:
        # The burner holds the parent's stdout open: kill it first, or communicate() waits it out.
        for proc in psutil.Process(parent.pid).children(recursive=True):
            proc.kill()
        parent.kill()
        parent.communicate()


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
    idle = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; print('ready', flush=True); time.sleep(120)"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert idle.stdout is not None and idle.stdout.readline().strip() == "ready"
        pids = [os.getpid(), idle.pid, burner.pid]
        window = Bracket(pids)
        generator = window.open(lambda: hostmetrics.Generator([*pids, 999_999_999]))
        window.wait_until_busy(burner.pid, 0.3)
        cpu = window.close(lambda: generator.read()["generator.cpu_percent"])
        # The busiest of the processes (one core each): the largest of their shares.
        low = max(window.low(i) for i in range(len(pids)))
        high = max(window.high(i) for i in range(len(pids)))
        assert cpu is not None and low <= cpu <= high, (cpu, low, high)
        assert window.low(2) > window.high(1)  # the burner is busier than its idle sibling
    finally:
        idle.kill()
        idle.communicate()


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
    # A child of its own (the test process may have children: the tests' loadbench zygote).
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        tree = hostmetrics.ProcessTree(child.pid, clock=lambda: now[0], slow_every_s=0.5)
        first = tree.read("server")
        assert first["server.threads"] is not None and first["server.threads"] >= 1
        assert first["server.open_fds"] is not None and first["server.open_fds"] >= 3  # stdin/out/err
        now[0] += 0.1
        between = tree.read("server")
        # CPU and RSS every sample; threads and open files not until the slow interval has passed.
        assert "server.threads" not in between and "server.open_fds" not in between
        assert between["server.rss_bytes"] is not None and between["server.processes"] == 1
        now[0] += 0.4
        assert tree.read("server")["server.open_fds"] == first["server.open_fds"]
    finally:
        child.kill()
        child.wait()
