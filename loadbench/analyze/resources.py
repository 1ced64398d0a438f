"""Resource metrics over the measured window: resource samples (+ requests) -> ``summary["resources"]``.

Pure: consumes the wide sample frame of `series.read_samples`, the sampler's static facts
(``sampler.json``), the measured window and the request records; produces plain dicts. No I/O.
Definitions: ``docs/metrics.md`` (Resources).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Any, NotRequired, Required, TypedDict, cast
from urllib.parse import urlsplit

import numpy as np
import pandas as pd

from loadbench.analyze import stats

SATURATED_PERCENT = 90.0  # one core, per generator process
SATURATED_SHARE = 0.2  # of the window's samples above SATURATED_PERCENT
# This host's CPU, % of all its cores, time-weighted mean over the window: at or above it, the
# generator and a server beside it queue for cores (docs/metrics.md, Resources: host_cpu).
HOST_SATURATED_PERCENT = 90.0
MIB = 1024 * 1024
_GPU_KEY = re.compile(r"^(?:(?P<label>[^/{]+)/)?gpu(?P<index>\d+)\.")
# A remote agent's keys: "<host:port>/<group>.<metric>". Prometheus keys may hold slashes in
# label values ("prom.x{path=\"/v1\"}"), so the group after the slash must be one of ours.
_REMOTE_KEY = re.compile(r"^(?P<label>[^/{]+)/(?:host|server|generator|gpu\d+)\.")
CORRELATED = ("host.cpu_percent", "server.cpu_percent", "server.rss_bytes", "generator.cpu_percent")


def spread(values: pd.Series | np.ndarray) -> dict[str, float | None]:
    """mean / p95 / max of the non-missing values; all None when there are none."""
    data = pd.to_numeric(pd.Series(values), errors="coerce").dropna().to_numpy(dtype=np.float64)
    if data.size == 0:
        return {"mean": None, "p95": None, "max": None}
    return {
        "mean": round(float(data.mean()), 3),
        "p95": round(float(np.percentile(data, 95)), 3),
        "max": round(float(data.max()), 3),
    }


def _col(frame: pd.DataFrame, key: str) -> pd.Series:
    return frame[key] if key in frame else pd.Series([], dtype="float64")


def _group(frame: pd.DataFrame, prefix: str, metrics: tuple[str, ...]) -> dict[str, Any]:
    return {m: spread(_col(frame, f"{prefix}.{m}")) for m in metrics if f"{prefix}.{m}" in frame}


def window_energy_j(times: np.ndarray, energy_j: np.ndarray, power_w: np.ndarray) -> tuple[float | None, str]:
    """Energy over the samples: the NVML counter's increase when present, else power integrated
    over time (trapezoid rule). Returns (joules, method)."""
    counter = ~np.isnan(energy_j)
    if counter.sum() >= 2:
        e, t = energy_j[counter], times[counter]
        return round(float(e[np.argmax(t)] - e[np.argmin(t)]), 3), "NVML total energy counter"
    have = ~np.isnan(power_w)
    if have.sum() >= 2:
        t, p = times[have], power_w[have]
        return round(float(np.sum((p[1:] + p[:-1]) / 2 * np.diff(t))), 3), "power integrated over time"
    return None, "no power readings"


def gpu_summaries(
    frame: pd.DataFrame, label: str | None, inventory: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Per-GPU figures for the GPUs of one host (``label`` None: this machine)."""
    indices = sorted(
        {int(m["index"]) for key in frame.columns if (m := _GPU_KEY.match(key)) and m["label"] == label}
    )
    names = {int(g.get("index", -1)): g.get("name") for g in inventory}
    times = frame["unix_s"].to_numpy(dtype=np.float64)
    out = []
    for i in indices:
        p = f"{label}/gpu{i}" if label else f"gpu{i}"

        def col(metric: str, p: str = p) -> np.ndarray:
            return (
                _col(frame, f"{p}.{metric}").to_numpy(dtype=np.float64)
                if f"{p}.{metric}" in frame
                else np.full(len(frame), np.nan)
            )

        util = spread(col("util_percent"))
        mem = spread(col("mem_used_bytes"))
        server_mem = spread(col("server_mem_bytes"))
        power = spread(col("power_w"))
        energy, method = window_energy_j(times, col("energy_j"), col("power_w"))
        total = spread(col("mem_total_bytes"))["max"]
        out.append(
            {
                "index": i,
                "name": names.get(i),
                "util_mean": util["mean"],
                "util_p95": util["p95"],
                "util_max": util["max"],
                # NVML's utilization is the share of time a kernel ran, so its mean is the busy share.
                "busy_fraction": None if util["mean"] is None else round(util["mean"] / 100.0, 4),
                "mem_util_mean": spread(col("mem_util_percent"))["mean"],
                "mem_used_max_mib": None if mem["max"] is None else round(mem["max"] / MIB, 1),
                "mem_used_mean_mib": None if mem["mean"] is None else round(mem["mean"] / MIB, 1),
                "mem_total_mib": None if total is None else round(total / MIB, 1),
                "server_mem_max_mib": None
                if server_mem["max"] is None
                else round(server_mem["max"] / MIB, 1),
                "power_mean_w": power["mean"],
                "power_max_w": power["max"],
                "power_limit_w": spread(col("power_limit_w"))["max"],
                "temp_max_c": spread(col("temp_c"))["max"],
                "sm_clock_mean_mhz": spread(col("sm_clock_mhz"))["mean"],
                "pcie_tx_mean_bytes_per_s": spread(col("pcie_tx_bytes_per_s"))["mean"],
                "pcie_rx_mean_bytes_per_s": spread(col("pcie_rx_bytes_per_s"))["mean"],
                "energy_j": energy,
                "energy_method": method,
            }
        )
    return out


