"""The round trip to the target, measured by the driver just before the load.

Consumes a target URL; produces ``meta.json``'s ``network`` entry, which the analyzer's
`loadbench.analyze.network.latency_breakdown` reads later.

`measure_rtt(url)` connects to the target's host:port `RTT_SAMPLES` times (TCP only: nothing is
sent) and times each ``connect()``. A TCP connect returns once the SYN-ACK is back: one network
round trip, plus the kernel's work on both ends (a few µs). The name is resolved once, before
the timed connects, so DNS is not counted.
"""

from __future__ import annotations

import socket
import statistics
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from loadbench.values import is_inprocess_url

RTT_SAMPLES = 20
RTT_TIMEOUT_S = 2.0
RTT_BUDGET_S = 3.0  # a far target (100+ ms away) gets fewer samples rather than a long wait
RTT_METHOD = "TCP connect() to the target's host:port before the load; one connect = one round trip"

Connect = Callable[[tuple[Any, ...], int, float], socket.socket]


def _connect(address: tuple[Any, ...], family: int, timeout_s: float) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.settimeout(timeout_s)
    try:
        sock.connect(address)
    except BaseException:
        sock.close()
        raise
    return sock


def target_address(url: str) -> tuple[str, int]:
    """(host, port) of an http(s) URL, with the scheme's default port."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.hostname or "localhost", port


def measure_rtt(
    url: str,
    samples: int = RTT_SAMPLES,
    timeout_s: float = RTT_TIMEOUT_S,
    budget_s: float = RTT_BUDGET_S,
    connect: Connect = _connect,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, Any] | None:
    """Round-trip time to the target from TCP connects: the ``meta.json`` ``network`` entry.

    None when no connect succeeded (the run goes on; the breakdown is then left out), and for an
    in-process target (``python://``, ``onnx://``): there is no network to cross.
    """
    if is_inprocess_url(url):
        return None
    host, port = target_address(url)
    try:
        family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except (OSError, IndexError):
        return None
    times_ms: list[float] = []
    deadline = clock() + budget_s
    for _ in range(samples):
        if clock() > deadline:
            break
        t0 = clock()
        try:
            sock = connect(address, family, timeout_s)
        except OSError:
            continue
        elapsed = clock() - t0
        sock.close()
        times_ms.append(elapsed * 1000.0)
    if not times_ms:
        return None
    return {
        "rtt_ms_median": round(statistics.median(times_ms), 3),
        "rtt_ms_min": round(min(times_ms), 3),
        "samples": len(times_ms),
        "method": RTT_METHOD,
    }
