"""The routing benchmark's locustfile: a `ModelUser` that GETs ``/`` back to back.

Used by ``benchmarks/routing_overhead.py``:

    loadbench run --target URL [--target URL2 --balance POLICY] [--retries N] \\
        --scenario benchmarks/locustfile_model_get.py -u 32 -d 10s --warmup 0s --no-preflight

Unlike ``locustfile_get.py`` (a bare FastHttpUser) its client is loadbench's `DeadlineSession`,
which hands each request to a `loadbench.scenario.routing.Router` when the run has several
targets or ``--retries``: the path whose cost the benchmark measures.

When ``LOADBENCH_BENCH_PHASE_FILE`` names a file, the wall-clock time and the process's CPU
time at ``test_start`` and ``test_stopping`` are appended to it (``start <unix_s> <cpu_s>`` /
``stopping <unix_s> <cpu_s>``), as ``locustfile_get.py`` does: two events per run, no
per-request cost.
"""

from __future__ import annotations

import os
import time
from typing import Any

from locust import events, task

from loadbench.scenario.helpers import ModelUser

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


class ModelGetUser(ModelUser):
    @task
    def get(self) -> None:
        self.client.get("/", name="GET /")
