"""Open-loop load on Locust: requests sent on a schedule, whatever the responses do.

Locust users are a closed loop: each sends its next request when the previous one ends, so a
slow server slows the senders and hides the latency independent clients would have seen
(coordinated omission). Here Locust's users become a pool of senders (at most
``--max-inflight``): a `Dispatcher` greenlet walks the schedule and, at each due time, hands
it to an idle user (the most recently idle one, so few connections are used). When every user
is busy, due times queue up and the next user to finish takes the oldest at once: that
request starts late, and its latency still counts from when it was due (as wrk2 does).

A task can read ``self.loadbench_arrival``: when replaying a trace, the trace's row
(`loadbench.load.arrivals.Arrival`, with ``input_tokens`` / ``output_tokens`` when the trace has
them), else None.

The due time reaches the recorder through Locust's request-event ``context`` (the user's
``context()``, a documented Locust extension point), under `INTENDED_KEY`. It is attached to
the first request of each task run; a task that sends several requests has its later ones
measured from their own start.

Imports Locust: driving code only.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import gevent
import gevent.event
from locust import User

from loadbench.load.arrivals import Arrival

INTENDED_KEY = "loadbench_intended_unix_s"
# Due times left waiting for a free user beyond this many are counted, not kept.
MAX_BACKLOG = 1_000_000
WAKE_MARGIN_S = 0.0012  # see Dispatcher._wait_until


@dataclass
class ScheduleStats:
    """What the dispatcher did; written to ``meta.json`` under ``schedule``."""

    due: int = 0  # due times reached while the load ran
    handed_out: int = 0  # given to a user (on time or late)
    unsent: int = 0  # still waiting for a free user when the load stopped
    dropped: int = 0  # beyond MAX_BACKLOG: never queued
    max_backlog: int = 0
    first_due_unix_s: float | None = None
    last_due_unix_s: float | None = None
    extras: dict[str, Any] = field(default_factory=dict)


class Dispatcher:
    """Hands scheduled send times to idle users; see the module docstring."""

    def __init__(self, offsets: Iterable[float | Arrival], start_unix_s: float) -> None:
        self._offsets = iter(offsets)
        self.start_unix_s = start_unix_s
        self.stats = ScheduleStats()
        self._idle: list[gevent.event.AsyncResult] = []
        # (due time, the trace's row when replaying one)
        self._backlog: collections.deque[tuple[float, Arrival | None]] = collections.deque()
        self._greenlet: gevent.Greenlet | None = None
        self._closed = False
        # Handed to a user whose request has not started yet: a stop must not cut these.
        self._awaiting_start = 0

    def start(self) -> Dispatcher:
        self._greenlet = gevent.spawn(self._run)
        return self

    def _run(self) -> None:
        previous = self.start_unix_s
        for item in self._offsets:
            arrival = item if isinstance(item, Arrival) else None
            due = self.start_unix_s + (item.offset_s if isinstance(item, Arrival) else item)
            self._wait_until(due, due - previous)
            previous = due
            if self._closed:
                return
            self.stats.due += 1
            if self.stats.first_due_unix_s is None:
                self.stats.first_due_unix_s = due
            self.stats.last_due_unix_s = due
            if self._idle:
                self.stats.handed_out += 1
                self._awaiting_start += 1
                self._idle.pop().set((due, arrival))
            elif len(self._backlog) < MAX_BACKLOG:
                self._backlog.append((due, arrival))
                self.stats.max_backlog = max(self.stats.max_backlog, len(self._backlog))
            else:
                self.stats.dropped += 1

    @staticmethod
    def _wait_until(due: float, gap: float) -> None:
        """Sleep until ``due``, waking on time rather than up to a millisecond late.

        gevent's loop rounds timer waits up to whole milliseconds (epoll), which alone made
        the median send about 0.9 ms late (docs/benchmarks.md). So it sleeps until shortly
        before ``due`` and yields (``sleep(0)``: other greenlets and I/O keep running) until
        the time comes. The margin is at most a fifth of the gap to the previous request, so
        the yielding costs at most about a fifth of a core whatever the rate.
        """
        margin = min(WAKE_MARGIN_S, max(gap, 0.0) * 0.2)
        delay = due - time.time()
        if delay > margin:
            gevent.sleep(delay - margin)
        while time.time() < due:
            gevent.sleep(0)

    def claim(self) -> tuple[float, Arrival | None]:
        """Block until a send time is due for the calling user; return it (``time.time()`` scale)
        and, when replaying a trace, the trace's row (with its token lengths).

        Raises `GreenletExit` once the dispatcher is closed (the schedule is over): the user
        ends the way a stopped Locust user does, without an error logged.
        """
        if self._closed:
            raise gevent.GreenletExit()
        if self._backlog:
            self.stats.handed_out += 1
            self._awaiting_start += 1
            return self._backlog.popleft()
        slot = gevent.event.AsyncResult()
        self._idle.append(slot)
        try:
            due, arrival = slot.get()
            return float(due), arrival
        finally:
            # Killed while waiting (the run stopped): never hand this slot a time.
            if not slot.ready() and slot in self._idle:
                self._idle.remove(slot)

    def in_flight(self, senders: int) -> int:
        """Requests being sent or answered now, of a pool of ``senders`` users."""
        return max(senders - len(self._idle), 0)

    @property
    def finished(self) -> bool:
        """The schedule has run out (a trace's last request, or a shape's end)."""
        return self._greenlet is not None and self._greenlet.dead and not self._backlog

    def started(self) -> None:
        """A user's scheduled request has started (called from its request context)."""
        self._awaiting_start = max(self._awaiting_start - 1, 0)

    def close(self, grace_s: float = 1.0) -> ScheduleStats:
        """Stop scheduling; let requests already handed out start; count the due times no user took."""
        self._closed = True
        if self._greenlet is not None:
            self._greenlet.kill(block=False)
        deadline = time.monotonic() + grace_s
        while self._awaiting_start and time.monotonic() < deadline:
            gevent.sleep(0.001)
        self.stats.unsent = len(self._backlog)
        self._backlog.clear()
        # Idle users end now; busy ones finish their request (within Locust's stop_timeout).
        idle, self._idle = self._idle, []
        for slot in idle:
            slot.set_exception(gevent.GreenletExit())
        return self.stats


