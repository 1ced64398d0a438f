"""The live figures of loadbench's tab in Locust's web UI, apart from Locust itself.

Consumes request latencies and per-request LLM timings as the plugin (`loadbench.ui.plugin`) hands
them over, and the run directory's newest resource samples; produces the tab's rows and the
status JSON's parts: exact percentiles (numpy over every value so far, never Locust's rounded
ones), TTFT / ITL, resources, and each finished run's headline figures. No Locust here.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from loadbench.analyze import stats
from loadbench.record import rundir
from loadbench.report.fmt import DASH, format_bytes, format_number, format_percent

MAX_VALUES = 20_000_000  # per metric, 160 MB of float64: beyond it the live percentiles say "first N"
FRESH_VALUES = 1_000_000  # up to this many values a summary is recomputed on every poll
MERGED_SAMPLES = 10  # sample lines whose newest values the tab shows together
SAMPLES_TAIL_BYTES = 64 * 1024  # the last samples are in the file's last few KiB
_GPU_KEY = re.compile(r"(gpu\d+)\.")
PERCENTILES = (("p50", 0.5), ("p90", 0.9), ("p95", 0.95), ("p99", 0.99), ("p999", 0.999))
LABELS = {"p999": "p99.9"}
# The LLM rows beside the latency rows: (summary key, label, percentiles shown).
LLM_ROWS = (("ttft_ms", "TTFT", ("p50", "p90", "p99")), ("itl_ms", "ITL", ("p50", "p99")))


class ExactValues:
    """One metric's exact values in ms, in arrival order; at most ``cap`` kept (then "first N")."""

    def __init__(self, cap: int = MAX_VALUES) -> None:
        self.values = array("d")
        self.cap = cap
        self.dropped = 0  # beyond the cap
        # Count -1: the first call computes it.
        self._cache: tuple[int, float, stats.LatencySummary] = (-1, 0.0, stats.latency_summary([]))

    def __len__(self) -> int:
        return len(self.values)

    def add(self, value: float) -> None:
        if len(self.values) < self.cap:
            self.values.append(value)
        else:
            self.dropped += 1

    def extend(self, values: list[float]) -> None:
        room = max(0, self.cap - len(self.values))
        self.values.extend(values[:room])
        self.dropped += max(0, len(values) - room)

    def summary(self) -> stats.LatencySummary:
        """`stats.latency_summary` of the values so far, recomputed only when they changed; past
        `FRESH_VALUES` values at most once a second (each summary then costs tens of ms, and the
        tab, the panel and the live page all poll)."""
        count, at, _ = self._cache
        now = time.monotonic()
        if count != len(self.values) and (len(self.values) <= FRESH_VALUES or now - at >= 1.0):
            values = np.frombuffer(self.values, dtype=np.float64) if self.values else np.array([])
            self._cache = (len(self.values), now, stats.latency_summary(values))
        return self._cache[2]


def _gaps(value: Any) -> tuple[list[float], int]:
    """A request's inter-token gaps (a list, or the space-separated text of a record) and how many
    were left out for not being numbers >= 0, as the analyzer leaves them out."""
    raw = value.split() if isinstance(value, str) else value if isinstance(value, list | tuple) else []
    gaps = []
    for g in raw:
        try:
            ms = float(g)
        except (TypeError, ValueError):
            continue
        if math.isfinite(ms) and ms >= 0:
            gaps.append(ms)
    return gaps, len(raw) - len(gaps)