def host_summary(frame: pd.DataFrame, prefix: str = "host") -> dict[str, Any]:
    return _group(
        frame,
        prefix,
        (
            "cpu_percent", "load1", "mem_used_bytes", "mem_available_bytes", "swap_used_bytes",
            "net_sent_bytes_per_s", "net_recv_bytes_per_s", "disk_read_bytes_per_s", "disk_write_bytes_per_s",
        ),
    )  # fmt: skip


def process_summary(frame: pd.DataFrame, prefix: str = "server") -> dict[str, Any]:
    return _group(frame, prefix, ("cpu_percent", "rss_bytes", "threads", "open_fds", "processes"))


def ok_latency_by_second(requests: pd.DataFrame, window_start: float) -> pd.Series:
    """Mean latency of the successful ``requests`` per whole second since ``window_start`` (the
    index: seconds as floats, as ``np.floor`` gives them)."""
    ok = requests["ok"].to_numpy().astype(bool)
    # Columns, not a copy of the frame: the records may number millions.
    ok_latency = pd.Series(requests["latency_ms"].to_numpy()[ok])
    return ok_latency.groupby(np.floor(requests["start_unix_s"].to_numpy()[ok] - window_start)).mean()


def correlations(frame: pd.DataFrame, latency: pd.Series, window_start: float) -> dict[str, float]:
    """Pearson r between per-second mean latency (`ok_latency_by_second`) and the per-second mean
    of each resource."""
    if latency.empty or frame.empty:
        return {}
    seconds = np.floor(frame["unix_s"].to_numpy() - window_start)
    keys = [k for k in CORRELATED if k in frame] + [
        k
        for k in frame.columns
        if _GPU_KEY.match(k) and k.endswith((".util_percent", ".mem_used_bytes", ".power_w"))
    ]
    out = {}
    for key in keys:
        resource = frame[key].groupby(seconds).mean()
        both = pd.concat([latency, resource], axis=1, join="inner").dropna()
        if len(both) >= 5 and both.iloc[:, 0].std() > 0 and both.iloc[:, 1].std() > 0:
            out[key] = round(float(np.corrcoef(both.iloc[:, 0], both.iloc[:, 1])[0, 1]), 3)
    return out


