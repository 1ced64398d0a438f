"""The sampler's latest figures as gauges of the live endpoint (``--metrics-port``).

The sampler runs in a process of its own and appends one JSON object a sample to the run's
``samples.jsonl`` (`loadbench.sample.sampler`); a scrape reads the file's last complete lines
(never more than `TAIL_BYTES` of it), the newest figure of each key, so the endpoint shows what
the run directory records, on the same clock, without a channel of its own between the two
processes.

A sample key ``[<host label>/]<group>.<metric>`` becomes the gauge ``loadbench_<group>_<metric>``
with the label ``host`` (the ``--agent``'s host label, "" for this machine's figures) and, for
a GPU, ``gpu`` (its index): ``host.cpu_percent`` is ``loadbench_host_cpu_percent{host=""}``,
``gpu0.util_percent`` is ``loadbench_gpu_util_percent{host="",gpu="0"}``, a core's
``host.cpu1_percent`` is ``loadbench_host_cpu_core_percent{host="",cpu="1"}``. The groups are
``host``, ``server`` (the model server's process tree), ``generator`` (loadbench's own
processes) and ``gpu<i>``; the ``prom`` group is left out (those are the server's own metrics,
which a Prometheus scrapes from the server itself). A value that is not a finite number (a
figure the platform cannot give is ``null``) is left out. A sample older than `STALE_S` (the
sampler stopped or hangs) gives no gauge: a dashboard shows a gap, not a frozen figure.

Locust-free: the unit tests import it in the pytest process.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

TAIL_BYTES = 256 * 1024  # of samples.jsonl read by a scrape: a sample line is some 1-20 KB
STALE_S = 30.0
MERGE_S = 5.0  # how far back the last lines are merged, key by key
_KEY = re.compile(
    r"^(?:(?P<host>[^/]+)/)?(?P<group>host|server|generator|gpu(?P<gpu>\d+))\.(?P<metric>[A-Za-z0-9_]+)$"
)
_CORE = re.compile(r"^cpu(\d+)_percent$")


def last_sample(path: Path) -> dict[str, Any] | None:
    """The newest figure of each key among the last complete lines of ``samples.jsonl`` that are
    at most `MERGE_S` older than the last one, as one object (``unix_s`` the last line's); None
    when there is no complete line yet (a line still being written has no newline). Merged,
    because the sampler takes its slower groups (host memory, disks) on every other sample or
    so: the last line alone would make such a gauge come and go between scrapes."""
    try:
        with path.open("rb") as file:
            size = file.seek(0, 2)
            file.seek(max(0, size - TAIL_BYTES))
            tail = file.read()
    except OSError:
        return None
    merged: dict[str, Any] = {}
    newest: float | None = None
    for line in reversed(tail.split(b"\n")[:-1]):
        try:
            sample = json.loads(line)
        except ValueError:  # the first line of the tail may be cut
            continue
        if not isinstance(sample, dict):
            continue
        taken = sample.get("unix_s")
        if not isinstance(taken, int | float):
            continue
        if newest is None:
            newest = float(taken)
        elif taken < newest - MERGE_S:
            break
        for key, value in sample.items():
            merged.setdefault(key, value)
    return merged or None


def sample_families(sample: dict[str, Any]) -> list[GaugeMetricFamily]:
    """One sample's figures as gauge families (module docstring)."""
    families: dict[str, GaugeMetricFamily] = {}
    for key, value in sample.items():
        match = _KEY.match(key)
        if match is None or isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if not math.isfinite(value):
            continue
        group, metric = ("gpu" if match["gpu"] is not None else match["group"]), match["metric"]
        labels = {"host": match["host"] or ""}
        if match["gpu"] is not None:
            labels["gpu"] = match["gpu"]
        core = _CORE.match(metric)
        if group == "host" and core is not None:
            metric, labels["cpu"] = "cpu_core_percent", core[1]
        name = f"loadbench_{group}_{metric}"
        family = families.get(name)
        if family is None:
            what = f"The sampler's {group} {metric} (samples.jsonl, docs/run-format.md)"
            family = families[name] = GaugeMetricFamily(name, what, labels=list(labels))
        family.add_metric(list(labels.values()), float(value))
    return list(families.values())


class SampleGauges(Collector):
    """The registry's collector of the sampler's latest sample (the run's ``samples.jsonl``)."""

    def __init__(self, path: Path, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self.clock = clock

    def collect(self) -> Iterator[GaugeMetricFamily]:
        sample = last_sample(self.path)
        if sample is None:
            return
        taken = sample.get("unix_s")
        if not isinstance(taken, int | float) or self.clock() - taken > STALE_S:
            return
        yield from sample_families(sample)