class ExactLatencies:
    """The current run's exact values in the measured window, as the analyzer will count them:
    the latency of every successful request, and for successful streams (LLM scenarios) the
    time to first token and every inter-token gap (from the request context's
    ``context["loadbench"]`` ``ttft_ms`` / ``itl_ms``, `loadbench.record.records.EXTRA_FIELDS`)."""

    def __init__(self, window_start: float, timeout_ms: float = math.inf) -> None:
        self.window_start = window_start
        self.timeout_ms = timeout_ms  # a slower answer is an error (kind timeout), as the recorder records it
        self.latency = ExactValues()
        self.ttft = ExactValues()  # one per successful stream
        self.itl = ExactValues()  # every gap of every successful stream, pooled
        self.requests = 0  # in the window, ok or not
        self.errors = 0
        self.bad_gaps = 0  # not numbers >= 0: left out

    @property
    def values(self) -> array[float]:
        return self.latency.values

    @property
    def dropped(self) -> int:
        return self.latency.dropped

    def add(
        self,
        response_time: float,
        start_time: float | None,
        failed: bool,
        extras: dict[str, Any] | None = None,
    ) -> None:
        if start_time is not None and start_time < self.window_start:
            return  # warmup: excluded, as the analyzer does
        self.requests += 1
        if failed or response_time > self.timeout_ms:
            self.errors += 1
            return
        self.latency.add(response_time)
        ttft = extras.get("ttft_ms") if extras else None
        if not isinstance(ttft, int | float) or isinstance(ttft, bool) or not math.isfinite(ttft):
            return  # not streamed (or no content): no TTFT and no gaps, as in the analyzer
        assert extras is not None
        self.ttft.add(float(ttft))
        gaps, bad = _gaps(extras.get("itl_ms"))
        self.itl.extend(gaps)
        self.bad_gaps += bad

    def summary(self) -> stats.LatencySummary:
        """`stats.latency_summary` of the latencies so far."""
        return self.latency.summary()


@dataclass
class SessionRun:
    """A run directory begun in this UI session."""

    run_dir: Path
    started_unix_s: float
    target: str
    users: int
    state: str = "running"  # running -> analyzing -> done | failed
    status: str | None = None  # meta.json status once finished
    summary: dict[str, Any] = field(default_factory=dict)
    problem: str | None = None

    @property
    def id(self) -> str:
        return self.run_dir.name

    def json(self) -> dict[str, Any]:
        report = self.run_dir / rundir.REPORT
        return {
            "id": self.id,
            "dir": str(self.run_dir),
            "state": self.state,
            "status": self.status,
            "started_at": rundir.iso_utc(self.started_unix_s),
            "target": self.target,
            "users": self.users,
            "report": f"/loadbench/runs/{self.id}/report.html"
            if self.state == "done" and report.exists()
            else None,
            "summary": self.summary,
            "problem": self.problem,
        }


