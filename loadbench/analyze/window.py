"""The measured window of a run, and the summary sections that describe the run itself.

`measure` reads the run's metadata and records once: when the run ended, where the measured
window starts (``warmup_s`` after the load started) and which requests it holds; every other
section of ``summary.json`` is computed from the `Window` it returns. With ``--retries`` the
records are attempts: `measure` collapses them into the requests users saw
(`loadbench.analyze.attempts`), here and only here, so every section sees the same requests;
the attempts stay beside them for the figures that are about attempts (targets, replicas, retries).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any, NotRequired, TypedDict

import numpy as np
import numpy.typing as npt
import pandas as pd

from loadbench.analyze.attempts import attempt_timeline, split_attempts
from loadbench.record import rundir
from loadbench.record.records import TIME_RESOLUTION_S, from_due_time

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]


class RunSection(TypedDict):
    """``summary["run"]``: which run, and when it ran."""

    id: str | None
    target: str | None
    scenario: str | None
    status: str
    started_at: str
    ended_at: str
    started_unix_s: float
    ended_unix_s: float
    duration_s: float
    users: int | None
    warmup_s: float
    workers: NotRequired[int]
    workers_died: NotRequired[int]


class WindowSection(TypedDict):
    """``summary["window"]``: the measured window, in wall-clock seconds."""

    start_unix_s: float
    end_unix_s: float
    duration_s: float
    reason: str


# ``summary["load"]``: ``model`` and ``description``, then the run's load settings as given.
LoadSection = dict[str, Any]


@dataclass(frozen=True)
class RunSpan:
    """When a run ran and where its measured window lies: what every section needs besides records."""

    meta: dict[str, Any]
    settings: dict[str, Any]
    started: float
    ended: float
    start: float  # of the window: started + warmup_s

    @property
    def load(self) -> dict[str, Any]:
        return self.settings.get("load") or {}

    @property
    def load_model(self) -> str:
        return "open" if self.load.get("model") == "open" else "closed"

    @property
    def warmup_s(self) -> float:
        return float(self.settings.get("warmup_s", 0.0) or 0.0)

    @property
    def status(self) -> str:
        return str(self.meta.get("status", rundir.STATUS_RUNNING))

    @property
    def duration_s(self) -> float:
        return max(self.ended - self.start, 0.0)

    @property
    def in_flight_unrecorded(self) -> int | None:
        """Requests in flight when the load stopped, which Locust cut off unrecorded; None when
        the driver did not count them (older runs, clients it cannot count)."""
        value = self.meta.get("in_flight_unrecorded")
        return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


@dataclass(frozen=True)
class Window(RunSpan):
    """A run's measured window and the requests in it (latency from the due time, open loop).

    ``requests`` are the requests users saw: with ``--retries``, each one's attempts collapsed
    (`loadbench.analyze.attempts`); ``attempts`` are the records themselves. Without retries the
    two are the same frame.
    """

    requests: pd.DataFrame  # every record, latency from the due time
    in_window: BoolArray  # per record: started inside the window
    service_ms: FloatArray  # per record: latency from the actual send
    sent_unix_s: FloatArray
    intended_unix_s: FloatArray
    attempts: pd.DataFrame  # every record, latency from the due time (first attempts) or the send
    request_of: IntArray  # per attempt: its request's row in ``requests``
    final: BoolArray  # per attempt: the last of its request

    @cached_property
    def measured(self) -> pd.DataFrame:
        return self.requests[self.in_window]

    @cached_property
    def ok_mask(self) -> BoolArray:
        return np.asarray(self.measured["ok"].to_numpy(), dtype=bool)

    @property
    def total(self) -> int:
        return int(self.in_window.sum())

    @property
    def ok(self) -> int:
        return int(self.ok_mask.sum())

    @cached_property
    def ok_latency(self) -> FloatArray:
        return np.asarray(self.measured["latency_ms"].to_numpy(dtype=np.float64)[self.ok_mask])

    @cached_property
    def attempts_in_window(self) -> BoolArray:
        """Per attempt: its request started inside the window (a retry counts where its request does)."""
        return np.asarray(self.in_window[self.request_of], dtype=bool)

    @cached_property
    def measured_attempts(self) -> pd.DataFrame:
        return self.attempts[self.attempts_in_window]

    @cached_property
    def attempt_ok_mask(self) -> BoolArray:
        return np.asarray(self.measured_attempts["ok"].to_numpy(), dtype=bool)

    @property
    def measured_service_ms(self) -> FloatArray:
        return self.service_ms[self.in_window]


def window_start_unix_s(meta: dict[str, Any]) -> float:
    """Where the measured window starts (wall clock): ``warmup_s`` after the load started.
    ``loadbench compare`` windows its bootstrap with this too."""
    settings = meta.get("settings") or {}
    return float(meta["started_unix_s"]) + float(settings.get("warmup_s", 0.0) or 0.0)


def measure(meta: dict[str, Any], requests: pd.DataFrame) -> tuple[Window, list[str]]:
    """The run's window, with the notices on how the run went (first in the summary's notices)."""
    split = split_attempts(requests)
    requests = split.requests
    # Open loop: a request counts from when it was due, not from when it was sent; the
    # service time (from the actual send) is kept beside it. Closed loop: the two are equal.
    service_ms = requests["latency_ms"].to_numpy()
    sent_unix_s = requests["start_unix_s"].to_numpy()
    intended = requests["intended_unix_s"].to_numpy()
    requests = from_due_time(requests)
    # Without a request id the attempts are the requests: the very frame, so nothing changes.
    attempts = (
        requests if split.attempts is split.requests else from_due_time(attempt_timeline(split.attempts))
    )
    last = (requests["start_unix_s"] + requests["latency_ms"] / 1000.0).max() if len(requests) else None
    span, notices = run_span(meta, None if last is None else float(last))
    window = Window(
        **vars(span),
        requests=requests,
        # A request due exactly at the window's start counts in, though its time was written
        # rounded to the microsecond (and may read back just before it).
        in_window=requests["start_unix_s"].to_numpy() >= span.start - TIME_RESOLUTION_S / 2,
        service_ms=service_ms,
        sent_unix_s=sent_unix_s,
        intended_unix_s=intended,
        attempts=attempts,
        request_of=split.request_of,
        final=split.final,
    )
    notices += run_notices(window)
    notices += window_notices(window, window.total, window.ok)
    return window, notices


def run_span(meta: dict[str, Any], last_end_unix_s: float | None) -> tuple[RunSpan, list[str]]:
    """The run's span, from its metadata and (for a killed run, whose end was never written) when
    its last recorded request ended; with the notice of a run that did not finish."""
    settings = meta.get("settings", {})
    started = float(meta["started_unix_s"])
    ended, notices = _run_end(meta, settings, last_end_unix_s, started)
    return RunSpan(meta, settings, started, ended, window_start_unix_s(meta)), notices


def _run_end(
    meta: dict[str, Any], settings: dict[str, Any], last_end_unix_s: float | None, started: float
) -> tuple[float, list[str]]:
    """When the run ended: as recorded, else (killed) when its last recorded request ended."""
    ended = meta.get("ended_unix_s")
    if ended is not None:
        return float(ended), []
    end = max(float(started if last_end_unix_s is None else last_end_unix_s), started)
    notices = [
        "incomplete run: the load generator did not finish (killed or still running); "
        "the metrics cover the requests recorded up to its last flush"
    ]
    # A damaged start time must not stretch the run to years of per-second rows: a run
    # cannot have outlasted its planned duration (plus the request timeout) by much.
    planned = settings.get("duration_s")
    limit = started + rundir.MAX_RUN_S
    if isinstance(planned, int | float) and 0 < planned < rundir.MAX_RUN_S:
        limit = started + planned + float(settings.get("timeout_s") or 60.0) + 60.0
    if end > limit:
        end = limit
        notices.append("records that lie after the planned end of the run were ignored for its length")
    return float(end), notices


def run_notices(w: RunSpan) -> list[str]:
    """How the run went: interrupted or failed, TLS unchecked, workers died, scenario exceptions."""
    meta, settings = w.meta, w.settings
    notices = []
    if w.status == rundir.STATUS_INTERRUPTED:
        planned = settings.get("duration_s")
        notices.append(
            f"run interrupted after {w.ended - w.started:.1f} s"
            + (f" of {float(planned):.1f} s planned" if planned else "")
            + "; the metrics cover what ran"
        )
    elif w.status == rundir.STATUS_FAILED:
        notices.append(f"the run failed: {meta.get('failure', 'see the console output')}")
    if settings.get("tls_verify") is False:
        notices.append(
            "TLS certificates were NOT verified (--insecure): the endpoint's identity was not checked"
        )
    for worker in meta.get("workers") or []:
        died = worker.get("died_at_unix_s")
        if isinstance(died, int | float):
            notices.append(
                f"worker {worker.get('index')} died {died - w.started:.1f} s into the run ({worker.get('how')}) "
                f"after sending {worker.get('records', 0):,} requests; the run went on without it"
            )
    pushes = (meta.get("live_metrics") or {}).get("pushes") or {}
    if pushes.get("failed"):
        notices.append(
            f"{pushes['failed']:,} push(es) to --pushgateway {pushes.get('url')} failed during the run "
            f"({pushes.get('last_error', '')}): the gateway's figures may lag the run's"
        )
    for exc in meta.get("scenario_exceptions") or []:
        notices.append(f"the scenario raised {exc['count']:,} exception(s) outside requests: {exc['error']}")
    unrecorded = w.in_flight_unrecorded
    if unrecorded:
        notices.append(
            f"{unrecorded:,} request(s) in flight at the stop were not recorded: Locust cut them off "
            "when the load stopped, so the slowest requests are the likeliest to be missing"
        )
    return notices


def window_notices(w: RunSpan, total: int, ok: int) -> list[str]:
    """An empty window (``total`` requests in it), or one in which every request failed (``ok`` 0)."""
    notices = []
    if w.duration_s == 0.0 and w.meta.get("ended_unix_s") is not None:
        notices.append(f"the warmup ({w.warmup_s:g} s) covers the whole run: no requests were measured")
    if total == 0 and w.duration_s > 0:
        notices.append("no requests were recorded in the measured window")
    elif total and ok == 0:
        notices.append("every request failed: latency figures are empty")
    return notices


def run_section(w: RunSpan) -> RunSection:
    meta = w.meta
    run: RunSection = {
        "id": meta.get("run_id"),
        "target": meta.get("target"),
        "scenario": meta.get("scenario"),
        "status": meta.get("status", rundir.STATUS_RUNNING),
        "started_at": rundir.iso_utc(w.started),
        "ended_at": rundir.iso_utc(w.ended),
        "started_unix_s": w.started,
        "ended_unix_s": round(w.ended, 6),
        "duration_s": round(w.ended - w.started, 3),
        "users": w.settings.get("users"),
        "warmup_s": w.warmup_s,
    }
    if meta.get("workers"):
        run["workers"] = len(meta["workers"])
        run["workers_died"] = sum(1 for x in meta["workers"] if x.get("died_at_unix_s") is not None)
    return run


def load_section(w: RunSpan) -> LoadSection:
    """How the load was offered: the run's load model in words and numbers."""
    load, settings = w.load, w.settings
    if w.load_model == "open":
        what = (
            f"open loop: {load.get('arrival', '?')} arrivals"
            + (f" at {load['rate']:g} requests/s" if isinstance(load.get("rate"), int | float) else "")
            + (" replaying a trace" if load.get("trace") else "")
            + f", at most {load.get('max_inflight', '?')} in flight; latency counts from each request's due time"
        )
    else:
        what = f"closed loop: {settings.get('users', '?')} users, each sending its next request when the previous one ends"
    if settings.get("stages"):
        what += f"; load shape of {len(settings['stages'])} stage(s)"
    return {"model": w.load_model, "description": what, **{k: v for k, v in load.items() if k != "model"}}


def window_section(w: RunSpan) -> WindowSection:
    reason = f"--warmup {w.warmup_s:g} s excluded, then until the load stopped"
    if w.settings.get("warmup_auto"):
        reason = "--warmup auto: " + reason
    return {
        "start_unix_s": round(w.start, 6),
        "end_unix_s": round(w.ended, 6),
        "duration_s": round(w.duration_s, 3),
        "reason": reason,
    }
