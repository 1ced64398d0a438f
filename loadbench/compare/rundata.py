"""One analyzed run as the comparison reads it: `load_run` gives its `RunData`, the per-request
series behind each summary key, selected exactly as the analyzer selects them.

A run `loadbench.analyze.bounded.open_bounded` covers (of any length: open or closed loop, LLM
tokens and timings, media) is not read into memory: its `RunData` keeps per-second counts and its
`RecordStore` (`loadbench.compare.runstore.StoredRun`), from which the bootstrap fetches only the
values it samples of each series (`loadbench.compare.runstore.StoredSeries`). The comparison is
the same either way. Labeled runs are still read into memory (`runstore.COLUMNS`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from loadbench.analyze import llm_metrics, quality
from loadbench.analyze.attempts import split_attempts
from loadbench.analyze.bounded import open_bounded
from loadbench.analyze.window import window_start_unix_s
from loadbench.compare.runstore import COLUMNS, StoredRun, StoredSeries
from loadbench.errors import RunDirError
from loadbench.record import rundir
from loadbench.record.columnar import read_run_requests
from loadbench.record.records import from_due_time
from loadbench.record.salvage import RecordDamage, damage_of
from loadbench.record.series import read_samples

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
# A per-request series: (values, their seconds) in memory, or in a run's store (fetched where the
# bootstrap samples them).
Series = tuple[FloatArray, IntArray] | StoredSeries
# The columns of `RunData.label_counts`.
LABEL_COUNTS = ["second", "expected", "predicted", "ok", "count"]


@dataclass
class RunData:
    """Everything `compare_runs` needs from one analyzed run directory.

    Latency is the analyzer's: open loop, counted from each request's due time, and a request
    belongs to the measured window when it was *due* inside it (`records.from_due_time`).
    A run read through its store (``stored``) has no per-request arrays (``latency_ms``, ``ok``,
    ``second`` None): `second_counts` and its ``series`` give what the comparison needs.
    """

    path: Path
    meta: dict[str, Any]
    summary: dict[str, Any]
    latency_ms: FloatArray | None  # latency of the measured window's successful requests
    ok: BoolArray | None  # per measured request
    second: IntArray | None  # per measured request: whole second since the window start
    timeseries: pd.DataFrame  # timeseries.csv (empty when missing)
    samples: pd.DataFrame  # series.read_samples(run_dir / rundir.SAMPLES)
    # Per-request values behind other summary keys, each with its requests' seconds: what the
    # analyzer summarizes as that key (`_series`). Absent when the run did not measure it.
    series: dict[str, Series] = field(default_factory=dict)
    # Output tokens of the successful LLM requests, summed per second (tokens.output_per_s).
    tokens_per_second: FloatArray | None = None
    # Per measured request: its ``expected`` and ``predicted`` (quality, `loadbench variants`).
    labels: pd.DataFrame | None = None
    # What the record file lost (damaged lines, a cut-off last record), None when nothing.
    damage: RecordDamage | None = None
    # The run's store when it was not read into memory (`loadbench.compare.runstore`).
    stored: StoredRun | None = None

    def second_counts(self) -> tuple[IntArray, IntArray]:
        """The measured window's requests and successful requests per second since its start (as
        many seconds as reach the last request; ``np.bincount`` of ``second``, of ``second[ok]``)."""
        if self.stored is not None:
            return self.stored.requests, self.stored.successes
        if self.second is None or self.ok is None:
            raise ValueError(f"{self.path}: neither per-request arrays nor a store")
        requests = np.bincount(self.second)
        return requests, np.bincount(self.second[self.ok], minlength=requests.size)

    def label_counts(self) -> pd.DataFrame | None:
        """The measured window's requests counted by (second, expected, predicted, ok), a missing
        label as empty text, sorted (columns `LABEL_COUNTS`); None without labels. What a
        consumer of the labels needs (their quality, per second) without a row per request."""
        if self.stored is not None:
            return self.stored.labels
        if self.labels is None or self.ok is None or self.second is None:
            return None
        frame = pd.DataFrame(
            {
                "second": self.second,
                "expected": _texts(self.labels["expected"]),
                "predicted": _texts(self.labels["predicted"]),
                "ok": self.ok,
            }
        )
        if not (frame["expected"] != "").any():
            return None
        grouped = frame.groupby(LABEL_COUNTS[:-1], sort=True).size().rename("count").reset_index()
        return grouped.astype({"second": np.int64, "ok": bool, "count": np.int64})[LABEL_COUNTS]


def load_run(path: Path) -> RunData:
    """Read an analyzed run directory; `RunDirError` when it has not been analyzed."""
    meta = rundir.read_meta(path)
    if not (path / rundir.SUMMARY).is_file():
        raise RunDirError(f"{path} has no {rundir.SUMMARY}: run `loadbench report {path}` first")
    summary = rundir.read_json(path / rundir.SUMMARY)
    store = open_bounded(path, meta)
    if store is not None and not store.filled <= COLUMNS:
        # Labels: `loadbench variants` reads them a row per request yet.
        store.close()
        store = None
    if store is not None:
        return _stored_run(path, meta, summary, StoredRun.open(store, window_start_unix_s(meta)))
    # With --retries, the user-visible requests, as the analyzer's figures are.
    records = read_run_requests(path)
    damage = damage_of(records)
    raw = split_attempts(records).requests
    service_all = raw["latency_ms"].to_numpy(dtype=np.float64)
    requests = from_due_time(raw)  # the analyzer's latency and timeline
    window_start = window_start_unix_s(meta)
    starts = requests["start_unix_s"].to_numpy(dtype=np.float64)
    measured = starts >= window_start  # the analyzer's own rule: a request belongs where it started
    ok = requests["ok"].to_numpy()[measured].astype(bool)
    second = np.floor(starts[measured] - window_start).astype(np.int64)
    latency = requests["latency_ms"].to_numpy(dtype=np.float64)[measured]
    series, tokens = _series(requests[measured], latency, service_all[measured], ok, second)
    timeseries = _timeseries(path)
    samples = read_samples(path / rundir.SAMPLES)
    labels = requests.loc[measured, ["expected", "predicted"]]
    return RunData(
        path, meta, summary, latency[ok], ok, second, timeseries, samples, series, tokens, labels, damage
    )


def _stored_run(path: Path, meta: dict[str, Any], summary: dict[str, Any], stored: StoredRun) -> RunData:
    """The `RunData` of a run read through its store: per-second counts and stored series."""
    # The latency is the StoredRun itself, and so is a closed loop's service time.
    series: dict[str, Series] = {"latency_ms": stored, "service_time_ms": stored, **stored.series}
    return RunData(
        path,
        meta,
        summary,
        None,
        None,
        None,
        _timeseries(path),
        read_samples(path / rundir.SAMPLES),
        series,
        stored.tokens,
        damage=stored.store.damage,
        stored=stored,
    )


def _timeseries(path: Path) -> pd.DataFrame:
    """timeseries.csv (empty when missing)."""
    timeseries_path = path / rundir.TIMESERIES
    try:
        return pd.read_csv(timeseries_path) if timeseries_path.is_file() else pd.DataFrame()
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise RunDirError(f"cannot read {timeseries_path}: {' '.join(str(exc).split())[:160]}") from None


def _texts(values: pd.Series) -> npt.NDArray[np.str_]:
    """Labels as texts, a missing one empty (as `loadbench.variants.figures` reads them)."""
    texts: npt.NDArray[np.str_] = values.astype("object").where(values.notna(), "").astype(str).to_numpy()
    return texts


def _series(
    measured: pd.DataFrame,
    latency: FloatArray,
    service: FloatArray,
    ok: BoolArray,
    second: IntArray,
) -> tuple[dict[str, Series], FloatArray | None]:
    """The per-request values the analyzer summarizes, by summary key, with their seconds.

    Each is selected exactly as the analyzer selects it (`analyzer.compute_summary`,
    `llm_metrics.llm_summary`, `quality.rtf_summary`), so that the bootstrap's full-data
    statistic is the summary's value: ``service_time_ms`` over the successful requests;
    ``ttft_ms`` over the successful streams; ``itl_ms`` every valid gap of those streams (each
    gap in its request's second); ``tpot_ms`` where it is defined; ``e2e_ms`` the latency of the
    successful LLM requests; ``rtf`` the successful requests with media, and ``rtf_realtime``
    1 where their RTF is below 1 (its mean is ``rtf.realtime_fraction``). Also the output
    tokens of the successful LLM requests per second (``tokens.output_per_s``), or None.
    """
    out: dict[str, Series] = {
        "latency_ms": (latency[ok], second[ok]),
        "service_time_ms": (service[ok], second[ok]),
    }
    tokens: FloatArray | None = None
    ttft = measured["ttft_ms"].to_numpy(dtype=np.float64)
    out_tokens = measured["output_tokens"].to_numpy(dtype=np.float64)
    llm = np.isfinite(ttft) | np.isfinite(out_tokens)
    if llm.any():
        streamed = ok & np.isfinite(ttft)
        out["ttft_ms"] = (ttft[streamed], second[streamed])
        if streamed.any():
            gaps, counts = llm_metrics.parse_itl(measured["itl_ms"][streamed])
            gap_second = np.repeat(second[streamed], counts)
            with np.errstate(invalid="ignore"):
                valid = np.isfinite(gaps) & (gaps >= 0)
            out["itl_ms"] = (gaps[valid], gap_second[valid])
        tpot = llm_metrics.tpot_ms(service, ttft, out_tokens)
        defined = ok & np.isfinite(tpot)
        out["tpot_ms"] = (tpot[defined], second[defined])
        done = ok & llm
        out["e2e_ms"] = (latency[done], second[done])
        size = int(second.max()) + 1 if second.size else 0
        tokens = np.bincount(second[done], weights=np.nan_to_num(out_tokens[done]), minlength=size).astype(
            np.float64
        )
    media = measured["media_s"].to_numpy(dtype=np.float64)
    with np.errstate(invalid="ignore"):
        usable = ok & np.isfinite(media) & (media > 0)  # quality.rtf_values' own selection
    if usable.any():
        rtf = quality.rtf_values(service, media, ok)
        out["rtf"] = (rtf, second[usable])
        out["rtf_realtime"] = ((rtf < 1.0).astype(np.float64), second[usable])
    return out, tokens
