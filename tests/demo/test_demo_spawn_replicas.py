"""`loadbench.demo.spawn.start_replicas` (``sweep --demo --replicas``): N demo replicas in one child
process, their URLs in order, each its own FIFO queue of workers, so N replicas serve N times one.

Who waited is read from the demo's own ``X-Queue-Time-Ms`` (the wait for a worker), not from how
fast this (shared, loaded) machine answers.
"""

from __future__ import annotations

import http.client
import json
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import pytest

from loadbench.demo.spawn import DemoTiming, start_replicas, stop_demo
from loadbench.errors import UsageError

BODY = json.dumps({"inputs": [[0] * 64]})
SERVICE_MS = 150.0


def predict(url: str) -> tuple[str | None, float]:
    """One POST /predict: who served it and how long it waited for a worker (ms)."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=10)
    try:
        connection.request("POST", "/predict", BODY, {"Content-Type": "application/json"})
        response = connection.getresponse()
        response.read()
        assert response.status == 200
        return response.getheader("X-Served-By"), float(response.getheader("X-Queue-Time-Ms") or "nan")
    finally:
        connection.close()


def test_replicas_each_queue_their_own_worker() -> None:
    process, urls = start_replicas(DemoTiming(latency_ms=SERVICE_MS, workers=1), 2)
    try:
        assert len(urls) == 2 and len(set(urls)) == 2
        assert [predict(u)[0] for u in urls] == ["replica-1", "replica-2"]
        with ThreadPoolExecutor(2) as pool:
            # Two at once on one replica: its single worker serves them one after the other.
            same = list(pool.map(predict, [urls[0], urls[0]]))
            # One on each: each replica's own worker, side by side.
            spread = list(pool.map(predict, urls))
        # Sent together, the second on one replica waits out most of the first's service (the
        # two may reach it up to the thread pool's start-up apart); on two replicas neither waits.
        assert max(wait for _, wait in same) >= SERVICE_MS / 2
        assert max(wait for _, wait in spread) < SERVICE_MS / 2
    finally:
        stop_demo(process)
    assert process.poll() is not None


def test_one_replica_is_named_too() -> None:
    process, urls = start_replicas(DemoTiming(), 1)
    try:
        assert predict(urls[0])[0] == "replica-1"
    finally:
        stop_demo(process)


def test_bad_timing_is_refused_before_anything_starts() -> None:
    with pytest.raises(UsageError, match="--demo-workers must be 1 or more"):
        start_replicas(DemoTiming(workers=0), 2)
    with pytest.raises(UsageError, match="1 or more replicas"):
        start_replicas(DemoTiming(), 0)
