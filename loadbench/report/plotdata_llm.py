"""What the report's four LLM plots draw, from the records in memory or from a `RecordStore`.

`LlmPlotData`: the TTFT and inter-token-gap histograms (`Histogram`), output tokens per second,
requests in flight per second and the median TPOT per second: a few arrays of one value per
second or bin, never one per request. `frame_llm_data` computes them from a DataFrame of the
records (as written: start and latency from the actual send), `store_llm_data` from DuckDB. The
histograms, their marks and the medians are equal both ways; the per-second sums (tokens, in
flight) equal up to the order of float additions (the store adds them a batch or a group at a
time).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from loadbench.analyze import llm_metrics
from loadbench.analyze.bounded_llm import GAPS, LLM, STREAMED, TPOT, TPOT_ROWS
from loadbench.analyze.scope import OK
from loadbench.report import plots_llm
from loadbench.report.fmt import as_dict, num
from loadbench.report.plotdata import window_bounds, window_sql
from loadbench.report.plotdata_hist import Histogram, histogram_of, store_histogram

if TYPE_CHECKING:
    from loadbench.analyze.store import RecordStore

FloatArray = npt.NDArray[np.float64]

# Records streamed at a time for the tokens' arrival times (their gaps parsed in numpy).
TOKEN_BATCH_ROWS = 1 << 16
# The successful requests with a TPOT (`llm_metrics.tpot_ms`, over the `requests` view).
SUCCESSFUL_TPOT_ROWS = f"{OK} AND {TPOT_ROWS}"


@dataclass(frozen=True, eq=False)
class LlmPlotData:
    """The LLM section's figures' data: per bin or per second of the run (from 0)."""

    ttft: Histogram
    itl: Histogram
    tokens_per_s: FloatArray
    in_flight: FloatArray
    tpot_p50_ms: FloatArray


def plot_seconds(summary: dict[str, Any], timeseries: pd.DataFrame, run_start: float) -> int:
    """How many seconds from the run start the per-second figures hold."""
    if len(timeseries) and np.isfinite(timeseries["second"].max()):
        return int(timeseries["second"].max()) + 1
    hi = num(as_dict(summary.get("window")).get("end_unix_s"))
    return max(int(np.ceil((hi or run_start) - run_start)), 0)


def frame_llm_data(
    summary: dict[str, Any], requests: pd.DataFrame, timeseries: pd.DataFrame, run_start: float
) -> LlmPlotData:
    """`LlmPlotData` of the records in memory (send times, service latency)."""
    sent = requests["start_unix_s"].to_numpy(dtype=np.float64)
    intended = requests["intended_unix_s"].to_numpy(dtype=np.float64)
    due = np.where(np.isfinite(intended), intended, sent)  # the analyzer's window membership
    lo, hi = window_bounds(summary)
    in_window = np.ones(sent.size, dtype=bool)
    if lo is not None:
        in_window &= due >= lo
    if hi is not None:
        in_window &= due <= hi
    ok = requests["ok"].to_numpy().astype(bool)
    service = requests["latency_ms"].to_numpy(dtype=np.float64)
    ttft = requests["ttft_ms"].to_numpy(dtype=np.float64)
    out_tokens = requests["output_tokens"].to_numpy(dtype=np.float64)
    start_s = sent - run_start
    seconds = plot_seconds(summary, timeseries, run_start)

    streamed = ok & np.isfinite(ttft)
    gaps, counts = llm_metrics.parse_itl(requests["itl_ms"][streamed])
    window_gap = np.repeat(in_window[streamed], counts)
    tokens = _chunk_tokens(start_s[streamed], ttft[streamed], out_tokens[streamed], gaps, counts, seconds)
    plain = ok & ~np.isfinite(ttft) & np.isfinite(out_tokens)
    tokens += plots_llm.per_second_tokens(
        start_s[plain] + service[plain] / 1000.0, out_tokens[plain], seconds
    )

    tpot = llm_metrics.tpot_ms(service, ttft, out_tokens)
    measured_tpot = ok & in_window & np.isfinite(tpot)
    return LlmPlotData(
        histogram_of(ttft[streamed & in_window]),
        histogram_of(gaps[window_gap]),
        tokens,
        plots_llm.mean_in_flight(start_s, start_s + service / 1000.0, seconds),
        plots_llm.median_per_second(np.floor(start_s[measured_tpot]), tpot[measured_tpot], seconds),
    )


def _chunk_tokens(
    start_s: FloatArray, ttft: FloatArray, out_tokens: FloatArray, gaps: FloatArray, counts: Any, seconds: int
) -> FloatArray:
    """Output tokens per second of streamed requests: every chunk at its arrival (send + TTFT +
    the gaps so far), weighted so a request's chunks sum to its output tokens."""
    weight = np.where(np.isfinite(out_tokens), out_tokens / (counts + 1.0), 1.0)
    segment = np.repeat(np.arange(counts.size), counts)
    later = start_s[segment] + (ttft[segment] + llm_metrics.gaps_so_far(gaps, counts)) / 1000.0
    times = np.concatenate([start_s + ttft / 1000.0, later])
    return plots_llm.per_second_tokens(times, np.concatenate([weight, weight[segment]]), seconds)


