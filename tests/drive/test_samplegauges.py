"""The sampler's latest sample as gauges of the live endpoint (`loadbench.drive.samplegauges`),
read back through prometheus_client's own exposition and parser."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from loadbench.drive.samplegauges import MERGE_S, STALE_S, TAIL_BYTES, SampleGauges, last_sample

NOW = 1_800_000_000.0


def scraped(path: Path, now: float = NOW) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """{(gauge name, sorted labels): value} of one scrape of a registry holding only the gauges."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SampleGauges(path, clock=lambda: now))
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def write(path: Path, *samples: dict[str, Any], partial: str = "") -> Path:
    path.write_text("".join(json.dumps(s) + "\n" for s in samples) + partial)
    return path


def test_the_last_complete_sample_becomes_gauges_with_host_and_gpu_labels(tmp_path: Path) -> None:
    old = {"unix_s": NOW - 1, "host.cpu_percent": 10.0}
    last = {
        "unix_s": NOW - 0.5,
        "host.cpu_percent": 87.5,
        "host.cpu1_percent": 92.0,
        "host.mem_used_bytes": 6.3e8,
        "server.rss_bytes": 39358464.0,
        "generator.cpu_percent": 93.9,
        "gpu0.util_percent": 71.0,
        "gpu0.power_watts": 250.5,
        "gpu0.name": "NVIDIA H100",  # not a number: no gauge
        "gpu1.util_percent": None,  # the platform could not say: no gauge
        "gpu-box/gpu0.mem_used_bytes": 1.5e10,  # a remote agent's
        "prom.vllm:num_requests_running": 3.0,  # the server's own metric: not ours to serve
    }
    # A line still being written (no newline yet) is not a sample.
    path = write(tmp_path / "samples.jsonl", old, last, partial='{"unix_s": 1800000000.0, "host.cpu_pe')
    assert scraped(path) == {
        ("loadbench_host_cpu_percent", (("host", ""),)): 87.5,
        ("loadbench_host_cpu_core_percent", (("cpu", "1"), ("host", ""))): 92.0,
        ("loadbench_host_mem_used_bytes", (("host", ""),)): 6.3e8,
        ("loadbench_server_rss_bytes", (("host", ""),)): 39358464.0,
        ("loadbench_generator_cpu_percent", (("host", ""),)): 93.9,
        ("loadbench_gpu_util_percent", (("gpu", "0"), ("host", ""))): 71.0,
        ("loadbench_gpu_power_watts", (("gpu", "0"), ("host", ""))): 250.5,
        ("loadbench_gpu_mem_used_bytes", (("gpu", "0"), ("host", "gpu-box"))): 1.5e10,
    }


def test_no_file_no_sample_or_a_stale_one_gives_no_gauge(tmp_path: Path) -> None:
    path = tmp_path / "samples.jsonl"
    assert scraped(path) == {}  # --no-sampler, or before the first sample
    write(path, partial='{"unix_s": 1800000000.0')
    assert scraped(path) == {}
    write(path, {"unix_s": NOW - STALE_S - 1, "host.cpu_percent": 50.0})
    assert scraped(path) == {}  # the sampler stopped: a gap, not a frozen figure
    assert scraped(path, now=NOW - STALE_S + 1) == {("loadbench_host_cpu_percent", (("host", ""),)): 50.0}


def test_a_scrape_reads_only_the_files_tail(tmp_path: Path) -> None:
    # A long run's file is never read whole: the last sample is found within TAIL_BYTES.
    filler = {"unix_s": NOW - 10, "host.cpu_percent": 1.0, "pad": "x" * 1000}  # older than MERGE_S
    path = write(
        tmp_path / "samples.jsonl", *[filler] * (3 * TAIL_BYTES // 1000), {"unix_s": NOW, "host.load1": 2.5}
    )
    assert last_sample(path) == {"unix_s": NOW, "host.load1": 2.5}
    assert scraped(path) == {("loadbench_host_load1", (("host", ""),)): 2.5}


def test_groups_sampled_every_other_time_stay_from_the_last_lines(tmp_path: Path) -> None:
    # The sampler takes host memory on every other sample: the last lines are merged key by key,
    # the newest figure winning, so its gauge does not come and go between scrapes.
    path = write(
        tmp_path / "samples.jsonl",
        {"unix_s": NOW - MERGE_S - 1, "host.swap_used_bytes": 7.0},  # too old to merge
        {"unix_s": NOW - 1, "host.cpu_percent": 10.0, "host.mem_used_bytes": 6.0e8},
        {"unix_s": NOW - 0.5, "host.cpu_percent": 20.0},
    )
    assert scraped(path) == {
        ("loadbench_host_cpu_percent", (("host", ""),)): 20.0,
        ("loadbench_host_mem_used_bytes", (("host", ""),)): 6.0e8,
    }