def collection_notices(final: dict[str, Any]) -> list[str]:
    """One line per scrape or agent that failed, matched nothing or lost samples.

    ``final`` is ``sampler.json``'s ``final`` (written when the sampler ends); its URLs and
    errors are masked already. Without these lines a URL that never answered would look like a
    server that has no metrics.
    """
    out: list[str] = []
    for scrape in final.get("scrapes") or []:
        url, attempts = scrape.get("url"), int(scrape.get("scrapes") or 0)
        errors = int(scrape.get("errors") or 0)
        if errors:
            share = f"all {attempts:,}" if errors >= attempts else f"{errors:,} of {attempts:,}"
            out.append(f"--scrape {url}: {share} scrapes failed, last: {scrape.get('last_error')}")
        if attempts > errors and not scrape.get("series_max"):
            match = scrape.get("match")
            what = f"no series matched --scrape-match {match!r}" if match else "it served no series"
            out.append(f"--scrape {url}: {what} in {attempts - errors:,} successful scrape(s)")
    for agent in final.get("agents") or []:
        url = agent.get("url")
        if agent.get("errors"):
            out.append(
                f"--agent {url}: {int(agent['errors']):,} failed request(s) to the agent "
                f"({int(agent.get('pulled') or 0):,} samples pulled), last: {agent.get('last_error')}"
            )
        if agent.get("dropped"):
            out.append(
                f"--agent {url}: {int(agent['dropped']):,} sample(s) lost: the agent's buffer overflowed "
                "before they were pulled"
            )
    return out


def _saturation_notice(shares: dict[str, float]) -> str:
    """The one line about saturated generators (``shares``: where -> share of its samples)."""
    where = "; ".join(
        f"{share:.0%} of the samples" if label == "" else f"{share:.0%} of the samples of {label}"
        for label, share in shares.items()
    )
    return (
        f"the load generator used more than {SATURATED_PERCENT:.0f}% of a core in {where}: "
        "latency and throughput may be limited by the generator, not the server (use more workers or fewer users)"
    )


class GeneratorSection(TypedDict):
    """The load generator's CPU: ``summary["resources"]["generator"]`` (and a remote worker's)."""

    cpu_max_percent: float | None
    cpu_mean_percent: float | None
    saturated_share: float
    saturated: bool
    saturated_on: NotRequired[list[str]]


class HostCpuSection(TypedDict):
    """This host's CPU against its limit: ``summary["resources"]["host_cpu"]`` (`host_cpu_section`)."""

    mean_percent: float | None
    limit_percent: float
    at_limit: bool
    cores: int | None


class EnergySection(TypedDict):
    j_total: float | None
    j_per_request: float | None
    j_per_output_token: float | None


class ResourcesSection(TypedDict, total=False):
    """``summary["resources"]``; a run without samples has only ``sampled``, ``samples``, ``notices``."""

    sampled: Required[bool]
    interval_s: float | None
    samples: Required[int]
    host: dict[str, Any]
    host_cpu: HostCpuSection
    server_process: dict[str, Any] | None
    gpus: list[dict[str, Any]]
    remote: dict[str, dict[str, Any]]
    energy: EnergySection
    generator: GeneratorSection
    prometheus: dict[str, dict[str, float | None]]
    latency_correlation: dict[str, float]
    notices: Required[list[str]]


