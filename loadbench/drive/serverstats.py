"""``--server-stats URL``: Triton's own counters read before and after the measured window,
written to the run directory's ``server_stats.json`` (docs/run-format.md).

The "before" reading is taken when the warmup ends (at once when there is none: before the
first request), the "after" one when the load has stopped and its last answers are in, so the
delta counts the window's requests. A statistics URL that the server refuses (a 4xx, as
nvidia-pytriton restricts it) falls back to the metrics port of the same host
(`triton_stats.metrics_url`). What the two readings mean per request is the analyzer's
(`loadbench.analyze.processing`); the readers are `loadbench.protocols.triton_stats`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import gevent
import httpx

from loadbench.protocols import triton_stats
from loadbench.record import rundir

POLL_S = 0.05  # how often the waiting reader looks whether the warmup is over


class ServerStatsWatch:
    """The two readings of one run; `start` when the run directory exists, `finish` once the
    load has stopped (writes ``server_stats.json``)."""

    def __init__(self, url: str, target: str, run_dir: Path, secrets: list[str] | None = None) -> None:
        self.url = url
        # The model the target names (/v2/models/NAME/infer), or the one the stats URL names.
        self.model = triton_stats.model_of(url) or triton_stats.model_of(target)
        self.run_dir = run_dir
        self.secrets = list(secrets or [])
        self.client = httpx.Client(trust_env=False)
        self.before: dict[str, Any] | None = None
        self.tried: list[dict[str, Any]] = []
        self.waiter: gevent.Greenlet | None = None

    def read(self) -> dict[str, Any]:
        reading = triton_stats.snapshot(self.client, self.url, self.model, self.secrets)
        if "error" in reading and triton_stats.restricted(reading) and "/stats" in self.url:
            self.tried.append(reading)
            self.url = triton_stats.metrics_url(self.url)
            reading = triton_stats.snapshot(self.client, self.url, self.model, self.secrets)
        return reading

    def start(self, meta: dict[str, Any], warmup_s: float) -> None:
        """Read now without a warmup, else once ``meta["started_unix_s"]`` + warmup has passed
        (the driver sets the start when the users start; it is read again on every poll)."""
        if warmup_s <= 0:
            self.before = self.read()
            return

        def wait() -> None:
            while time.time() < float(meta["started_unix_s"]) + warmup_s:
                gevent.sleep(POLL_S)
            self.before = self.read()

        self.waiter = gevent.spawn(wait)

    def finish(self) -> None:
        """The "after" reading and ``server_stats.json``; the warmup's reader is stopped if the
        load ended before the warmup did."""
        if self.waiter is not None and not self.waiter.dead:
            self.waiter.kill(block=False)
        after = self.read() if self.before is not None else None
        self.client.close()
        delta = None
        readings = (self.before or {}, after or {})
        if all("counters" in r for r in readings) and readings[0].get("source") == readings[1].get("source"):
            delta = triton_stats.per_request(readings[0]["counters"], readings[1]["counters"])
        rundir.write_json(
            self.run_dir / triton_stats.SERVER_STATS_FILE,
            {
                "model": self.model,
                "source": (after or {}).get("source"),
                "before": self.before,
                "after": after,
                "per_request": delta,
                "refused": self.tried,
            },
        )
