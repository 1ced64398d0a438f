"""Tests of loadbench.drive.rtt: the round trip before the load, with fake connects and a real listener."""

from __future__ import annotations

import socket
from typing import Any

from loadbench.drive import rtt


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_measure_rtt_times_each_connect() -> None:
    clock = FakeClock()
    delays = iter([0.002, 0.001, 0.003])

    def connect(address: Any, family: int, timeout_s: float) -> socket.socket:
        clock.now += next(delays)
        return socket.socket()

    result = rtt.measure_rtt("http://127.0.0.1:9/x", samples=3, connect=connect, clock=clock)
    assert result == {
        "rtt_ms_median": 2.0,
        "rtt_ms_min": 1.0,
        "samples": 3,
        "method": rtt.RTT_METHOD,
    }


def test_measure_rtt_skips_failures_and_gives_none_when_all_fail() -> None:
    def refuse(address: Any, family: int, timeout_s: float) -> socket.socket:
        raise ConnectionRefusedError

    assert rtt.measure_rtt("http://127.0.0.1:9", samples=3, connect=refuse) is None
    assert rtt.measure_rtt("http://no-such-host.invalid", samples=3) is None


def test_measure_rtt_stops_at_its_budget() -> None:
    clock = FakeClock()

    def slow(address: Any, family: int, timeout_s: float) -> socket.socket:
        clock.now += 1.0
        return socket.socket()

    result = rtt.measure_rtt("http://127.0.0.1:9", samples=20, budget_s=2.5, connect=slow, clock=clock)
    assert result is not None and result["samples"] == 3


def test_measure_rtt_against_a_real_listener() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        result = rtt.measure_rtt(f"http://127.0.0.1:{listener.getsockname()[1]}")
    assert result is not None
    assert result["samples"] == rtt.RTT_SAMPLES
    assert 0 < result["rtt_ms_min"] <= result["rtt_ms_median"] < 100


def test_target_address_defaults() -> None:
    assert rtt.target_address("https://example.com/v1") == ("example.com", 443)
    assert rtt.target_address("http://example.com") == ("example.com", 80)
    assert rtt.target_address("http://[::1]:8080") == ("::1", 8080)
