"""Analyze a run directory: ``meta.json`` + ``requests.csv`` + ``users.csv`` -> ``summary.json``
and ``timeseries.csv``.

Reads the run directory alone, so it can be re-run at any time (``loadbench report DIR``).
Metric definitions: ``docs/metrics.md``. In short: the measured window starts ``warmup_s``
after the load started and ends when the load stopped; a request belongs to the window when
it *started* inside it; latency percentiles are over the successful requests of the window.
With ``--retries`` a request is what its user saw: its attempts collapsed (`window.measure`);
``targets``, ``replicas`` and ``retries`` are the sections that count the attempts themselves.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import pandas as pd

from loadbench.analyze import (
    bounded,
    finish,
    llm_metrics,
    network,
    processing,
    quality,
    replicas,
    retries,
    slo,
    stats,
    trust,
)
from loadbench.analyze.cache import cache_section
from loadbench.analyze.firsts import cold_start_section, shared_prefix_section
from loadbench.analyze.llm_metrics import LlmSection
from loadbench.analyze.quality import QualitySection, RtfSection
from loadbench.analyze.resources import ResourcesSection, ok_latency_by_second
from loadbench.analyze.slo import SloSection
from loadbench.analyze.stages import StageSection, stage_summaries
from loadbench.analyze.store import RecordStore
from loadbench.analyze.traffic import TrafficSections, traffic_sections
from loadbench.analyze.trust import ScheduleSection, SteadySection, ValiditySection
from loadbench.analyze.window import (
    LoadSection,
    RunSection,
    Window,
    WindowSection,
    load_section,
    measure,
    run_section,
    window_section,
)
from loadbench.errors import RunDirError
from loadbench.protocols.triton_stats import SERVER_STATS_FILE
from loadbench.record import rundir
from loadbench.record.columnar import read_run_requests
from loadbench.record.salvage import damage_of
from loadbench.record.series import read_samples, read_users


def _gated_values(measured: pd.DataFrame, ok: npt.NDArray[np.bool_]) -> dict[str, int]:
    """How many values each gated percentile other than latency's rests on (`finish.gated_counts`).

    ITL counts a stream once, not per gap: the gaps of one request are far from independent.
    """
    ttft = np.isfinite(measured["ttft_ms"].to_numpy(dtype=np.float64))
    tokens = measured["output_tokens"].to_numpy(dtype=np.float64)
    with np.errstate(invalid="ignore"):
        decoded = np.isfinite(tokens) & (tokens >= 2)
    values = {
        "service_time_ms": ok,
        "ttft_ms": ok & ttft,
        "itl_ms": ok & ttft,
        "tpot_ms": ok & ttft & decoded,
        "e2e_ms": ok & (ttft | np.isfinite(tokens)),
    }
    return {key: int(mask.sum()) for key, mask in values.items()}


class CoreSummary(TrafficSections):
    """The keys every ``summary.json`` starts with. In the file: ``schema``, ``run``, ``load``,
    ``window``, then `TrafficSections`' keys, then ``notices`` (`compute_summary` builds them so)."""

    schema: int
    run: RunSection
    load: LoadSection
    window: WindowSection
    notices: list[str]


class Summary(CoreSummary, LlmSection, total=False):
    """``summary.json``: `CoreSummary`'s keys, then (in this order) ``quality`` and ``rtf`` (payloads
    with labels / media), `LlmSection`'s keys (LLM runs), ``latency_breakdown``, ``resources``,
    ``schedule`` (open loop), ``steady``, ``stages`` (load shapes), ``slo``, ``validity``; every key
    from ``resources`` on but ``schedule`` and ``stages`` is always there. ``replicas`` (with
    ``--replica-header``) comes after ``latency_breakdown``, then ``targets`` (several targets) and
    ``retries`` (``--retries``), then ``cache`` (payload keys, cache answers: `loadbench.analyze.cache`),
    ``cold_start`` (``--cold-start``) and ``shared_prefix`` (``--shared-prefix-tokens``:
    `loadbench.analyze.firsts`)."""

    quality: QualitySection
    rtf: RtfSection
    latency_breakdown: dict[str, Any]
    replicas: dict[str, Any]
    targets: dict[str, Any]
    retries: dict[str, Any]
    cache: dict[str, Any]
    cold_start: dict[str, Any]
    shared_prefix: dict[str, Any]
    resources: ResourcesSection
    schedule: ScheduleSection
    steady: SteadySection
    stages: list[StageSection]
    slo: SloSection
    validity: ValiditySection


