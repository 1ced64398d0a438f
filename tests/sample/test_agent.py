"""Tests of loadbench.sample.agent: real agent servers on 127.0.0.1 in threads, pulled by real `AgentPuller`s.

The agent's clock is shifted by a known offset, so the puller's NTP-style estimate can be checked;
collectors are either a counting fake (exact sequences) or the real one sampling this machine.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import psutil
import pytest
from fake_nvml import FakeGpu, FakeNvml
from helpers import REPO, serving

from loadbench.errors import TargetError, UsageError
from loadbench.sample import agent
from loadbench.sample.agent import AgentServer, build_collector, is_loopback, make_agent_server
from loadbench.sample.collector import Collector
from loadbench.sample.nvml import GpuReader
from loadbench.sample.puller import AgentPuller

OFFSET_S = 3.217
INTERVAL_S = 0.05
TOKEN = "s3cret-agent-token"


@dataclass
class CountingCollector(Collector):
    """Samples ``fake.count`` = 1, 2, 3, ...: exact, and cheap enough for a 50 ms interval."""

    count: int = 0

    def sample(self) -> dict[str, float | None]:
        self.count += 1
        return {"fake.count": float(self.count), "fake.nan": float("nan")}


class FailingCollector(Collector):
    def sample(self) -> dict[str, float | None]:
        raise RuntimeError("sensor fell off")


@contextmanager
def agent_at(
    clock: Callable[[], float] = time.time, collector: Collector | None = None, **kwargs: Any
) -> Iterator[tuple[str, AgentServer]]:
    server = make_agent_server(
        port=0,
        interval_s=kwargs.pop("interval_s", INTERVAL_S),
        collector=collector if collector is not None else CountingCollector(),
        clock=clock,
        **kwargs,
    )
    with serving(server) as url:
        yield url, server


def wait_for_seq(server: AgentServer, seq: int, timeout_s: float = 60.0) -> None:
    """Wait until the agent has taken sample ``seq`` (the deadline only stops a hang)."""
    deadline = time.monotonic() + timeout_s
    while server.last_seq < seq:
        assert time.monotonic() < deadline, f"the agent did not reach sample {seq}"
        time.sleep(0.01)


def shifted_clock() -> float:
    return time.time() + OFFSET_S


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- clock offset, pulling, paging ---------------------------------------------------------------


def assert_on_the_local_clock(
    server: AgentServer, puller: AgentPuller, samples: list[dict[str, Any]], earliest: float, latest: float
) -> None:
    """Each pulled sample is the agent's own (same count) at the agent's time minus the estimated
    offset, and lies on the local clock between ``earliest`` and ``latest`` (local readings taken
    before the agent took it and after the pull returned), give or take the offset's uncertainty."""
    remote = {s["fake.count"]: s["unix_s"] for s in server.samples_since(0)["samples"]}
    error = (puller.uncertainty_s or 0.0) + 1e-5  # the estimate's bound, plus rounding to 1 µs
    for sample in samples:
        count = sample[f"{puller.label}/fake.count"]
        assert sample["unix_s"] == pytest.approx(remote[count] - puller.offset_s, abs=2e-6)
        # Uncorrected, these would lie 3.2 s in the future.
        assert earliest - error <= sample["unix_s"] <= latest + error, (earliest, sample, latest, error)


def test_puller_estimates_the_offset_and_moves_samples_onto_the_local_clock() -> None:
    agent_started = time.time()
    with agent_at(shifted_clock) as (url, server):
        wait_for_seq(server, 2)
        puller = AgentPuller(url, label="gpu-box:9109")
        try:
            info = puller.start()
            # NTP-style: the agent read its clock inside the fastest round trip, so the estimate
            # is off by at most half of that trip, the uncertainty it reports.
            assert info["uncertainty_s"] > 0
            assert abs(info["offset_s"] - OFFSET_S) <= info["uncertainty_s"] + 1e-6, info
            assert info["rtt_ms"] == pytest.approx(info["uncertainty_s"] * 2000, abs=0.01)
            assert info["url"] == url and info["label"] == "gpu-box:9109"
            assert info["remote"]["interval_s"] == INTERVAL_S
            assert info["remote"]["hostname"] == socket.gethostname()

            wait_for_seq(server, server.last_seq + 3)
            first = puller.pull()
            now = time.time()
            assert len(first) >= 3
            assert all(
                set(s) == {"unix_s", "gpu-box:9109/fake.count", "gpu-box:9109/fake.nan"} for s in first
            )
            assert all(s["gpu-box:9109/fake.nan"] is None for s in first)  # NaN is not JSON: unknown
            assert_on_the_local_clock(server, puller, first, agent_started, now)
            counts = [s["gpu-box:9109/fake.count"] for s in first]
            assert counts == list(range(int(counts[0]), int(counts[0]) + len(counts)))

            wait_for_seq(server, int(counts[-1]) + 2)
            second = puller.pull()
            window_end = time.time()
            assert second, "the second pull found no new samples"
            assert second[0]["gpu-box:9109/fake.count"] == counts[-1] + 1  # only new ones, none lost
            assert_on_the_local_clock(server, puller, second, agent_started, window_end)
            # One sampling thread on one clock: the times go up from the first pull to the second.
            times = [s["unix_s"] for s in first + second]
            assert times == sorted(times) and len(set(times)) == len(times)
            assert puller.errors == 0 and puller.pulled == len(first) + len(second)
        finally:
            puller.close()


