"""The analyzer for runs of any length: ``summary.json`` and ``timeseries.csv`` from a
`loadbench.analyze.store.RecordStore`, without the records in memory.

It gives the figures `loadbench.analyze.analyzer.compute_summary` gives from the records in
memory, equal to the last digit the summary keeps (a test compares the two on the same runs), for
every run loadbench records (`unsupported`: only a record column it does not know sends a run
into memory): this module's own sections for every run and each section module's
(`bounded_llm`, `bounded_payload`, `bounded_routes`, `bounded_retries`, `bounded_cache`) for the
columns it reads. An open loop's requests count from their due time through the store's ``requests``
view (`SOURCE`); with retries, that view holds each request's attempts collapsed. Memory: DuckDB's,
under `loadbench.analyze.store.MEMORY_LIMIT_MB`, plus a few arrays of one value per second.

Percentiles are exact (the values at numpy's positions in DuckDB's sorted order,
`loadbench.analyze.stats.percentile_points`); the confidence intervals are the same order
statistics as `loadbench.analyze.trust.percentile_ci` picks; means and per-bin sums are DuckDB's
compensated sums.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from loadbench.analyze import (
    bounded_cache,
    bounded_llm,
    bounded_payload,
    bounded_retries,
    bounded_routes,
    finish,
    means,
    network,
    processing,
    slo,
    stats,
    traffic,
    trust,
)
from loadbench.analyze.scope import IN_WINDOW, OK, SOURCE, Scope
from loadbench.analyze.store import SCHEDULED, FloatArray, RecordStore
from loadbench.analyze.window import (
    RunSpan,
    load_section,
    run_notices,
    run_section,
    run_span,
    window_notices,
    window_section,
    window_start_unix_s,
)
from loadbench.record.columnar import PARQUET, records_path
from loadbench.record.records import TIME_RESOLUTION_S

# The record columns of a plain run, which this module's own sections read; `COLUMNS`: with the
# section modules' columns, every column whose figures this path computes. A run whose records
# fill any other column takes the in-memory path.
CORE_COLUMNS = frozenset(
    {"start_unix_s", "latency_ms", "name", "method", "status", "response_bytes", "ok", "error",
     "server_message", "retry_after", "redirects", "intended_unix_s"}
)  # fmt: skip
COLUMNS = (
    CORE_COLUMNS
    | bounded_llm.COLUMNS
    | bounded_payload.COLUMNS
    | bounded_routes.COLUMNS
    | bounded_retries.COLUMNS
    | bounded_cache.COLUMNS
)
# A CSV record file this large (some 750,000 records) is analyzed through a store: converting it
# (about 1 s a million records) costs less than holding its records in memory (3M records: 1.25 GB
# in memory, 0.39 GB through a store). Smaller ones, most runs, are read into memory.
CSV_BYTES = 64 << 20


def open_bounded(run_dir: Path, meta: dict[str, Any]) -> RecordStore | None:
    """A `RecordStore` of the run when this path covers it and is worth it; None when the records
    are better read into memory: a run `unsupported` names a reason against, or records in a CSV
    file of under `CSV_BYTES` (converting them would cost more than it saves)."""
    path = records_path(run_dir)
    if path.name != PARQUET and (not path.is_file() or path.stat().st_size < CSV_BYTES):
        return None
    store = RecordStore.open(run_dir)
    if unsupported(meta, store) is not None:
        store.close()
        return None
    return store


def window_successes(meta: dict[str, Any]) -> tuple[str, list[float]]:
    """The SQL condition, and its parameters, of the measured window's successful requests: those
    whose latencies the summary's percentiles rank. The report's percentile curve asks the store
    the same query, so that a store shared by both sorts them once (`RecordStore.values_at`)."""
    # A request due exactly at the window's start counts in (`loadbench.analyze.window.measure`).
    return f"{IN_WINDOW} AND {OK}", [window_start_unix_s(meta) - TIME_RESOLUTION_S / 2]


def unsupported(meta: dict[str, Any], store: RecordStore) -> str | None:
    """Why this run needs the in-memory analyzer, in a few words; None when this path gives every
    figure of its summary: every setting and every record column loadbench writes is covered, so
    only a record column it does not know (a later format's) sends a run into memory."""
    extra = sorted(store.filled - COLUMNS)
    return "records with " + ", ".join(extra) if extra else None


def bounded_summary(
    meta: dict[str, Any],
    store: RecordStore,
    users: pd.DataFrame,
    samples: pd.DataFrame | None = None,
    sampler_info: dict[str, Any] | None = None,
    server_stats: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], pd.DataFrame]:
    """(summary, per-second frame) of a run `unsupported` says nothing against."""
    _, (lo,) = window_successes(meta)
    counts = _counts(store, lo)
    last = counts["last_end"]
    span, notices = run_span(meta, None if last is None else float(last))
    total, ok = counts["total"], counts["ok"]
    notices += run_notices(span) + window_notices(span, total, ok)
    if store.damage is not None and not store.damage.warns:
        notices.append(store.damage.notice())  # a killed run's cut-off last record: no warning
    slos = slo.parse_slos(span.settings.get("slos") or [])
    notices += trust.thin_notice(ok)
    latency, ci = _latency(store, window_successes(meta), ok, counts["latency_sum"])
    summary: dict[str, Any] = {
        "schema": finish.SCHEMA_VERSION,
        "run": run_section(span),
        "load": load_section(span),
        "window": window_section(span),
        "requests": traffic.counted_requests_section(
            span, total, ok, counts["records"] - total, (int(counts["redirects"]), int(counts["redirected"]))
        ),
        "throughput_rps": stats.rate(ok, span.duration_s),
        "request_rate_rps": stats.rate(total, span.duration_s),
        "latency_ms": latency,
        "latency_ci_ms": ci,
        "service_time_ms": _service_time(store, meta, latency, ok, counts["service_sum"]),
        "by_name": _by_name(store, lo, span, latency, ok),
        "errors": stats.counted_error_table(_error_counts(store, lo), total),
        "response_bytes": {
            "total": counts["bytes"],
            "mean": round(counts["bytes_mean"], 1) if total else None,
        },
        "notices": notices,
    }
    scope = Scope(store, span, lo, total, ok, slos)
    summary.update(bounded_payload.payload_keys(scope))
    llm, llm_notices, gated = bounded_llm.llm_keys(scope, span.settings.get("realtime_tokens_per_s"))
    summary.update(llm)
    notices.extend(llm_notices)
    _add_breakdown(summary, scope, counts["service_sum"], server_stats, samples)
    routes, route_notices = bounded_routes.route_keys(scope)
    # ``retries`` comes after ``targets`` and before the first requests' keys, as in memory.
    firsts: dict[str, Any] = {
        key: routes.pop(key) for key in ("cold_start", "shared_prefix") if key in routes
    }
    summary.update(routes)
    summary.update(bounded_retries.retries_keys(scope))
    cached = bounded_cache.cache_keys(scope)  # after ``retries``, before the first requests' keys
    summary.update(cached)
    summary.update(firsts)
    # The first requests' notices come last, after the cache's (as in memory).
    split = len(route_notices) - sum(len(section["notices"]) for section in firsts.values())
    cache_notices = [n for section in cached.values() for n in section["notices"]]
    notices.extend(route_notices[:split] + cache_notices + route_notices[split:])
    by_second = _latency_by_second(store, lo, span)
    tokens = llm.get("tokens")
    output_tokens = tokens["output_total"] if tokens else None
    resources = finish.resources_section(span, samples, sampler_info, by_second, ok, output_tokens)
    finish.add_resources(summary, resources)
    if span.load_model == "open":
        summary["schedule"] = _schedule(store, lo, span)
    summary["steady"] = _steady(store, lo, span, ok)
    notices.extend(trust.steady_notice(summary["steady"], span.warmup_s))
    summary.update(bounded_routes.stage_keys(scope))
    summary["slo"] = slo.evaluate(slos, summary)
    summary["validity"] = finish.validity_section(summary, span.load_model, total, slos, gated, store.damage)
    return stats.clean(summary), _series(store, span, users)