def compute_summary(
    meta: dict[str, Any],
    requests: pd.DataFrame,
    users: pd.DataFrame,
    samples: pd.DataFrame | None = None,
    sampler_info: dict[str, Any] | None = None,
    server_stats: dict[str, Any] | None = None,
) -> tuple[Summary, pd.DataFrame]:
    """The pure core of the analyzer: run metadata and records -> (summary, per-second frame).

    Each section comes from the module that owns it, in the order of ``summary.json``; the
    notices of every section gather in ``summary["notices"]``."""
    w, notices = measure(meta, requests)
    damage = damage_of(requests)  # a damaged record file: what it lost, in one line
    if damage is not None and not damage.warns:
        notices.append(damage.notice())  # a killed run's cut-off last record: no warning
    slos = slo.parse_slos(w.settings.get("slos") or [])
    notices += trust.thin_notice(w.ok)
    traffic = traffic_sections(w)
    summary: Summary = {
        "schema": finish.SCHEMA_VERSION,
        "run": run_section(w),
        "load": load_section(w),
        "window": window_section(w),
        "requests": traffic["requests"],
        "throughput_rps": traffic["throughput_rps"],
        "request_rate_rps": traffic["request_rate_rps"],
        "latency_ms": traffic["latency_ms"],
        "latency_ci_ms": traffic["latency_ci_ms"],
        "service_time_ms": traffic["service_time_ms"],
        "by_name": traffic["by_name"],
        "errors": traffic["errors"],
        "response_bytes": traffic["response_bytes"],
        "notices": notices,
    }
    _add_payload_sections(summary, w)
    # LLM keys: only for runs with TTFT or token counts, or with a per-request SLO.
    llm, llm_notices = llm_metrics.llm_summary(
        w.measured, w.measured_service_ms, w.duration_s, slos, w.settings.get("realtime_tokens_per_s")
    )
    # An LlmSection is a part of a Summary, which mypy cannot tell from its update().
    summary.update(cast(Summary, llm))
    notices.extend(llm_notices)
    _add_breakdown(summary, w)
    _add_processing(summary, w, samples, server_stats)
    served = replicas.replicas_section(w)
    if served is not None:
        summary["replicas"] = served
        notices.extend(served["notices"])
    balanced = replicas.targets_section(w)
    if balanced is not None:
        summary["targets"] = balanced
        notices.extend(balanced["notices"])
    retried = retries.retries_section(w)
    if retried is not None:
        summary["retries"] = retried
    cached = cache_section(w)  # payload keys, cache answers, or two clear latency modes
    if cached is not None:
        summary["cache"] = cached
        notices.extend(cached["notices"])
    _add_firsts(summary, w)
    _add_resources(summary, w, samples, sampler_info, llm)
    _add_trust_sections(summary, w)
    summary["slo"] = slo.evaluate(slos, summary)
    summary["validity"] = finish.validity_section(
        cast(dict[str, Any], summary),
        w.load_model,
        w.total,
        slos,
        _gated_values(w.measured, w.ok_mask),
        damage,
    )
    return cast(Summary, stats.clean(summary)), _series(w, users)


def _add_resources(
    summary: Summary,
    w: Window,
    samples: pd.DataFrame | None,
    sampler_info: dict[str, Any] | None,
    llm: LlmSection,
) -> None:
    tokens = llm.get("tokens")
    resources = finish.resources_section(
        w,
        samples,
        sampler_info,
        ok_latency_by_second(w.measured, w.start),
        w.ok,
        tokens["output_total"] if tokens else None,
    )
    finish.add_resources(cast(dict[str, Any], summary), resources)


def _add_firsts(summary: Summary, w: Window) -> None:
    """The run's first requests: ``--cold-start N`` and ``--shared-prefix-tokens N``."""
    cold = cold_start_section(w)
    if cold is not None:
        summary["cold_start"] = cold
        summary["notices"].extend(cold["notices"])
    prefix = shared_prefix_section(w)
    if prefix is not None:
        summary["shared_prefix"] = prefix
        summary["notices"].extend(prefix["notices"])


def _add_payload_sections(summary: Summary, w: Window) -> None:
    """Only for payloads that carried an expected label (quality) or a media duration (RTF)."""
    measured = w.measured
    if "expected" in measured and "predicted" in measured:
        quality_section = quality.quality_summary(measured["expected"], measured["predicted"], w.ok_mask)
        if quality_section is not None:
            summary["quality"] = quality_section
    if "media_s" in measured:
        rtf = quality.rtf_summary(w.measured_service_ms, measured["media_s"].to_numpy(), w.ok_mask)
        if rtf is not None:
            summary["rtf"] = rtf