def test_pull_starts_at_the_last_sample_before_start() -> None:
    with agent_at() as (url, server):
        wait_for_seq(server, 10)
        puller = AgentPuller(url)
        try:
            seq_before_start = server.last_seq
            info = puller.start()
            seq_at_start = server.last_seq
            samples = puller.pull()
            label = f"127.0.0.1:{server.server_address[1]}"
            assert puller.label == label
            first = samples[0][f"{label}/fake.count"]
            # One sample of the buffered past (the newest when start() asked), not all ten
            # (however many the agent took while start() synced the clocks).
            assert 10 <= seq_before_start <= first <= seq_at_start
            assert "seq" not in json.dumps(info)
        finally:
            puller.close()


def test_samples_route_pages_with_since() -> None:
    with agent_at() as (url, server), httpx.Client() as client:
        wait_for_seq(server, 5)
        everything = client.get(f"{url}/samples").json()
        seqs = [s["seq"] for s in everything["samples"]]
        assert seqs == list(range(1, len(seqs) + 1)) and len(seqs) >= 5
        assert everything["next"] == seqs[-1] and everything["dropped"] == 0
        assert all(set(s) >= {"seq", "unix_s", "fake.count"} for s in everything["samples"])

        newer = client.get(f"{url}/samples", params={"since": 3}).json()
        assert [s["seq"] for s in newer["samples"]][:2] == [4, 5]

        # A cursor from before an agent restart (beyond the last sample): everything again.
        restarted = client.get(f"{url}/samples", params={"since": 10**9}).json()
        assert restarted["samples"][0]["seq"] == 1

        bad = client.get(f"{url}/samples", params={"since": "yesterday"})
        assert bad.status_code == 400
        assert "since" in bad.json()["error"]

        missing = client.get(f"{url}/metrics")
        assert missing.status_code == 404 and "error" in missing.json()
        post = client.post(f"{url}/samples")
        assert post.status_code == 501 and "error" in post.json()