def _add_breakdown(
    summary: dict[str, Any],
    scope: Scope,
    service_sum: int,
    server_stats: dict[str, Any] | None,
    samples: pd.DataFrame | None,
) -> None:
    """Network vs server (`loadbench.analyze.analyzer`'s ``latency_breakdown``): one round trip
    against p50 service time, the HTTP/2 phases, the server's own processing time."""
    span = scope.span
    breakdown = network.latency_breakdown(span.meta.get("network"), summary["service_time_ms"]["p50"])
    phases = bounded_payload.phases_ms(scope)
    if phases:
        breakdown = {**(breakdown or {}), "phases_ms": phases}
    found = bounded_payload.server_processing(scope)
    if found is None and scope.ok:
        found = processing.counter_section(
            means.mean_of(service_sum, scope.ok),
            server_stats,
            samples,
            span.start,
            str(span.meta.get("target") or ""),
        )
    if found is not None:
        breakdown = {**(breakdown or {}), **found}
    if breakdown is not None:
        summary["latency_breakdown"] = breakdown


def _counts(store: RecordStore, lo: float) -> dict[str, Any]:
    (row,) = store.rows(
        f"""SELECT count(*) FILTER ({IN_WINDOW}), count(*) FILTER ({IN_WINDOW} AND {OK}), count(*),
        coalesce(sum(response_bytes) FILTER ({IN_WINDOW}), 0), avg(response_bytes) FILTER ({IN_WINDOW}),
        {means.exact_sum_sql("latency_ms", f"{IN_WINDOW} AND {OK}")},
        coalesce(sum(coalesce(redirects, 0)) FILTER ({IN_WINDOW}), 0),
        count(*) FILTER ({IN_WINDOW} AND redirects > 0), max(start_unix_s + latency_ms / 1000.0),
        {means.exact_sum_sql("service_ms", f"{IN_WINDOW} AND {OK}")}
        FROM requests""",
        [lo] * 8,
    )
    keys = (
        "total",
        "ok",
        "records",
        "bytes",
        "bytes_mean",
        "latency_sum",
        "redirects",
        "redirected",
        "last_end",
        "service_sum",
    )
    return dict(zip(keys, row, strict=True))