@dataclass
class DispatcherRef:
    """Where open-loop users find their dispatcher; None: they behave as the scenario wrote them.

    A distributed worker wraps its users before it learns from the master whether the run
    is open loop, and sets ``dispatcher`` when it does.
    """

    dispatcher: Dispatcher | None = None


def open_loop_classes(
    user_classes: list[type[User]], dispatcher: Dispatcher | DispatcherRef
) -> list[type[User]]:
    """Subclasses of ``user_classes`` whose tasks run when the dispatcher says, not in a loop."""
    ref = dispatcher if isinstance(dispatcher, DispatcherRef) else DispatcherRef(dispatcher)
    return [_open_loop_class(cls, ref) for cls in user_classes]


def _open_loop_class(cls: type[User], ref: DispatcherRef) -> type[User]:
    def on_start(self: Any) -> None:
        cls.on_start(self)
        if ref.dispatcher is not None:
            self._loadbench_due, self.loadbench_arrival = ref.dispatcher.claim()

    def wait_time(self: Any) -> float:
        if ref.dispatcher is None:
            return float(cls.wait_time(self))
        # Called by Locust between tasks; blocking here keeps the user in its waiting state,
        # where a stop ends it at once.
        self._loadbench_due, self.loadbench_arrival = ref.dispatcher.claim()
        return 0.0

    def context(self: Any) -> dict[str, Any]:
        ctx = cls.context(self)
        due = getattr(self, "_loadbench_due", None)
        if due is None or ref.dispatcher is None:
            return ctx
        self._loadbench_due = None  # only the task's first request was scheduled
        ref.dispatcher.started()
        return {**ctx, INTENDED_KEY: due}

    return type(
        cls.__name__,
        (cls,),
        {
            "on_start": on_start,
            "wait_time": wait_time,
            "context": context,
            "loadbench_arrival": None,
            "__module__": cls.__module__,
            "__doc__": cls.__doc__,
        },
    )
