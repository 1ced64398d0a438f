"""The benchmark locustfile: each user GETs ``/`` back to back (no think time).

Used unchanged by both sides of ``benchmarks/recording_overhead.py``:

    locust -f benchmarks/locustfile_get.py --headless -u 32 -r 32 -t 10s --host URL
    loadbench run --target URL --scenario benchmarks/locustfile_get.py -u 32 -d 10s --warmup 0s

When ``LOADBENCH_BENCH_PHASE_FILE`` names a file, the wall-clock time and the process's CPU
time at ``test_start`` and ``test_stopping`` are appended to it (``start <unix_s> <cpu_s>`` /
``stopping <unix_s> <cpu_s>``): the load phase, measured the same way under both tools. Two
events per run: no per-request cost.
"""

from __future__ import annotations

import os
import time
from typing import Any

from locust import FastHttpUser, constant, events, task

PHASE_FILE = os.environ.get("LOADBENCH_BENCH_PHASE_FILE")


def _mark(label: str) -> None:
    if PHASE_FILE:
        with open(PHASE_FILE, "a", encoding="utf-8") as f:
            f.write(f"{label} {time.time():.6f} {time.process_time():.6f}\n")


@events.test_start.add_listener
def _on_test_start(**_: Any) -> None:
    _mark("start")


@events.test_stopping.add_listener
def _on_test_stopping(**_: Any) -> None:
    _mark("stopping")


class GetUser(FastHttpUser):
    wait_time = constant(0)

    @task
    def get(self) -> None:
        self.client.get("/")