def _service_time(
    store: RecordStore, meta: dict[str, Any], latency: stats.LatencySummary, n: int, total: int
) -> stats.LatencySummary:
    """The window's successes' latency from the actual send: in a closed loop, their latency."""
    if "intended_unix_s" not in store.filled:
        return latency
    where, params = window_successes(meta)
    return stats.summary_from_ranks(
        n,
        lambda p: store.values_at(p, "service_ms", where, params, source=SOURCE),
        total,
    )


def _schedule(store: RecordStore, lo: float, span: RunSpan) -> trust.ScheduleSection:
    """`loadbench.analyze.trust.schedule_summary`: how the open loop kept its schedule."""
    due = f"{SCHEDULED} AND intended_unix_s >= ?"
    late = "(start_unix_s - intended_unix_s) * 1000.0"  # from the records as written
    ((sent, n_late, lateness_sum, sent_total),) = store.rows(
        f"""SELECT count(*) FILTER ({due}), count(*) FILTER ({due} AND {late} > ?),
        {means.exact_sum_sql(late, due)}, count(*) FILTER ({SCHEDULED}) FROM records""",
        [lo, lo, trust.LATE_MS, lo],
    )
    lateness = stats.summary_from_ranks(sent, lambda p: store.values_at(p, late, due, [lo]), lateness_sum)
    settings = span.load
    return trust.schedule_section(
        sent, n_late, lateness, sent_total, span.duration_s, settings, span.meta.get("schedule")
    )


def _latency(
    store: RecordStore, successes: tuple[str, list[float]], n: int, total: int
) -> tuple[stats.LatencySummary, dict[str, Any]]:
    """The window's latency summary and its percentiles' confidence intervals: one sorted pass for
    both, and for the report's percentile curve (the store keeps what it found)."""
    ci_ranks = {key: trust.ci_positions(n, q) for key, q in stats.PERCENTILES.items()}

    def value_at(positions: npt.ArrayLike) -> FloatArray:
        return store.values_at(positions, "latency_ms", *successes, source=SOURCE)

    if n:
        curve = stats.percentile_points(n, (1.0 - 1.0 / stats.curve_x(n)) * 100.0)
        ci_flat = [r for pair in ci_ranks.values() if pair for r in pair]
        value_at(np.concatenate([stats.summary_positions(n), ci_flat, curve[0], curve[1]]))
    summary = stats.summary_from_ranks(n, value_at, total)
    ci: dict[str, Any] = {
        key: [round(float(v), 3) for v in value_at(pair)] if pair else None for key, pair in ci_ranks.items()
    }
    return summary, ci


def _by_name(
    store: RecordStore, lo: float, span: RunSpan, whole: stats.LatencySummary, ok_total: int
) -> dict[str, Any]:
    """`loadbench.analyze.traffic.by_name`: each name's counts and latency, names in text order."""
    rows = store.rows(
        f"""SELECT name, count(*), count(*) FILTER ({OK}), {means.exact_sum_sql("latency_ms", OK)}
        FROM requests WHERE {IN_WINDOW} AND name IS NOT NULL GROUP BY name ORDER BY name""",
        [lo],
    )
    latencies: dict[str, stats.LatencySummary] = {}
    if len(rows) == 1 and rows[0][2] == ok_total:
        latencies[str(rows[0][0])] = whole  # the one name holds every success: the same figures
    elif rows:
        group = store.ordinal("name", [str(r[0]) for r in rows])  # the order of ``rows``
        where = f"{IN_WINDOW} AND {OK} AND name IS NOT NULL"
        oks = [int(r[2]) for r in rows]
        offsets = np.concatenate([[0], np.cumsum(oks)[:-1]]).astype(np.int64)

        def value_at(positions: npt.ArrayLike) -> FloatArray:
            return store.values_at(positions, "latency_ms", where, [lo], group=group, source=SOURCE)

        # Every name's positions in one sorted pass; each summary then reads them back.
        wanted = [stats.summary_positions(n) + o for n, o in zip(oks, offsets, strict=True) if n]
        if wanted:
            value_at(np.concatenate(wanted))
        for (name, _, n, total), offset in zip(rows, offsets.tolist(), strict=True):
            latencies[str(name)] = stats.summary_from_ranks(
                int(n), lambda p, offset=offset: value_at(np.asarray(p) + offset), int(total)
            )
    return {
        str(name): traffic.name_section(int(requests), int(n_ok), span.duration_s, latencies[str(name)])
        for name, requests, n_ok, _ in sorted(rows, key=lambda r: str(r[0]))
    }


