"""The demo's prediction service: how long one takes (a service-time distribution) and how many are
served at once (a first-come-first-served queue of C workers), so that a run against the demo can
check queueing theory's predictions (M/G/C: Poisson arrivals from ``--rate``, a general service
time, C servers) against a real server.

Consumes the demo's service options (``--latency-ms``, ``--jitter-ms``, ``--service-dist``,
``--service-cv``, ``--workers``, ``--seed``); produces the sleep each prediction takes and the time
it waited for a worker. Standard library only: the spawner's checks import it.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections import deque
from dataclasses import dataclass

SERVICE_DISTS = ("fixed", "uniform", "exponential", "lognormal")


@dataclass(frozen=True)
class ServiceTime:
    """A prediction's added service time in ms: ``fixed`` is ``latency_ms``; ``uniform`` is
    ``latency_ms + uniform(0, jitter_ms)``; ``exponential`` has mean ``latency_ms``; ``lognormal``
    mean ``latency_ms`` and coefficient of variation (std / mean) ``cv``. ValueError when unusable."""

    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    dist: str = "uniform"
    cv: float = 1.0

    def __post_init__(self) -> None:
        if self.dist not in SERVICE_DISTS:
            raise ValueError(
                f"unknown service-time distribution {self.dist!r}: one of {', '.join(SERVICE_DISTS)}"
            )
        if not all(0 <= v < math.inf for v in (self.latency_ms, self.jitter_ms, self.cv)):
            raise ValueError("latency_ms, jitter_ms and cv must be finite numbers >= 0")
        if self.jitter_ms and self.dist != "uniform":
            raise ValueError(f"jitter_ms is the uniform distribution's spread, not the {self.dist} one's")

    def sample_ms(self, rng: random.Random) -> float:
        """One draw from ``rng``."""
        mean = self.latency_ms
        if self.dist == "uniform":  # exactly as before the other distributions: the same draws
            return mean + (rng.uniform(0.0, self.jitter_ms) if self.jitter_ms > 0 else 0.0)
        if self.dist == "fixed" or mean == 0 or (self.dist == "lognormal" and self.cv == 0):
            return mean  # no spread: exactly the mean, not exp(log(mean)) give or take a rounding
        if self.dist == "exponential":
            return rng.expovariate(1.0 / mean)
        # The lognormal whose mean and cv are the ones asked for (not those of the normal under it).
        sigma2 = math.log1p(self.cv**2)
        return rng.lognormvariate(math.log(mean) - sigma2 / 2, math.sqrt(sigma2))


class _Turn:
    """A waiter's place in the queue: set when a worker is handed to it, and when."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.at = 0.0


class FifoWorkers:
    """At most ``workers`` holders at once; the others wait in the order they came. A freed worker
    is handed to the longest waiter directly, so a newcomer can never overtake the queue
    (`threading.Semaphore` wakes an arbitrary waiter and lets a newcomer barge in)."""

    def __init__(self, workers: int) -> None:
        if workers < 1:
            raise ValueError(f"workers must be 1 or more, not {workers}")
        self.workers = workers
        self._free = workers
        self._lock = threading.Lock()
        self._waiting: deque[_Turn] = deque()

    @property
    def waiting(self) -> int:
        """How many wait for a worker now."""
        with self._lock:
            return len(self._waiting)

    def acquire(self) -> float:
        """Wait for a worker; return when it became this caller's (``time.perf_counter()``): for a
        waiter, the moment the previous holder released it, so the hand-over (the waiter's thread
        waking up) counts as the worker's time, as it does for any server's worker."""
        with self._lock:
            if self._free and not self._waiting:
                self._free -= 1
                return time.perf_counter()
            turn = _Turn()
            self._waiting.append(turn)
        turn.event.wait()  # set by the release that hands this waiter its worker
        return turn.at

    def release(self) -> None:
        with self._lock:
            if self._waiting:
                turn = self._waiting.popleft()
                turn.at = time.perf_counter()
                turn.event.set()
            else:
                self._free += 1


class Service:
    """Serves predictions: each waits for one of ``workers`` (None: never waits), then sleeps a
    draw of ``service_time``. ``seed``: reproducible draws (None: seeded from the OS)."""

    def __init__(
        self, service_time: ServiceTime, workers: int | None = None, seed: int | None = None
    ) -> None:
        self.service_time = service_time
        self.queue = None if workers is None else FifoWorkers(workers)
        self._rng = random.Random(seed)
        # Draws from several threads at once would not follow one seeded sequence.
        self._rng_lock = threading.Lock()

    def _sleep(self) -> None:
        with self._rng_lock:
            delay_ms = self.service_time.sample_ms(self._rng)
        if delay_ms > 0:
            time.sleep(delay_ms / 1000.0)

    def serve(self) -> tuple[float, float] | None:
        """Take a prediction's service time; return the seconds it waited for a worker and the
        seconds it held one (None without a queue). With a queue the draw is made in service
        order: a seed gives the same sequence of service times whatever the arrivals' timing."""
        if self.queue is None:
            self._sleep()
            return None
        arrived = time.perf_counter()
        started = self.queue.acquire()
        try:
            self._sleep()
            ended = time.perf_counter()
        finally:
            self.queue.release()
        return started - arrived, ended - started