def read_last_sample(path: Path) -> dict[str, Any] | None:
    """The newest value of every local key over the last few samples of a ``samples.jsonl``
    (agents' keys hold a ``/``), or None. Not every sample line carries every key (the sampler
    reads some sources less often), so the newest line alone would show gaps."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - SAMPLES_TAIL_BYTES))
            tail = f.read()
    except OSError:
        return None
    lines = tail.split(b"\n")[1:-1] if size > SAMPLES_TAIL_BYTES else tail.split(b"\n")[:-1]
    merged: dict[str, Any] = {}
    for line in lines[-MERGED_SAMPLES:]:
        try:
            sample = json.loads(line)
        except ValueError:
            continue
        local = isinstance(sample, dict) and not any("/" in key for key in sample)
        if local and isinstance(sample.get("unix_s"), int | float):
            merged.update({k: v for k, v in sample.items() if v is not None})
    return merged or None


def _with_unit(text: str, unit: str) -> str:
    return text if text == DASH else f"{text} {unit}"


def resource_rows(sample: dict[str, Any] | None, notices: list[str]) -> list[dict[str, str]]:
    """Human rows (``metric``, ``value``) for the newest sample: host, server, generator, GPUs."""
    if sample is None:
        return [{"metric": "resources", "value": "no samples yet" if not notices else "; ".join(notices)}]

    def used(prefix: str) -> str:
        used_, total = sample.get(f"{prefix}mem_used_bytes"), sample.get(f"{prefix}mem_total_bytes")
        return f"{format_bytes(used_)} of {format_bytes(total)}" if total else format_bytes(used_)

    rows = [
        (
            "sampled at",
            time.strftime("%H:%M:%S", time.localtime(sample["unix_s"]))
            + f".{int(sample['unix_s'] * 10) % 10}",
        ),
        ("host CPU", format_percent(sample.get("host.cpu_percent"))),
        ("host memory", used("host.")),
        ("host load (1 min)", format_number(sample.get("host.load1"), 2)),
    ]
    if "server.cpu_percent" in sample:
        rows += [
            ("server CPU", format_percent(sample.get("server.cpu_percent"))),
            ("server RSS", format_bytes(sample.get("server.rss_bytes"))),
            ("server threads", format_number(sample.get("server.threads"))),
        ]
    if "generator.cpu_percent" in sample:
        rows.append(("load generator CPU", format_percent(sample.get("generator.cpu_percent"))))
    # Any gpu<i>.* key makes a GPU: some devices (MIG slices) report memory but no utilization.
    gpus = {m.group(1) for m in (_GPU_KEY.match(k) for k in sample) if m}
    for gpu in sorted(gpus, key=lambda g: int(g[3:])):  # gpu2 before gpu10
        rows += [
            (f"{gpu} utilization", format_percent(sample.get(f"{gpu}.util_percent"))),
            (f"{gpu} memory", used(f"{gpu}.")),
            (f"{gpu} server memory", format_bytes(sample.get(f"{gpu}.server_mem_bytes"))),
            (f"{gpu} power", _with_unit(format_number(sample.get(f"{gpu}.power_w")), "W")),
            (f"{gpu} temperature", _with_unit(format_number(sample.get(f"{gpu}.temp_c")), "°C")),
        ]
    out = [{"metric": name, "value": value} for name, value in rows]
    out += [{"metric": "note", "value": n} for n in notices]
    return out


def llm_status(lat: ExactLatencies) -> dict[str, Any] | None:
    """The live TTFT / ITL figures of the current run, or None before its first measured stream."""
    if not len(lat.ttft):
        return None
    summaries = {"ttft_ms": lat.ttft.summary(), "itl_ms": lat.itl.summary()}
    return {
        "streams": len(lat.ttft),
        "gaps": len(lat.itl),
        "not_kept": lat.ttft.dropped + lat.itl.dropped,
        "bad_gaps": lat.bad_gaps,
        **summaries,
        "rows": [
            {"key": f"{key}.{p}", "label": f"{label} {p}", "exact_ms": summaries[key].get(p)}
            for key, label, shown in LLM_ROWS
            for p in shown
        ],
    }


def run_summary(summary: dict[str, Any]) -> dict[str, Any]:
    """A finished run's headline figures for the session's run list, from its ``summary.json``:
    requests, error rate, throughput, latency p50/p99, TTFT p50/p99 (LLM runs) and its SLO gates."""
    lat, req = summary.get("latency_ms") or {}, summary.get("requests") or {}
    out: dict[str, Any] = {
        "requests": req.get("total"),
        "error_rate": req.get("error_rate"),
        "throughput_rps": summary.get("throughput_rps"),
        **{k: lat.get(k) for k in ("p50", "p99")},
    }
    ttft = summary.get("ttft_ms") or {}
    if ttft:
        out["ttft_p50"], out["ttft_p99"] = ttft.get("p50"), ttft.get("p99")
    checks = (summary.get("slo") or {}).get("checks") or []
    if checks:
        valid = (summary.get("validity") or {"valid": True}).get("valid", True)
        texts = []
        for check in checks:
            value = check.get("value")
            if check.get("per_request"):
                shown = "not measured" if value is None else f"met by {value:.1%} of requests"
                texts.append(f"INFO {check['expr']} ({shown})")
            else:
                shown = "not measured" if value is None else f"measured {value:g}"
                texts.append(f"{'PASS' if check.get('passed') else 'FAIL'} {check['expr']} ({shown})")
        out["slo"] = {
            # As `loadbench run`'s exit code: failed when a gate failed or the measurement is INVALID.
            "passed": bool(summary["slo"].get("passed")) and bool(valid),
            "valid": bool(valid),
            "checks": [{k: c.get(k) for k in ("expr", "passed", "value", "per_request")} for c in checks],
            "text": ("" if valid else "INVALID measurement; ") + "; ".join(texts),
        }
    return out
