"""Tests of loadbench.plots: every plot builds a Figure for normal, empty and error-free inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from loadbench import plots

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
    assert plots.figure_to_png(fig).startswith(PNG_SIGNATURE)


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
    assert plots.figure_to_png(fig).startswith(PNG_SIGNATURE)


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
    assert plots.figure_to_png(fig).startswith(PNG_SIGNATURE)


def test_throughput_over_time() -> None:
    fig = plots.throughput_over_time(make_timeseries())
    assert len(fig.axes) == 2  # users on a twin axis
    legend = fig.axes[0].get_legend()
    assert legend is not None
    assert {t.get_text() for t in legend.get_texts()} >= {"successful req/s", "failed req/s", "active users"}
    assert plots.figure_to_png(fig).startswith(PNG_SIGNATURE)


def test_throughput_without_users_and_with_gaps() -> None:
    ts = make_timeseries().drop(index=[5, 6]).assign(users=np.nan)
    fig = plots.throughput_over_time(ts)
    assert len(fig.axes) == 1
    assert plots.figure_to_png(fig).startswith(PNG_SIGNATURE)


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
    assert plots.figure_to_png(fig).startswith(PNG_SIGNATURE)


def test_errors_over_time_empty() -> None:
    assert "no data" in _texts(plots.errors_over_time(None, None))


def test_figure_size_and_dpi() -> None:
    fig = plots.throughput_over_time(make_timeseries())
    assert tuple(fig.get_size_inches()) == pytest.approx(plots.FIGSIZE)
    png = plots.figure_to_png(fig, dpi=50)
    width = int.from_bytes(png[16:20], "big")  # IHDR width
    assert width == round(plots.FIGSIZE[0] * 50)