def test_pull_follows_pages_when_the_backlog_is_long(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(agent, "MAX_SAMPLES_PER_RESPONSE", 3)
    with agent_at() as (url, server), httpx.Client() as client:
        wait_for_seq(server, 12)
        page = client.get(f"{url}/samples", params={"since": 0}).json()
        assert [s["seq"] for s in page["samples"]] == [1, 2, 3] and page["more"] and page["next"] == 3

        puller = AgentPuller(url, label="a")
        try:
            puller.start()
            puller.since = 0
            counts = [s["a/fake.count"] for s in puller.pull()]
            assert counts[:12] == [float(i) for i in range(1, 13)]
        finally:
            puller.close()


def test_a_full_ring_buffer_drops_the_oldest_and_says_so() -> None:
    with agent_at(buffer_s=0.2) as (url, server):  # room for 4 samples
        wait_for_seq(server, 10)
        puller = AgentPuller(url, label="a")
        try:
            puller.start()
            puller.since = 0
            samples = puller.pull()
            assert 1 <= len(samples) <= 5
            assert puller.dropped >= 5
            assert samples[0]["a/fake.count"] == puller.dropped + 1
        finally:
            puller.close()


def test_resync_records_drift() -> None:
    with agent_at(shifted_clock) as (url, _):
        puller = AgentPuller(url)
        try:
            first = puller.start()
            puller.last_sync = float("-inf")  # as if a minute had passed
            puller.pull()
            summary = puller.summary()
            assert summary["syncs"] == 2
            # Each estimate is within its own uncertainty of the true offset; the two clocks do
            # not drift apart, so the drift is within the sum of both.
            assert abs(summary["offset_s"] - OFFSET_S) <= summary["uncertainty_s"] + 1e-6, summary
            assert abs(summary["drift_s"]) <= first["uncertainty_s"] + summary["uncertainty_s"] + 2e-6, (
                summary
            )
        finally:
            puller.close()


# --- the real collector ------------------------------------------------------------------------------


def test_default_collector_samples_this_machine() -> None:
    server = make_agent_server(port=0, interval_s=INTERVAL_S)
    with serving(server) as url:
        wait_for_seq(server, 3)
        puller = AgentPuller(url, label="me")
        try:
            info = puller.start()["remote"]
            assert info["hostname"] == socket.gethostname()
            assert info["cpu_cores"] >= 1 and info["server"] is None
            assert info["loadbench"]
            assert isinstance(info["gpus"], list) and isinstance(info["notices"], list)
            # Host memory is read at most every 0.5 s; CPU at every sample: wait for a sample
            # with memory among those the pull will bring.
            since = puller.since
            deadline = time.monotonic() + 60
            while not any("host.mem_total_bytes" in s for s in server.samples_since(since)["samples"]):
                assert time.monotonic() < deadline, "no sample with host memory"
                time.sleep(0.05)
            samples = puller.pull()
            assert samples
            assert all(0 <= s["me/host.cpu_percent"] <= 100 for s in samples)
            assert any(s.get("me/host.mem_total_bytes", 0) > 0 for s in samples)
        finally:
            puller.close()


def test_agent_samples_the_server_process_and_gpus() -> None:
    gpus = GpuReader(nvml=FakeNvml([FakeGpu()]))
    collector, how, notices = build_collector(server_pid=os.getpid(), gpus=gpus)
    assert "--server-pid" in how and notices == []
    server = make_agent_server(port=0, interval_s=INTERVAL_S, collector=collector)
    with serving(server) as url:
        wait_for_seq(server, 3)
        puller = AgentPuller(url, label="box")
        try:
            info = puller.start()["remote"]
            assert info["server"]["pid"] == os.getpid()
            assert info["gpus"][0]["name"] == "NVIDIA H100 80GB HBM3"
            wait_for_seq(server, server.last_seq + 1)
            last = puller.pull()[-1]
            assert last["box/server.rss_bytes"] > 0
            assert last["box/gpu0.util_percent"] == 87
        finally:
            puller.close()


def test_agent_finds_the_server_by_name() -> None:
    marker = f"loadbench-agent-test-server-{os.getpid()}"
    child = subprocess.Popen(
        [sys.executable, "-c", "import time, sys; print('ready', flush=True); time.sleep(60)", marker],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        # Until the child has exec'd, its command line is still ours (a fork of pytest): its
        # first line says it runs.
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        assert marker in " ".join(psutil.Process(child.pid).cmdline())
        collector, how, _ = build_collector(server_name=marker, gpus=GpuReader(nvml=FakeNvml([])))
        assert collector.server is not None and collector.server.root.pid == child.pid
        assert marker in how
        with pytest.raises(UsageError, match="--server-name"):
            build_collector(server_name=marker + "-gone", gpus=GpuReader(nvml=FakeNvml([])))
    finally:
        child.kill()
        child.communicate(timeout=10)


def test_a_failing_collector_does_not_end_the_agent() -> None:
    with agent_at(collector=FailingCollector()) as (url, server), httpx.Client() as client:
        deadline = time.monotonic() + 60  # only stops a hang
        while server.sample_errors < 2:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        info = client.get(f"{url}/info").json()
        assert any("sensor fell off" in notice for notice in info["notices"])
        assert client.get(f"{url}/samples").json()["samples"] == []


# --- tokens ------------------------------------------------------------------------------------------


def test_refuses_to_bind_beyond_loopback_without_a_token() -> None:
    for bind in ("0.0.0.0", ""):
        with pytest.raises(UsageError, match=r"beyond loopback .*--token or LOADBENCH_AGENT_TOKEN"):
            make_agent_server(bind=bind, port=0, token=None, collector=CountingCollector())
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert is_loopback("127.0.0.2") and not is_loopback("0.0.0.0") and not is_loopback("::")


def test_token_is_required_on_every_route() -> None:
    with agent_at(token=TOKEN) as (url, _), httpx.Client() as client:
        for path in ("/time", "/info", "/samples?since=0"):
            for headers in ({}, {"Authorization": "Bearer wrong-token"}, {"Authorization": TOKEN}):
                refused = client.get(url + path, headers=headers)
                assert refused.status_code == 401
                assert refused.json() == {"error": "missing or wrong token"}
                assert TOKEN not in refused.text and "wrong-token" not in refused.text
            allowed = client.get(url + path, headers={"Authorization": f"Bearer {TOKEN}"})
            assert allowed.status_code == 200


def test_puller_with_the_wrong_token_is_refused_without_showing_it() -> None:
    with agent_at(token=TOKEN) as (url, _):
        for token in ("not-the-token", None):
            puller = AgentPuller(url, token=token)
            with pytest.raises(TargetError, match="refused the token") as caught:
                puller.start()
            puller.close()
            assert "not-the-token" not in str(caught.value) and TOKEN not in str(caught.value)


def test_puller_with_the_right_token_never_reports_it() -> None:
    with agent_at(shifted_clock, token=TOKEN) as (url, server):
        for puller in (AgentPuller(url, token=TOKEN), AgentPuller(url.replace("://", f"://:{TOKEN}@"))):
            try:
                info = puller.start()
                assert info["url"] == url
                assert TOKEN not in json.dumps(info) and TOKEN not in json.dumps(puller.summary())
                wait_for_seq(server, server.last_seq + 1)
                assert puller.pull()
            finally:
                puller.close()


# --- failures ----------------------------------------------------------------------------------------


def test_unreachable_agent_is_a_one_line_target_error() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    puller = AgentPuller(url, timeout_s=1.0)
    with pytest.raises(TargetError, match=rf"agent {re.escape(url)} is unreachable: ") as caught:
        puller.start()
    puller.close()
    assert "\n" not in str(caught.value)


def test_malformed_agent_url_is_a_usage_error() -> None:
    for url in ("gpu-box:9109", "ftp://gpu-box", "http://gpu-box:port", f"http://:{TOKEN}@gpu-box:port"):
        with pytest.raises(UsageError, match="--agent") as caught:
            AgentPuller(url)
        assert TOKEN not in str(caught.value)


def test_pull_after_the_agent_dies_returns_nothing_and_backs_off() -> None:
    with agent_at() as (url, server):
        wait_for_seq(server, 2)
        puller = AgentPuller(url, timeout_s=1.0)
        puller.start()
        assert puller.pull()
    try:
        assert puller.pull() == []
        assert puller.errors == 1 and puller.last_error
        # Backing off: no second try before retry_at (had it tried, it would have failed again).
        assert puller.retry_at > time.monotonic()
        assert puller.pull() == []
        assert puller.errors == 1
    finally:
        puller.close()


def test_port_in_use_is_a_usage_error() -> None:
    with agent_at() as (_, server):
        port = server.server_address[1]
        with pytest.raises(UsageError, match=f"cannot listen on 127.0.0.1:{port}"):
            make_agent_server(port=port, collector=CountingCollector())


# --- serve_agent in a real process ------------------------------------------------------------------


def start_agent(code: str, env: dict[str, str] | None = None) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-c", f"from loadbench.sample.agent import serve_agent; {code}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, **(env or {})},
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    match = re.fullmatch(
        rf"loadbench agent: serving samples of {re.escape(socket.gethostname())} on (http://127\.0\.0\.1:\d+)\n",
        line,
    )
    if not match:
        process.kill()
        _, err = process.communicate(timeout=10)
        raise AssertionError(f"the agent printed {line!r}, stderr {err!r}")
    return process, match.group(1)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serve_agent_serves_and_stops_cleanly(sig: signal.Signals) -> None:
    process, url = start_agent("serve_agent('127.0.0.1', 0, None, 0.1)")
    try:
        asked = time.time()
        reply = httpx.get(f"{url}/time", timeout=30)
        answered = time.time()
        assert reply.status_code == 200
        assert asked <= reply.json()["unix_s"] <= answered  # this machine's clock, read in between
    finally:
        process.send_signal(sig)
        out, err = process.communicate(timeout=10)
    assert process.returncode == 0
    assert err == "" and out == ""


def test_serve_agent_takes_the_token_from_the_environment() -> None:
    process, url = start_agent("serve_agent('127.0.0.1', 0, None, 0.1)", {"LOADBENCH_AGENT_TOKEN": TOKEN})
    try:
        assert httpx.get(f"{url}/time", timeout=5).status_code == 401
        authorized = httpx.get(f"{url}/time", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5)
        assert authorized.status_code == 200
    finally:
        process.terminate()
        _, err = process.communicate(timeout=10)
    assert process.returncode == 0 and err == ""
