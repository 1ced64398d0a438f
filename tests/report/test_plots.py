"""Tests of loadbench.report.plots: every plot builds a Figure for normal, empty and error-free inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from loadbench.report import plotkit, plots

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def make_timeseries(seconds: int = 20, warmup: int = 3, errors: bool = True) -> pd.DataFrame:
    """A per-second frame shaped like the analyzer's timeseries.csv."""
    sec = np.arange(seconds)
    ok = np.full(seconds, 50)
    err = np.where(sec % 5 == 4, 3, 0) if errors else np.zeros(seconds, dtype=int)
    p50 = 5.0 + sec * 0.1
    p50[7] = np.nan  # a second without a successful request
    return pd.DataFrame(
        {
            "second": sec,
            "start_unix_s": 1_700_000_000.0 + sec,
            "requests": ok + err,
            "ok": ok,
            "errors": err,
            "p50_ms": p50,
            "p99_ms": p50 * 4,
            "users": np.minimum(sec + 1, 10).astype(float),
            "in_warmup": (sec < warmup).astype(int),
        }
    )


def make_requests(n: int, error_every: int = 0, seed: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    start = np.sort(rng.uniform(0, 20, n))
    latency = rng.lognormal(np.log(8.0), 0.4, n)
    ok = np.ones(n, dtype=bool)
    if error_every:
        ok[::error_every] = False
    return start, latency, ok


def _texts(fig: Figure) -> list[str]:
    return [t.get_text() for ax in fig.axes for t in ax.texts]


def _scatter_sizes(fig: Figure) -> list[int]:
    sizes = [np.asarray(c.get_offsets()).shape[0] for c in fig.axes[0].collections]
    return [n for n in sizes if n]


def test_latency_over_time_normal() -> None:
    start, latency, ok = make_requests(2000, error_every=50)
    fig = plots.latency_over_time(start, latency, ok, make_timeseries())
    assert isinstance(fig, Figure)
    assert sorted(_scatter_sizes(fig)) == [40, 1960]
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert "p50 per second" in labels and "p99 per second" in labels and "warmup (excluded)" in labels
    assert not any("shown" in label for label in labels)
    assert fig.axes[0].get_yscale() == "linear"
    assert plotkit.figure_to_png(fig).startswith(PNG_SIGNATURE)


def test_latency_over_time_downsamples() -> None:
    start, latency, ok = make_requests(50_000, error_every=5)
    fig = plots.latency_over_time(start, latency, ok, make_timeseries())
    sizes = _scatter_sizes(fig)
    assert sizes and max(sizes) <= plots.MAX_POINTS
    assert sum(sizes) <= plots.MAX_POINTS + plots.MAX_ERROR_POINTS
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert any(f"{plots.MAX_POINTS:,} of 40,000 shown" in label for label in labels)
    assert any(f"{plots.MAX_ERROR_POINTS:,} of 10,000 shown" in label for label in labels)


def test_downsample_is_deterministic_and_sorted() -> None:
    a = plots.downsample_indices(1_000_000, 1000)
    b = plots.downsample_indices(1_000_000, 1000)
    assert np.array_equal(a, b)
    assert a.size == 1000 and np.all(np.diff(a) > 0)
    assert np.array_equal(plots.downsample_indices(5, 1000), np.arange(5))


def test_latency_over_time_log_scale_for_wide_spread() -> None:
    start, latency, ok = make_requests(500)
    latency[::10] = 5000.0  # a slow tail far above the ~8 ms body
    fig = plots.latency_over_time(start, latency, ok, None)
    assert fig.axes[0].get_yscale() == "log"


def test_latency_over_time_empty() -> None:
    empty = np.array([], dtype=float)
    fig = plots.latency_over_time(empty, empty, np.array([], dtype=bool), make_timeseries().iloc[0:0])
    assert "no data" in _texts(fig)
    assert plotkit.figure_to_png(fig).startswith(PNG_SIGNATURE)


def test_latency_percentiles_ticks_follow_the_data() -> None:
    _, latency, _ = make_requests(5000)
    fig = plots.latency_percentiles(latency)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    ticks = [t.get_text() for t in ax.get_xticklabels()]
    assert ticks == ["0%", "90%", "99%", "99.9%"]
    # p99.9 needs 1000 samples: present with 5000, absent with 500.
    assert any(t.startswith("p99.9:") for t in _texts(fig))
    small = plots.latency_percentiles(latency[:500])
    marks = [t for t in _texts(small) if t.startswith("p")]
    assert [m.split(":")[0] for m in marks] == ["p50", "p90", "p99"]


@pytest.mark.parametrize("values", [[], [7.5], [0.0, 0.0]])
def test_latency_percentiles_degenerate(values: list[float]) -> None:
    fig = plots.latency_percentiles(np.array(values, dtype=float))
    assert isinstance(fig, Figure)
    assert plotkit.figure_to_png(fig).startswith(PNG_SIGNATURE)


def test_throughput_over_time() -> None:
    fig = plots.throughput_over_time(make_timeseries())
    assert len(fig.axes) == 2  # users on a twin axis
    legend = fig.axes[0].get_legend()
    assert legend is not None
    assert {t.get_text() for t in legend.get_texts()} >= {"successful req/s", "failed req/s", "active users"}
    assert plotkit.figure_to_png(fig).startswith(PNG_SIGNATURE)


def test_throughput_without_users_and_with_gaps() -> None:
    ts = make_timeseries().drop(index=[5, 6]).assign(users=np.nan)
    fig = plots.throughput_over_time(ts)
    assert len(fig.axes) == 1
    assert plotkit.figure_to_png(fig).startswith(PNG_SIGNATURE)


def test_throughput_empty() -> None:
    assert "no data" in _texts(plots.throughput_over_time(None))
    assert "no data" in _texts(plots.throughput_over_time(make_timeseries().iloc[0:0]))


def test_errors_over_time_stacked_by_kind() -> None:
    by_kind = pd.DataFrame(
        {
            "second": [4, 4, 9, 14, 19],
            "kind": ["HTTP 500", "ConnectError", "HTTP 500", "HTTP 503", "HTTP 500"],
        }
    ).assign(count=[2, 1, 3, 3, 3])
    fig = plots.errors_over_time(make_timeseries(), by_kind)
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert labels[1:] == ["HTTP 500", "HTTP 503", "ConnectError"]  # most frequent first, after warmup
    assert "no errors" not in _texts(fig)


def test_errors_over_time_folds_many_kinds() -> None:
    kinds = [f"Kind{i}" for i in range(12)]
    by_kind = pd.DataFrame({"second": np.arange(12), "kind": kinds, "count": np.arange(12, 0, -1)})
    fig = plots.errors_over_time(make_timeseries(), by_kind)
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert labels[-1] == "other" and len(labels) == 1 + plots.MAX_KINDS


def test_errors_over_time_without_kinds() -> None:
    fig = plots.errors_over_time(make_timeseries(), None)
    assert "errors" in fig.axes[0].get_legend_handles_labels()[1]


def test_errors_over_time_no_errors() -> None:
    fig = plots.errors_over_time(
        make_timeseries(errors=False), pd.DataFrame(columns=["second", "kind", "count"])
    )
    assert "no errors" in _texts(fig)
    assert plotkit.figure_to_png(fig).startswith(PNG_SIGNATURE)


def test_errors_over_time_empty() -> None:
    assert "no data" in _texts(plots.errors_over_time(None, None))


def test_figure_size_and_dpi() -> None:
    fig = plots.throughput_over_time(make_timeseries())
    assert tuple(fig.get_size_inches()) == pytest.approx(plotkit.FIGSIZE)
    png = plotkit.figure_to_png(fig, dpi=50)
    width = int.from_bytes(png[16:20], "big")  # IHDR width
    assert width == round(plotkit.FIGSIZE[0] * 50)


# ---------------------------------------------------------------------------------------------
# Resources over time

SAMPLE_START = 1_700_000_000.0
REMOTE = "gpu-box:9109"
GIB = 1024**3
PROM_XSS = 'inflight_requests{model="<script>alert(1)</script>"}'


def make_sample_rows(
    start: float = SAMPLE_START, seconds: float = 12.0, interval: float = 0.25, gpus: bool = True
) -> list[dict[str, float | None]]:
    """Resource samples shaped like the sampler's ``samples.jsonl`` lines: two local GPUs, a
    remote host with one GPU, Prometheus series and a load generator that is saturated."""
    rows: list[dict[str, float | None]] = []
    for i in range(int(seconds / interval) + 3):
        t = start - 0.5 + i * interval
        phase = (i % 20) / 20.0
        row: dict[str, float | None] = {
            "unix_s": t,
            "host.cpu_percent": 40.0 + 30.0 * phase,
            "host.cpu0_percent": 50.0,
            "host.cpu1_percent": 60.0,
            "host.load1": 2.5,
            "host.mem_used_bytes": 6.0 * GIB + i * 1024**2,
            "host.mem_available_bytes": 9.0 * GIB,
            "host.mem_total_bytes": 16.0 * GIB,
            "host.swap_used_bytes": 0.0,
            "host.net_sent_bytes_per_s": 1.5e6,
            "host.net_recv_bytes_per_s": 2.5e6,
            "host.disk_read_bytes_per_s": 0.0,
            "host.disk_write_bytes_per_s": 4096.0,
            "server.cpu_percent": 150.0 + 50.0 * phase,  # a multi-threaded server: above one core
            "server.rss_bytes": 2.0 * GIB,
            "server.threads": 24.0,
            "server.open_fds": 57.0,
            "server.processes": 3.0,
            "generator.cpu_percent": 97.0 if i % 4 else 60.0,
            **{f"prom.series_{k:02d}": float(k) for k in range(35)},
            f"prom.{PROM_XSS}": 3.0 + phase,
        }
        if i == 5:
            row["server.rss_bytes"] = None  # a missed reading
        if gpus:
            for g in (0, 1):
                row |= {
                    f"gpu{g}.util_percent": 70.0 + 20.0 * phase - 30.0 * g,
                    f"gpu{g}.mem_util_percent": 35.0,
                    f"gpu{g}.mem_used_bytes": (20.0 + 2.0 * g) * GIB,
                    f"gpu{g}.mem_total_bytes": 80.0 * GIB,
                    f"gpu{g}.power_w": 250.0 + 100.0 * phase - 50.0 * g,
                    f"gpu{g}.power_limit_w": 700.0,
                    f"gpu{g}.temp_c": 61.0 + g,
                    f"gpu{g}.sm_clock_mhz": 1980.0,
                    f"gpu{g}.pcie_tx_bytes_per_s": 3.0e8,
                    f"gpu{g}.pcie_rx_bytes_per_s": 1.0e8,
                    f"gpu{g}.server_mem_bytes": 18.0 * GIB,
                    f"gpu{g}.procs_mem_bytes": 18.5 * GIB,
                    f"gpu{g}.pid1234_mem_bytes": 18.0 * GIB,
                }
            row["gpu0.energy_j"] = 1000.0 + 300.0 * (t - start)  # gpu1 has no counter: integrated power
            row |= {
                f"{REMOTE}/gpu0.util_percent": 55.0,
                f"{REMOTE}/gpu0.mem_used_bytes": 30.0 * GIB,
                f"{REMOTE}/gpu0.mem_total_bytes": 40.0 * GIB,
                f"{REMOTE}/gpu0.power_w": 180.0,
                f"{REMOTE}/host.cpu_percent": 12.0,
                f"{REMOTE}/host.mem_used_bytes": 10.0 * GIB,
                f"{REMOTE}/server.cpu_percent": 80.0,
                f"{REMOTE}/server.rss_bytes": 3.0 * GIB,
            }
        rows.append(row)
    return rows


def make_samples(gpus: bool = True, rows: int | None = None) -> pd.DataFrame:
    frame = pd.DataFrame.from_records(make_sample_rows(gpus=gpus))
    if rows is not None:
        frame = pd.concat([frame] * (rows // len(frame) + 1), ignore_index=True).iloc[:rows]
        frame["unix_s"] = SAMPLE_START + np.linspace(-0.5, 12.0, rows)
    return frame.apply(pd.to_numeric, errors="coerce")


def _panel_labels(fig: Figure) -> list[str]:
    return [ax.get_ylabel() for ax in fig.axes]


def test_resources_over_time_with_gpus() -> None:
    fig = plots.resources_over_time(make_timeseries(), make_samples(), SAMPLE_START, SAMPLE_START + 3.0)
    # Six panels plus the power panel's twin axis.
    assert len(fig.axes) == 7
    assert _panel_labels(fig) == [
        "latency (ms)",
        "requests/s",
        "CPU (%)",
        "memory (GiB)",
        "GPU util (%)",
        "GPU memory (GiB)",
        "power (W)",
    ]
    panels = fig.axes[:6]
    assert all(ax.get_shared_x_axes().joined(panels[0], ax) for ax in panels)
    assert tuple(fig.get_size_inches()) == pytest.approx((plotkit.FIGSIZE[0], 0.8 + 6 * plots.PANEL_HEIGHT))
    cpu_labels = panels[2].get_legend_handles_labels()[1]
    assert "host CPU (% of all cores)" in cpu_labels and "server CPU (% of one core)" in cpu_labels
    assert "generator CPU (% of one core)" in cpu_labels
    assert f"{REMOTE} host CPU (% of all cores)" in cpu_labels
    assert any(label.startswith("generator saturation (90 %") for label in cpu_labels)
    saturation = [
        line for line in panels[2].get_lines() if str(line.get_label()).startswith("generator saturation")
    ]
    assert saturation and saturation[0].get_linestyle() == "--"
    assert panels[4].get_legend_handles_labels()[1] == ["gpu0", "gpu1", f"{REMOTE} gpu0"]
    assert f"{REMOTE} gpu0 power" in fig.axes[6].get_legend_handles_labels()[1]
    # Warmup shaded on every panel, labelled once; one time axis from the run start.
    assert "warmup (excluded)" in panels[0].get_legend_handles_labels()[1]
    assert "warmup (excluded)" not in panels[3].get_legend_handles_labels()[1]
    assert panels[-1].get_xlabel() == "time since run start (s)"
    assert panels[0].get_xlim()[0] == pytest.approx(-0.5)
    # Memory in GiB: the server's 2 GiB RSS.
    rss = next(line for line in panels[3].get_lines() if line.get_label() == "server RSS")
    assert np.nanmax(np.asarray(rss.get_ydata(), dtype=float)) == pytest.approx(2.0)
    assert plotkit.figure_to_png(fig).startswith(PNG_SIGNATURE)


def test_resources_over_time_without_gpus() -> None:
    fig = plots.resources_over_time(make_timeseries(), make_samples(gpus=False), SAMPLE_START, None)
    assert _panel_labels(fig) == ["latency (ms)", "requests/s", "CPU (%)", "memory (GiB)"]
    assert tuple(fig.get_size_inches())[1] == pytest.approx(0.8 + 4 * plots.PANEL_HEIGHT)
    # Without a warmup end, the timeseries' warmup seconds are shaded.
    assert "warmup (excluded)" in fig.axes[0].get_legend_handles_labels()[1]
    assert plotkit.figure_to_png(fig).startswith(PNG_SIGNATURE)


def test_resources_over_time_skips_empty_panels() -> None:
    samples = make_samples(gpus=False)[["unix_s", "host.cpu_percent"]].copy()
    fig = plots.resources_over_time(None, samples, SAMPLE_START, SAMPLE_START + 2.0)
    assert _panel_labels(fig) == ["CPU (%)"]
    samples["host.cpu_percent"] = np.nan  # a column of nulls is no data
    fig = plots.resources_over_time(make_timeseries(), samples, SAMPLE_START, SAMPLE_START + 2.0)
    assert _panel_labels(fig) == ["latency (ms)", "requests/s"]


@pytest.mark.parametrize("samples", [None, pd.DataFrame({"unix_s": pd.Series([], dtype=float)})])
def test_resources_over_time_no_data(samples: pd.DataFrame | None) -> None:
    fig = plots.resources_over_time(None, samples, SAMPLE_START, None)
    assert "no data" in _texts(fig)
    assert plotkit.figure_to_png(fig).startswith(PNG_SIGNATURE)


def test_resources_over_time_downsamples() -> None:
    fig = plots.resources_over_time(
        make_timeseries(), make_samples(rows=12_000), SAMPLE_START, SAMPLE_START + 3.0
    )
    cpu = fig.axes[2]
    sizes = {np.asarray(line.get_xdata()).size for line in cpu.get_lines() if "CPU" in str(line.get_label())}
    assert sizes == {plots.MAX_SAMPLES}
    xs = np.asarray(cpu.get_lines()[0].get_xdata(), dtype=float)
    assert np.all(np.diff(xs) > 0)  # still in time order
