"""The demo as a queue of C workers with a service-time distribution (loadbench.demo.service), for
checking queueing theory's predictions: FIFO waits, the headers that report them, the
distributions' moments, and the options of `loadbench demo`, `run --demo` and `sweep --demo`.

Timing assertions are lower bounds the sleeps imply, or relations between measured values: never
how fast this (shared, loaded) machine is.
"""

from __future__ import annotations

import http.client
import json
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from helpers import DIGITS, run_cli, serving

from loadbench.demo.server import make_server
from loadbench.demo.service import FifoWorkers, ServiceTime
from loadbench.demo.spawn import DemoTiming, demo_command
from loadbench.errors import UsageError

SERVICE_MS = 50.0
ROW = json.loads(DIGITS.read_text().splitlines()[0])["inputs"]


class Answer:
    """One prediction's response headers and the client's own measure of its duration."""

    def __init__(self, headers: http.client.HTTPMessage, elapsed_ms: float) -> None:
        self.queue_ms = float(headers["X-Queue-Time-Ms"])
        self.service_ms = float(headers["X-Service-Time-Ms"])
        self.elapsed_ms = elapsed_ms


def _predict(port: int, answers: dict[int, Answer], index: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        started = time.perf_counter()
        conn.request("POST", "/predict", json.dumps({"inputs": ROW}), {"Content-Type": "application/json"})
        response = conn.getresponse()
        response.read()
        elapsed_ms = (time.perf_counter() - started) * 1000.0
        assert response.status == 200
        answers[index] = Answer(response.headers, elapsed_ms)
    finally:
        conn.close()


def _wait_for(condition: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.002)


@contextmanager
def queued_server(workers: int) -> Iterator[tuple[int, FifoWorkers]]:
    """A demo of ``workers`` workers and a fixed SERVICE_MS service time; yields its port and queue."""
    server = make_server(port=0, latency_ms=SERVICE_MS, service_dist="fixed", workers=workers)
    queue = server.service.queue  # type: ignore[attr-defined]
    assert isinstance(queue, FifoWorkers)
    with serving(server):
        yield server.server_address[1], queue


def _all_waiting(port: int, queue: FifoWorkers, workers: int, count: int) -> dict[int, Answer]:
    """Send ``count`` predictions while the test itself holds every worker, each sent once the one
    before waits, then free the workers: all of them queued, in a known order of arrival."""
    for _ in range(workers):
        queue.acquire()
    answers: dict[int, Answer] = {}
    threads = [threading.Thread(target=_predict, args=(port, answers, i)) for i in range(count)]
    try:
        for i, thread in enumerate(threads):
            thread.start()
            _wait_for(lambda: queue.waiting == i + 1, f"request {i} to queue")  # noqa: B023 (called now)
    finally:
        for _ in range(workers):
            queue.release()
    for thread in threads:
        thread.join(timeout=60)
    assert len(answers) == count
    return answers


@pytest.mark.parametrize(("workers", "count"), [(1, 4), (2, 6)])
def test_predictions_wait_for_a_worker_and_the_headers_split_queue_from_service(
    workers: int, count: int
) -> None:
    with queued_server(workers) as (port, queue):
        answers = _all_waiting(port, queue, workers, count)
        # Routes that take no service time never queue, and say nothing of a queue.
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        conn.request("GET", "/health")
        health = conn.getresponse()
        health.read()
        conn.close()
        assert health.getheader("X-Queue-Time-Ms") is None
    # The k-th to get a worker waited for k // workers services of SERVICE_MS before it (the
    # workers were freed once all of them waited).
    waits = sorted(a.queue_ms for a in answers.values())
    for rank, wait in enumerate(waits):
        assert wait >= (rank // workers) * SERVICE_MS * 0.9, waits
    for answer in answers.values():
        assert answer.service_ms >= SERVICE_MS
        # The wait and the service are disjoint parts of the request's time on the server, which
        # lies within the client's: a service time that included the wait would overflow it.
        assert answer.queue_ms + answer.service_ms <= answer.elapsed_ms + 0.002


def test_the_queue_serves_in_order_of_arrival(monkeypatch: pytest.MonkeyPatch) -> None:
    events: list[tuple[str, int]] = []
    with queued_server(1) as (port, queue):
        real_acquire = queue.acquire

        def traced_acquire() -> float:
            events.append(("arrive", threading.get_ident()))
            at = real_acquire()
            events.append(("exit", threading.get_ident()))
            return at

        monkeypatch.setattr(queue, "acquire", traced_acquire)
        answers = _all_waiting(port, queue, 1, 5)
    test = threading.get_ident()  # the test's own hold on the worker is no request
    arrivals = [ident for event, ident in events if event == "arrive" and ident != test]
    exits = [ident for event, ident in events if event == "exit" and ident != test]
    assert len(set(arrivals)) == 5 and exits == arrivals
    assert max(a.queue_ms for a in answers.values()) >= 4 * SERVICE_MS * 0.9  # the last waited for 4


def test_no_queue_no_queue_header() -> None:
    server = make_server(port=0, latency_ms=5.0)
    with serving(server):
        conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=60)
        conn.request("POST", "/predict", json.dumps({"inputs": ROW}), {"Content-Type": "application/json"})
        response = conn.getresponse()
        response.read()
        conn.close()
    assert response.getheader("X-Queue-Time-Ms") is None
    assert float(response.headers["X-Service-Time-Ms"]) >= 5.0


def _moments(service: ServiceTime, n: int = 200_000, seed: int = 7) -> tuple[float, float]:
    rng = random.Random(seed)
    draws = np.array([service.sample_ms(rng) for _ in range(n)])
    assert (draws >= 0).all()
    return float(draws.mean()), float(draws.std() / draws.mean())


def test_service_time_distributions_have_the_asked_moments() -> None:
    mean, cv = _moments(ServiceTime(10.0, dist="lognormal", cv=0.5))
    assert abs(mean - 10.0) / 10.0 < 0.01 and abs(cv - 0.5) / 0.5 < 0.02
    mean, cv = _moments(ServiceTime(10.0, dist="exponential"))
    assert abs(mean - 10.0) / 10.0 < 0.01 and abs(cv - 1.0) < 0.02
    rng = random.Random(3)
    assert {ServiceTime(7.5, dist="fixed").sample_ms(rng) for _ in range(100)} == {7.5}
    assert {ServiceTime(7.5, dist="lognormal", cv=0.0).sample_ms(rng) for _ in range(100)} == {7.5}
    assert {ServiceTime(0.0, dist=d).sample_ms(rng) for d in ("exponential", "lognormal")} == {0.0}
    draws = [ServiceTime(4.0, 3.0).sample_ms(rng) for _ in range(10_000)]
    assert all(4.0 <= d <= 7.0 for d in draws) and max(draws) - min(draws) > 2.9
    # The default stays what it always was: latency + uniform(0, jitter), draw for draw.
    seeded, again = random.Random(5), random.Random(5)
    assert [ServiceTime(4.0, 3.0).sample_ms(seeded) for _ in range(5)] == [
        4.0 + again.uniform(0.0, 3.0) for _ in range(5)
    ]
    assert ServiceTime(4.0).sample_ms(rng) == 4.0


def test_unusable_service_times_and_queues_are_refused() -> None:
    for bad in (
        {"dist": "gamma"},
        {"latency_ms": -1.0},
        {"cv": float("nan"), "dist": "lognormal"},
        {"jitter_ms": 2.0, "dist": "exponential"},
    ):
        with pytest.raises(ValueError):
            ServiceTime(**bad)
    with pytest.raises(ValueError, match="workers"):
        FifoWorkers(0)


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["demo", "--port", "0", "--workers", "0"], "--workers"),
        (["demo", "--port", "0", "--service-cv", "1", "--service-dist", "exponential"], "--service-cv"),
        (["demo", "--port", "0", "--jitter-ms", "5", "--service-dist", "lognormal"], "--jitter-ms"),
        (["run", "--demo", "--demo-workers", "-1"], "--demo-workers"),
        (["run", "--demo", "--demo-service-cv", "0.5"], "--demo-service-cv"),
        (
            [
                "sweep",
                "--demo",
                "--concurrency",
                "1",
                "--demo-jitter-ms",
                "1",
                "--demo-service-dist",
                "fixed",
            ],
            "--demo-jitter-ms",
        ),
    ],
)
def test_bad_queue_options_are_one_line_exit_2(args: list[str], fragment: str) -> None:
    result = run_cli(*args, timeout=60)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("loadbench: error: ") and fragment in lines[0], lines


def test_the_spawner_passes_the_queue_and_distribution_on() -> None:
    timing = DemoTiming(2.0, workers=3, service_dist="lognormal", service_cv=0.5, seed=11)
    timing.check()
    command = demo_command(2.0, None, (), service_args=timing.service_args())
    assert command[-8:] == [
        "--workers",
        "3",
        "--service-dist",
        "lognormal",
        "--service-cv",
        "0.5",
        "--seed",
        "11",
    ]
    assert DemoTiming().service_args() == []  # nothing given: the demo's defaults
    for bad, option in (
        (DemoTiming(workers=0), "--demo-workers"),
        (DemoTiming(jitter_ms=1.0, service_dist="fixed"), "--demo-jitter-ms"),
        (DemoTiming(service_cv=1.0), "--demo-service-cv"),
    ):
        with pytest.raises(UsageError, match=option):
            bad.check()


def test_a_run_against_a_queued_demo(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = run_cli(
        "run", "--demo", "--demo-workers", "1", "--demo-service-dist", "exponential",
        "--demo-latency-ms", "5", "--demo-seed", "1", "--users", "2", "--duration", "2s",
        "--warmup", "0s", "--quiet", "--out", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["requests"]["ok"] > 0, summary["requests"]