def _error_counts(store: RecordStore, lo: float) -> pd.DataFrame:
    """The window's failed records counted per distinct (`stats.ERROR_COLUMNS`), in the order each
    was first recorded (as the in-memory path's grouping finds them)."""
    frame = store.frame(
        f"""SELECT status, error, server_message, retry_after, count(*) AS count,
        min(file_row_number) AS first FROM requests WHERE {IN_WINDOW} AND NOT ({OK})
        GROUP BY ALL ORDER BY first""",
        [lo],
    )
    return frame.drop(columns="first")


def _latency_by_second(store: RecordStore, lo: float, span: RunSpan) -> pd.Series:
    """`loadbench.analyze.resources.ok_latency_by_second` of the window's records."""
    frame = store.frame(
        f"""SELECT floor(start_unix_s - ?) AS second, avg(latency_ms) AS latency FROM requests
        WHERE {IN_WINDOW} AND {OK} GROUP BY second ORDER BY second""",
        [span.start, lo],
    )
    return pd.Series(
        frame["latency"].to_numpy(dtype=np.float64), index=frame["second"].to_numpy(dtype=np.float64)
    )


def _steady(store: RecordStore, lo: float, span: RunSpan, ok: int) -> trust.SteadySection:
    """`loadbench.analyze.trust.steady_start` from each bin's sum and count."""
    bins = trust.steady_bins(span.start, span.ended)
    if bins < 10 or ok < 50:
        return trust.steady_from_bins(np.zeros(0), np.zeros(0, dtype=np.int64), span.start, span.ended)
    width = span.ended - span.start
    rows = store.rows(
        f"""SELECT b, {means.exact_sum_sql("latency_ms")}, count(*) FROM (
            SELECT CAST(floor((start_unix_s - ?) / ? * ?) AS BIGINT) AS b, latency_ms FROM requests
            WHERE {IN_WINDOW} AND {OK}) WHERE b >= 0 AND b < ? GROUP BY b""",
        [span.start, width, bins, lo, bins],
    )
    units = np.zeros(bins)
    counts = np.zeros(bins, dtype=np.int64)
    for b, total, n in rows:
        units[b], counts[b] = float(total), n  # exact: `trust.steady_start` sums the same units
    return trust.steady_from_bins(units / means.MEAN_SCALE, counts, span.start, span.ended)


def _series(store: RecordStore, span: RunSpan, users: pd.DataFrame) -> pd.DataFrame:
    """`loadbench.analyze.stats.per_second` of every record (warmup's included, marked)."""
    seconds = max(int(np.ceil(span.ended - span.started - 0.01)), 0)
    second = "CAST(floor(start_unix_s - ?) AS BIGINT)"
    # floor(x) lies in [0, seconds) exactly when x does: the range filters on the offset itself.
    in_range = "start_unix_s - ? >= 0 AND start_unix_s - ? < ?"
    rows = store.rows(
        f"SELECT {second} AS s, count(*), count(*) FILTER ({OK}) FROM requests WHERE {in_range} GROUP BY s",
        [span.started, span.started, span.started, seconds],
    )
    requests = np.zeros(seconds, dtype=np.int64)
    ok = np.zeros(seconds, dtype=np.int64)
    for s, n, n_ok in rows:
        requests[s], ok[s] = n, n_ok
    p50 = np.full(seconds, np.nan)
    p99 = np.full(seconds, np.nan)
    filled = np.flatnonzero(ok)
    if filled.size:
        n = ok[filled]
        offsets = np.concatenate([[0], np.cumsum(n)[:-1]])
        points = [stats.percentile_points(n, q) for q in (50.0, 99.0)]
        flat = np.concatenate(
            [np.concatenate([lower + offsets, upper + offsets]) for lower, upper, _ in points]
        )
        values = store.values_at(
            flat,
            "latency_ms",
            f"{OK} AND {in_range}",
            [span.started, span.started, span.started, seconds],
            group=second,
            source=SOURCE,
        )
        k = filled.size
        for i, (out, (_, _, gamma)) in enumerate(zip((p50, p99), points, strict=True)):
            part = values[2 * k * i : 2 * k * (i + 1)]
            out[filled] = stats.interpolate(part[:k], part[k:], gamma)
    series = stats.series_frame(requests, ok, p50, p99, span.started, span.start)
    series["users"] = stats.users_per_second(users, span.started, seconds)
    return series