# --- from a store -------------------------------------------------------------------------------


def store_tokens(store: RecordStore, run_start: float, seconds: int) -> FloatArray:
    """Output tokens per second, the successful records streamed past a batch at a time (each
    batch's gaps parsed and placed as `frame_llm_data` places them)."""

    def add_up(batches: Iterator[Any]) -> FloatArray:
        total = np.zeros(max(seconds, 0))
        for batch in batches:
            frame = batch.to_pandas()
            t = frame["t"].to_numpy(dtype=np.float64)
            ttft = frame["ttft_ms"].to_numpy(dtype=np.float64, na_value=np.nan)
            out = frame["output_tokens"].to_numpy(dtype=np.float64, na_value=np.nan)
            streamed = np.isfinite(ttft)
            gaps, counts = llm_metrics.parse_itl(frame["itl_ms"][streamed])
            total += _chunk_tokens(t[streamed], ttft[streamed], out[streamed], gaps, counts, seconds)
            plain = ~streamed & np.isfinite(out)
            service = frame["latency_ms"].to_numpy(dtype=np.float64)
            total += plots_llm.per_second_tokens(t[plain] + service[plain] / 1000.0, out[plain], seconds)
        return total

    return store.scan(
        f"""SELECT start_unix_s - ? AS t, latency_ms, ttft_ms, output_tokens, itl_ms FROM records
        WHERE {OK} AND {LLM}""",
        [run_start],
        add_up,
        TOKEN_BATCH_ROWS,
    )


def store_in_flight(store: RecordStore, run_start: float, seconds: int) -> FloatArray:
    """`plots_llm.mean_in_flight` of every record: the overlap with each second as the sum over
    starts before each second's edge of (edge − start), less the same over ends, from the count
    and sum of the points in each second (a point before edge e is one whose floor is below e)."""
    seconds = max(seconds, 0)
    edges = np.arange(seconds + 1, dtype=np.float64)

    def integral(point: str) -> FloatArray:
        rows = store.rows(
            f"""SELECT k, count(*), fsum(p) FROM (
                SELECT greatest(floor(p) + 1, 0) AS k, p FROM (
                    SELECT {point} AS p FROM (
                        SELECT start_unix_s - ? AS s, start_unix_s - ? + latency_ms / 1000.0 AS e FROM records)
                    WHERE isfinite(s) AND isfinite(e) AND e >= s)) WHERE k <= ? GROUP BY k""",
            [run_start, run_start, seconds],
        )
        n, total = np.zeros(seconds + 1), np.zeros(seconds + 1)
        for k, count, fsum in rows:
            n[int(k)], total[int(k)] = count, fsum
        area: FloatArray = edges * np.cumsum(n) - np.cumsum(total)
        return area

    return np.diff(integral("s") - integral("e"))


def store_tpot_medians(
    store: RecordStore, window: tuple[str, list[float]], run_start: float, seconds: int
) -> FloatArray:
    """`plots_llm.median_per_second` of the window's TPOTs by the second each was sent in: the
    middle values of each second's sorted TPOTs (one sorted pass), halved as pandas' median."""
    out = np.full(max(seconds, 0), np.nan)
    second = "floor(sent_unix_s - ?)"
    where = f"{SUCCESSFUL_TPOT_ROWS} AND {window[0]} AND isfinite({TPOT}) AND {second} >= 0 AND {second} < ?"
    params = [*window[1], run_start, run_start, seconds]
    groups = store.rows(
        f"SELECT {second} AS g, count(*) FROM requests WHERE {where} GROUP BY g ORDER BY g",
        [run_start, *params],
    )
    if not groups:
        return out
    g = np.array([int(r[0]) for r in groups], dtype=np.int64)
    n = np.array([int(r[1]) for r in groups], dtype=np.int64)
    offset = np.concatenate([[0], np.cumsum(n)[:-1]])
    lower, upper = offset + (n - 1) // 2, offset + n // 2
    values = store.values_at(
        np.concatenate([lower, upper]), TPOT, where, [run_start, *params], group=second, source="requests"
    )
    out[g] = (values[: g.size] + values[g.size :]) / 2.0
    return out


def store_llm_data(
    store: RecordStore, summary: dict[str, Any], timeseries: pd.DataFrame, run_start: float
) -> LlmPlotData:
    """`LlmPlotData` of the store's records."""
    seconds = plot_seconds(summary, timeseries, run_start)
    where, params = window_sql(summary)
    in_window = f"(SELECT * FROM requests WHERE {where} AND {STREAMED})"
    gaps = f"(SELECT unnest({GAPS}) AS gap FROM requests WHERE {where} AND {STREAMED})"
    return LlmPlotData(
        store_histogram(store, "ttft_ms", in_window, params),
        store_histogram(store, "gap", gaps, params),
        store_tokens(store, run_start, seconds),
        store_in_flight(store, run_start, seconds),
        store_tpot_medians(store, (where, params), run_start, seconds),
    )


__all__: Sequence[str] = ("LlmPlotData", "frame_llm_data", "plot_seconds", "store_llm_data")
