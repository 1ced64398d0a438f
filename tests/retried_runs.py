"""Runs with ``--retries`` for the bounded analyzer's, the report's and compare's tests: attempts
of requests, some retried, as a run's records hold them (`retried`)."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from bounded_runs import STARTED, open_load, records

from loadbench.record.records import RequestRecord

RETRIES = {"max": 3, "on": ["5xx", "connect", "timeout"], "backoff_ms": [50, 2000], "budget": 0.2}
OPEN_LOAD = open_load(100.0)
TARGETS = ("http://a:8000", "http://b:8000")
BUSY = (503, "HTTPError: 503 Server Error: busy", "model is overloaded, try later", "2")
REFUSED = (0, "ConnectionRefusedError: [Errno 111] Connection refused", "", "")
TIMEOUT = (0, "TimeoutError: timed out", "", "")


def _attempt(base: RequestRecord, start: float, n: int, rid: str, failure: tuple[int, str, str, str] | None,
             **kw: Any) -> RequestRecord:  # fmt: skip
    status, error, message, retry_after = failure or (200, "", "", "")
    return dataclasses.replace(
        base, start_unix_s=round(start, 6), ok=failure is None, status=status, error=error,
        server_message=message, retry_after=retry_after, response_bytes=0 if failure else 117,
        attempt=n, request_id=rid, **kw,
    )  # fmt: skip


def retried(n: int, seed: int, open_loop: bool = False, routed: bool = False) -> list[RequestRecord]:
    """A run with ``--retries``: every request has an id; about one in six failed first (503 with
    Retry-After, refused, timed out) and was retried after a backoff, up to three times, most
    recovering, some exhausted; a few requests have no id (a task of their own), one lost its
    attempt numbers, one has them against the order it sent them in. The records are written in the order the attempts ended, so a request's
    attempts lie apart in the file. Open loop: first attempts sent a little after their due time,
    retries carrying it too (which the analyzer must ignore for them). ``routed``: attempts fail
    over between two targets and name the replica that answered."""
    rng = np.random.default_rng(seed)
    out: list[RequestRecord] = []
    for i, r in enumerate(records(n, seed=seed)):
        rid = "" if i % 211 == 0 else f"q{i:05d}"
        due = round(r.start_unix_s - float(rng.choice([0.0002, 0.001, 0.03])), 6) if open_loop else None
        extra: dict[str, Any] = {"intended_unix_s": due}
        tries = int(rng.choice([1, 2, 3, 4], p=[0.83, 0.11, 0.04, 0.02])) if rid else 1
        exhausted = tries > 1 and rng.random() < 0.3
        start = r.start_unix_s
        if i == 7:  # a request due before the window whose retry lies in it: counted with its request
            start, tries, exhausted = STARTED + 4.99, 2, False
        if i in (11, 13):
            tries, exhausted = 3, False
        for k in range(1, tries + 1):
            last = k == tries
            failure = None if last and not exhausted else [BUSY, REFUSED, TIMEOUT][int(rng.integers(0, 3))]
            latency = round(float(rng.lognormal(np.log(8.0), 0.5)), 3)
            if routed:
                extra["target"] = TARGETS[(i + k) % 2] if i % 53 else ""
                extra["replica"] = "" if failure in (REFUSED, TIMEOUT) else ("r1", "r2")[(i * k) % 2]
            # i == 11: no attempt numbers, ordered by start; i == 13: numbered against the starts.
            number = {11: 0, 13: tries + 1 - k}.get(i, k)
            out.append(_attempt(r, start, number, rid, failure, latency_ms=latency, **extra))
            start = round(start + latency / 1000.0 + float(rng.uniform(0.05, 0.4)), 6)
    ended = [r.start_unix_s + r.latency_ms / 1000.0 for r in out]
    return [out[j] for j in np.argsort(ended, kind="stable")]