def compute_resources(
    samples: pd.DataFrame,
    info: dict[str, Any] | None,
    window_start: float,
    window_end: float,
    latency_by_second: pd.Series,
    ok_requests: int,
    output_tokens: int | None = None,
) -> ResourcesSection:
    """``summary["resources"]``: every resource over the measured window (warmup excluded).

    ``latency_by_second``: the window's successful requests' mean latency per second of the
    window (`ok_latency_by_second`), which resources are correlated with."""
    info = info or {}
    notices: list[str] = list(info.get("notices", []))
    notices += collection_notices(info.get("final") or {})
    if samples.empty or "unix_s" not in samples:
        if not info:
            notices.append("no resource samples: the run was made without the sampler")
        return {"sampled": False, "samples": 0, "notices": notices}
    times = samples["unix_s"].to_numpy()
    frame = samples[(times >= window_start) & (times <= window_end)].reset_index(drop=True)
    server = None
    if any(k.startswith("server.") for k in frame.columns):
        server = {"process": info.get("server")} | process_summary(frame)
    gpus = gpu_summaries(frame, None, info.get("gpus", []))
    remote = remote_summaries(frame, info)
    generator, saturated_at = generator_section(frame, remote)
    if saturated_at:
        # Last, always: the analyzer lifts this line into the summary's own notices.
        notices.append(_saturation_notice(saturated_at))
    section: ResourcesSection = {
        "sampled": True,
        "interval_s": info.get("interval_s"),
        "samples": len(frame),
        "host": host_summary(frame),
        "host_cpu": host_cpu_section(samples, window_start, window_end, info.get("cpu_cores")),
        "server_process": server,
        "gpus": gpus,
        "remote": remote,
        "energy": energy_section(gpus, remote, ok_requests, output_tokens),
        "generator": generator,
        "prometheus": {
            k.removeprefix("prom."): spread(frame[k])
            for k in sorted(frame.columns)
            if k.startswith("prom.") and frame[k].notna().any()
        },
        "latency_correlation": correlations(frame, latency_by_second, window_start),
        "notices": notices,
    }
    return cast(ResourcesSection, stats.clean(section))