def _add_breakdown(summary: Summary, w: Window) -> None:
    """Network vs server: one round trip (measured before the load) against p50 service time."""
    breakdown = network.latency_breakdown(w.meta.get("network"), summary["service_time_ms"]["p50"])
    phases = network.phase_summaries(w.measured[w.ok_mask])
    if phases:
        breakdown = {**(breakdown or {}), "phases_ms": phases}
    if breakdown is not None:
        summary["latency_breakdown"] = breakdown


def _add_processing(
    summary: Summary, w: Window, samples: pd.DataFrame | None, server_stats: dict[str, Any] | None
) -> None:
    """The server's own processing time and the rest of latency (`processing`), where it said."""
    ok = w.measured[w.ok_mask]
    server_ms = ok["server_ms"].to_numpy(dtype=np.float64) if "server_ms" in ok else None
    found = processing.processing_section(
        w.measured_service_ms[w.ok_mask],
        server_ms,
        w.settings,
        server_stats,
        samples,
        w.start,
        str(w.meta.get("target") or ""),
    )
    if found is not None:
        summary["latency_breakdown"] = {**summary.get("latency_breakdown", {}), **found}


def _add_trust_sections(summary: Summary, w: Window) -> None:
    """The open loop's schedule, where latency settled, and the load shape's stages."""
    if w.load_model == "open":
        summary["schedule"] = trust.schedule_summary(
            w.sent_unix_s, w.intended_unix_s, w.start, w.ended, w.load, w.meta.get("schedule")
        )
    ok_send = w.measured["start_unix_s"].to_numpy()[w.ok_mask].astype(np.float64)
    summary["steady"] = trust.steady_start(ok_send, w.ok_latency, w.start, w.ended)
    summary["notices"].extend(trust.steady_notice(summary["steady"], w.warmup_s))
    if w.settings.get("stages"):
        summary["stages"] = stage_summaries(
            w.requests["start_unix_s"].to_numpy(),
            w.requests["latency_ms"].to_numpy(),
            w.requests["ok"].to_numpy(),
            w.started,
            w.settings["stages"],
            w.start,
            window_end_unix_s=w.ended,
        )


def _series(w: Window, users: pd.DataFrame) -> pd.DataFrame:
    """Whole seconds of the run; the load loop overshoots its duration by a fraction of a
    millisecond, which must not add a near-empty last second to the plots."""
    seconds = max(int(np.ceil(w.ended - w.started - 0.01)), 0)
    series = stats.per_second(w.requests, w.started, w.start, seconds)
    series["users"] = stats.users_per_second(users, w.started, seconds)
    return series


def analyze_run(
    run_dir: Path, requests: pd.DataFrame | None = None, store: RecordStore | None = None
) -> Summary:
    """Analyze ``run_dir`` in place: write ``summary.json`` and ``timeseries.csv``; return the summary.

    ``requests``: the directory's records as `read_run_requests` gave them, or ``store``: the
    `RecordStore` `bounded.open_bounded` gave, when the caller opens the records once for the
    analyzer and the report (``loadbench report``). Without either, the records are read in
    memory or queried through a store, whichever `bounded.open_bounded` chooses.
    """
    meta = rundir.read_meta(run_dir)
    if requests is None and store is None:
        opened = bounded.open_bounded(run_dir, meta)
        if opened is not None:
            with opened:
                return analyze_run(run_dir, store=opened)
        requests = read_run_requests(run_dir)
    users = read_users(run_dir / rundir.USERS)
    samples = read_samples(run_dir / rundir.SAMPLES)
    info_path = run_dir / rundir.SAMPLER_INFO
    sampler_info = rundir.read_json(info_path) if info_path.exists() else None
    stats_path = run_dir / SERVER_STATS_FILE
    server_stats = rundir.read_json(stats_path) if stats_path.exists() else None
    try:
        if store is not None:
            found, series = bounded.bounded_summary(meta, store, users, samples, sampler_info, server_stats)
            summary = cast(Summary, found)
        else:
            assert requests is not None
            summary, series = compute_summary(meta, requests, users, samples, sampler_info, server_stats)
    except (TypeError, ValueError, KeyError, AttributeError, OverflowError) as exc:
        raise RunDirError(f"{run_dir / rundir.META} has an unusable value: {exc}") from None
    series.to_csv(run_dir / rundir.TIMESERIES, index=False, float_format="%.3f", na_rep="")
    rundir.write_json(run_dir / rundir.SUMMARY, summary)
    return summary