def remote_summaries(frame: pd.DataFrame, info: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per remote agent (by label): its host, server process, GPUs, clock and worker generator."""
    labels = sorted({m["label"] for k in frame.columns if (m := _REMOTE_KEY.match(k))})
    final: dict[str, Any] = info.get("final") or {}
    remote: dict[str, dict[str, Any]] = {}
    for label in labels:
        agent: dict[str, Any] = next((a for a in info.get("agents", []) if a.get("label") == label), {})
        remote[label] = {
            "host": host_summary(frame, f"{label}/host"),
            "server_process": process_summary(frame, f"{label}/server") or None,
            "gpus": gpu_summaries(frame, label, agent.get("remote", {}).get("gpus", [])),
            "clock_offset_s": agent.get("offset_s"),
            "clock_uncertainty_s": agent.get("uncertainty_s"),
        }
        final_agent = next((a for a in final.get("agents") or [] if a.get("label") == label), None)
        if final_agent is not None:
            # The offset is re-estimated every minute; drift is the last estimate minus the first.
            remote[label]["clock_drift_s"] = final_agent.get("drift_s")
        # A distributed run's worker on that host samples itself too (loadbench.drive.distributed).
        worker_gen = _col(frame, f"{label}/generator.cpu_percent").dropna()
        if len(worker_gen):
            worker_share = float((worker_gen > SATURATED_PERCENT).mean())
            worker: GeneratorSection = {
                "cpu_max_percent": round(float(worker_gen.max()), 2),
                "cpu_mean_percent": round(float(worker_gen.mean()), 2),
                "saturated_share": round(worker_share, 4),
                "saturated": worker_share >= SATURATED_SHARE,
            }
            remote[label]["generator"] = worker
    return remote


def generator_section(
    frame: pd.DataFrame, remote: dict[str, dict[str, Any]]
) -> tuple[GeneratorSection, dict[str, float]]:
    """This host's generator CPU and every worker's; with the saturated share by host ("": this one)."""
    gen = _col(frame, "generator.cpu_percent").dropna()
    share = float((gen > SATURATED_PERCENT).mean()) if len(gen) else 0.0
    # Every generator counts, a distributed run's remote workers too: one saturated worker
    # limits the load as much as a saturated master.
    saturated_at = {"": share} if share >= SATURATED_SHARE else {}
    saturated_at |= {
        label: r["generator"]["saturated_share"]
        for label, r in remote.items()
        if r.get("generator", {}).get("saturated")
    }
    workers = [r["generator"] for r in remote.values() if "generator" in r]
    cpu_max = [float(gen.max())] if len(gen) else []
    cpu_max += [w["cpu_max_percent"] for w in workers]
    section: GeneratorSection = {
        "cpu_max_percent": round(max(cpu_max), 2) if cpu_max else None,
        "cpu_mean_percent": None if gen.empty else round(float(gen.mean()), 2),
        "saturated_share": round(max([share, *(w["saturated_share"] for w in workers)]), 4),
        "saturated": bool(saturated_at),
        "saturated_on": ["this host" if k == "" else k for k in saturated_at],
    }
    return section, saturated_at


def host_cpu_section(
    samples: pd.DataFrame, window_start: float, window_end: float, cores: Any = None
) -> HostCpuSection:
    """This host's CPU over the window (% of all cores), time-weighted, against `HOST_SATURATED_PERCENT`.

    Each reading is the busy share since the reading before it (psutil), so it stands for that
    stretch of time, clipped to the window. A plain mean of the readings would under-count a
    busy host: its sampler, starved of CPU too, takes fewer readings exactly when it is busiest.
    ``samples``: all of them, the warmup's too (the first reading in the window covers time before it).
    """
    mean = None
    if "host.cpu_percent" in samples and "unix_s" in samples:
        readings = samples[["unix_s", "host.cpu_percent"]].dropna().sort_values("unix_s")
        t = readings["unix_s"].to_numpy(dtype=np.float64)
        cpu = readings["host.cpu_percent"].to_numpy(dtype=np.float64)
        inside = (t >= window_start) & (t <= window_end)
        if inside.any():
            gaps = np.diff(t)
            # The very first reading covers the time since the sampler started: taken as a usual gap.
            first = t[0] - (float(np.median(gaps)) if gaps.size else 0.0)
            since = np.concatenate(([first], t[:-1]))
            weights = t[inside] - np.maximum(since[inside], window_start)
            busy = np.average(cpu[inside], weights=weights) if weights.sum() > 0 else cpu[inside].mean()
            mean = round(float(busy), 2)
    return {
        "mean_percent": mean,
        "limit_percent": HOST_SATURATED_PERCENT,
        "at_limit": mean is not None and mean >= HOST_SATURATED_PERCENT,
        "cores": cores if isinstance(cores, int) and not isinstance(cores, bool) else None,
    }


def _is_this_host(host: str) -> bool:
    """A target host name that can only mean the generator's own machine, without resolving it
    (the analysis may run anywhere, months later): loopback, the unspecified address, localhost."""
    host = host.lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


def shared_host(summary: Mapping[str, Any]) -> str | None:
    """Why the load generator shares its host with the server; None when nothing says it does.

    The server process sampled by this host's sampler is on this host. A loopback target is too,
    unless an agent sampled the server on another host (a tunnel to a remote server).
    """
    resources = summary.get("resources") or {}
    if resources.get("server_process") is not None:
        return "the server process was sampled on this host"
    remote = resources.get("remote") or {}
    if any((r or {}).get("server_process") for r in remote.values()):
        return None
    target = (summary.get("run") or {}).get("target")
    try:
        host = urlsplit(str(target)).hostname if target else None
    except ValueError:  # a damaged target: nothing to go by
        return None
    return f"the target {host} is this host" if host and _is_this_host(host) else None


def host_saturated(summary: Mapping[str, Any]) -> bool:
    """This host's CPU was at its limit while the load generator shared it with the server."""
    host_cpu = (summary.get("resources") or {}).get("host_cpu") or {}
    return host_cpu.get("at_limit") is True and shared_host(summary) is not None


def energy_section(
    gpus: list[dict[str, Any]], remote: dict[str, dict[str, Any]], ok_requests: int, output_tokens: int | None
) -> EnergySection:
    """The window's GPU energy, every host's GPUs together, per request and per output token."""
    all_gpus = gpus + [g for r in remote.values() for g in r["gpus"]]
    energies = [g["energy_j"] for g in all_gpus if g["energy_j"] is not None]
    energy_j = round(sum(energies), 3) if energies else None
    return {
        "j_total": energy_j,
        "j_per_request": None if energy_j is None or not ok_requests else round(energy_j / ok_requests, 6),
        "j_per_output_token": None
        if energy_j is None or not output_tokens
        else round(energy_j / output_tokens, 6),
    }


def gpu_count(summary: Mapping[str, Any]) -> int:
    """GPUs a run sampled, its agents' included."""
    resources = summary.get("resources") or {}
    remote = resources.get("remote") or {}
    return len(resources.get("gpus") or []) + sum(len(r.get("gpus") or []) for r in remote.values())
